//! Protected resource metadata (RFC 9728): what a client that meets one of Gatehouse's APIs
//! needs to know to get a token for it — which authorization server, which scopes, how the
//! token is presented.
//!
//! Gatehouse serves two kinds of protected resources. Its own APIs (the admin API, the Table
//! API, UserInfo, the outbound proxy) are one resource, identified by the issuer, as the tokens
//! for them are. Each gateway route is another, identified by its URL on this server,
//! `{issuer}{prefix}`; its metadata lives at the well-known path with the prefix appended
//! (RFC 9728 §3.1), and every bearer challenge a request under the route gets names it.

use serde::Serialize;

use crate::access::USERACCOUNT;
use crate::entry::Catalog;
use crate::gateway::Route;
use crate::path::CanonicalPath;

/// Where the metadata of the resource identified by the issuer lives; a route's adds its
/// prefix.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// A protected resource's metadata document (RFC 9728 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub bearer_methods_supported: Vec<&'static str>,
    pub scopes_supported: Vec<String>,
    pub resource_name: String,
}

impl Catalog {
    /// The metadata of the resource whose identifier is the issuer followed by `suffix`: `""`
    /// for Gatehouse's own APIs, a route's prefix for that route; `None` for anything else.
    pub fn resource_metadata(&self, issuer: &str, suffix: &str) -> Option<ResourceMetadata> {
        let (name, scopes) = if suffix.is_empty() {
            let scopes = self.scopes.iter().map(|s| s.name.clone()).collect();
            ("Gatehouse".to_owned(), scopes)
        } else {
            let route = self.routes.iter().find(|r| r.prefix == suffix)?;
            (route.name.clone(), self.scopes_under(route))
        };
        Some(ResourceMetadata {
            resource: format!("{issuer}{suffix}"),
            authorization_servers: vec![issuer.to_owned()],
            bearer_methods_supported: vec!["header"],
            scopes_supported: scopes,
            resource_name: name,
        })
    }

    /// Where the metadata of the resource a request path belongs to lives (RFC 9728 §5.1): its
    /// route's, or Gatehouse's own.
    pub fn resource_metadata_url(&self, issuer: &str, path: &str) -> String {
        let prefix = CanonicalPath::parse(path)
            .ok()
            .and_then(|path| self.route_for(&path))
            .map_or("", |route| route.prefix.as_str());
        format!("{issuer}{METADATA_PATH}{prefix}")
    }

    /// The scopes the rules under a route ask for, and `useraccount`, which satisfies them all.
    fn scopes_under(&self, route: &Route) -> Vec<String> {
        let under = |pattern: &str| {
            pattern
                .strip_prefix(route.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let mut scopes: Vec<String> = self
            .rules
            .iter()
            .filter(|rule| under(&rule.path))
            .flat_map(|rule| rule.scopes.iter().cloned())
            .chain([USERACCOUNT.to_owned()])
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{ScopeEntry, ScopeRule};

    fn catalog() -> Catalog {
        Catalog {
            scopes: vec![ScopeEntry {
                name: "inventory_read".into(),
                description: String::new(),
                default: false,
            }],
            rules: vec![
                ScopeRule {
                    name: "read".into(),
                    methods: vec!["GET".into()],
                    path: "/api/x/inventory/**".into(),
                    scopes: vec!["inventory_read".into()],
                },
                ScopeRule {
                    name: "elsewhere".into(),
                    methods: vec![],
                    path: "/api/x/inventory-archive/**".into(),
                    scopes: vec!["archive".into()],
                },
            ],
            routes: vec![Route {
                name: "inventory".into(),
                prefix: "/api/x/inventory".into(),
                upstream: "http://127.0.0.1:9000".into(),
                timeout_seconds: 10,
                audience: None,
                exchange: None,
            }],
            ..Catalog::default()
        }
    }

    #[test]
    fn each_route_and_the_server_itself_are_resources() {
        let catalog = catalog();
        let issuer = "https://id.example";
        let own = catalog.resource_metadata(issuer, "").unwrap();
        assert_eq!(own.resource, issuer);
        assert_eq!(own.authorization_servers, vec![issuer.to_owned()]);
        let route = catalog
            .resource_metadata(issuer, "/api/x/inventory")
            .unwrap();
        assert_eq!(route.resource, "https://id.example/api/x/inventory");
        assert_eq!(
            route.scopes_supported,
            vec!["inventory_read", "useraccount"]
        );
        assert_eq!(catalog.resource_metadata(issuer, "/api/x"), None);

        for (path, url) in [
            ("/api/x/inventory/items/1", "/api/x/inventory"),
            ("/api/x/inventory", "/api/x/inventory"),
            ("/api/now/table/incident", ""),
            ("/api/x/inventory/../secret", ""),
        ] {
            assert_eq!(
                catalog.resource_metadata_url(issuer, path),
                format!("https://id.example/.well-known/oauth-protected-resource{url}"),
                "{path}"
            );
        }
    }
}
