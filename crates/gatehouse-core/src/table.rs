//! The Table API's domain: tables are registry entries with read and write roles; records are
//! JSON objects of fields plus the system fields (`sys_id`, `sys_created_on`, `sys_updated_on`,
//! `sys_mod_count`) that Gatehouse keeps. Changes merge fields by compare-and-swap on
//! `sys_mod_count`, so concurrent writers of different fields never lose each other's update.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Error;
use crate::clock::Clock;
use crate::entry::{Catalog, Entry};
use crate::store::{RecordQuery, Store, TableRecord};
use crate::user::{ADMIN_ROLE, Permission, User};

/// The page size when a list names none, and the largest one a caller may ask for.
pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1000;
/// How often a change is retried when other writers keep changing the record meanwhile.
const MAX_ATTEMPTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    pub name: String,
    /// Users holding one of these (or a write role, or `admin`) may read.
    #[serde(default)]
    pub read_roles: Vec<String>,
    /// Users holding one of these (or `admin`) may create, change and delete.
    #[serde(default)]
    pub write_roles: Vec<String>,
}

impl Entry for TableDef {
    const KIND: &'static str = "table";
    const MANAGED_WITH: Permission = Permission::ManageTables;
    const FIELDS: &'static [&'static str] = &["read_roles", "write_roles"];

    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Catalog) -> Result<(), Error> {
        if !is_field_name(&self.name) || self.name.len() > 80 {
            return Err(Error::validation(
                "a table name is 1 to 80 letters, digits and underscores",
            ));
        }
        Ok(())
    }
}

impl TableDef {
    fn may_read(&self, user: &User) -> bool {
        self.may_write(user) || self.read_roles.iter().any(|r| user.has_role(r))
    }

    fn may_write(&self, user: &User) -> bool {
        user.has_role(ADMIN_ROLE) || self.write_roles.iter().any(|r| user.has_role(r))
    }
}

impl Catalog {
    pub fn table(&self, name: &str) -> Result<&TableDef, Error> {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::NotFound(format!("table {name:?}")))
    }
}

/// Field names are what `sysparm_query` can name: letters, digits and underscores.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A list request: `sysparm_query` equality filters, `sysparm_limit`, `sysparm_offset`.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub query: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl ListRequest {
    /// `a=1^b=x`: conditions joined by `^`, each an equality on a field.
    fn to_query(&self) -> Result<RecordQuery, Error> {
        let mut filters = Vec::new();
        for condition in self.query.iter().flat_map(|q| q.split('^')) {
            if condition.is_empty() {
                continue;
            }
            let Some((field, value)) = condition.split_once('=') else {
                return Err(Error::invalid_request(format!(
                    "sysparm_query condition {condition:?} is not field=value"
                )));
            };
            if !is_field_name(field) || field.starts_with("sys_") {
                return Err(Error::invalid_request(format!(
                    "sysparm_query can filter on record fields only, not {field:?}"
                )));
            }
            filters.push((field.to_owned(), value.to_owned()));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid_request(format!(
                "sysparm_limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(RecordQuery {
            filters,
            limit,
            offset: self.offset.unwrap_or(0),
        })
    }
}

/// The Table API's use cases over a store.
#[derive(Clone)]
pub struct Tables {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Tables {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Tables { store, clock }
    }

    /// A page of records and how many match in all.
    pub async fn list(
        &self,
        table: &TableDef,
        user: &User,
        request: &ListRequest,
    ) -> Result<(Vec<Value>, u64), Error> {
        check(table.may_read(user), "read", table)?;
        let query = request.to_query()?;
        let (records, total) = self.store.list_records(&table.name, &query).await?;
        Ok((records.iter().map(TableRecord::to_json).collect(), total))
    }

    pub async fn get(&self, table: &TableDef, user: &User, sys_id: &str) -> Result<Value, Error> {
        check(table.may_read(user), "read", table)?;
        Ok(self.find(table, sys_id).await?.to_json())
    }

    pub async fn create(&self, table: &TableDef, user: &User, body: Value) -> Result<Value, Error> {
        check(table.may_write(user), "write", table)?;
        let now = self.clock.now();
        let record = TableRecord {
            // 32 hex digits like the platform's; time-ordered, so records created within the
            // same second still list in creation order.
            sys_id: uuid::Uuid::now_v7().simple().to_string(),
            fields: user_fields(body)?,
            sys_created_on: now,
            sys_updated_on: now,
            sys_mod_count: 0,
        };
        self.store.insert_record(&table.name, &record).await?;
        Ok(record.to_json())
    }

    /// Merges the given fields into the record (PUT and PATCH alike, as the platform does);
    /// a field given as `null` is removed.
    pub async fn update(
        &self,
        table: &TableDef,
        user: &User,
        sys_id: &str,
        body: Value,
    ) -> Result<Value, Error> {
        check(table.may_write(user), "write", table)?;
        let changes = user_fields(body)?;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.find(table, sys_id).await?;
            let mut next = current.clone();
            for (field, value) in &changes {
                if value.is_null() {
                    next.fields.remove(field);
                } else {
                    next.fields.insert(field.clone(), value.clone());
                }
            }
            next.sys_mod_count += 1;
            next.sys_updated_on = self.clock.now();
            if self
                .store
                .replace_record(&table.name, &next, current.sys_mod_count)
                .await?
            {
                return Ok(next.to_json());
            }
        }
        Err(Error::Conflict(format!(
            "record {sys_id} kept changing; try again"
        )))
    }

    pub async fn delete(&self, table: &TableDef, user: &User, sys_id: &str) -> Result<(), Error> {
        check(table.may_write(user), "write", table)?;
        if self.store.delete_record(&table.name, sys_id).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("record {sys_id:?}")))
        }
    }

    async fn find(&self, table: &TableDef, sys_id: &str) -> Result<TableRecord, Error> {
        self.store
            .find_record(&table.name, sys_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("record {sys_id:?}")))
    }
}

fn check(allowed: bool, what: &str, table: &TableDef) -> Result<(), Error> {
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "the user holds no role that may {what} table {:?}",
            table.name
        )))
    }
}

/// The fields a caller may set: a JSON object without the system fields, which Gatehouse keeps
/// (they are ignored, as the platform ignores read-only fields).
fn user_fields(body: Value) -> Result<Map<String, Value>, Error> {
    let Value::Object(mut fields) = body else {
        return Err(Error::invalid_request("a record is a JSON object"));
    };
    fields.retain(|name, _| !name.starts_with("sys_"));
    if let Some(name) = fields.keys().find(|name| !is_field_name(name)) {
        return Err(Error::invalid_request(format!(
            "field name {name:?} must be letters, digits and underscores"
        )));
    }
    Ok(fields)
}

impl TableRecord {
    /// The record as the Table API shows it: its fields and the system fields, the latter as
    /// strings like the platform's (`sys_created_on` as `YYYY-MM-DD hh:mm:ss` UTC).
    pub fn to_json(&self) -> Value {
        let mut object = self.fields.clone();
        object.insert("sys_id".into(), self.sys_id.clone().into());
        object.insert(
            "sys_created_on".into(),
            timestamp(self.sys_created_on).into(),
        );
        object.insert(
            "sys_updated_on".into(),
            timestamp(self.sys_updated_on).into(),
        );
        object.insert(
            "sys_mod_count".into(),
            self.sys_mod_count.to_string().into(),
        );
        Value::Object(object)
    }
}

/// Unix seconds as `YYYY-MM-DD hh:mm:ss` in UTC (the civil-from-days algorithm).
fn timestamp(seconds: i64) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_time() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(timestamp(1_795_000_000), "2026-11-18 11:06:40");
    }

    #[test]
    fn queries_are_equalities_on_fields() {
        let request = ListRequest {
            query: Some("state=open^priority=1".into()),
            ..Default::default()
        };
        let query = request.to_query().unwrap();
        assert_eq!(
            query.filters,
            [
                ("state".into(), "open".into()),
                ("priority".into(), "1".into())
            ]
        );
        assert_eq!((query.limit, query.offset), (DEFAULT_LIMIT, 0));
        for bad in ["state>1", "sys_id=1", "a.b=1"] {
            let request = ListRequest {
                query: Some(bad.into()),
                ..Default::default()
            };
            assert!(request.to_query().is_err(), "{bad}");
        }
        let too_many = ListRequest {
            limit: Some(MAX_LIMIT + 1),
            ..Default::default()
        };
        assert!(too_many.to_query().is_err());
    }

    #[test]
    fn system_fields_are_kept_by_gatehouse() {
        let fields = user_fields(serde_json::json!({"a": 1, "sys_id": "x"})).unwrap();
        assert_eq!(fields.len(), 1);
        assert!(user_fields(serde_json::json!([1])).is_err());
        assert!(user_fields(serde_json::json!({"a.b": 1})).is_err());
    }
}
