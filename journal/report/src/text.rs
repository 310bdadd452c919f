//! The terminal summary: a screenful of the figures that matter, and where to look
//! next (the JSON has every figure, the HTML page the charts).

use std::fmt::Write;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::metrics::ProfitFactor;
use super::time::{format_duration, format_latency, format_ts, NS_PER_DAY};
use super::{PriceBasis, Report, TradeStats, WindowMetrics};

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
            "  {}  capital {}  equity {}  realized {}  unrealized {}  followers {}  AUM {}",
            l.leader_id,
            l.capital.map_or("n/a".into(), money),
            l.equity.map_or("n/a".into(), money),
            money(l.realized_pnl),
            money(l.unrealized_pnl),
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
        "\nfollowers ({}): net P&L {} (realized {}, unrealized {}, fees {}; funding not recorded); capital added {}",
        r.followers.len(),
        money(sum(|f| f.net_pnl)),
        money(sum(|f| f.realized_pnl)),
        money(sum(|f| f.unrealized_pnl)),
        money(sum(|f| f.fees_paid)),
        money(sum(|f| f.capital_flows)),
    );
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
            let _ = writeln!(
                s,
                "    {} {}: venue {} target {} → {}",
                p.subscription_id,
                p.symbol,
                p.venue,
                p.target,
                p.reasons.join("; ")
            );
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
    let list = |v: &[(String, u64)]| -> String {
        v.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "resync: {} instructions{}, {} orders; deferred {}, venue_limit {}; pairs given up (out of sync) {}{}",
        rs.instructions,
        if rs.by_cause.is_empty() {
            String::new()
        } else {
            format!(" ({})", list(&rs.by_cause))
        },
        rs.orders,
        a.deferred,
        rs.venue_limit,
        rs.gave_up,
        if rs.gave_up_by_reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", list(&rs.gave_up_by_reason))
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
    s
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
