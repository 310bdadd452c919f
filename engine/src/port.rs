//! The trait boundary between the engine and the world: a `Gateway` takes order
//! batches and yields execution reports; a `Source` yields leader fills, mark prices
//! and account updates. Concrete venues and sources live in the `gateways` crate;
//! the engine knows none of them.

use crate::event::{ExecReport, FeedEvent, FollowerOrder};
use crate::model::{FollowerIdx, Side, SymbolIdx};
use crate::units::{Lots, Nanos};
use std::fmt;

/// A venue connection. Called from the I/O thread only, never from the core stage.
pub trait Gateway: Send {
    fn name(&self) -> &str;

    /// Whether the gateway can take `orders` more orders now (its own queues and
    /// rate limits). The I/O thread leaves orders in the egress ring until it can:
    /// backpressure, never loss.
    fn can_accept(&self, orders: usize) -> bool;

    /// Hand a batch of orders to the venue. Reports that are ready at once go to `out`.
    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport));

    /// Advance time: deliver reports that are due. Returns how many were delivered.
    fn poll(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize;

    /// Reports still owed for orders already submitted (0 when idle).
    fn in_flight(&self) -> usize;

    /// Whether the gateway has a working session with its venue now. A gateway that
    /// is down still takes orders and rejects each at once with
    /// `RejectReason::VenueDown` (they never left); it reconnects on its own in
    /// `poll`, and after reconnecting it settles every order it had in flight (their
    /// fills and ends, or `UnknownOrder`) before it says it is up again. The I/O
    /// thread tells the core stage each change, as a journaled input.
    fn is_up(&self) -> bool {
        true
    }

    /// The decision model in force is `universe` (a reload's, a restart's):
    /// orders from now on may name the symbols it added (`universe.symbols[i]`
    /// is the spec of `SymbolIdx(i)`; a symbol it removed keeps its place, and
    /// its positions may still be closing). The I/O thread calls it before it
    /// hands the gateway the first order of a run and the first order made under
    /// each new revision.
    fn universe_changed(&mut self, universe: &std::sync::Arc<crate::model::Universe>) {
        let _ = universe;
    }

    /// Why the gateway is down (the last connection error), for logs and the summary.
    fn down_reason(&self) -> Option<String> {
        None
    }

    /// Lines for the end of a run's summary: what the gateway saw that the
    /// engine's reports do not carry (the venue's own refusal codes and their
    /// messages, resends, reconnects). None by default.
    fn summary_lines(&self) -> Vec<String> {
        Vec::new()
    }

    /// After a restart, ask the venue about orders that were sent and never
    /// answered. For each order, `out` gets the fills the venue made (with their
    /// trade ids) and the order's terminal report if it ended; an order the venue
    /// never received comes back `Rejected` with `RejectReason::UnknownOrder`.
    fn recover(
        &mut self,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        let _ = (orders, out);
        Err(VenueError::Unsupported {
            venue: self.name().to_string(),
            what: "be asked about past orders",
        })
    }

    /// Blocking, for the end of a run: the venue's own count of what it received
    /// and its books, to reconcile with the engine's. `None` when this venue
    /// cannot be asked (a real venue's statement is its own report).
    fn books(&mut self) -> Option<Result<VenueBooks, VenueError>> {
        None
    }

    /// Blocking, for restarts only. The venue's answers (as `recover` gives them,
    /// each starting with `ExecKind::Restated`) about every order it holds from this
    /// engine whose own time (`FollowerOrder::ts`) is `since` or later: after the
    /// journal lost records, orders the engine cannot name may be at the venue.
    fn orders_since(
        &mut self,
        since: Nanos,
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        let _ = (since, out);
        Err(VenueError::Unsupported {
            venue: self.name().to_string(),
            what: "list the orders it holds",
        })
    }
}

/// An order a venue is asked about (`Gateway::recover`): its id, what a venue's
/// status request names besides (FIX 4.4's OrderStatusRequest carries the
/// order's Side and Symbol, and the follower's Account), and how much of it the
/// engine knows filled (a venue's answer of more, without the fills, is a loss
/// the gateway must say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AskedOrder {
    pub id: u64,
    pub follower: FollowerIdx,
    pub symbol: SymbolIdx,
    pub side: Side,
    pub filled: Lots,
}

impl From<&FollowerOrder> for AskedOrder {
    fn from(o: &FollowerOrder) -> AskedOrder {
        AskedOrder {
            id: o.id,
            follower: o.follower,
            symbol: o.symbol,
            side: o.side,
            filled: Lots::ZERO,
        }
    }
}

/// Why a venue gave no answer to a question (`Gateway::recover`, `orders_since`,
/// `books`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    /// This venue, or its gateway, offers no such question: the caller decides
    /// whether it can go on without the answer.
    #[error("venue `{venue}` cannot {what}")]
    Unsupported { venue: String, what: &'static str },
    /// It was asked and did not answer (a timeout, a lost link, a malformed
    /// reply): nothing may be taken as settled.
    #[error("venue `{venue}`: {what}: {cause}")]
    Failed {
        venue: String,
        what: String,
        cause: String,
    },
}

/// What a venue says it received and holds (`Gateway::books`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VenueBooks {
    /// Orders received, duplicates and refused ones included; `None` when the
    /// venue does not say (a real exchange: Binance states positions only).
    pub orders_received: Option<u64>,
    /// Orders whose client order id the venue had seen before: must stay 0;
    /// `None` when the venue does not say.
    pub duplicate_client_ids: Option<u64>,
    /// Every non-zero follower position.
    pub positions: Vec<(FollowerIdx, SymbolIdx, Lots)>,
}

/// A rejected input line or message, counted and reported; the source keeps going.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    /// Where: a file path, a session name.
    pub origin: String,
    /// 1-based line (or message sequence number); 0 when not applicable.
    pub line: u64,
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.origin, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.origin, self.message)
        }
    }
}

/// One step of a source.
#[derive(Clone, Debug, PartialEq)]
pub enum SourcePoll {
    Event(FeedEvent),
    /// A bad input was skipped; the source goes on.
    Rejected(SourceError),
    /// Nothing right now; poll again later.
    Idle,
    /// The source has ended (end of file, generator done).
    Finished,
}

/// A leader-fill feed. Called from the I/O thread only.
pub trait Source: Send {
    fn name(&self) -> &str;
    fn next(&mut self, now: Nanos) -> SourcePoll;

    /// Where the source stands: everything it returned so far (events and rejected
    /// inputs) lies before it. The I/O thread journals it behind the events
    /// (`FeedEvent::SourceCursor`); `None`: the source cannot say, and a restart
    /// reads it from the start again (duplicate detection drops what was taken).
    fn position(&self) -> Option<u64> {
        None
    }

    /// Whether the run waits for this source to finish. A source of operator
    /// commands does not: it is polled for as long as the run lasts.
    fn holds_run_open(&self) -> bool {
        true
    }

    /// A reload's new revision is in force: resolve leader and symbol names
    /// against `universe` from the next `next` on (a leader it adds is known, one
    /// it removes is not). The I/O thread calls it once the core has taken the
    /// revision, so what the source returns after it is decided under it.
    fn universe_changed(&mut self, universe: &std::sync::Arc<crate::model::Universe>) {
        let _ = universe;
    }

    /// Go on from `pos`, a position this source gave before (journaled by an
    /// earlier run), before the first `next`. An error says why it cannot (the
    /// file is shorter than the position, say): the engine must not start then.
    fn resume(&mut self, pos: u64) -> Result<(), ResumeError> {
        let _ = pos;
        Err(ResumeError::Unsupported {
            source_name: self.name().to_string(),
        })
    }
}

/// Why a source cannot go on from a journaled position (`Source::resume`): the
/// engine must not start then, and the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The source keeps no positions.
    #[error("source `{source_name}` cannot resume from a journaled position")]
    Unsupported { source_name: String },
    /// `resume` comes before the first `next`, or not at all.
    #[error("{origin}: resume after {doing} began")]
    AlreadyStarted { origin: String, doing: &'static str },
    /// The source ends before the position: its input was replaced, cut or
    /// configured smaller. `holds` says what it has ("x holds 10 bytes").
    #[error(
        "{holds}, fewer than the {pos} the journal says were {taken}: {likely} Restore it, or start a new journal"
    )]
    Short {
        holds: String,
        pos: u64,
        taken: &'static str,
        likely: &'static str,
    },
    /// The position falls inside a line: the input changed under the journal.
    #[error(
        "{origin}: the journaled position {pos} is not where a line starts (the line there ends at byte {line_end}): was the file changed? Restore it, or start a new journal"
    )]
    Misaligned {
        origin: String,
        pos: u64,
        line_end: u64,
    },
    #[error("{origin}: reading up to byte {pos}: {source}")]
    Read {
        origin: String,
        pos: u64,
        source: std::io::Error,
    },
}

/// Why a journal sink could not take or keep entries: the sink's own error, kept
/// whole (its message names the file and what failed). It stops the engine from
/// sending orders.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SinkError(pub Box<dyn std::error::Error + Send + Sync>);

impl SinkError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> SinkError {
        SinkError(Box::new(e))
    }
}

/// What the core stage hands the journal stage, in the order it happened: each
/// input the core took (`Feed`, `Exec`) followed by what it decided because of it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum JournalEntry {
    #[default]
    Empty,
    Feed(FeedEvent),
    Exec(ExecReport),
    Decision(crate::outputs::Decision),
    Order(FollowerOrder),
    Notice(crate::outputs::Notice),
}

/// The journal stage's storage. Called from the I/O thread only.
pub trait JournalSink: Send {
    /// Append entries, in order. An error stops the engine from sending orders.
    fn append(&mut self, entries: &[JournalEntry]) -> Result<(), SinkError>;

    /// Make everything appended so far as durable as the configured setting promises
    /// before orders leave. Called before orders are handed to a gateway, when
    /// anything was appended since the last call.
    fn before_send(&mut self) -> Result<(), SinkError>;

    /// Called by the I/O thread when it has nothing else to do: a sink that
    /// flushes on a timer keeps its promise for a quiet tail here.
    fn tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Where the journal stands: the last sequence number written, and the bytes
    /// of records (headers included) this sink appended since it opened.
    fn position(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Record that the core now decides under revision `revision` of the decision
    /// model, whose TOML is `model_toml`, after everything appended so far and
    /// before anything appended next (`FeedEvent::Revision`).
    fn revision(&mut self, revision: u64, model_toml: &str, ts: Nanos) -> Result<(), SinkError> {
        let _ = (model_toml, ts);
        Err(SinkError(
            format!("this journal cannot record a new revision ({revision:016x})").into(),
        ))
    }
}

/// Any source, paced to at most `per_sec` events per second (by the `now` it is
/// polled with): replaying a file at a live-like rate.
pub struct Paced<S> {
    inner: S,
    gap_ns: u64,
    next_due: u64,
}

impl<S: Source> Paced<S> {
    pub fn new(inner: S, per_sec: u64) -> Paced<S> {
        Paced {
            inner,
            gap_ns: 1_000_000_000 / per_sec.max(1),
            next_due: 0,
        }
    }
}

impl<S: Source> Source for Paced<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn next(&mut self, now: Nanos) -> SourcePoll {
        if now.0 < self.next_due {
            return SourcePoll::Idle;
        }
        let step = self.inner.next(now);
        if matches!(step, SourcePoll::Event(_)) {
            // Catch up at most one gap after a stall, rather than bursting.
            self.next_due = self.next_due.max(now.0.saturating_sub(self.gap_ns)) + self.gap_ns;
        }
        step
    }

    fn position(&self) -> Option<u64> {
        self.inner.position()
    }

    fn resume(&mut self, pos: u64) -> Result<(), ResumeError> {
        self.inner.resume(pos)
    }

    fn universe_changed(&mut self, universe: &std::sync::Arc<crate::model::Universe>) {
        self.inner.universe_changed(universe)
    }
}
