//! Login sessions, the anti-forgery tokens of the login and consent forms, and where signing
//! out returns to.
//!
//! A session is a random cookie value; only its keyed hash is stored. A form's CSRF token is
//! an HMAC over the purpose of the form and the browser's cookie value, so a page on another
//! site can neither read nor forge it.

use crate::audit::{self, Actor, AuditEvent};
use std::sync::Arc;

use crate::Error;
use crate::authorize::redirect_uri_matches;
use crate::clock::Clock;
use crate::scope::ScopeSet;
use crate::secret::{self, SecretHasher};
use crate::store::{ConsentRecord, SessionRecord, SessionStore, Store};
use crate::token::TokenService;
use crate::user::User;

/// How long a login lasts.
pub const SESSION_LIFETIME: i64 = 8 * 3600;

#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, hasher: SecretHasher, clock: Arc<dyn Clock>) -> Self {
        Sessions {
            store,
            hasher,
            clock,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Starts a session for a user who just logged in; returns the cookie value. A new value
    /// at every login prevents session fixation.
    pub async fn start(&self, user: &User) -> Result<(String, SessionRecord), Error> {
        let now = self.clock.now();
        let cookie = secret::generate();
        let record = SessionRecord {
            session_hash: self.hasher.hash(&cookie),
            user_id: user.id.clone(),
            auth_time: now,
            expires_at: now + SESSION_LIFETIME,
        };
        self.store.insert_session(&record).await?;
        Ok((cookie, record))
    }

    /// The session and its user behind a cookie, when both are still valid.
    pub async fn find(&self, cookie: &str) -> Result<Option<(SessionRecord, User)>, Error> {
        let Some(session) = self.store.find_session(&self.hasher.hash(cookie)).await? else {
            return Ok(None);
        };
        if session.expires_at <= self.clock.now() {
            return Ok(None);
        }
        let user = self
            .store
            .find_user_by_id(&session.user_id)
            .await?
            .filter(User::can_authenticate);
        Ok(user.map(|user| (session, user)))
    }

    /// Ends the session behind a cookie; returns it, when there was one.
    pub async fn end(&self, cookie: &str) -> Result<Option<SessionRecord>, Error> {
        Ok(self.store.take_session(&self.hasher.hash(cookie)).await?)
    }

    /// The session's `sid`, which ID tokens issued in it and logout tokens name.
    pub fn sid(&self, session: &SessionRecord) -> String {
        crate::logout::session_id(&self.hasher, session)
    }

    /// The CSRF token of a form for `purpose`, bound to the browser's cookie value.
    pub fn csrf_token(&self, purpose: &str, cookie: &str) -> String {
        self.hasher.hash(&format!("csrf\0{purpose}\0{cookie}"))
    }

    pub fn csrf_valid(&self, purpose: &str, cookie: &str, token: &str) -> bool {
        self.hasher
            .verify(&format!("csrf\0{purpose}\0{cookie}"), token)
    }

    /// The scopes the user consented to for this client, if ever.
    pub async fn remembered_consent(
        &self,
        user: &User,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, Error> {
        match self.store.find_consent(&user.id, client_id).await? {
            Some(consent) => Ok(Some(ScopeSet::parse(&consent.scope)?)),
            None => Ok(None),
        }
    }

    /// Remembers a consent, widening an earlier one of the same client.
    pub async fn remember_consent(
        &self,
        user: &User,
        client_id: &str,
        scope: &ScopeSet,
    ) -> Result<(), Error> {
        let transaction = self.store.begin().await?;
        let consent =
            widen_consent(&*transaction, &user.id, client_id, scope, self.clock.now()).await?;
        let record = audit::write(
            &*transaction,
            self.clock.now(),
            &Actor::at_request(&user.user_name, Some(client_id)),
            AuditEvent::new("consent.given", client_id).with("scope", consent.scope),
        )
        .await?;
        transaction.commit().await?;
        audit::log(&record);
        Ok(())
    }

    /// Withdraws a consent and revokes every token the client holds for the user.
    pub async fn withdraw_consent(
        &self,
        tokens: &TokenService,
        user: &User,
        client_id: &str,
    ) -> Result<(), Error> {
        let transaction = self.store.begin().await?;
        let withdrawn = transaction.delete_consent(&user.id, client_id).await?;
        let record = audit::write(
            &*transaction,
            self.clock.now(),
            &Actor::at_request(&user.user_name, Some(client_id)),
            AuditEvent::new("consent.withdrawn", client_id).with("existed", withdrawn),
        )
        .await?;
        transaction.commit().await?;
        audit::log(&record);
        tokens.revoke_user_client(&user.id, client_id).await
    }

    pub async fn consents(&self, user: &User) -> Result<Vec<ConsentRecord>, Error> {
        Ok(self.store.list_consents(&user.id).await?)
    }
}

/// What a sign-out request (OpenID Connect RP-Initiated Logout 1.0 §2) names: the application
/// and where to return to, each possibly empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignOutRequest {
    pub client_id: String,
    pub post_logout_redirect_uri: String,
    pub id_token_hint: String,
}

/// Where a sign-out returns to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignOutReturn {
    /// The application, as the request named it or as its `id_token_hint` tells.
    pub client_id: String,
    /// The application's registered redirect URI the request names; `None`: no redirect.
    pub redirect_uri: Option<String>,
}

impl SignOutReturn {
    /// Where the browser goes once signed out: the application's redirect URI with the
    /// request's `state`, if it gave one (RP-Initiated Logout 1.0 §3); `None` when the sign-out
    /// named none that may be followed, and a page tells the user instead.
    pub fn location(&self, state: &str) -> Option<String> {
        let target = self.redirect_uri.as_deref()?;
        if state.is_empty() {
            return Some(target.to_owned());
        }
        let separator = if target.contains('?') { '&' } else { '?' };
        let state = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", state)
            .finish();
        Some(format!("{target}{separator}{state}"))
    }
}

impl SignOutRequest {
    /// The application the sign-out is for and the URI to return to. An `id_token_hint` must be
    /// an ID token of this server (an expired one will do) and, when `client_id` is given too,
    /// one issued to that application (RP-Initiated Logout 1.0 §2); otherwise the request is
    /// refused rather than its parameters partly believed. A `post_logout_redirect_uri` is
    /// followed only when it is registered for an active application.
    pub async fn resolve(&self, tokens: &TokenService) -> Result<SignOutReturn, Error> {
        let mut client_id = self.client_id.clone();
        if !self.id_token_hint.is_empty() {
            let hint = tokens
                .verify_id_token_hint(&self.id_token_hint)
                .ok_or_else(|| {
                    Error::invalid_request("id_token_hint is not an ID token of this server")
                })?;
            if client_id.is_empty() {
                client_id = hint.client_id;
            } else if client_id != hint.client_id {
                return Err(Error::invalid_request(
                    "id_token_hint was issued to another application than client_id names",
                ));
            }
        }
        let redirect_uri = if self.post_logout_redirect_uri.is_empty() || client_id.is_empty() {
            None
        } else {
            tokens
                .client(&client_id)
                .await?
                .filter(|client| {
                    client.active
                        && redirect_uri_matches(
                            &client.redirect_uris,
                            &self.post_logout_redirect_uri,
                        )
                })
                .map(|_| self.post_logout_redirect_uri.clone())
        };
        Ok(SignOutReturn {
            client_id,
            redirect_uri,
        })
    }
}

/// Records that a user consents to a client's `scope`, added to what they consented to before:
/// a consent only grows, until it is withdrawn. Returns the consent as stored.
pub(crate) async fn widen_consent(
    store: &dyn SessionStore,
    user_id: &str,
    client_id: &str,
    scope: &ScopeSet,
    now: i64,
) -> Result<ConsentRecord, Error> {
    let mut granted: Vec<String> = scope.to_vec();
    if let Some(earlier) = store.find_consent(user_id, client_id).await? {
        granted.extend(ScopeSet::parse(&earlier.scope)?.to_vec());
    }
    let consent = ConsentRecord {
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        scope: ScopeSet::from_list(&granted)?.to_string(),
        granted_at: now,
    };
    store.upsert_consent(&consent).await?;
    Ok(consent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_out_returns_with_its_state_only_where_it_may() {
        let back = |uri: &str| SignOutReturn {
            client_id: "app".into(),
            redirect_uri: Some(uri.into()),
        };
        assert_eq!(
            back("https://app.example/bye").location("a b&c"),
            Some("https://app.example/bye?state=a+b%26c".into())
        );
        assert_eq!(
            back("https://app.example/bye?lang=en").location("s"),
            Some("https://app.example/bye?lang=en&state=s".into())
        );
        assert_eq!(
            back("https://app.example/bye").location(""),
            Some("https://app.example/bye".into())
        );
        assert_eq!(SignOutReturn::default().location("s"), None);
    }
}
