//! Issue 15's binary tests of what goes wrong at Binance: `fillcast run` with the
//! leader on the `binance` source and the followers on the `binance` venue, both
//! against the in-process test venue, which refuses orders by each documented
//! code, answers 503 with an unknown outcome, expires listen keys, and counts
//! every client order id it is sent. After each run the engine's follower
//! positions, rebuilt from its journal, are held against the venue's.

use crate::binance::{
    binance_config, binance_source, dec, run, shutdown, start, status_figure, vault_with, wait_for,
    write_fills, LEADER_KEY, LEADER_SECRET,
};
use crate::support::{text, tmp};
use fillcast_engine::event::{ExecKind, RejectReason};
use fillcast_engine::ids::client_order_id;
use fillcast_engine::model::{Side, SubIdx, SymbolIdx};
use fillcast_gateways::binance::venue::{
    TestVenue, TestVenueOptions, VenueAccount, VenueLimits, VenueRateLimit, VenueTrade,
};
use fillcast_gateways::binance::wsapi::Interval;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use fillcast_journal::replay::replay;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The followers' API keys at the venue, `F0` to `F7`.
fn follower_key(f: usize) -> String {
    format!("fcFAULTfollower{f}KEY{}", "x".repeat(44))
}

/// The leader's account and `followers` followers' accounts, all trading
/// BTCUSDT at 42088.0 (step 0.001, tick 0.1, min notional 5).
fn fault_venue(followers: usize) -> TestVenue {
    fault_venue_with(followers, VenueLimits::default())
}

/// `fault_venue` with other rate limits than Binance's.
fn fault_venue_with(followers: usize, limits: VenueLimits) -> TestVenue {
    let account = |api_key: String| VenueAccount::hmac(api_key, LEADER_SECRET.as_bytes());
    let v = TestVenue::start_with_limits(
        "127.0.0.1:0",
        TestVenueOptions::btcusdt(
            std::iter::once(account(LEADER_KEY.into()))
                .chain((0..followers).map(|f| account(follower_key(f))))
                .collect(),
        ),
        limits,
    )
    .expect("test venue");
    v.set_price("BTCUSDT", dec("42088.0"));
    v
}

/// The vault (the leader's key and each follower's) and a config with the
/// leader on `source` (a TOML `[[sources]]` table) and `followers` followers
/// copying it one for one on the venue, `extra` appended.
fn fault_config(
    dir: &Path,
    venue: &TestVenue,
    followers: usize,
    source: &str,
    extra: &str,
) -> std::path::PathBuf {
    vault_with(dir, venue, "leader", LEADER_KEY, false);
    let mut accounts = Vec::new();
    for f in 0..followers {
        vault_with(dir, venue, &format!("f{f}"), &follower_key(f), false);
        accounts.push(format!("F{f} = \"f{f}\""));
    }
    binance_config(dir, venue, &accounts.join(", "), extra, source, followers)
}

/// The leader on the venue's user data stream.
fn leader_source(venue: &TestVenue) -> String {
    binance_source("leader", &venue.rest_url(), &venue.stream_url())
}

/// A trade of the leader's on the venue: `qty` BTCUSDT at 42088.0.
fn leader_trade(venue: &TestVenue, order_id: u64, side: Side, qty: &str) {
    venue.trade(
        LEADER_KEY,
        &VenueTrade {
            symbol: "BTCUSDT".into(),
            side,
            qty: dec(qty),
            price: dec("42088.0"),
            order_id,
            order_qty: dec(qty),
            client_order_id: format!("leader-{order_id}"),
        },
    );
}

/// What the journal says of each follower's orders, in order: (client order
/// id, reduce-only), and the rejects' reasons by client order id.
struct Sent {
    orders: BTreeMap<String, Vec<(String, bool)>>,
    rejects: BTreeMap<String, Vec<RejectReason>>,
}

fn sent(journal: &Path) -> Sent {
    let reader = JournalReader::open(journal).expect("journal");
    let r = replay(journal).unwrap().expect("journal has records");
    let u = r.core.universe().clone();
    let mut s = Sent {
        orders: BTreeMap::new(),
        rejects: BTreeMap::new(),
    };
    for rec in reader.iter_from(1) {
        let rec = rec.expect("journal reads back whole");
        match decode(rec.kind, rec.schema, rec.payload) {
            Ok(Entry::Order(o) | Entry::OrderDecision(o, _)) => s
                .orders
                .entry(u.followers[o.follower.0 as usize].id.clone())
                .or_default()
                .push((client_order_id(o.id), o.reduce_only)),
            Ok(Entry::Exec(e)) if e.kind == ExecKind::Rejected => s
                .rejects
                .entry(client_order_id(e.order_id))
                .or_default()
                .push(e.reject),
            _ => {}
        }
    }
    s
}

/// Each follower's BTCUSDT position as the engine holds it, rebuilt from its
/// journal, beside the venue's: (engine, venue) by follower id.
fn positions(journal: &Path, venue: &TestVenue) -> BTreeMap<String, (Decimal, Decimal)> {
    let r = replay(journal).unwrap().expect("journal has records");
    let u = r.core.universe().clone();
    let sym = SymbolIdx(0);
    let mut out: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for (f, follower) in u.followers.iter().enumerate() {
        let key = follower_key(
            follower.id[1..]
                .parse()
                .expect("followers are F<n> in these tests"),
        );
        let lots: i64 = u
            .subs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.follower.0 as usize == f)
            .map(|(i, _)| r.core.position(SubIdx(i as u32), sym).0)
            .sum();
        out.insert(
            follower.id.clone(),
            (
                u.symbols[0].qty_decimal(fillcast_engine::units::Lots(lots)),
                venue.position(&key, "BTCUSDT"),
            ),
        );
    }
    out
}

/// Each documented refusal of an order, one follower each, at the real binary:
/// the margin codes mark the pair out of sync (as `insufficient_margin =
/// "out_of_sync"` asks; the engine's default is `reduce`), below-minimum skips,
/// -1021 goes again with the same client id, -4116 and a 503 of unknown outcome
/// are asked with `order.status` before anything is sent again, a 429 backs
/// off and goes again, and a refused reduce-only close is sent again and closes.
#[test]
fn each_documented_binance_refusal_takes_its_policy_and_no_order_executes_twice() {
    let d = tmp();
    let dir = d.path();
    const FOLLOWERS: usize = 8;
    let venue = fault_venue(FOLLOWERS);
    let cfg = fault_config(
        dir,
        &venue,
        FOLLOWERS,
        &leader_source(&venue),
        "[engine.resync]\ninsufficient_margin = \"out_of_sync\"\n",
    );
    let key = |f: usize| follower_key(f);
    venue.reject_next(&key(0), -2019, "Margin is insufficient.");
    venue.reject_next(&key(1), -2018, "Balance is insufficient.");
    venue.reject_next(
        &key(2),
        -4164,
        "Order's notional must be no smaller than 5 (unless you choose reduce only).",
    );
    venue.reject_next(
        &key(3),
        -1021,
        "Timestamp for this request is outside of the recvWindow.",
    );
    venue.reject_next(&key(4), -4116, "ClientOrderId is duplicated.");
    venue.unknown_outcome_next(&key(5));
    venue.reject_next(
        &key(7),
        -1015,
        "Too many new orders; current limit is 300 orders per TEN_SECONDS.",
    );

    let engine = start(dir, &cfg);
    wait_for("the leader's stream", || {
        venue.requests("/fapi/v1/listenKey") >= 1 && venue.streams() >= 1
    });
    // The open: each follower copies 0.060; F0, F1 (margin) and F2 (below the
    // minimum) stay flat, the others reach it whatever their first answer.
    leader_trade(&venue, 1, Side::Buy, "0.060");
    let opened = [3, 4, 5, 6, 7];
    wait_for("the opens that must fill", || {
        opened
            .iter()
            .all(|&f| venue.position(&key(f), "BTCUSDT") == dec("0.060"))
            && status_figure(&cfg, "live_orders") == 0
    });
    // The close: F6's reduce-only close is refused as if the venue's position
    // disagreed; the resync closes it anyway.
    venue.reject_next(&key(6), -2022, "ReduceOnly Order is rejected.");
    leader_trade(&venue, 2, Side::Sell, "0.060");
    wait_for("every follower flat", || {
        (0..FOLLOWERS).all(|f| venue.position(&key(f), "BTCUSDT").is_zero())
            && status_figure(&cfg, "live_orders") == 0
            && status_figure(&cfg, "leader_fills") == 2
    });
    let (out, err) = shutdown(engine, &cfg);
    assert!(out.contains("leader fills in"), "{out}\n{err}");

    let journal = dir.join("journal");
    let s = sent(&journal);
    let orders = |f: usize| s.orders.get(&format!("F{f}")).cloned().unwrap_or_default();
    let reasons = |id: &str| s.rejects.get(id).cloned().unwrap_or_default();
    // Margin and below-minimum: one order each, refused with its reason, not
    // sent again (the leader's close finds them flat: nothing to close).
    for (f, why) in [
        (0, RejectReason::InsufficientMargin),
        (1, RejectReason::InsufficientMargin),
        (2, RejectReason::BelowMin),
    ] {
        let o = orders(f);
        assert_eq!(o.len(), 1, "F{f}: {o:?}\n{out}\n{err}");
        assert_eq!(reasons(&o[0].0), vec![why], "F{f}");
        assert_eq!(venue.orders_with_client_id(&o[0].0), 1, "F{f}");
    }
    // -1021: the same client id once more after the clock was corrected; the
    // engine saw no reject.
    let o = orders(3);
    assert_eq!(o.len(), 2, "F3: {o:?}");
    assert_eq!(
        venue.orders_with_client_id(&o[0].0),
        2,
        "F3's open went twice"
    );
    assert!(reasons(&o[0].0).is_empty(), "F3: {:?}", reasons(&o[0].0));
    // -4116: asked, never received (-2013), so a transient reject and a fresh
    // id; the refused id was not sent again.
    let o = orders(4);
    assert_eq!(o.len(), 3, "F4: open, its retry, close: {o:?}");
    assert_eq!(reasons(&o[0].0), vec![RejectReason::Transient], "F4");
    assert_eq!(venue.orders_with_client_id(&o[0].0), 1, "F4");
    assert_ne!(o[0].0, o[1].0);
    // 503 of unknown outcome: asked, found filled, never sent again.
    let o = orders(5);
    assert_eq!(o.len(), 2, "F5: open, close: {o:?}");
    assert_eq!(venue.orders_with_client_id(&o[0].0), 1, "F5's open once");
    assert!(reasons(&o[0].0).is_empty(), "F5");
    // -2022 on the reduce-only close: refused, then closed by the resync.
    let o = orders(6);
    assert!(o.len() >= 3, "F6: open, refused close, its retry: {o:?}");
    assert!(o[1].1, "F6's close was reduce-only");
    assert_eq!(reasons(&o[1].0), vec![RejectReason::ReduceOnly], "F6");
    // 429 (-1015): the same id again after the backoff, not a reject.
    let o = orders(7);
    assert_eq!(o.len(), 2, "F7: open, close: {o:?}");
    assert_eq!(
        venue.orders_with_client_id(&o[0].0),
        2,
        "F7's open went twice"
    );
    assert!(reasons(&o[0].0).is_empty(), "F7");
    // No other id went twice.
    for (f, o) in &s.orders {
        for (id, _) in o {
            let n = venue.orders_with_client_id(id);
            let again = [&orders(3)[0].0, &orders(7)[0].0].contains(&id);
            assert_eq!(n, if again { 2 } else { 1 }, "{f} {id}");
        }
    }
    for (f, (engine, at_venue)) in positions(&journal, &venue) {
        assert_eq!(engine, at_venue, "{f}: engine vs venue");
    }
    assert_eq!(
        venue.too_many_requests(),
        0,
        "the venue never had to say 429"
    );
    assert!(out.contains("engine/venue position mismatches 0"), "{out}");
    // Each venue code is in the summary with its message.
    for line in [
        "refused 1× with HTTP 400, code -2019: Margin is insufficient.",
        "refused 1× with HTTP 400, code -2018: Balance is insufficient.",
        "refused 1× with HTTP 400, code -4164:",
        "refused 1× with HTTP 400, code -1021:",
        "refused 1× with HTTP 400, code -4116: ClientOrderId is duplicated.",
        "refused 1× with HTTP 503, code -1006:",
        "refused 1× with HTTP 429, code -1015:",
        "refused 1× with HTTP 400, code -2022: ReduceOnly Order is rejected.",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    assert!(out.contains("sent again after -1021 1"), "{out}");
    // Said loudly: each refusal is a reject in the summary, and the margin
    // refusals left their pairs out of sync.
    assert!(
        out.contains("rejects 5,") || out.contains("rejects 5 "),
        "{out}"
    );
    for f in ["F0", "F1"] {
        assert!(
            err.contains(&format!(
                "subscription {f}:L1 OUT OF SYNC in BTCUSDT (reject_insufficient_margin)"
            )),
            "{err}"
        );
    }
}

/// `burst` leader fills from a file, each copied one for one by the one
/// follower: the run's (stdout, stderr), after checking that every order went
/// once, filled, the venue never answered 429, and the positions agree.
fn burst_run(
    venue: &TestVenue,
    dir: &Path,
    burst: usize,
    venue_settings: &str,
) -> (String, String) {
    write_fills(
        dir,
        (0..burst).map(|n| {
            let side = if n % 2 == 0 { "buy" } else { "sell" };
            (format!("b{n}"), side, "0.002".to_string())
        }),
    );
    let cfg = fault_config(
        dir,
        venue,
        1,
        "[[sources]]\nkind = \"file\"\npath = \"fills.jsonl\"\n",
        "",
    );
    if !venue_settings.is_empty() {
        let c = std::fs::read_to_string(&cfg).unwrap().replace(
            "[venues.binance]\n",
            &format!("[venues.binance]\n{venue_settings}\n"),
        );
        std::fs::write(&cfg, c).unwrap();
    }
    let o = run(dir, &cfg).output().expect("run");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(
        crate::support::figure(&out, "follower orders out"),
        burst as u64,
        "{out}"
    );
    assert!(
        out.contains(&format!("fills {burst}, rejects 0")),
        "{out}\n{err}"
    );
    assert_eq!(venue.too_many_requests(), 0, "{out}\n{err}");
    assert!(
        out.contains(
            "engine/venue position mismatches 0 (venue `binance` states its positions only"
        ),
        "{out}"
    );
    let s = sent(&dir.join("journal"));
    let ids = &s.orders["F0"];
    assert_eq!(ids.len(), burst);
    assert!(ids
        .iter()
        .all(|(id, _)| venue.orders_with_client_id(id) == 1));
    for (f, (engine, at_venue)) in positions(&dir.join("journal"), venue) {
        assert_eq!(engine, at_venue, "{f}");
    }
    (out, err)
}

/// A burst of 330 orders for one account: the gateway holds the last 30 until
/// the venue's 10-second window lets them go, so the venue, which enforces the
/// documented limit, never answers 429 and every order fills.
#[test]
fn a_burst_past_300_orders_in_10_seconds_is_paced_and_the_venue_never_says_429() {
    let d = tmp();
    burst_run(&fault_venue(1), d.path(), 330, "");
}

/// A venue whose order limit is not Binance's default (40 orders in 2 s): with
/// `order_limits` set to it, 100 orders are paced under it and the venue never
/// answers 429 (with the default 300 per 10 s it would, from the 41st).
#[test]
fn order_limits_from_the_config_pace_a_venue_with_other_limits() {
    let d = tmp();
    let limits = VenueLimits {
        orders: vec![VenueRateLimit::new(Interval::Second, 2, 40)],
        ..VenueLimits::default()
    };
    burst_run(
        &fault_venue_with(1, limits),
        d.path(),
        100,
        "order_limits = [{ count = 40, window_ms = 2000 }]",
    );
}

/// The venue expires the leader's listen key: the source makes a new one and
/// reconnects, and the trades made meanwhile arrive once each.
#[test]
fn an_expired_listen_key_is_renewed_and_no_leader_fill_is_lost_or_doubled() {
    let d = tmp();
    let dir = d.path();
    let venue = fault_venue(1);
    let cfg = fault_config(dir, &venue, 1, &leader_source(&venue), "");
    let engine = start(dir, &cfg);
    wait_for("the leader's stream", || venue.streams() >= 1);
    for n in 0..5 {
        leader_trade(&venue, 10 + n, Side::Buy, "0.002");
    }
    wait_for("5 leader fills", || {
        status_figure(&cfg, "leader_fills") >= 5
    });
    let keys_before = venue.requests("/fapi/v1/listenKey");
    venue.expire_listen_keys();
    for n in 0..5 {
        leader_trade(&venue, 20 + n, Side::Sell, "0.002");
    }
    wait_for("a new listen key", || {
        venue.requests("/fapi/v1/listenKey") > keys_before && venue.streams() >= 1
    });
    wait_for("10 leader fills", || {
        status_figure(&cfg, "leader_fills") >= 10
    });
    wait_for("F0 flat", || {
        venue.position(&follower_key(0), "BTCUSDT").is_zero()
            && status_figure(&cfg, "live_orders") == 0
    });
    let (out, err) = shutdown(engine, &cfg);
    assert_eq!(
        crate::support::figure(&out, "leader fills in"),
        10,
        "{out}\n{err}"
    );
    assert!(
        err.contains("listen key") || err.contains("listenKey"),
        "the expiry is said: {err}"
    );
    for (f, (engine, at_venue)) in positions(&dir.join("journal"), &venue) {
        assert_eq!(engine, at_venue, "{f}");
    }
}

/// SIGKILL at three moments of a run whose followers trade at the test venue,
/// then a run to the end: no client order id reached the venue twice, every
/// leader fill was taken once, and the engine's positions are the venue's.
#[test]
fn sigkill_and_restart_mid_run_at_binance_sends_no_client_order_id_twice() {
    let d = tmp();
    let dir = d.path();
    const FILLS: usize = 150;
    const FOLLOWERS: usize = 3;
    let venue = fault_venue(FOLLOWERS);
    let mut position = 0i64;
    write_fills(
        dir,
        (0..FILLS).map(|n| {
            // A walk that opens, adds, reduces and flips, in whole lots.
            let lots = 1 + (n * 7 % 5) as i64;
            let buy = position <= 0 || n % 3 == 0;
            position += if buy { lots } else { -lots };
            let side = if buy { "buy" } else { "sell" };
            (format!("k{n}"), side, format!("0.00{lots}"))
        }),
    );
    let cfg = fault_config(
        dir,
        &venue,
        FOLLOWERS,
        "[[sources]]\nkind = \"file\"\npath = \"fills.jsonl\"\nrate_per_sec = 50\n",
        "",
    );
    let mut killed_mid_run = 0;
    for wait_ms in [700u64, 1100, 900] {
        let mut engine = run(dir, &cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the engine");
        std::thread::sleep(Duration::from_millis(wait_ms));
        if engine.try_wait().expect("wait").is_none() {
            killed_mid_run += 1;
        }
        let _ = engine.kill(); // SIGKILL
        let o = engine.wait_with_output().expect("engine exit");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(killed_mid_run >= 2, "the kills must land mid-run");
    let o = run(dir, &cfg).output().expect("the last run");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");

    let journal = dir.join("journal");
    let s = sent(&journal);
    let mut at_venue = 0;
    for (f, o) in &s.orders {
        for (id, _) in o {
            let n = venue.orders_with_client_id(id);
            assert!(n <= 1, "{f}: {id} reached the venue {n} times");
            at_venue += n;
        }
    }
    assert!(at_venue > FILLS, "orders reached the venue: {at_venue}");
    let r = replay(&journal).unwrap().expect("journal");
    assert_eq!(r.core.stats().leader_fills, FILLS as u64, "each fill once");
    assert_eq!(r.core.live_orders(), 0, "orders still unanswered");
    let p = positions(&journal, &venue);
    for (f, (engine, at_venue)) in &p {
        assert_eq!(engine, at_venue, "{f}: engine vs venue");
    }
    assert!(
        p.values().any(|(e, _)| !e.is_zero()),
        "the walk ends with positions open: {p:?}"
    );
    assert_eq!(venue.too_many_requests(), 0);
}
