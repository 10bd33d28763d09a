//! Architecture invariant 9, "the server is thin", as a test: no file under `server/src` makes
//! a session decision. The server turns HTTP into core's commands (`session::Command` through
//! `session::log` / `heads`) and renders core's projections; it never mints event ids, builds
//! events or session records, names internal facts, folds a session or calls `decide` or the
//! agent-side `turn` functions itself. Adding any of that to the server fails this test with
//! the file, line and rule.

use std::path::{Path, PathBuf};

/// A code fragment the server must not contain (on a line that also contains `within`, when
/// set), and why.
struct Rule {
    fragment: &'static str,
    within: Option<&'static str>,
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        fragment: "EventId::generate",
        within: None,
        why: "mints a session event id: only core's decide/turn create events",
    },
    Rule {
        fragment: "Event::new",
        within: None,
        why: "builds a session event: only core's decide/turn create events",
    },
    Rule {
        fragment: "Event {",
        within: None,
        why: "builds a session event: only core's decide/turn create events",
    },
    Rule {
        fragment: "SessionRecord::Event",
        within: None,
        why: "builds a session record: send a Command through core's session log",
    },
    Rule {
        fragment: "SessionRecord::Fact",
        within: None,
        why: "builds a session record: send a Command through core's session log",
    },
    Rule {
        fragment: "Fact",
        within: None,
        why: "names an internal session fact: facts are core's (render through SessionState)",
    },
    Rule {
        fragment: "decide",
        within: Some("session::"),
        why: "decides outside the write path: commit a Command through core's session log",
    },
    Rule {
        fragment: "session::turn",
        within: None,
        why: "the agent side of a session belongs to core's turn functions driven by the harness",
    },
    Rule {
        fragment: "session::fold",
        within: None,
        why: "folds a session: read the head from core's Heads / session log",
    },
    Rule {
        fragment: "state::fold",
        within: None,
        why: "folds a session: read the head from core's Heads / session log",
    },
    Rule {
        fragment: "SessionState::default",
        within: None,
        why: "builds session state: read the head from core's Heads / session log",
    },
    Rule {
        fragment: "SessionState {",
        within: None,
        why: "builds session state: read the head from core's Heads / session log",
    },
    Rule {
        fragment: ".apply(",
        within: None,
        why: "applies records to a state: folding is core's",
    },
];

/// Whether `fragment` occurs in `code` as whole tokens (not inside a longer identifier).
fn occurs(code: &str, fragment: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(fragment).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + fragment.len()..].chars().next();
        let starts_ident = fragment.starts_with(ident);
        let ends_ident = fragment.ends_with(ident);
        let glued_before = starts_ident && before.is_some_and(ident);
        let glued_after = ends_ident && after.is_some_and(ident);
        !glued_before && !glued_after
    })
}

/// The rules `source` breaks, as `(line number, rule)`; comments are not code, and neither is
/// the unit-test module that closes a file (tests build events and states as fixtures).
fn violations(source: &str) -> Vec<(usize, &'static Rule)> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let squeezed = code.split_whitespace().collect::<Vec<_>>().join(" ");
        if squeezed == "#[cfg(test)]" {
            break;
        }
        for rule in RULES {
            let within = rule.within.is_none_or(|w| occurs(&squeezed, w));
            if within && occurs(&squeezed, rule.fragment) {
                found.push((n + 1, rule));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn the_server_makes_no_session_decisions() {
    let src = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "no sources found under {}", src.display());
    let mut report = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read source");
        for (line, rule) in violations(&source) {
            report.push(format!(
                "{}:{line}: `{}` {}",
                file.display(),
                rule.fragment,
                rule.why
            ));
        }
    }
    assert!(
        report.is_empty(),
        "invariant 9 (the server is thin) is broken:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_check_catches_session_logic() {
    let flagged = |source: &str| -> Vec<&str> {
        violations(source)
            .into_iter()
            .map(|(_, rule)| rule.fragment)
            .collect()
    };
    assert_eq!(
        flagged("let id = EventId::generate(now);"),
        ["EventId::generate"]
    );
    assert_eq!(
        flagged("records.push(SessionRecord::Fact(Fact::InputsProcessed { at }));"),
        ["SessionRecord::Fact", "Fact"]
    );
    assert_eq!(
        flagged("let e = Event  {\n"),
        ["Event {"],
        "whitespace does not hide it"
    );
    assert_eq!(
        flagged("let out = session::decide(&state, command, now);"),
        ["decide"]
    );
    assert_eq!(
        flagged("use managed_agents_core::session::{decide, Command};"),
        ["decide"]
    );
    assert_eq!(flagged("state.apply(&record);"), [".apply("]);
    // The unit tests that close a file are fixtures, not the server; code before them is checked.
    assert_eq!(
        flagged("let id = EventId::generate(now);\n#[cfg(test)]\nmod tests {\n    let e = EventId::generate(now);\n}"),
        ["EventId::generate"]
    );
    // Reading and rendering are fine, and so are longer names and comments.
    assert!(flagged("let record = SessionRecord::decode(&stored.payload)?;").is_empty());
    assert!(flagged("let shown = head.state.render_event(event);").is_empty());
    assert!(flagged("use axum::response::sse::{Event as Frame};").is_empty());
    assert!(flagged("let frame = SseEvent { data };").is_empty());
    assert!(flagged("// core's decide( validates; a Fact is internal").is_empty());
    assert!(flagged("let facts = Facts::new();").is_empty());
    // Another object's decision closure is not the session's `decide`.
    assert!(flagged("Some(object) if owned(object) => decide(object),").is_empty());
    assert!(flagged("session::commit(&state, &auth, &id, || Command::Archive)").is_empty());
}
