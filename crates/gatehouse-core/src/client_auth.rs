//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3). The HTTP layer extracts what the client presented; the decision is made here.

use crate::Error;
use crate::client::{Client, ClientType, MAX_CLIENT_ID_LENGTH};
use crate::federation::Federation;
use std::sync::Arc;

use crate::secret::Secret;
use crate::throttle::{ClientThrottle, Standing};
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
/// tells whether the client exists, is disabled, or only the secret was wrong. A presented
/// secret goes through `throttle` first: a client_id locked for guessing is refused with
/// [`Error::Throttled`] before its secret is looked at.
pub async fn authenticate(
    tokens: &TokenService,
    federation: &Federation,
    throttle: &ClientThrottle,
    presented: &PresentedCredentials,
) -> Result<Arc<Client>, Error> {
    let failed = || Error::InvalidClient("client authentication failed".into());
    let client = tokens
        .client(&presented.client_id)
        .await?
        .filter(|c| c.active);
    if let Some(assertion) = &presented.assertion {
        let client = client.ok_or_else(failed)?;
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
    let Some(secret) = &presented.secret else {
        return client
            .filter(|c| c.client_type == ClientType::Public)
            .ok_or_else(failed);
    };
    // No application has a longer client_id; not counting such guesses keeps the throttle's
    // memory small.
    if presented.client_id.len() > MAX_CLIENT_ID_LENGTH {
        return Err(failed());
    }
    let now = tokens.clock().now();
    let standing = throttle.standing(&presented.client_id, now);
    if let Standing::Locked { retry_after } = standing {
        return Err(Error::Throttled { retry_after });
    }
    let hasher = tokens.hasher();
    let authenticated = client.filter(|c| {
        // Both comparisons run whichever matches, so timing does not tell which secret did.
        let current = c
            .secret_hash
            .as_ref()
            .is_some_and(|hash| hasher.verify(secret.expose(), hash));
        let previous = c
            .previous_secret
            .as_ref()
            .is_some_and(|p| p.expires_at > now && hasher.verify(secret.expose(), &p.hash));
        c.client_type == ClientType::Confidential && (current | previous)
    });
    match authenticated {
        Some(client) => {
            if standing == Standing::Failing {
                throttle.succeeded(&presented.client_id, now);
            }
            Ok(client)
        }
        None => {
            throttle.failed(&presented.client_id, now);
            Err(failed())
        }
    }
}
