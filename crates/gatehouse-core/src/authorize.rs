//! The authorization endpoint's rules (RFC 6749 §3.1, §4.1.1, §4.2.1; OpenID Connect Core §3;
//! RFC 9207; RFC 9700 §2.1, §4.1): which requests are valid, which errors may be sent back to
//! the client and which must not, and what the response carries.
//!
//! Until the client and its redirect URI are established, nothing is sent to the redirect URI:
//! an unknown client or an unregistered redirect URI is shown to the user as an error page.
//! Every later error goes back to the client (§4.1.2.1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::client::{Client, GrantType};
use crate::dpop;
use crate::pkce::{self, ChallengeMethod};
use crate::pushed;
use crate::scope::ScopeSet;
use crate::secret;
use crate::store::{AuthorizationCodeRecord, Store};
use crate::token::{GrantLink, Issue, TokenService};
use crate::user::User;

/// How long an authorization code lives.
pub const CODE_LIFETIME: i64 = 60;
/// Prefix of authorization codes.
pub const CODE_PREFIX: &str = "gh_ac_";

/// Where the response parameters go (OAuth 2.0 Multiple Response Types, Form Post Response
/// Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

/// A validated authorization request. It is sealed into the login and consent forms, so it
/// travels through the browser without being open to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// The redirect URI responses go to.
    pub redirect_uri: String,
    /// Whether the request named it (then the token request must repeat it).
    pub redirect_uri_given: bool,
    pub code: bool,
    pub token: bool,
    pub id_token: bool,
    pub response_mode: ResponseMode,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The user a verified `id_token_hint` names (their id, the ID token's `sub`): only they may
    /// be the one the response is for.
    #[serde(default)]
    pub id_token_hint_subject: Option<String>,
    /// Whom the tokens of this authorization are for: the resources the request named
    /// (RFC 8707 §2.1), or this server's issuer.
    pub audience: Vec<String>,
    /// The thumbprint of the DPoP key the code is bound to (RFC 9449 §10), when the request
    /// named one (or was pushed with a proof).
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// When the request expires if the user does not finish.
    pub expires_at: i64,
}

/// A failed authorization request.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI could not be trusted: show this to the user, never redirect.
    Page(String),
    /// Tell the client, at its redirect URI.
    Redirect(ErrorRedirect),
    /// Our own failure.
    Internal(Error),
}

/// An error response for the client (RFC 6749 §4.1.2.1).
#[derive(Debug)]
pub struct ErrorRedirect {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub error: &'static str,
    pub description: String,
    pub state: Option<String>,
}

/// How an authorization request's parameters arrived (RFC 9126).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushing {
    /// At the pushed authorization request endpoint, from the authenticated client.
    Pushed,
    /// At the authorization endpoint, from the browser: as parameters, or as a `request_uri`
    /// naming a pushed request. With `required`, only the latter is accepted.
    Direct { required: bool },
}

/// The browser's signed-in user, as the authorization endpoint sees them.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn<'a> {
    pub user: &'a User,
    /// When they logged in.
    pub auth_time: i64,
    /// Whether they logged in in answer to this request, which is what `prompt=login` asks
    /// for.
    pub just_now: bool,
}

/// What is known of the user's consent to a request.
#[derive(Debug, Clone, Copy)]
pub enum Consent<'a> {
    /// The scopes the user allowed the application before, if ever.
    Remembered(Option<&'a ScopeSet>),
    /// The user answered this request's consent page.
    Answered { allow: bool },
}

/// What the authorization endpoint does next with a validated request.
#[derive(Debug)]
pub enum Decision<'a> {
    /// Nobody fitting is signed in: the user logs in.
    Login,
    /// The signed-in user is asked to consent.
    Consent { user: &'a User },
    /// The client gets its response for the user, who logged in at `auth_time` and has just
    /// consented when `remember_consent` is set.
    Respond {
        user: &'a User,
        auth_time: i64,
        remember_consent: bool,
    },
    /// The client is told why not, at its redirect URI.
    Error(ErrorRedirect),
}

impl From<Error> for AuthorizeError {
    fn from(error: Error) -> Self {
        AuthorizeError::Internal(error)
    }
}

/// The parameters of a response for the client: where to, how, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub params: Vec<(String, String)>,
}

impl AuthorizationRequest {
    pub fn scope_set(&self) -> ScopeSet {
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }

    /// An error for the client of this request.
    fn error(&self, error: &'static str, description: impl Into<String>) -> AuthorizeError {
        AuthorizeError::Redirect(self.error_redirect(error, description))
    }

    fn error_redirect(&self, error: &'static str, description: impl Into<String>) -> ErrorRedirect {
        ErrorRedirect {
            redirect_uri: self.redirect_uri.clone(),
            response_mode: self.response_mode,
            error,
            description: description.into(),
            state: self.state.clone(),
        }
    }

    /// Validates the parameters of an authorization request; `resources` are its `resource`
    /// parameters, the one parameter that may be repeated. A `request_uri` replaces them all
    /// but `client_id` with the pushed request it names, which it uses up.
    pub async fn validate(
        store: &dyn Store,
        tokens: &TokenService,
        params: &BTreeMap<String, String>,
        resources: &[String],
        now: i64,
        pushing: Pushing,
    ) -> Result<(Client, AuthorizationRequest), AuthorizeError> {
        let request_uri = params.get("request_uri").filter(|v| !v.is_empty());
        let taken;
        let (params, resources, pushed) = match (request_uri, pushing) {
            (Some(request_uri), Pushing::Direct { .. }) => {
                let client_id = params.get("client_id").map(String::as_str);
                taken = pushed::take(store, tokens, client_id, request_uri, now).await?;
                (&taken.0, taken.1.as_slice(), true)
            }
            _ => (params, resources, pushing == Pushing::Pushed),
        };
        let get = |name: &str| {
            params
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let page = |why: &str| AuthorizeError::Page(why.to_owned());
        let client_id = get("client_id").ok_or_else(|| page("The request names no client."))?;
        let client = store
            .find_client(client_id)
            .await
            .map_err(Error::from)?
            .filter(|c| c.active)
            .ok_or_else(|| page("The application is unknown or disabled."))?;
        let redirect_uri = match get("redirect_uri") {
            Some(uri) if redirect_uri_matches(&client.redirect_uris, uri) => uri.to_owned(),
            Some(_) => {
                return Err(page(
                    "The redirect URI is not registered for this application.",
                ));
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Err(page(
                    "The request must name one of the application's redirect URIs.",
                ));
            }
        };

        // From here on, errors go back to the client. Until the response type is known the
        // default mode is the query.
        let response_type = get("response_type").unwrap_or_default();
        let mut parts: Vec<&str> = response_type.split(' ').filter(|p| !p.is_empty()).collect();
        parts.sort_unstable();
        parts.dedup();
        let code = parts.contains(&"code");
        let token = parts.contains(&"token");
        let id_token = parts.contains(&"id_token");
        let known = parts
            .iter()
            .all(|p| ["code", "token", "id_token"].contains(p));
        let default_mode = if token || id_token {
            ResponseMode::Fragment
        } else {
            ResponseMode::Query
        };
        let response_mode = match get("response_mode") {
            None => default_mode,
            Some("query") => ResponseMode::Query,
            Some("fragment") => ResponseMode::Fragment,
            Some("form_post") => ResponseMode::FormPost,
            Some(_) => default_mode,
        };
        let mut request = AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri,
            redirect_uri_given: get("redirect_uri").is_some(),
            code,
            token,
            id_token,
            response_mode,
            scope: String::new(),
            state: get("state").map(str::to_owned),
            nonce: get("nonce").map(str::to_owned),
            code_challenge: get("code_challenge").map(str::to_owned),
            code_challenge_method: get("code_challenge_method").map(str::to_owned),
            prompt_none: false,
            prompt_login: false,
            prompt_consent: false,
            max_age: None,
            login_hint: get("login_hint").map(str::to_owned),
            id_token_hint_subject: None,
            audience: Vec::new(),
            dpop_jkt: get("dpop_jkt").map(str::to_owned),
            expires_at: now + 600,
        };
        let push_required = pushing == (Pushing::Direct { required: true })
            || client.require_pushed_authorization_requests;
        if !pushed && push_required {
            return Err(request.error(
                "invalid_request",
                "authorization requests must be pushed first (RFC 9126)",
            ));
        }
        if parts.is_empty() {
            return Err(request.error("invalid_request", "response_type is missing"));
        }
        if !known {
            return Err(request.error(
                "unsupported_response_type",
                "the response_type is not supported",
            ));
        }
        if let Some(mode) = get("response_mode")
            && !["query", "fragment", "form_post"].contains(&mode)
        {
            return Err(request.error("invalid_request", "the response_mode is not supported"));
        }
        // Tokens never travel in a query string (OAuth 2.0 Multiple Response Types §5).
        if (token || id_token) && response_mode == ResponseMode::Query {
            return Err(request.error("invalid_request", "response_mode=query cannot carry tokens"));
        }
        if request
            .dpop_jkt
            .as_deref()
            .is_some_and(|jkt| !dpop::is_thumbprint(jkt))
        {
            return Err(request.error(
                "invalid_request",
                "dpop_jkt is not a JWK SHA-256 thumbprint",
            ));
        }
        if code && !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(request.error(
                "unauthorized_client",
                "this client may not use the authorization code grant",
            ));
        }
        if (token || id_token) && !client.allows_grant(GrantType::Implicit) {
            return Err(request.error(
                "unauthorized_client",
                "this client may not use the implicit grant",
            ));
        }
        if get("request").is_some() {
            return Err(request.error("request_not_supported", "request objects are not supported"));
        }
        let scope = ScopeSet::down_scope(
            get("scope"),
            &client.allowed_scope_set(),
            &client.default_scope_set(),
        )
        .map_err(|e| request.error("invalid_scope", e.to_string()))?;
        request.scope = scope.to_string();
        if id_token && !scope.contains("openid") {
            return Err(request.error("invalid_scope", "an id_token needs the openid scope"));
        }
        request.audience = match tokens.audience_for(resources).await {
            Ok(audience) => audience,
            Err(Error::InvalidTarget(why)) => return Err(request.error("invalid_target", why)),
            Err(other) => return Err(other.into()),
        };
        // OIDC Core §3.2.2.1 / §3.3.2.11: a nonce is required whenever an ID token comes from
        // the authorization endpoint.
        if id_token && request.nonce.is_none() {
            return Err(request.error(
                "invalid_request",
                "nonce is required when an id_token is returned",
            ));
        }
        if let Some(prompt) = get("prompt") {
            for value in prompt.split(' ').filter(|p| !p.is_empty()) {
                match value {
                    "none" => request.prompt_none = true,
                    "login" => request.prompt_login = true,
                    "consent" => request.prompt_consent = true,
                    "select_account" => {}
                    _ => {
                        return Err(
                            request.error("invalid_request", "a prompt value is not supported")
                        );
                    }
                }
            }
            if request.prompt_none && (request.prompt_login || request.prompt_consent) {
                return Err(request.error("invalid_request", "prompt=none cannot be combined"));
            }
        }
        if let Some(hint) = get("id_token_hint") {
            // OpenID Connect Core §3.1.2.1: an ID token this server issued to this client.
            let hint = tokens
                .verify_id_token_hint(hint)
                .filter(|hint| hint.client_id == client.client_id)
                .ok_or_else(|| {
                    AuthorizeError::Redirect(request.hint_error(
                        "id_token_hint is not an ID token this server issued to this client",
                    ))
                })?;
            request.id_token_hint_subject = Some(hint.subject);
        }
        if let Some(max_age) = get("max_age") {
            request.max_age = Some(max_age.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(
                || request.error("invalid_request", "max_age must be a number of seconds"),
            )?);
        }
        if code {
            match &request.code_challenge {
                Some(challenge) => {
                    let method = ChallengeMethod::parse(request.code_challenge_method.as_deref())
                        .map_err(|e| request.error("invalid_request", e.to_string()))?;
                    if method == ChallengeMethod::Plain && !client.allow_plain_pkce {
                        return Err(
                            request.error("invalid_request", "code_challenge_method must be S256")
                        );
                    }
                    if !pkce::is_well_formed_challenge(challenge, method) {
                        return Err(request.error("invalid_request", "code_challenge is malformed"));
                    }
                    request.code_challenge_method = Some(method.as_str().to_owned());
                }
                None if client.pkce_required() => {
                    return Err(
                        request.error("invalid_request", "code_challenge is required (PKCE)")
                    );
                }
                None => {}
            }
        }
        Ok((client, request))
    }

    /// The error for an `id_token_hint` that cannot be honoured: without interaction the user
    /// the hint names is not signed in (`login_required`); with it, the request is wrong.
    fn hint_error(&self, description: &str) -> ErrorRedirect {
        let error = if self.prompt_none {
            "login_required"
        } else {
            "invalid_request"
        };
        self.error_redirect(error, description)
    }

    /// What happens next with this request, given who is signed in in this browser, what is
    /// known of their consent, and the time (OpenID Connect Core §3.1.2.1–§3.1.2.6).
    ///
    /// A login fits when it is recent enough for `max_age` and, under `prompt=login`, made in
    /// answer to this request; without one the user logs in — or, under `prompt=none`, the
    /// client hears `login_required`. The response is only ever for the user an
    /// `id_token_hint` names. Consent is asked for when none covering the request's scopes is
    /// remembered or `prompt=consent` asks for it anew (`consent_required` under
    /// `prompt=none`).
    pub fn decide<'a>(
        &self,
        session: Option<SignedIn<'a>>,
        consent: Consent<'_>,
        now: i64,
    ) -> Decision<'a> {
        if let (Some(signed_in), Consent::Answered { allow }) = (session, consent) {
            // The consent page is shown only to a session this function accepted, and its form
            // is bound to that session: the answer stands on the login accepted then.
            // Asking `prompt=login` or `max_age` again would send the user round in a circle.
            return if allow {
                Decision::Respond {
                    user: signed_in.user,
                    auth_time: signed_in.auth_time,
                    remember_consent: true,
                }
            } else {
                Decision::Error(self.error_redirect("access_denied", "the user denied access"))
            };
        }
        let fitting = session.filter(|s| {
            self.max_age
                .is_none_or(|max_age| now - s.auth_time <= max_age)
                && (s.just_now || !self.prompt_login)
        });
        let Some(signed_in) = fitting else {
            return if self.prompt_none {
                Decision::Error(self.error_redirect("login_required", "the user is not logged in"))
            } else {
                Decision::Login
            };
        };
        if let Some(subject) = &self.id_token_hint_subject
            && *subject != signed_in.user.id
        {
            return Decision::Error(
                self.hint_error("the signed-in user is not the one id_token_hint names"),
            );
        }
        let remembered = match consent {
            Consent::Remembered(Some(granted)) => self.scope_set().is_subset(granted),
            Consent::Remembered(None) | Consent::Answered { .. } => false,
        };
        if self.prompt_consent || !remembered {
            return if self.prompt_none {
                Decision::Error(
                    self.error_redirect("consent_required", "the user has not consented"),
                )
            } else {
                Decision::Consent {
                    user: signed_in.user,
                }
            };
        }
        Decision::Respond {
            user: signed_in.user,
            auth_time: signed_in.auth_time,
            remember_consent: false,
        }
    }

    /// Issues what the request asked for to `user`, who logged in at `auth_time` (in the
    /// browser session `sid`) and consented.
    pub async fn respond(
        &self,
        store: &dyn Store,
        tokens: &TokenService,
        client: &Client,
        user: &User,
        auth_time: i64,
        sid: Option<&str>,
    ) -> Result<AuthorizationResponse, Error> {
        let now = tokens.clock().now();
        let scope = self.scope_set();
        let grant_id = uuid::Uuid::new_v4().to_string();
        let link = GrantLink {
            grant_id: &grant_id,
            auth_time,
            nonce: self.nonce.as_deref(),
            sid,
        };
        let mut params = Vec::new();
        let mut code_value = None;
        if self.code {
            let code = format!("{CODE_PREFIX}{}", secret::generate());
            store
                .insert_authorization_code(&AuthorizationCodeRecord {
                    code_hash: tokens.hasher().hash(&code),
                    grant_id: grant_id.clone(),
                    client_id: client.client_id.clone(),
                    user_id: user.id.clone(),
                    redirect_uri: self.redirect_uri_given.then(|| self.redirect_uri.clone()),
                    scope: self.scope.clone(),
                    nonce: self.nonce.clone(),
                    code_challenge: self.code_challenge.clone(),
                    code_challenge_method: self.code_challenge_method.clone(),
                    auth_time,
                    expires_at: now + CODE_LIFETIME,
                    consumed: false,
                    audience: self.audience.clone(),
                    sid: sid.map(str::to_owned),
                    dpop_jkt: self.dpop_jkt.clone(),
                })
                .await?;
            params.push(("code".to_owned(), code.clone()));
            code_value = Some(code);
        }
        let mut access_token = None;
        if self.token {
            let issued = tokens
                .issue(Issue {
                    client,
                    user: Some(user),
                    scope: &scope,
                    grant: Some(link),
                    refresh_token: None,
                    with_id_token: false,
                    audience: &self.audience,
                    exchanged: None,
                    // RFC 9449 binds tokens at the token endpoint; the implicit grant has none.
                    dpop_jkt: None,
                })
                .await?;
            params.push(("access_token".to_owned(), issued.access_token.clone()));
            params.push(("token_type".to_owned(), issued.token_type));
            params.push(("expires_in".to_owned(), issued.expires_in.to_string()));
            if let Some(scope) = issued.scope {
                params.push(("scope".to_owned(), scope));
            }
            access_token = Some(issued.access_token);
        }
        if self.id_token {
            let id_token = tokens.id_token(
                client,
                user,
                &scope,
                link,
                access_token.as_deref(),
                code_value.as_deref(),
            )?;
            params.push(("id_token".to_owned(), id_token));
        }
        if let Some(state) = &self.state {
            params.push(("state".to_owned(), state.clone()));
        }
        // RFC 9207: the issuer in every response, so a client talking to several servers can
        // tell which one answered.
        params.push(("iss".to_owned(), tokens.issuer().to_owned()));
        Ok(AuthorizationResponse {
            redirect_uri: self.redirect_uri.clone(),
            response_mode: self.response_mode,
            params,
        })
    }
}

impl ErrorRedirect {
    /// The error as response parameters, with `state` and `iss`.
    pub fn into_response(self, issuer: &str) -> AuthorizationResponse {
        let mut params = vec![
            ("error".to_owned(), self.error.to_owned()),
            (
                "error_description".to_owned(),
                crate::error::description_text(&self.description),
            ),
        ];
        if let Some(state) = self.state {
            params.push(("state".to_owned(), state));
        }
        params.push(("iss".to_owned(), issuer.to_owned()));
        AuthorizationResponse {
            redirect_uri: self.redirect_uri,
            response_mode: self.response_mode,
            params,
        }
    }
}

/// RFC 9700 §4.1.3: exact string comparison — except that for loopback redirect URIs of native
/// apps the port may differ (RFC 8252 §7.3), since the app picks a free one at run time. Both
/// sides are compared as the strings they are: a URL parser would read `http://2130706433/`,
/// `http://0x7f.1/` or `http://127.0.0.1:80/a/../cb` as something else than what was presented.
pub fn redirect_uri_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Some(presented) = loopback_without_port(presented) else {
        return false;
    };
    registered
        .iter()
        .any(|r| loopback_without_port(r) == Some(presented))
}

/// A redirect URI on the literal loopback address `127.0.0.1` or `[::1]`, as (host, the rest
/// after the port); `None` for any other URI, including every other spelling of those
/// addresses and a port written with leading zeros.
fn loopback_without_port(uri: &str) -> Option<(&'static str, &str)> {
    let after_scheme = uri.strip_prefix("http://")?;
    let (host, after_host) = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find_map(|host| Some((host, after_scheme.strip_prefix(host)?)))?;
    let rest = match after_host.strip_prefix(':') {
        Some(with_port) => {
            let digits = with_port.bytes().take_while(u8::is_ascii_digit).count();
            let port = &with_port[..digits];
            let canonical = !port.starts_with('0') && port.parse::<u16>().is_ok();
            if !canonical {
                return None;
            }
            &with_port[digits..]
        }
        None => after_host,
    };
    (rest.is_empty() || rest.starts_with(['/', '?'])).then_some((host, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, TestClock};

    fn request() -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            redirect_uri_given: true,
            code: true,
            token: false,
            id_token: false,
            response_mode: ResponseMode::Query,
            scope: "openid profile".into(),
            state: Some("xyz".into()),
            nonce: None,
            code_challenge: None,
            code_challenge_method: None,
            prompt_none: false,
            prompt_login: false,
            prompt_consent: false,
            max_age: None,
            login_hint: None,
            id_token_hint_subject: None,
            audience: Vec::new(),
            dpop_jkt: None,
            expires_at: i64::MAX,
        }
    }

    fn alice() -> User {
        User::for_tests("alice", &[])
    }

    fn signed_in(user: &User, auth_time: i64) -> Option<SignedIn<'_>> {
        Some(SignedIn {
            user,
            auth_time,
            just_now: false,
        })
    }

    fn scopes(value: &str) -> ScopeSet {
        ScopeSet::parse(value).unwrap()
    }

    /// The `error` a decision sends the client, with the request's `state` checked on the way.
    fn client_error(decision: Decision) -> &'static str {
        match decision {
            Decision::Error(redirect) => {
                assert_eq!(redirect.redirect_uri, "https://app.example/cb");
                assert_eq!(redirect.state.as_deref(), Some("xyz"));
                redirect.error
            }
            other => panic!("expected an error for the client, got {other:?}"),
        }
    }

    #[test]
    fn without_a_session_the_user_logs_in_unless_the_client_asked_for_no_prompt() {
        let clock = TestClock::at(1_000);
        let no_consent = Consent::Remembered(None);
        assert!(matches!(
            request().decide(None, no_consent, clock.now()),
            Decision::Login
        ));
        let silent = AuthorizationRequest {
            prompt_none: true,
            ..request()
        };
        assert_eq!(
            client_error(silent.decide(None, no_consent, clock.now())),
            "login_required"
        );
        // An answer to a consent page without the session it was shown to counts for nothing.
        assert!(matches!(
            request().decide(None, Consent::Answered { allow: true }, clock.now()),
            Decision::Login
        ));
    }

    #[test]
    fn a_remembered_consent_covering_the_scopes_answers_at_once() {
        let clock = TestClock::at(1_000);
        let user = alice();
        let session = signed_in(&user, clock.now() - 60);
        let wider = scopes("openid profile email");
        match request().decide(session, Consent::Remembered(Some(&wider)), clock.now()) {
            Decision::Respond {
                user,
                auth_time,
                remember_consent: false,
            } => assert_eq!((user.id.as_str(), auth_time), ("alice-id", 940)),
            other => panic!("expected a response, got {other:?}"),
        }
        let narrower = scopes("openid");
        assert!(matches!(
            request().decide(session, Consent::Remembered(Some(&narrower)), clock.now()),
            Decision::Consent { .. }
        ));
        assert!(matches!(
            request().decide(session, Consent::Remembered(None), clock.now()),
            Decision::Consent { .. }
        ));
        let silent = AuthorizationRequest {
            prompt_none: true,
            ..request()
        };
        assert!(matches!(
            silent.decide(session, Consent::Remembered(Some(&wider)), clock.now()),
            Decision::Respond { .. }
        ));
        assert_eq!(
            client_error(silent.decide(session, Consent::Remembered(Some(&narrower)), clock.now())),
            "consent_required"
        );
    }

    #[test]
    fn prompt_consent_asks_again_despite_a_remembered_consent() {
        let clock = TestClock::at(1_000);
        let user = alice();
        let granted = scopes("openid profile");
        let again = AuthorizationRequest {
            prompt_consent: true,
            ..request()
        };
        assert!(matches!(
            again.decide(
                signed_in(&user, clock.now()),
                Consent::Remembered(Some(&granted)),
                clock.now()
            ),
            Decision::Consent { .. }
        ));
    }

    #[test]
    fn prompt_login_takes_only_a_login_made_for_this_request() {
        let clock = TestClock::at(1_000);
        let user = alice();
        let granted = scopes("openid profile");
        let consent = Consent::Remembered(Some(&granted));
        let fresh_login = AuthorizationRequest {
            prompt_login: true,
            ..request()
        };
        assert!(matches!(
            fresh_login.decide(signed_in(&user, clock.now()), consent, clock.now()),
            Decision::Login
        ));
        let just_now = SignedIn {
            user: &user,
            auth_time: clock.now(),
            just_now: true,
        };
        assert!(matches!(
            fresh_login.decide(Some(just_now), consent, clock.now()),
            Decision::Respond { .. }
        ));
    }

    #[test]
    fn max_age_sends_an_older_login_back_to_the_login_page() {
        let clock = TestClock::at(10_000);
        let user = alice();
        let session = signed_in(&user, clock.now());
        let granted = scopes("openid profile");
        let consent = Consent::Remembered(Some(&granted));
        let recent = AuthorizationRequest {
            max_age: Some(300),
            ..request()
        };
        clock.advance(300);
        assert!(matches!(
            recent.decide(session, consent, clock.now()),
            Decision::Respond { .. }
        ));
        clock.advance(1);
        assert!(matches!(
            recent.decide(session, consent, clock.now()),
            Decision::Login
        ));
        let silent = AuthorizationRequest {
            prompt_none: true,
            ..recent.clone()
        };
        assert_eq!(
            client_error(silent.decide(session, consent, clock.now())),
            "login_required"
        );
        // max_age=0 asks for a login made this very second.
        let now_only = AuthorizationRequest {
            max_age: Some(0),
            ..request()
        };
        assert!(matches!(
            now_only.decide(session, consent, clock.now()),
            Decision::Login
        ));
        clock.set(clock.now() + 60);
        let just_logged_in = signed_in(&user, clock.now());
        assert!(matches!(
            now_only.decide(just_logged_in, consent, clock.now()),
            Decision::Respond { .. }
        ));
    }

    #[test]
    fn the_consent_pages_answer_is_given_or_denied() {
        let clock = TestClock::at(1_000);
        let user = alice();
        let session = signed_in(&user, clock.now());
        assert!(matches!(
            request().decide(session, Consent::Answered { allow: true }, clock.now()),
            Decision::Respond {
                remember_consent: true,
                ..
            }
        ));
        assert_eq!(
            client_error(request().decide(
                session,
                Consent::Answered { allow: false },
                clock.now()
            )),
            "access_denied"
        );
        // The page was shown to an accepted login; its answer is not sent round to the login
        // page again, however long the user took or whatever prompt=login asked.
        let strict = AuthorizationRequest {
            prompt_login: true,
            max_age: Some(60),
            ..request()
        };
        clock.advance(3_600);
        assert!(matches!(
            strict.decide(session, Consent::Answered { allow: true }, clock.now()),
            Decision::Respond {
                remember_consent: true,
                ..
            }
        ));
    }

    #[test]
    fn the_response_is_only_for_the_user_an_id_token_hint_names() {
        let clock = TestClock::at(1_000);
        let user = alice();
        let granted = scopes("openid profile");
        let consent = Consent::Remembered(Some(&granted));
        let hinted = |subject: &str, prompt_none: bool| AuthorizationRequest {
            id_token_hint_subject: Some(subject.into()),
            prompt_none,
            ..request()
        };
        let session = signed_in(&user, clock.now());
        assert!(matches!(
            hinted("alice-id", false).decide(session, consent, clock.now()),
            Decision::Respond { .. }
        ));
        assert_eq!(
            client_error(hinted("bob-id", false).decide(session, consent, clock.now())),
            "invalid_request"
        );
        assert_eq!(
            client_error(hinted("bob-id", true).decide(session, consent, clock.now())),
            "login_required"
        );
    }

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        let registered = vec![
            "https://app.example/cb".to_owned(),
            "http://127.0.0.1/cb".to_owned(),
        ];
        assert!(redirect_uri_matches(&registered, "https://app.example/cb"));
        assert!(!redirect_uri_matches(
            &registered,
            "https://app.example/cb/"
        ));
        assert!(!redirect_uri_matches(
            &registered,
            "https://app.example/cb?x=1"
        ));
        assert!(!redirect_uri_matches(
            &registered,
            "https://app.example:444/cb"
        ));
        assert!(redirect_uri_matches(
            &registered,
            "http://127.0.0.1:51234/cb"
        ));
        assert!(!redirect_uri_matches(
            &registered,
            "http://127.0.0.1:51234/other"
        ));
        assert!(!redirect_uri_matches(
            &registered,
            "http://localhost:51234/cb"
        ));
    }

    #[test]
    fn loopback_addresses_match_only_as_the_same_literal() {
        let registered = vec![
            "http://127.0.0.1/cb".to_owned(),
            "http://[::1]:8000/v6".to_owned(),
        ];
        let matches = |uri: &str| redirect_uri_matches(&registered, uri);
        assert!(matches("http://127.0.0.1/cb"));
        assert!(matches("http://127.0.0.1:1/cb"));
        assert!(matches("http://127.0.0.1:65535/cb"));
        assert!(matches("http://[::1]/v6"));
        assert!(matches("http://[::1]:49152/v6"));
        for other in [
            "http://2130706433:8000/cb",
            "http://0x7f000001:8000/cb",
            "http://0x7f.0.0.1:8000/cb",
            "http://0177.0.0.1:8000/cb",
            "http://127.000.000.001:8000/cb",
            "http://127.1:8000/cb",
            "http://localhost:8000/cb",
            "http://LOCALHOST/cb",
            "HTTP://127.0.0.1:8000/cb",
            "https://127.0.0.1:8000/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1@evil.example/cb",
            "http://127.0.0.1:8000@evil.example/cb",
            "http://127.0.0.1:08000/cb",
            "http://127.0.0.1:65536/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:8000/cb/",
            "http://127.0.0.1:8000/a/../cb",
            "http://127.0.0.1:8000/%63b",
            "http://127.0.0.1:8000/CB",
            "http://[0:0:0:0:0:0:0:1]:8000/v6",
            "http://[::ffff:127.0.0.1]:8000/cb",
            "http://[::1]:8000/cb",
            "http://127.0.0.1:8000/v6",
        ] {
            assert!(!matches(other), "{other} must not match");
        }
    }
}
