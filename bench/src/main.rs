//! fillcast-bench: the benchmarking harness. Benchmarks are not tests: they print
//! figures (with the machine), never assert a time.
//!
//! Scenarios so far:
//! - `journal`: append throughput and per-append latency of typed decision records,
//!   for each durability setting, beside a baseline in the same run (the same bytes
//!   through a buffered `write(2)` to a plain file, no mapping, no checksum).
//!
//! Usage: `fillcast-bench journal [--records N] [--dir DIR]`

mod journal;

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
        "--help" | "-h" | "help" => {
            println!("fillcast-bench journal [--records N] [--dir DIR]\n\n  journal   append throughput and latency per durability setting, with a baseline");
        }
        other => {
            eprintln!("fillcast-bench: unknown scenario `{other}` (try --help)");
            std::process::exit(2);
        }
    }
}
