//! The terminal summary: a screenful of the figures that matter, and where to look
//! next (the JSON has every figure, the HTML page the charts).

use std::fmt::Write;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::metrics::ProfitFactor;
use super::time::{format_duration, format_latency, format_ts, NS_PER_DAY};
use super::{FollowerView, Leaderboard, PriceBasis, Report, TradeStats, WindowMetrics, RANKED_BY};

/// `12.35%`: 2 decimals, rounded half away from zero (−0.059355 is `-5.94%`,
/// 0.000049 is `0.00%`, never `-0.00%`), or `n/a`.
pub(crate) fn pct(x: Option<Decimal>) -> String {
    x.map_or("n/a".into(), |d| {
        let r = (d * Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        let r = if r.is_zero() { Decimal::ZERO } else { r };
        format!("{r:.2}%")
    })
}

/// A ratio with 2 decimals, or `n/a`.
pub(crate) fn ratio(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |x| format!("{x:.2}"))
}

/// An annualised ratio of a window (Sharpe, Calmar): `n/a (window under 30 days)`
/// when the window is too short to annualise, else as `ratio`.
pub(crate) fn annualised(w: &WindowMetrics, x: Option<f64>, min_ns: i64) -> String {
    if w.too_short_to_annualise {
        format!("n/a (window under {})", span(min_ns))
    } else {
        ratio(x)
    }
}

/// `30 days` for whole days, else the duration as `format_duration` writes it.
pub(crate) fn span(ns: i64) -> String {
    match ns / NS_PER_DAY {
        1 if ns % NS_PER_DAY == 0 => "1 day".into(),
        n if ns % NS_PER_DAY == 0 => format!("{n} days"),
        _ => format_duration(ns),
    }
}

/// `3 (1 open) win 33.33% PF 0.40 hold 1d 0h`: one set of trade figures.
fn trade_line(t: &TradeStats) -> String {
    format!(
        "{}{} win {} PF {} hold {}",
        t.count,
        if t.open > 0 {
            format!(" ({} open)", t.open)
        } else {
            String::new()
        },
        pct(t.win_rate),
        pf(t.profit_factor),
        t.avg_holding_ns.map_or("n/a".into(), format_duration),
    )
}

/// What an open position's price is, in words: `mark` or `latest trade`.
pub(crate) fn basis_label(b: PriceBasis) -> &'static str {
    match b {
        PriceBasis::Mark => "mark",
        PriceBasis::LatestTrade => "latest trade",
    }
}

/// Money with 2 decimals (rounded half away from zero for display only).
pub(crate) fn money(d: Decimal) -> String {
    let r = d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    format!("{r:.2}")
}

pub(crate) fn pf(p: ProfitFactor) -> String {
    match p {
        ProfitFactor::Finite(d) => format!("{:.2}", d.to_f64().unwrap_or(0.0)),
        ProfitFactor::Infinite => "∞".into(),
        ProfitFactor::Undefined => "n/a".into(),
    }
}

/// How funding is computed, for the report's definitions (the summary prints it
/// when funding is recorded; the HTML page's definitions may take it as is).
pub(crate) const FUNDING_DEFINITION: &str = "At each funding input (a symbol's rate for the interval at a mark price), every position open in the symbol then, a leader's or a subscription's (what the venue filled), receives amount = -position qty x mark price x rate, rounded once to 8 decimal places half away from zero (a long pays a positive rate, a short receives it). It is cash at its time: net P&L = realized + unrealized - fees + funding, and equity, drawdowns, time-weighted returns and high-water-mark fees see it from then on. A leader's funding is in its equity curve, P&L and ROI; a reported leader equity is only the curve's starting capital, so nothing is counted twice. \"not recorded\": the database predates funding (schema version 7), which is not the same as zero.";

/// Funding as the summary shows it: money, or `not recorded`.
fn funding(f: Option<Decimal>) -> String {
    f.map_or("not recorded".into(), money)
}

/// Rows of the open-where-leader-flat list in the summary (as `fillcast run`).
const OPEN_ROWS_MAX: usize = 10;

pub(crate) fn summary(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fillcast report as of {}",
        r.as_of_ns.map_or("(no data)".into(), format_ts)
    );
    let counts: Vec<String> = r
        .row_counts
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    let _ = writeln!(s, "rows: {}", counts.join(", "));
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if r.is_empty() {
        let _ = writeln!(s, "nothing to report yet.");
        return s;
    }

    let _ = writeln!(s, "\nleaders ({}):", r.leaders.len());
    for l in r.leaders.iter().take(r.options.rows_max) {
        let _ = writeln!(
            s,
            "  {}  capital {}  equity {}  realized {}  unrealized {}  funding {}  followers {}  AUM {}",
            l.leader_id,
            l.capital.map_or("n/a".into(), money),
            l.equity.map_or("n/a".into(), money),
            money(l.realized_pnl),
            money(l.unrealized_pnl),
            funding(l.funding),
            l.followers,
            money(l.aum),
        );
        for w in &l.windows {
            let _ = writeln!(
                s,
                "    {:>4}: P&L {:>12}  ROI {:>8}  maxDD {:>7}  Sharpe {:>6}  Calmar {:>6}  trades {}; closed trades only: {}",
                w.label,
                money(w.pnl),
                pct(w.roi),
                pct(w.max_drawdown),
                annualised(w, w.sharpe, r.options.annualise_min_ns),
                annualised(w, w.calmar, r.options.annualise_min_ns),
                trade_line(&w.trades),
                trade_line(&w.closed_only),
            );
        }
        for p in &l.open_positions {
            let _ = writeln!(
                s,
                "    open {} {} @ {} {} {} unrealized {}",
                p.symbol,
                p.qty,
                money(p.avg_price),
                basis_label(p.basis),
                p.mark,
                money(p.unrealized)
            );
        }
    }

    let sum = |f: fn(&super::FollowerReport) -> Decimal| r.followers.iter().map(f).sum::<Decimal>();
    let _ = writeln!(
        s,
        "\nfollowers ({}): net P&L {} (realized {}, unrealized {}, fees {}, funding {}); capital added {}",
        r.followers.len(),
        money(sum(|f| f.net_pnl)),
        money(sum(|f| f.realized_pnl)),
        money(sum(|f| f.unrealized_pnl)),
        money(sum(|f| f.fees_paid)),
        if r.missing_tables.contains(&"funding_payments") {
            "not recorded".into()
        } else {
            money(r.followers.iter().filter_map(|f| f.funding).sum())
        },
        money(sum(|f| f.capital_flows)),
    );
    attribution_lines(&mut s, &r.pnl_attribution);
    let _ = writeln!(
        s,
        "performance fees ({} of new highs, {}): settled {} = leader {} + platform {}; accrued {}",
        pct(Some(r.options.fee.rate)),
        r.options.fee.settlement.as_str(),
        money(r.fees.fee),
        money(r.fees.leader_share),
        money(r.fees.platform_share),
        money(r.fees.accrued),
    );

    let rc = &r.reconciliation;
    let _ = writeln!(
        s,
        "\nreconciliation: {}/{} (subscription, symbol) pairs on target; {} follower(s) out of sync",
        rc.pairs_in_sync(),
        rc.pairs.len(),
        rc.out_of_sync.len()
    );
    let dist: Vec<String> = rc
        .distribution
        .iter()
        .map(|b| format!("{} {}", b.label, b.count))
        .collect();
    let _ = writeln!(s, "  sync score distribution: {}", dist.join(" | "));
    for f in rc.out_of_sync.iter().take(r.options.rows_max.min(20)) {
        let _ = writeln!(s, "  {} (score {}):", f.follower_id, money(f.score));
        for p in rc.pairs_of(&f.follower_id) {
            let _ = writeln!(s, "    {}", off_target(p));
        }
    }

    let o = &rc.open_where_leader_flat;
    let _ = writeln!(
        s,
        "  open where leader flat {} (subscription, symbol) pairs; unexplained {}",
        o.count(),
        o.unexplained
    );
    for (why, n) in &o.by_reason {
        let _ = writeln!(s, "    {why:<28}{n:>8}");
    }
    for p in o.rows.iter().take(OPEN_ROWS_MAX) {
        let _ = writeln!(
            s,
            "    {} {} {} holds {}{}",
            p.subscription_id,
            p.follower_id,
            p.symbol,
            p.qty,
            match (&p.reason, p.source, p.since_seq) {
                (Some(why), Some(src), Some(seq)) => format!(" ({why}: {src} #{seq})"),
                (Some(why), _, _) => format!(" ({why})"),
                (None, _, Some(seq)) => format!(" — NO RECORDED REASON (since #{seq})"),
                (None, _, None) => " — NO RECORDED REASON".to_string(),
            }
        );
    }
    if o.count() > OPEN_ROWS_MAX {
        let _ = writeln!(
            s,
            "    … {} more (the JSON lists them, unexplained first)",
            o.count() - OPEN_ROWS_MAX
        );
    }

    let a = &r.activity;
    let status: Vec<String> = a
        .instructions_by_status
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let limited: Vec<String> = a
        .limited_by_reason
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        s,
        "\ninstructions {}: {}{}",
        a.instructions,
        status.join(", "),
        if limited.is_empty() {
            String::new()
        } else {
            format!("; limited: {}", limited.join(", "))
        }
    );
    let rs = &a.resync;
    let _ = writeln!(
        s,
        "resync: {} instructions{}, {} orders; deferred {}, venue_limit {}; pairs given up (out of sync) {}{}",
        rs.instructions,
        if rs.by_cause.is_empty() {
            String::new()
        } else {
            format!(" ({})", name_counts(&rs.by_cause))
        },
        rs.orders,
        a.deferred,
        rs.venue_limit,
        rs.gave_up,
        if rs.gave_up_by_reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", name_counts(&rs.gave_up_by_reason))
        },
    );
    for v in &a.venues {
        let _ = writeln!(
            s,
            "venue {}: {} outage(s), down {} in all (ended outages), {} alarm(s){}{}",
            v.venue,
            v.outages,
            format_duration(v.downtime_ns),
            v.alarms,
            if v.stops > 0 {
                format!(", {} stopped the engine", v.stops)
            } else {
                String::new()
            },
            if v.down_at_end {
                "; DOWN when the data ends"
            } else {
                ""
            },
        );
    }
    let orders: Vec<String> = a
        .orders_by_status
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(s, "orders {}: {}", a.orders, orders.join(", "));
    if let Some(l) = &r.latency {
        let f = |x: Option<u64>| x.map_or("n/a".into(), format_latency);
        let _ = writeln!(
            s,
            "fan-out latency ({} samples): p50 ≤ {}  p99 ≤ {}  p99.9 ≤ {}",
            l.count,
            f(l.p50_ns),
            f(l.p99_ns),
            f(l.p999_ns)
        );
    }
    if r.audit.total > 0 {
        let kinds: Vec<String> = r
            .audit
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(s, "audit log {}: {}", r.audit.total, kinds.join(", "));
    }
    if !r.missing_tables.contains(&"funding_payments") {
        let _ = writeln!(s, "\ndefinitions:\n  funding: {FUNDING_DEFINITION}");
    }
    s
}

/// The leaderboard: one line per ranked leader, then the leaders left out and why.
pub(crate) fn leaderboard(lb: &Leaderboard) -> String {
    let f = &lb.filter;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fillcast leaderboard over {} as of {}",
        f.period,
        lb.as_of_ns.map_or("(no data)".into(), format_ts)
    );
    let _ = writeln!(s, "{RANKED_BY}");
    let mut filters = Vec::new();
    if let Some(m) = f.aum_min {
        filters.push(format!("AUM ≥ {}", money(m)));
    }
    if let Some(m) = f.followers_min {
        filters.push(format!("followers ≥ {m}"));
    }
    if let Some(m) = f.drawdown_max {
        filters.push(format!("max drawdown ≤ {}", pct(Some(m))));
    }
    let _ = writeln!(
        s,
        "filters: {}",
        if filters.is_empty() {
            "none".to_string()
        } else {
            filters.join(", ")
        }
    );
    if lb.rows.is_empty() {
        let _ = writeln!(s, "no leader passes.");
    } else {
        let _ = writeln!(
            s,
            "{:>4}  {:<16} {:>9} {:>14} {:>8} {:>9} {:>14} {:>7} {:>8}",
            "rank", "leader", "ROI", "P&L", "max DD", "followers", "AUM", "trades", "win rate"
        );
        for r in &lb.rows {
            let _ = writeln!(
                s,
                "{:>4}  {:<16} {:>9} {:>14} {:>8} {:>9} {:>14} {:>7} {:>8}",
                r.rank,
                r.leader_id,
                pct(Some(r.roi)),
                money(r.pnl),
                pct(Some(r.max_drawdown)),
                r.followers,
                money(r.aum),
                r.trades,
                pct(r.win_rate),
            );
        }
    }
    if !lb.left_out.is_empty() {
        let _ = writeln!(s, "left out ({}):", lb.left_out.len());
        for (id, why) in &lb.left_out {
            let _ = writeln!(s, "  {id}: {why}");
        }
    }
    s
}

/// One follower's own summary: its totals, subscriptions, open positions, sync and
/// orders; nothing of any other follower.
pub(crate) fn follower_view(v: &FollowerView) -> String {
    let f = &v.follower;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fillcast follower report: {} as of {}",
        f.follower_id,
        v.as_of_ns.map_or("(no data)".into(), format_ts)
    );
    for n in &v.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(
        s,
        "account equity {}; net P&L {} (realized {}, unrealized {}, trading fees {}, funding {}); capital added {}",
        f.account_equity.map_or("n/a".into(), money),
        money(f.net_pnl),
        money(f.realized_pnl),
        money(f.unrealized_pnl),
        money(f.fees_paid),
        funding(f.funding),
        money(f.capital_flows),
    );
    let _ = writeln!(
        s,
        "performance fees ({} of new highs, {}): settled {} (leader {}, platform {}); accrued {}",
        pct(Some(v.options.fee.rate)),
        v.options.fee.settlement.as_str(),
        money(f.performance_fee),
        money(f.leader_share),
        money(f.platform_share),
        money(f.performance_fee_accrued),
    );
    let _ = writeln!(s, "\nsubscriptions ({}):", f.subscriptions.len());
    for sub in &f.subscriptions {
        let _ = writeln!(
            s,
            "  {} → leader {} ({}): allocation {}, equity {}, net P&L {} (realized {}, unrealized {}, fees {}, funding {}), return {}, {} fill(s); fee settled {}, accrued {}, high-water mark {}",
            sub.subscription_id,
            sub.leader_id,
            sub.mode.as_deref().unwrap_or("mode n/a"),
            sub.allocation.map_or("n/a".into(), money),
            money(sub.equity),
            money(sub.net_pnl),
            money(sub.realized_pnl),
            money(sub.unrealized_pnl),
            money(sub.fees_paid),
            funding(sub.funding),
            pct(sub.time_weighted_return),
            sub.fills,
            money(sub.performance_fee.fee),
            money(sub.performance_fee.accrued),
            money(sub.performance_fee.hwm),
        );
        for p in &sub.open_positions {
            let _ = writeln!(
                s,
                "    open {} {} @ {} {} {} unrealized {}",
                p.symbol,
                p.qty,
                money(p.avg_price),
                basis_label(p.basis),
                p.mark,
                money(p.unrealized)
            );
        }
    }
    let off: Vec<_> = v.sync.iter().filter(|p| !p.in_sync).collect();
    let _ = writeln!(
        s,
        "\npositions: {}/{} (subscription, symbol) pairs on target",
        v.sync.len() - off.len(),
        v.sync.len()
    );
    for p in off {
        let _ = writeln!(s, "  {}", off_target(p));
    }
    let a = &v.activity;
    let _ = writeln!(
        s,
        "\ninstructions {}: {}",
        a.instructions,
        name_counts(&a.instructions_by_status)
    );
    let _ = writeln!(
        s,
        "orders {}: {}{}",
        a.orders,
        name_counts(&a.orders_by_status),
        if a.reject_reasons.is_empty() {
            String::new()
        } else {
            format!("; rejected for: {}", name_counts(&a.reject_reasons))
        }
    );
    let _ = writeln!(
        s,
        "fills {}: notional {}",
        a.fills,
        money(a.filled_notional)
    );
    let shown = a.orders_list.len().min(FOLLOWER_ORDERS_MAX);
    if shown > 0 {
        let _ = writeln!(s, "latest orders ({shown} of {}):", a.orders_list.len());
        for o in a.orders_list.iter().take(shown) {
            let _ = writeln!(
                s,
                "  {} {} {} {} {} {}: {} (filled {}){}",
                o.client_order_id,
                o.subscription_id,
                o.symbol,
                o.side,
                o.qty,
                o.order_type,
                o.status,
                o.filled_qty,
                o.reject_reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(" {r}")),
            );
        }
    }
    if f.funding.is_some() {
        let _ = writeln!(s, "\ndefinitions:\n  funding: {FUNDING_DEFINITION}");
    }
    s
}

/// Orders listed in the follower's summary (the JSON has all).
const FOLLOWER_ORDERS_MAX: usize = 20;

/// `name count, name count, …`.
fn name_counts(v: &[(String, u64)]) -> String {
    v.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A (subscription, symbol) pair off its target, as both reports list it.
fn off_target(p: &crate::recon::PairSync) -> String {
    format!(
        "{} {}: venue {} target {} → {}",
        p.subscription_id,
        p.symbol,
        p.venue,
        p.target,
        p.reasons.join("; ")
    )
}

/// Where follower P&L came from (`attribution`): the parts, which add up to the
/// total, and any residual.
fn attribution_lines(s: &mut String, a: &super::PnlAttribution) {
    let _ = writeln!(
        s,
        "  where it came from: leaders' trading {} + spread and impact {} + fees {} + funding {} = {}",
        money(a.leaders_trading),
        money(a.spread_and_impact),
        money(a.fees),
        a.funding.map_or("not recorded".into(), money),
        money(a.total),
    );
    if !a.residual.is_zero() {
        let _ = writeln!(
            s,
            "  warning: the parts differ from the net P&L by {} (inconsistent data)",
            money(a.residual)
        );
    }
    let _ = writeln!(
        s,
        "    (spread and impact: each fill against the price its decision copied; {} fill(s) copied a leader fill's price, {} a last known price)",
        a.fills_at_leader_price, a.fills_at_last_price
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn pct_of(s: &str) -> String {
        pct(Some(Decimal::from_str(s).unwrap()))
    }

    #[test]
    fn percentages_round_half_away_from_zero() {
        // The audit's case: −5.936% printed as −5.93% (truncated).
        assert_eq!(pct_of("-0.05936"), "-5.94%");
        // Exactly half: away from zero on both sides (not to even, not truncated).
        assert_eq!(pct_of("0.12345"), "12.35%");
        assert_eq!(pct_of("-0.12345"), "-12.35%");
        assert_eq!(pct_of("0.12335"), "12.34%");
        assert_eq!(pct_of("-0.05935"), "-5.94%");
        // Below half: down; a negative that rounds to zero has no sign.
        assert_eq!(pct_of("0.123449"), "12.34%");
        assert_eq!(pct_of("-0.000049"), "0.00%");
        assert_eq!(pct_of("1"), "100.00%");
        assert_eq!(pct(None), "n/a");
    }

    #[test]
    fn spans_name_whole_days() {
        assert_eq!(span(30 * NS_PER_DAY), "30 days");
        assert_eq!(span(NS_PER_DAY), "1 day");
        assert_eq!(span(NS_PER_DAY / 2), "12h 00m");
    }
}
