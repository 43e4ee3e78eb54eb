//! Registry entries, plain named records with references: scopes, scope rules, gateway
//! routes, tables, OAuth profiles and connection aliases. Each kind is a small document with a
//! name; all of them together form the [`Catalog`], which the request path reads from memory.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::access::{ScopeEntry, ScopeRule};
use crate::gateway::Route;
use crate::outbound::{ConnectionAlias, OAuthProfile};
use crate::store::{EntryRecord, Store};
use crate::table::TableDef;
use crate::user::Permission;

/// One kind of configuration entry.
pub trait Entry: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The kind's name in storage, change notices and messages: `scope`, `scope_rule`, ...
    const KIND: &'static str;
    /// The fields of its document, for reports of what changed.
    const FIELDS: &'static [&'static str];
    /// What an administrator's roles must allow to change entries of this kind.
    const MANAGED_WITH: Permission;

    fn name(&self) -> &str;

    /// Checks the entry on its own and against the rest of the registry.
    fn check(&self, catalog: &Catalog) -> Result<(), Error>;

    /// The entries this one names, as (kind, name): they must exist, and cannot be deleted while
    /// it does.
    fn references(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }

    /// Checks the entry against records that are not entries (the OAuth provider a profile
    /// names), read through the change's transaction.
    fn check_records(&self, store: &dyn Store) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = store;
        async { Ok(()) }
    }

    /// Runs in the change's transaction once the entry `name` was created, changed or deleted:
    /// what was derived from it as it was goes (the tokens obtained for a profile).
    fn changed(name: &str, store: &dyn Store) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (name, store);
        async { Ok(()) }
    }
}

/// Every configuration entry, decoded, as the request path needs them: rules most specific
/// first, routes longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub scopes: Vec<ScopeEntry>,
    pub rules: Vec<ScopeRule>,
    pub routes: Vec<Route>,
    pub tables: Vec<TableDef>,
    pub profiles: Vec<OAuthProfile>,
    pub aliases: Vec<ConnectionAlias>,
}

impl Catalog {
    pub fn from_records(records: &[EntryRecord]) -> Result<Catalog, Error> {
        let mut catalog = Catalog::default();
        for record in records {
            match record.kind.as_str() {
                ScopeEntry::KIND => catalog.scopes.push(decode(record)?),
                ScopeRule::KIND => catalog.rules.push(decode(record)?),
                Route::KIND => catalog.routes.push(decode(record)?),
                TableDef::KIND => catalog.tables.push(decode(record)?),
                OAuthProfile::KIND => catalog.profiles.push(decode(record)?),
                ConnectionAlias::KIND => catalog.aliases.push(decode(record)?),
                // A kind this version does not know was written by a newer one: ignore it.
                _ => {}
            }
        }
        catalog.scopes.sort_by(|a, b| a.name.cmp(&b.name));
        catalog.rules.sort_by(|a, b| {
            b.specificity()
                .cmp(&a.specificity())
                .then(a.name.cmp(&b.name))
        });
        catalog
            .routes
            .sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(catalog)
    }

    /// Whether an entry of `kind` named `name` exists.
    pub fn contains(&self, kind: &str, name: &str) -> bool {
        match kind {
            ScopeEntry::KIND => self.scopes.iter().any(|s| s.name == name),
            ScopeRule::KIND => self.rules.iter().any(|r| r.name == name),
            Route::KIND => self.routes.iter().any(|r| r.name == name),
            TableDef::KIND => self.tables.iter().any(|t| t.name == name),
            OAuthProfile::KIND => self.profiles.iter().any(|p| p.name == name),
            ConnectionAlias::KIND => self.aliases.iter().any(|a| a.name == name),
            _ => false,
        }
    }

    /// The first entry that names the entry `kind` `name`, as (its kind, its name).
    pub fn referrer_of(&self, kind: &str, name: &str) -> Option<(&'static str, &str)> {
        fn first<'a, T: Entry>(
            entries: &'a [T],
            kind: &str,
            name: &str,
        ) -> Option<(&'static str, &'a str)> {
            entries
                .iter()
                .find(|entry| entry.references().contains(&(kind, name)))
                .map(|entry| (T::KIND, entry.name()))
        }
        first(&self.rules, kind, name).or_else(|| first(&self.aliases, kind, name))
    }

    /// The entry of a kind named `name`, from the kind's list in this catalog.
    pub fn find<'a, T: Entry>(entries: &'a [T], name: &str) -> Result<&'a T, Error> {
        entries
            .iter()
            .find(|entry| entry.name() == name)
            .ok_or_else(|| Error::NotFound(format!("{} {name:?}", T::KIND)))
    }
}

pub(crate) fn decode<T: Entry>(record: &EntryRecord) -> Result<T, Error> {
    serde_json::from_str(&record.body).map_err(|e| {
        Error::Internal(format!(
            "stored {} {:?} does not decode: {e}",
            record.kind, record.name
        ))
    })
}
