//! What one revocation or one bad token costs: a revocation drops exactly what it revoked from
//! the caches, on every instance at once, and lookups of unknown tokens leave everyone else's
//! cached tokens alone. Read off the servers' own cache counters (`/metrics`).

use std::time::Instant;

use gatehouse_core::cache::RECORD_TTL_SECONDS;
use gatehouse_core::client::TokenFormat;

use crate::harness::{TestApp, TestServer, post_form, server_test, uuid_like};

/// How often the server's `cache` cache answered with `outcome`.
async fn cache_count(server: &TestServer, cache: &str, outcome: &str) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series =
        format!("gatehouse_cache_lookups_total{{cache=\"{cache}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The status of `GET /api/admin/v1/whoami` with `token`.
async fn whoami(server: &TestServer, token: &str) -> u16 {
    server
        .http
        .get(server.url("/api/admin/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits (up to a second) for `server` to refuse `token`: another instance hears of a
/// revocation by a notice, within milliseconds.
async fn refused_soon(server: &TestServer, token: &str) -> bool {
    for _ in 0..50 {
        if whoami(server, token).await == 401 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

async fn revoke(server: &TestServer, app: &TestApp, token: &str) {
    let (status, _, body) = post_form(
        server,
        "/oauth/revoke",
        Some((&app.client_id, &app.secret)),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

server_test!(
    revocations_and_garbage_tokens_leave_other_callers_cached,
    |server| {
        let servers = server.with_peer().await;
        let victim = servers[0]
            .app(TokenFormat::Opaque, &["useraccount"], None)
            .await;
        let minter = servers[0]
            .app(TokenFormat::Opaque, &["useraccount"], None)
            .await;
        let jwt_minter = servers[0]
            .app(TokenFormat::Jwt, &["useraccount"], None)
            .await;
        let token = servers[0].token(&victim, None).await;
        for server in &servers {
            assert_eq!(whoami(server, &token).await, 200);
        }
        let loads_before = [
            cache_count(&servers[0], "opaque_tokens", "loaded").await,
            cache_count(&servers[1], "opaque_tokens", "loaded").await,
        ];
        let started = Instant::now();
        let rounds = 20;
        for round in 0..rounds {
            let (here, there) = (&servers[round % 2], &servers[(round + 1) % 2]);
            // A client mints tokens, uses them on both instances (so both cache them), and
            // revokes them on one: the other refuses them at once.
            for (app, format) in [(&minter, "opaque"), (&jwt_minter, "JWT")] {
                let own = here.token(app, None).await;
                for server in &servers {
                    assert_eq!(whoami(server, &own).await, 200);
                }
                revoke(here, app, &own).await;
                assert_eq!(whoami(here, &own).await, 401, "a revoked {format} token");
                assert!(refused_soon(there, &own).await, "a revoked {format} token");
            }
            // Garbage, shaped like opaque tokens and like JWTs.
            for server in &servers {
                for garbage in [
                    format!("gh_at_{}{}", uuid_like(), uuid_like()),
                    format!("eyJhbGciOiJFUzI1NiJ9.{}.{}", uuid_like(), uuid_like()),
                ] {
                    assert_eq!(whoami(server, &garbage).await, 401);
                }
            }
            for server in &servers {
                assert_eq!(whoami(server, &token).await, 200);
            }
        }
        // Each instance loaded the minter's opaque token twice a round (before and after its
        // revocation), and the victim's only when its entry's time to live ran out: none of
        // the revocations or unknown tokens evicted it (which would cost a load a round).
        let ttl_reloads = 1 + started.elapsed().as_secs() / RECORD_TTL_SECONDS as u64;
        for (n, server) in servers.iter().enumerate() {
            let loads = cache_count(server, "opaque_tokens", "loaded").await - loads_before[n];
            let bound = 2 * rounds as u64 + ttl_reloads;
            assert!(
                loads <= bound,
                "instance {n}: {loads} loads of opaque tokens, at most {bound} expected"
            );
            assert!(cache_count(server, "opaque_tokens", "absent").await >= rounds as u64);
        }
    }
);

server_test!(
    everything_of_an_application_revoked_on_one_instance_is_refused_on_the_other,
    |server| {
        let servers = server.with_peer().await;
        let admin = servers[0].token_for_role("admin").await;
        for format in [TokenFormat::Opaque, TokenFormat::Jwt] {
            let app = servers[0].app(format, &["useraccount"], None).await;
            let token = servers[0].token(&app, None).await;
            // Cached on both instances before the revocation.
            for server in &servers {
                assert_eq!(whoami(server, &token).await, 200, "{format:?}");
            }
            assert_eq!(
                servers[0]
                    .revoke_everything_of(&admin, &app.client_id)
                    .await,
                204
            );
            assert_eq!(whoami(&servers[0], &token).await, 401, "{format:?}");
            assert!(refused_soon(&servers[1], &token).await, "{format:?}");
        }
    }
);
