//! Gateway routes: a real upstream server on 127.0.0.1 behind Gatehouse, reached only with a
//! valid token holding the scopes the rules ask for, and told who calls.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use gatehouse_core::access::{ScopeEntry, ScopeRule};
use gatehouse_core::client::TokenFormat;
use gatehouse_core::gateway::Route;
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, server_test};

/// An upstream that answers every request with what it received; under `/slow` it first waits
/// longer than the routes to it allow.
async fn start_upstream() -> SocketAddr {
    async fn echo(
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> ([(&'static str, &'static str); 1], axum::Json<Value>) {
        if uri.path().starts_with("/slow") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            [("set-cookie", "gatehouse_session=planted")],
            axum::Json(json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "user": header("x-gatehouse-user"),
            "client_id": header("x-gatehouse-client-id"),
            "scopes": header("x-gatehouse-scopes"),
            "authorization": header("authorization"),
            "cookie": header("cookie"),
            "body": String::from_utf8_lossy(&body),
            })),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Scopes inventory_read and inventory_write, rules asking for them under `/api/x/inventory`,
/// and routes to the upstream (`inventory`), to a slow path (`slow`, 1 s) and to a closed port
/// (`gone`).
async fn configure(server: &TestServer, upstream: SocketAddr) {
    let registry = &server.services.registry;
    for name in ["inventory_read", "inventory_write"] {
        registry
            .create_entry::<ScopeEntry>(json!({"name": name}), false)
            .await
            .unwrap();
    }
    for (name, methods, scope) in [
        ("inventory-read", json!(["GET"]), "inventory_read"),
        ("inventory-write", json!([]), "inventory_write"),
    ] {
        let rule = json!({"name": name, "methods": methods, "path": "/api/x/inventory/**",
            "scopes": [scope]});
        registry
            .create_entry::<ScopeRule>(rule, false)
            .await
            .unwrap();
    }
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    for (name, prefix, upstream, timeout) in [
        (
            "inventory",
            "/api/x/inventory",
            format!("http://{upstream}/v1"),
            10,
        ),
        ("slow", "/api/x/slow", format!("http://{upstream}/slow"), 1),
        ("gone", "/api/x/gone", format!("http://{closed}"), 10),
    ] {
        let route = json!({"name": name, "prefix": prefix, "upstream": upstream,
            "timeout_seconds": timeout});
        registry.create_entry::<Route>(route, false).await.unwrap();
    }
}

async fn clerk_app(server: &TestServer, format: TokenFormat) -> TestApp {
    server.user("clerk", &["itil"]).await;
    let scopes = ["inventory_read", "inventory_write", "useraccount"];
    server.app(format, &scopes, Some("clerk")).await
}

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let mut request = server
        .http
        .request(method, server.url(path))
        .header("x-gatehouse-user", "forged")
        .header("cookie", "gatehouse_session=secret")
        .body("hello upstream");
    if let Some(token) = token {
        request = request.bearer_auth(token);
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

server_test!(
    routes_forward_what_the_rules_allow_with_the_callers_identity,
    |server| {
        let upstream = start_upstream().await;
        configure(&server, upstream).await;
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            let app = clerk_app(&server, format).await;
            let reader = server.token(&app, Some("inventory_read")).await;
            let path = "/api/x/inventory/items/7?fields=name";
            let (status, headers, echoed) =
                send(&server, reqwest::Method::GET, path, Some(&reader)).await;
            assert_eq!(status, 200, "{format:?}: {echoed}");
            assert!(
                headers.get("set-cookie").is_none(),
                "no upstream cookie on Gatehouse's origin"
            );
            assert_eq!(echoed["path"], "/v1/items/7");
            assert_eq!(echoed["query"], "fields=name");
            assert_eq!(
                echoed["user"], "clerk",
                "the caller's own header is replaced"
            );
            assert_eq!(echoed["client_id"], app.client_id.as_str());
            assert_eq!(echoed["scopes"], "inventory_read");
            assert_eq!(
                echoed["authorization"],
                Value::Null,
                "the token stays at the gateway"
            );

            let (status, headers, body) = send(
                &server,
                reqwest::Method::POST,
                "/api/x/inventory/items",
                Some(&reader),
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("insufficient_scope"))
            );
            assert_eq!(
                headers["www-authenticate"],
                "Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"inventory_write\""
            );
            // Prefixes match literally: an encoded variant is no route, never an unchecked one.
            let (status, _, _) = send(
                &server,
                reqwest::Method::DELETE,
                "/api/x/%69nventory/items",
                Some(&reader),
            )
            .await;
            assert_eq!(status, 404, "no route has an encoded prefix");

            let writer = server.token(&app, Some("inventory_write")).await;
            let (status, _, echoed) = send(
                &server,
                reqwest::Method::POST,
                "/api/x/inventory/items",
                Some(&writer),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(
                (echoed["method"].as_str(), echoed["body"].as_str()),
                (Some("POST"), Some("hello upstream"))
            );

            // Revoked: refused at once, JWT or opaque.
            let revoked = server
                .http
                .post(server.url("/oauth/revoke"))
                .basic_auth(&app.client_id, Some(&app.secret))
                .form(&[("token", writer.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(revoked.status(), 200);
            let (status, headers, body) = send(
                &server,
                reqwest::Method::POST,
                "/api/x/inventory/items",
                Some(&writer),
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_token"))
            );
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("error=\"invalid_token\"")
            );
            server
                .services
                .registry
                .delete_app(&app.client_id)
                .await
                .unwrap();
            server.services.registry.delete_user("clerk").await.unwrap();
        }

        let (status, headers, body) =
            send(&server, reqwest::Method::GET, "/api/x/inventory", None).await;
        assert_eq!((status, &body), (401, &Value::Null));
        assert_eq!(headers["www-authenticate"], "Bearer realm=\"gatehouse\"");
        let (status, _, body) = send(
            &server,
            reqwest::Method::GET,
            "/api/x/inventory",
            Some("not-a-token"),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_token"))
        );
        let (status, _, body) = send(&server, reqwest::Method::GET, "/api/x/unrouted", None).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    }
);

server_test!(
    upstream_failures_are_502_and_504_without_details,
    |server| {
        let upstream = start_upstream().await;
        configure(&server, upstream).await;
        let app = clerk_app(&server, TokenFormat::Jwt).await;
        let token = server.token(&app, Some("useraccount")).await;
        let (status, _, body) =
            send(&server, reqwest::Method::GET, "/api/x/gone/a", Some(&token)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (502, Some("upstream_error"))
        );
        assert!(!body.to_string().contains("127.0.0.1"));
        let (status, _, body) =
            send(&server, reqwest::Method::GET, "/api/x/slow", Some(&token)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (504, Some("upstream_error"))
        );
    }
);

server_test!(expired_tokens_are_refused, |server| {
    let upstream = start_upstream().await;
    configure(&server, upstream).await;
    server.user("clerk", &["itil"]).await;
    let app = server
        .app_with(gatehouse_core::registry::AppChanges {
            name: Some("short-lived".into()),
            grant_types: Some(vec![gatehouse_core::client::GrantType::ClientCredentials]),
            allowed_scopes: Some(vec!["useraccount".into()]),
            access_token_lifespan: Some(1),
            token_format: Some(TokenFormat::Jwt),
            run_as: Some("clerk".into()),
            ..Default::default()
        })
        .await;
    let token = server.token(&app, None).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = send(
        &server,
        reqwest::Method::GET,
        "/api/x/inventory",
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
});

server_test!(
    third_party_tokens_are_honoured_with_their_scopes,
    |server| {
        use gatehouse_core::federation::jose::JwsAlgorithm;
        use gatehouse_core::federation::{JwtProviderChanges, KeySource, NewJwtProvider};
        use jsonwebtoken::{Algorithm, Header};

        use crate::federation::{TestKey, now};

        let upstream = start_upstream().await;
        configure(&server, upstream).await;
        server.user("carol", &["itil"]).await;
        let (key, pem) = TestKey::ec_with_pem("corp");
        let issuer = "https://corp.idp.example/oauth2/default";
        let provider = NewJwtProvider {
            name: "corp".into(),
            fields: JwtProviderChanges {
                issuer: Some(issuer.into()),
                audiences: Some(vec!["api://gatehouse".into()]),
                key_source: Some(KeySource::Static(pem)),
                algorithms: Some(vec![JwsAlgorithm::ES256]),
                api_access: Some(true),
                api_scopes: Some(vec!["inventory_read".into(), "inventory_write".into()]),
                ..JwtProviderChanges::default()
            },
        };
        server
            .services
            .registry
            .create_jwt_provider(provider, false)
            .await
            .unwrap();
        let token = |scope: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.typ = Some("at+jwt".into());
            let claims = json!({"iss": issuer, "sub": "carol", "aud": "api://gatehouse",
            "iat": now(), "exp": now() + 300, "scp": scope, "cid": "corp-app"});
            jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
        };

        let reader = token("inventory_read");
        let (status, _, echoed) = send(
            &server,
            reqwest::Method::GET,
            "/api/x/inventory/items",
            Some(&reader),
        )
        .await;
        assert_eq!(status, 200, "{echoed}");
        assert_eq!(echoed["user"], "carol");
        assert_eq!(echoed["client_id"], "corp-app");
        assert_eq!(echoed["scopes"], "inventory_read");
        let (status, headers, _) = send(
            &server,
            reqwest::Method::POST,
            "/api/x/inventory/items",
            Some(&reader),
        )
        .await;
        assert_eq!(status, 403);
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("scope=\"inventory_write\"")
        );
        // Only the scopes the provider is trusted for count: useraccount is dropped.
        let writer = token("inventory_write useraccount");
        let (status, _, echoed) = send(
            &server,
            reqwest::Method::POST,
            "/api/x/inventory/items",
            Some(&writer),
        )
        .await;
        assert_eq!(status, 200, "{echoed}");
        assert_eq!(echoed["scopes"], "inventory_write");
        let (status, _, _) = send(
            &server,
            reqwest::Method::GET,
            "/api/x/inventory/items",
            Some(&writer),
        )
        .await;
        assert_eq!(status, 403, "inventory_write does not read");
    }
);
