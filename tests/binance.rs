//! Issue 15 at the real binary: `fillcast run` with a `binance` source against the
//! in-process test venue, the leader's key from the vault.

use crate::support::{figure, fillcast_cmd, text, tmp};
use fillcast_engine::model::Side;
use fillcast_gateways::binance::venue::{TestVenue, TestVenueOptions, VenueAccount, VenueTrade};
use rust_decimal::Decimal;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const LEADER_KEY: &str =
    "fcLEADERapiKEYz9Y8x7W6v5U4t3S2r1Q0p9O8n7M6l5K4j3I2h1G0f9E8d7C6b5";
pub(crate) const LEADER_SECRET: &str =
    "fcLEADERsecretA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5";
const RISKY_KEY: &str = "fcRISKYleaderKEY0000000000000000000000000000000000000000000000000";

fn venue() -> TestVenue {
    let risky = VenueAccount {
        withdrawals: true,
        ..VenueAccount::hmac(RISKY_KEY, LEADER_SECRET.as_bytes())
    };
    TestVenue::start(
        "127.0.0.1:0",
        TestVenueOptions {
            accounts: vec![
                VenueAccount::hmac(LEADER_KEY, LEADER_SECRET.as_bytes()),
                risky,
            ],
            symbols: Vec::new(),
        },
    )
    .expect("test venue")
}

/// A master key, and a vault holding `key` (with `LEADER_SECRET`) under
/// `name`, in `dir`.
pub(crate) fn vault_with(dir: &Path, venue: &TestVenue, name: &str, api_key: &str, no_check: bool) {
    keys_add(
        dir,
        &venue.rest_url(),
        name,
        api_key,
        LEADER_SECRET,
        no_check,
    );
}

/// `fillcast keys add`: `api_key` and `secret` under `name` in `dir`'s vault,
/// checked at `rest_url` unless `no_check`; the master key made first if
/// `dir` has none.
pub(crate) fn keys_add(
    dir: &Path,
    rest_url: &str,
    name: &str,
    api_key: &str,
    secret: &str,
    no_check: bool,
) {
    let master = dir.join("master.key");
    if !master.exists() {
        let o = fillcast_cmd()
            .args(["keys", "init-master"])
            .arg(&master)
            .output()
            .unwrap();
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let mut c = fillcast_cmd();
    c.args(["keys", "--vault"])
        .arg(dir.join("keys.vault"))
        .args(["add", name, "--api-url", rest_url])
        .env("FILLCAST_VAULT_KEY_FILE", &master)
        .env_remove("FILLCAST_VAULT_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if no_check {
        c.arg("--no-check");
    }
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{api_key}\n{secret}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "keys add {name}: {:?}", text(&o));
}

/// A `[[sources]]` table of kind `binance`: the leader `L1` with the vault's
/// key `key_name`, at the venue's `rest` and `stream` URLs.
pub(crate) fn binance_source(key_name: &str, rest: &str, stream: &str) -> String {
    format!(
        r#"[[sources]]
kind = "binance"
leaders = {{ L1 = "{key_name}" }}
vault = "keys.vault"
rest_url = "{rest}"
api_url = "{rest}"
stream_url = "{stream}"
"#
    )
}

/// A `[[venues]]` table `binance` of kind `binance`: `accounts` (TOML pairs,
/// `F0 = "key name", ...`) from the vault, at the venue's `ws` and `rest` URLs.
pub(crate) fn binance_venue(accounts: &str, ws: &str, rest: &str) -> String {
    format!(
        r#"[[venues]]
name = "binance"
kind = "binance"
[venues.binance]
vault = "keys.vault"
accounts = {{ {accounts} }}
ws_api_url = "{ws}"
rest_url = "{rest}"
api_url = "{rest}"
"#
    )
}

/// `followers` followers, `F0` on, each copying `L1` one for one.
pub(crate) fn followers_copying(followers: usize) -> String {
    (0..followers)
        .map(|f| {
            format!(
                "[[followers]]\nid = \"F{f}\"\nequity = \"100000\"\n\
                 [[subscriptions]]\nid = \"F{f}:L1\"\nfollower = \"F{f}\"\nleader = \"L1\"\n\
                 allocation = \"10000\"\nmode = \"fixed_ratio\"\nratio = \"1\"\nslippage_bps = 20\n"
            )
        })
        .collect()
}

/// `dir`'s `fills.jsonl`: fills of `L1` in BTCUSDT at 42088.0, a nanosecond
/// apart, each (event id, `buy` or `sell`, quantity).
pub(crate) fn write_fills<'a>(
    dir: &Path,
    fills: impl IntoIterator<Item = (String, &'a str, String)>,
) {
    let mut text = String::new();
    for (n, (event_id, side, qty)) in fills.into_iter().enumerate() {
        text.push_str(&format!(
            "{{\"leader\":\"L1\",\"event_id\":\"{event_id}\",\"symbol\":\"BTCUSDT\",\"side\":\"{side}\",\"qty\":\"{qty}\",\"price\":\"42088.0\",\"ts\":{}}}\n",
            1_732_060_800_000_000_000u64 + n as u64
        ));
    }
    std::fs::write(dir.join("fills.jsonl"), text).unwrap();
}

/// `dir`'s `c.toml`: the journal, `extra` (TOML), the venue `binance` with
/// `accounts` (see `binance_venue`), BTCUSDT on it (lot 0.001, tick 0.1, least
/// notional 5), the leader `L1` from `source` (a `[[sources]]` table), and
/// `followers` followers copying it.
pub(crate) fn binance_config(
    dir: &Path,
    venue: &TestVenue,
    accounts: &str,
    extra: &str,
    source: &str,
    followers: usize,
) -> PathBuf {
    let c = format!(
        r#"[journal]
dir = "journal"
segment_mib = 8

{extra}

{venue}
[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
min_notional = "5"
venue = "binance"

[[leaders]]
id = "L1"
equity = "1000000"

{source}
{followers}"#,
        venue = binance_venue(accounts, &venue.ws_api_url(), &venue.rest_url()),
        followers = followers_copying(followers),
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, c).unwrap();
    path
}

fn config(dir: &Path, venue: &TestVenue, key_name: &str) -> PathBuf {
    let c = format!(
        r#"[journal]
dir = "journal"
segment_mib = 8

[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[leaders]]
id = "L1"
equity = "1000000"

{source}{followers}"#,
        source = binance_source(key_name, &venue.rest_url(), &venue.stream_url()),
        followers = followers_copying(3),
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, c).unwrap();
    path
}

/// `fillcast run --config cfg` to the end of its sources, the vault's master
/// key from `dir`.
pub(crate) fn run(dir: &Path, cfg: &Path) -> Command {
    let mut c = fillcast_cmd();
    c.args(["run", "--progress", "0", "--config"])
        .arg(cfg)
        .env("FILLCAST_VAULT_KEY_FILE", dir.join("master.key"))
        .env_remove("FILLCAST_VAULT_KEY");
    c
}

/// `run`, kept going until stopped, its output piped.
pub(crate) fn start(dir: &Path, cfg: &Path) -> Child {
    run(dir, cfg)
        .arg("--until-stopped")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the engine")
}

/// Until `ok()`, or fail after `what` took more than 30 s (a failure bound on
/// a shared machine, not a timing).
pub(crate) fn wait_for(what: &str, ok: impl FnMut() -> bool) {
    wait_up_to(what, Duration::from_secs(30), ok);
}

/// Until `ok()`, or fail after `what` took more than `limit` (a failure bound
/// on a shared machine, not a timing).
pub(crate) fn wait_up_to(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The engine's count of leader fills taken, from `ctl status --json`.
fn leader_fills(cfg: &Path) -> u64 {
    status_figure(cfg, "leader_fills")
}

/// A whole-number figure of `ctl status --json` (0 while the engine is not
/// answering yet).
pub(crate) fn status_figure(cfg: &Path, key: &str) -> u64 {
    let o = fillcast_cmd()
        .args(["ctl", "--json", "--config"])
        .arg(cfg)
        .arg("status")
        .output()
        .unwrap();
    let (out, _) = text(&o);
    out.split(&format!("\"{key}\":"))
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `ctl shutdown`, then the engine's exit: its (stdout, stderr).
pub(crate) fn shutdown(engine: Child, cfg: &Path) -> (String, String) {
    let o = fillcast_cmd()
        .args(["ctl", "--config"])
        .arg(cfg)
        .arg("shutdown")
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let out = engine.wait_with_output().expect("engine ends");
    text(&out)
}

/// `s` as a decimal (test literals only).
pub(crate) fn dec(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

fn partial(qty: Decimal) -> VenueTrade {
    VenueTrade {
        symbol: "BTCUSDT".into(),
        side: Side::Buy,
        qty,
        price: dec("42088.0"),
        order_id: 336829446,
        order_qty: dec("0.100"),
        client_order_id: "leader-order-1".into(),
    }
}

#[test]
fn a_leader_order_filled_in_partials_and_trades_made_while_the_stream_was_down_all_arrive_once() {
    let d = tmp();
    let dir = d.path();
    let venue = venue();
    vault_with(dir, &venue, "leader1", LEADER_KEY, false);
    let cfg = config(dir, &venue, "leader1");
    let engine = start(dir, &cfg);
    wait_for("the leader's stream", || venue.streams() == 1);
    // 12 partials on the stream, then 8 while it is down (only in userTrades).
    for _ in 0..12 {
        venue.trade(LEADER_KEY, &partial(dec("0.005")));
    }
    wait_for("12 leader fills", || leader_fills(&cfg) >= 12);
    venue.drop_streams();
    for _ in 0..8 {
        venue.trade(LEADER_KEY, &partial(dec("0.005")));
    }
    wait_for("the stream again", || venue.streams() == 1);
    wait_for("20 leader fills", || leader_fills(&cfg) >= 20);
    let (out, err) = shutdown(engine, &cfg);
    assert!(out.contains("leader fills in"), "{out}\n{err}");
    assert_eq!(figure(&out, "leader fills in"), 20, "{out}\n{err}");
    for s in [LEADER_KEY, LEADER_SECRET] {
        assert!(
            !out.contains(s) && !err.contains(s),
            "key material in the output"
        );
    }
    assert!(
        venue.requests("/fapi/v1/userTrades") >= 2,
        "the gap was asked for"
    );
}

#[test]
fn a_leader_key_that_can_withdraw_stops_the_start_naming_it() {
    let d = tmp();
    let dir = d.path();
    let venue = venue();
    // Stored unchecked (no network at `add`): the start asks and refuses it.
    vault_with(dir, &venue, "risky", RISKY_KEY, true);
    let cfg = config(dir, &venue, "risky");
    let o = start(dir, &cfg).wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}{err}");
    assert!(
        err.contains("leader `L1`: key `risky` refused") && err.contains("can withdraw"),
        "{err}"
    );
    assert!(!err.contains(RISKY_KEY) && !err.contains(LEADER_SECRET));
    assert_eq!(venue.streams(), 0, "no stream was opened");
    assert!(!dir.join("journal").exists() || venue.requests("/fapi/v1/listenKey") == 0);
}

/// `check_permissions = false` (for a testnet without `apiRestrictions`): the
/// same key starts, and the start says loudly that it was not checked.
#[test]
fn a_key_not_checked_by_configuration_starts_and_says_so() {
    let d = tmp();
    let dir = d.path();
    let venue = venue();
    vault_with(dir, &venue, "risky", RISKY_KEY, true);
    let cfg = config(dir, &venue, "risky");
    let c = std::fs::read_to_string(&cfg).unwrap();
    let c = c.replacen(
        "stream_url = ",
        "check_permissions = false\nstream_url = ",
        1,
    );
    std::fs::write(&cfg, c).unwrap();
    let engine = start(dir, &cfg);
    wait_for("the leader's stream", || venue.streams() == 1);
    let (out, err) = shutdown(engine, &cfg);
    assert!(
        err.contains("leader `L1`: key `risky` NOT checked")
            && err.contains("check_permissions = false"),
        "{out}\n{err}"
    );
    assert_eq!(venue.requests("/sapi/v1/account/apiRestrictions"), 0);
    assert!(!err.contains(RISKY_KEY) && !out.contains(RISKY_KEY));
}

const FOLLOWER_KEYS: [&str; 3] = [
    "fcFOLLOWERkeyZERO000000000000000000000000000000000000000000000000",
    "fcFOLLOWERkeyONE0000000000000000000000000000000000000000000000000",
    "fcFOLLOWERkeyTWO0000000000000000000000000000000000000000000000000",
];

/// A venue that trades BTCUSDT at 42088.0 for the three followers' keys.
fn order_venue() -> TestVenue {
    let v = TestVenue::start(
        "127.0.0.1:0",
        TestVenueOptions::btcusdt(
            FOLLOWER_KEYS
                .iter()
                .map(|k| VenueAccount::hmac(*k, LEADER_SECRET.as_bytes()))
                .collect(),
        ),
    )
    .expect("test venue");
    v.set_price("BTCUSDT", dec("42088.0"));
    v
}

#[test]
fn follower_orders_go_to_the_binance_venue_signed_with_each_followers_key_and_come_back_flat() {
    let d = tmp();
    let dir = d.path();
    let venue = order_venue();
    for (i, key) in FOLLOWER_KEYS.iter().enumerate() {
        vault_with(dir, &venue, &format!("follower{i}"), key, false);
    }
    write_fills(
        dir,
        [("buy", "0.060"), ("buy", "0.040"), ("sell", "0.100")]
            .iter()
            .enumerate()
            .map(|(n, (side, qty))| (format!("e{n}"), *side, qty.to_string())),
    );
    let cfg = binance_config(
        dir,
        &venue,
        r#"F0 = "follower0", F1 = "follower1", F2 = "follower2""#,
        "",
        "[[sources]]\nkind = \"file\"\npath = \"fills.jsonl\"\n",
        3,
    );
    let o = run(dir, &cfg).output().expect("run");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(figure(&out, "leader fills in"), 3, "{out}");
    assert_eq!(figure(&out, "follower orders out"), 9, "{out}\n{err}");
    for key in FOLLOWER_KEYS {
        assert_eq!(venue.position(key, "BTCUSDT"), Decimal::ZERO, "{out}");
        assert!(
            !out.contains(key) && !err.contains(key),
            "key material in the output"
        );
    }
    assert!(!out.contains(LEADER_SECRET) && !err.contains(LEADER_SECRET));
    assert_eq!(venue.too_many_requests(), 0);
    // Every order was acknowledged and filled at the venue (RESULT replies).
    assert_eq!(figure(&out, "venue reports in"), 18, "{out}");
    assert!(out.contains("fills 9, rejects 0"), "{out}");

    // The whole session's products: the journal into SQLite, the reports; then
    // every byte the run produced is searched for the key material.
    let db = format!("sqlite:{}", dir.join("fc.db").display());
    let mut outputs = vec![o.stdout, o.stderr];
    outputs.extend(sidecar_and_report(dir, &db));
    assert!(dir.join("report.html").is_file() && dir.join("fc.db").is_file());
    let files = files_under(dir);
    assert!(
        files.len() >= 5,
        "the journal, the database, the reports, the vault"
    );
    outputs.extend(files.iter().map(|p| std::fs::read(p).unwrap()));
    let secrets: Vec<&str> = FOLLOWER_KEYS
        .iter()
        .copied()
        .chain([LEADER_SECRET])
        .collect();
    assert_none_holds(&outputs, &secrets, "what the session produced");
}

/// `fillcast sidecar` (the journal in `dir` into `db`), then `fillcast
/// report` (`report.json` and `report.html` in `dir`): what each printed,
/// stdout then stderr.
pub(crate) fn sidecar_and_report(dir: &Path, db: &str) -> Vec<Vec<u8>> {
    let mut outputs = Vec::new();
    for args in [
        vec![
            "sidecar".to_string(),
            "--journal".into(),
            dir.join("journal").display().to_string(),
            "--db".into(),
            db.to_string(),
            "--progress".into(),
            "0".into(),
        ],
        vec![
            "report".into(),
            "--db".into(),
            db.to_string(),
            "--json".into(),
            dir.join("report.json").display().to_string(),
            "--html".into(),
            dir.join("report.html").display().to_string(),
        ],
    ] {
        let o = fillcast_cmd().args(&args).output().expect("sidecar/report");
        assert!(o.status.success(), "{args:?}: {:?}", text(&o));
        outputs.extend([o.stdout, o.stderr]);
    }
    outputs
}

/// Every file under `dir`, at any depth.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut left = vec![dir.to_path_buf()];
    while let Some(p) = left.pop() {
        if p.is_dir() {
            left.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push(p);
        }
    }
    files
}

/// Fails, naming `what`, if any of `outputs` holds any of `secrets`.
pub(crate) fn assert_none_holds(outputs: &[Vec<u8>], secrets: &[&str], what: &str) {
    for bytes in outputs {
        for s in secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "key material in {what}"
            );
        }
    }
}

#[test]
fn a_symbol_whose_lot_is_not_the_venues_step_stops_the_start_naming_both() {
    let d = tmp();
    let dir = d.path();
    let venue = order_venue();
    vault_with(dir, &venue, "follower0", FOLLOWER_KEYS[0], false);
    std::fs::write(dir.join("fills.jsonl"), "").unwrap();
    let c = format!(
        r#"{venue}
[[symbols]]
name = "BTCUSDT"
lot_size = "0.01"
tick_size = "0.1"
venue = "binance"

[[leaders]]
id = "L1"
equity = "1000000"

[[followers]]
id = "F0"
equity = "100000"

[[subscriptions]]
follower = "F0"
leader = "L1"
allocation = "10000"
mode = "fixed_ratio"
ratio = "1"

[[sources]]
kind = "file"
path = "fills.jsonl"
"#,
        venue = binance_venue(
            r#"F0 = "follower0""#,
            &venue.ws_api_url(),
            &venue.rest_url()
        ),
    );
    std::fs::write(dir.join("c.toml"), c).unwrap();
    let o = run(dir, &dir.join("c.toml")).output().expect("run");
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}{err}");
    assert!(
        err.contains("BTCUSDT")
            && err.contains("`lot_size` is 0.01")
            && err.contains("stepSize is 0.001"),
        "{err}"
    );
    assert_eq!(
        venue.ws_api_connections(),
        0,
        "no order connection was made"
    );
}
