//! `fillcast demo`: the engine on embedded defaults. The world (venue, symbols,
//! leaders) is `config/demo.toml`; followers and subscriptions are generated from
//! the seed with mixed modes and limits, so every reason code has a chance to show.

use crate::{gateways_for, journal_cmd, sql_cmd, summary, venue_settings};
use anyhow::{bail, Context, Result};
use clap::Args;
use fillcast_engine::config::{
    self, Config, FollowerConfig, LeaderConfig, ModeConfig, OrderTypeConfig, Status,
    SubscriptionConfig,
};
use fillcast_engine::core::Core;
use fillcast_engine::ids::mix64;
use fillcast_engine::model::Universe;
use fillcast_engine::pipeline;
use fillcast_engine::port::JournalSink;
use fillcast_engine::port::Source;
use fillcast_gateways::config::GatewayKinds;
use fillcast_gateways::synthetic::SyntheticLeaders;
use fillcast_report::ReportOptions;
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEMO_TOML: &str = include_str!("../config/demo.toml");

#[derive(Args)]
pub struct DemoArgs {
    /// Followers to generate (each copies one leader, every tenth copies two).
    #[arg(long, default_value_t = 10_000)]
    followers: u32,
    /// Leaders (the first three come from config/demo.toml, more are generated).
    #[arg(long, default_value_t = 3)]
    leaders: u32,
    /// How long the leaders trade, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Leader fills per second across all leaders. Each fill fans out to ~3,700
    /// subscriptions, so 200 fills journal ~2.7 M records (~290 MB) and make ~2.5 M
    /// SQL rows; raise it with --no-journal to load the engine alone.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Seed for the followers, the leaders' trading and the venue.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Pin the core stage to this CPU.
    #[arg(long)]
    core_cpu: Option<usize>,
    /// Where the demo writes its journal, the SQLite database the sidecar fills
    /// from it, and the reports. Replaced on each run (only if an earlier demo made it).
    #[arg(long, default_value = "fillcast-demo")]
    out: PathBuf,
    /// Run the engine only: no journal, no sidecar, no report.
    #[arg(long)]
    no_journal: bool,
}

/// Marks a directory as the demo's own, so a rerun may replace it.
const MARKER: &str = ".fillcast-demo";

/// Prepare `out` for a fresh demo: create it, or empty it if an earlier demo made it.
fn fresh_out_dir(out: &Path) -> Result<()> {
    if out.exists() {
        if !out.join(MARKER).is_file() {
            bail!(
                "{} exists and was not made by `fillcast demo`: choose another --out directory",
                out.display()
            );
        }
        for name in [
            "journal",
            "fillcast.db",
            "report.html",
            "report.json",
            "fanout-latency.json",
        ] {
            let p = out.join(name);
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else if p.exists() {
                std::fs::remove_file(&p)
            } else {
                Ok(())
            };
            removed.with_context(|| format!("removing the last demo's {}", p.display()))?;
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(
        out.join(MARKER),
        "written by `fillcast demo`, which replaces this directory's contents on each run\n",
    )
    .with_context(|| format!("writing into {}", out.display()))
}

/// A deterministic stream of pseudo-random numbers for the generated followers.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    /// True with probability `pct`%.
    fn pct(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    /// A decimal in [lo, hi) with `dp` decimal places.
    fn dec(&mut self, lo: i64, hi: i64, dp: u32) -> Decimal {
        let scale = 10i64.pow(dp);
        let span = ((hi - lo) * scale).max(1) as u64;
        Decimal::new(lo * scale + (self.next() % span) as i64, dp)
    }
}

pub fn demo_config(args: &DemoArgs) -> Result<Config> {
    let mut cfg = config::load_str_with(DEMO_TOML, Path::new("config/demo.toml"), &GatewayKinds)
        .map_err(|e| anyhow::anyhow!("embedded demo config: {e}"))?;
    let mut d = Draw(args.seed);
    cfg.leaders.truncate(args.leaders as usize);
    while cfg.leaders.len() < args.leaders as usize {
        let id = format!("L{}", cfg.leaders.len() + 1);
        cfg.leaders.push(LeaderConfig {
            id,
            equity: d.dec(50_000, 2_000_000, 0),
            paused: false,
            profile: None,
            removed: false,
        });
    }
    if cfg.leaders.is_empty() {
        bail!("--leaders must be at least 1");
    }
    if let Some(core_cpu) = args.core_cpu {
        cfg.engine.core_cpu = Some(core_cpu);
    }
    let symbols: Vec<String> = cfg.symbols.iter().map(|s| s.name.clone()).collect();
    for i in 0..args.followers {
        let id = format!("F{i:05}");
        let equity = d.dec(1_000, 100_000, 0);
        cfg.followers.push(FollowerConfig {
            id: id.clone(),
            equity,
            status: if d.pct(3) {
                Status::Paused
            } else {
                Status::Active
            },
            max_leverage: d.pct(30).then(|| d.dec(1, 5, 1)),
            max_open_positions: d.pct(15).then_some(1),
            daily_loss_limit: d.pct(10).then(|| (equity / Decimal::from(50)).round_dp(2)),
            symbols: d.pct(10).then(|| symbols.iter().take(2).cloned().collect()),
            removed: false,
        });
        let n_subs = if d.pct(10) && cfg.leaders.len() > 1 {
            2
        } else {
            1
        };
        for j in 0..n_subs {
            let leader = cfg.leaders[((i + j) as usize) % cfg.leaders.len()]
                .id
                .clone();
            let allocation = (equity * d.dec(2, 10, 1) / Decimal::from(10)).round_dp(2);
            let mut s = SubscriptionConfig {
                id: None,
                follower: id.clone(),
                leader,
                allocation,
                mode: ModeConfig::Proportional,
                multiplier: None,
                ratio: None,
                amount: None,
                leverage: None,
                order_type: if d.pct(10) {
                    OrderTypeConfig::Market
                } else {
                    OrderTypeConfig::Limit
                },
                slippage_bps: 10 + (d.next() % 40) as u32,
                max_order_notional: d
                    .pct(20)
                    .then(|| (allocation / Decimal::from(4)).round_dp(2)),
                max_position_notional: None,
                max_position_pct: d.pct(15).then(|| Decimal::from(40)),
                total_stop_loss_pct: d.pct(10).then(|| Decimal::from(30)),
                leader_drawdown_pct: d.pct(5).then(|| Decimal::from(15)),
                copy_open_positions: false,
                status: Status::Active,
                removed: false,
            };
            match d.next() % 10 {
                0..=3 => {
                    s.mode = ModeConfig::Proportional;
                    s.multiplier = Some(d.dec(1, 3, 2));
                }
                4 | 5 => {
                    s.mode = ModeConfig::FixedRatio;
                    s.ratio = Some(d.dec(0, 1, 3).max(Decimal::new(1, 3)) / Decimal::from(10));
                }
                6 | 7 => {
                    s.mode = ModeConfig::FixedAmount;
                    s.amount = Some(d.dec(20, 500, 0));
                }
                _ => {
                    s.mode = ModeConfig::FixedLeverage;
                    s.leverage = Some(d.dec(0, 2, 2).max(Decimal::new(5, 2)));
                }
            }
            cfg.subscriptions.push(s);
        }
    }
    Ok(cfg)
}

pub fn run(args: &DemoArgs) -> Result<()> {
    if args.duration <= 0.0 || args.rate == 0 {
        bail!("--duration and --rate must be positive");
    }
    let mut cfg = demo_config(args)?;
    if !args.no_journal {
        fresh_out_dir(&args.out)?;
        cfg.journal = Some(config::JournalConfig {
            dir: args.out.join("journal"),
            segment_mib: 64,
            durability: config::DurabilityConfig::Never,
            flush_every_ms: config::defaults::flush_every_ms(),
        });
    }
    let u = Arc::new(Universe::from_config(&cfg).context("demo model")?);
    let fills = ((args.duration * args.rate as f64).round() as u64).max(1);
    println!(
        "fillcast demo: {} leaders, {} followers ({} subscriptions), {} leader fills at {}/s, seed {}",
        u.leaders.len(),
        u.followers.len(),
        u.subs.len(),
        fills,
        args.rate,
        args.seed
    );
    let mut venues = venue_settings(&u)?;
    // The demo's one venue runs from the demo's seed too.
    venues[0].sim.seed = args.seed;
    let mut gateways = gateways_for(&u, &venues, false)?;
    let sources: Vec<Box<dyn Source>> = vec![Box::new(
        SyntheticLeaders::new(Arc::clone(&u), args.seed, fills)
            .with_rate(args.rate)
            // Venue time starts now, so the report's trailing windows (7 days and up,
            // ending at the latest timestamp) hold the demo's trading.
            .with_start_ts(fillcast_engine::clock::now()),
    )];
    let (core, journal) = if cfg.journal.is_some() {
        let opened = journal_cmd::open(&cfg, &u, &mut gateways)?;
        (
            opened.core,
            Some(Box::new(opened.stage) as Box<dyn JournalSink>),
        )
    } else {
        (Core::new(Arc::clone(&u), &cfg.engine), None)
    };
    let started = Instant::now();
    let running = pipeline::start(
        core,
        gateways,
        sources,
        journal,
        pipeline::Restart::default(),
        &cfg.engine,
    );
    let mut ticker = summary::Ticker::new(1.0, &u, &cfg.engine);
    let (core_out, mut io_out) =
        running.run_to_completion(Duration::from_millis(20), |p| ticker.tick(p));
    if let Some(e) = &io_out.journal_error {
        bail!("the journal failed, so no more orders were sent: {e}");
    }
    let found = summary::print(&core_out, &mut io_out, started.elapsed());
    if found.unexplained > 0 {
        bail!(
            "{} follower positions are open where their leader is flat, with no recorded reason",
            found.unexplained
        );
    }
    let mismatched = found.mismatched;
    if mismatched > 0 {
        bail!("{mismatched} follower positions differ between the engine and the venue");
    }
    drop(io_out);
    if !args.no_journal {
        sidecar_and_report(&args.out, &core_out.fanout_ns)?;
    }
    Ok(())
}

/// The demo's last step: the journal into SQLite, and the reports from it.
fn sidecar_and_report(out: &Path, fanout_ns: &hdrhistogram::Histogram<u64>) -> Result<()> {
    let db_path = out.join("fillcast.db");
    let db = format!("sqlite:{}", db_path.display());
    println!();
    println!("sidecar: replaying the journal into {}", db_path.display());
    let stats = fillcast_sql::sidecar::run(
        &out.join("journal"),
        &db,
        fillcast_sql::sidecar::SidecarOptions {
            progress: sql_cmd::progress_printer(1.0),
            ..Default::default()
        },
    )?;
    sql_cmd::print_stats(&stats);
    let latency = out.join("fanout-latency.json");
    sql_cmd::write_latency(&latency, fanout_ns)?;
    let report = sql_cmd::Db::open(&db)?
        .report(&ReportOptions::default())?
        .with_latency(sql_cmd::latency_buckets(fanout_ns));
    let (json, html) = (out.join("report.json"), out.join("report.html"));
    sql_cmd::write_outputs(&report, Some(&json), Some(&html))?;
    println!();
    print!("{}", report.summary_text());
    println!();
    println!("wrote:");
    println!("  journal        {}", out.join("journal").display());
    println!(
        "  database       {}   (fillcast report --db {db})",
        db_path.display()
    );
    println!("  report (HTML)  {}", html.display());
    println!("  report (JSON)  {}", json.display());
    println!("  latency        {}", latency.display());
    Ok(())
}
