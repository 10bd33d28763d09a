//! The agent's model configuration (API §4.7): a bare id or `{id, speed, effort, inference_geo}`
//! in requests, always the resolved object form in responses.

use serde::{Deserialize, Serialize};

use crate::validate::{self, FieldError};

/// How fast the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// The default.
    #[default]
    Standard,
    /// Fast mode.
    Fast,
}

/// A reasoning-effort level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffortLevel {
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `xhigh`
    Xhigh,
    /// `max`
    Max,
}

/// The effort as responses render it: `{"type": "high"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effort {
    /// The level.
    #[serde(rename = "type")]
    pub level: EffortLevel,
}

/// An effort in a request: `"high"` or `{"type": "high"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EffortParam {
    /// The bare level.
    Level(EffortLevel),
    /// The object form.
    Object(Effort),
}

impl EffortParam {
    /// The level either form names.
    pub fn level(self) -> EffortLevel {
        match self {
            EffortParam::Level(level) | EffortParam::Object(Effort { level }) => level,
        }
    }
}

/// The object form of a model in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelObjectParams {
    /// The model id (any string).
    pub id: String,
    /// `standard` (default) or `fast`.
    #[serde(default)]
    pub speed: Option<Speed>,
    /// Reasoning effort; omitted or null resolves to the stored or per-model default.
    #[serde(default)]
    pub effort: Option<EffortParam>,
    /// Inference geography (`us`, `global`, …); omitted or null clears it.
    #[serde(default)]
    pub inference_geo: Option<String>,
}

/// A model in a request: a bare id or the object form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelParams {
    /// `"claude-sonnet-4-6"`
    Id(String),
    /// `{"id": …, "speed": …, "effort": …, "inference_geo": …}`
    Object(ModelObjectParams),
}

/// The resolved model of a stored agent version, rendered as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The model id.
    pub id: String,
    /// Always present.
    pub speed: Speed,
    /// Always present, resolved at save time.
    pub effort: Effort,
    /// `null` when unset.
    pub inference_geo: Option<String>,
}

/// The effort a model gets when a request names none.
///
/// Chosen here (the API leaves it to "the per-model default"): Haiku models default to
/// `medium`, every other model (Opus, Sonnet, Fable and unknown ids) to `high`, matching the
/// Messages API default for effort-capable models.
pub fn default_effort(model_id: &str) -> EffortLevel {
    if model_id.contains("haiku") {
        EffortLevel::Medium
    } else {
        EffortLevel::High
    }
}

impl ModelParams {
    /// Resolves a request model. `previous` is the stored effort on update: an object that
    /// omits `effort` keeps it (§4.3); otherwise the per-model default applies.
    pub fn resolve(self, field: &str, previous: Option<Effort>) -> Result<ModelConfig, FieldError> {
        let (object, id_field) = match self {
            ModelParams::Id(id) => (
                ModelObjectParams {
                    id,
                    speed: None,
                    effort: None,
                    inference_geo: None,
                },
                field.to_owned(),
            ),
            ModelParams::Object(object) => (object, format!("{field}.id")),
        };
        validate::length(&id_field, &object.id, 1, 256)?;
        if let Some(geo) = &object.inference_geo {
            validate::length(&format!("{field}.inference_geo"), geo, 1, 64)?;
        }
        let effort = match object.effort {
            Some(effort) => Effort {
                level: effort.level(),
            },
            None => previous.unwrap_or(Effort {
                level: default_effort(&object.id),
            }),
        };
        Ok(ModelConfig {
            id: object.id,
            speed: object.speed.unwrap_or_default(),
            effort,
            inference_geo: object.inference_geo,
        })
    }
}
