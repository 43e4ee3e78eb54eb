//! Federation: JWT providers, the JWT bearer grant, `private_key_jwt`, and third-party tokens on
//! the APIs. The identity provider is a separate process (`tests/idp/idp.py`) serving discovery
//! and a JWK Set over HTTP; assertions are signed with the `jsonwebtoken` crate using RSA, EC
//! and Ed25519 keys.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_core::client::{GrantType, TokenFormat};
use gatehouse_core::federation::jose::JwsAlgorithm;
use gatehouse_core::federation::{JwtProviderChanges, KeySource, NewJwtProvider};
use gatehouse_core::registry::{AppChanges, UserChanges};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, post_form, server_test, uuid_like};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A signing key of the stand-in identity provider (or of a client).
pub(crate) struct TestKey {
    kid: String,
    alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    jwk: Value,
}

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    fn rsa(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
                .unwrap(),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig",
                "n": b64(&components.n), "e": b64(&components.e)}),
        }
    }

    fn ec(kid: &str) -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
        }
    }

    fn ed25519(kid: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// An EC key whose public half is given as a PEM (for static keys).
    pub(crate) fn ec_with_pem(kid: &str) -> (TestKey, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let mut key = TestKey::ec(kid);
        key.encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        (key, pem("PUBLIC KEY", spki.as_ref()))
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Signs claims under a hand-made header: for the algorithms no honest library would produce.
fn forge(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// The stand-in identity provider, a child process.
struct Idp {
    child: Option<Child>,
    state: PathBuf,
    base: String,
}

impl Idp {
    /// Another Gatehouse, seen as an identity provider (nothing to stop or clean up).
    fn of(server: &TestServer) -> Idp {
        Idp {
            child: None,
            state: PathBuf::new(),
            base: server.base.clone(),
        }
    }

    fn start(keys: &[&TestKey]) -> Idp {
        let state = std::env::temp_dir().join(format!("gatehouse-idp-{}", uuid_like()));
        std::fs::create_dir_all(&state).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/idp/idp.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&state)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the stand-in identity provider");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let idp = Idp {
            child: Some(child),
            state,
            base: format!("http://127.0.0.1:{}", line.trim()),
        };
        idp.set_keys(keys);
        idp
    }

    fn set_keys(&self, keys: &[&TestKey]) {
        let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        std::fs::write(self.state.join("jwks.json"), jwks.to_string()).unwrap();
    }

    fn set(&self, file: &str, value: &str) {
        std::fs::write(self.state.join(file), value).unwrap();
    }

    async fn fetches(&self) -> i64 {
        let stats: Value = reqwest::get(format!("{}/stats", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["jwks"].as_i64().unwrap()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a good assertion for `sub`.
fn assertion_claims(idp: &Idp, server: &TestServer, sub: &str) -> Value {
    json!({
        "iss": idp.base, "sub": sub, "aud": server.url("/oauth/token"),
        "iat": now(), "exp": now() + 120, "jti": uuid_like(),
    })
}

/// A provider trusting `idp` (by discovery), with every asymmetric algorithm allowed.
async fn provider(server: &TestServer, idp: &Idp, name: &str, fields: JwtProviderChanges) {
    let mut fields = fields;
    fields.issuer.get_or_insert(idp.base.clone());
    fields
        .key_source
        .get_or_insert(KeySource::DiscoveryUrl(format!(
            "{}/.well-known/openid-configuration",
            idp.base
        )));
    fields.algorithms.get_or_insert(JwsAlgorithm::ALL.to_vec());
    server
        .services
        .registry
        .create_jwt_provider(
            NewJwtProvider {
                name: name.into(),
                fields,
            },
            false,
        )
        .await
        .expect("create the JWT provider");
}

async fn bearer_app(server: &TestServer) -> TestApp {
    server
        .app_with(AppChanges {
            name: Some("assertion app".into()),
            grant_types: Some(vec![GrantType::JwtBearer]),
            allowed_scopes: Some(vec!["useraccount".into()]),
            ..AppChanges::default()
        })
        .await
}

async fn exchange(server: &TestServer, app: &TestApp, assertion: &str) -> (u16, Value) {
    let (status, _, body) = post_form(
        server,
        "/oauth_token.do",
        Some((&app.client_id, &app.secret)),
        &[("grant_type", JWT_BEARER), ("assertion", assertion)],
    )
    .await;
    (status, body)
}

server_test!(
    jwt_bearer_grant_accepts_rsa_ec_and_ed25519_assertions,
    |server| {
        let (rsa, ec, ed) = (
            TestKey::rsa("r1"),
            TestKey::ec("e1"),
            TestKey::ed25519("d1"),
        );
        let idp = Idp::start(&[&rsa, &ec, &ed]);
        let app = bearer_app(&server).await;
        server.user("alice", &[]).await;
        provider(
            &server,
            &idp,
            "corporate",
            JwtProviderChanges {
                allowed_clients: Some(vec![app.client_id.clone()]),
                ..JwtProviderChanges::default()
            },
        )
        .await;
        for key in [&rsa, &ec, &ed] {
            let assertion = key.sign(&assertion_claims(&idp, &server, "alice"));
            let (status, body) = exchange(&server, &app, &assertion).await;
            assert_eq!(status, 200, "{:?}: {body}", key.alg);
            assert!(body.get("refresh_token").is_none());
            let token = body["access_token"].as_str().unwrap();
            let (_, _, info) = post_form(
                &server,
                "/oauth/introspect",
                Some((&app.client_id, &app.secret)),
                &[("token", token)],
            )
            .await;
            assert_eq!(info["active"], true);
            assert_eq!(info["username"], "alice");
            assert_eq!(info["scope"], "useraccount");
        }
    }
);

server_test!(assertions_are_refused_with_the_reason, |server| {
    let (rsa, ec) = (TestKey::rsa("r1"), TestKey::ec("e1"));
    let idp = Idp::start(&[&rsa, &ec]);
    let app = bearer_app(&server).await;
    let other_app = bearer_app(&server).await;
    server.user("alice", &[]).await;
    server.user("bob", &[]).await;
    server
        .services
        .registry
        .update_user(
            "bob",
            UserChanges {
                active: Some(false),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    provider(
        &server,
        &idp,
        "corporate",
        JwtProviderChanges {
            allowed_clients: Some(vec![app.client_id.clone()]),
            max_age: Some(300),
            ..JwtProviderChanges::default()
        },
    )
    .await;
    let good = assertion_claims(&idp, &server, "alice");
    let with = |changes: Value| {
        let mut claims = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims["jti"] = json!(uuid_like());
        claims
    };
    let rsa_modulus = rsa.jwk["n"].as_str().unwrap().to_owned();
    let hs256 = {
        let header = json!({"alg": "HS256", "kid": "r1"});
        let claims = with(json!({}));
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, rsa_modulus.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
        format!("{signing_input}.{}", b64(tag.as_ref()))
    };
    let replayed = rsa.sign(&with(json!({})));
    assert_eq!(exchange(&server, &app, &replayed).await.0, 200);
    let mut mismatched = TestKey::rsa("e1");
    mismatched.kid = "e1".into();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong issuer",
            rsa.sign(&with(json!({"iss": "https://elsewhere.example"}))),
            "is not a trusted JWT provider",
        ),
        (
            "wrong audience",
            rsa.sign(&with(json!({"aud": "https://other.example/token"}))),
            "its audience does not name this server",
        ),
        (
            "expired",
            rsa.sign(&with(json!({"exp": now() - 120, "iat": now() - 200}))),
            "it has expired",
        ),
        (
            "not yet valid",
            rsa.sign(&with(json!({"nbf": now() + 600}))),
            "it is not valid yet",
        ),
        (
            "too old",
            rsa.sign(&with(json!({"iat": now() - 1000, "exp": now() + 60}))),
            "issued more than 300 seconds ago",
        ),
        ("replayed jti", replayed, "was already used"),
        (
            "unknown kid",
            {
                let mut forged = TestKey::rsa("nobody-knows-me");
                forged.kid = "nobody-knows-me".into();
                forged.sign(&with(json!({})))
            },
            "no key with its kid is known",
        ),
        (
            "alg none",
            forge(json!({"alg": "none"}), &with(json!({})), b""),
            "alg none is never accepted",
        ),
        (
            "HS256 signed with the provider's public key",
            hs256,
            "its algorithm is not among the accepted algorithms",
        ),
        (
            "an RSA signature under an EC key's kid",
            mismatched.sign(&with(json!({}))),
            "is an EC P-256 key, which cannot verify RS256",
        ),
        (
            "missing jti",
            rsa.sign(&{
                let mut c = with(json!({}));
                c.as_object_mut().unwrap().remove("jti");
                c
            }),
            "claim jti is missing",
        ),
        (
            "unknown user",
            rsa.sign(&with(json!({"sub": "mallory"}))),
            "does not name an active user",
        ),
        (
            "inactive user",
            rsa.sign(&with(json!({"sub": "bob"}))),
            "does not name an active user",
        ),
        (
            "not a JWT",
            "not-a-jwt".into(),
            "not a well-formed signed JWT",
        ),
    ];
    for (case, assertion, reason) in cases {
        let (status, body) = exchange(&server, &app, &assertion).await;
        assert_eq!(status, 400, "{case}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(reason), "{case}: {description}");
    }
    let (status, body) = exchange(&server, &other_app, &rsa.sign(&with(json!({})))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("is not allowed for this application")
    );
    // An application not allowed the grant at all.
    let cc_app = server
        .app(TokenFormat::Opaque, &["useraccount"], None)
        .await;
    let (status, body) = exchange(&server, &cc_app, &rsa.sign(&with(json!({})))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let (status, _, body) = post_form(
        &server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[("grant_type", JWT_BEARER)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
});

server_test!(
    a_failing_identity_provider_is_bounded_and_degrades,
    |server| {
        let rsa = TestKey::rsa("r1");
        let idp = Idp::start(&[&rsa]);
        let app = bearer_app(&server).await;
        server.user("alice", &[]).await;
        provider(
            &server,
            &idp,
            "corporate",
            JwtProviderChanges {
                key_source: Some(KeySource::JwksUrl(format!("{}/jwks", idp.base))),
                allowed_clients: Some(vec![app.client_id.clone()]),
                ..JwtProviderChanges::default()
            },
        )
        .await;
        // The keys arrive and are cached for max-age (clamped to at least the refresh interval).
        idp.set("cache_control", "max-age=1");
        let sign = || rsa.sign(&assertion_claims(&idp, &server, "alice"));
        assert_eq!(exchange(&server, &app, &sign()).await.0, 200);
        // Forged kids cannot make Gatehouse hammer the provider.
        let mut forged = TestKey::rsa("x");
        let fetched = idp.fetches().await;
        for _ in 0..20 {
            forged.kid = uuid_like();
            let (status, _) = exchange(
                &server,
                &app,
                &forged.sign(&assertion_claims(&idp, &server, "alice")),
            )
            .await;
            assert_eq!(status, 400);
        }
        // At most one fetch per interval (1 s here); the loop spans at most two.
        assert!(
            idp.fetches().await <= fetched + 2,
            "forged kids caused fetches"
        );
        // The provider fails: once the cached keys are stale a refresh is tried, fails, and the
        // known keys stay in use.
        idp.set("mode", "error");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let before = idp.fetches().await;
        assert_eq!(exchange(&server, &app, &sign()).await.0, 200);
        assert!(idp.fetches().await > before, "a refresh was attempted");

        // A provider never seen before that hangs, or answers 50 MB, gives a clear error in bounded
        // time and size.
        for (mode, reason) in [
            ("hang", "no answer within the time limit"),
            ("huge", "larger than"),
            ("huge-chunked", "larger than"),
        ] {
            let idp = Idp::start(&[&rsa]);
            idp.set("mode", mode);
            let name = format!("failing-{mode}");
            provider(
                &server,
                &idp,
                &name,
                JwtProviderChanges {
                    key_source: Some(KeySource::JwksUrl(format!("{}/jwks", idp.base))),
                    allowed_clients: Some(vec![app.client_id.clone()]),
                    ..JwtProviderChanges::default()
                },
            )
            .await;
            let (status, body) = exchange(&server, &app, &sign_for(&rsa, &idp, &server)).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{mode}"
            );
            let description = body["error_description"].as_str().unwrap();
            assert!(description.contains(reason), "{mode}: {description}");
        }
    }
);

server_test!(
    used_assertions_are_remembered_until_their_own_expiry,
    |server| {
        let ec = TestKey::ec("e1");
        let idp = Idp::start(&[&ec]);
        let app = bearer_app(&server).await;
        server.user("alice", &[]).await;
        provider(
            &server,
            &idp,
            "corporate",
            JwtProviderChanges {
                allowed_clients: Some(vec![app.client_id.clone()]),
                ..JwtProviderChanges::default()
            },
        )
        .await;
        let signed = server
            .app_with(AppChanges {
                name: Some("signed client".into()),
                grant_types: Some(vec![GrantType::ClientCredentials]),
                jwks: Some(json!({"keys": [ec.jwk.clone()]}).to_string()),
                ..AppChanges::default()
            })
            .await;
        let store = server.services.store.clone();
        // An hour ahead (a fraction is refused outright: see numeric_claims_must_be_integers).
        for exp in [json!(now() + 3600)] {
            let expires = exp.as_f64().unwrap() as i64;
            // The JWT bearer grant's assertion.
            let mut claims = assertion_claims(&idp, &server, "alice");
            claims["exp"] = exp.clone();
            let assertion = ec.sign(&claims);
            let (status, body) = exchange(&server, &app, &assertion).await;
            assert_eq!(status, 200, "{exp}: {body}");
            // A client assertion (private_key_jwt).
            let client_assertion = ec.sign(&json!({
                "iss": signed.client_id, "sub": signed.client_id, "aud": server.base,
                "iat": now(), "exp": exp, "jti": uuid_like(),
            }));
            let form = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", CLIENT_ASSERTION),
                ("client_assertion", client_assertion.as_str()),
            ];
            let authenticate = || post_form(&server, "/oauth/token", None, &form);
            let (status, _, body) = authenticate().await;
            assert_eq!(status, 200, "{exp}: {body}");
            // The purge of expired records, as maintenance would run it just before the
            // assertions expire, keeps them: replays are still refused.
            store.purge_expired(expires - 1).await.unwrap();
            let (status, body) = exchange(&server, &app, &assertion).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{exp}"
            );
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("was already used"),
                "{body}"
            );
            let (status, _, body) = authenticate().await;
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_client")),
                "{exp}"
            );
        }
    }
);

server_test!(assertions_live_at_most_their_max_lifetime, |server| {
    let ec = TestKey::ec("e1");
    let idp = Idp::start(&[&ec]);
    let app = bearer_app(&server).await;
    server.user("alice", &[]).await;
    provider(
        &server,
        &idp,
        "corporate",
        JwtProviderChanges {
            allowed_clients: Some(vec![app.client_id.clone()]),
            ..JwtProviderChanges::default()
        },
    )
    .await;
    assert_eq!(
        server
            .services
            .registry
            .get_jwt_provider("corporate")
            .await
            .unwrap()
            .max_lifetime,
        3600,
        "an hour unless configured"
    );
    let grant_assertion = |iat: Option<i64>, exp: i64| {
        let mut claims = assertion_claims(&idp, &server, "alice");
        claims["exp"] = json!(exp);
        match iat {
            Some(iat) => claims["iat"] = json!(iat),
            None => {
                claims.as_object_mut().unwrap().remove("iat");
            }
        }
        ec.sign(&claims)
    };
    let refused = |case: &str, body: &Value, seconds: i64| {
        assert_eq!(body["error"], "invalid_grant", "{case}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains(&format!("it lives longer than {seconds} seconds")),
            "{case}: {description}"
        );
        assert!(
            crate::edges::allowed_description(description),
            "{case}: {description}"
        );
    };
    let issued = now();
    let (status, body) =
        exchange(&server, &app, &grant_assertion(Some(issued), issued + 3600)).await;
    assert_eq!(status, 200, "exactly the lifetime: {body}");
    for (case, iat, exp) in [
        ("exp an hour and more after iat", Some(now()), now() + 3700),
        (
            "iat in the past, exp within an hour from now",
            Some(now() - 200),
            now() + 3500,
        ),
        ("exp a year ahead", Some(now()), now() + 365 * 86_400),
        ("no iat, exp two hours ahead", None, now() + 7200),
        ("no iat, exp in the next century", None, 4_102_444_800),
    ] {
        let (status, body) = exchange(&server, &app, &grant_assertion(iat, exp)).await;
        assert_eq!(status, 400, "{case}: {body}");
        refused(case, &body, 3600);
    }
    // The bound is the provider's.
    server
        .services
        .registry
        .update_jwt_provider(
            "corporate",
            JwtProviderChanges {
                max_lifetime: Some(600),
                ..JwtProviderChanges::default()
            },
        )
        .await
        .unwrap();
    let (status, body) = exchange(&server, &app, &grant_assertion(Some(now()), now() + 900)).await;
    assert_eq!(status, 400, "{body}");
    refused("fifteen minutes under a ten-minute bound", &body, 600);
    let (status, body) = exchange(&server, &app, &grant_assertion(Some(now()), now() + 500)).await;
    assert_eq!(status, 200, "{body}");
    for bad in [0, -1, 86_401] {
        let error = server
            .services
            .registry
            .update_jwt_provider(
                "corporate",
                JwtProviderChanges {
                    max_lifetime: Some(bad),
                    ..JwtProviderChanges::default()
                },
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("max_lifetime"), "{bad}: {error}");
    }

    // private_key_jwt client assertions share the verification, with the default hour.
    let signed = server
        .app_with(AppChanges {
            name: Some("signed client".into()),
            grant_types: Some(vec![GrantType::ClientCredentials]),
            allowed_scopes: Some(vec!["inventory".into()]),
            jwks: Some(json!({"keys": [ec.jwk.clone()]}).to_string()),
            ..AppChanges::default()
        })
        .await;
    let server = &server;
    let authenticate = |iat: Option<i64>, exp: i64| {
        let mut claims = json!({
            "iss": signed.client_id, "sub": signed.client_id, "aud": server.base,
            "exp": exp, "jti": uuid_like(),
        });
        if let Some(iat) = iat {
            claims["iat"] = json!(iat);
        }
        let assertion = ec.sign(&claims);
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", CLIENT_ASSERTION),
                ("client_assertion", assertion.as_str()),
            ];
            post_form(server, "/oauth/token", None, &form).await
        }
    };
    let (status, _, body) = authenticate(Some(now()), now() + 3000).await;
    assert_eq!(status, 200, "{body}");
    for (case, iat, exp) in [
        ("exp two hours after iat", Some(now()), now() + 7200),
        ("no iat, exp two hours ahead", None, now() + 7200),
    ] {
        let (status, headers, body) = authenticate(iat, exp).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{case}: {body}"
        );
        assert!(headers.contains_key("www-authenticate"), "{case}");
    }
});

fn sign_for(key: &TestKey, idp: &Idp, server: &TestServer) -> String {
    key.sign(&assertion_claims(idp, server, "alice"))
}

server_test!(private_key_jwt_authenticates_clients, |server| {
    let ec = TestKey::ec("client-key");
    let inline = server
        .app_with(AppChanges {
            name: Some("signed client".into()),
            grant_types: Some(vec![GrantType::ClientCredentials]),
            allowed_scopes: Some(vec!["inventory".into()]),
            jwks: Some(json!({"keys": [ec.jwk.clone()]}).to_string()),
            ..AppChanges::default()
        })
        .await;
    assert!(
        inline.secret.is_empty(),
        "a client with keys gets no secret"
    );
    let client_assertion = |key: &TestKey, client_id: &str, aud: String| {
        key.sign(&json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "iat": now(), "exp": now() + 60, "jti": uuid_like(),
        }))
    };
    let server = &server;
    let request = |assertion: String, client_id: Option<String>| async move {
        let mut form = vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            (
                "client_assertion_type".to_owned(),
                CLIENT_ASSERTION.to_owned(),
            ),
            ("client_assertion".to_owned(), assertion),
        ];
        if let Some(id) = client_id {
            form.push(("client_id".to_owned(), id));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        post_form(server, "/oauth/token", None, &form).await
    };
    // The audience is the issuer.
    let assertion = client_assertion(&ec, &inline.client_id, server.base.clone());
    let (status, _, body) = request(assertion.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "inventory");
    // Replayed, signed by another key, naming another audience, or naming the token endpoint
    // (under either path) without the legacy switch: invalid_client.
    let stranger = TestKey::ec("client-key");
    let token_endpoints = [server.url("/oauth/token"), server.url("/oauth_token.do")];
    for assertion in [
        assertion,
        client_assertion(&stranger, &inline.client_id, server.base.clone()),
        client_assertion(&ec, &inline.client_id, "https://elsewhere.example".into()),
        client_assertion(&ec, &inline.client_id, token_endpoints[0].clone()),
        client_assertion(&ec, &inline.client_id, token_endpoints[1].clone()),
        client_assertion(&ec, &inline.client_id, format!("{}/", server.base)),
    ] {
        let (status, headers, body) = request(assertion, Some(inline.client_id.clone())).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        assert!(headers.contains_key("www-authenticate"));
    }
    // An application kept on the older rule accepts the token endpoint too (and still the
    // issuer), through the admin API's switch.
    let admin = server.token_for_role("admin").await;
    let response = server
        .http
        .patch(server.url(&format!("/api/admin/v1/apps/{}", inline.client_id)))
        .bearer_auth(&admin)
        .json(&json!({"legacy_token_endpoint_aud": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["legacy_token_endpoint_aud"], true);
    for aud in [
        token_endpoints[0].clone(),
        token_endpoints[1].clone(),
        server.base.clone(),
    ] {
        let (status, _, body) =
            request(client_assertion(&ec, &inline.client_id, aud.clone()), None).await;
        assert_eq!(status, 200, "{aud}: {body}");
    }
    let (status, _, _) = request(
        client_assertion(&ec, &inline.client_id, "https://elsewhere.example".into()),
        None,
    )
    .await;
    assert_eq!(status, 401);
    // Keys by URL, fetched from the client's own JWK Set (here: the stand-in IdP serving it),
    // with the issuer as audience.
    let rsa = TestKey::rsa("rotating");
    let idp = Idp::start(&[&rsa]);
    let by_url = server
        .app_with(AppChanges {
            name: Some("signed client by url".into()),
            grant_types: Some(vec![GrantType::ClientCredentials]),
            allowed_scopes: Some(vec!["inventory".into()]),
            jwks_uri: Some(format!("{}/jwks", idp.base)),
            ..AppChanges::default()
        })
        .await;
    let (status, _, body) = request(
        client_assertion(&rsa, &by_url.client_id, server.base.clone()),
        Some(by_url.client_id.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A secret and an assertion together are refused.
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &by_url.client_id),
            ("client_secret", "x"),
            ("client_assertion_type", CLIENT_ASSERTION),
            ("client_assertion", "a.b.c"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let discovery: Value = server
        .http
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        discovery["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt"))
    );
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(JWT_BEARER))
    );
});

server_test!(
    third_party_tokens_reach_the_apis_until_the_provider_is_disabled,
    |server| {
        let (ec, pem) = TestKey::ec_with_pem("any");
        server.user("carol", &["oauth_admin"]).await;
        let audience = "api://gatehouse".to_owned();
        server
            .services
            .registry
            .create_jwt_provider(
                NewJwtProvider {
                    name: "okta".into(),
                    fields: JwtProviderChanges {
                        issuer: Some("https://corp.okta.example/oauth2/default".into()),
                        audiences: Some(vec![audience.clone()]),
                        key_source: Some(KeySource::Static(pem)),
                        algorithms: Some(vec![JwsAlgorithm::ES256]),
                        api_access: Some(true),
                        api_scopes: Some(vec!["useraccount".into()]),
                        // carol is an oauth_admin.
                        map_registry_roles: Some(true),
                        ..JwtProviderChanges::default()
                    },
                },
                false,
            )
            .await
            .unwrap();
        let token = |scp: Value, aud: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.typ = Some("at+jwt".into());
            let claims = json!({
                "iss": "https://corp.okta.example/oauth2/default", "sub": "carol", "aud": aud,
                "iat": now(), "exp": now() + 300, "scp": scp, "cid": "okta-app",
            });
            jsonwebtoken::encode(&header, &claims, &ec.encoding).unwrap()
        };
        let get = |path: &str, token: String| {
            let request = server.http.get(server.url(path)).bearer_auth(token);
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned());
                (
                    status,
                    challenge,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let good = token(json!(["useraccount", "offline_access"]), &audience);
        let (status, _, whoami) = get("/api/admin/v1/whoami", good.clone()).await;
        assert_eq!(status, 200, "{whoami}");
        assert_eq!(whoami["user_name"], "carol");
        assert_eq!(whoami["client_id"], "okta:okta-app");
        assert_eq!(
            whoami["scope"], "useraccount",
            "scopes beyond the provider's are dropped"
        );
        let (status, _, apps) = get("/api/admin/v1/apps", good.clone()).await;
        assert_eq!(status, 200, "{apps}");
        // A token without the scope the API needs.
        let (status, challenge, _) = get(
            "/api/admin/v1/apps",
            token(json!("profile email"), &audience),
        )
        .await;
        assert_eq!(status, 403);
        assert!(challenge.unwrap().contains("insufficient_scope"));
        // A token for another audience.
        let (status, challenge, _) = get(
            "/api/admin/v1/whoami",
            token(json!(["useraccount"]), "api://other"),
        )
        .await;
        assert_eq!(status, 401);
        assert!(challenge.unwrap().contains("invalid_token"));
        // Disabled: refused at once.
        let own = server.token_for_role("admin").await;
        let response = server
            .http
            .patch(server.url("/api/admin/v1/jwt-providers/okta"))
            .bearer_auth(&own)
            .json(&json!({"active": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (status, challenge, _) = get("/api/admin/v1/whoami", good).await;
        assert_eq!(status, 401);
        assert!(challenge.unwrap().contains("invalid_token"));
    }
);

server_test!(jwt_providers_are_managed_through_the_admin_api, |server| {
    let admin = server.token_for_role("oauth_admin").await;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = server
            .http
            .request(method, server.url(&format!("/api/admin/v1{path}")))
            .bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, created) = call(
        reqwest::Method::POST,
        "/jwt-providers",
        Some(json!({
            "name": "entra", "issuer": "https://login.microsoftonline.com/tenant/v2.0",
            "discovery_url": "https://login.microsoftonline.com/tenant/v2.0/.well-known/openid-configuration",
            "algorithms": ["RS256"], "user_claim": "email", "user_field": "email",
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["max_age"], 300);
    assert_eq!(created["max_lifetime"], 3600);
    assert_eq!(created["api_access"], false);
    for (body, reason) in [
        (
            json!({"name": "bad1", "issuer": "x", "jwks_url": "https://x/jwks", "algorithms": ["HS256"]}),
            "not accepted",
        ),
        (
            json!({"name": "bad2", "issuer": "x", "jwks_url": "http://idp.example/jwks"}),
            "only https",
        ),
        (
            json!({"name": "bad3", "issuer": "x", "static_key": "not a key"}),
            "static key is unusable",
        ),
        (
            json!({"name": "bad4", "issuer": "x", "jwks_url": "https://x/j", "static_key": "{}"}),
            "give one of",
        ),
        (
            json!({"name": "bad5", "issuer": "x", "jwks_url": "https://x/j", "api_access": true}),
            "api_scopes",
        ),
        (
            json!({"name": "bad6", "issuer": "x", "jwks_url": "https://x/j", "allowed_clients": ["ghost"]}),
            "does not exist",
        ),
        (
            json!({"name": "bad7", "issuer": "x", "jwks_url": "https://x/j", "max_lifetime": 0}),
            "max_lifetime must be between",
        ),
        (
            json!({"name": "bad8", "issuer": "x", "jwks_url": "https://x/j", "max_lifetime": 86_401}),
            "max_lifetime must be between",
        ),
    ] {
        let (status, error) = call(reqwest::Method::POST, "/jwt-providers", Some(body)).await;
        assert_eq!(status, 400, "{error}");
        assert!(
            error["error_description"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{error}"
        );
    }
    let (status, list) = call(reqwest::Method::GET, "/jwt-providers", None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, updated) = call(
        reqwest::Method::PATCH,
        "/jwt-providers/entra",
        Some(
            json!({"max_age": 60, "max_lifetime": 900, "api_access": true,
            "api_scopes": ["useraccount"]}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["max_age"], 60);
    assert_eq!(updated["max_lifetime"], 900);
    let (status, _) = call(reqwest::Method::DELETE, "/jwt-providers/entra", None).await;
    assert_eq!(status, 204);
    // The OpenAPI document describes the settings that decide what a token may be.
    let (_, document) = call(reqwest::Method::GET, "/openapi.json", None).await;
    let schemas = &document["components"]["schemas"];
    for (schema, field) in [
        ("JwtProviderInput", "accept_plain_jwt"),
        ("JwtProviderInput", "accept_id_tokens"),
        ("JwtProviderInput", "stale_keys_lifetime"),
        ("JwtProviderInput", "max_lifetime"),
        ("JwtProviderView", "max_lifetime"),
        ("JwtProviderView", "accept_plain_jwt"),
        ("JwtProviderView", "accept_id_tokens"),
        ("JwtProviderView", "stale_keys_lifetime"),
        ("JwtProviderInput", "map_registry_roles"),
        ("JwtProviderView", "map_registry_roles"),
        ("AppInput", "legacy_token_endpoint_aud"),
        ("AppView", "legacy_token_endpoint_aud"),
        ("ProviderView", "issuer"),
        (
            "ProviderView",
            "authorization_response_iss_parameter_supported",
        ),
    ] {
        assert!(
            schemas[schema]["properties"].get(field).is_some(),
            "{schema}.{field}"
        );
    }
    let (status, _) = call(reqwest::Method::GET, "/jwt-providers/entra", None).await;
    assert_eq!(status, 404);
});

server_test!(jwt_providers_follow_the_declarative_file, |server| {
    let file = |max_age: i64, max_lifetime: i64| -> gatehouse_core::manifest::Manifest {
        toml::from_str(&format!(
            r#"
            [[application]]
            name = "assertion app"
            client_id = "assertion-app"
            grant_types = ["jwt_bearer"]

            [[jwt_provider]]
            name = "corporate"
            issuer = "https://idp.example"
            jwks_url = "https://idp.example/jwks"
            algorithms = ["ES256"]
            allowed_clients = ["assertion-app"]
            max_age = {max_age}
            max_lifetime = {max_lifetime}
            accept_id_tokens = true
            stale_keys_lifetime = 120
            "#
        ))
        .unwrap()
    };
    let registry = &server.services.registry;
    let outbound = server.services.outbound.registry();
    let apply = |manifest: gatehouse_core::manifest::Manifest, prune: bool| async move {
        let options = gatehouse_core::manifest::ApplyOptions {
            prune,
            ..Default::default()
        };
        manifest
            .apply(registry, outbound, options, &|_| None)
            .await
            .unwrap()
    };
    let created = apply(file(300, 1200), false).await;
    let stored = registry.get_jwt_provider("corporate").await.unwrap();
    assert_eq!(
        (
            stored.accept_plain_jwt,
            stored.accept_id_tokens,
            stored.stale_keys_lifetime,
            stored.max_lifetime
        ),
        (false, true, 120, 1200)
    );
    assert!(
        created
            .iter()
            .any(|c| c.kind == "jwt_provider" && c.key == "corporate")
    );
    assert!(
        apply(file(300, 1200), false).await.is_empty(),
        "applying twice changes nothing"
    );
    let updated = apply(file(60, 1200), false).await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].fields, vec!["max_age"]);
    let updated = apply(file(60, 600), false).await;
    assert_eq!(updated[0].fields, vec!["max_lifetime"]);
    let stored = registry.get_jwt_provider("corporate").await.unwrap();
    assert_eq!((stored.max_age, stored.max_lifetime), (60, 600));
    let pruned = apply(gatehouse_core::manifest::Manifest::default(), true).await;
    assert!(pruned.iter().any(|c| c.kind == "jwt_provider"));
    assert!(registry.list_jwt_providers().await.unwrap().is_empty());
});

server_test!(another_gatehouse_is_a_trusted_identity_provider, |server| {
    // The identity provider is a second Gatehouse; its ID token (ES256, keys from its own
    // discovery document and JWKS) reaches this server's APIs as the user it names.
    let Some(idp) = TestServer::start(crate::harness::Backend::Sqlite).await else {
        return;
    };
    idp.user("dave", &[]).await;
    let idp_app = idp
        .app_with(AppChanges {
            name: Some("portal".into()),
            grant_types: Some(vec![GrantType::Password]),
            allowed_scopes: Some(vec!["openid".into(), "profile".into()]),
            ..AppChanges::default()
        })
        .await;
    let (status, _, tokens) = post_form(
        &idp,
        "/oauth/token",
        Some((&idp_app.client_id, &idp_app.secret)),
        &[
            ("grant_type", "password"),
            ("username", "dave"),
            ("password", "a long enough password"),
            ("scope", "openid profile"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();

    server.user("dave", &["oauth_admin"]).await;
    let trust = |accept_id_tokens: bool| JwtProviderChanges {
        audiences: Some(vec![idp_app.client_id.clone()]),
        algorithms: Some(vec![JwsAlgorithm::ES256]),
        user_claim: Some("preferred_username".into()),
        api_access: Some(true),
        api_scopes: Some(vec!["useraccount".into()]),
        accept_id_tokens: Some(accept_id_tokens),
        map_registry_roles: Some(true),
        ..JwtProviderChanges::default()
    };
    provider(&server, &Idp::of(&idp), "upstream-gatehouse", trust(false)).await;
    // An ID token is for the client that asked for it: refused unless the provider opts in.
    refused(&server, "ID token", &id_token, "it is an ID token").await;
    server
        .services
        .registry
        .update_jwt_provider("upstream-gatehouse", trust(true))
        .await
        .unwrap();
    let (status, whoami) = self::whoami(&server, &id_token).await;
    assert_eq!(status, 200, "{whoami}");
    assert_eq!(whoami["user_name"], "dave");
    assert_eq!(
        whoami["client_id"],
        format!("upstream-gatehouse:{}", idp_app.client_id)
    );
    assert_eq!(whoami["scope"], "useraccount");
});

server_test!(jwt_providers_are_managed_from_the_cli, |server| {
    let app = bearer_app(&server).await;
    let server = &server;
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::cli::gatehouse(server, &args, &[]).await
        }
    };
    let created = run(&[
        "jwt-provider",
        "create",
        "okta",
        "--issuer",
        "https://corp.okta.example",
        "--jwks-url",
        "https://corp.okta.example/v1/keys",
        "--alg",
        "RS256",
        "--alg",
        "PS256",
        "--user-claim",
        "email",
        "--user-field",
        "email",
        "--allow-app",
        &app.client_id,
        "--accept-plain-jwt",
        "true",
        "--stale-keys-lifetime",
        "60",
        "--max-lifetime",
        "900",
    ])
    .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let view: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(view["algorithms"], json!(["RS256", "PS256"]));
    assert_eq!(view["allowed_clients"], json!([app.client_id]));
    assert_eq!(
        (
            &view["accept_plain_jwt"],
            &view["accept_id_tokens"],
            &view["stale_keys_lifetime"],
            &view["max_lifetime"]
        ),
        (&json!(true), &json!(false), &json!(60), &json!(900))
    );
    let refused = run(&[
        "jwt-provider",
        "create",
        "weak",
        "--issuer",
        "x",
        "--jwks-url",
        "https://x/keys",
        "--alg",
        "HS256",
    ])
    .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("HS256"));
    let updated = run(&["jwt-provider", "update", "okta", "--active", "false"]).await;
    assert!(updated.status.success());
    let listed = run(&["jwt-provider", "list", "--json"]).await;
    let list: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list[0]["active"], false);
    assert!(
        run(&["jwt-provider", "delete", "okta"])
            .await
            .status
            .success()
    );
    assert!(
        !run(&["jwt-provider", "show", "okta"])
            .await
            .status
            .success()
    );
});

/// The issuer of the third-party tokens below.
pub(crate) const OKTA: &str = "https://corp.okta.example/oauth2/default";

/// A provider trusting a static EC key for API access, and the key that signs its tokens.
pub(crate) async fn api_provider(
    server: &TestServer,
    name: &str,
    fields: JwtProviderChanges,
) -> TestKey {
    let (key, pem) = TestKey::ec_with_pem("any");
    let mut fields = fields;
    fields.issuer.get_or_insert(OKTA.into());
    fields
        .audiences
        .get_or_insert(vec!["api://gatehouse".into()]);
    fields.key_source = Some(KeySource::Static(pem));
    fields.algorithms = Some(vec![JwsAlgorithm::ES256]);
    fields.api_access = Some(true);
    fields.api_scopes.get_or_insert(vec!["useraccount".into()]);
    // The tokens stand for oauth_admins, whom the admin API's whoami answers.
    fields.map_registry_roles.get_or_insert(true);
    server
        .services
        .registry
        .create_jwt_provider(
            NewJwtProvider {
                name: name.into(),
                fields,
            },
            false,
        )
        .await
        .expect("create the JWT provider");
    key
}

/// A token of the `api_provider` under a header `typ` (none when `None`) with `extra` claims
/// added to (or, as null, removed from) good ones.
pub(crate) fn api_token(key: &TestKey, typ: Option<&str>, extra: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = typ.map(str::to_owned);
    let mut claims = json!({
        "iss": OKTA, "sub": "carol", "aud": "api://gatehouse", "iat": now(),
        "exp": now() + 300, "scp": ["useraccount"], "cid": "okta-app", "jti": uuid_like(),
    });
    for (name, value) in extra.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

/// `GET /api/admin/v1/whoami` with `token`: the status and the JSON body.
async fn whoami(server: &TestServer, token: &str) -> (u16, Value) {
    let response = server
        .http
        .get(server.url("/api/admin/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts that `token` is refused on the APIs with `reason` in the description.
async fn refused(server: &TestServer, case: &str, token: &str, reason: &str) {
    let (status, body) = whoami(server, token).await;
    assert_eq!(status, 401, "{case}: {body}");
    assert_eq!(body["error"], "invalid_token", "{case}: {body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(reason), "{case}: {description}");
}

server_test!(
    only_access_tokens_reach_the_apis_unless_the_provider_opts_in,
    |server| {
        server.user("carol", &["oauth_admin"]).await;
        let token_endpoint = server.url("/oauth/token");
        let key = api_provider(
            &server,
            "okta",
            JwtProviderChanges {
                // An administrator listing the token endpoint as an audience (for assertions)
                // must not make assertions pass as access tokens.
                audiences: Some(vec!["api://gatehouse".into(), token_endpoint.clone()]),
                ..JwtProviderChanges::default()
            },
        )
        .await;
        // Declared access tokens, however the media type is spelt.
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            let (status, body) = whoami(&server, &api_token(&key, Some(typ), json!({}))).await;
            assert_eq!(status, 200, "{typ}: {body}");
            assert_eq!(body["user_name"], "carol");
            assert_eq!(
                body["client_id"], "okta:okta-app",
                "the provider's client_id comes prefixed with its name"
            );
        }
        let plain = [
            ("untyped", api_token(&key, None, json!({}))),
            ("typ JWT", api_token(&key, Some("JWT"), json!({}))),
            (
                "typ application/jwt",
                api_token(&key, Some("application/jwt"), json!({})),
            ),
        ];
        let id_tokens = [
            (
                "nonce",
                api_token(&key, Some("JWT"), json!({"nonce": "n-0S6_WzA2Mj"})),
            ),
            (
                "at_hash",
                api_token(&key, None, json!({"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"})),
            ),
            (
                "auth_time",
                api_token(&key, Some("JWT"), json!({"auth_time": now() - 10})),
            ),
            (
                "aud naming its azp",
                api_token(
                    &key,
                    None,
                    json!({"aud": ["api://gatehouse", "web-app"], "azp": "web-app"}),
                ),
            ),
        ];
        let assertions = [
            (
                "assertion for the token endpoint",
                api_token(&key, None, json!({"aud": token_endpoint})),
            ),
            (
                "assertion typed as an access token",
                api_token(
                    &key,
                    Some("at+jwt"),
                    json!({"aud": [token_endpoint, "api://gatehouse"]}),
                ),
            ),
            (
                "assertion for the other token endpoint path, among good audiences",
                api_token(
                    &key,
                    None,
                    json!({"aud": ["api://gatehouse", server.url("/oauth_token.do")]}),
                ),
            ),
        ];
        for (case, token) in &plain {
            refused(&server, case, token, "does not accept plain JWTs").await;
        }
        for (case, token) in &id_tokens {
            refused(&server, case, token, "it is an ID token").await;
        }
        refused(
            &server,
            "other typ",
            &api_token(&key, Some("logout+jwt"), json!({})),
            "its typ is not that of a token of this kind",
        )
        .await;
        // The token endpoint only accepts assertions that name it; audiences are checked too.
        let (status, _) = whoami(
            &server,
            &api_token(&key, Some("at+jwt"), json!({"aud": token_endpoint})),
        )
        .await;
        assert_eq!(status, 401);

        // Opting in to plain JWTs admits them, and nothing else.
        let admin = server.token_for_role("admin").await;
        let patch = |body: Value| {
            let request = server
                .http
                .patch(server.url("/api/admin/v1/jwt-providers/okta"))
                .bearer_auth(&admin)
                .json(&body)
                .send();
            async move {
                let response = request.await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()
            }
        };
        let view = patch(json!({"accept_plain_jwt": true})).await;
        assert_eq!(view["accept_plain_jwt"], true);
        assert_eq!(view["accept_id_tokens"], false);
        for (case, token) in &plain {
            assert_eq!(whoami(&server, token).await.0, 200, "{case}");
        }
        for (case, token) in &id_tokens {
            refused(&server, case, token, "it is an ID token").await;
        }
        // ID tokens only by name.
        patch(json!({"accept_plain_jwt": false, "accept_id_tokens": true})).await;
        for (case, token) in &id_tokens {
            let (status, body) = whoami(&server, token).await;
            assert_eq!(status, 200, "{case}: {body}");
        }
        let (_, body) = whoami(&server, &id_tokens[3].1).await;
        assert_eq!(body["client_id"], "okta:web-app");
        for (case, token) in &plain {
            refused(&server, case, token, "does not accept plain JWTs").await;
        }
        // Assertions never.
        patch(json!({"accept_plain_jwt": true})).await;
        for (case, token) in &assertions {
            refused(
                &server,
                case,
                token,
                "an assertion for this server's token endpoint",
            )
            .await;
        }
        // A provider token without a client names only the provider.
        let (_, body) = whoami(
            &server,
            &api_token(&key, Some("at+jwt"), json!({"cid": null})),
        )
        .await;
        assert_eq!(body["client_id"], "okta");
    }
);

server_test!(numeric_claims_must_be_integers, |server| {
    server.user("carol", &["oauth_admin"]).await;
    let key = api_provider(&server, "okta", JwtProviderChanges::default()).await;
    let exp = now() + 300;
    for (claim, value) in [
        ("exp", json!(exp as f64 + 0.5)),
        ("exp", json!(format!("{exp}"))),
        ("exp", json!(exp as f64)),
        ("nbf", json!((now() - 10) as f64 + 0.25)),
        ("iat", json!(format!("{}", now()))),
        ("iat", json!([now()])),
    ] {
        let token = api_token(&key, Some("at+jwt"), json!({ claim: value }));
        refused(
            &server,
            &format!("{claim} = {value}"),
            &token,
            &format!("claim {claim} is not an integer"),
        )
        .await;
    }
    // The same rule for the JWT bearer grant's assertions.
    let rsa = TestKey::rsa("r1");
    let idp = Idp::start(&[&rsa]);
    let app = bearer_app(&server).await;
    provider(
        &server,
        &idp,
        "corporate",
        JwtProviderChanges {
            allowed_clients: Some(vec![app.client_id.clone()]),
            ..JwtProviderChanges::default()
        },
    )
    .await;
    let mut claims = assertion_claims(&idp, &server, "carol");
    claims["exp"] = json!((now() + 60) as f64 + 0.5);
    let (status, body) = exchange(&server, &app, &rsa.sign(&claims)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("claim exp is not an integer")
    );
});

server_test!(
    email_mapping_needs_a_verified_email_held_by_one_user,
    |server| {
        let registry = &server.services.registry;
        for (name, email) in [
            ("erin", "erin@corp.example"),
            ("frank", "frank@corp.example"),
        ] {
            server.user(name, &["oauth_admin"]).await;
            registry
                .update_user(
                    name,
                    UserChanges {
                        email: Some(email.into()),
                        ..UserChanges::default()
                    },
                )
                .await
                .unwrap();
        }
        let key = api_provider(
            &server,
            "entra",
            JwtProviderChanges {
                user_claim: Some("email".into()),
                user_field: Some(gatehouse_core::federation::UserField::Email),
                ..JwtProviderChanges::default()
            },
        )
        .await;
        let token = |extra: Value| api_token(&key, Some("at+jwt"), extra);
        let (status, body) = whoami(
            &server,
            &token(json!({"email": "erin@corp.example", "email_verified": true})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user_name"], "erin");
        for (case, extra) in [
            (
                "unverified",
                json!({"email": "erin@corp.example", "email_verified": false}),
            ),
            ("no email_verified", json!({"email": "erin@corp.example"})),
            (
                "verified as text",
                json!({"email": "erin@corp.example", "email_verified": "true"}),
            ),
            (
                "verified as 1",
                json!({"email": "erin@corp.example", "email_verified": 1}),
            ),
        ] {
            refused(&server, case, &token(extra), "email_verified is not true").await;
        }
        refused(
            &server,
            "nobody's email",
            &token(json!({"email": "mallory@corp.example", "email_verified": true})),
            "does not name an active user",
        )
        .await;

        // A second user with a taken email is a conflict, through every way of making one.
        let admin = server.token_for_role("admin").await;
        let response = server
            .http
            .post(server.url("/api/admin/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"user_name": "erin2", "email": "erin@corp.example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "conflict");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("\"erin\" already has the email"),
            "{body}"
        );
        let response = server
            .http
            .patch(server.url("/api/admin/v1/users/frank"))
            .bearer_auth(&admin)
            .json(&json!({"email": "erin@corp.example"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 409);
        let output = crate::cli::gatehouse(
            &server,
            &["user", "create", "erin3", "--email", "erin@corp.example"],
            &[],
        )
        .await;
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("already has the email"));
        // A user keeps their own email when saved again, and frank still maps to frank.
        registry
            .update_user(
                "erin",
                UserChanges {
                    email: Some("erin@corp.example".into()),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap();
        let (_, body) = whoami(
            &server,
            &token(json!({"email": "frank@corp.example", "email_verified": true})),
        )
        .await;
        assert_eq!(body["user_name"], "frank");
    }
);

server_test!(
    keys_that_fail_to_refresh_serve_only_for_their_stale_lifetime,
    |server| {
        let rsa = TestKey::rsa("r1");
        let app = bearer_app(&server).await;
        server.user("alice", &[]).await;
        // Two providers whose keys expire after a second: one keeps them an hour past that
        // when refreshing fails (the default), one not at all.
        let patient = Idp::start(&[&rsa]);
        let strict = Idp::start(&[&rsa]);
        for (idp, name, lifetime) in [(&patient, "patient", None), (&strict, "strict", Some(0))] {
            idp.set("cache_control", "max-age=1");
            provider(
                &server,
                idp,
                name,
                JwtProviderChanges {
                    key_source: Some(KeySource::JwksUrl(format!("{}/jwks", idp.base))),
                    allowed_clients: Some(vec![app.client_id.clone()]),
                    stale_keys_lifetime: lifetime,
                    ..JwtProviderChanges::default()
                },
            )
            .await;
            assert_eq!(
                exchange(&server, &app, &sign_for(&rsa, idp, &server))
                    .await
                    .0,
                200,
                "{name}"
            );
        }
        assert_eq!(
            server
                .services
                .registry
                .get_jwt_provider("patient")
                .await
                .unwrap()
                .stale_keys_lifetime,
            3600
        );
        patient.set("mode", "error");
        strict.set("mode", "error");
        // Past the keys' max-age, so the next use tries a refresh, which fails.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(
            exchange(&server, &app, &sign_for(&rsa, &patient, &server))
                .await
                .0,
            200
        );
        let (status, body) = exchange(&server, &app, &sign_for(&rsa, &strict, &server)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains("stale_keys_lifetime"), "{description}");
        // Asked again at once (no new fetch may run yet): still refused, from the cache.
        let (status, _) = exchange(&server, &app, &sign_for(&rsa, &strict, &server)).await;
        assert_eq!(status, 400);
        // The limit is validated.
        let refused = server
            .services
            .registry
            .update_jwt_provider(
                "strict",
                JwtProviderChanges {
                    stale_keys_lifetime: Some(-1),
                    ..JwtProviderChanges::default()
                },
            )
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("stale_keys_lifetime"));
    }
);

server_test!(
    provider_tokens_stand_for_administrators_only_when_admin_says_so,
    |server| {
        server.user("boss", &["admin"]).await;
        server.user("keeper", &["mi_admin"]).await;
        server.user("ivy", &["itil"]).await;
        let app = bearer_app(&server).await;
        let key = api_provider(
            &server,
            "okta",
            JwtProviderChanges {
                allowed_clients: Some(vec![app.client_id.clone()]),
                map_registry_roles: Some(false),
                ..JwtProviderChanges::default()
            },
        )
        .await;
        let api_token_of = |sub: &str| api_token(&key, Some("at+jwt"), json!({ "sub": sub }));
        let assertion_of = |sub: &str| {
            key.sign(&json!({
                "iss": OKTA, "sub": sub, "aud": server.url("/oauth/token"),
                "iat": now(), "exp": now() + 120, "jti": uuid_like(),
            }))
        };
        let reaches = |sub: &'static str| {
            let (api, assertion) = (api_token_of(sub), assertion_of(sub));
            let (server, app) = (&server, &app);
            async move {
                let (api_status, api_body) = whoami(server, &api).await;
                let (grant_status, grant_body) = exchange(server, app, &assertion).await;
                match (api_status, grant_status) {
                    (200, 200) => true,
                    (401, 400) => {
                        assert_eq!(grant_body["error"], "invalid_grant", "{grant_body}");
                        false
                    }
                    other => panic!("{sub}: {other:?} {api_body} {grant_body}"),
                }
            }
        };
        // Off: the provider's tokens and assertions stand for people without a registry role
        // only, so whoever controls its keys cannot act as an administrator.
        assert!(reaches("ivy").await);
        assert!(!reaches("boss").await, "an admin through the provider");
        assert!(!reaches("keeper").await, "an mi_admin through the provider");

        let call = |token: String, method: reqwest::Method, path: &str, body: Value| {
            let request = server
                .http
                .request(
                    method,
                    server.url(&format!("/api/admin/v1/jwt-providers{path}")),
                )
                .bearer_auth(token)
                .json(&body);
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let oauth_admin = server.token_for_role("oauth_admin").await;
        let admin = server.token_for_role("admin").await;
        // An oauth_admin manages providers, but cannot let one map administrators: not when
        // creating it, not by turning the switch on.
        let (status, body) = call(
            oauth_admin.clone(),
            reqwest::Method::POST,
            "",
            json!({"name": "corp", "issuer": "https://corp.example", "static_key": key.jwk.to_string(),
                   "map_registry_roles": true}),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("access_denied")),
            "{body}"
        );
        let (status, body) = call(
            oauth_admin.clone(),
            reqwest::Method::PATCH,
            "/okta",
            json!({"map_registry_roles": true}),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(!reaches("boss").await);
        // admin can; then the provider speaks for administrators.
        let (status, body) = call(
            admin.clone(),
            reqwest::Method::PATCH,
            "/okta",
            json!({"map_registry_roles": true}),
        )
        .await;
        assert_eq!(
            (status, &body["map_registry_roles"]),
            (200, &json!(true)),
            "{body}"
        );
        assert!(reaches("boss").await);
        assert!(reaches("keeper").await);
        // Such a provider is admin's to change: an oauth_admin pointing it elsewhere would
        // choose who acts as an administrator.
        for change in [
            json!({"max_age": 60}),
            json!({"issuer": "https://attacker.example"}),
            json!({"user_claim": "email"}),
        ] {
            let (status, body) = call(
                oauth_admin.clone(),
                reqwest::Method::PATCH,
                "/okta",
                change.clone(),
            )
            .await;
            assert_eq!(status, 403, "{change}: {body}");
        }
        assert!(reaches("boss").await, "the refused changes changed nothing");
        // Taking the power away is anyone's who manages providers.
        let (status, body) = call(
            oauth_admin,
            reqwest::Method::PATCH,
            "/okta",
            json!({"map_registry_roles": false}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(!reaches("boss").await);
        assert!(reaches("ivy").await);
    }
);
