//! Operational endpoints: liveness, readiness, metrics; and which request a log line was
//! written for.

use std::io::{self, Write};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::response::IntoResponse;

use crate::error::NotReady;
use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers.
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, NotReady> {
    state.services.store.ping().await.map_err(NotReady)?;
    Ok("ready")
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

tokio::task_local! {
    static SERVING: Serving;
}

/// What a log line written while a request is served says of it: its method and route template
/// only, since query strings and paths can carry identifiers that do not belong in logs.
pub struct Serving {
    method: Method,
    route: Option<MatchedPath>,
}

impl Serving {
    pub fn of(request: &Request) -> Self {
        Serving {
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
        }
    }

    /// Runs `work` as the serving of this request, for the log lines written meanwhile (see
    /// [`write_log_line`]). A task-local rather than a tracing span: a span's fields are
    /// formatted as it opens, on every request, while this is read only when a line is
    /// written, and most requests write none.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        SERVING.scope(self, work).await
    }
}

/// Writes a log line, naming the request this task is serving, if any: ` method=… route=…` at
/// the end of a text line, a `request` member at the end of a JSON one. `line` is one whole
/// line as the formatter wrote it, newline included.
pub fn write_log_line(out: &mut impl Write, line: &[u8], json: bool) -> io::Result<()> {
    let tail: &[u8] = if json { b"}\n" } else { b"\n" };
    let written = SERVING.try_with(|serving| {
        let Some(head) = line.strip_suffix(tail) else {
            return out.write_all(line);
        };
        let method = serving.method.as_str();
        let route = serving
            .route
            .as_ref()
            .map_or("unmatched", MatchedPath::as_str);
        out.write_all(head)?;
        if json {
            let request = serde_json::json!({ "method": method, "route": route });
            write!(out, ",\"request\":{request}")?;
        } else {
            write!(out, " method={method} route={route}")?;
        }
        out.write_all(tail)
    });
    written.unwrap_or_else(|_| out.write_all(line))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::middleware::{Next, from_fn};
    use axum::routing::post;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::{Serving, write_log_line};

    const TEXT: &str = "2026-11-27T22:00:00Z  WARN gatehouse: storage failed error=timeout\n";
    const JSON: &str = "{\"timestamp\":\"2026-11-27T22:00:00Z\",\"level\":\"WARN\",\
        \"fields\":{\"message\":\"storage failed\"},\"target\":\"gatehouse\"}\n";

    /// Both formats of the same line, as the writer passes them on.
    fn written() -> (String, Value) {
        let mut text = Vec::new();
        write_log_line(&mut text, TEXT.as_bytes(), false).unwrap();
        let mut json = Vec::new();
        write_log_line(&mut json, JSON.as_bytes(), true).unwrap();
        let text = String::from_utf8(text).unwrap();
        (text, serde_json::from_slice(&json).unwrap())
    }

    #[tokio::test]
    async fn a_line_written_while_serving_names_the_method_and_route_template_only() {
        async fn serve(request: Request, next: Next) -> axum::response::Response {
            Serving::of(&request).scope(next.run(request)).await
        }
        async fn handler() -> String {
            let (text, json) = written();
            format!("{text}{json}")
        }
        let router = Router::new()
            .route("/clients/{id}/secret", post(handler))
            .layer(from_fn(serve));
        let request = Request::post("/clients/c-42/secret?token=abc")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let (text, json) = body.split_once('\n').unwrap();
        assert_eq!(
            text,
            "2026-11-27T22:00:00Z  WARN gatehouse: storage failed error=timeout \
             method=POST route=/clients/{id}/secret"
        );
        let json: Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            json["request"],
            json!({ "method": "POST", "route": "/clients/{id}/secret" })
        );
        assert_eq!(json["fields"]["message"], "storage failed");
        assert!(!body.contains("c-42") && !body.contains("abc"));
    }

    #[tokio::test]
    async fn a_line_written_outside_a_request_passes_unchanged() {
        let (text, json) = written();
        assert_eq!(text, TEXT);
        assert_eq!(json, serde_json::from_str::<Value>(JSON).unwrap());
        let unmatched = Request::get("/nowhere").body(Body::empty()).unwrap();
        let (text, _) = Serving::of(&unmatched).scope(async { written() }).await;
        assert!(text.ends_with(" method=GET route=unmatched\n"), "{text}");
    }
}
