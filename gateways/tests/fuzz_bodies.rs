//! The fuzz targets' bodies (`gateways/fuzz`) on stable, over random and
//! hand-picked hostile inputs: they must never panic.

use fillcast_gateways::fuzzing;
use proptest::prelude::*;

const GOOD: &str = r#"{"leader":"L1","event_id":"e1","symbol":"BTCUSDT","side":"buy","qty":"0.5","price":"65000.1","ts":1732060800000000000}"#;

/// A funding line (issue 16).
const FUNDING: &str = r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"65000.1","ts":1732060800000000000}"#;

#[test]
fn hostile_files_never_panic() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n\n\n".to_vec(),
        format!("{GOOD}\n{GOOD}\n{GOOD}").into_bytes(),
        format!("{GOOD}\n{{\"leader\":").into_bytes(),
        deep.into_bytes(),
        GOOD.replace("0.5", "99999999999999999999999999")
            .into_bytes(),
        GOOD.replace("1732060800000000000", "9223372036854775808")
            .into_bytes(),
        vec![0xff; 70_000],
        // A fill's kind, good and bad (issue 15).
        GOOD.replace("\"side\"", "\"kind\":\"liquidation\",\"side\"")
            .into_bytes(),
        GOOD.replace("\"side\"", "\"kind\":\"\\u001b[2J\",\"side\"")
            .into_bytes(),
        GOOD.replace("\"side\"", "\"kind\":{\"kind\":1},\"side\"")
            .into_bytes(),
        GOOD.replace("\"side\"", "\"kind\":\"adl\",\"kind\":\"adl\",\"side\"")
            .into_bytes(),
        // Funding, good and hostile (issue 16).
        format!("{FUNDING}\n{FUNDING}").into_bytes(),
        FUNDING
            .replace("0.0001", "100000000000000000000000000000")
            .into_bytes(),
        FUNDING.replace("0.0001", "-1.000000001").into_bytes(),
        FUNDING.replace("\"0.0001\"", "1e308").into_bytes(),
        FUNDING
            .replace("\"0.0001\"", "[[[[\"0.0001\"]]]]")
            .into_bytes(),
        FUNDING.replace("65000.1", "0").into_bytes(),
        FUNDING
            .replace("65000.1", "-9223372036854775808")
            .into_bytes(),
        FUNDING.replace("BTCUSDT", "\\u0000").into_bytes(),
        FUNDING.as_bytes()[..FUNDING.len() / 2].to_vec(),
    ];
    for c in &cases {
        fuzzing::file_source(c);
        fuzzing::sim_wire(c);
        fuzzing::config(c);
        fuzzing::control_request(c);
        fuzzing::fix_codec(c);
        fuzzing::fix_session(c);
        fuzzing::binance_stream(c);
        fuzzing::binance_mark(c);
        fuzzing::binance_replies(c);
    }
    assert_eq!(fuzzing::file_source(format!("{GOOD}\n").as_bytes()), 1);
    assert_eq!(
        fuzzing::file_source(format!("{FUNDING}\n{GOOD}\n").as_bytes()),
        2
    );
    let liquidation = GOOD.replace("\"side\"", "\"kind\":\"liquidation\",\"side\"");
    assert_eq!(
        fuzzing::file_source(format!("{liquidation}\n").as_bytes()),
        1
    );
    assert!(fuzzing::binance_replies(include_bytes!(
        "data/binance/binance_usdm_ws_order_place_response.json"
    )));
    assert!(fuzzing::control_request(b"pause subscription F1:L1\n"));
    assert!(!fuzzing::control_request(b"pause subscription \x1b[2J\n"));
}

/// Binance user-stream messages and `userTrades` bodies that are hostile in
/// shape, size or content: errors or events, never a panic; the fixture's fill
/// counts once however it arrives.
#[test]
fn hostile_binance_messages_never_panic() {
    let fill = fuzzing::BINANCE_FILL_SAMPLE;
    let key = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1";
    let wrapped = format!(r#"{{"stream":"{key}","data":{fill}}}"#);
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let deep_inside = fill.replacen(r#""m":false"#, &format!(r#""m":{deep}"#), 1);
    let rest = r#"{"id":109100866,"orderId":336829446,"symbol":"BTCUSDT","side":"BUY","price":"42088.0","qty":"0.040","time":1705385954298,"realizedPnl":"0","commission":"0.6734","commissionAsset":"USDT"}"#;
    let expired = r#"{"e":"listenKeyExpired","E":"1736996475556","listenKey":"KEY"}"#;
    let cases: Vec<(Vec<u8>, usize)> = vec![
        (fill.as_bytes().to_vec(), 1),
        (wrapped.into_bytes(), 1),
        (deep_inside.into_bytes(), 1),
        (format!("[{rest},{rest}]").into_bytes(), 2),
        (expired.replace("KEY", key).into_bytes(), 0),
        (br#"{"e":"ACCOUNT_UPDATE","E":1,"a":{"m":"ORDER","B":[{"a":"USDT","wb":"1","cw":"1","bc":"0"},{"a":"USDT","wb":"2","cw":"1","bc":"0"}],"P":[]}}"#.to_vec(), 0),
        (br#"{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1e400"}"#.to_vec(), 0),
        (fill.replacen(r#""l":"0.040""#, r#""l":"99999999999999999999999999""#, 1).into_bytes(), 0),
        (fill.replacen(r#""L":"42088.0""#, r#""L":"42088.05""#, 1).into_bytes(), 0),
        (fill.replacen(r#""s":"BTCUSDT""#, r#""s":"\u001b[2J""#, 1).into_bytes(), 0),
        (fill.replacen(r#""x":"TRADE""#, r#""x":"TRADE","x":"NEW""#, 1).into_bytes(), 0),
        ([&fill.as_bytes()[..60], b"\xff", &fill.as_bytes()[60..]].concat(), 0),
        (deep.into_bytes(), 0),
        (r#"{"e":"#.repeat(20_000).into_bytes(), 0),
        (vec![b' '; 70_000], 0),
        (vec![0xff; 70_000], 0),
        (Vec::new(), 0),
    ];
    for (bytes, fills) in &cases {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
        assert_eq!(fuzzing::binance_stream(bytes), *fills, "{shown}");
    }
    for cut in 0..fill.len() {
        assert_eq!(fuzzing::binance_stream(&fill.as_bytes()[..cut]), 0, "{cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_bodies_survive_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::file_source(&bytes);
        fuzzing::sim_wire(&bytes);
        fuzzing::config(&bytes);
        fuzzing::control_request(&bytes);
        fuzzing::fix_codec(&bytes);
        fuzzing::fix_session(&bytes);
        fuzzing::binance_stream(&bytes);
        fuzzing::binance_mark(&bytes);
        fuzzing::binance_replies(&bytes);
    }

    /// The documented order reply, cut and with bytes changed: an error or a
    /// reply, never a panic.
    #[test]
    fn binance_replies_survive_damaged_replies(
        cut in 0usize..1200,
        flips in proptest::collection::vec((0usize..1200, any::<u8>()), 0..6),
    ) {
        let mut bytes = include_bytes!("data/binance/binance_usdm_ws_order_place_response.json").to_vec();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(cut.min(bytes.len()));
        fuzzing::binance_replies(&bytes);
    }

    #[test]
    fn binance_stream_survives_damaged_fills(
        cut in 0usize..400,
        flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..6),
    ) {
        let mut bytes = fuzzing::BINANCE_FILL_SAMPLE.as_bytes().to_vec();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(cut.min(bytes.len()));
        fuzzing::binance_stream(&bytes);
    }

    /// Requests made of the protocol's own words, in any order and number, with
    /// names that exist and names that do not.
    #[test]
    fn control_requests_of_real_words_never_panic(
        words in proptest::collection::vec(
            proptest::sample::select(vec![
                "status", "reload", "shutdown", "pause", "resume", "stop", "flatten",
                "resync", "kill-switch", "on", "off", "subscription", "sub", "follower",
                "leader", "F1", "L1", "F1:L1", "F2", "", "\t", "\u{0}", "é", "\r",
            ]),
            0..6,
        ),
    ) {
        fuzzing::control_request(words.join(" ").as_bytes());
    }

    #[test]
    fn fuzz_bodies_survive_damaged_good_input(
        cut in 0usize..300,
        flips in proptest::collection::vec((0usize..300, any::<u8>()), 0..6),
    ) {
        let mut bytes = format!("{GOOD}\n{GOOD}\n").into_bytes();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        bytes.truncate(cut.min(bytes.len()));
        fuzzing::file_source(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Streams of well-formed FIX messages with session fields and executions drawn
    /// from what a counterparty may send, right or wrong: sequence numbers out of
    /// order, PossDup, gap fills, resets, Logouts, executions of any type, foreign
    /// ClOrdIDs, quantities off the lot. The session and the mappings never panic.
    #[test]
    fn fix_sessions_of_real_messages_never_panic(
        msgs in proptest::collection::vec(
            (0usize..9, 0u64..24, any::<bool>(), any::<bool>(), any::<bool>(), 0u64..30, 0usize..8, 0usize..4, 0i64..3000),
            0..40,
        ),
    ) {
        use fillcast_engine::units::Nanos;
        use fillcast_gateways::fix::{Encoder, Header};
        let enc = Encoder::default();
        let mut out = Vec::new();
        for (t, seq, poss_dup, gap_fill, reset, new_seq, exec, who, qty) in msgs {
            let msg_type: &[u8] = [&b"A"[..], b"0", b"1", b"2", b"3", b"4", b"5", b"8", b"D"][t];
            let mut w = enc
                .begin(&mut out, &Header {
                    msg_type,
                    sender_comp_id: b"VENUE",
                    target_comp_id: b"FILLCAST",
                    msg_seq_num: seq,
                    sending_time: Nanos(1_732_060_800_000_000_000),
                })
                .unwrap();
            if poss_dup { w.char(43, b'Y').unwrap(); }
            if gap_fill { w.char(123, b'Y').unwrap(); }
            if reset { w.char(141, b'Y').unwrap(); }
            if new_seq > 0 { w.u64(36, new_seq).unwrap(); }
            if msg_type == b"2" { w.u64(7, new_seq).unwrap().u64(16, 0).unwrap(); }
            // A session Reject naming one of the order-entry books' MsgSeqNums.
            if msg_type == b"3" { w.u64(45, new_seq % 8).unwrap(); }
            if msg_type == b"8" {
                w.char(150, b"0F48CIGH"[exec]).unwrap()
                    .str(11, ["fc0000000100000001", "other", "fc", "fczzzzzzzzzzzzzzzz"][who]).unwrap()
                    .str(1, ["L1", "X", "L1", ""][who].max("L1")).unwrap()
                    .str(55, ["BTCUSDT", "ETHUSDT", "BTCUSDT", "NOPE"][who]).unwrap()
                    .char(54, b"1259"[who]).unwrap()
                    .char(39, b"012348C"[new_seq as usize % 7]).unwrap()
                    .u64(103, new_seq % 7).unwrap()
                    .str(17, "e").unwrap()
                    .decimal(32, &rust_decimal::Decimal::new(qty, 3)).unwrap()
                    .decimal(31, &rust_decimal::Decimal::new(qty * 10 + 1, 1)).unwrap()
                    .timestamp(60, Nanos(1_732_060_800_000_000_000), fillcast_gateways::fix::TimePrecision::Millis).unwrap();
            }
            w.finish();
        }
        fuzzing::fix_session(&out);
    }
}

/// The `binance_stream` fuzz target's mark-price half (`binance_mark`) on
/// stable: hostile messages on the `binance` source's mark-price connection
/// (`stream::Parser::mark`) give a mark on a whole, positive tick, an error
/// or nothing, never a panic, and a mark exactly when the message converts.
#[test]
fn hostile_mark_price_messages_never_panic() {
    let mark = r#"{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265","r":"0.00038167","T":1562306400000}"#;
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let cases: Vec<(Vec<u8>, bool)> = vec![
        (mark.as_bytes().to_vec(), true),
        (
            format!(r#"{{"stream":"btcusdt@markPrice@1s","data":{mark}}}"#).into_bytes(),
            true,
        ),
        (
            mark.replacen(r#""i":"11784.62659091""#, &format!(r#""i":{deep}"#), 1)
                .into_bytes(),
            true,
        ),
        (
            mark.replacen("11794.15000000", "0.0000000000000000000000000001", 1)
                .into_bytes(),
            false,
        ),
        (
            mark.replacen("11794.15000000", "79228162514264337593543950335", 1)
                .into_bytes(),
            false,
        ),
        (mark.replacen("11794.15000000", "-0", 1).into_bytes(), false),
        (
            mark.replacen(r#""s":"BTCUSDT""#, r#""s":"\u001b[2J""#, 1)
                .into_bytes(),
            false,
        ),
        (
            mark.replacen(r#""p":"#, r#""p":"1","p":"#, 1).into_bytes(),
            false,
        ),
        (
            mark.replacen(r#""E":1562305380000"#, r#""E":1e400"#, 1)
                .into_bytes(),
            false,
        ),
        (fuzzing::BINANCE_FILL_SAMPLE.as_bytes().to_vec(), false),
        (deep.into_bytes(), false),
        (vec![b' '; 70_000], false),
        (vec![0xff; 100], false),
        (Vec::new(), false),
    ];
    for (bytes, is_mark) in &cases {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
        assert_eq!(fuzzing::binance_mark(bytes), *is_mark, "{shown}");
        fuzzing::binance_stream(bytes);
    }
    for cut in 0..mark.len() {
        assert!(!fuzzing::binance_mark(&mark.as_bytes()[..cut]), "{cut}");
    }
}
