//! Prometheus metrics. The registry lives in the application state rather than in a global, so
//! every server (and every test server) counts for itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use gatehouse_core::client::GrantType;
use gatehouse_core::token::TokenService;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub grant_type: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    outcome: &'static str,
}

/// Reads the in-memory caches' counters at each scrape: they are kept by the caches
/// themselves, on the hot path, as plain atomics.
struct CacheCollector(Arc<TokenService>);

impl std::fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CacheCollector")
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "cache_lookups",
            "In-memory cache lookups by cache and outcome (hit; loaded from the database; \
             absent there, never cached)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (cache, stats) in self.0.cache_stats() {
            for (outcome, count) in [
                ("hit", stats.hits),
                ("loaded", stats.loaded),
                ("absent", stats.absent),
            ] {
                ConstCounter::new(count)
                    .encode(family.encode_family(&CacheLabels { cache, outcome })?)?;
            }
        }
        Ok(())
    }
}

/// The minutes the dashboard's figures cover.
const WINDOW_MINUTES: u64 = 60;

/// The label of token requests for no grant the server knows.
pub const UNKNOWN_GRANT: &str = "unknown";

/// One count per minute of the last [`WINDOW_MINUTES`]. Each slot packs the minute it counts
/// (high half) with its count (low half) in one atomic, so a request costs one compare-and-swap
/// and a slot moves on to a new minute without a lock and without losing a count.
struct MinuteCounts([AtomicU64; WINDOW_MINUTES as usize]);

impl MinuteCounts {
    fn new() -> Self {
        MinuteCounts(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    fn add(&self, minute: u64) {
        let slot = &self.0[(minute % WINDOW_MINUTES) as usize];
        // The closure always answers, so the update cannot fail.
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
            Some(if packed >> 32 == minute {
                packed + 1
            } else {
                (minute << 32) | 1
            })
        });
    }

    /// The count of the window that ends with `minute`.
    fn total(&self, minute: u64) -> u64 {
        self.0
            .iter()
            .map(|slot| slot.load(Ordering::Relaxed))
            .filter(|packed| minute.saturating_sub(packed >> 32) < WINDOW_MINUTES)
            .map(|packed| packed & u64::from(u32::MAX))
            .sum()
    }
}

/// A grant's token requests over the last hour, and how many of them failed.
struct RecentRequests {
    requests: MinuteCounts,
    errors: MinuteCounts,
}

/// A grant's token requests in the last hour, as the dashboard shows them.
pub struct GrantFigures {
    pub grant_type: &'static str,
    pub requests: u64,
    pub errors: u64,
}

pub struct Metrics {
    registry: Registry,
    tokens: Family<TokenLabels, Counter>,
    requests: Family<RequestLabels, Histogram>,
    /// Beside `tokens`, which counts since the start: the last hour's, per grant type in the
    /// order of `GrantType::ALL`, then requests for no known grant.
    recent: [RecentRequests; GrantType::ALL.len() + 1],
    /// Minutes are counted from here, on the monotonic clock: the figures are measured, not
    /// dated.
    started: Instant,
}

impl Metrics {
    pub fn new(token_service: Arc<TokenService>) -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "token_requests",
            "Token endpoint requests by grant type and outcome (issued or the OAuth error code)",
            tokens.clone(),
        );
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            requests.clone(),
        );
        registry.register_collector(Box::new(CacheCollector(token_service)));
        Metrics {
            registry,
            tokens,
            requests,
            recent: std::array::from_fn(|_| RecentRequests {
                requests: MinuteCounts::new(),
                errors: MinuteCounts::new(),
            }),
            started: Instant::now(),
        }
    }

    /// Counts a token request of `grant_type` (a grant type's name, or `unknown`) that ended
    /// in `outcome`: `issued`, or the error code.
    pub fn token_request(&self, grant_type: &'static str, outcome: &'static str) {
        self.tokens
            .get_or_create(&TokenLabels {
                grant_type,
                outcome,
            })
            .inc();
        let index = GrantType::ALL
            .iter()
            .position(|grant| grant.as_str() == grant_type)
            .unwrap_or(GrantType::ALL.len());
        let recent = &self.recent[index];
        let minute = self.minute();
        recent.requests.add(minute);
        if outcome != "issued" {
            recent.errors.add(minute);
        }
    }

    /// The token requests of the last hour, per grant type that had any.
    pub fn recent_token_requests(&self) -> Vec<GrantFigures> {
        let minute = self.minute();
        let names = GrantType::ALL
            .iter()
            .map(|grant| grant.as_str())
            .chain([UNKNOWN_GRANT]);
        names
            .zip(&self.recent)
            .map(|(grant_type, recent)| GrantFigures {
                grant_type,
                requests: recent.requests.total(minute),
                errors: recent.errors.total(minute),
            })
            .filter(|figures| figures.requests > 0)
            .collect()
    }

    fn minute(&self) -> u64 {
        self.started.elapsed().as_secs() / 60
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The latency of one request, observed under its route template (never the raw path, which
/// would make label values unbounded).
pub(crate) struct RequestTimer {
    started: Instant,
    method: &'static str,
    route: String,
}

/// A method's label: the standard ones by name, any other as `other`, since a client may send
/// any token as a method and each label value holds a histogram for good.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

impl RequestTimer {
    pub(crate) fn start(request: &Request) -> Self {
        RequestTimer {
            started: Instant::now(),
            method: method_label(request.method()),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "unmatched".into()),
        }
    }

    pub(crate) fn finish(self, metrics: &Metrics, status: StatusCode) {
        metrics
            .requests
            .get_or_create(&RequestLabels {
                method: self.method,
                route: self.route,
                status: status.as_u16(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_outside_the_standard_ones_is_labelled_other() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::TRACE), "TRACE");
        for invented in ["FOO", "post", "BREW"] {
            let method = Method::from_bytes(invented.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other");
        }
    }

    #[test]
    fn minute_counts_keep_the_last_hour() {
        let counts = MinuteCounts::new();
        counts.add(0);
        counts.add(0);
        counts.add(59);
        assert_eq!(counts.total(59), 3);
        // Minute 0 leaves the window; minute 60 takes its slot over.
        assert_eq!(counts.total(60), 1);
        counts.add(60);
        assert_eq!(counts.total(60), 2);
        assert_eq!(counts.total(119), 1);
        assert_eq!(counts.total(200), 0);
    }
}
