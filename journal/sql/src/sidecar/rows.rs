//! The rows the sidecar writes, one struct per table, and the one way each becomes
//! column values (`put`), shared by the SQLite and PostgreSQL writers.
//!
//! Rows hold the journal's integers (lots, ticks, indices) and become decimals and
//! names only when written, under the config that was in force when they were
//! built: the driver never lets a batch span two config revisions.

use crate::sidecar::build::{Order, Position};
use crate::sidecar::schema;
use fillcast_engine::codes::Coded;
use fillcast_engine::event::{FillKind, RejectReason};
use fillcast_engine::model::{Side, Universe};
use fillcast_engine::outputs::{DecisionStatus, Reason, SyncReason};
use fillcast_engine::units::{FundingRate, Lots, Money, Ticks};
use rust_decimal::Decimal;

/// Where a row's column values go: bound to a prepared statement, or appended to
/// a COPY buffer. Values arrive in the table's column order.
pub(crate) trait Sink {
    fn int(&mut self, v: i64);
    fn text(&mut self, v: &str);
    fn dec(&mut self, v: Decimal);
    fn flag(&mut self, v: bool);
    fn null(&mut self);

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    fn opt_text(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    fn opt_dec(&mut self, v: Option<Decimal>) {
        match v {
            Some(v) => self.dec(v),
            None => self.null(),
        }
    }
}

/// A table the sidecar writes: its columns in `put` order, and how a row whose key
/// is already there is treated.
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [&'static str],
    pub conflict: Conflict,
}

impl Table {
    /// The schema's table `c` (all its columns, in its order).
    const fn of(c: schema::Columns, conflict: Conflict) -> Table {
        Table {
            name: c.table,
            columns: c.names,
            conflict,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Append-only: a second row with the same key is a bug, and fails the batch.
    Fail,
    /// Keep the row already there (a config revision seen again).
    Ignore(&'static [&'static str]),
    /// Replace the non-key columns (state that changes: orders, positions, names).
    Update(&'static [&'static str]),
}

impl Table {
    pub fn column_list(&self) -> String {
        self.columns.join(", ")
    }

    /// The `ON CONFLICT` clause of an insert into this table (SQLite and
    /// PostgreSQL spell it the same way).
    pub fn on_conflict(&self) -> String {
        match self.conflict {
            Conflict::Fail => String::new(),
            Conflict::Ignore(keys) => format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")),
            Conflict::Update(keys) => {
                let set: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|c| !keys.contains(c))
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect();
                format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    keys.join(", "),
                    set.join(", ")
                )
            }
        }
    }
}

pub(crate) trait Row {
    const TABLE: Table;
    /// The row's values, in `TABLE.columns` order. `Err` only for values a
    /// decimal cannot hold (a hostile journal).
    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError>;
}

/// A 16-hex-digit id (`event_id`, `order_id`, revisions) or a client order id
/// (`fc` + 16 hex digits), formatted without allocating.
pub(crate) struct Id {
    buf: [u8; 18],
    len: usize,
}

impl Id {
    fn with_prefix(prefix: &[u8], v: u64) -> Id {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 18];
        buf[..prefix.len()].copy_from_slice(prefix);
        for i in 0..16 {
            buf[prefix.len() + i] = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
        Id {
            buf,
            len: prefix.len() + 16,
        }
    }

    pub fn hex(v: u64) -> Id {
        Id::with_prefix(b"", v)
    }

    /// `fillcast_engine::ids::client_order_id(v)`.
    pub fn client_order(v: u64) -> Id {
        Id::with_prefix(b"fc", v)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and the ASCII prefix are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

pub(crate) fn leader_name(u: &Universe, i: u32) -> &str {
    u.leaders.get(i as usize).map_or("", |l| l.id.as_str())
}

pub(crate) fn follower_name(u: &Universe, i: u32) -> &str {
    u.followers.get(i as usize).map_or("", |f| f.id.as_str())
}

pub(crate) fn sub_name(u: &Universe, i: u32) -> &str {
    u.subs.get(i as usize).map_or("", |s| s.id.as_str())
}

pub(crate) fn symbol_name(u: &Universe, i: u16) -> &str {
    u.symbols.get(i as usize).map_or("", |s| s.name.as_str())
}

fn qty(u: &Universe, symbol: u16, lots: i64) -> Decimal {
    u.symbols
        .get(symbol as usize)
        .map_or(Decimal::ZERO, |s| s.qty_decimal(Lots(lots)))
}

fn price(u: &Universe, symbol: u16, ticks: i64) -> Decimal {
    u.symbols
        .get(symbol as usize)
        .map_or(Decimal::ZERO, |s| s.price_decimal(Ticks(ticks)))
}

/// Money (units of 1e-8 of the quote currency) as the shortest exact decimal.
pub(crate) fn money(v: i64) -> Decimal {
    Money(v).to_decimal().normalize()
}

fn money_i128(v: i128) -> Result<Decimal, RowError> {
    Decimal::try_from_i128_with_scale(v, 8)
        .map(|d| d.normalize())
        .map_err(|_| RowError::MoneyTooLarge(v))
}

/// Why a row cannot become column values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RowError {
    #[error("money amount {0}e-8 does not fit a decimal")]
    MoneyTooLarge(i128),
    #[error("position cost {0} lots × ticks does not fit")]
    CostTooLarge(i128),
    /// An index the config in force does not have.
    #[error("no such {0}")]
    NoSuch(&'static str),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaderFillRow {
    pub seq: i64,
    pub leader: u32,
    pub event_key: u64,
    pub symbol: u16,
    pub side: Side,
    pub qty: i64,
    pub price: i64,
    pub position_after: i64,
    pub order_key: u64,
    pub order_qty: i64,
    pub venue_ts: i64,
    pub recv_ts: i64,
    pub ignored: &'static str,
    pub kind: FillKind,
}

impl Row for LeaderFillRow {
    const TABLE: Table = Table::of(schema::LEADER_FILLS, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.int(self.seq);
        s.text(leader_name(u, self.leader));
        s.text(Id::hex(self.event_key).as_str());
        s.text(symbol_name(u, self.symbol));
        s.text(self.side.as_str());
        s.dec(qty(u, self.symbol, self.qty));
        s.dec(price(u, self.symbol, self.price));
        s.dec(qty(u, self.symbol, self.position_after));
        if self.order_key == 0 {
            s.null();
        } else {
            s.text(Id::hex(self.order_key).as_str());
        }
        s.opt_dec((self.order_qty != 0).then(|| qty(u, self.symbol, self.order_qty)));
        s.int(self.venue_ts);
        s.int(self.recv_ts);
        s.text(self.ignored);
        s.text(self.kind.as_str());
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaderPositionRow {
    pub leader: u32,
    pub symbol: u16,
    pub qty: i64,
    pub updated_seq: i64,
}

impl Row for LeaderPositionRow {
    const TABLE: Table = Table::of(
        schema::LEADER_POSITIONS,
        Conflict::Update(&["leader_id", "symbol"]),
    );

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.text(leader_name(u, self.leader));
        s.text(symbol_name(u, self.symbol));
        s.dec(qty(u, self.symbol, self.qty));
        s.int(self.updated_seq);
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstructionRow {
    pub seq: i64,
    pub leader_fill_seq: Option<i64>,
    pub event_key: u64,
    pub sub: u32,
    pub symbol: u16,
    pub target: i64,
    pub delta: i64,
    pub sent: i64,
    pub status: DecisionStatus,
    pub reason: Reason,
    pub revision: u64,
    pub resync: SyncReason,
}

impl Row for InstructionRow {
    const TABLE: Table = Table::of(schema::COPY_INSTRUCTIONS, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u.subs.get(self.sub as usize);
        s.int(self.seq);
        s.opt_int(self.leader_fill_seq);
        s.text(Id::hex(self.event_key).as_str());
        s.text(sub_name(u, self.sub));
        s.text(spec.map_or("", |sp| follower_name(u, sp.follower.0)));
        s.text(spec.map_or("", |sp| leader_name(u, sp.leader.0)));
        s.text(symbol_name(u, self.symbol));
        s.dec(qty(u, self.symbol, self.target));
        s.dec(qty(u, self.symbol, self.delta));
        s.dec(qty(u, self.symbol, self.sent));
        s.text(self.status.as_str());
        s.text(self.reason.as_str());
        s.text(Id::hex(self.revision).as_str());
        s.text(self.resync.as_str());
        Ok(())
    }
}

impl Row for Order {
    const TABLE: Table = Table::of(
        schema::FOLLOWER_ORDERS,
        Conflict::Update(&["client_order_id"]),
    );

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u.subs.get(self.sub as usize);
        let venue = u
            .symbols
            .get(self.symbol as usize)
            .and_then(|sym| u.venues.get(sym.venue.0 as usize))
            .map_or("", |v| v.name.as_str());
        s.text(Id::client_order(self.id).as_str());
        s.int(self.seq);
        s.opt_int(self.instruction_seq);
        if self.event_key == 0 {
            s.null();
        } else {
            s.text(Id::hex(self.event_key).as_str());
        }
        s.text(sub_name(u, self.sub));
        s.text(follower_name(u, self.follower));
        s.text(spec.map_or("", |sp| leader_name(u, sp.leader.0)));
        s.text(venue);
        s.text(symbol_name(u, self.symbol));
        s.text(self.side.as_str());
        s.dec(qty(u, self.symbol, self.qty));
        s.dec(price(u, self.symbol, self.limit));
        s.text(self.order_type.name());
        s.flag(self.reduce_only);
        s.text(self.state.as_str());
        s.dec(qty(u, self.symbol, self.filled));
        s.opt_text(self.reject.map(RejectReason::as_str));
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct FillRow {
    pub order_id: u64,
    pub trade_id: u64,
    pub seq: i64,
    pub follower: u32,
    pub sub: u32,
    pub symbol: u16,
    pub side: Side,
    pub qty: i64,
    pub price: i64,
    pub fee: i64,
    pub ts: i64,
}

impl Row for FillRow {
    const TABLE: Table = Table::of(
        schema::FOLLOWER_FILLS,
        Conflict::Ignore(&["client_order_id", "venue_trade_id"]),
    );

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.text(Id::client_order(self.order_id).as_str());
        s.text(&self.trade_id.to_string());
        s.int(self.seq);
        s.text(follower_name(u, self.follower));
        s.text(sub_name(u, self.sub));
        s.text(symbol_name(u, self.symbol));
        s.text(self.side.as_str());
        s.dec(qty(u, self.symbol, self.qty));
        s.dec(price(u, self.symbol, self.price));
        s.dec(money(self.fee));
        s.int(self.ts);
        Ok(())
    }
}

impl Row for Position {
    const TABLE: Table = Table::of(
        schema::POSITIONS,
        Conflict::Update(&["subscription_id", "symbol"]),
    );

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u.subs.get(self.sub as usize);
        let (lot, tick) = u
            .symbols
            .get(self.symbol as usize)
            .map_or((Decimal::ONE, Decimal::ONE), |sy| {
                (sy.lot_size, sy.tick_size)
            });
        let too_big = || RowError::CostTooLarge(self.cost);
        let cost_lt = Decimal::try_from_i128_with_scale(self.cost, 0).map_err(|_| too_big())?;
        let cost_basis = cost_lt
            .checked_mul(lot)
            .and_then(|c| c.checked_mul(tick))
            .ok_or_else(too_big)?;
        // Average entry price in ticks is cost ÷ |qty|; rounded only for reading,
        // `cost_basis` keeps it exactly.
        let avg = if self.qty == 0 {
            None
        } else {
            let avg = cost_lt
                .checked_mul(tick)
                .and_then(|c| c.checked_div(Decimal::from(self.qty.unsigned_abs())))
                .ok_or_else(too_big)?;
            Some(avg.abs().round_dp(tick.scale() + 8).normalize())
        };
        s.text(sub_name(u, self.sub));
        s.text(symbol_name(u, self.symbol));
        s.text(spec.map_or("", |sp| follower_name(u, sp.follower.0)));
        s.text(spec.map_or("", |sp| leader_name(u, sp.leader.0)));
        s.dec(qty(u, self.symbol, self.qty));
        s.opt_dec(avg);
        s.dec(money_i128(self.realized)?);
        s.int(self.updated_seq);
        s.dec(cost_basis.normalize());
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct MarkRow {
    pub seq: i64,
    pub symbol: u16,
    pub ts: i64,
    pub price: i64,
}

impl Row for MarkRow {
    const TABLE: Table = Table::of(schema::MARK_PRICES, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.int(self.seq);
        s.text(symbol_name(u, self.symbol));
        s.int(self.ts);
        s.dec(price(u, self.symbol, self.price));
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct EquityRow {
    pub seq: i64,
    pub leader: u32,
    pub ts: i64,
    pub equity: i64,
}

impl Row for EquityRow {
    const TABLE: Table = Table::of(schema::LEADER_EQUITY, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.int(self.seq);
        s.text(leader_name(u, self.leader));
        s.int(self.ts);
        s.dec(money(self.equity));
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct FollowerEquityRow {
    pub seq: i64,
    pub follower: u32,
    pub ts: i64,
    pub equity: i64,
}

impl Row for FollowerEquityRow {
    const TABLE: Table = Table::of(schema::FOLLOWER_EQUITY, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.int(self.seq);
        s.text(follower_name(u, self.follower));
        s.int(self.ts);
        s.dec(money(self.equity));
        Ok(())
    }
}

/// A funding input: the symbol's rate at its mark price.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct FundingRateRow {
    pub seq: i64,
    pub symbol: u16,
    pub ts: i64,
    pub rate: FundingRate,
    pub price: i64,
}

impl Row for FundingRateRow {
    const TABLE: Table = Table::of(schema::FUNDING_RATES, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.int(self.seq);
        s.text(symbol_name(u, self.symbol));
        s.int(self.ts);
        s.dec(self.rate.to_decimal());
        s.dec(price(u, self.symbol, self.price));
        Ok(())
    }
}

/// Who holds a position that pays or receives funding.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Holder {
    Leader(u32),
    Subscription(u32),
}

/// One position's funding at one funding input (`accounting::funding_payment`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct FundingPaymentRow {
    pub seq: i64,
    /// The row's place among its record's rows.
    pub line: i64,
    pub ts: i64,
    pub symbol: u16,
    pub holder: Holder,
    /// Signed lots.
    pub qty: i64,
    pub price: i64,
    pub rate: FundingRate,
    pub amount: Money,
}

impl Row for FundingPaymentRow {
    const TABLE: Table = Table::of(schema::FUNDING_PAYMENTS, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.int(self.seq);
        s.int(self.line);
        s.int(self.ts);
        s.text(symbol_name(u, self.symbol));
        match self.holder {
            Holder::Leader(l) => {
                s.text(leader_name(u, l));
                s.null();
                s.null();
            }
            Holder::Subscription(sub) => {
                let spec = u
                    .subs
                    .get(sub as usize)
                    .ok_or(RowError::NoSuch("subscription"))?;
                s.text(leader_name(u, spec.leader.0));
                s.text(follower_name(u, spec.follower.0));
                s.text(&spec.id);
            }
        }
        s.dec(qty(u, self.symbol, self.qty));
        s.dec(price(u, self.symbol, self.price));
        s.dec(self.rate.to_decimal());
        s.dec(money(self.amount.0));
        Ok(())
    }
}

/// A subscription whose allocation a config revision changed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AllocationChangeRow {
    /// The config record's.
    pub seq: i64,
    pub sub: u32,
    pub ts: i64,
    pub before: i64,
    pub after: i64,
    pub revision: u64,
}

impl Row for AllocationChangeRow {
    const TABLE: Table = Table::of(schema::ALLOCATION_CHANGES, Conflict::Fail);

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u
            .subs
            .get(self.sub as usize)
            .ok_or(RowError::NoSuch("subscription"))?;
        s.int(self.seq);
        s.text(&spec.id);
        s.text(follower_name(u, spec.follower.0));
        s.text(leader_name(u, spec.leader.0));
        s.int(self.ts);
        s.dec(money(self.before));
        s.dec(money(self.after));
        s.text(Id::hex(self.revision).as_str());
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub ts: i64,
    /// `config`, `command`, `stop`, `reject`, `oddity` or `out_of_sync`.
    pub kind: &'static str,
    pub subject: String,
    pub reason: &'static str,
    pub detail: String,
}

impl Row for AuditRow {
    const TABLE: Table = Table::of(schema::AUDIT_LOG, Conflict::Fail);

    fn put<S: Sink>(&self, _u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.int(self.seq);
        s.int(self.ts);
        s.text(self.kind);
        s.text(&self.subject);
        s.text(self.reason);
        s.text(&self.detail);
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfigRow {
    pub revision: u64,
    pub seq: i64,
    pub toml: String,
}

impl Row for ConfigRow {
    const TABLE: Table = Table::of(schema::CONFIG_REVISIONS, Conflict::Ignore(&["revision"]));

    fn put<S: Sink>(&self, _u: &Universe, s: &mut S) -> Result<(), RowError> {
        s.text(Id::hex(self.revision).as_str());
        s.int(self.seq);
        s.text(&self.toml);
        Ok(())
    }
}

/// The name tables, written whole from a config: one row per entry of the
/// universe, addressed by index.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SymbolRow(pub u16);
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaderRow(pub u32);
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct FollowerRow(pub u32);
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubscriptionRow(pub u32);

impl Row for SymbolRow {
    const TABLE: Table = Table::of(schema::SYMBOLS, Conflict::Update(&["name"]));

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u
            .symbols
            .get(self.0 as usize)
            .ok_or(RowError::NoSuch("symbol"))?;
        s.text(&spec.name);
        s.dec(spec.lot_size);
        s.dec(spec.tick_size);
        Ok(())
    }
}

impl Row for LeaderRow {
    const TABLE: Table = Table::of(schema::LEADERS, Conflict::Update(&["leader_id"]));

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u
            .leaders
            .get(self.0 as usize)
            .ok_or(RowError::NoSuch("leader"))?;
        s.text(&spec.id);
        s.dec(money(spec.equity.0));
        Ok(())
    }
}

impl Row for FollowerRow {
    const TABLE: Table = Table::of(schema::FOLLOWERS, Conflict::Update(&["follower_id"]));

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u
            .followers
            .get(self.0 as usize)
            .ok_or(RowError::NoSuch("follower"))?;
        s.text(&spec.id);
        s.dec(money(spec.equity.0));
        Ok(())
    }
}

impl Row for SubscriptionRow {
    const TABLE: Table = Table::of(
        schema::SUBSCRIPTIONS,
        Conflict::Update(&["subscription_id"]),
    );

    fn put<S: Sink>(&self, u: &Universe, s: &mut S) -> Result<(), RowError> {
        let spec = u
            .subs
            .get(self.0 as usize)
            .ok_or(RowError::NoSuch("subscription"))?;
        s.text(&spec.id);
        s.text(follower_name(u, spec.follower.0));
        s.text(leader_name(u, spec.leader.0));
        s.text(spec.mode.name());
        s.dec(money(spec.allocation.0));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_engine() {
        for v in [0u64, 1, 0xdead_beef, u64::MAX] {
            assert_eq!(
                Id::client_order(v).as_str(),
                fillcast_engine::ids::client_order_id(v)
            );
            assert_eq!(Id::hex(v).as_str(), format!("{v:016x}"));
        }
    }

    #[test]
    fn money_is_exact_and_short() {
        assert_eq!(money(1_050_000_000).to_string(), "10.5");
        assert_eq!(money(-1).to_string(), "-0.00000001");
        assert_eq!(money_i128(i128::MAX).ok(), None);
    }
}
