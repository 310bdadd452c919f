//! The synthetic world every core-stage scenario trades in, and the textbook
//! design's sizing that the baselines run: one symbol (BTCUSDT, lot 0.001, tick
//! 0.1) on one venue, `leaders` leaders, and `followers` followers spread over
//! them round-robin, one subscription each, in all four sizing modes.
//!
//! Each leader alternates opening and closing 2 BTC, so every fill moves every
//! one of its followers: no `no_change` shortcuts, a worst case for the fan-out.

use fillcast_engine::config::{
    load_str_with, Config, FollowerConfig, LeaderConfig, ModeConfig, SubscriptionConfig,
};
use fillcast_engine::event::{
    ExecKind, ExecReport, FillKind, FollowerOrder, LeaderFill, ORDER_CHUNK,
};
use fillcast_engine::model::{LeaderIdx, Side, SymbolIdx, Universe};
use fillcast_engine::outputs::{Decision, Outputs};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::config::GatewayKinds;
use rust_decimal::Decimal;
use std::path::Path;
use std::sync::Arc;

/// 65,000.0 in ticks of 0.1.
pub const PRICE_TICKS: i64 = 650_000;
/// The leader's fill: 2 BTC in lots of 0.001.
pub const LEADER_QTY_LOTS: i64 = 2_000;

/// The bench world: `venue_extra` is appended to the `[[venues]]` table (e.g. a
/// `[venues.sim]` fill model).
pub fn universe(leaders: usize, followers: usize, venue_extra: &str) -> Arc<Universe> {
    Arc::new(Universe::from_config(&config(leaders, followers, venue_extra)).expect("bench model"))
}

/// The bench world's config, which `universe` resolves: follower `F{f}` has one
/// subscription, to leader `L{f % leaders}`, in one of the four modes.
pub fn config(leaders: usize, followers: usize, venue_extra: &str) -> Config {
    assert!(leaders >= 1 && followers >= leaders);
    // The shape in TOML; leaders and followers as values (100k followers exceed a
    // config file's size cap).
    let t = format!(
        "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n{venue_extra}\n[[symbols]]\nname = \"BTCUSDT\"\n\
         lot_size = \"0.001\"\ntick_size = \"0.1\"\nmin_notional = \"5\"\nvenue = \"sim\"\n\
         [[leaders]]\nid = \"L0\"\nequity = \"1000000\"\n[[followers]]\nid = \"F\"\nequity = \"20000\"\n\
         max_leverage = \"5\"\n[[subscriptions]]\nfollower = \"F\"\nleader = \"L0\"\nallocation = \"5000\"\n\
         mode = \"proportional\"\nmax_order_notional = \"50000\"\n"
    );
    let mut cfg = load_str_with(&t, Path::new("bench.toml"), &GatewayKinds).expect("bench config");
    let l0: LeaderConfig = cfg.leaders[0].clone();
    let (f0, s0) = (cfg.followers[0].clone(), cfg.subscriptions[0].clone());
    cfg.leaders = (0..leaders)
        .map(|l| LeaderConfig {
            id: format!("L{l}"),
            ..l0.clone()
        })
        .collect();
    cfg.followers.clear();
    cfg.subscriptions.clear();
    for f in 0..followers {
        cfg.followers.push(FollowerConfig {
            id: format!("F{f}"),
            ..f0.clone()
        });
        let mut s = SubscriptionConfig {
            follower: format!("F{f}"),
            leader: format!("L{}", f % leaders),
            allocation: Decimal::from(5_000 + f % 7 * 1000),
            ..s0.clone()
        };
        // By rank within the leader, so every leader gets all four modes.
        match f / leaders % 4 {
            0 => s.mode = ModeConfig::Proportional,
            1 => (s.mode, s.ratio) = (ModeConfig::FixedRatio, Some(Decimal::new(2, 2))),
            2 => (s.mode, s.amount) = (ModeConfig::FixedAmount, Some(Decimal::from(2000))),
            _ => (s.mode, s.leverage) = (ModeConfig::FixedLeverage, Some(Decimal::ONE)),
        }
        cfg.subscriptions.push(s);
    }
    cfg
}

/// The `nth` fill of `leader` (it opens on even fills, closes on odd ones);
/// `event_key` must be unique across the run and non-zero.
pub fn leader_fill(leader: usize, nth: u64, event_key: u64, recv_ts: Nanos) -> LeaderFill {
    debug_assert!(event_key != 0);
    LeaderFill {
        leader: LeaderIdx(leader as u32),
        symbol: SymbolIdx(0),
        side: if nth.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        qty: Lots(LEADER_QTY_LOTS),
        price: Ticks(PRICE_TICKS),
        event_key,
        order_key: event_key,
        order_qty: Lots(LEADER_QTY_LOTS),
        venue_ts: recv_ts,
        recv_ts,
        kind: FillKind::Trade,
    }
}

/// The venue's answer to an order in these scenarios: filled in full at its limit.
pub fn fill_of(o: &FollowerOrder, trade_id: u64) -> ExecReport {
    ExecReport {
        order_id: o.id,
        kind: ExecKind::Fill,
        qty: o.qty,
        price: o.limit,
        trade_id,
        ..ExecReport::default()
    }
}

/// Chunks orders like the egress ring does (`ORDER_CHUNK` per slot), into chunks
/// preallocated for one fan-out; counts decisions.
pub struct ChunkSink {
    chunk: [FollowerOrder; ORDER_CHUNK],
    len: usize,
    chunks: Vec<[FollowerOrder; ORDER_CHUNK]>,
    pub decisions: u64,
    /// Orders that did not fit the preallocated chunks (must stay 0).
    pub overflow: u64,
}

impl ChunkSink {
    pub fn new(orders_max: usize) -> ChunkSink {
        ChunkSink {
            chunk: [FollowerOrder::default(); ORDER_CHUNK],
            len: 0,
            chunks: Vec::with_capacity(orders_max / ORDER_CHUNK + 2),
            decisions: 0,
            overflow: 0,
        }
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// The orders since the last `clear`, in order.
    pub fn orders(&self) -> impl Iterator<Item = &FollowerOrder> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .chain(self.chunk[..self.len].iter())
    }

    pub fn len(&self) -> usize {
        self.chunks.len() * ORDER_CHUNK + self.len
    }
}

impl Outputs for ChunkSink {
    #[inline(always)]
    fn order(&mut self, o: &FollowerOrder) {
        self.chunk[self.len] = *o;
        self.len += 1;
        if self.len == ORDER_CHUNK {
            if self.chunks.len() < self.chunks.capacity() {
                self.chunks.push(self.chunk);
            } else {
                self.overflow += ORDER_CHUNK as u64;
            }
            self.len = 0;
        }
    }

    #[inline(always)]
    fn decision(&mut self, _d: &Decision) {
        self.decisions += 1;
    }
}

/// The textbook design's per-follower state: decimals throughout.
pub struct DecimalFollower {
    pub ratio: Decimal,
    /// Copied position including working orders.
    pub position: Decimal,
    pub filled: Decimal,
    pub max_notional: Decimal,
}

/// The textbook design's book of one leader's followers.
pub struct DecimalBook {
    /// Global follower numbers, parallel to `followers`.
    pub ids: Vec<usize>,
    pub followers: Vec<DecimalFollower>,
    pub leader_position: Decimal,
    pub fills: u64,
}

/// One book per leader, followers spread as in `universe`.
pub fn decimal_books(leaders: usize, followers: usize) -> Vec<DecimalBook> {
    let mut books: Vec<DecimalBook> = (0..leaders)
        .map(|_| DecimalBook {
            ids: Vec::new(),
            followers: Vec::new(),
            leader_position: Decimal::ZERO,
            fills: 0,
        })
        .collect();
    for f in 0..followers {
        let b = &mut books[f % leaders];
        b.ids.push(f);
        b.followers.push(DecimalFollower {
            ratio: Decimal::new(5 + (f % 7) as i64, 3),
            position: Decimal::ZERO,
            filled: Decimal::ZERO,
            max_notional: Decimal::from(50_000),
        });
    }
    books
}

impl DecimalBook {
    /// The leader's next fill, sized for every follower with `rust_decimal`
    /// (ratio × leader position, rounded to the lot, minus the position; capped by
    /// the order notional); `emit(follower, signed qty, price)` per order.
    pub fn on_fill(&mut self, mut emit: impl FnMut(usize, Decimal, Decimal)) {
        let lot = Decimal::new(1, 3);
        let price = Decimal::new(PRICE_TICKS, 1);
        let qty = Decimal::new(LEADER_QTY_LOTS, 3);
        self.leader_position += if self.fills.is_multiple_of(2) {
            qty
        } else {
            -qty
        };
        self.fills += 1;
        let leader = self.leader_position;
        for (i, s) in self.followers.iter_mut().enumerate() {
            let target = (s.ratio * leader / lot).trunc() * lot;
            let delta = target - s.position;
            if delta.is_zero() {
                continue;
            }
            let notional = delta.abs() * price;
            let qty = if notional > s.max_notional {
                let sign = if delta.is_sign_negative() {
                    -Decimal::ONE
                } else {
                    Decimal::ONE
                };
                (s.max_notional / price / lot).trunc() * lot * sign
            } else {
                delta
            };
            if qty.is_zero() {
                continue;
            }
            s.position += qty;
            emit(self.ids[i], qty, price);
        }
    }

    /// A venue fill of `qty` for the follower at `index` in this book.
    pub fn on_exec(&mut self, index: usize, qty: Decimal) {
        self.followers[index].filled += qty;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leader_gets_its_share_and_every_follower_moves() {
        let u = universe(4, 40, "");
        assert_eq!(u.leaders.len(), 4);
        assert_eq!(u.subs.len(), 40);
        let mut books = decimal_books(4, 40);
        let mut n = 0;
        books[1].on_fill(|f, q, _| {
            assert_eq!(f % 4, 1);
            assert!(q > Decimal::ZERO);
            n += 1;
        });
        assert_eq!(n, 10);
    }
}
