//! Fan-out: one leader fill sized, risk-checked and turned into orders for N
//! followers, timed from the start of handling to the last order handed on.
//!
//! - fillcast: `Core::on_feed` writing orders into 32-order chunks (as the egress
//!   ring slots are), with the decisions handed to the journal-entry sink.
//! - baseline, the textbook design, in the same run: per follower, `rust_decimal`
//!   arithmetic (ratio × leader position, rounded to the lot, minus the position),
//!   a notional check, and one message per order on a crossbeam channel to a
//!   consumer thread; timed until the consumer has received the last order.
//!
//! The leader alternates opening and closing, so every fill moves every follower
//! (a worst case: no `no_change` shortcuts). Orders are answered (filled) between
//! samples, outside the timed region.

use fillcast_engine::config::{
    load_str, EngineConfig, FollowerConfig, ModeConfig, SubscriptionConfig,
};
use fillcast_engine::core::{Core, Decision, Outputs};
use fillcast_engine::event::{
    ExecKind, ExecReport, FeedEvent, FollowerOrder, LeaderFill, ORDER_CHUNK,
};
use fillcast_engine::model::{Side, SymbolIdx, Universe};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use hdrhistogram::Histogram;
use rust_decimal::Decimal;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub struct FanoutResult {
    pub followers: usize,
    pub samples: usize,
    pub fillcast_ns: Histogram<u64>,
    pub baseline_ns: Histogram<u64>,
    pub orders_per_fill: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Chunks orders like the egress ring does, and counts decisions.
struct ChunkSink {
    chunk: [FollowerOrder; ORDER_CHUNK],
    len: usize,
    chunks: Vec<[FollowerOrder; ORDER_CHUNK]>,
    decisions: u64,
}

impl Outputs for ChunkSink {
    #[inline(always)]
    fn order(&mut self, o: &FollowerOrder) {
        self.chunk[self.len] = *o;
        self.len += 1;
        if self.len == ORDER_CHUNK {
            if self.chunks.len() < self.chunks.capacity() {
                self.chunks.push(self.chunk);
            }
            self.len = 0;
        }
    }
    #[inline(always)]
    fn decision(&mut self, _d: &Decision) {
        self.decisions += 1;
    }
}

fn universe(followers: usize) -> Arc<Universe> {
    // The world in TOML; the followers as values (100k of them exceed a config file's size cap).
    let t = "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n[[symbols]]\nname = \"BTCUSDT\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nmin_notional = \"5\"\nvenue = \"sim\"\n[[leaders]]\nid = \"L\"\nequity = \"1000000\"\n[[followers]]\nid = \"F\"\nequity = \"20000\"\nmax_leverage = \"5\"\n[[subscriptions]]\nfollower = \"F\"\nleader = \"L\"\nallocation = \"5000\"\nmode = \"proportional\"\nmax_order_notional = \"50000\"\n";
    let mut cfg = load_str(t, Path::new("bench.toml")).expect("bench config");
    let (f0, s0) = (cfg.followers[0].clone(), cfg.subscriptions[0].clone());
    cfg.followers.clear();
    cfg.subscriptions.clear();
    for f in 0..followers {
        cfg.followers.push(FollowerConfig {
            id: format!("F{f}"),
            ..f0.clone()
        });
        let mut s = SubscriptionConfig {
            follower: format!("F{f}"),
            allocation: Decimal::from(5_000 + f % 7 * 1000),
            ..s0.clone()
        };
        match f % 4 {
            0 => s.mode = ModeConfig::Proportional,
            1 => (s.mode, s.ratio) = (ModeConfig::FixedRatio, Some(Decimal::new(2, 2))),
            2 => (s.mode, s.amount) = (ModeConfig::FixedAmount, Some(Decimal::from(2000))),
            _ => (s.mode, s.leverage) = (ModeConfig::FixedLeverage, Some(Decimal::ONE)),
        }
        cfg.subscriptions.push(s);
    }
    Arc::new(Universe::from_config(&cfg).expect("bench model"))
}

fn leader_fill(i: usize, price: i64) -> LeaderFill {
    // Open 2 BTC, close it: every follower moves on every fill.
    LeaderFill {
        leader: Default::default(),
        symbol: SymbolIdx(0),
        side: if i.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        qty: Lots(2_000),
        price: Ticks(price),
        event_key: i as u64 + 1,
        order_key: i as u64 + 1,
        order_qty: Lots(2_000),
        venue_ts: Nanos(1),
        recv_ts: Nanos(1),
    }
}

/// The textbook baseline's per-follower state.
struct DecimalFollower {
    ratio: Decimal,
    position: Decimal,
    max_notional: Decimal,
}

pub fn run(followers: usize, samples: usize) -> FanoutResult {
    let u = universe(followers);
    let cfg = EngineConfig {
        max_working_orders: followers * 4,
        dedup_window: samples * 2 + 16,
        ..EngineConfig::default()
    };
    let mut core = Core::new(Arc::clone(&u), &cfg);
    let mut sink = ChunkSink {
        chunk: [FollowerOrder::default(); ORDER_CHUNK],
        len: 0,
        chunks: Vec::with_capacity(followers / ORDER_CHUNK + 2),
        decisions: 0,
    };
    let mut fillcast_ns = histogram();
    let mut trade = 0u64;
    let mut orders_total = 0u64;
    let mut answer = Vec::with_capacity(followers);
    for i in 0..samples + 20 {
        sink.chunks.clear();
        sink.len = 0;
        let ev = FeedEvent::LeaderFill(leader_fill(i, 650_000));
        let t = Instant::now();
        core.on_feed(&ev, &mut sink);
        let ns = t.elapsed().as_nanos() as u64;
        if i >= 20 {
            let _ = fillcast_ns.record(ns.max(1));
        }
        answer.clear();
        for c in &sink.chunks {
            answer.extend_from_slice(c);
        }
        answer.extend_from_slice(&sink.chunk[..sink.len]);
        orders_total += answer.len() as u64;
        for o in &answer {
            trade += 1;
            let r = ExecReport {
                order_id: o.id,
                kind: ExecKind::Fill,
                qty: o.qty,
                price: o.limit,
                trade_id: trade,
                ..ExecReport::default()
            };
            core.on_exec(&r, &mut sink);
        }
    }

    // The textbook design: decimals per follower, one channel message per order.
    let lot = Decimal::new(1, 3);
    let mut book: Vec<DecimalFollower> = (0..followers)
        .map(|f| DecimalFollower {
            ratio: Decimal::new(5 + (f % 7) as i64, 3),
            position: Decimal::ZERO,
            max_notional: Decimal::from(50_000),
        })
        .collect();
    let (tx, rx) = crossbeam::channel::unbounded::<(usize, Decimal, Decimal)>();
    let (done_tx, done_rx) = crossbeam::channel::bounded::<()>(1);
    let consumer = std::thread::spawn(move || {
        let mut want = 0usize;
        let mut got = 0usize;
        while let Ok((f, qty, px)) = rx.recv() {
            if f == usize::MAX {
                want = qty.try_into().unwrap_or(0);
                if got >= want {
                    let _ = done_tx.send(());
                    got = 0;
                }
                continue;
            }
            std::hint::black_box((f, qty, px));
            got += 1;
            if want > 0 && got >= want {
                let _ = done_tx.send(());
                got = 0;
                want = 0;
            }
        }
    });
    let mut baseline_ns = histogram();
    let mut leader = Decimal::ZERO;
    for i in 0..samples + 20 {
        let price = Decimal::new(650_000, 1);
        leader += if i.is_multiple_of(2) {
            Decimal::from(2)
        } else {
            Decimal::from(-2)
        };
        let t = Instant::now();
        let mut sent = 0usize;
        for (f, s) in book.iter_mut().enumerate() {
            let target = (s.ratio * leader / lot).trunc() * lot;
            let delta = target - s.position;
            if delta.is_zero() {
                continue;
            }
            let notional = delta.abs() * price;
            let qty = if notional > s.max_notional {
                (s.max_notional / price / lot).trunc()
                    * lot
                    * if delta.is_sign_negative() {
                        -Decimal::ONE
                    } else {
                        Decimal::ONE
                    }
            } else {
                delta
            };
            if qty.is_zero() {
                continue;
            }
            s.position += qty;
            let _ = tx.send((f, qty, price));
            sent += 1;
        }
        let _ = tx.send((usize::MAX, Decimal::from(sent as u64), Decimal::ZERO));
        let _ = done_rx.recv();
        let ns = t.elapsed().as_nanos() as u64;
        if i >= 20 {
            let _ = baseline_ns.record(ns.max(1));
        }
    }
    drop(tx);
    let _ = consumer.join();
    FanoutResult {
        followers,
        samples,
        fillcast_ns,
        baseline_ns,
        orders_per_fill: orders_total / (samples as u64 + 20),
    }
}
