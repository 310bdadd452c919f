//! `fillcast sim-venue`: the simulated venue as its own process, so that its books
//! outlive engine restarts and a restarted engine can ask it about the orders it
//! sent before (`kind = "sim_remote"` venues). The server is
//! `fillcast_gateways::simserver`; this is its process: arguments, signals, the
//! port, stop and positions files.

use clap::Args;
use fillcast_engine::config;
use fillcast_engine::model::{Universe, VenueIdx};
use fillcast_gateways::config::GatewayKinds;
use fillcast_gateways::sim::SimVenue;
use fillcast_gateways::simserver::{ServeStats, SimServer};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the server looks for its stop file.
const STOP_FILE_POLL: Duration = Duration::from_millis(50);

#[derive(Args, Debug)]
pub struct SimVenueArgs {
    /// The engine's config: its symbols and the venue's fill model (`[venues.sim]`).
    #[arg(long)]
    config: PathBuf,
    /// Which venue of the config; may be left out when it has one.
    #[arg(long)]
    venue: Option<String>,
    /// Where to listen (port 0: any free port, see --port-file).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Receives the bound address (`127.0.0.1:43121`), written whole then renamed
    /// into place, so a reader never sees half of it.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// The venue stops when this file appears (checked every 50 ms), as it does on
    /// SIGTERM and SIGINT. It must not exist at start.
    #[arg(long)]
    stop_file: Option<PathBuf>,
    /// Receives the venue's books when it stops: one line per non-zero position,
    /// `follower_index symbol_index lots`, sorted (written, then renamed).
    #[arg(long)]
    positions_file: Option<PathBuf>,
}

/// Why a venue command (this one, `binance-test-venue`) did not run to a clean
/// stop: it never served (bad config, nothing to listen on: exit 2), or
/// serving, writing its output or its check failed (exit 1).
pub(crate) enum Failure {
    Setup(String),
    Run(String),
}

/// The exit of `fillcast <command>` that ended with `ended`, a failure said on
/// stderr.
pub(crate) fn exit_code<T>(command: &str, ended: Result<T, Failure>) -> ExitCode {
    match ended {
        Ok(_) => ExitCode::SUCCESS,
        Err(Failure::Setup(e)) => {
            eprintln!("fillcast {command}: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("fillcast {command}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The venue's whole life. Prints `orders_received=N duplicate_client_ids=M` on
/// stdout when it stops (other counters and the bound address on stderr).
pub fn run(args: &SimVenueArgs) -> ExitCode {
    exit_code("sim-venue", serve(args))
}

fn serve(args: &SimVenueArgs) -> Result<ServeStats, Failure> {
    let setup = Failure::Setup;
    let venue = load_venue(args)?;
    if let Some(path) = &args.stop_file {
        if path.exists() {
            return Err(setup(format!(
                "stop file {} exists already: remove it first",
                path.display()
            )));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| setup(format!("cannot handle signal {signal}: {e}")))?;
    }
    let listener = std::net::TcpListener::bind(&args.listen)
        .map_err(|e| setup(format!("cannot listen on {}: {e}", args.listen)))?;
    let mut server = SimServer::new(listener, venue).map_err(|e| setup(format!("server: {e}")))?;
    let addr = server.local_addr();
    if let Some(path) = &args.port_file {
        write_atomically(path, format!("{addr}\n").as_bytes()).map_err(setup)?;
    }
    eprintln!("fillcast sim-venue: listening on {addr}");

    let watcher = args.stop_file.clone().map(|path| {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Bounded: ends when the server stops, for whatever reason.
            while !stop.load(Ordering::Acquire) {
                if path.exists() {
                    stop.store(true, Ordering::Release);
                    break;
                }
                std::thread::sleep(STOP_FILE_POLL);
            }
        })
    });
    let served = server.run(&stop);
    stop.store(true, Ordering::Release);
    if let Some(watcher) = watcher {
        let _ = watcher.join();
    }

    let stats = server.serve_stats();
    let s = &stats.venue;
    println!(
        "orders_received={} duplicate_client_ids={}",
        s.orders_received, s.duplicate_client_ids
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    eprintln!(
        "fillcast sim-venue: acks={} fills={} canceled={} rejected={} connections={} \
         connections_refused={} protocol_errors={} reports_sent={} reports_dropped={}",
        s.acks,
        s.fills,
        s.canceled,
        s.rejected,
        s.connections,
        s.connections_refused,
        s.protocol_errors,
        s.reports_sent,
        s.reports_dropped
    );
    if let Some(path) = &args.positions_file {
        let mut text = String::with_capacity(stats.positions.len() * 24);
        for p in &stats.positions {
            text.push_str(&format!("{} {} {}\n", p.follower.0, p.symbol.0, p.lots.0));
        }
        write_atomically(path, text.as_bytes()).map_err(Failure::Run)?;
    }
    served.map_err(|e| Failure::Run(format!("event loop: {e}")))?;
    Ok(stats)
}

fn load_venue(args: &SimVenueArgs) -> Result<SimVenue, Failure> {
    let setup = Failure::Setup;
    let cfg = config::load_with(&args.config, &GatewayKinds).map_err(|e| setup(e.to_string()))?;
    let universe = Universe::from_config(&cfg)
        .map_err(|e| setup(format!("{}: {e}", args.config.display())))?;
    let names = || {
        let names: Vec<&str> = universe.venues.iter().map(|v| v.name.as_str()).collect();
        names.join(", ")
    };
    let idx = match &args.venue {
        Some(name) => universe.venue(name).ok_or_else(|| {
            setup(format!(
                "{}: no venue named {name:?} (venues: {})",
                args.config.display(),
                names()
            ))
        })?,
        None if universe.venues.len() == 1 => VenueIdx(0),
        None => {
            return Err(setup(format!(
                "{}: venues {}: say which with --venue",
                args.config.display(),
                names()
            )))
        }
    };
    SimVenue::for_venue(&universe, idx).map_err(|e| setup(e.to_string()))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
