//! The agent's skills, materialized read-only in the sandbox and named in the system prompt.
//!
//! A `custom` skill's version (`latest` resolved at each turn) is copied once per session from
//! the blob store into `<attachments>/skills/<skill id>_<version>/<name>/` (owned by the
//! sandbox's uid, directories 0700 and files 0600 like the workspace: private in the data dir;
//! built in a temporary directory and renamed, so it is complete or absent) and
//! bound read-only at `/mnt/skills/<name>`. An `anthropic` skill is the operator's directory
//! `<--anthropic-skills-dir>/<skill id>`, bound the same way. The resident engines get one
//! paragraph listing each skill's name, description and `SKILL.md` path. A skill that no longer
//! exists (deleted after the agent was made) is a non-fatal `session.error`.
//!
//! Codex finds them where it discovers skills, `$CODEX_HOME/skills` (the engine's
//! `CODEX_HOME` is `/workspace/.codex`): for the `codex` engine each skill is bound read-only
//! there too (its mount point is made in the workspace, so only for that engine).
//!
//! Claude Code reads no settings sources (`--setting-sources ""`), so it would not look in
//! `~/.claude/skills`; it loads skills from plugins given with `--plugin-dir`. The skills are
//! therefore also a plugin: `<attachments>/claude-plugin/` (its `.claude-plugin/plugin.json` and
//! an empty `skills/<name>/` per skill) bound read-only at [`CLAUDE_PLUGIN`], each skill bound
//! over its empty directory, and the `claude` engine passes `--plugin-dir` when the workspace
//! has that bind ([`claude_plugin_dir`]). Claude Code names them `managed-agents:<name>`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use managed_agents_core::agent::{Skill as SkillRef, SkillSource};
use managed_agents_core::event::{ErrorKind, RetryStatus, SessionError};
use managed_agents_core::skill::{frontmatter, upload, Skill, Version};
use managed_agents_core::storage::{Store, StreamId};
use managed_agents_core::stream;

use super::{Attached, Context};
use crate::sandbox::{Bind, Sandbox};

/// Where skills appear in the sandbox.
pub(super) const MOUNT: &str = "/mnt/skills";
/// Where Codex (`CODEX_HOME=/workspace/.codex`) discovers skills.
const CODEX_SKILLS: &str = "/workspace/.codex/skills";
/// Where the skills appear to Claude Code as a plugin.
pub(crate) const CLAUDE_PLUGIN: &str = "/mnt/session/claude-plugin";
/// The plugin's manifest.
const PLUGIN_JSON: &str = r#"{"name":"managed-agents","version":"1.0.0","description":"The skills of this session's agent"}"#;

/// The plugin directory Claude Code should load for `workspace`, if its skills are bound.
pub(crate) fn claude_plugin_dir(workspace: &crate::sandbox::Workspace) -> Option<&'static str> {
    workspace
        .binds()
        .iter()
        .any(|b| b.target == Path::new(CLAUDE_PLUGIN))
        .then_some(CLAUDE_PLUGIN)
}

/// A skill ready to bind.
struct Ready {
    name: String,
    description: String,
    host: PathBuf,
}

pub(super) fn error(message: String) -> SessionError {
    SessionError {
        kind: ErrorKind::UnknownError,
        message,
        retry_status: RetryStatus::Terminal,
    }
}

pub(super) async fn prepare<S: Store, X: Sandbox>(cx: &Context<'_, S, X>, attached: &mut Attached) {
    if cx.agent.skills.is_empty() {
        return;
    }
    let attachments = match super::attachments(cx).await {
        Ok(dir) => dir,
        Err(message) => return attached.errors.push(error(message)),
    };
    let attachments = attachments.as_path();
    let uid = attached.workspace.owner_uid();
    let mut ready = Vec::new();
    for reference in &cx.agent.skills {
        let result = match reference.source {
            SkillSource::Custom => custom(cx, reference, attachments, uid).await,
            SkillSource::Anthropic => anthropic(cx, reference),
        };
        match result {
            // Two skills may not share a directory: the first one named so wins.
            Ok(skill) if ready.iter().any(|r: &Ready| r.name == skill.name) => {
                attached.errors.push(error(format!(
                    "skill {} is not mounted: another skill of the agent is named {:?}",
                    reference.skill_id, skill.name
                )))
            }
            Ok(skill) => ready.push(skill),
            Err(message) => attached.errors.push(error(message)),
        }
    }
    if ready.is_empty() {
        return;
    }
    let mut paragraph = String::from(
        "Skills are available in this environment. A skill is a directory of instructions, \
         scripts and resources for a kind of task; when a task matches a skill's description, \
         read its SKILL.md first and follow it. Skill directories are read-only.\n",
    );
    let names: Vec<&str> = ready.iter().map(|r| r.name.as_str()).collect();
    match claude_plugin(attachments, &names, uid).await {
        Ok(host) => {
            attached.workspace = attached
                .workspace
                .clone()
                .with_bind(Bind::read_only(host, CLAUDE_PLUGIN));
        }
        Err(e) => attached.errors.push(error(format!(
            "the skills cannot be offered to Claude Code: {e}"
        ))),
    }
    let plugin = claude_plugin_dir(&attached.workspace).is_some();
    for skill in ready {
        let target = format!("{MOUNT}/{}", skill.name);
        let mut binds = vec![Bind::read_only(&skill.host, &target)];
        if *cx.engine == crate::runner::setup::Engine::Codex {
            // Only for Codex: the mount point is made in the workspace.
            binds.push(Bind::read_only(
                &skill.host,
                format!("{CODEX_SKILLS}/{}", skill.name),
            ));
        }
        if plugin {
            let inside = format!("{CLAUDE_PLUGIN}/skills/{}", skill.name);
            binds.push(Bind::read_only(&skill.host, inside));
        }
        for bind in binds {
            if let Err(e) = bind.check() {
                attached.errors.push(error(format!(
                    "skill {:?} cannot be mounted: {e}",
                    skill.name
                )));
                continue;
            }
            attached.workspace = attached.workspace.clone().with_bind(bind);
        }
        paragraph.push_str(&format!(
            "- {}: {} ({target}/SKILL.md)\n",
            skill.name,
            skill.description.replace('\n', " ")
        ));
    }
    attached.system.push(paragraph);
}

async fn custom<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    reference: &SkillRef,
    attachments: &Path,
    uid: Option<u32>,
) -> Result<Ready, String> {
    let missing = || format!("skill {} no longer exists", reference.skill_id);
    let head = stream::load::<S, Option<Skill>>(cx.store, &StreamId::new(&reference.skill_id))
        .await
        .map_err(|e| format!("skill {}: {e}", reference.skill_id))?;
    let skill = head
        .state
        .filter(|s| s.workspace == cx.created.workspace)
        .ok_or_else(missing)?;
    let version = skill.version(&reference.version).ok_or_else(|| {
        format!(
            "skill {} has no version {:?}",
            reference.skill_id, reference.version
        )
    })?;
    let host = materialize(cx, &skill, version, attachments, uid)
        .await
        .map_err(|e| format!("skill {:?} cannot be prepared: {e}", skill.name))?;
    Ok(Ready {
        name: version.name.clone(),
        description: version.description.clone(),
        host,
    })
}

/// Copies `version`'s files under `<attachments>/skills/` once; returns the directory to bind.
async fn materialize<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    skill: &Skill,
    version: &Version,
    attachments: &Path,
    uid: Option<u32>,
) -> std::io::Result<PathBuf> {
    let root = attachments.join("skills");
    let done = root.join(format!("{}_{}", skill.id, version.id));
    let host = done.join(&version.name);
    if tokio::fs::try_exists(&host).await? {
        return Ok(host);
    }
    let blobs = cx
        .options
        .blobs
        .as_ref()
        .ok_or_else(|| std::io::Error::other("this runner has no blob store"))?;
    private_dir(&root, uid).await?;
    let tmp = root.join(format!(".tmp-{}-{}", skill.id, fastrand::u64(..)));
    let result = async {
        let top = tmp.join(&version.name);
        private_dir(&tmp, uid).await?;
        private_dir(&top, uid).await?;
        for (index, file) in version.files.iter().enumerate() {
            // Paths were checked at upload (relative, no `..`); join them segment by segment.
            let mut dest = top.clone();
            let segments: Vec<&str> = file.path.split('/').collect();
            for dir in &segments[..segments.len().saturating_sub(1)] {
                dest.push(dir);
                private_dir(&dest, uid).await?;
            }
            if let Some(last) = segments.last() {
                dest.push(last);
            }
            if !blobs.read_into(&version.blob(index), &dest, 0o600).await? {
                return Err(std::io::Error::other(format!(
                    "the bytes of {} are missing",
                    file.path
                )));
            }
            own(&dest, uid)?;
        }
        match tokio::fs::rename(&tmp, &done).await {
            Ok(()) => Ok(()),
            // Another turn of the session finished first.
            Err(_) if tokio::fs::try_exists(&host).await.unwrap_or(false) => Ok(()),
            Err(e) => Err(e),
        }
    }
    .await;
    if tokio::fs::try_exists(&tmp).await.unwrap_or(false) {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
    }
    result.map(|()| host)
}

/// The Claude Code plugin directory holding one empty mount point per skill; returns it.
async fn claude_plugin(
    attachments: &Path,
    names: &[&str],
    uid: Option<u32>,
) -> std::io::Result<PathBuf> {
    let root = attachments.join("claude-plugin");
    private_dir(&root, uid).await?;
    private_dir(&root.join(".claude-plugin"), uid).await?;
    let manifest = root.join(".claude-plugin").join("plugin.json");
    tokio::fs::write(&manifest, PLUGIN_JSON).await?;
    tokio::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o600)).await?;
    own(&manifest, uid)?;
    let skills = root.join("skills");
    private_dir(&skills, uid).await?;
    if let Ok(mut entries) = tokio::fs::read_dir(&skills).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if !names.iter().any(|n| entry.file_name().to_str() == Some(n)) {
                // Mount points of skills the agent no longer has (empty: never recursive).
                let _ = tokio::fs::remove_dir(entry.path()).await;
            }
        }
    }
    for name in names {
        private_dir(&skills.join(name), uid).await?;
    }
    Ok(root)
}

/// A directory only the sandbox's uid (`uid`; the server's own without one) may use, like the
/// workspace: mode 0700 whatever the umask.
pub(super) async fn private_dir(dir: &Path, uid: Option<u32>) -> std::io::Result<()> {
    match tokio::fs::create_dir(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    own(dir, uid)?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await
}

/// Gives `path` (never followed if a link) to `uid`.
pub(super) fn own(path: &Path, uid: Option<u32>) -> std::io::Result<()> {
    match uid {
        Some(uid) => std::os::unix::fs::lchown(path, Some(uid), Some(uid)),
        None => Ok(()),
    }
}

fn anthropic<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    reference: &SkillRef,
) -> Result<Ready, String> {
    let dir = cx.options.anthropic_skills.as_ref().ok_or_else(|| {
        format!(
            "Anthropic skill {:?} is not available: the server has no --anthropic-skills-dir",
            reference.skill_id
        )
    })?;
    upload::check_directory_name(&reference.skill_id).map_err(|e| e.message)?;
    let host = dir.join(&reference.skill_id);
    let text = std::fs::read(host.join(upload::SKILL_MD)).map_err(|e| {
        format!(
            "Anthropic skill {:?}: {}: {e}",
            reference.skill_id,
            host.join(upload::SKILL_MD).display()
        )
    })?;
    let front = frontmatter::parse(&text)
        .map_err(|e| format!("Anthropic skill {:?}: {e}", reference.skill_id))?;
    Ok(Ready {
        name: reference.skill_id.clone(),
        description: front.description.unwrap_or_default(),
        host,
    })
}
