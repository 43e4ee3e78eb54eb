//! Why a token is refused: every check the APIs make of a presented access token, each with its
//! outcome, for an administrator who pastes one into the console.
//!
//! The checks are the validation's own — [`TokenService`](crate::token::TokenService) for
//! Gatehouse's tokens, [`Federation`](crate::federation::Federation) for a JWT provider's —
//! recorded through [`Checks`]: validating stops at the first failure, inspecting goes on and
//! reports them all. A report never holds the token, a hash of it or a key: only what the token
//! says about itself and what was found wrong with it.

use crate::Error;
use crate::token::AccessTokenInfo;

/// One check a presented token goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A token this server can read: an opaque token of its own on record, or a JWT.
    Known,
    Issuer,
    /// The JWT provider trusted for the issuer is active and gives API access.
    Provider,
    /// The header, the key and the signature.
    Signature,
    Audience,
    Subject,
    Expiry,
    NotBefore,
    /// When it was issued, and for how long.
    IssuedAt,
    Revocation,
    /// The kind of token (access token, plain JWT, ID token) is one the provider accepts.
    TokenType,
    Application,
    User,
}

impl Check {
    pub fn label(self) -> &'static str {
        match self {
            Check::Known => "Known token",
            Check::Issuer => "Issuer",
            Check::Provider => "JWT provider",
            Check::Signature => "Signature",
            Check::Audience => "Audience",
            Check::Subject => "Subject",
            Check::Expiry => "Expiry",
            Check::NotBefore => "Not before",
            Check::IssuedAt => "Issued at",
            Check::Revocation => "Revocation",
            Check::TokenType => "Token type",
            Check::Application => "Application",
            Check::User => "User",
        }
    }
}

/// A check and how it turned out: `failure` says what is wrong, `None` when it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub check: Check,
    pub failure: Option<String>,
}

/// What a token says about itself, read whether or not it is valid: unproven unless its
/// signature (or, for an opaque token, its record) checked out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFacts {
    pub subject: Option<String>,
    pub user_name: Option<String>,
    pub client_id: Option<String>,
    pub issuer: Option<String>,
    pub scope: String,
    pub audience: Vec<String>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl TokenFacts {
    pub(crate) fn of(info: &AccessTokenInfo, issuer: &str) -> TokenFacts {
        TokenFacts {
            subject: Some(info.subject().to_owned()),
            user_name: info.user_name.clone(),
            client_id: Some(info.client_id.clone()),
            issuer: Some(issuer.to_owned()),
            scope: info.scope.to_string(),
            audience: info.audience.clone(),
            issued_at: Some(info.issued_at),
            expires_at: Some(info.expires_at),
        }
    }
}

/// Every check a token went through, in the order the APIs make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReport {
    /// What the token is, as far as it could be told.
    pub kind: String,
    /// What it says, when it could be read.
    pub facts: Option<TokenFacts>,
    pub checks: Vec<CheckResult>,
}

impl TokenReport {
    /// Whether the APIs accept it: it passed every check.
    pub fn valid(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.failure.is_none())
    }

    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.failure.is_some())
    }
}

/// Where a validation's checks go. Validating keeps nothing and stops at the first failure;
/// inspecting keeps every outcome and goes on.
pub(crate) struct Checks {
    every: bool,
    results: Vec<CheckResult>,
}

/// Why a validation ended before its last check.
pub(crate) enum Halt {
    /// A check failed (validating), or nothing further can be read of the token (inspecting).
    Refused,
    /// The checks could not be made: the store failed.
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(error: Error) -> Self {
        Halt::Failed(error)
    }
}

impl Checks {
    pub(crate) fn until_failure() -> Checks {
        Checks {
            every: false,
            results: Vec::new(),
        }
    }

    pub(crate) fn every() -> Checks {
        Checks {
            every: true,
            results: Vec::new(),
        }
    }

    /// Records how `check` turned out: `failure` says what is wrong. A failure ends a
    /// validation.
    pub(crate) fn record(&mut self, check: Check, failure: Option<String>) -> Result<(), Halt> {
        let failed = failure.is_some();
        if self.every {
            self.results.push(CheckResult { check, failure });
        }
        if failed && !self.every {
            return Err(Halt::Refused);
        }
        Ok(())
    }

    pub(crate) fn into_results(self) -> Vec<CheckResult> {
        self.results
    }
}
