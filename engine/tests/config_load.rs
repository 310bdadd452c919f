//! Config loading: the example configs load, and every kind of bad input gives
//! errors that name the file, the line and what was expected (never a panic).
//!
//! Most cases are `check(toml, &[(line, "expected substring")])`: the errors must
//! be exactly those, in file/line order. `check` puts `BASE` (a venue, a symbol, a
//! leader and a follower) in front of the case; lines count from the case's
//! first line. `check_raw` takes the whole file.
//!
//! A venue's or source's own keys are the business of its kind, not the engine's:
//! `gateways/tests/config.rs` has their cases.

use fillcast_engine::config::{
    load, load_str, struct_fields, Config, ConfigError, ConfigErrors, ControlConfig, EngineConfig,
    FollowerConfig, JournalConfig, LeaderConfig, LeaderProfile, MetricsConfig, ModeConfig,
    ResyncConfig, Status, SubscriptionConfig, SymbolConfig,
};
use fillcast_engine::model::Universe;
use proptest::prelude::*;
use rust_decimal_macros::dec;
use std::path::{Path, PathBuf};

const BASE: &str = r#"[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[leaders]]
id = "L1"
equity = "1000000"

[[followers]]
id = "F1"
equity = "10000"
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config")
}

/// The file name the inline cases are "in" (in the data dir, for CSV paths).
fn inline_path() -> PathBuf {
    data().join("inline.toml")
}

fn errors(text: &str) -> ConfigErrors {
    match load_str(text, &inline_path()) {
        Ok(cfg) => panic!("expected errors, loaded: {cfg:?}"),
        Err(e) => e,
    }
}

/// The errors of `text` are exactly `expected`: (line, substring), in order.
fn check_raw(text: &str, expected: &[(usize, &str)]) {
    check_lines(&errors(text), 0, expected);
}

/// As `check_raw`, for `BASE` followed by `case`.
fn check(case: &str, expected: &[(usize, &str)]) {
    let errs = errors(&format!("{BASE}{case}"));
    check_lines(&errs, BASE.lines().count(), expected);
}

fn check_lines(errs: &ConfigErrors, offset: usize, expected: &[(usize, &str)]) {
    let got: Vec<(usize, &str)> = errs
        .iter()
        .map(|e| (e.line.saturating_sub(offset), e.message.as_str()))
        .collect();
    let ok = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|((line, msg), (want_line, want))| line == want_line && msg.contains(want));
    assert!(
        ok,
        "expected {expected:#?}\ngot (lines relative to the case):\n{got:#?}\nfull:\n{errs}"
    );
}

fn assert_loads(text: &str) -> Config {
    match load_str(text, &inline_path()) {
        Ok(cfg) => cfg,
        Err(e) => panic!("expected to load, got:\n{e}"),
    }
}

// ---------------------------------------------------------------------------
// The shipped configs.

#[test]
fn example_configs_load_and_resolve() {
    for name in ["example.toml", "run-file.toml"] {
        let path = repo().join("config").join(name);
        let cfg = load(&path).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        let universe = Universe::from_config(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(universe.symbols.len(), 2, "{name}");
        assert!(!universe.subs.is_empty(), "{name}");
        for source in &cfg.sources {
            assert_eq!(source.dir, repo().join("config"), "{name}");
        }
    }
}

#[test]
fn example_uses_csv_files_and_every_mode() {
    let cfg = load(&repo().join("config/example.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.followers.len(), 4, "1 in TOML + 3 in CSV");
    assert_eq!(cfg.subscriptions.len(), 5, "1 in TOML + 4 in CSV");
    let f2 = &cfg.followers[1];
    assert_eq!(f2.id, "F2");
    assert_eq!(f2.status, Status::Active, "empty cell = default");
    assert_eq!(f2.max_leverage, Some(dec!(3)));
    assert_eq!(f2.symbols.as_deref(), Some(&["BTCUSDT".to_string()][..]));
    assert_eq!(
        cfg.followers[2].symbols.as_deref(),
        Some(&["BTCUSDT".to_string(), "ETHUSDT".to_string()][..])
    );
    assert_eq!(cfg.followers[3].symbols, None);
    assert_eq!(cfg.followers[3].status, Status::Paused);

    let run = load(&repo().join("config/run-file.toml")).unwrap_or_else(|e| panic!("{e}"));
    for mode in [
        ModeConfig::Proportional,
        ModeConfig::FixedRatio,
        ModeConfig::FixedAmount,
        ModeConfig::FixedLeverage,
    ] {
        assert!(
            run.subscriptions.iter().any(|s| s.mode == mode),
            "run-file.toml has no {mode:?} subscription"
        );
    }
    assert_eq!(run.followers.len(), 6);
}

#[test]
fn example_and_reference_document_every_key() {
    let example =
        std::fs::read_to_string(repo().join("config/example.toml")).expect("config/example.toml");
    let reference = std::fs::read_to_string(repo().join("docs/CONFIG.md")).expect("docs/CONFIG.md");
    let mut keys: Vec<&str> = Vec::new();
    for f in [
        struct_fields::<Config>(),
        struct_fields::<EngineConfig>(),
        struct_fields::<ResyncConfig>(),
        struct_fields::<SymbolConfig>(),
        struct_fields::<LeaderConfig>(),
        struct_fields::<LeaderProfile>(),
        struct_fields::<FollowerConfig>(),
        struct_fields::<SubscriptionConfig>(),
        struct_fields::<JournalConfig>(),
        struct_fields::<ControlConfig>(),
        struct_fields::<MetricsConfig>(),
    ] {
        assert!(!f.is_empty());
        keys.extend(f);
    }
    for key in keys {
        let documented = example.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.starts_with(&format!("{key} ="))
                || l.starts_with(&format!("[{key}]"))
                || l.starts_with(&format!("[[{key}]]"))
                || l.starts_with(&format!("[engine.{key}]"))
                || l.starts_with(&format!("[leaders.{key}]"))
        });
        // `removed` is the engine's own mark in a journal's model, refused in a
        // file: the reference says so, the example cannot show it.
        assert!(
            documented || key == "removed",
            "config/example.toml does not show `{key}`"
        );
        assert!(
            reference.contains(&format!("`{key}`")),
            "docs/CONFIG.md does not document `{key}`"
        );
    }
}

#[test]
fn minimal_and_empty_configs_load() {
    let cfg = assert_loads("");
    assert_eq!(cfg, Config::default());
    let cfg = assert_loads(BASE);
    assert_eq!(cfg.engine, EngineConfig::default());
    assert!(Universe::from_config(&cfg).is_ok());
}

#[test]
fn exact_floats_and_integers_are_accepted_as_decimals() {
    let cfg = assert_loads(&format!(
        "{BASE}[[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = 10_000\n\
         mode = \"fixed_ratio\"\nratio = 0.125\nmax_position_pct = 5e1\n"
    ));
    let s = &cfg.subscriptions[0];
    assert_eq!(s.allocation, dec!(10000));
    assert_eq!(s.ratio, Some(dec!(0.125)));
    assert_eq!(s.max_position_pct, Some(dec!(50)));
}

// ---------------------------------------------------------------------------
// Malformed TOML: one error, at the right line.

#[test]
fn syntax_errors_point_at_their_line() {
    check_raw(
        "[engine]\nfeed_ring_slots = 1024\nwait = \"spin\n",
        &[(3, "invalid basic string")],
    );
    check_raw("[engine]\nfeed_ring_slots 1024\n", &[(2, "expected")]);
    check_raw("[engine]\n[engine]\n", &[(2, "duplicate")]);
    check_raw("a = 1\na = 2\n", &[(2, "duplicate key")]);
    check_raw("[[symbols]\nname = \"x\"\n", &[(1, "invalid table header")]);
}

#[test]
fn truncated_files_are_errors() {
    check(
        "[[subscriptions]]\nfollower = \"F1\"\nleader = \"L",
        &[(3, "invalid basic string")],
    );
    check("[[subscr", &[(1, "invalid table header")]);
    check(
        "[[subscriptions]]\nallocation = ",
        &[(2, "invalid TOML: the file ends in the middle of an item")],
    );
    let full =
        std::fs::read_to_string(repo().join("config/run-file.toml")).expect("config/run-file.toml");
    // Cut mid-string, mid-header, mid-value and mid-item (missing fields).
    let cuts = [
        full.find("lot_size = \"0.0").map(|i| i + 14),
        full.find("[[subscriptions]]").map(|i| i + 5),
        full.find("mode = \"fixed_amount\"").map(|i| i + 7),
        full.find("follower = \"F3\"").map(|i| i + 16),
    ];
    for cut in cuts {
        let cut = cut.expect("run-file.toml changed: update the cuts");
        let text = full.get(..cut).unwrap_or_default();
        assert!(
            load_str(text, &inline_path()).is_err(),
            "cut at {cut} loaded"
        );
    }
}

#[test]
fn syntax_error_has_a_column() {
    let errs = errors("[engine]\nwait = spin\n");
    let e = &errs.0[0];
    assert_eq!((e.line, e.column), (2, 8), "{errs}");
    assert_eq!(e.file, inline_path());
}

// ---------------------------------------------------------------------------
// Wrong shapes: each bad item reported, at the offending key or value.

#[test]
fn wrong_types_point_at_the_value() {
    check(
        "[[symbols]]\nname = \"ETHUSDT\"\nlot_size = \"abc\"\ntick_size = \"0.01\"\nvenue = \"sim\"\n",
        &[(3, "`lot_size`: invalid value: string \"abc\"")],
    );
    check(
        "[[symbols]]\nname = \"ETHUSDT\"\nlot_size = true\ntick_size = \"0.01\"\nvenue = \"sim\"\n",
        &[(3, "`lot_size`: invalid type: boolean `true`")],
    );
    check(
        "[[followers]]\nid = \"F2\"\nequity = \"1\"\nmax_open_positions = \"ten\"\n",
        &[(
            4,
            "`max_open_positions`: invalid type: string \"ten\", expected u32",
        )],
    );
    check(
        "[[followers]]\nid = \"F2\"\nequity = \"1\"\nmax_open_positions = -1\n",
        &[(4, "invalid value: integer `-1`, expected u32")],
    );
    check(
        "[[followers]]\nid = 7\nequity = \"1\"\n",
        &[(2, "`id`: invalid type: integer `7`, expected a string")],
    );
    check(
        "[[followers]]\nid = \"F2\"\nequity = 1979-05-27\n",
        &[(3, "`equity`: invalid type: a date-time")],
    );
    check_raw(
        "[engine]\nwait = 3\n",
        &[(2, "`engine.wait`: invalid type: integer `3`")],
    );
    check_raw(
        "symbols = 5\n",
        &[(
            1,
            "`symbols`: invalid type: integer `5`, expected a sequence",
        )],
    );
    check_raw(
        "engine = []\nsymbols = [1]\n",
        &[
            (
                1,
                "`engine`: invalid type: sequence, expected struct EngineConfig",
            ),
            (2, "invalid type: integer `1`, expected struct SymbolConfig"),
        ],
    );
}

#[test]
fn inexact_floats_are_errors() {
    check(
        "[[symbols]]\nname = \"ETHUSDT\"\nlot_size = 0.1000000000000000055511151231257827\n\
         tick_size = \"0.01\"\nvenue = \"sim\"\n",
        &[(
            3,
            "`lot_size` = 0.1000000000000000055511151231257827 is not exact",
        )],
    );
}

#[test]
fn unknown_keys_point_at_the_key() {
    check(
        "[[symbols]]\nname = \"ETHUSDT\"\nlot_sise = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"sim\"\n",
        &[(3, "unknown field `lot_sise`, expected one of")],
    );
    check_raw(
        "folowers_file = \"x.csv\"\n",
        &[(1, "unknown field `folowers_file`")],
    );
    check_raw(
        "[engine]\nfeed_ring = 8\n",
        &[(2, "`engine`: unknown field `feed_ring`")],
    );
    let errs = errors("[[leaders]]\nid = \"L1\"\nequity = \"1\"\n  colour = \"red\"\n");
    assert_eq!((errs.0[0].line, errs.0[0].column), (4, 3), "{errs}");
}

#[test]
fn unknown_enum_values_are_errors() {
    check(
        "[[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = \"1\"\nmode = \"mirror\"\n",
        &[(5, "`mode`: unknown variant `mirror`, expected one of `proportional`")],
    );
    check_raw(
        "[engine]\nwait = \"busy\"\n",
        &[(2, "unknown variant `busy`")],
    );
}

#[test]
fn missing_required_fields_point_at_the_item() {
    check(
        "\n[[symbols]]\nname = \"ETHUSDT\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\n",
        &[(2, "missing field `venue`")],
    );
    check(
        "[[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = \"1\"\n",
        &[(1, "missing field `mode`")],
    );
    check_raw(
        "[[sources]]\npath = \"x\"\n",
        &[(1, "missing field `kind`")],
    );
    check_raw(
        "symbols = [{ name = \"A\", lot_size = \"1\", tick_size = \"1\" }]\n",
        &[(1, "missing field `venue`")],
    );
}

#[test]
fn every_bad_item_is_reported() {
    check_raw(
        r#"[engine]
feed_ring = 1

[[symbols]]
name = "A"
lot_size = "x"
tick_size = "1"
venue = "v"

[[symbols]]
name = "B"
lot_size = "1"
tick_size = "1"
venue = "v"

[[leaders]]
id = "L1"

[[followers]]
id = "F1"
equity = "1"
status = "sleeping"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "1"
mode = "proportional"
extra = 1
"#,
        &[
            (2, "unknown field `feed_ring`"),
            (6, "`lot_size`: invalid value"),
            (16, "missing field `equity`"),
            (22, "`status`: unknown variant `sleeping`"),
            (29, "unknown field `extra`"),
        ],
    );
}

// ---------------------------------------------------------------------------
// Semantic checks: all of them reported, each at its line.

#[test]
fn quantities_must_be_positive() {
    check(
        r#"[[symbols]]
name = "ETHUSDT"
lot_size = "0"
tick_size = "-0.01"
min_notional = "-1"
venue = "sim"

[[leaders]]
id = "L2"
equity = "0"

[[followers]]
id = "F2"
equity = "-5"
max_leverage = "0"
max_open_positions = 0
daily_loss_limit = "-1"

[[subscriptions]]
follower = "F2"
leader = "L2"
allocation = "0"
mode = "proportional"
max_order_notional = "0"
max_position_notional = "-10"
"#,
        &[
            (3, "`lot_size` must be positive, got 0"),
            (4, "`tick_size` must be positive, got -0.01"),
            (5, "`min_notional` must not be negative"),
            (10, "`equity` must be positive, got 0"),
            (14, "`equity` must be positive, got -5"),
            (15, "`max_leverage` must be positive"),
            (16, "`max_open_positions` must be positive"),
            (17, "`daily_loss_limit` must be positive"),
            (22, "`allocation` must be positive"),
            (24, "`max_order_notional` must be positive"),
            (25, "`max_position_notional` must be positive"),
        ],
    );
}

#[test]
fn symbol_units_must_fit() {
    check(
        r#"[[symbols]]
name = "A"
lot_size = "0.001"
tick_size = "0.1"
min_qty = "0.0015"
venue = "sim"

[[symbols]]
name = "B"
lot_size = "0.00001"
tick_size = "0.00001"
venue = "sim"

[[symbols]]
name = "C"
lot_size = "79228162514264337593543950335"
tick_size = "10"
venue = "sim"
"#,
        &[
            (
                5,
                "`min_qty` 0.0015 must be a whole multiple of `lot_size` 0.001",
            ),
            (
                11,
                "`lot_size` × `tick_size` = 0.0000000001 must be a whole number of 1e-8",
            ),
            (17, "`lot_size` × `tick_size` = overflow"),
        ],
    );
}

#[test]
fn money_must_fit_its_units() {
    check(
        r#"[[followers]]
id = "F2"
equity = "0.000000001"

[[followers]]
id = "F3"
equity = "100000000000"

[[followers]]
id = "F4"
equity = "1000"
max_leverage = "79228162514264337593543950335"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "1000"
mode = "fixed_leverage"
leverage = "1000000000000000000"
"#,
        &[
            (3, "`equity` 0.000000001 is not an amount of money"),
            (7, "`equity` 100000000000 is not an amount of money"),
            (12, "`max_leverage` × `equity` = overflow is too large"),
            (
                19,
                "`leverage` × `allocation` = 1000000000000000000000 is too large",
            ),
        ],
    );
}

#[test]
fn duplicate_ids_are_errors() {
    check(
        r#"[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[leaders]]
id = "L1"
equity = "1"

[[followers]]
id = "F1"
equity = "1"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "1"
mode = "proportional"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "1"
mode = "proportional"

[[subscriptions]]
id = "F1:L1"
follower = "F1"
leader = "L1"
allocation = "1"
mode = "proportional"
"#,
        &[
            (2, "duplicate venue `sim` (first defined at line 2)"),
            (6, "duplicate symbol `BTCUSDT` (first defined at line 6)"),
            (12, "duplicate leader `L1` (first defined at line 12)"),
            (16, "duplicate follower `F1` (first defined at line 16)"),
            (
                25,
                "duplicate subscription `F1:L1` (first defined at line 36)",
            ),
            (
                32,
                "duplicate subscription `F1:L1` (first defined at line 36)",
            ),
        ],
    );
    let errs = errors(&format!("{BASE}[[leaders]]\nid = \"L1\"\nequity = \"1\"\n"));
    assert!(
        errs.0[0].message.ends_with("(first defined at line 12)"),
        "{errs}"
    );
    check(
        "[[leaders]]\nid = \" \"\nequity = \"1\"\n",
        &[(2, "leader name must not be empty")],
    );
}

#[test]
fn unknown_references_are_errors() {
    check(
        r#"[[symbols]]
name = "ETHUSDT"
lot_size = "0.01"
tick_size = "0.01"
venue = "binance"

[[leaders]]
id = "L2"
equity = "1"
profile = { symbols = ["BTCUSDT", "DOGEUSDT"] }

[[followers]]
id = "F2"
equity = "1"
symbols = ["XRPUSDT"]

[[subscriptions]]
follower = "F9"
leader = "L9"
allocation = "1"
mode = "proportional"
"#,
        &[
            (5, "unknown venue `binance`; expected one of: sim"),
            (
                10,
                "unknown symbol `DOGEUSDT`; expected one of: BTCUSDT, ETHUSDT",
            ),
            (15, "unknown symbol `XRPUSDT`"),
            (18, "unknown follower `F9`; expected one of: F1, F2"),
            (19, "unknown leader `L9`; expected one of: L1, L2"),
        ],
    );
    let errs = errors(&format!("{BASE}[[subscriptions]]\nfollower = \"F1\"\nleader = \"L7\"\nallocation = \"1\"\nmode = \"proportional\"\n"));
    let e = &errs.0[0];
    assert_eq!((e.line, e.column), (BASE.lines().count() + 3, 10), "{errs}");
}

#[test]
fn mode_parameters_must_match_the_mode() {
    check(
        r#"[[subscriptions]]
id = "a"
follower = "F1"
leader = "L1"
allocation = "100"
mode = "fixed_ratio"

[[subscriptions]]
id = "b"
follower = "F1"
leader = "L1"
allocation = "100"
mode = "fixed_amount"
ratio = "0.5"
amount = "10"

[[subscriptions]]
id = "c"
follower = "F1"
leader = "L1"
allocation = "100"
mode = "proportional"
multiplier = "0"
leverage = "2"

[[subscriptions]]
id = "d"
follower = "F1"
leader = "L1"
allocation = "100"
mode = "fixed_leverage"
leverage = "-1"

[[subscriptions]]
id = "e"
follower = "F1"
leader = "L1"
allocation = "100"
mode = "fixed_amount"
"#,
        &[
            (6, "mode fixed_ratio needs `ratio`"),
            (14, "`ratio` is only used by mode fixed_ratio; this subscription's mode is fixed_amount"),
            (23, "`multiplier` must be positive"),
            (24, "`leverage` is only used by mode fixed_leverage"),
            (32, "`leverage` must be positive, got -1"),
            (39, "mode fixed_amount needs `amount`"),
        ],
    );
}

#[test]
fn percentages_and_basis_points_have_ranges() {
    check(
        r#"[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "100"
mode = "proportional"
max_position_pct = "0"
total_stop_loss_pct = "150"
leader_drawdown_pct = "100"
slippage_bps = 10001
"#,
        &[
            (6, "`max_position_pct` is a percentage in (0, 100], got 0"),
            (
                7,
                "`total_stop_loss_pct` is a percentage in (0, 100], got 150",
            ),
            (9, "`slippage_bps` is in basis points: at most 10000"),
        ],
    );
}

#[test]
fn engine_ring_sizes_are_powers_of_two() {
    check_raw(
        "[engine]\nfeed_ring_slots = 1000\nexec_ring_slots = 1\negress_ring_slots = 0\n\
         max_working_orders = 0\ndedup_window = 4\n",
        &[
            (2, "`feed_ring_slots` must be a power of two from 2 to"),
            (3, "`exec_ring_slots` must be a power of two from 2 to"),
            (4, "`egress_ring_slots` must be a power of two from 2 to"),
            (5, "`max_working_orders` must be in 1..=67108864; got 0"),
        ],
    );
}

#[test]
fn regression_check_config_accepts_configs_run_cannot_start() {
    // Issue 10, finding 8: `core_cpu = 1024` panicked in the pinning library, huge
    // tables overflowed the allocator, and `journal_ring_slots = 1000` (not a power
    // of two) panicked in the ring; `check-config` had accepted them all.
    check_raw(
        "[engine]\ncore_cpu = 1024\nio_cpu = 100000\njournal_ring_slots = 1000\n\
         egress_ring_slots = 1099511627776\nmax_working_orders = 1000000000000\n\
         dedup_window = 67108865\n",
        &[
            (
                2,
                "`core_cpu` = 1024 is not a CPU this process may run on (it may use ",
            ),
            (3, "`io_cpu` = 100000 is not a CPU this process may run on"),
            (4, "`journal_ring_slots` must be a power of two from 2 to"),
            (5, "`egress_ring_slots` must be a power of two from 2 to"),
            (
                6,
                "`max_working_orders` must be in 1..=67108864; got 1000000000000",
            ),
            (7, "`dedup_window` must be in 1..=67108864; got 67108865"),
        ],
    );
    // The bounds themselves are accepted, and CPU 0 (which every machine has).
    let cfg = assert_loads("[engine]\ncore_cpu = 0\nmax_working_orders = 67108864\n");
    assert_eq!(cfg.engine.core_cpu, Some(0));
}

#[test]
fn resync_capacity_and_outage_settings_have_ranges() {
    check_raw(
        "[engine]\norders_per_subscription = 1\nmax_retries = 0\nvenue_down_alarm_ms = 0\n\
         [engine.resync]\nbackoff_ms = 0\nbackoff_max_ms = 3600001\nunfilled_opening = \"reduce\"\n",
        &[
            (
                2,
                "`orders_per_subscription` must be in 2..=64 (a flip needs two places); got 1",
            ),
            (3, "`max_retries` must be in 1..=64; got 0"),
            (4, "`venue_down_alarm_ms` must be positive"),
            (6, "`backoff_ms` must be at least 1 and at most `backoff_max_ms`; got 0 and 3600001"),
            (7, "`backoff_max_ms` is at most one hour (3600000); got 3600001"),
            (8, "`unfilled_opening` is `retry`, `skip` or `out_of_sync`"),
        ],
    );
    check_raw(
        "[engine]\norders_per_subscription = 65\n[engine.resync]\nbackoff_ms = 50\nbackoff_max_ms = 10\n",
        &[
            (2, "got 65"),
            (4, "`backoff_ms` must be at least 1 and at most `backoff_max_ms`; got 50 and 10"),
        ],
    );
    check_raw(
        "[engine]\non_venue_down = \"explode\"\n",
        &[(2, "unknown variant `explode`, expected `alarm` or `stop`")],
    );
    check_raw(
        "[engine.resync]\ninsufficient_margin = \"maybe\"\n",
        &[(2, "unknown variant `maybe`")],
    );
    check_raw(
        "[engine.resync]\nbackof_ms = 5\n",
        &[(2, "unknown field `backof_ms`")],
    );
    // Every accepted value starts an engine: the bounds themselves.
    let cfg = assert_loads(
        "[engine]\norders_per_subscription = 64\nmax_retries = 64\non_venue_down = \"stop\"\n\
         [engine.resync]\nbackoff_ms = 1\nbackoff_max_ms = 3600000\nother = \"skip\"\n",
    );
    assert_eq!(cfg.engine.orders_per_subscription, 64);
    let cfg = assert_loads("[engine]\norders_per_subscription = 2\n");
    let u = std::sync::Arc::new(Universe::from_config(&cfg).expect("model"));
    let _ = fillcast_engine::core::Core::new(u, &cfg.engine);
}

/// Without the kinds (`load_with`), a venue's and a source's own keys are kept as
/// written, for whoever builds them, and a source keeps the folder its relative
/// paths are taken from.
#[test]
fn venue_and_source_tables_are_kept_for_their_kinds() {
    let cfg = assert_loads(&format!(
        "{BASE}[[sources]]\nkind = \"pigeon\"\npath = \"fills.jsonl\"\nrate = 3\n\n\
         [[venues]]\nname = \"v2\"\nkind = \"fix\"\nhost = \"x\"\n[venues.session]\nid = 1\n"
    ));
    let v = &cfg.venues[1];
    assert_eq!((v.name.as_str(), v.kind.as_str()), ("v2", "fix"));
    assert_eq!(
        v.settings.to_string(),
        "host = \"x\"\n\n[session]\nid = 1\n"
    );
    let s = &cfg.sources[0];
    assert_eq!(s.kind, "pigeon");
    assert_eq!(s.settings.to_string(), "path = \"fills.jsonl\"\nrate = 3\n");
    assert_eq!(s.dir, data());
    check_raw(
        "[[sources]]\npath = \"x\"\n[[venues]]\nkind = \"sim\"\n",
        &[(1, "missing field `kind`"), (3, "missing field `name`")],
    );
}

#[test]
fn model_errors_point_at_their_item() {
    check(
        "[[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = \"10000\"\n\
         mode = \"proportional\"\nmultiplier = \"1000000000000\"\n",
        &[(1, "subscription `F1:L1`: proportional ratio out of range")],
    );
}

#[test]
fn all_errors_are_counted_past_the_cap() {
    let mut text = BASE.to_string();
    for i in 0..150 {
        text.push_str(&format!(
            "[[subscriptions]]\nid = \"s{i}\"\nfollower = \"F1\"\nleader = \"nobody\"\n\
             allocation = \"1\"\nmode = \"proportional\"\n"
        ));
    }
    let errs = errors(&text);
    assert_eq!(errs.len(), 101);
    assert!(errs.0[99].message.contains("unknown leader `nobody`"));
    assert_eq!(errs.0[100].line, 0);
    assert_eq!(errs.0[100].message, "50 more errors not shown");
}

// ---------------------------------------------------------------------------
// CSV files.

#[test]
fn csv_rows_are_appended() {
    let cfg = load(&data().join("csv-ok.toml")).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = cfg.followers.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["F1", "F2", "F3"]);
    assert_eq!(
        cfg.followers[2].equity,
        dec!(150000.50),
        "cells are trimmed"
    );
    assert_eq!(cfg.followers[2].max_open_positions, Some(20));
    assert_eq!(cfg.subscriptions.len(), 3);
    let s = &cfg.subscriptions[1];
    assert_eq!(
        (s.mode, s.ratio, s.amount),
        (ModeConfig::FixedRatio, Some(dec!(0.002)), None)
    );
    assert!(s.copy_open_positions);
    assert_eq!(s.slippage_bps, 50, "absent column = default");
    assert_eq!(cfg.followers_file, Some(data().join("followers-ok.csv")));
    assert!(Universe::from_config(&cfg).is_ok());
}

/// Errors of the inline TOML `top` + `BASE` + `case` (top-level keys must come
/// before the first table), rendered as `file-name:line: message`.
fn rendered(top: &str, case: &str) -> Vec<String> {
    errors(&format!("{top}{BASE}{case}"))
        .iter()
        .map(|e| {
            let name = e.file.file_name().map(|n| n.to_string_lossy().into_owned());
            format!("{}:{}: {}", name.unwrap_or_default(), e.line, e.message)
        })
        .collect()
}

#[test]
fn csv_bad_rows_name_the_csv_file_and_line() {
    assert_eq!(
        rendered("followers_file = \"followers-bad-rows.csv\"\n", ""),
        [
            "followers-bad-rows.csv:3: `equity`: invalid value: string \"abc\", expected a Decimal type representing a fixed-point number",
            "followers-bad-rows.csv:4: `status`: unknown variant `sleeping`, expected one of `active`, `paused`, `stopped`",
            "followers-bad-rows.csv:7: the row has 5 fields; the header has 7",
            "followers-bad-rows.csv:8: `equity` is empty; it is required",
            "followers-bad-rows.csv:9: `max_open_positions`: invalid value: string \"-1\", expected u32",
        ]
    );
}

#[test]
fn csv_header_problems_are_reported_once() {
    assert_eq!(
        rendered("followers_file = \"followers-missing-column.csv\"\n", ""),
        ["followers-missing-column.csv:2: missing column `equity`"]
    );
    let unknown = rendered("followers_file = \"followers-unknown-column.csv\"\n", "");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].starts_with(
            "followers-unknown-column.csv:1: unknown column `colour`; expected one of: id, equity"
        ),
        "{unknown:?}"
    );
    assert_eq!(
        rendered("followers_file = \"followers-bad-utf8.csv\"\n", ""),
        ["followers-bad-utf8.csv:2: field 1 is not valid UTF-8"]
    );
}

#[test]
fn csv_rows_get_semantic_checks_at_their_line() {
    assert_eq!(
        rendered("subscriptions_file = \"subscriptions-unknown-leader.csv\"\n", ""),
        [
            "subscriptions-unknown-leader.csv:3: unknown leader `L9`; expected one of: L1",
            "subscriptions-unknown-leader.csv:4: duplicate subscription `F1:L1` (first defined at line 2)",
            "subscriptions-unknown-leader.csv:4: mode fixed_ratio needs `ratio`",
        ]
    );
    // A CSV follower that repeats a TOML one names the TOML file and line.
    let dup = rendered(
        "followers_file = \"followers-ok.csv\"\n",
        "[[followers]]\nid = \"F2\"\nequity = \"1\"\n",
    );
    assert_eq!(dup.len(), 2, "{dup:?}");
    assert!(
        dup[0].starts_with("followers-ok.csv:2: duplicate follower `F2` (first defined at ")
            && dup[0].ends_with("inline.toml:20)"),
        "{dup:?}"
    );
    assert_eq!(
        dup[1],
        "followers-ok.csv:3: unknown symbol `ETHUSDT`; expected one of: BTCUSDT"
    );
}

#[test]
fn csv_file_errors_point_at_the_toml_key() {
    check_raw(
        "\nfollowers_file = \"no-such.csv\"\n",
        &[(2, "cannot read `")],
    );
    // The CSV is read (and its errors reported) even when the TOML has errors.
    let lines = rendered(
        "followers_file = \"followers-missing-column.csv\"\n",
        "[[leaders]]\nid = 3\n",
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("inline.toml:20: `id`: invalid type"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1],
        "followers-missing-column.csv:2: missing column `equity`"
    );
}

// ---------------------------------------------------------------------------
// Hostile input: an error, never a panic.

#[test]
fn a_ten_megabyte_line_is_an_error_with_a_short_message() {
    let huge = "a".repeat(10 << 20);
    for text in [
        format!("x = \"{huge}\"\n"),
        format!("{huge}\n"),
        format!("{BASE}[[subscriptions]]\nfollower = \"F1\"\nleader = \"{huge}\"\nallocation = \"1\"\nmode = \"proportional\"\n"),
        format!("[[symbols]]\nname = \"A\"\nlot_size = \"{huge}\"\n"),
    ] {
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{}", errs.0[0].message);
        assert!(errs.to_string().len() < 1000);
    }
}

#[test]
fn nul_bytes_and_control_characters_are_errors() {
    check_raw("[engine]\0\n", &[(1, "")]);
    check_raw("[engine]\nwait = \"spin\0\"\n", &[(2, "")]);
    check_raw("\0", &[(1, "")]);
}

#[test]
fn deep_nesting_is_an_error() {
    let depth = 100_000;
    for text in [
        format!("x = {}{}", "[".repeat(depth), "]".repeat(depth)),
        format!("x = {}1{}", "{a = ".repeat(depth), "}".repeat(depth)),
        format!("{} = 1", vec!["a"; depth].join(".")),
        format!("[{}]", vec!["a"; depth].join(".")),
        format!("x = {}", "[".repeat(depth)),
    ] {
        check_raw(&text, &[(1, "")]);
    }
}

#[test]
fn too_large_and_unreadable_files_are_errors() {
    let big = format!("# {}\n", "x".repeat(17 << 20));
    check_raw(&big, &[(0, "a config file may have at most")]);

    let errs = load(Path::new("/nonexistent/fillcast.toml")).expect_err("loaded");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs.0[0].line, 0);
    assert!(
        errs.to_string().starts_with("/nonexistent/fillcast.toml: "),
        "{errs}"
    );

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-load-utf8");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join("bad-utf8.toml");
    std::fs::write(&path, b"[engine]\nwait = \"sp\xffin\"\n").expect("write temp file");
    let errs = load(&path).expect_err("loaded");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        (errs.0[0].line, errs.0[0].column, errs.0[0].message.as_str()),
        (2, 11, "not valid UTF-8")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any edit of a valid config loads or reports errors, never panics, and every
    /// error with a line points inside its file.
    #[test]
    fn mutated_configs_never_panic(
        cut in 0usize..4000,
        len in 0usize..40,
        insert in "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,12}",
    ) {
        let base = std::fs::read_to_string(repo().join("config/run-file.toml")).expect("config/run-file.toml");
        let mut start = cut.min(base.len());
        while !base.is_char_boundary(start) { start -= 1; }
        let mut end = (start + len).min(base.len());
        while !base.is_char_boundary(end) { end -= 1; }
        let text = format!("{}{insert}{}", &base[..start], &base[end..]);
        let lines = text.lines().count().max(1);
        if let Err(errs) = load_str(&text, &repo().join("config/run-file.toml")) {
            prop_assert!(!errs.is_empty());
            for e in errs.iter() {
                if e.file.ends_with("run-file.toml") {
                    prop_assert!(e.line <= lines + 1, "{e}");
                }
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    /// Arbitrary bytes (mostly CSV punctuation) as a followers CSV: rows or
    /// errors at lines of that file, never a panic.
    #[test]
    fn arbitrary_csv_never_panics(
        body in proptest::collection::vec(
            prop_oneof![any::<u8>(), proptest::sample::select(b",\"\n\r#| 0123456789.-Fa".to_vec())],
            0..400,
        ),
    ) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-load-csv-prop");
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let csv = dir.join("followers.csv");
        let mut bytes = b"id,equity,status,symbols\n".to_vec();
        bytes.extend(&body);
        std::fs::write(&csv, &bytes).expect("write temp file");
        let lines = bytes.split(|&b| b == b'\n').count();
        let text = format!("followers_file = \"followers.csv\"\n{BASE}");
        if let Err(errs) = load_str(&text, &dir.join("c.toml")) {
            for e in errs.iter() {
                prop_assert!(e.file == csv || e.line == 0, "{e}");
                prop_assert!(e.line <= lines, "{e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering.

#[test]
fn errors_render_as_file_line_column_message() {
    let e = |line, column| ConfigError {
        file: PathBuf::from("config/x.toml"),
        line,
        column,
        message: "oops".into(),
    };
    assert_eq!(e(3, 7).to_string(), "config/x.toml:3:7: oops");
    assert_eq!(e(3, 0).to_string(), "config/x.toml:3: oops");
    assert_eq!(e(0, 0).to_string(), "config/x.toml: oops");
    let all = ConfigErrors(vec![e(1, 2), e(4, 0)]);
    assert_eq!(
        all.to_string(),
        "config/x.toml:1:2: oops\nconfig/x.toml:4: oops"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(all);
    assert!(boxed.to_string().contains('\n'));
}

#[test]
fn control_and_metrics_sections_are_checked_with_their_lines() {
    check(
        "\n[metrics]\naddress = \"localhost\"\n",
        &[(3, "`address` must be an IP address and port")],
    );
    check("\n[metrics]\nport = 9464\n", &[(3, "port")]);
    check("\n[control]\nsocket = 5\n", &[(3, "socket")]);
    check("\n[control]\nsockets = \"x\"\n", &[(3, "sockets")]);
    let cfg = assert_loads(&format!(
        "{BASE}\n[control]\nsocket = \"run/ctl.sock\"\n[metrics]\naddress = \"127.0.0.1:0\"\n"
    ));
    let socket = cfg.control.and_then(|c| c.socket).expect("a socket");
    assert!(
        socket.is_absolute() && socket.ends_with("run/ctl.sock"),
        "relative to the config file: {}",
        socket.display()
    );
    assert_eq!(
        cfg.metrics.map(|m| m.address).as_deref(),
        Some("127.0.0.1:0")
    );
}

/// Followers F1..Fn and one proportional subscription each to L1, after `BASE`'s
/// first follower (F1 is BASE's).
fn grown(ids: &[&str]) -> String {
    let mut s = String::from(BASE);
    for id in ids {
        if *id != "F1" {
            s.push_str(&format!(
                "\n[[followers]]\nid = \"{id}\"\nequity = \"1000\"\n"
            ));
        }
    }
    for id in ids {
        s.push_str(&format!(
            "\n[[subscriptions]]\nfollower = \"{id}\"\nleader = \"L1\"\nallocation = \"100\"\nmode = \"proportional\"\n"
        ));
    }
    s
}

fn ids<T>(items: &[T], f: impl Fn(&T) -> (String, bool)) -> Vec<(String, bool)> {
    items.iter().map(f).collect()
}

fn sub_ids(c: &Config) -> Vec<(String, bool)> {
    ids(&c.subscriptions, |s| {
        (fillcast_engine::model::subscription_id(s), s.removed)
    })
}

#[test]
fn a_reload_keeps_every_index_removed_items_stay_as_tombstones_and_new_ones_come_last() {
    let a = load_str(&grown(&["F1", "F2", "F3"]), Path::new("a.toml")).unwrap();
    // F2 removed, F4 inserted before F3 in the file.
    let b = load_str(&grown(&["F1", "F4", "F3"]), Path::new("b.toml")).unwrap();
    let arranged = b.arranged_after(&a).unwrap();
    let own = |s: &str| (s.to_string(), false);
    let gone = |s: &str| (s.to_string(), true);
    assert_eq!(
        sub_ids(&arranged),
        vec![own("F1:L1"), gone("F2:L1"), own("F3:L1"), own("F4:L1")]
    );
    assert_eq!(
        ids(&arranged.followers, |f| (f.id.clone(), f.removed)),
        vec![own("F1"), gone("F2"), own("F3"), own("F4")]
    );
    // The arranged model resolves, and a removed item is not found by name.
    let u = Universe::from_config(&arranged).unwrap();
    assert!(u.follower("F2").is_none() && u.follower("F4").is_some());
    assert!(u.subs[1].removed);
    // Its model round-trips through the journal's loader (which allows `removed`).
    let back = fillcast_engine::config::load_model(&arranged.model_toml().unwrap()).unwrap();
    assert_eq!(sub_ids(&back), sub_ids(&arranged));
    assert_eq!(
        Universe::from_config(&back).unwrap().revision,
        u.revision,
        "the journal's copy is the same revision"
    );

    // The same file again: the same revision (a restart on an unchanged file).
    let again = b.arranged_after(&arranged).unwrap();
    assert_eq!(Universe::from_config(&again).unwrap().revision, u.revision);
    // F2 back: in its old place, no longer removed.
    let c = load_str(&grown(&["F1", "F2", "F3", "F4"]), Path::new("c.toml")).unwrap();
    let back = c.arranged_after(&arranged).unwrap();
    assert_eq!(
        sub_ids(&back),
        vec![own("F1:L1"), own("F2:L1"), own("F3:L1"), own("F4:L1")]
    );
    let diff = fillcast_engine::config::model_diff(&arranged, &back);
    assert!(
        diff.contains(&"subscriptions[F2:L1]: added back".to_string()),
        "{diff:?}"
    );
    let diff = fillcast_engine::config::model_diff(&a, &arranged);
    for line in [
        "subscriptions[F2:L1]: removed",
        "subscriptions[F4:L1]: added",
    ] {
        assert!(diff.contains(&line.to_string()), "{line} not in {diff:?}");
    }
}

#[test]
fn a_subscription_cannot_move_to_another_follower_or_leader() {
    let a = load_str(&grown(&["F1", "F2"]), Path::new("a.toml")).unwrap();
    let text = grown(&["F1", "F2"]).replacen(
        "follower = \"F2\"\nleader",
        "id = \"F1:L1\"\nfollower = \"F2\"\nleader",
        1,
    );
    // F1's subscription gets the default id F1:L1 too: make it another.
    let text = text.replacen(
        "[[subscriptions]]\nfollower = \"F1\"",
        "[[subscriptions]]\nid = \"first\"\nfollower = \"F1\"",
        1,
    );
    let b = load_str(&text, Path::new("b.toml")).unwrap();
    let err = b.arranged_after(&a).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`F1:L1`") && msg.contains("cannot move") && msg.contains("new id"),
        "{msg}"
    );
}

#[test]
fn removed_is_refused_in_a_file() {
    check(
        "[[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = \"100\"\nmode = \"proportional\"\nremoved = true\n",
        &[(6, "written by the engine")],
    );
    check(
        "[[followers]]\nid = \"F2\"\nequity = \"1\"\nremoved = true\n",
        &[(4, "delete it from the file and reload")],
    );
}

#[test]
fn a_journal_model_with_a_subscription_in_force_of_a_removed_follower_is_refused() {
    let a = load_str(&grown(&["F1", "F2"]), Path::new("a.toml")).unwrap();
    let mut model = load_str(&grown(&["F1"]), Path::new("b.toml"))
        .unwrap()
        .arranged_after(&a)
        .unwrap();
    // What arranged_after never writes: F2 removed, its subscription in force.
    model.subscriptions[1].removed = false;
    let text = model.model_toml().unwrap();
    let err = fillcast_engine::config::load_model(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("subscription `F2:L1` is in force but its follower `F2` was removed"),
        "{err}"
    );
}

/// A config with one venue (`sim`, and `other` when `two_venues`) and `symbols`,
/// each `(name, lot_size, venue)`, and F1 trading `f1_symbols` (all when empty).
fn with_symbols(symbols: &[(&str, &str, &str)], two_venues: bool, f1_symbols: &[&str]) -> Config {
    let mut s = String::from("[[venues]]\nname = \"sim\"\nkind = \"sim\"\n");
    if two_venues {
        s.push_str("\n[[venues]]\nname = \"other\"\nkind = \"sim\"\n");
    }
    for (name, lot, venue) in symbols {
        s.push_str(&format!(
            "\n[[symbols]]\nname = \"{name}\"\nlot_size = \"{lot}\"\ntick_size = \"0.1\"\nvenue = \"{venue}\"\n"
        ));
    }
    s.push_str("\n[[leaders]]\nid = \"L1\"\nequity = \"1000000\"\n");
    s.push_str("\n[[followers]]\nid = \"F1\"\nequity = \"10000\"\n");
    if !f1_symbols.is_empty() {
        let list: Vec<String> = f1_symbols.iter().map(|n| format!("\"{n}\"")).collect();
        s.push_str(&format!("symbols = [{}]\n", list.join(", ")));
    }
    s.push_str("\n[[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = \"100\"\nmode = \"proportional\"\n");
    load_str(&s, Path::new("symbols.toml")).unwrap_or_else(|e| panic!("{e}\n{s}"))
}

fn symbol_ids(c: &Config) -> Vec<(String, bool)> {
    ids(&c.symbols, |s| (s.name.clone(), s.removed))
}

/// Issue 12: symbols are laid out like the other items. A known symbol keeps its
/// index whatever the file's order, a dropped one stays as a tombstone that no
/// new input finds by name, a new one comes last, and one that comes back
/// returns to its place.
#[test]
fn a_reload_lays_symbols_out_after_the_model_in_force() {
    let a = with_symbols(
        &[
            ("BTC", "0.001", "sim"),
            ("ETH", "0.01", "sim"),
            ("SOL", "1", "sim"),
        ],
        false,
        &[],
    );
    // ETH dropped, DOGE added, the rest reordered.
    let b = with_symbols(
        &[
            ("SOL", "1", "sim"),
            ("DOGE", "1", "sim"),
            ("BTC", "0.001", "sim"),
        ],
        false,
        &[],
    );
    let arranged = b.arranged_after(&a).unwrap();
    let own = |s: &str| (s.to_string(), false);
    let gone = |s: &str| (s.to_string(), true);
    assert_eq!(
        symbol_ids(&arranged),
        vec![own("BTC"), gone("ETH"), own("SOL"), own("DOGE")]
    );
    let u = Universe::from_config(&arranged).unwrap();
    assert_eq!(
        u.symbol_in_force("ETH"),
        None,
        "a removed symbol takes no input"
    );
    assert_eq!(u.symbol("ETH").map(|s| s.0), Some(1), "but keeps its place");
    assert!(u.symbols[1].removed);
    assert_eq!(u.symbol_in_force("DOGE").map(|s| s.0), Some(3));
    assert_eq!(u.symbol_in_force("SOL").map(|s| s.0), Some(2));
    // F1 trades every symbol: the tombstone included, harmlessly (no input).
    assert_eq!(u.followers[0].allowed, vec![true; 4]);
    // The journal's loader takes the tombstone back, at the same revision.
    let back = fillcast_engine::config::load_model(&arranged.model_toml().unwrap()).unwrap();
    assert_eq!(symbol_ids(&back), symbol_ids(&arranged));
    assert_eq!(Universe::from_config(&back).unwrap().revision, u.revision);
    let diff = fillcast_engine::config::model_diff(&a, &arranged);
    for line in ["symbols[ETH]: removed", "symbols[DOGE]: added"] {
        assert!(diff.contains(&line.to_string()), "{line} not in {diff:?}");
    }
    // The same file again: nothing changes.
    let again = b.arranged_after(&arranged).unwrap();
    assert_eq!(Universe::from_config(&again).unwrap().revision, u.revision);
    // ETH back, listed last: in its old place.
    let c = with_symbols(
        &[
            ("BTC", "0.001", "sim"),
            ("SOL", "1", "sim"),
            ("DOGE", "1", "sim"),
            ("ETH", "0.01", "sim"),
        ],
        false,
        &[],
    );
    let returned = c.arranged_after(&arranged).unwrap();
    assert_eq!(
        symbol_ids(&returned),
        vec![own("BTC"), own("ETH"), own("SOL"), own("DOGE")]
    );
    let diff = fillcast_engine::config::model_diff(&arranged, &returned);
    assert!(
        diff.contains(&"symbols[ETH]: added back".to_string()),
        "{diff:?}"
    );
}

/// A symbol that keeps its name keeps its units and its venue: the journal
/// holds its quantities as whole lots (and prices as ticks), and its positions
/// at its venue. The error names the symbol and both values.
#[test]
fn a_symbol_whose_lot_size_tick_size_or_venue_changed_is_refused() {
    let a = with_symbols(
        &[("BTC", "0.001", "sim"), ("ETH", "0.01", "sim")],
        true,
        &[],
    );
    let lot = with_symbols(&[("BTC", "0.01", "sim"), ("ETH", "0.01", "sim")], true, &[]);
    let msg = lot.arranged_after(&a).unwrap_err().to_string();
    assert!(
        msg.contains("symbol `BTC`: lot_size was 0.001 and is now 0.01"),
        "{msg}"
    );
    let mut tick = a.clone();
    tick.symbols[1].tick_size = "0.05".parse().unwrap();
    let msg = tick.arranged_after(&a).unwrap_err().to_string();
    assert!(
        msg.contains("symbol `ETH`: tick_size was 0.1 and is now 0.05"),
        "{msg}"
    );
    let venue = with_symbols(
        &[("BTC", "0.001", "sim"), ("ETH", "0.01", "other")],
        true,
        &[],
    );
    let msg = venue.arranged_after(&a).unwrap_err().to_string();
    assert!(
        msg.contains("symbol `ETH` routed its orders to venue `sim` and now names venue `other`"),
        "{msg}"
    );
    // The same size written another way is the same size.
    let mut same = a.clone();
    same.symbols[0].lot_size = "0.0010".parse().unwrap();
    assert!(same.arranged_after(&a).is_ok());
    // A removed symbol that comes back with other units: refused too (its kept
    // positions are in the old lots).
    let without = with_symbols(&[("ETH", "0.01", "sim")], true, &[]);
    let arranged = without.arranged_after(&a).unwrap();
    let msg = lot.arranged_after(&arranged).unwrap_err().to_string();
    assert!(msg.contains("lot_size was 0.001 and is now 0.01"), "{msg}");
}

/// Venues stay as they are for a journal's life (a venue's gateway connects at
/// start): a new symbol must route to one the engine has.
#[test]
fn a_new_symbol_on_a_venue_the_engine_lacks_is_refused_and_venues_do_not_change() {
    let a = with_symbols(&[("BTC", "0.001", "sim")], false, &[]);
    let b = with_symbols(&[("BTC", "0.001", "sim"), ("SOL", "1", "other")], true, &[]);
    let msg = b.arranged_after(&a).unwrap_err().to_string();
    assert!(
        msg.contains("symbol `SOL` routes to venue `other`, which the engine in force does not have (its venues: sim)"),
        "{msg}"
    );
    // A venue added with no symbol on it, or one taken away: refused as well.
    let c = with_symbols(&[("BTC", "0.001", "sim")], true, &[]);
    let msg = c.arranged_after(&a).unwrap_err().to_string();
    assert!(
        msg.contains("the venues changed from [sim] to [sim, other]"),
        "{msg}"
    );
    let msg = a.arranged_after(&c).unwrap_err().to_string();
    assert!(
        msg.contains("the venues changed from [sim, other] to [sim]"),
        "{msg}"
    );
}

#[test]
fn removed_is_refused_on_a_symbol_in_a_file() {
    check(
        "[[symbols]]\nname = \"ETH\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"sim\"\nremoved = true\n",
        &[(6, "to remove symbol `ETH`, delete it from the file and reload")],
    );
}

/// A journal's model whose follower or leader in force names a removed symbol:
/// `arranged_after` never writes one (a file naming a symbol it does not define
/// is refused), so a journal that holds one is not the engine's.
#[test]
fn a_journal_model_with_a_symbols_list_in_force_naming_a_removed_symbol_is_refused() {
    let a = with_symbols(
        &[("BTC", "0.001", "sim"), ("ETH", "0.01", "sim")],
        false,
        &["ETH"],
    );
    let mut model = with_symbols(&[("BTC", "0.001", "sim")], false, &["BTC"])
        .arranged_after(&a)
        .unwrap();
    assert!(model.symbols[1].removed);
    // Not what arranged_after writes: F1 in force, still naming ETH.
    model.followers[0].symbols = Some(vec!["BTC".into(), "ETH".into()]);
    model.leaders[0].profile = Some(fillcast_engine::config::LeaderProfile {
        symbols: Some(vec!["ETH".into()]),
        max_position_notional: None,
    });
    let err = fillcast_engine::config::load_model(&model.model_toml().unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("follower `F1` is in force but its symbol `ETH` was removed")
            && msg.contains("leader `L1` is in force but its symbol `ETH` was removed"),
        "{msg}"
    );
    // Removed with it, the follower may keep its list.
    model.followers[0].removed = true;
    model.subscriptions[0].removed = true;
    model.leaders[0].profile = None;
    assert!(fillcast_engine::config::load_model(&model.model_toml().unwrap()).is_ok());
}
