//! Forwarding a request to an upstream service on the gateway's behalf: bodies stream both
//! ways, the exchange is bounded in time, and headers that belong to one connection or to the
//! caller's credentials stay behind.

use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::fetch::{FetchError, Fetcher, check_url};

/// The prefix of the identity headers the gateway adds; callers cannot send their own.
pub const IDENTITY_HEADER_PREFIX: &str = "x-gatehouse-";

/// RFC 9110 §7.6.1: headers about one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// A request for an upstream.
pub struct Outbound {
    pub method: reqwest::Method,
    pub url: String,
    /// The caller's headers, as received.
    pub headers: HeaderMap,
    /// Added after the caller's are filtered, e.g. `x-gatehouse-user`.
    pub identity: Vec<(HeaderName, HeaderValue)>,
    pub body: reqwest::Body,
    pub timeout: Duration,
}

impl Fetcher {
    /// Sends `request` upstream and returns the answer with its body still streaming. The
    /// caller's `Authorization`, cookies (they may be Gatehouse's own session cookies, which an
    /// upstream must never see), identity headers and hop-by-hop headers are not forwarded.
    pub async fn forward(&self, request: Outbound) -> Result<reqwest::Response, FetchError> {
        let url = Url::parse(&request.url).map_err(|e| FetchError::Invalid(e.to_string()))?;
        check_url(&url)?;
        let mut headers = without_hop_by_hop(request.headers);
        headers.remove(header::AUTHORIZATION);
        headers.remove(header::COOKIE);
        headers.remove(header::HOST);
        let identity: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with(IDENTITY_HEADER_PREFIX))
            .cloned()
            .collect();
        for name in identity {
            headers.remove(name);
        }
        headers.extend(request.identity);
        Ok(self
            .http()
            .request(request.method, url)
            .headers(headers)
            .body(request.body)
            .timeout(request.timeout)
            .send()
            .await?)
    }
}

/// The headers without those about one connection, including any the `Connection` header
/// names.
pub fn without_hop_by_hop(mut headers: HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_and_those_it_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "close, x-secret".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        let kept = without_hop_by_hop(headers);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key(header::ACCEPT));
    }
}
