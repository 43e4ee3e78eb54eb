//! The device authorization grant (RFC 8628): a device starts, polls, and gets tokens once its
//! user has entered the code at `/device` and allowed it; denial, slowness and reuse get their
//! own answers.

use gatehouse_core::client::{ClientType, GrantType};
use gatehouse_core::registry::AppChanges;
use serde_json::Value;

use crate::harness::{TestApp, TestServer, post_form, server_test};
use crate::people::{Browser, PASSWORD};

const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public client for a device: the device code grant (and refresh tokens).
async fn device_app(server: &TestServer) -> TestApp {
    server
        .app_with(AppChanges {
            name: Some("Living-room TV".into()),
            client_type: Some(ClientType::Public),
            grant_types: Some(vec![GrantType::DeviceCode, GrantType::RefreshToken]),
            allowed_scopes: Some(vec!["openid".into(), "profile".into()]),
            ..AppChanges::default()
        })
        .await
}

async fn start(server: &TestServer, app: &TestApp, scope: &str) -> (u16, Value) {
    let form = [("client_id", app.client_id.as_str()), ("scope", scope)];
    let (status, headers, body) =
        post_form(server, "/oauth/device_authorization", None, &form).await;
    if status == 200 {
        assert_eq!(headers["cache-control"], "no-store");
    }
    (status, body)
}

async fn poll(server: &TestServer, app: &TestApp, device_code: &str) -> (u16, Value) {
    let form = [
        ("grant_type", DEVICE_CODE),
        ("device_code", device_code),
        ("client_id", app.client_id.as_str()),
    ];
    let (status, _, body) = post_form(server, "/oauth/token", None, &form).await;
    (status, body)
}

fn error(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

/// Signs `user` in at `/device` with the code as a user might type it, and answers.
async fn answer_at_device_page(
    server: &TestServer,
    browser: &mut Browser,
    typed: &str,
    user: &str,
    decision: &str,
) {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("user_code", typed)
        .finish();
    let login = browser.get(&server.url(&format!("/device?{query}"))).await;
    let consent = if login.body.contains("Sign in") {
        let back = browser.login(server, &login, user, PASSWORD).await;
        assert_eq!(back.status, 303, "{}", back.body);
        let location = back.location().unwrap();
        assert!(location.starts_with("/device?user_code="), "{location}");
        browser.get(&server.url(&location)).await
    } else {
        login
    };
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Living-room TV"), "{}", consent.body);
    let (ticket, csrf) = (consent.field("ticket"), consent.field("csrf"));
    let done = browser
        .post(
            &server.url("/device"),
            &[("ticket", &ticket), ("csrf", &csrf), ("decision", decision)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    // The form is good for one answer.
    let again = browser
        .post(
            &server.url("/device"),
            &[("ticket", &ticket), ("csrf", &csrf), ("decision", "allow")],
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
}

/// The audit events of `kind` about devices.
async fn device_consents(
    server: &TestServer,
    kind: &str,
) -> Vec<gatehouse_core::store::AuditRecord> {
    let query = gatehouse_core::store::AuditQuery {
        kind: Some(kind.into()),
        limit: 100,
        ..Default::default()
    };
    let events = server.services.store.list_audit(&query).await.unwrap();
    events
        .into_iter()
        .filter(|event| event.details.contains("\"device\":true"))
        .collect()
}

server_test!(a_device_gets_tokens_once_its_user_allows_it, |server| {
    server.user("alice", &[]).await;
    let app = device_app(&server).await;
    let (_, discovery) = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["device_authorization_endpoint"],
        server.url("/oauth/device_authorization")
    );
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(DEVICE_CODE))
    );

    let (status, started) = start(&server, &app, "openid profile").await;
    assert_eq!(status, 200, "{started}");
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    assert!(
        user_code.len() == 9 && user_code.as_bytes()[4] == b'-',
        "{user_code}"
    );
    assert_eq!(started["verification_uri"], server.url("/device"));
    assert_eq!(
        started["verification_uri_complete"],
        format!("{}?user_code={user_code}", server.url("/device"))
    );
    assert_eq!(
        (&started["expires_in"], &started["interval"]),
        (&600.into(), &5.into())
    );

    // Until the user answers the device waits, and polling faster than the interval slows it.
    assert_eq!(
        error(&poll(&server, &app, &device_code).await),
        (400, Some("authorization_pending"))
    );
    assert_eq!(
        error(&poll(&server, &app, &device_code).await),
        (400, Some("slow_down"))
    );

    // The user types the code in lower case with a space instead of the dash.
    let typed = user_code.to_lowercase().replace('-', " ");
    let mut browser = Browser::new();
    answer_at_device_page(&server, &mut browser, &typed, "alice", "allow").await;

    let (status, tokens) = poll(&server, &app, &device_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens["id_token"].is_string() && tokens["refresh_token"].is_string());
    let userinfo: Value = server
        .http
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["preferred_username"], "alice");
    // The answer is in the audit trail, as the user's consent to the device's client.
    let given = device_consents(&server, "consent.given").await;
    assert_eq!(given.len(), 1);
    assert_eq!(
        (given[0].actor.as_str(), given[0].subject.as_str()),
        ("alice", app.client_id.as_str())
    );
    // Tokens once.
    assert_eq!(
        error(&poll(&server, &app, &device_code).await),
        (400, Some("invalid_grant"))
    );
    // The approval is remembered as a browser's consent is: the account page lists it, and
    // withdrawing it revokes what the device got.
    let account = browser.get(&server.url("/account")).await;
    assert!(account.body.contains("Living-room TV"), "{}", account.body);
    let withdrawn = browser
        .post(
            &server.url("/account/withdraw"),
            &[
                ("csrf", &account.field("csrf")),
                ("client_id", &app.client_id),
            ],
        )
        .await;
    assert_eq!(withdrawn.status, 303, "{}", withdrawn.body);
    let after = server
        .http
        .get(server.url("/oauth/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    // An answered code is no longer offered at the page.
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("user_code", &user_code)
        .finish();
    let page = browser.get(&server.url(&format!("/device?{query}"))).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("unknown, expired or answered already"));
});

server_test!(a_device_hears_no_and_other_mistakes, |server| {
    server.user("bob", &[]).await;
    let app = device_app(&server).await;
    let (_, started) = start(&server, &app, "openid").await;
    let device_code = started["device_code"].as_str().unwrap();
    let mut browser = Browser::new();
    let user_code = started["user_code"].as_str().unwrap();
    answer_at_device_page(&server, &mut browser, user_code, "bob", "deny").await;
    assert_eq!(
        error(&poll(&server, &app, device_code).await),
        (400, Some("access_denied"))
    );
    assert_eq!(device_consents(&server, "consent.refused").await.len(), 1);

    // Another client's device code, and a made-up one.
    let other = device_app(&server).await;
    let (_, theirs) = start(&server, &other, "openid").await;
    for code in [theirs["device_code"].as_str().unwrap(), "gh_dc_made-up"] {
        assert_eq!(
            error(&poll(&server, &app, code).await),
            (400, Some("invalid_grant"))
        );
    }
    // A scope the application may not have, and an application without the grant.
    assert_eq!(
        error(&start(&server, &app, "openid useraccount").await),
        (400, Some("invalid_scope"))
    );
    let other_grant = server
        .app_with(AppChanges {
            name: Some("Web".into()),
            client_type: Some(ClientType::Public),
            grant_types: Some(vec![GrantType::AuthorizationCode]),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            ..AppChanges::default()
        })
        .await;
    assert_eq!(
        error(&start(&server, &other_grant, "openid").await),
        (400, Some("unauthorized_client"))
    );
    // A code that is no code at all is shown as such on the page.
    let page = browser
        .get(&server.url("/device?user_code=AEIO-U123"))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
});

server_test!(
    a_device_code_issued_before_an_application_wide_revocation_expires_with_it,
    |server| {
        server.user("alice", &[]).await;
        let admin = server.token_for_role("admin").await;
        let app = device_app(&server).await;
        let (_, started) = start(&server, &app, "openid").await;
        let device_code = started["device_code"].as_str().unwrap();
        let user_code = started["user_code"].as_str().unwrap();
        answer_at_device_page(&server, &mut Browser::new(), user_code, "alice", "allow").await;
        assert_eq!(
            server.revoke_everything_of(&admin, &app.client_id).await,
            204
        );
        // Allowed but not yet redeemed, it went with everything else of its application.
        assert_eq!(
            error(&poll(&server, &app, device_code).await),
            (400, Some("expired_token"))
        );
    }
);
