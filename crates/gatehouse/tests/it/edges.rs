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
