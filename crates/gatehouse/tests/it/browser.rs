//! The person flows in a real headless browser: `tests/browser/flow.mjs` drives Chromium through
//! the login and consent pages, and `openid-client` (a certified relying-party library) checks
//! every response — authorization code with PKCE, userinfo, refresh-token rotation and reuse,
//! implicit, hybrid with `form_post`, denial and signing out.
//!
//! `tests/browser/outbound.mjs` drives outbound OAuth's "Get OAuth token" through a second
//! Gatehouse standing for the external provider: login, denial, consent and the callback — the
//! consent started from the profile's page in the console, each page audited by axe-core.
//!
//! `tests/browser/console.mjs` signs an administrator in to the console, opens its pages at a
//! desktop's and a phone's size, creates an application and a gateway route through their forms
//! (each refused first, next to the field) and tests a connection alias in front of a second Gatehouse, checking the CSP, that nothing comes from
//! another origin and, with axe-core in each page, WCAG AA; with `GATEHOUSE_SCREENSHOTS` set (a
//! directory), it saves the screenshots `docs/screenshots.sh` puts in the README.
//!
//! It needs Debian's `chromium` and `npm ci` in `tests/browser`; without them it prints why it
//! was skipped — except under CI (`CI` set), where they must be there.

use std::path::Path;
use std::process::Command;

use gatehouse_core::client::{ClientType, GrantType, TokenFormat};
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::registry::{AppChanges, NewUser, UserChanges};
use gatehouse_core::secret::Secret;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::outbound::{
    ClientAuthMethod, ConnectionAlias, OAuthProfile, OutboundRegistry, ProviderSpec, SYSTEM_OWNER,
};
use gatehouse_remote::fetch::{Fetcher, Limits};
use gatehouse_remote::outbound::OutboundClient;

use crate::harness::server_test;
use crate::outbound::{TestClock, token_requests};

const FLOW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/flow.mjs");
const OUTBOUND_FLOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/outbound.mjs"
);
const CONSOLE_FLOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/console.mjs"
);
const NODE_MODULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/node_modules"
);
const CHROMIUM: &str = "/usr/bin/chromium";
/// Loopback redirect URIs match on any port (RFC 8252 §7.3): the flow listens on a free one.
const REDIRECT_URI: &str = "http://127.0.0.1/cb";
const PASSWORD: &str = "a long enough password";

/// What this machine lacks to run a browser, if anything.
fn missing_browser() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} is not installed (Debian package chromium)"
        ));
    }
    if !["playwright-core", "axe-core"]
        .iter()
        .all(|package| Path::new(NODE_MODULES).join(package).is_dir())
    {
        return Some("run `npm ci` in tests/browser".into());
    }
    missing_node()
}

/// What this machine lacks to run `openid-client` in Node, if anything.
pub(crate) fn missing_node() -> Option<String> {
    if !Path::new(NODE_MODULES).join("openid-client").is_dir() {
        return Some("run `npm ci` in tests/browser".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    None
}

server_test!(people_sign_in_and_consent_in_a_real_browser, |server| {
    if let Some(why) = missing_browser() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser test must run under CI: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let scopes = || Some(vec!["openid".into(), "profile".into(), "email".into()]);
    let confidential = server
        .app_with(AppChanges {
            name: Some("Photo Album".into()),
            client_type: Some(ClientType::Confidential),
            redirect_uris: Some(vec![REDIRECT_URI.into()]),
            grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            allowed_scopes: scopes(),
            ..AppChanges::default()
        })
        .await;
    let public = server
        .app_with(AppChanges {
            name: Some("Notes in the Browser".into()),
            client_type: Some(ClientType::Public),
            redirect_uris: Some(vec![REDIRECT_URI.into()]),
            grant_types: Some(vec![
                GrantType::AuthorizationCode,
                GrantType::Implicit,
                GrantType::DeviceCode,
            ]),
            allowed_scopes: scopes(),
            id_token_alg: Some(SigningAlgorithm::Rs256),
            ..AppChanges::default()
        })
        .await;
    server
        .services
        .registry
        .create_user(
            NewUser {
                user_name: "alice".into(),
                password: Some(Secret::new(PASSWORD)),
                fields: UserChanges {
                    display_name: Some("Alice Liddell".into()),
                    email: Some("alice@example.org".into()),
                    ..UserChanges::default()
                },
            },
            false,
        )
        .await
        .expect("create a user");

    let mut command = Command::new("node");
    command
        .arg(FLOW)
        .env("GATEHOUSE_ISSUER", &server.base)
        .env("GATEHOUSE_CODE_CLIENT_ID", &confidential.client_id)
        .env("GATEHOUSE_CODE_CLIENT_SECRET", &confidential.secret)
        .env("GATEHOUSE_CODE_ALG", "ES256")
        .env("GATEHOUSE_PUBLIC_CLIENT_ID", &public.client_id)
        .env("GATEHOUSE_PUBLIC_ALG", "RS256")
        .env("GATEHOUSE_USERNAME", "alice")
        .env("GATEHOUSE_PASSWORD", PASSWORD)
        .env("GATEHOUSE_EXPECT_NAME", "Alice Liddell")
        .env("GATEHOUSE_EXPECT_EMAIL", "alice@example.org")
        .env("CHROMIUM", CHROMIUM);
    let summary = run_node(command).await;
    assert_eq!(summary["implicit"]["sub"], summary["code"]["sub"]);
});

/// Runs a Node script off the async threads (the in-process servers keep serving it meanwhile)
/// and returns its JSON summary.
pub(crate) async fn run_node(mut command: Command) -> serde_json::Value {
    let output = tokio::task::spawn_blocking(move || command.output().expect("run node"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Node script failed ({})\n--- stderr\n{stderr}\n--- stdout\n{stdout}",
        output.status
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON summary");
    assert_eq!(summary["ok"], true, "{stdout}");
    println!("{stdout}");
    summary
}

server_test!(outbound_tokens_are_obtained_in_a_real_browser, |server| {
    if let Some(why) = missing_browser() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser test must run under CI: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    // The external provider, with a person who authorizes Gatehouse there.
    let provider = TestServer::start(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let redirect_uri = server.url("/oauth_redirect.do");
    let app = provider
        .app_with(AppChanges {
            name: Some("Gatehouse next door".into()),
            client_type: Some(ClientType::Confidential),
            redirect_uris: Some(vec![redirect_uri]),
            grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
            allowed_scopes: Some(vec!["useraccount".into()]),
            ..AppChanges::default()
        })
        .await;
    for (target, user_name, roles) in [
        (&provider, "pat", vec![]),
        (
            &server,
            "carol",
            vec!["admin".to_owned(), "integration".to_owned()],
        ),
    ] {
        target
            .services
            .registry
            .create_user(
                NewUser {
                    user_name: user_name.into(),
                    password: Some(Secret::new(PASSWORD)),
                    fields: UserChanges {
                        roles: Some(roles),
                        ..UserChanges::default()
                    },
                },
                false,
            )
            .await
            .expect("create a user");
    }
    // The browser reaches the provider as localhost: cookies ignore ports, and the two servers'
    // sessions must stay apart.
    let provider_origin = provider.base.replace("127.0.0.1", "localhost");
    let registry = server.services.outbound.registry();
    registry
        .save_provider(ProviderSpec {
            name: "crm".into(),
            token_url: provider.url("/oauth/token"),
            authorization_url: Some(format!("{provider_origin}/oauth/authorize")),
            client_id: app.client_id.clone(),
            client_secret: Some(Secret::new(app.secret.clone())),
            auth_method: ClientAuthMethod::ClientSecretPost,
            grant: GrantType::AuthorizationCode,
            audience: None,
            resource: None,
            username: None,
            password: None,
            signing_alg: None,
            issuer: Some(provider.base.clone()),
            authorization_response_iss_parameter_supported: true,
        })
        .await
        .unwrap();
    for (name, per_user) in [("crm", false), ("mine", true)] {
        let entries = &server.services.registry;
        entries
            .save_entry::<OAuthProfile>(serde_json::json!({
                "name": name, "provider": "crm", "scopes": ["useraccount"], "per_user": per_user,
            }))
            .await
            .unwrap();
        entries
            .save_entry::<ConnectionAlias>(serde_json::json!({
                "name": name, "base_url": provider.url("/api/admin/v1"), "profile": name,
                "allowed_roles": ["integration"],
            }))
            .await
            .unwrap();
    }
    // Before anyone consents, calls through the alias say what is missing.
    let caller = server.token_for_role("integration").await;
    let response = server
        .http
        .get(server.url("/api/outbound/crm/whoami"))
        .bearer_auth(&caller)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("authorize it in the browser")
    );

    let mut command = Command::new("node");
    command
        .arg(OUTBOUND_FLOW)
        .env("GATEHOUSE_CONSUMER", &server.base)
        .env("GATEHOUSE_CONSUMER_USERNAME", "carol")
        .env("GATEHOUSE_CONSUMER_PASSWORD", PASSWORD)
        .env("GATEHOUSE_PROVIDER_ORIGIN", &provider_origin)
        .env("GATEHOUSE_PROVIDER_USERNAME", "pat")
        .env("GATEHOUSE_PROVIDER_PASSWORD", PASSWORD)
        .env("GATEHOUSE_PROFILE", "crm")
        .env("GATEHOUSE_PER_USER_PROFILE", "mine")
        .env("CHROMIUM", CHROMIUM);
    run_node(command).await;
    assert_eq!(token_requests(&provider, "authorization_code").await, 2);

    // A per-user alias calls with the caller's own token: Carol's works, someone else has none.
    let carol_app = server
        .app(TokenFormat::Jwt, &["useraccount"], Some("carol"))
        .await;
    let carol = server.token(&carol_app, None).await;
    let call_mine = |token: String| {
        let request = server
            .http
            .get(server.url("/api/outbound/mine/whoami"))
            .bearer_auth(token)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    assert_eq!(call_mine(carol).await, 200);
    assert_eq!(call_mine(caller.clone()).await, 502);

    // The alias now calls the provider's API as the person who consented.
    let response = server
        .http
        .get(server.url("/api/outbound/crm/whoami"))
        .bearer_auth(&caller)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let whoami: serde_json::Value = response.json().await.unwrap();
    assert_eq!(whoami["user_name"], "pat");

    // Near its expiry the token is refreshed with its refresh token, without the browser.
    let catalog = server.services.registry.catalog().await.unwrap();
    let resolved = registry.resolve_alias(&catalog, "crm").await.unwrap();
    let now = SystemClock.now();
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
    clock.0.store(now + 1800, Ordering::SeqCst);
    let refreshed = outbound_client
        .access_token(&resolved, SYSTEM_OWNER)
        .await
        .unwrap();
    assert_ne!(first, refreshed);
    assert_eq!(token_requests(&provider, "refresh_token").await, 1);
    assert_eq!(token_requests(&provider, "authorization_code").await, 2);
});

server_test!(the_console_works_in_a_real_browser, |server| {
    if let Some(why) = missing_browser() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser test must run under CI: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    server.user("ada", &["admin"]).await;
    // Something to list, as a registry in use would have.
    for (name, grants, format) in [
        (
            "Photo Album",
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            TokenFormat::Opaque,
        ),
        (
            "Billing service",
            vec![GrantType::ClientCredentials],
            TokenFormat::Jwt,
        ),
        (
            "Warehouse scanner",
            vec![GrantType::DeviceCode],
            TokenFormat::Opaque,
        ),
    ] {
        let public = grants == [GrantType::DeviceCode];
        server
            .app_with(AppChanges {
                name: Some(name.into()),
                client_type: Some(if public {
                    ClientType::Public
                } else {
                    ClientType::Confidential
                }),
                redirect_uris: Some(vec![REDIRECT_URI.into()]),
                grant_types: Some(grants),
                token_format: Some(format),
                ..AppChanges::default()
            })
            .await;
    }
    // Tokens the administrator holds, for their tokens page to list.
    let notes = crate::console::password_app(&server).await;
    for _ in 0..2 {
        crate::console::password_tokens(&server, &notes, "ada").await;
    }
    // A connection alias to test, in front of a second Gatehouse's admin API.
    let provider = crate::outbound::provider().await;
    crate::outbound::connect(
        &server,
        "crm",
        crate::outbound::provider_spec("crm", provider.server.url("/oauth/token"), &provider.app),
        provider.server.url("/api/admin/v1"),
    )
    .await;
    let mut command = Command::new("node");
    command
        .arg(CONSOLE_FLOW)
        .env("GATEHOUSE_ISSUER", &server.base)
        .env("GATEHOUSE_USERNAME", "ada")
        .env("GATEHOUSE_PASSWORD", PASSWORD)
        .env("CHROMIUM", CHROMIUM);
    if let Some(dir) = std::env::var_os("GATEHOUSE_SCREENSHOTS") {
        command.env("GATEHOUSE_SCREENSHOTS", dir);
    }
    run_node(command).await;
});
