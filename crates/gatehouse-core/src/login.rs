//! Checking a person's user name and password, shared by the login page and the password grant.

use std::net::IpAddr;

use crate::Error;
use crate::store::UserStore;
use crate::throttle::{LoginThrottle, Verdict};
use crate::user::{self, User};

/// Why a login failed. Neither says whether the user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong user name or password, or a user who may not log in.
    Rejected,
    /// Too many recent failures: try again later.
    Throttled,
}

/// A password hash of nothing, checked for unknown users so that the time an answer takes does
/// not reveal whether the user exists.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Y1CqOIJmK1Zp9lCwVqkqRQm2WQ2xdk0b3TQ5aQwHkY";

pub async fn check_password(
    store: &dyn UserStore,
    throttle: &LoginThrottle,
    user_name: &str,
    password: &str,
    address: Option<IpAddr>,
    now: i64,
) -> Result<Result<User, LoginFailure>, Error> {
    match throttle.check(user_name, address, now) {
        Verdict::Locked => return Ok(Err(LoginFailure::Throttled)),
        Verdict::Proceed(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
        Verdict::Proceed(_) => {}
    }
    let found = store.find_user_by_name(user_name).await?;
    let stored = found
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_owned());
    let matches = user::verify_password(password.to_owned(), stored).await?;
    match found {
        Some(user) if matches && user.can_authenticate() => {
            throttle.record_success(user_name, address);
            Ok(Ok(user))
        }
        _ => {
            throttle.record_failure(user_name, address, now);
            Ok(Err(LoginFailure::Rejected))
        }
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
