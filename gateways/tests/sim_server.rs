//! The sim venue as a server: its wire protocol (round trips; truncated, oversized,
//! hostile and random frames), its order history, the server and `SimClient` over
//! real sockets on 127.0.0.1 (same reports as in process, reconnects, queries,
//! duplicate ids, positions, held reports); the process around it is tested with
//! the `fillcast` binary (`tests/sim_venue.rs` of the root crate).
//! Every wait is bounded by a deadline of a few seconds.

use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType, RejectReason};
use fillcast_engine::ids::decision_id;
use fillcast_engine::model::{FollowerIdx, Side, SubIdx, SymbolIdx, SymbolSpec, VenueIdx};
use fillcast_engine::port::{AskedOrder, Gateway, VenueError};
use fillcast_engine::units::{Lots, Money, Nanos, Ticks};
use fillcast_gateways::config::SimVenueConfig;
use fillcast_gateways::sim::{OrderHistory, QueryAnswer, SimVenue, SymbolTerms};
use fillcast_gateways::simclient::SimClient;
use fillcast_gateways::simserver::{serve, ServeStats};
use fillcast_gateways::simwire::{
    decode_client, decode_server, encode_orders, encode_positions, encode_query,
    encode_query_reply, ClientMsg, DecodeError, ServerMsg, VenuePosition, VenueStats,
    FILLS_PER_ANSWER_MAX, FRAME_BYTES_MAX, ORDERS_PER_FRAME_MAX, POSITIONS_PER_FRAME_MAX,
    PROTOCOL_VERSION, QUERY_IDS_MAX,
};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BTC: SymbolIdx = SymbolIdx(0);
/// 65,000.0 in BTCUSDT ticks of 0.1.
const BTC_PRICE: Ticks = Ticks(650_000);
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------
// Helpers

/// Orders by id alone, as the simulated venue answers them.
fn asked(ids: &[u64]) -> Vec<AskedOrder> {
    ids.iter()
        .map(|&id| AskedOrder {
            id,
            follower: FollowerIdx(0),
            symbol: SymbolIdx(0),
            side: Side::Buy,
            filled: Lots::ZERO,
        })
        .collect()
}

fn noisy(seed: u64) -> SimVenueConfig {
    SimVenueConfig {
        latency_us: 100,
        partial_fill_ppm: 300_000,
        reject_ppm: 100_000,
        transient_failure_ppm: 100_000,
        seed,
        ..SimVenueConfig::default()
    }
}

/// BTCUSDT: lot 0.001, tick 0.1, minimum notional 100 (money is in 1e-8 units, so
/// one lot × one tick is 0.0001 = 10,000 money units).
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

fn venue(cfg: &SimVenueConfig) -> SimVenue {
    SimVenue::new("sim", cfg, vec![btcusdt()])
}

fn order(n: u64, follower: u32, side: Side, qty: i64) -> FollowerOrder {
    FollowerOrder {
        id: decision_id(n, follower, 1, 0),
        sub: SubIdx(follower),
        follower: FollowerIdx(follower),
        symbol: BTC,
        side,
        qty: Lots(qty),
        order_type: OrderType::LimitIoc,
        limit: BTC_PRICE,
        reduce_only: false,
        leader_event_key: n,
        ts: Nanos(n),
        ..FollowerOrder::default()
    }
}

/// Both sides, several followers, sizes from 2 lots up; `first` offsets the ids.
fn orders(first: u64, count: u64) -> Vec<FollowerOrder> {
    (first..first + count)
        .map(|n| {
            let side = if n % 3 == 0 { Side::Sell } else { Side::Buy };
            let mut o = order(n, (n % 5) as u32, side, 2 + (n % 17) as i64 * 7);
            if n % 4 == 0 {
                o.order_type = OrderType::Market;
            }
            o
        })
        .collect()
}

/// A server on 127.0.0.1:0 in a thread; stopped and joined on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<std::io::Result<ServeStats>>>,
}

impl Server {
    fn start(venue: SimVenue) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
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

    fn stop(mut self) -> std::io::Result<ServeStats> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(t) => t.join().expect("server thread panicked"),
            None => Ok(ServeStats::default()),
        }
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

/// Submits `orders` in batches of 32 as `can_accept` allows, then polls until no
/// order is in flight. Panics after `WAIT`.
fn run_client(client: &mut SimClient, orders: &[FollowerOrder]) -> Vec<ExecReport> {
    let deadline = Instant::now() + WAIT;
    let mut reports = Vec::new();
    let mut batches = orders.chunks(32).peekable();
    while batches.peek().is_some() || client.in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "timed out: {} in flight, connected {}, {:?}",
            client.in_flight(),
            client.is_connected(),
            client.last_error()
        );
        if let Some(batch) = batches.peek() {
            if client.can_accept(batch.len()) {
                client.submit(batch, now(), &mut |r| reports.push(r));
                batches.next();
            }
        }
        if client.poll(now(), &mut |r| reports.push(r)) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    reports
}

/// Polls until `count` reports arrived. Panics after `WAIT`.
fn collect(client: &mut SimClient, count: usize) -> Vec<ExecReport> {
    let deadline = Instant::now() + WAIT;
    let mut reports = Vec::new();
    while reports.len() < count {
        assert!(
            Instant::now() < deadline,
            "got {} of {count}",
            reports.len()
        );
        if client.poll(now(), &mut |r| reports.push(r)) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    reports
}

fn now() -> Nanos {
    fillcast_engine::clock::now()
}

/// Runs `orders` through an in-process venue: batches of 32, polled to the end.
fn run_in_process(venue: &mut SimVenue, orders: &[FollowerOrder]) -> Vec<ExecReport> {
    let mut reports = Vec::new();
    let mut t = Nanos(1_000_000);
    for batch in orders.chunks(32) {
        venue.submit(batch, t, &mut |r| reports.push(r));
        t = Nanos(t.0 + 10_000);
        venue.poll(t, &mut |r| reports.push(r));
    }
    venue.poll(Nanos(u64::MAX), &mut |r| reports.push(r));
    assert_eq!(venue.in_flight(), 0);
    reports
}

fn untimed(reports: &[ExecReport]) -> Vec<ExecReport> {
    reports
        .iter()
        .map(|r| ExecReport {
            venue_ts: Nanos(0),
            recv_ts: Nanos(0),
            ..*r
        })
        .collect()
}

/// Signed fills summed per (follower, symbol), zeros left out.
fn fill_sums(
    orders: &[FollowerOrder],
    reports: &[ExecReport],
) -> HashMap<(FollowerIdx, SymbolIdx), i64> {
    let who: HashMap<u64, &FollowerOrder> = orders.iter().map(|o| (o.id, o)).collect();
    let mut sums: HashMap<(FollowerIdx, SymbolIdx), i64> = HashMap::new();
    for r in reports.iter().filter(|r| r.kind == ExecKind::Fill) {
        let o = who[&r.order_id];
        *sums.entry((o.follower, o.symbol)).or_default() += o.side.sign() * r.qty.0;
    }
    sums.retain(|_, v| *v != 0);
    sums
}

fn as_map(positions: &[VenuePosition]) -> HashMap<(FollowerIdx, SymbolIdx), i64> {
    positions
        .iter()
        .map(|p| ((p.follower, p.symbol), p.lots.0))
        .collect()
}

/// The history an order's delivered reports describe.
fn history_from_reports(order: &FollowerOrder, reports: &[ExecReport]) -> OrderHistory {
    let mine: Vec<ExecReport> = reports
        .iter()
        .filter(|r| r.order_id == order.id)
        .map(|r| ExecReport {
            recv_ts: Nanos(0),
            ..*r
        })
        .collect();
    OrderHistory {
        order_id: order.id,
        qty: order.qty,
        side: order.side,
        symbol: order.symbol,
        limit: order.limit,
        acked: mine.iter().any(|r| r.kind == ExecKind::Ack),
        fills: mine
            .iter()
            .filter(|r| r.kind == ExecKind::Fill)
            .copied()
            .collect(),
        end: mine
            .iter()
            .find(|r| matches!(r.kind, ExecKind::Canceled | ExecKind::Rejected))
            .copied(),
    }
}

// ---------------------------------------------------------------------------------
// The venue's order history

#[test]
fn in_process_query_matches_the_reports() {
    let orders = orders(0, 600);
    let mut v = venue(&noisy(3));
    let reports = run_in_process(&mut v, &orders);
    let (mut filled, mut ended) = (0, 0);
    for o in &orders {
        let QueryAnswer::Known(h) = v.query(o.id) else {
            panic!("order {} unknown", o.id)
        };
        assert_eq!(h, history_from_reports(o, &reports));
        assert!(h.is_done());
        assert!(h.filled() <= o.qty);
        filled += (!h.fills.is_empty()) as u32;
        ended += h.end.is_some() as u32;
    }
    assert!(filled > 300 && ended > 100, "{filled} {ended}");
    assert_eq!(v.query(12345), QueryAnswer::Unknown { order_id: 12345 });
}

#[test]
fn history_is_known_before_reports_are_due() {
    let mut v = venue(&SimVenueConfig {
        latency_us: 1_000_000,
        ..SimVenueConfig::default()
    })
    .fill_all();
    let o = order(1, 0, Side::Buy, 5);
    v.submit(&[o], Nanos(0), &mut |_| panic!("nothing is due yet"));
    let QueryAnswer::Known(h) = v.query(o.id) else {
        panic!("unknown")
    };
    assert!(h.acked && h.end.is_none());
    assert_eq!(h.filled(), Lots(5));
    assert_eq!(h.fills[0].venue_ts, Nanos(1_000_000_000));
}

#[test]
fn history_window_forgets_the_oldest() {
    let mut v = venue(&SimVenueConfig::default())
        .fill_all()
        .with_dedup_window(4);
    let orders = orders(0, 6);
    run_in_process(&mut v, &orders);
    for o in &orders[..2] {
        assert_eq!(v.query(o.id), QueryAnswer::Unknown { order_id: o.id });
    }
    for o in &orders[2..] {
        assert!(matches!(v.query(o.id), QueryAnswer::Known(_)));
    }
    // A forgotten id is no longer a duplicate either (as before the history existed).
    run_in_process(&mut v, &orders[..1]);
    assert_eq!(v.duplicate_client_ids(), 0);
}

#[test]
fn queue_full_rejects_are_in_the_history() {
    let mut v = venue(&noisy(4)).with_queue_capacity(3);
    let orders = orders(0, 3);
    let mut immediate = Vec::new();
    v.submit(&orders, Nanos(10), &mut |r| immediate.push(r));
    assert_eq!(immediate.len(), 2);
    let QueryAnswer::Known(h) = v.query(orders[2].id) else {
        panic!("unknown")
    };
    let end = h.end.expect("ended");
    assert_eq!(
        (end.kind, end.reject),
        (ExecKind::Rejected, RejectReason::Transient)
    );
    assert!(!h.acked && h.fills.is_empty());
}

/// What `Gateway::recover` promises for orders whose reports were `reports`: every
/// fill and the end (if not a fill in full), without acks, in venue terms.
/// The venue's answer about `order`: its terms as received (a sell's quantity
/// negative), then every report it made but the ack.
fn expected_answer(order: &FollowerOrder, reports: &[ExecReport]) -> Vec<ExecReport> {
    let terms = ExecReport {
        order_id: order.id,
        kind: ExecKind::Restated,
        qty: Lots(order.side.sign() * order.qty.0),
        price: order.limit,
        trade_id: order.symbol.0 as u64,
        ..ExecReport::default()
    };
    std::iter::once(terms)
        .chain(
            reports
                .iter()
                .filter(|r| r.order_id == order.id && r.kind != ExecKind::Ack)
                .map(|r| ExecReport {
                    recv_ts: Nanos(0),
                    ..*r
                }),
        )
        .collect()
}

fn unknown(order_id: u64) -> ExecReport {
    ExecReport {
        order_id,
        kind: ExecKind::Rejected,
        reject: RejectReason::UnknownOrder,
        ..ExecReport::default()
    }
}

#[test]
fn in_process_answer_and_recover_give_the_fills_and_ends() {
    let orders = orders(0, 400);
    let mut v = venue(&noisy(5));
    let reports = run_in_process(&mut v, &orders);
    for o in &orders {
        assert_eq!(
            v.answer(o.id),
            expected_answer(o, &reports),
            "order {}",
            o.id
        );
    }
    assert_eq!(v.answer(77), vec![unknown(77)]);

    let mut ids: Vec<u64> = orders.iter().map(|o| o.id).collect();
    ids.insert(10, 77);
    let mut recovered = Vec::new();
    v.recover(&asked(&ids), &mut |r| recovered.push(r))
        .expect("recover");
    let mut expected: Vec<ExecReport> = orders
        .iter()
        .flat_map(|o| expected_answer(o, &reports))
        .collect();
    let at = orders[..10]
        .iter()
        .map(|o| expected_answer(o, &reports).len())
        .sum();
    expected.insert(at, unknown(77));
    assert_eq!(recovered, expected);
    // Each order ends in what was recovered: a fill in full, or an end.
    for o in &orders {
        let mine: Vec<_> = recovered.iter().filter(|r| r.order_id == o.id).collect();
        let filled: i64 = mine
            .iter()
            .filter(|r| r.kind == ExecKind::Fill)
            .map(|r| r.qty.0)
            .sum();
        let ended = mine.iter().any(|r| r.kind != ExecKind::Fill);
        assert!(
            filled == o.qty.0 || (ended && filled < o.qty.0),
            "order {}",
            o.id
        );
    }
}

#[test]
fn a_fresh_in_process_venue_knows_no_order() {
    let mut v = venue(&noisy(6));
    let ids = [1u64, 2, 3];
    let mut recovered = Vec::new();
    v.recover(&asked(&ids), &mut |r| recovered.push(r))
        .expect("recover");
    assert_eq!(recovered, ids.map(unknown).to_vec());
    assert_eq!(v.orders_received(), 0);
}

// ---------------------------------------------------------------------------------
// Wire protocol

fn any_order() -> impl Strategy<Value = FollowerOrder> {
    (
        (any::<u64>(), any::<u32>(), any::<u32>(), any::<u16>()),
        (any::<bool>(), any::<i64>(), any::<bool>(), any::<i64>()),
        (any::<bool>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |((id, sub, follower, symbol), (sell, qty, market, limit), (ro, lek, ts))| {
                FollowerOrder {
                    id,
                    sub: SubIdx(sub),
                    follower: FollowerIdx(follower),
                    symbol: SymbolIdx(symbol),
                    side: if sell { Side::Sell } else { Side::Buy },
                    qty: Lots(qty),
                    order_type: if market {
                        OrderType::Market
                    } else {
                        OrderType::LimitIoc
                    },
                    limit: Ticks(limit),
                    reduce_only: ro,
                    leader_event_key: lek,
                    ts: Nanos(ts),
                    ..FollowerOrder::default()
                }
            },
        )
}

const KINDS: [ExecKind; 5] = [
    ExecKind::Ack,
    ExecKind::Fill,
    ExecKind::Canceled,
    ExecKind::Rejected,
    ExecKind::Expired,
];
const REASONS: &[RejectReason] = <RejectReason as fillcast_engine::codes::Coded>::ALL;

fn any_report() -> impl Strategy<Value = ExecReport> {
    (
        (any::<u64>(), 0..KINDS.len(), any::<i64>(), any::<i64>()),
        (any::<u64>(), any::<i64>(), 0..REASONS.len()),
        (any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |((order_id, k, qty, price), (trade_id, fee, why), (venue_ts, recv_ts))| ExecReport {
                order_id,
                kind: KINDS[k],
                qty: Lots(qty),
                price: Ticks(price),
                trade_id,
                fee: Money(fee),
                reject: REASONS[why],
                venue_ts: Nanos(venue_ts),
                recv_ts: Nanos(recv_ts),
            },
        )
}

fn any_answer() -> impl Strategy<Value = QueryAnswer> {
    prop_oneof![
        any::<u64>().prop_map(|order_id| QueryAnswer::Unknown { order_id }),
        (
            any::<u64>(),
            // The side travels as the quantity's sign: any order the venue holds.
            1..=i64::MAX,
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(any_report(), 0..=FILLS_PER_ANSWER_MAX),
            prop::option::of(any_report()),
        )
            .prop_map(|(order_id, qty, sell, acked, fills, end)| {
                QueryAnswer::Known(OrderHistory {
                    order_id,
                    qty: Lots(qty),
                    side: if sell { Side::Sell } else { Side::Buy },
                    symbol: SymbolIdx((order_id % 7) as u16),
                    limit: Ticks(qty / 3),
                    acked,
                    fills,
                    end,
                })
            }),
    ]
}

fn any_client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        any::<u64>().prop_map(|session| ClientMsg::Hello { session }),
        prop::collection::vec(any_order(), 0..50).prop_map(ClientMsg::Orders),
        prop::collection::vec(any::<u64>(), 0..50).prop_map(ClientMsg::Query),
        Just(ClientMsg::Positions),
        Just(ClientMsg::Stats),
        any::<u64>().prop_map(|nonce| ClientMsg::Ping { nonce }),
        any::<u64>().prop_map(|since| ClientMsg::OrdersSince { since }),
        (0u16..60_000, prop::collection::vec(any_terms(), 0..50))
            .prop_map(|(first, terms)| ClientMsg::Symbols { first, terms }),
    ]
}

fn any_terms() -> impl Strategy<Value = SymbolTerms> {
    (1i64.., 0i64.., 1i64..).prop_map(|(min_qty, min_notional, mplt)| SymbolTerms {
        min_qty: Lots(min_qty),
        min_notional: Money(min_notional),
        money_per_lot_tick: mplt,
    })
}

fn any_server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        any_report().prop_map(ServerMsg::Report),
        prop::collection::vec(any_answer(), 0..20).prop_map(ServerMsg::QueryReply),
        (prop::collection::vec(any::<u64>(), 0..50), any::<bool>())
            .prop_map(|(ids, last)| ServerMsg::OrderIds { ids, last }),
        (
            prop::collection::vec(
                (any::<u32>(), any::<u16>(), any::<i64>()).prop_map(|(f, s, l)| {
                    VenuePosition {
                        follower: FollowerIdx(f),
                        symbol: SymbolIdx(s),
                        lots: Lots(l),
                    }
                }),
                0..50
            ),
            any::<bool>()
        )
            .prop_map(|(positions, last)| ServerMsg::PositionsReply { positions, last }),
        prop::array::uniform11(any::<u64>()).prop_map(|v| ServerMsg::Stats(VenueStats {
            orders_received: v[0],
            duplicate_client_ids: v[1],
            acks: v[2],
            fills: v[3],
            canceled: v[4],
            rejected: v[5],
            connections: v[6],
            connections_refused: v[7],
            protocol_errors: v[8],
            reports_sent: v[9],
            reports_dropped: v[10],
        })),
        any::<u64>().prop_map(|nonce| ServerMsg::Pong { nonce }),
    ]
}

fn encoded_client(msg: &ClientMsg) -> Vec<u8> {
    let mut buf = Vec::new();
    msg.encode(&mut buf).expect("encodable");
    buf
}

fn encoded_server(msg: &ServerMsg) -> Vec<u8> {
    let mut buf = Vec::new();
    msg.encode(&mut buf).expect("encodable");
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn client_frames_round_trip_and_every_prefix_is_incomplete(
        msgs in prop::collection::vec(any_client_msg(), 1..4)
    ) {
        let mut buf = Vec::new();
        for m in &msgs {
            m.encode(&mut buf).expect("encodable");
        }
        let mut at = 0;
        for m in &msgs {
            let (got, used) = decode_client(&buf[at..]).expect("valid").expect("complete");
            prop_assert_eq!(&got, m);
            for cut in 0..used {
                prop_assert_eq!(decode_client(&buf[at..at + cut]), Ok(None));
            }
            at += used;
        }
        prop_assert_eq!(at, buf.len());
    }

    #[test]
    fn server_frames_round_trip_and_every_prefix_is_incomplete(msg in any_server_msg()) {
        let buf = encoded_server(&msg);
        let (got, used) = decode_server(&buf).expect("valid").expect("complete");
        prop_assert_eq!(got, msg);
        prop_assert_eq!(used, buf.len());
        for cut in 0..used {
            prop_assert_eq!(decode_server(&buf[..cut]), Ok(None));
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        for decoded in [
            decode_client(&bytes).map(|o| o.map(|(_, n)| n)),
            decode_server(&bytes).map(|o| o.map(|(_, n)| n)),
        ] {
            if let Ok(Some(used)) = decoded {
                prop_assert!(used <= bytes.len());
            }
        }
    }

    /// Frames with a plausible header (small length, a known type) and a random body
    /// reach deep into the decoders.
    #[test]
    fn random_bodies_behind_valid_headers_never_panic(
        kind in prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 0x81, 0x82, 0x83, 0x84, 0x85, 0x7f]),
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut frame = ((body.len() + 1) as u32).to_le_bytes().to_vec();
        frame.push(kind);
        frame.extend_from_slice(&body);
        if let Ok(Some((_, used))) = decode_client(&frame) {
            prop_assert_eq!(used, frame.len());
        }
        if let Ok(Some((_, used))) = decode_server(&frame) {
            prop_assert_eq!(used, frame.len());
        }
    }

    #[test]
    fn flipped_bytes_never_panic(
        msg in any_server_msg(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut buf = encoded_server(&msg);
        for (at, byte) in flips {
            let i = at.index(buf.len());
            buf[i] ^= byte;
        }
        if let Ok(Some((_, used))) = decode_server(&buf) {
            prop_assert!(used <= buf.len());
        }
        let _ = decode_client(&buf);
    }

    #[test]
    fn flipped_client_bytes_never_panic(
        msg in any_client_msg(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut buf = encoded_client(&msg);
        for (at, byte) in flips {
            let i = at.index(buf.len());
            buf[i] ^= byte;
        }
        if let Ok(Some((_, used))) = decode_client(&buf) {
            prop_assert!(used <= buf.len());
        }
        let _ = decode_server(&buf);
    }
}

#[test]
fn oversized_and_empty_lengths_fail_at_the_header() {
    for len in [0u32, FRAME_BYTES_MAX as u32 + 1, u32::MAX] {
        let header = len.to_le_bytes();
        assert_eq!(
            decode_client(&header),
            Err(DecodeError::Length { len: len as u64 })
        );
        assert_eq!(
            decode_server(&header),
            Err(DecodeError::Length { len: len as u64 })
        );
    }
    let mut at_max = (FRAME_BYTES_MAX as u32).to_le_bytes().to_vec();
    at_max.push(0x02);
    assert_eq!(
        decode_client(&at_max),
        Ok(None),
        "the maximum itself is allowed"
    );
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    f.push(kind);
    f.extend_from_slice(body);
    f
}

#[test]
fn hostile_counts_are_refused_before_allocating() {
    // 65,535 orders claimed, none present.
    assert!(matches!(
        decode_client(&frame(0x02, &u16::MAX.to_le_bytes())),
        Err(DecodeError::TooMany { .. })
    ));
    // Within the cap but not in the body.
    assert!(matches!(
        decode_client(&frame(0x02, &100u16.to_le_bytes())),
        Err(DecodeError::Truncated { .. })
    ));
    assert!(matches!(
        decode_client(&frame(0x03, &(QUERY_IDS_MAX as u16 + 1).to_le_bytes())),
        Err(DecodeError::TooMany { .. })
    ));
    // Positions: u32::MAX entries claimed.
    let mut body = vec![1u8];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_server(&frame(0x83, &body)),
        Err(DecodeError::TooMany { .. })
    ));
    // An answer claiming 255 fills.
    let mut body = 1u16.to_le_bytes().to_vec();
    body.extend_from_slice(&7u64.to_le_bytes());
    body.push(1);
    body.extend_from_slice(&5i64.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes()); // symbol
    body.extend_from_slice(&100i64.to_le_bytes()); // limit
    body.push(1);
    body.push(255);
    assert!(matches!(
        decode_server(&frame(0x82, &body)),
        Err(DecodeError::TooMany { .. })
    ));
    // Order ids: u32::MAX claimed, then within the cap but not in the body.
    let mut body = vec![1u8];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_server(&frame(0x86, &body)),
        Err(DecodeError::TooMany { .. })
    ));
    let mut body = vec![0u8];
    body.extend_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        decode_server(&frame(0x86, &body)),
        Err(DecodeError::Truncated { .. })
    ));
    // An answer whose signed quantity has no absolute value.
    let mut body = 1u16.to_le_bytes().to_vec();
    body.extend_from_slice(&7u64.to_le_bytes());
    body.push(1);
    body.extend_from_slice(&i64::MIN.to_le_bytes());
    assert!(matches!(
        decode_server(&frame(0x82, &body)),
        Err(DecodeError::BadValue { .. })
    ));
}

#[test]
fn bad_values_versions_types_and_trailing_bytes_are_errors() {
    let o = order(1, 0, Side::Buy, 5);
    let good = encoded_client(&ClientMsg::Orders(vec![o]));
    // Side is byte 4 (len) + 1 (type) + 2 (count) + 18 (id, sub, follower, symbol).
    let mut bad_side = good.clone();
    bad_side[4 + 1 + 2 + 18] = 2;
    assert!(matches!(
        decode_client(&bad_side),
        Err(DecodeError::BadValue { field: "side", .. })
    ));

    let report = encoded_server(&ServerMsg::Report(ExecReport::default()));
    let mut bad_kind = report.clone();
    bad_kind[4 + 1 + 8] = 9;
    assert!(matches!(
        decode_server(&bad_kind),
        Err(DecodeError::BadValue { .. })
    ));

    let mut hello = (PROTOCOL_VERSION + 1).to_le_bytes().to_vec();
    hello.extend_from_slice(&1u64.to_le_bytes());
    assert_eq!(
        decode_client(&frame(0x01, &hello)),
        Err(DecodeError::Version {
            got: PROTOCOL_VERSION + 1
        })
    );

    assert_eq!(
        decode_client(&frame(0x99, &[])),
        Err(DecodeError::UnknownType(0x99))
    );
    // Server frames are not client frames and the other way round.
    assert!(decode_client(&report).is_err());
    assert!(decode_server(&good).is_err());

    assert_eq!(
        decode_client(&frame(0x04, &[0])),
        Err(DecodeError::Trailing {
            kind: 0x04,
            extra: 1
        })
    );
}

#[test]
fn malformed_ping_and_pong_frames_are_errors() {
    let ping = encoded_client(&ClientMsg::Ping {
        nonce: 0x0102_0304_0506_0708,
    });
    let pong = encoded_server(&ServerMsg::Pong { nonce: 9 });
    // Length prefix, type byte, nonce.
    assert_eq!((ping.len(), pong.len()), (4 + 1 + 8, 4 + 1 + 8));
    assert_eq!(ping[4], 0x06);
    assert_eq!(pong[4], 0x85);
    for cut in 0..ping.len() {
        assert_eq!(
            decode_client(&ping[..cut]),
            Ok(None),
            "a prefix is incomplete"
        );
        assert_eq!(
            decode_server(&pong[..cut]),
            Ok(None),
            "a prefix is incomplete"
        );
    }
    // A short nonce (the length says 4 bytes) and bytes after it.
    assert!(matches!(
        decode_client(&frame(0x06, &[1, 2, 3, 4])),
        Err(DecodeError::Truncated { kind: 0x06, .. })
    ));
    assert!(matches!(
        decode_server(&frame(0x85, &[])),
        Err(DecodeError::Truncated { kind: 0x85, .. })
    ));
    assert_eq!(
        decode_client(&frame(0x06, &[0; 9])),
        Err(DecodeError::Trailing {
            kind: 0x06,
            extra: 1
        })
    );
    assert_eq!(
        decode_server(&frame(0x85, &[0; 16])),
        Err(DecodeError::Trailing {
            kind: 0x85,
            extra: 8
        })
    );
    // Each goes one way only.
    assert_eq!(decode_server(&ping), Err(DecodeError::UnknownType(0x06)));
    assert_eq!(decode_client(&pong), Err(DecodeError::UnknownType(0x85)));
    // A hostile length on a ping is refused at the header.
    let mut huge = (FRAME_BYTES_MAX as u32 + 1).to_le_bytes().to_vec();
    huge.push(0x06);
    assert!(matches!(
        decode_client(&huge),
        Err(DecodeError::Length { .. })
    ));
}

#[test]
fn encoders_refuse_lists_over_their_caps() {
    let mut buf = Vec::new();
    let too_many = vec![FollowerOrder::default(); ORDERS_PER_FRAME_MAX + 1];
    assert!(encode_orders(&too_many, &mut buf).is_err());
    assert!(encode_query(&vec![0; QUERY_IDS_MAX + 1], &mut buf).is_err());
    let p = VenuePosition::default();
    assert!(encode_positions(&vec![p; POSITIONS_PER_FRAME_MAX + 1], true, &mut buf).is_err());
    let fat = QueryAnswer::Known(OrderHistory {
        fills: vec![ExecReport::default(); FILLS_PER_ANSWER_MAX + 1],
        ..OrderHistory::default()
    });
    assert!(encode_query_reply(&[fat], &mut buf).is_err());
    assert!(buf.is_empty(), "a refused frame leaves nothing behind");

    // The largest frames of each kind fit.
    let full = QueryAnswer::Known(OrderHistory {
        fills: vec![ExecReport::default(); FILLS_PER_ANSWER_MAX],
        end: Some(ExecReport::default()),
        ..OrderHistory::default()
    });
    encode_query_reply(&vec![full; QUERY_IDS_MAX], &mut buf).expect("fits");
    let (msg, used) = decode_server(&buf).expect("valid").expect("complete");
    assert_eq!(used, buf.len());
    assert!(matches!(msg, ServerMsg::QueryReply(a) if a.len() == QUERY_IDS_MAX));
    buf.clear();
    encode_orders(
        &vec![FollowerOrder::default(); ORDERS_PER_FRAME_MAX],
        &mut buf,
    )
    .expect("fits");
    assert!(decode_client(&buf).expect("valid").is_some());
}

// ---------------------------------------------------------------------------------
// Server and client over TCP

#[test]
fn reports_over_tcp_equal_the_in_process_venue() {
    let orders = orders(0, 500);
    let server = Server::start(venue(&noisy(11)));
    let mut client = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let got = run_client(&mut client, &orders);
    assert_eq!(client.in_flight(), 0);
    assert!(client.is_connected());

    let expected = run_in_process(&mut venue(&noisy(11)), &orders);
    assert_eq!(untimed(&got), untimed(&expected));

    let mut trade_ids = HashSet::new();
    let mut filled: HashMap<u64, i64> = HashMap::new();
    for r in got.iter().filter(|r| r.kind == ExecKind::Fill) {
        assert!(
            trade_ids.insert(r.trade_id),
            "trade id {} twice",
            r.trade_id
        );
        *filled.entry(r.order_id).or_default() += r.qty.0;
    }
    for o in &orders {
        assert!(filled.get(&o.id).copied().unwrap_or(0) <= o.qty.0);
    }
    let stats = client.client_stats();
    assert_eq!(stats.orders_sent, 500);
    assert_eq!(stats.reports, got.len() as u64);
    drop(client);
    server.stop().expect("clean stop");
}

#[test]
fn a_new_client_queries_the_old_orders_sees_duplicates_and_positions() {
    let first = orders(0, 300);
    let server = Server::start(venue(&noisy(21)));
    let mut a = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let mut reports = run_client(&mut a, &first);
    drop(a);

    let mut b = SimClient::connect("sim", server.addr, WAIT).expect("reconnect");
    let mut ids: Vec<u64> = first.iter().map(|o| o.id).collect();
    let never_sent = 0xdead_beef;
    ids.push(never_sent);
    let answers = b.query(&ids, WAIT).expect("query");
    assert_eq!(answers.len(), ids.len());
    for (o, answer) in first.iter().zip(&answers) {
        match answer {
            QueryAnswer::Known(h) => {
                assert_eq!(*h, history_from_reports(o, &reports));
                assert!(h.is_done());
            }
            QueryAnswer::Unknown { .. } => panic!("order {} unknown", o.id),
        }
    }
    assert_eq!(
        answers.last(),
        Some(&QueryAnswer::Unknown {
            order_id: never_sent
        })
    );

    // An id already used: the venue counts it (and executes it, as a real venue
    // that checks only open orders would).
    let again = first[1];
    reports.extend(run_client(&mut b, &[again]));
    let stats = b.stats(WAIT).expect("stats");
    assert_eq!(stats.duplicate_client_ids, 1);
    assert_eq!(stats.orders_received, 301);
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.protocol_errors, 0);

    let mut all = first.clone();
    all.push(again);
    let positions = b.positions(WAIT).expect("positions");
    assert!(!positions.is_empty());
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    assert_eq!(as_map(&positions), fill_sums(&all, &reports));
    drop(b);
    server.stop().expect("clean stop");
}

#[test]
fn a_restarted_client_recovers_what_the_venue_did_with_the_old_orders() {
    // A venue slow enough that the first client is gone before any report is due:
    // the engine killed right after sending.
    let slow = SimVenueConfig {
        latency_us: 100_000,
        ..noisy(31)
    };
    let server = Server::start(venue(&slow));
    let old = orders(0, 200);
    let mut a = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    a.submit(&old, now(), &mut |r| panic!("nothing is due yet: {r:?}"));
    assert_eq!(a.stats(WAIT).expect("stats").orders_received, 200);
    drop(a);

    // The same orders in process give the reports the venue made.
    let expected_reports = run_in_process(&mut venue(&slow), &old);
    let mut b = SimClient::connect("sim", server.addr, WAIT).expect("reconnect");
    // b's own orders, whose reports come while b waits for the answers.
    let mine = orders(5000, 5);
    b.submit(&mine, now(), &mut |_| {});
    std::thread::sleep(Duration::from_millis(150));

    let never_sent = 0x0bad_cafe;
    let mut ids: Vec<u64> = old.iter().map(|o| o.id).collect();
    ids.push(never_sent);
    let mut recovered = Vec::new();
    b.recover(&asked(&ids), &mut |r| recovered.push(r))
        .expect("recover");
    assert!(recovered.iter().all(|r| r.recv_ts.0 > 0));
    let mut trade_ids = HashSet::new();
    for o in &old {
        let mine: Vec<ExecReport> = recovered
            .iter()
            .filter(|r| r.order_id == o.id)
            .map(|r| ExecReport {
                venue_ts: Nanos(0),
                recv_ts: Nanos(0),
                ..*r
            })
            .collect();
        assert_eq!(
            mine,
            untimed(&expected_answer(o, &expected_reports)),
            "order {}",
            o.id
        );
        let filled: i64 = mine
            .iter()
            .filter(|r| r.kind == ExecKind::Fill)
            .map(|r| r.qty.0)
            .sum();
        assert!(filled <= o.qty.0);
        for f in mine.iter().filter(|r| r.kind == ExecKind::Fill) {
            assert!(
                trade_ids.insert(f.trade_id),
                "trade id {} twice",
                f.trade_id
            );
        }
    }
    let tail: Vec<ExecReport> = recovered
        .iter()
        .filter(|r| r.order_id == never_sent)
        .copied()
        .collect();
    assert_eq!(tail.len(), 1);
    assert_eq!(
        (tail[0].kind, tail[0].reject),
        (ExecKind::Rejected, RejectReason::UnknownOrder)
    );
    assert!(
        recovered
            .iter()
            .all(|r| !mine.iter().any(|o| o.id == r.order_id)),
        "b's own reports wait for poll"
    );

    // b's own reports come through poll; none of the old orders' reports do (they
    // came due with no client connected).
    let got = run_client(&mut b, &[]);
    let settled: HashSet<u64> = got
        .iter()
        .filter(|r| r.kind != ExecKind::Ack)
        .map(|r| r.order_id)
        .collect();
    assert_eq!(settled, mine.iter().map(|o| o.id).collect());
    assert_eq!(b.in_flight(), 0);
    let stats = b.stats(WAIT).expect("stats");
    assert_eq!(
        (stats.orders_received, stats.duplicate_client_ids),
        (205, 0)
    );

    // An empty recover asks nothing.
    b.recover(&[], &mut |r| panic!("nothing asked: {r:?}"))
        .expect("empty");
    drop(b);
    let served = server.stop().expect("clean stop");
    assert_eq!(served.venue.orders_received, 205);
    assert_eq!(served.venue.connections, 2);
}

#[test]
fn recover_fails_within_its_timeout_when_the_venue_does_not_answer() {
    // Something that accepts connections and never answers.
    let mute = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = mute.local_addr().expect("addr");
    let holder = std::thread::spawn(move || mute.accept().map(|(s, _)| s));
    let mut client = SimClient::connect("sim", addr, WAIT)
        .expect("connect")
        .with_recover_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let result = client.recover(&asked(&[1, 2, 3]), &mut |r| panic!("no answer came: {r:?}"));
    let err = result.expect_err("a timeout");
    // A failure, not "cannot": the restart must not go on without the answer.
    assert!(
        matches!(&err, VenueError::Failed { venue, what, .. } if venue == "sim" && what.contains("3 orders")),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < WAIT);
    drop(holder.join().expect("accept thread"));
}

#[test]
fn queries_larger_than_one_frame_are_split() {
    let server = Server::start(venue(&SimVenueConfig::default()).fill_all());
    let mut client = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let ids: Vec<u64> = (1..=(QUERY_IDS_MAX as u64 * 2 + 5)).collect();
    let answers = client.query(&ids, WAIT).expect("query");
    assert_eq!(answers.len(), ids.len());
    assert!(answers
        .iter()
        .zip(&ids)
        .all(|(a, &id)| *a == QueryAnswer::Unknown { order_id: id }));
    assert!(client.query(&[], WAIT).expect("empty query").is_empty());
    assert!(client.positions(WAIT).expect("positions").is_empty());
}

#[test]
fn reports_held_for_a_session_go_to_its_next_connection() {
    let slow = SimVenueConfig {
        latency_us: 300_000,
        ..SimVenueConfig::default()
    };
    let server = Server::start(venue(&slow).fill_all());
    let batch = orders(0, 10);
    let mut a = SimClient::connect_session("sim", server.addr, 7, WAIT).expect("connect");
    a.submit(&batch, now(), &mut |_| panic!("nothing is due yet"));
    // A round trip: the server has read the orders before the client goes.
    let stats = a.stats(WAIT).expect("stats");
    assert_eq!(stats.orders_received, 10);
    drop(a);

    // Same session: the acks and fills come to the new connection.
    let mut b = SimClient::connect_session("sim", server.addr, 7, WAIT).expect("reconnect");
    let got = collect(&mut b, 20);
    assert_eq!(got.iter().filter(|r| r.kind == ExecKind::Fill).count(), 10);
    let ids: HashSet<u64> = got.iter().map(|r| r.order_id).collect();
    assert_eq!(ids, batch.iter().map(|o| o.id).collect());
    assert_eq!(b.in_flight(), 0, "b did not send them");

    // Another session neither gets them nor makes the server drop them; a query
    // from it still answers.
    let more = orders(100, 5);
    b.submit(&more, now(), &mut |_| {});
    b.stats(WAIT).expect("stats");
    drop(b);
    let mut c = SimClient::connect_session("sim", server.addr, 8, WAIT).expect("connect");
    let ids: Vec<u64> = more.iter().map(|o| o.id).collect();
    for answer in c.query(&ids, WAIT).expect("query") {
        assert!(matches!(answer, QueryAnswer::Known(h) if h.is_done() && h.acked));
    }
    // Past the venue's latency: the reports are due, and held for session 7.
    std::thread::sleep(Duration::from_millis(400));
    let mut none = Vec::new();
    c.poll(now(), &mut |r| none.push(r));
    assert!(none.is_empty(), "{none:?}");
    let stats = c.stats(WAIT).expect("stats");
    assert_eq!(stats.reports_dropped, 0);

    // Session 7 again: it gets them.
    let mut d = SimClient::connect_session("sim", server.addr, 7, WAIT).expect("connect");
    let got = collect(&mut d, 10);
    let ids: HashSet<u64> = got.iter().map(|r| r.order_id).collect();
    assert_eq!(ids, more.iter().map(|o| o.id).collect());
    assert_eq!(got.iter().filter(|r| r.kind == ExecKind::Fill).count(), 5);
    let mut none = Vec::new();
    c.poll(now(), &mut |r| none.push(r));
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn reconnect_with_the_same_session_settles_orders_in_flight() {
    let slow = SimVenueConfig {
        latency_us: 200_000,
        ..SimVenueConfig::default()
    };
    let server = Server::start(venue(&slow).fill_all());
    let batch = orders(0, 4);
    let mut client = SimClient::connect_session("sim", server.addr, 3, WAIT).expect("connect");
    client.submit(&batch, now(), &mut |_| {});
    client.stats(WAIT).expect("stats");
    assert_eq!(client.in_flight(), 4);
    client.reconnect(WAIT).expect("reconnect");
    assert!(
        !client.is_up(),
        "up only once the orders in flight are settled"
    );
    // The answers settle the orders (their fills, before the reports are due); the
    // reports that come when due are repeats, left out.
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while client.in_flight() > 0 || client.client_stats().repeats_dropped < 8 {
        assert!(Instant::now() < deadline, "got {} reports", got.len());
        if client.poll(now(), &mut |r| got.push(r)) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(client.is_up());
    assert_eq!(client.client_stats().settled, 4);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().all(|r| r.kind == ExecKind::Fill));
    let trades: HashSet<u64> = got.iter().map(|r| r.trade_id).collect();
    assert_eq!(trades.len(), 4);
    let filled: HashSet<u64> = got.iter().map(|r| r.order_id).collect();
    assert_eq!(filled, batch.iter().map(|o| o.id).collect());
}

#[test]
fn a_hello_with_the_same_session_replaces_its_live_connection() {
    let server = Server::start(venue(&SimVenueConfig::default()).fill_all());
    let mut a = SimClient::connect_session("sim", server.addr, 5, WAIT).expect("connect");
    a.stats(WAIT).expect("stats");
    // A restarted engine whose old connection is half-open gets in.
    let mut b = SimClient::connect_session("sim", server.addr, 5, WAIT).expect("connect");
    let got = run_client(&mut b, &orders(0, 20));
    assert_eq!(got.len(), 40);

    // `a` sees its connection end, and says so instead of panicking (it would connect
    // again at its next poll, so it is not polled after that).
    let deadline = Instant::now() + WAIT;
    while a.client_stats().disconnects == 0 {
        assert!(Instant::now() < deadline, "a still connected");
        a.poll(now(), &mut |_| {});
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!a.is_up() && !a.is_connected());
    let why = a.down_reason().expect("a reason");
    assert!(why.contains("closed the connection"), "{why}");
    assert!(
        a.can_accept(1),
        "down: it takes orders and rejects them at once"
    );
    let mut rejected = Vec::new();
    let o = order(500, 0, Side::Buy, 5);
    a.submit(&[o], now(), &mut |r| rejected.push(r));
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (rejected[0].kind, rejected[0].reject),
        (ExecKind::Rejected, RejectReason::VenueDown)
    );
    assert_eq!(a.client_stats().rejected_locally, 1);
    let stats = b.stats(WAIT).expect("stats");
    assert_eq!((stats.connections, stats.orders_received), (2, 20));
}

#[test]
fn the_client_sees_a_server_that_goes_away() {
    let server = Server::start(venue(&SimVenueConfig::default()).fill_all());
    let mut client = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    run_client(&mut client, &orders(0, 5));
    server.stop().expect("clean stop");
    let deadline = Instant::now() + WAIT;
    while client.is_connected() {
        assert!(Instant::now() < deadline, "still connected");
        client.poll(now(), &mut |_| {});
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(client.stats(Duration::from_millis(100)).is_err());
}

#[test]
fn connect_to_nothing_fails_within_its_timeout() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let started = Instant::now();
    assert!(SimClient::connect("sim", addr, Duration::from_millis(200)).is_err());
    assert!(started.elapsed() < WAIT);
}

/// Sends raw bytes on a fresh connection and returns whether the server closed it.
fn server_closes_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(bytes).expect("write");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        // A reset is a close; a timeout is not.
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn hostile_clients_are_cut_off_and_the_server_goes_on() {
    let server = Server::start(venue(&SimVenueConfig::default()).fill_all());
    let hello = encoded_client(&ClientMsg::Hello { session: 1 });

    assert!(server_closes_after(server.addr, &u32::MAX.to_le_bytes()));
    assert!(server_closes_after(server.addr, &frame(0x77, &[1, 2, 3])));
    // Orders before Hello.
    let orders_frame = encoded_client(&ClientMsg::Orders(orders(0, 2)));
    assert!(server_closes_after(server.addr, &orders_frame));
    // Two Hellos.
    let mut twice = hello.clone();
    twice.extend_from_slice(&hello);
    assert!(server_closes_after(server.addr, &twice));
    // Random bytes after a good Hello.
    let mut junk = hello.clone();
    junk.extend((0..500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    assert!(server_closes_after(server.addr, &junk));

    // A connection that ends inside a frame.
    {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.write_all(&hello).expect("write");
        s.write_all(&orders_frame[..20]).expect("write");
    }

    let mut client = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let got = run_client(&mut client, &orders(0, 10));
    assert_eq!(got.len(), 20);
    let stats = client.stats(WAIT).expect("stats");
    assert_eq!(stats.orders_received, 10, "no hostile order was executed");
    assert!(stats.protocol_errors >= 5, "{stats:?}");
}

#[test]
fn backpressure_bounds_the_client_and_loses_nothing() {
    let server = Server::start(venue(&SimVenueConfig::default()).fill_all());
    let mut client = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let orders = orders(0, 20_000);
    let got = run_client(&mut client, &orders);
    assert_eq!(
        got.iter().filter(|r| r.kind == ExecKind::Fill).count(),
        20_000
    );
    let stats = client.stats(WAIT).expect("stats");
    assert_eq!(stats.orders_received, 20_000);
    assert_eq!(stats.duplicate_client_ids, 0);
}

#[test]
fn a_client_that_lost_its_records_lists_the_orders_the_venue_holds_since_a_time() {
    let server = Server::start(venue(&SimVenueConfig::default()));
    let mut a = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let mut batch = orders(0, 10);
    for (i, o) in batch.iter_mut().enumerate() {
        o.ts = Nanos(1_000 + i as u64);
    }
    a.submit(&batch, now(), &mut |_| {});
    a.stats(WAIT)
        .expect("stats: a round trip behind the orders");

    // Another client (a restarted engine) asks from the fifth order's time on.
    let mut b = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let ids = b.order_ids_since(Nanos(1_004), WAIT).expect("list");
    let want: Vec<u64> = batch[4..].iter().map(|o| o.id).collect();
    assert_eq!(ids, want, "the orders from that time on, oldest first");
    let mut got = Vec::new();
    b.orders_since(Nanos(1_004), &mut |r| got.push(r))
        .expect("answers");
    let terms: Vec<&ExecReport> = got
        .iter()
        .filter(|r| r.kind == ExecKind::Restated)
        .collect();
    assert_eq!(terms.len(), want.len(), "{got:?}");
    for (t, o) in terms.iter().zip(&batch[4..]) {
        assert_eq!(
            (t.order_id, t.qty.0, t.price, t.trade_id),
            (o.id, o.side.sign() * o.qty.0, o.limit, o.symbol.0 as u64),
            "each answer starts with the order's terms: signed size, limit, symbol"
        );
    }
    assert!(got.iter().all(|r| want.contains(&r.order_id)));
    assert!(b
        .order_ids_since(Nanos(u64::MAX), WAIT)
        .expect("list")
        .is_empty());
}

/// A `Symbols` frame: the header and `terms` from index `first`.
fn symbols_frame(first: u16, count: u16, terms: &[(i64, i64, i64)]) -> Vec<u8> {
    let mut body = first.to_le_bytes().to_vec();
    body.extend_from_slice(&count.to_le_bytes());
    for (q, n, m) in terms {
        for v in [q, n, m] {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    frame(0x08, &body)
}

#[test]
fn malformed_symbols_frames_are_errors() {
    let good = symbols_frame(0, 1, &[(1, 0, 10_000)]);
    assert!(matches!(
        decode_client(&good),
        Ok(Some((ClientMsg::Symbols { first: 0, .. }, _)))
    ));
    for (terms, field) in [
        ((0, 0, 1), "min qty"),
        ((1, -1, 1), "min notional"),
        ((1, 0, 0), "money per lot tick"),
    ] {
        assert!(
            matches!(
                decode_client(&symbols_frame(0, 1, &[terms])),
                Err(DecodeError::BadValue { field: f, .. }) if f == field
            ),
            "{field}"
        );
    }
    // More than a frame may hold, or indices past a u16: refused before reading on.
    assert!(matches!(
        decode_client(&symbols_frame(0, 4097, &[])),
        Err(DecodeError::TooMany { .. })
    ));
    assert!(matches!(
        decode_client(&symbols_frame(u16::MAX, 2, &[(1, 0, 1), (1, 0, 1)])),
        Err(DecodeError::TooMany { .. })
    ));
    assert!(matches!(
        decode_client(&symbols_frame(0, 2, &[(1, 0, 1)])),
        Err(DecodeError::Truncated { .. })
    ));
    // The venue's table grows without a gap.
    let mut v = venue(&SimVenueConfig::default());
    let t = SymbolTerms::of(&btcusdt());
    assert!(v.set_symbols(2, &[t]).is_err(), "a gap");
    v.set_symbols(1, &[t, t]).unwrap();
    assert_eq!(v.symbols().len(), 3);
}

/// Issue 12: a symbol a reload adds is traded by a remote venue that read its
/// config before it existed: the engine tells the venue its symbols
/// (`Gateway::universe_changed`), and the venue takes them in place of its own.
#[test]
fn a_remote_venue_trades_a_symbol_the_engine_added_after_it_started() {
    let server = Server::start(venue(&SimVenueConfig::default()).fill_all());
    let mut client = SimClient::connect("sim", server.addr, WAIT).expect("connect");
    let sol = SymbolIdx(1);
    let mut o = order(1, 0, Side::Buy, 5);
    o.symbol = sol;
    let got = run_client(&mut client, &[o]);
    assert!(
        got.iter()
            .any(|r| r.kind == ExecKind::Rejected && r.reject == RejectReason::Other),
        "a symbol the venue does not know is refused: {got:?}"
    );
    let text = "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n\
        [[symbols]]\nname = \"BTCUSDT\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nvenue = \"sim\"\n\
        [[symbols]]\nname = \"SOLUSDT\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"sim\"\n";
    let cfg = fillcast_engine::config::load_str(text, std::path::Path::new("sol.toml")).unwrap();
    let u = Arc::new(fillcast_engine::model::Universe::from_config(&cfg).unwrap());
    client.universe_changed(&u);
    let mut o = order(2, 0, Side::Buy, 5);
    o.symbol = sol;
    let got = run_client(&mut client, &[o]);
    let filled: i64 = got
        .iter()
        .filter(|r| r.kind == ExecKind::Fill)
        .map(|r| r.qty.0)
        .sum();
    assert_eq!(filled, 5, "{got:?}");
    // A connection that comes later tells it again (after its `Hello`).
    drop(client);
    let stats = server.stop().expect("clean stop");
    assert!(stats
        .positions
        .iter()
        .any(|p| p.symbol == sol && p.lots == Lots(5)));
}
