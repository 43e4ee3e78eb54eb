//! The admin REST API: who may call it, and the registry operations over JSON.

use gatehouse_core::client::TokenFormat;
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, introspect, server_test};

/// Calls the admin API with a bearer token; returns the status and the JSON body.
pub(crate) async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .http
        .request(method, server.url(&format!("/api/admin/v1{path}")))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// [`call`] with each method: the answer to the holder of `token`.
async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    call(server, reqwest::Method::GET, path, token, None).await
}

async fn delete(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    call(server, reqwest::Method::DELETE, path, token, None).await
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(server, reqwest::Method::POST, path, token, Some(body)).await
}

async fn put(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(server, reqwest::Method::PUT, path, token, Some(body)).await
}

async fn patch(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(server, reqwest::Method::PATCH, path, token, Some(body)).await
}

server_test!(each_registry_role_may_manage_and_others_may_not, |server| {
    for role in ["admin", "oauth_admin", "mi_admin"] {
        let token = server.token_for_role(role).await;
        let (status, _) = get(&server, &token, "/apps").await;
        assert_eq!(status, 200, "{role}");
    }
    let token = server.token_for_role("itil").await;
    let (status, body) = get(&server, &token, "/apps").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied"))
    );
    // A token without a user (no run-as) manages nothing.
    let app = server.app(TokenFormat::Jwt, &["useraccount"], None).await;
    let token = server.token(&app, None).await;
    let (status, _) = get(&server, &token, "/users").await;
    assert_eq!(status, 403);
});

server_test!(applications_lifecycle_over_json, |server| {
    let token = server.token_for_role("oauth_admin").await;
    let app = json!({
        "name": "billing",
        "client_id": "billing",
        "grant_types": ["client_credentials"],
        "allowed_scopes": ["useraccount", "read"],
    });
    // A scope nobody registered is refused, with the ones that are.
    let (status, refused) = post(&server, &token, "/apps", app).await;
    assert_eq!(
        (status, &refused["error"]),
        (400, &json!("invalid_request"))
    );
    let message = refused["error_description"].as_str().unwrap();
    assert!(
        message.contains("unknown scope read") && message.contains("useraccount"),
        "{message}"
    );
    let (status, _) = post(
        &server,
        &token,
        "/scopes",
        json!({"name": "read", "description": "read billing data"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, created) = post(
        &server,
        &token,
        "/apps",
        json!({
            "name": "billing",
            "client_id": "billing",
            "grant_types": ["client_credentials"],
            "allowed_scopes": ["useraccount", "read"],
            "default_scopes": ["read"],
            "token_format": "jwt",
            "access_token_lifespan": 600
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["client_id"], "billing");
    assert_eq!(created["default_scopes"], json!(["read"]));
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43);

    // The secret works, and is never shown again.
    let app = crate::harness::TestApp {
        client_id: "billing".into(),
        secret: secret.clone(),
    };
    server.token(&app, None).await;
    let (status, shown) = get(&server, &token, "/apps/billing").await;
    assert_eq!(status, 200);
    assert!(shown.get("client_secret").is_none());
    assert!(!shown.to_string().contains(&secret));

    let (status, updated) = patch(
        &server,
        &token,
        "/apps/billing",
        json!({"name": "Billing", "access_token_lifespan": 60}),
    )
    .await;
    assert_eq!(
        (
            status,
            updated["name"].as_str(),
            updated["access_token_lifespan"].as_i64()
        ),
        (200, Some("Billing"), Some(60))
    );

    let (status, rotated) = post(
        &server,
        &token,
        "/apps/billing/rotate-secret",
        json!({"grace": 0}),
    )
    .await;
    assert_eq!(status, 200);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let (status, _, _) = crate::harness::post_form(
        &server,
        "/oauth/token",
        Some(("billing", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        status, 401,
        "without a grace period the old secret stops at once"
    );

    // Bad input: exact errors, nothing written.
    let (status, body) = post(
        &server,
        &token,
        "/apps",
        json!({"name": "x", "client_secret": "short"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = post(
        &server,
        &token,
        "/apps",
        json!({"name": "x", "grant_types": ["teleport"]}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = post(&server, &token, "/apps", json!({"nme": "typo"})).await;
    assert_eq!(status, 400);
    let (status, body) = post(
        &server,
        &token,
        "/apps",
        json!({"name": "dup", "client_id": "billing"}),
    )
    .await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["error_description"].as_str()
        ),
        (
            409,
            Some("conflict"),
            Some(r#"an application with client_id "billing" already exists"#)
        )
    );
    let (status, body) = post(
        &server,
        &token,
        "/apps",
        json!({"name": "x", "grant_types": ["client_credential"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"].as_str().unwrap().contains(
            r#"unknown grant type "client_credential" (expected one of authorization_code, "#
        ),
        "{body}"
    );
    let (status, _) = post(
        &server,
        &token,
        "/apps",
        json!({"name": "spa", "client_type": "public", "grant_types": ["client_credentials"]}),
    )
    .await;
    assert_eq!(status, 400);
    let (_, list) = get(&server, &token, "/apps").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "x" && a["name"] != "dup")
    );

    let (status, _) = delete(&server, &token, "/apps/billing").await;
    assert_eq!(status, 204);
    let (status, body) = get(&server, &token, "/apps/billing").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
});

server_test!(
    an_application_description_shows_in_the_api_the_cli_and_the_file,
    |server| {
        let token = server.token_for_role("oauth_admin").await;

        // The admin API: given, shown, changed, removed with "".
        let body = json!({"name": "billing", "client_id": "billing",
        "grant_types": ["client_credentials"], "description": "Invoices and payments"});
        let (status, created) = post(&server, &token, "/apps", body).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["description"], "Invoices and payments");
        let (_, shown) = get(&server, &token, "/apps/billing").await;
        assert_eq!(shown["description"], "Invoices and payments");
        let change = json!({"description": "Invoices"});
        let (status, changed) = patch(&server, &token, "/apps/billing", change).await;
        assert_eq!((status, &changed["description"]), (200, &json!("Invoices")));
        let change = json!({"description": ""});
        let (_, removed) = patch(&server, &token, "/apps/billing", change).await;
        assert_eq!(removed["description"], Value::Null);
        let (_, document) = get(&server, &token, "/openapi.json").await;
        for schema in ["AppInput", "AppView"] {
            let properties = &document["components"]["schemas"][schema]["properties"];
            assert!(properties.get("description").is_some(), "{schema}");
        }

        // The CLI: `--description` on create and update, shown by `app show`.
        let cli = |args: &'static [&'static str]| crate::cli::gatehouse(&server, args, &[]);
        let created = cli(&[
            "app",
            "create",
            "--name",
            "crm",
            "--client-id",
            "crm",
            "--grant",
            "client_credentials",
            "--description",
            "Customer records",
            "--json",
        ])
        .await;
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let created: Value = serde_json::from_slice(&created.stdout).unwrap();
        assert_eq!(created["description"], "Customer records");
        let updated = cli(&["app", "update", "crm", "--description", "Customers"]).await;
        assert!(updated.status.success());
        let shown = cli(&["app", "show", "crm"]).await;
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("description:            Customers"), "{text}");

        // The file: applied, idempotent, a change reported by field, and left out it is removed.
        let file = |description: &str| {
            format!(
                r#"
[[application]]
name = "orders"
client_id = "orders"
grant_types = ["client_credentials"]
{description}
"#
            )
        };
        let with = file(r#"description = "Orders and returns""#);
        crate::apply::apply(&server, &with, &[], &[]).await;
        let orders = server.services.registry.get_app("orders").await.unwrap();
        assert_eq!(orders.description.as_deref(), Some("Orders and returns"));
        assert!(
            crate::apply::apply(&server, &with, &[], &[])
                .await
                .is_empty()
        );
        let changes = crate::apply::apply(&server, &file(""), &[], &[]).await;
        assert_eq!(changes[0]["fields"], json!(["description"]));
        let orders = server.services.registry.get_app("orders").await.unwrap();
        assert_eq!(orders.description, None);
    }
);

server_test!(users_lifecycle_over_json, |server| {
    let token = server.token_for_role("admin").await;
    let (status, created) = post(&server, &token, "/users", json!({"user_name": "alice", "display_name": "Alice", "email": "alice@example.com", "roles": ["itil"], "password": "correct horse battery"}))
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["has_password"], true);
    assert!(!created.to_string().contains("correct horse"));
    let (status, updated) = patch(
        &server,
        &token,
        "/users/alice",
        json!({"roles": ["mi_admin"], "email": ""}),
    )
    .await;
    assert_eq!(
        (status, updated["roles"].clone(), updated["email"].clone()),
        (200, json!(["mi_admin"]), Value::Null)
    );
    let (status, _) = put(
        &server,
        &token,
        "/users/alice/password",
        json!({"password": "short"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = put(
        &server,
        &token,
        "/users/alice/password",
        json!({"password": "another long password"}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = delete(&server, &token, "/users/alice").await;
    assert_eq!(status, 204);
    let (status, _) = get(&server, &token, "/users/alice").await;
    assert_eq!(status, 404);
});

server_test!(openapi_document_lists_every_admin_route, |server| {
    let document: Value = server
        .http
        .get(server.url("/api/admin/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/whoami",
        "/apps",
        "/apps/{client_id}",
        "/apps/{client_id}/rotate-secret",
        "/users",
        "/users/{user_name}",
        "/users/{user_name}/password",
        "/keys",
        "/keys/{kid}/retire",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(paths["/apps"].as_object().unwrap().len(), 2);
    assert_eq!(paths["/apps/{client_id}"].as_object().unwrap().len(), 3);
});

server_test!(
    a_rotated_secret_stays_valid_for_its_grace_period,
    |server| {
        let admin = server.token_for_role("admin").await;
        let app = server.app(TokenFormat::Opaque, &[], None).await;
        let works = |secret: String| {
            let (server, client_id) = (&server, app.client_id.clone());
            async move {
                let (status, _, _) = crate::harness::post_form(
                    server,
                    "/oauth/token",
                    Some((&client_id, &secret)),
                    &[("grant_type", "client_credentials")],
                )
                .await;
                assert!([200, 401].contains(&status), "{status}");
                status == 200
            }
        };
        let rotate = |body: Option<Value>| {
            let (server, admin) = (&server, admin.clone());
            let path = format!("/apps/{}/rotate-secret", app.client_id);
            async move {
                let (status, view) = call(server, reqwest::Method::POST, &path, &admin, body).await;
                assert_eq!(status, 200, "{view}");
                view
            }
        };
        let first = app.secret.clone();
        // By default the replaced secret keeps working for a day beside the new one.
        let view = rotate(None).await;
        let second = view["client_secret"].as_str().unwrap().to_owned();
        let expires_at = view["previous_secret_expires_at"].as_i64().unwrap();
        let now = crate::federation::now();
        assert!(
            (now + 86_400 - 5..=now + 86_400 + 5).contains(&expires_at),
            "{view}"
        );
        assert!(works(first.clone()).await && works(second.clone()).await);
        // The view shows when it ends, and never a secret.
        let (_, shown) = get(&server, &admin, &format!("/apps/{}", app.client_id)).await;
        assert_eq!(shown["previous_secret_expires_at"], expires_at);
        assert!(shown.get("client_secret").is_none());
        // A second rotation: never more than two secrets live, so the first one ends.
        let third = rotate(Some(json!({"grace": 3600}))).await["client_secret"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!works(first).await, "a third secret ends the first");
        assert!(works(second.clone()).await && works(third.clone()).await);
        // Ending the previous one early rotates nothing.
        let view = rotate(Some(json!({"revoke_previous": true}))).await;
        assert!(
            view.get("client_secret").is_none() && view.get("previous_secret_expires_at").is_none()
        );
        assert!(!works(second).await);
        assert!(works(third.clone()).await);
        // A grace period ends by itself. (That the previous secret works within one is shown
        // above with grace periods long enough for a loaded machine: a one-second one can be
        // over before the next request is answered.)
        let fourth = rotate(Some(json!({"grace": 1}))).await["client_secret"]
            .as_str()
            .unwrap()
            .to_owned();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert!(!works(third).await, "the grace period is over");
        assert!(works(fourth).await);
        // Bad input: exact errors, nothing changed.
        for body in [
            json!({"grace": -1}),
            json!({"grace": 31 * 86_400}),
            json!({"grace": 10, "revoke_previous": true}),
            json!({"grace": "soon"}),
            json!({"unknown": true}),
        ] {
            let (status, error) = post(
                &server,
                &admin,
                &format!("/apps/{}/rotate-secret", app.client_id),
                body.clone(),
            )
            .await;
            assert_eq!(
                (status, error["error"].as_str()),
                (400, Some("invalid_request")),
                "{body}: {error}"
            );
        }
    }
);

server_test!(
    tokens_are_listed_and_revoked_for_those_who_may_change_their_holder,
    |server| {
        use crate::console::{introspected_active, password_app, password_tokens, refreshes};
        use reqwest::Method;

        server.user("ada", &["admin"]).await;
        server.user("tess", &[]).await;
        let app = password_app(&server).await;
        let (first, first_refresh) = password_tokens(&server, &app, "tess").await;
        let (second, second_refresh) = password_tokens(&server, &app, "tess").await;
        let admin = server.token_for_role("admin").await;
        let olga = server.token_for_role("oauth_admin").await;
        let mia = server.token_for_role("mi_admin").await;
        let apps_tokens = format!("/apps/{}/tokens", app.client_id);

        // The user's tokens, newest first, named by handles; no token in the answer.
        let (status, body) = get(&server, &olga, "/users/tess/tokens").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["truncated"], false);
        let listed = body["tokens"].as_array().unwrap();
        let mut kinds: Vec<&str> = listed.iter().map(|t| t["kind"].as_str().unwrap()).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "access_token",
                "access_token",
                "refresh_token",
                "refresh_token"
            ]
        );
        for held in listed {
            assert_eq!(held["client_id"], app.client_id.as_str());
            assert_eq!(held["user_name"], "tess");
            assert_eq!(held["scope"], "useraccount");
            assert!(held["expires_at"].as_i64() > held["issued_at"].as_i64());
        }
        for token in [&first, &second, &first_refresh, &second_refresh] {
            assert!(!body.to_string().contains(token.as_str()));
        }

        // One access token revoked by its handle: introspection says so, the other stays.
        let handle = format!("access:{}", server.services.tokens.access_token_key(&first));
        let one = format!("/users/tess/tokens/{handle}");
        let (status, body) = delete(&server, &olga, &one).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["kind"], "access_token");
        assert_eq!(body["handle"], handle.as_str());
        assert!(!introspected_active(&server, &app, &first).await);
        assert!(introspected_active(&server, &app, &second).await);
        // Gone now, and never there: 404.
        for path in [one.as_str(), "/users/tess/tokens/access:nothing"] {
            let (status, body) = delete(&server, &olga, path).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (404, Some("not_found")),
                "{path}"
            );
        }

        // Unknown users and applications.
        for path in ["/users/nobody/tokens", "/apps/nothing-here/tokens"] {
            for method in [Method::GET, Method::DELETE] {
                let (status, body) = call(&server, method.clone(), path, &admin, None).await;
                assert_eq!(status, 404, "{method} {path}: {body}");
            }
        }

        // Roles that may not change the holder: mi_admin manages no users or applications,
        // oauth_admin no administrators. Nothing is revoked for them.
        let second_handle = format!(
            "access:{}",
            server.services.tokens.access_token_key(&second)
        );
        for (token, method, path) in [
            (&mia, Method::GET, "/users/tess/tokens".to_owned()),
            (&mia, Method::DELETE, "/users/tess/tokens".to_owned()),
            (
                &mia,
                Method::DELETE,
                format!("/users/tess/tokens/{second_handle}"),
            ),
            (&mia, Method::GET, apps_tokens.clone()),
            (&mia, Method::DELETE, apps_tokens.clone()),
            (
                &mia,
                Method::DELETE,
                format!("{apps_tokens}/{second_handle}"),
            ),
            (&olga, Method::GET, "/users/ada/tokens".to_owned()),
            (&olga, Method::DELETE, "/users/ada/tokens".to_owned()),
        ] {
            let (status, body) = call(&server, method.clone(), &path, token, None).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("access_denied")),
                "{method} {path}: {body}"
            );
        }
        assert!(introspected_active(&server, &app, &second).await);

        // The application's: what is left of both grants. A refresh token revoked through it
        // takes its grant's access token along.
        let (status, body) = get(&server, &olga, &apps_tokens).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["tokens"].as_array().unwrap().len(), 3, "{body}");
        let refresh_handle = format!(
            "refresh:{}",
            server.services.tokens.refresh_token_key(&second_refresh)
        );
        let (status, body) =
            delete(&server, &olga, &format!("{apps_tokens}/{refresh_handle}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["kind"], "refresh_token");
        assert!(!introspected_active(&server, &app, &second).await);
        assert!(!refreshes(&server, &app, &second_refresh).await);

        // Everything of the user, then nothing left for the application either.
        let (status, _) = delete(&server, &olga, "/users/tess/tokens").await;
        assert_eq!(status, 204);
        assert!(!refreshes(&server, &app, &first_refresh).await);
        let (status, body) = get(&server, &admin, &apps_tokens).await;
        assert_eq!((status, body["tokens"].as_array().unwrap().len()), (200, 0));
        let (status, _) = delete(&server, &admin, &apps_tokens).await;
        assert_eq!(status, 204);

        // The OpenAPI document describes the paths.
        let (_, document) = get(&server, &admin, "/openapi.json").await;
        for path in [
            "/users/{user_name}/tokens",
            "/users/{user_name}/tokens/{handle}",
            "/apps/{client_id}/tokens",
            "/apps/{client_id}/tokens/{handle}",
        ] {
            assert!(document["paths"][path].is_object(), "{path}");
        }
    }
);

/// Tokens one of the race's requests obtained, and when the answer came.
struct Obtained {
    answered: std::time::Instant,
    access_token: String,
    refresh_token: Option<String>,
}

/// Asks `/oauth/token` for tokens with `form` until `stop`, as fast as the server answers.
async fn obtain_until(
    http: reqwest::Client,
    url: String,
    app: TestApp,
    form: Vec<(&'static str, &'static str)>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Obtained> {
    let mut obtained = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let response = http
            .post(&url)
            .basic_auth(&app.client_id, Some(&app.secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        obtained.push(Obtained {
            answered: std::time::Instant::now(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().map(str::to_owned),
        });
    }
    obtained
}

/// The cutoff of the application's last "revoke everything": the second it committed in.
async fn revocation_cutoff(server: &TestServer, client_id: &str) -> i64 {
    server
        .services
        .store
        .find_client(client_id)
        .await
        .unwrap()
        .unwrap()
        .tokens_revoked_at
}

server_test!(
    an_application_wide_revocation_refuses_every_token_issued_before_it_commits,
    |server| {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;

        use gatehouse_core::client::GrantType;
        use gatehouse_core::clock::{Clock, SystemClock};
        use gatehouse_core::registry::AppChanges;

        use crate::people::PASSWORD;

        server.user("tess", &[]).await;
        let admin = server.token_for_role("admin").await;
        // Opaque tokens are stored, as are JWTs of a person's grant; JWTs an application
        // obtains for itself are stored nowhere. Tokens of each kind are obtained side by side
        // with the revocation.
        for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
            let app = server
                .app_with(AppChanges {
                    name: Some(format!("{format:?} racer")),
                    grant_types: Some(vec![
                        GrantType::Password,
                        GrantType::RefreshToken,
                        GrantType::ClientCredentials,
                    ]),
                    allowed_scopes: Some(vec!["useraccount".into()]),
                    token_format: Some(format),
                    ..AppChanges::default()
                })
                .await;
            let stop = Arc::new(AtomicBool::new(false));
            let password = vec![
                ("grant_type", "password"),
                ("username", "tess"),
                ("password", PASSWORD),
            ];
            let workers: Vec<_> = (0..6)
                .map(|n| {
                    let form = if n == 0 {
                        password.clone()
                    } else {
                        vec![("grant_type", "client_credentials")]
                    };
                    tokio::spawn(obtain_until(
                        server.http.clone(),
                        server.url("/oauth/token"),
                        app.clone(),
                        form,
                        stop.clone(),
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let revoke_sent = std::time::Instant::now();
            let asked_at = SystemClock.now();
            let (status, body) =
                delete(&server, &admin, &format!("/apps/{}/tokens", app.client_id)).await;
            assert_eq!(status, 204, "{body}");
            let done_at = SystemClock.now();
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, Ordering::SeqCst);
            let mut obtained = Vec::new();
            for worker in workers {
                obtained.extend(worker.await.unwrap());
            }
            // The cutoff is the second the revocation committed in.
            let cutoff = revocation_cutoff(&server, &app.client_id).await;
            assert!((asked_at..=done_at).contains(&cutoff), "{cutoff}");
            let before = obtained.iter().filter(|o| o.answered < revoke_sent).count();
            assert!(before > 0 && before < obtained.len(), "{format:?}: no race");
            // Obtained before the revocation was asked for: refused. Still valid: issued after
            // the second the revocation committed in. Refresh tokens alike.
            for token in &obtained {
                let presented = std::iter::once(&token.access_token).chain(&token.refresh_token);
                for presented in presented {
                    let introspected = introspect(&server, &app, presented).await;
                    let active = introspected["active"] == true;
                    if token.answered < revoke_sent {
                        assert!(!active, "{format:?}: {introspected}");
                    }
                    if active {
                        assert!(
                            introspected["iat"].as_i64().unwrap() > cutoff,
                            "{format:?}: {introspected}, cutoff {cutoff}"
                        );
                    }
                }
            }
            // Issued once that second has passed, a token serves again.
            while SystemClock.now() <= cutoff {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let fresh = server.token(&app, None).await;
            assert_eq!(introspect(&server, &app, &fresh).await["active"], true);
        }
    }
);

server_test!(
    a_code_issued_before_an_application_wide_revocation_is_refused,
    |server| {
        use gatehouse_core::client::ClientType;
        use gatehouse_core::clock::{Clock, SystemClock};

        use crate::people::{Browser, VERIFIER, code_flow, people_app, redeem};

        server.user("alice", &[]).await;
        let admin = server.token_for_role("admin").await;
        let app = people_app(&server, ClientType::Confidential).await;
        let waiting = code_flow(&server, &mut Browser::new(), &app, "alice", &[]).await;
        let (status, body) =
            delete(&server, &admin, &format!("/apps/{}/tokens", app.client_id)).await;
        assert_eq!(status, 204, "{body}");
        // Not yet redeemed, the code went with everything else of its application.
        let (status, body) = redeem(&server, &app, &waiting["code"], Some(VERIFIER)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        // One issued once the revocation's second has passed is redeemed.
        let cutoff = revocation_cutoff(&server, &app.client_id).await;
        while SystemClock.now() <= cutoff {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Its consent outlives the revocation: a scope not consented to yet shows the consent
        // page again.
        let fresh = code_flow(
            &server,
            &mut Browser::new(),
            &app,
            "alice",
            &[("scope", "openid email")],
        )
        .await;
        let (status, body) = redeem(&server, &app, &fresh["code"], Some(VERIFIER)).await;
        assert_eq!(status, 200, "{body}");
    }
);

server_test!(
    a_token_stored_while_its_application_was_revoked_is_out_of_service,
    |server| {
        let app = server.app(TokenFormat::Opaque, &[], None).await;
        let admin = server.token_for_role("admin").await;
        let tokens = format!("/apps/{}/tokens", app.client_id);
        let (status, _) = delete(&server, &admin, &tokens).await;
        assert_eq!(status, 204);
        let cutoff = revocation_cutoff(&server, &app.client_id).await;
        // Stored by a request that was issuing it while the revocation ran: the store's
        // revocation did not see it.
        let escaped = "gh_at_stored-while-everything-was-revoked";
        let hash = server.services.tokens.access_token_key(escaped);
        server.store_app_token(&app, &hash, cutoff).await;
        assert_eq!(introspect(&server, &app, escaped).await["active"], false);
        let (status, body) = get(&server, &admin, &tokens).await;
        assert_eq!(status, 200, "{body}");
        assert!(!body.to_string().contains(&hash), "{body}");
    }
);
