//! The device authorization grant (RFC 8628): a device without a browser (a TV, a CLI on a
//! server) asks for a device code and a short user code, tells its user to enter the code at
//! `/device` on any browser, and polls the token endpoint until the user has answered there.
//!
//! The device code is a secret stored only as its keyed hash; the user code is short enough to
//! type, so it is what an attacker would guess: it is taken from twenty consonants (no vowels,
//! so no words; no digits, so no `0`/`O` or `1`/`I`), eight of them (20⁸ ≈ 2.6·10¹⁰), read
//! without regard to case, dashes or spaces, alive for ten minutes, and only entered by a
//! signed-in user at a rate-limited page (RFC 8628 §5.1).

use crate::audit::{self, Actor, AuditEvent};
use serde::Serialize;

use crate::Error;
use crate::client::{Client, GrantType};
use crate::scope::ScopeSet;
use crate::secret;
use crate::session;
use crate::store::{DeviceAuthorizationRecord, DeviceStatus, Store, StoreError};
use crate::token::TokenService;
use crate::user::User;

/// How long a device authorization waits for its user.
pub const DEVICE_CODE_LIFETIME: i64 = 600;
/// The seconds a device waits between polls at first (RFC 8628 §3.2's default).
pub const POLL_INTERVAL: i64 = 5;
/// What each `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: i64 = 5;
/// Prefix of device codes.
pub const DEVICE_CODE_PREFIX: &str = "gh_dc_";
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LENGTH: usize = 8;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    /// As the user reads it: `BDFH-JKLM`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A fresh random user code, normalised (no separator).
fn generate_user_code() -> String {
    let mut code = String::with_capacity(USER_CODE_LENGTH);
    while code.len() < USER_CODE_LENGTH {
        for byte in secret::random_bytes::<16>() {
            // 240 is the largest multiple of 20 below 256: rejecting the rest keeps every
            // letter equally likely.
            if byte < 240 && code.len() < USER_CODE_LENGTH {
                code.push(USER_CODE_ALPHABET[usize::from(byte % 20)] as char);
            }
        }
    }
    code
}

/// A user code as typed (any case, with dashes or spaces) in the form it is stored, or `None`
/// when it cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid =
        code.len() == USER_CODE_LENGTH && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// A stored user code as the user reads it: two groups of four.
pub fn display_user_code(code: &str) -> String {
    let (first, second) = code.split_at(code.len().min(USER_CODE_LENGTH / 2));
    format!("{first}-{second}")
}

/// Starts a device authorization for an authenticated client (RFC 8628 §3.1-3.2).
pub async fn start(
    store: &dyn Store,
    tokens: &TokenService,
    client: &Client,
    scope: Option<&str>,
    resources: &[String],
    now: i64,
) -> Result<DeviceAuthorization, Error> {
    if !client.allows_grant(GrantType::DeviceCode) {
        return Err(Error::UnauthorizedClient(
            "this client may not use the device authorization grant".into(),
        ));
    }
    let scope = ScopeSet::down_scope(
        scope,
        &client.allowed_scope_set(),
        &client.default_scope_set(),
    )?;
    let audience = tokens.audience_for(resources).await?;
    let device_code = format!("{DEVICE_CODE_PREFIX}{}", secret::generate());
    // A user code still taken by a live or unpurged authorization is drawn again; with 20⁸
    // codes a second collision in a row is all but impossible.
    for _ in 0..3 {
        let user_code = generate_user_code();
        let record = DeviceAuthorizationRecord {
            device_code_hash: tokens.hasher().hash(&device_code),
            user_code: user_code.clone(),
            client_id: client.client_id.clone(),
            scope: scope.to_string(),
            audience: audience.clone(),
            expires_at: now + DEVICE_CODE_LIFETIME,
            interval: POLL_INTERVAL,
            last_polled_at: None,
            status: DeviceStatus::Pending,
            user_id: None,
            auth_time: None,
        };
        match store.insert_device_authorization(&record).await {
            Ok(()) => {
                let verification_uri = format!("{}/device", tokens.issuer());
                let shown = display_user_code(&user_code);
                return Ok(DeviceAuthorization {
                    device_code,
                    verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                    verification_uri,
                    user_code: shown,
                    expires_in: DEVICE_CODE_LIFETIME,
                    interval: POLL_INTERVAL,
                });
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(Error::Internal(
        "no free user code after three draws".into(),
    ))
}

/// The pending authorization a typed user code names, if any.
pub async fn pending(
    store: &dyn Store,
    typed: &str,
    now: i64,
) -> Result<Option<DeviceAuthorizationRecord>, Error> {
    let Some(code) = normalize_user_code(typed) else {
        return Ok(None);
    };
    Ok(store.find_pending_device_authorization(&code, now).await?)
}

/// Records a signed-in user's answer to a pending authorization, with its audit event
/// (`consent.given` or `consent.refused`, for the device's client) in the same transaction;
/// `false` when it is no longer pending (answered in another tab, or expired).
pub async fn answer(
    store: &dyn Store,
    user_code: &str,
    user: &User,
    auth_time: i64,
    allow: bool,
    now: i64,
) -> Result<bool, Error> {
    let (status, kind) = if allow {
        (DeviceStatus::Approved, "consent.given")
    } else {
        (DeviceStatus::Denied, "consent.refused")
    };
    let transaction = store.begin().await?;
    let Some(pending) = transaction
        .find_pending_device_authorization(user_code, now)
        .await?
    else {
        return Ok(false);
    };
    if !transaction
        .decide_device_authorization(user_code, status, &user.id, auth_time, now)
        .await?
    {
        return Ok(false);
    }
    // Remembered as a browser's consent is, so the account page lists it and withdrawing it
    // revokes the device's tokens (and back-channel logout tells the application).
    if allow {
        let scope = ScopeSet::parse(&pending.scope)?;
        session::widen_consent(&*transaction, &user.id, &pending.client_id, &scope, now).await?;
    }
    let event = AuditEvent::new(kind, &pending.client_id)
        .with("scope", pending.scope.as_str())
        .with("device", true);
    let actor = Actor::at_request(&user.user_name, Some(&pending.client_id));
    let record = audit::write(&*transaction, now, &actor, event).await?;
    transaction.commit().await?;
    audit::log(&record);
    Ok(true)
}

/// What a device's poll gets (RFC 8628 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// The user has not answered yet; the device keeps polling at `interval`.
    Pending {
        interval: i64,
    },
    /// The device polled sooner than its interval, which grows.
    SlowDown {
        interval: i64,
    },
    /// The user allowed it: tokens, once.
    Approved,
    Denied,
    Expired,
    /// Tokens were issued for it already.
    Redeemed,
}

impl Poll {
    /// The answer to a poll at `now` of `record`.
    pub fn of(record: &DeviceAuthorizationRecord, now: i64) -> Poll {
        if now >= record.expires_at {
            return Poll::Expired;
        }
        match record.status {
            DeviceStatus::Approved => Poll::Approved,
            DeviceStatus::Denied => Poll::Denied,
            DeviceStatus::Redeemed => Poll::Redeemed,
            DeviceStatus::Pending => match record.last_polled_at {
                Some(last) if now - last < record.interval => Poll::SlowDown {
                    interval: record.interval + SLOW_DOWN_STEP,
                },
                _ => Poll::Pending {
                    interval: record.interval,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: DeviceStatus, last_polled_at: Option<i64>) -> DeviceAuthorizationRecord {
        DeviceAuthorizationRecord {
            device_code_hash: "h".into(),
            user_code: "BCDFGHJK".into(),
            client_id: "tv".into(),
            scope: "openid".into(),
            audience: vec![],
            expires_at: 1_600,
            interval: 5,
            last_polled_at,
            status,
            user_id: None,
            auth_time: None,
        }
    }

    #[test]
    fn user_codes_are_eight_unambiguous_letters_read_in_any_case() {
        for _ in 0..200 {
            let code = generate_user_code();
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
            assert!(
                !code.contains(['A', 'E', 'I', 'O', 'U', 'Y', '0', '1']),
                "{code}"
            );
        }
        assert_eq!(display_user_code("BCDFGHJK"), "BCDF-GHJK");
        for typed in ["BCDF-GHJK", "bcdf-ghjk", " bcdf ghjk", "BcDfGhJk"] {
            assert_eq!(
                normalize_user_code(typed).as_deref(),
                Some("BCDFGHJK"),
                "{typed}"
            );
        }
        for typed in [
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ACDF-GHJK",
            "BCDF-GHJ1",
            "BCDF_GHJK",
            "",
        ] {
            assert_eq!(normalize_user_code(typed), None, "{typed}");
        }
    }

    #[test]
    fn polls_wait_for_the_user_and_slow_down_when_too_fast() {
        let pending = |last| Poll::of(&record(DeviceStatus::Pending, last), 1_000);
        assert_eq!(pending(None), Poll::Pending { interval: 5 });
        assert_eq!(pending(Some(995)), Poll::Pending { interval: 5 });
        assert_eq!(pending(Some(996)), Poll::SlowDown { interval: 10 });
        let answered = |status| Poll::of(&record(status, Some(999)), 1_000);
        assert_eq!(answered(DeviceStatus::Approved), Poll::Approved);
        assert_eq!(answered(DeviceStatus::Denied), Poll::Denied);
        assert_eq!(answered(DeviceStatus::Redeemed), Poll::Redeemed);
        assert_eq!(
            Poll::of(&record(DeviceStatus::Approved, None), 1_600),
            Poll::Expired
        );
    }
}
