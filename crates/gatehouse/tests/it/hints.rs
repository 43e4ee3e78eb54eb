//! `id_token_hint`: an ID token of this server naming the user, at the authorization endpoint
//! (OpenID Connect Core §3.1.2.1) and at sign-out (RP-Initiated Logout 1.0 §2). Hints that are
//! not this server's ID tokens are made by signing claims with the server's own keys, or with a
//! key it never published.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::client::ClientType;
use gatehouse_core::keys::{SigningAlgorithm, SigningKey};
use gatehouse_core::secret::MasterKey;
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, post_form, server_test};
use crate::people::{
    Browser, PASSWORD, Page, REDIRECT, VERIFIER, authorize_url, people_app, redeem,
};

/// An ID token for `user` issued to `app` (the password grant, scope openid).
async fn id_token(server: &TestServer, app: &TestApp, user: &str) -> String {
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", PASSWORD),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["id_token"].as_str().unwrap().to_owned()
}

/// Signs `user` in on `browser`, consenting when asked.
async fn sign_in(server: &TestServer, browser: &mut Browser, app: &TestApp, user: &str) {
    let login = browser
        .get(&authorize_url(server, &app.client_id, &[]))
        .await;
    let page = browser.login(server, &login, user, PASSWORD).await;
    let done = match page.status {
        200 => browser.consent(server, &page, "allow").await,
        _ => page,
    };
    assert!(done.redirect_params().contains_key("code"), "{}", done.body);
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `claims` signed with the server's current ES256 key, typed `typ`.
fn sign_as_server(server: &TestServer, typ: &str, claims: &Value) -> String {
    let now = server.services.tokens.clock().now();
    server
        .services
        .tokens
        .key_ring()
        .signing_key(SigningAlgorithm::Es256, now)
        .unwrap()
        .sign_jws(typ, claims)
        .unwrap()
}

/// Hints that must be refused, made from `good` (a real ID token of the server), each with the
/// case it stands for.
fn bad_hints(server: &TestServer, good: &str, other_app: &TestApp) -> Vec<(&'static str, String)> {
    let claims = claims_of(good);
    let with = |changes: Value| {
        let mut changed = claims.clone();
        for (k, v) in changes.as_object().unwrap() {
            changed[k] = v.clone();
        }
        changed
    };
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let tampered_payload =
        URL_SAFE_NO_PAD.encode(with(json!({"sub": "someone-else"})).to_string().as_bytes());
    let stranger = SigningKey::generate(
        SigningAlgorithm::Es256,
        0,
        0,
        &MasterKey::generate().sealer(),
    )
    .unwrap()
    .1;
    let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
    flipped[0] ^= 1;
    vec![
        (
            "a flipped signature bit",
            format!("{head}.{payload}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
        ),
        (
            "claims changed under the signature",
            format!("{head}.{tampered_payload}.{signature}"),
        ),
        (
            "a key the server never published",
            stranger.sign_jws("JWT", &claims).unwrap(),
        ),
        (
            "another issuer",
            sign_as_server(
                server,
                "JWT",
                &with(json!({"iss": "https://elsewhere.example"})),
            ),
        ),
        (
            "an access token's type",
            sign_as_server(server, "at+jwt", &claims),
        ),
        (
            "issued to another application",
            sign_as_server(server, "JWT", &with(json!({"aud": other_app.client_id}))),
        ),
        ("not a JWT", "not-a-jwt".into()),
        ("three empty parts", "..".into()),
        ("no signature", format!("{head}.{payload}.")),
    ]
}

/// The same ID token, expired an hour ago.
fn expired(server: &TestServer, good: &str) -> String {
    let mut claims = claims_of(good);
    let now = server.services.tokens.clock().now();
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    sign_as_server(server, "JWT", &claims)
}

fn error_of(page: &Page) -> (String, Option<String>) {
    let params = page.redirect_params();
    (
        params.get("error").cloned().unwrap_or_default(),
        params.get("state").cloned(),
    )
}

server_test!(
    the_authorization_endpoint_honours_only_its_own_id_tokens_for_the_signed_in_user,
    |server| {
        server.user("alice", &[]).await;
        server.user("bob", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let other_app = people_app(&server, ClientType::Confidential).await;
        let alice_hint = id_token(&server, &app, "alice").await;
        let bob_hint = id_token(&server, &app, "bob").await;

        // No session: prompt=none cannot be answered whatever the hint says.
        let mut browser = Browser::new();
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[
                    ("prompt", "none"),
                    ("id_token_hint", &alice_hint),
                    ("state", "s0"),
                ],
            ))
            .await;
        assert_eq!(
            error_of(&page),
            ("login_required".into(), Some("s0".into()))
        );

        // Alice signs in and consents once.
        sign_in(&server, &mut browser, &app, "alice").await;
        let ask = |hint: &str, prompt_none: bool| {
            let mut extra = vec![("id_token_hint", hint.to_owned()), ("state", "s1".into())];
            if prompt_none {
                extra.push(("prompt", "none".into()));
            }
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            authorize_url(&server, &app.client_id, &extra)
        };
        // Her own hint, current or expired, lets prompt=none through, and a code redeems.
        for hint in [alice_hint.clone(), expired(&server, &alice_hint)] {
            for prompt_none in [true, false] {
                let page = browser.get(&ask(&hint, prompt_none)).await;
                let params = page.redirect_params();
                assert!(params.contains_key("code"), "{params:?}");
            }
        }
        let params = browser.get(&ask(&alice_hint, true)).await.redirect_params();
        let (status, tokens) = redeem(&server, &app, &params["code"], Some(VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(
            claims_of(tokens["id_token"].as_str().unwrap())["sub"],
            claims_of(&alice_hint)["sub"]
        );

        // Bob's hint while Alice is signed in: not the user the response would be for.
        let page = browser.get(&ask(&bob_hint, true)).await;
        assert_eq!(
            error_of(&page),
            ("login_required".into(), Some("s1".into()))
        );
        let page = browser.get(&ask(&bob_hint, false)).await;
        assert_eq!(
            error_of(&page),
            ("invalid_request".into(), Some("s1".into()))
        );
        let description = &page.redirect_params()["error_description"];
        assert!(
            crate::edges::allowed_description(description),
            "{description}"
        );

        // Hints that are not this server's ID tokens for this application.
        for (case, hint) in bad_hints(&server, &alice_hint, &other_app) {
            let page = browser.get(&ask(&hint, true)).await;
            assert_eq!(page.status, 303, "{case}: {}", page.body);
            assert_eq!(
                error_of(&page),
                ("login_required".into(), Some("s1".into())),
                "{case}"
            );
            let page = browser.get(&ask(&hint, false)).await;
            assert_eq!(
                error_of(&page),
                ("invalid_request".into(), Some("s1".into())),
                "{case}"
            );
            let description = &page.redirect_params()["error_description"];
            assert!(
                description.contains("id_token_hint"),
                "{case}: {description}"
            );
            assert!(
                crate::edges::allowed_description(description),
                "{case}: {description}"
            );
        }

        // Signing in fresh with a hint: only the hinted user goes on.
        let mut fresh = Browser::new();
        let login = fresh
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("id_token_hint", &bob_hint), ("state", "s2")],
            ))
            .await;
        assert_eq!(login.status, 200, "{}", login.body);
        let page = fresh.login(&server, &login, "alice", PASSWORD).await;
        assert_eq!(
            error_of(&page),
            ("invalid_request".into(), Some("s2".into()))
        );
        let login = fresh
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("id_token_hint", &bob_hint), ("prompt", "login")],
            ))
            .await;
        let consent = fresh.login(&server, &login, "bob", PASSWORD).await;
        assert_eq!(
            consent.status, 200,
            "bob sees the consent page: {}",
            consent.body
        );

        // A key taken out of service takes its ID tokens' worth as hints with it.
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(alice_hint.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        server
            .services
            .tokens
            .retire_key(
                header["kid"].as_str().unwrap(),
                &gatehouse_core::audit::Actor::operator("cli"),
            )
            .await
            .unwrap();
        let page = browser.get(&ask(&alice_hint, true)).await;
        assert_eq!(
            error_of(&page),
            ("login_required".into(), Some("s1".into()))
        );
        let renewed = id_token(&server, &app, "alice").await;
        let page = browser.get(&ask(&renewed, true)).await;
        assert!(page.redirect_params().contains_key("code"), "{}", page.body);
    }
);

/// Submits a sign-out confirmation page.
async fn confirm(server: &TestServer, browser: &mut Browser, page: &Page) -> Page {
    assert_eq!(page.status, 200, "{}", page.body);
    browser
        .post(
            &server.url("/oauth/logout"),
            &[
                ("csrf", &page.field("csrf")),
                ("form", &page.field("form")),
                ("client_id", &page.field("client_id")),
                (
                    "post_logout_redirect_uri",
                    &page.field("post_logout_redirect_uri"),
                ),
                ("state", &page.field("state")),
            ],
        )
        .await
}

fn logout_url(server: &TestServer, params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{}?{query}", server.url("/oauth/logout"))
}

server_test!(
    sign_out_refuses_foreign_hints_and_returns_to_the_hinted_application,
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let other_app = people_app(&server, ClientType::Confidential).await;
        let hint = id_token(&server, &app, "alice").await;
        let back = format!("{REDIRECT}?state=bye");

        // A valid hint names the application: no client_id needed to return to it, signed in
        // or not, and an expired hint does as well.
        for hint in [hint.clone(), expired(&server, &hint)] {
            let mut browser = Browser::new();
            sign_in(&server, &mut browser, &app, "alice").await;
            let page = browser
                .get(&logout_url(
                    &server,
                    &[
                        ("id_token_hint", &hint),
                        ("post_logout_redirect_uri", REDIRECT),
                        ("state", "bye"),
                    ],
                ))
                .await;
            assert_eq!(page.field("client_id"), app.client_id);
            let csp = page.headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("https://app.example"), "{csp}");
            let done = confirm(&server, &mut browser, &page).await;
            assert_eq!(done.location().as_deref(), Some(back.as_str()));
            assert!(!browser.cookie_header().contains("gh_session"));
            let page = browser
                .get(&logout_url(
                    &server,
                    &[
                        ("id_token_hint", &hint),
                        ("post_logout_redirect_uri", REDIRECT),
                        ("state", "bye"),
                    ],
                ))
                .await;
            assert_eq!(page.location().as_deref(), Some(back.as_str()));
        }
        // With a matching client_id too.
        let page = Browser::new()
            .get(&logout_url(
                &server,
                &[
                    ("id_token_hint", &hint),
                    ("client_id", &app.client_id),
                    ("post_logout_redirect_uri", REDIRECT),
                ],
            ))
            .await;
        assert_eq!(page.location().as_deref(), Some(REDIRECT));
        // Without hint or client_id the URI is not followed.
        let page = Browser::new()
            .get(&logout_url(
                &server,
                &[("post_logout_redirect_uri", REDIRECT)],
            ))
            .await;
        assert_eq!((page.status, page.location()), (200, None));

        // A hint issued to another application than client_id names, and every hint that is
        // not an ID token of this server: an error page, no redirect, and still signed in.
        // (A hint issued to another application is that application's sign-out when no
        // client_id contradicts it.)
        let mut refused = bad_hints(&server, &hint, &other_app);
        refused.retain(|(case, _)| *case != "issued to another application");
        refused.push(("client_id of another application", hint.clone()));
        let mut browser = Browser::new();
        sign_in(&server, &mut browser, &app, "alice").await;
        for (case, bad) in refused {
            let client_id = if case == "client_id of another application" {
                other_app.client_id.as_str()
            } else {
                ""
            };
            let params = [
                ("id_token_hint", bad.as_str()),
                ("client_id", client_id),
                ("post_logout_redirect_uri", REDIRECT),
            ];
            let params: Vec<_> = params.into_iter().filter(|(_, v)| !v.is_empty()).collect();
            let page = browser.get(&logout_url(&server, &params)).await;
            assert_eq!((page.status, page.location()), (400, None), "{case}");
            assert!(
                page.body.contains("invalid_request"),
                "{case}: {}",
                page.body
            );
            // Posted straight to the endpoint, as an application may.
            let page = Browser::new()
                .post(&server.url("/oauth/logout"), &params)
                .await;
            assert_eq!((page.status, page.location()), (400, None), "{case}");
        }
        let still = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("prompt", "none")],
            ))
            .await;
        assert!(
            still.redirect_params().contains_key("code"),
            "still signed in"
        );
    }
);
