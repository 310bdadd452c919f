//! Property tests of the sizing: the fixed-point target is within one lot of the
//! exact rational target, a follower of a flat leader ends flat (with an ideal
//! venue, and with one that rejects, fills in part and goes away, the resync
//! healing), and the same input sequence gives the same decisions.

use fillcast_engine::config::{load_str, Config, EngineConfig, RemovePolicy};
use fillcast_engine::core::{Core, RevisionPatch};
use fillcast_engine::event::{
    ExecKind, ExecReport, FeedEvent, FillKind, FollowerOrder, LeaderFill, RejectReason,
};
use fillcast_engine::ids::leader_event_key;
use fillcast_engine::model::{
    max_gross_of, proportional_ratio, RatioNumerator, Side, SubIdx, SymbolIdx, Universe, VenueIdx,
};
use fillcast_engine::outputs::{Decision, Outputs, Reason, SyncReason};
use fillcast_engine::units::{
    leverage_times_money, ratio_of_money, DecParts, Exact as Integer, Lots, Money, Nanos, RatioNum,
    Ticks, Q32,
};
use proptest::prelude::*;
use rust_decimal::prelude::*;
use std::path::Path;
use std::sync::Arc;

#[derive(Default)]
struct Collect {
    orders: Vec<FollowerOrder>,
    decisions: Vec<Decision>,
}

impl Outputs for Collect {
    fn order(&mut self, o: &FollowerOrder) {
        self.orders.push(*o);
    }
    fn decision(&mut self, d: &Decision) {
        self.decisions.push(*d);
    }
}

/// One leader, one symbol (lot 0.001, tick 0.1), one follower per mode.
fn universe(
    mult: &str,
    alloc: &str,
    leader_equity: &str,
    ratio: &str,
    amount: &str,
) -> Arc<Universe> {
    let text = model_text(mult, alloc, leader_equity, ratio, amount);
    let cfg = load_str(&text, Path::new("prop.toml")).expect("config");
    Arc::new(Universe::from_config(&cfg).expect("model"))
}

/// The model `universe` resolves: leader L, follower F, and subscriptions
/// `prop` (proportional), `ratio` (fixed ratio) and `amount` (fixed amount).
fn model_text(mult: &str, alloc: &str, leader_equity: &str, ratio: &str, amount: &str) -> String {
    format!(
        r#"
[[venues]]
name = "sim"
kind = "sim"
[[symbols]]
name = "S"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"
[[leaders]]
id = "L"
equity = "{leader_equity}"
[[followers]]
id = "F"
equity = "1000000000"
[[subscriptions]]
id = "prop"
follower = "F"
leader = "L"
allocation = "{alloc}"
mode = "proportional"
multiplier = "{mult}"
[[subscriptions]]
id = "ratio"
follower = "F"
leader = "L"
allocation = "{alloc}"
mode = "fixed_ratio"
ratio = "{ratio}"
[[subscriptions]]
id = "amount"
follower = "F"
leader = "L"
allocation = "{alloc}"
mode = "fixed_amount"
amount = "{amount}"
"#
    )
}

/// The model of the reload `text`, laid out after `was`, and the engine settings
/// `cfg` with `on_remove` as `keep` says.
fn reloaded(
    text: &str,
    was: &Config,
    cfg: &EngineConfig,
    keep: bool,
) -> (Arc<Universe>, EngineConfig) {
    let next = load_str(text, Path::new("reload.toml"))
        .expect("reload config")
        .arranged_after(was)
        .expect("arranged");
    let u2 = Arc::new(Universe::from_config(&next).expect("reload model"));
    let cfg2 = EngineConfig {
        on_remove: if keep {
            RemovePolicy::Keep
        } else {
            RemovePolicy::Close
        },
        ..cfg.clone()
    };
    (u2, cfg2)
}

fn engine_cfg() -> EngineConfig {
    EngineConfig {
        max_working_orders: 1 << 14,
        dedup_window: 1 << 14,
        ..EngineConfig::default()
    }
}

/// Leader fills as (signed qty in lots, price in ticks, order qty multiple ≥ 1).
fn fills() -> impl Strategy<Value = Vec<(i64, i64, i64)>> {
    prop::collection::vec((-5_000i64..5_000, 1_000i64..2_000_000, 1i64..4), 1..40)
        .prop_map(|v| v.into_iter().filter(|(q, _, _)| *q != 0).collect())
}

fn leader_fill(u: &Universe, i: usize, q: i64, px: i64, order_mult: i64) -> LeaderFill {
    LeaderFill {
        leader: u.leader("L").unwrap(),
        symbol: SymbolIdx(0),
        side: Side::from_sign(q),
        qty: Lots(q.abs()),
        price: Ticks(px),
        event_key: leader_event_key("L", &format!("e{i}")),
        order_key: i as u64 + 1,
        order_qty: Lots(q.abs() * order_mult),
        venue_ts: Nanos(1_700_000_000_000_000_000 + i as u64),
        recv_ts: Nanos(1_700_000_000_000_000_000 + i as u64),
        kind: FillKind::Trade,
    }
}

/// Fill every order at once (an ideal venue), so positions equal targets.
fn fill_all(core: &mut Core, orders: &[FollowerOrder], trade: &mut u64) {
    let mut sink = Collect::default();
    for o in orders {
        *trade += 1;
        let r = ExecReport {
            order_id: o.id,
            kind: ExecKind::Fill,
            qty: o.qty,
            price: o.limit,
            trade_id: *trade,
            ..ExecReport::default()
        };
        core.on_exec(&r, &mut sink);
    }
    assert!(sink.orders.is_empty());
}

/// The exact model in decimals: the same rules with no fixed point.
struct Exact {
    ratio: [Option<Decimal>; 3],
    pos: i64,
}

impl Exact {
    fn apply(
        &mut self,
        base: [Decimal; 2],
        amount: Decimal,
        mplt: Decimal,
        q: i64,
        px: i64,
        order_qty: i64,
    ) -> [Decimal; 3] {
        let p0 = self.pos;
        let p1 = p0 + q;
        self.pos = p1;
        let opens = p1 != 0 && (p0 == 0 || p0.signum() != p1.signum());
        let add = if opens {
            p1.abs()
        } else {
            (p1.abs() - p0.abs()).max(0)
        };
        let per_amount = Decimal::from(add) / (Decimal::from(order_qty) * Decimal::from(px) * mplt);
        for (i, r) in self.ratio.iter_mut().enumerate() {
            if opens {
                *r = Some(if i < 2 {
                    base[i]
                } else {
                    amount * per_amount / Decimal::from(p1.abs())
                });
            } else if add > 0 && i == 2 {
                if let Some(v) = r {
                    *r = Some(
                        (*v * Decimal::from(p0.abs()) + amount * per_amount)
                            / Decimal::from(p1.abs()),
                    );
                }
            }
            if p1 == 0 {
                *r = None;
            }
        }
        self.ratio
            .map(|r| r.map(|v| v * Decimal::from(p1)).unwrap_or_default())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Orders that add exposure never break a cap; orders that reduce it are never
    /// held back by one (only a non-flat reduction below the venue minimum waits).
    #[test]
    fn caps_never_exceeded_and_reductions_never_blocked(
        seq in fills(), max_order in 1u32..50_000, max_pos in 1u32..100_000, lev in 1u32..50,
    ) {
        let text = format!(
            "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n[[symbols]]\nname = \"S\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nmin_notional = \"5\"\nvenue = \"sim\"\n\
             [[leaders]]\nid = \"L\"\nequity = \"100000\"\n[[followers]]\nid = \"F\"\nequity = \"10000\"\nmax_leverage = \"{}\"\n\
             [[subscriptions]]\nfollower = \"F\"\nleader = \"L\"\nallocation = \"10000\"\nmode = \"fixed_ratio\"\nratio = \"0.5\"\n\
             max_order_notional = \"{max_order}\"\nmax_position_notional = \"{max_pos}\"\n",
            Decimal::new(lev as i64, 1)
        );
        let u = Arc::new(Universe::from_config(&load_str(&text, Path::new("caps.toml")).expect("config")).expect("model"));
        let mut core = Core::new(Arc::clone(&u), &engine_cfg());
        let spec = u.sym(SymbolIdx(0)).clone();
        let max_gross = Decimal::new(lev as i64, 1) * Decimal::from(10_000);
        let mut trade = 0;
        for (i, (q, px, m)) in seq.iter().enumerate() {
            let mut sink = Collect::default();
            let held = core.position(SubIdx(0), SymbolIdx(0)).0;
            core.on_feed(&FeedEvent::LeaderFill(leader_fill(&u, i, *q, *px, *m)), &mut sink);
            for o in sink.orders.iter().filter(|o| !o.reduce_only) {
                let notional = spec.notional(o.qty, Ticks(*px)).to_decimal();
                prop_assert!(notional <= Decimal::from(max_order), "order notional {notional} > {max_order}");
            }
            fill_all(&mut core, &sink.orders, &mut trade);
            let after = core.position(SubIdx(0), SymbolIdx(0));
            let pos_notional = spec.notional(after, Ticks(*px)).to_decimal();
            let increased = after.0.abs() > held.abs() && after.0.signum() == held.signum().max(after.0.signum());
            if increased {
                prop_assert!(pos_notional <= Decimal::from(max_pos), "position {pos_notional} > {max_pos}");
                prop_assert!(pos_notional <= max_gross, "gross {pos_notional} > {max_gross}");
            }
            for d in &sink.decisions {
                let reduces = d.target.0.abs() < held.abs() && (d.target.0 == 0 || d.target.0.signum() == held.signum());
                if reduces && d.target.0 == 0 {
                    prop_assert_eq!(d.sent.0, -held, "a close to flat is sent in full");
                }
                if reduces {
                    prop_assert!(matches!(d.reason, Reason::None | Reason::BelowMin | Reason::NoChange), "reduction held back: {:?}", d);
                }
            }
        }
    }

    #[test]
    fn fixed_point_target_within_one_lot_of_exact(
        mult in 1u32..500, alloc in 100u32..1_000_000, leader_eq in 1_000u32..10_000_000,
        ratio in 1u32..100_000, amount in 10u32..1_000_000, seq in fills(),
    ) {
        let mult_d = Decimal::new(mult as i64, 2);
        let ratio_d = Decimal::new(ratio as i64, 3);
        let u = universe(&mult_d.to_string(), &alloc.to_string(), &leader_eq.to_string(), &ratio_d.to_string(), &amount.to_string());
        let mut core = Core::new(Arc::clone(&u), &engine_cfg());
        let base = [mult_d * Decimal::from(alloc) / Decimal::from(leader_eq), ratio_d];
        let mplt = u.symbols[0].lot_size * u.symbols[0].tick_size;
        let mut exact = Exact { ratio: [None; 3], pos: 0 };
        let mut trade = 0;
        for (i, (q, px, m)) in seq.iter().enumerate() {
            let f = leader_fill(&u, i, *q, *px, *m);
            let mut sink = Collect::default();
            core.on_feed(&FeedEvent::LeaderFill(f), &mut sink);
            fill_all(&mut core, &sink.orders, &mut trade);
            let want = exact.apply(base, Decimal::from(amount), mplt, *q, *px, q.abs() * m);
            for (s, w) in want.iter().enumerate() {
                let got = core.target(SubIdx(s as u32), SymbolIdx(0)).0;
                let w = w.trunc().to_i64().unwrap();
                prop_assert!((got - w).abs() <= 1, "sub {s} step {i}: fixed {got} vs exact {w}");
            }
        }
    }

    #[test]
    fn follower_of_a_flat_leader_ends_flat(seq in fills(), ratio in 1u32..5_000) {
        let u = universe("1", "50000", "100000", &Decimal::new(ratio as i64, 3).to_string(), "1000");
        let mut core = Core::new(Arc::clone(&u), &engine_cfg());
        let mut trade = 0;
        let mut pos = 0;
        for (i, (q, px, m)) in seq.iter().enumerate() {
            pos += q;
            let mut sink = Collect::default();
            core.on_feed(&FeedEvent::LeaderFill(leader_fill(&u, i, *q, *px, *m)), &mut sink);
            fill_all(&mut core, &sink.orders, &mut trade);
        }
        if pos != 0 {
            let mut sink = Collect::default();
            core.on_feed(&FeedEvent::LeaderFill(leader_fill(&u, 10_000, -pos, 100_000, 1)), &mut sink);
            fill_all(&mut core, &sink.orders, &mut trade);
        }
        prop_assert_eq!(core.leader_position(u.leader("L").unwrap(), SymbolIdx(0)), Lots(0));
        for s in 0..u.subs.len() {
            prop_assert_eq!(core.position(SubIdx(s as u32), SymbolIdx(0)), Lots(0), "sub {}", s);
        }
        prop_assert_eq!(core.live_orders(), 0);
    }

    /// The never-unhedged promise against a venue that rejects (every reason),
    /// fills in part, cancels, and goes down now and then, with orders answered
    /// late and out of order: once the leader is flat and the venue is back and
    /// well, time passing (ticks) brings every follower flat, or a reason is recorded.
    #[test]
    ///
    /// Issue 12: at a step the strategy picks (or never), a reload removes the
    /// `amount` subscription (closing it, or keeping its positions) and adds one
    /// that copies the leader's open positions or waits for the next episode: the
    /// grown core takes over the running state, and the promise holds across it.
    fn follower_of_a_flat_leader_ends_flat_despite_rejects_partials_outages_and_restated_orders(
        seq in fills(), answers in prop::collection::vec(0u8..14, 1..64), places in 2usize..9,
        reload_at in prop::option::of(0usize..40), keep in any::<bool>(), copy in any::<bool>(),
    ) {
        let u = universe("1", "50000", "100000", "0.5", "1000");
        let cfg = EngineConfig { orders_per_subscription: places, ..engine_cfg() };
        // The reload's model: `amount` gone, `late` added after the rest.
        let text = model_text("1", "50000", "100000", "0.5", "1000");
        let was = load_str(&text, Path::new("prop.toml")).expect("config");
        let amount_sub = text.find("[[subscriptions]]\nid = \"amount\"").expect("amount");
        let next_text = format!(
            "{}[[subscriptions]]\nid = \"late\"\nfollower = \"F\"\nleader = \"L\"\nallocation = \"50000\"\nmode = \"proportional\"\ncopy_open_positions = {copy}\n",
            &text[..amount_sub]
        );
        let (u2, cfg2) = reloaded(&next_text, &was, &cfg, keep);
        let mut core = Core::new(Arc::clone(&u), &cfg);
        let mut trade = 0u64;
        let mut now = 1_700_000_000_000_000_000u64;
        let mut open: Vec<FollowerOrder> = Vec::new();
        let mut pos = 0;
        let mut k = 0usize;
        let mut answer = |core: &mut Core, open: &mut Vec<FollowerOrder>, now: u64, ideal: bool, k: &mut usize| {
            // Answer the oldest half (late and out of order against newer ones).
            let n = if ideal { open.len() } else { open.len().div_ceil(2) };
            let batch: Vec<_> = open.drain(..n).collect();
            for o in batch {
                *k += 1;
                let a = if ideal { 0 } else { answers[*k % answers.len()] };
                let mut sink = Collect::default();
                trade += 1;
                let base = ExecReport { order_id: o.id, recv_ts: Nanos(now), ..ExecReport::default() };
                let reject = |r| ExecReport { kind: ExecKind::Rejected, reject: r, ..base };
                let reports: Vec<ExecReport> = match a {
                    0..=4 => vec![ExecReport { kind: ExecKind::Fill, qty: o.qty, price: o.limit, trade_id: trade, ..base }],
                    5 | 6 if o.qty.0 > 1 => vec![
                        ExecReport { kind: ExecKind::Fill, qty: Lots(o.qty.0 / 2), price: o.limit, trade_id: trade, ..base },
                        ExecReport { kind: if a == 5 { ExecKind::Canceled } else { ExecKind::Expired }, ..base },
                    ],
                    7 => vec![reject(RejectReason::InsufficientMargin)],
                    8 => vec![reject(RejectReason::PositionLimit)],
                    9 => vec![reject(RejectReason::Transient)],
                    10 => vec![reject(RejectReason::Other)],
                    // The venue holds the id with other terms (a decision made again
                    // after a journal cut): twice the size, or the other side.
                    12 | 13 => {
                        let (side, qty) = if a == 12 { (o.side, o.qty.0 * 2) } else { (if o.side == Side::Buy { Side::Sell } else { Side::Buy }, (o.qty.0 + 1) / 2) };
                        vec![
                            ExecReport { kind: ExecKind::Restated, qty: Lots(side.sign() * qty), ..base },
                            ExecReport { kind: ExecKind::Fill, qty: Lots(qty), price: o.limit, trade_id: trade, ..base },
                        ]
                    }
                    _ => vec![reject(RejectReason::VenueDown)],
                };
                for r in reports {
                    core.on_exec(&r, &mut sink);
                }
                open.extend(sink.orders);
            }
        };
        for (i, (q, px, m)) in seq.iter().enumerate() {
            now += 1_000_000_000;
            if reload_at == Some(i) {
                prop_assert_eq!(core.apply_revision(Arc::clone(&u2), &cfg, &cfg2), Ok(()));
                prop_assert_eq!(core.check_books(), Ok(()));
            }
            if i % 7 == 3 || i % 7 == 5 {
                let mut sink = Collect::default();
                core.on_feed(&FeedEvent::Venue { venue: VenueIdx(0), up: i % 7 == 5, ts: Nanos(now) }, &mut sink);
                open.extend(sink.orders);
            }
            let f = FeedEvent::LeaderFill(leader_fill(&u, i, *q, *px, *m));
            // Backpressure: the venue answers until the core has room.
            while !core.ready_for(&f) {
                answer(&mut core, &mut open, now, false, &mut k);
            }
            pos += q;
            let mut sink = Collect::default();
            core.on_feed(&f, &mut sink);
            open.extend(sink.orders);
            answer(&mut core, &mut open, now, false, &mut k);
            let mut sink = Collect::default();
            core.on_feed(&FeedEvent::Tick { ts: Nanos(now + 500_000_000) }, &mut sink);
            open.extend(sink.orders);
            // The whole-state check paired with the fan-out's own assertions.
            prop_assert_eq!(core.check_books(), Ok(()));
        }
        if pos != 0 {
            let f = FeedEvent::LeaderFill(leader_fill(&u, 10_000, -pos, 100_000, 1));
            while !core.ready_for(&f) {
                answer(&mut core, &mut open, now, false, &mut k);
            }
            let mut sink = Collect::default();
            core.on_feed(&f, &mut sink);
            open.extend(sink.orders);
        }
        // The closes meet the same venue: refused, filled in part, or lost with it.
        for _ in 0..3 {
            answer(&mut core, &mut open, now, false, &mut k);
        }
        // Quiet: the venue is up and answers everything in full; time passes.
        let mut sink = Collect::default();
        core.on_feed(&FeedEvent::Venue { venue: VenueIdx(0), up: true, ts: Nanos(now) }, &mut sink);
        open.extend(sink.orders);
        for _ in 0..200 {
            answer(&mut core, &mut open, now, true, &mut k);
            if core.live_orders() == 0 && core.resync_pending().0 == 0 {
                break;
            }
            now += 60_000_000_000;
            let mut sink = Collect::default();
            core.on_feed(&FeedEvent::Tick { ts: Nanos(now) }, &mut sink);
            open.extend(sink.orders);
        }
        prop_assert_eq!(core.live_orders(), 0);
        prop_assert_eq!(core.check_books(), Ok(()));
        prop_assert_eq!(core.resync_pending().0, 0);
        prop_assert_eq!(core.leader_position(u.leader("L").unwrap(), SymbolIdx(0)), Lots(0));
        for (sub, sym, lots, why) in core.open_where_leader_flat() {
            prop_assert!(why != SyncReason::None, "sub {} symbol {} holds {} with no recorded reason", sub.0, sym.0, lots.0);
        }
    }

    #[test]
    fn same_input_same_decisions(seq in fills()) {
        let run = || {
            let u = universe("1.5", "20000", "100000", "0.7", "2500");
            let mut core = Core::new(Arc::clone(&u), &engine_cfg());
            let mut all = Collect::default();
            let mut trade = 0;
            for (i, (q, px, m)) in seq.iter().enumerate() {
                let mut sink = Collect::default();
                core.on_feed(&FeedEvent::LeaderFill(leader_fill(&u, i, *q, *px, *m)), &mut sink);
                // Fill only every other order, to exercise working orders and healing.
                let half: Vec<_> = sink.orders.iter().copied().step_by(2).collect();
                fill_all(&mut core, &half, &mut trade);
                all.orders.extend(sink.orders);
                all.decisions.extend(sink.decisions);
            }
            (all.orders, all.decisions)
        };
        let (o1, d1) = run();
        let (o2, d2) = run();
        prop_assert_eq!(o1, o2);
        prop_assert_eq!(d1, d2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Issue 12: a revision that adds subscriptions (a follower's, new followers'
    /// and a new leader's) and removes one is taken by growing the running tables
    /// in their room (`Core::grow_in_place`), where it used to move the whole
    /// state into a core of the new shape. The two ways must decide alike: two
    /// cores take the same inputs, one grows in place and the other moves
    /// (`RevisionPatch::moving`), and every output after is the same, as are the
    /// positions and working orders at the end. (L's book of 3 has room for 16
    /// more, `room`: the growths drawn here fit it.)
    #[test]
    fn a_growth_in_place_decides_as_moving_the_state_does(
        seq in fills(), answers in prop::collection::vec(0u8..10, 1..64), places in 2usize..9,
        reload_at in 0usize..40, keep in any::<bool>(), added in 1usize..13, followers in 0usize..4,
    ) {
        let u = universe("1", "50000", "100000", "0.5", "1000");
        let cfg = EngineConfig { orders_per_subscription: places, ..engine_cfg() };
        let text = model_text("1", "50000", "100000", "0.5", "1000");
        let was = load_str(&text, Path::new("prop.toml")).expect("config");
        let amount_sub = text.find("[[subscriptions]]\nid = \"amount\"").expect("amount");
        let mut next_text = text[..amount_sub].to_string();
        for i in 0..added {
            next_text.push_str(&format!(
                "[[subscriptions]]\nid = \"late{i}\"\nfollower = \"F\"\nleader = \"L\"\nallocation = \"{}\"\nmode = \"proportional\"\ncopy_open_positions = {}\n{}",
                10_000 * (i + 1), i % 2 == 0,
                // Some with a stop-loss: a mark acts on them (`stop_loss_subs`).
                if i % 3 == 0 { "total_stop_loss_pct = \"1\"\n" } else { "" }
            ));
        }
        for j in 0..followers {
            next_text.push_str(&format!(
                "[[followers]]\nid = \"G{j}\"\nequity = \"1000000\"\n[[subscriptions]]\nfollower = \"G{j}\"\nleader = \"L\"\nallocation = \"30000\"\nmode = \"fixed_ratio\"\nratio = \"0.{}\"\ncopy_open_positions = true\n",
                j + 1
            ));
        }
        next_text.push_str("[[leaders]]\nid = \"M\"\nequity = \"100000\"\n[[subscriptions]]\nfollower = \"F\"\nleader = \"M\"\nallocation = \"50000\"\nmode = \"proportional\"\n");
        let (u2, cfg2) = reloaded(&next_text, &was, &cfg, keep);
        let mut cores = [Core::new(Arc::clone(&u), &cfg), Core::new(Arc::clone(&u), &cfg)];
        let mut trade = 0u64;
        let mut now = 1_700_000_000_000_000_000u64;
        let mut open: Vec<FollowerOrder> = Vec::new();
        let mut k = 0usize;
        // One input to both cores: their outputs must be the same.
        let both = |cores: &mut [Core; 2], input: &dyn Fn(&mut Core, &mut Collect)| -> Result<Vec<FollowerOrder>, TestCaseError> {
            let (mut a, mut b) = (Collect::default(), Collect::default());
            input(&mut cores[0], &mut a);
            input(&mut cores[1], &mut b);
            prop_assert_eq!(&a.orders, &b.orders);
            prop_assert_eq!(&a.decisions, &b.decisions);
            Ok(a.orders)
        };
        for (i, (q, px, m)) in seq.iter().enumerate() {
            now += 1_000_000_000;
            if reload_at == i {
                let grows = RevisionPatch::prepare(cores[0].universe(), Arc::clone(&u2), &cfg, &cfg2).expect("a patch");
                let moves = RevisionPatch::prepare(cores[1].universe(), Arc::clone(&u2), &cfg, &cfg2).expect("a patch").moving();
                for (core, mut patch, in_place) in [(0, grows, true), (1, moves, false)] {
                    prop_assert_eq!(cores[core].take_revision(&mut patch), Ok(()));
                    prop_assert_eq!(patch.grew_in_place(), in_place);
                    prop_assert_eq!(cores[core].check_books(), Ok(()));
                }
            }
            let f = FeedEvent::LeaderFill(leader_fill(&u, i, *q, *px, *m));
            if !cores[0].ready_for(&f) || !cores[1].ready_for(&f) {
                prop_assert_eq!(cores[0].ready_for(&f), cores[1].ready_for(&f));
                continue;
            }
            open.extend(both(&mut cores, &|c, s| c.on_feed(&f, s))?);
            // The venue answers everything, in its own ways.
            while let Some(o) = open.pop() {
                k += 1;
                trade += 1;
                let base = ExecReport { order_id: o.id, recv_ts: Nanos(now), ..ExecReport::default() };
                let reports: Vec<ExecReport> = match answers[k % answers.len()] {
                    0..=4 => vec![ExecReport { kind: ExecKind::Fill, qty: o.qty, price: o.limit, trade_id: trade, ..base }],
                    5 | 6 => vec![
                        ExecReport { kind: ExecKind::Fill, qty: Lots((o.qty.0 / 2).max(1)), price: o.limit, trade_id: trade, ..base },
                        ExecReport { kind: ExecKind::Canceled, ..base },
                    ],
                    7 => vec![ExecReport { kind: ExecKind::Rejected, reject: RejectReason::InsufficientMargin, ..base }],
                    _ => vec![ExecReport { kind: ExecKind::Rejected, reject: RejectReason::Transient, ..base }],
                };
                for r in reports {
                    open.extend(both(&mut cores, &|c, s| c.on_exec(&r, s))?);
                }
            }
            let mark = FeedEvent::MarkPrice { symbol: SymbolIdx(0), price: Ticks(px / (1 + (i as i64 % 3))), ts: Nanos(now + 1) };
            open.extend(both(&mut cores, &|c, s| c.on_feed(&mark, s))?);
            let tick = FeedEvent::Tick { ts: Nanos(now + 500_000_000) };
            open.extend(both(&mut cores, &|c, s| c.on_feed(&tick, s))?);
        }
        let u_now = Arc::clone(cores[1].universe());
        for s in 0..u_now.subs.len() {
            let sub = SubIdx(s as u32);
            prop_assert_eq!(cores[0].position(sub, SymbolIdx(0)), cores[1].position(sub, SymbolIdx(0)));
            prop_assert_eq!(cores[0].working(sub, SymbolIdx(0)), cores[1].working(sub, SymbolIdx(0)));
        }
        prop_assert_eq!(cores[0].live_orders(), cores[1].live_orders());
        prop_assert_eq!(cores[0].check_books(), Ok(()));
    }
}

// Issue 14: the core's equity handlers in integers (`units::leverage_times_money`,
// `units::ratio_of_money`) must give what the decimal code gave for every input,
// since a restart replays the journal through the core: a different rounding
// would change an existing journal's decisions.

/// `mant / 10^scale` as config writes decimals: a few digits ("3", "2.5"), a
/// dozen, or up to 28 places and 96-bit mantissas; zero too.
fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (1u128..1_000, 0u32..4),
        (1u128..1_000_000_000_000, 0u32..13),
        (1u128..1 << 96, 0u32..29),
        (1u128..1 << 64, 20u32..29),
        Just((0u128, 0u32)),
    ]
    .prop_map(|(m, s)| Decimal::from_i128_with_scale(m as i128, s))
}

/// Leverages of `decimal()`, and ones a hair from 1/2 (`0.5 ± 10^-k`), whose
/// products with odd equities sit a hair from a midpoint: where rounding first
/// to 28 places and then to 8 differs from rounding once.
fn leverage() -> impl Strategy<Value = Decimal> {
    let hair = (1u32..28, -1i128..=1)
        .prop_map(|(k, d)| Decimal::from_i128_with_scale(5 * 10i128.pow(k - 1) + d, k));
    prop_oneof![decimal(), hair]
}

/// Money units over the whole range, its edges and whole amounts.
fn money_units() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(1),
        Just(i64::MAX),
        Just(i64::MAX - 1),
        0..=i64::MAX,
        1i64..1_000_000_000_000,
        (1i64..i64::MAX / 100_000_000).prop_map(|m| m * 100_000_000),
    ]
}

/// A numerator and a leader equity (units) whose exact `q × 2^32` is `x` plus
/// `d` units of `2^32 / (e × 10^p)`: at an integer, within a hair of one, or
/// anywhere, over the whole Q32 range and past it. `x` is often a multiple of
/// a power of two and `e` of 2^k, which makes exact results.
fn near_ratio() -> impl Strategy<Value = (Decimal, i64)> {
    let x = prop_oneof![
        any::<u64>(),
        0u64..1 << 40,
        (0u64..1 << 34, 0u32..31).prop_map(|(m, k)| m << k),
        Just(u64::MAX),
        Just(1 << 31),
        Just(1 << 32),
        Just(1 << 33),
    ];
    let e = prop_oneof![
        1i64..=i64::MAX,
        1i64..1_000_000_000_000,
        (1i64..1 << 31, 0u32..32).prop_map(|(m, k)| m << k),
    ];
    (x, e, 0u32..21, -2i64..=2, prop::bool::weighted(0.2)).prop_filter_map(
        "a Decimal numerator",
        |(x, e, p, d, past)| {
            let x = x as u128 + if past { 1 << 64 } else { 0 };
            let p = (0..=p)
                .rev()
                .find(|&p| (x * e as u128).checked_mul(10u128.pow(p)).is_some())?;
            let units = (x * e as u128 * 10u128.pow(p)) >> 32;
            let units = units.checked_add_signed(d as i128)?;
            (units < 1 << 96).then(|| (Decimal::from_i128_with_scale(units as i128, 8 + p), e))
        },
    )
}

fn decimal_ratio(num: Decimal, e: i64) -> Option<Q32> {
    proportional_ratio(num, Decimal::ONE, Money(e).to_decimal())
}

fn integer_ratio(num: Decimal, e: i64) -> Integer<Option<Q32>> {
    ratio_of_money(RatioNum::of(DecParts::of(num).expect("positive")), Money(e))
}

fn decimal_max_gross(lev: Decimal, e: i64) -> Option<Money> {
    max_gross_of(Some(lev), Money(e).to_decimal())
}

fn integer_max_gross(lev: Decimal, e: i64) -> Integer<Option<Money>> {
    leverage_times_money(DecParts::of(lev).expect("positive"), Money(e))
}

/// A follower `F` with `max_leverage = lev` and a proportional subscription
/// `multiplier × allocation` to `L`, or `None` if the config is refused.
fn equity_model(lev: Decimal, mult: Decimal, alloc: Decimal) -> Option<Universe> {
    let text = format!(
        "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n[[symbols]]\nname = \"S\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nvenue = \"sim\"\n\
         [[leaders]]\nid = \"L\"\nequity = \"100000\"\n[[followers]]\nid = \"F\"\nequity = \"10000\"\nmax_leverage = \"{lev}\"\n\
         [[subscriptions]]\nfollower = \"F\"\nleader = \"L\"\nallocation = \"{alloc}\"\nmode = \"proportional\"\nmultiplier = \"{mult}\"\n"
    );
    let cfg = load_str(&text, Path::new("equity.toml")).ok()?;
    Universe::from_config(&cfg).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// Where the integers claim a max gross, it is the decimal one.
    #[test]
    fn an_integer_max_gross_is_the_decimal_one(lev in leverage(), e in money_units()) {
        if let Integer::Proven(got) = integer_max_gross(lev, e) {
            prop_assert_eq!(got, decimal_max_gross(lev, e), "{} × {} units", lev, e);
        }
    }

    /// Where the integers claim a ratio, it is the decimal one: on numerators
    /// made to land on, next to, or anywhere near an integer `q × 2^32`.
    #[test]
    fn an_integer_ratio_is_the_decimal_one((num, e) in near_ratio()) {
        if let Integer::Proven(got) = integer_ratio(num, e) {
            prop_assert_eq!(got, decimal_ratio(num, e), "{} / {} units", num, e);
        }
    }

    /// The same with numerators and equities drawn apart (mostly ratios far
    /// past 2^32 or far below 2^-32).
    #[test]
    fn an_integer_ratio_is_the_decimal_one_on_any_decimal(num in decimal(), e in money_units()) {
        if let Integer::Proven(got) = integer_ratio(num, e) {
            prop_assert_eq!(got, decimal_ratio(num, e), "{} / {} units", num, e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The equality tests above would pass with kernels that never answer:
    /// leverages and equities as operators write them are always answered in
    /// integers, over the whole money range.
    #[test]
    fn typical_leverages_take_the_integer_path(
        tenths in 1i64..500, places in 0u32..10, e in money_units(),
    ) {
        for lev in [Decimal::new(tenths, 1), Decimal::new(123_456_789, places)] {
            prop_assert!(
                matches!(integer_max_gross(lev, e), Integer::Proven(_)),
                "{} × {} units", lev, e
            );
        }
    }

    /// Proportional ratios as operators set them up (multipliers of a few
    /// digits, allocations and leader equities in cents) are always answered
    /// in integers.
    #[test]
    fn typical_ratios_take_the_integer_path(
        mult in 1i64..10_000, mult_places in 0u32..4,
        alloc_cents in 1i64..10_000_000_000, leader_cents in 1i64..9_000_000_000_000,
    ) {
        let num = Decimal::new(mult, mult_places) * Money(alloc_cents * 1_000_000).to_decimal();
        let e = leader_cents * 1_000_000;
        prop_assert!(matches!(integer_ratio(num, e), Integer::Proven(_)), "{} / {} units", num, e);
    }

    /// What the core calls (`FollowerSpec::max_gross_at`, `SubscriptionSpec::ratio_at`,
    /// kernel or fallback) is the decimal code on models the loader accepts.
    #[test]
    fn the_model_answers_as_the_decimal_code(
        lev in decimal(), mult in decimal(), alloc_cents in 1i64..10_000_000_000,
        equities in prop::collection::vec(money_units(), 1..20),
    ) {
        let alloc = Money(alloc_cents * 1_000_000);
        let Some(u) = equity_model(lev, mult, alloc.to_decimal()) else {
            return Ok(());
        };
        let num = mult * alloc.to_decimal();
        for e in equities {
            prop_assert_eq!(u.followers[0].max_gross_at(Money(e)), decimal_max_gross(lev, e));
            prop_assert_eq!(u.subs[0].ratio_at(Money(e)), decimal_ratio(num, e));
        }
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

const WHOLE: i64 = 100_000_000;

/// The max gross at its edges: (leverage, equity units, expected, proven).
#[test]
fn the_integer_max_gross_at_its_edges() {
    let cases: &[(&str, i64, Option<i64>, bool)] = &[
        ("3", 0, Some(0), true),
        ("1", i64::MAX, Some(i64::MAX), true),
        ("2", i64::MAX, None, true),
        ("1.00000001", i64::MAX, None, true),
        (
            "0.99999999",
            i64::MAX,
            Some(i64::MAX - 92_233_720_369),
            true,
        ),
        // Half a unit rounds to even, and away from it otherwise.
        ("0.5", 1, Some(0), true),
        ("0.5", 3, Some(2), true),
        ("2.5", 1, Some(2), true),
        ("0.50", 5, Some(2), true),
        ("0.000000005", WHOLE, Some(0), true),
        ("0.000000005", 3 * WHOLE, Some(2), true),
        ("0.000000005", 3 * WHOLE + 1, Some(2), true),
        ("0.0000000050000000001", WHOLE, Some(1), true),
        ("79228162514264337593543950335", 1, None, true),
        (
            "7.9228162514264337593543950335",
            WHOLE,
            Some(792_281_625),
            true,
        ),
        // rust_decimal rounds the product to 28 places first: no proof. Here
        // that makes a midpoint, 0.5 units, of 0.5 + 10^-26, and rounds it down.
        ("0.50000000000000000000000001", 1, Some(0), false),
        ("0.1234567890123456789012345678", 123, Some(15), false),
        ("7.9228162514264337593543950335", 3, Some(24), false),
        ("7.9228162514264337593543950335", i64::MAX, None, false),
    ];
    for &(lev, e, want, proven) in cases {
        let lev = dec(lev);
        let decimal = decimal_max_gross(lev, e);
        assert_eq!(decimal, want.map(Money), "{lev} × {e}");
        match integer_max_gross(lev, e) {
            Integer::Proven(got) => {
                assert!(proven, "{lev} × {e}: proven {got:?}");
                assert_eq!(got, decimal, "{lev} × {e}");
            }
            Integer::Unproven => assert!(!proven, "{lev} × {e}: unproven"),
        }
    }
}

/// The ratio at its edges: (numerator, leader equity units, expected Q32, proven).
#[test]
fn the_integer_ratio_at_its_edges() {
    let one = 1u64 << 32;
    let cases: &[(&str, i64, Option<Option<u64>>, bool)] = &[
        // Exact ratios 1/2, 1, 2 and 1/3.
        ("5000", 10_000 * WHOLE, Some(Some(one / 2)), true),
        ("10000", 10_000 * WHOLE, Some(Some(one)), true),
        ("20000", 10_000 * WHOLE, Some(Some(2 * one)), true),
        ("1", 3 * WHOLE, Some(Some(one / 3)), true),
        // A leader equity of zero: the ratio stays.
        ("1", 0, Some(None), true),
        ("0", WHOLE, Some(Some(0)), true),
        // 2^32 does not fit; just under it does.
        ("4294967296", WHOLE, Some(None), true),
        (
            "4294967295.99999999",
            WHOLE,
            Some(Some(u64::MAX - 42)),
            true,
        ),
        ("4294967297", WHOLE, Some(None), true),
        // 2^-28 (28 places) is a Decimal: exactly 16 units.
        ("0.00000001", 1 << 28, Some(Some(16)), true),
        // 2^-29 (29 places) is not: rust_decimal rounds it down to 28 places
        // and truncates 7.999…, where the exact floor is 8.
        ("0.00000001", 1 << 29, Some(Some(7)), false),
        // 4.3e-19 above and 2.7e-20 below the integer 2^32 + 1: below it,
        // rust_decimal's 28 digits round up to the integer, and truncate to it.
        (
            "100000000.02328306436538696290",
            100_000_000 * WHOLE,
            Some(Some(one + 1)),
            false,
        ),
        (
            "100000000.02328306436538696289",
            100_000_000 * WHOLE,
            Some(Some(one + 1)),
            false,
        ),
        // A numerator past 2^96 units and operands past 128 bits.
        ("79228162514264337593543950335", i64::MAX, Some(None), false),
        (
            "0.0000000000000000000000000001",
            i64::MAX,
            Some(Some(0)),
            false,
        ),
    ];
    for &(num, e, want, proven) in cases {
        let num = dec(num);
        let decimal = decimal_ratio(num, e);
        if let Some(want) = want {
            assert_eq!(decimal, want.map(Q32), "{num} / {e}");
        }
        match integer_ratio(num, e) {
            Integer::Proven(got) => {
                assert!(proven, "{num} / {e}: proven {got:?}");
                assert_eq!(got, decimal, "{num} / {e}");
            }
            Integer::Unproven => assert!(!proven, "{num} / {e}: unproven"),
        }
    }
}

/// The core multiplied `multiplier × allocation` with `*`, which panics past
/// `Decimal::MAX`; no accepted model gets there, since building one computes
/// the same product with `checked_mul` for the first ratio and refuses the
/// config when it overflows (or when the ratio is 2^32 or more, which bounds
/// the product far below). The model now keeps that product, `None` if it
/// overflowed, and the ratio then stays, as `proportional_ratio`'s `None` does.
#[test]
fn a_proportional_product_past_decimal_max_is_refused_and_never_multiplied_again() {
    let huge = dec("79228162514264337593543950335");
    assert!(huge.checked_mul(dec("1000")).is_none());
    assert!(equity_model(dec("3"), huge, dec("1000")).is_none());
    assert!(RatioNumerator::of(huge, Money(1000 * WHOLE)).is_none());
    let u = equity_model(dec("3"), dec("1.5"), dec("1000")).expect("model");
    let num = u.subs[0].ratio_num.expect("proportional");
    assert_eq!(num.value, dec("1500"));
}
