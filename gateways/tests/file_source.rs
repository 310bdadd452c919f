//! The `file` source: good files give exact events, every kind of bad line is
//! rejected with its line number and a clear message, and hostile input never panics.

use fillcast_engine::event::{FeedEvent, FillKind, LeaderFill};
use fillcast_engine::ids::{fnv1a, leader_event_key};
use fillcast_engine::model::{FollowerIdx, LeaderIdx, Side, SymbolIdx};
use fillcast_engine::port::{Source, SourceError, SourcePoll};
use fillcast_engine::units::{FundingRate, Lots, Money, Nanos, Ticks};
use fillcast_gateways::file::{FileSource, FileSourceStats, LINE_BYTES_MAX};
use proptest::prelude::*;
use std::io::Cursor;
use std::path::PathBuf;

const NOW: Nanos = Nanos(42);

/// What one line turned into: an event or a rejection, with the line number.
#[derive(Debug)]
enum Outcome {
    Event(u64, FeedEvent),
    Rejected(SourceError),
}

/// Drains a source, with a bound so a bug cannot hang the test.
fn drain(source: &mut FileSource) -> Vec<Outcome> {
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        match source.next(NOW) {
            SourcePoll::Event(e) => out.push(Outcome::Event(source.lines_read(), e)),
            SourcePoll::Rejected(err) => out.push(Outcome::Rejected(err)),
            SourcePoll::Idle => panic!("a file source is never idle"),
            SourcePoll::Finished => {
                assert_eq!(source.next(NOW), SourcePoll::Finished, "Finished is final");
                return out;
            }
        }
    }
    panic!("source did not finish");
}

fn from_bytes(bytes: Vec<u8>) -> FileSource {
    FileSource::from_reader("mem.jsonl", Cursor::new(bytes), crate::common::universe())
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[allow(clippy::too_many_arguments)]
fn fill(
    leader: u32,
    event_id: &str,
    symbol: u16,
    side: Side,
    qty: i64,
    price: i64,
    ts: u64,
    order: Option<(&str, i64)>,
) -> FeedEvent {
    let leader_id = ["L1", "L2"][leader as usize];
    FeedEvent::LeaderFill(LeaderFill {
        leader: LeaderIdx(leader),
        symbol: SymbolIdx(symbol),
        side,
        qty: Lots(qty),
        price: Ticks(price),
        event_key: leader_event_key(leader_id, event_id),
        order_key: order.map_or(0, |(id, _)| fnv1a(id.as_bytes())),
        order_qty: Lots(order.map_or(0, |(_, q)| q)),
        venue_ts: Nanos(ts),
        recv_ts: NOW,
        kind: FillKind::Trade,
    })
}

#[test]
fn good_file_gives_exact_events() {
    let path = data("leader_fills.jsonl");
    let mut source = FileSource::open(&path, crate::common::universe()).expect("fixture opens");
    assert_eq!(source.name(), path.display().to_string());
    let got = drain(&mut source);
    let expected = [
        (
            1,
            fill(
                0,
                "e1",
                0,
                Side::Buy,
                500,
                650_001,
                1_732_060_800_000_000_000,
                Some(("o1", 1000)),
            ),
        ),
        (
            2,
            fill(
                0,
                "BTCUSDT:109100866",
                0,
                Side::Buy,
                40,
                420_880,
                1_705_385_954_298_000_000,
                Some(("336829446", 100)),
            ),
        ),
        (
            4,
            fill(
                1,
                "0ab1bdf7-4219-438b-b30a-32ec863018f7",
                1,
                Side::Sell,
                500,
                321_055,
                1_746_270_400_353_000_000,
                Some(("9aac161b-8ed6-450d-9cab-c5cc67c21784", 500)),
            ),
        ),
        (
            5,
            fill(
                0,
                "1109765720343214",
                2,
                Side::Buy,
                535,
                78_751,
                1_789_407_361_368_000_000,
                None,
            ),
        ),
        (
            6,
            fill(
                0,
                "e2",
                1,
                Side::Sell,
                12_000,
                350_000,
                1_732_060_800_000_000_001,
                None,
            ),
        ),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (outcome, (line, event)) in got.iter().zip(expected) {
        match outcome {
            Outcome::Event(l, e) => {
                assert_eq!(*l, line);
                assert_eq!(*e, event, "line {line}");
            }
            Outcome::Rejected(err) => panic!("unexpected rejection {err}"),
        }
    }
    assert_eq!(
        source.stats(),
        FileSourceStats {
            lines: 6,
            blank: 1,
            events: 5,
            rejected: 0
        }
    );
}

#[test]
fn open_error_names_the_file() {
    let err = match FileSource::open("/nonexistent/fills.jsonl", crate::common::universe()) {
        Ok(_) => panic!("opened a missing file"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/fills.jsonl"), "{msg}");
}

/// A good line with `field` replaced by `value` (raw JSON), or removed when `None`.
fn line_with(field: &str, value: Option<&str>) -> String {
    let fields = [
        ("leader", "\"L1\""),
        ("event_id", "\"x\""),
        ("symbol", "\"BTCUSDT\""),
        ("side", "\"buy\""),
        ("qty", "\"0.5\""),
        ("price", "\"65000.1\""),
        ("ts", "1732060800000000000"),
    ];
    let body: Vec<String> = fields
        .iter()
        .filter_map(|&(k, v)| {
            if k == field {
                value.map(|v| format!("\"{k}\":{v}"))
            } else {
                Some(format!("\"{k}\":{v}"))
            }
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Each case is one line and what must come of it: `Ok` for an event, `Skip` for a
/// silently skipped blank line, `Err(substring)` for a rejection whose message
/// contains the substring. Event ids are unique per line unless a case is about
/// duplicates.
enum Want {
    Ok,
    Skip,
    Err(&'static str),
}

fn cases() -> Vec<(Vec<u8>, Want)> {
    use Want::*;
    let good = |id: &str| {
        format!(
            r#"{{"leader":"L1","event_id":"{id}","symbol":"BTCUSDT","side":"buy","qty":"0.5","price":"65000.1","ts":1732060800000000000,"order_id":"o1","order_qty":"1.0"}}"#
        )
    };
    let with = |field: &str, value: &str, id: &str| {
        line_with(field, Some(value))
            .replace("\"event_id\":\"x\"", &format!("\"event_id\":\"{id}\""))
    };
    let mut long = good("long").into_bytes();
    long.extend(vec![b' '; LINE_BYTES_MAX]);
    let mut bad_utf8 = good("utf8").into_bytes();
    bad_utf8.splice(10..10, [0xff, 0xfe]);
    let mut nul = good("nul").into_bytes();
    nul.insert(5, 0);
    let text = |s: String, w: Want| (s.into_bytes(), w);
    vec![
        text(good("e1"), Ok),
        text(r#"{"leader":"L1","#.into(), Err("malformed JSON")),
        text(line_with("qty", None), Err("missing field `qty`")),
        text(with("leader", "\"L9\"", "a1"), Err("unknown leader `L9`")),
        text(with("symbol", "\"DOGEUSDT\"", "a2"), Err("unknown symbol `DOGEUSDT`")),
        text(with("side", "\"hold\"", "a3"), Err("field `side` must be `buy` or `sell`, got `hold`")),
        text(with("side", "\"SELL\"", "a4"), Ok),
        text(with("qty", "\"0\"", "a5"), Err("qty must be positive, got 0")),
        text(with("qty", "\"-0.5\"", "a6"), Err("qty must be positive, got -0.5")),
        text(with("qty", "\"0.0005\"", "a7"), Err("qty 0.0005 is not a multiple of the lot size 0.001 of BTCUSDT")),
        text(with("price", "\"abc\"", "a8"), Err("field `price`: `abc` is not a decimal number")),
        text(with("price", "\"-1\"", "a9"), Err("price must be positive, got -1")),
        text(with("price", "\"65000.15\"", "a10"), Err("price 65000.15 is not a multiple of the tick size 0.1 of BTCUSDT")),
        text(good("a11").replace("\"1.0\"", "\"0.1\""), Err("order_qty 0.1 is less than qty 0.5")),
        text(good("e1"), Err("duplicate event_id `e1` for leader `L1` (first on line 1)")),
        text(with("qty", "0.5", "a12"), Err("field `qty` must be a decimal string like \"0.5\", got a JSON number")),
        text(with("price", "65000", "a13"), Err("field `price` must be a decimal string")),
        text("[1,2]".into(), Err("expected a JSON object")),
        text(String::new(), Skip),
        text(" \t ".into(), Skip),
        (bad_utf8, Err("invalid UTF-8 at byte 11")),
        (nul, Err("malformed JSON")),
        (long, Err("line is longer than 65536 bytes")),
        text(good("a14").replace(",\"order_qty\":\"1.0\"", ""), Err("`order_id` given without `order_qty`")),
        text(good("a15").replace("\"order_id\":\"o1\",", ""), Err("`order_qty` given without `order_id`")),
        text(with("ts", "1.7e18", "a16"), Err("field `ts` must be an integer of nanoseconds since the epoch, got a fractional number")),
        text(with("ts", "-5", "a17"), Err("field `ts` must not be negative")),
        text(line_with("ts", None), Err("missing field `ts`")),
        text(line_with("event_id", Some("7")), Err("field `event_id` must be a string, got a JSON number")),
        text(line_with("event_id", Some("\"\"")), Err("field `event_id` is empty")),
        text(good("a19").replace("\"qty\":\"0.5\"", "\"qty\":\"0.5\",\"qty\":\"0.6\""), Err("duplicate field `qty`")),
        text(with("qty", "\"1e3\"", "a20"), Err("`1e3` is not a decimal number")),
        text(with("qty", "\"1_000\"", "a21"), Err("`1_000` is not a decimal number")),
        text(with("side", "null", "a22"), Err("field `side` must be a string, got null")),
        // The same event id from another leader is another event.
        text(good("e1").replace("\"L1\"", "\"L2\""), Ok),
        text(good("crlf") + "\r", Ok),
        text(with("qty", "\"0.500\"", "a23").replace("\"0.500\"", "\"0.5000000000000000000000000001\""), Err("is not a multiple of the lot size")),
        text(with("qty", "\"9999999999999999999999999999999\"", "a24"), Err("is not a decimal number")),
        text("{}".into(), Err("missing field `leader`")),
        text(good("a25").replace("\"BTCUSDT\"", "\"btcusdt\""), Err("unknown symbol `btcusdt`")),
        // Who made the fill's order: a name of `FillKind`, or absent (`trade`).
        text(with("side", "\"sell\",\"kind\":\"liquidation\"", "k1"), Ok),
        text(with("side", "\"sell\",\"kind\":null", "k2"), Ok),
        text(with("side", "\"sell\",\"kind\":\"margin_call\"", "k3"), Err("field `kind` must be `trade`, `liquidation`, `adl`, `settlement` or `unknown`, got `margin_call`")),
        text(with("side", "\"sell\",\"kind\":\"LIQUIDATION\"", "k4"), Err("field `kind` must be `trade`, `liquidation`")),
        text(with("side", "\"sell\",\"kind\":\"\"", "k5"), Err("got ``")),
        text(with("side", "\"sell\",\"kind\":3", "k6"), Err("field `kind` must be a string, got a JSON number")),
        text(with("side", "\"sell\",\"kind\":[\"adl\"]", "k7"), Err("field `kind` must be a string, got an array")),
        text(with("side", "\"sell\",\"kind\":\"adl\",\"kind\":\"trade\"", "k8"), Err("duplicate field `kind`")),
        // The last line has no newline and is cut short.
        text(r#"{"leader":"L1","event_id":"e9""#.into(), Err("truncated last line (no newline at end of file): malformed JSON")),
    ]
}

#[test]
fn bad_lines_are_rejected_with_line_and_reason() {
    let cases = cases();
    let mut file = Vec::new();
    for (i, (line, _)) in cases.iter().enumerate() {
        file.extend_from_slice(line);
        if i + 1 < cases.len() {
            file.push(b'\n');
        }
    }
    // Through a real file, as `open` reads it.
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad_lines.jsonl");
    std::fs::write(&path, &file).expect("write temp file");
    let mut source = FileSource::open(&path, crate::common::universe()).expect("opens");
    let got = drain(&mut source);

    let mut got = got.iter();
    let (mut events, mut rejected, mut blank) = (0, 0, 0);
    for (i, (_, want)) in cases.iter().enumerate() {
        let line = i as u64 + 1;
        match want {
            Want::Skip => blank += 1,
            Want::Ok => {
                events += 1;
                match got.next() {
                    Some(Outcome::Event(l, _)) => assert_eq!(*l, line),
                    other => panic!("line {line}: wanted an event, got {other:?}"),
                }
            }
            Want::Err(needle) => {
                rejected += 1;
                match got.next() {
                    Some(Outcome::Rejected(err)) => {
                        assert_eq!(err.line, line, "{err}");
                        assert_eq!(err.origin, path.display().to_string());
                        assert!(
                            err.message.contains(needle),
                            "line {line}: `{}` does not contain `{needle}`",
                            err.message
                        );
                    }
                    other => panic!("line {line}: wanted `{needle}`, got {other:?}"),
                }
            }
        }
    }
    assert!(got.next().is_none());
    assert_eq!(
        source.stats(),
        FileSourceStats {
            lines: cases.len() as u64,
            blank,
            events,
            rejected
        }
    );
}

#[test]
fn a_huge_line_is_skipped_without_losing_the_next() {
    let mut bytes = vec![b'x'; 3 * 1024 * 1024];
    bytes.push(b'\n');
    bytes.extend_from_slice(line_with("event_id", Some("\"after\"")).as_bytes());
    bytes.push(b'\n');
    let mut source = from_bytes(bytes);
    let got = drain(&mut source);
    assert!(
        matches!(&got[..], [Outcome::Rejected(e), Outcome::Event(2, _)] if e.line == 1 && e.message.contains("longer than")),
        "{got:?}"
    );
}

#[test]
fn a_huge_last_line_without_newline_is_one_rejection() {
    let mut source = from_bytes(vec![0u8; 200 * 1024]);
    let got = drain(&mut source);
    assert!(
        matches!(&got[..], [Outcome::Rejected(e)] if e.line == 1 && e.message.contains("longer than")),
        "{got:?}"
    );
}

#[test]
fn the_line_limit_is_exact() {
    let padded = |len: usize, ending: &str| {
        let mut line = line_with("event_id", Some(&format!("\"{len}{}\"", ending.len())));
        line.push_str(&" ".repeat(len - line.len()));
        line + ending
    };
    let file = [
        padded(LINE_BYTES_MAX, "\n"),
        padded(LINE_BYTES_MAX, "\r\n"),
        padded(LINE_BYTES_MAX + 1, "\n"),
        padded(LINE_BYTES_MAX + 1, "\r\n"),
        padded(LINE_BYTES_MAX + 2, "\n"),
    ]
    .concat();
    let got = drain(&mut from_bytes(file.into_bytes()));
    let accepted: Vec<bool> = got
        .iter()
        .map(|o| matches!(o, Outcome::Event(..)))
        .collect();
    assert_eq!(accepted, [true, true, false, false, false], "{got:?}");
}

#[test]
fn a_complete_last_line_without_newline_is_accepted() {
    let mut source = from_bytes(line_with("ts", Some("1")).into_bytes());
    let got = drain(&mut source);
    assert!(matches!(&got[..], [Outcome::Event(1, _)]), "{got:?}");
}

#[test]
fn empty_input_finishes_at_once() {
    let mut source = from_bytes(Vec::new());
    assert_eq!(source.next(NOW), SourcePoll::Finished);
    assert_eq!(source.stats(), FileSourceStats::default());
}

#[test]
fn a_small_dedup_window_forgets_old_events() {
    let lines: Vec<String> = ["a", "b", "a", "c", "a"]
        .iter()
        .map(|id| line_with("event_id", Some(&format!("\"{id}\""))))
        .collect();
    let mut source = from_bytes(lines.join("\n").into_bytes()).with_dedup_window(2);
    let got = drain(&mut source);
    // a, b, a (duplicate), c (forgets a), a (new again within the window of 2).
    let kinds: Vec<bool> = got
        .iter()
        .map(|o| matches!(o, Outcome::Event(..)))
        .collect();
    assert_eq!(kinds, [true, true, false, true, true]);
}

/// A reader that fails after some bytes: the error is reported and the source ends.
struct Failing(Cursor<Vec<u8>>);

impl std::io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::other("disk on fire")),
            n => Ok(n),
        }
    }
}

#[test]
fn a_read_error_is_reported_and_ends_the_source() {
    let good = line_with("event_id", Some("\"ok\"")) + "\n";
    let reader = std::io::BufReader::new(Failing(Cursor::new(good.into_bytes())));
    let mut source = FileSource::from_reader("failing", reader, crate::common::universe());
    let got = drain(&mut source);
    assert!(
        matches!(&got[..], [Outcome::Event(1, _), Outcome::Rejected(e)] if e.line == 2 && e.message.contains("disk on fire")),
        "{got:?}"
    );
}

fn good_line() -> Vec<u8> {
    line_with("event_id", Some("\"p\"")).into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random bytes (with newlines, NULs and invalid UTF-8) never panic, and every
    /// non-blank line is either an event or a rejection.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut source = from_bytes(bytes);
        let got = drain(&mut source);
        let s = source.stats();
        prop_assert_eq!(s.events + s.rejected, got.len() as u64);
        prop_assert_eq!(s.events + s.rejected + s.blank, s.lines);
    }

    /// A good line damaged by byte edits, cuts and insertions never panics.
    #[test]
    fn damaged_lines_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut line = good_line();
        for (at, byte, op) in edits {
            let i = at.index(line.len().max(1)).min(line.len());
            match op {
                0 if i < line.len() => line[i] = byte,
                1 => line.insert(i, byte),
                _ => line.truncate(i),
            }
        }
        let mut source = from_bytes(line);
        let got = drain(&mut source);
        prop_assert!(got.len() <= source.stats().lines as usize);
    }

    /// Any decimal string that parses is converted exactly or rejected, never rounded.
    #[test]
    fn quantities_are_exact_or_rejected(int in 0u64..1_000_000, frac in "[0-9]{0,30}") {
        let qty = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
        let line = line_with("qty", Some(&format!("\"{qty}\"")));
        let mut source = from_bytes(line.into_bytes());
        match source.next(NOW) {
            SourcePoll::Event(FeedEvent::LeaderFill(f)) => {
                let exact: rust_decimal::Decimal = qty.parse().expect("accepted qty parses");
                prop_assert_eq!(rust_decimal::Decimal::from(f.qty.0) * rust_decimal_macros::dec!(0.001), exact);
            }
            SourcePoll::Rejected(_) => {}
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}

/// Issue 15: a fill says who made its order (`kind`, every name of
/// `FillKind`); the fill is the same whatever the kind, which it carries.
#[test]
fn a_fills_kind_is_read_and_carried_and_defaults_to_trade() {
    use fillcast_engine::codes::Coded;
    let plain = match one(line_with("event_id", Some("\"k\""))) {
        Outcome::Event(_, FeedEvent::LeaderFill(f)) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!(plain.kind, FillKind::Trade);
    for kind in FillKind::ALL {
        let line = line_with("event_id", Some("\"k\"")).replace(
            "\"side\"",
            &format!("\"kind\":\"{}\",\"side\"", kind.name()),
        );
        match one(line) {
            Outcome::Event(_, FeedEvent::LeaderFill(f)) => {
                assert_eq!(
                    f,
                    LeaderFill {
                        kind: *kind,
                        ..plain
                    },
                    "{kind:?}"
                );
            }
            other => panic!("{kind:?}: {other:?}"),
        }
    }
    // The error lists every name there is.
    let listed = FillKind::ALL
        .iter()
        .map(|k| format!("`{}`", k.name()))
        .collect::<Vec<_>>();
    let (head, last) = listed.split_at(listed.len() - 1);
    let list = format!("{} or {}", head.join(", "), last[0]);
    let bad = line_with("event_id", Some("\"k\"")).replace("\"side\"", "\"kind\":\"x\",\"side\"");
    match one(bad) {
        Outcome::Rejected(e) => assert!(
            e.message.contains(&format!("must be {list}, got `x`")),
            "{}",
            e.message
        ),
        other => panic!("{other:?}"),
    }
    // Marks and equities have no kind: one given there is not read.
    let mark = r#"{"type":"mark","symbol":"BTCUSDT","price":"65000.1","ts":1,"kind":"adl"}"#;
    assert!(matches!(
        one(mark.to_string()),
        Outcome::Event(_, FeedEvent::MarkPrice { .. })
    ));
}

/// The one outcome of a single line.
fn one(line: String) -> Outcome {
    let mut bytes = line.into_bytes();
    bytes.push(b'\n');
    let mut got = drain(&mut from_bytes(bytes));
    assert_eq!(got.len(), 1, "{got:?}");
    got.pop().unwrap()
}

#[test]
fn regression_deeply_nested_line_overflowed_the_io_threads_stack() {
    // Issue 10, finding 7: a line nested ~9,300 deep aborted the engine (SIGABRT on
    // the I/O thread's stack), and every restart again. Run on a small stack, as
    // the I/O thread is, with a nesting far deeper than the finding's.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let deep = format!(
                "{{\"x\":{}{},{}",
                "[".repeat(30_000),
                "]".repeat(30_000),
                &line_with("", None)[1..]
            );
            let r = one(deep);
            assert!(
                matches!(&r, Outcome::Rejected(e) if e.line == 1 && e.message.contains("nested more than 32 deep")),
                "{r:?}"
            );
            // Brackets inside strings are not nesting; a little real nesting is fine.
            let ok = format!(
                "{{\"note\":\"{}\",\"extra\":[[{{\"a\":[1]}}]],{}",
                "[{".repeat(1000),
                &line_with("", None)[1..]
            );
            assert!(matches!(one(ok), Outcome::Event(..)));
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}

#[test]
fn regression_huge_quantities_and_far_timestamps_are_refused_at_the_edge() {
    // Issue 10, finding 7: two buy fills of 2^62 lots wrapped the leader's position;
    // ts = 2^63 was journaled and then stopped the sidecar for good.
    let r = one(line_with("qty", Some("\"1000000000000\"")));
    assert!(
        matches!(&r, Outcome::Rejected(e) if e.message.contains("is more than 281474976710656 lots")),
        "{r:?}"
    );
    let r = one(line_with("ts", Some("9223372036854775808")));
    assert!(
        matches!(&r, Outcome::Rejected(e) if e.message.contains("after 2200-01-01")),
        "{r:?}"
    );
    let r = one(line_with("ts", Some("\"18446744073709551615\"")));
    assert!(matches!(&r, Outcome::Rejected(_)), "{r:?}");
    // The bounds themselves pass.
    assert!(matches!(
        one(line_with("ts", Some("7258118400000000000"))),
        Outcome::Event(..)
    ));
}

/// Resuming at any position the source gave while reading goes on with exactly the
/// outcomes a straight read has after it, rejected lines and line numbers included.
#[test]
fn resume_at_every_given_position_continues_exactly() {
    let mut bytes = Vec::new();
    for i in 0..6 {
        bytes.extend(line_with("event_id", Some(&format!("\"r{i}\""))).as_bytes());
        bytes.push(b'\n');
        if i == 2 {
            bytes.extend(b"{not json\n\n");
        }
    }
    let describe = |o: &Outcome| match o {
        Outcome::Event(line, e) => format!("{line} {e:?}"),
        Outcome::Rejected(e) => format!("{} {}", e.line, e.message),
    };
    let mut whole = from_bytes(bytes.clone());
    let mut positions = vec![whole.position().unwrap()];
    let mut all = Vec::new();
    loop {
        match whole.next(NOW) {
            SourcePoll::Event(e) => all.push(Outcome::Event(whole.lines_read(), e)),
            SourcePoll::Rejected(err) => all.push(Outcome::Rejected(err)),
            _ => break,
        }
        positions.push(whole.position().unwrap());
    }
    let all: Vec<String> = all.iter().map(describe).collect();
    assert_eq!(all.len(), 7);
    for (k, &pos) in positions.iter().enumerate() {
        let mut s = from_bytes(bytes.clone());
        s.resume(pos).expect("a position the source gave");
        let rest: Vec<String> = drain(&mut s).iter().map(describe).collect();
        assert_eq!(rest, all[k..], "resumed at byte {pos}");
    }
}

#[test]
fn resume_past_the_end_or_inside_a_line_is_refused() {
    let line = good_line();
    let mut bytes = line.clone();
    bytes.push(b'\n');
    let len = bytes.len() as u64;
    let err = from_bytes(bytes.clone()).resume(len + 10).unwrap_err();
    assert!(err.to_string().contains("fewer than"), "{err}");
    let err = from_bytes(bytes).resume(3).unwrap_err();
    assert!(err.to_string().contains("not where a line starts"), "{err}");
}

/// The rejection message of a single line, or a panic naming what it gave.
fn rejected(line: &str) -> String {
    match one(line.to_string()) {
        Outcome::Rejected(e) => e.message,
        other => panic!("{line}: expected a rejection, got {other:?}"),
    }
}

#[test]
fn mark_and_equity_lines_become_their_events() {
    let mark = r#"{"type":"mark","symbol":"ETHUSDT","price":"3150.25","ts":1732060800000000000}"#;
    match one(mark.to_string()) {
        Outcome::Event(1, e) => assert_eq!(
            e,
            FeedEvent::MarkPrice {
                symbol: SymbolIdx(1),
                price: Ticks(315_025),
                ts: Nanos(1_732_060_800_000_000_000),
            }
        ),
        other => panic!("{other:?}"),
    }
    let equity = r#"{"type":"equity","leader":"L2","equity":"240000.5","ts":"17"}"#;
    match one(equity.to_string()) {
        Outcome::Event(1, e) => assert_eq!(
            e,
            FeedEvent::LeaderEquity {
                leader: LeaderIdx(1),
                equity: Money(24_000_050_000_000),
                ts: Nanos(17),
            }
        ),
        other => panic!("{other:?}"),
    }
    let follower = r#"{"type":"equity","follower":"F2","equity":"9500","ts":18}"#;
    match one(follower.to_string()) {
        Outcome::Event(1, e) => assert_eq!(
            e,
            FeedEvent::FollowerEquity {
                follower: FollowerIdx(1),
                equity: Money(950_000_000_000),
                ts: Nanos(18),
            }
        ),
        other => panic!("{other:?}"),
    }
    // `"type":"fill"` is a fill, as a line without `type` is.
    let mut typed = String::from_utf8(good_line()).unwrap();
    typed.insert_str(1, r#""type":"fill","#);
    assert!(matches!(
        one(typed),
        Outcome::Event(1, FeedEvent::LeaderFill(_))
    ));
}

#[test]
fn bad_mark_and_equity_lines_are_rejected_with_their_reason() {
    let cases = [
        (
            r#"{"type":"quote","symbol":"BTCUSDT"}"#,
            "field `type` must be `fill`, `mark`, `equity` or `funding`, got `quote`",
        ),
        (
            r#"{"type":7,"symbol":"BTCUSDT"}"#,
            "field `type` must be a string",
        ),
        (
            r#"{"type":"mark","symbol":"DOGE","price":"1","ts":1}"#,
            "unknown symbol `DOGE`",
        ),
        (
            r#"{"type":"mark","symbol":"BTCUSDT","price":"1.05","ts":1}"#,
            "not a multiple of the tick size",
        ),
        (
            r#"{"type":"mark","symbol":"BTCUSDT","price":"0","ts":1}"#,
            "price must be positive",
        ),
        (
            r#"{"type":"mark","symbol":"BTCUSDT","price":"65000.1"}"#,
            "missing field `ts`",
        ),
        (
            r#"{"type":"mark","price":"65000.1","ts":1}"#,
            "missing field `symbol`",
        ),
        (
            r#"{"type":"equity","leader":"L9","equity":"1","ts":1}"#,
            "unknown leader `L9`",
        ),
        (
            r#"{"type":"equity","leader":"L1","equity":"-1","ts":1}"#,
            "equity must not be negative",
        ),
        (
            r#"{"type":"equity","leader":"L1","equity":"0.000000001","ts":1}"#,
            "more than 8 decimal places",
        ),
        (
            r#"{"type":"equity","leader":"L1","equity":1000,"ts":1}"#,
            "must be a decimal string",
        ),
        (
            r#"{"type":"equity","leader":"L1","ts":1}"#,
            "missing field `equity`",
        ),
        (
            r#"{"type":"equity","follower":"F9","equity":"1","ts":1}"#,
            "unknown follower `F9`",
        ),
        (
            r#"{"type":"equity","leader":"L1","follower":"F1","equity":"1","ts":1}"#,
            "names a leader or a follower, not both",
        ),
        (
            r#"{"type":"equity","follower":"F1","equity":"-5","ts":1}"#,
            "equity must not be negative",
        ),
        (
            r#"{"type":"equity","equity":"5","ts":1}"#,
            "missing field `leader`",
        ),
        (
            r#"{"type":"mark","type":"mark","symbol":"BTCUSDT","price":"1","ts":1}"#,
            "duplicate field `type`",
        ),
    ];
    for (line, want) in cases {
        let got = rejected(line);
        assert!(got.contains(want), "{line}: {got}");
    }
}

/// Issue 12: once a reload removes a symbol, its fills and marks are refused,
/// each with a reason that says so (not "unknown"), while the other symbols'
/// lines are taken; before it, the same lines were taken.
#[test]
fn a_symbol_a_reload_removed_is_refused_from_then_on() {
    let fill = |event: &str| {
        format!(
            r#"{{"leader":"L1","event_id":"{event}","symbol":"BTC","side":"buy","qty":"0.5","price":"65000","ts":1}}"#
        )
    };
    let lines = [
        fill("r1"),
        fill("r2"),
        r#"{"type":"mark","symbol":"BTC","price":"65001","ts":2}"#.to_string(),
        line_with("event_id", Some("\"r3\"")),
    ];
    let mut source = from_bytes((lines.join("\n") + "\n").into_bytes());
    assert!(matches!(source.next(NOW), SourcePoll::Event(_)), "in force");
    let cfg = crate::common::config();
    let mut without = cfg.clone();
    without.symbols.retain(|s| s.name != "BTC");
    let arranged = without.arranged_after(&cfg).unwrap();
    let u = std::sync::Arc::new(fillcast_engine::model::Universe::from_config(&arranged).unwrap());
    assert!(u.symbols[2].removed);
    source.universe_changed(&u);
    let got = drain(&mut source);
    let removed = "symbol `BTC` was removed by a reload: its fills and marks are no longer taken";
    match &got[..] {
        [Outcome::Rejected(a), Outcome::Rejected(b), Outcome::Event(_, FeedEvent::LeaderFill(f))] =>
        {
            assert_eq!((a.line, a.message.as_str()), (2, removed));
            assert_eq!((b.line, b.message.as_str()), (3, removed));
            assert_eq!(f.symbol, SymbolIdx(0));
        }
        other => panic!("{other:?}"),
    }
}

/// A funding line as DESIGN.md and docs/CONFIG.md show it, with `rate` and
/// `mark_price` (and `ts`) as given.
fn funding_line(rate: &str, mark_price: &str) -> String {
    format!(
        r#"{{"type":"funding","symbol":"BTCUSDT","rate":{rate},"mark_price":{mark_price},"ts":1732089600000000000}}"#
    )
}

/// Issue 16: a funding line is a `FeedEvent::Funding` of the symbol, its rate
/// exact in 10^-8 and its mark price in ticks.
#[test]
fn funding_lines_become_funding_events() {
    let cases = [
        (r#""0.0001""#, r#""65000.1""#, 10_000, 650_001),
        (r#""0.00010000""#, r#""65000.1""#, 10_000, 650_001),
        (r#""-0.00012345""#, r#""65000""#, -12_345, 650_000),
        (r#""0""#, r#""0.1""#, 0, 1),
        (r#""-0""#, r#""0.1""#, 0, 1),
        (r#""1""#, r#""65000.1""#, 100_000_000, 650_001),
        (r#""-1.00000000""#, r#""65000.1""#, -100_000_000, 650_001),
    ];
    for (rate, price, rate_e8, ticks) in cases {
        let line = funding_line(rate, price);
        match one(line.clone()) {
            Outcome::Event(1, e) => assert_eq!(
                e,
                FeedEvent::Funding {
                    symbol: SymbolIdx(0),
                    rate: FundingRate(rate_e8),
                    price: Ticks(ticks),
                    ts: Nanos(1_732_089_600_000_000_000),
                },
                "{line}"
            ),
            other => panic!("{line}: {other:?}"),
        }
    }
    // Another symbol, `ts` as a string of digits, unknown fields ignored.
    let eth = r#"{"type":"funding","symbol":"ETHUSDT","rate":"0.000375","mark_price":"3150.25","ts":"17","next_funding_ts":1}"#;
    match one(eth.to_string()) {
        Outcome::Event(1, e) => assert_eq!(
            e,
            FeedEvent::Funding {
                symbol: SymbolIdx(1),
                rate: FundingRate(37_500),
                price: Ticks(315_025),
                ts: Nanos(17),
            }
        ),
        other => panic!("{other:?}"),
    }
}

/// Every kind of bad funding line is rejected naming its line and what was
/// expected; the lines around it are still taken.
#[test]
fn bad_funding_lines_are_rejected_with_line_and_reason() {
    let long = format!(r#""0.{}1""#, "0".repeat(40));
    let cases: Vec<(String, &str)> = vec![
        (
            funding_line(r#""0.000000001""#, r#""65000.1""#),
            "rate 0.000000001 has more than 8 decimal places",
        ),
        (
            funding_line(r#""0.00012345678""#, r#""65000.1""#),
            "has more than 8 decimal places",
        ),
        (
            funding_line(r#""1.00000001""#, r#""65000.1""#),
            "rate 1.00000001 is beyond ±1",
        ),
        (
            funding_line(r#""-2""#, r#""65000.1""#),
            "rate -2 is beyond ±1",
        ),
        (
            funding_line(r#""99999999999999999999999999""#, r#""65000.1""#),
            "is beyond ±1",
        ),
        (funding_line(&long, r#""65000.1""#), "`rate`"),
        (
            funding_line("0.0001", r#""65000.1""#),
            "field `rate` must be a decimal string like \"0.5\", got a JSON number",
        ),
        (
            funding_line(r#""1e-4""#, r#""65000.1""#),
            "field `rate`: `1e-4` is not a decimal number",
        ),
        (
            funding_line(r#""0.01%""#, r#""65000.1""#),
            "is not a decimal number",
        ),
        (
            funding_line("null", r#""65000.1""#),
            "field `rate` must be a decimal string like \"0.5\", got null",
        ),
        (
            r#"{"type":"funding","symbol":"BTCUSDT","mark_price":"1","ts":1}"#.into(),
            "missing field `rate`",
        ),
        (
            funding_line(r#"{"rate":"0.1"}"#, r#""65000.1""#),
            "got an object",
        ),
        (
            funding_line(r#""\u001b[2J""#, r#""65000.1""#),
            "is not a decimal number",
        ),
        (
            funding_line(r#""0.0001""#, r#""65000.15""#),
            "mark_price 65000.15 is not a multiple of the tick size 0.1 of BTCUSDT",
        ),
        (
            funding_line(r#""0.0001""#, r#""0""#),
            "mark_price must be positive",
        ),
        (
            funding_line(r#""0.0001""#, r#""-65000.1""#),
            "mark_price must be positive",
        ),
        (
            funding_line(r#""0.0001""#, "65000.1"),
            "field `mark_price` must be a decimal string",
        ),
        (
            r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","price":"65000.1","ts":1}"#
                .into(),
            "missing field `mark_price`",
        ),
        (
            r#"{"type":"funding","symbol":"DOGEUSDT","rate":"0.0001","mark_price":"1","ts":1}"#
                .into(),
            "unknown symbol `DOGEUSDT`",
        ),
        (
            r#"{"type":"funding","rate":"0.0001","mark_price":"1","ts":1}"#.into(),
            "missing field `symbol`",
        ),
        (
            r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"1"}"#.into(),
            "missing field `ts`",
        ),
        (
            r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"1","ts":-5}"#
                .into(),
            "field `ts` must not be negative",
        ),
        (
            r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"1","ts":9999999999999999999}"#
                .into(),
            "is after 2200-01-01",
        ),
        (
            r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","rate":"0.0002","mark_price":"1","ts":1}"#
                .into(),
            "duplicate field `rate`",
        ),
        (
            r#"{"type":"Funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"1","ts":1}"#
                .into(),
            "must be `fill`, `mark`, `equity` or `funding`, got `Funding`",
        ),
        (
            r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"1","ts":1"#
                .into(),
            "malformed JSON",
        ),
        (r#"["funding"]"#.into(), "expected a JSON object"),
    ];
    // Each bad line between two good ones: the rejection names its line (2),
    // and the good lines on either side are taken.
    let good = funding_line(r#""0.0001""#, r#""65000.1""#);
    for (bad, want) in &cases {
        let text = format!("{good}\n{bad}\n{good}\n");
        let got = drain(&mut from_bytes(text.into_bytes()));
        match &got[..] {
            [Outcome::Event(1, FeedEvent::Funding { .. }), Outcome::Rejected(e), Outcome::Event(3, FeedEvent::Funding { .. })] =>
            {
                assert_eq!((e.line, e.origin.as_str()), (2, "mem.jsonl"), "{bad}");
                assert!(
                    e.message.contains(want),
                    "{bad}: `{}` lacks `{want}`",
                    e.message
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

/// A funding line cut anywhere (the file's last line, without its newline) and
/// an oversized one are each one rejection that says so, never a panic and
/// never an event.
#[test]
fn truncated_and_oversized_funding_lines_are_rejected() {
    let good = funding_line(r#""-0.00012345""#, r#""65000.1""#);
    let want = FeedEvent::Funding {
        symbol: SymbolIdx(0),
        rate: FundingRate(-12_345),
        price: Ticks(650_001),
        ts: Nanos(1_732_089_600_000_000_000),
    };
    for cut in 1..good.len() {
        let got = drain(&mut from_bytes(good.as_bytes()[..cut].to_vec()));
        match &got[..] {
            [Outcome::Rejected(e)] => {
                assert_eq!(e.line, 1);
                assert!(
                    e.message.starts_with("truncated last line"),
                    "{cut}: {}",
                    e.message
                );
            }
            other => panic!("{cut}: {other:?}"),
        }
    }
    // The whole line without its newline is taken.
    match &drain(&mut from_bytes(good.clone().into_bytes()))[..] {
        [Outcome::Event(1, e)] => assert_eq!(*e, want),
        other => panic!("{other:?}"),
    }
    // Padded past the limit: one rejection, and the next line is read.
    let padded = good.replacen(
        r#""type""#,
        &format!(r#""pad":"{}","type""#, "x".repeat(LINE_BYTES_MAX)),
        1,
    );
    let got = drain(&mut from_bytes(format!("{padded}\n{good}\n").into_bytes()));
    match &got[..] {
        [Outcome::Rejected(e), Outcome::Event(2, e2)] => {
            assert_eq!(e.line, 1);
            assert!(e.message.contains("longer than"), "{}", e.message);
            assert_eq!(*e2, want);
        }
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any rate text is an exact funding rate within ±1, or a rejection that
    /// names `rate`: never a rounded one.
    #[test]
    fn funding_rates_are_exact_or_rejected(int in 0u64..3, frac in "[0-9]{0,12}", neg in any::<bool>()) {
        let text = format!("{}{int}{}{frac}", if neg { "-" } else { "" }, if frac.is_empty() { "" } else { "." });
        let line = funding_line(&format!("\"{text}\""), r#""65000.1""#);
        let exact = rust_decimal::Decimal::from_str_exact(&text).unwrap();
        match one(line) {
            Outcome::Event(_, FeedEvent::Funding { rate, .. }) => {
                prop_assert_eq!(rate.to_decimal(), exact.normalize());
                prop_assert!(exact.abs() <= rust_decimal::Decimal::ONE);
                prop_assert!(exact.normalize().scale() <= 8);
            }
            Outcome::Rejected(e) => {
                prop_assert!(e.message.contains("rate"), "{}", e.message);
                prop_assert!(exact.abs() > rust_decimal::Decimal::ONE || exact.normalize().scale() > 8);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}
