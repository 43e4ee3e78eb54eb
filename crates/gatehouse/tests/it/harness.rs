//! Test servers and helpers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gatehouse::config::{LogFormat, Settings};
use gatehouse::server::{self, Services};
use gatehouse_core::access::ScopeEntry;
use gatehouse_core::client::{GrantType, TokenFormat};
use gatehouse_core::keys::SigningAlgorithm;
use gatehouse_core::manifest::Manifest;
use gatehouse_core::registry::{AppChanges, NewApp, NewUser, UserChanges};
use gatehouse_core::secret::{MasterKey, Secret};
use gatehouse_store::Durability;
pub use gatehouse_store::test_support::Backend;
use gatehouse_store::test_support::TestDatabase;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs one async test body against a server on each backend, as `name::sqlite` and
/// `name::postgres`; `configured(|settings| …)` adjusts the servers' settings first.
macro_rules! server_test {
    ($name:ident, |$server:ident| $body:block) => {
        $crate::harness::server_test!($name, configured(|_| {}), |$server| $body);
    };
    ($name:ident, configured($configure:expr), |$server:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use crate::harness::{Backend, TestServer};

            async fn run($server: TestServer) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) = TestServer::start_configured(Backend::Sqlite, $configure).await {
                    run(server).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = TestServer::start_configured(Backend::Postgres, $configure).await {
                    run(server).await;
                }
            }
        }
    };
}
pub(crate) use server_test;

/// A Gatehouse server running in this process on a free loopback port.
pub struct TestServer {
    pub base: String,
    pub settings: Settings,
    pub services: Services,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    // Dropped last: the database outlives the server that uses it. A peer borrows its
    // first server's database and holds none.
    _database: Option<TestDatabase>,
}

/// A registered application with its clear secret.
#[derive(Debug, Clone)]
pub struct TestApp {
    pub client_id: String,
    pub secret: String,
}

impl TestServer {
    /// Starts a server on `backend`; `None` when that backend is not configured here.
    pub async fn start(backend: Backend) -> Option<TestServer> {
        TestServer::start_with(backend, Manifest::default()).await
    }

    /// Starts a server whose configuration file carries `registry` sections.
    pub async fn start_with(backend: Backend, registry: Manifest) -> Option<TestServer> {
        TestServer::start_configured(backend, |settings| settings.registry = registry).await
    }

    /// Starts a server with settings adjusted by `configure`.
    pub async fn start_configured(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<TestServer> {
        let database = TestDatabase::create(backend).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let mut settings = test_settings(address, format!("http://{address}"), &database.url);
        configure(&mut settings);
        Some(TestServer::launch(settings, listener, Some(database)).await)
    }

    /// Starts `count` instances at the same moment on one new, empty database, with one master
    /// key and issuer, as the first start of several instances behind a load balancer would
    /// run.
    pub async fn start_together(
        backend: Backend,
        count: usize,
        configure: impl Fn(&mut Settings),
    ) -> Option<Vec<TestServer>> {
        let database = TestDatabase::create(backend).await?;
        let master_key = MasterKey::generate().encode();
        let mut listeners = Vec::new();
        for _ in 0..count {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let issuer = format!("http://{}", listeners[0].local_addr().unwrap());
        let launches: Vec<_> = listeners
            .into_iter()
            .map(|listener| {
                let mut settings = test_settings(
                    listener.local_addr().unwrap(),
                    issuer.clone(),
                    &database.url,
                );
                configure(&mut settings);
                std::fs::create_dir_all(&settings.data_dir).unwrap();
                std::fs::write(settings.data_dir.join("master.key"), &master_key).unwrap();
                tokio::spawn(TestServer::launch(settings, listener, None))
            })
            .collect();
        let mut servers = Vec::new();
        for launch in launches {
            servers.push(launch.await.unwrap());
        }
        // A vector drops its elements first to last, so the database outlives every server.
        servers[count - 1]._database = Some(database);
        Some(servers)
    }

    /// Starts another instance on this server's database, with the same master key and issuer,
    /// as a second instance behind a load balancer would run. It reaches its database through
    /// this server, so it must be dropped first.
    pub async fn start_peer(&self) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let data_dir = std::env::temp_dir().join(format!("gatehouse-it-{}", uuid_like()));
        std::fs::create_dir_all(&data_dir).unwrap();
        std::fs::copy(
            self.data_dir().join("master.key"),
            data_dir.join("master.key"),
        )
        .expect("copy the master key");
        let settings = Settings {
            listen: listener.local_addr().unwrap(),
            data_dir,
            ..self.settings.clone()
        };
        TestServer::launch(settings, listener, None).await
    }

    async fn launch(
        settings: Settings,
        listener: tokio::net::TcpListener,
        database: Option<TestDatabase>,
    ) -> TestServer {
        // The test manages the registry through the server's own services (as the admin API
        // would), so the server's caches see every change at once.
        let services = server::open_services(&settings)
            .await
            .expect("open services");
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve_with(
            services.clone(),
            settings.clone(),
            listener,
            async move {
                let _ = shutdown_rx.await;
            },
        ));
        let http = reqwest::Client::new();
        let base = format!("http://{}", settings.listen);
        // Ready once discovery answers.
        for _ in 0..200 {
            if http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        TestServer {
            base,
            settings,
            services,
            http,
            shutdown: Some(shutdown),
            handle: Some(handle),
            _database: database,
        }
    }

    /// The server and, on PostgreSQL where several instances share a database, a second
    /// instance on the same database (on SQLite the same server twice): races and caches are
    /// tried across both.
    pub async fn with_peer(self) -> [std::sync::Arc<TestServer>; 2] {
        let server = std::sync::Arc::new(self);
        let peer = if server.settings.database.starts_with("postgres") {
            std::sync::Arc::new(server.start_peer().await)
        } else {
            server.clone()
        };
        [server, peer]
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GETs `path` and reads the answer's status and JSON body (`null` when there is none).
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The bearer challenge Gatehouse answers with: `params` after the realm, then where the
    /// metadata of the protected resource is (RFC 9728): a gateway route's by its `prefix`,
    /// Gatehouse's own with `""`.
    pub fn challenge(&self, params: &str, prefix: &str) -> String {
        format!(
            "Bearer realm=\"gatehouse\"{params}, resource_metadata=\"{}/.well-known/oauth-protected-resource{prefix}\"",
            self.base
        )
    }

    pub fn data_dir(&self) -> &PathBuf {
        &self.settings.data_dir
    }

    /// Registers a confidential client-credentials application.
    pub async fn app(&self, format: TokenFormat, scopes: &[&str], run_as: Option<&str>) -> TestApp {
        self.app_with(AppChanges {
            name: Some("test app".into()),
            grant_types: Some(vec![GrantType::ClientCredentials]),
            allowed_scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            token_format: Some(format),
            run_as: run_as.map(str::to_owned),
            ..AppChanges::default()
        })
        .await
    }

    /// Stores an opaque access token of `app`'s own, issued at `issued_at` for ten minutes,
    /// straight into the store under `key`: one no request of this server issued.
    pub async fn store_app_token(&self, app: &TestApp, key: &str, issued_at: i64) {
        self.services
            .store
            .insert_access_token(&gatehouse_core::store::AccessTokenRecord {
                token_hash: key.to_owned(),
                jti: format!("stored-{}", uuid_like()),
                client_id: app.client_id.clone(),
                user_id: None,
                scope: String::new(),
                issued_at,
                expires_at: issued_at + 600,
                revoked: false,
                grant_id: None,
                audience: vec![],
                act: None,
                dpop_jkt: None,
            })
            .await
            .expect("store an access token");
    }

    /// Registers an application, and first each scope it names that is not registered yet,
    /// as an administrator must before giving a scope to an application.
    pub async fn app_with(&self, fields: AppChanges) -> TestApp {
        for scope in fields.allowed_scopes.iter().flatten() {
            self.register_scope(scope).await;
        }
        let (client, secret) = self
            .services
            .registry
            .create_app(
                NewApp {
                    fields,
                    ..NewApp::default()
                },
                false,
            )
            .await
            .expect("create an application");
        TestApp {
            client_id: client.client_id,
            secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
        }
    }

    /// Registers a scope unless it is registered already.
    pub async fn register_scope(&self, name: &str) {
        let registry = &self.services.registry;
        let known = registry
            .list_entries::<ScopeEntry>()
            .await
            .expect("list scopes");
        if !known.iter().any(|(scope, _)| scope.name == name) {
            registry
                .create_entry::<ScopeEntry>(serde_json::json!({ "name": name }), false)
                .await
                .expect("register a scope");
        }
    }

    /// Changes an application, as an administrator would, registering the scopes it names.
    pub async fn update_app(&self, client_id: &str, changes: AppChanges) {
        for scope in changes.allowed_scopes.iter().flatten() {
            self.register_scope(scope).await;
        }
        self.services
            .registry
            .update_app(client_id, changes)
            .await
            .expect("update the application");
    }

    pub async fn user(&self, user_name: &str, roles: &[&str]) {
        self.services
            .registry
            .create_user(
                NewUser {
                    user_name: user_name.into(),
                    password: Some(Secret::new("a long enough password")),
                    fields: UserChanges {
                        roles: Some(roles.iter().map(|r| r.to_string()).collect()),
                        ..UserChanges::default()
                    },
                },
                false,
            )
            .await
            .expect("create a user");
    }

    /// A token from the client-credentials grant, by `client_secret_basic`.
    pub async fn token(&self, app: &TestApp, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(&app.client_id, Some(&app.secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A token for a new user holding `role`, with the `useraccount` scope.
    pub async fn token_for_role(&self, role: &str) -> String {
        let user_name = format!("{role}-{}", uuid_like());
        self.user(&user_name, &[role]).await;
        self.token_for_user(&user_name).await
    }

    /// "Revoke everything" of the application `client_id` over the admin API, as the holder of
    /// `admin`: the answer's status.
    pub async fn revoke_everything_of(&self, admin: &str, client_id: &str) -> u16 {
        self.http
            .delete(self.url(&format!("/api/admin/v1/apps/{client_id}/tokens")))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// A `useraccount` token acting for an existing user, from an application running as them.
    pub async fn token_for_user(&self, user_name: &str) -> String {
        let app = self
            .app(TokenFormat::Jwt, &["useraccount"], Some(user_name))
            .await;
        self.token(&app, None).await
    }

    /// Stops the server the way SIGTERM does and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.handle.take().expect("running").await?
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
        let _ = std::fs::remove_dir_all(&self.settings.data_dir);
    }
}

/// The settings of a test instance listening on `listen`, with its own data folder.
fn test_settings(listen: SocketAddr, issuer: String, database: &str) -> Settings {
    Settings {
        listen,
        issuer,
        data_dir: std::env::temp_dir().join(format!("gatehouse-it-{}", uuid_like())),
        database: database.to_owned(),
        log_format: LogFormat::Text,
        log_level: "warn".into(),
        jwks_max_age: 300,
        signing_alg: SigningAlgorithm::Es256,
        durability: Durability::Process,
        refresh_token_grace: 0,
        jwks_min_refresh_interval: std::time::Duration::from_secs(1),
        trusted_proxies: Default::default(),
        connections: Default::default(),
        client_lockout: Default::default(),
        // Tests send bursts from one address; the rate limit's own tests turn it on.
        rate_limit: None,
        registry: Manifest::default(),
        key_reload_interval: std::time::Duration::from_millis(200),
        key_rotation_interval: None,
        require_pushed_authorization_requests: false,
        require_dpop_nonce: false,
        audit_retention: Some(gatehouse_core::audit::DEFAULT_RETENTION),
    }
}

/// `gatehouse` (the binary these tests were built with) on the SQLite database in `data_dir`,
/// untouched by the environment's settings.
pub fn gatehouse_command(data_dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .env("GATEHOUSE_DATA_DIR", data_dir)
        .env_remove("GATEHOUSE_DATABASE_URL")
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("GATEHOUSE_MASTER_KEY");
    command
}

/// A `gatehouse serve` process on a free loopback port, for what only a real process shows: its
/// resident set, its hold on the database, its end. Killed when dropped.
pub struct ServeProcess {
    pub base: String,
    child: std::process::Child,
}

impl ServeProcess {
    /// Starts `gatehouse serve ARGS` on `data_dir` with `env` added, and waits until it answers.
    pub async fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = gatehouse_command(data_dir);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut process = ServeProcess {
            base: format!("http://127.0.0.1:{port}"),
            child: command.spawn().expect("start gatehouse serve"),
        };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http.get(process.url("/healthz")).send().await.is_ok() {
                return process;
            }
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!("gatehouse serve ended at start: {status}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("gatehouse serve did not answer within 15 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A unique-enough name part for test records and folders.
pub fn uuid_like() -> String {
    gatehouse_core::secret::generate()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect::<String>()
        .to_lowercase()
}

/// What `/oauth/introspect` tells `caller` of `token`.
pub async fn introspect(server: &TestServer, caller: &TestApp, token: &str) -> Value {
    let (status, _, body) = post_form(
        server,
        "/oauth/introspect",
        Some((&caller.client_id, &caller.secret)),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// POSTs a form with optional Basic credentials; returns the status, headers and JSON body.
pub async fn post_form(
    server: &TestServer,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server.http.post(server.url(path)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}
