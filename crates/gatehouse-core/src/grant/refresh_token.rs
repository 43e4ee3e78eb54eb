//! The refresh-token grant (RFC 6749 §6) with rotation: every use returns a new refresh token
//! and retires the old one. Presenting a retired token again is treated as theft and revokes
//! the whole family (RFC 9700 §4.14.2) — except within the configured grace period, where it
//! gets the answer its first use got, so a client that lost that answer keeps one chain.

use crate::audit::{Actor, AuditEvent};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{GrantContext, TokenGrant, TokenRequest};
use crate::Error;
use crate::audience;
use crate::client::GrantType;
use crate::scope::ScopeSet;
use crate::store::RefreshRotation;
use crate::token::{GrantLink, Issue, TokenResponse};
use crate::user::User;

pub struct RefreshTokenGrant;

/// What a rotation keeps, sealed, for a retry within the grace period: the successor, and once
/// the answer was complete, that answer with the access token's expiry (to restate
/// `expires_in`).
#[derive(Serialize, Deserialize)]
struct KeptAnswer {
    refresh_token: String,
    answer: Option<(TokenResponse, i64)>,
}

impl KeptAnswer {
    /// Binds the sealed answer to the token it answers, so it cannot be moved to another row.
    fn context(old_hash: &str) -> String {
        format!("refresh answer {old_hash}")
    }

    fn seal(&self, context: &GrantContext<'_>, old_hash: &str) -> Vec<u8> {
        let plain = serde_json::to_vec(self).expect("a kept answer serialises");
        context
            .tokens
            .sealer()
            .seal(&Self::context(old_hash), &plain)
    }

    fn open(context: &GrantContext<'_>, old_hash: &str, sealed: &[u8]) -> Result<Self, Error> {
        let plain = context
            .tokens
            .sealer()
            .open(&Self::context(old_hash), sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::Internal(format!("a kept refresh answer is unreadable: {e}")))
    }
}

/// One refresh request, once the presented token and the client have been checked.
struct Refresh<'a, 'c> {
    context: &'a GrantContext<'c>,
    old_hash: String,
    user: Arc<User>,
    scope: ScopeSet,
    audience: Vec<String>,
    link: GrantLink<'a>,
}

impl Refresh<'_, '_> {
    /// The access (and ID) token for `successor`, kept for retries while the grace period lasts.
    async fn answer(&self, successor: String) -> Result<TokenResponse, Error> {
        let tokens = self.context.tokens;
        let response = tokens
            .issue(Issue {
                client: self.context.client,
                user: Some(self.user.as_ref()),
                scope: &self.scope,
                grant: Some(self.link),
                refresh_token: Some(successor.clone()),
                with_id_token: self.scope.contains("openid"),
                audience: &self.audience,
                exchanged: None,
                dpop_jkt: self.context.dpop_jkt(),
            })
            .await?;
        if self.context.refresh_token_grace > 0 {
            let expires_at = tokens.clock().now() + response.expires_in;
            let kept = KeptAnswer {
                refresh_token: successor,
                answer: Some((response.clone(), expires_at)),
            };
            self.context
                .store
                .keep_refresh_answer(&self.old_hash, &kept.seal(self.context, &self.old_hash))
                .await?;
        }
        Ok(response)
    }

    /// A retry within the grace period: the first answer again, or — when it was never
    /// completed (the first request is still issuing, or its instance died) — the same
    /// successor with a new access token. Once the chain has moved on past the successor, the
    /// retry is a reuse like any other.
    async fn repeat(&self, sealed: &[u8]) -> Result<TokenResponse, Error> {
        let kept = KeptAnswer::open(self.context, &self.old_hash, sealed)?;
        let tokens = self.context.tokens;
        let successor = self
            .context
            .store
            .find_refresh_token(&tokens.refresh_token_key(&kept.refresh_token))
            .await?;
        if !successor.is_some_and(|s| s.rotated_at.is_none() && !s.revoked) {
            return self.reused().await;
        }
        match kept.answer {
            Some((mut response, expires_at)) => {
                response.expires_in = (expires_at - tokens.clock().now()).max(0);
                Ok(response)
            }
            None => self.answer(kept.refresh_token).await,
        }
    }

    async fn reused(&self) -> Result<TokenResponse, Error> {
        let tokens = self.context.tokens;
        tokens.revoke_grant(self.link.grant_id).await?;
        let client_id = &self.context.client.client_id;
        tokens
            .security_event(
                Actor::at_request(client_id, Some(client_id)),
                AuditEvent::new("refresh_token.reused", self.link.grant_id),
            )
            .await?;
        Err(Error::InvalidGrant(
            "the refresh token was already used; its whole family is revoked".into(),
        ))
    }
}

#[async_trait]
impl TokenGrant for RefreshTokenGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::RefreshToken
    }

    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = context.client;
        let tokens = context.tokens;
        let invalid = |why: &str| Error::InvalidGrant(why.to_owned());
        let presented = request.require("refresh_token")?;
        let old_hash = tokens.refresh_token_key(presented);
        let record = context
            .store
            .find_refresh_token(&old_hash)
            .await?
            .ok_or_else(|| invalid("the refresh token is invalid"))?;
        if record.client_id != client.client_id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        if client.revoked_since(record.issued_at) {
            return Err(invalid("the refresh token is invalid, expired or revoked"));
        }
        context.require_key(record.dpop_jkt.as_deref(), "refresh token")?;
        // §6: the new scope may narrow, never widen, the original grant.
        let granted = ScopeSet::parse(&record.scope)?;
        let scope = match request.get("scope") {
            Some(requested) => {
                let requested = ScopeSet::parse(requested)?;
                if !requested.is_subset(&granted) {
                    return Err(Error::InvalidScope(
                        "the requested scope exceeds the original grant".into(),
                    ));
                }
                requested
            }
            None => granted.clone(),
        };
        let granted_audience = tokens.stored_audience(&record.audience);
        let audience = audience::narrow(&granted_audience, request.resources())?;
        let user = context
            .tokens
            .user(&record.user_id)
            .await?
            .filter(|u| u.can_authenticate())
            .ok_or_else(|| invalid("the user is no longer active"))?;
        let link = GrantLink {
            grant_id: &record.grant_id,
            auth_time: record.auth_time,
            nonce: None,
            sid: None,
        };
        // The successor keeps the original scope and audience; only this access token is
        // narrowed.
        let (successor, stored) = tokens.mint_refresh_token(
            client,
            &user,
            &granted,
            &granted_audience,
            link,
            context.refresh_token_binding(),
        );
        let refresh = Refresh {
            context,
            old_hash,
            user,
            scope,
            audience,
            link,
        };
        let sealed = if context.refresh_token_grace > 0 {
            let kept = KeptAnswer {
                refresh_token: successor.clone(),
                answer: None,
            };
            kept.seal(context, &refresh.old_hash)
        } else {
            Vec::new()
        };
        let now = tokens.clock().now();
        match context
            .store
            .rotate_refresh_token(
                &refresh.old_hash,
                &stored,
                &sealed,
                now,
                context.refresh_token_grace,
            )
            .await?
        {
            RefreshRotation::Rotated(_) => refresh.answer(successor).await,
            RefreshRotation::Repeated { sealed_answer, .. } => refresh.repeat(&sealed_answer).await,
            RefreshRotation::Refused(old) if old.rotated_at.is_some() && !old.revoked => {
                refresh.reused().await
            }
            RefreshRotation::Refused(_) | RefreshRotation::Unknown => {
                Err(invalid("the refresh token is invalid, expired or revoked"))
            }
        }
    }
}
