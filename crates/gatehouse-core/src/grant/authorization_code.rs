//! The authorization-code grant's token side (RFC 6749 §4.1.3, RFC 7636 §4.5-4.6): a code is
//! redeemed once, by the client it was issued to, with the same redirect URI and the PKCE
//! verifier. A second redemption revokes everything the first one issued (RFC 6749 §4.1.2,
//! RFC 9700 §4.5).

use crate::audit::{Actor, AuditEvent};
use async_trait::async_trait;

use super::{GrantContext, TokenGrant, TokenRequest, issue_for_person};
use crate::Error;
use crate::audience;
use crate::authorize::CODE_LIFETIME;
use crate::client::GrantType;
use crate::pkce::{self, ChallengeMethod};
use crate::scope::ScopeSet;
use crate::store::CodeRedemption;
use crate::token::{GrantLink, TokenResponse};

pub struct AuthorizationCodeGrant;

#[async_trait]
impl TokenGrant for AuthorizationCodeGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::AuthorizationCode
    }

    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = context.client;
        let code = request.require("code")?;
        let invalid = |why: &str| Error::InvalidGrant(why.to_owned());
        let record = match context
            .store
            .redeem_authorization_code(&context.tokens.hasher().hash(code), &client.client_id)
            .await?
        {
            CodeRedemption::Redeemed(record) => record,
            CodeRedemption::Replayed(record) => {
                context.tokens.revoke_grant(&record.grant_id).await?;
                context
                    .tokens
                    .security_event(
                        Actor::at_request(&client.client_id, Some(&client.client_id)),
                        AuditEvent::new("authorization_code.replayed", &record.grant_id)
                            .with("user_id", record.user_id.as_str()),
                    )
                    .await?;
                return Err(invalid(
                    "the code was already used; the tokens issued from it are revoked",
                ));
            }
            // Left unconsumed: whoever presents another client's code cannot burn it.
            CodeRedemption::OtherClient => {
                return Err(invalid("the code was issued to another client"));
            }
            CodeRedemption::Unknown => return Err(invalid("the code is invalid or expired")),
        };
        // A code issued before everything of its application was revoked went with it.
        let issued_at = record.expires_at - CODE_LIFETIME;
        if record.expires_at <= context.tokens.clock().now() || client.revoked_since(issued_at) {
            return Err(invalid("the code is invalid or expired"));
        }
        // §4.1.3: the same redirect_uri as in the authorization request, when one was sent.
        if record.redirect_uri.as_deref() != request.get("redirect_uri")
            && record.redirect_uri.is_some()
        {
            return Err(invalid(
                "redirect_uri does not match the authorization request",
            ));
        }
        match (&record.code_challenge, request.get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                let method = ChallengeMethod::parse(record.code_challenge_method.as_deref())?;
                if !pkce::verify(challenge, method, verifier) {
                    return Err(invalid(
                        "the code_verifier does not match the code_challenge",
                    ));
                }
            }
            (Some(_), None) => return Err(invalid("code_verifier is required")),
            // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade.
            (None, Some(_)) => {
                return Err(invalid("the authorization request had no code_challenge"));
            }
            (None, None) => {}
        }
        context.require_key(record.dpop_jkt.as_deref(), "code")?;
        let user = context
            .tokens
            .user(&record.user_id)
            .await?
            .filter(|u| u.can_authenticate())
            .ok_or_else(|| invalid("the user is no longer active"))?;
        let scope = ScopeSet::parse(&record.scope)?;
        let granted = context.tokens.stored_audience(&record.audience);
        let audience = audience::narrow(&granted, request.resources())?;
        let link = GrantLink {
            grant_id: &record.grant_id,
            auth_time: record.auth_time,
            nonce: record.nonce.as_deref(),
            sid: record.sid.as_deref(),
        };
        issue_for_person(context, &user, &scope, &granted, &audience, link).await
    }
}
