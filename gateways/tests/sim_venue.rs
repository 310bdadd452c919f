//! The simulated venue: reproducible from its seed, reports consistent with the
//! orders, minimum-size rules, duplicate client ids counted, venue books equal to the
//! fills it reported, and a bounded queue.

use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType, RejectReason};
use fillcast_engine::ids::decision_id;
use fillcast_engine::model::{FollowerIdx, Side, SubIdx, SymbolIdx, VenueIdx};
use fillcast_engine::port::Gateway;
use fillcast_engine::units::{Lots, Money, Nanos, Ticks};
use fillcast_gateways::config::SimVenueConfig;
use fillcast_gateways::sim::{SimVenue, REPORTS_PER_ORDER_MAX};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const BTC: SymbolIdx = SymbolIdx(0);
const ETH: SymbolIdx = SymbolIdx(1);
/// 65,000.0 in BTCUSDT ticks of 0.1.
const BTC_PRICE: Ticks = Ticks(650_000);

fn venue(cfg: &SimVenueConfig) -> SimVenue {
    SimVenue::new("sim", cfg, crate::common::universe().symbols.clone())
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
        ts: Nanos(0),
        ..FollowerOrder::default()
    }
}

/// A varied batch: both sides, several followers, sizes from 2 lots (0.002 BTC =
/// 130 USDT, above the 100 minimum) up.
fn orders(count: u64) -> Vec<FollowerOrder> {
    (0..count)
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

/// Submits `orders` in batches of 8, one batch per 10 µs, and polls until idle.
fn run(venue: &mut SimVenue, orders: &[FollowerOrder]) -> Vec<ExecReport> {
    let mut reports = Vec::new();
    let mut now = Nanos(1_000_000);
    for batch in orders.chunks(8) {
        assert!(venue.can_accept(batch.len()));
        venue.submit(batch, now, &mut |r| reports.push(r));
        now = Nanos(now.0 + 10_000);
        venue.poll(now, &mut |r| reports.push(r));
    }
    for _ in 0..1000 {
        if venue.in_flight() == 0 {
            break;
        }
        now = Nanos(now.0 + 10_000);
        venue.poll(now, &mut |r| reports.push(r));
    }
    assert_eq!(venue.in_flight(), 0);
    reports
}

#[test]
fn same_seed_same_reports() {
    let orders = orders(500);
    let a = run(&mut venue(&noisy(11)), &orders);
    let b = run(&mut venue(&noisy(11)), &orders);
    assert_eq!(a, b);
    let c = run(&mut venue(&noisy(12)), &orders);
    assert_ne!(a, c, "another seed gives another run");
}

#[test]
fn polling_pattern_does_not_change_reports() {
    let orders = orders(200);
    let a = run(&mut venue(&noisy(5)), &orders);

    // Same submissions, polled only at the end.
    let mut v = venue(&noisy(5));
    let mut b = Vec::new();
    let mut now = Nanos(1_000_000);
    for batch in orders.chunks(8) {
        v.submit(batch, now, &mut |r| b.push(r));
        now = Nanos(now.0 + 10_000);
    }
    v.poll(Nanos(u64::MAX), &mut |r| b.push(r));
    let strip = |rs: &[ExecReport]| -> Vec<ExecReport> {
        rs.iter()
            .map(|r| ExecReport {
                recv_ts: Nanos(0),
                ..*r
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
}

#[derive(Default, Debug)]
struct PerOrder {
    acks: u32,
    filled: i64,
    fills: u32,
    canceled: i64,
    rejects: Vec<RejectReason>,
}

fn per_order(reports: &[ExecReport]) -> HashMap<u64, PerOrder> {
    let mut m: HashMap<u64, PerOrder> = HashMap::new();
    for r in reports {
        let e = m.entry(r.order_id).or_default();
        match r.kind {
            ExecKind::Ack => e.acks += 1,
            ExecKind::Fill => {
                e.fills += 1;
                e.filled += r.qty.0;
            }
            ExecKind::Canceled => e.canceled += r.qty.0,
            ExecKind::Rejected => e.rejects.push(r.reject),
            ExecKind::Expired => panic!("the sim venue does not expire orders"),
            ExecKind::Restated => panic!("a restatement answers a question, never a submit"),
        }
    }
    m
}

#[test]
fn reports_are_consistent_with_each_order() {
    let orders = orders(3000);
    let mut v = venue(&noisy(3));
    let reports = run(&mut v, &orders);
    let by_order = per_order(&reports);
    assert_eq!(by_order.len(), orders.len());
    let (mut partials, mut rejects, mut transients) = (0, 0, 0);
    for o in &orders {
        let p = &by_order[&o.id];
        if p.rejects.is_empty() {
            assert_eq!(p.acks, 1, "{o:?}");
            assert_eq!(p.fills, 1);
            assert!(p.filled > 0 && p.filled <= o.qty.0, "{p:?}");
            assert_eq!(p.filled + p.canceled, o.qty.0, "partial + cancel = qty");
            if p.canceled > 0 {
                partials += 1;
            }
        } else {
            assert_eq!((p.acks, p.fills, p.rejects.len()), (0, 0, 1));
            match p.rejects[0] {
                RejectReason::Transient => transients += 1,
                RejectReason::InsufficientMargin | RejectReason::PositionLimit => rejects += 1,
                other => panic!("unexpected reject {other:?}"),
            }
        }
    }
    // 30% partials of ~80% accepted, 10% + 10% rejects, with wide margins.
    assert!((500..1000).contains(&partials), "{partials}");
    assert!((200..400).contains(&rejects), "{rejects}");
    assert!((200..400).contains(&transients), "{transients}");
    let s = v.stats();
    assert_eq!(s.orders, 3000);
    assert_eq!(s.partial_fills, partials);
    assert_eq!(s.rejected_transient, transients);
    assert_eq!(s.delivered, reports.len() as u64);
}

#[test]
fn fills_carry_price_unique_trade_ids_and_fees() {
    let orders = orders(1000);
    let reports = run(&mut venue(&noisy(9)), &orders);
    let limits: HashMap<u64, Ticks> = orders.iter().map(|o| (o.id, o.limit)).collect();
    let spec = &crate::common::universe().symbols[0];
    let mut trade_ids = HashSet::new();
    for r in reports.iter().filter(|r| r.kind == ExecKind::Fill) {
        assert_ne!(r.trade_id, 0);
        assert!(trade_ids.insert(r.trade_id), "duplicate trade id");
        assert_eq!(r.price, limits[&r.order_id]);
        // `taker_fee_ppm` (5 bps by default) of notional, rounded up to 1e-8.
        let notional = spec.notional(r.qty, r.price).0 as i128;
        assert_eq!(
            r.fee,
            Money(((notional * 500 + 999_999) / 1_000_000) as i64)
        );
    }
    assert!(trade_ids.len() > 500);
}

#[test]
fn fee_example() {
    // 0.002 BTC at 65,000.0 = 130 USDT; 5 bps (`taker_fee_ppm`) = 0.065 USDT.
    let mut v = venue(&SimVenueConfig::default()).fill_all();
    let mut reports = Vec::new();
    v.submit(&[order(1, 0, Side::Buy, 2)], Nanos(0), &mut |r| {
        reports.push(r)
    });
    v.poll(Nanos(u64::MAX), &mut |r| reports.push(r));
    let fill = reports
        .iter()
        .find(|r| r.kind == ExecKind::Fill)
        .expect("a fill");
    assert_eq!(fill.fee, Money(6_500_000));

    let mut free = venue(&SimVenueConfig::default()).fill_all().with_fee_ppm(0);
    let mut reports = Vec::new();
    free.submit(&[order(1, 0, Side::Buy, 2)], Nanos(0), &mut |r| {
        reports.push(r)
    });
    free.poll(Nanos(u64::MAX), &mut |r| reports.push(r));
    assert!(reports.iter().all(|r| r.fee == Money::ZERO));
}

#[test]
fn reports_wait_for_latency_and_come_in_order() {
    let cfg = SimVenueConfig {
        latency_us: 50,
        ..noisy(1)
    };
    let mut v = venue(&cfg);
    let mut got = Vec::new();
    v.submit(&orders(10), Nanos(1_000), &mut |r| got.push(r));
    assert!(got.is_empty(), "nothing before the latency");
    assert_eq!(v.poll(Nanos(50_999), &mut |r| got.push(r)), 0);
    assert!(v.in_flight() >= 10);
    v.submit(&orders(20)[10..], Nanos(2_000), &mut |r| got.push(r));
    let first = v.poll(Nanos(51_000), &mut |r| got.push(r));
    assert!(first >= 10);
    assert!(got
        .iter()
        .all(|r| r.venue_ts == Nanos(51_000) && r.recv_ts == Nanos(51_000)));
    v.poll(Nanos(52_000), &mut |r| got.push(r));
    assert_eq!(v.in_flight(), 0);
    assert!(got.windows(2).all(|w| w[0].venue_ts <= w[1].venue_ts));
}

#[test]
fn zero_latency_reports_come_back_from_submit() {
    let cfg = SimVenueConfig {
        latency_us: 0,
        ..SimVenueConfig::default()
    };
    let mut v = venue(&cfg).fill_all();
    let mut got = Vec::new();
    v.submit(&[order(1, 0, Side::Buy, 5)], Nanos(7), &mut |r| got.push(r));
    let kinds: Vec<ExecKind> = got.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ExecKind::Ack, ExecKind::Fill]);
    assert_eq!(v.in_flight(), 0);
}

#[test]
fn below_minimum_is_rejected_unless_reduce_only() {
    let mut v = venue(&SimVenueConfig::default()).fill_all();
    // 1 lot = 0.001 BTC = 65 USDT < 100 USDT minimum notional.
    let small = order(1, 0, Side::Buy, 1);
    let reduce = FollowerOrder {
        id: 2,
        reduce_only: true,
        ..small
    };
    // 0.001 ETH at 3000.00 = 3 USDT < 20.
    let eth = FollowerOrder {
        id: 3,
        symbol: ETH,
        limit: Ticks(300_000),
        ..small
    };
    let mut got = Vec::new();
    v.submit(&[small, reduce, eth], Nanos(0), &mut |r| got.push(r));
    v.poll(Nanos(u64::MAX), &mut |r| got.push(r));
    let by_order = per_order(&got);
    assert_eq!(by_order[&small.id].rejects, [RejectReason::BelowMin]);
    assert_eq!(by_order[&eth.id].rejects, [RejectReason::BelowMin]);
    assert_eq!(by_order[&reduce.id].filled, 1);
    assert_eq!(v.stats().rejected_below_min, 2);
}

#[test]
fn malformed_orders_are_rejected_not_panicked_on() {
    let mut v = venue(&SimVenueConfig::default()).fill_all();
    let good = order(1, 0, Side::Buy, 5);
    let bad = [
        FollowerOrder {
            id: 10,
            symbol: SymbolIdx(99),
            ..good
        },
        FollowerOrder {
            id: 11,
            qty: Lots(0),
            ..good
        },
        FollowerOrder {
            id: 12,
            qty: Lots(-3),
            ..good
        },
        FollowerOrder {
            id: 13,
            limit: Ticks(0),
            ..good
        },
    ];
    let mut got = Vec::new();
    v.submit(&bad, Nanos(0), &mut |r| got.push(r));
    v.poll(Nanos(u64::MAX), &mut |r| got.push(r));
    assert_eq!(got.len(), 4);
    assert!(got
        .iter()
        .all(|r| r.kind == ExecKind::Rejected && r.reject == RejectReason::Other));
    assert_eq!(v.stats().rejected_invalid, 4);
    assert_eq!(v.positions().count(), 0);
}

#[test]
fn duplicate_client_order_ids_are_counted() {
    let mut v = venue(&SimVenueConfig::default()).fill_all();
    let orders = orders(50);
    run(&mut v, &orders);
    assert_eq!(v.duplicate_client_ids(), 0);
    run(&mut v, &orders[..3]);
    assert_eq!(v.duplicate_client_ids(), 3);
    assert_eq!(v.orders_received(), 53);
    // Within one batch too.
    let o = order(1000, 0, Side::Buy, 5);
    v.submit(&[o, o], Nanos(0), &mut |_| {});
    assert_eq!(v.duplicate_client_ids(), 4);
}

#[test]
fn venue_positions_equal_the_sum_of_fills() {
    let orders = orders(2000);
    let mut v = venue(&noisy(21));
    let reports = run(&mut v, &orders);
    let who: HashMap<u64, (FollowerIdx, SymbolIdx, Side)> = orders
        .iter()
        .map(|o| (o.id, (o.follower, o.symbol, o.side)))
        .collect();
    let mut sums: HashMap<(FollowerIdx, SymbolIdx), i64> = HashMap::new();
    for r in reports.iter().filter(|r| r.kind == ExecKind::Fill) {
        let (f, s, side) = who[&r.order_id];
        *sums.entry((f, s)).or_default() += side.sign() * r.qty.0;
    }
    for (&(f, s), &sum) in &sums {
        assert_eq!(v.position(f, s), Lots(sum));
    }
    let reported: HashMap<(FollowerIdx, SymbolIdx), i64> =
        v.positions().map(|(f, s, l)| ((f, s), l.0)).collect();
    sums.retain(|_, v| *v != 0);
    assert_eq!(reported, sums);
    assert_eq!(v.position(FollowerIdx(77), BTC), Lots::ZERO);
}

#[test]
fn fill_all_fills_everything_in_full() {
    let orders = orders(500);
    let mut v = venue(&noisy(2)).fill_all();
    let reports = run(&mut v, &orders);
    let by_order = per_order(&reports);
    for o in &orders {
        let p = &by_order[&o.id];
        assert!(p.rejects.is_empty());
        assert_eq!((p.acks, p.fills, p.filled, p.canceled), (1, 1, o.qty.0, 0));
    }
}

#[test]
fn queue_is_bounded_and_never_drops() {
    let mut v = venue(&noisy(4)).with_queue_capacity(30);
    assert!(v.can_accept(10));
    assert!(!v.can_accept(11));
    assert!(!v.can_accept(usize::MAX));
    let orders = orders(15);
    let mut immediate = Vec::new();
    // The caller ignores `can_accept`: the excess is rejected at once as transient.
    v.submit(&orders, Nanos(0), &mut |r| immediate.push(r));
    assert!(v.in_flight() <= 30);
    let overflow = v.stats().rejected_queue_full;
    assert!(overflow >= 1, "{overflow}");
    assert_eq!(immediate.len() as u64, overflow);
    assert!(immediate
        .iter()
        .all(|r| r.kind == ExecKind::Rejected && r.reject.is_transient()));
    let mut later = Vec::new();
    v.poll(Nanos(u64::MAX), &mut |r| later.push(r));
    // Every order got an answer.
    let answered: HashSet<u64> = immediate.iter().chain(&later).map(|r| r.order_id).collect();
    assert_eq!(answered.len(), 15);
    assert!(v.can_accept(10));
}

#[test]
fn for_venue_uses_the_configured_model() {
    let u = crate::common::universe();
    let v = SimVenue::for_venue(&u, VenueIdx(0)).expect("venue 0 exists");
    assert_eq!(v.name(), "sim");
    assert!(SimVenue::for_venue(&u, VenueIdx(9)).is_err());
    assert!(v.can_accept((1 << 20) / REPORTS_PER_ORDER_MAX));
}

proptest! {
    /// Any sequence of orders, times and fill model: reports never exceed an order's
    /// quantity, every order is answered, and venue positions equal the fills.
    #[test]
    fn any_orders_any_model(
        seed in any::<u64>(),
        partial in 0u32..=1_000_000,
        reject in 0u32..=1_000_000,
        transient in 0u32..=1_000_000,
        latency_us in 0u64..1000,
        raw in proptest::collection::vec((0u32..4, any::<bool>(), -2i64..400, any::<bool>(), 0u64..100_000), 1..200),
    ) {
        let cfg = SimVenueConfig { latency_us, partial_fill_ppm: partial, reject_ppm: reject, transient_failure_ppm: transient, seed,
    ..SimVenueConfig::default()
};
        let mut v = venue(&cfg);
        let mut reports = Vec::new();
        let mut now = Nanos(0);
        let mut sent = Vec::new();
        for (i, &(f, buy, qty, reduce_only, dt)) in raw.iter().enumerate() {
            let mut o = order(i as u64, f, if buy { Side::Buy } else { Side::Sell }, qty);
            o.reduce_only = reduce_only;
            now = Nanos(now.0 + dt);
            v.submit(&[o], now, &mut |r| reports.push(r));
            sent.push(o);
        }
        v.poll(Nanos(u64::MAX), &mut |r| reports.push(r));
        prop_assert_eq!(v.in_flight(), 0);
        let by_order = per_order(&reports);
        let mut pos: HashMap<u32, i64> = HashMap::new();
        for o in &sent {
            let p = &by_order[&o.id];
            prop_assert!(p.filled >= 0 && p.filled + p.canceled <= o.qty.0.max(0));
            prop_assert!(p.rejects.len() + p.acks as usize == 1);
            *pos.entry(o.follower.0).or_default() += o.side.sign() * p.filled;
        }
        for (f, sum) in pos {
            prop_assert_eq!(v.position(FollowerIdx(f), BTC), Lots(sum));
        }
    }
}

#[test]
fn tagged_reports_go_back_to_the_submitter_even_for_a_reused_id() {
    let cfg = SimVenueConfig {
        latency_us: 1_000,
        ..noisy(9)
    };
    let batch = orders(40);
    let mut v = venue(&cfg);
    let mut got: Vec<(u64, ExecReport)> = Vec::new();
    v.submit_tagged(&batch[..20], Nanos(1_000), 7, |tag, r| got.push((tag, r)));
    // The other client reuses one id of the first (which the engine never does).
    let mut theirs = batch[20..].to_vec();
    theirs.push(batch[0]);
    v.submit_tagged(&theirs, Nanos(2_000), 8, |tag, r| got.push((tag, r)));
    v.poll_tagged(Nanos(u64::MAX), |tag, r| got.push((tag, r)));
    assert_eq!(v.in_flight(), 0);

    // Tags aside, the same reports as untagged submits in the same order.
    let mut plain = venue(&cfg);
    let mut expected = Vec::new();
    plain.submit(&batch[..20], Nanos(1_000), &mut |r| expected.push(r));
    plain.submit(&theirs, Nanos(2_000), &mut |r| expected.push(r));
    plain.poll(Nanos(u64::MAX), &mut |r| expected.push(r));
    let reports: Vec<ExecReport> = got.iter().map(|(_, r)| *r).collect();
    assert_eq!(reports, expected);

    // Each report carries the tag of the call that submitted its order: the reused
    // id's reports go to both, the first order's to 7, the duplicate's to 8.
    let reused = batch[0].id;
    let of = |tag: u64| -> Vec<ExecReport> {
        got.iter()
            .filter(|(t, r)| *t == tag && r.order_id == reused)
            .map(|(_, r)| *r)
            .collect()
    };
    assert!(!of(7).is_empty() && !of(8).is_empty());
    for (tag, r) in &got {
        let mine = match tag {
            7 => &batch[..20],
            8 => &theirs[..],
            other => panic!("tag {other}"),
        };
        assert!(mine.iter().any(|o| o.id == r.order_id), "{tag} {r:?}");
    }
    assert_eq!(v.duplicate_client_ids(), 1);
}

/// Every report of `orders` submitted at `now` to a venue that fills all.
fn fill_all_reports(cfg: &SimVenueConfig, orders: &[FollowerOrder], now: Nanos) -> Vec<ExecReport> {
    let mut v = venue(cfg).fill_all();
    let mut reports = Vec::new();
    v.submit(orders, now, &mut |r| reports.push(r));
    v.poll(Nanos(u64::MAX), &mut |r| reports.push(r));
    reports
}

/// An order copying a leader fill at `BTC_PRICE` at venue time `venue_ts`.
fn copy(n: u64, side: Side, qty: i64, order_type: OrderType, limit: Ticks) -> FollowerOrder {
    FollowerOrder {
        order_type,
        limit,
        venue_ts: Nanos(1_700_000_000_000_000_000),
        ref_price: BTC_PRICE,
        ..order(n, 0, side, qty)
    }
}

#[test]
fn a_copy_fills_at_the_market_around_the_leaders_price_and_in_the_inputs_time() {
    // Defaults: 1 bp spread, 5 bp per 1,000,000 of notional, 5 bp fee, 50 µs.
    let cfg = SimVenueConfig::default();
    // 1 BTC at 65,000 = 65,000 notional: impact ceil(500 × 0.065) = 33 ppm;
    // cost 50 + 33 = 83 ppm: 650,000 × 1.000083 = 650,053.95 → 650,054 (buy),
    // 650,000 × 0.999917 = 649,946.05 → 649,946 (sell).
    let cap = Ticks(653_250); // a 50 bp slippage cap
    let orders = [
        copy(1, Side::Buy, 1_000, OrderType::LimitIoc, cap),
        copy(2, Side::Sell, 1_000, OrderType::Market, BTC_PRICE),
    ];
    let reports = fill_all_reports(&cfg, &orders, Nanos(5));
    let fills: Vec<&ExecReport> = reports
        .iter()
        .filter(|r| r.kind == ExecKind::Fill)
        .collect();
    assert_eq!(fills.len(), 2);
    assert_eq!(
        (fills[0].qty, fills[0].price),
        (Lots(1_000), Ticks(650_054))
    );
    assert_eq!(
        (fills[1].qty, fills[1].price),
        (Lots(1_000), Ticks(649_946))
    );
    // Not at the limit: the regression of issue 16 (every IOC filled at its cap).
    assert_ne!(fills[0].price, cap);
    // 5 bp of 65,005.4 = 32.5027 → rounded up to 1e-8.
    assert_eq!(fills[0].fee, Money(3_250_270_000));
    // Stamped in the input's time plus the latency, not at `now` (5 ns).
    for r in &reports {
        assert_eq!(r.venue_ts, Nanos(1_700_000_000_000_000_000 + 50_000));
    }
}

#[test]
fn an_ioc_limit_takes_what_its_limit_reaches_or_nothing() {
    let cfg = SimVenueConfig::default();
    // A limit 1 bp above the leader's price: half the spread (0.5 bp) leaves
    // 0.5 bp = 50 ppm for the impact: ceil(500 × 65q / 1,000,000) ≤ 50, q ≤ 1,538.
    let limit = Ticks(650_065);
    let reports = fill_all_reports(
        &cfg,
        &[copy(1, Side::Buy, 5_000, OrderType::LimitIoc, limit)],
        Nanos(0),
    );
    let fill = reports.iter().find(|r| r.kind == ExecKind::Fill).unwrap();
    assert_eq!(fill.qty, Lots(1_538));
    assert!(fill.price <= limit);
    let cancel = reports
        .iter()
        .find(|r| r.kind == ExecKind::Canceled)
        .unwrap();
    assert_eq!(cancel.qty, Lots(5_000 - 1_538));

    // A limit at the leader's price is inside the spread: canceled in full.
    let reports = fill_all_reports(
        &cfg,
        &[copy(2, Side::Sell, 10, OrderType::LimitIoc, BTC_PRICE)],
        Nanos(0),
    );
    assert!(reports.iter().all(|r| r.kind != ExecKind::Fill));
    let cancel = reports
        .iter()
        .find(|r| r.kind == ExecKind::Canceled)
        .unwrap();
    assert_eq!(cancel.qty, Lots(10));
}

#[test]
fn the_mid_follows_the_newest_leader_price_and_a_flat_book_fills_at_it() {
    let flat = SimVenueConfig {
        spread_ppm: 0,
        impact_ppm: 0,
        ..SimVenueConfig::default()
    };
    let mut later = copy(2, Side::Buy, 3, OrderType::Market, Ticks(660_000));
    later.ref_price = Ticks(660_000);
    later.venue_ts = Nanos(later.venue_ts.0 + 1);
    // An order without a reference (read back from a journal) meets the
    // newest mid, not its own limit.
    let mut bare = order(3, 0, Side::Buy, 3);
    bare.order_type = OrderType::Market;
    let orders = [
        copy(1, Side::Buy, 3, OrderType::Market, BTC_PRICE),
        later,
        bare,
    ];
    let reports = fill_all_reports(&flat, &orders, Nanos(0));
    let prices: Vec<Ticks> = reports
        .iter()
        .filter(|r| r.kind == ExecKind::Fill)
        .map(|r| r.price)
        .collect();
    assert_eq!(prices, [BTC_PRICE, Ticks(660_000), Ticks(660_000)]);
    // Without any reference at all, an order fills at its own limit.
    let reports = fill_all_reports(&flat, &[order(4, 0, Side::Sell, 3)], Nanos(0));
    let fill = reports.iter().find(|r| r.kind == ExecKind::Fill).unwrap();
    assert_eq!(fill.price, BTC_PRICE);
}
