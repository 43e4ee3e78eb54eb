//! The `gatehouse` command line, run as a script would run it, against the database of a live
//! server.

use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{TestApp, TestServer, server_test, uuid_like};

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
    // Only registered scopes may be given; the refusal lists the ones there are.
    let update = [
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
    ];
    let refused = gatehouse(&server, &update, &[]).await;
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("unknown scopes a b") && message.contains("openid"),
        "{message}"
    );
    for scope in ["a", "b"] {
        json(&gatehouse(&server, &["scope", "create", scope, "--json"], &[]).await);
    }
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
    // A scope an application is allowed stays registered.
    let refused = gatehouse(&server, &["scope", "delete", "a"], &[]).await;
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains(&format!("allowed to application {client_id:?}")),
        "{message}"
    );

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
    // The replaced secret has its day of grace, until it is ended early.
    assert!(
        rotated["previous_secret_expires_at"].as_i64().is_some(),
        "{rotated}"
    );
    let ended = json(
        &gatehouse(
            &server,
            &[
                "app",
                "rotate-secret",
                &client_id,
                "--revoke-previous",
                "--json",
            ],
            &[],
        )
        .await,
    );
    assert!(ended.get("previous_secret_expires_at").is_none(), "{ended}");
    assert!(ended.get("client_secret").is_none(), "{ended}");
    let without_grace = json(
        &gatehouse(
            &server,
            &["app", "rotate-secret", &client_id, "--grace", "0", "--json"],
            &[],
        )
        .await,
    );
    assert!(without_grace.get("previous_secret_expires_at").is_none());

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
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .all(|k| k["state"] == "signing")
    );
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
    let eddsa = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "EdDSA")
        .unwrap();
    assert_eq!(eddsa["state"], "next");
});

/// `gatehouse serve` as a newcomer runs it: zero configuration, the admin password printed on
/// the first start only, JSON logs without secrets, and a clean exit on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_process_first_start_logs_and_sigterm() {
    let data_dir =
        std::env::temp_dir().join(format!("gatehouse-serve-{}", crate::harness::uuid_like()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let start = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "json",
                "--log-level",
                "debug",
            ])
            .env("GATEHOUSE_DATA_DIR", &data_dir)
            .env_remove("GATEHOUSE_DATABASE_URL")
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("GATEHOUSE_ADMIN_PASSWORD")
            .env_remove("GATEHOUSE_MASTER_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("start gatehouse serve");
        // The logs are read while the server runs: a pipe nobody reads fills up (64 KiB, less
        // than a debug-level start writes), and the server would block on its next line.
        let mut stderr = child.stderr.take().unwrap();
        let logs = std::thread::spawn(move || {
            let mut logs = Vec::new();
            std::io::Read::read_to_end(&mut stderr, &mut logs).unwrap();
            logs
        });
        (child, logs)
    };
    let http = reqwest::Client::new();
    let wait_ready = || async {
        for _ in 0..300 {
            if http
                .get(format!("{base}/.well-known/openid-configuration"))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the server did not start");
    };
    let stop = |(child, logs): (std::process::Child, std::thread::JoinHandle<Vec<u8>>)| async move {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        output.stderr = logs.join().unwrap();
        output
    };

    let server = start();
    wait_ready().await;
    let discovery: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], base.as_str());
    // A client registered by the CLI next to the running server.
    let created = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "app",
            "create",
            "--name",
            "logs",
            "--grant",
            "client_credentials",
            "--token-format",
            "opaque",
            "--json",
        ])
        .env("GATEHOUSE_DATA_DIR", &data_dir)
        .env_remove("GATEHOUSE_DATABASE_URL")
        .output()
        .unwrap();
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let (client_id, secret) = (
        created["client_id"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap(),
    );
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    let output = stop(server).await;
    assert!(output.status.success(), "exit status {:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let password_line = stderr
        .lines()
        .find(|l| l.contains("shown only this once"))
        .expect("the admin password is printed");
    let password = password_line.rsplit(' ').next().unwrap();
    let log_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!log_lines.is_empty());
    for line in &log_lines {
        serde_json::from_str::<Value>(line).expect("every log line is JSON");
        for secret in [secret, access_token.as_str(), password] {
            assert!(!line.contains(secret), "a secret reached the log: {line}");
        }
    }

    // The second start reuses keys and users and prints no password.
    let server = start();
    wait_ready().await;
    let output = stop(server).await;
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("shown only this once"));
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Runs the binary on its own data directory (no server), as a newcomer would.
async fn gatehouse_in(data_dir: &std::path::Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_MASTER_KEY");
    tokio::task::spawn_blocking(move || command.output().expect("run gatehouse"))
        .await
        .unwrap()
}

#[tokio::test]
async fn commands_say_which_database_they_open_or_create() {
    let data_dir = std::env::temp_dir().join(format!("gatehouse-cli-{}", uuid_like()));
    let database = data_dir.join("gatehouse.db");
    let creating = format!("no database at {}: creating a new one", database.display());
    let first = gatehouse_in(&data_dir, &["app", "list", "--json"]).await;
    assert!(first.status.success(), "{first:?}");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains(&creating),
        "{first:?}"
    );
    let again = gatehouse_in(&data_dir, &["app", "list", "--json"]).await;
    assert!(again.status.success());
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("creating"),
        "{again:?}"
    );
    // A database that cannot be opened is named in the error.
    let unreachable = data_dir.join("missing-folder").join("gatehouse.db");
    let url = format!("sqlite://{}", unreachable.display());
    let failed = gatehouse_in(&data_dir, &["app", "list", "--database", &url]).await;
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot open the database {}",
            unreachable.display()
        )),
        "{stderr}"
    );
    // An unknown grant type lists the known ones.
    let typo = gatehouse_in(
        &data_dir,
        &[
            "app",
            "create",
            "--name",
            "x",
            "--grant",
            "client_credential",
        ],
    )
    .await;
    assert!(!typo.status.success());
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        stderr.contains("expected one of authorization_code, "),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// `gatehouse.example.toml`, as shipped, works both ways: `gatehouse apply` and `serve
/// --config`, each in a data directory of its own (the file's relative SQLite path lands in
/// it, whatever the file's `data_dir` says).
#[tokio::test]
async fn the_example_configuration_applies_and_serves() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../gatehouse.example.toml");
    let secrets = [
        (
            "BILLING_CLIENT_SECRET",
            "the billing secret, over 32 characters long",
        ),
        (
            "CRM_CLIENT_SECRET",
            "the crm secret of the outbound provider",
        ),
    ];
    let run = |args: Vec<String>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .args(&args)
            .env_remove("GATEHOUSE_DATABASE_URL")
            .env_remove("GATEHOUSE_DATA_DIR")
            .env_remove("GATEHOUSE_CONFIG")
            .env_remove("GATEHOUSE_MASTER_KEY")
            .envs(secrets);
        command
    };
    let applied_dir = std::env::temp_dir().join(format!("gatehouse-apply-{}", uuid_like()));
    let dir = applied_dir.display().to_string();
    let applied = run(vec![
        "apply".into(),
        example.into(),
        "--data-dir".into(),
        dir.clone(),
        "--json".into(),
    ])
    .output()
    .unwrap();
    assert!(applied.status.success(), "{applied:?}");
    let changes: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert!(!changes.as_array().unwrap().is_empty(), "{changes}");
    assert!(
        applied_dir.join("gatehouse.db").exists(),
        "the relative path is in the data dir"
    );
    let listed = run(vec![
        "route".into(),
        "list".into(),
        "--data-dir".into(),
        dir,
        "--json".into(),
    ])
    .output()
    .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        !serde_json::from_slice::<Value>(&listed.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );

    let served_dir = std::env::temp_dir().join(format!("gatehouse-config-{}", uuid_like()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = run(vec![
        "serve".into(),
        "--config".into(),
        example.into(),
        "--data-dir".into(),
        served_dir.display().to_string(),
        "--listen".into(),
        listen.clone(),
        "--issuer".into(),
        format!("http://{listen}"),
    ])
    .env("GATEHOUSE_ADMIN_PASSWORD", "an administrator password")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(response) = reqwest::get(format!("http://{listen}/readyz")).await
            && response.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(ready, "serve --config with the example file did not start");
    assert!(served_dir.join("gatehouse.db").exists());
    for dir in [applied_dir, served_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

server_test!(token_commands_list_and_revoke_what_is_held, |server| {
    use crate::console::{password_app, password_tokens};

    server.user("tess", &[]).await;
    let app = password_app(&server).await;
    let (first, _) = password_tokens(&server, &app, "tess").await;
    password_tokens(&server, &app, "tess").await;
    let list = |args: &'static [&'static str]| gatehouse(&server, args, &[]);

    let listed = json(&list(&["user", "tokens", "tess", "list", "--json"]).await);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 4, "{listed}");
    assert!(!listed.to_string().contains(&first));
    let handle = format!("access:{}", server.services.tokens.access_token_key(&first));
    let output = gatehouse(&server, &["user", "tokens", "tess", "revoke", &handle], &[]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("Revoked the access token."));
    let listed = json(&list(&["user", "tokens", "tess", "list", "--json"]).await);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 3, "{listed}");
    // The same handle again names nothing.
    let output = gatehouse(&server, &["user", "tokens", "tess", "revoke", &handle], &[]).await;
    assert!(!output.status.success());

    let app_tokens = ["app", "tokens", app.client_id.as_str()];
    let output = gatehouse(&server, &[&app_tokens[..], &["list"]].concat(), &[]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("KIND"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    let output = gatehouse(&server, &[&app_tokens[..], &["revoke-all"]].concat(), &[]).await;
    assert!(output.status.success(), "{output:?}");
    let listed = json(&list(&["user", "tokens", "tess", "list", "--json"]).await);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 0, "{listed}");

    let output = gatehouse(&server, &["user", "tokens", "nobody", "list"], &[]).await;
    assert!(!output.status.success());
});
