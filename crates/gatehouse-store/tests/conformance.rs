//! The storage conformance suite: every test runs against a fresh SQLite file and a fresh
//! PostgreSQL database, so both implementations of the `Store` port behave alike.

use std::sync::Arc;

use gatehouse_core::client::{Client, ClientType, GrantType, PreviousSecret, TokenFormat};
use gatehouse_core::federation::jose::JwsAlgorithm;
use gatehouse_core::federation::{JwtProvider, KeySource, UserField};
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::outbound::{
    ClientAuthMethod, ConnectionAlias, OAuthProfile, OAuthProvider, OutboundTokenRecord,
};
use gatehouse_core::store::{
    AccessTokenRecord, ActiveTokens, AuditQuery, AuditRecord, AuthorizationCodeRecord,
    CodeRedemption, ConsentRecord, DeviceAuthorizationRecord, DeviceStatus, PushedRequestRecord,
    RefreshRotation, RefreshTokenRecord, SessionRecord, Store, StoreError, StoredSigningKey,
    TokenFamily, TokenHolder, UserWrite,
};
use gatehouse_core::token::Act;
use gatehouse_core::user::User;
use gatehouse_store::test_support::{Backend, TestDatabase};
use gatehouse_store::{Durability, open};

/// Runs one test body on each backend, as `name::sqlite` and `name::postgres`.
macro_rules! storage_test {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn run($store: Arc<dyn Store>) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                with_store(Backend::Sqlite, run).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
        description: Some("Invoices and payments".into()),
        require_pushed_authorization_requests: true,
        backchannel_logout_uri: Some("https://billing.example/logout".into()),
        backchannel_logout_session_required: true,
        dpop_bound_access_tokens: true,
        client_type: ClientType::Confidential,
        secret_hash: Some("hash".into()),
        previous_secret: Some(PreviousSecret {
            hash: "previous hash".into(),
            expires_at: 5_000,
        }),
        redirect_uris: vec!["https://app.example/cb".into()],
        grant_types: vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
        allowed_scopes: vec!["read".into(), "write".into()],
        default_scopes: vec!["read".into()],
        access_token_lifespan: 1800,
        refresh_token_lifespan: 8_640_000,
        token_format: TokenFormat::Jwt,
        run_as: Some("svc".into()),
        active: true,
        require_pkce: true,
        allow_plain_pkce: false,
        id_token_alg: SigningAlgorithm::Rs256,
        jwks: Some(r#"{"keys": []}"#.into()),
        jwks_uri: None,
        legacy_token_endpoint_aud: true,
        audiences: vec![
            format!("https://{client_id}.example/api"),
            format!("urn:example:{client_id}"),
        ],
        exchange_audiences: vec!["https://crm.example/api".into()],
        introspect_any: true,
        managed: false,
        applied: Some(r#"{"active":true}"#.into()),
        created_at: 1,
        updated_at: 2,
        tokens_revoked_at: 0,
    }
}

fn user(user_name: &str) -> User {
    User {
        id: format!("id-{user_name}"),
        user_name: user_name.into(),
        display_name: "Service".into(),
        given_name: Some("Ser".into()),
        family_name: None,
        email: Some(format!("{user_name}@example.com")),
        roles: vec!["admin".into(), "oauth_admin".into()],
        active: true,
        locked_out: false,
        password_hash: None,
        managed: true,
        credential_epoch: 0,
        applied: None,
        created_at: 1,
        updated_at: 2,
    }
}

/// A user who keeps the registry manageable: an active, unlocked `admin` with a password.
fn administrator(user_name: &str) -> User {
    User {
        roles: vec!["admin".into()],
        password_hash: Some("$argon2id$...".into()),
        ..user(user_name)
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
        grant_id: None,
        audience: vec![
            "https://billing.example/api".into(),
            "urn:example:billing".into(),
        ],
        act: Some(Act {
            sub: "billing-worker".into(),
            act: Some(Box::new(Act {
                sub: "id-svc".into(),
                act: None,
            })),
        }),
        dpop_jkt: Some(format!("jkt-{hash}")),
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
    changed.description = None;
    changed.require_pushed_authorization_requests = false;
    changed.backchannel_logout_uri = None;
    changed.backchannel_logout_session_required = false;
    changed.dpop_bound_access_tokens = false;
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

storage_test!(an_audience_belongs_to_one_client, |store| {
    let billing = client("billing");
    store.insert_client(&billing).await.unwrap();
    let shared = "https://billing.example/api".to_owned();
    assert_eq!(
        store.find_client_by_audience(&shared).await.unwrap(),
        Some(billing.clone())
    );
    assert_eq!(
        store
            .find_client_by_audience("https://nobody.example")
            .await
            .unwrap(),
        None
    );

    // Claiming it on creation fails as a whole: no half-written client stays behind.
    let mut crm = client("crm");
    crm.audiences.push(shared.clone());
    assert!(matches!(
        store.insert_client(&crm).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_client("crm").await.unwrap(), None);

    // Claiming it by update fails as a whole too: the client keeps what it had.
    let original_crm = client("crm");
    store.insert_client(&original_crm).await.unwrap();
    assert!(matches!(
        store.update_client(&crm).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_client("crm").await.unwrap(), Some(original_crm));
    assert_eq!(
        store
            .find_client_by_audience("urn:example:crm")
            .await
            .unwrap()
            .map(|c| c.client_id),
        Some("crm".into())
    );

    // Given up by its owner, it is free to take; an update rewrites the owner's audiences.
    let mut narrowed = billing.clone();
    narrowed.audiences = vec!["urn:example:billing".into()];
    assert!(store.update_client(&narrowed).await.unwrap());
    assert!(store.update_client(&crm).await.unwrap());
    assert_eq!(
        store
            .find_client_by_audience(&shared)
            .await
            .unwrap()
            .map(|c| c.client_id),
        Some("crm".into())
    );

    // Deleting a client frees its audiences.
    assert!(store.delete_client("billing").await.unwrap());
    assert_eq!(
        store
            .find_client_by_audience("urn:example:billing")
            .await
            .unwrap(),
        None
    );
    let mut successor = client("successor");
    successor.audiences = vec!["urn:example:billing".into()];
    store.insert_client(&successor).await.unwrap();
});

storage_test!(concurrent_claims_of_one_audience_leave_one_owner, |store| {
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimant = client(&format!("claimant-{i}"));
            claimant.audiences = vec!["https://contested.example".into()];
            store.insert_client(&claimant).await
        })
    });
    // Every attempt is spawned before any is awaited, so they race.
    let attempts: Vec<_> = attempts.collect();
    let mut created = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected failure: {other}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
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

storage_test!(an_email_belongs_to_one_user, |store| {
    let alice = user("alice");
    store.insert_user(&alice).await.unwrap();
    // Another user with the same email, created or changed into it: a conflict.
    let mut bob = user("bob");
    bob.email = alice.email.clone();
    assert!(matches!(
        store.insert_user(&bob).await,
        Err(StoreError::Conflict(_))
    ));
    bob.email = Some("bob@example.com".into());
    store.insert_user(&bob).await.unwrap();
    bob.email = alice.email.clone();
    assert!(matches!(
        store.update_user(&bob, false).await,
        Err(StoreError::Conflict(_))
    ));
    // Any number of users have no email.
    for name in ["carol", "dave"] {
        let mut nobody = user(name);
        nobody.email = None;
        store.insert_user(&nobody).await.unwrap();
    }
    assert_eq!(
        store
            .find_user_by_email("alice@example.com")
            .await
            .unwrap()
            .map(|u| u.user_name),
        Some("alice".into())
    );
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
    changed.credential_epoch = 3;
    changed.applied = Some(r#"{"active":true}"#.into());
    assert_eq!(
        store.update_user(&changed, false).await.unwrap(),
        UserWrite::Done
    );
    assert_eq!(store.find_user_by_name("svc").await.unwrap(), Some(changed));
    assert!(matches!(
        store.insert_user(&original).await,
        Err(StoreError::Conflict(_))
    ));

    store
        .insert_access_token(&token("h1", "billing", Some("id-svc"), 100))
        .await
        .unwrap();
    assert_eq!(store.delete_user("svc").await.unwrap(), UserWrite::Done);
    assert_eq!(store.find_access_token("h1").await.unwrap(), None);
    assert!(store.list_users().await.unwrap().is_empty());
    assert_eq!(
        store.update_user(&user("svc"), false).await.unwrap(),
        UserWrite::NotFound
    );
    assert_eq!(store.delete_user("svc").await.unwrap(), UserWrite::NotFound);
});

fn audit_event(at: i64, kind: &str, actor: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        kind: kind.into(),
        actor: actor.into(),
        client_id: Some("console".into()),
        address: Some("192.0.2.7".into()),
        subject: "billing".into(),
        details: r#"{"fields":{"name":{"old":"a","new":"b"}}}"#.into(),
    }
}

storage_test!(a_transaction_commits_all_its_writes_or_none, |store| {
    // Dropped uncommitted: neither the change nor its audit event is there.
    let transaction = store.begin().await.unwrap();
    transaction.insert_client(&client("billing")).await.unwrap();
    transaction
        .insert_audit(&audit_event(10, "application.created", "cli"))
        .await
        .unwrap();
    assert!(transaction.find_client("billing").await.unwrap().is_some());
    drop(transaction);
    assert!(store.find_client("billing").await.unwrap().is_none());
    let all = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    assert!(store.list_audit(&all).await.unwrap().is_empty());

    // Committed: both, and the store can write again (SQLite's one writer was let go).
    let transaction = store.begin().await.unwrap();
    transaction.insert_client(&client("billing")).await.unwrap();
    transaction
        .insert_audit(&audit_event(10, "application.created", "cli"))
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert!(store.find_client("billing").await.unwrap().is_some());
    assert_eq!(store.list_audit(&all).await.unwrap().len(), 1);
    store.insert_client(&client("reports")).await.unwrap();

    // A conflict inside a transaction fails that write; a savepoint lets it go on.
    let transaction = store.begin().await.unwrap();
    transaction.savepoint().await.unwrap();
    assert!(matches!(
        transaction.insert_client(&client("billing")).await,
        Err(StoreError::Conflict(_))
    ));
    transaction.rollback_to_savepoint().await.unwrap();
    transaction.savepoint().await.unwrap();
    transaction.insert_client(&client("ledger")).await.unwrap();
    transaction.release_savepoint().await.unwrap();
    transaction.commit().await.unwrap();
    assert!(store.find_client("ledger").await.unwrap().is_some());

    // The last-administrator rule rolls back only its own change inside a transaction.
    store.insert_user(&administrator("root")).await.unwrap();
    let transaction = store.begin().await.unwrap();
    transaction.insert_user(&user("alice")).await.unwrap();
    let mut demoted = administrator("root");
    demoted.roles = vec![];
    assert_eq!(
        transaction.update_user(&demoted, false).await.unwrap(),
        UserWrite::LastAdministrator
    );
    transaction.commit().await.unwrap();
    assert!(store.find_user_by_name("alice").await.unwrap().is_some());
    let root = store.find_user_by_name("root").await.unwrap().unwrap();
    assert_eq!(root.roles, vec!["admin".to_owned()]);
});

storage_test!(
    audit_events_list_newest_first_filtered_paged_and_pruned,
    |store| {
        for (at, kind, actor) in [
            (100, "application.created", "cli"),
            (200, "user.updated", "alice"),
            (300, "user.deleted", "alice"),
            (400, "sign_in.failed", "mallory"),
            (500, "user_group.created", "cli"),
        ] {
            store
                .insert_audit(&audit_event(at, kind, actor))
                .await
                .unwrap();
        }
        let list = |query: AuditQuery| {
            let store = store.clone();
            async move {
                store
                    .list_audit(&AuditQuery {
                        limit: query.limit.max(1),
                        ..query
                    })
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|event| (event.at, event.kind))
                    .collect::<Vec<_>>()
            }
        };
        let everything = list(AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await;
        assert_eq!(
            everything.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            [500, 400, 300, 200, 100]
        );
        // A subject matches its kinds, and not a longer subject sharing its start.
        let users = list(AuditQuery {
            kind: Some("user".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await;
        assert_eq!(
            users,
            [
                (300, "user.deleted".to_owned()),
                (200, "user.updated".to_owned())
            ]
        );
        let exact = list(AuditQuery {
            kind: Some("user.updated".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await;
        assert_eq!(exact, [(200, "user.updated".to_owned())]);
        let by_actor = list(AuditQuery {
            actor: Some("alice".into()),
            since: Some(250),
            limit: 100,
            ..AuditQuery::default()
        })
        .await;
        assert_eq!(by_actor, [(300, "user.deleted".to_owned())]);
        // Pages: each continues before the last id of the previous one.
        let first = store
            .list_audit(&AuditQuery {
                limit: 2,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        let second = store
            .list_audit(&AuditQuery {
                limit: 2,
                before: Some(first[1].id),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            second.iter().map(|event| event.at).collect::<Vec<_>>(),
            [300, 200]
        );
        let event = &second[0];
        assert_eq!(event.client_id.as_deref(), Some("console"));
        assert_eq!(event.address.as_deref(), Some("192.0.2.7"));
        assert_eq!(event.subject, "billing");
        assert!(event.details.contains("\"old\":\"a\""));
        // Pruning deletes what is older than the given time, nothing newer.
        assert_eq!(store.prune_audit(300).await.unwrap(), 2);
        let kept = list(AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await;
        assert_eq!(
            kept.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            [500, 400, 300]
        );
    }
);

storage_test!(the_last_administrator_cannot_be_taken_away, |store| {
    store.insert_user(&administrator("a")).await.unwrap();
    store.insert_user(&administrator("b")).await.unwrap();
    // Admins who cannot log in with a password do not keep the registry manageable.
    store.insert_user(&user("no-password")).await.unwrap();
    let locked = User {
        locked_out: true,
        ..administrator("locked")
    };
    store.insert_user(&locked).await.unwrap();
    let demoted = User {
        roles: vec!["oauth_admin".into()],
        ..administrator("a")
    };
    assert_eq!(
        store.update_user(&demoted, false).await.unwrap(),
        UserWrite::Done
    );
    let last = administrator("b");
    let takeaways = [
        User {
            roles: vec!["oauth_admin".into(), "mi_admin".into()],
            ..last.clone()
        },
        User {
            locked_out: true,
            ..last.clone()
        },
        User {
            active: false,
            ..last.clone()
        },
        User {
            password_hash: None,
            ..last.clone()
        },
    ];
    for change in &takeaways {
        assert_eq!(
            store.update_user(change, true).await.unwrap(),
            UserWrite::LastAdministrator,
            "{change:?}"
        );
    }
    assert_eq!(
        store.delete_user("b").await.unwrap(),
        UserWrite::LastAdministrator
    );
    assert_eq!(
        store.find_user_by_name("b").await.unwrap(),
        Some(last.clone())
    );
    // Other changes to the last administrator, and to everyone else, go through.
    let renamed = User {
        display_name: "Still in charge".into(),
        ..last.clone()
    };
    assert_eq!(
        store.update_user(&renamed, false).await.unwrap(),
        UserWrite::Done
    );
    assert_eq!(store.delete_user("locked").await.unwrap(), UserWrite::Done);
    // With another administrator, the former last one may go.
    store.update_user(&administrator("a"), false).await.unwrap();
    assert_eq!(store.delete_user("b").await.unwrap(), UserWrite::Done);
});

storage_test!(
    concurrent_demotions_of_the_last_two_administrators,
    |store| {
        store.insert_user(&administrator("a")).await.unwrap();
        store.insert_user(&administrator("b")).await.unwrap();
        let demote = |name: &str| User {
            roles: vec!["itil".into()],
            ..administrator(name)
        };
        let (demote_a, demote_b) = (demote("a"), demote("b"));
        for attempt in 0..40 {
            let demotions = [&demote_a, &demote_b].map(|user| {
                let (store, user) = (store.clone(), user.clone());
                tokio::spawn(async move { store.update_user(&user, false).await.unwrap() })
            });
            let [first, second] = demotions;
            let outcomes = [first.await.unwrap(), second.await.unwrap()];
            assert_eq!(
                outcomes.iter().filter(|o| **o == UserWrite::Done).count(),
                1,
                "attempt {attempt}: {outcomes:?}"
            );
            assert!(outcomes.contains(&UserWrite::LastAdministrator));
            let remaining: Vec<String> = store
                .list_users()
                .await
                .unwrap()
                .into_iter()
                .filter(User::is_keeping_administrator)
                .map(|u| u.user_name)
                .collect();
            assert_eq!(remaining.len(), 1, "attempt {attempt}");
            // Both administrators again for the next attempt.
            for name in ["a", "b"] {
                store
                    .update_user(&administrator(name), false)
                    .await
                    .unwrap();
            }
        }
    }
);

storage_test!(
    a_credential_change_ends_what_the_old_credentials_started,
    |store| {
        store.insert_user(&user("svc")).await.unwrap();
        let session = |hash: &str, user_id: &str| SessionRecord {
            session_hash: hash.into(),
            user_id: user_id.into(),
            auth_time: 1,
            expires_at: 500,
        };
        store
            .insert_session(&session("s-svc", "id-svc"))
            .await
            .unwrap();
        store
            .insert_session(&session("s-other", "id-other"))
            .await
            .unwrap();
        store
            .insert_authorization_code(&code("c-svc"))
            .await
            .unwrap();
        store
            .insert_refresh_token(&refresh("r-svc", "g"))
            .await
            .unwrap();
        store
            .insert_refresh_token(&RefreshTokenRecord {
                user_id: "id-other".into(),
                ..refresh("r-other", "h")
            })
            .await
            .unwrap();
        for (hash, user_id) in [("a-svc", "id-svc"), ("a-other", "id-other")] {
            store
                .insert_access_token(&token(hash, "billing", Some(user_id), 500))
                .await
                .unwrap();
        }

        // A change that keeps the credentials ends nothing.
        let mut changed = user("svc");
        changed.display_name = "Renamed".into();
        store.update_user(&changed, false).await.unwrap();
        assert!(store.find_session("s-svc").await.unwrap().is_some());

        changed.credential_epoch += 1;
        assert_eq!(
            store.update_user(&changed, true).await.unwrap(),
            UserWrite::Done
        );
        assert_eq!(store.find_session("s-svc").await.unwrap(), None);
        assert_eq!(
            store
                .redeem_authorization_code("c-svc", "billing")
                .await
                .unwrap(),
            CodeRedemption::Unknown
        );
        let refresh_revoked = |hash: &'static str| {
            let store = store.clone();
            async move {
                store
                    .find_refresh_token(hash)
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked
            }
        };
        let access_revoked = |hash: &'static str| {
            let store = store.clone();
            async move {
                store
                    .find_access_token(hash)
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked
            }
        };
        assert!(refresh_revoked("r-svc").await);
        assert!(access_revoked("a-svc").await);
        // Nobody else's.
        assert!(store.find_session("s-other").await.unwrap().is_some());
        assert!(!refresh_revoked("r-other").await);
        assert!(!access_revoked("a-other").await);
        assert_eq!(
            store
                .find_user_by_name("svc")
                .await
                .unwrap()
                .unwrap()
                .credential_epoch,
            1
        );
    }
);

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

storage_test!(
    a_purge_larger_than_a_slice_deletes_every_expired_row,
    |store| {
        // More than two of the purge's slices, so the slicing has to go round until none is left.
        let expired = 2_100;
        let mut inserts = tokio::task::JoinSet::new();
        for index in 0..expired {
            let (store, record) = (
                store.clone(),
                token(&format!("old-{index}"), "billing", None, 100),
            );
            inserts.spawn(async move { store.insert_access_token(&record).await });
        }
        for inserted in inserts.join_all().await {
            inserted.unwrap();
        }
        store
            .insert_access_token(&token("live", "billing", None, 300))
            .await
            .unwrap();
        assert_eq!(store.purge_expired(200).await.unwrap(), expired);
        assert_eq!(store.find_access_token("old-0").await.unwrap(), None);
        assert!(store.find_access_token("live").await.unwrap().is_some());
        assert_eq!(store.purge_expired(200).await.unwrap(), 0);
    }
);

storage_test!(active_tokens_are_counted_by_kind, |store| {
    for (hash, expires_at) in [("live", 300), ("ended", 100), ("revoked", 300)] {
        store
            .insert_access_token(&token(hash, "billing", None, expires_at))
            .await
            .unwrap();
    }
    store.revoke_access_token("revoked").await.unwrap();
    let live = refresh("r-live", "g1");
    store.insert_refresh_token(&live).await.unwrap();
    for (hash, rotated_at, revoked) in [("r-rotated", Some(20), false), ("r-revoked", None, true)] {
        store
            .insert_refresh_token(&RefreshTokenRecord {
                rotated_at,
                revoked,
                ..refresh(hash, "g2")
            })
            .await
            .unwrap();
    }
    let counted = store.count_active_tokens(200).await.unwrap();
    assert_eq!(
        counted,
        ActiveTokens {
            access: 1,
            refresh: 1
        }
    );
    assert_eq!(
        store.count_active_tokens(1000).await.unwrap(),
        ActiveTokens::default()
    );
});

storage_test!(a_pushed_request_is_taken_once, |store| {
    let pushed = |hash: &str, expires_at| PushedRequestRecord {
        request_hash: hash.into(),
        client_id: "billing".into(),
        parameters: r#"{"params":{},"resources":[]}"#.into(),
        expires_at,
    };
    store
        .insert_pushed_request(&pushed("p1", 160))
        .await
        .unwrap();
    store
        .insert_pushed_request(&pushed("p2", 100))
        .await
        .unwrap();
    // Of concurrent uses exactly one gets it.
    let mut takes = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        takes.spawn(async move { store.take_pushed_request("p1").await.unwrap() });
    }
    let taken: Vec<_> = takes.join_all().await.into_iter().flatten().collect();
    assert_eq!(taken, vec![pushed("p1", 160)]);
    assert_eq!(store.take_pushed_request("unknown").await.unwrap(), None);
    // The maintenance task forgets requests nobody brought in time.
    assert_eq!(store.purge_expired(101).await.unwrap(), 1);
    assert_eq!(store.take_pushed_request("p2").await.unwrap(), None);
});

storage_test!(
    a_device_authorization_is_answered_once_and_redeemed_once,
    |store| {
        let device = DeviceAuthorizationRecord {
            device_code_hash: "d1".into(),
            user_code: "BCDFGHJK".into(),
            client_id: "tv".into(),
            scope: "openid".into(),
            audience: vec!["https://issuer.example".into()],
            expires_at: 700,
            interval: 5,
            last_polled_at: None,
            status: DeviceStatus::Pending,
            user_id: None,
            auth_time: None,
        };
        store.insert_device_authorization(&device).await.unwrap();
        let taken = DeviceAuthorizationRecord {
            device_code_hash: "d2".into(),
            ..device.clone()
        };
        assert!(matches!(
            store.insert_device_authorization(&taken).await,
            Err(StoreError::Conflict(_))
        ));
        let found = store.find_pending_device_authorization("BCDFGHJK", 100);
        assert_eq!(found.await.unwrap(), Some(device.clone()));
        assert_eq!(
            store
                .find_pending_device_authorization("BCDFGHJK", 700)
                .await
                .unwrap(),
            None
        );
        store.record_device_poll("d1", 110, 10).await.unwrap();
        // Of two answers, the first counts.
        let approve =
            store.decide_device_authorization("BCDFGHJK", DeviceStatus::Approved, "u", 90, 120);
        assert!(approve.await.unwrap());
        let deny =
            store.decide_device_authorization("BCDFGHJK", DeviceStatus::Denied, "u", 90, 121);
        assert!(!deny.await.unwrap());
        let answered = store
            .find_device_authorization("d1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                answered.status,
                answered.user_id.as_deref(),
                answered.auth_time
            ),
            (DeviceStatus::Approved, Some("u"), Some(90))
        );
        assert_eq!(
            (answered.interval, answered.last_polled_at),
            (10, Some(110))
        );
        // Of concurrent redemptions exactly one wins.
        let mut redemptions = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = store.clone();
            redemptions
                .spawn(async move { store.redeem_device_authorization("d1").await.unwrap() });
        }
        let won = redemptions
            .join_all()
            .await
            .into_iter()
            .filter(|w| *w)
            .count();
        assert_eq!(won, 1);
        assert_eq!(store.purge_expired(701).await.unwrap(), 1);
        assert_eq!(store.find_device_authorization("d1").await.unwrap(), None);
    }
);

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
    // Retiring deletes the key and stores its replacement at once.
    assert!(
        store
            .retire_signing_key("later", Some(&key("replacement", 60)))
            .await
            .unwrap()
    );
    assert!(store.retire_signing_key("first", None).await.unwrap());
    assert_eq!(
        store.list_signing_keys().await.unwrap(),
        vec![key("replacement", 60)]
    );
});

storage_test!(
    concurrent_first_keys_of_an_algorithm_store_exactly_one,
    |store| {
        let key = |kid: String, alg: &str| StoredSigningKey {
            kid,
            alg: alg.into(),
            private_key_sealed: vec![7],
            public_jwk: "{}".into(),
            created_at: 1,
            activates_at: 1,
        };
        let attempts: Vec<_> = (0..24)
            .map(|i| {
                let store = store.clone();
                let alg = if i % 2 == 0 { "ES256" } else { "RS256" };
                let key = key(format!("{alg}-{i}"), alg);
                tokio::spawn(async move {
                    store
                        .insert_signing_key_unless_since(&key, i64::MIN)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut stored = 0;
        for attempt in attempts {
            stored += usize::from(attempt.await.unwrap());
        }
        assert_eq!(stored, 2);
        let mut algorithms: Vec<_> = store
            .list_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.alg)
            .collect();
        algorithms.sort();
        assert_eq!(algorithms, vec!["ES256", "RS256"]);
        // Once an algorithm has a key, only rotations add more.
        assert!(
            !store
                .insert_signing_key_unless_since(&key("late".into(), "ES256"), i64::MIN)
                .await
                .unwrap()
        );
        assert!(
            store
                .insert_signing_key_unless_since(&key("eddsa".into(), "EdDSA"), i64::MIN)
                .await
                .unwrap()
        );
        // A scheduled rotation: instances that find the key due at once store one new key.
        let rotations: Vec<_> = (0..12)
            .map(|i| {
                let store = store.clone();
                let mut key = key(format!("rotated-{i}"), "ES256");
                key.activates_at = 100;
                tokio::spawn(async move {
                    store
                        .insert_signing_key_unless_since(&key, 50)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut rotated = 0;
        for rotation in rotations {
            rotated += usize::from(rotation.await.unwrap());
        }
        assert_eq!(rotated, 1);
    }
);

storage_test!(
    a_key_retired_concurrently_is_retired_and_replaced_once,
    |store| {
        let key = |kid: &str| StoredSigningKey {
            kid: kid.into(),
            alg: "ES256".into(),
            private_key_sealed: vec![7],
            public_jwk: "{}".into(),
            created_at: 1,
            activates_at: 1,
        };
        store.insert_signing_key(&key("compromised")).await.unwrap();
        let attempts: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .retire_signing_key("compromised", Some(&key(&format!("new-{i}"))))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut retired = 0;
        for attempt in attempts {
            retired += usize::from(attempt.await.unwrap());
        }
        assert_eq!(retired, 1);
        let keys = store.list_signing_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].kid.starts_with("new-"));
        assert!(!store.retire_signing_key("unknown", None).await.unwrap());
    }
);

fn code(hash: &str) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        code_hash: hash.into(),
        grant_id: format!("grant-{hash}"),
        client_id: "billing".into(),
        user_id: "id-svc".into(),
        redirect_uri: Some("https://app.example/cb".into()),
        scope: "openid".into(),
        nonce: Some("n".into()),
        code_challenge: Some("c".repeat(43)),
        code_challenge_method: Some("S256".into()),
        auth_time: 5,
        expires_at: 100,
        consumed: false,
        audience: vec!["https://billing.example/api".into()],
        sid: Some("session-1".into()),
        dpop_jkt: Some("jkt-of-the-redeeming-client".into()),
    }
}

fn refresh(hash: &str, grant_id: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hash.into(),
        grant_id: grant_id.into(),
        client_id: "billing".into(),
        user_id: "id-svc".into(),
        scope: "openid offline".into(),
        auth_time: 5,
        issued_at: 10,
        expires_at: 1000,
        rotated_at: None,
        revoked: false,
        audience: vec![
            "https://billing.example/api".into(),
            "https://gatehouse.example".into(),
        ],
        dpop_jkt: Some("jkt-of-a-public-client".into()),
    }
}

storage_test!(codes_are_redeemed_once_even_concurrently, |store| {
    store.insert_authorization_code(&code("c1")).await.unwrap();
    let attempts = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .redeem_authorization_code("c1", "billing")
                .await
                .unwrap()
        })
    });
    // Every attempt is spawned before any is awaited, so they race.
    let attempts: Vec<_> = attempts.collect();
    let mut redeemed = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            CodeRedemption::Redeemed(record) => {
                redeemed += 1;
                assert_eq!(
                    record,
                    AuthorizationCodeRecord {
                        consumed: true,
                        ..code("c1")
                    }
                );
            }
            CodeRedemption::Replayed(record) => assert!(record.consumed),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(redeemed, 1);
    assert_eq!(
        store
            .redeem_authorization_code("nope", "billing")
            .await
            .unwrap(),
        CodeRedemption::Unknown
    );
});

storage_test!(
    a_code_presented_by_another_client_is_left_unconsumed,
    |store| {
        store.insert_authorization_code(&code("c1")).await.unwrap();
        // Another client, concurrently with nothing else, then racing its own client.
        assert_eq!(
            store
                .redeem_authorization_code("c1", "intruder")
                .await
                .unwrap(),
            CodeRedemption::OtherClient
        );
        let attempts: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                let client = if i % 2 == 0 { "billing" } else { "intruder" };
                tokio::spawn(
                    async move { store.redeem_authorization_code("c1", client).await.unwrap() },
                )
            })
            .collect();
        let mut outcomes = Vec::new();
        for attempt in attempts {
            outcomes.push(attempt.await.unwrap());
        }
        let redeemed = outcomes
            .iter()
            .filter(|o| matches!(o, CodeRedemption::Redeemed(_)))
            .count();
        let others = outcomes
            .iter()
            .filter(|o| **o == CodeRedemption::OtherClient)
            .count();
        assert_eq!((redeemed, others), (1, 8));
        // Once consumed, it stays another client's code for the intruder, not a replay.
        assert_eq!(
            store
                .redeem_authorization_code("c1", "intruder")
                .await
                .unwrap(),
            CodeRedemption::OtherClient
        );
    }
);

storage_test!(refresh_tokens_rotate_once_even_concurrently, |store| {
    store
        .insert_refresh_token(&refresh("r0", "g"))
        .await
        .unwrap();
    let attempts = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .rotate_refresh_token("r0", &refresh(&format!("r1-{i}"), "g"), &[], 20, 0)
                .await
                .unwrap()
        })
    });
    // Every attempt is spawned before any is awaited, so they race.
    let attempts: Vec<_> = attempts.collect();
    let mut rotated = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            RefreshRotation::Rotated(old) => {
                rotated += 1;
                assert_eq!(old.token_hash, "r0");
            }
            RefreshRotation::Refused(old) => assert_eq!(old.rotated_at, Some(20)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rotated, 1);
    // Exactly one successor was stored.
    let mut successors = 0;
    for i in 0..16 {
        successors += usize::from(
            store
                .find_refresh_token(&format!("r1-{i}"))
                .await
                .unwrap()
                .is_some(),
        );
    }
    assert_eq!(successors, 1);
});

storage_test!(
    refresh_rotation_keeps_its_answer_for_the_grace_period,
    |store| {
        for token in ["r0", "q0"] {
            store
                .insert_refresh_token(&refresh(token, "g"))
                .await
                .unwrap();
        }
        assert!(matches!(
            store
                .rotate_refresh_token("r0", &refresh("r1", "g"), b"first", 20, 5)
                .await
                .unwrap(),
            RefreshRotation::Rotated(_)
        ));
        // Within the grace period a retry gets the kept answer (the latest kept) and stores
        // nothing; after it, it is refused.
        let repeated = |now: i64| {
            let store = store.clone();
            async move {
                match store
                    .rotate_refresh_token("r0", &refresh(&format!("r-{now}"), "g"), b"x", now, 5)
                    .await
                    .unwrap()
                {
                    RefreshRotation::Repeated {
                        record,
                        sealed_answer,
                    } => {
                        assert_eq!(record.rotated_at, Some(20));
                        Some(sealed_answer)
                    }
                    RefreshRotation::Refused(record) => {
                        assert_eq!(record.rotated_at, Some(20));
                        None
                    }
                    other => panic!("{other:?}"),
                }
            }
        };
        assert_eq!(repeated(21).await.as_deref(), Some(&b"first"[..]));
        store.keep_refresh_answer("r0", b"complete").await.unwrap();
        assert_eq!(repeated(24).await.as_deref(), Some(&b"complete"[..]));
        assert_eq!(repeated(25).await, None);
        for now in [21, 24, 25] {
            assert!(
                store
                    .find_refresh_token(&format!("r-{now}"))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        // Without a grace period nothing is kept, and a reuse is refused at once.
        assert!(matches!(
            store
                .rotate_refresh_token("q0", &refresh("q1", "g"), b"ignored", 20, 0)
                .await
                .unwrap(),
            RefreshRotation::Rotated(_)
        ));
        store.keep_refresh_answer("q0", b"ignored").await.unwrap();
        assert!(matches!(
            store
                .rotate_refresh_token("q0", &refresh("q2", "g"), b"", 21, 5)
                .await
                .unwrap(),
            RefreshRotation::Refused(_)
        ));
        // Expired.
        assert!(matches!(
            store
                .rotate_refresh_token("r1", &refresh("r4", "g"), b"", 1000, 0)
                .await
                .unwrap(),
            RefreshRotation::Refused(_)
        ));
        assert_eq!(
            store
                .rotate_refresh_token("missing", &refresh("r5", "g"), b"", 20, 0)
                .await
                .unwrap(),
            RefreshRotation::Unknown
        );
        // A revoked token's kept answer is never given out.
        store
            .insert_refresh_token(&refresh("s0", "h"))
            .await
            .unwrap();
        store
            .rotate_refresh_token("s0", &refresh("s1", "h"), b"kept", 20, 5)
            .await
            .unwrap();
        store.revoke_grant("h", 100).await.unwrap();
        assert!(matches!(
            store
                .rotate_refresh_token("s0", &refresh("s2", "h"), b"", 21, 5)
                .await
                .unwrap(),
            RefreshRotation::Refused(_)
        ));
        // The maintenance task clears the answers whose grace period ended (r0's and s0's).
        assert_eq!(store.purge_expired(26).await.unwrap(), 2);
        assert_eq!(store.purge_expired(26).await.unwrap(), 0);
    }
);

storage_test!(revoking_a_grant_revokes_its_tokens_and_jwts, |store| {
    store
        .insert_refresh_token(&refresh("r0", "g"))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh("other", "h"))
        .await
        .unwrap();
    let mut opaque = token("h1", "billing", Some("id-svc"), 500);
    opaque.grant_id = Some("g".into());
    let mut jwt = token("jwt:j1", "billing", Some("id-svc"), 500);
    jwt.jti = "j1".into();
    jwt.grant_id = Some("g".into());
    store.insert_access_token(&opaque).await.unwrap();
    store.insert_access_token(&jwt).await.unwrap();
    assert!(!store.is_grant_revoked("g").await.unwrap());
    store.revoke_grant("g", 300).await.unwrap();
    assert!(store.is_grant_revoked("g").await.unwrap());
    assert!(!store.is_grant_revoked("h").await.unwrap());
    assert!(
        store
            .find_refresh_token("r0")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !store
            .find_refresh_token("other")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        store
            .find_access_token("h1")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(store.is_jwt_revoked("j1").await.unwrap());

    store
        .revoke_user_client_grants("id-svc", "billing")
        .await
        .unwrap();
    assert!(
        store
            .find_refresh_token("other")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    // The grant's revocation is remembered until the time given, then purged.
    store.purge_expired(300).await.unwrap();
    assert!(store.is_grant_revoked("g").await.unwrap());
    store.purge_expired(301).await.unwrap();
    assert!(!store.is_grant_revoked("g").await.unwrap());
});

storage_test!(
    held_tokens_are_listed_newest_first_and_revoked_by_client,
    |store| {
        let mut tokens = Vec::new();
        for (hash, client_id, user_id, issued_at, expires_at) in [
            ("a-old", "billing", Some("u1"), 10, 1000),
            ("a-new", "billing", Some("u1"), 20, 1000),
            ("a-expired", "billing", Some("u1"), 30, 100),
            ("a-other-user", "billing", Some("u2"), 40, 1000),
            ("a-other-app", "reports", Some("u1"), 50, 1000),
            ("a-own", "billing", None, 60, 1000),
            ("jwt:j-revoked", "billing", Some("u1"), 70, 1000),
            ("jwt:j-live", "billing", Some("u1"), 80, 1000),
        ] {
            let mut token = token(hash, client_id, user_id, expires_at);
            token.issued_at = issued_at;
            tokens.push(token);
        }
        tokens[6].jti = "j-revoked".into();
        tokens[7].jti = "j-live".into();
        for token in &tokens {
            store.insert_access_token(token).await.unwrap();
        }
        store.revoke_jwt("j-revoked", 1000).await.unwrap();
        store.revoke_access_token("a-old").await.unwrap();
        let hashes = |records: Vec<AccessTokenRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.token_hash).collect()
        };
        assert_eq!(
            hashes(
                store
                    .list_held_access_tokens(TokenHolder::User("u1"), 200, 10)
                    .await
                    .unwrap()
            ),
            ["jwt:j-live", "a-other-app", "a-new"]
        );
        assert_eq!(
            hashes(
                store
                    .list_held_access_tokens(TokenHolder::Client("billing"), 200, 2)
                    .await
                    .unwrap()
            ),
            ["jwt:j-live", "a-own"]
        );

        let mut refresh_tokens = Vec::new();
        for (hash, client_id, issued_at) in [("r-old", "billing", 10), ("r-new", "billing", 20)] {
            let mut token = refresh(hash, &format!("g-{hash}"));
            token.client_id = client_id.into();
            token.issued_at = issued_at;
            refresh_tokens.push(token);
        }
        let mut other = refresh("r-reports", "g-reports");
        other.client_id = "reports".into();
        refresh_tokens.push(other);
        for token in &refresh_tokens {
            store.insert_refresh_token(token).await.unwrap();
        }
        let held = store
            .list_held_refresh_tokens(TokenHolder::User("id-svc"), 200, 10)
            .await
            .unwrap();
        assert_eq!(held.len(), 3);
        assert_eq!(held[0].issued_at, 20);
        let held = store
            .list_held_refresh_tokens(TokenHolder::Client("billing"), 200, 10)
            .await
            .unwrap();
        assert_eq!(
            held.iter()
                .map(|t| t.token_hash.as_str())
                .collect::<Vec<_>>(),
            ["r-new", "r-old"]
        );

        // Everything of an application: its stored JWTs join the revoked ones.
        assert_eq!(
            store
                .list_family_jwts(TokenFamily::Client("billing"), 200)
                .await
                .unwrap()
                .len(),
            2
        );
        store.insert_client(&client("billing")).await.unwrap();
        store.revoke_client_grants("billing", 150).await.unwrap();
        assert!(store.is_jwt_revoked("j-live").await.unwrap());
        // The cutoff is recorded, and never lowered by a revocation that ends later.
        let cutoff = async || {
            let client = store.find_client("billing").await.unwrap().unwrap();
            client.tokens_revoked_at
        };
        assert_eq!(cutoff().await, 150);
        store.revoke_client_grants("billing", 120).await.unwrap();
        assert_eq!(cutoff().await, 150);
        for holder in [TokenHolder::Client("billing"), TokenHolder::User("u2")] {
            assert!(
                store
                    .list_held_access_tokens(holder, 200, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        assert!(
            store
                .list_held_refresh_tokens(TokenHolder::Client("billing"), 200, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Another application's tokens stay.
        assert_eq!(
            hashes(
                store
                    .list_held_access_tokens(TokenHolder::User("u1"), 200, 10)
                    .await
                    .unwrap()
            ),
            ["a-other-app"]
        );
        assert_eq!(
            store
                .list_held_refresh_tokens(TokenHolder::Client("reports"), 200, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
);

storage_test!(sessions_and_consents, |store| {
    let session = SessionRecord {
        session_hash: "s".into(),
        user_id: "u".into(),
        auth_time: 1,
        expires_at: 50,
    };
    store.insert_session(&session).await.unwrap();
    assert_eq!(
        store.find_session("s").await.unwrap(),
        Some(session.clone())
    );
    let expired = SessionRecord {
        session_hash: "s-old".into(),
        expires_at: 20,
        ..session.clone()
    };
    let other_user = SessionRecord {
        session_hash: "s-other".into(),
        user_id: "v".into(),
        ..session.clone()
    };
    store.insert_session(&expired).await.unwrap();
    store.insert_session(&other_user).await.unwrap();
    // A user's live sessions, which ending all of them will name.
    assert_eq!(
        store.list_user_sessions("u", 30).await.unwrap(),
        vec![session.clone()]
    );
    assert_eq!(store.take_session("s").await.unwrap(), Some(session));
    assert_eq!(store.find_session("s").await.unwrap(), None);
    assert_eq!(store.take_session("s").await.unwrap(), None);
    assert!(store.list_user_sessions("u", 30).await.unwrap().is_empty());

    let consent = |scope: &str| ConsentRecord {
        user_id: "u".into(),
        client_id: "c".into(),
        scope: scope.into(),
        granted_at: 3,
    };
    store.upsert_consent(&consent("openid")).await.unwrap();
    store
        .upsert_consent(&consent("openid profile"))
        .await
        .unwrap();
    assert_eq!(
        store.find_consent("u", "c").await.unwrap(),
        Some(consent("openid profile"))
    );
    assert_eq!(store.list_consents("u").await.unwrap().len(), 1);
    assert!(store.delete_consent("u", "c").await.unwrap());
    assert!(store.list_consents("u").await.unwrap().is_empty());
});

storage_test!(
    concurrent_token_inserts_are_grouped_and_all_committed,
    |store| {
        // Every insert is spawned before any is awaited, so the writer finds many queued.
        let inserts: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let record = token(&format!("h{i}"), "billing", None, 500);
                    store.insert_access_token(&record).await.map(|()| record)
                })
            })
            .collect();
        for insert in inserts {
            let record = insert.await.unwrap().unwrap();
            // Each row reads back whole: a value bound to the wrong placeholder would show.
            assert_eq!(
                store.find_access_token(&record.token_hash).await.unwrap(),
                Some(record)
            );
        }
        // A duplicate hash is refused (a batch fails as one; random 256-bit tokens never collide).
        let duplicate = store
            .insert_access_token(&token("h0", "billing", None, 500))
            .await;
        assert!(duplicate.is_err());
    }
);

storage_test!(revoked_jwts_are_listed_until_they_expire, |store| {
    store.revoke_jwt("old", 10).await.unwrap();
    store.revoke_jwt("live", 100).await.unwrap();
    assert_eq!(
        store.list_revoked_jwts(50).await.unwrap(),
        vec![("live".to_owned(), 100)]
    );
});

fn provider(name: &str) -> OAuthProvider {
    OAuthProvider {
        name: name.into(),
        token_url: "https://idp.example/token".into(),
        authorization_url: Some("https://idp.example/authorize".into()),
        client_id: "gatehouse".into(),
        client_secret_sealed: Some(vec![1, 2, 3]),
        auth_method: ClientAuthMethod::PrivateKeyJwt,
        grant: GrantType::AuthorizationCode,
        audience: Some("api".into()),
        resource: None,
        username: None,
        password_sealed: None,
        signing_key_sealed: Some(vec![0, 255]),
        signing_kid: Some("kid".into()),
        signing_alg: Some("ES256".into()),
        signing_public_jwk: Some("{}".into()),
        issuer: Some("https://idp.example".into()),
        authorization_response_iss_parameter_supported: true,
        created_at: 1,
        updated_at: 2,
    }
}

storage_test!(
    outbound_records_round_trip_and_tokens_replace_each_other,
    |store| {
        let mut crm = provider("crm");
        store.insert_provider(&crm).await.unwrap();
        assert!(matches!(
            store.insert_provider(&crm).await,
            Err(StoreError::Conflict(_))
        ));
        crm.audience = None;
        crm.client_secret_sealed = None;
        crm.issuer = None;
        assert!(store.update_provider(&crm).await.unwrap());
        assert_eq!(store.find_provider("crm").await.unwrap(), Some(crm.clone()));
        store.insert_provider(&provider("erp")).await.unwrap();
        assert_eq!(
            store
                .list_providers()
                .await
                .unwrap()
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["crm", "erp"]
        );

        // Tokens name a profile, a registry entry the store does not look up.
        let mut token = OutboundTokenRecord {
            profile: "crm-read".into(),
            owner: "user-1".into(),
            access_token_sealed: vec![9; 40],
            refresh_token_sealed: Some(vec![8; 40]),
            obtained_at: 10,
            expires_at: Some(20),
        };
        store.save_outbound_token(&token).await.unwrap();
        token.access_token_sealed = vec![7; 40];
        token.refresh_token_sealed = None;
        token.expires_at = None;
        store.save_outbound_token(&token).await.unwrap();
        assert_eq!(
            store
                .find_outbound_token("crm-read", "user-1")
                .await
                .unwrap(),
            Some(token.clone())
        );
        assert_eq!(
            store.find_outbound_token("crm-read", "").await.unwrap(),
            None
        );
        let other = OutboundTokenRecord {
            profile: "other".into(),
            ..token.clone()
        };
        store.save_outbound_token(&other).await.unwrap();

        // Dropping a profile's tokens drops all of them, and only theirs.
        store.delete_outbound_tokens("crm-read").await.unwrap();
        assert_eq!(
            store
                .find_outbound_token("crm-read", "user-1")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.find_outbound_token("other", "user-1").await.unwrap(),
            Some(other)
        );
        assert!(store.delete_provider("crm").await.unwrap());
        assert!(!store.delete_provider("crm").await.unwrap());
    }
);

storage_test!(
    registry_entries_round_trip_and_start_with_useraccount,
    |store| {
        use gatehouse_core::store::EntryRecord;
        let seeded = store.list_entries().await.unwrap();
        assert!(
            seeded
                .iter()
                .any(|e| e.kind == "scope" && e.name == "useraccount")
        );
        let mut entry = EntryRecord {
            kind: "scope_rule".into(),
            name: "inventory".into(),
            body: r#"{"name":"inventory"}"#.into(),
            managed: false,
            created_at: 10,
            updated_at: 10,
        };
        store.insert_entry(&entry).await.unwrap();
        assert!(matches!(
            store.insert_entry(&entry).await,
            Err(StoreError::Conflict(_))
        ));
        entry.body = r#"{"name":"inventory","x":1}"#.into();
        entry.managed = true;
        entry.updated_at = 20;
        assert!(store.update_entry(&entry).await.unwrap());
        let stored = store.list_entries().await.unwrap();
        let found = stored
            .iter()
            .find(|e| e.kind == "scope_rule" && e.name == "inventory")
            .unwrap();
        assert_eq!(
            (found.body.as_str(), found.managed),
            (entry.body.as_str(), true)
        );
        assert_eq!((found.created_at, found.updated_at), (10, 20));
        assert!(store.delete_entry("scope_rule", "inventory").await.unwrap());
        assert!(!store.delete_entry("scope_rule", "inventory").await.unwrap());
        entry.name = "missing".into();
        assert!(!store.update_entry(&entry).await.unwrap());
    }
);

fn jwt_provider(name: &str) -> JwtProvider {
    JwtProvider {
        id: format!("id-{name}"),
        name: name.into(),
        issuer: "https://idp.example".into(),
        audiences: vec!["api://gatehouse".into()],
        key_source: KeySource::JwksUrl("https://idp.example/jwks".into()),
        algorithms: vec![JwsAlgorithm::ES256, JwsAlgorithm::RS256],
        user_claim: "email".into(),
        user_field: UserField::Email,
        allowed_clients: vec!["billing".into()],
        max_age: 300,
        max_lifetime: 1800,
        api_access: true,
        api_scopes: vec!["useraccount".into()],
        accept_plain_jwt: true,
        accept_id_tokens: false,
        map_registry_roles: false,
        stale_keys_lifetime: 600,
        active: true,
        managed: false,
        created_at: 1,
        updated_at: 2,
    }
}

storage_test!(jwt_providers_round_trip, |store| {
    let original = jwt_provider("okta");
    store.insert_jwt_provider(&original).await.unwrap();
    assert_eq!(
        store.find_jwt_provider("okta").await.unwrap(),
        Some(original.clone())
    );
    assert!(matches!(
        store.insert_jwt_provider(&jwt_provider("okta")).await,
        Err(StoreError::Conflict(_))
    ));
    let mut changed = original.clone();
    changed.key_source = KeySource::Static("-----BEGIN PUBLIC KEY-----".into());
    changed.active = false;
    changed.max_lifetime = 900;
    assert!(store.update_jwt_provider(&changed).await.unwrap());
    assert_eq!(store.list_jwt_providers().await.unwrap(), vec![changed]);
    assert!(store.delete_jwt_provider("okta").await.unwrap());
    assert!(!store.delete_jwt_provider("okta").await.unwrap());
});

storage_test!(
    an_assertion_is_recorded_once_even_under_concurrency,
    |store| {
        let attempts = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(
                async move { store.record_assertion_use("issuer-jti", 100).await.unwrap() },
            )
        });
        let mut accepted = 0;
        for attempt in attempts {
            accepted += usize::from(attempt.await.unwrap());
        }
        assert_eq!(accepted, 1);
        // Purged once expired; then the key could be recorded again.
        store.purge_expired(101).await.unwrap();
        assert!(store.record_assertion_use("issuer-jti", 200).await.unwrap());
    }
);

storage_test!(table_records_filter_page_and_compare_and_swap, |store| {
    use gatehouse_core::store::{RecordQuery, TableRecord};
    let record = |n: i64, state: &str| TableRecord {
        sys_id: format!("{n:032x}"),
        fields: serde_json::json!({"state": state, "priority": n % 2, "note": "x"})
            .as_object()
            .unwrap()
            .clone(),
        sys_created_on: 100 + n,
        sys_updated_on: 100 + n,
        sys_mod_count: 0,
    };
    for n in 0..5 {
        let state = if n < 3 { "open" } else { "closed" };
        store
            .insert_record("incident", &record(n, state))
            .await
            .unwrap();
    }
    store
        .insert_record("problem", &record(9, "open"))
        .await
        .unwrap();
    let query = |filters: &[(&str, &str)], limit, offset| RecordQuery {
        filters: filters
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect(),
        limit,
        offset,
    };
    let (all, total) = store
        .list_records("incident", &query(&[], 10, 0))
        .await
        .unwrap();
    assert_eq!((all.len(), total), (5, 5));
    assert_eq!(all[0], record(0, "open"));
    let (page, total) = store
        .list_records("incident", &query(&[("state", "open")], 2, 1))
        .await
        .unwrap();
    assert_eq!(total, 3);
    let ids: Vec<&str> = page.iter().map(|r| r.sys_id.as_str()).collect();
    assert_eq!(ids, [record(1, "").sys_id, record(2, "").sys_id]);
    let (odd, total) = store
        .list_records(
            "incident",
            &query(&[("state", "open"), ("priority", "1")], 10, 0),
        )
        .await
        .unwrap();
    assert_eq!((odd.len(), total), (1, 1), "numbers compare as their text");
    let (none, total) = store
        .list_records("incident", &query(&[("missing", "x")], 10, 0))
        .await
        .unwrap();
    assert_eq!((none.len(), total), (0, 0));

    let mut changed = record(0, "resolved");
    changed.sys_mod_count = 1;
    assert!(store.replace_record("incident", &changed, 0).await.unwrap());
    assert!(
        !store.replace_record("incident", &changed, 0).await.unwrap(),
        "a stale version loses"
    );
    assert_eq!(
        store
            .find_record("incident", &changed.sys_id)
            .await
            .unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.find_record("problem", &changed.sys_id).await.unwrap(),
        None
    );
    assert!(
        store
            .delete_record("incident", &changed.sys_id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_record("incident", &changed.sys_id)
            .await
            .unwrap()
    );
});

/// Runs raw statements on a database, as an older version of Gatehouse would have left it.
async fn execute_all<DB: sqlx::Database>(url: &str, statements: &[&'static str])
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    use sqlx::{Connection, Executor};
    let mut connection = DB::Connection::connect(url).await.expect("connect");
    for statement in statements {
        (&mut connection)
            .execute(*statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// A database from before emails were unique, where two users share one, is not migrated: the
/// error names them, and nobody's email is dropped.
mod an_upgrade_where_users_share_an_email_is_refused {
    use super::*;

    async fn run(backend: Backend) {
        let Some(database) = TestDatabase::create(backend).await else {
            return;
        };
        let store = open(&database.url, Durability::Process).await.unwrap();
        for name in ["alice", "bob", "carol"] {
            store.insert_user(&user(name)).await.unwrap();
        }
        drop(store);
        let before_unique_emails = [
            "DROP INDEX users_by_email",
            "CREATE INDEX users_by_email ON users (email)",
            "DELETE FROM _sqlx_migrations WHERE version = 7",
            "UPDATE users SET email = 'shared@example.com' WHERE user_name IN ('alice', 'bob')",
        ];
        match backend {
            Backend::Sqlite => {
                execute_all::<sqlx::Sqlite>(&database.url, &before_unique_emails).await
            }
            Backend::Postgres => {
                execute_all::<sqlx::Postgres>(&database.url, &before_unique_emails).await
            }
        }
        let refused = match open(&database.url, Durability::Process).await {
            Err(StoreError::Backend(message)) => message,
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("the upgrade was not refused"),
        };
        assert!(
            refused.contains("alice <shared@example.com>, bob <shared@example.com>"),
            "{refused}"
        );
        assert!(!refused.contains("carol"), "{refused}");
    }

    #[tokio::test]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        run(Backend::Postgres).await;
    }
}

/// The tables of OAuth profiles and connection aliases, with a token, as a database from
/// before they were registry entries (migration 0023) holds them.
const OUTBOUND_TABLES_SQLITE: [&str; 7] = [
    "DROP TABLE outbound_tokens",
    "CREATE TABLE oauth_profiles (name TEXT PRIMARY KEY, \
     provider TEXT NOT NULL REFERENCES oauth_providers (name), scopes TEXT NOT NULL, \
     per_user BOOLEAN NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE TABLE connection_aliases (name TEXT PRIMARY KEY, base_url TEXT NOT NULL, \
     profile TEXT NOT NULL REFERENCES oauth_profiles (name), allowed_roles TEXT NOT NULL, \
     timeout_seconds BIGINT NOT NULL, max_retries BIGINT NOT NULL, \
     created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE TABLE outbound_tokens (profile TEXT NOT NULL REFERENCES oauth_profiles (name), \
     owner TEXT NOT NULL, access_token_sealed BLOB NOT NULL, refresh_token_sealed BLOB, \
     obtained_at BIGINT NOT NULL, expires_at BIGINT, PRIMARY KEY (profile, owner))",
    "INSERT INTO oauth_profiles VALUES ('crm-read', 'crm', '[\"a\",\"b\"]', TRUE, 5, 6)",
    "INSERT INTO connection_aliases VALUES \
     ('crm', 'https://crm.example/api', 'crm-read', '[\"integration\"]', 5, 1, 7, 8)",
    "INSERT INTO outbound_tokens VALUES ('crm-read', '', X'0102', NULL, 1, NULL)",
];

const OUTBOUND_TABLES_POSTGRES: [&str; 7] = [
    "DROP TABLE outbound_tokens",
    "CREATE TABLE oauth_profiles (name TEXT PRIMARY KEY, \
     provider TEXT NOT NULL REFERENCES oauth_providers (name), scopes TEXT NOT NULL, \
     per_user BOOLEAN NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE TABLE connection_aliases (name TEXT PRIMARY KEY, base_url TEXT NOT NULL, \
     profile TEXT NOT NULL REFERENCES oauth_profiles (name), allowed_roles TEXT NOT NULL, \
     timeout_seconds BIGINT NOT NULL, max_retries BIGINT NOT NULL, \
     created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE TABLE outbound_tokens (profile TEXT NOT NULL REFERENCES oauth_profiles (name), \
     owner TEXT NOT NULL, access_token_sealed BYTEA NOT NULL, refresh_token_sealed BYTEA, \
     obtained_at BIGINT NOT NULL, expires_at BIGINT, PRIMARY KEY (profile, owner))",
    "INSERT INTO oauth_profiles VALUES ('crm-read', 'crm', '[\"a\",\"b\"]', TRUE, 5, 6)",
    "INSERT INTO connection_aliases VALUES \
     ('crm', 'https://crm.example/api', 'crm-read', '[\"integration\"]', 5, 1, 7, 8)",
    "INSERT INTO outbound_tokens VALUES ('crm-read', '', '\\x0102', NULL, 1, NULL)",
];

/// Upgrading a database whose profiles and aliases have tables of their own moves each into
/// a registry entry of its kind, with its times, and keeps the tokens, which from then on name
/// their profile without a foreign key.
mod an_upgrade_moves_profiles_and_aliases_into_entries {
    use super::*;

    async fn run(backend: Backend) {
        let Some(database) = TestDatabase::create(backend).await else {
            return;
        };
        let store = open(&database.url, Durability::Process).await.unwrap();
        store.insert_provider(&provider("crm")).await.unwrap();
        drop(store);
        let rewind = "DELETE FROM _sqlx_migrations WHERE version = 23";
        match backend {
            Backend::Sqlite => {
                execute_all::<sqlx::Sqlite>(&database.url, &OUTBOUND_TABLES_SQLITE).await;
                execute_all::<sqlx::Sqlite>(&database.url, &[rewind]).await;
            }
            Backend::Postgres => {
                execute_all::<sqlx::Postgres>(&database.url, &OUTBOUND_TABLES_POSTGRES).await;
                execute_all::<sqlx::Postgres>(&database.url, &[rewind]).await;
            }
        }
        let store = open(&database.url, Durability::Process).await.unwrap();
        let entries = store.list_entries().await.unwrap();
        let entry = |kind: &str| -> &gatehouse_core::store::EntryRecord {
            entries
                .iter()
                .find(|e| e.kind == kind)
                .unwrap_or_else(|| panic!("no {kind} in {entries:?}"))
        };
        let profile = entry("oauth_profile");
        assert_eq!(
            (
                profile.name.as_str(),
                profile.managed,
                profile.created_at,
                profile.updated_at
            ),
            ("crm-read", false, 5, 6)
        );
        assert_eq!(
            serde_json::from_str::<OAuthProfile>(&profile.body).unwrap(),
            OAuthProfile {
                name: "crm-read".into(),
                provider: "crm".into(),
                scopes: vec!["a".into(), "b".into()],
                per_user: true,
            }
        );
        let alias = entry("connection_alias");
        assert_eq!((alias.created_at, alias.updated_at), (7, 8));
        assert_eq!(
            serde_json::from_str::<ConnectionAlias>(&alias.body).unwrap(),
            ConnectionAlias {
                name: "crm".into(),
                base_url: "https://crm.example/api".into(),
                profile: "crm-read".into(),
                allowed_roles: vec!["integration".into()],
                timeout_seconds: 5,
                max_retries: 1,
            }
        );
        let token = store.find_outbound_token("crm-read", "").await.unwrap();
        assert_eq!(token.map(|t| t.access_token_sealed), Some(vec![1, 2]));
        // No foreign key is left: the registry, not the store, keeps tokens and profiles
        // together.
        store
            .save_outbound_token(&OutboundTokenRecord {
                profile: "not-an-entry".into(),
                owner: "".into(),
                access_token_sealed: vec![3],
                refresh_token_sealed: None,
                obtained_at: 1,
                expires_at: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sqlite() {
        run(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn postgres() {
        run(Backend::Postgres).await;
    }
}

/// Other instances' notices reach a subscriber (PostgreSQL; SQLite has no other instances), and
/// once the subscriber lets go, the listening task ends and its connection closes, whether or
/// not another notice ever comes.
#[tokio::test]
async fn change_notices_reach_subscribers_until_they_let_go() {
    use sqlx::Connection;

    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let store = open(&database.url, Durability::Process).await.unwrap();
    let mut notices = store
        .subscribe_changes()
        .await
        .unwrap()
        .expect("PostgreSQL delivers notices");
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut listeners = async || -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap()
    };
    assert_eq!(listeners().await, 1);
    store.publish_change("client:billing").await.unwrap();
    let notice = tokio::time::timeout(std::time::Duration::from_secs(5), notices.recv())
        .await
        .expect("the notice arrives")
        .unwrap();
    assert_eq!(notice, "client:billing");
    drop(notices);
    for _ in 0..100 {
        if listeners().await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the listener outlived its subscriber");
}

#[tokio::test]
async fn sqlite_has_no_other_instances_to_hear() {
    let Some(database) = TestDatabase::create(Backend::Sqlite).await else {
        return;
    };
    let store = open(&database.url, Durability::Process).await.unwrap();
    assert!(store.subscribe_changes().await.unwrap().is_none());
}
