//! A probe for instruction counts (docs/BENCHMARKS.md, "Issue 14, second
//! session"): appends 1M venue reports through the journal stage, in chunks of 32
//! received together (one `recv_ts` each), into a format-3 journal (`rows`: one
//! row record a chunk) or a format-2 one (`records`: an `exec` record a report).
//! Run under `valgrind --tool=callgrind --toggle-collect='*JournalStage*append*'`.
use fillcast_engine::event::{ExecKind, ExecReport};
use fillcast_engine::port::{JournalEntry, JournalSink};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_journal::stage::JournalStage;
use fillcast_journal::{segment, JournalOptions, JournalWriter};

fn main() {
    let rows = std::env::args().nth(1).as_deref() == Some("rows");
    let dir = tempfile::tempdir().unwrap();
    let bytes = 256u64 << 20;
    if !rows {
        let mut seg = vec![0u8; bytes as usize];
        seg[..segment::SEGMENT_HEADER].copy_from_slice(&segment::encode_header_format(bytes, 1, 2));
        std::fs::write(dir.path().join(segment::file_name(1)), seg).unwrap();
    }
    let (w, _) = JournalWriter::open(
        dir.path(),
        JournalOptions {
            segment_bytes: bytes,
            ..JournalOptions::default()
        },
    )
    .unwrap();
    let mut stage = JournalStage::new(w);
    let mut chunk = Vec::with_capacity(32);
    for c in 0..(1_000_000 / 32) {
        chunk.clear();
        for i in 0..32u64 {
            chunk.push(JournalEntry::Exec(ExecReport {
                order_id: c * 32 + i + 1,
                kind: ExecKind::Fill,
                qty: Lots(3),
                price: Ticks(100),
                trade_id: c * 32 + i + 1,
                recv_ts: Nanos(c),
                ..ExecReport::default()
            }));
        }
        stage.append(&chunk).unwrap();
    }
    println!("{} records, {} bytes", stage.records(), stage.position().1);
}
