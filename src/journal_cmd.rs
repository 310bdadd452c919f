//! The journal at the command line: opening it for `run` (recovery, replay, asking
//! the venues about unanswered orders) and `fillcast journal inspect`.

use anyhow::{Context, Result};
use fillcast_engine::config::Config;
use fillcast_engine::model::Universe;
use fillcast_engine::port::{Gateway, Source};
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, entry_json, json_string, Kind};
use fillcast_journal::restart::{self, Opened};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Open (and recover) the journal of `cfg`, rebuild the core from it, and ask the
/// venues about orders that were sent and never answered
/// (`fillcast_journal::restart::open`, which the simulator shares).
pub fn open(
    cfg: &Config,
    universe: &Arc<Universe>,
    gateways: &mut [Box<dyn Gateway>],
) -> Result<Opened> {
    let j = cfg.journal.as_ref().context("no [journal] in the config")?;
    Ok(restart::open(
        &j.dir,
        restart::options(j),
        cfg,
        universe,
        gateways,
        fillcast_engine::clock::now(),
        &mut |line| eprintln!("{line}"),
    )?)
}

/// Resume each source where the journal says it stood. A journaled position for a
/// source the config no longer has is an error: the events after it would be lost.
pub fn resume_sources(sources: &mut [Box<dyn Source>], cursors: &BTreeMap<u16, u64>) -> Result<()> {
    let n = sources.len();
    for (&i, &pos) in cursors {
        let src = sources.get_mut(i as usize).with_context(|| {
            format!(
                "the journal holds a position for source #{} ([[sources]] entry {}), but the config has {} sources: \
                 restore the [[sources]] list as it was, or start a new journal",
                i,
                i + 1,
                n
            )
        })?;
        src.resume(pos)
            .map_err(anyhow::Error::msg)
            .with_context(|| {
                format!("resuming source #{} at its journaled position {pos}", i + 1)
            })?;
        eprintln!("journal: source `{}` resumes at position {pos}", src.name());
    }
    Ok(())
}

/// `fillcast journal inspect`.
pub fn inspect(dir: &Path, json: bool, from: u64, limit: Option<u64>) -> Result<()> {
    let reader = JournalReader::open(dir).with_context(|| format!("journal {}", dir.display()))?;
    if !json {
        let s = reader
            .summary()
            .with_context(|| format!("journal {}", dir.display()))?;
        println!("journal {}", dir.display());
        println!("  segments      {}", s.segments.len());
        for seg in &s.segments {
            println!(
                "    {}  first seq {}  {} bytes used",
                seg.name, seg.first_seq, seg.bytes_used
            );
        }
        println!(
            "  records       {}   (seq {} .. {})",
            s.records, s.first_seq, s.last_seq
        );
        for (kind, n) in &s.by_kind {
            let name = Kind::from_u16(*kind)
                .map(|k| k.as_str())
                .unwrap_or("unknown");
            println!("    {name:<14}{n:>12}");
        }
        if let Some(e) = &s.error {
            println!("  damaged: {e}");
        }
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let records = reader
        .iter_from(from.max(1))
        .take(limit.map_or(usize::MAX, |l| l as usize));
    for rec in records {
        let rec = rec.with_context(|| format!("journal {}", dir.display()))?;
        let line = match decode(rec.kind, rec.schema, rec.payload) {
            Ok(e) => entry_json(rec.seq, rec.ts, &e),
            Err(e) => format!(
                "{{\"seq\":{},\"error\":{}}}",
                rec.seq,
                json_string(&e.to_string())
            ),
        };
        if writeln!(out, "{line}").is_err() {
            break; // a closed pipe (`| head`) is not an error
        }
    }
    Ok(())
}
