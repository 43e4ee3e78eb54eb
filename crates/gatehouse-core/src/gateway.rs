//! Gateway routes: a path prefix of Gatehouse forwarded to an upstream service, so an existing
//! REST service gets OAuth protection without code of its own. The forwarding itself is IO and
//! lives in `gatehouse-remote`; this is the registry entry, the choice of route, and the token
//! exchange a route may make for its upstream.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::client::{ClientType, GrantType};
use crate::clock::Clock;
use crate::entry::{Catalog, Entry};
use crate::grant::issue_exchanged;
use crate::path::CanonicalPath;
use crate::scope::ScopeSet;
use crate::token::{AccessTokenInfo, TokenService};
use crate::user::Permission;

/// The longest an administrator may let an upstream take: below the 30 s in which the server
/// answers every request, so a slow upstream is a 504 from the gateway.
pub const MAX_ROUTE_TIMEOUT_SECONDS: u64 = 25;

/// Seconds a route's upstream has to answer unless the route says otherwise.
pub const DEFAULT_ROUTE_TIMEOUT_SECONDS: u64 = 10;

fn default_timeout() -> u64 {
    DEFAULT_ROUTE_TIMEOUT_SECONDS
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    /// Requests whose path is this prefix or lies under it (`/api/x/inventory`, or
    /// `/api/x/inventory/…`) take this route.
    pub prefix: String,
    /// The upstream base URL; the path after the prefix is appended to it.
    pub upstream: String,
    /// Seconds the upstream has to answer, body included (default 10, at most 25).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// The audience the upstream expects of tokens (RFC 8707): requests need a token issued for
    /// it instead of one for this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Instead of telling the upstream who calls in `X-Gatehouse-*` headers, send it a token
    /// addressed to it: the caller's, exchanged (RFC 8693).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<RouteExchange>,
}

/// How a route exchanges the caller's token for its upstream: as the application `client_id`
/// (confidential, with the `token_exchange` grant and `audience` among its
/// `exchange_audiences`), for `audience`, with `scope` — by default the caller's scope within
/// what the application may have. The caller's token must act for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteExchange {
    pub client_id: String,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Entry for Route {
    const KIND: &'static str = "route";
    const MANAGED_WITH: Permission = Permission::ManageAccessRules;
    const FIELDS: &'static [&'static str] = &[
        "prefix",
        "upstream",
        "timeout_seconds",
        "audience",
        "exchange",
    ];

    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, catalog: &Catalog) -> Result<(), Error> {
        let prefix = &self.prefix;
        let valid_prefix = prefix.starts_with("/api/")
            && !prefix.ends_with('/')
            && prefix.split('/').skip(1).all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            });
        if !valid_prefix {
            return Err(Error::validation(format!(
                "prefix {prefix:?} must start with /api/ and be plain path segments without a \
                 trailing /"
            )));
        }
        // Gatehouse's own APIs cannot be shadowed by a route.
        if ["/api/admin", "/api/now"]
            .iter()
            .any(|own| covers(own, prefix) || covers(prefix, own))
        {
            return Err(Error::validation(format!(
                "prefix {prefix:?} overlaps Gatehouse's own APIs"
            )));
        }
        if let Some(other) = catalog
            .routes
            .iter()
            .find(|r| r.name != self.name && r.prefix == self.prefix)
        {
            return Err(Error::Conflict(format!(
                "route {:?} already has prefix {prefix:?}",
                other.name
            )));
        }
        let upstream = url::Url::parse(&self.upstream)
            .map_err(|_| Error::validation(format!("upstream {:?} is not a URL", self.upstream)))?;
        if !crate::remote::is_allowed(&upstream) {
            return Err(Error::validation(
                "the upstream must use https, or http to a loopback address",
            ));
        }
        if upstream.query().is_some()
            || upstream.fragment().is_some()
            || !upstream.username().is_empty()
        {
            return Err(Error::validation(
                "the upstream must be a base URL without credentials, query or fragment",
            ));
        }
        if !(1..=MAX_ROUTE_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            return Err(Error::validation(format!(
                "timeout_seconds must be between 1 and {MAX_ROUTE_TIMEOUT_SECONDS}"
            )));
        }
        if let Some(audience) = &self.audience {
            crate::audience::check_identifiers(std::slice::from_ref(audience))?;
        }
        if let Some(exchange) = &self.exchange {
            crate::audience::check_identifiers(std::slice::from_ref(&exchange.audience))?;
            if let Some(scope) = &exchange.scope {
                ScopeSet::parse(scope).map_err(|_| {
                    Error::validation(format!("exchange scope {scope:?} is not a scope"))
                })?;
            }
        }
        Ok(())
    }
}

/// Seconds before an exchanged token expires when the gateway stops sending it and exchanges
/// again, so an upstream never receives a token about to expire.
pub const EXCHANGE_RENEWAL_MARGIN: i64 = 30;
/// At most this many exchanged tokens are kept; when full, expired ones go first, then any.
const MAX_EXCHANGED_TOKENS: usize = 10_000;

/// A token exchanged for a route, and until when it is sent.
struct ExchangedToken {
    token: Arc<str>,
    renew_at: i64,
}

/// The tokens the gateway exchanged for routes' upstreams, by caller token and exchange, each
/// kept until shortly before it expires: a caller's run of requests costs one exchange, not
/// one per request. The caller's token is still validated on every request, so a revoked or
/// expired one is refused before anything here is looked at; an exchanged token never outlives
/// it.
pub struct RouteExchanges {
    tokens: RwLock<HashMap<String, ExchangedToken>>,
    clock: Arc<dyn Clock>,
}

impl RouteExchanges {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        RouteExchanges {
            tokens: RwLock::default(),
            clock,
        }
    }

    /// The token for `exchange`'s upstream made from the caller's validated token `presented`
    /// (`caller`, what it proved). A caller whose token cannot be exchanged is `403`; a route
    /// whose exchanging application cannot exchange is misconfigured, a `502` whose reason is
    /// logged.
    pub async fn token_for(
        &self,
        tokens: &TokenService,
        exchange: &RouteExchange,
        presented: &str,
        caller: &AccessTokenInfo,
    ) -> Result<Arc<str>, Error> {
        let misconfigured = |why: String| {
            Error::UpstreamUnreachable(format!("the route's token exchange cannot run: {why}"))
        };
        // Asked every time (from the registry cache), so an application that loses the grant
        // stops exchanging at once, kept tokens included.
        let client = tokens
            .client(&exchange.client_id)
            .await?
            .filter(|c| {
                c.active
                    && c.client_type == ClientType::Confidential
                    && c.allows_grant(GrantType::TokenExchange)
            })
            .ok_or_else(|| {
                misconfigured(format!(
                    "application {:?} is missing, inactive, or may not exchange tokens",
                    exchange.client_id
                ))
            })?;
        let key = tokens.hasher().hash(&format!(
            "{}\n{}\n{}\n{presented}",
            exchange.client_id,
            exchange.audience,
            exchange.scope.as_deref().unwrap_or_default()
        ));
        let now = self.clock.now();
        if let Some(kept) = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|kept| kept.renew_at > now)
        {
            return Ok(kept.token.clone());
        }
        let issued = issue_exchanged(
            tokens,
            &client,
            caller,
            None,
            std::slice::from_ref(&exchange.audience),
            exchange.scope.as_deref(),
            // The upstream receives it as a bearer token: it holds no key to prove.
            None,
        )
        .await
        .map_err(|error| match error {
            Error::InvalidScope(_) => {
                Error::InsufficientScope(exchange.scope.clone().unwrap_or_default())
            }
            Error::InvalidRequest(why) => Error::Forbidden(why),
            Error::InvalidTarget(why) | Error::UnauthorizedClient(why) => misconfigured(why),
            other => other,
        })?;
        let token: Arc<str> = issued.access_token.into();
        let renew_at = now + issued.expires_in - EXCHANGE_RENEWAL_MARGIN;
        if renew_at > now {
            let mut kept = self.tokens.write().unwrap_or_else(|p| p.into_inner());
            if kept.len() >= MAX_EXCHANGED_TOKENS {
                kept.retain(|_, t| t.renew_at > now);
                if kept.len() >= MAX_EXCHANGED_TOKENS
                    && let Some(victim) = kept.keys().next().cloned()
                {
                    kept.remove(&victim);
                }
            }
            kept.insert(
                key,
                ExchangedToken {
                    token: token.clone(),
                    renew_at,
                },
            );
        }
        Ok(token)
    }
}

/// Whether `path` is `prefix` or lies under it.
fn covers(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Route {
    fn prefix_segments(&self) -> Vec<&str> {
        self.prefix.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// The upstream URL of a request path this route covers (`None` otherwise): the segments
    /// after the prefix, percent-encoded by Gatehouse, appended to the upstream base, and the
    /// query kept. Built from the canonical path, never from the caller's spelling of it.
    pub fn upstream_url(&self, path: &CanonicalPath, query: Option<&str>) -> Option<String> {
        let rest = path.strip_prefix(&self.prefix_segments())?;
        let mut url = self.upstream.trim_end_matches('/').to_owned();
        url.push_str(&CanonicalPath::encode(rest));
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        Some(url)
    }
}

impl Catalog {
    /// The route of the longest prefix covering `path`.
    pub fn route_for(&self, path: &CanonicalPath) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| path.strip_prefix(&r.prefix_segments()).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str) -> Route {
        Route {
            name: "r".into(),
            prefix: prefix.into(),
            upstream: upstream.into(),
            timeout_seconds: 10,
            audience: None,
            exchange: None,
        }
    }

    #[test]
    fn paths_under_the_prefix_map_to_the_upstream() {
        let r = route("/api/x/inventory", "http://127.0.0.1:9000/v1/");
        let url = |path: &str, query| r.upstream_url(&CanonicalPath::parse(path).unwrap(), query);
        assert_eq!(
            url("/api/x/inventory/items/3", Some("a=1")).unwrap(),
            "http://127.0.0.1:9000/v1/items/3?a=1"
        );
        assert_eq!(
            url("/api/x/%69nventory/it%65ms/a%20b:c@d", None).unwrap(),
            "http://127.0.0.1:9000/v1/items/a%20b%3Ac%40d"
        );
        assert_eq!(
            url("/api/x/inventory", None).unwrap(),
            "http://127.0.0.1:9000/v1"
        );
        assert!(url("/api/x/inventoryx", None).is_none());
        assert!(url("/api/x", None).is_none());
    }

    #[test]
    fn prefixes_are_checked() {
        let catalog = Catalog::default();
        assert!(
            route("/api/x/inv", "http://127.0.0.1:1")
                .check(&catalog)
                .is_ok()
        );
        assert!(
            route("/api/x/inv", "https://u.example")
                .check(&catalog)
                .is_ok()
        );
        for bad in [
            "/api/x/",
            "/x/y",
            "/api/admin/v2",
            "/api/now",
            "/api/x/../admin",
            "/api",
        ] {
            assert!(route(bad, "https://u").check(&catalog).is_err(), "{bad}");
        }
        let mut exchanging = route("/api/x/inv", "https://u.example");
        exchanging.exchange = Some(RouteExchange {
            client_id: "gateway".into(),
            audience: "https://inventory.example".into(),
            scope: Some("inventory".into()),
        });
        assert!(exchanging.check(&catalog).is_ok());
        for (audience, scope) in [("not a uri", None), ("https://i.example", Some("a\"b"))] {
            exchanging.exchange = Some(RouteExchange {
                client_id: "gateway".into(),
                audience: audience.into(),
                scope: scope.map(str::to_owned),
            });
            assert!(exchanging.check(&catalog).is_err(), "{audience} {scope:?}");
        }
        for bad in [
            "ftp://u",
            "https://u:p@h",
            "http://u.example",
            "https://u/?q",
        ] {
            assert!(route("/api/x/y", bad).check(&catalog).is_err(), "{bad}");
        }
    }
}
