//! Binance USD-M WebSocket API messages: signed requests (`order.place`,
//! `order.status`, `session.logon`) and the replies to them.
//!
//! Owns the wire form of one request and the reading of one reply. A request's
//! parameters are collected once, sorted once, signed in that order and sent in
//! that order, so what is signed is exactly what is sent (`INT` parameters as
//! JSON integers, `DECIMAL` ones as strings: docs/BINANCE-PROTOCOL.md, "WebSocket
//! API"). Quantities and prices are `lots × lot_size` and `ticks × tick_size` in
//! `rust_decimal`, never `f64`, and never in exponent notation. Encoding writes
//! into buffers the caller reuses, so a request allocates nothing once they
//! have grown to a request's size.
//!
//! Replies are outside input: capped in size and nesting before simd-json sees
//! them, every field checked for its type and range, duplicate keys refused;
//! anything else is a `ReplyError` naming the field, never a panic.
//!
//! Never does: I/O, clocks (the caller passes `timestamp_ms`), retries, or
//! deciding what a venue error means for an order (`errors`, `limits`).

use std::fmt;

use fillcast_engine::event::{FollowerOrder, OrderType};
use fillcast_engine::model::{Side, SymbolSpec};
use fillcast_engine::units::{Lots, Ticks};
use rust_decimal::Decimal;
use simd_json::base::{TypedValue as _, ValueAsScalar as _, ValueIntoString as _};
use simd_json::tape::{Object, Value};
use simd_json::{Tape, ValueType};
use thiserror::Error;

use super::sign::{self, Signer};

/// The largest reply parsed; a larger one is refused before parsing. Order and
/// session replies are under 1 KiB; the cap bounds the work a hostile or broken
/// peer can cause.
pub const REPLY_BYTES_MAX: usize = 64 * 1024;

/// The deepest nesting of objects and arrays accepted in a reply (the documented
/// replies nest 3 deep: `rateLimits[]` objects, `error.data`).
pub const REPLY_DEPTH_MAX: usize = 16;

/// The most `rateLimits` entries kept from one reply (the documentation shows up
/// to 3); more is an error rather than a silent truncation.
pub const RATE_LIMITS_MAX: usize = 8;

/// The largest request id: Binance takes a signed 64-bit integer id (its
/// WebSocket API pages: "64-bit signed integer; alphanumeric string, max length
/// 36; null").
pub const REQUEST_ID_MAX: u64 = i64::MAX as u64;

/// The longest symbol accepted (Binance's are 6 to about 20 characters).
pub const SYMBOL_LEN_MAX: usize = 32;

/// The longest API key accepted (Binance's are 64 characters).
pub const API_KEY_LEN_MAX: usize = 128;

/// The longest client order id the venue accepts (`^[\.A-Z\:/a-z0-9_-]{1,36}$`).
pub const CLIENT_ORDER_ID_LEN_MAX: usize = 36;

/// How a request proves which account sends it.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// `apiKey` and `signature` in the request, signed with the account's key.
    Signed {
        api_key: &'a str,
        signer: &'a Signer,
    },
    /// The connection is logged on (`session.logon`): the venue knows the key,
    /// so the request carries neither, and costs no signature.
    Session,
}

/// What every request carries besides its method's own parameters.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// Echoed in the reply's `id`: how the gateway matches replies to requests.
    /// At most `REQUEST_ID_MAX`.
    pub id: u64,
    /// Which account's key signs, or none on a logged-on connection.
    pub auth: Auth<'a>,
    /// The caller's clock corrected by its offset to the venue's (a `-1021`
    /// reply means the offset is stale), in Unix milliseconds.
    pub timestamp_ms: u64,
    /// How long after `timestamp_ms` the venue may still act on the request.
    pub recv_window_ms: u64,
}

/// `newOrderRespType`: `Ack` answers as soon as the order is accepted, `Result`
/// after it has matched (an IOC order's final state, in one reply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RespType {
    #[default]
    Ack,
    Result,
}

/// One follower order as `order.place` sends it: the engine's integer order
/// with the symbol's steps, so that the decimal strings are computed here,
/// exactly.
#[derive(Clone, Copy, Debug)]
pub struct PlaceOrder<'a> {
    pub symbol: &'a str,
    pub side: Side,
    /// `LimitIoc` is sent as `LIMIT` with `timeInForce=IOC`; `Market` as `MARKET`.
    pub order_type: OrderType,
    /// > 0; sent as `qty × lot_size`.
    pub qty: Lots,
    pub lot_size: Decimal,
    /// For `LimitIoc`, > 0; sent as `limit × tick_size`. Unused for `Market`.
    pub limit: Ticks,
    pub tick_size: Decimal,
    /// The engine's decision id: `newClientOrderId` is
    /// `fillcast_engine::ids::client_order_id(order_id)`, so that after a crash
    /// `order.status` finds the order by the id the journal holds.
    pub order_id: u64,
    /// Sent as `reduceOnly=true`, so that the order can only shrink a position
    /// (and is exempt from the minimum notional, `-4164`). Left out otherwise.
    pub reduce_only: bool,
    pub resp_type: RespType,
}

impl<'a> PlaceOrder<'a> {
    /// The `order.place` for an engine order in `spec`'s symbol.
    pub fn of(order: &FollowerOrder, spec: &'a SymbolSpec, resp_type: RespType) -> PlaceOrder<'a> {
        PlaceOrder {
            symbol: &spec.name,
            side: order.side,
            order_type: order.order_type,
            qty: order.qty,
            lot_size: spec.lot_size,
            limit: order.limit,
            tick_size: spec.tick_size,
            order_id: order.id,
            reduce_only: order.reduce_only,
            resp_type,
        }
    }
}

/// Why a request could not be encoded: the field and what it must be. Values are
/// not quoted, so that an API key never reaches a log through an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("request id {id} is above {REQUEST_ID_MAX}: Binance takes a signed 64-bit id")]
    IdOutOfRange { id: u64 },
    #[error("`{field}` is invalid: expected {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
    #[error("session.logon needs an Ed25519 key with apiKey and signature: Binance refuses HMAC keys there")]
    LogonNeedsEd25519,
}

/// Encodes requests. Holds the signing payload's buffer, reused by every
/// request, so that one encoder per connection allocates only while its
/// buffers grow to a request's size.
#[derive(Debug)]
pub struct Encoder {
    payload: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// One per connection, made at start-up: its buffer is then sized for a
    /// request already.
    pub fn new() -> Encoder {
        Encoder {
            payload: Vec::with_capacity(REQUEST_BYTES_TYPICAL),
        }
    }

    /// Writes `order.place` for `order` into `out` (cleared first). On an error
    /// `out` is left as it was.
    pub fn order_place(
        &mut self,
        out: &mut Vec<u8>,
        env: &Envelope<'_>,
        order: &PlaceOrder<'_>,
    ) -> Result<(), EncodeError> {
        check_symbol(order.symbol)?;
        let quantity = steps_to_decimal(order.qty.0, order.lot_size, "quantity", "lot_size")?;
        let client_order_id = client_order_id(order.order_id);
        let client_order_id = std::str::from_utf8(&client_order_id).expect("hex is ASCII");
        debug_assert!(is_valid_client_order_id(client_order_id));
        let mut params = Params::new();
        params.push("symbol", Param::Str(order.symbol));
        params.push(
            "side",
            Param::Str(match order.side {
                Side::Buy => "BUY",
                Side::Sell => "SELL",
            }),
        );
        params.push("quantity", Param::Dec(quantity));
        params.push("newClientOrderId", Param::Str(client_order_id));
        params.push(
            "newOrderRespType",
            Param::Str(match order.resp_type {
                RespType::Ack => "ACK",
                RespType::Result => "RESULT",
            }),
        );
        match order.order_type {
            OrderType::LimitIoc => {
                let price = steps_to_decimal(order.limit.0, order.tick_size, "price", "tick_size")?;
                params.push("type", Param::Str("LIMIT"));
                params.push("timeInForce", Param::Str("IOC"));
                params.push("price", Param::Dec(price));
            }
            OrderType::Market => params.push("type", Param::Str("MARKET")),
        }
        if order.reduce_only {
            params.push("reduceOnly", Param::Str("true"));
        }
        self.finish(out, env, "order.place", params)
    }

    /// Writes `order.status` for the order whose client id is
    /// `orig_client_order_id` (after a restart, or when a reply was lost or said
    /// the outcome is unknown) into `out` (cleared first).
    pub fn order_status(
        &mut self,
        out: &mut Vec<u8>,
        env: &Envelope<'_>,
        symbol: &str,
        orig_client_order_id: &str,
    ) -> Result<(), EncodeError> {
        check_symbol(symbol)?;
        if !is_valid_client_order_id(orig_client_order_id) {
            return Err(EncodeError::Invalid {
                field: "origClientOrderId",
                expected: "1 to 36 characters of A-Z a-z 0-9 . : / _ -",
            });
        }
        let mut params = Params::new();
        params.push("symbol", Param::Str(symbol));
        params.push("origClientOrderId", Param::Str(orig_client_order_id));
        self.finish(out, env, "order.status", params)
    }

    /// Writes `session.logon` into `out` (cleared first): after its reply, the
    /// connection's requests may use `Auth::Session`. Binance accepts it for
    /// Ed25519 keys only, so `env.auth` must be `Signed` with one.
    pub fn session_logon(
        &mut self,
        out: &mut Vec<u8>,
        env: &Envelope<'_>,
    ) -> Result<(), EncodeError> {
        match env.auth {
            Auth::Signed {
                signer: Signer::Ed25519(_),
                ..
            } => self.finish(out, env, "session.logon", Params::new()),
            _ => Err(EncodeError::LogonNeedsEd25519),
        }
    }

    /// Adds the envelope's parameters, sorts, signs and writes the request.
    fn finish<'a>(
        &mut self,
        out: &mut Vec<u8>,
        env: &Envelope<'a>,
        method: &str,
        mut params: Params<'a>,
    ) -> Result<(), EncodeError> {
        if env.id > REQUEST_ID_MAX {
            return Err(EncodeError::IdOutOfRange { id: env.id });
        }
        if env.timestamp_ms == 0 {
            return Err(EncodeError::Invalid {
                field: "timestamp",
                expected: "Unix milliseconds, above 0",
            });
        }
        if env.recv_window_ms == 0 {
            return Err(EncodeError::Invalid {
                field: "recvWindow",
                expected: "milliseconds, above 0",
            });
        }
        params.push("timestamp", Param::Int(env.timestamp_ms));
        params.push("recvWindow", Param::Int(env.recv_window_ms));
        let signer = match env.auth {
            Auth::Signed { api_key, signer } => {
                check_api_key(api_key)?;
                params.push("apiKey", Param::Str(api_key));
                Some(signer)
            }
            Auth::Session => None,
        };
        let params = params.as_mut_slice();
        let signature = match signer {
            Some(signer) => {
                sign::write_payload(params, &mut self.payload);
                Some(signer.sign(&self.payload))
            }
            None => {
                params.sort_unstable_by(|a, b| a.0.cmp(b.0));
                None
            }
        };
        out.clear();
        out.extend_from_slice(b"{\"id\":");
        sign::write_display(out, env.id);
        out.extend_from_slice(b",\"method\":\"");
        out.extend_from_slice(method.as_bytes());
        out.extend_from_slice(b"\",\"params\":{");
        for (i, (name, value)) in params.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            value.write_json(out);
        }
        if let Some(signature) = signature {
            out.extend_from_slice(b",\"signature\":\"");
            out.extend_from_slice(signature.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"}}");
        Ok(())
    }
}

/// Whether `s` is a client order id the venue accepts
/// (`^[\.A-Z\:/a-z0-9_-]{1,36}$`): checked before asking about an id that came
/// from outside the engine (a journal, an operator), since the venue would
/// reject it with `-4015` and the JSON would have to escape it.
pub fn is_valid_client_order_id(s: &str) -> bool {
    (1..=CLIENT_ORDER_ID_LEN_MAX).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

/// A reply's `id`: ours are integers; the venue sends `null` when it could not
/// read the request (or revoked the key); text is what other clients (and the
/// documentation's samples) use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyId<'a> {
    Num(u64),
    Text(&'a str),
    Null,
}

/// One reply, borrowing its strings from the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reply<'a> {
    pub id: ReplyId<'a>,
    /// HTTP-like: 200 with a result; 4xx (the request's fault, 429 rate
    /// limited, 418 banned) or 5xx (the outcome is unknown) with an error.
    pub status: u16,
    pub outcome: Outcome<'a>,
    /// The account's and the IP's usage after this request, when the venue
    /// reports it: what the gateway's own limiter is checked against.
    pub rate_limits: RateLimits<'a>,
}

/// What a reply says happened.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome<'a> {
    /// `order.place` or `order.status`: the order as the venue has it.
    Order(OrderResult<'a>),
    /// A result without `orderId` (`session.logon`, `session.status`): the
    /// request worked. `serverTime` when given, to correct the clock offset. A
    /// gateway that sent an order request and gets this has a protocol error.
    Session {
        server_time_ms: Option<u64>,
    },
    Error(ApiError<'a>),
}

/// The fields of an order result the gateway acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderResult<'a> {
    pub order_id: u64,
    pub symbol: &'a str,
    /// The engine's client order id (`ids::parse_client_order_id` gives the
    /// decision id back).
    pub client_order_id: &'a str,
    pub status: OrderStatus,
    pub executed_qty: Decimal,
    /// Average fill price; 0 while nothing has filled.
    pub avg_price: Decimal,
    /// The limit price; 0 for a market order.
    pub price: Decimal,
    pub update_time_ms: u64,
}

/// An order's status at the venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Expired,
    /// Expired by self-trade prevention.
    ExpiredInMatch,
    Rejected,
}

impl OrderStatus {
    /// Whether the venue is done with the order: an IOC order is, after its
    /// first reply with `RespType::Result`.
    pub fn is_final(self) -> bool {
        !matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
}

/// A reply's `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiError<'a> {
    /// The venue's code (`-2019`, `-1021`, …), mapped to an action by `errors`.
    pub code: i32,
    pub msg: &'a str,
    /// `error.data.retryAfter`: Unix milliseconds when a ban (418) or a limit
    /// (429) lifts, when the venue says.
    pub retry_after_ms: Option<u64>,
}

/// One `rateLimits` entry: `count` used of `limit` per `interval_num` × `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit<'a> {
    pub kind: RateLimitKind<'a>,
    pub interval: Interval,
    pub interval_num: u32,
    pub limit: u64,
    pub count: u64,
}

/// `rateLimitType`. A kind this code does not know is kept by name rather than
/// refused: a new kind must not make every reply unreadable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitKind<'a> {
    RequestWeight,
    Orders,
    Other(&'a str),
}

/// A rate limit's window unit (`interval`); the window is `intervalNum` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Second,
    Minute,
    Hour,
    Day,
}

/// A reply's `rateLimits`, at most `RATE_LIMITS_MAX`, without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits<'a> {
    items: [RateLimit<'a>; RATE_LIMITS_MAX],
    len: usize,
}

impl<'a> RateLimits<'a> {
    /// The entries in the venue's order (empty when the reply had none).
    pub fn as_slice(&self) -> &[RateLimit<'a>] {
        &self.items[..self.len]
    }
}

/// Why a reply could not be read: the field (as a path: `result.executedQty`,
/// `rateLimits[].count`) and what was expected.
#[derive(Debug, Error)]
pub enum ReplyError {
    #[error("reply is {len} bytes: more than the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    #[error("reply nests objects or arrays more than {max} deep")]
    TooDeep { max: usize },
    #[error("reply is not valid JSON: {0}")]
    Json(#[source] simd_json::Error),
    #[error("reply `{field}` is {got}: expected {expected}")]
    WrongType {
        field: &'static str,
        got: &'static str,
        expected: &'static str,
    },
    #[error("reply has no `{field}`")]
    Missing { field: &'static str },
    #[error("reply has `{field}` twice")]
    Duplicate { field: &'static str },
    #[error("reply `{field}` is out of range: expected {expected}")]
    OutOfRange {
        field: &'static str,
        expected: &'static str,
    },
    #[error("reply `{field}` is not a decimal: expected digits with an optional fraction (at most 28 significant digits), as a string")]
    BadDecimal { field: &'static str },
    #[error("reply `{field}` is {value:?}: expected one of {expected}")]
    UnknownValue {
        field: &'static str,
        /// The venue's text, cut to `UNKNOWN_VALUE_LEN_MAX` bytes.
        value: String,
        expected: &'static str,
    },
    #[error("reply has more than {max} `rateLimits` entries")]
    TooManyRateLimits { max: usize },
    #[error("reply has status {status} with {has}: expected `result` with a 2xx status, `error` with any other")]
    Inconsistent { status: u16, has: &'static str },
}

/// Parses replies. Holds simd-json's scratch buffers and tape, reused by every
/// reply, so that one parser per connection allocates only while they grow.
pub struct ReplyParser {
    buffers: simd_json::Buffers,
    tape: Tape<'static>,
}

impl Default for ReplyParser {
    fn default() -> ReplyParser {
        ReplyParser::new()
    }
}

impl fmt::Debug for ReplyParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyParser")
    }
}

impl ReplyParser {
    /// One per connection, made at start-up, like `Encoder::new`.
    pub fn new() -> ReplyParser {
        ReplyParser {
            buffers: simd_json::Buffers::new(REQUEST_BYTES_TYPICAL * 2),
            tape: Tape(Vec::new()),
        }
    }

    /// Parses one reply. `bytes` is mutable because simd-json unescapes strings
    /// in place: pass the frame's own buffer (or a copy), which the reply's
    /// strings then borrow. A reply over `REPLY_BYTES_MAX` is refused unread.
    pub fn parse<'a>(&mut self, bytes: &'a mut [u8]) -> Result<Reply<'a>, ReplyError> {
        if bytes.len() > REPLY_BYTES_MAX {
            return Err(ReplyError::TooLarge {
                len: bytes.len(),
                max: REPLY_BYTES_MAX,
            });
        }
        check_depth(bytes)?;
        let mut tape: Tape<'a> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let reply = match simd_json::fill_tape(bytes, &mut self.buffers, &mut tape) {
            Ok(()) => read_reply(tape.as_value()),
            Err(e) => Err(ReplyError::Json(e)),
        };
        self.tape = tape.reset();
        reply
    }
}

/// A request's usual size: the buffers' initial capacity.
const REQUEST_BYTES_TYPICAL: usize = 512;

/// `order.place` has the most parameters: 12 with a limit price and reduce-only.
const PARAMS_MAX: usize = 12;

/// The venue's text quoted in `ReplyError::UnknownValue`, at most.
const UNKNOWN_VALUE_LEN_MAX: usize = 32;

/// The longest decimal string read: 28 significant digits, a point, and
/// leading zeros of a small fraction.
const DECIMAL_TEXT_LEN_MAX: usize = 40;

/// One parameter's value: how it is signed (`Display`) and sent (`write_json`).
#[derive(Clone, Copy, Debug)]
enum Param<'a> {
    /// A JSON string: names, enums, ids.
    Str(&'a str),
    /// `INT`: a JSON integer.
    Int(u64),
    /// `DECIMAL`: a JSON string in plain notation.
    Dec(Decimal),
}

impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Str(s) => f.write_str(s),
            Param::Int(n) => fmt::Display::fmt(n, f),
            Param::Dec(d) => fmt::Display::fmt(d, f),
        }
    }
}

impl Param<'_> {
    /// Strings need no escaping: every one is checked to be printable ASCII
    /// without `"` or `\` (symbols, API keys, client ids) or is our own constant.
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Param::Int(n) => sign::write_display(out, n),
            Param::Str(_) | Param::Dec(_) => {
                out.push(b'"');
                sign::write_display(out, self);
                out.push(b'"');
            }
        }
    }
}

/// A request's parameters on the stack.
struct Params<'a> {
    items: [(&'static str, Param<'a>); PARAMS_MAX],
    len: usize,
}

impl<'a> Params<'a> {
    fn new() -> Params<'a> {
        Params {
            items: [("", Param::Int(0)); PARAMS_MAX],
            len: 0,
        }
    }

    fn push(&mut self, name: &'static str, value: Param<'a>) {
        assert!(self.len < PARAMS_MAX, "more than {PARAMS_MAX} parameters");
        self.items[self.len] = (name, value);
        self.len += 1;
    }

    fn as_mut_slice(&mut self) -> &mut [(&'static str, Param<'a>)] {
        &mut self.items[..self.len]
    }
}

/// `ids::client_order_id` (`fc` and 16 lowercase hex digits) written on the
/// stack: the same text without its `String`. A test pins the two together.
fn client_order_id(order_id: u64) -> [u8; 18] {
    let mut text = *b"fc0000000000000000";
    for (i, digit) in text[2..].iter_mut().enumerate() {
        let nibble = (order_id >> (60 - 4 * i)) & 0xf;
        *digit = sign::HEX_LOWER[nibble as usize];
    }
    text
}

fn check_symbol(symbol: &str) -> Result<(), EncodeError> {
    let ok = (1..=SYMBOL_LEN_MAX).contains(&symbol.len())
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(EncodeError::Invalid {
            field: "symbol",
            expected: "1 to 32 characters of A-Z 0-9 _",
        })
    }
}

fn check_api_key(api_key: &str) -> Result<(), EncodeError> {
    let ok = (1..=API_KEY_LEN_MAX).contains(&api_key.len())
        && api_key.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(EncodeError::Invalid {
            field: "apiKey",
            expected: "1 to 128 ASCII letters and digits",
        })
    }
}

/// `steps × step`, exact and normalized (`0.100` → `0.1`, `42088.0` → `42088`):
/// `Decimal`'s `Display` never uses exponent notation.
fn steps_to_decimal(
    steps: i64,
    step: Decimal,
    field: &'static str,
    step_field: &'static str,
) -> Result<Decimal, EncodeError> {
    if step <= Decimal::ZERO {
        return Err(EncodeError::Invalid {
            field: step_field,
            expected: "a step above 0",
        });
    }
    if steps <= 0 {
        return Err(EncodeError::Invalid {
            field,
            expected: "above 0 steps",
        });
    }
    let value = Decimal::from(steps)
        .checked_mul(step)
        .ok_or(EncodeError::Invalid {
            field,
            expected: "steps × step within the 96-bit decimal range",
        })?
        .normalize();
    debug_assert!(value > Decimal::ZERO);
    Ok(value)
}

/// Refuses nesting deeper than `REPLY_DEPTH_MAX` before simd-json sees it.
fn check_depth(bytes: &[u8]) -> Result<(), ReplyError> {
    if depth_within(bytes, REPLY_DEPTH_MAX) {
        Ok(())
    } else {
        Err(ReplyError::TooDeep {
            max: REPLY_DEPTH_MAX,
        })
    }
}

/// Whether `bytes` nests objects and arrays at most `max` deep (brackets
/// outside strings), checked before a JSON parser sees them: deep nesting is
/// refused without a parser's recursion or tape ever holding it.
pub(crate) fn depth_within(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn read_reply<'i>(v: Value<'_, 'i>) -> Result<Reply<'i>, ReplyError> {
    let [id, status, result, error, rate_limits] = fields(
        object(v, "reply")?,
        [
            ("id", "id"),
            ("status", "status"),
            ("result", "result"),
            ("error", "error"),
            ("rateLimits", "rateLimits"),
        ],
    )?;
    let id = match required(id, "id")? {
        v if v.value_type() == ValueType::Null => ReplyId::Null,
        v if v.value_type() == ValueType::String => ReplyId::Text(string(v, "id")?),
        v => ReplyId::Num(unsigned(v, "id")?),
    };
    let status = unsigned(required(status, "status")?, "status")?;
    let status = match u16::try_from(status) {
        Ok(s) if (100..=599).contains(&s) => s,
        _ => {
            return Err(ReplyError::OutOfRange {
                field: "status",
                expected: "an HTTP status from 100 to 599",
            })
        }
    };
    let ok = (200..300).contains(&status);
    let outcome = match (result, error) {
        (Some(r), None) if ok => read_result(r)?,
        (None, Some(e)) if !ok => Outcome::Error(read_error(e)?),
        (Some(_), Some(_)) => {
            return Err(ReplyError::Inconsistent {
                status,
                has: "both `result` and `error`",
            })
        }
        (Some(_), None) => {
            return Err(ReplyError::Inconsistent {
                status,
                has: "`result`",
            })
        }
        (None, Some(_)) => {
            return Err(ReplyError::Inconsistent {
                status,
                has: "`error`",
            })
        }
        (None, None) => {
            return Err(ReplyError::Missing {
                field: "result or error",
            })
        }
    };
    let rate_limits = match rate_limits {
        Some(v) => read_rate_limits(v)?,
        None => RateLimits {
            items: [RATE_LIMIT_UNUSED; RATE_LIMITS_MAX],
            len: 0,
        },
    };
    Ok(Reply {
        id,
        status,
        outcome,
        rate_limits,
    })
}

fn read_result<'i>(v: Value<'_, 'i>) -> Result<Outcome<'i>, ReplyError> {
    let [order_id, symbol, client_order_id, status, price, avg_price, executed_qty, update_time, server_time] =
        fields(
            object(v, "result")?,
            [
                ("orderId", "result.orderId"),
                ("symbol", "result.symbol"),
                ("clientOrderId", "result.clientOrderId"),
                ("status", "result.status"),
                ("price", "result.price"),
                ("avgPrice", "result.avgPrice"),
                ("executedQty", "result.executedQty"),
                ("updateTime", "result.updateTime"),
                ("serverTime", "result.serverTime"),
            ],
        )?;
    let Some(order_id) = order_id else {
        let server_time_ms = match server_time {
            Some(v) => Some(unsigned(v, "result.serverTime")?),
            None => None,
        };
        return Ok(Outcome::Session { server_time_ms });
    };
    let status_text = string(required(status, "result.status")?, "result.status")?;
    let status = match status_text {
        "NEW" => OrderStatus::New,
        "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
        "FILLED" => OrderStatus::Filled,
        "CANCELED" => OrderStatus::Canceled,
        "EXPIRED" => OrderStatus::Expired,
        "EXPIRED_IN_MATCH" => OrderStatus::ExpiredInMatch,
        "REJECTED" => OrderStatus::Rejected,
        other => {
            return Err(unknown_value(
                "result.status",
                other,
                "NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, EXPIRED_IN_MATCH, REJECTED",
            ))
        }
    };
    Ok(Outcome::Order(OrderResult {
        order_id: unsigned(order_id, "result.orderId")?,
        symbol: string(required(symbol, "result.symbol")?, "result.symbol")?,
        client_order_id: string(
            required(client_order_id, "result.clientOrderId")?,
            "result.clientOrderId",
        )?,
        status,
        executed_qty: decimal(
            required(executed_qty, "result.executedQty")?,
            "result.executedQty",
        )?,
        avg_price: decimal(required(avg_price, "result.avgPrice")?, "result.avgPrice")?,
        price: decimal(required(price, "result.price")?, "result.price")?,
        update_time_ms: unsigned(
            required(update_time, "result.updateTime")?,
            "result.updateTime",
        )?,
    }))
}

fn read_error<'i>(v: Value<'_, 'i>) -> Result<ApiError<'i>, ReplyError> {
    let [code, msg, data] = fields(
        object(v, "error")?,
        [
            ("code", "error.code"),
            ("msg", "error.msg"),
            ("data", "error.data"),
        ],
    )?;
    let code_value = required(code, "error.code")?;
    let code = code_value
        .as_i64()
        .and_then(|c| i32::try_from(c).ok())
        .ok_or_else(|| number_error(code_value, "error.code", "an integer within ±2^31"))?;
    let msg = string(required(msg, "error.msg")?, "error.msg")?;
    let retry_after_ms = match data {
        Some(d) if d.value_type() != ValueType::Null => {
            let [retry_after] = fields(
                object(d, "error.data")?,
                [("retryAfter", "error.data.retryAfter")],
            )?;
            match retry_after {
                Some(r) => Some(unsigned(r, "error.data.retryAfter")?),
                None => None,
            }
        }
        _ => None,
    };
    Ok(ApiError {
        code,
        msg,
        retry_after_ms,
    })
}

fn read_rate_limits<'i>(v: Value<'_, 'i>) -> Result<RateLimits<'i>, ReplyError> {
    let Some(array) = v.as_array() else {
        return Err(wrong_type(v, "rateLimits", "an array"));
    };
    let mut limits = RateLimits {
        items: [RATE_LIMIT_UNUSED; RATE_LIMITS_MAX],
        len: 0,
    };
    for entry in array.iter() {
        if limits.len == RATE_LIMITS_MAX {
            return Err(ReplyError::TooManyRateLimits {
                max: RATE_LIMITS_MAX,
            });
        }
        let [kind, interval, interval_num, limit, count] = fields(
            object(entry, "rateLimits[]")?,
            [
                ("rateLimitType", "rateLimits[].rateLimitType"),
                ("interval", "rateLimits[].interval"),
                ("intervalNum", "rateLimits[].intervalNum"),
                ("limit", "rateLimits[].limit"),
                ("count", "rateLimits[].count"),
            ],
        )?;
        let kind = match string(
            required(kind, "rateLimits[].rateLimitType")?,
            "rateLimits[].rateLimitType",
        )? {
            "REQUEST_WEIGHT" => RateLimitKind::RequestWeight,
            "ORDERS" => RateLimitKind::Orders,
            other => RateLimitKind::Other(other),
        };
        let interval = match string(
            required(interval, "rateLimits[].interval")?,
            "rateLimits[].interval",
        )? {
            "SECOND" => Interval::Second,
            "MINUTE" => Interval::Minute,
            "HOUR" => Interval::Hour,
            "DAY" => Interval::Day,
            other => {
                return Err(unknown_value(
                    "rateLimits[].interval",
                    other,
                    "SECOND, MINUTE, HOUR, DAY",
                ))
            }
        };
        let interval_num = unsigned(
            required(interval_num, "rateLimits[].intervalNum")?,
            "rateLimits[].intervalNum",
        )?;
        let interval_num = u32::try_from(interval_num).map_err(|_| ReplyError::OutOfRange {
            field: "rateLimits[].intervalNum",
            expected: "an integer below 2^32",
        })?;
        limits.items[limits.len] = RateLimit {
            kind,
            interval,
            interval_num,
            limit: unsigned(required(limit, "rateLimits[].limit")?, "rateLimits[].limit")?,
            count: unsigned(required(count, "rateLimits[].count")?, "rateLimits[].count")?,
        };
        limits.len += 1;
    }
    Ok(limits)
}

/// Fills `RateLimits`' unused slots.
const RATE_LIMIT_UNUSED: RateLimit<'static> = RateLimit {
    kind: RateLimitKind::Other(""),
    interval: Interval::Second,
    interval_num: 0,
    limit: 0,
    count: 0,
};

/// The values of `keys` (name, path for errors) in `obj`, each at most once;
/// other keys are skipped (the venue adds fields).
fn fields<'t, 'i, const N: usize>(
    obj: Object<'t, 'i>,
    keys: [(&'static str, &'static str); N],
) -> Result<[Option<Value<'t, 'i>>; N], ReplyError> {
    let mut values = [None; N];
    for (key, value) in obj.iter() {
        if let Some(i) = keys.iter().position(|(name, _)| *name == key) {
            if values[i].replace(value).is_some() {
                return Err(ReplyError::Duplicate { field: keys[i].1 });
            }
        }
    }
    Ok(values)
}

fn object<'t, 'i>(v: Value<'t, 'i>, field: &'static str) -> Result<Object<'t, 'i>, ReplyError> {
    v.as_object()
        .ok_or_else(|| wrong_type(v, field, "an object"))
}

fn required<'t, 'i>(
    v: Option<Value<'t, 'i>>,
    field: &'static str,
) -> Result<Value<'t, 'i>, ReplyError> {
    v.ok_or(ReplyError::Missing { field })
}

fn string<'i>(v: Value<'_, 'i>, field: &'static str) -> Result<&'i str, ReplyError> {
    v.into_string()
        .ok_or_else(|| wrong_type(v, field, "a string"))
}

fn unsigned(v: Value<'_, '_>, field: &'static str) -> Result<u64, ReplyError> {
    v.as_u64()
        .ok_or_else(|| number_error(v, field, "an integer from 0 to 2^64-1"))
}

/// A decimal string (`"0.100"`), read exactly. Stricter than `Decimal`'s own
/// parser, which also takes `1_000`, signs and exponents: none of those is a
/// quantity or a price the venue sends.
fn decimal(v: Value<'_, '_>, field: &'static str) -> Result<Decimal, ReplyError> {
    let text = string(v, field)?;
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed =
        text.len() <= DECIMAL_TEXT_LEN_MAX && digits(whole) && fraction.is_none_or(digits);
    if !well_formed {
        return Err(ReplyError::BadDecimal { field });
    }
    Decimal::from_str_exact(text).map_err(|_| ReplyError::BadDecimal { field })
}

/// A number of the wrong kind or range is `OutOfRange`; anything else `WrongType`.
fn number_error(v: Value<'_, '_>, field: &'static str, expected: &'static str) -> ReplyError {
    match v.value_type() {
        ValueType::I64 | ValueType::U64 | ValueType::F64 => {
            ReplyError::OutOfRange { field, expected }
        }
        _ => wrong_type(v, field, expected),
    }
}

fn wrong_type(v: Value<'_, '_>, field: &'static str, expected: &'static str) -> ReplyError {
    let got = match v.value_type() {
        ValueType::Null => "null",
        ValueType::Bool => "a boolean",
        ValueType::String => "a string",
        ValueType::Array => "an array",
        ValueType::Object => "an object",
        _ => "a number",
    };
    ReplyError::WrongType {
        field,
        got,
        expected,
    }
}

fn unknown_value(field: &'static str, value: &str, expected: &'static str) -> ReplyError {
    let mut end = value.len().min(UNKNOWN_VALUE_LEN_MAX);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    ReplyError::UnknownValue {
        field,
        value: value[..end].to_owned(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::sign::{Ed25519Key, HmacKey};
    use fillcast_engine::ids;
    use fillcast_engine::model::{SymbolIdx, VenueIdx};
    use fillcast_engine::units::Money;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;
    use simd_json::prelude::*;
    use simd_json::BorrowedValue;

    // docs/BINANCE-PROTOCOL.md, "Signing": Spot's WebSocket API example key pair.
    const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    // RFC 8032 section 7.1, TEST 1.
    const ED_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    const FIXTURE_REQUEST: &str =
        include_str!("../../tests/data/binance/binance_usdm_ws_order_place_request.json");
    const FIXTURE_RESPONSE: &str =
        include_str!("../../tests/data/binance/binance_usdm_ws_order_place_response.json");
    const FIXTURE_ERROR: &str =
        include_str!("../../tests/data/binance/binance_usdm_ws_error_response.json");

    // Shapes from docs/BINANCE-PROTOCOL.md: a 418 with `data.retryAfter` (Spot's),
    // a revoked key (`id` null), a session.logon result.
    const BANNED: &str = r#"{"id":3,"status":418,"error":{"code":-1003,"msg":"Way too much request weight used; IP banned until 1659146400000.","data":{"serverTime":1659142907531,"retryAfter":1659146400000}}}"#;
    const REVOKED: &str = r#"{"id":null,"status":401,"error":{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}}"#;
    const LOGON: &str = r#"{"id":1,"status":200,"result":{"apiKey":"vmPU","authorizedSince":1649729878532,"connectedSince":1649729873021,"returnRateLimits":false,"serverTime":1649729878630},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":2400,"count":2}]}"#;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hmac() -> Signer {
        Signer::hmac(SECRET.as_bytes()).unwrap()
    }

    fn ed25519() -> Signer {
        Signer::Ed25519(Ed25519Key::from_bytes(&unhex(ED_SEED)).unwrap())
    }

    fn env(id: u64, signer: &Signer) -> Envelope<'_> {
        Envelope {
            id,
            auth: Auth::Signed {
                api_key: API_KEY,
                signer,
            },
            timestamp_ms: 1645423376532,
            recv_window_ms: 100,
        }
    }

    fn limit_sell() -> PlaceOrder<'static> {
        PlaceOrder {
            symbol: "BTCUSDT",
            side: Side::Sell,
            order_type: OrderType::LimitIoc,
            qty: Lots(1000),
            lot_size: dec!(0.00001),
            limit: Ticks(520000),
            tick_size: dec!(0.1),
            order_id: 42,
            reduce_only: true,
            resp_type: RespType::Ack,
        }
    }

    fn place(env: &Envelope<'_>, order: &PlaceOrder<'_>) -> Result<String, EncodeError> {
        let mut out = Vec::new();
        Encoder::new().order_place(&mut out, env, order)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// Reads a request back as the venue would: its params but `signature`,
    /// sorted and joined (independently of `sign::write_payload`), and the
    /// signature it carries.
    fn venue_view(request: &str) -> (BorrowedValue<'static>, String, Option<String>) {
        let mut bytes = request.as_bytes().to_vec();
        let value: BorrowedValue<'static> = simd_json::to_borrowed_value(&mut bytes)
            .unwrap()
            .into_static();
        let params = value.get("params").unwrap().as_object().unwrap();
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| *k != "signature")
            .map(|(k, v)| {
                let text = match v.as_str() {
                    Some(s) => s.to_owned(),
                    None => v.as_u64().expect("a string or an integer").to_string(),
                };
                (k.to_string(), text)
            })
            .collect();
        pairs.sort();
        let payload = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let signature = params
            .get("signature")
            .map(|s| s.as_str().unwrap().to_owned());
        (value, payload, signature)
    }

    fn parse(text: &str) -> Result<Reply<'static>, ReplyError> {
        let bytes: &'static mut [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
        ReplyParser::new().parse(bytes)
    }

    #[test]
    fn order_place_limit_ioc_reduce_only_exact() {
        // The signature is `openssl dgst -sha256 -hmac SECRET` of the sorted payload
        // apiKey=…&newClientOrderId=fc000000000000002a&newOrderRespType=ACK&price=52000
        // &quantity=0.01&recvWindow=100&reduceOnly=true&side=SELL&symbol=BTCUSDT
        // &timeInForce=IOC&timestamp=1645423376532&type=LIMIT.
        let expected = concat!(
            r#"{"id":7,"method":"order.place","params":{"#,
            r#""apiKey":"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A","#,
            r#""newClientOrderId":"fc000000000000002a","newOrderRespType":"ACK","#,
            r#""price":"52000","quantity":"0.01","recvWindow":100,"reduceOnly":"true","#,
            r#""side":"SELL","symbol":"BTCUSDT","timeInForce":"IOC","#,
            r#""timestamp":1645423376532,"type":"LIMIT","#,
            r#""signature":"98b4389b19ef9c36eba12ba05dde5224e8e2f5f06e5bf645f920c58c83505189"}}"#
        );
        let signer = hmac();
        assert_eq!(place(&env(7, &signer), &limit_sell()).unwrap(), expected);
    }

    #[test]
    fn order_place_market_leaves_out_price_tif_and_reduce_only() {
        let signer = hmac();
        let order = PlaceOrder {
            order_type: OrderType::Market,
            side: Side::Buy,
            reduce_only: false,
            resp_type: RespType::Result,
            limit: Ticks(0),
            ..limit_sell()
        };
        let json = place(&env(8, &signer), &order).unwrap();
        let (value, payload, signature) = venue_view(&json);
        let params = value.get("params").unwrap().as_object().unwrap();
        let mut keys: Vec<&str> = params.keys().map(|k| k.as_ref()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "apiKey",
                "newClientOrderId",
                "newOrderRespType",
                "quantity",
                "recvWindow",
                "side",
                "signature",
                "symbol",
                "timestamp",
                "type"
            ]
        );
        assert_eq!(params.get("type").unwrap().as_str(), Some("MARKET"));
        assert_eq!(params.get("side").unwrap().as_str(), Some("BUY"));
        assert_eq!(
            params.get("newOrderRespType").unwrap().as_str(),
            Some("RESULT")
        );
        let expected = HmacKey::new(SECRET.as_bytes())
            .unwrap()
            .sign(payload.as_bytes());
        assert_eq!(signature.as_deref(), Some(expected.as_str()));
    }

    #[test]
    fn sent_params_are_the_signed_params() {
        let (h, e) = (hmac(), ed25519());
        let Signer::Ed25519(ed_key) = &e else {
            unreachable!()
        };
        let public = ed25519_dalek::VerifyingKey::from_bytes(&ed_key.public_key()).unwrap();
        let mut encoder = Encoder::new();
        let mut requests = Vec::new();
        for signer in [&h, &e] {
            let env = env(11, signer);
            let mut out = Vec::new();
            encoder.order_place(&mut out, &env, &limit_sell()).unwrap();
            requests.push((signer, out.clone()));
            encoder
                .order_status(&mut out, &env, "ETHUSDT", "fc00000000000000ff")
                .unwrap();
            requests.push((signer, out.clone()));
        }
        let mut out = Vec::new();
        encoder.session_logon(&mut out, &env(11, &e)).unwrap();
        requests.push((&e, out));

        for (signer, json) in requests {
            let json = String::from_utf8(json).unwrap();
            let (value, payload, signature) = venue_view(&json);
            assert_eq!(value.get("id").unwrap().as_u64(), Some(11));
            let signature = signature.expect("signed requests carry a signature");
            assert!(json.ends_with(&format!(",\"signature\":\"{signature}\"}}}}")));
            match signer {
                Signer::Hmac(k) => assert_eq!(k.sign(payload.as_bytes()).as_str(), signature),
                Signer::Ed25519(_) => {
                    use base64::Engine as _;
                    let raw: [u8; 64] = base64::engine::general_purpose::STANDARD
                        .decode(&signature)
                        .unwrap()
                        .try_into()
                        .unwrap();
                    let raw = ed25519_dalek::Signature::from_bytes(&raw);
                    public.verify_strict(payload.as_bytes(), &raw).unwrap();
                }
            }
            // INT parameters are JSON integers, everything else a string.
            for (key, value) in value.get("params").unwrap().as_object().unwrap() {
                let int = matches!(key.as_ref(), "timestamp" | "recvWindow");
                assert_eq!(value.as_u64().is_some(), int, "{key} in {json}");
                assert_eq!(value.as_str().is_some(), !int, "{key} in {json}");
            }
        }
    }

    #[test]
    fn order_place_has_the_fixture_params_with_their_json_types() {
        let mut bytes = FIXTURE_REQUEST.trim().as_bytes().to_vec();
        let fixture = simd_json::to_borrowed_value(&mut bytes).unwrap();
        let signer = hmac();
        let order = PlaceOrder {
            side: Side::Buy,
            qty: Lots(1),
            lot_size: dec!(0.1),
            limit: Ticks(42088),
            tick_size: dec!(1),
            ..limit_sell()
        };
        let json = place(&env(1, &signer), &order).unwrap();
        let (ours, _, _) = venue_view(&json);
        assert_eq!(
            fixture.get("method").unwrap().as_str(),
            ours.get("method").unwrap().as_str()
        );
        let ours = ours.get("params").unwrap();
        for (key, value) in fixture.get("params").unwrap().as_object().unwrap() {
            let mine = ours.get(key.as_ref()).unwrap_or_else(|| panic!("no {key}"));
            assert_eq!(mine.value_type(), value.value_type(), "{key}");
        }
        assert_eq!(ours.get("quantity").unwrap().as_str(), Some("0.1"));
        assert_eq!(ours.get("price").unwrap().as_str(), Some("42088"));
    }

    #[test]
    fn session_logon_exact_and_ed25519_only() {
        // The signature is `openssl pkeyutl -sign -rawin` with RFC 8032 TEST 1's key
        // over apiKey=…&recvWindow=5000&timestamp=1649729878532, base64.
        let expected = concat!(
            r#"{"id":1,"method":"session.logon","params":{"#,
            r#""apiKey":"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A","#,
            r#""recvWindow":5000,"timestamp":1649729878532,"#,
            r#""signature":"CMKsZvJ1mu1ItCShmqOqHhPfx6lcMWc4gChfgTK7tHCfmUb94Mo/UZird5l0jXAoUxgrnW1fBYGpKYTTdG99AA=="}}"#
        );
        let signer = ed25519();
        let env = Envelope {
            id: 1,
            timestamp_ms: 1649729878532,
            recv_window_ms: 5000,
            ..env(1, &signer)
        };
        let mut out = Vec::new();
        Encoder::new().session_logon(&mut out, &env).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected);

        let hmac = hmac();
        let mut out = b"kept".to_vec();
        for env in [
            Envelope {
                auth: Auth::Session,
                ..env
            },
            self::env(1, &hmac),
        ] {
            assert_eq!(
                Encoder::new().session_logon(&mut out, &env),
                Err(EncodeError::LogonNeedsEd25519)
            );
        }
        assert_eq!(out, b"kept", "an error leaves the buffer as it was");
    }

    #[test]
    fn logged_on_requests_carry_no_key_and_no_signature() {
        let env = Envelope {
            id: 9,
            auth: Auth::Session,
            timestamp_ms: 1,
            recv_window_ms: 5000,
        };
        let mut out = Vec::new();
        Encoder::new()
            .order_status(&mut out, &env, "BTCUSDT", "fc000000000000002a")
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":9,"method":"order.status","params":{"origClientOrderId":"fc000000000000002a","recvWindow":5000,"symbol":"BTCUSDT","timestamp":1}}"#
        );
    }

    #[test]
    fn quantities_and_prices_are_exact_plain_decimals() {
        let signer = hmac();
        for (qty, lot_size, limit, tick_size, quantity_text, price_text) in [
            (1, dec!(0.001), 1, dec!(0.01), "0.001", "0.01"),
            (100, dec!(0.01), 4208800, dec!(0.010), "1", "42088"),
            (
                3,
                dec!(0.00000001),
                7,
                dec!(0.0000001),
                "0.00000003",
                "0.0000007",
            ),
            (5, dec!(10), 12345, dec!(0.5), "50", "6172.5"),
            (
                1 << 48,
                dec!(0.001),
                1,
                dec!(1000),
                "281474976710.656",
                "1000",
            ),
            (
                1,
                dec!(0.0000000000000000000000000001),
                1,
                dec!(100000000000),
                "0.0000000000000000000000000001",
                "100000000000",
            ),
        ] {
            let order = PlaceOrder {
                qty: Lots(qty),
                lot_size,
                limit: Ticks(limit),
                tick_size,
                ..limit_sell()
            };
            let json = place(&env(1, &signer), &order).unwrap();
            assert!(
                json.contains(&format!("\"quantity\":\"{quantity_text}\"")),
                "{json}"
            );
            assert!(
                json.contains(&format!("\"price\":\"{price_text}\"")),
                "{json}"
            );
        }
    }

    #[test]
    fn client_order_id_is_the_engines() {
        for id in [0, 1, 42, 0xdead_beef, u64::MAX, i64::MAX as u64] {
            let ours = client_order_id(id);
            let ours = std::str::from_utf8(&ours).unwrap();
            assert_eq!(ours, ids::client_order_id(id));
            assert!(is_valid_client_order_id(ours));
            assert_eq!(ids::parse_client_order_id(ours), Some(id));
        }
        let signer = hmac();
        let json = place(
            &env(1, &signer),
            &PlaceOrder {
                order_id: 0x0123_4567_89ab_cdef,
                ..limit_sell()
            },
        )
        .unwrap();
        assert!(json.contains(r#""newClientOrderId":"fc0123456789abcdef""#));
    }

    proptest! {
        #[test]
        fn client_order_id_matches_the_engine_for_any_id(id in any::<u64>()) {
            let ours = client_order_id(id);
            prop_assert_eq!(std::str::from_utf8(&ours).unwrap(), ids::client_order_id(id));
        }
    }

    #[test]
    fn valid_client_order_ids() {
        for ok in ["a", "fc000000000000002a", "A.b:c/d_e-f", &"x".repeat(36)] {
            assert!(is_valid_client_order_id(ok), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(37),
            "a b",
            "a\"b",
            "a\\b",
            "ä",
            "a&b",
            "a=b",
            "a+b",
        ] {
            assert!(!is_valid_client_order_id(bad), "{bad}");
        }
    }

    #[test]
    fn invalid_requests_are_errors_naming_the_field() {
        let signer = hmac();
        let base = limit_sell();
        let cases: Vec<(Envelope<'_>, PlaceOrder<'_>, EncodeError)> = vec![
            (
                env(1, &signer),
                PlaceOrder {
                    qty: Lots(0),
                    ..base
                },
                invalid("quantity"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    qty: Lots(-5),
                    ..base
                },
                invalid("quantity"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    lot_size: dec!(0),
                    ..base
                },
                invalid("lot_size"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    lot_size: dec!(-0.1),
                    ..base
                },
                invalid("lot_size"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    limit: Ticks(0),
                    ..base
                },
                invalid("price"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    tick_size: dec!(0),
                    ..base
                },
                invalid("tick_size"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    qty: Lots(i64::MAX),
                    lot_size: dec!(100000000000),
                    ..base
                },
                invalid("quantity"),
            ),
            (
                env(1, &signer),
                PlaceOrder { symbol: "", ..base },
                invalid("symbol"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    symbol: "btcusdt",
                    ..base
                },
                invalid("symbol"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    symbol: "BTC\"USDT",
                    ..base
                },
                invalid("symbol"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    symbol: "币安人生USDT",
                    ..base
                },
                invalid("symbol"),
            ),
            (
                env(1, &signer),
                PlaceOrder {
                    symbol: "BTCUSDT&x=1",
                    ..base
                },
                invalid("symbol"),
            ),
            (
                env(1 << 63, &signer),
                base,
                EncodeError::IdOutOfRange { id: 1 << 63 },
            ),
            (
                Envelope {
                    timestamp_ms: 0,
                    ..env(1, &signer)
                },
                base,
                invalid("timestamp"),
            ),
            (
                Envelope {
                    recv_window_ms: 0,
                    ..env(1, &signer)
                },
                base,
                invalid("recvWindow"),
            ),
            (
                Envelope {
                    auth: Auth::Signed {
                        api_key: "",
                        signer: &signer,
                    },
                    ..env(1, &signer)
                },
                base,
                invalid("apiKey"),
            ),
            (
                Envelope {
                    auth: Auth::Signed {
                        api_key: "key\",\"x\":\"",
                        signer: &signer,
                    },
                    ..env(1, &signer)
                },
                base,
                invalid("apiKey"),
            ),
        ];
        let mut encoder = Encoder::new();
        for (env, order, expected) in cases {
            let mut out = b"kept".to_vec();
            let err = encoder.order_place(&mut out, &env, &order).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&expected),
                "{err}"
            );
            if let (EncodeError::Invalid { field, .. }, EncodeError::Invalid { field: want, .. }) =
                (err, expected)
            {
                assert_eq!(field, want, "{err}");
            }
            assert!(
                !err.to_string().contains("key\""),
                "errors do not quote values"
            );
            assert_eq!(out, b"kept");
        }
        let mut out = Vec::new();
        let env = env(1, &signer);
        for bad in ["", "fc 1", &"x".repeat(37)] {
            assert_eq!(
                encoder
                    .order_status(&mut out, &env, "BTCUSDT", bad)
                    .map_err(|e| field_of(&e)),
                Err("origClientOrderId")
            );
        }
        assert!(encoder
            .order_place(
                &mut out,
                &Envelope {
                    id: REQUEST_ID_MAX,
                    ..env
                },
                &base
            )
            .is_ok());
    }

    fn invalid(field: &'static str) -> EncodeError {
        EncodeError::Invalid {
            field,
            expected: "",
        }
    }

    fn field_of(e: &EncodeError) -> &'static str {
        match e {
            EncodeError::Invalid { field, .. } => field,
            _ => "",
        }
    }

    #[test]
    fn encoding_reuses_its_buffers() {
        let signer = hmac();
        let mut encoder = Encoder::new();
        let mut out = Vec::with_capacity(1024);
        encoder
            .order_place(&mut out, &env(1, &signer), &limit_sell())
            .unwrap();
        let first = out.clone();
        let (ptr, capacity) = (out.as_ptr(), out.capacity());
        let payload_capacity = encoder.payload.capacity();
        for id in 2..200 {
            encoder
                .order_place(&mut out, &env(id, &signer), &limit_sell())
                .unwrap();
        }
        encoder
            .order_place(&mut out, &env(1, &signer), &limit_sell())
            .unwrap();
        assert_eq!(out, first, "each request replaces the last");
        assert_eq!((out.as_ptr(), out.capacity()), (ptr, capacity));
        assert_eq!(encoder.payload.capacity(), payload_capacity);
    }

    #[test]
    fn parses_the_order_place_fixture() {
        let reply = parse(FIXTURE_RESPONSE.trim()).unwrap();
        assert_eq!(
            reply.id,
            ReplyId::Text("43a3843a-2321-4e45-8f79-351e5c354563")
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.outcome,
            Outcome::Order(OrderResult {
                order_id: 336829446,
                symbol: "BTCUSDT",
                client_order_id: "FqEw6cn0vDhrkmfiwLYPeo",
                status: OrderStatus::New,
                executed_qty: dec!(0.000),
                avg_price: dec!(0.00),
                price: dec!(42088.00),
                update_time_ms: 1705385954229,
            })
        );
        assert_eq!(
            reply.rate_limits.as_slice(),
            [RateLimit {
                kind: RateLimitKind::Orders,
                interval: Interval::Second,
                interval_num: 10,
                limit: 300,
                count: 1,
            }]
        );
    }

    #[test]
    fn parses_the_error_fixture_and_documented_errors() {
        let reply = parse(FIXTURE_ERROR.trim()).unwrap();
        assert_eq!(
            reply.id,
            ReplyId::Text("5ccf7a6e-9b0c-4b8c-a1a4-2e1f0a3c7d11")
        );
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.outcome,
            Outcome::Error(ApiError {
                code: -1102,
                msg: "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
                retry_after_ms: None,
            })
        );
        assert!(reply.rate_limits.as_slice().is_empty());

        let banned = parse(BANNED).unwrap();
        assert_eq!((banned.id, banned.status), (ReplyId::Num(3), 418));
        let Outcome::Error(e) = banned.outcome else {
            panic!("{banned:?}")
        };
        assert_eq!((e.code, e.retry_after_ms), (-1003, Some(1659146400000)));

        let revoked = parse(REVOKED).unwrap();
        assert_eq!((revoked.id, revoked.status), (ReplyId::Null, 401));
        assert!(matches!(
            revoked.outcome,
            Outcome::Error(ApiError { code: -2015, .. })
        ));

        let logon = parse(LOGON).unwrap();
        assert_eq!(
            logon.outcome,
            Outcome::Session {
                server_time_ms: Some(1649729878630)
            }
        );
        assert_eq!(
            logon.rate_limits.as_slice()[0].kind,
            RateLimitKind::RequestWeight
        );
        assert_eq!(logon.rate_limits.as_slice()[0].interval, Interval::Minute);
    }

    #[test]
    fn parses_every_order_status_and_escaped_strings() {
        let mut parser = ReplyParser::new();
        for (text, status) in [
            ("NEW", OrderStatus::New),
            ("PARTIALLY_FILLED", OrderStatus::PartiallyFilled),
            ("FILLED", OrderStatus::Filled),
            ("CANCELED", OrderStatus::Canceled),
            ("EXPIRED", OrderStatus::Expired),
            ("EXPIRED_IN_MATCH", OrderStatus::ExpiredInMatch),
            ("REJECTED", OrderStatus::Rejected),
        ] {
            let mut bytes = order_reply(&format!(r#""status":"{text}""#)).into_bytes();
            let reply = parser.parse(&mut bytes).unwrap();
            let Outcome::Order(o) = reply.outcome else {
                panic!("{reply:?}")
            };
            assert_eq!(o.status, status);
            assert_eq!(
                o.status.is_final(),
                !matches!(text, "NEW" | "PARTIALLY_FILLED")
            );
        }
        let mut bytes =
            br#"{"id":1,"status":400,"error":{"code":-1,"msg":"a \"quoted\" \u00e9 msg"}}"#
                .to_vec();
        let reply = parser.parse(&mut bytes).unwrap();
        assert!(matches!(
            reply.outcome,
            Outcome::Error(ApiError {
                msg: "a \"quoted\" é msg",
                ..
            })
        ));
    }

    /// A valid order reply with `field` replacing its `status` member.
    fn order_reply(field: &str) -> String {
        format!(
            r#"{{"id":5,"status":200,"result":{{"orderId":1,"symbol":"BTCUSDT","clientOrderId":"fc0000000000000001",{field},"price":"1","avgPrice":"1","executedQty":"0.5","updateTime":2}}}}"#
        )
    }

    #[test]
    fn every_prefix_of_a_reply_is_an_error() {
        let mut parser = ReplyParser::new();
        for reply in [
            FIXTURE_RESPONSE.trim(),
            FIXTURE_ERROR.trim(),
            BANNED,
            REVOKED,
            LOGON,
        ] {
            for end in 0..reply.len() {
                let mut bytes = reply.as_bytes()[..end].to_vec();
                assert!(parser.parse(&mut bytes).is_err(), "{}", &reply[..end]);
            }
            let mut bytes = reply.as_bytes().to_vec();
            assert!(parser.parse(&mut bytes).is_ok());
        }
    }

    #[test]
    fn oversized_replies_are_refused_before_parsing() {
        let reply = FIXTURE_RESPONSE.trim();
        // Valid JSON padded with whitespace to the cap, and one byte past it.
        let mut at_cap = reply.as_bytes().to_vec();
        at_cap.resize(REPLY_BYTES_MAX, b' ');
        assert_eq!(at_cap.len(), REPLY_BYTES_MAX);
        assert!(ReplyParser::new().parse(&mut at_cap).is_ok());
        let mut over = reply.as_bytes().to_vec();
        over.resize(REPLY_BYTES_MAX + 1, b' ');
        assert!(matches!(
            ReplyParser::new().parse(&mut over),
            Err(ReplyError::TooLarge { len, max: REPLY_BYTES_MAX }) if len == REPLY_BYTES_MAX + 1
        ));
    }

    #[test]
    fn hostile_replies_are_errors() {
        let deep = format!(
            r#"{{"id":1,"status":200,"result":{{"x":{}1{}}}}}"#,
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        let many_limits = format!(
            r#"{{"id":1,"status":200,"result":{{}},"rateLimits":[{}]}}"#,
            [r#"{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":300,"count":1}"#; 9].join(",")
        );
        let long_status = order_reply(&format!(r#""status":"{}""#, "Ä".repeat(40)));
        let cases: Vec<(&str, &str)> = vec![
            ("", "Json"),
            ("null", "WrongType reply"),
            ("[1,2]", "WrongType reply"),
            (r#"{"status":200,"result":{}}"#, "Missing id"),
            (r#"{"id":1,"result":{}}"#, "Missing status"),
            (r#"{"id":1,"status":200}"#, "Missing result or error"),
            (
                r#"{"id":1,"id":2,"status":200,"result":{}}"#,
                "Duplicate id",
            ),
            (
                r#"{"id":1,"status":200,"status":200,"result":{}}"#,
                "Duplicate status",
            ),
            (r#"{"id":-1,"status":200,"result":{}}"#, "OutOfRange id"),
            (r#"{"id":1.5,"status":200,"result":{}}"#, "OutOfRange id"),
            (r#"{"id":true,"status":200,"result":{}}"#, "WrongType id"),
            (
                r#"{"id":99999999999999999999999999,"status":200,"result":{}}"#,
                "Json",
            ),
            (r#"{"id":1e400,"status":200,"result":{}}"#, "Json"),
            (r#"{"id":1,"status":"200","result":{}}"#, "WrongType status"),
            (r#"{"id":1,"status":99,"result":{}}"#, "OutOfRange status"),
            (
                r#"{"id":1,"status":70000,"result":{}}"#,
                "OutOfRange status",
            ),
            (r#"{"id":1,"status":400,"result":{}}"#, "Inconsistent"),
            (
                r#"{"id":1,"status":200,"error":{"code":-1,"msg":""}}"#,
                "Inconsistent",
            ),
            (
                r#"{"id":1,"status":400,"result":{},"error":{"code":-1,"msg":""}}"#,
                "Inconsistent",
            ),
            (r#"{"id":1,"status":200,"result":[]}"#, "WrongType result"),
            (r#"{"id":1,"status":400,"error":"oops"}"#, "WrongType error"),
            (
                r#"{"id":1,"status":400,"error":{"msg":"x"}}"#,
                "Missing error.code",
            ),
            (
                r#"{"id":1,"status":400,"error":{"code":"-1","msg":"x"}}"#,
                "WrongType error.code",
            ),
            (
                r#"{"id":1,"status":400,"error":{"code":-99999999999,"msg":"x"}}"#,
                "OutOfRange error.code",
            ),
            (
                r#"{"id":1,"status":400,"error":{"code":-1}}"#,
                "Missing error.msg",
            ),
            (
                r#"{"id":1,"status":400,"error":{"code":-1,"msg":"x","data":[]}}"#,
                "WrongType error.data",
            ),
            (
                r#"{"id":1,"status":418,"error":{"code":-1,"msg":"x","data":{"retryAfter":"soon"}}}"#,
                "WrongType error.data.retryAfter",
            ),
            (
                r#"{"id":1,"status":418,"error":{"code":-1,"msg":"x","data":{"retryAfter":1,"retryAfter":2}}}"#,
                "Duplicate error.data.retryAfter",
            ),
            (
                r#"{"id":1,"status":200,"result":{},"rateLimits":{}}"#,
                "WrongType rateLimits",
            ),
            (
                r#"{"id":1,"status":200,"result":{},"rateLimits":[1]}"#,
                "WrongType rateLimits[]",
            ),
            (
                r#"{"id":1,"status":200,"result":{},"rateLimits":[{"rateLimitType":"ORDERS","interval":"WEEK","intervalNum":1,"limit":1,"count":1}]}"#,
                "UnknownValue rateLimits[].interval",
            ),
            (
                r#"{"id":1,"status":200,"result":{},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":4294967296,"limit":1,"count":1}]}"#,
                "OutOfRange rateLimits[].intervalNum",
            ),
            (
                r#"{"id":1,"status":200,"result":{},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":1,"limit":1}]}"#,
                "Missing rateLimits[].count",
            ),
            (
                r#"{"id":1,"status":200,"result":{},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":1,"limit":1,"count":-1}]}"#,
                "OutOfRange rateLimits[].count",
            ),
            (
                r#"{"id":1,"status":200,"result":{"serverTime":"now"}}"#,
                "WrongType result.serverTime",
            ),
            (&many_limits, "TooManyRateLimits"),
            (&deep, "TooDeep"),
            (&long_status, "UnknownValue result.status"),
        ];
        let status_cases = [
            (r#""status":"NEW","orderId":2"#, "Duplicate result.orderId"),
            (
                r#""status":"NEW","executedQty":"1""#,
                "Duplicate result.executedQty",
            ),
            (r#""status":"new""#, "UnknownValue result.status"),
            (r#""status":1"#, "WrongType result.status"),
            (r#""x":1"#, "Missing result.status"),
        ];
        let status_cases: Vec<(String, &str)> = status_cases
            .iter()
            .map(|(field, want)| (order_reply(field), *want))
            .collect();
        let decimal_cases: Vec<(String, &str)> = [
            r#""1e5""#,
            r#""1_000""#,
            r#""-1""#,
            r#""+1""#,
            r#"".5""#,
            r#""5.""#,
            r#""""#,
            r#"" 1""#,
            r#""1.2.3""#,
            r#""0x10""#,
            r#""99999999999999999999999999999999""#,
            r#""0.00000000000000000000000000001""#,
            r#""NaN""#,
        ]
        .iter()
        .map(|v| {
            (
                order_reply(r#""status":"NEW""#)
                    .replace(r#""executedQty":"0.5""#, &format!(r#""executedQty":{v}"#)),
                "BadDecimal result.executedQty",
            )
        })
        .chain([(
            order_reply(r#""status":"NEW""#)
                .replace(r#""executedQty":"0.5""#, r#""executedQty":0.5"#),
            "WrongType result.executedQty",
        )])
        .collect();
        let field_cases: Vec<(String, &str)> = [
            (
                r#""orderId":1"#,
                r#""orderId":-1"#,
                "OutOfRange result.orderId",
            ),
            (
                r#""orderId":1"#,
                r#""orderId":"1""#,
                "WrongType result.orderId",
            ),
            (
                r#""updateTime":2"#,
                r#""updateTime":2.5"#,
                "OutOfRange result.updateTime",
            ),
            (r#""symbol":"BTCUSDT","#, "", "Missing result.symbol"),
            (
                r#""clientOrderId":"fc0000000000000001""#,
                r#""clientOrderId":null"#,
                "WrongType result.clientOrderId",
            ),
            (r#""avgPrice":"1","#, "", "Missing result.avgPrice"),
            (r#""price":"1""#, r#""price":{}"#, "WrongType result.price"),
        ]
        .iter()
        .map(|(from, to, want)| {
            (
                order_reply(r#""status":"NEW""#).replacen(from, to, 1),
                *want,
            )
        })
        .collect();
        let non_utf8: &[u8] =
            b"{\"id\":1,\"status\":400,\"error\":{\"code\":-1,\"msg\":\"\xff\xfe\"}}";

        let mut parser = ReplyParser::new();
        let all = cases
            .iter()
            .map(|(t, w)| (t.as_bytes().to_vec(), *w))
            .chain(
                status_cases
                    .iter()
                    .map(|(t, w)| (t.as_bytes().to_vec(), *w)),
            )
            .chain(
                decimal_cases
                    .iter()
                    .map(|(t, w)| (t.as_bytes().to_vec(), *w)),
            )
            .chain(field_cases.iter().map(|(t, w)| (t.as_bytes().to_vec(), *w)))
            .chain([(non_utf8.to_vec(), "Json")]);
        for (mut bytes, want) in all {
            let shown = String::from_utf8_lossy(&bytes)
                .chars()
                .take(120)
                .collect::<String>();
            let err = parser.parse(&mut bytes).expect_err(&shown);
            assert_eq!(describe(&err), want, "{shown}: {err}");
            assert!(!err.to_string().is_empty());
        }
        // The parser is still good after all of that.
        let mut bytes = FIXTURE_RESPONSE.trim().as_bytes().to_vec();
        assert!(parser.parse(&mut bytes).is_ok());
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let nested = |depth: usize| {
            format!(
                r#"{{"id":1,"status":200,"result":{{"x":{}{}}},"n":"[[[[[[[[[[[[[[[[[[[[\"{{{{"}}"#,
                "[".repeat(depth - 2),
                "]".repeat(depth - 2)
            )
        };
        let mut at_max = nested(REPLY_DEPTH_MAX).into_bytes();
        assert!(ReplyParser::new().parse(&mut at_max).is_ok());
        let mut over = nested(REPLY_DEPTH_MAX + 1).into_bytes();
        assert!(matches!(
            ReplyParser::new().parse(&mut over),
            Err(ReplyError::TooDeep {
                max: REPLY_DEPTH_MAX
            })
        ));
    }

    #[test]
    fn error_messages_name_the_field_and_what_was_expected() {
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            message(&order_reply(r#""status":"NEW""#).replace(r#","executedQty":"0.5""#, "")),
            "reply has no `result.executedQty`"
        );
        assert_eq!(
            message(r#"{"id":1,"status":"200","result":{}}"#),
            "reply `status` is a string: expected an integer from 0 to 2^64-1"
        );
        assert_eq!(
            message(&order_reply(r#""status":"NEW_ADL""#)),
            "reply `result.status` is \"NEW_ADL\": expected one of NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, EXPIRED_IN_MATCH, REJECTED"
        );
        assert_eq!(
            EncodeError::Invalid {
                field: "symbol",
                expected: "1 to 32 characters of A-Z 0-9 _"
            }
            .to_string(),
            "`symbol` is invalid: expected 1 to 32 characters of A-Z 0-9 _"
        );
    }

    /// The error's variant and field, for table tests.
    fn describe(e: &ReplyError) -> String {
        match e {
            ReplyError::TooLarge { .. } => "TooLarge".into(),
            ReplyError::TooDeep { .. } => "TooDeep".into(),
            ReplyError::Json(_) => "Json".into(),
            ReplyError::WrongType { field, .. } => format!("WrongType {field}"),
            ReplyError::Missing { field } => format!("Missing {field}"),
            ReplyError::Duplicate { field } => format!("Duplicate {field}"),
            ReplyError::OutOfRange { field, .. } => format!("OutOfRange {field}"),
            ReplyError::BadDecimal { field } => format!("BadDecimal {field}"),
            ReplyError::UnknownValue { field, value, .. } => {
                assert!(value.len() <= UNKNOWN_VALUE_LEN_MAX);
                format!("UnknownValue {field}")
            }
            ReplyError::TooManyRateLimits { .. } => "TooManyRateLimits".into(),
            ReplyError::Inconsistent { .. } => "Inconsistent".into(),
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut bytes = bytes;
            let _ = ReplyParser::new().parse(&mut bytes);
        }

        #[test]
        fn json_like_text_never_panics(text in r#"[\[\]{}",:0-9a-zA-Z.eE+\- \\]{0,300}"#) {
            let mut bytes = format!(r#"{{"id":1,"status":200,"result":{text}}}"#).into_bytes();
            let _ = ReplyParser::new().parse(&mut bytes);
        }

        #[test]
        fn mutated_replies_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            which in 0..3usize,
        ) {
            let base = [FIXTURE_RESPONSE.trim(), FIXTURE_ERROR.trim(), LOGON][which];
            let mut bytes = base.as_bytes().to_vec();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = ReplyParser::new().parse(&mut bytes);
        }
    }

    #[test]
    fn place_order_of_an_engine_order() {
        let spec = SymbolSpec {
            name: "ETHUSDT".into(),
            lot_size: dec!(0.001),
            tick_size: dec!(0.01),
            min_qty: Lots(1),
            min_notional: Money(0),
            venue: VenueIdx(0),
            money_per_lot_tick: 1,
            removed: false,
        };
        let order = FollowerOrder {
            id: 77,
            symbol: SymbolIdx(0),
            side: Side::Buy,
            qty: Lots(1500),
            order_type: OrderType::LimitIoc,
            limit: Ticks(310_025),
            reduce_only: false,
            ..FollowerOrder::default()
        };
        let signer = hmac();
        let json = place(
            &env(3, &signer),
            &PlaceOrder::of(&order, &spec, RespType::Result),
        )
        .unwrap();
        for part in [
            r#""symbol":"ETHUSDT""#,
            r#""side":"BUY""#,
            r#""quantity":"1.5""#,
            r#""price":"3100.25""#,
            r#""newClientOrderId":"fc000000000000004d""#,
            r#""newOrderRespType":"RESULT""#,
        ] {
            assert!(json.contains(part), "{part} in {json}");
        }
        assert!(!json.contains("reduceOnly"));
    }
}
