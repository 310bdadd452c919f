//! A protocol-faithful Binance USD-M test venue (issue 15): the real venue
//! cannot be reached from the machines fillcast is tested on, so this one speaks
//! the documented shapes over real sockets, verifies every signature, enforces
//! the documented rate limits and answers with the documented errors. It drives
//! the tests and can serve a demo; the adapter talks to it exactly as to the
//! real venue, only the URLs differ.
//!
//! On one port:
//! - REST (HTTP, `tiny_http`): `GET /sapi/v1/account/apiRestrictions` and `GET
//!   /fapi/v1/userTrades` (signed), `GET /fapi/v1/exchangeInfo`, and
//!   `POST`/`PUT`/`DELETE /fapi/v1/listenKey` (API key only);
//! - the user data stream (`/private/ws/<listenKey>`): a trade of an account (a test's
//!   `trade`, or a fill of an order below) is pushed to the account's open
//!   streams as `ORDER_TRADE_UPDATE` and kept for `userTrades`; streams drop and
//!   listen keys expire (with `listenKeyExpired`) on demand;
//! - the WebSocket API (`/ws-fapi/v1`): `order.place` (LIMIT with GTC or IOC,
//!   MARKET), `order.status`, `session.logon`, `session.status` and
//!   `session.logout`, each reply `{id, status, result|error, rateLimits}`;
//! - the public market streams' `/market` route, mark prices only: a combined
//!   stream (`/market/stream?streams=btcusdt@markPrice@1s/...`, each message
//!   `{"stream":…,"data":…}`) or raw ones (`/market/ws/btcusdt@markPrice`),
//!   no key. A mark a test sets (`set_mark`) is pushed as `markPriceUpdate` to
//!   every connection subscribed to its symbol (`@markPrice` and
//!   `@markPrice@1s` alike), and the latest mark of each subscribed symbol
//!   when a connection opens; the venue does not repeat marks every second
//!   or three, as Binance does, so a test sees exactly the marks it set.
//!   Stream names are lower case, as Binance's: another name, or a stream
//!   this venue does not serve, is accepted and never pushed (Binance is as
//!   silent); more than 1,024 streams on one connection are refused (400,
//!   the venue's choice: Binance documents the limit, not the answer).
//!
//! The port belongs to one accept loop (`front`), which reads each
//! connection's request line without consuming it. A WebSocket API handshake is
//! served there on the raw socket, so that `drop_ws_api` can shut a connection
//! down from another thread (a stream upgraded by `tiny_http` cannot be); every
//! other connection is spliced to `tiny_http` on a loopback port.
//!
//! The market is deterministic: per symbol, the price levels a test sets
//! (`set_price`, `set_levels`), met in order by every order of either side, never
//! consumed. An order fills level by level while its limit allows; what is left
//! of an IOC or MARKET order expires, what is left of a GTC order rests (and
//! never fills later). Each fill is a trade: an id, the account's position, a
//! `userTrades` row and an `ORDER_TRADE_UPDATE`.
//!
//! Rate limits (`VenueLimits`, Binance's by default): `ORDERS` per account,
//! `REQUEST_WEIGHT` for the whole venue (Binance counts it per IP, and every
//! client of a test venue is one host), shared with REST as Binance says.
//! Counted in sliding windows: a gateway under them is under Binance's counts
//! however Binance aligns its windows. Over a limit the answer is 429 (-1015 for
//! orders, -1003 for weight) with `error.data.retryAfter`; `ban_after` such
//! answers within the weight window ban the venue's clients for `ban_ms` (418,
//! -1003). Every 429 and 418 the venue decides is counted
//! (`too_many_requests`), so that a test can show the gateway never caused one.
//!
//! Where the documentation is silent (docs/BINANCE-PROTOCOL.md says so), this
//! venue chooses, and says so where it does: the codes for requests that are
//! not JSON (Spot's -1135), for unknown methods (-1020), for a `session.logon`
//! with an HMAC key (-4056); `retryAfter` on a 429 (Spot's); the sliding windows;
//! the ban threshold; a reduce-only order larger than the position filling
//! only the position.
//!
//! Never does: margin, balances, leverage, fees, funding, hedge mode, cancels,
//! resting orders that fill later, or order books that move; REST requests are
//! counted against the weight but never refused for it.

use crate::binance::rest::SymbolFilters;
use crate::binance::sign::HmacKey;
use crate::binance::wsapi::Interval;
use base64::Engine as _;
use fillcast_engine::model::Side;
use rust_decimal::Decimal;
use simd_json::base::{TypedValue as _, ValueAsScalar as _, ValueIntoString as _};
use simd_json::ValueType;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The WebSocket API's path (`wss://ws-fapi.binance.com/ws-fapi/v1`).
pub const WS_API_PATH: &str = "/ws-fapi/v1";

/// The largest WebSocket API request read; a larger one is answered with an
/// error, unparsed. Requests are under 1 KiB; this bounds a hostile one's cost.
pub const WS_API_REQUEST_BYTES_MAX: usize = 16 * 1024;

/// The largest WebSocket message taken at all: a larger one closes its
/// connection (close code 1009), as a server must stop reading somewhere.
pub const WS_API_MESSAGE_BYTES_MAX: usize = 1024 * 1024;

/// The most WebSocket API connections open at once; more are refused (429,
/// Spot's -1034).
pub const WS_API_CONNECTIONS_MAX: usize = 256;

/// The most connections of any kind being served at once (each has a thread);
/// more are closed as they arrive.
pub const CONNECTIONS_MAX: usize = 1024;

/// The largest count a `VenueRateLimit` may have: the windows keep one entry
/// per counted request, so this bounds their memory.
pub const RATE_LIMIT_COUNT_MAX: u32 = 1 << 20;

/// The longest window a `VenueRateLimit` may have (Binance's longest is a day).
pub const RATE_LIMIT_WINDOW_MAX: Duration = Duration::from_secs(7 * 86_400);

/// The longest ban (Binance's bans escalate to 3 days).
pub const BAN_MS_MAX: u64 = 3 * 86_400_000;

/// How the venue checks an account's signatures.
#[derive(Clone)]
pub enum AccountKey {
    /// The shared HMAC secret.
    Hmac(Vec<u8>),
    /// The Ed25519 public key.
    Ed25519([u8; 32]),
}

/// One account of the test venue: its API key, how it signs, and what the key
/// may do (what `apiRestrictions` answers; an account without `futures` is
/// refused by the WebSocket API with -2015).
#[derive(Clone)]
pub struct VenueAccount {
    pub api_key: String,
    pub key: AccountKey,
    pub withdrawals: bool,
    pub futures: bool,
}

#[derive(Clone)]
pub struct TestVenueOptions {
    pub accounts: Vec<VenueAccount>,
    pub symbols: Vec<SymbolFilters>,
}

impl VenueAccount {
    /// A futures account that signs with the HMAC `secret` and may not
    /// withdraw: the key a follower or a leader is meant to have.
    pub fn hmac(api_key: impl Into<String>, secret: &[u8]) -> VenueAccount {
        VenueAccount {
            api_key: api_key.into(),
            key: AccountKey::Hmac(secret.to_vec()),
            withdrawals: false,
            futures: true,
        }
    }
}

impl TestVenueOptions {
    /// `accounts` trading one symbol, BTCUSDT: tick 0.1, step and least
    /// quantity 0.001, least notional 5 (the tests' and the probes' market).
    pub fn btcusdt(accounts: Vec<VenueAccount>) -> TestVenueOptions {
        TestVenueOptions {
            accounts,
            symbols: vec![SymbolFilters {
                symbol: "BTCUSDT".into(),
                tick_size: Some(Decimal::new(1, 1)),
                step_size: Some(Decimal::new(1, 3)),
                min_qty: Some(Decimal::new(1, 3)),
                min_notional: Some(Decimal::from(5)),
            }],
        }
    }
}

/// One rate limit as `rateLimits` reports it: at most `limit` per
/// `interval_num` × `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VenueRateLimit {
    pub interval: Interval,
    pub interval_num: u32,
    pub limit: u32,
}

impl VenueRateLimit {
    pub const fn new(interval: Interval, interval_num: u32, limit: u32) -> VenueRateLimit {
        VenueRateLimit {
            interval,
            interval_num,
            limit,
        }
    }

    fn window(&self) -> Duration {
        let unit_s = match self.interval {
            Interval::Second => 1,
            Interval::Minute => 60,
            Interval::Hour => 3_600,
            Interval::Day => 86_400,
        };
        Duration::from_secs(unit_s * u64::from(self.interval_num))
    }

    fn interval_name(&self) -> &'static str {
        match self.interval {
            Interval::Second => "SECOND",
            Interval::Minute => "MINUTE",
            Interval::Hour => "HOUR",
            Interval::Day => "DAY",
        }
    }
}

/// The limits the venue enforces (`TestVenue::start_with_limits`); Binance's
/// documented ones by default (docs/BINANCE-PROTOCOL.md, "Rate limits").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueLimits {
    /// `ORDERS`, per account: every `order.place` that is authenticated,
    /// well-formed and for a known symbol counts one against each, whatever
    /// its outcome (weight 0 against `request_weight`).
    pub orders: Vec<VenueRateLimit>,
    /// `REQUEST_WEIGHT` of all the venue's clients: a WebSocket API handshake
    /// 5, `order.status` 1, `session.*` 2, a request that cannot be read 1;
    /// REST `exchangeInfo` 1, `listenKey` 1, `userTrades` 5.
    pub request_weight: VenueRateLimit,
    /// After this many 429s within `request_weight`'s window the venue bans
    /// (418) for `ban_ms`; 0 never bans. Binance documents a ban for clients
    /// that keep going after 429s, not the threshold.
    pub ban_after: u32,
    /// How long a ban lasts: Binance's shortest, 2 minutes, by default.
    pub ban_ms: u64,
}

impl Default for VenueLimits {
    fn default() -> VenueLimits {
        VenueLimits {
            orders: vec![
                VenueRateLimit::new(Interval::Second, 10, 300),
                VenueRateLimit::new(Interval::Minute, 1, 1_200),
            ],
            request_weight: VenueRateLimit::new(Interval::Minute, 1, 2_400),
            ban_after: 5,
            ban_ms: 120_000,
        }
    }
}

/// A trade of an account, as a test makes one happen (`TestVenue::trade`).
#[derive(Clone, Debug)]
pub struct VenueTrade {
    pub symbol: String,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub order_id: u64,
    /// The order's whole quantity.
    pub order_qty: Decimal,
    pub client_order_id: String,
}

/// A running test venue; stops when dropped.
pub struct TestVenue {
    server: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    http_thread: Option<JoinHandle<()>>,
    front_thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl TestVenue {
    /// Serves on `listen` (`127.0.0.1:0` for any free port) with Binance's
    /// documented limits.
    pub fn start(listen: &str, opts: TestVenueOptions) -> io::Result<TestVenue> {
        TestVenue::start_with_limits(listen, opts, VenueLimits::default())
    }

    /// Serves on `listen` with `limits` (tests use small ones). A limit of 0
    /// or over `RATE_LIMIT_COUNT_MAX`, a window of 0 or over
    /// `RATE_LIMIT_WINDOW_MAX`, or a ban over `BAN_MS_MAX` is refused.
    pub fn start_with_limits(
        listen: &str,
        opts: TestVenueOptions,
        limits: VenueLimits,
    ) -> io::Result<TestVenue> {
        check_limits(&limits)?;
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let server = tiny_http::Server::http("127.0.0.1:0").map_err(io::Error::other)?;
        let internal = server.server_addr().to_ip().ok_or_else(|| {
            io::Error::other("the test venue's HTTP side listens on no IP address")
        })?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            opts,
            limits,
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        let http_thread = {
            let (server, shared) = (Arc::clone(&server), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("binance-test-venue".into())
                .spawn(move || http(&server, &shared))?
        };
        let front_thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("binance-test-front".into())
                .spawn(move || front(&listener, &shared, internal))
        };
        let front_thread = match front_thread {
            Ok(t) => t,
            Err(e) => {
                server.unblock();
                let _ = http_thread.join();
                return Err(e);
            }
        };
        Ok(TestVenue {
            server,
            shared,
            http_thread: Some(http_thread),
            front_thread: Some(front_thread),
            addr,
        })
    }

    /// The REST base URL (`http://127.0.0.1:PORT`), for both `/fapi` and `/sapi`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The user data stream's base URL (`ws://127.0.0.1:PORT/private`, as
    /// `wss://fstream.binance.com/private`); a stream is `/ws/<listenKey>`
    /// under it.
    pub fn stream_url(&self) -> String {
        format!("ws://{}/private", self.addr)
    }

    /// The WebSocket API's URL (`ws://127.0.0.1:PORT/ws-fapi/v1`).
    pub fn ws_api_url(&self) -> String {
        format!("ws://{}{WS_API_PATH}", self.addr)
    }

    /// Expires every account's listen key: open streams get `listenKeyExpired`
    /// and are closed, and the next keep-alive gets -1125.
    pub fn expire_listen_keys(&self) {
        let mut st = self.shared.state();
        for k in st.listen_keys.values_mut() {
            k.1 = true;
        }
        let now = now_ms();
        let streams = std::mem::take(&mut st.streams);
        for (api_key, tx) in streams {
            let key = st
                .listen_keys
                .get(&api_key)
                .map(|k| k.0.clone())
                .unwrap_or_default();
            let _ = tx.send(Push::Text(format!(
                r#"{{"e":"listenKeyExpired","E":"{now}","listenKey":"{key}"}}"#
            )));
            let _ = tx.send(Push::Close);
        }
    }

    /// Closes every user data stream, as a network drop would; trades made
    /// before a client connects again reach it only through `userTrades`.
    pub fn drop_streams(&self) {
        let mut st = self.shared.state();
        for (_, tx) in st.streams.drain(..) {
            let _ = tx.send(Push::Close);
        }
    }

    /// How many user data streams are open.
    pub fn streams(&self) -> usize {
        self.shared.state().streams.len()
    }

    /// The account of `api_key` trades: pushed to its open streams as an
    /// `ORDER_TRADE_UPDATE` (`x` TRADE) and kept for `userTrades`; its
    /// position moves. Returns the trade id.
    pub fn trade(&self, api_key: &str, t: &VenueTrade) -> u64 {
        let view = OrderView {
            order_type: "LIMIT",
            time_in_force: "GTC",
            price: t.price,
            avg_price: t.price,
            reduce_only: false,
        };
        self.shared.state().record_trade(api_key, t, &view)
    }

    /// How many requests for `path` the venue answered (`/ws` counts user data
    /// stream handshakes, `/ws-fapi/v1` WebSocket API handshakes).
    pub fn requests(&self, path: &str) -> u64 {
        self.shared.state().requests.get(path).copied().unwrap_or(0)
    }

    /// The market of `symbol` is one level at `price` with no end: every order
    /// whose limit allows it fills whole there.
    pub fn set_price(&self, symbol: &str, price: Decimal) {
        assert!(
            price > Decimal::ZERO && price <= PRICE_MAX,
            "a price above 0 and at most {PRICE_MAX}, got {price}"
        );
        self.shared
            .state()
            .markets
            .insert(symbol.to_string(), vec![Level { price, qty: None }]);
    }

    /// The market of `symbol` is `levels` of (price, quantity), met in order
    /// by every order of either side: an order fills at each while its limit
    /// allows, and what is left after the last expires (IOC, MARKET) or rests
    /// (GTC). Each order sees the same levels (they are not consumed).
    pub fn set_levels(&self, symbol: &str, levels: &[(Decimal, Decimal)]) {
        for (price, qty) in levels {
            assert!(
                *price > Decimal::ZERO && *price <= PRICE_MAX && *qty > Decimal::ZERO,
                "a level's price above 0 and at most {PRICE_MAX}, its quantity above 0, got {price} × {qty}"
            );
        }
        self.shared.state().markets.insert(
            symbol.to_string(),
            levels
                .iter()
                .map(|&(price, qty)| Level {
                    price,
                    qty: Some(qty),
                })
                .collect(),
        );
    }

    /// The next well-formed `order.place` of `api_key`'s account (authenticated,
    /// within the rate limits, its parameters readable) is answered with `code`
    /// and `msg` and not executed. The status is the one Binance pairs with the
    /// code: 429 for -1015 and -1003, 401 for -2015, -2014 and -1002, 503 for
    /// -1000, -1001, -1006 and -1007, 400 otherwise. Faults queue per account.
    pub fn reject_next(&self, api_key: &str, code: i32, msg: &str) {
        self.shared
            .state()
            .faults
            .entry(api_key.to_string())
            .or_default()
            .push_back(Fault::Reject {
                code,
                msg: msg.to_string(),
            });
    }

    /// The next well-formed `order.place` of `api_key`'s account is processed
    /// as usual (executed, if it passes the checks) but answered with status
    /// 503 and -1006 ("Execution status unknown"): the outcome only
    /// `order.status` can tell.
    pub fn unknown_outcome_next(&self, api_key: &str) {
        self.shared
            .state()
            .faults
            .entry(api_key.to_string())
            .or_default()
            .push_back(Fault::UnknownOutcome);
    }

    /// Shuts down every WebSocket API connection, as a network drop would
    /// (no close frame); requests in flight are lost unanswered.
    pub fn drop_ws_api(&self) {
        let conns = std::mem::take(&mut self.shared.state().ws_conns);
        for (_, tcp) in conns {
            let _ = tcp.shutdown(Shutdown::Both);
        }
    }

    /// How many WebSocket API connections are open.
    pub fn ws_api_connections(&self) -> usize {
        self.shared.state().ws_conns.len()
    }

    /// How many 429s and 418s the venue answered because a rate limit was
    /// broken or a ban was on (not those a test injected with `reject_next`).
    pub fn too_many_requests(&self) -> u64 {
        self.shared.state().too_many
    }

    /// How many `order.place` requests carried `newClientOrderId` = `id`,
    /// whatever their answer.
    pub fn orders_with_client_id(&self, id: &str) -> usize {
        self.shared.state().client_ids.get(id).copied().unwrap_or(0)
    }

    /// The mark price of `symbol` is `price`: pushed as a `markPriceUpdate` to
    /// every open market-stream connection subscribed to it, and to those that
    /// subscribe later, when they connect. `price` keeps up to 8 decimals, as
    /// Binance's marks do (they are not on the tick grid).
    pub fn set_mark(&self, symbol: &str, price: Decimal) {
        assert!(
            price > Decimal::ZERO && price <= PRICE_MAX && price.scale() <= MARK_DP,
            "a mark above 0, at most {PRICE_MAX}, with at most {MARK_DP} decimals, got {price}"
        );
        let mut st = self.shared.state();
        st.marks.insert(symbol.to_string(), price);
        let now = now_ms();
        st.mark_streams.retain(|m| {
            m.marks
                .iter()
                .filter(|(s, _)| s == symbol)
                .all(|(s, name)| {
                    m.tx.send(Push::Text(mark_message(m.combined, name, s, price, now)))
                        .is_ok()
                })
        });
    }

    /// Closes every market-stream connection, as a network drop would.
    pub fn drop_mark_streams(&self) {
        for m in self.shared.state().mark_streams.drain(..) {
            let _ = m.tx.send(Push::Close);
        }
    }

    /// The mark-price streams each market-stream connection is served, by
    /// name (`btcusdt@markPrice@1s`, in the order it asked for them), oldest
    /// connection first. A connection its client closed is listed until the
    /// venue next pushes to it (it notices then), as `streams` counts.
    pub fn mark_streams(&self) -> Vec<Vec<String>> {
        self.shared
            .state()
            .mark_streams
            .iter()
            .map(|m| m.marks.iter().map(|(_, name)| name.clone()).collect())
            .collect()
    }

    /// The account's position in `symbol` (one-way mode): its buys less its sells.
    pub fn position(&self, api_key: &str, symbol: &str) -> Decimal {
        self.shared
            .state()
            .positions
            .get(&(api_key.to_string(), symbol.to_string()))
            .copied()
            .unwrap_or_default()
    }
}

impl Drop for TestVenue {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees `stopping` before serving it.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.front_thread.take() {
            let _ = t.join();
        }
        for (_, tcp) in std::mem::take(&mut self.shared.state().ws_conns) {
            let _ = tcp.shutdown(Shutdown::Both);
        }
        self.server.unblock();
        if let Some(t) = self.http_thread.take() {
            let _ = t.join();
        }
    }
}

// -- State ------------------------------------------------------------------

/// A trade as the venue keeps it for `userTrades`.
struct Kept {
    api_key: String,
    id: u64,
    time_ms: i64,
    trade: VenueTrade,
}

/// A market-stream connection: its subscriptions and its thread.
struct MarkStream {
    /// (symbol as the venue lists it, the stream name subscribed) for each
    /// mark-price stream of a listed symbol; other names are not served.
    marks: Vec<(String, String)>,
    /// Combined (`/stream?streams=`): each message wrapped with its stream's name.
    combined: bool,
    tx: crossbeam_channel::Sender<Push>,
}

/// What a stream's thread is told to do.
enum Push {
    Text(String),
    Close,
}

/// One price level of a market: `qty` `None` has no end.
#[derive(Clone, Copy)]
struct Level {
    price: Decimal,
    qty: Option<Decimal>,
}

/// What a test asked to happen to an account's next order.
enum Fault {
    Reject { code: i32, msg: String },
    UnknownOutcome,
}

/// How an order is shown in its `ORDER_TRADE_UPDATE`.
struct OrderView {
    order_type: &'static str,
    time_in_force: &'static str,
    /// The limit price; 0 for a market order.
    price: Decimal,
    /// The average fill price so far, this fill included.
    avg_price: Decimal,
    reduce_only: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OrderKind {
    Limit,
    Market,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tif {
    Gtc,
    Ioc,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    New,
    PartiallyFilled,
    Filled,
    Expired,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::PartiallyFilled => "PARTIALLY_FILLED",
            Status::Filled => "FILLED",
            Status::Expired => "EXPIRED",
        }
    }

    fn is_open(self) -> bool {
        matches!(self, Status::New | Status::PartiallyFilled)
    }
}

/// An order the WebSocket API received, as `order.status` shows it.
#[derive(Clone)]
struct VenueOrder {
    api_key: String,
    order_id: u64,
    symbol: String,
    client_order_id: String,
    side: Side,
    kind: OrderKind,
    tif: Tif,
    /// The limit price; 0 for a market order.
    price: Decimal,
    orig_qty: Decimal,
    executed_qty: Decimal,
    cum_quote: Decimal,
    status: Status,
    reduce_only: bool,
    time_ms: i64,
    update_time_ms: i64,
}

impl VenueOrder {
    fn avg_price(&self) -> Decimal {
        if self.executed_qty.is_zero() {
            Decimal::ZERO
        } else {
            (self.cum_quote / self.executed_qty).round_dp(AVG_PRICE_DP)
        }
    }
}

/// Units counted in a sliding window: one entry per counted request.
#[derive(Default)]
struct Window {
    used: VecDeque<(Instant, u32)>,
}

impl Window {
    /// Forgets what left `window` (the longest this window is asked about).
    fn prune(&mut self, now: Instant, window: Duration) {
        while let Some(&(t, _)) = self.used.front() {
            if now.duration_since(t) < window {
                break;
            }
            self.used.pop_front();
        }
    }

    fn add(&mut self, now: Instant, units: u32, window: Duration) {
        self.prune(now, window);
        if units > 0 {
            self.used.push_back((now, units));
        }
    }

    /// The units counted in the last `window`.
    fn used(&self, now: Instant, window: Duration) -> u64 {
        self.used
            .iter()
            .rev()
            .take_while(|(t, _)| now.duration_since(*t) < window)
            .map(|&(_, n)| u64::from(n))
            .sum()
    }

    /// When `excess` of the units counted in the last `window` will have left it.
    fn free_at(&self, now: Instant, window: Duration, excess: u64) -> Instant {
        let mut freed = 0u64;
        for &(t, n) in &self.used {
            if now.duration_since(t) >= window {
                continue;
            }
            freed += u64::from(n);
            if freed >= excess {
                return t + window;
            }
        }
        now + window
    }
}

/// A request refused for rate: the answer and when to come back.
struct Throttled {
    status: u16,
    code: i32,
    msg: String,
    retry_after_ms: i64,
}

#[derive(Default)]
struct State {
    /// Per API key: its listen key and whether it has expired.
    listen_keys: HashMap<String, (String, bool)>,
    next_key: u64,
    /// Requests answered, by path, for tests that count what the adapter asked.
    requests: HashMap<String, u64>,
    /// Open user data streams: their account's API key and their thread.
    streams: Vec<(String, crossbeam_channel::Sender<Push>)>,
    /// Open market-stream connections.
    mark_streams: Vec<MarkStream>,
    /// Per symbol: the latest mark a test set.
    marks: HashMap<String, Decimal>,
    trades: Vec<Kept>,
    next_trade: u64,
    /// Per (account, order id): the quantity filled so far.
    filled: HashMap<(String, u64), Decimal>,
    /// Per (account, symbol): the position.
    positions: HashMap<(String, String), Decimal>,
    /// Per symbol: the levels orders fill at.
    markets: HashMap<String, Vec<Level>>,
    /// Every order the WebSocket API executed or rested, oldest first, kept
    /// for the venue's life as trades are: the `ORDERS` limits bound their
    /// growth (72,000 an hour per account at Binance's).
    orders: Vec<VenueOrder>,
    next_order: u64,
    /// `order.place` requests by `newClientOrderId`.
    client_ids: HashMap<String, usize>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Open WebSocket API connections: an id and the socket, to shut it down.
    ws_conns: Vec<(u64, TcpStream)>,
    next_conn: u64,
    weight: Window,
    /// Per account: its orders, for the `ORDERS` limits.
    order_rate: HashMap<String, Window>,
    /// The 429s within the weight window, for the ban.
    violations: VecDeque<Instant>,
    /// When a ban lifts (and as Unix milliseconds, for `retryAfter`).
    banned_until: Option<(Instant, i64)>,
    too_many: u64,
}

struct Shared {
    opts: TestVenueOptions,
    limits: VenueLimits,
    state: Mutex<State>,
    stopping: AtomicBool,
    /// Connections being served (each has a thread), at most `CONNECTIONS_MAX`.
    connections: AtomicUsize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("venue state")
    }

    fn account(&self, api_key: &str) -> Option<&VenueAccount> {
        self.opts.accounts.iter().find(|a| a.api_key == api_key)
    }

    fn symbol(&self, symbol: &str) -> Option<&SymbolFilters> {
        self.opts.symbols.iter().find(|s| s.symbol == symbol)
    }
}

/// Decimals an average price is rounded to (Binance's `avgPrice` is rounded too).
const AVG_PRICE_DP: u32 = 8;

/// Venue order ids start above any a test gives `trade`.
const ORDER_ID_BASE: u64 = 8_000_000_000;

/// The `exchangeInfo` bounds every symbol advertises, and enforces.
const PRICE_MIN: Decimal = Decimal::from_parts(1, 0, 0, false, 2);
const PRICE_MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const QTY_MAX: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);

/// Weights (docs/BINANCE-PROTOCOL.md and Binance's pages for each method).
const WEIGHT_HANDSHAKE: u32 = 5;
const WEIGHT_ORDER_PLACE: u32 = 0;
const WEIGHT_ORDER_STATUS: u32 = 1;
const WEIGHT_SESSION: u32 = 2;
const WEIGHT_UNREADABLE: u32 = 1;

impl State {
    /// Keeps a trade, pushes it to the account's open streams and moves the
    /// account's position. Returns the trade id.
    fn record_trade(&mut self, api_key: &str, t: &VenueTrade, view: &OrderView) -> u64 {
        self.next_trade += 1;
        let id = 1_000_000 + self.next_trade;
        let time = now_ms();
        let filled = self
            .filled
            .entry((api_key.to_string(), t.order_id))
            .or_default();
        *filled += t.qty;
        let status = if *filled >= t.order_qty {
            "FILLED"
        } else {
            "PARTIALLY_FILLED"
        };
        let text = format!(
            r#"{{"e":"ORDER_TRADE_UPDATE","E":{time},"T":{time},"o":{{"s":"{}","c":"{}","S":"{}","o":"{}","f":"{}","q":"{}","p":"{}","ap":"{}","sp":"0","x":"TRADE","X":"{status}","i":{},"l":"{}","z":"{}","L":"{}","N":"USDT","n":"0","T":{time},"t":{id},"m":false,"R":{},"ot":"{}","ps":"BOTH","rp":"0","V":"NONE","pm":"NONE","gtd":0}}}}"#,
            t.symbol,
            t.client_order_id,
            side_name(t.side),
            view.order_type,
            view.time_in_force,
            t.order_qty,
            view.price,
            view.avg_price,
            t.order_id,
            t.qty,
            filled,
            t.price,
            view.reduce_only,
            view.order_type,
        );
        self.streams
            .retain(|(k, tx)| k != api_key || tx.send(Push::Text(text.clone())).is_ok());
        let signed = match t.side {
            Side::Buy => t.qty,
            Side::Sell => -t.qty,
        };
        *self
            .positions
            .entry((api_key.to_string(), t.symbol.clone()))
            .or_default() += signed;
        self.trades.push(Kept {
            api_key: api_key.to_string(),
            id,
            time_ms: time,
            trade: t.clone(),
        });
        id
    }

    /// Counts `weight` against `REQUEST_WEIGHT`, or says why not (a ban, or
    /// the limit).
    fn admit_weight(
        &mut self,
        limits: &VenueLimits,
        weight: u32,
        now: Instant,
        now_ms: i64,
    ) -> Result<(), Throttled> {
        if let Some((until, until_ms)) = self.banned_until {
            if now < until {
                self.too_many += 1;
                return Err(Throttled {
                    status: 418,
                    code: -1003,
                    msg: format!(
                        "Way too many requests; IP banned until {until_ms}. Please use the websocket for live updates to avoid bans."
                    ),
                    retry_after_ms: until_ms,
                });
            }
            self.banned_until = None;
        }
        let limit = limits.request_weight;
        let window = limit.window();
        self.weight.prune(now, window);
        let used = self.weight.used(now, window);
        let wanted = used + u64::from(weight);
        // Weight 0 (`order.place`) is not held to the weight: REST, which is
        // counted but never refused, may have pushed the count over.
        if weight > 0 && wanted > u64::from(limit.limit) {
            let free = self
                .weight
                .free_at(now, window, wanted - u64::from(limit.limit));
            let msg = format!(
                "Too many requests; current limit is {} requests per {}. Please use the websocket for live updates to avoid polling the API.",
                limit.limit,
                per(&limit)
            );
            return Err(self.throttle(limits, now, now_ms, -1003, msg, free));
        }
        self.weight.add(now, weight, window);
        Ok(())
    }

    /// Counts one order of `api_key` against each `ORDERS` limit, or says
    /// which one it would break.
    fn admit_order(
        &mut self,
        limits: &VenueLimits,
        api_key: &str,
        now: Instant,
        now_ms: i64,
    ) -> Result<(), Throttled> {
        let longest = limits
            .orders
            .iter()
            .map(VenueRateLimit::window)
            .max()
            .unwrap_or_default();
        let w = self.order_rate.entry(api_key.to_string()).or_default();
        w.prune(now, longest);
        let broken = limits.orders.iter().find_map(|l| {
            let used = w.used(now, l.window());
            (used >= u64::from(l.limit)).then(|| {
                (
                    *l,
                    w.free_at(now, l.window(), used + 1 - u64::from(l.limit)),
                )
            })
        });
        match broken {
            None => {
                w.add(now, 1, longest);
                Ok(())
            }
            Some((l, free)) => {
                let msg = format!(
                    "Too many new orders; current limit is {} orders per {}.",
                    l.limit,
                    per(&l)
                );
                Err(self.throttle(limits, now, now_ms, -1015, msg, free))
            }
        }
    }

    /// A 429: counted, and a ban once `ban_after` of them fall in the weight
    /// window.
    fn throttle(
        &mut self,
        limits: &VenueLimits,
        now: Instant,
        now_ms: i64,
        code: i32,
        msg: String,
        free: Instant,
    ) -> Throttled {
        self.too_many += 1;
        let window = limits.request_weight.window();
        while let Some(&t) = self.violations.front() {
            if now.duration_since(t) < window {
                break;
            }
            self.violations.pop_front();
        }
        self.violations.push_back(now);
        if limits.ban_after > 0 && self.violations.len() >= limits.ban_after as usize {
            let ban_ms = i64::try_from(limits.ban_ms).unwrap_or(i64::MAX);
            self.banned_until = Some((
                now + Duration::from_millis(limits.ban_ms),
                now_ms.saturating_add(ban_ms),
            ));
            self.violations.clear();
        }
        Throttled {
            status: 429,
            code,
            msg,
            retry_after_ms: now_ms.saturating_add(millis(free.duration_since(now))),
        }
    }

    /// `rateLimits`: the weight, and `orders_of`'s order counts when given.
    fn rate_limits_json(
        &self,
        limits: &VenueLimits,
        now: Instant,
        orders_of: Option<&str>,
    ) -> String {
        let mut out = String::from("[");
        let l = limits.request_weight;
        push_rate_limit(
            &mut out,
            "REQUEST_WEIGHT",
            &l,
            self.weight.used(now, l.window()),
        );
        if let Some(api_key) = orders_of {
            for l in &limits.orders {
                let used = self
                    .order_rate
                    .get(api_key)
                    .map_or(0, |w| w.used(now, l.window()));
                out.push(',');
                push_rate_limit(&mut out, "ORDERS", l, used);
            }
        }
        out.push(']');
        out
    }
}

fn push_rate_limit(out: &mut String, kind: &str, l: &VenueRateLimit, count: u64) {
    out.push_str(&format!(
        r#"{{"rateLimitType":"{kind}","interval":"{}","intervalNum":{},"limit":{},"count":{count}}}"#,
        l.interval_name(),
        l.interval_num,
        l.limit
    ));
}

/// A limit's window as its error message says it: "minute", "10 SECOND".
fn per(l: &VenueRateLimit) -> String {
    if l.interval == Interval::Minute && l.interval_num == 1 {
        "minute".to_string()
    } else {
        format!("{} {}", l.interval_num, l.interval_name())
    }
}

fn check_limits(limits: &VenueLimits) -> io::Result<()> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    let all = limits.orders.iter().chain([&limits.request_weight]);
    for l in all {
        let window_ok = l.interval_num > 0 && l.window() <= RATE_LIMIT_WINDOW_MAX;
        if l.limit == 0 || l.limit > RATE_LIMIT_COUNT_MAX || !window_ok {
            return invalid(format!(
                "test venue limit {} per {} {}: expected a limit of 1 to {RATE_LIMIT_COUNT_MAX} per 1 {} to {} s",
                l.limit,
                l.interval_num,
                l.interval_name(),
                l.interval_name(),
                RATE_LIMIT_WINDOW_MAX.as_secs()
            ));
        }
    }
    if limits.ban_ms > BAN_MS_MAX {
        return invalid(format!(
            "test venue ban of {} ms: expected at most {BAN_MS_MAX} ms (3 days)",
            limits.ban_ms
        ));
    }
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

// -- The port: one accept loop, WebSocket API here, the rest to tiny_http --

/// How long a new connection may take to send its request line (and a
/// WebSocket API client its handshake): a failure bound on a silent client.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest request line looked at; a longer one goes to `tiny_http`.
const REQUEST_LINE_BYTES_MAX: usize = 4096;

/// Frees a connection's place in `Shared::connections` when its thread ends.
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn front(listener: &TcpListener, shared: &Arc<Shared>, internal: SocketAddr) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else {
            // Out of descriptors, say: wait rather than spin.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if shared.connections.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let slot = ConnectionSlot(Arc::clone(shared));
        let _ = std::thread::Builder::new()
            .name("binance-test-conn".into())
            .spawn(move || {
                let shared = Arc::clone(&slot.0);
                route(&shared, stream, internal);
                drop(slot);
            });
    }
}

fn route(shared: &Arc<Shared>, stream: TcpStream, internal: SocketAddr) {
    let _ = stream.set_nodelay(true);
    match request_target(&stream) {
        Some(target) if target.starts_with("/ws-fapi/") => ws_api(shared, stream),
        Some(_) => proxy(stream, internal),
        None => {}
    }
}

/// The request target of the connection's first line, left unread. `None`
/// when the peer closes or stays silent for `HANDSHAKE_TIMEOUT`; empty when
/// the line is longer than `REQUEST_LINE_BYTES_MAX`.
fn request_target(stream: &TcpStream) -> Option<String> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).ok()?;
    let mut buf = [0u8; REQUEST_LINE_BYTES_MAX];
    let target = loop {
        let n = stream.peek(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]);
            break line.split(' ').nth(1).unwrap_or_default().to_string();
        }
        if n == buf.len() {
            break String::new();
        }
        if Instant::now() >= deadline {
            return None;
        }
        // Part of the line has come: peek returns at once until the rest does.
        std::thread::sleep(Duration::from_millis(1));
    };
    stream.set_read_timeout(None).ok()?;
    Some(target)
}

/// Splices a connection to `tiny_http` until either side closes.
fn proxy(client: TcpStream, internal: SocketAddr) {
    let Ok(upstream) = TcpStream::connect(internal) else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (Ok(mut from_client), Ok(mut to_upstream)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let up = std::thread::Builder::new()
        .name("binance-test-proxy".into())
        .spawn(move || {
            let _ = io::copy(&mut from_client, &mut to_upstream);
            let _ = to_upstream.shutdown(Shutdown::Write);
        });
    let (mut from_upstream, mut to_client) = (upstream, client);
    let _ = io::copy(&mut from_upstream, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Write);
    if let Ok(up) = up {
        let _ = up.join();
    }
}

/// `tiny_http`'s side: REST, the user data stream and the market streams.
fn http(server: &tiny_http::Server, shared: &Arc<Shared>) {
    for req in server.incoming_requests() {
        if req.url().starts_with(PRIVATE_WS) {
            stream(shared, req);
            continue;
        }
        if req.url().starts_with("/market/") {
            market_stream(shared, req);
            continue;
        }
        let (status, body) = answer(shared, &req);
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
            .expect("a static header");
        let _ = req.respond(
            tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(header),
        );
    }
}

// -- REST and the user data stream (tiny_http) ------------------------------

fn error(status: u16, code: i64, msg: &str) -> (u16, String) {
    (status, format!(r#"{{"code":{code},"msg":"{msg}"}}"#))
}

/// The weight of a REST request (Binance's pages; `/sapi` is another host's).
fn rest_weight(path: &str) -> u32 {
    match path {
        "/fapi/v1/exchangeInfo" | "/fapi/v1/listenKey" => 1,
        "/fapi/v1/userTrades" | "/fapi/v3/positionRisk" => 5,
        _ => 0,
    }
}

fn answer(shared: &Shared, req: &tiny_http::Request) -> (u16, String) {
    let url = req.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    {
        let mut st = shared.state();
        *st.requests.entry(path.to_string()).or_default() += 1;
        let window = shared.limits.request_weight.window();
        st.weight.add(Instant::now(), rest_weight(path), window);
    }
    let api_key = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("X-MBX-APIKEY"))
        .map(|h| h.value.as_str().to_string());
    let account = api_key.as_deref().and_then(|k| shared.account(k));
    let method = req.method().as_str();
    match (method, path) {
        ("GET", "/fapi/v1/exchangeInfo") => (200, exchange_info(&shared.opts.symbols)),
        ("GET", "/sapi/v1/account/apiRestrictions") => {
            let account = match signed(account, query) {
                Ok(account) => account,
                Err(e) => return e,
            };
            (
                200,
                format!(
                    r#"{{"ipRestrict":false,"createTime":1698645219000,"enableReading":true,"enableWithdrawals":{},"enableInternalTransfer":false,"enableMargin":false,"enableFutures":{},"permitsUniversalTransfer":false,"enableVanillaOptions":false,"enableSpotAndMarginTrading":false}}"#,
                    account.withdrawals, account.futures
                ),
            )
        }
        ("GET", "/fapi/v1/userTrades") => {
            let account = match signed(account, query) {
                Ok(account) => account,
                Err(e) => return e,
            };
            let st = shared.state();
            user_trades(&st, &account.api_key, query)
        }
        ("GET", "/fapi/v3/positionRisk") => {
            let account = match signed(account, query) {
                Ok(account) => account,
                Err(e) => return e,
            };
            let st = shared.state();
            // One-way mode: `BOTH`, only the symbols with a position (v3).
            let rows: Vec<String> = st
                .positions
                .iter()
                .filter(|((k, _), q)| *k == account.api_key && !q.is_zero())
                .map(|((_, symbol), q)| {
                    format!(
                        r#"{{"symbol":"{symbol}","positionSide":"BOTH","positionAmt":"{q}","entryPrice":"0","breakEvenPrice":"0","markPrice":"0","unRealizedProfit":"0","liquidationPrice":"0","isolatedMargin":"0","notional":"0","marginAsset":"USDT","isolatedWallet":"0","initialMargin":"0","maintMargin":"0","positionInitialMargin":"0","openOrderInitialMargin":"0","adl":0,"bidNotional":"0","askNotional":"0","updateTime":0}}"#
                    )
                })
                .collect();
            (200, format!("[{}]", rows.join(",")))
        }
        (_, "/fapi/v1/listenKey") => {
            let Some(account) = account else {
                return unknown_key();
            };
            let mut st = shared.state();
            match method {
                "POST" => {
                    let fresh = match st.listen_keys.get(&account.api_key) {
                        Some((k, false)) => k.clone(),
                        _ => {
                            st.next_key += 1;
                            format!("tv{:062}", st.next_key)
                        }
                    };
                    st.listen_keys
                        .insert(account.api_key.clone(), (fresh.clone(), false));
                    (200, format!(r#"{{"listenKey":"{fresh}"}}"#))
                }
                "PUT" => match st.listen_keys.get(&account.api_key) {
                    Some((_, false)) => (200, "{}".into()),
                    _ => error(400, -1125, "This listenKey does not exist."),
                },
                "DELETE" => {
                    st.listen_keys.remove(&account.api_key);
                    (200, "{}".into())
                }
                _ => error(
                    405,
                    -1000,
                    "An unknown error occured while processing the request.",
                ),
            }
        }
        _ => error(
            404,
            -1000,
            "An unknown error occured while processing the request.",
        ),
    }
}

/// The answer to a request whose API key is no account's.
fn unknown_key() -> (u16, String) {
    error(
        401,
        -2015,
        "Invalid API-key, IP, or permissions for action.",
    )
}

/// The account of a signed request (`account`, from its API key), once its
/// signature is verified (`verify`).
fn signed<'a>(
    account: Option<&'a VenueAccount>,
    query: &str,
) -> Result<&'a VenueAccount, (u16, String)> {
    let account = account.ok_or_else(unknown_key)?;
    verify(account, query)?;
    Ok(account)
}

/// Checks a signed request's `timestamp`, `recvWindow` and `signature` (the
/// last parameter, over everything before it) as the documentation says.
fn verify(account: &VenueAccount, query: &str) -> Result<(), (u16, String)> {
    let Some((payload, sig)) = query.rsplit_once("&signature=") else {
        return Err(error(
            400,
            -1102,
            "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
        ));
    };
    let param = |name: &str| {
        payload
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let Some(ts) = param("timestamp").and_then(|t| t.parse::<i64>().ok()) else {
        return Err(error(
            400,
            -1102,
            "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
        ));
    };
    let window = param("recvWindow")
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap_or(RECV_WINDOW_DEFAULT_MS);
    if let Some(msg) = timestamp_error(ts, window, now_ms()) {
        return Err(error(400, -1021, msg));
    }
    // A query string carries base64's `+`, `/` and `=` percent-encoded.
    let sig = sig
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    if signature_ok(&account.key, payload.as_bytes(), &sig) {
        Ok(())
    } else {
        Err(error(
            400,
            -1022,
            "Signature for this request is not valid.",
        ))
    }
}

/// `recvWindow` when a request does not say (GI).
const RECV_WINDOW_DEFAULT_MS: i64 = 5000;

/// Why a signed request's `timestamp` is refused (-1021), if it is: accepted
/// when `timestamp < serverTime + 1000` and `serverTime - timestamp <=
/// recvWindow` (GI).
fn timestamp_error(ts: i64, recv_window_ms: i64, server_ms: i64) -> Option<&'static str> {
    if ts >= server_ms.saturating_add(1000) {
        Some("Timestamp for this request was 1000ms ahead of the server's time.")
    } else if server_ms.saturating_sub(ts) > recv_window_ms {
        Some("Timestamp for this request is outside of the recvWindow.")
    } else {
        None
    }
}

/// Whether `sig` signs `payload` with the account's key: lowercase or
/// uppercase hex HMAC-SHA256, or standard base64 Ed25519.
fn signature_ok(key: &AccountKey, payload: &[u8], sig: &str) -> bool {
    match key {
        AccountKey::Hmac(secret) => HmacKey::new(secret)
            .map(|k| k.sign(payload).as_str().eq_ignore_ascii_case(sig))
            .unwrap_or(false),
        AccountKey::Ed25519(public) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(sig);
            match (ed25519_dalek::VerifyingKey::from_bytes(public), bytes) {
                (Ok(vk), Ok(b)) => <[u8; 64]>::try_from(b.as_slice()).is_ok_and(|b| {
                    vk.verify_strict(payload, &ed25519_dalek::Signature::from_bytes(&b))
                        .is_ok()
                }),
                _ => false,
            }
        }
    }
}

/// `GET /fapi/v1/userTrades` for the account: `symbol` (required), then
/// `fromId`, `startTime`, `endTime` and `limit` (500, at most 1000) as the
/// documentation describes them, oldest first.
fn user_trades(st: &State, api_key: &str, query: &str) -> (u16, String) {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let Some(symbol) = param("symbol") else {
        return error(
            400,
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        );
    };
    let num = |name| param(name).and_then(|v| v.parse::<i64>().ok());
    let (from_id, start, end) = (num("fromId"), num("startTime"), num("endTime"));
    if from_id.is_some() && (start.is_some() || end.is_some()) {
        return error(400, -1128, "Combination of optional parameters invalid.");
    }
    let limit = num("limit").unwrap_or(500).clamp(1, 1000) as usize;
    let rows: Vec<String> = st
        .trades
        .iter()
        .filter(|k| k.api_key == api_key && k.trade.symbol == symbol)
        .filter(|k| from_id.is_none_or(|f| k.id as i64 >= f))
        .filter(|k| start.is_none_or(|t| k.time_ms >= t))
        .filter(|k| end.is_none_or(|t| k.time_ms <= t))
        .take(limit)
        .map(|k| {
            let t = &k.trade;
            format!(
                r#"{{"buyer":{},"commission":"0","commissionAsset":"USDT","id":{},"maker":false,"orderId":{},"price":"{}","qty":"{}","quoteQty":"{}","realizedPnl":"0","side":"{}","positionSide":"BOTH","symbol":"{}","time":{}}}"#,
                t.side == Side::Buy,
                k.id,
                t.order_id,
                t.price,
                t.qty,
                t.price * t.qty,
                side_name(t.side),
                t.symbol,
                k.time_ms
            )
        })
        .collect();
    (200, format!("[{}]", rows.join(",")))
}

/// Where user data streams are, as on Binance since 2026-04-23 (the `/private`
/// route; the root's `/ws/<listenKey>` is retired and answers 404 here too).
const PRIVATE_WS: &str = "/private/ws/";

/// A user data stream: `/private/ws/<listenKey>` upgraded to a WebSocket when the key
/// is an account's live one (else HTTP 400, -1125), then a thread that sends
/// it what the venue pushes until it is closed.
fn stream(shared: &Arc<Shared>, req: tiny_http::Request) {
    let key = req.url().trim_start_matches(PRIVATE_WS).to_string();
    let ws_key = ws_key(&req);
    let account = {
        let mut st = shared.state();
        *st.requests.entry("/ws".to_string()).or_default() += 1;
        st.listen_keys
            .iter()
            .find(|(_, (k, expired))| *k == key && !expired)
            .map(|(api, _)| api.clone())
    };
    let (Some(api_key), Some(ws_key)) = (account, ws_key) else {
        refuse(req, 400, -1125, "This listenKey does not exist.");
        return;
    };
    let raw = upgraded(req, &ws_key);
    let (tx, rx) = crossbeam_channel::unbounded();
    shared.state().streams.push((api_key, tx));
    push_thread("binance-test-stream", raw, rx);
}

/// The handshake's `Sec-WebSocket-Key`: none when `req` is no WebSocket's.
fn ws_key(req: &tiny_http::Request) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv("Sec-WebSocket-Key"))
        .map(|h| h.value.as_str().to_string())
}

/// Answers `req` with Binance's error body.
fn refuse(req: tiny_http::Request, status: u16, code: i64, msg: &str) {
    let (status, body) = error(status, code, msg);
    let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(status));
}

/// Accepts the WebSocket handshake of `req`, whose key is `ws_key`: the
/// connection, for `push_thread`.
fn upgraded(req: tiny_http::Request, ws_key: &str) -> Box<dyn tiny_http::ReadWrite + Send> {
    let accept = tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
    let response = tiny_http::Response::empty(101).with_header(
        tiny_http::Header::from_bytes(&b"Sec-WebSocket-Accept"[..], accept.as_bytes())
            .expect("an accept key is a header value"),
    );
    req.upgrade("websocket", response)
}

/// A thread named `name` that sends `raw`, a server's side of a WebSocket,
/// what `rx` brings, until a `Push::Close`, a failed send, or no sender left.
fn push_thread(
    name: &str,
    raw: Box<dyn tiny_http::ReadWrite + Send>,
    rx: crossbeam_channel::Receiver<Push>,
) {
    let _ = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut ws = tungstenite::WebSocket::from_raw_socket(
                raw,
                tungstenite::protocol::Role::Server,
                None,
            );
            for push in rx {
                let sent = match push {
                    Push::Text(t) => ws.send(tungstenite::Message::text(t)),
                    Push::Close => {
                        let _ = ws.close(None);
                        let _ = ws.flush();
                        break;
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        });
}

/// The most streams one market-stream connection may ask for (Binance's limit).
const MARK_STREAMS_MAX: usize = 1024;

/// Decimals of a mark price (Binance's marks have 8).
const MARK_DP: u32 = 8;

/// A market-stream connection: `/market/stream?streams=a/b` (combined) or
/// `/market/ws/a/b` (raw), upgraded to a WebSocket, then a thread that sends
/// it the marks of the listed symbols it asked for until it is closed.
fn market_stream(shared: &Arc<Shared>, req: tiny_http::Request) {
    let url = req.url().to_string();
    let (route, names, combined) = match url.split_once('?') {
        Some(("/market/stream", query)) => {
            let names = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("streams="))
                .unwrap_or("");
            ("/market/stream", names, true)
        }
        None if url.starts_with("/market/ws/") => {
            ("/market/ws", url.trim_start_matches("/market/ws/"), false)
        }
        _ => {
            refuse(req, 404, -1000, "No such stream route.");
            return;
        }
    };
    let names: Vec<String> = names
        .split('/')
        .filter(|n| !n.is_empty())
        .map(percent_decoded)
        .collect();
    *shared
        .state()
        .requests
        .entry(route.to_string())
        .or_default() += 1;
    let ws_key = ws_key(&req);
    let refusal = if names.is_empty() {
        Some("No stream given.")
    } else if names.len() > MARK_STREAMS_MAX {
        Some("More than 1024 streams on one connection.")
    } else {
        None
    };
    let ws_key = match (refusal, ws_key) {
        (None, Some(k)) => k,
        (refusal, _) => {
            refuse(
                req,
                400,
                -1000,
                refusal.unwrap_or("Not a WebSocket handshake."),
            );
            return;
        }
    };
    let marks: Vec<(String, String)> = names
        .iter()
        .filter_map(|name| {
            let symbol = name
                .strip_suffix("@markPrice@1s")
                .or_else(|| name.strip_suffix("@markPrice"))?;
            // Stream names are lower case: `BTCUSDT@markPrice` is no stream.
            if symbol.chars().any(|c| c.is_uppercase()) {
                return None;
            }
            let listed = shared
                .opts
                .symbols
                .iter()
                .find(|s| s.symbol.to_lowercase() == symbol)?;
            Some((listed.symbol.clone(), name.clone()))
        })
        .collect();
    // Registered before the handshake's answer, so that a client that has its
    // connection also has every mark set from then on (queued until the
    // thread below sends them).
    let (tx, rx) = crossbeam_channel::unbounded();
    {
        let mut st = shared.state();
        let now = now_ms();
        // Binance's first push comes within the stream's period; here, at once.
        for (symbol, name) in &marks {
            if let Some(&price) = st.marks.get(symbol) {
                let _ = tx.send(Push::Text(mark_message(combined, name, symbol, price, now)));
            }
        }
        st.mark_streams.push(MarkStream {
            marks,
            combined,
            tx,
        });
    }
    let raw = upgraded(req, &ws_key);
    push_thread("binance-test-marks", raw, rx);
}

/// A `markPriceUpdate` of `symbol` at `price` (the documented shape; the
/// index and settlement prices are the mark, the funding rate a constant),
/// wrapped as a combined stream's message when `combined`.
fn mark_message(combined: bool, stream: &str, symbol: &str, price: Decimal, now: i64) -> String {
    let p = padded(price, MARK_DP);
    // The next funding time: the next 8-hour mark.
    let funding = (now / 28_800_000 + 1) * 28_800_000;
    let data = format!(
        r#"{{"e":"markPriceUpdate","E":{now},"s":{},"p":"{p}","i":"{p}","P":"{p}","r":"0.00010000","T":{funding}}}"#,
        json_string(symbol)
    );
    if combined {
        format!(r#"{{"stream":{},"data":{data}}}"#, json_string(stream))
    } else {
        data
    }
}

/// `s` with each `%XX` decoded (bytes that are not UTF-8 replaced).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn exchange_info(symbols: &[SymbolFilters]) -> String {
    let mut out = String::from(r#"{"timezone":"UTC","rateLimits":[],"symbols":["#);
    for (i, s) in symbols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(r#"{{"symbol":"{}","filters":["#, s.symbol));
        let mut filters = Vec::new();
        if let Some(t) = s.tick_size {
            filters.push(format!(
                r#"{{"filterType":"PRICE_FILTER","minPrice":"{PRICE_MIN}","maxPrice":"{PRICE_MAX}","tickSize":"{t}"}}"#
            ));
        }
        if let (Some(step), Some(min)) = (s.step_size, s.min_qty) {
            filters.push(format!(
                r#"{{"filterType":"LOT_SIZE","minQty":"{min}","maxQty":"{QTY_MAX}","stepSize":"{step}"}}"#
            ));
        }
        if let Some(n) = s.min_notional {
            filters.push(format!(
                r#"{{"filterType":"MIN_NOTIONAL","notional":"{n}"}}"#
            ));
        }
        out.push_str(&filters.join(","));
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

// -- The WebSocket API (/ws-fapi/v1) ----------------------------------------

/// The deepest nesting read in a request: they nest 2 deep (the request, its
/// `params`).
const REQUEST_DEPTH_MAX: usize = 4;

/// The most parameters a request may carry (`order.place` has 14 known ones).
const PARAMS_MAX: usize = 32;

const PARAM_NAME_LEN_MAX: usize = 64;

const METHOD_LEN_MAX: usize = 64;

/// A request's `id`: "64-bit signed integer; alphanumeric string, max length
/// 36; null" (Binance's WebSocket API pages). Letters, digits, `-` and `_`
/// are taken, for UUIDs.
const REQUEST_ID_LEN_MAX: usize = 36;

/// The longest decimal text read: 28 significant digits, a sign, a point and
/// leading zeros of a small fraction.
const DECIMAL_TEXT_LEN_MAX: usize = 40;

/// Spot's code for a request that is not JSON or not of a request's shape;
/// the USD-M pages document none.
const INVALID_JSON: i32 = -1135;

/// What `order.place` reads; another parameter is refused (-1104) rather than
/// ignored, since this venue would not honour it.
const ORDER_PLACE_PARAMS: [&str; 14] = [
    "apiKey",
    "newClientOrderId",
    "newOrderRespType",
    "positionSide",
    "price",
    "quantity",
    "recvWindow",
    "reduceOnly",
    "side",
    "signature",
    "symbol",
    "timeInForce",
    "timestamp",
    "type",
];

/// A connection's login (`session.logon`).
struct Session {
    api_key: Option<String>,
    authorized_since_ms: i64,
    connected_since_ms: i64,
}

/// A request as read: its `id` as the JSON text to echo, its method, its
/// parameters.
struct ApiRequest {
    id: String,
    method: String,
    params: Params,
}

/// A request's parameters in the order sent, each value as text: a string's
/// own text, a number's digits, `true`/`false` (what is signed).
#[derive(Default)]
struct Params(Vec<(String, String)>);

impl Params {
    /// A parameter's text; an empty one is as good as not sent.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// What the client signed: every parameter but `signature`, sorted by
    /// name, `name=value` joined by `&` (WSGI).
    fn payload(&self) -> String {
        let mut pairs: Vec<&(String, String)> =
            self.0.iter().filter(|(k, _)| k != "signature").collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        joined.join("&")
    }
}

/// A request's answer before its `id` and `rateLimits` are added.
struct Answer {
    status: u16,
    /// `"result":{…}` or `"error":{…}`.
    body: String,
    /// Whose `ORDERS` counts `rateLimits` shows (`order.place` only).
    orders_of: Option<String>,
}

impl Answer {
    fn result(result: String) -> Answer {
        Answer {
            status: 200,
            body: format!(r#""result":{result}"#),
            orders_of: None,
        }
    }

    fn error(status: u16, code: i32, msg: &str) -> Answer {
        debug_assert!(status >= 400);
        Answer {
            status,
            body: format!(r#""error":{{"code":{code},"msg":{}}}"#, json_string(msg)),
            orders_of: None,
        }
    }

    /// A 429 or 418 with `data.serverTime` and `data.retryAfter`, as Spot's
    /// pages show them.
    fn throttled(t: &Throttled, server_ms: i64) -> Answer {
        Answer {
            status: t.status,
            body: format!(
                r#""error":{{"code":{},"msg":{},"data":{{"serverTime":{server_ms},"retryAfter":{}}}}}"#,
                t.code,
                json_string(&t.msg),
                t.retry_after_ms
            ),
            orders_of: None,
        }
    }

    fn orders_of(mut self, api_key: &str) -> Answer {
        self.orders_of = Some(api_key.to_string());
        self
    }
}

/// An `order.place` as read, before the symbol's filters are checked.
struct NewOrder {
    symbol: String,
    side: Side,
    kind: OrderKind,
    /// GTC for a market order, as Binance shows it.
    tif: Tif,
    qty: Decimal,
    /// The limit price; 0 for a market order.
    price: Decimal,
    client_order_id: Option<String>,
    reduce_only: bool,
    /// `newOrderRespType=RESULT`: answer with the final state, not `NEW`.
    resp_result: bool,
}

/// Serves one WebSocket API connection: the handshake (its path, the ban, the
/// weight), then one answer per request, in order, until the peer closes or
/// `drop_ws_api` shuts the socket.
fn ws_api(shared: &Arc<Shared>, stream: TcpStream) {
    let Ok(handle) = stream.try_clone() else {
        return;
    };
    if stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).is_err() {
        return;
    }
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(WS_API_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(WS_API_MESSAGE_BYTES_MAX));
    let callback =
        |req: &tungstenite::handshake::server::Request,
         resp: tungstenite::handshake::server::Response| { handshake(shared, req, resp) };
    let Ok(mut ws) = tungstenite::accept_hdr_with_config(stream, callback, Some(config)) else {
        return;
    };
    if ws.get_ref().set_read_timeout(None).is_err() {
        return;
    }
    let conn_id = {
        let mut st = shared.state();
        st.next_conn += 1;
        let id = st.next_conn;
        st.ws_conns.push((id, handle));
        id
    };
    let mut session = Session {
        api_key: None,
        authorized_since_ms: 0,
        connected_since_ms: now_ms(),
    };
    loop {
        let reply = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => handle_request(shared, &mut session, t.as_bytes()),
            Ok(tungstenite::Message::Binary(b)) => handle_request(shared, &mut session, &b),
            Ok(tungstenite::Message::Close(_)) => {
                let _ = ws.flush();
                break;
            }
            // Pings are answered by tungstenite itself.
            Ok(_) => continue,
            Err(tungstenite::Error::Capacity(_)) => {
                let _ = ws.close(Some(tungstenite::protocol::CloseFrame {
                    code: tungstenite::protocol::frame::coding::CloseCode::Size,
                    reason: "message too big".into(),
                }));
                let _ = ws.flush();
                break;
            }
            Err(_) => break,
        };
        if ws.send(tungstenite::Message::text(reply)).is_err() {
            break;
        }
    }
    let mine = {
        let mut st = shared.state();
        let at = st.ws_conns.iter().position(|(id, _)| *id == conn_id);
        at.map(|i| st.ws_conns.swap_remove(i))
    };
    if let Some((_, tcp)) = mine {
        let _ = tcp.shutdown(Shutdown::Both);
    }
}

/// The handshake's checks: the path, the connection cap, the ban and the
/// handshake's weight (5).
fn handshake(
    shared: &Shared,
    req: &tungstenite::handshake::server::Request,
    resp: tungstenite::handshake::server::Response,
) -> Result<tungstenite::handshake::server::Response, tungstenite::handshake::server::ErrorResponse>
{
    let (now, now_ms) = (Instant::now(), now_ms());
    let mut st = shared.state();
    *st.requests.entry(req.uri().path().to_string()).or_default() += 1;
    if req.uri().path() != WS_API_PATH {
        return Err(http_error(
            404,
            -1000,
            "An unknown error occured while processing the request.",
        ));
    }
    if st.ws_conns.len() >= WS_API_CONNECTIONS_MAX {
        st.too_many += 1;
        return Err(http_error(
            429,
            -1034,
            &format!(
                "Too many concurrent connections; current limit is '{WS_API_CONNECTIONS_MAX}'."
            ),
        ));
    }
    match st.admit_weight(&shared.limits, WEIGHT_HANDSHAKE, now, now_ms) {
        Ok(()) => Ok(resp),
        Err(t) => Err(http_error(t.status, t.code, &t.msg)),
    }
}

fn http_error(status: u16, code: i32, msg: &str) -> tungstenite::handshake::server::ErrorResponse {
    tungstenite::http::Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Some(format!(
            r#"{{"code":{code},"msg":{}}}"#,
            json_string(msg)
        )))
        .expect("a valid status and a static header")
}

/// One request's reply: `{id, status, result|error, rateLimits}`. Never
/// panics on what the request holds.
fn handle_request(shared: &Shared, session: &mut Session, bytes: &[u8]) -> String {
    let (now, now_ms) = (Instant::now(), now_ms());
    let request = read_request(bytes);
    let (id, weight) = match &request {
        Ok(r) => (r.id.clone(), method_weight(&r.method)),
        Err((id, _)) => (id.clone(), WEIGHT_UNREADABLE),
    };
    let admitted = shared
        .state()
        .admit_weight(&shared.limits, weight, now, now_ms);
    let answer = match (admitted, request) {
        (Err(t), _) => Answer::throttled(&t, now_ms),
        (Ok(()), Err((_, answer))) => answer,
        (Ok(()), Ok(r)) => {
            let p = &r.params;
            let answered = match r.method.as_str() {
                "order.place" => order_place(shared, session, p, now, now_ms),
                "order.status" => order_status(shared, session, p, now_ms),
                "session.logon" => session_logon(shared, session, p, now_ms),
                "session.status" => Ok(Answer::result(session_json(session, now_ms))),
                "session.logout" => {
                    session.api_key = None;
                    session.authorized_since_ms = 0;
                    Ok(Answer::result(session_json(session, now_ms)))
                }
                _ => Err(Answer::error(
                    400,
                    -1020,
                    "This operation is not supported.",
                )),
            };
            answered.unwrap_or_else(|a| a)
        }
    };
    let rate_limits =
        shared
            .state()
            .rate_limits_json(&shared.limits, now, answer.orders_of.as_deref());
    format!(
        r#"{{"id":{id},"status":{},{},"rateLimits":{rate_limits}}}"#,
        answer.status, answer.body
    )
}

fn method_weight(method: &str) -> u32 {
    match method {
        "order.place" => WEIGHT_ORDER_PLACE,
        "order.status" => WEIGHT_ORDER_STATUS,
        "session.logon" | "session.status" | "session.logout" => WEIGHT_SESSION,
        _ => WEIGHT_UNREADABLE,
    }
}

/// Reads a request's `id`, `method` and `params`; on error, the `id` to echo
/// (`null` when it could not be read) and the answer.
fn read_request(bytes: &[u8]) -> Result<ApiRequest, (String, Answer)> {
    let unreadable = |msg: &str| ("null".to_string(), Answer::error(400, INVALID_JSON, msg));
    if bytes.len() > WS_API_REQUEST_BYTES_MAX {
        return Err(unreadable(&format!(
            "Request of {} bytes is over the {WS_API_REQUEST_BYTES_MAX}-byte limit.",
            bytes.len()
        )));
    }
    if !crate::binance::wsapi::depth_within(bytes, REQUEST_DEPTH_MAX) {
        return Err(unreadable("Invalid JSON Request"));
    }
    let mut copy = bytes.to_vec();
    let Ok(tape) = simd_json::to_tape(&mut copy) else {
        return Err(unreadable("Invalid JSON Request"));
    };
    let root = tape.as_value();
    let Some(object) = root.as_object() else {
        return Err(unreadable("Invalid JSON Request"));
    };
    let (mut id, mut method, mut params) = (None, None, None);
    for (key, value) in object.iter() {
        let slot = match key {
            "id" => &mut id,
            "method" => &mut method,
            "params" => &mut params,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(unreadable("Invalid JSON Request"));
        }
    }
    let id = match id {
        None => "null".to_string(),
        Some(v) => request_id(v).ok_or_else(|| {
            unreadable("Invalid 'id' in JSON request; expected an integer, a string of at most 36 letters, digits, '-' or '_', or null.")
        })?,
    };
    let method = method
        .and_then(|m| m.into_string())
        .filter(|m| (1..=METHOD_LEN_MAX).contains(&m.len()))
        .ok_or_else(|| {
            (
                id.clone(),
                Answer::error(
                    400,
                    INVALID_JSON,
                    "Invalid 'method' in JSON request; expected a string.",
                ),
            )
        })?
        .to_string();
    let params = match params {
        Some(p) if p.value_type() != ValueType::Null => {
            read_params(p).map_err(|a| (id.clone(), a))?
        }
        _ => Params::default(),
    };
    Ok(ApiRequest { id, method, params })
}

fn request_id(v: simd_json::tape::Value<'_, '_>) -> Option<String> {
    match v.value_type() {
        ValueType::Null => Some("null".to_string()),
        ValueType::I64 | ValueType::U64 => v.as_i64().map(|n| n.to_string()),
        ValueType::String => v
            .into_string()
            .filter(|s| {
                (1..=REQUEST_ID_LEN_MAX).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .map(|s| format!("\"{s}\"")),
        _ => None,
    }
}

fn read_params(v: simd_json::tape::Value<'_, '_>) -> Result<Params, Answer> {
    let Some(object) = v.as_object() else {
        return Err(Answer::error(
            400,
            INVALID_JSON,
            "Invalid 'params' in JSON request; expected an object.",
        ));
    };
    if object.len() > PARAMS_MAX {
        return Err(Answer::error(
            400,
            -1101,
            "Too many parameters sent for this endpoint.",
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(object.len());
    for (name, value) in object.iter() {
        let name_ok = (1..=PARAM_NAME_LEN_MAX).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric());
        if !name_ok {
            return Err(Answer::error(
                400,
                -1100,
                "Illegal characters found in a parameter.",
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(Answer::error(
                400,
                -1101,
                "Duplicate values for a parameter detected.",
            ));
        }
        let text = match value.value_type() {
            ValueType::Null => continue,
            ValueType::String => value.into_string().map(str::to_string),
            ValueType::Bool => value.as_bool().map(|b| b.to_string()),
            ValueType::I64 => value.as_i64().map(|n| n.to_string()),
            ValueType::U64 => value.as_u64().map(|n| n.to_string()),
            ValueType::F64 => value.as_f64().map(|f| f.to_string()),
            _ => None,
        };
        let Some(text) = text else {
            return Err(invalid_param(name));
        };
        out.push((name.to_string(), text));
    }
    Ok(Params(out))
}

fn mandatory(name: &str) -> Answer {
    Answer::error(
        400,
        -1102,
        &format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

fn invalid_param(name: &str) -> Answer {
    Answer::error(
        400,
        -1130,
        &format!("Data sent for parameter '{name}' is not valid."),
    )
}

/// The account a request acts for: by its `apiKey` and `signature`, or by
/// the connection's login when it has neither; its `timestamp` is checked
/// either way.
fn authenticate<'a>(
    shared: &'a Shared,
    session: &Session,
    p: &Params,
    now_ms: i64,
) -> Result<&'a VenueAccount, Answer> {
    if let Some(api_key) = p.get("apiKey") {
        return signed_account(shared, api_key, p, now_ms);
    }
    let Some(api_key) = session.api_key.as_deref() else {
        return Err(mandatory("apiKey"));
    };
    let account = futures_account(shared, api_key)?;
    check_timestamp(p, now_ms)?;
    Ok(account)
}

/// `api_key`'s account, checked as a signed request: the key (-2015, 401),
/// the `signature` sent (-1102), the `timestamp` (-1021), the signature over
/// the sorted parameters (-1022).
fn signed_account<'a>(
    shared: &'a Shared,
    api_key: &str,
    p: &Params,
    now_ms: i64,
) -> Result<&'a VenueAccount, Answer> {
    let account = futures_account(shared, api_key)?;
    let sig = p.get("signature").ok_or_else(|| mandatory("signature"))?;
    check_timestamp(p, now_ms)?;
    if !signature_ok(&account.key, p.payload().as_bytes(), sig) {
        return Err(Answer::error(
            400,
            -1022,
            "Signature for this request is not valid.",
        ));
    }
    Ok(account)
}

fn futures_account<'a>(shared: &'a Shared, api_key: &str) -> Result<&'a VenueAccount, Answer> {
    shared
        .account(api_key)
        .filter(|a| a.futures)
        .ok_or_else(|| {
            Answer::error(
                401,
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            )
        })
}

fn check_timestamp(p: &Params, now_ms: i64) -> Result<(), Answer> {
    let ts = p
        .get("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| mandatory("timestamp"))?;
    let window = match p.get("recvWindow") {
        None => RECV_WINDOW_DEFAULT_MS,
        Some(w) => w
            .parse::<i64>()
            .ok()
            .filter(|w| *w > 0)
            .ok_or_else(|| invalid_param("recvWindow"))?,
    };
    match timestamp_error(ts, window, now_ms) {
        Some(msg) => Err(Answer::error(400, -1021, msg)),
        None => Ok(()),
    }
}

/// `session.logon`: an Ed25519 key's signed request; the connection's later
/// requests may omit `apiKey` and `signature`.
fn session_logon(
    shared: &Shared,
    session: &mut Session,
    p: &Params,
    now_ms: i64,
) -> Result<Answer, Answer> {
    let api_key = p.get("apiKey").ok_or_else(|| mandatory("apiKey"))?;
    let account = signed_account(shared, api_key, p, now_ms)?;
    if !matches!(account.key, AccountKey::Ed25519(_)) {
        return Err(Answer::error(400, -4056, "Invalid api key type."));
    }
    session.api_key = Some(account.api_key.clone());
    session.authorized_since_ms = now_ms;
    Ok(Answer::result(session_json(session, now_ms)))
}

fn session_json(s: &Session, now_ms: i64) -> String {
    let (key, since) = match &s.api_key {
        Some(k) => (json_string(k), s.authorized_since_ms.to_string()),
        None => ("null".to_string(), "null".to_string()),
    };
    format!(
        r#"{{"apiKey":{key},"authorizedSince":{since},"connectedSince":{},"returnRateLimits":true,"serverTime":{now_ms},"userDataStream":false}}"#,
        s.connected_since_ms
    )
}

/// `order.place`: authenticated, read, counted against `ORDERS`, then a
/// test's fault if one is queued, then the symbol's filters and the fill.
fn order_place(
    shared: &Shared,
    session: &Session,
    p: &Params,
    now: Instant,
    now_ms: i64,
) -> Result<Answer, Answer> {
    if let Some(id) = p.get("newClientOrderId") {
        *shared.state().client_ids.entry(id.to_string()).or_default() += 1;
    }
    let account = authenticate(shared, session, p, now_ms)?;
    let api_key = account.api_key.as_str();
    let order = read_order(p).map_err(|a| a.orders_of(api_key))?;
    let spec = shared
        .symbol(&order.symbol)
        .ok_or_else(|| Answer::error(400, -1121, "Invalid symbol.").orders_of(api_key))?;
    let mut st = shared.state();
    st.admit_order(&shared.limits, api_key, now, now_ms)
        .map_err(|t| Answer::throttled(&t, now_ms).orders_of(api_key))?;
    let fault = st.faults.get_mut(api_key).and_then(VecDeque::pop_front);
    if let Some(Fault::Reject { code, msg }) = &fault {
        return Err(Answer::error(reject_status(*code), *code, msg).orders_of(api_key));
    }
    let placed = st.place(spec, api_key, &order, now_ms);
    drop(st);
    if matches!(fault, Some(Fault::UnknownOutcome)) {
        return Err(Answer::error(
            503,
            -1006,
            "An unexpected response was received from the message bus. Execution status unknown.",
        )
        .orders_of(api_key));
    }
    let (ack, result) = placed.map_err(|a| a.orders_of(api_key))?;
    let shown = if order.resp_result { result } else { ack };
    Ok(Answer::result(shown).orders_of(api_key))
}

/// The HTTP status Binance pairs with an error code, for `reject_next`.
fn reject_status(code: i32) -> u16 {
    match code {
        -1003 | -1015 => 429,
        -1002 | -2014 | -2015 => 401,
        -1000 | -1001 | -1006 | -1007 => 503,
        _ => 400,
    }
}

/// `order.place`'s parameters, each checked for its form: presence (-1102),
/// enums (-1117 side, -1116 type, -1115 timeInForce, -1136
/// newOrderRespType), `positionSide` in one-way mode (-4061), the client id
/// (-4015), parameters not read (-1104), a price on a market order (-1106).
fn read_order(p: &Params) -> Result<NewOrder, Answer> {
    let read =
        p.0.iter()
            .filter(|(k, _)| ORDER_PLACE_PARAMS.contains(&k.as_str()))
            .count();
    if read < p.0.len() {
        return Err(Answer::error(
            400,
            -1104,
            &format!(
                "Not all sent parameters were read; read '{read}' parameter(s) but was sent '{}'.",
                p.0.len()
            ),
        ));
    }
    let symbol = p.get("symbol").ok_or_else(|| mandatory("symbol"))?;
    let side = match p.get("side") {
        None => return Err(mandatory("side")),
        Some("BUY") => Side::Buy,
        Some("SELL") => Side::Sell,
        Some(_) => return Err(Answer::error(400, -1117, "Invalid side.")),
    };
    let kind = match p.get("type") {
        None => return Err(mandatory("type")),
        Some("LIMIT") => OrderKind::Limit,
        Some("MARKET") => OrderKind::Market,
        Some(_) => return Err(Answer::error(400, -1116, "Invalid orderType.")),
    };
    match p.get("positionSide") {
        None | Some("BOTH") => {}
        Some(_) => {
            return Err(Answer::error(
                400,
                -4061,
                "Order's position side does not match user's setting.",
            ))
        }
    }
    let reduce_only = match p.get("reduceOnly") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid_param("reduceOnly")),
    };
    let resp_result = match p.get("newOrderRespType") {
        None | Some("ACK") => false,
        Some("RESULT") => true,
        Some(_) => return Err(Answer::error(400, -1136, "Invalid newOrderRespType.")),
    };
    let client_order_id = match p.get("newClientOrderId") {
        None => None,
        Some(id) if valid_client_order_id(id) => Some(id.to_string()),
        Some(_) => return Err(Answer::error(400, -4015, "Client order id is not valid.")),
    };
    let qty = p
        .get("quantity")
        .and_then(decimal)
        .ok_or_else(|| mandatory("quantity"))?;
    let (tif, price) = match kind {
        OrderKind::Limit => {
            let tif = match p.get("timeInForce") {
                None => return Err(mandatory("timeInForce")),
                Some("GTC") => Tif::Gtc,
                Some("IOC") => Tif::Ioc,
                Some(_) => return Err(Answer::error(400, -1115, "Invalid timeInForce.")),
            };
            let price = p
                .get("price")
                .and_then(decimal)
                .ok_or_else(|| mandatory("price"))?;
            (tif, price)
        }
        OrderKind::Market => {
            if p.get("price").is_some() {
                return Err(Answer::error(
                    400,
                    -1106,
                    "Parameter 'price' sent when not required.",
                ));
            }
            (Tif::Gtc, Decimal::ZERO)
        }
    };
    Ok(NewOrder {
        symbol: symbol.to_string(),
        side,
        kind,
        tif,
        qty,
        price,
        client_order_id,
        reduce_only,
        resp_result,
    })
}

/// `^[\.A-Z\:/a-z0-9_-]{1,36}$` (the New Order page).
fn valid_client_order_id(s: &str) -> bool {
    (1..=36).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

/// A decimal as Binance writes one (`"0.100"`, `"-1"`), read exactly: no
/// exponent, no `_`, no `+`.
fn decimal(text: &str) -> Option<Decimal> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed =
        text.len() <= DECIMAL_TEXT_LEN_MAX && digits(whole) && fraction.is_none_or(digits);
    if !well_formed {
        return None;
    }
    Decimal::from_str_exact(text).ok()
}

/// The symbol's filters as `exchangeInfo` advertises them: quantity (-4003
/// at or below 0, -1111 more decimals than the step, -4023 off the step,
/// -4004 below the minimum, -4005 above the maximum) and a limit price
/// (-4001 at or below 0, -1111, -4014 off the tick, -4013, -4002). The
/// bounds (`QTY_MAX`, `PRICE_MIN`, `PRICE_MAX`) hold for every symbol, with
/// filters or not, so that no product of a quantity and a price can overflow.
fn check_filters(spec: &SymbolFilters, o: &NewOrder) -> Result<(), Answer> {
    let refuse = |code, msg: &str| Err(Answer::error(400, code, msg));
    let precision = "Precision is over the maximum defined for this asset.";
    if o.qty <= Decimal::ZERO {
        return refuse(-4003, "Quantity less than or equal to zero.");
    }
    if let Some(step) = spec.step_size.filter(|s| *s > Decimal::ZERO) {
        if o.qty.normalize().scale() > step.normalize().scale() {
            return refuse(-1111, precision);
        }
        if !(o.qty % step).is_zero() {
            return refuse(-4023, "Qty not increased by step size.");
        }
    }
    if o.qty > QTY_MAX {
        return refuse(-4005, "Quantity greater than max quantity.");
    }
    if spec.min_qty.is_some_and(|min| o.qty < min) {
        return refuse(-4004, "Quantity less than min quantity.");
    }
    if o.kind == OrderKind::Market {
        return Ok(());
    }
    if o.price <= Decimal::ZERO {
        return refuse(-4001, "Price less than 0.");
    }
    if let Some(tick) = spec.tick_size.filter(|t| *t > Decimal::ZERO) {
        if o.price.normalize().scale() > tick.normalize().scale() {
            return refuse(-1111, precision);
        }
        if !(o.price % tick).is_zero() {
            return refuse(-4014, "Price not increased by tick size.");
        }
    }
    if o.price < PRICE_MIN {
        return refuse(-4013, "Price less than min price.");
    }
    if o.price > PRICE_MAX {
        return refuse(-4002, "Price greater than max price.");
    }
    Ok(())
}

impl State {
    /// Checks an order against the symbol, the account's open orders and
    /// position, then fills it at the market's levels. Returns the order as
    /// an ACK shows it and as a RESULT does.
    fn place(
        &mut self,
        spec: &SymbolFilters,
        api_key: &str,
        o: &NewOrder,
        now_ms: i64,
    ) -> Result<(String, String), Answer> {
        check_filters(spec, o)?;
        if let (false, Some(min)) = (o.reduce_only, spec.min_notional) {
            let price = match o.kind {
                OrderKind::Limit => Some(o.price),
                OrderKind::Market => self
                    .markets
                    .get(&o.symbol)
                    .and_then(|levels| levels.first())
                    .map(|l| l.price),
            };
            if price.is_some_and(|p| o.qty * p < min) {
                return Err(Answer::error(
                    400,
                    -4164,
                    &format!(
                        "Order's notional must be no smaller than {min} (unless you choose reduce only)."
                    ),
                ));
            }
        }
        if let Some(id) = &o.client_order_id {
            let open = self
                .orders
                .iter()
                .any(|x| x.api_key == api_key && x.client_order_id == *id && x.status.is_open());
            if open {
                return Err(Answer::error(400, -4116, "ClientOrderId is duplicated."));
            }
        }
        let position = self
            .positions
            .get(&(api_key.to_string(), o.symbol.clone()))
            .copied()
            .unwrap_or_default();
        // How much an order of this side can take off the position.
        let reducible = match o.side {
            Side::Buy => -position,
            Side::Sell => position,
        };
        if o.reduce_only && reducible <= Decimal::ZERO {
            return Err(Answer::error(400, -2022, "ReduceOnly Order is rejected."));
        }
        let fillable = if o.reduce_only {
            o.qty.min(reducible)
        } else {
            o.qty
        };
        self.next_order += 1;
        let order_id = ORDER_ID_BASE + self.next_order;
        let mut order = VenueOrder {
            api_key: api_key.to_string(),
            order_id,
            symbol: o.symbol.clone(),
            client_order_id: o
                .client_order_id
                .clone()
                .unwrap_or_else(|| format!("tv-{order_id}")),
            side: o.side,
            kind: o.kind,
            tif: o.tif,
            price: o.price,
            orig_qty: o.qty,
            executed_qty: Decimal::ZERO,
            cum_quote: Decimal::ZERO,
            status: Status::New,
            reduce_only: o.reduce_only,
            time_ms: now_ms,
            update_time_ms: now_ms,
        };
        let ack = order_json(&order, spec, false);
        let levels = self.markets.get(&o.symbol).cloned().unwrap_or_default();
        let mut left = fillable;
        for level in levels {
            if left.is_zero() || !crosses(o, level.price) {
                break;
            }
            let take = level.qty.map_or(left, |q| q.min(left));
            order.executed_qty += take;
            order.cum_quote += take * level.price;
            let trade = VenueTrade {
                symbol: o.symbol.clone(),
                side: o.side,
                qty: take,
                price: level.price,
                order_id,
                order_qty: o.qty,
                client_order_id: order.client_order_id.clone(),
            };
            let view = OrderView {
                order_type: kind_name(o.kind),
                time_in_force: tif_name(o.tif),
                price: o.price,
                avg_price: order.avg_price(),
                reduce_only: o.reduce_only,
            };
            self.record_trade(api_key, &trade, &view);
            left -= take;
        }
        debug_assert!(order.executed_qty <= fillable && fillable <= order.orig_qty);
        order.status = if order.executed_qty == order.orig_qty {
            Status::Filled
        } else if o.kind == OrderKind::Market || o.tif == Tif::Ioc {
            Status::Expired
        } else if order.executed_qty.is_zero() {
            Status::New
        } else {
            Status::PartiallyFilled
        };
        let result = order_json(&order, spec, false);
        self.orders.push(order);
        Ok((ack, result))
    }
}

/// Whether an order's limit allows a fill at `price` (a market order's always does).
fn crosses(o: &NewOrder, price: Decimal) -> bool {
    match (o.kind, o.side) {
        (OrderKind::Market, _) => true,
        (OrderKind::Limit, Side::Buy) => o.price >= price,
        (OrderKind::Limit, Side::Sell) => o.price <= price,
    }
}

fn kind_name(kind: OrderKind) -> &'static str {
    match kind {
        OrderKind::Limit => "LIMIT",
        OrderKind::Market => "MARKET",
    }
}

fn tif_name(tif: Tif) -> &'static str {
    match tif {
        Tif::Gtc => "GTC",
        Tif::Ioc => "IOC",
    }
}

/// `order.status`: an order of the account by `orderId` or, the latest with
/// it, `origClientOrderId`; -2013 for one never received.
fn order_status(
    shared: &Shared,
    session: &Session,
    p: &Params,
    now_ms: i64,
) -> Result<Answer, Answer> {
    let account = authenticate(shared, session, p, now_ms)?;
    let symbol = p.get("symbol").ok_or_else(|| mandatory("symbol"))?;
    let spec = shared
        .symbol(symbol)
        .ok_or_else(|| Answer::error(400, -1121, "Invalid symbol."))?;
    let order_id = match p.get("orderId") {
        None => None,
        Some(t) => Some(t.parse::<u64>().map_err(|_| invalid_param("orderId"))?),
    };
    let client_id = p.get("origClientOrderId");
    if order_id.is_none() && client_id.is_none() {
        return Err(Answer::error(
            400,
            -1102,
            "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
        ));
    }
    let st = shared.state();
    let found = st.orders.iter().rev().find(|o| {
        o.api_key == account.api_key
            && o.symbol == symbol
            && match order_id {
                Some(id) => o.order_id == id,
                None => client_id == Some(o.client_order_id.as_str()),
            }
    });
    match found {
        Some(o) => Ok(Answer::result(order_json(o, spec, true))),
        None => Err(Answer::error(400, -2013, "Order does not exist.")),
    }
}

/// An order as `order.place` and `order.status` (`with_time`) show it, its
/// numbers padded to the symbol's tick and step as Binance pads them.
fn order_json(o: &VenueOrder, spec: &SymbolFilters, with_time: bool) -> String {
    let price_dp = spec.tick_size.map_or(0, |t| t.scale());
    let qty_dp = spec.step_size.map_or(0, |s| s.scale());
    let time = if with_time {
        format!(r#""time":{},"#, o.time_ms)
    } else {
        String::new()
    };
    format!(
        r#"{{"orderId":{},"symbol":"{}","status":"{}","clientOrderId":"{}","price":"{}","avgPrice":"{}","origQty":"{}","executedQty":"{}","cumQty":"{}","cumQuote":"{}","timeInForce":"{}","type":"{}","reduceOnly":{},"closePosition":false,"side":"{}","positionSide":"BOTH","stopPrice":"{}","workingType":"CONTRACT_PRICE","priceProtect":false,"origType":"{}","priceMatch":"NONE","selfTradePreventionMode":"NONE","goodTillDate":0,{time}"updateTime":{}}}"#,
        o.order_id,
        o.symbol,
        o.status.name(),
        o.client_order_id,
        padded(o.price, price_dp),
        padded(o.avg_price(), price_dp),
        padded(o.orig_qty, qty_dp),
        padded(o.executed_qty, qty_dp),
        padded(o.executed_qty, qty_dp),
        padded(o.cum_quote, price_dp + qty_dp),
        tif_name(o.tif),
        kind_name(o.kind),
        o.reduce_only,
        side_name(o.side),
        padded(Decimal::ZERO, price_dp),
        kind_name(o.kind),
        o.update_time_ms,
    )
}

/// `d` with at least `dp` decimals, more if it has them (`0` → `0.00`).
fn padded(d: Decimal, dp: u32) -> String {
    let mut d = d.normalize();
    if d.scale() < dp {
        d.rescale(dp);
    }
    d.to_string()
}

/// `s` as a JSON string, escaped.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::rest::{RestClient, RestError};
    use crate::binance::sign::Signer;
    use rust_decimal_macros::dec;
    use std::time::Duration;

    const SECRET: &[u8] = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";

    fn venue() -> TestVenue {
        let risky = VenueAccount {
            withdrawals: true,
            ..VenueAccount::hmac("risky", SECRET)
        };
        TestVenue::start(
            "127.0.0.1:0",
            TestVenueOptions::btcusdt(vec![VenueAccount::hmac("safe", SECRET), risky]),
        )
        .expect("test venue")
    }

    fn client(v: &TestVenue) -> RestClient {
        RestClient::new(&v.rest_url(), Duration::from_secs(5), 5000)
    }

    #[test]
    fn signed_requests_verify_and_answer_each_accounts_permissions() {
        let v = venue();
        let c = client(&v);
        let signer = Signer::hmac(SECRET).unwrap();
        let p = c.api_restrictions("safe", &signer, now_ms()).unwrap();
        assert!(p.futures && !p.withdrawals);
        let p = c.api_restrictions("risky", &signer, now_ms()).unwrap();
        assert!(p.withdrawals);
        let wrong = Signer::hmac(b"another secret").unwrap();
        match c.api_restrictions("safe", &wrong, now_ms()) {
            Err(RestError::Venue {
                status: 400,
                code: -1022,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match c.api_restrictions("nobody", &signer, now_ms()) {
            Err(RestError::Venue {
                status: 401,
                code: -2015,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match c.api_restrictions("safe", &signer, now_ms() - 60_000) {
            Err(RestError::Venue { code: -1021, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(v.requests("/sapi/v1/account/apiRestrictions"), 5);
    }

    #[test]
    fn ed25519_signed_requests_verify_too() {
        let seed = [7u8; 32];
        let key = crate::binance::sign::Ed25519Key::from_bytes(&seed).unwrap();
        let v = TestVenue::start(
            "127.0.0.1:0",
            TestVenueOptions {
                accounts: vec![VenueAccount {
                    api_key: "ed".into(),
                    key: AccountKey::Ed25519(key.public_key()),
                    withdrawals: false,
                    futures: true,
                }],
                symbols: Vec::new(),
            },
        )
        .unwrap();
        let c = client(&v);
        let p = c
            .api_restrictions("ed", &Signer::Ed25519(key), now_ms())
            .unwrap();
        assert!(p.futures);
        let other = crate::binance::sign::Ed25519Key::from_bytes(&[8u8; 32]).unwrap();
        assert!(c
            .api_restrictions("ed", &Signer::Ed25519(other), now_ms())
            .is_err());
    }

    fn trade(qty: Decimal) -> VenueTrade {
        VenueTrade {
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            qty,
            price: dec!(42088.0),
            order_id: 7,
            order_qty: dec!(0.100),
            client_order_id: "leader-1".into(),
        }
    }

    /// Until the venue has registered a stream (its upgrade answered); a
    /// failure bound, not a timing.
    fn wait_for_stream(v: &TestVenue) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while v.streams() == 0 {
            assert!(std::time::Instant::now() < deadline, "no stream registered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn next_text(
        ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    ) -> Option<String> {
        // A failure bound: a message that never comes fails the test.
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_mut() {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        }
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Text(t)) => return Some(t.to_string()),
                Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    #[test]
    fn trades_reach_open_streams_and_user_trades_and_streams_drop_and_expire() {
        let v = venue();
        let c = client(&v);
        let key = c.new_listen_key("safe").unwrap();
        // The root's path, retired on Binance since 2026-04-23, is refused.
        match tungstenite::connect(format!("ws://{}/ws/{key}", v.addr)) {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a user data stream on the retired root path"),
        }
        let (mut ws, _) =
            tungstenite::connect(format!("{}/ws/{key}", v.stream_url())).expect("stream");
        // The stream is registered once the upgrade is answered.
        wait_for_stream(&v);
        let id = v.trade("safe", &trade(dec!(0.040)));
        let text = next_text(&mut ws).expect("the trade");
        let mut parser = crate::binance::stream::Parser::new();
        match parser.message(text.as_bytes()).unwrap() {
            crate::binance::stream::Event::OrderTradeUpdate(u) => {
                assert_eq!(
                    (u.trade_id, u.last_qty, u.order_qty),
                    (id, dec!(0.040), dec!(0.100))
                );
            }
            e => panic!("{e:?}"),
        }
        v.drop_streams();
        assert!(next_text(&mut ws).is_none(), "closed");
        let id2 = v.trade("safe", &trade(dec!(0.060)));
        let signer = Signer::hmac(SECRET).unwrap();
        let body = c
            .signed_get(
                "/fapi/v1/userTrades",
                "symbol=BTCUSDT",
                "safe",
                &signer,
                now_ms(),
            )
            .unwrap();
        let trades = parser.user_trades(&body).unwrap();
        assert_eq!(
            trades.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![id, id2]
        );
        let body = c
            .signed_get(
                "/fapi/v1/userTrades",
                &format!("symbol=BTCUSDT&fromId={id2}"),
                "safe",
                &signer,
                now_ms(),
            )
            .unwrap();
        assert_eq!(parser.user_trades(&body).unwrap().len(), 1);

        let (mut ws, _) =
            tungstenite::connect(format!("{}/ws/{key}", v.stream_url())).expect("stream again");
        wait_for_stream(&v);
        v.expire_listen_keys();
        let text = next_text(&mut ws).expect("listenKeyExpired");
        assert!(text.contains("listenKeyExpired"), "{text}");
        assert!(tungstenite::connect(format!("{}/ws/{key}", v.stream_url())).is_err());
    }

    /// The `/market` route serves mark prices, combined and raw: lower-case
    /// names of listed symbols only, a symbol's latest mark at the connect,
    /// each `set_mark` pushed in the documented shape, which the source's
    /// parser reads back exactly.
    #[test]
    fn mark_prices_are_served_on_the_market_route_in_the_documented_shape() {
        use crate::binance::stream::{Event, Parser};
        let v = venue();
        v.set_mark("BTCUSDT", dec!(42088.12345678));
        let connect =
            |path: &str| tungstenite::connect(format!("ws://{}{path}", v.addr)).map(|(ws, _)| ws);
        let mut combined = connect(
            "/market/stream?streams=btcusdt@markPrice@1s/BTCUSDT@markPrice/btcusdt@aggTrade/dogeusdt@markPrice",
        )
        .expect("combined");
        let mut raw = connect("/market/ws/btcusdt@markPrice").expect("raw");
        assert_eq!(
            v.mark_streams(),
            vec![vec!["btcusdt@markPrice@1s"], vec!["btcusdt@markPrice"]]
        );
        let read = |text: &str| match Parser::new().message(text.as_bytes()) {
            Ok(Event::MarkPrice(m)) => (m.symbol.to_string(), m.mark_price),
            other => panic!("{text}: {other:?}"),
        };
        let first = next_text(&mut combined).expect("the latest mark, at once");
        assert!(
            first.starts_with(
                r#"{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":"#
            ),
            "{first}"
        );
        for field in [
            r#""s":"BTCUSDT""#,
            r#""p":"42088.12345678""#,
            r#""i":"#,
            r#""P":"#,
            r#""r":"#,
            r#""T":"#,
        ] {
            assert!(first.contains(field), "{field} in {first}");
        }
        assert_eq!(read(&first), ("BTCUSDT".into(), dec!(42088.12345678)));
        let first_raw = next_text(&mut raw).expect("the latest mark");
        assert!(
            first_raw.starts_with(r#"{"e":"markPriceUpdate","#),
            "{first_raw}"
        );
        v.set_mark("BTCUSDT", dec!(42000));
        let next = next_text(&mut combined).expect("pushed");
        assert!(next.contains(r#""p":"42000.00000000""#), "{next}");
        assert_eq!(read(&next), ("BTCUSDT".into(), dec!(42000)));
        assert_eq!(
            read(&next_text(&mut raw).expect("pushed")),
            ("BTCUSDT".into(), dec!(42000))
        );
        // No stream, too many, or another route: refused at the handshake.
        let too_many = vec!["btcusdt@markPrice"; 1025].join("/");
        for path in [
            "/market/stream?streams=".to_string(),
            format!("/market/stream?streams={too_many}"),
            "/market/other".to_string(),
        ] {
            assert!(connect(&path).is_err(), "{path}");
        }
        assert_eq!(v.requests("/market/ws"), 1);
        // A drop closes them all.
        v.drop_mark_streams();
        assert_eq!(next_text(&mut combined), None);
        assert_eq!(next_text(&mut raw), None);
        assert!(v.mark_streams().is_empty());
    }

    #[test]
    fn exchange_info_and_listen_keys_follow_the_documented_shapes() {
        let v = venue();
        let c = client(&v);
        let f = c.exchange_info().unwrap();
        assert_eq!(f[0].step_size, Some(dec!(0.001)));
        let k = c.new_listen_key("safe").unwrap();
        assert_eq!(c.new_listen_key("safe").unwrap(), k, "the active key again");
        c.keep_listen_key("safe").unwrap();
        v.expire_listen_keys();
        match c.keep_listen_key("safe") {
            Err(RestError::Venue { code: -1125, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_ne!(
            c.new_listen_key("safe").unwrap(),
            k,
            "a new key after expiry"
        );
    }

    // -- The WebSocket API, driven by the gateway's own client side ---------

    use crate::binance::errors::{self, Action};
    use crate::binance::limits::Throttle;
    use crate::binance::sign::Ed25519Key;
    use crate::binance::wsapi::{
        Auth, Encoder, Envelope, OrderStatus, Outcome, PlaceOrder, RateLimitKind, ReplyId,
        ReplyParser, RespType,
    };
    use fillcast_engine::event::{OrderType, RejectReason};
    use fillcast_engine::ids::client_order_id as cid;
    use fillcast_engine::units::{Lots, Ticks};
    use tungstenite::Message;

    const FOLLOWER: &str = "follower1";
    const ED_FOLLOWER: &str = "edfollower";
    const SPOT_ONLY: &str = "spotonly";
    const ED_SEED: [u8; 32] = [9; 32];

    type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

    fn hmac() -> Signer {
        Signer::hmac(SECRET).unwrap()
    }

    fn ed() -> Signer {
        Signer::Ed25519(Ed25519Key::from_bytes(&ED_SEED).unwrap())
    }

    fn ws_venue(limits: VenueLimits) -> TestVenue {
        let public = Ed25519Key::from_bytes(&ED_SEED).unwrap().public_key();
        let account = |api_key: &str, key: AccountKey, futures| VenueAccount {
            api_key: api_key.into(),
            key,
            withdrawals: false,
            futures,
        };
        let symbol = |name: &str, tick, step, min_qty, notional| SymbolFilters {
            symbol: name.into(),
            tick_size: Some(tick),
            step_size: Some(step),
            min_qty: Some(min_qty),
            min_notional: Some(notional),
        };
        TestVenue::start_with_limits(
            "127.0.0.1:0",
            TestVenueOptions {
                accounts: vec![
                    account(FOLLOWER, AccountKey::Hmac(SECRET.to_vec()), true),
                    account(ED_FOLLOWER, AccountKey::Ed25519(public), true),
                    account(SPOT_ONLY, AccountKey::Hmac(SECRET.to_vec()), false),
                ],
                symbols: vec![
                    symbol("BTCUSDT", dec!(0.1), dec!(0.001), dec!(0.001), dec!(5)),
                    symbol("ETHUSDT", dec!(0.05), dec!(0.02), dec!(0.04), dec!(20)),
                    SymbolFilters {
                        symbol: "RAWUSDT".into(),
                        tick_size: None,
                        step_size: None,
                        min_qty: None,
                        min_notional: None,
                    },
                ],
            },
            limits,
        )
        .expect("test venue")
    }

    /// A reply as the gateway's `ReplyParser` reads it, owned.
    #[derive(Clone, Debug, PartialEq)]
    enum Got {
        Order {
            status: OrderStatus,
            executed: Decimal,
            avg: Decimal,
            client_order_id: String,
        },
        Session,
        Error {
            status: u16,
            code: i32,
            msg: String,
            retry_after: bool,
        },
    }

    type Limit = (String, Interval, u32, u64, u64);

    #[derive(Debug)]
    struct Replied {
        id: String,
        got: Got,
        limits: Vec<Limit>,
    }

    impl Replied {
        fn status_code(&self) -> (u16, i32) {
            match &self.got {
                Got::Error { status, code, .. } => (*status, *code),
                other => panic!("not an error: {other:?}"),
            }
        }

        fn msg(&self) -> &str {
            match &self.got {
                Got::Error { msg, .. } => msg,
                other => panic!("not an error: {other:?}"),
            }
        }
    }

    fn read_reply(text: &str) -> Replied {
        let mut bytes = text.as_bytes().to_vec();
        let mut parser = ReplyParser::new();
        let reply = parser
            .parse(&mut bytes)
            .unwrap_or_else(|e| panic!("{e}: {text}"));
        let got = match reply.outcome {
            Outcome::Order(o) => Got::Order {
                status: o.status,
                executed: o.executed_qty,
                avg: o.avg_price,
                client_order_id: o.client_order_id.to_string(),
            },
            Outcome::Session { server_time_ms } => {
                assert!(server_time_ms.is_some(), "{text}");
                Got::Session
            }
            Outcome::Error(e) => Got::Error {
                status: reply.status,
                code: e.code,
                msg: e.msg.to_string(),
                retry_after: e.retry_after_ms.is_some(),
            },
        };
        let id = match reply.id {
            ReplyId::Num(n) => n.to_string(),
            ReplyId::Text(t) => t.to_string(),
            ReplyId::Null => "null".to_string(),
        };
        let limits = reply
            .rate_limits
            .as_slice()
            .iter()
            .map(|l| {
                let kind = match l.kind {
                    RateLimitKind::RequestWeight => "REQUEST_WEIGHT".to_string(),
                    RateLimitKind::Orders => "ORDERS".to_string(),
                    RateLimitKind::Other(o) => o.to_string(),
                };
                (kind, l.interval, l.interval_num, l.limit, l.count)
            })
            .collect();
        Replied { id, got, limits }
    }

    fn filled(executed: Decimal, avg: Decimal, order_id: u64) -> Got {
        order(OrderStatus::Filled, executed, avg, &cid(order_id))
    }

    fn order(status: OrderStatus, executed: Decimal, avg: Decimal, client_order_id: &str) -> Got {
        Got::Order {
            status,
            executed,
            avg,
            client_order_id: client_order_id.to_string(),
        }
    }

    /// A failure bound on every read: a reply that never comes fails the test.
    fn bound(ws: &mut Ws) {
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_mut() {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        }
    }

    /// Whether the venue closed the connection (a close frame, EOF or a reset),
    /// as opposed to the failure bound running out.
    fn closed(ws: &mut Ws) -> bool {
        loop {
            match ws.read() {
                Ok(Message::Close(_)) => return true,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The gateway's side of one connection: its encoder and parser.
    struct Client {
        ws: Ws,
        encoder: Encoder,
        out: Vec<u8>,
        next_id: u64,
    }

    impl Client {
        fn connect(v: &TestVenue) -> Client {
            let (mut ws, _) = tungstenite::connect(v.ws_api_url()).expect("the WebSocket API");
            bound(&mut ws);
            Client {
                ws,
                encoder: Encoder::new(),
                out: Vec::new(),
                next_id: 0,
            }
        }

        fn ask(&mut self, msg: Message) -> String {
            self.ws.send(msg).expect("sent");
            loop {
                if let Message::Text(t) = self.ws.read().expect("a reply") {
                    return t.to_string();
                }
            }
        }

        fn ask_text(&mut self, text: &str) -> Replied {
            read_reply(&self.ask(Message::text(text)))
        }

        fn env<'a>(&mut self, auth: Auth<'a>, timestamp_ms: i64) -> Envelope<'a> {
            self.next_id += 1;
            Envelope {
                id: self.next_id,
                auth,
                timestamp_ms: timestamp_ms as u64,
                recv_window_ms: 5000,
            }
        }

        /// Sends what the encoder wrote and checks the reply's id.
        fn send_encoded(&mut self, id: u64) -> Replied {
            let text = String::from_utf8(self.out.clone()).unwrap();
            let r = self.ask_text(&text);
            assert_eq!(r.id, id.to_string(), "a reply echoes its request's id");
            r
        }

        fn place(&mut self, auth: Auth<'_>, order: &PlaceOrder<'_>) -> Replied {
            self.place_at(auth, order, now_ms())
        }

        fn place_at(&mut self, auth: Auth<'_>, order: &PlaceOrder<'_>, ts: i64) -> Replied {
            let env = self.env(auth, ts);
            self.encoder
                .order_place(&mut self.out, &env, order)
                .expect("encoded");
            self.send_encoded(env.id)
        }

        fn status(&mut self, auth: Auth<'_>, client_order_id: &str) -> Replied {
            let env = self.env(auth, now_ms());
            self.encoder
                .order_status(&mut self.out, &env, "BTCUSDT", client_order_id)
                .expect("encoded");
            self.send_encoded(env.id)
        }

        fn logon(&mut self, api_key: &str, signer: &Signer) -> Replied {
            let env = self.env(Auth::Signed { api_key, signer }, now_ms());
            self.encoder
                .session_logon(&mut self.out, &env)
                .expect("encoded");
            self.send_encoded(env.id)
        }
    }

    /// A BTCUSDT order of `qty` thousandths at `limit` tenths.
    fn btc(
        order_id: u64,
        side: Side,
        order_type: OrderType,
        qty: i64,
        limit: i64,
    ) -> PlaceOrder<'static> {
        PlaceOrder {
            symbol: "BTCUSDT",
            side,
            order_type,
            qty: Lots(qty),
            lot_size: dec!(0.001),
            limit: Ticks(limit),
            tick_size: dec!(0.1),
            order_id,
            reduce_only: false,
            resp_type: RespType::Result,
        }
    }

    fn buy(order_id: u64, qty: i64, limit: i64) -> PlaceOrder<'static> {
        btc(order_id, Side::Buy, OrderType::LimitIoc, qty, limit)
    }

    /// A signed request written apart from `wsapi::Encoder`: `params` as
    /// strings, `apiKey`, `timestamp` (an integer), sorted, signed.
    fn signed(
        method: &str,
        id: u64,
        api_key: &str,
        signer: &Signer,
        params: &[(&str, &str)],
    ) -> String {
        let ts = now_ms().to_string();
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("apiKey".into(), api_key.into()));
        all.push(("timestamp".into(), ts));
        all.sort();
        let payload: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let signature = signer.sign(payload.join("&").as_bytes());
        let mut fields: Vec<String> = all
            .iter()
            .map(|(k, v)| match k.as_str() {
                "timestamp" => format!(r#""{k}":{v}"#),
                _ => format!(r#""{k}":"{v}""#),
            })
            .collect();
        fields.push(format!(r#""signature":"{}""#, signature.as_str()));
        format!(
            r#"{{"id":{id},"method":"{method}","params":{{{}}}}}"#,
            fields.join(",")
        )
    }

    #[test]
    fn a_signed_order_fills_at_the_market_and_is_kept_pushed_and_counted() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let rest = client(&v);
        let key = rest.new_listen_key(FOLLOWER).unwrap();
        let (mut stream, _) =
            tungstenite::connect(format!("{}/ws/{key}", v.stream_url())).expect("stream");
        wait_for_stream(&v);
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let mut c = Client::connect(&v);
        let r = c.place(auth, &buy(1, 100, 1000));
        assert_eq!(r.got, filled(dec!(0.1), dec!(100), 1));
        // The handshake (5) and the listen key (1) are the weight; the order
        // counts against each ORDERS limit.
        assert_eq!(
            r.limits,
            vec![
                ("REQUEST_WEIGHT".into(), Interval::Minute, 1, 2400, 6),
                ("ORDERS".into(), Interval::Second, 10, 300, 1),
                ("ORDERS".into(), Interval::Minute, 1, 1200, 1),
            ]
        );
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0.1));
        assert_eq!(v.orders_with_client_id(&cid(1)), 1);

        let text = next_text(&mut stream).expect("the fill, pushed");
        let mut parser = crate::binance::stream::Parser::new();
        let trade_id = match parser.message(text.as_bytes()).unwrap() {
            crate::binance::stream::Event::OrderTradeUpdate(u) => {
                assert_eq!(
                    (u.client_order_id, u.last_qty, u.last_price, u.order_status),
                    (cid(1).as_str(), dec!(0.1), dec!(100), "FILLED")
                );
                u.trade_id
            }
            e => panic!("{e:?}"),
        };
        let body = rest
            .signed_get(
                "/fapi/v1/userTrades",
                "symbol=BTCUSDT",
                FOLLOWER,
                &signer,
                now_ms(),
            )
            .unwrap();
        let trades = parser.user_trades(&body).unwrap();
        assert_eq!(
            trades
                .iter()
                .map(|t| (t.id, t.qty, t.price))
                .collect::<Vec<_>>(),
            vec![(trade_id, dec!(0.1), dec!(100))]
        );
        assert_eq!(v.too_many_requests(), 0);
    }

    #[test]
    fn ack_answers_new_and_order_status_shows_fills_at_two_levels() {
        let v = ws_venue(VenueLimits::default());
        v.set_levels(
            "BTCUSDT",
            &[(dec!(100), dec!(0.05)), (dec!(101), dec!(0.05))],
        );
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let mut c = Client::connect(&v);
        let ack = PlaceOrder {
            resp_type: RespType::Ack,
            ..buy(1, 200, 1010)
        };
        let r = c.place(auth, &ack);
        assert_eq!(r.got, order(OrderStatus::New, dec!(0), dec!(0), &cid(1)));
        // 0.05 at 100 and 0.05 at 101; the other 0.1 expired.
        let r = c.status(auth, &cid(1));
        assert_eq!(
            r.got,
            order(OrderStatus::Expired, dec!(0.1), dec!(100.5), &cid(1))
        );
        assert_eq!(r.limits.len(), 1, "order.status reports the weight only");
        // A limit between the levels fills at the first only.
        let r = c.place(auth, &buy(2, 200, 1000));
        assert_eq!(
            r.got,
            order(OrderStatus::Expired, dec!(0.05), dec!(100), &cid(2))
        );
        // A sell limit above every level fills nothing.
        let r = c.place(auth, &btc(3, Side::Sell, OrderType::LimitIoc, 100, 1005));
        assert_eq!(
            r.got,
            order(OrderStatus::Expired, dec!(0), dec!(0), &cid(3))
        );
        // A market order walks the levels: 0.05 at 100, 0.03 at 101.
        let r = c.place(auth, &btc(4, Side::Sell, OrderType::Market, 80, 0));
        assert_eq!(r.got, filled(dec!(0.08), dec!(100.375), 4));
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0.07));

        let r = c.status(auth, &cid(99));
        assert_eq!(r.status_code(), (400, -2013));
        assert_eq!(r.msg(), "Order does not exist.");
        let body = client(&v)
            .signed_get(
                "/fapi/v1/userTrades",
                "symbol=BTCUSDT",
                FOLLOWER,
                &signer,
                now_ms(),
            )
            .unwrap();
        let mut parser = crate::binance::stream::Parser::new();
        let prices: Vec<Decimal> = parser
            .user_trades(&body)
            .unwrap()
            .iter()
            .map(|t| t.price)
            .collect();
        assert_eq!(
            prices,
            [dec!(100), dec!(101), dec!(100), dec!(100), dec!(101)]
        );
    }

    #[test]
    fn ed25519_orders_and_a_logged_on_session_without_signatures() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let key = ed();
        let signed_auth = Auth::Signed {
            api_key: ED_FOLLOWER,
            signer: &key,
        };
        let mut c = Client::connect(&v);
        assert_eq!(
            c.place(signed_auth, &buy(1, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 1)
        );
        let r = c.place(Auth::Session, &buy(2, 100, 1000));
        assert_eq!(r.status_code(), (400, -1102), "no login yet: {}", r.msg());
        assert!(r.msg().contains("'apiKey'"), "{}", r.msg());
        let status = c.ask(Message::text(r#"{"id":"s-1","method":"session.status"}"#));
        assert!(status.contains(r#""apiKey":null"#), "{status}");
        assert_eq!(read_reply(&status).id, "s-1");

        assert_eq!(c.logon(ED_FOLLOWER, &key).got, Got::Session);
        let status = c.ask(Message::text(r#"{"id":2,"method":"session.status"}"#));
        assert!(
            status.contains(&format!(r#""apiKey":"{ED_FOLLOWER}""#)),
            "{status}"
        );
        assert_eq!(
            c.place(Auth::Session, &buy(3, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 3)
        );
        assert_eq!(v.position(ED_FOLLOWER, "BTCUSDT"), dec!(0.2));
        // An unsigned order.status on the session too.
        assert_eq!(
            c.status(Auth::Session, &cid(3)).got,
            filled(dec!(0.1), dec!(100), 3)
        );

        let other = Signer::Ed25519(Ed25519Key::from_bytes(&[10; 32]).unwrap());
        assert_eq!(c.logon(ED_FOLLOWER, &other).status_code(), (400, -1022));
        let hmac_logon = signed("session.logon", 77, FOLLOWER, &hmac(), &[]);
        let r = c.ask_text(&hmac_logon);
        assert_eq!((r.id.as_str(), r.status_code()), ("77", (400, -4056)));

        assert_eq!(
            c.ask_text(r#"{"id":3,"method":"session.logout"}"#).got,
            Got::Session
        );
        let r = c.place(Auth::Session, &buy(4, 100, 1000));
        assert_eq!(r.status_code(), (400, -1102), "logged out: {}", r.msg());
        assert_eq!(v.position(ED_FOLLOWER, "BTCUSDT"), dec!(0.2));
    }

    #[test]
    fn bad_signatures_unknown_keys_and_stale_timestamps_are_refused_unexecuted() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let (right, wrong, ed_key) = (hmac(), Signer::hmac(b"another secret").unwrap(), ed());
        let auth = |api_key, signer| Auth::Signed { api_key, signer };
        let now = now_ms();
        let cases = [
            (auth(FOLLOWER, &wrong), now, (400, -1022), Action::Fatal),
            (auth(FOLLOWER, &ed_key), now, (400, -1022), Action::Fatal),
            (auth(ED_FOLLOWER, &right), now, (400, -1022), Action::Fatal),
            (auth("nobody", &right), now, (401, -2015), Action::Fatal),
            (auth(SPOT_ONLY, &right), now, (401, -2015), Action::Fatal),
            (
                auth(FOLLOWER, &right),
                now - 60_000,
                (400, -1021),
                Action::FixClockAndRetry,
            ),
            (
                auth(FOLLOWER, &right),
                now + 5_000,
                (400, -1021),
                Action::FixClockAndRetry,
            ),
        ];
        let mut c = Client::connect(&v);
        for (i, (auth, ts, expected, action)) in cases.into_iter().enumerate() {
            let r = c.place_at(auth, &buy(i as u64 + 1, 100, 1000), ts);
            assert_eq!(r.status_code(), expected, "case {i}: {}", r.msg());
            assert_eq!(
                errors::classify(expected.0, Some(expected.1), r.msg()),
                action,
                "case {i}"
            );
            assert_eq!(r.limits.len(), 1, "case {i}: not counted as an order");
            assert_eq!(v.orders_with_client_id(&cid(i as u64 + 1)), 1, "case {i}");
        }
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0));
        assert_eq!(v.position(ED_FOLLOWER, "BTCUSDT"), dec!(0));
    }

    #[test]
    fn reject_next_answers_each_documented_code_once_and_executes_nothing() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let reject = |reason, code| Action::Reject {
            reason,
            code: Some(code),
        };
        let cases = [
            (
                -2019,
                "Margin is insufficient.",
                reject(RejectReason::InsufficientMargin, -2019),
            ),
            (
                -2018,
                "Balance is insufficient.",
                reject(RejectReason::InsufficientMargin, -2018),
            ),
            (
                -4164,
                "Order's notional must be no smaller than 5 (unless you choose reduce only).",
                reject(RejectReason::BelowMin, -4164),
            ),
            (
                -2022,
                "ReduceOnly Order is rejected.",
                reject(RejectReason::ReduceOnly, -2022),
            ),
            (
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
                Action::FixClockAndRetry,
            ),
            (-4116, "ClientOrderId is duplicated.", Action::AskVenue),
            (
                -1015,
                "Too many new orders; current limit is 300 orders per 10 SECOND.",
                Action::Backoff(Throttle::Account),
            ),
        ];
        let mut c = Client::connect(&v);
        let mut position = dec!(0);
        for (i, (code, msg, action)) in cases.into_iter().enumerate() {
            let id = 10 + i as u64;
            v.reject_next(FOLLOWER, code, msg);
            let r = c.place(auth, &buy(id, 100, 1000));
            let status = if code == -1015 { 429 } else { 400 };
            assert_eq!(
                r.got,
                Got::Error {
                    status,
                    code,
                    msg: msg.to_string(),
                    retry_after: false
                }
            );
            assert_eq!(errors::classify(status, Some(code), msg), action, "{code}");
            assert_eq!(
                v.position(FOLLOWER, "BTCUSDT"),
                position,
                "{code}: not executed"
            );
            // Once: the same order again is executed.
            assert_eq!(
                c.place(auth, &buy(id, 100, 1000)).got,
                filled(dec!(0.1), dec!(100), id)
            );
            position += dec!(0.1);
            assert_eq!(v.orders_with_client_id(&cid(id)), 2);
        }
        assert_eq!(
            v.too_many_requests(),
            0,
            "an injected 429 is not the gateway's"
        );
    }

    #[test]
    fn an_unknown_outcome_is_executed_and_order_status_tells() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let mut c = Client::connect(&v);
        v.unknown_outcome_next(FOLLOWER);
        let r = c.place(auth, &buy(1, 100, 1000));
        assert_eq!(r.status_code(), (503, -1006));
        assert_eq!(
            errors::classify(503, Some(-1006), r.msg()),
            Action::AskVenue
        );
        assert_eq!(c.status(auth, &cid(1)).got, filled(dec!(0.1), dec!(100), 1));
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0.1));
        assert_eq!(
            c.place(auth, &buy(2, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 2)
        );
    }

    #[test]
    fn a_burst_past_the_order_limit_is_answered_429_counted_then_banned() {
        let v = ws_venue(VenueLimits {
            orders: vec![
                VenueRateLimit::new(Interval::Second, 10, 3),
                VenueRateLimit::new(Interval::Minute, 1, 1200),
            ],
            ban_after: 3,
            ban_ms: 60_000,
            ..VenueLimits::default()
        });
        v.set_price("BTCUSDT", dec!(100));
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let mut c = Client::connect(&v);
        for id in 1..=3 {
            let r = c.place(auth, &buy(id, 100, 1000));
            assert_eq!(r.got, filled(dec!(0.1), dec!(100), id));
            assert_eq!(r.limits[1], ("ORDERS".into(), Interval::Second, 10, 3, id));
        }
        assert_eq!(v.too_many_requests(), 0);
        for n in 1..=3 {
            let r = c.place(auth, &buy(3 + n, 100, 1000));
            let Got::Error {
                status: 429,
                code: -1015,
                retry_after: true,
                ref msg,
            } = r.got
            else {
                panic!("{r:?}")
            };
            assert_eq!(
                errors::classify(429, Some(-1015), msg),
                Action::Backoff(Throttle::Account)
            );
            assert_eq!(r.limits[1].4, 3, "a refused order is not counted");
            assert_eq!(v.too_many_requests(), n);
        }
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0.3));
        // Three 429s: banned.
        let r = c.place(auth, &buy(7, 100, 1000));
        let Got::Error {
            status: 418,
            code: -1003,
            retry_after: true,
            ref msg,
        } = r.got
        else {
            panic!("{r:?}")
        };
        assert_eq!(
            errors::classify(418, Some(-1003), msg),
            Action::Backoff(Throttle::Ban)
        );
        assert_eq!(c.status(auth, &cid(1)).status_code(), (418, -1003));
        match tungstenite::connect(v.ws_api_url()) {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 418),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("connected while banned"),
        }
        assert_eq!(v.too_many_requests(), 6);
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0.3));
    }

    #[test]
    fn request_weight_is_the_venues_and_answered_429_minus_1003() {
        let v = ws_venue(VenueLimits {
            request_weight: VenueRateLimit::new(Interval::Minute, 1, 8),
            ban_after: 0,
            ..VenueLimits::default()
        });
        v.set_price("BTCUSDT", dec!(100));
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let mut c = Client::connect(&v);
        for used in 6..=8 {
            let r = c.status(auth, &cid(1));
            assert_eq!(r.status_code(), (400, -2013));
            assert_eq!(
                r.limits,
                vec![("REQUEST_WEIGHT".into(), Interval::Minute, 1, 8, used)]
            );
        }
        let r = c.status(auth, &cid(1));
        assert_eq!(r.status_code(), (429, -1003));
        assert!(matches!(
            r.got,
            Got::Error {
                retry_after: true,
                ..
            }
        ));
        assert_eq!(
            errors::classify(429, Some(-1003), r.msg()),
            Action::Backoff(Throttle::Ip)
        );
        // order.place weighs 0 on the IP: it still goes.
        assert_eq!(
            c.place(auth, &buy(1, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 1)
        );
        match tungstenite::connect(v.ws_api_url()) {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a handshake (weight 5) past the limit was accepted"),
        }
        assert_eq!(v.too_many_requests(), 2);
    }

    #[test]
    fn orders_are_checked_against_the_symbol_filters_with_the_documented_codes() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        v.set_price("ETHUSDT", dec!(100));
        const BASE: [(&str, &str); 6] = [
            ("symbol", "BTCUSDT"),
            ("side", "BUY"),
            ("type", "LIMIT"),
            ("timeInForce", "IOC"),
            ("quantity", "0.1"),
            ("price", "100"),
        ];
        let long_id = "x".repeat(37);
        let cases: Vec<(Vec<(&str, &str)>, i32)> = vec![
            (vec![("quantity", "0")], -4003),
            (vec![("quantity", "-1")], -4003),
            (vec![("quantity", "0.0015")], -1111),
            (vec![("quantity", "1001")], -4005),
            (vec![("price", "100.05")], -1111),
            (vec![("price", "0")], -4001),
            (vec![("price", "2000000")], -4002),
            (vec![("quantity", "0.001")], -4164),
            (vec![("symbol", "ETHUSDT"), ("price", "100.03")], -4014),
            (vec![("symbol", "ETHUSDT"), ("quantity", "0.03")], -4023),
            (vec![("symbol", "ETHUSDT"), ("quantity", "0.02")], -4004),
            (vec![("symbol", "DOGEUSDT")], -1121),
            // No filters: the advertised bounds still hold, and nothing overflows.
            (
                vec![
                    ("symbol", "RAWUSDT"),
                    ("quantity", "9999999999999999999999999999"),
                ],
                -4005,
            ),
            (
                vec![
                    ("symbol", "RAWUSDT"),
                    ("price", "9999999999999999999999999999"),
                ],
                -4002,
            ),
            (vec![("symbol", "RAWUSDT"), ("price", "0.001")], -4013),
            (vec![("quantity", "")], -1102),
            (vec![("quantity", "1e3")], -1102),
            (vec![("type", "STOP")], -1116),
            (vec![("side", "HOLD")], -1117),
            (vec![("timeInForce", "FOK")], -1115),
            (vec![("timeInForce", "")], -1102),
            (vec![("type", "MARKET")], -1106),
            (vec![("newOrderRespType", "FULL")], -1136),
            (vec![("newClientOrderId", "bad id!")], -4015),
            (vec![("newClientOrderId", long_id.as_str())], -4015),
            (vec![("reduceOnly", "yes")], -1130),
            (vec![("positionSide", "LONG")], -4061),
            (vec![("priceProtect", "TRUE")], -1104),
            // Reduce-only is exempt from the minimum notional, not from reducing.
            (vec![("quantity", "0.001"), ("reduceOnly", "true")], -2022),
        ];
        let signer = hmac();
        let mut c = Client::connect(&v);
        for (i, (changes, code)) in cases.iter().enumerate() {
            let mut params = BASE.to_vec();
            for &(k, value) in changes {
                params.retain(|(n, _)| *n != k);
                if !value.is_empty() {
                    params.push((k, value));
                }
            }
            let r = c.ask_text(&signed("order.place", i as u64, FOLLOWER, &signer, &params));
            assert_eq!(r.status_code(), (400, *code), "{changes:?}: {}", r.msg());
        }
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0));
        assert_eq!(v.position(FOLLOWER, "ETHUSDT"), dec!(0));
        let r = c.ask_text(&signed("order.place", 99, FOLLOWER, &signer, &BASE));
        assert_eq!(
            r.got,
            order(OrderStatus::New, dec!(0), dec!(0), "tv-8000000001")
        );
        assert_eq!(
            v.position(FOLLOWER, "BTCUSDT"),
            dec!(0.1),
            "executed, answered ACK"
        );
    }

    #[test]
    fn reduce_only_reduces_at_most_the_position_or_is_refused_minus_2022() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let reduce = |id, side, qty| PlaceOrder {
            reduce_only: true,
            ..btc(id, side, OrderType::LimitIoc, qty, 1000)
        };
        let mut c = Client::connect(&v);
        let r = c.place(auth, &reduce(1, Side::Sell, 100));
        assert_eq!(r.status_code(), (400, -2022), "no position to reduce");
        assert_eq!(
            c.place(auth, &buy(2, 200, 1000)).got,
            filled(dec!(0.2), dec!(100), 2)
        );
        let r = c.place(auth, &reduce(3, Side::Buy, 100));
        assert_eq!(
            r.status_code(),
            (400, -2022),
            "a buy would not reduce a long"
        );
        let r = c.place(auth, &reduce(4, Side::Sell, 300));
        assert_eq!(
            r.got,
            order(OrderStatus::Expired, dec!(0.2), dec!(100), &cid(4))
        );
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0));
        assert_eq!(
            c.place(auth, &buy(5, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 5)
        );
        // 0.01 × 100 is under the minimum notional of 5: reduce-only is exempt.
        assert_eq!(
            c.place(auth, &reduce(6, Side::Sell, 10)).got,
            filled(dec!(0.01), dec!(100), 6)
        );
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0.09));
    }

    #[test]
    fn a_client_id_of_an_open_order_is_refused_minus_4116_one_of_a_finished_order_is_not() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let signer = hmac();
        let mut c = Client::connect(&v);
        let gtc = |id: u64, client_id: &str| {
            signed(
                "order.place",
                id,
                FOLLOWER,
                &signer,
                &[
                    ("symbol", "BTCUSDT"),
                    ("side", "BUY"),
                    ("type", "LIMIT"),
                    ("timeInForce", "GTC"),
                    ("quantity", "0.1"),
                    ("price", "90"),
                    ("newClientOrderId", client_id),
                    ("newOrderRespType", "RESULT"),
                ],
            )
        };
        // Below the market: it rests.
        let r = c.ask_text(&gtc(1, "rest-1"));
        assert_eq!(r.got, order(OrderStatus::New, dec!(0), dec!(0), "rest-1"));
        let r = c.ask_text(&gtc(2, "rest-1"));
        assert_eq!(r.status_code(), (400, -4116));
        assert_eq!(
            errors::classify(400, Some(-4116), r.msg()),
            Action::AskVenue
        );
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        assert_eq!(
            c.status(auth, "rest-1").got,
            order(OrderStatus::New, dec!(0), dec!(0), "rest-1")
        );
        assert_eq!(v.orders_with_client_id("rest-1"), 2);
        let by_order_id = signed(
            "order.status",
            3,
            FOLLOWER,
            &signer,
            &[("symbol", "BTCUSDT"), ("orderId", "8000000001")],
        );
        assert_eq!(
            c.ask_text(&by_order_id).got,
            order(OrderStatus::New, dec!(0), dec!(0), "rest-1")
        );
        // An IOC order is done once answered: its id may come again (which is
        // why the gateway never relies on -4116 to stop a resend).
        assert_eq!(
            c.place(auth, &buy(3, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 3)
        );
        assert_eq!(
            c.place(auth, &buy(3, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 3)
        );
        assert_eq!(v.orders_with_client_id(&cid(3)), 2);
    }

    #[test]
    fn hostile_requests_are_answered_with_errors_and_the_venue_stays_up() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let mut c = Client::connect(&v);
        let huge = format!(
            r#"{{"id":1,"method":"order.place","params":{{"x":"{}"}}}}"#,
            "a".repeat(100_000)
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let many: Vec<String> = (0..40).map(|i| format!(r#""p{i}":"1""#)).collect();
        let many = format!(
            r#"{{"id":13,"method":"order.place","params":{{{}}}}}"#,
            many.join(",")
        );
        let bad_signature = format!(
            r#"{{"id":17,"method":"order.place","params":{{"apiKey":"{FOLLOWER}","signature":"\u0000\"","timestamp":{}}}}}"#,
            now_ms()
        );
        let text = |s: &str| Message::text(s.to_string());
        let cases: Vec<(Message, &str, (u16, i32))> = vec![
            (text("not json"), "null", (400, -1135)),
            (text(""), "null", (400, -1135)),
            (text("[1,2]"), "null", (400, -1135)),
            (text("{"), "null", (400, -1135)),
            (text("\"\\u0000\""), "null", (400, -1135)),
            (text(&deep), "null", (400, -1135)),
            (text(&huge), "null", (400, -1135)),
            (
                Message::binary(vec![0xff, 0xfe, 0x00]),
                "null",
                (400, -1135),
            ),
            (
                text(r#"{"id":7,"method":"order.fly","params":{}}"#),
                "7",
                (400, -1020),
            ),
            (
                text(r#"{"id":8,"method":"order.place"}"#),
                "8",
                (400, -1102),
            ),
            (
                text(r#"{"id":9,"method":"order.place","params":[]}"#),
                "9",
                (400, -1135),
            ),
            (text(r#"{"id":10,"method":5}"#), "10", (400, -1135)),
            (
                text(r#"{"id":10,"id":11,"method":"session.status"}"#),
                "null",
                (400, -1135),
            ),
            (
                text(r#"{"id":"a\"b","method":"session.status"}"#),
                "null",
                (400, -1135),
            ),
            (
                text(r#"{"id":1.5,"method":"session.status"}"#),
                "null",
                (400, -1135),
            ),
            (
                text(r#"{"id":18446744073709551615,"method":"session.status"}"#),
                "null",
                (400, -1135),
            ),
            (
                text(r#"{"id":11,"method":"order.place","params":{"apiKey":"a","apiKey":"b"}}"#),
                "11",
                (400, -1101),
            ),
            (
                text(r#"{"id":12,"method":"order.place","params":{"a=b":"1"}}"#),
                "12",
                (400, -1100),
            ),
            (text(&many), "13", (400, -1101)),
            (
                text(r#"{"id":14,"method":"order.place","params":{"apiKey":{"x":1}}}"#),
                "14",
                (400, -1130),
            ),
            (
                text(
                    r#"{"id":15,"method":"order.status","params":{"apiKey":"follower1","timestamp":1}}"#,
                ),
                "15",
                (400, -1102),
            ),
            (
                text(r#"{"id":"abc-1","method":"order.place","params":{"apiKey":"nobody"}}"#),
                "abc-1",
                (401, -2015),
            ),
            (
                text(
                    r#"{"id":16,"method":"order.place","params":{"apiKey":"follower1","signature":"x","timestamp":"soon"}}"#,
                ),
                "16",
                (400, -1102),
            ),
            (text(&bad_signature), "17", (400, -1022)),
        ];
        for (i, (msg, id, expected)) in cases.into_iter().enumerate() {
            let r = read_reply(&c.ask(msg));
            assert_eq!(
                (r.id.as_str(), r.status_code()),
                (id, expected),
                "case {i}: {}",
                r.msg()
            );
        }
        // The connection still serves.
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        assert_eq!(
            c.place(auth, &buy(1, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 1)
        );
        // A message over the cap closes its connection, not the venue.
        let _ =
            c.ws.send(Message::text("x".repeat(WS_API_MESSAGE_BYTES_MAX + 1)));
        assert!(
            closed(&mut c.ws),
            "the oversized message's connection is closed"
        );
        let mut c = Client::connect(&v);
        assert_eq!(
            c.place(auth, &buy(2, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 2)
        );
        assert_eq!(client(&v).exchange_info().unwrap().len(), 3);
        assert_eq!(v.position(FOLLOWER, "BTCUSDT"), dec!(0.2));
    }

    #[test]
    fn drop_ws_api_closes_every_connection_and_clients_come_back() {
        let v = ws_venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let (mut a, mut b) = (Client::connect(&v), Client::connect(&v));
        wait_for("two connections registered", || v.ws_api_connections() == 2);
        v.drop_ws_api();
        assert_eq!(v.ws_api_connections(), 0);
        assert!(closed(&mut a.ws), "a is dropped");
        assert!(closed(&mut b.ws), "b is dropped");
        let signer = hmac();
        let auth = Auth::Signed {
            api_key: FOLLOWER,
            signer: &signer,
        };
        let mut c = Client::connect(&v);
        assert_eq!(
            c.place(auth, &buy(1, 100, 1000)).got,
            filled(dec!(0.1), dec!(100), 1)
        );
        assert_eq!(v.ws_api_connections(), 1);
        assert_eq!(v.requests(WS_API_PATH), 3);
    }

    #[test]
    fn only_the_documented_path_upgrades() {
        let v = ws_venue(VenueLimits::default());
        match tungstenite::connect(format!("ws://{}/ws-fapi/v2", v.addr)) {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("upgraded an undocumented path"),
        }
        assert_eq!(v.ws_api_connections(), 0);
        assert_eq!(client(&v).exchange_info().unwrap().len(), 3);
    }

    #[test]
    fn limits_that_cannot_be_kept_are_refused_at_start() {
        let with = |orders: VenueRateLimit, ban_ms| VenueLimits {
            orders: vec![orders],
            ban_ms,
            ..VenueLimits::default()
        };
        let ok = VenueRateLimit::new(Interval::Second, 10, 3);
        let cases = [
            (
                with(VenueRateLimit::new(Interval::Second, 10, 0), 1),
                "a limit of 0",
            ),
            (
                with(VenueRateLimit::new(Interval::Second, 0, 3), 1),
                "a window of 0",
            ),
            (
                with(VenueRateLimit::new(Interval::Day, 8, 3), 1),
                "a window over 7 days",
            ),
            (
                with(
                    VenueRateLimit::new(Interval::Second, 1, RATE_LIMIT_COUNT_MAX + 1),
                    1,
                ),
                "a count over the cap",
            ),
            (with(ok, BAN_MS_MAX + 1), "a ban over 3 days"),
        ];
        for (limits, what) in cases {
            let opts = TestVenueOptions {
                accounts: Vec::new(),
                symbols: Vec::new(),
            };
            let e = TestVenue::start_with_limits("127.0.0.1:0", opts, limits)
                .err()
                .unwrap_or_else(|| panic!("{what} was accepted"));
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{what}");
        }
    }
}
