#![no_main]
//! Arbitrary bytes as a journal segment: the scan and the typed decoding must
//! return errors, never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fillcast_journal::fuzzing::fuzz_one(data);
});
