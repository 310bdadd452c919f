//! The `file` source: replays leader fills from a JSON-lines file, one object per line:
//!
//! ```json
//! {"leader":"L1","event_id":"e1","symbol":"BTCUSDT","side":"buy","qty":"0.5","price":"65000.1","ts":1732060800000000000,"order_id":"o1","order_qty":"1.0"}
//! ```
//!
//! `ts` is nanoseconds since the epoch (a JSON integer, or a string of digits);
//! `qty`, `price` and `order_qty` are decimal strings; `order_id` and `order_qty` come
//! both or neither (`null` counts as absent). Unknown fields are ignored.
//!
//! A fill may say who made its order: `"kind"` is `trade` (the leader's own, the
//! default), `liquidation`, `adl`, `settlement` (the venue closing the leader's
//! position) or `unknown`. Every kind is copied alike; the kind is kept for
//! lineage (`LeaderFill::kind`).
//!
//! A line with `"type":"mark"` (`symbol`, `price`, `ts`) is a mark price, one with
//! `"type":"equity"` (`leader`, `equity`, `ts`) a leader's account equity; without
//! `type`, or with `"type":"fill"`, it is a fill. A line with `"type":"funding"` is
//! a perpetual's funding at `ts`:
//!
//! ```json
//! {"type":"funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"65000.1","ts":1732060800000000000}
//! ```
//!
//! `rate` is the interval's rate as a decimal string (`"0.0001"` is 0.01%; positive:
//! longs pay shorts), at most 8 decimal places (Binance's precision) and within ±1
//! (100%); `mark_price` the mark price it applies to, a whole number of ticks.
//!
//! Owns reading (line by line through a `BufReader`, never the whole file), parsing
//! (simd-json on a reused copy of each line) and validation against the `Universe`
//! (known leader and symbol, whole lots and ticks). Every bad line becomes a
//! `SourcePoll::Rejected` naming the file, the line and what was expected, and the
//! source goes on with the next line. It never panics on input and never lets a
//! quantity or price pass through `f64`: they must be decimal strings.

use fillcast_engine::codes::Coded;
use fillcast_engine::event::{FeedEvent, FillKind, LeaderFill};
use fillcast_engine::ids::{fnv1a, leader_event_key};
use fillcast_engine::model::{Side, SymbolIdx, SymbolSpec, Universe};
use fillcast_engine::order::BoundedMap;
use fillcast_engine::port::{ResumeError, Source, SourceError, SourcePoll};
use fillcast_engine::units::{FundingRate, Lots, Money, Nanos, Ticks, UnitError};
use rust_decimal::Decimal;
use simd_json::{BorrowedValue, StaticNode};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use thiserror::Error;

/// Longest accepted line, in bytes, without its line ending.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Leader events remembered for duplicate detection by default.
pub const DEDUP_IDS_DEFAULT: usize = 1 << 20;

/// Decimal digits accepted in a quantity or price (what `rust_decimal` holds exactly).
const DECIMAL_DIGITS_MAX: usize = 28;

/// Read buffer size.
const READ_BUF_BYTES: usize = 256 * 1024;

#[derive(Debug, Error)]
#[error("cannot open leader-fill file {}: {source}", path.display())]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// What the source has read so far.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSourceStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Blank lines skipped.
    pub blank: u64,
    /// Leader fills produced.
    pub events: u64,
    /// Lines rejected (plus one for a read error that ended the file).
    pub rejected: u64,
}

/// Replays leader fills from JSON lines. See the module docs for the format.
pub struct FileSource {
    origin: String,
    universe: Arc<Universe>,
    reader: Box<dyn BufRead + Send>,
    /// The current line's bytes (without its line ending), reused across lines.
    line: Vec<u8>,
    /// A copy of `line` for simd-json, which parses in place and mutates its input.
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
    line_no: u64,
    /// Bytes consumed from the reader: the source's position (`Source::position`).
    offset: u64,
    /// Made at the first event: a file with no good line (or a short-lived source
    /// in a test) never pays for the window.
    seen: Option<BoundedMap<u64>>,
    seen_max: usize,
    stats: FileSourceStats,
    finished: bool,
}

impl FileSource {
    /// Opens `path` for replay against `universe`.
    pub fn open(path: impl AsRef<Path>, universe: Arc<Universe>) -> Result<FileSource, OpenError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| OpenError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FileSource::from_reader(
            path.display().to_string(),
            BufReader::with_capacity(READ_BUF_BYTES, file),
            universe,
        ))
    }

    /// Replays from any buffered reader; `origin` names it in errors.
    pub fn from_reader(
        origin: impl Into<String>,
        reader: impl BufRead + Send + 'static,
        universe: Arc<Universe>,
    ) -> FileSource {
        FileSource {
            origin: origin.into(),
            universe,
            reader: Box::new(reader),
            line: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(1024),
            buffers: simd_json::Buffers::new(1024),
            line_no: 0,
            offset: 0,
            seen: None,
            seen_max: DEDUP_IDS_DEFAULT,
            stats: FileSourceStats::default(),
            finished: false,
        }
    }

    /// Remember at most `ids_max` leader events for duplicate detection (default
    /// `DEDUP_IDS_DEFAULT`); older ones are forgotten first.
    pub fn with_dedup_window(mut self, ids_max: usize) -> FileSource {
        self.seen = None;
        self.seen_max = ids_max;
        self
    }

    pub fn stats(&self) -> FileSourceStats {
        self.stats
    }

    pub fn lines_read(&self) -> u64 {
        self.stats.lines
    }

    pub fn events(&self) -> u64 {
        self.stats.events
    }

    pub fn rejected(&self) -> u64 {
        self.stats.rejected
    }

    fn reject(&mut self, message: String) -> SourcePoll {
        self.stats.rejected += 1;
        SourcePoll::Rejected(SourceError {
            origin: self.origin.clone(),
            line: self.line_no,
            message,
        })
    }

    /// Reads the next line into `self.line`, keeping at most `LINE_BYTES_MAX` bytes.
    fn read_line(&mut self) -> io::Result<LineRead> {
        self.line.clear();
        let mut any = false;
        let mut too_long = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(if !any {
                    LineRead::Eof
                } else if too_long {
                    LineRead::TooLong
                } else {
                    LineRead::Line { terminated: false }
                });
            }
            any = true;
            let (chunk, used, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            if !too_long {
                if self.line.len() + chunk.len() > LINE_BYTES_MAX + 1 {
                    // +1: a `\r` before the `\n` does not count against the limit.
                    too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            self.reader.consume(used);
            self.offset += used as u64;
            if done {
                return Ok(if too_long {
                    LineRead::TooLong
                } else {
                    LineRead::Line { terminated: true }
                });
            }
        }
    }
}

enum LineRead {
    Line { terminated: bool },
    TooLong,
    Eof,
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.origin
    }

    fn position(&self) -> Option<u64> {
        Some(self.offset)
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.universe = Arc::clone(universe);
    }

    /// Skips to byte `pos` line by line, counting lines so that rejections after it
    /// still name the right line. Reading without parsing is cheap next to taking the
    /// lines again, and it proves `pos` falls where a line starts.
    fn resume(&mut self, pos: u64) -> Result<(), ResumeError> {
        if self.offset != 0 {
            return Err(ResumeError::AlreadyStarted {
                origin: self.origin.clone(),
                doing: "reading",
            });
        }
        while self.offset < pos {
            match self.read_line() {
                Ok(LineRead::Eof) => {
                    return Err(ResumeError::Short {
                        holds: format!("{} holds {} bytes", self.origin, self.offset),
                        pos,
                        taken: "read",
                        likely: "was the file replaced or cut?",
                    })
                }
                Ok(_) => {
                    self.line_no += 1;
                    self.stats.lines += 1;
                }
                Err(source) => {
                    return Err(ResumeError::Read {
                        origin: self.origin.clone(),
                        pos,
                        source,
                    })
                }
            }
        }
        if self.offset != pos {
            return Err(ResumeError::Misaligned {
                origin: self.origin.clone(),
                pos,
                line_end: self.offset,
            });
        }
        Ok(())
    }

    fn next(&mut self, now: Nanos) -> SourcePoll {
        // Bounded: each turn consumes one line of a finite reader.
        loop {
            if self.finished {
                return SourcePoll::Finished;
            }
            let read = match self.read_line() {
                Ok(read) => read,
                Err(e) => {
                    self.finished = true;
                    self.line_no += 1;
                    return self.reject(format!("read error, stopping: {e}"));
                }
            };
            let terminated = match read {
                LineRead::Eof => {
                    self.finished = true;
                    return SourcePoll::Finished;
                }
                LineRead::TooLong => {
                    self.line_no += 1;
                    self.stats.lines += 1;
                    return self.reject(format!("line is longer than {LINE_BYTES_MAX} bytes"));
                }
                LineRead::Line { terminated } => terminated,
            };
            self.line_no += 1;
            self.stats.lines += 1;
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.len() > LINE_BYTES_MAX {
                return self.reject(format!("line is longer than {LINE_BYTES_MAX} bytes"));
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                self.stats.blank += 1;
                continue;
            }
            return match self.parse_line(now) {
                Ok(event) => {
                    self.stats.events += 1;
                    SourcePoll::Event(event)
                }
                Err(message) if !terminated => self.reject(format!(
                    "truncated last line (no newline at end of file): {message}"
                )),
                Err(e) => self.reject(e.to_string()),
            };
        }
    }
}

/// The fields of one line, before validation. Unknown fields are ignored so that
/// producers can add fields without breaking replays.
#[derive(Default)]
struct Fields<'v, 'a> {
    kind: Option<&'a BorrowedValue<'v>>,
    equity: Option<&'a BorrowedValue<'v>>,
    leader: Option<&'a BorrowedValue<'v>>,
    follower: Option<&'a BorrowedValue<'v>>,
    event_id: Option<&'a BorrowedValue<'v>>,
    symbol: Option<&'a BorrowedValue<'v>>,
    side: Option<&'a BorrowedValue<'v>>,
    qty: Option<&'a BorrowedValue<'v>>,
    price: Option<&'a BorrowedValue<'v>>,
    ts: Option<&'a BorrowedValue<'v>>,
    order_id: Option<&'a BorrowedValue<'v>>,
    order_qty: Option<&'a BorrowedValue<'v>>,
    fill_kind: Option<&'a BorrowedValue<'v>>,
    rate: Option<&'a BorrowedValue<'v>>,
    mark_price: Option<&'a BorrowedValue<'v>>,
}

impl FileSource {
    fn parse_line(&mut self, now: Nanos) -> Result<FeedEvent, LineError> {
        if let Err(e) = std::str::from_utf8(&self.line) {
            return Err(LineError::Utf8 {
                byte: e.valid_up_to() + 1,
            });
        }
        if nests_deeper_than(&self.line, NESTING_MAX) {
            return Err(LineError::TooDeep);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.line);
        let value =
            simd_json::borrowed::to_value_with_buffers(&mut self.scratch, &mut self.buffers)
                .map_err(|e| LineError::Json(e.to_string()))?;
        let object = match &value {
            BorrowedValue::Object(object) => object,
            _ => return Err(LineError::NotAnObject),
        };

        let mut f = Fields::default();
        for (key, v) in object.iter() {
            let slot = match key.as_ref() {
                "type" => &mut f.kind,
                "equity" => &mut f.equity,
                "leader" => &mut f.leader,
                "follower" => &mut f.follower,
                "event_id" => &mut f.event_id,
                "symbol" => &mut f.symbol,
                "side" => &mut f.side,
                "qty" => &mut f.qty,
                "price" => &mut f.price,
                "ts" => &mut f.ts,
                "order_id" => &mut f.order_id,
                "order_qty" => &mut f.order_qty,
                "kind" => &mut f.fill_kind,
                "rate" => &mut f.rate,
                "mark_price" => &mut f.mark_price,
                _ => continue,
            };
            if slot.is_some() {
                return Err(LineError::DuplicateField(key.to_string()));
            }
            *slot = Some(v);
        }

        let universe = &*self.universe;
        match optional(f.kind)
            .map(|k| string_field("type", Some(k)))
            .transpose()?
        {
            None | Some("fill") => {}
            Some("mark") => return mark_of(&f, universe),
            Some("equity") => return equity_of(&f, universe),
            Some("funding") => return funding_of(&f, universe),
            Some(other) => return Err(LineError::UnknownType(other.to_string())),
        }
        let leader_id = string_field("leader", f.leader)?;
        let leader = universe
            .leader(leader_id)
            .ok_or_else(|| LineError::UnknownLeader(leader_id.to_string()))?;
        let event_id = string_field("event_id", f.event_id)?;
        if event_id.is_empty() {
            return Err(LineError::Empty("event_id"));
        }
        let symbol_name = string_field("symbol", f.symbol)?;
        let symbol = symbol_in_force(universe, symbol_name)?;
        let spec = universe.sym(symbol);
        let side_str = string_field("side", f.side)?;
        let side = if side_str.eq_ignore_ascii_case("buy") {
            Side::Buy
        } else if side_str.eq_ignore_ascii_case("sell") {
            Side::Sell
        } else {
            return Err(LineError::Side(side_str.to_string()));
        };
        let qty = lots_field("qty", f.qty, spec)?;
        let price = price_field("price", f.price, spec)?;
        let venue_ts = ts_field(f.ts)?;
        let order_id = optional(f.order_id);
        let order_qty_value = optional(f.order_qty);
        let (order_key, order_qty) = match (order_id, order_qty_value) {
            (None, None) => (0, Lots::ZERO),
            (Some(_), None) => return Err(LineError::Without("order_id", "order_qty")),
            (None, Some(_)) => return Err(LineError::Without("order_qty", "order_id")),
            (Some(id), Some(oq)) => {
                let id = string_field("order_id", Some(id))?;
                if id.is_empty() {
                    return Err(LineError::Empty("order_id"));
                }
                let order_qty = lots_field("order_qty", Some(oq), spec)?;
                if order_qty < qty {
                    return Err(LineError::OrderQtyBelowQty {
                        order_qty: spec.qty_decimal(order_qty).normalize(),
                        qty: spec.qty_decimal(qty).normalize(),
                    });
                }
                (fnv1a(id.as_bytes()), order_qty)
            }
        };

        let kind = match optional(f.fill_kind) {
            None => FillKind::Trade,
            Some(k) => {
                let name = string_field("kind", Some(k))?;
                FillKind::from_name(name).ok_or_else(|| LineError::FillKind(name.to_string()))?
            }
        };

        let event_key = leader_event_key(leader_id, event_id);
        let seen = self
            .seen
            .get_or_insert_with(|| BoundedMap::new(self.seen_max));
        if let Some(first) = seen.insert(event_key, self.line_no) {
            return Err(LineError::DuplicateEvent {
                event_id: event_id.to_string(),
                leader_id: leader_id.to_string(),
                first,
            });
        }
        debug_assert!(qty.0 > 0 && price.0 > 0);
        Ok(FeedEvent::LeaderFill(LeaderFill {
            leader,
            symbol,
            side,
            qty,
            price,
            event_key,
            order_key,
            order_qty,
            venue_ts,
            recv_ts: now,
            kind,
        }))
    }
}

/// A symbol of the model in force; one a reload removed is refused as such (its
/// fills are no longer taken), as is one never defined.
fn symbol_in_force(universe: &Universe, name: &str) -> Result<SymbolIdx, LineError> {
    universe.symbol_in_force(name).ok_or_else(|| {
        if universe.symbol(name).is_some() {
            LineError::RemovedSymbol(name.to_string())
        } else {
            LineError::UnknownSymbol(name.to_string())
        }
    })
}

/// `{"type":"mark","symbol":..,"price":"..","ts":..}`: a market price of a symbol.
fn mark_of(f: &Fields<'_, '_>, universe: &Universe) -> Result<FeedEvent, LineError> {
    let name = string_field("symbol", f.symbol)?;
    let symbol = symbol_in_force(universe, name)?;
    Ok(FeedEvent::MarkPrice {
        symbol,
        price: price_field("price", f.price, universe.sym(symbol))?,
        ts: ts_field(f.ts)?,
    })
}

/// `{"type":"funding","symbol":..,"rate":"..","mark_price":"..","ts":..}`: a
/// perpetual's funding rate at a mark price.
fn funding_of(f: &Fields<'_, '_>, universe: &Universe) -> Result<FeedEvent, LineError> {
    let name = string_field("symbol", f.symbol)?;
    let symbol = symbol_in_force(universe, name)?;
    let value = decimal_field("rate", f.rate)?;
    let rate = match FundingRate::from_decimal(value) {
        Ok(rate) => rate,
        Err(UnitError::TooPrecise { value }) => return Err(LineError::RatePrecision(value)),
        Err(_) => return Err(LineError::RateRange(value)),
    };
    debug_assert!(rate.is_within_bounds());
    Ok(FeedEvent::Funding {
        symbol,
        rate,
        price: price_field("mark_price", f.mark_price, universe.sym(symbol))?,
        ts: ts_field(f.ts)?,
    })
}

/// `{"type":"equity","leader":..,"equity":"..","ts":..}`: a leader's account
/// equity; with `"follower"` instead of `"leader"`, a follower's.
fn equity_of(f: &Fields<'_, '_>, universe: &Universe) -> Result<FeedEvent, LineError> {
    enum Whose {
        Leader(fillcast_engine::model::LeaderIdx),
        Follower(fillcast_engine::model::FollowerIdx),
    }
    let whose = match (optional(f.leader), optional(f.follower)) {
        (Some(_), Some(_)) => return Err(LineError::LeaderAndFollower),
        (None, Some(_)) => {
            let id = string_field("follower", f.follower)?;
            Whose::Follower(
                universe
                    .follower(id)
                    .ok_or_else(|| LineError::UnknownFollower(id.to_string()))?,
            )
        }
        _ => {
            let id = string_field("leader", f.leader)?;
            Whose::Leader(
                universe
                    .leader(id)
                    .ok_or_else(|| LineError::UnknownLeader(id.to_string()))?,
            )
        }
    };
    let value = decimal_field("equity", f.equity)?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(LineError::Negative {
            name: "equity",
            value,
        });
    }
    let equity = Money::from_decimal(value).map_err(|source| LineError::Unit {
        name: "equity",
        source,
    })?;
    let ts = ts_field(f.ts)?;
    Ok(match whose {
        Whose::Leader(leader) => FeedEvent::LeaderEquity { leader, equity, ts },
        Whose::Follower(follower) => FeedEvent::FollowerEquity {
            follower,
            equity,
            ts,
        },
    })
}

/// A present, non-null value.
fn optional<'v, 'a>(v: Option<&'a BorrowedValue<'v>>) -> Option<&'a BorrowedValue<'v>> {
    match v {
        Some(BorrowedValue::Static(StaticNode::Null)) | None => None,
        some => some,
    }
}

fn json_kind(v: &BorrowedValue<'_>) -> &'static str {
    match v {
        BorrowedValue::Static(StaticNode::Null) => "null",
        BorrowedValue::Static(StaticNode::Bool(_)) => "a boolean",
        BorrowedValue::Static(_) => "a JSON number",
        BorrowedValue::String(_) => "a string",
        BorrowedValue::Array(_) => "an array",
        BorrowedValue::Object(_) => "an object",
    }
}

fn string_field<'a>(
    name: &'static str,
    v: Option<&'a BorrowedValue<'_>>,
) -> Result<&'a str, LineError> {
    match v {
        None => Err(LineError::Missing(name)),
        Some(BorrowedValue::String(s)) => Ok(s.as_ref()),
        Some(other) => Err(LineError::NotAString {
            name,
            got: json_kind(other),
        }),
    }
}

/// A decimal string: quantities and prices never go through `f64`.
fn decimal_field(name: &'static str, v: Option<&BorrowedValue<'_>>) -> Result<Decimal, LineError> {
    let s = match v {
        None => return Err(LineError::Missing(name)),
        Some(BorrowedValue::String(s)) => s.as_ref(),
        Some(other) => {
            return Err(LineError::NotADecimalString {
                name,
                got: json_kind(other),
            })
        }
    };
    parse_decimal(s).ok_or_else(|| LineError::NotADecimal {
        name,
        text: s.to_string(),
    })
}

/// Strict decimal syntax: `-?digits(.digits)?`, at most `DECIMAL_DIGITS_MAX` digits, so
/// that `rust_decimal` holds the value exactly (it would round longer ones, and it
/// accepts forms such as `1_000` that a wire format should not).
fn parse_decimal(s: &str) -> Option<Decimal> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (body, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.into_iter().all(digits) {
        return None;
    }
    let significant = int.trim_start_matches('0').len() + frac.map_or(0, str::len);
    if significant > DECIMAL_DIGITS_MAX || frac.map_or(0, str::len) > DECIMAL_DIGITS_MAX {
        return None;
    }
    Decimal::from_str(s).ok()
}

fn lots_field(
    name: &'static str,
    v: Option<&BorrowedValue<'_>>,
    spec: &SymbolSpec,
) -> Result<Lots, LineError> {
    let qty = decimal_field(name, v)?;
    if qty <= Decimal::ZERO {
        return Err(LineError::NotPositive { name, value: qty });
    }
    let not_multiple = || LineError::NotMultiple {
        name,
        value: qty,
        step: "lot size",
        size: spec.lot_size,
        symbol: spec.name.clone(),
    };
    let lots = match Lots::from_decimal(qty, spec.lot_size) {
        Ok(lots) => lots,
        Err(UnitError::NotMultiple { .. }) => return Err(not_multiple()),
        Err(source) => return Err(LineError::Unit { name, source }),
    };
    // The division can round a value with many digits to a whole number of lots.
    if lots.to_decimal(spec.lot_size) != qty {
        return Err(not_multiple());
    }
    debug_assert!(lots.0 > 0);
    if lots > Lots::MAX {
        return Err(LineError::TooLarge {
            name,
            value: qty,
            symbol: spec.name.clone(),
        });
    }
    Ok(lots)
}

fn price_field(
    name: &'static str,
    v: Option<&BorrowedValue<'_>>,
    spec: &SymbolSpec,
) -> Result<Ticks, LineError> {
    let price = decimal_field(name, v)?;
    if price <= Decimal::ZERO {
        return Err(LineError::NotPositive { name, value: price });
    }
    let not_multiple = || LineError::NotMultiple {
        name,
        value: price,
        step: "tick size",
        size: spec.tick_size,
        symbol: spec.name.clone(),
    };
    let ticks = match Ticks::from_decimal(price, spec.tick_size) {
        Ok(ticks) => ticks,
        Err(UnitError::NotMultiple { .. }) => return Err(not_multiple()),
        Err(source) => return Err(LineError::Unit { name, source }),
    };
    if ticks.to_decimal(spec.tick_size) != price {
        return Err(not_multiple());
    }
    debug_assert!(ticks.0 > 0);
    Ok(ticks)
}

/// `ts`: nanoseconds since the epoch, as a JSON integer or a string of digits.
fn ts_field(v: Option<&BorrowedValue<'_>>) -> Result<Nanos, LineError> {
    let ts = ts_value(v)?;
    if ts.0 > TS_MAX {
        return Err(LineError::TsTooLate(ts.0));
    }
    Ok(ts)
}

/// 2200-01-01T00:00:00Z in ns: later stamps are mistakes (and past what SQL's
/// signed 64-bit integers and the journal's readers take).
const TS_MAX: u64 = 7_258_118_400_000_000_000;

/// How deep a line's arrays and objects may nest (a leader fill needs 1).
const NESTING_MAX: usize = 32;

/// Whether `line`'s arrays and objects nest deeper than `max`, outside strings.
/// Checked before parsing: the parser recurses, and a line nested thousands
/// deep would overflow the I/O thread's stack.
fn nests_deeper_than(line: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn ts_value(v: Option<&BorrowedValue<'_>>) -> Result<Nanos, LineError> {
    match v {
        None => Err(LineError::Missing("ts")),
        Some(BorrowedValue::Static(StaticNode::U64(n))) => Ok(Nanos(*n)),
        Some(BorrowedValue::Static(StaticNode::I64(n))) => u64::try_from(*n)
            .map(Nanos)
            .map_err(|_| LineError::TsNegative(*n)),
        Some(BorrowedValue::String(s))
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<u64>()
                .map(Nanos)
                .map_err(|_| LineError::TsOutOfRange(s.to_string()))
        }
        Some(other) => Err(LineError::TsNotAnInteger(match other {
            BorrowedValue::Static(StaticNode::F64(_)) => "a fractional number",
            other => json_kind(other),
        })),
    }
}

/// Why a line of the file is not a leader fill; its text is the rejection's message.
#[derive(Debug, thiserror::Error)]
enum LineError {
    #[error("invalid UTF-8 at byte {byte}")]
    Utf8 { byte: usize },
    #[error("arrays or objects nested more than {NESTING_MAX} deep")]
    TooDeep,
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("expected a JSON object")]
    NotAnObject,
    #[error("duplicate field `{0}`")]
    DuplicateField(String),
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{0}` is empty")]
    Empty(&'static str),
    #[error("field `{name}` must be a string, got {got}")]
    NotAString {
        name: &'static str,
        got: &'static str,
    },
    #[error("field `{name}` must be a decimal string like \"0.5\", got {got}")]
    NotADecimalString {
        name: &'static str,
        got: &'static str,
    },
    #[error("field `{name}`: `{text}` is not a decimal number")]
    NotADecimal { name: &'static str, text: String },
    #[error("field `type` must be `fill`, `mark`, `equity` or `funding`, got `{0}`")]
    UnknownType(String),
    #[error("rate {0} has more than 8 decimal places (a funding rate is in units of 0.00000001)")]
    RatePrecision(Decimal),
    #[error("rate {0} is beyond ±1 (a funding rate of more than 100% per interval)")]
    RateRange(Decimal),
    #[error("{name} must not be negative, got {value}")]
    Negative { name: &'static str, value: Decimal },
    #[error("unknown leader `{0}`")]
    UnknownLeader(String),
    #[error("unknown follower `{0}`")]
    UnknownFollower(String),
    #[error("an equity line names a leader or a follower, not both")]
    LeaderAndFollower,
    #[error("unknown symbol `{0}`")]
    UnknownSymbol(String),
    #[error("symbol `{0}` was removed by a reload: its fills and marks are no longer taken")]
    RemovedSymbol(String),
    #[error("field `side` must be `buy` or `sell`, got `{0}`")]
    Side(String),
    #[error(
        "field `kind` must be `trade`, `liquidation`, `adl`, `settlement` or `unknown`, got `{0}`"
    )]
    FillKind(String),
    #[error("{name} must be positive, got {value}")]
    NotPositive { name: &'static str, value: Decimal },
    #[error("{name} {value} is not a multiple of the {step} {size} of {symbol}")]
    NotMultiple {
        name: &'static str,
        value: Decimal,
        step: &'static str,
        size: Decimal,
        symbol: String,
    },
    #[error("{name}: {source}")]
    Unit {
        name: &'static str,
        source: UnitError,
    },
    #[error("{name} {value} is more than {max} lots of {symbol}", max = Lots::MAX.0)]
    TooLarge {
        name: &'static str,
        value: Decimal,
        symbol: String,
    },
    #[error("`{0}` given without `{1}`")]
    Without(&'static str, &'static str),
    #[error("order_qty {order_qty} is less than qty {qty}")]
    OrderQtyBelowQty { order_qty: Decimal, qty: Decimal },
    #[error("duplicate event_id `{event_id}` for leader `{leader_id}` (first on line {first})")]
    DuplicateEvent {
        event_id: String,
        leader_id: String,
        first: u64,
    },
    #[error("field `ts` = {0} is after 2200-01-01 (nanoseconds since the epoch expected)")]
    TsTooLate(u64),
    #[error("field `ts` must not be negative, got {0}")]
    TsNegative(i64),
    #[error("field `ts`: `{0}` is out of range")]
    TsOutOfRange(String),
    #[error("field `ts` must be an integer of nanoseconds since the epoch, got {0}")]
    TsNotAnInteger(&'static str),
}

#[cfg(test)]
mod tests {
    use super::parse_decimal;

    #[test]
    fn decimal_syntax_is_strict() {
        for ok in ["0", "0.5", "65000.1", "-1", "000.10"] {
            assert!(parse_decimal(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "-",
            ".5",
            "5.",
            "1e5",
            "1_000",
            "+1",
            " 1",
            "0x10",
            "NaN",
            "1.2.3",
            "12345678901234567890.123456789",
        ] {
            assert!(parse_decimal(bad).is_none(), "{bad}");
        }
    }
}
