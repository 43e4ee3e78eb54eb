//! Who the client is when requests may arrive through reverse proxies.
//!
//! `X-Forwarded-For` is a claim anyone can write. Only the proxies an administrator names in
//! `trusted_proxies` are believed: the chain of addresses a request passed through is read from
//! the right, past trusted hops only, so a client cannot pose as another address by sending the
//! header itself. Everything that needs the client's address (forwarding headers, throttling)
//! asks [`TrustedProxies`].

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::Error;

/// The addresses and networks of the reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Reads addresses (`10.0.0.7`, `::1`) and networks in CIDR notation (`10.0.0.0/8`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, Error> {
        let networks = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        Error::validation(format!(
                            "trusted proxy {entry:?} is not an IP address or CIDR network"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { networks })
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|net| net.contains(&address))
    }

    /// The addresses a request passed through, the client's first and the TCP peer last: the
    /// incoming `X-Forwarded-For` entries (all values of the header, in order) only when the
    /// peer is trusted, since anyone else could have written them. An entry that is not an
    /// address is `None`.
    pub fn chain<S: AsRef<str>>(&self, peer: IpAddr, forwarded_for: &[S]) -> Vec<Option<IpAddr>> {
        let peer = peer.to_canonical();
        let mut chain: Vec<Option<IpAddr>> = if self.trusts(peer) {
            forwarded_for
                .iter()
                .flat_map(|value| value.as_ref().split(','))
                .map(parse_hop)
                .collect()
        } else {
            Vec::new()
        };
        chain.push(Some(peer));
        chain
    }

    /// The client's address: the rightmost hop of the chain that is not a trusted proxy. When
    /// the chain runs out or holds something that is not an address, the last trusted hop is
    /// all that is known, and it is the answer.
    pub fn client_address<S: AsRef<str>>(&self, peer: IpAddr, forwarded_for: &[S]) -> IpAddr {
        let mut client = peer.to_canonical();
        // The common case, asked several times a request: no chain to build.
        if !self.trusts(client) {
            return client;
        }
        for hop in self.chain(peer, forwarded_for).into_iter().rev() {
            let Some(hop) = hop else { break };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`[::1]:443`, `1.2.3.4:80`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("203.0.113.9"), &["10.0.0.1"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            none.chain(ip("203.0.113.9"), &["10.0.0.1"]),
            [Some(ip("203.0.113.9"))]
        );
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            proxies.client_address(ip("192.0.2.1"), &["198.51.100.7"]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "::1", " 192.0.2.5 "]).unwrap();
        let peer = ip("10.1.1.1");
        // The leftmost entry is whatever the client sent; the proxies appended the rest.
        let header = ["6.6.6.6, 198.51.100.7", "192.0.2.5:8443, 10.2.2.2"];
        assert_eq!(proxies.client_address(peer, &header), ip("198.51.100.7"));
        assert_eq!(
            proxies.chain(peer, &header),
            [
                Some(ip("6.6.6.6")),
                Some(ip("198.51.100.7")),
                Some(ip("192.0.2.5")),
                Some(ip("10.2.2.2")),
                Some(peer)
            ]
        );
        assert_eq!(
            proxies.client_address(ip("::1"), &["[2001:db8::1]:1234"]),
            ip("2001:db8::1")
        );
        // Nothing but proxies, or garbage: the last trusted hop is all that is known.
        assert_eq!(proxies.client_address(peer, &["10.3.3.3"]), ip("10.3.3.3"));
        assert_eq!(
            proxies.client_address(peer, &["unknown, 10.3.3.3"]),
            ip("10.3.3.3")
        );
        assert_eq!(proxies.client_address(peer, &[] as &[&str]), peer);
        // An IPv4 peer seen on an IPv6 socket is the same address.
        assert_eq!(
            proxies.client_address(ip("::ffff:10.1.1.1"), &["198.51.100.8"]),
            ip("198.51.100.8")
        );
    }

    #[test]
    fn entries_must_be_addresses_or_networks() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.example"]).is_err());
        assert!(TrustedProxies::parse(&["fd00::/8", "127.0.0.1"]).is_ok());
    }
}
