//! Memory paths (API §12.2): what a valid path is, and how a listing below a prefix rolls
//! deeper memories up into `memory_prefix` items.
//!
//! A path starts with `/`, has 1–20 segments, none empty, `.` or `..`; it has no control or
//! format character and no U+2028/U+2029, is in Unicode Normalization Form C and at most 1024
//! bytes. Paths are case-sensitive and compared byte for byte.

use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::is_nfc;

use crate::validate::FieldError;

/// Longest path, in UTF-8 bytes.
pub const MAX_BYTES: usize = 1024;
/// Most segments of a path.
pub const MAX_SEGMENTS: usize = 20;

fn forbidden(c: char) -> bool {
    c.is_control()
        || c == '\u{2028}'
        || c == '\u{2029}'
        || get_general_category(c) == GeneralCategory::Format
}

/// Checks `path` against the rules of the module header; the error names `field`.
pub fn check(field: &str, path: &str) -> Result<(), FieldError> {
    let bad = |rule: &str| Err(FieldError::new(field, rule.to_owned()));
    let Some(rest) = path.strip_prefix('/') else {
        return bad("must start with `/`");
    };
    if path.len() > MAX_BYTES {
        return bad("must be at most 1024 bytes");
    }
    if path.chars().any(forbidden) {
        return bad("must not contain control or format characters, U+2028 or U+2029");
    }
    if !is_nfc(path) {
        return bad("must be in Unicode Normalization Form C");
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() > MAX_SEGMENTS {
        return bad("must have at most 20 segments");
    }
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return bad("segments must not be empty, `.` or `..`");
    }
    Ok(())
}

/// Checks a listing's `path_prefix`: `/`, or a valid path followed by `/`.
pub fn check_prefix(field: &str, prefix: &str) -> Result<(), FieldError> {
    if prefix == "/" {
        return Ok(());
    }
    match prefix.strip_suffix('/') {
        Some(dir) => check(field, dir),
        None => Err(FieldError::new(field, "must end with `/`")),
    }
}

/// What a memory at `path` lists as below `prefix` (which ends with `/`) at `depth` (0: no
/// limit): `None` when it is not below the prefix, else the item's key: the path itself, or
/// the rolled-up directory (ending with `/`) `depth` segments below the prefix.
pub fn listed<'a>(path: &'a str, prefix: &str, depth: usize) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    if depth == 0 {
        return Some(path);
    }
    let mut end = prefix.len();
    for (i, segment) in rest.split('/').enumerate() {
        if i == depth {
            return Some(&path[..end]);
        }
        end += segment.len() + 1;
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for path in [
            "/a",
            "/notes/todo.md",
            "/Café/ünïcode.txt",
            "/with space/and-dash_under.md",
            &format!("/{}", ["s"; 20].join("/")),
            &format!("/{}", "x".repeat(1023)),
        ] {
            assert!(check("path", path).is_ok(), "{path}");
        }
    }

    #[test]
    fn invalid_paths() {
        let decomposed = "/Cafe\u{301}";
        for (path, rule) in [
            ("", "start with"),
            ("relative/x", "start with"),
            ("/", "empty"),
            ("/a//b", "empty"),
            ("/a/", "empty"),
            ("/a/./b", "`.`"),
            ("/a/../b", "`..`"),
            ("/..", "`..`"),
            ("/a\u{0}b", "control"),
            ("/a\nb", "control"),
            ("/a\u{200b}b", "format"),
            ("/a\u{feff}", "format"),
            ("/a\u{2028}b", "U+2028"),
            ("/a\u{2029}b", "U+2029"),
            (decomposed, "Normalization"),
        ] {
            let err = check("path", path).expect_err(path);
            assert!(err.message.contains(rule), "{path:?}: {}", err.message);
            assert_eq!(err.field, "path");
        }
        let long = format!("/{}", "x".repeat(1024));
        assert!(check("path", &long).is_err());
        let deep = format!("/{}", ["s"; 21].join("/"));
        assert!(check("path", &deep)
            .expect_err("deep")
            .message
            .contains("20 segments"));
    }

    #[test]
    fn prefixes_end_with_a_slash() {
        assert!(check_prefix("path_prefix", "/").is_ok());
        assert!(check_prefix("path_prefix", "/notes/").is_ok());
        assert!(check_prefix("path_prefix", "/notes").is_err());
        assert!(check_prefix("path_prefix", "notes/").is_err());
        assert!(check_prefix("path_prefix", "/a//").is_err());
    }

    #[test]
    fn listing_matches_whole_segments_and_rolls_up() {
        assert_eq!(
            listed("/notes/todo.md", "/notes/", 0),
            Some("/notes/todo.md")
        );
        assert_eq!(listed("/notes-archive/todo.md", "/notes/", 0), None);
        assert_eq!(
            listed("/notes/todo.md", "/notes/", 1),
            Some("/notes/todo.md")
        );
        assert_eq!(listed("/notes/a/b/c.md", "/notes/", 1), Some("/notes/a/"));
        assert_eq!(listed("/notes/a/b/c.md", "/notes/", 2), Some("/notes/a/b/"));
        assert_eq!(
            listed("/notes/a/b/c.md", "/notes/", 3),
            Some("/notes/a/b/c.md")
        );
        assert_eq!(listed("/x/y", "/", 1), Some("/x/"));
        assert_eq!(listed("/x", "/", 1), Some("/x"));
    }
}
