//! Checking a person's user name and password, shared by the login page and the password grant.

use std::net::IpAddr;

use crate::Error;
use crate::store::UserStore;
use crate::throttle::LoginThrottle;
use crate::user::{self, User};

/// A password hash of nothing, checked for unknown users and locked attempts so that the time an
/// answer takes does not reveal whether the user exists or is locked.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Y1CqOIJmK1Zp9lCwVqkqRQm2WQ2xdk0b3TQ5aQwHkY";

/// The user, when the name and password are right and the user may log in. `None` says nothing
/// more: not whether the user exists, is disabled or locked, or the attempt was throttled.
pub async fn check_password(
    store: &dyn UserStore,
    throttle: &LoginThrottle,
    user_name: &str,
    password: &str,
    address: Option<IpAddr>,
    now: i64,
) -> Result<Option<User>, Error> {
    let verdict = throttle.attempt(user_name, address, now);
    if !verdict.delay.is_zero() {
        tokio::time::sleep(verdict.delay).await;
    }
    let found = if verdict.locked {
        tracing::warn!(
            target: "security",
            client_address = ?address,
            "a login attempt for a user locked at this address was refused"
        );
        None
    } else {
        store.find_user_by_name(user_name).await?
    };
    let stored = found
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_owned());
    let matches = user::verify_password(password.to_owned(), stored).await?;
    match found {
        Some(user) if matches && user.can_authenticate() => {
            throttle.record_success(user_name, address);
            Ok(Some(user))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        // A malformed dummy would be rejected at once, and the timing would tell.
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
