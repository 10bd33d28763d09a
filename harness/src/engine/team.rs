//! A coordinator's team: the roster members it may delegate to, and what else its roster
//! allows (agents it defines itself, an advisor, workflows), as the tools the model sees and
//! the agents those tools' inputs name.
//!
//! Three tools (our names: the hosted API documents the thread events, not the coordinator's
//! tools): [`MESSAGE`] (`{agent | inline_agent, message, session_thread_id?}`) delegates to a
//! member or an inline agent in a child thread; [`ADVISOR`] (`{question}`) consults the
//! advisor model in the session's advisor thread; [`WORKFLOW`] (`{name, phases: [{name,
//! tasks: [{agent | inline_agent, message}]}]}`) runs phases of parallel tasks
//! ([`super::workflow`]).

use managed_agents_core::agent::roster::Abilities;
use managed_agents_core::agent::AgentSnapshot;
use managed_agents_core::agent::ModelParams;
use managed_agents_core::session::thread::{ChildSpec, ThreadRole, ADVISOR_NAME};
use serde_json::{json, Map, Value};

use crate::model::ToolSpec;

/// The delegation tool.
pub(crate) const MESSAGE: &str = "message_agent";
/// The advisor tool.
pub(crate) const ADVISOR: &str = "ask_advisor";
/// The workflow tool.
pub(crate) const WORKFLOW: &str = "run_workflow";

/// The advisor's instructions.
const ADVISOR_SYSTEM: &str = "You are the advisor of an agent that works on a task with a team \
    of other agents. The agent consults you with a question and a transcript of its work so \
    far. Answer with concise, concrete advice: what to do next, what to check, what could go \
    wrong. You have no tools; you cannot act yourself.";

/// One agent the coordinator may delegate to.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// How the coordinator names it (its agent's name).
    pub(crate) name: String,
    /// Its agent id.
    pub(crate) agent_id: String,
    /// The snapshot its threads run.
    pub(crate) snapshot: AgentSnapshot,
}

/// What a coordinator may delegate to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Team {
    /// The roster members.
    pub(crate) members: Vec<Member>,
    /// The roster's advisor, inline-agent and workflow abilities.
    pub(crate) abilities: Abilities,
    /// The coordinator as the session runs it (inline agents and the advisor derive from it).
    pub(crate) coordinator: Option<AgentSnapshot>,
}

impl Team {
    /// Whether the coordinator has any delegation tool.
    pub(crate) fn is_empty(&self) -> bool {
        self.tools().is_empty()
    }

    fn tools(&self) -> Vec<&'static str> {
        let mut tools = Vec::new();
        if !self.members.is_empty() || self.abilities.inline_agents {
            tools.push(MESSAGE);
        }
        if self.abilities.advisor.is_some() {
            tools.push(ADVISOR);
        }
        if self.abilities.workflows.is_some()
            && (!self.members.is_empty()
                || self.abilities.workflows.is_some_and(|w| w.inline_agents))
        {
            tools.push(WORKFLOW);
        }
        tools
    }

    /// Whether `name` is one of the team's tools.
    pub(crate) fn offers(&self, name: &str) -> bool {
        self.coordinator.is_some() && self.tools().contains(&name)
    }

    /// The team's tools as the model sees them.
    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        if self.coordinator.is_none() {
            return Vec::new();
        }
        self.tools()
            .into_iter()
            .map(|tool| match tool {
                MESSAGE => self.message_spec(),
                ADVISOR => advisor_spec(),
                _ => self.workflow_spec(),
            })
            .collect()
    }

    /// ` Team members:` and one line per member (name, id, description), or nothing.
    fn members_note(&self) -> String {
        if self.members.is_empty() {
            return String::new();
        }
        let mut listing = String::from(" Team members:");
        for member in &self.members {
            listing.push_str(&format!("\n- {} ({})", member.name, member.agent_id));
            if let Some(description) = member
                .snapshot
                .description
                .as_deref()
                .filter(|d| !d.is_empty())
            {
                listing.push_str(&format!(": {description}"));
            }
        }
        listing
    }

    /// The `agent` and `inline_agent` properties of a delegation (`inline`: whether inline
    /// agents are allowed here).
    fn target_properties(&self, inline: bool) -> Map<String, Value> {
        let mut properties = Map::new();
        if !self.members.is_empty() {
            let mut names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            properties.insert(
                "agent".into(),
                json!({"type": "string", "enum": names, "description": "A team member, by name."}),
            );
        }
        if inline {
            properties.insert(
                "inline_agent".into(),
                json!({
                    "type": "object",
                    "description": "An agent you define for this task instead of a team member: \
                        it has your tools and works in the same workspace.",
                    "properties": {
                        "name": {"type": "string", "description": "A short name for it."},
                        "system": {"type": "string", "description": "Its instructions."},
                        "description": {"type": "string"},
                        "model": {"type": "string", "description": "Its model (default: yours)."}
                    },
                    "required": ["name", "system"]
                }),
            );
        }
        properties
    }

    fn message_spec(&self) -> ToolSpec {
        let mut properties = self.target_properties(self.abilities.inline_agents);
        properties.insert(
            "message".into(),
            json!({"type": "string", "description": "What to ask or tell it."}),
        );
        properties.insert(
            "session_thread_id".into(),
            json!({
                "type": "string",
                "description": "An earlier thread to continue (optional; then agent and \
                    inline_agent are not needed)."
            }),
        );
        let agents = self.members_note();
        ToolSpec {
            name: MESSAGE.to_owned(),
            description: format!(
                "Send a message to another agent and wait for its reply. Each agent works in a \
                 thread of its own, with its own context and tools, in the same workspace as \
                 you. Without session_thread_id a new thread starts (name a team member in \
                 `agent`{inline}); to follow up, give the session_thread_id its earlier reply \
                 named, and it continues with everything from its previous turns.{agents}",
                inline = if self.abilities.inline_agents {
                    ", or define one in `inline_agent`"
                } else {
                    ""
                },
            ),
            input_schema: json!({
                "type": "object",
                "properties": properties,
                "required": ["message"]
            }),
            server: None,
        }
    }

    fn workflow_spec(&self) -> ToolSpec {
        let inline = self.abilities.workflows.is_some_and(|w| w.inline_agents);
        let mut task = self.target_properties(inline);
        task.insert(
            "message".into(),
            json!({"type": "string", "description": "The task."}),
        );
        ToolSpec {
            name: WORKFLOW.to_owned(),
            description: format!(
                "Run a workflow: phases one after another, the tasks of a phase at once, each \
                 task in a new thread of its own. Every task of a later phase is given the \
                 results of the earlier phases. Answers with every task's result.{}",
                self.members_note()
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "phases": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "description": {"type": "string"},
                                "tasks": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": task,
                                        "required": ["message"]
                                    }
                                }
                            },
                            "required": ["name", "tasks"]
                        }
                    }
                },
                "required": ["name", "phases"]
            }),
            server: None,
        }
    }

    /// The agent a delegation's `input` names for a new thread: a member (`agent`) or, when
    /// `inline` allows, an agent defined in `inline_agent`. The error is the tool's answer.
    pub(crate) fn target(
        &self,
        input: &Map<String, Value>,
        inline: bool,
    ) -> Result<ChildSpec, String> {
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        let Some(coordinator) = &self.coordinator else {
            return Err("delegation is not available in this session".into());
        };
        if let Some(definition) = input.get("inline_agent").filter(|v| !v.is_null()) {
            if !inline {
                return Err(
                    "inline agents are not enabled for this agent: name a team member \
                            in `agent`"
                        .into(),
                );
            }
            return inline_agent(coordinator, definition);
        }
        let Some(wanted) = text(input, "agent") else {
            return Err(if inline {
                format!(
                    "`agent` (one of: {}) or `inline_agent` is required",
                    names.join(", ")
                )
            } else {
                format!("`agent` is required: one of {}", names.join(", "))
            });
        };
        let Some(member) = self
            .members
            .iter()
            .find(|m| m.name == wanted || m.agent_id == wanted)
        else {
            return Err(format!(
                "no agent {wanted:?} on the team: one of {}",
                names.join(", ")
            ));
        };
        Ok(ChildSpec {
            agent: member.snapshot.clone(),
            agent_name: member.name.clone(),
            role: ThreadRole::Member,
            workflow_run_id: None,
        })
    }

    /// The advisor thread's agent: the advisor model, no tools, the advisor's instructions.
    pub(crate) fn advisor(&self) -> Option<ChildSpec> {
        let coordinator = self.coordinator.as_ref()?;
        let model = self.abilities.advisor.clone()?;
        let model = ModelParams::Id(model).resolve("model", None).ok()?;
        let mut agent = coordinator.clone();
        agent.name = ADVISOR_NAME.to_owned();
        agent.description = None;
        agent.system = Some(ADVISOR_SYSTEM.to_owned());
        agent.model = model;
        agent.tools = Vec::new();
        agent.mcp_servers = Vec::new();
        agent.skills = Vec::new();
        agent.multiagent = None;
        Some(ChildSpec {
            agent,
            agent_name: ADVISOR_NAME.to_owned(),
            role: ThreadRole::Advisor,
            workflow_run_id: None,
        })
    }
}

fn advisor_spec() -> ToolSpec {
    ToolSpec {
        name: ADVISOR.to_owned(),
        description: "Ask your advisor, a stronger model that sees a transcript of your work so \
                      far, for advice: a plan, a second opinion, what to do when stuck. It \
                      answers; it does not act."
            .to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": {"question": {"type": "string", "description": "What you want advice on."}},
            "required": ["question"]
        }),
        server: None,
    }
}

/// An inline agent from its definition: the coordinator's tools and workspace, its own name,
/// instructions, description and (optionally) model.
fn inline_agent(coordinator: &AgentSnapshot, definition: &Value) -> Result<ChildSpec, String> {
    let Some(definition) = definition.as_object() else {
        return Err("`inline_agent` must be an object with name and system".into());
    };
    let name = text(definition, "name").ok_or("`inline_agent.name` is required")?;
    if name.chars().count() > 128 {
        return Err("`inline_agent.name` is longer than 128 characters".into());
    }
    if name == ADVISOR_NAME {
        return Err(format!("`inline_agent.name` may not be {ADVISOR_NAME}"));
    }
    let system = text(definition, "system").ok_or("`inline_agent.system` is required")?;
    let mut agent = coordinator.clone();
    if let Some(model) = text(definition, "model") {
        agent.model = ModelParams::Id(model)
            .resolve("inline_agent.model", None)
            .map_err(|e| e.to_string())?;
    }
    agent.name = name.clone();
    agent.system = Some(system);
    agent.description = text(definition, "description");
    agent.multiagent = None;
    Ok(ChildSpec {
        agent,
        agent_name: name,
        role: ThreadRole::Inline,
        workflow_run_id: None,
    })
}

/// The trimmed, non-empty string at `key` of `input`.
pub(crate) fn text(input: &Map<String, Value>, key: &str) -> Option<String> {
    input
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The last `limit` bytes of `text` (from a character boundary), marked as cut.
pub(crate) fn tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut at = text.len() - limit;
    while !text.is_char_boundary(at) {
        at += 1;
    }
    format!("…{}", &text[at..])
}
