//! Pushed authorization requests (RFC 9126): pushed, validated at once, used once, and the only
//! parameters the authorization endpoint reads when the browser brings their reference.

use gatehouse_core::client::ClientType;
use serde_json::Value;

use crate::cli::gatehouse;
use crate::harness::{TestApp, TestServer, post_form, server_test};
use crate::people::{Browser, PASSWORD, REDIRECT, VERIFIER, people_app, redeem};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The parameters of a valid code request with PKCE, plus `extra`.
pub(crate) fn request<'a>(
    app: &'a TestApp,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("response_type", "code"),
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "pushed-state"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        form.retain(|(n, _)| n != name);
        if !value.is_empty() {
            form.push((name, value));
        }
    }
    form
}

/// Pushes a request for a confidential client (Basic authentication).
pub(crate) async fn push(
    server: &TestServer,
    app: &TestApp,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let (status, headers, body) = post_form(
        server,
        "/oauth/par",
        Some((&app.client_id, &app.secret)),
        form,
    )
    .await;
    if status == 201 {
        assert_eq!(headers["cache-control"], "no-store");
    }
    (status, body)
}

pub(crate) fn authorize_with(
    server: &TestServer,
    client_id: &str,
    request_uri: &str,
    extra: &str,
) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri)
        .finish();
    format!("{}?{query}{extra}", server.url("/oauth/authorize"))
}

server_test!(a_pushed_request_is_used_once_and_alone, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let (status, discovery) = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(
        discovery["pushed_authorization_request_endpoint"],
        server.url("/oauth/par")
    );
    assert_eq!(discovery["require_pushed_authorization_requests"], false);

    let (status, pushed) = push(&server, &app, &request(&app, &[])).await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // What the browser's address says besides client_id and request_uri is not read: the
    // response goes to the pushed redirect URI with the pushed state and scopes.
    let mut browser = Browser::new();
    let tampered = "&redirect_uri=https%3A%2F%2Fattacker.example%2Fcb&state=forged&scope=email";
    let login = browser
        .get(&authorize_with(
            &server,
            &app.client_id,
            &request_uri,
            tampered,
        ))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let consent = browser.login(&server, &login, "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let done = browser.consent(&server, &consent, "allow").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().unwrap().starts_with(REDIRECT));
    let params = done.redirect_params();
    assert_eq!(params["state"], "pushed-state");
    let (status, tokens) = redeem(&server, &app, &params["code"], Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid profile");

    // Used once: the same reference again is an error page, never a redirect.
    let again = browser
        .get(&authorize_with(&server, &app.client_id, &request_uri, ""))
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.location().is_none());
    assert!(again.body.contains("unknown, used or expired"));

    // Another client's reference, and a made-up one, are the same error page.
    let other = people_app(&server, ClientType::Confidential).await;
    let (_, pushed) = push(&server, &app, &request(&app, &[])).await;
    let stolen = pushed["request_uri"].as_str().unwrap();
    for (client_id, request_uri) in [
        (other.client_id.as_str(), stolen),
        (
            app.client_id.as_str(),
            "urn:ietf:params:oauth:request_uri:made-up",
        ),
        (app.client_id.as_str(), "https://attacker.example/request"),
    ] {
        let page = browser
            .get(&authorize_with(&server, client_id, request_uri, ""))
            .await;
        assert_eq!((page.status, page.location()), (400, None), "{}", page.body);
    }
});

server_test!(a_pushed_request_is_validated_when_pushed, |server| {
    let app = people_app(&server, ClientType::Confidential).await;
    let other = people_app(&server, ClientType::Confidential).await;
    for (extra, error) in [
        (
            vec![("redirect_uri", "https://attacker.example/cb")],
            "invalid_request",
        ),
        (vec![("scope", "openid useraccount")], "invalid_scope"),
        (
            vec![("response_type", "code token id_token x")],
            "unsupported_response_type",
        ),
        (vec![("code_challenge", "")], "invalid_request"),
        (
            vec![("request_uri", "urn:ietf:params:oauth:request_uri:x")],
            "invalid_request",
        ),
        (
            vec![("client_id", other.client_id.as_str())],
            "invalid_request",
        ),
        (
            vec![("resource", "https://unregistered.example/api")],
            "invalid_target",
        ),
    ] {
        let (status, body) = push(&server, &app, &request(&app, &extra)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{extra:?}: {body}"
        );
    }
    // The client authenticates as at the token endpoint.
    let wrong = TestApp {
        client_id: app.client_id.clone(),
        secret: "not the secret".into(),
    };
    let (status, body) = push(&server, &wrong, &request(&app, &[])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // A public client pushes with its client_id alone.
    let public = people_app(&server, ClientType::Public).await;
    let (status, _, body) = post_form(&server, "/oauth/par", None, &request(&public, &[])).await;
    assert_eq!(status, 201, "{body}");
});

server_test!(
    a_server_that_requires_pushed_requests_refuses_others,
    configured(|settings| settings.require_pushed_authorization_requests = true),
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        // The client and redirect URI are known, so the client hears why at its redirect URI.
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(request(&app, &[]))
            .finish();
        let refused = browser
            .get(&format!("{}?{query}", server.url("/oauth/authorize")))
            .await;
        let params = refused.redirect_params();
        assert_eq!(params["error"], "invalid_request", "{params:?}");
        assert_eq!(params["state"], "pushed-state");

        let (status, pushed) = push(&server, &app, &request(&app, &[])).await;
        assert_eq!(status, 201, "{pushed}");
        let login = browser
            .get(&authorize_with(
                &server,
                &app.client_id,
                pushed["request_uri"].as_str().unwrap(),
                "",
            ))
            .await;
        assert_eq!(login.status, 200, "{}", login.body);
        let (_, discovery) = server
            .get_json("/.well-known/oauth-authorization-server")
            .await;
        assert_eq!(discovery["require_pushed_authorization_requests"], true);
    }
);

server_test!(an_application_may_require_pushed_requests, |server| {
    let strict = people_app(&server, ClientType::Confidential).await;
    let relaxed = people_app(&server, ClientType::Confidential).await;
    let output = gatehouse(
        &server,
        &[
            "app",
            "update",
            &strict.client_id,
            "--require-pushed-authorization-requests",
            "true",
            "--json",
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["require_pushed_authorization_requests"], true);

    let mut browser = Browser::new();
    let direct = |app: &TestApp| {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(request(app, &[]))
            .finish();
        format!("{}?{query}", server.url("/oauth/authorize"))
    };
    let refused = browser.get(&direct(&strict)).await;
    assert_eq!(refused.redirect_params()["error"], "invalid_request");
    let login = browser.get(&direct(&relaxed)).await;
    assert_eq!(login.status, 200, "{}", login.body);

    let (status, pushed) = push(&server, &strict, &request(&strict, &[])).await;
    assert_eq!(status, 201, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().unwrap();
    let login = browser
        .get(&authorize_with(&server, &strict.client_id, request_uri, ""))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
});
