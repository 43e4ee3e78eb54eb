//! What a token holder holds: access and refresh tokens in service are listed by one query shape.

macro_rules! held_store_impl {
    ($store:ty) => {
        mod held_queries {
            use gatehouse_core::store::{StoreError, TokenHolder};

            use crate::{StoreDatabase, backend_error};

            // The store type and its read() come from the enclosing module.
            use super::*;

            type DatabaseRow = <<$store as StoreDatabase>::Database as sqlx::Database>::Row;

            impl $store {
                /// The rows in service of `holder`, newest first, at most `limit`. `by_user` and
                /// `by_client` are the same query through an index of the holder's column: `$1`
                /// the holder, `$2` now, `$3` the `revoked` flag to match (false), `$4` the limit.
                pub(super) async fn list_held<Row, Record>(
                    &self,
                    [by_user, by_client]: [&'static str; 2],
                    holder: TokenHolder<'_>,
                    now: i64,
                    limit: u64,
                ) -> Result<Vec<Record>, StoreError>
                where
                    Row: for<'r> sqlx::FromRow<'r, DatabaseRow> + Send + Unpin,
                    Record: TryFrom<Row, Error = StoreError>,
                {
                    let (sql, holder) = match holder {
                        TokenHolder::User(user_id) => (by_user, user_id),
                        TokenHolder::Client(client_id) => (by_client, client_id),
                    };
                    sqlx::query_as::<_, Row>(sql)
                        .bind(holder)
                        .bind(now)
                        .bind(false)
                        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                        .fetch_all(&mut *self.read().await?)
                        .await
                        .map_err(backend_error)?
                        .into_iter()
                        .map(Record::try_from)
                        .collect()
                }
            }
        }
    };
}
