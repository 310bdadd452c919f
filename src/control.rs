//! The control socket of a running engine, and `fillcast ctl`, its client.
//!
//! One request per connection: a line of words (`pause subscription F1:L1`), at
//! most `MAX_REQUEST` bytes; one reply: a JSON object on one line, `{"ok": true,
//! "message": ...}` or `{"ok": false, "error": ...}` (`status` adds `"status"`).
//! The socket is a Unix socket of mode 0600 and the peer's uid is checked with
//! `SO_PEERCRED`: the engine's own user and root may command it; anyone else is
//! refused, and the refusal is logged and counted.
//!
//! A command becomes an input event: the server resolves its names against the
//! revision in force and puts a `FeedEvent::Command` (with the sender's uid) into
//! the control source, which the I/O thread polls like any source, so the core
//! takes it between two events and the journal holds it with who sent it. A
//! reload loads and checks the config files exactly as `check-config` does,
//! hands the new revision to the core (`pipeline::Reloads`) and sends its
//! `FeedEvent::Revision`.

use anyhow::{bail, Context, Result};
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use fillcast_engine::config::{self, Config};
use fillcast_engine::core::RevisionPatch;
use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_engine::outputs::{DecisionStatus, Reason};
use fillcast_engine::pipeline::{NewRevision, Progress};
use fillcast_engine::port::{Source, SourcePoll};
use fillcast_engine::units::Nanos;
use fillcast_gateways::control::{self, Request, MAX_REQUEST};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The socket's name in the journal directory when config names none.
const DEFAULT_SOCKET: &str = "control.sock";

/// Where the control socket of the engine run with `cfg` is: `[control] socket`,
/// else `control.sock` in the journal directory; `None` without either, or with
/// `[control] enabled = false`.
pub fn socket_path(cfg: &Config) -> Option<PathBuf> {
    match &cfg.control {
        Some(c) if !c.enabled => None,
        Some(config::ControlConfig {
            socket: Some(p), ..
        }) => Some(p.clone()),
        _ => cfg.journal.as_ref().map(|j| j.dir.join(DEFAULT_SOCKET)),
    }
}

/// The control socket named by the config file at `path`, read without checking
/// the rest of it (as `socket_path` would find it once the file is valid).
pub fn socket_of_file(path: &Path) -> Result<PathBuf> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let t: toml::Table = text.parse().with_context(|| {
        format!(
            "{}: not TOML, so its control socket cannot be found (give it with --socket)",
            path.display()
        )
    })?;
    let base = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let control = t.get("control").and_then(|c| c.as_table());
    if control
        .and_then(|c| c.get("enabled"))
        .and_then(|e| e.as_bool())
        == Some(false)
    {
        bail!(
            "{}: [control] enabled = false: this engine has no control socket",
            path.display()
        );
    }
    let socket = control
        .and_then(|c| c.get("socket"))
        .and_then(|s| s.as_str())
        .map(PathBuf::from)
        .or_else(|| {
            t.get("journal")
                .and_then(|j| j.get("dir"))
                .and_then(|d| d.as_str())
                .map(|d| Path::new(d).join(DEFAULT_SOCKET))
        })
        .with_context(|| {
            format!(
                "{}: no control socket: it has no [journal] and no [control] socket",
                path.display()
            )
        })?;
    Ok(base.join(socket))
}

/// The operator's commands as a source: polled for as long as the run lasts,
/// without holding it open.
pub struct ControlSource {
    rx: Receiver<FeedEvent>,
}

impl Source for ControlSource {
    fn name(&self) -> &str {
        "control"
    }

    fn next(&mut self, _now: Nanos) -> SourcePoll {
        match self.rx.try_recv() {
            Ok(ev) => SourcePoll::Event(ev),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => SourcePoll::Idle,
        }
    }

    fn holds_run_open(&self) -> bool {
        false
    }
}

/// A control source and the sender that feeds it.
pub fn channel() -> (Sender<FeedEvent>, ControlSource) {
    let (tx, rx) = crossbeam::channel::unbounded();
    (tx, ControlSource { rx })
}

/// What the server knows of the engine it serves.
pub struct Served {
    pub config_path: PathBuf,
    pub cfg: Config,
    pub universe: Arc<Universe>,
    pub sources: Vec<String>,
    pub progress: Arc<Progress>,
    pub tx: Sender<FeedEvent>,
    /// Set by `shutdown` (and by SIGTERM/SIGINT, outside): the run drains and ends.
    pub shutdown: Arc<AtomicBool>,
    /// Set by SIGHUP: the server reloads as if `ctl reload` had been sent.
    pub hangup: Arc<AtomicBool>,
    pub started: Instant,
    /// Whether the run keeps going once its sources are done (`run --until-stopped`).
    pub until_stopped: bool,
}

/// Counters of the control plane, for `status` and the metrics.
#[derive(Default)]
pub struct ControlStats {
    pub commands: AtomicU64,
    pub refused_peers: AtomicU64,
    pub bad_requests: AtomicU64,
    pub reloads: AtomicU64,
    pub reloads_invalid: AtomicU64,
}

/// A bound control socket, before the engine starts: binding first means a
/// socket that cannot be made stops the start before the journal is touched.
pub struct Bound {
    path: PathBuf,
    /// Taken by `Server::start`; a `Bound` dropped with it still here (the start
    /// failed) removes its socket.
    listener: Option<UnixListener>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Bound {
    /// Bind `path`. A socket left by an engine that is gone is replaced; one an
    /// engine still answers on is an error, and so is anything at `path` that is
    /// not a socket (it is never removed).
    pub fn bind(path: &Path) -> Result<Bound> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                bail!(
                    "control socket {}: something that is not a socket is there; not removing it (set [control] socket elsewhere)",
                    path.display()
                );
            }
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "control socket {}: another engine is running and answers on it (stop it, or set [control] socket elsewhere)",
                    path.display()
                );
            }
            std::fs::remove_file(path).with_context(|| {
                format!("control socket {}: removing a stale socket", path.display())
            })?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("control socket {}: binding", path.display()))?;
        // SO_PEERCRED decides who may command; the mode keeps others from even
        // connecting.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("control socket {}: chmod 0600", path.display()))?;
        listener
            .set_nonblocking(true)
            .context("control socket: non-blocking")?;
        Ok(Bound {
            path: path.to_path_buf(),
            listener: Some(listener),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Connections read at once; past that a client is turned away at once.
const READERS_MAX: usize = 32;
/// The whole time a client has to send its request line.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// The running control server, and the socket it removes when stopped.
///
/// Each connection is read on its own short-lived thread with a deadline for the
/// whole request (a slow or silent client holds only itself), and the requests
/// are carried out one at a time by the control thread, in the order they
/// arrived whole.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    pub stats: Arc<ControlStats>,
}

/// A request read whole, for the control thread: who sent it, and where to answer.
struct Arrived {
    stream: UnixStream,
    uid: u32,
    /// The line, or why it could not be read.
    line: Result<String, String>,
}

impl Server {
    pub fn start(bound: Bound, served: Served) -> Result<Server> {
        let mut bound = bound;
        let listener = bound.listener.take().expect("a bound socket");
        let path = bound.path.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ControlStats::default());
        let owner = current_uid();
        let started = served.cfg.clone();
        let mut state = State {
            served,
            stats: Arc::clone(&stats),
            owner,
            started,
        };
        let (tx, rx) = crossbeam::channel::unbounded::<Arrived>();
        let readers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop2 = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("fillcast-control".into())
            .spawn(move || {
                while !stop2.load(Relaxed) {
                    if state.served.hangup.swap(false, Relaxed) {
                        let reply = state.reload(None);
                        log_reply("reload on SIGHUP", None, "reload", &reply);
                    }
                    loop {
                        match listener.accept() {
                            Ok((stream, _)) => state.admit(stream, &tx, &readers),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "control socket: accept failed");
                                break;
                            }
                        }
                    }
                    match rx.recv_timeout(Duration::from_millis(10)) {
                        Ok(a) => state.answer(a),
                        Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .context("spawning the control thread")?;
        Ok(Server { path, stop, stats })
    }
}

impl Drop for Server {
    /// Stops taking requests and removes the socket; does not wait for a client.
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One log line per command: what was asked, by whom, and the answer.
fn log_reply(what: &str, uid: Option<u32>, request: &str, reply: &Value) {
    let uid = uid.map_or_else(|| "signal".to_string(), |u| u.to_string());
    if reply["ok"] == json!(true) {
        tracing::info!(
            uid = %uid,
            request,
            "{what}: {}",
            reply["message"].as_str().unwrap_or("")
        );
    } else {
        tracing::warn!(
            uid = %uid,
            request,
            "{what} REFUSED: {}",
            reply["error"].as_str().unwrap_or("")
        );
    }
}

struct State {
    served: Served,
    stats: Arc<ControlStats>,
    owner: u32,
    /// The config the engine started with: operational settings stay as they were
    /// until the next start, however many reloads come.
    started: Config,
}

/// The operational parts of `new` (not in the decision model, so not applied by a
/// reload) that differ from `started`'s.
fn operational_changes(started: &Config, new: &Config) -> Vec<&'static str> {
    let engine = |c: &Config| {
        let e = &c.engine;
        (
            e.feed_ring_slots,
            e.exec_ring_slots,
            e.egress_ring_slots,
            e.journal_ring_slots,
            e.core_cpu,
            e.io_cpu,
            format!("{:?}", e.wait),
        )
    };
    let venues = |c: &Config| {
        c.venues
            .iter()
            .map(|v| (v.kind.clone(), v.settings.clone()))
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    if engine(started) != engine(new) {
        out.push("[engine] rings, CPUs or waiting");
    }
    if venues(started) != venues(new) {
        out.push("[[venues]] kinds or settings");
    }
    if started.sources != new.sources {
        out.push("[[sources]]");
    }
    if started.journal != new.journal {
        out.push("[journal]");
    }
    if started.control != new.control {
        out.push("[control]");
    }
    if started.metrics != new.metrics {
        out.push("[metrics]");
    }
    out
}

fn error(msg: impl Into<String>) -> Value {
    json!({"ok": false, "error": msg.into()})
}

fn ok(msg: impl Into<String>) -> Value {
    json!({"ok": true, "message": msg.into()})
}

impl State {
    /// A new connection: its uid checked now, its request read on a thread of
    /// its own with a deadline, then queued for `answer`.
    fn admit(
        &mut self,
        stream: UnixStream,
        tx: &crossbeam::channel::Sender<Arrived>,
        readers: &Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let refused = match peer_uid(&stream) {
            Err(e) => {
                tracing::warn!(error = %e, "control socket: REFUSED a client whose uid cannot be read");
                Some((u32::MAX, error(format!("your uid cannot be read ({e})"))))
            }
            Ok(uid) if uid != self.owner && uid != 0 => {
                tracing::warn!(
                    uid,
                    "control socket: REFUSED uid {uid}: only uid {} (the engine's user) and root may command this engine",
                    self.owner
                );
                Some((
                    uid,
                    error(format!(
                        "permission denied: uid {uid} may not command this engine (only uid {} and root may)",
                        self.owner
                    )),
                ))
            }
            Ok(_) => None,
        };
        if refused.is_some() {
            self.stats.refused_peers.fetch_add(1, Relaxed);
        }
        if readers.load(Relaxed) >= READERS_MAX {
            tracing::warn!("control socket: {READERS_MAX} connections are being read already; one more turned away");
            let mut stream = stream;
            let _ = writeln!(
                stream,
                "{}",
                error("the engine is busy reading other requests; try again")
            );
            return;
        }
        readers.fetch_add(1, Relaxed);
        let (tx, readers) = (tx.clone(), Arc::clone(readers));
        let spawned = std::thread::Builder::new()
            .name("fillcast-control-read".into())
            .spawn(move || {
                let mut stream = stream;
                let read = read_request(&mut stream, REQUEST_DEADLINE);
                match (refused, read) {
                    (Some((_, reply)), _) => finish(stream, &reply),
                    // Connected and closed without a word: a probe (a second
                    // engine looking for a live one), not a request.
                    (None, Ok(None)) => {}
                    (None, Ok(Some(line))) => {
                        let uid = peer_uid(&stream).unwrap_or(u32::MAX);
                        let _ = tx.send(Arrived {
                            stream,
                            uid,
                            line: Ok(line),
                        });
                    }
                    (None, Err(e)) => {
                        let uid = peer_uid(&stream).unwrap_or(u32::MAX);
                        let _ = tx.send(Arrived {
                            stream,
                            uid,
                            line: Err(e),
                        });
                    }
                }
                readers.fetch_sub(1, Relaxed);
            });
        if spawned.is_err() {
            tracing::warn!("control socket: could not start a thread to read a request");
        }
    }

    /// Carries out one request read whole, and answers it.
    fn answer(&mut self, a: Arrived) {
        let Arrived { stream, uid, line } = a;
        let reply = match line {
            Err(e) => {
                // It could not be read: the reader says why.
                self.stats.bad_requests.fetch_add(1, Relaxed);
                tracing::warn!(uid, "command from uid {uid} REFUSED: {e}");
                error(e)
            }
            Ok(line) => {
                let reply = self.handle(&line, uid);
                if reply["ok"] != json!(true) {
                    self.stats.bad_requests.fetch_add(1, Relaxed);
                }
                if !line.trim().eq_ignore_ascii_case("status") {
                    log_reply(
                        &format!("command from uid {uid}"),
                        Some(uid),
                        control::shown_at_most(line.trim(), 200).as_str(),
                        &reply,
                    );
                }
                reply
            }
        };
        finish(stream, &reply);
    }

    fn handle(&mut self, line: &str, uid: u32) -> Value {
        let u = Arc::clone(&self.served.universe);
        let cmd = match control::parse(line, &u) {
            Err(e) => return error(e),
            Ok(Request::Status) => return json!({"ok": true, "status": self.status()}),
            Ok(Request::Reload) => return self.reload(Some(uid)),
            Ok(Request::Shutdown) => {
                self.served.shutdown.store(true, Relaxed);
                return ok("shutting down: no new input is taken; the engine stops once every order in flight is answered");
            }
            Ok(Request::Command(cmd)) => cmd,
        };
        if self.served.progress.draining.load(Relaxed) {
            return error("the engine is shutting down and takes no more commands");
        }
        let ev = FeedEvent::Command {
            cmd,
            ts: fillcast_engine::clock::now(),
            by: uid,
        };
        if self.served.tx.send(ev).is_err() {
            return error("the engine has stopped taking input");
        }
        self.stats.commands.fetch_add(1, Relaxed);
        ok(format!(
            "{} — taken as an input event, journaled with uid {uid}",
            control::describe(&cmd, &u)
        ))
    }

    /// Load the config again exactly as `check-config` does and hand the new
    /// revision to the core. `by`: the uid of the `ctl` client (`None`: SIGHUP).
    fn reload(&mut self, by: Option<u32>) -> Value {
        self.stats.reloads.fetch_add(1, Relaxed);
        let invalid = |s: &Self, msg: String| {
            s.stats.reloads_invalid.fetch_add(1, Relaxed);
            error(msg)
        };
        let path = self.served.config_path.clone();
        let (cfg, u) = match crate::load_after(&path, &self.served.cfg) {
            Ok(x) => x,
            Err(e) => return invalid(self, format!("{e:#}\nnothing changed")),
        };
        let old = Arc::clone(&self.served.universe);
        // Worked out here, off the core thread: the core only takes what changed.
        // Preparing checks the shape too.
        let patch = match RevisionPatch::prepare(
            &old,
            Arc::clone(&u),
            &self.served.cfg.engine,
            &cfg.engine,
        ) {
            Ok(p) => p,
            Err(shape) => return invalid(
                self,
                format!(
                    "{}: {shape}. A running engine takes new values and added or removed symbols, leaders, followers and subscriptions; a change to the venues, to a symbol's lot size, tick size or venue, or to the engine's table sizes (dedup_window, orders_per_subscription, max_working_orders), is not built yet, live or at a restart on this journal: it needs a new journal directory. Nothing changed",
                    path.display()
                ),
            ),
        };
        let later = operational_changes(&self.started, &cfg);
        let later = if later.is_empty() {
            String::new()
        } else {
            format!(
                " ({} differ from what the engine started with: those take effect at the next start)",
                later.join(", ")
            )
        };
        if u.revision == old.revision {
            return ok(format!(
                "revision {:016x} unchanged: the decision model is the same{later}",
                u.revision
            ));
        }
        let diff = config::model_diff(&self.served.cfg, &cfg);
        let model_toml = match cfg.model_toml() {
            Ok(t) => t,
            Err(e) => return invalid(self, format!("{}: {e}; nothing changed", path.display())),
        };
        if self.served.progress.draining.load(Relaxed) {
            return error("the engine is shutting down and takes no reload");
        }
        let new = Box::new(NewRevision::new(patch, model_toml, Arc::clone(&u)));
        if self.served.progress.reloads.hand_over(new).is_err() {
            return error(
                "too many reloads are still on their way to the core; try again in a moment",
            );
        }
        // Who asked goes in the journal just before the revision (its config
        // records carry no sender); a SIGHUP has no sender to name.
        let who = FeedEvent::Command {
            cmd: fillcast_engine::event::Command::Reload,
            ts: fillcast_engine::clock::now(),
            by: by.unwrap_or(fillcast_engine::event::NO_SENDER),
        };
        let ev = FeedEvent::Revision {
            revision: u.revision,
            ts: fillcast_engine::clock::now(),
        };
        if self.served.tx.send(who).is_err() || self.served.tx.send(ev).is_err() {
            return error("the engine has stopped taking input");
        }
        self.served.cfg = cfg;
        self.served.universe = Arc::clone(&u);
        ok(format!(
            "revision {:016x} → {:016x}{}, applied between two events and journaled: {}{later}",
            old.revision,
            u.revision,
            by.map_or_else(|| " (SIGHUP)".to_string(), |uid| format!(" by uid {uid}")),
            diff_summary(&diff)
        ))
    }

    fn status(&self) -> Value {
        status_json(&self.served, &self.stats)
    }
}

/// The engine's state as `ctl status --json` shows it (and the metrics read it).
pub fn status_json(s: &Served, c: &ControlStats) -> Value {
    let uptime_s = s.started.elapsed().as_secs_f64();
    let p = &s.progress;
    let st = p.stats.snapshot();
    let venues: Vec<Value> = s
        .universe
        .venues
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"name": v.name, "up": p.venue_up(i)}))
        .collect();
    let finished = p.sources_finished.load(Relaxed);
    let sources: Vec<Value> = s
        .sources
        .iter()
        .map(|n| json!({"name": n, "finished": finished}))
        .collect();
    let by_status: serde_json::Map<String, Value> =
        <DecisionStatus as fillcast_engine::codes::Coded>::ALL
            .iter()
            .map(|&d| (d.as_str().to_string(), json!(st.status_count(d))))
            .collect();
    let by_reason: serde_json::Map<String, Value> = <Reason as fillcast_engine::codes::Coded>::ALL
        .iter()
        .filter(|&&r| r != Reason::None && st.reason_count(r) > 0)
        .map(|&r| (r.as_str().to_string(), json!(st.reason_count(r))))
        .collect();
    json!({
        "revision": format!("{:016x}", p.revision.load(Relaxed)),
        "uptime_seconds": (uptime_s * 1000.0).round() / 1000.0,
        "state": if p.draining.load(Relaxed) { "draining" } else if p.halted.load(Relaxed) { "halted" } else { "running" },
        "until_stopped": s.until_stopped,
        "sources": sources,
        "venues": venues,
        "counts": {
            "leader_fills": st.leader_fills,
            "duplicate_events": st.duplicate_events,
            "invalid_events": st.invalid_events,
            "mark_prices": st.mark_prices,
            "fundings": st.fundings,
            "commands": st.commands,
            "decisions": st.decisions,
            "decisions_by_status": by_status,
            "decisions_by_reason": by_reason,
            "orders_sent": st.orders_sent,
            "exec_reports": st.exec_reports,
            "fills": st.fills,
            "rejects": st.rejects,
            "retries": st.retries,
            "stops": st.stops,
            "source_rejected": p.source_rejected.load(Relaxed),
            "source_duplicates": p.source_duplicates.load(Relaxed),
        },
        "live_orders": p.live_orders.load(Relaxed),
        "ingest_lag_seconds": p.ingest_lag_ns.load(Relaxed) as f64 / 1e9,
        "out_of_sync": {
            "pairs_waiting": p.resync_pending.load(Relaxed),
            "pairs_stuck_on_a_venue": p.resync_stuck.load(Relaxed),
            "given_up": st.gave_up,
        },
        "journal": {
            "seq": p.journal_seq.load(Relaxed),
            "bytes_this_run": p.journal_bytes.load(Relaxed),
        },
        "reloads": {
            "applied": p.reloads_applied.load(Relaxed),
            "refused_by_core": p.reloads_refused.load(Relaxed),
            "requested": c.reloads.load(Relaxed),
            "invalid": c.reloads_invalid.load(Relaxed),
        },
        "control": {
            "commands": c.commands.load(Relaxed),
            "refused_peers": c.refused_peers.load(Relaxed),
            "bad_requests": c.bad_requests.load(Relaxed),
        },
    })
}

/// The request line, read within `deadline` in all; `Ok(None)` when the client
/// closed without sending a byte.
fn read_request(stream: &mut UnixStream, deadline: Duration) -> Result<Option<String>, String> {
    let until = std::time::Instant::now() + deadline;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.contains(&b'\n') {
            break;
        }
        if buf.len() > MAX_REQUEST {
            return Err(format!("request longer than {MAX_REQUEST} bytes"));
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no whole request line within {} s",
                deadline.as_secs()
            ));
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the request: {e}")),
        }
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let end = buf
        .iter()
        .position(|b| *b == b'\n')
        .map_or(buf.len(), |i| i + 1);
    if end > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    String::from_utf8(buf[..end].to_vec())
        .map(Some)
        .map_err(|_| "the request is not UTF-8 text".to_string())
}

/// Answer, and close without a reset: what the client sent past its line is
/// taken (without waiting) so that the answer is not lost.
fn finish(mut stream: UnixStream, reply: &Value) {
    let _ = writeln!(stream, "{reply}");
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_nonblocking(true);
    let _ = std::io::copy(&mut (&stream).take(1 << 20), &mut std::io::sink());
}

fn current_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// The uid of the process at the other end of `stream` (`SO_PEERCRED`: the
/// kernel's record of who connected, which the peer cannot forge).
fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is a connected Unix socket that `stream` keeps open for the
    // call; `cred` is a properly aligned, writable `ucred` and `len` holds its
    // exact size, which is what SO_PEERCRED writes (at most `len` bytes).
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(std::io::Error::other("SO_PEERCRED returned a short answer"));
    }
    Ok(cred.uid)
}

/// `fillcast ctl`: send `words` to the engine at `socket` and print its answer;
/// `Err` when the engine refused or could not be reached.
pub fn client(socket: &Path, words: &[String], json_out: bool) -> Result<()> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach an engine at {} (is `fillcast run` running with this config?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(stream, "{}", words.join(" "))?;
    stream.shutdown(std::net::Shutdown::Write)?;
    // The answer is one line; read just that, so that nothing after it (a reset
    // by a peer that did not read all of an over-long request) can hide it.
    let mut reply = String::new();
    match BufReader::new(stream.take(16 << 20)).read_line(&mut reply) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            bail!(
                "no answer from the engine within 30 s; it may still carry out the request: check `fillcast ctl status` (and the engine's log) before sending it again"
            )
        }
        Err(e) => return Err(e).context("reading the engine's answer"),
    }
    let v: Value = serde_json::from_str(reply.trim()).with_context(|| {
        format!(
            "the engine's answer is not JSON: {}",
            control::shown_at_most(&reply, 200)
        )
    })?;
    if json_out {
        println!("{v}");
    } else if let Some(s) = v.get("status") {
        print!("{}", status_text(s));
    } else if let Some(m) = v["message"].as_str() {
        println!("{m}");
    }
    if v["ok"] != json!(true) {
        bail!("{}", v["error"].as_str().unwrap_or("refused"));
    }
    Ok(())
}

/// `ctl status` for a person.
fn status_text(s: &Value) -> String {
    let mut out = String::new();
    let c = &s["counts"];
    let line = |out: &mut String, l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(
        &mut out,
        format!(
            "engine: {} · revision {} · up {:.1} s",
            s["state"].as_str().unwrap_or("?"),
            s["revision"].as_str().unwrap_or("?"),
            s["uptime_seconds"].as_f64().unwrap_or(0.0)
        ),
    );
    let names = |v: &Value, f: &dyn Fn(&Value) -> String| {
        v.as_array()
            .map(|a| a.iter().map(f).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    line(
        &mut out,
        format!(
            "sources: {}",
            names(&s["sources"], &|x| format!(
                "{} ({})",
                x["name"].as_str().unwrap_or("?"),
                if x["finished"] == json!(true) {
                    "finished"
                } else {
                    "running"
                }
            ))
        ),
    );
    line(
        &mut out,
        format!(
            "venues: {}",
            names(&s["venues"], &|x| format!(
                "{} ({})",
                x["name"].as_str().unwrap_or("?"),
                if x["up"] == json!(true) { "up" } else { "DOWN" }
            ))
        ),
    );
    line(
        &mut out,
        format!(
            "leader fills {} · decisions {} · orders sent {} · fills {} · rejects {} · commands {}",
            c["leader_fills"],
            c["decisions"],
            c["orders_sent"],
            c["fills"],
            c["rejects"],
            c["commands"]
        ),
    );
    line(
        &mut out,
        format!(
            "live orders {} · ingest lag {:.6} s · out of sync: {} waiting, {} stuck on a venue, {} given up",
            s["live_orders"],
            s["ingest_lag_seconds"].as_f64().unwrap_or(0.0),
            s["out_of_sync"]["pairs_waiting"],
            s["out_of_sync"]["pairs_stuck_on_a_venue"],
            s["out_of_sync"]["given_up"]
        ),
    );
    line(
        &mut out,
        format!(
            "journal: seq {} · {} bytes this run · reloads applied {}, invalid {}",
            s["journal"]["seq"],
            s["journal"]["bytes_this_run"],
            s["reloads"]["applied"],
            s["reloads"]["invalid"]
        ),
    );
    out
}

/// A reload's diff for its answer and the log: every line when there are few,
/// else the counts of items added and removed and the first lines (the journal
/// and `audit_log` keep every line).
fn diff_summary(diff: &[String]) -> String {
    const SHOWN: usize = 20;
    if diff.is_empty() {
        return "no value changed".to_string();
    }
    if diff.len() <= SHOWN {
        return diff.join("; ");
    }
    let count = |what: &str| diff.iter().filter(|l| l.ends_with(what)).count();
    format!(
        "{} changes ({} added, {} removed, {} added back, {} values); the first {SHOWN}: {}; … (the sidecar's audit_log has them all)",
        diff.len(),
        count(": added"),
        count(": removed"),
        count(": added back"),
        diff.len() - count(": added") - count(": removed") - count(": added back"),
        diff[..SHOWN].join("; ")
    )
}
