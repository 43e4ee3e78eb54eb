//! The use cases of registry entries (scopes, scope rules, routes, tables, OAuth profiles,
//! connection aliases), one generic set for every kind: create, list, show, change some
//! fields, replace, save (create or replace), delete.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Registry, check_identifier, conflict_naming};
use crate::Error;
use crate::access::{ScopeEntry, USERACCOUNT};
use crate::audit::AuditEvent;
use crate::cache::CATALOG_KEY;
use crate::entry::{Catalog, Entry, decode};
use crate::store::{EntryRecord, RecordQuery};
use crate::table::TableDef;

impl Registry {
    /// Every configuration entry, from memory unless the snapshot is older than the cache's
    /// time to live or a change invalidated it.
    pub async fn catalog(&self) -> Result<Arc<Catalog>, Error> {
        if self.in_transaction() {
            return Ok(Arc::new(self.fresh_catalog().await?));
        }
        let catalog = self
            .cache
            .catalog
            .get(CATALOG_KEY, || async {
                let records = self.store.list_entries().await?;
                Catalog::from_records(&records).map(Some)
            })
            .await?;
        Ok(catalog.unwrap_or_default())
    }

    /// Entries of one kind, with whether `gatehouse apply` manages them.
    pub async fn list_entries<T: Entry>(&self) -> Result<Vec<(T, bool)>, Error> {
        let mut entries = Vec::new();
        for record in self.store.list_entries().await? {
            if record.kind == T::KIND {
                entries.push((decode(&record)?, record.managed));
            }
        }
        Ok(entries)
    }

    pub async fn get_entry<T: Entry>(&self, name: &str) -> Result<T, Error> {
        self.list_entries::<T>()
            .await?
            .into_iter()
            .map(|(entry, _)| entry)
            .find(|entry| entry.name() == name)
            .ok_or_else(|| Error::NotFound(format!("{} {name:?}", T::KIND)))
    }

    /// Creates an entry from its fields (as JSON, so every surface shares the decoding).
    pub async fn create_entry<T: Entry>(&self, fields: Value, managed: bool) -> Result<T, Error> {
        let this = self.begin().await?;
        this.require(T::MANAGED_WITH)?;
        let entry: T = from_fields(fields)?;
        check_identifier(&format!("a {}'s name", T::KIND), entry.name(), 128)?;
        this.check_entry(&entry).await?;
        let now = this.clock.now();
        this.store
            .insert_entry(&record(&entry, managed, now, now)?)
            .await
            .map_err(conflict_naming(format!(
                "a {} named {:?}",
                T::KIND,
                entry.name()
            )))?;
        // Nothing derived from an entry of this name may outlive it, but a stray leftover is
        // not taken over by the new one either.
        T::changed(entry.name(), &*this.store).await?;
        this.audit(AuditEvent::change(
            T::KIND,
            entry.name(),
            None,
            Some(&entry),
        ))
        .await?;
        this.entry_changed::<T>(entry.name()).await?;
        this.commit().await?;
        Ok(entry)
    }

    /// Changes the given fields of an entry; a field given as `null` takes its default.
    pub async fn update_entry<T: Entry>(
        &self,
        name: &str,
        changes: Map<String, Value>,
    ) -> Result<T, Error> {
        let this = self.begin().await?;
        let (current, managed) = this.find_entry::<T>(name).await?;
        let Value::Object(mut fields) = to_fields(&current)? else {
            return Err(Error::Internal(format!("{} is not an object", T::KIND)));
        };
        for (field, value) in changes {
            if field == "name" && value.as_str() != Some(name) {
                return Err(Error::validation(format!(
                    "a {}'s name cannot change",
                    T::KIND
                )));
            }
            if value.is_null() {
                fields.remove(&field);
            } else {
                fields.insert(field, value);
            }
        }
        let entry: T = from_fields(Value::Object(fields))?;
        let entry = this.replace_entry(entry, managed).await?;
        this.commit().await?;
        Ok(entry)
    }

    /// Replaces an existing entry as a whole.
    pub async fn replace_entry<T: Entry>(&self, entry: T, managed: bool) -> Result<T, Error> {
        let this = self.begin().await?;
        this.require(T::MANAGED_WITH)?;
        let (before, _) = this.find_entry::<T>(entry.name()).await?;
        this.check_entry(&entry).await?;
        let now = this.clock.now();
        // created_at is kept by the store, which updates only body, managed and updated_at.
        if !this
            .store
            .update_entry(&record(&entry, managed, now, now)?)
            .await?
        {
            return Err(Error::NotFound(format!("{} {:?}", T::KIND, entry.name())));
        }
        // Saved unchanged (`gatehouse apply` only taking it over, say), it keeps what was
        // derived from it.
        if to_fields(&before)? != to_fields(&entry)? {
            T::changed(entry.name(), &*this.store).await?;
        }
        this.audit(AuditEvent::change(
            T::KIND,
            entry.name(),
            Some(&before),
            Some(&entry),
        ))
        .await?;
        this.entry_changed::<T>(entry.name()).await?;
        this.commit().await?;
        Ok(entry)
    }

    /// Creates an entry from its fields, or replaces the one with its name as a whole (which
    /// stays managed by `gatehouse apply` if it was).
    pub async fn save_entry<T: Entry>(&self, fields: Value) -> Result<T, Error> {
        let this = self.begin().await?;
        let entry: T = from_fields(fields)?;
        let existing = this
            .list_entries::<T>()
            .await?
            .into_iter()
            .find(|(e, _)| e.name() == entry.name());
        let saved = match existing {
            Some((_, managed)) => this.replace_entry(entry, managed).await?,
            None => this.create_entry(to_fields(&entry)?, false).await?,
        };
        this.commit().await?;
        Ok(saved)
    }

    pub async fn delete_entry<T: Entry>(&self, name: &str) -> Result<(), Error> {
        let this = self.begin().await?;
        this.require(T::MANAGED_WITH)?;
        if T::KIND == ScopeEntry::KIND && name == USERACCOUNT {
            return Err(Error::Conflict(format!(
                "scope {USERACCOUNT:?} is built in: it stands for everything a user's roles allow"
            )));
        }
        if T::KIND == TableDef::KIND {
            let any = RecordQuery {
                filters: vec![],
                limit: 1,
                offset: 0,
            };
            let (_, records) = this.store.list_records(name, &any).await?;
            if records > 0 {
                return Err(Error::Conflict(format!(
                    "table {name:?} still has {records} records; delete them first"
                )));
            }
        }
        if T::KIND == ScopeEntry::KIND
            && let Some(client) = this
                .store
                .list_clients()
                .await?
                .into_iter()
                .find(|c| c.allowed_scopes.iter().any(|s| s == name))
        {
            return Err(Error::Conflict(format!(
                "scope {name:?} is allowed to application {:?}; take it from the application first",
                client.client_id
            )));
        }
        if let Some((kind, other)) = this.fresh_catalog().await?.referrer_of(T::KIND, name) {
            return Err(Error::Conflict(format!(
                "{} {name:?} is named by {kind} {other:?}",
                T::KIND
            )));
        }
        let (before, _) = this.find_entry::<T>(name).await?;
        if !this.store.delete_entry(T::KIND, name).await? {
            return Err(Error::NotFound(format!("{} {name:?}", T::KIND)));
        }
        T::changed(name, &*this.store).await?;
        this.audit(AuditEvent::change(T::KIND, name, Some(&before), None))
            .await?;
        this.entry_changed::<T>(name).await?;
        this.commit().await
    }

    async fn find_entry<T: Entry>(&self, name: &str) -> Result<(T, bool), Error> {
        self.list_entries::<T>()
            .await?
            .into_iter()
            .find(|(entry, _)| entry.name() == name)
            .ok_or_else(|| Error::NotFound(format!("{} {name:?}", T::KIND)))
    }

    /// The names of the scopes new applications get when registered without a scope list.
    pub async fn default_scopes(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .catalog()
            .await?
            .scopes
            .iter()
            .filter(|s| s.default)
            .map(|s| s.name.clone())
            .collect())
    }

    async fn check_entry<T: Entry>(&self, entry: &T) -> Result<(), Error> {
        let catalog = self.fresh_catalog().await?;
        entry.check(&catalog)?;
        entry.check_records(&*self.store).await?;
        for (kind, name) in entry.references() {
            if !catalog.contains(kind, name) {
                return Err(Error::validation(format!("{kind} {name:?} does not exist")));
            }
        }
        Ok(())
    }

    /// Checks before a write read the database, not the cache, which may lag another process.
    pub(super) async fn fresh_catalog(&self) -> Result<Catalog, Error> {
        Catalog::from_records(&self.store.list_entries().await?)
    }

    async fn entry_changed<T: Entry>(&self, name: &str) -> Result<(), Error> {
        self.changed(format!("entry:{}:{name}", T::KIND)).await
    }
}

fn record<T: Entry>(
    entry: &T,
    managed: bool,
    created_at: i64,
    updated_at: i64,
) -> Result<EntryRecord, Error> {
    Ok(EntryRecord {
        kind: T::KIND.to_owned(),
        name: entry.name().to_owned(),
        body: serde_json::to_string(entry).map_err(|e| Error::Internal(e.to_string()))?,
        managed,
        created_at,
        updated_at,
    })
}

fn to_fields<T: Entry>(entry: &T) -> Result<Value, Error> {
    serde_json::to_value(entry).map_err(|e| Error::Internal(e.to_string()))
}

fn from_fields<T: Entry>(fields: Value) -> Result<T, Error> {
    serde_json::from_value(fields).map_err(|e| Error::validation(format!("{}: {e}", T::KIND)))
}
