//! `fillcast`: the command line. Wires config, sources, the engine and gateways
//! together; all logic lives in the library crates.

mod binance_venue_cmd;
mod control;
mod demo;
mod journal_cmd;
mod keys_cmd;
mod log;
mod metrics;
mod sim_venue;
mod sql_cmd;
mod summary;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use fillcast_engine::config::{self, Config};
use fillcast_engine::core::Core;
use fillcast_engine::model::Universe;
use fillcast_engine::pipeline;
use fillcast_engine::port::{Gateway, JournalSink, Paced, Source};
use fillcast_gateways::config::{GatewayKinds, SourceSettings, VenueKind, VenueSettings};
use fillcast_gateways::file::FileSource;
use fillcast_gateways::sim::SimVenue;
use fillcast_gateways::simclient::SimClient;
use fillcast_gateways::synthetic::SyntheticLeaders;
use fillcast_journal::restart;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "fillcast",
    version,
    about = "Low-latency copy-trading engine",
    long_about = "fillcast watches leader traders' fills and, within microseconds, sends correctly \
                  sized, risk-checked orders for every follower who copies them.\n\n\
                  Start with `fillcast demo`; run your own setup with `fillcast run --config FILE`."
)]
struct Cli {
    /// How the engine logs on stderr: `text` (`fillcast: message key=value`) or
    /// `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = log::Format::Text)]
    log_format: log::Format,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Summary of a journal (segments, records by kind, first and last sequence), or
    /// its records as JSON lines with `--json`. Reads what it can of a damaged
    /// journal, names every gap and undecodable record, and then exits non-zero.
    Inspect {
        /// The journal directory.
        dir: PathBuf,
        /// Print every record as one JSON object per line.
        #[arg(long)]
        json: bool,
        /// With --json: start at this sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// With --json: print at most this many records.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Cut a damaged journal at its first bad record so that `run` can open it:
    /// says which records it drops, copies every file it changes into
    /// `DIR/repair-<time>/` first, and changes nothing without `--yes`.
    Repair {
        /// The journal directory.
        dir: PathBuf,
        /// Do it (without: only say what would be dropped).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole engine on embedded defaults: simulated venue, synthetic leaders.
    ///
    /// 3 leaders and 10,000 followers with mixed copy modes and risk limits; the
    /// leaders open, add, partially close, flip and close positions; the simulated venue
    /// fills, partially fills and rejects follower orders. Prints what happened and the
    /// fan-out latency per leader fill.
    Demo(demo::DemoArgs),
    /// Run the engine from a config file until its sources are exhausted.
    ///
    /// Sources and venues come from the config (`file` and `synthetic` sources, the
    /// `sim` venue). Bad input lines are reported with file and line and skipped.
    Run {
        /// The config file (see config/example.toml and docs/CONFIG.md).
        #[arg(long, short)]
        config: PathBuf,
        /// Print a progress line every this many seconds (0 = never).
        #[arg(long, default_value_t = 1.0)]
        progress: f64,
        /// Journal directory (overrides `[journal] dir`). On an existing journal the
        /// engine replays it, asks the venues about unanswered orders, then goes on.
        #[arg(long)]
        journal: Option<PathBuf>,
        /// At the end, write the fan-out latency histogram to this file (JSON), for
        /// `fillcast report --latency`.
        #[arg(long)]
        latency_out: Option<PathBuf>,
        /// Keep running once the sources are done, until `fillcast ctl shutdown`,
        /// SIGTERM or SIGINT (a live engine). Without it the run ends when its
        /// sources are done and everything they caused is answered.
        #[arg(long)]
        until_stopped: bool,
    },
    /// Command a running engine through its control socket.
    ///
    /// The socket is `[control] socket` of the config, else `control.sock` in the
    /// journal directory; only the engine's own user and root may use it.
    ///
    /// Commands:
    ///   status                                  what the engine is doing (--json for all of it)
    ///   pause|resume|stop subscription ID       stop closes the copied positions, for good
    ///   pause|resume|stop follower ID           every subscription of the follower
    ///   pause|resume|stop leader ID             pause: copy no new fills of it; stop: stop every subscription to it
    ///   flatten subscription|follower ID        close the copied positions now and pause
    ///   resync subscription ID                  bring it back to its targets now
    ///   kill-switch on|off                      no new exposure anywhere (closes still go out)
    ///   reload                                  read the config files again and apply them (as SIGHUP)
    ///   shutdown                                take no more input, answer what is in flight, stop
    ///
    /// Pausing blocks new exposure only: reductions still follow the leader.
    #[command(verbatim_doc_comment)]
    Ctl {
        /// The config the engine runs with (finds its socket).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The control socket (instead of --config).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Print the engine's answer as one JSON object.
        #[arg(long)]
        json: bool,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Look into a journal.
    #[command(subcommand)]
    Journal(JournalCmd),
    /// Run the simulated venue as its own process, for `sim_remote` venues.
    ///
    /// Its books outlive engine restarts, so a restarted engine can ask it about
    /// orders it sent before a crash. Stops on SIGTERM/SIGINT or when the stop file
    /// appears, then prints `orders_received=N duplicate_client_ids=M`. Exit code 2
    /// when it could not start (bad config, address in use), 1 when serving failed.
    SimVenue(sim_venue::SimVenueArgs),
    /// Serve a local stand-in for Binance USD-M futures, for demos and tests:
    /// never a real exchange.
    ///
    /// It speaks Binance USD-M's documented protocol on one loopback port: REST
    /// (`exchangeInfo`, `listenKey`, `userTrades`, `apiRestrictions`), the user
    /// data stream and the WebSocket API (`order.place`, `order.status`,
    /// `session.logon`), every signature checked, the documented rate limits
    /// and error codes. Point a `binance` source and venue at the URLs it prints
    /// (or writes to --urls-file). No real money, margin, fees, funding or order
    /// book: an order fills at its symbol's one price when its limit allows.
    ///
    /// The leader accounts trade on a seeded schedule (opens, adds, partial
    /// closes, flips and closes in whole steps, some orders in several fills),
    /// from when their user data streams are open; the last trades close what
    /// is open (unless --leave-open). It stops --grace seconds after the last trade (or with
    /// --until-stopped, or on SIGINT/SIGTERM) and prints every account's position
    /// per symbol; --check-db compares them, and the client order ids it
    /// received, with the engine's database. Keys are never printed: demo keys
    /// (from --seed) go only to --keys-out. Exit code 2 when it could not start,
    /// 1 when serving failed or --check-db found a difference.
    /// `scripts/demo-binance.sh` runs the whole demo.
    BinanceTestVenue(binance_venue_cmd::BinanceTestVenueArgs),
    /// Replay a journal into SQL (SQLite by default, or PostgreSQL) for
    /// reconciliation, reports and audits.
    ///
    /// Writes the tables of DESIGN.md (leader_fills, copy_instructions,
    /// follower_orders, follower_fills, positions, audit_log, ...) and commits its
    /// read position with each batch: stop it at any time, run it again, and it goes
    /// on where it stopped, without a lost or doubled row.
    Sidecar(sql_cmd::SidecarArgs),
    /// Reports over the sidecar's database: leader metrics, follower P&L,
    /// performance fees, reconciliation; a terminal summary, JSON and HTML.
    ///
    /// The HTML page is one self-contained file (charts inline, no network) that also
    /// defines every metric. `--lineage ID` prints why one follower order exists.
    Report(sql_cmd::ReportArgs),
    /// Seeded whole-system simulation: the real core, a real journal and the
    /// simulated venue, with faults, crashes and restarts; checks the engine's
    /// promises at every step.
    ///
    /// Each seed chooses a world (leaders, followers in all four modes with risk
    /// limits, symbols, venues, capacity), the leaders' activity (bursts of partial
    /// fills, adds, partial closes, flips, closes; duplicated and reordered), a
    /// person's commands (pause, flatten, a follower paused, the kill switch) and a
    /// live reload of edited limits, allocations and statuses, the
    /// venue's misbehaviour (latency, partial fills, rejects of every kind, expiries,
    /// duplicated and reordered reports, outages) and crashes (process deaths and power
    /// losses) at journal appends with restarts through the same path as `fillcast run`. Checked: no client order id
    /// reaches the venue twice; no fill is counted twice; engine positions equal the
    /// venue's books; every replay reproduces the journal; once the leaders are flat
    /// and the venue is quiet, every follower is flat or has a recorded reason. The
    /// same seed gives the same run; a failure prints its seed, the step, what
    /// differed, the last events and the command that replays it.
    /// `scripts/simulate.sh` runs many seeds in parallel.
    Simulate(fillcast::simulate::cli::Args),
    /// Venue API keys, encrypted at rest: `init-master`, `add`, `list`, `remove`.
    ///
    /// Config refers to a key by its name; the key itself never appears in config,
    /// the journal, SQL, logs or any output. Secrets are read from standard input.
    Keys(keys_cmd::KeysArgs),
    /// Validate a config and report every error with file, line and what was expected.
    /// When its journal (`[journal] dir`, or `--journal`) already holds a model, also
    /// check that the file can follow it as `run` and `ctl reload` would apply it, and
    /// list what it changes; reads the journal only, so it may run beside the engine.
    CheckConfig {
        /// The config file.
        file: PathBuf,
        /// Journal directory to check against (overrides `[journal] dir`).
        #[arg(long)]
        journal: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init(cli.log_format);
    if let Cmd::SimVenue(args) = &cli.command {
        return sim_venue::run(args);
    }
    if let Cmd::BinanceTestVenue(args) = &cli.command {
        return binance_venue_cmd::run(args);
    }
    let result = match cli.command {
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Run {
            config,
            progress,
            journal,
            latency_out,
            until_stopped,
        } => run(
            &config,
            progress,
            journal,
            latency_out.as_deref(),
            until_stopped,
        ),
        Cmd::Ctl {
            config,
            socket,
            json,
            command,
        } => ctl(config.as_deref(), socket, json, &command),
        Cmd::Journal(JournalCmd::Inspect {
            dir,
            json,
            from,
            limit,
        }) => journal_cmd::inspect(&dir, json, from, limit),
        Cmd::Journal(JournalCmd::Repair { dir, yes }) => journal_cmd::repair(&dir, yes),
        Cmd::Sidecar(args) => sql_cmd::sidecar(&args),
        Cmd::Report(args) => sql_cmd::report(&args),
        Cmd::CheckConfig { file, journal } => check_config(&file, journal.as_deref()),
        Cmd::Simulate(args) => fillcast::simulate::cli::run(&args),
        Cmd::Keys(args) => keys_cmd::run(&args),
        Cmd::SimVenue(_) | Cmd::BinanceTestVenue(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fillcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load, validate and resolve a config file, or say everything that is wrong with it:
/// `check-config` and `run` both load by this, so what one accepts the other builds.
fn load(path: &Path) -> Result<(Config, Arc<Universe>)> {
    resolve(path, checked(path)?)
}

/// `load`, laid out after the model in force (`Config::arranged_after`): a reload
/// keeps every journaled index naming what it named.
fn load_after(path: &Path, in_force: &Config) -> Result<(Config, Arc<Universe>)> {
    let cfg = checked(path)?
        .arranged_after(in_force)
        .with_context(|| format!("{}", path.display()))?;
    resolve(path, cfg)
}

/// The config file, checked as `check-config` does.
fn checked(path: &Path) -> Result<Config> {
    config::load_with(path, &GatewayKinds)
        .map_err(|errors| anyhow::anyhow!("{} has errors:\n{errors}", path.display()))
}

fn resolve(path: &Path, cfg: Config) -> Result<(Config, Arc<Universe>)> {
    let universe = Universe::from_config(&cfg).with_context(|| format!("{}", path.display()))?;
    Ok((cfg, Arc::new(universe)))
}

fn ctl(config: Option<&Path>, socket: Option<PathBuf>, json: bool, words: &[String]) -> Result<()> {
    let socket = match (socket, config) {
        (Some(s), _) => s,
        // Found without checking the rest of the file: `ctl reload` is how a
        // person learns what is wrong with a file being edited.
        (None, Some(c)) => control::socket_of_file(c)?,
        (None, None) => bail!("say where the engine is: --config FILE or --socket PATH"),
    };
    control::client(&socket, words, json)
}

fn check_config(path: &Path, journal: Option<&Path>) -> Result<()> {
    let (cfg, u) = load(path)?;
    let dir = journal
        .map(Path::to_path_buf)
        .or_else(|| cfg.journal.as_ref().map(|j| j.dir.clone()));
    // A journal that is there but cannot take this file fails the check: `run`
    // would refuse to start on it.
    let verdict = match &dir {
        Some(d) if d.exists() => Some(
            fillcast_journal::check::against_journal(d, &cfg)
                .with_context(|| format!("{} cannot run on its journal", path.display()))?,
        ),
        _ => None,
    };
    println!(
        "{}: ok — {} symbols, {} venues, {} sources, {} leaders, {} followers, {} subscriptions (revision {:016x})",
        path.display(),
        u.symbols.len(),
        u.venues.len(),
        cfg.sources.len(),
        u.leaders.len(),
        u.followers.len(),
        u.subs.len(),
        u.revision
    );
    let Some(dir) = dir else {
        return Ok(());
    };
    match verdict {
        None => println!(
            "journal {}: none yet; `run` starts it with this file",
            dir.display()
        ),
        Some(None) => println!(
            "journal {}: holds no model yet; `run` starts it with this file",
            dir.display()
        ),
        Some(Some(v)) if v.diff.is_empty() => println!(
            "journal {}: revision {:016x} in force; this file is that revision (nothing to apply)",
            dir.display(),
            v.journaled
        ),
        Some(Some(v)) => {
            println!(
                "journal {}: revision {:016x} in force; `run` or `ctl reload` applies this file as revision {:016x}, changing {}:",
                dir.display(),
                v.journaled,
                v.now,
                v.diff.len()
            );
            for line in &v.diff {
                println!("  {line}");
            }
        }
    }
    Ok(())
}

/// The settings of every venue, in venue order.
pub fn venue_settings(u: &Universe) -> Result<Vec<VenueSettings>> {
    u.venues
        .iter()
        .map(|v| VenueSettings::of(&v.config).map_err(anyhow::Error::from))
        .collect()
}

/// One gateway per configured venue, in venue order (`venues`: their settings).
/// `unclean`: the journal's last run did not end cleanly (a FIX session then
/// moves its numbers ahead and asks for everything again).
pub fn gateways_for(
    u: &Arc<Universe>,
    venues: &[VenueSettings],
    unclean: bool,
) -> Result<Vec<Box<dyn Gateway>>> {
    venues
        .iter()
        .map(|v| match v.kind {
            VenueKind::Sim => Ok(
                Box::new(SimVenue::new(v.name.clone(), &v.sim, u.symbols.clone()))
                    as Box<dyn Gateway>,
            ),
            VenueKind::SimRemote => {
                let addr = v
                    .address
                    .as_deref()
                    .with_context(|| format!("venue `{}` has no address", v.name))?;
                SimClient::connect(v.name.clone(), addr, Duration::from_secs(10))
                    .map(|g| {
                        Box::new(g.with_heartbeat(
                            Duration::from_millis(v.heartbeat_ms),
                            Duration::from_millis(v.down_after_ms),
                        )) as Box<dyn Gateway>
                    })
                    .with_context(|| format!("venue `{}`: connecting to {addr}", v.name))
            }
            VenueKind::Fix => fix_gateway(u, v, unclean),
            VenueKind::Binance => binance_gateway(u, v),
        })
        .collect()
}

/// A `fix` venue's order-entry gateway; its session connects (and reconnects)
/// on its own.
fn fix_gateway(u: &Arc<Universe>, v: &VenueSettings, unclean: bool) -> Result<Box<dyn Gateway>> {
    use fillcast_gateways::config::FixReduceOnly;
    use fillcast_gateways::fix::app::ReduceOnly;
    use fillcast_gateways::fix::conn::Peer;
    use fillcast_gateways::fix::orderentry::{OrderEntryConfig, OrderEntryGateway};
    use fillcast_gateways::fix::session::SessionConfig;
    // `check-config` refused a fix venue without these.
    let (address, fix) = v.address.clone().zip(v.fix.as_ref()).with_context(|| {
        format!(
            "venue `{}`: a fix venue needs address and [venues.fix]",
            v.name
        )
    })?;
    let cfg = OrderEntryConfig {
        name: v.name.clone(),
        peer: Peer {
            address,
            sender_comp_id: fix.sender_comp_id.clone(),
            target_comp_id: fix.target_comp_id.clone(),
            session: SessionConfig {
                heartbeat_s: fix.heartbeat_s,
                ..SessionConfig::default()
            },
        },
        accounts: fix.accounts.clone().into_iter().collect(),
        reduce_only: match fix.reduce_only {
            FixReduceOnly::ExecInst => ReduceOnly::ExecInstDoNotIncrease,
            FixReduceOnly::NotSent => ReduceOnly::NotSent,
        },
        store: fix.store_in(&v.dir),
        unclean,
        rate_per_sec: fix.rate_per_sec,
        reject_codes: fix
            .reject_codes()
            .map_err(|why| anyhow::anyhow!("venue `{}`: reject_codes: {why}", v.name))?,
        recover_timeout: Duration::from_millis(fix.recover_timeout_ms),
    };
    let mut gw = OrderEntryGateway::open(cfg, Arc::clone(u))
        .with_context(|| format!("venue `{}`", v.name))?;
    // Logged on before the run starts when the venue is there; else the run
    // starts with it down (said at once) and it reconnects by itself.
    gw.wait_up(Duration::from_secs(5));
    Ok(Box::new(gw))
}

/// The config's sources; `unclean`: the journal's last run did not end cleanly.
fn sources_for(cfg: &Config, u: &Arc<Universe>, unclean: bool) -> Result<Vec<Box<dyn Source>>> {
    use fillcast_gateways::fix::conn::Peer;
    use fillcast_gateways::fix::dropcopy::{DropCopyConfig, DropCopySource};
    use fillcast_gateways::fix::session::SessionConfig;
    cfg.sources
        .iter()
        .map(|s| -> Result<Box<dyn Source>> {
            Ok(match SourceSettings::of(s)? {
                SourceSettings::File { path, rate_per_sec } => {
                    let f = FileSource::open(&path, Arc::clone(u))
                        .with_context(|| format!("source file {}", path.display()))?;
                    match rate_per_sec {
                        Some(r) => Box::new(Paced::new(f, r)),
                        None => Box::new(f),
                    }
                }
                SourceSettings::Synthetic {
                    fills,
                    seed,
                    rate_per_sec,
                } => {
                    let mut g = SyntheticLeaders::new(
                        Arc::clone(u),
                        seed.unwrap_or(1),
                        fills.unwrap_or(1000),
                    );
                    if let Some(r) = rate_per_sec {
                        g = g.with_rate(r);
                    }
                    Box::new(g)
                }
                SourceSettings::Fix {
                    address,
                    sender_comp_id,
                    target_comp_id,
                    heartbeat_s,
                    reset_on_logon,
                    accounts,
                    store,
                } => {
                    let name = format!("fix {sender_comp_id}->{target_comp_id}");
                    // After an unclean stop our outgoing numbers move ahead
                    // (fix::store::resume): a gap the counterparty fills, never a
                    // number it takes for a repeat.
                    // `SourceSettings::of` resolved it (beside the config file).
                    let store = store.with_context(|| format!("source `{name}`: no store"))?;
                    let dc = DropCopyConfig {
                        name: name.clone(),
                        peer: Peer {
                            address,
                            sender_comp_id,
                            target_comp_id,
                            session: SessionConfig {
                                heartbeat_s,
                                reset_on_logon,
                                ..SessionConfig::default()
                            },
                        },
                        accounts: accounts.into_iter().collect(),
                        store,
                        unclean,
                    };
                    Box::new(
                        DropCopySource::open(dc, Arc::clone(u))
                            .with_context(|| format!("source `{name}`"))?,
                    )
                }
                SourceSettings::Binance {
                    leaders,
                    vault,
                    rest_url,
                    stream_url,
                    api_url,
                    market_url,
                    mark_prices,
                    check_permissions,
                    recv_window_ms,
                    keep_alive_min,
                    reconnect_before_h,
                    equity_asset,
                } => {
                    use fillcast_gateways::binance::source::{BinanceSource, BinanceSourceConfig};
                    let accounts = binance_leaders(&leaders, &vault, &api_url, check_permissions)
                        .context("source `binance`")?;
                    let mut c = BinanceSourceConfig::new("binance", &rest_url, &stream_url);
                    if let Some(m) = market_url {
                        c.market_url = m;
                    }
                    c.mark_prices = mark_prices;
                    c.recv_window_ms = recv_window_ms;
                    c.keep_alive = Duration::from_secs(keep_alive_min * 60);
                    c.reconnect_before = Duration::from_secs(reconnect_before_h * 3600);
                    c.equity_asset = equity_asset;
                    Box::new(BinanceSource::new(c, accounts, u).context("source `binance`")?)
                }
            })
        })
        .collect()
}

/// Accounts from the key vault: for each (model id, key name), the API key and
/// its signer, the key asked at the venue (`apiRestrictions`) first. A key that
/// can withdraw, or cannot trade futures, stops the start, naming whose key it
/// is (`who`: "leader", "follower") and the key's name, never showing it.
fn vault_accounts(
    who: &str,
    names: &std::collections::BTreeMap<String, String>,
    vault: &Path,
    api_url: &str,
    check_permissions: bool,
) -> Result<
    Vec<(
        String,
        secrecy::SecretString,
        fillcast_gateways::binance::sign::Signer,
    )>,
> {
    use fillcast_gateways::binance::rest::RestClient;
    use fillcast_gateways::binance::sign::Signer;
    use fillcast_gateways::vault::{self, KeyKind, MasterKey, Vault};
    use secrecy::{ExposeSecret, SecretString};
    let master = MasterKey::from_env()?;
    let v = Vault::open(vault, &master)?;
    let rest = RestClient::new(api_url, Duration::from_secs(10), 5000);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    names
        .iter()
        .map(|(id, key)| {
            let e = v.get(key).with_context(|| {
                format!(
                    "{who} `{id}`: no key named `{key}` in {} (add it with `fillcast keys add {key}`)",
                    vault.display()
                )
            })?;
            let secret = e.secret.expose_secret().as_bytes();
            let signer = match e.kind {
                KeyKind::Hmac => Signer::hmac(secret),
                KeyKind::Ed25519 => Signer::ed25519_pem(secret),
            }
            .with_context(|| format!("{who} `{id}`: key `{key}`"))?;
            if check_permissions {
                let p = rest
                    .api_restrictions(e.api_key.expose_secret(), &signer, now_ms)
                    .with_context(|| {
                        format!("{who} `{id}`: asking {api_url} what key `{key}` may do")
                    })?;
                vault::admit(&p)
                    .map_err(|why| anyhow::anyhow!("{who} `{id}`: key `{key}` refused: {why}"))?;
            } else {
                tracing::warn!(
                    "{who} `{id}`: key `{key}` NOT checked at {api_url} (check_permissions = false): a key that can withdraw would not be refused"
                );
            }
            Ok((
                id.clone(),
                SecretString::from(e.api_key.expose_secret().to_string()),
                signer,
            ))
        })
        .collect()
}

/// Each leader's Binance account from the key vault (`vault_accounts`).
fn binance_leaders(
    leaders: &std::collections::BTreeMap<String, String>,
    vault: &Path,
    api_url: &str,
    check_permissions: bool,
) -> Result<Vec<fillcast_gateways::binance::source::LeaderAccount>> {
    use fillcast_gateways::binance::source::LeaderAccount;
    Ok(
        vault_accounts("leader", leaders, vault, api_url, check_permissions)?
            .into_iter()
            .map(|(leader, api_key, signer)| LeaderAccount {
                leader,
                api_key,
                signer,
            })
            .collect(),
    )
}

/// Each `binance` venue's exchange filters (`exchangeInfo`) against the
/// config's symbols routed to it: a lot, tick or minimum the venue does not
/// share would have its orders refused one by one, so the start stops instead,
/// naming the symbol and both values.
fn check_exchange_filters(cfg: &Config, venues: &[VenueSettings]) -> Result<()> {
    use fillcast_gateways::binance::rest::{check_filters, RestClient};
    for v in venues.iter().filter(|v| v.kind == VenueKind::Binance) {
        let Some(b) = &v.binance else { continue };
        let filters = RestClient::new(&b.rest_url, Duration::from_secs(10), b.recv_window_ms)
            .exchange_info()
            .with_context(|| format!("venue `{}`: reading its exchange filters", v.name))?;
        let symbols = cfg
            .symbols
            .iter()
            .filter(|s| s.venue == v.name && !s.removed);
        let mismatches = check_filters(symbols, &filters);
        if !mismatches.is_empty() {
            bail!(
                "venue `{}`: the config's symbols disagree with the venue's exchange filters:\n  {}",
                v.name,
                mismatches.join("\n  ")
            );
        }
    }
    Ok(())
}

/// A `binance` venue's gateway: each follower's key from the vault, asked at
/// the venue first; its WebSocket API connection comes up on its own.
fn binance_gateway(u: &Arc<Universe>, v: &VenueSettings) -> Result<Box<dyn Gateway>> {
    use fillcast_gateways::binance::gateway::{
        BinanceGateway, BinanceGatewayConfig, FollowerAccount,
    };
    let b = v
        .binance
        .as_ref()
        .with_context(|| format!("venue `{}` has no [venues.binance] table", v.name))?;
    let accounts = vault_accounts(
        "follower",
        &b.accounts,
        &b.vault_in(&v.dir),
        &b.api_url,
        b.check_permissions,
    )
    .with_context(|| format!("venue `{}`", v.name))?
    .into_iter()
    .map(|(follower, api_key, signer)| FollowerAccount {
        follower,
        api_key,
        signer,
    })
    .collect();
    let mut cfg = BinanceGatewayConfig::new(&v.name, &b.ws_api_url, &b.rest_url);
    cfg.recv_window_ms = b.recv_window_ms;
    cfg.limits.order_limits = b.order_limits.iter().map(|l| l.limit()).collect();
    cfg.limits.ip_weight = b.request_weight.limit();
    cfg.pacing_margin = Duration::from_millis(b.pacing_margin_ms);
    cfg.session_logon = b.session_logon;
    let gw = BinanceGateway::new(cfg, accounts, Arc::clone(u))
        .with_context(|| format!("venue `{}`", v.name))?;
    // Connected before the run starts when the venue is there; else the run
    // starts with it down (said at once) and it reconnects by itself.
    gw.wait_up(Duration::from_secs(5));
    Ok(Box::new(gw))
}

fn run(
    path: &Path,
    progress_secs: f64,
    journal_dir: Option<PathBuf>,
    latency_out: Option<&Path>,
    until_stopped: bool,
) -> Result<()> {
    let (mut cfg, mut u) = load(path)?;
    if cfg.sources.is_empty() {
        bail!(
            "{}: no [[sources]]: nothing to copy (add a `file` or `synthetic` source)",
            path.display()
        );
    }
    if let Some(dir) = journal_dir {
        let mut j = cfg.journal.clone().unwrap_or(config::JournalConfig {
            dir: dir.clone(),
            segment_mib: config::defaults::segment_mib(),
            durability: config::DurabilityConfig::default(),
            flush_every_ms: config::defaults::flush_every_ms(),
        });
        j.dir = dir;
        cfg.journal = Some(j);
    }
    // The control socket and the metrics address first: one that cannot be had
    // stops the start before the journal or a venue is touched.
    let socket = control::socket_path(&cfg);
    if let Some(j) = &cfg.journal {
        // The default socket lives in it; the journal would make it anyway.
        std::fs::create_dir_all(&j.dir)
            .with_context(|| format!("journal {}: creating the directory", j.dir.display()))?;
    }
    let bound = socket.as_deref().map(control::Bound::bind).transpose()?;
    let http = match &cfg.metrics {
        Some(m) => Some(
            metrics::Endpoint::bind(&m.address)
                .with_context(|| format!("metrics endpoint {}", m.address))?,
        ),
        None => None,
    };
    // Whether the last run ended cleanly, read before this run opens the journal
    // (and marks it in use): a FIX session's outgoing numbers move ahead after
    // an unclean stop.
    let unclean = cfg.journal.as_ref().is_some_and(|j| {
        j.dir
            .join(fillcast_journal::restart::ASK_FIRST_MARKER)
            .exists()
    });
    let venues = venue_settings(&u)?;
    check_exchange_filters(&cfg, &venues)?;
    let mut gateways = gateways_for(&u, &venues, unclean)?;
    let mut sources = sources_for(&cfg, &u, unclean)?;
    let (core, journal, restart) = match cfg.journal {
        Some(_) => {
            let opened = journal_cmd::open(&cfg, &u, &mut gateways)?;
            // The model in force is the file laid out after the journal's
            // (removed items keep their places, so indices may differ from the
            // file's): the sources resolve names against it. Built once before
            // the journal was touched, so a source that cannot open stopped the
            // start then.
            if opened.universe.revision != u.revision {
                sources = sources_for(&opened.config, &opened.universe, unclean)?;
            }
            journal_cmd::resume_sources(&mut sources, &opened.cursors)?;
            (cfg, u) = (opened.config, opened.universe);
            (
                opened.core,
                Some(Box::new(opened.stage) as Box<dyn JournalSink>),
                pipeline::Restart {
                    recovered: opened.recovered,
                    taken_events: opened.taken_events,
                    ask_first: opened.ask_first,
                },
            )
        }
        None => (
            Core::new(Arc::clone(&u), &cfg.engine),
            None,
            pipeline::Restart::default(),
        ),
    };
    let asked_first = restart.ask_first;
    let (control_tx, control_source) = control::channel();
    let source_names: Vec<String> = sources.iter().map(|s| s.name().to_string()).collect();
    if bound.is_some() {
        sources.push(Box::new(control_source));
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let hangup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&shutdown)).context("signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
        .context("signal handler")?;
    let started = std::time::Instant::now();
    let running = pipeline::start(core, gateways, sources, journal, restart, &cfg.engine);
    let served = |progress: &Arc<pipeline::Progress>| control::Served {
        config_path: path.to_path_buf(),
        cfg: cfg.clone(),
        universe: Arc::clone(&u),
        sources: source_names.clone(),
        progress: Arc::clone(progress),
        tx: control_tx.clone(),
        shutdown: Arc::clone(&shutdown),
        hangup: Arc::clone(&hangup),
        started,
        until_stopped,
    };
    let server = match bound {
        Some(b) => {
            let path = b.path().to_path_buf();
            match control::Server::start(b, served(&running.progress)) {
                Ok(s) => {
                    tracing::info!(
                        socket = %path.display(),
                        "control socket {} (fillcast ctl --socket {} status)",
                        path.display(),
                        path.display()
                    );
                    Some(s)
                }
                Err(e) => {
                    running
                        .progress
                        .draining
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    let _ = running.stop();
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let metrics = http.map(|h| {
        let control_stats = server.as_ref().map(|s| Arc::clone(&s.stats));
        let m = metrics::Endpoint::start(h, served(&running.progress), control_stats);
        tracing::info!(
            address = m.address(),
            "metrics on http://{}/metrics",
            m.address()
        );
        m
    });
    let mut ticker = summary::Ticker::new(progress_secs, &u, &cfg.engine);
    if until_stopped {
        running.wait_for(Duration::from_millis(20), &shutdown, |p| ticker.tick(p));
    }
    let mut stuck = false;
    let mut known_at_venue = 0;
    let (core_out, mut io_out) = running.run_to_completion(Duration::from_millis(20), |p| {
        if shutdown.load(std::sync::atomic::Ordering::Relaxed)
            && !p.draining.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("stopping: no new input is taken; waiting for what is in flight");
        }
        ticker.tick(p);
        stuck = p.stuck_on_venue();
        known_at_venue = p
            .orders_known_at_venue
            .load(std::sync::atomic::Ordering::Relaxed);
    });
    drop(server);
    drop(metrics);
    if let Some(e) = &io_out.journal_error {
        bail!("the journal failed, so no more orders were sent: {e}");
    }
    if known_at_venue > 0 {
        log::raw(&format!(
            "journal: {known_at_venue} orders derived again after the journal cut were already at their venue: not sent again"
        ));
    }
    if let Some(j) = cfg.journal.as_ref() {
        restart::finished(&j.dir)
            .with_context(|| format!("journal {}: clearing the cut marker", j.dir.display()))?;
    }
    let found = summary::print(&core_out, &mut io_out, started.elapsed());
    if let Some(path) = latency_out {
        sql_cmd::write_latency(path, &core_out.fanout_ns)?;
    }
    if core_out.core.halted() {
        bail!(
            "a venue stayed down past engine.venue_down_alarm_ms and engine.on_venue_down = \"stop\": the engine stopped taking input (run again once the venue is back: the journal, if any, resumes where it stopped)"
        );
    }
    if stuck {
        bail!(
            "the sources are done but a venue is still down past its alarm: {} (subscription, symbol) pairs wait for it (listed above); run again once it is back",
            core_out.core.resync_pending().1
        );
    }
    if asked_first && found.mismatched > 0 {
        // Orders of the lost records that this run did not decide again (a flip
        // decided as one leg, a resync at another moment) have ids the engine cannot
        // name, so it could not ask about them: the venue filled them unseen.
        bail!(
            "{} follower positions differ from the venue after records were lost or cut from the journal: orders from those records that this run did not decide again were filled at the venue without the engine's knowledge. The engine does not take over such orders yet: compare the venue's books for these followers and correct them by hand",
            found.mismatched
        );
    }
    if found.unexplained > 0 {
        bail!(
            "{} follower positions are open where their leader is flat, with no recorded reason",
            found.unexplained
        );
    }
    Ok(())
}
