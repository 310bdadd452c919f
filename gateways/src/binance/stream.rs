//! The Binance USD-M user data stream, the public mark-price stream and the REST
//! trade history (`GET /fapi/v1/userTrades`), parsed into typed events, and a
//! fill of either turned into the engine's `LeaderFill`.
//!
//! Owns: the message shapes (docs/BINANCE-PROTOCOL.md, "User data stream" and
//! "REST"), their parsing, and the conversion of a fill to whole lots and ticks of
//! the symbol, exactly, under an event id that is the same whether the fill came
//! from the stream or from `userTrades` (`fill_event_id`), so that a gap filled
//! from REST never doubles a fill the stream delivered.
//!
//! Never: does I/O, keeps state beyond counters, panics on input, lets an `f64`
//! decide a quantity, price or balance (they must be decimal strings), or echoes
//! a listen key (the combined stream's `stream` name, `listenKeyExpired`'s
//! `listenKey`) in an error or in `Debug`: it lets anyone read the account's
//! stream. Values quoted in errors are cut to 64 characters and escaped.
//!
//! Parsing uses simd-json as the file source does, on a reused copy of the
//! message, but walks simd-json's *tape* rather than building a `BorrowedValue`
//! tree: the tape is flat (a nested value is skipped by its node count), so a
//! message nested thousands deep costs no stack and needs no depth check first,
//! no map is built per object, and every key of an object is seen, so a field we
//! read that appears twice is refused rather than one copy silently winning.

use crate::fix::codec::parse_decimal;
use fillcast_engine::event::{FeedEvent, FillKind as LeaderFillKind, LeaderFill};
use fillcast_engine::ids::{fnv1a, leader_event_key};
use fillcast_engine::model::{LeaderIdx, Side, SymbolIdx, Universe};
use fillcast_engine::units::{Lots, Nanos, Ticks, UnitError};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use simd_json::base::{
    TypedValue, ValueAsScalar, ValueIntoArray, ValueIntoObject, ValueIntoString,
};
use simd_json::tape::{Array, Object, Value};
use simd_json::{Buffers, Tape, ValueType};
use std::collections::HashMap;
use std::fmt;
use thiserror::Error;

/// Longest user-data or mark-price message accepted, in bytes; checked before
/// parsing. The largest documented message, an `ACCOUNT_UPDATE` of a few
/// balances and positions, is under 2 KiB.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024;

/// Most trades one `userTrades` response may hold: the endpoint's largest `limit`.
pub const USER_TRADES_MAX: usize = 1000;

/// Longest `userTrades` response body accepted, in bytes: `USER_TRADES_MAX`
/// trades of about 350 bytes each, with room.
pub const USER_TRADES_BYTES_MAX: usize = 1024 * 1024;

/// Parses stream messages and `userTrades` bodies; keeps its buffers between
/// calls (one per connection, on the I/O thread) and counts what it saw.
pub struct Parser {
    /// A copy of the input for simd-json, which unescapes strings in place.
    scratch: Vec<u8>,
    buffers: Buffers,
    /// Emptied between calls; kept for its allocation.
    tape: Tape<'static>,
    stats: ParserStats,
}

/// What a `Parser` has seen. Every call counts once in `messages` or
/// `user_trade_bodies`, and once in exactly one of the other fields.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Calls to `Parser::message`.
    pub messages: u64,
    pub order_trade_updates: u64,
    pub account_updates: u64,
    pub listen_keys_expired: u64,
    pub mark_prices: u64,
    /// Messages of another event type (`Event::Other`).
    pub other: u64,
    /// Calls to `Parser::user_trades`.
    pub user_trade_bodies: u64,
    /// Trades in the `userTrades` bodies that parsed.
    pub user_trades: u64,
    /// Messages and bodies refused with a `ParseError`.
    pub rejected: u64,
}

/// One message of the user data stream or the mark-price stream, raw or
/// unwrapped from the combined stream's `{"stream":…,"data":{…}}`. Its strings
/// borrow the parser's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    OrderTradeUpdate(OrderTradeUpdate<'a>),
    AccountUpdate(AccountUpdate<'a>),
    ListenKeyExpired(ListenKeyExpired<'a>),
    MarkPrice(MarkPriceUpdate<'a>),
    /// Any other event type `e` (`MARGIN_CALL`, `ACCOUNT_CONFIG_UPDATE`,
    /// `TRADE_LITE`, …): counted in `ParserStats::other`, not an error.
    Other(&'a str),
}

/// `ORDER_TRADE_UPDATE`: an order of the account changed; with
/// `execution_type == Trade` it filled (`OrderTradeUpdate::fill`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderTradeUpdate<'a> {
    /// `E`: when the venue made the message; orders the account's events.
    pub event_time: Nanos,
    /// `o.s`.
    pub symbol: &'a str,
    /// `o.c`; the venue's own for liquidation, ADL and settlement (`FillKind`).
    pub client_order_id: &'a str,
    /// `o.S`.
    pub side: Side,
    /// `o.o`: `LIMIT`, `MARKET`, `LIQUIDATION`, ….
    pub order_type: &'a str,
    /// `o.q`: the order's original quantity.
    pub order_qty: Decimal,
    /// `o.x`.
    pub execution_type: ExecutionType<'a>,
    /// `o.X`: `NEW`, `PARTIALLY_FILLED`, `FILLED`, ….
    pub order_status: &'a str,
    /// `o.i`.
    pub order_id: u64,
    /// `o.l`: quantity of this fill.
    pub last_qty: Decimal,
    /// `o.L`: price of this fill.
    pub last_price: Decimal,
    /// `o.t`: 0 when not a fill.
    pub trade_id: u64,
    /// `o.T`: when the order last traded (for a fill, the trade's time).
    pub trade_time: Nanos,
    /// `o.n`: absent when there was no commission.
    pub commission: Option<Decimal>,
    /// `o.N`.
    pub commission_asset: Option<&'a str>,
    /// `o.rp`: realized profit of this fill.
    pub realized_profit: Decimal,
    /// `o.ps`: `BOTH` (one-way mode), `LONG` or `SHORT` (hedge mode).
    pub position_side: &'a str,
}

/// `o.x` of an `ORDER_TRADE_UPDATE`. Only `Trade` is a fill; a type the venue
/// adds later is `Other`, never an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExecutionType<'a> {
    New,
    Canceled,
    /// A liquidation's execution.
    Calculated,
    Expired,
    Trade,
    Amendment,
    Other(&'a str),
}

/// Who made a fill's order: the leader, or the venue closing its position,
/// as Binance tells it. Each changes the leader's position like any fill;
/// lineage records which (`LeaderFill::kind`, the engine's kind of the same
/// name: `From`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FillKind {
    Trade,
    /// Client id `autoclose-…`.
    Liquidation,
    /// Client id `adl_autoclose`.
    Adl,
    /// Client id `settlement_autoclose-…` (delisting or delivery).
    Settlement,
    /// From `userTrades` without the order's client id: the venue does not say.
    Unknown,
}

/// A leader fill with the kind of order that made it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fill {
    pub fill: LeaderFill,
    pub kind: FillKind,
}

/// What the source may know of a `userTrades` trade's order (from the stream
/// before a disconnect, or from `GET /fapi/v1/order`): `userTrades` itself
/// carries neither.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OrderInfo<'a> {
    pub client_order_id: &'a str,
    /// `origQty`.
    pub orig_qty: Decimal,
}

/// `ACCOUNT_UPDATE`: balances and positions that changed, and why. Only the
/// changed ones are pushed: a balance or position absent here is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountUpdate<'a> {
    /// `E`.
    pub event_time: Nanos,
    /// `a.m`: `ORDER`, `FUNDING_FEE`, `DEPOSIT`, ….
    pub reason: &'a str,
    /// `a.B`.
    pub balances: Vec<Balance<'a>>,
    /// `a.P`.
    pub positions: Vec<Position<'a>>,
}

/// An entry of `a.B`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance<'a> {
    /// `a`.
    pub asset: &'a str,
    /// `wb`: deposits less withdrawals, plus realized profit, less fees and
    /// funding: the balance without unrealized profit.
    pub wallet_balance: Decimal,
    /// `cw`: the wallet balance less isolated positions' margin.
    pub cross_wallet_balance: Decimal,
    /// `bc`: the change other than profit and commission (transfers).
    pub balance_change: Decimal,
}

/// An entry of `a.P` (its other fields are not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position<'a> {
    /// `s`.
    pub symbol: &'a str,
    /// `pa`: signed (negative is short).
    pub amount: Decimal,
    /// `ep`.
    pub entry_price: Decimal,
    /// `up`: unrealized profit when the update was made.
    pub unrealized_profit: Decimal,
    /// `ps`.
    pub position_side: &'a str,
}

/// `listenKeyExpired`: the stream ends; make a new key and reconnect.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct ListenKeyExpired<'a> {
    /// `E`, a string of digits in the documentation's example, or a number.
    pub event_time: Nanos,
    /// `listenKey`: which key expired (a secret: redacted from `Debug`).
    pub listen_key: Option<&'a str>,
}

/// `markPriceUpdate` of `<symbol>@markPrice` (its other fields are not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkPriceUpdate<'a> {
    /// `E`.
    pub event_time: Nanos,
    /// `s`.
    pub symbol: &'a str,
    /// `p`.
    pub mark_price: Decimal,
}

/// A trade of `GET /fapi/v1/userTrades` (its other fields are not read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserTrade<'a> {
    /// `id`: the trade id, `o.t` on the stream.
    pub id: u64,
    /// `orderId`: `o.i` on the stream.
    pub order_id: u64,
    pub symbol: &'a str,
    pub side: Side,
    pub price: Decimal,
    pub qty: Decimal,
    /// `time`: the trade's time, `o.T` on the stream.
    pub time: Nanos,
    /// `realizedPnl`.
    pub realized_pnl: Decimal,
    pub commission: Decimal,
    /// `commissionAsset`.
    pub commission_asset: &'a str,
    /// `positionSide`.
    pub position_side: Option<&'a str>,
}

/// The engine's symbols by their Binance names, with the lot and tick sizes a
/// fill is converted with. Made from the `Universe` in force, again after a reload.
#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    by_name: HashMap<String, SymbolEntry>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SymbolEntry {
    pub symbol: SymbolIdx,
    pub lot_size: Decimal,
    pub tick_size: Decimal,
    /// Removed by a reload: its fills and marks are refused as such.
    pub removed: bool,
}

/// Why a message or a body is not an event. The text names the field (`o.l`,
/// `a.B[2].wb`), what was expected and the value, never a listen key.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("{what} of {bytes} bytes is longer than the limit of {max} bytes")]
    TooLarge {
        what: &'static str,
        bytes: usize,
        max: usize,
    },
    #[error("invalid UTF-8 at byte offset {offset}")]
    Utf8 { offset: usize },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("expected {expected}, got {got}")]
    NotA {
        expected: &'static str,
        got: &'static str,
    },
    #[error("duplicate field `{0}`")]
    DuplicateField(&'static str),
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` must be {expected}, got {got}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("field `{field}` must be {expected}, got \"{value}\"")]
    BadValue {
        field: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error(
        "field `{field}` = {ms} ms is after 2200-01-01 (milliseconds since the epoch expected)"
    )]
    TimeTooLate { field: &'static str, ms: u64 },
    #[error("{count} trades in one userTrades response, at most {USER_TRADES_MAX} expected")]
    TooManyTrades { count: usize },
    #[error("{array}[{index}]: {source}")]
    InElement {
        array: &'static str,
        index: usize,
        #[source]
        source: Box<ParseError>,
    },
    #[error("the venue answered error {code}: \"{msg}\"")]
    Venue { code: i64, msg: String },
}

/// Why a mark-price stream message is not a mark (`Parser::mark`).
#[derive(Debug, PartialEq, Eq, Error)]
pub enum MarkError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("markPriceUpdate: {0}")]
    Mark(#[from] FillError),
}

/// Why a parsed fill, balance or mark is not an engine event.
#[derive(Debug, PartialEq, Eq, Error)]
pub enum FillError {
    #[error("unknown symbol \"{0}\"")]
    UnknownSymbol(String),
    #[error("symbol {0} was removed by a reload: its fills and marks are no longer taken")]
    RemovedSymbol(String),
    #[error("field `{field}` must be positive, got {value}")]
    NotPositive { field: &'static str, value: Decimal },
    #[error("field `{field}` = {value} is not a multiple of the {step} {size} of {symbol}")]
    NotMultiple {
        field: &'static str,
        value: Decimal,
        step: &'static str,
        size: Decimal,
        symbol: String,
    },
    #[error("field `{field}` = {value} is more than {max} lots of {symbol}", max = Lots::MAX.0)]
    TooLarge {
        field: &'static str,
        value: Decimal,
        symbol: String,
    },
    #[error("field `{field}` = {value} of {symbol}: {source}")]
    Unit {
        field: &'static str,
        value: Decimal,
        symbol: String,
        source: UnitError,
    },
    #[error("field `{field}`: order quantity {order_qty} is less than the fill's {qty}")]
    OrderQtyBelowQty {
        field: &'static str,
        order_qty: Decimal,
        qty: Decimal,
    },
    #[error("asset \"{0}\" appears in `a.B` more than once with different wallet balances")]
    AmbiguousBalance(String),
}

impl Parser {
    pub fn new() -> Parser {
        Parser {
            scratch: Vec::with_capacity(1024),
            buffers: Buffers::new(1024),
            tape: Tape(Vec::new()),
            stats: ParserStats::default(),
        }
    }

    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// One text frame of the user data stream or the mark-price stream.
    pub fn message(&mut self, bytes: &[u8]) -> Result<Event<'_>, ParseError> {
        let Parser {
            scratch,
            buffers,
            tape,
            stats,
        } = self;
        let mut t = std::mem::replace(tape, Tape(Vec::new())).reset();
        let what = "message";
        let result = load(scratch, buffers, &mut t, bytes, what, MESSAGE_BYTES_MAX)
            .and_then(|()| event(t.as_value()));
        *tape = t.reset();
        stats.messages += 1;
        match &result {
            Ok(Event::OrderTradeUpdate(_)) => stats.order_trade_updates += 1,
            Ok(Event::AccountUpdate(_)) => stats.account_updates += 1,
            Ok(Event::ListenKeyExpired(_)) => stats.listen_keys_expired += 1,
            Ok(Event::MarkPrice(_)) => stats.mark_prices += 1,
            Ok(Event::Other(_)) => stats.other += 1,
            Err(_) => stats.rejected += 1,
        }
        result
    }

    /// One text frame of the mark-price stream (raw or combined) as the
    /// engine's mark (`MarkPriceUpdate::to_feed_rounded` under `symbols`);
    /// `Ok(None)` for a message of another event type, which a market stream
    /// does not send but is no error. What the `binance` source does with
    /// each message of its mark-price connection.
    pub fn mark(
        &mut self,
        bytes: &[u8],
        symbols: &SymbolTable,
    ) -> Result<Option<FeedEvent>, MarkError> {
        match self.message(bytes)? {
            Event::MarkPrice(m) => Ok(Some(m.to_feed_rounded(symbols)?)),
            _ => Ok(None),
        }
    }

    /// The body of a `GET /fapi/v1/userTrades` response: all its trades, or an
    /// error for the whole body (the venue's own error object included). A
    /// page is taken whole or not at all: a gap is filled completely or the
    /// query is made again, never advanced past a trade that did not parse.
    pub fn user_trades(&mut self, body: &[u8]) -> Result<Vec<UserTrade<'_>>, ParseError> {
        let Parser {
            scratch,
            buffers,
            tape,
            stats,
        } = self;
        let mut t = std::mem::replace(tape, Tape(Vec::new())).reset();
        let what = "userTrades response";
        let result = load(scratch, buffers, &mut t, body, what, USER_TRADES_BYTES_MAX)
            .and_then(|()| user_trades(t.as_value()));
        *tape = t.reset();
        stats.user_trade_bodies += 1;
        match &result {
            Ok(trades) => stats.user_trades += trades.len() as u64,
            Err(_) => stats.rejected += 1,
        }
        result
    }
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new()
    }
}

/// The event id of a leader's fill: `SYMBOL:TRADE_ID:SIDE`, from the stream
/// (`o.s`, `o.t`, `o.S`) or from `userTrades` (`symbol`, `id`, `side`) alike.
///
/// Trade ids are unique within a symbol, but one trade has two sides, and with
/// self-trade prevention off (`V` = `NONE`) both can be the same account's: its
/// buy and its sell of that trade are two fills, and deduplicating on (symbol,
/// trade id) alone would drop one and leave the position wrong by its quantity.
pub fn fill_event_id(symbol: &str, trade_id: u64, side: Side) -> String {
    let side = match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    };
    format!("{symbol}:{trade_id}:{side}")
}

impl From<FillKind> for LeaderFillKind {
    fn from(k: FillKind) -> LeaderFillKind {
        match k {
            FillKind::Trade => LeaderFillKind::Trade,
            FillKind::Liquidation => LeaderFillKind::Liquidation,
            FillKind::Adl => LeaderFillKind::Adl,
            FillKind::Settlement => LeaderFillKind::Settlement,
            FillKind::Unknown => LeaderFillKind::Unknown,
        }
    }
}

impl FillKind {
    /// The kind of a fill by its order's client id.
    pub fn of_client_order_id(client_order_id: &str) -> FillKind {
        if client_order_id.starts_with("autoclose-") {
            FillKind::Liquidation
        } else if client_order_id == "adl_autoclose" {
            FillKind::Adl
        } else if client_order_id.starts_with("settlement_autoclose-") {
            FillKind::Settlement
        } else {
            FillKind::Trade
        }
    }
}

impl OrderTradeUpdate<'_> {
    /// The leader fill this update is, `None` unless `execution_type` is
    /// `Trade`. `qty` = `o.l` and `price` = `o.L` exactly in lots and ticks,
    /// `order_qty` = `o.q` (0, which the venue may send, is taken as unknown:
    /// the fill then counts as its own order), `order_key` = the hash of
    /// `symbol:order id` (order ids are unique within a symbol), and
    /// `venue_ts` = `o.T`, the trade's time: the time `userTrades` gives the
    /// same fill, so a fill recovered from REST carries the same stamp, and the
    /// ingest lag it measures includes the venue's delay in pushing it (`E`,
    /// when the message was made, is later by that delay).
    pub fn fill(
        &self,
        leader: LeaderIdx,
        leader_name: &str,
        symbols: &SymbolTable,
        recv_ts: Nanos,
    ) -> Result<Option<Fill>, FillError> {
        if self.execution_type != ExecutionType::Trade {
            return Ok(None);
        }
        let fill = FillInput {
            symbol: self.symbol,
            trade_id: self.trade_id,
            order_id: self.order_id,
            side: self.side,
            qty: ("o.l", self.last_qty),
            price: ("o.L", self.last_price),
            order_qty: Some(("o.q", self.order_qty)),
            time: self.trade_time,
            kind: FillKind::of_client_order_id(self.client_order_id),
        }
        .to_fill(leader, leader_name, symbols, recv_ts)?;
        Ok(Some(fill))
    }
}

impl UserTrade<'_> {
    /// This trade as the leader fill the stream would have given: the same
    /// event key, qty, price, order key and time. Without `order` its
    /// `order_qty` is unknown (0) and its kind `Unknown`; with it, both are
    /// what the stream says.
    pub fn fill(
        &self,
        leader: LeaderIdx,
        leader_name: &str,
        symbols: &SymbolTable,
        order: Option<&OrderInfo<'_>>,
        recv_ts: Nanos,
    ) -> Result<Fill, FillError> {
        FillInput {
            symbol: self.symbol,
            trade_id: self.id,
            order_id: self.order_id,
            side: self.side,
            qty: ("qty", self.qty),
            price: ("price", self.price),
            order_qty: order.map(|o| ("origQty", o.orig_qty)),
            time: self.time,
            kind: order.map_or(FillKind::Unknown, |o| {
                FillKind::of_client_order_id(o.client_order_id)
            }),
        }
        .to_fill(leader, leader_name, symbols, recv_ts)
    }
}

impl AccountUpdate<'_> {
    /// The wallet balance (`wb`) of `asset`, `None` when this update does not
    /// carry it (it did not change).
    ///
    /// The engine's leader equity is the account's value in the quote
    /// currency: the base of proportional sizing (ratio = multiplier ×
    /// allocation ÷ equity) and of the leader's drawdown. Binance's equity
    /// ("margin balance") is `wb` plus the unrealized profit of every open
    /// position; an `ACCOUNT_UPDATE` cannot give it, because it carries only
    /// the positions that changed, each with `up` at that moment. So this is
    /// the equity without unrealized profit: exact, and what the venue
    /// confirms, but it moves only when profit is realized, funding or fees
    /// are paid, or money moves. In Multi-Assets mode one asset's balance is
    /// not the account's value at all.
    pub fn wallet_balance(&self, asset: &str) -> Result<Option<Decimal>, FillError> {
        let mut found = None;
        for b in self.balances.iter().filter(|b| b.asset == asset) {
            match found {
                Some(wb) if wb != b.wallet_balance => {
                    return Err(FillError::AmbiguousBalance(shown(asset)))
                }
                _ => found = Some(b.wallet_balance),
            }
        }
        Ok(found)
    }
}

impl MarkPriceUpdate<'_> {
    /// This mark as the engine's `FeedEvent::MarkPrice`, stamped `E`. A mark
    /// price is an index, not a traded price: it is not on the tick grid (it
    /// has 8 decimals), so it is rounded to the nearest tick, half to even
    /// (`round_to_tick`: exact, in `rust_decimal`). A mark that rounds to no
    /// tick at all (below half a tick) is refused, as is one that is not positive.
    pub fn to_feed_rounded(&self, symbols: &SymbolTable) -> Result<FeedEvent, FillError> {
        let entry = symbols.resolve(self.symbol)?;
        let field = "p";
        let value = self.mark_price;
        if value <= Decimal::ZERO {
            return Err(FillError::NotPositive { field, value });
        }
        let ticks = round_to_tick(value, entry.tick_size).ok_or_else(|| FillError::Unit {
            field,
            value,
            symbol: shown(self.symbol),
            source: UnitError::OutOfRange { value },
        })?;
        if ticks <= 0 {
            return Err(FillError::NotPositive { field, value });
        }
        Ok(FeedEvent::MarkPrice {
            symbol: entry.symbol,
            price: Ticks(ticks),
            ts: self.event_time,
        })
    }
}

/// `value` in whole ticks of `tick`, to the nearest, half to even; `None` when
/// it does not fit an `i64` (or `tick` is not positive). Exact: the quotient's
/// whole part is checked against the remainder it leaves (`rust_decimal`
/// rounds a quotient to 28 digits, which can carry a value a hair under a
/// whole number up to it), and the remainder decides the rounding.
pub fn round_to_tick(value: Decimal, tick: Decimal) -> Option<i64> {
    if tick <= Decimal::ZERO {
        return None;
    }
    let mut whole = value.checked_div(tick)?.trunc();
    let mut rest = value.checked_sub(whole.checked_mul(tick)?)?;
    // At most one step either way: the quotient is off by less than one.
    if rest.is_sign_negative() && !rest.is_zero() {
        whole = whole.checked_sub(Decimal::ONE)?;
        rest = rest.checked_add(tick)?;
    } else if rest >= tick {
        whole = whole.checked_add(Decimal::ONE)?;
        rest = rest.checked_sub(tick)?;
    }
    debug_assert!(!rest.is_sign_negative() || rest.is_zero());
    debug_assert!(rest < tick);
    let twice = rest.checked_mul(Decimal::TWO)?;
    let up = match twice.cmp(&tick) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => whole.checked_rem(Decimal::TWO)? != Decimal::ZERO,
    };
    let rounded = if up {
        whole.checked_add(Decimal::ONE)?
    } else {
        whole
    };
    rounded.to_i64()
}

impl fmt::Debug for ListenKeyExpired<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenKeyExpired")
            .field("event_time", &self.event_time)
            .field("listen_key", &self.listen_key.map(|_| "<redacted>"))
            .finish()
    }
}

impl SymbolTable {
    /// Every symbol of `universe`, removed ones marked.
    pub fn from_universe(universe: &Universe) -> SymbolTable {
        let by_name = universe
            .symbols
            .iter()
            .filter_map(|spec| {
                let symbol = universe.symbol(&spec.name)?;
                let entry = SymbolEntry {
                    symbol,
                    lot_size: spec.lot_size,
                    tick_size: spec.tick_size,
                    removed: spec.removed,
                };
                Some((spec.name.clone(), entry))
            })
            .collect();
        SymbolTable { by_name }
    }

    /// The symbol of that name in force.
    pub fn resolve(&self, name: &str) -> Result<&SymbolEntry, FillError> {
        match self.by_name.get(name) {
            Some(entry) if entry.removed => Err(FillError::RemovedSymbol(shown(name))),
            Some(entry) => Ok(entry),
            None => Err(FillError::UnknownSymbol(shown(name))),
        }
    }
}

// ---------------------------------------------------------------------------
// Fills.

/// A fill from either source, before conversion; each number with its field's name.
struct FillInput<'a> {
    symbol: &'a str,
    trade_id: u64,
    order_id: u64,
    side: Side,
    qty: (&'static str, Decimal),
    price: (&'static str, Decimal),
    order_qty: Option<(&'static str, Decimal)>,
    time: Nanos,
    kind: FillKind,
}

impl FillInput<'_> {
    fn to_fill(
        &self,
        leader: LeaderIdx,
        leader_name: &str,
        symbols: &SymbolTable,
        recv_ts: Nanos,
    ) -> Result<Fill, FillError> {
        let entry = symbols.resolve(self.symbol)?;
        let qty = self.lots(entry, self.qty)?;
        let ticks = |v, size| Ticks::from_decimal(v, size).map(|t| t.0);
        let price = Ticks(self.steps(self.price, entry.tick_size, "tick size", ticks)?);
        let order_qty = match self.order_qty {
            None => Lots::ZERO,
            Some((_, q)) if q.is_zero() => Lots::ZERO,
            Some((field, q)) => {
                let order_qty = self.lots(entry, (field, q))?;
                if order_qty < qty {
                    return Err(FillError::OrderQtyBelowQty {
                        field,
                        order_qty: q,
                        qty: self.qty.1,
                    });
                }
                order_qty
            }
        };
        let event_id = fill_event_id(self.symbol, self.trade_id, self.side);
        let order_key = fnv1a(format!("{}:{}", self.symbol, self.order_id).as_bytes());
        debug_assert!(qty.0 > 0 && qty <= Lots::MAX && price.0 > 0);
        debug_assert!(order_qty.is_zero() || order_qty >= qty);
        Ok(Fill {
            fill: LeaderFill {
                leader,
                symbol: entry.symbol,
                side: self.side,
                qty,
                price,
                event_key: leader_event_key(leader_name, &event_id),
                order_key,
                order_qty,
                venue_ts: self.time,
                recv_ts,
                kind: self.kind.into(),
            },
            kind: self.kind,
        })
    }

    /// A positive quantity in whole lots, at most `Lots::MAX`.
    fn lots(
        &self,
        entry: &SymbolEntry,
        (field, value): (&'static str, Decimal),
    ) -> Result<Lots, FillError> {
        let exact = |v, size| Lots::from_decimal(v, size).map(|l| l.0);
        let lots = Lots(self.steps((field, value), entry.lot_size, "lot size", exact)?);
        if lots > Lots::MAX {
            return Err(FillError::TooLarge {
                field,
                value,
                symbol: shown(self.symbol),
            });
        }
        Ok(lots)
    }

    /// `value` as a positive whole number of `size`, exactly, by `exact` (the
    /// engine's `Lots::from_decimal` or `Ticks::from_decimal`).
    fn steps(
        &self,
        (field, value): (&'static str, Decimal),
        size: Decimal,
        step: &'static str,
        exact: fn(Decimal, Decimal) -> Result<i64, UnitError>,
    ) -> Result<i64, FillError> {
        if value <= Decimal::ZERO {
            return Err(FillError::NotPositive { field, value });
        }
        let not_multiple = || FillError::NotMultiple {
            field,
            value,
            step,
            size,
            symbol: shown(self.symbol),
        };
        let n = match exact(value, size) {
            Ok(n) => n,
            Err(UnitError::NotMultiple { .. }) => return Err(not_multiple()),
            Err(source) => {
                return Err(FillError::Unit {
                    field,
                    value,
                    symbol: shown(self.symbol),
                    source,
                })
            }
        };
        // The division can round a value of many digits to a whole number.
        if Decimal::from(n).checked_mul(size) != Some(value) {
            return Err(not_multiple());
        }
        debug_assert!(n > 0);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Parsing.

/// 2200-01-01T00:00:00Z in ms: later stamps are mistakes (the file source's
/// bound on `ts`, in its unit).
const TIME_MS_MAX: u64 = 7_258_118_400_000;

/// Characters of a value quoted in an error.
const SHOWN_CHARS_MAX: usize = 64;

/// Checks `bytes` and parses them into `tape`, over a copy in `scratch`.
fn load<'s>(
    scratch: &'s mut Vec<u8>,
    buffers: &mut Buffers,
    tape: &mut Tape<'s>,
    bytes: &[u8],
    what: &'static str,
    max: usize,
) -> Result<(), ParseError> {
    if bytes.len() > max {
        return Err(ParseError::TooLarge {
            what,
            bytes: bytes.len(),
            max,
        });
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ParseError::Utf8 {
            offset: e.valid_up_to(),
        });
    }
    scratch.clear();
    scratch.extend_from_slice(bytes);
    simd_json::fill_tape(scratch.as_mut_slice(), buffers, tape)
        .map_err(|e| ParseError::Json(shown(&e.to_string())))
}

type Fields<'t, 'i, const N: usize> = [Option<Value<'t, 'i>>; N];

fn event<'i>(root: Value<'_, 'i>) -> Result<Event<'i>, ParseError> {
    let object = root.into_object().ok_or(ParseError::NotA {
        expected: "a JSON object",
        got: kind(&root),
    })?;
    let [e, stream, data] = fields(&object, ["e", "stream", "data"])?;
    // The combined stream's wrapper. Its `stream` is the listen key on a user
    // data connection: never read into anything.
    let (object, e) = match (e, stream, data) {
        (None, Some(_), Some(data)) => {
            let data = object_of("data", Some(data))?;
            let [e] = fields(&data, ["e"])?;
            (data, e)
        }
        _ => (object, e),
    };
    let e = string("e", e)?;
    match e {
        "ORDER_TRADE_UPDATE" => order_trade_update(&object).map(Event::OrderTradeUpdate),
        "ACCOUNT_UPDATE" => account_update(&object).map(Event::AccountUpdate),
        "listenKeyExpired" => {
            let [time, key] = fields(&object, ["E", "listenKey"])?;
            Ok(Event::ListenKeyExpired(ListenKeyExpired {
                event_time: millis("E", time)?,
                listen_key: optional_string("listenKey", key)?,
            }))
        }
        "markPriceUpdate" => {
            let [time, symbol, price] = fields(&object, ["E", "s", "p"])?;
            Ok(Event::MarkPrice(MarkPriceUpdate {
                event_time: millis("E", time)?,
                symbol: string("s", symbol)?,
                mark_price: decimal("p", price)?,
            }))
        }
        other => Ok(Event::Other(other)),
    }
}

fn order_trade_update<'i>(top: &Object<'_, 'i>) -> Result<OrderTradeUpdate<'i>, ParseError> {
    let [time, o] = fields(top, ["E", "o"])?;
    let o = object_of("o", o)?;
    let [s, c, side_, order_type, q, x, status, i, l, price, t, trade_time, n, asset, rp, ps] =
        fields(
            &o,
            [
                "o.s", "o.c", "o.S", "o.o", "o.q", "o.x", "o.X", "o.i", "o.l", "o.L", "o.t", "o.T",
                "o.n", "o.N", "o.rp", "o.ps",
            ],
        )?;
    let execution_type = match string("o.x", x)? {
        "NEW" => ExecutionType::New,
        "CANCELED" => ExecutionType::Canceled,
        "CALCULATED" => ExecutionType::Calculated,
        "EXPIRED" => ExecutionType::Expired,
        "TRADE" => ExecutionType::Trade,
        "AMENDMENT" => ExecutionType::Amendment,
        other => ExecutionType::Other(other),
    };
    Ok(OrderTradeUpdate {
        event_time: millis("E", time)?,
        symbol: string("o.s", s)?,
        client_order_id: string("o.c", c)?,
        side: side("o.S", side_)?,
        order_type: string("o.o", order_type)?,
        order_qty: decimal("o.q", q)?,
        execution_type,
        order_status: string("o.X", status)?,
        order_id: unsigned("o.i", i)?,
        last_qty: decimal("o.l", l)?,
        last_price: decimal("o.L", price)?,
        trade_id: unsigned("o.t", t)?,
        trade_time: millis("o.T", trade_time)?,
        commission: optional(n).map(|n| decimal("o.n", Some(n))).transpose()?,
        commission_asset: optional_string("o.N", asset)?,
        realized_profit: decimal("o.rp", rp)?,
        position_side: string("o.ps", ps)?,
    })
}

fn account_update<'i>(top: &Object<'_, 'i>) -> Result<AccountUpdate<'i>, ParseError> {
    let [time, a] = fields(top, ["E", "a"])?;
    let a = object_of("a", a)?;
    let [m, b, p] = fields(&a, ["a.m", "a.B", "a.P"])?;
    let balances = elements("a.B", b, |entry| {
        let [asset, wb, cw, bc] = fields(&entry, ["a.B[].a", "a.B[].wb", "a.B[].cw", "a.B[].bc"])?;
        Ok(Balance {
            asset: string("a", asset)?,
            wallet_balance: decimal("wb", wb)?,
            cross_wallet_balance: decimal("cw", cw)?,
            balance_change: decimal("bc", bc)?,
        })
    })?;
    let positions = elements("a.P", p, |entry| {
        let [s, pa, ep, up, ps] = fields(
            &entry,
            ["a.P[].s", "a.P[].pa", "a.P[].ep", "a.P[].up", "a.P[].ps"],
        )?;
        Ok(Position {
            symbol: string("s", s)?,
            amount: decimal("pa", pa)?,
            entry_price: decimal("ep", ep)?,
            unrealized_profit: decimal("up", up)?,
            position_side: string("ps", ps)?,
        })
    })?;
    Ok(AccountUpdate {
        event_time: millis("E", time)?,
        reason: string("a.m", m)?,
        balances,
        positions,
    })
}

fn user_trades<'i>(root: Value<'_, 'i>) -> Result<Vec<UserTrade<'i>>, ParseError> {
    if let Some(object) = root.into_object() {
        // `{"code":-1121,"msg":"Invalid symbol."}`
        let [code, msg] = fields(&object, ["code", "msg"])?;
        if let (Some(code), Some(msg)) = (code.and_then(|c| c.as_i64()), msg) {
            return Err(ParseError::Venue {
                code,
                msg: shown(msg.as_str().unwrap_or("")),
            });
        }
    }
    let trades = root.into_array().ok_or(ParseError::NotA {
        expected: "a JSON array of trades",
        got: kind(&root),
    })?;
    if trades.len() > USER_TRADES_MAX {
        return Err(ParseError::TooManyTrades {
            count: trades.len(),
        });
    }
    elements_of("userTrades", &trades, |trade| {
        let [id, order_id, symbol, side_, price, qty, time, pnl, commission, asset, ps] = fields(
            &trade,
            [
                "id",
                "orderId",
                "symbol",
                "side",
                "price",
                "qty",
                "time",
                "realizedPnl",
                "commission",
                "commissionAsset",
                "positionSide",
            ],
        )?;
        Ok(UserTrade {
            id: unsigned("id", id)?,
            order_id: unsigned("orderId", order_id)?,
            symbol: string("symbol", symbol)?,
            side: side("side", side_)?,
            price: decimal("price", price)?,
            qty: decimal("qty", qty)?,
            time: millis("time", time)?,
            realized_pnl: decimal("realizedPnl", pnl)?,
            commission: decimal("commission", commission)?,
            commission_asset: string("commissionAsset", asset)?,
            position_side: optional_string("positionSide", ps)?,
        })
    })
}

/// The values of an object's fields named by `paths` (the key is the part
/// after the last `.`), in one pass; a duplicate of one of them is an error,
/// other keys are ignored.
fn fields<'t, 'i, const N: usize>(
    object: &Object<'t, 'i>,
    paths: [&'static str; N],
) -> Result<Fields<'t, 'i, N>, ParseError> {
    let mut found: Fields<'t, 'i, N> = [None; N];
    for (key, value) in object.iter() {
        let Some(i) = paths.iter().position(|p| key_of(p) == key) else {
            continue;
        };
        if found[i].is_some() {
            return Err(ParseError::DuplicateField(paths[i]));
        }
        found[i] = Some(value);
    }
    Ok(found)
}

fn key_of(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Each object of the array field `field`, through `each`; an error names the element.
fn elements<'t, 'i, T>(
    field: &'static str,
    v: Option<Value<'t, 'i>>,
    each: impl Fn(Object<'t, 'i>) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let array = required(field, v)?;
    let array = array.into_array().ok_or(ParseError::WrongType {
        field,
        expected: "an array",
        got: kind(&array),
    })?;
    elements_of(field, &array, each)
}

fn elements_of<'t, 'i, T>(
    field: &'static str,
    array: &Array<'t, 'i>,
    each: impl Fn(Object<'t, 'i>) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::with_capacity(array.len());
    for (index, v) in array.iter().enumerate() {
        let in_element = |source| ParseError::InElement {
            array: field,
            index,
            source: Box::new(source),
        };
        let object = v.into_object().ok_or_else(|| {
            in_element(ParseError::NotA {
                expected: "a JSON object",
                got: kind(&v),
            })
        })?;
        out.push(each(object).map_err(in_element)?);
    }
    Ok(out)
}

/// A present, non-null value.
fn optional<'t, 'i>(v: Option<Value<'t, 'i>>) -> Option<Value<'t, 'i>> {
    v.filter(|v| v.value_type() != ValueType::Null)
}

fn required<'t, 'i>(
    field: &'static str,
    v: Option<Value<'t, 'i>>,
) -> Result<Value<'t, 'i>, ParseError> {
    v.ok_or(ParseError::Missing(field))
}

fn object_of<'t, 'i>(
    field: &'static str,
    v: Option<Value<'t, 'i>>,
) -> Result<Object<'t, 'i>, ParseError> {
    let v = required(field, v)?;
    v.into_object().ok_or(ParseError::WrongType {
        field,
        expected: "an object",
        got: kind(&v),
    })
}

fn string<'i>(field: &'static str, v: Option<Value<'_, 'i>>) -> Result<&'i str, ParseError> {
    let v = required(field, v)?;
    v.into_string().ok_or(ParseError::WrongType {
        field,
        expected: "a string",
        got: kind(&v),
    })
}

fn optional_string<'i>(
    field: &'static str,
    v: Option<Value<'_, 'i>>,
) -> Result<Option<&'i str>, ParseError> {
    optional(v).map(|v| string(field, Some(v))).transpose()
}

/// A decimal string: quantities, prices and balances never go through `f64`.
fn decimal(field: &'static str, v: Option<Value<'_, '_>>) -> Result<Decimal, ParseError> {
    let v = required(field, v)?;
    let text = v.as_str().ok_or(ParseError::WrongType {
        field,
        expected: "a decimal string like \"0.5\"",
        got: kind(&v),
    })?;
    parse_decimal(text.as_bytes()).map_err(|_| ParseError::BadValue {
        field,
        expected: "a decimal number of at most 28 digits",
        value: shown(text),
    })
}

/// An id: a JSON integer ≥ 0.
fn unsigned(field: &'static str, v: Option<Value<'_, '_>>) -> Result<u64, ParseError> {
    let v = required(field, v)?;
    match v.value_type() {
        ValueType::U64 | ValueType::I64 => v.as_u64().ok_or(ParseError::WrongType {
            field,
            expected: "an integer ≥ 0",
            got: "a negative number",
        }),
        _ => Err(ParseError::WrongType {
            field,
            expected: "an integer ≥ 0",
            got: kind(&v),
        }),
    }
}

/// Milliseconds since the epoch (a JSON integer, or a string of digits as
/// `listenKeyExpired`'s `E` is documented) as nanoseconds.
fn millis(field: &'static str, v: Option<Value<'_, '_>>) -> Result<Nanos, ParseError> {
    let v = required(field, v)?;
    let expected = "milliseconds since the epoch (an integer ≥ 0 or a string of digits)";
    let ms = match (v.value_type(), v.as_str()) {
        (ValueType::U64 | ValueType::I64, _) => v.as_u64().ok_or(ParseError::WrongType {
            field,
            expected,
            got: "a negative number",
        })?,
        (_, Some(text)) => text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| ParseError::BadValue {
                field,
                expected,
                value: shown(text),
            })?,
        _ => {
            return Err(ParseError::WrongType {
                field,
                expected,
                got: kind(&v),
            })
        }
    };
    match ms.checked_mul(1_000_000) {
        Some(ns) if ms <= TIME_MS_MAX => Ok(Nanos(ns)),
        _ => Err(ParseError::TimeTooLate { field, ms }),
    }
}

fn side(field: &'static str, v: Option<Value<'_, '_>>) -> Result<Side, ParseError> {
    match string(field, v)? {
        "BUY" => Ok(Side::Buy),
        "SELL" => Ok(Side::Sell),
        other => Err(ParseError::BadValue {
            field,
            expected: "BUY or SELL",
            value: shown(other),
        }),
    }
}

fn kind(v: &Value<'_, '_>) -> &'static str {
    match v.value_type() {
        ValueType::Null => "null",
        ValueType::Bool => "a boolean",
        ValueType::String => "a string",
        ValueType::Array => "an array",
        ValueType::Object => "an object",
        ValueType::F64 => "a fractional or out-of-range number",
        _ => "a JSON number",
    }
}

/// `s` fit to quote in an error: at most `SHOWN_CHARS_MAX` characters, control
/// and non-ASCII characters escaped, so that a message cannot forge a log line.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(SHOWN_CHARS_MAX)
        .flat_map(char::escape_default)
        .collect();
    if s.chars().nth(SHOWN_CHARS_MAX).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::BINANCE_FILL_SAMPLE as FIXTURE;
    use fillcast_engine::config;
    use proptest::prelude::*;
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
"#;

    /// The trade of the fixture as `userTrades` gives it.
    const REST_TRADE: &str = r#"{"buyer":true,"commission":"0.6734","commissionAsset":"USDT","id":109100866,"maker":false,"orderId":336829446,"price":"42088.0","qty":"0.040","quoteQty":"1683.52","realizedPnl":"0","side":"BUY","positionSide":"BOTH","symbol":"BTCUSDT","time":1705385954298}"#;

    /// The documentation's `ACCOUNT_UPDATE` example.
    const ACCOUNT: &str = r#"{"e":"ACCOUNT_UPDATE","E":1564745798939,"T":1564745798938,"a":{"m":"ORDER","B":[{"a":"USDT","wb":"122624.12345678","cw":"100.12345678","bc":"50.12345678"},{"a":"BUSD","wb":"1.00000000","cw":"0.00000000","bc":"-49.12345678"}],"P":[{"s":"BTCUSDT","pa":"0","ep":"0.00000","bep":"0","cr":"200","up":"0","mt":"isolated","iw":"0.00000000","ps":"BOTH"},{"s":"BTCUSDT","pa":"20","ep":"6563.66500","bep":"6563.6","cr":"0","up":"2850.21200","mt":"isolated","iw":"13200.70726908","ps":"LONG"}]}}"#;

    /// The documentation's `markPriceUpdate` example.
    const MARK: &str = r#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#;

    const LISTEN_KEY: &str = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1";

    fn universe() -> Universe {
        let cfg = config::load_str(MODEL, Path::new("test.toml")).expect("test model");
        Universe::from_config(&cfg).expect("test universe")
    }

    fn table() -> SymbolTable {
        SymbolTable::from_universe(&universe())
    }

    fn ms(ms: u64) -> Nanos {
        Nanos(ms * 1_000_000)
    }

    /// The fixture with `from` (which must occur once) replaced by `to`.
    fn fixture_with(from: &str, to: &str) -> String {
        assert_eq!(FIXTURE.matches(from).count(), 1, "{from}");
        FIXTURE.replacen(from, to, 1)
    }

    fn parse_error(message: &str) -> String {
        match Parser::new().message(message.as_bytes()) {
            Ok(e) => panic!("parsed {message}: {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn fill_of(message: &str) -> Result<Option<Fill>, FillError> {
        let mut p = Parser::new();
        match p.message(message.as_bytes()) {
            Ok(Event::OrderTradeUpdate(o)) => o.fill(LeaderIdx(0), "L1", &table(), Nanos(7)),
            other => panic!("not an ORDER_TRADE_UPDATE: {other:?}"),
        }
    }

    fn fixture_event() -> OrderTradeUpdate<'static> {
        OrderTradeUpdate {
            event_time: ms(1705385954300),
            symbol: "BTCUSDT",
            client_order_id: "cpL1-000042",
            side: Side::Buy,
            order_type: "LIMIT",
            order_qty: dec!(0.100),
            execution_type: ExecutionType::Trade,
            order_status: "PARTIALLY_FILLED",
            order_id: 336829446,
            last_qty: dec!(0.040),
            last_price: dec!(42088.0),
            trade_id: 109100866,
            trade_time: ms(1705385954298),
            commission: Some(dec!(0.6734)),
            commission_asset: Some("USDT"),
            realized_profit: dec!(0),
            position_side: "BOTH",
        }
    }

    fn fixture_fill() -> Fill {
        Fill {
            fill: LeaderFill {
                leader: LeaderIdx(0),
                symbol: SymbolIdx(0),
                side: Side::Buy,
                qty: Lots(40),
                price: Ticks(420880),
                event_key: leader_event_key("L1", "BTCUSDT:109100866:BUY"),
                order_key: fnv1a(b"BTCUSDT:336829446"),
                order_qty: Lots(100),
                venue_ts: ms(1705385954298),
                recv_ts: Nanos(7),
                kind: LeaderFillKind::Trade,
            },
            kind: FillKind::Trade,
        }
    }

    #[test]
    fn the_embedded_fixture_is_the_shared_one() {
        // The repository's copy of `../shared/fixtures`' file (tests/data/README.md).
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/binance/binance_usdm_order_trade_update_fill.json");
        let shared =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(shared.trim_end(), FIXTURE);
    }

    #[test]
    fn the_fixture_parses_into_every_field() {
        let mut p = Parser::new();
        let event = p.message(FIXTURE.as_bytes()).expect("the fixture parses");
        assert_eq!(event, Event::OrderTradeUpdate(fixture_event()));
    }

    #[test]
    fn the_fixture_is_a_leader_fill_in_whole_lots_and_ticks() {
        assert_eq!(fill_of(FIXTURE), Ok(Some(fixture_fill())));
    }

    #[test]
    fn a_fill_from_the_stream_and_from_user_trades_is_one_event() {
        let symbols = table();
        let mut p = Parser::new();
        let Ok(Event::OrderTradeUpdate(o)) = p.message(FIXTURE.as_bytes()) else {
            panic!("the fixture parses");
        };
        let stream = o
            .fill(LeaderIdx(0), "L1", &symbols, Nanos(7))
            .unwrap()
            .unwrap();
        let mut q = Parser::new();
        let body = format!("[{REST_TRADE}]");
        let trades = q.user_trades(body.as_bytes()).expect("parses");
        assert_eq!(trades.len(), 1);
        // Knowing the order, REST gives exactly the stream's fill.
        let order = OrderInfo {
            client_order_id: "cpL1-000042",
            orig_qty: dec!(0.100),
        };
        let rest = trades[0].fill(LeaderIdx(0), "L1", &symbols, Some(&order), Nanos(7));
        assert_eq!(rest, Ok(stream));
        // Not knowing it, the same event, quantity, price, order and time.
        let bare = trades[0]
            .fill(LeaderIdx(0), "L1", &symbols, None, Nanos(7))
            .unwrap();
        assert_eq!(bare.fill.event_key, stream.fill.event_key);
        assert_eq!(
            (
                bare.fill.qty,
                bare.fill.price,
                bare.fill.order_key,
                bare.fill.venue_ts
            ),
            (
                stream.fill.qty,
                stream.fill.price,
                stream.fill.order_key,
                stream.fill.venue_ts
            )
        );
        assert_eq!(
            (bare.fill.order_qty, bare.kind, bare.fill.kind),
            (Lots::ZERO, FillKind::Unknown, LeaderFillKind::Unknown)
        );
        // Another leader's copy of the trade is another event.
        let other = trades[0]
            .fill(LeaderIdx(1), "L2", &symbols, None, Nanos(7))
            .unwrap();
        assert_ne!(other.fill.event_key, stream.fill.event_key);
    }

    /// With self-trade prevention off (`V` = `NONE`) a leader's buy and sell can
    /// be the two sides of one trade id: two fills, not a duplicate.
    #[test]
    fn both_sides_of_a_self_trade_are_two_fills() {
        let buy = fill_of(FIXTURE).unwrap().unwrap();
        let sell = fill_of(&fixture_with(r#""S":"BUY""#, r#""S":"SELL""#))
            .unwrap()
            .unwrap();
        assert_ne!(buy.fill.event_key, sell.fill.event_key);
        assert_eq!(sell.fill.side, Side::Sell);
    }

    #[test]
    fn every_prefix_of_a_message_is_refused() {
        let wrapped = format!(r#"{{"stream":"{LISTEN_KEY}","data":{FIXTURE}}}"#);
        for whole in [FIXTURE, &wrapped, ACCOUNT, MARK] {
            let mut p = Parser::new();
            for cut in 0..whole.len() {
                let e = p
                    .message(&whole.as_bytes()[..cut])
                    .expect_err("a prefix is not a message");
                assert!(
                    !e.to_string().contains(LISTEN_KEY),
                    "{cut}: the listen key in {e}"
                );
            }
            assert_eq!(p.stats().rejected, whole.len() as u64);
        }
        let body = format!("[{REST_TRADE},{REST_TRADE}]");
        let mut p = Parser::new();
        for cut in 0..body.len() {
            assert!(p.user_trades(&body.as_bytes()[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn malformed_messages_are_refused_naming_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            (r#""q":"0.100""#, r#""q":0.1"#, "field `o.q` must be a decimal string like \"0.5\", got a fractional or out-of-range number"),
            (r#""q":"0.100""#, r#""q":"1e3""#, "field `o.q` must be a decimal number of at most 28 digits, got \"1e3\""),
            (r#""rp":"0""#, r#""rp":"NaN""#, "field `o.rp` must be a decimal number of at most 28 digits, got \"NaN\""),
            (r#""i":336829446"#, r#""i":"336829446""#, "field `o.i` must be an integer ≥ 0, got a string"),
            (r#""i":336829446"#, r#""i":-5"#, "field `o.i` must be an integer ≥ 0, got a negative number"),
            (r#""t":109100866"#, r#""t":1.5"#, "field `o.t` must be an integer ≥ 0, got a fractional or out-of-range number"),
            (r#""S":"BUY""#, r#""S":"buy""#, "field `o.S` must be BUY or SELL, got \"buy\""),
            (r#""x":"TRADE""#, r#""x":null"#, "field `o.x` must be a string, got null"),
            (r#""n":"0.6734""#, r#""n":0.6734"#, "field `o.n` must be a decimal string like \"0.5\", got a fractional or out-of-range number"),
            (r#""e":"ORDER_TRADE_UPDATE""#, r#""e":5"#, "field `e` must be a string, got a JSON number"),
            (r#""E":1705385954300"#, r#""E":true"#, "field `E` must be milliseconds since the epoch (an integer ≥ 0 or a string of digits), got a boolean"),
            (r#""E":1705385954300"#, r#""E":"17053x""#, "field `E` must be milliseconds since the epoch (an integer ≥ 0 or a string of digits), got \"17053x\""),
            (r#""E":1705385954300"#, r#""E":-1"#, "field `E` must be milliseconds since the epoch (an integer ≥ 0 or a string of digits), got a negative number"),
            (r#""T":1705385954298,"t""#, r#""T":7258118400001,"t""#, "field `o.T` = 7258118400001 ms is after 2200-01-01 (milliseconds since the epoch expected)"),
            (r#""T":1705385954298,"t""#, r#""T":18446744073709551615,"t""#, "field `o.T` = 18446744073709551615 ms is after 2200-01-01 (milliseconds since the epoch expected)"),
            (r#""l":"0.040""#, r#""l":"0.040","l":"4.000""#, "duplicate field `o.l`"),
            (r#""e":"ORDER_TRADE_UPDATE""#, r#""e":"ORDER_TRADE_UPDATE","e":"MARGIN_CALL""#, "duplicate field `e`"),
        ];
        for (from, to, expected) in cases {
            assert_eq!(parse_error(&fixture_with(from, to)), *expected, "{to}");
        }
        for (message, expected) in [
            ("[]", "expected a JSON object, got an array"),
            (
                "\"ORDER_TRADE_UPDATE\"",
                "expected a JSON object, got a string",
            ),
            (
                r#"{"e":"ORDER_TRADE_UPDATE","E":1,"o":[]}"#,
                "field `o` must be an object, got an array",
            ),
            (r#"{"e":"ORDER_TRADE_UPDATE","E":1}"#, "missing field `o`"),
            (r#"{"E":1}"#, "missing field `e`"),
            (
                r#"{"e":"ACCOUNT_UPDATE","E":1,"a":{"m":"ORDER","B":{},"P":[]}}"#,
                "field `a.B` must be an array, got an object",
            ),
            (
                r#"{"e":"ACCOUNT_UPDATE","E":1,"a":{"m":"ORDER","B":[],"P":[7]}}"#,
                "a.P[0]: expected a JSON object, got a JSON number",
            ),
            (
                r#"{"e":"ACCOUNT_UPDATE","E":1,"a":{"m":"ORDER","B":[{"a":"USDT","wb":"1","cw":"1","bc":"0"},{"a":"USDT","wb":1,"cw":"1","bc":"0"}],"P":[]}}"#,
                "a.B[1]: field `wb` must be a decimal string like \"0.5\", got a JSON number",
            ),
            (
                r#"{"e":"markPriceUpdate","E":1,"s":"BTCUSDT"}"#,
                "missing field `p`",
            ),
            ("", "malformed JSON: "),
        ] {
            let got = parse_error(message);
            assert!(got.starts_with(expected), "{message}: {got}");
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let cases = [
            (r#""s":"BTCUSDT","#, "o.s"),
            (r#""c":"cpL1-000042","#, "o.c"),
            (r#""S":"BUY","#, "o.S"),
            (r#""o":"LIMIT","#, "o.o"),
            (r#""q":"0.100","#, "o.q"),
            (r#""x":"TRADE","#, "o.x"),
            (r#""X":"PARTIALLY_FILLED","#, "o.X"),
            (r#""i":336829446,"#, "o.i"),
            (r#""l":"0.040","#, "o.l"),
            (r#""L":"42088.0","#, "o.L"),
            (r#""T":1705385954298,"t""#, "o.T"),
            (r#""t":109100866,"#, "o.t"),
            (r#""rp":"0","#, "o.rp"),
            (r#""ps":"BOTH","#, "o.ps"),
            (r#""E":1705385954300,"#, "E"),
            (r#""e":"ORDER_TRADE_UPDATE","#, "e"),
        ];
        for (field, path) in cases {
            // `o.T` is followed by `"t"`, which stays.
            let keep = if field.ends_with("\"t\"") {
                "\"t\""
            } else {
                ""
            };
            let message = fixture_with(field, keep);
            assert_eq!(parse_error(&message), format!("missing field `{path}`"));
        }
    }

    #[test]
    fn commission_may_be_absent_or_null() {
        for message in [
            fixture_with(r#""N":"USDT","#, "").replacen(r#""n":"0.6734","#, "", 1),
            fixture_with(r#""n":"0.6734""#, r#""n":null"#).replacen(
                r#""N":"USDT""#,
                r#""N":null"#,
                1,
            ),
        ] {
            let mut p = Parser::new();
            let Ok(Event::OrderTradeUpdate(o)) = p.message(message.as_bytes()) else {
                panic!("{message}");
            };
            assert_eq!((o.commission, o.commission_asset), (None, None));
        }
    }

    #[test]
    fn unknown_and_duplicate_unread_fields_are_ignored() {
        let message = fixture_with(
            r#""m":false"#,
            r#""m":false,"m":true,"zz":{"a":[1,2,{"b":null}]}"#,
        );
        assert_eq!(fill_of(&message), Ok(Some(fixture_fill())));
    }

    #[test]
    fn fills_off_the_grid_or_out_of_range_are_refused() {
        let cases: &[(&str, &str, &str)] = &[
            (r#""l":"0.040""#, r#""l":"0""#, "field `o.l` must be positive, got 0"),
            (r#""l":"0.040""#, r#""l":"-0.040""#, "field `o.l` must be positive, got -0.040"),
            (r#""L":"42088.0""#, r#""L":"0""#, "field `o.L` must be positive, got 0"),
            (r#""L":"42088.0""#, r#""L":"-42088.0""#, "field `o.L` must be positive, got -42088.0"),
            (r#""L":"42088.0""#, r#""L":"42088.05""#, "field `o.L` = 42088.05 is not a multiple of the tick size 0.1 of BTCUSDT"),
            (r#""l":"0.040""#, r#""l":"0.0405""#, "field `o.l` = 0.0405 is not a multiple of the lot size 0.001 of BTCUSDT"),
            (r#""l":"0.040""#, r#""l":"0.0400000000000000000000000001""#, "field `o.l` = 0.0400000000000000000000000001 is not a multiple of the lot size 0.001 of BTCUSDT"),
            (r#""q":"0.100""#, r#""q":"0.1005""#, "field `o.q` = 0.1005 is not a multiple of the lot size 0.001 of BTCUSDT"),
            (r#""q":"0.100""#, r#""q":"0.030""#, "field `o.q`: order quantity 0.030 is less than the fill's 0.040"),
            (r#""q":"0.100""#, r#""q":"-1""#, "field `o.q` must be positive, got -1"),
            (r#""s":"BTCUSDT""#, r#""s":"DOGEUSDT""#, "unknown symbol \"DOGEUSDT\""),
            (r#""s":"BTCUSDT""#, r#""s":"BTC\u0001\nUSDT""#, "unknown symbol \"BTC\\u{1}\\nUSDT\""),
            // 10^12 BTC is 10^15 lots: past `Lots::MAX` (2^48), within i64.
            (r#""l":"0.040""#, r#""l":"1000000000000""#, "field `o.l` = 1000000000000 is more than 281474976710656 lots of BTCUSDT"),
            // 10^29 lots: past i64 and past what a Decimal divides into.
            (r#""l":"0.040""#, r#""l":"99999999999999999999999999""#, "field `o.l` = 99999999999999999999999999 of BTCUSDT: 99999999999999999999999999 is out of range"),
            (r#""L":"42088.0""#, r#""L":"9999999999999999999.9""#, "field `o.L` = 9999999999999999999.9 of BTCUSDT: 9999999999999999999.9 is out of range"),
        ];
        for (from, to, expected) in cases {
            let got = fill_of(&fixture_with(from, to)).expect_err(to);
            assert_eq!(got.to_string(), *expected, "{to}");
        }
        let mut symbols = table();
        symbols.by_name.get_mut("BTCUSDT").unwrap().removed = true;
        let mut p = Parser::new();
        let Ok(Event::OrderTradeUpdate(o)) = p.message(FIXTURE.as_bytes()) else {
            panic!("the fixture parses");
        };
        assert_eq!(
            o.fill(LeaderIdx(0), "L1", &symbols, Nanos(7))
                .unwrap_err()
                .to_string(),
            "symbol BTCUSDT was removed by a reload: its fills and marks are no longer taken"
        );
    }

    #[test]
    fn an_order_quantity_of_zero_is_unknown_not_an_error() {
        let f = fill_of(&fixture_with(r#""q":"0.100""#, r#""q":"0""#))
            .unwrap()
            .unwrap();
        assert_eq!(f.fill.order_qty, Lots::ZERO);
        assert_eq!(f.fill.qty, Lots(40));
    }

    #[test]
    fn only_trade_executions_are_fills() {
        for x in [
            "NEW",
            "CANCELED",
            "CALCULATED",
            "EXPIRED",
            "AMENDMENT",
            "SOMETHING_NEW",
        ] {
            // Not a fill: quantities and prices are not even looked at.
            let message = fixture_with(r#""x":"TRADE""#, &format!(r#""x":"{x}""#))
                .replacen(r#""l":"0.040""#, r#""l":"0""#, 1)
                .replacen(r#""L":"42088.0""#, r#""L":"0""#, 1);
            assert_eq!(fill_of(&message), Ok(None), "{x}");
        }
    }

    #[test]
    fn liquidation_adl_and_settlement_fills_are_marked() {
        for (client_id, kind, marked) in [
            (
                "autoclose-1705385954298",
                FillKind::Liquidation,
                LeaderFillKind::Liquidation,
            ),
            ("adl_autoclose", FillKind::Adl, LeaderFillKind::Adl),
            (
                "settlement_autoclose-1705385954298",
                FillKind::Settlement,
                LeaderFillKind::Settlement,
            ),
            ("cpL1-000042", FillKind::Trade, LeaderFillKind::Trade),
            ("my-autoclose-1", FillKind::Trade, LeaderFillKind::Trade),
            ("adl_autoclose2", FillKind::Trade, LeaderFillKind::Trade),
            ("", FillKind::Trade, LeaderFillKind::Trade),
        ] {
            let message = fixture_with(r#""c":"cpL1-000042""#, &format!(r#""c":"{client_id}""#));
            let f = fill_of(&message).unwrap().unwrap();
            assert_eq!(f.kind, kind, "{client_id}");
            // Marked on the engine's fill, for lineage; the position moves as
            // for any fill.
            assert_eq!(f.fill.kind, marked, "{client_id}");
            assert_eq!(
                LeaderFill {
                    kind: LeaderFillKind::Trade,
                    ..f.fill
                },
                fixture_fill().fill,
                "{client_id}"
            );
        }
    }

    #[test]
    fn the_combined_stream_wrapper_is_unwrapped() {
        let wrapped = format!(r#"{{"stream":"{LISTEN_KEY}","data":{FIXTURE}}}"#);
        assert_eq!(fill_of(&wrapped), Ok(Some(fixture_fill())));
        let mark = format!(r#"{{"stream":"btcusdt@markPrice","data":{MARK}}}"#);
        assert!(matches!(
            Parser::new().message(mark.as_bytes()),
            Ok(Event::MarkPrice(_))
        ));
        // An error inside names the field, never the stream (the listen key).
        let broken = wrapped.replacen(r#""l":"0.040""#, r#""l":0.04"#, 1);
        let e = parse_error(&broken);
        assert!(e.starts_with("field `o.l` must be a decimal string"), "{e}");
        assert!(!e.contains(LISTEN_KEY));
        let e = parse_error(&format!(r#"{{"stream":"{LISTEN_KEY}","data":[]}}"#));
        assert_eq!(e, "field `data` must be an object, got an array");
        // A wrapper in a wrapper is not unwrapped twice.
        let twice = format!(r#"{{"stream":"x","data":{wrapped}}}"#);
        assert_eq!(parse_error(&twice), "missing field `e`");
    }

    #[test]
    fn listen_key_expired_has_its_time_as_a_string_or_a_number() {
        for time in [r#""1736996475556""#, "1736996475556"] {
            let message =
                format!(r#"{{"e":"listenKeyExpired","E":{time},"listenKey":"{LISTEN_KEY}"}}"#);
            let mut p = Parser::new();
            let event = p.message(message.as_bytes()).expect("parses");
            let Event::ListenKeyExpired(k) = event else {
                panic!("{event:?}");
            };
            assert_eq!(k.event_time, ms(1736996475556));
            assert_eq!(k.listen_key, Some(LISTEN_KEY));
            assert!(!format!("{event:?}").contains(LISTEN_KEY));
        }
        let bare = r#"{"e":"listenKeyExpired","E":1}"#;
        assert!(matches!(
            Parser::new().message(bare.as_bytes()),
            Ok(Event::ListenKeyExpired(ListenKeyExpired {
                listen_key: None,
                ..
            }))
        ));
        for time in [
            r#""""#,
            r#""-1""#,
            r#""1.5""#,
            "1.5",
            r#""99999999999999999999""#,
        ] {
            let message =
                format!(r#"{{"e":"listenKeyExpired","E":{time},"listenKey":"{LISTEN_KEY}"}}"#);
            let e = parse_error(&message);
            assert!(
                e.starts_with("field `E` must be milliseconds"),
                "{time}: {e}"
            );
            assert!(!e.contains(LISTEN_KEY));
        }
    }

    #[test]
    fn account_update_gives_the_wallet_balance_of_an_asset() {
        let mut p = Parser::new();
        let Ok(Event::AccountUpdate(a)) = p.message(ACCOUNT.as_bytes()) else {
            panic!("the example parses");
        };
        assert_eq!(a.event_time, ms(1564745798939));
        assert_eq!(a.reason, "ORDER");
        assert_eq!(
            a.balances[0],
            Balance {
                asset: "USDT",
                wallet_balance: dec!(122624.12345678),
                cross_wallet_balance: dec!(100.12345678),
                balance_change: dec!(50.12345678),
            }
        );
        assert_eq!(
            a.positions[1],
            Position {
                symbol: "BTCUSDT",
                amount: dec!(20),
                entry_price: dec!(6563.66500),
                unrealized_profit: dec!(2850.21200),
                position_side: "LONG",
            }
        );
        assert_eq!(a.wallet_balance("USDT"), Ok(Some(dec!(122624.12345678))));
        assert_eq!(a.wallet_balance("BUSD"), Ok(Some(dec!(1))));
        assert_eq!(a.wallet_balance("BNB"), Ok(None));
        let mut twice = a.clone();
        twice.balances.push(Balance {
            wallet_balance: dec!(5),
            ..a.balances[0].clone()
        });
        assert_eq!(
            twice.wallet_balance("USDT").unwrap_err().to_string(),
            "asset \"USDT\" appears in `a.B` more than once with different wallet balances"
        );
        let empty = r#"{"e":"ACCOUNT_UPDATE","E":1,"a":{"m":"FUNDING_FEE","B":[],"P":[]}}"#;
        let Ok(Event::AccountUpdate(a)) = p.message(empty.as_bytes()) else {
            panic!("parses");
        };
        assert_eq!(a.wallet_balance("USDT"), Ok(None));
    }

    /// The documentation's example, each of the fields read taken away or
    /// given the wrong type, duplicated, cut anywhere, made too large or
    /// hostile: an error that names the field and quotes the value escaped,
    /// never a panic; what is not read (`i`, `P`, `r`, `T`) is never refused.
    #[test]
    fn mark_price_messages_are_read_strictly_where_it_matters() {
        let mark_of = |message: &str| {
            Parser::new()
                .mark(message.as_bytes(), &table())
                .map_err(|e| e.to_string())
        };
        let good = FeedEvent::MarkPrice {
            symbol: SymbolIdx(0),
            price: Ticks(117942),
            ts: ms(1562305380000),
        };
        assert_eq!(mark_of(MARK), Ok(Some(good)));
        let with = |from: &str, to: &str| {
            assert_eq!(MARK.matches(from).count(), 1, "{from}");
            MARK.replacen(from, to, 1)
        };
        for (from, to, expected) in [
            (r#""E":1562305380000,"#, "", "missing field `E`"),
            (r#""s":"BTCUSDT","#, "", "missing field `s`"),
            (r#""p":"11794.15000000","#, "", "missing field `p`"),
            (r#""E":1562305380000"#, r#""E":"1562305380000""#, ""),
            (r#""E":1562305380000"#, r#""E":"15623x""#, "field `E` must be milliseconds since the epoch (an integer ≥ 0 or a string of digits), got \"15623x\""),
            (r#""E":1562305380000"#, r#""E":7258118400001"#, "field `E` = 7258118400001 ms is after 2200-01-01 (milliseconds since the epoch expected)"),
            (r#""E":1562305380000"#, r#""E":-1"#, "field `E` must be milliseconds since the epoch (an integer ≥ 0 or a string of digits), got a negative number"),
            (r#""s":"BTCUSDT""#, r#""s":7"#, "field `s` must be a string, got a JSON number"),
            (r#""s":"BTCUSDT""#, r#""s":"btcusdt""#, "markPriceUpdate: unknown symbol \"btcusdt\""),
            (r#""s":"BTCUSDT""#, r#""s":"\u001b[2J\r\n""#, "markPriceUpdate: unknown symbol \"\\u{1b}[2J\\r\\n\""),
            (r#""s":"BTCUSDT""#, r#""s":"BTCUSDT","s":"ETHUSDT""#, "duplicate field `s`"),
            (r#""p":"11794.15000000""#, r#""p":11794.15"#, "field `p` must be a decimal string like \"0.5\", got a fractional or out-of-range number"),
            (r#""p":"11794.15000000""#, r#""p":null"#, "field `p` must be a decimal string like \"0.5\", got null"),
            (r#""p":"11794.15000000""#, r#""p":"1e4""#, "field `p` must be a decimal number of at most 28 digits, got \"1e4\""),
            (r#""p":"11794.15000000""#, r#""p":"NaN""#, "field `p` must be a decimal number of at most 28 digits, got \"NaN\""),
            (r#""p":"11794.15000000""#, r#""p":"0.04""#, "markPriceUpdate: field `p` must be positive, got 0.04"),
            // Not read: anything goes.
            (r#""i":"11784.62659091""#, r#""i":[[[{}]]]"#, ""),
            (r#""r":"0.00038167""#, r#""r":"""#, ""),
            (r#""T":1562306400000"#, r#""T":0"#, ""),
        ] {
            let got = mark_of(&with(from, to));
            if expected.is_empty() {
                assert_eq!(got, Ok(Some(good)), "{to}");
            } else {
                assert_eq!(got, Err(expected.to_string()), "{to}");
            }
        }
        // Any other event is none of the mark stream's business.
        assert_eq!(mark_of(FIXTURE), Ok(None));
        assert_eq!(mark_of(r#"{"e":"aggTrade","E":1}"#), Ok(None));
        // Every cut of the message, and one too large, is refused.
        for cut in 0..MARK.len() {
            assert!(mark_of(&MARK[..cut]).is_err(), "{cut}");
        }
        let mut large = MARK.to_string();
        large.push_str(&" ".repeat(MESSAGE_BYTES_MAX));
        assert_eq!(
            mark_of(&large),
            Err(format!(
                "message of {} bytes is longer than the limit of {MESSAGE_BYTES_MAX} bytes",
                large.len()
            ))
        );
        // Each call counted once.
        let mut p = Parser::new();
        p.mark(MARK.as_bytes(), &table()).unwrap();
        p.mark(b"{", &table()).unwrap_err();
        let s = p.stats();
        assert_eq!((s.messages, s.mark_prices, s.rejected), (2, 1, 1));
    }

    #[test]
    fn rounding_to_the_tick_is_exact_and_halves_go_to_even() {
        for (value, tick, expected) in [
            (dec!(1.5), dec!(1), Some(2)),
            (dec!(2.5), dec!(1), Some(2)),
            (dec!(0.45), dec!(0.3), Some(2)),
            (dec!(0.75), dec!(0.3), Some(2)),
            (dec!(0.4499999999999999999999999999), dec!(0.3), Some(1)),
            (dec!(0.8999999999999999999999999999), dec!(0.3), Some(3)),
            (dec!(0.0000000000000000000000000001), dec!(0.1), Some(0)),
            (dec!(42088.05), dec!(0.1), Some(420880)),
            (dec!(7.5), dec!(5), Some(2)),
            (dec!(-1.4), dec!(1), Some(-1)),
            (dec!(1), dec!(0), None),
            (dec!(1), dec!(-0.1), None),
            (Decimal::MAX, dec!(0.0001), None),
        ] {
            assert_eq!(round_to_tick(value, tick), expected, "{value} / {tick}");
        }
    }

    proptest! {
        /// `round_to_tick` against the exact rational in integers: the
        /// nearest whole number of ticks, a half to the even one.
        #[test]
        fn rounding_to_the_tick_matches_exact_integer_arithmetic(
            a in 1i64..1_000_000_000_000_000,
            s in 0u32..12,
            b in 1i64..10_000,
            t in 0u32..10,
        ) {
            let value = Decimal::new(a, s);
            let tick = Decimal::new(b, t);
            let num = i128::from(a) * 10i128.pow(t);
            let den = i128::from(b) * 10i128.pow(s);
            let (q, r) = (num / den, num % den);
            let want = match (2 * r).cmp(&den) {
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Less => q,
                std::cmp::Ordering::Equal => q + (q % 2),
            };
            prop_assert_eq!(round_to_tick(value, tick), i64::try_from(want).ok());
        }
    }

    #[test]
    fn mark_prices_round_to_the_nearest_tick() {
        let symbols = table();
        for (price, expected) in [
            ("11794.15000000", Ok(117942)), // half a tick: to even
            ("11794.25000000", Ok(117942)),
            ("11794.25000001", Ok(117943)),
            ("42088.04999999", Ok(420880)),
            ("0.1", Ok(1)),
            ("0.04", Err("field `p` must be positive, got 0.04")),
            ("0", Err("field `p` must be positive, got 0")),
            ("-5", Err("field `p` must be positive, got -5")),
            ("9999999999999999999999999999", Err("field `p` = 9999999999999999999999999999 of BTCUSDT: 9999999999999999999999999999 is out of range")),
        ] {
            let message = MARK.replacen("11794.15000000", price, 1);
            let mut p = Parser::new();
            let Ok(Event::MarkPrice(m)) = p.message(message.as_bytes()) else {
                panic!("{message}");
            };
            let got = m.to_feed_rounded(&symbols).map_err(|e| e.to_string());
            let expected = expected
                .map(|t| FeedEvent::MarkPrice {
                    symbol: SymbolIdx(0),
                    price: Ticks(t),
                    ts: ms(1562305380000),
                })
                .map_err(str::to_string);
            assert_eq!(got, expected, "{price}");
        }
    }

    #[test]
    fn other_events_are_counted_not_refused() {
        let mut p = Parser::new();
        for e in ["MARGIN_CALL", "ACCOUNT_CONFIG_UPDATE", "TRADE_LITE", ""] {
            let message = format!(r#"{{"e":"{e}","E":1,"whatever":[1]}}"#);
            assert_eq!(p.message(message.as_bytes()), Ok(Event::Other(e)));
        }
        p.message(FIXTURE.as_bytes()).unwrap();
        p.message(ACCOUNT.as_bytes()).unwrap();
        p.message(MARK.as_bytes()).unwrap();
        p.message(br#"{"e":"listenKeyExpired","E":1}"#).unwrap();
        p.message(b"{").unwrap_err();
        p.user_trades(format!("[{REST_TRADE},{REST_TRADE}]").as_bytes())
            .unwrap();
        p.user_trades(b"{}").unwrap_err();
        assert_eq!(
            p.stats(),
            ParserStats {
                messages: 9,
                order_trade_updates: 1,
                account_updates: 1,
                listen_keys_expired: 1,
                mark_prices: 1,
                other: 4,
                user_trade_bodies: 2,
                user_trades: 2,
                rejected: 2,
            }
        );
    }

    #[test]
    fn user_trades_parse_and_bad_bodies_are_refused() {
        let mut p = Parser::new();
        assert_eq!(p.user_trades(b"[]"), Ok(vec![]));
        let body = format!("[{REST_TRADE}]");
        assert_eq!(
            p.user_trades(body.as_bytes()).unwrap()[0],
            UserTrade {
                id: 109100866,
                order_id: 336829446,
                symbol: "BTCUSDT",
                side: Side::Buy,
                price: dec!(42088.0),
                qty: dec!(0.040),
                time: ms(1705385954298),
                realized_pnl: dec!(0),
                commission: dec!(0.6734),
                commission_asset: "USDT",
                position_side: Some("BOTH"),
            }
        );
        let many = format!("[{}]", vec![REST_TRADE; USER_TRADES_MAX + 1].join(","));
        let second_bad = format!(
            "[{REST_TRADE},{}]",
            REST_TRADE.replacen(r#""id":109100866,"#, "", 1)
        );
        for (body, expected) in [
            (r#"{"code":-1121,"msg":"Invalid symbol."}"#.to_string(), "the venue answered error -1121: \"Invalid symbol.\"".to_string()),
            ("{}".to_string(), "expected a JSON array of trades, got an object".to_string()),
            ("[1]".to_string(), "userTrades[0]: expected a JSON object, got a JSON number".to_string()),
            (second_bad, "userTrades[1]: missing field `id`".to_string()),
            (many, format!("{} trades in one userTrades response, at most 1000 expected", USER_TRADES_MAX + 1)),
            (format!("[{}]", " ".repeat(USER_TRADES_BYTES_MAX)), format!("userTrades response of {} bytes is longer than the limit of {USER_TRADES_BYTES_MAX} bytes", USER_TRADES_BYTES_MAX + 2)),
        ] {
            let got = p.user_trades(body.as_bytes()).expect_err(&expected).to_string();
            assert_eq!(got, expected);
        }
        // The largest page of real trades fits.
        let full = format!("[{}]", vec![REST_TRADE; USER_TRADES_MAX].join(","));
        assert!(full.len() < USER_TRADES_BYTES_MAX);
        assert_eq!(
            p.user_trades(full.as_bytes()).map(|t| t.len()),
            Ok(USER_TRADES_MAX)
        );
    }

    #[test]
    fn oversized_messages_are_refused_before_parsing() {
        let mut p = Parser::new();
        let mut at_limit = FIXTURE.to_string();
        at_limit.push_str(&" ".repeat(MESSAGE_BYTES_MAX - FIXTURE.len()));
        assert!(p.message(at_limit.as_bytes()).is_ok());
        at_limit.push(' ');
        assert_eq!(
            p.message(at_limit.as_bytes()).unwrap_err().to_string(),
            "message of 65537 bytes is longer than the limit of 65536 bytes"
        );
    }

    #[test]
    fn non_utf8_is_refused_with_its_offset() {
        let at = FIXTURE.find("cpL1").unwrap();
        for bad in [&[0xffu8][..], &[0xc3], &[0xed, 0xa0, 0x80], &[0xc0, 0xaf]] {
            let mut message = FIXTURE.as_bytes().to_vec();
            message.splice(at..at, bad.iter().copied());
            assert_eq!(
                Parser::new().message(&message),
                Err(ParseError::Utf8 { offset: at })
            );
        }
    }

    #[test]
    fn huge_numbers_are_refused_or_range_checked() {
        for (from, to) in [
            (r#""i":336829446"#, r#""i":99999999999999999999999"#),
            (r#""i":336829446"#, r#""i":18446744073709551616"#),
            (r#""t":109100866"#, r#""t":1e400"#),
            (r#""E":1705385954300"#, r#""E":-99999999999999999999"#),
        ] {
            let mut p = Parser::new();
            let got = p.message(fixture_with(from, to).as_bytes());
            assert!(got.is_err(), "{to}: {got:?}");
        }
        // The largest id is an id.
        let max = fixture_with(r#""i":336829446"#, r#""i":18446744073709551615"#);
        let mut p = Parser::new();
        let Ok(Event::OrderTradeUpdate(o)) = p.message(max.as_bytes()) else {
            panic!("parses");
        };
        assert_eq!(o.order_id, u64::MAX);
    }

    /// The tape is walked without recursion: nesting as deep as the size cap
    /// allows parses (and is ignored) on a thread with a small stack.
    #[test]
    fn deep_nesting_costs_no_stack() {
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let depth = (MESSAGE_BYTES_MAX - FIXTURE.len()) / 2 - 16;
                let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                let message = fixture_with(r#""m":false"#, &format!(r#""m":false,"zz":{deep}"#));
                assert_eq!(fill_of(&message), Ok(Some(fixture_fill())));
                let message = fixture_with(r#""m":false"#, &format!(r#""m":{deep}"#));
                assert_eq!(fill_of(&message), Ok(Some(fixture_fill())));
                assert_eq!(parse_error(&deep), "expected a JSON object, got an array");
                let open = "{\"a\":".repeat(depth / 3);
                assert!(parse_error(&open).starts_with("malformed JSON"));
                let unclosed = "[".repeat(MESSAGE_BYTES_MAX);
                assert!(parse_error(&unclosed).starts_with("malformed JSON"));
                let mut p = Parser::new();
                assert!(p.user_trades(deep.as_bytes()).is_err());
            })
            .expect("spawns")
            .join()
            .expect("no stack overflow");
    }

    #[test]
    fn quoted_values_are_cut_and_escaped() {
        let long = "9".repeat(200);
        let e = parse_error(&fixture_with(
            r#""S":"BUY""#,
            &format!(r#""S":"{long}\n\u001b[2J""#),
        ));
        assert_eq!(
            e,
            format!(
                "field `o.S` must be BUY or SELL, got \"{}...\"",
                "9".repeat(64)
            )
        );
        let e = parse_error(&fixture_with(r#""S":"BUY""#, r#""S":"\u001b[2J\r\n\"é""#));
        assert_eq!(
            e,
            r#"field `o.S` must be BUY or SELL, got "\u{1b}[2J\r\n\"\u{e9}""#
        );
    }

    #[test]
    fn the_parser_is_reused_across_messages_and_bodies() {
        let mut p = Parser::new();
        for _ in 0..3 {
            assert!(p.message(ACCOUNT.as_bytes()).is_ok());
            assert_eq!(
                p.message(FIXTURE.as_bytes()),
                Ok(Event::OrderTradeUpdate(fixture_event()))
            );
            assert!(p.message(b"[").is_err());
            assert_eq!(
                p.user_trades(format!("[{REST_TRADE}]").as_bytes())
                    .map(|t| t.len()),
                Ok(1)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            crate::fuzzing::binance_stream(&bytes);
        }

        /// The fixture with values swapped for others of any JSON type.
        #[test]
        fn the_fixture_with_any_values_never_panics(
            swaps in proptest::collection::vec(
                (0usize..40, proptest::sample::select(vec![
                    "null", "true", "0", "-1", "1.5", "1e400", "18446744073709551616",
                    "\"\"", "\"0\"", "\"-0.001\"", "\"0.0405\"", "\"TRADE\"", "\"SELL\"",
                    "\"autoclose-1\"", "\"1e3\"", "[]", "{}", "[[[[1]]]]", "{\"e\":1}",
                    "\"99999999999999999999999999\"", "\"42088.1\"",
                ])),
                0..6,
            ),
        ) {
            let mut message = FIXTURE.to_string();
            for (at, value) in swaps {
                // The `at`-th value: after a `:`, up to the next `,` or `}`.
                let Some((colon, _)) = message.match_indices(':').nth(at) else { continue };
                let rest = &message[colon + 1..];
                let end = if rest.starts_with('{') { 1 } else {
                    rest.find([',', '}']).unwrap_or(rest.len())
                };
                message.replace_range(colon + 1..colon + 1 + end, value);
            }
            crate::fuzzing::binance_stream(message.as_bytes());
            crate::fuzzing::binance_stream(format!("[{}]", message.replace("\"t\":", "\"id\":")).as_bytes());
        }
    }
}
