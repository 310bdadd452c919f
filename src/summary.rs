//! What `run` and `demo` print: a progress line while running, and a summary of
//! what happened (inputs, decisions by reason, orders, sync with targets,
//! reconciliation against the venue, latency percentiles).

use fillcast_engine::config::{EngineConfig, VenueDownPolicy};
use fillcast_engine::model::{FollowerIdx, SubIdx, SymbolIdx, Universe};
use fillcast_engine::outputs::{DecisionStatus, Reason, SyncReason};
use fillcast_engine::pipeline::{CoreOutcome, IoOutcome, Progress};
use fillcast_engine::units::Lots;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

pub struct Ticker {
    every: Option<Duration>,
    last: Instant,
    /// Venue names by index, for the alarm line.
    venues: Vec<String>,
    alarm_ms: u64,
    stop_on_alarm: bool,
    /// Venues whose alarm was printed (`Progress::venues_alarmed`).
    alarmed: u64,
}

impl Ticker {
    pub fn new(every_secs: f64, u: &Universe, engine: &EngineConfig) -> Ticker {
        let every = (every_secs > 0.0).then(|| Duration::from_secs_f64(every_secs));
        Ticker {
            every,
            last: Instant::now(),
            venues: u.venues.iter().map(|v| v.name.clone()).collect(),
            alarm_ms: engine.venue_down_alarm_ms,
            stop_on_alarm: engine.on_venue_down == VenueDownPolicy::Stop,
            alarmed: 0,
        }
    }

    pub fn tick(&mut self, p: &Progress) {
        // What must be seen at once (a venue lost or back) is printed whatever the
        // progress interval.
        for line in p.take_events() {
            if line.contains("DOWN") || line.contains("STOPPED") || line.contains("OUT OF SYNC") {
                tracing::warn!("{line}");
            } else {
                tracing::info!("{line}");
            }
        }
        let alarmed = p.venues_alarmed.load(Relaxed);
        let new = alarmed & !self.alarmed;
        self.alarmed = alarmed;
        for v in (0..64).filter(|v| new & 1 << v != 0) {
            let name = self.venues.get(v).map_or("?", |s| s.as_str());
            tracing::error!(
                venue = name,
                "VENUE ALARM: `{name}` has been down for more than {} ms (engine.venue_down_alarm_ms); {}",
                group(self.alarm_ms),
                if self.stop_on_alarm {
                    "engine.on_venue_down = \"stop\": the engine stops taking input"
                } else {
                    "engine.on_venue_down = \"alarm\": leader fills are still taken and journaled, its followers' copies wait for it"
                }
            );
        }
        let Some(every) = self.every else { return };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            let down = p.venues_down.load(Relaxed);
            tracing::info!(
                "… {} leader fills, {} follower orders, {} live, {} waiting for the resync, {} rejected inputs{}",
                group(p.leader_fills.load(Relaxed)),
                group(p.orders_out.load(Relaxed)),
                group(p.live_orders.load(Relaxed)),
                group(p.resync_pending.load(Relaxed)),
                group(p.source_rejected.load(Relaxed)),
                if down > 0 {
                    format!(", {down} VENUE(S) DOWN")
                } else {
                    String::new()
                }
            );
        }
    }
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1_000.0)
}

fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        group(h.len())
    )
}

/// What the summary found that must not be: the caller fails the run on either.
pub struct Findings {
    /// (follower, symbol) positions where the engine and the venue disagree.
    pub mismatched: u64,
    /// (subscription, symbol) positions open where the leader is flat, with no
    /// recorded reason.
    pub unexplained: u64,
}

/// The run's summary, under the model in force at its end (a live reload may
/// have added symbols, leaders, followers and subscriptions since the start).
pub fn print(core_out: &CoreOutcome, io: &mut IoOutcome, elapsed: Duration) -> Findings {
    let core = &core_out.core;
    let u = &**core.universe();
    let s = core.stats();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!();
    println!(
        "fillcast summary — {} leaders, {} followers, {} subscriptions, {cores} cores, {:.1} s",
        u.leaders.len(),
        u.followers.len(),
        u.subs.len(),
        elapsed.as_secs_f64()
    );
    println!("  leader fills in        {:>12}   (duplicates ignored {}, already in the journal {}, invalid {}, rejected by sources {})", group(s.leader_fills), s.duplicate_events, group(io.source_duplicates), s.invalid_events, group(io.source_rejected));
    println!(
        "  decisions              {:>12}   sent {}, reduced {}, skipped {}, deferred {}",
        group(s.decisions),
        group(s.status_count(DecisionStatus::Sent)),
        group(s.status_count(DecisionStatus::Reduced)),
        group(s.status_count(DecisionStatus::Skipped)),
        group(s.status_count(DecisionStatus::Deferred))
    );
    for &r in <Reason as fillcast_engine::codes::Coded>::ALL {
        let n = s.reason_count(r);
        if n > 0 && r != Reason::None {
            println!("    {:<24}{:>12}", r.as_str(), group(n));
        }
    }
    if s.commands > 0 || core.universe().revision != u.revision {
        println!(
            "  commands               {:>12}   revision in force {:016x}{}",
            group(s.commands),
            core.universe().revision,
            if core.universe().revision != u.revision {
                format!(" (started at {:016x}; reloaded)", u.revision)
            } else {
                String::new()
            }
        );
    }
    println!(
        "  follower orders out    {:>12}   (reduce-only {}; sent by the resync {})",
        group(s.orders_sent),
        group(s.reduce_only_orders),
        group(s.retries)
    );
    let (waiting, stuck) = core.resync_pending();
    println!(
        "  resync                 {:>12}   decisions (catch-ups after rejects, unfilled remainders, full order tables, outages); pairs given up (out of sync) {}, still waiting {waiting} ({stuck} behind a venue that is down)",
        group(s.resyncs),
        group(s.gave_up),
    );
    let backpressure = core_out.backpressure_waits;
    if backpressure > 0 || s.venue_downs > 0 {
        println!(
            "  backpressure, outages  {:>12}   times a leader fill waited for order places; venue outages {} (past the alarm {}), ticks {}",
            group(backpressure),
            s.venue_downs,
            s.venue_alarms,
            group(s.ticks)
        );
    }
    println!(
        "  venue reports in       {:>12}   fills {}, rejects {}, duplicate fills ignored {}, odd sequences {}, unknown {}, overfills dropped {}, orders that took the venue's terms {}, taken over from the venue {} (refused for want of a place {})",
        group(s.exec_reports),
        group(s.fills),
        group(s.rejects),
        s.duplicate_fills,
        s.oddities,
        s.unknown_reports,
        s.overfills,
        s.restated,
        s.adopted,
        s.unadopted
    );
    for g in io.gateways.iter() {
        for line in g.summary_lines() {
            println!("    {line}");
        }
    }

    // Positions vs targets, per (subscription, symbol) where either is non-zero.
    let mut buckets = [0u64; 4];
    let mut pairs = 0u64;
    let mut held = 0u64;
    for sub in 0..u.subs.len() {
        for sym in 0..u.symbols.len() {
            let (sub, sym) = (SubIdx(sub as u32), SymbolIdx(sym as u16));
            let (p, t) = (core.position(sub, sym), core.target(sub, sym));
            pairs += 1;
            held += (p.0 != 0) as u64;
            let gap = (p.0 - t.0).unsigned_abs();
            buckets[match gap {
                0 => 0,
                1 => 1,
                2..=10 => 2,
                _ => 3,
            }] += 1;
        }
    }
    println!(
        "  positions vs targets   {:>12}   (subscription, symbol) pairs, {} holding a position: in sync {}, 1 lot off {}, 2–10 lots {}, more {}",
        group(pairs),
        group(held),
        group(buckets[0]),
        group(buckets[1]),
        group(buckets[2]),
        group(buckets[3])
    );

    // Reconciliation: the engine's filled positions against the venue's books.
    let mut engine: HashMap<(FollowerIdx, SymbolIdx), Lots> = HashMap::new();
    for (i, sub) in u.subs.iter().enumerate() {
        for sym in 0..u.symbols.len() {
            let p = core.position(SubIdx(i as u32), SymbolIdx(sym as u16));
            engine
                .entry((sub.follower, SymbolIdx(sym as u16)))
                .or_default()
                .0 += p.0;
        }
    }
    let mut mismatched = 0u64;
    let mut duplicates = 0u64;
    let mut venue_orders = 0u64;
    let mut unreachable = Vec::new();
    let mut not_asked = Vec::new();
    // Venues that state positions but not what they received (real exchanges).
    let mut silent = Vec::new();
    let mut asked = 0;
    for g in io.gateways.iter_mut() {
        let books = match g.books() {
            Some(Ok(b)) => {
                match (b.orders_received, b.duplicate_client_ids) {
                    (Some(n), Some(d)) => {
                        venue_orders += n;
                        duplicates += d;
                    }
                    _ => silent.push(format!("`{}`", g.name())),
                }
                Some(b.positions)
            }
            Some(Err(e)) => {
                unreachable.push(e.to_string());
                None
            }
            None => {
                not_asked.push(g.name().to_string());
                None
            }
        };
        if let Some(books) = books {
            asked += 1;
            let venue: HashMap<(FollowerIdx, SymbolIdx), Lots> =
                books.into_iter().map(|(f, s, q)| ((f, s), q)).collect();
            for (key, q) in &engine {
                if venue.get(key).copied().unwrap_or_default() != *q {
                    mismatched += 1;
                }
            }
            mismatched += venue
                .iter()
                .filter(|(k, q)| q.0 != 0 && !engine.contains_key(k))
                .count() as u64;
        }
    }
    for e in &unreachable {
        println!("  venue reconciliation skipped: {e}");
    }
    for name in &not_asked {
        // A real venue's books are its own statement: reconcile with that.
        println!(
            "  venue reconciliation skipped: venue `{name}` cannot be asked for its books; compare with the venue's own statement"
        );
    }
    if asked > 0 {
        println!(
            "  venue reconciliation   {:>12}   orders received; duplicate client order ids {duplicates}; engine/venue position mismatches {mismatched}{}",
            group(venue_orders),
            if silent.is_empty() {
                String::new()
            } else {
                format!(
                    " (venue {} states its positions only: its orders and duplicates are not counted here)",
                    silent.join(", ")
                )
            }
        );
    }
    println!("    (a gap is a risk cap or a venue minimum, healed on the leader's next fill, or waits for the resync)");

    // The promise: when a leader goes flat its followers go flat, unless a reason
    // is recorded.
    let open: Vec<_> = core.open_where_leader_flat().collect();
    let mut by_reason: Vec<(SyncReason, u64)> = Vec::new();
    for (_, _, _, why) in &open {
        match by_reason.iter_mut().find(|(r, _)| r == why) {
            Some((_, n)) => *n += 1,
            None => by_reason.push((*why, 1)),
        }
    }
    let unexplained = by_reason
        .iter()
        .find(|(r, _)| *r == SyncReason::None)
        .map_or(0, |(_, n)| *n);
    println!(
        "  open where leader flat {:>12}   (subscription, symbol) pairs; unexplained {unexplained}",
        group(open.len() as u64)
    );
    for (why, n) in &by_reason {
        if *why != SyncReason::None {
            println!("    {:<24}{:>12}", why.as_str(), group(*n));
        }
    }
    for (sub, sym, lots, why) in open.iter().take(10) {
        println!(
            "    {} {} holds {}{}",
            u.subs[sub.0 as usize].id,
            u.symbols[sym.0 as usize].name,
            u.symbols[sym.0 as usize].qty_decimal(*lots),
            if *why == SyncReason::None {
                " — NO RECORDED REASON".to_string()
            } else {
                format!(" ({})", why.as_str())
            }
        );
    }
    if let Some(j) = io.journal.as_ref() {
        // What the journal cost in bytes, the disk's share of each order: the
        // fan-out's records are most of it (docs/BENCHMARKS.md, issue 14).
        let (last_seq, bytes) = j.position();
        let per_order = match bytes.checked_div(s.orders_sent) {
            Some(b) => format!("{b} bytes a follower order"),
            None => "no follower orders".to_string(),
        };
        println!(
            "  journal this run       {:>12}   bytes ({per_order}; last record {})",
            group(bytes),
            group(last_seq)
        );
    }
    println!("  fan-out latency per leader fill (handling start → last order in the egress ring)");
    println!("      {}", percentiles(&core_out.fanout_ns));
    println!("  receive → last order in the egress ring (includes queueing behind earlier fills)");
    println!("      {}", percentiles(&core_out.receive_to_egress_ns));
    Findings {
        mismatched,
        unexplained,
    }
}
