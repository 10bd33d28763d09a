//! Token usage, money and budgets: per-request `model_usage`, the cumulative session usage and
//! the session budget.

use serde::{Deserialize, Serialize};

/// Token counts of one model request (`span.model_request_end.model_usage`, and the grader's
/// usage on `span.outcome_evaluation_end`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
    /// The inference speed tier, when known.
    pub speed: Option<Speed>,
}

/// Inference speed tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// Standard speed.
    Standard,
    /// Fast mode.
    Fast,
}

/// Cumulative usage of a session (the Session object's `usage` and the `session.usage` event's
/// snapshot). Every key is nullable on the wire.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache, by cache lifetime.
    pub cache_creation: Option<CacheCreation>,
    /// Seconds the session spent running.
    pub active_seconds: Option<f64>,
    /// The list-price cost so far.
    pub list_cost: Option<MonetaryAmount>,
    /// Server tool calls so far.
    pub server_tool_use: Option<ServerToolUsage>,
}

impl Usage {
    /// All counters at zero; `list_cost` and `server_tool_use` unknown.
    pub fn zero() -> Self {
        Self {
            input_tokens: Some(0),
            output_tokens: Some(0),
            cache_read_input_tokens: Some(0),
            cache_creation: Some(CacheCreation {
                ephemeral_1h_input_tokens: Some(0),
                ephemeral_5m_input_tokens: Some(0),
            }),
            active_seconds: None,
            list_cost: None,
            server_tool_use: None,
        }
    }

    /// Adds one model request. Its flat cache-write count is attributed to the default
    /// five-minute cache lifetime.
    pub fn add(&mut self, model: &ModelUsage) {
        fn plus(slot: &mut Option<u64>, n: u64) {
            *slot = Some(slot.unwrap_or(0).saturating_add(n));
        }
        plus(&mut self.input_tokens, model.input_tokens);
        plus(&mut self.output_tokens, model.output_tokens);
        plus(
            &mut self.cache_read_input_tokens,
            model.cache_read_input_tokens,
        );
        let cache = self
            .cache_creation
            .get_or_insert_with(CacheCreation::default);
        plus(
            &mut cache.ephemeral_5m_input_tokens,
            model.cache_creation_input_tokens,
        );
        if cache.ephemeral_1h_input_tokens.is_none() {
            cache.ephemeral_1h_input_tokens = Some(0);
        }
    }
}

/// Cache-write tokens by cache lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheCreation {
    /// Written with a one-hour lifetime.
    pub ephemeral_1h_input_tokens: Option<u64>,
    /// Written with a five-minute lifetime.
    pub ephemeral_5m_input_tokens: Option<u64>,
}

/// Server-side tool calls.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerToolUsage {
    /// `web_fetch` calls.
    pub web_fetch_requests: Option<u64>,
    /// `web_search` calls.
    pub web_search_requests: Option<u64>,
}

/// The only currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Currency {
    /// US dollars.
    #[serde(rename = "USD")]
    Usd,
}

/// An amount of money as a string of minor units (`"2500"` is $25.00).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonetaryAmount {
    /// Minor units, as a decimal string.
    pub amount: String,
    /// The currency.
    pub currency: Currency,
}

/// A session budget: `{"type":"limit","max_list_cost":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Budget {
    /// A cap on list-priced spend.
    Limit {
        /// The cap.
        max_list_cost: MonetaryAmount,
    },
}
