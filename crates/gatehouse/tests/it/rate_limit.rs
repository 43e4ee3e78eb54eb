//! The request rate limit per client address on the endpoints that check credentials: one
//! allowance per address across all of them, `429` with `Retry-After` past it, other endpoints
//! and other addresses untouched, the address found through trusted proxies only.
//!
//! The allowance refills at one request per second in these tests, so a check that a request
//! is refused allows for a refill falling between two requests: of a few tries, one must be
//! refused where a separate allowance would have let them all through.

use std::num::NonZeroU32;

use gatehouse_core::client::{ClientType, TokenFormat};
use gatehouse_core::forwarding::TrustedProxies;
use gatehouse_http::RateLimit;
use reqwest::header::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::harness::{TestApp, TestServer, server_test};
use crate::limits::{answer_head, request_head, status};
use crate::people::{Browser, authorize_url, people_app};

fn one_per_second(burst: u32) -> Option<RateLimit> {
    Some(RateLimit {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(burst).unwrap(),
    })
}

/// A client-authenticated request to `path` (any of the token, introspection and revocation
/// endpoints), optionally with an `X-Forwarded-For`.
async fn call(
    server: &TestServer,
    app: &TestApp,
    path: &str,
    forwarded_for: Option<&str>,
) -> (u16, HeaderMap, String) {
    let form: &[(&str, &str)] = match path {
        "/oauth/token" | "/oauth_token.do" => &[("grant_type", "client_credentials")],
        _ => &[("token", "not-a-token")],
    };
    let mut request = server
        .http
        .post(server.url(path))
        .basic_auth(&app.client_id, Some(&app.secret))
        .form(form);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// Calls the token endpoint until the allowance is spent; panics if it never is.
async fn spend(server: &TestServer, app: &TestApp, forwarded_for: Option<&str>) {
    for _ in 0..50 {
        if call(server, app, "/oauth/token", forwarded_for).await.0 == 429 {
            return;
        }
    }
    panic!("the allowance was never spent");
}

/// The refusal of one of three calls, if one is refused.
async fn refused(
    server: &TestServer,
    app: &TestApp,
    path: &str,
    forwarded_for: Option<&str>,
) -> Option<(u16, HeaderMap, String)> {
    for _ in 0..3 {
        let answer = call(server, app, path, forwarded_for).await;
        if answer.0 == 429 {
            return Some(answer);
        }
    }
    None
}

fn assert_too_many((status, headers, body): &(u16, HeaderMap, String)) {
    assert_eq!(*status, 429);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body.is_empty(), "{body}");
}

server_test!(
    the_credential_endpoints_share_one_allowance_per_address,
    configured(|settings| settings.rate_limit = one_per_second(5)),
    |server| {
        let app = server
            .app(TokenFormat::Opaque, &["useraccount"], None)
            .await;
        let people = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let login = browser
            .get(&authorize_url(&server, &people.client_id, &[]))
            .await;
        assert_eq!(login.status, 200);

        spend(&server, &app, None).await;
        // Every endpoint that checks credentials draws on the same allowance (of five: three
        // tries at a fresh one would all pass).
        for path in [
            "/oauth/token",
            "/oauth_token.do",
            "/oauth/introspect",
            "/oauth/revoke",
            "/oauth_revoke_token.do",
        ] {
            let refusal = refused(&server, &app, path, None).await;
            assert_too_many(&refusal.unwrap_or_else(|| panic!("{path} is not limited")));
        }
        let mut login_refused = None;
        for _ in 0..3 {
            let page = browser
                .post(
                    &server.url("/oauth/authorize/login"),
                    &[
                        ("continuation", &login.field("continuation")),
                        ("csrf", &login.field("csrf")),
                        ("username", "nobody"),
                        ("password", "a guess"),
                    ],
                )
                .await;
            if page.status == 429 {
                login_refused = Some((page.status, page.headers, page.body));
                break;
            }
        }
        assert_too_many(&login_refused.expect("the login form is limited too"));
        // The refusal comes before the body is looked at: a request declaring more than any
        // form may have would otherwise be answered 413.
        let mut answers = Vec::new();
        for _ in 0..3 {
            let mut stream = TcpStream::connect(server.settings.listen).await.unwrap();
            let head = request_head(
                &server,
                "/oauth/token",
                "application/x-www-form-urlencoded",
                None,
                "Content-Length: 102400\r\n",
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            answers.push(status(&answer_head(&mut stream).await));
        }
        assert!(answers.contains(&429), "{answers:?}");
        assert!(
            answers.iter().all(|s| [429, 413].contains(s)),
            "{answers:?}"
        );
        // Nothing else is limited.
        for path in [
            "/.well-known/openid-configuration",
            "/oauth/jwks",
            "/healthz",
        ] {
            let status = server
                .http
                .get(server.url(path))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "{path}");
        }
        let page = browser
            .get(&authorize_url(&server, &people.client_id, &[]))
            .await;
        assert_eq!(page.status, 200);
        // Retry-After tells the truth: after it, the address is served again.
        spend(&server, &app, None).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (status, _, body) = call(&server, &app, "/oauth/token", None).await;
        assert_eq!(status, 200, "{body}");
    }
);

server_test!(
    behind_a_trusted_proxy_each_client_address_has_its_own_allowance,
    configured(|settings| {
        settings.rate_limit = one_per_second(3);
        settings.trusted_proxies = TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
    }),
    |server| {
        let app = server.app(TokenFormat::Jwt, &["useraccount"], None).await;
        spend(&server, &app, Some("203.0.113.1")).await;
        assert!(
            refused(&server, &app, "/oauth/introspect", Some("203.0.113.1"))
                .await
                .is_some()
        );
        // Another client behind the same proxy has its whole allowance.
        for _ in 0..3 {
            let (status, _, body) = call(&server, &app, "/oauth/token", Some("203.0.113.2")).await;
            assert_eq!(status, 200, "{body}");
        }
        // An IPv6 client counts by its /64: another address in it is the same client, one in the
        // next /64 is not.
        spend(&server, &app, Some("2001:db8:0:1::1")).await;
        assert!(
            refused(&server, &app, "/oauth/token", Some("2001:db8:0:1::2"))
                .await
                .is_some()
        );
        for _ in 0..3 {
            let (status, _, _) = call(&server, &app, "/oauth/token", Some("2001:db8:0:2::1")).await;
            assert_eq!(status, 200);
        }
    }
);

server_test!(
    without_trusted_proxies_a_forwarded_address_changes_nothing,
    configured(|settings| settings.rate_limit = one_per_second(3)),
    |server| {
        let app = server.app(TokenFormat::Jwt, &["useraccount"], None).await;
        spend(&server, &app, Some("203.0.113.1")).await;
        assert!(
            refused(&server, &app, "/oauth/token", Some("203.0.113.2"))
                .await
                .is_some()
        );
        assert!(refused(&server, &app, "/oauth/token", None).await.is_some());
    }
);

server_test!(with_the_limit_off_bursts_pass, |server| {
    assert!(server.settings.rate_limit.is_none());
    let app = server
        .app(TokenFormat::Opaque, &["useraccount"], None)
        .await;
    for _ in 0..150 {
        let (status, _, body) = call(&server, &app, "/oauth/introspect", None).await;
        assert_eq!(status, 200, "{body}");
    }
});
