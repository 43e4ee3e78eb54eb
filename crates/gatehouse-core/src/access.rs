//! Who may call which protected API: the scope registry, the REST API auth scope rules, and the
//! one authorization step every protected API (admin API, Table API, gateway) goes through.
//!
//! A rule names HTTP methods and a path pattern and the scopes a token must hold for it; a
//! request no rule covers needs [`USERACCOUNT`]. The most specific matching rule decides, and
//! the token needs all the scopes it lists. `useraccount` means "everything the user's roles
//! allow", so it satisfies every rule; roles are checked afterwards by each API.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::entry::{Catalog, Entry};
use crate::gateway::Route;
use crate::path::CanonicalPath;
use crate::scope::ScopeSet;
use crate::token::AccessTokenInfo;
use crate::user::Permission;

/// The scope that stands for everything the user's roles allow.
pub const USERACCOUNT: &str = "useraccount";

/// A scope of the registry: what the consent page says about it, and whether new applications
/// get it when they are registered without a scope list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub default: bool,
}

impl Entry for ScopeEntry {
    const KIND: &'static str = "scope";
    const MANAGED_WITH: Permission = Permission::ManageAccessRules;
    const FIELDS: &'static [&'static str] = &["description", "default"];

    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Catalog) -> Result<(), Error> {
        ScopeSet::from_list(std::slice::from_ref(&self.name))?;
        Ok(())
    }
}

/// A REST API auth scope rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    pub name: String,
    /// Upper-case HTTP methods; empty means every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Segment-wise: `*` matches one segment, a final `**` the rest (possibly nothing).
    pub path: String,
    /// The token needs all of them (or `useraccount`).
    pub scopes: Vec<String>,
}

impl Entry for ScopeRule {
    const KIND: &'static str = "scope_rule";
    const MANAGED_WITH: Permission = Permission::ManageAccessRules;
    const FIELDS: &'static [&'static str] = &["methods", "path", "scopes"];

    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Catalog) -> Result<(), Error> {
        check_pattern(&self.path)?;
        for method in &self.methods {
            let valid = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
            if !valid {
                return Err(Error::validation(format!(
                    "method {method:?} must be an upper-case HTTP method such as GET"
                )));
            }
        }
        if self.scopes.is_empty() {
            return Err(Error::validation("a scope rule names at least one scope"));
        }
        Ok(())
    }

    fn references(&self) -> Vec<(&'static str, &str)> {
        self.scopes
            .iter()
            .map(|s| (ScopeEntry::KIND, s.as_str()))
            .collect()
    }
}

impl ScopeRule {
    pub fn covers(&self, method: &str, path: &[String]) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && pattern_matches(&self.path, path)
    }

    /// Orders rules from most to least specific: more literal segments first, then a fixed
    /// length before a trailing `**`, then the longer literal prefix, then a rule naming its
    /// methods before one covering all of them.
    pub fn specificity(&self) -> (usize, bool, usize, bool) {
        let segments: Vec<&str> = segments(&self.path).collect();
        let literals = segments
            .iter()
            .filter(|s| **s != "*" && **s != "**")
            .count();
        let prefix = segments
            .iter()
            .take_while(|s| **s != "*" && **s != "**")
            .count();
        let open_ended = segments.last() == Some(&"**");
        (literals, !open_ended, prefix, !self.methods.is_empty())
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn check_pattern(pattern: &str) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::validation(format!("path {pattern:?} {why}")));
    if !pattern.starts_with('/') {
        return invalid("must start with /");
    }
    let parts: Vec<&str> = segments(pattern).collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == "**" && i + 1 != parts.len() {
            return invalid("may use ** only as its last segment");
        }
        if part.contains('*') && *part != "*" && *part != "**" {
            return invalid("may use * only as a whole segment");
        }
    }
    Ok(())
}

/// Matches a request path's decoded segments against a rule's pattern.
pub fn pattern_matches(pattern: &str, path: &[String]) -> bool {
    let mut wanted = segments(pattern);
    let mut given = path.iter();
    loop {
        match (wanted.next(), given.next()) {
            (Some("**"), _) => return true,
            (Some("*"), Some(_)) => {}
            (Some(literal), Some(segment)) if literal == segment => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whom a request to a protected API speaks for, whichever kind of token proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub client_id: String,
    pub scopes: ScopeSet,
}

impl From<AccessTokenInfo> for Caller {
    fn from(token: AccessTokenInfo) -> Self {
        Caller {
            user_id: token.user_id,
            user_name: token.user_name,
            client_id: token.client_id,
            scopes: token.scope,
        }
    }
}

/// What decides who may call a method on a path: for an administrator who asks, before any
/// token is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy<'a> {
    /// The rule that decides; `None` when no rule covers the request.
    pub rule: Option<&'a ScopeRule>,
    /// The scopes a token needs, all of them (or `useraccount`): the rule's, or `useraccount`.
    pub scopes: &'a [String],
    /// The gateway route the request is forwarded by; `None` when Gatehouse serves the path
    /// itself, or nothing does.
    pub route: Option<&'a Route>,
}

impl Catalog {
    /// The rule that decides a request: the most specific one covering it (the catalog keeps
    /// the rules in that order), or none.
    pub fn rule_for(&self, method: &str, path: &[String]) -> Option<&ScopeRule> {
        self.rules.iter().find(|rule| rule.covers(method, path))
    }

    /// The scopes a request needs: those of the rule that decides it, or `useraccount`.
    pub fn required_scopes(&self, method: &str, path: &[String]) -> &[String] {
        static DEFAULT: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec![USERACCOUNT.to_owned()]);
        self.rule_for(method, path)
            .map_or(DEFAULT.as_slice(), |rule| rule.scopes.as_slice())
    }

    /// Who may call `method` on `path`, as the protected APIs decide it at request time: the
    /// deciding rule and its scopes, and the gateway route the request would take.
    pub fn who_may_call(&self, method: &str, path: &CanonicalPath) -> CallPolicy<'_> {
        CallPolicy {
            rule: self.rule_for(method, path.segments()),
            scopes: self.required_scopes(method, path.segments()),
            route: self.route_for(path),
        }
    }

    /// The authorization step of every protected API: `insufficient_scope`, naming the scopes
    /// that would do, unless the caller's token holds them (or `useraccount`). Only a
    /// canonical path can be authorized, so the path matched is the path served.
    pub fn authorize(
        &self,
        caller: &Caller,
        method: &str,
        path: &CanonicalPath,
    ) -> Result<(), Error> {
        let required = self.required_scopes(method, path.segments());
        if caller.scopes.contains(USERACCOUNT) || required.iter().all(|s| caller.scopes.contains(s))
        {
            Ok(())
        } else {
            Err(Error::InsufficientScope(required.join(" ")))
        }
    }

    /// The registered scope, if any.
    pub fn scope(&self, name: &str) -> Option<&ScopeEntry> {
        self.scopes.iter().find(|s| s.name == name)
    }

    /// Each scope with what the registry says it allows, as a consent page lists them; an
    /// unregistered one has no description.
    pub fn describe(&self, scopes: &ScopeSet) -> Vec<(String, String)> {
        scopes
            .iter()
            .map(|name| {
                let description = self.scope(name).map(|s| s.description.clone());
                (name.to_owned(), description.unwrap_or_default())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, methods: &[&str], path: &str, scopes: &[&str]) -> ScopeRule {
        ScopeRule {
            name: name.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn catalog(rules: Vec<ScopeRule>) -> Catalog {
        let records: Vec<crate::store::EntryRecord> = rules
            .iter()
            .map(|r| crate::store::EntryRecord {
                kind: ScopeRule::KIND.into(),
                name: r.name.clone(),
                body: serde_json::to_string(r).unwrap(),
                managed: false,
                created_at: 0,
                updated_at: 0,
            })
            .collect();
        Catalog::from_records(&records).unwrap()
    }

    fn caller(scopes: &str) -> Caller {
        Caller {
            user_id: None,
            user_name: None,
            client_id: "c".into(),
            scopes: ScopeSet::parse(scopes).unwrap(),
        }
    }

    fn path(path: &str) -> Vec<String> {
        canonical(path).segments().to_vec()
    }

    fn canonical(path: &str) -> CanonicalPath {
        CanonicalPath::parse(path).unwrap()
    }

    #[test]
    fn patterns_match_segment_wise() {
        let matches = |pattern, p| pattern_matches(pattern, &path(p));
        assert!(matches("/api/now/table/*", "/api/now/table/incident"));
        assert!(!matches("/api/now/table/*", "/api/now/table/incident/1"));
        assert!(!matches("/api/now/table/*", "/api/now/table"));
        assert!(matches("/api/x/**", "/api/x"));
        assert!(matches("/api/x/**", "/api/x/a/b"));
        assert!(!matches("/api/x/**", "/api/xy"));
        assert!(matches("/api/*/items", "/api/v1/items"));
        assert!(matches(
            "/api/now/table/incident",
            "/api/now/table/%69ncident"
        ));
        assert!(check_pattern("/a/**/b").is_err());
        assert!(check_pattern("/a/b*").is_err());
        assert!(check_pattern("a").is_err());
    }

    #[test]
    fn the_most_specific_rule_decides_and_needs_all_its_scopes() {
        let catalog = catalog(vec![
            rule("all-tables", &[], "/api/now/table/**", &["table_read"]),
            rule(
                "incident",
                &["GET"],
                "/api/now/table/incident/**",
                &["incident_read"],
            ),
            rule(
                "incident-write",
                &[],
                "/api/now/table/incident/**",
                &["a", "b"],
            ),
        ]);
        let incident = path("/api/now/table/incident");
        assert_eq!(catalog.required_scopes("GET", &incident), ["incident_read"]);
        assert_eq!(catalog.required_scopes("POST", &incident), ["a", "b"]);
        assert_eq!(
            catalog.required_scopes("GET", &path("/api/now/table/problem")),
            ["table_read"]
        );
        assert_eq!(
            catalog.required_scopes("GET", &path("/api/other")),
            [USERACCOUNT]
        );
        let policy = catalog.who_may_call("GET", &canonical("/api/now/table/incident/1"));
        assert_eq!(policy.rule.map(|r| r.name.as_str()), Some("incident"));
        assert_eq!(policy.scopes, ["incident_read"]);
        let policy = catalog.who_may_call("GET", &canonical("/api/other"));
        assert_eq!(
            (policy.rule, policy.scopes),
            (None, &[USERACCOUNT.to_owned()][..])
        );
        let path = canonical("/api/now/table/incident");
        assert!(catalog.authorize(&caller("a"), "POST", &path).is_err());
        assert!(catalog.authorize(&caller("a b"), "POST", &path).is_ok());
        assert!(
            catalog
                .authorize(&caller("useraccount"), "POST", &path)
                .is_ok()
        );
        assert!(matches!(
            catalog.authorize(&caller("table_read"), "GET", &canonical("/api/other")),
            Err(Error::InsufficientScope(s)) if s == USERACCOUNT
        ));
    }
}
