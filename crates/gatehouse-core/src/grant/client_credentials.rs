//! The client-credentials grant (RFC 6749 §4.4): a confidential client obtains a token for
//! itself, or for the "run as" user its registry record names.

use async_trait::async_trait;

use super::{GrantContext, TokenGrant, TokenRequest};
use crate::Error;
use crate::client::{ClientType, GrantType};
use crate::scope::ScopeSet;
use crate::token::{Issue, TokenResponse};

pub struct ClientCredentialsGrant;

#[async_trait]
impl TokenGrant for ClientCredentialsGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::ClientCredentials
    }

    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = context.client;
        // §4.4: "The client credentials grant type MUST only be used by confidential clients."
        if client.client_type != ClientType::Confidential {
            return Err(Error::UnauthorizedClient(
                "only confidential clients may use client_credentials".into(),
            ));
        }
        let scope = ScopeSet::down_scope(
            request.get("scope"),
            &client.allowed_scope_set(),
            &client.default_scope_set(),
        )?;
        let user = match &client.run_as {
            Some(user_name) => {
                let user = context
                    .tokens
                    .user_by_name(user_name)
                    .await?
                    .filter(|u| u.can_authenticate())
                    .ok_or_else(|| {
                        Error::InvalidGrant(
                            "the client's run-as user is missing or inactive".into(),
                        )
                    })?;
                Some(user)
            }
            None => None,
        };
        let audience = context.tokens.audience_for(request.resources()).await?;
        context
            .tokens
            .issue(Issue {
                client,
                user: user.as_deref(),
                scope: &scope,
                grant: None,
                refresh_token: None,
                with_id_token: false,
                audience: &audience,
                exchanged: None,
                dpop_jkt: context.dpop_jkt(),
            })
            .await
    }
}
