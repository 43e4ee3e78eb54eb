//! The canonical form of a request path: the one reading of it that scope rules, route choice
//! and upstream URLs all use.
//!
//! Servers, proxies and frameworks disagree about paths: whether `%2F` splits a segment,
//! whether `\` is a slash, whether `;x` is a parameter to strip, whether `%2e%2e` climbs, whether
//! `//` or a trailing `/` is a segment, whether `%25` is decoded twice. A path that any of them
//! could read differently from Gatehouse is refused, so a rule can never be matched against one
//! path while an upstream serves another. What remains is a list of decoded segments, each
//! non-empty, which Gatehouse percent-encodes itself whenever it builds a URL from them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::Error;

/// Everything but RFC 3986's unreserved characters is encoded in a segment Gatehouse sends, so
/// no receiver can find a delimiter in it.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request path as a list of percent-decoded segments (`/` is the empty list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    segments: Vec<String>,
}

impl CanonicalPath {
    /// Reads the path of a request target, as received (still percent-encoded). Refused with
    /// `invalid_request`: a path not starting with `/`; an empty segment (`//`, and a trailing
    /// `/`, which is an empty last segment); a dot segment however spelled (`..`, `%2e%2E`,
    /// `.%2e`); and in any segment, after decoding, `/` or `\` (so `%2F`, `%5C` and a literal
    /// backslash), `;` (path parameters), `%` (a second decoding would read it), control
    /// characters or bytes that are not UTF-8.
    pub fn parse(raw: &str) -> Result<CanonicalPath, Error> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(refused("must start with /"));
        };
        if rest.is_empty() {
            return Ok(CanonicalPath {
                segments: Vec::new(),
            });
        }
        let segments = rest
            .split('/')
            .map(decode_segment)
            .collect::<Result<_, _>>()?;
        Ok(CanonicalPath { segments })
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The segments after `prefix`, when the path is `prefix` or lies under it.
    pub fn strip_prefix<'a>(&'a self, prefix: &[&str]) -> Option<&'a [String]> {
        let under = self.segments.len() >= prefix.len()
            && self.segments.iter().zip(prefix).all(|(s, p)| s == p);
        under.then(|| &self.segments[prefix.len()..])
    }

    /// `segments` as a path (`/a/b`, or the empty string for none), each segment
    /// percent-encoded by Gatehouse: what is sent is exactly what was matched.
    pub fn encode(segments: &[String]) -> String {
        segments
            .iter()
            .map(|segment| format!("/{}", utf8_percent_encode(segment, SEGMENT)))
            .collect()
    }
}

fn refused(why: &str) -> Error {
    Error::invalid_request(format!("the request path {why}"))
}

fn decode_segment(raw: &str) -> Result<String, Error> {
    if raw.is_empty() {
        return Err(refused(
            "must not contain empty segments (// or a trailing /)",
        ));
    }
    let segment = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| refused("is not UTF-8"))?;
    if segment == "." || segment == ".." {
        return Err(refused("must not contain . or .. segments"));
    }
    if segment.contains(['/', '\\']) {
        return Err(refused("must not contain backslashes or encoded slashes"));
    }
    if segment.contains(';') {
        return Err(refused("must not contain ; path parameters"));
    }
    if segment.contains('%') {
        return Err(refused("must not contain an encoded %"));
    }
    if segment.chars().any(char::is_control) {
        return Err(refused("must not contain control characters"));
    }
    Ok(segment.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(raw: &str) -> Vec<String> {
        CanonicalPath::parse(raw).unwrap().segments
    }

    #[test]
    fn plain_and_encoded_spellings_of_one_path_are_one_path() {
        assert_eq!(segments("/api/x/items"), ["api", "x", "items"]);
        assert_eq!(segments("/api/%78/%69tems"), ["api", "x", "items"]);
        assert_eq!(segments("/a/b%20c/%C3%A9"), ["a", "b c", "é"]);
        assert_eq!(segments("/a/..b/.c./..."), ["a", "..b", ".c.", "..."]);
        assert!(segments("/").is_empty());
    }

    #[test]
    fn paths_read_two_ways_are_refused() {
        for raw in [
            "",
            "api",
            "//api",
            "/api//x",
            "/api/x/",
            "/api/./x",
            "/api/../x",
            "/api/%2e/x",
            "/api/%2E%2e/x",
            "/api/.%2e/x",
            "/api/%2e./x",
            "/api/x/..",
            "/api/a%2Fb",
            "/api/a%2fb",
            "/api/a%5Cb",
            "/api/a%5cb",
            "/api/a\\b",
            "/api/..\\x",
            "/api/x;a=b",
            "/api/x%3Bjsessionid",
            "/api/%252e%252e",
            "/api/a%zz",
            "/api/a%00",
            "/api/a%0D%0A",
            "/api/%c0%ae%c0%ae",
            "/api/%ff",
        ] {
            assert!(
                matches!(CanonicalPath::parse(raw), Err(Error::InvalidRequest(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn segments_are_encoded_by_gatehouse() {
        let path = CanonicalPath::parse("/api/x/a%20b/%C3%A9/it's/x+y/~a.b_c-d").unwrap();
        let rest = path.strip_prefix(&["api", "x"]).unwrap();
        assert_eq!(
            CanonicalPath::encode(rest),
            "/a%20b/%C3%A9/it%27s/x%2By/~a.b_c-d"
        );
        assert_eq!(CanonicalPath::encode(&[]), "");
        assert!(path.strip_prefix(&["api", "y"]).is_none());
        assert!(
            path.strip_prefix(&["api", "x", "a b", "é", "it's", "x+y", "~a.b_c-d", "z"])
                .is_none()
        );
    }
}
