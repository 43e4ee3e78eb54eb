//! Memory under sustained sign-ins: the bound ARCHITECTURE.md states for password hashing,
//! measured on a real `gatehouse serve` process so nothing else in the test binary counts.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{ServeProcess, gatehouse_command};

/// The bound ARCHITECTURE.md states: a base for everything but Argon2, and one buffer of at most
/// 19 MiB (the most a stored hash may ask for) for each hash that may run at once (one per core).
fn rss_bound_kib() -> u64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    (64 + 20 * cores) * 1024
}

/// A size of the process from `/proc/PID/status`, in KiB: `VmHWM` its peak resident set,
/// `VmRSS` its resident set now.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
}

fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_password_checks_stay_under_the_memory_bound() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc to read the resident set from");
        return;
    }
    let data_dir =
        std::env::temp_dir().join(format!("gatehouse-memory-{}", crate::harness::uuid_like()));
    let password = "a long enough administrator password";
    // Every sign-in comes from this one address, far faster than a person's.
    let server = ServeProcess::start(
        &data_dir,
        &["--rate-limit-per-second", "0"],
        &[("GATEHOUSE_ADMIN_PASSWORD", password)],
    )
    .await;
    let http = reqwest::Client::new();

    let mut cli = gatehouse_command(&data_dir);
    let created = tokio::task::spawn_blocking(move || {
        cli.args(["app", "create", "--name", "signin", "--grant", "password"])
            .args(["--scope", "useraccount", "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(created.status.success(), "{created:?}");
    let app: Value = serde_json::from_slice(&created.stdout).unwrap();
    let client_id = app["client_id"].as_str().unwrap().to_owned();
    let secret = app["client_secret"].as_str().unwrap().to_owned();

    let sign_in = || {
        let request = http
            .post(server.url("/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", password),
            ]);
        async move { request.send().await.unwrap().status() }
    };
    // The registry cache may still hold "no such application" from before the CLI wrote it.
    for _ in 0..100 {
        if sign_in().await.is_success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = peak_rss_kib(server.pid());
    let mut pending = tokio::task::JoinSet::new();
    let (mut done, mut succeeded) = (0, 0);
    while done < 2_000 {
        while pending.len() < 16 && done + pending.len() < 2_000 {
            pending.spawn(sign_in());
        }
        let status = pending.join_next().await.unwrap().unwrap();
        done += 1;
        succeeded += usize::from(status.is_success());
    }
    let peak = peak_rss_kib(server.pid());
    // At rest again, the hashing buffers are given back: what stays is at least one buffer of
    // the hashes Gatehouse writes (9 MiB) below the peak.
    let at_rest = status_kib(server.pid(), "VmRSS");
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);

    assert_eq!(succeeded, 2_000, "every sign-in succeeds");
    let bound = rss_bound_kib();
    eprintln!(
        "peak RSS: {before} KiB before the sign-ins, {peak} KiB after, {at_rest} KiB at rest; \
         bound {bound} KiB"
    );
    assert!(
        peak <= bound,
        "peak RSS {peak} KiB is over the documented bound of {bound} KiB"
    );
    assert!(
        at_rest + 9 * 1024 <= peak,
        "at rest the process keeps {at_rest} KiB of its {peak} KiB peak: hashing buffers stayed"
    );
}
