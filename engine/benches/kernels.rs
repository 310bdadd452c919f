//! Micro-benchmarks of the per-follower kernels the fan-out runs: the sizing
//! kernel (episode ratio and target) and the risk filter, each beside the
//! textbook equivalent in `rust_decimal` over the same inputs, so the figure that
//! matters is the ratio. `cargo bench -p fillcast-engine --bench kernels`.
//!
//! Inputs are 1,024 followers with varied parameters, run as one batch per
//! iteration (as the fan-out does), so the per-element time is batch ÷ 1,024.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fillcast_engine::outputs::Reason;
use fillcast_engine::risk::{allow_increase, RiskInput};
use fillcast_engine::sizing::{LeaderMove, NOT_COPYING};
use fillcast_engine::units::{Lots, Money, Ticks, Q32};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::hint::black_box;

const N: usize = 1_024;

/// Deterministic pseudo-random numbers (no dependency on a RNG crate's output).
fn draw(i: usize, salt: u64) -> u64 {
    fillcast_engine::ids::mix64(i as u64 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn sizing(c: &mut Criterion) {
    let mut g = c.benchmark_group("sizing");
    g.throughput(Throughput::Elements(N as u64));
    // Ratios in Q32 between 0.001 and 2 follower lots per leader lot; a quarter of
    // the followers use fixed-notional modes.
    let base: Vec<Q32> = (0..N)
        .map(|i| Q32((draw(i, 1) % (2 << 32)).max(1 << 22)))
        .collect();
    let amount: Vec<Money> = (0..N)
        .map(|i| Money((1_000_000_000 + draw(i, 2) % 50_000_000_000) as i64))
        .collect();
    let fixed: Vec<bool> = (0..N).map(|i| i.is_multiple_of(4)).collect();
    // The leader opens 2,000 lots, then adds 500 (two fills of one order).
    let open = LeaderMove::new(
        Lots(0),
        Lots(2_000),
        Lots(2_000),
        Lots(2_000),
        Ticks(650_000),
        10,
    );
    let add = LeaderMove::new(
        Lots(2_000),
        Lots(2_500),
        Lots(500),
        Lots(500),
        Ticks(651_000),
        10,
    );
    let mut ratio = vec![NOT_COPYING; N];
    g.bench_function(BenchmarkId::new("fillcast_q32", N), |b| {
        b.iter(|| {
            let mut sum = 0i64;
            for k in 0..N {
                let r0 = open.ratio(NOT_COPYING, fixed[k], base[k], amount[k]);
                let r1 = add.ratio(r0, fixed[k], base[k], amount[k]);
                ratio[k] = r1;
                sum = sum.wrapping_add(add.target(r1).0);
            }
            black_box(sum)
        })
    });
    // The textbook kernel: the ratio as a Decimal, target = trunc(ratio × leader
    // position ÷ lot) × lot, fixed-notional ratio = amount ÷ (price × position).
    let lot = Decimal::new(1, 3);
    let dbase: Vec<Decimal> = base
        .iter()
        .map(|b| Decimal::from(b.0) / Decimal::from(1u64 << 32))
        .collect();
    let damount: Vec<Decimal> = amount.iter().map(|a| Decimal::new(a.0, 8)).collect();
    let (px, leader) = (Decimal::new(651_000, 1), Decimal::new(2_500, 3));
    g.bench_function(BenchmarkId::new("textbook_decimal", N), |b| {
        b.iter(|| {
            let mut sum = Decimal::ZERO;
            for k in 0..N {
                let r = if fixed[k] {
                    damount[k] / (px * leader)
                } else {
                    dbase[k]
                };
                let target = (r * leader / lot).trunc() * lot;
                sum += target;
            }
            black_box(sum.to_i64())
        })
    });
    g.finish();
}

fn risk(c: &mut Criterion) {
    let mut g = c.benchmark_group("risk_filter");
    g.throughput(Throughput::Elements(N as u64));
    // A mix in which every branch is taken: most pass, some are cut by a notional
    // cap or leverage, some are refused.
    let inputs: Vec<RiskInput> = (0..N)
        .map(|i| {
            let d = draw(i, 3);
            RiskInput {
                want: Lots(1 + (d % 2_000) as i64),
                held: Lots(((d >> 12) % 3 * 100) as i64),
                price: Ticks(650_000),
                money_per_lot_tick: 10,
                min_qty: Lots(1),
                min_notional: Money(500_000_000),
                is_flip: false,
                blocked: Reason::None,
                sub_paused: d.is_multiple_of(97),
                follower_paused: false,
                symbol_allowed: !d.is_multiple_of(89),
                daily_loss_limit: if d.is_multiple_of(7) {
                    Money(10_000_000_000)
                } else {
                    Money::MAX
                },
                realized_today: Money(-(((d >> 20) % 20_000_000_000) as i64)),
                open_positions: ((d >> 30) % 4) as u32,
                max_open_positions: if d.is_multiple_of(5) { 2 } else { u32::MAX },
                max_order_notional: if d.is_multiple_of(3) {
                    Money(5_000_000_000_000)
                } else {
                    Money::MAX
                },
                max_position_notional: if d.is_multiple_of(11) {
                    Money(8_000_000_000_000)
                } else {
                    Money::MAX
                },
                follower_gross: Money(((d >> 40) % 10_000_000_000_000) as i64),
                own_exposure: Money(0),
                max_gross: if d.is_multiple_of(2) {
                    Money(20_000_000_000_000)
                } else {
                    Money::MAX
                },
            }
        })
        .collect();
    g.bench_function(BenchmarkId::new("fillcast_integer", N), |b| {
        b.iter(|| {
            let mut sum = 0i64;
            for r in &inputs {
                sum = sum.wrapping_add(allow_increase(black_box(r)).qty.0);
            }
            black_box(sum)
        })
    });
    // The textbook filter: the same rules in Decimal money.
    let m = |v: i64| Decimal::new(v, 8);
    let lot = Decimal::new(1, 3);
    let dec: Vec<[Decimal; 8]> = inputs
        .iter()
        .map(|r| {
            [
                Decimal::from(r.want.0) * lot,
                Decimal::from(r.held.0) * lot,
                Decimal::new(r.price.0, 1),
                m(r.max_order_notional.0.min(i64::MAX / 2)),
                m(r.max_position_notional.0.min(i64::MAX / 2)),
                m(r.follower_gross.0),
                m(r.max_gross.0.min(i64::MAX / 2)),
                m(r.min_notional.0),
            ]
        })
        .collect();
    g.bench_function(BenchmarkId::new("textbook_decimal", N), |b| {
        b.iter(|| {
            let mut sum = Decimal::ZERO;
            for (r, [want, held, px, max_order, max_pos, gross, max_gross, min_n]) in
                inputs.iter().zip(&dec)
            {
                if r.sub_paused || !r.symbol_allowed {
                    continue;
                }
                if r.daily_loss_limit != Money::MAX && r.realized_today <= -r.daily_loss_limit {
                    continue;
                }
                if r.held.is_zero() && r.open_positions >= r.max_open_positions {
                    continue;
                }
                let mut qty = *want;
                if qty * px > *max_order {
                    qty = (*max_order / px / lot).trunc() * lot;
                }
                if (held + qty) * px > *max_pos {
                    qty = qty.min(((*max_pos / px / lot).trunc() * lot - held).max(Decimal::ZERO));
                }
                let g = gross + held * px;
                if g + qty * px > *max_gross {
                    qty = qty.min(((*max_gross - g) / px / lot).trunc() * lot);
                }
                if qty <= Decimal::ZERO || qty * px < *min_n {
                    continue;
                }
                sum += qty;
            }
            black_box(sum)
        })
    });
    g.finish();
}

criterion_group!(benches, sizing, risk);
criterion_main!(benches);
