//! `read` as the hosted toolset defines it: `file_path` and an optional `view_range`
//! (`[start_line, end_line]`, 1-indexed, inclusive, `end_line` ≤ 0 meaning the end of the file).
//!
//! - Images (`.png`, `.jpg`, `.jpeg`, `.gif`, `.webp`) and PDFs come back as an `image` or
//!   `document` content block with the file's bytes in base64 (at most
//!   [`Limits::image_base64_bytes`] encoded for an image, [`Limits::pdf_bytes`] raw for a
//!   PDF); `view_range` is refused for them.
//! - Text comes back as is (no line numbers), and must be valid UTF-8. Without `view_range` the
//!   file may be at most [`Limits::file_bytes`] (256 KiB); with one, the selected lines may be
//!   at most that, whatever the file's size, so large files are read piecewise.
//!
//! Bytes leave the sandbox base64-encoded and capped (`head -c`), so the server never holds
//! more than the cap plus one byte of a file however large it is.

use managed_agents_core::event::{ContentBlock, DocumentSource, ImageSource};
use serde_json::{Map, Value};

use super::edit::{fetch, Fetched};
use super::{describe_failure, exec, path, string, Limits, ToolOutput, FILE_TIMEOUT};
use crate::sandbox::{Command, Network, Sandbox, Workspace};

/// The media type of a file `read` returns as a content block, by extension.
pub(crate) fn media_type(file: &str) -> Option<&'static str> {
    let name = file.rsplit('/').next().unwrap_or(file);
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// A `view_range` as given: `Ok(None)` when absent.
fn view_range(input: &Map<String, Value>) -> Result<Option<(i64, i64)>, ToolOutput> {
    match input.get("view_range") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.is_empty() => Ok(None),
        Some(Value::Array(items)) => match items.as_slice() {
            [start, end] => match (start.as_i64(), end.as_i64()) {
                (Some(start), Some(end)) => Ok(Some((start, end))),
                _ => Err(ToolOutput::error(
                    "read: view_range must be [start_line, end_line]",
                )),
            },
            _ => Err(ToolOutput::error(
                "read: view_range must be [start_line, end_line]",
            )),
        },
        Some(_) => Err(ToolOutput::error(
            "read: view_range must be [start_line, end_line]",
        )),
    }
}

pub(super) async fn read<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let shown = string(input, "file_path")?;
    let file = path(shown);
    let range = view_range(input)?;
    if let Some(media_type) = media_type(shown) {
        if range.is_some() {
            return Err(ToolOutput::error(
                "read: view_range is not supported for image/PDF files",
            ));
        }
        return media(sandbox, workspace, limits, &file, shown, media_type).await;
    }
    let max = limits.file_bytes;
    let text = match range {
        None => match fetch(sandbox, workspace, &file, max, "read", shown).await? {
            Fetched::Bytes(bytes) => bytes,
            Fetched::TooLarge(size) => {
                return Err(ToolOutput::error(format!(
                    "read: {shown} is {size} bytes, exceeds {max}-byte limit. Use the view_range \
                     parameter to read specific line ranges, e.g. view_range: [1, 500]."
                )))
            }
        },
        Some((start, end)) => lines(sandbox, workspace, max, &file, shown, start, end).await?,
    };
    let text = String::from_utf8(text).map_err(|_| {
        ToolOutput::error(format!(
            "read: {shown}: not valid UTF-8 text (binary files are only supported for image/PDF \
             extensions)"
        ))
    })?;
    Ok(ToolOutput::ok(text))
}

/// Prints lines `$2..$3` (`$3` ≤ 0: to the end) of `$1` joined by newlines, at most `$4 + 1`
/// bytes, base64-encoded on stdout; on stderr whether the range reached the end of the file
/// and the file's last byte in hex (a newline there ends the selection with one).
const LINES: &str = r#"if [ ! -e "$1" ]; then echo "no such file or directory" >&2; exit 4; fi
if [ -d "$1" ]; then echo "is a directory" >&2; exit 4; fi
if [ ! -f "$1" ]; then echo "not a regular file" >&2; exit 4; fi
export LC_ALL=C
LC_ALL=C awk -v s="$2" -v e="$3" '
  NR >= s && (e <= 0 || NR <= e) { if (n++) printf "\n"; printf "%s", $0 }
  e > 0 && NR >= e { exit }
  END { print ((e <= 0 || e > NR) ? "end" : "more") > "/dev/stderr" }' "$1" | head -c "$(($4 + 1))" | base64 -w0
last=$(tail -c 1 -- "$1" | od -An -tx1 | tr -d ' \n')
echo "last=$last" >&2"#;

/// Lines `start..=end` of `file` (the reference's slice semantics), at most `max` bytes.
async fn lines<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    max: usize,
    file: &str,
    shown: &str,
    start: i64,
    end: i64,
) -> Result<Vec<u8>, ToolOutput> {
    use base64::Engine as _;
    let first = start.max(1);
    if end > 0 && end < first {
        return Ok(Vec::new());
    }
    let encoded_max = (max + 1).div_ceil(3) * 4;
    let argv = [
        "bash",
        "-c",
        LINES,
        "read",
        file,
        &first.to_string(),
        &end.to_string(),
        &max.to_string(),
    ];
    let out = exec(
        sandbox,
        workspace,
        Network::Isolated,
        Command::new(argv)
            .timeout(FILE_TIMEOUT)
            .output_limit(encoded_max + 64),
    )
    .await?;
    if out.exit_code == Some(4) && !out.timed_out {
        return Err(ToolOutput::error(format!(
            "read: {shown}: {}",
            out.stderr.trim()
        )));
    }
    if !out.success() || out.truncated {
        return Err(ToolOutput::error(format!(
            "read: {shown}: {}",
            describe_failure(&out)
        )));
    }
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(out.stdout.trim_end())
        .map_err(|e| {
            ToolOutput::error(format!(
                "read: {shown}: the sandbox returned bad content: {e}"
            ))
        })?;
    let reached_end = out.stderr.lines().any(|l| l == "end");
    let ends_with_newline = out.stderr.lines().any(|l| l == "last=0a");
    if reached_end && ends_with_newline {
        bytes.push(b'\n');
    }
    if bytes.len() > max {
        return Err(ToolOutput::error(if end > 0 && end == first {
            format!(
                "read: line {first} of {shown} alone exceeds {max}-byte limit. The read tool \
                 cannot return part of a line, so view_range cannot narrow this further."
            )
        } else {
            format!(
                "read: view_range [{start}, {end}] of {shown} exceeds {max}-byte limit. Narrow \
                 the view_range to read a smaller portion."
            )
        }));
    }
    Ok(bytes)
}

/// An image or PDF as a content block.
async fn media<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    file: &str,
    shown: &str,
    media_type: &str,
) -> Result<ToolOutput, ToolOutput> {
    use base64::Engine as _;
    let pdf = media_type == "application/pdf";
    let max = if pdf {
        limits.pdf_bytes
    } else {
        limits.image_base64_bytes / 4 * 3
    };
    let bytes = match fetch(sandbox, workspace, file, max, "read", shown).await? {
        Fetched::Bytes(bytes) => bytes,
        Fetched::TooLarge(size) => {
            return Err(ToolOutput::error(format!(
                "read: {shown} is {size} bytes, exceeds {max}-byte limit for image/PDF files."
            )))
        }
    };
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    let block = if pdf {
        ContentBlock::Document {
            source: DocumentSource::Base64 {
                media_type: media_type.to_owned(),
                data,
            },
            title: None,
            context: None,
        }
    } else {
        ContentBlock::Image {
            source: ImageSource::Base64 {
                media_type: media_type.to_owned(),
                data,
            },
        }
    };
    Ok(ToolOutput::blocks(vec![block]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn media_types_by_extension() {
        assert_eq!(media_type("a/b.PNG"), Some("image/png"));
        assert_eq!(media_type("x.jpeg"), Some("image/jpeg"));
        assert_eq!(media_type("doc.pdf"), Some("application/pdf"));
        assert_eq!(media_type("notes.txt"), None);
        assert_eq!(media_type("dir.png/file"), None);
        assert_eq!(media_type("noext"), None);
    }

    #[test]
    fn view_ranges() {
        let parse = |v: Value| {
            let Value::Object(map) = json!({ "view_range": v }) else {
                unreachable!()
            };
            view_range(&map).map_err(|e| e.text())
        };
        assert_eq!(parse(json!([2, 5])), Ok(Some((2, 5))));
        assert_eq!(parse(json!([3, -1])), Ok(Some((3, -1))));
        assert_eq!(parse(json!([])), Ok(None));
        assert!(parse(json!([1])).is_err());
        assert!(parse(json!("1-2")).is_err());
    }
}
