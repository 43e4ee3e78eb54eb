//! Outbound OAuth against a second Gatehouse on 127.0.0.1 as the external provider (and its
//! admin API as the external API): client credentials, password and refresh, the proxy
//! endpoint and `gatehouse call`, single flight, renewal after a 401, and providers that are
//! down, slow or answer garbage.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use gatehouse_core::client::{GrantType, TokenFormat};
use gatehouse_core::clock::Clock;
use gatehouse_core::federation::{JwtProviderChanges, KeySource, NewJwtProvider};
use gatehouse_core::outbound::{
    ClientAuthMethod, ConnectionAlias, OAuthProfile, OutboundRegistry, ProviderSpec, ResolvedAlias,
    SYSTEM_OWNER,
};
use gatehouse_core::registry::{AppChanges, NewApp};
use gatehouse_core::secret::Secret;
use gatehouse_remote::fetch::{Fetcher, Limits};
use gatehouse_remote::outbound::probe::Step;
use gatehouse_remote::outbound::{OutboundClient, OutboundError, TokenSource};
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin_api::call;
use crate::cli::gatehouse;
use crate::harness::{Backend, TestApp, TestServer, post_form, server_test, uuid_like};
use crate::people::{Browser, PASSWORD};

/// The external provider: another Gatehouse, with a service user whose tokens may call its
/// admin API, and a client-credentials application acting as that user.
pub(crate) struct Provider {
    pub(crate) server: TestServer,
    pub(crate) app: TestApp,
}

pub(crate) async fn provider() -> Provider {
    let server = TestServer::start(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    server.user("integration-svc", &["oauth_admin"]).await;
    let app = server
        .app(
            TokenFormat::Opaque,
            &["useraccount"],
            Some("integration-svc"),
        )
        .await;
    Provider { server, app }
}

/// Token requests the provider has answered for `grant_type`, whatever the outcome.
pub async fn token_requests(provider: &TestServer, grant_type: &str) -> u64 {
    let metrics = provider
        .http
        .get(provider.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("gatehouse_token_requests_total{{grant_type=\"{grant_type}\",");
    metrics
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub(crate) fn provider_spec(name: &str, token_url: String, app: &TestApp) -> ProviderSpec {
    ProviderSpec {
        name: name.into(),
        token_url,
        authorization_url: None,
        client_id: app.client_id.clone(),
        client_secret: Some(Secret::new(app.secret.clone())),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        grant: GrantType::ClientCredentials,
        audience: None,
        resource: None,
        username: None,
        password: None,
        signing_alg: None,
        issuer: None,
        authorization_response_iss_parameter_supported: false,
    }
}

/// An application at the provider for the password grant with refresh tokens, its access
/// tokens living ten minutes, and provider `name` obtaining them as the service user.
pub(crate) async fn password_provider(provider: &Provider, name: &str) -> (TestApp, ProviderSpec) {
    let app = provider
        .server
        .app_with(AppChanges {
            name: Some("password app".into()),
            grant_types: Some(vec![GrantType::Password, GrantType::RefreshToken]),
            allowed_scopes: Some(vec!["useraccount".into()]),
            access_token_lifespan: Some(600),
            ..AppChanges::default()
        })
        .await;
    let mut spec = provider_spec(name, provider.server.url("/oauth/token"), &app);
    spec.grant = GrantType::Password;
    spec.auth_method = ClientAuthMethod::ClientSecretPost;
    spec.username = Some("integration-svc".into());
    spec.password = Some(Secret::new(PASSWORD));
    (app, spec)
}

/// Registers provider, profile and alias `name` on `server`, the alias pointing at the
/// provider's admin API and open to the `integration` role.
pub(crate) async fn connect(
    server: &TestServer,
    name: &str,
    spec: ProviderSpec,
    api_base: String,
) -> ResolvedAlias {
    let registry = server.services.outbound.registry();
    registry.save_provider(spec).await.expect("provider");
    let entries = &server.services.registry;
    entries
        .save_entry::<OAuthProfile>(json!({
            "name": name, "provider": name, "scopes": ["useraccount"],
        }))
        .await
        .expect("profile");
    entries
        .save_entry::<ConnectionAlias>(json!({
            "name": name, "base_url": api_base, "profile": name,
            "allowed_roles": ["integration"], "timeout_seconds": 2, "max_retries": 1,
        }))
        .await
        .expect("alias");
    resolve(server, name).await
}

/// The alias `name` with its profile and provider, as a call through it finds them.
async fn resolve(server: &TestServer, name: &str) -> ResolvedAlias {
    let catalog = server.services.registry.catalog().await.unwrap();
    server
        .services
        .outbound
        .registry()
        .resolve_alias(&catalog, name)
        .await
        .unwrap()
}

async fn proxy_get(server: &TestServer, path: &str, token: &str) -> (u16, Value) {
    let response = server
        .http
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

server_test!(
    client_credentials_token_serves_the_proxy_and_stays_sealed,
    |server| {
        let provider = provider().await;
        let resolved = connect(
            &server,
            "crm",
            provider_spec("crm", provider.server.url("/oauth/token"), &provider.app),
            provider.server.url("/api/admin/v1"),
        )
        .await;
        let caller = server.token_for_role("integration").await;

        let (status, body) = proxy_get(&server, "/api/outbound/crm/whoami", &caller).await;
        assert_eq!(status, 200, "{body}");
        // The provider saw the alias' token (its own application), not the caller's.
        assert_eq!(body["client_id"], provider.app.client_id);
        assert_eq!(body["user_name"], "integration-svc");
        let (status, _) = proxy_get(&server, "/api/outbound/crm/whoami?x=1", &caller).await;
        assert_eq!(status, 200);
        // Any spelling of the path is the one canonical path, the alias's name included.
        let (status, same) = proxy_get(&server, "/api/outbound/cr%6D/wh%6Fami", &caller).await;
        assert_eq!((status, &same), (200, &body));
        assert_eq!(
            token_requests(&provider.server, "client_credentials").await,
            1
        );

        // At rest the token is sealed: its text appears nowhere in the record.
        let registry = server.services.outbound.registry();
        let record = registry
            .find_token("crm", SYSTEM_OWNER)
            .await
            .unwrap()
            .expect("stored");
        let clear = registry.open_token(&record).unwrap();
        let needle = clear.access_token.expose().as_bytes();
        assert!(
            !record
                .access_token_sealed
                .windows(needle.len())
                .any(|w| w == needle)
        );
        // No API shows the client secret back.
        let admin = server.token_for_role("admin").await;
        let (status, view) =
            proxy_get(&server, "/api/admin/v1/outbound/providers/crm", &admin).await;
        assert_eq!(status, 200);
        assert_eq!(view["has_secret"], true);
        assert!(!view.to_string().contains(&provider.app.secret));

        // A user without one of the alias' roles is refused, and nothing is fetched for them.
        let outsider = server.token_for_role("someone_else").await;
        let (status, body) = proxy_get(&server, "/api/outbound/crm/whoami", &outsider).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = proxy_get(&server, "/api/outbound/nope/whoami", &caller).await;
        assert_eq!(status, 404, "{body}");

        // A restart (a new client over the same database) uses the stored token.
        let restarted = OutboundClient::new(
            OutboundRegistry::new(
                server.services.store.clone(),
                server.services.sealer.clone(),
                Arc::new(gatehouse_core::clock::SystemClock),
            ),
            Fetcher::new(Limits::default()).unwrap(),
        );
        let token = restarted
            .access_token(&resolved, SYSTEM_OWNER)
            .await
            .unwrap();
        assert_eq!(token, clear.access_token);
        assert_eq!(
            token_requests(&provider.server, "client_credentials").await,
            1
        );

        // A test of the alias after another restart says where the token came from: the
        // database, then memory.
        let probing = OutboundClient::new(
            OutboundRegistry::new(
                server.services.store.clone(),
                server.services.sealer.clone(),
                Arc::new(gatehouse_core::clock::SystemClock),
            ),
            Fetcher::new(Limits::default()).unwrap(),
        );
        let mut sources = Vec::new();
        for _ in 0..2 {
            let probe = probing
                .probe(&server.services.registry, "crm", "whoami")
                .await
                .unwrap();
            assert!(probe.reached(), "{probe:?}");
            match &probe.steps[..] {
                [
                    Step::Token { outcome, .. },
                    Step::Upstream {
                        outcome: Ok(200), ..
                    },
                ] => sources.push(outcome.clone().unwrap()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sources, [TokenSource::Stored, TokenSource::Memory]);
        assert_eq!(
            token_requests(&provider.server, "client_credentials").await,
            1
        );
    }
);

server_test!(hundred_concurrent_calls_make_one_token_request, |server| {
    let provider = provider().await;
    connect(
        &server,
        "erp",
        provider_spec("erp", provider.server.url("/oauth/token"), &provider.app),
        provider.server.url("/api/admin/v1"),
    )
    .await;
    let caller = server.token_for_role("integration").await;
    let url = server.url("/api/outbound/erp/whoami");
    let calls = (0..100).map(|_| {
        let request = server.http.get(&url).bearer_auth(&caller).send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = all_concurrently(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        token_requests(&provider.server, "client_credentials").await,
        1
    );
});

/// Runs the futures concurrently on the runtime and collects their results in order.
async fn all_concurrently<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

server_test!(
    a_rejected_token_is_renewed_once_and_the_call_retried,
    |server| {
        let provider = provider().await;
        let resolved = connect(
            &server,
            "hr",
            provider_spec("hr", provider.server.url("/oauth/token"), &provider.app),
            provider.server.url("/api/admin/v1"),
        )
        .await;
        let caller = server.token_for_role("integration").await;
        let (status, _) = proxy_get(&server, "/api/outbound/hr/whoami", &caller).await;
        assert_eq!(status, 200);
        // The provider revokes the token long before it expires.
        let first = server
            .services
            .outbound
            .access_token(&resolved, SYSTEM_OWNER)
            .await
            .unwrap();
        let (status, _, _) = post_form(
            &provider.server,
            "/oauth/revoke",
            Some((&provider.app.client_id, &provider.app.secret)),
            &[("token", first.expose())],
        )
        .await;
        assert_eq!(status, 200);

        let (status, body) = proxy_get(&server, "/api/outbound/hr/whoami", &caller).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            token_requests(&provider.server, "client_credentials").await,
            2
        );
        let second = server
            .services
            .outbound
            .access_token(&resolved, SYSTEM_OWNER)
            .await
            .unwrap();
        assert_ne!(first, second);
    }
);

/// A clock the test moves, so expiry needs no sleeping.
pub struct TestClock(pub AtomicI64);

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

server_test!(
    password_grant_tokens_are_refreshed_and_re_requested_when_refresh_fails,
    |server| {
        let provider = provider().await;
        let (app, spec) = password_provider(&provider, "files").await;
        let resolved = connect(&server, "files", spec, provider.server.url("/api/admin/v1")).await;

        let now = gatehouse_core::clock::SystemClock.now();
        let clock = Arc::new(TestClock(AtomicI64::new(now)));
        let outbound_client = OutboundClient::new(
            OutboundRegistry::new(
                server.services.store.clone(),
                server.services.sealer.clone(),
                clock.clone(),
            ),
            Fetcher::new(Limits::default()).unwrap(),
        );
        let first = outbound_client
            .access_token(&resolved, SYSTEM_OWNER)
            .await
            .unwrap();
        assert_eq!(token_requests(&provider.server, "password").await, 1);
        // Within its life the token is reused.
        clock.0.store(now + 300, Ordering::SeqCst);
        assert_eq!(
            outbound_client
                .access_token(&resolved, SYSTEM_OWNER)
                .await
                .unwrap(),
            first
        );
        // In its last minute it is refreshed with the refresh token.
        clock.0.store(now + 541, Ordering::SeqCst);
        let refreshed = outbound_client
            .access_token(&resolved, SYSTEM_OWNER)
            .await
            .unwrap();
        assert_ne!(refreshed, first);
        assert_eq!(token_requests(&provider.server, "refresh_token").await, 1);
        assert_eq!(token_requests(&provider.server, "password").await, 1);

        // When the provider no longer accepts the refresh token, the password grant runs again.
        let registry = outbound_client.registry();
        let stored = registry
            .open_token(
                &registry
                    .find_token("files", SYSTEM_OWNER)
                    .await
                    .unwrap()
                    .unwrap(),
            )
            .unwrap();
        let refresh_token = stored.refresh_token.expect("a refresh token");
        let (status, _, _) = post_form(
            &provider.server,
            "/oauth/revoke",
            Some((&app.client_id, &app.secret)),
            &[("token", refresh_token.expose())],
        )
        .await;
        assert_eq!(status, 200);
        clock.0.store(now + 541 + 541, Ordering::SeqCst);
        let again = outbound_client
            .access_token(&resolved, SYSTEM_OWNER)
            .await
            .unwrap();
        assert_ne!(again, refreshed);
        assert_eq!(token_requests(&provider.server, "refresh_token").await, 2);
        assert_eq!(token_requests(&provider.server, "password").await, 2);
    }
);

server_test!(
    gatehouse_call_prints_the_body_or_one_line_with_the_provider_error,
    |server| {
        let provider = provider().await;
        connect(
            &server,
            "billing",
            provider_spec(
                "billing",
                provider.server.url("/oauth/token"),
                &provider.app,
            ),
            provider.server.url("/api/admin/v1"),
        )
        .await;
        let output = gatehouse(&server, &["call", "billing", "whoami"], &[]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let body: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(body["client_id"], provider.app.client_id);
        // A path that climbs out of the base URL is refused before anything is sent.
        let output = gatehouse(&server, &["call", "billing", "../../metrics"], &[]).await;
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("leaves the alias' base URL"));

        // A wrong secret: the provider's own error, on one line, and a failing exit status.
        let mut wrong = provider_spec(
            "billing",
            provider.server.url("/oauth/token"),
            &provider.app,
        );
        wrong.client_secret = Some(Secret::new("x".repeat(43)));
        server
            .services
            .outbound
            .registry()
            .save_provider(wrong)
            .await
            .unwrap();
        let output = gatehouse(&server, &["call", "billing", "GET", "/whoami"], &[]).await;
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("invalid_client"), "{stderr}");
        assert!(
            server
                .services
                .outbound
                .registry()
                .find_token("billing", SYSTEM_OWNER)
                .await
                .unwrap()
                .is_none()
        );
    }
);

/// A provider that accepts connections and answers whatever `answer` says, counting requests.
async fn fake_provider(answer: Option<&'static str>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut open = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            match answer {
                Some(text) => {
                    let _ = socket.write_all(text.as_bytes()).await;
                }
                // Never answers: the connection is kept open and silent.
                None => open.push(socket),
            }
        }
    });
    (format!("http://{address}/token"), count)
}

server_test!(
    providers_down_slow_or_garbled_give_clear_errors_and_store_nothing,
    |server| {
        let provider = provider().await;
        let caller = server.token_for_role("integration").await;
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/token", listener.local_addr().unwrap())
        };
        let (silent, _) = fake_provider(None).await;
        let (html, _) = fake_provider(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html></html>",
    ))
    .await;
        let (no_token, _) = fake_provider(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 22\r\nconnection: close\r\n\r\n{\"token_type\":\"Bearer\"}",
    ))
    .await;
        let (busy, busy_count) = fake_provider(Some(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ))
    .await;
        let cases = [
            ("down", closed, 502, "could not connect"),
            ("slow", silent, 504, "no answer within the time limit"),
            ("garbled", html, 502, "not a token response"),
            ("tokenless", no_token, 502, "not a token response"),
            ("busy", busy, 502, "answered HTTP 503"),
        ];
        for (name, token_url, status, message) in cases {
            connect(
                &server,
                name,
                provider_spec(name, token_url, &provider.app),
                provider.server.url("/api/admin/v1"),
            )
            .await;
            let (got, body) =
                proxy_get(&server, &format!("/api/outbound/{name}/whoami"), &caller).await;
            assert_eq!(got, status, "{name}: {body}");
            assert_eq!(body["error"], "upstream_error", "{name}");
            let description = body["error_description"].as_str().unwrap();
            assert!(description.contains(message), "{name}: {description}");
            assert!(
                server
                    .services
                    .outbound
                    .registry()
                    .find_token(name, SYSTEM_OWNER)
                    .await
                    .unwrap()
                    .is_none(),
                "{name}"
            );
        }
        // A server error is retried as the alias says (one retry), honouring Retry-After.
        assert_eq!(busy_count.load(Ordering::SeqCst), 2);

        // The same through the client: the provider's refusal carries its error code.
        let resolved = connect(
            &server,
            "refused",
            {
                let mut spec = provider_spec(
                    "refused",
                    provider.server.url("/oauth/token"),
                    &provider.app,
                );
                spec.client_secret = Some(Secret::new(uuid_like()));
                spec
            },
            provider.server.url("/api/admin/v1"),
        )
        .await;
        match server
            .services
            .outbound
            .access_token(&resolved, SYSTEM_OWNER)
            .await
        {
            Err(OutboundError::Refused { error, .. }) => assert_eq!(error, "invalid_client"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
);

server_test!(
    the_declarative_file_manages_outbound_records_and_keeps_their_tokens,
    |server| {
        let provider = provider().await;
        let file = server.data_dir().join("outbound.toml");
        let write = |scopes: &str| {
            std::fs::write(
            &file,
            format!(
                "[[oauth_provider]]\nname = \"ledger\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\n\
                 client_secret_env = \"LEDGER_SECRET\"\n\n\
                 [[oauth_profile]]\nname = \"ledger\"\nprovider = \"ledger\"\nscopes = [{scopes}]\n\n\
                 [[connection_alias]]\nname = \"ledger\"\nbase_url = \"{}\"\nprofile = \"ledger\"\n\
                 allowed_roles = [\"integration\"]\n",
                provider.server.url("/oauth/token"),
                provider.app.client_id,
                provider.server.url("/api/admin/v1"),
            ),
        )
        .unwrap();
        };
        write("\"useraccount\"");
        let path = file.to_str().unwrap();
        let env = [("LEDGER_SECRET", provider.app.secret.as_str())];
        let output = gatehouse(&server, &["apply", path, "--json"], &env).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let changes: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(changes.as_array().unwrap().len(), 3, "{changes}");

        let output = gatehouse(&server, &["call", "ledger", "whoami"], &[]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let registry = server.services.outbound.registry();
        assert!(
            registry
                .find_token("ledger", SYSTEM_OWNER)
                .await
                .unwrap()
                .is_some()
        );

        // The same file again changes nothing, and the token survives.
        let output = gatehouse(&server, &["apply", path, "--json"], &env).await;
        let changes: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(changes, serde_json::json!([]));
        assert!(
            registry
                .find_token("ledger", SYSTEM_OWNER)
                .await
                .unwrap()
                .is_some()
        );

        // Other scopes: the profile is updated and its token dropped.
        write("\"useraccount\", \"profile\"");
        let output = gatehouse(&server, &["apply", path, "--json"], &env).await;
        let changes: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(changes[0]["kind"], "oauth_profile", "{changes}");
        assert_eq!(changes[0]["fields"], serde_json::json!(["scopes"]));
        assert!(
            registry
                .find_token("ledger", SYSTEM_OWNER)
                .await
                .unwrap()
                .is_none()
        );
    }
);

server_test!(
    the_admin_api_manages_outbound_records_without_showing_secrets,
    |server| {
        let admin = server.token_for_role("mi_admin").await;
        let post = |path: &'static str, body: Value| {
            let request = server
                .http
                .post(server.url(&format!("/api/admin/v1/outbound/{path}")))
                .bearer_auth(&admin)
                .json(&body)
                .send();
            async move {
                let response = request.await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let secret = "a-client-secret-nobody-may-read-back";
        let (status, view) = post(
            "providers",
            serde_json::json!({
                "name": "signer", "token_url": "https://idp.example/token", "client_id": "gh",
                "client_secret": secret, "auth_method": "private_key_jwt", "signing_alg": "ES256",
            }),
        )
        .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["has_secret"], true);
        assert_eq!(view["public_jwk"]["kty"], "EC");
        assert!(view["public_jwk"].get("d").is_none(), "{view}");
        assert!(!view.to_string().contains(secret));
        // Saving again without the secret keeps it, and keeps the key.
        let (_, again) = post(
            "providers",
            serde_json::json!({
                "name": "signer", "token_url": "https://idp.example/token", "client_id": "gh",
                "auth_method": "private_key_jwt", "signing_alg": "ES256",
            }),
        )
        .await;
        assert_eq!(again["has_secret"], true);
        assert_eq!(again["public_jwk"], view["public_jwk"]);
        // Plain HTTP to another machine is refused: credentials would travel in clear.
        let (status, body) = post(
            "providers",
            serde_json::json!({"name": "open", "token_url": "http://idp.example/token",
            "client_id": "gh", "client_secret": secret}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, _) = post(
            "profiles",
            serde_json::json!({"name": "signer", "provider": "signer", "scopes": ["read"]}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, alias) = post(
            "aliases",
            serde_json::json!({"name": "signer", "base_url": "https://api.example/v1/",
            "profile": "signer", "allowed_roles": ["integration"]}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(alias["base_url"], "https://api.example/v1");
        assert_eq!(alias["max_retries"], 2);

        let delete = |path: &str| {
            server
                .http
                .delete(server.url(&format!("/api/admin/v1/outbound/{path}")))
                .bearer_auth(&admin)
                .send()
        };
        // In use: refused, until what uses it is gone.
        assert_eq!(delete("providers/signer").await.unwrap().status(), 409);
        assert_eq!(delete("profiles/signer").await.unwrap().status(), 409);
        assert_eq!(delete("aliases/signer").await.unwrap().status(), 204);
        assert_eq!(delete("profiles/signer").await.unwrap().status(), 204);
        assert_eq!(delete("providers/signer").await.unwrap().status(), 204);
        assert_eq!(delete("providers/signer").await.unwrap().status(), 404);

        // Without a registry role: refused.
        let other = server.token_for_role("integration").await;
        let response = server
            .http
            .get(server.url("/api/admin/v1/outbound/providers"))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let document: Value = server
            .http
            .get(server.url("/api/admin/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for path in [
            "/outbound/providers",
            "/outbound/providers/{name}",
            "/outbound/profiles",
            "/outbound/aliases",
        ] {
            assert!(document["paths"].get(path).is_some(), "{path}");
        }
    }
);

server_test!(
    a_changed_or_deleted_profile_takes_its_tokens_and_named_records_stay,
    |server| {
        let provider = provider().await;
        connect(
            &server,
            "crm",
            provider_spec("crm", provider.server.url("/oauth/token"), &provider.app),
            provider.server.url("/api/admin/v1"),
        )
        .await;
        let caller = server.token_for_role("integration").await;
        let admin = server.token_for_role("mi_admin").await;
        let held = || async {
            server
                .services
                .outbound
                .registry()
                .find_token("crm", SYSTEM_OWNER)
                .await
                .unwrap()
                .is_some()
        };
        let admin_call =
            |method, path: &'static str, body| call(&server, method, path, &admin, body);
        let (status, body) = proxy_get(&server, "/api/outbound/crm/whoami", &caller).await;
        assert_eq!(status, 200, "{body}");
        assert!(held().await);

        // Saved as it is (a set of scopes reads the same in any spelling), the profile keeps
        // its token.
        let same = json!({"name": "crm", "provider": "crm",
            "scopes": ["useraccount", "useraccount"]});
        let (status, body) = admin_call(Method::POST, "/outbound/profiles", Some(same)).await;
        assert_eq!(status, 200, "{body}");
        assert!(held().await);
        // Changed, it does not: the next call obtains another.
        let scopes = json!({"scopes": []});
        let (status, body) =
            admin_call(Method::PATCH, "/outbound/profiles/crm", Some(scopes)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["scopes"], json!([]));
        assert!(!held().await);
        let (status, body) = proxy_get(&server, "/api/outbound/crm/whoami", &caller).await;
        assert_eq!(status, 200, "{body}");
        assert!(held().await);
        assert_eq!(
            token_requests(&provider.server, "client_credentials").await,
            2
        );

        // What a record names must exist, and stays while it is named.
        let (status, body) = admin_call(Method::DELETE, "/outbound/providers/crm", None).await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("used by the profiles crm"),
            "{body}"
        );
        let (status, body) = admin_call(Method::DELETE, "/outbound/profiles/crm", None).await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("connection_alias \"crm\""),
            "{body}"
        );
        let orphan = json!({"name": "orphan", "provider": "missing"});
        let (status, body) = admin_call(Method::POST, "/outbound/profiles", Some(orphan)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("OAuth provider \"missing\" does not exist"),
            "{body}"
        );
        let orphan = json!({"name": "orphan", "base_url": "https://api.example",
            "profile": "missing"});
        let (status, body) = admin_call(Method::POST, "/outbound/aliases", Some(orphan)).await;
        assert_eq!(status, 400, "{body}");
        // A profile per user needs a provider whose grant serves users.
        let per_user = json!({"per_user": true});
        let (status, body) =
            admin_call(Method::PATCH, "/outbound/profiles/crm", Some(per_user)).await;
        assert_eq!(status, 400, "{body}");
        assert!(held().await, "a refused change keeps the token");

        // Deleted, the profile takes its token along.
        for path in ["/outbound/aliases/crm", "/outbound/profiles/crm"] {
            let (status, body) = admin_call(Method::DELETE, path, None).await;
            assert_eq!(status, 204, "{path}: {body}");
        }
        assert!(!held().await);
        let (status, _) = admin_call(Method::DELETE, "/outbound/providers/crm", None).await;
        assert_eq!(status, 204);
    }
);

server_test!(
    private_key_jwt_and_jwt_bearer_sign_with_keys_gatehouse_generated,
    |server| {
        let provider = provider().await;
        let registry = server.services.outbound.registry();
        let api = provider.server.url("/api/admin/v1");

        // private_key_jwt: the provider knows Gatehouse by the public key Gatehouse generated.
        let mut signed =
            provider_spec("signed", provider.server.url("/oauth/token"), &provider.app);
        signed.client_id = "gatehouse-next-door".into();
        signed.client_secret = None;
        signed.auth_method = ClientAuthMethod::PrivateKeyJwt;
        signed.signing_alg = Some("ES256".into());
        // Its assertions name the provider's issuer, which a Gatehouse requires as their aud.
        signed.issuer = Some(provider.server.base.clone());
        let jwk = registry
            .save_provider(signed.clone())
            .await
            .unwrap()
            .signing_public_jwk
            .expect("a public key to register");
        provider
            .server
            .services
            .registry
            .create_app(
                NewApp {
                    client_id: Some(signed.client_id.clone()),
                    client_secret: None,
                    fields: AppChanges {
                        name: Some("Gatehouse next door".into()),
                        grant_types: Some(vec![GrantType::ClientCredentials]),
                        allowed_scopes: Some(vec!["useraccount".into()]),
                        run_as: Some("integration-svc".into()),
                        jwks: Some(format!("{{\"keys\":[{jwk}]}}")),
                        ..AppChanges::default()
                    },
                },
                false,
            )
            .await
            .expect("register Gatehouse's key at the provider");
        connect(&server, "signed", signed, api.clone()).await;
        let caller = server.token_for_role("integration").await;
        let (status, body) = proxy_get(&server, "/api/outbound/signed/whoami", &caller).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["client_id"], "gatehouse-next-door");

        // The JWT bearer grant: Gatehouse asserts the service user's identity, the provider trusts
        // Gatehouse's key as a JWT provider.
        let bearer_app = provider
            .server
            .app_with(AppChanges {
                name: Some("assertion app".into()),
                grant_types: Some(vec![GrantType::JwtBearer]),
                allowed_scopes: Some(vec!["useraccount".into()]),
                ..AppChanges::default()
            })
            .await;
        let mut delegated = provider_spec(
            "delegated",
            provider.server.url("/oauth/token"),
            &bearer_app,
        );
        delegated.grant = GrantType::JwtBearer;
        delegated.username = Some("integration-svc".into());
        delegated.signing_alg = Some("ES256".into());
        let jwk = registry
            .save_provider(delegated.clone())
            .await
            .unwrap()
            .signing_public_jwk
            .expect("a public key to register");
        provider
            .server
            .services
            .registry
            .create_jwt_provider(
                NewJwtProvider {
                    name: "gatehouse-next-door".into(),
                    fields: JwtProviderChanges {
                        issuer: Some(bearer_app.client_id.clone()),
                        key_source: Some(KeySource::Static(jwk)),
                        allowed_clients: Some(vec![bearer_app.client_id.clone()]),
                        // The assertions stand for integration-svc, an oauth_admin there.
                        map_registry_roles: Some(true),
                        ..JwtProviderChanges::default()
                    },
                },
                false,
            )
            .await
            .expect("trust Gatehouse's key at the provider");
        connect(&server, "delegated", delegated, api).await;
        let (status, body) = proxy_get(&server, "/api/outbound/delegated/whoami", &caller).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["client_id"], bearer_app.client_id);
        assert_eq!(body["user_name"], "integration-svc");
    }
);

server_test!(outbound_records_are_managed_from_the_cli, |server| {
    let provider = provider().await;
    let secret_env = [("BILLING_CLIENT_SECRET", provider.app.secret.as_str())];
    let saved = gatehouse(
        &server,
        &[
            "outbound",
            "provider",
            "save",
            "billing",
            "--token-url",
            &provider.server.url("/oauth/token"),
            "--client-id",
            &provider.app.client_id,
            "--secret-env",
            "BILLING_CLIENT_SECRET",
            "--json",
        ],
        &secret_env,
    )
    .await;
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let stdout = String::from_utf8_lossy(&saved.stdout);
    assert!(
        !stdout.contains(&provider.app.secret),
        "the secret is never shown"
    );
    let view: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(view["has_secret"], true);
    let api = provider.server.url("/api/admin/v1");
    for args in [
        vec![
            "outbound",
            "profile",
            "save",
            "billing",
            "--provider",
            "billing",
            "--scope",
            "useraccount",
        ],
        vec![
            "outbound",
            "alias",
            "save",
            "billing",
            "--base-url",
            &api,
            "--profile",
            "billing",
            "--role",
            "integration",
            "--timeout",
            "5",
            "--retries",
            "0",
        ],
    ] {
        let output = gatehouse(&server, &args, &[]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = gatehouse(&server, &["outbound", "alias", "list", "--json"], &[]).await;
    let aliases: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(aliases[0]["base_url"], api.as_str());
    let called = gatehouse(&server, &["call", "billing", "GET", "whoami"], &[]).await;
    assert!(
        called.status.success(),
        "{}",
        String::from_utf8_lossy(&called.stderr)
    );
    let whoami: Value = serde_json::from_slice(&called.stdout).unwrap();
    assert_eq!(whoami["client_id"], provider.app.client_id);
    // A provider still in use stays; removed in order, everything goes.
    let in_use = gatehouse(&server, &["outbound", "provider", "delete", "billing"], &[]).await;
    assert!(!in_use.status.success());
    for kind in ["alias", "profile", "provider"] {
        let output = gatehouse(&server, &["outbound", kind, "delete", "billing"], &[]).await;
        assert!(
            output.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = gatehouse(&server, &["outbound", "provider", "list", "--json"], &[]).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([])
    );
});

/// Saves a provider through the admin API; the status and the view or error.
async fn save_through_api(server: &TestServer, admin: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.url("/api/admin/v1/outbound/providers"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_moved(status: u16, body: &Value, field: &str, missing: &str) {
    assert_eq!(status, 400, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(&format!("{field} moves to another origin"))
            && description.contains(missing),
        "{description}"
    );
}

server_test!(
    credentials_stay_bound_to_the_origin_they_were_given_for,
    |server| {
        // The provider moves from one Gatehouse to another: the second must never receive the
        // first one's client secret.
        let (first, second) = (provider().await, provider().await);
        let registry = server.services.outbound.registry();
        let api = first.server.url("/api/admin/v1");
        connect(
            &server,
            "crm",
            provider_spec("crm", first.server.url("/oauth/token"), &first.app),
            api,
        )
        .await;
        let caller = server.token_for_role("integration").await;
        assert_eq!(
            proxy_get(&server, "/api/outbound/crm/whoami", &caller)
                .await
                .0,
            200
        );
        let admin = server.token_for_role("mi_admin").await;
        let spec = |token_url: String, secret: Option<&str>| {
            let mut body = serde_json::json!({
                "name": "crm", "token_url": token_url, "client_id": first.app.client_id,
            });
            if let Some(secret) = secret {
                body["client_secret"] = secret.into();
            }
            body
        };
        // Another path at the same origin keeps the secret (and it still works there).
        let (status, view) = save_through_api(
            &server,
            &admin,
            spec(first.server.url("/oauth_token.do"), None),
        )
        .await;
        assert_eq!(
            (status, view["has_secret"].as_bool()),
            (200, Some(true)),
            "{view}"
        );
        assert_eq!(
            proxy_get(&server, "/api/outbound/crm/whoami", &caller)
                .await
                .0,
            200
        );
        // Another host, port or scheme without a new secret: refused, nothing changes.
        let port = first.server.settings.listen.port();
        for moved in [
            second.server.url("/oauth/token"),
            format!("https://127.0.0.1:{port}/oauth_token.do"),
            format!("http://127.0.0.1:{}/oauth_token.do", port + 1),
            format!("http://localhost:{port}/oauth_token.do"),
        ] {
            let (status, body) = save_through_api(&server, &admin, spec(moved.clone(), None)).await;
            assert_moved(status, &body, "token_url", "needs a client secret");
        }
        let kept = registry.get_provider("crm").await.unwrap();
        assert_eq!(kept.token_url, first.server.url("/oauth_token.do"));
        assert!(
            registry
                .find_token("crm", SYSTEM_OWNER)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            token_requests(&second.server, "client_credentials").await,
            0
        );
        // With the new provider's own secret in the same change: moved, and the old token is
        // gone with the old credentials.
        let (status, view) = save_through_api(
            &server,
            &admin,
            serde_json::json!({
                "name": "crm", "token_url": second.server.url("/oauth/token"),
                "client_id": second.app.client_id, "client_secret": second.app.secret,
            }),
        )
        .await;
        assert_eq!(
            (status, view["has_secret"].as_bool()),
            (200, Some(true)),
            "{view}"
        );
        assert!(
            registry
                .find_token("crm", SYSTEM_OWNER)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            token_requests(&second.server, "client_credentials").await,
            0
        );

        // A signing key is discarded too: a new one is generated for the new origin.
        let signer = |token_url: &str| {
            serde_json::json!({
                "name": "signer", "token_url": token_url, "client_id": "gh",
                "auth_method": "private_key_jwt", "signing_alg": "ES256",
            })
        };
        let (_, original) =
            save_through_api(&server, &admin, signer("https://idp.example/token")).await;
        let (_, same) =
            save_through_api(&server, &admin, signer("https://idp.example/v2/token")).await;
        assert_eq!(same["public_jwk"], original["public_jwk"]);
        let (status, moved) =
            save_through_api(&server, &admin, signer("https://other.example/token")).await;
        assert_eq!(status, 200, "{moved}");
        assert_ne!(moved["public_jwk"]["kid"], original["public_jwk"]["kid"]);

        // A password, and the secret of an authorization-code provider whose authorization
        // endpoint moves.
        let password = |token_url: &str, secret: Option<&str>, password: Option<&str>| {
            let mut body = serde_json::json!({
                "name": "owner", "token_url": token_url, "client_id": "gh",
                "grant": "password", "username": "svc",
            });
            if let Some(secret) = secret {
                body["client_secret"] = secret.into();
            }
            if let Some(password) = password {
                body["password"] = password.into();
            }
            body
        };
        let secret = "a-client-secret-of-thirty-two-chars";
        let (status, body) = save_through_api(
            &server,
            &admin,
            password("https://idp.example/token", Some(secret), Some("pw")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = save_through_api(
            &server,
            &admin,
            password("https://other.example/token", Some(secret), None),
        )
        .await;
        assert_moved(
            status,
            &body,
            "token_url",
            "needs a username and a password",
        );
        let (status, view) = save_through_api(
            &server,
            &admin,
            password("https://other.example/token", Some(secret), Some("pw2")),
        )
        .await;
        assert_eq!(
            (status, view["has_password"].as_bool()),
            (200, Some(true)),
            "{view}"
        );
        let code = |authorization_url: &str, secret: Option<&str>| {
            let mut body = serde_json::json!({
                "name": "browser", "token_url": "https://idp.example/token", "client_id": "gh",
                "grant": "authorization_code", "authorization_url": authorization_url,
                "issuer": "https://idp.example",
            });
            if let Some(secret) = secret {
                body["client_secret"] = secret.into();
            }
            body
        };
        assert_eq!(
            save_through_api(
                &server,
                &admin,
                code("https://idp.example/authorize", Some(secret))
            )
            .await
            .0,
            200
        );
        let (status, body) = save_through_api(
            &server,
            &admin,
            code("https://login.other.example/authorize", None),
        )
        .await;
        assert_moved(status, &body, "authorization_url", "needs a client secret");

        // The CLI: the same rule.
        let cli_save = |token_url: String, secret_env: bool| {
            let mut args = vec![
                "outbound".to_owned(),
                "provider".into(),
                "save".into(),
                "crm".into(),
                "--token-url".into(),
                token_url,
                "--client-id".into(),
                first.app.client_id.clone(),
            ];
            if secret_env {
                args.extend(["--secret-env".into(), "FIRST_SECRET".into()]);
            }
            let server = &server;
            let secret = first.app.secret.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                gatehouse(server, &args, &[("FIRST_SECRET", &secret)]).await
            }
        };
        let output = cli_save(first.server.url("/oauth/token"), false).await;
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("token_url moves to another origin")
        );
        let output = cli_save(first.server.url("/oauth/token"), true).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            proxy_get(&server, "/api/outbound/crm/whoami", &caller)
                .await
                .0,
            200
        );

        // The declarative file: the same rule.
        let file = server.data_dir().join("moved.toml");
        let write = |token_url: String, with_secret: bool| {
            let secret = if with_secret {
                "client_secret_env = \"SECOND_SECRET\"\n"
            } else {
                ""
            };
            std::fs::write(
                &file,
                format!(
                    "[[oauth_provider]]\nname = \"crm\"\ntoken_url = \"{token_url}\"\n\
                     client_id = \"{}\"\n{secret}",
                    second.app.client_id
                ),
            )
            .unwrap();
        };
        let path = file.to_str().unwrap();
        let env = [("SECOND_SECRET", second.app.secret.as_str())];
        write(second.server.url("/oauth/token"), false);
        let output = gatehouse(&server, &["apply", path], &env).await;
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("token_url moves to another origin")
        );
        assert_eq!(
            registry.get_provider("crm").await.unwrap().token_url,
            first.server.url("/oauth/token")
        );
        write(second.server.url("/oauth/token"), true);
        let output = gatehouse(&server, &["apply", path], &env).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The API the alias calls moves along, so the new token is good there.
        let moved = json!({"base_url": second.server.url("/api/admin/v1")});
        server
            .services
            .registry
            .update_entry::<ConnectionAlias>("crm", moved.as_object().unwrap().clone())
            .await
            .unwrap();
        assert_eq!(
            proxy_get(&server, "/api/outbound/crm/whoami", &caller)
                .await
                .0,
            200
        );
        assert_eq!(
            token_requests(&second.server, "client_credentials").await,
            1
        );
    }
);

/// An authorization-code provider for mix-up tests: another Gatehouse with a person, `pat`, and
/// an application whose redirect URI is `consumer`'s callback.
struct CodeProvider {
    server: TestServer,
    app: TestApp,
}

const PERSON_PASSWORD: &str = "a long enough password";

async fn code_provider(consumer: &TestServer) -> CodeProvider {
    let server = TestServer::start(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    server.user("pat", &[]).await;
    let app = server
        .app_with(AppChanges {
            name: Some("Gatehouse next door".into()),
            redirect_uris: Some(vec![consumer.url("/oauth_redirect.do")]),
            grant_types: Some(vec![GrantType::AuthorizationCode]),
            allowed_scopes: Some(vec!["useraccount".into()]),
            ..AppChanges::default()
        })
        .await;
    CodeProvider { server, app }
}

impl CodeProvider {
    /// Registers it at `consumer` as provider and system-wide profile `name`.
    async fn register(&self, consumer: &TestServer, name: &str, iss_always_sent: bool) {
        let registry = consumer.services.outbound.registry();
        let mut spec = provider_spec(name, self.server.url("/oauth/token"), &self.app);
        spec.grant = GrantType::AuthorizationCode;
        spec.authorization_url = Some(self.server.url("/oauth/authorize"));
        spec.issuer = Some(self.server.base.clone());
        spec.authorization_response_iss_parameter_supported = iss_always_sent;
        registry.save_provider(spec).await.expect("provider");
        consumer
            .services
            .registry
            .save_entry::<OAuthProfile>(json!({
                "name": name, "provider": name, "scopes": ["useraccount"],
            }))
            .await
            .expect("profile");
    }

    /// Pat signs in at the provider and allows the authorization the browser was sent to;
    /// returns the parameters of the answer sent back to the consumer's callback.
    async fn answer(&self, location: &str) -> Vec<(String, String)> {
        let mut pat = Browser::new();
        let login = pat.get(location).await;
        assert_eq!(login.status, 200, "{:?} {}", login.location(), login.body);
        let mut done = pat
            .login(&self.server, &login, "pat", PERSON_PASSWORD)
            .await;
        // Consent is asked unless the scopes need none.
        if done.status == 200 {
            done = pat.consent(&self.server, &done, "allow").await;
        }
        assert_eq!(done.status, 303, "{}", done.body);
        let answer: Vec<(String, String)> = done.redirect_params().into_iter().collect();
        assert!(answer.iter().any(|(k, _)| k == "code"), "{answer:?}");
        answer
    }
}

/// An administrator of `consumer` signed in to its "OAuth tokens" page.
async fn signed_in(consumer: &TestServer) -> Browser {
    let mut browser = Browser::new();
    let login = browser.get(&consumer.url("/outbound")).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let done = browser
        .login(consumer, &login, "carol", PERSON_PASSWORD)
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    browser
}

/// Presses "Get OAuth token" for `profile`; returns where the browser is sent.
async fn start(consumer: &TestServer, browser: &mut Browser, profile: &str) -> String {
    let page = browser.get(&consumer.url("/outbound")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.field("csrf");
    let started = browser
        .post(
            &consumer.url("/outbound/authorize"),
            &[("csrf", &csrf), ("profile", profile)],
        )
        .await;
    started
        .location()
        .unwrap_or_else(|| panic!("no redirect: {}", started.body))
}

/// The state a provider was sent.
fn state_of(location: &str) -> String {
    let query = location.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

/// Delivers an answer to the consumer's callback in `browser`; the status and the page.
async fn deliver(
    consumer: &TestServer,
    browser: &mut Browser,
    params: &[(String, String)],
) -> (u16, String) {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let page = browser
        .get(&format!("{}?{query}", consumer.url("/oauth_redirect.do")))
        .await;
    (page.status, page.body)
}

/// `params` with `name` set to `value`, or removed when `None`.
fn with(params: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut changed: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k != name).cloned().collect();
    if let Some(value) = value {
        changed.push((name.into(), value.into()));
    }
    changed
}

server_test!(outbound_authorization_codes_cannot_be_mixed_up, |server| {
    server
        .services
        .registry
        .create_user(
            gatehouse_core::registry::NewUser {
                user_name: "carol".into(),
                password: Some(Secret::new(PERSON_PASSWORD)),
                fields: gatehouse_core::registry::UserChanges {
                    roles: Some(vec!["admin".into()]),
                    ..Default::default()
                },
            },
            false,
        )
        .await
        .unwrap();
    // "one" says in its metadata that it always sends iss; "two" does not.
    let (one, two) = (code_provider(&server).await, code_provider(&server).await);
    one.register(&server, "one", true).await;
    two.register(&server, "two", false).await;
    let registry = server.services.outbound.registry();
    let held = |profile: &'static str| async move {
        registry
            .find_token(profile, SYSTEM_OWNER)
            .await
            .unwrap()
            .is_some()
    };
    let mut victim = signed_in(&server).await;
    let mut attacker = signed_in(&server).await;

    // The attacker obtains a code from "two" for the consumer's callback ...
    let from_two = two
        .answer(&start(&server, &mut attacker, "two").await)
        .await;
    // ... and plants it on the victim's authorization with "one", under one's state.
    let victims_state = state_of(&start(&server, &mut victim, "one").await);
    let planted = with(&from_two, "state", Some(&victims_state));
    let (status, page) = deliver(&server, &mut victim, &planted).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("names issuer"), "{page}");
    // Without iss, which "one" always sends: refused as well.
    let victims_state = state_of(&start(&server, &mut victim, "one").await);
    let planted = with(&with(&from_two, "state", Some(&victims_state)), "iss", None);
    let (status, page) = deliver(&server, &mut victim, &planted).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("carries no iss"), "{page}");
    // An error answer from another issuer is not taken for one's either.
    let victims_state = state_of(&start(&server, &mut victim, "one").await);
    let error = vec![
        ("error".to_owned(), "access_denied".to_owned()),
        ("state".to_owned(), victims_state),
        ("iss".to_owned(), two.server.base.clone()),
    ];
    let (status, page) = deliver(&server, &mut victim, &error).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("names issuer"), "{page}");
    // No code reached any token endpoint, and no token was stored.
    assert_eq!(token_requests(&one.server, "authorization_code").await, 0);
    assert_eq!(token_requests(&two.server, "authorization_code").await, 0);
    assert!(!held("one").await);

    // The state binds the provider: a profile pointed at another provider meanwhile does
    // not redeem the code there.
    let location = start(&server, &mut victim, "one").await;
    let answer = one.answer(&location).await;
    server
        .services
        .registry
        .save_entry::<OAuthProfile>(json!({
            "name": "one", "provider": "two", "scopes": ["useraccount"],
        }))
        .await
        .unwrap();
    let (status, page) = deliver(&server, &mut victim, &answer).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("changed after the authorization started"),
        "{page}"
    );
    assert_eq!(token_requests(&two.server, "authorization_code").await, 0);
    one.register(&server, "one", true).await;

    // The genuine answers are accepted: with iss ...
    let location = start(&server, &mut victim, "one").await;
    let answer = one.answer(&location).await;
    assert!(
        answer
            .iter()
            .any(|(k, v)| k == "iss" && *v == one.server.base)
    );
    let (status, page) = deliver(&server, &mut victim, &answer).await;
    assert_eq!(status, 200, "{page}");
    assert!(held("one").await);
    assert_eq!(token_requests(&one.server, "authorization_code").await, 1);
    // ... and, from a provider that does not promise iss, without it; but a wrong iss is
    // refused even there.
    let location = start(&server, &mut victim, "two").await;
    let answer = two.answer(&location).await;
    let (status, page) = deliver(
        &server,
        &mut victim,
        &with(&answer, "iss", Some(&one.server.base)),
    )
    .await;
    assert_eq!(status, 400, "{page}");
    let location = start(&server, &mut victim, "two").await;
    let answer = two.answer(&location).await;
    let (status, page) = deliver(&server, &mut victim, &with(&answer, "iss", None)).await;
    assert_eq!(status, 200, "{page}");
    assert!(held("two").await);
    assert_eq!(token_requests(&two.server, "authorization_code").await, 1);

    // An authorization-code provider needs its issuer.
    let mut spec = provider_spec("three", one.server.url("/oauth/token"), &one.app);
    spec.grant = GrantType::AuthorizationCode;
    spec.authorization_url = Some(one.server.url("/oauth/authorize"));
    let refused = registry.save_provider(spec).await.unwrap_err();
    assert!(refused.to_string().contains("issuer"), "{refused}");
});
