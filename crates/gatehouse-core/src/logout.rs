//! OpenID Connect Back-Channel Logout 1.0: which applications hear that a user signed out, and
//! the logout tokens they are sent.
//!
//! An application listens by registering a `backchannel_logout_uri`. It hears of a sign-out
//! when the user has a remembered consent for it — every application a person authorized in
//! the browser has one, until the user withdraws it (which revokes its tokens anyway). The
//! tokens leave through [`LogoutSender`], a queue that never waits, so a sign-out or an
//! administrator's change never waits for an application to answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::client::Client;
use crate::secret::SecretHasher;
use crate::store::{SessionRecord, Store};
use crate::token::TokenService;

/// The `typ` of a logout token (Back-Channel Logout 1.0 §2.4), which keeps it from passing as
/// an ID token or an access token.
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// The one event a logout token carries.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is accepted, in seconds: its deliveries, retries included, end well
/// within it, and a copy captured on the way is useless soon after.
pub const LOGOUT_TOKEN_LIFETIME: i64 = 120;

/// The claims of a logout token (§2.4). It never has a `nonce`, so it cannot pass as an ID
/// token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user, as ID tokens name them.
    pub sub: String,
    /// The ended session, as ID tokens from it name it; absent when all of the user's sessions
    /// ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub events: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl LogoutClaims {
    pub fn new(issuer: &str, client_id: &str, subject: &str, sid: Option<&str>, now: i64) -> Self {
        LogoutClaims {
            iss: issuer.to_owned(),
            aud: client_id.to_owned(),
            iat: now,
            exp: now + LOGOUT_TOKEN_LIFETIME,
            jti: uuid::Uuid::new_v4().to_string(),
            sub: subject.to_owned(),
            sid: sid.map(str::to_owned),
            events: BTreeMap::from([(LOGOUT_EVENT.to_owned(), serde_json::Map::new())]),
        }
    }
}

/// The `sid` of a login session: stable for the session's life, and neither its cookie nor the
/// hash the store keeps of it — a keyed hash of that hash, so whoever learns a `sid` (every
/// application the user signs in to) can neither use it as a cookie nor find the session's row.
pub fn session_id(hasher: &SecretHasher, session: &SessionRecord) -> String {
    hasher.hash(&format!("sid\0{}", session.session_hash))
}

/// A logout token on its way to an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutDelivery {
    pub client_id: String,
    pub uri: String,
    pub logout_token: String,
}

/// The port through which logout tokens leave. `send` must return at once: the adapter queues
/// the delivery (and drops it, logged, when its queue is full).
pub trait LogoutSender: Send + Sync {
    fn send(&self, delivery: LogoutDelivery);
}

/// Tells the listening applications that a user signed out.
#[derive(Clone)]
pub struct BackChannelLogout {
    store: Arc<dyn Store>,
    tokens: Arc<TokenService>,
    sender: Arc<dyn LogoutSender>,
}

impl BackChannelLogout {
    pub fn new(
        store: Arc<dyn Store>,
        tokens: Arc<TokenService>,
        sender: Arc<dyn LogoutSender>,
    ) -> Self {
        BackChannelLogout {
            store,
            tokens,
            sender,
        }
    }

    /// The user signed out of the browser session `session` (already ended): each listening
    /// application gets a token naming the user and the session.
    pub async fn session_ended(&self, session: &SessionRecord) -> Result<(), Error> {
        let sid = session_id(self.tokens.hasher(), session);
        for client in listeners(self.store.as_ref(), &session.user_id).await? {
            self.send(&client, &session.user_id, Some(&sid))?;
        }
        Ok(())
    }

    /// What to tell the listening applications when all of a user's sessions end (a new
    /// password, a lock, a deactivation, a deletion). Read through `store` — the transaction
    /// of the change — before the change, which deletes the sessions (and, with the user, the
    /// consents) it is read from.
    pub async fn before_user_signed_out(
        &self,
        store: &dyn Store,
        user_id: &str,
    ) -> Result<UserSignOut, Error> {
        let now = self.tokens.clock().now();
        let sids = store
            .list_user_sessions(user_id, now)
            .await?
            .iter()
            .map(|session| session_id(self.tokens.hasher(), session))
            .collect();
        Ok(UserSignOut {
            user_id: user_id.to_owned(),
            listeners: listeners(store, user_id).await?,
            sids,
        })
    }

    fn send(&self, client: &Client, subject: &str, sid: Option<&str>) -> Result<(), Error> {
        let Some(uri) = &client.backchannel_logout_uri else {
            return Ok(());
        };
        self.sender.send(LogoutDelivery {
            client_id: client.client_id.clone(),
            uri: uri.clone(),
            logout_token: self.tokens.logout_token(client, subject, sid)?,
        });
        Ok(())
    }
}

/// The applications with a remembered consent of the user that registered a logout URI.
async fn listeners(store: &dyn Store, user_id: &str) -> Result<Vec<Client>, Error> {
    let mut listeners = Vec::new();
    for consent in store.list_consents(user_id).await? {
        if let Some(client) = store.find_client(&consent.client_id).await?
            && client.backchannel_logout_uri.is_some()
        {
            listeners.push(client);
        }
    }
    Ok(listeners)
}

/// The logout tokens owed once all of a user's sessions have ended; see
/// [`BackChannelLogout::before_user_signed_out`].
#[must_use = "the applications hear nothing until it is sent"]
pub struct UserSignOut {
    user_id: String,
    listeners: Vec<Client>,
    sids: Vec<String>,
}

impl UserSignOut {
    /// Sends them, after the change committed. An application that requires `sid` gets one
    /// token per ended session; any other gets one naming only the user, which means all of
    /// their sessions (§2.4).
    pub fn send(self, logout: &BackChannelLogout) -> Result<(), Error> {
        for client in &self.listeners {
            if client.backchannel_logout_session_required {
                for sid in &self.sids {
                    logout.send(client, &self.user_id, Some(sid))?;
                }
            } else {
                logout.send(client, &self.user_id, None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logout_token_names_the_issuer_the_application_and_the_event() {
        let claims = LogoutClaims::new(
            "https://gatehouse.example",
            "billing",
            "user-1",
            Some("sid-1"),
            1_000,
        );
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["iss"], "https://gatehouse.example");
        assert_eq!(json["aud"], "billing");
        assert_eq!(json["iat"], 1_000);
        assert_eq!(json["exp"], 1_000 + LOGOUT_TOKEN_LIFETIME);
        assert_eq!(json["sub"], "user-1");
        assert_eq!(json["sid"], "sid-1");
        assert_eq!(
            json["events"],
            serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": {} })
        );
        assert!(json.get("nonce").is_none());
        assert!(uuid::Uuid::parse_str(json["jti"].as_str().unwrap()).is_ok());
        let again = LogoutClaims::new(
            "https://gatehouse.example",
            "billing",
            "user-1",
            None,
            1_000,
        );
        assert_ne!(again.jti, claims.jti, "every token has its own jti");
        let json = serde_json::to_value(&again).unwrap();
        assert!(json.get("sid").is_none(), "all sessions: no sid");
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["aud", "events", "exp", "iat", "iss", "jti", "sub"]
        );
    }

    #[test]
    fn a_session_id_is_stable_and_reveals_neither_cookie_nor_hash() {
        let hasher = crate::secret::MasterKey::generate().secret_hasher();
        let cookie = "cookie-value";
        let session = SessionRecord {
            session_hash: hasher.hash(cookie),
            user_id: "user-1".into(),
            auth_time: 1,
            expires_at: 2,
        };
        let sid = session_id(&hasher, &session);
        assert_eq!(sid, session_id(&hasher, &session));
        assert_ne!(sid, cookie);
        assert_ne!(sid, session.session_hash);
        let other = SessionRecord {
            session_hash: hasher.hash("another cookie"),
            ..session.clone()
        };
        assert_ne!(sid, session_id(&hasher, &other));
    }
}
