//! Outbound OAuth in motion: `OutboundClient`, Gatehouse as the OAuth client of external
//! providers, which obtains, caches, renews and stores the tokens of OAuth profiles, and calls
//! through connection aliases with those tokens attached.
//!
//! One token per (profile, owner) is held in memory and, sealed, in the database, so a restart
//! or another instance does not ask the provider again. Each (profile, owner) has its own async
//! mutex: while one caller obtains a token the others for the same key wait for it instead of
//! asking too — one request however many callers — and callers of other keys are not held up.
//!
//! A call reports its steps — where its token came from, how the API answered, each timed — to
//! whoever listens; [`probe`] listens, for the console's test of an alias.

mod exchange;
pub mod probe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_core::client::GrantType;
use gatehouse_core::outbound::{
    ConnectionAlias, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_SECONDS, OAuthProfile, OAuthProvider,
    ObtainedToken, OutboundRegistry, ResolvedAlias, SYSTEM_OWNER,
};
use gatehouse_core::secret::Secret;
use reqwest::StatusCode;
use url::Url;

use crate::fetch::{FetchError, Fetcher, check_url};
use probe::Step;

/// A `Retry-After` longer than this is not waited for; the retry comes after this long.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// An unknown alias, a refused caller, storage.
    #[error(transparent)]
    Domain(#[from] gatehouse_core::Error),
    /// The provider answered the token request with an RFC 6749 §5.2 error.
    #[error("the provider refused the token request: {error}{}", describe(.description))]
    Refused {
        error: String,
        description: Option<String>,
    },
    /// The provider is down, slow, or answered something that is not a token response.
    #[error("the token request failed: {0}")]
    Provider(FetchError),
    /// The API behind the alias could not be reached in time.
    #[error("the API call failed: {0}")]
    Upstream(FetchError),
    /// An authorization-code profile without a token: someone must consent in the browser.
    #[error("profile {0:?} has no token yet: a user must authorize it in the browser")]
    ConsentNeeded(String),
    #[error("the path {0:?} leaves the alias' base URL")]
    PathEscapes(String),
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// Where the token a call used came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Held in memory since an earlier call.
    Memory,
    /// Read from the database: obtained by another instance, or before a restart.
    Stored,
    /// Renewed at the provider with the refresh token.
    Refreshed,
    /// Newly obtained from the provider with the profile's grant.
    Obtained,
    /// Read from the database after its renewal failed: it has not expired yet, so it serves.
    StoredAfterFailedRenewal,
}

/// How long one exchange may take and how often a server error is retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    timeout: Duration,
    max_retries: u32,
}

impl RetryPolicy {
    fn of(alias: &ConnectionAlias) -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(alias.timeout_seconds.max(1) as u64),
            max_retries: alias.max_retries.max(0) as u32,
        }
    }
}

impl Default for RetryPolicy {
    /// For exchanges outside any alias (redeeming an authorization code).
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS as u64),
            max_retries: DEFAULT_MAX_RETRIES as u32,
        }
    }
}

/// What a token is obtained for and how patiently.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    profile: &'a OAuthProfile,
    provider: &'a OAuthProvider,
    policy: RetryPolicy,
}

impl<'a> Target<'a> {
    fn of(resolved: &'a ResolvedAlias) -> Self {
        Target {
            profile: &resolved.profile,
            provider: &resolved.provider,
            policy: RetryPolicy::of(&resolved.alias),
        }
    }
}

/// Sends the request `build` makes, again after a server error (5xx), a 429 or a refused
/// connection, up to the policy's number of retries: after the server's `Retry-After` (in
/// seconds, at most [`MAX_RETRY_WAIT`]) or an exponential backoff. A time-out is not retried:
/// a slow server would only get slower.
async fn send_with_retries(
    policy: RetryPolicy,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, FetchError> {
    let mut attempt = 0;
    loop {
        let result = build().send().await;
        let wait = match &result {
            Ok(response)
                if response.status().is_server_error()
                    || response.status() == StatusCode::TOO_MANY_REQUESTS =>
            {
                Some(retry_after(response.headers()).unwrap_or_else(|| backoff(attempt)))
            }
            Err(error) if error.is_connect() => Some(backoff(attempt)),
            _ => None,
        };
        match wait {
            Some(wait) if attempt < policy.max_retries => {
                tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
                attempt += 1;
            }
            _ => return result.map_err(FetchError::from),
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(attempt.min(5)))
}

/// `Retry-After` in seconds (RFC 9110 §10.2.3); the HTTP-date form gets the backoff instead.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

/// A request to the API behind an alias. The caller's own credentials never travel upstream:
/// only the method, the path below the base URL, the body and its type.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: String,
    /// The path (and query) below the alias' base URL.
    pub path_and_query: String,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub body: Bytes,
}

/// The API's answer, whose body is read as it arrives.
pub struct UpstreamResponse {
    pub status: u16,
    pub content_type: Option<String>,
    response: reqwest::Response,
}

impl UpstreamResponse {
    fn new(response: reqwest::Response) -> Self {
        UpstreamResponse {
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            response,
        }
    }

    /// The next part of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, OutboundError> {
        self.response
            .chunk()
            .await
            .map_err(|e| OutboundError::Upstream(e.into()))
    }

    /// The body as a stream, for relaying it as it arrives.
    pub fn into_stream(
        self,
    ) -> impl futures_core::Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static {
        self.response.bytes_stream()
    }
}

/// The token of one (profile, owner) in memory, with the records it was obtained under: a
/// change of either makes it unusable at once.
struct Held {
    token: ObtainedToken,
    profile: OAuthProfile,
    provider: OAuthProvider,
}

type Slot = Arc<tokio::sync::Mutex<Option<Held>>>;

/// Gatehouse as the OAuth client of external providers: obtains and renews tokens for OAuth
/// profiles, and calls APIs through connection aliases.
pub struct OutboundClient {
    registry: OutboundRegistry,
    fetcher: Fetcher,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl OutboundClient {
    pub fn new(registry: OutboundRegistry, fetcher: Fetcher) -> Self {
        OutboundClient {
            registry,
            fetcher,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn registry(&self) -> &OutboundRegistry {
        &self.registry
    }

    /// Whose token a call uses: the user's own for a per-user profile, otherwise the
    /// system-wide one.
    pub fn owner(resolved: &ResolvedAlias, user_id: Option<&str>) -> Result<String, OutboundError> {
        if !resolved.profile.per_user {
            return Ok(SYSTEM_OWNER.to_owned());
        }
        user_id.map(str::to_owned).ok_or_else(|| {
            gatehouse_core::Error::validation(format!(
                "profile {:?} is per user: name the user",
                resolved.profile.name
            ))
            .into()
        })
    }

    fn slot(&self, profile: &str, owner: &str) -> Slot {
        // A short critical section with no await inside.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((profile.to_owned(), owner.to_owned()))
            .or_default()
            .clone()
    }

    /// A usable access token for the alias's profile and `owner`, obtained or renewed if
    /// needed.
    pub async fn access_token(
        &self,
        resolved: &ResolvedAlias,
        owner: &str,
    ) -> Result<Secret, OutboundError> {
        let (token, _) = self.current(Target::of(resolved), owner, None).await?;
        Ok(token)
    }

    /// Redeems the code of an outbound authorization (RFC 6749 §4.1.3, with the PKCE
    /// verifier) and stores the tokens for the profile and `owner`.
    pub async fn redeem_code(
        &self,
        profile: &OAuthProfile,
        provider: &OAuthProvider,
        owner: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<(), OutboundError> {
        let target = Target {
            profile,
            provider,
            policy: RetryPolicy::default(),
        };
        let slot = self.slot(&profile.name, owner);
        let mut held = slot.lock().await;
        let grant = exchange::ProviderGrant::Code {
            code,
            redirect_uri,
            code_verifier,
        };
        let token =
            exchange::request_token(&self.registry, &self.fetcher, target, owner, grant).await?;
        self.registry.store_token(&token).await?;
        *held = Some(hold(target, token));
        Ok(())
    }

    /// The current token and where it came from; with `rejected`, one different from the
    /// token an API just refused.
    async fn current(
        &self,
        target: Target<'_>,
        owner: &str,
        rejected: Option<&Secret>,
    ) -> Result<(Secret, TokenSource), OutboundError> {
        let slot = self.slot(&target.profile.name, owner);
        // Held across the exchange with the provider on purpose: this is the single flight.
        let mut held = slot.lock().await;
        let now = self.registry.clock().now();
        let usable = |token: &ObtainedToken| {
            !token.renewal_due(now) && rejected.is_none_or(|r| *r != token.access_token)
        };
        if let Some(current) = held.as_ref()
            && current.profile == *target.profile
            && current.provider == *target.provider
            && usable(&current.token)
        {
            return Ok((current.token.access_token.clone(), TokenSource::Memory));
        }
        // Memory is cold or stale; the database may hold a newer token (from another instance,
        // or from before a restart).
        let stored = match self
            .registry
            .find_token(&target.profile.name, owner)
            .await?
        {
            Some(record) => Some(self.registry.open_token(&record)?),
            None => None,
        };
        if let Some(token) = stored.as_ref().filter(|t| usable(t)) {
            let access_token = token.access_token.clone();
            *held = Some(hold(target, token.clone()));
            return Ok((access_token, TokenSource::Stored));
        }
        match self.renew(target, owner, stored.as_ref()).await {
            Ok((fresh, source)) => {
                self.registry.store_token(&fresh).await?;
                let access_token = fresh.access_token.clone();
                *held = Some(hold(target, fresh));
                Ok((access_token, source))
            }
            // A renewal that fails before the old token has expired does not stop the callers.
            Err(error) => match stored.filter(|t| {
                rejected.is_none() && t.expires_at.is_some_and(|expires_at| now < expires_at)
            }) {
                Some(token) => {
                    tracing::warn!(profile = %target.profile.name, %error, "token renewal failed; the current token is still valid");
                    let access_token = token.access_token.clone();
                    *held = Some(hold(target, token));
                    Ok((access_token, TokenSource::StoredAfterFailedRenewal))
                }
                None => Err(error),
            },
        }
    }

    /// Refreshes `previous` where it has a refresh token, otherwise (or when the provider no
    /// longer accepts it) asks for a new token with the profile's grant.
    async fn renew(
        &self,
        target: Target<'_>,
        owner: &str,
        previous: Option<&ObtainedToken>,
    ) -> Result<(ObtainedToken, TokenSource), OutboundError> {
        if let Some(refresh_token) = previous.and_then(|t| t.refresh_token.as_ref()) {
            let refreshed = exchange::request_token(
                &self.registry,
                &self.fetcher,
                target,
                owner,
                exchange::ProviderGrant::Refresh(refresh_token),
            )
            .await;
            match refreshed {
                Err(OutboundError::Refused { error, .. })
                    if error == "invalid_grant"
                        && target.provider.grant != GrantType::AuthorizationCode => {}
                other => return other.map(|token| (token, TokenSource::Refreshed)),
            }
        }
        let token = exchange::request_token(
            &self.registry,
            &self.fetcher,
            target,
            owner,
            exchange::ProviderGrant::Configured,
        )
        .await?;
        Ok((token, TokenSource::Obtained))
    }

    /// Calls the API behind the alias with the profile's token. A 401 answer leads to
    /// exactly one renewal and one retry: the provider may have revoked the token early.
    pub async fn call(
        &self,
        resolved: &ResolvedAlias,
        user_id: Option<&str>,
        request: &UpstreamRequest,
    ) -> Result<UpstreamResponse, OutboundError> {
        let (response, _) = self
            .traced_call(resolved, user_id, request, &mut |_| {})
            .await?;
        Ok(response)
    }

    /// [`call`](Self::call), telling `trace` each step as it ends. The answer comes with the
    /// token it was sent with, so that what the API echoes of it can be hidden.
    async fn traced_call(
        &self,
        resolved: &ResolvedAlias,
        user_id: Option<&str>,
        request: &UpstreamRequest,
        trace: &mut (impl FnMut(Step) + Send),
    ) -> Result<(UpstreamResponse, Secret), OutboundError> {
        let owner = Self::owner(resolved, user_id)?;
        let url = upstream_url(&resolved.alias, &request.path_and_query)?;
        check_url(&url).map_err(OutboundError::Upstream)?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            gatehouse_core::Error::invalid_request(format!("{:?} is not a method", request.method))
        })?;
        let target = Target::of(resolved);
        let token = self.traced_current(target, &owner, None, trace).await?;
        let response = self
            .traced_send(target, &url, &method, request, &token, trace)
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((UpstreamResponse::new(response), token));
        }
        let token = self
            .traced_current(target, &owner, Some(&token), trace)
            .await?;
        let response = self
            .traced_send(target, &url, &method, request, &token, trace)
            .await?;
        Ok((UpstreamResponse::new(response), token))
    }

    async fn traced_current(
        &self,
        target: Target<'_>,
        owner: &str,
        rejected: Option<&Secret>,
        trace: &mut (impl FnMut(Step) + Send),
    ) -> Result<Secret, OutboundError> {
        let started = Instant::now();
        let current = self.current(target, owner, rejected).await;
        trace(Step::Token {
            elapsed: started.elapsed(),
            outcome: current
                .as_ref()
                .map(|(_, source)| *source)
                .map_err(ToString::to_string),
        });
        Ok(current?.0)
    }

    async fn traced_send(
        &self,
        target: Target<'_>,
        url: &Url,
        method: &reqwest::Method,
        request: &UpstreamRequest,
        token: &Secret,
        trace: &mut (impl FnMut(Step) + Send),
    ) -> Result<reqwest::Response, OutboundError> {
        let started = Instant::now();
        let sent = self.send(target, url, method, request, token).await;
        trace(Step::Upstream {
            elapsed: started.elapsed(),
            outcome: sent
                .as_ref()
                .map(|response| response.status().as_u16())
                .map_err(ToString::to_string),
        });
        sent
    }

    async fn send(
        &self,
        target: Target<'_>,
        url: &Url,
        method: &reqwest::Method,
        request: &UpstreamRequest,
        token: &Secret,
    ) -> Result<reqwest::Response, OutboundError> {
        let policy = target.policy;
        send_with_retries(policy, || {
            let mut builder = self
                .fetcher
                .http()
                .request(method.clone(), url.clone())
                .timeout(policy.timeout)
                .bearer_auth(token.expose())
                .body(request.body.clone());
            if let Some(value) = &request.content_type {
                builder = builder.header(reqwest::header::CONTENT_TYPE, value);
            }
            if let Some(value) = &request.accept {
                builder = builder.header(reqwest::header::ACCEPT, value);
            }
            builder
        })
        .await
        .map_err(OutboundError::Upstream)
    }
}

fn hold(target: Target<'_>, token: ObtainedToken) -> Held {
    Held {
        token,
        profile: target.profile.clone(),
        provider: target.provider.clone(),
    }
}

/// The URL of `path_and_query` below the alias' base URL. The parser resolves dot segments
/// (also percent-encoded ones), so a path that climbs out of the base is caught afterwards.
fn upstream_url(alias: &ConnectionAlias, path_and_query: &str) -> Result<Url, OutboundError> {
    let escapes = || OutboundError::PathEscapes(path_and_query.to_owned());
    let base = Url::parse(&alias.base_url).map_err(|_| escapes())?;
    let url = Url::parse(&format!(
        "{}/{}",
        alias.base_url.trim_end_matches('/'),
        path_and_query.trim_start_matches('/')
    ))
    .map_err(|_| escapes())?;
    let base_path = base.path().trim_end_matches('/');
    let below = url.path() == base_path || url.path().starts_with(&format!("{base_path}/"));
    if url.origin() != base.origin() || !below {
        return Err(escapes());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(base_url: &str) -> ConnectionAlias {
        ConnectionAlias {
            name: "a".into(),
            base_url: base_url.into(),
            profile: "p".into(),
            allowed_roles: vec![],
            timeout_seconds: 1,
            max_retries: 0,
        }
    }

    #[test]
    fn paths_stay_below_the_base_url() {
        let api = alias("https://api.example/v1");
        assert_eq!(
            upstream_url(&api, "/items?q=1").unwrap().as_str(),
            "https://api.example/v1/items?q=1"
        );
        assert_eq!(
            upstream_url(&api, "items/").unwrap().as_str(),
            "https://api.example/v1/items/"
        );
        for escape in [
            "../admin",
            "a/../../admin",
            "%2e%2e/admin",
            "/..",
            "x/%2E%2E/%2e%2e/y",
        ] {
            assert!(
                matches!(
                    upstream_url(&api, escape),
                    Err(OutboundError::PathEscapes(_))
                ),
                "{escape}"
            );
        }
        assert!(upstream_url(&alias("https://api.example"), "anything/here").is_ok());
    }

    #[test]
    fn retry_after_in_seconds_only() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
