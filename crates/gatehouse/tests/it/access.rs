//! Scopes and REST API auth scope rules: managed over the admin API, the CLI and the declarative
//! file, and enforced on every protected API with RFC 6750 §3 answers.

use gatehouse_core::client::TokenFormat;
use serde_json::{Value, json};

use crate::apply::apply;
use crate::cli::gatehouse;
use crate::harness::{TestServer, server_test};

pub async fn admin(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .http
        .request(method, server.url(&format!("/api/admin/v1{path}")))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

server_test!(scopes_and_rules_lifecycle_over_the_admin_api, |server| {
    use reqwest::Method;
    let token = server.token_for_role("admin").await;
    let (status, _, scopes) = admin(&server, Method::GET, "/scopes", &token, None).await;
    assert_eq!(status, 200);
    assert!(
        scopes
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "useraccount" && s["default"] == true)
    );

    let rule = json!({"name": "inventory", "methods": ["GET"], "path": "/api/x/inventory/**",
        "scopes": ["inventory_read"]});
    let (status, _, body) = admin(
        &server,
        Method::POST,
        "/scope-rules",
        &token,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    let scope = json!({"name": "inventory_read", "description": "read the inventory"});
    let (status, _, created) = admin(
        &server,
        Method::POST,
        "/scopes",
        &token,
        Some(scope.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["default"], false);
    let (status, _, _) = admin(&server, Method::POST, "/scopes", &token, Some(scope)).await;
    assert_eq!(status, 409);
    let (status, _, created) =
        admin(&server, Method::POST, "/scope-rules", &token, Some(rule)).await;
    assert_eq!(status, 201, "{created}");

    let (status, _, body) = admin(
        &server,
        Method::POST,
        "/scope-rules",
        &token,
        Some(json!({"name": "bad", "path": "/api/**/x", "scopes": ["inventory_read"]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = admin(
        &server,
        Method::POST,
        "/scopes",
        &token,
        Some(json!({"name": "x", "colour": "blue"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, _, updated) = admin(
        &server,
        Method::PATCH,
        "/scope-rules/inventory",
        &token,
        Some(json!({"methods": null, "path": "/api/x/inventory/*"})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["methods"], json!([]));
    assert_eq!(updated["path"], "/api/x/inventory/*");
    assert_eq!(updated["scopes"], json!(["inventory_read"]));
    let (status, _, shown) =
        admin(&server, Method::GET, "/scope-rules/inventory", &token, None).await;
    assert_eq!((status, &shown), (200, &updated));

    let (status, _, body) = admin(
        &server,
        Method::DELETE,
        "/scopes/inventory_read",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 409, "a scope a rule names stays: {body}");
    let (status, _, _) = admin(&server, Method::DELETE, "/scopes/useraccount", &token, None).await;
    assert_eq!(status, 409, "useraccount is built in");
    let (status, _, _) = admin(
        &server,
        Method::DELETE,
        "/scope-rules/inventory",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = admin(
        &server,
        Method::DELETE,
        "/scopes/inventory_read",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, body) =
        admin(&server, Method::GET, "/scopes/inventory_read", &token, None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
});

server_test!(
    rules_decide_what_a_token_reaches_on_the_admin_api,
    |server| {
        use reqwest::Method;
        let token = server.token_for_role("admin").await;
        let scope = json!({"name": "apps_read", "description": "list applications"});
        assert_eq!(
            admin(&server, Method::POST, "/scopes", &token, Some(scope))
                .await
                .0,
            201
        );
        let rule = json!({"name": "list-apps", "methods": ["GET"], "path": "/api/admin/v1/apps",
        "scopes": ["apps_read"]});
        assert_eq!(
            admin(&server, Method::POST, "/scope-rules", &token, Some(rule))
                .await
                .0,
            201
        );

        server.user("auditor", &["admin"]).await;
        let app = server
            .app(
                TokenFormat::Jwt,
                &["apps_read", "useraccount"],
                Some("auditor"),
            )
            .await;
        let narrow = server.token(&app, Some("apps_read")).await;
        let (status, _, _) = admin(&server, Method::GET, "/apps", &narrow, None).await;
        assert_eq!(status, 200, "the rule's scope suffices");
        // No rule covers the users list: it needs useraccount.
        let (status, headers, body) = admin(&server, Method::GET, "/users", &narrow, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("insufficient_scope"))
        );
        assert_eq!(
            headers["www-authenticate"],
            server
                .challenge(", error=\"insufficient_scope\", scope=\"useraccount\"", "")
                .as_str()
        );
        // useraccount satisfies every rule.
        let broad = server.token(&app, Some("useraccount")).await;
        assert_eq!(
            admin(&server, Method::GET, "/apps", &broad, None).await.0,
            200
        );
    }
);

server_test!(the_openapi_document_describes_the_entries, |server| {
    let document: Value = server
        .http
        .get(server.url("/api/admin/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().unwrap();
    for kind in ["/scopes", "/scope-rules", "/routes", "/tables"] {
        let item = format!("{kind}/{{name}}");
        assert_eq!(paths[kind].as_object().unwrap().len(), 2, "{kind}");
        assert_eq!(paths[&item].as_object().unwrap().len(), 3, "{item}");
        assert_eq!(paths[&item]["patch"]["parameters"][0]["name"], "name");
    }
});

server_test!(discovery_lists_the_registry_scopes, |server| {
    let token = server.token_for_role("admin").await;
    let scope = json!({"name": "inventory_read", "description": "read the inventory"});
    admin(
        &server,
        reqwest::Method::POST,
        "/scopes",
        &token,
        Some(scope),
    )
    .await;
    let discovery: Value = server
        .http
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scopes = discovery["scopes_supported"].as_array().unwrap();
    for name in ["useraccount", "openid", "inventory_read"] {
        assert!(scopes.contains(&json!(name)), "{name}: {scopes:?}");
    }
});

server_test!(new_applications_get_the_default_scopes, |server| {
    let token = server.token_for_role("admin").await;
    let (status, _, app) = admin(
        &server,
        reqwest::Method::POST,
        "/apps",
        &token,
        Some(json!({"name": "plain", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(app["allowed_scopes"], json!(["useraccount"]));
});

server_test!(
    the_declarative_file_and_the_cli_manage_scopes_rules_and_routes,
    |server| {
        const FILE: &str = r#"
[[scope]]
name = "inventory_read"
description = "read the inventory"

[[scope_rule]]
name = "inventory"
methods = ["GET"]
path = "/api/x/inventory/**"
scopes = ["inventory_read"]

[[route]]
name = "inventory"
prefix = "/api/x/inventory"
upstream = "http://127.0.0.1:9/v1"

[[table]]
name = "incident"
read_roles = ["itil"]
"#;
        let changes = apply(&server, FILE, &[], &[]).await;
        let kinds: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| (c["action"].as_str().unwrap(), c["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("create", "scope"),
                ("create", "scope_rule"),
                ("create", "route"),
                ("create", "table")
            ]
        );
        assert!(
            apply(&server, FILE, &[], &[]).await.is_empty(),
            "idempotent"
        );
        let changed = FILE.replace("\"GET\"", "\"GET\", \"HEAD\"");
        let changes = apply(&server, &changed, &[], &[]).await;
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0]["fields"], json!(["methods"]));

        let output = gatehouse(&server, &["rule", "show", "inventory", "--json"], &[]).await;
        let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(shown["methods"], json!(["GET", "HEAD"]));
        let output = gatehouse(
            &server,
            &["route", "update", "inventory", "--timeout", "5", "--json"],
            &[],
        )
        .await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = gatehouse(&server, &["route", "list", "--json"], &[]).await;
        let routes: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(routes[0]["timeout_seconds"], 5);
        let output = gatehouse(
            &server,
            &[
                "table",
                "update",
                "incident",
                "--write-role",
                "itil_admin",
                "--json",
            ],
            &[],
        )
        .await;
        let table: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            (&table["read_roles"], &table["write_roles"]),
            (&json!(["itil"]), &json!(["itil_admin"]))
        );
        let output = gatehouse(&server, &["scope", "delete", "useraccount"], &[]).await;
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: "));

        // An entry changed by hand is put back, and pruning removes what the file dropped.
        let changes = apply(&server, &changed, &[], &[]).await;
        assert_eq!(changes[0]["fields"], json!(["timeout_seconds"]));
        let changes = apply(&server, "", &["--prune"], &[]).await;
        assert_eq!(changes.len(), 4, "{changes:?}");
        let output = gatehouse(&server, &["scope", "list", "--json"], &[]).await;
        let scopes: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(!scopes.to_string().contains("inventory_read"));
        assert!(scopes.to_string().contains("useraccount"));
    }
);
