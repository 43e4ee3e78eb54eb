//! Forwarding a request to an upstream service on the gateway's behalf: bodies stream both
//! ways, the exchange is bounded in time, and headers that belong to one connection, to the
//! caller's credentials, or that upstream frameworks read as identity, method or path stay
//! behind.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::fetch::{FetchError, Fetcher, check_url};

/// The prefix of the identity headers the gateway adds; callers cannot send their own.
pub const IDENTITY_HEADER_PREFIX: &str = "x-gatehouse-";

/// Headers with which frameworks let a request name another method or path than its own,
/// behind the scope rules' back.
const OVERRIDES: [&str; 4] = [
    "x-http-method-override",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

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

/// A request the gateway sends on to a route's upstream.
pub struct GatewayRequest {
    pub method: reqwest::Method,
    pub url: String,
    /// The caller's headers, as received.
    pub headers: HeaderMap,
    /// Added after the caller's are filtered: `x-gatehouse-user` and the like, or the
    /// `Authorization` of a token exchanged for the upstream.
    pub identity: Vec<(HeaderName, HeaderValue)>,
    pub forwarding: Forwarding,
    pub body: reqwest::Body,
    pub timeout: Duration,
}

/// Where the request came from, for `X-Forwarded-For` and `Forwarded` (RFC 7239).
pub struct Forwarding {
    /// The addresses the request passed through, the client's first and Gatehouse's peer last
    /// (`None`: a trusted proxy named something that is not an address).
    pub chain: Vec<Option<IpAddr>>,
    /// Whether the peer is a trusted proxy, whose other `X-Forwarded-*` headers (the scheme and
    /// host the client used) are passed on.
    pub from_trusted_proxy: bool,
}

impl Fetcher {
    /// Sends `request` upstream and returns the answer with its body still streaming. The
    /// caller's `Authorization` and the DPoP proof that went with it, cookies (they may be
    /// Gatehouse's own session cookies, which an upstream must never see), identity, override
    /// and hop-by-hop headers are not forwarded; the forwarding headers are Gatehouse's.
    pub async fn forward(&self, request: GatewayRequest) -> Result<reqwest::Response, FetchError> {
        let url = Url::parse(&request.url).map_err(|e| FetchError::Invalid(e.to_string()))?;
        check_url(&url)?;
        let mut headers = without_hop_by_hop(request.headers);
        headers.remove(header::AUTHORIZATION);
        headers.remove("dpop");
        headers.remove(header::COOKIE);
        headers.remove(header::HOST);
        let refused: Vec<HeaderName> = headers
            .keys()
            .filter(|name| !may_pass(name, request.forwarding.from_trusted_proxy))
            .cloned()
            .collect();
        for name in refused {
            headers.remove(name);
        }
        headers.extend(request.identity);
        headers.extend(forwarding_headers(&request.forwarding.chain));
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

/// Whether a caller's header may reach the upstream. Names are compared with `_` read as `-`,
/// since many frameworks (CGI, WSGI, Rack, PHP) fold both into one name.
fn may_pass(name: &HeaderName, from_trusted_proxy: bool) -> bool {
    let folded = name.as_str().replace('_', "-");
    if folded.starts_with(IDENTITY_HEADER_PREFIX) || OVERRIDES.contains(&folded.as_str()) {
        return false;
    }
    if folded == "forwarded" || folded == "x-forwarded-for" || folded == "x-real-ip" {
        return false;
    }
    if folded.starts_with("x-forwarded-") {
        return from_trusted_proxy && !name.as_str().contains('_');
    }
    true
}

/// `X-Forwarded-For` and `Forwarded` naming the same chain.
fn forwarding_headers(chain: &[Option<IpAddr>]) -> Vec<(HeaderName, HeaderValue)> {
    if chain.is_empty() {
        return Vec::new();
    }
    let x_forwarded_for = chain
        .iter()
        .map(|hop| hop.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let forwarded = chain
        .iter()
        .map(|hop| match hop {
            None => "for=unknown".to_owned(),
            Some(IpAddr::V4(ip)) => format!("for={ip}"),
            // RFC 7239 §6: an IPv6 address is bracketed, so the value is a quoted string.
            Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
        })
        .collect::<Vec<_>>()
        .join(", ");
    [
        (HeaderName::from_static("x-forwarded-for"), x_forwarded_for),
        (header::FORWARDED, forwarded),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value).ok()?)))
    .collect()
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

    #[test]
    fn identity_override_and_forwarding_headers_stay_behind() {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap();
        for refused in [
            "x-gatehouse-user",
            "x_gatehouse_user",
            "x-gatehouse_client-id",
            "x-gatehouse-anything",
            "x-http-method-override",
            "x_http_method_override",
            "x-method-override",
            "x-original-url",
            "x_rewrite_url",
            "forwarded",
            "x-forwarded-for",
            "x_forwarded_for",
            "x-real-ip",
            "x_forwarded_host",
        ] {
            assert!(!may_pass(&name(refused), true), "{refused}");
        }
        assert!(!may_pass(&name("x-forwarded-host"), false));
        assert!(may_pass(&name("x-forwarded-host"), true));
        assert!(may_pass(&name("x-forwarded-proto"), true));
        assert!(may_pass(&name("x-gatehouse"), false));
        assert!(may_pass(&name("accept"), false));
    }

    #[test]
    fn forwarding_headers_name_one_chain() {
        let chain = [
            Some("198.51.100.7".parse().unwrap()),
            None,
            Some("2001:db8::1".parse().unwrap()),
        ];
        let headers = forwarding_headers(&chain);
        assert_eq!(headers[0].1, "198.51.100.7, unknown, 2001:db8::1");
        assert_eq!(
            headers[1].1,
            "for=198.51.100.7, for=unknown, for=\"[2001:db8::1]\""
        );
    }
}
