//! A bearer token is presented one way (RFC 6750 §2): in the `Authorization` header everywhere,
//! or as the form body's `access_token` of a UserInfo `POST`; never in the query string, and
//! never two ways at once. Every API that takes a token — UserInfo, the admin API, the Table
//! API, gateway routes and the outbound proxy — answers `400 invalid_request` with a Bearer
//! challenge.

use gatehouse_core::client::TokenFormat;
use gatehouse_core::gateway::Route;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::gateway::{raw_get, start_upstream};
use crate::harness::{TestServer, server_test};

const INVALID_REQUEST: &str = ", error=\"invalid_request\"";

async fn answer(response: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// A request refused as `invalid_request`, with the challenge of the resource under `prefix`.
fn assert_refused(
    server: &TestServer,
    prefix: &str,
    case: &str,
    (status, headers, body): &(u16, HeaderMap, Value),
) {
    assert_eq!(*status, 400, "{case}: {body}");
    assert_eq!(body["error"], "invalid_request", "{case}: {body}");
    let challenge = server.challenge(INVALID_REQUEST, prefix);
    assert_eq!(headers["www-authenticate"], challenge.as_str(), "{case}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        crate::edges::allowed_description(description),
        "{case}: {description}"
    );
}

/// A token for `clerk` with `openid` and `useraccount`, from an application running as them.
async fn clerk_token(server: &TestServer, format: TokenFormat) -> String {
    server.user("clerk", &[]).await;
    let app = server
        .app(format, &["openid", "useraccount"], Some("clerk"))
        .await;
    server.token(&app, Some("openid useraccount")).await
}

server_test!(
    userinfo_takes_the_token_from_the_header_or_the_post_body_once,
    |server| {
        let token = clerk_token(&server, TokenFormat::Jwt).await;
        let url = server.url("/oauth/userinfo");
        let http = &server.http;
        let form = |pairs: &[(&str, &str)]| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
        };
        let post = |body: String| {
            http.post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        };
        // One way each: the header (GET and POST) and the POST body.
        for (case, request) in [
            ("header, GET", http.get(&url).bearer_auth(&token)),
            ("header, POST", http.post(&url).bearer_auth(&token)),
            (
                "header, POST with an unrelated form",
                post(form(&[("claims", "x")])).bearer_auth(&token),
            ),
            ("body, POST", post(form(&[("access_token", &token)]))),
        ] {
            let (status, _, body) = answer(request.send().await.unwrap()).await;
            assert_eq!(status, 200, "{case}: {body}");
            assert!(body["sub"].is_string(), "{case}: {body}");
        }
        // Two ways, the query string, or a body token twice.
        let query_url = format!("{url}?access_token={token}");
        for (case, request) in [
            (
                "header and body",
                post(form(&[("access_token", &token)])).bearer_auth(&token),
            ),
            (
                "header and body, the body's token different",
                post(form(&[("access_token", "gh_at_other")])).bearer_auth(&token),
            ),
            ("query alone, GET", http.get(&query_url)),
            (
                "query and header, GET",
                http.get(&query_url).bearer_auth(&token),
            ),
            (
                "query and body, POST",
                http.post(&query_url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[("access_token", &token)])),
            ),
            (
                "the body's token twice",
                post(form(&[("access_token", &token), ("access_token", &token)])),
            ),
        ] {
            assert_refused(
                &server,
                "",
                case,
                &answer(request.send().await.unwrap()).await,
            );
        }
        // A GET's body is no place for a token (§2.2), and neither is a JSON body.
        let (status, _, _) = answer(
            http.get(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("access_token", &token)]))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        let (status, headers, _) = answer(
            http.post(&url)
                .json(&json!({"access_token": token}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(
            headers["www-authenticate"],
            server.challenge("", "").as_str()
        );
    }
);

server_test!(every_api_refuses_a_token_in_the_query_string, |server| {
    let upstream = start_upstream().await;
    let route = json!({"name": "echo", "prefix": "/api/x/echo",
        "upstream": format!("http://{}", upstream.address), "timeout_seconds": 10});
    server
        .services
        .registry
        .create_entry::<Route>(route, false)
        .await
        .unwrap();
    server.user("ops", &["admin"]).await;
    for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
        let app = server.app(format, &["useraccount"], Some("ops")).await;
        let token = server.token(&app, None).await;
        let http = &server.http;
        // (Path, whether it takes a POST, the prefix of its gateway route.)
        for (path, posts, prefix) in [
            ("/api/admin/v1/whoami", false, ""),
            ("/api/admin/v1/apps", true, ""),
            ("/api/now/table/incident", true, ""),
            ("/api/x/echo/items", true, "/api/x/echo"),
            ("/api/outbound/crm/contacts", true, ""),
        ] {
            let url = server.url(path);
            let with_query = format!("{url}?access_token={token}");
            let encoded_name = format!("{url}?a=1&access%5Ftoken={token}");
            let mut cases = vec![
                (
                    "header and query",
                    http.get(&with_query).bearer_auth(&token),
                ),
                ("query alone", http.get(&with_query)),
                (
                    "header and an encoded query name",
                    http.get(&encoded_name).bearer_auth(&token),
                ),
                (
                    "an empty query token",
                    http.get(format!("{url}?access_token=")).bearer_auth(&token),
                ),
            ];
            if posts {
                cases.push((
                    "header and query, POST",
                    http.post(&with_query).bearer_auth(&token).json(&json!({})),
                ));
            }
            for (case, request) in cases {
                let case = format!("{format:?} {path}: {case}");
                let answered = answer(request.send().await.unwrap()).await;
                assert_refused(&server, prefix, &case, &answered);
            }
        }
        // The header alone still works, also with other query parameters.
        let (status, _, body) = answer(
            http.get(server.url("/api/x/echo/items?token=not-a-bearer"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{format:?}: {body}");
        assert_eq!(body["query"], "token=not-a-bearer");
        let (status, _, _) = answer(
            http.get(server.url("/api/admin/v1/whoami"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{format:?}");
    }
    // Nothing refused ever reached the upstream.
    assert_eq!(upstream.received().len(), 2);

    // Two Authorization headers, written on the wire as they are.
    let app = server
        .app(TokenFormat::Jwt, &["useraccount"], Some("ops"))
        .await;
    let token = server.token(&app, None).await;
    for (path, prefix) in [
        ("/api/admin/v1/whoami", ""),
        ("/oauth/userinfo", ""),
        ("/api/x/echo/items", "/api/x/echo"),
    ] {
        let second = format!("Bearer {token}");
        let response = raw_get(&server, path, &token, &[("Authorization", &second)]).await;
        assert_eq!(response.status, 400, "{path}: {}", response.body);
        assert_eq!(response.body["error"], "invalid_request", "{path}");
        assert_eq!(
            response.header("www-authenticate"),
            Some(server.challenge(INVALID_REQUEST, prefix).as_str()),
            "{path}"
        );
    }
    assert_eq!(upstream.received().len(), 2);
});
