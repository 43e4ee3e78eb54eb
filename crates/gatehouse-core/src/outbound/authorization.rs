//! The authorization-code grant a person starts in the browser ("Get OAuth token"): who may
//! obtain which profile's token, the request sent to the provider, and whether its answer is the
//! one expected.

use serde::{Deserialize, Serialize};

use super::{OAuthProfile, OAuthProvider, OutboundRegistry, SYSTEM_OWNER};
use crate::Error;
use crate::client::GrantType;
use crate::entry::Catalog;
use crate::pkce;
use crate::secret;
use crate::user::User;

/// How long a user has to authorize at the provider after pressing "Get OAuth token".
pub const AUTHORIZATION_LIFETIME: i64 = 600;

/// An outbound authorization in progress, between the "Get OAuth token" button and the
/// provider's answer at Gatehouse's callback. It travels sealed in a cookie of the browser that
/// started it, so it works whichever instance receives the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub profile: String,
    pub owner: String,
    pub state: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    pub expires_at: i64,
    /// The provider the browser was sent to, as it was then: its name, issuer and token
    /// endpoint. The answer is accepted only from that issuer and the code redeemed only at that
    /// token endpoint (RFC 9700 §4.4).
    pub provider: String,
    pub issuer: String,
    pub token_url: String,
}

impl PendingAuthorization {
    /// Whether the callback's `state` is this authorization's, and still in time (RFC 6749
    /// §10.12).
    pub fn answers(&self, state: &str, now: i64) -> bool {
        now < self.expires_at && secret::constant_time_eq(&self.state, state)
    }
}

/// A system-wide token serves everybody, so only administrators obtain it; a per-user token
/// is each user's own.
fn may_authorize(profile: &OAuthProfile, user: &User) -> bool {
    user.active && (profile.per_user || user.is_registry_admin())
}

impl OutboundRegistry {
    /// The authorization-code profiles `user` may obtain a token for in the browser, with their
    /// providers and whether a token is held.
    pub async fn authorizable_profiles(
        &self,
        catalog: &Catalog,
        user: &User,
    ) -> Result<Vec<(OAuthProfile, OAuthProvider, bool)>, Error> {
        let mut rows = Vec::new();
        for profile in catalog.profiles.iter().cloned() {
            if !may_authorize(&profile, user) {
                continue;
            }
            let Some(provider) = self.store.find_provider(&profile.provider).await? else {
                continue;
            };
            if provider.grant != GrantType::AuthorizationCode {
                continue;
            }
            let owner = owner_for(&profile, user);
            let held = self
                .store
                .find_outbound_token(&profile.name, &owner)
                .await?
                .is_some();
            rows.push((profile, provider, held));
        }
        Ok(rows)
    }

    /// The profile and provider an authorization response is for, once it is shown to come from
    /// the provider the authorization was sent to (RFC 9207 §2.4): its `iss` must name that
    /// provider's issuer, and must be present when the provider says it always sends it. A
    /// provider or profile changed since the authorization started is not used for it.
    pub async fn response_target(
        &self,
        catalog: &Catalog,
        pending: &PendingAuthorization,
        iss: Option<&str>,
    ) -> Result<(OAuthProfile, OAuthProvider), Error> {
        let refused = |why: String| Error::validation(format!("the answer was refused: {why}"));
        let profile = Catalog::find(&catalog.profiles, &pending.profile)?.clone();
        let provider = self.get_provider(&pending.provider).await?;
        let unchanged = profile.provider == provider.name
            && provider.issuer.as_deref() == Some(pending.issuer.as_str())
            && provider.token_url == pending.token_url;
        if !unchanged {
            return Err(refused(format!(
                "OAuth provider {:?} or profile {:?} changed after the authorization started",
                pending.provider, pending.profile
            )));
        }
        match iss {
            Some(iss) if iss != pending.issuer => Err(refused(format!(
                "it names issuer {iss:?}, but the authorization was sent to {:?}",
                pending.issuer
            ))),
            None if provider.authorization_response_iss_parameter_supported => {
                Err(refused(format!(
                    "it carries no iss, which provider {:?} always sends",
                    provider.name
                )))
            }
            _ => Ok((profile, provider)),
        }
    }

    /// Starts the authorization-code grant (with PKCE S256 and `state`) for a profile on behalf
    /// of `user`; returns what the browser must keep and where to send it.
    pub async fn start_authorization(
        &self,
        catalog: &Catalog,
        profile: &str,
        user: &User,
        redirect_uri: &str,
    ) -> Result<(PendingAuthorization, String), Error> {
        let profile = Catalog::find(&catalog.profiles, profile)?;
        if !may_authorize(profile, user) {
            return Err(Error::Forbidden(
                "a system-wide token is obtained by an administrator".into(),
            ));
        }
        let provider = self.get_provider(&profile.provider).await?;
        let (authorization_url, issuer) = match (
            &provider.grant,
            &provider.authorization_url,
            &provider.issuer,
        ) {
            (GrantType::AuthorizationCode, Some(url), Some(issuer)) => (url, issuer),
            _ => {
                return Err(Error::validation(format!(
                    "profile {:?} does not use the authorization_code grant",
                    profile.name
                )));
            }
        };
        let pending = PendingAuthorization {
            owner: owner_for(profile, user),
            profile: profile.name.clone(),
            state: secret::generate(),
            code_verifier: secret::generate(),
            redirect_uri: redirect_uri.to_owned(),
            expires_at: self.clock.now() + AUTHORIZATION_LIFETIME,
            provider: provider.name.clone(),
            issuer: issuer.clone(),
            token_url: provider.token_url.clone(),
        };
        let mut url = url::Url::parse(authorization_url)
            .map_err(|_| Error::Internal("a stored authorization_url is invalid".into()))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", &pending.state)
                .append_pair(
                    "code_challenge",
                    &pkce::s256_challenge(&pending.code_verifier),
                )
                .append_pair("code_challenge_method", "S256");
            if !profile.scopes.is_empty() {
                query.append_pair("scope", &profile.scopes.join(" "));
            }
            if let Some(audience) = &provider.audience {
                query.append_pair("audience", audience);
            }
            if let Some(resource) = &provider.resource {
                query.append_pair("resource", resource);
            }
        }
        Ok((pending, url.into()))
    }
}

fn owner_for(profile: &OAuthProfile, user: &User) -> String {
    if profile.per_user {
        user.id.clone()
    } else {
        SYSTEM_OWNER.to_owned()
    }
}
