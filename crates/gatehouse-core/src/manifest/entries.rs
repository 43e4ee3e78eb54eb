//! Reconciling registry entries (`[[scope]]`, `[[scope_rule]]`, `[[route]]`, `[[table]]`,
//! `[[oauth_profile]]`, `[[connection_alias]]`): one generic routine for every kind, with the
//! same rules as applications and users.

use serde_json::Value;

use super::{Action, Apply, ApplyOptions, change};
use crate::Error;
use crate::entry::Entry;
use crate::registry::Registry;

/// Creates or replaces every entry of the file.
pub(super) async fn reconcile<T: Entry>(
    apply: &mut Apply<'_>,
    desired: &[T],
    options: ApplyOptions,
) -> Result<(), Error> {
    let registry: &Registry = apply.work;
    let existing = registry.list_entries::<T>().await?;
    for entry in desired {
        let current = existing.iter().find(|(e, _)| e.name() == entry.name());
        let step = async {
            let Some((current, managed)) = current else {
                if !options.dry_run {
                    registry.create_entry::<T>(to_json(entry)?, true).await?;
                }
                return Ok(Some(change(Action::Create, T::KIND, entry.name(), vec![])));
            };
            let mut fields = differences(current, entry)?;
            if !managed {
                fields.push("managed");
            }
            if fields.is_empty() {
                return Ok(None);
            }
            if !options.dry_run {
                registry.replace_entry(entry.clone(), true).await?;
            }
            Ok(Some(change(Action::Update, T::KIND, entry.name(), fields)))
        };
        if let Some(change) = apply.step(T::KIND, entry.name(), step).await?.flatten() {
            apply.changes.push(change);
        }
    }
    Ok(())
}

/// Deletes the managed entries the file no longer lists.
pub(super) async fn prune<T: Entry>(
    apply: &mut Apply<'_>,
    desired: &[T],
    options: ApplyOptions,
) -> Result<(), Error> {
    let registry: &Registry = apply.work;
    for (entry, managed) in registry.list_entries::<T>().await? {
        let listed = desired.iter().any(|e| e.name() == entry.name());
        if !managed || listed {
            continue;
        }
        let step = async {
            if !options.dry_run {
                registry.delete_entry::<T>(entry.name()).await?;
            }
            Ok(change(Action::Delete, T::KIND, entry.name(), vec![]))
        };
        if let Some(change) = apply.step(T::KIND, entry.name(), step).await? {
            apply.changes.push(change);
        }
    }
    Ok(())
}

fn to_json<T: Entry>(entry: &T) -> Result<Value, Error> {
    serde_json::to_value(entry).map_err(|e| Error::Internal(e.to_string()))
}

/// The names of the fields in which two entries of a kind differ.
fn differences<T: Entry>(current: &T, desired: &T) -> Result<Vec<&'static str>, Error> {
    let (current, desired) = (to_json(current)?, to_json(desired)?);
    Ok(T::FIELDS
        .iter()
        .copied()
        .filter(|field| current.get(field) != desired.get(field))
        .collect())
}
