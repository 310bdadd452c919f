#![no_main]
//! See `fillcast_gateways::fuzzing::binance_stream` and `binance_mark`: the
//! bytes as a user-data or mark-price message and as a `userTrades` response,
//! then as a message of the `binance` source's mark-price connection.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fillcast_gateways::fuzzing::binance_stream(data);
    let _ = fillcast_gateways::fuzzing::binance_mark(data);
});
