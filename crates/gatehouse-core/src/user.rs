//! Users: the people and service accounts tokens can act for, their roles and their passwords.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::Error;

/// The roles allowed to manage the Application Registry.
pub const REGISTRY_ADMIN_ROLES: [&str; 3] = [ADMIN_ROLE, OAUTH_ADMIN_ROLE, MI_ADMIN_ROLE];

/// The administrator: may do everything, and is the only one who makes administrators.
pub const ADMIN_ROLE: &str = "admin";
/// Manages applications, users, scopes, scope rules, gateway routes and JWT providers.
pub const OAUTH_ADMIN_ROLE: &str = "oauth_admin";
/// Manages outbound OAuth (providers, profiles, connection aliases) and tables.
pub const MI_ADMIN_ROLE: &str = "mi_admin";

/// What a registry role allows. The one map from roles to what they may do: every admin
/// endpoint asks [`User::may`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read every registry record (secrets are never shown).
    ReadRegistry,
    ManageApplications,
    /// Users who hold no registry role.
    ManageUsers,
    /// Scopes, REST API auth scope rules and gateway routes.
    ManageAccessRules,
    ManageJwtProviders,
    /// Retire a signing key, which invalidates every token it signed.
    ManageSigningKeys,
    ManageOutbound,
    ManageTables,
    /// Grant or remove a registry role, change or delete a user who holds one (their password
    /// above all), and manage an application that runs as one: each of these hands over what
    /// that user may do.
    ManageAdministrators,
    /// Read the audit trail: who changed what, who signed in from where. It tells how every
    /// administrator works, so only `admin` may.
    ReadAudit,
}

impl Permission {
    /// What the permission is for, as error messages name it.
    pub fn description(self) -> &'static str {
        match self {
            Permission::ReadRegistry => "reading the registry",
            Permission::ManageApplications => "managing applications",
            Permission::ManageUsers => "managing users",
            Permission::ManageAccessRules => "managing scopes, scope rules and routes",
            Permission::ManageJwtProviders => "managing JWT providers",
            Permission::ManageSigningKeys => "retiring a signing key",
            Permission::ManageOutbound => "managing outbound OAuth",
            Permission::ManageTables => "managing tables",
            Permission::ReadAudit => "reading the audit trail",
            Permission::ManageAdministrators => {
                "granting or removing a registry role, changing a user who holds one, or \
                 managing an application that runs as one"
            }
        }
    }
}

/// Whether `role` allows `permission`.
pub fn role_may(role: &str, permission: Permission) -> bool {
    use Permission as P;
    match role {
        ADMIN_ROLE => true,
        OAUTH_ADMIN_ROLE => matches!(
            permission,
            P::ReadRegistry
                | P::ManageApplications
                | P::ManageUsers
                | P::ManageAccessRules
                | P::ManageJwtProviders
                | P::ManageSigningKeys
        ),
        MI_ADMIN_ROLE => matches!(
            permission,
            P::ReadRegistry | P::ManageOutbound | P::ManageTables
        ),
        _ => false,
    }
}

/// Serialised for the audit trail's reports of what changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// Raised by every password change, lock and deactivation; JWT access tokens carry the
    /// value they were issued under, and one issued under an older value is no longer valid.
    pub credential_epoch: i64,
    /// What the declarative file said last time about the fields it sets only when it changes
    /// them (kept by `manifest`). Not audited: it holds a keyed hash of the file's password.
    #[serde(skip)]
    pub applied: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    /// An active user who may sign in, for unit tests: `{user_name}-id` with these roles.
    #[cfg(test)]
    pub fn for_tests(user_name: &str, roles: &[&str]) -> User {
        User {
            id: format!("{user_name}-id"),
            user_name: user_name.into(),
            display_name: user_name.into(),
            given_name: None,
            family_name: None,
            email: None,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            active: true,
            locked_out: false,
            password_hash: None,
            managed: false,
            credential_epoch: 0,
            applied: None,
            created_at: 0,
            updated_at: 0,
        }
    }

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

    /// Whether the user, still able to authenticate, holds a role that allows `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.can_authenticate() && self.roles.iter().any(|role| role_may(role, permission))
    }

    /// Whether the user keeps the registry manageable: an active, unlocked `admin` who can log
    /// in with a password. The store never lets the last of them go.
    pub fn is_keeping_administrator(&self) -> bool {
        self.can_authenticate() && self.has_role(ADMIN_ROLE) && self.password_hash.is_some()
    }
}

/// Argon2id as Gatehouse writes it costs about 20 ms of CPU and 9 MiB of memory per hash (see
/// [`HASH_PARAMS`]). At most one hash per core runs at a time, each in a pooled buffer: a flood
/// of password attempts queues here instead of exhausting the blocking pool, and memory stays at
/// one buffer per permit. (Allocating the buffer for each hash made the allocator keep an arena
/// per blocking thread: RSS grew by hundreds of MiB under sustained logins and was never
/// returned.)
struct Argon2Pool {
    permits: Semaphore,
    buffers: Mutex<Vec<Vec<Block>>>,
}

/// The parameters of the hashes Gatehouse writes: m = 9 MiB, t = 4, p = 1, one of the
/// configurations OWASP's password storage guidance rates equal to the crate's default
/// (m = 19 MiB, t = 2) — the same CPU per guess, less than half the memory. Memory is what
/// bounds a server's resident set during sign-ins (and at its first start, which hashes the
/// administrator's password), so the memory-lean one is the one written.
pub(crate) const HASH_PARAMS: Params = match Params::new(9 * 1024, 4, 1, None) {
    Ok(params) => params,
    Err(_) => panic!("valid Argon2 parameters"),
};

/// The most memory, in 1 KiB blocks, a stored hash may ask for: the crate's default, which
/// hashes written before [`HASH_PARAMS`] (or by other tools) use. A stored hash that needs more
/// is never verified, so the bound holds whatever the database says.
const POOL_BLOCKS: usize = Params::DEFAULT_M_COST as usize;

/// How many hashes run at once, and so how many buffers exist at most.
pub fn argon2_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn argon2_pool() -> &'static Argon2Pool {
    static POOL: OnceLock<Argon2Pool> = OnceLock::new();
    POOL.get_or_init(|| Argon2Pool {
        permits: Semaphore::new(argon2_concurrency()),
        buffers: Mutex::new(Vec::new()),
    })
}

/// An empty buffer with room for [`POOL_BLOCKS`] blocks, in memory the process gives back when it
/// is dropped; [`blocks`] grows it as far as a hash needs, so only that much is ever touched.
///
/// glibc serves an allocation from its own pages (`mmap`), returned to the system when freed,
/// only above a threshold that it raises to the size of each such block freed — up to 32 MiB.
/// A 19 MiB buffer would come from a heap arena after the first one was freed, and arenas keep
/// their memory. So the buffer reserves more than 32 MiB: that always gets pages of its own,
/// and the part beyond what Argon2 writes is never touched, so it costs address space, not
/// memory. (The server binary allocates with jemalloc, which gives any block above 8 MiB pages
/// of its own; the reservation keeps the bound wherever this runs on glibc's allocator.)
fn new_argon2_buffer() -> Vec<Block> {
    const RESERVED_BLOCKS: usize = 33 * 1024;
    Vec::with_capacity(RESERVED_BLOCKS.max(POOL_BLOCKS))
}

/// The first `count` blocks of `buffer`, grown (never past [`POOL_BLOCKS`]) to hold them.
fn blocks(buffer: &mut Vec<Block>, count: usize) -> Option<&mut [Block]> {
    if count > POOL_BLOCKS {
        return None;
    }
    if buffer.len() < count {
        buffer.resize(count, Block::default());
    }
    Some(&mut buffer[..count])
}

/// Runs `work` on the blocking pool with one permit and one pooled buffer. The permit moves into
/// the blocking task, so it is held for as long as the hash runs, even if the request that asked
/// for it goes away; the buffer goes back to the pool afterwards while other hashes are under
/// way, and to the operating system when none is.
async fn with_argon2_memory<T: Send + 'static>(
    work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
) -> Result<T, Error> {
    let pool = argon2_pool();
    let permit = pool
        .permits
        .acquire()
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let taken = pool.buffers.lock().map(|mut free| free.pop());
        let mut buffer = match taken {
            Ok(Some(buffer)) => buffer,
            _ => new_argon2_buffer(),
        };
        let result = work(&mut buffer);
        // Kept while other hashes run or wait, so a flood of sign-ins reuses its buffers; the
        // last one out returns them all, so a server at rest (after the administrator's first
        // hash, say) holds none of this memory.
        let others_busy = pool.permits.available_permits() + 1 < argon2_concurrency();
        if let Ok(mut free) = pool.buffers.lock() {
            if others_busy {
                free.push(buffer);
            } else {
                free.clear();
            }
        }
        result
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing task failed: {e}")))
}

/// Hashes a person's password with Argon2id. This is the only slow hash in Gatehouse.
pub async fn hash_password(password: String) -> Result<String, Error> {
    with_argon2_memory(move |memory| {
        let params = HASH_PARAMS;
        let salt = Salt::generate();
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let memory = blocks(memory, params.block_count())
            .ok_or_else(|| Error::Internal("Argon2 parameters exceed the pool".into()))?;
        Argon2::from(params.clone())
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, memory)
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::default().into()),
            params: (&params)
                .try_into()
                .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))?,
            salt: Some(salt),
            hash: Some(
                Output::new(&output)
                    .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))?,
            ),
        };
        Ok(hash.to_string())
    })
    .await?
}

/// Verifies a password against its stored hash. A hash that is not Argon2 in a form Gatehouse
/// writes, or that needs more memory than a pooled buffer holds, verifies nothing.
pub async fn verify_password(password: String, stored: String) -> Result<bool, Error> {
    with_argon2_memory(move |memory| {
        let Ok(parsed) = PasswordHash::new(stored.as_str()) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(parsed.algorithm.as_str()),
            Params::try_from(&parsed),
        ) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let Some(memory) = blocks(memory, params.block_count()) else {
            tracing::warn!("a stored password hash needs more memory than Gatehouse allows");
            return false;
        };
        let mut output = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut output, memory)
            .is_ok()
            // `Output`'s equality is constant-time.
            && Output::new(&output).is_ok_and(|computed| computed == *expected)
    })
    .await
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

    #[test]
    fn only_admin_makes_administrators() {
        use Permission as P;
        let all = [
            P::ReadRegistry,
            P::ManageApplications,
            P::ManageUsers,
            P::ManageAccessRules,
            P::ManageJwtProviders,
            P::ManageSigningKeys,
            P::ManageOutbound,
            P::ManageTables,
            P::ManageAdministrators,
        ];
        assert!(all.iter().all(|p| role_may(ADMIN_ROLE, *p)));
        for role in [OAUTH_ADMIN_ROLE, MI_ADMIN_ROLE, "itil", ""] {
            assert!(!role_may(role, P::ManageAdministrators), "{role}");
        }
        assert!(role_may(OAUTH_ADMIN_ROLE, P::ManageApplications));
        assert!(!role_may(OAUTH_ADMIN_ROLE, P::ManageOutbound));
        assert!(!role_may(OAUTH_ADMIN_ROLE, P::ManageTables));
        assert!(role_may(MI_ADMIN_ROLE, P::ManageTables));
        assert!(!role_may(MI_ADMIN_ROLE, P::ManageApplications));
        assert!(!role_may(MI_ADMIN_ROLE, P::ManageUsers));
        assert!(!role_may("itil", P::ReadRegistry));
    }

    #[tokio::test]
    async fn password_hash_verifies_only_the_right_password() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=9216,t=4,p=1$"), "{hash}");
        assert!(
            verify_password("correct horse battery".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), hash).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_written_by_the_argon2_crate_itself_still_verify() {
        use argon2::PasswordHasher;
        let stored = Argon2::default()
            .hash_password(b"an older stored password")
            .unwrap()
            .to_string();
        let verify = |password: &str| verify_password(password.into(), stored.clone());
        assert!(verify("an older stored password").await.unwrap());
        assert!(!verify("an older stored passwort").await.unwrap());
    }

    #[tokio::test]
    async fn hashes_that_need_more_memory_than_a_buffer_verify_nothing() {
        let params = Params::new(POOL_BLOCKS as u32 * 2, 1, 1, None).unwrap();
        let stored = {
            use argon2::PasswordHasher;
            Argon2::new(Algorithm::Argon2id, Version::default(), params)
                .hash_password(b"memory hungry")
                .unwrap()
                .to_string()
        };
        assert!(
            !verify_password("memory hungry".into(), stored)
                .await
                .unwrap()
        );
        assert!(
            !verify_password("x".into(), "$argon2id$garbage".into())
                .await
                .unwrap()
        );
        assert!(!verify_password("x".into(), String::new()).await.unwrap());
    }
}
