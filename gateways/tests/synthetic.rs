//! The synthetic leader generator: reproducible from its seed, every leader flat at
//! the end (and sometimes before), sane fills and orders, profiles respected, pacing.

use fillcast_engine::event::{FeedEvent, LeaderFill};
use fillcast_engine::model::{LeaderIdx, Side, SymbolIdx};
use fillcast_engine::port::{Source, SourcePoll};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::synthetic::{SyntheticLeaders, FILLS_PER_ORDER_MAX};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

fn drain(source: &mut SyntheticLeaders) -> Vec<FeedEvent> {
    let mut out = Vec::new();
    for step in 0..10_000_000u64 {
        match source.next(Nanos(step)) {
            SourcePoll::Event(e) => out.push(e),
            SourcePoll::Finished => {
                assert_eq!(source.next(Nanos(step)), SourcePoll::Finished);
                return out;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("generator did not finish");
}

fn fills(events: &[FeedEvent]) -> Vec<LeaderFill> {
    events
        .iter()
        .filter_map(|e| match e {
            FeedEvent::LeaderFill(f) => Some(*f),
            _ => None,
        })
        .collect()
}

fn generate(seed: u64, total: u64) -> (SyntheticLeaders, Vec<FeedEvent>) {
    let mut g = SyntheticLeaders::new(crate::common::universe(), seed, total);
    let events = drain(&mut g);
    (g, events)
}

/// The invariants every generated stream must hold.
fn check_stream(g: &SyntheticLeaders, events: &[FeedEvent], total: u64) {
    let fills = fills(events);
    let expected = if total == 1 { 0 } else { total };
    assert_eq!(fills.len() as u64, expected, "exactly the fill budget");
    assert_eq!(g.fills_emitted(), expected);

    let mut pos: HashMap<(LeaderIdx, SymbolIdx), i64> = HashMap::new();
    let mut keys = HashSet::new();
    let mut orders: HashMap<u64, (LeaderIdx, SymbolIdx, Side, Lots, i64)> = HashMap::new();
    let mut last_ts = Nanos(0);
    for f in &fills {
        assert!(f.qty.0 > 0, "{f:?}");
        assert!(f.price.0 > 0);
        assert!(keys.insert(f.event_key), "event keys are unique");
        assert!(f.venue_ts > last_ts, "venue time increases");
        last_ts = f.venue_ts;
        assert_ne!(f.order_key, 0);
        let o = orders
            .entry(f.order_key)
            .or_insert((f.leader, f.symbol, f.side, f.order_qty, 0));
        assert_eq!(
            (o.0, o.1, o.2, o.3),
            (f.leader, f.symbol, f.side, f.order_qty),
            "fills of one order share leader, symbol, side and order_qty"
        );
        o.4 += f.qty.0;
        assert!(
            o.4 <= f.order_qty.0,
            "fills of one order sum to at most order_qty"
        );
        *pos.entry((f.leader, f.symbol)).or_default() += f.side.sign() * f.qty.0;
    }
    for (&(l, s), &p) in &pos {
        assert_eq!(p, 0, "leader {l:?} is flat in {s:?} at the end");
        assert_eq!(g.position(l, s), Lots::ZERO);
    }
    assert!(g.all_flat());
    assert_eq!(g.positions().count(), 0);
    for o in orders.values() {
        assert!(o.4 >= 1);
    }
    assert!(fills.len() <= orders.len() * FILLS_PER_ORDER_MAX);
}

#[test]
fn same_seed_same_events() {
    let (_, a) = generate(7, 2000);
    let (_, b) = generate(7, 2000);
    assert_eq!(a, b);
    let (_, c) = generate(8, 2000);
    assert_ne!(a, c);
}

#[test]
fn every_leader_is_flat_at_the_end() {
    for total in [0, 1, 2, 3, 4, 5, 7, 10, 33, 100, 5000] {
        let (g, events) = generate(total, total);
        check_stream(&g, &events, total);
    }
}

#[test]
fn leaders_trade_episodes_and_go_flat_along_the_way() {
    let (_, events) = generate(1, 20_000);
    let fills = fills(&events);
    let mut pos: HashMap<(LeaderIdx, SymbolIdx), i64> = HashMap::new();
    let mut flats: HashMap<LeaderIdx, u32> = HashMap::new();
    let mut flips = 0;
    let mut partial_orders = HashSet::new();
    let mut order_fills: HashMap<u64, u32> = HashMap::new();
    for f in &fills {
        let p = pos.entry((f.leader, f.symbol)).or_default();
        let before = *p;
        *p += f.side.sign() * f.qty.0;
        if before != 0 && *p == 0 {
            *flats.entry(f.leader).or_default() += 1;
        }
        if before != 0 && *p != 0 && before.signum() != p.signum() {
            flips += 1;
        }
        *order_fills.entry(f.order_key).or_default() += 1;
        if f.qty < f.order_qty {
            partial_orders.insert(f.order_key);
        }
    }
    // Both leaders trade and go flat many times before the end.
    assert!(flats[&LeaderIdx(0)] > 50, "{flats:?}");
    assert!(flats[&LeaderIdx(1)] > 50, "{flats:?}");
    assert!(flips > 50, "{flips}");
    assert!(order_fills.values().any(|&n| n == 1));
    assert!(order_fills
        .values()
        .any(|&n| n == FILLS_PER_ORDER_MAX as u32));
    assert!(order_fills
        .values()
        .all(|&n| n <= FILLS_PER_ORDER_MAX as u32));
    assert!(partial_orders.len() > 1000);
    // Some orders that add exposure fill only in part.
    let mut sums: HashMap<u64, (i64, i64)> = HashMap::new();
    for f in &fills {
        let e = sums.entry(f.order_key).or_insert((0, f.order_qty.0));
        e.0 += f.qty.0;
    }
    assert!(sums.values().any(|&(filled, ordered)| filled < ordered));
    // Every symbol L1 may trade is traded.
    let symbols: HashSet<SymbolIdx> = fills
        .iter()
        .filter(|f| f.leader == LeaderIdx(0))
        .map(|f| f.symbol)
        .collect();
    assert_eq!(symbols.len(), 3);
}

#[test]
fn declared_profiles_are_respected() {
    let u = crate::common::universe();
    let (_, events) = generate(3, 5000);
    let eth = u.symbol("ETHUSDT").expect("ETHUSDT");
    let spec = u.sym(eth);
    let max = u.leaders[1]
        .profile_max_position
        .expect("L2 declares a maximum");
    let mut pos = 0i64;
    for f in fills(&events).iter().filter(|f| f.leader == LeaderIdx(1)) {
        assert_eq!(f.symbol, eth, "L2 trades only ETHUSDT");
        pos += f.side.sign() * f.qty.0;
        assert!(
            spec.notional(Lots(pos), f.price) <= max,
            "L2 stays within its profile"
        );
    }
}

#[test]
fn marks_follow_fills_and_prices_walk() {
    let (g, events) = generate(5, 3000);
    let marks: Vec<(SymbolIdx, Ticks)> = events
        .iter()
        .filter_map(|e| match e {
            FeedEvent::MarkPrice { symbol, price, .. } => Some((*symbol, *price)),
            _ => None,
        })
        .collect();
    assert!(marks.len() > 3000 / 6, "{}", marks.len());
    assert_eq!(marks.len() as u64, g.marks());
    // A mark repeats the price of the fill just before it.
    for w in events.windows(2) {
        if let (FeedEvent::LeaderFill(f), FeedEvent::MarkPrice { symbol, price, ts }) = (w[0], w[1])
        {
            assert_eq!((symbol, price, ts), (f.symbol, f.price, f.venue_ts));
        }
    }
    let btc: HashSet<Ticks> = fills(&events)
        .iter()
        .filter(|f| f.symbol == SymbolIdx(0))
        .map(|f| f.price)
        .collect();
    assert!(btc.len() > 100, "BTC prices move");
}

#[test]
fn start_prices_can_be_set() {
    let mut g = SyntheticLeaders::new(crate::common::universe(), 1, 200)
        .with_start_price(SymbolIdx(0), Ticks(650_000))
        .with_start_price(SymbolIdx(9), Ticks(1));
    let events = drain(&mut g);
    for f in fills(&events).iter().filter(|f| f.symbol == SymbolIdx(0)) {
        assert!((520_000..=780_000).contains(&f.price.0), "{:?}", f.price);
    }
}

#[test]
fn rate_limits_fills_by_now() {
    let mut g = SyntheticLeaders::new(crate::common::universe(), 2, 100).with_rate(1000);
    let at = |now: u64, g: &mut SyntheticLeaders| -> Vec<SourcePoll> {
        let mut out = Vec::new();
        loop {
            let p = g.next(Nanos(now));
            let stop = matches!(p, SourcePoll::Idle | SourcePoll::Finished);
            out.push(p);
            if stop {
                return out;
            }
        }
    };
    let count = |polls: &[SourcePoll]| {
        polls
            .iter()
            .filter(|p| matches!(p, SourcePoll::Event(FeedEvent::LeaderFill(_))))
            .count()
    };
    let t0 = 5_000_000_000;
    assert_eq!(count(&at(t0, &mut g)), 1, "the first fill is due at once");
    assert_eq!(count(&at(t0 + 999_999, &mut g)), 0);
    assert_eq!(count(&at(t0 + 1_000_000, &mut g)), 1);
    assert_eq!(count(&at(t0 + 10_500_000, &mut g)), 9);
    let rest = at(t0 + 1_000_000_000, &mut g);
    assert_eq!(count(&rest), 89);
    assert_eq!(rest.last(), Some(&SourcePoll::Finished));
    assert_eq!(g.fills_emitted(), 100);
    // recv_ts is the `now` of the poll.
    let mut g = SyntheticLeaders::new(crate::common::universe(), 2, 10);
    match g.next(Nanos(123)) {
        SourcePoll::Event(FeedEvent::LeaderFill(f)) => assert_eq!(f.recv_ts, Nanos(123)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn positions_are_reported_while_trading() {
    let mut g = SyntheticLeaders::new(crate::common::universe(), 4, 1000);
    let mut pos: HashMap<(LeaderIdx, SymbolIdx), i64> = HashMap::new();
    for step in 0..600 {
        if let SourcePoll::Event(FeedEvent::LeaderFill(f)) = g.next(Nanos(step)) {
            *pos.entry((f.leader, f.symbol)).or_default() += f.side.sign() * f.qty.0;
        }
    }
    let reported: HashMap<(LeaderIdx, SymbolIdx), i64> =
        g.positions().map(|(l, s, q)| ((l, s), q.0)).collect();
    pos.retain(|_, p| *p != 0);
    assert_eq!(reported, pos);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_seed_any_budget_ends_flat(seed in any::<u64>(), total in 0u64..3000) {
        let (g, events) = generate(seed, total);
        check_stream(&g, &events, total);
    }
}

/// A generator resumed at any count gives exactly the rest of the stream.
#[test]
fn resume_gives_the_rest_of_the_same_stream() {
    let (_, all) = generate(9, 200);
    for k in [0usize, 1, 57, all.len() - 1, all.len()] {
        let mut g = SyntheticLeaders::new(crate::common::universe(), 9, 200);
        g.resume(k as u64).expect("within the stream");
        assert_eq!(Source::position(&g), Some(k as u64));
        let rest = drain(&mut g);
        let strip = |e: &FeedEvent| match *e {
            FeedEvent::LeaderFill(f) => FeedEvent::LeaderFill(LeaderFill {
                recv_ts: Nanos(0),
                ..f
            }),
            other => other,
        };
        let want: Vec<FeedEvent> = all[k..].iter().map(strip).collect();
        let got: Vec<FeedEvent> = rest.iter().map(strip).collect();
        assert_eq!(got, want, "resumed at {k}");
    }
    let mut g = SyntheticLeaders::new(crate::common::universe(), 9, 200);
    let err = g.resume(all.len() as u64 + 1).unwrap_err();
    assert!(err.to_string().contains("fewer than"), "{err}");
}

/// Every event of `g`, paced at one fill a second of venue time: polled a
/// second of `now` apart, each fill is due when asked for.
fn drain_paced(g: &mut SyntheticLeaders) -> Vec<FeedEvent> {
    let mut out = Vec::new();
    for poll in 1..10_000_000u64 {
        match g.next(Nanos(poll * 1_000_000_000)) {
            SourcePoll::Event(e) => out.push(e),
            SourcePoll::Finished => return out,
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("generator did not finish");
}

fn generate_paced(seed: u64, total: u64, start: Nanos) -> (SyntheticLeaders, Vec<FeedEvent>) {
    let mut g = SyntheticLeaders::new(crate::common::universe(), seed, total)
        .with_start_ts(start)
        .with_rate(1);
    let events = drain_paced(&mut g);
    (g, events)
}

/// Issue 16: at 08:00 and 16:00 UTC of the generator's time, every symbol a
/// leader trades has one funding event at its price then, with a small rate
/// drawn from the seed; the fills are the same as without funding, and the
/// stream is reproducible and resumable across it.
#[test]
fn funding_every_eight_hours_for_each_traded_symbol() {
    use fillcast_engine::units::FundingRate;
    use fillcast_gateways::synthetic::{FUNDING_INTERVAL_NS, FUNDING_RATE_MAX, START_TS_DEFAULT};
    // From 07:59:50 UTC, one fill a second for a minute short of 16 hours:
    // past 08:00 and 16:00, short of 00:00.
    let start = Nanos(START_TS_DEFAULT.0 + FUNDING_INTERVAL_NS - 10_000_000_000);
    let total = 2 * FUNDING_INTERVAL_NS / 1_000_000_000 - 60;
    let (g, events) = generate_paced(5, total, start);
    let fundings: Vec<(usize, SymbolIdx, FundingRate, Ticks, Nanos)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match *e {
            FeedEvent::Funding {
                symbol,
                rate,
                price,
                ts,
            } => Some((i, symbol, rate, price, ts)),
            _ => None,
        })
        .collect();
    // L1 trades all three symbols: three fundings at each of the two times.
    let at: Vec<(u16, u64)> = fundings.iter().map(|f| (f.1 .0, f.4 .0)).collect();
    let (eight, sixteen) = (
        START_TS_DEFAULT.0 + FUNDING_INTERVAL_NS,
        START_TS_DEFAULT.0 + 2 * FUNDING_INTERVAL_NS,
    );
    assert_eq!(
        at,
        vec![
            (0, eight),
            (1, eight),
            (2, eight),
            (0, sixteen),
            (1, sixteen),
            (2, sixteen)
        ]
    );
    assert_eq!(g.fundings(), 6);
    for &(i, symbol, rate, price, ts) in &fundings {
        assert!(rate.0.abs() <= FUNDING_RATE_MAX.0, "{rate:?}");
        // Between the fills around it in time, at the symbol's price: the
        // last fill in it before, or the next fill if it is that symbol's.
        let before = fills(&events[..i]);
        let after = fills(&events[i + 1..]);
        assert!(before.last().is_none_or(|f| f.venue_ts < ts));
        let next = after.first().expect("a fill after it");
        // A fill at the funding time itself (here, fills fall on whole
        // seconds) comes after it: the funding applies to what was held.
        assert!(next.venue_ts >= ts);
        let last_in = before
            .iter()
            .rev()
            .find(|f| f.symbol == symbol)
            .map(|f| f.price);
        assert!(
            Some(price) == last_in || (next.symbol == symbol && next.price == price),
            "{symbol:?} at {price:?}: last {last_in:?}, next {next:?}"
        );
    }
    // Rates differ between symbols and times (drawn, not one constant).
    let rates: HashSet<FundingRate> = fundings.iter().map(|f| f.2).collect();
    assert!(rates.len() > 3, "{rates:?}");
    // The fills do not depend on where the fundings fall: started 3 hours
    // later (one funding time crossed at another place in the stream), the
    // same fills, shifted in time.
    let later = Nanos(start.0 + 3 * 3_600_000_000_000);
    let (_, shifted) = generate_paced(5, total, later);
    let moved: Vec<LeaderFill> = fills(&shifted)
        .into_iter()
        .map(|f| LeaderFill {
            venue_ts: Nanos(f.venue_ts.0 - (later.0 - start.0)),
            recv_ts: Nanos(0),
            ..f
        })
        .collect();
    let unmoved: Vec<LeaderFill> = fills(&events)
        .into_iter()
        .map(|f| LeaderFill {
            recv_ts: Nanos(0),
            ..f
        })
        .collect();
    assert!(moved == unmoved, "the fills depend on where funding falls");
    assert_ne!(
        shifted
            .iter()
            .position(|e| matches!(e, FeedEvent::Funding { .. })),
        Some(fundings[0].0)
    );
    let (_, again) = generate_paced(5, total, start);
    assert_eq!(events, again, "same seed, same events");
    let (_, other) = generate_paced(6, total, start);
    let other_rates: Vec<FundingRate> = other
        .iter()
        .filter_map(|e| match e {
            FeedEvent::Funding { rate, .. } => Some(*rate),
            _ => None,
        })
        .collect();
    assert_ne!(
        other_rates,
        fundings.iter().map(|f| f.2).collect::<Vec<_>>()
    );
    // Resumed just before, at and after a funding: the rest of the stream.
    let strip = |e: &FeedEvent| match *e {
        FeedEvent::LeaderFill(f) => FeedEvent::LeaderFill(LeaderFill {
            recv_ts: Nanos(0),
            ..f
        }),
        other => other,
    };
    for k in [fundings[0].0 - 1, fundings[0].0, fundings[2].0 + 1] {
        let mut g = SyntheticLeaders::new(crate::common::universe(), 5, total)
            .with_start_ts(start)
            .with_rate(1);
        g.resume(k as u64).expect("within the stream");
        let rest: Vec<FeedEvent> = drain_paced(&mut g).iter().map(strip).collect();
        let want: Vec<FeedEvent> = events[k..].iter().map(strip).collect();
        assert_eq!(rest, want, "resumed at {k}");
    }
}
