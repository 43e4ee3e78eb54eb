//! The client-credentials grant through a real OAuth client library (the Rust `oauth2` crate):
//! both client authentication methods, both token formats, then introspection and revocation.

use gatehouse_core::client::TokenFormat;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, IntrospectionUrl, Scope, TokenIntrospectionResponse,
    TokenResponse, TokenUrl,
};

use crate::harness::{introspect, server_test};

/// The `oauth2` crate's HTTP seam, served by reqwest.
async fn send(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::new();
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder
        .body(response.bytes().await?.to_vec())
        .expect("a response"))
}

async fn full_cycle(server: &crate::harness::TestServer, format: TokenFormat, auth: AuthType) {
    let app = server.app(format, &["useraccount", "read"], None).await;
    let client = BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(app.secret.clone()))
        .set_auth_type(auth.clone())
        .set_token_uri(TokenUrl::new(server.url("/oauth_token.do")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(server.url("/oauth/introspect")).unwrap());

    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .request_async(&send)
        .await
        .unwrap_or_else(|e| panic!("{format:?} {auth:?}: {e:?}"));
    assert_eq!(token.token_type().as_ref(), "bearer");
    assert_eq!(token.expires_in().unwrap().as_secs(), 1800);
    assert_eq!(token.scopes().unwrap(), &vec![Scope::new("read".into())]);
    let access_token = token.access_token().clone();
    match format {
        TokenFormat::Jwt => assert_eq!(access_token.secret().matches('.').count(), 2),
        TokenFormat::Opaque => assert!(access_token.secret().starts_with("gh_at_")),
    }

    let introspection = client
        .introspect(&access_token)
        .request_async(&send)
        .await
        .unwrap();
    assert!(introspection.active());
    assert_eq!(introspection.client_id().unwrap().as_str(), app.client_id);
    assert_eq!(
        introspection.scopes().unwrap(),
        &vec![Scope::new("read".into())]
    );
    assert_eq!(introspection.sub(), Some(app.client_id.as_str()));
    assert_eq!(introspection.iss(), Some(server.base.as_str()));

    // The oauth2 crate sends revocation requests only to https URLs; the test server speaks
    // plain HTTP on loopback, so revocation is sent by hand with the same client authentication.
    let mut revocation = server.http.post(server.url("/oauth/revoke"));
    let mut form = vec![
        ("token", access_token.secret().as_str()),
        ("token_type_hint", "access_token"),
    ];
    match auth {
        AuthType::BasicAuth => {
            revocation = revocation.basic_auth(&app.client_id, Some(&app.secret))
        }
        _ => form.extend([
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.secret.as_str()),
        ]),
    }
    assert_eq!(revocation.form(&form).send().await.unwrap().status(), 200);
    let introspection = client
        .introspect(&access_token)
        .request_async(&send)
        .await
        .unwrap();
    assert!(
        !introspection.active(),
        "{format:?} {auth:?}: revoked but active"
    );
    assert_eq!(introspection.client_id(), None);

    // A revoked token reaches no protected API either.
    let response = server
        .http
        .get(server.url("/api/admin/v1/whoami"))
        .bearer_auth(access_token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

server_test!(
    both_auth_methods_and_both_formats_through_oauth2_crate,
    |server| {
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
                full_cycle(&server, format, auth).await;
            }
        }
    }
);

server_test!(
    defaults_apply_when_no_scope_is_requested_and_run_as_names_the_user,
    |server| {
        server.user("svc-billing", &[]).await;
        let app = server
            .app(TokenFormat::Jwt, &["a", "b"], Some("svc-billing"))
            .await;
        let token = server.token(&app, None).await;
        let response = server
            .http
            .get(server.url("/api/admin/v1/whoami"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let who: serde_json::Value = response.json().await.unwrap();
        assert_eq!(who["scope"], "a b");
        assert_eq!(who["user_name"], "svc-billing");
        assert_eq!(who["client_id"], app.client_id.as_str());
    }
);

server_test!(disabling_the_application_invalidates_its_tokens, |server| {
    let app = server.app(TokenFormat::Opaque, &["a"], None).await;
    let token = server.token(&app, None).await;
    server
        .update_app(
            &app.client_id,
            gatehouse_core::registry::AppChanges {
                active: Some(false),
                ..Default::default()
            },
        )
        .await;
    let (status, _, body) = crate::harness::post_form(
        &server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let other = server.app(TokenFormat::Opaque, &[], None).await;
    let (_, _, body) = crate::harness::post_form(
        &server,
        "/oauth/introspect",
        Some((&other.client_id, &other.secret)),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body, serde_json::json!({"active": false}));
});

/// Two instances on one PostgreSQL database: a change made through one reaches the other's
/// caches at once (LISTEN/NOTIFY), well before their time to live runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_reaches_the_others_cache() {
    let Some(server) = crate::harness::TestServer::start(crate::harness::Backend::Postgres).await
    else {
        return;
    };
    let app = server.app(TokenFormat::Opaque, &[], None).await;
    server.token(&app, None).await;
    let other_instance = gatehouse::server::open_services(&server.settings)
        .await
        .unwrap();
    other_instance
        .registry
        .update_app(
            &app.client_id,
            gatehouse_core::registry::AppChanges {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..20 {
        let (status, _, _) = crate::harness::post_form(
            &server,
            "/oauth/token",
            Some((&app.client_id, &app.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        if status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        refused,
        "the disabled application still obtained tokens after 2 s"
    );
}

server_test!(
    opaque_tokens_are_keyed_in_issue_order_and_older_tokens_still_work,
    |server| {
        use gatehouse_core::secret;

        let app = server.app(TokenFormat::Opaque, &[], None).await;
        let tokens = &server.services.tokens;
        let first = server.token(&app, None).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let second = server.token(&app, None).await;
        // The prefix, the issue time in milliseconds, then 256 random bits.
        let millis = |token: &str| i64::from_str_radix(&token["gh_at_".len()..][..11], 16).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        for token in [&first, &second] {
            assert_eq!(token.len(), "gh_at_".len() + 11 + 43, "{token}");
            assert!((now - 60_000..=now).contains(&millis(token)), "{token}");
        }
        assert!(millis(&first) < millis(&second));
        let (first_key, second_key) = (
            tokens.access_token_key(&first),
            tokens.access_token_key(&second),
        );
        assert!(first_key < second_key, "stored in the order issued");
        for key in [&first_key, &second_key] {
            assert!(
                server
                    .services
                    .store
                    .find_access_token(key)
                    .await
                    .unwrap()
                    .is_some()
            );
        }

        // Neither part of an issued token can be changed and still name a token: not the time
        // (the hash covers it), not the random part.
        let flip = |token: &str, at: usize| {
            let mut bytes = token.as_bytes().to_vec();
            bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
            String::from_utf8(bytes).unwrap()
        };
        for forged in [
            flip(&first, "gh_at_".len() + 10),
            flip(&first, first.len() - 1),
            first.to_uppercase(),
            format!("{first}A"),
        ] {
            assert_eq!(introspect(&server, &app, &forged).await["active"], false);
        }

        // A token issued before tokens carried their time has its hash as its key: it is
        // introspected and revoked as it was.
        let older = format!("gh_at_{}", secret::generate());
        server
            .store_app_token(&app, &tokens.hasher().hash(&older), now / 1000)
            .await;
        assert_eq!(introspect(&server, &app, &older).await["active"], true);
        let (status, _, _) = crate::harness::post_form(
            &server,
            "/oauth/revoke",
            Some((&app.client_id, &app.secret)),
            &[("token", &older)],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(introspect(&server, &app, &older).await["active"], false);
        assert_eq!(introspect(&server, &app, &second).await["active"], true);
    }
);
