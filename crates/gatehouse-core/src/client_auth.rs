//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3). The HTTP layer extracts what the client presented; the decision is made here.

use crate::Error;
use crate::client::{Client, ClientType};
use std::sync::Arc;

use crate::secret::Secret;
use crate::token::TokenService;

/// How the client presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic (`client_secret_basic`).
    SecretBasic,
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    SecretPost,
    /// Only a `client_id`: a public client (`none`).
    None,
}

#[derive(Debug, Clone)]
pub struct PresentedCredentials {
    pub client_id: String,
    pub secret: Option<Secret>,
    pub method: AuthMethod,
}

/// Authenticates a client. Every failure gives the same `invalid_client`, so the answer never
/// tells whether the client exists, is disabled, or only the secret was wrong.
pub async fn authenticate(
    tokens: &TokenService,
    presented: &PresentedCredentials,
) -> Result<Arc<Client>, Error> {
    let failed = || Error::InvalidClient("client authentication failed".into());
    let hasher = tokens.hasher();
    let client = tokens
        .client(&presented.client_id)
        .await?
        .filter(|c| c.active)
        .ok_or_else(failed)?;
    match (&client.client_type, &presented.secret, &client.secret_hash) {
        (ClientType::Confidential, Some(secret), Some(hash))
            if hasher.verify(secret.expose(), hash) =>
        {
            Ok(client)
        }
        (ClientType::Public, None, _) => Ok(client),
        _ => Err(failed()),
    }
}
