//! The `managed-agents` binary: parses flags, opens the store, and serves the API or manages
//! API keys.

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use managed_agents_server::blobs::Blobs;
use managed_agents_server::config::{
    BlobStore, Cli, Command, KeysCommand, RunnerMode, RuntimesCommand, ServeConfig, Storage,
    StoreArgs,
};
use managed_agents_server::sealer::Sealer;
use managed_agents_server::{app, keys, AnyStore, AppState};
use managed_agents_storage_memory::MemoryStore;

/// jemalloc instead of glibc's malloc: an idle SSE stream holds hyper's two 8 KiB connection
/// buffers, mostly never written, and jemalloc keeps their untouched pages out of the resident
/// set (glibc's inline chunk headers and reuse touch them): 15.9 → 11.8 KiB RSS per idle stream
/// at 10,000 streams (`benches/README.md`, "Issue 12: fan-out and stream memory"). Its symbols
/// are unprefixed (the workspace's `Cargo.toml`): it is the process's `malloc` too, so RocksDB's
/// C++ heap is jemalloc's and one set of figures covers the whole heap (`memory.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // The hidden `sandbox-relay` subcommand: the relay inside a sandbox (harness::door::relay),
    // started for every sandboxed command, so before anything else.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "sandbox-relay") {
        std::process::exit(managed_agents_harness::door::relay::main(args));
    }
    // Before any thread or file exists: everything the process creates is private (0600/0700).
    managed_agents_server::datadir::restrict_umask();
    let cli = Cli::parse();
    // Logs (and traces with `serve --otlp-endpoint`) before the runtime: the exporter's client
    // must not live in it. Dropping `telemetry` writes out what is left of both.
    let telemetry = match &cli.command {
        Command::Serve(args) => managed_agents_server::telemetry::init(&args.telemetry),
        _ => managed_agents_server::telemetry::init(&Default::default()),
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(err) => fail(&anyhow::Error::new(err)),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            drop(telemetry);
            fail(&anyhow::Error::new(err).context("starting the async runtime"))
        }
    };
    // Everything logged is written before the process ends, whichever way it ends (after the
    // runtime's tasks stopped when it ends normally).
    if let Err(err) = runtime.block_on(run(cli)) {
        drop(telemetry);
        fail(&err);
    }
    drop(runtime);
    drop(telemetry);
}

fn fail(err: &anyhow::Error) -> ! {
    eprintln!("managed-agents: error: {err:#}");
    std::process::exit(2);
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve((*args).validate()?).await,
        Command::Keys { command } => keys_command(command).await,
        Command::MockModel(args) => {
            // The harness error already names its cause; no second `: cause` from a chain.
            managed_agents_harness::mock_model::run(args.listen()?, args.script.as_deref())
                .await
                .map_err(|err| anyhow::anyhow!("mock-model: {err}"))
        }
        Command::Runtimes { command } => runtimes_command(command).await,
        Command::Sessions { command } => managed_agents_server::cli::sessions(command).await,
        Command::Send(args) => managed_agents_server::cli::send(args).await,
    }
}

/// `managed-agents runtimes install AGENT`: the pinned version into the runtime directory; the
/// version directory on stdout.
async fn runtimes_command(command: RuntimesCommand) -> anyhow::Result<()> {
    match command {
        RuntimesCommand::Install { agent, dirs, npm } => {
            let agent = agent.agent();
            let runtimes = managed_agents_harness::runtimes::Runtimes::new(dirs.dir());
            if runtimes.installed(agent).is_none() {
                eprintln!(
                    "installing {} into {} with npm",
                    agent.spec(),
                    runtimes.dir().display()
                );
            }
            let (dir, fresh) = runtimes.install(agent, npm.as_deref()).await?;
            if !fresh {
                eprintln!("{} is installed", agent.spec());
            }
            println!("{}", dir.display());
            Ok(())
        }
    }
}

async fn open_store(
    storage: &Storage,
    data_dir: &std::path::Path,
    memory: managed_agents_server::store::RocksMemory,
) -> anyhow::Result<AnyStore> {
    match storage {
        Storage::Memory => Ok(AnyStore::Memory(MemoryStore::new())),
        Storage::Rocksdb => {
            let path = data_dir.join("db");
            AnyStore::open_rocks(&path, memory)
                .with_context(|| format!("opening the RocksDB store at {}", path.display()))
        }
        Storage::Postgres { url } => AnyStore::open_postgres(url)
            .await
            .context("opening the PostgreSQL store (--database-url)"),
    }
}

/// The store `keys` subcommands work on.
async fn open_keys_store(args: &StoreArgs) -> anyhow::Result<AnyStore> {
    open_store(
        &args.storage()?,
        &args.data_dir,
        args.backend.rocks_memory()?,
    )
    .await
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    if let Some(key) = &config.bootstrap_key {
        keys::check_operator_key(key).context("MANAGED_AGENTS_BOOTSTRAP_KEY (--bootstrap-key)")?;
    }
    let data_dir = &config.data_dir;
    match managed_agents_server::datadir::prepare(data_dir)
        .with_context(|| format!("--data-dir {}: cannot create it", data_dir.display()))?
    {
        managed_agents_server::datadir::Prepared::Private => {}
        managed_agents_server::datadir::Prepared::Tightened(mode) => tracing::warn!(
            dir = %data_dir.display(),
            "the data dir had mode {mode:o}; it is now 0700"
        ),
    }
    let store = open_store(&config.storage, &config.data_dir, config.rocks).await?;
    let sealer = match (&config.storage, config.sealer) {
        (_, Some(sealer)) => sealer,
        (Storage::Memory, None) => Sealer::ephemeral()?,
        // PostgreSQL keeps the sealing key under the data dir too: one node, or the same key
        // given to every node.
        (Storage::Rocksdb | Storage::Postgres { .. }, None) => {
            Sealer::load_or_generate(&config.data_dir)?
        }
    };
    let blobs = match &config.blob_store {
        BlobStore::Memory => Blobs::memory(),
        BlobStore::Dir(dir) => Blobs::Dir(dir.clone()),
        BlobStore::S3(settings) => {
            Blobs::S3(managed_agents_server::blobs::s3::open(settings).context("--blob-store s3")?)
        }
    };
    if let Some(key) = &config.bootstrap_key {
        match keys::install(&store, key, keys::DEFAULT_WORKSPACE, Some("bootstrap")).await {
            Ok(_) => {}
            // Revocation is permanent: the server serves, and the key stays rejected.
            Err(keys::Error::Revoked(id)) => {
                tracing::warn!(key_id = %id, "the bootstrap key was revoked; not installing it");
                eprintln!(
                    "warning: MANAGED_AGENTS_BOOTSTRAP_KEY was revoked ({id}) and stays revoked; \
                     set a new key or create one with `managed-agents keys create`"
                );
            }
            Err(err) => return Err(err).context("installing MANAGED_AGENTS_BOOTSTRAP_KEY"),
        }
    } else if !keys::any(&store).await? {
        let (id, key) = keys::create(&store, keys::DEFAULT_WORKSPACE, Some("first")).await?;
        println!(
            "created API key {id} for workspace {}: {key}",
            keys::DEFAULT_WORKSPACE
        );
        println!("(this is the only time the key is shown)");
    }
    let workspaces = workspaces(&config.data_dir)
        .with_quota(config.workspace_quota)
        .with_uids(config.sandbox_uids);
    // Bound before the runner starts: the door denies the API's own address.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("--listen {}: cannot bind", config.listen))?;
    let local = listener.local_addr()?;
    let door = match config.runner {
        RunnerMode::On => Some(door(&config.data_dir, config.egress_allow_private, local)?),
        RunnerMode::Off => None,
    };
    let runner = match (config.runner, &door) {
        (RunnerMode::On, Some(door)) => {
            let addresses = managed_agents_harness::door::policy::Addresses {
                allow_private: config.egress_allow_private,
                api: vec![local],
            };
            let interception =
                interception(&config.data_dir, &config.egress_upstream_ca, addresses)?;
            let mut sandbox_options = sandbox_options(
                config.sandbox_uids,
                config.sandbox_tmp_bytes,
                &config.runtimes,
            );
            sandbox_options.trust_bundle = Some(interception.1);
            let mut options = managed_agents_harness::runner::Options::new(workspaces.clone());
            options.llm_endpoints = config.llm_endpoints.clone();
            options.runtimes = config.runtimes.clone();
            options.door = Some(door.clone());
            options.interception = Some(interception.0);
            options.blobs = Some(std::sync::Arc::new(blobs.clone()));
            options.anthropic_skills = config.anthropic_skills.clone();
            options.requires_action_timeout = config.requires_action_timeout;
            options.leasing = config
                .runner_lease
                .map(managed_agents_harness::runner::Leasing::unique);
            options.compact_at_tokens = config.compact_at_tokens;
            options.stream_idle_timeout = config.model_stream_idle_timeout;
            options.trace_content = config.trace_content;
            start_runner(&store, &sealer, &workspaces, sandbox_options, options).await?
        }
        _ => None,
    };
    let (state, shutdown) = AppState::new(store, sealer, blobs);
    let mut state = state.with_limits(config.limits).with_quotas(config.quotas);
    state.ping_interval = config.ping_interval;
    state.anthropic_skills = config.anthropic_skills.clone();
    state.uploads_downloadable = config.uploads_downloadable;
    if let Some(runner) = &runner {
        state.runner = managed_agents_server::state::RunnerHooks {
            notifier: runner.notifier(),
            previews: runner.previews(),
            workspaces: Some(workspaces.clone()),
            door,
        };
    }
    println!("listening on http://{local}");
    std::io::stdout().flush()?;
    tracing::info!(
        %local,
        storage = ?config.storage,
        blobs = ?config.blob_store,
        "serving"
    );
    let connections = managed_agents_server::serve::Connections {
        header_read_timeout: config.limits.header_read_timeout,
        metrics: state.metrics.clone(),
    };
    managed_agents_server::serve::serve(listener, app(state), connections, async move {
        signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = shutdown.send(true);
    })
    .await
    .context("serving")?;
    if let Some(runner) = &runner {
        // Other runners over the same database take this one's sessions over now rather than
        // when its leases lapse.
        let released = runner.release_leases().await;
        if released > 0 {
            tracing::info!(released, "session leases released");
        }
        // A session task still running could mount an image again after it was unmounted (the
        // snapshot after a turn's idle does): let them end first, briefly.
        if !runner.halt(RUNNER_PATIENCE).await {
            tracing::warn!(
                patience_ms = RUNNER_PATIENCE.as_millis() as u64,
                "session tasks still running at shutdown; they are dropped"
            );
        }
        // Workspace images are mounted again on their next use.
        let unmounted = workspaces.unmount_all();
        tracing::info!(unmounted, "workspace images unmounted");
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long shutdown waits for running session tasks to end before it unmounts the workspace
/// images (a turn still running then is cut, and resumed by the next start).
const RUNNER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the harness runner: recovers sessions left running, then runs sessions as input
/// arrives: the routes call `Runner::notify` on new input; a rescan every 500 ms is the safety
/// net for a missed notification.
/// Without bubblewrap the API still serves, but no session runs. With bubblewrap, one command
/// runs in a throw-away workspace first, so a sandbox that cannot work with this data dir,
/// uid range or machine fails the start-up instead of every tool call.
async fn start_runner(
    store: &AnyStore,
    sealer: &Sealer,
    workspaces: &managed_agents_harness::sandbox::Workspaces,
    sandbox_options: managed_agents_harness::sandbox::Options,
    options: managed_agents_harness::runner::Options,
) -> anyhow::Result<
    Option<
        managed_agents_harness::runner::Runner<
            AnyStore,
            managed_agents_harness::sandbox::BubblewrapSandbox,
        >,
    >,
> {
    use managed_agents_harness::runner::Runner;
    use managed_agents_harness::sandbox::BubblewrapSandbox;
    let uids = sandbox_options.host_uids;
    let sandbox = match BubblewrapSandbox::new(sandbox_options) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            tracing::error!(error = %e, "sessions will not run: the sandbox is unavailable");
            eprintln!("warning: sessions will not run: {e}");
            return Ok(None);
        }
    };
    tracing::info!(
        sandbox = %sandbox.enforcement(),
        workspaces = %workspaces.enforcement(),
        "sandbox ready"
    );
    let accounts = uids.host_accounts();
    if !accounts.is_empty() {
        tracing::warn!(?accounts, %uids, "host accounts use uids of --sandbox-uid-range");
    }
    workspaces
        .self_test(&sandbox, options.door.as_ref())
        .await
        .with_context(|| {
            format!(
            "the sandbox start-up check in {} failed (fix it, or serve the API without running \
             sessions with --runner off)",
            workspaces.root().display()
        )
        })?;
    let runner = Runner::new(store.clone(), sandbox, sealer.clone(), options);
    match runner.start().await {
        Ok(n) => tracing::info!(sessions = n, "runner started"),
        Err(e) => tracing::warn!(error = %e, "runner start-up scan failed"),
    }
    runner.rescan_every(std::time::Duration::from_millis(500));
    Ok(Some(runner))
}

/// The sandboxes' egress door: sockets under `<data dir>/doors`, this executable as the relay
/// (`managed-agents sandbox-relay`), the API's own address always denied.
fn door(
    data_dir: &std::path::Path,
    allow_private: bool,
    api: std::net::SocketAddr,
) -> anyhow::Result<managed_agents_harness::door::Door> {
    let dir = door_dir(data_dir);
    let relay = std::env::current_exe().context("locating this executable (the sandbox relay)")?;
    if allow_private {
        tracing::warn!(
            "--egress-allow-private: sandboxes may reach loopback and private addresses"
        );
    }
    managed_agents_harness::door::Door::new(managed_agents_harness::door::DoorOptions {
        dir,
        relay,
        allow_private,
        api_addrs: vec![api],
    })
    .context("preparing the sandboxes' egress door")
}

/// Where the door sockets live: under `/run/managed-agents-doors/<hash of the data dir>` when
/// the server is root (short socket paths, and a sandbox's mount table never shows the data
/// dir's path), else `<data dir>/doors`.
fn door_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        std::path::Path::new("/run/managed-agents-doors").join(name)
    } else {
        data_dir.join("doors")
    }
}

/// Credential injection: the egress CA in the data dir (generated on first start), the trust
/// bundle sandboxes get (the host's CAs, then ours; rewritten at every start), and the upstream
/// roots (the host's, Mozilla's and `--egress-upstream-ca`).
fn interception(
    data_dir: &std::path::Path,
    upstream_ca: &[std::path::PathBuf],
    addresses: managed_agents_harness::door::policy::Addresses,
) -> anyhow::Result<(
    managed_agents_harness::door::credentials::Interception,
    std::path::PathBuf,
)> {
    use managed_agents_harness::door::{ca, credentials::Interception, mitm::Upstream};
    let authority = ca::Authority::load_or_generate(data_dir)?;
    let system = std::path::Path::new(ca::SYSTEM_BUNDLE);
    let bundle = authority.write_trust_bundle(data_dir, system)?;
    let upstream = Upstream::new(system, upstream_ca).context("--egress-upstream-ca")?;
    Ok((
        Interception::new(std::sync::Arc::new(authority), upstream, addresses),
        bundle,
    ))
}

/// The sandbox's identities, limits and agent runtimes from `serve`'s flags.
fn sandbox_options(
    host_uids: managed_agents_harness::sandbox::UidRange,
    tmp_bytes: u64,
    runtimes: &managed_agents_harness::runtimes::Runtimes,
) -> managed_agents_harness::sandbox::Options {
    let mut options = managed_agents_harness::sandbox::Options {
        host_uids,
        runtimes: Some(runtimes.dir().to_owned()),
        read_only: runtimes.binds(),
        ..Default::default()
    };
    options.limits.tmp_bytes = Some(tmp_bytes);
    options
}

/// Session workspaces under `<data dir>/workspaces`, as an absolute path: the sandbox launcher
/// binds it, and a relative `--data-dir` (the default `./data`) must not depend on its cwd.
fn workspaces(data_dir: &std::path::Path) -> managed_agents_harness::sandbox::Workspaces {
    let root = data_dir.join("workspaces");
    managed_agents_harness::sandbox::Workspaces::new(std::path::absolute(&root).unwrap_or(root))
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn keys_command(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            store,
            workspace,
            name,
            environment,
        } => {
            let store = open_keys_store(&store).await?;
            if let Some(environment) = environment {
                let (id, key) =
                    keys::create_environment_key(&store, &environment, name.as_deref()).await?;
                println!("{id}\t{environment}\t{key}");
                eprintln!("store the key now: it cannot be shown again");
                return Ok(());
            }
            let (id, key) = keys::create(&store, &workspace, name.as_deref()).await?;
            println!("{id}\t{workspace}\t{key}");
            eprintln!("store the key now: it cannot be shown again");
        }
        KeysCommand::List { store } => {
            let store = open_keys_store(&store).await?;
            for key in keys::list(&store).await? {
                println!(
                    "{}\t{}\t{}\t...{}\t{}\t{}{}",
                    key.id,
                    key.workspace_name,
                    key.name.as_deref().unwrap_or("-"),
                    key.hint,
                    key.created_at,
                    if key.revoked { "revoked" } else { "active" },
                    // Environment keys get a seventh column: their environment.
                    key.environment
                        .as_deref()
                        .map(|e| format!("\t{e}"))
                        .unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { store, id } => {
            let store = open_keys_store(&store).await?;
            keys::revoke(&store, &id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
