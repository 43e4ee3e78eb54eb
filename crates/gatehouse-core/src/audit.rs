//! The audit trail: who changed what in the registry, and the security events (sign-ins,
//! lockouts, consents, replays, revocations, key rotations, refused JWTs).
//!
//! A change's events are written through the store it writes through, so within a transaction
//! they commit with it or not at all; each event is also logged once it is committed, as one
//! line with the target `audit`. What changed is computed from the serialised records before
//! and after, so a field added to a record later is audited without a change here; secret
//! fields (by name, see [`is_secret_field`]) show only that they changed.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::clock::Clock;
use crate::store::{AuditRecord, AuditStore, Store, StoreTransaction};

/// How long audit events are kept unless configured otherwise: 90 days.
pub const DEFAULT_RETENTION: i64 = 90 * 86_400;

/// Who acts: an administrator of the admin API (with the application their token came through
/// and their address), or the operator's tools: `cli`, `apply`, `server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub client_id: Option<String>,
    pub address: Option<String>,
}

impl Actor {
    /// The operator, through one of their tools.
    pub fn operator(tool: &str) -> Actor {
        Actor {
            name: tool.to_owned(),
            client_id: None,
            address: None,
        }
    }

    /// Someone acting through the request being served (see [`within_request`]): a person
    /// signing in, a client at the token endpoint. Outside a request, no address.
    pub fn at_request(name: &str, client_id: Option<&str>) -> Actor {
        Actor {
            name: name.to_owned(),
            client_id: client_id.map(str::to_owned),
            address: REQUEST_ADDRESS
                .try_with(|address| address.map(|address| address.to_string()))
                .ok()
                .flatten(),
        }
    }
}

tokio::task_local! {
    /// The client address of the request being served, for the events it causes; written out
    /// only when one is recorded, since most requests cause none.
    static REQUEST_ADDRESS: Option<std::net::IpAddr>;
}

/// Runs `work` (a request's handling) with its client address known to the audit trail, so the
/// security events deep in the domain name it without every function passing it on.
pub async fn within_request<F: Future>(address: Option<std::net::IpAddr>, work: F) -> F::Output {
    REQUEST_ADDRESS.scope(address, work).await
}

/// What happened, before it is stamped with its actor and time.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub kind: String,
    pub subject: String,
    pub details: Map<String, Value>,
}

/// Whether a field holds a secret, or something a secret can be recovered or checked from: its
/// value never appears in the audit trail, only that it changed. By name, so that new secret
/// fields are covered as long as they are named like the others.
pub fn is_secret_field(name: &str) -> bool {
    ["secret", "password", "hash", "sealed", "private"]
        .iter()
        .any(|word| name.contains(word))
}

impl AuditEvent {
    pub fn new(kind: impl Into<String>, subject: impl Into<String>) -> AuditEvent {
        AuditEvent {
            kind: kind.into(),
            subject: subject.into(),
            details: Map::new(),
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<Value>) -> AuditEvent {
        self.details.insert(name.to_owned(), value.into());
        self
    }

    /// A record of `what` (e.g. `application`) created, updated or deleted: `what.created`
    /// with every field, `what.updated` with the fields that differ (old and new), or
    /// `what.deleted`. `None` when an update changed nothing.
    pub fn change<T: Serialize>(
        what: &str,
        key: &str,
        before: Option<&T>,
        after: Option<&T>,
    ) -> Option<AuditEvent> {
        let before = before.map(to_object);
        let after = after.map(to_object);
        let (action, fields) = match (&before, &after) {
            (None, Some(after)) => ("created", changed_fields(&Map::new(), after)),
            (Some(before), Some(after)) => ("updated", changed_fields(before, after)),
            (Some(before), None) => ("deleted", changed_fields(before, &Map::new())),
            (None, None) => return None,
        };
        if action == "updated" && fields.is_empty() {
            return None;
        }
        Some(AuditEvent::new(format!("{what}.{action}"), key).with("fields", Value::Object(fields)))
    }
}

fn to_object<T: Serialize>(record: &T) -> Map<String, Value> {
    match serde_json::to_value(record) {
        Ok(Value::Object(fields)) => fields,
        Ok(other) => Map::from_iter([("value".to_owned(), other)]),
        Err(_) => Map::new(),
    }
}

/// The fields that differ between two serialised records, as `{"old": …, "new": …}` (a side
/// that lacks the field is left out); a secret field as `{"changed": true}`. Bookkeeping
/// fields that change with every write (`updated_at`) are left out.
pub fn changed_fields(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Map<String, Value> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    let mut fields = Map::new();
    for name in names {
        let (old, new) = (before.get(name), after.get(name));
        let absent = |value: Option<&Value>| value.is_none_or(Value::is_null);
        if old == new || (absent(old) && absent(new)) || name == "updated_at" {
            continue;
        }
        let shown = if is_secret_field(name) {
            json!({ "changed": true })
        } else {
            let mut change = Map::new();
            if let Some(old) = old.filter(|v| !v.is_null()) {
                change.insert("old".into(), old.clone());
            }
            if let Some(new) = new.filter(|v| !v.is_null()) {
                change.insert("new".into(), new.clone());
            }
            Value::Object(change)
        };
        fields.insert(name.clone(), shown);
    }
    fields
}

/// Writes an event that happened `at` through `store` (a transaction's, for a change) and
/// returns it as stored.
pub async fn write(
    store: &dyn AuditStore,
    at: i64,
    actor: &Actor,
    event: AuditEvent,
) -> Result<AuditRecord, Error> {
    let record = AuditRecord {
        id: 0,
        at,
        kind: event.kind,
        actor: actor.name.clone(),
        client_id: actor.client_id.clone(),
        address: actor.address.clone(),
        subject: event.subject,
        details: Value::Object(event.details).to_string(),
    };
    store.insert_audit(&record).await?;
    Ok(record)
}

/// Writes a security event that is a change of its own (not part of a larger one) and logs it.
pub async fn record(
    store: &dyn AuditStore,
    at: i64,
    actor: &Actor,
    event: AuditEvent,
) -> Result<(), Error> {
    log(&write(store, at, actor, event).await?);
    Ok(())
}

/// The event's log line, for log shippers: target `audit`, the event's parts as fields (with
/// `log_format = "json"`, one JSON object per event).
pub fn log(record: &AuditRecord) {
    tracing::info!(
        target: "audit",
        at = record.at,
        kind = %record.kind,
        actor = %record.actor,
        client_id = record.client_id.as_deref(),
        address = record.address.as_deref(),
        subject = %record.subject,
        details = %record.details,
        "audit event"
    );
}

/// A unit of work on the registry: who does it and, inside a transaction, what to do once it
/// commits — log its audit events, tell this process's caches of its changes, and run what
/// must follow only a committed change (back-channel logout). Outside a transaction all of it
/// happens at once.
#[derive(Clone)]
pub struct Work {
    pub(crate) actor: Arc<Actor>,
    open: Option<Arc<Committing>>,
}

/// What runs once a transaction has committed.
type AfterCommit = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Committing {
    records: Mutex<Vec<AuditRecord>>,
    notices: Mutex<Vec<String>>,
    after: Mutex<Vec<AfterCommit>>,
}

impl Work {
    pub fn new(actor: Actor) -> Work {
        Work {
            actor: Arc::new(actor),
            open: None,
        }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// This work as part of a transaction that has just begun.
    pub(crate) fn opened(&self) -> Work {
        Work {
            actor: self.actor.clone(),
            open: Some(Arc::default()),
        }
    }

    /// Writes an event of this work through `store`.
    pub(crate) async fn audit(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        event: AuditEvent,
    ) -> Result<(), Error> {
        let record = write(store, clock.now(), &self.actor, event).await?;
        match &self.open {
            Some(open) => lock(&open.records).push(record),
            None => log(&record),
        }
        Ok(())
    }

    /// Keeps a change notice for the commit; `false` outside a transaction, where it applies at
    /// once.
    pub(crate) fn defer_notice(&self, notice: &str) -> bool {
        match &self.open {
            Some(open) => {
                lock(&open.notices).push(notice.to_owned());
                true
            }
            None => false,
        }
    }

    /// Runs `action` once this work's transaction has committed (at once outside one), and
    /// never if it rolls back: for what the world must hear only of a change that happened.
    pub(crate) fn after_commit(&self, action: impl FnOnce() + Send + 'static) {
        match &self.open {
            Some(open) => lock(&open.after).push(Box::new(action)),
            None => action(),
        }
    }

    /// After the commit: logs the events, runs what waited for the commit and returns the
    /// notices for the caches.
    pub(crate) fn committed(&self) -> Vec<String> {
        let Some(open) = &self.open else {
            return Vec::new();
        };
        for record in lock(&open.records).drain(..) {
            log(&record);
        }
        let after = std::mem::take(&mut *lock(&open.after));
        for action in after {
            action();
        }
        std::mem::take(&mut *lock(&open.notices))
    }
}

/// A registry of use cases that can run in a transaction of the store ([`Transacted`]).
pub trait Transactional: Clone {
    fn store(&self) -> &Arc<dyn Store>;
    fn work(&self) -> &Work;
    /// This registry writing through `store` for `work`.
    fn joined(&self, store: Arc<dyn Store>, work: Work) -> Self;
    /// What the change notices of a committed transaction mean to this process.
    fn committed(&self, _notices: Vec<String>) {}
}

/// A registry in a transaction: a use case begins one, writes through it (with its audit
/// events), and commits; returning early with an error drops it, which rolls it back. Begun
/// inside another, it joins that one and its commit is the outer one's.
pub struct Transacted<R> {
    registry: R,
    transaction: Option<Arc<dyn StoreTransaction>>,
}

impl<R: Transactional> Transacted<R> {
    pub async fn begin(registry: &R) -> Result<Transacted<R>, Error> {
        if registry.work().is_open() {
            return Ok(Transacted {
                registry: registry.clone(),
                transaction: None,
            });
        }
        let transaction = registry.store().begin().await?;
        let store: Arc<dyn Store> = transaction.clone();
        Ok(Transacted {
            registry: registry.joined(store, registry.work().opened()),
            transaction: Some(transaction),
        })
    }

    /// Another registry (e.g. the outbound one) working in this transaction.
    pub fn join<O: Transactional>(&self, other: &O) -> O {
        other.joined(self.registry.store().clone(), self.registry.work().clone())
    }

    /// Runs one step of the transaction: when it fails, what it wrote is undone and the
    /// transaction goes on, so later steps are still checked. The outer `Result` is the
    /// database failing to do that.
    pub async fn attempt<T>(
        &self,
        step: impl Future<Output = Result<T, Error>>,
    ) -> Result<Result<T, Error>, Error> {
        let Some(transaction) = &self.transaction else {
            return Ok(step.await);
        };
        transaction.savepoint().await?;
        let outcome = step.await;
        match &outcome {
            Ok(_) => transaction.release_savepoint().await?,
            Err(_) => transaction.rollback_to_savepoint().await?,
        }
        Ok(outcome)
    }

    pub async fn commit(self) -> Result<(), Error> {
        if let Some(transaction) = self.transaction {
            transaction.commit().await?;
            self.registry.committed(self.registry.work().committed());
        }
        Ok(())
    }
}

impl<R> std::ops::Deref for Transacted<R> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.registry
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Record {
        name: String,
        secret_hash: Option<String>,
        roles: Vec<String>,
        updated_at: i64,
    }

    #[test]
    fn changes_show_old_and_new_values_and_never_a_secret() {
        let before = Record {
            name: "Billing".into(),
            secret_hash: Some("h1".into()),
            roles: vec![],
            updated_at: 1,
        };
        let after = Record {
            name: "Billing v2".into(),
            secret_hash: Some("h2".into()),
            roles: vec![],
            updated_at: 2,
        };
        let event = AuditEvent::change("application", "billing", Some(&before), Some(&after))
            .expect("a change");
        assert_eq!(event.kind, "application.updated");
        assert_eq!(
            event.details["fields"],
            json!({
                "name": {"old": "Billing", "new": "Billing v2"},
                "secret_hash": {"changed": true},
            })
        );
        assert!(
            !Value::Object(event.details.clone())
                .to_string()
                .contains("h2")
        );
        let same = AuditEvent::change("application", "billing", Some(&after), Some(&after));
        assert_eq!(same, None);
        let created = AuditEvent::change("application", "billing", None, Some(&after)).unwrap();
        assert_eq!(created.kind, "application.created");
        assert_eq!(
            created.details["fields"]["secret_hash"],
            json!({"changed": true})
        );
        assert_eq!(
            created.details["fields"]["name"],
            json!({"new": "Billing v2"})
        );
    }

    #[test]
    fn secret_fields_are_known_by_name() {
        for name in [
            "secret_hash",
            "previous_secret",
            "password_hash",
            "client_secret_sealed",
            "signing_key_sealed",
            "private_key",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in [
            "name",
            "roles",
            "redirect_uris",
            "issuer",
            "allowed_clients",
        ] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    #[test]
    fn what_waits_for_the_commit_runs_after_it_and_never_for_a_rollback() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = || {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        };
        let committing = Work::new(Actor::operator("test")).opened();
        committing.after_commit(counted());
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        committing.committed();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        committing.committed();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "once");

        let rolled_back = Work::new(Actor::operator("test")).opened();
        rolled_back.after_commit(counted());
        drop(rolled_back);
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        Work::new(Actor::operator("test")).after_commit(counted());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "outside a transaction: at once"
        );
    }
}
