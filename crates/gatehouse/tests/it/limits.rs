//! The HTTP server defends itself: bodies over the limit are refused at once, on every kind of
//! endpoint. Requests go over plain TCP so that no client library fixes their framing.

use gatehouse_http::{MAX_BODY_BYTES, MAX_FORM_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{TestServer, server_test};

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// Reads an answer's head (up to the blank line), or what came before the connection ended.
pub async fn answer_head(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

pub fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Whether the server ends the connection after its answer.
async fn closed_after_answer(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.is_ok()
}

pub fn request_head(
    server: &TestServer,
    path: &str,
    content_type: &str,
    token: Option<&str>,
    framing: &str,
) -> String {
    let address = server.settings.listen;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
         {authorization}{framing}\r\n"
    )
}

/// The endpoints a body can reach, each with the content type it reads and that type's limit.
async fn endpoints(
    server: &TestServer,
) -> Vec<(&'static str, &'static str, usize, Option<String>)> {
    let admin = server.token_for_role("admin").await;
    vec![
        ("/oauth/token", FORM, MAX_FORM_BYTES, None),
        ("/oauth/introspect", FORM, MAX_FORM_BYTES, None),
        ("/oauth/revoke", FORM, MAX_FORM_BYTES, None),
        ("/oauth/authorize", FORM, MAX_FORM_BYTES, None),
        ("/oauth/authorize/login", FORM, MAX_FORM_BYTES, None),
        ("/oauth/authorize/consent", FORM, MAX_FORM_BYTES, None),
        (
            "/api/admin/v1/users",
            JSON,
            MAX_BODY_BYTES,
            Some(admin.clone()),
        ),
        ("/api/now/table/incident", JSON, MAX_BODY_BYTES, Some(admin)),
    ]
}

// A chunked body that has streamed one byte more than the limit is refused then and there: the
// body never ends, so only an answer that does not wait for its end can arrive.
server_test!(
    streamed_bodies_over_the_limit_answer_413_at_once,
    |server| {
        for (path, content_type, limit, token) in endpoints(&server).await {
            let mut stream = TcpStream::connect(server.settings.listen).await.unwrap();
            let head = request_head(
                &server,
                path,
                content_type,
                token.as_deref(),
                "Transfer-Encoding: chunked\r\n",
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let chunk = format!("{:x}\r\n", limit + 1);
            stream.write_all(chunk.as_bytes()).await.unwrap();
            stream.write_all(&vec![b'a'; limit + 1]).await.unwrap();
            let answer = answer_head(&mut stream).await;
            assert_eq!(status(&answer), 413, "{path}: {answer}");
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{path}: {answer}"
            );
            assert!(closed_after_answer(&mut stream).await, "{path}");
        }
    }
);

// A body declared longer than the limit is refused before any of it is sent.
server_test!(
    declared_bodies_over_the_limit_answer_413_at_once,
    |server| {
        for (path, content_type, limit, token) in endpoints(&server).await {
            for declared in [limit + 1, 10 * limit, usize::MAX / 2] {
                let mut stream = TcpStream::connect(server.settings.listen).await.unwrap();
                let head = request_head(
                    &server,
                    path,
                    content_type,
                    token.as_deref(),
                    &format!("Content-Length: {declared}\r\n"),
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                let answer = answer_head(&mut stream).await;
                assert_eq!(status(&answer), 413, "{path} {declared}: {answer}");
            }
        }
    }
);

// At the limit a body is read in full: the endpoint answers for its content, not its size.
server_test!(bodies_at_the_limit_reach_their_endpoint, |server| {
    let padding = "a".repeat(MAX_FORM_BYTES - "grant_type=client_credentials&pad=".len());
    let form = format!("grant_type=client_credentials&pad={padding}");
    assert_eq!(form.len(), MAX_FORM_BYTES);
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .header("content-type", FORM)
        .basic_auth("nobody", Some("wrong"))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let admin = server.token_for_role("admin").await;
    let response = server
        .http
        .post(server.url("/api/admin/v1/users"))
        .bearer_auth(admin)
        .header("content-type", JSON)
        .body(format!(
            "{{\"user_name\": 5, \"pad\": \"{}\"}}",
            "a".repeat(MAX_FORM_BYTES * 2)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
});

/// The servers of the tests below close a connection that has not sent a complete request head
/// within a second, and serve three connections at once.
fn tight(settings: &mut gatehouse::config::Settings) {
    settings.connections.header_read_timeout = std::time::Duration::from_secs(1);
    settings.connections.max_connections = 3;
}

/// Sends `bytes` on a new connection and returns all the server sends until it closes it.
async fn until_closed(server: &TestServer, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.settings.listen).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

// A client that sends nothing, or only part of a request head, is disconnected without an
// answer: it never gets to hold the connection.
server_test!(slow_request_heads_are_closed, configured(tight), |server| {
    let address = server.settings.listen;
    for partial in [
        String::new(),
        "GET /heal".to_owned(),
        format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n"),
        format!("POST /oauth/token HTTP/1.1\r\nHost: {address}\r\nContent-Type: "),
    ] {
        let answer = until_closed(&server, partial.as_bytes()).await;
        assert!(!answer.contains(" 200 "), "{partial:?}: {answer}");
    }
});

// A request head over 16 KiB is answered with 431 however it is made large: one long header,
// many headers, a long target. Just under the limit, the request is served.
server_test!(request_heads_over_the_limit_answer_431, |server| {
    let address = server.settings.listen;
    let limit = server.settings.connections.max_header_bytes;
    let many: String = (0..400)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "b".repeat(40)))
        .collect();
    assert!(many.len() > limit);
    for head in [
        format!(
            "GET /healthz HTTP/1.1\r\nHost: {address}\r\nX-Long: {}\r\n\r\n",
            "a".repeat(limit)
        ),
        format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n{many}\r\n"),
        format!(
            "GET /healthz?{} HTTP/1.1\r\nHost: {address}\r\n\r\n",
            "q".repeat(limit)
        ),
    ] {
        let answer = until_closed(&server, head.as_bytes()).await;
        assert_eq!(status(&answer), 431, "{}", &answer);
    }
    let under = format!(
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nX-Long: {}\r\n\r\n",
        "a".repeat(limit - 1024)
    );
    let answer = until_closed(&server, under.as_bytes()).await;
    assert_eq!(status(&answer), 200, "{answer}");
});

// More idle connections than the server serves at once: each is closed in its turn, and a
// token request queued behind them is answered.
server_test!(
    a_connection_flood_does_not_starve_the_token_endpoint,
    configured(tight),
    |server| {
        let app = server
            .app(
                gatehouse_core::client::TokenFormat::Jwt,
                &["useraccount"],
                None,
            )
            .await;
        let mut flood = Vec::new();
        for _ in 0..12 {
            flood.push(TcpStream::connect(server.settings.listen).await.unwrap());
        }
        // A client of its own: the shared one may still hold a connection from before the flood.
        let response = reqwest::Client::new()
            .post(server.url("/oauth/token"))
            .basic_auth(&app.client_id, Some(&app.secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        for mut stream in flood {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            assert!(!String::from_utf8_lossy(&rest).contains(" 200 "));
        }
    }
);
