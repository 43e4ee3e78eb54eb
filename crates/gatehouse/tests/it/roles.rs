//! Who may do what through the admin API: each registry role changes only its own part of the
//! registry, only `admin` makes or changes administrators, and the last administrator who can
//! log in stays, however the request arrives and however many arrive at once.

use gatehouse_core::client::TokenFormat;
use gatehouse_core::registry::{NewUser, UserChanges};
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin_api::call;
use crate::cli::gatehouse;
use crate::harness::{TestServer, server_test};

const ROLES: [&str; 3] = ["admin", "oauth_admin", "mi_admin"];
const PASSWORD: &str = "a long enough password";

/// A collection of the admin API, the roles that may change it, and a valid new record of it
/// named by the argument.
type Area = (&'static str, &'static [&'static str], fn(&str) -> Value);

/// Asserts the answer of a forbidden role change: 403 with the role error, nothing else.
fn assert_forbidden(what: &str, (status, body): &(u16, Value)) {
    assert_eq!(
        (*status, body["error"].as_str()),
        (403, Some("access_denied")),
        "{what}: {body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("needs the admin")),
        "{what}: {body}"
    );
}

/// A user holding `admin` who cannot log in with a password, so they never count as the last
/// administrator: the one who acts in the tests of that rule.
pub(crate) async fn operator(server: &TestServer) -> String {
    server
        .services
        .registry
        .create_user(
            NewUser {
                user_name: "operator".into(),
                password: None,
                fields: UserChanges {
                    roles: Some(vec!["admin".into()]),
                    ..UserChanges::default()
                },
            },
            false,
        )
        .await
        .unwrap();
    server.token_for_user("operator").await
}

server_test!(
    each_role_changes_only_its_own_part_of_the_registry,
    |server| {
        let tokens: Vec<(&str, String)> = {
            let mut tokens = Vec::new();
            for role in ROLES {
                tokens.push((role, server.token_for_role(role).await));
            }
            tokens
        };
        // What the outbound entries name.
        let admin = server.token_for_role("admin").await;
        for (path, record) in [
            (
                "/outbound/providers",
                json!({"name": "roles", "token_url": "https://idp.example/token",
                "client_id": "gatehouse", "client_secret": "a secret"}),
            ),
            (
                "/outbound/profiles",
                json!({"name": "roles", "provider": "roles"}),
            ),
        ] {
            let (status, body) = call(&server, Method::POST, path, &admin, Some(record)).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        let areas: [Area; 10] = [
            (
                "/apps",
                &["admin", "oauth_admin"],
                |name| json!({"name": name, "client_id": name, "grant_types": ["client_credentials"]}),
            ),
            (
                "/users",
                &["admin", "oauth_admin"],
                |name| json!({"user_name": name, "roles": ["itil"]}),
            ),
            (
                "/scopes",
                &["admin", "oauth_admin"],
                |name| json!({"name": name}),
            ),
            ("/scope-rules", &["admin", "oauth_admin"], |name| {
                json!({"name": name, "methods": ["GET"], "path": format!("/api/x/{name}/**"),
                "scopes": ["useraccount"]})
            }),
            ("/routes", &["admin", "oauth_admin"], |name| {
                json!({"name": name, "prefix": format!("/api/x/{name}"),
                "upstream": "http://127.0.0.1:9/"})
            }),
            ("/jwt-providers", &["admin", "oauth_admin"], |name| {
                json!({"name": name, "issuer": "https://idp.example",
                "jwks_url": "https://idp.example/jwks"})
            }),
            ("/outbound/providers", &["admin", "mi_admin"], |name| {
                json!({"name": name, "token_url": "https://idp.example/token",
                "client_id": "gatehouse", "client_secret": "a secret"})
            }),
            (
                "/outbound/profiles",
                &["admin", "mi_admin"],
                |name| json!({"name": name, "provider": "roles", "scopes": ["read"]}),
            ),
            ("/outbound/aliases", &["admin", "mi_admin"], |name| {
                json!({"name": name, "base_url": "https://api.example", "profile": "roles",
                "allowed_roles": ["itil"]})
            }),
            (
                "/tables",
                &["admin", "mi_admin"],
                |name| json!({"name": name, "read_roles": ["itil"], "write_roles": ["itil_admin"]}),
            ),
        ];
        for (collection, allowed, record) in areas {
            for (role, token) in &tokens {
                let name =
                    format!("{}_{role}", collection.rsplit('/').next().unwrap()).replace('-', "_");
                let answer = call(
                    &server,
                    Method::POST,
                    collection,
                    token,
                    Some(record(&name)),
                )
                .await;
                if !allowed.contains(role) {
                    assert_forbidden(&format!("{role} POST {collection}"), &answer);
                    continue;
                }
                assert!(
                    [200, 201].contains(&answer.0),
                    "{role} POST {collection}: {}",
                    answer.1
                );
                // Every role reads it; those who may not change it cannot delete it either.
                let one = format!("{collection}/{name}");
                for (other, other_token) in &tokens {
                    let (status, shown) = call(&server, Method::GET, &one, other_token, None).await;
                    assert_eq!(status, 200, "{other} GET {one}: {shown}");
                    if !allowed.contains(other) {
                        let answer = call(&server, Method::DELETE, &one, other_token, None).await;
                        assert_forbidden(&format!("{other} DELETE {one}"), &answer);
                    }
                }
                let (status, body) = call(&server, Method::DELETE, &one, token, None).await;
                assert_eq!(status, 204, "{role} DELETE {one}: {body}");
            }
        }
    }
);

server_test!(only_admin_makes_or_changes_administrators, |server| {
    server.user("boss", &["admin"]).await;
    server.user("plain", &["itil"]).await;
    server.user("colleague", &["oauth_admin"]).await;
    let boss_app = server
        .app(TokenFormat::Jwt, &["useraccount"], Some("boss"))
        .await;
    let plain_app = server
        .app(TokenFormat::Jwt, &["useraccount"], Some("plain"))
        .await;
    let boss_before = call(
        &server,
        Method::GET,
        "/users/boss",
        &server.token_for_role("admin").await,
        None,
    )
    .await
    .1;

    // Every way up, tried by each role below admin.
    for role in ["oauth_admin", "mi_admin"] {
        let me = format!("{role}-self");
        server.user(&me, &[role]).await;
        let token = server.token_for_user(&me).await;
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (
                Method::POST,
                "/users".into(),
                Some(json!({"user_name": "new-admin", "roles": ["admin"],
                    "password": PASSWORD})),
            ),
            (
                Method::POST,
                "/users".into(),
                Some(json!({"user_name": "new-oauth", "roles": ["oauth_admin"]})),
            ),
            (
                Method::POST,
                "/users".into(),
                Some(json!({"user_name": "new-mi", "roles": ["mi_admin", "itil"]})),
            ),
            (
                Method::PATCH,
                format!("/users/{me}"),
                Some(json!({"roles": [role, "admin"]})),
            ),
            (
                Method::PATCH,
                "/users/plain".into(),
                Some(json!({"roles": ["itil", "admin"]})),
            ),
            (
                Method::PATCH,
                "/users/plain".into(),
                Some(json!({"roles": ["oauth_admin"]})),
            ),
            (
                Method::PATCH,
                "/users/boss".into(),
                Some(json!({"roles": []})),
            ),
            (
                Method::PATCH,
                "/users/colleague".into(),
                Some(json!({"roles": ["itil"]})),
            ),
            (
                Method::PUT,
                "/users/boss/password".into(),
                Some(json!({"password": "the attacker's own password"})),
            ),
            (
                Method::PUT,
                "/users/colleague/password".into(),
                Some(json!({"password": "the attacker's own password"})),
            ),
            (
                Method::PATCH,
                "/users/boss".into(),
                Some(json!({"locked_out": true})),
            ),
            (
                Method::PATCH,
                "/users/boss".into(),
                Some(json!({"active": false})),
            ),
            (
                Method::PATCH,
                "/users/boss".into(),
                Some(json!({"email": "attacker@example.com"})),
            ),
            (Method::DELETE, "/users/boss".into(), None),
            (
                Method::POST,
                "/apps".into(),
                Some(
                    json!({"name": "as boss", "grant_types": ["client_credentials"],
                    "allowed_scopes": ["useraccount"], "run_as": "boss"}),
                ),
            ),
            (
                Method::PATCH,
                format!("/apps/{}", plain_app.client_id),
                Some(json!({"run_as": "boss"})),
            ),
            (
                Method::PATCH,
                format!("/apps/{}", plain_app.client_id),
                Some(json!({"run_as": "colleague"})),
            ),
            (
                Method::POST,
                format!("/apps/{}/rotate-secret", boss_app.client_id),
                None,
            ),
            (
                Method::PATCH,
                format!("/apps/{}", boss_app.client_id),
                Some(json!({"jwks_uri": "https://attacker.example/jwks"})),
            ),
            (
                Method::DELETE,
                format!("/apps/{}", boss_app.client_id),
                None,
            ),
        ];
        for (method, path, body) in attempts {
            let what = format!("{role}: {method} {path} {body:?}");
            let answer = call(&server, method, &path, &token, body).await;
            assert_forbidden(&what, &answer);
        }
        // What stays open to them: their own password (oauth_admin also: ordinary users and
        // applications running as them).
        let (status, body) = call(
            &server,
            Method::PUT,
            &format!("/users/{me}/password"),
            &token,
            Some(json!({"password": "my own new password"})),
        )
        .await;
        assert_eq!(status, 204, "{role}: {body}");
        if role == "oauth_admin" {
            let token = server.token_for_user(&me).await;
            let (status, body) = call(
                &server,
                Method::PATCH,
                "/users/plain",
                &token,
                Some(json!({"roles": ["itil", "itil_admin"], "locked_out": false})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let (status, body) = call(
                &server,
                Method::PATCH,
                &format!("/apps/{}", plain_app.client_id),
                &token,
                Some(json!({"name": "still plain"})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    }

    // Nothing of it happened.
    let admin = server.token_for_role("admin").await;
    let (_, boss_after) = call(&server, Method::GET, "/users/boss", &admin, None).await;
    assert_eq!(boss_after, boss_before);
    let (_, colleague) = call(&server, Method::GET, "/users/colleague", &admin, None).await;
    assert_eq!(colleague["roles"], json!(["oauth_admin"]));
    let (_, plain) = call(&server, Method::GET, "/users/plain", &admin, None).await;
    assert_eq!(plain["roles"], json!(["itil", "itil_admin"]));
    for user in ["new-admin", "new-oauth", "new-mi"] {
        let (status, _) = call(
            &server,
            Method::GET,
            &format!("/users/{user}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 404, "{user}");
    }
    server.token(&boss_app, None).await;

    // An administrator does all of it.
    for (method, path, body) in [
        (
            Method::POST,
            "/users".to_owned(),
            Some(json!({"user_name": "new-admin", "roles": ["admin"], "password": PASSWORD})),
        ),
        (
            Method::PATCH,
            "/users/plain".into(),
            Some(json!({"roles": ["oauth_admin"]})),
        ),
        (
            Method::PUT,
            "/users/boss/password".into(),
            Some(json!({"password": "a new password for boss"})),
        ),
        (
            Method::PATCH,
            format!("/apps/{}", plain_app.client_id),
            Some(json!({"run_as": "boss"})),
        ),
        (
            Method::POST,
            format!("/apps/{}/rotate-secret", boss_app.client_id),
            None,
        ),
        (
            Method::PATCH,
            "/users/colleague".into(),
            Some(json!({"roles": ["itil"]})),
        ),
    ] {
        let (status, answer) = call(&server, method.clone(), &path, &admin, body).await;
        assert!(
            [200, 201, 204].contains(&status),
            "admin: {method} {path}: {answer}"
        );
    }
});

server_test!(the_last_administrator_who_can_log_in_stays, |server| {
    let token = operator(&server).await;
    server.user("boss", &["admin", "oauth_admin"]).await;
    // The administrator made at the first start goes; boss is the last who can log in.
    let (status, body) = call(
        &server,
        Method::PATCH,
        "/users/admin",
        &token,
        Some(json!({"roles": ["itil"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for change in [
        json!({"roles": ["oauth_admin"]}),
        json!({"roles": []}),
        json!({"locked_out": true}),
        json!({"active": false}),
    ] {
        let (status, body) = call(
            &server,
            Method::PATCH,
            "/users/boss",
            &token,
            Some(change.clone()),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("conflict")),
            "{change}: {body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("last active, unlocked administrator"),
            "{body}"
        );
    }
    let (status, body) = call(&server, Method::DELETE, "/users/boss", &token, None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    // The command line is held to the same rule.
    for args in [
        &["user", "update", "boss", "--role", "itil"][..],
        &["user", "update", "boss", "--locked-out", "true"],
        &["user", "update", "boss", "--active", "false"],
        &["user", "delete", "boss"],
    ] {
        let output = gatehouse(&server, args, &[]).await;
        assert!(!output.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("last active, unlocked administrator"),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (status, boss) = call(&server, Method::GET, "/users/boss", &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&boss["roles"], &boss["active"], &boss["locked_out"]),
        (
            &json!(["admin", "oauth_admin"]),
            &json!(true),
            &json!(false)
        )
    );
    // Other changes to the last administrator go through.
    let (status, _) = call(
        &server,
        Method::PATCH,
        "/users/boss",
        &token,
        Some(json!({"roles": ["admin"], "display_name": "The Boss"})),
    )
    .await;
    assert_eq!(status, 200);

    // With a second administrator who can log in, boss may be locked.
    let (status, body) = call(
        &server,
        Method::POST,
        "/users",
        &token,
        Some(json!({"user_name": "deputy", "roles": ["admin"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &server,
        Method::PATCH,
        "/users/boss",
        &token,
        Some(json!({"locked_out": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&server, Method::DELETE, "/users/deputy", &token, None).await;
    assert_eq!(status, 409);
});

server_test!(concurrent_demotions_of_the_last_two_leave_one, |server| {
    let token = operator(&server).await;
    server.user("first", &["admin"]).await;
    server.user("second", &["admin"]).await;
    // The administrator made at the first start goes: first and second are the last two.
    server
        .services
        .registry
        .update_user(
            "admin",
            UserChanges {
                roles: Some(vec![]),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    let demote = |name: &'static str| {
        let (server, token) = (&server, &token);
        async move {
            call(
                server,
                Method::PATCH,
                &format!("/users/{name}"),
                token,
                Some(json!({"roles": ["itil"]})),
            )
            .await
        }
    };
    for attempt in 0..20 {
        let ((first, first_body), (second, second_body)) =
            tokio::join!(demote("first"), demote("second"));
        let mut statuses = [first, second];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "attempt {attempt}: {first_body} {second_body}"
        );
        let demoted = if first == 200 { "first" } else { "second" };
        let (status, body) = call(
            &server,
            Method::PATCH,
            &format!("/users/{demoted}"),
            &token,
            Some(json!({"roles": ["admin"]})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
});
