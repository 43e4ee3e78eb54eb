//! The flows in which a person takes part, driven over HTTP by a minimal cookie-keeping client
//! (the real-browser run is in `browser`): every negative case of the authorization endpoint,
//! the code and refresh-token grants, the password grant and the pages.

use std::collections::BTreeMap;

use gatehouse_core::client::{ClientType, GrantType};
use gatehouse_core::registry::AppChanges;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::Value;

use crate::harness::{TestApp, TestServer, post_form, server_test};

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT: &str = "https://app.example/cb";
pub const PASSWORD: &str = "a long enough password";

/// A client that keeps cookies and does not follow redirects, like a browser under test.
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        self.headers
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
    }

    /// The value of a hidden form field.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_owned()
    }

    /// The parameters of the redirect's query or fragment.
    pub fn redirect_params(&self) -> BTreeMap<String, String> {
        let location = self
            .location()
            .unwrap_or_else(|| panic!("no redirect: {} {}", self.status, self.body));
        let part = location
            .split_once(['?', '#'])
            .map(|(_, p)| p)
            .unwrap_or_default();
        form_urlencoded::parse(part.as_bytes())
            .into_owned()
            .collect()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let request = self.http.get(url);
        self.send(request).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(url).form(form);
        self.send(request).await
    }

    /// Posts a form with one extra request header (e.g. what a proxy adds).
    pub async fn post_with_header(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        (name, value): (&str, &str),
    ) -> Page {
        let request = self.http.post(url).form(form).header(name, value);
        self.send(request).await
    }

    /// Fills in the login form of `page`.
    pub async fn login(
        &mut self,
        server: &TestServer,
        page: &Page,
        user: &str,
        password: &str,
    ) -> Page {
        let (continuation, csrf) = (page.field("continuation"), page.field("csrf"));
        self.post(
            &server.url("/oauth/authorize/login"),
            &[
                ("continuation", &continuation),
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
            ],
        )
        .await
    }

    /// Answers the consent form of `page`.
    pub async fn consent(&mut self, server: &TestServer, page: &Page, decision: &str) -> Page {
        let (continuation, csrf) = (page.field("continuation"), page.field("csrf"));
        self.post(
            &server.url("/oauth/authorize/consent"),
            &[
                ("continuation", &continuation),
                ("csrf", &csrf),
                ("decision", decision),
            ],
        )
        .await
    }
}

pub fn authorize_url(server: &TestServer, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT);
    let has = |name: &str| extra.iter().any(|(n, _)| *n == name);
    if !has("response_type") {
        query.append_pair("response_type", "code");
    }
    if !has("code_challenge") {
        query
            .append_pair("code_challenge", CHALLENGE)
            .append_pair("code_challenge_method", "S256");
    }
    if !has("scope") {
        query.append_pair("scope", "openid profile");
    }
    query.extend_pairs(extra.iter().filter(|(_, v)| !v.is_empty()));
    format!("{}?{}", server.url("/oauth/authorize"), query.finish())
}

/// An application for people: code (+ refresh, implicit) with PKCE.
pub async fn people_app(server: &TestServer, client_type: ClientType) -> TestApp {
    server
        .app_with(AppChanges {
            name: Some("People App".into()),
            client_type: Some(client_type),
            grant_types: Some(vec![
                GrantType::AuthorizationCode,
                GrantType::RefreshToken,
                GrantType::Implicit,
                GrantType::Password,
            ]),
            redirect_uris: Some(vec![REDIRECT.into()]),
            allowed_scopes: Some(vec!["openid".into(), "profile".into(), "email".into()]),
            default_scopes: Some(vec!["openid".into()]),
            ..AppChanges::default()
        })
        .await
}

/// Logs `user` in, consents, and returns the redirect's parameters.
pub async fn code_flow(
    server: &TestServer,
    browser: &mut Browser,
    app: &TestApp,
    user: &str,
    extra: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let login = browser
        .get(&authorize_url(server, &app.client_id, extra))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let consent = browser.login(server, &login, user, PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let done = browser.consent(server, &consent, "allow").await;
    assert_eq!(done.status, 303, "{}", done.body);
    done.redirect_params()
}

pub async fn redeem(
    server: &TestServer,
    app: &TestApp,
    code: &str,
    verifier: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let basic = (!app.secret.is_empty()).then_some((app.client_id.as_str(), app.secret.as_str()));
    if basic.is_none() {
        form.push(("client_id", &app.client_id));
    }
    let (status, _, body) = post_form(server, "/oauth/token", basic, &form).await;
    (status, body)
}

async fn refresh(server: &TestServer, app: &TestApp, token: &str) -> (u16, Value) {
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    (status, body)
}

async fn active(server: &TestServer, app: &TestApp, token: &str) -> bool {
    let (_, _, body) = post_form(
        server,
        "/oauth/introspect",
        Some((&app.client_id, &app.secret)),
        &[("token", token)],
    )
    .await;
    body["active"] == true
}

server_test!(
    code_flow_issues_tokens_once_and_replay_revokes_them,
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let params = code_flow(
            &server,
            &mut browser,
            &app,
            "alice",
            &[("state", "s1"), ("nonce", "n1")],
        )
        .await;
        assert_eq!(params["state"], "s1");
        assert_eq!(params["iss"], server.base);
        let code = &params["code"];

        let (status, tokens) = redeem(&server, &app, code, Some(VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        assert!(tokens["id_token"].is_string() && tokens["refresh_token"].is_string());
        let access_token = tokens["access_token"].as_str().unwrap();
        assert!(active(&server, &app, access_token).await);

        // Replay: refused, and what the first redemption issued is revoked.
        let (status, body) = redeem(&server, &app, code, Some(VERIFIER)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert!(!active(&server, &app, access_token).await);
        let (status, _) = refresh(&server, &app, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 400);

        // The second authorization needs no consent: it is remembered.
        let login_free = browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        assert_eq!(login_free.status, 303, "{}", login_free.body);
        assert!(login_free.redirect_params().contains_key("code"));
    }
);

server_test!(
    the_consent_page_describes_scopes_from_the_registry,
    |server| {
        use gatehouse_core::access::ScopeEntry;
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut changes = serde_json::Map::new();
        changes.insert("description".into(), "see the name you go by".into());
        server
            .services
            .registry
            .update_entry::<ScopeEntry>("profile", changes)
            .await
            .unwrap();
        let mut browser = Browser::new();
        let login = browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        let consent = browser.login(&server, &login, "alice", PASSWORD).await;
        assert_eq!(consent.status, 200, "{}", consent.body);
        assert!(
            consent.body.contains("see the name you go by"),
            "{}",
            consent.body
        );
        assert!(
            consent.body.contains("know who you are"),
            "{}",
            consent.body
        );
    }
);

server_test!(pkce_is_enforced, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let mut browser = Browser::new();
    // Wrong verifier; missing verifier.
    let code = code_flow(&server, &mut browser, &app, "alice", &[]).await["code"].clone();
    let (status, body) = redeem(&server, &app, &code, Some(&"x".repeat(43))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let code = browser
        .get(&authorize_url(&server, &app.client_id, &[]))
        .await
        .redirect_params()["code"]
        .clone();
    let (status, body) = redeem(&server, &app, &code, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // No challenge at all: refused at the authorization endpoint, back at the client.
    let page = browser
        .get(&authorize_url(
            &server,
            &app.client_id,
            &[("code_challenge", "")],
        ))
        .await;
    assert_eq!(page.redirect_params()["error"], "invalid_request");
    // plain is not accepted unless the application allows it.
    let page = browser
        .get(&authorize_url(
            &server,
            &app.client_id,
            &[
                ("code_challenge", VERIFIER),
                ("code_challenge_method", "plain"),
            ],
        ))
        .await;
    assert_eq!(page.redirect_params()["error"], "invalid_request");

    // Public clients always need PKCE.
    let public = people_app(&server, ClientType::Public).await;
    let page = browser
        .get(&authorize_url(
            &server,
            &public.client_id,
            &[("code_challenge", "")],
        ))
        .await;
    assert_eq!(page.redirect_params()["error"], "invalid_request");

    // Downgrade: a code issued without a challenge cannot be redeemed with a verifier.
    server
        .update_app(
            &app.client_id,
            AppChanges {
                require_pkce: Some(false),
                ..AppChanges::default()
            },
        )
        .await;
    let code = browser
        .get(&authorize_url(
            &server,
            &app.client_id,
            &[("code_challenge", "")],
        ))
        .await
        .redirect_params()["code"]
        .clone();
    let (status, body) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
});

server_test!(
    untrusted_clients_and_redirects_get_a_page_never_a_redirect,
    |server| {
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        for url in [
            authorize_url(&server, "unknown-client", &[]),
            authorize_url(&server, &app.client_id, &[])
                .replace("app.example%2Fcb", "evil.example%2Fcb"),
            authorize_url(&server, &app.client_id, &[]).replace("%2Fcb", "%2Fcb%2Fextra"),
        ] {
            let page = browser.get(&url).await;
            assert_eq!(page.status, 400, "{url}");
            assert!(page.location().is_none());
            assert_eq!(page.headers["x-frame-options"], "DENY");
        }
        // Other errors go back to the client with state and iss.
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("response_type", "magic"), ("state", "s")],
            ))
            .await;
        let params = page.redirect_params();
        assert_eq!(
            (params["error"].as_str(), params["state"].as_str()),
            ("unsupported_response_type", "s")
        );
        assert_eq!(params["iss"], server.base);
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("scope", "admin")],
            ))
            .await;
        assert_eq!(page.redirect_params()["error"], "invalid_scope");
        // prompt=none without a session.
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("prompt", "none")],
            ))
            .await;
        assert_eq!(page.redirect_params()["error"], "login_required");
        // Repeated parameters.
        let page = browser
            .get(&format!(
                "{}&state=a&state=b",
                authorize_url(&server, &app.client_id, &[])
            ))
            .await;
        assert_eq!(page.status, 400);
        // A disabled application.
        server
            .update_app(
                &app.client_id,
                AppChanges {
                    active: Some(false),
                    ..AppChanges::default()
                },
            )
            .await;
        let page = browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        assert_eq!((page.status, page.location()), (400, None));
    }
);

server_test!(
    forms_need_their_csrf_tokens_and_wrong_passwords_say_nothing,
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let login = browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        let csp = login.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        let continuation = login.field("continuation");
        // No CSRF token, or a wrong one.
        for csrf in ["", "forged"] {
            let page = browser
                .post(
                    &server.url("/oauth/authorize/login"),
                    &[
                        ("continuation", &continuation),
                        ("csrf", csrf),
                        ("username", "alice"),
                        ("password", PASSWORD),
                    ],
                )
                .await;
            assert_eq!(page.status, 403, "csrf {csrf:?}");
        }
        // A token from another browser does not fit this one.
        let mut other = Browser::new();
        let other_login = other
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        let page = browser
            .post(
                &server.url("/oauth/authorize/login"),
                &[
                    ("continuation", &continuation),
                    ("csrf", &other_login.field("csrf")),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, 403);
        // Wrong password and unknown user: the same answer.
        let wrong = browser
            .login(&server, &login, "alice", "wrong password!")
            .await;
        // Each submission uses up its form; the page shown again carries a fresh one.
        let unknown = browser
            .login(&server, &wrong, "nobody", "wrong password!")
            .await;
        assert_eq!((wrong.status, unknown.status), (401, 401));
        assert!(wrong.body.contains("The user name or password is wrong."));
        assert!(unknown.body.contains("The user name or password is wrong."));
        // The consent form's token is bound to the session.
        let consent = browser.login(&server, &unknown, "alice", PASSWORD).await;
        let session = browser.cookies.get("gh_session").cloned().unwrap();
        let page = browser
            .post(
                &server.url("/oauth/authorize/consent"),
                &[
                    ("continuation", &consent.field("continuation")),
                    ("csrf", "forged"),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(page.status, 403);
        // Deny goes back as access_denied.
        let denied = browser.consent(&server, &consent, "deny").await;
        assert_eq!(denied.redirect_params()["error"], "access_denied");
        assert_eq!(browser.cookies["gh_session"], session);
    }
);

server_test!(
    refresh_tokens_rotate_narrow_and_reuse_revokes_the_family,
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let code = code_flow(
            &server,
            &mut browser,
            &app,
            "alice",
            &[("scope", "openid profile email")],
        )
        .await["code"]
            .clone();
        let (_, first) = redeem(&server, &app, &code, Some(VERIFIER)).await;
        let first_refresh = first["refresh_token"].as_str().unwrap();
        let (status, second) = refresh(&server, &app, first_refresh).await;
        assert_eq!(status, 200, "{second}");
        let second_refresh = second["refresh_token"].as_str().unwrap();
        assert_ne!(first_refresh, second_refresh);
        // Narrowing is allowed, widening is not.
        let (_, _, narrowed) = post_form(
            &server,
            "/oauth/token",
            Some((&app.client_id, &app.secret)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", second_refresh),
                ("scope", "openid"),
            ],
        )
        .await;
        assert_eq!(narrowed["scope"], "openid");
        let third_refresh = narrowed["refresh_token"].as_str().unwrap().to_owned();
        let (_, _, widened) = post_form(
            &server,
            "/oauth/token",
            Some((&app.client_id, &app.secret)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &third_refresh),
                ("scope", "openid admin"),
            ],
        )
        .await;
        assert_eq!(widened["error"], "invalid_scope");
        // Reusing a rotated token revokes the whole family, including the newest token.
        let (status, body) = refresh(&server, &app, first_refresh).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let (status, _) = refresh(&server, &app, &third_refresh).await;
        assert_eq!(status, 400);
        assert!(!active(&server, &app, narrowed["access_token"].as_str().unwrap()).await);
        // Another client cannot use the token.
        let other = people_app(&server, ClientType::Confidential).await;
        let (status, _) = refresh(&server, &other, &third_refresh).await;
        assert_eq!(status, 400);
    }
);

server_test!(a_code_is_redeemed_only_by_its_own_client, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let intruders = [
        people_app(&server, ClientType::Confidential).await,
        people_app(&server, ClientType::Public).await,
    ];
    let mut browser = Browser::new();
    let code = code_flow(&server, &mut browser, &app, "alice", &[]).await["code"].clone();
    // Other clients, even with the right verifier and redirect URI, are refused and do not
    // burn the code.
    for intruder in &intruders {
        for verifier in [Some(VERIFIER), None] {
            let (status, body) = redeem(&server, intruder, &code, verifier).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{body}"
            );
            assert!(body.get("access_token").is_none());
        }
    }
    let (status, tokens) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let access_token = tokens["access_token"].as_str().unwrap();
    // Once redeemed, another client presenting it is refused without touching what its own
    // client received: only a replay by the client itself revokes.
    for intruder in &intruders {
        let (status, body) = redeem(&server, intruder, &code, Some(VERIFIER)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
    assert!(active(&server, &app, access_token).await);
    let (status, _) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, 400);
    assert!(!active(&server, &app, access_token).await);
});

server_test!(
    concurrent_redemptions_of_a_code_succeed_once_and_leave_nothing_alive,
    |server| {
        use gatehouse_core::client::TokenFormat;
        server.user("alice", &[]).await;
        // A second instance takes half of the redemptions, so replays also race across
        // instances.
        let [server, peer] = server.with_peer().await;
        for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
            let app = people_app(&server, ClientType::Confidential).await;
            server
                .update_app(
                    &app.client_id,
                    AppChanges {
                        token_format: Some(format),
                        ..AppChanges::default()
                    },
                )
                .await;
            // Eight codes, each redeemed three times at once: 24 concurrent redemptions, in
            // which a replay often lands while the winner is still issuing.
            let mut browser = Browser::new();
            let mut codes =
                vec![code_flow(&server, &mut browser, &app, "alice", &[]).await["code"].clone()];
            while codes.len() < 8 {
                let page = browser
                    .get(&authorize_url(&server, &app.client_id, &[]))
                    .await;
                codes.push(page.redirect_params()["code"].clone());
            }
            let attempts: Vec<_> = codes
                .iter()
                .flat_map(|code| std::iter::repeat_n(code.clone(), 3))
                .enumerate()
                .map(|(n, code)| {
                    let server = if n % 2 == 0 { &server } else { &peer }.clone();
                    let app = app.clone();
                    tokio::spawn(async move {
                        let outcome = redeem(&server, &app, &code, Some(VERIFIER)).await;
                        (code, outcome)
                    })
                })
                .collect();
            let mut issued = Vec::new();
            for attempt in attempts {
                let (code, (status, body)) = attempt.await.unwrap();
                if status == 200 {
                    issued.push((code, body));
                } else {
                    assert_eq!(
                        (status, body["error"].as_str()),
                        (400, Some("invalid_grant"))
                    );
                }
            }
            let mut winners: Vec<_> = issued.iter().map(|(code, _)| code.clone()).collect();
            winners.sort();
            codes.sort();
            assert_eq!(winners, codes, "{format:?}: one success per code");
            // However the replays interleaved with the winner's issuance, its tokens are dead.
            for (_, tokens) in &issued {
                let access_token = tokens["access_token"].as_str().unwrap();
                assert!(!active(&server, &app, access_token).await, "{format:?}");
                let refresh_token = tokens["refresh_token"].as_str().unwrap();
                let (status, body) = refresh(&server, &app, refresh_token).await;
                assert_eq!(
                    (status, body["error"].as_str()),
                    (400, Some("invalid_grant"))
                );
            }
        }
    }
);

/// A refresh token for alice from a fresh code flow of `app`, and the answer that held it.
async fn first_refresh_token(server: &TestServer, app: &TestApp) -> (String, Value) {
    let mut browser = Browser::new();
    let code = code_flow(server, &mut browser, app, "alice", &[]).await["code"].clone();
    let (status, tokens) = redeem(server, app, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    (tokens["refresh_token"].as_str().unwrap().to_owned(), tokens)
}

server_test!(
    a_refresh_token_rotated_concurrently_succeeds_once_and_leaves_nothing_alive,
    |server| {
        use gatehouse_core::client::TokenFormat;
        server.user("alice", &[]).await;
        let servers = server.with_peer().await;
        for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
            let app = people_app(&servers[0], ClientType::Confidential).await;
            servers[0]
                .update_app(
                    &app.client_id,
                    AppChanges {
                        token_format: Some(format),
                        ..AppChanges::default()
                    },
                )
                .await;
            let (refresh_token, _) = first_refresh_token(&servers[0], &app).await;
            let attempts: Vec<_> = (0..24)
                .map(|n| {
                    let server = servers[n % 2].clone();
                    let (app, token) = (app.clone(), refresh_token.clone());
                    tokio::spawn(async move { refresh(&server, &app, &token).await })
                })
                .collect();
            let mut winners = Vec::new();
            for attempt in attempts {
                let (status, body) = attempt.await.unwrap();
                if status == 200 {
                    winners.push(body);
                } else {
                    assert_eq!(
                        (status, body["error"].as_str()),
                        (400, Some("invalid_grant")),
                        "{body}"
                    );
                }
            }
            assert_eq!(winners.len(), 1, "{format:?}: one rotation wins");
            // Every loser saw a reuse and revoked the family, however its revocation
            // interleaved with the winner's issuance: nothing the winner got still works.
            let winner = &winners[0];
            for server in &servers {
                let access_token = winner["access_token"].as_str().unwrap();
                assert!(!active(server, &app, access_token).await, "{format:?}");
            }
            let (status, body) =
                refresh(&servers[1], &app, winner["refresh_token"].as_str().unwrap()).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{format:?}"
            );
        }
    }
);

server_test!(
    a_lost_refresh_answer_is_given_again_within_the_grace_period,
    configured(|settings| settings.refresh_token_grace = 30),
    |server| {
        server.user("alice", &[]).await;
        let servers = server.with_peer().await;
        let app = people_app(&servers[0], ClientType::Confidential).await;
        let (first, _) = first_refresh_token(&servers[0], &app).await;
        // The answer is lost on the way; the client presents the same token again and gets
        // the same answer, from either instance.
        let (status, answer) = refresh(&servers[0], &app, &first).await;
        assert_eq!(status, 200, "{answer}");
        for server in &servers {
            let (status, again) = refresh(server, &app, &first).await;
            assert_eq!(status, 200, "{again}");
            for field in [
                "access_token",
                "refresh_token",
                "id_token",
                "scope",
                "token_type",
            ] {
                assert_eq!(again[field], answer[field], "{field}");
            }
            let expires_in = again["expires_in"].as_i64().unwrap();
            assert!(expires_in <= answer["expires_in"].as_i64().unwrap() && expires_in > 0);
        }
        // Many retries at once, racing the first rotation across instances: they all get the
        // one successor, so the family stays one chain.
        let second = answer["refresh_token"].as_str().unwrap().to_owned();
        let attempts: Vec<_> = (0..20)
            .map(|n| {
                let server = servers[n % 2].clone();
                let (app, token) = (app.clone(), second.clone());
                tokio::spawn(async move { refresh(&server, &app, &token).await })
            })
            .collect();
        let mut answers = Vec::new();
        for attempt in attempts {
            let (status, body) = attempt.await.unwrap();
            assert_eq!(status, 200, "{body}");
            answers.push(body);
        }
        let third = answers[0]["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(third, second);
        for body in &answers {
            assert_eq!(body["refresh_token"], answers[0]["refresh_token"]);
            let access_token = body["access_token"].as_str().unwrap();
            assert!(active(&servers[0], &app, access_token).await);
        }
        // The chain moves on: the successor rotates as usual.
        let (status, fourth) = refresh(&servers[1], &app, &third).await;
        assert_eq!(status, 200, "{fourth}");
        // Once it has, presenting an older token is a reuse even within the grace period: the
        // family is revoked.
        let (status, body) = refresh(&servers[0], &app, &second).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        let (status, _) =
            refresh(&servers[0], &app, fourth["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 400);
        assert!(!active(&servers[0], &app, fourth["access_token"].as_str().unwrap()).await);
    }
);

server_test!(
    a_refresh_token_reused_after_the_grace_period_revokes_its_family,
    configured(|settings| settings.refresh_token_grace = 1),
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let (first, _) = first_refresh_token(&server, &app).await;
        let (status, answer) = refresh(&server, &app, &first).await;
        assert_eq!(status, 200, "{answer}");
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let (status, body) = refresh(&server, &app, &first).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        let (status, _) = refresh(&server, &app, answer["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 400, "the successor went with the family");
        assert!(!active(&server, &app, answer["access_token"].as_str().unwrap()).await);
    }
);

server_test!(
    implicit_and_hybrid_responses_carry_what_they_should,
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let params = code_flow(
            &server,
            &mut browser,
            &app,
            "alice",
            &[
                ("response_type", "id_token token"),
                ("nonce", "n2"),
                ("state", "s2"),
            ],
        )
        .await;
        let location = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("response_type", "id_token token"), ("nonce", "n3")],
            ))
            .await
            .location()
            .unwrap();
        assert!(
            location.starts_with(&format!("{REDIRECT}#")),
            "tokens travel in the fragment"
        );
        assert!(params.contains_key("access_token") && params.contains_key("id_token"));
        assert_eq!(
            (params["token_type"].as_str(), params["state"].as_str()),
            ("Bearer", "s2")
        );
        let claims = jwt_claims(&params["id_token"]);
        assert_eq!(claims["nonce"], "n2");
        assert!(claims["at_hash"].is_string());
        let userinfo: Value = server
            .http
            .get(server.url("/oauth/userinfo"))
            .bearer_auth(&params["access_token"])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(userinfo["sub"], claims["sub"]);
        // A nonce is required; query mode cannot carry tokens; form_post renders a form.
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("response_type", "id_token token")],
            ))
            .await;
        assert_eq!(page.redirect_params()["error"], "invalid_request");
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[
                    ("response_type", "code id_token"),
                    ("nonce", "n"),
                    ("response_mode", "form_post"),
                ],
            ))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains(&format!("action=\"{REDIRECT}\""))
                && page.body.contains("name=\"code\"")
        );
        assert!(
            page.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'sha256-")
        );
        // An application without implicit may not ask for tokens from the authorization endpoint.
        server
            .update_app(
                &app.client_id,
                AppChanges {
                    grant_types: Some(vec![GrantType::AuthorizationCode]),
                    ..AppChanges::default()
                },
            )
            .await;
        let page = browser
            .get(&authorize_url(
                &server,
                &app.client_id,
                &[("response_type", "token")],
            ))
            .await;
        assert_eq!(page.redirect_params()["error"], "unauthorized_client");
    }
);

fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

server_test!(
    locked_out_and_disabled_users_cannot_log_in_and_consents_can_be_withdrawn,
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let code = code_flow(&server, &mut browser, &app, "alice", &[]).await["code"].clone();
        let (_, tokens) = redeem(&server, &app, &code, Some(VERIFIER)).await;
        // The account page lists the consent; withdrawing it revokes the application's tokens.
        let account = browser.get(&server.url("/account")).await;
        assert!(account.body.contains("People App"));
        let page = browser
            .post(
                &server.url("/account/withdraw"),
                &[
                    ("csrf", &account.field("csrf")),
                    ("client_id", &app.client_id),
                ],
            )
            .await;
        assert_eq!(page.status, 303);
        assert!(
            browser
                .get(&server.url("/account"))
                .await
                .body
                .contains("id=\"no-consents\"")
        );
        assert!(!active(&server, &app, tokens["access_token"].as_str().unwrap()).await);
        // Sign out, then a locked-out user cannot sign in again.
        let logout = browser.get(&server.url("/oauth/logout")).await;
        let page = browser
            .post(
                &server.url("/oauth/logout"),
                &[
                    ("csrf", &logout.field("csrf")),
                    ("form", &logout.field("form")),
                ],
            )
            .await;
        assert_eq!(page.status, 200);
        assert!(!browser.cookies.contains_key("gh_session"));
        server
            .services
            .registry
            .update_user(
                "alice",
                gatehouse_core::registry::UserChanges {
                    locked_out: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let login = browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        let page = browser.login(&server, &login, "alice", PASSWORD).await;
        assert_eq!(page.status, 401);
        let (_, _, body) = post_form(
            &server,
            "/oauth/token",
            Some((&app.client_id, &app.secret)),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
        assert_eq!(body["error"], "invalid_grant");
    }
);

server_test!(
    password_grant_issues_tokens_and_locks_out_a_guessing_address,
    |server| {
        server.user("bob", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let grant = |password: &'static str| {
            let (server, app) = (&server, &app);
            async move {
                post_form(
                    server,
                    "/oauth/token",
                    Some((&app.client_id, &app.secret)),
                    &[
                        ("grant_type", "password"),
                        ("username", "bob"),
                        ("password", password),
                        ("scope", "openid profile"),
                    ],
                )
                .await
            }
        };
        let (status, _, tokens) = grant(PASSWORD).await;
        assert_eq!(status, 200, "{tokens}");
        assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
        // Ten failures from this address lock the pair (further attempts are delayed meanwhile).
        for _ in 0..10 {
            let (status, _, body) = grant("not the password").await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_grant"))
            );
        }
        // Locked: the right password gets exactly the answer a wrong one gets.
        let (status, _, body) = grant(PASSWORD).await;
        let (wrong_status, _, wrong_body) = grant("not the password").await;
        assert_eq!((status, &body), (wrong_status, &wrong_body));
        assert_eq!(
            body["error_description"],
            "the user name or password is wrong"
        );
    }
);

server_test!(the_account_page_signs_out, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let mut browser = Browser::new();
    code_flow(&server, &mut browser, &app, "alice", &[]).await;
    let account = browser.get(&server.url("/account")).await;
    // The page's own sign-out form, as a browser would submit it.
    let form = &account.body[account.body.find("action=\"/oauth/logout\"").unwrap()..];
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = form.find(&marker).unwrap() + marker.len();
        form[start..start + form[start..].find('"').unwrap()].to_owned()
    };
    let (csrf, ticket) = (field("csrf"), field("form"));
    let page = browser
        .post(
            &server.url("/oauth/logout"),
            &[("csrf", csrf.as_str()), ("form", ticket.as_str())],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("You are signed out"), "{}", page.body);
    assert!(!browser.cookies.contains_key("gh_session"));
    // Signed out: the account page asks to sign in again.
    let account = browser.get(&server.url("/account")).await;
    assert!(
        account.body.contains("name=\"password\""),
        "{}",
        account.body
    );
});
