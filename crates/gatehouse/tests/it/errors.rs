//! Every error the OAuth endpoints must answer as the RFCs prescribe: status, `error` value and
//! headers, never a 500.

use gatehouse_core::client::TokenFormat;
use serde_json::Value;

use crate::harness::{TestServer, post_form, server_test};

fn assert_oauth_error(
    (status, headers, body): (u16, reqwest::header::HeaderMap, Value),
    expected_status: u16,
    expected_error: &str,
) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"], expected_error, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    if expected_error == "invalid_client" {
        assert_eq!(headers["www-authenticate"], "Basic realm=\"gatehouse\"");
    }
}

async fn raw(
    server: &TestServer,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

server_test!(token_endpoint_errors, |server| {
    let app = server.app(TokenFormat::Opaque, &["read"], None).await;
    let basic = Some((app.client_id.as_str(), app.secret.as_str()));
    let cc = [("grant_type", "client_credentials")];

    // Client authentication (RFC 6749 §5.2 invalid_client, 401 with a challenge).
    assert_oauth_error(
        post_form(&server, "/oauth/token", None, &cc).await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/token",
            Some((&app.client_id, "wrong")),
            &cc,
        )
        .await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        post_form(&server, "/oauth/token", Some(("nobody", &app.secret)), &cc).await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", "x"),
            ],
        )
        .await,
        401,
        "invalid_client",
    );
    // Two authentication methods at once.
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/token",
            basic,
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", &app.secret),
            ],
        )
        .await,
        400,
        "invalid_request",
    );
    // Grant and scope.
    assert_oauth_error(
        post_form(&server, "/oauth/token", basic, &[]).await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        post_form(&server, "/oauth/token", basic, &[("grant_type", "magic")]).await,
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/token",
            basic,
            &[
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
        )
        .await,
        400,
        "unauthorized_client",
    );
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/token",
            basic,
            &[("grant_type", "client_credentials"), ("scope", "write")],
        )
        .await,
        400,
        "invalid_scope",
    );
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/token",
            basic,
            &[("grant_type", "client_credentials"), ("scope", "re\"ad")],
        )
        .await,
        400,
        "invalid_scope",
    );
    // The request's shape: content type, repeated parameters, size.
    assert_oauth_error(
        raw(
            &server,
            "application/json",
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
        )
        .await,
        400,
        "invalid_request",
    );
    assert_oauth_error(
        raw(
            &server,
            "application/x-www-form-urlencoded",
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
        )
        .await,
        400,
        "invalid_request",
    );
    let mut big = b"grant_type=client_credentials&pad=".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 * 1024));
    assert_oauth_error(
        raw(&server, "application/x-www-form-urlencoded", big).await,
        413,
        "invalid_request",
    );
    assert_oauth_error(
        raw(
            &server,
            "application/x-www-form-urlencoded",
            vec![0xff, 0xfe, b'=', 0x80],
        )
        .await,
        401,
        "invalid_client",
    );
    // Not an allowed grant for this client: unauthorized_client.
    let public = server
        .app_with(gatehouse_core::registry::AppChanges {
            name: Some("spa".into()),
            client_type: Some(gatehouse_core::client::ClientType::Public),
            grant_types: Some(vec![gatehouse_core::client::GrantType::AuthorizationCode]),
            redirect_uris: Some(vec!["https://spa.example/cb".into()]),
            ..Default::default()
        })
        .await;
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &public.client_id),
            ],
        )
        .await,
        400,
        "unauthorized_client",
    );
    // A GET is not a token request.
    let response = server
        .http
        .get(server.url("/oauth/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
});

server_test!(introspection_and_revocation_errors, |server| {
    let app = server.app(TokenFormat::Jwt, &["read"], None).await;
    let other = server.app(TokenFormat::Jwt, &["read"], None).await;
    let basic = Some((app.client_id.as_str(), app.secret.as_str()));
    let token = server.token(&app, None).await;

    for path in [
        "/oauth/introspect",
        "/oauth/revoke",
        "/oauth_revoke_token.do",
    ] {
        assert_oauth_error(
            post_form(&server, path, None, &[("token", &token)]).await,
            401,
            "invalid_client",
        );
        assert_oauth_error(
            post_form(&server, path, basic, &[]).await,
            400,
            "invalid_request",
        );
    }
    // Garbage and unknown tokens: inactive, and revocation succeeds without saying more.
    for garbage in ["x", "gh_at_unknown", "a.b.c", &format!("{token}x")] {
        let (status, _, body) =
            post_form(&server, "/oauth/introspect", basic, &[("token", garbage)]).await;
        assert_eq!((status, body), (200, serde_json::json!({"active": false})));
        let (status, _, _) =
            post_form(&server, "/oauth/revoke", basic, &[("token", garbage)]).await;
        assert_eq!(status, 200);
    }
    // Another client's token cannot be revoked by this one.
    assert_oauth_error(
        post_form(
            &server,
            "/oauth/revoke",
            Some((&other.client_id, &other.secret)),
            &[("token", &token)],
        )
        .await,
        400,
        "unauthorized_client",
    );
    let (_, _, body) = post_form(&server, "/oauth/introspect", basic, &[("token", &token)]).await;
    assert_eq!(body["active"], true);
});

server_test!(bearer_errors_follow_rfc_6750, |server| {
    let url = server.url("/api/admin/v1/apps");
    // No token: a bare challenge.
    let response = server.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        server.challenge("", "").as_str()
    );
    // A bad token: invalid_token.
    let response = server
        .http
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
        "{challenge}"
    );
    // A valid token without the scope: insufficient_scope naming it.
    server.user("ops", &["admin"]).await;
    let app = server.app(TokenFormat::Jwt, &["other"], Some("ops")).await;
    let token = server.token(&app, None).await;
    let response = server
        .http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["www-authenticate"],
        server
            .challenge(", error=\"insufficient_scope\", scope=\"useraccount\"", "")
            .as_str()
    );
    // Tokens never travel in the query string (RFC 6750 §2.3; more in `bearer`).
    let response = server
        .http
        .get(format!("{url}?access_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["www-authenticate"],
        server.challenge(", error=\"invalid_request\"", "").as_str()
    );
});
