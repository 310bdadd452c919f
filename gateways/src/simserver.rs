//! The simulated venue as a server: one `SimVenue` behind a TCP listener, speaking
//! `simwire`, so that the venue (its books, its duplicate detection, its order
//! history) outlives the engines that trade on it. A crash test kills the engine,
//! restarts it, and asks this server what happened.
//!
//! Several clients at once: at most `CONNECTIONS_MAX` connections; one more is closed
//! as soon as it is accepted and counted in `connections_refused`. A connection must
//! start with `Hello { session }`, and sessions (a random 64-bit secret each client
//! picks) keep clients apart: every report goes to the session whose connection
//! submitted its order (the venue tags each queued report with it,
//! `SimVenue::submit_tagged`), never to another, so a connection with another
//! session can neither see, take nor drop a session's reports. A `Hello` naming the
//! session of a live connection replaces that connection, so that a restarted or
//! reconnecting engine whose old connection is half-open gets in: what the old one
//! sent is handled first (its reports are held for the session), then it is closed;
//! of two connections naming one session the later accepted wins. `Query`,
//! `Positions`, `Stats` and `Ping` work from any session. `Symbols` sets the
//! venue's symbol table, shared by all (at most 65,536 entries: symbol indices are
//! `u16`), from the engine's model, which a reload may have grown since the venue
//! read its config; the last to say wins. The venue's books are
//! shared and persist across connections; orders are stamped with `clock::now()`
//! when they are read.
//!
//! Reports owed to a session with no live connection, or to one that is not reading
//! (over `OUT_BYTES_SOFT_MAX` unsent bytes), are held for that session, in order, and
//! written when it says `Hello` again or reads. At most `HELD_REPORTS_MAX` reports are
//! held in all, for at most `SESSIONS_MAX` sessions: over the first bound the oldest
//! report of the session holding the most is dropped, over the second every report of
//! the session gone longest, each counted in `reports_dropped`. Holding is best
//! effort: reports already handed to the socket when a client died are gone. `Query`
//! is the authoritative way to learn what happened to an order.
//!
//! Every buffer is bounded. Per connection, the read buffer holds one largest frame
//! (1 MiB, so 64 MiB for `CONNECTIONS_MAX` connections); above `OUT_BYTES_SOFT_MAX`
//! unsent bytes the server stops reading that client's frames and holds its reports
//! until it reads, so its write buffer stays below that plus one reply (a `Query`
//! reply is at most 1 MiB, a `Positions` reply as large as the venue's books). Never
//! panics on what a client sends: a malformed frame closes only that connection and
//! is counted in `protocol_errors`.
//!
//! The process around it (config, port file, SIGTERM, SIGINT or a stop file, the
//! venue's books and counters written at the end) is `fillcast sim-venue`, in the
//! command line crate.

use crate::sim::SimVenue;
use crate::simwire::{
    decode_client, encode_order_ids, encode_positions, encode_query_reply, encode_report,
    ClientMsg, FrameReader, FrameWriter, ReadState, ServerMsg, VenuePosition, VenueStats,
    ORDER_IDS_PER_FRAME_MAX, POSITIONS_PER_FRAME_MAX,
};
use fillcast_engine::clock;
use fillcast_engine::event::ExecReport;
use fillcast_engine::order::IdHash;
use fillcast_engine::units::Nanos;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Client connections served at once; one more is closed at once (and counted).
pub const CONNECTIONS_MAX: usize = 64;

/// Sessions the server knows at once: those with a live connection (at most
/// `CONNECTIONS_MAX`) and those it holds reports for.
pub const SESSIONS_MAX: usize = 1024;

/// Reports held in all, for every session (about 64 MiB when full): as many as the
/// venue's report queue holds by default, so a session that stops reading for a
/// while loses none of the reports the venue had queued for it.
pub const HELD_REPORTS_MAX: usize = 1 << 20;

/// Unsent bytes above which the server stops reading a client's frames and holds its
/// reports instead of writing them.
pub const OUT_BYTES_SOFT_MAX: usize = 4 << 20;

/// Longest sleep of the event loop: how soon it sees `stop`.
const WAIT_MAX: Duration = Duration::from_millis(10);

/// Read-buffer fills per connection and loop iteration before others get a turn.
const READ_ROUNDS_MAX: usize = 16;

const LISTENER: Token = Token(0);

const _: () = assert!(CONNECTIONS_MAX < SESSIONS_MAX);

/// What `serve` hands back when it stops: the counters and the venue's books.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    pub venue: VenueStats,
    /// Every non-zero venue position, sorted.
    pub positions: Vec<VenuePosition>,
}

/// Serves `venue` on `listener` until `stop` is set (seen within 10 ms). Returns an
/// error only when the event loop itself fails; client errors close that client's
/// connection and the server goes on with the others.
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
/// the venue's books and counters after the loop ends. `run` may be called again
/// after it returns: meanwhile the listener's backlog and the sockets keep what
/// clients send, as for a stopped process.
pub struct SimServer {
    poll: Poll,
    listener: TcpListener,
    addr: SocketAddr,
    venue: SimVenue,
    links: Links,
    last_close: Option<String>,
}

#[derive(Copy, Clone, Debug, Default)]
struct Counters {
    connections: u64,
    connections_refused: u64,
    protocol_errors: u64,
    reports_sent: u64,
    reports_dropped: u64,
}

/// The connections and sessions: everything routing a report needs but the venue.
struct Links {
    /// `conns[i]` has token `i + 1`; `None` is a free place. A connection being
    /// served is taken out of its place meanwhile.
    conns: Vec<Option<Conn>>,
    sessions: HashMap<u64, Session, IdHash>,
    /// Reports held, summed over `sessions`.
    held_total: usize,
    /// Connections accepted so far (the next one's `seq`).
    accepted: u64,
    /// Connections closed so far (when a session went, for choosing whom to drop).
    closes: u64,
    counters: Counters,
}

/// A session the server knows: it has a live connection or held reports (an entry
/// with neither is removed).
struct Session {
    /// The place in `Links::conns` of its live connection.
    slot: Option<usize>,
    held: VecDeque<ExecReport>,
    /// `Links::closes` when its last connection ended.
    gone_at: u64,
}

struct Conn {
    stream: TcpStream,
    /// When it was accepted, in accept order: of two connections naming one session,
    /// the later wins.
    seq: u64,
    /// Set by `Hello`; nothing else is accepted before it.
    session: Option<u64>,
    reader: FrameReader,
    writer: FrameWriter,
    /// Serve it in this loop iteration: an event came, bytes were queued for it, or
    /// it stopped reading with input left.
    wake: bool,
}

/// Why a connection ends.
enum Close {
    Eof,
    Io(io::Error),
    Protocol(String),
    /// A newer connection said `Hello` with its session.
    Replaced,
    /// It said `Hello` with the session of a newer live connection.
    Superseded,
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
            links: Links {
                conns: (0..CONNECTIONS_MAX).map(|_| None).collect(),
                sessions: HashMap::with_hasher(IdHash),
                held_total: 0,
                accepted: 0,
                closes: 0,
                counters: Counters::default(),
            },
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
        let c = &self.links.counters;
        VenueStats {
            orders_received: v.orders,
            duplicate_client_ids: v.duplicate_ids,
            acks: v.acks,
            fills: v.fills,
            canceled: v.canceled,
            rejected: v.rejected,
            connections: c.connections,
            connections_refused: c.connections_refused,
            protocol_errors: c.protocol_errors,
            reports_sent: c.reports_sent,
            reports_dropped: c.reports_dropped,
        }
    }

    /// Why the last client connection ended ("replaced ..." when a newer connection
    /// of its session took over).
    pub fn last_close(&self) -> Option<&str> {
        self.last_close.as_deref()
    }

    /// Reports held for sessions, in all.
    pub fn held_reports(&self) -> usize {
        self.links.held_total
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
        let mut events = Events::with_capacity(CONNECTIONS_MAX + 1);
        while !stop.load(Ordering::Acquire) {
            let wait = self.wait_time();
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let mut accept = false;
            for event in events.iter() {
                if event.token() == LISTENER {
                    accept = true;
                } else if let Some(Some(conn)) = event
                    .token()
                    .0
                    .checked_sub(1)
                    .and_then(|slot| self.links.conns.get_mut(slot))
                {
                    conn.wake = true;
                }
            }
            if accept {
                self.accept();
            }
            self.deliver_due();
            for slot in 0..CONNECTIONS_MAX {
                if self.links.conns[slot].as_ref().is_some_and(|c| c.wake) {
                    self.service(slot);
                }
            }
        }
        // Best effort: what clients have not taken yet is lost with the server.
        for conn in self.links.conns.iter_mut().flatten() {
            let _ = conn.writer.flush(&mut conn.stream);
        }
        Ok(())
    }

    fn wait_time(&self) -> Duration {
        if self.links.conns.iter().flatten().any(|c| c.wake) {
            return Duration::ZERO;
        }
        match self.venue.next_due() {
            Some(due) => {
                let now = clock::now();
                Duration::from_nanos(due.0.saturating_sub(now.0)).min(WAIT_MAX)
            }
            None => WAIT_MAX,
        }
    }

    /// Takes every pending connection into a free place, or closes it when none is.
    fn accept(&mut self) {
        // Bounded: the backlog is finite, each pass takes one connection.
        loop {
            match self.listener.accept() {
                Ok((mut stream, _peer)) => {
                    let links = &mut self.links;
                    let Some(slot) = links.conns.iter().position(Option::is_none) else {
                        links.counters.connections_refused += 1;
                        self.last_close =
                            Some(format!("refused: {CONNECTIONS_MAX} connections are open"));
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let registered = self.poll.registry().register(
                        &mut stream,
                        Token(slot + 1),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if registered.is_err() {
                        continue;
                    }
                    links.counters.connections += 1;
                    links.accepted += 1;
                    links.conns[slot] = Some(Conn {
                        stream,
                        seq: links.accepted,
                        session: None,
                        reader: FrameReader::new(),
                        writer: FrameWriter::default(),
                        // The client may have written before we registered.
                        wake: true,
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

    /// Hands every report that is due to its session.
    fn deliver_due(&mut self) {
        let links = &mut self.links;
        self.venue
            .poll_tagged(clock::now(), |session, r| links.route(None, session, &r));
    }

    /// Reads and handles the frames of the connection in `slot`, writes what it is
    /// owed; closes it on an error.
    fn service(&mut self, slot: usize) {
        let Some(mut conn) = self.links.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let result = self.service_conn(slot, &mut conn);
        self.links.conns[slot] = Some(conn);
        if let Err(why) = result {
            self.close(slot, why);
        }
    }

    fn service_conn(&mut self, slot: usize, conn: &mut Conn) -> Result<(), Close> {
        conn.writer.flush(&mut conn.stream).map_err(Close::Io)?;
        // Whether it read until the socket had nothing more and handled every frame.
        let mut done = false;
        for _ in 0..READ_ROUNDS_MAX {
            if conn.writer.pending() > OUT_BYTES_SOFT_MAX {
                // Resumes when the client reads: a writable event wakes the loop.
                break;
            }
            let state = conn.reader.fill(&mut conn.stream).map_err(Close::Io)?;
            let mut handled_all = false;
            // Bounded by the frames in the buffer.
            while conn.writer.pending() <= OUT_BYTES_SOFT_MAX {
                match conn.reader.next(decode_client) {
                    Ok(Some(msg)) => self.handle(slot, conn, msg)?,
                    Ok(None) => {
                        handled_all = true;
                        break;
                    }
                    Err(e) => return Err(Close::Protocol(e.to_string())),
                }
            }
            if !handled_all {
                break;
            }
            match state {
                ReadState::WouldBlock => {
                    done = true;
                    break;
                }
                ReadState::Eof => {
                    if conn.reader.buffered() > 0 {
                        return Err(Close::Protocol("connection ended inside a frame".into()));
                    }
                    return Err(Close::Eof);
                }
                ReadState::Full => {}
            }
        }
        self.links.drain_held(slot, conn);
        conn.writer.flush(&mut conn.stream).map_err(Close::Io)?;
        // Over the soft maximum the flush hit would-block, so a writable event comes;
        // below it, input left unread gets no event: serve it again.
        conn.wake = !done && conn.writer.pending() <= OUT_BYTES_SOFT_MAX;
        Ok(())
    }

    fn handle(&mut self, slot: usize, conn: &mut Conn, msg: ClientMsg) -> Result<(), Close> {
        let session = match (conn.session, &msg) {
            (None, ClientMsg::Hello { session }) => return self.bind(slot, conn, *session),
            (Some(_), ClientMsg::Hello { .. }) => {
                return Err(Close::Protocol("a second Hello".into()))
            }
            (None, _) => return Err(Close::Protocol("the first frame must be Hello".into())),
            (Some(session), _) => session,
        };
        match msg {
            ClientMsg::Hello { .. } => {}
            ClientMsg::Orders(orders) => {
                let links = &mut self.links;
                self.venue
                    .submit_tagged(&orders, clock::now(), session, |owner, r| {
                        links.route(Some((slot, &mut *conn)), owner, &r)
                    });
            }
            ClientMsg::Query(ids) => {
                let answers: Vec<_> = ids.iter().map(|&id| self.venue.query(id)).collect();
                encode_query_reply(&answers, conn.writer.buf())
                    .map_err(|e| Close::Protocol(format!("cannot answer a query: {e}")))?;
            }
            ClientMsg::Positions => {
                let positions = sorted_positions(&self.venue);
                let writer = conn.writer.buf();
                in_parts(&positions, POSITIONS_PER_FRAME_MAX, |part, last| {
                    let _ = encode_positions(part, last, writer);
                });
            }
            ClientMsg::Stats => {
                let _ = ServerMsg::Stats(self.stats()).encode(conn.writer.buf());
            }
            ClientMsg::Ping { nonce } => {
                let _ = ServerMsg::Pong { nonce }.encode(conn.writer.buf());
            }
            ClientMsg::Symbols { first, terms } => {
                self.venue
                    .set_symbols(first as usize, &terms)
                    .map_err(Close::Protocol)?;
            }
            ClientMsg::OrdersSince { since } => {
                let ids = self.venue.orders_since(Nanos(since));
                let writer = conn.writer.buf();
                in_parts(&ids, ORDER_IDS_PER_FRAME_MAX, |part, last| {
                    let _ = encode_order_ids(part, last, writer);
                });
            }
        }
        debug_assert!(conn.session.is_some());
        Ok(())
    }

    /// `Hello { session }` on the connection in `slot`: it becomes the session's live
    /// connection (replacing an older one) and gets the reports held for it.
    fn bind(&mut self, slot: usize, conn: &mut Conn, session: u64) -> Result<(), Close> {
        debug_assert!(conn.session.is_none());
        let bound = self.links.sessions.get(&session).and_then(|s| s.slot);
        if let Some(old) = bound.filter(|&old| old != slot) {
            let old_seq = self.links.conns[old].as_ref().map(|c| c.seq);
            if old_seq.is_some_and(|seq| seq > conn.seq) {
                return Err(Close::Superseded);
            }
            // What the old connection sent is the venue's: handle it (its reports are
            // held for the session, unbound meanwhile) before closing it.
            if let Some(s) = self.links.sessions.get_mut(&session) {
                s.slot = None;
            }
            self.service(old);
            self.close(old, Close::Replaced);
        }
        let links = &mut self.links;
        if !links.sessions.contains_key(&session) {
            links.make_room_for_a_session();
            links.sessions.insert(
                session,
                Session {
                    slot: None,
                    held: VecDeque::new(),
                    gone_at: links.closes,
                },
            );
        }
        if let Some(s) = links.sessions.get_mut(&session) {
            s.slot = Some(slot);
        }
        conn.session = Some(session);
        links.drain_held(slot, conn);
        debug_assert!(links.sessions.len() <= SESSIONS_MAX);
        Ok(())
    }

    /// Ends the connection in `slot`; reports owed to its session are held from now.
    fn close(&mut self, slot: usize, why: Close) {
        let links = &mut self.links;
        let Some(mut conn) = links.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.last_close = Some(match why {
            Close::Eof => "closed by the client".to_string(),
            Close::Io(e) => format!("i/o error: {e}"),
            Close::Protocol(m) => {
                links.counters.protocol_errors += 1;
                format!("protocol error: {m}")
            }
            Close::Replaced => "replaced by a newer connection of its session".to_string(),
            Close::Superseded => "refused: a newer connection of its session is live".to_string(),
        });
        let _ = self.poll.registry().deregister(&mut conn.stream);
        links.closes += 1;
        let Some(session) = conn.session else {
            return;
        };
        if let Some(s) = links.sessions.get_mut(&session) {
            if s.slot == Some(slot) {
                s.slot = None;
                s.gone_at = links.closes;
            }
            if s.slot.is_none() && s.held.is_empty() {
                links.sessions.remove(&session);
            }
        }
    }
}

impl Links {
    /// Hands `report` to `session`: written to its live connection (`current`, the one
    /// being served and so out of `conns`, or one in `conns`) when nothing is held
    /// before it and that connection is reading; held otherwise.
    fn route(&mut self, current: Option<(usize, &mut Conn)>, session: u64, report: &ExecReport) {
        let slot = self
            .sessions
            .get(&session)
            .filter(|s| s.held.is_empty())
            .and_then(|s| s.slot);
        if let Some(slot) = slot {
            let conn = match current {
                Some((at, conn)) if at == slot => Some(conn),
                _ => self.conns.get_mut(slot).and_then(Option::as_mut),
            };
            if let Some(conn) = conn.filter(|c| c.writer.pending() <= OUT_BYTES_SOFT_MAX) {
                debug_assert_eq!(conn.session, Some(session));
                encode_report(report, conn.writer.buf());
                conn.wake = true;
                self.counters.reports_sent += 1;
                return;
            }
        }
        self.hold(session, *report);
    }

    /// Keeps `report` for `session`, within the bounds (see the module docs).
    fn hold(&mut self, session: u64, report: ExecReport) {
        if !self.sessions.contains_key(&session) {
            self.make_room_for_a_session();
            self.sessions.insert(
                session,
                Session {
                    slot: None,
                    held: VecDeque::new(),
                    gone_at: self.closes,
                },
            );
        }
        if self.held_total >= HELD_REPORTS_MAX {
            self.drop_oldest_of_the_largest();
        }
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.held.push_back(report);
        self.held_total += 1;
        if let Some(Some(conn)) = s.slot.map(|slot| &mut self.conns[slot]) {
            conn.wake = true;
        }
        debug_assert!(self.held_total <= HELD_REPORTS_MAX);
        debug_assert!(self.sessions.len() <= SESSIONS_MAX);
    }

    /// Writes what is held for the session of the connection in `slot` (taken out of
    /// `conns` as `conn`), up to the soft maximum of unsent bytes.
    fn drain_held(&mut self, slot: usize, conn: &mut Conn) {
        let Some(session) = conn.session else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if s.slot != Some(slot) {
            return;
        }
        // Bounded by the held reports.
        while conn.writer.pending() <= OUT_BYTES_SOFT_MAX {
            let Some(r) = s.held.pop_front() else {
                break;
            };
            encode_report(&r, conn.writer.buf());
            self.held_total -= 1;
            self.counters.reports_sent += 1;
        }
    }

    /// Makes `sessions` hold fewer than `SESSIONS_MAX`: forgets the session whose
    /// connection went longest ago, and its held reports (counted as dropped).
    fn make_room_for_a_session(&mut self) {
        if self.sessions.len() < SESSIONS_MAX {
            return;
        }
        // Live sessions are fewer than SESSIONS_MAX, so one is gone. Bounded by
        // SESSIONS_MAX entries.
        let gone = self
            .sessions
            .iter()
            .filter(|(_, s)| s.slot.is_none())
            .min_by_key(|(_, s)| s.gone_at)
            .map(|(&id, _)| id);
        if let Some(s) = gone.and_then(|id| self.sessions.remove(&id)) {
            self.held_total -= s.held.len();
            self.counters.reports_dropped += s.held.len() as u64;
        }
        debug_assert!(self.sessions.len() < SESSIONS_MAX);
    }

    /// Drops the oldest report of the session holding the most (so that one session's
    /// backlog cannot push out another's) and counts it.
    fn drop_oldest_of_the_largest(&mut self) {
        // Bounded by SESSIONS_MAX entries.
        let largest = self
            .sessions
            .iter()
            .max_by_key(|(_, s)| s.held.len())
            .map(|(&id, _)| id);
        let Some(id) = largest else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.held.pop_front().is_some() {
            self.held_total -= 1;
            self.counters.reports_dropped += 1;
        }
        if s.slot.is_none() && s.held.is_empty() {
            self.sessions.remove(&id);
        }
    }
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

/// Hands `items` to `frame` in parts of at most `max` (the per-frame cap, so the
/// encoder cannot refuse them), the last part flagged; an empty list is one empty
/// last part.
fn in_parts<T>(items: &[T], max: usize, mut frame: impl FnMut(&[T], bool)) {
    let mut parts = items.chunks(max).peekable();
    if parts.peek().is_none() {
        frame(&[], true);
    }
    while let Some(part) = parts.next() {
        frame(part, parts.peek().is_none());
    }
}
