//! The venue and source tables as the engine's loader reads them with
//! `GatewayKinds`: every bad table gives errors that name the file, the line and
//! what was expected, and what loads builds.
//!
//! As in the engine's `config_load`: `check(toml, &[(line, "expected substring")])`
//! puts `BASE` in front of the case (lines count from the case's first line) and the
//! errors must be exactly those, in order; `check_raw` takes the whole file.

use fillcast_engine::config::{load_str_with, load_with, struct_fields, ConfigErrors, VenueConfig};
use fillcast_engine::model::Universe;
use fillcast_gateways::config::{
    FixVenueSettings, GatewayKinds, SimVenueConfig, SourceSettings, VenueKind, VenueSettings,
};
use std::path::{Path, PathBuf};

const BASE: &str = r#"[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The file the inline cases are "in": relative paths are taken from its folder.
fn inline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inline.toml")
}

fn errors(text: &str) -> ConfigErrors {
    match load_str_with(text, &inline_path(), &GatewayKinds) {
        Ok(cfg) => panic!("expected errors, loaded: {cfg:?}"),
        Err(e) => e,
    }
}

fn check_raw(text: &str, expected: &[(usize, &str)]) {
    check_lines(&errors(text), 0, expected);
}

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

#[test]
fn example_configs_load_and_build() {
    for name in ["example.toml", "run-file.toml", "demo.toml", "fix.toml"] {
        let path = repo().join("config").join(name);
        let cfg = load_with(&path, &GatewayKinds).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        let plain = fillcast_engine::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg, plain, "{name}: the kinds only check");
        let u = Universe::from_config(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(u.revision, Universe::from_config(&plain).unwrap().revision);
        for v in &cfg.venues {
            VenueSettings::of(v).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for source in &cfg.sources {
            match SourceSettings::of(source).unwrap_or_else(|e| panic!("{name}: {e}")) {
                SourceSettings::File { path, .. } => {
                    assert!(path.is_file(), "{name}: {} resolved", path.display())
                }
                SourceSettings::Synthetic { .. } => {}
                SourceSettings::Fix { store, .. } => {
                    assert!(store.is_some(), "{name}: the store resolved")
                }
                SourceSettings::Binance { vault, .. } => {
                    assert!(vault.is_absolute(), "{name}: the vault resolved")
                }
            }
        }
    }
}

#[test]
fn example_and_reference_document_every_key() {
    let example =
        std::fs::read_to_string(repo().join("config/example.toml")).expect("config/example.toml");
    let reference = std::fs::read_to_string(repo().join("docs/CONFIG.md")).expect("docs/CONFIG.md");
    let mut keys: Vec<&str> = Vec::new();
    for f in [
        struct_fields::<VenueSettings>(),
        struct_fields::<SimVenueConfig>(),
        struct_fields::<FixVenueSettings>(),
    ] {
        assert!(!f.is_empty());
        keys.extend(f);
    }
    keys.extend(["kind", "path", "fills", "seed", "rate_per_sec"]);
    keys.extend([
        "sender_comp_id",
        "target_comp_id",
        "heartbeat_s",
        "reset_on_logon",
        "store",
        "accounts",
    ]);
    keys.extend([
        "leaders",
        "vault",
        "rest_url",
        "stream_url",
        "api_url",
        "recv_window_ms",
        "keep_alive_min",
        "reconnect_before_h",
        "equity_asset",
        "ws_api_url",
    ]);
    for key in keys {
        let documented = example.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.starts_with(&format!("{key} =")) || l.starts_with(&format!("[venues.{key}]"))
        });
        assert!(documented, "config/example.toml does not show `{key}`");
        assert!(
            reference.contains(&format!("`{key}`")),
            "docs/CONFIG.md does not document `{key}`"
        );
    }
}

#[test]
fn wrong_types_point_at_the_value() {
    check_raw(
        "[[venues]]\nname = \"v\"\nkind = \"sim\"\nsim.seed = \"x\"\n",
        &[(4, "`sim.seed`: invalid type: string \"x\", expected u64")],
    );
}

#[test]
fn unknown_keys_point_at_the_key() {
    check_raw(
        "[[sources]]\nkind = \"file\"\npth = \"x\"\n",
        &[(1, "unknown field `pth`")],
    );
    check_raw(
        "[[venues]]\nname = \"v\"\nkind = \"sim\"\nadress = \"x\"\n",
        &[(
            4,
            "unknown field `adress`, expected one of `name`, `kind`, `address`",
        )],
    );
}

#[test]
fn unknown_enum_values_are_errors() {
    check_raw(
        "[[sources]]\nkind = \"kafka\"\n",
        &[(
            2,
            "`kind`: unknown variant `kafka`, expected one of `file`, `synthetic`, `fix`",
        )],
    );
    check_raw(
        "[[venues]]\nname = \"v\"\nkind = \"ouch\"\n",
        &[(
            3,
            "`kind`: unknown variant `ouch`, expected one of `sim`, `sim_remote`, `fix`, `binance`",
        )],
    );
}

#[test]
fn missing_required_fields_point_at_the_item() {
    check_raw(
        "[[sources]]\npath = \"x\"\n",
        &[(1, "missing field `kind`")],
    );
    check_raw(
        "[[venues]]\nkind = \"sim\"\n",
        &[(1, "missing field `name`")],
    );
}

/// A table of the wrong shape stops the load before the checks, as any other item
/// does, and each bad item is reported once.
#[test]
fn bad_tables_are_reported_with_the_other_items() {
    check_raw(
        r#"[[venues]]
name = "v"
kind = "sim"
sim = { seed = -1 }

[[symbols]]
name = "A"
lot_size = "x"
tick_size = "1"
venue = "v"

[[sources]]
kind = "synthetic"
fills = 0
"#,
        &[
            (4, "`sim.seed`: invalid value: integer `-1`, expected u64"),
            (8, "`lot_size`: invalid value"),
        ],
    );
    check_raw(
        "[[venues]]\nname = \"v\"\nkind = \"ouch\"\n[engine]\nmax_retries = 0\n",
        &[(3, "unknown variant `ouch`")],
    );
}

#[test]
fn venue_and_source_settings_are_checked() {
    check(
        r#"[[venues]]
name = "sim2"
kind = "sim"
sim = { reject_ppm = 1000001, partial_fill_ppm = 1000000 }

[[sources]]
kind = "file"
path = "no-such-fills.jsonl"

[[sources]]
kind = "file"
path = "."

[[sources]]
kind = "synthetic"
rate_per_sec = 0

[[venues]]
name = "remote"
kind = "sim_remote"
address = "127.0.0.1:1"
heartbeat_ms = 500
down_after_ms = 100
"#,
        &[
            (
                4,
                "`reject_ppm` is in parts per million: at most 1000000, got 1000001",
            ),
            (8, "no-such-fills.jsonl` does not exist"),
            (12, "is not a file"),
            (16, "`rate_per_sec` must be positive"),
            (
                23,
                "`heartbeat_ms` must be at least 1 and `down_after_ms` at least `heartbeat_ms`; got 500 and 100",
            ),
        ],
    );
    check(
        "[[venues]]\nname = \"r\"\nkind = \"sim_remote\"\n\n[[venues]]\nname = \"l\"\nkind = \"sim\"\naddress = \"x:1\"\n",
        &[
            (3, "a `sim_remote` venue needs `address`"),
            (8, "`address` is only used by kinds `sim_remote` and `fix`"),
        ],
    );
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let text = format!("{BASE}[[sources]]\nkind = \"file\"\npath = \"config.rs\"\n");
    let cfg = load_str_with(&text, &inline_path(), &GatewayKinds).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        SourceSettings::of(&cfg.sources[0]),
        Ok(SourceSettings::File {
            path: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config.rs"),
            rate_per_sec: None,
        })
    );
}

#[test]
fn settings_read_back_from_a_loaded_config() {
    let text = "[[venues]]\nname = \"r\"\nkind = \"sim_remote\"\naddress = \"127.0.0.1:9\"\n\
                heartbeat_ms = 100\n[venues.sim]\nseed = 3\n";
    let cfg = load_str_with(text, &inline_path(), &GatewayKinds).unwrap_or_else(|e| panic!("{e}"));
    let v = VenueSettings::of(&cfg.venues[0]).expect("reads");
    assert_eq!(v.kind, VenueKind::SimRemote);
    assert_eq!(v.address.as_deref(), Some("127.0.0.1:9"));
    assert_eq!((v.heartbeat_ms, v.down_after_ms), (100, 1_000));
    assert_eq!(
        v.sim,
        SimVenueConfig {
            seed: 3,
            ..SimVenueConfig::default()
        }
    );
    let built = VenueConfig {
        name: "x".into(),
        kind: "carrier_pigeon".into(),
        settings: Default::default(),
        dir: Default::default(),
    };
    assert!(VenueSettings::of(&built)
        .unwrap_err()
        .to_string()
        .contains("unknown variant `carrier_pigeon`"));
}

#[test]
fn a_fix_source_is_checked_key_by_key() {
    check(
        "[[sources]]\nkind = \"fix\"\naddress = \"nowhere\"\nsender_comp_id = \"FILL CAST\"\ntarget_comp_id = \"VENUE\"\nheartbeat_s = 0\naccounts = { \"\" = \"L1\" }\n",
        &[
            (3, "`address` must be host:port, not `nowhere`"),
            (4, "`sender_comp_id` must be printable ASCII without spaces"),
            (6, "`heartbeat_s` must be 1 to 3600 seconds, not 0"),
            (7, "an account must not be empty"),
            (7, "account `` maps to leader `L1`, which this config does not have"),
        ],
    );
    check(
        "[[sources]]\nkind = \"fix\"\naddress = \"127.0.0.1:0\"\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\n",
        &[(3, "`address` must be host:port")],
    );
    check(
        "[[sources]]\nkind = \"fix\"\naddress = \"127.0.0.1:9879\"\nsender_comp_id = \"A\"\n",
        &[(1, "missing field `target_comp_id`")],
    );
    // A good one loads, its store beside the file.
    let good = format!(
        "{BASE}[[sources]]\nkind = \"fix\"\naddress = \"127.0.0.1:9879\"\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\n"
    );
    let cfg = fillcast_engine::config::load_str_with(&good, &repo().join("x.toml"), &GatewayKinds)
        .expect("a good fix source loads");
    match SourceSettings::of(&cfg.sources[0]).expect("reads") {
        SourceSettings::Fix {
            store,
            heartbeat_s,
            reset_on_logon,
            ..
        } => {
            assert_eq!(store, Some(repo().join("fix-A-B.seqs")));
            assert_eq!((heartbeat_s, reset_on_logon), (30, false));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_fix_venue_is_checked_key_by_key() {
    check(
        "[[venues]]\nname = \"x\"\nkind = \"fix\"\n",
        &[
            (3, "a `fix` venue needs `address`"),
            (3, "a `fix` venue needs a `[venues.fix]` table"),
        ],
    );
    check(
        "[[venues]]\nname = \"x\"\nkind = \"fix\"\naddress = \"nowhere\"\n[venues.fix]\nsender_comp_id = \"FILL CAST\"\ntarget_comp_id = \"VENUE\"\nheartbeat_s = 0\naccounts = { F1 = \"A 1\" }\nrate_per_sec = 0\nrecover_timeout_ms = 0\nreject_codes = { \"99\" = \"margin\" }\n",
        &[
            (4, "`address` must be host:port, not `nowhere`"),
            (6, "`sender_comp_id` must be printable ASCII without spaces"),
            (8, "`heartbeat_s` must be 1 to 3600 seconds, not 0"),
            (9, "follower `F1`: its account `A 1` must be printable"),
            (9, "`accounts` names follower `F1`, which this config does not have"),
            (10, "`rate_per_sec` must be positive"),
            (11, "`recover_timeout_ms` must be 1 to 600000, not 0"),
            (12, "code 99: `margin` is not a reject policy"),
        ],
    );
    // Code 5 keeps FIX's meaning (a status request's unknown order); the
    // engine's own reasons are not the venue's to give.
    check(
        "[[venues]]\nname = \"x\"\nkind = \"fix\"\naddress = \"h:1\"\n[venues.fix]\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nreject_codes = { \"5\" = \"other\" }\n",
        &[(8, "`5` is not an OrdRejReason code")],
    );
    check(
        "[[venues]]\nname = \"x\"\nkind = \"fix\"\naddress = \"h:1\"\n[venues.fix]\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nreject_codes = { \"7\" = \"venue_down\" }\n",
        &[(8, "`venue_down` is not a reject policy")],
    );
    check(
        "[[venues]]\nname = \"x\"\nkind = \"fix\"\naddress = \"h:1\"\n[venues.fix]\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nreject_codes = { \"3\" = \"other\", \"03\" = \"transient\" }\n",
        &[(8, "code 3 is given twice")],
    );
    // A session that resets on every logon would lose what the venue sent while
    // fillcast was away: not offered.
    check(
        "[[venues]]\nname = \"x\"\nkind = \"fix\"\naddress = \"h:1\"\n[venues.fix]\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nreset_on_logon = true\n",
        &[(8, "`fix`: unknown field `reset_on_logon`")],
    );
    check(
        "[[venues]]\nname = \"x\"\nkind = \"sim\"\n[venues.fix]\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\n",
        &[(4, "`[venues.fix]` is only used by kind `fix`")],
    );
    // A good one loads, its store beside the file, its codes read, its
    // accounts of followers the config has.
    let good = format!(
        "{BASE}[[venues]]\nname = \"x\"\nkind = \"fix\"\naddress = \"127.0.0.1:9878\"\n[venues.fix]\nsender_comp_id = \"A\"\ntarget_comp_id = \"B\"\nreject_codes = {{ \"99\" = \"insufficient_margin\" }}\naccounts = {{ F1 = \"ACC-1\" }}\n\n[[followers]]\nid = \"F1\"\nequity = \"1000\"\n"
    );
    let cfg = fillcast_engine::config::load_str_with(&good, &repo().join("x.toml"), &GatewayKinds)
        .expect("a good fix venue loads");
    let v = VenueSettings::of(&cfg.venues[1]).expect("reads");
    let fix = v.fix.as_ref().expect("[venues.fix]");
    assert_eq!(fix.store_in(&v.dir), repo().join("fix-A-B.seqs"));
    assert_eq!(
        (fix.heartbeat_s, fix.rate_per_sec, fix.recover_timeout_ms),
        (30, None, 10_000)
    );
    assert_eq!(
        fix.reject_codes().unwrap(),
        [(99, fillcast_engine::event::RejectReason::InsufficientMargin)]
            .into_iter()
            .collect()
    );
}

#[test]
fn a_binance_source_is_checked_naming_each_bad_value() {
    check_raw(
        "[[sources]]\nkind = \"binance\"\nleaders = {}\n",
        &[(3, "a `binance` source needs `leaders`")],
    );
    check_raw(
        "[[sources]]\nkind = \"binance\"\nleaders = { L1 = \"bad name\" }\n\
         rest_url = \"ftp://x\"\nstream_url = \"https://x\"\nrecv_window_ms = 0\n\
         keep_alive_min = 60\nreconnect_before_h = 24\n",
        &[
            (3, "`bad name` is not a key name"),
            (4, "`ftp://x` is not a https:// or http:// URL"),
            (5, "`https://x` is not a wss:// or ws:// URL"),
            (6, "`recv_window_ms` must be 1 to 60000"),
            (7, "`keep_alive_min` must be 1 to 59"),
            (8, "`reconnect_before_h` must be 1 to 23"),
        ],
    );
}

#[test]
fn a_binance_venue_is_checked_naming_each_bad_value() {
    check_raw(
        "[[venues]]\nname = \"b\"\nkind = \"binance\"\n",
        &[(3, "a `binance` venue needs a `[venues.binance]` table")],
    );
    check_raw(
        "[[venues]]\nname = \"b\"\nkind = \"binance\"\naddress = \"x:1\"\n[venues.binance]\n\
         accounts = { F1 = \"no good\" }\nws_api_url = \"https://x\"\nrecv_window_ms = 70000\n",
        &[
            (4, "`address` is only used by"),
            (6, "`no good` is not a key name"),
            (7, "`https://x` is not a wss:// or ws:// URL"),
            (8, "`recv_window_ms` must be 1 to 60000"),
        ],
    );
    check_raw(
        "[[venues]]\nname = \"b\"\nkind = \"binance\"\n[venues.binance]\n\
         accounts = { F1 = \"k\" }\norder_limits = []\n\
         request_weight = { count = 0, window_ms = 60000 }\npacing_margin_ms = 20000\n",
        &[
            (6, "`order_limits` needs at least one limit"),
            (7, "request_weight: `count` 0 must be 1 to 1048576"),
            (8, "`pacing_margin_ms` must be 0 to 10000"),
        ],
    );
    check_raw(
        "[[venues]]\nname = \"b\"\nkind = \"binance\"\n[venues.binance]\n\
         accounts = { F1 = \"k\" }\n\
         order_limits = [{ count = 300, window_ms = 10000 }, { count = 5, window_ms = 0 }]\n",
        &[(6, "order limit 2: `window_ms` 0 must be 1 to 86400000")],
    );
}

#[test]
fn a_binance_venues_limits_and_a_sources_marks_read_with_binances_defaults() {
    let with = |extra: &str| {
        format!(
            "{BASE}[[venues]]\nname = \"b\"\nkind = \"binance\"\n[venues.binance]\naccounts = {{ F1 = \"k\" }}\n{extra}\n[[followers]]\nid = \"F1\"\nequity = \"1000\"\n"
        )
    };
    let load = |text: &str| {
        let cfg =
            fillcast_engine::config::load_str_with(text, &repo().join("x.toml"), &GatewayKinds)
                .expect("loads");
        VenueSettings::of(&cfg.venues[1])
            .expect("reads")
            .binance
            .expect("[venues.binance]")
    };
    let b = load(&with(""));
    assert_eq!(
        b.order_limits
            .iter()
            .map(|l| (l.count, l.window_ms))
            .collect::<Vec<_>>(),
        [(300, 10_000), (1_200, 60_000)]
    );
    assert_eq!(
        (b.request_weight.count, b.request_weight.window_ms),
        (2_400, 60_000)
    );
    assert_eq!(b.pacing_margin_ms, 100);
    assert!(b.check_permissions);
    let b = load(&with(
        "order_limits = [{ count = 40, window_ms = 2000 }]\ncheck_permissions = false",
    ));
    assert_eq!(b.order_limits.len(), 1);
    assert_eq!(b.order_limits[0].limit().window.0, 2_000_000_000);
    assert!(!b.check_permissions);
}

#[test]
fn a_binance_sources_mark_prices_take_three_values_and_nothing_else() {
    check_raw(
        "[[sources]]\nkind = \"binance\"\nleaders = { L1 = \"k\" }\nmark_prices = \"2s\"\n",
        &[(1, "unknown variant `2s`, expected one of `off`, `3s`, `1s`")],
    );
    check_raw(
        "[[sources]]\nkind = \"binance\"\nleaders = { L1 = \"k\" }\nmarket_url = \"https://x\"\n",
        &[(4, "`https://x` is not a wss:// or ws:// URL")],
    );
}
