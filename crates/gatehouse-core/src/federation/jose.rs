//! Verifying JWTs signed by someone else (RFC 7515, RFC 7519), under RFC 8725's rules: the
//! accepted algorithms come from our configuration, never from the token; `none` and HMAC are
//! never accepted; a key is used only for the algorithm family and curve it belongs to; `crit`
//! is refused; `jku` and `x5u` headers are never followed, and a `jwk` header is the key only
//! where the protocol says so (a DPoP proof, [`KeySet::embedded`]). Time comes from the caller.
//!
//! `jsonwebtoken` checks the signature only; every claim is checked here, so each failure has a
//! precise reason an administrator can act on.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::inspection::Check;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 30;

/// The asymmetric signature algorithms a trusted issuer may be configured to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JwsAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    ES256,
    ES384,
    EdDSA,
}

impl JwsAlgorithm {
    pub const ALL: [JwsAlgorithm; 7] = [
        JwsAlgorithm::RS256,
        JwsAlgorithm::RS384,
        JwsAlgorithm::RS512,
        JwsAlgorithm::PS256,
        JwsAlgorithm::ES256,
        JwsAlgorithm::ES384,
        JwsAlgorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::RS256 => "RS256",
            JwsAlgorithm::RS384 => "RS384",
            JwsAlgorithm::RS512 => "RS512",
            JwsAlgorithm::PS256 => "PS256",
            JwsAlgorithm::ES256 => "ES256",
            JwsAlgorithm::ES384 => "ES384",
            JwsAlgorithm::EdDSA => "EdDSA",
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            JwsAlgorithm::RS256 => Algorithm::RS256,
            JwsAlgorithm::RS384 => Algorithm::RS384,
            JwsAlgorithm::RS512 => Algorithm::RS512,
            JwsAlgorithm::PS256 => Algorithm::PS256,
            JwsAlgorithm::ES256 => Algorithm::ES256,
            JwsAlgorithm::ES384 => Algorithm::ES384,
            JwsAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The key type (and curve) this algorithm needs.
    fn key_kind(self) -> KeyKind {
        match self {
            JwsAlgorithm::RS256
            | JwsAlgorithm::RS384
            | JwsAlgorithm::RS512
            | JwsAlgorithm::PS256 => KeyKind::Rsa,
            JwsAlgorithm::ES256 => KeyKind::Ec(Some(Curve::P256)),
            JwsAlgorithm::ES384 => KeyKind::Ec(Some(Curve::P384)),
            JwsAlgorithm::EdDSA => KeyKind::Ed25519,
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlgorithm {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        JwsAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == value)
            .ok_or_else(|| {
                Error::validation(format!(
                    "algorithm {value:?} is not accepted (one of RS256, RS384, RS512, PS256, \
                     ES256, ES384, EdDSA)"
                ))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    /// The curve is unknown for keys given as PEM; their signatures then simply fail to verify
    /// under the wrong curve.
    Ec(Option<Curve>),
    Ed25519,
}

impl KeyKind {
    fn fits(self, needed: KeyKind) -> bool {
        match (self, needed) {
            (KeyKind::Ec(None), KeyKind::Ec(_)) => true,
            (have, needed) => have == needed,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyKind::Rsa => "an RSA key",
            KeyKind::Ec(Some(Curve::P256)) => "an EC P-256 key",
            KeyKind::Ec(Some(Curve::P384)) => "an EC P-384 key",
            KeyKind::Ec(None) => "an EC key",
            KeyKind::Ed25519 => "an Ed25519 key",
        }
    }
}

/// One public key that may verify signatures.
#[derive(Clone)]
struct VerificationKey {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the key is then used for nothing else.
    alg: Option<String>,
    kind: KeyKind,
    key: DecodingKey,
}

/// The public keys of one issuer.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")))
            .finish()
    }
}

impl KeySet {
    /// A JWK Set (`{"keys": [...]}`) or a single JWK. Keys that are not for signatures, and
    /// symmetric keys, are dropped: a published secret is no secret, and an `oct` key would
    /// turn a public document into an HMAC key.
    pub fn from_jwks(document: &Value) -> Result<KeySet, String> {
        let entries: Vec<&Value> = match document.get("keys") {
            Some(Value::Array(keys)) => keys.iter().collect(),
            Some(_) => return Err("\"keys\" is not an array".into()),
            None if document.get("kty").is_some() => vec![document],
            None => return Err("neither a JWK Set nor a JWK".into()),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let text = |name: &str| entry.get(name).and_then(Value::as_str);
            if text("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let kind = match (text("kty"), text("crv")) {
                (Some("RSA"), _) => KeyKind::Rsa,
                (Some("EC"), Some("P-256")) => KeyKind::Ec(Some(Curve::P256)),
                (Some("EC"), Some("P-384")) => KeyKind::Ec(Some(Curve::P384)),
                (Some("OKP"), Some("Ed25519")) => KeyKind::Ed25519,
                _ => continue,
            };
            let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(entry.clone()) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            keys.push(VerificationKey {
                kid: text("kid").map(str::to_owned),
                alg: text("alg").map(str::to_owned),
                kind,
                key,
            });
        }
        if keys.is_empty() {
            return Err("it holds no usable signature key (RSA, EC P-256/P-384 or Ed25519)".into());
        }
        Ok(KeySet { keys })
    }

    /// A key an administrator pasted: a PEM public key, a JWK, or a JWK Set.
    pub fn from_static(text: &str) -> Result<KeySet, String> {
        let text = text.trim();
        if text.starts_with('{') {
            let document: Value =
                serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
            return KeySet::from_jwks(&document);
        }
        if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
            return Err("expected a PEM public key (BEGIN PUBLIC KEY), a JWK or a JWK Set".into());
        }
        let pem = text.as_bytes();
        let (kind, key) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (KeyKind::Rsa, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (KeyKind::Ec(None), key)
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            (KeyKind::Ed25519, key)
        } else {
            return Err("the PEM is not an RSA, EC or Ed25519 public key".into());
        };
        Ok(KeySet {
            keys: vec![VerificationKey {
                kid: None,
                alg: None,
                kind,
                key,
            }],
        })
    }

    /// The one public key a JWT carries in its own `jwk` header, where a protocol makes that
    /// the key (a DPoP proof proves possession of it). A JWK holding private members is
    /// refused: whoever sent it has given its secret away. The key serves whatever `kid` the
    /// header names, since it came with that header.
    pub fn embedded(jwk: &Value) -> Result<KeySet, JwtRejection> {
        const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
        let Value::Object(members) = jwk else {
            return Err(JwtRejection::Malformed(
                "the jwk header is not a JSON object",
            ));
        };
        if PRIVATE.iter().any(|m| members.contains_key(*m)) {
            return Err(JwtRejection::Malformed(
                "the jwk header holds a private key",
            ));
        }
        let mut keys = KeySet::from_jwks(jwk)
            .map_err(|_| JwtRejection::Malformed("the jwk header is no usable public key"))?;
        for key in &mut keys.keys {
            key.kid = None;
        }
        Ok(keys)
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token: by `kid` when the token names one (a key without a `kid` — a
    /// pasted PEM — serves any), otherwise the only key that fits the algorithm.
    fn select(
        &self,
        kid: Option<&str>,
        alg: JwsAlgorithm,
    ) -> Result<&VerificationKey, JwtRejection> {
        let key = match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .or_else(|| self.keys.iter().find(|k| k.kid.is_none()))
                .ok_or_else(|| JwtRejection::UnknownKey(kid.to_owned()))?,
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.kind.fits(alg.key_kind()));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => key,
                    (None, _) => return Err(JwtRejection::NoFittingKey(alg)),
                    (Some(_), Some(_)) => return Err(JwtRejection::AmbiguousKey),
                }
            }
        };
        if !key.kind.fits(alg.key_kind()) || key.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
            return Err(JwtRejection::KeyMismatch {
                kid: key.kid.clone().unwrap_or_else(|| "-".into()),
                key: key.kind.describe(),
                alg,
            });
        }
        Ok(key)
    }
}

/// Why a JWT was not accepted. The texts are meant for administrators: they say what to fix
/// and never echo the token or a value taken from it (the variants keep those for logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtRejection {
    #[error("it is not a well-formed signed JWT ({0})")]
    Malformed(&'static str),
    #[error("alg none is never accepted")]
    Unsigned,
    #[error("its algorithm is not among the accepted algorithms")]
    AlgorithmNotAccepted(String),
    #[error("it has a crit header, which is not supported")]
    CriticalHeader,
    #[error("its typ is not that of a token of this kind")]
    WrongType(String),
    #[error("no key with its kid is known for its issuer")]
    UnknownKey(String),
    #[error("it names no kid and several keys could verify it")]
    AmbiguousKey,
    #[error("no key of its issuer fits algorithm {0}")]
    NoFittingKey(JwsAlgorithm),
    #[error("the key its kid names is {key}, which cannot verify {alg}")]
    KeyMismatch {
        kid: String,
        key: &'static str,
        alg: JwsAlgorithm,
    },
    #[error("its signature does not verify")]
    BadSignature,
    #[error("claim {0} is missing or malformed")]
    MissingClaim(&'static str),
    #[error("claim {0} is not an integer number of seconds")]
    NotAnInteger(&'static str),
    #[error("its issuer is not the expected issuer")]
    WrongIssuer(String),
    #[error("its audience does not name this server")]
    WrongAudience,
    #[error("its subject does not match")]
    WrongSubject,
    #[error("it has expired")]
    Expired,
    #[error("it is not valid yet (nbf)")]
    NotYetValid,
    #[error("it was issued in the future (iat)")]
    IssuedInFuture,
    #[error("it was issued more than {0} seconds ago (iat)")]
    TooOld(i64),
    #[error("it lives longer than {0} seconds (exp)")]
    TooLongLived(i64),
}

/// What a token must satisfy besides its signature.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    /// Any one of these in `aud` is enough.
    pub audiences: &'a [String],
    pub algorithms: &'a [JwsAlgorithm],
    /// The oldest `iat` accepted, as an age in seconds; `None`: `iat` is not required.
    pub max_age: Option<i64>,
    /// The longest an assertion may live, in seconds: both `exp - iat` and `exp - now` must stay
    /// within it, so neither a long-lived assertion nor one without `iat` but with a far `exp`
    /// can be replayed for long. `None`: no bound.
    pub max_lifetime: Option<i64>,
    /// The required `sub` (client assertions: the client_id).
    pub subject: Option<&'a str>,
    /// Token types (`typ`, compared case-insensitively, `application/` prefix ignored) that are
    /// accepted; an absent `typ` is always accepted.
    pub types: &'a [&'a str],
    pub now: i64,
}

/// A JWT whose signature and registered claims were checked.
#[derive(Debug, Clone)]
pub struct VerifiedJwt {
    pub claims: Map<String, Value>,
    /// The `exp` that was checked, in Unix seconds (a fractional one rounded down).
    pub expires_at: i64,
}

impl VerifiedJwt {
    pub fn string(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn number(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }
}

/// The header and claims of a JWT, before anything was verified: only for deciding which
/// issuer's keys to verify it with.
pub struct UnverifiedJwt {
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl UnverifiedJwt {
    pub fn parse(token: &str) -> Result<UnverifiedJwt, JwtRejection> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtRejection::Malformed("not three dot-separated parts"));
        };
        let part = |text: &str, what: &'static str| -> Result<Map<String, Value>, JwtRejection> {
            let bytes = URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| JwtRejection::Malformed(what))?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(JwtRejection::Malformed(what)),
            }
        };
        Ok(UnverifiedJwt {
            header: part(header, "the header is not a base64url JSON object")?,
            claims: part(claims, "the claims are not a base64url JSON object")?,
        })
    }

    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// A member of the header, unverified.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.header.get(name)
    }

    /// The claims, unverified until [`verify_signature`] accepted the token.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `typ` header as a media type name: lowercase, without `application/` (RFC 7515
    /// §4.1.9).
    pub fn token_type(&self) -> Option<String> {
        self.header
            .get("typ")
            .and_then(Value::as_str)
            .map(bare_type)
    }
}

fn bare_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(bare) => bare.to_owned(),
        None => lower,
    }
}

/// Verifies `token` (already parsed as `unverified`) with `keys` against `expect`.
pub fn verify(
    token: &str,
    unverified: UnverifiedJwt,
    keys: &KeySet,
    expect: &Expectations<'_>,
) -> Result<VerifiedJwt, JwtRejection> {
    verify_signature(token, &unverified, keys, expect.algorithms, expect.types)?;
    let claims = unverified.claims;
    let expires_at = check_claims(&claims, expect)?;
    Ok(VerifiedJwt { claims, expires_at })
}

/// Checks the header (`alg` among `algorithms`, never `none`; no `crit`; a `typ`, when there
/// is one, among `types`) and the signature with the fitting key of `keys`; the claims are the
/// caller's to check. Returns the algorithm that verified.
pub fn verify_signature(
    token: &str,
    unverified: &UnverifiedJwt,
    keys: &KeySet,
    algorithms: &[JwsAlgorithm],
    types: &[&str],
) -> Result<JwsAlgorithm, JwtRejection> {
    let header = &unverified.header;
    let alg = match header.get("alg").and_then(Value::as_str) {
        None => return Err(JwtRejection::Malformed("the header has no alg")),
        Some(a) if a.eq_ignore_ascii_case("none") => return Err(JwtRejection::Unsigned),
        Some(a) => JwsAlgorithm::ALL
            .into_iter()
            .find(|known| known.as_str() == a && algorithms.contains(known))
            .ok_or_else(|| JwtRejection::AlgorithmNotAccepted(a.to_owned()))?,
    };
    if header.contains_key("crit") {
        return Err(JwtRejection::CriticalHeader);
    }
    if let Some(typ) = header.get("typ").and_then(Value::as_str) {
        let bare = bare_type(typ);
        if !types.iter().any(|t| *t == bare) {
            return Err(JwtRejection::WrongType(typ.to_owned()));
        }
    }
    let key = keys.select(unverified.kid(), alg)?;
    let mut validation = Validation::new(alg.jsonwebtoken());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtRejection::BadSignature,
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => JwtRejection::KeyMismatch {
            kid: key.kid.clone().unwrap_or_else(|| "-".into()),
            key: key.kind.describe(),
            alg,
        },
        _ => JwtRejection::BadSignature,
    })?;
    Ok(alg)
}

/// A check of registered claims against what is expected of them.
type ClaimCheck = fn(&Map<String, Value>, &Expectations<'_>) -> Result<(), JwtRejection>;

/// The registered claims' checks, in the order they are made, each under the check a report
/// names.
const CLAIM_CHECKS: [(Check, ClaimCheck); 6] = [
    (Check::Issuer, check_issuer),
    (Check::Audience, check_audience),
    (Check::Subject, check_subject),
    (Check::Expiry, check_expiry),
    (Check::NotBefore, check_not_before),
    (Check::IssuedAt, check_issued_at),
];

/// Checks the registered claims; returns the `exp` it checked.
fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<i64, JwtRejection> {
    for (_, check) in CLAIM_CHECKS {
        check(claims, expect)?;
    }
    time(claims, "exp")?.ok_or(JwtRejection::MissingClaim("exp"))
}

/// Every check of the registered claims with its outcome, rather than the first failure: for a
/// report of all that is wrong with a token.
pub fn claim_checks(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Vec<(Check, Result<(), JwtRejection>)> {
    CLAIM_CHECKS
        .iter()
        .map(|(which, check)| (*which, check(claims, expect)))
        .collect()
}

/// A time claim in whole seconds. Fractions, exponents, strings and out-of-range numbers are
/// refused rather than rounded: two parsers reading one time two ways is how a token outlives
/// its expiry somewhere.
fn time(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtRejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or(JwtRejection::NotAnInteger(name)),
    }
}

fn check_issuer(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<(), JwtRejection> {
    match claims.get("iss").and_then(Value::as_str) {
        None => Err(JwtRejection::MissingClaim("iss")),
        Some(iss) if iss != expect.issuer => Err(JwtRejection::WrongIssuer(iss.to_owned())),
        Some(_) => Ok(()),
    }
}

fn check_audience(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<(), JwtRejection> {
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => expect.audiences.contains(aud),
        Some(Value::Array(auds)) => auds
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| expect.audiences.iter().any(|a| a == aud)),
        _ => return Err(JwtRejection::MissingClaim("aud")),
    };
    if audience_ok {
        Ok(())
    } else {
        Err(JwtRejection::WrongAudience)
    }
}

fn check_subject(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<(), JwtRejection> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(JwtRejection::MissingClaim("sub"))?;
    if expect.subject.is_some_and(|s| s != subject) {
        return Err(JwtRejection::WrongSubject);
    }
    Ok(())
}

fn check_expiry(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<(), JwtRejection> {
    let exp = time(claims, "exp")?.ok_or(JwtRejection::MissingClaim("exp"))?;
    if expect.now >= exp + LEEWAY_SECONDS {
        return Err(JwtRejection::Expired);
    }
    Ok(())
}

fn check_not_before(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<(), JwtRejection> {
    if time(claims, "nbf")?.is_some_and(|nbf| nbf > expect.now + LEEWAY_SECONDS) {
        return Err(JwtRejection::NotYetValid);
    }
    Ok(())
}

/// When it was issued, and how long it lives from then and from now.
fn check_issued_at(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<(), JwtRejection> {
    let now = expect.now;
    let iat = time(claims, "iat")?;
    // Without a readable `exp` (the expiry check's failure) there is no lifetime to bound.
    if let (Some(max_lifetime), Ok(Some(exp))) = (expect.max_lifetime, time(claims, "exp")) {
        // `exp - iat` is read on the issuer's own clock, so only `exp - now` gets the leeway.
        let lifetime_from_iat = iat.is_some_and(|iat| exp.saturating_sub(iat) > max_lifetime);
        if lifetime_from_iat || exp.saturating_sub(now) > max_lifetime + LEEWAY_SECONDS {
            return Err(JwtRejection::TooLongLived(max_lifetime));
        }
    }
    if iat.is_some_and(|iat| iat > now + LEEWAY_SECONDS) {
        return Err(JwtRejection::IssuedInFuture);
    }
    if let Some(max_age) = expect.max_age {
        let iat = iat.ok_or(JwtRejection::MissingClaim("iat"))?;
        if now - iat > max_age + LEEWAY_SECONDS {
            return Err(JwtRejection::TooOld(max_age));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn expect<'a>(audiences: &'a [String]) -> Expectations<'a> {
        Expectations {
            issuer: "https://idp.example",
            audiences,
            algorithms: &[JwsAlgorithm::ES256],
            max_age: Some(300),
            max_lifetime: Some(600),
            subject: None,
            types: &["jwt"],
            now: 10_000,
        }
    }

    #[test]
    fn registered_claims_are_checked_with_leeway() {
        let aud = vec!["https://as.example".to_owned()];
        let good = json_claims(10_000, 10_300, 9_990);
        assert_eq!(check_claims(&good, &expect(&aud)), Ok(10_300));
        let mut c = good.clone();
        c.insert("iss".into(), "https://evil.example".into());
        assert!(matches!(
            check_claims(&c, &expect(&aud)),
            Err(JwtRejection::WrongIssuer(_))
        ));
        let mut c = good.clone();
        c.insert("aud".into(), serde_json::json!(["a", "b"]));
        assert_eq!(
            check_claims(&c, &expect(&aud)),
            Err(JwtRejection::WrongAudience)
        );
        let c = json_claims(10_000, 10_000 - LEEWAY_SECONDS, 9_000);
        assert_eq!(check_claims(&c, &expect(&aud)), Err(JwtRejection::Expired));
        let c = json_claims(10_000, 10_100, 9_600);
        assert_eq!(
            check_claims(&c, &expect(&aud)),
            Err(JwtRejection::TooOld(300))
        );
        let mut c = good.clone();
        c.insert("nbf".into(), 10_100.into());
        assert_eq!(
            check_claims(&c, &expect(&aud)),
            Err(JwtRejection::NotYetValid)
        );
        for (claim, value) in [
            ("exp", serde_json::json!(10_300.5)),
            ("exp", serde_json::json!(1.03e4)),
            ("exp", serde_json::json!("10300")),
            ("nbf", serde_json::json!(9_000.0)),
            ("iat", serde_json::json!(true)),
            ("iat", serde_json::json!(u64::MAX)),
        ] {
            let mut c = good.clone();
            c.insert(claim.into(), value);
            assert!(
                matches!(
                    check_claims(&c, &expect(&aud)),
                    Err(JwtRejection::NotAnInteger(name)) if name == claim
                ),
                "{claim}"
            );
        }
        let mut c = good.clone();
        c.remove("sub");
        assert_eq!(
            check_claims(&c, &expect(&aud)),
            Err(JwtRejection::MissingClaim("sub"))
        );
    }

    #[test]
    fn assertions_live_at_most_max_lifetime_by_iat_and_by_now() {
        let aud = vec!["https://as.example".to_owned()];
        let expect = expect(&aud);
        assert_eq!(
            check_claims(&json_claims(10_000, 10_600, 10_000), &expect),
            Ok(10_600)
        );
        for (exp, iat) in [(10_601, 10_000), (10_500, 9_800), (10_630, 10_029)] {
            assert_eq!(
                check_claims(&json_claims(10_000, exp, iat), &expect),
                Err(JwtRejection::TooLongLived(600)),
                "exp {exp} iat {iat}"
            );
        }
        // Without iat the far exp alone is refused, before iat is asked for.
        let without_iat = |exp: i64| {
            let mut c = json_claims(10_000, exp, 0);
            c.remove("iat");
            c
        };
        assert_eq!(
            check_claims(&without_iat(20_000), &expect),
            Err(JwtRejection::TooLongLived(600))
        );
        assert_eq!(
            check_claims(&without_iat(10_600), &expect),
            Err(JwtRejection::MissingClaim("iat"))
        );
        // By the clock, the issuer's may be ahead by the leeway.
        let iat_optional = Expectations {
            max_age: None,
            ..expect
        };
        assert_eq!(
            check_claims(&without_iat(10_630), &iat_optional),
            Ok(10_630)
        );
        assert_eq!(
            check_claims(&without_iat(10_631), &iat_optional),
            Err(JwtRejection::TooLongLived(600))
        );
        let unbounded = Expectations {
            max_lifetime: None,
            ..iat_optional
        };
        assert_eq!(check_claims(&without_iat(20_000), &unbounded), Ok(20_000));
    }

    fn json_claims(_now: i64, exp: i64, iat: i64) -> Map<String, Value> {
        claims(serde_json::json!({
            "iss": "https://idp.example", "aud": "https://as.example", "sub": "alice",
            "exp": exp, "iat": iat,
        }))
    }

    #[test]
    fn symmetric_and_encryption_keys_are_dropped_from_a_jwks() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "use": "enc", "kid": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        assert!(KeySet::from_jwks(&jwks).is_err());
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ]});
        let keys = KeySet::from_jwks(&jwks).unwrap();
        assert!(keys.has_kid("sig"));
        assert!(matches!(
            keys.select(Some("sig"), JwsAlgorithm::RS256),
            Err(JwtRejection::KeyMismatch { .. })
        ));
        assert!(matches!(
            keys.select(Some("other"), JwsAlgorithm::ES256),
            Err(JwtRejection::UnknownKey(_))
        ));
    }

    #[test]
    fn none_and_unlisted_algorithms_are_refused_before_any_key_is_used() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://idp.example"}"#);
        let token = format!("{header}.{body}.");
        let aud = vec![];
        let parsed = UnverifiedJwt::parse(&token).unwrap();
        assert_eq!(
            verify(&token, parsed, &KeySet::default(), &expect(&aud)).unwrap_err(),
            JwtRejection::Unsigned
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let token = format!("{header}.{body}.c2ln");
        let parsed = UnverifiedJwt::parse(&token).unwrap();
        assert_eq!(
            verify(&token, parsed, &KeySet::default(), &expect(&aud)).unwrap_err(),
            JwtRejection::AlgorithmNotAccepted("HS256".into())
        );
    }
}
