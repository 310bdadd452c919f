//! The golden journal: a journal written by this schema, kept in the repository
//! (`tests/data/golden-journal/`) with what each record means
//! (`tests/data/golden-journal.jsonl`). Every build must read it back record by
//! record to the same meaning, and write the same entries to the same bytes: a
//! renumbered enum code, a moved field or a changed layout fails here instead of
//! silently changing what existing journals say. A deliberate change of schema
//! bumps `record::SCHEMA` and regenerates the fixture with `FILLCAST_BLESS=1 cargo
//! test -p fillcast-journal --test golden`.

use fillcast_engine::codes::Coded;
use fillcast_engine::config::load_str;
use fillcast_engine::event::{
    Command, ExecKind, ExecReport, FeedEvent, FillKind, FollowerOrder, LeaderFill, OrderType,
    RejectReason, NO_SENDER,
};
use fillcast_engine::model::{FollowerIdx, LeaderIdx, Side, SubIdx, SymbolIdx, Universe, VenueIdx};
use fillcast_engine::order::Oddity;
use fillcast_engine::outputs::{Decision, DecisionStatus, Notice, Reason, SyncReason};
use fillcast_engine::port::{JournalEntry, JournalSink};
use fillcast_engine::units::{FundingRate, Lots, Money, Nanos, Ticks};
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, entry_json, Kind};
use fillcast_journal::stage::JournalStage;
use fillcast_journal::writer::{JournalOptions, JournalWriter};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The golden journal's config: frozen with the fixture, so other tests may use it
/// as a small model that never changes.
pub(crate) const CONFIG: &str = r#"
[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[leaders]]
id = "L1"
equity = "100000"

[[followers]]
id = "F1"
equity = "50000"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "20000"
mode = "proportional"
"#;

/// One entry of every kind, with every code of every coded enum somewhere.
fn entries() -> Vec<JournalEntry> {
    let mut e = Vec::new();
    let mut ts = 1_732_060_800_000_000_000u64;
    let mut t = || {
        ts += 1_000;
        Nanos(ts)
    };
    for (i, &side) in Side::ALL.iter().enumerate() {
        e.push(JournalEntry::Feed(FeedEvent::LeaderFill(LeaderFill {
            leader: LeaderIdx(0),
            symbol: SymbolIdx(0),
            side,
            qty: Lots(1_500 + i as i64),
            price: Ticks(650_001),
            event_key: 0x1234_5678_9abc_def0 + i as u64,
            order_key: 0x0fed_cba9,
            order_qty: Lots(3_000),
            venue_ts: t(),
            recv_ts: t(),
            kind: FillKind::Trade,
        })));
    }
    e.push(JournalEntry::Feed(FeedEvent::MarkPrice {
        symbol: SymbolIdx(0),
        price: Ticks(650_100),
        ts: t(),
    }));
    e.push(JournalEntry::Feed(FeedEvent::LeaderEquity {
        leader: LeaderIdx(0),
        equity: Money(10_000_000_000_000),
        ts: t(),
    }));
    for cmd in [
        Command::PauseSubscription(SubIdx(0)),
        Command::ResumeSubscription(SubIdx(0)),
        Command::StopSubscription(SubIdx(0)),
        Command::PauseLeader(LeaderIdx(0)),
        Command::ResumeLeader(LeaderIdx(0)),
        Command::KillSwitch,
        Command::Resync(SubIdx(0)),
    ] {
        e.push(JournalEntry::Feed(FeedEvent::Command {
            cmd,
            ts: t(),
            by: NO_SENDER,
        }));
    }
    for (i, &order_type) in OrderType::ALL.iter().enumerate() {
        let order = FollowerOrder {
            id: 0x0000_0100_0000_0001 + i as u64,
            sub: SubIdx(0),
            follower: FollowerIdx(0),
            symbol: SymbolIdx(0),
            side: Side::ALL[i % 2],
            qty: Lots(300),
            order_type,
            limit: Ticks(653_250),
            reduce_only: i == 1,
            leader_event_key: 0x1234_5678_9abc_def0,
            ts: t(),
            ..FollowerOrder::default()
        };
        // An order alone, and an order with its decision (one `order_decision` record).
        e.push(JournalEntry::Order(order));
    }
    let resyncs = [
        SyncReason::None,
        SyncReason::Unfilled,
        SyncReason::Capacity,
        SyncReason::VenueDown,
        SyncReason::Command,
        SyncReason::Rejected(RejectReason::InsufficientMargin),
    ];
    for (i, &reason) in <Reason as Coded>::ALL
        .iter()
        .filter(|r| !ADDED_LATER_REASON.contains(r))
        .enumerate()
    {
        e.push(JournalEntry::Decision(Decision {
            event_key: 0x1234_5678_9abc_def0,
            sub: SubIdx(0),
            symbol: SymbolIdx(0),
            target: Lots(300 - i as i64),
            delta: Lots(-(i as i64)),
            sent: Lots(i as i64),
            status: DecisionStatus::ALL[i % DecisionStatus::ALL.len()],
            reason,
            revision: 0x0bad_f00d,
            resync: resyncs[i % resyncs.len()],
        }));
    }
    for (i, &kind) in ExecKind::ALL
        .iter()
        .enumerate()
        .filter(|(_, k)| !ADDED_LATER_EXEC.contains(k))
    {
        for (j, &reject) in RejectReason::ALL.iter().enumerate() {
            if kind != ExecKind::Rejected && j > 0 {
                continue;
            }
            e.push(JournalEntry::Exec(ExecReport {
                order_id: 0x0000_0100_0000_0001,
                kind,
                qty: Lots(100 + i as i64),
                price: Ticks(650_002),
                trade_id: 77 + j as u64,
                fee: Money(-12_345),
                reject,
                venue_ts: t(),
                recv_ts: t(),
            }));
        }
    }
    for &oddity in Oddity::ALL
        .iter()
        .filter(|o| !ADDED_LATER_ODDITY.contains(o))
    {
        e.push(JournalEntry::Notice(Notice::Odd {
            order_id: 9,
            oddity,
        }));
    }
    for &reason in <RejectReason as Coded>::ALL {
        e.push(JournalEntry::Notice(Notice::Rejected {
            order_id: 9,
            reason,
            retried: reason == RejectReason::Transient,
        }));
    }
    e.push(JournalEntry::Notice(Notice::Stopped {
        sub: SubIdx(0),
        reason: Reason::TotalStopLoss,
    }));
    for &why in &resyncs[1..] {
        e.push(JournalEntry::Notice(Notice::OutOfSync {
            sub: SubIdx(0),
            symbol: SymbolIdx(0),
            why,
        }));
    }
    e.push(JournalEntry::Notice(Notice::VenueLink {
        venue: VenueIdx(0),
        up: false,
    }));
    e.push(JournalEntry::Notice(Notice::VenueAlarm {
        venue: VenueIdx(0),
        down_ns: 10_000_000_000,
        stop: true,
    }));
    e.push(JournalEntry::Feed(FeedEvent::Tick { ts: t() }));
    e.push(JournalEntry::Feed(FeedEvent::Venue {
        venue: VenueIdx(0),
        up: true,
        ts: t(),
    }));
    e.push(JournalEntry::Feed(FeedEvent::SourceCursor {
        source: 0,
        pos: 123_456,
    }));
    // Codes added after the fixture was first written go last, so every record
    // before them keeps its place and its bytes.
    for &kind in ADDED_LATER_EXEC {
        e.push(JournalEntry::Exec(ExecReport {
            order_id: 0x0000_0100_0000_0001,
            kind,
            qty: Lots(-300),
            venue_ts: t(),
            recv_ts: t(),
            ..ExecReport::default()
        }));
    }
    for &oddity in ADDED_LATER_ODDITY {
        e.push(JournalEntry::Notice(Notice::Odd {
            order_id: 9,
            oddity,
        }));
    }
    e.push(JournalEntry::Decision(Decision {
        event_key: 0x1234_5678_9abc_def0,
        sub: SubIdx(0),
        symbol: SymbolIdx(0),
        target: Lots(300),
        delta: Lots(-3),
        sent: Lots(-3),
        status: DecisionStatus::Sent,
        reason: Reason::None,
        revision: 0x0bad_f00d,
        resync: SyncReason::VenueHeldOther,
    }));
    e.push(JournalEntry::Notice(Notice::OutOfSync {
        sub: SubIdx(0),
        symbol: SymbolIdx(0),
        why: SyncReason::VenueHeldOther,
    }));
    for (i, &cmd) in ADDED_LATER_COMMANDS.iter().enumerate() {
        // The first without a sender (the old record), the rest with one.
        let by = if i == 0 { NO_SENDER } else { 1000 + i as u32 };
        e.push(JournalEntry::Feed(FeedEvent::Command { cmd, ts: t(), by }));
    }
    e.push(JournalEntry::Feed(FeedEvent::FollowerEquity {
        follower: FollowerIdx(0),
        equity: Money(5_000_000_000_000),
        ts: t(),
    }));
    for &reason in ADDED_LATER_REASON {
        e.push(JournalEntry::Decision(Decision {
            event_key: 0x1234_5678_9abc_def1,
            sub: SubIdx(0),
            symbol: SymbolIdx(0),
            status: DecisionStatus::Skipped,
            reason,
            revision: 0x0bad_f00d,
            ..Decision::default()
        }));
    }
    // Fills that are not ordinary trades, each with its kind (one record kind
    // for all: a trade is still written as `leader_fill`, above).
    for (i, &kind) in FillKind::ALL
        .iter()
        .filter(|k| **k != FillKind::Trade)
        .enumerate()
    {
        e.push(JournalEntry::Feed(FeedEvent::LeaderFill(LeaderFill {
            leader: LeaderIdx(0),
            symbol: SymbolIdx(0),
            side: Side::ALL[i % 2],
            qty: Lots(700 + i as i64),
            price: Ticks(640_002),
            event_key: 0x2234_5678_9abc_def0 + i as u64,
            order_key: 0x0fed_cbaa + i as u64,
            order_qty: Lots(700 + i as i64),
            venue_ts: t(),
            recv_ts: t(),
            kind,
        })));
    }
    // Funding (issue 16): a record kind of its own, after everything above.
    for (i, rate) in [10_000i64, -3_750].into_iter().enumerate() {
        e.push(JournalEntry::Feed(FeedEvent::Funding {
            symbol: SymbolIdx(0),
            rate: FundingRate(rate),
            price: Ticks(640_003 + i as i64),
            ts: t(),
        }));
    }
    e
}

const ADDED_LATER_COMMANDS: &[Command] = &[
    Command::PauseFollower(FollowerIdx(0)),
    Command::ResumeFollower(FollowerIdx(0)),
    Command::StopFollower(FollowerIdx(0)),
    Command::StopLeader(LeaderIdx(0)),
    Command::KillSwitchOff,
    Command::Flatten(SubIdx(0)),
    Command::FlattenFollower(FollowerIdx(0)),
    Command::KillSwitch,
    Command::Reload,
];

/// Codes added since the fixture was first written (`entries` appends them).
const ADDED_LATER_EXEC: &[ExecKind] = &[ExecKind::Restated];
/// Row records exist from segment format 3 on; the fixture is format 1.
const ADDED_WITH_FORMAT_3: &[Kind] = &[Kind::PairRows, Kind::ExecRows];
const ADDED_LATER_ODDITY: &[Oddity] = &[Oddity::VenueHeldOther];
const ADDED_LATER_REASON: &[Reason] = &[Reason::SymbolRemoved];

/// The segment format of the fixture: what `write` writes in, so that this
/// build's records compare with it (a format-3 segment would hold row records
/// where the fixture has a record each).
fn fixture_format() -> u32 {
    let seg = data()
        .join("golden-journal")
        .join(fillcast_journal::segment::file_name(1));
    std::fs::read(seg)
        .ok()
        .and_then(|b| fillcast_journal::segment::parse_header(&b).ok())
        .map_or(fillcast_journal::segment::FORMAT, |h| h.format)
}

/// Writes the golden entries, config first, as this build writes them into a
/// segment of the fixture's format.
fn write(dir: &Path, format: u32) {
    let cfg = load_str(CONFIG, Path::new("/golden/config.toml")).expect("config");
    let u = Universe::from_config(&cfg).expect("universe");
    let opts = JournalOptions {
        segment_bytes: 64 << 10,
        ..JournalOptions::default()
    };
    if format != fillcast_journal::segment::FORMAT {
        // An empty segment of that format, which the writer appends to as it is.
        let mut seg = vec![0u8; 64 << 10];
        seg[..fillcast_journal::segment::SEGMENT_HEADER].copy_from_slice(
            &fillcast_journal::segment::encode_header_format(64 << 10, 1, format),
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(fillcast_journal::segment::file_name(1)), seg).unwrap();
    }
    let (writer, _) = JournalWriter::open(dir, opts).expect("open");
    let mut stage = JournalStage::new(writer);
    stage
        .write_config(
            u.revision,
            &cfg.model_toml().unwrap(),
            1_732_060_800_000_000_000,
        )
        .expect("config");
    stage.append(&entries()).expect("append");
    stage.before_send().expect("flush");
}

/// (seq, kind, schema, ts, payload, meaning) of every record of the journal in `dir`.
type Rec = (u64, u16, u16, u64, Vec<u8>, String);

fn read(dir: &Path) -> Vec<Rec> {
    let reader = JournalReader::open(dir).expect("journal opens");
    reader
        .iter_from(1)
        .map(|r| {
            let r = r.expect("record reads");
            let meaning = match decode(r.kind, r.schema, r.payload) {
                Ok(e) => entry_json(r.seq, r.ts, &e),
                Err(e) => panic!("record {} does not decode: {e}", r.seq),
            };
            (r.seq, r.kind, r.schema, r.ts, r.payload.to_vec(), meaning)
        })
        .collect()
}

/// Finding 10: on-disk codes were positions in lists, so a reason added in the
/// middle would have renumbered every journal, and no fixture would have noticed.
#[test]
fn regression_on_disk_codes_were_array_positions_golden_journal_reads_back() {
    let golden = data().join("golden-journal");
    let meanings = data().join("golden-journal.jsonl");
    if std::env::var_os("FILLCAST_BLESS").is_some() {
        // The format before the fixture goes: blessing keeps it (a fixture
        // rewritten in this build's format would hold row records instead).
        let format = fixture_format();
        let _ = std::fs::remove_dir_all(&golden);
        write(&golden, format);
        let _ = std::fs::remove_file(golden.join("next-segment.tmp"));
        let text: String = read(&golden).iter().map(|r| format!("{}\n", r.5)).collect();
        std::fs::write(&meanings, text).unwrap();
    }
    let want = std::fs::read_to_string(&meanings).expect("golden-journal.jsonl");
    let want: Vec<&str> = want.lines().collect();
    let got = read(&golden);
    assert_eq!(got.len(), want.len(), "records in the golden journal");
    for (r, w) in got.iter().zip(&want) {
        assert_eq!(&r.5, w, "record {} reads back differently", r.0);
    }
    // It holds every kind of record this schema has, but those of segment
    // formats newer than its own (format 1): `record`'s tests freeze a row's
    // bytes, and `journal`'s read rows back.
    let kinds: BTreeSet<u16> = got.iter().map(|r| r.1).collect();
    for k in Kind::ALL
        .into_iter()
        .filter(|k| !ADDED_WITH_FORMAT_3.contains(k))
    {
        assert!(
            kinds.contains(&(k as u16)),
            "the golden journal lacks {k:?}"
        );
    }
}

#[test]
fn this_build_writes_the_golden_journal_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), fixture_format());
    let now = read(tmp.path());
    let golden = read(&data().join("golden-journal"));
    assert_eq!(now.len(), golden.len());
    for (a, b) in now.iter().zip(&golden) {
        assert_eq!(
            (a.0, a.1, a.2, a.3, &a.4),
            (b.0, b.1, b.2, b.3, &b.4),
            "record {} is written differently from the golden journal; if the schema \
             changed on purpose, bump record::SCHEMA and bless the fixture",
            a.0
        );
    }
}
