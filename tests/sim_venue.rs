//! `fillcast sim-venue`, the simulated venue as its own process: it serves until
//! SIGTERM or its stop file, writes its port and its books, and refuses bad
//! arguments with exit code 2. The server itself is tested in the gateways crate.

use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType};
use fillcast_engine::ids::decision_id;
use fillcast_engine::model::{FollowerIdx, Side, SubIdx, SymbolIdx};
use fillcast_engine::port::Gateway;
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::simclient::SimClient;
use fillcast_gateways::simwire::VenuePosition;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const BTC: SymbolIdx = SymbolIdx(0);
const BTC_PRICE: Ticks = Ticks(650_000);
const WAIT: Duration = Duration::from_secs(5);

fn now() -> Nanos {
    fillcast_engine::clock::now()
}

/// Both sides, several followers, sizes from 2 lots up; `first` offsets the ids.
fn orders(first: u64, count: u64) -> Vec<FollowerOrder> {
    (first..first + count)
        .map(|n| {
            let side = if n % 3 == 0 { Side::Sell } else { Side::Buy };
            let follower = (n % 5) as u32;
            FollowerOrder {
                id: decision_id(n, follower, 1, 0),
                sub: SubIdx(follower),
                follower: FollowerIdx(follower),
                symbol: BTC,
                side,
                qty: Lots(2 + (n % 17) as i64 * 7),
                order_type: if n % 4 == 0 {
                    OrderType::Market
                } else {
                    OrderType::LimitIoc
                },
                limit: BTC_PRICE,
                reduce_only: false,
                leader_event_key: n,
                ts: Nanos(n),
                ..FollowerOrder::default()
            }
        })
        .collect()
}

/// Submits `orders` in batches of 32 and polls until none is in flight.
fn run_client(client: &mut SimClient, orders: &[FollowerOrder]) -> Vec<ExecReport> {
    let deadline = Instant::now() + WAIT;
    let mut reports = Vec::new();
    let mut batches = orders.chunks(32).peekable();
    while batches.peek().is_some() || client.in_flight() > 0 {
        assert!(
            Instant::now() < deadline,
            "timed out: {} in flight",
            client.in_flight()
        );
        if let Some(batch) = batches.peek() {
            if client.can_accept(batch.len()) {
                client.submit(batch, now(), &mut |r| reports.push(r));
                batches.next();
            }
        }
        if client.poll(now(), &mut |r| reports.push(r)) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    reports
}

/// Net filled lots per (follower, symbol), from the reports.
fn fill_sums(
    orders: &[FollowerOrder],
    reports: &[ExecReport],
) -> HashMap<(FollowerIdx, SymbolIdx), i64> {
    let who: HashMap<u64, &FollowerOrder> = orders.iter().map(|o| (o.id, o)).collect();
    let mut sums: HashMap<(FollowerIdx, SymbolIdx), i64> = HashMap::new();
    for r in reports.iter().filter(|r| r.kind == ExecKind::Fill) {
        let o = who[&r.order_id];
        *sums.entry((o.follower, o.symbol)).or_default() += o.side.sign() * r.qty.0;
    }
    sums.retain(|_, v| *v != 0);
    sums
}

fn as_map(positions: &[VenuePosition]) -> HashMap<(FollowerIdx, SymbolIdx), i64> {
    positions
        .iter()
        .map(|p| ((p.follower, p.symbol), p.lots.0))
        .collect()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "fillcast-sim-venue-test-{}-{name}",
        std::process::id()
    ))
}

const RUN_FILE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/run-file.toml");

/// Starts `fillcast sim-venue` on a free port with `extra` flags; returns it and its address
/// (from the port file).
fn start_binary(
    port_file: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (std::process::Child, SocketAddr) {
    let _ = std::fs::remove_file(port_file);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fillcast"))
        .args(["sim-venue", "--config", RUN_FILE_CONFIG])
        .args(["--listen", "127.0.0.1:0", "--venue", "sim", "--port-file"])
        .arg(port_file)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start fillcast sim-venue");
    let deadline = Instant::now() + WAIT;
    let addr: SocketAddr = loop {
        if let Ok(text) = std::fs::read_to_string(port_file) {
            assert!(
                text.ends_with('\n'),
                "the port file is written whole: {text:?}"
            );
            break text.trim().parse().expect("an address in the port file");
        }
        if Instant::now() >= deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "no port file; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    (child, addr)
}

/// Waits (bounded) for `child` to exit; its status and output.
fn wait_exit(mut child: std::process::Child) -> std::process::Output {
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("fillcast sim-venue did not stop");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// The positions file: `follower_index symbol_index lots` per line.
fn read_positions_file(path: &std::path::Path) -> HashMap<(FollowerIdx, SymbolIdx), i64> {
    let text = std::fs::read_to_string(path).expect("positions file");
    let mut books = HashMap::new();
    for line in text.lines() {
        let cols: Vec<i64> = line
            .split(' ')
            .map(|c| c.parse().expect("an integer"))
            .collect();
        assert_eq!(cols.len(), 3, "{line}");
        let key = (FollowerIdx(cols[0] as u32), SymbolIdx(cols[1] as u16));
        assert!(books.insert(key, cols[2]).is_none(), "{line} twice");
    }
    books
}

#[test]
fn the_binary_serves_until_sigterm_and_writes_its_books() {
    let port_file = temp_path("sigterm.port");
    let books = temp_path("sigterm.positions");
    let _ = std::fs::remove_file(&books);
    let (child, addr) = start_binary(&port_file, &["--positions-file".as_ref(), books.as_ref()]);

    let mut client = SimClient::connect("sim", addr, WAIT).expect("connect");
    let orders = orders(0, 50);
    let reports = run_client(&mut client, &orders);
    let positions = client.positions(WAIT).expect("positions");
    assert!(!positions.is_empty());
    assert_eq!(as_map(&positions), fill_sums(&orders, &reports));
    drop(client);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(killed.success());
    let out = wait_exit(child);
    assert!(out.status.success(), "{:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "orders_received=50 duplicate_client_ids=0\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("listening on {addr}")), "{stderr}");
    assert_eq!(read_positions_file(&books), as_map(&positions));
    let _ = std::fs::remove_file(&port_file);
    let _ = std::fs::remove_file(&books);
}

#[test]
fn the_binary_stops_when_its_stop_file_appears_and_keeps_its_books_across_clients() {
    let port_file = temp_path("stopfile.port");
    let stop_file = temp_path("stopfile.stop");
    let books = temp_path("stopfile.positions");
    let _ = std::fs::remove_file(&stop_file);
    let _ = std::fs::remove_file(&books);
    let (child, addr) = start_binary(
        &port_file,
        &[
            "--stop-file".as_ref(),
            stop_file.as_ref(),
            "--positions-file".as_ref(),
            books.as_ref(),
        ],
    );

    // Two engines in turn, the second re-sending one id of the first.
    let first = orders(0, 40);
    let mut a = SimClient::connect("sim", addr, WAIT).expect("connect");
    let mut reports = run_client(&mut a, &first);
    drop(a);
    let mut b = SimClient::connect("sim", addr, WAIT).expect("connect");
    let mut all = orders(1000, 10);
    all.push(first[3]);
    reports.extend(run_client(&mut b, &all));
    drop(b);
    all.extend_from_slice(&first);

    std::fs::write(&stop_file, b"stop").expect("write the stop file");
    let out = wait_exit(child);
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "orders_received=51 duplicate_client_ids=1\n"
    );
    assert_eq!(read_positions_file(&books), fill_sums(&all, &reports));
    for path in [&port_file, &stop_file, &books] {
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn the_binary_refuses_bad_arguments() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fillcast"))
            .arg("sim-venue")
            .args(args)
            .output()
            .expect("run fillcast sim-venue")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config <CONFIG>"));
    let out = run(&["--config", "/nonexistent/fillcast.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/fillcast.toml"));
    let out = run(&["--config", RUN_FILE_CONFIG, "--venue", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no venue named \"nope\""));
    let out = run(&["--config", RUN_FILE_CONFIG, "--listen"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("a value is required for '--listen <LISTEN>'"));
    let out = run(&["--config", RUN_FILE_CONFIG, "--stop-file", RUN_FILE_CONFIG]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    assert_eq!(run(&["--help"]).status.code(), Some(0));
}
