//! Bounded HTTP exchanges with servers named in configuration (identity providers, external
//! OAuth providers). A slow, huge or redirecting answer is an error, never a stalled task or an
//! exhausted memory.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, HeaderMap};
use serde::de::DeserializeOwned;
use url::Url;

/// How long and how large an exchange may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_body: 512 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not allowed: only https, or http to a loopback address")]
    Insecure(String),
    #[error("no answer within the time limit")]
    Timeout,
    #[error("could not connect")]
    Connect,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    #[error("answer is not the expected JSON: {0}")]
    Invalid(String),
    #[error("transport failure: {0}")]
    Transport(String),
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            FetchError::Timeout
        } else if e.is_connect() {
            FetchError::Connect
        } else {
            FetchError::Transport(e.to_string())
        }
    }
}

/// A JSON document and how long its server says it may be cached.
#[derive(Debug)]
pub struct Fetched<T> {
    pub value: T,
    pub max_age: Option<Duration>,
}

/// One shared HTTP client (connection pool, TLS configuration) with the exchange limits.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    limits: Limits,
}

impl Fetcher {
    pub fn new(limits: Limits) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self { http, limits })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The underlying client, for exchanges that are more than a GET of JSON. Callers must still
    /// check the URL with [`check_url`] and read bodies with [`Fetcher::read_body`].
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// GETs `url` and parses the body as JSON. Any status but 200 is an error.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &Url) -> Result<Fetched<T>, FetchError> {
        check_url(url)?;
        let response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let max_age = max_age(response.headers());
        let body = self.read_body(response).await?;
        let value =
            serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(e.to_string()))?;
        Ok(Fetched { value, max_age })
    }

    /// Reads a response body, stopping as soon as it exceeds the size limit.
    pub async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let max = self.limits.max_body;
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge(max));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The rule every stored URL was checked against ([`gatehouse_core::remote::is_allowed`]).
pub fn check_url(url: &Url) -> Result<(), FetchError> {
    if gatehouse_core::remote::is_allowed(url) {
        Ok(())
    } else {
        Err(FetchError::Insecure(url.to_string()))
    }
}

/// `Cache-Control: max-age=N` as a duration; `no-store`/`no-cache` as zero.
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(CACHE_CONTROL)?.to_str().ok()?;
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            max_age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        let ok = [
            "https://idp.example/jwks",
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://localhost/x",
        ];
        for u in ok {
            assert!(check_url(&Url::parse(u).unwrap()).is_ok(), "{u}");
        }
        let refused = [
            "http://idp.example/jwks",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
        ];
        for u in refused {
            assert!(
                matches!(
                    check_url(&Url::parse(u).unwrap()),
                    Err(FetchError::Insecure(_))
                ),
                "{u}"
            );
        }
    }

    #[test]
    fn cache_control_max_age() {
        let mut h = HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert(CACHE_CONTROL, "public, max-age=600".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(600)));
        h.insert(CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::ZERO));
    }
}
