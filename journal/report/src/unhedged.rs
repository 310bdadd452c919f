//! Issue 9's promise in SQL: "when a leader goes flat its followers go flat, unless
//! a recorded reason says why not". Two things are read from the sidecar's tables:
//!
//! - **open where leader flat**: every `positions` row with `qty ≠ 0` whose (leader,
//!   symbol) is flat in `leader_positions`, with the reason recorded for it
//!   (`reason_of` has the rule), or none: *unexplained*;
//! - **resync work**: resync decisions by cause, `deferred` decisions, `venue_limit`
//!   reductions, pairs given up (`out_of_sync`), and venue outages and alarms.
//!
//! The engine's own reason for a pair (its resync queue) is not in SQL: the reason
//! here is rebuilt from the rows the engine journaled. On a quiet engine (no order
//! working, the resync done) it is the one `fillcast run` prints; while the engine
//! runs, a close still on its way shows as `order_working`.
//!
//! It only reads the `Dataset`; it never queries the database itself.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;

use super::followers::SubInfo;
use super::query::{signed, AuditRow, Dataset, FollowerOrder, Instruction};
use super::{id_cmp, tally};

/// One (subscription, symbol) position open while its leader is flat.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenWhereFlat {
    pub subscription_id: String,
    pub follower_id: String,
    pub leader_id: String,
    pub symbol: String,
    /// The engine's position (`positions.qty`), signed.
    pub qty: Decimal,
    /// The recorded reason: a resync cause (`reject_insufficient_margin`,
    /// `unfilled`, ...), a deferral reason (`venue_down`, `order_table_full`),
    /// `engine_stopped`, `order_working`, or `removed_kept` (a reload removed its
    /// subscription or symbol under `engine.on_remove = "keep"`); `None`:
    /// unexplained.
    pub reason: Option<String>,
    /// The kind of row that gave the reason: `out_of_sync` (audit), `deferred`
    /// or `resync` (instruction), `order` (follower order), `venue_down` or
    /// `venue_alarm` (audit), `config` (the revision in force, `config_revisions`);
    /// `None` when unexplained.
    pub source: Option<&'static str>,
    /// The `seq` of that row; for an unexplained pair, since when it has been open
    /// with its leader flat (the later of the leader's last fill in the symbol and
    /// the pair's last fill).
    pub since_seq: Option<i64>,
}

/// Every position open where its leader is flat, counted by reason.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OpenWhereLeaderFlat {
    /// Pairs with no recorded reason.
    pub unexplained: usize,
    /// Pairs per recorded reason (unexplained ones are not in it), most first.
    pub by_reason: Vec<(String, u64)>,
    /// Where "the leader is flat" was read: `leader_positions`, or `leader_fills`
    /// (the `position_after` of the latest fill the engine acted on) when the
    /// database has no `leader_positions` table.
    pub leader_flat_from: &'static str,
    /// Every pair: unexplained first, then by subscription and symbol.
    pub rows: Vec<OpenWhereFlat>,
}

impl OpenWhereLeaderFlat {
    pub fn count(&self) -> usize {
        self.rows.len()
    }
}

/// The resync's own decisions and what became of them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ResyncActivity {
    /// Instructions made by the resync (`copy_instructions.resync` not empty).
    pub instructions: u64,
    /// Those by cause (`unfilled`, `reject_<venue reason>`, `order_table_full`,
    /// `venue_down`, `command`), most first.
    pub by_cause: Vec<(String, u64)>,
    /// Those by status.
    pub by_status: Vec<(String, u64)>,
    /// Orders sent for them (`follower_orders.instruction_seq` names one).
    pub orders: u64,
    /// Resync instructions sent smaller after the venue refused the size.
    pub venue_limit: u64,
    /// Pairs given up (`out_of_sync` audit rows), by reason, most first.
    pub gave_up: u64,
    pub gave_up_by_reason: Vec<(String, u64)>,
}

/// One venue's link, from the `venue_down` / `venue_up` / `venue_alarm` audit rows.
#[derive(Clone, Debug, PartialEq)]
pub struct VenueLinks {
    pub venue: String,
    /// Times the link went down.
    pub outages: u64,
    /// Alarms raised (down for `engine.venue_down_alarm_ms`).
    pub alarms: u64,
    /// Of those, alarms that stopped the engine (`engine_stopped`).
    pub stops: u64,
    /// Summed length of the outages that ended, from the rows' journaled times.
    pub downtime_ns: i64,
    /// The last row says down: the link was down when the data ends.
    pub down_at_end: bool,
}

pub(crate) fn resync_activity(ds: &Dataset) -> ResyncActivity {
    let resyncs: Vec<&Instruction> = ds.instructions.iter().filter(|i| i.is_resync()).collect();
    let resync_seqs: std::collections::HashSet<i64> = resyncs.iter().map(|i| i.seq).collect();
    let gave_up: Vec<&AuditRow> = ds
        .audit_sync
        .iter()
        .filter(|a| a.kind == "out_of_sync")
        .collect();
    ResyncActivity {
        instructions: resyncs.len() as u64,
        by_cause: tally(resyncs.iter().map(|i| i.resync.clone())),
        by_status: tally(resyncs.iter().map(|i| i.status.clone())),
        orders: ds
            .orders
            .iter()
            .filter(|o| o.instruction_seq.is_some_and(|s| resync_seqs.contains(&s)))
            .count() as u64,
        venue_limit: ds
            .instructions
            .iter()
            .filter(|i| i.reason == "venue_limit")
            .count() as u64,
        gave_up: gave_up.len() as u64,
        gave_up_by_reason: tally(gave_up.iter().map(|a| a.reason.clone())),
    }
}

pub(crate) fn venue_links(ds: &Dataset) -> Vec<VenueLinks> {
    let mut by_venue: BTreeMap<&str, (VenueLinks, Option<i64>)> = BTreeMap::new();
    for a in &ds.audit_sync {
        if !matches!(a.kind.as_str(), "venue_down" | "venue_up" | "venue_alarm") {
            continue;
        }
        let (v, down_since) = by_venue.entry(&a.subject).or_insert_with(|| {
            (
                VenueLinks {
                    venue: a.subject.clone(),
                    outages: 0,
                    alarms: 0,
                    stops: 0,
                    downtime_ns: 0,
                    down_at_end: false,
                },
                None,
            )
        });
        match a.kind.as_str() {
            "venue_down" => {
                v.outages += 1;
                // The engine notes changes only; a repeated down keeps the first.
                down_since.get_or_insert(a.ts);
            }
            "venue_up" => {
                if let Some(t) = down_since.take() {
                    v.downtime_ns = v.downtime_ns.saturating_add((a.ts - t).max(0));
                }
            }
            _ => {
                v.alarms += 1;
                v.stops += u64::from(a.reason == "engine_stopped");
            }
        }
    }
    let mut out: Vec<VenueLinks> = by_venue
        .into_values()
        .map(|(mut v, down_since)| {
            v.down_at_end = down_since.is_some();
            v
        })
        .collect();
    out.sort_by(|a, b| id_cmp(&a.venue, &b.venue));
    out
}

/// What the rule in `reason_of` looks at for one open pair.
#[derive(Default)]
struct PairRows<'a> {
    instructions: Vec<&'a Instruction>,
    orders: Vec<&'a FollowerOrder>,
    /// `(seq, venue position after the fill)`, in `seq` order.
    fills: Vec<(i64, Decimal)>,
    out_of_sync: Option<&'a AuditRow>,
}

pub(crate) fn open_where_leader_flat(
    ds: &Dataset,
    subs: &BTreeMap<String, SubInfo>,
) -> OpenWhereLeaderFlat {
    // The leader's position and the seq of the fill that last changed it.
    let mut leader: HashMap<(&str, &str), (Decimal, Option<i64>)> = HashMap::new();
    let leader_flat_from = if ds.missing.contains(&"leader_positions") {
        for f in ds.leader_fills.iter().filter(|f| f.ignored.is_empty()) {
            if let Some(p) = f.position_after {
                leader.insert((&f.leader_id, &f.symbol), (p, Some(f.seq)));
            }
        }
        "leader_fills"
    } else {
        for p in &ds.leader_positions {
            leader.insert((&p.leader_id, &p.symbol), (p.qty, p.updated_seq));
        }
        "leader_positions"
    };

    struct Open<'a> {
        sub: &'a str,
        symbol: &'a str,
        follower: String,
        leader: String,
        qty: Decimal,
        leader_seq: Option<i64>,
    }
    let mut open: Vec<Open<'_>> = Vec::new();
    for p in ds.positions.iter().filter(|p| !p.qty.is_zero()) {
        let info = subs.get(&p.subscription_id);
        let leader_id = if p.leader_id.is_empty() {
            info.map(|i| i.leader_id.clone()).unwrap_or_default()
        } else {
            p.leader_id.clone()
        };
        // No row: the leader never traded the symbol, which is flat too.
        let (lq, leader_seq) = leader
            .get(&(leader_id.as_str(), p.symbol.as_str()))
            .copied()
            .unwrap_or((Decimal::ZERO, None));
        if !lq.is_zero() {
            continue;
        }
        let follower = if p.follower_id.is_empty() {
            info.map(|i| i.follower_id.clone()).unwrap_or_default()
        } else {
            p.follower_id.clone()
        };
        open.push(Open {
            sub: &p.subscription_id,
            symbol: &p.symbol,
            follower,
            leader: leader_id,
            qty: p.qty,
            leader_seq,
        });
    }
    if open.is_empty() {
        return OpenWhereLeaderFlat {
            leader_flat_from,
            ..OpenWhereLeaderFlat::default()
        };
    }

    // The rows of the open pairs only: usually few, while the tables are large.
    let mut rows: HashMap<(&str, &str), PairRows<'_>> = open
        .iter()
        .map(|o| ((o.sub, o.symbol), PairRows::default()))
        .collect();
    for i in &ds.instructions {
        if let Some(r) = rows.get_mut(&(i.subscription_id.as_str(), i.symbol.as_str())) {
            r.instructions.push(i);
        }
    }
    for o in &ds.orders {
        if let Some(r) = rows.get_mut(&(o.subscription_id.as_str(), o.symbol.as_str())) {
            r.orders.push(o);
        }
    }
    for f in &ds.fills {
        if let Some(r) = rows.get_mut(&(f.subscription_id.as_str(), f.symbol.as_str())) {
            let before = r.fills.last().map_or(Decimal::ZERO, |x| x.1);
            r.fills.push((f.seq, before + signed(&f.side, f.qty)));
        }
    }
    for a in ds.audit_sync.iter().filter(|a| a.kind == "out_of_sync") {
        if let Some(r) = rows.get_mut(&(a.subject.as_str(), a.detail.as_str())) {
            // Rows come in seq order: the last one is the latest.
            r.out_of_sync = Some(a);
        }
    }
    for r in rows.values_mut() {
        r.instructions.sort_by_key(|i| i.seq);
        r.orders.sort_by_key(|o| o.seq);
        r.fills.sort_by_key(|f| f.0);
    }

    let mut kept: Option<Kept> = None;
    let mut out: Vec<OpenWhereFlat> = open
        .into_iter()
        .map(|o| {
            let r = &rows[&(o.sub, o.symbol)];
            let found = reason_of(r, &ds.audit_sync).or_else(|| {
                kept.get_or_insert_with(|| Kept::of(ds))
                    .holds(o.sub, o.symbol)
                    .map(|seq| ("removed_kept".to_string(), "config", seq))
            });
            let (reason, source, seq) = match found {
                Some((reason, source, seq)) => (Some(reason), Some(source), Some(seq)),
                None => {
                    let last_fill = r.fills.last().map(|f| f.0);
                    (None, None, o.leader_seq.max(last_fill))
                }
            };
            OpenWhereFlat {
                subscription_id: o.sub.to_string(),
                follower_id: o.follower,
                leader_id: o.leader,
                symbol: o.symbol.to_string(),
                qty: o.qty,
                reason,
                source,
                since_seq: seq,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.reason
            .is_none()
            .cmp(&a.reason.is_none())
            .then_with(|| id_cmp(&a.subscription_id, &b.subscription_id))
            .then_with(|| a.symbol.cmp(&b.symbol))
    });
    OpenWhereLeaderFlat {
        unexplained: out.iter().filter(|r| r.reason.is_none()).count(),
        by_reason: tally(out.iter().filter_map(|r| r.reason.clone())),
        leader_flat_from,
        rows: out,
    }
}

/// What the model in force last keeps open on purpose: under
/// `engine.on_remove = "keep"`, the positions of the subscriptions and in the
/// symbols a reload removed (the engine stops copying them and leaves them open,
/// `removed_kept`, until a flatten or a stop closes them).
#[derive(Default)]
struct Kept {
    /// The revision's `config_revisions.seq`.
    seq: i64,
    subscriptions: HashSet<String>,
    symbols: HashSet<String>,
}

impl Kept {
    /// Read from `ds.latest_config`; nothing kept without one, or when it does
    /// not load (the report then leaves such a pair unexplained, as before).
    fn of(ds: &Dataset) -> Kept {
        let Some((seq, toml)) = &ds.latest_config else {
            return Kept::default();
        };
        let Ok(c) = fillcast_engine::config::load_model(toml) else {
            return Kept::default();
        };
        if c.engine.on_remove != fillcast_engine::config::RemovePolicy::Keep {
            return Kept::default();
        }
        Kept {
            seq: *seq,
            subscriptions: c
                .subscriptions
                .iter()
                .filter(|s| s.removed)
                .map(fillcast_engine::model::subscription_id)
                .collect(),
            symbols: c
                .symbols
                .iter()
                .filter(|s| s.removed)
                .map(|s| s.name.clone())
                .collect(),
        }
    }

    fn holds(&self, sub: &str, symbol: &str) -> Option<i64> {
        (self.subscriptions.contains(sub) || self.symbols.contains(symbol)).then_some(self.seq)
    }
}

/// The recorded reason of one open pair, as `(reason, source, seq)`; the first
/// rule that finds one gives it:
///
/// 1. the pair's latest `out_of_sync` audit row, unless an instruction for the
///    pair came after it (the engine leaves a given-up pair alone until the
///    leader's next fill or a person's resync, and both make instructions);
/// 2. the pair's latest instruction, unless a later fill brought the venue
///    position to its target: an order of the pair still working
///    (`order_working`); else its latest order (or a later one) that ended with
///    a remainder (`reject_<venue reason>`, `venue_down`, `unfilled`: the
///    resync's cause for it); else, if it is `deferred`, its reason; else, if the
///    resync made it, its cause;
/// 3. the latest `venue_alarm` or `venue_down` audit row of the venue of the
///    pair's latest order, after the pair's last fill.
fn reason_of(r: &PairRows<'_>, audit: &[AuditRow]) -> Option<(String, &'static str, i64)> {
    let last = r.instructions.last().copied();
    if let Some(a) = r.out_of_sync {
        if last.is_none_or(|i| i.seq < a.seq) {
            return Some((a.reason.clone(), "out_of_sync", a.seq));
        }
    }
    if let Some(i) = last {
        let closed = r.fills.iter().any(|f| f.0 > i.seq && f.1 == i.target);
        if !closed {
            if let Some(o) = r.orders.iter().rev().find(|o| o.is_working()) {
                return Some(("order_working".into(), "order", o.seq));
            }
            let latest = r
                .orders
                .iter()
                .rev()
                .find(|o| o.instruction_seq == Some(i.seq) || o.seq > i.seq);
            if let Some(why) = latest.and_then(|o| failure(o)) {
                return Some((why, "order", latest.map_or(i.seq, |o| o.seq)));
            }
            if i.status == "deferred" {
                let why = if i.reason.is_empty() {
                    "deferred"
                } else {
                    &i.reason
                };
                return Some((why.to_string(), "deferred", i.seq));
            }
            if i.is_resync() {
                return Some((i.resync.clone(), "resync", i.seq));
            }
        }
    }
    let venue = r.orders.last().map(|o| o.venue.as_str())?;
    let last_fill = r.fills.last().map_or(i64::MIN, |f| f.0);
    audit
        .iter()
        .rev()
        .take_while(|a| a.seq > last_fill)
        .find(|a| a.subject == venue && matches!(a.kind.as_str(), "venue_alarm" | "venue_down"))
        .map(|a| {
            if a.kind == "venue_alarm" {
                (a.reason.clone(), "venue_alarm", a.seq)
            } else {
                ("venue_down".to_string(), "venue_down", a.seq)
            }
        })
}

/// Why an order that ended left part of it unfilled, as the resync names it;
/// `None` for an order filled in full (or still working).
fn failure(o: &FollowerOrder) -> Option<String> {
    if o.is_working() || o.filled_qty >= o.qty {
        return None;
    }
    Some(match (o.status.as_str(), o.reject_reason.as_deref()) {
        ("rejected", Some("venue_down")) => "venue_down".to_string(),
        ("rejected", Some(r)) => format!("reject_{r}"),
        ("rejected", None) => "reject".to_string(),
        _ => "unfilled".to_string(),
    })
}
