//! The journal at the command line: opening it for `run` (recovery, replay, asking
//! the venues about unanswered orders) and `fillcast journal inspect`.

use anyhow::{bail, Context, Result};
use fillcast_engine::config::{Config, DurabilityConfig, JournalConfig};
use fillcast_engine::core::Core;
use fillcast_engine::event::ExecReport;
use fillcast_engine::model::Universe;
use fillcast_engine::port::{Gateway, JournalSink};
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, entry_json, json_string, Kind};
use fillcast_journal::replay::replay;
use fillcast_journal::stage::JournalStage;
use fillcast_journal::writer::{Durability, JournalOptions, JournalWriter};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Everything `run` needs to start on a journal.
pub struct Opened {
    pub core: Core,
    pub stage: JournalStage,
    pub recovered: Vec<ExecReport>,
}

fn options(j: &JournalConfig) -> JournalOptions {
    JournalOptions {
        segment_bytes: u64::from(j.segment_mib.max(1)) << 20,
        durability: match j.durability {
            DurabilityConfig::Never => Durability::Never,
            DurabilityConfig::EveryMs => Durability::EveryMs(j.flush_every_ms.max(1)),
            DurabilityConfig::Sync => Durability::Sync,
        },
    }
}

/// Open (and recover) the journal, rebuild the core from it, and ask the venues
/// about orders that were sent and never answered.
pub fn open(
    cfg: &Config,
    universe: &Arc<Universe>,
    gateways: &mut [Box<dyn Gateway>],
) -> Result<Opened> {
    let j = cfg.journal.as_ref().context("no [journal] in the config")?;
    let (writer, recovery) = JournalWriter::open(&j.dir, options(j))
        .with_context(|| format!("journal {}", j.dir.display()))?;
    if let Some(reason) = &recovery.cut_reason {
        eprintln!(
            "journal: cut {} bytes of torn tail ({reason})",
            recovery.cut_bytes
        );
    }
    let mut stage = JournalStage::new(writer);
    let replayed =
        replay(&j.dir).with_context(|| format!("replaying journal {}", j.dir.display()))?;
    let Some(r) = replayed else {
        stage
            .write_config(
                universe.revision,
                &cfg.to_toml().map_err(anyhow::Error::msg)?,
                fillcast_engine::clock::now().0,
            )
            .map_err(anyhow::Error::msg)?;
        return Ok(Opened {
            core: Core::new(Arc::clone(universe), &cfg.engine),
            stage,
            recovered: Vec::new(),
        });
    };
    if r.revision != universe.revision {
        bail!(
            "the config changed since journal {} was written (revision {:016x} there, {:016x} now); \
             config reload is not built yet: restore the config or start a new journal directory",
            j.dir.display(),
            r.revision,
            universe.revision
        );
    }
    let s = &r.stats;
    eprintln!(
        "journal: replayed {} records (seq {}..{}), {} inputs; {} outputs re-derived, {} differ",
        s.records, s.first_seq, s.last_seq, s.inputs, s.outputs_checked, s.mismatches
    );
    if s.mismatches > 0 {
        bail!(
            "replay of journal {} does not reproduce {} of its decisions: refusing to continue",
            j.dir.display(),
            s.mismatches
        );
    }
    if !r.unjournaled.is_empty() {
        eprintln!(
            "journal: appending {} decisions and orders the last run made but did not journal",
            r.unjournaled.len()
        );
        stage.append(&r.unjournaled).map_err(anyhow::Error::msg)?;
    }
    let core = r.core;
    // Orders sent and never answered: ask their venues.
    let mut by_venue: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for o in core.orders().filter(|o| !o.state.is_terminal()) {
        by_venue
            .entry(universe.sym(o.symbol).venue.0 as usize)
            .or_default()
            .push(o.id);
    }
    let mut recovered = Vec::new();
    for (venue, ids) in by_venue {
        let gw = gateways
            .get_mut(venue)
            .context("venue index out of range")?;
        gw.recover(&ids, &mut |r| recovered.push(r))
            .map_err(anyhow::Error::msg)?;
        eprintln!(
            "journal: asked venue `{}` about {} unanswered orders",
            gw.name(),
            ids.len()
        );
    }
    Ok(Opened {
        core,
        stage,
        recovered,
    })
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
