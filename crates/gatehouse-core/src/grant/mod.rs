//! The token endpoint's grants (RFC 6749 §4): one module per grant type behind one trait, and
//! the one list that names them all.
//!
//! A grant is looked up by the request's `grant_type`; an unknown value is
//! `unsupported_grant_type`, and a grant the application is not allowed to use is
//! `unauthorized_client` — both decided here, before any grant runs. Each grant then parses the
//! parameters it needs from the [`TokenRequest`] itself.

mod authorization_code;
mod client_credentials;
mod device_code;
mod jwt_bearer;
mod password;
mod refresh_token;
mod token_exchange;

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;

pub use authorization_code::AuthorizationCodeGrant;
pub use client_credentials::ClientCredentialsGrant;
pub use device_code::DeviceCodeGrant;
pub use jwt_bearer::JwtBearerGrant;
pub use password::PasswordGrant;
pub use refresh_token::RefreshTokenGrant;
pub use token_exchange::{ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, TokenExchangeGrant, issue_exchanged};

use crate::Error;
use crate::client::{Client, ClientType, GrantType};
use crate::dpop::Proof;
use crate::federation::Federation;
use crate::scope::ScopeSet;
use crate::secret;
use crate::store::Store;
use crate::throttle::LoginThrottle;
use crate::token::{GrantLink, Issue, TokenResponse, TokenService};
use crate::user::User;

/// The form parameters of a token request, already checked for repeats (RFC 6749 §3.2) and with
/// empty values dropped (§3.1: "parameters sent without a value MUST be treated as if they were
/// omitted").
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    params: BTreeMap<String, String>,
    /// The `resource` parameters, the one parameter that may be repeated (RFC 8707 §2).
    resources: Vec<String>,
}

impl TokenRequest {
    pub fn new(params: BTreeMap<String, String>, resources: Vec<String>) -> Self {
        TokenRequest { params, resources }
    }

    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    pub fn require(&self, name: &str) -> Result<&str, Error> {
        self.get(name)
            .ok_or_else(|| Error::invalid_request(format!("the {name} parameter is missing")))
    }
}

/// What a grant may use while it runs.
pub struct GrantContext<'a> {
    /// The client, already authenticated by the token endpoint.
    pub client: &'a Client,
    pub store: &'a dyn Store,
    pub tokens: &'a TokenService,
    /// Verifies assertions of trusted JWT providers.
    pub federation: &'a Federation,
    pub throttle: &'a LoginThrottle,
    /// The address the request came from, for brute-force protection.
    pub client_address: Option<IpAddr>,
    /// Seconds during which an already rotated refresh token, presented again, gets the answer
    /// its first use got (a client that lost it); 0 treats every reuse as theft.
    pub refresh_token_grace: i64,
    /// The request's DPoP proof (RFC 9449), already verified: the access token is bound to its
    /// key.
    pub dpop: Option<&'a Proof>,
}

impl GrantContext<'_> {
    /// The thumbprint of the key a new access token is bound to.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop.map(|proof| proof.jkt.as_str())
    }

    /// A code or refresh token bound to a key (RFC 9449 §5, §10) is used only with a proof of
    /// that key: without one the request is `invalid_dpop_proof`, with another key's the
    /// `what` it presents is `invalid_grant`.
    pub fn require_key(&self, bound: Option<&str>, what: &str) -> Result<(), Error> {
        let Some(bound) = bound else {
            return Ok(());
        };
        match self.dpop_jkt() {
            Some(jkt) if secret::constant_time_eq(jkt, bound) => Ok(()),
            Some(_) => Err(Error::InvalidGrant(format!(
                "the {what} is bound to another DPoP key"
            ))),
            None => Err(Error::InvalidDpopProof(format!(
                "the {what} is DPoP-bound: the request needs a proof of its key"
            ))),
        }
    }

    /// The key a new refresh token is bound to (RFC 9449 §5): a public client's proof key. A
    /// confidential client's refresh tokens stay bound to its authentication alone.
    pub fn refresh_token_binding(&self) -> Option<&str> {
        match self.client.client_type {
            ClientType::Public => self.dpop_jkt(),
            ClientType::Confidential => None,
        }
    }
}

/// Issues the tokens of a grant a person gave: an access token for `audience`, a refresh token
/// for the whole `granted` audience when the client may use them, and an ID token when `openid`
/// was granted.
async fn issue_for_person(
    context: &GrantContext<'_>,
    user: &User,
    scope: &ScopeSet,
    granted: &[String],
    audience: &[String],
    link: GrantLink<'_>,
) -> Result<TokenResponse, Error> {
    let client = context.client;
    let refresh_token = if client.allows_grant(GrantType::RefreshToken) {
        let (token, stored) = context.tokens.mint_refresh_token(
            client,
            user,
            scope,
            granted,
            link,
            context.refresh_token_binding(),
        );
        context.store.insert_refresh_token(&stored).await?;
        Some(token)
    } else {
        None
    };
    context
        .tokens
        .issue(Issue {
            client,
            user: Some(user),
            scope,
            grant: Some(link),
            refresh_token,
            with_id_token: scope.contains("openid"),
            audience,
            exchanged: None,
            dpop_jkt: context.dpop_jkt(),
        })
        .await
}

/// One grant type of the token endpoint.
#[async_trait]
pub trait TokenGrant: Send + Sync {
    /// The registry entry a client must allow for this grant.
    fn grant_type(&self) -> GrantType;

    /// Runs the grant for an authenticated client that is allowed to use it.
    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error>;
}

/// Every grant the token endpoint serves, looked up by `grant_type`.
pub struct GrantRegistry {
    grants: Vec<Box<dyn TokenGrant>>,
}

impl GrantRegistry {
    /// The grants Gatehouse offers. Adding a grant is one module and one line here.
    pub fn standard() -> Self {
        GrantRegistry {
            grants: vec![
                Box::new(AuthorizationCodeGrant),
                Box::new(ClientCredentialsGrant),
                Box::new(DeviceCodeGrant),
                Box::new(JwtBearerGrant),
                Box::new(PasswordGrant),
                Box::new(RefreshTokenGrant),
                Box::new(TokenExchangeGrant),
            ],
        }
    }

    /// The `grant_type` values served, for discovery.
    pub fn supported(&self) -> Vec<&'static str> {
        self.grants
            .iter()
            .filter_map(|g| g.grant_type().token_endpoint_value())
            .collect()
    }

    /// Finds the grant for a request; `unsupported_grant_type` when there is none.
    pub fn grant_for(&self, request: &TokenRequest) -> Result<&dyn TokenGrant, Error> {
        let grant_type = request.require("grant_type")?;
        self.grants
            .iter()
            .find(|g| g.grant_type().token_endpoint_value() == Some(grant_type))
            .map(|g| g.as_ref())
            .ok_or_else(|| Error::UnsupportedGrantType("the grant_type is not supported".into()))
    }

    /// Runs the request's grant for an authenticated client.
    pub async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let grant = self.grant_for(request)?;
        if !context.client.allows_grant(grant.grant_type()) {
            return Err(Error::UnauthorizedClient(format!(
                "this client may not use the {} grant",
                grant.grant_type()
            )));
        }
        // RFC 9449 §5.2: `dpop_bound_access_tokens` clients always use DPoP.
        if context.client.dpop_bound_access_tokens && context.dpop.is_none() {
            return Err(Error::InvalidDpopProof(
                "this client must present a DPoP proof with every token request".into(),
            ));
        }
        grant.exchange(context, request).await
    }
}
