//! The Binance gateway's throughput under the venue's per-account limits: every
//! account is handed more orders than its limits allow (300 per 10 s, 1,200 per
//! minute) as fast as the gateway takes them, against the test venue, which
//! enforces those limits with the documented errors. The baseline, measured in
//! the same run, is what the limits allow in the time the run took (the most
//! any client could send); the ratio says how much of it the gateway's pacing
//! uses, and the venue's count of 429s says whether it ever overstepped.
//! docs/BENCHMARKS.md ("Binance gateway") quotes it.
//!
//! ```text
//! cargo run --release -p fillcast-gateways --example binance_throughput [accounts] [seconds]
//! ```

use fillcast_engine::clock;
use fillcast_engine::config;
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType};
use fillcast_engine::model::{FollowerIdx, Side, SubIdx, SymbolIdx, SymbolSpec, Universe};
use fillcast_engine::port::Gateway;
use fillcast_engine::units::{Lots, Ticks};
use fillcast_gateways::binance::gateway::{BinanceGateway, BinanceGatewayConfig, FollowerAccount};
use fillcast_gateways::binance::sign::Signer;
use fillcast_gateways::binance::venue::{TestVenue, TestVenueOptions, VenueAccount};
use fillcast_gateways::binance::wsapi::{Auth, Encoder, Envelope, PlaceOrder, RespType};
use hdrhistogram::Histogram;
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";

/// The venue's order limits per account: (orders, window).
const LIMITS: [(u64, Duration); 2] = [
    (300, Duration::from_secs(10)),
    (1_200, Duration::from_secs(60)),
];

/// The most orders one account may place in `elapsed` under `LIMITS`, sending
/// each as early as the limits let it (a greedy schedule over both windows).
fn allowed(elapsed: Duration) -> u64 {
    let mut sent: Vec<Duration> = Vec::new();
    let mut t = Duration::ZERO;
    loop {
        // The earliest moment from `t` at which every window has room.
        let mut at = t;
        for (max, window) in LIMITS {
            let n = sent.len() as u64;
            if n >= max {
                at = at.max(sent[(n - max) as usize] + window);
            }
        }
        if at > elapsed {
            return sent.len() as u64;
        }
        sent.push(at);
        t = at;
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let accounts: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(20);
    let seconds: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(30);
    let key = |a: usize| format!("throughputProbeKey{a:04}{}", "k".repeat(40));

    let venue = TestVenue::start(
        "127.0.0.1:0",
        TestVenueOptions::btcusdt(
            (0..=accounts)
                .map(|a| VenueAccount::hmac(key(a), SECRET))
                .collect(),
        ),
    )
    .expect("test venue");
    venue.set_price("BTCUSDT", "42088.0".parse().unwrap());

    let mut model = String::from(
        "[[venues]]\nname = \"bn\"\nkind = \"sim\"\n\
         [[symbols]]\nname = \"BTCUSDT\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nvenue = \"bn\"\n\
         [[leaders]]\nid = \"L1\"\nequity = \"100000\"\n",
    );
    for a in 0..accounts {
        model.push_str(&format!(
            "[[followers]]\nid = \"F{a}\"\nequity = \"100000\"\n"
        ));
    }
    let cfg = config::load_str(&model, Path::new("probe.toml")).expect("model");
    let universe = Arc::new(Universe::from_config(&cfg).expect("universe"));
    let gw_cfg = BinanceGatewayConfig::new("bn", &venue.ws_api_url(), &venue.rest_url());
    let follower_accounts = (0..accounts)
        .map(|a| FollowerAccount {
            follower: format!("F{a}"),
            api_key: SecretString::from(key(a)),
            signer: Signer::hmac(SECRET).expect("key"),
        })
        .collect();
    let mut gw =
        BinanceGateway::new(gw_cfg, follower_accounts, Arc::clone(&universe)).expect("gateway");
    assert!(
        gw.wait_up(Duration::from_secs(20)),
        "{:?}",
        gw.down_reason()
    );

    // Account `a`'s `n`th order: ids unique over the accounts.
    let nth_order = |a: usize, n: u64| order(a, ((a as u64) << 32) | n);
    let mut next = vec![0u64; accounts];
    let mut answered = vec![0u64; accounts];

    // 1. Round trips, one order at a time: through the gateway, and (the
    // baseline) the same signed request from a bare WebSocket client.
    const TRIPS: usize = 400;
    let mut via_gateway = histogram();
    for i in 0..TRIPS {
        let a = i % accounts;
        let o = nth_order(a, next[a]);
        next[a] += 1;
        let t = Instant::now();
        let mut done = false;
        gw.submit(std::slice::from_ref(&o), clock::now(), &mut |r| {
            done |= r.order_id == o.id && ends(r.kind)
        });
        while !done {
            gw.poll(clock::now(), &mut |r| {
                done |= r.order_id == o.id && ends(r.kind)
            });
        }
        via_gateway.record(nanos(t)).unwrap();
        answered[a] += 1;
    }
    // An account of its own: the gateway's limiter does not count these.
    let bare = bare_round_trips(&venue, universe.sym(SymbolIdx(0)), &key(accounts), 250);

    // The round trips leave the 10-second windows before the burst.
    std::thread::sleep(Duration::from_millis(10_500));

    // 2. and 3. Every account handed more than its limits allow, round robin,
    // as fast as the gateway takes them. The first 300 of each (the 10-second
    // limit's budget) go at once: how long the last of them takes to be
    // answered is the capacity of the gateway and the venue together.
    let per_account = allowed(Duration::from_secs(seconds)) + 100;
    let burst_orders = (300 * accounts) as u64;
    let first = next.clone();
    let mut submitted: HashMap<u64, Instant> = HashMap::new();
    let mut burst_done: Option<Duration> = None;
    let mut burst_answered = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut a = 0;
    let mut take = |r: ExecReport, submitted: &mut HashMap<u64, Instant>, answered: &mut [u64]| {
        if ends(r.kind) && submitted.remove(&r.order_id).is_some() {
            let acc = (r.order_id >> 32) as usize;
            answered[acc] += 1;
            if (r.order_id & 0xffff_ffff) < first[acc] + 300 {
                burst_answered += 1;
                if burst_answered == burst_orders {
                    burst_done = Some(start.elapsed());
                }
            }
        }
    };
    while Instant::now() < end {
        let mut progressed = false;
        if next[a] < per_account && gw.can_accept(1) {
            let o = nth_order(a, next[a]);
            next[a] += 1;
            submitted.insert(o.id, Instant::now());
            gw.submit(std::slice::from_ref(&o), clock::now(), &mut |r| {
                take(r, &mut submitted, &mut answered)
            });
            progressed = true;
        }
        a = (a + 1) % accounts;
        if gw.poll(clock::now(), &mut |r| {
            take(r, &mut submitted, &mut answered)
        }) > 0
        {
            progressed = true;
        }
        if !progressed {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = start.elapsed();
    let ideal = allowed(elapsed);
    let (lo, hi) = (
        answered.iter().min().copied().unwrap_or(0),
        answered.iter().max().copied().unwrap_or(0),
    );
    let pct = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    println!(
        "round trip, one order at a time: gateway ({TRIPS}) p50 {:.0} µs p99 {:.0} µs; bare client (250) p50 {:.0} µs p99 {:.0} µs; ratio of p50s {:.2}",
        pct(&via_gateway, 0.5),
        pct(&via_gateway, 0.99),
        pct(&bare, 0.5),
        pct(&bare, 0.99),
        via_gateway.value_at_quantile(0.5) as f64 / bare.value_at_quantile(0.5) as f64
    );
    match burst_done {
        Some(t) => println!(
            "burst: {burst_orders} orders ({accounts} accounts × 300) answered in {:.2} s: {:.0} orders/s through the gateway and the venue",
            t.as_secs_f64(),
            burst_orders as f64 / t.as_secs_f64()
        ),
        None => println!("burst: only {burst_answered} of {burst_orders} answered in the run"),
    }
    println!(
        "limits: {accounts} accounts, {:.1} s: {lo}..{hi} orders answered per account (the round trips' {} included); the limits allow {ideal} in that time: {:.1}%..{:.1}% of it",
        elapsed.as_secs_f64(),
        TRIPS / accounts,
        100.0 * lo as f64 / ideal as f64,
        100.0 * hi as f64 / ideal as f64
    );
    println!(
        "venue: 429/418 answered {}; handed over and not yet answered at the end {}",
        venue.too_many_requests(),
        submitted.len()
    );
}

/// Follower `a`'s order `id`: one lot of BTCUSDT, IOC, a buy above the
/// venue's price or a sell below it by the id's parity, so that it fills.
fn order(a: usize, id: u64) -> FollowerOrder {
    FollowerOrder {
        id,
        sub: SubIdx(0),
        follower: FollowerIdx(a as u32),
        symbol: SymbolIdx(0),
        side: if id.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        qty: Lots(1),
        order_type: OrderType::LimitIoc,
        limit: Ticks(if id.is_multiple_of(2) {
            421_000
        } else {
            420_700
        }),
        reduce_only: false,
        leader_event_key: id,
        ts: clock::now(),
        ..FollowerOrder::default()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 120_000_000_000, 3).expect("bounds")
}

fn nanos(t: Instant) -> u64 {
    (t.elapsed().as_nanos() as u64).max(1)
}

/// An order's last report.
fn ends(k: ExecKind) -> bool {
    matches!(
        k,
        ExecKind::Fill | ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired
    )
}

/// `trips` `order.place` round trips of one account's signed request (encoded
/// as the gateway encodes it, of `spec`) from a bare blocking WebSocket client.
fn bare_round_trips(
    venue: &TestVenue,
    spec: &SymbolSpec,
    api_key: &str,
    trips: usize,
) -> Histogram<u64> {
    let (mut ws, _) = tungstenite::connect(venue.ws_api_url()).expect("connect");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_nodelay(true).expect("nodelay");
    }
    let signer = Signer::hmac(SECRET).expect("key");
    let mut enc = Encoder::new();
    let mut buf = Vec::new();
    let mut h = histogram();
    for i in 0..trips as u64 {
        let o = order(0, (1u64 << 62) | i);
        let t = Instant::now();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let env = Envelope {
            id: i + 1,
            auth: Auth::Signed {
                api_key,
                signer: &signer,
            },
            timestamp_ms: now_ms,
            recv_window_ms: 5000,
        };
        enc.order_place(&mut buf, &env, &PlaceOrder::of(&o, spec, RespType::Result))
            .expect("an order");
        ws.send(tungstenite::Message::Text(
            String::from_utf8(buf.clone()).expect("text").into(),
        ))
        .expect("send");
        loop {
            if let tungstenite::Message::Text(_) = ws.read().expect("reply") {
                break;
            }
        }
        h.record(nanos(t)).unwrap();
    }
    h
}
