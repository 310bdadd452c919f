//! The report as JSON: every figure, decimals as strings (`"0.1"`, never a
//! float), ratios as numbers, an undefined value as `null`. Decimals are exact
//! where the data is (sums of fills and fees); a figure that went through a
//! division (an average price, a ratio) is rounded to `DECIMAL_PLACES`, so that
//! 31.08 does not print as 31.07999999999999999999999967.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::fees::FeeSchedule;
use super::ledger::OpenPosition;
use super::metrics::ProfitFactor;
use super::recon::PairSync;
use super::{
    FollowerReport, FollowerView, LeaderReport, Leaderboard, OpenWhereLeaderFlat, Report,
    TradeStats, WindowMetrics, RANKED_BY,
};

/// The version of this JSON layout; bumped when a field changes meaning (v2: a
/// window's trade figures count open trades at the mark, `closed_only` keeps the
/// closed-trade figures; annualised figures are null in a too-short window).
/// Funding (issue 16) added fields only: `funding` of a leader and of a
/// subscription (a follower's was there, `null`), a decimal or `null` when the
/// database does not record funding; where it is recorded, `net_pnl`, equity
/// and the figures built on them include it.
pub const SCHEMA: &str = "fillcast.report.v2";

/// The layout of `fillcast report --leaderboard --json`.
pub const LEADERBOARD_SCHEMA: &str = "fillcast.leaderboard.v1";

/// The layout of `fillcast report --follower F --json`.
pub const FOLLOWER_SCHEMA: &str = "fillcast.follower.v1";

/// Decimal places of the longest figure in the JSON (money is exact to 8).
pub const DECIMAL_PLACES: u32 = 12;

pub(crate) fn dec(d: Decimal) -> Value {
    let d = if d.scale() > DECIMAL_PLACES {
        d.round_dp_with_strategy(
            DECIMAL_PLACES,
            rust_decimal::RoundingStrategy::MidpointNearestEven,
        )
    } else {
        d
    };
    Value::String(d.normalize().to_string())
}

pub(crate) fn opt_dec(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, dec)
}

fn num(x: Option<f64>) -> Value {
    x.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| json!(x))
}

fn pairs(v: &[(String, u64)]) -> Value {
    Value::Object(v.iter().map(|(k, n)| (k.clone(), json!(n))).collect())
}

fn profit_factor(p: ProfitFactor) -> Value {
    match p {
        ProfitFactor::Finite(d) => dec(d),
        ProfitFactor::Infinite => json!("inf"),
        ProfitFactor::Undefined => Value::Null,
    }
}

fn curve(c: &[(i64, Decimal)]) -> Value {
    Value::Array(c.iter().map(|(t, e)| json!([t, dec(*e)])).collect())
}

fn open_positions(v: &[OpenPosition]) -> Value {
    Value::Array(
        v.iter()
            .map(|p| {
                json!({
                    "symbol": p.symbol, "qty": dec(p.qty), "avg_price": dec(p.avg_price),
                    "mark": dec(p.mark), "price_basis": p.basis.as_str(),
                    "unrealized_pnl": dec(p.unrealized), "realized_pnl": dec(p.realized),
                    "open_ns": p.open_ns,
                })
            })
            .collect(),
    )
}

fn open_where_leader_flat(o: &OpenWhereLeaderFlat, rows_max: usize) -> Value {
    json!({
        "count": o.count(),
        "unexplained": o.unexplained,
        "by_reason": pairs(&o.by_reason),
        "leader_flat_from": o.leader_flat_from,
        "rows": o.rows.iter().take(rows_max).map(|p| json!({
            "subscription_id": p.subscription_id, "follower_id": p.follower_id,
            "leader_id": p.leader_id, "symbol": p.symbol, "qty": dec(p.qty),
            "reason": p.reason, "source": p.source, "since_seq": p.since_seq,
        })).collect::<Vec<_>>(),
    })
}

fn trade_stats(t: &TradeStats) -> Value {
    json!({
        "trades": t.count, "open_trades": t.open, "wins": t.wins, "losses": t.losses,
        "win_rate": opt_dec(t.win_rate), "profit_factor": profit_factor(t.profit_factor),
        "gross_profit": dec(t.gross_profit), "gross_loss": dec(t.gross_loss),
        "avg_holding_ns": t.avg_holding_ns,
    })
}

/// The headline trade figures (open trades at the mark) sit at the window's level;
/// `closed_only` holds the same keys over the closed trades alone.
fn window(w: &WindowMetrics) -> Value {
    let mut v = json!({
        "window": w.label, "start_ns": w.start_ns, "end_ns": w.end_ns,
        "start_equity": dec(w.start_equity), "end_equity": dec(w.end_equity),
        "pnl": dec(w.pnl), "roi": opt_dec(w.roi), "max_drawdown": opt_dec(w.max_drawdown),
        "sharpe": num(w.sharpe), "annualised_return": num(w.annualised_return),
        "calmar": num(w.calmar), "sharpe_periods": w.periods,
        "too_short_to_annualise": w.too_short_to_annualise,
        "closed_only": trade_stats(&w.closed_only),
    });
    if let (Value::Object(m), Value::Object(t)) = (&mut v, trade_stats(&w.trades)) {
        m.extend(t);
    }
    v
}

fn leader(l: &LeaderReport) -> Value {
    json!({
        "leader_id": l.leader_id,
        "capital": opt_dec(l.capital),
        "capital_source": l.capital_source,
        "equity": opt_dec(l.equity),
        "realized_pnl": dec(l.realized_pnl),
        "unrealized_pnl": dec(l.unrealized_pnl),
        "funding": opt_dec(l.funding),
        "followers": l.followers,
        "aum": dec(l.aum),
        "fills": l.fills,
        "ignored_fills": l.ignored_fills,
        "trades_closed": l.trades_closed,
        "open_positions": open_positions(&l.open_positions),
        "position_gaps": l.position_gaps,
        "windows": l.windows.iter().map(window).collect::<Vec<_>>(),
        "equity_curve": curve(&l.curve),
        "drawdown_curve": curve(&l.drawdown),
    })
}

fn schedule(s: &FeeSchedule) -> Value {
    json!({
        "initial_hwm": dec(s.initial_hwm),
        "hwm": dec(s.hwm),
        "fee": dec(s.fee),
        "leader_share": dec(s.leader_share),
        "platform_share": dec(s.platform_share),
        "accrued": dec(s.accrued),
        "periods": s.periods.iter().map(|p| json!({
            "start_ns": p.start_ns, "end_ns": p.end_ns, "settled": p.settled,
            "equity_end": dec(p.equity_end), "hwm_before": dec(p.hwm_before),
            "fee": dec(p.fee), "leader_share": dec(p.leader_share),
            "platform_share": dec(p.platform_share), "hwm_after": dec(p.hwm_after),
        })).collect::<Vec<_>>(),
    })
}

fn follower(f: &FollowerReport) -> Value {
    json!({
        "follower_id": f.follower_id,
        "account_equity": opt_dec(f.account_equity),
        "account_equity_source": f.account_equity_source,
        "realized_pnl": dec(f.realized_pnl),
        "unrealized_pnl": dec(f.unrealized_pnl),
        "fees_paid": dec(f.fees_paid),
        "funding": opt_dec(f.funding),
        "net_pnl": dec(f.net_pnl),
        "capital_flows": dec(f.capital_flows),
        "performance_fee": dec(f.performance_fee),
        "leader_share": dec(f.leader_share),
        "platform_share": dec(f.platform_share),
        "performance_fee_accrued": dec(f.performance_fee_accrued),
        "subscriptions": f.subscriptions.iter().map(|s| json!({
            "subscription_id": s.subscription_id,
            "leader_id": s.leader_id,
            "mode": s.mode,
            "allocation": opt_dec(s.allocation),
            "fills": s.fills,
            "realized_pnl": dec(s.realized_pnl),
            "unrealized_pnl": dec(s.unrealized_pnl),
            "fees_paid": dec(s.fees_paid),
            "funding": opt_dec(s.funding),
            "net_pnl": dec(s.net_pnl),
            "capital_flows": dec(s.capital_flows),
            "equity": dec(s.equity),
            "time_weighted_return": opt_dec(s.time_weighted_return),
            "open_positions": open_positions(&s.open_positions),
            "performance_fee": schedule(&s.performance_fee),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn report(r: &Report) -> Value {
    let o = &r.options;
    json!({
        "schema": SCHEMA,
        "as_of_ns": r.as_of_ns,
        "empty": r.is_empty(),
        "notes": r.notes,
        "row_counts": Value::Object(r.row_counts.iter().map(|(t, n)| (t.to_string(), json!(n))).collect()),
        "missing_tables": r.missing_tables,
        "options": {
            "windows_days": o.windows_days,
            "sharpe_period_ns": o.sharpe_period_ns,
            "annualise_min_ns": o.annualise_min_ns,
            "periods_per_year": o.periods_per_year(),
            "fee_rate": dec(o.fee.rate),
            "fee_leader_fraction": dec(o.fee.leader_fraction),
            "fee_settlement": o.fee.settlement.as_str(),
            "sync_tolerance_notional": dec(o.sync_tolerance_notional),
        },
        "leaders": r.leaders.iter().map(leader).collect::<Vec<_>>(),
        "followers": r.followers.iter().map(follower).collect::<Vec<_>>(),
        "fees": {
            "fee": dec(r.fees.fee),
            "leader_share": dec(r.fees.leader_share),
            "platform_share": dec(r.fees.platform_share),
            "accrued": dec(r.fees.accrued),
            "by_leader": Value::Object(r.fees.by_leader.iter().map(|(k, v)| (k.clone(), dec(*v))).collect()),
        },
        "pnl_attribution": {
            "leaders_trading": dec(r.pnl_attribution.leaders_trading),
            "spread_and_impact": dec(r.pnl_attribution.spread_and_impact),
            "fees": dec(r.pnl_attribution.fees),
            "funding": r.pnl_attribution.funding.map(dec),
            "total": dec(r.pnl_attribution.total),
            "residual": dec(r.pnl_attribution.residual),
            "fills_at_leader_price": r.pnl_attribution.fills_at_leader_price,
            "fills_at_last_price": r.pnl_attribution.fills_at_last_price,
        },
        "pnl_distribution": r.pnl_distribution.iter().map(|b| json!({
            "lo": dec(b.lo), "hi": dec(b.hi), "count": b.count,
        })).collect::<Vec<_>>(),
        "reconciliation": {
            "tolerance_notional": dec(r.reconciliation.tolerance_notional),
            "pairs_in_sync": r.reconciliation.pairs_in_sync(),
            "pairs": r.reconciliation.pairs.iter().map(|p| json!({
                "follower_id": p.follower_id, "subscription_id": p.subscription_id,
                "leader_id": p.leader_id, "symbol": p.symbol,
                "target": dec(p.target), "has_instruction": p.has_instruction,
                "expected": dec(p.expected), "venue": dec(p.venue),
                "engine": opt_dec(p.engine), "working": dec(p.working),
                "deviation": dec(p.deviation), "deviation_lots": opt_dec(p.deviation_lots),
                "mark": opt_dec(p.mark),
                "deviation_notional": opt_dec(p.deviation_notional),
                "in_sync": p.in_sync, "reasons": p.reasons,
            })).collect::<Vec<_>>(),
            "followers": r.reconciliation.followers.iter().map(|f| json!({
                "follower_id": f.follower_id, "pairs": f.pairs, "out_of_sync": f.out_of_sync,
                "sync_score": dec(f.score), "unpriced": f.unpriced,
            })).collect::<Vec<_>>(),
            "distribution": r.reconciliation.distribution.iter().map(|b| json!({
                "label": b.label, "lo": dec(b.lo), "hi": opt_dec(b.hi), "count": b.count,
            })).collect::<Vec<_>>(),
            "out_of_sync": r.reconciliation.out_of_sync.iter().map(|f| json!({
                "follower_id": f.follower_id,
                "sync_score": dec(f.score),
                "pairs": r.reconciliation.pairs_of(&f.follower_id).map(|p| json!({
                    "subscription_id": p.subscription_id, "symbol": p.symbol,
                    "target": dec(p.target), "venue": dec(p.venue),
                    "deviation": dec(p.deviation),
                    "deviation_lots": opt_dec(p.deviation_lots),
                    "deviation_notional": opt_dec(p.deviation_notional),
                    "reasons": p.reasons,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "open_where_leader_flat": open_where_leader_flat(
                &r.reconciliation.open_where_leader_flat,
                o.open_rows_max,
            ),
        },
        "activity": {
            "leader_fills": r.activity.leader_fills,
            "instructions": r.activity.instructions,
            "instructions_by_status": pairs(&r.activity.instructions_by_status),
            "limited_by_reason": pairs(&r.activity.limited_by_reason),
            "deferred": r.activity.deferred,
            "resync": {
                "instructions": r.activity.resync.instructions,
                "by_cause": pairs(&r.activity.resync.by_cause),
                "by_status": pairs(&r.activity.resync.by_status),
                "orders": r.activity.resync.orders,
                "venue_limit": r.activity.resync.venue_limit,
                "gave_up": r.activity.resync.gave_up,
                "gave_up_by_reason": pairs(&r.activity.resync.gave_up_by_reason),
            },
            "venues": r.activity.venues.iter().map(|v| json!({
                "venue": v.venue, "outages": v.outages, "alarms": v.alarms,
                "stops": v.stops, "downtime_ns": v.downtime_ns, "down_at_end": v.down_at_end,
            })).collect::<Vec<_>>(),
            "orders": r.activity.orders,
            "orders_by_status": pairs(&r.activity.orders_by_status),
            "reject_reasons": pairs(&r.activity.reject_reasons),
            "follower_fills": r.activity.follower_fills,
        },
        "audit": {
            "total": r.audit.total,
            "by_kind": pairs(&r.audit.by_kind),
            "recent": r.audit.recent.iter().map(|a| json!({
                "seq": a.seq, "ts": a.ts, "kind": a.kind, "subject": a.subject,
                "reason": a.reason, "detail": a.detail,
            })).collect::<Vec<_>>(),
        },
        "latency": r.latency.as_ref().map(|l| json!({
            "count": l.count,
            "p50_ns": l.p50_ns, "p99_ns": l.p99_ns, "p999_ns": l.p999_ns,
            "buckets": l.buckets.iter().map(|(ub, n)| json!({"le_ns": ub, "count": n})).collect::<Vec<_>>(),
        })),
    })
}

pub(crate) fn leaderboard(lb: &Leaderboard) -> Value {
    let f = &lb.filter;
    json!({
        "schema": LEADERBOARD_SCHEMA,
        "as_of_ns": lb.as_of_ns,
        "period": f.period,
        "ranked_by": RANKED_BY,
        "filters": {
            "aum_min": opt_dec(f.aum_min),
            "followers_min": f.followers_min,
            "drawdown_max": opt_dec(f.drawdown_max),
        },
        "leaders": lb.rows.iter().map(|r| json!({
            "rank": r.rank, "leader_id": r.leader_id, "roi": dec(r.roi), "pnl": dec(r.pnl),
            "max_drawdown": dec(r.max_drawdown), "followers": r.followers, "aum": dec(r.aum),
            "trades": r.trades, "win_rate": opt_dec(r.win_rate),
            "start_ns": r.start_ns, "end_ns": r.end_ns, "equity_curve": curve(&r.curve),
        })).collect::<Vec<_>>(),
        "left_out": lb.left_out.iter().map(|(id, why)| json!({
            "leader_id": id, "why": why,
        })).collect::<Vec<_>>(),
    })
}

fn pair(p: &PairSync) -> Value {
    json!({
        "subscription_id": p.subscription_id, "leader_id": p.leader_id, "symbol": p.symbol,
        "target": dec(p.target), "expected": dec(p.expected), "venue": dec(p.venue),
        "engine": opt_dec(p.engine), "working": dec(p.working),
        "deviation": dec(p.deviation), "deviation_notional": opt_dec(p.deviation_notional),
        "in_sync": p.in_sync, "reasons": p.reasons,
    })
}

pub(crate) fn follower_view(v: &FollowerView) -> Value {
    let a = &v.activity;
    json!({
        "schema": FOLLOWER_SCHEMA,
        "as_of_ns": v.as_of_ns,
        "notes": v.notes,
        "options": {
            "fee_rate": dec(v.options.fee.rate),
            "fee_leader_fraction": dec(v.options.fee.leader_fraction),
            "fee_settlement": v.options.fee.settlement.as_str(),
        },
        "follower": follower(&v.follower),
        "sync": v.sync.iter().map(pair).collect::<Vec<_>>(),
        "activity": {
            "instructions": a.instructions,
            "instructions_by_status": pairs(&a.instructions_by_status),
            "orders": a.orders,
            "orders_by_status": pairs(&a.orders_by_status),
            "reject_reasons": pairs(&a.reject_reasons),
            "fills": a.fills,
            "filled_notional": dec(a.filled_notional),
            "orders_list": a.orders_list.iter().map(|o| json!({
                "seq": o.seq, "client_order_id": o.client_order_id,
                "subscription_id": o.subscription_id, "symbol": o.symbol, "side": o.side,
                "qty": dec(o.qty), "order_type": o.order_type, "status": o.status,
                "filled_qty": dec(o.filled_qty), "reject_reason": o.reject_reason,
            })).collect::<Vec<_>>(),
        },
    })
}
