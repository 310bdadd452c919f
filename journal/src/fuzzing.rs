//! The body of the `record_reader` fuzz target, callable from tests on stable too:
//! arbitrary bytes as a segment, scanned and decoded. Must never panic.

use crate::record::decode;
use crate::segment::{self, Step, SEGMENT_HEADER};

/// Returns how many records decoded, so the optimiser cannot drop the work.
pub fn fuzz_one(data: &[u8]) -> usize {
    let first_seq = segment::parse_header(data)
        .map(|h| h.first_seq)
        .unwrap_or(1);
    let mut off = SEGMENT_HEADER;
    let mut seq = first_seq;
    let mut decoded = 0;
    // Each step advances at least one record header, so this is bounded by the size.
    while off < data.len() {
        match segment::step(data, off, seq) {
            Step::Record { rec, next } => {
                if decode(rec.kind, rec.schema, rec.payload).is_ok() {
                    decoded += 1;
                }
                off = next;
                seq = seq.wrapping_add(1);
            }
            _ => break,
        }
    }
    // Payload decoding on its own, for inputs that are not segments at all.
    for kind in 1..=9u16 {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(data);
        if decode(kind, crate::record::SCHEMA, &aligned).is_ok() {
            decoded += 1;
        }
    }
    decoded
}
