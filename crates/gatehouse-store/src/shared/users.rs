//! `UserStore`: users, every change of which keeps an administrator who can manage the
//! registry.

macro_rules! user_columns {
    () => {
        "id, user_name, display_name, given_name, family_name, email, roles, active, locked_out, \
         password_hash, managed, created_at, updated_at, credential_epoch, applied"
    };
}

/// The condition on `users` of [`User::is_keeping_administrator`]; `$1` is
/// [`keeping_administrator_pattern`]. Roles are a JSON array, so the quoted name matches the
/// element `admin` and nothing longer.
///
/// [`User::is_keeping_administrator`]: gatehouse_core::user::User::is_keeping_administrator
pub(crate) const KEEPING_ADMINISTRATOR: &str = "roles LIKE $1 AND active = TRUE \
    AND locked_out = FALSE AND password_hash IS NOT NULL";

pub(crate) fn keeping_administrator_pattern() -> String {
    format!("%\"{}\"%", gatehouse_core::user::ADMIN_ROLE)
}

macro_rules! user_store_impl {
    ($store:ty) => {
        mod user_queries {
            use async_trait::async_trait;
            use gatehouse_core::store::{StoreError, UserStore, UserWrite};
            use gatehouse_core::user::User;

            use crate::rows::{UserRow, roles_value};
            use crate::shared::{KEEPING_ADMINISTRATOR, keeping_administrator_pattern};
            use crate::{StoreDatabase, backend_error};

            // The store type and its read() and write() come from the enclosing module.
            use super::*;

            #[async_trait]
            impl UserStore for $store {
                async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
                    sqlx::query(concat!(
                        "INSERT INTO users (",
                        user_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                    ))
                    .bind(&user.id)
                    .bind(&user.user_name)
                    .bind(&user.display_name)
                    .bind(&user.given_name)
                    .bind(&user.family_name)
                    .bind(&user.email)
                    .bind(roles_value(user))
                    .bind(user.active)
                    .bind(user.locked_out)
                    .bind(&user.password_hash)
                    .bind(user.managed)
                    .bind(user.created_at)
                    .bind(user.updated_at)
                    .bind(user.credential_epoch)
                    .bind(&user.applied)
                    .execute(&mut *self.write().await?)
                    .await
                    .map_err(backend_error)?;
                    Ok(())
                }

                async fn update_user(
                    &self,
                    user: &User,
                    end_tokens: bool,
                ) -> Result<UserWrite, StoreError> {
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    let before = Self::lock_keeping_administrators(&mut transaction).await?;
                    let updated = sqlx::query(
                        "UPDATE users SET display_name = $2, email = $3, roles = $4, active = $5, \
                         password_hash = $6, managed = $7, updated_at = $8, given_name = $9, \
                         family_name = $10, locked_out = $11, credential_epoch = $12, \
                         applied = $13 WHERE user_name = $1",
                    )
                    .bind(&user.user_name)
                    .bind(&user.display_name)
                    .bind(&user.email)
                    .bind(roles_value(user))
                    .bind(user.active)
                    .bind(&user.password_hash)
                    .bind(user.managed)
                    .bind(user.updated_at)
                    .bind(&user.given_name)
                    .bind(&user.family_name)
                    .bind(user.locked_out)
                    .bind(user.credential_epoch)
                    .bind(&user.applied)
                    .execute(&mut *transaction)
                    .await
                    .map_err(backend_error)?
                    .rows_affected();
                    if updated == 0 {
                        return Ok(UserWrite::NotFound);
                    }
                    if end_tokens {
                        for query in [
                            "DELETE FROM sessions WHERE user_id = $1",
                            "DELETE FROM authorization_codes WHERE user_id = $1",
                            "UPDATE refresh_tokens SET revoked = TRUE WHERE user_id = $1",
                            "UPDATE access_tokens SET revoked = TRUE WHERE user_id = $1",
                        ] {
                            sqlx::query(query)
                                .bind(&user.id)
                                .execute(&mut *transaction)
                                .await
                                .map_err(backend_error)?;
                        }
                    }
                    Self::commit_keeping_an_administrator(transaction, before).await
                }

                async fn find_user_by_name(&self, user_name: &str) -> Result<Option<User>, StoreError> {
                    self.find_user(
                        concat!("SELECT ", user_columns!(), " FROM users WHERE user_name = $1"),
                        user_name,
                    )
                    .await
                }

                async fn find_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
                    self.find_user(
                        concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
                        id,
                    )
                    .await
                }

                async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                    sqlx::query_as::<_, UserRow>(concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users ORDER BY user_name"
                    ))
                    .fetch_all(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .into_iter()
                    .map(User::try_from)
                    .collect()
                }

                async fn delete_user(&self, user_name: &str) -> Result<UserWrite, StoreError> {
                    let mut connection = self.write().await?;
                    let mut transaction = connection.begin().await?;
                    let before = Self::lock_keeping_administrators(&mut transaction).await?;
                    for query in [
                        "DELETE FROM access_tokens WHERE user_id IN \
                         (SELECT id FROM users WHERE user_name = $1)",
                        "DELETE FROM refresh_tokens WHERE user_id IN \
                         (SELECT id FROM users WHERE user_name = $1)",
                        "DELETE FROM authorization_codes WHERE user_id IN \
                         (SELECT id FROM users WHERE user_name = $1)",
                        "DELETE FROM sessions WHERE user_id IN \
                         (SELECT id FROM users WHERE user_name = $1)",
                        "DELETE FROM consents WHERE user_id IN \
                         (SELECT id FROM users WHERE user_name = $1)",
                    ] {
                        sqlx::query(query)
                            .bind(user_name)
                            .execute(&mut *transaction)
                            .await
                            .map_err(backend_error)?;
                    }
                    let deleted = sqlx::query("DELETE FROM users WHERE user_name = $1")
                        .bind(user_name)
                        .execute(&mut *transaction)
                        .await
                        .map_err(backend_error)?
                        .rows_affected();
                    if deleted == 0 {
                        return Ok(UserWrite::NotFound);
                    }
                    Self::commit_keeping_an_administrator(transaction, before).await
                }
            }

            impl $store {
                /// Counts the administrators who keep the registry manageable, locking their rows
                /// until the transaction ends (PostgreSQL; SQLite's one writer connection already
                /// runs such transactions one at a time). A concurrent change that waited for the
                /// lock sees this one's outcome, so two demotions cannot both count the other.
                async fn lock_keeping_administrators(
                    transaction: &mut sqlx::Transaction<'_, <$store as StoreDatabase>::Database>,
                ) -> Result<usize, StoreError> {
                    let sql = format!(
                        "SELECT id FROM users WHERE {KEEPING_ADMINISTRATOR} ORDER BY id{}",
                        <$store as StoreDatabase>::LOCK_ROWS
                    );
                    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(keeping_administrator_pattern())
                        .fetch_all(&mut **transaction)
                        .await
                        .map_err(backend_error)?
                        .len())
                }

                /// Commits a change to users, unless it took away the last administrator who
                /// kept the registry manageable.
                async fn commit_keeping_an_administrator(
                    mut transaction: sqlx::Transaction<'_, <$store as StoreDatabase>::Database>,
                    before: usize,
                ) -> Result<UserWrite, StoreError> {
                    let after: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM users WHERE {KEEPING_ADMINISTRATOR}"
                    )))
                    .bind(keeping_administrator_pattern())
                    .fetch_one(&mut *transaction)
                    .await
                    .map_err(backend_error)?;
                    if before > 0 && after == 0 {
                        transaction.rollback().await.map_err(backend_error)?;
                        return Ok(UserWrite::LastAdministrator);
                    }
                    transaction.commit().await.map_err(backend_error)?;
                    Ok(UserWrite::Done)
                }

                pub(super) async fn find_user(
                    &self,
                    query: &'static str,
                    value: &str,
                ) -> Result<Option<User>, StoreError> {
                    sqlx::query_as::<_, UserRow>(query)
                    .bind(value)
                    .fetch_optional(&mut *self.read().await?)
                    .await
                    .map_err(backend_error)?
                    .map(User::try_from)
                    .transpose()
                }
            }
        }
    };
}
