#![no_main]
//! See `fillcast_gateways::fuzzing::binance_stream`: the bytes as a user-data
//! or mark-price message and as a `userTrades` response. Then the same bytes
//! as a message of the `binance` source's mark-price connection
//! (`stream::Parser::mark`, issue 15): a mark on a whole, positive tick of a
//! known symbol exactly when the message is a `markPriceUpdate` that converts,
//! an error or nothing otherwise, never a panic. `gateways/tests/fuzz_bodies.rs`
//! runs the same checks on stable (`hostile_mark_price_messages_never_panic`).
use fillcast_engine::config::load_str;
use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_gateways::binance::stream::{Event, Parser, SymbolTable};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

const UNIVERSE: &str = r#"
[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[symbols]]
name = "ETHUSDT"
lot_size = "0.001"
tick_size = "0.01"
venue = "sim"

[[leaders]]
id = "L1"
equity = "100000"
"#;

fn symbols() -> &'static SymbolTable {
    static S: OnceLock<SymbolTable> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = load_str(UNIVERSE, Path::new("fuzz.toml")).expect("fuzz universe");
        SymbolTable::from_universe(&Universe::from_config(&cfg).expect("fuzz universe"))
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = fillcast_gateways::fuzzing::binance_stream(data);
    let symbols = symbols();
    let mark = Parser::new().mark(data, symbols);
    // The same as the message parsed, then converted, apart.
    let mut apart = Parser::new();
    let converted = match apart.message(data) {
        Ok(Event::MarkPrice(m)) => Some(m.to_feed_rounded(symbols).is_ok()),
        _ => None,
    };
    match mark {
        Ok(Some(FeedEvent::MarkPrice { price, .. })) => {
            assert!(price.0 > 0);
            assert_eq!(converted, Some(true));
        }
        Ok(Some(other)) => panic!("a mark-price message gave {other:?}"),
        Ok(None) => assert_eq!(converted, None),
        Err(e) => {
            assert_ne!(converted, Some(true));
            let _ = e.to_string();
        }
    }
});
