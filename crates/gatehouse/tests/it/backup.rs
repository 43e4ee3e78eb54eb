//! `gatehouse backup` and `gatehouse restore` on SQLite (PostgreSQL is backed up with its own
//! tools): a backup taken while a server issues tokens as fast as it can, put back on another
//! data directory, serves every token issued before the backup began; a restore is refused
//! while a server runs on the database, and without the master key that opens the backup.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{ServeProcess, gatehouse_command, uuid_like};

/// Runs `gatehouse ARGS` on the SQLite database in `data_dir`, off the async threads.
async fn gatehouse(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = gatehouse_command(data_dir);
    command.args(args).envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output().expect("run gatehouse"))
        .await
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A token and when its response had arrived.
struct Issued {
    at: Instant,
    token: String,
}

/// Requests tokens with `form` one after another until `stop`, counting them in `count`.
async fn issue_until(
    server: Arc<ServeProcess>,
    client: (String, String),
    form: Vec<(&'static str, &'static str)>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicUsize>,
) -> Vec<Issued> {
    let http = reqwest::Client::new();
    let mut issued = Vec::new();
    // Bounded, whatever happens to the stop signal.
    for _ in 0..5_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let response = http
            .post(server.url("/oauth/token"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let at = Instant::now();
        for field in ["access_token", "refresh_token"] {
            if let Some(token) = body[field].as_str() {
                issued.push(Issued {
                    at,
                    token: token.to_owned(),
                });
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    issued
}

async fn active(server: &ServeProcess, client: &(String, String), token: &str) -> bool {
    let response = reqwest::Client::new()
        .post(server.url("/oauth/introspect"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["active"] == true
}

/// Waits (boundedly) until `count` reaches `target`.
async fn wait_for(count: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_token_issued_before_it() {
    let root = std::env::temp_dir().join(format!("gatehouse-backup-{}", uuid_like()));
    let (live, restored) = (root.join("live"), root.join("restored"));
    let backup = root.join("gatehouse.backup");
    let backup_arg = backup.to_str().unwrap();
    let password = "a long enough administrator password";
    let admin_password = [("GATEHOUSE_ADMIN_PASSWORD", password)];
    let server = Arc::new(
        ServeProcess::start(&live, &["--rate-limit-per-second", "0"], &admin_password).await,
    );
    let created = gatehouse(
        &live,
        &[
            "app",
            "create",
            "--name",
            "load",
            "--grant",
            "client_credentials",
            "--grant",
            "password",
            "--grant",
            "refresh_token",
            "--scope",
            "useraccount",
            "--run-as",
            "admin",
            "--json",
        ],
        &[],
    )
    .await;
    assert!(created.status.success(), "{}", stderr(&created));
    let app: Value = serde_json::from_slice(&created.stdout).unwrap();
    let client = (
        app["client_id"].as_str().unwrap().to_owned(),
        app["client_secret"].as_str().unwrap().to_owned(),
    );

    // Three clients take opaque access tokens, one signs in for access and refresh tokens,
    // each as fast as the server answers.
    let (stop, count) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut load = tokio::task::JoinSet::new();
    let forms = [
        vec![("grant_type", "client_credentials")],
        vec![("grant_type", "client_credentials")],
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", password),
        ],
    ];
    for form in forms {
        load.spawn(issue_until(
            server.clone(),
            client.clone(),
            form,
            stop.clone(),
            count.clone(),
        ));
    }
    wait_for(&count, 200).await;
    let backup_began = Instant::now();
    let backed_up = gatehouse(&live, &["backup", backup_arg], &[]).await;
    let backup_ended = Instant::now();
    assert!(backed_up.status.success(), "{}", stderr(&backed_up));
    // More tokens after the backup: they must not be in it.
    wait_for(&count, count.load(Ordering::Relaxed) + 100).await;

    // While the server runs, its database is not replaced, and it goes on serving.
    let refused = gatehouse(&live, &["restore", backup_arg], &[]).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("is in use"),
        "{}",
        stderr(&refused)
    );
    stop.store(true, Ordering::Relaxed);
    let issued: Vec<Issued> = load.join_all().await.into_iter().flatten().collect();
    let last = issued.iter().max_by_key(|i| i.at).unwrap();
    assert!(active(&server, &client, &last.token).await);
    drop(Arc::into_inner(server).expect("the load has ended"));

    // The backup is put back on a fresh data directory: only with the master key it was
    // taken under, and nothing is written before that is settled.
    let no_key = gatehouse(&restored, &["restore", backup_arg], &[]).await;
    assert!(!no_key.status.success());
    assert!(
        stderr(&no_key).contains("no master key"),
        "{}",
        stderr(&no_key)
    );
    let other_key = gatehouse_core::secret::MasterKey::generate().encode();
    let wrong_key = gatehouse(
        &restored,
        &["restore", backup_arg],
        &[("GATEHOUSE_MASTER_KEY", &other_key)],
    )
    .await;
    assert!(!wrong_key.status.success());
    assert!(
        stderr(&wrong_key).contains("master key does not open"),
        "{}",
        stderr(&wrong_key)
    );
    assert!(!restored.join("gatehouse.db").exists());
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(live.join("master.key"), restored.join("master.key")).unwrap();
    let put_back = gatehouse(&restored, &["restore", backup_arg], &[]).await;
    assert!(put_back.status.success(), "{}", stderr(&put_back));

    let server = ServeProcess::start(&restored, &["--rate-limit-per-second", "0"], &[]).await;
    let (mut before, mut after) = (0, 0);
    for issued in &issued {
        if issued.at < backup_began {
            assert!(
                active(&server, &client, &issued.token).await,
                "a token issued before the backup began is active after the restore"
            );
            before += 1;
        } else if issued.at > backup_ended {
            assert!(
                !active(&server, &client, &issued.token).await,
                "a token issued after the backup ended is not in it"
            );
            after += 1;
        }
    }
    assert!(
        before >= 200 && after >= 100,
        "{before} before, {after} after"
    );
    eprintln!(
        "{before} tokens issued before the backup served again, {after} issued after it not; \
         {} during it",
        issued.len() - before - after
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
