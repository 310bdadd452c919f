//! Issue 9, "venue outages fail closed and loudly", for the sim venue over TCP: the
//! server keeps sessions apart (a stray connection cannot take over or drop another
//! session's reports, a session that comes back gets what was held for it, a
//! connection over the limit is refused), and `SimClient` goes down when its venue
//! goes away or stalls, rejects orders with `VenueDown` meanwhile, connects again on
//! its own and settles the orders it had in flight before it says it is up.
//!
//! Real sockets on 127.0.0.1 and real `serve`/`SimServer::run` threads; a stall is a
//! server whose event loop is paused (its listener's backlog and sockets keep what
//! clients send, as for a stopped process). No wall-clock speed is asserted: every
//! wait is bounded by a generous deadline, and a timeout that must fire is checked
//! against its lower bound only.

use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType, RejectReason};
use fillcast_engine::ids::decision_id;
use fillcast_engine::model::{FollowerIdx, Side, SubIdx, SymbolIdx, SymbolSpec, VenueIdx};
use fillcast_engine::port::Gateway;
use fillcast_engine::units::{Lots, Money, Nanos, Ticks};
use fillcast_gateways::config::SimVenueConfig;
use fillcast_gateways::sim::{QueryAnswer, SimVenue};
use fillcast_gateways::simclient::SimClient;
use fillcast_gateways::simserver::{serve, ServeStats, SimServer, CONNECTIONS_MAX};
use fillcast_gateways::simwire::{decode_server, ClientMsg, ServerMsg};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
/// 65,000.0 in BTCUSDT ticks of 0.1.
const BTC_PRICE: Ticks = Ticks(650_000);
const HEARTBEAT: Duration = Duration::from_millis(40);
const DOWN_AFTER: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------
// Helpers

/// BTCUSDT: lot 0.001, tick 0.1, minimum notional 100.
fn btcusdt() -> SymbolSpec {
    SymbolSpec {
        name: "BTCUSDT".into(),
        lot_size: "0.001".parse().expect("decimal"),
        tick_size: "0.1".parse().expect("decimal"),
        min_qty: Lots(1),
        min_notional: Money(100 * 100_000_000),
        venue: VenueIdx(0),
        money_per_lot_tick: 10_000,
        removed: false,
    }
}

/// A venue whose reports come `latency_ms` after an order, filling in full.
fn venue(latency_ms: u64) -> SimVenue {
    let cfg = SimVenueConfig {
        latency_us: latency_ms * 1_000,
        ..SimVenueConfig::default()
    };
    SimVenue::new("sim", &cfg, vec![btcusdt()]).fill_all()
}

/// `count` orders of 2 lots and up from `first` on, both sides.
fn orders(first: u64, count: u64) -> Vec<FollowerOrder> {
    (first..first + count)
        .map(|n| FollowerOrder {
            id: decision_id(n, (n % 5) as u32, 1, 0),
            sub: SubIdx((n % 5) as u32),
            follower: FollowerIdx((n % 5) as u32),
            symbol: SymbolIdx(0),
            side: if n % 3 == 0 { Side::Sell } else { Side::Buy },
            qty: Lots(2 + (n % 7) as i64),
            order_type: OrderType::LimitIoc,
            limit: BTC_PRICE,
            reduce_only: false,
            leader_event_key: n,
            ts: Nanos(n),
            ..FollowerOrder::default()
        })
        .collect()
}

fn ids(orders: &[FollowerOrder]) -> HashSet<u64> {
    orders.iter().map(|o| o.id).collect()
}

fn now() -> Nanos {
    fillcast_engine::clock::now()
}

/// A client with short heartbeat and backoff settings.
fn client(addr: SocketAddr) -> SimClient {
    SimClient::connect("sim", addr, WAIT)
        .expect("connect")
        .with_heartbeat(HEARTBEAT, DOWN_AFTER)
        .with_reconnect_backoff(Duration::from_millis(5), Duration::from_millis(100))
}

/// Polls `client` about every millisecond, collecting its reports, until `done`
/// holds; returns how many polls it took. Panics after `WAIT`.
fn poll_until(
    client: &mut SimClient,
    got: &mut Vec<ExecReport>,
    what: &str,
    mut done: impl FnMut(&SimClient, &[ExecReport]) -> bool,
) -> usize {
    let deadline = Instant::now() + WAIT;
    let mut polls = 0;
    while !done(client, got) {
        assert!(
            Instant::now() < deadline,
            "{what}: not after {polls} polls; up {}, in flight {}, {:?}, {:?}",
            client.is_up(),
            client.in_flight(),
            client.down_reason(),
            client.client_stats()
        );
        polls += 1;
        if client.poll(now(), &mut |r| got.push(r)) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    polls
}

/// A server on `listener` in a thread; stopped and joined on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<ServeStats>>>,
}

impl Server {
    fn on(listener: TcpListener, venue: SimVenue) -> Server {
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || serve(listener, venue, flag));
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn start(venue: SimVenue) -> Server {
        Server::on(
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"),
            venue,
        )
    }

    fn stop(mut self) -> ServeStats {
        self.stop.store(true, Ordering::Release);
        let thread = self.thread.take().expect("running");
        thread
            .join()
            .expect("server thread panicked")
            .expect("event loop")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A server whose event loop can be paused: while paused its listener's backlog and
/// its sockets keep what clients send, and nothing is read or answered.
struct Pausable {
    addr: SocketAddr,
    halt: Arc<AtomicBool>,
    quit: Arc<AtomicBool>,
    halted: Arc<AtomicBool>,
    thread: Option<JoinHandle<ServeStats>>,
}

impl Pausable {
    fn start(venue: SimVenue) -> Pausable {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let halt = Arc::new(AtomicBool::new(false));
        let quit = Arc::new(AtomicBool::new(false));
        let halted = Arc::new(AtomicBool::new(false));
        let (h, q, d) = (Arc::clone(&halt), Arc::clone(&quit), Arc::clone(&halted));
        let thread = std::thread::spawn(move || {
            let mut server = SimServer::new(listener, venue).expect("server");
            // Bounded: ends when `quit` is set.
            loop {
                server.run(&h).expect("event loop");
                d.store(true, Ordering::Release);
                while h.load(Ordering::Acquire) && !q.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if q.load(Ordering::Acquire) {
                    return server.serve_stats();
                }
                d.store(false, Ordering::Release);
            }
        });
        Pausable {
            addr,
            halt,
            quit,
            halted,
            thread: Some(thread),
        }
    }

    /// Returns once the event loop has stopped.
    fn pause(&self) {
        self.halt.store(true, Ordering::Release);
        let deadline = Instant::now() + WAIT;
        while !self.halted.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the server did not pause");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn resume(&self) {
        self.halt.store(false, Ordering::Release);
    }

    fn stop(mut self) -> ServeStats {
        self.quit.store(true, Ordering::Release);
        self.halt.store(true, Ordering::Release);
        let thread = self.thread.take().expect("running");
        thread.join().expect("server thread panicked")
    }
}

impl Drop for Pausable {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Release);
        self.halt.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw connection that has said `Hello` with `session`.
fn raw_hello(addr: SocketAddr, session: u64) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut hello = Vec::new();
    ClientMsg::Hello { session }
        .encode(&mut hello)
        .expect("encodable");
    s.write_all(&hello).expect("write");
    s
}

/// Everything `s` receives within `quiet` of silence (at most `WAIT` in all).
fn read_for(s: &mut TcpStream, quiet: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(quiet)).expect("timeout");
    let deadline = Instant::now() + WAIT;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    bytes
}

/// Whether the server closed `s` (end of stream or reset) within `WAIT`.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn assert_venue_down(r: &ExecReport) {
    assert_eq!(
        (r.kind, r.reject),
        (ExecKind::Rejected, RejectReason::VenueDown)
    );
}

// ---------------------------------------------------------------------------------
// The server: sessions

#[test]
fn stray_hello_cannot_take_over_a_session() {
    let server = Server::start(venue(200));
    let mut engine = client(server.addr);
    let mine = orders(0, 10);
    engine.submit(&mine, now(), &mut |r| panic!("nothing is due yet: {r:?}"));
    engine.stats(WAIT).expect("the server has read the orders");

    // A stray that says Hello with another session and only listens, and another that
    // trades, reusing one of the engine's order ids (which the engine never does).
    let mut listener = raw_hello(server.addr, 0x5757);
    let mut stray = SimClient::connect_session("stray", server.addr, 0xbad, WAIT).expect("connect");
    let mut theirs = orders(100, 3);
    theirs.push(mine[0]);
    stray.submit(&theirs, now(), &mut |_| {});

    let mut got = Vec::new();
    poll_until(&mut engine, &mut got, "the engine's reports", |c, got| {
        c.in_flight() == 0 && got.len() >= 2 * mine.len()
    });
    let mut stray_got = Vec::new();
    poll_until(
        &mut stray,
        &mut stray_got,
        "the stray's own reports",
        |_, got| got.len() >= 2 * theirs.len(),
    );
    // The engine's session was never disturbed.
    assert!(engine.is_up());
    assert_eq!(engine.client_stats().disconnects, 0);
    assert_eq!(got.len(), 2 * mine.len(), "{got:?}");
    assert_eq!(
        got.iter().map(|r| r.order_id).collect::<HashSet<_>>(),
        ids(&mine)
    );
    assert_eq!(
        got.iter().filter(|r| r.kind == ExecKind::Fill).count(),
        mine.len()
    );
    // The stray got its own reports only, the reused id's once (its own order).
    assert_eq!(stray_got.len(), 2 * theirs.len(), "{stray_got:?}");
    assert_eq!(
        stray_got.iter().map(|r| r.order_id).collect::<HashSet<_>>(),
        ids(&theirs)
    );
    let listened = read_for(&mut listener, Duration::from_millis(200));
    assert!(
        listened.is_empty(),
        "the listening stray got {} bytes",
        listened.len()
    );

    let stats = engine.stats(WAIT).expect("stats");
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.protocol_errors, 0);
    assert_eq!(stats.reports_dropped, 0);
}

#[test]
fn same_session_reconnecting_gets_its_held_reports_whoever_came_between() {
    let server = Server::start(venue(150));
    let session = 0x0123_4567_89ab_cdef;
    let mine = orders(0, 8);
    let mut first = SimClient::connect_session("sim", server.addr, session, WAIT).expect("connect");
    first.submit(&mine, now(), &mut |r| panic!("nothing is due yet: {r:?}"));
    first.stats(WAIT).expect("the server has read the orders");
    drop(first);

    // Others come and go while the reports come due with no connection of the session.
    let mut other = SimClient::connect_session("sim", server.addr, 99, WAIT).expect("connect");
    let mut stray = raw_hello(server.addr, 98);
    std::thread::sleep(Duration::from_millis(300));
    let mut none = Vec::new();
    other.poll(now(), &mut |r| none.push(r));
    assert!(none.is_empty(), "{none:?}");
    assert!(read_for(&mut stray, Duration::from_millis(50)).is_empty());
    drop(stray);
    drop(other);

    let mut again = SimClient::connect_session("sim", server.addr, session, WAIT).expect("connect");
    let mut got = Vec::new();
    poll_until(&mut again, &mut got, "the held reports", |_, got| {
        got.len() >= 2 * mine.len()
    });
    assert_eq!(got.len(), 2 * mine.len());
    assert_eq!(
        got.iter().map(|r| r.order_id).collect::<HashSet<_>>(),
        ids(&mine)
    );
    let stats = again.stats(WAIT).expect("stats");
    assert_eq!(stats.reports_dropped, 0);
    drop(again);
    let served = server.stop();
    assert_eq!(served.venue.reports_sent, 2 * mine.len() as u64);
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    let server = Server::start(venue(0));
    let mut engine = client(server.addr);
    let strays: Vec<TcpStream> = (1..CONNECTIONS_MAX as u64)
        .map(|n| raw_hello(server.addr, 1_000 + n))
        .collect();
    // A round trip after the strays connected: every place is taken.
    let deadline = Instant::now() + WAIT;
    while engine.stats(WAIT).expect("stats").connections < CONNECTIONS_MAX as u64 {
        assert!(Instant::now() < deadline, "the strays were not accepted");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut extra = raw_hello(server.addr, 5_000);
    assert!(closed_by_server(&mut extra), "one over the limit is closed");
    let stats = engine.stats(WAIT).expect("stats");
    assert_eq!(stats.connections_refused, 1);
    assert_eq!(stats.connections, CONNECTIONS_MAX as u64);

    // The engine trades on; a place freed is taken again.
    let mut got = Vec::new();
    engine.submit(&orders(0, 5), now(), &mut |r| got.push(r));
    poll_until(&mut engine, &mut got, "reports", |c, _| c.in_flight() == 0);
    assert_eq!(got.len(), 10);
    drop(strays);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut late = raw_hello(server.addr, 6_000);
        let mut ping = Vec::new();
        ClientMsg::Ping { nonce: 77 }
            .encode(&mut ping)
            .expect("encodable");
        // A refused connection may already be closed.
        let _ = late.write_all(&ping);
        let answer = read_for(&mut late, Duration::from_millis(100));
        if let Ok(Some((msg, _))) = decode_server(&answer) {
            assert_eq!(msg, ServerMsg::Pong { nonce: 77 });
            break;
        }
        assert!(Instant::now() < deadline, "no place freed");
    }
}

#[test]
fn ping_before_hello_or_malformed_closes_only_that_connection() {
    let server = Server::start(venue(0));
    let mut engine = client(server.addr);
    let ping = |nonce: u64| {
        let mut b = Vec::new();
        ClientMsg::Ping { nonce }.encode(&mut b).expect("encodable");
        b
    };
    // Before Hello.
    let mut early = TcpStream::connect(server.addr).expect("connect");
    early.write_all(&ping(1)).expect("write");
    assert!(closed_by_server(&mut early));
    // A nonce one byte short, and one byte too long.
    for body in [
        &[0x06u8, 1, 2, 3, 4, 5, 6, 7][..],
        &[0x06, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    ] {
        let mut s = raw_hello(server.addr, 42);
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(body);
        s.write_all(&frame).expect("write");
        assert!(closed_by_server(&mut s));
    }
    // A good one is answered with its nonce.
    let mut good = raw_hello(server.addr, 43);
    good.write_all(&ping(0xfeed)).expect("write");
    let answer = read_for(&mut good, Duration::from_millis(200));
    assert_eq!(
        decode_server(&answer).expect("valid"),
        Some((ServerMsg::Pong { nonce: 0xfeed }, answer.len()))
    );

    let mut got = Vec::new();
    engine.submit(&orders(0, 3), now(), &mut |r| got.push(r));
    poll_until(&mut engine, &mut got, "reports", |c, _| c.in_flight() == 0);
    assert!(engine.is_up());
    assert_eq!(engine.client_stats().disconnects, 0);
    let stats = engine.stats(WAIT).expect("stats");
    assert_eq!(stats.protocol_errors, 3);
}

// ---------------------------------------------------------------------------------
// The client: down, loud, healed

#[test]
fn venue_replaced_on_same_port_client_reconnects_and_settles_in_flight_orders() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Reports due long after the venue is gone.
    let old_venue = Server::on(listener, venue(60_000));
    let mut engine = client(addr);
    let session = engine.session();
    let sent = orders(0, 6);
    engine.submit(&sent, now(), &mut |r| panic!("nothing is due yet: {r:?}"));
    assert_eq!(engine.stats(WAIT).expect("stats").orders_received, 6);
    old_venue.stop();

    // Down, and says why.
    let mut got = Vec::new();
    poll_until(&mut engine, &mut got, "down", |c, _| !c.is_up());
    assert!(got.is_empty());
    let why = engine.down_reason().expect("a reason");
    assert!(why.contains("closed the connection"), "{why}");
    assert_eq!(engine.client_stats().disconnects, 1);

    // While down, orders are rejected at once and never leave.
    let while_down = orders(100, 2);
    assert!(engine.can_accept(while_down.len()));
    let mut rejected = Vec::new();
    engine.submit(&while_down, now(), &mut |r| rejected.push(r));
    assert_eq!(rejected.len(), 2);
    rejected.iter().for_each(assert_venue_down);
    assert_eq!(
        rejected.iter().map(|r| r.order_id).collect::<HashSet<_>>(),
        ids(&while_down)
    );
    assert_eq!(engine.client_stats().rejected_locally, 2);
    assert_eq!(
        engine.in_flight(),
        6,
        "the outcome of those sent is unknown"
    );

    // Nothing listens: the attempts are refused, and it says so.
    poll_until(&mut engine, &mut got, "a refused attempt", |c, _| {
        c.client_stats().connect_failures >= 2
    });
    assert!(!engine.is_up());
    let why = engine.down_reason().expect("a reason");
    assert_eq!(why, format!("connection refused by {addr}"));

    // A new venue process on the same port: connects by itself, under its session,
    // and learns that the new venue never got the orders in flight.
    let new_venue = Server::on(
        TcpListener::bind(addr).expect("bind the same port"),
        venue(0),
    );
    let polls = poll_until(&mut engine, &mut got, "up again", |c, _| c.is_up());
    assert!(polls < 5_000, "{polls} polls");
    assert_eq!(engine.session(), session);
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(got.len(), sent.len(), "{got:?}");
    for r in &got {
        assert_eq!(
            (r.kind, r.reject),
            (ExecKind::Rejected, RejectReason::UnknownOrder)
        );
    }
    assert_eq!(
        got.iter().map(|r| r.order_id).collect::<HashSet<_>>(),
        ids(&sent)
    );
    assert!(engine.down_reason().is_none());
    let stats = engine.client_stats();
    assert_eq!(
        (stats.reconnects, stats.settled, stats.disconnects),
        (1, 6, 1)
    );

    // And trades again.
    let mut after = Vec::new();
    engine.submit(&orders(200, 2), now(), &mut |r| after.push(r));
    poll_until(&mut engine, &mut after, "new orders", |c, _| {
        c.in_flight() == 0
    });
    assert_eq!(after.iter().filter(|r| r.kind == ExecKind::Fill).count(), 2);
    let served = engine.stats(WAIT).expect("stats");
    assert_eq!(
        served.orders_received, 2,
        "neither the old nor the rejected orders"
    );
    drop(engine);
    new_venue.stop();
}

#[test]
fn stalled_venue_is_declared_down_and_recovered() {
    let cfg = SimVenueConfig {
        latency_us: 100_000,
        partial_fill_ppm: 400_000,
        reject_ppm: 0,
        transient_failure_ppm: 0,
        seed: 3,
        ..SimVenueConfig::default()
    };
    let server = Pausable::start(SimVenue::new("sim", &cfg, vec![btcusdt()]));
    let mut engine = client(server.addr);
    let read_before = orders(0, 10);
    engine.submit(&read_before, now(), &mut |r| {
        panic!("nothing is due yet: {r:?}")
    });
    assert_eq!(engine.stats(WAIT).expect("stats").orders_received, 10);

    // The venue stops answering (as a SIGSTOPped process): orders sent now wait in
    // its socket, unread.
    server.pause();
    let paused_at = Instant::now();
    let unread = orders(100, 10);
    let mut got = Vec::new();
    engine.submit(&unread, now(), &mut |r| got.push(r));
    assert!(got.is_empty());
    poll_until(&mut engine, &mut got, "declared down", |c, _| !c.is_up());
    assert!(
        paused_at.elapsed() >= DOWN_AFTER,
        "{:?}",
        paused_at.elapsed()
    );
    assert_eq!(
        engine.down_reason().as_deref(),
        Some("no reply for 0.4 s (venue stalled?)")
    );
    assert_eq!(engine.client_stats().stalls, 1);
    assert_eq!(engine.in_flight(), 20);
    let mut rejected = Vec::new();
    engine.submit(&orders(300, 1), now(), &mut |r| rejected.push(r));
    rejected.iter().for_each(assert_venue_down);

    // Its attempts while the venue is stopped connect (the kernel accepts) and
    // stall in turn; it stays down.
    let stalls = engine.client_stats().stalls;
    poll_until(&mut engine, &mut got, "a stalled attempt", |c, _| {
        c.client_stats().stalls > stalls
    });
    assert!(!engine.is_up());

    server.resume();
    poll_until(&mut engine, &mut got, "up again", |c, _| c.is_up());
    assert_eq!(engine.in_flight(), 0);
    // Reports still due may follow the answers; take them too.
    std::thread::sleep(Duration::from_millis(300));
    engine.poll(now(), &mut |r| got.push(r));

    // What the client delivered, fills counted once per trade id, is what the venue
    // did with every order: both those it had read and those it read on resuming.
    let all: Vec<FollowerOrder> = read_before.iter().chain(&unread).copied().collect();
    let history = engine
        .query(&all.iter().map(|o| o.id).collect::<Vec<_>>(), WAIT)
        .expect("query");
    let mut fills: HashMap<u64, ExecReport> = HashMap::new();
    for r in got.iter().filter(|r| r.kind == ExecKind::Fill) {
        let first = *fills.entry(r.trade_id).or_insert(*r);
        assert_eq!(
            (first.order_id, first.qty, first.price),
            (r.order_id, r.qty, r.price)
        );
    }
    for (o, answer) in all.iter().zip(&history) {
        let QueryAnswer::Known(h) = answer else {
            panic!("the venue never got order {}", o.id)
        };
        assert!(h.is_done());
        let delivered: HashSet<u64> = fills
            .values()
            .filter(|f| f.order_id == o.id)
            .map(|f| f.trade_id)
            .collect();
        let made: HashSet<u64> = h.fills.iter().map(|f| f.trade_id).collect();
        assert_eq!(delivered, made, "order {}", o.id);
        if let Some(end) = h.end {
            assert!(
                got.iter()
                    .any(|r| r.order_id == o.id && r.kind == end.kind && r.qty == end.qty),
                "order {}: its end",
                o.id
            );
        }
        assert!(
            !got.iter()
                .any(|r| r.order_id == o.id && r.reject == RejectReason::UnknownOrder),
            "order {} was received",
            o.id
        );
    }
    assert!(fills
        .values()
        .all(|f| all.iter().any(|o| o.id == f.order_id)));
    let stats = engine.client_stats();
    assert!(stats.reconnects >= 1 && stats.stalls >= 2, "{stats:?}");
    drop(engine);
    let served = server.stop();
    assert_eq!(served.venue.orders_received, 20);
    assert_eq!(served.venue.duplicate_client_ids, 0);
}

#[test]
fn a_venue_that_never_answers_pings_is_declared_down() {
    // Accepts connections and never answers.
    let mute = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = mute.local_addr().expect("addr");
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in mute.incoming().take(1) {
            held.push(s);
        }
        held
    });
    let mut engine = client(addr);
    let started = Instant::now();
    let mut got = Vec::new();
    // Idle: no order in flight, only its own pings to wait for.
    poll_until(&mut engine, &mut got, "declared down", |c, _| !c.is_up());
    assert!(started.elapsed() >= DOWN_AFTER);
    assert_eq!(engine.client_stats().stalls, 1);
    assert!(got.is_empty());
    drop(engine);
    drop(holder.join().expect("accept thread"));
}

#[test]
fn an_idle_client_and_one_polled_late_stay_up() {
    let server = Server::start(venue(0));
    let mut engine = client(server.addr);
    let mut got = Vec::new();
    // Idle for several `down_after`s: its pings are answered.
    let until = Instant::now() + DOWN_AFTER * 3;
    poll_until(&mut engine, &mut got, "idle", |c, _| {
        assert!(c.is_up(), "{:?}", c.down_reason());
        Instant::now() >= until
    });
    // Orders in flight, then no poll for longer than `down_after`: the reports are
    // in the socket, not late.
    engine.submit(&orders(0, 4), now(), &mut |r| got.push(r));
    std::thread::sleep(DOWN_AFTER * 2);
    engine.poll(now(), &mut |r| got.push(r));
    assert!(engine.is_up(), "{:?}", engine.down_reason());
    assert_eq!(engine.in_flight(), 0);
    // Idle and not polled either.
    std::thread::sleep(DOWN_AFTER * 2);
    engine.poll(now(), &mut |r| got.push(r));
    assert!(engine.is_up(), "{:?}", engine.down_reason());
    let stats = engine.client_stats();
    assert_eq!((stats.stalls, stats.disconnects), (0, 0));
    assert_eq!(got.len(), 8);
}

#[test]
fn a_malformed_pong_puts_the_link_down() {
    // A fake venue: reads the Hello, then answers the first Ping with a Pong one byte
    // short.
    let fake = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = fake.local_addr().expect("addr");
    let venue = std::thread::spawn(move || {
        let (mut s, _) = fake.accept().expect("accept");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        // Hello (4 + 1 + 10 bytes), then a Ping (4 + 1 + 8).
        let mut buf = [0u8; 15 + 13];
        s.read_exact(&mut buf).expect("hello and ping");
        assert_eq!((buf[4], buf[19]), (0x01, 0x06));
        let mut short = 8u32.to_le_bytes().to_vec();
        short.push(0x85);
        short.extend_from_slice(&buf[20..27]);
        s.write_all(&short).expect("write");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let mut engine = client(addr);
    let mut got = Vec::new();
    poll_until(&mut engine, &mut got, "down", |c, _| !c.is_up());
    let why = engine.down_reason().expect("a reason");
    assert!(why.contains("bad frame") && why.contains("0x85"), "{why}");
    let stats = engine.client_stats();
    assert_eq!((stats.protocol_errors, stats.stalls), (1, 0));
    drop(engine);
    venue.join().expect("fake venue");
}
