//! The declarative registry file: `gatehouse apply` is idempotent, previews with `--dry-run`,
//! prunes only what it manages, and the same sections in the server's configuration file are
//! applied at start.

use gatehouse_core::manifest::Manifest;
use serde_json::Value;

use crate::cli::gatehouse;
use crate::harness::{Backend, TestApp, TestServer, server_test};

pub async fn apply(
    server: &TestServer,
    file: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> Vec<Value> {
    let path = server.data_dir().join("registry.toml");
    std::fs::write(&path, file).unwrap();
    let mut args = vec!["apply", path.to_str().unwrap(), "--json"];
    args.extend_from_slice(flags);
    let output = gatehouse(server, &args, env).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Value>(&output.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

const SECRET: &str = "billing-secret-with-more-than-32-characters";

const FILE: &str = r#"
[[user]]
user_name = "svc-billing"
roles = ["oauth_admin"]

[[application]]
name = "billing"
client_id = "billing"
client_secret_env = "BILLING_SECRET"
grant_types = ["client_credentials"]
allowed_scopes = ["useraccount"]
token_format = "jwt"
run_as = "svc-billing"

[[application]]
name = "reports"
client_id = "reports"
client_secret = "reports-secret-with-more-than-32-characters"
grant_types = ["client_credentials"]
"#;

server_test!(
    apply_is_idempotent_previews_and_prunes_what_it_manages,
    |server| {
        let env = [("BILLING_SECRET", SECRET)];
        // Dry run: everything would be created, nothing is.
        let planned = apply(&server, FILE, &["--dry-run"], &env).await;
        assert_eq!(planned.len(), 3);
        assert!(planned.iter().all(|c| c["action"] == "create"));
        assert!(server.services.registry.get_app("billing").await.is_err());

        let created = apply(&server, FILE, &[], &env).await;
        assert_eq!(created.len(), 3);
        let token = server
            .token(
                &TestApp {
                    client_id: "billing".into(),
                    secret: SECRET.into(),
                },
                None,
            )
            .await;
        let who: Value = server
            .http
            .get(server.url("/api/admin/v1/whoami"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(who["user_name"], "svc-billing");

        // Idempotent.
        assert!(apply(&server, FILE, &[], &env).await.is_empty());

        // A change by hand is reported and undone.
        server
            .update_app(
                "billing",
                gatehouse_core::registry::AppChanges {
                    access_token_lifespan: Some(5),
                    ..Default::default()
                },
            )
            .await;
        let changes = apply(&server, FILE, &[], &env).await;
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0]["fields"],
            serde_json::json!(["access_token_lifespan"])
        );
        assert_eq!(
            server
                .services
                .registry
                .get_app("billing")
                .await
                .unwrap()
                .access_token_lifespan,
            1800
        );

        // A secret change is detected without the secret ever being stored.
        let rotated = "a-rotated-billing-secret-longer-than-32-chars";
        let changes = apply(&server, FILE, &[], &[("BILLING_SECRET", rotated)]).await;
        assert_eq!(changes[0]["fields"], serde_json::json!(["client_secret"]));

        // Pruning removes managed records left out of the file, never hand-made ones.
        let hand_made = server
            .app(gatehouse_core::client::TokenFormat::Opaque, &[], None)
            .await;
        let without_reports = FILE
            .split("[[application]]\nname = \"reports\"")
            .next()
            .unwrap();
        let planned = apply(&server, without_reports, &["--prune", "--dry-run"], &env).await;
        assert_eq!(planned.len(), 2, "{planned:?}");
        assert!(server.services.registry.get_app("reports").await.is_ok());
        let pruned = apply(&server, without_reports, &["--prune"], &env).await;
        assert!(
            pruned
                .iter()
                .any(|c| c["action"] == "delete" && c["key"] == "reports")
        );
        assert!(server.services.registry.get_app("reports").await.is_err());
        assert!(
            server
                .services
                .registry
                .get_app(&hand_made.client_id)
                .await
                .is_ok()
        );
        assert!(server.services.registry.get_user("admin").await.is_ok());
    }
);

server_test!(a_bad_file_changes_nothing_and_says_why, |server| {
    let path = server.data_dir().join("bad.toml");
    std::fs::write(
        &path,
        "[[application]]\nname = \"x\"\ngrant_type = [\"client_credentials\"]\n",
    )
    .unwrap();
    let output = gatehouse(&server, &["apply", path.to_str().unwrap()], &[]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("grant_type"));
    let output = gatehouse(&server, &["apply", "/nonexistent/registry.toml"], &[]).await;
    assert!(!output.status.success());
    let missing_env =
        "[[application]]\nname = \"x\"\nclient_secret_env = \"UNSET_VARIABLE_FOR_TEST\"\n";
    std::fs::write(&path, missing_env).unwrap();
    let output = gatehouse(&server, &["apply", path.to_str().unwrap()], &[]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("UNSET_VARIABLE_FOR_TEST"));
    assert!(
        server
            .services
            .registry
            .list_apps()
            .await
            .unwrap()
            .is_empty()
    );
});

#[tokio::test]
async fn configuration_file_sections_are_applied_at_start() {
    let manifest: Manifest = toml::from_str(
        r#"
[[application]]
name = "from-config"
client_id = "from-config"
client_secret = "config-file-secret-longer-than-32-chars"
grant_types = ["client_credentials"]
"#,
    )
    .unwrap();
    let Some(server) = TestServer::start_with(Backend::Sqlite, manifest).await else {
        return;
    };
    let app = TestApp {
        client_id: "from-config".into(),
        secret: "config-file-secret-longer-than-32-chars".into(),
    };
    server.token(&app, None).await;
    assert!(
        server
            .services
            .registry
            .get_app("from-config")
            .await
            .unwrap()
            .managed
    );
}
