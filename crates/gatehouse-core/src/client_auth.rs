//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3). The HTTP layer extracts what the client presented; the decision is made here.

use crate::Error;
use crate::client::{Client, ClientType};
use crate::federation::Federation;
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
    /// A signed assertion (`private_key_jwt`, RFC 7523 §2.2).
    PrivateKeyJwt,
}

#[derive(Debug, Clone)]
pub struct PresentedCredentials {
    pub client_id: String,
    pub secret: Option<Secret>,
    /// The `client_assertion` of `private_key_jwt`.
    pub assertion: Option<String>,
    pub method: AuthMethod,
}

/// Authenticates a client. Every failure gives the same `invalid_client`, so the answer never
/// tells whether the client exists, is disabled, or only the secret was wrong.
pub async fn authenticate(
    tokens: &TokenService,
    federation: &Federation,
    presented: &PresentedCredentials,
) -> Result<Arc<Client>, Error> {
    let failed = || Error::InvalidClient("client authentication failed".into());
    let hasher = tokens.hasher();
    let client = tokens
        .client(&presented.client_id)
        .await?
        .filter(|c| c.active)
        .ok_or_else(failed)?;
    if let Some(assertion) = &presented.assertion {
        return match client.client_type {
            ClientType::Confidential => {
                federation
                    .authenticate_client_assertion(&client, assertion)
                    .await?;
                Ok(client)
            }
            ClientType::Public => Err(failed()),
        };
    }
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
