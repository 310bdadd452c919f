//! The fuzz targets' bodies (`gateways/fuzz`) on stable, over random and
//! hand-picked hostile inputs: they must never panic.

use fillcast_gateways::fuzzing;
use proptest::prelude::*;

const GOOD: &str = r#"{"leader":"L1","event_id":"e1","symbol":"BTCUSDT","side":"buy","qty":"0.5","price":"65000.1","ts":1732060800000000000}"#;

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
    ];
    for c in &cases {
        fuzzing::file_source(c);
        fuzzing::sim_wire(c);
        fuzzing::config(c);
        fuzzing::control_request(c);
        fuzzing::fix_codec(c);
    }
    assert_eq!(fuzzing::file_source(format!("{GOOD}\n").as_bytes()), 1);
    assert!(fuzzing::control_request(b"pause subscription F1:L1\n"));
    assert!(!fuzzing::control_request(b"pause subscription \x1b[2J\n"));
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
