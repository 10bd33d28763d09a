//! `edit`: a literal replacement in a UTF-8 text file, with memory in the server bounded by
//! [`Limits::file_bytes`](super::Limits::file_bytes) whatever the input.
//!
//! The file's exact bytes come out of the sandbox base64-encoded (the sandbox's text output is
//! lossy UTF-8, which would silently rewrite invalid sequences), at most `file_bytes + 1` of
//! them (`head -c`, so a file that grows or a device that never ends cannot push more). The
//! server then refuses what it cannot edit faithfully, before building anything: content that
//! is not valid UTF-8 (a binary file), a file larger than the cap, and an edit whose result would
//! be larger than the cap (the size is computed from the match count first, so `replace_all`
//! with a long `new_string` on a file of many matches never allocates its result). The new
//! content goes back in as raw bytes on the sandbox's stdin.

use serde_json::{Map, Value};

use super::{
    describe_failure, exec, optional_bool, path, put, string, Limits, ToolOutput, FILE_TIMEOUT,
};
use crate::sandbox::{Command, Network, Sandbox, Workspace};

/// Why an edit was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EditError {
    NotUtf8,
    FileTooLarge {
        size: u64,
        max: usize,
    },
    ResultTooLarge {
        size: u128,
        count: usize,
        old: usize,
        new: usize,
        max: usize,
    },
    NotFound,
    Ambiguous(usize),
}

impl EditError {
    /// The result text for an edit of `file` (the model's path) refused for this reason, in
    /// the reference toolset's words where it has them.
    pub(crate) fn message(&self, file: &str) -> String {
        match self {
            EditError::NotUtf8 => {
                format!("edit: {file}: not valid UTF-8 text (cannot edit binary files)")
            }
            EditError::FileTooLarge { size, max } => format!(
                "edit: {file} is {size} bytes, exceeds {max}-byte limit. The edit tool loads \
                 the whole file and cannot modify a file this large."
            ),
            EditError::ResultTooLarge {
                size,
                count,
                old,
                new,
                max,
            } => format!(
                "edit: the edit would make the file {size} bytes ({count} replacement{s} of \
                 {old} bytes by {new} bytes), more than the {max} bytes `edit` may produce; \
                 the file was not modified",
                s = if *count == 1 { "" } else { "s" }
            ),
            EditError::NotFound => format!("edit: old_string not found in {file}"),
            EditError::Ambiguous(count) => {
                format!("edit: old_string appears {count} times in {file} (must be unique)")
            }
        }
    }
}

/// Replaces `old` by `new` in `content` (every occurrence when `all`, else the only one) and
/// returns the new text and the number of replacements. Nothing larger than `max` bytes is
/// built: the result's size is known from the match count before it is allocated.
pub(crate) fn apply(
    content: Vec<u8>,
    old: &str,
    new: &str,
    all: bool,
    max: usize,
) -> Result<(String, usize), EditError> {
    if content.len() > max {
        return Err(EditError::FileTooLarge {
            size: content.len() as u64,
            max,
        });
    }
    let text = String::from_utf8(content).map_err(|_| EditError::NotUtf8)?;
    let count = text.matches(old).count();
    if count == 0 {
        return Err(EditError::NotFound);
    }
    if count > 1 && !all {
        return Err(EditError::Ambiguous(count));
    }
    let size =
        text.len() as u128 - count as u128 * old.len() as u128 + count as u128 * new.len() as u128;
    if size > max as u128 {
        return Err(EditError::ResultTooLarge {
            size,
            count,
            old: old.len(),
            new: new.len(),
            max,
        });
    }
    // `size <= max`, a `usize`.
    let mut out = String::with_capacity(size as usize);
    let mut last = 0;
    for (at, _) in text.match_indices(old) {
        out.push_str(&text[last..at]);
        out.push_str(new);
        last = at + old.len();
    }
    out.push_str(&text[last..]);
    Ok((out, count))
}

/// Prints the file's first `$2 + 1` bytes base64-encoded, or exits 3 printing its size when
/// `stat` already says it is larger than `$2`; exits 4 with the reason on stderr when it is no
/// regular file.
const FETCH: &str = r#"set -o pipefail
if [ ! -e "$1" ]; then echo "no such file or directory" >&2; exit 4; fi
if [ -d "$1" ]; then echo "is a directory" >&2; exit 4; fi
if [ ! -f "$1" ]; then echo "not a regular file" >&2; exit 4; fi
size=$(stat -L -c %s -- "$1") || exit 1
if [ "$size" -gt "$2" ]; then echo "$size"; exit 3; fi
head -c "$(($2 + 1))" -- "$1" | base64 -w0"#;

/// What [`fetch`] found.
pub(super) enum Fetched {
    /// The file's exact bytes.
    Bytes(Vec<u8>),
    /// The file is larger than asked: its size.
    TooLarge(u64),
}

/// The exact bytes of `file` (at most `max`), read in the sandbox. Errors are prefixed
/// `<op>: <shown>` (`shown`: the path as the model gave it).
pub(super) async fn fetch<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    file: &str,
    max: usize,
    op: &str,
    shown: &str,
) -> Result<Fetched, ToolOutput> {
    use base64::Engine as _;
    let encoded_max = (max + 1).div_ceil(3) * 4;
    let out = exec(
        sandbox,
        workspace,
        Network::Isolated,
        Command::new(["bash", "-c", FETCH, op, file, &max.to_string()])
            .timeout(FILE_TIMEOUT)
            .output_limit(encoded_max + 16),
    )
    .await?;
    if out.exit_code == Some(3) && !out.timed_out {
        return Ok(Fetched::TooLarge(
            out.stdout.trim().parse().unwrap_or(u64::MAX),
        ));
    }
    if out.exit_code == Some(4) && !out.timed_out {
        return Err(ToolOutput::error(format!(
            "{op}: {shown}: {}",
            out.stderr.trim()
        )));
    }
    if !out.success() {
        return Err(ToolOutput::error(format!(
            "{op}: {shown}: {}",
            describe_failure(&out)
        )));
    }
    if out.truncated {
        return Err(ToolOutput::error(format!(
            "{op}: {shown}: the file could not be read within the {max}-byte limit"
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(out.stdout.trim_end())
        .map_err(|e| {
            ToolOutput::error(format!(
                "{op}: {shown}: the sandbox returned bad content: {e}"
            ))
        })?;
    if bytes.len() > max {
        return Ok(Fetched::TooLarge(bytes.len() as u64));
    }
    Ok(Fetched::Bytes(bytes))
}

pub(super) async fn edit<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let shown = string(input, "file_path")?;
    let file = path(shown);
    let old = string(input, "old_string")?;
    let new = string(input, "new_string")?;
    let all = optional_bool(input, "replace_all")?.unwrap_or(false);
    if old.is_empty() {
        return Err(ToolOutput::error("edit: old_string must not be empty"));
    }
    let max = limits.file_bytes;
    let content = match fetch(sandbox, workspace, &file, max, "edit", shown).await? {
        Fetched::Bytes(bytes) => bytes,
        Fetched::TooLarge(size) => {
            return Err(ToolOutput::error(
                EditError::FileTooLarge { size, max }.message(shown),
            ))
        }
    };
    let (updated, count) =
        apply(content, old, new, all, max).map_err(|e| ToolOutput::error(e.message(shown)))?;
    put(sandbox, workspace, &file, updated.into_bytes()).await?;
    Ok(ToolOutput::ok(format!(
        "edited {shown} ({count} replacement(s))"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_one_or_all() {
        let run = |text: &str, old, new, all| apply(text.as_bytes().to_vec(), old, new, all, 100);
        assert_eq!(run("a b c", "b", "B", false), Ok(("a B c".to_owned(), 1)));
        assert_eq!(run("xax", "x", "yy", true), Ok(("yyayy".to_owned(), 2)));
        assert_eq!(run("aaaa", "aa", "b", true), Ok(("bb".to_owned(), 2)));
        assert_eq!(run("xax", "x", "y", false), Err(EditError::Ambiguous(2)));
        assert_eq!(run("abc", "z", "y", true), Err(EditError::NotFound));
        assert_eq!(run("héllo", "é", "e", false), Ok(("hello".to_owned(), 1)));
    }

    #[test]
    fn refuses_results_over_the_cap_before_building_them() {
        // 1 MB of matches times a 1,000-byte replacement would be 1 GB.
        let big = vec![b'x'; 1_000_000];
        let new = "y".repeat(1_000);
        assert_eq!(
            apply(big, "x", &new, true, 4 << 20),
            Err(EditError::ResultTooLarge {
                size: 1_000_000_000,
                count: 1_000_000,
                old: 1,
                new: 1_000,
                max: 4 << 20,
            })
        );
        // Exactly at the cap is fine; one byte over is not.
        assert_eq!(
            apply(b"ab".to_vec(), "b", "cc", true, 3),
            Ok(("acc".to_owned(), 1))
        );
        assert!(matches!(
            apply(b"ab".to_vec(), "b", "ccc", true, 3),
            Err(EditError::ResultTooLarge { size: 4, .. })
        ));
        assert_eq!(
            apply(b"abcd".to_vec(), "b", "", true, 3),
            Err(EditError::FileTooLarge { size: 4, max: 3 })
        );
    }

    #[test]
    fn refuses_invalid_utf8() {
        let bytes = b"ab\xff\xfeold\x00".to_vec();
        assert_eq!(
            apply(bytes, "old", "new", false, 100),
            Err(EditError::NotUtf8)
        );
    }
}
