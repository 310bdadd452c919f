//! The journal at the command line: opening it for `run` (recovery, replay, asking
//! the venues about unanswered orders), `fillcast journal inspect` and
//! `fillcast journal repair`.

use anyhow::{bail, Context, Result};
use fillcast_engine::config::Config;
use fillcast_engine::model::Universe;
use fillcast_engine::port::{Gateway, Source};
use fillcast_journal::reader::{Found, JournalReader};
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
        &mut |line| crate::log::raw(&line),
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
        src.resume(pos).with_context(|| {
            format!("resuming source #{} at its journaled position {pos}", i + 1)
        })?;
        crate::log::raw(&format!(
            "journal: source `{}` resumes at position {pos}",
            src.name()
        ));
    }
    Ok(())
}

/// `fillcast journal inspect`: reads what it can, past any damage; names every
/// gap and every record it cannot decode, and then fails (so a script notices).
pub fn inspect(dir: &Path, json: bool, from: u64, limit: Option<u64>) -> Result<()> {
    // A reader that stops early (`| head`) ends this command quietly, as it ends
    // any filter, instead of a panic on the broken pipe. Only this command: the
    // engine keeps SIGPIPE ignored for its sockets.
    // SAFETY: `signal` with SIG_DFL installs no handler of ours; called once,
    // before this command prints, with no other thread of ours running.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let reader = JournalReader::open(dir).with_context(|| format!("journal {}", dir.display()))?;
    let mut undecodable = 0u64;
    let mut problems = 0u64;
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
        reader.walk(|found| {
            if let Found::Record(rec) = found {
                if let Err(e) = decode(rec.kind, rec.schema, rec.payload) {
                    undecodable += 1;
                    println!("  UNDECODABLE   record {}: {e}", rec.seq);
                }
            }
        });
        for p in &s.problems {
            problems += 1;
            println!("  DAMAGED       {p}");
        }
        if let Some(t) = &s.torn_tail {
            println!("  torn tail     {t} (the next `fillcast run` cuts it)");
        }
    } else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut left = limit.unwrap_or(u64::MAX);
        reader.walk(|found| {
            let line = match found {
                Found::Record(rec) if rec.seq < from.max(1) || left == 0 => return,
                Found::Record(rec) => {
                    left -= 1;
                    match decode(rec.kind, rec.schema, rec.payload) {
                        Ok(e) => entry_json(rec.seq, rec.ts, &e),
                        Err(e) => {
                            undecodable += 1;
                            format!(
                                "{{\"seq\":{},\"error\":{}}}",
                                rec.seq,
                                json_string(&e.to_string())
                            )
                        }
                    }
                }
                Found::Problem(p) => {
                    problems += 1;
                    let lost = p.lost.map_or(String::new(), |(a, b)| {
                        format!(",\"lost_from\":{a},\"lost_to\":{b}")
                    });
                    format!(
                        "{{\"problem\":{},\"path\":{}{lost}}}",
                        json_string(&p.to_string()),
                        json_string(&p.path.display().to_string())
                    )
                }
                Found::TornTail(t) => format!("{{\"torn_tail\":{}}}", json_string(&t)),
            };
            // A closed pipe (`| head`) is not an error: the rest goes nowhere.
            let _ = writeln!(out, "{line}");
        });
    }
    if problems + undecodable > 0 {
        bail!(
            "journal {}: {problems} damaged spots or gaps and {undecodable} undecodable records (listed above)",
            dir.display()
        );
    }
    Ok(())
}

/// `fillcast journal repair`: says where the journal would be cut and what that
/// drops; with `yes`, keeps a copy of what it changes and cuts.
pub fn repair(dir: &Path, yes: bool) -> Result<()> {
    let cut = fillcast_journal::repair::plan(dir)
        .with_context(|| format!("journal {}", dir.display()))?;
    let Some(cut) = cut else {
        println!(
            "journal {}: reads clean to its end; nothing to repair",
            dir.display()
        );
        return Ok(());
    };
    println!(
        "journal {}: {} at offset {}: {}",
        dir.display(),
        cut.path.display(),
        cut.offset,
        cut.reason
    );
    println!("repair drops {}", cut.describe());
    if !yes {
        println!("dry run: nothing changed; run again with --yes to cut there");
        return Ok(());
    }
    let kept = fillcast_journal::repair::apply(dir, &cut)
        .with_context(|| format!("journal {}", dir.display()))?;
    println!(
        "repaired: a copy of every file changed or dropped is in {}; the journal now ends at sequence {}",
        kept.display(),
        cut.from_seq - 1
    );
    // Orders of the dropped records may have reached a venue: the next run asks first.
    restart::mark_unclean(dir, "records were cut by `fillcast journal repair`")
        .with_context(|| format!("journal {}", dir.display()))?;
    println!("the next run asks the venues about each order before it sends it");
    Ok(())
}
