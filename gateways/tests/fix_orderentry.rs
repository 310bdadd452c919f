//! The FIX order-entry gateway (`fix::orderentry::OrderEntryGateway`) against a
//! hand-written acceptor on loopback (`Venue`), which misbehaves exactly as
//! each case needs: a venue that rejects at the session level, fills at a price
//! the engine cannot read, gap-fills what it sent while the link was down,
//! refuses status requests, never fills a gap, resends an answer of an earlier
//! life; and the restart and config paths that lead into the gateway.
//!
//! The venue runs its script on a thread; the test thread drives the gateway as
//! the engine's I/O thread does (`poll`, `submit`, `recover`). No assertion is
//! about time: `pump` waits for a condition, at most `WAIT`, and the
//! assertions after it say what must hold.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fillcast_engine::clock;
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType, RejectReason};
use fillcast_engine::model::{Side, Universe};
use fillcast_engine::port::{AskedOrder, Gateway};
use fillcast_engine::units::{Lots, Ticks};
use fillcast_gateways::fix::app::{ClOrdId, ReduceOnly};
use fillcast_gateways::fix::conn::Peer;
use fillcast_gateways::fix::orderentry::{OrderEntryConfig, OrderEntryGateway};
use fillcast_gateways::fix::session::SessionConfig;
use fillcast_gateways::fix::{Decoder, Encoder, Header, Limits};

/// The longest any step waits for the other side.
const WAIT: Duration = Duration::from_secs(10);

/// A message as the venue read it: its fields in order.
#[derive(Clone, Debug)]
struct Msg(Vec<(u32, String)>);

impl Msg {
    fn get(&self, tag: u32) -> Option<&str> {
        self.0
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_str())
    }

    fn ty(&self) -> &str {
        self.get(35).unwrap_or("")
    }

    fn seq(&self) -> u64 {
        self.get(34).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// The venue's side of the session: one accepted connection at a time, its own
/// MsgSeqNum, what it read and has not been asked for yet.
struct Venue {
    listener: TcpListener,
    sock: Option<TcpStream>,
    inbox: Vec<u8>,
    unread: VecDeque<Msg>,
    next_out: u64,
}

impl Venue {
    fn bind() -> Venue {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        Venue {
            listener,
            sock: None,
            inbox: Vec::new(),
            unread: VecDeque::new(),
            next_out: 1,
        }
    }

    fn address(&self) -> String {
        self.listener.local_addr().unwrap().to_string()
    }

    /// Waits for the gateway to connect.
    fn accept(&mut self) {
        let until = Instant::now() + WAIT;
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    self.sock = Some(s);
                    self.inbox.clear();
                    self.unread.clear();
                    return;
                }
                Err(e) if e.kind() == IoKind::WouldBlock => {
                    assert!(Instant::now() < until, "the gateway never connected");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// The next message of type `ty` the gateway sent (in the order sent).
    fn expect(&mut self, ty: &str) -> Msg {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.unread.iter().position(|m| m.ty() == ty) {
                return self.unread.remove(i).unwrap();
            }
            assert!(
                Instant::now() < until,
                "no 35={ty} from the gateway; unread: {:?}",
                self.unread
            );
            let mut chunk = [0u8; 4096];
            let sock = self.sock.as_mut().expect("connected");
            match sock.read(&mut chunk) {
                Ok(0) => panic!("the gateway closed the connection; the venue waited for 35={ty}"),
                Ok(n) => self.inbox.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
            let mut dec = Decoder::new(Limits::default());
            loop {
                let (msg, used) = match dec.next(&self.inbox) {
                    Ok(Some((m, used))) => (
                        Msg(m
                            .fields()
                            .map(|(t, v)| (t, String::from_utf8_lossy(v).into_owned()))
                            .collect()),
                        used,
                    ),
                    Ok(None) => break,
                    Err(e) => panic!("the gateway wrote bytes that do not decode: {e}"),
                };
                self.inbox.drain(..used);
                self.unread.push_back(msg);
            }
        }
    }

    /// Sends `ty` as MsgSeqNum `seq` with `fields` after the header.
    fn send_as<S: AsRef<str>>(&mut self, ty: &str, seq: u64, fields: &[(u32, S)]) {
        let enc = Encoder::new(Limits::default());
        let mut bytes = Vec::new();
        let mut w = enc
            .begin(
                &mut bytes,
                &Header {
                    msg_type: ty.as_bytes(),
                    sender_comp_id: b"VENUE",
                    target_comp_id: b"FILLCAST",
                    msg_seq_num: seq,
                    sending_time: clock::now(),
                },
            )
            .unwrap();
        for (t, v) in fields {
            w.str(*t, v.as_ref()).unwrap();
        }
        w.finish();
        self.sock
            .as_mut()
            .expect("connected")
            .write_all(&bytes)
            .expect("the gateway is there");
    }

    /// Sends `ty` with the venue's next MsgSeqNum; returns it.
    fn send<S: AsRef<str>>(&mut self, ty: &str, fields: &[(u32, S)]) -> u64 {
        let seq = self.next_out;
        self.next_out += 1;
        self.send_as(ty, seq, fields);
        seq
    }

    /// Takes the gateway's Logon and answers it.
    fn logon(&mut self) {
        self.expect("A");
        self.send("A", &[(98, "0"), (108, "30")]);
    }

    /// Closes the connection (a venue outage).
    fn hang_up(&mut self) {
        if let Some(s) = self.sock.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Runs `script` on its own thread with a venue; the gateway connects to the
/// address returned. The venue keeps its connection until `done` is dropped.
fn venue(
    script: impl FnOnce(&mut Venue, &Sender<String>, &Receiver<()>) + Send + 'static,
) -> (String, Receiver<String>, Sender<()>) {
    let mut v = Venue::bind();
    let address = v.address();
    let (said_tx, said) = channel();
    let (go, go_rx) = channel();
    std::thread::spawn(move || {
        script(&mut v, &said_tx, &go_rx);
        // Holds the connection open until the test ends.
        let _ = go_rx.recv_timeout(WAIT * 3);
    });
    (address, said, go)
}

/// Fields of an ExecutionReport about order `id` on BTCUSDT (bought 0.5 at
/// 65000.5), with `extra` after them.
fn exec(
    id: u64,
    exec_id: &str,
    exec_type: &str,
    ord_status: &str,
    extra: &[(u32, &str)],
) -> Vec<(u32, String)> {
    let mut f: Vec<(u32, String)> = vec![
        (37, format!("V{id:x}")),
        (11, ClOrdId::of(id).as_str().to_string()),
        (17, exec_id.to_string()),
        (150, exec_type.to_string()),
        (39, ord_status.to_string()),
        (55, "BTCUSDT".into()),
        (54, "1".into()),
        (38, "0.5".into()),
        (60, "20240102-03:04:05.678".into()),
    ];
    f.extend(extra.iter().map(|(t, v)| (*t, v.to_string())));
    f
}

/// `f` as resent: PossDupFlag and OrigSendingTime.
fn resent(mut f: Vec<(u32, String)>) -> Vec<(u32, String)> {
    f.push((43, "Y".into()));
    f.push((122, "20240102-03:04:05.678".into()));
    f
}

/// The venue's side of an unclean restart: our Logon answered as its message
/// `logon_seq`, and our ResendRequest must ask from 1.
fn logon_asking_from_1(v: &mut Venue, logon_seq: u64) {
    v.accept();
    v.expect("A");
    v.send_as("A", logon_seq, &[(98, "0"), (108, "30")]);
    let rr = v.expect("2");
    assert_eq!(rr.get(7), Some("1"), "an unclean restart asks from 1");
}

/// A full fill of order `id` at `px`.
fn fill(id: u64, exec_id: &str, px: &str) -> Vec<(u32, String)> {
    exec(
        id,
        exec_id,
        "F",
        "2",
        &[(32, "0.5"), (31, px), (14, "0.5"), (151, "0"), (6, px)],
    )
}

/// An order of the marker, never sent: its fill is handed on (the engine counts
/// it as unknown) and shows that everything the venue sent before it was read.
const MARKER: u64 = (1 << 32) | 0xfeed;

fn marker_seen(reports: &[ExecReport]) -> bool {
    reports
        .iter()
        .any(|r| r.order_id == MARKER && r.kind == ExecKind::Fill)
}

fn order(u: &Universe, n: u64, follower: &str) -> FollowerOrder {
    FollowerOrder {
        id: (1 << 32) | n,
        follower: u.follower(follower).unwrap(),
        symbol: u.symbol("BTCUSDT").unwrap(),
        side: Side::Buy,
        qty: Lots(500),
        order_type: OrderType::LimitIoc,
        limit: Ticks(650_005),
        ts: clock::now(),
        ..FollowerOrder::default()
    }
}

fn config(address: String, store: PathBuf) -> OrderEntryConfig {
    OrderEntryConfig {
        name: "fix-oe".into(),
        peer: Peer {
            address,
            sender_comp_id: "FILLCAST".into(),
            target_comp_id: "VENUE".into(),
            session: SessionConfig {
                heartbeat_s: 30,
                ..SessionConfig::default()
            },
        },
        accounts: HashMap::new(),
        reduce_only: ReduceOnly::ExecInstDoNotIncrease,
        store,
        unclean: false,
        rate_per_sec: None,
        reject_codes: HashMap::new(),
        recover_timeout: WAIT,
    }
}

/// A session store in `dir` from a life before, which sent 49 messages and
/// expects `next_in`; its path.
fn stored(dir: &std::path::Path, next_in: u64) -> PathBuf {
    let store = dir.join("oe.seqs");
    std::fs::write(
        &store,
        format!("fillcast-fix-seqs v1 next_out=50 next_in={next_in}\n"),
    )
    .unwrap();
    store
}

/// `config` after an unclean stop.
fn unclean(address: String, store: PathBuf) -> OrderEntryConfig {
    OrderEntryConfig {
        unclean: true,
        ..config(address, store)
    }
}

/// Polls the gateway (as the I/O thread does) until `done` holds: whether it
/// did within `WAIT`.
fn pump(
    gw: &mut OrderEntryGateway,
    reports: &mut Vec<ExecReport>,
    mut done: impl FnMut(&OrderEntryGateway, &[ExecReport]) -> bool,
) -> bool {
    let until = Instant::now() + WAIT;
    loop {
        gw.poll(clock::now(), &mut |r| reports.push(r));
        if done(gw, reports) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn of(reports: &[ExecReport], id: u64) -> Vec<(ExecKind, RejectReason)> {
    reports
        .iter()
        .filter(|r| r.order_id == id)
        .map(|r| (r.kind, r.reject))
        .collect()
}

/// A session-level Reject (35=3) of a NewOrderSingle (a field the venue does not
/// take, say ExecInst) is refused before it was an order: the module doc says
/// the gateway ends the order `Rejected` when a Reject names its MsgSeqNum. The
/// session layer handles 35=3 itself and never hands it on, so the order stays
/// in flight for ever: the engine counts its lots as working and never
/// re-sends, and the gateway stays up.
#[test]
fn regression_a_session_reject_of_an_order_never_reaches_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let u = crate::common::universe();
    let (o1, o2) = (order(&u, 1, "F1"), order(&u, 2, "F1"));
    let (address, _said, _done) = venue(move |v, _, _| {
        v.accept();
        v.logon();
        let d1 = v.expect("D");
        let d2 = v.expect("D");
        v.send(
            "3",
            &[
                (45, d1.seq().to_string()),
                (372, "D".into()),
                (373, "5".into()),
                (58, "ExecInst (18) is not supported".into()),
            ],
        );
        v.send("8", &fill(o2.id, "E-O2", "65000.5"));
        assert_eq!(d2.get(11), Some(ClOrdId::of(o2.id).as_str()));
    });
    let mut gw = OrderEntryGateway::open(config(address, dir.path().join("oe.seqs")), u.clone())
        .expect("store");
    let mut reports = Vec::new();
    assert!(pump(&mut gw, &mut reports, |g, _| g.is_up()), "logon");
    gw.submit(&[o1, o2], clock::now(), &mut |r| reports.push(r));
    assert!(
        pump(&mut gw, &mut reports, |_, r| of(r, o2.id)
            .contains(&(ExecKind::Fill, RejectReason::None))),
        "o2's fill, sent after the Reject of o1: {reports:?}"
    );
    assert!(
        of(&reports, o1.id)
            .iter()
            .any(|(k, _)| *k == ExecKind::Rejected),
        "the venue rejected o1's NewOrderSingle (35=3 naming its MsgSeqNum); the engine got {:?} and the gateway still holds {} order(s) in flight",
        of(&reports, o1.id),
        gw.in_flight()
    );
    assert_eq!(gw.in_flight(), 0);
}

/// A fill the gateway cannot read (here LastPx off the symbol's 0.1 tick, as a
/// mid-point fill would be; also a trade bust, ExecType H, a LastQty off the lot,
/// an OrdRejReason past u32) is dropped without a word: no report, no count, no
/// log, the gateway stays up, and the order it ended stays in flight for ever.
/// The venue's position moved; the engine's never will.
#[test]
fn regression_a_fill_the_gateway_cannot_read_is_dropped_without_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let u = crate::common::universe();
    let (o1, o2) = (order(&u, 1, "F1"), order(&u, 2, "F1"));
    let (address, _said, _done) = venue(move |v, _, _| {
        v.accept();
        v.logon();
        v.expect("D");
        v.expect("D");
        v.send(
            "8",
            &exec(
                o1.id,
                "E-ACK",
                "0",
                "0",
                &[(14, "0"), (151, "0.5"), (6, "0")],
            ),
        );
        v.send("8", &fill(o1.id, "EXEC-OFF-TICK", "65000.55"));
        v.send("8", &fill(o2.id, "E-O2", "65000.5"));
    });
    let mut gw = OrderEntryGateway::open(config(address, dir.path().join("oe.seqs")), u.clone())
        .expect("store");
    let mut reports = Vec::new();
    assert!(pump(&mut gw, &mut reports, |g, _| g.is_up()), "logon");
    gw.submit(&[o1, o2], clock::now(), &mut |r| reports.push(r));
    assert!(
        pump(&mut gw, &mut reports, |_, r| of(r, o2.id)
            .contains(&(ExecKind::Fill, RejectReason::None))),
        "o2's fill, sent after o1's: {reports:?}"
    );
    let said = !gw.is_up()
        && gw
            .down_reason()
            .is_some_and(|why| why.contains("EXEC-OFF-TICK"));
    assert!(
        said,
        "the venue filled o1 (ExecID EXEC-OFF-TICK) and the engine was told nothing: reports for o1 {:?}, gateway up {}, down reason {:?}, in flight {}",
        of(&reports, o1.id),
        gw.is_up(),
        gw.down_reason(),
        gw.in_flight()
    );
}

/// After a reconnect the gateway trusts that the fills made while the link was
/// down "came through the resend", and ends the order on the status answer's
/// OrdStatus alone. A venue may answer the ResendRequest with a
/// SequenceReset-GapFill over its ExecutionReports (FIX allows it; many venues
/// do not resend executions), or reset its numbers on Logon: then the answer
/// "filled" (CumQty 0.5) ends the order with no fill at all, and the gateway is
/// up as if nothing was lost. The same happens at a restart (`recover`), and
/// after a journal cut the resent fills arrive before the engine holds the
/// order again, so it never learns the fill.
#[test]
fn regression_a_status_answer_of_filled_ends_the_order_without_its_fill() {
    let dir = tempfile::tempdir().unwrap();
    let u = crate::common::universe();
    let o1 = order(&u, 1, "F1");
    let (address, said, go) = venue(move |v, said, go| {
        v.accept();
        v.logon(); // venue 1
        v.expect("D");
        v.send(
            "8",
            &exec(
                o1.id,
                "E-ACK",
                "0",
                "0",
                &[(14, "0"), (151, "0.5"), (6, "0")],
            ),
        ); // 2
        go.recv_timeout(WAIT).expect("the test saw the ack");
        v.hang_up();
        // While the link is down the order fills: the venue's message 3.
        v.next_out += 1;
        v.accept();
        v.expect("A");
        v.send("A", &[(98, "0"), (108, "30")]); // 4: the gateway expects 3
        let rr = v.expect("2");
        assert_eq!(rr.get(7), Some("3"));
        let h = v.expect("H");
        assert_eq!(h.get(11), Some(ClOrdId::of(o1.id).as_str()));
        // Nothing to resend: a gap fill over 3 and 4.
        v.send_as(
            "4",
            3,
            &[
                (43, "Y"),
                (122, "20240102-03:04:05.678"),
                (123, "Y"),
                (36, "5"),
            ],
        );
        v.next_out = 5;
        v.send(
            "8",
            &exec(
                o1.id,
                "STATUS-1",
                "I",
                "2",
                &[(14, "0.5"), (151, "0"), (6, "65000.5")],
            ),
        );
        v.send("8", &fill(MARKER, "E-MARK", "65000.5"));
        said.send("answered".into()).unwrap();
    });
    let mut gw = OrderEntryGateway::open(config(address, dir.path().join("oe.seqs")), u.clone())
        .expect("store");
    let mut reports = Vec::new();
    assert!(pump(&mut gw, &mut reports, |g, _| g.is_up()), "logon");
    gw.submit(&[o1], clock::now(), &mut |r| reports.push(r));
    assert!(
        pump(&mut gw, &mut reports, |_, r| of(r, o1.id)
            .contains(&(ExecKind::Ack, RejectReason::None))),
        "o1's ack"
    );
    go.send(()).unwrap();
    assert!(
        pump(&mut gw, &mut reports, |g, _| !g.is_up()),
        "the hang-up"
    );
    // Up to the marker (after the answer), or as long as `WAIT` if the gateway
    // rightly stops short of it.
    pump(&mut gw, &mut reports, |_, r| marker_seen(r));
    let _ = said.try_recv();
    let filled = of(&reports, o1.id).contains(&(ExecKind::Fill, RejectReason::None));
    let said_so = !gw.is_up() && gw.down_reason().is_some();
    assert!(
        filled || said_so,
        "the venue says o1 is filled (CumQty 0.5); the engine got {:?} for it, and the gateway is up {} with {} in flight",
        of(&reports, o1.id),
        gw.is_up(),
        gw.in_flight()
    );
}

/// A venue that does not take OrderStatusRequest (35=H) answers it with a
/// BusinessMessageReject (35=j, RefSeqNum = the request's MsgSeqNum); or it
/// answers with an OrderCancelReject, or an ExecutionReport without ClOrdID. The
/// gateway waits for an answer for ever: it stays down (right), but never says
/// why: its reason is the stale one of the disconnect before ("the counterparty
/// closed the connection"), it never reconnects or asks again, and `recover`
/// waits out its whole timeout to say "1 answers missing".
#[test]
fn regression_a_rejected_status_request_leaves_the_gateway_down_with_a_stale_reason() {
    let dir = tempfile::tempdir().unwrap();
    let u = crate::common::universe();
    let o1 = order(&u, 1, "F1");
    let (address, _said, go) = venue(move |v, _, go| {
        v.accept();
        v.logon();
        v.expect("D");
        v.send(
            "8",
            &exec(
                o1.id,
                "E-ACK",
                "0",
                "0",
                &[(14, "0"), (151, "0.5"), (6, "0")],
            ),
        );
        go.recv_timeout(WAIT).expect("the test saw the ack");
        v.hang_up();
        v.accept();
        v.logon();
        let h = v.expect("H");
        v.send(
            "j",
            &[
                (45, h.seq().to_string()),
                (372, "H".into()),
                (380, "3".into()),
                (58, "Unsupported Message Type".into()),
            ],
        );
        v.send("8", &fill(MARKER, "E-MARK", "65000.5"));
    });
    let mut gw = OrderEntryGateway::open(config(address, dir.path().join("oe.seqs")), u.clone())
        .expect("store");
    let mut reports = Vec::new();
    assert!(pump(&mut gw, &mut reports, |g, _| g.is_up()), "logon");
    gw.submit(&[o1], clock::now(), &mut |r| reports.push(r));
    assert!(
        pump(&mut gw, &mut reports, |_, r| of(r, o1.id)
            .contains(&(ExecKind::Ack, RejectReason::None))),
        "o1's ack"
    );
    go.send(()).unwrap();
    assert!(
        pump(&mut gw, &mut reports, |g, _| !g.is_up()),
        "the hang-up"
    );
    assert!(
        pump(&mut gw, &mut reports, |_, r| marker_seen(r)),
        "the venue's messages after the reject"
    );
    assert!(
        !gw.is_up(),
        "o1's status is unknown: the gateway must not be up"
    );
    let why = gw.down_reason().unwrap_or_default();
    assert!(
        why.to_lowercase().contains("status"),
        "the venue refused the OrderStatusRequest for o1 (35=j, Unsupported Message Type) and the gateway, down for good, says: {why:?}"
    );
}

/// A venue that never fills a gap we asked for (but goes on sending heartbeats)
/// keeps the gateway not up for ever (`settled` waits for `catching_up`), and
/// nothing says why: `down_reason` stays `None`, so the engine logs "VENUE
/// DOWN: `fix-oe`: no reason given; ... reconnecting", and nothing reconnects:
/// there is no deadline on a resend.
#[test]
fn regression_a_gap_the_venue_never_fills_keeps_the_gateway_down_with_no_reason() {
    let dir = tempfile::tempdir().unwrap();
    let u = crate::common::universe();
    let (address, said, go) = venue(move |v, said, go| {
        v.accept();
        v.logon(); // 1
        go.recv_timeout(WAIT).expect("the gateway is up");
        v.next_out += 1; // 2 is lost
        v.send::<&str>("0", &[]); // 3
        let rr = v.expect("2");
        said.send(format!("asked from {:?}", rr.get(7))).unwrap();
    });
    let mut gw = OrderEntryGateway::open(config(address, dir.path().join("oe.seqs")), u.clone())
        .expect("store");
    let mut reports = Vec::new();
    assert!(pump(&mut gw, &mut reports, |g, _| g.is_up()), "logon");
    assert_eq!(gw.down_reason(), None);
    go.send(()).unwrap();
    let mut asked = None;
    assert!(
        pump(&mut gw, &mut reports, |_, _| {
            asked = asked.take().or_else(|| said.try_recv().ok());
            asked.is_some()
        }),
        "the gateway's ResendRequest"
    );
    // One more turn: the gateway has read all the venue sent.
    gw.poll(clock::now(), &mut |r| reports.push(r));
    assert!(!gw.is_up(), "catching up: not up");
    assert!(
        gw.down_reason().is_some(),
        "the gateway is not up ({asked:?}, never filled) and gives no reason"
    );
}

/// After an unclean stop the session asks the venue for everything it sent in
/// this session, and `recover` asks about the orders the journal holds
/// unanswered. The resend brings back answers to earlier questions too (an
/// order asked about after a journal cut, found unknown, then sent with the same
/// id and filled). The gateway takes the first ExecType I it sees about an order
/// it is asking about, PossDup and months old or not: here it says the filled
/// order is `UnknownOrder`, which `submit_asking_first` reads as "never
/// received" and sends again with the same ClOrdID, and the restart as "the
/// order never left" (the resync sends it again with a fresh id).
#[test]
fn regression_a_resent_status_answer_of_an_earlier_question_is_taken_as_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = stored(dir.path(), 5);
    let u = crate::common::universe();
    let o1 = order(&u, 1, "F1");
    let (address, _said, _done) = venue(move |v, _, _| {
        logon_asking_from_1(v, 5);
        // 1: the answer to a question of an earlier life (o1 unknown then).
        let old = exec(
            o1.id,
            "OLD-STATUS",
            "I",
            "8",
            &[(103, "5"), (14, "0"), (151, "0")],
        );
        v.send_as("8", 1, &resent(old));
        // 2, 3: then sent, acked and filled.
        let ack = exec(
            o1.id,
            "E-ACK",
            "0",
            "0",
            &[(14, "0"), (151, "0.5"), (6, "0")],
        );
        v.send_as("8", 2, &resent(ack));
        v.send_as("8", 3, &resent(fill(o1.id, "E-FILL", "65000.5")));
        // 4, 5 (our Logon) were administrative.
        v.send_as(
            "4",
            4,
            &[
                (43, "Y"),
                (122, "20240102-03:04:05.678"),
                (123, "Y"),
                (36, "6"),
            ],
        );
        v.next_out = 6;
        // The question comes once the resend is over.
        v.expect("H");
        // Today's answer.
        v.send(
            "8",
            &exec(
                o1.id,
                "STATUS-2",
                "I",
                "2",
                &[(14, "0.5"), (151, "0"), (6, "65000.5")],
            ),
        );
    });
    let cfg = unclean(address, store);
    let mut gw = OrderEntryGateway::open(cfg, u.clone()).expect("store");
    let mut recovered = Vec::new();
    gw.recover(&[AskedOrder::from(&o1)], &mut |r| recovered.push(r))
        .expect("the venue answered");
    assert!(
        of(&recovered, o1.id).contains(&(ExecKind::Fill, RejectReason::None)),
        "{recovered:?}"
    );
    assert!(
        !of(&recovered, o1.id).contains(&(ExecKind::Rejected, RejectReason::UnknownOrder)),
        "o1 was received and filled (today's answer: filled), yet recover says the venue never received it: {:?}",
        of(&recovered, o1.id)
    );
}

/// `run` builds the gateways with the config file's universe, then the journal's
/// restart calls `recover` with orders whose follower and symbol indices are the
/// journal's (arranged: a follower the file dropped keeps its place, marked
/// removed). The gateway indexes its own universe with them: with follower F1
/// dropped from the file, F2's unanswered order names index 1 of a one-follower
/// universe and `recover` panics (every restart, while the order is unanswered).
/// With the followers or symbols only reordered in the file it names the wrong
/// Account or Symbol instead, and a strict venue answers "unknown order" about an
/// order it holds.
#[test]
fn regression_a_restart_after_a_follower_left_the_config_panics_in_recover() {
    let dir = tempfile::tempdir().unwrap();
    let prev = crate::common::config();
    let mut file = prev.clone();
    file.followers.retain(|f| f.id != "F1");
    file.subscriptions.retain(|s| s.follower != "F1");
    let u_file = Arc::new(Universe::from_config(&file).expect("the file's model"));
    let arranged = file.arranged_after(&prev).expect("a follower may leave");
    let u_journal = Universe::from_config(&arranged).expect("the journal's model");
    let asked = AskedOrder {
        id: (1 << 32) | 7,
        follower: u_journal.follower_in_model("F2").expect("F2"),
        symbol: u_journal.symbol("BTCUSDT").unwrap(),
        side: Side::Buy,
        filled: Lots::ZERO,
    };
    let (address, said, _done) = venue(move |v, said, _| {
        v.accept();
        v.logon();
        let h = v.expect("H");
        said.send(h.get(1).unwrap_or("").to_string()).unwrap();
        let id = (1u64 << 32) | 7;
        v.send(
            "8",
            &exec(id, "S", "I", "8", &[(103, "5"), (14, "0"), (151, "0")]),
        );
    });
    // The restart tells the gateways the journal's model first (`Venues::
    // universe_changed`, as `restart::open` now does).
    let mut gw =
        OrderEntryGateway::open(config(address, dir.path().join("oe.seqs")), u_file.clone())
            .expect("store");
    gw.universe_changed(&Arc::new(u_journal));
    let mut recovered = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gw.recover(&[asked], &mut |r| recovered.push(r))
    }));
    assert!(
        r.is_ok(),
        "recover panicked on an order of F2 (journal follower index {})",
        asked.follower.0
    );
    assert_eq!(
        said.recv_timeout(WAIT).as_deref(),
        Ok("F2"),
        "the status request names F2's account"
    );
    // Not told: an order it cannot name fails the question (the restart stops,
    // saying why), and nothing panics.
    let (address, _said, _done) = venue(|v, _, _| {
        v.accept();
        v.logon();
    });
    let mut gw = OrderEntryGateway::open(config(address, dir.path().join("oe2.seqs")), u_file)
        .expect("store");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gw.recover(&[asked], &mut |_| {})
    }));
    let err = r.expect("no panic").expect_err("an order it cannot name");
    assert!(err.to_string().contains("does not know"), "{err}");
}

/// `check-config` accepts two FIX sessions with one session store: a `fix`
/// venue and a `fix` source with the same SenderCompID and TargetCompID (two
/// acceptors, so the pair may repeat) both default to `fix-A-B.seqs` in the
/// config's folder; two venues with the same `store` too. Each overwrites the
/// other's numbers, and after a restart one resumes at the other's: too low, the
/// venue logs it out at every logon; too high, it misses what it was sent.
#[test]
fn regression_check_config_accepts_two_fix_sessions_sharing_one_store() {
    use fillcast_engine::config::load_str_with;
    use fillcast_gateways::config::GatewayKinds;
    let text = r#"[[venues]]
name = "v"
kind = "fix"
address = "127.0.0.1:9878"
[venues.fix]
sender_comp_id = "A"
target_comp_id = "B"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "v"

[[sources]]
kind = "fix"
address = "127.0.0.1:9879"
sender_comp_id = "A"
target_comp_id = "B"
"#;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inline.toml");
    // With a store of its own, the source is fine: only the sharing is wrong.
    let apart = format!("{text}store = \"dc.seqs\"\n");
    load_str_with(&apart, &path, &GatewayKinds).expect("two stores load");
    let loaded = load_str_with(text, &path, &GatewayKinds);
    assert!(
        loaded.is_err(),
        "a fix venue and a fix source share the session store fix-A-B.seqs, and check-config accepts it"
    );
}

/// `check-config` accepts a venue's `store` in a folder that does not exist
/// (it checks a `file` source's path, not this one). `run` then starts with the
/// venue down for good: every logon is followed by a failed save, a hang-up and
/// a reconnect, and no order ever reaches the venue.
#[test]
fn regression_check_config_accepts_a_venue_store_in_a_folder_that_does_not_exist() {
    use fillcast_engine::config::load_str_with;
    use fillcast_gateways::config::GatewayKinds;
    let text = r#"[[venues]]
name = "v"
kind = "fix"
address = "127.0.0.1:9878"
[venues.fix]
sender_comp_id = "A"
target_comp_id = "B"
store = "no/such/folder/oe.seqs"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "v"
"#;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inline.toml");
    assert!(!path.parent().unwrap().join("no/such/folder").exists());
    // What `run` makes of it: a venue that is never up.
    let dir = tempfile::tempdir().unwrap();
    let (address, _said, _done) = venue(|v, _, _| {
        v.accept();
        v.logon();
    });
    let mut gw = OrderEntryGateway::open(
        config(address, dir.path().join("no/such/folder/oe.seqs")),
        crate::common::universe(),
    )
    .expect("a store that is not there yet opens");
    let mut reports = Vec::new();
    let up = pump(&mut gw, &mut reports, |g, _| {
        g.is_up() || g.down_reason().is_some_and(|w| w.contains("oe.seqs"))
    });
    assert!(
        up && !gw.is_up(),
        "the venue cannot keep its numbers: {:?}",
        gw.down_reason()
    );
    assert!(
        load_str_with(text, &path, &GatewayKinds).is_err(),
        "check-config accepts the store, and run says: {:?}",
        gw.down_reason()
    );
}

/// A session store that does not read stops the start (right) with advice the
/// operator cannot follow for a venue: "set reset_on_logon for this session",
/// which `[venues.fix]` refuses as an unknown key (there is none, on purpose).
/// The way out it should name (restore the file, or agree the numbers with the
/// venue and write them, or delete it with the venue's reset) is not there.
#[test]
fn regression_a_damaged_venue_store_advises_a_key_the_venue_config_refuses() {
    use fillcast_engine::config::load_str_with;
    use fillcast_gateways::config::GatewayKinds;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("oe.seqs");
    std::fs::write(&store, "fillcast-fix-seqs v1 next_out=1").unwrap();
    let why = match OrderEntryGateway::open(
        config("127.0.0.1:9".into(), store),
        crate::common::universe(),
    ) {
        Ok(_) => panic!("a store cut short opened"),
        Err(e) => e.to_string(),
    };
    let text = r#"[[venues]]
name = "v"
kind = "fix"
address = "127.0.0.1:9878"
[venues.fix]
sender_comp_id = "A"
target_comp_id = "B"
reset_on_logon = true

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "v"
"#;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inline.toml");
    load_str_with(
        &text.replace("reset_on_logon = true\n", ""),
        &path,
        &GatewayKinds,
    )
    .expect("the venue without the key loads");
    let refused = load_str_with(text, &path, &GatewayKinds).is_err();
    assert!(
        !(refused && why.contains("reset_on_logon")),
        "the error says {why:?}, but [venues.fix] refuses reset_on_logon"
    );
}

/// Found by the FIX crash test once the gateway checked CumQty: `run` logs the
/// gateway on (and the venue resends the whole session, after an unclean stop)
/// before the restart asks about the journal's unanswered orders, so an order's
/// fills were read, and handed on, while it was not yet in flight. The answer
/// "filled" then looked like fills the venue had not resent: a false alarm
/// that stopped every restart. The fills read before the question count, and go
/// to the engine again with the answer (it de-duplicates them).
#[test]
fn regression_fills_read_before_the_restart_asked_about_their_order_were_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = stored(dir.path(), 4);
    let u = crate::common::universe();
    let o1 = order(&u, 1, "F1");
    let (address, _said, _done) = venue(move |v, _, _| {
        logon_asking_from_1(v, 4);
        let ack = exec(o1.id, "E-ACK", "0", "0", &[(14, "0"), (151, "0.5")]);
        v.send_as("8", 1, &resent(ack));
        v.send_as("8", 2, &resent(fill(o1.id, "E-FILL", "65000.5")));
        v.send_as(
            "4",
            3,
            &[
                (43, "Y"),
                (122, "20240102-03:04:05.678"),
                (123, "Y"),
                (36, "5"),
            ],
        );
        v.next_out = 5;
        let h = v.expect("H");
        assert_eq!(h.get(11), Some(ClOrdId::of(o1.id).as_str()));
        v.send(
            "8",
            &exec(
                o1.id,
                "STATUS",
                "I",
                "2",
                &[(14, "0.5"), (151, "0"), (6, "65000.5")],
            ),
        );
    });
    let cfg = unclean(address, store);
    let mut gw = OrderEntryGateway::open(cfg, u.clone()).expect("store");
    // As `run` does before the journal is opened.
    assert!(gw.wait_up(WAIT), "{:?}", gw.down_reason());
    let mut before = Vec::new();
    gw.poll(clock::now(), &mut |r| before.push(r));
    assert!(
        of(&before, o1.id).contains(&(ExecKind::Fill, RejectReason::None)),
        "the resent fill is handed on at once: {before:?}"
    );
    let mut recovered = Vec::new();
    gw.recover(&[AskedOrder::from(&o1)], &mut |r| recovered.push(r))
        .unwrap_or_else(|e| panic!("a false alarm: {e}"));
    assert_eq!(
        of(&recovered, o1.id),
        vec![(ExecKind::Fill, RejectReason::None)],
        "the fill again, with the answer"
    );
    assert!(gw.is_up(), "{:?}", gw.down_reason());
}

/// After an unclean stop the venue resends the whole session; on a long one that
/// takes longer than `recover_timeout`. The wait ran from the question, so such
/// a restart failed every time (and the next start was unclean again). It runs
/// from the last message read: a resend that keeps coming is waited for, a
/// venue gone quiet is not.
#[test]
fn regression_a_long_resend_ran_out_the_restart_questions_timeout() {
    let dir = tempfile::tempdir().unwrap();
    const RESENT: u64 = 40;
    let store = stored(dir.path(), RESENT + 1);
    let u = crate::common::universe();
    let o1 = order(&u, 1, "F1");
    let other = order(&u, 2, "F2");
    let (address, _said, _done) = venue(move |v, _, _| {
        logon_asking_from_1(v, RESENT + 1);
        // The resend, slower in all than the question's timeout.
        for seq in 1..=RESENT {
            let ack = exec(other.id, &format!("A{seq}"), "0", "0", &[(14, "0")]);
            v.send_as("8", seq, &resent(ack));
            std::thread::sleep(Duration::from_millis(15));
        }
        // The Logon (RESENT + 1) was administrative.
        v.send_as(
            "4",
            RESENT + 1,
            &[
                (43, "Y"),
                (122, "20240102-03:04:05.678"),
                (123, "Y"),
                (36, &(RESENT + 2).to_string()),
            ],
        );
        v.next_out = RESENT + 2;
        v.expect("H");
        v.send(
            "8",
            &exec(o1.id, "S", "I", "8", &[(103, "5"), (14, "0"), (151, "0")]),
        );
    });
    let mut cfg = unclean(address, store);
    cfg.recover_timeout = Duration::from_millis(300);
    let mut gw = OrderEntryGateway::open(cfg, u.clone()).expect("store");
    let mut recovered = Vec::new();
    gw.recover(&[AskedOrder::from(&o1)], &mut |r| recovered.push(r))
        .unwrap_or_else(|e| panic!("a resend on its way ran the wait out: {e}"));
    assert_eq!(
        of(&recovered, o1.id),
        vec![(ExecKind::Rejected, RejectReason::UnknownOrder)]
    );
}
