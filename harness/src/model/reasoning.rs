//! The agent's model config (`effort`, `speed`) and thinking as each provider takes them.
//!
//! Anthropic Messages API: `thinking: {type: "adaptive"}` and `output_config: {effort}` for
//! current models; models of the 4.5 generation and before take no adaptive thinking and no
//! effort, so they get manual thinking (`{type: "enabled", budget_tokens}`, the budget scaled by
//! the effort and kept below `max_tokens`) instead. `speed: "fast"` is sent as `speed` with the
//! `fast-mode-2026-02-01` beta. Thinking is left out of a request whose last assistant tool call
//! has no thinking block to send back (the API requires one there when thinking is on; see
//! `engine::conversation`).
//!
//! OpenAI Responses API: `reasoning: {effort}` for reasoning models (`o1`, `o3`, `o4-mini`,
//! `gpt-5…`; `xhigh` and `max` become `high`), and `speed: "fast"` as `service_tier:
//! "priority"`.

use managed_agents_core::agent::{EffortLevel, Speed};
use serde_json::{json, Map, Value};

/// What a request asks of the model's reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reasoning {
    /// The agent's effort.
    pub(crate) effort: EffortLevel,
    /// The agent's speed.
    pub(crate) speed: Speed,
    /// Whether thinking is asked for.
    pub(crate) thinking: bool,
}

/// The beta header value fast mode needs.
pub(crate) const FAST_MODE_BETA: &str = "fast-mode-2026-02-01";

fn effort_name(effort: EffortLevel) -> &'static str {
    match effort {
        EffortLevel::Low => "low",
        EffortLevel::Medium => "medium",
        EffortLevel::High => "high",
        EffortLevel::Xhigh => "xhigh",
        EffortLevel::Max => "max",
    }
}

/// Whether `model` is an Anthropic model from before adaptive thinking and effort.
pub(crate) fn legacy_anthropic(model: &str) -> bool {
    model.starts_with("claude-3")
        || ["-4-0", "-4-1", "-4-5", "-4-2025"]
            .iter()
            .any(|generation| model.contains(generation))
}

/// The manual thinking budget for `effort`, below `max_tokens` (`None`: no room to think).
fn budget(effort: EffortLevel, max_tokens: u32) -> Option<u32> {
    let wanted: u32 = match effort {
        EffortLevel::Low => 2_048,
        EffortLevel::Medium => 8_192,
        EffortLevel::High => 16_384,
        EffortLevel::Xhigh => 24_576,
        EffortLevel::Max => 32_768,
    };
    let room = max_tokens.checked_sub(1_024)?;
    let budget = wanted.min(room);
    (budget >= 1_024).then_some(budget)
}

/// The Messages API body fields for `reasoning` on `model`.
pub(crate) fn anthropic_fields(
    model: &str,
    reasoning: &Reasoning,
    max_tokens: u32,
) -> Map<String, Value> {
    let mut fields = Map::new();
    if legacy_anthropic(model) {
        if reasoning.thinking {
            if let Some(budget) = budget(reasoning.effort, max_tokens) {
                fields.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": budget}),
                );
            }
        }
    } else {
        if reasoning.thinking {
            fields.insert("thinking".into(), json!({"type": "adaptive"}));
        }
        fields.insert(
            "output_config".into(),
            json!({"effort": effort_name(reasoning.effort)}),
        );
    }
    if reasoning.speed == Speed::Fast {
        fields.insert("speed".into(), json!("fast"));
    }
    fields
}

/// Whether `model` is an OpenAI reasoning model.
fn openai_reasons(model: &str) -> bool {
    let mut chars = model.chars();
    (chars.next() == Some('o') && chars.next().is_some_and(|c| c.is_ascii_digit()))
        || model.starts_with("gpt-5")
}

/// The Responses API body fields for `reasoning` on `model`.
pub(crate) fn openai_fields(model: &str, reasoning: &Reasoning) -> Map<String, Value> {
    let mut fields = Map::new();
    if openai_reasons(model) {
        let effort = match reasoning.effort {
            EffortLevel::Xhigh | EffortLevel::Max => "high",
            other => effort_name(other),
        };
        fields.insert("reasoning".into(), json!({"effort": effort}));
    }
    if reasoning.speed == Speed::Fast {
        fields.insert("service_tier".into(), json!("priority"));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasoning(effort: EffortLevel, speed: Speed, thinking: bool) -> Reasoning {
        Reasoning {
            effort,
            speed,
            thinking,
        }
    }

    #[test]
    fn anthropic_current_and_legacy_models() {
        let high = reasoning(EffortLevel::High, Speed::Standard, true);
        assert_eq!(
            Value::Object(anthropic_fields("claude-sonnet-4-6", &high, 8192)),
            json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})
        );
        assert_eq!(
            Value::Object(anthropic_fields("claude-sonnet-4-5-20250929", &high, 8192)),
            json!({"thinking": {"type": "enabled", "budget_tokens": 7168}})
        );
        assert_eq!(
            Value::Object(anthropic_fields("claude-haiku-4-5", &high, 1500)),
            json!({})
        );
        let fast = reasoning(EffortLevel::Low, Speed::Fast, false);
        assert_eq!(
            Value::Object(anthropic_fields("claude-opus-5", &fast, 8192)),
            json!({"output_config": {"effort": "low"}, "speed": "fast"})
        );
    }

    #[test]
    fn openai_models() {
        let max = reasoning(EffortLevel::Max, Speed::Standard, true);
        assert_eq!(
            Value::Object(openai_fields("gpt-5.1", &max)),
            json!({"reasoning": {"effort": "high"}})
        );
        assert_eq!(
            Value::Object(openai_fields(
                "o4-mini",
                &reasoning(EffortLevel::Low, Speed::Fast, true)
            )),
            json!({"reasoning": {"effort": "low"}, "service_tier": "priority"})
        );
        assert_eq!(Value::Object(openai_fields("gpt-4o", &max)), json!({}));
    }
}
