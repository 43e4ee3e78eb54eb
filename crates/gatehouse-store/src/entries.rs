//! The queries of configuration entries, written once for both backends like those in
//! `shared/`.

use gatehouse_core::store::EntryRecord;

#[derive(sqlx::FromRow)]
pub(crate) struct EntryRow {
    kind: String,
    name: String,
    body: String,
    managed: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<EntryRow> for EntryRecord {
    fn from(row: EntryRow) -> Self {
        EntryRecord {
            kind: row.kind,
            name: row.name,
            body: row.body,
            managed: row.managed,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

macro_rules! entry_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl gatehouse_core::store::EntryStore for $store {
            async fn insert_entry(
                &self,
                entry: &gatehouse_core::store::EntryRecord,
            ) -> Result<(), gatehouse_core::store::StoreError> {
                sqlx::query(
                    "INSERT INTO registry_entries \
                     (kind, name, body, managed, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&entry.kind)
                .bind(&entry.name)
                .bind(&entry.body)
                .bind(entry.managed)
                .bind(entry.created_at)
                .bind(entry.updated_at)
                .execute(&mut *self.write().await?)
                .await
                .map_err(crate::backend_error)?;
                Ok(())
            }

            async fn update_entry(
                &self,
                entry: &gatehouse_core::store::EntryRecord,
            ) -> Result<bool, gatehouse_core::store::StoreError> {
                let result = sqlx::query(
                    "UPDATE registry_entries SET body = $3, managed = $4, updated_at = $5 \
                     WHERE kind = $1 AND name = $2",
                )
                .bind(&entry.kind)
                .bind(&entry.name)
                .bind(&entry.body)
                .bind(entry.managed)
                .bind(entry.updated_at)
                .execute(&mut *self.write().await?)
                .await
                .map_err(crate::backend_error)?;
                Ok(result.rows_affected() == 1)
            }

            async fn list_entries(
                &self,
            ) -> Result<Vec<gatehouse_core::store::EntryRecord>, gatehouse_core::store::StoreError>
            {
                Ok(sqlx::query_as::<_, crate::entries::EntryRow>(
                    "SELECT kind, name, body, managed, created_at, updated_at \
                     FROM registry_entries ORDER BY kind, name",
                )
                .fetch_all(&mut *self.read().await?)
                .await
                .map_err(crate::backend_error)?
                .into_iter()
                .map(Into::into)
                .collect())
            }

            async fn delete_entry(
                &self,
                kind: &str,
                name: &str,
            ) -> Result<bool, gatehouse_core::store::StoreError> {
                let result =
                    sqlx::query("DELETE FROM registry_entries WHERE kind = $1 AND name = $2")
                        .bind(kind)
                        .bind(name)
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(crate::backend_error)?;
                Ok(result.rows_affected() == 1)
            }
        }
    };
}
