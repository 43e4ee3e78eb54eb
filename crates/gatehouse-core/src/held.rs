//! What a user or an application holds — access tokens, refresh tokens and a user's login
//! sessions —, listed for an administrator and ended one at a time or all at once.
//!
//! Whoever may change the user or the application may see and end what they hold: the
//! registry acting for the administrator decides, as for any other change to them, and each
//! revocation is audited under the administrator's name.
//!
//! Only what the store keeps is listed: opaque access tokens, the JWT access tokens of a
//! person's grant (kept by `jti` so that revoking the grant reaches them), refresh tokens and
//! sessions. A JWT issued outside a person's grant (the client-credentials grant's) is stored
//! nowhere: it stays valid until it expires, unless it acts for a user whose sessions are all
//! ended, which raises their credential epoch and so ends every JWT issued for them. When a
//! token was last used is not recorded: it would cost a write on every validation, which the
//! hot paths are built to avoid.

use std::sync::Arc;

use crate::Error;
use crate::audit::AuditEvent;
use crate::client::Client;
use crate::registry::Registry;
use crate::store::{AccessTokenRecord, RefreshTokenRecord, SessionRecord, TokenHolder};
use crate::token::{JWT_RECORD_PREFIX, TokenService};
use crate::user::User;

/// The most tokens of each kind one listing reads; the newest are kept.
pub const HELD_LIMIT: usize = 500;

/// Whose tokens they are.
pub enum Holder {
    User(Box<User>),
    Application(Box<Client>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldKind {
    AccessToken,
    /// A JWT access token of a person's grant.
    JwtAccessToken,
    RefreshToken,
    Session,
}

impl HeldKind {
    pub fn label(self) -> &'static str {
        match self {
            HeldKind::AccessToken => "access token",
            HeldKind::JwtAccessToken => "access token (JWT)",
            HeldKind::RefreshToken => "refresh token",
            HeldKind::Session => "login session",
        }
    }
}

/// A token or session in service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub kind: HeldKind,
    /// What names it for a revocation: its kind and the keyed hash the store keeps, from which
    /// no token or cookie can be recovered.
    pub handle: String,
    /// The application it was issued to; none for a session.
    pub client_id: Option<String>,
    /// The user it acts for, by name (their id if they are gone); none for an application's
    /// own token.
    pub user_name: Option<String>,
    pub scope: String,
    /// When it was issued; for a session, when the user signed in.
    pub issued_at: i64,
    pub expires_at: i64,
}

/// One listing: what is in service, newest first.
pub struct Listing {
    pub held: Vec<Held>,
    /// Whether more of a kind were in service than [`HELD_LIMIT`].
    pub truncated: bool,
}

/// The tokens and sessions of one holder, for an administrator who may change it.
pub struct Holdings {
    registry: Registry,
    tokens: Arc<TokenService>,
    holder: Holder,
}

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";
const SESSION: &str = "session";

impl Holdings {
    /// A user's, if the administrator `registry` acts for may change the user.
    pub async fn of_user(
        registry: &Registry,
        tokens: &Arc<TokenService>,
        user_name: &str,
    ) -> Result<Holdings, Error> {
        let user = registry.get_user_to_change(user_name).await?;
        Ok(Holdings {
            registry: registry.clone(),
            tokens: tokens.clone(),
            holder: Holder::User(Box::new(user)),
        })
    }

    /// An application's, if the administrator `registry` acts for may change it.
    pub async fn of_application(
        registry: &Registry,
        tokens: &Arc<TokenService>,
        client_id: &str,
    ) -> Result<Holdings, Error> {
        let client = registry.get_app_to_change(client_id).await?;
        Ok(Holdings {
            registry: registry.clone(),
            tokens: tokens.clone(),
            holder: Holder::Application(Box::new(client)),
        })
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    fn store_holder(&self) -> TokenHolder<'_> {
        match &self.holder {
            Holder::User(user) => TokenHolder::User(&user.id),
            Holder::Application(client) => TokenHolder::Client(&client.client_id),
        }
    }

    /// Whether a token for `user_id` issued to `client_id` is this holder's.
    fn holds(&self, user_id: Option<&str>, client_id: &str) -> bool {
        match &self.holder {
            Holder::User(user) => user_id == Some(user.id.as_str()),
            Holder::Application(client) => client.client_id == client_id,
        }
    }

    /// What is in service now, newest first: at most [`HELD_LIMIT`] of each kind.
    pub async fn list(&self) -> Result<Listing, Error> {
        let store = &self.registry.store;
        let now = self.registry.clock.now();
        let holder = self.store_holder();
        let read = HELD_LIMIT as u64 + 1;
        let mut access = store.list_held_access_tokens(holder, now, read).await?;
        let mut refresh = store.list_held_refresh_tokens(holder, now, read).await?;
        let truncated = access.len() > HELD_LIMIT || refresh.len() > HELD_LIMIT;
        access.truncate(HELD_LIMIT);
        refresh.truncate(HELD_LIMIT);
        let mut held = Vec::with_capacity(access.len() + refresh.len());
        for token in &access {
            if !self.cut_off(&token.client_id, token.issued_at).await? {
                held.push(self.access_token(token).await?);
            }
        }
        for token in &refresh {
            if !self.cut_off(&token.client_id, token.issued_at).await? {
                held.push(self.refresh_token(token).await?);
            }
        }
        if let Holder::User(user) = &self.holder {
            for session in store.list_user_sessions(&user.id, now).await? {
                held.push(session_of(user, &session));
            }
        }
        held.sort_by_key(|held| std::cmp::Reverse(held.issued_at));
        Ok(Listing { held, truncated })
    }

    /// Whether a token of `client_id` issued at `issued_at` is out of service by its
    /// application's cutoff: stored while everything of the application was being revoked, it
    /// escaped the store's revocation, but no check lets it through.
    async fn cut_off(&self, client_id: &str, issued_at: i64) -> Result<bool, Error> {
        Ok(self
            .tokens
            .client(client_id)
            .await?
            .is_some_and(|client| client.revoked_since(issued_at)))
    }

    /// The name of the user a token acts for: this holder's, or another from the cache.
    async fn user_name(&self, user_id: Option<&str>) -> Result<Option<String>, Error> {
        let Some(user_id) = user_id else {
            return Ok(None);
        };
        if let Holder::User(user) = &self.holder {
            return Ok(Some(user.user_name.clone()));
        }
        Ok(Some(match self.tokens.user(user_id).await? {
            Some(user) => user.user_name.clone(),
            None => user_id.to_owned(),
        }))
    }

    async fn access_token(&self, token: &AccessTokenRecord) -> Result<Held, Error> {
        Ok(Held {
            kind: if token.token_hash.starts_with(JWT_RECORD_PREFIX) {
                HeldKind::JwtAccessToken
            } else {
                HeldKind::AccessToken
            },
            handle: format!("{ACCESS}:{}", token.token_hash),
            user_name: self.user_name(token.user_id.as_deref()).await?,
            client_id: Some(token.client_id.clone()),
            scope: token.scope.clone(),
            issued_at: token.issued_at,
            expires_at: token.expires_at,
        })
    }

    async fn refresh_token(&self, token: &RefreshTokenRecord) -> Result<Held, Error> {
        Ok(Held {
            kind: HeldKind::RefreshToken,
            handle: format!("{REFRESH}:{}", token.token_hash),
            user_name: self.user_name(Some(&token.user_id)).await?,
            client_id: Some(token.client_id.clone()),
            scope: token.scope.clone(),
            issued_at: token.issued_at,
            expires_at: token.expires_at,
        })
    }

    /// The token or session `handle` names, if it is this holder's and in service: one that
    /// was revoked, rotated or has expired is as unknown as one never issued.
    pub async fn find(&self, handle: &str) -> Result<Held, Error> {
        Ok(self.found(handle).await?.0)
    }

    async fn found(&self, handle: &str) -> Result<(Held, Found), Error> {
        let store = &self.registry.store;
        let now = self.registry.clock.now();
        let missing = || Error::NotFound("no such token or session of theirs".into());
        let (kind, hash) = handle.split_once(':').ok_or_else(missing)?;
        match kind {
            ACCESS => {
                let token = store
                    .find_access_token(hash)
                    .await?
                    .filter(|t| {
                        self.holds(t.user_id.as_deref(), &t.client_id)
                            && !t.revoked
                            && t.expires_at > now
                            && !self.tokens.is_revoked(&t.jti)
                    })
                    .ok_or_else(missing)?;
                Ok((
                    self.access_token(&token).await?,
                    Found::Access(Box::new(token)),
                ))
            }
            REFRESH => {
                let token = store
                    .find_refresh_token(hash)
                    .await?
                    .filter(|t| {
                        self.holds(Some(&t.user_id), &t.client_id)
                            && !t.revoked
                            && t.rotated_at.is_none()
                            && t.expires_at > now
                    })
                    .ok_or_else(missing)?;
                Ok((
                    self.refresh_token(&token).await?,
                    Found::Refresh(token.grant_id),
                ))
            }
            SESSION => {
                let Holder::User(user) = &self.holder else {
                    return Err(missing());
                };
                let session = store
                    .find_session(hash)
                    .await?
                    .filter(|s| s.user_id == user.id && s.expires_at > now)
                    .ok_or_else(missing)?;
                Ok((
                    session_of(user, &session),
                    Found::Session(session.session_hash),
                ))
            }
            _ => Err(missing()),
        }
    }

    /// Ends the token or session `handle` names. A refresh token takes its grant with it —
    /// the access tokens issued with it and its rotations —, as its client's own revocation
    /// would (RFC 7009 §2.1); a session's listening applications hear of its end.
    pub async fn revoke(&self, handle: &str) -> Result<Held, Error> {
        let (held, found) = self.found(handle).await?;
        let mut event = match found {
            Found::Access(token) => {
                self.tokens.revoke_access_token(&token).await?;
                AuditEvent::new("token.revoked", &token.jti).with("token_type", "access_token")
            }
            Found::Refresh(grant_id) => {
                self.tokens.revoke_grant(&grant_id).await?;
                AuditEvent::new("token.revoked", &grant_id).with("token_type", "refresh_token")
            }
            Found::Session(session_hash) => {
                let ended = self.registry.store.take_session(&session_hash).await?;
                if let (Some(session), Some(logout)) = (ended, self.registry.backchannel_logout()) {
                    logout.session_ended(&session).await?;
                }
                AuditEvent::new("session.ended", held.user_name.clone().unwrap_or_default())
            }
        };
        if let Some(client_id) = &held.client_id {
            event = event.with("client_id", client_id.as_str());
        }
        if let Some(user_name) = &held.user_name {
            event = event.with("user", user_name.as_str());
        }
        self.audit(event).await?;
        Ok(held)
    }

    /// Ends everything this holder holds. A user's sessions and tokens end as when their
    /// password changes (see [`Registry::end_user_sessions`]); an application's access and
    /// refresh tokens are revoked, for every user.
    pub async fn revoke_all(&self) -> Result<(), Error> {
        match &self.holder {
            Holder::User(user) => self.registry.end_user_sessions(&user.user_name).await,
            Holder::Application(client) => {
                self.tokens.revoke_client(&client.client_id).await?;
                self.audit(
                    AuditEvent::new("token.revoked", &client.client_id)
                        .with("token_type", "all")
                        .with("client_id", client.client_id.as_str()),
                )
                .await
            }
        }
    }

    async fn audit(&self, event: AuditEvent) -> Result<(), Error> {
        self.tokens
            .security_event(self.registry.actor().clone(), event)
            .await
    }
}

fn session_of(user: &User, session: &SessionRecord) -> Held {
    Held {
        kind: HeldKind::Session,
        handle: format!("{SESSION}:{}", session.session_hash),
        client_id: None,
        user_name: Some(user.user_name.clone()),
        scope: String::new(),
        issued_at: session.auth_time,
        expires_at: session.expires_at,
    }
}

/// What a handle found, as a revocation needs it.
enum Found {
    Access(Box<AccessTokenRecord>),
    /// A refresh token, by its grant.
    Refresh(String),
    /// A session, by its hash.
    Session(String),
}
