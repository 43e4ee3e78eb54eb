//! Brute-force protection without an oracle and without locking out the innocent: a locked
//! attempt looks like a wrong password, and failures from an address lock only the user they
//! were made for, at that address — the address the trusted proxy forwarded for, when there is
//! one.

use gatehouse_core::client::ClientType;
use gatehouse_core::forwarding::TrustedProxies;

use crate::harness::{TestApp, TestServer, server_test};
use crate::people::{Browser, PASSWORD, authorize_url, people_app};

async fn password_grant(
    server: &TestServer,
    app: &TestApp,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = server
        .http
        .post(server.url("/oauth/token"))
        .basic_auth(&app.client_id, Some(&app.secret))
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ]);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

server_test!(failures_for_other_names_never_lock_out_a_user, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    // Sixty failures from this address, each for another (unknown or real) user name.
    for n in 0..60 {
        let (status, body) =
            password_grant(&server, &app, &format!("nobody-{n}"), "guess", None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    let (status, body) = password_grant(&server, &app, "alice", PASSWORD, None).await;
    assert_eq!(status, 200, "{body}");
    // The login page too.
    let mut browser = Browser::new();
    let login = browser
        .get(&authorize_url(&server, &app.client_id, &[]))
        .await;
    let consent = browser.login(&server, &login, "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
});

server_test!(
    behind_a_trusted_proxy_the_guesser_is_locked_and_the_user_is_not,
    configured(|settings| {
        settings.trusted_proxies = TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
    }),
    |server| {
        server.user("bob", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let attacker = Some("203.0.113.9");
        for _ in 0..10 {
            let (status, _) = password_grant(&server, &app, "bob", "guess", attacker).await;
            assert_eq!(status, 400);
        }
        // The attacker's address is locked for bob, and cannot tell: the right password gets the
        // wrong password's answer, on the token endpoint and on the login page.
        let locked = password_grant(&server, &app, "bob", PASSWORD, attacker).await;
        let wrong = password_grant(&server, &app, "bob", "guess", attacker).await;
        assert_eq!(locked, wrong);
        let mut attacker_browser = Browser::new();
        let login = attacker_browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        let page = attacker_browser
            .post_with_header(
                &server.url("/oauth/authorize/login"),
                &[
                    ("continuation", &login.field("continuation")),
                    ("csrf", &login.field("csrf")),
                    ("username", "bob"),
                    ("password", PASSWORD),
                ],
                ("x-forwarded-for", "203.0.113.9"),
            )
            .await;
        assert_eq!(page.status, 401);
        assert!(page.body.contains("The user name or password is wrong."));
        // Bob, at his own address behind the same proxy, signs in (slowed, not locked).
        let (status, body) =
            password_grant(&server, &app, "bob", PASSWORD, Some("198.51.100.7")).await;
        assert_eq!(status, 200, "{body}");
    }
);
