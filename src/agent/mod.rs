//! `regtrust run`: the node agent. Probes every registry on a jittered interval and at once when
//! a file that feeds its trust changes; turns the results into metrics, state-change logs, drift
//! signals and a status page.
//!
//! The loop owns all mutable state (no locks but the status page's); probes run as tasks and report
//! back. Drift, three ways: presented vs trusted (`presented_untrusted`), trusted vs expected
//! (`expected_untrusted`), presented vs last seen (`regtrust_ca_changes_total`, persisted); plus
//! runtime staleness.

pub mod http;
pub mod runtime;
pub mod state;
pub mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
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

use crate::check::{self, RegistryReport};
use crate::config::{AgentConfig, RegistryConfig};
use crate::diagnose::Reason;
use crate::metrics::{EndpointSample, Metrics};
use crate::probe::{ProbeSettings, ProxyEnv};
use crate::stage;
use crate::trust::{self, ConfigError, RegistryTrust, SystemRoots, TrustLoader, TrustSettings};
use state::{Seen, State, StateStore};

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
}

/// Commands another part of the program (the demo, staging) can send the running agent.
#[derive(Debug, Clone, Copy)]
pub enum Command {
    /// Probe every registry now.
    ProbeAll,
}

/// The expected CAs of one registry, as last read.
#[derive(Debug, Clone, Default, PartialEq)]
struct Expected {
    /// SHA-256 of each expected CA (file contents and pins).
    shas: Vec<String>,
    /// Why the expectation could not be read (then it is unknown).
    error: Option<String>,
}

impl Expected {
    fn load(rc: &RegistryConfig) -> Option<Expected> {
        if rc.expected_ca_file.is_none() && rc.expected_ca_sha256.is_empty() {
            return None;
        }
        let mut e = Expected {
            shas: rc.expected_ca_sha256.clone(),
            error: None,
        };
        if let Some(f) = &rc.expected_ca_file {
            match crate::hostroot::read_bounded(f) {
                Ok(data) => {
                    let scan = crate::pem::scan_certs(&data);
                    if scan.certs.is_empty() {
                        e.error = Some(format!("{}: holds no PEM certificate", f.display()));
                    }
                    e.shas
                        .extend(scan.certs.iter().map(|d| crate::cert::sha256_hex(d)));
                }
                Err(err) => e.error = Some(format!("{}: {err}", f.display())),
            }
        }
        e.shas.sort();
        e.shas.dedup();
        Some(e)
    }
}

/// Per registry, what the loop knows.
struct Reg {
    trust: RegistryTrust,
    digest: String,
    expected: Option<Expected>,
    next_due: Instant,
    in_flight: bool,
    /// A change arrived while a probe was in flight: probe again when it returns.
    again: bool,
    probed: bool,
    /// endpoint → (reason, drift kinds that are on)
    last: HashMap<String, (Reason, Vec<&'static str>)>,
    expected_trusted: Option<bool>,
}

/// The agent, bound to its listen address and ready to run.
pub struct Agent {
    cfg: AgentConfig,
    listener: TcpListener,
    web: Arc<http::Web>,
    app: Arc<http::AppState>,
    cmd_tx: mpsc::Sender<Command>,
    cmd_rx: mpsc::Receiver<Command>,
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
            status: RwLock::new(Vec::new()),
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
        })
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
            ..
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(http::serve(listener, app.clone(), web, stop_rx));
        let mut lp = Loop::new(cfg, app.clone())?;
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
    store: StateStore,
    state: State,
    watcher: watch::Watcher,
    watch_rx: mpsc::Receiver<()>,
    probe: ProbeSettings,
    sem: Arc<tokio::sync::Semaphore>,
    stale: Option<bool>,
    /// Staging attempts decided by `handle`, spawned by the loop.
    pending_stage: Vec<(String, stage::Source)>,
    /// When each registry's last staging attempt started (the rate limit).
    last_stage: HashMap<String, Instant>,
    staging: HashSet<String>,
}

type Done = (String, RegistryReport);

impl Loop {
    fn new(cfg: AgentConfig, app: Arc<http::AppState>) -> Result<Loop, AgentError> {
        let (tx, watch_rx) = mpsc::channel(1);
        let watcher = watch::Watcher::new(tx)?;
        let store = StateStore::new(&cfg.state_dir);
        let state = store.load();
        let metrics = app.metrics.clone();
        for (key, seen) in &state.endpoints {
            if let Some((registry, endpoint)) = key.split_once(' ') {
                if seen.changes > 0 {
                    metrics.ca_changed(registry, endpoint, seen.changes);
                }
            }
        }
        Ok(Loop {
            settings: cfg.trust_settings(),
            probe: ProbeSettings {
                timeout: cfg.timeout,
                proxy: ProxyEnv::from_env(),
            },
            sem: Arc::new(tokio::sync::Semaphore::new(cfg.concurrency)),
            cfg,
            app,
            metrics,
            regs: BTreeMap::new(),
            system: Arc::new(SystemRoots::default()),
            store,
            state,
            watcher,
            watch_rx,
            stale: None,
            pending_stage: Vec::new(),
            last_stage: HashMap::new(),
            staging: HashSet::new(),
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

    async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut cmds: mpsc::Receiver<Command>,
    ) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut stages: JoinSet<stage::StageReport> = JoinSet::new();
        self.reconcile()?;
        let mut reconcile_at: Option<Instant> = None;
        let mut stale_due = Instant::now();
        loop {
            self.spawn_due(&mut tasks);
            self.spawn_stages(&mut stages);
            let next_due = self
                .regs
                .values()
                .filter(|r| !r.in_flight)
                .map(|r| r.next_due)
                .min();
            let wake = [next_due, reconcile_at, Some(stale_due)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + self.cfg.interval);
            tokio::select! {
                _ = &mut shutdown => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    match done {
                        Ok((name, report)) => self.handle(name, report),
                        Err(e) => tracing::error!(error = %e, "a probe task failed"),
                    }
                }
                Some(done) = stages.join_next(), if !stages.is_empty() => {
                    match done {
                        Ok(rep) => self.staged(rep),
                        Err(e) => tracing::error!(error = %e, "a staging task failed"),
                    }
                }
                Some(()) = self.watch_rx.recv() => {
                    let at = Instant::now() + DEBOUNCE;
                    reconcile_at = Some(reconcile_at.map_or(at, |r| r.min(at)));
                }
                Some(cmd) = cmds.recv() => match cmd {
                    Command::ProbeAll => {
                        let now = Instant::now();
                        for r in self.regs.values_mut() {
                            if r.in_flight { r.again = true } else { r.next_due = now }
                        }
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if reconcile_at.is_some_and(|t| t <= now) {
                        reconcile_at = None;
                        if let Err(e) = self.reconcile() {
                            tracing::error!(error = %e, "cannot re-read the runtime's configuration; keeping the previous one");
                        }
                    }
                    if stale_due <= now {
                        self.update_staleness();
                        stale_due = now + self.cfg.interval;
                    }
                }
            }
        }
        tracing::info!(
            in_flight = tasks.len(),
            "shutting down: finishing in-flight probes"
        );
        let bound = self.cfg.timeout + Duration::from_secs(2);
        let _ = tokio::time::timeout(bound, async {
            while let Some(done) = tasks.join_next().await {
                if let Ok((name, report)) = done {
                    self.handle(name, report);
                }
            }
        })
        .await;
        tasks.abort_all();
        self.save_state();
        Ok(())
    }

    /// Re-reads the runtime's configuration, the system roots and the expected CAs; registries whose
    /// trust changed are probed at once; departed ones are forgotten.
    fn reconcile(&mut self) -> Result<(), AgentError> {
        let loader = TrustLoader::new(&self.settings)?;
        self.system = Arc::new(trust::system::load(&self.settings.host_root));
        let mut names: Vec<String> = self.cfg.registries.iter().map(|r| r.name.clone()).collect();
        if self.cfg.discover {
            let discovery = loader.discover();
            for f in &discovery.findings {
                tracing::debug!(kind = %f.kind, message = %f.message, "host directory skipped");
            }
            names.extend(discovery.registries);
        }
        names.sort();
        names.dedup();
        let gone: Vec<String> = self
            .regs
            .keys()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for n in gone {
            tracing::info!(registry = %n, "registry left the configuration; its series are removed");
            self.regs.remove(&n);
            self.metrics.forget_registry(&n);
        }
        let sys_digest: Vec<&str> = self
            .system
            .cas
            .iter()
            .map(|c| c.cert.sha256.as_str())
            .collect();
        let sys_digest = crate::cert::sha256_hex(sys_digest.join(",").as_bytes());
        let now = Instant::now();
        let mut watch_dirs = HashSet::new();
        for f in &self.system.files {
            if let Ok(real) = self.settings.host_root.resolve(f) {
                watch::dirs_for(&real, &mut watch_dirs);
            }
        }
        for name in names {
            let trust = loader.registry(&name);
            let rc = self.cfg.registries.iter().find(|r| r.name == name);
            let expected = rc.and_then(Expected::load);
            for p in &trust.watched {
                if let Ok(real) = self.settings.host_root.resolve(p) {
                    watch::dirs_for(&real, &mut watch_dirs);
                }
            }
            if let Some(f) = rc.and_then(|r| r.expected_ca_file.as_ref()) {
                watch::dirs_for(f, &mut watch_dirs);
            }
            let digest = digest(&trust, &expected, &sys_digest);
            match self.regs.get_mut(&name) {
                Some(r) if r.digest == digest => {}
                Some(r) => {
                    tracing::info!(registry = %name, "trust files changed: probing now");
                    r.trust = trust;
                    r.digest = digest;
                    r.expected = expected;
                    if r.in_flight {
                        r.again = true
                    } else {
                        r.next_due = now
                    }
                }
                None => {
                    self.regs.insert(
                        name,
                        Reg {
                            trust,
                            digest,
                            expected,
                            next_due: now,
                            in_flight: false,
                            again: false,
                            probed: false,
                            last: HashMap::new(),
                            expected_trusted: None,
                        },
                    );
                }
            }
        }
        self.watcher.set(watch_dirs);
        tracing::debug!(
            watches = self.watcher.count(),
            registries = self.regs.len(),
            "trust re-read"
        );
        if self.regs.is_empty() {
            self.app.ready.store(true, Ordering::SeqCst);
        }
        self.update_staleness();
        Ok(())
    }

    fn update_staleness(&mut self) {
        let stale = runtime::stale(
            &self.settings.host_root,
            &self.system.files,
            &self.cfg.proc_dir,
            self.cfg.runtime,
        );
        if stale != self.stale {
            match stale {
                Some(true) => tracing::warn!(runtime = self.cfg.runtime.as_str(), "the system CA bundle changed after the runtime started: restart it to load the new roots"),
                Some(false) if self.stale == Some(true) => tracing::info!(runtime = self.cfg.runtime.as_str(), "runtime trust is current again"),
                None => tracing::debug!(runtime = self.cfg.runtime.as_str(), "runtime process or system bundle not found; staleness unknown"),
                _ => {}
            }
            self.stale = stale;
        }
        self.metrics.runtime_stale(self.cfg.runtime.as_str(), stale);
    }

    fn spawn_due(&mut self, tasks: &mut JoinSet<Done>) {
        let now = Instant::now();
        for (name, r) in self.regs.iter_mut() {
            if r.in_flight || r.next_due > now {
                continue;
            }
            r.in_flight = true;
            let (trust, system, ps, sem, name) = (
                r.trust.clone(),
                self.system.clone(),
                self.probe.clone(),
                self.sem.clone(),
                name.clone(),
            );
            tasks.spawn(async move {
                let report = check::check_registry(trust, &system, &ps, &sem).await;
                (name, report)
            });
        }
    }

    /// Folds one registry's probe into metrics, drift, change tracking, logs and the status page.
    fn handle(&mut self, name: String, report: RegistryReport) {
        let next = Instant::now() + self.jittered();
        let system = self.system.clone();
        let Some(r) = self.regs.get_mut(&name) else {
            return;
        };
        r.in_flight = false;
        r.probed = true;
        r.next_due = if std::mem::take(&mut r.again) {
            Instant::now()
        } else {
            next
        };
        let now_unix = time::OffsetDateTime::now_utc().unix_timestamp();

        // Trusted vs expected: per endpoint of the registry itself (mirrors have their own CAs).
        let own: Vec<&trust::Endpoint> = {
            let own: Vec<_> = r
                .trust
                .endpoints
                .iter()
                .filter(|e| e.authority == name)
                .collect();
            if own.is_empty() {
                r.trust.endpoints.iter().collect()
            } else {
                own
            }
        };
        let expected_untrusted: HashMap<String, bool> = match &r.expected {
            Some(exp) if exp.error.is_none() && !exp.shas.is_empty() => own
                .iter()
                .map(|ep| {
                    let pool: HashSet<String> = check::pool(&system, ep)
                        .into_iter()
                        .map(|(c, _)| c.sha256.clone())
                        .collect();
                    (ep.url(), !exp.shas.iter().all(|s| pool.contains(s)))
                })
                .collect(),
            _ => HashMap::new(),
        };
        let expected_trusted = if expected_untrusted.is_empty() {
            None
        } else {
            Some(!expected_untrusted.values().any(|u| *u))
        };
        if expected_trusted != r.expected_trusted {
            match expected_trusted {
                Some(false) => {
                    tracing::warn!(registry = %name, expected = ?r.expected.as_ref().map(|e| &e.shas), "expected CA is not trusted by the node: a rotation to it would break pulls")
                }
                Some(true) if r.expected_trusted.is_some() => {
                    tracing::info!(registry = %name, "expected CA is trusted by the node again")
                }
                _ => {}
            }
            r.expected_trusted = expected_trusted;
        }

        let mut state_changed = false;
        for e in &report.endpoints {
            // Presented vs last seen.
            if let Some(iss) = &e.presented_issuer {
                let key = state::key(&name, &e.endpoint);
                match self.state.endpoints.get_mut(&key) {
                    Some(seen)
                        if !iss.same_issuer(
                            seen.issuer_sha256.as_deref(),
                            seen.issuer_key_id.as_deref(),
                            &seen.issuer_id,
                        ) =>
                    {
                        tracing::warn!(registry = %name, endpoint = %e.endpoint, previous = %seen.issuer_id, current = %iss.id, subject = %iss.subject, "the registry's issuing CA changed");
                        seen.previous_issuer_id =
                            Some(std::mem::replace(&mut seen.issuer_id, iss.id.clone()));
                        seen.issuer_subject = iss.subject.clone();
                        seen.issuer_sha256 = iss.sha256.clone();
                        seen.issuer_key_id = iss.key_id.clone();
                        seen.changes += 1;
                        seen.changed_at = Some(now_unix);
                        seen.seen_at = now_unix;
                        self.metrics.ca_changed(&name, &e.endpoint, 1);
                        state_changed = true;
                    }
                    Some(seen) => {
                        // The same CA, perhaps known more precisely now (verified: its fingerprint).
                        seen.seen_at = now_unix;
                        if seen.issuer_sha256.is_none() && iss.sha256.is_some() {
                            seen.issuer_sha256 = iss.sha256.clone();
                            seen.issuer_id = iss.id.clone();
                            state_changed = true;
                        }
                        if seen.issuer_key_id.is_none() && iss.key_id.is_some() {
                            seen.issuer_key_id = iss.key_id.clone();
                        }
                    }
                    None => {
                        self.state.endpoints.insert(
                            key,
                            Seen {
                                issuer_id: iss.id.clone(),
                                issuer_subject: iss.subject.clone(),
                                seen_at: now_unix,
                                changes: 0,
                                previous_issuer_id: None,
                                changed_at: None,
                                issuer_sha256: iss.sha256.clone(),
                                issuer_key_id: iss.key_id.clone(),
                            },
                        );
                        state_changed = true;
                    }
                }
            }
            // Presented vs trusted: known only when a chain was seen.
            let prev = r.last.get(&e.endpoint).cloned();
            let presented_untrusted = if e.presented_chain.is_empty() || e.skip_verify {
                prev.as_ref()
                    .map(|(_, d)| d.contains(&"presented_untrusted"))
                    .unwrap_or(false)
            } else {
                is_verification_failure(e.reason)
            };
            let mut drift = vec![("presented_untrusted", presented_untrusted)];
            if let Some(u) = expected_untrusted.get(&e.endpoint) {
                drift.push(("expected_untrusted", *u));
            }
            let on: Vec<&'static str> = drift.iter().filter(|(_, v)| *v).map(|(k, _)| *k).collect();
            let prev_on = prev.as_ref().map(|(_, d)| d.clone()).unwrap_or_default();
            for kind in on.iter().filter(|k| !prev_on.contains(k)) {
                tracing::warn!(registry = %name, endpoint = %e.endpoint, kind, reason = %e.reason, presented_issuer = ?e.presented_issuer.as_ref().map(|i| &i.id), "CA drift started");
            }
            for kind in prev_on.iter().filter(|k| !on.contains(k)) {
                tracing::info!(registry = %name, endpoint = %e.endpoint, kind, "CA drift ended");
            }
            if prev.as_ref().map(|(reason, _)| *reason) != Some(e.reason) {
                let trusted: Vec<&str> = e.trusted_cas.iter().map(|t| t.sha256.as_str()).collect();
                let leaf = e
                    .presented_chain
                    .first()
                    .map(|c| c.sha256.as_str())
                    .unwrap_or("");
                if e.ok {
                    tracing::info!(registry = %name, endpoint = %e.endpoint, reason = %e.reason, previous = ?prev.as_ref().map(|p| p.0), leaf, trusted = ?trusted, "endpoint verdict");
                } else {
                    tracing::warn!(registry = %name, endpoint = %e.endpoint, reason = %e.reason, previous = ?prev.as_ref().map(|p| p.0), detail = %e.detail, leaf, presented_issuer = ?e.presented_issuer.as_ref().map(|i| &i.id), trusted = ?trusted, "endpoint verdict");
                }
            }
            r.last.insert(e.endpoint.clone(), (e.reason, on));

            let mut durations = vec![("total", e.timings_ms.total / 1000.0)];
            for (phase, v) in [
                ("connect", e.timings_ms.connect),
                ("tls", e.timings_ms.tls),
                ("http", e.timings_ms.http),
            ] {
                if let Some(v) = v {
                    durations.push((phase, v / 1000.0));
                }
            }
            let mut expiries: Vec<(&'static str, String, i64)> = Vec::new();
            for (i, c) in e.presented_chain.iter().enumerate() {
                expiries.push((
                    if i == 0 { "leaf" } else { "intermediate" },
                    c.sha256.clone(),
                    c.not_after_unix,
                ));
            }
            for t in &e.trusted_cas {
                expiries.push(("ca", t.sha256.clone(), t.not_after_unix));
            }
            self.metrics.endpoint(
                &name,
                &EndpointSample {
                    endpoint: &e.endpoint,
                    ok: e.ok,
                    reason: e.reason.as_str(),
                    durations,
                    presented_issuer: e
                        .presented_issuer
                        .as_ref()
                        .map(|i| (i.subject.as_str(), i.id.as_str())),
                    expiries,
                    timestamp: now_unix as f64,
                    drift,
                },
            );
        }
        let urls: Vec<String> = report
            .endpoints
            .iter()
            .map(|e| e.endpoint.clone())
            .collect();
        r.last.retain(|k, _| urls.contains(k));
        self.metrics.retain_endpoints(&name, &urls);
        let mut trusted: Vec<(String, String, String)> = report
            .endpoints
            .iter()
            .flat_map(|e| {
                e.trusted_cas
                    .iter()
                    .map(|t| (t.subject.clone(), t.sha256.clone(), t.source.clone()))
            })
            .collect();
        trusted.sort();
        trusted.dedup();
        let mut findings: BTreeMap<String, f64> = BTreeMap::new();
        for f in &report.findings {
            *findings.entry(f.kind.to_string()).or_default() += 1.0;
        }
        if let Some(err) = r.expected.as_ref().and_then(|e| e.error.clone()) {
            tracing::warn!(registry = %name, error = %err, "cannot read the expected CA");
            *findings
                .entry(crate::trust::FindingKind::ExpectedCaUnreadable.to_string())
                .or_default() += 1.0;
        }
        self.metrics.registry_trust(
            &name,
            &trusted,
            &findings.into_iter().collect::<Vec<_>>(),
            expected_trusted,
        );
        let untrusted = r
            .last
            .values()
            .any(|(_, d)| d.contains(&"presented_untrusted"));
        let report_ok = report.ok;
        {
            let mut st = self.app.status.write().unwrap_or_else(|p| p.into_inner());
            st.retain(|(rep, _)| rep.registry != name && self.regs.contains_key(&rep.registry));
            st.push((report, expected_trusted));
            st.sort_by(|a, b| a.0.registry.cmp(&b.0.registry));
        }
        // Staging: only when enabled for the registry, with an authenticated candidate source, while
        // the registry's chain does not verify, at most once per stage_min_interval.
        if let Some(rc) = self
            .cfg
            .registries
            .iter()
            .find(|c| c.name == name && c.stage)
        {
            let source = match (&rc.expected_ca_file, rc.expected_ca_sha256.is_empty()) {
                (Some(f), _) => Some(stage::Source::File(f.clone())),
                (None, false) => Some(stage::Source::Pin(rc.expected_ca_sha256.clone())),
                (None, true) => None,
            };
            let due = self
                .last_stage
                .get(&name)
                .is_none_or(|t| t.elapsed() >= self.cfg.stage_min_interval);
            if let (true, Some(source), true, false) = (
                untrusted && !report_ok,
                source,
                due,
                self.staging.contains(&name),
            ) {
                self.pending_stage.push((name.clone(), source));
            }
        }
        if state_changed {
            self.save_state();
        }
        if self.regs.values().all(|r| r.probed) && !self.app.ready.swap(true, Ordering::SeqCst) {
            tracing::info!(
                registries = self.regs.len(),
                "first probe round done: ready"
            );
        }
    }

    fn spawn_stages(&mut self, stages: &mut JoinSet<stage::StageReport>) {
        for (name, source) in std::mem::take(&mut self.pending_stage) {
            self.last_stage.insert(name.clone(), Instant::now());
            self.staging.insert(name.clone());
            tracing::info!(registry = %name, "staging the expected CA");
            let (settings, ps) = (self.settings.clone(), self.probe.clone());
            stages.spawn(async move {
                stage::run(&settings, &name, &source, stage::Policy::Keep, true, &ps).await
            });
        }
    }

    /// Folds a staging attempt into metrics and logs; an applied CA is probed again at once.
    fn staged(&mut self, rep: stage::StageReport) {
        self.staging.remove(&rep.registry);
        self.metrics.stage(&rep.registry, rep.outcome.as_str());
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
            if r.in_flight {
                r.again = true;
            } else {
                r.next_due = Instant::now();
            }
        }
    }

    fn save_state(&self) {
        if let Err(e) = self.store.save(&self.state) {
            tracing::warn!(path = %self.store.path().display(), error = %e, "cannot save state");
        }
    }
}

/// Reasons that mean "the chain was seen and does not verify with the node's trust".
fn is_verification_failure(r: Reason) -> bool {
    matches!(
        r,
        Reason::UnknownAuthority
            | Reason::CaKeyMismatch
            | Reason::Expired
            | Reason::NotYetValid
            | Reason::CaExpired
            | Reason::CaNotYetValid
            | Reason::NameMismatch
            | Reason::UntrustedSelfSigned
            | Reason::InvalidCertificate
    )
}

/// What, in a registry's trust, would change a probe's outcome.
fn digest(t: &RegistryTrust, expected: &Option<Expected>, system: &str) -> String {
    let mut s = format!("{system}|{:?}|{:?}|", t.config_error, t.host_dir);
    for e in &t.endpoints {
        let cas: Vec<&str> = e.cas.iter().map(|c| c.cert.sha256.as_str()).collect();
        let client = e
            .client
            .as_ref()
            .and_then(|c| c.chain.first())
            .map(|d| crate::cert::sha256_hex(d))
            .unwrap_or_default();
        s.push_str(&format!(
            "{}:{}:{}:{client};",
            e.url(),
            e.skip_verify,
            cas.join(",")
        ));
    }
    for f in &t.findings {
        s.push_str(&format!("{}:{:?};", f.kind, f.path));
    }
    if let Some(e) = expected {
        s.push_str(&format!("exp:{:?}:{:?}", e.shas, e.error));
    }
    crate::cert::sha256_hex(s.as_bytes())
}
