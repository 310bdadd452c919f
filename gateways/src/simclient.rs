//! `SimClient`: the engine's gateway to a `fillcast-sim` server, over `simwire`.
//!
//! Non-blocking on the pipeline's path: `submit` encodes a batch into the outgoing
//! buffer and writes what the socket takes; `poll` writes the rest, reads frames and
//! delivers reports (stamped with the `now` it is given); `can_accept` says no while
//! the outgoing buffer is above `OUT_BYTES_MAX` or `IN_FLIGHT_MAX` orders await their
//! end. Blocking only in the start-up calls (`connect`, `recover`, `query`,
//! `positions`, `stats`, `reconnect`), which have a timeout and are meant to run before
//! the pipeline does.
//!
//! `Gateway::recover` asks the venue (`Query`) about orders a previous engine process
//! sent and never saw answered, and hands back what the venue did with each: its fills
//! and its end, or `Rejected`/`UnknownOrder` for an order the venue never received.
//! Reports pushed meanwhile for this connection's own orders wait for the next `poll`.
//!
//! A dropped connection is counted and seen in `is_connected`, never a panic; orders
//! submitted while disconnected are rejected at once as `Transient` (they never left,
//! so a retry with a fresh id is safe). Orders that were in flight when the
//! connection dropped stay in flight: their outcome is unknown until `reconnect`
//! (the server resends what it held for this session), `query` or `recover` settles it.

use crate::sim::QueryAnswer;
use crate::simwire::{
    decode_server, encode_orders, encode_query, ClientMsg, DecodeError, FrameReader, FrameWriter,
    ReadState, ServerMsg, VenuePosition, VenueStats, ORDERS_PER_FRAME_MAX, QUERY_IDS_MAX,
};
use fillcast_engine::clock;
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, RejectReason};
use fillcast_engine::ids::mix64;
use fillcast_engine::order::IdHash;
use fillcast_engine::port::Gateway;
use fillcast_engine::units::{Lots, Nanos};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Read-buffer fills per `poll` before it returns, so one call stays short.
const READ_ROUNDS_MAX: usize = 16;

/// Longest single sleep of a blocking call.
const WAIT_STEP: Duration = Duration::from_millis(50);

const STREAM: Token = Token(0);

/// What the client counted.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SimClientStats {
    pub orders_sent: u64,
    pub reports: u64,
    /// Orders rejected without being sent (disconnected, or over `IN_FLIGHT_MAX`).
    pub rejected_locally: u64,
    /// Connections lost (read or write error, end of stream, bad frame).
    pub disconnects: u64,
    /// Malformed frames from the server (each also ends the connection).
    pub protocol_errors: u64,
    /// Replies that arrived when no blocking call waited for one.
    pub unsolicited: u64,
}

/// A gateway to a `fillcast-sim` server. See the module docs.
pub struct SimClient {
    name: String,
    /// Where the venue may be (what the address resolved to), tried in order.
    addrs: Vec<SocketAddr>,
    session: u64,
    recover_timeout: Duration,
    poll: Poll,
    events: Events,
    /// `None` while disconnected.
    stream: Option<TcpStream>,
    reader: FrameReader,
    writer: FrameWriter,
    /// Orders sent whose end (fill in full, cancel, reject, expiry) is not yet seen.
    in_flight: HashMap<u64, Working, IdHash>,
    stash: VecDeque<ExecReport>,
    last_error: Option<String>,
    stats: SimClientStats,
}

#[derive(Copy, Clone, Debug)]
struct Working {
    qty: Lots,
    filled: Lots,
}

impl SimClient {
    /// Connects to the venue at `addr` (retrying until `timeout`) under a fresh
    /// session, so reports the server held for an earlier connection are not resent
    /// (a restarted engine learns about its old orders from `recover`). `name` is the
    /// venue's name in config, what `Gateway::name` gives.
    pub fn connect(
        name: impl Into<String>,
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<SimClient> {
        SimClient::connect_session(name, addr, fresh_session(), timeout)
    }

    /// `connect` with a chosen session: a client that says the session of an
    /// earlier connection first gets the reports the server held for it.
    pub fn connect_session(
        name: impl Into<String>,
        addr: impl ToSocketAddrs,
        session: u64,
        timeout: Duration,
    ) -> io::Result<SimClient> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the venue address resolves to nothing",
            ));
        }
        let mut client = SimClient {
            name: name.into(),
            addrs,
            session,
            recover_timeout: RECOVER_TIMEOUT_DEFAULT,
            poll: Poll::new()?,
            events: Events::with_capacity(16),
            stream: None,
            reader: FrameReader::new(),
            writer: FrameWriter::default(),
            in_flight: HashMap::with_hasher(IdHash),
            stash: VecDeque::new(),
            last_error: None,
            stats: SimClientStats::default(),
        };
        client.open(timeout)?;
        Ok(client)
    }

    /// How long `recover` waits for all its answers (default `RECOVER_TIMEOUT_DEFAULT`).
    pub fn with_recover_timeout(mut self, timeout: Duration) -> SimClient {
        self.recover_timeout = timeout;
        self
    }

    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    pub fn session(&self) -> u64 {
        self.session
    }

    /// What this client counted (see `stats` for the venue's counters).
    pub fn client_stats(&self) -> SimClientStats {
        self.stats
    }

    /// Why the connection was last lost, if it was.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The ids of orders sent whose end has not been seen, in no particular order.
    pub fn in_flight_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.in_flight.keys().copied()
    }

    /// Drops the current connection, if any, and connects again with the same
    /// session (retrying for up to `timeout`). Bytes not yet sent are discarded: the
    /// orders in them stay in flight, and `query` says whether the venue got them.
    pub fn reconnect(&mut self, timeout: Duration) -> io::Result<()> {
        if let Some(mut stream) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        self.open(timeout)
    }

    /// Asks the venue what became of each order in `ids` (in frames of
    /// `QUERY_IDS_MAX`); one answer per id, in order. Blocks for up to `timeout`.
    /// Reports that arrive meanwhile are kept for the next `poll`.
    pub fn query(&mut self, ids: &[u64], timeout: Duration) -> io::Result<Vec<QueryAnswer>> {
        let deadline = Instant::now() + timeout;
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

    /// Every non-zero venue position, sorted. Blocks for up to `timeout`.
    pub fn positions(&mut self, timeout: Duration) -> io::Result<Vec<VenuePosition>> {
        let deadline = Instant::now() + timeout;
        self.send(|out| ClientMsg::Positions.encode(out))?;
        let mut all = Vec::new();
        // Bounded by POSITIONS_MAX and the deadline.
        loop {
            let (part, last) = self.wait_reply(deadline, |msg| match msg {
                ServerMsg::PositionsReply { positions, last } => Ok((positions, last)),
                other => Err(other),
            })?;
            if all.len() + part.len() > POSITIONS_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the venue sent more than {POSITIONS_MAX} positions"),
                ));
            }
            all.extend(part);
            if last {
                return Ok(all);
            }
        }
    }

    /// The venue's and its server's counters (orders received, duplicate client
    /// order ids, ...). Blocks for up to `timeout`.
    pub fn stats(&mut self, timeout: Duration) -> io::Result<VenueStats> {
        let deadline = Instant::now() + timeout;
        self.send(|out| ClientMsg::Stats.encode(out))?;
        self.wait_reply(deadline, |msg| match msg {
            ServerMsg::Stats(s) => Ok(s),
            other => Err(other),
        })
    }

    /// Connects (retrying until `timeout`), registers and queues `Hello`.
    fn open(&mut self, timeout: Duration) -> io::Result<()> {
        debug_assert!(self.stream.is_none());
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline.
        let std_stream = 'retry: loop {
            let mut failed = None;
            for addr in &self.addrs {
                let left = deadline.saturating_duration_since(Instant::now());
                let attempt = std::net::TcpStream::connect_timeout(
                    addr,
                    left.clamp(Duration::from_millis(1), Duration::from_secs(1)),
                );
                match attempt {
                    Ok(s) => break 'retry s,
                    Err(e) => failed = Some(e),
                }
            }
            if Instant::now() >= deadline {
                return Err(failed.unwrap_or_else(|| io::ErrorKind::TimedOut.into()));
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
        self.reader = FrameReader::new();
        self.writer.clear();
        self.stream = Some(stream);
        self.last_error = None;
        let session = self.session;
        self.send(|out| ClientMsg::Hello { session }.encode(out))
    }

    /// Appends a frame and writes what the socket takes.
    fn send(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::simwire::EncodeError>,
    ) -> io::Result<()> {
        if self.stream.is_none() {
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
            self.lost(format!("write: {e}"));
        }
        result
    }

    /// Marks the connection lost.
    fn lost(&mut self, why: String) {
        if let Some(mut stream) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
            self.stats.disconnects += 1;
        }
        self.writer.clear();
        self.last_error = Some(why);
    }

    /// Reads what the socket has (one buffer's worth at most) and hands each frame to
    /// `each`. `ReadState::Full` means more may be waiting; end of stream and errors
    /// mark the connection lost and are returned as errors.
    fn read_some(
        &mut self,
        each: &mut dyn FnMut(&mut SimClient, ServerMsg),
    ) -> io::Result<ReadState> {
        let Some(stream) = &mut self.stream else {
            return Err(not_connected());
        };
        let state = match self.reader.fill(stream) {
            Ok(state) => state,
            Err(e) => {
                self.lost(format!("read: {e}"));
                return Err(e);
            }
        };
        // Bounded by the frames in the buffer.
        loop {
            match self.reader.next(decode_server) {
                Ok(Some(msg)) => each(self, msg),
                Ok(None) => break,
                Err(e) => return Err(self.bad_frame(e)),
            }
        }
        if state == ReadState::Eof {
            let why = if self.reader.buffered() > 0 {
                "the venue closed the connection inside a frame"
            } else {
                "the venue closed the connection"
            };
            self.lost(why.to_string());
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
        }
        Ok(state)
    }

    fn bad_frame(&mut self, e: DecodeError) -> io::Error {
        self.stats.protocol_errors += 1;
        self.lost(format!("bad frame from the venue: {e}"));
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// Waits for the first server message that `pick` takes; reports go to the stash,
    /// other replies are counted as unsolicited.
    fn wait_reply<T>(
        &mut self,
        deadline: Instant,
        mut pick: impl FnMut(ServerMsg) -> Result<T, ServerMsg>,
    ) -> io::Result<T> {
        let mut found: Option<T> = None;
        // Bounded by the deadline.
        loop {
            self.flush()?;
            if self.stash.len() >= STASH_REPORTS_MAX {
                return Err(io::Error::other(format!(
                    "{} reports are waiting: call poll before a blocking call",
                    self.stash.len()
                )));
            }
            let state = self.read_some(&mut |client, msg| {
                let msg = match msg {
                    ServerMsg::Report(r) => {
                        client.stash.push_back(r);
                        return;
                    }
                    other => other,
                };
                if found.is_some() {
                    client.stats.unsolicited += 1;
                    return;
                }
                match pick(msg) {
                    Ok(t) => found = Some(t),
                    Err(_) => client.stats.unsolicited += 1,
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
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no reply from the venue in time",
                ));
            }
            match self.poll.poll(&mut self.events, Some(left.min(WAIT_STEP))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Updates the in-flight table for one report.
    fn track(&mut self, r: &ExecReport) {
        let done = match r.kind {
            ExecKind::Ack => false,
            ExecKind::Fill => match self.in_flight.get_mut(&r.order_id) {
                Some(w) => {
                    w.filled = Lots(w.filled.0.saturating_add(r.qty.0));
                    w.filled >= w.qty
                }
                None => false,
            },
            ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired => true,
        };
        if done {
            self.in_flight.remove(&r.order_id);
        }
    }

    fn reject_locally(&mut self, order: &FollowerOrder, now: Nanos) -> ExecReport {
        self.stats.rejected_locally += 1;
        ExecReport {
            order_id: order.id,
            kind: ExecKind::Rejected,
            reject: RejectReason::Transient,
            venue_ts: now,
            recv_ts: now,
            ..ExecReport::default()
        }
    }
}

impl Gateway for SimClient {
    fn name(&self) -> &str {
        &self.name
    }

    fn can_accept(&self, orders: usize) -> bool {
        self.stream.is_some()
            && self.writer.pending() <= OUT_BYTES_MAX
            && self
                .in_flight
                .len()
                .checked_add(orders)
                .is_some_and(|n| n <= IN_FLIGHT_MAX)
    }

    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        let fits = self
            .in_flight
            .len()
            .checked_add(orders.len())
            .is_some_and(|n| n <= IN_FLIGHT_MAX);
        if self.stream.is_none() || !fits {
            for order in orders {
                let r = self.reject_locally(order, now);
                out(r);
            }
            return;
        }
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
                    },
                );
            }
            self.stats.orders_sent += chunk.len() as u64;
        }
        debug_assert!(self.in_flight.len() <= IN_FLIGHT_MAX);
        // A failed write is recorded by `flush`; the orders stay in flight.
        let _ = self.flush();
    }

    fn poll(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize {
        let mut delivered = 0;
        // Bounded by the stash size.
        while let Some(mut r) = self.stash.pop_front() {
            r.recv_ts = now;
            self.track(&r);
            self.stats.reports += 1;
            out(r);
            delivered += 1;
        }
        if self.stream.is_none() || self.flush().is_err() {
            return delivered;
        }
        for _ in 0..READ_ROUNDS_MAX {
            let state = self.read_some(&mut |client, msg| match msg {
                ServerMsg::Report(mut r) => {
                    r.recv_ts = now;
                    client.track(&r);
                    client.stats.reports += 1;
                    out(r);
                    delivered += 1;
                }
                _ => client.stats.unsolicited += 1,
            });
            match state {
                Ok(ReadState::Full) => {}
                Ok(_) | Err(_) => break,
            }
        }
        delivered
    }

    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Queries the venue in frames of `QUERY_IDS_MAX` ids, waiting at most the
    /// recover timeout in all, and hands `out` each answer's reports (fills with their
    /// trade ids, then the end; `UnknownOrder` for an id the venue never received),
    /// stamped with the time they arrived. Nothing reaches `out` unless every answer
    /// came: on an error (timeout, lost connection) the engine must not go on as if
    /// the orders were settled.
    fn recover(
        &mut self,
        order_ids: &[u64],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), String> {
        let answers = self.query(order_ids, self.recover_timeout).map_err(|e| {
            format!(
                "venue `{}`: asking about {} orders: {e}",
                self.name,
                order_ids.len()
            )
        })?;
        debug_assert_eq!(answers.len(), order_ids.len());
        let now = clock::now();
        for answer in &answers {
            for mut r in answer.reports() {
                r.recv_ts = now;
                self.track(&r);
                out(r);
            }
        }
        Ok(())
    }
}

/// A session id no other connection has used: the process id, the time and a
/// counter, mixed (never 0).
fn fresh_session() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = (u64::from(std::process::id()) << 32) ^ clock::now().0 ^ n.rotate_left(17);
    mix64(seed).max(1)
}

fn not_connected() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "not connected to the sim venue",
    )
}
