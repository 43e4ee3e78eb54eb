//! Discovery, health, metrics and shutdown.

use gatehouse_core::client::TokenFormat;
use serde_json::Value;

use crate::harness::server_test;

server_test!(discovery_documents_describe_what_is_served, |server| {
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let document: Value = server
            .http
            .get(server.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(document["issuer"], server.base.as_str());
        assert_eq!(document["token_endpoint"], server.url("/oauth/token"));
        assert_eq!(
            document["grant_types_supported"],
            serde_json::json!([
                "authorization_code",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "password",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "implicit"
            ])
        );
        assert_eq!(
            document["authorization_response_iss_parameter_supported"],
            true
        );
        // Every advertised endpoint answers.
        for endpoint in [
            "jwks_uri",
            "introspection_endpoint",
            "revocation_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "authorization_endpoint",
            "end_session_endpoint",
            "pushed_authorization_request_endpoint",
            "device_authorization_endpoint",
        ] {
            let url = document[endpoint].as_str().unwrap();
            let status = server
                .http
                .post(url)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert_ne!(status, 404, "{endpoint}");
        }
    }
});

server_test!(health_readiness_and_metrics, |server| {
    assert_eq!(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        server
            .http
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let app = server.app(TokenFormat::Jwt, &[], None).await;
    server.token(&app, None).await;
    crate::harness::post_form(
        &server,
        "/oauth/token",
        Some((&app.client_id, "bad")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    // A client may send any token as a method: each one is not a metric series of its own.
    for invented in ["BREW", "PROPFIND", "XYZZY"] {
        let method = reqwest::Method::from_bytes(invented.as_bytes()).unwrap();
        let response = server
            .http
            .request(method, server.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "gatehouse_token_requests_total{grant_type=\"client_credentials\",outcome=\"issued\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("gatehouse_token_requests_total{grant_type=\"client_credentials\",outcome=\"invalid_client\"} 1"));
    assert!(metrics.contains("gatehouse_http_request_duration_seconds_bucket{"));
    assert!(metrics.contains("route=\"/oauth/token\""));
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(!metrics.contains("BREW"), "{metrics}");
    let response = server
        .http
        .get(server.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
});

server_test!(graceful_shutdown_finishes_cleanly, |server| {
    let base = server.base.clone();
    server.stop().await.expect("the server stops without error");
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
});
