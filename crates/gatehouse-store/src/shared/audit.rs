//! `AuditStore`: the audit trail, newest first, kept for the configured retention.

macro_rules! audit_store_impl {
    ($store:ty) => {
        mod audit_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{AuditQuery, AuditRecord, AuditStore, StoreError};

            use crate::backend_error;

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[derive(sqlx::FromRow)]
            struct AuditRow {
                id: i64,
                at: i64,
                kind: String,
                actor: String,
                client_id: Option<String>,
                address: Option<String>,
                subject: String,
                details: String,
            }

            #[async_trait]
            impl AuditStore for $store {
                async fn insert_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO audit_events \
                         (at, kind, actor, client_id, address, subject, details) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(record.at)
                    .bind(&record.kind)
                    .bind(&record.actor)
                    .bind(&record.client_id)
                    .bind(&record.address)
                    .bind(&record.subject)
                    .bind(&record.details)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn list_audit(
                    &self,
                    query: &AuditQuery,
                ) -> Result<Vec<AuditRecord>, StoreError> {
                    // A kind matches itself and, as a subject, every `subject.action`: the
                    // range between "subject." and "subject/" ('/' follows '.'), which the
                    // kind index serves, where LIKE would read '_' as a wildcard.
                    let family = query
                        .kind
                        .as_ref()
                        .map(|kind| (format!("{kind}."), format!("{kind}/")));
                    let rows = sqlx::query_as::<_, AuditRow>(
                        "SELECT id, at, kind, actor, client_id, address, subject, details \
                         FROM audit_events \
                         WHERE ($1 IS NULL OR at >= $1) \
                         AND ($2 IS NULL OR kind = $2 OR (kind > $3 AND kind < $4)) \
                         AND ($5 IS NULL OR actor = $5) \
                         AND ($6 IS NULL OR id < $6) \
                         ORDER BY id DESC LIMIT $7",
                    )
                    .bind(query.since)
                    .bind(&query.kind)
                    .bind(family.as_ref().map(|(from, _)| from))
                    .bind(family.as_ref().map(|(_, to)| to))
                    .bind(&query.actor)
                    .bind(query.before)
                    .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(rows
                        .into_iter()
                        .map(|row| AuditRecord {
                            id: row.id,
                            at: row.at,
                            kind: row.kind,
                            actor: row.actor,
                            client_id: row.client_id,
                            address: row.address,
                            subject: row.subject,
                            details: row.details,
                        })
                        .collect())
                }

                async fn prune_audit(&self, before: i64) -> Result<u64, StoreError> {
                    Ok(sqlx::query("DELETE FROM audit_events WHERE at < $1")
                        .bind(before)
                        .execute(&mut *self.write().await?)
                        .await
                        .map_err(backend_error)?
                        .rows_affected())
                }
            }
        }
    };
}
