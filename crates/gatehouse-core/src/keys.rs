//! Signing keys: generation, sealing at rest, the staged rotation schedule and the JWKS.
//!
//! Rotation is staged so that no relying party ever meets an unknown `kid`: a new key is
//! published at once but signs only from its `activates_at` (by default one JWKS cache lifetime
//! later). A key that has been superseded stays published until every token it could have signed
//! has expired. All of this is derived from the stored timestamps, so every instance that shares
//! a database publishes and signs identically.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::Error;
use crate::secret::{self, Sealer};
use crate::store::StoredSigningKey;

/// The JWS algorithms Gatehouse signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SigningAlgorithm {
    /// ECDSA P-256 with SHA-256: the default, fast to sign and small.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys): for relying parties that know nothing else.
    /// Signing is about 30 times slower than ES256.
    #[serde(rename = "RS256")]
    Rs256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "ES256" => Ok(SigningAlgorithm::Es256),
            "RS256" => Ok(SigningAlgorithm::Rs256),
            "EdDSA" => Ok(SigningAlgorithm::EdDsa),
            other => Err(Error::validation(format!(
                "unsupported signing algorithm {other:?} (expected ES256, RS256 or EdDSA)"
            ))),
        }
    }
}

enum PrivateKey {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A parsed signing key, held in memory so that signing never re-parses key material.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pub activates_at: i64,
    private: PrivateKey,
    public_key: Vec<u8>,
    jwk: serde_json::Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key pair and its sealed, storable form.
    pub fn generate(
        alg: SigningAlgorithm,
        now: i64,
        activates_at: i64,
        sealer: &Sealer,
    ) -> Result<(StoredSigningKey, SigningKey), Error> {
        let crypto =
            |e: aws_lc_rs::error::Unspecified| Error::Internal(format!("key generation: {e}"));
        let pkcs8: Vec<u8> = match alg {
            SigningAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(crypto)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            SigningAlgorithm::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(crypto)?
                .as_der()
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
        };
        let kid = secret::generate()[..16].to_owned();
        let key = SigningKey::from_pkcs8(kid.clone(), alg, activates_at, &pkcs8)?;
        let stored = StoredSigningKey {
            private_key_sealed: sealer.seal(&kid, &pkcs8),
            kid,
            alg: alg.as_str().to_owned(),
            public_jwk: key.jwk.to_string(),
            created_at: now,
            activates_at,
        };
        Ok((stored, key))
    }

    /// Opens a stored key with the master key's sealer.
    pub fn load(stored: &StoredSigningKey, sealer: &Sealer) -> Result<SigningKey, Error> {
        let alg = stored.alg.parse()?;
        let pkcs8 = sealer.open(&stored.kid, &stored.private_key_sealed)?;
        SigningKey::from_pkcs8(stored.kid.clone(), alg, stored.activates_at, &pkcs8)
    }

    fn from_pkcs8(
        kid: String,
        alg: SigningAlgorithm,
        activates_at: i64,
        pkcs8: &[u8],
    ) -> Result<SigningKey, Error> {
        let rejected =
            |e: aws_lc_rs::error::KeyRejected| Error::Internal(format!("bad key {kid}: {e}"));
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (private, public_key, jwk) = match alg {
            SigningAlgorithm::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(rejected)?;
                let point = pair.public_key().as_ref().to_vec();
                // An uncompressed P-256 point is 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
                (PrivateKey::Es256(pair), point, jwk)
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                let public = pair.public_key().as_ref().to_vec();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&public)});
                (PrivateKey::EdDsa(pair), public, jwk)
            }
            SigningAlgorithm::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = json!({"kty": "RSA", "n": b64(&components.n), "e": b64(&components.e)});
                let public = pair.public_key().as_ref().to_vec();
                (PrivateKey::Rs256(pair), public, jwk)
            }
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg.as_str());
        jwk["use"] = json!("sig");
        Ok(SigningKey {
            kid,
            alg,
            activates_at,
            private,
            public_key,
            jwk,
        })
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |_| Error::Internal("signing failed".into());
        match &self.private {
            PrivateKey::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(failed),
            PrivateKey::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            PrivateKey::Rs256(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                Ok(signature)
            }
        }
    }

    /// Signs `claims` as a compact JWS whose header names this key and the type `typ`.
    pub fn sign_jws<T: serde::Serialize>(&self, typ: &str, claims: &T) -> Result<String, Error> {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
            typ: &'a str,
        }
        let header = Header {
            alg: self.alg.as_str(),
            kid: &self.kid,
            typ,
        };
        // Every token is signed on the token endpoint's path: each part is written once into a
        // buffer sized for it, not grown step by step.
        let mut json = Vec::with_capacity(512);
        serde_json::to_writer(&mut json, &header).map_err(|e| Error::Internal(e.to_string()))?;
        let header_end = json.len();
        serde_json::to_writer(&mut json, claims).map_err(|e| Error::Internal(e.to_string()))?;
        let mut jws = String::with_capacity(json.len() * 4 / 3 + 350);
        URL_SAFE_NO_PAD.encode_string(&json[..header_end], &mut jws);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(&json[header_end..], &mut jws);
        let signature = self.sign(jws.as_bytes())?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn signature::VerificationAlgorithm = match self.alg {
            SigningAlgorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            SigningAlgorithm::EdDsa => &signature::ED25519,
            SigningAlgorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(message, signature)
            .is_ok()
    }

    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }
}

/// Where a key stands in its algorithm's rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, signing from its activation on.
    Next,
    /// The key its algorithm signs with.
    Signing,
    /// Replaced by a newer key, still published while its tokens may be valid.
    Superseded,
    /// Replaced long enough ago that no token it signed is valid: neither published nor
    /// verifying.
    Unpublished,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Signing => "signing",
            KeyState::Superseded => "superseded",
            KeyState::Unpublished => "unpublished",
        }
    }
}

/// The set of keys one instance knows, ordered by activation.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Arc<SigningKey>>,
    /// The longest lifetime of a token these keys sign, which bounds how long a superseded key
    /// must stay published.
    max_token_lifetime: i64,
}

impl KeyRing {
    pub fn new(mut keys: Vec<SigningKey>, max_token_lifetime: i64) -> Self {
        keys.sort_by_key(|k| k.activates_at);
        KeyRing {
            keys: keys.into_iter().map(Arc::new).collect(),
            max_token_lifetime,
        }
    }

    /// The key that signs with `alg` at `now`: the most recently activated one of that
    /// algorithm. Each algorithm rotates on its own line.
    pub fn signing_key(&self, alg: SigningAlgorithm, now: i64) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.alg == alg && k.activates_at <= now)
    }

    pub fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The key that may verify a token naming `kid` at `now`: only a published one, so a token
    /// is never accepted on a key relying parties can no longer see.
    pub fn verifying_key(&self, kid: &str, now: i64) -> Option<&Arc<SigningKey>> {
        let index = self.keys.iter().position(|k| k.kid == kid)?;
        self.is_published(index, now).then(|| &self.keys[index])
    }

    /// Whether the key at `index` is published at `now`: not superseded, or superseded so
    /// recently that its tokens may still be valid. A key is superseded when the next key of
    /// its algorithm activates.
    fn is_published(&self, index: usize, now: i64) -> bool {
        let key = &self.keys[index];
        let superseded_at = self.keys[index + 1..]
            .iter()
            .find(|later| later.alg == key.alg)
            .map(|later| later.activates_at)
            .filter(|at| *at <= now);
        superseded_at.is_none_or(|at| at + self.max_token_lifetime >= now)
    }

    /// The keys to publish at `now`.
    pub fn published(&self, now: i64) -> Vec<&Arc<SigningKey>> {
        (0..self.keys.len())
            .filter(|index| self.is_published(*index, now))
            .map(|index| &self.keys[index])
            .collect()
    }

    /// Where the key `kid` stands at `now`; `None` when this ring does not hold it.
    pub fn state(&self, kid: &str, now: i64) -> Option<KeyState> {
        let index = self.keys.iter().position(|k| k.kid == kid)?;
        let key = &self.keys[index];
        Some(if key.activates_at > now {
            KeyState::Next
        } else if self.signing_key(key.alg, now).is_some_and(|k| k.kid == kid) {
            KeyState::Signing
        } else if self.is_published(index, now) {
            KeyState::Superseded
        } else {
            KeyState::Unpublished
        })
    }

    pub fn jwks(&self, now: i64) -> serde_json::Value {
        let keys: Vec<_> = self
            .published(now)
            .into_iter()
            .map(|k| k.jwk().clone())
            .collect();
        json!({ "keys": keys })
    }

    /// When the rotation every `interval` seconds is due for `alg`: `interval` after the newest
    /// key of that algorithm (signing, or published to sign next) activates. `None` without a
    /// key of that algorithm: the server's start creates the first one.
    pub fn rotation_due(&self, alg: SigningAlgorithm, interval: i64) -> Option<i64> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.alg == alg)
            .map(|k| k.activates_at.saturating_add(interval))
    }

    /// Every key, oldest activation first.
    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }
}

/// A key ring that can be swapped while requests read it. Readers clone the inner `Arc` and
/// release the lock at once, so the lock is never held across an await.
#[derive(Debug, Clone, Default)]
pub struct SharedKeyRing(Arc<KeyRingSlot>);

#[derive(Debug, Default)]
struct KeyRingSlot {
    /// The ring, and the ticket of the load it came from.
    current: RwLock<(u64, Arc<KeyRing>)>,
    tickets: AtomicU64,
}

/// Taken before a load reads the stored keys: loads overlap (the periodic reload, a rotation,
/// another instance's notice), and the one that read last must win, whichever ends last.
#[derive(Debug, Clone, Copy)]
pub struct LoadTicket(u64);

impl SharedKeyRing {
    pub fn get(&self) -> Arc<KeyRing> {
        self.0
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    pub fn ticket(&self) -> LoadTicket {
        LoadTicket(self.0.tickets.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Installs `ring`, unless a load that began later has installed its own already: a reload
    /// that read the keys before a retirement must not bring the retired key back.
    pub fn replace(&self, ticket: LoadTicket, ring: KeyRing) {
        let mut current = self.0.current.write().unwrap_or_else(|p| p.into_inner());
        if ticket.0 > current.0 {
            *current = (ticket.0, Arc::new(ring));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::MasterKey;

    fn key(alg: SigningAlgorithm, activates_at: i64) -> SigningKey {
        let sealer = MasterKey::generate().sealer();
        SigningKey::generate(alg, 0, activates_at, &sealer)
            .unwrap()
            .1
    }

    #[test]
    fn a_load_that_read_the_keys_earlier_never_replaces_a_later_one() {
        let ring = |count: usize| {
            let keys = (0..count)
                .map(|_| key(SigningAlgorithm::Es256, 0))
                .collect();
            KeyRing::new(keys, 3600)
        };
        let shared = SharedKeyRing::default();
        let before_retirement = shared.ticket();
        let after_retirement = shared.ticket();
        shared.replace(after_retirement, ring(1));
        // The periodic reload read both keys before the retirement and ends after it.
        shared.replace(before_retirement, ring(2));
        assert_eq!(shared.get().keys().len(), 1);
        shared.replace(shared.ticket(), ring(3));
        assert_eq!(shared.get().keys().len(), 3);
    }

    #[test]
    fn every_algorithm_signs_and_verifies_and_survives_sealing() {
        let sealer = MasterKey::generate().sealer();
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Rs256,
        ] {
            let (stored, fresh) = SigningKey::generate(alg, 0, 0, &sealer).unwrap();
            let loaded = SigningKey::load(&stored, &sealer).unwrap();
            let signature = loaded.sign(b"message").unwrap();
            assert!(fresh.verify(b"message", &signature), "{alg}");
            assert!(!fresh.verify(b"messagf", &signature), "{alg}");
            assert_eq!(loaded.jwk(), fresh.jwk());
        }
    }

    #[test]
    fn rotation_publishes_first_signs_later_and_retires_after_the_longest_token() {
        let ring = KeyRing::new(
            vec![
                key(SigningAlgorithm::Es256, 0),
                key(SigningAlgorithm::Es256, 100),
            ],
            30,
        );
        let (old, new) = (ring.keys[0].kid.clone(), ring.keys[1].kid.clone());
        // Before activation: the old key signs, both are published.
        let es256 = SigningAlgorithm::Es256;
        assert_eq!(ring.signing_key(es256, 50).unwrap().kid, old);
        assert_eq!(ring.published(50).len(), 2);
        // After activation: the new key signs; the old one stays until its tokens expire.
        assert_eq!(ring.signing_key(es256, 100).unwrap().kid, new);
        assert!(ring.signing_key(SigningAlgorithm::Rs256, 100).is_none());
        assert_eq!(ring.published(130).len(), 2);
        let late: Vec<_> = ring.published(131).iter().map(|k| k.kid.clone()).collect();
        assert_eq!(late, vec![new.clone()]);
        // Only published keys verify.
        assert!(ring.verifying_key(&old, 130).is_some());
        assert!(ring.verifying_key(&old, 131).is_none());
        assert!(ring.verifying_key(&new, 131).is_some());
        assert!(ring.verifying_key("unknown", 131).is_none());
        let states = |now| {
            [&old, &new]
                .map(|kid| ring.state(kid, now).unwrap())
                .to_vec()
        };
        assert_eq!(states(50), vec![KeyState::Signing, KeyState::Next]);
        assert_eq!(states(130), vec![KeyState::Superseded, KeyState::Signing]);
        assert_eq!(states(131), vec![KeyState::Unpublished, KeyState::Signing]);
    }
}
