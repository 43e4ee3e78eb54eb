//! Users: the people and service accounts tokens can act for, their roles and their passwords.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::Error;

/// The roles allowed to manage the Application Registry.
pub const REGISTRY_ADMIN_ROLES: [&str; 3] = ["admin", "oauth_admin", "mi_admin"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub active: bool,
    /// Set by an administrator: the user may not log in until it is cleared.
    pub locked_out: bool,
    /// Argon2id PHC string; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    pub managed: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the user may log in and tokens may act for them.
    pub fn can_authenticate(&self) -> bool {
        self.active && !self.locked_out
    }

    pub fn is_registry_admin(&self) -> bool {
        REGISTRY_ADMIN_ROLES.iter().any(|role| self.has_role(role))
    }
}

/// Argon2 costs about 20 ms of CPU and 19 MiB of memory per hash. At most one hash per core
/// runs at a time, so a flood of password attempts queues here instead of exhausting memory or
/// the blocking pool.
fn argon2_permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Hashes a person's password with Argon2id. This is the only slow hash in Gatehouse; it runs on
/// the blocking pool so it never stalls the async workers.
pub async fn hash_password(password: String) -> Result<String, Error> {
    let permit = argon2_permits()
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    // The permit moves into the blocking task, so it is held for as long as the hash runs, even
    // if the request that asked for it goes away.
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let hashed: Result<PasswordHash, _> = Argon2::default().hash_password(password.as_bytes());
        hashed
            .map(|hash| hash.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))?
}

/// Verifies a password against its stored hash on the blocking pool.
pub async fn verify_password(password: String, stored: String) -> Result<bool, Error> {
    let permit = argon2_permits()
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let Ok(parsed) = PasswordHash::new(stored.as_str()) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(|e| Error::Internal(format!("password verification task failed: {e}")))
}

/// The minimum length of a password an administrator sets.
pub const MIN_PASSWORD_LENGTH: usize = 12;

pub fn check_password_policy(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return Err(Error::validation(format!(
            "a password must have at least {MIN_PASSWORD_LENGTH} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_hash_verifies_only_the_right_password() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse battery".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), hash).await.unwrap());
    }
}
