//! The Binance USD-M gateway (issue 15): follower orders over the WebSocket
//! API (`order.place`), each signed with its follower's own key, and the
//! venue's answers as the engine's `ExecReport`s.
//!
//! Owns one background thread and its one WebSocket API connection (a
//! *lane*); with `session_logon`, also a lane per Ed25519 account, whose
//! connection logs on (`session.logon`) before anything else and whose
//! requests then go unsigned, the IP's request weight split evenly between
//! the lanes. Any lane down makes the gateway down, naming the follower. The
//! engine's I/O thread only hands orders over (`submit`, non-blocking, into a
//! bounded channel per lane) and drains reports (`poll`, one channel for all);
//! everything that waits (the limiter, the socket, a REST trade lookup) waits
//! on a worker thread.
//!
//! - **Pacing, never loss.** Every order goes through `limits::Limiter` for its
//!   account (300 per 10 s and 1,200 per minute by default) and the IP weight
//!   (which every connection's handshake weighs on too, 5 each); the venue's
//!   own counts (`rateLimits`) are absorbed by its windows, the pacing margin
//!   added to ours only; an order the limiter holds stays queued with its
//!   client id. Orders handed
//!   over and not yet sent are counted (`unsent`): past `queue_max` of them
//!   `can_accept` says no and the engine's egress ring waits. A 429/418 (or
//!   -1015/-1003/-1008) puts the order back at the head of the queue after
//!   `Limiter::on_throttled`: the venue refused it before matching, so the
//!   same client id goes again later, once.
//! - **IOC LIMIT, `newOrderRespType=RESULT`.** For an IOC order the RESULT
//!   reply is its final state, so one reply settles it: `Ack`, its fills, and,
//!   unless it filled whole, `Canceled` with the remainder as `qty` (what the
//!   sim venue reports for an IOC remainder; Binance says `EXPIRED`, which the
//!   engine's `Expired` would treat the same, but one spelling for every venue
//!   keeps the journals comparable).
//! - **The fill rule** (`fills_of`), used by the reply and by every
//!   `order.status` answer alike, so that an order reported twice gives the
//!   engine the same trade ids and it de-duplicates: `executedQty` must be a
//!   whole number of lots (else the gateway stops: the config's lot is not the
//!   venue's). If `avgPrice` is exactly on the tick grid, one fill of
//!   `executedQty` at `avgPrice`, trade id `DERIVED_TRADE_ID_BIT | orderId`
//!   (Binance's trade ids are signed 64-bit, so the top bit never clashes with
//!   a real one). Otherwise the order traded at several prices, and its fills
//!   are its trades from REST `userTrades` (real ids, exact prices), which must
//!   add up to `executedQty`. An average on the grid from several levels
//!   (100.0 and 100.2 → 100.1) is reported as one fill at the average: the
//!   quantity and the notional are exact, only the split is lost.
//! - **Errors** (`errors::classify`): a reject → `Rejected` with its reason;
//!   -1021 → sent once more with the same client id (the venue refused it
//!   before matching) with the clock offset as `ClockOffset` knows it, then
//!   `Transient`; an unknown outcome (-1006, -1007, -4116, 5XX) →
//!   `order.status` by client id before anything else, and its answer is
//!   reported (`-2013`, never received → `Rejected`/`Transient`, so that the
//!   engine retries with a fresh id); a refused key → the gateway stops for
//!   good (`down_reason` says which follower), every later order `VenueDown`.
//! - **The clock offset** is sampled from every `order.place` reply's
//!   `updateTime` (the venue stamps it between our send and our receive): the
//!   WebSocket API's error replies carry no `serverTime` the parser exposes.
//! - **A lost connection** makes the gateway down at once (`is_up` false,
//!   `down_reason` set); orders not sent yet are refused `VenueDown` (they
//!   never left); it reconnects with a doubling backoff, asks `order.status`
//!   about every order that was on the wire (sent and unanswered, or answered
//!   with an outcome still unknown), and says up only when each is settled
//!   (its fills and end, or `UnknownOrder`); a question the socket refused
//!   stays to ask on the next connection. A request unanswered for
//!   `reply_timeout` counts as a lost connection.
//! - **Followers without an account** in the vault: their orders are rejected
//!   at once in `submit`, `RejectReason::Other` (the engine puts a person in
//!   front of it), counted in `BinanceGatewayStats::no_account`, and the
//!   follower is named in `last_no_account`.
//!
//! Never does: log or format a key or a signature (keys are `SecretString`
//! and `Signer`, which print redacted; errors quote codes and venue messages
//! only); send an order twice after an unknown outcome without asking; drop an
//! order the limiter holds back.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use fillcast_engine::clock;
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, RejectReason};
use fillcast_engine::ids::client_order_id;
use fillcast_engine::model::{FollowerIdx, SymbolIdx, SymbolSpec, Universe};
use fillcast_engine::port::{AskedOrder, Gateway, VenueBooks, VenueError};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

use super::errors::{classify, Action, ClockOffset};
use super::limits::{Limiter, LimitsConfig, LimitsError, RateLimitReport};
use super::rest::{RestClient, TradesFrom};
use super::sign::Signer;
use super::stream::{Parser as StreamParser, USER_TRADES_MAX};
use super::wsapi::{
    Auth, Encoder, Envelope, Interval, OrderStatus, Outcome, PlaceOrder, RateLimitKind, ReplyId,
    ReplyParser, RespType,
};

/// The top bit of a trade id the gateway derived from the venue's order id
/// (the fill rule in the module doc).
pub const DERIVED_TRADE_ID_BIT: u64 = 1 << 63;

/// Pages of `userTrades` read for one order at most (1,000 trades each).
pub const TRADE_PAGES_MAX: usize = 4;

/// How far before an order's `updateTime` its trades are looked for: an IOC
/// order trades when it arrives, well within this.
pub const TRADES_LOOKBACK_MS: u64 = 60_000;

/// Tries of one order's trade lookup before the gateway stops, saying why.
pub const TRADE_LOOKUPS_MAX: u32 = 5;

/// `order.status` questions about one order before the gateway stops, saying
/// why (each answered with an error or a state that is not final).
pub const ASKS_MAX: u32 = 50;

/// `order.status`: "Order does not exist." (not in `errors::code`, which
/// lists refusals of `order.place`).
///
/// Final only past the request's `timestamp + recvWindow`: Binance executes
/// no request after it, but a request still on its way may execute after a
/// first "no such order" (an order then sent again with a fresh id would
/// trade twice).
const NO_SUCH_ORDER: i32 = -2013;

/// `mio` tokens of the worker's wait.
const SOCKET: mio::Token = mio::Token(0);
const WAKE: mio::Token = mio::Token(1);

/// The worker's wait when nothing waits on time: orders, commands and
/// replies wake it at once whatever this is.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// A follower's position in a symbol, as `VenueBooks::positions` has it.
type Held = (FollowerIdx, SymbolIdx, Lots);

/// `session.logon`'s request weight.
const SESSION_WEIGHT: u32 = 2;

/// `GET /fapi/v3/positionRisk`'s request weight.
const POSITION_RISK_WEIGHT: u32 = 5;

/// Added to `recvWindow` before "no such order" is final: the clock offset's
/// error and the venue's own stamping.
const NO_SUCH_ORDER_MARGIN_MS: u64 = 1_000;

/// The largest WebSocket message taken (replies are under 1 KiB).
const WS_MESSAGE_BYTES_MAX: usize = 64 * 1024;

/// The gateway's settings; every URL and limit is configuration.
#[derive(Clone, Debug)]
pub struct BinanceGatewayConfig {
    /// Each Ed25519 account on a connection of its own, logged on with
    /// `session.logon`, its requests then unsigned (an Ed25519 signature costs
    /// about 19 µs an order); HMAC accounts share one signed connection. A
    /// worker thread per connection, and the IP's request weight split evenly
    /// between them: for a handful of large accounts, not thousands.
    pub session_logon: bool,
    pub name: String,
    /// `wss://ws-fapi.binance.com/ws-fapi/v1` in production.
    pub ws_api_url: String,
    /// `https://fapi.binance.com`: `userTrades` for orders filled at several prices.
    pub rest_url: String,
    pub limits: LimitsConfig,
    /// Added to every window of `limits` for pacing. The venue stamps a
    /// request when it handles it, later than we sent it by a delay that
    /// varies (one connection is handled in order: the last of a burst waits
    /// for the others), so two requests a window apart by our clock can be
    /// less than a window apart by the venue's. A window longer by more than
    /// that jitter keeps the venue's count under its limit; 100 ms costs 1% of
    /// the 10 s limit's throughput.
    pub pacing_margin: Duration,
    pub recv_window_ms: u64,
    /// The TCP connect and the WebSocket handshake, each; also REST calls.
    pub connect_timeout: Duration,
    /// The worker's wait while anything waits on time (the limiter, an ask,
    /// a reply's timeout, a reconnect, a flush); orders, commands and replies
    /// wake it at once.
    pub tick: Duration,
    /// A request unanswered this long counts as a lost connection.
    pub reply_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Orders handed over and not sent yet, at most (`can_accept`).
    pub queue_max: usize,
    /// How long `recover` waits for the venue's answers.
    pub recover_timeout: Duration,
    /// The wait before asking again about an order whose status answer was
    /// an error or not final, and before looking its trades up again.
    pub ask_again_after: Duration,
}

impl BinanceGatewayConfig {
    pub fn new(name: &str, ws_api_url: &str, rest_url: &str) -> BinanceGatewayConfig {
        BinanceGatewayConfig {
            name: name.to_string(),
            ws_api_url: ws_api_url.to_string(),
            rest_url: rest_url.to_string(),
            limits: LimitsConfig::default(),
            pacing_margin: Duration::from_millis(100),
            recv_window_ms: 5_000,
            connect_timeout: Duration::from_secs(10),
            tick: Duration::from_millis(1),
            reply_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            queue_max: 4096,
            recover_timeout: Duration::from_secs(30),
            ask_again_after: Duration::from_millis(200),
            session_logon: false,
        }
    }
}

/// One follower's Binance account, as the key vault hands it over.
pub struct FollowerAccount {
    /// The follower's id in the model.
    pub follower: String,
    pub api_key: SecretString,
    pub signer: Signer,
}

impl FollowerAccount {
    /// A request `id` of this account at venue time `timestamp_ms`: signed
    /// with its key, or, on a logged-on connection (`session`), not.
    fn envelope(
        &self,
        id: u64,
        timestamp_ms: u64,
        recv_window_ms: u64,
        session: bool,
    ) -> Envelope<'_> {
        Envelope {
            id,
            auth: if session {
                Auth::Session
            } else {
                Auth::Signed {
                    api_key: self.api_key.expose_secret(),
                    signer: &self.signer,
                }
            },
            timestamp_ms,
            recv_window_ms,
        }
    }

    fn ed25519(&self) -> bool {
        matches!(self.signer, Signer::Ed25519(_))
    }
}

impl fmt::Debug for FollowerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowerAccount")
            .field("follower", &self.follower)
            .field("api_key", &"<redacted>")
            .field("signer", &self.signer)
            .finish()
    }
}

/// Why a gateway cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum BinanceGatewayError {
    #[error("binance gateway `{name}`: follower `{follower}` is given twice")]
    DuplicateFollower { name: String, follower: String },
    #[error("binance gateway `{name}`: `{setting}`: {expected}")]
    Setting {
        name: String,
        setting: &'static str,
        expected: &'static str,
    },
    #[error("binance gateway `{name}`: {source}")]
    Limits {
        name: String,
        #[source]
        source: LimitsError,
    },
    #[error("binance gateway `{name}`: starting its thread: {reason}")]
    Spawn { name: String, reason: String },
}

/// What the gateway did, for the summary and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinanceGatewayStats {
    /// `order.place` requests sent, -1021 and throttle resends included.
    pub placed: u64,
    /// `order.status` requests sent.
    pub asked: u64,
    /// Orders of followers without an account, rejected in `submit`.
    pub no_account: u64,
    /// Orders sent again after a -1021.
    pub clock_retries: u64,
    /// Requests the venue refused for rate (the gateway's pacing missed).
    pub throttled: u64,
    /// `userTrades` calls for orders filled at several prices.
    pub trade_lookups: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// Replies that did not read or named no request of ours.
    pub unreadable_replies: u64,
    /// "No such order" answers asked again because the request's recvWindow
    /// was not over: it could still have executed.
    pub asked_past_window: u64,
    /// Requests the socket did not take at once, kept by tungstenite until a
    /// flush took them on (a venue that reads slower than we send).
    pub send_blocked: u64,
    /// `session.logon`s answered with success (`session_logon`).
    pub logons: u64,
}

impl BinanceGatewayStats {
    /// `other`'s counts added to these (the lanes' sum).
    fn add(&mut self, other: &BinanceGatewayStats) {
        self.placed += other.placed;
        self.asked += other.asked;
        self.no_account += other.no_account;
        self.clock_retries += other.clock_retries;
        self.throttled += other.throttled;
        self.trade_lookups += other.trade_lookups;
        self.reconnects += other.reconnects;
        self.unreadable_replies += other.unreadable_replies;
        self.asked_past_window += other.asked_past_window;
        self.send_blocked += other.send_blocked;
        self.logons += other.logons;
    }
}

/// The Binance gateway: see the module doc.
pub struct BinanceGateway {
    cfg: BinanceGatewayConfig,
    /// Lane 0 serves every account on one signed connection; with
    /// `session_logon`, each Ed25519 account has a lane of its own.
    lanes: Vec<Lane>,
    reports_rx: Receiver<Out>,
    /// Follower id → (lane, the account's place in that lane).
    account_by_follower: HashMap<String, (usize, usize)>,
    /// `FollowerIdx` → (lane, account), for the universe in force.
    account_of: Vec<Option<(usize, usize)>>,
    universe: Arc<Universe>,
    /// Orders handed over whose last report was not delivered yet.
    in_flight: usize,
    last_no_account: Option<String>,
}

/// One worker thread, its connection and the accounts it serves.
struct Lane {
    shared: Arc<Shared>,
    orders_tx: Sender<Job>,
    ctl_tx: Sender<Ctl>,
    /// Orders `submit` took past a full channel (a caller that did not ask
    /// `can_accept`): kept, handed over in order by the next `submit`/`poll`.
    held: VecDeque<Job>,
    thread: Option<JoinHandle<()>>,
    /// The follower whose logged-on connection this is (`session_logon`).
    session_of: Option<String>,
    /// `submit` handed it an order this call: it is woken once, at the end.
    handed: bool,
}

impl Lane {
    /// The worker is to look at its channels now rather than at the end of
    /// its wait. A failed wake (the worker is gone) changes nothing: the
    /// gateway then says down.
    fn wake(&self) {
        let _ = self.shared.waker.wake();
    }

    /// Whether the worker thread is gone while the gateway lives (a panic):
    /// the lane is then down for good, whatever it last said.
    fn ended(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn up(&self) -> bool {
        self.shared.up.load(Ordering::SeqCst) && !self.ended()
    }

    /// Why it is down; `None` when up.
    fn down_reason(&self) -> Option<String> {
        if self.up() {
            return None;
        }
        let why = if self.ended() {
            "the gateway's worker thread ended (a bug: its panic is on stderr); nothing is sent or answered".to_string()
        } else {
            lock(&self.shared.down_reason)
                .clone()
                .unwrap_or_else(|| "down".into())
        };
        Some(match &self.session_of {
            Some(f) => format!("follower `{f}`'s logged-on connection: {why}"),
            None => why,
        })
    }

    /// Hands over what `held` keeps, in order, as far as the channel takes it.
    fn flush_held(&mut self) {
        let mut handed = false;
        while let Some(job) = self.held.pop_front() {
            match self.orders_tx.try_send(job) {
                Ok(()) => handed = true,
                Err(TrySendError::Full(job)) | Err(TrySendError::Disconnected(job)) => {
                    self.held.push_front(job);
                    break;
                }
            }
        }
        if handed {
            self.wake();
        }
    }
}

impl BinanceGateway {
    /// Starts the worker thread, which connects at once. `accounts` are the
    /// followers' keys; a follower without one has its orders rejected.
    pub fn new(
        cfg: BinanceGatewayConfig,
        accounts: Vec<FollowerAccount>,
        universe: Arc<Universe>,
    ) -> Result<BinanceGateway, BinanceGatewayError> {
        let setting = |setting, expected| BinanceGatewayError::Setting {
            name: cfg.name.clone(),
            setting,
            expected,
        };
        if !(cfg.ws_api_url.starts_with("ws://") || cfg.ws_api_url.starts_with("wss://")) {
            return Err(setting("ws_api_url", "a ws:// or wss:// URL"));
        }
        if !(cfg.rest_url.starts_with("http://") || cfg.rest_url.starts_with("https://")) {
            return Err(setting("rest_url", "an http:// or https:// URL"));
        }
        if cfg.queue_max == 0 {
            return Err(setting("queue_max", "at least 1"));
        }
        if cfg.tick.is_zero() || cfg.connect_timeout.is_zero() || cfg.reply_timeout.is_zero() {
            return Err(setting(
                "tick, connect_timeout, reply_timeout",
                "each above 0",
            ));
        }
        if cfg.recv_window_ms == 0 {
            return Err(setting("recv_window_ms", "above 0"));
        }
        let mut seen = std::collections::HashSet::new();
        for a in &accounts {
            if !seen.insert(a.follower.clone()) {
                return Err(BinanceGatewayError::DuplicateFollower {
                    name: cfg.name.clone(),
                    follower: a.follower.clone(),
                });
            }
        }
        // Lane 0: every account signing each request; with `session_logon`,
        // each Ed25519 account alone on a logged-on connection.
        let mut signed = Vec::new();
        let mut sessions = Vec::new();
        for a in accounts {
            if cfg.session_logon && a.ed25519() {
                sessions.push(a);
            } else {
                signed.push(a);
            }
        }
        let mut groups: Vec<(Vec<FollowerAccount>, bool)> = Vec::new();
        if !signed.is_empty() || sessions.is_empty() {
            groups.push((signed, false));
        }
        groups.extend(sessions.into_iter().map(|a| (vec![a], true)));
        // One IP: its request weight is split evenly between the connections.
        let mut limits = cfg.limits.clone();
        let share = limits.ip_weight.count_max / groups.len() as u32;
        if groups.len() > 1 && share < 2 * limits.handshake_weight.max(1) {
            return Err(setting(
                "session_logon",
                "fewer logged-on accounts, or a larger request_weight: each connection's share of the IP's request weight must hold two handshakes",
            ));
        }
        limits.ip_weight.count_max = share;
        // The margin widens the windows for pacing only: the limiter still
        // reads the venue's `rateLimits` by the venue's own windows.
        limits.pacing_margin =
            Nanos(u64::try_from(cfg.pacing_margin.as_nanos()).unwrap_or(u64::MAX));
        let (reports_tx, reports_rx) = unbounded();
        let mut account_by_follower = HashMap::new();
        let mut lanes = Vec::with_capacity(groups.len());
        for (lane, (accounts, session)) in groups.into_iter().enumerate() {
            for (i, a) in accounts.iter().enumerate() {
                account_by_follower.insert(a.follower.clone(), (lane, i));
            }
            lanes.push(Self::spawn_lane(
                &cfg,
                &limits,
                accounts,
                session,
                &universe,
                reports_tx.clone(),
            )?);
        }
        let mut gw = BinanceGateway {
            cfg,
            lanes,
            reports_rx,
            account_by_follower,
            account_of: Vec::new(),
            universe: Arc::clone(&universe),
            in_flight: 0,
            last_no_account: None,
        };
        gw.map_accounts();
        Ok(gw)
    }

    /// A worker thread for `accounts`, connecting at once; `session`: its one
    /// account logs on (`session.logon`) on each connection.
    fn spawn_lane(
        cfg: &BinanceGatewayConfig,
        limits: &LimitsConfig,
        accounts: Vec<FollowerAccount>,
        session: bool,
        universe: &Arc<Universe>,
        reports_tx: Sender<Out>,
    ) -> Result<Lane, BinanceGatewayError> {
        let limiter =
            Limiter::new(limits, accounts.len()).map_err(|source| BinanceGatewayError::Limits {
                name: cfg.name.clone(),
                source,
            })?;
        let spawn_error = |e: std::io::Error| BinanceGatewayError::Spawn {
            name: cfg.name.clone(),
            reason: e.to_string(),
        };
        let poll = mio::Poll::new().map_err(spawn_error)?;
        let waker = mio::Waker::new(poll.registry(), WAKE).map_err(spawn_error)?;
        let shared = Arc::new(Shared {
            waker,
            up: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
            down_reason: Mutex::new(Some("not connected yet".into())),
            universe: Mutex::new(Arc::clone(universe)),
            stats: Mutex::new(BinanceGatewayStats::default()),
            refusals: Mutex::new(std::collections::BTreeMap::new()),
        });
        let (orders_tx, orders_rx) = bounded(cfg.queue_max);
        let (ctl_tx, ctl_rx) = unbounded();
        let session_of = session.then(|| accounts[0].follower.clone());
        let worker = Worker {
            rest: RestClient::new(&cfg.rest_url, cfg.connect_timeout, cfg.recv_window_ms),
            cfg: cfg.clone(),
            shared: Arc::clone(&shared),
            accounts,
            limiter,
            clock: ClockOffset::new(),
            encoder: Encoder::new(),
            parser: ReplyParser::new(),
            trades_parser: StreamParser::new(),
            universe: Arc::clone(universe),
            conn: None,
            connected_once: false,
            reconnect_at: Instant::now(),
            reconnect_delay: cfg.reconnect_min,
            next_request: 0,
            live: HashMap::new(),
            queue: VecDeque::new(),
            asks: VecDeque::new(),
            requests: HashMap::new(),
            owed: VecDeque::new(),
            out: reports_tx,
            fatal: None,
            recovery: None,
            frame: Vec::new(),
            request: Vec::new(),
            poll,
            events: mio::Events::with_capacity(8),
            unflushed: false,
            started: clock::now(),
            logon: if session { Logon::Needed } else { Logon::Off },
        };
        let thread = std::thread::Builder::new()
            .name(format!("binance-gw-{}", cfg.name))
            .spawn(move || worker.run(&orders_rx, &ctl_rx))
            .map_err(|e| BinanceGatewayError::Spawn {
                name: cfg.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(Lane {
            shared,
            orders_tx,
            ctl_tx,
            held: VecDeque::new(),
            thread: Some(thread),
            session_of,
            handed: false,
        })
    }

    /// Waits, at most `timeout`, until the gateway is up; whether it is.
    pub fn wait_up(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while !self.is_up() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.is_up()
    }

    /// What every lane did, added up.
    pub fn stats(&self) -> BinanceGatewayStats {
        let mut sum = BinanceGatewayStats::default();
        for l in &self.lanes {
            sum.add(&lock(&l.shared.stats));
        }
        sum
    }

    /// The last follower whose order was rejected for want of an account.
    pub fn last_no_account(&self) -> Option<&str> {
        self.last_no_account.as_deref()
    }

    fn map_accounts(&mut self) {
        self.account_of = self
            .universe
            .followers
            .iter()
            .map(|f| self.account_by_follower.get(&f.id).copied())
            .collect();
    }

    fn flush_held(&mut self) {
        for l in &mut self.lanes {
            l.flush_held();
        }
    }
}

impl Drop for BinanceGateway {
    fn drop(&mut self) {
        for l in &self.lanes {
            l.shared.stop.store(true, Ordering::SeqCst);
            l.wake();
        }
        for l in &mut self.lanes {
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Gateway for BinanceGateway {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn can_accept(&self, orders: usize) -> bool {
        // Down, it takes (and refuses) every order at once. Each lane has its
        // own queue; the fullest one decides (orders may all be its).
        !self.is_up()
            || self.lanes.iter().all(|l| {
                l.shared.unsent.load(Ordering::SeqCst) + l.held.len() + orders
                    <= self.cfg.queue_max.max(orders)
            })
    }

    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        self.flush_held();
        let up = self.is_up();
        for o in orders {
            if !up {
                out(rejected(o.id, RejectReason::VenueDown, now));
                continue;
            }
            let Some((lane, account)) = self
                .account_of
                .get(o.follower.0 as usize)
                .copied()
                .flatten()
            else {
                lock(&self.lanes[0].shared.stats).no_account += 1;
                self.last_no_account = Some(
                    self.universe
                        .followers
                        .get(o.follower.0 as usize)
                        .map_or_else(|| format!("#{}", o.follower.0), |f| f.id.clone()),
                );
                out(rejected(o.id, RejectReason::Other, now));
                continue;
            };
            self.in_flight += 1;
            let l = &mut self.lanes[lane];
            l.shared.unsent.fetch_add(1, Ordering::SeqCst);
            let job = Job { order: *o, account };
            l.handed = true;
            if !l.held.is_empty() {
                l.held.push_back(job);
                continue;
            }
            if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
                l.orders_tx.try_send(job)
            {
                l.held.push_back(job);
            }
        }
        for l in &mut self.lanes {
            if std::mem::take(&mut l.handed) {
                l.wake();
            }
        }
    }

    fn poll(&mut self, _now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize {
        self.flush_held();
        let mut n = 0;
        // Bounded by what the worker made since the last poll.
        while let Ok(o) = self.reports_rx.try_recv() {
            if o.ends {
                debug_assert!(self.in_flight > 0);
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            out(o.report);
            n += 1;
        }
        n
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Up when every lane is: one connection down (a follower's logged-on
    /// one included) fails the whole gateway closed, saying which.
    fn is_up(&self) -> bool {
        self.lanes.iter().all(Lane::up)
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.universe = Arc::clone(universe);
        for l in &self.lanes {
            *lock(&l.shared.universe) = Arc::clone(universe);
            l.wake();
        }
        self.map_accounts();
    }

    fn down_reason(&self) -> Option<String> {
        self.lanes.iter().find_map(Lane::down_reason)
    }

    /// What the venue refused, by its code, and what the gateway did that the
    /// engine's reports do not show.
    fn summary_lines(&self) -> Vec<String> {
        let s = self.stats();
        let mut lines = vec![format!(
            "venue `{}` (Binance): order.place {}, order.status {} (again past a request's recvWindow {}), sent again after -1021 {}, refused for rate {}, reconnects {}, logons {}, userTrades lookups {}, unreadable replies {}",
            self.cfg.name,
            s.placed,
            s.asked,
            s.asked_past_window,
            s.clock_retries,
            s.throttled,
            s.reconnects,
            s.logons,
            s.trade_lookups,
            s.unreadable_replies
        )];
        let mut refusals = std::collections::BTreeMap::new();
        for l in &self.lanes {
            for (k, (n, msg)) in lock(&l.shared.refusals).iter() {
                let e = refusals.entry(*k).or_insert((0, msg.clone()));
                e.0 += n;
            }
        }
        for ((status, code), (n, msg)) in refusals {
            lines.push(format!(
                "  refused {n}× with HTTP {status}, code {code}: {msg}"
            ));
        }
        lines
    }

    /// Every follower's positions as the venue states them (`positionRisk`);
    /// Binance does not say what it received, so those counts are `None`.
    fn books(&mut self) -> Option<Result<VenueBooks, VenueError>> {
        let failed = |cause: String| VenueError::Failed {
            venue: self.cfg.name.clone(),
            what: "asking each follower's positions".into(),
            cause,
        };
        let mut replies = Vec::with_capacity(self.lanes.len());
        for l in &self.lanes {
            let (tx, rx) = bounded(1);
            if l.ctl_tx.send(Ctl::Books { reply: tx }).is_err() {
                return Some(Err(failed("the gateway's thread has stopped".into())));
            }
            l.wake();
            replies.push(rx);
        }
        // Each account may wait for the limiter up to `recover_timeout`.
        let patience = self.cfg.recover_timeout * 2;
        let mut positions = Vec::new();
        for rx in replies {
            match rx.recv_timeout(patience) {
                Ok(Ok(p)) => positions.extend(p.into_iter().filter(|p| p.2 .0 != 0)),
                Ok(Err(why)) => return Some(Err(failed(why))),
                Err(_) => return Some(Err(failed(format!("no answer within {patience:?}")))),
            }
        }
        Some(Ok(VenueBooks {
            orders_received: None,
            duplicate_client_ids: None,
            positions,
        }))
    }

    /// Asks `order.status` by client id about each order (connecting first if
    /// it must) and waits at most `recover_timeout` for every answer: fills by
    /// the module's rule, then the order's end; `-2013` → `Rejected`,
    /// `UnknownOrder`. An order of a follower without an account cannot be
    /// asked: the whole call fails, naming it.
    fn recover(
        &mut self,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        let failed = |cause: String| VenueError::Failed {
            venue: self.cfg.name.clone(),
            what: format!("asking about {} orders", orders.len()),
            cause,
        };
        let mut asked = vec![Vec::new(); self.lanes.len()];
        for o in orders {
            match self
                .account_of
                .get(o.follower.0 as usize)
                .copied()
                .flatten()
            {
                Some((lane, account)) => asked[lane].push((*o, account)),
                None => {
                    return Err(failed(format!(
                        "order {} is of follower #{} without an account",
                        client_order_id(o.id),
                        o.follower.0
                    )))
                }
            }
        }
        let mut replies = Vec::new();
        for (l, orders) in self.lanes.iter().zip(asked) {
            if orders.is_empty() {
                continue;
            }
            let (tx, rx) = bounded(1);
            l.ctl_tx
                .send(Ctl::Recover { orders, reply: tx })
                .map_err(|_| failed("the gateway's thread has stopped".into()))?;
            l.wake();
            replies.push((l, rx));
        }
        // The lanes ask at once; each answer within `recover_timeout` of the
        // call.
        let until = Instant::now() + self.cfg.recover_timeout;
        let mut reports = Vec::new();
        for (l, rx) in replies {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Ok(r)) => reports.extend(r),
                Ok(Err(why)) => return Err(failed(why)),
                Err(_) => {
                    return Err(failed(format!(
                        "no answer for every order within {:?}: {}",
                        self.cfg.recover_timeout,
                        l.down_reason().unwrap_or_default()
                    )))
                }
            }
        }
        for r in reports {
            out(r);
        }
        Ok(())
    }
}

/// The fills of an order the venue reports `executed` of at `avg`, by the rule
/// of the module doc: `Ok(Some(fill))` for one fill at an average on the grid,
/// `Ok(None)` when its trades must be looked up, `Err` when `executed` is not a
/// whole number of lots.
pub fn fills_of(
    venue_order_id: u64,
    executed: Decimal,
    avg: Decimal,
    spec: &SymbolSpec,
) -> Result<Option<(u64, Lots, Ticks)>, String> {
    let qty = Lots::from_decimal(executed, spec.lot_size).map_err(|e| {
        format!(
            "{}: executedQty {executed} of order {venue_order_id}: {e}",
            spec.name
        )
    })?;
    debug_assert!(qty.0 >= 0);
    if qty.0 == 0 {
        return Ok(Some((0, Lots::ZERO, Ticks(0))));
    }
    Ok(Ticks::from_decimal(avg, spec.tick_size)
        .ok()
        .filter(|t| t.0 > 0)
        .map(|price| (DERIVED_TRADE_ID_BIT | venue_order_id, qty, price)))
}

// ---------------------------------------------------------------------------
// Between the two threads.

struct Shared {
    /// Wakes the worker from its wait on the socket: an order or a command
    /// for it, or `stop`.
    waker: mio::Waker,
    up: AtomicBool,
    stop: AtomicBool,
    /// Orders handed over and neither sent nor ended.
    unsent: AtomicUsize,
    down_reason: Mutex<Option<String>>,
    universe: Mutex<Arc<Universe>>,
    stats: Mutex<BinanceGatewayStats>,
    /// `order.place` refusals by (HTTP status, venue code): how many, and the
    /// first one's message.
    refusals: Mutex<std::collections::BTreeMap<(u16, i32), (u64, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Job {
    order: FollowerOrder,
    account: usize,
}

enum Ctl {
    Recover {
        orders: Vec<(AskedOrder, usize)>,
        reply: Sender<Result<Vec<ExecReport>, String>>,
    },
    /// Every account's positions (`Gateway::books`).
    Books {
        reply: Sender<Result<Vec<Held>, String>>,
    },
}

/// A report, and whether it is its order's last.
struct Out {
    report: ExecReport,
    ends: bool,
}

fn rejected(order_id: u64, reason: RejectReason, now: Nanos) -> ExecReport {
    ExecReport {
        order_id,
        kind: ExecKind::Rejected,
        reject: reason,
        recv_ts: now,
        ..ExecReport::default()
    }
}

// ---------------------------------------------------------------------------
// The worker thread.

/// Why an order is asked about, which decides what `-2013` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// An unknown outcome: never received → `Transient` (retry, fresh id).
    Unknown,
    /// On the wire when the connection was lost: never received → `UnknownOrder`.
    Settle,
    /// `Gateway::recover`: never received → `UnknownOrder`, reports to the batch.
    Recover,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the limiter.
    Queued,
    /// `order.place` sent, request id.
    Placed(u64),
    /// To be asked about (at `ask_at`).
    ToAsk,
    /// `order.status` sent, request id.
    Asking(u64),
    /// Answered; waiting for its trades (`owed`).
    Owed,
}

struct Live {
    id: u64,
    account: usize,
    symbol: SymbolIdx,
    follower: FollowerIdx,
    /// The order itself; `None` for one known only from `recover`.
    order: Option<FollowerOrder>,
    stage: Stage,
    why: Why,
    /// Asked about because it was on the wire when the connection was lost:
    /// the gateway is not up until it is settled.
    settle: bool,
    clock_retried: bool,
    acked: bool,
    ask_at: Instant,
    asks: u32,
    /// The venue's time (ms, by `ClockOffset`) in the timestamp of the last
    /// `order.place` of it; for an order known from `recover`, this worker's
    /// start (the process that sent it had ended by then). The venue executes
    /// no request after `timestamp + recvWindow`, so "no such order" is final
    /// only once that has passed (`NO_SUCH_ORDER_MARGIN_MS` for the clocks).
    placed_ms: u64,
}

struct Pending {
    order: u64,
    sent: Nanos,
    sent_at: Instant,
}

/// A reply, owned, so that the parser's borrow ends before it is acted on.
struct Got {
    id: Option<u64>,
    status: u16,
    outcome: GotOutcome,
    limits: Vec<RateLimitReport>,
}

enum GotOutcome {
    Order(GotOrder),
    Session,
    Error {
        code: i32,
        msg: String,
        retry_after_ms: Option<u64>,
    },
}

#[derive(Clone, Copy, Debug)]
struct GotOrder {
    venue_order_id: u64,
    status: OrderStatus,
    executed: Decimal,
    avg: Decimal,
    update_ms: u64,
}

/// An order answered and filled at several prices, its trades still to read.
struct OwedTrades {
    order: u64,
    got: GotOrder,
    tries: u32,
    at: Instant,
}

use crate::binance::ws::Ws;

struct Worker {
    cfg: BinanceGatewayConfig,
    /// When this worker began: every order `recover` asks about was sent
    /// before it.
    started: Nanos,
    /// Where the connection's `session.logon` stands (a lane of one Ed25519
    /// account); `Off` on a lane that signs each request.
    logon: Logon,
    shared: Arc<Shared>,
    accounts: Vec<FollowerAccount>,
    limiter: Limiter,
    clock: ClockOffset,
    encoder: Encoder,
    parser: ReplyParser,
    trades_parser: StreamParser,
    rest: RestClient,
    universe: Arc<Universe>,
    conn: Option<Ws>,
    connected_once: bool,
    reconnect_at: Instant,
    reconnect_delay: Duration,
    next_request: u64,
    /// Every order the worker holds, until its last report.
    live: HashMap<u64, Live>,
    /// Orders waiting for the limiter, in arrival order.
    queue: VecDeque<u64>,
    /// Orders to ask about, in order.
    asks: VecDeque<u64>,
    requests: HashMap<u64, Pending>,
    owed: VecDeque<OwedTrades>,
    out: Sender<Out>,
    fatal: Option<String>,
    recovery: Option<Recovery>,
    frame: Vec<u8>,
    request: Vec<u8>,
    /// What the worker waits on between turns: its connection's socket
    /// (readable, writable) and `Shared::waker`.
    poll: mio::Poll,
    events: mio::Events,
    /// Frames the socket did not take at once, kept by tungstenite until a
    /// flush gets them out.
    unflushed: bool,
}

/// The raw socket under a connection, plain or TLS.
fn socket_fd(ws: &Ws) -> std::os::fd::RawFd {
    use std::os::fd::AsRawFd;
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s.as_raw_fd(),
        MaybeTlsStream::Rustls(s) => s.get_ref().as_raw_fd(),
        _ => -1,
    }
}

/// A logged-on lane's connection: `Needed` after each connect, `Sent` with
/// the request's id until the venue answers, `On` once it accepted the key.
/// Nothing else is sent before `On`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Logon {
    Off,
    Needed,
    Sent(u64),
    On,
}

struct Recovery {
    left: usize,
    reports: Vec<ExecReport>,
    reply: Sender<Result<Vec<ExecReport>, String>>,
}

impl Worker {
    fn run(mut self, orders_rx: &Receiver<Job>, ctl_rx: &Receiver<Ctl>) {
        // Bounded by `stop`, which the gateway's drop sets.
        while !self.shared.stop.load(Ordering::SeqCst) {
            let now = clock::now();
            while let Ok(c) = ctl_rx.try_recv() {
                self.control(c);
            }
            {
                let u = lock(&self.shared.universe);
                if !Arc::ptr_eq(&u, &self.universe) {
                    self.universe = Arc::clone(&u);
                }
            }
            // Bounded by the channel's capacity.
            while let Ok(job) = orders_rx.try_recv() {
                self.take(job, now);
            }
            if self.conn.is_none() && Instant::now() >= self.reconnect_at {
                self.connect();
            }
            self.retry_owed();
            let mut more = false;
            if self.conn.is_some() {
                match self
                    .send_due()
                    .and_then(|()| self.flush())
                    .and_then(|()| self.read())
                {
                    Ok(m) => more = m,
                    Err(why) => self.lost(why),
                }
                self.check_timeouts();
            }
            self.publish();
            self.wait(more);
        }
        if let Some(mut ws) = self.conn.take() {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
    }

    fn stats(&self) -> MutexGuard<'_, BinanceGatewayStats> {
        lock(&self.shared.stats)
    }

    /// Every account's positions in the model's symbols, asked with
    /// `positionRisk` (weight 5 each), paced by the limiter: blocking, for the
    /// end of a run. Refused up front when asking every account would take
    /// more than half the IP's weight: the venue's statements are then the
    /// reconciliation. A symbol the model does not have is not fillcast's
    /// (the account's own trading) and is left out.
    fn books(&mut self) -> Result<Vec<Held>, String> {
        let need = self.accounts.len() as u64 * u64::from(POSITION_RISK_WEIGHT);
        let budget = u64::from(self.cfg.limits.ip_weight.count_max);
        if need > budget / 2 {
            return Err(format!(
                "asking the positions of {} accounts costs {need} of the IP's request weight ({budget} a window): more than half of it; reconcile with the venue's own statements",
                self.accounts.len()
            ));
        }
        let mut out = Vec::new();
        for account in 0..self.accounts.len() {
            let deadline = Instant::now() + self.cfg.recover_timeout;
            loop {
                match self
                    .limiter
                    .admit_request(POSITION_RISK_WEIGHT, clock::now())
                {
                    Ok(()) => break,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => {
                        return Err("the IP's request weight left no room for positionRisk".into())
                    }
                }
            }
            let a = &self.accounts[account];
            let follower = a.follower.clone();
            let positions = self
                .rest
                .position_risk(
                    a.api_key.expose_secret(),
                    &a.signer,
                    self.clock.venue_ms(clock::now()) as i64,
                )
                .map_err(|e| format!("follower `{follower}`'s positions: {e}"))?;
            let Some(f) = self
                .universe
                .followers
                .iter()
                .position(|x| x.id == follower)
            else {
                continue;
            };
            for (name, qty) in positions {
                let Some(sym) = self
                    .universe
                    .symbols
                    .iter()
                    .position(|x| x.name == name && !x.removed)
                else {
                    continue;
                };
                let spec = &self.universe.symbols[sym];
                let lots = Lots::from_decimal(qty, spec.lot_size).map_err(|e| {
                    format!(
                        "follower `{follower}` holds {qty} {name}, not whole lots of {}: {e}",
                        spec.lot_size
                    )
                })?;
                out.push((FollowerIdx(f as u32), SymbolIdx(sym as u16), lots));
            }
        }
        Ok(out)
    }

    fn control(&mut self, c: Ctl) {
        match c {
            Ctl::Recover { orders, reply } => {
                let mut recovery = Recovery {
                    left: 0,
                    reports: Vec::new(),
                    reply,
                };
                for (o, account) in orders {
                    if self.live.contains_key(&o.id) {
                        continue;
                    }
                    recovery.left += 1;
                    self.live.insert(
                        o.id,
                        Live {
                            id: o.id,
                            account,
                            symbol: o.symbol,
                            follower: o.follower,
                            order: None,
                            stage: Stage::ToAsk,
                            why: Why::Recover,
                            settle: false,
                            clock_retried: false,
                            acked: true,
                            ask_at: Instant::now(),
                            asks: 0,
                            placed_ms: self.clock.venue_ms(self.started),
                        },
                    );
                    self.asks.push_back(o.id);
                }
                if recovery.left == 0 {
                    let _ = recovery.reply.send(Ok(Vec::new()));
                } else {
                    self.recovery = Some(recovery);
                }
            }
            Ctl::Books { reply } => {
                let _ = reply.send(self.books());
            }
        }
    }

    fn up(&self) -> bool {
        self.conn.is_some()
            && self.fatal.is_none()
            && matches!(self.logon, Logon::Off | Logon::On)
            && !self.live.values().any(|l| l.settle)
    }

    fn publish(&self) {
        let up = self.up();
        if up {
            *lock(&self.shared.down_reason) = None;
        }
        self.shared.up.store(up, Ordering::SeqCst);
    }

    fn down(&self, why: String) {
        self.shared.up.store(false, Ordering::SeqCst);
        *lock(&self.shared.down_reason) = Some(why);
    }

    /// An order handed over: queued for the limiter, or refused `VenueDown`
    /// when it cannot leave now (it never did).
    fn take(&mut self, job: Job, now: Nanos) {
        if !self.up() {
            self.shared.unsent.fetch_sub(1, Ordering::SeqCst);
            self.emit(
                job.order.id,
                rejected(job.order.id, RejectReason::VenueDown, now),
                true,
            );
            return;
        }
        let o = job.order;
        self.live.insert(
            o.id,
            Live {
                id: o.id,
                account: job.account,
                symbol: o.symbol,
                follower: o.follower,
                order: Some(o),
                stage: Stage::Queued,
                why: Why::Unknown,
                settle: false,
                clock_retried: false,
                acked: false,
                ask_at: Instant::now(),
                asks: 0,
                placed_ms: 0,
            },
        );
        self.queue.push_back(o.id);
    }

    /// A report of order `id`: to the engine, or to the recovery it belongs to.
    fn emit(&mut self, id: u64, r: ExecReport, ends: bool) {
        let recovering = self.live.get(&id).is_some_and(|l| l.why == Why::Recover);
        if recovering {
            if let Some(rec) = self.recovery.as_mut() {
                rec.reports.push(r);
            }
        } else {
            let _ = self.out.send(Out { report: r, ends });
        }
    }

    /// Order `id` has had its last report.
    fn ended(&mut self, id: u64) {
        let Some(l) = self.live.remove(&id) else {
            return;
        };
        if l.why == Why::Recover {
            if let Some(rec) = self.recovery.as_mut() {
                rec.left = rec.left.saturating_sub(1);
                if rec.left == 0 {
                    let rec = self.recovery.take().expect("checked above");
                    let _ = rec.reply.send(Ok(rec.reports));
                }
            }
        }
    }

    fn end_with(&mut self, id: u64, r: ExecReport) {
        self.emit(id, r, true);
        self.ended(id);
    }

    fn connect(&mut self) {
        // The handshake weighs on the IP like any request (a reconnect's too):
        // uncounted, the questions that follow it could meet a 429.
        let now = clock::now();
        if let Err(at) = self
            .limiter
            .admit_request(self.cfg.limits.handshake_weight, now)
        {
            let wait = Duration::from_nanos(at.0.saturating_sub(now.0));
            self.down(format!(
                "connecting to the WebSocket API waits {} ms for the IP weight (a handshake weighs {})",
                wait.as_millis(),
                self.cfg.limits.handshake_weight
            ));
            // A ban without end (a hostile `retryAfter`): asked again each turn.
            if let Some(t) = Instant::now().checked_add(wait) {
                self.reconnect_at = t;
            }
            return;
        }
        match crate::binance::ws::connect(
            &self.cfg.ws_api_url,
            self.cfg.connect_timeout,
            self.cfg.tick,
            WS_MESSAGE_BYTES_MAX,
        ) {
            Ok(mut ws) => {
                if let Err(e) = self.watch(&mut ws) {
                    self.down(format!("watching the WebSocket API connection: {e}"));
                    self.reconnect_at = Instant::now() + self.reconnect_delay;
                    self.reconnect_delay = (self.reconnect_delay * 2).min(self.cfg.reconnect_max);
                    return;
                }
                self.conn = Some(ws);
                self.unflushed = false;
                if self.logon != Logon::Off {
                    self.logon = Logon::Needed;
                }
                if self.connected_once {
                    self.stats().reconnects += 1;
                }
                self.connected_once = true;
                self.reconnect_delay = self.cfg.reconnect_min;
            }
            Err(why) => {
                self.down(format!("connecting to the WebSocket API: {why}"));
                self.reconnect_at = Instant::now() + self.reconnect_delay;
                self.reconnect_delay = (self.reconnect_delay * 2).min(self.cfg.reconnect_max);
            }
        }
    }

    /// The connection is gone: down now; what was on the wire is asked about
    /// after the reconnect, what never left is refused `VenueDown`.
    fn lost(&mut self, why: String) {
        if let Some(ws) = self.conn.take() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut mio::unix::SourceFd(&socket_fd(&ws)));
        }
        self.unflushed = false;
        if self.logon != Logon::Off {
            self.logon = Logon::Needed;
        }
        self.down(format!("the WebSocket API connection: {why}"));
        self.requests.clear();
        self.reconnect_at = Instant::now() + self.reconnect_delay;
        self.reconnect_delay = (self.reconnect_delay * 2).min(self.cfg.reconnect_max);
        let now = clock::now();
        for id in std::mem::take(&mut self.queue) {
            self.shared.unsent.fetch_sub(1, Ordering::SeqCst);
            self.end_with(id, rejected(id, RejectReason::VenueDown, now));
        }
        let mut ask = Vec::new();
        for l in self.live.values_mut() {
            if matches!(l.stage, Stage::Placed(_)) {
                l.why = Why::Settle;
            }
            // An order whose outcome is still unknown is on the wire whether its
            // question is out (`Asking`) or waits for its time (`ToAsk`).
            if matches!(l.stage, Stage::Placed(_) | Stage::Asking(_) | Stage::ToAsk)
                && matches!(l.why, Why::Settle | Why::Unknown)
            {
                l.settle = true;
            }
            if matches!(l.stage, Stage::Placed(_) | Stage::Asking(_)) {
                l.stage = Stage::ToAsk;
                ask.push(l.id);
            }
        }
        ask.sort_unstable();
        for id in ask {
            if !self.asks.contains(&id) {
                self.asks.push_back(id);
            }
        }
    }

    /// The gateway stops for good: nothing more is sent for any account.
    fn fail(&mut self, why: String) {
        if self.fatal.is_none() {
            self.fatal = Some(why.clone());
        }
        self.down(why);
        let now = clock::now();
        for id in std::mem::take(&mut self.queue) {
            self.shared.unsent.fetch_sub(1, Ordering::SeqCst);
            self.end_with(id, rejected(id, RejectReason::VenueDown, now));
        }
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// Sends the questions due, then the orders the limiter admits; bounded by
    /// the two queues' lengths.
    fn send_due(&mut self) -> Result<(), String> {
        let now = clock::now();
        let at = Instant::now();
        match self.logon {
            Logon::Off | Logon::On => {}
            Logon::Sent(_) => return Ok(()),
            Logon::Needed => return self.send_logon(now),
        }
        for _ in 0..self.asks.len() {
            let Some(id) = self.asks.pop_front() else {
                break;
            };
            let Some(l) = self.live.get(&id) else {
                continue;
            };
            if l.ask_at > at
                || self
                    .limiter
                    .admit_request(self.cfg.limits.order_status_weight, now)
                    .is_err()
            {
                self.asks.push_back(id);
                continue;
            }
            let (account, symbol) = (l.account, l.symbol);
            let Some(spec) = self.universe.symbols.get(symbol.0 as usize) else {
                self.fail(format!(
                    "order {} names symbol #{} the model in force does not have",
                    client_order_id(id),
                    symbol.0
                ));
                continue;
            };
            let name = spec.name.clone();
            let rid = self.request_id();
            let a = &self.accounts[account];
            let env = a.envelope(
                rid,
                self.clock.venue_ms(now),
                self.cfg.recv_window_ms,
                self.logon == Logon::On,
            );
            let cid = client_order_id(id);
            if let Err(e) = self
                .encoder
                .order_status(&mut self.request, &env, &name, &cid)
            {
                self.fail(format!("encoding order.status for {cid}: {e}"));
                continue;
            }
            if let Err(e) = self.send_request(rid, id, now) {
                // Not asked: still to ask, on the next connection.
                self.asks.push_front(id);
                return Err(e);
            }
            self.stats().asked += 1;
            if let Some(l) = self.live.get_mut(&id) {
                l.stage = Stage::Asking(rid);
                l.asks += 1;
            }
        }
        if self.fatal.is_some() {
            return Ok(());
        }
        let universe = Arc::clone(&self.universe);
        let mut keep = VecDeque::with_capacity(self.queue.len());
        while let Some(id) = self.queue.pop_front() {
            let Some(l) = self.live.get(&id) else {
                continue;
            };
            let account = l.account;
            let order = l.order.expect("a queued order is one of ours");
            let now = clock::now();
            if self
                .limiter
                .admit(account, self.cfg.limits.order_place_weight, now)
                .is_err()
            {
                keep.push_back(id);
                continue;
            }
            let Some(spec) = universe.symbols.get(order.symbol.0 as usize) else {
                self.shared.unsent.fetch_sub(1, Ordering::SeqCst);
                self.end_with(id, rejected(id, RejectReason::Other, now));
                continue;
            };
            let place = PlaceOrder::of(&order, spec, RespType::Result);
            let rid = self.request_id();
            let a = &self.accounts[account];
            let placed_ms = self.clock.venue_ms(now);
            let env = a.envelope(
                rid,
                placed_ms,
                self.cfg.recv_window_ms,
                self.logon == Logon::On,
            );
            if self
                .encoder
                .order_place(&mut self.request, &env, &place)
                .is_err()
            {
                // A value the venue cannot take: it never left.
                self.shared.unsent.fetch_sub(1, Ordering::SeqCst);
                self.end_with(id, rejected(id, RejectReason::Other, now));
                continue;
            }
            if let Err(e) = self.send_request(rid, id, now) {
                keep.push_back(id);
                keep.extend(self.queue.drain(..));
                self.queue = keep;
                return Err(e);
            }
            self.shared.unsent.fetch_sub(1, Ordering::SeqCst);
            self.stats().placed += 1;
            if let Some(l) = self.live.get_mut(&id) {
                l.stage = Stage::Placed(rid);
                l.placed_ms = placed_ms;
            }
        }
        self.queue = keep;
        Ok(())
    }

    /// Counts the venue's refusal of an `order.place` by code, keeping the
    /// first message (at most 160 characters; withheld when it quotes the
    /// account's key) for the summary.
    fn refused(&self, account: usize, status: u16, code: i32, msg: &str) {
        let key = self.accounts[account].api_key.expose_secret();
        let shown = if !key.is_empty() && msg.contains(key) {
            "(message withheld: it quotes the API key)".to_string()
        } else {
            msg.chars().take(160).collect()
        };
        let mut r = lock(&self.shared.refusals);
        let e = r.entry((status, code)).or_insert((0, shown));
        e.0 += 1;
    }

    /// `session.logon` for the lane's one account, signed with its Ed25519
    /// key; nothing else goes until it is answered.
    fn send_logon(&mut self, now: Nanos) -> Result<(), String> {
        if self.limiter.admit_request(SESSION_WEIGHT, now).is_err() {
            return Ok(());
        }
        let rid = self.request_id();
        let env = self.accounts[0].envelope(
            rid,
            self.clock.venue_ms(now),
            self.cfg.recv_window_ms,
            false,
        );
        if let Err(e) = self.encoder.session_logon(&mut self.request, &env) {
            self.fail(format!(
                "follower `{}`: session.logon: {e}",
                self.accounts[0].follower
            ));
            return Ok(());
        }
        let ws = self.conn.as_mut().expect("logging on needs a connection");
        let text = String::from_utf8(self.request.clone()).expect("requests are JSON text");
        match ws.send(Message::text(text)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.unflushed = true;
            }
            Err(e) => return Err(format!("sending session.logon: {e}")),
        }
        self.logon = Logon::Sent(rid);
        Ok(())
    }

    /// The venue's answer to the lane's `session.logon`.
    fn on_logon(&mut self, g: Got, received: Nanos) {
        for r in &g.limits {
            self.limiter.absorb(0, *r, received);
        }
        match g.outcome {
            GotOutcome::Session => {
                self.logon = Logon::On;
                self.stats().logons += 1;
            }
            GotOutcome::Error { code, msg, .. } => {
                let follower = self.accounts[0].follower.clone();
                match classify(g.status, Some(code), &msg) {
                    Action::Fatal => self.fail(format!(
                        "the venue refused follower `{follower}`'s key at session.logon (HTTP {}, code {code}: {msg}); nothing more is sent for it until it is fixed and the engine restarted",
                        g.status
                    )),
                    // Anything else: a new connection logs on again.
                    _ => self.lost(format!(
                        "session.logon for follower `{follower}` answered HTTP {}, code {code}: {msg}",
                        g.status
                    )),
                }
            }
            GotOutcome::Order(_) => {
                self.lost("the venue answered session.logon with an order".into())
            }
        }
    }

    fn send_request(&mut self, rid: u64, order: u64, now: Nanos) -> Result<(), String> {
        let ws = self.conn.as_mut().expect("sending needs a connection");
        let text = String::from_utf8(self.request.clone()).expect("requests are JSON text");
        match ws.send(Message::text(text)) {
            Ok(()) => {}
            // Written into tungstenite's buffer; `flush` takes it on.
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.unflushed = true;
                self.stats().send_blocked += 1;
            }
            Err(e) => return Err(format!("sending: {e}")),
        }
        self.requests.insert(
            rid,
            Pending {
                order,
                sent: now,
                sent_at: Instant::now(),
            },
        );
        Ok(())
    }

    /// Reads what arrived, without waiting: whether more may be there (it
    /// stopped at its bound before the socket said it had nothing).
    fn read(&mut self) -> Result<bool, String> {
        // Bounded: each read returns a message or says there is none now.
        for _ in 0..64 {
            let ws = self.conn.as_mut().expect("reading needs a connection");
            match ws.read() {
                Ok(Message::Text(t)) => {
                    self.frame.clear();
                    self.frame.extend_from_slice(t.as_bytes());
                }
                Ok(Message::Binary(b)) => {
                    self.frame.clear();
                    self.frame.extend_from_slice(&b);
                }
                Ok(Message::Close(_)) => return Err("the venue closed it".into()),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(format!("reading: {e}")),
            }
            let received = clock::now();
            let got = self.got();
            match got {
                Some(g) => self.on_reply(g, received),
                None => self.stats().unreadable_replies += 1,
            }
        }
        Ok(true)
    }

    /// Takes on what the socket did not take at once.
    fn flush(&mut self) -> Result<(), String> {
        if !self.unflushed {
            return Ok(());
        }
        let ws = self.conn.as_mut().expect("flushing needs a connection");
        match ws.flush() {
            Ok(()) => {
                self.unflushed = false;
                Ok(())
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("sending: {e}")),
        }
    }

    /// The connection's socket, non-blocking from now on, watched by `poll`.
    ///
    /// Over TLS, rustls's buffer of records not yet written is unbounded, like
    /// tungstenite's of frames: with its default bound (64 KiB), a socket that
    /// takes nothing while a reply is read lets rustls take 0 bytes of a write,
    /// which tungstenite reports as "Connection reset while sending", and a
    /// burst of orders (one leader fill to many followers) would lose a
    /// working connection. What both buffers hold is bounded by what the
    /// limiter admits within `reply_timeout`.
    fn watch(&mut self, ws: &mut Ws) -> std::io::Result<()> {
        match ws.get_mut() {
            MaybeTlsStream::Plain(s) => s.set_nonblocking(true)?,
            MaybeTlsStream::Rustls(s) => {
                s.get_ref().set_nonblocking(true)?;
                s.conn.set_buffer_limit(None);
            }
            _ => {
                return Err(std::io::Error::other(
                    "a WebSocket over a stream the gateway does not know",
                ))
            }
        }
        self.poll.registry().register(
            &mut mio::unix::SourceFd(&socket_fd(ws)),
            SOCKET,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )
    }

    /// Waits until the socket or the waker says something, or until the
    /// next time-driven step is due: not at all when `more` is to be read,
    /// `tick` while anything waits on time (the limiter, an ask, a reply's
    /// timeout, a reconnect, a flush), `IDLE_WAIT` otherwise. mio's wait is
    /// edge-triggered: `read` drains the socket before the worker waits again
    /// unless it says `more`.
    fn wait(&mut self, more: bool) {
        let timed = self.conn.is_none()
            || self.logon == Logon::Needed
            || self.unflushed
            || !self.queue.is_empty()
            || !self.asks.is_empty()
            || !self.owed.is_empty()
            || !self.live.is_empty()
            || self.recovery.is_some();
        let timeout = if more {
            Duration::ZERO
        } else if timed {
            self.cfg.tick
        } else {
            IDLE_WAIT
        };
        // An interrupted or failed wait is a turn like any other.
        let _ = self.poll.poll(&mut self.events, Some(timeout));
    }

    /// The frame as a `Got`, `None` when it does not read.
    fn got(&mut self) -> Option<Got> {
        let mut frame = std::mem::take(&mut self.frame);
        let got = self.parser.parse(&mut frame).ok().map(|r| Got {
            id: match r.id {
                ReplyId::Num(n) => Some(n),
                _ => None,
            },
            status: r.status,
            outcome: match r.outcome {
                Outcome::Order(o) => GotOutcome::Order(GotOrder {
                    venue_order_id: o.order_id,
                    status: o.status,
                    executed: o.executed_qty,
                    avg: o.avg_price,
                    update_ms: o.update_time_ms,
                }),
                Outcome::Session { .. } => GotOutcome::Session,
                Outcome::Error(e) => GotOutcome::Error {
                    code: e.code,
                    msg: e.msg.chars().take(200).collect(),
                    retry_after_ms: e.retry_after_ms,
                },
            },
            limits: r
                .rate_limits
                .as_slice()
                .iter()
                .filter_map(|l| {
                    let kind = match l.kind {
                        RateLimitKind::Orders => "ORDERS",
                        RateLimitKind::RequestWeight => "REQUEST_WEIGHT",
                        RateLimitKind::Other(_) => return None,
                    };
                    let interval = match l.interval {
                        Interval::Second => "SECOND",
                        Interval::Minute => "MINUTE",
                        Interval::Hour => "HOUR",
                        Interval::Day => "DAY",
                    };
                    RateLimitReport::from_venue(
                        kind,
                        interval,
                        u64::from(l.interval_num),
                        l.limit,
                        l.count,
                    )
                })
                .collect(),
        });
        self.frame = frame;
        got
    }

    fn on_reply(&mut self, g: Got, received: Nanos) {
        if let Logon::Sent(rid) = self.logon {
            if g.id == Some(rid) {
                return self.on_logon(g, received);
            }
        }
        let Some(p) = g.id.and_then(|id| self.requests.remove(&id)) else {
            self.stats().unreadable_replies += 1;
            return;
        };
        let Some(l) = self.live.get(&p.order) else {
            return;
        };
        let (account, stage, why, id) = (l.account, l.stage, l.why, l.id);
        for r in &g.limits {
            self.limiter.absorb(account, *r, received);
        }
        let placing = matches!(stage, Stage::Placed(_));
        match g.outcome {
            GotOutcome::Order(o) => {
                if placing {
                    // The venue stamped `updateTime` between our send and now.
                    let _ = self.clock.sample(p.sent, o.update_ms, received);
                }
                self.limiter.on_success(account);
                if o.status.is_final() {
                    self.settled(id, o, received);
                } else {
                    self.ask_later(id);
                }
            }
            GotOutcome::Session => self.ask_now(id, why),
            GotOutcome::Error {
                code: c,
                msg,
                retry_after_ms,
            } => {
                if placing {
                    self.refused(account, g.status, c, &msg);
                }
                if !placing && c == NO_SUCH_ORDER {
                    // Not yet final while the request could still reach the
                    // matching engine: ask again once its recvWindow is over.
                    let final_at = self.live[&id]
                        .placed_ms
                        .saturating_add(self.cfg.recv_window_ms)
                        .saturating_add(NO_SUCH_ORDER_MARGIN_MS);
                    let venue_now = self.clock.venue_ms(received);
                    if venue_now < final_at {
                        let l = self.live.get_mut(&id).expect("looked up above");
                        l.stage = Stage::ToAsk;
                        l.ask_at = Instant::now() + Duration::from_millis(final_at - venue_now);
                        self.asks.push_back(id);
                        self.stats().asked_past_window += 1;
                        return;
                    }
                    let reason = match why {
                        Why::Unknown => RejectReason::Transient,
                        Why::Settle | Why::Recover => RejectReason::UnknownOrder,
                    };
                    self.end_with(id, rejected(id, reason, received));
                    return;
                }
                match classify(g.status, Some(c), &msg) {
                    Action::Reject { reason, .. } if placing => {
                        self.end_with(id, rejected(id, reason, received));
                    }
                    Action::FixClockAndRetry if placing => {
                        let l = self.live.get_mut(&id).expect("looked up above");
                        if l.clock_retried {
                            self.end_with(id, rejected(id, RejectReason::Transient, received));
                        } else {
                            l.clock_retried = true;
                            l.stage = Stage::Queued;
                            self.shared.unsent.fetch_add(1, Ordering::SeqCst);
                            self.queue.push_front(id);
                            self.stats().clock_retries += 1;
                        }
                    }
                    Action::AskVenue if placing => self.ask_now(id, Why::Unknown),
                    Action::Backoff(t) => {
                        self.stats().throttled += 1;
                        let retry = retry_after_ms.map(|ms| self.clock.to_local(ms));
                        self.limiter.on_throttled(t, account, retry, received);
                        let l = self.live.get_mut(&id).expect("looked up above");
                        if placing {
                            l.stage = Stage::Queued;
                            self.shared.unsent.fetch_add(1, Ordering::SeqCst);
                            self.queue.push_front(id);
                        } else {
                            l.stage = Stage::ToAsk;
                            self.asks.push_front(id);
                        }
                    }
                    Action::Fatal => {
                        let follower = self
                            .universe
                            .followers
                            .get(self.live[&id].follower.0 as usize)
                            .map_or("?", |f| f.id.as_str())
                            .to_string();
                        self.fail(format!(
                            "the venue refused follower `{follower}`'s key (HTTP {}, code {c}: {msg}); nothing more is sent until it is fixed and the engine restarted",
                            g.status
                        ));
                        if placing {
                            self.end_with(id, rejected(id, RejectReason::Other, received));
                        } else {
                            self.ask_later(id);
                        }
                    }
                    // A question answered with an error: ask again, later.
                    _ => self.ask_later(id),
                }
            }
        }
    }

    fn ask_now(&mut self, id: u64, why: Why) {
        if let Some(l) = self.live.get_mut(&id) {
            if l.why != Why::Recover && !l.settle {
                l.why = why;
            }
            l.stage = Stage::ToAsk;
            l.ask_at = Instant::now();
            self.asks.push_front(id);
        }
    }

    fn ask_later(&mut self, id: u64) {
        let Some(l) = self.live.get_mut(&id) else {
            return;
        };
        if l.asks >= ASKS_MAX {
            let why = format!(
                "order {} asked about {ASKS_MAX} times without a final answer",
                client_order_id(id)
            );
            self.fail(why);
            return;
        }
        l.stage = Stage::ToAsk;
        l.ask_at = Instant::now() + self.cfg.ask_again_after;
        self.asks.push_back(id);
    }

    /// The venue's final word on order `id`: its reports, by the fill rule.
    fn settled(&mut self, id: u64, o: GotOrder, now: Nanos) {
        let Some(l) = self.live.get(&id) else {
            return;
        };
        let Some(spec) = self.universe.symbols.get(l.symbol.0 as usize) else {
            return self.fail(format!(
                "order {} names symbol #{} the model in force does not have",
                client_order_id(id),
                l.symbol.0
            ));
        };
        if o.status == OrderStatus::Rejected {
            return self.end_with(id, rejected(id, RejectReason::Other, now));
        }
        if let Some(order) = l.order {
            if Lots::from_decimal(o.executed, spec.lot_size).is_ok_and(|done| done > order.qty) {
                return self.fail(format!(
                    "the venue reports order {} (venue order {}) executed {} {}, more than its {} lots of {}; nothing more is sent",
                    client_order_id(id),
                    o.venue_order_id,
                    o.executed,
                    spec.name,
                    order.qty.0,
                    spec.lot_size
                ));
            }
        }
        match fills_of(o.venue_order_id, o.executed, o.avg, spec) {
            Err(why) => self.fail(why),
            Ok(Some((trade_id, qty, price))) => {
                let fills = if qty.0 > 0 {
                    vec![(trade_id, qty, price)]
                } else {
                    Vec::new()
                };
                self.report(id, &fills, qty, &o, now);
            }
            Ok(None) => {
                if let Some(l) = self.live.get_mut(&id) {
                    l.stage = Stage::Owed;
                }
                self.owed.push_back(OwedTrades {
                    order: id,
                    got: o,
                    tries: 0,
                    at: Instant::now(),
                });
                self.retry_owed();
            }
        }
    }

    /// Ack (unless asked by `recover`), the fills, and the remainder's end.
    fn report(
        &mut self,
        id: u64,
        fills: &[(u64, Lots, Ticks)],
        executed: Lots,
        got: &GotOrder,
        now: Nanos,
    ) {
        let l = self.live.get(&id).expect("a settled order is live");
        let (acked, qty) = (l.acked, l.order.map(|o| o.qty));
        let venue_ts = Nanos(got.update_ms.saturating_mul(1_000_000));
        let base = ExecReport {
            order_id: id,
            venue_ts,
            recv_ts: now,
            ..ExecReport::default()
        };
        debug_assert_eq!(fills.iter().map(|f| f.1 .0).sum::<i64>(), executed.0);
        debug_assert!(qty.is_none_or(|q| executed <= q));
        // An order known from `recover` has no quantity here: the venue's
        // FILLED says it filled whole.
        let whole = qty.map_or(got.status == OrderStatus::Filled, |q| executed == q);
        if !acked {
            self.emit(id, base, false);
        }
        for (i, &(trade_id, q, price)) in fills.iter().enumerate() {
            let last = whole && i + 1 == fills.len();
            let r = ExecReport {
                kind: ExecKind::Fill,
                qty: q,
                price,
                trade_id,
                ..base
            };
            self.emit(id, r, last);
        }
        if !whole {
            let remainder = qty.map_or(Lots::ZERO, |q| Lots(q.0 - executed.0));
            let r = ExecReport {
                kind: ExecKind::Canceled,
                qty: remainder,
                ..base
            };
            self.emit(id, r, true);
        }
        self.ended(id);
    }

    /// Looks up the trades owed, the first due of them; a lookup blocks this
    /// thread for one REST call (see the module's list of what is left).
    fn retry_owed(&mut self) {
        let Some(due) = self.owed.front() else {
            return;
        };
        if due.at > Instant::now() {
            return;
        }
        let mut w = self.owed.pop_front().expect("checked above");
        let Some(l) = self.live.get(&w.order) else {
            return;
        };
        let (account, symbol) = (l.account, l.symbol);
        let spec = self.universe.symbols[symbol.0 as usize].clone();
        self.stats().trade_lookups += 1;
        match self.trades_of(account, &spec, &w.got) {
            Ok(fills) => {
                let executed = Lots(fills.iter().map(|f| f.1 .0).sum());
                let got = w.got;
                self.report(w.order, &fills, executed, &got, clock::now());
            }
            Err(why) => {
                w.tries += 1;
                if w.tries >= TRADE_LOOKUPS_MAX {
                    self.fail(format!(
                        "the trades of order {} (venue order {}) could not be read after {} tries: {why}",
                        client_order_id(w.order),
                        w.got.venue_order_id,
                        w.tries
                    ));
                }
                w.at = Instant::now() + self.cfg.ask_again_after;
                self.owed.push_back(w);
            }
        }
    }

    /// The order's trades from `userTrades`, which must add up to `executedQty`.
    fn trades_of(
        &mut self,
        account: usize,
        spec: &SymbolSpec,
        got: &GotOrder,
    ) -> Result<Vec<(u64, Lots, Ticks)>, String> {
        let executed =
            Lots::from_decimal(got.executed, spec.lot_size).map_err(|e| e.to_string())?;
        let mut from = TradesFrom::Time {
            start_ms: got.update_ms.saturating_sub(TRADES_LOOKBACK_MS),
            end_ms: Some(got.update_ms.saturating_add(1_000)),
        };
        let mut fills = Vec::new();
        for _ in 0..TRADE_PAGES_MAX {
            let now = clock::now();
            if let Err(at) = self.limiter.admit_request(5, now) {
                return Err(format!(
                    "the IP weight allows no userTrades call for {} ms",
                    at.0.saturating_sub(now.0) / 1_000_000
                ));
            }
            let a = &self.accounts[account];
            let body = self
                .rest
                .user_trades(
                    a.api_key.expose_secret(),
                    &a.signer,
                    &spec.name,
                    from,
                    USER_TRADES_MAX,
                    self.clock.venue_ms(now) as i64,
                )
                .map_err(|e| e.to_string())?;
            let trades = self
                .trades_parser
                .user_trades(&body)
                .map_err(|e| e.to_string())?;
            let full = trades.len() >= USER_TRADES_MAX;
            let last = trades.last().map(|t| t.id);
            for t in trades.iter().filter(|t| t.order_id == got.venue_order_id) {
                let qty = Lots::from_decimal(t.qty, spec.lot_size).map_err(|e| e.to_string())?;
                let price =
                    Ticks::from_decimal(t.price, spec.tick_size).map_err(|e| e.to_string())?;
                fills.push((t.id, qty, price));
            }
            match (full, last) {
                (true, Some(last)) => from = TradesFrom::Id(last + 1),
                _ => break,
            }
        }
        let found: i64 = fills.iter().map(|f| f.1 .0).sum();
        if found != executed.0 {
            return Err(format!(
                "userTrades shows {found} of the {} lots the venue reports executed",
                executed.0
            ));
        }
        Ok(fills)
    }

    /// A request unanswered for `reply_timeout`: the connection is taken as
    /// lost, and what it carried is asked about after the reconnect.
    fn check_timeouts(&mut self) {
        let late = self
            .requests
            .iter()
            .find(|(_, p)| p.sent_at.elapsed() > self.cfg.reply_timeout)
            .map(|(id, _)| *id);
        if let Some(id) = late {
            self.lost(format!(
                "request {id} unanswered for {:?}",
                self.cfg.reply_timeout
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::venue::{
        AccountKey, TestVenue, TestVenueOptions, VenueAccount, VenueLimits, VenueRateLimit,
    };
    use fillcast_engine::config;
    use fillcast_engine::event::OrderType;
    use fillcast_engine::model::{Side, SubIdx};
    use rust_decimal_macros::dec;
    use std::path::Path;

    const MODEL: &str = r#"
[[venues]]
name = "bn"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "bn"

[[leaders]]
id = "L1"
equity = "100000"

[[followers]]
id = "F1"
equity = "100000"

[[followers]]
id = "F2"
equity = "100000"

[[followers]]
id = "F3"
equity = "100000"
"#;

    const KEY_1: &str = "apiKeyOfF1xq7ZcPLvW3mN9sTt2yR8uE4oI6aS5dF1gH0jK";
    const KEY_2: &str = "apiKeyOfF2bV8nM3xC1zL6kJ9hG4fD7sA2qW5eR0tY3uI8o";
    const SECRET: &[u8] = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";

    /// Failure bound of every wait on the network; never an expected duration.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn universe() -> Arc<Universe> {
        let cfg = config::load_str(MODEL, Path::new("test.toml")).expect("test model");
        Arc::new(Universe::from_config(&cfg).expect("test universe"))
    }

    fn venue(limits: VenueLimits) -> TestVenue {
        TestVenue::start_with_limits(
            "127.0.0.1:0",
            TestVenueOptions::btcusdt(vec![
                VenueAccount::hmac(KEY_1, SECRET),
                VenueAccount::hmac(KEY_2, SECRET),
            ]),
            limits,
        )
        .expect("test venue")
    }

    fn gateway_with(v: &TestVenue, tune: impl FnOnce(&mut BinanceGatewayConfig)) -> BinanceGateway {
        let mut cfg = BinanceGatewayConfig::new("bn", &v.ws_api_url(), &v.rest_url());
        cfg.reconnect_min = Duration::from_millis(20);
        cfg.reconnect_max = Duration::from_millis(200);
        cfg.ask_again_after = Duration::from_millis(20);
        tune(&mut cfg);
        let accounts = [("F1", KEY_1), ("F2", KEY_2)]
            .iter()
            .map(|(f, k)| FollowerAccount {
                follower: f.to_string(),
                api_key: SecretString::from(*k),
                signer: Signer::hmac(SECRET).unwrap(),
            })
            .collect();
        let gw = BinanceGateway::new(cfg, accounts, universe()).expect("gateway");
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        gw
    }

    fn gateway(v: &TestVenue) -> BinanceGateway {
        gateway_with(v, |_| {})
    }

    /// Follower `f` (0-based) buys (`qty` > 0) or sells `|qty|` lots at `limit` ticks.
    fn order(id: u64, f: u32, qty: i64, limit: i64) -> FollowerOrder {
        FollowerOrder {
            id,
            sub: SubIdx(0),
            follower: FollowerIdx(f),
            symbol: SymbolIdx(0),
            side: if qty > 0 { Side::Buy } else { Side::Sell },
            qty: Lots(qty.abs()),
            order_type: OrderType::LimitIoc,
            limit: Ticks(limit),
            reduce_only: false,
            leader_event_key: 1,
            ts: clock::now(),
            ..FollowerOrder::default()
        }
    }

    /// Submits `orders` as the I/O thread does (waiting while `can_accept`
    /// says no) and polls until nothing is in flight.
    fn run(gw: &mut BinanceGateway, orders: &[FollowerOrder]) -> Vec<ExecReport> {
        let mut got = Vec::new();
        let until = Instant::now() + PATIENCE;
        hand_over(gw, orders, &mut got, until, |gw| gw.in_flight() == 0);
        got
    }

    /// Hands `orders` over as the I/O thread does (waiting while
    /// `can_accept` says no), reports into `got`, and polls until all are
    /// handed over and `done`; fails at `until`.
    fn hand_over(
        gw: &mut BinanceGateway,
        orders: &[FollowerOrder],
        got: &mut Vec<ExecReport>,
        until: Instant,
        done: impl Fn(&BinanceGateway) -> bool,
    ) {
        let mut left = orders;
        while !left.is_empty() || !done(gw) {
            assert!(
                Instant::now() < until,
                "in flight {}, placed {}",
                gw.in_flight(),
                gw.stats().placed
            );
            if let Some(o) = left.first() {
                if gw.can_accept(1) {
                    gw.submit(std::slice::from_ref(o), clock::now(), &mut |r| got.push(r));
                    left = &left[1..];
                    continue;
                }
            }
            gw.poll(clock::now(), &mut |r| got.push(r));
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn kinds(reports: &[ExecReport], id: u64) -> Vec<(ExecKind, i64, i64, RejectReason)> {
        reports
            .iter()
            .filter(|r| r.order_id == id)
            .map(|r| (r.kind, r.qty.0, r.price.0, r.reject))
            .collect()
    }

    const NONE: RejectReason = RejectReason::None;

    #[test]
    fn a_batch_is_filled_with_exact_reports_and_the_venue_holds_what_they_say() {
        let v = venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(50000.0));
        let mut gw = gateway(&v);
        let orders: Vec<_> = (1..=20)
            .map(|i| {
                order(
                    i,
                    (i % 2) as u32,
                    if i % 3 == 0 {
                        -(i as i64)
                    } else {
                        10 + i as i64
                    },
                    if i % 3 == 0 { 490_000 } else { 510_000 },
                )
            })
            .collect();
        let got = run(&mut gw, &orders);
        let mut net = [0i64; 2];
        for o in &orders {
            let k = kinds(&got, o.id);
            assert_eq!(
                k,
                vec![
                    (ExecKind::Ack, 0, 0, NONE),
                    (ExecKind::Fill, o.qty.0, 500_000, NONE)
                ],
                "order {}",
                o.id
            );
            let fill = got
                .iter()
                .find(|r| r.order_id == o.id && r.kind == ExecKind::Fill)
                .unwrap();
            assert_eq!(fill.trade_id & DERIVED_TRADE_ID_BIT, DERIVED_TRADE_ID_BIT);
            net[o.follower.0 as usize] += o.side.sign() * o.qty.0;
            assert_eq!(v.orders_with_client_id(&client_order_id(o.id)), 1);
        }
        assert_eq!(
            v.position(KEY_1, "BTCUSDT"),
            Decimal::from(net[0]) * dec!(0.001)
        );
        assert_eq!(
            v.position(KEY_2, "BTCUSDT"),
            Decimal::from(net[1]) * dec!(0.001)
        );
        assert_eq!(gw.stats().placed, 20);
        // The venue's books, asked with positionRisk: the same positions, and
        // no count of orders (Binance does not state one).
        let books = gw.books().expect("asked").expect("answered");
        let mut held: Vec<_> = books.positions.iter().map(|p| (p.0 .0, p.2 .0)).collect();
        held.sort_unstable();
        let want: Vec<_> = [(0u32, net[0]), (1, net[1])]
            .into_iter()
            .filter(|p| p.1 != 0)
            .collect();
        assert_eq!(held, want);
        assert_eq!(books.orders_received, None);
        assert_eq!(v.requests("/fapi/v3/positionRisk"), 2);
    }

    #[test]
    fn a_fill_across_two_levels_gives_its_trades_and_a_remainder_is_canceled() {
        let v = venue(VenueLimits::default());
        v.set_levels(
            "BTCUSDT",
            &[(dec!(100.0), dec!(0.5)), (dec!(100.1), dec!(0.3))],
        );
        let mut gw = gateway(&v);
        let got = run(&mut gw, &[order(7, 0, 1_000, 2_000)]);
        let k = kinds(&got, 7);
        assert_eq!(
            k,
            vec![
                (ExecKind::Ack, 0, 0, NONE),
                (ExecKind::Fill, 500, 1_000, NONE),
                (ExecKind::Fill, 300, 1_001, NONE),
                (ExecKind::Canceled, 200, 0, NONE),
            ]
        );
        let ids: Vec<u64> = got
            .iter()
            .filter(|r| r.kind == ExecKind::Fill)
            .map(|r| r.trade_id)
            .collect();
        assert!(ids.iter().all(|id| id & DERIVED_TRADE_ID_BIT == 0) && ids[0] != ids[1]);
        assert_eq!(gw.stats().trade_lookups, 1);
        assert_eq!(v.position(KEY_1, "BTCUSDT"), dec!(0.8));
    }

    #[test]
    fn each_reject_code_maps_to_its_reason() {
        let v = venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let mut gw = gateway(&v);
        let cases = [
            (-2019, RejectReason::InsufficientMargin),
            (-2018, RejectReason::InsufficientMargin),
            (-4164, RejectReason::BelowMin),
            (-2022, RejectReason::ReduceOnly),
            (-2027, RejectReason::PositionLimit),
            (-1111, RejectReason::Other),
        ];
        for (i, (c, reason)) in cases.iter().enumerate() {
            v.reject_next(KEY_1, *c, "refused");
            let id = 100 + i as u64;
            let got = run(&mut gw, &[order(id, 0, 100, 1_010)]);
            assert_eq!(
                kinds(&got, id),
                vec![(ExecKind::Rejected, 0, 0, *reason)],
                "code {c}"
            );
        }
        assert_eq!(v.position(KEY_1, "BTCUSDT"), Decimal::ZERO);
        // And the venue's own -2022: a reduce-only sell with nothing to reduce.
        let mut ro = order(200, 0, -100, 900);
        ro.reduce_only = true;
        let got = run(&mut gw, &[ro]);
        assert_eq!(
            kinds(&got, 200),
            vec![(ExecKind::Rejected, 0, 0, RejectReason::ReduceOnly)]
        );
    }

    #[test]
    fn a_stale_timestamp_is_sent_again_once_with_the_same_client_id() {
        let v = venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let mut gw = gateway(&v);
        v.reject_next(
            KEY_1,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        );
        let got = run(&mut gw, &[order(1, 0, 100, 1_010)]);
        assert_eq!(
            kinds(&got, 1),
            vec![
                (ExecKind::Ack, 0, 0, NONE),
                (ExecKind::Fill, 100, 1_000, NONE)
            ]
        );
        assert_eq!(v.orders_with_client_id(&client_order_id(1)), 2);
        // Twice: the second refusal is final, Transient (a fresh id may go).
        v.reject_next(
            KEY_1,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        );
        v.reject_next(
            KEY_1,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        );
        let got = run(&mut gw, &[order(2, 0, 100, 1_010)]);
        assert_eq!(
            kinds(&got, 2),
            vec![(ExecKind::Rejected, 0, 0, RejectReason::Transient)]
        );
        assert_eq!(v.orders_with_client_id(&client_order_id(2)), 2);
        assert_eq!(gw.stats().clock_retries, 2);
        assert_eq!(v.position(KEY_1, "BTCUSDT"), dec!(0.1));
    }

    #[test]
    fn an_unknown_outcome_is_asked_about_and_its_fill_reported_once() {
        let v = venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let mut gw = gateway(&v);
        v.unknown_outcome_next(KEY_1);
        let got = run(&mut gw, &[order(1, 0, 100, 1_010)]);
        let k = kinds(&got, 1);
        assert_eq!(
            k,
            vec![
                (ExecKind::Ack, 0, 0, NONE),
                (ExecKind::Fill, 100, 1_000, NONE)
            ]
        );
        assert_eq!(v.orders_with_client_id(&client_order_id(1)), 1);
        assert_eq!(gw.stats().asked, 1);
        assert_eq!(v.position(KEY_1, "BTCUSDT"), dec!(0.1));
    }

    #[test]
    fn a_burst_past_the_order_limit_is_paced_and_every_order_answered_once() {
        let limits = VenueLimits {
            orders: vec![VenueRateLimit::new(Interval::Second, 1, 5)],
            ..VenueLimits::default()
        };
        let v = venue(limits);
        v.set_price("BTCUSDT", dec!(100));
        let mut gw = gateway_with(&v, |c| {
            c.limits.order_limits = vec![super::super::limits::Limit {
                count_max: 5,
                window: Nanos(1_000_000_000),
            }];
            c.queue_max = 8;
        });
        let orders: Vec<_> = (1..=12).map(|i| order(i, 0, 100, 1_010)).collect();
        let got = run(&mut gw, &orders);
        for o in &orders {
            assert_eq!(kinds(&got, o.id).len(), 2, "order {}", o.id);
            assert_eq!(v.orders_with_client_id(&client_order_id(o.id)), 1);
        }
        assert_eq!(v.too_many_requests(), 0);
        assert_eq!(gw.stats().throttled, 0);
        assert_eq!(v.position(KEY_1, "BTCUSDT"), dec!(1.2));
    }

    /// `session_logon`: F3's Ed25519 account logs on, on a connection of its
    /// own, and its orders go unsigned (the venue refuses an unsigned order
    /// on a connection that has not logged on); F1's HMAC account signs each
    /// order on the shared connection. After a drop, each connection comes
    /// back and F3's logs on again before anything else.
    #[test]
    fn an_ed25519_account_logs_on_alone_and_its_orders_go_unsigned() {
        use crate::binance::sign::Ed25519Key;
        const KEY_3: &str = "apiKeyOfF3ed25519sessionLogonKeyQ0w9E8r7T6y5U4i3O";
        let seed = [7u8; 32];
        let public = Ed25519Key::from_bytes(&seed).unwrap().public_key();
        let v = TestVenue::start(
            "127.0.0.1:0",
            TestVenueOptions::btcusdt(vec![
                VenueAccount::hmac(KEY_1, SECRET),
                VenueAccount {
                    api_key: KEY_3.into(),
                    key: AccountKey::Ed25519(public),
                    withdrawals: false,
                    futures: true,
                },
            ]),
        )
        .expect("test venue");
        v.set_price("BTCUSDT", dec!(100));
        let mut cfg = BinanceGatewayConfig::new("bn", &v.ws_api_url(), &v.rest_url());
        cfg.session_logon = true;
        cfg.reconnect_min = Duration::from_millis(20);
        cfg.reconnect_max = Duration::from_millis(200);
        let accounts = vec![
            FollowerAccount {
                follower: "F1".into(),
                api_key: SecretString::from(KEY_1),
                signer: Signer::hmac(SECRET).unwrap(),
            },
            FollowerAccount {
                follower: "F3".into(),
                api_key: SecretString::from(KEY_3),
                signer: Signer::Ed25519(Ed25519Key::from_bytes(&seed).unwrap()),
            },
        ];
        let mut gw = BinanceGateway::new(cfg, accounts, universe()).expect("gateway");
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        assert_eq!(v.ws_api_connections(), 2);
        assert_eq!(gw.stats().logons, 1);
        let fills = |got: &[ExecReport], id| {
            kinds(got, id)
                .iter()
                .filter(|k| k.0 == ExecKind::Fill)
                .map(|k| k.1)
                .sum::<i64>()
        };
        let got = run(&mut gw, &[order(1, 0, 100, 1_010), order(2, 2, 60, 1_010)]);
        assert_eq!(
            (fills(&got, 1), fills(&got, 2)),
            (100, 60),
            "{:?}",
            kinds(&got, 2)
        );
        assert_eq!(v.position(KEY_3, "BTCUSDT"), dec!(0.060));
        assert_eq!(v.position(KEY_1, "BTCUSDT"), dec!(0.100));
        v.drop_ws_api();
        let until = Instant::now() + PATIENCE;
        while gw.is_up() {
            assert!(Instant::now() < until);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        assert_eq!(gw.stats().logons, 2, "logged on again after the drop");
        let got = run(&mut gw, &[order(3, 2, -60, 990)]);
        assert_eq!(fills(&got, 3), 60);
        assert_eq!(v.position(KEY_3, "BTCUSDT"), dec!(0));
        assert_eq!(v.too_many_requests(), 0);
    }

    /// With `session_logon`, an Ed25519 key the venue does not know stops its
    /// connection for good, saying whose it is; nothing goes unsigned.
    #[test]
    fn a_refused_session_logon_says_whose_key() {
        use crate::binance::sign::Ed25519Key;
        let v = venue(VenueLimits::default());
        let mut cfg = BinanceGatewayConfig::new("bn", &v.ws_api_url(), &v.rest_url());
        cfg.session_logon = true;
        let accounts = vec![FollowerAccount {
            follower: "F3".into(),
            api_key: SecretString::from("apiKeyTheVenueHasNeverSeen0000000000000000000000"),
            signer: Signer::Ed25519(Ed25519Key::from_bytes(&[9u8; 32]).unwrap()),
        }];
        let gw = BinanceGateway::new(cfg, accounts, universe()).expect("gateway");
        let until = Instant::now() + PATIENCE;
        loop {
            let why = gw.down_reason().unwrap_or_default();
            if why.contains("refused follower `F3`'s key at session.logon") {
                assert!(
                    why.starts_with("follower `F3`'s logged-on connection:"),
                    "{why}"
                );
                break;
            }
            assert!(Instant::now() < until, "{why}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!gw.is_up());
        assert_eq!(gw.stats().logons, 0);
    }

    #[test]
    fn a_dropped_connection_is_down_refuses_venue_down_and_comes_back_up() {
        let v = venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let mut gw = gateway(&v);
        let got = run(&mut gw, &[order(1, 0, 100, 1_010)]);
        assert_eq!(kinds(&got, 1).len(), 2);
        v.drop_ws_api();
        let until = Instant::now() + PATIENCE;
        while gw.is_up() {
            assert!(Instant::now() < until);
            gw.poll(clock::now(), &mut |_| {});
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(gw.down_reason().is_some());
        let mut got = Vec::new();
        gw.submit(&[order(2, 0, 100, 1_010)], clock::now(), &mut |r| {
            got.push(r)
        });
        assert_eq!(
            kinds(&got, 2),
            vec![(ExecKind::Rejected, 0, 0, RejectReason::VenueDown)]
        );
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        assert_eq!(gw.down_reason(), None);
        assert!(gw.stats().reconnects >= 1);
        let got = run(&mut gw, &[order(3, 0, 100, 1_010)]);
        assert_eq!(kinds(&got, 3).len(), 2);
        assert_eq!(v.orders_with_client_id(&client_order_id(2)), 0);
    }

    #[test]
    fn recover_reports_fills_of_filled_orders_and_unknown_ones_never_received() {
        let v = venue(VenueLimits::default());
        v.set_price("BTCUSDT", dec!(100));
        let mut first = gateway(&v);
        let got = run(&mut first, &[order(1, 0, 100, 1_010)]);
        let fill = *got.iter().find(|r| r.kind == ExecKind::Fill).unwrap();
        drop(first);
        let mut gw = gateway(&v);
        let asked = [
            AskedOrder::from(&order(1, 0, 100, 1_010)),
            AskedOrder::from(&order(2, 0, 100, 1_010)),
        ];
        let mut got = Vec::new();
        gw.recover(&asked, &mut |r| got.push(r)).expect("recover");
        let again: Vec<_> = got.iter().filter(|r| r.order_id == 1).collect();
        assert_eq!(again.len(), 1, "{got:?}");
        assert_eq!(
            (
                again[0].kind,
                again[0].qty,
                again[0].price,
                again[0].trade_id
            ),
            (ExecKind::Fill, fill.qty, fill.price, fill.trade_id)
        );
        assert_eq!(
            kinds(&got, 2),
            vec![(ExecKind::Rejected, 0, 0, RejectReason::UnknownOrder)]
        );
        assert_eq!(v.orders_with_client_id(&client_order_id(1)), 1);
    }

    #[test]
    fn a_follower_without_an_account_is_rejected_at_once_and_counted() {
        let v = venue(VenueLimits::default());
        let mut gw = gateway(&v);
        let mut got = Vec::new();
        gw.submit(&[order(9, 2, 100, 1_010)], clock::now(), &mut |r| {
            got.push(r)
        });
        assert_eq!(
            kinds(&got, 9),
            vec![(ExecKind::Rejected, 0, 0, RejectReason::Other)]
        );
        assert_eq!(gw.stats().no_account, 1);
        assert_eq!(gw.last_no_account(), Some("F3"));
        assert_eq!(gw.in_flight(), 0);
    }

    #[test]
    fn the_fill_rule_is_one_fill_on_the_grid_and_a_lookup_off_it() {
        let u = universe();
        let spec = &u.symbols[0];
        assert_eq!(
            fills_of(42, dec!(0.500), dec!(100.10), spec),
            Ok(Some((DERIVED_TRADE_ID_BIT | 42, Lots(500), Ticks(1_001))))
        );
        assert_eq!(fills_of(42, dec!(0.8), dec!(100.0375), spec), Ok(None));
        assert_eq!(
            fills_of(42, dec!(0), dec!(0), spec),
            Ok(Some((0, Lots(0), Ticks(0))))
        );
        assert!(fills_of(42, dec!(0.0005), dec!(100), spec).is_err());
        let a = FollowerAccount {
            follower: "F1".into(),
            api_key: SecretString::from(KEY_1),
            signer: Signer::hmac(SECRET).unwrap(),
        };
        let shown = format!("{a:?}");
        assert!(
            !shown.contains(KEY_1) && !shown.contains("2b5eb11e"),
            "{shown}"
        );
    }

    // -----------------------------------------------------------------------
    // A venue of the test's own, for what `TestVenue` does not do: stop
    // reading, reset a connection, answer anything.

    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::AtomicUsize as Counter;
    use tungstenite::WebSocket;

    /// A WebSocket API venue whose every connection is handed, raw and before
    /// its handshake, to `serve` with its number (0 first), on a thread of its
    /// own. Its URL.
    fn script(serve: impl Fn(usize, TcpStream) + Send + Sync + 'static) -> String {
        script_with(None, serve)
    }

    /// `script`, its connections' receive buffer `rcvbuf` bytes when given
    /// (small: a venue that stops reading soon stops the gateway's sends).
    fn script_with(
        rcvbuf: Option<usize>,
        serve: impl Fn(usize, TcpStream) + Send + Sync + 'static,
    ) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("script venue");
        if let Some(bytes) = rcvbuf {
            // Accepted connections take the listener's.
            socket2::SockRef::from(&listener)
                .set_recv_buffer_size(bytes)
                .expect("SO_RCVBUF");
        }
        let url = format!("ws://{}/ws-fapi/v1", listener.local_addr().unwrap());
        let serve = Arc::new(serve);
        std::thread::spawn(move || {
            for (n, s) in listener.incoming().enumerate() {
                let Ok(s) = s else { return };
                let serve = Arc::clone(&serve);
                std::thread::spawn(move || serve(n, s));
            }
        });
        url
    }

    fn script_gateway(url: &str, tune: impl FnOnce(&mut BinanceGatewayConfig)) -> BinanceGateway {
        let mut cfg = BinanceGatewayConfig::new("bn", url, "http://127.0.0.1:9");
        cfg.reconnect_min = Duration::from_millis(20);
        cfg.reconnect_max = Duration::from_millis(200);
        cfg.ask_again_after = Duration::from_millis(20);
        tune(&mut cfg);
        let accounts = vec![FollowerAccount {
            follower: "F1".into(),
            api_key: SecretString::from(KEY_1),
            signer: Signer::hmac(SECRET).unwrap(),
        }];
        BinanceGateway::new(cfg, accounts, universe()).expect("gateway")
    }

    /// One request as the script venue reads it.
    struct Req {
        id: u64,
        method: String,
        /// `newClientOrderId` or `origClientOrderId`.
        cid: String,
    }

    /// The next request on `ws`; `None` once the connection is gone.
    fn next_req(ws: &mut WebSocket<TcpStream>) -> Option<Req> {
        use simd_json::prelude::*;
        loop {
            let text = match ws.read() {
                Ok(Message::Text(t)) => t,
                Ok(_) => continue,
                Err(_) => return None,
            };
            let mut bytes = text.as_bytes().to_vec();
            let v = simd_json::to_borrowed_value(&mut bytes).expect("a JSON request");
            let params = v.get("params").expect("params");
            let cid = params
                .get("newClientOrderId")
                .or_else(|| params.get("origClientOrderId"))
                .and_then(|c| c.as_str())
                .expect("a client order id");
            return Some(Req {
                id: v.get("id").and_then(|i| i.as_u64()).expect("an id"),
                method: v
                    .get("method")
                    .and_then(|m| m.as_str())
                    .expect("a method")
                    .into(),
                cid: cid.into(),
            });
        }
    }

    /// The venue's order `cid` as a reply to request `id`.
    fn order_reply(id: u64, cid: &str, status: &str, executed: &str, avg: &str) -> String {
        let order_id = u64::from_str_radix(&cid[2..], 16).unwrap_or(1);
        let now_ms = clock::now().0 / 1_000_000;
        format!(
            r#"{{"id":{id},"status":200,"result":{{"orderId":{order_id},"symbol":"BTCUSDT","status":"{status}","clientOrderId":"{cid}","price":"101","avgPrice":"{avg}","origQty":"0.1","executedQty":"{executed}","updateTime":{now_ms}}}}}"#
        )
    }

    fn error_reply(id: u64, status: u16, code: i32, msg: &str) -> String {
        format!(r#"{{"id":{id},"status":{status},"error":{{"code":{code},"msg":"{msg}"}}}}"#)
    }

    fn say(ws: &mut WebSocket<TcpStream>, text: String) {
        let _ = ws.send(Message::text(text));
    }

    /// Closes `s` with a reset (SO_LINGER 0) rather than a FIN: the peer's
    /// next send fails.
    fn reset(s: TcpStream) {
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
    }

    /// Serves order.place (fills it whole at 100.0, once per client id) and
    /// order.status (what it executed, else -2013) until the connection goes.
    fn serve_orders(ws: &mut WebSocket<TcpStream>, executed: &Mutex<HashMap<String, usize>>) {
        while let Some(r) = next_req(ws) {
            let text = match r.method.as_str() {
                "order.place" => {
                    *lock(executed).entry(r.cid.clone()).or_default() += 1;
                    order_reply(r.id, &r.cid, "FILLED", "0.1", "100.0")
                }
                _ if lock(executed).contains_key(&r.cid) => {
                    order_reply(r.id, &r.cid, "FILLED", "0.1", "100.0")
                }
                _ => error_reply(r.id, 400, -2013, "Order does not exist."),
            };
            say(ws, text);
        }
    }

    /// Found by the red team: an `order.status` whose send failed was taken
    /// off the questions and never put back (`lost` re-asks only what was
    /// sent), so the order was never settled and the gateway never up again.
    #[test]
    fn an_order_status_the_socket_refuses_is_asked_again_after_the_reconnect() {
        let executed = Arc::new(Mutex::new(HashMap::new()));
        let placed = Arc::new(Counter::new(0));
        let (e, p) = (Arc::clone(&executed), Arc::clone(&placed));
        let url = script(move |n, s| {
            let Ok(mut ws) = tungstenite::accept(s) else {
                return;
            };
            match n {
                // The order arrives, is not executed, and the connection goes
                // unanswered: the order is on the wire.
                0 => {
                    if next_req(&mut ws).is_some_and(|r| r.method == "order.place") {
                        p.fetch_add(1, Ordering::SeqCst);
                    }
                }
                // The handshake, then a reset: the gateway's next send (the
                // order.status) fails before any read sees the loss.
                1..=4 => reset(ws.into_inner()),
                _ => serve_orders(&mut ws, &e),
            }
        });
        let mut gw = script_gateway(&url, |_| {});
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        let got = run(&mut gw, &[order(1, 0, 100, 1_010)]);
        assert_eq!(
            kinds(&got, 1),
            vec![(ExecKind::Rejected, 0, 0, RejectReason::UnknownOrder)]
        );
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        assert_eq!(placed.load(Ordering::SeqCst), 1);
        assert!(lock(&executed).is_empty());
    }

    /// -2013 after an unknown outcome: the request may still reach the
    /// matching engine until its `timestamp + recvWindow`. Here it does: the
    /// first `order.status` finds nothing, the order then executes, and the
    /// gateway, asking again once the window is over, reports the fill: not
    /// a transient reject, after which the engine would send it again with a
    /// fresh id and trade twice.
    #[test]
    fn no_such_order_before_the_requests_recv_window_is_over_is_asked_again() {
        let asked = Arc::new(Counter::new(0));
        let a = Arc::clone(&asked);
        let url = script(move |_, s| {
            let Ok(mut ws) = tungstenite::accept(s) else {
                return;
            };
            while let Some(r) = next_req(&mut ws) {
                let text = match r.method.as_str() {
                    "order.place" => error_reply(
                        r.id,
                        503,
                        -1006,
                        "An unexpected response was received from the message bus. Execution status unknown.",
                    ),
                    _ if a.fetch_add(1, Ordering::SeqCst) == 0 => {
                        error_reply(r.id, 400, -2013, "Order does not exist.")
                    }
                    // Executed late, between the two questions.
                    _ => order_reply(r.id, &r.cid, "FILLED", "0.1", "100.0"),
                };
                say(&mut ws, text);
            }
        });
        let mut gw = script_gateway(&url, |c| c.recv_window_ms = 300);
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        let got = run(&mut gw, &[order(1, 0, 100, 1_010)]);
        assert!(
            kinds(&got, 1)
                .iter()
                .any(|k| k.0 == ExecKind::Fill && k.1 == 100 && k.2 == 1_000),
            "{:?}",
            kinds(&got, 1)
        );
        assert!(
            !kinds(&got, 1).iter().any(|k| k.0 == ExecKind::Rejected),
            "{:?}",
            kinds(&got, 1)
        );
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert_eq!(gw.stats().asked_past_window, 1);
    }

    /// Found by the red team: an `executedQty` over the order's quantity hit a
    /// `debug_assert` in the worker (a panic: the gateway said up forever with
    /// nobody behind it) and, without it, reported a negative remainder.
    #[test]
    fn a_fill_over_the_order_quantity_stops_the_gateway_without_a_panic() {
        let url = script(move |_, s| {
            let Ok(mut ws) = tungstenite::accept(s) else {
                return;
            };
            while let Some(r) = next_req(&mut ws) {
                // 0.2 of an order of 0.1.
                say(&mut ws, order_reply(r.id, &r.cid, "FILLED", "0.2", "100.0"));
            }
        });
        let mut gw = script_gateway(&url, |_| {});
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        let mut got = Vec::new();
        gw.submit(&[order(1, 0, 100, 1_010)], clock::now(), &mut |r| {
            got.push(r)
        });
        let until = Instant::now() + PATIENCE;
        while gw.is_up() {
            assert!(Instant::now() < until, "still up after an impossible fill");
            gw.poll(clock::now(), &mut |r| got.push(r));
            std::thread::sleep(Duration::from_millis(1));
        }
        gw.poll(clock::now(), &mut |r| got.push(r));
        let why = gw.down_reason().unwrap_or_default();
        assert!(
            why.contains(&client_order_id(1)) && why.contains("0.2"),
            "{why}"
        );
        assert!(got.iter().all(|r| r.qty.0 <= 100), "{got:?}");
        assert!(!got.iter().any(|r| r.kind == ExecKind::Fill), "{got:?}");
    }

    /// Found by the red team: an order of unknown outcome between two
    /// questions (`ToAsk`) when the connection went was not counted as on the
    /// wire, so the gateway said up again before it was settled.
    #[test]
    fn an_unknown_outcome_waiting_to_be_asked_keeps_the_gateway_down_after_a_loss() {
        let executed = Arc::new(Mutex::new(HashMap::new()));
        let e = Arc::clone(&executed);
        let url = script(move |n, s| {
            let Ok(mut ws) = tungstenite::accept(s) else {
                return;
            };
            if n > 0 {
                return serve_orders(&mut ws, &e);
            }
            // Executed, answered "unknown"; the question about it answered
            // with an error (asked again later); then the connection goes.
            let Some(r) = next_req(&mut ws) else { return };
            lock(&e).insert(r.cid.clone(), 1);
            say(&mut ws, error_reply(r.id, 503, -1006, "An unexpected response was received from the message bus. Execution status unknown."));
            let Some(r) = next_req(&mut ws) else { return };
            say(
                &mut ws,
                error_reply(r.id, 400, -1102, "Mandatory parameter was not sent."),
            );
        });
        let mut gw = script_gateway(&url, |c| c.ask_again_after = Duration::from_secs(2));
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        let mut got = Vec::new();
        gw.submit(&[order(1, 0, 100, 1_010)], clock::now(), &mut |r| {
            got.push(r)
        });
        let until = Instant::now() + PATIENCE;
        let mut was_down = false;
        while gw.in_flight() > 0 {
            assert!(Instant::now() < until, "in flight: {}", gw.in_flight());
            let up = gw.is_up();
            gw.poll(clock::now(), &mut |r| got.push(r));
            was_down |= !up;
            // Reports go out before the gateway says up: seen up again, the
            // order's end is here.
            assert!(
                !(was_down && up) || gw.in_flight() == 0,
                "up again with the order unsettled"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(was_down);
        assert_eq!(
            kinds(&got, 1),
            vec![
                (ExecKind::Ack, 0, 0, NONE),
                (ExecKind::Fill, 100, 1_000, NONE)
            ]
        );
        assert_eq!(lock(&executed).get(&client_order_id(1)), Some(&1));
    }

    fn minute_orders(count_max: u32) -> impl Fn(&mut BinanceGatewayConfig) {
        move |c: &mut BinanceGatewayConfig| {
            c.limits.order_limits = vec![super::super::limits::Limit {
                count_max,
                window: Nanos(60_000_000_000),
            }];
        }
    }

    /// Found by the red team: the pacing margin widened the limiter's windows,
    /// so no `rateLimits` entry matched one and another client's orders on the
    /// account were never counted: a 429.
    #[test]
    fn the_venues_order_count_is_absorbed_despite_the_pacing_margin() {
        let limits = VenueLimits {
            orders: vec![VenueRateLimit::new(Interval::Minute, 1, 5)],
            ..VenueLimits::default()
        };
        let v = venue(limits);
        v.set_price("BTCUSDT", dec!(100));
        // Another client of the same account uses 3 of the minute's 5 orders.
        let mut other = gateway_with(&v, minute_orders(5));
        let orders: Vec<_> = (1..=3).map(|i| order(i, 0, 100, 1_010)).collect();
        run(&mut other, &orders);
        let mut gw = gateway_with(&v, minute_orders(5));
        // Its reply says 4 of 5: one more fits, the next waits for the minute.
        run(&mut gw, &[order(10, 0, 100, 1_010)]);
        let mut got = Vec::new();
        gw.submit(
            &[order(11, 0, 100, 1_010), order(12, 0, 100, 1_010)],
            clock::now(),
            &mut |r| got.push(r),
        );
        let until = Instant::now() + PATIENCE;
        while kinds(&got, 11).len() < 2 {
            assert!(Instant::now() < until, "{got:?}");
            gw.poll(clock::now(), &mut |r| got.push(r));
            std::thread::sleep(Duration::from_millis(1));
        }
        // A failure bound: a gateway that missed the count sends order 12
        // within it and is refused 429.
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            gw.poll(clock::now(), &mut |r| got.push(r));
            assert_eq!(v.too_many_requests(), 0, "{got:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(gw.stats().throttled, 0);
        assert!(kinds(&got, 12).is_empty(), "{got:?}");
    }

    /// Found by the red team: handshakes (5 each, a reconnect's too) were not
    /// counted, so the questions after a reconnect could meet a 429.
    #[test]
    fn a_handshake_counts_against_the_ip_weight() {
        // Two handshakes (5 each) and two questions (1 each) are 12 in the
        // venue's 2 s; it takes 11.
        let limits = VenueLimits {
            request_weight: VenueRateLimit::new(Interval::Second, 2, 11),
            ..VenueLimits::default()
        };
        let v = venue(limits);
        let mut gw = gateway_with(&v, |c| {
            c.limits.ip_weight = super::super::limits::Limit {
                count_max: 11,
                window: Nanos(2_000_000_000),
            };
            // Room for a slow handshake: the venue counts it when it serves it.
            c.pacing_margin = Duration::from_secs(1);
        });
        v.drop_ws_api();
        let until = Instant::now() + PATIENCE;
        while gw.stats().reconnects == 0 || !gw.is_up() {
            assert!(Instant::now() < until, "{:?}", gw.down_reason());
            std::thread::sleep(Duration::from_millis(1));
        }
        let asked = [
            AskedOrder::from(&order(1, 0, 100, 1_010)),
            AskedOrder::from(&order(2, 0, 100, 1_010)),
        ];
        let mut got = Vec::new();
        gw.recover(&asked, &mut |r| got.push(r)).expect("recover");
        for id in [1, 2] {
            assert_eq!(
                kinds(&got, id),
                vec![(ExecKind::Rejected, 0, 0, RejectReason::UnknownOrder)]
            );
        }
        assert_eq!(v.too_many_requests(), 0);
        assert_eq!(gw.stats().throttled, 0);
    }

    fn wide_open(c: &mut BinanceGatewayConfig) {
        c.limits.order_limits = vec![super::super::limits::Limit {
            count_max: 100_000,
            window: Nanos(10_000_000_000),
        }];
        c.limits.ip_weight.count_max = 100_000;
        c.reply_timeout = PATIENCE;
    }

    /// Hands orders over as the I/O thread does, reports into `got`, until
    /// the gateway has put every one on its connection (`placed`) and the
    /// socket has refused some (`send_blocked`: the venue does not read, the
    /// buffers are full), then a chunk more. The orders.
    fn jam(gw: &mut BinanceGateway, got: &mut Vec<ExecReport>) -> Vec<FollowerOrder> {
        const CHUNK: u64 = 500;
        const ORDERS_MAX: u64 = 40_000;
        let until = Instant::now() + PATIENCE;
        let mut orders = Vec::new();
        let mut blocked_at = None;
        while blocked_at.is_none_or(|n| orders.len() < n + CHUNK as usize) {
            assert!(
                (orders.len() as u64) < ORDERS_MAX,
                "the socket took every order"
            );
            let next = orders.len() as u64 + 1;
            let chunk: Vec<_> = (next..next + CHUNK)
                .map(|i| order(i, 0, 100, 1_010))
                .collect();
            let placed = (orders.len() + chunk.len()) as u64;
            hand_over(gw, &chunk, got, until, |gw| gw.stats().placed >= placed);
            orders.extend(chunk);
            if blocked_at.is_none() && gw.stats().send_blocked > 0 {
                blocked_at = Some(orders.len());
            }
        }
        orders
    }

    /// A gateway on the scripted venue at `url`, jammed (see `jam`); then
    /// `release` is set (the venue reads again, or drops the connection) and
    /// the gateway polled until nothing is in flight. The gateway, the orders,
    /// and every report.
    fn jam_then_release(
        url: &str,
        release: &AtomicBool,
    ) -> (BinanceGateway, Vec<FollowerOrder>, Vec<ExecReport>) {
        let mut gw = script_gateway(url, wide_open);
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        let mut got = Vec::new();
        let orders = jam(&mut gw, &mut got);
        release.store(true, Ordering::SeqCst);
        let until = Instant::now() + PATIENCE;
        hand_over(&mut gw, &[], &mut got, until, |gw| gw.in_flight() == 0);
        (gw, orders, got)
    }

    /// Frames the socket does not take stay in tungstenite's buffer and go
    /// once the venue reads again: none lost, none twice.
    #[test]
    fn a_venue_that_stops_reading_gets_every_order_once_when_it_reads_again() {
        let executed = Arc::new(Mutex::new(HashMap::new()));
        let resume = Arc::new(AtomicBool::new(false));
        let (e, go) = (Arc::clone(&executed), Arc::clone(&resume));
        let url = script_with(Some(4_096), move |_, s| {
            let Ok(mut ws) = tungstenite::accept(s) else {
                return;
            };
            while !go.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            serve_orders(&mut ws, &e);
        });
        let (gw, orders, got) = jam_then_release(&url, &resume);
        for o in &orders {
            assert_eq!(
                kinds(&got, o.id),
                vec![
                    (ExecKind::Ack, 0, 0, NONE),
                    (ExecKind::Fill, 100, 1_000, NONE)
                ],
                "order {}",
                o.id
            );
            assert_eq!(lock(&executed).get(&client_order_id(o.id)), Some(&1));
        }
        assert_eq!(gw.stats().reconnects, 0);
        assert!(gw.is_up());
    }

    /// A connection lost with frames still in the buffers (some never sent,
    /// one maybe in part): each order is asked about and reported once, as the
    /// venue holds it.
    #[test]
    fn a_connection_lost_with_frames_unsent_settles_each_order_once() {
        let executed = Arc::new(Mutex::new(HashMap::new()));
        let lose = Arc::new(AtomicBool::new(false));
        let (e, gone) = (Arc::clone(&executed), Arc::clone(&lose));
        let url = script_with(Some(4_096), move |n, s| {
            let Ok(mut ws) = tungstenite::accept(s) else {
                return;
            };
            if n > 0 {
                return serve_orders(&mut ws, &e);
            }
            // The first order is executed and answered; then nothing is read
            // until the connection goes, what is unread with it (a reset).
            if let Some(r) = next_req(&mut ws) {
                lock(&e).insert(r.cid.clone(), 1);
                say(&mut ws, order_reply(r.id, &r.cid, "FILLED", "0.1", "100.0"));
            }
            while !gone.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let (gw, orders, got) = jam_then_release(&url, &lose);
        assert!(gw.wait_up(PATIENCE), "{:?}", gw.down_reason());
        let executed = lock(&executed);
        for o in &orders {
            let cid = client_order_id(o.id);
            let expected = match executed.get(&cid) {
                Some(1) => vec![
                    (ExecKind::Ack, 0, 0, NONE),
                    (ExecKind::Fill, 100, 1_000, NONE),
                ],
                None => vec![(ExecKind::Rejected, 0, 0, RejectReason::UnknownOrder)],
                Some(n) => panic!("order {} executed {n} times", o.id),
            };
            assert_eq!(kinds(&got, o.id), expected, "order {}", o.id);
        }
        assert!(executed.contains_key(&client_order_id(1)));
        assert!(gw.stats().reconnects >= 1);
    }
}
