//! The names MCP tools have on the model wire: `mcp__<server>__<tool>`, the convention of
//! Claude Code and the Agent SDK, made safe for both providers' tool-name rules
//! (`[A-Za-z0-9_-]`, at most [`MAX_NAME`] characters, the tighter OpenAI limit).
//!
//! The name is a pure function of the server and tool names, so a conversation rebuilt from
//! the log names past calls exactly as they were offered. A name that had to be changed (other
//! characters, a server name containing `__`, too long) ends with `_` and eight hex digits of a
//! hash of the exact pair, so two pairs never share a name in practice; the session's listing
//! maps names back to their pair ([`super::Listed`]), never by parsing.

/// Longest tool name both providers accept.
pub(crate) const MAX_NAME: usize = 64;

/// The model's name for tool `tool` of MCP server `server`.
pub(crate) fn model_name(server: &str, tool: &str) -> String {
    let plain = format!("mcp__{server}__{tool}");
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    let safe = clean(server) == server && clean(tool) == tool && !server.contains("__");
    if safe && plain.len() <= MAX_NAME {
        return plain;
    }
    let suffix = format!("_{:08x}", fnv1a(server, tool));
    let mut name = format!("mcp__{}__{}", clean(server), clean(tool));
    name.truncate(MAX_NAME - suffix.len());
    name + &suffix
}

/// FNV-1a (32 bits) of `server`, a NUL, `tool`: stable across processes and versions.
fn fnv1a(server: &str, tool: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in server.bytes().chain([0]).chain(tool.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_follow_the_sdk_convention() {
        assert_eq!(
            model_name("github", "search_issues"),
            "mcp__github__search_issues"
        );
        assert_eq!(model_name("my-server", "do-it"), "mcp__my-server__do-it");
    }

    #[test]
    fn other_names_are_cleaned_bounded_and_distinct() {
        let dotted = model_name("docs", "search.v2");
        assert!(dotted.starts_with("mcp__docs__search_v2_"), "{dotted}");
        assert_ne!(dotted, model_name("docs", "search_v2"));
        assert_ne!(model_name("a__b", "c"), model_name("a", "b__c"));
        let long = model_name(&"s".repeat(200), &"t".repeat(200));
        assert_eq!(long.len(), MAX_NAME);
        for name in [dotted, long, model_name("Ünï cödé", "x y")] {
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        }
    }
}
