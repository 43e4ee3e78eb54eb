//! The person flows in a real headless browser: `tests/browser/flow.mjs` drives Chromium through
//! the login and consent pages, and `openid-client` (a certified relying-party library) checks
//! every response — authorization code with PKCE, userinfo, refresh-token rotation and reuse,
//! implicit, hybrid with `form_post`, denial and signing out.
//!
//! It needs Debian's `chromium` and `npm ci` in `tests/browser`; without them it prints why it
//! was skipped — except under CI (`CI` set), where they must be there.

use std::path::Path;
use std::process::Command;

use gatehouse_core::client::{ClientType, GrantType};
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::registry::{AppChanges, NewUser, UserChanges};
use gatehouse_core::secret::Secret;

use crate::harness::server_test;

const FLOW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/flow.mjs");
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
    if !Path::new(NODE_MODULES).join("playwright-core").is_dir()
        || !Path::new(NODE_MODULES).join("openid-client").is_dir()
    {
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
            grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::Implicit]),
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
    // Off the async threads: the in-process server keeps serving the browser meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output().expect("run node"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser flow failed ({})\n--- stderr\n{stderr}\n--- stdout\n{stdout}",
        output.status
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON summary");
    assert_eq!(summary["ok"], true, "{stdout}");
    assert_eq!(summary["implicit"]["sub"], summary["code"]["sub"]);
    println!("{stdout}");
});
