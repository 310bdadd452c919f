//! A FIX session's sequence numbers across restarts: one small file per session
//! (beside the journal), replaced whole on each save (a write to a temporary
//! file and a rename), so it holds one complete pair or the one before.
//!
//! A save is three syscalls and a rename (no `fsync`): on the I/O thread, per
//! message, it was the largest cost of a FIX round trip (`fillcast-bench
//! fixe2e`, 2026-12-07: 0.33 ms at p50). So the sessions save when due
//! (`save_due`): once `next_out` is `SAVE_EVERY` past the saved one, or a second
//! after a change, and whole at a clean end. What a crash can do, and why it is
//! safe:
//! - the saved `next_out` is behind what left: the counterparty would take our
//!   next message as a repeat and log us out. So after an unclean stop (the
//!   journal's marker) `resume` moves `next_out` ahead by `UNCLEAN_MARGIN`: the
//!   counterparty then sees a gap, asks for it, and the session fills it with one
//!   gap fill. A gap is harmless; a number too low ends the session.
//! - the saved `next_in` is behind what we took: the counterparty's Logon shows a
//!   gap, we ask for it, and what comes again (PossDup) is what the engine has
//!   already taken: fills are counted once by their ExecID.
//!
//! A file that is there and does not read is an error that names it: the numbers
//! are unknown, and guessing them could end the session or repeat it. The
//! operator restores the file, or writes the numbers agreed with the
//! counterparty (`StoreError::Damaged` says how).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How far `next_out` moves ahead after an unclean stop: more than can be sent
/// between two saves (`SAVE_EVERY`, and one turn's writes: a few hundred).
pub const UNCLEAN_MARGIN: u64 = 10_000;

/// `save_due` saves at the latest when `next_out` moved this far.
pub const SAVE_EVERY: u64 = 1_000;

/// ... or this long after a change, ns.
const SAVE_AFTER_NS: u64 = 1_000_000_000;

const MAGIC: &str = "fillcast-fix-seqs v1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("FIX session store {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "FIX session store {} does not read ({why}): the session's sequence numbers are unknown. \
         Restore the file; or agree both numbers with the counterparty and write them into it as \
         `fillcast-fix-seqs v1 next_out=N next_in=M` (N: the next MsgSeqNum we send, M: the next \
         we expect); or delete it and have the counterparty reset the session (both sides start \
         again at 1)",
        path.display()
    )]
    Damaged { path: PathBuf, why: &'static str },
}

/// The store of one session.
#[derive(Debug)]
pub struct SeqStore {
    path: PathBuf,
    tmp: PathBuf,
    /// Saved last: `save` skips a pair it holds already.
    saved: Option<(u64, u64)>,
    /// When it was saved last (`save_due`'s clock), ns.
    saved_at_ns: u64,
}

impl SeqStore {
    /// Opens the store at `path`: the pair it holds, or `None` for a new session.
    pub fn open(path: impl AsRef<Path>) -> Result<(SeqStore, Option<(u64, u64)>), StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let saved = match std::fs::read(&path) {
            Ok(bytes) => Some(parse(&bytes).map_err(|why| StoreError::Damaged {
                path: path.clone(),
                why,
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        Ok((
            SeqStore {
                path,
                tmp: tmp.into(),
                saved,
                saved_at_ns: 0,
            },
            saved,
        ))
    }

    /// `save` when due at `now_ns`: `next_out` `SAVE_EVERY` past the saved one
    /// (a crash leaves it less than `UNCLEAN_MARGIN` behind), or a change a
    /// second old. A session that ends cleanly saves whole (`save`).
    pub fn save_due(&mut self, seqs: (u64, u64), now_ns: u64) -> Result<(), StoreError> {
        let due = match self.saved {
            None => true,
            Some(saved) if saved == seqs => false,
            Some((out, _)) => {
                seqs.0.saturating_sub(out) >= SAVE_EVERY
                    || now_ns.saturating_sub(self.saved_at_ns) >= SAVE_AFTER_NS
            }
        };
        if due {
            self.save(seqs)?;
            self.saved_at_ns = now_ns;
        }
        Ok(())
    }

    /// Keeps `seqs` (`(next_out, next_in)`), replacing the file whole.
    pub fn save(&mut self, seqs: (u64, u64)) -> Result<(), StoreError> {
        if self.saved == Some(seqs) {
            return Ok(());
        }
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let text = format!("{MAGIC} next_out={} next_in={}\n", seqs.0, seqs.1);
        let mut f = std::fs::File::create(&self.tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path).map_err(io)?;
        self.saved = Some(seqs);
        Ok(())
    }
}

/// Where a session resumes: the saved pair (a new session starts at 1), with
/// `next_out` moved ahead by `UNCLEAN_MARGIN` after an unclean stop.
pub fn resume(saved: Option<(u64, u64)>, unclean: bool) -> (u64, u64) {
    match saved {
        None => (1, 1),
        Some((out, inn)) if unclean => (out.saturating_add(UNCLEAN_MARGIN), inn),
        Some(pair) => pair,
    }
}

fn parse(bytes: &[u8]) -> Result<(u64, u64), &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not text")?;
    let line = text.strip_suffix('\n').ok_or("cut short")?;
    let rest = line.strip_prefix(MAGIC).ok_or("not a session store")?;
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let mut number = |key: &str| -> Result<u64, &'static str> {
        let w = words.next().ok_or("a number is missing")?;
        let v = w.strip_prefix(key).ok_or("a number is missing")?;
        match v.parse::<u64>() {
            Ok(n) if n >= 1 && !v.starts_with('+') => Ok(n),
            _ => Err("a number does not read"),
        }
    };
    let pair = (number("next_out=")?, number("next_in=")?);
    if words.next().is_some() {
        return Err("more than the two numbers");
    }
    Ok(pair)
}
