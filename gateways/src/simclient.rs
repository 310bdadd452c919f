//! `SimClient`: the engine's gateway to a `fillcast sim-venue` server, over `simwire`.
//!
//! Non-blocking on the pipeline's path: `submit` encodes a batch into the outgoing
//! buffer and writes what the socket takes; `poll` writes the rest, reads frames and
//! delivers reports (stamped with the `now` it is given); `can_accept` says no while
//! the outgoing buffer is above `OUT_BYTES_MAX` or `IN_FLIGHT_MAX` orders await their
//! end. Blocking only in the start-up calls (`connect`, `recover`, `query`,
//! `positions`, `stats`, `reconnect`), which have a timeout and are meant to run before
//! the pipeline does (or after it, for the summary); they connect again first when
//! the link is down, and a reply that does not come in time drops the connection.
//!
//! Fails closed, loudly, and heals (`Gateway::is_up`, `Gateway::down_reason`). The
//! link is down from the moment the connection fails (read or write error, end of
//! stream, bad frame) or stalls: when nothing has arrived for a `heartbeat` interval
//! the client sends a `Ping`, and when nothing at all (no frame of any kind) arrives
//! for `down_after` while it waits for something (a `Pong`, a report of an order in
//! flight, a query's answer) it drops the connection. The heartbeat's time is the
//! `now` given to `poll` and `submit`, never the clock. While down, `can_accept` says yes and
//! `submit` rejects every order at once with `RejectReason::VenueDown` (it never left;
//! counted in `rejected_locally`); orders in flight when the link went down stay in
//! flight, their outcome unknown. `poll` connects again on its own, with a
//! non-blocking connect that completes over later polls (so the I/O thread never
//! waits on a venue, near or far), after an exponential backoff (`reconnect_first`
//! doubling to `reconnect_max`; the first attempt after losing a working link is
//! at once), under the same session, so the server sends the reports it held for it.
//! Then it asks the venue (`Query`, at most `QUERY_IDS_MAX` ids a frame, a few frames
//! ahead) about every order still in flight and delivers the answers as
//! `Gateway::recover` promises: the fills with their trade ids and the ending report,
//! or `Rejected`/`UnknownOrder` for an order the venue never received (a venue
//! process that was replaced, an order still in the buffer when the link broke).
//! Only when every answer is in is the link up again. The client leaves out what it
//! knows it delivered: an answer's fills up to the last one seen for that order, a
//! fill that repeats the last one seen, and every later report of an order an answer
//! settled (the venue's history knows an order's fate before its reports are due).
//! Repeats it cannot tell remain possible; the engine de-duplicates fills by trade id.
//!
//! `Gateway::recover` asks the venue about orders a previous engine process sent and
//! never saw answered, the same way, blocking.
//!
//! Bounded: the read buffer holds one largest frame, the in-flight table
//! `IN_FLIGHT_MAX` orders, the stash of reports read by blocking calls
//! `STASH_REPORTS_MAX` (then the blocking call fails), the settle list the orders in
//! flight. Nothing is allocated per order on the steady path beyond the in-flight
//! entry.

use crate::sim::{QueryAnswer, SymbolTerms};
use crate::simwire::{
    decode_server, encode_orders, encode_query, encode_symbols, ClientMsg, EncodeError,
    FrameReader, FrameWriter, ReadState, ServerMsg, VenuePosition, VenueStats,
    ORDERS_PER_FRAME_MAX, QUERY_IDS_MAX, SYMBOLS_PER_FRAME_MAX,
};
use fillcast_engine::clock;
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, RejectReason};
use fillcast_engine::order::IdHash;
use fillcast_engine::port::{AskedOrder, Gateway, VenueBooks, VenueError};
use fillcast_engine::units::{Lots, Nanos};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Unsent bytes above which `can_accept` says no (about 20,000 orders).
pub const OUT_BYTES_MAX: usize = 1 << 20;

/// Orders awaiting their end above which `can_accept` says no.
pub const IN_FLIGHT_MAX: usize = 1 << 20;

/// How long `recover` waits for the venue's answers, in all, by default.
pub const RECOVER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// Reports read while a blocking call waits for its reply, kept for the next `poll`.
/// When full, the blocking call stops reading and fails: call `poll` first.
pub const STASH_REPORTS_MAX: usize = 1 << 16;

/// Positions one `positions` call accepts in all (the reply comes in parts).
pub const POSITIONS_MAX: usize = 1 << 24;

/// After this long with nothing received, `poll` sends a `Ping`, by default.
pub const HEARTBEAT_DEFAULT: Duration = Duration::from_millis(250);

/// After this long with nothing received while waiting for something, the venue is
/// declared down, by default.
pub const DOWN_AFTER_DEFAULT: Duration = Duration::from_secs(1);

/// The wait before the second attempt to connect again, by default; it doubles per
/// failed attempt.
pub const RECONNECT_FIRST_DEFAULT: Duration = Duration::from_millis(50);

/// The longest wait between two attempts to connect again, by default.
pub const RECONNECT_MAX_DEFAULT: Duration = Duration::from_secs(2);

/// `Query` frames sent ahead of their answers while settling (each answer is at most
/// 1 MiB).
const SETTLE_FRAMES_AHEAD: usize = 4;

/// Read-buffer fills per `poll` before it returns, so one call stays short.
const READ_ROUNDS_MAX: usize = 16;

/// Longest single sleep of a blocking call.
const WAIT_STEP: Duration = Duration::from_millis(50);

const STREAM: Token = Token(0);

/// What the client counted.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SimClientStats {
    pub orders_sent: u64,
    /// Reports read from the venue and settle answers' reports (not `recover`'s).
    pub reports: u64,
    /// Orders rejected without being sent: the link was down (`VenueDown`), or over
    /// `IN_FLIGHT_MAX` (`Transient`).
    pub rejected_locally: u64,
    /// Connections lost (read or write error, end of stream, bad frame, stall, a
    /// blocking call's reply not in time).
    pub disconnects: u64,
    /// Connections made again after the first.
    pub reconnects: u64,
    /// Attempts to connect that failed (refused, timed out).
    pub connect_failures: u64,
    /// Connections dropped because nothing arrived for `down_after` (a subset of
    /// `disconnects`).
    pub stalls: u64,
    /// Orders in flight settled by a query answer after connecting again.
    pub settled: u64,
    /// Reports left out as repeats: a fill seen last for its order, or any report
    /// of an order an answer settled.
    pub repeats_dropped: u64,
    /// Malformed frames from the server (each also ends the connection).
    pub protocol_errors: u64,
    /// Replies that arrived when no blocking call waited for one.
    pub unsolicited: u64,
}

/// A gateway to a `fillcast sim-venue` server. See the module docs.
pub struct SimClient {
    name: String,
    /// Where the venue may be (what the address resolved to), tried in turn.
    addrs: Vec<SocketAddr>,
    session: u64,
    recover_timeout: Duration,
    heartbeat: Nanos,
    down_after: Nanos,
    reconnect_first: Nanos,
    reconnect_max: Nanos,
    poll: Poll,
    events: Events,
    /// `Some` while connecting or connected.
    stream: Option<TcpStream>,
    link: Link,
    /// The address of the connection or of the attempt under way.
    peer: SocketAddr,
    /// Attempts since the last connection: which address is next.
    attempts: usize,
    /// The wait after the next failed attempt.
    backoff: Nanos,
    /// While down, when to try again.
    retry_at: Nanos,
    /// When the attempt under way started.
    connect_started: Nanos,
    /// The latest `now` given to `poll` or `submit`: the time of events in blocking calls.
    now_last: Nanos,
    /// Whether a connection was ever made (the next ones count as reconnects).
    connected_once: bool,
    reader: FrameReader,
    writer: FrameWriter,
    /// Orders sent whose end (fill in full, cancel, reject, expiry) is not yet seen.
    in_flight: HashMap<u64, Working, IdHash>,
    stash: VecDeque<ExecReport>,
    settle: Settle,
    /// Orders an answer settled since the last connection: their later reports are
    /// repeats (at most the orders in flight when it connected).
    answered: HashSet<u64, IdHash>,
    beat: Beat,
    last_error: Option<String>,
    stats: SimClientStats,
    /// The engine's symbols (`Gateway::universe_changed`), told the venue after
    /// each `Hello` and whenever they change; empty: the venue keeps its own.
    symbols: Vec<SymbolTerms>,
}

/// Where the link to the venue is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Link {
    /// No connection; the next attempt at `retry_at`.
    Down,
    /// A non-blocking connect is under way.
    Connecting,
    /// Connected; waiting for the answers about the orders that were in flight.
    Settling,
    Up,
}

#[derive(Copy, Clone, Debug)]
struct Working {
    qty: Lots,
    filled: Lots,
    /// Trade id of the last fill seen (0: none).
    last_trade: u64,
}

/// The orders in flight when the connection came up, asked about in order.
#[derive(Default)]
struct Settle {
    ids: Vec<u64>,
    /// `ids[..sent]` were asked about.
    sent: usize,
    /// `ids[..answered]` were answered.
    answered: usize,
    /// `Query` frames sent and not answered.
    frames_owed: usize,
}

/// The heartbeat's clocks, all from the `now` given to `poll` and `submit`.
#[derive(Copy, Clone, Debug, Default)]
struct Beat {
    /// Frames arrived since the last poll looked (they count from that poll's `now`).
    seen: bool,
    /// A blocking call connected: start the clocks at the next poll.
    rebase: bool,
    /// When a frame last arrived (or the connection came up).
    last_rx: Nanos,
    /// The stall clock: since when the client waits with nothing arrived.
    quiet_since: Nanos,
    last_ping: Nanos,
    /// Nonce of the last `Ping`.
    nonce: u64,
    /// The last `Ping` is unanswered.
    ping_owed: bool,
}

/// Where reports read go: to `poll`'s caller, or to the stash for the next `poll`.
enum Sink<'a> {
    Out {
        now: Nanos,
        out: &'a mut dyn FnMut(ExecReport),
        delivered: usize,
    },
    Stash,
}

impl SimClient {
    /// Connects to the venue at `addr` (retrying until `timeout`) under a fresh
    /// random session, so reports the server held for an earlier connection are not
    /// resent (a restarted engine learns about its old orders from `recover`). `name`
    /// is the venue's name in config, what `Gateway::name` gives.
    pub fn connect(
        name: impl Into<String>,
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<SimClient> {
        SimClient::connect_session(name, addr, fresh_session(), timeout)
    }

    /// `connect` with a chosen session: a client that says the session of an
    /// earlier connection first gets the reports the server held for it, and
    /// replaces that session's live connection if it has one.
    pub fn connect_session(
        name: impl Into<String>,
        addr: impl ToSocketAddrs,
        session: u64,
        timeout: Duration,
    ) -> io::Result<SimClient> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let Some(&peer) = addrs.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the venue address resolves to nothing",
            ));
        };
        let reconnect_first = nanos(RECONNECT_FIRST_DEFAULT);
        let mut client = SimClient {
            name: name.into(),
            addrs,
            session,
            recover_timeout: RECOVER_TIMEOUT_DEFAULT,
            heartbeat: nanos(HEARTBEAT_DEFAULT),
            down_after: nanos(DOWN_AFTER_DEFAULT),
            reconnect_first,
            reconnect_max: nanos(RECONNECT_MAX_DEFAULT),
            poll: Poll::new()?,
            events: Events::with_capacity(16),
            stream: None,
            link: Link::Down,
            peer,
            attempts: 0,
            backoff: reconnect_first,
            retry_at: Nanos(0),
            connect_started: Nanos(0),
            now_last: Nanos(0),
            connected_once: false,
            reader: FrameReader::new(),
            writer: FrameWriter::default(),
            in_flight: HashMap::with_hasher(IdHash),
            stash: VecDeque::new(),
            settle: Settle::default(),
            answered: HashSet::with_hasher(IdHash),
            beat: Beat::default(),
            last_error: None,
            stats: SimClientStats::default(),
            symbols: Vec::new(),
        };
        client.open(timeout)?;
        debug_assert_eq!(client.link, Link::Up);
        Ok(client)
    }

    /// How long `recover` waits for all its answers (default `RECOVER_TIMEOUT_DEFAULT`).
    pub fn with_recover_timeout(mut self, timeout: Duration) -> SimClient {
        self.recover_timeout = timeout;
        self
    }

    /// Send a `Ping` after `interval` with nothing received, and declare the venue
    /// down after `down_after` with nothing received while waiting for something
    /// (defaults `HEARTBEAT_DEFAULT`, `DOWN_AFTER_DEFAULT`). The interval is at least
    /// 1 ms, and `down_after` at least twice the interval, so that a live venue
    /// always has a `Ping` to answer before the deadline.
    pub fn with_heartbeat(mut self, interval: Duration, down_after: Duration) -> SimClient {
        let interval = interval.max(Duration::from_millis(1));
        self.heartbeat = nanos(interval);
        self.down_after = nanos(down_after.max(interval.saturating_mul(2)));
        self
    }

    /// Wait `first` before the second attempt to connect again, doubling per failed
    /// attempt up to `max` (defaults `RECONNECT_FIRST_DEFAULT`,
    /// `RECONNECT_MAX_DEFAULT`). `first` is at least 1 ms and `max` at least `first`.
    pub fn with_reconnect_backoff(mut self, first: Duration, max: Duration) -> SimClient {
        let first = first.max(Duration::from_millis(1));
        self.reconnect_first = nanos(first);
        self.reconnect_max = nanos(max.max(first));
        self.backoff = self.reconnect_first;
        self
    }

    /// Whether a connection is open (up, or settling the orders in flight).
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Settling | Link::Up)
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    /// What this client counted (see `stats` for the venue's counters).
    pub fn client_stats(&self) -> SimClientStats {
        self.stats
    }

    /// Why the connection was last lost or the last attempt failed, if ever.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The ids of orders sent whose end has not been seen, in no particular order.
    pub fn in_flight_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.in_flight.keys().copied()
    }

    /// Drops the current connection, if any, and connects again with the same
    /// session (retrying for up to `timeout`). Bytes not yet sent are discarded; the
    /// orders in flight are settled as after any reconnect (see the module docs).
    pub fn reconnect(&mut self, timeout: Duration) -> io::Result<()> {
        self.drop_stream();
        self.link = Link::Down;
        self.open(timeout)
    }

    /// Asks the venue what became of each order in `ids` (in frames of
    /// `QUERY_IDS_MAX`); one answer per id, in order. Blocks for up to `timeout`.
    /// Reports that arrive meanwhile are kept for the next `poll`.
    pub fn query(&mut self, ids: &[u64], timeout: Duration) -> io::Result<Vec<QueryAnswer>> {
        let deadline = Instant::now() + timeout;
        self.ensure_connected(deadline)?;
        let mut answers = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(QUERY_IDS_MAX) {
            self.send(|out| encode_query(chunk, out))?;
            let got = self.wait_reply(deadline, |msg| match msg {
                ServerMsg::QueryReply(a) => Ok(a),
                other => Err(other),
            })?;
            let matches = got.len() == chunk.len()
                && got.iter().zip(chunk).all(|(a, &id)| a.order_id() == id);
            if !matches {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the venue answered {} ids for a query of {}, or other ids",
                        got.len(),
                        chunk.len()
                    ),
                ));
            }
            answers.extend(got);
        }
        debug_assert_eq!(answers.len(), ids.len());
        Ok(answers)
    }

    /// The ids of every order the venue remembers whose own time is `since` or
    /// later, oldest first. Blocks for up to `timeout`.
    pub fn order_ids_since(&mut self, since: Nanos, timeout: Duration) -> io::Result<Vec<u64>> {
        let deadline = Instant::now() + timeout;
        self.ensure_connected(deadline)?;
        self.send(|out| ClientMsg::OrdersSince { since: since.0 }.encode(out))?;
        self.wait_parts(deadline, ORDER_IDS_MAX, "orders", |msg| match msg {
            ServerMsg::OrderIds { ids, last } => Ok((ids, last)),
            other => Err(other),
        })
    }

    /// The parts of a reply that comes in several frames, put together: at most
    /// `max` items (`what`, for the error), by `deadline`.
    fn wait_parts<T>(
        &mut self,
        deadline: Instant,
        max: usize,
        what: &str,
        mut part_of: impl FnMut(ServerMsg) -> Result<(Vec<T>, bool), ServerMsg>,
    ) -> io::Result<Vec<T>> {
        let mut all = Vec::new();
        loop {
            let (part, last) = self.wait_reply(deadline, &mut part_of)?;
            if all.len() + part.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the venue sent more than {max} {what}"),
                ));
            }
            all.extend(part);
            if last {
                return Ok(all);
            }
        }
    }

    /// Every non-zero venue position, sorted. Blocks for up to `timeout`.
    pub fn positions(&mut self, timeout: Duration) -> io::Result<Vec<VenuePosition>> {
        let deadline = Instant::now() + timeout;
        self.ensure_connected(deadline)?;
        self.send(|out| ClientMsg::Positions.encode(out))?;
        self.wait_parts(deadline, POSITIONS_MAX, "positions", |msg| match msg {
            ServerMsg::PositionsReply { positions, last } => Ok((positions, last)),
            other => Err(other),
        })
    }

    /// The venue's and its server's counters (orders received, duplicate client
    /// order ids, ...). Blocks for up to `timeout`.
    pub fn stats(&mut self, timeout: Duration) -> io::Result<VenueStats> {
        let deadline = Instant::now() + timeout;
        self.ensure_connected(deadline)?;
        self.send(|out| ClientMsg::Stats.encode(out))?;
        self.wait_reply(deadline, |msg| match msg {
            ServerMsg::Stats(s) => Ok(s),
            other => Err(other),
        })
    }

    /// For a blocking call: connects first (blocking, until `deadline`) when the link
    /// is down or a non-blocking attempt is under way.
    fn ensure_connected(&mut self, deadline: Instant) -> io::Result<()> {
        if self.is_connected() {
            return Ok(());
        }
        self.drop_stream();
        self.link = Link::Down;
        self.open(deadline.saturating_duration_since(Instant::now()))
    }

    /// Connects, blocking (retrying until `timeout`), and starts the session.
    fn open(&mut self, timeout: Duration) -> io::Result<()> {
        debug_assert!(self.stream.is_none() && self.link == Link::Down);
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline.
        let (std_stream, peer) = 'retry: loop {
            let mut failed = None;
            for &addr in &self.addrs {
                let left = deadline.saturating_duration_since(Instant::now());
                let attempt = std::net::TcpStream::connect_timeout(
                    &addr,
                    left.clamp(Duration::from_millis(1), Duration::from_secs(1)),
                );
                match attempt {
                    Ok(s) => break 'retry (s, addr),
                    Err(e) => failed = Some((addr, e)),
                }
            }
            if Instant::now() >= deadline {
                let (addr, e) = failed.unwrap_or((self.peer, io::ErrorKind::TimedOut.into()));
                self.stats.connect_failures += 1;
                self.last_error = Some(connect_error(addr, &e));
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        self.poll.registry().register(
            &mut stream,
            STREAM,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.stream = Some(stream);
        self.peer = peer;
        self.connected(None)
    }

    /// Starts a non-blocking connect to the next address.
    fn start_connect(&mut self, now: Nanos) {
        debug_assert!(self.stream.is_none() && self.link == Link::Down);
        let addr = self.addrs[self.attempts % self.addrs.len()];
        self.attempts = self.attempts.wrapping_add(1);
        self.peer = addr;
        self.connect_started = now;
        self.link = Link::Connecting;
        match TcpStream::connect(addr) {
            Ok(mut stream) => {
                let registered = self.poll.registry().register(
                    &mut stream,
                    STREAM,
                    Interest::READABLE | Interest::WRITABLE,
                );
                self.stream = Some(stream);
                if let Err(e) = registered {
                    self.down(format!("cannot watch the connection to {addr}: {e}"));
                }
            }
            Err(e) => self.down(connect_error(addr, &e)),
        }
    }

    /// Sees whether the connect under way completed, failed or timed out.
    fn finish_connect(&mut self, now: Nanos) {
        let Some(stream) = &self.stream else {
            self.link = Link::Down;
            return;
        };
        // As mio documents: the socket's error first, then whether it has a peer.
        let state = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            },
        };
        match state {
            Ok(true) => {
                let _ = stream.set_nodelay(true);
                let _ = self.connected(Some(now));
            }
            Ok(false) if now.0 >= self.connect_started.0.saturating_add(self.down_after.0) => {
                let why = format!(
                    "no answer from {} in {:.1} s (connect timed out)",
                    self.peer,
                    secs(self.down_after)
                );
                self.down(why);
            }
            Ok(false) => {}
            Err(e) => self.down(connect_error(self.peer, &e)),
        }
    }

    /// A connection is open: says `Hello` and asks about every order in flight; the
    /// link is up once every answer is in. `now` is `None` in blocking calls (the
    /// heartbeat's clocks start at the next poll).
    fn connected(&mut self, now: Option<Nanos>) -> io::Result<()> {
        debug_assert!(self.stream.is_some());
        if self.connected_once {
            self.stats.reconnects += 1;
        }
        self.connected_once = true;
        self.reader.clear();
        self.writer.clear();
        self.link = Link::Settling;
        let nonce = self.beat.nonce;
        self.beat = Beat {
            nonce,
            ..Beat::default()
        };
        match now {
            Some(now) => self.start_clocks(now),
            None => self.beat.rebase = true,
        }
        let session = self.session;
        let hello = ClientMsg::Hello { session }.encode(self.writer.buf());
        debug_assert!(hello.is_ok());
        // Before any order: the venue trades the engine's symbols.
        self.put_symbols();
        self.answered.clear();
        self.settle.ids.clear();
        self.settle.ids.extend(self.in_flight.keys());
        self.settle.sent = 0;
        self.settle.answered = 0;
        self.settle.frames_owed = 0;
        self.pump_settle();
        self.flush()?;
        if self.settle.ids.is_empty() {
            self.settled();
        }
        Ok(())
    }

    /// The engine's symbols, as `Symbols` frames, into the outgoing buffer.
    fn put_symbols(&mut self) {
        for (i, part) in self.symbols.chunks(SYMBOLS_PER_FRAME_MAX).enumerate() {
            // In parts of at most SYMBOLS_PER_FRAME_MAX, from a universe's at most
            // u16::MAX symbols: encoding cannot fail.
            let first = (i * SYMBOLS_PER_FRAME_MAX) as u16;
            let encoded = encode_symbols(first, part, self.writer.buf());
            debug_assert!(encoded.is_ok());
        }
    }

    /// Every answer is in: the link is up.
    fn settled(&mut self) {
        debug_assert_eq!(self.settle.answered, self.settle.ids.len());
        debug_assert_eq!(self.settle.frames_owed, 0);
        self.link = Link::Up;
        self.attempts = 0;
        self.backoff = self.reconnect_first;
        self.settle.ids.clear();
    }

    /// Sends the next `Query` frames of the settle list, a few ahead of the answers.
    fn pump_settle(&mut self) {
        let settle = &mut self.settle;
        // Bounded by SETTLE_FRAMES_AHEAD.
        while settle.frames_owed < SETTLE_FRAMES_AHEAD && settle.sent < settle.ids.len() {
            let end = (settle.sent + QUERY_IDS_MAX).min(settle.ids.len());
            // At most QUERY_IDS_MAX ids, so encoding cannot fail.
            let encoded = encode_query(&settle.ids[settle.sent..end], self.writer.buf());
            debug_assert!(encoded.is_ok());
            settle.sent = end;
            settle.frames_owed += 1;
        }
    }

    /// The answer to the oldest settle `Query` frame: checks it answers those ids and
    /// delivers each answer's reports.
    fn settle_reply(&mut self, answers: Vec<QueryAnswer>, sink: &mut Sink) -> io::Result<()> {
        debug_assert!(self.settle.frames_owed > 0);
        let start = self.settle.answered;
        let end = (start + QUERY_IDS_MAX).min(self.settle.sent);
        let asked = &self.settle.ids[start..end];
        let matches = answers.len() == asked.len()
            && answers.iter().zip(asked).all(|(a, &id)| a.order_id() == id);
        if !matches {
            return Err(self.bad_frame(format!(
                "{} answers to a query of {} orders in flight, or other ids",
                answers.len(),
                asked.len()
            )));
        }
        self.settle.answered = end;
        self.settle.frames_owed -= 1;
        for answer in &answers {
            self.settle_answer(answer, sink);
        }
        if self.settle.answered == self.settle.ids.len() {
            self.settled();
        }
        Ok(())
    }

    /// Delivers what the venue did with one order in flight (nothing when a report
    /// settled it meanwhile), leaving out the fills up to the last one seen.
    fn settle_answer(&mut self, answer: &QueryAnswer, sink: &mut Sink) {
        let Some(working) = self.in_flight.get(&answer.order_id()).copied() else {
            return;
        };
        self.stats.settled += 1;
        // This session sent the order: its terms are known, only its fate is news.
        let mut reports = answer.reports();
        reports.retain(|r| r.kind != ExecKind::Restated);
        let seen = reports
            .iter()
            .position(|r| {
                r.kind == ExecKind::Fill && r.trade_id != 0 && r.trade_id == working.last_trade
            })
            .map_or(0, |at| at + 1);
        for r in reports.into_iter().skip(seen) {
            self.deliver(r, sink);
        }
        // An order the venue never received may still arrive (it was on its way):
        // only a known order's later reports are repeats.
        let ended = !self.in_flight.contains_key(&answer.order_id());
        if ended && matches!(answer, QueryAnswer::Known(_)) {
            self.answered.insert(answer.order_id());
        }
        debug_assert!(self.answered.len() <= self.settle.ids.len());
    }

    /// Appends a frame and writes what the socket takes.
    fn send(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    ) -> io::Result<()> {
        if !self.is_connected() {
            return Err(not_connected());
        }
        encode(self.writer.buf()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(stream) = &mut self.stream else {
            return Err(not_connected());
        };
        let result = self.writer.flush(stream);
        if let Err(e) = &result {
            self.down(format!("write to {}: {e}", self.peer));
        }
        result
    }

    fn drop_stream(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
    }

    /// The link is down: drops the connection or the attempt and schedules the next
    /// one (at once after losing a working link, else after the backoff, which
    /// doubles). Orders in flight stay in flight.
    fn down(&mut self, why: String) {
        let was = self.link;
        self.drop_stream();
        match was {
            Link::Settling | Link::Up => self.stats.disconnects += 1,
            Link::Down | Link::Connecting => self.stats.connect_failures += 1,
        }
        if was == Link::Up {
            self.retry_at = self.now_last;
            self.backoff = self.reconnect_first;
        } else {
            self.retry_at = Nanos(self.now_last.0.saturating_add(self.backoff.0));
            self.backoff = Nanos(self.backoff.0.saturating_mul(2).min(self.reconnect_max.0));
        }
        self.link = Link::Down;
        self.writer.clear();
        self.reader.clear();
        self.settle.ids.clear();
        self.settle.sent = 0;
        self.settle.answered = 0;
        self.settle.frames_owed = 0;
        self.beat.ping_owed = false;
        self.last_error = Some(why);
    }

    fn bad_frame(&mut self, what: String) -> io::Error {
        self.stats.protocol_errors += 1;
        let why = format!("bad frame from the venue at {}: {what}", self.peer);
        self.down(why.clone());
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// Reads what the socket has (one buffer's worth at most) and handles each frame:
    /// reports go to `sink`, settle answers and pongs are taken here, and any other
    /// reply is offered to `pick` (what it hands back is counted as unsolicited).
    /// `ReadState::Full` means more may be waiting; end of stream and errors put the
    /// link down and are returned as errors.
    fn read_some(
        &mut self,
        sink: &mut Sink,
        pick: &mut dyn FnMut(ServerMsg) -> Option<ServerMsg>,
    ) -> io::Result<ReadState> {
        let Some(stream) = &mut self.stream else {
            return Err(not_connected());
        };
        let state = match self.reader.fill(stream) {
            Ok(state) => state,
            Err(e) => {
                self.down(format!("read from {}: {e}", self.peer));
                return Err(e);
            }
        };
        // Bounded by the frames in the buffer.
        loop {
            let msg = match self.reader.next(decode_server) {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(e) => return Err(self.bad_frame(e.to_string())),
            };
            self.beat.seen = true;
            match msg {
                ServerMsg::Report(r)
                    if !self.answered.is_empty() && self.answered.contains(&r.order_id) =>
                {
                    self.stats.repeats_dropped += 1;
                }
                ServerMsg::Report(r) => self.deliver(r, sink),
                ServerMsg::Pong { nonce } => {
                    if nonce == self.beat.nonce {
                        self.beat.ping_owed = false;
                    }
                }
                ServerMsg::QueryReply(answers) if self.settle.frames_owed > 0 => {
                    self.settle_reply(answers, sink)?
                }
                other => {
                    if pick(other).is_some() {
                        self.stats.unsolicited += 1;
                    }
                }
            }
        }
        if state == ReadState::Eof {
            let why = if self.reader.buffered() > 0 {
                format!(
                    "the venue at {} closed the connection inside a frame",
                    self.peer
                )
            } else {
                format!("the venue at {} closed the connection", self.peer)
            };
            self.down(why.clone());
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
        }
        Ok(state)
    }

    /// Tracks a report and hands it to `sink`, unless it repeats a fill.
    fn deliver(&mut self, mut r: ExecReport, sink: &mut Sink) {
        if !self.track(&r) {
            self.stats.repeats_dropped += 1;
            return;
        }
        self.stats.reports += 1;
        match sink {
            Sink::Out {
                now,
                out,
                delivered,
            } => {
                r.recv_ts = *now;
                out(r);
                *delivered += 1;
            }
            Sink::Stash => self.stash.push_back(r),
        }
    }

    /// Waits for the first server message that `pick` takes; reports go to the stash,
    /// other replies are counted as unsolicited. No reply by `deadline` puts the link
    /// down: a reply that comes later must not be taken for another's.
    fn wait_reply<T>(
        &mut self,
        deadline: Instant,
        mut pick: impl FnMut(ServerMsg) -> Result<T, ServerMsg>,
    ) -> io::Result<T> {
        let mut found: Option<T> = None;
        let started = Instant::now();
        // Bounded by the deadline.
        loop {
            self.flush()?;
            if self.stash.len() >= STASH_REPORTS_MAX {
                return Err(io::Error::other(format!(
                    "{} reports are waiting: call poll before a blocking call",
                    self.stash.len()
                )));
            }
            let state = self.read_some(&mut Sink::Stash, &mut |msg| {
                if found.is_some() {
                    return Some(msg);
                }
                match pick(msg) {
                    Ok(t) => {
                        found = Some(t);
                        None
                    }
                    Err(other) => Some(other),
                }
            })?;
            if let Some(t) = found {
                return Ok(t);
            }
            if state == ReadState::Full {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!(
                    "no reply from the venue at {} in {:.1} s",
                    self.peer,
                    started.elapsed().as_secs_f64()
                );
                self.down(why.clone());
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            match self.poll.poll(&mut self.events, Some(left.min(WAIT_STEP))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the client waits for something from the venue: a `Pong`, a report of
    /// an order in flight, a settle answer.
    fn waiting(&self) -> bool {
        self.beat.ping_owed || !self.in_flight.is_empty() || self.settle.frames_owed > 0
    }

    /// Call before asking for something: the stall clock starts now unless the client
    /// already waits.
    fn note_waiting(&mut self, now: Nanos) {
        if !self.waiting() {
            self.beat.quiet_since = now;
        }
    }

    fn start_clocks(&mut self, now: Nanos) {
        self.beat.rebase = false;
        self.beat.last_rx = now;
        self.beat.quiet_since = now;
        self.beat.last_ping = now;
    }

    /// Takes `now` as the time; starts the clocks if a blocking call connected.
    fn note_now(&mut self, now: Nanos) {
        self.now_last = now;
        if self.beat.rebase {
            self.start_clocks(now);
        }
    }

    /// After reading: the clocks, the next settle frames, a `Ping` when due, and the
    /// stall check.
    fn heartbeat(&mut self, now: Nanos) {
        if self.beat.seen {
            self.beat.seen = false;
            self.beat.last_rx = now;
            self.beat.quiet_since = now;
        }
        if self.link == Link::Settling {
            self.pump_settle();
        }
        let quiet_from = self.beat.last_rx.max(self.beat.last_ping);
        if now.0 >= quiet_from.0.saturating_add(self.heartbeat.0) {
            self.note_waiting(now);
            self.beat.nonce = self.beat.nonce.wrapping_add(1);
            let ping = ClientMsg::Ping {
                nonce: self.beat.nonce,
            }
            .encode(self.writer.buf());
            debug_assert!(ping.is_ok());
            self.beat.ping_owed = true;
            self.beat.last_ping = now;
        }
        if self.waiting() && now.0 >= self.beat.quiet_since.0.saturating_add(self.down_after.0) {
            self.stats.stalls += 1;
            let why = format!(
                "no reply for {:.1} s (venue stalled?)",
                secs(self.down_after)
            );
            self.down(why);
            return;
        }
        // A failed write puts the link down; the next poll connects again.
        let _ = self.flush();
    }

    /// Updates the in-flight table for one report. False (and no update) for a fill
    /// whose trade id is the last one seen for its order: a repeat.
    fn track(&mut self, r: &ExecReport) -> bool {
        let done = match r.kind {
            ExecKind::Ack => false,
            ExecKind::Restated => {
                if let Some(w) = self.in_flight.get_mut(&r.order_id) {
                    w.qty = Lots(r.qty.0.saturating_abs());
                }
                false
            }
            ExecKind::Fill => match self.in_flight.get_mut(&r.order_id) {
                Some(w) if r.trade_id != 0 && r.trade_id == w.last_trade => return false,
                Some(w) => {
                    w.filled = Lots(w.filled.0.saturating_add(r.qty.0));
                    w.last_trade = r.trade_id;
                    w.filled >= w.qty
                }
                None => false,
            },
            ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired => true,
        };
        if done {
            self.in_flight.remove(&r.order_id);
        }
        true
    }

    fn reject_locally(
        &mut self,
        order: &FollowerOrder,
        reason: RejectReason,
        now: Nanos,
    ) -> ExecReport {
        self.stats.rejected_locally += 1;
        ExecReport {
            order_id: order.id,
            kind: ExecKind::Rejected,
            reject: reason,
            venue_ts: now,
            recv_ts: now,
            ..ExecReport::default()
        }
    }
}

impl SimClient {
    /// `Gateway::recover` by ids (`orders_since` knows only ids).
    fn recover_ids(
        &mut self,
        order_ids: &[u64],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        let answers =
            self.query(order_ids, self.recover_timeout)
                .map_err(|e| VenueError::Failed {
                    venue: self.name.clone(),
                    what: format!("asking about {} orders", order_ids.len()),
                    cause: e.to_string(),
                })?;
        debug_assert_eq!(answers.len(), order_ids.len());
        let now = clock::now();
        for answer in &answers {
            for mut r in answer.reports() {
                r.recv_ts = now;
                if self.track(&r) {
                    out(r);
                }
            }
        }
        Ok(())
    }
}

impl Gateway for SimClient {
    fn name(&self) -> &str {
        &self.name
    }

    /// The venue trades the engine's symbols by the indices its orders carry: a
    /// symbol a reload added, or a model a journal laid out otherwise than the
    /// config file the venue read. Told now when connected (ahead of any later
    /// order on the connection), and after every `Hello`.
    fn universe_changed(&mut self, universe: &std::sync::Arc<fillcast_engine::model::Universe>) {
        let terms: Vec<SymbolTerms> = universe.symbols.iter().map(SymbolTerms::of).collect();
        if terms == self.symbols {
            return;
        }
        self.symbols = terms;
        if self.is_connected() {
            self.put_symbols();
            // A failed write takes the link down; the next `Hello` tells it again.
            let _ = self.flush();
        }
    }

    /// Yes while down (`submit` rejects at once); else while the outgoing buffer and
    /// the in-flight table have room.
    fn can_accept(&self, orders: usize) -> bool {
        if self.link != Link::Up {
            return true;
        }
        self.writer.pending() <= OUT_BYTES_MAX
            && self
                .in_flight
                .len()
                .checked_add(orders)
                .is_some_and(|n| n <= IN_FLIGHT_MAX)
    }

    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        self.note_now(now);
        let fits = self
            .in_flight
            .len()
            .checked_add(orders.len())
            .is_some_and(|n| n <= IN_FLIGHT_MAX);
        let refused = match (self.link, fits) {
            (Link::Up, true) => None,
            (Link::Up, false) => Some(RejectReason::Transient),
            _ => Some(RejectReason::VenueDown),
        };
        if let Some(reason) = refused {
            for order in orders {
                let r = self.reject_locally(order, reason, now);
                out(r);
            }
            return;
        }
        self.note_waiting(now);
        for chunk in orders.chunks(ORDERS_PER_FRAME_MAX) {
            // Chunks are within the per-frame cap, so encoding cannot fail.
            let encoded = encode_orders(chunk, self.writer.buf());
            debug_assert!(encoded.is_ok());
            for order in chunk {
                self.in_flight.insert(
                    order.id,
                    Working {
                        qty: order.qty,
                        filled: Lots::ZERO,
                        last_trade: 0,
                    },
                );
            }
            self.stats.orders_sent += chunk.len() as u64;
        }
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
        // A failed write puts the link down; the orders stay in flight.
        let _ = self.flush();
    }

    /// Delivers what blocking calls kept, connects again when down and it is time,
    /// reads and delivers reports and settle answers, and runs the heartbeat.
    fn poll(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize {
        self.note_now(now);
        let mut delivered = 0;
        // Bounded by the stash size.
        while let Some(mut r) = self.stash.pop_front() {
            r.recv_ts = now;
            out(r);
            delivered += 1;
        }
        if self.link == Link::Down && now >= self.retry_at {
            self.start_connect(now);
        }
        if self.link == Link::Connecting {
            self.finish_connect(now);
        }
        if !self.is_connected() {
            return delivered;
        }
        let mut sink = Sink::Out {
            now,
            out,
            delivered: 0,
        };
        if self.flush().is_ok() {
            for _ in 0..READ_ROUNDS_MAX {
                match self.read_some(&mut sink, &mut Some) {
                    Ok(ReadState::Full) => {}
                    Ok(_) | Err(_) => break,
                }
            }
        }
        if let Sink::Out { delivered: d, .. } = sink {
            delivered += d;
        }
        if self.is_connected() {
            self.heartbeat(now);
        }
        delivered
    }

    /// Orders whose end is not yet seen, plus reports a blocking call read and the
    /// next `poll` delivers.
    fn in_flight(&self) -> usize {
        self.in_flight.len() + self.stash.len()
    }

    fn is_up(&self) -> bool {
        self.link == Link::Up
    }

    fn down_reason(&self) -> Option<String> {
        if self.link == Link::Up {
            return None;
        }
        Some(
            self.last_error
                .clone()
                .unwrap_or_else(|| format!("not connected to the venue at {}", self.peer)),
        )
    }

    /// Queries the venue in frames of `QUERY_IDS_MAX` ids, waiting at most the
    /// recover timeout in all, and hands `out` each answer's reports (fills with their
    /// trade ids, then the end; `UnknownOrder` for an id the venue never received),
    /// stamped with the time they arrived. Nothing reaches `out` unless every answer
    /// came: on an error (timeout, lost connection) the engine must not go on as if
    /// the orders were settled.
    fn recover(
        &mut self,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        let ids: Vec<u64> = orders.iter().map(|o| o.id).collect();
        self.recover_ids(&ids, out)
    }

    fn books(&mut self) -> Option<Result<VenueBooks, VenueError>> {
        let timeout = Duration::from_secs(5);
        let books = self.stats(timeout).and_then(|st| {
            Ok(VenueBooks {
                orders_received: Some(st.orders_received),
                duplicate_client_ids: Some(st.duplicate_client_ids),
                positions: self
                    .positions(timeout)?
                    .into_iter()
                    .map(|p| (p.follower, p.symbol, p.lots))
                    .collect(),
            })
        });
        Some(books.map_err(|e| VenueError::Failed {
            venue: self.name.clone(),
            what: "reading its books".into(),
            cause: e.to_string(),
        }))
    }

    fn orders_since(
        &mut self,
        since: Nanos,
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        let ids = self
            .order_ids_since(since, self.recover_timeout)
            .map_err(|e| VenueError::Failed {
                venue: self.name.clone(),
                what: "listing its orders".into(),
                cause: e.to_string(),
            })?;
        self.recover_ids(&ids, out)
    }
}

/// Most order ids `order_ids_since` takes from a venue.
pub const ORDER_IDS_MAX: usize = 1 << 24;

/// A session id no other connection uses: a random 64-bit secret (never 0), so
/// that no other client can name it and take the session's reports.
fn fresh_session() -> u64 {
    rand::random::<u64>().max(1)
}

/// A connect error in words, naming the address.
fn connect_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!("connection refused by {addr}"),
        io::ErrorKind::TimedOut => format!("no answer from {addr} (connect timed out)"),
        _ => format!("cannot connect to {addr}: {e}"),
    }
}

fn nanos(d: Duration) -> Nanos {
    Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Seconds, for messages only.
fn secs(n: Nanos) -> f64 {
    n.0 as f64 / 1e9
}

fn not_connected() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "not connected to the sim venue",
    )
}
