//! The audit trail: registry changes recorded with the change and never without it, readable by
//! `admin` over the API and the CLI, logged for shippers, pruned after its retention; and
//! `gatehouse apply`, which changes all of a file or nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin_api::call;
use crate::cli::gatehouse;
use crate::harness::{TestServer, server_test};
use crate::roles::operator;

/// The audit events the API lists for `query` (newest first), read as `admin`.
async fn audit(server: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let (status, page) = call(server, Method::GET, &format!("/audit{query}"), token, None).await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().unwrap().clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

server_test!(
    changes_are_audited_with_the_change_and_never_without,
    |server| {
        let token = operator(&server).await;
        let (status, created) = call(
            &server,
            Method::POST,
            "/apps",
            &token,
            Some(json!({"name": "billing", "client_id": "billing",
            "grant_types": ["client_credentials"]})),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let secret = created["client_secret"].as_str().unwrap().to_owned();
        let (status, _) = call(
            &server,
            Method::PATCH,
            "/apps/billing",
            &token,
            Some(json!({"name": "Billing v2"})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, rotated) = call(
            &server,
            Method::POST,
            "/apps/billing/rotate-secret",
            &token,
            Some(json!({})),
        )
        .await;
        assert_eq!(status, 200, "{rotated}");

        let events = audit(&server, &token, "?kind=application&actor=operator").await;
        assert_eq!(
            kinds(&events),
            [
                "application.updated",
                "application.updated",
                "application.created"
            ]
        );
        for event in &events {
            assert_eq!(event["actor"], "operator");
            assert_eq!(event["subject"], "billing");
            assert_eq!(event["address"], "127.0.0.1");
            assert!(event["client_id"].is_string(), "{event}");
        }
        assert_eq!(
            events[1]["details"]["fields"],
            json!({"name": {"old": "billing", "new": "Billing v2"}})
        );
        // A secret is shown only as changed: never its value, nor its hash.
        let rotation = &events[0]["details"]["fields"];
        assert_eq!(rotation["secret_hash"], json!({"changed": true}));
        assert_eq!(rotation["previous_secret"], json!({"changed": true}));
        let everything = serde_json::to_string(&events).unwrap();
        for secret in [secret.as_str(), rotated["client_secret"].as_str().unwrap()] {
            assert!(!everything.contains(secret));
        }
        let stored = server.services.registry.get_app("billing").await.unwrap();
        assert!(!everything.contains(stored.secret_hash.as_deref().unwrap()));

        // Changes that fail leave no event: a conflict, an invalid change, the last administrator.
        let (status, _) = call(
            &server,
            Method::POST,
            "/apps",
            &token,
            Some(json!({"name": "again", "client_id": "billing"})),
        )
        .await;
        assert_eq!(status, 409);
        let (status, _) = call(
            &server,
            Method::PATCH,
            "/apps/billing",
            &token,
            Some(json!({"redirect_uris": ["not a url"]})),
        )
        .await;
        assert_eq!(status, 400);
        server.user("boss", &["admin"]).await;
        let (status, _) = call(
            &server,
            Method::PATCH,
            "/users/admin",
            &token,
            Some(json!({"roles": []})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call(
            &server,
            Method::PATCH,
            "/users/boss",
            &token,
            Some(json!({"roles": []})),
        )
        .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(
            kinds(&audit(&server, &token, "?kind=application&actor=operator").await).len(),
            3
        );
        let users = audit(&server, &token, "?kind=user.updated").await;
        assert_eq!(users.len(), 1, "{users:?}");
        assert_eq!(users[0]["subject"], "admin");
        assert_eq!(
            users[0]["details"]["fields"]["roles"],
            json!({"old": ["admin"], "new": []})
        );
        // Deleting is audited too, with what the record was.
        let (status, _) = call(&server, Method::DELETE, "/apps/billing", &token, None).await;
        assert_eq!(status, 204);
        let deleted = audit(&server, &token, "?kind=application.deleted").await;
        assert_eq!(deleted[0]["details"]["fields"]["name"]["old"], "Billing v2");
    }
);

server_test!(
    only_admin_reads_the_audit_trail_a_page_at_a_time,
    |server| {
        let token = operator(&server).await;
        for name in ["a", "b", "c", "d", "e"] {
            let (status, _) = call(
                &server,
                Method::POST,
                "/scopes",
                &token,
                Some(json!({"name": name, "description": name})),
            )
            .await;
            assert_eq!(status, 201);
        }
        for role in ["oauth_admin", "mi_admin"] {
            let other = server.token_for_role(role).await;
            let (status, body) = call(&server, Method::GET, "/audit", &other, None).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("access_denied"))
            );
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("needs the admin role")
            );
        }
        let (status, first) = call(
            &server,
            Method::GET,
            "/audit?kind=scope&limit=2",
            &token,
            None,
        )
        .await;
        assert_eq!(status, 200);
        let subjects = |page: &Value| -> Vec<String> {
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["subject"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(subjects(&first), ["e", "d"]);
        let next = first["next"].as_i64().unwrap();
        let (_, second) = call(
            &server,
            Method::GET,
            &format!("/audit?kind=scope&limit=2&before={next}"),
            &token,
            None,
        )
        .await;
        assert_eq!(subjects(&second), ["c", "b"]);
        let (_, last) = call(
            &server,
            Method::GET,
            &format!(
                "/audit?kind=scope&limit=2&before={}",
                second["next"].as_i64().unwrap()
            ),
            &token,
            None,
        )
        .await;
        assert_eq!(subjects(&last), ["a"]);
        assert!(last["next"].is_null());
        let by_actor = audit(&server, &token, "?actor=operator").await;
        assert_eq!(by_actor.len(), 5);
        assert!(audit(&server, &token, "?actor=nobody").await.is_empty());
        let later = audit(&server, &token, "?since=99999999999").await;
        assert!(later.is_empty());
        let (status, body) = call(&server, Method::GET, "/audit?limit=many", &token, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request"))
        );
        // The OpenAPI document lists the route.
        let document: Value = server
            .http
            .get(server.url("/api/admin/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(document["paths"]["/audit"]["get"].is_object());
    }
);

server_test!(the_cli_lists_and_logs_what_it_changed, |server| {
    let output = gatehouse(
        &server,
        &[
            "app",
            "create",
            "--name",
            "reports",
            "--client-id",
            "reports",
            "--json",
            "--log-format",
            "json",
            "--log-level",
            "warn,audit=info",
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    // One JSON line per event on the log, target `audit`.
    let logged: Vec<Value> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "audit")
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["fields"]["kind"], "application.created");
    assert_eq!(logged[0]["fields"]["actor"], "cli");
    assert_eq!(logged[0]["fields"]["subject"], "reports");

    let output = gatehouse(
        &server,
        &["audit", "list", "--actor", "cli", "--since", "1h", "--json"],
        &[],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["kind"], "application.created");
    assert_eq!(listed[0]["details"]["fields"]["name"]["new"], "reports");
    let output = gatehouse(&server, &["audit", "list", "--kind", "application"], &[]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("application.created  cli  reports"), "{text}");
    let output = gatehouse(&server, &["audit", "list", "--since", "soon"], &[]).await;
    assert!(!output.status.success());
});

server_test!(
    audit_events_are_pruned_after_their_retention,
    // The server's own upkeep purges too, at a moment the test does not choose: with no retention
    // of its own it leaves the events alone, and only the purges below prune them.
    configured(|settings| settings.audit_retention = None),
    |server| {
        let token = operator(&server).await;
        let (status, _) = call(
            &server,
            Method::POST,
            "/scopes",
            &token,
            Some(json!({"name": "kept", "description": "kept"})),
        )
        .await;
        assert_eq!(status, 201);
        let store = &*server.services.store;
        let now = server.services.tokens.clock().now();
        let mut old = server
            .services
            .registry
            .audit_events(gatehouse_core::store::AuditQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .remove(0);
        old.at = now - 91 * 86_400;
        old.subject = "expired".into();
        store.insert_audit(&old).await.unwrap();
        let retention = Some(gatehouse_core::audit::DEFAULT_RETENTION);
        gatehouse::server::purge(store, now, retention).await;
        let subjects: Vec<String> = audit(&server, &token, "")
            .await
            .iter()
            .map(|e| e["subject"].as_str().unwrap().to_owned())
            .collect();
        assert!(subjects.contains(&"kept".to_owned()), "{subjects:?}");
        assert!(!subjects.contains(&"expired".to_owned()), "{subjects:?}");
        // Without a retention, nothing is pruned.
        store.insert_audit(&old).await.unwrap();
        gatehouse::server::purge(store, now, None).await;
        assert_eq!(audit(&server, &token, "?kind=scope").await.len(), 2);
    }
);

/// Applies a file with the CLI; returns whether it succeeded and its error output.
async fn apply_file(server: &TestServer, file: &str) -> (bool, String) {
    let path = server.data_dir().join("all-or-nothing.toml");
    std::fs::write(&path, file).unwrap();
    let output = gatehouse(server, &["apply", path.to_str().unwrap()], &[]).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

server_test!(apply_changes_all_of_a_file_or_nothing, |server| {
    let registry = &server.services.registry;
    // Several invalid records: every one is reported, naming its section and record, and the
    // valid records before them are not applied either.
    let (ok, errors) = apply_file(
        &server,
        r#"
[[user]]
user_name = "svc-billing"

[[route]]
name = "inventory"
prefix = "/api/x/inventory"
upstream = "http://127.0.0.1:9000/v1"
timeout_seconds = 99

[[application]]
name = "billing"
client_id = "billing"
grant_types = ["client_credentials"]
run_as = "ghost"

[[application]]
name = "reports"
client_id = "reports"
grant_types = ["client_credentials"]
"#,
    )
    .await;
    assert!(!ok);
    assert!(
        errors.contains(r#"[[route]] "inventory": timeout_seconds must be between 1 and 25"#),
        "{errors}"
    );
    assert!(
        errors.contains(r#"[[application]] "billing": run-as user "ghost" does not exist"#),
        "{errors}"
    );
    assert!(
        errors.contains("nothing was applied: 2 records failed"),
        "{errors}"
    );
    assert!(registry.get_user("svc-billing").await.is_err());
    assert!(registry.get_app("reports").await.is_err());

    // A conflict only the database finds (two records with one client_id) changes nothing.
    let (ok, errors) = apply_file(
        &server,
        r#"
[[user]]
user_name = "svc-billing"

[[application]]
name = "first"
client_id = "twice"

[[application]]
name = "second"
client_id = "twice"
"#,
    )
    .await;
    assert!(!ok);
    assert!(
        errors.contains(
            r#"[[application]] "twice": an application with client_id "twice" already exists"#
        ),
        "{errors}"
    );
    assert!(registry.get_user("svc-billing").await.is_err());
    assert!(registry.get_app("twice").await.is_err());
    let token = operator(&server).await;
    assert!(audit(&server, &token, "?actor=apply").await.is_empty());

    // A good file is applied, and audited as `apply`.
    let (ok, errors) = apply_file(
        &server,
        r#"
[[user]]
user_name = "svc-billing"

[[application]]
name = "billing"
client_id = "billing"
grant_types = ["client_credentials"]
run_as = "svc-billing"
"#,
    )
    .await;
    assert!(ok, "{errors}");
    let applied = audit(&server, &token, "?actor=apply").await;
    let mut applied_kinds = kinds(&applied);
    applied_kinds.sort();
    assert_eq!(applied_kinds, ["application.created", "user.created"]);
    assert_eq!(
        registry.get_app("billing").await.unwrap().run_as.as_deref(),
        Some("svc-billing")
    );
});

server_test!(security_events_are_recorded, |server| {
    use gatehouse_core::client::ClientType;

    use crate::harness::post_form;
    use crate::people::{Browser, PASSWORD, VERIFIER, code_flow, people_app, redeem};

    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let basic = Some((app.client_id.as_str(), app.secret.as_str()));
    // A wrong password, then a sign-in and a consent on the pages, a code redeemed twice.
    let (status, _, _) = post_form(
        &server,
        "/oauth/token",
        basic,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    let mut browser = Browser::new();
    let code = code_flow(&server, &mut browser, &app, "alice", &[]).await["code"].clone();
    let (status, tokens) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, _) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, 400);
    // A refresh token rotated, then presented again; a token revoked by its client.
    let (_, _, rotated) = post_form(
        &server,
        "/oauth/token",
        basic,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    let refresh_token = rotated["refresh_token"].as_str().unwrap();
    for expected in [200, 400] {
        let (status, _, _) = post_form(
            &server,
            "/oauth/token",
            basic,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
        assert_eq!(status, expected);
    }
    let (_, _, fresh) = post_form(
        &server,
        "/oauth/token",
        basic,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    let (status, _, _) = post_form(
        &server,
        "/oauth/revoke",
        basic,
        &[("token", fresh["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(status, 200);
    // The consent withdrawn; a key rotated by the CLI and retired over the API.
    let alice = server.services.registry.get_user("alice").await.unwrap();
    server
        .services
        .sessions
        .withdraw_consent(&server.services.tokens, &alice, &app.client_id)
        .await
        .unwrap();
    let output = gatehouse(&server, &["keys", "rotate", "--json"], &[]).await;
    assert!(output.status.success(), "{output:?}");
    let kid = serde_json::from_slice::<Value>(&output.stdout).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = operator(&server).await;
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/keys/{kid}/retire"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);

    let events = audit(&server, &token, "?limit=1000").await;
    let find =
        |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["kind"] == kind).collect() };
    let failed = find("sign_in.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["actor"], "alice");
    assert_eq!(failed[0]["client_id"], app.client_id.as_str());
    assert_eq!(failed[0]["address"], "127.0.0.1");
    assert_eq!(find("sign_in.succeeded").len(), 3);
    let consent = find("consent.given");
    assert_eq!(consent.len(), 1);
    assert_eq!(
        (consent[0]["actor"].as_str(), consent[0]["subject"].as_str()),
        (Some("alice"), Some(app.client_id.as_str()))
    );
    assert_eq!(find("consent.withdrawn").len(), 1);
    let replayed = find("authorization_code.replayed");
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0]["actor"], app.client_id.as_str());
    assert_eq!(find("refresh_token.reused").len(), 1);
    let revoked = find("token.revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["details"]["token_type"], "access_token");
    let rotated = find("signing_key.rotated");
    assert_eq!(
        (rotated[0]["actor"].as_str(), rotated[0]["subject"].as_str()),
        (Some("cli"), Some(kid.as_str()))
    );
    let retired = find("signing_key.retired");
    assert_eq!(
        (retired[0]["actor"].as_str(), retired[0]["subject"].as_str()),
        (Some("operator"), Some(kid.as_str()))
    );
    // Tokens issued are counted in the metrics, not audited one by one.
    assert!(find("token.issued").is_empty());
});
