//! `bash`'s kept shell leaves nothing behind per call: one idle reaper per shell, not a task per
//! call sleeping the idle hour (which the soak's heap profile found holding about 0.6 KiB per
//! call for an hour), and a discarded session's shell takes its reaper with it. Through
//! `tools::run` and a real bubblewrap sandbox, counting the runtime's live tasks.

mod support;

use std::time::Duration;

use managed_agents_core::agent::tools::DomainRule;
use managed_agents_core::agent::BuiltinTool;
use managed_agents_core::ids::SessionId;
use managed_agents_harness::sandbox::Network;
use managed_agents_harness::tools::{self, Limits, ShellContext, Shells};
use serde_json::{json, Map, Value};

async fn bash(cx: &ShellContext<'_, managed_agents_harness::sandbox::BubblewrapSandbox>) {
    let Value::Object(input) = json!({ "command": "echo soak" }) else {
        unreachable!("an object literal")
    };
    let input: Map<String, Value> = input;
    let out = tools::run(
        cx,
        &Limits::default(),
        BuiltinTool::Bash,
        &input,
        &DomainRule::Any,
    )
    .await;
    assert!(!out.is_error, "{}", out.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_add_no_task_and_a_discarded_shell_ends_its_reaper() {
    let support::Sandboxed {
        dir: _dir,
        workspace,
        sandbox,
    } = support::Sandboxed::new("sesn_reaper").await;
    let shells = Shells::default();
    let session = SessionId::parse("sesn_reaper").expect("a session id");
    let cx = ShellContext {
        shells: &shells,
        session: &session,
        sandbox: &sandbox,
        workspace: &workspace,
        network: Network::Isolated,
    };
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    bash(&cx).await; // starts the shell, and its reaper
    let with_shell = metrics.num_alive_tasks();
    assert!(with_shell > before, "{before} → {with_shell}");
    for _ in 0..20 {
        bash(&cx).await;
    }
    // A few may be blocking-pool I/O of the last call still being released; a task per call
    // would be 20.
    assert!(
        metrics.num_alive_tasks() <= with_shell + 3,
        "calls on a kept shell left tasks behind: {with_shell} → {}",
        metrics.num_alive_tasks()
    );
    assert!(shells.has_shell(&session));
    shells.discard(&session);
    // The reaper is aborted and the shell's own tasks end with its process: wait for it
    // (bounded), without asserting how long it takes.
    for _ in 0..200 {
        if metrics.num_alive_tasks() <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.num_alive_tasks() <= before,
        "{} tasks alive after the shell was discarded, {before} before it started",
        metrics.num_alive_tasks()
    );
}
