//! The one rule for URLs Gatehouse connects to (identity providers' keys, external OAuth
//! providers, gateway upstreams): credentials, keys and callers' identities travel there, so
//! TLS is required — except to a loopback address, where there is no network path to listen on.

/// Whether `url` is https, or http to a loopback address.
pub fn is_allowed(url: &url::Url) -> bool {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    }
}
