//! `regtrust run`: the node agent. Probes every registry on a jittered interval and at once when
//! a file that feeds its trust changes; turns the results into metrics, state-change logs, drift
//! signals and a status page.
//!
//! The loop owns all mutable state (no locks but the status page's) and is a fold: probes run as
//! tasks and report back an outcome; [`drift::fold`] turns (memory, outcome, expected CA) into
//! events and new memory; [`sinks`] apply them to metrics, logs and state; [`history`] keeps
//! the outcome and a bounded history for the status page and `/api/v1/status`. Nothing that
//! blocks runs on the loop's thread: trust re-reads ([`reconcile::read`]), config re-reads
//! ([`reload`]), the `/proc` scan, state saves and staging go through [`crate::offload`]. A
//! registry's `expected_ca_url` is fetched beside each of its probes ([`ca_url`]).

pub mod ca_url;
pub(crate) mod drift;
pub mod history;
pub mod http;
pub(crate) mod pace;
pub(crate) mod reconcile;
pub mod reload;
pub(crate) mod runtime;
pub mod signals;
pub(crate) mod sinks;
pub mod state;
pub(crate) mod watch;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::check;
use crate::config::AgentConfig;
use crate::metrics::Metrics;
use crate::offload;
use crate::outcome::RegistryOutcome;
use crate::probe::{ProbeSettings, ProxyEnv};
use crate::stage;
use crate::trust::{ConfigError, RegistryTrust, SystemRoots, TrustSettings};
use drift::{EndpointMemory, Expected, Memory, StagePolicy};
use state::{State, StateStore};

/// Quiet time after a file event before trust is re-read (editors write in bursts).
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot watch files: {0}")]
    Watch(#[from] notify::Error),
    #[error("listener: {0}")]
    Web(String),
    #[error("{0}")]
    Offload(#[from] offload::Cancelled),
}

/// Commands another part of the program (the demo, staging) can send the running agent.
#[derive(Debug, Clone, Copy)]
pub enum Command {
    /// Probe every registry now.
    ProbeAll,
    /// Read the settings again and apply what is valid (SIGHUP).
    Reload,
}

/// Per registry, what the loop knows.
struct Reg {
    /// Shared with the outcomes of its probes (see `RegistryOutcome::trust`).
    trust: Arc<RegistryTrust>,
    digest: String,
    expected: Option<Expected>,
    next_due: Instant,
    /// `next_due` is the interval's (paced), not an asked-for probe's.
    routine: bool,
    in_flight: bool,
    /// A change arrived while a probe was in flight: probe again when it returns.
    again: bool,
    probed: bool,
    memory: Memory,
}

/// The agent, bound to its listen address and ready to run.
pub struct Agent {
    cfg: AgentConfig,
    listener: TcpListener,
    web: Arc<http::Web>,
    app: Arc<http::AppState>,
    cmd_tx: mpsc::Sender<Command>,
    cmd_rx: mpsc::Receiver<Command>,
    source: Option<reload::Source>,
}

impl Agent {
    /// Binds the listener (so a caller can learn the address before running).
    pub async fn bind(cfg: AgentConfig) -> Result<Agent, AgentError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|err| AgentError::Listen {
                addr: cfg.listen,
                err,
            })?;
        let app = Arc::new(http::AppState {
            metrics: Arc::new(Metrics::new()?),
            ready: Default::default(),
            status: RwLock::new(history::Status::default()),
        });
        let web = Arc::new(http::Web::load(&cfg.web).map_err(AgentError::Web)?);
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        Ok(Agent {
            cfg,
            listener,
            web,
            app,
            cmd_tx,
            cmd_rx,
            source: None,
        })
    }

    /// Where the settings came from: [`Command::Reload`] and a change of the file read them again.
    pub fn reload_from(mut self, source: reload::Source) -> Agent {
        self.source = Some(source);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to send [`Command`]s while the agent runs.
    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.cmd_tx.clone()
    }

    /// Runs until `shutdown` completes; in-flight probes are finished, state saved, then Ok.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        let Agent {
            cfg,
            listener,
            web,
            app,
            cmd_rx,
            source,
            ..
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(http::serve(listener, app.clone(), web, stop_rx));
        let mut lp = Loop::new(cfg, app.clone(), source).await?;
        let result = lp.run(shutdown, cmd_rx).await;
        let _ = stop_tx.send(true);
        let _ = server.await;
        result
    }
}

struct Loop {
    cfg: AgentConfig,
    settings: TrustSettings,
    app: Arc<http::AppState>,
    metrics: Arc<Metrics>,
    regs: BTreeMap<String, Reg>,
    system: Arc<SystemRoots>,
    store: Arc<StateStore>,
    state: State,
    /// Each save gets the next number; an older save never overwrites a newer one.
    save_gen: u64,
    saves: JoinSet<()>,
    /// The state changed while a save was in flight: save once more when it is done. A burst of
    /// changes (the first round of 1,000 registries) costs two saves, not one per registry.
    save_pending: bool,
    watcher: watch::Watcher,
    watch_rx: mpsc::Receiver<()>,
    probe: ProbeSettings,
    sem: Arc<tokio::sync::Semaphore>,
    pacer: pace::Pacer,
    stale: Option<bool>,
    /// The runtime process found last, so staleness reads one `/proc` entry while it runs.
    runtime_proc: Option<runtime::Found>,
    /// Staging attempts the fold asked for, spawned by the loop.
    pending_stage: Vec<(String, stage::Source)>,
    source: Option<reload::Source>,
    /// Changes of the config file (kept alive with its receiver).
    _cfg_watcher: Option<watch::Watcher>,
    cfg_rx: mpsc::Receiver<()>,
}

/// A probe task's report: the outcome and, with an `expected_ca_url`, what it fetched.
struct Done {
    name: String,
    outcome: RegistryOutcome,
    fetched: Option<Result<Vec<String>, String>>,
}

impl Loop {
    async fn new(
        cfg: AgentConfig,
        app: Arc<http::AppState>,
        source: Option<reload::Source>,
    ) -> Result<Loop, AgentError> {
        let (tx, watch_rx) = mpsc::channel(1);
        let watcher = watch::Watcher::new(tx)?;
        let (cfg_tx, cfg_rx) = mpsc::channel(1);
        let cfg_watcher = match source.as_ref().and_then(|s| s.file.as_deref()) {
            Some(file) => Some(watch::Watcher::for_file(cfg_tx, file)?),
            None => None,
        };
        let store = Arc::new(StateStore::new(&cfg.state_dir));
        let loading = store.clone();
        let state = offload::blocking(move || loading.load())
            .await
            .unwrap_or_default();
        let metrics = app.metrics.clone();
        for (key, seen) in &state.endpoints {
            if let Some((registry, endpoint)) = key.split_once(' ') {
                if seen.changes > 0 {
                    metrics.ca_changed(registry, endpoint, seen.changes);
                }
            }
        }
        let found = runtime::detect_version(&cfg).await;
        metrics.runtime_info(&found);
        let mut settings = cfg.trust_settings();
        settings.runtime_version = found.version.clone();
        Ok(Loop {
            settings,
            probe: ProbeSettings::for_runtime(cfg.timeout, ProxyEnv::from_env(), &found),
            sem: Arc::new(tokio::sync::Semaphore::new(cfg.concurrency)),
            pacer: pace::Pacer::default(),
            cfg,
            app,
            metrics,
            regs: BTreeMap::new(),
            system: Arc::new(SystemRoots::default()),
            store,
            state,
            save_gen: 0,
            saves: JoinSet::new(),
            save_pending: false,
            watcher,
            watch_rx,
            stale: None,
            runtime_proc: None,
            pending_stage: Vec::new(),
            source,
            _cfg_watcher: cfg_watcher,
            cfg_rx,
        })
    }

    fn jittered(&self) -> Duration {
        let j = self.cfg.jitter;
        let f = if j > 0.0 {
            rand::rng().random_range(1.0 - j..=1.0 + j)
        } else {
            1.0
        };
        self.cfg.interval.mul_f64(f)
    }

    /// The wait after a registry's first probe: a uniform phase of the interval (0.5–1.5 ×), so
    /// registries probed together at start spread over the whole interval instead of bursting
    /// every interval (1,000 registries' handshakes at once queue on the CPU: each probe's
    /// time grows with the burst). Without jitter, the interval itself.
    fn spread(&self) -> Duration {
        if self.cfg.jitter > 0.0 {
            self.cfg
                .interval
                .mul_f64(rand::rng().random_range(0.5..1.5))
        } else {
            self.cfg.interval
        }
    }

    async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut cmds: mpsc::Receiver<Command>,
    ) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut stages: JoinSet<stage::StageReport> = JoinSet::new();
        self.reconcile().await?;
        let mut reconcile_at: Option<Instant> = None;
        let mut reload_at: Option<Instant> = None;
        let mut stale_due = Instant::now();
        loop {
            let next_due = self.spawn_due(&mut tasks);
            self.spawn_stages(&mut stages);
            let wake = [next_due, reconcile_at, reload_at, Some(stale_due)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + self.cfg.interval);
            tokio::select! {
                _ = &mut shutdown => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok(done) => self.handle(done),
                    Err(e) => tracing::error!(error = %e, "a probe task failed"),
                },
                Some(done) = stages.join_next(), if !stages.is_empty() => match done {
                    Ok(rep) => self.staged(rep),
                    Err(e) => tracing::error!(error = %e, "a staging task failed"),
                },
                Some(_) = self.saves.join_next(), if !self.saves.is_empty() => {
                    if std::mem::take(&mut self.save_pending) {
                        self.save_state();
                    }
                }
                Some(()) = self.watch_rx.recv() => {
                    let at = Instant::now() + DEBOUNCE;
                    reconcile_at = Some(reconcile_at.map_or(at, |r| r.min(at)));
                }
                // Trailing: a slow writer's file is read once it has been quiet for DEBOUNCE.
                Some(()) = self.cfg_rx.recv() => reload_at = Some(Instant::now() + DEBOUNCE),
                Some(cmd) = cmds.recv() => match cmd {
                    Command::ProbeAll => {
                        for r in self.regs.values_mut() {
                            probe_soon(r);
                        }
                    }
                    Command::Reload => self.reload(true).await,
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if reload_at.is_some_and(|t| t <= now) {
                        reload_at = None;
                        self.reload(false).await;
                    }
                    if reconcile_at.is_some_and(|t| t <= now) {
                        reconcile_at = None;
                        self.reconcile_or_log().await;
                    }
                    if stale_due <= now {
                        self.update_staleness().await;
                        stale_due = now + self.cfg.interval;
                    }
                }
            }
        }
        self.shut_down(tasks).await;
        Ok(())
    }

    /// Finishes in-flight probes (bounded by the probe timeout), then saves the state.
    async fn shut_down(&mut self, mut tasks: JoinSet<Done>) {
        tracing::info!(
            in_flight = tasks.len(),
            "shutting down: finishing in-flight probes"
        );
        let bound = self.cfg.timeout + Duration::from_secs(2);
        let _ = tokio::time::timeout(bound, async {
            while let Some(done) = tasks.join_next().await {
                if let Ok(done) = done {
                    self.handle(done);
                }
            }
        })
        .await;
        tasks.abort_all();
        while self.saves.join_next().await.is_some() {}
        self.save_pending = false;
        self.save_state();
        while self.saves.join_next().await.is_some() {}
    }

    /// Re-reads the runtime's configuration, the system roots and the expected CAs (on the blocking
    /// pool); registries whose trust changed are probed at once; departed ones are forgotten.
    async fn reconcile(&mut self) -> Result<(), AgentError> {
        let (settings, configured, discover) = (
            self.settings.clone(),
            self.cfg.registries.clone(),
            self.cfg.discover,
        );
        let reading =
            offload::blocking(move || reconcile::read(&settings, &configured, discover)).await??;
        self.system = reading.system;
        (self.app.status.write().unwrap_or_else(|p| p.into_inner())).findings =
            reading.node_findings;
        for f in &reading.skipped {
            tracing::warn!(kind = %f.kind, path = ?f.path, message = %f.message, "host directory skipped");
        }
        let names: HashSet<&str> = reading.registries.iter().map(|r| r.name.as_str()).collect();
        let gone: Vec<String> = self
            .regs
            .keys()
            .filter(|n| !names.contains(n.as_str()))
            .cloned()
            .collect();
        for n in gone {
            tracing::info!(registry = %n, "registry left the configuration; its series are removed");
            self.regs.remove(&n);
            self.metrics.forget_registry(&n);
        }
        {
            let mut st = self.app.status.write().unwrap_or_else(|p| p.into_inner());
            st.retain(|n| names.contains(n));
        }
        let now = Instant::now();
        for read in reading.registries {
            match self.regs.get_mut(&read.name) {
                Some(r) if r.digest == read.digest => {}
                Some(r) => {
                    tracing::info!(registry = %read.name, "trust files changed: probing now");
                    r.trust = Arc::new(read.trust);
                    r.digest = read.digest;
                    r.expected = read.expected;
                    probe_soon(r);
                }
                None => {
                    let memory = self.remembered(&read.name);
                    self.regs.insert(
                        read.name,
                        Reg {
                            trust: Arc::new(read.trust),
                            digest: read.digest,
                            expected: read.expected,
                            next_due: now,
                            routine: false,
                            in_flight: false,
                            again: false,
                            probed: false,
                            memory,
                        },
                    );
                }
            }
        }
        self.watcher.set(reading.watch_dirs);
        tracing::debug!(
            watches = self.watcher.count(),
            registries = self.regs.len(),
            "trust re-read"
        );
        if self.regs.is_empty() {
            self.app.ready.store(true, Ordering::SeqCst);
        }
        self.update_staleness().await;
        Ok(())
    }

    /// Reads the settings again (on the blocking pool) and applies them if the whole file is
    /// valid; otherwise logs every mistake with its file and key and keeps every setting. A file
    /// event that changed nothing does nothing; a signal re-reads trust in any case.
    async fn reload(&mut self, signal: bool) {
        let Some(src) = self.source.clone() else {
            tracing::info!("reload: no config file; re-reading the runtime's configuration");
            return self.reconcile_or_log().await;
        };
        let new = match offload::blocking(move || src.load()).await {
            Ok(Ok(cfg)) => cfg,
            Ok(Err(errs)) => {
                for e in &errs {
                    let path = e.path().map(|p| p.display().to_string());
                    tracing::error!(path = path.unwrap_or_default(), key = e.key_name().unwrap_or_default(), error = %e, "config not reloaded: keeping every previous setting");
                }
                return;
            }
            Err(e) => return tracing::error!(error = %e, "config not reloaded"),
        };
        let plan = reload::plan(&self.cfg, new);
        for k in &plan.needs_restart {
            tracing::warn!(
                key = k,
                "config: this setting needs a restart; keeping the running value"
            );
        }
        if plan.changed.is_empty() && !signal {
            return;
        }
        tracing::info!(changed = plan.changed.join(","), "config reloaded");
        self.apply(plan.cfg);
        self.reconcile_or_log().await;
        if !plan.changed.is_empty() {
            for r in self.regs.values_mut() {
                probe_soon(r);
            }
        }
    }

    /// Runs with `cfg` from now on (trust settings, probe deadline, concurrency, schedule).
    fn apply(&mut self, cfg: AgentConfig) {
        // The version detected at start stays (a reload does not re-read the runtime's binary).
        let version = self.settings.runtime_version.take();
        self.settings = cfg.trust_settings();
        self.settings.runtime_version = version;
        self.probe.timeout = cfg.timeout;
        if cfg.concurrency != self.cfg.concurrency {
            self.sem = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency));
        }
        self.cfg = cfg;
    }

    async fn reconcile_or_log(&mut self) {
        if let Err(e) = self.reconcile().await {
            tracing::error!(error = %e, "cannot re-read the runtime's configuration; keeping the previous one");
        }
    }

    /// A new registry's memory: the issuers its endpoints showed before a restart.
    fn remembered(&self, registry: &str) -> Memory {
        let prefix = state::key(registry, "");
        let endpoints = self
            .state
            .endpoints
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, seen)| {
                let em = EndpointMemory {
                    seen: Some(seen.clone()),
                    ..Default::default()
                };
                (k[prefix.len()..].to_string(), Box::new(em))
            })
            .collect();
        Memory {
            endpoints,
            ..Default::default()
        }
    }

    /// Runtime staleness, from `/proc` and the bundle's mtime (on the blocking pool).
    async fn update_staleness(&mut self) {
        let (hr, files, proc_dir, rt, last) = (
            self.settings.host_root.clone(),
            self.system.files.clone(),
            self.cfg.proc_dir.clone(),
            self.cfg.runtime,
            self.runtime_proc,
        );
        let (stale, found) =
            offload::blocking(move || runtime::stale(&hr, &files, &proc_dir, rt, last))
                .await
                .unwrap_or((None, None));
        self.runtime_proc = found;
        let rt = self.cfg.runtime.as_str();
        if stale != self.stale {
            match stale {
                Some(true) => tracing::warn!(runtime = rt, "the system CA bundle changed after the runtime started: restart it to load the new roots"),
                Some(false) if self.stale == Some(true) => tracing::info!(runtime = rt, "runtime trust is current again"),
                None => tracing::debug!(runtime = rt, "runtime process or system bundle not found; staleness unknown"),
                _ => {}
            }
            self.stale = stale;
        }
        self.metrics.runtime_stale(rt, stale);
    }

    /// Starts the registries the pacer picks among the due ones; returns when the next of the
    /// others may start.
    fn spawn_due(&mut self, tasks: &mut JoinSet<Done>) -> Option<Instant> {
        let gap = pace::gap(self.cfg.interval, self.regs.len());
        let pace::Picked { start, next } = self.pacer.pick(
            Instant::now(),
            gap,
            self.regs.iter().map(|(n, r)| (n, r.due())),
        );
        let start: Vec<String> = start.into_iter().cloned().collect();
        for name in start {
            self.spawn_probe(tasks, name);
        }
        next
    }

    /// Starts one registry's probe (and its expected-CA fetch) as a task.
    fn spawn_probe(&mut self, tasks: &mut JoinSet<Done>, name: String) {
        let Some(r) = self.regs.get_mut(&name) else {
            return;
        };
        r.in_flight = true;
        let (trust, system, ps, sem) = (
            r.trust.clone(),
            self.system.clone(),
            self.probe.clone(),
            self.sem.clone(),
        );
        let url = self
            .cfg
            .registries
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.expected_ca_url.clone());
        tasks.spawn(async move {
            let fetch = async {
                match &url {
                    Some(u) => Some(ca_url::fetch(u, ps.timeout).await),
                    None => None,
                }
            };
            let probe = check::check_registry(trust, &system, &ps, &sem);
            let (outcome, fetched) = tokio::join!(probe, fetch);
            Done {
                name,
                outcome,
                fetched,
            }
        });
    }

    /// One registry's round: the fold, then its sinks (metrics, logs, state, status page).
    fn handle(&mut self, done: Done) {
        let Done {
            name,
            outcome,
            fetched,
        } = done;
        let (next, first) = (
            Instant::now() + self.jittered(),
            Instant::now() + self.spread(),
        );
        let policy = self.stage_policy(&name);
        let Some(r) = self.regs.get_mut(&name) else {
            return;
        };
        let next = if r.probed { next } else { first };
        r.in_flight = false;
        r.probed = true;
        r.routine = !std::mem::take(&mut r.again);
        r.next_due = if r.routine { next } else { Instant::now() };
        let now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
        let expected = ca_url::join(r.expected.as_ref(), fetched.as_ref());
        let round = drift::Round {
            outcome: &outcome,
            expected: expected.as_ref(),
            system: &self.system,
            stage: policy.as_ref(),
            now: Instant::now().into_std(),
            now_unix,
        };
        let (events, memory) = drift::fold(std::mem::take(&mut r.memory), &round);
        r.memory = memory;
        sinks::metrics(
            &self.metrics,
            &outcome,
            &r.memory,
            expected.as_ref(),
            &events,
            now_unix,
        );
        sinks::log(&outcome, &events);
        let save = sinks::state(&mut self.state, &name, &r.memory, &events);
        for ev in &events {
            if let drift::Event::StageDue { source } = ev {
                self.pending_stage.push((name.clone(), source.clone()));
            }
        }
        let expected_trusted = r.memory.expected_trusted;
        {
            let mut st = self.app.status.write().unwrap_or_else(|p| p.into_inner());
            let round = history::Round {
                outcome,
                expected_trusted,
                expected: expected.as_ref(),
                events: &events,
                now_unix,
            };
            st.record(round);
        }
        if save {
            self.save_state();
        }
        // Once ready, no scan of every registry per probe.
        if !self.app.ready.load(Ordering::SeqCst)
            && self.regs.values().all(|r| r.probed)
            && !self.app.ready.swap(true, Ordering::SeqCst)
        {
            tracing::info!(
                registries = self.regs.len(),
                "first probe round done: ready"
            );
        }
    }

    /// The registry's staging settings, when staging is enabled and it has a candidate source.
    fn stage_policy(&self, name: &str) -> Option<StagePolicy> {
        let rc = self
            .cfg
            .registries
            .iter()
            .find(|c| c.name == name && c.stage)?;
        let source = match (&rc.expected_ca_file, rc.expected_ca_sha256.is_empty()) {
            (Some(f), _) => stage::Source::File(f.clone()),
            (None, false) => stage::Source::Pin(rc.expected_ca_sha256.clone()),
            (None, true) => return None,
        };
        Some(StagePolicy {
            source,
            min_interval: self.cfg.stage_min_interval,
        })
    }

    fn spawn_stages(&mut self, stages: &mut JoinSet<stage::StageReport>) {
        for (name, source) in std::mem::take(&mut self.pending_stage) {
            let (settings, ps) = (self.settings.clone(), self.probe.clone());
            stages.spawn(async move {
                stage::run(&settings, &name, &source, stage::Policy::Keep, true, &ps).await
            });
        }
    }

    /// Folds a staging attempt into metrics and logs; an applied CA is probed again at once.
    fn staged(&mut self, rep: stage::StageReport) {
        self.metrics.stage(&rep.registry, rep.outcome.as_str());
        let mark = history::StageMark {
            at_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
            result: rep.outcome.as_str().to_string(),
            message: rep.message.clone(),
        };
        (self.app.status.write().unwrap_or_else(|p| p.into_inner())).staged(&rep.registry, mark);
        let (reg, target, before, after) = (
            &rep.registry,
            rep.target.as_deref().unwrap_or(""),
            rep.before.join(","),
            rep.after.join(","),
        );
        match rep.outcome {
            stage::Outcome::Applied => {
                tracing::info!(registry = %reg, result = rep.outcome.as_str(), target, before, after, message = %rep.message, "staged a corrected CA")
            }
            _ => {
                tracing::warn!(registry = %reg, result = rep.outcome.as_str(), target, before, after, message = %rep.message, "staging did not install a CA")
            }
        }
        if let Some(r) = self.regs.get_mut(&rep.registry) {
            r.memory.staging = false;
            probe_soon(r);
        }
    }

    /// Saves the state on the blocking pool, or after the save in flight; saves are numbered so a
    /// slow old one loses.
    fn save_state(&mut self) {
        if !self.saves.is_empty() {
            self.save_pending = true;
            return;
        }
        self.save_gen += 1;
        self.state.prune(state::now_unix());
        let (store, gen, state) = (self.store.clone(), self.save_gen, self.state.clone());
        self.saves.spawn(async move {
            let path = store.path().display().to_string();
            match offload::blocking(move || store.save_newer(gen, &state)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(path = %path, error = %e, "cannot save state"),
                Err(e) => tracing::warn!(path = %path, error = %e, "cannot save state"),
            }
        });
    }
}

/// Probe now, or as soon as the probe in flight returns.
fn probe_soon(r: &mut Reg) {
    if r.in_flight {
        r.again = true;
    } else {
        r.next_due = Instant::now();
        r.routine = false;
    }
}

impl Reg {
    fn due(&self) -> pace::Due {
        pace::Due {
            at: self.next_due,
            routine: self.routine,
            in_flight: self.in_flight,
        }
    }
}
