//! The queries of Table API records, written once for both backends. Fields are a JSON object
//! (`TEXT` on SQLite, `JSONB` on PostgreSQL); `fields ->> 'name'` reads one on both, and
//! `CAST(… AS TEXT)` makes the comparison textual on both.

use gatehouse_core::store::{RecordQuery, TableRecord};
use serde_json::{Map, Value};
use sqlx::types::Json;

#[derive(sqlx::FromRow)]
pub(crate) struct RecordRow {
    sys_id: String,
    fields: Json<Map<String, Value>>,
    sys_created_on: i64,
    sys_updated_on: i64,
    sys_mod_count: i64,
}

impl From<RecordRow> for TableRecord {
    fn from(row: RecordRow) -> Self {
        TableRecord {
            sys_id: row.sys_id,
            fields: row.fields.0,
            sys_created_on: row.sys_created_on,
            sys_updated_on: row.sys_updated_on,
            sys_mod_count: row.sys_mod_count,
        }
    }
}

pub(crate) const RECORD_COLUMNS: &str =
    "sys_id, fields, sys_created_on, sys_updated_on, sys_mod_count";

/// The `WHERE` clause of a list: the table (`$1`), then one equality per filter, with the
/// field names and values as parameters from `$2` on (never spliced into the text).
pub(crate) fn record_filter(query: &RecordQuery) -> String {
    let mut clause = String::from(" WHERE table_name = $1");
    for i in 0..query.filters.len() {
        let (name, value) = (2 + 2 * i, 3 + 2 * i);
        clause.push_str(&format!(" AND CAST(fields ->> ${name} AS TEXT) = ${value}"));
    }
    clause
}

macro_rules! table_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl gatehouse_core::store::TableStore for $store {
            async fn insert_record(
                &self,
                table: &str,
                record: &gatehouse_core::store::TableRecord,
            ) -> Result<(), gatehouse_core::store::StoreError> {
                sqlx::query(
                    "INSERT INTO table_records (table_name, sys_id, fields, sys_created_on, \
                     sys_updated_on, sys_mod_count) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(table)
                .bind(&record.sys_id)
                .bind(sqlx::types::Json(&record.fields))
                .bind(record.sys_created_on)
                .bind(record.sys_updated_on)
                .bind(record.sys_mod_count)
                .execute(&mut *self.write().await?)
                .await
                .map_err(crate::backend_error)?;
                Ok(())
            }

            async fn find_record(
                &self,
                table: &str,
                sys_id: &str,
            ) -> Result<Option<gatehouse_core::store::TableRecord>, gatehouse_core::store::StoreError>
            {
                let sql = format!(
                    "SELECT {} FROM table_records WHERE table_name = $1 AND sys_id = $2",
                    crate::tables::RECORD_COLUMNS
                );
                Ok(
                    sqlx::query_as::<_, crate::tables::RecordRow>(sqlx::AssertSqlSafe(sql))
                        .bind(table)
                        .bind(sys_id)
                        .fetch_optional(&mut *self.read().await?)
                        .await
                        .map_err(crate::backend_error)?
                        .map(Into::into),
                )
            }

            async fn list_records(
                &self,
                table: &str,
                query: &gatehouse_core::store::RecordQuery,
            ) -> Result<(Vec<gatehouse_core::store::TableRecord>, u64), gatehouse_core::store::StoreError>
            {
                let filter = crate::tables::record_filter(query);
                let page = query.filters.len() * 2 + 2;
                let sql = format!(
                    "SELECT {} FROM table_records{filter} ORDER BY sys_created_on, sys_id \
                     LIMIT ${page} OFFSET ${}",
                    crate::tables::RECORD_COLUMNS,
                    page + 1
                );
                let mut select =
                    sqlx::query_as::<_, crate::tables::RecordRow>(sqlx::AssertSqlSafe(sql))
                        .bind(table);
                let count_sql = format!("SELECT COUNT(*) FROM table_records{filter}");
                let mut count =
                    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql)).bind(table);
                for (name, value) in &query.filters {
                    select = select.bind(name).bind(value);
                    count = count.bind(name).bind(value);
                }
                let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
                let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
                let records = select
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(crate::backend_error)?;
                let total = count
                    .fetch_one(&mut *self.read().await?)
                    .await
                    .map_err(crate::backend_error)?;
                Ok((
                    records.into_iter().map(Into::into).collect(),
                    u64::try_from(total).unwrap_or_default(),
                ))
            }

            async fn replace_record(
                &self,
                table: &str,
                record: &gatehouse_core::store::TableRecord,
                expected_mod_count: i64,
            ) -> Result<bool, gatehouse_core::store::StoreError> {
                let result = sqlx::query(
                    "UPDATE table_records SET fields = $3, sys_updated_on = $4, \
                     sys_mod_count = $5 \
                     WHERE table_name = $1 AND sys_id = $2 AND sys_mod_count = $6",
                )
                .bind(table)
                .bind(&record.sys_id)
                .bind(sqlx::types::Json(&record.fields))
                .bind(record.sys_updated_on)
                .bind(record.sys_mod_count)
                .bind(expected_mod_count)
                .execute(&mut *self.write().await?)
                .await
                .map_err(crate::backend_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn delete_record(
                &self,
                table: &str,
                sys_id: &str,
            ) -> Result<bool, gatehouse_core::store::StoreError> {
                let result =
                    sqlx::query("DELETE FROM table_records WHERE table_name = $1 AND sys_id = $2")
                        .bind(table)
                        .bind(sys_id)
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(crate::backend_error)?;
                Ok(result.rows_affected() == 1)
            }
        }
    };
}
