//! The drop-copy source: leaders' executions from a FIX session, as leader fills.
//!
//! It connects as initiator, keeps the session (`conn`), and turns each
//! ExecutionReport the session delivers into a `LeaderFill` (`app::leader_fill`):
//! a trade is an event, an execution that is not a trade is counted and
//! ignored, and one that cannot be taken (an unknown account, a quantity off
//! the lot, a correction) is a rejected input with its reason and MsgSeqNum.
//!
//! **Where it resumes.** Its position is the session's next expected MsgSeqNum,
//! journaled with the events it produced (`FeedEvent::SourceCursor`): a restart
//! expects exactly the message after the last one the journal holds, and the
//! counterparty's resend brings the rest (PossDup repeats are the same events:
//! the core takes each ExecID once). Our own outgoing numbers are in the session
//! store (`store`), moved ahead after an unclean stop.
//!
//! **Losing the session** is said at once (a rejected input naming why, which
//! the run counts and logs), and the source reconnects with a doubling backoff.
//! The connect itself waits at most `conn::CONNECT_TIMEOUT` on the I/O thread.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::{LeaderIdx, Universe};
use fillcast_engine::port::{ResumeError, Source, SourceError, SourcePoll};
use fillcast_engine::units::Nanos;

use super::app::{leader_fill, Execution};
use super::conn::{Backoff, Connection, Peer};
use super::store::{resume, SeqStore, StoreError};

/// A drop-copy session's settings.
#[derive(Clone, Debug)]
pub struct DropCopyConfig {
    pub name: String,
    pub peer: Peer,
    /// Account (1) → leader id, beside each leader's own id.
    pub accounts: HashMap<String, String>,
    /// The session store's file.
    pub store: PathBuf,
    /// The last run did not end cleanly (the journal's marker): our outgoing
    /// numbers move ahead (`store::resume`).
    pub unclean: bool,
}

/// Counts of what the session brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCopyStats {
    pub fills: u64,
    /// ExecutionReports that are not trades, and other application messages.
    pub ignored: u64,
    pub refused: u64,
    pub connects: u64,
    pub disconnects: u64,
}

pub struct DropCopySource {
    cfg: DropCopyConfig,
    universe: Arc<Universe>,
    leaders: HashMap<String, LeaderIdx>,
    store: SeqStore,
    /// `(next_out, next_in)` the next connection starts from.
    seqs: (u64, u64),
    conn: Option<Connection>,
    ready: VecDeque<SourcePoll>,
    backoff: Backoff,
    started: bool,
    stats: DropCopyStats,
}

impl DropCopySource {
    /// Opens the session store (a damaged one is an error: the numbers are
    /// unknown); connects at the first `next`.
    pub fn open(
        cfg: DropCopyConfig,
        universe: Arc<Universe>,
    ) -> Result<DropCopySource, StoreError> {
        let (store, saved) = SeqStore::open(&cfg.store)?;
        let seqs = resume(saved, cfg.unclean);
        let leaders = leaders_of(&cfg.accounts, &universe);
        Ok(DropCopySource {
            cfg,
            universe,
            leaders,
            store,
            seqs,
            conn: None,
            ready: VecDeque::new(),
            backoff: Backoff::new(),
            started: false,
            stats: DropCopyStats::default(),
        })
    }

    pub fn stats(&self) -> DropCopyStats {
        self.stats
    }

    /// Whether the session is logged on.
    pub fn is_up(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.state() == super::session::State::Active)
    }

    fn reject(&mut self, line: u64, message: String) {
        self.ready.push_back(SourcePoll::Rejected(SourceError {
            origin: self.cfg.name.clone(),
            line,
            message,
        }));
    }

    fn connect(&mut self, now: Nanos) {
        match self.cfg.peer.dial(self.seqs, now) {
            Ok(c) => {
                self.stats.connects += 1;
                self.conn = Some(c);
            }
            Err(why) => self.down(now, why),
        }
    }

    /// The session is lost (or could not start): said once, retried later.
    fn down(&mut self, now: Nanos, why: String) {
        if let Some(c) = self.conn.take() {
            self.seqs = c.seqs();
            self.stats.disconnects += 1;
        }
        let wait = self.backoff.failed(now);
        self.reject(
            0,
            format!(
                "drop-copy session down: {why}; reconnecting in {} ms",
                wait / 1_000_000
            ),
        );
    }

    fn poll_session(&mut self, now: Nanos) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let (u, leaders, name) = (&self.universe, &self.leaders, &self.cfg.name);
        let (out, stats) = (&mut self.ready, &mut self.stats);
        let result = conn.poll(now, &mut |m| {
            let seq = m.u64(34).unwrap_or(0);
            if m.msg_type() != b"8" {
                stats.ignored += 1;
                return;
            }
            let taken = Execution::read(m).map_err(|e| e.to_string()).and_then(|e| {
                leader_fill(&e, u, |a| leaders.get(a).copied(), now).map_err(|e| e.to_string())
            });
            match taken {
                Ok(Some(f)) => {
                    stats.fills += 1;
                    out.push_back(SourcePoll::Event(FeedEvent::LeaderFill(f)));
                }
                Ok(None) => stats.ignored += 1,
                Err(why) => {
                    stats.refused += 1;
                    out.push_back(SourcePoll::Rejected(SourceError {
                        origin: name.clone(),
                        line: seq,
                        message: format!("ExecutionReport {seq}: {why}"),
                    }));
                }
            }
        });
        match result {
            Ok(()) => {
                self.seqs = conn.seqs();
                if conn.state() == super::session::State::Active {
                    self.backoff.succeeded();
                }
            }
            Err(e) => self.down(now, e.to_string()),
        }
        if let Err(e) = self.store.save_due(self.seqs, now.0) {
            let why = e.to_string();
            self.reject(0, why);
        }
    }
}

/// A clean end: our Logout (`Connection::close`). What the session would
/// resume from is the journal's position, not the store's.
impl Drop for DropCopySource {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            let seqs = conn.close(std::time::Duration::from_millis(500));
            let _ = self.store.save(seqs);
        }
    }
}

/// Account → leader, for the leaders in force: each leader's own id is an
/// account of it, and `accounts` adds (or redirects) others.
fn leaders_of(accounts: &HashMap<String, String>, u: &Universe) -> HashMap<String, LeaderIdx> {
    let mut m: HashMap<String, LeaderIdx> = u
        .leaders
        .iter()
        .filter_map(|l| Some((l.id.clone(), u.leader(&l.id)?)))
        .collect();
    for (a, l) in accounts {
        match u.leader(l) {
            Some(i) => m.insert(a.clone(), i),
            None => m.remove(a),
        };
    }
    m
}

impl Source for DropCopySource {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn next(&mut self, now: Nanos) -> SourcePoll {
        self.started = true;
        if let Some(p) = self.ready.pop_front() {
            return p;
        }
        if self.conn.is_none() && self.backoff.due(now) {
            self.connect(now);
        }
        self.poll_session(now);
        self.ready.pop_front().unwrap_or(SourcePoll::Idle)
    }

    /// The session's next expected MsgSeqNum: everything before it was returned.
    /// Only when nothing is waiting to be returned.
    fn position(&self) -> Option<u64> {
        self.ready.is_empty().then_some(self.seqs.1)
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.universe = Arc::clone(universe);
        self.leaders = leaders_of(&self.cfg.accounts, universe);
    }

    /// Expect MsgSeqNum `pos` next: the journal holds everything before it.
    fn resume(&mut self, pos: u64) -> Result<(), ResumeError> {
        if self.started {
            return Err(ResumeError::AlreadyStarted {
                origin: self.cfg.name.clone(),
                doing: "the session",
            });
        }
        self.seqs.1 = pos.max(1);
        Ok(())
    }
}
