//! The JWT bearer grant (RFC 7523 §2.1): a client presents an assertion a trusted JWT provider
//! signed about a user, and gets an access token for that user. No refresh token is issued: the
//! client can present a fresh assertion instead.

use async_trait::async_trait;

use super::{GrantContext, TokenGrant, TokenRequest};
use crate::Error;
use crate::client::GrantType;
use crate::scope::ScopeSet;
use crate::token::{Issue, TokenResponse};

pub struct JwtBearerGrant;

#[async_trait]
impl TokenGrant for JwtBearerGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::JwtBearer
    }

    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = context.client;
        let assertion = request.require("assertion")?;
        let scope = ScopeSet::down_scope(
            request.get("scope"),
            &client.allowed_scope_set(),
            &client.default_scope_set(),
        )?;
        let user = context
            .federation
            .verify_grant_assertion(client, assertion)
            .await?;
        let audience = context.tokens.audience_for(request.resources()).await?;
        context
            .tokens
            .issue(Issue {
                client,
                user: Some(&user),
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
