//! The environment's packages (`packages.{apt,cargo,gem,go,npm,pip}`) as a read-only layer
//! shared by the environment's sessions.
//!
//! Before each turn the environment's current package spec is read; an empty spec does
//! nothing. Otherwise its layer (`<data-dir>/layers/<sha-256 of the spec>/`, see `layer.rs`) is
//! used when built, else built now: the managers' installers (`install.rs`) run one after the
//! other in the documented order, each in a sandbox as the session's uid, through the
//! session's door (so a `limited` environment reaches the registries only with
//! `allow_package_managers`), with the layer being built bound writable at [`MOUNT`] and an
//! empty build directory as `/workspace` (never the session's workspace: the layer is shared
//! by every session of the environment, and the agent's files, `.npmrc` or `pip.conf`
//! included, must not shape it). The layer is then bound read-only at [`MOUNT`] into every
//! command of the session, with `PATH` and the managers' variables pointing into it.
//!
//! A failed installer is fatal for the turn: `prepare` returns the manager, exit status and
//! the installer's last lines, the runner records a terminal `session.error` and the session
//! idles; nothing of the failed build remains, and the next turn tries again.

mod install;
mod layer;

use managed_agents_core::environment::{self, Config, Packages};
use managed_agents_core::ids::EnvironmentId;
use managed_agents_core::storage::{self, Store, StreamId};
use managed_agents_core::time::Timestamp;

use super::{Attached, Context};
use crate::sandbox::{Bind, Network, Sandbox, Workspace};

use install::MOUNT;
use layer::Record;

/// Where the host's installed-package database is (apt resolves dependencies against it).
const DPKG_DB: &str = "/var/lib/dpkg";
/// Longest failure message (the installer's last lines).
const MAX_MESSAGE: usize = 3000;

pub(super) async fn prepare<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    attached: &mut Attached,
) -> Result<(), String> {
    let packages = packages(cx.store, &cx.created.environment_id).await?;
    if packages.is_empty() {
        return Ok(());
    }
    let steps = install::steps(&packages)?;
    if matches!(cx.network, Network::Isolated) {
        return Err(
            "the environment's packages cannot be installed: this server runs sandboxes without \
             network (no egress door)"
                .to_owned(),
        );
    }
    let key = layer::key(&packages);
    let layers = layer::Layers::new(&cx.options.layers);
    let record = |build_millis| Record {
        key: key.clone(),
        packages: packages.clone(),
        environment_id: cx.created.environment_id.clone(),
        built_by_session: cx.session.clone(),
        built_at: Timestamp::now(),
        build_millis,
    };
    let (dir, _) = layers
        .get_or_build(
            &key,
            attached.workspace.owner_uid(),
            record,
            |build| async move {
                for step in steps {
                    let mut workspace =
                        Workspace::at(&build.home).with_bind(Bind::writable(&build.layer, MOUNT));
                    if step.manager == "apt" && std::path::Path::new(DPKG_DB).is_dir() {
                        workspace = workspace.with_bind(Bind::read_only(DPKG_DB, DPKG_DB));
                    }
                    let output = cx
                        .sandbox
                        .run(&workspace, cx.network.clone(), step.command)
                        .await
                        .map_err(|e| {
                            format!(
                                "the environment's {} packages cannot be installed: {e}",
                                step.manager
                            )
                        })?;
                    if !output.success() {
                        return Err(failure(step.manager, &output));
                    }
                }
                Ok(())
            },
        )
        .await?;
    let mut workspace = attached
        .workspace
        .clone()
        .with_bind(Bind::read_only(dir, MOUNT));
    for (name, value) in install::variables(&packages) {
        workspace = workspace.with_env(name, value);
    }
    attached.workspace = workspace;
    Ok(())
}

/// The environment's current package spec (none for a self-hosted or missing environment).
async fn packages<S: Store>(store: &S, id: &EnvironmentId) -> Result<Packages, String> {
    let records = storage::read_all(store, &StreamId::new(id.as_str()))
        .await
        .map_err(|e| format!("cannot read environment {id}: {e}"))?;
    match environment::load(&records) {
        Ok(Some(env)) => match &env.settings.config {
            Config::Cloud { packages, .. } => Ok(packages.clone()),
            Config::SelfHosted => Ok(Packages::default()),
        },
        Ok(None) => Ok(Packages::default()),
        Err(e) => Err(format!("environment {id}: {e}")),
    }
}

/// The session.error message of a failed installer: the manager, how it ended and its last
/// lines.
fn failure(manager: &str, output: &crate::sandbox::Output) -> String {
    let how = if output.timed_out {
        format!("timed out after {} s", install::TIMEOUT.as_secs())
    } else {
        match (output.exit_code, output.signal) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "failed".to_owned(),
        }
    };
    let tail = [output.stderr.trim(), output.stdout.trim()]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or("(no output)");
    let mut tail: String = tail.to_owned();
    if tail.len() > MAX_MESSAGE {
        let mut cut = tail.len() - MAX_MESSAGE;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("…{}", &tail[cut..]);
    }
    format!("installing the environment's {manager} packages failed: the installer {how}:\n{tail}")
}
