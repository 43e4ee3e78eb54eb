//! A person's credentials: a new password, a lock or a deactivation ends every session and token
//! the old credentials started, for good; and the declarative file never undoes such a change
//! made since it was last applied.

use gatehouse_core::client::{GrantType, TokenFormat};
use gatehouse_core::manifest::{ApplyOptions, Manifest};
use gatehouse_core::registry::AppChanges;
use reqwest::Method;
use serde_json::{Value, json};

use crate::admin_api::call;
use crate::harness::{TestApp, TestServer, post_form, server_test};
use crate::people::{Browser, PASSWORD, authorize_url};

const NEW_PASSWORD: &str = "a brand new password";

/// An application for people whose tokens come in `format`.
async fn people_app(server: &TestServer, format: TokenFormat) -> TestApp {
    server
        .app_with(AppChanges {
            name: Some(format!("{format:?} app")),
            grant_types: Some(vec![
                GrantType::AuthorizationCode,
                GrantType::Password,
                GrantType::RefreshToken,
            ]),
            redirect_uris: Some(vec!["https://app.example/cb".into()]),
            allowed_scopes: Some(vec![
                "useraccount".into(),
                "openid".into(),
                "profile".into(),
            ]),
            default_scopes: Some(vec!["useraccount".into()]),
            token_format: Some(format),
            ..AppChanges::default()
        })
        .await
}

async fn password_grant(
    server: &TestServer,
    app: &TestApp,
    user: &str,
    password: &str,
) -> (u16, Value) {
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ],
    )
    .await;
    (status, body)
}

/// Whether a protected API takes the access token; a refused one must be `invalid_token`.
async fn accepted(server: &TestServer, token: &str) -> bool {
    let response = server
        .http
        .get(server.url("/api/admin/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    if response.status() == 200 {
        return true;
    }
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    false
}

async fn introspected_active(server: &TestServer, app: &TestApp, token: &str) -> bool {
    let (_, _, body) = post_form(
        server,
        "/oauth/introspect",
        Some((&app.client_id, &app.secret)),
        &[("token", token)],
    )
    .await;
    body["active"] == true
}

/// Whether a refresh token still works; a refused one must be `invalid_grant`.
async fn refreshes(server: &TestServer, app: &TestApp, token: &str) -> bool {
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    if status == 200 {
        return true;
    }
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    false
}

async fn signed_in(server: &TestServer, browser: &mut Browser) -> bool {
    let page = browser.get(&server.url("/account")).await;
    !page.body.contains("name=\"password\"")
}

/// Everything a person's password started: a browser session, and access and refresh tokens
/// of both formats.
struct Held {
    browser: Browser,
    /// (application, access token, refresh token)
    tokens: Vec<(TestApp, String, String)>,
}

impl Held {
    async fn start(server: &TestServer, apps: &[TestApp], user: &str, password: &str) -> Held {
        let mut browser = Browser::new();
        let login = browser
            .get(&authorize_url(server, &apps[0].client_id, &[]))
            .await;
        let consent = browser.login(server, &login, user, password).await;
        assert_eq!(consent.status, 200, "{}", consent.body);
        let mut tokens = Vec::new();
        for app in apps {
            let (status, body) = password_grant(server, app, user, password).await;
            assert_eq!(status, 200, "{body}");
            tokens.push((
                app.clone(),
                body["access_token"].as_str().unwrap().to_owned(),
                body["refresh_token"].as_str().unwrap().to_owned(),
            ));
        }
        Held { browser, tokens }
    }

    /// Whether each part still works: (session, [(access, introspection)]). Refresh tokens are
    /// checked separately, since using one rotates it.
    async fn state(&mut self, server: &TestServer) -> (bool, Vec<(bool, bool)>) {
        let session = signed_in(server, &mut self.browser).await;
        let mut tokens = Vec::new();
        for (app, access, _) in &self.tokens {
            tokens.push((
                accepted(server, access).await,
                introspected_active(server, app, access).await,
            ));
        }
        (session, tokens)
    }

    async fn all_alive(&mut self, server: &TestServer) -> bool {
        self.state(server).await == (true, vec![(true, true); self.tokens.len()])
    }

    async fn all_ended(&mut self, server: &TestServer) -> bool {
        self.state(server).await == (false, vec![(false, false); self.tokens.len()])
    }
}

server_test!(
    each_credential_change_ends_what_the_old_credentials_started,
    |server| {
        let admin = server.token_for_role("admin").await;
        let apps = [
            people_app(&server, TokenFormat::Jwt).await,
            people_app(&server, TokenFormat::Opaque).await,
        ];
        // (what changes, the change, what lifts it again, the password afterwards)
        let changes: [(&str, Option<Value>, Option<Value>, &str); 3] = [
            ("password", None, None, NEW_PASSWORD),
            (
                "lock",
                Some(json!({"locked_out": true})),
                Some(json!({"locked_out": false})),
                PASSWORD,
            ),
            (
                "deactivation",
                Some(json!({"active": false})),
                Some(json!({"active": true})),
                PASSWORD,
            ),
        ];
        for (what, change, undo, password_after) in changes {
            let (user, bystander) = (format!("person-{what}"), format!("bystander-{what}"));
            server.user(&user, &[]).await;
            server.user(&bystander, &[]).await;
            let mut held = Held::start(&server, &apps, &user, PASSWORD).await;
            let mut other = Held::start(&server, &apps, &bystander, PASSWORD).await;
            assert!(held.all_alive(&server).await, "{what}");

            // A change that leaves the credentials alone ends nothing.
            let (status, _) = call(
                &server,
                Method::PATCH,
                &format!("/users/{user}"),
                &admin,
                Some(json!({"display_name": "Renamed", "email": format!("{user}@example.com")})),
            )
            .await;
            assert_eq!(status, 200);
            assert!(held.all_alive(&server).await, "{what}");

            let (status, body) = match &change {
                None => {
                    call(
                        &server,
                        Method::PUT,
                        &format!("/users/{user}/password"),
                        &admin,
                        Some(json!({"password": NEW_PASSWORD})),
                    )
                    .await
                }
                Some(change) => {
                    call(
                        &server,
                        Method::PATCH,
                        &format!("/users/{user}"),
                        &admin,
                        Some(change.clone()),
                    )
                    .await
                }
            };
            assert!([200, 204].contains(&status), "{what}: {body}");
            assert!(held.all_ended(&server).await, "{what}");
            for (app, _, refresh) in &held.tokens {
                assert!(!refreshes(&server, app, refresh).await, "{what}");
            }
            // Nobody else's.
            assert!(other.all_alive(&server).await, "{what}");
            for (app, _, refresh) in &other.tokens {
                assert!(refreshes(&server, app, refresh).await, "{what}");
            }

            // Lifting a lock or a deactivation does not bring the old ones back.
            if let Some(undo) = undo {
                let (status, _) = call(
                    &server,
                    Method::PATCH,
                    &format!("/users/{user}"),
                    &admin,
                    Some(undo),
                )
                .await;
                assert_eq!(status, 200);
            }
            assert!(held.all_ended(&server).await, "{what}");
            // The old password is refused after a change; new sign-ins work at once.
            if password_after != PASSWORD {
                let (status, _) = password_grant(&server, &apps[0], &user, PASSWORD).await;
                assert_eq!(status, 400, "{what}");
            }
            let mut fresh = Held::start(&server, &apps, &user, password_after).await;
            assert!(fresh.all_alive(&server).await, "{what}");
            for (app, _, refresh) in &fresh.tokens {
                assert!(refreshes(&server, app, refresh).await, "{what}");
            }
        }
    }
);

server_test!(
    an_administrator_changing_their_own_password_signs_themselves_out,
    |server| {
        server.user("self-service", &["oauth_admin"]).await;
        let token = server.token_for_user("self-service").await;
        let (status, _) = call(
            &server,
            Method::PUT,
            "/users/self-service/password",
            &token,
            Some(json!({"password": NEW_PASSWORD})),
        )
        .await;
        assert_eq!(status, 204);
        assert!(!accepted(&server, &token).await);
        let token = server.token_for_user("self-service").await;
        assert!(accepted(&server, &token).await);
    }
);

async fn apply(server: &TestServer, file: &str) -> Vec<Value> {
    let manifest: Manifest = toml::from_str(file).unwrap();
    let changes = manifest
        .apply(
            &server.services.registry,
            server.services.outbound.registry(),
            ApplyOptions::default(),
            &|_| None,
        )
        .await
        .unwrap();
    changes
        .iter()
        .map(|change| serde_json::to_value(change).unwrap())
        .collect()
}

fn registry_file(password: &str, locked_out: bool, secret: &str, active: bool) -> String {
    format!(
        r#"
[[user]]
user_name = "filed"
password = "{password}"
locked_out = {locked_out}

[[application]]
name = "filed app"
client_id = "filed-app"
client_secret = "{secret}"
grant_types = ["client_credentials", "password"]
allowed_scopes = ["useraccount"]
active = {active}
"#
    )
}

const FILE_SECRET: &str = "the file's secret, more than 32 characters";

server_test!(
    the_file_sets_a_lock_a_password_or_a_secret_only_when_it_changes_it,
    |server| {
        let admin = server.token_for_role("admin").await;
        let file = registry_file(PASSWORD, false, FILE_SECRET, true);
        apply(&server, &file).await;
        let filed = |secret: &str| TestApp {
            client_id: "filed-app".into(),
            secret: secret.into(),
        };
        let (status, _) = password_grant(&server, &filed(FILE_SECRET), "filed", PASSWORD).await;
        assert_eq!(status, 200);

        // After a suspected compromise: a new password, a new secret, the user locked.
        let (status, _) = call(
            &server,
            Method::PUT,
            "/users/filed/password",
            &admin,
            Some(json!({"password": NEW_PASSWORD})),
        )
        .await;
        assert_eq!(status, 204);
        let (status, rotated) = call(
            &server,
            Method::POST,
            "/apps/filed-app/rotate-secret",
            &admin,
            // A compromised secret gets no grace period.
            Some(json!({"grace": 0})),
        )
        .await;
        assert_eq!(status, 200);
        let rotated = rotated["client_secret"].as_str().unwrap().to_owned();
        let (status, _) = call(
            &server,
            Method::PATCH,
            "/users/filed",
            &admin,
            Some(json!({"locked_out": true})),
        )
        .await;
        assert_eq!(status, 200);

        // The unchanged file, applied again (as at every start), undoes none of it.
        let changes = apply(&server, &file).await;
        assert!(changes.is_empty(), "{changes:?}");
        let (_, user) = call(&server, Method::GET, "/users/filed", &admin, None).await;
        assert_eq!(user["locked_out"], true);
        let (_, _, body) = post_form(
            &server,
            "/oauth/token",
            Some(("filed-app", FILE_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(body["error"], "invalid_client");
        server.token(&filed(&rotated), None).await;

        // Lifting the lock by hand: the next apply keeps it lifted, and the old password stays out.
        call(
            &server,
            Method::PATCH,
            "/users/filed",
            &admin,
            Some(json!({"locked_out": false})),
        )
        .await;
        assert!(apply(&server, &file).await.is_empty());
        let (status, _) = password_grant(&server, &filed(&rotated), "filed", PASSWORD).await;
        assert_eq!(status, 400);
        let (status, _) = password_grant(&server, &filed(&rotated), "filed", NEW_PASSWORD).await;
        assert_eq!(status, 200);

        // What the file changes, it applies: a lock, a deactivation, then a new password and secret.
        let changes = apply(&server, &registry_file(PASSWORD, true, FILE_SECRET, false)).await;
        let fields: Vec<&Value> = changes.iter().map(|c| &c["fields"]).collect();
        assert_eq!(
            fields,
            [&json!(["locked_out"]), &json!(["active"])],
            "{changes:?}"
        );
        let (_, user) = call(&server, Method::GET, "/users/filed", &admin, None).await;
        assert_eq!(user["locked_out"], true);
        let (_, app) = call(&server, Method::GET, "/apps/filed-app", &admin, None).await;
        assert_eq!(app["active"], false);

        let other_secret = "another secret of the file, over 32 characters";
        let changes = apply(
            &server,
            &registry_file("the file's next password", false, other_secret, true),
        )
        .await;
        let fields: Vec<&Value> = changes.iter().map(|c| &c["fields"]).collect();
        assert_eq!(
            fields,
            [
                &json!(["locked_out", "password"]),
                &json!(["active", "client_secret"])
            ],
            "{changes:?}"
        );
        let (status, body) = password_grant(
            &server,
            &filed(other_secret),
            "filed",
            "the file's next password",
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
);

/// Another instance sharing the PostgreSQL database changes the password; this one, which has
/// the user and the opaque token cached, refuses the old tokens well before its cache would
/// expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_another_instance_ends_the_tokens_here() {
    let Some(server) = TestServer::start(crate::harness::Backend::Postgres).await else {
        return;
    };
    server.user("roaming", &[]).await;
    let mut tokens = Vec::new();
    for format in [TokenFormat::Jwt, TokenFormat::Opaque] {
        let app = people_app(&server, format).await;
        let (status, body) = password_grant(&server, &app, "roaming", PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert!(accepted(&server, &token).await);
        tokens.push(token);
    }
    let other_instance = gatehouse::server::open_services(&server.settings)
        .await
        .unwrap();
    other_instance
        .registry
        .set_password("roaming", gatehouse_core::secret::Secret::new(NEW_PASSWORD))
        .await
        .unwrap();
    for token in &tokens {
        let mut refused = false;
        // Polled (a notice arrives asynchronously), for less than the cache's 5 s lifetime.
        for _ in 0..20 {
            if !accepted(&server, token).await {
                refused = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(refused, "a token outlived the password by 2 s");
    }
}
