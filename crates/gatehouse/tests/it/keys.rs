//! Staged key rotation: a new key is published first and signs only after its delay; the old
//! key stays published while its tokens live. Retirement: a key leaves service at once, on
//! every instance sharing the database.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::client::TokenFormat;
use gatehouse_core::keys::SigningAlgorithm;
use serde_json::Value;

use crate::cli::gatehouse;
use crate::harness::{TestApp, TestServer, post_form, server_test, uuid_like};

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
    assert_eq!(
        response.headers()["cache-control"],
        format!("public, max-age={}", server.settings.jwks_max_age).as_str()
    );
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
            .rotate_key(
                SigningAlgorithm::Es256,
                3,
                &gatehouse_core::audit::Actor::operator("cli"),
            )
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

/// Whether `token` is accepted by the API of `server`, and its introspection there.
async fn accepted(server: &TestServer, app: &TestApp, token: &str) -> bool {
    let response = server
        .http
        .get(server.url("/api/admin/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    let (_, _, introspection) = post_form(
        server,
        "/oauth/introspect",
        Some((&app.client_id, &app.secret)),
        &[("token", token)],
    )
    .await;
    let active = introspection["active"] == true;
    assert_eq!(active, status == 200, "{status} {introspection}");
    active
}

server_test!(
    a_retired_key_leaves_service_at_once_on_every_instance,
    |server| {
        let peer = server.start_peer().await;
        let instances = [&server, &peer];
        let app = server.app(TokenFormat::Jwt, &[], None).await;
        let first = server.token(&app, None).await;
        let first_kid = header(&first)["kid"].as_str().unwrap().to_owned();
        // Both instances have verified (and cached) the token.
        for instance in instances {
            assert!(accepted(instance, &app, &first).await);
        }

        // A superseded key, still published for its tokens, retired from the command line: no
        // replacement, since another key signs.
        let second_kid = server
            .services
            .tokens
            .rotate_key(
                SigningAlgorithm::Es256,
                0,
                &gatehouse_core::audit::Actor::operator("cli"),
            )
            .await
            .unwrap();
        wait_until(|| async {
            header(&peer.token(&app, None).await)["kid"] == second_kid.as_str()
        })
        .await;
        let output = gatehouse(&server, &["keys", "retire", &first_kid, "--json"], &[]).await;
        assert!(output.status.success(), "{output:?}");
        let retired: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(retired["retired"], first_kid.as_str());
        assert_eq!(retired["replacement"], Value::Null);
        for instance in instances {
            wait_until(|| async { !published_kids(instance).await.contains(&first_kid) }).await;
            assert!(!accepted(instance, &app, &first).await);
        }
        let second = peer.token(&app, None).await;
        assert_eq!(header(&second)["kid"], second_kid.as_str());
        for instance in instances {
            assert!(accepted(instance, &app, &second).await);
        }

        // The signing key, retired through the admin API of one instance: a new key of its
        // algorithm replaces it and signs at once, everywhere.
        let admin = format!("keeper-{}", uuid_like());
        server.user(&admin, &["admin"]).await;
        let admin_app = server
            .app(TokenFormat::Opaque, &["useraccount"], Some(&admin))
            .await;
        let admin_token = server.token(&admin_app, None).await;
        let response = server
            .http
            .post(server.url(&format!("/api/admin/v1/keys/{second_kid}/retire")))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let retired: Value = response.json().await.unwrap();
        let third_kid = retired["replacement"].as_str().unwrap().to_owned();
        for instance in instances {
            wait_until(|| async {
                let kids = published_kids(instance).await;
                kids.contains(&third_kid) && !kids.contains(&second_kid)
            })
            .await;
        }
        for instance in instances {
            assert!(!accepted(instance, &app, &second).await);
            let third = instance.token(&app, None).await;
            assert_eq!(header(&third)["kid"], third_kid.as_str());
            for other in instances {
                assert!(accepted(other, &app, &third).await);
            }
        }
        let keys: Value = server
            .http
            .get(peer.url("/api/admin/v1/keys"))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let states: Vec<(&str, &str)> = keys
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["alg"].as_str().unwrap(), k["state"].as_str().unwrap()))
            .collect();
        assert_eq!(states, vec![("RS256", "signing"), ("ES256", "signing")]);

        // An unknown key, and callers who may not retire keys.
        let (status, body) = admin_call(&server, &admin_token, "/keys/unknown/retire").await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
        let output = gatehouse(&server, &["keys", "retire", "unknown"], &[]).await;
        assert!(!output.status.success());
        for role in ["mi_admin", "oauth_user"] {
            let token = server.token_for_role(role).await;
            let (status, _) =
                admin_call(&server, &token, &format!("/keys/{third_kid}/retire")).await;
            assert_eq!(status, 403, "{role}");
        }
        assert!(published_kids(&peer).await.contains(&third_kid));
    }
);

async fn admin_call(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let response = server
        .http
        .post(server.url(&format!("/api/admin/v1{path}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

server_test!(
    keys_rotate_on_schedule_on_exactly_one_instance,
    configured(|settings| {
        settings.key_rotation_interval = Some(std::time::Duration::from_secs(2));
        settings.jwks_max_age = 1;
    }),
    |server| {
        // Two instances on one database, each running the schedule.
        let peer = server.start_peer().await;
        let stored = |alg: &'static str| {
            let store = server.services.store.clone();
            async move {
                let mut activations: Vec<(i64, String)> = store
                    .list_signing_keys()
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|k| k.alg == alg)
                    .map(|k| (k.activates_at, k.kid))
                    .collect();
                activations.sort();
                activations
            }
        };
        for alg in ["ES256", "RS256"] {
            wait_until(|| async { stored(alg).await.len() >= 3 }).await;
            // Each period one key, whichever instance stored it: a new key activates a period
            // (plus its publication delay) after the one before, never twice in a period.
            let activations = stored(alg).await;
            for pair in activations.windows(2) {
                assert!(pair[1].0 - pair[0].0 >= 2, "{alg}: {activations:?}");
            }
            // Both instances publish every key that signs or is about to.
            let (_, newest) = activations.last().unwrap();
            for instance in [&server, &peer] {
                wait_until(|| async { published_kids(instance).await.contains(newest) }).await;
            }
        }
        // And sign with the current one.
        let app = server.app(TokenFormat::Jwt, &[], None).await;
        wait_until(|| async {
            let (now_server, now_peer) =
                (server.token(&app, None).await, peer.token(&app, None).await);
            header(&now_server)["kid"] == header(&now_peer)["kid"]
        })
        .await;
    }
);
