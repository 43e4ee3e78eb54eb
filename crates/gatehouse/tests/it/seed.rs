//! The scale benchmark's bulk seeding writes rows the server reads as its own: a seeded
//! application gets tokens with its secret, and a seeded opaque token introspects as active.

use gatehouse_core::secret::MasterKey;
use gatehouse_store::seed::{Plan, seed};

use crate::harness::{post_form, server_test};

server_test!(seeded_applications_and_tokens_are_served, |server| {
    let master_key: MasterKey = gatehouse::server::existing_master_key(server.data_dir())
        .unwrap()
        .expect("the server made its master key");
    let now = server.services.tokens.clock().now();
    let seeded = seed(
        server.services.store.clone(),
        Plan {
            label: "bulk".into(),
            applications: 3,
            users: 4,
            tokens: 40,
            expired_percent: 50,
            now,
        },
        master_key.secret_hasher(),
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
    )
    .await
    .unwrap();
    // Half the seeded tokens expired a day ago: the purge (the test's, or the upkeep's first,
    // whichever runs first) deletes those and keeps the 10 live access and refresh tokens.
    let store = &server.services.store;
    let live = store.count_active_tokens(now).await.unwrap();
    assert_eq!((live.access, live.refresh), (10, 10));
    store.purge_expired(now).await.unwrap();
    let kept = store.count_active_tokens(now - 2 * 86_400).await.unwrap();
    assert_eq!((kept.access, kept.refresh), (10, 10));
    let credentials = Some((seeded.client_id.as_str(), seeded.client_secret.as_str()));

    let (status, _, body) = post_form(
        &server,
        "/oauth/token",
        credentials,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "useraccount"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let token = seeded.access_token.expect("a live seeded token");
    let (status, _, body) = post_form(
        &server,
        "/oauth/introspect",
        credentials,
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], "bulk-app-0");
});
