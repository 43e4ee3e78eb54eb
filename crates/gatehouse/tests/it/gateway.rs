//! Gateway routes: a real upstream server on 127.0.0.1 behind Gatehouse, reached only with a
//! valid token holding the scopes the rules ask for, and told who calls.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use gatehouse_core::access::{ScopeEntry, ScopeRule};
use gatehouse_core::client::TokenFormat;
use gatehouse_core::gateway::Route;
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, server_test};

/// An upstream on 127.0.0.1 that answers every request with what it received (the path as
/// sent, every header) and keeps a copy; under `/slow` it first waits longer than the routes to
/// it allow. Its answers set a cookie and a lax content security policy, which Gatehouse must
/// not relay.
pub(crate) struct Upstream {
    pub(crate) address: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Upstream {
    pub(crate) fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

pub(crate) async fn start_upstream() -> Upstream {
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let echo = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
        if uri.path().starts_with("/slow") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let all: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let echoed = json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "user": header("x-gatehouse-user"),
            "client_id": header("x-gatehouse-client-id"),
            "scopes": header("x-gatehouse-scopes"),
            "authorization": header("authorization"),
            "cookie": header("cookie"),
            "headers": all,
            "body": String::from_utf8_lossy(&body),
        });
        log.lock().unwrap().push(echoed.clone());
        (
            [
                ("set-cookie", "gatehouse_session=planted"),
                ("content-security-policy", "script-src *"),
                ("content-security-policy-report-only", "default-src *"),
            ],
            axum::Json(echoed),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream { address, received }
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
        configure(&server, upstream.address).await;
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
                server
                    .challenge(
                        ", error=\"insufficient_scope\", scope=\"inventory_write\"",
                        "/api/x/inventory"
                    )
                    .as_str()
            );
            // An encoded spelling of the prefix is the same route under the same rules.
            let (status, _, body) = send(
                &server,
                reqwest::Method::DELETE,
                "/api/x/%69nventory/items",
                Some(&reader),
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("insufficient_scope"))
            );

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
        assert_eq!(
            headers["www-authenticate"],
            server.challenge("", "/api/x/inventory").as_str()
        );
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
        configure(&server, upstream.address).await;
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
    configure(&server, upstream.address).await;
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
        configure(&server, upstream.address).await;
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
        // The provider's client identifier reaches the upstream under the provider's name.
        assert_eq!(echoed["client_id"], "corp:corp-app");
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

/// An answer read off the socket.
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Value,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET target` over a plain TCP connection, the target and `headers` exactly as given, so
/// no client library normalises them.
pub(crate) async fn raw_get(
    server: &TestServer,
    target: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let address = server.settings.listen;
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    RawResponse {
        status,
        headers,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    }
}

/// The payload of a chunked body (RFC 9112 §7.1).
fn dechunk(mut body: &str) -> String {
    let mut payload = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return payload;
        }
        payload.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// Scopes shop_read and shop_admin; a permissive rule (`/api/x/shop/**` needs shop_read), a
/// strict one (`/api/x/shop/admin/**` needs shop_admin), and the route `/api/x/shop` to the
/// upstream's `/v1`. Returns the shop application.
async fn configure_shop(server: &TestServer, upstream: SocketAddr) -> TestApp {
    let registry = &server.services.registry;
    for name in ["shop_read", "shop_admin"] {
        registry
            .create_entry::<ScopeEntry>(json!({"name": name}), false)
            .await
            .unwrap();
    }
    for (name, path, scope) in [
        ("shop", "/api/x/shop/**", "shop_read"),
        ("shop-admin", "/api/x/shop/admin/**", "shop_admin"),
    ] {
        let rule = json!({"name": name, "path": path, "scopes": [scope]});
        registry
            .create_entry::<ScopeRule>(rule, false)
            .await
            .unwrap();
    }
    let route = json!({"name": "shop", "prefix": "/api/x/shop",
        "upstream": format!("http://{upstream}/v1")});
    registry.create_entry::<Route>(route, false).await.unwrap();
    server.user("clerk", &["itil"]).await;
    server
        .app(
            TokenFormat::Jwt,
            &["shop_read", "shop_admin"],
            Some("clerk"),
        )
        .await
}

/// What a crafted target must lead to.
enum Outcome {
    /// `400 invalid_request`, before any rule runs.
    Refused,
    /// The strict rule's `403`.
    Strict,
    /// Forwarded; the upstream received this path (and query).
    Upstream(&'static str, Option<&'static str>),
}

server_test!(
    crafted_paths_are_refused_or_meet_the_rule_of_the_path_served,
    |server| {
        use Outcome::{Refused, Strict, Upstream as Sent};

        let upstream = start_upstream().await;
        let app = configure_shop(&server, upstream.address).await;
        let reader = server.token(&app, Some("shop_read")).await;
        let address = server.settings.listen;
        let absolute = |path: &str| format!("http://{address}{path}");
        let cases: Vec<(String, Outcome)> = vec![
            ("/api/x/shop/items/7".into(), Sent("/v1/items/7", None)),
            (
                "/api/x/shop/items/a%20b?q=%2e%2e/x".into(),
                Sent("/v1/items/a%20b", Some("q=%2e%2e/x")),
            ),
            (
                "/api/x/shop/it%65ms/caf%C3%A9".into(),
                Sent("/v1/items/caf%C3%A9", None),
            ),
            (
                "/api/x/shop/items/it's:a@b".into(),
                Sent("/v1/items/it%27s%3Aa%40b", None),
            ),
            (
                "/api/x/shop/..items/.x/...".into(),
                Sent("/v1/..items/.x/...", None),
            ),
            ("/api/x/shop".into(), Sent("/v1", None)),
            // The strict rule, however its path is spelled.
            ("/api/x/shop/admin/users".into(), Strict),
            ("/api/x/shop/admin".into(), Strict),
            ("/api/x/shop/%61dmin/users".into(), Strict),
            ("/api/x/sh%6Fp/%61%64%6D%69%6E".into(), Strict),
            (absolute("/api/x/shop/admin/users"), Strict),
            // Dot segments in every spelling.
            ("/api/x/shop/items/../admin/users".into(), Refused),
            ("/api/x/shop/./admin/users".into(), Refused),
            ("/api/x/shop/items/%2e%2e/admin/users".into(), Refused),
            ("/api/x/shop/items/%2E%2e/admin".into(), Refused),
            ("/api/x/shop/items/.%2E/admin".into(), Refused),
            ("/api/x/shop/items/%2e./admin".into(), Refused),
            ("/api/x/shop/%2e/admin".into(), Refused),
            ("/api/x/shop/admin/..".into(), Refused),
            ("/api/x/shop/items/%252e%252e/admin".into(), Refused),
            ("/api/x/shop/items/%c0%ae%c0%ae/admin".into(), Refused),
            (absolute("/api/x/shop/items/%2e%2e/admin"), Refused),
            // Encoded slashes and backslashes, any case, and literal backslashes.
            ("/api/x/shop/admin%2Fusers".into(), Refused),
            ("/api/x/shop/items%2f..%2fadmin".into(), Refused),
            ("/api/x/shop/items%5C..%5Cadmin".into(), Refused),
            ("/api/x/shop/items%5c..%5cadmin".into(), Refused),
            ("/api/x/shop/items\\..\\admin".into(), Refused),
            ("/api/x/shop/admin\\users".into(), Refused),
            // Path parameters.
            ("/api/x/shop/admin;x=1/users".into(), Refused),
            ("/api/x/shop/items;/../admin".into(), Refused),
            ("/api/x/shop/admin%3Busers".into(), Refused),
            // Empty segments, a trailing slash among them.
            ("//api/x/shop/admin/users".into(), Refused),
            ("/api/x/shop//admin/users".into(), Refused),
            ("/api/x//shop/admin".into(), Refused),
            ("/api/x/shop/items/".into(), Refused),
            // Bytes some servers truncate at or split on.
            ("/api/x/shop/items%00/admin".into(), Refused),
            (
                "/api/x/shop/items%0d%0aX-Gatehouse-User:%20root".into(),
                Refused,
            ),
            ("/api/x/shop/items%zz".into(), Refused),
        ];
        for (target, outcome) in cases {
            let before = upstream.received().len();
            let response = raw_get(&server, &target, &reader, &[]).await;
            let received = upstream.received();
            match outcome {
                Refused => {
                    assert_eq!(
                        (response.status, response.body["error"].as_str()),
                        (400, Some("invalid_request")),
                        "{target}"
                    );
                    assert_eq!(received.len(), before, "{target} reached the upstream");
                }
                Strict => {
                    assert_eq!(
                        (response.status, response.body["error"].as_str()),
                        (403, Some("insufficient_scope")),
                        "{target}"
                    );
                    let challenge = server.challenge(
                        ", error=\"insufficient_scope\", scope=\"shop_admin\"",
                        "/api/x/shop",
                    );
                    assert_eq!(
                        response.header("www-authenticate"),
                        Some(challenge.as_str()),
                        "{target}"
                    );
                    assert_eq!(received.len(), before, "{target} reached the upstream");
                }
                Sent(path, query) => {
                    assert_eq!(response.status, 200, "{target}: {}", response.body);
                    assert_eq!(received.len(), before + 1, "{target}");
                    let echoed = &received[before];
                    assert_eq!(echoed["path"], path, "{target}");
                    assert_eq!(echoed["query"].as_str(), query, "{target}");
                    assert_eq!(response.body, *echoed, "{target}");
                }
            }
        }

        // With the strict rule's scope, encoded spellings reach the one canonical path.
        let admin = server.token(&app, Some("shop_read shop_admin")).await;
        let response = raw_get(&server, "/api/x/sh%6Fp/%61dmin/us%65rs", &admin, &[]).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body["path"], "/v1/admin/users");
    }
);

server_test!(gatehouses_own_apis_take_only_canonical_paths, |server| {
    let admin = server.token_for_role("admin").await;
    server
        .services
        .registry
        .create_entry::<gatehouse_core::table::TableDef>(
            json!({"name": "incident", "read_roles": ["admin"], "write_roles": ["admin"]}),
            false,
        )
        .await
        .unwrap();
    for (target, status) in [
        ("/api/admin/v1/scopes", 200),
        ("/api/now/table/incident", 200),
        ("/api/admin/v1/scopes/%2e%2e", 400),
        ("/api/admin/v1/scopes/useraccount%2F..", 400),
        ("/api/admin/v1/scopes/useraccount;x", 400),
        ("/api/admin/v1//scopes", 400),
        ("/api/now/table/incident/", 400),
        ("/api/now/table/%2E%2E", 400),
        ("/api/now/table/incident%5Cx", 400),
        ("/api/outbound/some-alias/%2e%2e/admin", 400),
        ("/api/outbound/some-alias/a%2fb", 400),
        ("/api/outbound/some-alias//a", 400),
    ] {
        let response = raw_get(&server, target, &admin, &[]).await;
        assert_eq!(response.status, status, "{target}: {}", response.body);
        if status == 400 {
            assert_eq!(response.body["error"], "invalid_request", "{target}");
        }
    }
});

/// The values of every header the upstream received whose name, with `_` read as `-`, is
/// `name`.
fn received_headers(echoed: &Value, name: &str) -> Vec<String> {
    echoed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().replace('_', "-") == name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// Headers a caller sends that upstream frameworks read as identity, method, path or origin.
const FORGED: [(&str, &str); 17] = [
    ("X-Gatehouse-User", "forged"),
    ("X-Gatehouse_User", "forged"),
    ("x_gatehouse_user", "forged"),
    ("X-GATEHOUSE-CLIENT-ID", "forged"),
    ("x_gatehouse_scopes", "shop_admin"),
    ("X-Gatehouse-Roles", "admin"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X_HTTP_Method_Override", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Original-URL", "/v1/admin/users"),
    ("x_original_url", "/v1/admin/users"),
    ("X-Rewrite-URL", "/v1/admin/users"),
    ("X-Forwarded-For", "6.6.6.6"),
    ("X_Forwarded_For", "6.6.6.6"),
    ("Forwarded", "for=6.6.6.6"),
    ("X-Real-IP", "6.6.6.6"),
    ("X-Forwarded-Host", "evil.example"),
];

/// What the upstream receives for a request with every [`FORGED`] header and a harmless one.
async fn forward_forged(server: &TestServer, upstream: &Upstream, extra: &[(&str, &str)]) -> Value {
    let app = configure_shop(server, upstream.address).await;
    let token = server.token(&app, Some("shop_read")).await;
    let mut headers = FORGED.to_vec();
    headers.push(("X-Request-Label", "kept"));
    headers.extend_from_slice(extra);
    let response = raw_get(server, "/api/x/shop/items", &token, &headers).await;
    assert_eq!(response.status, 200, "{}", response.body);
    // Relayed answers are data on Gatehouse's origin, whatever the upstream asked for.
    assert_eq!(
        response.header("content-security-policy"),
        Some("sandbox; default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("content-security-policy-report-only"), None);
    assert_eq!(response.header("set-cookie"), None);
    let echoed = upstream.received().pop().unwrap();
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["path"], "/v1/items");
    assert_eq!(received_headers(&echoed, "x-gatehouse-user"), ["clerk"]);
    assert_eq!(
        received_headers(&echoed, "x-gatehouse-client-id"),
        [app.client_id.as_str()]
    );
    assert_eq!(
        received_headers(&echoed, "x-gatehouse-scopes"),
        ["shop_read"]
    );
    for name in [
        "x-gatehouse-roles",
        "x-http-method-override",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-real-ip",
    ] {
        assert!(received_headers(&echoed, name).is_empty(), "{name}");
    }
    assert_eq!(received_headers(&echoed, "x-request-label"), ["kept"]);
    echoed
}

server_test!(
    headers_naming_identity_method_or_path_stay_behind,
    |server| {
        let upstream = start_upstream().await;
        let echoed = forward_forged(&server, &upstream, &[]).await;
        // From an untrusted peer, the peer alone is the chain.
        assert_eq!(received_headers(&echoed, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(received_headers(&echoed, "forwarded"), ["for=127.0.0.1"]);
        assert!(received_headers(&echoed, "x-forwarded-host").is_empty());
    }
);

server_test!(
    a_trusted_proxy_s_chain_is_extended,
    configured(|settings| {
        settings.trusted_proxies =
            gatehouse_core::forwarding::TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
    }),
    |server| {
        let upstream = start_upstream().await;
        let echoed = forward_forged(
            &server,
            &upstream,
            &[
                ("X-Forwarded-For", "198.51.100.7, 2001:db8::1"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
        // Each X-Forwarded-For line is part of the chain; Gatehouse's peer comes last.
        assert_eq!(
            received_headers(&echoed, "x-forwarded-for"),
            ["6.6.6.6, 198.51.100.7, 2001:db8::1, 127.0.0.1"]
        );
        assert_eq!(
            received_headers(&echoed, "forwarded"),
            ["for=6.6.6.6, for=198.51.100.7, for=\"[2001:db8::1]\", for=127.0.0.1"]
        );
        // The proxy's word on the scheme and host passes; spellings with `_` never do.
        assert_eq!(received_headers(&echoed, "x-forwarded-proto"), ["https"]);
        assert_eq!(
            received_headers(&echoed, "x-forwarded-host"),
            ["evil.example"]
        );
    }
);

server_test!(
    each_route_and_the_server_publish_protected_resource_metadata,
    |server| {
        let upstream = start_upstream().await;
        configure(&server, upstream.address).await;
        let (status, own) = server
            .get_json("/.well-known/oauth-protected-resource")
            .await;
        assert_eq!(status, 200);
        assert_eq!(own["resource"], server.base.as_str());
        assert_eq!(own["authorization_servers"], json!([server.base]));
        assert_eq!(own["bearer_methods_supported"], json!(["header"]));
        assert!(
            own["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("inventory_read"))
        );

        // A client that meets a route's challenge follows it to the route's metadata, whose
        // resource is the URL it called under (RFC 9728 §3.3).
        let (status, headers, _) = send(
            &server,
            reqwest::Method::GET,
            "/api/x/inventory/items",
            None,
        )
        .await;
        assert_eq!(status, 401);
        let challenge = headers["www-authenticate"].to_str().unwrap();
        let url = challenge
            .split("resource_metadata=\"")
            .nth(1)
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{challenge}"));
        assert_eq!(
            url,
            server.url("/.well-known/oauth-protected-resource/api/x/inventory")
        );
        let (status, route) = server
            .get_json(url.strip_prefix(server.base.as_str()).unwrap())
            .await;
        assert_eq!(status, 200);
        assert_eq!(route["resource"], server.url("/api/x/inventory"));
        assert_eq!(route["resource_name"], "inventory");
        assert_eq!(
            route["scopes_supported"],
            json!(["inventory_read", "inventory_write", "useraccount"])
        );
        // Only what is a resource has metadata.
        for path in ["/api/x", "/api/x/inventory/items", "/api/x/nowhere"] {
            let metadata = format!("/.well-known/oauth-protected-resource{path}");
            assert_eq!(server.get_json(&metadata).await.0, 404, "{path}");
        }
    }
);
