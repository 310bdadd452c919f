//! FIX 4.4 application messages as the engine's events, and back: what an
//! order-entry session writes for a follower order (NewOrderSingle, 35=D), what
//! an ExecutionReport (35=8) on it means to the engine (`ExecReport`), and what
//! one on a drop-copy session means (a `LeaderFill`).
//!
//! Independent of the wire: the session reads a message's fields into an
//! `Execution` (borrowed from the socket buffer) and writes a `NewOrder`'s fields
//! with the codec. Quantities and prices become whole lots and ticks exactly, or
//! the message is refused with a reason the source or gateway counts: never a
//! rounding, never an `f64`.

use fillcast_engine::event::{
    ExecKind, ExecReport, FillKind, FollowerOrder, LeaderFill, OrderType, RejectReason,
};
use fillcast_engine::ids::{fnv1a, leader_event_key, parse_client_order_id};
use fillcast_engine::model::{LeaderIdx, Side, SymbolSpec, Universe};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use rust_decimal::Decimal;

use super::codec::{
    parse_char, parse_decimal, parse_str, parse_timestamp, EncodeError, FieldError, Message,
    ValueError, Writer,
};

/// How a venue is told that an order may only reduce a position.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ReduceOnly {
    /// ExecInst (18) = `E`, "Do not increase" (FIX 4.4's own way).
    #[default]
    ExecInstDoNotIncrease,
    /// Nothing on the message: the venue is not told (its risk checks, or the
    /// account's settings, must keep the order from opening).
    NotSent,
}

/// The engine's client order id (`ids::client_order_id`: `fc` and 16 hex
/// digits) without a `String`: an order on its way out allocates nothing for it.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct ClOrdId([u8; 18]);

impl ClOrdId {
    pub fn of(order_id: u64) -> ClOrdId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b = [0u8; 18];
        b[0] = b'f';
        b[1] = b'c';
        for (i, d) in b[2..].iter_mut().enumerate() {
            *d = HEX[(order_id >> (60 - 4 * i) & 0xf) as usize];
        }
        ClOrdId(b)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII was written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Debug for ClOrdId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NewOrderSingle's application fields for one follower order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder<'a> {
    /// ClOrdID (11): the engine's client order id, so that a restart's
    /// OrderStatusRequest and every execution report find the order.
    pub cl_ord_id: ClOrdId,
    /// Account (1): the follower's account at the venue.
    pub account: &'a str,
    /// Symbol (55).
    pub symbol: &'a str,
    /// Side (54): `1` buy, `2` sell.
    pub side: u8,
    /// OrderQty (38), exact.
    pub qty: Decimal,
    /// OrdType (40): `1` market, `2` limit.
    pub ord_type: u8,
    /// Price (44), for a limit order.
    pub price: Option<Decimal>,
    /// TimeInForce (59): `3`, immediate or cancel: the engine never rests orders.
    pub time_in_force: u8,
    /// ExecInst (18), when the order may only reduce.
    pub exec_inst: Option<&'static str>,
    /// TransactTime (60): when the engine decided it.
    pub transact_time: Nanos,
}

impl<'a> NewOrder<'a> {
    /// The NewOrderSingle for `o`, in `u`'s symbol units, for `account`.
    pub fn of(o: &FollowerOrder, u: &'a Universe, account: &'a str, style: ReduceOnly) -> Self {
        let spec = u.sym(o.symbol);
        let limit = o.order_type == OrderType::LimitIoc;
        NewOrder {
            cl_ord_id: ClOrdId::of(o.id),
            account,
            symbol: &spec.name,
            side: match o.side {
                Side::Buy => b'1',
                Side::Sell => b'2',
            },
            qty: o.qty.to_decimal(spec.lot_size).normalize(),
            ord_type: if limit { b'2' } else { b'1' },
            price: limit.then(|| o.limit.to_decimal(spec.tick_size).normalize()),
            time_in_force: b'3',
            exec_inst: (o.reduce_only && style == ReduceOnly::ExecInstDoNotIncrease).then_some("E"),
            transact_time: o.ts,
        }
    }
}

impl NewOrder<'_> {
    /// Writes its fields after the standard header of a NewOrderSingle (35=D).
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str(11, self.cl_ord_id.as_str())?
            .str(1, self.account)?
            .str(55, self.symbol)?
            .char(54, self.side)?
            // Milliseconds: FIX 4.4 defines UTCTimestamp to them, and its validators
            // (QuickFIX's) refuse more digits.
            .timestamp(60, self.transact_time, super::codec::TimePrecision::Millis)?
            .decimal(38, &self.qty)?
            .char(40, self.ord_type)?;
        if let Some(p) = &self.price {
            w.decimal(44, p)?;
        }
        w.char(59, self.time_in_force)?;
        if let Some(e) = self.exec_inst {
            w.str(18, e)?;
        }
        Ok(())
    }
}

/// The fields of an ExecutionReport (35=8) that the engine reads, borrowed from
/// the message. Absent fields are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Execution<'a> {
    /// Account (1).
    pub account: Option<&'a str>,
    /// ClOrdID (11).
    pub cl_ord_id: Option<&'a str>,
    /// ExecID (17).
    pub exec_id: Option<&'a str>,
    /// OrderID (37): the venue's.
    pub order_id: Option<&'a str>,
    /// ExecType (150).
    pub exec_type: Option<u8>,
    /// OrdStatus (39).
    pub ord_status: Option<u8>,
    /// Symbol (55).
    pub symbol: Option<&'a str>,
    /// Side (54).
    pub side: Option<u8>,
    /// OrderQty (38).
    pub order_qty: Option<Decimal>,
    /// CumQty (14): the order's filled quantity so far.
    pub cum_qty: Option<Decimal>,
    /// LastQty (32) and LastPx (31): this execution's fill.
    pub last_qty: Option<Decimal>,
    pub last_px: Option<Decimal>,
    /// OrdRejReason (103).
    pub ord_rej_reason: Option<u32>,
    /// TransactTime (60), ns since the epoch.
    pub transact_time: Option<u64>,
    /// PossDupFlag (43) = Y: possibly sent before (a resend). Fills are
    /// de-duplicated on their ExecID whatever it says.
    pub poss_dup: bool,
}

impl<'a> Execution<'a> {
    /// The fields of ExecutionReport `m`: an absent one is `None`, a present one
    /// that does not parse as its type an error naming its tag.
    pub fn read(m: &Message<'a>) -> Result<Execution<'a>, FieldError> {
        let text = |tag| opt(m, tag, parse_str);
        let char = |tag| opt(m, tag, parse_char);
        let dec = |tag| opt(m, tag, parse_decimal);
        Ok(Execution {
            account: text(1)?,
            cl_ord_id: text(11)?,
            exec_id: text(17)?,
            order_id: text(37)?,
            exec_type: char(150)?,
            ord_status: char(39)?,
            symbol: text(55)?,
            side: char(54)?,
            order_qty: dec(38)?,
            cum_qty: dec(14)?,
            last_qty: dec(32)?,
            last_px: dec(31)?,
            ord_rej_reason: opt(m, 103, |v| {
                super::codec::parse_u64(v)
                    .and_then(|n| u32::try_from(n).map_err(|_| ValueError::Overflow))
            })?,
            transact_time: opt(m, 60, parse_timestamp)?.map(|t| t.0),
            poss_dup: m.get(43) == Some(b"Y"),
        })
    }
}

/// Optional field `tag` of `m`, parsed by `parse`.
pub(crate) fn opt<'a, T>(
    m: &Message<'a>,
    tag: u32,
    parse: impl Fn(&'a [u8]) -> Result<T, ValueError>,
) -> Result<Option<T>, FieldError> {
    m.get(tag)
        .map(|v| parse(v).map_err(|error| FieldError::Invalid { tag, error }))
        .transpose()
}

/// Why an ExecutionReport was not taken; each is counted by the session that
/// read it, and a drop-copy one is logged with the message's ExecID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("required field {0} is missing")]
    Missing(&'static str),
    #[error("ClOrdID `{0}` is not an order of this engine")]
    ForeignOrder(String),
    #[error("ExecType `{0}` is not one this engine reads")]
    ExecType(char),
    #[error("ExecType `{0}` (a trade correction or bust) is not applied: the engine does not take fills back; reconcile by hand")]
    Correction(char),
    #[error("Account `{0}` is no leader of this engine")]
    UnknownAccount(String),
    #[error("symbol `{0}` is not in force")]
    UnknownSymbol(String),
    #[error("Side `{0}` is not buy (1) or sell (2, 5, 6)")]
    Side(char),
    #[error("{field} {value} is not a positive whole number of {symbol}'s {step} {size}")]
    NotMultiple {
        field: &'static str,
        value: Decimal,
        step: &'static str,
        size: Decimal,
        symbol: String,
    },
    #[error("OrderQty {order_qty} is less than LastQty {last_qty}")]
    OrderQtyBelowLastQty {
        order_qty: Decimal,
        last_qty: Decimal,
    },
}

/// What an execution report on the order-entry session means to the engine:
/// `None` for one that changes nothing there (a pending state, a replace the
/// engine never asks for).
pub fn order_report(
    e: &Execution<'_>,
    u: &Universe,
    recv: Nanos,
) -> Result<Option<ExecReport>, Refused> {
    let cl = e.cl_ord_id.ok_or(Refused::Missing("ClOrdID (11)"))?;
    let order_id =
        parse_client_order_id(cl).ok_or_else(|| Refused::ForeignOrder(cl.to_string()))?;
    let exec_type = e.exec_type.ok_or(Refused::Missing("ExecType (150)"))?;
    let base = ExecReport {
        order_id,
        venue_ts: Nanos(e.transact_time.unwrap_or(0)),
        recv_ts: recv,
        ..ExecReport::default()
    };
    let kind = match exec_type {
        b'0' => ExecKind::Ack,
        b'F' => {
            let symbol = e.symbol.ok_or(Refused::Missing("Symbol (55)"))?;
            let s = u
                .symbol(symbol)
                .ok_or_else(|| Refused::UnknownSymbol(symbol.to_string()))?;
            let spec = u.sym(s);
            let exec_id = e.exec_id.ok_or(Refused::Missing("ExecID (17)"))?;
            return Ok(Some(ExecReport {
                kind: ExecKind::Fill,
                qty: lots(spec, "LastQty (32)", e.last_qty)?,
                price: ticks(spec, e.last_px)?,
                trade_id: fnv1a(exec_id.as_bytes()).max(1),
                ..base
            }));
        }
        b'4' => ExecKind::Canceled,
        b'C' => ExecKind::Expired,
        b'8' => {
            return Ok(Some(ExecReport {
                kind: ExecKind::Rejected,
                reject: reject_reason(e.ord_rej_reason),
                ..base
            }))
        }
        // Pending new, pending cancel, replaced, pending replace, done for day,
        // calculated, order status (answered by the recovery, not here).
        b'A' | b'6' | b'5' | b'E' | b'3' | b'B' | b'I' => return Ok(None),
        b'G' | b'H' => return Err(Refused::Correction(exec_type as char)),
        other => return Err(Refused::ExecType(other as char)),
    };
    Ok(Some(ExecReport { kind, ..base }))
}

/// OrdRejReason (103) as the engine's reject policies group it. FIX 4.4 has no
/// code for margin; a venue that says it with its own code needs that code
/// mapped in its config (not built yet), and until then it reads as `Other`.
pub fn reject_reason(code: Option<u32>) -> RejectReason {
    match code {
        // Exchange closed, too late to enter: nothing wrong with the order.
        Some(2) | Some(4) => RejectReason::Transient,
        // Order exceeds limit.
        Some(3) => RejectReason::PositionLimit,
        // Unknown order.
        Some(5) => RejectReason::UnknownOrder,
        // Incorrect quantity.
        Some(13) => RejectReason::BelowMin,
        _ => RejectReason::Other,
    }
}

/// A drop-copy execution as a leader's fill: `Ok(None)` for an execution that is
/// not a trade (an ack, a cancel: counted and ignored by the source), `Err` for
/// one that cannot be taken (a correction, an unknown account, a quantity off the
/// lot). `leader` maps Account (1) to a leader.
pub fn leader_fill(
    e: &Execution<'_>,
    u: &Universe,
    leader: impl Fn(&str) -> Option<LeaderIdx>,
    recv: Nanos,
) -> Result<Option<LeaderFill>, Refused> {
    match e.exec_type.ok_or(Refused::Missing("ExecType (150)"))? {
        b'F' => {}
        t @ (b'G' | b'H') => return Err(Refused::Correction(t as char)),
        _ => return Ok(None),
    }
    let account = e.account.ok_or(Refused::Missing("Account (1)"))?;
    let l = leader(account).ok_or_else(|| Refused::UnknownAccount(account.to_string()))?;
    let symbol = e.symbol.ok_or(Refused::Missing("Symbol (55)"))?;
    let s = u
        .symbol_in_force(symbol)
        .ok_or_else(|| Refused::UnknownSymbol(symbol.to_string()))?;
    let spec = u.sym(s);
    let side = match e.side.ok_or(Refused::Missing("Side (54)"))? {
        b'1' => Side::Buy,
        // Sell, sell short, sell short exempt: all take from the position.
        b'2' | b'5' | b'6' => Side::Sell,
        other => return Err(Refused::Side(other as char)),
    };
    let exec_id = e.exec_id.ok_or(Refused::Missing("ExecID (17)"))?;
    let qty = lots(spec, "LastQty (32)", e.last_qty)?;
    let (order_key, order_qty) = match (e.order_id, e.order_qty) {
        (Some(id), Some(oq)) if !id.is_empty() => {
            let order_qty = lots(spec, "OrderQty (38)", Some(oq))?;
            if order_qty < qty {
                return Err(Refused::OrderQtyBelowLastQty {
                    order_qty: oq,
                    last_qty: e.last_qty.unwrap_or_default(),
                });
            }
            (fnv1a(id.as_bytes()), order_qty)
        }
        // Without both, the fill counts as its own order (as in the file source).
        _ => (0, Lots::ZERO),
    };
    Ok(Some(LeaderFill {
        leader: l,
        symbol: s,
        side,
        qty,
        price: ticks(spec, e.last_px)?,
        event_key: leader_event_key(&u.leaders[l.0 as usize].id, exec_id),
        order_key,
        order_qty,
        venue_ts: Nanos(
            e.transact_time
                .ok_or(Refused::Missing("TransactTime (60)"))?,
        ),
        recv_ts: recv,
        // A drop copy says nothing of who made the order.
        kind: FillKind::Trade,
    }))
}

/// A quantity field in whole lots of `spec`, exactly and positive.
fn lots(spec: &SymbolSpec, field: &'static str, v: Option<Decimal>) -> Result<Lots, Refused> {
    let v = v.ok_or(Refused::Missing(field))?;
    let off = || Refused::NotMultiple {
        field,
        value: v,
        step: "lot size",
        size: spec.lot_size,
        symbol: spec.name.clone(),
    };
    let l = Lots::from_decimal(v, spec.lot_size).map_err(|_| off())?;
    // The division can round a value of many digits to a whole number.
    if l.0 <= 0 || l > Lots::MAX || l.to_decimal(spec.lot_size) != v {
        return Err(off());
    }
    Ok(l)
}

/// LastPx (31) in whole ticks of `spec`, exactly and positive.
fn ticks(spec: &SymbolSpec, v: Option<Decimal>) -> Result<Ticks, Refused> {
    let field = "LastPx (31)";
    let v = v.ok_or(Refused::Missing(field))?;
    let off = || Refused::NotMultiple {
        field,
        value: v,
        step: "tick size",
        size: spec.tick_size,
        symbol: spec.name.clone(),
    };
    let t = Ticks::from_decimal(v, spec.tick_size).map_err(|_| off())?;
    if t.0 <= 0 || t.to_decimal(spec.tick_size) != v {
        return Err(off());
    }
    Ok(t)
}
