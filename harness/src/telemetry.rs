//! What the harness tells operators: the counters `/metrics` shows for the work the runner
//! does (turns, model requests and tokens by model, tool executions by tool and outcome,
//! sandbox starts, the sessions the runner holds), and the names of the tracing spans turns,
//! model requests and tool executions run in (exported over OTLP by the server when asked).
//!
//! # Spans
//!
//! Every span is a `tracing` span at `info` level; the server's subscriber turns them into
//! OpenTelemetry spans (`--otlp-endpoint`) or leaves them to the log. Attributes follow the
//! OpenTelemetry GenAI semantic conventions where they apply:
//!
//! | span | name | attributes |
//! | --- | --- | --- |
//! | a turn (runner) | `invoke_agent` | `session.id`, `agent.id`, `gen_ai.operation.name`, `gen_ai.agent.id`, `gen_ai.conversation.id`, `turn.outcome` |
//! | a model request (resident engine, retries included; or one request of an agent CLI through the LLM gateway, `llm.gateway`: `door::gateway`) | `chat {model}` | `gen_ai.request.model`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons`, `gen_ai.request.retry_attempts`, `error.type` |
//! | a tool execution (engine) | `execute_tool {tool}` | `gen_ai.tool.name`, `gen_ai.tool.call.id`, `tool.is_error`, `tool.duration_ms`, `error.type` (`interrupted`), `process.exit.code` (bash), `sandbox.start` (`cold`: a new shell; `warm`: a kept one; `command`: a process per call) |
//!
//! Message text, tool input and tool output are attributes only when
//! [`crate::options::Options::trace_content`] is on (`serve --otlp-include-content`); secrets
//! never are (the model endpoint's token and vault credentials are not read here).
//!
//! # Counters
//!
//! One process-wide set ([`metrics`]), like a Prometheus default registry: the runner, the
//! engines and the sandbox count into it without a handle passed through every layer, and a
//! test process with several runners simply adds up. Label values come from closed sets (the
//! built-in tool names, `mcp`, `custom`; outcomes) except the model name, which agents choose:
//! the first [`MAX_MODELS`] distinct names get their own series and any other is `other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// `n` as a span attribute: OTLP integers are `i64`, and tracing-opentelemetry exports a `u64`
/// as a string.
pub(crate) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Distinct model names that get their own series.
pub const MAX_MODELS: usize = 64;

/// The label of every model name past [`MAX_MODELS`].
const OTHER_MODEL: &str = "other";

/// The upper bounds of a [`Histogram`]'s buckets, in seconds.
pub trait Bounds {
    /// Ascending upper bounds (the `+Inf` bucket is implied).
    const SECONDS: &'static [f64];
}

/// A Prometheus histogram of durations over the buckets of `B` (cumulative counts, as the
/// text format has them). The server's request latencies use it with bounds of their own.
pub struct Histogram<B> {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
    bounds: std::marker::PhantomData<B>,
}

impl<B: Bounds> Default for Histogram<B> {
    fn default() -> Self {
        Self {
            counts: vec![0; B::SECONDS.len()],
            count: 0,
            sum: 0.0,
            bounds: std::marker::PhantomData,
        }
    }
}

impl<B: Bounds> Histogram<B> {
    /// Counts one duration.
    pub fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (slot, bound) in self.counts.iter_mut().zip(B::SECONDS) {
            if seconds <= *bound {
                *slot += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of family `name` with `labels`
    /// (`key="value",…`, escaped; empty for none).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (count, bound) in self.counts.iter().zip(B::SECONDS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The buckets of the harness's durations: tools and model requests take from milliseconds to
/// minutes.
pub struct Durations;

impl Bounds for Durations {
    const SECONDS: &'static [f64] = &[
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ];
}

/// How a model request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ModelOutcome {
    /// A response arrived.
    Ok,
    /// It failed for good (terminal, or out of retries).
    Failed,
    /// An interrupt stopped it.
    Interrupted,
}

impl ModelOutcome {
    fn label(self) -> &'static str {
        match self {
            ModelOutcome::Ok => "ok",
            ModelOutcome::Failed => "failed",
            ModelOutcome::Interrupted => "interrupted",
        }
    }
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TurnOutcome {
    /// The turn went to idle (end of turn, an action required, a failure it recorded).
    Idle,
    /// A `user.interrupt` stopped it.
    Interrupted,
    /// The session went away under it (deleted, or the store failed).
    Halted,
}

impl TurnOutcome {
    /// The label and span attribute value.
    pub fn label(self) -> &'static str {
        match self {
            TurnOutcome::Idle => "idle",
            TurnOutcome::Interrupted => "interrupted",
            TurnOutcome::Halted => "halted",
        }
    }
}

/// How a tool execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ToolOutcome {
    /// It ran and succeeded.
    Ok,
    /// It ran and failed (`is_error`).
    Error,
    /// An interrupt stopped it.
    Interrupted,
}

impl ToolOutcome {
    fn label(self) -> &'static str {
        match self {
            ToolOutcome::Ok => "ok",
            ToolOutcome::Error => "error",
            ToolOutcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Default)]
struct Models {
    /// Requests by (model, outcome).
    requests: BTreeMap<(String, ModelOutcome), u64>,
    /// Retried attempts by model.
    retries: BTreeMap<String, u64>,
    /// Tokens by (model, kind).
    tokens: BTreeMap<(String, &'static str), u64>,
    /// Request durations (retries included) by model.
    durations: BTreeMap<String, Histogram<Durations>>,
}

impl Models {
    /// `model`'s label: itself while fewer than [`MAX_MODELS`] names are known.
    fn label(&self, model: &str) -> String {
        if self.retries.contains_key(model) || self.retries.len() < MAX_MODELS {
            model.to_owned()
        } else {
            OTHER_MODEL.to_owned()
        }
    }
}

/// The harness's counters; see the module header.
#[derive(Default)]
pub struct Metrics {
    turns: Mutex<BTreeMap<TurnOutcome, u64>>,
    turn_durations: Mutex<Histogram<Durations>>,
    turns_running: AtomicI64,
    sessions_held: AtomicI64,
    models: Mutex<Models>,
    tools: Mutex<BTreeMap<(&'static str, ToolOutcome), u64>>,
    tool_durations: Mutex<BTreeMap<&'static str, Histogram<Durations>>>,
    sandbox_starts: AtomicU64,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process's harness counters.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decrements a gauge when dropped.
pub(crate) struct Held(&'static AtomicI64);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a turn running until the guard drops.
    pub(crate) fn turn_started(&'static self) -> Held {
        self.turns_running.fetch_add(1, Ordering::Relaxed);
        Held(&self.turns_running)
    }

    /// Counts a session the runner has a task for until the guard drops.
    pub(crate) fn session_held(&'static self) -> Held {
        self.sessions_held.fetch_add(1, Ordering::Relaxed);
        Held(&self.sessions_held)
    }

    /// Counts one finished turn.
    pub(crate) fn turn_ended(&self, outcome: TurnOutcome, elapsed: Duration) {
        *lock(&self.turns).entry(outcome).or_default() += 1;
        lock(&self.turn_durations).observe(elapsed);
    }

    /// Counts one model request (its retries included) of `model`.
    pub(crate) fn model_request(
        &self,
        model: &str,
        outcome: ModelOutcome,
        retries: u32,
        usage: Option<&managed_agents_core::event::ModelUsage>,
        elapsed: Duration,
    ) {
        let mut models = lock(&self.models);
        let label = models.label(model);
        *models.retries.entry(label.clone()).or_default() += u64::from(retries);
        *models.requests.entry((label.clone(), outcome)).or_default() += 1;
        if let Some(usage) = usage {
            for (kind, n) in [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cache_read", usage.cache_read_input_tokens),
                ("cache_creation", usage.cache_creation_input_tokens),
            ] {
                *models.tokens.entry((label.clone(), kind)).or_default() += n;
            }
        }
        models.durations.entry(label).or_default().observe(elapsed);
    }

    /// Counts one tool execution.
    pub(crate) fn tool_executed(
        &self,
        tool: &'static str,
        outcome: ToolOutcome,
        elapsed: Duration,
    ) {
        *lock(&self.tools).entry((tool, outcome)).or_default() += 1;
        lock(&self.tool_durations)
            .entry(tool)
            .or_default()
            .observe(elapsed);
    }

    /// Counts one process started in a sandbox.
    pub(crate) fn sandbox_started(&self) {
        self.sandbox_starts.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "managed_agents_turns_total",
            "counter",
            "Session turns finished, by outcome.",
        );
        for outcome in [
            TurnOutcome::Idle,
            TurnOutcome::Interrupted,
            TurnOutcome::Halted,
        ] {
            let n = lock(&self.turns).get(&outcome).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "managed_agents_turns_total{{outcome=\"{}\"}} {n}",
                outcome.label()
            );
        }
        header(
            &mut out,
            "managed_agents_turn_duration_seconds",
            "histogram",
            "How long session turns took.",
        );
        lock(&self.turn_durations).render(&mut out, "managed_agents_turn_duration_seconds", "");
        for (name, help, value) in [
            (
                "managed_agents_turns_running",
                "Session turns running now.",
                &self.turns_running,
            ),
            (
                "managed_agents_runner_queue_depth",
                "Sessions the runner holds work for: notified of input and not yet done with it (running a turn or about to).",
                &self.sessions_held,
            ),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let models = lock(&self.models);
        header(
            &mut out,
            "managed_agents_model_requests_total",
            "counter",
            "Model requests (retries included) by model and outcome.",
        );
        for ((model, outcome), n) in &models.requests {
            let _ = writeln!(
                out,
                "managed_agents_model_requests_total{{model=\"{}\",outcome=\"{}\"}} {n}",
                escape(model),
                outcome.label()
            );
        }
        header(
            &mut out,
            "managed_agents_model_request_retries_total",
            "counter",
            "Model request attempts retried after a transient failure, by model.",
        );
        for (model, n) in &models.retries {
            let _ = writeln!(
                out,
                "managed_agents_model_request_retries_total{{model=\"{}\"}} {n}",
                escape(model)
            );
        }
        header(
            &mut out,
            "managed_agents_model_tokens_total",
            "counter",
            "Tokens of model requests by model and kind (input, output, cache_read, cache_creation).",
        );
        for ((model, kind), n) in &models.tokens {
            let _ = writeln!(
                out,
                "managed_agents_model_tokens_total{{model=\"{}\",kind=\"{kind}\"}} {n}",
                escape(model)
            );
        }
        header(
            &mut out,
            "managed_agents_model_request_duration_seconds",
            "histogram",
            "How long model requests took (retries and their waits included), by model.",
        );
        for (model, h) in &models.durations {
            let labels = format!("model=\"{}\"", escape(model));
            h.render(
                &mut out,
                "managed_agents_model_request_duration_seconds",
                &labels,
            );
        }
        drop(models);
        header(
            &mut out,
            "managed_agents_tool_executions_total",
            "counter",
            "Tool executions by tool and outcome (ok, error, interrupted).",
        );
        for ((tool, outcome), n) in lock(&self.tools).iter() {
            let _ = writeln!(
                out,
                "managed_agents_tool_executions_total{{tool=\"{tool}\",outcome=\"{}\"}} {n}",
                outcome.label()
            );
        }
        header(
            &mut out,
            "managed_agents_tool_duration_seconds",
            "histogram",
            "How long tool executions took, by tool.",
        );
        for (tool, h) in lock(&self.tool_durations).iter() {
            let labels = format!("tool=\"{tool}\"");
            h.render(&mut out, "managed_agents_tool_duration_seconds", &labels);
        }
        header(
            &mut out,
            "managed_agents_sandbox_starts_total",
            "counter",
            "Processes started in sandboxes (tool commands, bash shells, agent CLIs).",
        );
        let _ = writeln!(
            out,
            "managed_agents_sandbox_starts_total {}",
            self.sandbox_starts.load(Ordering::Relaxed)
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the Prometheus text exposition format requires: backslash, double quote
/// and line feed escaped as `\\`, `\"` and `\n` (the server's `/metrics` renders with it too).
pub fn escape(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_past_the_cap_share_one_series() {
        let metrics = Metrics::default();
        for i in 0..MAX_MODELS + 10 {
            let model = format!("model-{i}");
            metrics.model_request(&model, ModelOutcome::Ok, 0, None, Duration::ZERO);
        }
        metrics.model_request("a\"b", ModelOutcome::Failed, 2, None, Duration::ZERO);
        let text = metrics.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("managed_agents_model_requests_total{"))
            .count();
        assert_eq!(series, MAX_MODELS + 2, "{text}");
        assert!(
            text.contains("managed_agents_model_requests_total{model=\"other\",outcome=\"ok\"} 10")
        );
        assert!(text.contains("managed_agents_model_request_retries_total{model=\"other\"} 2"));
    }
}
