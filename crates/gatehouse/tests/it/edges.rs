//! The edges of the protocol: values an attacker spells so that a lenient parser reads them
//! differently from what was registered.

use gatehouse_core::client::{ClientType, GrantType};
use gatehouse_core::registry::AppChanges;

use crate::harness::{TestServer, server_test};
use crate::people::Browser;

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn authorize(server: &TestServer, client_id: &str, redirect_uri: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256")
        .finish();
    server.url(&format!("/oauth/authorize?{query}"))
}

server_test!(
    loopback_redirect_uris_match_only_their_literal_address,
    |server| {
        let app = server
            .app_with(AppChanges {
                name: Some("Native app".into()),
                client_type: Some(ClientType::Public),
                grant_types: Some(vec![GrantType::AuthorizationCode]),
                redirect_uris: Some(vec![
                    "http://127.0.0.1/callback".into(),
                    "http://[::1]/callback".into(),
                ]),
                allowed_scopes: Some(vec!["openid".into()]),
                ..AppChanges::default()
            })
            .await;
        let mut browser = Browser::new();
        for accepted in [
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
            "http://[::1]:8123/callback",
        ] {
            let page = browser
                .get(&authorize(&server, &app.client_id, accepted))
                .await;
            assert_eq!(page.status, 200, "{accepted}: {}", page.body);
        }
        // Every other spelling of a loopback address, and every URI a parser would normalise into
        // the registered one, is an error page: never a redirect to where it points.
        for refused in [
            "http://2130706433:8000/callback",
            "http://0x7f000001:8000/callback",
            "http://0x7f.0.0.1:8000/callback",
            "http://0177.0.0.1:8000/callback",
            "http://127.000.000.001:8000/callback",
            "http://127.1:8000/callback",
            "http://localhost:8000/callback",
            "http://[0:0:0:0:0:0:0:1]:8000/callback",
            "http://[::ffff:7f00:1]:8000/callback",
            "HTTP://127.0.0.1:8000/callback",
            "http://127.0.0.1.evil.example/callback",
            "http://127.0.0.1:8000@evil.example/callback",
            "http://127.0.0.1:08000/callback",
            "http://127.0.0.1:8000/x/../callback",
            "http://127.0.0.1:8000/%63allback",
            "http://127.0.0.1:8000/callback/",
        ] {
            let page = browser
                .get(&authorize(&server, &app.client_id, refused))
                .await;
            assert_eq!(page.status, 400, "{refused}: {}", page.body);
            assert!(page.location().is_none(), "{refused} was redirected to");
        }
    }
);

/// RFC 6749 §4.1.2.1: `error_description` is `%x20-21 / %x23-5B / %x5D-7E`.
pub(crate) fn allowed_description(text: &str) -> bool {
    text.chars()
        .all(|c| matches!(c, ' '..='!' | '#'..='[' | ']'..='~'))
}

async fn web_app(server: &TestServer) -> crate::harness::TestApp {
    server
        .app_with(AppChanges {
            name: Some("Web app".into()),
            grant_types: Some(vec![
                GrantType::AuthorizationCode,
                GrantType::Implicit,
                GrantType::ClientCredentials,
            ]),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            allowed_scopes: Some(vec!["openid".into()]),
            ..AppChanges::default()
        })
        .await
}

fn with(server: &TestServer, client_id: &str, replace: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("client_id", client_id),
        ("redirect_uri", "https://app.example/cb"),
        ("response_type", "code"),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in replace {
        params.retain(|(n, _)| n != name);
        params.push((name, value));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    server.url(&format!("/oauth/authorize?{query}"))
}

server_test!(
    s256_challenges_are_exactly_43_base64url_characters,
    |server| {
        let app = web_app(&server).await;
        let mut browser = Browser::new();
        let ok = browser.get(&with(&server, &app.client_id, &[])).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        for challenge in [
            &CHALLENGE[..42],
            &format!("{CHALLENGE}A"),
            &format!("{}~", &CHALLENGE[..42]),
            &format!("{}.", &CHALLENGE[..42]),
            &format!("{}=", &CHALLENGE[..42]),
            &"A".repeat(128),
        ] {
            let page = browser
                .get(&with(
                    &server,
                    &app.client_id,
                    &[("code_challenge", challenge)],
                ))
                .await;
            let params = page.redirect_params();
            assert_eq!(params["error"], "invalid_request", "{challenge}");
            assert_eq!(params["error_description"], "code_challenge is malformed");
        }
    }
);

server_test!(
    a_post_to_the_authorization_endpoint_reads_each_parameter_once,
    |server| {
        let app = web_app(&server).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let body = [
            ("redirect_uri", "https://app.example/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        let post = |query: String, body: Vec<(&'static str, String)>| {
            http.post(server.url(&format!("/oauth/authorize{query}")))
                .form(&body)
                .send()
        };
        let owned = |extra: &[(&'static str, &str)]| {
            body.iter()
                .chain(extra)
                .map(|(n, v)| (*n, v.to_string()))
                .collect::<Vec<_>>()
        };
        // Split between query and body, each parameter once: the login page.
        let split = post(format!("?client_id={}", app.client_id), owned(&[]))
            .await
            .unwrap();
        assert_eq!(split.status(), 200);
        // The same parameter in both, with the same or another value: refused, never redirected.
        for (name, in_query) in [
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "openid"),
            ("response_type", "token"),
        ] {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair(name, in_query)
                .finish();
            let mut form = owned(&[("client_id", &app.client_id)]);
            if name == "client_id" {
                form.retain(|(n, _)| *n != "client_id");
                form.push(("client_id", app.client_id.clone()));
            }
            let response = post(format!("?{query}"), form).await.unwrap();
            assert_eq!(response.status(), 400, "{name}");
            assert!(response.headers().get("location").is_none(), "{name}");
            assert!(response.text().await.unwrap().contains("invalid_request"));
        }
    }
);

server_test!(
    error_descriptions_never_echo_what_the_caller_sent,
    |server| {
        let app = web_app(&server).await;
        let mut browser = Browser::new();
        let hostile = "<script>\"\\é\u{7f}";
        // Redirected errors of the authorization endpoint.
        for param in [
            "response_type",
            "response_mode",
            "prompt",
            "code_challenge_method",
            "scope",
        ] {
            let page = browser
                .get(&with(&server, &app.client_id, &[(param, hostile)]))
                .await;
            let params = page.redirect_params();
            let description = &params["error_description"];
            assert!(!description.contains("<script>"), "{param}: {description}");
            assert!(allowed_description(description), "{param}: {description}");
        }
        // JSON errors of the token endpoint.
        for form in [
            vec![("grant_type", hostile)],
            vec![("grant_type", "client_credentials"), ("scope", hostile)],
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "not-allowed-<script>"),
            ],
        ] {
            let (status, _, body) = crate::harness::post_form(
                &server,
                "/oauth/token",
                Some((&app.client_id, &app.secret)),
                &form,
            )
            .await;
            assert_eq!(status, 400, "{body}");
            let description = body["error_description"].as_str().unwrap();
            assert!(!description.contains("script"), "{description}");
            assert!(allowed_description(description), "{description}");
        }
    }
);
