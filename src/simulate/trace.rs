//! The run's trace: every input the core took and what came of it, venue and link
//! events, crashes and restarts. Kept bounded (the last `cap` lines, for a failure
//! report), printed whole with `--verbose`, and hashed into a digest that two runs
//! of one seed must share.

use super::world::T0;
use fillcast_engine::event::{ExecKind, ExecReport, FeedEvent, FollowerOrder, OrderType};
use fillcast_engine::ids::{fnv1a, mix64};
use fillcast_engine::model::Universe;
use fillcast_engine::outputs::{Decision, DecisionStatus, Notice, Reason, SyncReason};
use fillcast_engine::port::JournalEntry;
use std::collections::VecDeque;

pub struct Trace {
    lines: VecDeque<String>,
    cap: usize,
    verbose: bool,
    digest: u64,
}

impl Trace {
    pub fn new(cap: usize, verbose: bool) -> Trace {
        Trace {
            lines: VecDeque::with_capacity(cap.max(1)),
            cap: cap.max(1),
            verbose,
            digest: 0,
        }
    }

    pub fn push(&mut self, step: u64, now: u64, what: &str) {
        let at = now.saturating_sub(T0);
        let line = format!(
            "[{step:>6} +{}.{:06}ms] {what}",
            at / 1_000_000,
            at % 1_000_000
        );
        self.digest = mix64(self.digest ^ fnv1a(line.as_bytes()));
        if self.verbose {
            eprintln!("{line}");
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn last(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// A short, stable name for an order id: its subscription and low bits.
pub fn order_name(u: &Universe, id: u64) -> String {
    let sub = fillcast_engine::ids::order_sub(id);
    let name = u.subs.get(sub).map_or("?", |s| s.id.as_str());
    format!("{name}#{:06x}", id & 0xff_ffff)
}

pub fn input(u: &Universe, e: &JournalEntry) -> String {
    match e {
        JournalEntry::Feed(FeedEvent::LeaderFill(f)) => format!(
            "feed {} {} {} {} @{} ev#{:04x}{}",
            u.leaders[f.leader.0 as usize].id,
            u.symbols[f.symbol.0 as usize].name,
            f.side.as_str(),
            f.qty.0,
            f.price.0,
            f.event_key & 0xffff,
            if f.order_qty.0 > 0 {
                format!(" of {}", f.order_qty.0)
            } else {
                String::new()
            }
        ),
        JournalEntry::Feed(FeedEvent::MarkPrice { symbol, price, .. }) => {
            format!("mark {} {}", u.symbols[symbol.0 as usize].name, price.0)
        }
        JournalEntry::Feed(FeedEvent::Command { cmd, .. }) => format!("command {cmd:?}"),
        JournalEntry::Feed(FeedEvent::Tick { .. }) => "tick".into(),
        JournalEntry::Feed(FeedEvent::Venue { venue, up, .. }) => format!(
            "venue {} {}",
            u.venues[venue.0 as usize].name,
            if *up { "up" } else { "down" }
        ),
        JournalEntry::Feed(other) => format!("feed {other:?}"),
        JournalEntry::Exec(r) => format!("exec {}", report(u, r)),
        other => format!("{other:?}"),
    }
}

pub fn report(u: &Universe, r: &ExecReport) -> String {
    let id = order_name(u, r.order_id);
    match r.kind {
        ExecKind::Ack => format!("{id} ack"),
        ExecKind::Fill => format!(
            "{id} fill {} @{} trade#{:04x}",
            r.qty.0,
            r.price.0,
            r.trade_id & 0xffff
        ),
        ExecKind::Canceled => format!("{id} canceled {}", r.qty.0),
        ExecKind::Expired => format!("{id} expired {}", r.qty.0),
        ExecKind::Rejected => format!("{id} rejected {}", r.reject.as_str()),
        ExecKind::Restated => format!("{id} restated {}", r.qty.0),
    }
}

pub fn order(u: &Universe, o: &FollowerOrder) -> String {
    format!(
        "order {} {} {} {} {}{}",
        order_name(u, o.id),
        u.symbols[o.symbol.0 as usize].name,
        o.side.as_str(),
        o.qty.0,
        match o.order_type {
            OrderType::Market => "market".to_string(),
            OrderType::LimitIoc => format!("ioc@{}", o.limit.0),
        },
        if o.reduce_only { " reduce" } else { "" }
    )
}

/// A decision worth a line: anything but a plain `sent` or `no_change`.
pub fn decision(u: &Universe, d: &Decision) -> Option<String> {
    let plain = d.resync == SyncReason::None
        && (d.status == DecisionStatus::Sent
            || (d.status == DecisionStatus::Skipped && d.reason == Reason::NoChange));
    (!plain).then(|| {
        format!(
            "{} {} {}{} {} target {} delta {} sent {}",
            u.subs[d.sub.0 as usize].id,
            u.symbols[d.symbol.0 as usize].name,
            if d.resync == SyncReason::None {
                String::new()
            } else {
                format!("resync {} ", d.resync.as_str())
            },
            d.status.as_str(),
            d.reason.as_str(),
            d.target.0,
            d.delta.0,
            d.sent.0
        )
    })
}

pub fn notice(u: &Universe, n: &Notice) -> String {
    match n {
        Notice::Stopped { sub, reason } => format!(
            "notice {} stopped {}",
            u.subs[sub.0 as usize].id,
            reason.as_str()
        ),
        Notice::Odd { order_id, oddity } => {
            format!("notice {} odd {oddity:?}", order_name(u, *order_id))
        }
        Notice::Rejected {
            order_id,
            reason,
            retried,
        } => format!(
            "notice {} rejected {} retried={retried}",
            order_name(u, *order_id),
            reason.as_str()
        ),
        Notice::OutOfSync { sub, symbol, why } => format!(
            "notice {} {} out of sync: {}",
            u.subs[sub.0 as usize].id,
            u.symbols[symbol.0 as usize].name,
            why.as_str()
        ),
        Notice::VenueLink { venue, up } => format!(
            "notice venue {} {}",
            u.venues[venue.0 as usize].name,
            if *up { "up" } else { "down" }
        ),
        Notice::VenueAlarm {
            venue,
            down_ns,
            stop,
        } => format!(
            "notice venue {} ALARM down {}ms stop={stop}",
            u.venues[venue.0 as usize].name,
            down_ns / 1_000_000
        ),
    }
}
