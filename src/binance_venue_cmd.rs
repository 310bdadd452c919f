//! `fillcast binance-test-venue`: the Binance USD-M test venue
//! (`fillcast_gateways::binance::venue::TestVenue`) as its own process, for the
//! Binance demo (`scripts/demo-binance.sh`) and the binary-level tests. It is a
//! local stand-in that speaks the documented protocol; it is never an exchange.
//!
//! This is the process around the library: the accounts (demo keys derived from
//! a seed, or read from a file), the symbols and their filters, the URLs written
//! where a script can read them, a leader who trades on a seeded schedule, and
//! at the end every account's position per symbol, compared on request with the
//! engine's database (positions, and the client order ids the venue received).
//!
//! Key material is never printed: the accounts are named (`L1`, `F1`, ...), and
//! the keys go only to the file the operator names with `--keys-out` (0600).

use crate::sim_venue::{exit_code, write_atomically, Failure};
use clap::Args;
use fillcast_engine::model::Side;
use fillcast_gateways::binance::rest::SymbolFilters;
use fillcast_gateways::binance::venue::{
    AccountKey, TestVenue, TestVenueOptions, VenueAccount, VenueTrade,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How often waits look at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Bounds on the options, so that a typo cannot ask for a week of trades.
const TRADES_MAX: u32 = 100_000;
const ACCOUNTS_MAX: usize = 2_000;
const LEADERS_MAX: u32 = 100;
const PARTIALS_MAX: u32 = 10;
const RATE_MAX: f64 = 1_000.0;
const GRACE_S_MAX: f64 = 86_400.0;
const SYMBOLS_MAX: usize = 50;
const NAME_CHARS_MAX: usize = 64;
const KEY_CHARS_MAX: usize = 256;
const ACCOUNTS_FILE_BYTES_MAX: u64 = 4 << 20;
/// The test venue's price bounds (its `exchangeInfo` PRICE_FILTER) and its
/// largest order quantity.
const PRICE_MIN: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
const PRICE_MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const QTY_MAX: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);
/// A leader's order moves the price by at most this many basis points.
const PRICE_MOVE_BPS: i64 = 5;

const SYMBOL_EXAMPLE: &str =
    "--symbol BTCUSDT:tick=0.1,step=0.001,min_qty=0.001,min_notional=100,price=65000";

#[derive(Args, Debug)]
pub struct BinanceTestVenueArgs {
    /// Where to listen: a loopback address (it serves plain HTTP and WebSocket,
    /// so keys must not cross a network). Port 0 takes any free port: see
    /// --urls-file.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Demo leader accounts, named L1, L2, ...; their keys come from --seed.
    #[arg(long, default_value_t = 1, conflicts_with = "accounts")]
    leaders: u32,
    /// Demo follower accounts, named F1, F2, ...; their keys come from --seed.
    #[arg(long, default_value_t = 10, conflicts_with = "accounts")]
    followers: u32,
    /// Read the accounts from FILE instead (mode 0600 or stricter): one per line,
    /// `leader|follower NAME API_KEY SECRET` (HMAC), `#` comments. --keys-out
    /// writes this format.
    #[arg(long, value_name = "FILE")]
    accounts: Option<PathBuf>,
    /// Write the demo accounts' keys to FILE (created, mode 0600; an existing
    /// file is never overwritten), for `fillcast keys add`. The only place the
    /// keys are ever written.
    #[arg(long, value_name = "FILE", conflicts_with = "accounts")]
    keys_out: Option<PathBuf>,
    /// A symbol and its exchange filters and starting price; repeat for more.
    /// `NAME:tick=T,step=S,price=P[,min_qty=Q][,min_notional=N]` (min_qty
    /// defaults to one step, min_notional to none). Default: BTCUSDT and ETHUSDT
    /// with Binance's filters.
    #[arg(long = "symbol", value_name = "SPEC")]
    symbols: Vec<String>,
    /// How many trades (fills) the leaders make in all, 2 or more; the last ones
    /// close whatever is open, so the leaders end flat (unless --leave-open).
    #[arg(long, default_value_t = 20)]
    trades: u32,
    /// Do not close what is open at the end: the leaders, and so their
    /// followers, keep positions (a reconciliation of books that are not flat).
    #[arg(long)]
    leave_open: bool,
    /// Trades per second (above 0, at most 1000).
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// A leader order fills in 1 to this many trades (partial fills).
    #[arg(long, default_value_t = 3)]
    max_partials: u32,
    /// Seeds the demo keys and the leaders' schedule: the same seed, the same
    /// keys and the same trades.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Start trading at once, instead of when every leader's user data stream
    /// is open (that is, when an engine is listening).
    #[arg(long)]
    no_wait: bool,
    /// After the last trade, keep serving this many seconds (for the followers'
    /// orders), then stop.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    grace: f64,
    /// After the last trade, keep serving until SIGINT or SIGTERM.
    #[arg(long)]
    until_stopped: bool,
    /// Write the URLs to FILE once listening (written whole, then renamed):
    /// `rest_url=...`, `stream_url=...`, `ws_api_url=...` lines, which a shell
    /// can source.
    #[arg(long, value_name = "FILE")]
    urls_file: Option<PathBuf>,
    /// At the stop, write every account's position per symbol to FILE:
    /// `NAME SYMBOL POSITION` lines (written whole, then renamed).
    #[arg(long, value_name = "FILE")]
    positions_file: Option<PathBuf>,
    /// At the stop, compare with the engine's database (the sidecar's:
    /// `sqlite:PATH`, or PostgreSQL): each follower account's position with the
    /// sum of its `positions` rows, each leader's with `leader_positions`, and
    /// each client order id in `follower_orders` with the `order.place`
    /// requests that carried it (never more than one). Exit 1 on a difference.
    #[arg(long, value_name = "DB")]
    check_db: Option<String>,
}

pub fn run(args: &BinanceTestVenueArgs) -> ExitCode {
    exit_code("binance-test-venue", serve(args))
}

// -- Options -----------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Role {
    Leader,
    Follower,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// An account of the venue. The key and secret are never printed.
struct Account {
    role: Role,
    name: String,
    api_key: Zeroizing<String>,
    secret: Zeroizing<String>,
}

/// A symbol: its filters and the price the market starts at.
struct Symbol {
    filters: SymbolFilters,
    price: Decimal,
}

impl Symbol {
    fn name(&self) -> &str {
        &self.filters.symbol
    }
    fn tick(&self) -> Decimal {
        self.filters.tick_size.unwrap_or(Decimal::ONE)
    }
    fn step(&self) -> Decimal {
        self.filters.step_size.unwrap_or(Decimal::ONE)
    }
}

fn default_symbols() -> Vec<String> {
    // Binance USD-M's filters for these two (exchangeInfo), at round prices.
    vec![
        "BTCUSDT:tick=0.1,step=0.001,min_qty=0.001,min_notional=100,price=65000".into(),
        "ETHUSDT:tick=0.01,step=0.001,min_qty=0.001,min_notional=20,price=3200".into(),
    ]
}

fn parse_decimal(spec: &str, key: &str, value: &str) -> Result<Decimal, String> {
    value.parse::<Decimal>().map_err(|_| {
        format!("--symbol `{spec}`: `{key}` is `{value}`, not a decimal number (for example {SYMBOL_EXAMPLE})")
    })
}

/// `NAME:tick=T,step=S,price=P[,min_qty=Q][,min_notional=N]`.
fn parse_symbol(spec: &str) -> Result<Symbol, String> {
    let bad = |why: String| format!("--symbol `{spec}`: {why} (for example {SYMBOL_EXAMPLE})");
    let (name, rest) = spec
        .split_once(':')
        .ok_or_else(|| bad("expected NAME:key=value,...".into()))?;
    if name.is_empty()
        || name.len() > 20
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(bad(format!(
            "the name `{name}` is not 1 to 20 capital letters and digits"
        )));
    }
    let (mut tick, mut step, mut price, mut min_qty, mut min_notional) =
        (None, None, None, None, None);
    for kv in rest.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad(format!("`{kv}` is not key=value")))?;
        let d = parse_decimal(spec, k, v)?;
        let slot = match k {
            "tick" => &mut tick,
            "step" => &mut step,
            "price" => &mut price,
            "min_qty" => &mut min_qty,
            "min_notional" => &mut min_notional,
            _ => {
                return Err(bad(format!(
                    "unknown key `{k}` (expected tick, step, price, min_qty, min_notional)"
                )))
            }
        };
        if slot.replace(d).is_some() {
            return Err(bad(format!("`{k}` given twice")));
        }
    }
    let need = |v: Option<Decimal>, k: &str| v.ok_or_else(|| bad(format!("`{k}` is required")));
    let (tick, step, price) = (
        need(tick, "tick")?,
        need(step, "step")?,
        need(price, "price")?,
    );
    if tick <= Decimal::ZERO || step <= Decimal::ZERO {
        return Err(bad("`tick` and `step` must be above 0".into()));
    }
    if price < PRICE_MIN || price > PRICE_MAX || !(price % tick).is_zero() {
        return Err(bad(format!(
            "`price` must be a multiple of `tick` from {PRICE_MIN} to {PRICE_MAX}"
        )));
    }
    let min_qty = min_qty.unwrap_or(step);
    if min_qty < step || !(min_qty % step).is_zero() || min_qty > QTY_MAX {
        return Err(bad(format!(
            "`min_qty` must be a multiple of `step`, at least one step and at most {QTY_MAX}"
        )));
    }
    if min_notional.is_some_and(|n| n < Decimal::ZERO) {
        return Err(bad("`min_notional` must not be negative".into()));
    }
    Ok(Symbol {
        filters: SymbolFilters {
            symbol: name.to_string(),
            tick_size: Some(tick.normalize()),
            step_size: Some(step.normalize()),
            min_qty: Some(min_qty.normalize()),
            min_notional: min_notional.map(|n| n.normalize()),
        },
        price,
    })
}

fn check_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_CHARS_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn check_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= KEY_CHARS_MAX && k.bytes().all(|b| b.is_ascii_graphic())
}

/// `len` letters and digits from `rng`.
fn alnum(rng: &mut ChaCha20Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// The demo accounts: `leaders` named L1.., `followers` named F1.., with
/// 64-character keys and secrets derived from `seed` (starting `fcDEMO`, so a
/// leaked one is recognised at a glance).
fn demo_accounts(leaders: u32, followers: u32, seed: u64) -> Vec<Account> {
    // Its own stream of the seed, so the schedule does not move the keys.
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x6b65_7973_6b65_7973);
    let mut out = Vec::new();
    for (role, prefix, n) in [
        (Role::Leader, 'L', leaders),
        (Role::Follower, 'F', followers),
    ] {
        for i in 1..=n {
            let api_key = Zeroizing::new(format!("fcDEMOkey{}", alnum(&mut rng, 55)));
            let secret = Zeroizing::new(format!("fcDEMOsecret{}", alnum(&mut rng, 52)));
            out.push(Account {
                role,
                name: format!("{prefix}{i}"),
                api_key,
                secret,
            });
        }
    }
    out
}

/// The accounts of `--accounts FILE`; a line is never echoed (it holds keys).
fn read_accounts(path: &Path) -> Result<Vec<Account>, String> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("--accounts {shown}: {e}"))?;
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "--accounts {shown}: the file holds keys and others may read it (mode {:o}); `chmod 600` it",
            meta.mode() & 0o777
        ));
    }
    if meta.len() > ACCOUNTS_FILE_BYTES_MAX {
        return Err(format!(
            "--accounts {shown}: larger than {ACCOUNTS_FILE_BYTES_MAX} bytes"
        ));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("--accounts {shown}: {e}"))?,
    );
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| {
            format!(
                "--accounts {shown} line {}: {why} (expected `leader|follower NAME API_KEY SECRET`)",
                i + 1
            )
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let [role, name, key, secret] = words[..] else {
            return Err(bad(&format!("{} words", words.len())));
        };
        let role = match role {
            "leader" => Role::Leader,
            "follower" => Role::Follower,
            _ => return Err(bad("the role is neither `leader` nor `follower`")),
        };
        if !check_name(name) {
            return Err(bad(&format!(
                "the name is not 1 to {NAME_CHARS_MAX} of A-Z, a-z, 0-9, `_`, `-`, `.`"
            )));
        }
        if !check_key(key) || !check_key(secret) {
            return Err(bad(&format!(
                "the key or the secret is not 1 to {KEY_CHARS_MAX} printable characters"
            )));
        }
        out.push(Account {
            role,
            name: name.to_string(),
            api_key: Zeroizing::new(key.to_string()),
            secret: Zeroizing::new(secret.to_string()),
        });
        if out.len() > ACCOUNTS_MAX {
            return Err(format!(
                "--accounts {shown}: more than {ACCOUNTS_MAX} accounts"
            ));
        }
    }
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    for a in &out {
        if !names.insert(a.name.as_str()) {
            return Err(format!("--accounts {shown}: `{}` twice", a.name));
        }
        if !keys.insert(a.api_key.as_str()) {
            return Err(format!(
                "--accounts {shown}: account `{}` has another account's API key",
                a.name
            ));
        }
    }
    if !out.iter().any(|a| a.role == Role::Leader) {
        return Err(format!("--accounts {shown}: no leader account"));
    }
    Ok(out)
}

/// The accounts' keys to `path`, created 0600 and never over another file.
fn write_keys(path: &Path, accounts: &[Account], seed: u64) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = Zeroizing::new(format!(
        "# fillcast binance-test-venue demo accounts (seed {seed}): role name api_key secret.\n\
         # For the local test venue only: never use these anywhere else.\n"
    ));
    for a in accounts {
        text.push_str(&format!(
            "{} {} {} {}\n",
            a.role.as_str(),
            a.name,
            a.api_key.as_str(),
            a.secret.as_str()
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            format!(
                "--keys-out {}: {e} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("--keys-out {}: {e}", path.display()))
}

fn check_options(args: &BinanceTestVenueArgs) -> Result<(), String> {
    if !(2..=TRADES_MAX).contains(&args.trades) {
        return Err(format!(
            "--trades {}: expected 2 to {TRADES_MAX} (an open and its close at least)",
            args.trades
        ));
    }
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= RATE_MAX) {
        return Err(format!(
            "--rate {}: expected trades per second above 0 and at most {RATE_MAX}",
            args.rate
        ));
    }
    if !(1..=PARTIALS_MAX).contains(&args.max_partials) {
        return Err(format!(
            "--max-partials {}: expected 1 to {PARTIALS_MAX}",
            args.max_partials
        ));
    }
    if !(args.grace.is_finite() && (0.0..=GRACE_S_MAX).contains(&args.grace)) {
        return Err(format!(
            "--grace {}: expected seconds from 0 to {GRACE_S_MAX}",
            args.grace
        ));
    }
    if args.accounts.is_none() {
        if !(1..=LEADERS_MAX).contains(&args.leaders) {
            return Err(format!(
                "--leaders {}: expected 1 to {LEADERS_MAX}",
                args.leaders
            ));
        }
        if args.followers as usize > ACCOUNTS_MAX {
            return Err(format!(
                "--followers {}: expected 0 to {ACCOUNTS_MAX}",
                args.followers
            ));
        }
    }
    if let Some(db) = &args.check_db {
        if !db.starts_with("sqlite:") && !fillcast_sql::sidecar::is_postgres(db) {
            return Err(format!(
                "--check-db {}: expected sqlite:PATH or a PostgreSQL address (postgres://USER@HOST/DB)",
                fillcast_sql::sidecar::mask_db(db)
            ));
        }
    }
    if args.symbols.len() > SYMBOLS_MAX {
        return Err(format!("--symbol: at most {SYMBOLS_MAX} symbols"));
    }
    Ok(())
}

/// A loopback address: the venue serves plain HTTP and WebSocket.
fn check_listen(listen: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = listen
        .to_socket_addrs()
        .map_err(|e| format!("--listen `{listen}`: {e} (expected HOST:PORT, e.g. 127.0.0.1:0)"))?
        .collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(format!(
            "--listen `{listen}`: expected a loopback address (127.0.0.1 or [::1]): the test venue serves plain HTTP and WebSocket, and API keys must not cross a network in the clear"
        ));
    }
    Ok(())
}

// -- The leaders' schedule ---------------------------------------------------

/// One order of a leader, filled in `fills` trades at `price`.
struct LeaderOrder {
    leader: usize,
    symbol: usize,
    side: Side,
    price: Decimal,
    fills: Vec<Decimal>,
    /// `open`, `add`, `reduce`, `flip` or `close`.
    what: &'static str,
    /// The leader's position in the symbol after the order.
    after: Decimal,
}

/// The leaders' orders: a seeded random walk per (leader, symbol), in whole
/// steps, of opens, adds, partial closes, flips and closes, `trades` fills in
/// all; with `end_flat`, the last ones close what is open (so every leader ends
/// flat; one trade fewer when only an open would be left).
fn schedule(
    symbols: &[Symbol],
    leaders: usize,
    trades: u32,
    max_partials: u32,
    seed: u64,
    end_flat: bool,
) -> Vec<LeaderOrder> {
    assert!(leaders > 0 && !symbols.is_empty() && trades >= 2);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    // The smallest order a follower at a tenth of the leader could still send
    // (the venue's minimum quantity and notional), in lots: leaders trade 20
    // to 100 of these at a time.
    let base: Vec<i64> = symbols
        .iter()
        .map(|s| {
            let step = s.step();
            let by_qty = (s.filters.min_qty.unwrap_or(step) / step).ceil();
            let by_notional = s
                .filters
                .min_notional
                .map_or(Decimal::ONE, |n| (n / (s.price * step)).ceil());
            let lots = by_qty.max(by_notional).max(Decimal::ONE);
            // Positions stay under the venue's largest order.
            let cap = (QTY_MAX / step / Decimal::from(400))
                .floor()
                .max(Decimal::ONE);
            i64::try_from(lots.min(cap)).unwrap_or(1)
        })
        .collect();
    let mut price: Vec<Decimal> = symbols.iter().map(|s| s.price).collect();
    let mut pos = vec![vec![0i64; symbols.len()]; leaders];
    let mut orders = Vec::new();
    let mut remaining = i64::from(trades);
    let mut guard = 0u32;
    // Trades kept back to close `n` open positions at the end.
    let reserve = |n: i64| if end_flat { n } else { 0 };
    while remaining > 0 {
        guard += 1;
        assert!(guard <= 10 * trades + 100, "the schedule makes progress");
        let open: Vec<(usize, usize)> = (0..leaders)
            .flat_map(|l| (0..symbols.len()).map(move |s| (l, s)))
            .filter(|&(l, s)| pos[l][s] != 0)
            .collect();
        let (mut l, mut s, mut delta, mut what) = if remaining <= reserve(open.len() as i64) {
            let (l, s) = open[rng.gen_range(0..open.len())];
            (l, s, -pos[l][s], "close")
        } else {
            let (l, s) = (rng.gen_range(0..leaders), rng.gen_range(0..symbols.len()));
            let p = pos[l][s];
            let b = base[s];
            if p == 0 {
                let lots = b * rng.gen_range(20..=100);
                (l, s, if rng.gen_bool(0.5) { lots } else { -lots }, "open")
            } else {
                let sign = p.signum();
                let roll = rng.gen_range(0..100);
                let big = p.abs() >= b * 250;
                if roll < 35 && !big {
                    (l, s, sign * b * rng.gen_range(10..=60), "add")
                } else if roll < 65 && p.abs() > 1 {
                    let cut = (p.abs() * rng.gen_range(20..=80) / 100).clamp(1, p.abs() - 1);
                    (l, s, -sign * cut, "reduce")
                } else if roll < 80 || big {
                    (l, s, -p, "close")
                } else {
                    (l, s, -p - sign * b * rng.gen_range(20..=100), "flip")
                }
            }
        };
        let open_after = |p: i64, delta: i64| {
            open.len() as i64 - i64::from(p != 0 && p + delta == 0)
                + i64::from(p == 0 && delta != 0)
        };
        if remaining - reserve(open_after(pos[l][s], delta)) < 1 {
            // An open with no trade left to close it: close something instead.
            let Some(&(cl, cs)) = open.get(rng.gen_range(0..open.len().max(1))) else {
                break; // nothing open and one trade left: it could not end flat
            };
            (l, s, delta, what) = (cl, cs, -pos[cl][cs], "close");
        }
        let p = pos[l][s];
        let after = p + delta;
        let open_after = reserve(open_after(p, delta));
        let room = remaining - open_after;
        debug_assert!(room >= 1, "every open position can still be closed");
        let lots = delta.abs();
        let mut fills = if rng.gen_bool(0.6) {
            1
        } else {
            rng.gen_range(1..=i64::from(max_partials))
        };
        fills = fills.min(room).min(lots).max(1);
        // Never leave exactly one trade with nothing open: it could not close.
        if end_flat && open_after == 0 && remaining - fills == 1 {
            if fills < room && fills < lots {
                fills += 1;
            } else if fills > 1 {
                fills -= 1;
            }
        }
        let step = symbols[s].step();
        let mut pieces = Vec::with_capacity(fills as usize);
        let mut left = lots;
        for i in 0..fills {
            let slots = fills - i;
            let piece = if slots == 1 {
                left
            } else {
                let even = left / slots;
                rng.gen_range((even / 2).max(1)..=even.max(1))
            };
            pieces.push(Decimal::from(piece) * step);
            left -= piece;
        }
        debug_assert_eq!(left, 0, "the fills add up to the order");
        // The price moves a few ticks before each order.
        let sym = &symbols[s];
        let tick = sym.tick();
        let span = (sym.price * Decimal::from(PRICE_MOVE_BPS) / Decimal::from(10_000) / tick)
            .floor()
            .max(Decimal::ONE);
        let span = i64::try_from(span).unwrap_or(1);
        let mut moved = price[s] + Decimal::from(rng.gen_range(-span..=span)) * tick;
        if moved < (sym.price / Decimal::TWO).max(PRICE_MIN)
            || moved > (sym.price * Decimal::TWO).min(PRICE_MAX)
        {
            moved = price[s];
        }
        price[s] = moved;
        pos[l][s] = after;
        remaining -= fills;
        orders.push(LeaderOrder {
            leader: l,
            symbol: s,
            side: if delta > 0 { Side::Buy } else { Side::Sell },
            price: moved,
            fills: pieces,
            what,
            after: Decimal::from(after) * step,
        });
    }
    orders
}

// -- Serving -----------------------------------------------------------------

/// Sleeps until `at`; false when a stop was asked first.
fn sleep_until(at: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep(POLL.min(at - now));
    }
}

fn serve(args: &BinanceTestVenueArgs) -> Result<(), Failure> {
    let setup = Failure::Setup;
    check_options(args).map_err(setup)?;
    check_listen(&args.listen).map_err(setup)?;
    let specs = if args.symbols.is_empty() {
        default_symbols()
    } else {
        args.symbols.clone()
    };
    let symbols = specs
        .iter()
        .map(|s| parse_symbol(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(setup)?;
    let mut seen = HashSet::new();
    if let Some(dup) = symbols.iter().find(|s| !seen.insert(s.name().to_string())) {
        return Err(setup(format!("--symbol: `{}` given twice", dup.name())));
    }
    let accounts = match &args.accounts {
        Some(path) => read_accounts(path).map_err(setup)?,
        None => demo_accounts(args.leaders, args.followers, args.seed),
    };
    let leaders: Vec<&Account> = accounts.iter().filter(|a| a.role == Role::Leader).collect();
    let plan = schedule(
        &symbols,
        leaders.len(),
        args.trades,
        args.max_partials,
        args.seed,
        !args.leave_open,
    );
    if let Some(path) = &args.keys_out {
        write_keys(path, &accounts, args.seed).map_err(setup)?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| setup(format!("cannot handle signal {signal}: {e}")))?;
    }
    let venue = TestVenue::start(
        &args.listen,
        TestVenueOptions {
            accounts: accounts
                .iter()
                .map(|a| VenueAccount {
                    api_key: a.api_key.to_string(),
                    key: AccountKey::Hmac(a.secret.as_bytes().to_vec()),
                    withdrawals: false,
                    futures: true,
                })
                .collect(),
            symbols: symbols.iter().map(|s| s.filters.clone()).collect(),
        },
    )
    .map_err(|e| setup(format!("cannot listen on {}: {e}", args.listen)))?;
    for s in &symbols {
        venue.set_price(s.name(), s.price);
    }
    let urls = format!(
        "rest_url={}\nstream_url={}\nws_api_url={}\n",
        venue.rest_url(),
        venue.stream_url(),
        venue.ws_api_url()
    );
    if let Some(path) = &args.urls_file {
        write_atomically(path, urls.as_bytes()).map_err(setup)?;
    }
    print!("{urls}");
    let _ = std::io::stdout().flush();
    say_what_it_serves(args, &accounts, &symbols, &plan);

    let made = trade(args, &venue, &leaders, &symbols, &plan, &stop);
    if made.trades == plan_trades(&plan) {
        println!(
            "leader trades done: {} trades in {} orders",
            made.trades, made.orders
        );
    } else {
        println!(
            "leader trades stopped: {} of {} trades, in {} orders",
            made.trades,
            plan_trades(&plan),
            made.orders
        );
    }
    let _ = std::io::stdout().flush();
    if args.until_stopped {
        eprintln!("fillcast binance-test-venue: serving until SIGINT or SIGTERM");
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(POLL);
        }
    } else if !stop.load(Ordering::Acquire) {
        sleep_until(Instant::now() + Duration::from_secs_f64(args.grace), &stop);
    }

    // The venue's books, while it still holds them.
    let books: Vec<(&Account, &str, Decimal)> = accounts
        .iter()
        .flat_map(|a| symbols.iter().map(move |s| (a, s.name())))
        .map(|(a, s)| (a, s, venue.position(&a.api_key, s).normalize()))
        .collect();
    let checked = args
        .check_db
        .as_deref()
        .map(|db| check_db(db, &venue, &accounts, &books));
    drop(venue);
    print_books(&books);
    if let Some(path) = &args.positions_file {
        let mut text = String::new();
        for (a, s, q) in &books {
            text.push_str(&format!("{} {s} {q}\n", a.name));
        }
        write_atomically(path, text.as_bytes()).map_err(Failure::Run)?;
    }
    match checked {
        None => Ok(()),
        Some(Err(e)) => Err(Failure::Run(e)),
        Some(Ok(report)) => {
            print!("{}", report.text);
            let _ = std::io::stdout().flush();
            if report.differences == 0 {
                Ok(())
            } else {
                Err(Failure::Run(format!(
                    "reconciliation FAILED: {} differences between the venue and the engine's database (listed above)",
                    report.differences
                )))
            }
        }
    }
}

fn plan_trades(plan: &[LeaderOrder]) -> u32 {
    plan.iter().map(|o| o.fills.len() as u32).sum()
}

/// What it serves, on stderr (never a key).
fn say_what_it_serves(
    args: &BinanceTestVenueArgs,
    accounts: &[Account],
    symbols: &[Symbol],
    plan: &[LeaderOrder],
) {
    let names = |role: Role| {
        let n: Vec<&str> = accounts
            .iter()
            .filter(|a| a.role == role)
            .map(|a| a.name.as_str())
            .collect();
        match n.len() {
            0 => "none".to_string(),
            1..=4 => n.join(", "),
            k => format!("{} .. {} ({k})", n[0], n[k - 1]),
        }
    };
    let keys = match (&args.accounts, &args.keys_out) {
        (Some(f), _) => format!("keys from {}", f.display()),
        (None, Some(f)) => format!(
            "demo keys from seed {}, written to {}",
            args.seed,
            f.display()
        ),
        (None, None) => format!(
            "demo keys from seed {} (--keys-out FILE writes them)",
            args.seed
        ),
    };
    eprintln!(
        "fillcast binance-test-venue: a local stand-in for Binance USD-M futures (never an exchange)"
    );
    eprintln!(
        "  accounts: leaders {}; followers {}; {keys}",
        names(Role::Leader),
        names(Role::Follower)
    );
    for s in symbols {
        let f = &s.filters;
        eprintln!(
            "  symbol {}: tick {}, step {}, min qty {}, min notional {}, price {}",
            s.name(),
            s.tick(),
            s.step(),
            f.min_qty.unwrap_or_default(),
            f.min_notional
                .map_or_else(|| "none".to_string(), |n| n.to_string()),
            s.price
        );
    }
    eprintln!(
        "  schedule: {} trades in {} leader orders at {} trades/s (seed {}){}",
        plan_trades(plan),
        plan.len(),
        args.rate,
        args.seed,
        if args.no_wait {
            ""
        } else {
            ", once every leader's user data stream is open"
        }
    );
}

struct Made {
    trades: u32,
    orders: u32,
}

/// The leaders trade `plan`, one trade every 1/rate seconds, from when their
/// streams are open (unless --no-wait) until done or stopped.
fn trade(
    args: &BinanceTestVenueArgs,
    venue: &TestVenue,
    leaders: &[&Account],
    symbols: &[Symbol],
    plan: &[LeaderOrder],
    stop: &AtomicBool,
) -> Made {
    let mut made = Made {
        trades: 0,
        orders: 0,
    };
    if !args.no_wait {
        eprintln!(
            "fillcast binance-test-venue: waiting for {} user data stream{} (the engine's `binance` source) before the leaders trade",
            leaders.len(),
            if leaders.len() == 1 { "" } else { "s" }
        );
        while venue.streams() < leaders.len() {
            if stop.load(Ordering::Acquire) {
                return made;
            }
            std::thread::sleep(POLL);
        }
    }
    let total = plan_trades(plan);
    let every = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    for (n, order) in plan.iter().enumerate() {
        let sym = &symbols[order.symbol];
        let leader = leaders[order.leader];
        let order_qty: Decimal = order.fills.iter().sum();
        for (i, qty) in order.fills.iter().enumerate() {
            if !sleep_until(start + every * made.trades, stop) {
                return made;
            }
            if i == 0 {
                venue.set_price(sym.name(), order.price);
            }
            venue.trade(
                &leader.api_key,
                &VenueTrade {
                    symbol: sym.name().to_string(),
                    side: order.side,
                    qty: *qty,
                    price: order.price,
                    order_id: 1_000_000 + n as u64,
                    order_qty,
                    client_order_id: format!("demo-{}-{n}", leader.name),
                },
            );
            made.trades += 1;
            eprintln!(
                "fillcast binance-test-venue: trade {}/{total}: {} {} {} {} at {} ({}{}){}",
                made.trades,
                leader.name,
                sym.name(),
                if order.side == Side::Buy {
                    "buy"
                } else {
                    "sell"
                },
                qty.normalize(),
                order.price,
                order.what,
                if order.fills.len() > 1 {
                    format!(", fill {} of {}", i + 1, order.fills.len())
                } else {
                    String::new()
                },
                if i + 1 == order.fills.len() {
                    format!("; {} holds {}", leader.name, order.after.normalize())
                } else {
                    String::new()
                }
            );
        }
        made.orders += 1;
    }
    made
}

fn print_books(books: &[(&Account, &str, Decimal)]) {
    let width = books
        .iter()
        .map(|(a, _, _)| a.name.len())
        .max()
        .unwrap_or(4);
    println!("positions at the venue (account, role, symbol, position):");
    for (a, s, q) in books {
        println!("  {:<width$}  {:<8}  {s:<10}  {q}", a.name, a.role.as_str());
    }
}

// -- Reconciliation ----------------------------------------------------------

/// What the engine's database holds: positions per (follower, symbol) summed
/// over its subscriptions, per (leader, symbol), and every client order id.
#[derive(Default)]
struct EngineBooks {
    followers: BTreeMap<(String, String), Decimal>,
    leaders: BTreeMap<(String, String), Decimal>,
    client_ids: Vec<String>,
}

const FOLLOWER_POSITIONS: &str = "SELECT follower_id, symbol, CAST(qty AS TEXT) FROM positions";
const LEADER_POSITIONS: &str = "SELECT leader_id, symbol, CAST(qty AS TEXT) FROM leader_positions";
const CLIENT_IDS: &str = "SELECT client_order_id FROM follower_orders";

fn read_engine(url: &str) -> Result<EngineBooks, String> {
    use crate::sql_cmd::Db;
    let shown = fillcast_sql::sidecar::mask_db(url);
    let db = Db::open(url).map_err(|e| format!("--check-db {shown}: {e:#}"))?;
    let mut rows3: Vec<Vec<(String, String, String)>> = Vec::new();
    let ids: Vec<String> = match db {
        Db::Sqlite(c) => {
            let q3 = |sql: &str| -> Result<Vec<(String, String, String)>, String> {
                let mut st = c
                    .prepare(sql)
                    .map_err(|e| format!("--check-db {shown}: {sql}: {e}"))?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(|e| format!("--check-db {shown}: {sql}: {e}"))?;
                rows.collect::<Result<_, _>>()
                    .map_err(|e| format!("--check-db {shown}: {sql}: {e}"))
            };
            rows3.push(q3(FOLLOWER_POSITIONS)?);
            rows3.push(q3(LEADER_POSITIONS)?);
            let mut st = c
                .prepare(CLIENT_IDS)
                .map_err(|e| format!("--check-db {shown}: {CLIENT_IDS}: {e}"))?;
            st.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(|e| format!("--check-db {shown}: {CLIENT_IDS}: {e}"))?
        }
        Db::Postgres(mut c) => {
            for sql in [FOLLOWER_POSITIONS, LEADER_POSITIONS] {
                let rows = c
                    .query(sql, &[])
                    .map_err(|e| format!("--check-db {shown}: {sql}: {e}"))?;
                rows3.push(
                    rows.iter()
                        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                        .collect::<Result<_, fillcast_sql::sidecar::pg::Error>>()
                        .map_err(|e| format!("--check-db {shown}: {sql}: {e}"))?,
                );
            }
            c.query(CLIENT_IDS, &[])
                .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
                .map_err(|e| format!("--check-db {shown}: {CLIENT_IDS}: {e}"))?
        }
    };
    let mut books = EngineBooks {
        client_ids: ids,
        ..EngineBooks::default()
    };
    for (rows, into) in rows3
        .into_iter()
        .zip([&mut books.followers, &mut books.leaders])
    {
        for (who, symbol, qty) in rows {
            let q: Decimal = qty.parse().map_err(|_| {
                format!("--check-db {shown}: the position of `{who}` in {symbol} is `{qty}`, not a decimal")
            })?;
            *into.entry((who, symbol)).or_default() += q;
        }
    }
    Ok(books)
}

struct CheckReport {
    text: String,
    differences: u64,
}

/// The venue's books against the engine's database: positions per account
/// and symbol, and how many `order.place` requests carried each client order
/// id the engine recorded.
fn check_db(
    url: &str,
    venue: &TestVenue,
    accounts: &[Account],
    books: &[(&Account, &str, Decimal)],
) -> Result<CheckReport, String> {
    let engine = read_engine(url)?;
    let shown = fillcast_sql::sidecar::mask_db(url);
    let mut text = format!("reconciliation with the engine's database {shown}:\n");
    let mut differences = 0u64;
    let mut compared = 0u64;
    let mut lines = Vec::new();
    let mut covered: HashSet<(Role, String, String)> = HashSet::new();
    for (a, symbol, at_venue) in books {
        let table = match a.role {
            Role::Leader => &engine.leaders,
            Role::Follower => &engine.followers,
        };
        let key = (a.name.clone(), symbol.to_string());
        let in_engine = table.get(&key).copied().unwrap_or_default();
        covered.insert((a.role, key.0, key.1));
        compared += 1;
        if in_engine != *at_venue {
            differences += 1;
            lines.push(format!(
                "  DIFFERS: {} {} {symbol}: venue {at_venue}, engine {}",
                a.role.as_str(),
                a.name,
                in_engine.normalize()
            ));
        }
    }
    for (role, table) in [
        (Role::Follower, &engine.followers),
        (Role::Leader, &engine.leaders),
    ] {
        for ((who, symbol), q) in table {
            if !q.is_zero() && !covered.contains(&(role, who.clone(), symbol.clone())) {
                differences += 1;
                lines.push(format!(
                    "  DIFFERS: the engine holds {} for {} `{who}` in {symbol}, which this venue has no account or symbol for",
                    q.normalize(),
                    role.as_str()
                ));
            }
        }
    }
    let (mut once, mut never, mut twice) = (0u64, 0u64, 0u64);
    for id in &engine.client_ids {
        match venue.orders_with_client_id(id) {
            0 => never += 1,
            1 => once += 1,
            n => {
                twice += 1;
                differences += 1;
                lines.push(format!(
                    "  DIFFERS: client order id {id} reached the venue {n} times"
                ));
            }
        }
    }
    let leaders = accounts.iter().filter(|a| a.role == Role::Leader).count();
    text.push_str(&format!(
        "  positions: {compared} (account, symbol) pairs compared ({leaders} leader and {} follower accounts), {} differ\n",
        accounts.len() - leaders,
        differences - twice
    ));
    text.push_str(&format!(
        "  client order ids: {} in follower_orders; reached the venue once {once}, never {never} (refused before they left, or sent elsewhere), more than once {twice}\n",
        engine.client_ids.len()
    ));
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    text.push_str(if differences == 0 {
        "reconciliation: ok (the venue's positions equal the engine's; no client order id twice)\n"
    } else {
        "reconciliation: FAILED\n"
    });
    Ok(CheckReport { text, differences })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn symbols() -> Vec<Symbol> {
        default_symbols()
            .iter()
            .map(|s| parse_symbol(s).unwrap())
            .collect()
    }

    #[test]
    fn a_schedule_is_whole_steps_and_ends_flat() {
        for seed in 0..200 {
            for trades in [2, 3, 5, 20, 57] {
                let syms = symbols();
                let plan = schedule(&syms, 1 + (seed % 3) as usize, trades, 3, seed, true);
                assert!(plan_trades(&plan) <= trades && plan_trades(&plan) + 1 >= trades);
                let mut pos: HashMap<(usize, usize), Decimal> = HashMap::new();
                for o in &plan {
                    let step = syms[o.symbol].step();
                    for q in &o.fills {
                        assert!(*q > Decimal::ZERO && (q % step).is_zero(), "{q}");
                        let signed = if o.side == Side::Buy { *q } else { -*q };
                        *pos.entry((o.leader, o.symbol)).or_default() += signed;
                    }
                    assert_eq!(pos[&(o.leader, o.symbol)], o.after);
                    assert!((o.price % syms[o.symbol].tick()).is_zero());
                }
                assert!(
                    pos.values().all(|p| p.is_zero()),
                    "seed {seed} trades {trades}"
                );
            }
        }
    }

    #[test]
    fn left_open_a_schedule_makes_every_trade() {
        let syms = symbols();
        for seed in 0..50 {
            let plan = schedule(&syms, 2, 31, 3, seed, false);
            assert_eq!(plan_trades(&plan), 31);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_keys_and_others_differ() {
        let a = demo_accounts(1, 2, 7);
        let b = demo_accounts(1, 2, 7);
        let c = demo_accounts(1, 2, 8);
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].name, "F1");
        for i in 0..3 {
            assert_eq!(a[i].api_key, b[i].api_key);
            assert_ne!(a[i].secret, c[i].secret);
            assert_eq!(a[i].api_key.len(), 64);
            assert_eq!(a[i].secret.len(), 64);
        }
    }

    #[test]
    fn a_bad_symbol_names_the_option_and_what_was_expected() {
        for (spec, says) in [
            ("BTCUSDT", "expected NAME:key=value"),
            ("BTCUSDT:tick=0.1,step=0.001", "`price` is required"),
            (
                "BTCUSDT:tick=x,step=0.001,price=1",
                "`tick` is `x`, not a decimal",
            ),
            (
                "BTCUSDT:tick=0.1,step=0.001,price=1.05",
                "a multiple of `tick`",
            ),
            (
                "BTCUSDT:tick=0.1,step=0.001,price=1,lot=2",
                "unknown key `lot`",
            ),
            ("btc:tick=0.1,step=0.001,price=1", "capital letters"),
        ] {
            let e = parse_symbol(spec).err().unwrap();
            assert!(e.starts_with("--symbol") && e.contains(says), "{e}");
        }
    }

    #[test]
    fn only_loopback_is_served() {
        assert!(check_listen("127.0.0.1:0").is_ok());
        assert!(check_listen("0.0.0.0:0")
            .unwrap_err()
            .contains("loopback address"));
    }
}
