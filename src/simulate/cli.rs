//! `fillcast simulate`: run seeds, report each failure with its replay command,
//! and sum up.

use super::{replay_command, run_seed, Options};
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Options of `fillcast simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// How many seeds to run, from --start.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub start: u64,
    /// Run this one seed only (what a failure report says to replay).
    #[arg(long, conflicts_with_all = ["seeds", "start"])]
    pub seed: Option<u64>,
    /// Print the world and every event as it happens (stderr); meant for one seed.
    #[arg(long)]
    pub verbose: bool,
    /// Print one line per seed on stdout (`ok SEED ...` or `FAIL SEED ...`), for
    /// scripts (`scripts/simulate.sh`).
    #[arg(long)]
    pub lines: bool,
}

/// Totals over the seeds run.
#[derive(Default)]
struct Totals {
    ok: u64,
    failed: Vec<u64>,
    open_at_end: u64,
    open_after_resync: u64,
    open_netted: u64,
    open_why: std::collections::BTreeMap<&'static str, u64>,
    restarts: u64,
    crashes: u64,
    steps: u64,
    /// Seeds whose reload removed a symbol, under `close` and under `keep`; of
    /// them, those where subscriptions held it at the reload, and those where
    /// leader fills in it were skipped (`symbol_removed`) after it.
    removed_close: u64,
    removed_keep: u64,
    removed_held: u64,
    removed_skipped: u64,
    /// Seeds whose reload added a symbol, and of them those with orders in it.
    added: u64,
    added_traded: u64,
}

/// What a seed's reload did to the symbols, for its summary (empty when nothing).
fn symbols_line(o: &super::Outcome) -> String {
    let mut line = String::new();
    if let Some(how) = o.symbol_removed {
        line += &format!(
            "; 1 symbol removed ({}): {} subscriptions held it at the reload, {} decisions skipped (symbol_removed)",
            if how == "keep" { "kept" } else { "closed" },
            o.held_in_removed,
            o.skipped_symbol_removed
        );
    }
    if o.symbol_added {
        line += &format!("; 1 symbol added: {} orders in it", o.orders_in_added);
    }
    line
}

/// Runs the seeds; an error when any failed.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (start, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.start, args.seeds),
    };
    let opts = Options {
        verbose: args.verbose,
        ..Options::default()
    };
    let started = Instant::now();
    let progress = !args.lines && count > 1 && std::io::stderr().is_terminal();
    let mut t = Totals::default();
    let stdout = std::io::stdout();
    for seed in start..start.saturating_add(count) {
        match run_seed(seed, &opts) {
            Ok(o) => {
                t.ok += 1;
                t.open_at_end += o.open_at_end;
                t.open_after_resync += o.open_after_resync;
                t.open_netted += o.open_netted;
                for (why, n) in &o.open_why {
                    *t.open_why.entry(why).or_default() += n;
                }
                t.restarts += o.restarts;
                t.crashes += o.crashes;
                t.steps += o.steps;
                match o.symbol_removed {
                    Some("keep") => t.removed_keep += 1,
                    Some(_) => t.removed_close += 1,
                    None => {}
                }
                t.removed_held += (o.held_in_removed > 0) as u64;
                t.removed_skipped += (o.skipped_symbol_removed > 0) as u64;
                t.added += o.symbol_added as u64;
                t.added_traded += (o.orders_in_added > 0) as u64;
                if args.lines {
                    let _ = writeln!(
                        stdout.lock(),
                        "ok {seed} steps={} fills={} orders={} crashes={} restarts={} outages={} open={} open_after_resync={} open_netted={} \
                         symbol_removed={} held_at_reload={} skipped_removed={} symbol_added={} added_orders={} kept_open={} digest={:016x}",
                        o.steps, o.leader_fills, o.orders_at_venue, o.crashes, o.restarts,
                        o.outages, o.open_at_end, o.open_after_resync, o.open_netted,
                        o.symbol_removed.unwrap_or("no"), o.held_in_removed, o.skipped_symbol_removed,
                        o.symbol_added as u8, o.orders_in_added,
                        o.open_why.get("removed_kept").copied().unwrap_or(0), o.digest
                    );
                } else if count == 1 {
                    println!(
                        "seed {seed} ok: {} inputs, {} leader fills, {} orders at the venue, {} fills, \
                         {} rejects, {} outages, {} crashes ({} torn), {} halts, {} restarts, \
                         {} resyncs, {} given up; {} positions open where the leader is flat \
                         (each with its reason), {} after a resync command{}; digest {:016x}",
                        o.steps, o.leader_fills, o.orders_at_venue, o.venue_fills, o.rejects,
                        o.outages, o.crashes, o.torn_tails, o.halts, o.restarts, o.resyncs,
                        o.gave_up, o.open_at_end, o.open_after_resync, symbols_line(&o), o.digest
                    );
                }
            }
            Err(f) => {
                t.failed.push(seed);
                eprint!("{f}");
                if args.lines {
                    let _ = writeln!(stdout.lock(), "FAIL {seed} {} at step {}", f.check, f.step);
                }
            }
        }
        if progress {
            let done = seed - start + 1;
            eprint!(
                "\rsimulate: {done}/{count} seeds, {} failed",
                t.failed.len()
            );
        }
    }
    if progress {
        eprintln!();
    }
    let secs = started.elapsed().as_millis();
    eprintln!(
        "simulate: {count} seeds from {start} in {}.{:03}s: {} ok, {} failed; {} inputs, {} crashes, {} restarts; \
         {} positions open where the leader is flat at the end (each with its reason), {} after a resync command",
        secs / 1000,
        secs % 1000,
        t.ok,
        t.failed.len(),
        t.steps,
        t.crashes,
        t.restarts,
        t.open_at_end,
        t.open_after_resync
    );
    if t.removed_close + t.removed_keep + t.added > 0 {
        eprintln!(
            "  reloads that changed the symbols: {} removed one under on_remove = close, {} under keep \
             ({} with subscriptions holding it at the reload, {} with leader fills in it skipped after); \
             {} added one ({} with orders in it)",
            t.removed_close, t.removed_keep, t.removed_held, t.removed_skipped, t.added, t.added_traded
        );
    }
    if t.open_after_resync > 0 {
        eprintln!(
            "  open after a resync command, by reason: {:?}; {} of them held by followers whose \
             other subscriptions hold the symbol too (the venue nets them)",
            t.open_why, t.open_netted
        );
    }
    if !t.failed.is_empty() {
        for seed in &t.failed {
            eprintln!("  replay: {}", replay_command(*seed));
        }
        anyhow::bail!("{} of {count} seeds failed: {:?}", t.failed.len(), t.failed);
    }
    Ok(())
}
