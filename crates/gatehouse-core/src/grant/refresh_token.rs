//! The refresh-token grant (RFC 6749 §6) with rotation: every use returns a new refresh token
//! and retires the old one. Presenting a retired token again is treated as theft and revokes
//! the whole family (RFC 9700 §4.14.2), unless it comes within the configured grace period.

use async_trait::async_trait;

use super::{GrantContext, TokenGrant, TokenRequest};
use crate::Error;
use crate::audience;
use crate::client::GrantType;
use crate::scope::ScopeSet;
use crate::store::RefreshRotation;
use crate::token::{GrantLink, Issue, TokenResponse};

pub struct RefreshTokenGrant;

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
        let old_hash = tokens.hasher().hash(presented);
        let record = context
            .store
            .find_refresh_token(&old_hash)
            .await?
            .ok_or_else(|| invalid("the refresh token is invalid"))?;
        if record.client_id != client.client_id {
            return Err(invalid("the refresh token was issued to another client"));
        }
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
        };
        // The successor keeps the original scope and audience; only this access token is
        // narrowed.
        let (successor, stored) =
            tokens.mint_refresh_token(client, &user, &granted, &granted_audience, link);
        let now = tokens.clock().now();
        match context
            .store
            .rotate_refresh_token(&old_hash, &stored, now, context.refresh_token_grace)
            .await?
        {
            RefreshRotation::Rotated(_) => {}
            RefreshRotation::Refused(old) if old.rotated_at.is_some() && !old.revoked => {
                context.tokens.revoke_grant(&old.grant_id).await?;
                return Err(invalid(
                    "the refresh token was already used; its whole family is revoked",
                ));
            }
            RefreshRotation::Refused(_) | RefreshRotation::Unknown => {
                return Err(invalid("the refresh token is invalid, expired or revoked"));
            }
        }
        tokens
            .issue(Issue {
                client,
                user: Some(&user),
                scope: &scope,
                grant: Some(link),
                refresh_token: Some(successor),
                with_id_token: scope.contains("openid"),
                audience: &audience,
            })
            .await
    }
}
