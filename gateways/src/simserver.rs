//! The simulated venue as a server: one `SimVenue` behind a TCP listener, speaking
//! `simwire`, so that the venue (its books, its duplicate detection, its order
//! history) outlives the engine that trades on it. A crash test kills the engine,
//! restarts it, and asks this server what happened.
//!
//! One client at a time: a new connection replaces the current one (a restarted
//! engine must get in even if the old connection is half-open). The venue's books
//! persist across connections. Orders are stamped with `clock::now()` when they are
//! read. A connection must start with `Hello { session }`.
//!
//! Reports of a session's orders that were not sent when its connection ended are
//! held (at most `HELD_REPORTS_MAX`, oldest dropped first) and sent when a client says
//! `Hello` with the same session; another session's `Hello` drops them (counted in
//! `reports_dropped`). Holding is best effort: reports already handed to the socket
//! when the client died are gone. `Query` is the authoritative way to learn what
//! happened to an order.
//!
//! Every buffer is bounded: the read buffer holds one largest frame; above
//! `OUT_BYTES_SOFT_MAX` unsent bytes the server stops reading the client's frames and
//! stops delivering reports (they wait in the venue's bounded queue) until the client
//! reads, so the write buffer stays below that plus one reply (a `Query` reply is at
//! most 1 MiB, the held reports at most 4 MiB, a `Positions` reply as large as the
//! venue's books). Never panics on what a client sends: a malformed
//! frame closes that connection and is counted.
//!
//! `run_standalone` (and `main_with_args`, the whole `fillcast-sim` binary, for
//! `fillcast sim-venue` too) is the process around it: config, port file, SIGTERM,
//! SIGINT or a stop file, and the venue's books and counters written at the end.

use crate::sim::SimVenue;
use crate::simwire::{
    decode_client, encode_positions, encode_query_reply, encode_report, ClientMsg, FrameReader,
    FrameWriter, ReadState, ServerMsg, VenuePosition, VenueStats, POSITIONS_PER_FRAME_MAX,
};
use fillcast_engine::clock;
use fillcast_engine::config;
use fillcast_engine::event::ExecReport;
use fillcast_engine::model::{Universe, VenueIdx};
use fillcast_engine::port::Gateway;
use fillcast_engine::units::Nanos;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Reports held for a disconnected session (about 4 MiB on the wire when sent).
pub const HELD_REPORTS_MAX: usize = 1 << 16;

/// Unsent bytes above which the server stops reading frames and delivering reports.
pub const OUT_BYTES_SOFT_MAX: usize = 4 << 20;

/// Longest sleep of the event loop: how soon it sees `stop`.
const WAIT_MAX: Duration = Duration::from_millis(10);

/// Read-buffer fills per loop iteration before other work gets a turn.
const READ_ROUNDS_MAX: usize = 16;

const LISTENER: Token = Token(0);

/// What `serve` hands back when it stops: the counters and the venue's books.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    pub venue: VenueStats,
    /// Every non-zero venue position, sorted.
    pub positions: Vec<VenuePosition>,
}

/// Serves `venue` on `listener` until `stop` is set (seen within 10 ms). Returns an
/// error only when the event loop itself fails; client errors close that client's
/// connection and the server goes on with the next.
pub fn serve(
    listener: std::net::TcpListener,
    venue: SimVenue,
    stop: Arc<AtomicBool>,
) -> io::Result<ServeStats> {
    let mut server = SimServer::new(listener, venue)?;
    server.run(&stop)?;
    Ok(server.serve_stats())
}

/// The server's state; `serve` is `SimServer::new(..)?.run(..)`. Use this type to read
/// the venue's books and counters after the loop ends.
pub struct SimServer {
    poll: Poll,
    listener: TcpListener,
    addr: SocketAddr,
    venue: SimVenue,
    conn: Option<Conn>,
    token_last: usize,
    held: VecDeque<ExecReport>,
    /// The session whose reports `held` has.
    held_session: Option<u64>,
    counters: Counters,
    last_close: Option<String>,
}

#[derive(Copy, Clone, Debug, Default)]
struct Counters {
    connections: u64,
    protocol_errors: u64,
    reports_sent: u64,
    reports_dropped: u64,
}

struct Conn {
    stream: TcpStream,
    token: Token,
    /// Set by `Hello`; nothing else is accepted before it.
    session: Option<u64>,
    reader: FrameReader,
    writer: FrameWriter,
    /// The reader stopped with bytes left in the socket.
    more: bool,
}

/// Why a connection ends.
enum Close {
    Eof,
    Io(io::Error),
    Protocol(String),
}

impl SimServer {
    pub fn new(listener: std::net::TcpListener, venue: SimVenue) -> io::Result<SimServer> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(SimServer {
            poll,
            listener,
            addr,
            venue,
            conn: None,
            token_last: 0,
            held: VecDeque::new(),
            held_session: None,
            counters: Counters::default(),
            last_close: None,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn venue(&self) -> &SimVenue {
        &self.venue
    }

    /// The venue's and the server's counters.
    pub fn stats(&self) -> VenueStats {
        let v = self.venue.stats();
        VenueStats {
            orders_received: v.orders,
            duplicate_client_ids: v.duplicate_ids,
            acks: v.acks,
            fills: v.fills,
            canceled: v.canceled,
            rejected: v.rejected,
            connections: self.counters.connections,
            protocol_errors: self.counters.protocol_errors,
            reports_sent: self.counters.reports_sent,
            reports_dropped: self.counters.reports_dropped,
        }
    }

    /// Why the last client connection ended ("replaced" when a newer one took over).
    pub fn last_close(&self) -> Option<&str> {
        self.last_close.as_deref()
    }

    /// Every non-zero venue position, sorted.
    pub fn positions(&self) -> Vec<VenuePosition> {
        sorted_positions(&self.venue)
    }

    pub fn serve_stats(&self) -> ServeStats {
        ServeStats {
            venue: self.stats(),
            positions: self.positions(),
        }
    }

    /// Runs the event loop until `stop` is set (checked at least every 10 ms).
    pub fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        while !stop.load(Ordering::Acquire) {
            let wait = self.wait_time();
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if events.iter().any(|e| e.token() == LISTENER) {
                self.accept();
            }
            self.service();
        }
        // Best effort: what the client has not taken yet is lost with the server.
        if let Some(conn) = &mut self.conn {
            let _ = conn.writer.flush(&mut conn.stream);
        }
        Ok(())
    }

    fn wait_time(&self) -> Duration {
        let Some(conn) = &self.conn else {
            return WAIT_MAX;
        };
        if conn.more {
            return Duration::ZERO;
        }
        if conn.session.is_none() || conn.writer.pending() > OUT_BYTES_SOFT_MAX {
            return WAIT_MAX;
        }
        match self.venue.next_due() {
            Some(due) => {
                let now = clock::now();
                Duration::from_nanos(due.0.saturating_sub(now.0)).min(WAIT_MAX)
            }
            None => WAIT_MAX,
        }
    }

    /// Takes every pending connection; the newest replaces the current one.
    fn accept(&mut self) {
        // Bounded: the backlog is finite, each pass takes one connection.
        loop {
            match self.listener.accept() {
                Ok((mut stream, _peer)) => {
                    // What the old client sent before it went is the venue's: handle
                    // it before replacing the connection.
                    self.service();
                    self.close(None);
                    let _ = stream.set_nodelay(true);
                    self.token_last = self.token_last.wrapping_add(1).max(1);
                    let token = Token(self.token_last);
                    let registered = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if registered.is_err() {
                        continue;
                    }
                    self.counters.connections += 1;
                    self.conn = Some(Conn {
                        stream,
                        token,
                        session: None,
                        reader: FrameReader::new(),
                        writer: FrameWriter::default(),
                        // The client may have written before we registered.
                        more: true,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A failed accept (the peer gave up, out of descriptors) is the
                // peer's problem; the listener keeps going.
                Err(_) => return,
            }
        }
    }

    /// Reads and handles the client's frames, delivers due reports, writes.
    fn service(&mut self) {
        let Some(conn) = &mut self.conn else {
            return;
        };
        let result = service_conn(
            conn,
            &mut self.venue,
            &mut self.held,
            &mut self.held_session,
            &mut self.counters,
        );
        if let Err(why) = result {
            self.close(Some(why));
        }
    }

    /// Ends the current connection and holds what its session was still owed.
    fn close(&mut self, why: Option<Close>) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        self.last_close = Some(match why {
            None => "replaced by a new connection".to_string(),
            Some(Close::Eof) => "closed by the client".to_string(),
            Some(Close::Io(e)) => format!("i/o error: {e}"),
            Some(Close::Protocol(m)) => {
                self.counters.protocol_errors += 1;
                format!("protocol error: {m}")
            }
        });
        let _ = self.poll.registry().deregister(&mut conn.stream);
        debug_assert!(conn.token != LISTENER);
        let Some(session) = conn.session else {
            return;
        };
        if self.held_session != Some(session) {
            self.counters.reports_dropped += self.held.len() as u64;
            self.held.clear();
            self.held_session = Some(session);
        }
        let (held, counters) = (&mut self.held, &mut self.counters);
        self.venue.poll(Nanos(u64::MAX), &mut |r| {
            if held.len() == HELD_REPORTS_MAX {
                held.pop_front();
                counters.reports_dropped += 1;
            }
            held.push_back(r);
        });
        debug_assert!(self.held.len() <= HELD_REPORTS_MAX);
    }
}

/// How often the standalone server looks for its stop file.
pub const STOP_FILE_POLL: Duration = Duration::from_millis(50);

/// The command line of the standalone server (`fillcast-sim`; the same flags serve
/// `fillcast sim-venue`).
pub const STANDALONE_USAGE: &str = "usage: fillcast-sim --config FILE [--venue NAME] \
     [--listen ADDR] [--port-file PATH] [--stop-file PATH] [--positions-file PATH]";

/// What `run_standalone` does, from the command line (see `STANDALONE_USAGE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandaloneOptions {
    /// The engine's config: its symbols and the venue's fill model.
    pub config: PathBuf,
    /// Which venue of the config; may be left out when it has one.
    pub venue: Option<String>,
    /// Where to listen (default `127.0.0.1:0`, any free port).
    pub listen: String,
    /// Receives the bound address (`127.0.0.1:43121`), written whole then renamed
    /// into place, so a reader never sees half of it.
    pub port_file: Option<PathBuf>,
    /// The server stops when this file appears (checked every `STOP_FILE_POLL`), as
    /// it does on SIGTERM and SIGINT. It must not exist at start.
    pub stop_file: Option<PathBuf>,
    /// Receives the venue's books when the server stops: one line per non-zero
    /// position, `follower_index symbol_index lots`, sorted (written then renamed).
    pub positions_file: Option<PathBuf>,
}

/// Why the standalone server did not run to a clean stop.
#[derive(Debug, Error)]
pub enum StandaloneError {
    /// Bad arguments or config, or nothing to listen on: it never served.
    #[error("{0}")]
    Setup(String),
    /// The event loop or writing its output failed.
    #[error("{0}")]
    Run(String),
}

impl StandaloneOptions {
    /// Parses the flags (without the program name). `Ok(None)` for `--help`.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
    ) -> Result<Option<StandaloneOptions>, StandaloneError> {
        let mut it = args.into_iter();
        let mut config = None;
        let mut opts = StandaloneOptions {
            config: PathBuf::new(),
            venue: None,
            listen: "127.0.0.1:0".to_string(),
            port_file: None,
            stop_file: None,
            positions_file: None,
        };
        // Bounded by the argument count.
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .ok_or_else(|| StandaloneError::Setup(format!("{flag} needs a value")))
            };
            match flag.as_str() {
                "--config" => config = Some(PathBuf::from(value()?)),
                "--venue" => opts.venue = Some(value()?),
                "--listen" => opts.listen = value()?,
                "--port-file" => opts.port_file = Some(PathBuf::from(value()?)),
                "--stop-file" => opts.stop_file = Some(PathBuf::from(value()?)),
                "--positions-file" => opts.positions_file = Some(PathBuf::from(value()?)),
                "-h" | "--help" => return Ok(None),
                other => {
                    return Err(StandaloneError::Setup(format!(
                        "unknown argument {other:?}"
                    )))
                }
            }
        }
        opts.config =
            config.ok_or_else(|| StandaloneError::Setup("--config is required".into()))?;
        Ok(Some(opts))
    }
}

/// The standalone server's whole life: parse `args` (without the program name), run,
/// report. Prints `orders_received=N duplicate_client_ids=M` on stdout when it stops
/// (other counters and the bound address on stderr). Exit code 0 on a clean stop, 1
/// when serving failed, 2 on bad arguments or config.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    let opts = match StandaloneOptions::parse(args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{STANDALONE_USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fillcast-sim: {e}\n{STANDALONE_USAGE}");
            return ExitCode::from(2);
        }
    };
    match run_standalone(&opts) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e @ StandaloneError::Setup(_)) => {
            eprintln!("fillcast-sim: {e}");
            ExitCode::from(2)
        }
        Err(e @ StandaloneError::Run(_)) => {
            eprintln!("fillcast-sim: {e}");
            ExitCode::from(1)
        }
    }
}

/// Loads the config, builds the venue, listens, writes the port file, serves until
/// SIGTERM, SIGINT or the stop file, then writes the positions file and prints the
/// counters (see `main_with_args`). Registers handlers for SIGTERM and SIGINT that
/// only set a flag: call it from a process that is the venue and nothing else.
pub fn run_standalone(opts: &StandaloneOptions) -> Result<ServeStats, StandaloneError> {
    let setup = StandaloneError::Setup;
    let venue = load_venue(opts)?;
    if let Some(path) = &opts.stop_file {
        if path.exists() {
            return Err(setup(format!(
                "stop file {} exists already: remove it first",
                path.display()
            )));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| setup(format!("cannot handle signal {signal}: {e}")))?;
    }
    let listener = std::net::TcpListener::bind(&opts.listen)
        .map_err(|e| setup(format!("cannot listen on {}: {e}", opts.listen)))?;
    let mut server = SimServer::new(listener, venue).map_err(|e| setup(format!("server: {e}")))?;
    let addr = server.local_addr();
    if let Some(path) = &opts.port_file {
        write_atomically(path, format!("{addr}\n").as_bytes()).map_err(setup)?;
    }
    eprintln!("fillcast-sim: venue listening on {addr}");

    let watcher = opts.stop_file.clone().map(|path| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Bounded: ends when the server stops, for whatever reason.
            while !stop.load(Ordering::Acquire) {
                if path.exists() {
                    stop.store(true, Ordering::Release);
                    break;
                }
                std::thread::sleep(STOP_FILE_POLL);
            }
        })
    });
    let served = server.run(&stop);
    stop.store(true, Ordering::Release);
    if let Some(watcher) = watcher {
        let _ = watcher.join();
    }

    let stats = server.serve_stats();
    let s = &stats.venue;
    println!(
        "orders_received={} duplicate_client_ids={}",
        s.orders_received, s.duplicate_client_ids
    );
    let _ = io::Write::flush(&mut io::stdout());
    eprintln!(
        "fillcast-sim: acks={} fills={} canceled={} rejected={} connections={} \
         protocol_errors={} reports_sent={} reports_dropped={}",
        s.acks,
        s.fills,
        s.canceled,
        s.rejected,
        s.connections,
        s.protocol_errors,
        s.reports_sent,
        s.reports_dropped
    );
    if let Some(path) = &opts.positions_file {
        let mut text = String::with_capacity(stats.positions.len() * 24);
        for p in &stats.positions {
            text.push_str(&format!("{} {} {}\n", p.follower.0, p.symbol.0, p.lots.0));
        }
        write_atomically(path, text.as_bytes()).map_err(StandaloneError::Run)?;
    }
    served.map_err(|e| StandaloneError::Run(format!("event loop: {e}")))?;
    Ok(stats)
}

fn service_conn(
    conn: &mut Conn,
    venue: &mut SimVenue,
    held: &mut VecDeque<ExecReport>,
    held_session: &mut Option<u64>,
    counters: &mut Counters,
) -> Result<(), Close> {
    conn.writer.flush(&mut conn.stream).map_err(Close::Io)?;
    conn.more = false;
    for _ in 0..READ_ROUNDS_MAX {
        if conn.writer.pending() > OUT_BYTES_SOFT_MAX {
            // Resumes when the client reads: a writable event wakes the loop.
            conn.more = false;
            break;
        }
        let state = conn.reader.fill(&mut conn.stream).map_err(Close::Io)?;
        // Bounded by the frames in the buffer.
        while conn.writer.pending() <= OUT_BYTES_SOFT_MAX {
            let msg = match conn.reader.next(decode_client) {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(e) => return Err(Close::Protocol(e.to_string())),
            };
            handle(conn, msg, venue, held, held_session, counters)?;
        }
        match state {
            ReadState::WouldBlock => break,
            ReadState::Eof => {
                if conn.reader.buffered() > 0 {
                    return Err(Close::Protocol("connection ended inside a frame".into()));
                }
                return Err(Close::Eof);
            }
            ReadState::Full => conn.more = true,
        }
    }
    if conn.session.is_some() && conn.writer.pending() <= OUT_BYTES_SOFT_MAX {
        let writer = conn.writer.buf();
        let sent = venue.poll(clock::now(), &mut |r| encode_report(&r, writer));
        counters.reports_sent += sent as u64;
    }
    conn.writer.flush(&mut conn.stream).map_err(Close::Io)
}

fn handle(
    conn: &mut Conn,
    msg: ClientMsg,
    venue: &mut SimVenue,
    held: &mut VecDeque<ExecReport>,
    held_session: &mut Option<u64>,
    counters: &mut Counters,
) -> Result<(), Close> {
    let hello_first = || Close::Protocol("the first frame must be Hello".into());
    match msg {
        ClientMsg::Hello { session } => {
            if conn.session.is_some() {
                return Err(Close::Protocol("a second Hello".into()));
            }
            conn.session = Some(session);
            if *held_session == Some(session) {
                let writer = conn.writer.buf();
                for r in held.iter() {
                    encode_report(r, writer);
                }
                counters.reports_sent += held.len() as u64;
            } else {
                counters.reports_dropped += held.len() as u64;
            }
            held.clear();
            *held_session = None;
            debug_assert!(held.is_empty());
        }
        ClientMsg::Orders(orders) => {
            if conn.session.is_none() {
                return Err(hello_first());
            }
            let writer = conn.writer.buf();
            let mut sent = 0u64;
            venue.submit(&orders, clock::now(), &mut |r| {
                encode_report(&r, writer);
                sent += 1;
            });
            counters.reports_sent += sent;
        }
        ClientMsg::Query(ids) => {
            if conn.session.is_none() {
                return Err(hello_first());
            }
            let answers: Vec<_> = ids.iter().map(|&id| venue.query(id)).collect();
            encode_query_reply(&answers, conn.writer.buf())
                .map_err(|e| Close::Protocol(format!("cannot answer a query: {e}")))?;
        }
        ClientMsg::Positions => {
            if conn.session.is_none() {
                return Err(hello_first());
            }
            let positions = sorted_positions(venue);
            let writer = conn.writer.buf();
            let mut chunks = positions.chunks(POSITIONS_PER_FRAME_MAX).peekable();
            if chunks.peek().is_none() {
                let _ = encode_positions(&[], true, writer);
            }
            while let Some(chunk) = chunks.next() {
                let last = chunks.peek().is_none();
                // Chunks are within the per-frame cap, so this cannot fail.
                let _ = encode_positions(chunk, last, writer);
            }
        }
        ClientMsg::Stats => {
            if conn.session.is_none() {
                return Err(hello_first());
            }
            let v = venue.stats();
            let stats = VenueStats {
                orders_received: v.orders,
                duplicate_client_ids: v.duplicate_ids,
                acks: v.acks,
                fills: v.fills,
                canceled: v.canceled,
                rejected: v.rejected,
                connections: counters.connections,
                protocol_errors: counters.protocol_errors,
                reports_sent: counters.reports_sent,
                reports_dropped: counters.reports_dropped,
            };
            let _ = ServerMsg::Stats(stats).encode(conn.writer.buf());
        }
    }
    debug_assert!(conn.session.is_some());
    Ok(())
}

fn sorted_positions(venue: &SimVenue) -> Vec<VenuePosition> {
    let mut positions: Vec<VenuePosition> = venue
        .positions()
        .map(|(follower, symbol, lots)| VenuePosition {
            follower,
            symbol,
            lots,
        })
        .collect();
    positions.sort_unstable();
    positions
}

fn load_venue(opts: &StandaloneOptions) -> Result<SimVenue, StandaloneError> {
    let setup = StandaloneError::Setup;
    let cfg = config::load(&opts.config).map_err(|e| setup(e.to_string()))?;
    let universe = Universe::from_config(&cfg)
        .map_err(|e| setup(format!("{}: {e}", opts.config.display())))?;
    let names = || {
        let names: Vec<&str> = universe.venues.iter().map(|v| v.name.as_str()).collect();
        names.join(", ")
    };
    let idx = match &opts.venue {
        Some(name) => universe.venue(name).ok_or_else(|| {
            setup(format!(
                "{}: no venue named {name:?} (venues: {})",
                opts.config.display(),
                names()
            ))
        })?,
        None if universe.venues.len() == 1 => VenueIdx(0),
        None => {
            return Err(setup(format!(
                "{}: venues {}: say which with --venue",
                opts.config.display(),
                names()
            )))
        }
    };
    SimVenue::for_venue(&universe, idx)
        .ok_or_else(|| setup(format!("venue index {} out of range", idx.0)))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
