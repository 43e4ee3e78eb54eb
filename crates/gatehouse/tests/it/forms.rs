//! The browser forms that change something (login, consent, sign-out) work once: a second
//! submission of the same form, in sequence or in a race, produces no second effect.

use gatehouse_core::client::ClientType;

use crate::harness::{TestServer, server_test};
use crate::people::{Browser, PASSWORD, VERIFIER, authorize_url, people_app, redeem};

async fn consent_page(
    server: &TestServer,
    browser: &mut Browser,
    client_id: &str,
) -> crate::people::Page {
    let login = browser.get(&authorize_url(server, client_id, &[])).await;
    let consent = browser.login(server, &login, "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    consent
}

server_test!(a_consent_approved_twice_gives_one_code, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let mut browser = Browser::new();
    let consent = consent_page(&server, &mut browser, &app.client_id).await;

    let first = browser.consent(&server, &consent, "allow").await;
    assert_eq!(first.status, 303, "{}", first.body);
    let code = first.redirect_params()["code"].clone();
    // The same approval again, and a denial of the same form: neither reaches the application.
    for decision in ["allow", "deny"] {
        let again = browser.consent(&server, &consent, decision).await;
        assert_eq!(again.status, 400, "{}", again.body);
        assert!(again.location().is_none());
        assert!(again.body.contains("already submitted"), "{}", again.body);
    }
    let (status, _) = redeem(&server, &app, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200);
});

server_test!(
    of_concurrent_approvals_of_one_form_exactly_one_goes_on,
    |server| {
        server.user("alice", &[]).await;
        let app = people_app(&server, ClientType::Confidential).await;
        let mut browser = Browser::new();
        let consent = consent_page(&server, &mut browser, &app.client_id).await;
        let cookies = browser.cookie_header();
        let form = [
            ("continuation", consent.field("continuation")),
            ("csrf", consent.field("csrf")),
            ("decision", "allow".to_owned()),
        ];
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // On PostgreSQL, where several instances share a database, half the posts go to a second
        // instance.
        let peer = if server.settings.database.starts_with("postgres") {
            Some(server.start_peer().await)
        } else {
            None
        };
        let mut racing = tokio::task::JoinSet::new();
        for n in 0..20 {
            let target = peer.as_ref().filter(|_| n % 2 == 1).unwrap_or(&server);
            let request = http
                .post(target.url("/oauth/authorize/consent"))
                .header("cookie", &cookies)
                .form(&form);
            racing.spawn(async move { request.send().await.unwrap().status().as_u16() });
        }
        let statuses = racing.join_all().await;
        assert_eq!(
            statuses.iter().filter(|s| **s == 303).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 400).count(),
            19,
            "{statuses:?}"
        );
    }
);

server_test!(a_login_form_signs_in_once, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let mut browser = Browser::new();
    let login = browser
        .get(&authorize_url(&server, &app.client_id, &[]))
        .await;
    // A wrong password uses up the form; the page shown again carries a fresh one.
    let retry = browser
        .login(&server, &login, "alice", "not the password")
        .await;
    assert_eq!(retry.status, 401);
    let replayed = browser.login(&server, &login, "alice", PASSWORD).await;
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    let consent = browser.login(&server, &retry, "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let again = browser.login(&server, &retry, "alice", PASSWORD).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("already submitted"));
});

server_test!(a_sign_out_confirmation_works_once, |server| {
    server.user("alice", &[]).await;
    let app = people_app(&server, ClientType::Confidential).await;
    let mut browser = Browser::new();
    let consent = consent_page(&server, &mut browser, &app.client_id).await;
    assert_eq!(
        browser.consent(&server, &consent, "allow").await.status,
        303
    );
    let confirm = browser.get(&server.url("/oauth/logout")).await;
    let cookies = browser.cookie_header();
    let form = [
        ("csrf", confirm.field("csrf")),
        ("form", confirm.field("form")),
    ];
    let http = reqwest::Client::new();
    let post = || {
        http.post(server.url("/oauth/logout"))
            .header("cookie", &cookies)
            .form(&form)
            .send()
    };
    assert_eq!(post().await.unwrap().status(), 200);
    // The same confirmation replayed with the same cookies is refused, not acted on again.
    let replay = post().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.unwrap().contains("already submitted"));
    // A confirmation without its ticket is refused while a session exists.
    let mut fresh = Browser::new();
    let login = fresh
        .get(&authorize_url(&server, &app.client_id, &[]))
        .await;
    // The consent is remembered, so signing in leads straight back to the application.
    assert_eq!(
        fresh.login(&server, &login, "alice", PASSWORD).await.status,
        303
    );
    let confirm = fresh.get(&server.url("/oauth/logout")).await;
    let page = fresh
        .post(
            &server.url("/oauth/logout"),
            &[("csrf", &confirm.field("csrf"))],
        )
        .await;
    assert_eq!(page.status, 403);
});
