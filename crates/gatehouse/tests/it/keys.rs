//! Staged key rotation: a new key is published first and signs only after its delay; the old
//! key stays published while its tokens live.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::client::TokenFormat;
use gatehouse_core::keys::SigningAlgorithm;
use serde_json::Value;

use crate::harness::{TestServer, post_form, server_test};

fn header(jwt: &str) -> Value {
    let encoded = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

async fn published_kids(server: &TestServer) -> Vec<String> {
    let response = server
        .http
        .get(server.url("/oauth/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = response.json().await.unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(k["use"], "sig");
            assert!(k.get("d").is_none(), "a private component is published");
            k["kid"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if condition().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("condition not reached in 10 s");
}

server_test!(
    rotation_publishes_first_then_signs_and_keeps_the_old_key,
    |server| {
        let app = server.app(TokenFormat::Jwt, &[], None).await;
        let old_token = server.token(&app, None).await;
        let old = header(&old_token);
        assert_eq!(
            (old["alg"].as_str(), old["typ"].as_str()),
            (Some("ES256"), Some("at+jwt"))
        );
        let old_kid = old["kid"].as_str().unwrap().to_owned();
        // The access-token key, and the RS256 key for clients whose ID tokens need it.
        let initially = published_kids(&server).await;
        assert_eq!(initially.len(), 2);
        assert!(initially.contains(&old_kid));

        // As `gatehouse keys rotate --delay 3` would, through another process's view.
        let new_kid = server
            .services
            .tokens
            .rotate_key(SigningAlgorithm::Es256, 3)
            .await
            .unwrap();
        wait_until(|| async { published_kids(&server).await.contains(&new_kid) }).await;
        // Published, not yet signing.
        assert_eq!(
            header(&server.token(&app, None).await)["kid"],
            old_kid.as_str()
        );

        wait_until(|| async { header(&server.token(&app, None).await)["kid"] == new_kid.as_str() })
            .await;
        let new_token = server.token(&app, None).await;
        assert_eq!(header(&new_token)["alg"], "ES256");
        // The old key stays published while its tokens may live, and its tokens stay valid.
        let published = published_kids(&server).await;
        assert!(published.contains(&old_kid) && published.contains(&new_kid));
        for token in [&old_token, &new_token] {
            let (_, _, body) = post_form(
                &server,
                "/oauth/introspect",
                Some((&app.client_id, &app.secret)),
                &[("token", token)],
            )
            .await;
            assert_eq!(body["active"], true);
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_and_rs256_access_tokens_are_verifiable() {
    for alg in [SigningAlgorithm::EdDsa, SigningAlgorithm::Rs256] {
        let Some(server) =
            TestServer::start_configured(crate::harness::Backend::Sqlite, |s| s.signing_alg = alg)
                .await
        else {
            return;
        };
        let app = server.app(TokenFormat::Jwt, &[], None).await;
        let token = server.token(&app, None).await;
        assert_eq!(header(&token)["alg"], alg.as_str());
        let (_, _, body) = post_form(
            &server,
            "/oauth/introspect",
            Some((&app.client_id, &app.secret)),
            &[("token", &token)],
        )
        .await;
        assert_eq!(body["active"], true);
    }
}
