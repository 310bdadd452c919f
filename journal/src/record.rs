//! The journal's typed records: one rkyv payload per record kind, versioned by
//! `SCHEMA`. The framing layer (`writer`, `reader`, `tail`) carries bytes; this
//! module says what they mean.
//!
//! The payloads are the journal's own flat structs, not the engine's in-memory
//! types, so that the on-disk schema changes only when `SCHEMA` does. Decoding
//! validates the archive (rkyv + bytecheck, no copy) and every enum code, so a
//! hostile or damaged journal gives an error, never a panic.

use fillcast_engine::codes::Coded;
use fillcast_engine::event::{
    Command, ExecKind, ExecReport, FeedEvent, FillKind, FollowerOrder, LeaderFill, OrderType,
    RejectReason, NO_SENDER,
};
use fillcast_engine::model::{FollowerIdx, LeaderIdx, Side, SubIdx, SymbolIdx, VenueIdx};
use fillcast_engine::order::Oddity;
use fillcast_engine::outputs::{Decision, DecisionStatus, Notice, Reason, SyncReason};
use fillcast_engine::port::JournalEntry;
use fillcast_engine::units::{FundingRate, Lots, Money, Nanos, Ticks};
use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use thiserror::Error;

/// The record schema this build writes and reads.
/// 2: the config is the decision model, in parts (`ConfigRec::part`).
pub const SCHEMA: u16 = 2;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    Config = 1,
    LeaderFill = 2,
    MarkPrice = 3,
    LeaderEquity = 4,
    Command = 5,
    Exec = 6,
    Decision = 7,
    Order = 8,
    Notice = 9,
    /// An order and the decision that made it, in one record: the common case of a
    /// decision with a single leg, which would otherwise be two records.
    OrderDecision = 10,
    /// Time passing (`FeedEvent::Tick`): the resync's and the venue alarm's clock.
    Tick = 11,
    /// A venue's link went down or came back (`FeedEvent::Venue`).
    Venue = 12,
    /// A decision the resync made (`Decision::resync` is not `None`).
    ResyncDecision = 13,
    /// A source's position behind the events it produced (`FeedEvent::SourceCursor`).
    SourceCursor = 14,
    /// A command with the uid of the person who sent it (`FeedEvent::Command::by`);
    /// one without a sender is still written as `Command`.
    CommandBy = 15,
    /// A follower's account equity (`FeedEvent::FollowerEquity`).
    FollowerEquity = 16,
    /// Orders and their decisions as `OrderDecision` holds them, one fixed-size
    /// row each (`write_row`), many in one record (`segment`'s row records):
    /// the fan-out's bulk, at 80 bytes a pair rather than 160 (a record
    /// header, an archive of the two and padding). Each row is a journal entry
    /// with its own sequence number and reads as `Entry::OrderDecision`.
    PairRows = 17,
    /// Venue reports as `Exec` holds them, one 64-byte row each
    /// (`write_exec_row`), a run of them at one time in one record: each row
    /// reads as `Entry::Exec`.
    ExecRows = 18,
    /// A leader fill that is not an ordinary trade (`LeaderFill::kind`: a
    /// liquidation, an ADL or settlement close, or of a kind the source could
    /// not tell), with its kind; an ordinary trade is still written as
    /// `LeaderFill`, whose layout journals written before kinds hold.
    LeaderFillKind = 19,
    /// A perpetual's funding rate at a mark price (`FeedEvent::Funding`): added
    /// with issue 16 as a kind of its own, so that every earlier record reads
    /// as it always did.
    Funding = 20,
}

const _: () = assert!(Kind::PairRows as u16 == crate::segment::PAIR_ROWS_KIND);
const _: () = assert!(Kind::ExecRows as u16 == crate::segment::EXEC_ROWS_KIND);

impl Kind {
    pub const ALL: [Kind; 20] = [
        Kind::Config,
        Kind::LeaderFill,
        Kind::MarkPrice,
        Kind::LeaderEquity,
        Kind::Command,
        Kind::Exec,
        Kind::Decision,
        Kind::Order,
        Kind::Notice,
        Kind::OrderDecision,
        Kind::Tick,
        Kind::Venue,
        Kind::ResyncDecision,
        Kind::SourceCursor,
        Kind::CommandBy,
        Kind::FollowerEquity,
        Kind::PairRows,
        Kind::ExecRows,
        Kind::LeaderFillKind,
        Kind::Funding,
    ];

    pub fn from_u16(v: u16) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u16 == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::LeaderFill => "leader_fill",
            Kind::MarkPrice => "mark_price",
            Kind::LeaderEquity => "leader_equity",
            Kind::Command => "command",
            Kind::Exec => "exec",
            Kind::Decision => "decision",
            Kind::Order => "order",
            Kind::Notice => "notice",
            Kind::OrderDecision => "order_decision",
            Kind::Tick => "tick",
            Kind::Venue => "venue",
            Kind::ResyncDecision => "resync_decision",
            Kind::SourceCursor => "source_cursor",
            Kind::CommandBy => "command_by",
            Kind::FollowerEquity => "follower_equity",
            Kind::PairRows => "pair_rows",
            Kind::ExecRows => "exec_rows",
            Kind::LeaderFillKind => "leader_fill_kind",
            Kind::Funding => "funding",
        }
    }

    /// Inputs are what a replay feeds back into the core; the rest are its outputs.
    pub fn is_input(self) -> bool {
        !matches!(
            self,
            Kind::Config
                | Kind::Decision
                | Kind::Order
                | Kind::Notice
                | Kind::OrderDecision
                | Kind::PairRows
                | Kind::ResyncDecision
        )
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConfigRec {
    pub revision: u64,
    /// This record's place among the revision's records (0-based) and their number:
    /// a model of any size is split over records of at most `CONFIG_PART_BYTES`.
    pub part: u32,
    pub parts: u32,
    /// This part of the decision model's TOML (`Config::model_toml`).
    pub toml: String,
}

/// The most TOML one config record holds: far below any segment's size.
pub const CONFIG_PART_BYTES: usize = 256 << 10;

/// `text` cut into parts of at most `CONFIG_PART_BYTES`, on character boundaries.
pub fn config_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > CONFIG_PART_BYTES {
        let mut cut = CONFIG_PART_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// Puts a revision's config records back together, in journal order.
#[derive(Debug, Default)]
pub struct ConfigParts {
    revision: u64,
    next: u32,
    parts: u32,
    text: String,
}

impl ConfigParts {
    /// Takes one config record; the revision and its whole model once the last part
    /// is in. Part 0 starts afresh: a run that died while writing a config left its
    /// first parts, and the next run writes them all again.
    pub fn add(&mut self, c: ConfigRec) -> Result<Option<(u64, String)>, RecordError> {
        if c.parts == 0 || c.part >= c.parts {
            return Err(RecordError::ConfigPart {
                part: c.part,
                parts: c.parts,
            });
        }
        if c.part == 0 {
            *self = ConfigParts {
                revision: c.revision,
                next: 0,
                parts: c.parts,
                text: String::new(),
            };
        }
        if (c.revision, c.part, c.parts) != (self.revision, self.next, self.parts) {
            return Err(RecordError::ConfigPartOutOfTurn {
                part: c.part,
                parts: c.parts,
                revision: c.revision,
                due: self.next,
                due_of: self.parts,
                due_revision: self.revision,
            });
        }
        self.text.push_str(&c.toml);
        self.next += 1;
        if self.next < self.parts {
            return Ok(None);
        }
        self.parts = 0;
        Ok(Some((self.revision, std::mem::take(&mut self.text))))
    }

    /// Whether a revision's parts have begun and not all arrived.
    pub fn incomplete(&self) -> bool {
        self.parts != 0
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderFillRec {
    pub leader: u32,
    pub symbol: u16,
    pub side: u8,
    pub qty: i64,
    pub price: i64,
    pub event_key: u64,
    pub order_key: u64,
    pub order_qty: i64,
    pub venue_ts: u64,
    pub recv_ts: u64,
}

/// `Kind::LeaderFillKind`: a fill as `LeaderFillRec` holds it, and its kind.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderFillKindRec {
    pub fill: LeaderFillRec,
    /// `FillKind::code`, never `FillKind::Trade`'s.
    pub kind: u8,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRec {
    pub symbol: u16,
    pub price: i64,
    pub ts: u64,
}

/// `Kind::Funding`: `FeedEvent::Funding` as it is.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FundingRec {
    pub symbol: u16,
    /// `FundingRate`: 10^-8 per interval.
    pub rate: i64,
    /// The mark price the rate applies to, in ticks.
    pub price: i64,
    pub ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct EquityRec {
    pub leader: u32,
    pub equity: i64,
    pub ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerEquityRec {
    pub follower: u32,
    pub equity: i64,
    pub ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRec {
    pub code: u8,
    pub target: u32,
    pub ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandByRec {
    pub code: u8,
    pub target: u32,
    pub ts: u64,
    /// The sender's uid.
    pub by: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecRec {
    pub order_id: u64,
    pub kind: u8,
    pub qty: i64,
    pub price: i64,
    pub trade_id: u64,
    pub fee: i64,
    pub reject: u8,
    pub venue_ts: u64,
    pub recv_ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionRec {
    pub event_key: u64,
    pub sub: u32,
    pub symbol: u16,
    pub target: i64,
    pub delta: i64,
    pub sent: i64,
    pub status: u8,
    pub reason: u8,
    pub revision: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRec {
    pub id: u64,
    pub sub: u32,
    pub follower: u32,
    pub symbol: u16,
    pub side: u8,
    pub qty: i64,
    pub order_type: u8,
    pub limit: i64,
    pub reduce_only: bool,
    pub leader_event_key: u64,
    pub ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderDecisionRec {
    pub order: OrderRec,
    pub decision: DecisionRec,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickRec {
    pub ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCursorRec {
    pub source: u16,
    pub pos: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueRec {
    pub venue: u16,
    pub up: bool,
    pub ts: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResyncDecisionRec {
    pub decision: DecisionRec,
    /// `SyncReason::code`.
    pub why: u8,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeRec {
    pub code: u8,
    pub sub: u32,
    pub order_id: u64,
    pub reason: u8,
    pub detail: u8,
}

/// A decoded record, in the engine's terms.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Config(ConfigRec),
    /// A feed input the core took (leader fill, mark price, equity, command).
    Feed(FeedEvent),
    Exec(ExecReport),
    Decision(Decision),
    Order(FollowerOrder),
    Notice(Notice),
    /// An order followed by its decision (`Kind::OrderDecision`): read as those two
    /// entries, in that order.
    OrderDecision(FollowerOrder, Decision),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record schema {found} is not one this build reads (it reads schema {SCHEMA}); use a fillcast that knows it")]
    UnknownSchema { found: u16 },
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
    #[error("damaged {kind} payload: {message}")]
    Payload { kind: &'static str, message: String },
    #[error("bad {field} code {code} in a {kind} record")]
    BadCode {
        kind: &'static str,
        field: &'static str,
        code: u8,
    },
    /// rkyv could not serialize a record (its error is neither `Clone` nor `Eq`).
    #[error("encoding a record: {0}")]
    Encode(String),
    /// A config record whose part numbers make no sense.
    #[error("config part {part} of {parts}")]
    ConfigPart { part: u32, parts: u32 },
    /// A config record out of turn.
    #[error(
        "config part {part} of {parts} (revision {revision:016x}) where part {due} of {due_of} (revision {due_revision:016x}) was due"
    )]
    ConfigPartOutOfTurn {
        part: u32,
        parts: u32,
        revision: u64,
        due: u32,
        due_of: u32,
        due_revision: u64,
    },
}

/// The variant stored as `c` (`Coded`: explicit, stable codes).
fn from_code<T: Coded>(c: u8, kind: &'static str, field: &'static str) -> Result<T, RecordError> {
    T::from_code(c).ok_or(RecordError::BadCode {
        kind,
        field,
        code: c,
    })
}

/// The kind, timestamp and payload struct of one engine journal entry.
fn kind_of(e: &JournalEntry) -> Option<Kind> {
    Some(match e {
        JournalEntry::Empty => return None,
        JournalEntry::Feed(FeedEvent::Empty) => return None,
        // Journaled as its config records (`JournalSink::revision`).
        JournalEntry::Feed(FeedEvent::Revision { .. }) => return None,
        JournalEntry::Feed(FeedEvent::LeaderFill(f)) if f.kind == FillKind::Trade => {
            Kind::LeaderFill
        }
        JournalEntry::Feed(FeedEvent::LeaderFill(_)) => Kind::LeaderFillKind,
        JournalEntry::Feed(FeedEvent::MarkPrice { .. }) => Kind::MarkPrice,
        JournalEntry::Feed(FeedEvent::Funding { .. }) => Kind::Funding,
        JournalEntry::Feed(FeedEvent::LeaderEquity { .. }) => Kind::LeaderEquity,
        JournalEntry::Feed(FeedEvent::FollowerEquity { .. }) => Kind::FollowerEquity,
        JournalEntry::Feed(FeedEvent::Command { by: NO_SENDER, .. }) => Kind::Command,
        JournalEntry::Feed(FeedEvent::Command { .. }) => Kind::CommandBy,
        JournalEntry::Feed(FeedEvent::Tick { .. }) => Kind::Tick,
        JournalEntry::Feed(FeedEvent::Venue { .. }) => Kind::Venue,
        JournalEntry::Feed(FeedEvent::SourceCursor { .. }) => Kind::SourceCursor,
        JournalEntry::Decision(d) if d.resync != SyncReason::None => Kind::ResyncDecision,
        JournalEntry::Exec(_) => Kind::Exec,
        JournalEntry::Decision(_) => Kind::Decision,
        JournalEntry::Order(_) => Kind::Order,
        JournalEntry::Notice(_) => Kind::Notice,
    })
}

fn command_code(c: Command) -> (u8, u32) {
    match c {
        Command::PauseSubscription(s) => (0, s.0),
        Command::ResumeSubscription(s) => (1, s.0),
        Command::StopSubscription(s) => (2, s.0),
        Command::PauseLeader(l) => (3, l.0),
        Command::ResumeLeader(l) => (4, l.0),
        Command::KillSwitch => (5, 0),
        Command::Resync(s) => (6, s.0),
        Command::PauseFollower(f) => (7, f.0),
        Command::ResumeFollower(f) => (8, f.0),
        Command::StopFollower(f) => (9, f.0),
        Command::StopLeader(l) => (10, l.0),
        Command::KillSwitchOff => (11, 0),
        Command::Flatten(s) => (12, s.0),
        Command::FlattenFollower(f) => (13, f.0),
        Command::Reload => (14, 0),
    }
}

fn command_from(code: u8, target: u32) -> Result<Command, RecordError> {
    Ok(match code {
        0 => Command::PauseSubscription(SubIdx(target)),
        1 => Command::ResumeSubscription(SubIdx(target)),
        2 => Command::StopSubscription(SubIdx(target)),
        3 => Command::PauseLeader(LeaderIdx(target)),
        4 => Command::ResumeLeader(LeaderIdx(target)),
        5 => Command::KillSwitch,
        6 => Command::Resync(SubIdx(target)),
        7 => Command::PauseFollower(FollowerIdx(target)),
        8 => Command::ResumeFollower(FollowerIdx(target)),
        9 => Command::StopFollower(FollowerIdx(target)),
        10 => Command::StopLeader(LeaderIdx(target)),
        11 => Command::KillSwitchOff,
        12 => Command::Flatten(SubIdx(target)),
        13 => Command::FlattenFollower(FollowerIdx(target)),
        14 => Command::Reload,
        c => {
            return Err(RecordError::BadCode {
                kind: "command",
                field: "code",
                code: c,
            })
        }
    })
}

fn notice_rec(n: &Notice) -> NoticeRec {
    match *n {
        Notice::Stopped { sub, reason } => NoticeRec {
            code: 0,
            sub: sub.0,
            order_id: 0,
            reason: reason.code(),
            detail: 0,
        },
        Notice::Odd { order_id, oddity } => NoticeRec {
            code: 1,
            sub: 0,
            order_id,
            reason: 0,
            detail: oddity.code(),
        },
        Notice::Rejected {
            order_id,
            reason,
            retried,
        } => NoticeRec {
            code: 2,
            sub: 0,
            order_id,
            reason: reason.code(),
            detail: retried as u8,
        },
        Notice::OutOfSync { sub, symbol, why } => NoticeRec {
            code: 3,
            sub: sub.0,
            order_id: symbol.0 as u64,
            reason: why.code(),
            detail: 0,
        },
        Notice::VenueLink { venue, up } => NoticeRec {
            code: 5,
            sub: venue.0 as u32,
            order_id: 0,
            reason: 0,
            detail: up as u8,
        },
        Notice::VenueAlarm {
            venue,
            down_ns,
            stop,
        } => NoticeRec {
            code: 4,
            sub: venue.0 as u32,
            order_id: down_ns,
            reason: 0,
            detail: stop as u8,
        },
    }
}

fn notice_from(r: &NoticeRec) -> Result<Notice, RecordError> {
    Ok(match r.code {
        0 => Notice::Stopped {
            sub: SubIdx(r.sub),
            reason: from_code::<Reason>(r.reason, "notice", "reason")?,
        },
        1 => Notice::Odd {
            order_id: r.order_id,
            oddity: from_code::<Oddity>(r.detail, "notice", "oddity")?,
        },
        2 => Notice::Rejected {
            order_id: r.order_id,
            reason: from_code::<RejectReason>(r.reason, "notice", "reject")?,
            retried: r.detail != 0,
        },
        3 => Notice::OutOfSync {
            sub: SubIdx(r.sub),
            symbol: SymbolIdx(u16::try_from(r.order_id).map_err(|_| RecordError::BadCode {
                kind: "notice",
                field: "symbol",
                code: u8::MAX,
            })?),
            why: SyncReason::from_code(r.reason).ok_or(RecordError::BadCode {
                kind: "notice",
                field: "why",
                code: r.reason,
            })?,
        },
        5 => Notice::VenueLink {
            venue: VenueIdx(u16::try_from(r.sub).map_err(|_| RecordError::BadCode {
                kind: "notice",
                field: "venue",
                code: u8::MAX,
            })?),
            up: r.detail != 0,
        },
        4 => Notice::VenueAlarm {
            venue: VenueIdx(u16::try_from(r.sub).map_err(|_| RecordError::BadCode {
                kind: "notice",
                field: "venue",
                code: u8::MAX,
            })?),
            down_ns: r.order_id,
            stop: r.detail != 0,
        },
        c => {
            return Err(RecordError::BadCode {
                kind: "notice",
                field: "code",
                code: c,
            })
        }
    })
}

/// An encoded record: its kind, timestamp and payload bytes.
pub type Encoded<'a> = (Kind, u64, &'a [u8]);

/// Serializes entries into a reused, aligned buffer (no allocation once warm).
pub struct Encoder {
    buf: AlignedVec<16>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            buf: AlignedVec::with_capacity(64 * 1024),
        }
    }
}

impl Encoder {
    /// rkyv's low-level serializer: no scratch space and no shared pointers,
    /// which no record has. The high-level one reached its scratch arena through
    /// a thread-local on every record, a sixth of an append's instructions.
    fn put<T>(&mut self, v: &T) -> Result<&[u8], RecordError>
    where
        T: for<'a> Serialize<
            rkyv::api::low::LowSerializer<
                AlignedVec<16>,
                rkyv::ser::allocator::SubAllocator<'a>,
                RkyvError,
            >,
        >,
    {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.buf = rkyv::api::low::to_bytes_in_with_alloc::<_, _, RkyvError>(
            v,
            buf,
            rkyv::ser::allocator::SubAllocator::empty(),
        )
        .map_err(|e| RecordError::Encode(e.to_string()))?;
        Ok(&self.buf)
    }

    /// The record for one engine journal entry: (kind, timestamp, payload), or
    /// `None` for an empty slot.
    pub fn entry(&mut self, e: &JournalEntry) -> Result<Option<Encoded<'_>>, RecordError> {
        let Some(kind) = kind_of(e) else {
            return Ok(None);
        };
        let (ts, bytes) = match *e {
            JournalEntry::Feed(FeedEvent::LeaderFill(f)) if f.kind == FillKind::Trade => {
                (f.recv_ts.0, self.put(&leader_fill_rec(&f))?)
            }
            JournalEntry::Feed(FeedEvent::LeaderFill(f)) => (
                f.recv_ts.0,
                self.put(&LeaderFillKindRec {
                    fill: leader_fill_rec(&f),
                    kind: f.kind.code(),
                })?,
            ),
            JournalEntry::Feed(FeedEvent::MarkPrice { symbol, price, ts }) => (
                ts.0,
                self.put(&MarkRec {
                    symbol: symbol.0,
                    price: price.0,
                    ts: ts.0,
                })?,
            ),
            JournalEntry::Feed(FeedEvent::Funding {
                symbol,
                rate,
                price,
                ts,
            }) => (
                ts.0,
                self.put(&FundingRec {
                    symbol: symbol.0,
                    rate: rate.0,
                    price: price.0,
                    ts: ts.0,
                })?,
            ),
            JournalEntry::Feed(FeedEvent::FollowerEquity {
                follower,
                equity,
                ts,
            }) => (
                ts.0,
                self.put(&FollowerEquityRec {
                    follower: follower.0,
                    equity: equity.0,
                    ts: ts.0,
                })?,
            ),
            JournalEntry::Feed(FeedEvent::LeaderEquity { leader, equity, ts }) => (
                ts.0,
                self.put(&EquityRec {
                    leader: leader.0,
                    equity: equity.0,
                    ts: ts.0,
                })?,
            ),
            JournalEntry::Feed(FeedEvent::Command {
                cmd,
                ts,
                by: NO_SENDER,
            }) => {
                let (c, target) = command_code(cmd);
                (
                    ts.0,
                    self.put(&CommandRec {
                        code: c,
                        target,
                        ts: ts.0,
                    })?,
                )
            }
            JournalEntry::Feed(FeedEvent::Command { cmd, ts, by }) => {
                let (c, target) = command_code(cmd);
                (
                    ts.0,
                    self.put(&CommandByRec {
                        code: c,
                        target,
                        ts: ts.0,
                        by,
                    })?,
                )
            }
            JournalEntry::Exec(r) => (r.recv_ts.0, self.put(&exec_rec(&r))?),
            JournalEntry::Feed(FeedEvent::Tick { ts }) => (ts.0, self.put(&TickRec { ts: ts.0 })?),
            // No time of its own: a position is not an event in time.
            JournalEntry::Feed(FeedEvent::SourceCursor { source, pos }) => {
                (0, self.put(&SourceCursorRec { source, pos })?)
            }
            JournalEntry::Feed(FeedEvent::Venue { venue, up, ts }) => (
                ts.0,
                self.put(&VenueRec {
                    venue: venue.0,
                    up,
                    ts: ts.0,
                })?,
            ),
            JournalEntry::Decision(d) if d.resync != SyncReason::None => (
                0,
                self.put(&ResyncDecisionRec {
                    decision: decision_rec(&d),
                    why: d.resync.code(),
                })?,
            ),
            JournalEntry::Decision(d) => (0, self.put(&decision_rec(&d))?),
            JournalEntry::Order(o) => (o.ts.0, self.put(&order_rec(&o))?),
            JournalEntry::Notice(n) => (0, self.put(&notice_rec(&n))?),
            JournalEntry::Empty
            | JournalEntry::Feed(FeedEvent::Empty | FeedEvent::Revision { .. }) => return Ok(None),
        };
        Ok(Some((kind, ts, bytes)))
    }

    pub fn config(
        &mut self,
        revision: u64,
        part: u32,
        parts: u32,
        toml: &str,
    ) -> Result<&[u8], RecordError> {
        self.put(&ConfigRec {
            revision,
            part,
            parts,
            toml: toml.to_string(),
        })
    }
}

/// A fill's fields as both of its records hold them (`Kind::LeaderFill`,
/// `Kind::LeaderFillKind`).
fn leader_fill_rec(f: &LeaderFill) -> LeaderFillRec {
    LeaderFillRec {
        leader: f.leader.0,
        symbol: f.symbol.0,
        side: f.side.code(),
        qty: f.qty.0,
        price: f.price.0,
        event_key: f.event_key,
        order_key: f.order_key,
        order_qty: f.order_qty.0,
        venue_ts: f.venue_ts.0,
        recv_ts: f.recv_ts.0,
    }
}

fn leader_fill_from(
    r: &ArchivedLeaderFillRec,
    kind: FillKind,
    k: &'static str,
) -> Result<LeaderFill, RecordError> {
    Ok(LeaderFill {
        leader: LeaderIdx(r.leader.to_native()),
        symbol: SymbolIdx(r.symbol.to_native()),
        side: from_code::<Side>(r.side, k, "side")?,
        qty: Lots(r.qty.to_native()),
        price: Ticks(r.price.to_native()),
        event_key: r.event_key.to_native(),
        order_key: r.order_key.to_native(),
        order_qty: Lots(r.order_qty.to_native()),
        venue_ts: Nanos(r.venue_ts.to_native()),
        recv_ts: Nanos(r.recv_ts.to_native()),
        kind,
    })
}

/// The record of a venue report (`Kind::Exec`).
pub fn exec_rec(r: &ExecReport) -> ExecRec {
    ExecRec {
        order_id: r.order_id,
        kind: r.kind.code(),
        qty: r.qty.0,
        price: r.price.0,
        trade_id: r.trade_id,
        fee: r.fee.0,
        reject: r.reject.code(),
        venue_ts: r.venue_ts.0,
        recv_ts: r.recv_ts.0,
    }
}

/// The record of a decision (`Kind::Decision`, when it is no resync's).
pub fn decision_rec(d: &Decision) -> DecisionRec {
    DecisionRec {
        event_key: d.event_key,
        sub: d.sub.0,
        symbol: d.symbol.0,
        target: d.target.0,
        delta: d.delta.0,
        sent: d.sent.0,
        status: d.status.code(),
        reason: d.reason.code(),
        revision: d.revision,
    }
}

fn order_rec(o: &FollowerOrder) -> OrderRec {
    OrderRec {
        id: o.id,
        sub: o.sub.0,
        follower: o.follower.0,
        symbol: o.symbol.0,
        side: o.side.code(),
        qty: o.qty.0,
        order_type: o.order_type.code(),
        limit: o.limit.0,
        reduce_only: o.reduce_only,
        leader_event_key: o.leader_event_key,
        ts: o.ts.0,
    }
}

fn decision_from(r: &ArchivedDecisionRec, k: &'static str) -> Result<Decision, RecordError> {
    Ok(Decision {
        event_key: r.event_key.to_native(),
        sub: SubIdx(r.sub.to_native()),
        symbol: SymbolIdx(r.symbol.to_native()),
        target: Lots(r.target.to_native()),
        delta: Lots(r.delta.to_native()),
        sent: Lots(r.sent.to_native()),
        status: from_code::<DecisionStatus>(r.status, k, "status")?,
        reason: from_code::<Reason>(r.reason, k, "reason")?,
        revision: r.revision.to_native(),
        resync: SyncReason::None,
    })
}

fn order_from(r: &ArchivedOrderRec, k: &'static str) -> Result<FollowerOrder, RecordError> {
    Ok(FollowerOrder {
        id: r.id.to_native(),
        sub: SubIdx(r.sub.to_native()),
        follower: FollowerIdx(r.follower.to_native()),
        symbol: SymbolIdx(r.symbol.to_native()),
        side: from_code::<Side>(r.side, k, "side")?,
        qty: Lots(r.qty.to_native()),
        order_type: from_code::<OrderType>(r.order_type, k, "order_type")?,
        limit: Ticks(r.limit.to_native()),
        reduce_only: r.reduce_only,
        leader_event_key: r.leader_event_key.to_native(),
        ts: Nanos(r.ts.to_native()),
        // Market hints, not journaled (`FollowerOrder::journaled`).
        venue_ts: Nanos(0),
        ref_price: Ticks(0),
    })
}

fn access<'a, T>(kind: Kind, payload: &'a [u8]) -> Result<&'a T, RecordError>
where
    T: rkyv::Portable
        + for<'b> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'b, RkyvError>>,
{
    rkyv::access::<T, RkyvError>(payload).map_err(|e| RecordError::Payload {
        kind: kind.as_str(),
        message: relative(&e.to_string(), payload.as_ptr() as usize),
    })
}

/// `message` with each address (`0x…`, as the validator names pointers and
/// ranges) written as its offset in the payload at `base` (`+40`): where the
/// payload happens to lie in memory is neither useful nor the same twice, and a
/// record's error must be (a restart must stop at it with the same words).
fn relative(message: &str, base: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let digits = rest[at + 2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .map_or(rest.len() - at - 2, |n| n);
        let hex = &rest[at + 2..at + 2 + digits];
        match usize::from_str_radix(hex, 16)
            .ok()
            .and_then(|a| a.checked_sub(base))
        {
            Some(offset) if !hex.is_empty() => {
                out.push('+');
                out.push_str(&offset.to_string());
            }
            _ => out.push_str(&rest[at..at + 2 + digits]),
        }
        rest = &rest[at + 2 + digits..];
    }
    out.push_str(rest);
    out
}

/// Decode one record's payload. `schema` and `kind` come from the record header.
pub fn decode(kind: u16, schema: u16, payload: &[u8]) -> Result<Entry, RecordError> {
    if schema != SCHEMA {
        return Err(RecordError::UnknownSchema { found: schema });
    }
    let kind = Kind::from_u16(kind).ok_or(RecordError::UnknownKind(kind))?;
    let k = kind.as_str();
    Ok(match kind {
        Kind::Config => {
            let r = access::<ArchivedConfigRec>(kind, payload)?;
            Entry::Config(ConfigRec {
                revision: r.revision.to_native(),
                part: r.part.to_native(),
                parts: r.parts.to_native(),
                toml: r.toml.as_str().to_string(),
            })
        }
        Kind::LeaderFill => {
            let r = access::<ArchivedLeaderFillRec>(kind, payload)?;
            Entry::Feed(FeedEvent::LeaderFill(leader_fill_from(
                r,
                FillKind::Trade,
                k,
            )?))
        }
        Kind::LeaderFillKind => {
            let r = access::<ArchivedLeaderFillKindRec>(kind, payload)?;
            let fill_kind = from_code::<FillKind>(r.kind, k, "kind")?;
            // A trade has its own record: one here is no writer's.
            if fill_kind == FillKind::Trade {
                return Err(RecordError::BadCode {
                    kind: k,
                    field: "kind",
                    code: r.kind,
                });
            }
            Entry::Feed(FeedEvent::LeaderFill(leader_fill_from(
                &r.fill, fill_kind, k,
            )?))
        }
        Kind::MarkPrice => {
            let r = access::<ArchivedMarkRec>(kind, payload)?;
            Entry::Feed(FeedEvent::MarkPrice {
                symbol: SymbolIdx(r.symbol.to_native()),
                price: Ticks(r.price.to_native()),
                ts: Nanos(r.ts.to_native()),
            })
        }
        Kind::Funding => {
            // Any rate and price read back as written: bounds are the core's to
            // judge (it counts one out of bounds invalid), as a mark's price is.
            let r = access::<ArchivedFundingRec>(kind, payload)?;
            Entry::Feed(FeedEvent::Funding {
                symbol: SymbolIdx(r.symbol.to_native()),
                rate: FundingRate(r.rate.to_native()),
                price: Ticks(r.price.to_native()),
                ts: Nanos(r.ts.to_native()),
            })
        }
        Kind::LeaderEquity => {
            let r = access::<ArchivedEquityRec>(kind, payload)?;
            Entry::Feed(FeedEvent::LeaderEquity {
                leader: LeaderIdx(r.leader.to_native()),
                equity: Money(r.equity.to_native()),
                ts: Nanos(r.ts.to_native()),
            })
        }
        Kind::FollowerEquity => {
            let r = access::<ArchivedFollowerEquityRec>(kind, payload)?;
            Entry::Feed(FeedEvent::FollowerEquity {
                follower: FollowerIdx(r.follower.to_native()),
                equity: Money(r.equity.to_native()),
                ts: Nanos(r.ts.to_native()),
            })
        }
        Kind::Command => {
            let r = access::<ArchivedCommandRec>(kind, payload)?;
            Entry::Feed(FeedEvent::Command {
                cmd: command_from(r.code, r.target.to_native())?,
                ts: Nanos(r.ts.to_native()),
                by: NO_SENDER,
            })
        }
        Kind::CommandBy => {
            let r = access::<ArchivedCommandByRec>(kind, payload)?;
            Entry::Feed(FeedEvent::Command {
                cmd: command_from(r.code, r.target.to_native())?,
                ts: Nanos(r.ts.to_native()),
                by: r.by.to_native(),
            })
        }
        Kind::Exec => {
            let r = access::<ArchivedExecRec>(kind, payload)?;
            Entry::Exec(ExecReport {
                order_id: r.order_id.to_native(),
                kind: from_code::<ExecKind>(r.kind, k, "kind")?,
                qty: Lots(r.qty.to_native()),
                price: Ticks(r.price.to_native()),
                trade_id: r.trade_id.to_native(),
                fee: Money(r.fee.to_native()),
                reject: from_code::<RejectReason>(r.reject, k, "reject")?,
                venue_ts: Nanos(r.venue_ts.to_native()),
                recv_ts: Nanos(r.recv_ts.to_native()),
            })
        }
        Kind::Decision => Entry::Decision(decision_from(
            access::<ArchivedDecisionRec>(kind, payload)?,
            k,
        )?),
        Kind::Order => Entry::Order(order_from(access::<ArchivedOrderRec>(kind, payload)?, k)?),
        Kind::Tick => {
            let r = access::<ArchivedTickRec>(kind, payload)?;
            Entry::Feed(FeedEvent::Tick {
                ts: Nanos(r.ts.to_native()),
            })
        }
        Kind::SourceCursor => {
            let r = access::<ArchivedSourceCursorRec>(kind, payload)?;
            Entry::Feed(FeedEvent::SourceCursor {
                source: r.source.to_native(),
                pos: r.pos.to_native(),
            })
        }
        Kind::Venue => {
            let r = access::<ArchivedVenueRec>(kind, payload)?;
            Entry::Feed(FeedEvent::Venue {
                venue: VenueIdx(r.venue.to_native()),
                up: r.up,
                ts: Nanos(r.ts.to_native()),
            })
        }
        Kind::ResyncDecision => {
            let r = access::<ArchivedResyncDecisionRec>(kind, payload)?;
            let resync = SyncReason::from_code(r.why).ok_or(RecordError::BadCode {
                kind: k,
                field: "why",
                code: r.why,
            })?;
            if resync == SyncReason::None {
                return Err(RecordError::BadCode {
                    kind: k,
                    field: "why",
                    code: r.why,
                });
            }
            Entry::Decision(Decision {
                resync,
                ..decision_from(&r.decision, k)?
            })
        }
        Kind::OrderDecision => {
            let r = access::<ArchivedOrderDecisionRec>(kind, payload)?;
            Entry::OrderDecision(order_from(&r.order, k)?, decision_from(&r.decision, k)?)
        }
        Kind::PairRows => {
            let (o, d) = read_row(payload)?;
            Entry::OrderDecision(o, d)
        }
        Kind::ExecRows => Entry::Exec(read_exec_row(payload)?),
        Kind::Notice => {
            let r = access::<ArchivedNoticeRec>(kind, payload)?;
            let rec = NoticeRec {
                code: r.code,
                sub: r.sub.to_native(),
                order_id: r.order_id.to_native(),
                reason: r.reason,
                detail: r.detail,
            };
            Entry::Notice(notice_from(&rec)?)
        }
    })
}

/// A JSON string literal for `s`.
pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn decision_json(d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "kind": "decision", "event_key": format!("{:016x}", d.event_key), "sub": d.sub.0,
        "symbol": d.symbol.0, "target_lots": d.target.0, "delta_lots": d.delta.0, "sent_lots": d.sent.0,
        "status": d.status.as_str(), "reason": d.reason.as_str(), "revision": format!("{:016x}", d.revision),
        "resync": d.resync.as_str(),
    })
}

fn order_json(o: &FollowerOrder) -> serde_json::Value {
    serde_json::json!({
        "kind": "order", "client_order_id": fillcast_engine::ids::client_order_id(o.id),
        "sub": o.sub.0, "follower": o.follower.0, "symbol": o.symbol.0, "side": o.side.as_str(), "qty_lots": o.qty.0,
        "type": if o.order_type == OrderType::Market { "market" } else { "limit_ioc" }, "limit_ticks": o.limit.0,
        "reduce_only": o.reduce_only, "event_key": format!("{:016x}", o.leader_event_key),
    })
}

/// The `Kind::OrderDecision` record of an order and the decision right after
/// it in the engine's stream, when the order is that decision's (same
/// subscription and leader event, on a leader fill); `None` otherwise, and
/// the two are written as they are. The stage archives it in place.
#[inline]
pub fn pair_rec(o: &FollowerOrder, d: &Decision) -> Option<OrderDecisionRec> {
    if o.leader_event_key == 0
        || o.leader_event_key != d.event_key
        || o.sub != d.sub
        || d.resync != SyncReason::None
    {
        return None;
    }
    Some(OrderDecisionRec {
        order: order_rec(o),
        decision: decision_rec(d),
    })
}

/// Whether `o` and `d` (an order and the decision right after it) go in a row
/// (`write_row`) with time `ts`: `pair_rec`'s pair, whose decision sent this
/// one order and nothing else (so the row keeps the signed quantity once), at
/// `ts` (a row record's rows share its header's time). Others are written as
/// they are.
#[inline(always)]
pub fn row_fits(o: &FollowerOrder, d: &Decision, ts: u64) -> bool {
    o.leader_event_key != 0
        && o.leader_event_key == d.event_key
        && o.sub == d.sub
        && o.symbol == d.symbol
        && d.resync == SyncReason::None
        && o.ts.0 == ts
        && o.qty > Lots::ZERO
        && d.sent == o.qty.signed(o.side.sign())
}

/// Byte offsets in a row (`Kind::PairRows`); all little-endian, 78..80 zero.
mod row {
    pub const ID: usize = 0;
    pub const EVENT_KEY: usize = 8;
    pub const REVISION: usize = 16;
    pub const TS: usize = 24;
    pub const TARGET: usize = 32;
    pub const DELTA: usize = 40;
    pub const SENT: usize = 48;
    pub const LIMIT: usize = 56;
    pub const SUB: usize = 64;
    pub const FOLLOWER: usize = 68;
    pub const SYMBOL: usize = 72;
    pub const ORDER_TYPE: usize = 74;
    pub const REDUCE_ONLY: usize = 75;
    pub const STATUS: usize = 76;
    pub const REASON: usize = 77;
    pub const PAD: usize = 78;
}

/// Writes the row of `o` and `d`, which `row_fits`, into `buf` (a row's bytes in
/// the journal's mapping).
#[inline(always)]
pub fn write_row(o: &FollowerOrder, d: &Decision, buf: &mut [u8; crate::segment::PAIR_ROW_BYTES]) {
    debug_assert!(row_fits(o, d, o.ts.0));
    let mut put = |at: usize, v: u64| buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(row::ID, o.id);
    put(row::EVENT_KEY, d.event_key);
    put(row::REVISION, d.revision);
    put(row::TS, o.ts.0);
    put(row::TARGET, d.target.0 as u64);
    put(row::DELTA, d.delta.0 as u64);
    put(row::SENT, d.sent.0 as u64);
    put(row::LIMIT, o.limit.0 as u64);
    buf[row::SUB..row::SUB + 4].copy_from_slice(&d.sub.0.to_le_bytes());
    buf[row::FOLLOWER..row::FOLLOWER + 4].copy_from_slice(&o.follower.0.to_le_bytes());
    buf[row::SYMBOL..row::SYMBOL + 2].copy_from_slice(&d.symbol.0.to_le_bytes());
    buf[row::ORDER_TYPE] = o.order_type.code();
    buf[row::REDUCE_ONLY] = o.reduce_only as u8;
    buf[row::STATUS] = d.status.code();
    buf[row::REASON] = d.reason.code();
    buf[row::PAD..].fill(0);
}

/// The order and decision of a row, every field checked as an archive's are.
fn read_row(p: &[u8]) -> Result<(FollowerOrder, Decision), RecordError> {
    const K: &str = "pair_rows";
    let bad = |message: String| RecordError::Payload { kind: K, message };
    let p: &[u8; crate::segment::PAIR_ROW_BYTES] = p.try_into().map_err(|_| {
        bad(format!(
            "a row is {} bytes, not {}",
            crate::segment::PAIR_ROW_BYTES,
            p.len()
        ))
    })?;
    let u64_at = |at: usize| u64::from_le_bytes(p[at..at + 8].try_into().unwrap_or_default());
    let u32_at = |at: usize| u32::from_le_bytes(p[at..at + 4].try_into().unwrap_or_default());
    if p[row::PAD..] != [0, 0] {
        return Err(bad("row padding is not zero".into()));
    }
    let sent = u64_at(row::SENT) as i64;
    if sent == 0 || sent == i64::MIN {
        return Err(bad(format!(
            "row sent {sent} lots: a row's order is not empty"
        )));
    }
    let reduce_only = match p[row::REDUCE_ONLY] {
        0 => false,
        1 => true,
        c => {
            return Err(RecordError::BadCode {
                kind: K,
                field: "reduce_only",
                code: c,
            })
        }
    };
    let (event_key, sub) = (u64_at(row::EVENT_KEY), SubIdx(u32_at(row::SUB)));
    let symbol = SymbolIdx(u16::from_le_bytes([p[row::SYMBOL], p[row::SYMBOL + 1]]));
    let order = FollowerOrder {
        id: u64_at(row::ID),
        sub,
        follower: FollowerIdx(u32_at(row::FOLLOWER)),
        symbol,
        side: Side::from_sign(sent),
        qty: Lots(sent.abs()),
        order_type: from_code::<OrderType>(p[row::ORDER_TYPE], K, "order_type")?,
        limit: Ticks(u64_at(row::LIMIT) as i64),
        reduce_only,
        leader_event_key: event_key,
        ts: Nanos(u64_at(row::TS)),
        // Market hints, not journaled (`FollowerOrder::journaled`).
        venue_ts: Nanos(0),
        ref_price: Ticks(0),
    };
    let decision = Decision {
        event_key,
        sub,
        symbol,
        target: Lots(u64_at(row::TARGET) as i64),
        delta: Lots(u64_at(row::DELTA) as i64),
        sent: Lots(sent),
        status: from_code::<DecisionStatus>(p[row::STATUS], K, "status")?,
        reason: from_code::<Reason>(p[row::REASON], K, "reason")?,
        revision: u64_at(row::REVISION),
        resync: SyncReason::None,
    };
    Ok((order, decision))
}

/// Byte offsets in an exec row (`Kind::ExecRows`); all little-endian, 58..64 zero.
mod exec_row {
    pub const ORDER_ID: usize = 0;
    pub const QTY: usize = 8;
    pub const PRICE: usize = 16;
    pub const TRADE_ID: usize = 24;
    pub const FEE: usize = 32;
    pub const VENUE_TS: usize = 40;
    pub const RECV_TS: usize = 48;
    pub const KIND: usize = 56;
    pub const REJECT: usize = 57;
    pub const PAD: usize = 58;
}

/// Writes the row of venue report `r` into `buf` (a row's bytes in the
/// journal's mapping). A row record's rows share its header's time: the stage
/// puts reports received together (`recv_ts`) in one.
#[inline(always)]
pub fn write_exec_row(r: &ExecReport, buf: &mut [u8; crate::segment::EXEC_ROW_BYTES]) {
    let mut put = |at: usize, v: u64| buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(exec_row::ORDER_ID, r.order_id);
    put(exec_row::QTY, r.qty.0 as u64);
    put(exec_row::PRICE, r.price.0 as u64);
    put(exec_row::TRADE_ID, r.trade_id);
    put(exec_row::FEE, r.fee.0 as u64);
    put(exec_row::VENUE_TS, r.venue_ts.0);
    put(exec_row::RECV_TS, r.recv_ts.0);
    buf[exec_row::KIND] = r.kind.code();
    buf[exec_row::REJECT] = r.reject.code();
    buf[exec_row::PAD..].fill(0);
}

/// The venue report of an exec row, every field checked as an archive's are.
fn read_exec_row(p: &[u8]) -> Result<ExecReport, RecordError> {
    const K: &str = "exec_rows";
    let p: &[u8; crate::segment::EXEC_ROW_BYTES] =
        p.try_into().map_err(|_| RecordError::Payload {
            kind: K,
            message: format!(
                "a row is {} bytes, not {}",
                crate::segment::EXEC_ROW_BYTES,
                p.len()
            ),
        })?;
    if p[exec_row::PAD..].iter().any(|b| *b != 0) {
        return Err(RecordError::Payload {
            kind: K,
            message: "row padding is not zero".into(),
        });
    }
    let u64_at = |at: usize| u64::from_le_bytes(p[at..at + 8].try_into().unwrap_or_default());
    Ok(ExecReport {
        order_id: u64_at(exec_row::ORDER_ID),
        kind: from_code::<ExecKind>(p[exec_row::KIND], K, "kind")?,
        qty: Lots(u64_at(exec_row::QTY) as i64),
        price: Ticks(u64_at(exec_row::PRICE) as i64),
        trade_id: u64_at(exec_row::TRADE_ID),
        fee: Money(u64_at(exec_row::FEE) as i64),
        reject: from_code::<RejectReason>(p[exec_row::REJECT], K, "reject")?,
        venue_ts: Nanos(u64_at(exec_row::VENUE_TS)),
        recv_ts: Nanos(u64_at(exec_row::RECV_TS)),
    })
}

/// Writes `v`'s archive into `buf`, which must be exactly as long (a record's
/// payload in the journal's mapping: the fan-out's pairs are encoded in place,
/// not into a buffer and copied). The same bytes as `Encoder`'s.
#[inline]
pub fn write_into<T>(v: &T, buf: &mut [u8]) -> Result<(), RecordError>
where
    T: for<'a, 'b> Serialize<
        rkyv::api::low::LowSerializer<
            rkyv::ser::writer::Buffer<'a>,
            rkyv::ser::allocator::SubAllocator<'b>,
            RkyvError,
        >,
    >,
{
    let want = buf.len();
    let out = rkyv::api::low::to_bytes_in_with_alloc::<_, _, RkyvError>(
        v,
        rkyv::ser::writer::Buffer::from(buf),
        rkyv::ser::allocator::SubAllocator::empty(),
    )
    .map_err(|e| RecordError::Encode(e.to_string()))?;
    if out.len() != want {
        return Err(RecordError::Encode(format!(
            "archive of {} bytes where {want} were expected",
            out.len()
        )));
    }
    Ok(())
}

/// One record as a JSON line, for people reading a journal at 2 a.m.
pub fn entry_json(seq: u64, ts: u64, e: &Entry) -> String {
    use serde_json::json;
    let v = match e {
        Entry::Config(c) => {
            json!({"seq": seq, "ts": ts, "kind": "config", "revision": format!("{:016x}", c.revision), "part": c.part, "parts": c.parts, "toml": c.toml})
        }
        Entry::Feed(FeedEvent::LeaderFill(f)) => {
            let mut j = json!({
                "seq": seq, "ts": ts, "kind": "leader_fill", "leader": f.leader.0, "symbol": f.symbol.0,
                "side": f.side.as_str(), "qty_lots": f.qty.0, "price_ticks": f.price.0,
                "event_key": format!("{:016x}", f.event_key), "order_key": format!("{:016x}", f.order_key),
                "order_qty_lots": f.order_qty.0, "venue_ts": f.venue_ts.0, "recv_ts": f.recv_ts.0,
            });
            // Said only when not an ordinary trade, as `by_uid` of a command:
            // a trade's line reads as it always did.
            if f.kind != FillKind::Trade {
                j["fill_kind"] = json!(f.kind.as_str());
            }
            j
        }
        Entry::Feed(FeedEvent::MarkPrice {
            symbol,
            price,
            ts: t,
        }) => {
            json!({"seq": seq, "ts": ts, "kind": "mark_price", "symbol": symbol.0, "price_ticks": price.0, "venue_ts": t.0})
        }
        Entry::Feed(FeedEvent::Funding {
            symbol,
            rate,
            price,
            ts: t,
        }) => json!({
            "seq": seq, "ts": ts, "kind": "funding", "symbol": symbol.0, "rate": rate.to_decimal().to_string(),
            "rate_e8": rate.0, "price_ticks": price.0, "venue_ts": t.0,
        }),
        Entry::Feed(FeedEvent::FollowerEquity {
            follower,
            equity,
            ts: t,
        }) => json!({
            "seq": seq, "ts": ts, "kind": "follower_equity", "follower": follower.0, "equity": equity.to_decimal().to_string(), "venue_ts": t.0,
        }),
        Entry::Feed(FeedEvent::LeaderEquity {
            leader,
            equity,
            ts: t,
        }) => json!({
            "seq": seq, "ts": ts, "kind": "leader_equity", "leader": leader.0, "equity": equity.to_decimal().to_string(), "venue_ts": t.0,
        }),
        Entry::Feed(FeedEvent::Command { cmd, by, .. }) => {
            let mut j =
                json!({"seq": seq, "ts": ts, "kind": "command", "command": format!("{cmd:?}")});
            if *by != NO_SENDER {
                j["by_uid"] = json!(by);
            }
            j
        }
        Entry::Feed(FeedEvent::Empty) => json!({"seq": seq, "ts": ts, "kind": "empty"}),
        Entry::Feed(FeedEvent::Revision { revision, .. }) => {
            json!({"seq": seq, "ts": ts, "kind": "revision", "revision": format!("{revision:016x}")})
        }
        Entry::Feed(FeedEvent::Tick { .. }) => json!({"seq": seq, "ts": ts, "kind": "tick"}),
        Entry::Feed(FeedEvent::SourceCursor { source, pos }) => {
            json!({"seq": seq, "ts": ts, "kind": "source_cursor", "source": source, "pos": pos})
        }
        Entry::Feed(FeedEvent::Venue { venue, up, .. }) => {
            json!({"seq": seq, "ts": ts, "kind": "venue", "venue": venue.0, "up": up})
        }
        Entry::Exec(r) => json!({
            "seq": seq, "ts": ts, "kind": "exec", "order_id": format!("{:016x}", r.order_id),
            "exec": format!("{:?}", r.kind).to_lowercase(), "qty_lots": r.qty.0, "price_ticks": r.price.0,
            "trade_id": r.trade_id, "fee": r.fee.to_decimal().to_string(), "reject": r.reject.as_str(),
            "venue_ts": r.venue_ts.0, "recv_ts": r.recv_ts.0,
        }),
        Entry::Decision(d) => {
            let mut v = decision_json(d);
            v["seq"] = json!(seq);
            v["ts"] = json!(ts);
            v
        }
        Entry::Order(o) => {
            let mut v = order_json(o);
            v["seq"] = json!(seq);
            v["ts"] = json!(ts);
            v
        }
        Entry::OrderDecision(o, d) => json!({
            "seq": seq, "ts": ts, "kind": "order_decision", "order": order_json(o), "decision": decision_json(d),
        }),
        Entry::Notice(n) => {
            json!({"seq": seq, "ts": ts, "kind": "notice", "notice": format!("{n:?}")})
        }
    };
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_offsets_in_the_payload() {
        assert_eq!(
            relative("ptr 0x1010 size 56 in range 0x1000..0x1008", 0x1000),
            "ptr +16 size 56 in range +0..+8"
        );
        // Not an address in the payload (below it), or not a number: as it was.
        assert_eq!(relative("at 0x0ff, 0x", 0x1000), "at 0x0ff, 0x");
        assert_eq!(relative("no address", 7), "no address");
    }

    fn fill(kind: FillKind) -> LeaderFill {
        LeaderFill {
            leader: LeaderIdx(3),
            symbol: SymbolIdx(2),
            side: Side::Sell,
            qty: Lots(40),
            price: Ticks(420_880),
            event_key: 0x1122_3344_5566_7788,
            order_key: 0x99,
            order_qty: Lots(100),
            venue_ts: Nanos(1_705_385_954_298_000_000),
            recv_ts: Nanos(1_705_385_954_300_000_000),
            kind,
        }
    }

    fn aligned(bytes: &[u8]) -> AlignedVec<16> {
        let mut v = AlignedVec::<16>::new();
        v.extend_from_slice(bytes);
        v
    }

    /// Issue 15: an ordinary trade is still a `leader_fill` record, its bytes
    /// those of the layout journals written before kinds hold (the golden
    /// journal pins them too); every other kind is a `leader_fill_kind` record
    /// of the same fields and the kind, and each reads back as itself.
    #[test]
    fn a_fills_kind_round_trips_and_a_trade_keeps_the_old_record() {
        let mut enc = Encoder::default();
        let trade = fill(FillKind::Trade);
        let (kind, ts, bytes) = enc
            .entry(&JournalEntry::Feed(FeedEvent::LeaderFill(trade)))
            .unwrap()
            .unwrap();
        assert_eq!((kind, ts), (Kind::LeaderFill, trade.recv_ts.0));
        let bytes = bytes.to_vec();
        let old = LeaderFillRec {
            leader: 3,
            symbol: 2,
            side: Side::Sell.code(),
            qty: 40,
            price: 420_880,
            event_key: 0x1122_3344_5566_7788,
            order_key: 0x99,
            order_qty: 100,
            venue_ts: 1_705_385_954_298_000_000,
            recv_ts: 1_705_385_954_300_000_000,
        };
        assert_eq!(bytes, enc.put(&old).unwrap());
        assert_eq!(
            decode(Kind::LeaderFill as u16, SCHEMA, &aligned(&bytes)),
            Ok(Entry::Feed(FeedEvent::LeaderFill(trade)))
        );
        for &k in FillKind::ALL.iter().filter(|k| **k != FillKind::Trade) {
            let f = fill(k);
            let (kind, ts, bytes) = enc
                .entry(&JournalEntry::Feed(FeedEvent::LeaderFill(f)))
                .unwrap()
                .unwrap();
            assert_eq!((kind, ts), (Kind::LeaderFillKind, f.recv_ts.0), "{k:?}");
            assert!(kind.is_input());
            let bytes = aligned(bytes);
            assert_eq!(
                decode(Kind::LeaderFillKind as u16, SCHEMA, &bytes),
                Ok(Entry::Feed(FeedEvent::LeaderFill(f))),
                "{k:?}"
            );
            // `journal inspect --json` says the kind; a trade's line has none.
            let line = entry_json(9, ts, &Entry::Feed(FeedEvent::LeaderFill(f)));
            assert!(
                line.contains(&format!(r#""fill_kind":"{}""#, k.name())),
                "{line}"
            );
        }
        let line = entry_json(9, 1, &Entry::Feed(FeedEvent::LeaderFill(trade)));
        assert!(!line.contains("fill_kind"), "{line}");
    }

    /// A `leader_fill_kind` record no writer makes (a trade's kind, an unknown
    /// code, damaged or cut bytes) is refused with what is wrong, or reads as
    /// a well-formed fill: never a panic.
    #[test]
    fn a_damaged_leader_fill_kind_record_is_refused_or_well_formed() {
        let k = Kind::LeaderFillKind as u16;
        let mut enc = Encoder::default();
        let good = |enc: &mut Encoder, kind: u8| {
            aligned(
                enc.put(&LeaderFillKindRec {
                    fill: leader_fill_rec(&fill(FillKind::Adl)),
                    kind,
                })
                .unwrap(),
            )
        };
        for code in [FillKind::Trade.code(), 5, 0xee, 0xff] {
            assert_eq!(
                decode(k, SCHEMA, &good(&mut enc, code)),
                Err(RecordError::BadCode {
                    kind: "leader_fill_kind",
                    field: "kind",
                    code,
                })
            );
        }
        let bytes = good(&mut enc, FillKind::Adl.code());
        for len in 0..bytes.len() {
            assert!(decode(k, SCHEMA, &aligned(&bytes[..len])).is_err(), "{len}");
        }
        for at in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[at] = v;
                if let Ok(Entry::Feed(FeedEvent::LeaderFill(f))) = decode(k, SCHEMA, &b) {
                    assert_ne!(f.kind, FillKind::Trade);
                }
            }
        }
        // The new kind read as the old record (an older build's mistake) or
        // the other way round is refused or reads as a fill, never a panic.
        let _ = decode(Kind::LeaderFill as u16, SCHEMA, &bytes);
    }

    fn funding() -> FeedEvent {
        FeedEvent::Funding {
            symbol: SymbolIdx(2),
            rate: FundingRate(-10_000),
            price: Ticks(420_880),
            ts: Nanos(1_732_089_600_000_000_000),
        }
    }

    /// Issue 16: funding is a record kind of its own, an input, whose bytes are
    /// the archive of its four fields (frozen here as the golden journal
    /// freezes the others), read back as itself and shown by `journal inspect`.
    #[test]
    fn a_funding_record_round_trips_with_frozen_bytes() {
        let mut enc = Encoder::default();
        let ev = funding();
        let (kind, ts, bytes) = enc.entry(&JournalEntry::Feed(ev)).unwrap().unwrap();
        assert_eq!((kind, ts), (Kind::Funding, 1_732_089_600_000_000_000));
        assert_eq!(kind as u16, 20);
        assert!(kind.is_input());
        assert_eq!(Kind::from_u16(20), Some(Kind::Funding));
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            [
                "0200000000000000", // symbol 2, padding
                "f0d8ffffffffffff", // rate -10,000
                "106c060000000000", // price 420,880 ticks
                "0000266f509e0918", // ts
            ]
            .concat()
        );
        let bytes = aligned(bytes);
        assert_eq!(
            decode(Kind::Funding as u16, SCHEMA, &bytes),
            Ok(Entry::Feed(ev))
        );
        let line = entry_json(4, ts, &Entry::Feed(ev));
        for part in [
            r#""kind":"funding""#,
            r#""rate":"-0.0001""#,
            r#""rate_e8":-10000"#,
            r#""price_ticks":420880"#,
            r#""symbol":2"#,
        ] {
            assert!(line.contains(part), "{line}");
        }
    }

    /// A funding record cut short is refused; any byte of it changed, or bytes
    /// added, read as some funding event (every bit pattern of its fields is
    /// one) or are refused: never a panic. Out-of-bounds rates read
    /// back as written, for the core to count invalid.
    #[test]
    fn a_damaged_or_truncated_funding_record_is_refused_never_a_panic() {
        let k = Kind::Funding as u16;
        let mut enc = Encoder::default();
        let bytes = aligned(
            enc.entry(&JournalEntry::Feed(funding()))
                .unwrap()
                .unwrap()
                .2,
        );
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    decode(k, SCHEMA, &aligned(&bytes[..len])),
                    Err(RecordError::Payload {
                        kind: "funding",
                        ..
                    })
                ),
                "{len}"
            );
        }
        // Longer: rkyv reads the archive at the end of the buffer, so the
        // record is whatever those bytes say, a funding event or an error.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&[0xffu8; 8]);
        assert!(!matches!(
            decode(k, SCHEMA, &aligned(&longer)),
            Ok(Entry::Feed(ref e)) if !matches!(e, FeedEvent::Funding { .. })
        ));
        for at in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[at] = v;
                match decode(k, SCHEMA, &b) {
                    Ok(Entry::Feed(FeedEvent::Funding { .. })) | Err(_) => {}
                    Ok(other) => panic!("byte {at} = {v}: {other:?}"),
                }
            }
        }
        let mut wild = enc
            .put(&FundingRec {
                symbol: u16::MAX,
                rate: i64::MIN,
                price: -1,
                ts: u64::MAX,
            })
            .unwrap()
            .to_vec();
        let back = decode(k, SCHEMA, &aligned(&wild));
        assert!(
            matches!(back, Ok(Entry::Feed(FeedEvent::Funding { rate, .. })) if !rate.is_within_bounds()),
            "{back:?}"
        );
        // Hostile bytes of every other kind's size as funding, and funding's
        // bytes as every other kind: errors or well-formed entries.
        wild.fill(0xff);
        for kind in Kind::ALL {
            let _ = decode(kind as u16, SCHEMA, &bytes);
            let _ = decode(k, SCHEMA, &aligned(&wild[..wild.len() / 2]));
        }
    }

    /// `sidecar_postgres::hostile_records_give_an_error_naming_their_seq` failed
    /// once in CI: the second run on a journal with a damaged decision record
    /// stopped at the same record with other words, since the validator's message
    /// named the payload's addresses, which differ from one mapping to the next.
    /// The same bytes now give the same error wherever they lie.
    #[test]
    fn regression_a_damaged_record_gave_another_error_at_every_run() {
        // Aligned as the journal's payloads are, at two different places.
        let copy = || {
            let mut v = AlignedVec::<16>::new();
            v.extend_from_slice(&[0xff; 8]);
            v
        };
        let (a, b) = (copy(), copy());
        let (x, y) = (&a[..], &b[..]);
        assert_ne!(x.as_ptr(), y.as_ptr());
        let e1 = decode(Kind::Decision as u16, SCHEMA, x).expect_err("damaged");
        let e2 = decode(Kind::Decision as u16, SCHEMA, y).expect_err("damaged");
        assert_eq!(e1, e2);
        let msg = e1.to_string();
        assert!(!msg.contains("0x") && msg.contains('+'), "{msg}");
    }
}

#[cfg(test)]
mod in_place_tests {
    use super::*;
    use fillcast_engine::event::OrderType;

    /// The fan-out's pair records are archived in place (`write_into`, by the
    /// journal stage); they must be the bytes the encoder makes of the same
    /// record, whose layout the golden journal pins, and of the length the
    /// stage reserves.
    #[test]
    fn a_pair_archived_in_place_is_the_encoders_bytes() {
        let o = FollowerOrder {
            id: 0xdead_beef,
            sub: SubIdx(7),
            follower: FollowerIdx(3),
            symbol: SymbolIdx(2),
            side: Side::Sell,
            qty: Lots(42),
            order_type: OrderType::LimitIoc,
            limit: Ticks(99_000),
            reduce_only: true,
            leader_event_key: 0xfeed,
            ts: Nanos(123),
            ..FollowerOrder::default()
        };
        let d = Decision {
            event_key: 0xfeed,
            sub: SubIdx(7),
            symbol: SymbolIdx(2),
            target: Lots(-42),
            delta: Lots(-42),
            sent: Lots(-42),
            status: DecisionStatus::Sent,
            revision: 5,
            ..Decision::default()
        };
        // The archive in place, into a buffer the size of the archived struct
        // (what the stage reserves in the mapping).
        fn in_place<T>(v: &T) -> Vec<u8>
        where
            T: Archive
                + for<'a, 'b> Serialize<
                    rkyv::api::low::LowSerializer<
                        rkyv::ser::writer::Buffer<'a>,
                        rkyv::ser::allocator::SubAllocator<'b>,
                        RkyvError,
                    >,
                >,
        {
            let mut b = vec![0xAA; std::mem::size_of::<T::Archived>()];
            write_into(v, &mut b).unwrap();
            b
        }
        let pair = pair_rec(&o, &d).unwrap();
        let mut enc = Encoder::default();
        assert_eq!(in_place(&pair), enc.put(&pair).unwrap());
        // The decision alone and a venue report, which the stage also writes
        // in place.
        let r = ExecReport {
            order_id: 0xdead_beef,
            kind: ExecKind::Fill,
            qty: Lots(40),
            price: Ticks(98_000),
            trade_id: 77,
            recv_ts: Nanos(5),
            ..ExecReport::default()
        };
        for (e, got) in [
            (JournalEntry::Decision(d), in_place(&decision_rec(&d))),
            (JournalEntry::Exec(r), in_place(&exec_rec(&r))),
        ] {
            let (_, _, want) = enc.entry(&e).unwrap().unwrap();
            assert_eq!(got, want, "{e:?}");
        }
        // A buffer of another size is an error, not a short or torn record.
        let mut short = vec![0u8; std::mem::size_of::<ArchivedOrderDecisionRec>() - 8];
        assert!(write_into(&pair, &mut short).is_err());
    }

    fn row_pair() -> (FollowerOrder, Decision) {
        let o = FollowerOrder {
            id: 0x0102_0304_0506_0708,
            sub: SubIdx(0x0a0b_0c0d),
            follower: FollowerIdx(0x1112_1314),
            symbol: SymbolIdx(0x2122),
            side: Side::Sell,
            qty: Lots(3),
            order_type: OrderType::Market,
            limit: Ticks(-2),
            reduce_only: true,
            leader_event_key: 0x3132_3334_3536_3738,
            ts: Nanos(0x4142_4344_4546_4748),
            ..FollowerOrder::default()
        };
        let d = Decision {
            event_key: o.leader_event_key,
            sub: o.sub,
            symbol: o.symbol,
            target: Lots(-7),
            delta: Lots(-4),
            sent: Lots(-3),
            status: DecisionStatus::Reduced,
            reason: Reason::MaxLeverage,
            revision: 0x5152_5354_5556_5758,
            resync: SyncReason::None,
        };
        (o, d)
    }

    /// A row's bytes are frozen like the golden journal's records (which are
    /// of segment format 1, from before rows): a moved field or a renumbered
    /// code fails here instead of changing what journals say.
    #[test]
    fn a_rows_bytes_are_frozen_and_read_back_as_its_pair() {
        let (o, d) = row_pair();
        assert!(row_fits(&o, &d, o.ts.0));
        let mut row = [0xffu8; crate::segment::PAIR_ROW_BYTES];
        write_row(&o, &d, &mut row);
        let hex: String = row.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0807060504030201383736353433323158575655545352514847464544434241\
             f9fffffffffffffffcfffffffffffffffdfffffffffffffffeffffffffffffff\
             0d0c0b0a141312112221010101080000"
                .replace(' ', "")
        );
        assert_eq!(
            decode(Kind::PairRows as u16, SCHEMA, &row),
            Ok(Entry::OrderDecision(o, d))
        );
    }

    /// Rows that no writer makes are refused with what is wrong, not read as
    /// something else and not panicked on: every byte of a good row changed
    /// in turn, and wrong sizes.
    #[test]
    fn a_damaged_row_is_refused_or_reads_as_a_well_formed_pair() {
        let (o, d) = row_pair();
        let mut good = [0u8; crate::segment::PAIR_ROW_BYTES];
        write_row(&o, &d, &mut good);
        for len in [0, 1, 79, 81, 160] {
            let junk = vec![0u8; len];
            assert!(matches!(
                decode(Kind::PairRows as u16, SCHEMA, &junk),
                Err(RecordError::Payload { .. })
            ));
        }
        let refuse = |at: usize, v: u8| {
            let mut row = good;
            row[at] = v;
            decode(Kind::PairRows as u16, SCHEMA, &row)
        };
        assert!(
            matches!(refuse(78, 1), Err(RecordError::Payload { .. })),
            "padding"
        );
        assert!(matches!(
            refuse(75, 2),
            Err(RecordError::BadCode {
                field: "reduce_only",
                ..
            })
        ));
        assert!(matches!(
            refuse(74, 0xee),
            Err(RecordError::BadCode {
                field: "order_type",
                ..
            })
        ));
        assert!(matches!(
            refuse(76, 0xee),
            Err(RecordError::BadCode {
                field: "status",
                ..
            })
        ));
        assert!(matches!(
            refuse(77, 0xee),
            Err(RecordError::BadCode {
                field: "reason",
                ..
            })
        ));
        let mut empty = good;
        empty[48..56].fill(0);
        assert!(
            decode(Kind::PairRows as u16, SCHEMA, &empty).is_err(),
            "no order"
        );
        for at in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut row = good;
                row[at] = v;
                if let Ok(Entry::OrderDecision(o, d)) = decode(Kind::PairRows as u16, SCHEMA, &row)
                {
                    assert!(
                        o.qty > Lots::ZERO && o.sub == d.sub && o.leader_event_key == d.event_key
                    );
                    assert_eq!(d.sent, o.qty.signed(o.side.sign()));
                }
            }
        }
    }

    /// An exec row's bytes are frozen as a pair row's are; every code of a
    /// report's kind and reject reason reads back as itself.
    #[test]
    fn an_exec_rows_bytes_are_frozen_and_every_code_reads_back() {
        let r = ExecReport {
            order_id: 0x0102_0304_0506_0708,
            kind: ExecKind::Fill,
            qty: Lots(3),
            price: Ticks(-2),
            trade_id: 0x1112_1314_1516_1718,
            fee: Money(-5),
            reject: RejectReason::Other,
            venue_ts: Nanos(0x2122_2324_2526_2728),
            recv_ts: Nanos(0x3132_3334_3536_3738),
        };
        let mut row = [0xffu8; crate::segment::EXEC_ROW_BYTES];
        write_exec_row(&r, &mut row);
        let hex: String = row.iter().map(|b| format!("{b:02x}")).collect();
        let expect = [
            "0807060504030201", // order id
            "0300000000000000", // qty 3
            "feffffffffffffff", // price -2
            "1817161514131211", // trade id
            "fbffffffffffffff", // fee -5
            "2827262524232221", // venue time
            "3837363534333231", // receive time
            &format!("{:02x}", ExecKind::Fill.code()),
            &format!("{:02x}", RejectReason::Other.code()),
            "000000000000",
        ]
        .concat();
        assert_eq!(hex, expect);
        assert_eq!(
            decode(Kind::ExecRows as u16, SCHEMA, &row),
            Ok(Entry::Exec(r))
        );
        for kind in ExecKind::ALL {
            for reject in RejectReason::ALL {
                let r = ExecReport {
                    kind: *kind,
                    reject: *reject,
                    ..r
                };
                write_exec_row(&r, &mut row);
                assert_eq!(
                    decode(Kind::ExecRows as u16, SCHEMA, &row),
                    Ok(Entry::Exec(r))
                );
            }
        }
    }

    /// Exec rows that no writer makes are refused with what is wrong.
    #[test]
    fn a_damaged_exec_row_is_refused() {
        let mut good = [0u8; crate::segment::EXEC_ROW_BYTES];
        write_exec_row(&ExecReport::default(), &mut good);
        for len in [0, 1, 63, 65, 128] {
            assert!(matches!(
                decode(Kind::ExecRows as u16, SCHEMA, &vec![0u8; len]),
                Err(RecordError::Payload { .. })
            ));
        }
        let refuse = |at: usize, v: u8| {
            let mut row = good;
            row[at] = v;
            decode(Kind::ExecRows as u16, SCHEMA, &row)
        };
        for pad in 58..64 {
            assert!(
                matches!(refuse(pad, 1), Err(RecordError::Payload { .. })),
                "byte {pad}"
            );
        }
        assert!(matches!(
            refuse(56, 0xee),
            Err(RecordError::BadCode { field: "kind", .. })
        ));
        assert!(matches!(
            refuse(57, 0xee),
            Err(RecordError::BadCode {
                field: "reject",
                ..
            })
        ));
    }
}
