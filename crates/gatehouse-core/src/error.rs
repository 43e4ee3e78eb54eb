//! The domain's one error type.
//!
//! Protocol variants carry the RFC 6749 §5.2 / RFC 6750 §3.1 / RFC 7009 error codes; the HTTP
//! crate decides status codes and headers from them in exactly one place. Descriptions are
//! written for the client's developer and never contain a secret, a token or a reason that would
//! tell an attacker which part of a credential was wrong.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RFC 6749 §5.2 `invalid_request`.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// RFC 6749 §5.2 `invalid_client`: client authentication failed.
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// RFC 6749 §5.2 `invalid_grant`.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// RFC 6749 §5.2 `unauthorized_client`: the client may not use this grant or operation.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    /// RFC 6749 §5.2 `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 8707 §2 `invalid_target`: a `resource` that is not a registered audience, or not
    /// part of the grant a request narrows.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// An authorization refused, or not given yet, where no redirect carries the answer: a
    /// pushed request (RFC 9126 §2.3, with its RFC 6749 §4.1.2.1 or OpenID Connect error code),
    /// or a device's poll (RFC 8628 §3.5: `authorization_pending`, `slow_down`,
    /// `access_denied`, `expired_token`).
    #[error("{error}: {description}")]
    AuthorizationRefused {
        error: &'static str,
        description: String,
    },
    /// RFC 6750 §3.1: no bearer token was presented at all (no `error` code is sent).
    #[error("a bearer token is required")]
    MissingToken,
    /// RFC 6750 §3.1 `invalid_token`: expired, revoked, malformed or unknown.
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    /// RFC 9449 §5, §7.1 `invalid_dpop_proof`: a DPoP proof is missing where one is needed, or
    /// fails a check of §4.3.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(String),
    /// RFC 9449 §8, §9 `use_dpop_nonce`: the proof must carry the server's nonce, this one.
    #[error("use_dpop_nonce: the DPoP proof must carry the server's current nonce")]
    UseDpopNonce { nonce: String },
    /// RFC 9449 §7.1 `invalid_token` under the DPoP scheme: a DPoP-bound token presented as a
    /// bearer token, a token presented with a proof of another key, or an unbound token
    /// presented as DPoP-bound.
    #[error("invalid_token: {0}")]
    InvalidDpopToken(String),
    /// RFC 6750 §3.1 `insufficient_scope`, with the scope that would have sufficed.
    #[error("insufficient_scope: {0}")]
    InsufficientScope(String),
    /// The authenticated caller lacks the role an administrative operation needs.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// An administrative operation names a record that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An administrative operation would create a duplicate.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An administrative input breaks a rule of the registry.
    #[error("invalid: {0}")]
    Validation(String),
    /// A gateway route's upstream could not be reached or failed before answering.
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// A gateway route's upstream did not answer within the route's time limit.
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    /// Too many attempts (RFC 6585 §4): try again after this many seconds. The OAuth RFCs
    /// define no error code for it, so none is sent.
    #[error("too many attempts: retry after {retry_after} s")]
    Throttled { retry_after: u64 },
    /// Storage failed; the cause is logged by the HTTP layer and never shown to callers.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Anything else that is our fault (key material, encoding).
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Error::InvalidRequest(description.into())
    }

    pub fn validation(description: impl Into<String>) -> Self {
        Error::Validation(description.into())
    }

    /// What went wrong, without the variant's prefix, for messages that name the record
    /// themselves.
    pub fn description(&self) -> String {
        match self {
            Error::Validation(text) | Error::Conflict(text) | Error::Forbidden(text) => {
                text.clone()
            }
            Error::NotFound(what) => format!("{what} not found"),
            other => other.to_string(),
        }
    }
}

/// A description as it may be sent to a client: RFC 6749 §4.1.2.1 and §5.2 allow only
/// `%x20-21 / %x23-5B / %x5D-7E` in `error_description` (printable ASCII without `"` and `\`), and
/// RFC 6750 §3 the same in a challenge's quoted strings. Descriptions are written by Gatehouse and
/// never quote the caller's input; this is the last line that keeps any other character out of
/// every response, redirect and header.
pub fn description_text(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' '..='!' | '#'..='[' | ']'..='~'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_keep_only_the_characters_rfc_6749_allows() {
        assert_eq!(
            description_text("a \"quoted\" \\path\n§3.3 <b>é</b>\t"),
            "a quoted path3.3 <b></b>"
        );
    }
}
