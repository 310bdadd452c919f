#![no_main]
//! See `fillcast_gateways::fuzzing::binance_replies`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fillcast_gateways::fuzzing::binance_replies(data);
});
