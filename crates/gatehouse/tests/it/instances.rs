//! Several instances on one database: their first start together agrees on one key per
//! algorithm, and every instance publishes the keys every other one signs with.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::client::TokenFormat;
use gatehouse_core::keys::SigningAlgorithm;
use serde_json::Value;

use crate::harness::{Backend, TestServer, post_form};

fn header(jwt: &str) -> Value {
    let encoded = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

async fn jwks(server: &TestServer) -> Value {
    let response = server
        .http
        .get(server.url("/oauth/jwks"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Starts six instances together on an empty database whose access tokens use `alg`, then checks
/// that they all publish the same keys, exactly one per algorithm they sign with, and that a
/// token from each is accepted by every other.
async fn first_start_together(backend: Backend, alg: SigningAlgorithm, algorithms: &[&str]) {
    let Some(instances) =
        TestServer::start_together(backend, 6, |settings| settings.signing_alg = alg).await
    else {
        return;
    };
    let published = jwks(&instances[0]).await;
    for instance in &instances[1..] {
        assert_eq!(jwks(instance).await, published);
    }
    let mut per_algorithm = BTreeMap::new();
    for key in published["keys"].as_array().unwrap() {
        *per_algorithm
            .entry(key["alg"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    let expected: BTreeMap<_, _> = algorithms.iter().map(|a| (a.to_string(), 1)).collect();
    assert_eq!(per_algorithm, expected);
    let kids: Vec<&str> = published["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();

    // The first start also made exactly one administrator, whichever instance came first.
    let users = instances[0].services.registry.list_users().await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| u.user_name.as_str())
            .collect::<Vec<_>>(),
        vec!["admin"]
    );

    let app = instances[0].app(TokenFormat::Jwt, &[], None).await;
    for issuer in &instances {
        let token = issuer.token(&app, None).await;
        let header = header(&token);
        assert_eq!(header["alg"], alg.as_str());
        assert!(kids.contains(&header["kid"].as_str().unwrap()), "{header}");
        for verifier in &instances {
            let (status, _, body) = post_form(
                verifier,
                "/oauth/introspect",
                Some((&app.client_id, &app.secret)),
                &[("token", &token)],
            )
            .await;
            assert_eq!((status, &body["active"]), (200, &Value::Bool(true)));
        }
    }
}

macro_rules! on_both_backends {
    ($name:ident, $alg:expr, $algorithms:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                first_start_together(Backend::Sqlite, $alg, $algorithms).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                first_start_together(Backend::Postgres, $alg, $algorithms).await;
            }
        }
    };
}

on_both_backends!(
    instances_starting_together_share_one_es256_key,
    SigningAlgorithm::Es256,
    &["ES256", "RS256"]
);
on_both_backends!(
    instances_starting_together_share_one_key_per_algorithm,
    SigningAlgorithm::EdDsa,
    &["EdDSA", "ES256", "RS256"]
);
