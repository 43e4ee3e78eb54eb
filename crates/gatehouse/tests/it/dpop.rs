//! DPoP (RFC 9449) over real HTTP, with proofs made here: bound tokens at the token endpoint (JWT
//! and opaque, `cnf.jkt`, `token_type: DPoP`), every rule of a proof refused with its error,
//! server nonces, public clients' refresh tokens and codes (`dpop_jkt`, pushed requests with a
//! proof) bound to their key, an application that
//! requires DPoP, and bound tokens on the APIs and the gateway only with a matching proof; and
//! `openid-client` doing it with its own key handling and nonce retries (`tests/browser/dpop.mjs`,
//! which needs `npm ci` in `tests/browser` but no browser).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::client::{ClientType, GrantType, TokenFormat};
use gatehouse_core::gateway::Route;
use gatehouse_core::registry::AppChanges;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::browser::{missing_node, run_node};
use crate::gateway::start_upstream;
use crate::harness::{TestApp, TestServer, server_test, uuid_like};
use crate::people::{Browser, PASSWORD, REDIRECT, VERIFIER, authorize_url, people_app};
use crate::pushed::{authorize_with, request as pushed_request};

/// A client's P-256 key, which signs its proofs.
struct ProofKey(EcdsaKeyPair);

impl ProofKey {
    fn new() -> ProofKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        ProofKey(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap(),
        )
    }

    fn jwk(&self) -> Value {
        let point = self.0.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
    }

    /// RFC 7638 with the members of an EC key, in order.
    fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .0
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }

    /// A fresh proof for `method` and `url`, with `extra` claims (`ath`, `nonce`, or ones that
    /// replace the right values).
    fn proof(&self, method: &str, url: &str, extra: Value) -> String {
        let mut claims = json!({"jti": uuid_like(), "htm": method, "htu": url, "iat": now()});
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        self.sign(&self.header(), &claims)
    }

    /// A proof for an API request presenting `token`.
    fn for_token(&self, method: &str, url: &str, token: &str) -> String {
        self.proof(method, url, json!({"ath": ath(token)}))
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// POSTs a token request with the given `DPoP` headers (none, one, or several).
async fn token_request(
    server: &TestServer,
    app: &TestApp,
    proofs: &[&str],
    form: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let mut form = form.to_vec();
    let public = app.secret.is_empty();
    if public {
        form.push(("client_id", &app.client_id));
    }
    let mut request = server.http.post(server.url("/oauth/token")).form(&form);
    if !public {
        request = request.basic_auth(&app.client_id, Some(&app.secret));
    }
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn client_credentials(server: &TestServer, app: &TestApp, proof: &str) -> (u16, Value) {
    let (status, _, body) = token_request(
        server,
        app,
        &[proof],
        &[("grant_type", "client_credentials")],
    )
    .await;
    (status, body)
}

/// Calls `path` with `Authorization: {scheme} {token}` and the given proof.
async fn call(
    server: &TestServer,
    path: &str,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> (u16, String) {
    let mut request = server
        .http
        .get(server.url(path))
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge)
}

/// A client-credentials application running as a new user, with `openid` for UserInfo.
async fn service_app(server: &TestServer, format: TokenFormat) -> TestApp {
    let user = format!("svc-{}", uuid_like());
    server.user(&user, &[]).await;
    server
        .app(format, &["openid", "useraccount"], Some(&user))
        .await
}

fn error_of(challenge: &str) -> &str {
    let start = challenge
        .find("error=\"")
        .expect("an error in the challenge")
        + 7;
    let rest = &challenge[start..];
    &rest[..rest.find('"').unwrap()]
}

server_test!(
    bound_tokens_are_issued_and_accepted_only_with_their_proof,
    |server| {
        let token_url = server.url("/oauth/token");
        let userinfo = server.url("/oauth/userinfo");
        for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
            let app = service_app(&server, format).await;
            let key = ProofKey::new();
            let (status, body) =
                client_credentials(&server, &app, &key.proof("POST", &token_url, json!({}))).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["token_type"], "DPoP");
            let token = body["access_token"].as_str().unwrap().to_owned();
            if format == TokenFormat::Jwt {
                assert_eq!(jwt_claims(&token)["cnf"]["jkt"], key.thumbprint());
            }

            // Introspection tells the binding (RFC 9449 §6.2).
            let (_, _, introspection) = crate::harness::post_form(
                &server,
                "/oauth/introspect",
                Some((&app.client_id, &app.secret)),
                &[("token", &token)],
            )
            .await;
            assert_eq!(introspection["active"], true);
            assert_eq!(introspection["token_type"], "DPoP");
            assert_eq!(introspection["cnf"]["jkt"], key.thumbprint());

            // With the DPoP scheme and a proof of the key, for this request.
            let proof = key.for_token("GET", &userinfo, &token);
            let (status, _) = call(&server, "/oauth/userinfo", "DPoP", &token, Some(&proof)).await;
            assert_eq!(status, 200);
            // The same proof again is a replay.
            let (status, challenge) =
                call(&server, "/oauth/userinfo", "DPoP", &token, Some(&proof)).await;
            assert_eq!(status, 401);
            assert!(challenge.starts_with("DPoP "), "{challenge}");
            assert_eq!(error_of(&challenge), "invalid_dpop_proof");

            // As a bearer token, even with a proof, it is refused (§7.1).
            let proof = key.for_token("GET", &userinfo, &token);
            let (status, challenge) =
                call(&server, "/oauth/userinfo", "Bearer", &token, Some(&proof)).await;
            assert_eq!(status, 401);
            assert!(challenge.starts_with("DPoP "), "{challenge}");
            assert!(challenge.contains("algs=\"RS256"), "{challenge}");
            assert_eq!(error_of(&challenge), "invalid_token");

            // A proof of another key, a proof without ath or with another token's, a proof for
            // another method or URI, no proof at all.
            let other = ProofKey::new();
            let refusals = [
                (
                    Some(other.for_token("GET", &userinfo, &token)),
                    "invalid_token",
                ),
                (
                    Some(key.proof("GET", &userinfo, json!({}))),
                    "invalid_dpop_proof",
                ),
                (
                    Some(key.for_token("GET", &userinfo, "gh_at_another")),
                    "invalid_dpop_proof",
                ),
                (
                    Some(key.for_token("POST", &userinfo, &token)),
                    "invalid_dpop_proof",
                ),
                (
                    Some(key.for_token("GET", &token_url, &token)),
                    "invalid_dpop_proof",
                ),
                (None, "invalid_dpop_proof"),
            ];
            for (proof, error) in refusals {
                let (status, challenge) =
                    call(&server, "/oauth/userinfo", "DPoP", &token, proof.as_deref()).await;
                assert_eq!(status, 401, "{challenge}");
                assert!(challenge.starts_with("DPoP "), "{challenge}");
                assert_eq!(error_of(&challenge), error, "{challenge}");
                assert!(
                    challenge.ends_with(&format!(
                        "resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
                        server.base
                    )),
                    "{challenge}"
                );
            }

            // The admin API takes it the same way.
            let whoami = server.url("/api/admin/v1/whoami");
            let proof = key.for_token("GET", &whoami, &token);
            let (status, _) = call(
                &server,
                "/api/admin/v1/whoami",
                "DPoP",
                &token,
                Some(&proof),
            )
            .await;
            assert_eq!(status, 200);
            let (status, challenge) =
                call(&server, "/api/admin/v1/whoami", "Bearer", &token, None).await;
            assert_eq!(status, 401);
            assert_eq!(error_of(&challenge), "invalid_token");
        }

        // An unbound token stays a bearer token: refused under the DPoP scheme.
        let app = service_app(&server, TokenFormat::Jwt).await;
        let token = server.token(&app, None).await;
        let key = ProofKey::new();
        let proof = key.for_token("GET", &userinfo, &token);
        let (status, challenge) =
            call(&server, "/oauth/userinfo", "DPoP", &token, Some(&proof)).await;
        assert_eq!(status, 401);
        assert_eq!(error_of(&challenge), "invalid_token");
        let (status, _) = call(&server, "/oauth/userinfo", "Bearer", &token, None).await;
        assert_eq!(status, 200);
    }
);

server_test!(the_token_endpoint_refuses_every_bad_proof, |server| {
    let app = service_app(&server, TokenFormat::Opaque).await;
    let url = server.url("/oauth/token");
    let key = ProofKey::new();
    let (status, body) =
        client_credentials(&server, &app, &key.proof("POST", &url, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    // The other path of the token endpoint is its own URI.
    let (status, _, body) = {
        let alias = server.url("/oauth_token.do");
        let proof = key.proof("POST", &alias, json!({}));
        let response = server
            .http
            .post(&alias)
            .basic_auth(&app.client_id, Some(&app.secret))
            .header("DPoP", proof)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, (), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");

    let replayed = key.proof("POST", &url, json!({}));
    assert_eq!(client_credentials(&server, &app, &replayed).await.0, 200);
    let b64 = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let claims = json!({"jti": uuid_like(), "htm": "POST", "htu": url, "iat": now()});
    let mut private = key.jwk();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    let bad = [
        ("a replayed proof (jti)", replayed),
        (
            "another URI (htu)",
            key.proof("POST", &server.url("/oauth/revoke"), json!({})),
        ),
        ("another method (htm)", key.proof("GET", &url, json!({}))),
        (
            "an old proof (iat)",
            key.proof("POST", &url, json!({"iat": now() - 600})),
        ),
        (
            "a proof from the future (iat)",
            key.proof("POST", &url, json!({"iat": now() + 600})),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()})),
                b64(&claims)
            ),
        ),
        (
            "alg HS256",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk()}),
                &claims,
            ),
        ),
        (
            "another typ",
            key.sign(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk()}),
                &claims,
            ),
        ),
        (
            "a private key in jwk",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                &claims,
            ),
        ),
        (
            "a signature of another key",
            ProofKey::new().sign(&key.header(), &claims),
        ),
        ("no JWT at all", "not-a-jwt".into()),
    ];
    for (what, proof) in &bad {
        let (status, headers, body) = token_request(
            &server,
            &app,
            &[proof.as_str()],
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{what}: {body}");
        assert_eq!(headers["cache-control"], "no-store");
    }
    // Two DPoP headers are one too many (§4.3).
    let (first, second) = (
        key.proof("POST", &url, json!({})),
        key.proof("POST", &url, json!({})),
    );
    let (status, _, body) = token_request(
        &server,
        &app,
        &[&first, &second],
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );

    // Discovery names the algorithms a proof may use, never none or HMAC.
    let (_, discovery) = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let algs = discovery["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&json!("ES256")) && algs.contains(&json!("RS256")));
    assert!(
        !algs
            .iter()
            .any(|a| a == "none" || a.as_str().unwrap().starts_with("HS"))
    );
});

server_test!(
    nonces_are_required_when_the_server_says_so,
    configured(|settings| settings.require_dpop_nonce = true),
    |server| {
        let app = service_app(&server, TokenFormat::Jwt).await;
        let url = server.url("/oauth/token");
        let key = ProofKey::new();
        let form = [("grant_type", "client_credentials")];
        // Without a nonce, and with one of our making, the answer is the nonce to use.
        for extra in [json!({}), json!({"nonce": "made-up"})] {
            let proof = key.proof("POST", &url, extra);
            let (status, headers, body) = token_request(&server, &app, &[&proof], &form).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "use_dpop_nonce");
            assert!(headers.contains_key("dpop-nonce"));
        }
        let proof = key.proof("POST", &url, json!({}));
        let (_, headers, _) = token_request(&server, &app, &[&proof], &form).await;
        let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
        let proof = key.proof("POST", &url, json!({"nonce": nonce}));
        let (status, headers, body) = token_request(&server, &app, &[&proof], &form).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains_key("dpop-nonce"));
        let token = body["access_token"].as_str().unwrap();

        // The APIs ask for it the same way (§9), with a challenge.
        let userinfo = server.url("/oauth/userinfo");
        let proof = key.for_token("GET", &userinfo, token);
        let response = server
            .http
            .get(&userinfo)
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert_eq!(error_of(challenge), "use_dpop_nonce");
        let nonce = response.headers()["dpop-nonce"]
            .to_str()
            .unwrap()
            .to_owned();
        let proof = key.proof("GET", &userinfo, json!({"ath": ath(token), "nonce": nonce}));
        let (status, _) = call(&server, "/oauth/userinfo", "DPoP", token, Some(&proof)).await;
        assert_eq!(status, 200);
        // A request without DPoP needs no nonce.
        let (status, _, _) = token_request(&server, &app, &[], &form).await;
        assert_eq!(status, 200);
    }
);

server_test!(
    public_clients_refresh_tokens_are_bound_to_their_key,
    |server| {
        let user = format!("alice-{}", uuid_like());
        server.user(&user, &[]).await;
        let url = server.url("/oauth/token");
        let people = |client_type| AppChanges {
            name: Some("people".into()),
            client_type: Some(client_type),
            grant_types: Some(vec![GrantType::Password, GrantType::RefreshToken]),
            allowed_scopes: Some(vec!["openid".into()]),
            ..AppChanges::default()
        };
        let public = server.app_with(people(ClientType::Public)).await;
        let key = ProofKey::new();
        let password = [
            ("grant_type", "password"),
            ("username", user.as_str()),
            ("password", "a long enough password"),
            ("scope", "openid"),
        ];
        let proof = key.proof("POST", &url, json!({}));
        let (status, _, body) = token_request(&server, &public, &[&proof], &password).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "DPoP");
        let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
        let refresh = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ];
        // Without a proof, or with another key's, the refresh token is of no use.
        let (status, _, body) = token_request(&server, &public, &[], &refresh).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof"))
        );
        let other = ProofKey::new().proof("POST", &url, json!({}));
        let (status, _, body) = token_request(&server, &public, &[&other], &refresh).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // With its key it rotates, and the successor is bound too.
        let proof = key.proof("POST", &url, json!({}));
        let (status, _, body) = token_request(&server, &public, &[&proof], &refresh).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "DPoP");
        let successor = body["refresh_token"].as_str().unwrap();
        let (status, _, body) = token_request(
            &server,
            &public,
            &[],
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", successor),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof"))
        );

        // A confidential client's refresh token is bound to its authentication, not to a key.
        let confidential = server.app_with(people(ClientType::Confidential)).await;
        let proof = key.proof("POST", &url, json!({}));
        let (status, _, body) = token_request(&server, &confidential, &[&proof], &password).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "DPoP");
        let refresh = [
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
        ];
        let (status, _, body) = token_request(&server, &confidential, &[], &refresh).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
    }
);

server_test!(an_application_may_require_dpop, |server| {
    let app = service_app(&server, TokenFormat::Opaque).await;
    server
        .update_app(
            &app.client_id,
            AppChanges {
                dpop_bound_access_tokens: Some(true),
                ..AppChanges::default()
            },
        )
        .await;
    let form = [("grant_type", "client_credentials")];
    let (status, _, body) = token_request(&server, &app, &[], &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );
    let proof = ProofKey::new().proof("POST", &server.url("/oauth/token"), json!({}));
    let (status, _, body) = token_request(&server, &app, &[&proof], &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    // The admin API shows the field under its RFC 9449 §5.2 name.
    let admin = server.token_for_role("admin").await;
    let shown: Value = server
        .http
        .get(server.url(&format!("/api/admin/v1/apps/{}", app.client_id)))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["dpop_bound_access_tokens"], true);
});

server_test!(
    the_gateway_takes_a_bound_token_only_with_its_proof,
    |server| {
        let upstream = start_upstream().await;
        let route = json!({"name": "inventory", "prefix": "/api/x/inventory",
        "upstream": format!("http://{}/v1", upstream.address), "timeout_seconds": 10});
        server
            .services
            .registry
            .create_entry::<Route>(route, false)
            .await
            .unwrap();
        let app = service_app(&server, TokenFormat::Jwt).await;
        let key = ProofKey::new();
        let (_, body) = client_credentials(
            &server,
            &app,
            &key.proof("POST", &server.url("/oauth/token"), json!({})),
        )
        .await;
        let token = body["access_token"].as_str().unwrap();
        let path = "/api/x/inventory/items/7";
        let proof = key.for_token("GET", &server.url(path), token);
        let (status, _) = call(&server, path, "DPoP", token, Some(&proof)).await;
        assert_eq!(status, 200);
        // Neither the token nor its proof goes upstream.
        let received = upstream.received();
        let headers = received[0]["headers"].as_array().unwrap();
        assert!(
            !headers
                .iter()
                .any(|h| h[0] == "dpop" || h[0] == "authorization")
        );
        let (status, challenge) = call(&server, path, "Bearer", token, None).await;
        assert_eq!(status, 401);
        assert_eq!(error_of(&challenge), "invalid_token");
        assert!(
            challenge.ends_with(&format!(
                "resource_metadata=\"{}/.well-known/oauth-protected-resource/api/x/inventory\"",
                server.base
            )),
            "{challenge}"
        );
        let proof = ProofKey::new().for_token("GET", &server.url(path), token);
        let (status, challenge) = call(&server, path, "DPoP", token, Some(&proof)).await;
        assert_eq!(status, 401);
        assert_eq!(error_of(&challenge), "invalid_token");
        assert_eq!(upstream.received().len(), 1);
    }
);

const DPOP_FLOW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/dpop.mjs");

server_test!(
    openid_client_binds_and_presents_tokens_with_its_own_key,
    configured(|settings| settings.require_dpop_nonce = true),
    |server| {
        if let Some(why) = missing_node() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the openid-client test must run under CI: {why}"
            );
            eprintln!("skipped: {why}");
            return;
        }
        let user = format!("svc-{}", uuid_like());
        server.user(&user, &[]).await;
        let service = server
            .app(TokenFormat::Jwt, &["openid", "useraccount"], Some(&user))
            .await;
        let public = server
            .app_with(AppChanges {
                name: Some("DPoP in Node".into()),
                client_type: Some(ClientType::Public),
                grant_types: Some(vec![GrantType::Password, GrantType::RefreshToken]),
                allowed_scopes: Some(vec!["openid".into()]),
                ..AppChanges::default()
            })
            .await;
        let mut command = std::process::Command::new("node");
        command
            .arg(DPOP_FLOW)
            .env("GATEHOUSE_ISSUER", &server.base)
            .env("GATEHOUSE_SERVICE_CLIENT_ID", &service.client_id)
            .env("GATEHOUSE_SERVICE_CLIENT_SECRET", &service.secret)
            .env("GATEHOUSE_PUBLIC_CLIENT_ID", &public.client_id)
            .env("GATEHOUSE_USERNAME", &user)
            .env("GATEHOUSE_PASSWORD", "a long enough password");
        let summary = run_node(command).await;
        assert!(summary["checks"].as_u64().unwrap() >= 12, "{summary}");
    }
);

/// The code the redirect from `url` carries: at once for a browser signed in with a remembered
/// consent, otherwise after signing in and consenting.
async fn code_at(server: &TestServer, browser: &mut Browser, url: &str, user: &str) -> String {
    let login = browser.get(url).await;
    if login.status == 303 {
        return login.redirect_params()["code"].clone();
    }
    assert_eq!(login.status, 200, "{}", login.body);
    let consent = browser.login(server, &login, user, PASSWORD).await;
    let done = browser.consent(server, &consent, "allow").await;
    done.redirect_params()["code"].clone()
}

server_test!(
    codes_may_be_bound_to_a_key_before_they_are_redeemed,
    |server| {
        let user = format!("alice-{}", uuid_like());
        server.user(&user, &[]).await;
        let app = people_app(&server, ClientType::Public).await;
        let token_url = server.url("/oauth/token");
        let key = ProofKey::new();
        let jkt = key.thumbprint();
        let mut browser = Browser::new();
        let bound_url = authorize_url(&server, &app.client_id, &[("dpop_jkt", &jkt)]);
        let redeem_with = |code: String, proofs: Vec<String>| {
            let server = &server;
            let app = &app;
            async move {
                let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
                let form = [
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ];
                let (status, _, body) = token_request(server, app, &proofs, &form).await;
                (status, body)
            }
        };

        // dpop_jkt (RFC 9449 §10): only a proof of that key redeems the code.
        let code = code_at(&server, &mut browser, &bound_url, &user).await;
        let other = ProofKey::new().proof("POST", &token_url, json!({}));
        let (status, body) = redeem_with(code, vec![other]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let code = code_at(&server, &mut browser, &bound_url, &user).await;
        let (status, body) = redeem_with(code, vec![]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof"))
        );
        let code = code_at(&server, &mut browser, &bound_url, &user).await;
        let (status, body) =
            redeem_with(code, vec![key.proof("POST", &token_url, json!({}))]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "DPoP");
        // A value that is no thumbprint goes back to the client as invalid_request.
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("dpop_jkt", "short")],
            ))
            .await;
        assert_eq!(page.redirect_params()["error"], "invalid_request");

        // A pushed request with a proof binds the code to the proof's key (§10.1).
        let par_url = server.url("/oauth/par");
        let push = |proof: String, extra: Vec<(&'static str, String)>| {
            let server = &server;
            let app = &app;
            async move {
                let mut form: Vec<(&str, &str)> = pushed_request(app, &[]);
                form.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
                let response = server
                    .http
                    .post(server.url("/oauth/par"))
                    .header("DPoP", proof)
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }
        };
        let (status, pushed) = push(key.proof("POST", &par_url, json!({})), vec![]).await;
        assert_eq!(status, 201, "{pushed}");
        let url = authorize_with(
            &server,
            &app.client_id,
            pushed["request_uri"].as_str().unwrap(),
            "",
        );
        let code = code_at(&server, &mut browser, &url, &user).await;
        let other = ProofKey::new().proof("POST", &token_url, json!({}));
        let (status, body) = redeem_with(code, vec![other]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // A dpop_jkt of another key than the proof's is refused, and so is a proof for another URI.
        let (status, body) = push(
            key.proof("POST", &par_url, json!({})),
            vec![("dpop_jkt", ProofKey::new().thumbprint())],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof"))
        );
        let (status, body) = push(key.proof("POST", &token_url, json!({})), vec![]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof"))
        );
    }
);
