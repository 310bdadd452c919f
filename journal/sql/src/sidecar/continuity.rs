//! The sidecar's continuity check: a database follows one history of its journal.
//!
//! Resuming only checks that the journal still holds record `next_seq − 1`; a
//! journal cut and rewritten after it was applied (a recovery that dropped damaged
//! records, a restored backup, another journal of the same length in the same
//! place) would pass, and the tables would silently differ from a fresh replay. So
//! the sidecar keeps a running hash over every record it applied (its sequence,
//! kind, schema, timestamp and payload), the **chain**, committed with the rows
//! in `sidecar_state.chain`, and the 32-bit hash of each record in `sidecar_chain`
//! (4 bytes a record). On resume it hashes the journal again up to `next_seq − 1`
//! and refuses a different chain, naming the first record that differs.
//!
//! The hash guards against accident, not against someone forging a journal: it is
//! a 64-bit non-cryptographic hash with a fixed, documented construction (it is
//! stored, so it must never change; `the_hash_is_stable` pins it).
//!
//! A database from before the chain (`chain` NULL) cannot be checked: its first
//! run records the chain of the journal as it is then, and says so.

use crate::sidecar::rows::Id;
use crate::sidecar::schema::parse_hex_id;
use crate::sidecar::store::{Saved, Store};
use crate::sidecar::SidecarError;
use fillcast_engine::ids::mix64;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::segment::RecordRef;
use std::path::Path;

/// The chain of an empty history.
pub(crate) const CHAIN_START: u64 = 0x6669_6c6c_6361_7374;

/// Records per `sidecar_chain` row when a database adopts the chain (a batch's
/// row holds its own records).
const ADOPT_ROW_RECORDS: usize = 1 << 20;

/// What the sidecar could say about the history a resumed database was built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Continuity {
    /// A new database: nothing to check.
    #[default]
    Fresh,
    /// The journal's records up to `through` are the ones the database applied.
    Verified { through: u64 },
    /// The database predates the check: the journal's records up to `through`
    /// were taken as they are now, unchecked.
    Adopted { through: u64 },
}

#[inline]
fn step(h: u64, word: u64) -> u64 {
    mix64(h.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ word)
}

/// The hash of one record: all the sidecar reads from it.
pub(crate) fn record_hash(rec: &RecordRef<'_>) -> u64 {
    let mut h = step(CHAIN_START, rec.seq);
    h = step(
        h,
        (u64::from(rec.kind) << 48) | (u64::from(rec.schema) << 32) | rec.payload.len() as u64,
    );
    h = step(h, rec.ts);
    let mut words = rec.payload.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = step(h, u64::from_le_bytes(b));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = step(h, u64::from_le_bytes(b));
    }
    h
}

/// The chain after one more record.
pub(crate) fn chain(prev: u64, record_hash: u64) -> u64 {
    step(prev ^ 0x5bd1_e995, record_hash)
}

/// The 4 bytes `sidecar_chain` keeps for a record.
pub(crate) fn short(record_hash: u64) -> [u8; 4] {
    (record_hash as u32).to_le_bytes()
}

/// Hashes records `1..next_seq` of the journal, calling `each(seq, hash)`;
/// returns their chain. A journal that no longer holds them all is an error.
fn rehash(
    reader: &JournalReader,
    dir: &Path,
    db: &str,
    next_seq: u64,
    mut each: impl FnMut(u64, u64),
) -> Result<u64, SidecarError> {
    let mut c = CHAIN_START;
    let mut expected = 1;
    for rec in reader.iter_from(1) {
        if expected >= next_seq {
            break;
        }
        let rec = rec.map_err(|source| SidecarError::JournalAt {
            seq: expected,
            source,
        })?;
        if rec.seq != expected {
            return Err(SidecarError::Gap {
                dir: dir.into(),
                expected,
                found: rec.seq,
            });
        }
        let h = record_hash(&rec);
        each(rec.seq, h);
        c = chain(c, h);
        expected += 1;
    }
    if expected < next_seq {
        return Err(SidecarError::JournalBehind {
            db: db.to_string(),
            dir: dir.into(),
            seq: next_seq - 1,
        });
    }
    Ok(c)
}

/// Checks, on resume, that the journal's records before `saved.next_seq` are the
/// ones the database applied (or adopts them for a database from before the
/// check). Returns the chain to go on from.
pub(crate) fn resume(
    reader: &JournalReader,
    dir: &Path,
    store: &mut dyn Store,
    saved: &Saved,
) -> Result<(u64, Continuity), SidecarError> {
    let db = store.name().to_string();
    let next_seq = saved.next_seq;
    let through = next_seq - 1;
    let Some(text) = &saved.chain else {
        let mut hashes = Vec::with_capacity(4 * usize::try_from(through).unwrap_or(0));
        let c = rehash(reader, dir, &db, next_seq, |_, h| {
            hashes.extend_from_slice(&short(h))
        })?;
        let rows: Vec<(u64, &[u8])> = hashes
            .chunks(4 * ADOPT_ROW_RECORDS)
            .enumerate()
            .map(|(i, part)| (1 + (i * ADOPT_ROW_RECORDS) as u64, part))
            .collect();
        store.adopt_chain(next_seq, Id::hex(c).as_str(), &rows)?;
        return Ok((c, Continuity::Adopted { through }));
    };
    let stored = parse_hex_id(text).ok_or_else(|| SidecarError::State {
        db: db.clone(),
        message: format!("sidecar_state.chain is `{text}`, not 16 hex digits"),
    })?;
    let c = rehash(reader, dir, &db, next_seq, |_, _| {})?;
    if c == stored {
        return Ok((c, Continuity::Verified { through }));
    }
    // Which record: compare each with what `sidecar_chain` kept of it.
    let rows = store.chain_rows()?;
    let mut first = None;
    let mut row = 0;
    rehash(reader, dir, &db, next_seq, |seq, h| {
        while rows.get(row).is_some_and(|r| r.last_seq < seq) {
            row += 1;
        }
        let Some(r) = rows.get(row).filter(|r| r.first_seq <= seq) else {
            return;
        };
        let at = usize::try_from(4 * (seq - r.first_seq)).unwrap_or(usize::MAX);
        let kept = r.hashes.get(at..at.saturating_add(4));
        if first.is_none() && kept.is_some_and(|k| k != short(h)) {
            first = Some(seq);
        }
    })?;
    Err(SidecarError::HistoryChanged {
        db,
        dir: dir.into(),
        seq: first.unwrap_or(through),
        located: first.is_some(),
    })
}

/// A `sidecar_chain` row as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainRow {
    pub first_seq: u64,
    pub last_seq: u64,
    pub hashes: Vec<u8>,
}

/// How `HistoryChanged` names the record.
pub(crate) fn where_changed(seq: u64, located: bool) -> String {
    if located {
        format!("its record {seq} is not the record {seq} that was applied")
    } else {
        format!("a record at or before {seq} is not the one that was applied")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, payload: &[u8]) -> RecordRef<'_> {
        RecordRef {
            seq,
            kind: 3,
            schema: 1,
            ts: 42,
            payload,
        }
    }

    #[test]
    fn the_hash_is_stable() {
        // Stored in databases: a change here makes every existing one refuse.
        let h = record_hash(&rec(7, b"fillcast record"));
        assert_eq!(h, 0x3cd4_5b9b_b61e_77fc_u64, "{h:#018x}");
        assert_eq!(
            chain(CHAIN_START, h),
            0x6545_7bab_eae8_4267,
            "{:#018x}",
            chain(CHAIN_START, h)
        );
    }

    #[test]
    fn every_field_of_a_record_changes_its_hash() {
        let base = record_hash(&rec(7, b"abcdefghij"));
        let mut other = vec![
            record_hash(&rec(8, b"abcdefghij")),
            record_hash(&rec(7, b"abcdefghik")),
            record_hash(&rec(7, b"abcdefghij\0")),
            record_hash(&rec(7, b"")),
        ];
        for (i, r) in [
            RecordRef {
                kind: 4,
                ..rec(7, b"abcdefghij")
            },
            RecordRef {
                schema: 2,
                ..rec(7, b"abcdefghij")
            },
            RecordRef {
                ts: 43,
                ..rec(7, b"abcdefghij")
            },
        ]
        .iter()
        .enumerate()
        {
            other.push(record_hash(r));
            assert_ne!(record_hash(r), base, "field {i}");
        }
        assert!(other.iter().all(|h| *h != base), "{other:x?}");
        // The chain depends on order.
        let (a, b) = (record_hash(&rec(1, b"a")), record_hash(&rec(2, b"b")));
        assert_ne!(
            chain(chain(CHAIN_START, a), b),
            chain(chain(CHAIN_START, b), a)
        );
    }
}
