//! The journal side of the checks: the final replay (the product's, and a
//! stricter one that also refuses outputs the journal lacks), the comparison of a
//! replayed core with the live one, and tearing a journal's tail as a crash can.

use super::rng::Rng;
use super::world::World;
use fillcast_engine::config;
use fillcast_engine::core::Core;
use fillcast_engine::event::FollowerOrder;
use fillcast_engine::model::{LeaderIdx, SubIdx, SymbolIdx, Universe};
use fillcast_engine::outputs::{Decision, Notice, Outputs};
use fillcast_engine::port::JournalEntry;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, ConfigParts, Entry};
use fillcast_journal::replay::replay;
use fillcast_journal::segment::{self, Step, SEGMENT_HEADER};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

/// The core's outputs for one input, in order, as journal entries.
#[derive(Default)]
pub struct Collect {
    pub entries: Vec<JournalEntry>,
}

impl Outputs for Collect {
    fn order(&mut self, o: &FollowerOrder) {
        self.entries.push(JournalEntry::Order(*o));
    }
    fn decision(&mut self, d: &Decision) {
        self.entries.push(JournalEntry::Decision(*d));
    }
    fn notice(&mut self, n: &Notice) {
        self.entries.push(JournalEntry::Notice(*n));
    }
}

/// Invariant 4 at the end: a full replay of the journal reproduces every journaled
/// output (and no output is missing from the journal), and rebuilds the live
/// core's state exactly.
pub fn final_replay(dir: &Path, world: &World, live: &Core) -> Result<(), String> {
    let r = replay(dir)
        .map_err(|e| format!("the final replay fails: {e}"))?
        .ok_or("the final replay finds an empty journal")?;
    if r.stats.mismatches > 0 {
        return Err(format!(
            "the final replay differs from the journal in {} of {} outputs",
            r.stats.mismatches, r.stats.outputs_checked
        ));
    }
    if !r.unjournaled.is_empty() {
        return Err(format!(
            "the final replay makes {} outputs the journal does not hold at its end: {:?}",
            r.unjournaled.len(),
            r.unjournaled.first()
        ));
    }
    strict_replay(dir, world)?;
    same_state(&r.core, live, world)
}

/// Replays the journal input by input, requiring the outputs after each input to
/// be exactly what the core makes of it: none different, none missing, none extra.
fn strict_replay(dir: &Path, world: &World) -> Result<(), String> {
    let reader = JournalReader::open(dir).map_err(|e| format!("journal: {e}"))?;
    // Under each journaled revision from its config records on, as a restart
    // replays (a live reload put one in the middle).
    let mut core: Option<Core> = None;
    let mut parts = ConfigParts::default();
    let mut engine = world.config.engine.clone();
    let mut made: VecDeque<JournalEntry> = VecDeque::new();
    let mut input_seq = 0;
    let leftover = |made: &VecDeque<JournalEntry>, input_seq: u64| {
        format!(
            "input record {input_seq}: the replay makes {} outputs the journal does not hold, first {:?}",
            made.len(),
            made.front()
        )
    };
    for rec in reader.iter_from(1) {
        let rec = rec.map_err(|e| format!("journal: {e}"))?;
        let entry = decode(rec.kind, rec.schema, rec.payload)
            .map_err(|e| format!("journal record {}: {e}", rec.seq))?;
        let journaled = match entry {
            Entry::Config(c) => {
                let Some((revision, text)) = parts
                    .add(c)
                    .map_err(|e| format!("journal record {}: {e}", rec.seq))?
                else {
                    continue;
                };
                let bad =
                    |e: String| format!("journal record {}: config {revision:016x}: {e}", rec.seq);
                let cfg = config::load_model(&text).map_err(|e| bad(e.to_string()))?;
                let u = Arc::new(Universe::from_config(&cfg).map_err(|e| bad(e.to_string()))?);
                match core.as_mut() {
                    None => core = Some(Core::new(u, &cfg.engine)),
                    Some(c) if c.universe().revision != revision => c
                        .apply_revision(u, &engine, &cfg.engine)
                        .map_err(|e| bad(e.to_string()))?,
                    Some(_) => {}
                }
                engine = cfg.engine;
                continue;
            }
            Entry::Feed(_) | Entry::Exec(_) => {
                if !made.is_empty() {
                    return Err(leftover(&made, input_seq));
                }
                let core = core.as_mut().ok_or_else(|| {
                    format!("journal record {}: an input before any config", rec.seq)
                })?;
                let mut out = Collect::default();
                match entry {
                    Entry::Feed(ev) => core.on_feed(&ev, &mut out),
                    Entry::Exec(r) => core.on_exec(&r, &mut out),
                    _ => {}
                }
                made.extend(out.entries);
                input_seq = rec.seq;
                continue;
            }
            Entry::Order(o) => vec![JournalEntry::Order(o)],
            Entry::Decision(d) => vec![JournalEntry::Decision(d)],
            Entry::Notice(n) => vec![JournalEntry::Notice(n)],
            Entry::OrderDecision(o, d) => vec![JournalEntry::Order(o), JournalEntry::Decision(d)],
        };
        for j in journaled {
            // The journal holds an order without its market hints.
            match made.pop_front().map(|m| match m {
                JournalEntry::Order(o) => JournalEntry::Order(o.journaled()),
                other => other,
            }) {
                Some(m) if m == j => {}
                other => {
                    return Err(format!(
                        "record {}: the journal holds {j:?}, the replay of input record {input_seq} makes {other:?}",
                        rec.seq
                    ))
                }
            }
        }
    }
    if !made.is_empty() {
        return Err(leftover(&made, input_seq));
    }
    Ok(())
}

/// A core rebuilt from the journal against the live one: positions, working
/// quantities, targets, reasons, statuses, leaders, orders, the resync, counters.
fn same_state(replayed: &Core, live: &Core, world: &World) -> Result<(), String> {
    let u = &world.universe;
    let differ = |what: String, a: String, b: String| {
        Err(format!(
            "{what}: the replay rebuilds {a}, the live engine holds {b}"
        ))
    };
    for s in 0..u.subs.len() {
        let sub = SubIdx(s as u32);
        for si in 0..u.symbols.len() {
            let sym = SymbolIdx(si as u16);
            let a = (
                replayed.position(sub, sym),
                replayed.working(sub, sym),
                replayed.target(sub, sym),
                replayed.sync_reason(sub, sym),
            );
            let b = (
                live.position(sub, sym),
                live.working(sub, sym),
                live.target(sub, sym),
                live.sync_reason(sub, sym),
            );
            if a != b {
                return differ(
                    format!(
                        "{} {} (position, working, target, why)",
                        u.subs[s].id, u.symbols[si].name
                    ),
                    format!("{a:?}"),
                    format!("{b:?}"),
                );
            }
        }
        let a = (replayed.subscription_status(sub), replayed.out_of_sync(sub));
        let b = (live.subscription_status(sub), live.out_of_sync(sub));
        if a != b {
            return differ(
                format!("{} (status, out of sync)", u.subs[s].id),
                format!("{a:?}"),
                format!("{b:?}"),
            );
        }
    }
    for l in 0..u.leaders.len() {
        for si in 0..u.symbols.len() {
            let (a, b) = (
                replayed.leader_position(LeaderIdx(l as u32), SymbolIdx(si as u16)),
                live.leader_position(LeaderIdx(l as u32), SymbolIdx(si as u16)),
            );
            if a != b {
                return differ(
                    format!("leader {} {}", u.leaders[l].id, u.symbols[si].name),
                    format!("{a:?}"),
                    format!("{b:?}"),
                );
            }
        }
    }
    let summary = |c: &Core| {
        (
            c.live_orders(),
            c.resync_pending(),
            c.wake_at(),
            c.now(),
            c.halted(),
        )
    };
    if summary(replayed) != summary(live) {
        return differ(
            "(live orders, resync pending, wake at, now, halted)".into(),
            format!("{:?}", summary(replayed)),
            format!("{:?}", summary(live)),
        );
    }
    let orders = |c: &Core| {
        c.orders_with_trades()
            .map(|(o, t)| (*o, t.to_vec()))
            .collect::<Vec<_>>()
    };
    if orders(replayed) != orders(live) {
        return differ(
            "the order table".into(),
            format!("{} orders", orders(replayed).len()),
            format!("{} orders (or different ones)", orders(live).len()),
        );
    }
    let (a, b) = (
        format!("{:?}", replayed.stats()),
        format!("{:?}", live.stats()),
    );
    if a != b {
        return differ("the counters".into(), a, b);
    }
    Ok(())
}

/// Leaves a torn record after the last complete one of the journal's last segment,
/// as a crash in the middle of an append can: a record written in part, its commit
/// word still 0, or a record whose commit word is there and whose checksum fails.
pub fn tear_tail(dir: &Path, rng: &mut Rng) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut segments: Vec<(u64, std::path::PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let seq = segment::parse_file_name(e.file_name().to_str()?)?;
            Some((seq, e.path()))
        })
        .collect();
    segments.sort();
    let Some((first_seq, path)) = segments.pop() else {
        return;
    };
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let (mut off, mut seq) = (SEGMENT_HEADER, first_seq);
    while let Step::Record { next, span, .. } = segment::step(&bytes, off, seq) {
        off = next;
        seq += span;
    }
    if !matches!(segment::step(&bytes, off, seq), Step::Empty) {
        return;
    }
    let room = bytes.len() - off;
    let len = (rng.range(8, 200) as usize).min(room.saturating_sub(32));
    if len < 8 {
        return;
    }
    let mut torn = vec![0u8; len];
    for b in torn.iter_mut() {
        *b = rng.below(255) as u8 + 1;
    }
    if rng.chance(500_000) {
        // Written in part: the commit word, stored last, is still 0.
        torn[..4].fill(0);
    } else {
        // The commit word is there (a power loss can reorder pages) but the rest
        // does not add up: a payload shorter than promised, a wrong checksum.
        torn[..4].copy_from_slice(&((len as u32).saturating_sub(24)).to_le_bytes());
        torn[8..16.min(len)].copy_from_slice(&seq.to_le_bytes()[..16.min(len) - 8]);
    }
    use std::os::unix::fs::FileExt;
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
        let _ = f.write_all_at(&torn, off as u64);
    }
}

/// A power loss: every record after `durable_seq` is gone (what the last flush
/// before orders left did not cover), later segments with them.
pub fn lose_after(dir: &Path, durable_seq: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut segments: Vec<(u64, std::path::PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let seq = segment::parse_file_name(e.file_name().to_str()?)?;
            Some((seq, e.path()))
        })
        .collect();
    segments.sort();
    for (first_seq, path) in segments {
        if first_seq > durable_seq + 1 {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let Ok(mut bytes) = std::fs::read(&path) else {
            continue;
        };
        let (mut off, mut seq) = (SEGMENT_HEADER, first_seq);
        // The writer flushes whole records, so `durable_seq` ends one (a row
        // record's last row).
        while let Step::Record { next, span, .. } = segment::step(&bytes, off, seq) {
            if seq > durable_seq {
                break;
            }
            off = next;
            seq += span;
        }
        if seq > durable_seq && off < bytes.len() {
            bytes[off..].fill(0);
            let _ = std::fs::write(&path, &bytes);
        }
    }
}
