//! The console's *test this alias*: a `GET` through a connection alias for an administrator,
//! made by [`OutboundClient::call`]'s own code, with each step it took — where the token came
//! from, how the API answered — timed, and a short preview of the answer.
//!
//! What it shows is what an administrator who manages outbound OAuth may know anyway; never a
//! token, secret or key. The API's answer is previewed only as text and with the token it was
//! sent hidden, should the API echo the request's headers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_core::registry::Registry;
use gatehouse_core::user::Permission;

use super::{OutboundClient, OutboundError, TokenSource, UpstreamRequest};

/// The most of an answer the probe reads: enough to tell its size for most APIs, without
/// holding a large download.
const MAX_READ: usize = 1024 * 1024;
/// The characters of an answer the preview shows.
const PREVIEW_CHARS: usize = 600;
/// What stands for the token where the API echoed it.
const HIDDEN: &str = "[token hidden]";

/// One step of a call through an alias, as it ended.
#[derive(Debug, Clone)]
pub enum Step {
    /// The token for the call: where it came from, or why there is none (the provider's
    /// refusal with its error code, consent needed, the provider unreachable).
    Token {
        elapsed: Duration,
        outcome: Result<TokenSource, String>,
    },
    /// The API's answer up to its headers: its status, or why there is none.
    Upstream {
        elapsed: Duration,
        outcome: Result<u16, String>,
    },
}

/// The API's answer as the probe read it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    /// The bytes of the body read, at most [`MAX_READ`].
    pub size: usize,
    /// Whether the body ended within what was read.
    pub complete: bool,
    /// How long reading the body took.
    pub elapsed: Duration,
    pub preview: Preview,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Preview {
    Empty,
    /// The start of a text answer, cut at [`PREVIEW_CHARS`] characters.
    Text {
        text: String,
        cut: bool,
    },
    /// An answer that is not text is not shown.
    Binary,
}

/// A test of an alias: the URL it reached, its steps and the answer, if there was one.
#[derive(Debug)]
pub struct Probe {
    pub url: String,
    pub steps: Vec<Step>,
    pub answer: Option<Answer>,
}

impl Probe {
    /// Whether every step succeeded (whatever status the API answered with).
    pub fn reached(&self) -> bool {
        self.answer.is_some()
    }
}

impl OutboundClient {
    /// `GET`s `path_and_query` through `alias` for the administrator `admin` acts for (with
    /// their own token when the alias' profile is per user), as a call through the outbound
    /// proxy would. Refused unless they may manage outbound OAuth. What fails before any step
    /// — an unknown alias, a path that leaves its base URL — is the error; a step that fails
    /// ends the probe's steps.
    pub async fn probe(
        &self,
        admin: &Registry,
        alias: &str,
        path_and_query: &str,
    ) -> Result<Probe, OutboundError> {
        admin.require(Permission::ManageOutbound)?;
        let catalog = admin.catalog().await?;
        let resolved = self.registry.resolve_alias(&catalog, alias).await?;
        let url = super::upstream_url(&resolved.alias, path_and_query)?;
        let request = UpstreamRequest {
            method: "GET".into(),
            path_and_query: path_and_query.to_owned(),
            content_type: None,
            accept: None,
            body: Bytes::new(),
        };
        let user_id = admin.administrator().map(|user| user.id.as_str());
        let mut steps = Vec::new();
        let called = self
            .traced_call(&resolved, user_id, &request, &mut |step| steps.push(step))
            .await;
        let answer = match called {
            Ok((mut response, token)) => {
                let started = Instant::now();
                let mut body = Vec::new();
                let mut size = 0;
                let mut complete = true;
                // The preview is cut from what precedes it and the token, so that a token
                // across the cut is hidden too.
                let keep = PREVIEW_CHARS * 4 + token.expose().len();
                while let Some(chunk) = response.chunk().await? {
                    size += chunk.len();
                    if body.len() < keep {
                        body.extend_from_slice(&chunk[..chunk.len().min(keep - body.len())]);
                    }
                    if size >= MAX_READ {
                        complete = false;
                        break;
                    }
                }
                let preview = preview(&body, response.content_type.as_deref(), token.expose());
                Some(Answer {
                    status: response.status,
                    content_type: response.content_type,
                    size: size.min(MAX_READ),
                    complete,
                    elapsed: started.elapsed(),
                    preview,
                })
            }
            Err(error) if steps.is_empty() => return Err(error),
            Err(_) => None,
        };
        Ok(Probe {
            url: url.to_string(),
            steps,
            answer,
        })
    }
}

/// The start of a text answer, with `token` hidden and control characters other than line
/// breaks and tabs shown as replacement characters.
fn preview(body: &[u8], content_type: Option<&str>, token: &str) -> Preview {
    if body.is_empty() {
        return Preview::Empty;
    }
    let text = match content_type {
        Some(content_type) if is_text(content_type) => String::from_utf8_lossy(body),
        // Untyped: text if it reads as text.
        None => match std::str::from_utf8(body) {
            Ok(text) => text.into(),
            Err(error) if error.error_len().is_none() => {
                String::from_utf8_lossy(&body[..error.valid_up_to()])
            }
            Err(_) => return Preview::Binary,
        },
        Some(_) => return Preview::Binary,
    };
    let text = if token.is_empty() {
        text.into_owned()
    } else {
        text.replace(token, HIDDEN)
    };
    let mut shown: String = text
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .take(PREVIEW_CHARS + 1)
        .collect();
    let cut = shown.chars().count() > PREVIEW_CHARS;
    if cut {
        shown.pop();
    }
    Preview::Text { text: shown, cut }
}

fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || ["json", "xml", "javascript", "x-www-form-urlencoded"]
            .iter()
            .any(|kind| essence.ends_with(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_text_with_the_token_hidden() {
        let body = br#"{"headers":{"authorization":"Bearer s3cr3t-token"}}"#;
        let Preview::Text { text, cut } = preview(
            body,
            Some("application/json; charset=utf-8"),
            "s3cr3t-token",
        ) else {
            panic!("text expected");
        };
        assert_eq!(
            text,
            r#"{"headers":{"authorization":"Bearer [token hidden]"}}"#
        );
        assert!(!cut);
        assert_eq!(
            preview(b"\x1b[31mred\r\n", Some("text/plain"), "t"),
            Preview::Text {
                text: "\u{fffd}[31mred\u{fffd}\n".into(),
                cut: false
            }
        );
    }

    #[test]
    fn cuts_long_text_and_hides_binaries() {
        let long = "a".repeat(PREVIEW_CHARS + 5);
        let Preview::Text { text, cut } = preview(long.as_bytes(), Some("text/plain"), "t") else {
            panic!("text expected");
        };
        assert_eq!(text.len(), PREVIEW_CHARS);
        assert!(cut);
        assert_eq!(
            preview(b"\x89PNG\r\n", Some("image/png"), "t"),
            Preview::Binary
        );
        assert_eq!(preview(b"\xff\xfe\x00", None, "t"), Preview::Binary);
        assert_eq!(
            preview(b"plain", None, "t"),
            Preview::Text {
                text: "plain".into(),
                cut: false
            }
        );
        assert_eq!(preview(b"", Some("text/plain"), "t"), Preview::Empty);
    }
}
