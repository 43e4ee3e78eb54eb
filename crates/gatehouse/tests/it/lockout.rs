//! Brute-force protection without an oracle and without locking out the innocent: a locked
//! attempt looks like a wrong password, and failures from an address lock only the user they
//! were made for, at that address — the address the trusted proxy forwarded for, when there is
//! one. Wrong client secrets lock only their client_id, and the lock answers a right secret as it
//! answers a wrong one.

use gatehouse_core::client::{ClientType, TokenFormat};
use gatehouse_core::forwarding::TrustedProxies;
use gatehouse_core::throttle::ClientLockout;

use crate::harness::{TestApp, TestServer, post_form, server_test};
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

/// Every endpoint that authenticates clients, standard and ServiceNow-style.
const CLIENT_ENDPOINTS: [&str; 5] = [
    "/oauth/token",
    "/oauth_token.do",
    "/oauth/introspect",
    "/oauth/revoke",
    "/oauth_revoke_token.do",
];

/// A request to `path` authenticated with `secret`, by `client_secret_basic` or
/// `client_secret_post`.
async fn with_secret(
    server: &TestServer,
    path: &str,
    client_id: &str,
    secret: &str,
    basic: bool,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut form = match path {
        "/oauth/token" | "/oauth_token.do" => vec![("grant_type", "client_credentials")],
        _ => vec![("token", "not-a-token")],
    };
    if basic {
        post_form(server, path, Some((client_id, secret)), &form).await
    } else {
        form.extend([("client_id", client_id), ("client_secret", secret)]);
        post_form(server, path, None, &form).await
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

server_test!(wrong_client_secrets_lock_that_client_id_alone, |server| {
    let app = server
        .app(TokenFormat::Opaque, &["useraccount"], None)
        .await;
    let other = server
        .app(TokenFormat::Opaque, &["useraccount"], None)
        .await;
    // Ten wrong secrets (the default), by either method, spread over every endpoint.
    for n in 0..10 {
        let path = CLIENT_ENDPOINTS[n % CLIENT_ENDPOINTS.len()];
        let (status, headers, body) =
            with_secret(&server, path, &app.client_id, "a wrong secret", n % 2 == 0).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        assert!(headers.get("retry-after").is_none());
    }
    // Now every endpoint refuses that client_id, and the right secret gets exactly the answer
    // a wrong one gets: nothing tells whether it was right.
    for path in CLIENT_ENDPOINTS {
        for basic in [true, false] {
            let (status, headers, body) =
                with_secret(&server, path, &app.client_id, &app.secret, basic).await;
            let wrong = with_secret(&server, path, &app.client_id, "a wrong secret", basic).await;
            assert_eq!(status, 429, "{path}");
            assert!((1..=300).contains(&retry_after(&headers)));
            assert_eq!(headers["cache-control"], "no-store");
            assert!(headers.get("www-authenticate").is_none());
            assert_eq!((wrong.0, &wrong.2), (status, &body));
            assert_eq!(body, serde_json::Value::Null, "no body");
            assert!((1..=300).contains(&retry_after(&wrong.1)));
        }
    }
    // Another application is not held up.
    let (status, _, body) = with_secret(
        &server,
        "/oauth/token",
        &other.client_id,
        &other.secret,
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
});

server_test!(
    a_client_lock_ends_when_retry_after_says_and_success_clears_failures,
    configured(|settings| {
        settings.client_lockout = ClientLockout {
            failures: 3,
            window_seconds: 2,
        };
    }),
    |server| {
        let app = server.app(TokenFormat::Jwt, &["useraccount"], None).await;
        let attempt = |secret: &str, basic: bool| {
            let (server, client_id, secret) = (&server, app.client_id.clone(), secret.to_owned());
            async move { with_secret(server, "/oauth/token", &client_id, &secret, basic).await }
        };
        // Two failures, then a success: the count starts again.
        for basic in [true, false] {
            assert_eq!(attempt("a wrong secret", basic).await.0, 401);
        }
        assert_eq!(attempt(&app.secret, false).await.0, 200);
        for basic in [true, false] {
            assert_eq!(attempt("a wrong secret", basic).await.0, 401);
        }
        assert_eq!(attempt(&app.secret, true).await.0, 200);
        // Three in a row lock it, for at most the window.
        for _ in 0..3 {
            assert_eq!(attempt("a wrong secret", true).await.0, 401);
        }
        let (status, headers, _) = attempt(&app.secret, true).await;
        assert_eq!(status, 429);
        let wait = retry_after(&headers);
        assert!((1..=2).contains(&wait), "{wait}");
        // Attempts during the lock do not prolong it: once Retry-After has passed, the right
        // secret works again.
        assert_eq!(attempt("a wrong secret", false).await.0, 429);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        let (status, _, body) = attempt(&app.secret, false).await;
        assert_eq!(status, 200, "{body}");
    }
);

server_test!(
    unknown_client_ids_lock_like_real_ones,
    configured(|settings| {
        settings.client_lockout = ClientLockout {
            failures: 3,
            window_seconds: 60,
        };
    }),
    |server| {
        let app = server
            .app(TokenFormat::Opaque, &["useraccount"], None)
            .await;
        let mut answers = Vec::new();
        for client_id in [app.client_id.as_str(), "no-such-application"] {
            let mut statuses = Vec::new();
            for _ in 0..4 {
                let (status, headers, body) =
                    with_secret(&server, "/oauth/introspect", client_id, "a guess", true).await;
                statuses.push((status, headers.get("retry-after").is_some(), body));
            }
            answers.push(statuses);
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(
            answers[0].iter().map(|a| a.0).collect::<Vec<_>>(),
            [401, 401, 401, 429]
        );
        // A client_id longer than any application can have is refused and never counted.
        let long = "x".repeat(129);
        for _ in 0..5 {
            let (status, _, _) = with_secret(&server, "/oauth/token", &long, "a guess", true).await;
            assert_eq!(status, 401);
        }
    }
);
