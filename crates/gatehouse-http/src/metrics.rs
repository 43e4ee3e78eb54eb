//! Prometheus metrics. The registry lives in the application state rather than in a global, so
//! every server (and every test server) counts for itself.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use gatehouse_core::token::TokenService;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub grant_type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
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

pub struct Metrics {
    registry: Registry,
    tokens: Family<TokenLabels, Counter>,
    requests: Family<RequestLabels, Histogram>,
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
        }
    }

    pub fn token_request(&self, grant_type: &str, outcome: &str) {
        self.tokens
            .get_or_create(&TokenLabels {
                grant_type: grant_type.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Middleware: observes the latency of every request under its route template (never the raw
/// path, which would make label values unbounded).
pub async fn record_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}
