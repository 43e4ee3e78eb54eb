//! OpenID Connect Back-Channel Logout 1.0: applications that registered a
//! `backchannel_logout_uri` get a signed logout token, at a small receiving server here, when
//! the user signs out or an administrator ends their sessions — and a receiver that never
//! answers holds up neither the sign-out nor the other applications.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use gatehouse_core::Error;
use gatehouse_core::client::ClientType;
use gatehouse_core::registry::{AppChanges, UserChanges};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::cli::gatehouse;
use crate::harness::{TestApp, TestServer, server_test};
use crate::people::{Browser, PASSWORD, VERIFIER, authorize_url, people_app, redeem};

/// A logout endpoint on 127.0.0.1: every request's content type and `logout_token`.
struct Receiver {
    uri: String,
    received: mpsc::UnboundedReceiver<(String, String)>,
}

impl Receiver {
    async fn start() -> Receiver {
        async fn logout(
            State(sender): State<mpsc::UnboundedSender<(String, String)>>,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            let content_type = headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let token = form_urlencoded::parse(body.as_bytes())
                .find(|(name, _)| name == "logout_token")
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default();
            sender.send((content_type, token)).unwrap();
            StatusCode::OK
        }
        let (sender, received) = mpsc::unbounded_channel();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/backchannel", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/backchannel", axum::routing::post(logout))
            .with_state(sender);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { uri, received }
    }

    /// The next logout token; a missing one fails the test after a generous bound.
    async fn next(&mut self) -> String {
        let (content_type, token) =
            tokio::time::timeout(Duration::from_secs(30), self.received.recv())
                .await
                .expect("a logout token arrives")
                .unwrap();
        assert_eq!(content_type, "application/x-www-form-urlencoded");
        token
    }

    /// Nothing more arrived: checked after a token that was sent later has arrived.
    fn nothing_more(&mut self) {
        assert!(self.received.try_recv().is_err());
    }
}

/// A logout endpoint that accepts connections and never answers them.
async fn silent_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/backchannel", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    uri
}

async fn listening_app(server: &TestServer, uri: &str, session_required: bool) -> TestApp {
    let app = people_app(server, ClientType::Confidential).await;
    server
        .update_app(
            &app.client_id,
            AppChanges {
                backchannel_logout_uri: Some(uri.to_owned()),
                backchannel_logout_session_required: Some(session_required),
                ..AppChanges::default()
            },
        )
        .await;
    app
}

/// Signs `user` in to `app` in `browser` — logging in unless the browser is signed in, and
/// consenting unless the consent is remembered — and returns the claims of its ID token.
async fn sign_in(server: &TestServer, browser: &mut Browser, app: &TestApp, user: &str) -> Value {
    let extra = [("nonce", "n-1")];
    let mut page = browser
        .get(&authorize_url(server, &app.client_id, &extra))
        .await;
    if page.body.contains("name=\"password\"") {
        page = browser.login(server, &page, user, PASSWORD).await;
    }
    if page.body.contains("name=\"decision\"") {
        page = browser.consent(server, &page, "allow").await;
    }
    let done = page;
    assert_eq!(done.status, 303, "{}", done.body);
    let params = done.redirect_params();
    let (status, body) = redeem(server, app, &params["code"], Some(VERIFIER)).await;
    assert_eq!(status, 200, "{body}");
    unverified_claims(body["id_token"].as_str().unwrap())
}

fn unverified_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Signs the browser's user out through the confirmation page.
async fn sign_out(server: &TestServer, browser: &mut Browser) {
    let confirm = browser.get(&server.url("/oauth/logout")).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let signed_out = browser
        .post(
            &server.url("/oauth/logout"),
            &[
                ("csrf", &confirm.field("csrf")),
                ("form", &confirm.field("form")),
            ],
        )
        .await;
    assert_eq!(signed_out.status, 200, "{}", signed_out.body);
    assert!(signed_out.body.contains("You are signed out"));
}

/// Verifies a logout token as an application would (§2.6): signed with a key of the published
/// JWKS, typed `logout+jwt`, from this issuer, for `app`, with the event and without `nonce`.
async fn verify(server: &TestServer, app: &TestApp, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let (_, jwks) = server.get_json("/oauth/jwks").await;
    let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("a published key");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&server.base]);
    validation.set_audience(&[&app.client_id]);
    validation.set_required_spec_claims(&["iss", "aud", "exp", "iat", "sub"]);
    let claims: Value =
        jsonwebtoken::decode(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .expect("the logout token verifies")
            .claims;
    assert_eq!(
        claims["events"],
        serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": {} })
    );
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert!(!claims["jti"].as_str().unwrap().is_empty());
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((1..=300).contains(&lifetime), "{claims}");
    claims
}

server_test!(
    signing_out_sends_a_logout_token_naming_the_session,
    |server| {
        let (_, discovery) = server.get_json("/.well-known/openid-configuration").await;
        assert_eq!(discovery["backchannel_logout_supported"], true);
        assert_eq!(discovery["backchannel_logout_session_supported"], true);

        server.user("alice", &[]).await;
        let mut receiver = Receiver::start().await;
        let app = listening_app(&server, &receiver.uri, false).await;
        // An application that registered no logout URI hears nothing and holds up nothing.
        let quiet = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let id_token = sign_in(&server, &mut browser, &app, "alice").await;
        let sid = id_token["sid"]
            .as_str()
            .expect("the ID token names its session");
        let again = sign_in(&server, &mut browser, &quiet, "alice").await;
        assert_eq!(again["sid"], sid, "one browser session, one sid");

        sign_out(&server, &mut browser).await;
        let claims = verify(&server, &app, &receiver.next().await).await;
        assert_eq!(claims["sid"], sid);
        assert_eq!(claims["sub"], id_token["sub"]);

        // Another sign-in is another session, with another sid.
        let mut other = Browser::new();
        let fresh = sign_in(&server, &mut other, &app, "alice").await;
        assert_ne!(fresh["sid"], sid);
        sign_out(&server, &mut other).await;
        let claims = verify(&server, &app, &receiver.next().await).await;
        assert_eq!(claims["sid"], fresh["sid"]);
        receiver.nothing_more();
    }
);

server_test!(
    a_silent_receiver_holds_up_neither_the_sign_out_nor_others,
    |server| {
        server.user("bob", &[]).await;
        let silent = listening_app(&server, &silent_receiver().await, false).await;
        let mut receiver = Receiver::start().await;
        let app = listening_app(&server, &receiver.uri, false).await;
        let mut browser = Browser::new();
        sign_in(&server, &mut browser, &silent, "bob").await;
        let id_token = sign_in(&server, &mut browser, &app, "bob").await;

        // The page answers while the silent application still holds its delivery open.
        sign_out(&server, &mut browser).await;
        let claims = verify(&server, &app, &receiver.next().await).await;
        assert_eq!(claims["sid"], id_token["sid"]);
        // The session is over whatever the applications answered.
        let page = browser.get(&server.url("/account")).await;
        assert!(page.body.contains("name=\"password\""), "{}", page.body);
    }
);

server_test!(
    locking_or_deactivating_a_user_sends_logout_tokens,
    |server| {
        server.user("carol", &[]).await;
        let mut by_user = Receiver::start().await;
        let mut by_session = Receiver::start().await;
        let user_app = listening_app(&server, &by_user.uri, false).await;
        let session_app = listening_app(&server, &by_session.uri, true).await;
        let mut laptop = Browser::new();
        let mut phone = Browser::new();
        let first = sign_in(&server, &mut laptop, &user_app, "carol").await;
        sign_in(&server, &mut laptop, &session_app, "carol").await;
        let second = sign_in(&server, &mut phone, &session_app, "carol").await;

        server
            .services
            .registry
            .update_user(
                "carol",
                UserChanges {
                    locked_out: Some(true),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap();
        // One token naming only the user, meaning all of their sessions.
        let claims = verify(&server, &user_app, &by_user.next().await).await;
        assert_eq!(claims["sub"], first["sub"]);
        assert!(claims.get("sid").is_none(), "{claims}");
        // One token per ended session for the application that requires `sid`.
        let mut sids = Vec::new();
        for _ in 0..2 {
            let claims = verify(&server, &session_app, &by_session.next().await).await;
            assert_eq!(claims["sub"], first["sub"]);
            sids.push(claims["sid"].as_str().unwrap().to_owned());
        }
        sids.sort();
        let mut expected = vec![
            first["sid"].as_str().unwrap().to_owned(),
            second["sid"].as_str().unwrap().to_owned(),
        ];
        expected.sort();
        assert_eq!(sids, expected);

        // Deactivating ends what a new sign-in started, and says so too.
        server
            .services
            .registry
            .update_user(
                "carol",
                UserChanges {
                    locked_out: Some(false),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap();
        let mut tablet = Browser::new();
        let third = sign_in(&server, &mut tablet, &session_app, "carol").await;
        server
            .services
            .registry
            .update_user(
                "carol",
                UserChanges {
                    active: Some(false),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap();
        let claims = verify(&server, &user_app, &by_user.next().await).await;
        assert!(claims.get("sid").is_none(), "{claims}");
        let claims = verify(&server, &session_app, &by_session.next().await).await;
        assert_eq!(claims["sid"], third["sid"]);
        by_user.nothing_more();
        by_session.nothing_more();
    }
);

server_test!(
    a_logout_uri_gatehouse_may_not_connect_to_is_refused,
    |server| {
        let app = people_app(&server, ClientType::Confidential).await;
        for uri in [
            "http://rp.example/backchannel",
            "ftp://127.0.0.1/backchannel",
            "https://rp.example/backchannel#fragment",
            "not a url",
        ] {
            let refused = server
                .services
                .registry
                .update_app(
                    &app.client_id,
                    AppChanges {
                        backchannel_logout_uri: Some(uri.into()),
                        ..AppChanges::default()
                    },
                )
                .await;
            assert!(
                matches!(refused, Err(Error::Validation(_))),
                "{uri}: {refused:?}"
            );
        }
        for uri in [
            "https://rp.example/backchannel?tenant=1",
            "http://127.0.0.1:9/backchannel",
        ] {
            server
                .update_app(
                    &app.client_id,
                    AppChanges {
                        backchannel_logout_uri: Some(uri.into()),
                        ..AppChanges::default()
                    },
                )
                .await;
        }
        // "" removes it.
        server
            .update_app(
                &app.client_id,
                AppChanges {
                    backchannel_logout_uri: Some(String::new()),
                    ..AppChanges::default()
                },
            )
            .await;
        let shown = server
            .services
            .registry
            .get_app(&app.client_id)
            .await
            .unwrap();
        assert_eq!(shown.backchannel_logout_uri, None);
    }
);

server_test!(
    a_command_that_locks_a_user_delivers_before_it_exits,
    |server| {
        server.user("dave", &[]).await;
        let mut receiver = Receiver::start().await;
        let app = listening_app(&server, &receiver.uri, false).await;
        let mut browser = Browser::new();
        let id_token = sign_in(&server, &mut browser, &app, "dave").await;

        // The command runs with the server's configuration, so its tokens name the same issuer.
        let config = server.data_dir().join("command.toml");
        std::fs::write(&config, format!("issuer = {:?}\n", server.base)).unwrap();
        let config = config.to_str().unwrap();
        let output = gatehouse(
            &server,
            &[
                "--config",
                config,
                "user",
                "update",
                "dave",
                "--locked-out",
                "true",
            ],
            &[],
        )
        .await;
        assert!(output.status.success(), "{output:?}");
        // The process has exited: what it sent arrived before.
        let claims = verify(&server, &app, &receiver.received.try_recv().unwrap().1).await;
        assert_eq!(claims["sub"], id_token["sub"]);
        assert!(claims.get("sid").is_none(), "{claims}");
    }
);
