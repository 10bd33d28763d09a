//! Prometheus metrics in text exposition format, kept with plain atomics and one mutex-guarded
//! map per labelled family: requests by method, route and status, request latency histograms by
//! method and route, open SSE streams, appended events, the abuse limits' refusals and read
//! timeouts, and the per-workspace quotas' refusals by quota.
//!
//! Label values come from closed sets only, so no request can add a series of its choosing:
//! the method is one of the standard methods or `other` ([`method_label`]), the route is the
//! matched route *template* of the router or `unmatched`, the status is a code the server sent.
//! Every label value is escaped as the text format requires ([`escape`]).

use std::collections::BTreeMap;
use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;

use crate::quotas::Refusal;

/// The request latency buckets: sub-millisecond to seconds.
struct Latency;

impl Bounds for Latency {
    const SECONDS: &'static [f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    ];
}

/// The route label of a request no route matched (404 fallback, junk paths).
pub const UNMATCHED: &str = "unmatched";

/// The method label: the method itself for the standard methods, `other` for anything else
/// (methods are arbitrary tokens of any length on the wire).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `(method label, route template, status)`.
type RequestKey = (&'static str, String, u16);

#[derive(Default)]
struct Inner {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Mutex<BTreeMap<(&'static str, String), Histogram<Latency>>>,
    open_streams: AtomicI64,
    appended_events: AtomicU64,
    append_batches: AtomicU64,
    rate_limited: AtomicU64,
    streams_refused: AtomicU64,
    header_read_timeouts: AtomicU64,
    body_read_timeouts: AtomicU64,
    quota_refusals: [AtomicU64; 3],
}

/// The process's metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

/// Decrements the open-stream gauge when dropped.
pub struct StreamGuard(Metrics);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.inner.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one finished request: `route` is the matched route template (`None` when no
    /// route matched), never the request's path.
    pub fn request(&self, method: &Method, route: Option<&str>, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED);
        let mut requests = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *requests
            .entry((method, route.to_owned(), status))
            .or_default() += 1;
        drop(requests);
        let mut latency = self.inner.latency.lock().unwrap_or_else(|p| p.into_inner());
        latency
            .entry((method, route.to_owned()))
            .or_default()
            .observe(elapsed);
    }

    /// Counts an open SSE stream until the guard drops.
    pub fn stream_opened(&self) -> StreamGuard {
        self.inner.open_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Counts one append of `events` events.
    pub fn appended(&self, events: usize) {
        self.inner.append_batches.fetch_add(1, Ordering::Relaxed);
        self.inner
            .appended_events
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts a request refused by the per-key rate limit.
    pub fn rate_limited(&self) {
        self.inner.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an SSE stream refused by the per-key stream limit.
    pub fn stream_refused(&self) {
        self.inner.streams_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed because its request headers did not arrive in time.
    pub fn header_read_timed_out(&self) {
        self.inner
            .header_read_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request answered 408 because its body stopped arriving.
    pub fn body_read_timed_out(&self) {
        self.inner
            .body_read_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a create refused by a per-workspace quota.
    pub fn quota_refused(&self, refusal: Refusal) {
        self.inner.quota_refusals[refusal as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The number of open SSE streams.
    pub fn open_streams(&self) -> i64 {
        self.inner.open_streams.load(Ordering::Relaxed)
    }

    /// Renders everything in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP managed_agents_http_requests_total HTTP requests by method, route and status."
        );
        let _ = writeln!(out, "# TYPE managed_agents_http_requests_total counter");
        for ((method, route, status), n) in self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "managed_agents_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP managed_agents_http_request_duration_seconds HTTP request latency by method and route."
        );
        let _ = writeln!(
            out,
            "# TYPE managed_agents_http_request_duration_seconds histogram"
        );
        for ((method, route), h) in self
            .inner
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            h.render(
                &mut out,
                "managed_agents_http_request_duration_seconds",
                &labels,
            );
        }
        let gauges = [
            (
                "managed_agents_sse_open_streams",
                "gauge",
                "Open SSE streams.",
                self.open_streams().to_string(),
            ),
            (
                "managed_agents_appended_events_total",
                "counter",
                "Session events appended through the API.",
                self.inner
                    .appended_events
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "managed_agents_append_batches_total",
                "counter",
                "Append batches written through the API.",
                self.inner
                    .append_batches
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "managed_agents_rate_limited_requests_total",
                "counter",
                "Requests refused 429 by the per-key request rate limit.",
                self.inner.rate_limited.load(Ordering::Relaxed).to_string(),
            ),
            (
                "managed_agents_sse_streams_refused_total",
                "counter",
                "SSE streams refused 429 by the per-key open stream limit.",
                self.inner.streams_refused.load(Ordering::Relaxed).to_string(),
            ),
            (
                "managed_agents_header_read_timeouts_total",
                "counter",
                "Connections closed because request headers did not arrive within the header read timeout.",
                self.inner
                    .header_read_timeouts
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "managed_agents_body_read_timeouts_total",
                "counter",
                "Requests answered 408 because the body stalled beyond the body read timeout.",
                self.inner
                    .body_read_timeouts
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            sample(&mut out, name, kind, help, value);
        }
        let name = "managed_agents_quota_refusals_total";
        let _ = writeln!(
            out,
            "# HELP {name} Creates refused 400 by a per-workspace quota, by quota.\n# TYPE {name} counter"
        );
        for refusal in Refusal::ALL {
            let n = self.inner.quota_refusals[refusal as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{quota=\"{}\"}} {n}", refusal.label());
        }
        out
    }
}

/// One sample of an unlabelled metric `name` of `kind` (`counter`, `gauge`) with its `# HELP`
/// and `# TYPE` lines, in the text exposition format.
pub(crate) fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// A label value as the text exposition format requires (one escaping for every family the
/// server renders, its own and the harness's).
pub use managed_agents_harness::telemetry::escape;
use managed_agents_harness::telemetry::{Bounds, Histogram};

/// The RocksDB writer's group-commit counters: batches (fsyncs), events, rejected requests and
/// the histogram of requests per batch (bucket `i`: `2^i ..= 2^(i+1) - 1`).
pub fn render_store(stats: &managed_agents_storage_rocksdb::Stats) -> String {
    let mut out = String::new();
    for (name, help, value) in [
        (
            "managed_agents_store_batches_total",
            "Group commits (one fsync each).",
            stats.batches,
        ),
        (
            "managed_agents_store_requests_total",
            "Appends and deletes committed.",
            stats.requests,
        ),
        (
            "managed_agents_store_rejected_total",
            "Requests rejected by the writer.",
            stats.rejected,
        ),
        (
            "managed_agents_store_events_total",
            "Events written.",
            stats.events,
        ),
    ] {
        sample(&mut out, name, "counter", help, value);
    }
    let name = "managed_agents_store_batch_size";
    let _ = writeln!(
        out,
        "# HELP {name} Requests per group commit.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (i, count) in stats.batch_sizes.iter().enumerate() {
        cumulative += count;
        if i + 1 < stats.batch_sizes.len() {
            let le = (1u64 << (i + 1)) - 1;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "{name}_sum {}\n{name}_count {}",
        stats.requests, stats.batches
    );
    out
}

/// Sessions by status (`idle`, `running`, `rescheduling`, `terminated`; archived sessions are
/// left out), counted from the catalog of every workspace at each scrape: one catalog page per
/// 500 sessions.
pub async fn render_sessions<S: managed_agents_core::storage::Store>(
    store: &S,
) -> Result<String, managed_agents_core::storage::Error> {
    use managed_agents_core::session::Status;
    use managed_agents_core::storage::{CatalogQuery, Kind, Order};
    let mut counts: BTreeMap<String, u64> = [
        Status::Idle,
        Status::Running,
        Status::Rescheduling,
        Status::Terminated,
    ]
    .iter()
    .map(|s| (s.as_str().to_owned(), 0))
    .collect();
    let all = |mut query: CatalogQuery| {
        query.order = Order::Asc;
        query.limit = 500;
        query
    };
    let mut workspaces = all(CatalogQuery::new(Kind::Workspace, ""));
    loop {
        let page = store.list(&workspaces).await?;
        for workspace in &page.entries {
            let mut sessions = all(CatalogQuery::new(Kind::Session, workspace.id.clone()));
            loop {
                let page = store.list(&sessions).await?;
                for session in &page.entries {
                    let status = match session.status.as_deref() {
                        // Idle on its threads: idle to clients.
                        None | Some(managed_agents_core::session::IDLE_ON_THREADS) => "idle",
                        Some(status) => status,
                    };
                    // Only the statuses core knows: the label set stays closed.
                    if let Some(n) = counts.get_mut(status) {
                        *n += 1;
                    }
                }
                match page.entries.last() {
                    Some(last) if page.has_more => sessions.after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        match page.entries.last() {
            Some(last) if page.has_more => workspaces.after = Some(last.id.clone()),
            _ => break,
        }
    }
    let name = "managed_agents_sessions";
    let mut out = format!(
        "# HELP {name} Sessions by status (archived sessions left out).\n# TYPE {name} gauge\n"
    );
    for (status, n) in counts {
        let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("line\nbreak"), "line\\nbreak");
        assert_eq!(escape("/v1/agents/{agent_id}"), "/v1/agents/{agent_id}");
    }

    #[test]
    fn methods_and_routes_come_from_closed_sets() {
        let metrics = Metrics::default();
        for i in 0..100 {
            let junk = Method::from_bytes(format!("JUNK{i}{}", "X".repeat(1000)).as_bytes())
                .expect("a token is a method");
            metrics.request(&junk, None, 404, Duration::from_millis(1));
        }
        metrics.request(&Method::GET, Some("/v1/agents"), 200, Duration::ZERO);
        let text = metrics.render();
        assert!(!text.contains("JUNK"), "{text}");
        let series = text
            .lines()
            .filter(|l| l.starts_with("managed_agents_http_requests_total{"))
            .collect::<Vec<_>>();
        assert_eq!(
            series,
            [
                r#"managed_agents_http_requests_total{method="GET",route="/v1/agents",status="200"} 1"#,
                r#"managed_agents_http_requests_total{method="other",route="unmatched",status="404"} 100"#,
            ]
        );
        assert!(text.contains(
            r#"managed_agents_http_request_duration_seconds_count{method="other",route="unmatched"} 100"#
        ));
    }
}
