//! Pushed authorization requests (RFC 9126): a client sends the parameters of an authorization
//! request straight to the server, authenticated, and the browser carries only a short
//! reference to them. Nothing the browser or the page's address could change reaches the
//! request, and the parameters are checked before the user sees anything.
//!
//! A pushed request is validated when it is pushed, exactly as at the authorization endpoint,
//! so a client learns of a mistake from the push's answer instead of at its redirect URI. It is
//! stored by the keyed hash of its reference, for [`PUSHED_REQUEST_LIFETIME`], and used once:
//! the authorization endpoint takes it out of the store before it validates it again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::authorize::{AuthorizationRequest, AuthorizeError, Pushing};
use crate::client::Client;
use crate::dpop::Proof;
use crate::secret;
use crate::store::{PushedRequestRecord, Store};
use crate::token::TokenService;

/// How long a pushed request waits for the browser (RFC 9126 §2.2 suggests 5 to 600 s): a
/// minute, enough for a redirect, too short to collect references.
pub const PUSHED_REQUEST_LIFETIME: i64 = 60;
/// The form of every `request_uri` this server hands out (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The answer to a push: the reference the browser carries, and how long it stays usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedAuthorization {
    pub request_uri: String,
    pub expires_in: i64,
}

/// What a pushed request stored: the parameters the authorization endpoint will read.
#[derive(Debug, Serialize, Deserialize)]
struct Parameters {
    params: BTreeMap<String, String>,
    resources: Vec<String>,
}

/// RFC 9449 §10.1: a request pushed with a DPoP proof binds its code to the proof's key, as
/// `dpop_jkt` does; both given, they must name the same key.
pub fn bind_to_key(params: &mut BTreeMap<String, String>, proof: &Proof) -> Result<(), Error> {
    match params.get("dpop_jkt") {
        Some(named) if *named != proof.jkt => Err(Error::InvalidDpopProof(
            "dpop_jkt does not name the key of the DPoP proof".into(),
        )),
        Some(_) => Ok(()),
        None => {
            params.insert("dpop_jkt".into(), proof.jkt.clone());
            Ok(())
        }
    }
}

/// Validates an authorization request an authenticated `client` pushed and stores it.
///
/// A `client_id` among the parameters must be the client's own (RFC 9126 §2.1); a `request_uri`
/// cannot be pushed. A request the authorization endpoint would refuse is refused here with
/// the same error code.
pub async fn push(
    store: &dyn Store,
    tokens: &TokenService,
    client: &Client,
    mut params: BTreeMap<String, String>,
    resources: Vec<String>,
    now: i64,
) -> Result<PushedAuthorization, Error> {
    match params.get("client_id") {
        Some(named) if *named != client.client_id => {
            return Err(Error::invalid_request(
                "client_id is not the authenticated client",
            ));
        }
        Some(_) => {}
        None => {
            params.insert("client_id".into(), client.client_id.clone());
        }
    }
    if params.contains_key("request_uri") {
        return Err(Error::invalid_request("a request_uri cannot be pushed"));
    }
    // Client authentication already happened; its parameters are not the request's.
    for credential in ["client_secret", "client_assertion", "client_assertion_type"] {
        params.remove(credential);
    }
    match AuthorizationRequest::validate(store, tokens, &params, &resources, now, Pushing::Pushed)
        .await
    {
        Ok(_) => {}
        Err(AuthorizeError::Page(why)) => return Err(Error::InvalidRequest(why)),
        Err(AuthorizeError::Redirect(redirect)) => {
            return Err(Error::AuthorizationRefused {
                error: redirect.error,
                description: redirect.description,
            });
        }
        Err(AuthorizeError::Internal(error)) => return Err(error),
    }
    let reference = secret::generate();
    let parameters = serde_json::to_string(&Parameters { params, resources })
        .map_err(|e| Error::Internal(format!("encoding a pushed request: {e}")))?;
    store
        .insert_pushed_request(&PushedRequestRecord {
            request_hash: tokens.hasher().hash(&reference),
            client_id: client.client_id.clone(),
            parameters,
            expires_at: now + PUSHED_REQUEST_LIFETIME,
        })
        .await?;
    Ok(PushedAuthorization {
        request_uri: format!("{REQUEST_URI_PREFIX}{reference}"),
        expires_in: PUSHED_REQUEST_LIFETIME,
    })
}

/// Takes the pushed request a `request_uri` names, for the client the authorization request
/// names, out of the store: its parameters and resources. Anything else about the request in
/// the browser's address is ignored (RFC 9126 §4). An unknown, used, expired or another
/// client's reference is an error page, since none of its redirect URIs can be trusted.
pub(crate) async fn take(
    store: &dyn Store,
    tokens: &TokenService,
    client_id: Option<&str>,
    request_uri: &str,
    now: i64,
) -> Result<(BTreeMap<String, String>, Vec<String>), AuthorizeError> {
    let unusable = || {
        AuthorizeError::Page(
            "The pushed authorization request is unknown, used or expired. Start again from \
             the application."
                .to_owned(),
        )
    };
    let reference = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .ok_or_else(unusable)?;
    let Some(record) = store
        .take_pushed_request(&tokens.hasher().hash(reference))
        .await
        .map_err(Error::from)?
    else {
        return Err(unusable());
    };
    if !usable(&record, client_id, now) {
        return Err(unusable());
    }
    let Parameters { params, resources } = serde_json::from_str(&record.parameters)
        .map_err(|e| Error::Internal(format!("a stored pushed request does not decode: {e}")))?;
    Ok((params, resources))
}

/// Whether a taken request may serve: unexpired, and brought for the client that pushed it.
fn usable(record: &PushedRequestRecord, client_id: Option<&str>, now: i64) -> bool {
    now < record.expires_at && client_id == Some(record.client_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_request_serves_its_client_until_it_expires() {
        let record = PushedRequestRecord {
            request_hash: "h".into(),
            client_id: "billing".into(),
            parameters: "{}".into(),
            expires_at: 1_060,
        };
        assert!(usable(&record, Some("billing"), 1_000));
        assert!(usable(&record, Some("billing"), 1_059));
        assert!(!usable(&record, Some("billing"), 1_060));
        assert!(!usable(&record, Some("other"), 1_000));
        assert!(!usable(&record, None, 1_000));
    }
}
