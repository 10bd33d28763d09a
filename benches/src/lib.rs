//! Benchmarks of managed-agents live in `benches/`; see `README.md` for how to run them and the
//! measured numbers. This library holds what the load tools share.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout};

use anyhow::{bail, Context, Result};

/// Reads a started `managed-agents serve`'s stdout until its `listening on URL` line and returns
/// the URL with the reader, which the caller keeps open for as long as the server runs. Kills the
/// child and fails, pointing at `log`, if the line does not come within ten lines.
pub fn await_listening(child: &mut Child, log: &str) -> Result<(String, BufReader<ChildStdout>)> {
    let mut stdout = BufReader::new(child.stdout.take().context("server stdout")?);
    let mut line = String::new();
    for _ in 0..10 {
        line.clear();
        if stdout.read_line(&mut line)? == 0 {
            break;
        }
        if let Some(url) = line.trim().strip_prefix("listening on ") {
            return Ok((url.to_owned(), stdout));
        }
    }
    let _ = child.kill();
    bail!("server did not print `listening on`; see {log}")
}
