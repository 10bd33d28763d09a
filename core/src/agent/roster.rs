//! The multiagent roster (API §4.6): resolving what a create or update sends against the agents
//! it names, and rendering the stored form.
//!
//! Two forms: `{type: "coordinator", agents: [...]}` (1–20 entries: an agent id string,
//! `{type: "agent", id, version?}`, `{type: "self"}` at most once, `{type: "advisor", model}` at
//! most once and echoed last) and `{type: "multiagent_20261001", advisor?, subagents?,
//! workflows?}` (every key resolved: the advisor disabled by default, subagents and workflows
//! enabled with inline agents enabled and no predefined agents by default).
//!
//! Agent entries resolve to `{type: "agent", id, version}`: the version given, else the latest at
//! save time. A named agent must exist in the caller's workspace, not be archived, not itself
//! have a roster in that version (one level only), and appear once. `self` is stored as
//! `{type: "self"}` and rendered as a reference to the agent's own id and rendered version
//! ([`render`]), so it never has to know a version number before the version is saved.
//!
//! Pure: the caller looks the named agents up ([`named`]) and passes what it found.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::config::MAX_ROSTER;
use crate::validate::{self, FieldError};

/// What the roster rules need to know of an agent a roster names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Its current version.
    pub latest: u64,
    /// Whether it is archived.
    pub archived: bool,
    /// The versions whose configuration has a `multiagent` roster of its own.
    pub coordinator_versions: BTreeSet<u64>,
}

/// The agent ids `value` names (strings and `{type: "agent"}` entries, of either form), for the
/// caller to look up. Malformed entries are skipped here and refused by [`resolve`].
pub fn named(value: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut collect = |entries: Option<&Value>| {
        for entry in entries.and_then(Value::as_array).into_iter().flatten() {
            match entry {
                Value::String(id) => ids.push(id.clone()),
                Value::Object(map) if map.get("type").and_then(Value::as_str) == Some("agent") => {
                    if let Some(id) = map.get("id").and_then(Value::as_str) {
                        ids.push(id.to_owned());
                    }
                }
                _ => {}
            }
        }
    };
    collect(value.get("agents"));
    for key in ["subagents", "workflows"] {
        collect(value.get(key).and_then(|v| v.get("predefined_agents")));
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Resolves a roster as sent into the form stored and echoed. `lookup` holds what the caller
/// found of each id [`named`] returned (a missing id does not exist in the caller's workspace);
/// `own` is the id of the agent being updated (naming it is refused: use `self`).
pub fn resolve(
    value: &Value,
    lookup: &BTreeMap<String, Named>,
    own: Option<&str>,
) -> Result<Value, FieldError> {
    let Some(map) = value.as_object() else {
        return Err(FieldError::new("multiagent", "must be an object"));
    };
    match map.get("type").and_then(Value::as_str) {
        Some("coordinator") => {
            let Some(agents) = map.get("agents") else {
                return Err(FieldError::new("multiagent.agents", "is required"));
            };
            let agents = entries("multiagent.agents", agents, lookup, own, true, 1)?;
            Ok(json!({"type": "coordinator", "agents": agents}))
        }
        Some("multiagent_20261001") => {
            let advisor = match map.get("advisor") {
                None | Some(Value::Null) => json!({"type": "disabled"}),
                Some(advisor) => match advisor.get("type").and_then(Value::as_str) {
                    Some("disabled") => json!({"type": "disabled"}),
                    Some("enabled") => {
                        let model = model("multiagent.advisor.model", advisor.get("model"))?;
                        json!({"type": "enabled", "model": model})
                    }
                    _ => {
                        return Err(FieldError::new(
                            "multiagent.advisor.type",
                            "must be \"enabled\" or \"disabled\"",
                        ))
                    }
                },
            };
            let subagents = member("subagents", map.get("subagents"), lookup, own)?;
            let workflows = member("workflows", map.get("workflows"), lookup, own)?;
            Ok(json!({
                "type": "multiagent_20261001",
                "advisor": advisor,
                "subagents": subagents,
                "workflows": workflows,
            }))
        }
        _ => Err(FieldError::new(
            "multiagent.type",
            "must be \"coordinator\" or \"multiagent_20261001\"",
        )),
    }
}

fn model(field: &str, value: Option<&Value>) -> Result<String, FieldError> {
    let Some(model) = value.and_then(Value::as_str) else {
        return Err(FieldError::new(field, "is required and must be a string"));
    };
    validate::length(field, model, 1, 256)?;
    Ok(model.to_owned())
}

/// `subagents` or `workflows` of the `multiagent_20261001` form.
fn member(
    key: &str,
    value: Option<&Value>,
    lookup: &BTreeMap<String, Named>,
    own: Option<&str>,
) -> Result<Value, FieldError> {
    let field = format!("multiagent.{key}");
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(
            json!({"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []}),
        );
    };
    match value.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(json!({"type": "disabled"})),
        Some("enabled") => {
            let inline = match value.get("inline_agents").filter(|v| !v.is_null()) {
                None => "enabled",
                Some(inline) => match inline.get("type").and_then(Value::as_str) {
                    Some("enabled") => "enabled",
                    Some("disabled") => "disabled",
                    _ => {
                        return Err(FieldError::new(
                            format!("{field}.inline_agents.type"),
                            "must be \"enabled\" or \"disabled\"",
                        ))
                    }
                },
            };
            let predefined = match value.get("predefined_agents").filter(|v| !v.is_null()) {
                None => Vec::new(),
                Some(list) => entries(
                    &format!("{field}.predefined_agents"),
                    list,
                    lookup,
                    own,
                    false,
                    0,
                )?,
            };
            Ok(json!({
                "type": "enabled",
                "inline_agents": {"type": inline},
                "predefined_agents": predefined,
            }))
        }
        _ => Err(FieldError::new(
            format!("{field}.type"),
            "must be \"enabled\" or \"disabled\"",
        )),
    }
}

/// A list of roster entries, resolved; the advisor (when `advisor` allows one) last.
fn entries(
    field: &str,
    list: &Value,
    lookup: &BTreeMap<String, Named>,
    own: Option<&str>,
    advisor_allowed: bool,
    min: usize,
) -> Result<Vec<Value>, FieldError> {
    let Some(list) = list.as_array() else {
        return Err(FieldError::new(field, "must be an array"));
    };
    if min > 0 {
        validate::non_empty_items(field, list.len(), MAX_ROSTER)?;
    } else {
        validate::max_items(field, list.len(), MAX_ROSTER)?;
    }
    let mut resolved = Vec::with_capacity(list.len());
    let mut seen = BTreeSet::new();
    let mut has_self = false;
    let mut advisor = None;
    for (i, entry) in list.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let (id, version) = match entry {
            Value::String(id) => (id.as_str(), None),
            Value::Object(map) => match map.get("type").and_then(Value::as_str) {
                Some("agent") => {
                    let Some(id) = map.get("id").and_then(Value::as_str) else {
                        return Err(FieldError::new(format!("{path}.id"), "is required"));
                    };
                    let version = match map.get("version") {
                        None | Some(Value::Null) => None,
                        Some(v) => match v.as_u64() {
                            Some(n) if n >= 1 => Some(n),
                            _ => {
                                return Err(FieldError::new(
                                    format!("{path}.version"),
                                    "must be an integer of at least 1",
                                ))
                            }
                        },
                    };
                    (id, version)
                }
                Some("self") => {
                    if has_self {
                        return Err(FieldError::new(path, "at most one `self` entry"));
                    }
                    has_self = true;
                    resolved.push(json!({"type": "self"}));
                    continue;
                }
                Some("advisor") if advisor_allowed => {
                    if advisor.is_some() {
                        return Err(FieldError::new(path, "at most one `advisor` entry"));
                    }
                    let model = model(&format!("{path}.model"), map.get("model"))?;
                    advisor = Some(json!({"type": "advisor", "model": model}));
                    continue;
                }
                _ => {
                    return Err(FieldError::new(
                        format!("{path}.type"),
                        if advisor_allowed {
                            "must be \"agent\", \"self\" or \"advisor\""
                        } else {
                            "must be \"agent\" or \"self\""
                        },
                    ))
                }
            },
            _ => {
                return Err(FieldError::new(
                    path,
                    "must be an agent id or a roster entry object",
                ))
            }
        };
        if own == Some(id) {
            return Err(FieldError::new(
                path,
                "names the agent itself; use {\"type\": \"self\"}",
            ));
        }
        let Some(named) = lookup.get(id) else {
            return Err(FieldError::new(
                path,
                format!("agent {id:?} does not exist"),
            ));
        };
        if named.archived {
            return Err(FieldError::new(path, format!("agent {id:?} is archived")));
        }
        let version = version.unwrap_or(named.latest);
        if version > named.latest {
            return Err(FieldError::new(
                path,
                format!("agent {id:?} has no version {version}"),
            ));
        }
        if named.coordinator_versions.contains(&version) {
            return Err(FieldError::new(
                path,
                format!(
                    "agent {id:?} version {version} has a multiagent roster itself; rosters are one level deep"
                ),
            ));
        }
        if !seen.insert(id.to_owned()) {
            return Err(FieldError::new(
                path,
                format!("agent {id:?} appears more than once"),
            ));
        }
        resolved.push(json!({"type": "agent", "id": id, "version": version}));
    }
    resolved.extend(advisor);
    Ok(resolved)
}

/// The stored roster `value` as the agent object renders it: every `{type: "self"}` becomes a
/// reference to agent `id` at `version` (the version being rendered).
pub fn render(value: &Value, id: &str, version: u64) -> Value {
    let mut value = value.clone();
    for_each_entry_mut(&mut value, |entry| {
        if entry.get("type").and_then(Value::as_str) == Some("self") {
            *entry = json!({"type": "agent", "id": id, "version": version});
        }
    });
    value
}

/// Calls `visit` on every entry of a stored roster's lists, of either form: the coordinator
/// form's `agents`, the `multiagent_20261001` form's `predefined_agents`.
fn for_each_entry_mut(value: &mut Value, mut visit: impl FnMut(&mut Value)) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    for (key, member) in map.iter_mut() {
        let list = match key.as_str() {
            "agents" => Some(member),
            "subagents" | "workflows" => member.get_mut("predefined_agents"),
            _ => None,
        };
        for entry in list.and_then(Value::as_array_mut).into_iter().flatten() {
            visit(entry);
        }
    }
}

/// The roster `value` as a session holds it (API §6.4, `BetaManagedAgentsSessionMultiagent`):
/// every agent entry replaced by that agent's full definition, `self` by `own` (the
/// coordinator's snapshot as the session runs it). `definitions` are the members'
/// snapshots; a member without one keeps its reference. Definitions carry no roster.
pub fn for_session(
    value: &Value,
    own: &super::AgentSnapshot,
    definitions: &[super::AgentSnapshot],
) -> Value {
    let define = |snapshot: &super::AgentSnapshot| {
        let mut snapshot = snapshot.clone();
        snapshot.multiagent = None;
        let mut value = serde_json::to_value(snapshot).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.remove("multiagent");
        }
        value
    };
    let mut value = value.clone();
    for_each_entry_mut(&mut value, |entry| {
        let found = match entry.get("type").and_then(Value::as_str) {
            Some("self") => Some(define(own)),
            Some("agent") => {
                let id = entry.get("id").and_then(Value::as_str);
                let version = entry.get("version").and_then(Value::as_u64);
                definitions
                    .iter()
                    .find(|d| Some(d.id.as_str()) == id && Some(d.version) == version)
                    .map(define)
            }
            _ => None,
        };
        if let Some(found) = found {
            *entry = found;
        }
    });
    value
}

fn enabled(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| v.get("type").and_then(Value::as_str) == Some("enabled"))
}

/// The entries of a stored roster a coordinator may delegate to, in roster order: the
/// coordinator form's `agents`, or the `multiagent_20261001` form's enabled subagents' and
/// then enabled workflows' `predefined_agents`.
fn delegable_entries(value: &Value) -> impl Iterator<Item = &Value> {
    let lists: Vec<Option<&Value>> = match value.get("type").and_then(Value::as_str) {
        Some("coordinator") => vec![value.get("agents")],
        Some("multiagent_20261001") => ["subagents", "workflows"]
            .into_iter()
            .map(|key| enabled(value.get(key)).and_then(|s| s.get("predefined_agents")))
            .collect(),
        _ => Vec::new(),
    };
    lists
        .into_iter()
        .flat_map(|list| list.and_then(Value::as_array).into_iter().flatten())
}

/// What else than its members a stored roster gives the coordinator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Abilities {
    /// The advisor's model, when the roster has an advisor.
    pub advisor: Option<String>,
    /// Whether the coordinator may delegate to agents it defines itself (subagents).
    pub inline_agents: bool,
    /// Whether the coordinator may run workflows, and with inline agents in them.
    pub workflows: Option<WorkflowAbilities>,
}

/// What the enabled `workflows` of a `multiagent_20261001` roster allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkflowAbilities {
    /// Whether a workflow's tasks may run agents the coordinator defines itself.
    pub inline_agents: bool,
}

/// The [`Abilities`] of stored roster `value`: the coordinator form's advisor entry; the
/// `multiagent_20261001` form's enabled advisor, enabled subagents' inline agents and enabled
/// workflows.
pub fn abilities(value: &Value) -> Abilities {
    let inline = |member: &Value| {
        member
            .get("inline_agents")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .is_none_or(|t| t == "enabled")
    };
    match value.get("type").and_then(Value::as_str) {
        Some("coordinator") => Abilities {
            advisor: value
                .get("agents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| e.get("type").and_then(Value::as_str) == Some("advisor"))
                .and_then(|e| e.get("model"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            inline_agents: false,
            workflows: None,
        },
        Some("multiagent_20261001") => Abilities {
            advisor: enabled(value.get("advisor"))
                .and_then(|a| a.get("model"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            inline_agents: enabled(value.get("subagents")).is_some_and(inline),
            workflows: enabled(value.get("workflows")).map(|w| WorkflowAbilities {
                inline_agents: inline(w),
            }),
        },
        _ => Abilities::default(),
    }
}

/// The full definitions a session's roster holds ([`for_session`]), in roster order, each
/// once.
pub fn definitions(value: &Value) -> Vec<super::AgentSnapshot> {
    let mut found: Vec<super::AgentSnapshot> = Vec::new();
    for entry in delegable_entries(value).filter(|entry| entry.get("name").is_some()) {
        if let Ok(snapshot) = serde_json::from_value::<super::AgentSnapshot>(entry.clone()) {
            if !found
                .iter()
                .any(|f| f.id == snapshot.id && f.version == snapshot.version)
            {
                found.push(snapshot);
            }
        }
    }
    found
}

/// One delegable member of a stored roster: a saved agent at a version, or the agent itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// `{type: "agent", id, version}`.
    Agent {
        /// The agent.
        id: String,
        /// Its resolved version.
        version: u64,
    },
    /// `{type: "self"}`.
    SelfCopy,
}

/// The agents a stored roster lets the coordinator delegate to, in roster order: the
/// coordinator form's agent and `self` entries, or the `multiagent_20261001` form's enabled
/// subagents' and enabled workflows' predefined agents, each once. The advisor is not a
/// member ([`abilities`]).
pub fn members(value: &Value) -> Vec<Member> {
    let mut found = Vec::new();
    for member in delegable_entries(value).filter_map(|entry| {
        match entry.get("type").and_then(Value::as_str) {
            Some("self") => Some(Member::SelfCopy),
            Some("agent") => Some(Member::Agent {
                id: entry.get("id")?.as_str()?.to_owned(),
                version: entry.get("version")?.as_u64()?,
            }),
            _ => None,
        }
    }) {
        if !found.contains(&member) {
            found.push(member);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup() -> BTreeMap<String, Named> {
        let mut map = BTreeMap::new();
        map.insert(
            "agent_a".to_owned(),
            Named {
                latest: 3,
                archived: false,
                coordinator_versions: BTreeSet::new(),
            },
        );
        map.insert(
            "agent_old".to_owned(),
            Named {
                latest: 1,
                archived: true,
                coordinator_versions: BTreeSet::new(),
            },
        );
        map.insert(
            "agent_boss".to_owned(),
            Named {
                latest: 2,
                archived: false,
                coordinator_versions: BTreeSet::from([2]),
            },
        );
        map
    }

    #[test]
    fn coordinator_entries_resolve_with_the_advisor_last() {
        let sent = json!({"type": "coordinator", "agents": [
            {"type": "advisor", "model": "claude-opus-4-6"},
            "agent_a",
            {"type": "self"},
            {"type": "agent", "id": "agent_boss", "version": 1},
        ]});
        let stored = resolve(&sent, &lookup(), None).unwrap();
        assert_eq!(
            stored,
            json!({"type": "coordinator", "agents": [
                {"type": "agent", "id": "agent_a", "version": 3},
                {"type": "self"},
                {"type": "agent", "id": "agent_boss", "version": 1},
                {"type": "advisor", "model": "claude-opus-4-6"},
            ]})
        );
        assert_eq!(
            render(&stored, "agent_me", 4)["agents"][1],
            json!({"type": "agent", "id": "agent_me", "version": 4})
        );
        assert_eq!(
            members(&stored),
            vec![
                Member::Agent {
                    id: "agent_a".into(),
                    version: 3
                },
                Member::SelfCopy,
                Member::Agent {
                    id: "agent_boss".into(),
                    version: 1
                },
            ]
        );
    }

    #[test]
    fn bad_rosters_name_the_entry() {
        let cases = [
            (
                json!({"type": "coordinator", "agents": []}),
                "multiagent.agents",
            ),
            (
                json!({"type": "coordinator", "agents": ["agent_x"]}),
                "multiagent.agents[0]",
            ),
            (
                json!({"type": "coordinator", "agents": ["agent_old"]}),
                "multiagent.agents[0]",
            ),
            (
                json!({"type": "coordinator", "agents": ["agent_boss"]}),
                "multiagent.agents[0]",
            ),
            (
                json!({"type": "coordinator", "agents": ["agent_a", {"type": "agent", "id": "agent_a", "version": 1}]}),
                "multiagent.agents[1]",
            ),
            (
                json!({"type": "coordinator", "agents": [{"type": "self"}, {"type": "self"}]}),
                "multiagent.agents[1]",
            ),
            (
                json!({"type": "coordinator", "agents": [{"type": "advisor", "model": "m"}, {"type": "advisor", "model": "m"}]}),
                "multiagent.agents[1]",
            ),
            (
                json!({"type": "coordinator", "agents": [{"type": "agent", "id": "agent_a", "version": 9}]}),
                "multiagent.agents[0]",
            ),
            (
                json!({"type": "coordinator", "agents": ["agent_me"]}),
                "multiagent.agents[0]",
            ),
            (json!({"type": "swarm"}), "multiagent.type"),
        ];
        for (sent, field) in cases {
            let err = resolve(&sent, &lookup(), Some("agent_me")).unwrap_err();
            assert_eq!(err.field, field, "{sent}");
        }
    }

    #[test]
    fn the_2026_form_resolves_every_key() {
        let stored = resolve(&json!({"type": "multiagent_20261001"}), &lookup(), None).unwrap();
        assert_eq!(
            stored,
            json!({
                "type": "multiagent_20261001",
                "advisor": {"type": "disabled"},
                "subagents": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
                "workflows": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
            })
        );
        let stored = resolve(
            &json!({"type": "multiagent_20261001",
                "advisor": {"type": "enabled", "model": "claude-opus-4-6"},
                "subagents": {"type": "enabled", "predefined_agents": ["agent_a", {"type": "self"}]},
                "workflows": {"type": "disabled"}}),
            &lookup(),
            None,
        )
        .unwrap();
        assert_eq!(
            stored["subagents"]["predefined_agents"],
            json!([{"type": "agent", "id": "agent_a", "version": 3}, {"type": "self"}])
        );
        assert_eq!(stored["workflows"], json!({"type": "disabled"}));
        assert_eq!(members(&stored).len(), 2);
        let err = resolve(
            &json!({"type": "multiagent_20261001", "subagents": {"type": "enabled", "predefined_agents": [{"type": "advisor", "model": "m"}]}}),
            &lookup(),
            None,
        )
        .unwrap_err();
        assert_eq!(err.field, "multiagent.subagents.predefined_agents[0].type");
    }

    #[test]
    fn a_session_roster_holds_full_definitions() {
        let snapshot = |id: &str,
                        name: &str,
                        roster: Option<Value>|
         -> crate::agent::AgentSnapshot {
            let mut value = json!({
                "type": "agent", "id": id, "version": 2, "name": name,
                "model": {"id": "claude-sonnet-4-6", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
            });
            if let Some(roster) = roster {
                value["multiagent"] = roster;
            }
            serde_json::from_value(value).unwrap()
        };
        let stored = json!({"type": "coordinator", "agents": [
            {"type": "agent", "id": "agent_a", "version": 2},
            {"type": "self"},
            {"type": "agent", "id": "agent_gone", "version": 1},
            {"type": "advisor", "model": "m"},
        ]});
        let own = snapshot("agent_me", "lead", Some(stored.clone()));
        let session = for_session(&stored, &own, &[snapshot("agent_a", "reviewer", None)]);
        assert_eq!(session["agents"][0]["name"], "reviewer");
        assert_eq!(session["agents"][1]["name"], "lead");
        assert!(session["agents"][1].get("multiagent").is_none());
        assert_eq!(
            session["agents"][2],
            json!({"type": "agent", "id": "agent_gone", "version": 1})
        );
        assert_eq!(
            session["agents"][3],
            json!({"type": "advisor", "model": "m"})
        );
        let names: Vec<_> = definitions(&session).into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["reviewer", "lead"]);
        assert!(definitions(&stored).is_empty());
    }

    #[test]
    fn abilities_follow_each_form() {
        let coordinator = json!({"type": "coordinator", "agents": [
            {"type": "agent", "id": "agent_a", "version": 1},
            {"type": "advisor", "model": "claude-opus-4-6"},
        ]});
        assert_eq!(
            abilities(&coordinator),
            Abilities {
                advisor: Some("claude-opus-4-6".into()),
                inline_agents: false,
                workflows: None,
            }
        );
        let defaults = resolve(&json!({"type": "multiagent_20261001"}), &lookup(), None).unwrap();
        assert_eq!(
            abilities(&defaults),
            Abilities {
                advisor: None,
                inline_agents: true,
                workflows: Some(WorkflowAbilities {
                    inline_agents: true
                }),
            }
        );
        let narrowed = resolve(
            &json!({"type": "multiagent_20261001",
                "advisor": {"type": "enabled", "model": "m"},
                "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}},
                "workflows": {"type": "disabled"}}),
            &lookup(),
            None,
        )
        .unwrap();
        assert_eq!(
            abilities(&narrowed),
            Abilities {
                advisor: Some("m".into()),
                inline_agents: false,
                workflows: None,
            }
        );
    }

    #[test]
    fn workflow_members_are_delegable_once() {
        let stored = json!({"type": "multiagent_20261001",
            "subagents": {"type": "enabled", "predefined_agents": [
                {"type": "agent", "id": "agent_a", "version": 3}]},
            "workflows": {"type": "enabled", "predefined_agents": [
                {"type": "agent", "id": "agent_a", "version": 3}, {"type": "self"}]}});
        assert_eq!(
            members(&stored),
            [
                Member::Agent {
                    id: "agent_a".into(),
                    version: 3
                },
                Member::SelfCopy
            ]
        );
    }
}
