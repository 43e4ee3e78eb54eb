//! Audiences and introspection: tokens requested with `resource` are for the resource servers
//! that registered those audiences and for no one else, Gatehouse's own APIs take only tokens
//! for its issuer (a gateway route may name its upstream's audience), and introspection answers
//! only the issuing client, a resource server of the token's audience, or an application allowed
//! to introspect every token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::client::{ClientType, GrantType, TokenFormat};
use gatehouse_core::gateway::Route;
use gatehouse_core::registry::AppChanges;
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, post_form, server_test};

const INVENTORY: &str = "https://inventory.example/api";
const INVENTORY_URN: &str = "urn:example:inventory";
const BILLING: &str = "https://billing.example/api";
const PASSWORD: &str = "a long enough password";

/// A confidential application that serves the API of `audiences`.
async fn resource_server(server: &TestServer, audiences: &[&str]) -> TestApp {
    server
        .app_with(AppChanges {
            name: Some(format!("resource server {}", audiences.join(" "))),
            grant_types: Some(vec![GrantType::ClientCredentials]),
            audiences: Some(audiences.iter().map(|a| a.to_string()).collect()),
            ..AppChanges::default()
        })
        .await
}

/// A client with the client-credentials and password grants and refresh tokens.
async fn client_app(server: &TestServer, format: TokenFormat) -> TestApp {
    server
        .app_with(AppChanges {
            name: Some("client".into()),
            grant_types: Some(vec![
                GrantType::ClientCredentials,
                GrantType::Password,
                GrantType::RefreshToken,
            ]),
            allowed_scopes: Some(vec!["useraccount".into()]),
            token_format: Some(format),
            ..AppChanges::default()
        })
        .await
}

/// A token request by `client_secret_basic`; `form` may repeat `resource`.
async fn request_token(server: &TestServer, app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        form,
    )
    .await;
    (status, body)
}

async fn client_credentials(server: &TestServer, app: &TestApp, resources: &[&str]) -> Value {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(resources.iter().map(|r| ("resource", *r)));
    let (status, body) = request_token(server, app, &form).await;
    assert_eq!(status, 200, "{resources:?}: {body}");
    body
}

async fn introspect(server: &TestServer, caller: &TestApp, token: &str, hint: &str) -> Value {
    let mut form = vec![("token", token)];
    if !hint.is_empty() {
        form.push(("token_type_hint", hint));
    }
    let (status, _, body) = post_form(
        server,
        "/oauth/introspect",
        Some((&caller.client_id, &caller.secret)),
        &form,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A GET with a bearer token: the status and the `WWW-Authenticate` challenge.
async fn call(server: &TestServer, path: &str, token: &str) -> (u16, String) {
    let response = server
        .http
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

fn inactive() -> Value {
    json!({"active": false})
}

server_test!(
    tokens_carry_the_audience_they_were_requested_for,
    |server| {
        resource_server(&server, &[INVENTORY, INVENTORY_URN]).await;
        resource_server(&server, &[BILLING]).await;
        let app = client_app(&server, TokenFormat::Jwt).await;

        let single = client_credentials(&server, &app, &[INVENTORY]).await;
        let claims = jwt_claims(single["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], INVENTORY, "one audience is a string");

        let several = client_credentials(&server, &app, &[INVENTORY, BILLING, INVENTORY]).await;
        let claims = jwt_claims(several["access_token"].as_str().unwrap());
        assert_eq!(
            claims["aud"],
            json!([INVENTORY, BILLING]),
            "repeats collapse"
        );

        let urn = client_credentials(&server, &app, &[INVENTORY_URN]).await;
        assert_eq!(
            jwt_claims(urn["access_token"].as_str().unwrap())["aud"],
            INVENTORY_URN
        );

        // Without resource, or naming this server, the token is for Gatehouse as before.
        for resources in [&[][..], &[server.base.as_str()][..]] {
            let own = client_credentials(&server, &app, resources).await;
            assert_eq!(
                jwt_claims(own["access_token"].as_str().unwrap())["aud"],
                server.base.as_str()
            );
        }
    }
);

server_test!(
    unregistered_or_malformed_resources_are_invalid_target,
    |server| {
        let inventory = resource_server(&server, &[INVENTORY]).await;
        let user = format!("pat-{}", crate::harness::uuid_like());
        server.user(&user, &[]).await;
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            let app = client_app(&server, format).await;
            for resources in [
                vec!["https://unknown.example/api"],
                vec![INVENTORY, "https://unknown.example/api"],
                vec!["inventory"],
                vec!["/api/inventory"],
                vec!["https://inventory.example/api#fragment"],
                vec!["https://inventory.example/api/"],
            ] {
                let mut form = vec![("grant_type", "client_credentials")];
                form.extend(resources.iter().map(|r| ("resource", *r)));
                let (status, body) = request_token(&server, &app, &form).await;
                assert_eq!(
                    (status, body["error"].as_str()),
                    (400, Some("invalid_target")),
                    "{resources:?}: {body}"
                );
            }
            // The password grant honours resource the same way.
            let (status, body) = request_token(
                &server,
                &app,
                &[
                    ("grant_type", "password"),
                    ("username", &user),
                    ("password", PASSWORD),
                    ("resource", "https://unknown.example/api"),
                ],
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_target"))
            );
        }
        // A disabled resource server's audience cannot be requested.
        server
            .update_app(
                &inventory.client_id,
                AppChanges {
                    active: Some(false),
                    ..AppChanges::default()
                },
            )
            .await;
        let app = client_app(&server, TokenFormat::Jwt).await;
        let (status, body) = request_token(
            &server,
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("resource", INVENTORY),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_target"))
        );
    }
);

server_test!(gatehouse_apis_take_only_tokens_for_its_issuer, |server| {
    resource_server(&server, &[INVENTORY]).await;
    server.user("clerk", &["admin", "itil"]).await;
    for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
        let app = server
            .app_with(AppChanges {
                name: Some("clerk app".into()),
                grant_types: Some(vec![GrantType::ClientCredentials]),
                allowed_scopes: Some(vec!["useraccount".into()]),
                token_format: Some(format),
                run_as: Some("clerk".into()),
                ..AppChanges::default()
            })
            .await;
        let for_inventory = client_credentials(&server, &app, &[INVENTORY]).await;
        let for_inventory = for_inventory["access_token"].as_str().unwrap();
        let for_both = client_credentials(&server, &app, &[INVENTORY, &server.base]).await;
        let for_both = for_both["access_token"].as_str().unwrap();
        let for_gatehouse = server.token(&app, None).await;
        for path in [
            "/api/admin/v1/whoami",
            "/api/admin/v1/apps",
            "/api/now/table/incident",
            "/api/outbound/crm/contacts",
            "/oauth/userinfo",
        ] {
            let (status, challenge) = call(&server, path, for_inventory).await;
            assert_eq!(status, 401, "{format:?} {path}");
            assert!(
                challenge.starts_with("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
                "{format:?} {path}: {challenge}"
            );
        }
        for token in [&for_gatehouse, for_both] {
            let (status, _) = call(&server, "/api/admin/v1/whoami", token).await;
            assert_eq!(status, 200, "{format:?}");
            let (status, _) = call(&server, "/api/admin/v1/apps", token).await;
            assert_eq!(status, 200, "{format:?}");
        }
    }
});

server_test!(
    a_route_may_name_the_audience_its_upstream_expects,
    |server| {
        let upstream = crate::gateway::start_upstream().await.address;
        resource_server(&server, &[INVENTORY]).await;
        for (name, prefix, audience) in [
            ("inventory", "/api/x/inventory", Some(INVENTORY)),
            ("legacy", "/api/x/legacy", None),
        ] {
            let mut route = json!({"name": name, "prefix": prefix,
            "upstream": format!("http://{upstream}/v1")});
            if let Some(audience) = audience {
                route["audience"] = audience.into();
            }
            server
                .services
                .registry
                .create_entry::<Route>(route, false)
                .await
                .unwrap();
        }
        let refused = server
        .services
        .registry
        .create_entry::<Route>(
            json!({"name": "bad", "prefix": "/api/x/bad", "upstream": format!("http://{upstream}"),
                "audience": "not a uri"}),
            false,
        )
        .await;
        assert!(refused.is_err(), "a route's audience is an absolute URI");
        server.user("clerk", &[]).await;
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            let app = server
                .app_with(AppChanges {
                    name: Some("clerk app".into()),
                    grant_types: Some(vec![GrantType::ClientCredentials]),
                    allowed_scopes: Some(vec!["useraccount".into()]),
                    token_format: Some(format),
                    run_as: Some("clerk".into()),
                    ..AppChanges::default()
                })
                .await;
            let for_inventory = client_credentials(&server, &app, &[INVENTORY]).await;
            let for_inventory = for_inventory["access_token"].as_str().unwrap();
            let for_gatehouse = server.token(&app, None).await;
            for (path, token, expected) in [
                ("/api/x/inventory/items", for_inventory, 200),
                ("/api/x/inventory/items", for_gatehouse.as_str(), 401),
                ("/api/x/legacy/items", for_gatehouse.as_str(), 200),
                ("/api/x/legacy/items", for_inventory, 401),
            ] {
                let (status, challenge) = call(&server, path, token).await;
                assert_eq!(status, expected, "{format:?} {path}");
                if expected == 401 {
                    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
                }
            }
        }
    }
);

server_test!(introspection_answers_only_those_entitled, |server| {
    let inventory = resource_server(&server, &[INVENTORY]).await;
    let billing = resource_server(&server, &[BILLING]).await;
    let stranger = server.app(TokenFormat::Opaque, &[], None).await;
    let auditor = server
        .app_with(AppChanges {
            name: Some("auditor".into()),
            grant_types: Some(vec![GrantType::ClientCredentials]),
            introspect_any: Some(true),
            ..AppChanges::default()
        })
        .await;
    for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
        let app = client_app(&server, format).await;
        let for_inventory = client_credentials(&server, &app, &[INVENTORY]).await;
        let for_inventory = for_inventory["access_token"].as_str().unwrap().to_owned();
        let for_gatehouse = server.token(&app, None).await;

        for caller in [&app, &inventory, &auditor] {
            let answer = introspect(&server, caller, &for_inventory, "").await;
            assert_eq!(answer["active"], true, "{format:?} {}", caller.client_id);
            assert_eq!(answer["aud"], INVENTORY);
            assert_eq!(answer["client_id"], app.client_id.as_str());
            assert_eq!(answer["token_type"], "Bearer");
        }
        for caller in [&billing, &stranger] {
            assert_eq!(
                introspect(&server, caller, &for_inventory, "").await,
                inactive(),
                "{format:?} {}",
                caller.client_id
            );
        }

        // A token for Gatehouse itself: no resource server learns about it.
        for caller in [&app, &auditor] {
            let answer = introspect(&server, caller, &for_gatehouse, "").await;
            assert_eq!(answer["active"], true, "{format:?}");
            assert_eq!(answer["aud"], server.base.as_str());
        }
        for caller in [&inventory, &billing, &stranger] {
            assert_eq!(
                introspect(&server, caller, &for_gatehouse, "").await,
                inactive()
            );
        }

        // The hint is only a hint: a wrong or unknown one still finds the token.
        for hint in ["access_token", "refresh_token", "id_token"] {
            let answer = introspect(&server, &app, &for_inventory, hint).await;
            assert_eq!(answer["active"], true, "{format:?} {hint}");
        }

        // Revoked, it is inactive for everyone, its own client included.
        let (status, _, _) = post_form(
            &server,
            "/oauth/revoke",
            Some((&app.client_id, &app.secret)),
            &[("token", &for_inventory)],
        )
        .await;
        assert_eq!(status, 200);
        for caller in [&app, &inventory, &auditor] {
            assert_eq!(
                introspect(&server, caller, &for_inventory, "").await,
                inactive()
            );
        }
    }
    // Unknown and malformed tokens look exactly like tokens one may not see.
    for garbage in ["gh_at_unknown", "gh_rt_unknown", "eyJ.eyJ.sig", "x"] {
        assert_eq!(introspect(&server, &auditor, garbage, "").await, inactive());
    }
});

server_test!(
    refresh_tokens_keep_their_grants_audience_and_may_narrow_it,
    |server| {
        let inventory = resource_server(&server, &[INVENTORY]).await;
        resource_server(&server, &[BILLING]).await;
        let third = "https://third.example/api";
        resource_server(&server, &[third]).await;
        let user = format!("pat-{}", crate::harness::uuid_like());
        server.user(&user, &[]).await;
        let auditor = server
            .app_with(AppChanges {
                name: Some("auditor".into()),
                grant_types: Some(vec![GrantType::ClientCredentials]),
                introspect_any: Some(true),
                ..AppChanges::default()
            })
            .await;
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            let app = client_app(&server, format).await;
            let (status, body) = request_token(
                &server,
                &app,
                &[
                    ("grant_type", "password"),
                    ("username", &user),
                    ("password", PASSWORD),
                    ("resource", INVENTORY),
                    ("resource", BILLING),
                ],
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let access = body["access_token"].as_str().unwrap();
            let answer = introspect(&server, &inventory, access, "").await;
            assert_eq!(answer["aud"], json!([INVENTORY, BILLING]));
            let mut refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

            // The refresh token introspects for its own client only, with or without a hint.
            for hint in ["", "refresh_token", "access_token"] {
                let answer = introspect(&server, &app, &refresh_token, hint).await;
                assert_eq!(answer["active"], true, "{format:?} {hint:?}");
                assert_eq!(answer["token_type"], "refresh_token");
                assert_eq!(answer["client_id"], app.client_id.as_str());
                assert_eq!(answer["scope"], "useraccount");
                assert_eq!(answer["username"], user.as_str());
                assert!(answer["exp"].as_i64().is_some());
            }
            for caller in [&inventory, &auditor] {
                assert_eq!(
                    introspect(&server, caller, &refresh_token, "").await,
                    inactive()
                );
            }

            // Narrowed to one resource; then the whole grant again; never beyond it.
            for (resources, expected) in [
                (vec![INVENTORY], json!(INVENTORY)),
                (vec![], json!([INVENTORY, BILLING])),
                (vec![BILLING, INVENTORY], json!([BILLING, INVENTORY])),
            ] {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.as_str()),
                ];
                form.extend(resources.iter().map(|r| ("resource", *r)));
                let (status, body) = request_token(&server, &app, &form).await;
                assert_eq!(status, 200, "{body}");
                let access = body["access_token"].as_str().unwrap();
                let answer = introspect(&server, &app, access, "").await;
                assert_eq!(answer["aud"], expected, "{format:?} {resources:?}");
                let rotated = body["refresh_token"].as_str().unwrap().to_owned();
                // A spent refresh token is no longer active.
                assert_eq!(
                    introspect(&server, &app, &refresh_token, "").await,
                    inactive()
                );
                refresh_token = rotated;
            }
            for beyond in [third, "https://unknown.example/api", server.base.as_str()] {
                let (status, body) = request_token(
                    &server,
                    &app,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &refresh_token),
                        ("resource", beyond),
                    ],
                )
                .await;
                assert_eq!(
                    (status, body["error"].as_str()),
                    (400, Some("invalid_target")),
                    "{beyond}"
                );
            }
        }
    }
);

server_test!(
    the_authorization_endpoint_takes_resources_into_the_code,
    |server| {
        resource_server(&server, &[INVENTORY]).await;
        resource_server(&server, &[BILLING]).await;
        let user = format!("pat-{}", crate::harness::uuid_like());
        server.user(&user, &[]).await;
        let other_user = format!("pat-{}", crate::harness::uuid_like());
        server.user(&other_user, &[]).await;
        let app = server
            .app_with(AppChanges {
                name: Some("web app".into()),
                client_type: Some(ClientType::Confidential),
                grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
                redirect_uris: Some(vec![crate::people::REDIRECT.into()]),
                allowed_scopes: Some(vec!["openid".into(), "profile".into()]),
                token_format: Some(TokenFormat::Jwt),
                ..AppChanges::default()
            })
            .await;
        // An unknown resource goes back to the client as invalid_target.
        let mut browser = crate::people::Browser::new();
        let refused = browser
            .get(&crate::people::authorize_url(
                &server,
                &app.client_id,
                &[("resource", "https://unknown.example/api"), ("state", "s1")],
            ))
            .await;
        let params = refused.redirect_params();
        assert_eq!(params["error"], "invalid_target");
        assert_eq!(params["state"], "s1");

        let params = crate::people::code_flow(
            &server,
            &mut browser,
            &app,
            &user,
            &[("resource", INVENTORY), ("resource", BILLING)],
        )
        .await;
        // The token request may narrow the authorized resources, never add others.
        let (status, body) = request_token(
            &server,
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", crate::people::REDIRECT),
                ("code_verifier", crate::people::VERIFIER),
                ("resource", BILLING),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            jwt_claims(body["access_token"].as_str().unwrap())["aud"],
            BILLING
        );
        let refresh_token = body["refresh_token"].as_str().unwrap();
        let (status, body) = request_token(
            &server,
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            jwt_claims(body["access_token"].as_str().unwrap())["aud"],
            json!([INVENTORY, BILLING]),
            "the refresh token carries the whole authorization"
        );

        let mut browser = crate::people::Browser::new();
        let params = crate::people::code_flow(&server, &mut browser, &app, &other_user, &[]).await;
        let code = params["code"].clone();
        let (status, body) = request_token(
            &server,
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", crate::people::REDIRECT),
                ("code_verifier", crate::people::VERIFIER),
                ("resource", INVENTORY),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_target")),
            "an authorization without resources is for this server only"
        );
    }
);

/// The admin API, in JSON.
async fn admin(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let response = server
        .http
        .request(method, server.url(&format!("/api/admin/v1{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

server_test!(audiences_and_introspect_any_show_in_every_view, |server| {
    use reqwest::Method;
    let token = server.token_for_role("oauth_admin").await;

    // The admin API: created, shown, changed; duplicates, malformed URIs and public
    // introspectors refused.
    let (status, created) = admin(
        &server,
        Method::POST,
        "/apps",
        &token,
        json!({"name": "inventory", "client_id": "inventory",
                "grant_types": ["client_credentials"],
                "audiences": [INVENTORY_URN, INVENTORY], "introspect_any": true}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["audiences"], json!([INVENTORY, INVENTORY_URN]));
    assert_eq!(created["introspect_any"], true);
    let (_, shown) = admin(&server, Method::GET, "/apps/inventory", &token, Value::Null).await;
    assert_eq!(shown["audiences"], json!([INVENTORY, INVENTORY_URN]));
    for (body, expected) in [
        (
            json!({"name": "copy", "grant_types": ["client_credentials"],
                    "audiences": [INVENTORY]}),
            (409, "conflict"),
        ),
        (
            json!({"name": "bad", "audiences": ["inventory"]}),
            (400, "invalid_request"),
        ),
        (
            json!({"name": "bad", "audiences": ["https://a.example/#x"]}),
            (400, "invalid_request"),
        ),
        (
            json!({"name": "spa", "client_type": "public", "grant_types": ["implicit"],
                    "redirect_uris": ["https://spa.example/cb"], "introspect_any": true}),
            (400, "invalid_request"),
        ),
    ] {
        let (status, answer) = admin(&server, Method::POST, "/apps", &token, body).await;
        assert_eq!(
            (status, answer["error"].as_str().unwrap_or_default()),
            expected,
            "{answer}"
        );
    }
    let (status, changed) = admin(
        &server,
        Method::PATCH,
        "/apps/inventory",
        &token,
        json!({"audiences": [INVENTORY], "introspect_any": false}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["audiences"].clone(),
            changed["introspect_any"].clone()
        ),
        (json!([INVENTORY]), json!(false))
    );
    // Given up, the URN is free for another application.
    let (status, _) = admin(
        &server,
        Method::POST,
        "/apps",
        &token,
        json!({"name": "urn holder", "grant_types": ["client_credentials"],
                "audiences": [INVENTORY_URN]}),
    )
    .await;
    assert_eq!(status, 201);

    let document: Value = server
        .http
        .get(server.url("/api/admin/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for schema in ["AppInput", "AppView"] {
        let properties = &document["components"]["schemas"][schema]["properties"];
        for field in ["audiences", "introspect_any"] {
            assert!(properties.get(field).is_some(), "{schema}.{field}");
        }
    }

    // The CLI: flags, the JSON and the text view.
    let created = crate::cli::gatehouse(
        &server,
        &[
            "app",
            "create",
            "--name",
            "billing",
            "--grant",
            "client_credentials",
            "--audience",
            BILLING,
            "--introspect-any",
            "true",
            "--json",
        ],
        &[],
    )
    .await;
    assert!(created.status.success());
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["audiences"], json!([BILLING]));
    assert_eq!(created["introspect_any"], true);
    let client_id = created["client_id"].as_str().unwrap();
    let shown = crate::cli::gatehouse(&server, &["app", "show", client_id], &[]).await;
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains(&format!("audiences:              {BILLING}")),
        "{text}"
    );
    assert!(text.contains("introspect_any:         true"), "{text}");
    let taken = crate::cli::gatehouse(
        &server,
        &["app", "create", "--name", "twin", "--audience", BILLING],
        &[],
    )
    .await;
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("conflict"));
    let cleared = crate::cli::gatehouse(
        &server,
        &["app", "update", client_id, "--audience", "", "--json"],
        &[],
    )
    .await;
    let cleared: Value = serde_json::from_slice(&cleared.stdout).unwrap();
    assert_eq!(cleared["audiences"], json!([]));

    // The declarative file: applied, idempotent, and a change is reported by field.
    let file = |introspect_any: bool| {
        format!(
            r#"
[[application]]
name = "orders"
client_id = "orders"
client_secret = "orders-secret-with-more-than-32-characters"
grant_types = ["client_credentials"]
audiences = ["https://orders.example/api"]
introspect_any = {introspect_any}
"#
        )
    };
    crate::apply::apply(&server, &file(true), &[], &[]).await;
    let orders = server.services.registry.get_app("orders").await.unwrap();
    assert_eq!(orders.audiences, vec!["https://orders.example/api"]);
    assert!(orders.introspect_any);
    assert!(
        crate::apply::apply(&server, &file(true), &[], &[])
            .await
            .is_empty()
    );
    let changes = crate::apply::apply(&server, &file(false), &[], &[]).await;
    assert_eq!(changes[0]["fields"], json!(["introspect_any"]));
    // Tokens for the file's audience can be requested at once.
    let app = client_app(&server, TokenFormat::Jwt).await;
    let token = client_credentials(&server, &app, &["https://orders.example/api"]).await;
    assert_eq!(
        jwt_claims(token["access_token"].as_str().unwrap())["aud"],
        "https://orders.example/api"
    );
});
