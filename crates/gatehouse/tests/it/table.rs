//! The Table API over real HTTP: scope rules and table roles decide, records persist in the
//! server's database, lists filter and page, and concurrent changes of different fields all
//! survive.

use gatehouse_core::access::{ScopeEntry, ScopeRule};
use gatehouse_core::client::TokenFormat;
use gatehouse_core::table::TableDef;
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, server_test};

/// Table `incident` (read: itil, write: itil_admin); scope `table_read` for every GET of the
/// Table API, `incident_write` for every change of incidents.
async fn configure(server: &TestServer) {
    let registry = &server.services.registry;
    for name in ["table_read", "incident_write"] {
        registry
            .create_entry::<ScopeEntry>(json!({"name": name}), false)
            .await
            .unwrap();
    }
    for rule in [
        json!({"name": "read-tables", "methods": ["GET"], "path": "/api/now/table/**",
            "scopes": ["table_read"]}),
        json!({"name": "write-incidents", "methods": ["POST", "PUT", "PATCH", "DELETE"],
            "path": "/api/now/table/incident/**", "scopes": ["incident_write"]}),
    ] {
        registry
            .create_entry::<ScopeRule>(rule, false)
            .await
            .unwrap();
    }
    let table = json!({"name": "incident", "read_roles": ["itil"], "write_roles": ["itil_admin"]});
    registry
        .create_entry::<TableDef>(table, false)
        .await
        .unwrap();
}

async fn app_for(server: &TestServer, user: &str, role: &str) -> TestApp {
    server.user(user, &[role]).await;
    let scopes = ["table_read", "incident_write", "useraccount"];
    server.app(TokenFormat::Jwt, &scopes, Some(user)).await
}

async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .http
        .request(method, server.url(path))
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

server_test!(records_are_created_listed_changed_and_deleted, |server| {
    use reqwest::Method;
    configure(&server).await;
    let app = app_for(&server, "agent", "itil_admin").await;
    let writer = server.token(&app, Some("incident_write")).await;
    let reader = server.token(&app, Some("table_read")).await;

    let mut ids = Vec::new();
    for (n, state) in ["open", "closed", "open", "open"].iter().enumerate() {
        let body = json!({"short_description": format!("case {n}"), "state": state,
            "priority": n, "sys_id": "ignored"});
        let (status, _, created) = call(
            &server,
            Method::POST,
            "/api/now/table/incident",
            &writer,
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let record = &created["result"];
        let sys_id = record["sys_id"].as_str().unwrap().to_owned();
        assert!(sys_id.len() == 32 && sys_id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(record["sys_mod_count"], "0");
        assert_eq!(record["state"], *state);
        assert_eq!(record["sys_created_on"].as_str().unwrap().len(), 19);
        ids.push(sys_id);
    }

    let (status, headers, list) = call(
        &server,
        Method::GET,
        "/api/now/table/incident?sysparm_query=state=open&sysparm_limit=1&sysparm_offset=1",
        &reader,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-total-count"], "3");
    assert_eq!(list["result"].as_array().unwrap().len(), 1);
    assert_eq!(list["result"][0]["sys_id"], ids[2].as_str());
    let (_, headers, list) = call(
        &server,
        Method::GET,
        "/api/now/table/incident?sysparm_query=state=open%5Epriority=3",
        &reader,
        None,
    )
    .await;
    assert_eq!(headers["x-total-count"], "1");
    assert_eq!(list["result"][0]["sys_id"], ids[3].as_str());
    let (status, _, body) = call(
        &server,
        Method::GET,
        "/api/now/table/incident?sysparm_query=priority>1",
        &reader,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let path = format!("/api/now/table/incident/{}", ids[0]);
    let (status, _, changed) = call(
        &server,
        Method::PATCH,
        &path,
        &writer,
        Some(json!({"state": "resolved", "priority": null})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["result"]["state"], "resolved");
    assert_eq!(changed["result"]["sys_mod_count"], "1");
    assert!(changed["result"].get("priority").is_none());
    let (status, _, changed) = call(
        &server,
        Method::PUT,
        &path,
        &writer,
        Some(json!({"assigned_to": "agent"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        changed["result"]["state"], "resolved",
        "PUT merges, like PATCH"
    );
    let (status, _, shown) = call(&server, Method::GET, &path, &reader, None).await;
    assert_eq!((status, &shown["result"]), (200, &changed["result"]));

    let admin = server.token_for_role("admin").await;
    let (status, _, _) = call(
        &server,
        Method::DELETE,
        "/api/admin/v1/tables/incident",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 409, "a table with records stays");
    let (status, _, _) = call(&server, Method::DELETE, &path, &writer, None).await;
    assert_eq!(status, 204);
    let (status, _, body) = call(&server, Method::GET, &path, &reader, None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _, _) = call(
        &server,
        Method::GET,
        "/api/now/table/problem",
        &reader,
        None,
    )
    .await;
    assert_eq!(status, 404, "an unknown table");
});

server_test!(scopes_and_roles_decide_who_reaches_a_table, |server| {
    use reqwest::Method;
    configure(&server).await;
    let agent = app_for(&server, "agent", "itil_admin").await;
    let writer = server.token(&agent, Some("incident_write")).await;
    let (status, headers, body) = call(
        &server,
        Method::GET,
        "/api/now/table/incident",
        &writer,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(
        headers["www-authenticate"],
        server
            .challenge(", error=\"insufficient_scope\", scope=\"table_read\"", "")
            .as_str()
    );
    // The run-as user may read (itil_admin writes, so reads) but a reader may not write.
    let full = server.token(&agent, Some("useraccount")).await;
    let (status, _, _) = call(&server, Method::GET, "/api/now/table/incident", &full, None).await;
    assert_eq!(status, 200);
    let clerk = app_for(&server, "clerk", "itil").await;
    let clerk_token = server.token(&clerk, Some("useraccount")).await;
    let (status, _, _) = call(
        &server,
        Method::GET,
        "/api/now/table/incident",
        &clerk_token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = call(
        &server,
        Method::POST,
        "/api/now/table/incident",
        &clerk_token,
        Some(json!({"a": 1})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied"))
    );
    let outsider = app_for(&server, "outsider", "guest").await;
    let outsider_token = server.token(&outsider, Some("useraccount")).await;
    let (status, _, _) = call(
        &server,
        Method::GET,
        "/api/now/table/incident",
        &outsider_token,
        None,
    )
    .await;
    assert_eq!(status, 403);

    // Without a token, and with a revoked one.
    let response = server
        .http
        .get(server.url("/api/now/table/incident"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        server.challenge("", "").as_str()
    );
    let revoked = server
        .http
        .post(server.url("/oauth/revoke"))
        .basic_auth(&agent.client_id, Some(&agent.secret))
        .form(&[("token", full.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, _, body) =
        call(&server, Method::GET, "/api/now/table/incident", &full, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
});

server_test!(
    concurrent_changes_of_different_fields_are_all_kept,
    |server| {
        use reqwest::Method;
        configure(&server).await;
        let app = app_for(&server, "agent", "itil_admin").await;
        let token = server.token(&app, Some("useraccount")).await;
        let (_, _, created) = call(
            &server,
            Method::POST,
            "/api/now/table/incident",
            &token,
            Some(json!({"state": "open"})),
        )
        .await;
        let path = format!(
            "/api/now/table/incident/{}",
            created["result"]["sys_id"].as_str().unwrap()
        );
        const WRITERS: usize = 24;
        let mut tasks = Vec::new();
        for i in 0..WRITERS {
            let (http, url, token) = (server.http.clone(), server.url(&path), token.clone());
            tasks.push(tokio::spawn(async move {
                let response = http
                    .patch(url)
                    .bearer_auth(token)
                    .json(&json!({ format!("field_{i}"): i }))
                    .send()
                    .await
                    .unwrap();
                response.status().as_u16()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
        let (_, _, shown) = call(&server, Method::GET, &path, &token, None).await;
        let record = &shown["result"];
        for i in 0..WRITERS {
            assert_eq!(
                record[format!("field_{i}")],
                i,
                "field_{i} was lost: {record}"
            );
        }
        assert_eq!(record["state"], "open");
        assert_eq!(record["sys_mod_count"], WRITERS.to_string());
    }
);
