//! How Claude Code is started for a session: its command line (stream-json both ways, the
//! agent's model and system prompt, the tools it may use and how, permission prompts on stdio,
//! no settings read from the workspace) and its environment (the LLM gateway and a placeholder
//! key, no non-essential traffic). Pure.
//!
//! Tools: the enabled built-in tools of the agent's toolset are offered under Claude Code's
//! names (`--tools`); disabled ones are not offered and denied (`--disallowedTools`);
//! `always_allow` ones run without asking (`--allowedTools`); `always_ask` and `auto` ones
//! get an `ask` rule, so even a read-only command prompts, and the prompt comes to the harness
//! (`--permission-prompt-tool stdio`), which answers from the recorded call (for `auto`, the
//! classifier's verdict). `--setting-sources ""` keeps settings files in the
//! workspace (which the agent can write) from granting anything.
//!
//! The conversation: its id is derived from the session id ([`conversation_id`]), so the first
//! process creates it (`--session-id`) and every later one, after a turn or a server restart,
//! continues it (`--resume`); HOME is the persistent workspace, where Claude Code keeps it.

use std::path::Path;
use std::time::Duration;

use managed_agents_core::agent::tools::{builtin_setting, Tool};
use managed_agents_core::agent::{BuiltinTool, PermissionPolicy};
use serde_json::json;

use super::map::claude_name;
use super::{custom, team};
use crate::engine::TurnAgent;
use crate::sandbox::Command;

/// HOME (and working directory) of Claude Code in the sandbox: the session's workspace.
pub(crate) const HOME: &str = "/workspace";

/// The longest a Claude Code process may live (a turn, or a wait for a confirmation).
pub(crate) const LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// Stderr kept from a Claude Code process.
const STDERR_LIMIT: usize = 64 * 1024;

/// The UUID of the Claude Code conversation of session `session_id` (stable: FNV-1a over the
/// id, shaped as a version-4 UUID).
pub(crate) fn conversation_id(session_id: &str) -> String {
    let fnv = |seed: u64| {
        session_id.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_be_bytes());
    bytes[8..].copy_from_slice(&fnv(0x6c62_272e_07bb_0142).to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Where Claude Code keeps conversation `id` under the workspace directory `workspace` (its
/// existence means the conversation can be resumed).
pub(crate) fn transcript(workspace: &Path, id: &str) -> std::path::PathBuf {
    // Claude Code names a project directory after its working directory, `/` replaced by `-`.
    workspace
        .join(".claude/projects")
        .join(HOME.replace('/', "-"))
        .join(format!("{id}.jsonl"))
}

/// The tool lists of the command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ToolLists {
    pub(crate) offered: Vec<&'static str>,
    pub(crate) allowed: Vec<&'static str>,
    pub(crate) ask: Vec<&'static str>,
    pub(crate) disallowed: Vec<&'static str>,
}

/// Splits the agent's built-in tools by how Claude Code may use them.
pub(crate) fn tool_lists(tools: &[Tool]) -> ToolLists {
    let mut lists = ToolLists::default();
    for tool in BuiltinTool::ALL {
        let name = claude_name(tool);
        match builtin_setting(tools, tool) {
            Some(s) if s.enabled => {
                lists.offered.push(name);
                match s.permission_policy {
                    PermissionPolicy::AlwaysAllow => lists.allowed.push(name),
                    // `auto` calls are judged by the classifier when Claude Code asks.
                    PermissionPolicy::AlwaysAsk | PermissionPolicy::Auto => lists.ask.push(name),
                }
            }
            _ => lists.disallowed.push(name),
        }
    }
    lists
}

/// What a launch needs besides the agent.
pub(crate) struct Launch<'a> {
    /// The `claude` executable, at the path it has inside the sandbox.
    pub(crate) program: &'a Path,
    /// The conversation ([`conversation_id`]).
    pub(crate) conversation: &'a str,
    /// Whether the conversation exists already (`--resume`) or is new (`--session-id`).
    pub(crate) resume: bool,
    /// The Anthropic endpoint Claude Code calls (the LLM gateway).
    pub(crate) base_url: &'a str,
    /// The key it sends there (a placeholder the gateway replaces).
    pub(crate) api_key: &'a str,
    /// A plugin directory to load (`--plugin-dir`): the session's skills (`attach::skills`).
    pub(crate) plugin_dir: Option<&'a str>,
    /// A coordinator's team tools (our names), served by the harness ([`super::team`]) and
    /// pre-allowed.
    pub(crate) team: Vec<String>,
}

/// The sandbox command that starts Claude Code for `agent`.
pub(crate) fn command(launch: &Launch<'_>, agent: &TurnAgent) -> Command {
    let mut lists = tool_lists(&agent.tools);
    if launch.plugin_dir.is_some() {
        // The session's skills: Claude Code lists and loads them through its `Skill` tool,
        // which only reads the read-only skill files.
        lists.offered.push("Skill");
        lists.allowed.push("Skill");
    }
    let mut argv: Vec<String> = vec![
        launch.program.to_string_lossy().into_owned(),
        "--print".into(),
        "--input-format".into(),
        "stream-json".into(),
        "--output-format".into(),
        "stream-json".into(),
        "--verbose".into(),
        "--model".into(),
        agent.model.clone(),
        "--permission-prompt-tool".into(),
        "stdio".into(),
        "--setting-sources".into(),
        String::new(),
        "--strict-mcp-config".into(),
        "--system-prompt-snapshot".into(),
        "off".into(),
        "--tools".into(),
        lists.offered.join(","),
        "--settings".into(),
        json!({"permissions": {"ask": lists.ask}}).to_string(),
    ];
    let mut allowed: Vec<String> = lists.allowed.iter().map(|s| (*s).to_owned()).collect();
    let customs: Vec<String> = custom::tools(&agent.tools)
        .map(|t| custom::claude_name(&t.name))
        .collect();
    // The agent's MCP servers, reached through the egress proxy (crate::mcp::cli); their
    // calls are not pre-allowed: each one's permission prompt is decided by its toolset.
    let mut servers = crate::mcp::cli::claude_servers(&agent.mcp_servers, &agent.tools);
    if !customs.is_empty() {
        servers.insert(custom::SERVER.to_owned(), custom::sdk_server());
        allowed.extend(customs);
    }
    if !launch.team.is_empty() {
        servers.insert(team::SERVER.to_owned(), team::sdk_server());
        allowed.extend(launch.team.iter().map(|name| team::claude_name(name)));
    }
    if !servers.is_empty() {
        let config = json!({ "mcpServers": servers }).to_string();
        argv.extend(["--mcp-config".to_owned(), config]);
    }
    let disallowed: Vec<String> = lists.disallowed.iter().map(|s| (*s).to_owned()).collect();
    for (flag, list) in [
        ("--allowedTools", &allowed),
        ("--disallowedTools", &disallowed),
    ] {
        if !list.is_empty() {
            argv.extend([flag.to_owned(), list.join(",")]);
        }
    }
    if let Some(dir) = launch.plugin_dir {
        argv.extend(["--plugin-dir".to_owned(), dir.to_owned()]);
    }
    if let Some(system) = agent.system.as_deref().filter(|s| !s.is_empty()) {
        argv.extend(["--system-prompt".to_owned(), system.to_owned()]);
    }
    let conversation_flag = if launch.resume {
        "--resume"
    } else {
        "--session-id"
    };
    argv.extend([conversation_flag.to_owned(), launch.conversation.to_owned()]);
    let mut command = Command::new(argv)
        .timeout(LIFETIME)
        .output_limit(STDERR_LIMIT)
        .env("HOME", HOME)
        .env("ANTHROPIC_BASE_URL", launch.base_url)
        .env("ANTHROPIC_API_KEY", launch.api_key);
    for quiet in [
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "DISABLE_AUTOUPDATER",
        "DISABLE_BUG_COMMAND",
    ] {
        command = command.env(quiet, "1");
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agent(tools: serde_json::Value, system: Option<&str>) -> TurnAgent {
        TurnAgent {
            model: "claude-sonnet-4-5".into(),
            effort: managed_agents_core::agent::EffortLevel::High,
            speed: managed_agents_core::agent::Speed::Standard,
            system: system.map(str::to_owned),
            tools: managed_agents_core::agent::tools::resolve(
                "tools",
                serde_json::from_value(tools).expect("tool params"),
            )
            .expect("tools"),
            mcp_servers: Vec::new(),
        }
    }

    fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
        let i = argv.iter().position(|a| a == name)?;
        argv.get(i + 1).map(String::as_str)
    }

    #[test]
    fn the_conversation_id_is_a_stable_uuid_per_session() {
        let a = conversation_id("sesn_011CZkZAtmR3yMPDzynEDxu7");
        assert_eq!(a, conversation_id("sesn_011CZkZAtmR3yMPDzynEDxu7"));
        assert_ne!(a, conversation_id("sesn_011CZkZAtmR3yMPDzynEDxu8"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(
            transcript(Path::new("/w"), &a),
            Path::new("/w/.claude/projects/-workspace").join(format!("{a}.jsonl"))
        );
    }

    #[test]
    fn tools_follow_the_toolset() {
        let tools = json!([{"type": "agent_toolset_20260401",
            "default_config": {"permission_policy": {"type": "always_allow"}},
            "configs": [
                {"name": "bash", "permission_policy": {"type": "always_ask"}},
                {"name": "web_search", "enabled": false}]}]);
        let lists = tool_lists(&agent(tools, None).tools);
        assert_eq!(lists.ask, vec!["Bash"]);
        assert_eq!(lists.disallowed, vec!["WebSearch"]);
        assert_eq!(
            lists.allowed,
            vec!["Edit", "Read", "Write", "Glob", "Grep", "WebFetch"]
        );
        assert_eq!(lists.offered.len(), 7);
        let none = tool_lists(&[]);
        assert!(none.offered.is_empty() && none.disallowed.len() == 8);
    }

    #[test]
    fn custom_tools_come_from_the_harness_mcp_server() {
        let agent = agent(
            json!([{"type": "custom", "name": "get_weather", "description": "weather",
                    "input_schema": {"type": "object"}}]),
            None,
        );
        let launch = Launch {
            program: Path::new("claude"),
            conversation: "c0ffee00-0000-4000-8000-000000000000",
            resume: false,
            base_url: crate::door::gateway::ANTHROPIC_BASE_URL,
            api_key: "placeholder",
            plugin_dir: None,
            team: Vec::new(),
        };
        let command = command(&launch, &agent);
        assert_eq!(
            flag(&command.argv, "--mcp-config"),
            Some(json!({"mcpServers": {"custom": {"type": "sdk", "name": "custom"}}}).to_string())
                .as_deref()
        );
        assert_eq!(
            flag(&command.argv, "--allowedTools"),
            Some("mcp__custom__get_weather")
        );
        assert_eq!(flag(&command.argv, "--system-prompt"), None);
    }

    #[test]
    fn a_coordinators_team_tools_come_from_the_harness_team_server() {
        let agent = agent(
            json!([{"type": "custom", "name": "get_weather", "description": "weather",
                    "input_schema": {"type": "object"}}]),
            None,
        );
        let launch = Launch {
            program: Path::new("claude"),
            conversation: "c0ffee00-0000-4000-8000-000000000000",
            resume: false,
            base_url: crate::door::gateway::ANTHROPIC_BASE_URL,
            api_key: "placeholder",
            plugin_dir: None,
            team: vec!["message_agent".into(), "ask_advisor".into()],
        };
        let command = command(&launch, &agent);
        let config: serde_json::Value =
            serde_json::from_str(flag(&command.argv, "--mcp-config").expect("a config"))
                .expect("JSON");
        assert_eq!(
            config,
            json!({"mcpServers": {"custom": {"type": "sdk", "name": "custom"},
                                  "team": {"type": "sdk", "name": "team"}}})
        );
        assert_eq!(
            flag(&command.argv, "--allowedTools"),
            Some("mcp__custom__get_weather,mcp__team__message_agent,mcp__team__ask_advisor")
        );
    }

    #[test]
    fn the_session_skills_are_a_plugin_with_the_skill_tool() {
        let agent = agent(json!([{"type": "agent_toolset_20260401"}]), None);
        let launch = Launch {
            program: Path::new("claude"),
            conversation: "c0ffee00-0000-4000-8000-000000000000",
            resume: false,
            base_url: crate::door::gateway::ANTHROPIC_BASE_URL,
            api_key: "placeholder",
            plugin_dir: Some("/mnt/session/claude-plugin"),
            team: Vec::new(),
        };
        let with = command(&launch, &agent);
        assert_eq!(
            flag(&with.argv, "--plugin-dir"),
            Some("/mnt/session/claude-plugin")
        );
        let offered = flag(&with.argv, "--tools").unwrap_or_default();
        assert!(offered.split(',').any(|t| t == "Skill"), "{offered}");
        let without = command(
            &Launch {
                plugin_dir: None,
                ..launch
            },
            &agent,
        );
        assert_eq!(flag(&without.argv, "--plugin-dir"), None);
        let offered = flag(&without.argv, "--tools").unwrap_or_default();
        assert!(!offered.split(',').any(|t| t == "Skill"), "{offered}");
    }

    #[test]
    fn the_agents_mcp_servers_are_in_the_mcp_config_and_ask() {
        let mut agent = agent(
            json!([{"type": "mcp_toolset", "mcp_server_name": "docs"}]),
            None,
        );
        agent.mcp_servers = vec![managed_agents_core::agent::McpServer {
            name: "docs".into(),
            url: "https://mcp.example.com/mcp".into(),
        }];
        let launch = Launch {
            program: Path::new("claude"),
            conversation: "c0ffee00-0000-4000-8000-000000000000",
            resume: false,
            base_url: crate::door::gateway::ANTHROPIC_BASE_URL,
            api_key: "placeholder",
            plugin_dir: None,
            team: Vec::new(),
        };
        let command = command(&launch, &agent);
        let config: serde_json::Value =
            serde_json::from_str(flag(&command.argv, "--mcp-config").expect("a config"))
                .expect("JSON");
        assert_eq!(
            config,
            json!({"mcpServers": {"docs": {"type": "http", "url": "https://mcp.example.com/mcp"}}})
        );
        assert!(!command.argv.iter().any(|a| a.contains("mcp__docs")));
    }

    #[test]
    fn the_command_line() {
        let agent = agent(
            json!([{"type": "agent_toolset_20260401"}]),
            Some("be brief"),
        );
        let launch = Launch {
            program: Path::new("/opt/claude/bin/claude"),
            conversation: "c0ffee00-0000-4000-8000-000000000000",
            resume: false,
            base_url: "http://127.0.0.1:3128/llm/anthropic",
            api_key: "placeholder",
            plugin_dir: None,
            team: Vec::new(),
        };
        let command = command(&launch, &agent);
        let argv = &command.argv;
        assert_eq!(argv[0], "/opt/claude/bin/claude");
        assert_eq!(flag(argv, "--output-format"), Some("stream-json"));
        assert_eq!(flag(argv, "--input-format"), Some("stream-json"));
        assert!(argv.contains(&"--verbose".to_owned()));
        assert_eq!(flag(argv, "--model"), Some("claude-sonnet-4-5"));
        assert_eq!(flag(argv, "--system-prompt"), Some("be brief"));
        assert_eq!(flag(argv, "--permission-prompt-tool"), Some("stdio"));
        assert_eq!(flag(argv, "--setting-sources"), Some(""));
        assert_eq!(
            flag(argv, "--session-id"),
            Some("c0ffee00-0000-4000-8000-000000000000")
        );
        assert_eq!(flag(argv, "--resume"), None);
        let env = |name: &str| {
            command
                .env
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            env("ANTHROPIC_BASE_URL"),
            Some("http://127.0.0.1:3128/llm/anthropic")
        );
        assert_eq!(env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"), Some("1"));
        assert_eq!(env("HOME"), Some(HOME));
        let resumed = super::command(
            &Launch {
                resume: true,
                ..launch
            },
            &agent,
        );
        assert_eq!(
            flag(&resumed.argv, "--resume"),
            Some("c0ffee00-0000-4000-8000-000000000000")
        );
    }
}
