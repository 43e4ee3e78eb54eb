//! The storage conformance suite: every test runs against a fresh SQLite file and a fresh
//! PostgreSQL database, so both implementations of the `Store` port behave alike.

use std::sync::Arc;

use gatehouse_core::client::{Client, ClientType, GrantType, TokenFormat};
use gatehouse_core::store::{AccessTokenRecord, Store, StoreError, StoredSigningKey};
use gatehouse_core::user::User;
use gatehouse_store::test_support::{Backend, TestDatabase};
use gatehouse_store::{Durability, open};

/// Runs one test body on each backend, as `name::sqlite` and `name::postgres`.
macro_rules! storage_test {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn run($store: Arc<dyn Store>) $body

            #[tokio::test]
            async fn sqlite() {
                with_store(Backend::Sqlite, run).await;
            }

            #[tokio::test]
            async fn postgres() {
                with_store(Backend::Postgres, run).await;
            }
        }
    };
}

async fn with_store<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let store = open(&database.url, Durability::Process)
        .await
        .expect("open the store");
    test(store).await;
}

fn client(client_id: &str) -> Client {
    Client {
        id: format!("id-{client_id}"),
        client_id: client_id.into(),
        name: "Billing".into(),
        client_type: ClientType::Confidential,
        secret_hash: Some("hash".into()),
        redirect_uris: vec!["https://app.example/cb".into()],
        grant_types: vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
        allowed_scopes: vec!["read".into(), "write".into()],
        default_scopes: vec!["read".into()],
        access_token_lifespan: 1800,
        refresh_token_lifespan: 8_640_000,
        token_format: TokenFormat::Jwt,
        run_as: Some("svc".into()),
        active: true,
        managed: false,
        created_at: 1,
        updated_at: 2,
    }
}

fn user(user_name: &str) -> User {
    User {
        id: format!("id-{user_name}"),
        user_name: user_name.into(),
        display_name: "Service".into(),
        email: Some("svc@example.com".into()),
        roles: vec!["admin".into(), "oauth_admin".into()],
        active: true,
        password_hash: None,
        managed: true,
        created_at: 1,
        updated_at: 2,
    }
}

fn token(hash: &str, client_id: &str, user_id: Option<&str>, expires_at: i64) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: hash.into(),
        jti: format!("jti-{hash}"),
        client_id: client_id.into(),
        user_id: user_id.map(str::to_owned),
        scope: "read".into(),
        issued_at: 10,
        expires_at,
        revoked: false,
    }
}

storage_test!(clients_round_trip_and_update, |store| {
    let original = client("billing");
    store.insert_client(&original).await.unwrap();
    assert_eq!(
        store.find_client("billing").await.unwrap(),
        Some(original.clone())
    );
    let mut changed = original.clone();
    changed.name = "Billing v2".into();
    changed.grant_types = vec![GrantType::Password];
    changed.run_as = None;
    changed.active = false;
    assert!(store.update_client(&changed).await.unwrap());
    assert_eq!(store.find_client("billing").await.unwrap(), Some(changed));
    assert!(!store.update_client(&client("missing")).await.unwrap());
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
    assert_eq!(store.find_client("missing").await.unwrap(), None);
});

storage_test!(duplicate_client_id_is_a_conflict, |store| {
    store.insert_client(&client("billing")).await.unwrap();
    let mut twin = client("billing");
    twin.id = "other".into();
    assert!(matches!(
        store.insert_client(&twin).await,
        Err(StoreError::Conflict(_))
    ));
});

storage_test!(deleting_a_client_deletes_its_tokens, |store| {
    store.insert_client(&client("billing")).await.unwrap();
    store
        .insert_access_token(&token("h1", "billing", None, 100))
        .await
        .unwrap();
    assert!(store.delete_client("billing").await.unwrap());
    assert!(!store.delete_client("billing").await.unwrap());
    assert_eq!(store.find_access_token("h1").await.unwrap(), None);
});

storage_test!(users_round_trip_and_delete_with_their_tokens, |store| {
    let original = user("svc");
    store.insert_user(&original).await.unwrap();
    assert_eq!(
        store.find_user_by_name("svc").await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(
        store.find_user_by_id("id-svc").await.unwrap(),
        Some(original.clone())
    );
    let mut changed = original.clone();
    changed.email = None;
    changed.roles = vec![];
    changed.password_hash = Some("$argon2id$...".into());
    assert!(store.update_user(&changed).await.unwrap());
    assert_eq!(store.find_user_by_name("svc").await.unwrap(), Some(changed));
    assert!(matches!(
        store.insert_user(&original).await,
        Err(StoreError::Conflict(_))
    ));

    store
        .insert_access_token(&token("h1", "billing", Some("id-svc"), 100))
        .await
        .unwrap();
    assert!(store.delete_user("svc").await.unwrap());
    assert_eq!(store.find_access_token("h1").await.unwrap(), None);
    assert!(store.list_users().await.unwrap().is_empty());
});

storage_test!(opaque_tokens_revoke_and_purge, |store| {
    let record = token("h1", "billing", None, 100);
    store.insert_access_token(&record).await.unwrap();
    store
        .insert_access_token(&token("h2", "billing", None, 300))
        .await
        .unwrap();
    assert_eq!(store.find_access_token("h1").await.unwrap(), Some(record));
    assert!(store.revoke_access_token("h1").await.unwrap());
    assert!(
        store
            .find_access_token("h1")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(!store.revoke_access_token("unknown").await.unwrap());
    assert_eq!(store.purge_expired(200).await.unwrap(), 1);
    assert_eq!(store.find_access_token("h1").await.unwrap(), None);
    assert!(store.find_access_token("h2").await.unwrap().is_some());
});

storage_test!(revoked_jwts_are_remembered_until_expiry, |store| {
    assert!(!store.is_jwt_revoked("j1").await.unwrap());
    store.revoke_jwt("j1", 100).await.unwrap();
    store.revoke_jwt("j1", 100).await.unwrap();
    assert!(store.is_jwt_revoked("j1").await.unwrap());
    store.purge_expired(101).await.unwrap();
    assert!(!store.is_jwt_revoked("j1").await.unwrap());
});

storage_test!(signing_keys_list_in_activation_order, |store| {
    let key = |kid: &str, activates_at| StoredSigningKey {
        kid: kid.into(),
        alg: "ES256".into(),
        private_key_sealed: vec![0, 1, 2, 255],
        public_jwk: "{}".into(),
        created_at: 1,
        activates_at,
    };
    store.insert_signing_key(&key("later", 50)).await.unwrap();
    store.insert_signing_key(&key("first", 10)).await.unwrap();
    let keys = store.list_signing_keys().await.unwrap();
    assert_eq!(keys, vec![key("first", 10), key("later", 50)]);
    store.ping().await.unwrap();
});
