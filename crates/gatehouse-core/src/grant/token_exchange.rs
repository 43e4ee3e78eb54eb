//! Token exchange (RFC 8693): a client trades a token it holds — a Gatehouse access token, or a
//! trusted JWT provider's — for an access token of the same subject, for another audience or
//! a narrower scope. Without an actor token the new token simply stands for the subject
//! (impersonation); with one, it says who acts for the subject (delegation, the `act` claim).
//!
//! Who may exchange what:
//! - the client is confidential and has the `token_exchange` grant;
//! - it holds the subject token: the token was issued to it or is for an audience it serves
//!   (a provider's token: the provider lists the client among the applications that may present
//!   its tokens);
//! - the subject token stands for a user, unless it is the client's own token;
//! - the actor token is a Gatehouse access token issued to the client itself: a client speaks
//!   only for itself or its own users as the actor;
//! - the new scope lies within the subject token's and the client's, and a new audience is one
//!   of the client's `exchange_audiences` and registered.
//!
//! No refresh token is issued: the new token lives no longer than the subject token, and the
//! client can exchange again while that one is valid.

use async_trait::async_trait;

use super::{GrantContext, TokenGrant, TokenRequest};
use crate::Error;
use crate::audience;
use crate::audit::{Actor, AuditEvent};
use crate::client::{Client, ClientType, GrantType};
use crate::scope::ScopeSet;
use crate::token::{AccessTokenInfo, Act, Exchanged, Issue, TokenResponse, TokenService};

/// RFC 8693 §3: an access token of this server (opaque or JWT), the only type issued.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT, accepted as a subject token from a trusted JWT provider.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The most actors one token's chain of delegation may name: each exchange adds one, and a
/// chain must not grow the token without bound.
pub const MAX_DELEGATION_DEPTH: usize = 5;

pub struct TokenExchangeGrant;

#[async_trait]
impl TokenGrant for TokenExchangeGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::TokenExchange
    }

    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = context.client;
        if client.client_type != ClientType::Confidential {
            return Err(Error::UnauthorizedClient(
                "only confidential clients may exchange tokens".into(),
            ));
        }
        let subject_token = request.require("subject_token")?;
        let subject_type = request.require("subject_token_type")?;
        let actor = match (request.get("actor_token"), request.get("actor_token_type")) {
            (Some(token), Some(token_type)) => Some((token, token_type)),
            (None, None) => None,
            // §2.1: the type is required with an actor token, and must not come without one.
            _ => {
                return Err(Error::invalid_request(
                    "actor_token and actor_token_type go together",
                ));
            }
        };
        if request
            .get("requested_token_type")
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
        {
            return Err(Error::invalid_request(
                "only access tokens are issued (requested_token_type)",
            ));
        }
        let mut targets = request.resources().to_vec();
        targets.extend(request.get("audience").map(str::to_owned));

        let subject = match subject_type {
            ACCESS_TOKEN_TYPE => {
                let subject = own_token(context.tokens, subject_token, "subject").await?;
                if !audience::holds(
                    client,
                    context.tokens.issuer(),
                    &subject.client_id,
                    &subject.audience,
                ) {
                    return Err(Error::invalid_request(
                        "the subject token was neither issued to this client nor is it for an \
                         audience this client serves",
                    ));
                }
                subject
            }
            JWT_TOKEN_TYPE => {
                context
                    .federation
                    .validate_subject_token(client, subject_token)
                    .await?
            }
            _ => {
                return Err(Error::invalid_request(
                    "the subject_token_type is not supported",
                ));
            }
        };
        let actor = match actor {
            Some((token, ACCESS_TOKEN_TYPE)) => {
                let actor = own_token(context.tokens, token, "actor").await?;
                if actor.client_id != client.client_id {
                    return Err(Error::invalid_request(
                        "the actor token was not issued to this client",
                    ));
                }
                Some(actor)
            }
            Some(_) => {
                return Err(Error::invalid_request(
                    "the actor_token_type is not supported",
                ));
            }
            None => None,
        };
        issue_exchanged(
            context.tokens,
            client,
            &subject,
            actor.as_ref(),
            &targets,
            request.get("scope"),
            context.dpop_jkt(),
        )
        .await
    }
}

/// One of this server's access tokens, still valid, presented as the subject or actor token;
/// RFC 8693 §2.2.2 answers `invalid_request` to any such token it refuses.
async fn own_token(
    tokens: &TokenService,
    token: &str,
    role: &str,
) -> Result<AccessTokenInfo, Error> {
    tokens.validate(token).await.map_err(|error| match error {
        Error::InvalidToken(_) => {
            Error::invalid_request(format!("the {role} token is invalid, expired or revoked"))
        }
        other => other,
    })
}

/// Issues the token an exchange makes from a validated `subject` (and `actor`) for `client`:
/// the grant's last step, and the whole of a gateway route's exchange, where Gatehouse itself
/// received the subject token. `dpop_jkt` binds it to the key the request proved (RFC 9449).
pub async fn issue_exchanged(
    tokens: &TokenService,
    client: &Client,
    subject: &AccessTokenInfo,
    actor: Option<&AccessTokenInfo>,
    targets: &[String],
    scope: Option<&str>,
    dpop_jkt: Option<&str>,
) -> Result<TokenResponse, Error> {
    let user = match &subject.user_id {
        Some(user_id) => Some(
            tokens
                .user(user_id)
                .await?
                .filter(|u| u.can_authenticate())
                .ok_or_else(|| {
                    Error::invalid_request("the subject token's user is no longer active")
                })?,
        ),
        // A token without a user stands for its client; the new token, issued to this client,
        // could only stand for this one.
        None if subject.client_id == client.client_id => None,
        None => {
            return Err(Error::invalid_request(
                "the subject token acts for no user, and another client's own token cannot be \
                 exchanged",
            ));
        }
    };
    let act = act_for(subject.act.as_ref(), actor.map(AccessTokenInfo::subject))?;
    let scope = ScopeSet::narrow(scope, &subject.scope, &client.allowed_scope_set())?;
    let mut audience = audience::exchange_targets(client, &subject.audience, targets)?;
    if !targets.is_empty() {
        audience = tokens.audience_for(&audience).await?;
    }
    let mut response = tokens
        .issue(Issue {
            client,
            user: user.as_deref(),
            scope: &scope,
            grant: None,
            refresh_token: None,
            with_id_token: false,
            audience: &audience,
            exchanged: Some(Exchanged {
                act: act.as_ref(),
                expires_by: subject.expires_at,
            }),
            dpop_jkt,
        })
        .await?;
    let mut event = AuditEvent::new("token.exchanged", subject.subject())
        .with("subject_client_id", subject.client_id.as_str())
        .with("audience", audience.clone())
        .with("scope", scope.to_string());
    if let Some(act) = &act {
        event = event.with("actor", act.sub.as_str());
    }
    tokens
        .security_event(
            Actor::at_request(&client.client_id, Some(&client.client_id)),
            event,
        )
        .await?;
    response.issued_token_type = Some(ACCESS_TOKEN_TYPE.to_owned());
    Ok(response)
}

/// RFC 8693 §4.1: who acts for the new token's subject. Without an actor (impersonation) the
/// subject token's chain stays as it was — a delegated token does not become the subject's own
/// by being exchanged; an actor goes outermost, the earlier chain nested within.
pub fn act_for(subject_act: Option<&Act>, actor: Option<&str>) -> Result<Option<Act>, Error> {
    let Some(actor) = actor else {
        return Ok(subject_act.cloned());
    };
    let act = Act {
        sub: actor.to_owned(),
        act: subject_act.cloned().map(Box::new),
    };
    if act.depth() > MAX_DELEGATION_DEPTH {
        return Err(Error::invalid_request(format!(
            "a token may name at most {MAX_DELEGATION_DEPTH} actors"
        )));
    }
    Ok(Some(act))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(sub: &str, earlier: Option<Act>) -> Act {
        Act {
            sub: sub.into(),
            act: earlier.map(Box::new),
        }
    }

    #[test]
    fn impersonation_keeps_the_chain_and_delegation_nests_it() {
        assert_eq!(act_for(None, None).unwrap(), None);
        assert_eq!(act_for(None, Some("svc")).unwrap(), Some(act("svc", None)));
        let earlier = act("first", None);
        assert_eq!(
            act_for(Some(&earlier), None).unwrap(),
            Some(earlier.clone())
        );
        let chained = act_for(Some(&earlier), Some("second")).unwrap().unwrap();
        assert_eq!(chained, act("second", Some(earlier)));
        assert_eq!(
            serde_json::to_value(&chained).unwrap(),
            serde_json::json!({"sub": "second", "act": {"sub": "first"}})
        );
    }

    #[test]
    fn chains_are_bounded() {
        let mut chain = None;
        for depth in 1..=MAX_DELEGATION_DEPTH {
            chain = act_for(chain.as_ref(), Some(&format!("actor{depth}"))).unwrap();
        }
        assert_eq!(chain.as_ref().unwrap().depth(), MAX_DELEGATION_DEPTH);
        assert!(matches!(
            act_for(chain.as_ref(), Some("one too many")),
            Err(Error::InvalidRequest(_))
        ));
        // Impersonation adds no actor, so a full chain can still be exchanged.
        assert_eq!(act_for(chain.as_ref(), None).unwrap(), chain);
    }
}
