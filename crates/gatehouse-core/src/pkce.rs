//! Proof Key for Code Exchange (RFC 7636).

use aws_lc_rs::{constant_time, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// The transformation from verifier to challenge (RFC 7636 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMethod {
    S256,
    /// The verifier itself; accepted only where an application allows it.
    Plain,
}

impl ChallengeMethod {
    pub fn parse(value: Option<&str>) -> Result<Self, Error> {
        // §4.3: a missing method means `plain`.
        match value.unwrap_or("plain") {
            "S256" => Ok(ChallengeMethod::S256),
            "plain" => Ok(ChallengeMethod::Plain),
            _ => Err(Error::invalid_request(
                "the code_challenge_method is not supported",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeMethod::S256 => "S256",
            ChallengeMethod::Plain => "plain",
        }
    }
}

/// §4.1: 43 to 128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`; challenges
/// have the same shape.
pub fn is_well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether a challenge has the shape its method gives it: an S256 challenge is the unpadded
/// base64url of a SHA-256 digest, exactly 43 characters (§4.2); a plain one is a verifier.
pub fn is_well_formed_challenge(challenge: &str, method: ChallengeMethod) -> bool {
    match method {
        ChallengeMethod::S256 => {
            challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        ChallengeMethod::Plain => is_well_formed(challenge),
    }
}

/// §4.2: the S256 challenge of a verifier.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// §4.6: whether `verifier` answers `challenge`.
pub fn verify(challenge: &str, method: ChallengeMethod, verifier: &str) -> bool {
    if !is_well_formed(verifier) {
        return false;
    }
    let expected = match method {
        ChallengeMethod::S256 => s256_challenge(verifier),
        ChallengeMethod::Plain => verifier.to_owned(),
    };
    constant_time::verify_slices_are_equal(expected.as_bytes(), challenge.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verify(challenge, ChallengeMethod::S256, verifier));
        assert!(!verify(challenge, ChallengeMethod::Plain, verifier));
        assert!(!verify(challenge, ChallengeMethod::S256, "short"));
        assert!(verify(verifier, ChallengeMethod::Plain, verifier));
    }
}
