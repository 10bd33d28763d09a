//! The checks on a skill upload (`files[]` parts of `POST /v1/skills` and of a new version):
//! every part's name is a relative path under one top-level directory, with no absolute path,
//! no `.`/`..`/empty segment, no backslash or control character, no duplicate, and no file that
//! is also a directory of another; at most [`MAX_FILES`] files and [`MAX_BYTES`] bytes; a
//! `SKILL.md` directly in the top directory whose frontmatter gives a valid name and
//! description. The server feeds parts as they arrive ([`Upload::entry`], [`Upload::sized`])
//! and calls [`Upload::finish`] with the `SKILL.md` bytes, so nothing is kept but the manifest.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::frontmatter;
use crate::validate::FieldError;

/// Most files in one version.
pub const MAX_FILES: usize = 500;
/// Most bytes in one version (all files together): 8 MiB, the hosted limit.
pub const MAX_BYTES: u64 = 8 * 1024 * 1024;
/// Longest path of a file, in bytes.
pub const MAX_PATH: usize = 1024;
/// Longest segment of a path, in bytes.
pub const MAX_SEGMENT: usize = 255;
/// Longest skill name.
pub const MAX_NAME: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1024;
/// The file every skill holds in its top directory.
pub const SKILL_MD: &str = "SKILL.md";

/// One stored file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillFile {
    /// Its path below the top directory (`SKILL.md`, `scripts/run.py`).
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Its CRC-32 (IEEE), for the archive download.
    pub crc32: u32,
}

/// What an accepted upload holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The top-level directory of every path.
    pub directory: String,
    /// The skill's name (frontmatter `name`, else the directory).
    pub name: String,
    /// The frontmatter `description`.
    pub description: String,
    /// The files, in upload order.
    pub files: Vec<SkillFile>,
}

/// An upload being checked part by part.
#[derive(Debug, Default)]
pub struct Upload {
    directory: Option<String>,
    files: Vec<SkillFile>,
    paths: BTreeSet<String>,
    dirs: BTreeSet<String>,
    bytes: u64,
}

fn invalid(message: impl Into<String>) -> FieldError {
    FieldError::new("files", message)
}

impl Upload {
    /// An empty upload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts the name of the next part and returns its path below the top directory.
    pub fn entry(&mut self, name: &str) -> Result<String, FieldError> {
        if self.files.len() >= MAX_FILES {
            return Err(invalid(format!(
                "at most {MAX_FILES} files per skill version"
            )));
        }
        if name.is_empty() {
            return Err(invalid("every files[] part needs a filename (its path)"));
        }
        if name.len() > MAX_PATH {
            return Err(invalid(format!(
                "{name:?}: paths are at most {MAX_PATH} bytes"
            )));
        }
        if name.starts_with('/') {
            return Err(invalid(format!("{name:?}: absolute paths are not allowed")));
        }
        if name.contains('\\') || name.chars().any(char::is_control) {
            return Err(invalid(format!(
                "{name:?}: backslashes and control characters are not allowed in paths"
            )));
        }
        let segments: Vec<&str> = name.split('/').collect();
        for segment in &segments {
            if segment.is_empty() || *segment == "." || *segment == ".." {
                return Err(invalid(format!(
                    "{name:?}: empty, `.` and `..` path segments are not allowed"
                )));
            }
            if segment.len() > MAX_SEGMENT {
                return Err(invalid(format!(
                    "{name:?}: path segments are at most {MAX_SEGMENT} bytes"
                )));
            }
        }
        let [top, rest @ ..] = segments.as_slice() else {
            return Err(invalid(format!("{name:?}: empty path")));
        };
        if rest.is_empty() {
            return Err(invalid(format!(
                "{name:?}: every file must be inside the skill's top-level directory"
            )));
        }
        match &self.directory {
            None => self.directory = Some((*top).to_owned()),
            Some(dir) if dir == top => {}
            Some(dir) => {
                return Err(invalid(format!(
                    "{name:?}: all files must be in one top-level directory ({dir:?})"
                )))
            }
        }
        let path = rest.join("/");
        if self.paths.contains(&path) || self.dirs.contains(&path) {
            return Err(invalid(format!("{name:?}: duplicate path")));
        }
        let mut parent = String::new();
        for segment in &rest[..rest.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(segment);
            if self.paths.contains(&parent) {
                return Err(invalid(format!(
                    "{name:?}: {parent:?} is both a file and a directory"
                )));
            }
            self.dirs.insert(parent.clone());
        }
        self.paths.insert(path.clone());
        self.files.push(SkillFile {
            path: path.clone(),
            size: 0,
            crc32: 0,
        });
        Ok(path)
    }

    /// Whether `more` bytes still fit in the version.
    pub fn fits(&self, more: u64) -> bool {
        self.bytes.saturating_add(more) <= MAX_BYTES
    }

    /// Records the size and checksum of the part last accepted by [`Upload::entry`].
    pub fn sized(&mut self, size: u64, crc32: u32) {
        self.bytes = self.bytes.saturating_add(size);
        if let Some(last) = self.files.last_mut() {
            last.size = size;
            last.crc32 = crc32;
        }
    }

    /// The manifest, given the bytes of the top directory's `SKILL.md` (`None`: there was none).
    pub fn finish(self, skill_md: Option<&[u8]>) -> Result<Manifest, FieldError> {
        let Some(directory) = self.directory else {
            return Err(invalid("at least one file is required (files[])"));
        };
        let Some(skill_md) = skill_md else {
            return Err(invalid(format!(
                "{directory}/{SKILL_MD} is required at the root of the skill's directory"
            )));
        };
        let front = frontmatter::parse(skill_md).map_err(|e| invalid(e.to_string()))?;
        let name = front.name.unwrap_or_else(|| directory.clone());
        check_name(&name)?;
        let description = front.description.unwrap_or_default();
        let chars = description.chars().count();
        if chars == 0 || chars > MAX_DESCRIPTION {
            return Err(invalid(format!(
                "SKILL.md frontmatter `description` must be 1 to {MAX_DESCRIPTION} characters"
            )));
        }
        if description.contains('<') && description.contains('>') {
            return Err(invalid(
                "SKILL.md frontmatter `description` must not contain XML tags",
            ));
        }
        Ok(Manifest {
            directory,
            name,
            description,
            files: self.files,
        })
    }
}

/// A directory name an operator's skill may have (`--anthropic-skills-dir`): one plain path
/// segment of the skill-name alphabet, so a reference can never leave the directory.
pub fn check_directory_name(name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "skill_id",
            format!("{name:?} is not a skill name"),
        ))
    }
}

/// A skill name: 1–64 lowercase letters, digits and hyphens, not naming `anthropic` or
/// `claude` (reserved by the hosted API).
pub fn check_name(name: &str) -> Result<(), FieldError> {
    let shape = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !shape {
        return Err(invalid(format!(
            "skill name {name:?} must be 1 to {MAX_NAME} lowercase letters, digits and hyphens \
             (SKILL.md frontmatter `name`, or the directory name)"
        )));
    }
    if name.contains("anthropic") || name.contains("claude") {
        return Err(invalid(format!(
            "skill name {name:?} must not contain the reserved words `anthropic` or `claude`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &[u8] = b"---\nname: my-skill\ndescription: Does things\n---\nbody\n";

    fn upload(names: &[&str]) -> Result<Upload, FieldError> {
        let mut up = Upload::new();
        for name in names {
            up.entry(name)?;
            up.sized(3, 7);
        }
        Ok(up)
    }

    #[test]
    fn accepts_one_directory_with_skill_md() {
        let up = upload(&["dir/SKILL.md", "dir/scripts/run.py"]).expect("ok");
        let manifest = up.finish(Some(MD)).expect("manifest");
        assert_eq!(manifest.directory, "dir");
        assert_eq!(manifest.name, "my-skill");
        assert_eq!(manifest.description, "Does things");
        let paths: Vec<_> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["SKILL.md", "scripts/run.py"]);
        assert_eq!(manifest.files[1].size, 3);
    }

    #[test]
    fn refuses_paths_that_escape_or_collide() {
        for bad in [
            &["/etc/SKILL.md"][..],
            &["dir/../SKILL.md"],
            &["../dir/SKILL.md"],
            &["dir/./SKILL.md"],
            &["dir//SKILL.md"],
            &["dir\\SKILL.md"],
            &["SKILL.md"],
            &["dir/SKILL.md", "other/x"],
            &["dir/SKILL.md", "dir/SKILL.md"],
            &["dir/a", "dir/a/b"],
            &["dir/a/b", "dir/a"],
            &[""],
        ] {
            assert!(upload(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn needs_skill_md_and_a_valid_frontmatter() {
        let up = upload(&["dir/README.md"]).expect("ok");
        let err = up.finish(None).expect_err("no SKILL.md");
        assert!(err.message.contains("SKILL.md"), "{}", err.message);
        let bad_name = b"---\nname: My Skill\ndescription: x\n---\n";
        assert!(upload(&["dir/SKILL.md"])
            .expect("ok")
            .finish(Some(bad_name))
            .is_err());
        let no_description = b"---\nname: ok\n---\n";
        assert!(upload(&["dir/SKILL.md"])
            .expect("ok")
            .finish(Some(no_description))
            .is_err());
        let reserved = b"---\nname: claude-helper\ndescription: x\n---\n";
        assert!(upload(&["dir/SKILL.md"])
            .expect("ok")
            .finish(Some(reserved))
            .is_err());
        let unnamed = b"---\ndescription: x\n---\n";
        let manifest = upload(&["from-dir/SKILL.md"])
            .expect("ok")
            .finish(Some(unnamed))
            .expect("named by its directory");
        assert_eq!(manifest.name, "from-dir");
    }

    #[test]
    fn counts_bytes() {
        let mut up = Upload::new();
        assert!(up.fits(MAX_BYTES));
        up.entry("d/SKILL.md").expect("ok");
        up.sized(MAX_BYTES, 0);
        assert!(!up.fits(1));
    }
}
