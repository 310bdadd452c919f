//! fillcast-bench: the benchmarking harness. Every headline is a ratio against a
//! baseline measured in the same invocation; the JSON carries every percentile,
//! the machine, the thread layout and the git revision, and the chart shows the
//! latency spectra. Benchmarks are not tests: nothing here asserts a time.

mod chart;
mod e2e;
mod fanout;
mod fixe2e;
mod fixwire;
mod journal;
mod progress;
mod reload;
mod report;
mod sidecar;
mod sustained;
mod world;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use progress::Progress;
use report::{Role, Run, Scenario};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCENARIOS_HELP: &str = "\
Scenarios (default: all but fixe2e, in this order):
  fanout     One leader fill sized, risk-checked and turned into orders for 1k / 10k / 100k
             followers (Core::on_feed into 32-order chunks). Baseline: the textbook design,
             rust_decimal sizing per follower and one crossbeam channel message per order to
             a consumer thread. Ratio: baseline p99 / fillcast p99. Target: 10k, p99 <= 50 us.
  sustained  Many leaders (16), followers spread over them, leader fills through the core
             stage, each order answered by a fill. Unpaced: maximum follower orders/s.
             Paced at half the slower maximum: per-fill latency corrected for coordinated
             omission (from each fill's intended start). Baseline: source -> channel ->
             rust_decimal core thread -> a message per order -> gateway thread, fills back
             by channel. Ratios: throughput, and p99 when paced. Target: >= 50 M orders/s.
  journal    Decision records appended to the memory-mapped journal per durability setting
             (never, every_ms 10, sync). Baseline: each decision straight to SQLite, one
             autocommit INSERT (WAL, synchronous = NORMAL). Reference: a buffered write(2)
             of the same bytes. Ratio: records/s. Target: >= 5 M records/s.
  sidecar    The SQL sidecar replaying a journal into SQLite, and into PostgreSQL with --pg
             URL (or FILLCAST_TEST_PG). Baseline: one autocommit INSERT per row into the same
             schema. Ratio: rows/s. Target: >= 300 k rows/s into SQLite.
  e2e        End to end over loopback TCP: the real pipeline (core + I/O threads; without,
             then with the journal) trading with a sim venue server; leader fill's
             scheduled arrival -> the last of its orders handed to the gateway's socket. Baseline: the textbook design
             (decimal core thread, a message per order) submitting each order alone through
             its own SimClient to the same kind of venue. Ratio: baseline p99 / fillcast p99.
  reload     A live reload's stall of the core thread with 10k / 100k subscriptions:
             Core::take_revision (prepared off the core thread), every subscription's limit
             changed (in place), and a revision adding 1% and removing 1% of the
             subscriptions (the running state moved into a grown core). Baseline:
             rebuilding the core for the new model (Core::new). Ratio: baseline p99 / fillcast p99.
  fixwire    FIX 4.4 per message: one egress chunk of 32 NewOrderSingles encoded and their 32
             ExecutionReports decoded. Baseline: the sim venue's binary wire (simwire) for the
             same. Ratio: baseline p99 / fillcast p99 (below 1: FIX costs more).
  fixe2e     FIX end to end over loopback against the QuickFIX test venue (only when named;
             needs target/fixvenue/fixvenue from scripts/install-quickfix.sh, or --fixvenue):
             the real pipeline with the FIX drop-copy source and order-entry gateway; 1 leader,
             100 followers (4 chunks of orders per fill), 2,000 fills one at a time (at most
             100/s); leader execution read (recv_ts) -> the last follower NewOrderSingle
             written. Baseline: the same pipeline, universe and fills with an in-process source
             and the sim venue's wire. Ratio: baseline p99 / fillcast p99 (below 1: FIX slower).

Ratios are always oriented so that above 1 means fillcast is better.
Build with --release (scripts/bench.sh does): a debug build's figures mean little.";

#[derive(Parser, Debug)]
#[command(
    name = "fillcast-bench",
    version,
    about = "fillcast's benchmarking harness: latency and throughput beside baselines run in the same invocation",
    after_help = SCENARIOS_HELP
)]
struct Cli {
    /// Scenarios to run (default: all).
    #[arg(value_enum)]
    scenarios: Vec<Name>,

    /// Smaller sizes and shorter runs (under a minute on 2 cores).
    #[arg(long, conflicts_with = "tiny")]
    quick: bool,

    /// The smallest sizes, for the test suite: checks the harness, not the engine.
    #[arg(long, hide = true)]
    tiny: bool,

    /// Where the JSON results go.
    #[arg(long, value_name = "FILE", default_value = "target/bench/bench.json")]
    json: PathBuf,

    /// Where the latency chart goes: .html (page with inline SVG) or .svg.
    #[arg(long, value_name = "FILE", default_value = "target/bench/bench.html")]
    chart: PathBuf,

    /// PostgreSQL for the sidecar scenario (default: $FILLCAST_TEST_PG; none: skipped).
    #[arg(long, value_name = "URL")]
    pg: Option<String>,

    /// fanout: follower counts, comma-separated.
    #[arg(long, value_name = "N,N,..", value_delimiter = ',')]
    followers: Option<Vec<usize>>,

    /// fanout: samples per follower count.
    #[arg(long, value_name = "N")]
    samples: Option<usize>,

    /// sustained: leaders.
    #[arg(long, value_name = "N")]
    leaders: Option<usize>,

    /// sustained: followers, spread over the leaders.
    #[arg(long, value_name = "N")]
    sustained_followers: Option<usize>,

    /// sustained: leader fills per second in the paced run (default: half the slower maximum).
    #[arg(long, value_name = "FILLS_PER_SEC")]
    rate: Option<u64>,

    /// journal: records appended per durability setting.
    #[arg(long, value_name = "N")]
    records: Option<usize>,

    /// journal: directory for the journal files (default: a temporary one).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// sidecar: journal records to replay.
    #[arg(long, value_name = "N")]
    rows: Option<usize>,

    /// e2e: leader fills per second.
    #[arg(long, value_name = "FILLS_PER_SEC")]
    e2e_rate: Option<u64>,

    /// e2e: seconds of leader fills.
    #[arg(long, value_name = "SECONDS")]
    e2e_seconds: Option<f64>,

    /// fixe2e: the QuickFIX test venue's binary (default: $FILLCAST_FIXVENUE, else
    /// target/fixvenue/fixvenue of this checkout).
    #[arg(long, value_name = "PATH")]
    fixvenue: Option<PathBuf>,

    /// fixe2e: leader fills, each released once the last has settled.
    #[arg(long, value_name = "N")]
    fixe2e_fills: Option<u64>,

    /// fixe2e: followers of the one leader (orders per fill).
    #[arg(long, value_name = "N")]
    fixe2e_followers: Option<usize>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Name {
    /// One leader fill to 1k / 10k / 100k followers; baseline: decimals and a message per order.
    Fanout,
    /// Many leaders at a fixed rate and unpaced, through the core stage; same baseline.
    Sustained,
    /// Journal append per durability setting; baseline: each decision straight to SQLite.
    Journal,
    /// Sidecar replay into SQLite (and PostgreSQL); baseline: an autocommit INSERT per row.
    Sidecar,
    /// Pipeline to the sim venue over TCP; baseline: the textbook design over the same wire.
    E2e,
    /// A reload's stall of the core thread; baseline: rebuilding the core.
    Reload,
    /// FIX 4.4 per message: a chunk of orders out and their fills back; baseline: the sim venue's binary wire.
    Fixwire,
    /// FIX end to end against the QuickFIX venue (only when named); baseline: the sim venue's wire.
    Fixe2e,
}

impl Name {
    /// Whether a run that names no scenario runs it: not one that needs a
    /// program built outside cargo.
    fn in_default_run(self) -> bool {
        self != Name::Fixe2e
    }
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Size {
    Full,
    Quick,
    Tiny,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("fillcast-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let size = match (cli.quick, cli.tiny) {
        (_, true) => Size::Tiny,
        (true, _) => Size::Quick,
        _ => Size::Full,
    };
    let mut names = cli.scenarios.clone();
    if names.is_empty() {
        names = Name::value_variants()
            .iter()
            .copied()
            .filter(|n| n.in_default_run())
            .collect();
    }
    names.dedup();
    // Before any scenario runs: a missing venue ends the run at once, saying how to build it.
    let fixvenue = if names.contains(&Name::Fixe2e) {
        Some(fixe2e::venue_binary(cli.fixvenue.as_deref())?)
    } else {
        None
    };
    let pg = cli.pg.clone().or_else(|| {
        std::env::var("FILLCAST_TEST_PG")
            .ok()
            .filter(|s| !s.is_empty())
    });
    if cfg!(debug_assertions) && size != Size::Tiny {
        eprintln!("fillcast-bench: this is a debug build; its figures mean little (use --release or scripts/bench.sh)");
    }

    let progress = Progress::new(names.len());
    let mut scenarios: Vec<Scenario> = Vec::new();
    for name in &names {
        let label = name
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string());
        progress.scenario(&label);
        let s = match name {
            Name::Fanout => fanout::run(&fanout_options(&cli, size), &progress),
            Name::Sustained => sustained::run(&sustained_options(&cli, size), &progress),
            Name::Journal => journal::run(&journal_options(&cli, size), &progress),
            Name::Sidecar => sidecar::run(&sidecar_options(&cli, size, pg.clone()), &progress),
            Name::E2e => e2e::run(&e2e_options(&cli, size), &progress),
            Name::Reload => reload::run(&reload_options(size), &progress),
            Name::Fixwire => fixwire::run(
                &fixwire::Options {
                    chunks: match size {
                        Size::Full => 20_000,
                        Size::Quick => 2_000,
                        Size::Tiny => 20,
                    },
                },
                &progress,
            ),
            Name::Fixe2e => fixe2e::run(
                &fixe2e_options(&cli, size, fixvenue.clone().unwrap_or_default()),
                &progress,
            )?,
        };
        progress.println(summary_line(&s));
        scenarios.push(s);
        progress.scenario_done();
    }
    progress.finish();

    let run = Run {
        schema: report::SCHEMA_VERSION,
        tool: "fillcast-bench",
        version: env!("CARGO_PKG_VERSION"),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        timestamp: report::timestamp(),
        command_line: std::env::args().collect(),
        quick: size != Size::Full,
        git: report::git(),
        machine: report::machine(),
        scenarios,
    };
    let table = table(&run);
    print!("{table}");

    write(&cli.json, &serde_json::to_string_pretty(&run)?)?;
    let chart = if cli.chart.extension().is_some_and(|e| e == "svg") {
        chart::svg(&run)
    } else {
        chart::html(&run, &table)
    };
    write(&cli.chart, &chart)?;
    println!("\nJSON:  {}", shown(&cli.json));
    println!("chart: {}", shown(&cli.chart));
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn shown(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

fn fanout_options(cli: &Cli, size: Size) -> fanout::Options {
    let (followers, samples) = match size {
        Size::Full => (vec![1_000, 10_000, 100_000], 200),
        Size::Quick => (vec![1_000, 10_000], 60),
        Size::Tiny => (vec![64], 5),
    };
    fanout::Options {
        followers: cli.followers.clone().unwrap_or(followers),
        samples: cli.samples.unwrap_or(samples).max(1),
    }
}

fn sustained_options(cli: &Cli, size: Size) -> sustained::Options {
    let (leaders, followers, unpaced_ms, paced_ms) = match size {
        Size::Full => (16, 16_000, 3_000, 5_000),
        Size::Quick => (8, 4_000, 500, 1_000),
        Size::Tiny => (2, 64, 100, 200),
    };
    let leaders = cli.leaders.unwrap_or(leaders).max(1);
    sustained::Options {
        leaders,
        followers: cli.sustained_followers.unwrap_or(followers).max(leaders),
        unpaced: Duration::from_millis(unpaced_ms),
        paced: Duration::from_millis(paced_ms),
        rate: cli.rate.filter(|r| *r > 0),
    }
}

fn journal_options(cli: &Cli, size: Size) -> journal::Options {
    let (records, sync_records, sqlite_records) = match size {
        Size::Full => (5_000_000, 1_000_000, 50_000),
        Size::Quick => (500_000, 100_000, 5_000),
        Size::Tiny => (2_000, 2_000, 100),
    };
    let records = cli.records.unwrap_or(records).max(1);
    journal::Options {
        records,
        sync_records,
        sqlite_records: sqlite_records.min(records),
        dir: cli.dir.clone(),
    }
}

fn sidecar_options(cli: &Cli, size: Size, pg: Option<String>) -> sidecar::Options {
    let (rows, baseline_rows, pg_baseline_rows) = match size {
        Size::Full => (1_000_000, 20_000, 5_000),
        Size::Quick => (100_000, 2_000, 500),
        Size::Tiny => (2_000, 100, 50),
    };
    sidecar::Options {
        rows: cli.rows.unwrap_or(rows).max(1),
        baseline_rows,
        pg_baseline_rows,
        pg,
    }
}

fn reload_options(size: Size) -> reload::Options {
    let (subscriptions, samples, grown_samples) = match size {
        Size::Full => (vec![10_000, 100_000], 40, 40),
        Size::Quick => (vec![10_000, 100_000], 10, 5),
        Size::Tiny => (vec![64], 3, 2),
    };
    reload::Options {
        subscriptions,
        samples,
        grown_samples,
    }
}

fn e2e_options(cli: &Cli, size: Size) -> e2e::Options {
    let (leaders, followers, rate, ms) = match size {
        Size::Full => (4, 2_000, 200, 10_000),
        Size::Quick => (4, 1_000, 200, 1_500),
        Size::Tiny => (2, 16, 50, 300),
    };
    e2e::Options {
        leaders,
        followers,
        fills_per_sec: cli.e2e_rate.unwrap_or(rate).max(1),
        duration: cli
            .e2e_seconds
            .map_or(Duration::from_millis(ms), Duration::from_secs_f64),
    }
}

fn fixe2e_options(cli: &Cli, size: Size, venue: PathBuf) -> fixe2e::Options {
    let (fills, warmup) = match size {
        Size::Full => (2_000, 50),
        Size::Quick => (300, 20),
        Size::Tiny => (12, 2),
    };
    let fills = cli.fixe2e_fills.unwrap_or(fills).max(warmup + 1);
    fixe2e::Options {
        venue,
        followers: cli.fixe2e_followers.unwrap_or(100).max(1),
        fills,
        warmup,
        interval: Duration::from_millis(10),
    }
}

/// One line per scenario as it ends, above the progress bars.
fn summary_line(s: &Scenario) -> String {
    let ratios: Vec<String> = s
        .cases
        .iter()
        .map(|c| match c.ratio {
            Some(r) => format!("{}: {r:.2}×", c.name),
            None => format!("{}: no ratio", c.name),
        })
        .collect();
    format!(
        "{:>10} done in {:.1} s — {}",
        s.name,
        s.elapsed_s,
        ratios.join(", ")
    )
}

/// The results table: per case, every variant's percentiles, throughput and ratio.
fn table(run: &Run) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nfillcast-bench {} · {} · revision {}{} · {} cores, {} · {} build",
        run.version,
        run.timestamp,
        run.git.revision,
        if run.git.dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        },
        run.machine.cores,
        run.machine.cpu_model,
        run.build,
    );
    for s in &run.scenarios {
        let _ = writeln!(t, "\n{} — {}", s.name, s.title);
        for c in &s.cases {
            let ratio = c
                .ratio
                .map_or("no ratio".to_string(), |r| format!("{r:.2}×"));
            let basis = match c.ratio_basis {
                report::RatioBasis::P99Latency => "baseline p99 ÷ fillcast p99",
                report::RatioBasis::Throughput => "fillcast throughput ÷ baseline",
            };
            let _ = writeln!(t, "  {} — {ratio} ({basis})", c.name);
            let _ = writeln!(
                t,
                "    {:<46}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}  {:<22}{:>9}",
                "", "p50", "p90", "p99", "p99.9", "max", "samples", "throughput", "ratio"
            );
            for v in &c.variants {
                let lat = |f: fn(&report::Latency) -> u64| {
                    v.latency_ns
                        .as_ref()
                        .map_or("-".to_string(), |l| chart::duration(f(l) as f64))
                };
                let thr = v.throughput.as_ref().map_or("-".to_string(), |t| {
                    format!("{} {}", si(t.value), short_unit(t.unit))
                });
                let tag = match v.role {
                    Role::Fillcast => "",
                    Role::Baseline => " *",
                    Role::Reference => " ref",
                };
                let _ = writeln!(
                    t,
                    "    {:<46}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}  {:<22}{:>9}",
                    format!("{}{tag}", v.name),
                    lat(|l| l.p50),
                    lat(|l| l.p90),
                    lat(|l| l.p99),
                    lat(|l| l.p99_9),
                    lat(|l| l.max),
                    v.samples,
                    thr,
                    v.ratio.map_or("-".to_string(), |r| format!("{r:.2}×")),
                );
            }
            if let Some(target) = &c.target_result {
                let _ = writeln!(t, "    target: {target}");
            }
        }
        for skip in &s.skipped {
            let _ = writeln!(t, "  skipped: {skip}");
        }
    }
    let _ = writeln!(
        t,
        "\n(* = the baseline each ratio is against; ref = a reference, no ratio formed against it)"
    );
    t
}

fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// The unit without its parenthesised qualifier.
fn short_unit(unit: &str) -> &str {
    unit.split(" (").next().unwrap_or(unit)
}
