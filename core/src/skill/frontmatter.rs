//! The YAML frontmatter of a `SKILL.md`: the block between a first line `---` and the next
//! `---` line. Only the two keys the API reads are extracted (`name`, `description`), as plain,
//! single- or double-quoted scalars, or `|`/`>` block scalars; other keys are ignored. This is
//! deliberately a subset of YAML: a skill whose frontmatter needs more is refused with a clear
//! message rather than half-read.

/// What the frontmatter says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontmatter {
    /// `name:`, if present.
    pub name: Option<String>,
    /// `description:`, if present.
    pub description: Option<String>,
}

/// Why a frontmatter could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file is not UTF-8.
    #[error("SKILL.md is not UTF-8 text")]
    NotText,
    /// No `---` block at the top.
    #[error("SKILL.md must start with a YAML frontmatter block between `---` lines")]
    Missing,
    /// A line of the block could not be read.
    #[error("SKILL.md frontmatter line {line}: {reason}")]
    Line {
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Reads the frontmatter of a `SKILL.md`.
pub fn parse(bytes: &[u8]) -> Result<Frontmatter, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::NotText)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, first)) if first.trim_end() == "---" => {}
        _ => return Err(Error::Missing),
    }
    let mut block = Vec::new();
    let mut closed = false;
    for (number, line) in lines {
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        block.push((number, line));
    }
    if !closed {
        return Err(Error::Missing);
    }
    let mut front = Frontmatter::default();
    let mut i = 0;
    while i < block.len() {
        let (number, line) = block[i];
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') || line.starts_with(' ') {
            // Blank lines, comments and the indented content of keys we do not read.
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            return Err(Error::Line {
                line: number,
                reason: "expected `key: value`",
            });
        };
        let slot = match key.trim() {
            "name" => &mut front.name,
            "description" => &mut front.description,
            _ => continue,
        };
        let rest = rest.trim();
        let value = if rest == "|" || rest == ">" || rest == "|-" || rest == ">-" {
            let mut parts = Vec::new();
            while i < block.len() && (block[i].1.starts_with(' ') || block[i].1.trim().is_empty()) {
                parts.push(block[i].1.trim());
                i += 1;
            }
            let joiner = if rest.starts_with('|') { "\n" } else { " " };
            parts.join(joiner).trim().to_owned()
        } else {
            scalar(rest).ok_or(Error::Line {
                line: number,
                reason: "unterminated quoted value",
            })?
        };
        *slot = Some(value);
    }
    Ok(front)
}

/// A plain or quoted one-line scalar.
fn scalar(text: &str) -> Option<String> {
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        return Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"));
    }
    if let Some(inner) = text.strip_prefix('\'') {
        let inner = inner.strip_suffix('\'')?;
        return Some(inner.replace("''", "'"));
    }
    // A trailing ` # comment` is not part of a plain scalar.
    let plain = match text.find(" #") {
        Some(at) => &text[..at],
        None => text,
    };
    Some(plain.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_quoted_and_block_values() {
        let front = parse(
            b"---\nname: pdf-tools\ndescription: \"Fill \\\"PDF\\\" forms\"\nlicense: MIT\n---\n# Body\n",
        )
        .expect("parses");
        assert_eq!(front.name.as_deref(), Some("pdf-tools"));
        assert_eq!(front.description.as_deref(), Some("Fill \"PDF\" forms"));
        let folded = parse(b"---\ndescription: >\n  one\n  two\nname: 'x''y'\n---\n").expect("ok");
        assert_eq!(folded.description.as_deref(), Some("one two"));
        assert_eq!(folded.name.as_deref(), Some("x'y"));
    }

    #[test]
    fn refuses_missing_or_unclosed_blocks() {
        assert_eq!(parse(b"# no frontmatter\n"), Err(Error::Missing));
        assert_eq!(parse(b"---\nname: a\n"), Err(Error::Missing));
        assert_eq!(parse(&[0xff, 0xfe]), Err(Error::NotText));
        assert!(matches!(
            parse(b"---\nname: \"open\n---\n"),
            Err(Error::Line { line: 2, .. })
        ));
    }
}
