//! fillcast-bench: the benchmarking harness. Benchmarks are not tests: they print
//! figures (with the machine), never assert a time.
//!
//! Scenarios so far:
//! - `journal`: append throughput and per-append latency of typed decision records,
//!   for each durability setting, beside a baseline in the same run (the same bytes
//!   through a buffered `write(2)` to a plain file, no mapping, no checksum).
//!
//! - `fanout`: one leader fill to N followers (1k / 10k / 100k), fillcast's core
//!   beside the textbook design (decimals per follower, a channel message per order).
//!
//! - `sidecar`: journal replay into SQLite (and PostgreSQL with `--pg URL`) in rows/s,
//!   beside one autocommit INSERT per row.
//!
//! Usage: `fillcast-bench sidecar [--rows N] [--pg URL]`, `fillcast-bench journal [--records N] [--dir DIR]`,
//! `fillcast-bench fanout [--followers 1000,10000,100000] [--samples N]`

mod fanout;
mod journal;
mod sidecar;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("journal");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match scenario {
        "journal" => {
            let records = flag("--records")
                .and_then(|v| v.parse().ok())
                .unwrap_or(5_000_000);
            journal::run(records, flag("--dir").map(Into::into));
        }
        "fanout" => {
            let sizes: Vec<usize> = flag("--followers")
                .unwrap_or_else(|| "1000,10000,100000".into())
                .split(',')
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            let samples = flag("--samples")
                .and_then(|v| v.parse().ok())
                .unwrap_or(200);
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            println!("fan-out of one leader fill: {samples} samples per size, {cores} cores (µs)");
            println!(
                "{:>10} {:>8} {:>10} {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>7}",
                "followers",
                "orders",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "base p50",
                "base p99",
                "base max",
                "p99 x"
            );
            for n in sizes {
                let r = fanout::run(n, samples);
                let us = |h: &hdrhistogram::Histogram<u64>, q: f64| {
                    h.value_at_quantile(q) as f64 / 1000.0
                };
                println!(
                    "{:>10} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} | {:>10.1} {:>10.1} {:>10.1} | {:>7.1}",
                    r.followers,
                    r.orders_per_fill,
                    us(&r.fillcast_ns, 0.5),
                    us(&r.fillcast_ns, 0.9),
                    us(&r.fillcast_ns, 0.99),
                    us(&r.fillcast_ns, 0.999),
                    us(&r.baseline_ns, 0.5),
                    us(&r.baseline_ns, 0.99),
                    r.baseline_ns.max() as f64 / 1000.0,
                    us(&r.baseline_ns, 0.99) / us(&r.fillcast_ns, 0.99),
                );
                let _ = r.samples;
            }
        }
        "sidecar" => sidecar::run(
            flag("--rows")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000_000),
            flag("--pg"),
        ),
        "--help" | "-h" | "help" => {
            println!("fillcast-bench journal [--records N] [--dir DIR]\n\n  journal   append throughput and latency per durability setting, with a baseline");
        }
        other => {
            eprintln!("fillcast-bench: unknown scenario `{other}` (try --help)");
            std::process::exit(2);
        }
    }
}
