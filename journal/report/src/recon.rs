//! Reconciliation: what the engine decided against what the venues report, per
//! (subscription, symbol), and a sync score per follower.
//!
//! For each (subscription, symbol) pair:
//!
//! - **target**: the leader-derived target of the pair's latest instruction
//!   (`copy_instructions.target`); 0 when the engine never decided anything for it;
//! - **expected**: the sum of `sent` over its instructions (what was sent, assuming
//!   every order filled);
//! - **venue**: the position the venue reported, the signed sum of `follower_fills`;
//! - **engine**: the engine's own `positions.qty`, when present;
//! - **deviation** = venue − target (also in lots when `symbols` gives the lot
//!   size), and **deviation notional** = |deviation| × mark.
//!
//! A pair is *in sync* when its deviation notional is at most the tolerance (0 by
//! default: exactly on target). A follower's **sync score** is the mean absolute
//! deviation notional over its pairs, in quote currency: 0 means every position
//! sits on its target; 25 means the follower is off by 25 quote units per
//! position on average. Notional, not lots, because lots of different symbols do
//! not add up and the schema does not carry lot sizes.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::followers::SubInfo;
use super::query::{signed, Dataset};
use super::unhedged::{self, OpenWhereLeaderFlat};
use super::{id_cmp, status_label, ReportOptions};

/// One (subscription, symbol) pair.
#[derive(Clone, Debug, PartialEq)]
pub struct PairSync {
    pub follower_id: String,
    pub subscription_id: String,
    pub leader_id: String,
    pub symbol: String,
    pub target: Decimal,
    /// Whether any instruction exists for the pair.
    pub has_instruction: bool,
    pub expected: Decimal,
    pub venue: Decimal,
    pub engine: Option<Decimal>,
    /// Signed quantity still open on working orders.
    pub working: Decimal,
    pub deviation: Decimal,
    /// `deviation ÷ lot size`, when the `symbols` table has the symbol.
    pub deviation_lots: Option<Decimal>,
    /// Price used for the notional: the latest mark, else the latest fill price.
    pub mark: Option<Decimal>,
    pub deviation_notional: Option<Decimal>,
    pub in_sync: bool,
    /// Why the pair is off target (empty when in sync).
    pub reasons: Vec<String>,
}

/// One follower's sync score.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerSync {
    pub follower_id: String,
    pub pairs: usize,
    pub out_of_sync: usize,
    /// Mean absolute deviation notional over the priced pairs (quote currency).
    pub score: Decimal,
    /// Pairs with no price, left out of the score.
    pub unpriced: usize,
}

/// One bucket of the sync-score distribution: scores in `(lo, hi]` (the first
/// bucket holds exactly 0, the last has no upper bound).
#[derive(Clone, Debug, PartialEq)]
pub struct SyncBucket {
    pub label: String,
    pub lo: Decimal,
    pub hi: Option<Decimal>,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Reconciliation {
    pub tolerance_notional: Decimal,
    pub pairs: Vec<PairSync>,
    pub followers: Vec<FollowerSync>,
    pub distribution: Vec<SyncBucket>,
    /// Followers with at least one pair out of sync, worst score first.
    pub out_of_sync: Vec<FollowerSync>,
    /// Positions open where the leader is flat, with their recorded reasons.
    pub open_where_leader_flat: OpenWhereLeaderFlat,
}

impl Reconciliation {
    pub fn pairs_in_sync(&self) -> usize {
        self.pairs.iter().filter(|p| p.in_sync).count()
    }

    /// The out-of-sync pairs of one follower.
    pub fn pairs_of<'a>(&'a self, follower_id: &'a str) -> impl Iterator<Item = &'a PairSync> + 'a {
        self.pairs
            .iter()
            .filter(move |p| p.follower_id == follower_id && !p.in_sync)
    }
}

/// Upper bounds of the sync-score buckets after the exact-zero one.
const BUCKET_BOUNDS: [i64; 4] = [1, 10, 100, 1000];

#[derive(Default)]
struct Acc<'a> {
    target: Option<(i64, Decimal)>,
    expected: Decimal,
    venue: Decimal,
    engine: Option<Decimal>,
    working: Decimal,
    last_fill_price: Option<Decimal>,
    last_instruction: Option<&'a super::query::Instruction>,
    limited: BTreeMap<String, u64>,
    rejects: BTreeMap<String, u64>,
    unfilled_done: Decimal,
}

pub(crate) fn reconcile(
    ds: &Dataset,
    subs: &BTreeMap<String, SubInfo>,
    as_of_ns: i64,
    opts: &ReportOptions,
) -> Reconciliation {
    let mut acc: BTreeMap<(&str, &str), Acc<'_>> = BTreeMap::new();
    for i in &ds.instructions {
        let a = acc.entry((&i.subscription_id, &i.symbol)).or_default();
        if a.target.is_none_or(|(s, _)| s <= i.seq) {
            a.target = Some((i.seq, i.target));
            a.last_instruction = Some(i);
        }
        a.expected += i.sent;
        // `no_change` is a skip with nothing to do, not a limit.
        if i.status != "sent" && i.reason != "no_change" {
            *a.limited.entry(status_label(i)).or_default() += 1;
        }
    }
    for o in &ds.orders {
        let a = acc.entry((&o.subscription_id, &o.symbol)).or_default();
        let remaining = (o.qty - o.filled_qty).max(Decimal::ZERO);
        if o.is_working() {
            a.working += signed(&o.side, remaining);
        } else if !remaining.is_zero() {
            a.unfilled_done += remaining;
        }
        if o.status == "rejected" || o.reject_reason.is_some() {
            let r = o
                .reject_reason
                .clone()
                .unwrap_or_else(|| "no reason".into());
            *a.rejects.entry(r).or_default() += 1;
        }
    }
    for f in &ds.fills {
        let a = acc.entry((&f.subscription_id, &f.symbol)).or_default();
        a.venue += signed(&f.side, f.qty);
        a.last_fill_price = Some(f.price);
    }
    for p in &ds.positions {
        acc.entry((&p.subscription_id, &p.symbol))
            .or_default()
            .engine = Some(p.qty);
    }
    let mut leader_price: BTreeMap<&str, Decimal> = BTreeMap::new();
    for f in &ds.leader_fills {
        leader_price.insert(&f.symbol, f.price);
    }

    let tol = opts.sync_tolerance_notional.max(Decimal::ZERO);
    let mut pairs: Vec<PairSync> = acc
        .into_iter()
        .map(|((sub, symbol), a)| {
            let info = subs.get(sub).cloned().unwrap_or_default();
            let target = a.target.map_or(Decimal::ZERO, |t| t.1);
            let deviation = a.venue - target;
            let mark = ds
                .marks
                .at(symbol, as_of_ns)
                .or(a.last_fill_price)
                .or_else(|| leader_price.get(symbol).copied());
            let deviation_notional = mark.and_then(|m| deviation.abs().checked_mul(m.abs()));
            let in_sync = match deviation_notional {
                Some(n) => n <= tol,
                None => deviation.is_zero(),
            };
            let reasons = if in_sync {
                Vec::new()
            } else {
                why(&a, deviation_notional.is_none())
            };
            PairSync {
                follower_id: info.follower_id,
                subscription_id: sub.to_string(),
                leader_id: info.leader_id,
                symbol: symbol.to_string(),
                target,
                has_instruction: a.target.is_some(),
                expected: a.expected,
                venue: a.venue,
                engine: a.engine,
                working: a.working,
                deviation,
                deviation_lots: ds
                    .lot_sizes
                    .get(symbol)
                    .and_then(|l| deviation.checked_div(*l)),
                mark,
                deviation_notional,
                in_sync,
                reasons,
            }
        })
        .collect();
    pairs.sort_by(|a, b| {
        id_cmp(&a.follower_id, &b.follower_id)
            .then_with(|| id_cmp(&a.subscription_id, &b.subscription_id))
            .then_with(|| a.symbol.cmp(&b.symbol))
    });

    let mut by_follower: BTreeMap<&str, Vec<&PairSync>> = BTreeMap::new();
    for p in &pairs {
        by_follower.entry(&p.follower_id).or_default().push(p);
    }
    let mut followers: Vec<FollowerSync> = by_follower
        .into_iter()
        .map(|(id, ps)| {
            let priced: Vec<Decimal> = ps.iter().filter_map(|p| p.deviation_notional).collect();
            let score = if priced.is_empty() {
                Decimal::ZERO
            } else {
                priced.iter().sum::<Decimal>() / Decimal::from(priced.len() as u64)
            };
            FollowerSync {
                follower_id: id.to_string(),
                pairs: ps.len(),
                out_of_sync: ps.iter().filter(|p| !p.in_sync).count(),
                score,
                unpriced: ps.len() - priced.len(),
            }
        })
        .collect();
    followers.sort_by(|a, b| id_cmp(&a.follower_id, &b.follower_id));

    let mut distribution = vec![SyncBucket {
        label: "0 (on target)".into(),
        lo: Decimal::ZERO,
        hi: Some(Decimal::ZERO),
        count: 0,
    }];
    let mut lo = Decimal::ZERO;
    for b in BUCKET_BOUNDS {
        let hi = Decimal::from(b);
        distribution.push(SyncBucket {
            label: format!("({lo}, {hi}]"),
            lo,
            hi: Some(hi),
            count: 0,
        });
        lo = hi;
    }
    distribution.push(SyncBucket {
        label: format!("> {lo}"),
        lo,
        hi: None,
        count: 0,
    });
    for f in &followers {
        let i = if f.score.is_zero() {
            0
        } else {
            1 + BUCKET_BOUNDS
                .iter()
                .take_while(|b| f.score > Decimal::from(**b))
                .count()
        };
        distribution[i].count += 1;
    }
    debug_assert_eq!(
        distribution.iter().map(|b| b.count).sum::<u64>(),
        followers.len() as u64
    );

    let mut out_of_sync: Vec<FollowerSync> = followers
        .iter()
        .filter(|f| f.out_of_sync > 0)
        .cloned()
        .collect();
    out_of_sync.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| id_cmp(&a.follower_id, &b.follower_id))
    });

    Reconciliation {
        tolerance_notional: tol,
        pairs,
        followers,
        distribution,
        out_of_sync,
        open_where_leader_flat: unhedged::open_where_leader_flat(ds, subs),
    }
}

fn why(a: &Acc<'_>, unpriced: bool) -> Vec<String> {
    let mut out = Vec::new();
    match a.last_instruction {
        None => out.push("venue fills with no engine decision".to_string()),
        Some(i) if i.status != "sent" || !i.reason.is_empty() || i.is_resync() => {
            out.push(format!(
                "last decision #{}{}: {}{}",
                i.seq,
                if i.is_resync() {
                    format!(" (resync: {})", i.resync)
                } else {
                    String::new()
                },
                i.status,
                if i.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", i.reason)
                }
            ))
        }
        Some(_) => {}
    }
    if !a.limited.is_empty() {
        let list: Vec<String> = a.limited.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        out.push(format!(
            "decisions reduced, skipped or deferred: {}",
            list.join(", ")
        ));
    }
    if !a.rejects.is_empty() {
        let list: Vec<String> = a.rejects.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        out.push(format!("orders rejected: {}", list.join(", ")));
    }
    if !a.unfilled_done.is_zero() {
        out.push(format!(
            "{} left unfilled on canceled/expired/rejected orders",
            a.unfilled_done.normalize()
        ));
    }
    if !a.working.is_zero() {
        out.push(format!(
            "{} still working on open orders",
            a.working.normalize()
        ));
    }
    if let Some(e) = a.engine {
        if e != a.venue {
            out.push(format!(
                "engine position {} differs from venue fills {}",
                e.normalize(),
                a.venue.normalize()
            ));
        }
    }
    if out.is_empty() && a.expected != a.venue {
        out.push(format!(
            "sent {} but filled {}",
            a.expected.normalize(),
            a.venue.normalize()
        ));
    }
    if unpriced {
        out.push("no mark or fill price: notional unknown".into());
    }
    if out.is_empty() {
        out.push("off target; no reason recorded".into());
    }
    out
}
