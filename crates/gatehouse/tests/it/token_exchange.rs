//! Token exchange (RFC 8693): a service trades a token it received for one addressed to the
//! service it calls next — for the same user (impersonation) or naming itself as the actor
//! (delegation, `act`) —, from Gatehouse's own tokens and a trusted provider's; and every rule
//! that keeps an exchange from widening anything. The requests are plain form posts: the
//! `oauth2` crate has no token exchange.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_core::client::{ClientType, GrantType, TokenFormat};
use gatehouse_core::federation::JwtProviderChanges;
use gatehouse_core::registry::{AppChanges, NewApp};
use gatehouse_core::store::AuditQuery;
use serde_json::{Value, json};

use crate::harness::{TestApp, TestServer, introspect, post_form, server_test};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ORDERS: &str = "https://orders.example/api";
const INVENTORY: &str = "https://inventory.example/api";
const BILLING: &str = "https://billing.example/api";
const PASSWORD: &str = "a long enough password";

/// The services of a shop: a front end people sign in to, and three APIs. Orders and inventory
/// call onwards, so they may exchange tokens: orders for inventory, inventory for billing.
struct Shop {
    front: TestApp,
    orders: TestApp,
    inventory: TestApp,
    billing: TestApp,
}

async fn shop(server: &TestServer, format: TokenFormat) -> Shop {
    server.user("dana", &[]).await;
    let front = server
        .app_with(AppChanges {
            name: Some("front end".into()),
            grant_types: Some(vec![GrantType::Password]),
            allowed_scopes: Some(vec!["orders".into(), "inventory".into(), "reports".into()]),
            token_format: Some(format),
            ..AppChanges::default()
        })
        .await;
    let service = |name: &str, audience: &str, scopes: &[&str], onwards: &[&str]| AppChanges {
        name: Some(name.into()),
        grant_types: Some(vec![GrantType::ClientCredentials, GrantType::TokenExchange]),
        allowed_scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        audiences: Some(vec![audience.into()]),
        exchange_audiences: Some(onwards.iter().map(|s| s.to_string()).collect()),
        token_format: Some(format),
        ..AppChanges::default()
    };
    let orders = server
        .app_with(service(
            "orders",
            ORDERS,
            &["orders", "inventory"],
            &[INVENTORY],
        ))
        .await;
    let inventory = server
        .app_with(service("inventory", INVENTORY, &["inventory"], &[BILLING]))
        .await;
    let billing = server
        .app_with(service("billing", BILLING, &["inventory"], &[]))
        .await;
    Shop {
        front,
        orders,
        inventory,
        billing,
    }
}

async fn token_request(server: &TestServer, app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        form,
    )
    .await;
    (status, body)
}

/// Dana's token from the front end, for the orders API.
async fn dana_for_orders(server: &TestServer, shop: &Shop) -> String {
    let (status, body) = token_request(
        server,
        &shop.front,
        &[
            ("grant_type", "password"),
            ("username", "dana"),
            ("password", PASSWORD),
            ("scope", "orders inventory reports"),
            ("resource", ORDERS),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// An exchange of `subject` (a Gatehouse access token) by `app`, with `extra` parameters.
async fn exchange(
    server: &TestServer,
    app: &TestApp,
    subject: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", GRANT),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    form.extend_from_slice(extra);
    token_request(server, app, &form).await
}

async fn exchanged(
    server: &TestServer,
    app: &TestApp,
    subject: &str,
    extra: &[(&str, &str)],
) -> Value {
    let (status, body) = exchange(server, app, subject, extra).await;
    assert_eq!(status, 200, "{extra:?}: {body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");
    body
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn user_id(server: &TestServer, user_name: &str) -> String {
    server
        .services
        .registry
        .get_user(user_name)
        .await
        .unwrap()
        .id
}

fn refused(case: &str, (status, body): (u16, Value), error: &str) {
    assert_eq!(status, 400, "{case}: {body}");
    assert_eq!(body["error"], error, "{case}: {body}");
}

/// Impersonation, delegation and a chain of delegations, with `format` tokens throughout.
async fn services_exchange_a_users_token_onwards(server: &TestServer, format: TokenFormat) {
    let shop = shop(server, format).await;
    let dana = user_id(server, "dana").await;
    let subject = dana_for_orders(server, &shop).await;

    // Impersonation: the same user, now for inventory and only its scope.
    let body = exchanged(
        server,
        &shop.orders,
        &subject,
        &[("audience", INVENTORY), ("scope", "inventory")],
    )
    .await;
    assert_eq!(body["scope"], "inventory");
    let token = body["access_token"].as_str().unwrap();
    let seen = introspect(server, &shop.inventory, token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["sub"], dana.as_str());
    assert_eq!(seen["username"], "dana");
    assert_eq!(seen["client_id"], shop.orders.client_id.as_str());
    assert_eq!(seen["aud"], INVENTORY);
    assert!(seen.get("act").is_none(), "{seen}");
    // It lives no longer than the token it was made from.
    let subject_exp = introspect(server, &shop.front, &subject).await["exp"].as_i64();
    assert!(
        seen["exp"].as_i64().unwrap() <= subject_exp.unwrap(),
        "{seen}"
    );
    // Billing learns nothing about it: it is for inventory alone.
    assert_eq!(
        introspect(server, &shop.billing, token).await,
        json!({"active": false})
    );

    // Without a target or scope, the subject token's audience is kept, and its scope within
    // what the client may have.
    let body = exchanged(server, &shop.orders, &subject, &[]).await;
    let seen = introspect(server, &shop.orders, body["access_token"].as_str().unwrap()).await;
    assert_eq!(seen["aud"], ORDERS, "{seen}");
    assert_eq!(seen["scope"], "inventory orders");

    // Delegation: orders acts for dana, and says so.
    let actor = server.token(&shop.orders, Some("inventory")).await;
    let body = exchanged(
        server,
        &shop.orders,
        &subject,
        &[
            ("resource", INVENTORY),
            ("actor_token", &actor),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    let delegated = body["access_token"].as_str().unwrap().to_owned();
    let act = json!({"sub": shop.orders.client_id});
    if format == TokenFormat::Jwt {
        let claims = jwt_claims(&delegated);
        assert_eq!(claims["sub"], dana.as_str());
        assert_eq!(claims["act"], act, "{claims}");
        assert_eq!(claims["aud"], INVENTORY);
    }
    let seen = introspect(server, &shop.inventory, &delegated).await;
    assert_eq!(seen["act"], act, "{seen}");
    assert_eq!(seen["sub"], dana.as_str());

    // Inventory calls billing on: the chain nests, the latest actor outermost.
    let actor = server.token(&shop.inventory, None).await;
    let body = exchanged(
        server,
        &shop.inventory,
        &delegated,
        &[
            ("audience", BILLING),
            ("actor_token", &actor),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    let seen = introspect(
        server,
        &shop.billing,
        body["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        seen["act"],
        json!({"sub": shop.inventory.client_id, "act": {"sub": shop.orders.client_id}}),
        "{seen}"
    );
    assert_eq!(seen["sub"], dana.as_str());
    assert_eq!(seen["scope"], "inventory");

    // An impersonating exchange of a delegated token keeps who acted.
    let body = exchanged(server, &shop.inventory, &delegated, &[]).await;
    let seen = introspect(
        server,
        &shop.inventory,
        body["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(seen["act"], act, "{seen}");

    // Each exchange is in the audit trail, naming the subject and the actor.
    let events = server
        .services
        .registry
        .audit_events(AuditQuery {
            kind: Some("token.exchanged".into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    let delegation = events
        .iter()
        .map(|e| (e, serde_json::from_str::<Value>(&e.details).unwrap()))
        .find(|(_, details)| details["actor"] == shop.inventory.client_id.as_str())
        .expect("the delegation to billing is recorded");
    assert_eq!(delegation.0.subject, dana);
    assert_eq!(
        delegation.0.client_id.as_deref(),
        Some(shop.inventory.client_id.as_str())
    );
    assert_eq!(delegation.1["audience"], json!([BILLING]));
}

server_test!(jwt_tokens_are_exchanged_onwards, |server| {
    services_exchange_a_users_token_onwards(&server, TokenFormat::Jwt).await;
});

server_test!(opaque_tokens_are_exchanged_onwards, |server| {
    services_exchange_a_users_token_onwards(&server, TokenFormat::Opaque).await;
});

server_test!(every_rule_of_an_exchange_is_enforced, |server| {
    let shop = shop(&server, TokenFormat::Jwt).await;
    let subject = dana_for_orders(&server, &shop).await;
    let orders = &shop.orders;

    refused(
        "an audience the client may not exchange for",
        exchange(&server, orders, &subject, &[("audience", BILLING)]).await,
        "invalid_target",
    );
    server
        .update_app(
            &orders.client_id,
            AppChanges {
                exchange_audiences: Some(vec![INVENTORY.into(), "https://unknown.example".into()]),
                ..AppChanges::default()
            },
        )
        .await;
    refused(
        "an audience nobody registered",
        exchange(
            &server,
            orders,
            &subject,
            &[("resource", "https://unknown.example")],
        )
        .await,
        "invalid_target",
    );
    refused(
        "a scope beyond the subject token's",
        exchange(&server, orders, &subject, &[("scope", "inventory admin")]).await,
        "invalid_scope",
    );
    refused(
        "a scope beyond the client's",
        exchange(&server, orders, &subject, &[("scope", "orders reports")]).await,
        "invalid_scope",
    );
    refused(
        "no subject_token_type",
        token_request(
            &server,
            orders,
            &[("grant_type", GRANT), ("subject_token", &subject)],
        )
        .await,
        "invalid_request",
    );
    refused(
        "an unsupported subject_token_type",
        token_request(
            &server,
            orders,
            &[
                ("grant_type", GRANT),
                ("subject_token", &subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                ),
            ],
        )
        .await,
        "invalid_request",
    );
    refused(
        "a refresh token requested",
        exchange(
            &server,
            orders,
            &subject,
            &[(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            )],
        )
        .await,
        "invalid_request",
    );
    refused(
        "garbage as the subject token",
        exchange(&server, orders, "gh_at_nothing", &[]).await,
        "invalid_request",
    );

    // A token the client does not hold: neither issued to it nor for its audience.
    let (status, body) = token_request(
        &server,
        &shop.front,
        &[
            ("grant_type", "password"),
            ("username", "dana"),
            ("password", PASSWORD),
            ("scope", "inventory"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let foreign = body["access_token"].as_str().unwrap().to_owned();
    refused(
        "a token for another audience",
        exchange(&server, orders, &foreign, &[]).await,
        "invalid_request",
    );
    // Another client's own token (no user) cannot be exchanged either.
    let service_token = server.token(&shop.inventory, None).await;
    refused(
        "another client's own token",
        exchange(&server, orders, &service_token, &[]).await,
        "invalid_request",
    );

    // The actor must be the client itself, and named with its type.
    refused(
        "another client's actor token",
        exchange(
            &server,
            orders,
            &subject,
            &[
                ("actor_token", &service_token),
                ("actor_token_type", ACCESS_TOKEN),
            ],
        )
        .await,
        "invalid_request",
    );
    let own = server.token(orders, None).await;
    refused(
        "an actor token without its type",
        exchange(&server, orders, &subject, &[("actor_token", &own)]).await,
        "invalid_request",
    );
    refused(
        "an actor token type without a token",
        exchange(
            &server,
            orders,
            &subject,
            &[("actor_token_type", ACCESS_TOKEN)],
        )
        .await,
        "invalid_request",
    );

    // Only applications given the grant may exchange.
    let (status, body) = exchange(&server, &shop.front, &subject, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    let public = server
        .services
        .registry
        .create_app(
            NewApp {
                fields: AppChanges {
                    name: Some("spa".into()),
                    client_type: Some(ClientType::Public),
                    grant_types: Some(vec![GrantType::TokenExchange]),
                    ..AppChanges::default()
                },
                ..NewApp::default()
            },
            false,
        )
        .await;
    assert!(public.is_err(), "a public client cannot exchange tokens");

    // A revoked subject token, then an expired one.
    let revoked = dana_for_orders(&server, &shop).await;
    let (status, _, body) = post_form(
        &server,
        "/oauth/revoke",
        Some((&shop.front.client_id, &shop.front.secret)),
        &[("token", &revoked)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    refused(
        "a revoked subject token",
        exchange(&server, orders, &revoked, &[]).await,
        "invalid_request",
    );
    server
        .update_app(
            &shop.front.client_id,
            AppChanges {
                access_token_lifespan: Some(1),
                ..AppChanges::default()
            },
        )
        .await;
    let expiring = dana_for_orders(&server, &shop).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused(
        "an expired subject token",
        exchange(&server, orders, &expiring, &[]).await,
        "invalid_request",
    );
});

server_test!(a_trusted_providers_token_can_be_the_subject, |server| {
    use crate::federation::{api_provider, api_token};

    let shop = shop(&server, TokenFormat::Jwt).await;
    server.user("carol", &[]).await;
    let carol = user_id(&server, "carol").await;
    let key = api_provider(
        &server,
        "okta",
        JwtProviderChanges {
            allowed_clients: Some(vec![shop.orders.client_id.clone()]),
            api_scopes: Some(vec!["inventory".into(), "orders".into()]),
            ..JwtProviderChanges::default()
        },
    )
    .await;
    let token = api_token(&key, Some("at+jwt"), json!({"scp": ["inventory", "admin"]}));
    let form = |token_type| {
        vec![
            ("grant_type", GRANT),
            ("subject_token", token.as_str()),
            ("subject_token_type", token_type),
            ("audience", INVENTORY),
        ]
    };
    let (status, body) = token_request(&server, &shop.orders, &form(JWT)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], carol.as_str());
    assert_eq!(claims["aud"], INVENTORY);
    assert_eq!(claims["client_id"], shop.orders.client_id.as_str());
    // Only what the provider may grant on the APIs comes through.
    assert_eq!(claims["scope"], "inventory");
    assert!(claims["exp"].as_i64().unwrap() <= crate::federation::now() + 300);

    // It is no Gatehouse access token; and only applications the provider allows present it.
    refused(
        "a provider's token typed as an access token",
        token_request(&server, &shop.orders, &form(ACCESS_TOKEN)).await,
        "invalid_request",
    );
    refused(
        "a client the provider does not allow",
        token_request(&server, &shop.inventory, &form(JWT)).await,
        "invalid_request",
    );
    let untrusted = api_token(
        &key,
        Some("at+jwt"),
        json!({"iss": "https://elsewhere.example"}),
    );
    refused(
        "a JWT of no trusted provider",
        token_request(
            &server,
            &shop.orders,
            &[
                ("grant_type", GRANT),
                ("subject_token", &untrusted),
                ("subject_token_type", JWT),
            ],
        )
        .await,
        "invalid_request",
    );
});

server_test!(
    a_gateway_route_sends_its_upstream_an_exchanged_token,
    |server| {
        use gatehouse_core::access::ScopeRule;
        use gatehouse_core::gateway::Route;

        use crate::gateway::start_upstream;

        let shop = shop(&server, TokenFormat::Opaque).await;
        let dana = user_id(&server, "dana").await;
        let gateway = server
            .app_with(AppChanges {
                name: Some("gateway".into()),
                grant_types: Some(vec![GrantType::TokenExchange]),
                allowed_scopes: Some(vec!["inventory".into(), "reports".into()]),
                exchange_audiences: Some(vec![INVENTORY.into()]),
                ..AppChanges::default()
            })
            .await;
        let upstream = start_upstream().await;
        let registry = &server.services.registry;
        registry
            .create_entry::<ScopeRule>(
                json!({"name": "inventory", "path": "/api/x/inventory/**",
                    "scopes": ["inventory"]}),
                false,
            )
            .await
            .unwrap();
        registry
            .create_entry::<Route>(
                json!({"name": "inventory", "prefix": "/api/x/inventory",
                    "upstream": format!("http://{}/v1", upstream.address),
                    "exchange": {"client_id": gateway.client_id, "audience": INVENTORY,
                        "scope": "inventory"}}),
                false,
            )
            .await
            .unwrap();
        // Dana's token for Gatehouse, as the front end holds it.
        let (status, body) = token_request(
            &server,
            &shop.front,
            &[
                ("grant_type", "password"),
                ("username", "dana"),
                ("password", PASSWORD),
                ("scope", "orders inventory"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let caller = body["access_token"].as_str().unwrap().to_owned();
        let get = |token: String| {
            let server = &server;
            async move {
                let response = server
                    .http
                    .get(server.url("/api/x/inventory/items/7"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };

        let (status, echoed) = get(caller.clone()).await;
        assert_eq!(status, 200, "{echoed}");
        assert_eq!(echoed["path"], "/v1/items/7");
        let sent = echoed["authorization"].as_str().unwrap();
        let exchanged = sent.strip_prefix("Bearer ").unwrap().to_owned();
        assert_ne!(
            exchanged, caller,
            "the caller's own token never reaches the upstream"
        );
        assert_eq!(echoed["user"], Value::Null, "no identity headers: {echoed}");
        assert_eq!(echoed["client_id"], Value::Null);
        // The upstream's own application finds it addressed to it, for dana, from the gateway.
        let seen = introspect(&server, &shop.inventory, &exchanged).await;
        assert_eq!(seen["active"], true, "{seen}");
        assert_eq!(seen["sub"], dana.as_str());
        assert_eq!(seen["aud"], INVENTORY);
        assert_eq!(seen["client_id"], gateway.client_id.as_str());
        assert_eq!(seen["scope"], "inventory");

        // The next request of the same caller reuses it: one exchange, one audit event.
        let (status, echoed) = get(caller.clone()).await;
        assert_eq!(status, 200, "{echoed}");
        assert_eq!(echoed["authorization"], sent);
        let exchanges = |events: Vec<gatehouse_core::store::AuditRecord>| {
            events
                .iter()
                .filter(|e| e.client_id.as_deref() == Some(gateway.client_id.as_str()))
                .count()
        };
        let query = AuditQuery {
            kind: Some("token.exchanged".into()),
            limit: 100,
            ..AuditQuery::default()
        };
        assert_eq!(
            exchanges(registry.audit_events(query.clone()).await.unwrap()),
            1
        );

        // Once the caller's token is revoked, nothing goes upstream, kept token or not.
        let reached = upstream.received().len();
        let (status, _, _) = post_form(
            &server,
            "/oauth/revoke",
            Some((&shop.front.client_id, &shop.front.secret)),
            &[("token", &caller)],
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = get(caller.clone()).await;
        assert_eq!(status, 401, "{body}");

        // A token that acts for no user cannot be exchanged for one: 403.
        let service = server.token(&shop.billing, Some("inventory")).await;
        let (status, body) = get(service).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("access_denied")),
            "{body}"
        );

        // A route asking more scope than the caller's token has: 403 insufficient_scope.
        let (_, body) = token_request(
            &server,
            &shop.front,
            &[
                ("grant_type", "password"),
                ("username", "dana"),
                ("password", PASSWORD),
                ("scope", "inventory"),
            ],
        )
        .await;
        let caller = body["access_token"].as_str().unwrap().to_owned();
        let update = |exchange: Value| async move {
            let mut fields = serde_json::Map::new();
            fields.insert("exchange".into(), exchange);
            registry
                .update_entry::<Route>("inventory", fields)
                .await
                .unwrap();
        };
        update(
            json!({"client_id": gateway.client_id, "audience": INVENTORY,
            "scope": "inventory reports"}),
        )
        .await;
        let (status, body) = get(caller.clone()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("insufficient_scope")),
            "{body}"
        );

        // An application that may not exchange makes the route fail as a bad gateway.
        update(json!({"client_id": gateway.client_id, "audience": INVENTORY})).await;
        let (status, _) = get(caller.clone()).await;
        assert_eq!(status, 200);
        server
            .update_app(
                &gateway.client_id,
                AppChanges {
                    grant_types: Some(vec![]),
                    ..AppChanges::default()
                },
            )
            .await;
        let (status, body) = get(caller.clone()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (502, Some("upstream_error")),
            "{body}"
        );
        assert_eq!(upstream.received().len(), reached + 1);
    }
);

server_test!(the_cli_sets_up_exchanges, |server| {
    use crate::cli::gatehouse;

    let json = |output: std::process::Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let app = json(
        gatehouse(
            &server,
            &[
                "app",
                "create",
                "--name",
                "gateway",
                "--grant",
                "token_exchange",
                "--exchange-audience",
                INVENTORY,
                "--json",
            ],
            &[],
        )
        .await,
    );
    assert_eq!(app["grant_types"], json!(["token_exchange"]), "{app}");
    assert_eq!(app["exchange_audiences"], json!([INVENTORY]), "{app}");
    let client_id = app["client_id"].as_str().unwrap();
    let route = json(
        gatehouse(
            &server,
            &[
                "route",
                "create",
                "inventory",
                "--prefix",
                "/api/x/inventory",
                "--upstream",
                "http://127.0.0.1:9000",
                "--exchange-as",
                client_id,
                "--exchange-audience",
                INVENTORY,
                "--json",
            ],
            &[],
        )
        .await,
    );
    assert_eq!(
        route["exchange"],
        json!({"client_id": client_id, "audience": INVENTORY}),
        "{route}"
    );
    let route = json(
        gatehouse(
            &server,
            &[
                "route",
                "update",
                "inventory",
                "--exchange-as",
                "",
                "--json",
            ],
            &[],
        )
        .await,
    );
    assert!(route.get("exchange").is_none(), "{route}");
    let refused = gatehouse(
        &server,
        &[
            "app",
            "create",
            "--name",
            "spa",
            "--type",
            "public",
            "--grant",
            "token_exchange",
        ],
        &[],
    )
    .await;
    assert!(!refused.status.success());
});
