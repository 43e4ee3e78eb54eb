//! Scopes (RFC 6749 §3.3): parsing, printing and down-scoping.

use std::collections::BTreeSet;
use std::fmt;

use crate::Error;

/// A set of scope tokens, kept sorted so that equal sets print equally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited `scope` parameter. RFC 6749 §3.3 allows
    /// `%x21 / %x23-5B / %x5D-7E` in a scope token: printable ASCII without `"` and `\`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let mut scopes = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if !is_scope_token(token) {
                return Err(Error::InvalidScope(
                    "a scope contains a character RFC 6749 §3.3 does not allow".into(),
                ));
            }
            scopes.insert(token.to_owned());
        }
        Ok(ScopeSet(scopes))
    }

    /// Builds a set from registry values, checking each one.
    pub fn from_list<S: AsRef<str>>(items: &[S]) -> Result<Self, Error> {
        let mut scopes = BTreeSet::new();
        for item in items {
            let token = item.as_ref();
            if !is_scope_token(token) {
                return Err(Error::validation(format!(
                    "scope {token:?} is not a valid RFC 6749 scope token"
                )));
            }
            scopes.insert(token.to_owned());
        }
        Ok(ScopeSet(scopes))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }

    /// Chooses the scope of a new token: the requested scope when it lies within what the client
    /// may have, the client's defaults when none was requested (RFC 6749 §3.3).
    pub fn down_scope(
        requested: Option<&str>,
        allowed: &ScopeSet,
        defaults: &ScopeSet,
    ) -> Result<ScopeSet, Error> {
        let Some(requested) = requested else {
            return Ok(defaults.clone());
        };
        let requested = ScopeSet::parse(requested)?;
        if !requested.iter().all(|s| allowed.contains(s)) {
            return Err(Error::InvalidScope(
                "a requested scope is not allowed for this client".into(),
            ));
        }
        Ok(requested)
    }

    /// The scope of a token made from another (a token exchange, RFC 8693 §2.1): within what
    /// the token `held` carries and what the client may have. Without a request, what both
    /// allow; a requested scope beyond either is `invalid_scope`, so a scope can only narrow.
    pub fn narrow(
        requested: Option<&str>,
        held: &ScopeSet,
        allowed: &ScopeSet,
    ) -> Result<ScopeSet, Error> {
        let Some(requested) = requested else {
            return Ok(ScopeSet(held.0.intersection(&allowed.0).cloned().collect()));
        };
        let requested = ScopeSet::parse(requested)?;
        if !requested.is_subset(held) {
            return Err(Error::InvalidScope(
                "a requested scope is not in the subject token's scope".into(),
            ));
        }
        if !requested.is_subset(allowed) {
            return Err(Error::InvalidScope(
                "a requested scope is not allowed for this client".into(),
            ));
        }
        Ok(requested)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
            first = false;
        }
        Ok(())
    }
}

fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(value: &str) -> ScopeSet {
        ScopeSet::parse(value).unwrap()
    }

    #[test]
    fn parsing_sorts_dedups_and_ignores_extra_spaces() {
        assert_eq!(set("b  a b").to_string(), "a b");
    }

    #[test]
    fn quote_and_backslash_are_refused() {
        assert!(matches!(
            ScopeSet::parse("a\"b"),
            Err(Error::InvalidScope(_))
        ));
        assert!(matches!(
            ScopeSet::parse("a\\b"),
            Err(Error::InvalidScope(_))
        ));
        assert!(matches!(ScopeSet::parse("é"), Err(Error::InvalidScope(_))));
    }

    #[test]
    fn down_scoping_stays_within_allowed_and_defaults_apply() {
        let allowed = set("read write");
        let defaults = set("read");
        assert_eq!(
            ScopeSet::down_scope(None, &allowed, &defaults).unwrap(),
            defaults
        );
        assert_eq!(
            ScopeSet::down_scope(Some("write"), &allowed, &defaults).unwrap(),
            set("write")
        );
        assert!(matches!(
            ScopeSet::down_scope(Some("admin"), &allowed, &defaults),
            Err(Error::InvalidScope(_))
        ));
    }

    #[test]
    fn narrowing_never_widens() {
        let held = set("read write");
        let allowed = set("read admin");
        assert_eq!(
            ScopeSet::narrow(None, &held, &allowed).unwrap(),
            set("read")
        );
        assert_eq!(
            ScopeSet::narrow(Some("read"), &held, &allowed).unwrap(),
            set("read")
        );
        assert_eq!(
            ScopeSet::narrow(Some(""), &held, &allowed).unwrap(),
            set("")
        );
        for wider in ["write", "admin", "read delete"] {
            assert!(
                matches!(
                    ScopeSet::narrow(Some(wider), &held, &allowed),
                    Err(Error::InvalidScope(_))
                ),
                "{wider}"
            );
        }
    }
}
