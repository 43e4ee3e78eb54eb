//! The administrators' console over real HTTP with a cookie-keeping client: signing in through
//! the login page, what each registry role may see and do (refused by the server, whatever the
//! page offers), the headers of every page, an application's life — created with its secret
//! shown once, edited, its secret rotated, deleted — and a user's.

use gatehouse_core::clock::{Clock, SystemClock};
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::outbound::{ObtainedToken, SYSTEM_OWNER};
use gatehouse_core::secret::Secret;
use gatehouse_http::views::utc;

use crate::harness::{TestApp, TestServer, introspect, post_form, server_test};
use crate::outbound::{connect, password_provider, provider, provider_spec, token_requests};
use crate::people::{Browser, PASSWORD, Page};

/// A browser signed in to the console as `user`, through the login page `/admin` shows.
pub(crate) async fn signed_in(server: &TestServer, user: &str) -> Browser {
    let mut browser = Browser::new();
    let login = browser.get(&server.url("/admin/applications")).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("Sign in"), "{}", login.body);
    let signed = browser.login(server, &login, user, PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    // Back to the page the login was for.
    assert_eq!(signed.location().as_deref(), Some("/admin/applications"));
    browser
}

/// The fields a browser would submit from the first form of `page` with `action`: text inputs
/// and text areas with their values, checked boxes, selected options.
pub(crate) fn form_fields(page: &Page, action: &str) -> Vec<(String, String)> {
    let marker = format!("action=\"{action}\"");
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no form for {action} in {}", page.body));
    let end = start + page.body[start..].find("</form>").unwrap();
    let form = &page.body[start..end];
    let attribute = |tag: &str, name: &str| -> Option<String> {
        let marker = format!(" {name}=\"");
        let at = tag.find(&marker)? + marker.len();
        Some(tag[at..at + tag[at..].find('"')?].to_owned())
    };
    let unescape = |text: &str| {
        text.replace("&#10;", "\n")
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(open) = rest.find('<') {
        rest = &rest[open..];
        let tag_end = rest.find('>').unwrap();
        let tag = &rest[..tag_end];
        if tag.starts_with("<input") {
            let name = attribute(tag, "name");
            let checkbox = attribute(tag, "type").as_deref() == Some("checkbox");
            if let Some(name) = name {
                if !checkbox {
                    fields.push((name, unescape(&attribute(tag, "value").unwrap_or_default())));
                } else if tag.contains(" checked") {
                    fields.push((name, "on".into()));
                }
            }
        } else if tag.starts_with("<textarea") {
            let close = rest.find("</textarea>").unwrap();
            let name = attribute(tag, "name").unwrap();
            fields.push((name, unescape(&rest[tag_end + 1..close])));
        } else if tag.starts_with("<select") {
            let close = rest.find("</select>").unwrap();
            let name = attribute(tag, "name").unwrap();
            let options = &rest[tag_end..close];
            let selected = options
                .split("<option")
                .find(|option| option.contains(" selected"))
                .and_then(|option| attribute(option, "value"))
                .unwrap_or_default();
            fields.push((name, selected));
        }
        rest = &rest[tag_end..];
    }
    fields
}

/// The CSRF token of the form of `page` with `action` (the layout's sign-out form carries a
/// token of its own).
fn form_csrf(page: &Page, action: &str) -> String {
    form_fields(page, action)
        .into_iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, token)| token)
        .unwrap_or_else(|| panic!("no CSRF token in the form for {action}"))
}

/// Opens `path` and submits its form with `action` as a browser would, with `changes` made to
/// its fields (set, or added).
async fn fill(
    browser: &mut Browser,
    server: &TestServer,
    path: &str,
    action: &str,
    changes: &[(&str, &str)],
) -> Page {
    let page = browser.get(&server.url(path)).await;
    let mut fields = form_fields(&page, action);
    for (name, value) in changes {
        set(&mut fields, name, value);
    }
    submit(browser, server, action, &fields).await
}

/// Asserts that `page` is its form again, refused (`422`) with a message next to `field`.
fn assert_refused_at(page: &Page, field: &str) {
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body.contains(&format!("id=\"{field}-error\"")),
        "no message next to {field}: {}",
        page.body
    );
}

/// Opens the confirmation at `path` and posts its form, as a browser would.
async fn confirm(browser: &mut Browser, server: &TestServer, path: &str) -> Page {
    fill(browser, server, path, path, &[]).await
}

/// Asserts that `browser`'s administrator reads the record at `path` but that the server
/// refuses its form, sent as shown, and its deletion.
async fn assert_read_only(browser: &mut Browser, server: &TestServer, path: &str) {
    let page = browser.get(&server.url(path)).await;
    assert_eq!(page.status, 200, "{path}");
    let fields = form_fields(&page, path);
    let forged = submit(browser, server, path, &fields).await;
    assert_eq!(forged.status, 403, "{path}: {}", forged.body);
    let delete = format!("{path}/delete");
    assert_eq!(
        confirm(browser, server, &delete).await.status,
        403,
        "{delete}"
    );
}

/// Sets (or adds) a field of a form about to be submitted.
pub(crate) fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    fields.retain(|(n, _)| n != name);
    fields.push((name.to_owned(), value.to_owned()));
}

pub(crate) async fn submit(
    browser: &mut Browser,
    server: &TestServer,
    path: &str,
    fields: &[(String, String)],
) -> Page {
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    browser.post(&server.url(path), &form).await
}

/// The client secret shown on a page, if any.
fn shown_secret(page: &Page) -> Option<String> {
    let marker = "id=\"new-secret\" class=\"secret\" readonly value=\"";
    let start = page.body.find(marker)? + marker.len();
    let end = page.body[start..].find('"')?;
    Some(page.body[start..start + end].to_owned())
}

fn assert_strict_headers(page: &Page, path: &str) {
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self';",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{path}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{path}: {csp}");
    assert_eq!(page.headers["x-frame-options"], "DENY", "{path}");
    assert_eq!(page.headers["cache-control"], "no-store", "{path}");
}

/// Every scrolling table's container, focusable so the keyboard can scroll it, is a region
/// named by its table's caption, so a screen reader says what it entered.
fn assert_scroll_regions_named(page: &Page, path: &str) {
    for container in page.body.split("<div class=\"scroll\"").skip(1) {
        let tag = &container[..container.find('>').unwrap()];
        assert!(tag.contains("role=\"region\""), "{path}: {tag}");
        let marker = "aria-labelledby=\"";
        let at = tag.find(marker).unwrap_or_else(|| panic!("{path}: {tag}")) + marker.len();
        let id = &tag[at..at + tag[at..].find('"').unwrap()];
        assert!(
            container.contains(&format!("<caption id=\"{id}\"")),
            "{path}: {id} names no caption of its table"
        );
    }
}

server_test!(each_role_gets_what_the_registry_allows_it, |server| {
    for (user, roles) in [
        ("ada", &["admin"][..]),
        ("olga", &["oauth_admin"]),
        ("mia", &["mi_admin"]),
        ("pat", &[]),
    ] {
        server.user(user, roles).await;
    }
    let app = server
        .app(
            gatehouse_core::client::TokenFormat::Opaque,
            &["useraccount"],
            None,
        )
        .await;
    let app_path = format!("/admin/applications/{}", app.client_id);

    // Without a session: the login page for a page, a refusal for a form.
    let mut stranger = Browser::new();
    let refused = stranger
        .post(&server.url("/admin/applications"), &[("name", "x")])
        .await;
    assert_eq!(refused.status, 403);

    // A user without a registry role signs in and is refused every page.
    let mut pat = signed_in(&server, "pat").await;
    for path in ["/admin", "/admin/applications", app_path.as_str()] {
        let page = pat.get(&server.url(path)).await;
        assert_eq!(page.status, 403, "{path}");
        assert_strict_headers(&page, path);
    }

    // Every role reads every page; the CSP is on each.
    let pages = [
        "/admin".to_owned(),
        "/admin/applications".to_owned(),
        "/admin/applications?q=nothing-like-it&page=7".to_owned(),
        "/admin/new/applications".to_owned(),
        app_path.clone(),
        format!("{app_path}/edit"),
        format!("{app_path}/rotate-secret"),
        format!("{app_path}/delete"),
        "/admin/users".to_owned(),
        "/admin/users?q=pat".to_owned(),
        "/admin/new/users".to_owned(),
        "/admin/users/pat".to_owned(),
        "/admin/users/pat/edit".to_owned(),
        "/admin/users/pat/password".to_owned(),
        "/admin/users/pat/delete".to_owned(),
        "/admin/scopes".to_owned(),
        "/admin/scopes?q=user".to_owned(),
        "/admin/new/scopes".to_owned(),
        "/admin/scopes/useraccount".to_owned(),
        "/admin/scopes/useraccount/delete".to_owned(),
        "/admin/keys".to_owned(),
        "/admin/scope-rules".to_owned(),
        "/admin/new/scope-rules".to_owned(),
        "/admin/routes".to_owned(),
        "/admin/new/routes".to_owned(),
        "/admin/tables".to_owned(),
        "/admin/new/tables".to_owned(),
        "/admin/profiles".to_owned(),
        "/admin/aliases?q=x".to_owned(),
        "/admin/providers".to_owned(),
        "/admin/new/providers".to_owned(),
        "/admin/jwt-providers".to_owned(),
        "/admin/new/jwt-providers".to_owned(),
    ];
    for user in ["ada", "olga", "mia"] {
        let mut browser = signed_in(&server, user).await;
        for path in &pages {
            let page = browser.get(&server.url(path)).await;
            assert_eq!(page.status, 200, "{user} {path}: {}", page.body);
            assert_strict_headers(&page, path);
            assert_scroll_regions_named(&page, path);
            assert!(page.body.contains(&format!(">{user} (")), "{path}");
        }
        let missing = browser
            .get(&server.url("/admin/applications/no-such-app"))
            .await;
        assert_eq!(missing.status, 404);
    }

    // mi_admin manages outbound OAuth and tables, not applications: a forged form with a
    // valid CSRF token is refused by the server.
    let mut mia = signed_in(&server, "mia").await;
    let new = mia.get(&server.url("/admin/new/applications")).await;
    let mut fields = form_fields(&new, "/admin/applications");
    set(&mut fields, "name", "Not for mi_admin");
    let page = submit(&mut mia, &server, "/admin/applications", &fields).await;
    assert_eq!(page.status, 403, "{}", page.body);
    let csrf = form_csrf(&new, "/admin/applications");
    for action in ["delete", "rotate-secret"] {
        let page = mia
            .post(
                &server.url(&format!("{app_path}/{action}")),
                &[("csrf", &csrf), ("grace", "0")],
            )
            .await;
        assert_eq!(page.status, 403, "{action}");
    }
    let edit = mia.get(&server.url(&format!("{app_path}/edit"))).await;
    let mut fields = form_fields(&edit, &app_path);
    set(&mut fields, "name", "Renamed by mi_admin");
    assert_eq!(
        submit(&mut mia, &server, &app_path, &fields).await.status,
        403
    );
    let names: Vec<String> = server
        .services
        .registry
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert!(!names.iter().any(|n| n.contains("mi_admin")), "{names:?}");
    // Nor users.
    let page = fill(
        &mut mia,
        &server,
        "/admin/new/users",
        "/admin/users",
        &[("user_name", "made-by-mia")],
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.body);
    for (path, form) in [
        (
            "/admin/users/pat/lock",
            &[("csrf", csrf.as_str()), ("locked", "yes")][..],
        ),
        (
            "/admin/users/pat/password",
            &[("csrf", &csrf), ("password", "another long password")],
        ),
        ("/admin/users/pat/delete", &[("csrf", &csrf)]),
    ] {
        assert_eq!(
            mia.post(&server.url(path), form).await.status,
            403,
            "{path}"
        );
    }
    let pat = server.services.registry.get_user("pat").await.unwrap();
    assert!(!pat.locked_out);
    // Nor scopes.
    let page = mia
        .post(
            &server.url("/admin/scopes"),
            &[("csrf", csrf.as_str()), ("name", "by-mia")],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);

    // oauth_admin manages applications.
    let mut olga = signed_in(&server, "olga").await;
    let created = fill(
        &mut olga,
        &server,
        "/admin/new/applications",
        "/admin/applications",
        &[("name", "Made by olga")],
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    // and users, but grants no registry role: only admin does.
    let new = olga.get(&server.url("/admin/new/users")).await;
    let mut fields = form_fields(&new, "/admin/users");
    set(&mut fields, "user_name", "would-be-admin");
    set(&mut fields, "roles", "admin");
    let page = submit(&mut olga, &server, "/admin/users", &fields).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("needs the admin role"), "{}", page.body);
    // The form corrected after the refusal is another submission of it.
    set(&mut fields, "roles", "staff");
    let page = submit(&mut olga, &server, "/admin/users", &fields).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        page.location().as_deref(),
        Some("/admin/users/would-be-admin")
    );

    // A form without its CSRF token, or with another session's, is refused.
    let mut ada = signed_in(&server, "ada").await;
    let new = ada.get(&server.url("/admin/new/applications")).await;
    let mut fields = form_fields(&new, "/admin/applications");
    set(&mut fields, "name", "Forged");
    fields.retain(|(n, _)| n != "csrf");
    let page = submit(&mut ada, &server, "/admin/applications", &fields).await;
    assert_eq!(page.status, 403);
    set(&mut fields, "csrf", &csrf);
    let page = submit(&mut ada, &server, "/admin/applications", &fields).await;
    assert_eq!(page.status, 403);
    let page = ada
        .post(&server.url(&format!("{app_path}/delete")), &[])
        .await;
    assert_eq!(page.status, 403);
    assert!(
        server
            .services
            .registry
            .get_app(&app.client_id)
            .await
            .is_ok()
    );
});

server_test!(
    an_application_is_created_edited_rotated_and_deleted,
    |server| {
        server.user("ada", &["admin"]).await;
        let mut ada = signed_in(&server, "ada").await;

        // The form refuses what the registry refuses, next to the field concerned, and keeps
        // what was typed.
        let new = ada.get(&server.url("/admin/new/applications")).await;
        let mut fields = form_fields(&new, "/admin/applications");
        set(&mut fields, "name", "Billing");
        set(&mut fields, "access_token_lifespan", "soon");
        let refused = submit(&mut ada, &server, "/admin/applications", &fields).await;
        assert_eq!(refused.status, 422);
        assert!(
            refused.body.contains(
                "id=\"access_token_lifespan-error\" role=\"alert\">must be a whole number"
            ),
            "{}",
            refused.body
        );
        assert!(refused.body.contains("value=\"Billing\""));
        set(&mut fields, "access_token_lifespan", "0");
        let refused = submit(&mut ada, &server, "/admin/applications", &fields).await;
        assert_eq!(refused.status, 422);
        assert!(
            refused.body.contains(
                "id=\"access_token_lifespan-error\" role=\"alert\">access_token_lifespan must be"
            ),
            "{}",
            refused.body
        );

        // Created: the secret is on the page the form leads to, once.
        set(&mut fields, "access_token_lifespan", "600");
        set(&mut fields, "client_id", "billing-console");
        set(&mut fields, "grant_types.client_credentials", "on");
        let created = submit(&mut ada, &server, "/admin/applications", &fields).await;
        assert_eq!(created.status, 303, "{}", created.body);
        let location = created.location().unwrap();
        assert_eq!(location, "/admin/applications/billing-console");
        let shown = ada.get(&server.url(&location)).await;
        assert_eq!(shown.status, 200);
        assert!(shown.body.contains("Application Billing created."));
        let secret = shown_secret(&shown).expect("the secret is shown");
        let again = ada.get(&server.url(&location)).await;
        assert_eq!(shown_secret(&again), None, "{}", again.body);
        assert!(!again.body.contains("created."));
        let app = TestApp {
            client_id: "billing-console".into(),
            secret: secret.clone(),
        };
        server.token(&app, None).await;
        let stored = server
            .services
            .registry
            .get_app("billing-console")
            .await
            .unwrap();
        assert_eq!(stored.access_token_lifespan, 600);
        // Defaults the form left alone are the registry's: scopes, PKCE.
        assert_eq!(stored.allowed_scopes, vec!["useraccount".to_owned()]);
        assert!(stored.require_pkce);

        // Listed and found by name or client_id.
        for query in ["bill", "BILLING-CON"] {
            let list = ada
                .get(&server.url(&format!("/admin/applications?q={query}")))
                .await;
            assert!(
                list.body
                    .contains("href=\"/admin/applications/billing-console\""),
                "{query}"
            );
        }
        let list = ada.get(&server.url("/admin/applications?q=zzz")).await;
        assert!(!list.body.contains("billing-console"));

        // Edited: only what changed changes.
        let edit = ada.get(&server.url(&format!("{location}/edit"))).await;
        let mut fields = form_fields(&edit, &location);
        set(&mut fields, "name", "Billing service");
        set(
            &mut fields,
            "redirect_uris",
            "https://billing.example/cb\nhttps://billing.example/cb2",
        );
        set(&mut fields, "grant_types.authorization_code", "on");
        set(&mut fields, "token_format", "jwt");
        fields.retain(|(n, _)| n != "require_pkce");
        let saved = submit(&mut ada, &server, &location, &fields).await;
        assert_eq!(saved.status, 303, "{}", saved.body);
        let page = ada.get(&server.url(&location)).await;
        assert!(page.body.contains("Application Billing service saved."));
        let stored = server
            .services
            .registry
            .get_app("billing-console")
            .await
            .unwrap();
        assert_eq!(stored.name, "Billing service");
        assert_eq!(stored.redirect_uris.len(), 2);
        assert!(!stored.require_pkce);
        assert_eq!(stored.access_token_lifespan, 600);
        assert_eq!(stored.allowed_scopes, vec!["useraccount".to_owned()]);
        // The registry's own refusal, with nothing to point at, is shown above the form.
        let refused = fill(
            &mut ada,
            &server,
            &format!("{location}/edit"),
            &location,
            &[("redirect_uris", "")],
        )
        .await;
        assert_eq!(refused.status, 422);
        assert!(
            refused.body.contains("id=\"form-errors\""),
            "{}",
            refused.body
        );

        // Rotated, ending the old secret at once: the new one is shown once and works.
        let rotation = format!("{location}/rotate-secret");
        let rotated = fill(&mut ada, &server, &rotation, &rotation, &[("grace", "0")]).await;
        assert_eq!(rotated.status, 303);
        let page = ada.get(&server.url(&rotated.location().unwrap())).await;
        let new_secret = shown_secret(&page).expect("the new secret is shown");
        assert_ne!(new_secret, secret);
        let old = server
            .http
            .post(server.url("/oauth/token"))
            .basic_auth("billing-console", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(old.status(), 401);
        server
            .token(
                &TestApp {
                    client_id: "billing-console".into(),
                    secret: new_secret,
                },
                None,
            )
            .await;

        // The dashboard counts what there is.
        let dashboard = ada.get(&server.url("/admin")).await;
        assert!(
            dashboard.body.contains("id=\"count-applications\">1<"),
            "{}",
            dashboard.body
        );
        assert!(
            dashboard.body.contains("id=\"count-access-tokens\">1<"),
            "{}",
            dashboard.body
        );
        assert!(
            dashboard
                .body
                .contains("<strong class=\"ok\">answering</strong>")
        );
        assert!(
            dashboard
                .body
                .contains("<strong class=\"ok\">signing</strong>")
        );

        // Deleted, after confirming.
        let deleted = confirm(&mut ada, &server, &format!("{location}/delete")).await;
        assert_eq!(deleted.status, 303);
        assert_eq!(deleted.location().as_deref(), Some("/admin/applications"));
        let list = ada.get(&server.url("/admin/applications")).await;
        assert!(list.body.contains("Application Billing service deleted."));
        assert_eq!(ada.get(&server.url(&location)).await.status, 404);
        // Each change is in the audit trail under the administrator's name.
        let events = server
            .services
            .registry
            .audit_events(gatehouse_core::store::AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let by_ada = events
            .iter()
            .filter(|e| e.actor == "ada" && e.subject == "billing-console")
            .count();
        assert_eq!(by_ada, 4, "{events:?}");
    }
);

server_test!(a_user_is_created_edited_locked_and_deleted, |server| {
    server.user("ada", &["admin"]).await;
    let mut ada = signed_in(&server, "ada").await;

    let new = ada.get(&server.url("/admin/new/users")).await;
    let mut fields = form_fields(&new, "/admin/users");
    set(&mut fields, "user_name", "bob");
    set(&mut fields, "password", "short");
    set(&mut fields, "roles", "staff\nwarehouse");
    let refused = submit(&mut ada, &server, "/admin/users", &fields).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("id=\"form-errors\""),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("value=\"bob\""));
    set(&mut fields, "password", PASSWORD);
    set(&mut fields, "email", "bob@example.org");
    let created = submit(&mut ada, &server, "/admin/users", &fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(created.location().as_deref(), Some("/admin/users/bob"));
    let page = ada.get(&server.url("/admin/users/bob")).await;
    assert!(page.body.contains("User bob created."));
    let bob = server.services.registry.get_user("bob").await.unwrap();
    assert_eq!(bob.roles, ["staff", "warehouse"]);
    assert_eq!(bob.display_name, "bob");
    assert!(bob.active && !bob.locked_out);
    signed_in(&server, "bob").await;

    // Listed and found.
    let list = ada.get(&server.url("/admin/users?q=EXAMPLE.org")).await;
    assert!(list.body.contains("href=\"/admin/users/bob\""));

    // Edited: the name and the roles.
    let saved = fill(
        &mut ada,
        &server,
        "/admin/users/bob/edit",
        "/admin/users/bob",
        &[("display_name", "Bob Builder"), ("roles", "staff")],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let bob = server.services.registry.get_user("bob").await.unwrap();
    assert_eq!(
        (bob.display_name.as_str(), bob.roles.as_slice()),
        ("Bob Builder", &["staff".to_owned()][..])
    );

    // Locked out, then let in again.
    let page = ada.get(&server.url("/admin/users/bob")).await;
    let lock = form_fields(&page, "/admin/users/bob/lock");
    assert_eq!(
        submit(&mut ada, &server, "/admin/users/bob/lock", &lock)
            .await
            .status,
        303
    );
    let page = ada.get(&server.url("/admin/users/bob")).await;
    assert!(page.body.contains("bob is locked out"), "{}", page.body);
    assert!(
        server
            .services
            .registry
            .get_user("bob")
            .await
            .unwrap()
            .locked_out
    );
    let unlock = form_fields(&page, "/admin/users/bob/lock");
    assert_eq!(
        submit(&mut ada, &server, "/admin/users/bob/lock", &unlock)
            .await
            .status,
        303
    );
    assert!(
        !server
            .services
            .registry
            .get_user("bob")
            .await
            .unwrap()
            .locked_out
    );

    // A new password, after one the policy refuses.
    let page = ada.get(&server.url("/admin/users/bob/password")).await;
    let mut fields = form_fields(&page, "/admin/users/bob/password");
    set(&mut fields, "password", "short");
    let refused = submit(&mut ada, &server, "/admin/users/bob/password", &fields).await;
    assert_refused_at(&refused, "password");
    set(&mut fields, "password", "a different long password");
    let set_password = submit(&mut ada, &server, "/admin/users/bob/password", &fields).await;
    assert_eq!(set_password.status, 303);
    let mut bob_browser = Browser::new();
    let login = bob_browser.get(&server.url("/admin")).await;
    let signed = bob_browser
        .login(&server, &login, "bob", "a different long password")
        .await;
    assert_eq!(signed.status, 303);

    // A user an application runs as stays: refused with the reason, nothing changed.
    let app = server
        .app(
            gatehouse_core::client::TokenFormat::Opaque,
            &["useraccount"],
            Some("bob"),
        )
        .await;
    let refused = confirm(&mut ada, &server, "/admin/users/bob/delete").await;
    assert_eq!(refused.location().as_deref(), Some("/admin/users/bob"));
    let page = ada.get(&server.url("/admin/users/bob")).await;
    assert!(page.body.contains("is the run-as user of"), "{}", page.body);
    assert!(
        page.body.contains("class=\"flash flash-error\""),
        "{}",
        page.body
    );
    server
        .services
        .registry
        .delete_app(&app.client_id)
        .await
        .unwrap();

    // Deleted, after confirming.
    let deleted = confirm(&mut ada, &server, "/admin/users/bob/delete").await;
    assert_eq!(deleted.location().as_deref(), Some("/admin/users"));
    assert_eq!(ada.get(&server.url("/admin/users/bob")).await.status, 404);
});

server_test!(scopes_are_created_edited_and_deleted, |server| {
    server.user("olga", &["oauth_admin"]).await;
    server.user("mia", &["mi_admin"]).await;
    let mut olga = signed_in(&server, "olga").await;
    let page = olga.get(&server.url("/admin/scopes")).await;
    assert!(page.body.contains("<code>useraccount</code>"));
    let new = olga.get(&server.url("/admin/new/scopes")).await;
    let mut fields = form_fields(&new, "/admin/scopes");
    set(&mut fields, "name", "inventory.read");
    set(&mut fields, "description", "Read the stock");
    let created = submit(&mut olga, &server, "/admin/scopes", &fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(
        created.location().as_deref(),
        Some("/admin/scopes/inventory.read")
    );
    let page = olga.get(&server.url("/admin/scopes/inventory.read")).await;
    assert!(page.body.contains("Scope inventory.read created."));
    assert!(page.body.contains("Read the stock"));
    // Sent again as it was (a double click), it creates nothing more and says so.
    let again = submit(&mut olga, &server, "/admin/scopes", &fields).await;
    assert_eq!(again.location().as_deref(), Some("/admin/scopes"));
    let list = olga.get(&server.url("/admin/scopes?q=inventory")).await;
    assert!(
        list.body.contains("This form was sent already"),
        "{}",
        list.body
    );
    assert!(list.body.contains("1 scope matching"), "{}", list.body);
    // A new form with a name taken already, or malformed: refused next to the name, with what
    // was typed.
    for name in ["inventory.read", "two words"] {
        let refused = fill(
            &mut olga,
            &server,
            "/admin/new/scopes",
            "/admin/scopes",
            &[("name", name), ("description", "Read the stock")],
        )
        .await;
        assert_refused_at(&refused, "name");
        assert!(refused.body.contains("Read the stock"), "{name}");
    }

    // Its description and default edited on its page; the name stays.
    let at = "/admin/scopes/inventory.read";
    let page = olga.get(&server.url(at)).await;
    let mut fields = form_fields(&page, at);
    assert!(
        !fields
            .iter()
            .any(|(name, _)| name == "name" || name == "ticket")
    );
    set(&mut fields, "description", "Read the stock levels");
    set(&mut fields, "default", "on");
    let saved = submit(&mut olga, &server, at, &fields).await;
    assert_eq!(saved.location().as_deref(), Some(at), "{}", saved.body);
    let page = olga.get(&server.url(at)).await;
    assert!(
        page.body.contains("Scope inventory.read saved."),
        "{}",
        page.body
    );
    let scope = server
        .services
        .registry
        .get_entry::<gatehouse_core::access::ScopeEntry>("inventory.read")
        .await
        .unwrap();
    assert_eq!(scope.description, "Read the stock levels");
    assert!(scope.default);
    // mi_admin may read it, not change it: the server refuses the forged form.
    let mut mia = signed_in(&server, "mia").await;
    let page = mia.get(&server.url(at)).await;
    let mut fields = form_fields(&page, at);
    set(&mut fields, "description", "Changed by mi_admin");
    assert_eq!(submit(&mut mia, &server, at, &fields).await.status, 403);

    // The built-in scope stays.
    let page = olga
        .get(&server.url("/admin/scopes/useraccount/delete"))
        .await;
    let fields = form_fields(&page, "/admin/scopes/useraccount/delete");
    let refused = submit(
        &mut olga,
        &server,
        "/admin/scopes/useraccount/delete",
        &fields,
    )
    .await;
    assert_eq!(
        refused.location().as_deref(),
        Some("/admin/scopes/useraccount")
    );
    let page = olga.get(&server.url("/admin/scopes/useraccount")).await;
    assert!(page.body.contains("is built in"), "{}", page.body);
    let deleted = submit(
        &mut olga,
        &server,
        "/admin/scopes/inventory.read/delete",
        &fields,
    )
    .await;
    assert_eq!(deleted.location().as_deref(), Some("/admin/scopes"));
    let page = olga.get(&server.url("/admin/scopes")).await;
    assert!(page.body.contains("Scope inventory.read deleted."));
    assert!(!page.body.contains("<code>inventory.read</code>"));
});

server_test!(a_signing_key_is_retired_after_a_confirmation, |server| {
    server.user("ada", &["admin"]).await;
    server.user("mia", &["mi_admin"]).await;
    let (_, jwks) = server.get_json("/oauth/jwks").await;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let retire = format!("/admin/keys/{kid}/retire");

    // mi_admin sees the keys but may not retire one.
    let mut mia = signed_in(&server, "mia").await;
    let page = mia.get(&server.url(&retire)).await;
    assert_eq!(page.status, 200);
    let fields = form_fields(&page, &retire);
    assert_eq!(
        submit(&mut mia, &server, &retire, &fields).await.status,
        403
    );

    let mut ada = signed_in(&server, "ada").await;
    let page = ada.get(&server.url("/admin/keys")).await;
    assert!(
        page.body.contains(&format!("href=\"{retire}\"")),
        "{}",
        page.body
    );
    let page = ada.get(&server.url(&retire)).await;
    assert!(page.body.contains("signs at once"), "{}", page.body);
    let fields = form_fields(&page, &retire);
    let retired = submit(&mut ada, &server, &retire, &fields).await;
    assert_eq!(retired.location().as_deref(), Some("/admin/keys"));
    let page = ada.get(&server.url("/admin/keys")).await;
    assert!(
        page.body.contains(&format!("Key {kid} retired; key ")),
        "{}",
        page.body
    );
    let (_, jwks) = server.get_json("/oauth/jwks").await;
    assert!(!jwks.to_string().contains(&kid));
    assert_eq!(ada.get(&server.url(&retire)).await.status, 404);
});

/// The signing-keys page's rotation schedule as the server runs it: each algorithm's signing
/// key and since when, and when it next rotates — `interval` seconds after its newest key began
/// signing, or never on its own.
async fn assert_schedule_shown(server: &TestServer, interval: Option<i64>) {
    server.user("ada", &["admin"]).await;
    let mut ada = signed_in(server, "ada").await;
    let page = ada.get(&server.url("/admin/keys")).await;
    let start = page.body.find("id=\"rotation-schedule\"").unwrap();
    let schedule = &page.body[start..start + page.body[start..].find("</table>").unwrap()];
    let now = server.services.tokens.clock().now();
    let ring = server.services.tokens.key_ring();
    for alg in [SigningAlgorithm::Es256, SigningAlgorithm::Rs256] {
        let key = ring.signing_key(alg, now).unwrap();
        let row = schedule
            .split("<tr>")
            .find(|row| row.contains(&format!("<td>{}</td>", alg.as_str())))
            .unwrap_or_else(|| panic!("no line for {alg:?}: {schedule}"));
        let due = interval.map_or("manual only".into(), |interval| {
            utc(key.activates_at + interval)
        });
        for shown in [key.kid.clone(), utc(key.activates_at), due] {
            assert!(row.contains(&shown), "{alg:?}: {shown} not in {row}");
        }
    }
    let interval = interval.map_or("Manual only".into(), |_| "Every 30 days".to_owned());
    assert!(page.body.contains(&interval), "{}", page.body);
}

server_test!(signing_keys_rotated_by_hand_say_so, |server| {
    assert_schedule_shown(&server, None).await;
});

server_test!(
    signing_keys_show_when_the_schedule_rotates_them,
    configured(|settings| {
        settings.key_rotation_interval = Some(std::time::Duration::from_secs(30 * 86_400));
    }),
    |server| {
        assert_schedule_shown(&server, Some(30 * 86_400)).await;
    }
);

server_test!(a_record_named_new_opens, |server| {
    server.user("mia", &["mi_admin"]).await;
    server.user("new", &[]).await;
    let mut mia = signed_in(&server, "mia").await;
    let user = mia.get(&server.url("/admin/users/new")).await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert!(
        user.body.contains("href=\"/admin/users/new/edit\""),
        "{}",
        user.body
    );

    let created = fill(
        &mut mia,
        &server,
        "/admin/new/tables",
        "/admin/tables",
        &[("name", "new")],
    )
    .await;
    assert_eq!(created.location().as_deref(), Some("/admin/tables/new"));
    let table = mia.get(&server.url("/admin/tables/new")).await;
    assert_eq!(table.status, 200, "{}", table.body);
    assert!(
        table.body.contains("href=\"/admin/tables/new/delete\""),
        "{}",
        table.body
    );
});

server_test!(an_authorization_code_profile_leads_to_its_token, |server| {
    server.user("olga", &["oauth_admin"]).await;
    let outbound = server.services.outbound.registry();
    for (name, grant, authorization_url) in [
        (
            "crm",
            "authorization_code",
            Some("https://crm.example.org/authorize"),
        ),
        ("backend", "client_credentials", None),
    ] {
        let spec = serde_json::from_value(serde_json::json!({
            "name": name,
            "token_url": format!("https://{name}.example.org/token"),
            "authorization_url": authorization_url,
            "client_id": "gatehouse",
            "client_secret": "s3cret-of-the-provider",
            "grant": grant,
            "issuer": format!("https://{name}.example.org"),
        }))
        .unwrap();
        outbound.save_provider(spec).await.unwrap();
        server
            .services
            .registry
            .save_entry::<gatehouse_core::outbound::OAuthProfile>(
                serde_json::json!({"name": name, "provider": name}),
            )
            .await
            .unwrap();
    }
    let mut olga = signed_in(&server, "olga").await;
    let crm = olga.get(&server.url("/admin/profiles/crm")).await;
    assert_eq!(crm.status, 200, "{}", crm.body);
    assert!(
        crm.body.contains("href=\"/outbound#get-token-crm\""),
        "{}",
        crm.body
    );
    let outbound_page = olga.get(&server.url("/outbound")).await;
    assert!(
        outbound_page.body.contains("id=\"get-token-crm\""),
        "{}",
        outbound_page.body
    );
    let backend = olga.get(&server.url("/admin/profiles/backend")).await;
    assert_eq!(backend.status, 200, "{}", backend.body);
    assert!(
        !backend.body.contains("Get OAuth token"),
        "{}",
        backend.body
    );
    for page in [&crm, &backend] {
        assert!(!page.body.contains("s3cret-of-the-provider"));
    }
});

server_test!(an_oauth_provider_is_created_edited_and_deleted, |server| {
    use gatehouse_core::outbound::OAuthProfile;
    const SECRET: &str = "provider-secret-never-shown";
    server.user("mia", &["mi_admin"]).await;
    server.user("olga", &["oauth_admin"]).await;
    let mut mia = signed_in(&server, "mia").await;
    let new = mia.get(&server.url("/admin/new/providers")).await;
    assert_eq!(new.status, 200, "{}", new.body);
    assert_strict_headers(&new, "/admin/new/providers");
    let mut fields = form_fields(&new, "/admin/providers");
    set(&mut fields, "name", "crm");
    set(&mut fields, "token_url", "ftp://crm.example.org/token");
    set(&mut fields, "client_id", "gatehouse");
    set(&mut fields, "client_secret", SECRET);
    let refused = submit(&mut mia, &server, "/admin/providers", &fields).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("value=\"ftp://crm.example.org/token\"")
    );
    assert!(!refused.body.contains(SECRET));
    assert!(
        server
            .services
            .outbound
            .registry()
            .list_providers()
            .await
            .unwrap()
            .is_empty()
    );

    set(&mut fields, "token_url", "https://crm.example.org/token");
    let created = submit(&mut mia, &server, "/admin/providers", &fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(created.location().as_deref(), Some("/admin/providers/crm"));
    let page = mia.get(&server.url("/admin/providers/crm")).await;
    assert!(
        page.body.contains("OAuth provider crm created."),
        "{}",
        page.body
    );
    let stored = server
        .services
        .outbound
        .registry()
        .get_provider("crm")
        .await
        .unwrap();
    let sealed = stored.client_secret_sealed.clone().expect("a secret");
    // The name is taken, for another new provider's form (the same form sent again creates
    // nothing at all).
    let other = mia.get(&server.url("/admin/new/providers")).await;
    set(&mut fields, "ticket", &other.field("ticket"));
    let again = submit(&mut mia, &server, "/admin/providers", &fields).await;
    assert_eq!(again.status, 422, "{}", again.body);

    // Edited: a blank secret keeps the stored one.
    let mut fields = form_fields(&page, "/admin/providers/crm");
    assert_eq!(
        fields
            .iter()
            .find(|(name, _)| name == "client_secret")
            .map(|(_, v)| v.as_str()),
        Some("")
    );
    set(&mut fields, "client_id", "gatehouse-2");
    let saved = submit(&mut mia, &server, "/admin/providers/crm", &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let stored = server
        .services
        .outbound
        .registry()
        .get_provider("crm")
        .await
        .unwrap();
    assert_eq!(stored.client_id, "gatehouse-2");
    assert_eq!(stored.client_secret_sealed, Some(sealed));

    // Listed and found; no page shows the secret.
    let list = mia.get(&server.url("/admin/providers?q=CRM")).await;
    assert!(
        list.body.contains("href=\"/admin/providers/crm\""),
        "{}",
        list.body
    );
    for path in [
        "/admin/providers",
        "/admin/providers/crm",
        "/admin/providers/crm/delete",
    ] {
        let page = mia.get(&server.url(path)).await;
        assert_eq!(page.status, 200, "{path}");
        assert_strict_headers(&page, path);
        assert!(!page.body.contains(SECRET), "{path}");
    }

    // oauth_admin reads the pages and may change nothing, whatever the form.
    let mut olga = signed_in(&server, "olga").await;
    assert_read_only(&mut olga, &server, "/admin/providers/crm").await;

    // A provider a profile names is kept, and the page says why.
    let entries = &server.services.registry;
    entries
        .save_entry::<OAuthProfile>(serde_json::json!({"name": "crm-profile", "provider": "crm"}))
        .await
        .unwrap();
    let kept = confirm(&mut mia, &server, "/admin/providers/crm/delete").await;
    assert_eq!(kept.location().as_deref(), Some("/admin/providers/crm"));
    let page = mia.get(&server.url("/admin/providers/crm")).await;
    assert!(page.body.contains("crm-profile"), "{}", page.body);
    entries
        .delete_entry::<OAuthProfile>("crm-profile")
        .await
        .unwrap();
    let deleted = submit(&mut mia, &server, "/admin/providers/crm/delete", &fields).await;
    assert_eq!(deleted.location().as_deref(), Some("/admin/providers"));
    assert_eq!(
        mia.get(&server.url("/admin/providers/crm")).await.status,
        404
    );
});

server_test!(a_jwt_provider_is_created_edited_and_deleted, |server| {
    server.user("olga", &["oauth_admin"]).await;
    server.user("mia", &["mi_admin"]).await;
    let mut olga = signed_in(&server, "olga").await;
    let new = olga.get(&server.url("/admin/new/jwt-providers")).await;
    assert_eq!(new.status, 200, "{}", new.body);
    let mut fields = form_fields(&new, "/admin/jwt-providers");
    set(&mut fields, "name", "partner");
    set(&mut fields, "issuer", "https://idp.example.org");
    set(&mut fields, "jwks_url", "https://idp.example.org/jwks");
    set(&mut fields, "static_key", "not a key either");
    let refused = submit(&mut olga, &server, "/admin/jwt-providers", &fields).await;
    assert_refused_at(&refused, "jwks_url");
    set(&mut fields, "static_key", "");
    set(&mut fields, "max_age", "soon");
    let refused = submit(&mut olga, &server, "/admin/jwt-providers", &fields).await;
    assert_refused_at(&refused, "max_age");
    set(&mut fields, "max_age", "120");
    let created = submit(&mut olga, &server, "/admin/jwt-providers", &fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(
        created.location().as_deref(),
        Some("/admin/jwt-providers/partner")
    );
    let page = olga.get(&server.url("/admin/jwt-providers/partner")).await;
    assert!(
        page.body.contains("JWT provider partner created."),
        "{}",
        page.body
    );
    let stored = server
        .services
        .registry
        .get_jwt_provider("partner")
        .await
        .unwrap();
    assert_eq!(stored.max_age, 120);
    assert_eq!(stored.user_claim, "sub");

    // Edited: only what changed.
    let mut fields = form_fields(&page, "/admin/jwt-providers/partner");
    set(&mut fields, "user_claim", "email");
    set(&mut fields, "user_field", "email");
    fields.retain(|(name, _)| name != "algorithms.RS256");
    let saved = submit(&mut olga, &server, "/admin/jwt-providers/partner", &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let stored = server
        .services
        .registry
        .get_jwt_provider("partner")
        .await
        .unwrap();
    assert_eq!(stored.user_claim, "email");
    assert_eq!(stored.user_field.as_str(), "email");
    assert_eq!(stored.algorithms.len(), 1, "{:?}", stored.algorithms);
    assert_eq!(stored.max_age, 120);

    let list = olga
        .get(&server.url("/admin/jwt-providers?q=IDP.example"))
        .await;
    assert!(
        list.body.contains("href=\"/admin/jwt-providers/partner\""),
        "{}",
        list.body
    );

    // mi_admin reads the pages and may change nothing, whatever the form.
    let mut mia = signed_in(&server, "mia").await;
    assert_read_only(&mut mia, &server, "/admin/jwt-providers/partner").await;

    let deleted = confirm(&mut olga, &server, "/admin/jwt-providers/partner/delete").await;
    assert_eq!(deleted.location().as_deref(), Some("/admin/jwt-providers"));
    assert_eq!(
        olga.get(&server.url("/admin/jwt-providers/partner"))
            .await
            .status,
        404
    );
});

server_test!(who_may_call_a_path_is_answered_by_the_rules, |server| {
    use gatehouse_core::access::ScopeRule;
    use gatehouse_core::gateway::Route;
    use serde_json::json;

    server.user("mia", &["mi_admin"]).await;
    server.register_scope("inventory_read").await;
    let registry = &server.services.registry;
    registry
        .create_entry::<ScopeRule>(
            json!({"name": "inventory-read", "methods": ["GET"],
                   "path": "/api/x/inventory/**", "scopes": ["inventory_read"]}),
            false,
        )
        .await
        .unwrap();
    registry
        .create_entry::<Route>(
            json!({"name": "inventory", "prefix": "/api/x/inventory",
                   "upstream": "http://127.0.0.1:9/v1", "timeout_seconds": 5,
                   "audience": "https://inventory.example",
                   "exchange": {"client_id": "gateway-app",
                                "audience": "https://inventory.example"}}),
            false,
        )
        .await
        .unwrap();
    let mut mia = signed_in(&server, "mia").await;
    let tools = mia.get(&server.url("/admin/tools")).await;
    assert_eq!(tools.status, 200, "{}", tools.body);
    assert!(tools.body.contains("href=\"/admin/tools/access\""));
    let ask = |method: &str, path: &str| {
        let query = [("method", method), ("path", path)];
        let url = reqwest::Url::parse_with_params(&server.url("/admin/tools/access"), query);
        url.unwrap().to_string()
    };

    // The rule, its scopes, the route with its upstream URL for this very path and its
    // exchange; the method is read in any case, the path as the server reads it.
    let page = mia.get(&ask("get", "/api/x/%69nventory/items/a%20b")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_strict_headers(&page, "/admin/tools/access");
    for shown in [
        "id=\"rule\"><a href=\"/admin/scope-rules/inventory-read\">inventory-read</a>",
        "id=\"scopes\"><code>inventory_read</code>; <code>useraccount</code> does as well",
        "id=\"audience\"><code>https://inventory.example</code>",
        "id=\"route\"><a href=\"/admin/routes/inventory\">inventory</a>",
        "<code>http://127.0.0.1:9/v1/items/a%20b</code>, answering within 5 s",
        "exchanged by <a href=\"/admin/applications/gateway-app\">gateway-app</a>",
        "the caller's scope, within what that application may have",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }

    // Another method: no rule covers it, so the default decides; the route is the same.
    let page = mia.get(&ask("DELETE", "/api/x/inventory/items/1")).await;
    assert!(
        page.body
            .contains("No rule covers it: the default applies.")
    );
    assert!(
        page.body
            .contains("id=\"scopes\"><code>useraccount</code></dd>")
    );
    assert!(page.body.contains("href=\"/admin/routes/inventory\""));

    // Gatehouse's own API: the issuer is the audience, no route.
    let page = mia.get(&ask("GET", "/api/now/table/incident")).await;
    assert!(
        page.body
            .contains(&format!("id=\"audience\"><code>{}</code>", server.base))
    );
    assert!(
        page.body
            .contains("id=\"route\">None: Gatehouse serves the path")
    );

    // A path the server refuses before any rule runs, and a method no request can have.
    let page = mia.get(&ask("GET", "/api/x/inventory/%2e%2e/admin")).await;
    assert!(page.body.contains("id=\"path-error\""), "{}", page.body);
    assert!(page.body.contains("refuses this path before any rule runs"));
    assert!(!page.body.contains("id=\"answer\""));
    let page = mia.get(&ask("GE T", "/api/x/inventory")).await;
    assert!(
        page.body.contains("must be an HTTP method"),
        "{}",
        page.body
    );
});

/// The report on `token` from the token tool.
async fn inspect(browser: &mut Browser, server: &TestServer, csrf: &str, token: String) -> Page {
    let form = [("csrf", csrf), ("token", token.as_str())];
    browser.post(&server.url("/admin/tools/token"), &form).await
}

/// The checks a token report on `page` shows failed, by label.
fn failed_checks(page: &Page) -> Vec<String> {
    let Some(start) = page.body.find("<table id=\"checks\">") else {
        return Vec::new();
    };
    let table = &page.body[start..start + page.body[start..].find("</table>").unwrap()];
    table
        .split("<tr>")
        .filter(|row| row.contains("class=\"bad\">failed"))
        .map(|row| {
            let cell = &row[row.find("<td>").unwrap() + 4..];
            cell[..cell.find("</td>").unwrap()].to_owned()
        })
        .collect()
}

server_test!(why_a_token_is_refused_is_told_check_by_check, |server| {
    use crate::federation::{OKTA, api_provider, api_token};
    use gatehouse_core::client::TokenFormat;
    use gatehouse_core::federation::JwtProviderChanges;

    server.user("olga", &["oauth_admin"]).await;
    server.user("carol", &["oauth_admin"]).await;
    let mut olga = signed_in(&server, "olga").await;
    let form = olga.get(&server.url("/admin/tools/token")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form_csrf(&form, "/admin/tools/token");
    // A valid JWT: whose it is, every check passed, and the token nowhere on the page.
    let jwt_app = server
        .app(TokenFormat::Jwt, &["inventory_read"], None)
        .await;
    let jwt = server.token(&jwt_app, None).await;
    let page = inspect(&mut olga, &server, &csrf, jwt.clone()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_strict_headers(&page, "/admin/tools/token");
    assert!(
        page.body.contains("id=\"verdict\">Valid</span>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("a JWT access token of this server"));
    assert!(
        page.body
            .contains(&format!("<dd>{}</dd>", jwt_app.client_id))
    );
    assert!(page.body.contains("<dd>inventory_read</dd>"));
    assert!(failed_checks(&page).is_empty());
    assert!(!page.body.contains(&jwt));
    // Pasted with its scheme, it is the same token.
    let page = inspect(&mut olga, &server, &csrf, format!("Bearer {jwt}")).await;
    assert!(page.body.contains("id=\"verdict\">Valid</span>"));

    // Its signature altered: refused for that, its claims still shown as it states them.
    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    let page = inspect(&mut olga, &server, &csrf, forged.clone()).await;
    assert!(page.body.contains("id=\"verdict\">Refused</span>"));
    assert_eq!(failed_checks(&page), ["Signature"], "{}", page.body);
    assert!(page.body.contains("its signature does not verify"));
    assert!(!page.body.contains(&forged));

    // Expired, and its application deactivated since: both failures, not only the first.
    let short = server
        .app_with(gatehouse_core::registry::AppChanges {
            name: Some("short-lived".into()),
            grant_types: Some(vec![gatehouse_core::client::GrantType::ClientCredentials]),
            allowed_scopes: Some(vec!["inventory_read".into()]),
            access_token_lifespan: Some(1),
            token_format: Some(TokenFormat::Jwt),
            ..Default::default()
        })
        .await;
    let expiring = server.token(&short, None).await;
    server
        .update_app(
            &short.client_id,
            gatehouse_core::registry::AppChanges {
                active: Some(false),
                ..Default::default()
            },
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let page = inspect(&mut olga, &server, &csrf, expiring).await;
    assert_eq!(
        failed_checks(&page),
        ["Expiry", "Application"],
        "{}",
        page.body
    );
    assert!(page.body.contains("2 checks failed"));

    // A revoked opaque token, and one never issued.
    let opaque_app = server
        .app(TokenFormat::Opaque, &["inventory_read"], None)
        .await;
    let opaque = server.token(&opaque_app, None).await;
    let (status, _, _) = crate::harness::post_form(
        &server,
        "/oauth/revoke",
        Some((&opaque_app.client_id, &opaque_app.secret)),
        &[("token", &opaque)],
    )
    .await;
    assert_eq!(status, 200);
    let page = inspect(&mut olga, &server, &csrf, opaque.clone()).await;
    assert_eq!(failed_checks(&page), ["Revocation"], "{}", page.body);
    assert!(page.body.contains("an opaque access token of this server"));
    assert!(!page.body.contains(&opaque));
    let page = inspect(&mut olga, &server, &csrf, "gh_at_never-issued".into()).await;
    assert_eq!(failed_checks(&page), ["Known token"], "{}", page.body);
    let page = inspect(&mut olga, &server, &csrf, "not a token at all".into()).await;
    assert_eq!(failed_checks(&page), ["Known token"], "{}", page.body);

    // A JWT provider's token: good while the provider is active, refused once it is disabled,
    // for that reason alone.
    let key = api_provider(&server, "okta", JwtProviderChanges::default()).await;
    let theirs = api_token(&key, Some("at+jwt"), serde_json::json!({}));
    let page = inspect(&mut olga, &server, &csrf, theirs.clone()).await;
    assert!(
        page.body.contains("id=\"verdict\">Valid</span>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<dd>okta:okta-app</dd>"));
    assert!(page.body.contains(&format!("<dd>{OKTA}</dd>")));
    server
        .services
        .registry
        .update_jwt_provider(
            "okta",
            JwtProviderChanges {
                active: Some(false),
                ..JwtProviderChanges::default()
            },
        )
        .await
        .unwrap();
    let page = inspect(&mut olga, &server, &csrf, theirs).await;
    assert_eq!(failed_checks(&page), ["JWT provider"], "{}", page.body);
    assert!(page.body.contains("is disabled"));
    // Expired and for another audience: each reported.
    let stale = api_token(
        &key,
        Some("at+jwt"),
        serde_json::json!({"exp": crate::federation::now() - 120, "aud": "api://other"}),
    );
    let page = inspect(&mut olga, &server, &csrf, stale).await;
    assert_eq!(
        failed_checks(&page),
        ["JWT provider", "Audience", "Expiry"],
        "{}",
        page.body
    );

    // The form is a form: without its CSRF token the token is not looked at.
    let page = olga
        .post(&server.url("/admin/tools/token"), &[("token", "gh_at_x")])
        .await;
    assert_eq!(page.status, 403);
});

/// The report of the alias tool on `alias` and `path`.
async fn test_alias(
    browser: &mut Browser,
    server: &TestServer,
    csrf: &str,
    alias: &str,
    path: &str,
) -> Page {
    let form = [("csrf", csrf), ("alias", alias), ("path", path)];
    browser.post(&server.url("/admin/tools/alias"), &form).await
}

/// The steps an alias test on `page` shows: (step, result).
fn probe_steps(page: &Page) -> Vec<(String, String)> {
    let start = page.body.find("<table id=\"steps\">").expect("steps");
    let table = &page.body[start..start + page.body[start..].find("</table>").unwrap()];
    let tbody = &table[table.find("<tbody>").unwrap()..];
    tbody
        .split("<tr>")
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row
                .split("<td>")
                .skip(1)
                .map(|cell| &cell[..cell.find("</td>").unwrap()])
                .collect();
            let result = cells[1]
                .replace("<strong class=\"ok\">", "")
                .replace("<strong class=\"bad\">", "")
                .replace("</strong>", "");
            (cells[0].to_owned(), result)
        })
        .collect()
}

server_test!(an_alias_is_tested_step_by_step, |server| {
    let provider = provider().await;
    let spec = || provider_spec("crm", provider.server.url("/oauth/token"), &provider.app);
    connect(&server, "crm", spec(), provider.server.url("/api/admin/v1")).await;
    server.user("mia", &["mi_admin"]).await;
    server.user("olga", &["oauth_admin"]).await;

    let mut mia = signed_in(&server, "mia").await;
    let tools = mia.get(&server.url("/admin/tools")).await;
    assert!(tools.body.contains("href=\"/admin/tools/alias\""));
    let form = mia.get(&server.url("/admin/tools/alias")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_strict_headers(&form, "/admin/tools/alias");
    assert!(form.body.contains("<option value=\"crm\""), "{}", form.body);
    let csrf = form_csrf(&form, "/admin/tools/alias");

    // The first test obtains the token from the provider; the API behind the alias answers.
    let page = test_alias(&mut mia, &server, &csrf, "crm", "/whoami").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_strict_headers(&page, "/admin/tools/alias");
    let url = provider.server.url("/api/admin/v1/whoami");
    assert!(
        page.body.contains(&format!(
            "id=\"verdict\">Answered</span>: GET <code>{url}</code>"
        )),
        "{}",
        page.body
    );
    assert_eq!(
        probe_steps(&page),
        [
            ("Token".into(), "newly obtained from the provider".into()),
            ("API".into(), "answered HTTP 200".into()),
        ]
    );
    assert!(page.body.contains("<dt>Status</dt><dd>200</dd>"));
    assert!(
        page.body
            .contains("<dt>Content type</dt><dd>application/json</dd>")
    );
    // The start of the answer, as text: the provider's service user the token acts for.
    let preview = &page.body[page.body.find("id=\"preview\">").expect("preview")..];
    assert!(preview.contains("integration-svc"), "{preview}");
    assert_eq!(
        token_requests(&provider.server, "client_credentials").await,
        1
    );
    // The token is nowhere on the page.
    let registry = server.services.outbound.registry();
    let record = registry
        .find_token("crm", SYSTEM_OWNER)
        .await
        .unwrap()
        .unwrap();
    let token = registry.open_token(&record).unwrap().access_token;
    assert!(!page.body.contains(token.expose()));

    // The second uses the token held in memory: the provider is not asked again.
    let page = test_alias(&mut mia, &server, &csrf, "crm", "whoami").await;
    assert_eq!(
        probe_steps(&page),
        [
            (
                "Token".into(),
                "held in memory since an earlier call".into()
            ),
            ("API".into(), "answered HTTP 200".into()),
        ]
    );
    assert_eq!(
        token_requests(&provider.server, "client_credentials").await,
        1
    );

    // A path that leaves the base URL is refused before anything is sent.
    let page = test_alias(&mut mia, &server, &csrf, "crm", "../../metrics").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"path-error\""), "{}", page.body);
    assert!(
        page.body.contains("leaves the alias&#39; base URL"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("id=\"steps\""));
    // An alias that does not exist.
    let page = test_alias(&mut mia, &server, &csrf, "nope", "/").await;
    assert_eq!(page.status, 404, "{}", page.body);

    // The provider refuses a wrong secret: the token step fails with its error code, and
    // nothing is sent to the API.
    let mut wrong = spec();
    wrong.client_secret = Some(Secret::new("x".repeat(43)));
    registry.save_provider(wrong).await.unwrap();
    let page = test_alias(&mut mia, &server, &csrf, "crm", "/whoami").await;
    assert!(
        page.body.contains("id=\"verdict\">Failed</span>"),
        "{}",
        page.body
    );
    let steps = probe_steps(&page);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0].0, "Token");
    assert!(
        steps[0]
            .1
            .starts_with("failed: the provider refused the token request: invalid_client"),
        "{steps:?}"
    );
    assert!(!page.body.contains("id=\"answer\""));

    // An OAuth administrator may not manage outbound OAuth: no link, and the server refuses
    // the page and a forged form alike.
    let mut olga = signed_in(&server, "olga").await;
    let tools = olga.get(&server.url("/admin/tools")).await;
    assert!(!tools.body.contains("/admin/tools/alias"));
    let page = olga.get(&server.url("/admin/tools/alias")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    let form = olga.get(&server.url("/admin/tools/token")).await;
    let olga_csrf = form_csrf(&form, "/admin/tools/token");
    let page = test_alias(&mut olga, &server, &olga_csrf, "crm", "/whoami").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("mi_admin"), "{}", page.body);
    // Without its CSRF token the form is refused before anything is called.
    let page = mia
        .post(
            &server.url("/admin/tools/alias"),
            &[("alias", "crm"), ("path", "/")],
        )
        .await;
    assert_eq!(page.status, 403);
});

/// The alias tool's token step when the alias' token is `stored` in the database and nothing
/// is held in memory, the provider answering as it is set up for.
async fn token_step_with_stored(server: &TestServer, stored: ObtainedToken) -> String {
    server
        .services
        .outbound
        .registry()
        .store_token(&stored)
        .await
        .unwrap();
    server.user("mia", &["mi_admin"]).await;
    let mut mia = signed_in(server, "mia").await;
    let form = mia.get(&server.url("/admin/tools/alias")).await;
    let csrf = form_csrf(&form, "/admin/tools/alias");
    let page = test_alias(&mut mia, server, &csrf, &stored.profile, "/whoami").await;
    let steps = probe_steps(&page);
    assert_eq!(
        steps[1..],
        [("API".to_owned(), "answered HTTP 200".to_owned())],
        "{}",
        page.body
    );
    steps[0].1.clone()
}

/// Tokens the provider's `/oauth/token` answers `app` with for `form`: access and refresh.
async fn provider_tokens(
    provider: &TestServer,
    app: &TestApp,
    form: &[(&str, &str)],
) -> (Secret, Option<Secret>) {
    let (status, _, body) = post_form(
        provider,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        form,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let secret = |name: &str| body[name].as_str().map(Secret::new);
    (secret("access_token").unwrap(), secret("refresh_token"))
}

server_test!(an_expired_token_is_refreshed_for_the_alias_tool, |server| {
    let provider = provider().await;
    let (app, spec) = password_provider(&provider, "files").await;
    connect(&server, "files", spec, provider.server.url("/api/admin/v1")).await;
    let form = [
        ("grant_type", "password"),
        ("username", "integration-svc"),
        ("password", PASSWORD),
        ("scope", "useraccount"),
    ];
    let (_, refresh_token) = provider_tokens(&provider.server, &app, &form).await;
    // Stored ten minutes ago, expired since.
    let now = SystemClock.now();
    let expired = ObtainedToken {
        profile: "files".into(),
        owner: SYSTEM_OWNER.into(),
        access_token: Secret::new("gh_at_expired"),
        refresh_token: Some(refresh_token.expect("a refresh token")),
        obtained_at: now - 900,
        expires_at: Some(now - 300),
    };
    assert_eq!(
        token_step_with_stored(&server, expired).await,
        "refreshed at the provider"
    );
    assert_eq!(token_requests(&provider.server, "refresh_token").await, 1);
    assert_eq!(token_requests(&provider.server, "password").await, 1);
});

server_test!(
    a_valid_token_is_kept_when_its_renewal_fails_in_the_alias_tool,
    |server| {
        let provider = provider().await;
        let mut spec = provider_spec("crm", provider.server.url("/oauth/token"), &provider.app);
        let form = [("grant_type", "client_credentials")];
        let (access_token, _) = provider_tokens(&provider.server, &provider.app, &form).await;
        // The provider now refuses the client: renewing fails.
        spec.client_secret = Some(Secret::new("x".repeat(43)));
        connect(&server, "crm", spec, provider.server.url("/api/admin/v1")).await;
        // In the last minute of its life: due for renewal, not expired.
        let now = SystemClock.now();
        let ending = ObtainedToken {
            profile: "crm".into(),
            owner: SYSTEM_OWNER.into(),
            access_token,
            refresh_token: None,
            obtained_at: now - 570,
            expires_at: Some(now + 30),
        };
        assert_eq!(
            token_step_with_stored(&server, ending).await,
            "read from the database: its renewal failed, and it has not expired"
        );
        assert_eq!(
            token_requests(&provider.server, "client_credentials").await,
            2
        );
    }
);

server_test!(
    the_dashboard_counts_the_last_hours_token_requests,
    |server| {
        use gatehouse_core::client::TokenFormat;

        server.user("mia", &["mi_admin"]).await;
        let mut mia = signed_in(&server, "mia").await;
        let page = mia.get(&server.url("/admin")).await;
        assert!(
            page.body.contains("id=\"no-token-requests\""),
            "{}",
            page.body
        );

        let app = server
            .app(TokenFormat::Opaque, &["inventory_read"], None)
            .await;
        server.token(&app, None).await;
        server.token(&app, None).await;
        let wrong_secret = Some((app.client_id.as_str(), "not the secret"));
        let form = [("grant_type", "client_credentials")];
        let (status, _, _) =
            crate::harness::post_form(&server, "/oauth/token", wrong_secret, &form).await;
        assert_eq!(status, 401);
        let basic = Some((app.client_id.as_str(), app.secret.as_str()));
        let (status, _, _) = crate::harness::post_form(
            &server,
            "/oauth/token",
            basic,
            &[("grant_type", "urn:example:made-up")],
        )
        .await;
        assert_eq!(status, 400);

        let page = mia.get(&server.url("/admin")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for row in [
            "<tr id=\"grant-client_credentials\"><td>client_credentials</td><td>3</td><td>1</td></tr>",
            "<tr id=\"grant-unknown\"><td>unknown</td><td>1</td><td>1</td></tr>",
        ] {
            assert!(page.body.contains(row), "{row}: {}", page.body);
        }
        assert!(!page.body.contains("id=\"grant-password\""));
    }
);

/// An application for people's password grant, with refresh tokens and opaque access tokens:
/// what a user's or an application's token listing has to show.
pub(crate) async fn password_app(server: &TestServer) -> TestApp {
    use gatehouse_core::client::{GrantType, TokenFormat};
    server
        .app_with(gatehouse_core::registry::AppChanges {
            name: Some("Notes".into()),
            grant_types: Some(vec![GrantType::Password, GrantType::RefreshToken]),
            allowed_scopes: Some(vec!["useraccount".into()]),
            token_format: Some(TokenFormat::Opaque),
            ..gatehouse_core::registry::AppChanges::default()
        })
        .await
}

/// Tokens from the password grant for `user`: (access token, refresh token).
pub(crate) async fn password_tokens(
    server: &TestServer,
    app: &TestApp,
    user: &str,
) -> (String, String) {
    let (status, _, body) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn introspected_active(server: &TestServer, app: &TestApp, token: &str) -> bool {
    introspect(server, app, token).await["active"] == true
}

pub(crate) async fn refreshes(server: &TestServer, app: &TestApp, token: &str) -> bool {
    let (status, _, _) = post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    status == 200
}

/// Confirms the revocation the page at `path` asks about: the confirmation's form, posted.
async fn confirmed(browser: &mut Browser, server: &TestServer, path: &str) -> Page {
    let page = browser.get(&server.url(path)).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    assert_strict_headers(&page, path);
    let fields = form_fields(&page, path);
    let done = submit(browser, server, path, &fields).await;
    assert_eq!(done.status, 303, "{path}: {}", done.body);
    done
}

server_test!(tokens_are_listed_and_revoked, |server| {
    server.user("ada", &["admin"]).await;
    server.user("olga", &["oauth_admin"]).await;
    server.user("mia", &["mi_admin"]).await;
    server.user("tess", &[]).await;
    let app = password_app(&server).await;
    let (first, first_refresh) = password_tokens(&server, &app, "tess").await;
    let (second, second_refresh) = password_tokens(&server, &app, "tess").await;
    // tess signs in (the console then refuses her): a login session.
    signed_in(&server, "tess").await;

    // The user's tokens and session are listed, with no hash or token on the page.
    let mut ada = signed_in(&server, "ada").await;
    let user_page = ada.get(&server.url("/admin/users/tess")).await;
    assert!(user_page.body.contains("href=\"/admin/users/tess/tokens\""));
    let page = ada.get(&server.url("/admin/users/tess/tokens")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_strict_headers(&page, "tokens");
    assert!(
        page.body.contains("id=\"result-count\">5 in service"),
        "{}",
        page.body
    );
    assert!(page.body.contains("login session"));
    assert!(page.body.contains(&format!(">{}</a>", app.client_id)));
    for token in [&first, &second, &first_refresh, &second_refresh] {
        assert!(!page.body.contains(token.as_str()));
    }

    // One revoked: introspection says so, the other stays active.
    let handle = format!("access:{}", server.services.tokens.access_token_key(&first));
    let revoke = format!(
        "/admin/users/tess/tokens/revoke?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("handle", &handle)
            .finish()
    );
    assert!(page.body.contains(&revoke.replace('&', "&amp;")));
    let done = confirmed(&mut ada, &server, &revoke).await;
    assert_eq!(done.location().as_deref(), Some("/admin/users/tess/tokens"));
    let page = ada.get(&server.url("/admin/users/tess/tokens")).await;
    assert!(
        page.body.contains("The access token was revoked."),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"result-count\">4 in service"));
    assert!(!introspected_active(&server, &app, &first).await);
    assert!(introspected_active(&server, &app, &second).await);

    // Those who may not change the user see nothing of their tokens and revoke nothing, even
    // with a valid CSRF token: mi_admin manages no users, oauth_admin no administrators.
    let mut mia = signed_in(&server, "mia").await;
    let user_page = mia.get(&server.url("/admin/users/tess")).await;
    let csrf = form_csrf(&user_page, "/admin/users/tess/lock");
    for path in [
        "/admin/users/tess/tokens",
        "/admin/users/tess/tokens/revoke-all",
        revoke.as_str(),
        &format!("/admin/applications/{}/tokens", app.client_id),
    ] {
        assert_eq!(mia.get(&server.url(path)).await.status, 403, "{path}");
    }
    for path in [
        "/admin/users/tess/tokens/revoke-all".to_owned(),
        format!(
            "/admin/users/tess/tokens/revoke?handle=access:{}",
            server.services.tokens.access_token_key(&second)
        ),
        format!("/admin/applications/{}/tokens/revoke-all", app.client_id),
    ] {
        let page = mia.post(&server.url(&path), &[("csrf", &csrf)]).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
    }
    let mut olga = signed_in(&server, "olga").await;
    assert_eq!(
        olga.get(&server.url("/admin/users/ada/tokens"))
            .await
            .status,
        403
    );
    assert!(introspected_active(&server, &app, &second).await);
    assert!(refreshes(&server, &app, &second_refresh).await);

    // Everything of the user: tokens and sessions end.
    let tess = server.services.registry.get_user("tess").await.unwrap();
    let now = server.services.tokens.clock().now();
    assert!(
        !server
            .services
            .store
            .list_user_sessions(&tess.id, now)
            .await
            .unwrap()
            .is_empty()
    );
    confirmed(&mut ada, &server, "/admin/users/tess/tokens/revoke-all").await;
    let page = ada.get(&server.url("/admin/users/tess/tokens")).await;
    assert!(
        page.body.contains("Everything of tess was revoked."),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"result-count\">0 in service"));
    assert!(!introspected_active(&server, &app, &second).await);
    assert!(!refreshes(&server, &app, &first_refresh).await);
    assert!(
        server
            .services
            .store
            .list_user_sessions(&tess.id, now)
            .await
            .unwrap()
            .is_empty()
    );

    // An application's: listed with their users, and revoked all at once.
    let (third, third_refresh) = password_tokens(&server, &app, "tess").await;
    let app_tokens = format!("/admin/applications/{}/tokens", app.client_id);
    let page = olga.get(&server.url(&app_tokens)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"result-count\">2 in service"));
    assert!(page.body.contains("href=\"/admin/users/tess\">tess</a>"));
    confirmed(&mut olga, &server, &format!("{app_tokens}/revoke-all")).await;
    let page = olga.get(&server.url(&app_tokens)).await;
    assert!(page.body.contains("id=\"result-count\">0 in service"));
    assert!(!introspected_active(&server, &app, &third).await);
    assert!(!refreshes(&server, &app, &third_refresh).await);
    let events = server
        .services
        .registry
        .audit_events(gatehouse_core::store::AuditQuery {
            kind: Some("token".into()),
            actor: Some("olga".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].subject, app.client_id);
});

async fn applications_named(server: &TestServer, name: &str) -> usize {
    server
        .services
        .registry
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .filter(|app| app.name == name)
        .count()
}

server_test!(a_create_form_sent_twice_creates_once, |server| {
    server.user("ada", &["admin"]).await;
    let mut ada = signed_in(&server, "ada").await;
    // The same form twice, as a double click or a reload would send it: one application.
    let new = ada.get(&server.url("/admin/new/applications")).await;
    let mut fields = form_fields(&new, "/admin/applications");
    assert!(fields.iter().any(|(name, _)| name == "ticket"));
    set(&mut fields, "name", "Sent twice");
    let first = submit(&mut ada, &server, "/admin/applications", &fields).await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert!(
        first
            .location()
            .unwrap()
            .starts_with("/admin/applications/")
    );
    let second = submit(&mut ada, &server, "/admin/applications", &fields).await;
    assert_eq!(second.status, 303, "{}", second.body);
    assert_eq!(second.location().as_deref(), Some("/admin/applications"));
    let list = ada.get(&server.url("/admin/applications")).await;
    assert!(
        list.body.contains("This form was sent already"),
        "{}",
        list.body
    );
    assert_eq!(applications_named(&server, "Sent twice").await, 1);

    // A refused form is shown again with a new ticket; corrected, it creates the application.
    let refused = fill(
        &mut ada,
        &server,
        "/admin/new/applications",
        "/admin/applications",
        &[("name", "Refused once"), ("access_token_lifespan", "soon")],
    )
    .await;
    assert_eq!(refused.status, 422);
    let mut again = form_fields(&refused, "/admin/applications");
    set(&mut again, "access_token_lifespan", "600");
    let created = submit(&mut ada, &server, "/admin/applications", &again).await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(applications_named(&server, "Refused once").await, 1);
});
