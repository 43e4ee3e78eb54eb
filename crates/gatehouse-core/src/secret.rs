//! Secrets: the only place random credentials are generated, hashed and compared, and where the
//! master key derives the keys that protect data at rest.
//!
//! Client secrets and tokens carry at least 256 bits of entropy, so a keyed fast hash
//! (HMAC-SHA-256 under a key derived from the master key) protects them as well as a slow
//! password hash would, at a fraction of a microsecond instead of tens of milliseconds. Only the
//! passwords of people are hashed slowly (see `user`).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{constant_time, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::Error;

/// Bytes of randomness in every generated secret and token (256 bits).
pub const SECRET_BYTES: usize = 32;

/// Characters of [`generate`]'s output, and of a hash: 32 bytes in unpadded base64.
const ENCODED_LEN: usize = (SECRET_BYTES * 4).div_ceil(3);

/// Returns `SECRET_BYTES` random bytes from the operating system, URL-safe base64 encoded
/// (43 characters).
pub fn generate() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>())
}

/// Hex digits of the issue time that opens an ordered token: milliseconds since the epoch fit
/// in 11 until the year 2527.
const ORDER_DIGITS: usize = 11;

/// A token for the store: its issue time in milliseconds (`ORDER_DIGITS` hex digits), then
/// `SECRET_BYTES` random bytes as [`generate`] gives them.
///
/// Stored under [`SecretHasher::token_key`], which keeps the time in front, tokens issued one
/// after another land side by side in the store's index on that key, as they do in its indexes
/// on issue and expiry time, instead of on a random page each: a commit of many new tokens
/// rewrites a few pages rather than one a token. The time the token shows is its `iat`, which
/// its holder knows and introspection tells anyway.
pub fn generate_ordered(now_millis: i64) -> String {
    use std::fmt::Write;
    let mut token = String::with_capacity(ORDER_DIGITS + ENCODED_LEN);
    // Writing to a String cannot fail.
    let _ = write!(
        token,
        "{:0width$x}",
        now_millis.max(0),
        width = ORDER_DIGITS
    );
    URL_SAFE_NO_PAD.encode_string(random_bytes::<SECRET_BYTES>(), &mut token);
    token
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is not a condition a server can continue from.
    rand::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// Compares two values without leaking, through timing, how much of them matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Standard base64 of the SHA-256 of `text` (for Content-Security-Policy hashes).
pub fn sha256_base64(text: &str) -> String {
    STANDARD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        text.as_bytes(),
    ))
}

/// A string that must never reach a log: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The 256-bit key from which every other server key is derived. It lives outside the
/// database (a key file or an environment variable), so a stolen database alone reveals no
/// signing key and lets no one check guesses of client secrets.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn generate() -> Self {
        MasterKey(random_bytes())
    }

    /// Parses the base64 (standard or URL-safe) form written by [`MasterKey::encode`].
    pub fn decode(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| Error::Internal("the master key is not valid base64".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Internal("the master key must be 32 bytes".into()))?;
        Ok(MasterKey(key))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// A subkey for one purpose, so that no key is ever used for two things.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&key, purpose.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub fn secret_hasher(&self) -> SecretHasher {
        SecretHasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, &self.derive("gatehouse secret hash v1")),
        }
    }

    /// The key of the DPoP nonces (RFC 9449 §8), which are HMACs of a time window: every
    /// instance with this master key issues and accepts the same ones, and none is stored.
    pub fn dpop_nonce_hasher(&self) -> SecretHasher {
        SecretHasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, &self.derive("gatehouse dpop nonce v1")),
        }
    }

    pub fn sealer(&self) -> Sealer {
        let unbound = UnboundKey::new(
            &AES_256_GCM,
            &self.derive("gatehouse at-rest encryption v1"),
        )
        .expect("a 32-byte key is valid for AES-256-GCM");
        Sealer {
            key: LessSafeKey::new(unbound),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Keyed hashing of high-entropy secrets and tokens (HMAC-SHA-256), and their constant-time
/// verification.
#[derive(Clone)]
pub struct SecretHasher {
    key: hmac::Key,
}

impl SecretHasher {
    /// The stored form of a secret or token: base64url of its HMAC.
    pub fn hash(&self, secret: &str) -> String {
        self.hash_after("", secret)
    }

    /// `head` followed by the hash of `secret`, in one allocation.
    fn hash_after(&self, head: &str, secret: &str) -> String {
        let mut out = String::with_capacity(head.len() + ENCODED_LEN);
        out.push_str(head);
        URL_SAFE_NO_PAD.encode_string(hmac::sign(&self.key, secret.as_bytes()), &mut out);
        out
    }

    /// The stored form of a token of the kind that starts with `prefix`: for one made by
    /// [`generate_ordered`], its time followed by its hash, so the store's index keeps it in
    /// issue order; for any other, its hash alone. The hash covers the whole token, time
    /// included, so neither part can be chosen to reach another token's record.
    pub fn token_key(&self, token: &str, prefix: &str) -> String {
        let time = token.strip_prefix(prefix).and_then(issue_time);
        self.hash_after(time.unwrap_or_default(), token)
    }

    /// Compares a presented secret with a stored hash without leaking, through timing, how much
    /// of it matched.
    pub fn verify(&self, secret: &str, stored_hash: &str) -> bool {
        let presented = self.hash(secret);
        constant_time::verify_slices_are_equal(presented.as_bytes(), stored_hash.as_bytes()).is_ok()
    }
}

/// The issue time that opens the body of a token made by [`generate_ordered`]. Tokens made
/// before it existed are [`generate`]'s `ENCODED_LEN` characters and have none.
fn issue_time(body: &str) -> Option<&str> {
    let time = body.get(..ORDER_DIGITS)?;
    (body.len() == ORDER_DIGITS + ENCODED_LEN
        && time
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(time)
}

/// Authenticated encryption of data at rest (private signing keys, outbound credentials and
/// tokens).
pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    /// Encrypts `plaintext`, binding it to `context` (e.g. the key id) so a ciphertext cannot be
    /// moved to another record. Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .expect("AES-GCM sealing of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buffer);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Internal("sealed data is truncated".into()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Error::Internal("sealed data has a bad nonce".into()))?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| {
                Error::Internal(
                    "cannot decrypt data at rest: wrong master key or tampered record".into(),
                )
            })?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_256_bits_and_distinct() {
        let a = generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, generate());
    }

    #[test]
    fn ordered_tokens_sort_by_issue_time_in_token_and_key() {
        let hasher = MasterKey::generate().secret_hasher();
        let earlier = format!("gh_at_{}", generate_ordered(1_795_000_000_123));
        let later = format!("gh_at_{}", generate_ordered(1_795_000_000_124));
        assert_eq!(earlier.len(), "gh_at_".len() + 11 + 43);
        assert!(earlier.starts_with("gh_at_1a1ee565e7b"), "{earlier}");
        let (early_key, late_key) = (
            hasher.token_key(&earlier, "gh_at_"),
            hasher.token_key(&later, "gh_at_"),
        );
        assert!(early_key < late_key);
        assert_eq!(early_key, format!("1a1ee565e7b{}", hasher.hash(&earlier)));
        // Randomness is all after the time.
        let twin = format!("gh_at_{}", generate_ordered(1_795_000_000_123));
        assert_eq!(twin[..17], earlier[..17]);
        assert_ne!(twin, earlier);
    }

    #[test]
    fn tokens_without_an_issue_time_are_keyed_by_their_hash_alone() {
        let hasher = MasterKey::generate().secret_hasher();
        // A token made before ordered ones, or under another prefix, or with a time that is not
        // lowercase hex: its key is the hash of the whole of it.
        let old = format!("gh_at_{}", generate());
        let uppercase = format!("gh_at_1A1EE565E7B{}", generate());
        let other_kind = format!("gh_rt_{}", generate_ordered(1));
        for token in [&old, &uppercase, &other_kind] {
            assert_eq!(hasher.token_key(token, "gh_at_"), hasher.hash(token));
        }
        assert_eq!(hasher.token_key("gh_at_", "gh_at_"), hasher.hash("gh_at_"));
        assert_eq!(
            hasher.token_key("gh_at_é", "gh_at_"),
            hasher.hash("gh_at_é")
        );
    }

    #[test]
    fn hash_verifies_only_the_right_secret_and_depends_on_the_key() {
        let hasher = MasterKey::generate().secret_hasher();
        let stored = hasher.hash("s3cret");
        assert!(hasher.verify("s3cret", &stored));
        assert!(!hasher.verify("s3cret!", &stored));
        assert!(
            !MasterKey::generate()
                .secret_hasher()
                .verify("s3cret", &stored)
        );
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let master = MasterKey::generate();
        let sealed = master.sealer().seal("kid-1", b"private");
        assert_eq!(master.sealer().open("kid-1", &sealed).unwrap(), b"private");
        assert!(master.sealer().open("kid-2", &sealed).is_err());
        assert!(
            MasterKey::generate()
                .sealer()
                .open("kid-1", &sealed)
                .is_err()
        );
    }

    #[test]
    fn master_key_round_trips_through_its_text_form() {
        let master = MasterKey::generate();
        let again = MasterKey::decode(&master.encode()).unwrap();
        assert_eq!(again.encode(), master.encode());
        assert!(MasterKey::decode("short").is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret(***)");
    }
}
