//! The console's forms of the configuration entries — scope rules, gateway routes, tables,
//! OAuth profiles and connection aliases — over real HTTP, each kind through the same steps:
//! the registry's refusals shown next to the field they concern, created once however often
//! the form is sent, edited field by field, refused to a role that may not manage it whatever
//! it sends, and deleted.

use crate::console::{form_fields, set, signed_in, submit};
use crate::harness::{TestServer, server_test};
use crate::people::{Browser, Page};

/// One kind of entry as the test fills its forms.
struct Kind {
    section: &'static str,
    /// Who may manage it, and who may only look.
    allowed: &'static str,
    refused: &'static str,
    name: &'static str,
    /// The fields of a valid new one.
    valid: &'static [(&'static str, &'static str)],
    /// A field set to a value the registry (or the form) refuses, and what it says then.
    invalid: &'static [(&'static str, &'static str, &'static str)],
    /// A change, and the field's value as the form shows it afterwards.
    edit: (&'static str, &'static str, &'static str),
}

const KINDS: [Kind; 5] = [
    Kind {
        section: "scope-rules",
        allowed: "olga",
        refused: "mia",
        name: "stock-read",
        valid: &[
            ("methods", "GET HEAD"),
            ("path", "/api/x/stock/**"),
            ("scopes", "inventory.read"),
        ],
        invalid: &[
            ("methods", "get", "must be an upper-case HTTP method"),
            ("scopes", "nowhere.read", "does not exist"),
            ("path", "api/x", "must start with /"),
        ],
        edit: ("path", "/api/x/stock/*", "/api/x/stock/*"),
    },
    Kind {
        section: "routes",
        allowed: "olga",
        refused: "mia",
        name: "stock",
        valid: &[
            ("prefix", "/api/stock"),
            ("upstream", "https://stock.example.org"),
            ("timeout_seconds", "10"),
            (
                "exchange",
                "stock-gateway https://stock.example.org stock.read stock.write",
            ),
        ],
        invalid: &[
            ("upstream", "ftp://stock.example.org", "must use https"),
            (
                "exchange",
                "stock-gateway",
                "needs the client_id and the audience",
            ),
            ("timeout_seconds", "soon", "must be a whole number"),
            (
                "timeout_seconds",
                "90",
                "timeout_seconds must be between 1 and",
            ),
            ("audience", "not a uri", "must be an absolute URI"),
        ],
        edit: ("timeout_seconds", "20", "20"),
    },
    Kind {
        section: "tables",
        allowed: "mia",
        refused: "olga",
        name: "incidents",
        valid: &[("read_roles", "staff"), ("write_roles", "oncall")],
        invalid: &[],
        edit: ("read_roles", "visitors staff", "visitors\nstaff"),
    },
    Kind {
        section: "profiles",
        allowed: "mia",
        refused: "olga",
        name: "crm",
        valid: &[("provider", "crm"), ("scopes", "contacts.read")],
        invalid: &[
            ("provider", "nowhere", "does not exist"),
            (
                "scopes",
                "bad\"scope",
                "is not a valid RFC 6749 scope token",
            ),
        ],
        edit: (
            "scopes",
            "contacts.write contacts.read",
            "contacts.read\ncontacts.write",
        ),
    },
    Kind {
        section: "aliases",
        allowed: "mia",
        refused: "olga",
        name: "crm-api",
        valid: &[
            ("base_url", "https://crm.example.org/api"),
            ("profile", "crm"),
            ("allowed_roles", "sales"),
        ],
        invalid: &[
            ("profile", "nowhere", "does not exist"),
            ("max_retries", "11", "max_retries must be between 0 and 10"),
            ("base_url", "crm.example.org", "is not an absolute URL"),
        ],
        edit: ("allowed_roles", "sales\nsupport", "sales\nsupport"),
    },
];

/// Asserts that `page` refused the form with `message` next to `field`, and nothing at the top.
fn refused_at(page: &Page, field: &str, message: &str) {
    assert_eq!(page.status, 422, "{field}: {}", page.body);
    let marker = format!("id=\"{field}-error\" role=\"alert\">");
    let at = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no message next to {field}: {}", page.body));
    let shown = &page.body[at..at + page.body[at..].find("</p>").unwrap()];
    assert!(shown.contains(message), "{field}: {shown}");
    assert!(!page.body.contains("id=\"form-errors\""), "{}", page.body);
}

/// The value of `field` in the form of `page` with `action`.
fn shown(page: &Page, action: &str, field: &str) -> String {
    form_fields(page, action)
        .into_iter()
        .find(|(name, _)| name == field)
        .unwrap_or_else(|| panic!("no {field} in {}", page.body))
        .1
}

/// Creates an entry of `kind` through its form, after the form was refused for its name and
/// for each of its invalid fields.
async fn create(server: &TestServer, browser: &mut Browser, kind: &Kind) {
    let base = format!("/admin/{}", kind.section);
    let new = browser
        .get(&server.url(&format!("/admin/new/{}", kind.section)))
        .await;
    assert_eq!(new.status, 200, "{}", new.body);
    // The new one's form as shown, then filled in validly.
    let defaults = form_fields(&new, &base);
    let filled = |refused: &Page| {
        // A refused form is shown again with a new ticket.
        let mut fields = form_fields(refused, &base);
        for (field, value) in &defaults {
            if field != "ticket" && field != "csrf" {
                set(&mut fields, field, value);
            }
        }
        set(&mut fields, "name", kind.name);
        for (field, value) in kind.valid {
            set(&mut fields, field, value);
        }
        fields
    };
    let mut fields = filled(&new);
    set(&mut fields, "name", "not a name");
    let mut refused = submit(browser, server, &base, &fields).await;
    refused_at(&refused, "name", "name must be");
    for (field, value, message) in kind.invalid {
        let mut fields = filled(&refused);
        set(&mut fields, field, value);
        refused = submit(browser, server, &base, &fields).await;
        refused_at(&refused, field, message);
        assert_eq!(shown(&refused, &base, field), *value, "{}", refused.body);
    }

    let fields = filled(&refused);
    let created = submit(browser, server, &base, &fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let at = format!("{base}/{}", kind.name);
    assert_eq!(created.location().as_deref(), Some(at.as_str()));
    // The same form again, as a double click or a reload sends it: nothing more is created,
    // and the list says so.
    let again = submit(browser, server, &base, &fields).await;
    assert_eq!(again.status, 303, "{}", again.body);
    assert_eq!(again.location().as_deref(), Some(base.as_str()));
    let list = browser.get(&server.url(&base)).await;
    assert!(
        list.body.contains("This form was sent already"),
        "{}",
        list.body
    );
    assert_eq!(
        list.body.matches(&format!("href=\"{at}\"")).count(),
        1,
        "{}",
        list.body
    );

    let page = browser.get(&server.url(&at)).await;
    for (field, value) in kind.valid {
        let expected = value.split_whitespace().collect::<Vec<_>>();
        let expected = if [
            "methods",
            "scopes",
            "read_roles",
            "write_roles",
            "allowed_roles",
        ]
        .contains(field)
        {
            expected.join("\n")
        } else {
            expected.join(" ")
        };
        assert_eq!(shown(&page, &at, field), expected, "{field}");
    }
}

/// Edits the entry of `kind` through its form: a refused change is shown next to its field,
/// and the saved one changes only that field.
async fn edit(server: &TestServer, browser: &mut Browser, kind: &Kind) {
    let at = format!("/admin/{}/{}", kind.section, kind.name);
    let page = browser.get(&server.url(&at)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let before = form_fields(&page, &at);
    assert!(
        !before
            .iter()
            .any(|(name, _)| name == "name" || name == "ticket")
    );
    if let Some((field, value, message)) = kind.invalid.first() {
        let mut fields = before.clone();
        set(&mut fields, field, value);
        refused_at(&submit(browser, server, &at, &fields).await, field, message);
    }
    let (field, value, expected) = kind.edit;
    let mut fields = before.clone();
    set(&mut fields, field, value);
    let saved = submit(browser, server, &at, &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location().as_deref(), Some(at.as_str()));
    let page = browser.get(&server.url(&at)).await;
    assert!(page.body.contains(" saved."), "{}", page.body);
    let mut after = form_fields(&page, &at);
    assert_eq!(shown(&page, &at, field), expected);
    // Everything else is as it was.
    after.retain(|(name, _)| name != field && name != "csrf");
    let mut before = before;
    before.retain(|(name, _)| name != field && name != "csrf");
    assert_eq!(after, before);
}

/// A role that may look at entries of `kind` but not manage them is refused by the server
/// whatever form it sends.
async fn refused(server: &TestServer, kind: &Kind) {
    let mut browser = signed_in(server, kind.refused).await;
    let base = format!("/admin/{}", kind.section);
    let at = format!("{base}/{}", kind.name);
    let page = browser.get(&server.url(&at)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let fields = form_fields(&page, &at);
    assert_eq!(submit(&mut browser, server, &at, &fields).await.status, 403);

    let new = browser
        .get(&server.url(&format!("/admin/new/{}", kind.section)))
        .await;
    let mut fields = form_fields(&new, &base);
    set(&mut fields, "name", "forged");
    for (field, value) in kind.valid {
        set(&mut fields, field, value);
    }
    assert_eq!(
        submit(&mut browser, server, &base, &fields).await.status,
        403
    );

    let confirm = browser.get(&server.url(&format!("{at}/delete"))).await;
    let fields = form_fields(&confirm, &format!("{at}/delete"));
    let deleted = submit(&mut browser, server, &format!("{at}/delete"), &fields).await;
    assert_eq!(deleted.status, 403);
}

async fn delete(server: &TestServer, browser: &mut Browser, kind: &Kind) {
    let at = format!("/admin/{}/{}", kind.section, kind.name);
    let confirm = browser.get(&server.url(&format!("{at}/delete"))).await;
    let fields = form_fields(&confirm, &format!("{at}/delete"));
    let deleted = submit(browser, server, &format!("{at}/delete"), &fields).await;
    let base = format!("/admin/{}", kind.section);
    assert_eq!(deleted.location().as_deref(), Some(base.as_str()));
    assert_eq!(browser.get(&server.url(&at)).await.status, 404);
}

server_test!(each_kind_of_entry_is_edited_field_by_field, |server| {
    server.user("olga", &["oauth_admin"]).await;
    server.user("mia", &["mi_admin"]).await;
    server.register_scope("inventory.read").await;
    let provider = serde_json::from_value(serde_json::json!({
        "name": "crm",
        "token_url": "https://crm.example.org/token",
        "client_id": "gatehouse",
        "client_secret": "s3cret-of-the-provider",
        "grant": "client_credentials",
    }))
    .unwrap();
    server
        .services
        .outbound
        .registry()
        .save_provider(provider)
        .await
        .unwrap();
    let mut olga = signed_in(&server, "olga").await;
    let mut mia = signed_in(&server, "mia").await;
    for kind in &KINDS {
        let browser = if kind.allowed == "olga" {
            &mut olga
        } else {
            &mut mia
        };
        create(&server, browser, kind).await;
        edit(&server, browser, kind).await;
        refused(&server, kind).await;
    }

    // The route's exchange, read from its one line.
    let route = server
        .services
        .registry
        .get_entry::<gatehouse_core::gateway::Route>("stock")
        .await
        .unwrap();
    let exchange = route.exchange.unwrap();
    assert_eq!(exchange.client_id, "stock-gateway");
    assert_eq!(exchange.audience, "https://stock.example.org");
    assert_eq!(exchange.scope.as_deref(), Some("stock.read stock.write"));
    assert_eq!(route.timeout_seconds, 20);

    // An alias is deleted before the profile it names.
    for kind in KINDS.iter().rev() {
        let browser = if kind.allowed == "olga" {
            &mut olga
        } else {
            &mut mia
        };
        delete(&server, browser, kind).await;
    }
});
