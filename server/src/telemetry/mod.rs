//! The binary's logs and traces: one `tracing` subscriber with a log layer (text, or one JSON
//! object per line with `--log-format json`, each line carrying the fields of the spans it was
//! logged in: the request's `request_id`, the turn's `session.id`) and, with `--otlp-endpoint`,
//! an OpenTelemetry layer exporting spans over OTLP/HTTP (protobuf).
//!
//! Exported spans are those of this workspace's crates at `info` (the HTTP request span of
//! [`crate::app`], the turn, model request, tool and egress spans of
//! `managed_agents_harness::telemetry`); the HTTP client and server libraries' own spans are
//! not, so the exporter's requests never trace themselves. Without an endpoint no exporter
//! exists and spans cost what they cost the log layer. Batches leave from the SDK's own thread
//! (its `OTEL_BSP_*` variables apply) through a blocking client trusting the same roots as the
//! egress proxy; what is queued is flushed when the process ends.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub mod lines;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, and `spans` (every
    /// span the line was logged in, with its fields).
    Json,
}

/// `serve`'s log and trace flags.
#[derive(Debug, Clone, Default, Args)]
pub struct TelemetryArgs {
    /// Log line format on stderr.
    #[arg(
        long,
        env = "MANAGED_AGENTS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// Export traces over OTLP/HTTP (protobuf) to this collector: a base URL (spans go to
    /// `URL/v1/traces`) or the full `…/v1/traces` URL. Off by default.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Put message text, tool input and tool output into span attributes (off: ids, names,
    /// counts, durations and outcomes only). Secrets are never exported.
    #[arg(long, env = "MANAGED_AGENTS_OTLP_INCLUDE_CONTENT")]
    pub otlp_include_content: bool,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is not an `http` or `https` URL.
    #[error("--otlp-endpoint {0:?}: expected an http:// or https:// URL")]
    Endpoint(String),
    /// The roots the exporter trusts could not be loaded.
    #[error("--otlp-endpoint: the TLS roots: {0}")]
    Roots(String),
    /// The thread writing log lines could not be started.
    #[error("starting the log writer thread: {0}")]
    LogThread(std::io::Error),
    /// The exporter could not be built.
    #[error("--otlp-endpoint: {0}")]
    Exporter(String),
}

/// Keeps logs and traces flowing; dropping it flushes both (traces first).
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    _log_flush: lines::Flush,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            if let Err(e) = tracer.shutdown() {
                eprintln!("managed-agents: warning: flushing traces: {e}");
            }
        }
    }
}

/// The spans OTLP exports: this workspace's crates at `info` and above.
fn exported() -> Targets {
    Targets::new()
        .with_target("managed_agents_server", LevelFilter::INFO)
        .with_target("managed_agents_harness", LevelFilter::INFO)
}

/// The traces URL for `endpoint`: itself when it already ends in `/v1/traces`, else that path
/// appended (as `OTEL_EXPORTER_OTLP_ENDPOINT` is specified).
pub fn traces_url(endpoint: &str) -> Result<String, Error> {
    let trimmed = endpoint.trim();
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(Error::Endpoint(endpoint.to_owned()));
    }
    let base = trimmed.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        Ok(base.to_owned())
    } else {
        Ok(format!("{base}/v1/traces"))
    }
}

/// Installs the process's subscriber: logs through a buffer a thread of its own writes out in
/// batches ([`lines`]; nothing dropped: a full buffer makes the logging thread wait), filtered by
/// `MANAGED_AGENTS_LOG` (default `info`), and the OTLP exporter when `args` names an endpoint.
/// Call before the async runtime starts (the exporter's client must not live in it).
pub fn init(args: &TelemetryArgs) -> Result<Telemetry, Error> {
    let (log_writer, log_flush) =
        lines::spawn(Box::new(std::io::stderr()), "log-writer").map_err(Error::LogThread)?;
    let filter =
        EnvFilter::try_from_env("MANAGED_AGENTS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let log = match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(log_writer)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(log_writer)
            .with_filter(filter)
            .boxed(),
    };
    let tracer = match args
        .otlp_endpoint
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        Some(endpoint) => Some(provider(&traces_url(endpoint)?)?),
        None => None,
    };
    let otel = tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("managed-agents"))
            .with_filter(exported())
    });
    tracing_subscriber::registry().with(log).with(otel).init();
    Ok(Telemetry {
        tracer,
        _log_flush: log_flush,
    })
}

/// The tracer provider exporting to `url` in batches.
fn provider(url: &str) -> Result<SdkTracerProvider, Error> {
    use managed_agents_harness::door::{ca, mitm::Upstream};
    let roots = Upstream::new(std::path::Path::new(ca::SYSTEM_BUNDLE), &[])
        .map_err(|e| Error::Roots(e.to_string()))?;
    let client = mcp_http::blocking::Client::builder()
        .use_preconfigured_tls(roots.client_config().as_ref().clone())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Exporter(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_http_client(client)
        .build()
        .map_err(|e| Error::Exporter(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("managed-agents")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_to_a_base_url_once() {
        for (given, url) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
            ("https://c.example/otlp", "https://c.example/otlp/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ] {
            assert_eq!(traces_url(given).expect("a URL"), url);
        }
        assert!(traces_url("127.0.0.1:4318").is_err());
    }
}
