//! Checking a person's user name and password, shared by the login page and the password grant.

use std::net::IpAddr;

use crate::Error;
use crate::audit::{self, Actor, AuditEvent};
use crate::store::Store;
use crate::throttle::{Admission, LoginThrottle};
use crate::user::{self, User};

/// A password hash of nothing, checked for unknown users and locked attempts so that the time an
/// answer takes does not reveal whether the user exists or is locked.
const DUMMY_HASH: &str = "$argon2id$v=19$m=9216,t=4,p=1$c29tZXNhbHRzb21lc2FsdA$0Y1CqOIJmK1Zp9lCwVqkqRQm2WQ2xdk0b3TQ5aQwHkY";

/// The user, when the name and password are right and the user may log in. `None` says nothing
/// more: not whether the user exists, is disabled or locked, or the attempt was throttled.
///
/// Every check is an audit event: `sign_in.succeeded`, `sign_in.failed`, or
/// `sign_in.locked_out` when the throttle refused it; `client_id` is the application signed in
/// to (the password grant's client), if known.
pub async fn check_password(
    store: &dyn Store,
    throttle: &LoginThrottle,
    user_name: &str,
    password: &str,
    client_id: Option<&str>,
    address: Option<IpAddr>,
    now: i64,
) -> Result<Option<User>, Error> {
    let verdict = loop {
        match throttle.attempt(user_name, address, now) {
            Admission::Go(verdict) => break verdict,
            Admission::Wait => tokio::time::sleep(ADMISSION_RETRY).await,
        }
    };
    // Ends the attempt however this future ends: an abandoned request counts as a failure
    // rather than holding its place in flight for ever.
    let mut attempt = Attempt {
        throttle,
        user_name,
        address,
        now,
        succeeded: false,
    };
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
    let outcome = match found {
        Some(user) if matches && user.can_authenticate() => {
            attempt.succeeded = true;
            Some(user)
        }
        _ => None,
    };
    let kind = match (&outcome, verdict.locked) {
        (Some(_), _) => "sign_in.succeeded",
        (None, true) => "sign_in.locked_out",
        (None, false) => "sign_in.failed",
    };
    // The user name as given: for a failure, what was tried is the point.
    let actor = Actor::at_request(user_name, client_id);
    audit::record(store, now, &actor, AuditEvent::new(kind, user_name)).await?;
    Ok(outcome)
}

/// How long an attempt that must wait for others of its pair waits before asking again.
const ADMISSION_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    user_name: &'a str,
    address: Option<IpAddr>,
    now: i64,
    succeeded: bool,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.throttle
            .finish(self.user_name, self.address, self.now, self.succeeded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_with_the_written_parameters() {
        // A malformed dummy would be rejected at once, and other parameters would take another
        // time than the hashes of real users: either way the timing would tell.
        let dummy = argon2::PasswordHash::new(DUMMY_HASH).unwrap();
        let params = argon2::Params::try_from(&dummy).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (
                user::HASH_PARAMS.m_cost(),
                user::HASH_PARAMS.t_cost(),
                user::HASH_PARAMS.p_cost()
            )
        );
    }
}
