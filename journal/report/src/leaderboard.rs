//! The leaderboard: leaders ranked over one window of the leader metrics (7, 30,
//! 90 days or all time), after the filters a person choosing a leader asks for
//! (least AUM, least followers, largest drawdown).
//!
//! **Ranking.** By ROI over the period, highest first; ties go to the smaller
//! maximum drawdown over the period, then to more followers, then to the leader id
//! in natural order (`RANKED_BY` says so in every rendering). ROI and drawdown
//! count open positions at the mark, so a held loss ranks as a loss. A leader
//! without an ROI in the period (no capital, or no fill) cannot be ranked and is
//! listed as left out, with why, as is every leader a filter excludes.
//!
//! It reads only the `LeaderReport`s: no database, no follower.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::{id_cmp, ledger, LeaderReport, ReportError, WindowMetrics};

/// What the leaderboard ranks by and how ties break, in words.
pub const RANKED_BY: &str = "ranked by ROI over the period (open positions at the mark), highest first; ties: smaller maximum drawdown over the period, then more followers, then leader id";

/// Points of each leader's equity curve in the leaderboard (a small chart).
pub const CURVE_POINTS_MAX: usize = 60;

/// The period and filters of a leaderboard.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderboardFilter {
    /// A window label of the report: `7d`, `30d`, `90d` or `all` by default.
    pub period: String,
    /// Least assets under management (inclusive).
    pub aum_min: Option<Decimal>,
    /// Least followers (inclusive).
    pub followers_min: Option<usize>,
    /// Largest maximum drawdown over the period, a fraction (0.2 = 20%), inclusive.
    pub drawdown_max: Option<Decimal>,
}

impl Default for LeaderboardFilter {
    fn default() -> Self {
        LeaderboardFilter {
            period: "30d".into(),
            aum_min: None,
            followers_min: None,
            drawdown_max: None,
        }
    }
}

/// One ranked leader.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderboardRow {
    /// 1 for the first.
    pub rank: usize,
    pub leader_id: String,
    pub roi: Decimal,
    pub pnl: Decimal,
    pub max_drawdown: Decimal,
    pub followers: usize,
    pub aum: Decimal,
    /// Trades of the period, open ones included, and their win rate.
    pub trades: usize,
    pub win_rate: Option<Decimal>,
    pub start_ns: i64,
    pub end_ns: i64,
    /// The equity curve over the period, at most `CURVE_POINTS_MAX` points.
    pub curve: Vec<(i64, Decimal)>,
}

/// Leaders ranked over one period.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaderboard {
    pub as_of_ns: Option<i64>,
    pub filter: LeaderboardFilter,
    pub rows: Vec<LeaderboardRow>,
    /// Leaders not ranked, each with why (every reason that applies).
    pub left_out: Vec<(String, String)>,
}

/// The leaderboard of `leaders` (a report's) under `filter`.
pub(crate) fn rank(
    leaders: &[LeaderReport],
    as_of_ns: Option<i64>,
    filter: &LeaderboardFilter,
) -> Result<Leaderboard, ReportError> {
    let labels: Vec<&str> = leaders
        .first()
        .map(|l| l.windows.iter().map(|w| w.label.as_str()).collect())
        .unwrap_or_default();
    if !labels.is_empty() && !labels.contains(&filter.period.as_str()) {
        return Err(ReportError::Options(format!(
            "leaderboard period {:?}: expected one of {}",
            filter.period,
            labels.join(", ")
        )));
    }
    if let Some(dd) = filter.drawdown_max.filter(|d| d.is_sign_negative()) {
        return Err(ReportError::Options(format!(
            "leaderboard maximum drawdown {dd}: expected a fraction of at least 0, such as 0.2"
        )));
    }
    let mut rows = Vec::new();
    let mut left_out = Vec::new();
    for l in leaders {
        let Some(w) = l.windows.iter().find(|w| w.label == filter.period) else {
            continue;
        };
        let why = exclusions(l, w, filter);
        match (w.roi, w.max_drawdown) {
            (Some(roi), Some(max_drawdown)) if why.is_empty() => rows.push(LeaderboardRow {
                rank: 0,
                leader_id: l.leader_id.clone(),
                roi,
                pnl: w.pnl,
                max_drawdown,
                followers: l.followers,
                aum: l.aum,
                trades: w.trades.count,
                win_rate: w.trades.win_rate,
                start_ns: w.start_ns,
                end_ns: w.end_ns,
                curve: curve(l, w),
            }),
            _ => left_out.push((l.leader_id.clone(), why.join("; "))),
        }
    }
    rows.sort_by(order);
    for (i, r) in rows.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    debug_assert_eq!(rows.len() + left_out.len(), leaders.len());
    Ok(Leaderboard {
        as_of_ns,
        filter: filter.clone(),
        rows,
        left_out,
    })
}

/// The ranking order (`RANKED_BY`).
pub(crate) fn order(a: &LeaderboardRow, b: &LeaderboardRow) -> Ordering {
    b.roi
        .cmp(&a.roi)
        .then(a.max_drawdown.cmp(&b.max_drawdown))
        .then(b.followers.cmp(&a.followers))
        .then_with(|| id_cmp(&a.leader_id, &b.leader_id))
}

/// Why a leader is not on the leaderboard; empty if it is.
fn exclusions(l: &LeaderReport, w: &WindowMetrics, f: &LeaderboardFilter) -> Vec<String> {
    let mut why = Vec::new();
    if w.roi.is_none() || w.max_drawdown.is_none() {
        why.push(if l.capital.is_none() {
            "no capital: no ROI to rank by".to_string()
        } else {
            "no fill: no ROI to rank by".to_string()
        });
    }
    if let Some(min) = f.aum_min.filter(|m| l.aum < *m) {
        why.push(format!("AUM {} below {min}", l.aum.normalize()));
    }
    if let Some(min) = f.followers_min.filter(|m| l.followers < *m) {
        why.push(format!("{} follower(s), below {min}", l.followers));
    }
    if let (Some(max), Some(dd)) = (f.drawdown_max, w.max_drawdown) {
        if dd > max {
            why.push(format!(
                "max drawdown {} above {}",
                super::text::pct(Some(dd)),
                super::text::pct(Some(max))
            ));
        }
    }
    why
}

/// The leader's equity over the window, thinned for a small chart.
fn curve(l: &LeaderReport, w: &WindowMetrics) -> Vec<(i64, Decimal)> {
    let base = l.capital.unwrap_or_default();
    let mut c = ledger::window(&l.curve, base, w.start_ns, w.end_ns);
    // The window closes at the report's time: hold the last value to there.
    if c.last().is_some_and(|p| p.0 < w.end_ns) {
        c.push((w.end_ns, w.end_equity));
    }
    ledger::thin(&c, CURVE_POINTS_MAX)
}
