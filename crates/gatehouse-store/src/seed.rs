//! Bulk seeding for the scale benchmark: many applications, users and opaque access and refresh
//! tokens written straight into a store, in large transactions running side by side, instead of
//! one request each through the HTTP API.
//!
//! The rows are the ones the server writes: secrets and tokens stored as their keyed hashes,
//! and one Argon2 hash of one password shared by every seeded user (as a bulk import of
//! already-hashed passwords would), since hashing it per user would take hours at scale.

use std::ops::Range;
use std::sync::Arc;

use gatehouse_core::client::{Client, ClientType, GrantType, TokenFormat};
use gatehouse_core::secret::{self, SecretHasher};
use gatehouse_core::store::{
    AccessTokenRecord, RefreshTokenRecord, Store, StoreError, StoreTransaction,
};
use gatehouse_core::token::{OPAQUE_ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX};
use gatehouse_core::user::User;
use tokio::task::JoinSet;

/// Rows written in one transaction.
const CHUNK: u64 = 5_000;
/// Transactions open at once: PostgreSQL writes them in parallel; SQLite queues them on its one
/// writer, where they cost nothing extra.
const PARALLEL: usize = 4;
/// How long a seeded token stays valid, or how long ago an expired one expired.
const TOKEN_AGE: i64 = 86_400;

/// What to seed. Every token belongs to one of the seeded applications and users (round robin),
/// so a plan with tokens needs at least one of each.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Names the rows (`{label}-app-{n}`, `{label}-user-{n}`), so several plans fit one store.
    pub label: String,
    pub applications: u64,
    pub users: u64,
    /// Opaque tokens: half access tokens, half refresh tokens.
    pub tokens: u64,
    /// The share of tokens (0 to 100) that expired a while ago, for the purge to delete.
    pub expired_percent: u64,
    pub now: i64,
}

/// A seeded application's credentials and one of its live access tokens, to show the seeded
/// rows work.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub client_id: String,
    pub client_secret: String,
    pub access_token: Option<String>,
}

#[derive(Clone, Copy)]
enum Rows {
    Applications,
    Users,
    AccessTokens,
    RefreshTokens,
}

/// Builds the `n`-th row of each kind; cloned into every writing task.
#[derive(Clone)]
struct Rowmaker {
    plan: Plan,
    hasher: SecretHasher,
    password_hash: String,
    /// Random per run, one for the secrets, one for the tokens and one for their identifiers
    /// (`jti`, grant), so that none of them tells the others.
    secret_nonce: String,
    token_nonce: String,
    id_nonce: String,
}

impl Rowmaker {
    fn client_id(&self, n: u64) -> String {
        format!("{}-app-{n}", self.plan.label)
    }

    fn user_id(&self, n: u64) -> String {
        format!("{}-user-id-{n}", self.plan.label)
    }

    fn client_secret(&self, n: u64) -> String {
        format!("{}{n}", self.secret_nonce)
    }

    fn access_token(&self, n: u64) -> String {
        format!("{OPAQUE_ACCESS_TOKEN_PREFIX}{}{n}", self.token_nonce)
    }

    fn refresh_token(&self, n: u64) -> String {
        format!("{REFRESH_TOKEN_PREFIX}{}{n}", self.token_nonce)
    }

    /// Whether the `n`-th token has expired: spread evenly, so that any first `n` tokens hold
    /// the plan's share.
    fn expired(&self, n: u64) -> bool {
        let share = self.plan.expired_percent;
        (n + 1) * share / 100 > n * share / 100
    }

    fn expires_at(&self, n: u64) -> i64 {
        if self.expired(n) {
            self.plan.now - TOKEN_AGE
        } else {
            self.plan.now + TOKEN_AGE
        }
    }

    fn client(&self, n: u64) -> Client {
        let mut client = Client::new(
            format!("{}-app-id-{n}", self.plan.label),
            self.client_id(n),
            self.plan.now,
        );
        client.name = format!("Seeded application {n}");
        client.client_type = ClientType::Confidential;
        client.secret_hash = Some(self.hasher.hash(&self.client_secret(n)));
        client.grant_types = vec![GrantType::ClientCredentials, GrantType::RefreshToken];
        client.allowed_scopes = vec!["useraccount".into()];
        client.token_format = TokenFormat::Opaque;
        client
    }

    fn user(&self, n: u64) -> User {
        User {
            id: self.user_id(n),
            user_name: format!("{}-user-{n}", self.plan.label),
            display_name: format!("Seeded user {n}"),
            given_name: None,
            family_name: None,
            email: None,
            roles: Vec::new(),
            active: true,
            locked_out: false,
            password_hash: Some(self.password_hash.clone()),
            managed: false,
            credential_epoch: 0,
            applied: None,
            created_at: self.plan.now,
            updated_at: self.plan.now,
        }
    }

    fn access(&self, n: u64) -> AccessTokenRecord {
        let expires_at = self.expires_at(n);
        AccessTokenRecord {
            token_hash: self
                .hasher
                .token_key(&self.access_token(n), OPAQUE_ACCESS_TOKEN_PREFIX),
            jti: format!("{}-at-{n}-{}", self.plan.label, self.id_nonce),
            client_id: self.client_id(n % self.plan.applications),
            user_id: Some(self.user_id(n % self.plan.users)),
            scope: "useraccount".into(),
            issued_at: expires_at - TOKEN_AGE,
            expires_at,
            revoked: false,
            grant_id: None,
            audience: Vec::new(),
            act: None,
            dpop_jkt: None,
        }
    }

    fn refresh(&self, n: u64) -> RefreshTokenRecord {
        let expires_at = self.expires_at(n);
        RefreshTokenRecord {
            token_hash: self
                .hasher
                .token_key(&self.refresh_token(n), REFRESH_TOKEN_PREFIX),
            grant_id: format!("{}-grant-{n}-{}", self.plan.label, self.id_nonce),
            client_id: self.client_id(n % self.plan.applications),
            user_id: self.user_id(n % self.plan.users),
            scope: "useraccount".into(),
            auth_time: expires_at - TOKEN_AGE,
            issued_at: expires_at - TOKEN_AGE,
            expires_at,
            rotated_at: None,
            revoked: false,
            audience: Vec::new(),
            dpop_jkt: None,
        }
    }

    async fn write(
        &self,
        transaction: &dyn StoreTransaction,
        rows: Rows,
        range: Range<u64>,
    ) -> Result<(), StoreError> {
        for n in range {
            match rows {
                Rows::Applications => transaction.insert_client(&self.client(n)).await?,
                Rows::Users => transaction.insert_user(&self.user(n)).await?,
                Rows::AccessTokens => transaction.insert_access_token(&self.access(n)).await?,
                Rows::RefreshTokens => transaction.insert_refresh_token(&self.refresh(n)).await?,
            }
        }
        transaction.commit().await
    }
}

/// Writes the plan's rows into `store`. `password_hash` is the PHC string every seeded user
/// gets.
pub async fn seed(
    store: Arc<dyn Store>,
    plan: Plan,
    hasher: SecretHasher,
    password_hash: String,
) -> Result<Seeded, StoreError> {
    if plan.tokens > 0 && (plan.applications == 0 || plan.users == 0) {
        return Err(StoreError::Backend(
            "seeded tokens need at least one seeded application and user".into(),
        ));
    }
    let access_tokens = plan.tokens - plan.tokens / 2;
    let maker = Rowmaker {
        plan,
        hasher,
        password_hash,
        secret_nonce: secret::generate(),
        token_nonce: secret::generate(),
        id_nonce: secret::generate(),
    };
    for (rows, count) in [
        (Rows::Applications, maker.plan.applications),
        (Rows::Users, maker.plan.users),
        (Rows::AccessTokens, access_tokens),
        (Rows::RefreshTokens, maker.plan.tokens / 2),
    ] {
        let mut running = JoinSet::new();
        for start in (0..count).step_by(usize::try_from(CHUNK).unwrap_or(usize::MAX)) {
            if running.len() >= PARALLEL {
                finished(running.join_next().await)?;
            }
            let (store, maker) = (store.clone(), maker.clone());
            running.spawn(async move {
                let transaction = store.begin().await?;
                maker
                    .write(&*transaction, rows, start..count.min(start + CHUNK))
                    .await
            });
        }
        while !running.is_empty() {
            finished(running.join_next().await)?;
        }
    }
    let live = (0..access_tokens).find(|&n| !maker.expired(n));
    Ok(Seeded {
        client_id: maker.client_id(0),
        client_secret: maker.client_secret(0),
        access_token: live.map(|n| maker.access_token(n)),
    })
}

fn finished(
    done: Option<Result<Result<(), StoreError>, tokio::task::JoinError>>,
) -> Result<(), StoreError> {
    match done {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(StoreError::Backend(format!("a seeding task failed: {e}"))),
        None => Ok(()),
    }
}
