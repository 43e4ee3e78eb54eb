//! Gateway routes: a path prefix of Gatehouse forwarded to an upstream service, so an existing
//! REST service gets OAuth protection without code of its own. The forwarding itself is IO and
//! lives in `gatehouse-remote`; this is the registry entry and the choice of route.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::entry::{Catalog, Entry};
use crate::path::CanonicalPath;
use crate::user::Permission;

/// The longest an administrator may let an upstream take: below the 30 s in which the server
/// answers every request, so a slow upstream is a 504 from the gateway.
pub const MAX_ROUTE_TIMEOUT_SECONDS: u64 = 25;

fn default_timeout() -> u64 {
    10
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
}

impl Entry for Route {
    const KIND: &'static str = "route";
    const MANAGED_WITH: Permission = Permission::ManageAccessRules;
    const FIELDS: &'static [&'static str] = &["prefix", "upstream", "timeout_seconds", "audience"];

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
        Ok(())
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
