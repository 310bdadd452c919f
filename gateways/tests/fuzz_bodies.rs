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
    }
    assert_eq!(fuzzing::file_source(format!("{GOOD}\n").as_bytes()), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_bodies_survive_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::file_source(&bytes);
        fuzzing::sim_wire(&bytes);
        fuzzing::config(&bytes);
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
