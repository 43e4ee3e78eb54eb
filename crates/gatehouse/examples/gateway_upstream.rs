//! A minimal upstream for the gateway benchmark (`bench/gateway`): answers every request on
//! 127.0.0.1:PORT with the same small JSON document, so what is measured is the gateway.
//!
//!     cargo run --release -p gatehouse --example gateway_upstream -- 9000

use axum::Json;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = axum::Router::new().fallback(|| async {
        Json::<Value>(json!({"result": {"sys_id": "0123456789abcdef0123456789abcdef", "ok": true}}))
    });
    axum::serve(listener, app).await
}
