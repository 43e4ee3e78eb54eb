//! Gatehouse's cookies: with an https issuer every one is named `__Host-…` and set `Secure`, for
//! `Path=/`, without `Domain`, and is read back only under that name; with a loopback http issuer
//! (tests, development) the names stay bare, since browsers refuse `__Host-` without `Secure`.
//! Requests go over plain http to 127.0.0.1 either way: only the issuer names https.

use gatehouse_core::client::ClientType;

use crate::harness::server_test;
use crate::people::{Browser, PASSWORD, Page, VERIFIER, authorize_url, people_app, redeem};

const HTTPS_ISSUER: &str = "https://gatehouse.example";

fn set_cookies(page: &Page) -> Vec<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Checks one `Set-Cookie` value: its name, and that it is host-only, for the whole site and
/// out of scripts' reach; returns its attributes.
fn attributes<'s>(set: &'s str, name: &str) -> Vec<&'s str> {
    let (pair, attributes) = set.split_once(';').unwrap();
    assert_eq!(pair.split_once('=').unwrap().0, name, "{set}");
    let attributes: Vec<&str> = attributes.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Path=/"), "{set}");
    assert!(attributes.contains(&"HttpOnly"), "{set}");
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "{set}"
    );
    attributes
}

/// The value a browser holds for cookie `name`.
fn held(browser: &Browser, name: &str) -> String {
    browser
        .cookie_header()
        .split("; ")
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {}", browser.cookie_header()))
        .to_owned()
}

server_test!(
    an_https_issuer_gives_every_cookie_the_host_prefix,
    configured(|settings| settings.issuer = HTTPS_ISSUER.into()),
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let login = browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        assert_eq!(login.status, 200, "{}", login.body);
        let [browser_cookie] = set_cookies(&login).try_into().unwrap();
        assert!(attributes(&browser_cookie, "__Host-gh_browser").contains(&"Secure"));

        // The login form's CSRF check reads the browser cookie under its prefixed name.
        let consent = browser.login(&server, &login, "alice", PASSWORD).await;
        assert_eq!(consent.status, 200, "{}", consent.body);
        let [session_cookie] = set_cookies(&consent).try_into().unwrap();
        assert!(attributes(&session_cookie, "__Host-gh_session").contains(&"Secure"));

        // The browser sends both back, and the flow goes on: consent, the code, its tokens.
        let done = browser.consent(&server, &consent, "allow").await;
        assert_eq!(done.status, 303, "{}", done.body);
        let params = done.redirect_params();
        assert_eq!(params["iss"], HTTPS_ISSUER);
        let (status, tokens) = redeem(&server, &app, &params["code"], Some(VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        assert!(tokens["id_token"].is_string());
        // The session is found under its prefixed name: the next authorization goes straight
        // back to the application.
        let again = browser
            .get(&authorize_url(&server, &app.client_id, &[]))
            .await;
        assert_eq!(again.status, 303, "{}", again.body);

        // The same values under the bare names are not Gatehouse's cookies.
        let bare = format!(
            "gh_session={}; gh_browser={}",
            held(&browser, "__Host-gh_session"),
            held(&browser, "__Host-gh_browser")
        );
        let response = server
            .http
            .get(authorize_url(&server, &app.client_id, &[]))
            .header("cookie", bare)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("name=\"password\""));

        // Signing out clears the session under the same name.
        let confirm = browser.get(&server.url("/oauth/logout")).await;
        assert_eq!(confirm.status, 200, "{}", confirm.body);
        let signed_out = browser
            .post(
                &server.url("/oauth/logout"),
                &[
                    ("csrf", &confirm.field("csrf")),
                    ("form", &confirm.field("form")),
                ],
            )
            .await;
        assert_eq!(signed_out.status, 200, "{}", signed_out.body);
        let [cleared] = set_cookies(&signed_out).try_into().unwrap();
        let cleared_attributes = attributes(&cleared, "__Host-gh_session");
        assert!(cleared_attributes.contains(&"Secure"));
        assert!(cleared_attributes.contains(&"Max-Age=0"));
        assert!(cleared.starts_with("__Host-gh_session=;"), "{cleared}");
    }
);

server_test!(a_loopback_http_issuer_keeps_plain_cookie_names, |server| {
    assert!(server.settings.issuer.starts_with("http://127.0.0.1:"));
    server.user("bob", &[]).await;
    let app = people_app(&server, ClientType::Public).await;
    let mut browser = Browser::new();
    let login = browser
        .get(&authorize_url(&server, &app.client_id, &[]))
        .await;
    let [browser_cookie] = set_cookies(&login).try_into().unwrap();
    assert!(!attributes(&browser_cookie, "gh_browser").contains(&"Secure"));
    let consent = browser.login(&server, &login, "bob", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let [session_cookie] = set_cookies(&consent).try_into().unwrap();
    assert!(!attributes(&session_cookie, "gh_session").contains(&"Secure"));
    let done = browser.consent(&server, &consent, "allow").await;
    let (status, tokens) = redeem(
        &server,
        &app,
        &done.redirect_params()["code"],
        Some(VERIFIER),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
});
