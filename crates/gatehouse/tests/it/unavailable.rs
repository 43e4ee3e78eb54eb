//! A database that cannot be reached for now is answered `503` with `Retry-After` on every
//! surface — the OAuth endpoints, the admin API, the pages, readiness — and served again once it
//! is back.
//! PostgreSQL is reached through a relay the test cuts (nothing listens, every connection is
//! closed), so the pool's connections fail and new ones are refused until its acquire timeout;
//! SQLite is held locked by another writer, so writes fail after the busy timeout.

use std::net::SocketAddr;

use gatehouse_core::client::{ClientType, TokenFormat};
use gatehouse_store::test_support::SqliteWriteLock;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::admin_api::call;
use crate::harness::{Backend, TestApp, TestServer, post_form};
use crate::people::people_app;
use crate::pushed::{authorize_with, push, request};

/// A TCP relay to the database, which the test can cut and restore on the same port.
struct Relay {
    address: SocketAddr,
    target: String,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    /// Relays to the database of `url` and points `url` at the relay. Called from the
    /// server's (synchronous) settings hook, inside the test's runtime.
    fn between(url: &mut String) -> Relay {
        let (scheme, rest) = url.split_once("://").expect("a database URL");
        let (authority, path) = rest.split_once('/').expect("a database name");
        let (credentials, target) = match authority.rsplit_once('@') {
            Some((credentials, target)) => (format!("{credentials}@"), target.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        *url = format!("{scheme}://{credentials}{address}/{path}");
        let listener = TcpListener::from_std(listener).unwrap();
        let task = tokio::spawn(relay(listener, target.clone()));
        Relay {
            address,
            target,
            task: Some(task),
        }
    }

    /// Closes the port and every relayed connection, as a database host that went away.
    async fn cut(&mut self) {
        let task = self.task.take().expect("a running relay");
        task.abort();
        let _ = task.await;
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.task = Some(tokio::spawn(relay(listener, self.target.clone())));
    }
}

/// Relays each accepted connection to `target`; dropping this future closes all of them.
async fn relay(listener: TcpListener, target: String) {
    let mut connections = JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// What makes the database unavailable on each backend.
enum Outage {
    Relay(Relay),
    Lock(Option<SqliteWriteLock>),
}

impl Outage {
    async fn begin(&mut self, server: &TestServer) {
        match self {
            Outage::Relay(relay) => relay.cut().await,
            Outage::Lock(lock) => {
                *lock = Some(SqliteWriteLock::hold(&server.settings.database).await)
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Relay(relay) => relay.restore().await,
            Outage::Lock(lock) => lock.take().expect("a held lock").release().await,
        }
    }
}

/// An opaque token for `app`: issuing one writes it, so it needs the database on both backends.
async fn issue(server: &TestServer, app: &TestApp) -> (u16, reqwest::header::HeaderMap, Value) {
    post_form(
        server,
        "/oauth/token",
        Some((&app.client_id, &app.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
}

async fn run(backend: Backend) {
    let mut relay = None;
    let Some(server) = TestServer::start_configured(backend, |settings| {
        if backend == Backend::Postgres {
            relay = Some(Relay::between(&mut settings.database));
        }
    })
    .await
    else {
        return;
    };
    let mut outage = match relay {
        Some(relay) => Outage::Relay(relay),
        None => Outage::Lock(None),
    };
    let app = server.app(TokenFormat::Opaque, &[], None).await;
    let admin = server.token_for_role("admin").await;
    let people = people_app(&server, ClientType::Confidential).await;
    let (status, pushed) = push(&server, &people, &request(&people, &[])).await;
    assert_eq!(status, 201, "{pushed}");
    let authorize = authorize_with(
        &server,
        &people.client_id,
        pushed["request_uri"].as_str().unwrap(),
        "",
    );

    outage.begin(&server).await;
    // Each request below writes (the token, the scope, the use of the pushed request), so each
    // needs the database on both backends; sent together, they wait out one timeout.
    let scope = json!({"name": "reports", "description": "read reports"});
    let ((status, headers, body), (api_status, api_body), page, ready) = tokio::join!(
        issue(&server, &app),
        call(
            &server,
            reqwest::Method::POST,
            "/scopes",
            &admin,
            Some(scope.clone())
        ),
        server.http.get(&authorize).send(),
        server.http.get(server.url("/readyz")).send(),
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, json!({"error": "temporarily_unavailable"}));
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(api_status, 503, "{api_body}");
    assert_eq!(api_body, json!({"error": "temporarily_unavailable"}));
    let page = page.unwrap();
    assert_eq!(page.status(), 503);
    assert_eq!(page.headers()["retry-after"], "5");
    assert!(page.headers().get("location").is_none());
    let text = page.text().await.unwrap();
    assert!(text.contains("temporarily unavailable"), "{text}");
    // Readiness asks for a read: PostgreSQL out of reach is not ready, and says when to ask
    // again; SQLite with its writer busy still reads, so it stays ready.
    let ready = ready.unwrap();
    match backend {
        Backend::Postgres => {
            assert_eq!(ready.status(), 503);
            assert_eq!(ready.headers()["retry-after"], "5");
        }
        Backend::Sqlite => assert_eq!(ready.status(), 200),
    }

    // A temporary outage: once the database is back, the same requests are served.
    outage.end().await;
    let (status, _, body) = issue(&server, &app).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/scopes",
        &admin,
        Some(scope),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    run(Backend::Postgres).await;
}
