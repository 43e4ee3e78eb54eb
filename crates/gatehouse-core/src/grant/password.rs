//! The resource-owner password credentials grant (RFC 6749 §4.3), for applications that are
//! explicitly allowed it. RFC 9700 §2.4 says it MUST NOT be used; it exists for legacy and
//! tightly controlled integrations, behind brute-force protection.

use async_trait::async_trait;

use super::{GrantContext, TokenGrant, TokenRequest, issue_for_person};
use crate::Error;
use crate::client::GrantType;
use crate::login;
use crate::scope::ScopeSet;
use crate::token::{GrantLink, TokenResponse};

pub struct PasswordGrant;

#[async_trait]
impl TokenGrant for PasswordGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::Password
    }

    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = context.client;
        let user_name = request.require("username")?;
        let password = request.require("password")?;
        let scope = ScopeSet::down_scope(
            request.get("scope"),
            &client.allowed_scope_set(),
            &client.default_scope_set(),
        )?;
        let now = context.tokens.clock().now();
        let Some(user) = login::check_password(
            context.store,
            context.throttle,
            user_name,
            password,
            Some(&client.client_id),
            context.client_address,
            now,
        )
        .await?
        else {
            return Err(Error::InvalidGrant(
                "the user name or password is wrong".into(),
            ));
        };
        let grant_id = uuid::Uuid::new_v4().to_string();
        let link = GrantLink {
            grant_id: &grant_id,
            auth_time: now,
            nonce: None,
            sid: None,
        };
        let audience = context.tokens.audience_for(request.resources()).await?;
        issue_for_person(context, &user, &scope, &audience, &audience, link).await
    }
}
