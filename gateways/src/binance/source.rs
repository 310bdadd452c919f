//! The `binance` source (issue 15): leaders' fills from their Binance USD-M
//! user data streams, with every gap a lost connection leaves filled from the
//! REST trade history, so that no fill is lost and none is taken twice; and
//! the symbols' mark prices from the public mark-price stream.
//!
//! Owns, for each leader account, one background thread and what it holds: the
//! account's API key and signer, its listen key (made, kept alive every
//! `keep_alive`, made again when the venue says it expired), the WebSocket
//! (read with a short timeout, so the thread also keeps the key alive on time
//! and reconnects before the venue's 24-hour limit), and the gap fill
//! (`GET /fapi/v1/userTrades` for every symbol in force, after every connect).
//! The threads hand fills to `next` through one bounded channel: a full channel
//! stops them (backpressure), nothing is ever dropped, and `next` never blocks.
//!
//! **No fill lost.** The stream is connected *before* the gap is asked for, so
//! every trade after the connect comes on the stream and every trade before it
//! is in `userTrades`, which is read from where the leader's fills are known to
//! be taken (its watermark, below) less `gap_overlap`. **None doubled.** Each
//! leader's thread keeps a bounded window of the event keys it handed on
//! (`stream::fill_event_id`, the same for a trade from the stream and from
//! REST), so a trade on both is taken once; the engine's own leader-event
//! deduplication, over the journal's whole history, is the second net (after a
//! restart the window is empty and the overlap is re-read).
//!
//! **Position** (`Source::position`): milliseconds since the epoch, in the
//! venue's trade time. Per leader, a watermark W: every fill `next` returned
//! has a trade time below W, and every fill with a trade time below W was
//! returned, up to the reordering `gap_overlap` absorbs (trades of different
//! symbols pushed a little out of time order; the venue's clock against ours).
//! W starts at the source's creation (or at the resumed position), rises to a
//! stream fill's trade time + 1 when `next` returns it, and to the time just
//! before a connect once the gap behind that connect was filled (a gap fill
//! runs symbol by symbol, so its fills are not in time order and do not move W
//! themselves). The position is the least W of the leaders in force.
//! `resume(pos)` starts every leader's first gap fill at `pos - gap_overlap`;
//! a fresh start fills from the creation exactly (what the leader did before
//! is its history, not a trade to copy).
//!
//! **Errors are said, never swallowed.** A message that does not parse or a fill
//! that cannot be taken is a `SourcePoll::Rejected` naming the leader and the
//! message's number; a lost stream, a failed REST call or an expired listen key
//! is one too (line 0, as the drop-copy source says its session went down),
//! with what failed and when it is tried again; each is counted in
//! `BinanceSourceStats` and kept as the leader's `last_error`. Retries back off
//! (100 ms doubling to 10 s, `fix::conn::Backoff`; at least a minute after a
//! 429 and two after a 418).
//!
//! **Liquidation, ADL and settlement fills** change the leader's position like
//! any fill, are marked as such on the engine's fill (`LeaderFill::kind`, which
//! the journal, `leader_fills.kind` and the lineage report keep) and are
//! counted apart (`liquidations`, `adls`, `settlements`). A gap fill without
//! the order's client id (the stream did not show the order before it was
//! lost) cannot tell its kind (`unknown_kinds`, kind `Unknown`) nor its order
//! quantity (0: its own order).
//!
//! **Mark prices** (`mark_prices`, on by default): one more thread holds one
//! public connection to the market streams (`market_url`, the `/market` route;
//! no key) subscribed to `<symbol>@markPrice@1s` (or `@markPrice`, every 3 s)
//! of every symbol in force, as one combined stream
//! (`<market_url>/stream?streams=a@markPrice@1s/b@markPrice@1s`; at most
//! `MARK_STREAMS_MAX`, the venue's limit per connection, the rest said once).
//! Each `markPriceUpdate` is a `FeedEvent::MarkPrice` stamped with its `E`, the
//! mark rounded to the nearest tick, half to even, exactly
//! (`stream::round_to_tick`). The connection is made again as the user streams
//! are: after a failure with backoff, at `reconnect_before`, and when a reload
//! changes the symbols in force. A lost connection loses only marks, which the
//! next one replaces: no gap is filled. Marks are counted (`marks`,
//! `mark_connects`, `mark_reconnects`); their failures are said like the
//! leaders' (origin `<source>/marks`) and counted in the same fields.
//!
//! Never: logs or formats an API key, a listen key or a signer (a transport
//! error is scrubbed of them and of any `signature=` before it is said);
//! blocks in `next`; drops a fill for want of room; reads `now` for a fill's
//! receipt time (the threads stamp `recv_ts` with `clock::now()` as a message
//! arrives: this source is the process edge); opens a key vault (keys are
//! handed over built).
//!
//! Costs: a gap fill asks `userTrades` (weight 5) once per symbol in force and
//! per 1000 trades, after every connect of every leader; the IP's budget is
//! 2,400 a minute, which many symbols times many leaders reconnecting at once
//! could spend (the limiter of `limits` is the gateway's, not shared here yet).

use crate::binance::rest::{RestClient, RestError, TradesFrom};
use crate::binance::sign::Signer;
use crate::binance::stream::{
    self, Event, ExecutionType, Fill, FillError, FillKind, MarkError, OrderInfo, Parser,
    SymbolTable, USER_TRADES_MAX,
};
use crate::fix::conn::Backoff;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use fillcast_engine::clock;
use fillcast_engine::event::FeedEvent;
use fillcast_engine::ids::{fnv1a, leader_event_key};
use fillcast_engine::model::{LeaderIdx, Side, Universe};
use fillcast_engine::order::BoundedSet;
use fillcast_engine::port::{ResumeError, Source, SourceError, SourcePoll};
use fillcast_engine::units::{Money, Nanos};
use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How often a listen key is kept alive by default: the documentation's advice
/// (a key lives 60 minutes after its last keep-alive).
pub const KEEP_ALIVE_DEFAULT: Duration = Duration::from_secs(30 * 60);

/// A listen key's life after its last keep-alive; `keep_alive` must be shorter.
pub const LISTEN_KEY_LIFE: Duration = Duration::from_secs(60 * 60);

/// How old a connection may grow before the source replaces it, by default:
/// an hour under the venue's limit.
pub const RECONNECT_BEFORE_DEFAULT: Duration = Duration::from_secs(23 * 60 * 60);

/// The venue closes a user data connection at 24 hours; `reconnect_before`
/// must be shorter.
pub const CONNECTION_AGE_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// How far before a leader's watermark a gap fill reads again, by default: far
/// above the venue's push reordering across symbols and ordinary clock skew.
pub const GAP_OVERLAP_DEFAULT: Duration = Duration::from_secs(10);

/// How far back `userTrades` reaches (the documentation: 6 months): a resumed
/// position older than this cannot be filled, and the source refuses it.
pub const HISTORY_DEFAULT: Duration = Duration::from_secs(180 * 24 * 60 * 60);

/// Messages between the leaders' threads and `next` by default.
pub const CHANNEL_CAPACITY_DEFAULT: usize = 4096;

/// Event keys each leader's thread remembers by default: many times what one
/// gap's overlap re-reads.
pub const DEDUP_IDS_DEFAULT: usize = 1 << 16;

/// Orders per leader whose client id and quantity the thread remembers from
/// the stream, for the gap fills of their later trades.
pub const ORDERS_KNOWN_MAX: usize = 4096;

/// Most `userTrades` pages one symbol's gap fill may take (1000 trades each).
pub const GAP_PAGES_MAX: u32 = 10_000;

/// A resumed position this far after the clock is refused (another source's?).
const FUTURE_SLACK_MS: u64 = 60 * 60 * 1000;

/// `startTime`..`endTime` may span at most 7 days.
const WEEK_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// A WebSocket message or frame longer than this ends the connection (the
/// parser refuses anything over `stream::MESSAGE_BYTES_MAX` first).
const WS_MESSAGE_BYTES_MAX: usize = 1 << 20;

/// Messages `next` takes without returning one (watermark updates) at most.
const NEXT_QUIET_MAX: usize = 1024;

/// The least wait after a 429 (the venue's own `Retry-After` is not seen here).
const RATE_LIMITED_WAIT: Duration = Duration::from_secs(60);

/// The least wait after a 418: Binance's shortest ban.
const BANNED_WAIT: Duration = Duration::from_secs(120);

/// The wait before a failed keep-alive is tried again (the key lives on for
/// the rest of its hour; if it lapses, the venue says so on the stream).
const KEEP_ALIVE_RETRY: Duration = Duration::from_secs(60);

/// Client order ids kept are cut to this (the venue's are at most 36).
const CLIENT_ID_CHARS_MAX: usize = 64;

/// Streams one market-stream connection may carry: the venue's documented
/// limit ("A single connection can listen to a maximum of 1024 streams").
pub const MARK_STREAMS_MAX: usize = 1024;

/// Whether, and how often, the source takes mark prices from the public
/// mark-price stream (docs/BINANCE-PROTOCOL.md, "Mark prices").
/// In config: `mark_prices = "1s"`, `"3s"` or `"off"`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum MarkPrices {
    /// No mark-price connection: marks come from elsewhere, or not at all.
    #[serde(rename = "off")]
    Off,
    /// `<symbol>@markPrice`: an update every 3 s.
    #[serde(rename = "3s")]
    Every3s,
    /// `<symbol>@markPrice@1s`: an update every second (the default: the
    /// stop-loss and the reports value open positions at the mark).
    #[default]
    #[serde(rename = "1s")]
    Every1s,
}

impl MarkPrices {
    /// The stream name's suffix after the symbol; `None` when off.
    fn suffix(self) -> Option<&'static str> {
        match self {
            MarkPrices::Off => None,
            MarkPrices::Every3s => Some("@markPrice"),
            MarkPrices::Every1s => Some("@markPrice@1s"),
        }
    }
}

/// The market streams' base on the host of a user data `stream_url`: its
/// `/market` route, which carries `@markPrice` (docs/BINANCE-PROTOCOL.md:
/// a connection on no route gets only the `/public` streams, and the mark
/// price silently never comes). A `stream_url` already on a route (`/public`,
/// `/market`, `/private`) has it replaced:
/// `wss://fstream.binance.com` → `wss://fstream.binance.com/market`.
pub fn market_url_of(stream_url: &str) -> String {
    let base = stream_url.trim_end_matches('/');
    let base = ["/public", "/market", "/private"]
        .iter()
        .find_map(|route| base.strip_suffix(route))
        .unwrap_or(base);
    format!("{base}/market")
}

/// The combined stream of the mark prices of `symbols` under `market_url`
/// (`<market_url>/stream?streams=btcusdt@markPrice@1s/...`): each name in
/// lower case (the venue's stream names are), any byte outside
/// `[a-z0-9_.-]` percent-encoded, at most `MARK_STREAMS_MAX` of them, in the
/// order given. `None` without a symbol; the number left out with it.
pub fn mark_stream_url(
    market_url: &str,
    symbols: &[String],
    prices: MarkPrices,
) -> (Option<String>, usize) {
    let Some(suffix) = prices.suffix() else {
        return (None, 0);
    };
    let taken = symbols.len().min(MARK_STREAMS_MAX);
    if taken == 0 {
        return (None, 0);
    }
    let mut url = format!("{}/stream?streams=", market_url.trim_end_matches('/'));
    for (i, symbol) in symbols[..taken].iter().enumerate() {
        if i > 0 {
            url.push('/');
        }
        for b in symbol.bytes().map(|b| b.to_ascii_lowercase()) {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-') {
                url.push(b as char);
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
        url.push_str(suffix);
    }
    (Some(url), symbols.len() - taken)
}

/// The settings of one `binance` source. `new` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct BinanceSourceConfig {
    /// Names the source in errors (its `[[sources]]` name).
    pub name: String,
    /// `https://fapi.binance.com` in production.
    pub rest_url: String,
    /// `wss://fstream.binance.com` in production; a stream is `<this>/ws/<listenKey>`.
    pub stream_url: String,
    pub keep_alive: Duration,
    pub reconnect_before: Duration,
    pub recv_window_ms: u64,
    /// Each REST call's limit.
    pub rest_timeout: Duration,
    /// The TCP connect and WebSocket handshake's limit.
    pub connect_timeout: Duration,
    /// The stream's read timeout: how late a keep-alive, a reconnect or a stop
    /// may be noticed.
    pub tick: Duration,
    pub gap_overlap: Duration,
    pub history: Duration,
    pub channel_capacity: usize,
    pub dedup_ids_max: usize,
    /// When set (`USDT`), an `ACCOUNT_UPDATE` carrying this asset's balance is
    /// the leader's equity (`FeedEvent::LeaderEquity`): its wallet balance,
    /// without unrealized profit (`stream::AccountUpdate::wallet_balance` says
    /// why no more can be had from the stream). Off by default: the config's
    /// equity stands.
    pub equity_asset: Option<String>,
    /// The mark-price stream of the symbols in force (`@markPrice@1s` by default).
    pub mark_prices: MarkPrices,
    /// The market streams' base (`wss://fstream.binance.com/market`);
    /// `market_url_of(stream_url)` by default.
    pub market_url: String,
}

impl BinanceSourceConfig {
    pub fn new(name: &str, rest_url: &str, stream_url: &str) -> BinanceSourceConfig {
        BinanceSourceConfig {
            name: name.to_string(),
            rest_url: rest_url.to_string(),
            stream_url: stream_url.to_string(),
            keep_alive: KEEP_ALIVE_DEFAULT,
            reconnect_before: RECONNECT_BEFORE_DEFAULT,
            recv_window_ms: 5000,
            rest_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            tick: Duration::from_secs(1),
            gap_overlap: GAP_OVERLAP_DEFAULT,
            history: HISTORY_DEFAULT,
            channel_capacity: CHANNEL_CAPACITY_DEFAULT,
            dedup_ids_max: DEDUP_IDS_DEFAULT,
            equity_asset: None,
            mark_prices: MarkPrices::Every1s,
            market_url: market_url_of(stream_url),
        }
    }
}

/// One leader's Binance account, as the key vault hands it over.
pub struct LeaderAccount {
    /// The leader's id in the model.
    pub leader: String,
    pub api_key: SecretString,
    pub signer: Signer,
}

impl fmt::Debug for LeaderAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderAccount")
            .field("leader", &self.leader)
            .field("api_key", &"<redacted>")
            .field("signer", &self.signer)
            .finish()
    }
}

/// Why a source cannot be made: the config or the model disagrees with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinanceSourceError {
    #[error("binance source `{source_name}`: no leader accounts")]
    NoLeaders { source_name: String },
    #[error("binance source `{source_name}`: `{leader}` is not a leader of the model in force")]
    UnknownLeader { source_name: String, leader: String },
    #[error("binance source `{source_name}`: leader `{leader}` is given twice")]
    DuplicateLeader { source_name: String, leader: String },
    #[error("binance source `{source_name}`: `{setting}` is {value}: {expected}")]
    Setting {
        source_name: String,
        setting: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// What the source has done, for the binary to print: the leaders' sum
/// (`BinanceSource::stats`) or one leader's (`LeaderStatus`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BinanceSourceStats {
    /// Leader fills `next` returned, from the stream and from gap fills.
    pub fills: u64,
    /// Of `fills`, those recovered from `userTrades`.
    pub gap_fills: u64,
    /// Of `fills`, the venue's closes: liquidation (`autoclose-`), ADL
    /// (`adl_autoclose`), settlement (`settlement_autoclose-`).
    pub liquidations: u64,
    pub adls: u64,
    pub settlements: u64,
    /// Of `gap_fills`, those whose order the stream never showed: kind and
    /// order quantity unknown.
    pub unknown_kinds: u64,
    /// Leader equities returned (`equity_asset`).
    pub equities: u64,
    /// Trades dropped as already handed on (on the stream and in `userTrades`).
    pub duplicates: u64,
    /// Stream connections made, the first included.
    pub connects: u64,
    /// Connections after the first: lost, key expired, 24-hour limit.
    pub reconnects: u64,
    /// Listen keys made (a POST answering the key in use again is not one).
    pub listen_keys: u64,
    /// Listen keys the venue said expired (`listenKeyExpired`, or -1125 on a
    /// keep-alive).
    pub listen_keys_expired: u64,
    pub keep_alives: u64,
    /// Gap fills completed (every symbol asked).
    pub gap_fill_runs: u64,
    /// `userTrades` pages read.
    pub rest_pages: u64,
    /// Stream messages and `userTrades` pages that did not parse.
    pub parse_errors: u64,
    /// Fills that parsed and could not be taken (an unknown symbol, a
    /// quantity off the lot, a leader or symbol a reload removed).
    pub refused: u64,
    /// Failures said and retried: lost streams, failed REST calls, expired keys.
    pub errors: u64,
    /// Mark prices `next` returned (the mark-price stream's, not a leader's).
    pub marks: u64,
    /// Mark-price connections made, the first included.
    pub mark_connects: u64,
    /// Mark-price connections after the first: lost, 24-hour limit, a reload
    /// that changed the symbols.
    pub mark_reconnects: u64,
}

/// One leader's state, for the binary's status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderStatus {
    pub leader: String,
    /// Connected with its gap filled.
    pub up: bool,
    pub stats: BinanceSourceStats,
    /// The latest failure, as it was said.
    pub last_error: Option<String>,
    /// The leader's watermark (see the module docs), in ms.
    pub watermark_ms: u64,
}

/// Leaders' fills from their Binance user data streams. See the module docs.
pub struct BinanceSource {
    cfg: Arc<BinanceSourceConfig>,
    /// Moved into the threads at the first `next`.
    accounts: Vec<LeaderAccount>,
    tables: Arc<Mutex<Arc<Tables>>>,
    shared: Vec<Arc<Mutex<LeaderShared>>>,
    intake: Intake,
    /// The time the source covers from, ms; the resumed position if any.
    start_ms: u64,
    resumed: bool,
    started: bool,
    rx: Receiver<Msg>,
    tx: Option<Sender<Msg>>,
    /// Dropped to stop the threads: it wakes them from any wait.
    stop_tx: Option<Sender<()>>,
    stop_rx: Receiver<()>,
    threads: Vec<Option<JoinHandle<()>>>,
    /// The mark-price connection's counts and state.
    marks: Arc<Mutex<LeaderShared>>,
    mark_thread: Option<JoinHandle<()>>,
    /// Failures `next` has yet to say (a thread that could not start or ended).
    notes: VecDeque<SourceError>,
}

impl BinanceSource {
    /// A source for `accounts` under `universe`; nothing connects before the
    /// first `next` (so that `resume` can come first).
    pub fn new(
        cfg: BinanceSourceConfig,
        accounts: Vec<LeaderAccount>,
        universe: &Arc<Universe>,
    ) -> Result<BinanceSource, BinanceSourceError> {
        check_config(&cfg)?;
        let source_name = cfg.name.clone();
        if accounts.is_empty() {
            return Err(BinanceSourceError::NoLeaders { source_name });
        }
        let mut leaders = Vec::with_capacity(accounts.len());
        for a in &accounts {
            let Some(idx) = universe.leader(&a.leader) else {
                return Err(BinanceSourceError::UnknownLeader {
                    source_name,
                    leader: a.leader.clone(),
                });
            };
            if leaders.iter().any(|l: &IntakeLeader| l.idx == idx) {
                return Err(BinanceSourceError::DuplicateLeader {
                    source_name,
                    leader: a.leader.clone(),
                });
            }
            leaders.push(IntakeLeader {
                name: a.leader.clone(),
                idx,
                watermark_ms: 0,
                stats: BinanceSourceStats::default(),
            });
        }
        let start_ms = now_ms();
        for l in &mut leaders {
            l.watermark_ms = start_ms;
        }
        let (tx, rx) = crossbeam_channel::bounded(cfg.channel_capacity);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let shared = accounts
            .iter()
            .map(|_| Arc::new(Mutex::new(LeaderShared::default())))
            .collect();
        Ok(BinanceSource {
            intake: Intake {
                origin: cfg.name.clone(),
                universe: Arc::clone(universe),
                leaders,
                marks: 0,
            },
            tables: Arc::new(Mutex::new(Arc::new(Tables::new(universe)))),
            cfg: Arc::new(cfg),
            accounts,
            shared,
            start_ms,
            resumed: false,
            started: false,
            rx,
            tx: Some(tx),
            stop_tx: Some(stop_tx),
            stop_rx,
            threads: Vec::new(),
            marks: Arc::new(Mutex::new(LeaderShared::default())),
            mark_thread: None,
            notes: VecDeque::new(),
        })
    }

    /// Every leader's counts and the mark-price connection's, summed.
    pub fn stats(&self) -> BinanceSourceStats {
        let mut sum = BinanceSourceStats::default();
        for s in self.leaders() {
            sum.add(&s.stats);
        }
        sum.add(&lock(&self.marks).stats);
        sum.marks += self.intake.marks;
        sum
    }

    /// Whether the mark-price connection is up (false when `mark_prices` is off).
    pub fn marks_up(&self) -> bool {
        lock(&self.marks).up
    }

    /// Each leader's state, in the order the accounts were given.
    pub fn leaders(&self) -> Vec<LeaderStatus> {
        self.intake
            .leaders
            .iter()
            .zip(&self.shared)
            .map(|(l, shared)| {
                let shared = lock(shared);
                let mut stats = l.stats;
                stats.add(&shared.stats);
                LeaderStatus {
                    leader: l.name.clone(),
                    up: shared.up,
                    stats,
                    last_error: shared.last_error.clone(),
                    watermark_ms: l.watermark_ms,
                }
            })
            .collect()
    }

    /// The latest failure of any leader or of the mark-price connection, as
    /// it was said.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .iter()
            .chain([&self.marks])
            .filter_map(|s| {
                let s = lock(s);
                s.last_error.clone().map(|e| (s.last_error_at, e))
            })
            .max_by_key(|(at, _)| *at)
            .map(|(_, e)| e)
    }

    /// Whether every leader's stream is connected with its gap filled.
    pub fn is_up(&self) -> bool {
        self.started && self.shared.iter().all(|s| lock(s).up)
    }

    /// Stops the threads and waits for them: each notices at once, or within
    /// its current REST call's or connect's timeout. Fills not yet taken by
    /// `next` are dropped with the channel: the position never covered them.
    pub fn stop(&mut self) {
        self.stop_tx = None;
        self.tx = None;
        // A thread blocked on a full channel wakes when the receiver goes.
        self.rx = crossbeam_channel::never();
        for t in self.threads.iter_mut().chain([&mut self.mark_thread]) {
            if let Some(t) = t.take() {
                let _ = t.join();
            }
        }
    }

    /// Starts one thread per leader.
    fn start(&mut self) {
        self.started = true;
        let Some(tx) = self.tx.take() else {
            return;
        };
        let overlap_ms = self.cfg.gap_overlap.as_millis() as u64;
        let accounts = std::mem::take(&mut self.accounts);
        for (slot, account) in accounts.into_iter().enumerate() {
            let leader = &self.intake.leaders[slot];
            let state = LeaderState::new(LeaderStateInit {
                slot,
                leader: leader.idx,
                name: leader.name.clone(),
                origin: format!("{}/{}", self.cfg.name, leader.name),
                covered_ms: self.start_ms,
                exact: !self.resumed,
                overlap_ms,
                dedup_ids_max: self.cfg.dedup_ids_max,
                equity_asset: self.cfg.equity_asset.clone(),
                shared: Arc::clone(&self.shared[slot]),
            });
            let worker = Worker {
                state,
                api_key: account.api_key,
                signer: account.signer,
                rest: RestClient::new(
                    &self.cfg.rest_url,
                    self.cfg.rest_timeout,
                    self.cfg.recv_window_ms,
                ),
                cfg: Arc::clone(&self.cfg),
                link: Link {
                    tables: Arc::clone(&self.tables),
                    tx: tx.clone(),
                    stop: self.stop_rx.clone(),
                },
                listen_key: None,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("binance-src-{slot}"))
                .spawn(move || worker.run());
            match spawned {
                Ok(t) => self.threads.push(Some(t)),
                Err(e) => {
                    self.threads.push(None);
                    let message =
                        format!("cannot start the leader's thread: {e}; its fills are not taken");
                    self.note(slot, message);
                }
            }
        }
        if self.cfg.mark_prices != MarkPrices::Off {
            let worker = MarkWorker {
                state: MarkState {
                    origin: format!("{}/marks", self.cfg.name),
                    parser: Parser::new(),
                    messages: 0,
                    shared: Arc::clone(&self.marks),
                },
                cfg: Arc::clone(&self.cfg),
                link: Link {
                    tables: Arc::clone(&self.tables),
                    tx,
                    stop: self.stop_rx.clone(),
                },
                left_out_said: 0,
            };
            let spawned = std::thread::Builder::new()
                .name("binance-marks".into())
                .spawn(move || worker.run());
            match spawned {
                Ok(t) => self.mark_thread = Some(t),
                Err(e) => self.note_marks(format!(
                    "cannot start the mark-price thread: {e}; no mark prices are taken"
                )),
            }
        }
    }

    /// A failure of the mark-price connection that `next` says.
    fn note_marks(&mut self, message: String) {
        {
            let mut s = lock(&self.marks);
            s.up = false;
            s.stats.errors += 1;
            s.last_error = Some(message.clone());
            s.last_error_at = clock::now().0;
        }
        self.notes.push_back(SourceError {
            origin: format!("{}/marks", self.cfg.name),
            line: 0,
            message,
        });
    }

    /// A failure of leader `slot` that `next` says (before anything else).
    fn note(&mut self, slot: usize, message: String) {
        {
            let mut s = lock(&self.shared[slot]);
            s.up = false;
            s.stats.errors += 1;
            s.last_error = Some(message.clone());
            s.last_error_at = clock::now().0;
        }
        self.notes.push_back(SourceError {
            origin: format!("{}/{}", self.cfg.name, self.intake.leaders[slot].name),
            line: 0,
            message,
        });
    }

    /// A thread that ended while the source runs (a panic: they end only when
    /// stopped) is said once.
    fn check_threads(&mut self) {
        for slot in 0..self.threads.len() {
            if !self.threads[slot].as_ref().is_some_and(|t| t.is_finished()) {
                continue;
            }
            let Some(t) = self.threads[slot].take() else {
                continue;
            };
            let why = thread_end(t);
            let message =
                format!("the leader's stream thread stopped: {why}; its fills are no longer taken");
            self.note(slot, message);
        }
        if self.mark_thread.as_ref().is_some_and(|t| t.is_finished()) {
            if let Some(t) = self.mark_thread.take() {
                let why = thread_end(t);
                self.note_marks(format!(
                    "the mark-price thread stopped: {why}; mark prices are no longer taken"
                ));
            }
        }
    }
}

/// Why a thread that should run until stopped ended: its panic's message.
fn thread_end(t: JoinHandle<()>) -> String {
    match t.join() {
        Ok(()) => "it ended".to_string(),
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "it panicked".to_string()),
    }
}

impl Drop for BinanceSource {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Source for BinanceSource {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// `now` is not read: a fill's `recv_ts` is stamped by its thread as the
    /// message arrives, which is earlier and the true edge of the process.
    fn next(&mut self, _now: Nanos) -> SourcePoll {
        if !self.started {
            self.start();
        }
        if let Some(e) = self.notes.pop_front() {
            return SourcePoll::Rejected(e);
        }
        for _ in 0..NEXT_QUIET_MAX {
            match self.rx.try_recv() {
                Ok(msg) => {
                    if let Some(poll) = self.intake.take(msg) {
                        return poll;
                    }
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {
                    self.check_threads();
                    return match self.notes.pop_front() {
                        Some(e) => SourcePoll::Rejected(e),
                        None => SourcePoll::Idle,
                    };
                }
            }
        }
        SourcePoll::Idle
    }

    fn position(&self) -> Option<u64> {
        Some(self.intake.position())
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        *lock(&self.tables) = Arc::new(Tables::new(universe));
        self.intake.universe = Arc::clone(universe);
    }

    /// Every leader's first gap fill starts at `pos - gap_overlap`. A position
    /// the venue's history no longer reaches, or one after the clock (another
    /// kind of source's?), is refused: fills would be lost unseen.
    fn resume(&mut self, pos: u64) -> Result<(), ResumeError> {
        if self.started {
            return Err(ResumeError::AlreadyStarted {
                origin: self.cfg.name.clone(),
                doing: "streaming",
            });
        }
        let now = now_ms();
        let history_ms = self.cfg.history.as_millis() as u64;
        let oldest = now.saturating_sub(history_ms);
        if pos < oldest {
            return Err(ResumeError::Short {
                holds: format!(
                    "binance source `{}` can fill gaps from {oldest} ms on (the venue keeps {} days of trades), not from an older position",
                    self.cfg.name,
                    history_ms / 86_400_000
                ),
                pos,
                taken: "covered up to (ms since the epoch)",
                likely: "the journal is older than the venue's trade history: fills in between cannot be recovered.",
            });
        }
        if pos > now + FUTURE_SLACK_MS {
            return Err(ResumeError::Short {
                holds: format!(
                    "binance source `{}` has no trades after now ({now} ms)",
                    self.cfg.name
                ),
                pos,
                taken: "covered up to (ms since the epoch)",
                likely: "is the position another kind of source's, or the clock wrong?",
            });
        }
        self.start_ms = pos;
        self.resumed = true;
        for l in &mut self.intake.leaders {
            l.watermark_ms = pos;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Between the threads and `next`.

/// What a leader's thread hands `next`. `leader` is the account's place.
#[derive(Debug)]
enum Msg {
    Fill {
        leader: usize,
        fill: Fill,
        /// From `userTrades`: does not move the watermark (see the module docs).
        gap: bool,
    },
    Equity {
        leader: usize,
        equity: Money,
        ts: Nanos,
    },
    /// Every fill before `ms` was handed on: a gap behind a connect at `ms` was filled.
    Covered {
        leader: usize,
        ms: u64,
    },
    /// A `FeedEvent::MarkPrice` of the mark-price stream.
    Mark(FeedEvent),
    Rejected(SourceError),
}

/// The symbols in force, as the threads convert fills and fill gaps.
struct Tables {
    symbols: SymbolTable,
    /// By name: what a gap fill asks `userTrades` about.
    names: Vec<String>,
}

impl Tables {
    fn new(universe: &Universe) -> Tables {
        Tables {
            symbols: SymbolTable::from_universe(universe),
            names: universe
                .symbols
                .iter()
                .filter(|s| !s.removed)
                .map(|s| s.name.clone())
                .collect(),
        }
    }
}

/// What a leader's thread shares with the source: its counts and its state.
#[derive(Default)]
struct LeaderShared {
    /// The thread's counts (`next` keeps the fills' own).
    stats: BinanceSourceStats,
    up: bool,
    last_error: Option<String>,
    /// `clock::now()` of `last_error`, ns.
    last_error_at: u64,
}

/// `next`'s side: checks what the threads converted against the model in
/// force, counts it, and keeps the watermarks.
struct Intake {
    origin: String,
    universe: Arc<Universe>,
    leaders: Vec<IntakeLeader>,
    /// Mark prices returned.
    marks: u64,
}

struct IntakeLeader {
    name: String,
    idx: LeaderIdx,
    watermark_ms: u64,
    /// The fills' counts (`fills` and their kinds).
    stats: BinanceSourceStats,
}

impl Intake {
    /// What `next` returns for `msg`, if anything.
    fn take(&mut self, msg: Msg) -> Option<SourcePoll> {
        match msg {
            Msg::Fill { leader, fill, gap } => {
                let universe = Arc::clone(&self.universe);
                let l = &mut self.leaders[leader];
                let symbol = universe.sym(fill.fill.symbol);
                // Converted by the thread under the model it last saw: a
                // reload since may have removed the leader or the symbol.
                let removed = if universe.leaders[l.idx.0 as usize].removed {
                    Some(format!("leader `{}` was removed by a reload", l.name))
                } else if symbol.removed {
                    Some(format!("symbol {} was removed by a reload", symbol.name))
                } else {
                    None
                };
                if let Some(why) = removed {
                    l.stats.refused += 1;
                    return Some(SourcePoll::Rejected(SourceError {
                        origin: format!("{}/{}", self.origin, l.name),
                        line: 0,
                        message: format!("a fill of {}: {why}; not taken", symbol.name),
                    }));
                }
                if !gap {
                    l.watermark_ms = l.watermark_ms.max(ms_of(fill.fill.venue_ts) + 1);
                }
                l.stats.fills += 1;
                l.stats.gap_fills += u64::from(gap);
                match fill.kind {
                    FillKind::Trade => {}
                    FillKind::Liquidation => l.stats.liquidations += 1,
                    FillKind::Adl => l.stats.adls += 1,
                    FillKind::Settlement => l.stats.settlements += 1,
                    FillKind::Unknown => l.stats.unknown_kinds += 1,
                }
                debug_assert_eq!(fill.fill.leader, l.idx);
                Some(SourcePoll::Event(FeedEvent::LeaderFill(fill.fill)))
            }
            Msg::Equity { leader, equity, ts } => {
                let l = &mut self.leaders[leader];
                if self.universe.leaders[l.idx.0 as usize].removed {
                    return None;
                }
                l.stats.equities += 1;
                Some(SourcePoll::Event(FeedEvent::LeaderEquity {
                    leader: l.idx,
                    equity,
                    ts,
                }))
            }
            Msg::Covered { leader, ms } => {
                let l = &mut self.leaders[leader];
                l.watermark_ms = l.watermark_ms.max(ms);
                None
            }
            Msg::Mark(mark) => {
                // Converted under the symbols the thread last saw: one a reload
                // removed since is dropped (the connection is renewed without it).
                if let FeedEvent::MarkPrice { symbol, .. } = mark {
                    let spec = self.universe.symbols.get(symbol.0 as usize);
                    if spec.is_none_or(|s| s.removed) {
                        return None;
                    }
                }
                self.marks += 1;
                Some(SourcePoll::Event(mark))
            }
            Msg::Rejected(e) => Some(SourcePoll::Rejected(e)),
        }
    }

    /// The least watermark of the leaders in force (of all, when none is).
    fn position(&self) -> u64 {
        let in_force = self
            .leaders
            .iter()
            .filter(|l| !self.universe.leaders[l.idx.0 as usize].removed)
            .map(|l| l.watermark_ms)
            .min();
        in_force
            .or_else(|| self.leaders.iter().map(|l| l.watermark_ms).min())
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// A leader's thread: what it decides, without I/O.

/// Asks the venue for one `userTrades` page of a symbol: its raw body.
type FetchPage<'a> = dyn FnMut(&str, TradesFrom) -> Result<Vec<u8>, RestError> + 'a;

/// What happened to a stream message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Step {
    Go,
    /// `listenKeyExpired`: a new key and a new connection.
    Expired,
    /// `next`'s side is gone: the thread ends.
    Gone,
}

/// Why a gap fill did not finish.
#[derive(Debug, thiserror::Error)]
enum GapError {
    #[error("userTrades of {symbol}: {source}")]
    Rest {
        symbol: String,
        #[source]
        source: RestError,
    },
    #[error("userTrades of {symbol}: {source}")]
    Parse {
        symbol: String,
        #[source]
        source: stream::ParseError,
    },
    #[error("userTrades of {symbol}: {source}")]
    Page {
        symbol: String,
        #[source]
        source: PageError,
    },
    #[error("the source is gone")]
    Gone,
}

impl GapError {
    /// The least wait the venue asked for (a 429 or a 418).
    fn wait_min(&self) -> Option<Duration> {
        match self {
            GapError::Rest { source, .. } => rest_wait(source),
            _ => None,
        }
    }
}

/// Why the pages of one symbol's gap stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum PageError {
    #[error("a full page asked from trade {asked} ended at trade {last}: the venue's pages do not advance")]
    NoProgress { asked: u64, last: u64 },
    #[error("more than {GAP_PAGES_MAX} pages of 1000 trades")]
    TooMany,
}

/// The `userTrades` pages of one symbol from a time on: 7-day windows (the
/// venue's limit on `startTime`..`endTime`; the last, within 7 days of now,
/// with `startTime` alone, which every reading of the documentation answers up
/// to now), and after a full page, the next from the last trade's id
/// (`fromId`: that trade again, since the two sides of a self-trade share an
/// id and a page may end between them; the window drops the repeat).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Pager {
    next: Option<TradesFrom>,
    now_ms: u64,
    pages: u32,
}

impl Pager {
    fn new(from_ms: u64, now_ms: u64) -> Pager {
        Pager {
            next: Some(window(from_ms, now_ms)),
            now_ms,
            pages: 0,
        }
    }

    /// The page asked for came back with `count` trades, the last with id `last_id`.
    fn answered(&mut self, count: usize, last_id: Option<u64>) -> Result<(), PageError> {
        let Some(asked) = self.next.take() else {
            return Ok(());
        };
        self.pages += 1;
        match (asked, last_id) {
            (_, Some(last)) if count >= USER_TRADES_MAX => {
                if let TradesFrom::Id(from) = asked {
                    if last <= from {
                        return Err(PageError::NoProgress { asked: from, last });
                    }
                }
                self.next = Some(TradesFrom::Id(last));
            }
            (
                TradesFrom::Time {
                    end_ms: Some(end), ..
                },
                _,
            ) => self.next = Some(window(end + 1, self.now_ms)),
            _ => {}
        }
        if self.next.is_some() && self.pages >= GAP_PAGES_MAX {
            return Err(PageError::TooMany);
        }
        Ok(())
    }
}

fn window(start_ms: u64, now_ms: u64) -> TradesFrom {
    let end_ms = (now_ms.saturating_sub(start_ms) >= WEEK_MS).then(|| start_ms + WEEK_MS - 1);
    debug_assert!(end_ms.is_none_or(|end| start_ms < end && end < now_ms));
    TradesFrom::Time { start_ms, end_ms }
}

/// Orders the stream showed (any `ORDER_TRADE_UPDATE`), so that a gap fill of
/// their later trades knows the client id (the fill's kind) and the order's
/// quantity, which `userTrades` does not give. The oldest go first.
struct KnownOrders {
    by_key: HashMap<u64, (String, Decimal)>,
    order: VecDeque<u64>,
    max: usize,
}

impl KnownOrders {
    fn new(max: usize) -> KnownOrders {
        KnownOrders {
            by_key: HashMap::with_capacity(max.min(1024)),
            order: VecDeque::with_capacity(max.min(1024)),
            max,
        }
    }

    fn key(symbol: &str, order_id: u64) -> u64 {
        fnv1a(format!("{symbol}:{order_id}").as_bytes())
    }

    fn remember(&mut self, symbol: &str, order_id: u64, client_order_id: &str, qty: Decimal) {
        let key = KnownOrders::key(symbol, order_id);
        let client: String = client_order_id.chars().take(CLIENT_ID_CHARS_MAX).collect();
        if let Some(known) = self.by_key.get_mut(&key) {
            // An amendment may change the quantity.
            *known = (client, qty);
            return;
        }
        if self.order.len() >= self.max {
            if let Some(old) = self.order.pop_front() {
                self.by_key.remove(&old);
            }
        }
        self.by_key.insert(key, (client, qty));
        self.order.push_back(key);
        debug_assert!(self.order.len() <= self.max && self.by_key.len() == self.order.len());
    }

    fn get(&self, symbol: &str, order_id: u64) -> Option<OrderInfo<'_>> {
        self.by_key
            .get(&KnownOrders::key(symbol, order_id))
            .map(|(client, qty)| OrderInfo {
                client_order_id: client,
                orig_qty: *qty,
            })
    }
}

struct LeaderStateInit {
    slot: usize,
    leader: LeaderIdx,
    name: String,
    origin: String,
    covered_ms: u64,
    exact: bool,
    overlap_ms: u64,
    dedup_ids_max: usize,
    equity_asset: Option<String>,
    shared: Arc<Mutex<LeaderShared>>,
}

/// A leader's thread's decisions: messages and `userTrades` pages in, `Msg`s
/// out through `out` (false when `next`'s side is gone). No I/O, so the tests
/// drive it directly.
struct LeaderState {
    slot: usize,
    leader: LeaderIdx,
    name: String,
    /// `<source>/<leader>`: the origin of what it says.
    origin: String,
    parser: Parser,
    delivered: BoundedSet,
    orders: KnownOrders,
    /// The thread's own watermark (ahead of `next`'s by the channel): where
    /// the next gap fill starts, less the overlap.
    covered_ms: u64,
    /// The next gap fill starts at `covered_ms` itself (a fresh start).
    exact: bool,
    overlap_ms: u64,
    /// Stream messages received, over all connections: a rejected one's number.
    messages: u64,
    equity_asset: Option<String>,
    /// Symbols the venue said it does not list, said once each.
    unlisted: HashSet<String>,
    shared: Arc<Mutex<LeaderShared>>,
}

impl LeaderState {
    fn new(init: LeaderStateInit) -> LeaderState {
        LeaderState {
            slot: init.slot,
            leader: init.leader,
            name: init.name,
            origin: init.origin,
            parser: Parser::new(),
            delivered: BoundedSet::new(init.dedup_ids_max.max(1)),
            orders: KnownOrders::new(ORDERS_KNOWN_MAX),
            covered_ms: init.covered_ms,
            exact: init.exact,
            overlap_ms: init.overlap_ms,
            messages: 0,
            equity_asset: init.equity_asset,
            unlisted: HashSet::new(),
            shared: init.shared,
        }
    }

    fn count(&self, f: impl FnOnce(&mut BinanceSourceStats)) {
        f(&mut lock(&self.shared).stats);
    }

    fn reject(&self, line: u64, message: String) -> Msg {
        Msg::Rejected(SourceError {
            origin: self.origin.clone(),
            line,
            message,
        })
    }

    /// One message of the user data stream, received at `recv_ts`.
    fn on_message(
        &mut self,
        bytes: &[u8],
        tables: &Tables,
        recv_ts: Nanos,
        out: &mut dyn FnMut(Msg) -> bool,
    ) -> Step {
        self.messages += 1;
        let line = self.messages;
        let LeaderState {
            slot,
            leader,
            name,
            parser,
            delivered,
            orders,
            covered_ms,
            equity_asset,
            shared,
            ..
        } = self;
        let event = match parser.message(bytes) {
            Ok(event) => event,
            Err(e) => {
                lock(shared).stats.parse_errors += 1;
                let msg = self.reject(line, format!("user data stream message {line}: {e}"));
                return sent(out(msg));
            }
        };
        let msg = match event {
            Event::OrderTradeUpdate(o) => {
                orders.remember(o.symbol, o.order_id, o.client_order_id, o.order_qty);
                if o.execution_type != ExecutionType::Trade {
                    return Step::Go;
                }
                let key = event_key(name, o.symbol, o.trade_id, o.side);
                if !delivered.add(key) {
                    lock(shared).stats.duplicates += 1;
                    return Step::Go;
                }
                match o.fill(*leader, name, &tables.symbols, recv_ts) {
                    Ok(Some(fill)) => {
                        debug_assert_eq!(fill.fill.event_key, key);
                        *covered_ms = (*covered_ms).max(ms_of(fill.fill.venue_ts) + 1);
                        Msg::Fill {
                            leader: *slot,
                            fill,
                            gap: false,
                        }
                    }
                    Ok(None) => return Step::Go,
                    Err(e) => {
                        lock(shared).stats.refused += 1;
                        let message = format!(
                            "user data stream message {line}: ORDER_TRADE_UPDATE of {} trade {}: {e}",
                            stream_shown(o.symbol),
                            o.trade_id
                        );
                        Msg::Rejected(SourceError {
                            origin: self.origin.clone(),
                            line,
                            message,
                        })
                    }
                }
            }
            Event::AccountUpdate(a) => {
                let Some(asset) = equity_asset.as_deref() else {
                    return Step::Go;
                };
                let equity = a
                    .wallet_balance(asset)
                    .map_err(|e| e.to_string())
                    .and_then(|wb| {
                        wb.map(|wb| {
                            Money::from_decimal(wb).map_err(|e| format!("`wb` of {asset}: {e}"))
                        })
                        .transpose()
                    });
                match equity {
                    Ok(None) => return Step::Go,
                    Ok(Some(equity)) => Msg::Equity {
                        leader: *slot,
                        equity,
                        ts: a.event_time,
                    },
                    Err(e) => {
                        lock(shared).stats.refused += 1;
                        Msg::Rejected(SourceError {
                            origin: self.origin.clone(),
                            line,
                            message: format!(
                                "user data stream message {line}: ACCOUNT_UPDATE: {e}"
                            ),
                        })
                    }
                }
            }
            Event::ListenKeyExpired(_) => return Step::Expired,
            Event::MarkPrice(_) | Event::Other(_) => return Step::Go,
        };
        sent(out(msg))
    }

    /// Where the next gap fill starts, ms.
    fn gap_start_ms(&self) -> u64 {
        if self.exact {
            self.covered_ms
        } else {
            self.covered_ms.saturating_sub(self.overlap_ms)
        }
    }

    /// The gap behind a stream connected at `connected_ms`: every symbol's
    /// trades from `gap_start_ms`, those not handed on yet handed on, then
    /// `Msg::Covered`. `fetch` asks the venue for one page.
    fn fill_gap(
        &mut self,
        tables: &Tables,
        connected_ms: u64,
        now_ms: u64,
        fetch: &mut FetchPage<'_>,
        out: &mut dyn FnMut(Msg) -> bool,
    ) -> Result<(), GapError> {
        let from_ms = self.gap_start_ms();
        for symbol in &tables.names {
            match self.fill_symbol(symbol, from_ms, now_ms, tables, fetch, out) {
                Ok(()) => {}
                // -1121: the venue does not list the symbol (yet): it has no
                // trades to miss. Said once; asked again at every gap.
                Err(GapError::Rest {
                    source: RestError::Venue { code: -1121, .. },
                    ..
                }) => {
                    if self.unlisted.insert(symbol.clone()) {
                        let msg = self.reject(
                            0,
                            format!("userTrades of {symbol}: the venue does not list this symbol (-1121); its gaps are not filled while it does not"),
                        );
                        if !out(msg) {
                            return Err(GapError::Gone);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let before = self.covered_ms;
        self.exact = false;
        self.covered_ms = self.covered_ms.max(connected_ms);
        debug_assert!(self.covered_ms >= before && self.gap_start_ms() <= self.covered_ms);
        self.count(|s| s.gap_fill_runs += 1);
        let covered = Msg::Covered {
            leader: self.slot,
            ms: connected_ms,
        };
        if out(covered) {
            Ok(())
        } else {
            Err(GapError::Gone)
        }
    }

    fn fill_symbol(
        &mut self,
        symbol: &str,
        from_ms: u64,
        now_ms: u64,
        tables: &Tables,
        fetch: &mut FetchPage<'_>,
        out: &mut dyn FnMut(Msg) -> bool,
    ) -> Result<(), GapError> {
        let mut pager = Pager::new(from_ms, now_ms);
        // Bounded by `GAP_PAGES_MAX` (`Pager::answered`).
        while let Some(asked) = pager.next {
            let body = fetch(symbol, asked).map_err(|source| GapError::Rest {
                symbol: symbol.to_string(),
                source,
            })?;
            let recv_ts = clock::now();
            self.count(|s| s.rest_pages += 1);
            let LeaderState {
                slot,
                leader,
                name,
                origin,
                parser,
                delivered,
                orders,
                shared,
                ..
            } = self;
            let trades = match parser.user_trades(&body) {
                Ok(trades) => trades,
                Err(source) => {
                    lock(shared).stats.parse_errors += 1;
                    return Err(GapError::Parse {
                        symbol: symbol.to_string(),
                        source,
                    });
                }
            };
            let (count, last_id) = (trades.len(), trades.last().map(|t| t.id));
            for t in &trades {
                let key = event_key(name, t.symbol, t.id, t.side);
                if !delivered.add(key) {
                    lock(shared).stats.duplicates += 1;
                    continue;
                }
                let info = orders.get(t.symbol, t.order_id);
                let msg = match t.fill(*leader, name, &tables.symbols, info.as_ref(), recv_ts) {
                    Ok(fill) => Msg::Fill {
                        leader: *slot,
                        fill,
                        gap: true,
                    },
                    Err(e) => {
                        lock(shared).stats.refused += 1;
                        Msg::Rejected(SourceError {
                            origin: origin.clone(),
                            line: 0,
                            message: format!(
                                "userTrades of {symbol}: trade {} of order {}: {e}",
                                t.id, t.order_id
                            ),
                        })
                    }
                };
                if !out(msg) {
                    return Err(GapError::Gone);
                }
            }
            pager
                .answered(count, last_id)
                .map_err(|source| GapError::Page {
                    symbol: symbol.to_string(),
                    source,
                })?;
        }
        Ok(())
    }
}

fn sent(ok: bool) -> Step {
    if ok {
        Step::Go
    } else {
        Step::Gone
    }
}

/// The event key of a leader's fill, as `stream` makes it for the fill itself.
fn event_key(leader_name: &str, symbol: &str, trade_id: u64, side: Side) -> u64 {
    leader_event_key(leader_name, &stream::fill_event_id(symbol, trade_id, side))
}

/// A venue-given symbol in a message: cut and escaped, as `stream` quotes values.
fn stream_shown(symbol: &str) -> String {
    let cut: String = symbol.chars().take(32).collect();
    format!("{cut:?}")
}

// ---------------------------------------------------------------------------
// The threads' I/O: what a leader's and the mark-price connection's share,
// then a leader's thread.

/// How a connection ended.
enum Ended {
    /// The source stopped.
    Stop,
    /// The connection reached `reconnect_before`: a new one at once.
    Again,
    /// Something failed: said, then tried again after a backoff of at least `wait_min`.
    Failed {
        what: &'static str,
        why: String,
        wait_min: Option<Duration>,
    },
}

struct Worker {
    state: LeaderState,
    api_key: SecretString,
    signer: Signer,
    rest: RestClient,
    cfg: Arc<BinanceSourceConfig>,
    link: Link,
    /// The key in use, a secret: it lets anyone read the account's stream.
    listen_key: Option<SecretString>,
}

/// What ties a source thread to the source: the symbols in force (replaced by
/// a reload), the channel to `next`, and the stop (disconnected when the
/// source stops).
struct Link {
    tables: Arc<Mutex<Arc<Tables>>>,
    tx: Sender<Msg>,
    stop: Receiver<()>,
}

/// A source thread, a leader's or the mark-price connection's: each has its own
/// `session` (one connection) and its own way of saying something; the loop
/// around the sessions, the stop, and how a failure is said and waited out are
/// the same.
trait StreamWorker {
    /// The stream, as a failure names it ("the user data stream").
    const STREAM: &'static str;
    /// Reading it, as a failure names it.
    const READING: &'static str;

    /// One connection, from connecting until it ends.
    fn session(&mut self, backoff: &mut Backoff) -> Ended;

    /// One message of the stream, received now.
    fn message(&mut self, bytes: &[u8]) -> Step;

    /// `why` without the secrets it may quote.
    fn scrubbed(&self, why: &str) -> String;

    /// Says `message` to `next` (a `Rejected`, line 0); false when `next`'s
    /// side is gone.
    fn say(&self, message: String) -> bool;

    /// The counts and state the thread shares with the source.
    fn shared(&self) -> &Mutex<LeaderShared>;

    fn link(&self) -> &Link;

    /// Connections, one after another, until the source stops; a failure is
    /// said and its backoff waited out first.
    fn run(mut self)
    where
        Self: Sized,
    {
        let mut backoff = Backoff::new();
        // Bounded by the stop: every turn either waits on it or connects anew.
        loop {
            if self.stopping() {
                return;
            }
            let ended = self.session(&mut backoff);
            lock(self.shared()).up = false;
            match ended {
                Ended::Stop => return,
                Ended::Again => {}
                Ended::Failed {
                    what,
                    why,
                    wait_min,
                } => {
                    if !self.fail(&mut backoff, what, &why, wait_min) {
                        return;
                    }
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        matches!(self.link().stop.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Waits `d` unless stopped first; false when stopped.
    fn wait(&self, d: Duration) -> bool {
        matches!(
            self.link().stop.recv_timeout(d),
            Err(RecvTimeoutError::Timeout)
        )
    }

    fn tables(&self) -> Arc<Tables> {
        Arc::clone(&lock(&self.link().tables))
    }

    /// One read of the stream `ws`, unless stopped first (then `ws` is
    /// closed): `message`'s step for a message, `Step::Go` for anything else
    /// or nothing within the tick, `Err` when the stream ended or failed.
    fn read(&mut self, ws: &mut crate::binance::ws::Ws) -> Result<Step, Ended> {
        if self.stopping() {
            let _ = ws.close(None);
            return Err(Ended::Stop);
        }
        match ws.read() {
            Ok(Message::Text(text)) => Ok(self.message(text.as_bytes())),
            Ok(Message::Binary(bytes)) => Ok(self.message(&bytes)),
            Ok(Message::Close(_)) => Err(Ended::Failed {
                what: Self::STREAM,
                why: "the venue closed the connection".into(),
                wait_min: None,
            }),
            Ok(_) => Ok(Step::Go),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(Step::Go)
            }
            Err(e) => Err(Ended::Failed {
                what: Self::READING,
                why: e.to_string(),
                wait_min: None,
            }),
        }
    }

    /// Says an error (counted, kept as `last_error`, and said to `next`);
    /// false when `next`'s side is gone.
    fn error(&self, message: String) -> bool {
        {
            let mut shared = lock(self.shared());
            shared.stats.errors += 1;
            shared.last_error = Some(message.clone());
            shared.last_error_at = clock::now().0;
        }
        self.say(message)
    }

    /// Says a failure (see `error`) and waits the backoff; false when stopped
    /// or `next` is gone.
    fn fail(
        &mut self,
        backoff: &mut Backoff,
        what: &str,
        why: &str,
        wait_min: Option<Duration>,
    ) -> bool {
        let wait =
            Duration::from_nanos(backoff.failed(clock::now())).max(wait_min.unwrap_or_default());
        let why = self.scrubbed(why);
        let message = format!("{what}: {why}; trying again in {} ms", wait.as_millis());
        self.error(message) && self.wait(wait)
    }
}

/// The stream at `url`, connected with `cfg`'s timeouts; `what` names a
/// failure.
fn connect(
    url: &str,
    cfg: &BinanceSourceConfig,
    what: &'static str,
) -> Result<crate::binance::ws::Ws, Ended> {
    crate::binance::ws::connect(url, cfg.connect_timeout, cfg.tick, WS_MESSAGE_BYTES_MAX).map_err(
        |why| Ended::Failed {
            what,
            why,
            wait_min: None,
        },
    )
}

impl StreamWorker for Worker {
    const STREAM: &'static str = "the user data stream";
    const READING: &'static str = "reading the user data stream";

    /// One connection: a listen key, the stream, the gap behind it filled,
    /// then messages until it ends.
    fn session(&mut self, backoff: &mut Backoff) -> Ended {
        let key = match self.rest.new_listen_key(self.api_key.expose_secret()) {
            Ok(key) => key,
            Err(e) => {
                return Ended::Failed {
                    what: "making a listen key (POST /fapi/v1/listenKey)",
                    wait_min: rest_wait(&e),
                    why: e.to_string(),
                }
            }
        };
        if self.listen_key.as_ref().map(|k| k.expose_secret()) != Some(key.as_str()) {
            self.state.count(|s| s.listen_keys += 1);
        }
        let url = SecretString::from(format!(
            "{}/ws/{key}",
            self.cfg.stream_url.trim_end_matches('/')
        ));
        self.listen_key = Some(SecretString::from(key));
        let mut keep_due = Instant::now() + self.cfg.keep_alive;
        // Everything from here on comes on the stream; the gap fill takes what
        // came before.
        let connected_ms = now_ms();
        let mut ws = match connect(
            url.expose_secret(),
            &self.cfg,
            "connecting the user data stream",
        ) {
            Ok(ws) => ws,
            Err(ended) => return ended,
        };
        drop(url);
        let connected_at = Instant::now();
        self.state.count(|s| {
            s.connects += 1;
            if s.connects > 1 {
                s.reconnects += 1;
            }
        });
        let tables = self.tables();
        let filled = {
            let Worker {
                state,
                api_key,
                signer,
                rest,
                link,
                ..
            } = self;
            let mut fetch = |symbol: &str, from: TradesFrom| {
                rest.user_trades(
                    api_key.expose_secret(),
                    signer,
                    symbol,
                    from,
                    USER_TRADES_MAX,
                    now_ms() as i64,
                )
            };
            state.fill_gap(&tables, connected_ms, now_ms(), &mut fetch, &mut |m| {
                link.tx.send(m).is_ok()
            })
        };
        match filled {
            Ok(()) => {}
            Err(GapError::Gone) => return Ended::Stop,
            Err(e) => {
                let _ = ws.close(None);
                return Ended::Failed {
                    what: "filling the gap from the trade history",
                    wait_min: e.wait_min(),
                    why: e.to_string(),
                };
            }
        }
        lock(&self.state.shared).up = true;
        backoff.succeeded();
        // Bounded by the connection's age (`reconnect_before`) and the stop.
        loop {
            let step = match self.read(&mut ws) {
                Ok(step) => step,
                Err(ended) => return ended,
            };
            match step {
                Step::Go => {}
                Step::Gone => return Ended::Stop,
                Step::Expired => {
                    let _ = ws.close(None);
                    return self.expired("the venue said so on the stream (listenKeyExpired)");
                }
            }
            if Instant::now() >= keep_due {
                match self.rest.keep_listen_key(self.api_key.expose_secret()) {
                    Ok(()) => {
                        self.state.count(|s| s.keep_alives += 1);
                        keep_due = Instant::now() + self.cfg.keep_alive;
                    }
                    Err(RestError::Venue { code: -1125, .. }) => {
                        let _ = ws.close(None);
                        return self.expired("the keep-alive was answered -1125");
                    }
                    Err(e) => {
                        let retry = KEEP_ALIVE_RETRY.min(self.cfg.keep_alive);
                        keep_due = Instant::now() + retry;
                        let why = scrub(&e.to_string(), &[self.api_key.expose_secret()]);
                        let message = format!(
                            "keeping the listen key alive (PUT /fapi/v1/listenKey): {why}; trying again in {} ms",
                            retry.as_millis()
                        );
                        if !self.error(message) {
                            return Ended::Stop;
                        }
                    }
                }
            }
            if connected_at.elapsed() >= self.cfg.reconnect_before {
                let _ = ws.close(None);
                return Ended::Again;
            }
        }
    }

    fn message(&mut self, bytes: &[u8]) -> Step {
        let recv_ts = clock::now();
        let tables = self.tables();
        let tx = &self.link.tx;
        self.state
            .on_message(bytes, &tables, recv_ts, &mut |m| tx.send(m).is_ok())
    }

    fn scrubbed(&self, why: &str) -> String {
        scrub(
            why,
            &[
                self.api_key.expose_secret(),
                self.listen_key.as_ref().map_or("", |k| k.expose_secret()),
            ],
        )
    }

    fn say(&self, message: String) -> bool {
        self.link.tx.send(self.state.reject(0, message)).is_ok()
    }

    fn shared(&self) -> &Mutex<LeaderShared> {
        &self.state.shared
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

impl Worker {
    fn expired(&mut self, how: &str) -> Ended {
        self.state.count(|s| s.listen_keys_expired += 1);
        Ended::Failed {
            what: "the listen key expired",
            why: format!("{how}; making a new one"),
            wait_min: None,
        }
    }
}

// ---------------------------------------------------------------------------
// The mark-price connection.

/// The mark-price connection's decisions: messages in, `Msg`s out through
/// `out` (false when `next`'s side is gone). No I/O, so the tests drive it.
struct MarkState {
    /// `<source>/marks`: the origin of what it says.
    origin: String,
    parser: Parser,
    /// Messages received, over all connections: a rejected one's number.
    messages: u64,
    shared: Arc<Mutex<LeaderShared>>,
}

impl MarkState {
    /// One message of the mark-price stream.
    fn on_message(
        &mut self,
        bytes: &[u8],
        tables: &Tables,
        out: &mut dyn FnMut(Msg) -> bool,
    ) -> Step {
        self.messages += 1;
        let line = self.messages;
        let msg = match self.parser.mark(bytes, &tables.symbols) {
            Ok(Some(mark)) => Msg::Mark(mark),
            Ok(None) => return Step::Go,
            // A reload removed the symbol: the connection is being renewed
            // without it, and its last marks are no news.
            Err(MarkError::Mark(FillError::RemovedSymbol(_))) => return Step::Go,
            Err(e) => {
                {
                    let mut s = lock(&self.shared);
                    match e {
                        MarkError::Parse(_) => s.stats.parse_errors += 1,
                        MarkError::Mark(_) => s.stats.refused += 1,
                    }
                }
                Msg::Rejected(SourceError {
                    origin: self.origin.clone(),
                    line,
                    message: format!("mark-price stream message {line}: {e}"),
                })
            }
        };
        sent(out(msg))
    }
}

/// The mark-price connection's thread: one public connection to the market
/// streams, subscribed to every symbol in force (see the module docs).
struct MarkWorker {
    state: MarkState,
    cfg: Arc<BinanceSourceConfig>,
    link: Link,
    /// Symbols left out for the per-connection limit, as last said (said
    /// again only when it changes).
    left_out_said: usize,
}

impl StreamWorker for MarkWorker {
    const STREAM: &'static str = "the mark-price stream";
    const READING: &'static str = "reading the mark-price stream";

    /// One connection: the combined stream of the symbols in force, read
    /// until it fails, ages out, or the symbols change.
    fn session(&mut self, backoff: &mut Backoff) -> Ended {
        let tables = self.tables();
        let (url, left_out) =
            mark_stream_url(&self.cfg.market_url, &tables.names, self.cfg.mark_prices);
        if left_out != self.left_out_said {
            self.left_out_said = left_out;
            if left_out > 0 {
                let message = format!(
                    "{left_out} symbols past the first {MARK_STREAMS_MAX} (the venue's limit per connection) get no mark price"
                );
                if !self.say(message) {
                    return Ended::Stop;
                }
            }
        }
        let Some(url) = url else {
            // No symbol in force: nothing to ask until a reload brings one.
            // Bounded by the stop.
            loop {
                if !self.wait(self.cfg.tick) {
                    return Ended::Stop;
                }
                if self.symbols_changed(&tables) {
                    return Ended::Again;
                }
            }
        };
        let mut ws = match connect(&url, &self.cfg, "connecting the mark-price stream") {
            Ok(ws) => ws,
            Err(ended) => return ended,
        };
        let connected_at = Instant::now();
        {
            let mut shared = lock(&self.state.shared);
            shared.stats.mark_connects += 1;
            if shared.stats.mark_connects > 1 {
                shared.stats.mark_reconnects += 1;
            }
            shared.up = true;
        }
        backoff.succeeded();
        // Bounded by the connection's age (`reconnect_before`) and the stop.
        loop {
            let step = match self.read(&mut ws) {
                Ok(step) => step,
                Err(ended) => return ended,
            };
            if step != Step::Go {
                let _ = ws.close(None);
                return Ended::Stop;
            }
            if self.symbols_changed(&tables) || connected_at.elapsed() >= self.cfg.reconnect_before
            {
                let _ = ws.close(None);
                return Ended::Again;
            }
        }
    }

    fn message(&mut self, bytes: &[u8]) -> Step {
        let tables = self.tables();
        let tx = &self.link.tx;
        self.state
            .on_message(bytes, &tables, &mut |m| tx.send(m).is_ok())
    }

    /// Nothing to take out: the connection is public.
    fn scrubbed(&self, why: &str) -> String {
        why.to_owned()
    }

    fn say(&self, message: String) -> bool {
        let msg = Msg::Rejected(SourceError {
            origin: self.state.origin.clone(),
            line: 0,
            message,
        });
        self.link.tx.send(msg).is_ok()
    }

    fn shared(&self) -> &Mutex<LeaderShared> {
        &self.state.shared
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

impl MarkWorker {
    /// Whether the symbols in force are no longer those of `connected`.
    fn symbols_changed(&self, connected: &Arc<Tables>) -> bool {
        let now = self.tables();
        !Arc::ptr_eq(&now, connected) && now.names != connected.names
    }
}

/// The least wait a REST answer asks for: a 429 (over the limit) or a 418
/// (banned; waiting less extends the ban).
fn rest_wait(e: &RestError) -> Option<Duration> {
    match e {
        RestError::Venue { status: 429, .. } => Some(RATE_LIMITED_WAIT),
        RestError::Venue { status: 418, .. } => Some(BANNED_WAIT),
        _ => None,
    }
}

/// `text` without the secrets an error could quote: each of `secrets` (the API
/// key, the listen key a stream URL holds) and any `signature=` value (a
/// signed URL's, which a transport error of `ureq` quotes whole).
fn scrub(text: &str, secrets: &[&str]) -> String {
    const REDACTED: &str = "<redacted>";
    const SIGNATURE: &str = "signature=";
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, REDACTED);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(SIGNATURE) {
        out.push_str(&rest[..at + SIGNATURE.len()]);
        out.push_str(REDACTED);
        rest = &rest[at + SIGNATURE.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '+' | '/' | '=')))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn check_config(cfg: &BinanceSourceConfig) -> Result<(), BinanceSourceError> {
    let bad = |setting: &'static str, value: String, expected: &'static str| {
        Err(BinanceSourceError::Setting {
            source_name: cfg.name.clone(),
            setting,
            value,
            expected,
        })
    };
    let secs = |d: Duration| format!("{} s", d.as_secs_f64());
    if !(cfg.rest_url.starts_with("https://") || cfg.rest_url.starts_with("http://")) {
        return bad(
            "rest_url",
            format!("{:?}", cfg.rest_url),
            "an http:// or https:// URL",
        );
    }
    for (setting, url, expected) in [
        (
            "stream_url",
            &cfg.stream_url,
            "a ws:// or wss:// URL without a query (the stream is <url>/ws/<listenKey>)",
        ),
        (
            "market_url",
            &cfg.market_url,
            "a ws:// or wss:// URL without a query (mark prices are <url>/stream?streams=...)",
        ),
    ] {
        if !(url.starts_with("wss://") || url.starts_with("ws://")) || url.contains(['?', '#']) {
            return bad(setting, format!("{url:?}"), expected);
        }
    }
    if cfg.keep_alive.is_zero() || cfg.keep_alive >= LISTEN_KEY_LIFE {
        return bad(
            "keep_alive",
            secs(cfg.keep_alive),
            "more than 0 and less than the listen key's 60 minutes",
        );
    }
    if cfg.reconnect_before.is_zero() || cfg.reconnect_before >= CONNECTION_AGE_MAX {
        return bad(
            "reconnect_before",
            secs(cfg.reconnect_before),
            "more than 0 and less than the venue's 24 hours",
        );
    }
    for (setting, d) in [
        ("rest_timeout", cfg.rest_timeout),
        ("connect_timeout", cfg.connect_timeout),
        ("tick", cfg.tick),
        ("history", cfg.history),
    ] {
        if d.is_zero() {
            return bad(setting, secs(d), "more than 0");
        }
    }
    if cfg.channel_capacity == 0 {
        return bad("channel_capacity", "0".into(), "at least 1");
    }
    if cfg.dedup_ids_max == 0 {
        return bad("dedup_ids_max", "0".into(), "at least 1");
    }
    Ok(())
}

impl BinanceSourceStats {
    fn add(&mut self, o: &BinanceSourceStats) {
        self.fills += o.fills;
        self.gap_fills += o.gap_fills;
        self.liquidations += o.liquidations;
        self.adls += o.adls;
        self.settlements += o.settlements;
        self.unknown_kinds += o.unknown_kinds;
        self.equities += o.equities;
        self.duplicates += o.duplicates;
        self.connects += o.connects;
        self.reconnects += o.reconnects;
        self.listen_keys += o.listen_keys;
        self.listen_keys_expired += o.listen_keys_expired;
        self.keep_alives += o.keep_alives;
        self.gap_fill_runs += o.gap_fill_runs;
        self.rest_pages += o.rest_pages;
        self.parse_errors += o.parse_errors;
        self.refused += o.refused;
        self.errors += o.errors;
        self.marks += o.marks;
        self.mark_connects += o.mark_connects;
        self.mark_reconnects += o.mark_reconnects;
    }
}

/// A poisoned lock is taken as it is: the counts and states it guards are
/// valid after any panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    ms_of(clock::now())
}

fn ms_of(t: Nanos) -> u64 {
    t.0 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::rest::SymbolFilters;
    use crate::binance::venue::{TestVenue, TestVenueOptions, VenueAccount, VenueTrade};
    use fillcast_engine::config;
    use fillcast_engine::event::LeaderFill;
    use fillcast_engine::model::SymbolIdx;
    use fillcast_engine::units::{Lots, Ticks};
    use rust_decimal_macros::dec;
    use std::path::Path;

    const MODEL: &str = r#"
[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[symbols]]
name = "ETHUSDT"
lot_size = "0.001"
tick_size = "0.01"
venue = "sim"

[[leaders]]
id = "L1"
equity = "100000"

[[leaders]]
id = "L2"
equity = "100000"
"#;

    /// Distinctive, so that a test can look for them in everything said.
    const KEY_1: &str = "apiKeyOfL1xq7ZcPLvW3mN9sTt2yR8uE4oI6aS5dF1gH0jK";
    const KEY_2: &str = "apiKeyOfL2bV8nM3xC1zL6kJ9hG4fD7sA2qW5eR0tY3uI8o";
    const SECRET: &[u8] = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";

    /// Failure bound of every wait on the network; never an expected duration.
    const PATIENCE: Duration = Duration::from_secs(30);

    fn universe() -> Arc<Universe> {
        let cfg = config::load_str(MODEL, Path::new("test.toml")).expect("test model");
        Arc::new(Universe::from_config(&cfg).expect("test universe"))
    }

    fn ms(ms: u64) -> Nanos {
        Nanos(ms * 1_000_000)
    }

    // -- The thread's decisions, without a network. -------------------------

    fn state(slot: usize, name: &str, covered_ms: u64, exact: bool) -> LeaderState {
        LeaderState::new(LeaderStateInit {
            slot,
            leader: LeaderIdx(slot as u32),
            name: name.to_string(),
            origin: format!("bn/{name}"),
            covered_ms,
            exact,
            overlap_ms: 10_000,
            dedup_ids_max: 1 << 12,
            equity_asset: Some("USDT".into()),
            shared: Arc::new(Mutex::new(LeaderShared::default())),
        })
    }

    fn stats_of(s: &LeaderState) -> BinanceSourceStats {
        lock(&s.shared).stats
    }

    /// An `ORDER_TRADE_UPDATE` in the documented shape.
    #[allow(clippy::too_many_arguments)]
    fn update(
        symbol: &str,
        client: &str,
        side: &str,
        x: &str,
        order_id: u64,
        order_qty: &str,
        trade_id: u64,
        qty: &str,
        price: &str,
        time: u64,
    ) -> String {
        format!(
            r#"{{"e":"ORDER_TRADE_UPDATE","E":{time},"T":{time},"o":{{"s":"{symbol}","c":"{client}","S":"{side}","o":"LIMIT","f":"GTC","q":"{order_qty}","p":"{price}","ap":"0","sp":"0","x":"{x}","X":"PARTIALLY_FILLED","i":{order_id},"l":"{qty}","z":"{qty}","L":"{price}","N":"USDT","n":"0","T":{time},"t":{trade_id},"m":false,"R":false,"ot":"LIMIT","ps":"BOTH","rp":"0"}}}}"#
        )
    }

    /// A `userTrades` element in the documented shape.
    fn rest_trade(
        symbol: &str,
        id: u64,
        side: &str,
        order_id: u64,
        qty: &str,
        price: &str,
        time: u64,
    ) -> String {
        format!(
            r#"{{"buyer":{},"commission":"0","commissionAsset":"USDT","id":{id},"maker":false,"orderId":{order_id},"price":"{price}","qty":"{qty}","quoteQty":"1","realizedPnl":"0","side":"{side}","positionSide":"BOTH","symbol":"{symbol}","time":{time}}}"#,
            side == "BUY"
        )
    }

    /// A venue's `userTrades` without a network: answers pages as the
    /// documentation says (oldest first, `fromId` inclusive) and records what
    /// it was asked.
    struct FakeTrades {
        /// (symbol, id, time ms, element), in id order.
        trades: Vec<(String, u64, u64, String)>,
        asked: Vec<(String, TradesFrom)>,
    }

    impl FakeTrades {
        fn fetch(&mut self, symbol: &str, from: TradesFrom) -> Result<Vec<u8>, RestError> {
            self.asked.push((symbol.to_string(), from));
            let rows: Vec<&str> = self
                .trades
                .iter()
                .filter(|(s, id, time, _)| {
                    s == symbol
                        && match from {
                            TradesFrom::Id(from) => *id >= from,
                            TradesFrom::Time { start_ms, end_ms } => {
                                *time >= start_ms && end_ms.is_none_or(|e| *time <= e)
                            }
                        }
                })
                .take(USER_TRADES_MAX)
                .map(|(_, _, _, json)| json.as_str())
                .collect();
            Ok(format!("[{}]", rows.join(",")).into_bytes())
        }
    }

    fn tables() -> Tables {
        Tables::new(&universe())
    }

    fn fills(out: &[Msg]) -> Vec<(LeaderFill, FillKind, bool)> {
        out.iter()
            .filter_map(|m| match m {
                Msg::Fill { fill, gap, .. } => Some((fill.fill, fill.kind, *gap)),
                _ => None,
            })
            .collect()
    }

    fn rejections(out: &[Msg]) -> Vec<String> {
        out.iter()
            .filter_map(|m| match m {
                Msg::Rejected(e) => Some(e.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pages_are_week_windows_then_pages_from_the_last_trade_id() {
        let now = 100 * WEEK_MS;
        // A recent gap: `startTime` alone, one short page and done.
        let mut p = Pager::new(now - 5_000, now);
        assert_eq!(
            p.next,
            Some(TradesFrom::Time {
                start_ms: now - 5_000,
                end_ms: None
            })
        );
        p.answered(999, Some(40)).unwrap();
        assert_eq!(p.next, None);
        // A full page goes on from its last trade, which comes again.
        let mut p = Pager::new(now - 5_000, now);
        p.answered(USER_TRADES_MAX, Some(40)).unwrap();
        assert_eq!(p.next, Some(TradesFrom::Id(40)));
        p.answered(USER_TRADES_MAX, Some(1039)).unwrap();
        assert_eq!(p.next, Some(TradesFrom::Id(1039)));
        assert_eq!(
            p.answered(USER_TRADES_MAX, Some(1039)),
            Err(PageError::NoProgress {
                asked: 1039,
                last: 1039
            })
        );
        // An old gap: 7-day windows up to the last week, then `startTime` alone.
        let from = now - 3 * WEEK_MS + 5;
        let mut p = Pager::new(from, now);
        let mut asked = vec![p.next.unwrap()];
        while p.next.is_some() {
            p.answered(3, Some(9)).unwrap();
            asked.extend(p.next);
        }
        assert_eq!(
            asked,
            vec![
                TradesFrom::Time {
                    start_ms: from,
                    end_ms: Some(from + WEEK_MS - 1)
                },
                TradesFrom::Time {
                    start_ms: from + WEEK_MS,
                    end_ms: Some(from + 2 * WEEK_MS - 1)
                },
                TradesFrom::Time {
                    start_ms: from + 2 * WEEK_MS,
                    end_ms: None
                },
            ]
        );
        // A full window goes on by id, past the window's end.
        let mut p = Pager::new(from, now);
        p.answered(USER_TRADES_MAX, Some(77)).unwrap();
        assert_eq!(p.next, Some(TradesFrom::Id(77)));
        // The pages are bounded.
        let mut p = Pager::new(now - 5_000, now);
        let mut last = 0;
        let end = loop {
            last += USER_TRADES_MAX as u64;
            if let Err(e) = p.answered(USER_TRADES_MAX, Some(last)) {
                break e;
            }
        };
        assert_eq!(end, PageError::TooMany);
        assert_eq!(p.pages, GAP_PAGES_MAX);
    }

    #[test]
    fn a_gap_fill_pages_through_and_takes_each_trade_once_even_a_self_trade_split_by_a_page() {
        let t0 = 1_700_000_000_000;
        let mut trades = Vec::new();
        let mut push = |id: u64, side: &str| {
            let time = t0 + id * 10;
            let json = rest_trade("BTCUSDT", id, side, 100 + id, "0.001", "42000.0", time);
            trades.push(("BTCUSDT".to_string(), id, time, json));
        };
        for id in 1..1000 {
            push(id, "BUY");
        }
        // Self-trade prevention off: both sides of trade 1000 are the leader's,
        // and the first page ends between them.
        push(1000, "BUY");
        push(1000, "SELL");
        for id in 1001..2500 {
            push(id, "SELL");
        }
        let mut venue = FakeTrades {
            trades,
            asked: Vec::new(),
        };
        let mut s = state(0, "L1", t0, true);
        let mut out = Vec::new();
        let now = t0 + 40_000;
        s.fill_gap(
            &tables(),
            t0 + 30_000,
            now,
            &mut |sym, f| venue.fetch(sym, f),
            &mut |m| {
                out.push(m);
                true
            },
        )
        .unwrap();
        let got = fills(&out);
        assert_eq!(got.len(), 2500, "{:?}", rejections(&out));
        let keys: HashSet<u64> = got.iter().map(|f| f.0.event_key).collect();
        assert_eq!(keys.len(), 2500, "each trade once");
        assert!(keys.contains(&event_key("L1", "BTCUSDT", 1000, Side::Buy)));
        assert!(keys.contains(&event_key("L1", "BTCUSDT", 1000, Side::Sell)));
        assert!(
            got.windows(2).all(|w| w[0].0.venue_ts <= w[1].0.venue_ts),
            "in order"
        );
        assert!(got
            .iter()
            .all(|f| f.2 && f.1 == FillKind::Unknown && f.0.order_qty == Lots::ZERO));
        assert_eq!(
            venue.asked,
            vec![
                (
                    "BTCUSDT".to_string(),
                    TradesFrom::Time {
                        start_ms: t0,
                        end_ms: None
                    }
                ),
                ("BTCUSDT".to_string(), TradesFrom::Id(1000)),
                ("BTCUSDT".to_string(), TradesFrom::Id(1998)),
                (
                    "ETHUSDT".to_string(),
                    TradesFrom::Time {
                        start_ms: t0,
                        end_ms: None
                    }
                ),
            ]
        );
        assert!(matches!(
            out.last(),
            Some(Msg::Covered { leader: 0, ms }) if *ms == t0 + 30_000
        ));
        let stats = stats_of(&s);
        assert_eq!(
            (stats.duplicates, stats.rest_pages, stats.gap_fill_runs),
            (2, 4, 1)
        );
        // The next gap reads again from the watermark less the overlap: all
        // of it was taken, none is taken twice.
        assert_eq!(s.gap_start_ms(), t0 + 30_000 - 10_000);
        let mut again = Vec::new();
        s.fill_gap(
            &tables(),
            t0 + 70_000,
            now,
            &mut |sym, f| venue.fetch(sym, f),
            &mut |m| {
                again.push(m);
                true
            },
        )
        .unwrap();
        assert!(fills(&again).is_empty());
        // Trades 2000 to 2499 are in the overlap.
        assert_eq!(stats_of(&s).duplicates, 2 + 500);
    }

    #[test]
    fn a_trade_on_the_stream_and_in_user_trades_is_taken_once_with_what_the_stream_knew() {
        let t0 = 1_700_000_000_000;
        let symbols = tables();
        let mut s = state(1, "L2", t0, false);
        let mut out = Vec::new();
        let mut take = |s: &mut LeaderState, m: &str| {
            s.on_message(m.as_bytes(), &symbols, ms(t0 + 1), &mut |m| {
                out.push(m);
                true
            })
        };
        // Order 5 is seen NEW, then trades once on the stream; order 6, the
        // venue's liquidation of the leader, is seen NEW only.
        for m in [
            update(
                "BTCUSDT",
                "mine-5",
                "BUY",
                "NEW",
                5,
                "0.010",
                0,
                "0",
                "0",
                t0 + 10,
            ),
            update(
                "BTCUSDT",
                "mine-5",
                "BUY",
                "TRADE",
                5,
                "0.010",
                10,
                "0.004",
                "42000.0",
                t0 + 11,
            ),
            update(
                "BTCUSDT",
                "autoclose-1701",
                "SELL",
                "NEW",
                6,
                "0.020",
                0,
                "0",
                "0",
                t0 + 12,
            ),
        ] {
            assert_eq!(take(&mut s, &m), Step::Go);
        }
        let again = update(
            "BTCUSDT",
            "mine-5",
            "BUY",
            "TRADE",
            5,
            "0.010",
            10,
            "0.004",
            "42000.0",
            t0 + 11,
        );
        assert_eq!(take(&mut s, &again), Step::Go);
        let mut venue = FakeTrades {
            trades: [
                (10, "BUY", 5, "0.004", t0 + 11),
                (11, "BUY", 5, "0.006", t0 + 20),
                (12, "SELL", 6, "0.020", t0 + 21),
                (13, "SELL", 99, "0.001", t0 + 22),
            ]
            .iter()
            .map(|&(id, side, order, qty, time)| {
                (
                    "BTCUSDT".to_string(),
                    id,
                    time,
                    rest_trade("BTCUSDT", id, side, order, qty, "42000.0", time),
                )
            })
            .collect(),
            asked: Vec::new(),
        };
        s.fill_gap(
            &symbols,
            t0 + 30,
            t0 + 40,
            &mut |sym, f| venue.fetch(sym, f),
            &mut |m| {
                out.push(m);
                true
            },
        )
        .unwrap();
        let got = fills(&out);
        let summary: Vec<(u64, FillKind, Lots, Lots, bool)> = got
            .iter()
            .map(|(f, kind, gap)| {
                (
                    f.venue_ts.0 / 1_000_000 - t0,
                    *kind,
                    f.qty,
                    f.order_qty,
                    *gap,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (11, FillKind::Trade, Lots(4), Lots(10), false),
                (20, FillKind::Trade, Lots(6), Lots(10), true),
                (21, FillKind::Liquidation, Lots(20), Lots(20), true),
                (22, FillKind::Unknown, Lots(1), Lots::ZERO, true),
            ]
        );
        assert!(got
            .iter()
            .all(|f| f.0.leader == LeaderIdx(1) && f.0.symbol == SymbolIdx(0)));
        // The kind goes on with the engine's fill, for lineage.
        assert!(got.iter().all(|f| f.0.kind == f.1.into()));
        // The stream's and REST's fill of trade 10 would be the same event.
        assert_eq!(
            got[0].0.event_key,
            event_key("L2", "BTCUSDT", 10, Side::Buy)
        );
        assert_eq!(got[0].0.order_key, got[1].0.order_key);
        assert_eq!(stats_of(&s).duplicates, 2, "the stream's repeat and REST's");
        // Resumed (not exact): the gap started an overlap before the watermark,
        // which the stream fill had moved past trade 10.
        assert_eq!(
            venue.asked[0].1,
            TradesFrom::Time {
                start_ms: t0 + 12 - 10_000,
                end_ms: None
            }
        );
    }

    #[test]
    fn bad_messages_and_fills_that_cannot_be_taken_are_said_with_their_number() {
        let t0 = 1_700_000_000_000;
        let symbols = tables();
        let mut s = state(0, "L1", t0, true);
        let mut out = Vec::new();
        let messages = [
            "{".to_string(),
            update("DOGEUSDT", "c", "BUY", "TRADE", 1, "1", 1, "1", "0.1", t0),
            update("BTCUSDT", "c", "BUY", "TRADE", 2, "0.0105", 2, "0.0105", "42000.0", t0),
            r#"{"e":"ACCOUNT_UPDATE","E":1,"T":1,"a":{"m":"ORDER","B":[{"a":"USDT","wb":"1234.5","cw":"0","bc":"0"}],"P":[]}}"#.to_string(),
            r#"{"e":"MARGIN_CALL","E":1}"#.to_string(),
        ];
        for m in &messages {
            let step = s.on_message(m.as_bytes(), &symbols, ms(t0), &mut |m| {
                out.push(m);
                true
            });
            assert_eq!(step, Step::Go);
        }
        let said = rejections(&out);
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(
            said[0].starts_with("bn/L1:1: user data stream message 1: malformed JSON"),
            "{}",
            said[0]
        );
        assert_eq!(
            said[1],
            "bn/L1:2: user data stream message 2: ORDER_TRADE_UPDATE of \"DOGEUSDT\" trade 1: unknown symbol \"DOGEUSDT\""
        );
        assert!(
            said[2].contains("message 3") && said[2].contains("not a multiple of the lot size"),
            "{}",
            said[2]
        );
        assert!(matches!(
            out.iter().find(|m| matches!(m, Msg::Equity { .. })),
            Some(Msg::Equity { leader: 0, equity, .. }) if *equity == Money::from_decimal(dec!(1234.5)).unwrap()
        ));
        let stats = stats_of(&s);
        assert_eq!((stats.parse_errors, stats.refused), (1, 2));
        let expired = format!(r#"{{"e":"listenKeyExpired","E":"1","listenKey":"{KEY_1}"}}"#);
        assert_eq!(
            s.on_message(expired.as_bytes(), &symbols, ms(t0), &mut |_| true),
            Step::Expired
        );
        let fill = update(
            "BTCUSDT", "c", "BUY", "TRADE", 3, "0.001", 3, "0.001", "42000.0", t0,
        );
        assert_eq!(
            s.on_message(fill.as_bytes(), &symbols, ms(t0), &mut |_| false),
            Step::Gone
        );
    }

    #[test]
    fn an_unlisted_symbol_is_said_once_and_other_failures_stop_the_gap_fill() {
        let symbols = tables();
        let mut s = state(0, "L1", 1_000, true);
        let mut out = Vec::new();
        let mut unlisted = |sym: &str, _| {
            if sym == "ETHUSDT" {
                Err(RestError::Venue {
                    path: "/fapi/v1/userTrades",
                    status: 400,
                    code: -1121,
                    msg: "Invalid symbol.".into(),
                })
            } else {
                Ok(b"[]".to_vec())
            }
        };
        for _ in 0..2 {
            s.fill_gap(&symbols, 2_000, 3_000, &mut unlisted, &mut |m| {
                out.push(m);
                true
            })
            .unwrap();
        }
        let said = rejections(&out);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("ETHUSDT") && said[0].contains("-1121"));
        let e = s
            .fill_gap(
                &symbols,
                2_000,
                3_000,
                &mut |_, _| Ok(b"{}".to_vec()),
                &mut |_| true,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "userTrades of BTCUSDT: expected a JSON array of trades, got an object"
        );
        let e = s
            .fill_gap(
                &symbols,
                2_000,
                3_000,
                &mut |_, _| {
                    Err(RestError::Venue {
                        path: "/fapi/v1/userTrades",
                        status: 418,
                        code: -1003,
                        msg: "banned".into(),
                    })
                },
                &mut |_| true,
            )
            .unwrap_err();
        assert_eq!(e.wait_min(), Some(BANNED_WAIT));
        assert_eq!(stats_of(&s).gap_fill_runs, 2);
    }

    fn msg_fill(leader: usize, symbol: u16, time_ms: u64, gap: bool, kind: FillKind) -> Msg {
        Msg::Fill {
            leader,
            fill: Fill {
                fill: LeaderFill {
                    leader: LeaderIdx(leader as u32),
                    symbol: SymbolIdx(symbol),
                    side: Side::Buy,
                    qty: Lots(1),
                    price: Ticks(1),
                    event_key: time_ms,
                    order_key: 0,
                    order_qty: Lots::ZERO,
                    venue_ts: ms(time_ms),
                    recv_ts: ms(time_ms),
                    kind: kind.into(),
                },
                kind,
            },
            gap,
        }
    }

    fn intake(universe: &Arc<Universe>, start_ms: u64) -> Intake {
        Intake {
            origin: "bn".into(),
            universe: Arc::clone(universe),
            leaders: ["L1", "L2"]
                .iter()
                .enumerate()
                .map(|(i, name)| IntakeLeader {
                    name: name.to_string(),
                    idx: LeaderIdx(i as u32),
                    watermark_ms: start_ms,
                    stats: BinanceSourceStats::default(),
                })
                .collect(),
            marks: 0,
        }
    }

    #[test]
    fn the_position_is_the_least_leaders_watermark_and_gap_fills_move_it_only_when_done() {
        let u = universe();
        let mut i = intake(&u, 1_000);
        assert_eq!(i.position(), 1_000);
        assert!(matches!(
            i.take(msg_fill(0, 0, 5_000, false, FillKind::Trade)),
            Some(SourcePoll::Event(_))
        ));
        assert_eq!(i.position(), 1_000, "L2 has taken nothing since 1000");
        assert!(i
            .take(Msg::Covered {
                leader: 1,
                ms: 3_000
            })
            .is_none());
        assert_eq!(i.position(), 3_000);
        // A gap fill's fills are not in time order: they do not move it...
        i.take(msg_fill(1, 1, 9_000, true, FillKind::Liquidation));
        assert_eq!(i.position(), 3_000);
        // ... its end does; a watermark never goes back.
        i.take(Msg::Covered {
            leader: 1,
            ms: 8_000,
        });
        i.take(Msg::Covered {
            leader: 0,
            ms: 2_000,
        });
        assert_eq!(i.position(), 5_001);
        i.take(msg_fill(1, 0, 7_000, false, FillKind::Adl));
        i.take(msg_fill(1, 0, 7_001, true, FillKind::Unknown));
        let l2 = i.leaders[1].stats;
        assert_eq!(
            (
                l2.fills,
                l2.gap_fills,
                l2.liquidations,
                l2.adls,
                l2.unknown_kinds
            ),
            (3, 2, 1, 1, 1)
        );
        // A leader a reload removed: its fills are refused and it no longer
        // holds the position back.
        let mut removed = (*u).clone();
        removed.leaders[0].removed = true;
        i.universe = Arc::new(removed);
        assert_eq!(i.position(), 8_000);
        match i.take(msg_fill(0, 0, 9_000, false, FillKind::Trade)) {
            Some(SourcePoll::Rejected(e)) => assert_eq!(
                e.to_string(),
                "bn/L1: a fill of BTCUSDT: leader `L1` was removed by a reload; not taken"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_are_scrubbed_from_what_is_said_and_never_printed() {
        let said = scrub(
            &format!("http://h/fapi/v1/userTrades?symbol=X&timestamp=1&signature=3c661234abcd: refused; key {KEY_1}; ws://h/ws/LISTENKEY9 gone; signature=a%2Bb/c%3D&x"),
            &[KEY_1, "LISTENKEY9", ""],
        );
        assert_eq!(
            said,
            "http://h/fapi/v1/userTrades?symbol=X&timestamp=1&signature=<redacted>: refused; key <redacted>; ws://h/ws/<redacted> gone; signature=<redacted>&x"
        );
        let account = LeaderAccount {
            leader: "L1".into(),
            api_key: SecretString::from(KEY_1),
            signer: Signer::hmac(SECRET).unwrap(),
        };
        let debug = format!("{account:?}");
        assert!(
            !debug.contains(KEY_1) && !debug.contains("2b5eb11e"),
            "{debug}"
        );
        assert!(debug.contains("L1"));
    }

    fn account(leader: &str, key: &str) -> LeaderAccount {
        LeaderAccount {
            leader: leader.into(),
            api_key: SecretString::from(key),
            signer: Signer::hmac(SECRET).unwrap(),
        }
    }

    #[test]
    fn the_config_and_the_accounts_are_checked() {
        let u = universe();
        let base = || BinanceSourceConfig::new("bn", "http://127.0.0.1:1", "ws://127.0.0.1:1");
        let error = |cfg: BinanceSourceConfig, accounts: Vec<LeaderAccount>| {
            BinanceSource::new(cfg, accounts, &u)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(error(base(), vec![account("L1", KEY_1)]), None);
        assert_eq!(
            error(base(), vec![]).unwrap(),
            "binance source `bn`: no leader accounts"
        );
        assert_eq!(
            error(base(), vec![account("L9", KEY_1)]).unwrap(),
            "binance source `bn`: `L9` is not a leader of the model in force"
        );
        assert_eq!(
            error(base(), vec![account("L1", KEY_1), account("L1", KEY_2)]).unwrap(),
            "binance source `bn`: leader `L1` is given twice"
        );
        let mut cfg = base();
        cfg.keep_alive = LISTEN_KEY_LIFE;
        assert_eq!(
            error(cfg, vec![account("L1", KEY_1)]).unwrap(),
            "binance source `bn`: `keep_alive` is 3600 s: more than 0 and less than the listen key's 60 minutes"
        );
        let mut cfg = base();
        cfg.reconnect_before = CONNECTION_AGE_MAX;
        assert!(error(cfg, vec![account("L1", KEY_1)])
            .unwrap()
            .contains("`reconnect_before` is 86400 s"));
        let mut cfg = base();
        cfg.stream_url = "https://fstream.binance.com".into();
        assert!(error(cfg, vec![account("L1", KEY_1)])
            .unwrap()
            .contains("`stream_url`"));
        let mut cfg = base();
        cfg.rest_url = "fapi.binance.com".into();
        assert!(error(cfg, vec![account("L1", KEY_1)])
            .unwrap()
            .contains("`rest_url`"));
        for bad in [
            "https://fstream.binance.com/market",
            "wss://h/market?x=1",
            "wss://h#m",
        ] {
            let mut cfg = base();
            cfg.market_url = bad.into();
            assert_eq!(
                error(cfg, vec![account("L1", KEY_1)]).unwrap(),
                format!("binance source `bn`: `market_url` is {bad:?}: a ws:// or wss:// URL without a query (mark prices are <url>/stream?streams=...)")
            );
        }
    }

    // -- Mark prices, without a network. ------------------------------------

    #[test]
    fn the_market_url_is_the_stream_hosts_market_route() {
        for (stream, market) in [
            (
                "wss://fstream.binance.com",
                "wss://fstream.binance.com/market",
            ),
            (
                "wss://fstream.binance.com/",
                "wss://fstream.binance.com/market",
            ),
            (
                "wss://fstream.binance.com/private",
                "wss://fstream.binance.com/market",
            ),
            (
                "wss://fstream.binance.com/public/",
                "wss://fstream.binance.com/market",
            ),
            (
                "wss://fstream.binancefuture.com",
                "wss://fstream.binancefuture.com/market",
            ),
            ("ws://127.0.0.1:9000", "ws://127.0.0.1:9000/market"),
        ] {
            assert_eq!(market_url_of(stream), market, "{stream}");
        }
        let cfg = BinanceSourceConfig::new(
            "bn",
            "https://fapi.binance.com",
            "wss://fstream.binance.com",
        );
        assert_eq!(
            (cfg.mark_prices, cfg.market_url.as_str()),
            (MarkPrices::Every1s, "wss://fstream.binance.com/market")
        );
    }

    #[test]
    fn the_mark_stream_url_names_each_symbol_in_lower_case_up_to_the_limit() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = "wss://fstream.binance.com/market/";
        assert_eq!(
            mark_stream_url(base, &names(&["BTCUSDT", "ETHUSDT"]), MarkPrices::Every1s),
            (
                Some("wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s/ethusdt@markPrice@1s".into()),
                0
            )
        );
        assert_eq!(
            mark_stream_url(base, &names(&["BTCUSDT_250328"]), MarkPrices::Every3s).0,
            Some("wss://fstream.binance.com/market/stream?streams=btcusdt_250328@markPrice".into())
        );
        // Bytes a URL cannot hold as they are, percent-encoded (a symbol of
        // non-ASCII letters is one Binance has listed).
        assert_eq!(
            mark_stream_url(base, &names(&["币安USDT", "A/B?C D"]), MarkPrices::Every1s).0,
            Some("wss://fstream.binance.com/market/stream?streams=%E5%B8%81%E5%AE%89usdt@markPrice@1s/a%2Fb%3Fc%20d@markPrice@1s".into())
        );
        assert_eq!(mark_stream_url(base, &[], MarkPrices::Every1s), (None, 0));
        assert_eq!(
            mark_stream_url(base, &names(&["BTCUSDT"]), MarkPrices::Off),
            (None, 0)
        );
        let many: Vec<String> = (0..MARK_STREAMS_MAX + 3)
            .map(|i| format!("S{i}USDT"))
            .collect();
        let (url, left_out) = mark_stream_url(base, &many, MarkPrices::Every1s);
        assert_eq!(left_out, 3);
        let url = url.unwrap();
        assert_eq!(url.matches("@markPrice@1s").count(), MARK_STREAMS_MAX);
        assert!(url.ends_with(&format!("s{}usdt@markPrice@1s", MARK_STREAMS_MAX - 1)));
    }

    fn mark_state() -> MarkState {
        MarkState {
            origin: "bn/marks".into(),
            parser: Parser::new(),
            messages: 0,
            shared: Arc::new(Mutex::new(LeaderShared::default())),
        }
    }

    /// The documentation's `markPriceUpdate` example (of BTCUSDT).
    const MARK: &str = r#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#;

    #[test]
    fn mark_messages_become_marks_on_the_tick_and_bad_ones_are_said_with_their_number() {
        let mut s = mark_state();
        let t = tables();
        let mut out = Vec::new();
        let mut take = |s: &mut MarkState, bytes: &[u8]| {
            assert_eq!(
                s.on_message(bytes, &t, &mut |m| {
                    out.push(m);
                    true
                }),
                Step::Go
            );
        };
        let eth = MARK
            .replace("BTCUSDT", "ETHUSDT")
            .replace("11794.15000000", "2500.00500000");
        let wrapped = format!(r#"{{"stream":"btcusdt@markPrice@1s","data":{MARK}}}"#);
        take(&mut s, MARK.as_bytes());
        take(&mut s, wrapped.as_bytes());
        take(&mut s, eth.as_bytes());
        take(&mut s, br#"{"e":"aggTrade","E":1}"#);
        take(&mut s, MARK.replace("BTCUSDT", "DOGEUSDT").as_bytes());
        take(
            &mut s,
            MARK.replace(r#""11794.15000000""#, "11794.15").as_bytes(),
        );
        take(&mut s, &MARK.as_bytes()[..40]);
        take(&mut s, MARK.replace("11794.15000000", "0.04").as_bytes());
        let got: Vec<String> = out
            .iter()
            .map(|m| match m {
                Msg::Mark(FeedEvent::MarkPrice { symbol, price, ts }) => {
                    format!("mark {} {} {}", symbol.0, price.0, ts.0 / 1_000_000)
                }
                Msg::Rejected(e) => e.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                // 11794.15 on a tick of 0.1 is half a tick: to even.
                "mark 0 117942 1562305380000",
                "mark 0 117942 1562305380000",
                // 2500.005 on a tick of 0.01: half a tick, to even (250000).
                "mark 1 250000 1562305380000",
                "bn/marks:5: mark-price stream message 5: markPriceUpdate: unknown symbol \"DOGEUSDT\"",
                "bn/marks:6: mark-price stream message 6: field `p` must be a decimal string like \"0.5\", got a fractional or out-of-range number",
                "bn/marks:7: mark-price stream message 7: malformed JSON: Syntax at character 27 (\\'1\\')",
                "bn/marks:8: mark-price stream message 8: markPriceUpdate: field `p` must be positive, got 0.04",
            ]
        );
        let stats = lock(&s.shared).stats;
        assert_eq!((stats.parse_errors, stats.refused), (2, 2));
        // A mark of a symbol a reload removed is dropped quietly: the
        // connection is being renewed without it.
        let mut gone = (*universe()).clone();
        gone.symbols[0].removed = true;
        let gone = Tables::new(&gone);
        let mut n = 0;
        assert_eq!(
            s.on_message(MARK.as_bytes(), &gone, &mut |_| {
                n += 1;
                true
            }),
            Step::Go
        );
        assert_eq!(n, 0);
        // `next`'s side gone: the thread ends.
        assert_eq!(
            s.on_message(MARK.as_bytes(), &t, &mut |_| false),
            Step::Gone
        );
    }

    #[test]
    fn hostile_mark_messages_are_said_never_panicked_on() {
        let mut s = mark_state();
        let t = tables();
        let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0xff; 100],
            " ".repeat(stream::MESSAGE_BYTES_MAX + 1).into_bytes(),
            deep.clone().into_bytes(),
            MARK.replacen(r#""i":"11784.62659091""#, &format!(r#""i":{deep}"#), 1)
                .into_bytes(),
            MARK.replacen(r#""s":"BTCUSDT""#, r#""s":"BTCUSDT","s":"ETHUSDT""#, 1)
                .into_bytes(),
            MARK.replacen(
                r#""s":"BTCUSDT""#,
                r#""s":"[2J
""#,
                1,
            )
            .into_bytes(),
            MARK.replacen(r#""E":1562305380000"#, r#""E":99999999999999999999"#, 1)
                .into_bytes(),
            MARK.replacen("11794.15000000", "99999999999999999999999999999", 1)
                .into_bytes(),
            MARK.replacen("11794.15000000", "-1", 1).into_bytes(),
            format!(r#"{{"stream":"x","data":{{"stream":"y","data":{MARK}}}}}"#).into_bytes(),
        ];
        let mut marks = 0;
        for c in &cases {
            s.on_message(c, &t, &mut |m| {
                marks += usize::from(matches!(m, Msg::Mark(_)));
                true
            });
        }
        // The deep value in a field not read is skipped: that mark is taken.
        assert_eq!(marks, 1);
        // Every cut of a good message is refused.
        for cut in 0..MARK.len() {
            s.on_message(&MARK.as_bytes()[..cut], &t, &mut |m| {
                assert!(matches!(m, Msg::Rejected(_)), "{cut}: {m:?}");
                true
            });
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Any bytes on the mark-price connection give a mark on a whole,
        /// positive tick, a rejection, or nothing: never a panic.
        #[test]
        fn arbitrary_mark_stream_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut s = mark_state();
            let t = tables();
            s.on_message(&bytes, &t, &mut |m| {
                if let Msg::Mark(FeedEvent::MarkPrice { price, .. }) = m {
                    assert!(price.0 > 0);
                }
                true
            });
        }
    }

    #[test]
    fn a_mark_of_a_symbol_a_reload_removed_is_dropped_and_the_rest_counted() {
        let u = universe();
        let mut i = intake(&u, 0);
        let mark = |symbol: u16| {
            Msg::Mark(FeedEvent::MarkPrice {
                symbol: SymbolIdx(symbol),
                price: Ticks(5),
                ts: ms(1),
            })
        };
        assert!(matches!(
            i.take(mark(1)),
            Some(SourcePoll::Event(FeedEvent::MarkPrice { .. }))
        ));
        let mut gone = (*u).clone();
        gone.symbols[1].removed = true;
        i.universe = Arc::new(gone);
        assert!(i.take(mark(1)).is_none());
        assert!(i.take(mark(9)).is_none(), "no such symbol");
        assert_eq!(i.marks, 1);
        // Marks move no watermark.
        assert_eq!(i.position(), 0);
    }

    #[test]
    fn resume_refuses_what_the_venue_cannot_fill_and_comes_before_the_first_next() {
        let u = universe();
        let mut cfg = BinanceSourceConfig::new("bn", "http://127.0.0.1:1", "ws://127.0.0.1:1");
        cfg.connect_timeout = Duration::from_millis(200);
        cfg.rest_timeout = Duration::from_millis(200);
        // The leader's failure is the one looked for here.
        cfg.mark_prices = MarkPrices::Off;
        let mut src = BinanceSource::new(cfg, vec![account("L1", KEY_1)], &u).unwrap();
        let now = now_ms();
        let e = src.resume(now - 200 * 86_400_000).unwrap_err().to_string();
        assert!(e.contains("the venue keeps 180 days of trades"), "{e}");
        let e = src.resume(now + 2 * 3_600_000).unwrap_err().to_string();
        assert!(e.contains("has no trades after now"), "{e}");
        src.resume(now - 3_600_000).unwrap();
        assert_eq!(src.position(), Some(now - 3_600_000));
        // Nothing listens there: the failure is said, counted and kept.
        let deadline = Instant::now() + PATIENCE;
        let said = loop {
            match src.next(clock::now()) {
                SourcePoll::Rejected(e) => break e.to_string(),
                SourcePoll::Idle if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                other => panic!("{other:?}"),
            }
        };
        assert!(
            said.starts_with("bn/L1: making a listen key (POST /fapi/v1/listenKey): "),
            "{said}"
        );
        assert!(said.contains("trying again in"), "{said}");
        assert!(!said.contains(KEY_1));
        assert!(src.stats().errors >= 1);
        // A later retry may have replaced it already: the same failure.
        let last = src.last_error().expect("the failure is kept");
        assert!(last.starts_with("making a listen key"), "{last}");
        assert!(!src.is_up());
        assert!(matches!(
            src.resume(now),
            Err(ResumeError::AlreadyStarted { .. })
        ));
        assert_eq!(
            src.position(),
            Some(now - 3_600_000),
            "no fill taken: it stays"
        );
    }

    // -- Against the test venue, over real sockets. -------------------------

    fn venue() -> TestVenue {
        let symbol = |name: &str, step, tick| SymbolFilters {
            symbol: name.into(),
            tick_size: Some(tick),
            step_size: Some(step),
            min_qty: Some(step),
            min_notional: Some(dec!(5)),
        };
        TestVenue::start(
            "127.0.0.1:0",
            TestVenueOptions {
                accounts: vec![
                    VenueAccount::hmac(KEY_1, SECRET),
                    VenueAccount::hmac(KEY_2, SECRET),
                ],
                symbols: vec![
                    symbol("BTCUSDT", dec!(0.001), dec!(0.1)),
                    symbol("ETHUSDT", dec!(0.001), dec!(0.01)),
                ],
            },
        )
        .expect("test venue")
    }

    fn config(v: &TestVenue) -> BinanceSourceConfig {
        let mut cfg = BinanceSourceConfig::new("bn", &v.rest_url(), &v.stream_url());
        cfg.tick = Duration::from_millis(20);
        cfg
    }

    fn source(v: &TestVenue, cfg: BinanceSourceConfig, leaders: &[&str]) -> BinanceSource {
        let accounts = leaders
            .iter()
            .map(|l| account(l, if *l == "L1" { KEY_1 } else { KEY_2 }))
            .collect();
        let _ = v;
        BinanceSource::new(cfg, accounts, &universe()).expect("source")
    }

    /// What a source said while it was polled.
    #[derive(Default)]
    struct Seen {
        fills: Vec<LeaderFill>,
        marks: Vec<FeedEvent>,
        said: Vec<String>,
    }

    /// Polls `src` until `done` holds of what it gave; fails after `PATIENCE`.
    fn poll_until(
        src: &mut BinanceSource,
        seen: &mut Seen,
        what: &str,
        done: impl Fn(&Seen, &BinanceSource) -> bool,
    ) {
        let deadline = Instant::now() + PATIENCE;
        while !done(seen, src) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {PATIENCE:?}; {} fills, said {:?}, stats {:?}",
                seen.fills.len(),
                seen.said,
                src.stats()
            );
            match src.next(clock::now()) {
                SourcePoll::Event(FeedEvent::LeaderFill(f)) => seen.fills.push(f),
                SourcePoll::Event(mark @ FeedEvent::MarkPrice { .. }) => seen.marks.push(mark),
                SourcePoll::Event(other) => panic!("{other:?}"),
                SourcePoll::Rejected(e) => seen.said.push(e.to_string()),
                SourcePoll::Idle => std::thread::sleep(Duration::from_millis(2)),
                SourcePoll::Finished => panic!("a live source never finishes"),
            }
        }
    }

    fn up(src: &mut BinanceSource, seen: &mut Seen) {
        poll_until(src, seen, "connected with the gap filled", |_, s| s.is_up());
    }

    /// A whole order of one lot of BTCUSDT at 42000.0: order `order_id`.
    fn one_lot(side: Side, order_id: u64) -> VenueTrade {
        trade(
            "BTCUSDT",
            side,
            dec!(0.001),
            dec!(42000.0),
            order_id,
            dec!(0.001),
        )
    }

    fn trade(
        symbol: &str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        order_id: u64,
        order_qty: Decimal,
    ) -> VenueTrade {
        VenueTrade {
            symbol: symbol.into(),
            side,
            qty,
            price,
            order_id,
            order_qty,
            client_order_id: format!("leader-{order_id}"),
        }
    }

    fn key_of(leader: &str, symbol: &str, id: u64, side: Side) -> u64 {
        event_key(leader, symbol, id, side)
    }

    /// Every key once, and no other.
    fn exactly_once(fills: &[LeaderFill], keys: &[u64]) {
        let got: Vec<u64> = fills.iter().map(|f| f.event_key).collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "a fill twice");
        let mut want = keys.to_vec();
        want.sort_unstable();
        assert_eq!(sorted, want);
    }

    #[test]
    fn a_leader_order_filled_in_many_partials_arrives_as_that_many_fills_in_order() {
        let v = venue();
        let mut src = source(&v, config(&v), &["L1", "L2"]);
        let mut seen = Seen::default();
        up(&mut src, &mut seen);
        let mut keys = Vec::new();
        for n in 0..40u32 {
            let price = dec!(42000.0) + Decimal::from(n);
            let id = v.trade(
                KEY_1,
                &trade("BTCUSDT", Side::Buy, dec!(0.005), price, 77, dec!(0.200)),
            );
            keys.push(key_of("L1", "BTCUSDT", id, Side::Buy));
            if n.is_multiple_of(10) {
                let id = v.trade(
                    KEY_2,
                    &trade(
                        "ETHUSDT",
                        Side::Sell,
                        dec!(0.010),
                        dec!(2500.00),
                        9,
                        dec!(0.040),
                    ),
                );
                keys.push(key_of("L2", "ETHUSDT", id, Side::Sell));
            }
        }
        poll_until(&mut src, &mut seen, "44 fills", |s, _| s.fills.len() >= 44);
        exactly_once(&seen.fills, &keys);
        let l1: Vec<&LeaderFill> = seen
            .fills
            .iter()
            .filter(|f| f.leader == LeaderIdx(0))
            .collect();
        assert_eq!(l1.len(), 40);
        for (n, f) in l1.iter().enumerate() {
            assert_eq!(
                f.price,
                Ticks(420_000 + 10 * n as i64),
                "in the order they traded"
            );
            assert_eq!(
                (f.symbol, f.side, f.qty, f.order_qty),
                (SymbolIdx(0), Side::Buy, Lots(5), Lots(200))
            );
            assert_eq!(f.order_key, l1[0].order_key);
        }
        let l2: Vec<&LeaderFill> = seen
            .fills
            .iter()
            .filter(|f| f.leader == LeaderIdx(1))
            .collect();
        assert!(l2
            .iter()
            .all(|f| f.symbol == SymbolIdx(1) && f.side == Side::Sell && f.qty == Lots(10)));
        let stats = src.stats();
        assert_eq!(
            (
                stats.fills,
                stats.gap_fills,
                stats.connects,
                stats.reconnects
            ),
            (44, 0, 2, 0)
        );
        assert_eq!(
            (stats.listen_keys, stats.gap_fill_runs, stats.errors),
            (2, 2, 0)
        );
        assert!(seen.said.is_empty(), "{:?}", seen.said);
    }

    #[test]
    fn a_dropped_stream_loses_no_fill_made_while_it_was_down_and_doubles_none() {
        let v = venue();
        let mut src = source(&v, config(&v), &["L1"]);
        let mut seen = Seen::default();
        up(&mut src, &mut seen);
        let mut keys = Vec::new();
        let mut trade_one = |n: u32| {
            let side = if n.is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            };
            let id = v.trade(KEY_1, &one_lot(side, 100 + u64::from(n)));
            keys.push(key_of("L1", "BTCUSDT", id, side));
        };
        for n in 0..3 {
            trade_one(n);
        }
        poll_until(&mut src, &mut seen, "3 fills on the stream", |s, _| {
            s.fills.len() >= 3
        });
        v.drop_streams();
        // Those made while no stream is open (checked on both sides of the
        // trade) reach the source only through userTrades.
        let mut while_down = 0;
        for n in 3..8 {
            let down = v.streams() == 0;
            trade_one(n);
            while_down += u64::from(down && v.streams() == 0);
        }
        poll_until(&mut src, &mut seen, "8 fills", |s, _| s.fills.len() >= 8);
        poll_until(&mut src, &mut seen, "up again", |_, s| s.is_up());
        for n in 8..10 {
            trade_one(n);
        }
        poll_until(&mut src, &mut seen, "10 fills", |s, _| s.fills.len() >= 10);
        exactly_once(&seen.fills, &keys);
        let stats = src.stats();
        assert!(
            stats.reconnects >= 1 && stats.gap_fill_runs >= 2,
            "{stats:?}"
        );
        assert!(
            stats.gap_fills >= while_down && stats.gap_fills <= 5,
            "{stats:?}, {while_down} made while down"
        );
        assert!(
            seen.said.iter().any(|s| s.starts_with(
                "bn/L1: the user data stream: the venue closed the connection; trying again in"
            )),
            "{:?}",
            seen.said
        );
        // Nothing more comes: none doubled after the fact either.
        let more = src.next(clock::now());
        assert!(!matches!(more, SourcePoll::Event(_)), "{more:?}");
        assert!(seen
            .said
            .iter()
            .all(|s| !s.contains(KEY_1) && !s.contains("tv0")));
    }

    #[test]
    fn an_expired_listen_key_is_replaced_and_no_fill_is_lost() {
        let v = venue();
        let mut src = source(&v, config(&v), &["L1"]);
        let mut seen = Seen::default();
        up(&mut src, &mut seen);
        let mut keys = Vec::new();
        let mut trade_one = |n: u64| {
            let id = v.trade(
                KEY_1,
                &trade(
                    "ETHUSDT",
                    Side::Buy,
                    dec!(0.002),
                    dec!(2500.01),
                    200 + n,
                    dec!(0.002),
                ),
            );
            keys.push(key_of("L1", "ETHUSDT", id, Side::Buy));
        };
        trade_one(0);
        trade_one(1);
        poll_until(&mut src, &mut seen, "2 fills", |s, _| s.fills.len() >= 2);
        v.expire_listen_keys();
        for n in 2..5 {
            trade_one(n);
        }
        poll_until(&mut src, &mut seen, "5 fills", |s, _| s.fills.len() >= 5);
        poll_until(&mut src, &mut seen, "up again", |_, s| s.is_up());
        trade_one(5);
        poll_until(&mut src, &mut seen, "6 fills", |s, _| s.fills.len() >= 6);
        exactly_once(&seen.fills, &keys);
        let stats = src.stats();
        assert_eq!(
            (stats.listen_keys, stats.listen_keys_expired),
            (2, 1),
            "{stats:?}"
        );
        assert!(stats.reconnects >= 1, "{stats:?}");
        assert!(
            seen.said.iter().any(|s| s.starts_with(
                "bn/L1: the listen key expired: the venue said so on the stream (listenKeyExpired); making a new one"
            )),
            "{:?}",
            seen.said
        );
        assert!(
            seen.said.iter().all(|s| !s.contains("tv0")),
            "no listen key in what is said"
        );
    }

    #[test]
    fn a_resumed_source_takes_the_trades_after_its_position_and_not_before() {
        let v = venue();
        let mut first = source(&v, config(&v), &["L1"]);
        let mut seen = Seen::default();
        up(&mut first, &mut seen);
        let mut before = Vec::new();
        for n in 0..2u64 {
            let id = v.trade(KEY_1, &one_lot(Side::Buy, 300 + n));
            before.push(key_of("L1", "BTCUSDT", id, Side::Buy));
        }
        poll_until(&mut first, &mut seen, "2 fills", |s, _| s.fills.len() >= 2);
        let pos = first.position().expect("a position");
        let last_ms = seen.fills.iter().map(|f| ms_of(f.venue_ts)).max().unwrap();
        assert_eq!(pos, last_ms + 1, "just after the last fill taken");
        drop(first);
        // Trades after the position (the clock past it first), made while no
        // source runs.
        let deadline = Instant::now() + PATIENCE;
        while now_ms() <= pos {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut after = Vec::new();
        for n in 0..3u64 {
            let id = v.trade(
                KEY_1,
                &trade(
                    "ETHUSDT",
                    Side::Sell,
                    dec!(0.001),
                    dec!(2500.00),
                    400 + n,
                    dec!(0.001),
                ),
            );
            after.push(key_of("L1", "ETHUSDT", id, Side::Sell));
        }
        let mut cfg = config(&v);
        cfg.gap_overlap = Duration::ZERO;
        let mut resumed = source(&v, cfg, &["L1"]);
        resumed.resume(pos).unwrap();
        let mut seen = Seen::default();
        up(&mut resumed, &mut seen);
        poll_until(&mut resumed, &mut seen, "3 fills", |s, _| {
            s.fills.len() >= 3
        });
        exactly_once(&seen.fills, &after);
        let stats = resumed.stats();
        assert_eq!(
            (stats.gap_fills, stats.unknown_kinds),
            (3, 3),
            "from userTrades, the orders unseen"
        );
        assert!(resumed.position().unwrap() >= pos);
        // With an overlap, what came just before is read again: the engine's
        // own deduplication drops it.
        let mut cfg = config(&v);
        // Wide, so that a slow machine still reaches back to the first trades.
        cfg.gap_overlap = Duration::from_secs(600);
        let mut overlapping = source(&v, cfg, &["L1"]);
        overlapping.resume(pos).unwrap();
        let mut seen = Seen::default();
        up(&mut overlapping, &mut seen);
        poll_until(&mut overlapping, &mut seen, "5 fills", |s, _| {
            s.fills.len() >= 5
        });
        let all: Vec<u64> = before.iter().chain(&after).copied().collect();
        exactly_once(&seen.fills, &all);
    }

    #[test]
    fn connections_are_renewed_before_their_age_limit_and_keys_kept_alive_without_loss() {
        let v = venue();
        let mut cfg = config(&v);
        cfg.keep_alive = Duration::from_millis(100);
        cfg.reconnect_before = Duration::from_millis(300);
        let mut src = source(&v, cfg, &["L1"]);
        let mut seen = Seen::default();
        up(&mut src, &mut seen);
        let mut keys = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        let mut n = 0u64;
        while src.stats().reconnects < 3 || src.stats().keep_alives < 2 {
            assert!(Instant::now() < deadline, "{:?}", src.stats());
            let id = v.trade(KEY_1, &one_lot(Side::Sell, 500 + n));
            keys.push(key_of("L1", "BTCUSDT", id, Side::Sell));
            n += 1;
            let want = keys.len();
            poll_until(&mut src, &mut seen, "each fill", |s, _| {
                s.fills.len() >= want
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        exactly_once(&seen.fills, &keys);
        let stats = src.stats();
        assert_eq!(
            (stats.listen_keys, stats.listen_keys_expired, stats.errors),
            (1, 0, 0),
            "{stats:?}"
        );
        assert!(
            seen.said.is_empty(),
            "a planned reconnect is not an error: {:?}",
            seen.said
        );
    }

    // -- Mark prices against the test venue. --------------------------------

    fn marks_of(seen: &Seen) -> Vec<(u16, i64)> {
        seen.marks
            .iter()
            .map(|m| match m {
                FeedEvent::MarkPrice { symbol, price, .. } => (symbol.0, price.0),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_mark_price_published_arrives_as_a_mark_price_on_the_tick() {
        let v = venue();
        // Set before the source connects: the first push comes at the connect.
        v.set_mark("ETHUSDT", dec!(2500.004));
        let mut src = source(&v, config(&v), &["L1"]);
        let mut seen = Seen::default();
        poll_until(&mut src, &mut seen, "the first mark", |s, _| {
            !s.marks.is_empty()
        });
        assert!(src.marks_up());
        assert_eq!(
            v.mark_streams(),
            vec![vec!["btcusdt@markPrice@1s", "ethusdt@markPrice@1s"]],
            "one connection, every symbol in force"
        );
        let before = clock::now();
        // Half a tick: to the even one (42088.0); a hair over: up (42088.2).
        v.set_mark("BTCUSDT", dec!(42088.05));
        v.set_mark("BTCUSDT", dec!(42088.15000001));
        v.set_mark("BTCUSDT", dec!(42088.14999999));
        poll_until(&mut src, &mut seen, "4 marks", |s, _| s.marks.len() >= 4);
        assert_eq!(
            marks_of(&seen),
            [(1, 250_000), (0, 420_880), (0, 420_882), (0, 420_881)]
        );
        // Stamped with the venue's `E` (ms), which is now.
        for m in &seen.marks[1..] {
            let FeedEvent::MarkPrice { ts, .. } = m else {
                unreachable!()
            };
            assert!(ts.0 / 1_000_000 >= before.0 / 1_000_000 - 1, "{ts:?}");
        }
        let stats = src.stats();
        assert_eq!(
            (stats.marks, stats.mark_connects, stats.mark_reconnects),
            (4, 1, 0),
            "{stats:?}"
        );
        assert_eq!((stats.errors, stats.fills), (0, 0));
        assert!(seen.said.is_empty(), "{:?}", seen.said);
        // The leaders' fills still come, beside the marks.
        let id = v.trade(KEY_1, &one_lot(Side::Buy, 1));
        poll_until(&mut src, &mut seen, "a fill", |s, _| !s.fills.is_empty());
        assert_eq!(
            seen.fills[0].event_key,
            key_of("L1", "BTCUSDT", id, Side::Buy)
        );
    }

    #[test]
    fn the_mark_connection_comes_back_after_a_drop_and_follows_a_reload() {
        let v = venue();
        let mut src = source(&v, config(&v), &["L1"]);
        let mut seen = Seen::default();
        poll_until(&mut src, &mut seen, "marks up", |_, s| s.marks_up());
        v.drop_mark_streams();
        poll_until(&mut src, &mut seen, "marks up again", |_, s| {
            s.stats().mark_reconnects >= 1 && s.marks_up() && !v.mark_streams().is_empty()
        });
        assert!(
            seen.said.iter().any(|s| s.starts_with(
                "bn/marks: the mark-price stream: the venue closed the connection; trying again in"
            )),
            "{:?}",
            seen.said
        );
        v.set_mark("BTCUSDT", dec!(42000.1));
        poll_until(&mut src, &mut seen, "a mark", |s, _| !s.marks.is_empty());
        assert_eq!(marks_of(&seen), [(0, 420_001)]);
        // A reload that removes ETHUSDT: the connection is made again without it.
        let mut fewer = (*universe()).clone();
        fewer.symbols[1].removed = true;
        src.universe_changed(&Arc::new(fewer));
        poll_until(&mut src, &mut seen, "renewed without ETHUSDT", |_, s| {
            s.marks_up()
                && v.mark_streams().last() == Some(&vec!["btcusdt@markPrice@1s".to_string()])
        });
        // The new connection has BTCUSDT's latest mark at once, as any
        // connection has its symbols' marks; ETHUSDT's no longer come.
        v.set_mark("ETHUSDT", dec!(2500));
        v.set_mark("BTCUSDT", dec!(42000.2));
        poll_until(&mut src, &mut seen, "the next mark", |s, _| {
            marks_of(s).last() == Some(&(0, 420_002))
        });
        assert!(
            marks_of(&seen).iter().all(|m| m.0 == 0),
            "{:?}",
            marks_of(&seen)
        );
        assert!(src.stats().mark_reconnects >= 2, "{:?}", src.stats());
    }

    #[test]
    fn marks_every_three_seconds_or_none_as_configured() {
        let v = venue();
        let mut cfg = config(&v);
        cfg.mark_prices = MarkPrices::Every3s;
        let mut src = source(&v, cfg, &["L1"]);
        let mut seen = Seen::default();
        poll_until(&mut src, &mut seen, "marks up", |_, s| s.marks_up());
        assert_eq!(
            v.mark_streams(),
            vec![vec!["btcusdt@markPrice", "ethusdt@markPrice"]]
        );
        v.set_mark("ETHUSDT", dec!(2500.01));
        poll_until(&mut src, &mut seen, "a mark", |s, _| !s.marks.is_empty());
        assert_eq!(marks_of(&seen), [(1, 250_001)]);
        drop(src);

        let v = venue();
        let mut cfg = config(&v);
        cfg.mark_prices = MarkPrices::Off;
        let mut src = source(&v, cfg, &["L1"]);
        let mut seen = Seen::default();
        up(&mut src, &mut seen);
        v.set_mark("BTCUSDT", dec!(42000));
        for _ in 0..20 {
            assert!(!matches!(src.next(clock::now()), SourcePoll::Event(_)));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(v.requests("/market/stream"), 0);
        assert!(v.mark_streams().is_empty() && !src.marks_up());
        assert_eq!(src.stats().marks, 0);
    }
}
