//! `fillcast sidecar` (journal → SQL) and `fillcast report` (SQL → summary, JSON,
//! HTML), plus the fan-out latency file that carries the engine's histogram to a
//! report: the core is deterministic and reads no clock, so the journal holds no
//! latency; the process that ran the engine measured it and writes it beside.
//!
//! A PostgreSQL password never needs to be on the command line (where the
//! process list shows it): `PGPASSWORD` or the password file serve, as for
//! `psql`; messages show the database without it (`sidecar::PgTarget`). Report
//! files are written readable by their owner only.

use anyhow::{bail, Context, Result};
use clap::Args;
use fillcast_report as report;
use fillcast_report::{FeePolicy, LeaderboardFilter, Report, ReportOptions, Settlement};
use fillcast_sql::sidecar::{
    self, pg, rusqlite, Continuity, PgTarget, SidecarOptions, SidecarStats,
};
use hdrhistogram::Histogram;
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct SidecarArgs {
    /// The journal directory the engine writes (`[journal] dir`).
    #[arg(long)]
    journal: PathBuf,
    /// Where the rows go: `sqlite:PATH` (created if missing, mode 0600) or
    /// PostgreSQL, as `postgres://USER@HOST[:PORT]/DB` or libpq `key=value` pairs.
    ///
    /// Give a PostgreSQL password in `PGPASSWORD` or in a password file (`PGPASSFILE`,
    /// else `~/.pgpass`, lines `host:port:database:user:password`, mode 0600), not in
    /// this string: the process list shows the command line to every user. Messages
    /// never show the password.
    #[arg(long, default_value = "sqlite:fillcast.db")]
    db: String,
    /// Keep tailing the journal as the engine writes it; stop with Ctrl-C (SIGINT) or
    /// SIGTERM, after committing what was read.
    #[arg(long)]
    follow: bool,
    /// Rows per transaction (default 200,000: about 20 MB in memory).
    #[arg(long)]
    batch_rows: Option<usize>,
    /// Print a progress line every this many seconds (0 = never).
    #[arg(long, default_value_t = 1.0)]
    progress: f64,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The database the sidecar wrote: `sqlite:PATH`, `postgres://USER@HOST[:PORT]/DB`
    /// or libpq `key=value` pairs.
    ///
    /// Give a PostgreSQL password in `PGPASSWORD` or in a password file (`PGPASSFILE`,
    /// else `~/.pgpass`, mode 0600), not in this string: the process list shows the
    /// command line to every user. Messages never show the password.
    #[arg(long)]
    db: String,
    /// Write the whole report as JSON to this file (mode 0600).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a self-contained HTML page (charts inline, no network) to this file
    /// (mode 0600).
    #[arg(long)]
    html: Option<PathBuf>,
    /// A fan-out latency file (`fillcast run --latency-out`, or the demo's) to chart.
    #[arg(long)]
    latency: Option<PathBuf>,
    /// Print the lineage of one follower order (its client order id) instead of the
    /// report: the leader fill, the instruction, every leg and why.
    #[arg(long, value_name = "CLIENT_ORDER_ID")]
    lineage: Option<String>,
    /// Print every decision on one leader fill (its `leader_fills.seq`).
    #[arg(long, value_name = "SEQ")]
    leader_fill: Option<i64>,
    /// Print the leaderboard instead of the summary (and write it with --json):
    /// leaders ranked by ROI over --period, ties to the smaller drawdown, then more
    /// followers, then leader id; the leaders filtered out are listed with why.
    #[arg(long, conflicts_with_all = ["lineage", "leader_fill", "follower"])]
    leaderboard: bool,
    /// The leaderboard's period: 7d, 30d, 90d or all (default 30d).
    #[arg(long, requires = "leaderboard")]
    period: Option<String>,
    /// Leaderboard: only leaders with at least this AUM (quote currency).
    #[arg(long, value_name = "AMOUNT", requires = "leaderboard")]
    min_aum: Option<String>,
    /// Leaderboard: only leaders with at least this many followers.
    #[arg(long, value_name = "N", requires = "leaderboard")]
    min_followers: Option<usize>,
    /// Leaderboard: only leaders whose maximum drawdown over the period is at most
    /// this fraction (0.2 = 20%).
    #[arg(long, value_name = "FRACTION", requires = "leaderboard")]
    max_drawdown: Option<String>,
    /// One follower's own report instead of the operator's: its subscriptions,
    /// positions, P&L, fees and orders, and nothing of any other follower; --json
    /// and --html write it.
    #[arg(long, value_name = "FOLLOWER_ID", conflicts_with_all = ["lineage", "leader_fill", "latency"])]
    follower: Option<String>,
    /// Performance fee: the fraction of new profit above the high-water mark.
    #[arg(long, default_value = "0.10")]
    fee_rate: String,
    /// The leader's fraction of each fee; the platform keeps the rest.
    #[arg(long, default_value = "0.80")]
    fee_leader_share: String,
    /// How often fees settle: daily, weekly or monthly.
    #[arg(long, default_value = "monthly")]
    settlement: String,
    /// A (follower, symbol) pair is in sync when |expected − venue| × mark is at
    /// most this, in quote currency.
    #[arg(long, default_value = "0")]
    sync_tolerance: String,
    /// The report's time: its 7/30/90-day windows end here and fees settle up
    /// to it. `YYYY-MM-DD` (00:00 UTC), `YYYY-MM-DDTHH:MM:SSZ` or nanoseconds
    /// since 1970. Default: the latest time in the data.
    #[arg(long, value_name = "TIME")]
    as_of: Option<String>,
}

pub fn progress_printer(every: f64) -> Option<sidecar::Progress> {
    if every <= 0.0 {
        return None;
    }
    let every = Duration::from_secs_f64(every);
    let mut last = Instant::now();
    Some(Box::new(move |s: &SidecarStats| {
        if last.elapsed() >= every {
            last = Instant::now();
            eprintln!(
                "sidecar: {} records, {} rows, at record {} ({:.0} rows/s)",
                s.records,
                s.rows,
                s.next_seq,
                s.rows_per_sec()
            );
        }
    }))
}

/// Says so when `--db` holds a PostgreSQL password, which other users can read
/// in the process list.
fn warn_password_on_command_line(db: &str) {
    if sidecar::is_postgres(db) && PgTarget::parse(db).is_ok_and(|t| t.has_password()) {
        eprintln!(
            "fillcast: note: the --db password is visible to every user in the process \
             list; put it in PGPASSWORD or ~/.pgpass (mode 0600) instead"
        );
    }
}

pub fn sidecar(a: &SidecarArgs) -> Result<()> {
    warn_password_on_command_line(&a.db);
    let stop = Arc::new(AtomicBool::new(false));
    if a.follow {
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .with_context(|| format!("cannot handle signal {sig}"))?;
        }
    }
    let defaults = SidecarOptions::default();
    let stats = sidecar::run(
        &a.journal,
        &a.db,
        SidecarOptions {
            follow: a.follow,
            batch_rows: a.batch_rows.unwrap_or(defaults.batch_rows),
            progress: progress_printer(a.progress),
            stop: Some(stop),
            ..defaults
        },
    )?;
    print_stats(&stats);
    Ok(())
}

pub fn print_stats(s: &SidecarStats) {
    if let Continuity::Adopted { through } = s.continuity {
        println!(
            "sidecar: this database predates the continuity check; it now records the \
             journal's records 1..={through} as they are. If the journal may have been \
             repaired or replaced since the database was written, rebuild the database."
        );
    }
    println!(
        "sidecar: {} records ({}..{}), {} rows in {} transactions, {:.1} s ({:.0} rows/s)",
        s.records,
        s.start_seq,
        s.next_seq,
        s.rows,
        s.batches,
        s.elapsed.as_secs_f64(),
        s.rows_per_sec()
    );
}

fn decimal(flag: &str, v: &str) -> Result<Decimal> {
    Decimal::from_str(v.trim())
        .with_context(|| format!("--{flag} {v:?}: expected a decimal number such as 0.1"))
}

fn options(a: &ReportArgs) -> Result<ReportOptions> {
    let settlement = Settlement::parse(&a.settlement).with_context(|| {
        format!(
            "--settlement {:?}: expected daily, weekly or monthly",
            a.settlement
        )
    })?;
    let fee = FeePolicy {
        rate: decimal("fee-rate", &a.fee_rate)?,
        leader_fraction: decimal("fee-leader-share", &a.fee_leader_share)?,
        settlement,
    };
    fee.validate()?;
    let as_of_ns = a
        .as_of
        .as_deref()
        .map(|t| fillcast_report::time::parse_as_of(t).map_err(|e| anyhow::anyhow!("--as-of {e}")))
        .transpose()?;
    Ok(ReportOptions {
        fee,
        sync_tolerance_notional: decimal("sync-tolerance", &a.sync_tolerance)?,
        as_of_ns,
        ..ReportOptions::default()
    })
}

fn leaderboard_filter(a: &ReportArgs) -> Result<LeaderboardFilter> {
    let defaults = LeaderboardFilter::default();
    Ok(LeaderboardFilter {
        period: a.period.clone().unwrap_or(defaults.period),
        aum_min: a
            .min_aum
            .as_deref()
            .map(|v| decimal("min-aum", v))
            .transpose()?,
        followers_min: a.min_followers,
        drawdown_max: a
            .max_drawdown
            .as_deref()
            .map(|v| decimal("max-drawdown", v))
            .transpose()?,
    })
}

/// A connection to the database a report reads.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<pg::Client>),
}

impl Db {
    pub fn open(url: &str) -> Result<Db> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = Path::new(path.strip_prefix("//").unwrap_or(path));
            if !path.is_file() {
                bail!(
                    "no SQLite database at {} (run `fillcast sidecar --db {url}` first)",
                    path.display()
                );
            }
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .with_context(|| format!("opening {}", path.display()))?;
            return Ok(Db::Sqlite(conn));
        }
        if sidecar::is_postgres(url) {
            let client = PgTarget::parse(url)?.connect()?;
            return Ok(Db::Postgres(Box::new(client)));
        }
        Err(sidecar::SidecarError::Address(sidecar::mask_db(url)).into())
    }

    pub fn report(&mut self, opts: &ReportOptions) -> Result<Report> {
        Ok(match self {
            Db::Sqlite(c) => report::build_with(c, opts)?,
            Db::Postgres(c) => report::build_postgres(c, opts)?,
        })
    }
}

pub fn report(a: &ReportArgs) -> Result<()> {
    warn_password_on_command_line(&a.db);
    let opts = options(a)?;
    let mut db = Db::open(&a.db)?;
    if a.lineage.is_some() || a.leader_fill.is_some() {
        let found = match (&mut db, &a.lineage, a.leader_fill) {
            (Db::Sqlite(c), Some(id), _) => report::lineage(c, id)?,
            (Db::Postgres(c), Some(id), _) => report::lineage_postgres(c, id)?,
            (Db::Sqlite(c), None, Some(seq)) => report::leader_fill_lineage(c, seq)?,
            (Db::Postgres(c), None, Some(seq)) => report::leader_fill_lineage_postgres(c, seq)?,
            (_, None, None) => unreachable!(),
        };
        match found {
            Some(l) => print!("{}", l.to_text()),
            None => bail!(
                "{} is not in {}",
                a.lineage.clone().unwrap_or_else(|| format!(
                    "leader fill {}",
                    a.leader_fill.unwrap_or_default()
                )),
                sidecar::mask_db(&a.db)
            ),
        }
        return Ok(());
    }
    if let Some(id) = &a.follower {
        let v = match &mut db {
            Db::Sqlite(c) => report::build_follower(c, &opts, id)?,
            Db::Postgres(c) => report::build_follower_postgres(c, &opts, id)?,
        };
        if let Some(path) = &a.json {
            write_private(path, serde_json::to_string_pretty(&v.to_json())?.as_bytes())?;
        }
        if let Some(path) = &a.html {
            write_private(path, v.to_html().as_bytes())?;
        }
        print!("{}", v.to_text());
        return Ok(());
    }
    let mut r = db.report(&opts)?;
    if a.leaderboard {
        let lb = r.leaderboard(&leaderboard_filter(a)?)?;
        if let Some(path) = &a.json {
            write_private(
                path,
                serde_json::to_string_pretty(&lb.to_json())?.as_bytes(),
            )?;
        }
        if let Some(path) = &a.html {
            write_private(path, r.to_html().as_bytes())?;
        }
        print!("{}", lb.to_text());
        return Ok(());
    }
    if let Some(path) = &a.latency {
        r = r.with_latency(read_latency(path)?);
    }
    write_outputs(&r, a.json.as_deref(), a.html.as_deref())?;
    print!("{}", r.summary_text());
    Ok(())
}

pub fn write_outputs(r: &Report, json: Option<&Path>, html: Option<&Path>) -> Result<()> {
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&r.to_json())?;
        write_private(path, text.as_bytes())?;
    }
    if let Some(path) = html {
        write_private(path, r.to_html().as_bytes())?;
    }
    Ok(())
}

/// Writes a report file readable by its owner only (0600): reports name every
/// follower with their P&L. Written beside as a new file and renamed over `path`,
/// so a report that was there is replaced whole, mode included, or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".fillcast-report")
        .permissions(private())
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "writing {}: creating a file in {}",
                path.display(),
                dir.display()
            )
        })?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn private() -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(0o600)
}

/// The histogram as (bucket upper bound in ns, count) pairs, at about 5%
/// resolution, which is what a chart and its percentiles need.
pub fn latency_buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_log(h.min().max(1), 1.05)
        .filter(|v| v.count_since_last_iteration() > 0)
        .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
        .collect()
}

/// Written by `fillcast run --latency-out` and the demo; read by `report --latency`.
pub fn write_latency(path: &Path, h: &Histogram<u64>) -> Result<()> {
    let buckets: Vec<[u64; 2]> = latency_buckets(h)
        .into_iter()
        .map(|(u, n)| [u, n])
        .collect();
    let doc = serde_json::json!({
        "what": "fan-out latency per leader fill: start of its handling to its last order in the egress ring",
        "unit": "ns",
        "buckets": buckets,
    });
    std::fs::write(path, serde_json::to_string(&doc)?)
        .with_context(|| format!("writing {}", path.display()))
}

pub fn read_latency(path: &Path) -> Result<Vec<(u64, u64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let buckets = doc
        .get("buckets")
        .and_then(|b| b.as_array())
        .with_context(|| {
            format!(
                "{}: expected an object with \"buckets\": [[upper_ns, count], ...]",
                path.display()
            )
        })?;
    buckets
        .iter()
        .enumerate()
        .map(|(i, b)| match b.as_array().map(|p| p.as_slice()) {
            Some([u, n]) => match (u.as_u64(), n.as_u64()) {
                (Some(u), Some(n)) => Ok((u, n)),
                _ => bail!(
                    "{}: bucket {i}: expected two non-negative integers, got {b}",
                    path.display()
                ),
            },
            _ => bail!(
                "{}: bucket {i}: expected [upper_ns, count], got {b}",
                path.display()
            ),
        })
        .collect()
}
