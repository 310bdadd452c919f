//! The simulated venue's market: the price an order meets.
//!
//! Each symbol has a mid that follows the leaders' trades: an order carries the
//! price its decision copied (`FollowerOrder::ref_price`, the leader fill's
//! price, else the symbol's last known price) and the venue time of that input
//! (`FollowerOrder::venue_ts`); the newest such price is the symbol's mid. The
//! book around the mid has a spread and a depth. Taking `q` lots costs half the
//! spread plus an impact that grows linearly with the order's notional: an
//! order of notional `depth` pays `impact_ppm` on average over its lots, one of
//! half that notional half as much. So a buy of `q` lots fills at
//!
//! `mid × (1 + spread_ppm / 2e6 + impact_ppm × notional(q) / depth / 1e6)`
//!
//! rounded to the nearest tick, a half tick against the taker (a sell: minus,
//! never below one tick): a cost under half a tick is not charged, as a buyer
//! right behind a trade finds the rest of its price level. An IOC limit fills the
//! most of its quantity whose price is at or better than its limit, at that
//! price; what would cross the limit is canceled, and an order whose first lot
//! would is canceled in full. A market order fills in full at the market's
//! price. Each order meets the book as the leader's trade left it: the
//! followers' own orders do not move the mid (the next leader trade does).
//!
//! Integers throughout (`i128` intermediates): prices in ticks, notionals in
//! money units, rates in parts per million.

use fillcast_engine::model::Side;
use fillcast_engine::units::{notional, Lots, Money, Nanos, Ticks};

const PPM: i128 = 1_000_000;

/// The book's shape, from `[venues.sim]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MarketModel {
    /// The full spread, in ppm of the mid: a taker pays half of it.
    pub spread_ppm: u32,
    /// The average price impact of an order whose notional is `depth`, in ppm
    /// of the mid; 0: no impact.
    pub impact_ppm: u32,
    /// The notional (money units) that moves the average price by `impact_ppm`;
    /// > 0.
    pub depth: Money,
}

impl MarketModel {
    /// A book with no spread and no impact: every order fills at the mid.
    pub const FLAT: MarketModel = MarketModel {
        spread_ppm: 0,
        impact_ppm: 0,
        depth: Money(i64::MAX),
    };

    /// The cost of taking `qty` lots at `mid`, in ppm of the mid: half the
    /// spread plus the impact, rounded up.
    pub fn cost_ppm(&self, qty: Lots, mid: Ticks, money_per_lot_tick: i64) -> i128 {
        let n = notional(qty, mid, money_per_lot_tick).0 as i128;
        let depth = (self.depth.0 as i128).max(1);
        let impact = (self.impact_ppm as i128 * n + depth - 1) / depth;
        // Twice the cost, to keep an odd spread exact; halved by `price`.
        self.spread_ppm as i128 + 2 * impact
    }

    /// The price of `qty` lots taken on `side` from the book at `mid`.
    pub fn price(&self, side: Side, qty: Lots, mid: Ticks, money_per_lot_tick: i64) -> Ticks {
        let twice = self.cost_ppm(qty, mid, money_per_lot_tick);
        let m = mid.0 as i128;
        let p = match side {
            // round(mid × (2 PPM ± twice) / (2 PPM)), a half up for a buy and
            // down for a sell.
            Side::Buy => (m * (2 * PPM + twice) + PPM) / (2 * PPM),
            Side::Sell => (m * (2 * PPM - twice) + PPM - 1).div_euclid(2 * PPM),
        };
        Ticks(p.clamp(1, i64::MAX as i128) as i64)
    }

    /// What an order of `qty` lots on `side` takes: all of it at the market's
    /// price when `limit` is `None` (a market order) or the price is within the
    /// limit, else the most lots whose price is within it, at that price; `None`
    /// when not one lot is.
    pub fn take(
        &self,
        side: Side,
        qty: Lots,
        mid: Ticks,
        limit: Option<Ticks>,
        money_per_lot_tick: i64,
    ) -> Option<(Lots, Ticks)> {
        let within = |q: Lots| {
            let p = self.price(side, q, mid, money_per_lot_tick);
            match (limit, side) {
                (None, _) => Some(p),
                (Some(l), Side::Buy) => (p <= l).then_some(p),
                (Some(l), Side::Sell) => (p >= l).then_some(p),
            }
        };
        if qty.0 <= 0 {
            return None;
        }
        if let Some(p) = within(qty) {
            return Some((qty, p));
        }
        // The price only worsens with size: the largest quantity within the
        // limit, by bisection (at most 63 steps).
        let (mut lo, mut hi) = (0i64, qty.0);
        while hi - lo > 1 {
            let m = lo + (hi - lo) / 2;
            if within(Lots(m)).is_some() {
                lo = m;
            } else {
                hi = m;
            }
        }
        (lo > 0).then(|| (Lots(lo), within(Lots(lo)).expect("within by the bisection")))
    }
}

/// Each symbol's mid: the newest reference price by venue time.
#[derive(Clone, Debug, Default)]
pub struct Mids {
    mids: Vec<(Ticks, Nanos)>,
}

impl Mids {
    /// Takes `price` at `ts` as `symbol`'s mid unless a newer one is held; an
    /// order without a reference (`price` 0) changes nothing.
    pub fn observe(&mut self, symbol: usize, price: Ticks, ts: Nanos) {
        if price.0 <= 0 {
            return;
        }
        if symbol >= self.mids.len() {
            self.mids.resize(symbol + 1, (Ticks(0), Nanos(0)));
        }
        let m = &mut self.mids[symbol];
        if m.0 .0 <= 0 || ts >= m.1 {
            *m = (price, ts);
        }
    }

    /// `symbol`'s mid, if any order brought one.
    pub fn get(&self, symbol: usize) -> Option<Ticks> {
        self.mids.get(symbol).map(|m| m.0).filter(|p| p.0 > 0)
    }

    /// The newest venue time of any reference.
    pub fn latest_ts(&self) -> Nanos {
        self.mids.iter().map(|m| m.1).max().unwrap_or(Nanos(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// BTC-like: 0.001 lots, 0.1 ticks, 1e8 money units per unit of quote:
    /// one lot × one tick = 0.0001 quote = 10,000 money units.
    const MPLT: i64 = 10_000;

    fn model(spread_ppm: u32, impact_ppm: u32, depth_quote: i64) -> MarketModel {
        MarketModel {
            spread_ppm,
            impact_ppm,
            depth: Money(depth_quote * Money::SCALE),
        }
    }

    #[test]
    fn a_buy_pays_half_the_spread_and_its_impact_above_the_mid() {
        // Mid 65,000.0 (650,000 ticks); 2 bp spread; 10 bp at 1,000,000 of depth.
        let m = model(200, 1_000, 1_000_000);
        let mid = Ticks(650_000);
        // 1 BTC (1,000 lots) = 65,000 notional: impact 1000 × 0.065 = 65 ppm;
        // cost 100 + 65 = 165 ppm: 650,000 × 1.000165 = 650,107.25 → 650,107.
        assert_eq!(m.price(Side::Buy, Lots(1_000), mid, MPLT), Ticks(650_107));
        // The sell: 650,000 × 0.999835 = 649,892.75 → 649,893.
        assert_eq!(m.price(Side::Sell, Lots(1_000), mid, MPLT), Ticks(649_893));
        // Half a tick goes against the taker: mid 10, cost 5% → 10.5 → 11 and 9.5 → 9.
        let half = model(100_000, 0, 1);
        assert_eq!(half.price(Side::Buy, Lots(1), Ticks(10), MPLT), Ticks(11));
        assert_eq!(half.price(Side::Sell, Lots(1), Ticks(10), MPLT), Ticks(9));
        // Under half a tick is not charged: a coarse tick trades at the mid.
        let fine = model(200, 0, 1);
        assert_eq!(fine.price(Side::Buy, Lots(1), Ticks(100), MPLT), Ticks(100));
        // No spread, no impact: the mid.
        assert_eq!(
            MarketModel::FLAT.price(Side::Buy, Lots(1_000), mid, MPLT),
            mid
        );
        assert_eq!(
            MarketModel::FLAT.price(Side::Sell, Lots(1_000), mid, MPLT),
            mid
        );
    }

    #[test]
    fn an_ioc_limit_fills_at_the_market_not_at_its_limit() {
        let m = model(200, 1_000, 1_000_000);
        let mid = Ticks(650_000);
        // A limit 30 bp above the mid buys at the market's 650,107.
        let limit = Ticks(651_950);
        assert_eq!(
            m.take(Side::Buy, Lots(1_000), mid, Some(limit), MPLT),
            Some((Lots(1_000), Ticks(650_107)))
        );
    }

    #[test]
    fn an_ioc_limit_takes_only_what_its_limit_reaches_and_nothing_below_the_touch() {
        let m = model(200, 1_000, 1_000_000);
        let mid = Ticks(650_000);
        // A limit 2 bp above the mid: half the spread leaves 1 bp (100 ppm) for the
        // impact, which a notional of 1,000,000 × 100 / 1,000 = 100,000 reaches:
        // 1.538 BTC at 65,000. Of 5 BTC asked, 1,538 lots fill, at the limit.
        let limit = Ticks(650_130);
        let (q, p) = m
            .take(Side::Buy, Lots(5_000), mid, Some(limit), MPLT)
            .unwrap();
        assert!(p <= limit);
        assert!(m.price(Side::Buy, Lots(q.0 + 1), mid, MPLT) > limit);
        assert_eq!((q, p), (Lots(1_538), limit));
        // A limit at the mid is below the touch: nothing fills.
        assert_eq!(m.take(Side::Buy, Lots(5_000), mid, Some(mid), MPLT), None);
        assert_eq!(m.take(Side::Sell, Lots(5_000), mid, Some(mid), MPLT), None);
        // A market order fills in full, whatever it costs.
        let (q, p) = m.take(Side::Sell, Lots(5_000), mid, None, MPLT).unwrap();
        assert_eq!(q, Lots(5_000));
        assert!(p < mid);
    }

    #[test]
    fn a_mid_follows_the_newest_reference_by_venue_time() {
        let mut mids = Mids::default();
        assert_eq!(mids.get(3), None);
        mids.observe(3, Ticks(100), Nanos(10));
        mids.observe(3, Ticks(90), Nanos(5)); // older: ignored
        assert_eq!(mids.get(3), Some(Ticks(100)));
        mids.observe(3, Ticks(0), Nanos(20)); // no reference: ignored
        mids.observe(3, Ticks(110), Nanos(10)); // same time: the later one
        assert_eq!(mids.get(3), Some(Ticks(110)));
        assert_eq!(mids.get(0), None);
        assert_eq!(mids.latest_ts(), Nanos(10));
    }

    #[test]
    fn a_sell_never_goes_below_one_tick() {
        let m = model(2_000_000, 1_000_000, 1);
        assert_eq!(m.price(Side::Sell, Lots(1_000), Ticks(5), MPLT), Ticks(1));
    }

    proptest! {
        /// The taker never gets better than the mid, the price only worsens
        /// with size, and what `take` fills is within the limit and maximal.
        #[test]
        fn prices_worsen_with_size_and_take_is_maximal(
            spread in 0u32..5_000, impact in 0u32..50_000, depth in 1i64..10_000_000,
            mid in 1i64..10_000_000, q in 1i64..100_000, lim_bp in -50i64..200, buy: bool,
        ) {
            let m = model(spread, impact, depth);
            let side = if buy { Side::Buy } else { Side::Sell };
            let (mid, q) = (Ticks(mid), Lots(q));
            let p = m.price(side, q, mid, MPLT);
            let p2 = m.price(side, Lots(q.0 * 2), mid, MPLT);
            match side {
                Side::Buy => { prop_assert!(p >= mid); prop_assert!(p2 >= p); }
                Side::Sell => { prop_assert!(p <= mid); prop_assert!(p2 <= p); }
            }
            let limit = Ticks((mid.0 as i128 * (10_000 + side.sign() as i128 * lim_bp as i128) / 10_000).max(1) as i64);
            match m.take(side, q, mid, Some(limit), MPLT) {
                Some((f, fp)) => {
                    prop_assert!(f.0 >= 1 && f <= q);
                    prop_assert_eq!(fp, m.price(side, f, mid, MPLT));
                    let inside = (buy && fp <= limit) || (!buy && fp >= limit);
                    prop_assert!(inside);
                    if f < q {
                        let next = m.price(side, Lots(f.0 + 1), mid, MPLT);
                        let beyond = (buy && next > limit) || (!buy && next < limit);
                        prop_assert!(beyond);
                    }
                }
                None => {
                    let one = m.price(side, Lots(1), mid, MPLT);
                    let beyond = (buy && one > limit) || (!buy && one < limit);
                    prop_assert!(beyond);
                }
            }
        }
    }
}
