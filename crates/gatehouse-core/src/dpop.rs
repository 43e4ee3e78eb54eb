//! DPoP (RFC 9449): proofs of possession of a client's key, checked at the token endpoint and
//! on every protected API; the thumbprint (RFC 7638) that binds tokens to that key; and the
//! server's nonces.
//!
//! A proof is verified by `jose`, the one verification core, with the key the proof carries in
//! its own `jwk` header; what RFC 9449 §4.3 asks beyond the signature is checked here. Its `jti`
//! is used once, across instances, through the store's table of used assertions — the only
//! round trip a proof costs, and only requests that carry one pay it. Nonces are stateless: the
//! HMAC of a time window under a key derived from the master key, so every instance issues and
//! accepts the same ones.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::Error;
use crate::clock::Clock;
use crate::federation::jose::{self, JwsAlgorithm, KeySet, UnverifiedJwt};
use crate::secret::{self, MasterKey, SecretHasher};
use crate::store::Store;

/// The algorithms a proof may be signed with (`dpop_signing_alg_values_supported`): every
/// asymmetric one `jose` verifies; never `none` or HMAC (§4.3 check 5).
pub const ALGORITHMS: [JwsAlgorithm; 7] = JwsAlgorithm::ALL;

/// How far a proof's `iat` may lie from now, either way, in seconds (§4.3 check 11, §11.1): long
/// enough for a client's clock and a slow network, short enough that the replay cache stays
/// small.
pub const PROOF_WINDOW: i64 = 60;

/// How long one nonce window lasts, in seconds. A nonce is accepted in its window and the next,
/// so it serves between one and two windows.
pub const NONCE_WINDOW: i64 = 300;

/// The `typ` of a proof (§4.2).
const PROOF_TYPE: &str = "dpop+jwt";

/// The scheme an access token was presented with (RFC 6750 §2.1, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    DPoP,
}

/// The request a proof must be made for.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The HTTP method, as received.
    pub method: &'a str,
    /// The request's path, as received; the URI is this server's issuer followed by it.
    pub path: &'a str,
    /// The access token the request presents, whose hash the proof must carry (`ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check: its key's thumbprint, which tokens are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub jkt: String,
}

/// A proof whose signature and claims passed the checks that need no state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inspected {
    jkt: String,
    jti: String,
    iat: i64,
    nonce: Option<String>,
}

fn refused(why: &str) -> Error {
    Error::InvalidDpopProof(format!("the DPoP proof was refused: {why}"))
}

/// The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members in lexicographic
/// order, base64url. `None` for a key type DPoP does not use.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let required: &[&str] = match member("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = serde_json::Map::new();
    for name in required {
        canonical.insert((*name).to_owned(), member(name)?.into());
    }
    // serde_json's map keeps its keys sorted and writes no whitespace: RFC 7638 §3.3's form.
    let text = Value::Object(canonical).to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    Some(URL_SAFE_NO_PAD.encode(digest))
}

/// Whether `text` has the form of a SHA-256 thumbprint: 43 base64url characters (the
/// authorization request's `dpop_jkt`, §10).
pub fn is_thumbprint(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `ath` (§4.2): base64url of the SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Two URIs name the same target when they are equal once parsed (scheme and host in lower
/// case, a default port dropped) and stripped of query and fragment (§4.3 check 9).
fn same_target(htu: &str, expected: &str) -> bool {
    let bare = |text: &str| {
        url::Url::parse(text).ok().map(|mut url| {
            url.set_query(None);
            url.set_fragment(None);
            url
        })
    };
    match (bare(htu), bare(expected)) {
        (Some(htu), Some(expected)) => htu == expected,
        _ => false,
    }
}

/// Every check of §4.3 that needs neither the store nor the nonces: the header (`typ`, `alg`,
/// a public `jwk`), the signature, `jti`, `htm`, `htu`, `iat` and `ath`.
fn inspect(proof: &str, uri: &str, target: &Target<'_>, now: i64) -> Result<Inspected, Error> {
    let unverified = UnverifiedJwt::parse(proof).map_err(|e| refused(&e.to_string()))?;
    if unverified.token_type().as_deref() != Some(PROOF_TYPE) {
        return Err(refused("its typ is not dpop+jwt"));
    }
    let jwk = unverified
        .header("jwk")
        .ok_or_else(|| refused("it has no jwk header"))?;
    let keys = KeySet::embedded(jwk).map_err(|e| refused(&e.to_string()))?;
    let jkt = thumbprint(jwk).ok_or_else(|| refused("its jwk is not an EC, RSA or OKP key"))?;
    jose::verify_signature(proof, &unverified, &keys, &ALGORITHMS, &[PROOF_TYPE])
        .map_err(|e| refused(&e.to_string()))?;
    let claims = unverified.claims();
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| refused(&format!("claim {name} is missing or malformed")))
    };
    let jti = text("jti")?;
    if text("htm")? != target.method {
        return Err(refused("htm is not the method of this request"));
    }
    if !same_target(text("htu")?, uri) {
        return Err(refused("htu is not the URI of this request"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| refused("claim iat is missing or not an integer"))?;
    if (now - iat).abs() > PROOF_WINDOW {
        return Err(refused(&format!(
            "it was not issued within {PROOF_WINDOW} seconds of now (iat)"
        )));
    }
    if let Some(token) = target.access_token {
        let ath = text("ath")?;
        if !secret::constant_time_eq(ath, &access_token_hash(token)) {
            return Err(refused("ath is not the hash of the access token"));
        }
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(nonce)) => Some(nonce.clone()),
        Some(_) => return Err(refused("claim nonce is not a string")),
    };
    Ok(Inspected {
        jkt,
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// The server's nonces (§8, §9): the HMAC of the current window's number. One is accepted
/// during its window and the next.
#[derive(Clone)]
struct Nonces {
    hasher: SecretHasher,
}

impl Nonces {
    fn for_window(&self, window: i64) -> String {
        self.hasher.hash(&format!("dpop nonce {window}"))
    }

    fn current(&self, now: i64) -> String {
        self.for_window(now.div_euclid(NONCE_WINDOW))
    }

    fn accepts(&self, nonce: &str, now: i64) -> bool {
        let window = now.div_euclid(NONCE_WINDOW);
        // Both compared, so the time taken does not tell which window matched.
        let current = self.hasher.verify(&format!("dpop nonce {window}"), nonce);
        let previous = self
            .hasher
            .verify(&format!("dpop nonce {}", window - 1), nonce);
        current | previous
    }
}

/// Verifies proofs, and decides whether a presented token is admitted under its binding.
#[derive(Clone)]
pub struct Dpop {
    issuer: String,
    store: Arc<dyn Store>,
    nonces: Nonces,
    clock: Arc<dyn Clock>,
    require_nonce: bool,
}

impl Dpop {
    /// `require_nonce`: whether every proof must carry a nonce this server issued (§8 at the
    /// token endpoint, §9 at the APIs).
    pub fn new(
        issuer: String,
        store: Arc<dyn Store>,
        master_key: &MasterKey,
        clock: Arc<dyn Clock>,
        require_nonce: bool,
    ) -> Self {
        Dpop {
            issuer,
            store,
            nonces: Nonces {
                hasher: master_key.dpop_nonce_hasher(),
            },
            clock,
            require_nonce,
        }
    }

    pub fn requires_nonce(&self) -> bool {
        self.require_nonce
    }

    /// The nonce to hand clients now.
    pub fn nonce(&self) -> String {
        self.nonces.current(self.clock.now())
    }

    /// Checks a proof for `target` (§4.3), its nonce when nonces are required, and uses up its
    /// `jti` (kept until the proof could no longer be accepted anyway).
    pub async fn verify(&self, proof: &str, target: &Target<'_>) -> Result<Proof, Error> {
        let now = self.clock.now();
        let uri = format!("{}{}", self.issuer, target.path);
        let inspected = inspect(proof, &uri, target, now)?;
        if self.require_nonce
            && !inspected
                .nonce
                .as_deref()
                .is_some_and(|nonce| self.nonces.accepts(nonce, now))
        {
            return Err(Error::UseDpopNonce {
                nonce: self.nonces.current(now),
            });
        }
        // Keyed by the key as well: a `jti` is only unique among one client's proofs.
        let key = secret::sha256_base64(&format!("dpop\n{}\n{}", inspected.jkt, inspected.jti));
        if !self
            .store
            .record_assertion_use(&key, inspected.iat + PROOF_WINDOW + 1)
            .await?
        {
            return Err(refused("its jti was already used"));
        }
        Ok(Proof { jkt: inspected.jkt })
    }

    /// Whether a valid access token bound to `bound_to` (a thumbprint, or none) may be used as
    /// presented (§7.1): a bound token only with the DPoP scheme and a proof of its key for this
    /// request, an unbound one only as a bearer token.
    pub async fn admit(
        &self,
        bound_to: Option<&str>,
        scheme: Scheme,
        proof: Option<&str>,
        target: &Target<'_>,
    ) -> Result<(), Error> {
        match (scheme, bound_to) {
            (Scheme::Bearer, None) => Ok(()),
            (Scheme::Bearer, Some(_)) => Err(Error::InvalidDpopToken(
                "the access token is DPoP-bound: present it with the DPoP scheme and a proof"
                    .into(),
            )),
            (Scheme::DPoP, _) => {
                let proof = proof.ok_or_else(|| refused("the request has no DPoP header"))?;
                let proven = self.verify(proof, target).await?;
                match bound_to {
                    Some(jkt) if secret::constant_time_eq(jkt, &proven.jkt) => Ok(()),
                    Some(_) => Err(Error::InvalidDpopToken(
                        "invalid DPoP key binding: the proof is not made with the token's key"
                            .into(),
                    )),
                    None => Err(Error::InvalidDpopToken(
                        "the access token is not DPoP-bound: present it as a bearer token".into(),
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;
    use crate::clock::TestClock;

    const URI: &str = "https://as.example/oauth/token";
    const NOW: i64 = 1_700_000_000;

    /// A client's P-256 key, as a test signs proofs with it.
    struct ClientKey(EcdsaKeyPair);

    impl ClientKey {
        fn generate() -> Self {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .unwrap();
            ClientKey(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap(),
            )
        }

        fn jwk(&self) -> Value {
            let point = self.0.public_key().as_ref();
            json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            })
        }

        fn sign(&self, header: Value, claims: Value) -> String {
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self
                .0
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap();
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }

        fn proof(&self, claims: Value) -> String {
            self.sign(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()}),
                claims,
            )
        }
    }

    fn claims() -> Value {
        json!({"jti": "j1", "htm": "POST", "htu": URI, "iat": NOW})
    }

    fn target() -> Target<'static> {
        Target {
            method: "POST",
            path: "/oauth/token",
            access_token: None,
        }
    }

    fn with(claims: Value, name: &str, value: Value) -> Value {
        let mut claims = claims;
        claims[name] = value;
        claims
    }

    fn reason(result: Result<Inspected, Error>) -> String {
        match result {
            Err(Error::InvalidDpopProof(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk = json!({
            "kty": "RSA", "alg": "RS256", "kid": "2011-04-29", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "c2VjcmV0"})), None);
    }

    #[test]
    fn a_well_formed_proof_gives_its_keys_thumbprint() {
        let key = ClientKey::generate();
        let inspected = inspect(&key.proof(claims()), URI, &target(), NOW).unwrap();
        assert_eq!(inspected.jkt, thumbprint(&key.jwk()).unwrap());
        assert_eq!(inspected.jti, "j1");
        // Query and fragment are not part of the target; scheme and host case are not either.
        let loose = with(
            claims(),
            "htu",
            json!("HTTPS://AS.example:443/oauth/token?x=1#f"),
        );
        assert!(inspect(&key.proof(loose), URI, &target(), NOW).is_ok());
    }

    #[test]
    fn each_rule_of_section_4_3_refuses_a_proof() {
        let key = ClientKey::generate();
        let refused = |proof: String| reason(inspect(&proof, URI, &target(), NOW));
        let header = |typ: &str, alg: &str| json!({"typ": typ, "alg": alg, "jwk": key.jwk()});
        assert!(refused(key.sign(header("JWT", "ES256"), claims())).contains("typ"));
        assert!(refused(key.sign(header("dpop+jwt", "RS256"), claims())).contains("RS256"));
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header("dpop+jwt", "none").to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert!(refused(unsigned).contains("none"));
        assert!(refused(key.sign(header("dpop+jwt", "HS256"), claims())).contains("algorithm"));
        let mut private = key.jwk();
        private["d"] = json!("c2VjcmV0");
        assert!(
            refused(key.sign(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                claims()
            ))
            .contains("private")
        );
        let other = ClientKey::generate();
        assert!(
            refused(key.sign(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": other.jwk()}),
                claims()
            ))
            .contains("signature")
        );
        assert!(refused(key.proof(with(claims(), "htm", json!("GET")))).contains("htm"));
        let elsewhere = json!("https://as.example/oauth/revoke");
        assert!(refused(key.proof(with(claims(), "htu", elsewhere))).contains("htu"));
        for iat in [NOW - PROOF_WINDOW - 1, NOW + PROOF_WINDOW + 1] {
            assert!(refused(key.proof(with(claims(), "iat", json!(iat)))).contains("iat"));
        }
        assert!(refused(key.proof(with(claims(), "iat", json!(NOW as f64 + 0.5)))).contains("iat"));
        let mut without_jti = claims();
        without_jti.as_object_mut().unwrap().remove("jti");
        assert!(refused(key.proof(without_jti)).contains("jti"));
    }

    #[test]
    fn with_an_access_token_the_proof_carries_its_hash() {
        let key = ClientKey::generate();
        let target = Target {
            access_token: Some("gh_at_token"),
            ..target()
        };
        assert!(reason(inspect(&key.proof(claims()), URI, &target, NOW)).contains("ath"));
        let ath = json!(access_token_hash("gh_at_other"));
        let wrong = key.proof(with(claims(), "ath", ath));
        assert!(reason(inspect(&wrong, URI, &target, NOW)).contains("ath"));
        let ath = json!(access_token_hash("gh_at_token"));
        let right = key.proof(with(claims(), "ath", ath));
        assert!(inspect(&right, URI, &target, NOW).is_ok());
    }

    #[test]
    fn a_nonce_serves_its_window_and_the_next() {
        let clock = TestClock::at(NOW - NOW.rem_euclid(NONCE_WINDOW));
        let nonces = Nonces {
            hasher: MasterKey::generate().dpop_nonce_hasher(),
        };
        let issued = nonces.current(clock.now());
        assert!(nonces.accepts(&issued, clock.now()));
        clock.advance(NONCE_WINDOW * 2 - 1);
        assert!(nonces.accepts(&issued, clock.now()));
        assert_ne!(nonces.current(clock.now()), issued);
        clock.advance(1);
        assert!(!nonces.accepts(&issued, clock.now()));
        let elsewhere = Nonces {
            hasher: MasterKey::generate().dpop_nonce_hasher(),
        };
        assert!(!elsewhere.accepts(&nonces.current(clock.now()), clock.now()));
    }
}
