//! The `gatehouse` command line, run as a script would run it, against the database of a live
//! server.

use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{TestApp, TestServer, server_test};

/// Runs `gatehouse ARGS` on the server's data directory and database, off the async threads so
/// the in-process server keeps serving meanwhile.
pub async fn gatehouse(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .arg("--database")
        .arg(&server.settings.database)
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_MASTER_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::task::spawn_blocking(move || command.output().expect("run gatehouse"))
        .await
        .unwrap()
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

server_test!(app_commands_manage_what_the_server_serves, |server| {
    let created = json(
        &gatehouse(
            &server,
            &[
                "app",
                "create",
                "--name",
                "billing",
                "--grant",
                "client_credentials",
                "--scope",
                "useraccount",
                "--token-format",
                "jwt",
                "--json",
            ],
            &[],
        )
        .await,
    );
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["token_format"], "jwt");
    // The server issues tokens for what the CLI registered.
    let token = server
        .token(
            &TestApp {
                client_id: client_id.clone(),
                secret: secret.clone(),
            },
            None,
        )
        .await;
    assert_eq!(token.matches('.').count(), 2);

    let list = json(&gatehouse(&server, &["app", "list", "--json"], &[]).await);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|a| a["client_id"] == client_id.as_str())
    );
    let shown = json(&gatehouse(&server, &["app", "show", &client_id, "--json"], &[]).await);
    assert!(shown.get("client_secret").is_none());
    let updated = json(
        &gatehouse(
            &server,
            &[
                "app",
                "update",
                &client_id,
                "--token-format",
                "opaque",
                "--scope",
                "a",
                "--scope",
                "b",
                "--json",
            ],
            &[],
        )
        .await,
    );
    assert_eq!(
        (
            updated["token_format"].as_str(),
            updated["allowed_scopes"].clone()
        ),
        (Some("opaque"), serde_json::json!(["a", "b"]))
    );
    // Defaults that followed the allowed scopes keep following them.
    assert_eq!(updated["default_scopes"], serde_json::json!(["a", "b"]));

    let chosen = "an-administrator-chosen-secret-of-40-chars";
    let rotated = json(
        &gatehouse(
            &server,
            &[
                "app",
                "rotate-secret",
                &client_id,
                "--secret-env",
                "NEW_SECRET",
                "--json",
            ],
            &[("NEW_SECRET", chosen)],
        )
        .await,
    );
    assert_eq!(rotated["client_secret"], chosen);

    let deleted = gatehouse(&server, &["app", "delete", &client_id], &[]).await;
    assert!(deleted.status.success());
    let missing = gatehouse(&server, &["app", "show", &client_id], &[]).await;
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
});

server_test!(
    admin_supplied_secrets_and_passwords_follow_the_rules,
    |server| {
        let short = gatehouse(
            &server,
            &["app", "create", "--name", "x", "--secret-env", "S"],
            &[("S", "too-short")],
        )
        .await;
        assert!(!short.status.success());
        assert!(String::from_utf8_lossy(&short.stderr).contains("at least 32 characters"));

        let user = json(
            &gatehouse(
                &server,
                &[
                    "user",
                    "create",
                    "svc",
                    "--display-name",
                    "Service",
                    "--role",
                    "oauth_admin",
                    "--email",
                    "svc@example.com",
                    "--password-env",
                    "PW",
                    "--json",
                ],
                &[("PW", "a long enough password")],
            )
            .await,
        );
        assert_eq!(
            (user["has_password"].as_bool(), user["roles"].clone()),
            (Some(true), serde_json::json!(["oauth_admin"]))
        );
        let users = json(&gatehouse(&server, &["user", "list", "--json"], &[]).await);
        assert!(
            users
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["user_name"] == "svc")
        );
        let updated = json(
            &gatehouse(
                &server,
                &["user", "update", "svc", "--active", "false", "--json"],
                &[],
            )
            .await,
        );
        assert_eq!(updated["active"], false);
        assert!(
            gatehouse(&server, &["user", "delete", "svc"], &[])
                .await
                .status
                .success()
        );
    }
);

server_test!(help_and_usage_errors, |server| {
    for args in [
        &["--help"][..],
        &["app", "--help"],
        &["app", "create", "--help"],
        &["user", "--help"],
        &["keys", "rotate", "--help"],
        &["apply", "--help"],
        &["serve", "--help"],
    ] {
        let output = gatehouse(&server, args, &[]).await;
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"));
    }
    let output = gatehouse(&server, &["app", "frobnicate"], &[]).await;
    assert!(!output.status.success());
    let keys = json(&gatehouse(&server, &["keys", "list", "--json"], &[]).await);
    assert_eq!(keys[0]["state"], "signing");
    let rotated = json(
        &gatehouse(
            &server,
            &["keys", "rotate", "--alg", "EdDSA", "--json"],
            &[],
        )
        .await,
    );
    assert_eq!(rotated["signs_in_seconds"], 300);
    let keys = json(&gatehouse(&server, &["keys", "list", "--json"], &[]).await);
    assert_eq!(keys[1]["state"], "next");
});
