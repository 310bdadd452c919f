//! The sim venue's wire protocol: length-prefixed binary frames over TCP between
//! `SimClient` (the engine's gateway) and the `fillcast sim-venue` server.
//!
//! A frame is a `u32` little-endian length `n` (1 ≤ n ≤ `FRAME_BYTES_MAX`), then `n`
//! bytes: a frame type byte and the fixed little-endian fields of that type. Counts
//! come before lists and are capped per frame type, so a frame's size is bounded by
//! its type and every cap below fits in `FRAME_BYTES_MAX`.
//!
//! | type | direction | body |
//! |---|---|---|
//! | `0x01` Hello | client → server | version u16, session u64 |
//! | `0x02` Orders | client → server | count u16 (≤ `ORDERS_PER_FRAME_MAX`), orders |
//! | `0x03` Query | client → server | count u16 (≤ `QUERY_IDS_MAX`), order ids u64 |
//! | `0x04` Positions | client → server | (empty) |
//! | `0x05` Stats | client → server | (empty) |
//! | `0x06` Ping | client → server | nonce u64 |
//! | `0x07` OrdersSince | client → server | since u64 (an order's own time, ns) |
//! | `0x08` Symbols | client → server | first u16, count u16 (≤ `SYMBOLS_PER_FRAME_MAX`), symbol terms |
//! | `0x81` Report | server → client | report |
//! | `0x82` QueryReply | server → client | count u16, answers (same order as the query) |
//! | `0x83` PositionsReply | server → client | last u8, count u32 (≤ `POSITIONS_PER_FRAME_MAX`), entries |
//! | `0x84` StatsReply | server → client | 11 × u64 (`VenueStats`, in field order) |
//! | `0x86` OrderIds | server → client | last u8, count u32 (≤ `ORDER_IDS_PER_FRAME_MAX`), order ids u64 |
//! | `0x85` Pong | server → client | nonce u64 (the `Ping`'s) |
//!
//! An order is 69 bytes: id u64, sub u32, follower u32, symbol u16, side u8, qty i64,
//! order type u8, limit i64, reduce_only u8, leader event key u64, ts u64, venue ts
//! u64, reference price i64 (`FollowerOrder::venue_ts`, `ref_price`). A report is
//! 58 bytes: order id u64, kind u8 (0 ack, 1 fill, 2 canceled, 3 rejected, 4 expired, 5 restated), qty i64, price i64, trade id u64, fee i64, reject
//! u8 (0 none, 1 insufficient margin, 2 below min, 3 position limit, 4 reduce only,
//! 5 transient, 6 other, 7 unknown order, 8 venue down), venue ts u64, recv ts u64. An answer is order id u64 and a tag u8: 0 unknown,
//! 1 known followed by qty i64 (negative for a sell), symbol u16, limit i64, acked u8, fill count u8 (≤ `FILLS_PER_ANSWER_MAX`),
//! the fills as reports, has-end u8 and, when 1, the ending report. A position is
//! follower u32, symbol u16, lots i64. Symbol terms are min qty i64 (lots, ≥ 1), min
//! notional i64 (money, ≥ 0), money per lot × tick i64 (> 0): the engine's symbols
//! from index `first` on, which the venue takes in place of its own (a reload may
//! have added symbols since the venue started).
//!
//! Owns encoding, decoding, and the bounded read and write buffers both ends use.
//! Never panics and never allocates more than its caps on any input: every decoder is
//! fed truncated, oversized and random frames in the tests.

use crate::sim::{OrderHistory, QueryAnswer, SymbolTerms};
use fillcast_engine::codes::Coded;
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType, RejectReason};
use fillcast_engine::model::{FollowerIdx, Side, SubIdx, SymbolIdx};
use fillcast_engine::units::{Lots, Money, Nanos, Ticks};
use std::io::{self, Read, Write};
use thiserror::Error;

/// The protocol version a `Hello` carries; a server refuses any other. Version 2
/// added `Ping`/`Pong` and `connections_refused` to the stats; version 3 signs an
/// answer's quantity with the order's side (the engine takes the venue's terms);
/// version 4 added `Symbols` (the engine's symbols, which a reload may extend);
/// version 5 added an order's venue time and reference price (the market model).
pub const PROTOCOL_VERSION: u16 = 5;

/// Bytes of the length prefix.
pub const HEADER_BYTES: usize = 4;

/// Most bytes after the length prefix (type byte and body) of any frame.
pub const FRAME_BYTES_MAX: usize = 1 << 20;

/// Most orders in one `Orders` frame; larger batches go as several frames.
pub const ORDERS_PER_FRAME_MAX: usize = 4096;

/// Most order ids in one `Query` frame (and answers in its reply).
pub const QUERY_IDS_MAX: usize = 1024;

/// Most fills one answer carries.
pub const FILLS_PER_ANSWER_MAX: usize = 8;

/// Most ids in one `OrderIds` frame; more go as several frames.
pub const ORDER_IDS_PER_FRAME_MAX: usize = 65_536;

/// Most positions in one `PositionsReply` frame; more go as several frames.
pub const POSITIONS_PER_FRAME_MAX: usize = 32_768;

/// Most symbols in one `Symbols` frame; more go as several frames.
pub const SYMBOLS_PER_FRAME_MAX: usize = 4096;

/// Encoded size of one `SymbolTerms`.
const SYMBOL_BYTES: usize = 24;

/// Encoded size of one `FollowerOrder`.
pub const ORDER_BYTES: usize = 69;

/// Encoded size of one `ExecReport`.
pub const REPORT_BYTES: usize = 58;

const POSITION_BYTES: usize = 14;
const ANSWER_BYTES_MAX: usize =
    8 + 1 + 8 + 2 + 8 + 1 + 1 + FILLS_PER_ANSWER_MAX * REPORT_BYTES + 1 + REPORT_BYTES;
const STATS_FIELDS: usize = 11;

const _: () = assert!(1 + 2 + ORDERS_PER_FRAME_MAX * ORDER_BYTES <= FRAME_BYTES_MAX);
const _: () = assert!(1 + 2 + QUERY_IDS_MAX * ANSWER_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(1 + 1 + 4 + POSITIONS_PER_FRAME_MAX * POSITION_BYTES <= FRAME_BYTES_MAX);
const _: () = assert!(1 + 1 + 4 + ORDER_IDS_PER_FRAME_MAX * 8 <= FRAME_BYTES_MAX);
const _: () = assert!(1 + 2 + 2 + SYMBOLS_PER_FRAME_MAX * SYMBOL_BYTES <= FRAME_BYTES_MAX);
const _: () = assert!(ORDERS_PER_FRAME_MAX <= u16::MAX as usize);
const _: () = assert!(QUERY_IDS_MAX <= u16::MAX as usize);
const _: () = assert!(FILLS_PER_ANSWER_MAX <= u8::MAX as usize);

const HELLO: u8 = 0x01;
const ORDERS: u8 = 0x02;
const QUERY: u8 = 0x03;
const POSITIONS: u8 = 0x04;
const STATS: u8 = 0x05;
const PING: u8 = 0x06;
const ORDERS_SINCE: u8 = 0x07;
const SYMBOLS: u8 = 0x08;
const REPORT: u8 = 0x81;
const QUERY_REPLY: u8 = 0x82;
const POSITIONS_REPLY: u8 = 0x83;
const STATS_REPLY: u8 = 0x84;
const PONG: u8 = 0x85;
const ORDER_IDS: u8 = 0x86;

/// What a decoder returns: `Ok(None)` when the buffer holds only part of a frame,
/// else the message and the bytes it took.
pub type Decoded<T> = Result<Option<(T, usize)>, DecodeError>;

/// A frame from the client (the engine) to the venue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMsg {
    /// First frame of a connection. Reports held for `session` are sent after it.
    Hello {
        session: u64,
    },
    Orders(Vec<FollowerOrder>),
    Query(Vec<u64>),
    /// Asks for every non-zero venue position.
    Positions,
    /// Asks for `VenueStats`.
    Stats,
    /// A heartbeat: the server answers `Pong` with the same nonce.
    Ping {
        nonce: u64,
    },
    /// Asks for the ids of every order the venue remembers whose own time is
    /// `since` or later (`SimVenue::orders_since`).
    OrdersSince {
        since: u64,
    },
    /// The engine's symbols `first..first + terms.len()` (`SimVenue::set_symbols`).
    Symbols {
        first: u16,
        terms: Vec<SymbolTerms>,
    },
}

/// A frame from the venue to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMsg {
    Report(ExecReport),
    /// One answer per queried id, in the order of the query.
    QueryReply(Vec<QueryAnswer>),
    /// Part of the venue's positions; `last` marks the final part.
    PositionsReply {
        positions: Vec<VenuePosition>,
        last: bool,
    },
    Stats(VenueStats),
    /// The answer to `Ping`.
    Pong {
        nonce: u64,
    },
    /// Part of the answer to `OrdersSince`; `last` marks the final part.
    OrderIds {
        ids: Vec<u64>,
        last: bool,
    },
}

/// One venue position.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VenuePosition {
    pub follower: FollowerIdx,
    pub symbol: SymbolIdx,
    pub lots: Lots,
}

/// What the venue and its server counted since the server started.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct VenueStats {
    /// Orders received, duplicates and rejected ones included.
    pub orders_received: u64,
    /// Orders whose client order id the venue had seen before; must stay 0.
    pub duplicate_client_ids: u64,
    pub acks: u64,
    pub fills: u64,
    pub canceled: u64,
    pub rejected: u64,
    /// Client connections accepted.
    pub connections: u64,
    /// Connections refused because `simserver::CONNECTIONS_MAX` were open.
    pub connections_refused: u64,
    /// Connections closed because of a malformed frame or a protocol violation.
    pub protocol_errors: u64,
    /// Reports written to a client.
    pub reports_sent: u64,
    /// Reports no client will get: held over the server's bounds (in all, and on
    /// sessions). `Query` still answers for their orders.
    pub reports_dropped: u64,
}

/// Why bytes are not a valid frame.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame length {len} outside 1..={FRAME_BYTES_MAX}")]
    Length { len: u64 },
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("frame type 0x{kind:02x}: truncated at byte {at}")]
    Truncated { kind: u8, at: usize },
    #[error("frame type 0x{kind:02x}: {extra} bytes after the last field")]
    Trailing { kind: u8, extra: usize },
    #[error("frame type 0x{kind:02x}: {what} count {count} over the maximum {max}")]
    TooMany {
        kind: u8,
        what: &'static str,
        count: u64,
        max: usize,
    },
    #[error("frame type 0x{kind:02x}: invalid {field} {value}")]
    BadValue {
        kind: u8,
        field: &'static str,
        value: u64,
    },
    #[error("protocol version {got}, expected {PROTOCOL_VERSION}")]
    Version { got: u16 },
}

/// Why a message cannot be encoded (a list over its per-frame cap).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("{what}: {count} over the per-frame maximum {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

impl ClientMsg {
    /// Appends the frame to `out`; on error `out` is unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            ClientMsg::Hello { session } => {
                let at = begin(out, HELLO);
                out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
                out.extend_from_slice(&session.to_le_bytes());
                end(out, at);
                Ok(())
            }
            ClientMsg::Orders(orders) => encode_orders(orders, out),
            ClientMsg::Query(ids) => encode_query(ids, out),
            ClientMsg::Positions => {
                let at = begin(out, POSITIONS);
                end(out, at);
                Ok(())
            }
            ClientMsg::Stats => {
                let at = begin(out, STATS);
                end(out, at);
                Ok(())
            }
            ClientMsg::Ping { nonce } => {
                let at = begin(out, PING);
                out.extend_from_slice(&nonce.to_le_bytes());
                end(out, at);
                Ok(())
            }
            ClientMsg::OrdersSince { since } => {
                let at = begin(out, ORDERS_SINCE);
                out.extend_from_slice(&since.to_le_bytes());
                end(out, at);
                Ok(())
            }
            ClientMsg::Symbols { first, terms } => encode_symbols(*first, terms, out),
        }
    }
}

/// Appends one `Symbols` frame (at most `SYMBOLS_PER_FRAME_MAX` symbols, the last
/// of them an index a `u16` holds).
pub fn encode_symbols(
    first: u16,
    terms: &[SymbolTerms],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_count("symbols", terms.len(), SYMBOLS_PER_FRAME_MAX)?;
    check_count(
        "symbol indices",
        first as usize + terms.len(),
        u16::MAX as usize + 1,
    )?;
    let at = begin(out, SYMBOLS);
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&(terms.len() as u16).to_le_bytes());
    for t in terms {
        out.extend_from_slice(&t.min_qty.0.to_le_bytes());
        out.extend_from_slice(&t.min_notional.0.to_le_bytes());
        out.extend_from_slice(&t.money_per_lot_tick.to_le_bytes());
    }
    end(out, at);
    Ok(())
}

impl ServerMsg {
    /// Appends the frame to `out`; on error `out` is unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            ServerMsg::Report(r) => {
                encode_report(r, out);
                Ok(())
            }
            ServerMsg::QueryReply(answers) => encode_query_reply(answers, out),
            ServerMsg::PositionsReply { positions, last } => {
                encode_positions(positions, *last, out)
            }
            ServerMsg::Stats(s) => {
                let at = begin(out, STATS_REPLY);
                for v in stats_fields(s) {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                end(out, at);
                Ok(())
            }
            ServerMsg::Pong { nonce } => {
                let at = begin(out, PONG);
                out.extend_from_slice(&nonce.to_le_bytes());
                end(out, at);
                Ok(())
            }
            ServerMsg::OrderIds { ids, last } => encode_order_ids(ids, *last, out),
        }
    }
}

/// Appends one `Orders` frame (at most `ORDERS_PER_FRAME_MAX` orders).
pub fn encode_orders(orders: &[FollowerOrder], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_count("orders", orders.len(), ORDERS_PER_FRAME_MAX)?;
    let at = begin(out, ORDERS);
    out.extend_from_slice(&(orders.len() as u16).to_le_bytes());
    for o in orders {
        put_order(o, out);
    }
    end(out, at);
    Ok(())
}

/// Appends one `OrderIds` frame (at most `ORDER_IDS_PER_FRAME_MAX` ids).
pub fn encode_order_ids(ids: &[u64], last: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_count("order ids", ids.len(), ORDER_IDS_PER_FRAME_MAX)?;
    let at = begin(out, ORDER_IDS);
    out.push(last as u8);
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    end(out, at);
    Ok(())
}

/// Appends one `Query` frame (at most `QUERY_IDS_MAX` ids).
pub fn encode_query(ids: &[u64], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_count("query ids", ids.len(), QUERY_IDS_MAX)?;
    let at = begin(out, QUERY);
    out.extend_from_slice(&(ids.len() as u16).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    end(out, at);
    Ok(())
}

/// Appends one `Report` frame.
pub fn encode_report(report: &ExecReport, out: &mut Vec<u8>) {
    let at = begin(out, REPORT);
    put_report(report, out);
    end(out, at);
}

/// Appends one `QueryReply` frame (at most `QUERY_IDS_MAX` answers, each with at most
/// `FILLS_PER_ANSWER_MAX` fills).
pub fn encode_query_reply(answers: &[QueryAnswer], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_count("query answers", answers.len(), QUERY_IDS_MAX)?;
    for a in answers {
        if let QueryAnswer::Known(h) = a {
            check_count("fills in one answer", h.fills.len(), FILLS_PER_ANSWER_MAX)?;
        }
    }
    let at = begin(out, QUERY_REPLY);
    out.extend_from_slice(&(answers.len() as u16).to_le_bytes());
    for a in answers {
        out.extend_from_slice(&a.order_id().to_le_bytes());
        match a {
            QueryAnswer::Unknown { .. } => out.push(0),
            QueryAnswer::Known(h) => {
                out.push(1);
                // Signed: negative for a sell.
                out.extend_from_slice(&(h.side.sign() * h.qty.0).to_le_bytes());
                out.extend_from_slice(&h.symbol.0.to_le_bytes());
                out.extend_from_slice(&h.limit.0.to_le_bytes());
                out.push(h.acked as u8);
                out.push(h.fills.len() as u8);
                for f in &h.fills {
                    put_report(f, out);
                }
                match &h.end {
                    None => out.push(0),
                    Some(e) => {
                        out.push(1);
                        put_report(e, out);
                    }
                }
            }
        }
    }
    end(out, at);
    Ok(())
}

/// Appends one `PositionsReply` frame (at most `POSITIONS_PER_FRAME_MAX` positions).
pub fn encode_positions(
    positions: &[VenuePosition],
    last: bool,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    check_count("positions", positions.len(), POSITIONS_PER_FRAME_MAX)?;
    let at = begin(out, POSITIONS_REPLY);
    out.push(last as u8);
    out.extend_from_slice(&(positions.len() as u32).to_le_bytes());
    for p in positions {
        out.extend_from_slice(&p.follower.0.to_le_bytes());
        out.extend_from_slice(&p.symbol.0.to_le_bytes());
        out.extend_from_slice(&p.lots.0.to_le_bytes());
    }
    end(out, at);
    Ok(())
}

/// Decodes the frame at the front of `buf`: `Ok(None)` when `buf` holds only part of
/// it, else the message and the bytes it took. A length prefix over the maximum is an
/// error as soon as its 4 bytes are in, before any body arrives.
pub fn decode_client(buf: &[u8]) -> Decoded<ClientMsg> {
    let Some(Frame { kind, body, used }) = split_frame(buf)? else {
        return Ok(None);
    };
    let mut r = Reader::new(kind, body);
    let msg = match kind {
        HELLO => {
            let version = r.u16()?;
            if version != PROTOCOL_VERSION {
                return Err(DecodeError::Version { got: version });
            }
            ClientMsg::Hello { session: r.u64()? }
        }
        ORDERS => {
            let count = r.count_u16("orders", ORDERS_PER_FRAME_MAX, ORDER_BYTES)?;
            let mut orders = Vec::with_capacity(count);
            for _ in 0..count {
                orders.push(r.order()?);
            }
            ClientMsg::Orders(orders)
        }
        QUERY => {
            let count = r.count_u16("query ids", QUERY_IDS_MAX, 8)?;
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.u64()?);
            }
            ClientMsg::Query(ids)
        }
        POSITIONS => ClientMsg::Positions,
        STATS => ClientMsg::Stats,
        PING => ClientMsg::Ping { nonce: r.u64()? },
        ORDERS_SINCE => ClientMsg::OrdersSince { since: r.u64()? },
        SYMBOLS => {
            let first = r.u16()?;
            let count = r.count_u16("symbols", SYMBOLS_PER_FRAME_MAX, SYMBOL_BYTES)?;
            if first as usize + count > u16::MAX as usize + 1 {
                return Err(too_many(
                    kind,
                    "symbol indices",
                    first as usize + count,
                    u16::MAX as usize + 1,
                ));
            }
            let mut terms = Vec::with_capacity(count);
            for _ in 0..count {
                let t = SymbolTerms {
                    min_qty: Lots(r.i64()?),
                    min_notional: Money(r.i64()?),
                    money_per_lot_tick: r.i64()?,
                };
                for (field, ok, v) in [
                    ("min qty", t.min_qty.0 >= 1, t.min_qty.0),
                    ("min notional", t.min_notional.0 >= 0, t.min_notional.0),
                    (
                        "money per lot tick",
                        t.money_per_lot_tick > 0,
                        t.money_per_lot_tick,
                    ),
                ] {
                    if !ok {
                        return Err(DecodeError::BadValue {
                            kind,
                            field,
                            value: v as u64,
                        });
                    }
                }
                terms.push(t);
            }
            ClientMsg::Symbols { first, terms }
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    r.finish()?;
    Ok(Some((msg, used)))
}

/// The server-side twin of `decode_client`.
pub fn decode_server(buf: &[u8]) -> Decoded<ServerMsg> {
    let Some(Frame { kind, body, used }) = split_frame(buf)? else {
        return Ok(None);
    };
    let mut r = Reader::new(kind, body);
    let msg = match kind {
        REPORT => ServerMsg::Report(r.report()?),
        QUERY_REPLY => {
            // The smallest answer is 9 bytes (id and tag), which bounds the allocation.
            let count = r.count_u16("query answers", QUERY_IDS_MAX, 9)?;
            let mut answers = Vec::with_capacity(count);
            for _ in 0..count {
                answers.push(r.answer()?);
            }
            ServerMsg::QueryReply(answers)
        }
        ORDER_IDS => {
            let last = r.bool("last")?;
            let count = r.u32()? as usize;
            if count > ORDER_IDS_PER_FRAME_MAX {
                return Err(too_many(kind, "order ids", count, ORDER_IDS_PER_FRAME_MAX));
            }
            r.need(count * 8)?;
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.u64()?);
            }
            ServerMsg::OrderIds { ids, last }
        }
        POSITIONS_REPLY => {
            let last = r.bool("last")?;
            let count = r.u32()? as usize;
            if count > POSITIONS_PER_FRAME_MAX {
                return Err(too_many(kind, "positions", count, POSITIONS_PER_FRAME_MAX));
            }
            r.need(count * POSITION_BYTES)?;
            let mut positions = Vec::with_capacity(count);
            for _ in 0..count {
                positions.push(VenuePosition {
                    follower: FollowerIdx(r.u32()?),
                    symbol: SymbolIdx(r.u16()?),
                    lots: Lots(r.i64()?),
                });
            }
            ServerMsg::PositionsReply { positions, last }
        }
        STATS_REPLY => {
            let mut v = [0u64; STATS_FIELDS];
            for slot in &mut v {
                *slot = r.u64()?;
            }
            ServerMsg::Stats(VenueStats {
                orders_received: v[0],
                duplicate_client_ids: v[1],
                acks: v[2],
                fills: v[3],
                canceled: v[4],
                rejected: v[5],
                connections: v[6],
                connections_refused: v[7],
                protocol_errors: v[8],
                reports_sent: v[9],
                reports_dropped: v[10],
            })
        }
        PONG => ServerMsg::Pong { nonce: r.u64()? },
        other => return Err(DecodeError::UnknownType(other)),
    };
    r.finish()?;
    Ok(Some((msg, used)))
}

fn stats_fields(s: &VenueStats) -> [u64; STATS_FIELDS] {
    [
        s.orders_received,
        s.duplicate_client_ids,
        s.acks,
        s.fills,
        s.canceled,
        s.rejected,
        s.connections,
        s.connections_refused,
        s.protocol_errors,
        s.reports_sent,
        s.reports_dropped,
    ]
}

fn check_count(what: &'static str, count: usize, max: usize) -> Result<(), EncodeError> {
    if count > max {
        return Err(EncodeError::TooMany { what, count, max });
    }
    Ok(())
}

fn too_many(kind: u8, what: &'static str, count: usize, max: usize) -> DecodeError {
    DecodeError::TooMany {
        kind,
        what,
        count: count as u64,
        max,
    }
}

/// Starts a frame: a length placeholder and the type byte. Returns where it starts.
fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(kind);
    at
}

/// Ends the frame started at `at` by writing its length.
fn end(out: &mut [u8], at: usize) {
    let len = out.len() - at - HEADER_BYTES;
    // The per-type caps are checked before writing, and each fits (see the asserts).
    debug_assert!((1..=FRAME_BYTES_MAX).contains(&len));
    out[at..at + HEADER_BYTES].copy_from_slice(&(len as u32).to_le_bytes());
}

/// One whole frame at the front of a buffer.
struct Frame<'a> {
    kind: u8,
    body: &'a [u8],
    /// Bytes of the frame, length prefix included.
    used: usize,
}

fn split_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_BYTES>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*header) as usize;
    if len == 0 || len > FRAME_BYTES_MAX {
        return Err(DecodeError::Length { len: len as u64 });
    }
    let Some(frame) = buf.get(HEADER_BYTES..HEADER_BYTES + len) else {
        return Ok(None);
    };
    Ok(Some(Frame {
        kind: frame[0],
        body: &frame[1..],
        used: HEADER_BYTES + len,
    }))
}

fn put_order(o: &FollowerOrder, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&o.id.to_le_bytes());
    out.extend_from_slice(&o.sub.0.to_le_bytes());
    out.extend_from_slice(&o.follower.0.to_le_bytes());
    out.extend_from_slice(&o.symbol.0.to_le_bytes());
    out.push(o.side.code());
    out.extend_from_slice(&o.qty.0.to_le_bytes());
    out.push(o.order_type.code());
    out.extend_from_slice(&o.limit.0.to_le_bytes());
    out.push(o.reduce_only as u8);
    out.extend_from_slice(&o.leader_event_key.to_le_bytes());
    out.extend_from_slice(&o.ts.0.to_le_bytes());
    out.extend_from_slice(&o.venue_ts.0.to_le_bytes());
    out.extend_from_slice(&o.ref_price.0.to_le_bytes());
    debug_assert_eq!(out.len() - start, ORDER_BYTES);
}

fn put_report(r: &ExecReport, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&r.order_id.to_le_bytes());
    out.push(r.kind.code());
    out.extend_from_slice(&r.qty.0.to_le_bytes());
    out.extend_from_slice(&r.price.0.to_le_bytes());
    out.extend_from_slice(&r.trade_id.to_le_bytes());
    out.extend_from_slice(&r.fee.0.to_le_bytes());
    out.push(r.reject.code());
    out.extend_from_slice(&r.venue_ts.0.to_le_bytes());
    out.extend_from_slice(&r.recv_ts.0.to_le_bytes());
    debug_assert_eq!(out.len() - start, REPORT_BYTES);
}

/// Reads fixed fields off a frame body; every read is bounds-checked.
struct Reader<'a> {
    kind: u8,
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(kind: u8, body: &'a [u8]) -> Reader<'a> {
        Reader { kind, body, at: 0 }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let truncated = DecodeError::Truncated {
            kind: self.kind,
            at: self.at,
        };
        let bytes = self
            .body
            .get(self.at..self.at.saturating_add(N))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(truncated)?;
        self.at += N;
        Ok(bytes)
    }

    /// Fails unless at least `bytes` remain.
    fn need(&self, bytes: usize) -> Result<(), DecodeError> {
        if self.body.len() - self.at < bytes {
            return Err(DecodeError::Truncated {
                kind: self.kind,
                at: self.body.len(),
            });
        }
        Ok(())
    }

    /// A u16 count, at most `max`, of items of at least `item_bytes` each that the
    /// rest of the body must be able to hold (so no allocation outgrows the frame).
    fn count_u16(
        &mut self,
        what: &'static str,
        max: usize,
        item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.u16()? as usize;
        if count > max {
            return Err(too_many(self.kind, what, count, max));
        }
        self.need(count * item_bytes)?;
        Ok(count)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    fn bad(&self, field: &'static str, value: u8) -> DecodeError {
        DecodeError::BadValue {
            kind: self.kind,
            field,
            value: value as u64,
        }
    }

    /// One byte holding an enum's stable code (`Coded`).
    fn coded<T: Coded>(&mut self, field: &'static str) -> Result<T, DecodeError> {
        let v = self.u8()?;
        T::from_code(v).ok_or_else(|| self.bad(field, v))
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.bad(field, v)),
        }
    }

    fn order(&mut self) -> Result<FollowerOrder, DecodeError> {
        let id = self.u64()?;
        let sub = SubIdx(self.u32()?);
        let follower = FollowerIdx(self.u32()?);
        let symbol = SymbolIdx(self.u16()?);
        let side = self.coded::<Side>("side")?;
        let qty = Lots(self.i64()?);
        let order_type = self.coded::<OrderType>("order type")?;
        Ok(FollowerOrder {
            id,
            sub,
            follower,
            symbol,
            side,
            qty,
            order_type,
            limit: Ticks(self.i64()?),
            reduce_only: self.bool("reduce_only")?,
            leader_event_key: self.u64()?,
            ts: Nanos(self.u64()?),
            venue_ts: Nanos(self.u64()?),
            ref_price: Ticks(self.i64()?),
        })
    }

    fn report(&mut self) -> Result<ExecReport, DecodeError> {
        let order_id = self.u64()?;
        let kind = self.coded::<ExecKind>("exec kind")?;
        let qty = Lots(self.i64()?);
        let price = Ticks(self.i64()?);
        let trade_id = self.u64()?;
        let fee = Money(self.i64()?);
        let reject = self.coded::<RejectReason>("reject reason")?;
        Ok(ExecReport {
            order_id,
            kind,
            qty,
            price,
            trade_id,
            fee,
            reject,
            venue_ts: Nanos(self.u64()?),
            recv_ts: Nanos(self.u64()?),
        })
    }

    fn answer(&mut self) -> Result<QueryAnswer, DecodeError> {
        let order_id = self.u64()?;
        if !self.bool("answer tag")? {
            return Ok(QueryAnswer::Unknown { order_id });
        }
        let signed = self.i64()?;
        let side = if signed < 0 { Side::Sell } else { Side::Buy };
        let qty = Lots(signed.checked_abs().ok_or(DecodeError::BadValue {
            kind: self.kind,
            field: "order quantity",
            value: signed as u64,
        })?);
        let symbol = SymbolIdx(self.u16()?);
        let limit = Ticks(self.i64()?);
        let acked = self.bool("acked")?;
        let count = self.u8()? as usize;
        if count > FILLS_PER_ANSWER_MAX {
            return Err(too_many(self.kind, "fills", count, FILLS_PER_ANSWER_MAX));
        }
        self.need(count * REPORT_BYTES)?;
        let mut fills = Vec::with_capacity(count);
        for _ in 0..count {
            fills.push(self.report()?);
        }
        let end = if self.bool("has end")? {
            Some(self.report()?)
        } else {
            None
        };
        Ok(QueryAnswer::Known(OrderHistory {
            order_id,
            qty,
            side,
            symbol,
            limit,
            acked,
            fills,
            end,
        }))
    }

    fn finish(self) -> Result<(), DecodeError> {
        let extra = self.body.len() - self.at;
        if extra > 0 {
            return Err(DecodeError::Trailing {
                kind: self.kind,
                extra,
            });
        }
        Ok(())
    }
}

/// What one `FrameReader::fill` saw.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadState {
    /// The socket has nothing more for now.
    WouldBlock,
    /// The buffer is full: decode frames, then fill again.
    Full,
    /// The peer closed its side.
    Eof,
}

/// A fixed read buffer that holds one largest frame: allocated once, never grows.
pub(crate) struct FrameReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl FrameReader {
    pub(crate) fn new() -> FrameReader {
        FrameReader {
            buf: vec![0; HEADER_BYTES + FRAME_BYTES_MAX].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Reads what `src` has, until it would block, the buffer is full, or end of
    /// stream. Errors other than would-block and interrupted are returned.
    pub(crate) fn fill(&mut self, src: &mut impl Read) -> io::Result<ReadState> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // Bounded: each pass reads at least one byte or returns.
        loop {
            if self.end == self.buf.len() {
                return Ok(ReadState::Full);
            }
            match src.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(ReadState::Eof),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadState::WouldBlock)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next complete frame, decoded by `decode`, if the buffer holds one.
    pub(crate) fn next<T>(
        &mut self,
        decode: fn(&[u8]) -> Decoded<T>,
    ) -> Result<Option<T>, DecodeError> {
        match decode(&self.buf[self.start..self.end])? {
            Some((msg, used)) => {
                debug_assert!(used <= self.end - self.start);
                self.start += used;
                Ok(Some(msg))
            }
            None => Ok(None),
        }
    }

    /// Forgets what it holds (a new connection starts with an empty buffer).
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Bytes received and not yet decoded.
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start
    }
}

/// An outgoing byte queue: frames are appended, the socket takes what it can.
#[derive(Default)]
pub(crate) struct FrameWriter {
    buf: Vec<u8>,
    start: usize,
}

impl FrameWriter {
    /// Bytes not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Where frames are appended.
    pub(crate) fn buf(&mut self) -> &mut Vec<u8> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        &mut self.buf
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Writes until the socket would block or nothing is left.
    pub(crate) fn flush(&mut self, dst: &mut impl Write) -> io::Result<()> {
        // Bounded: each pass writes at least one byte or returns.
        while self.start < self.buf.len() {
            match dst.write(&self.buf[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(())
    }
}
