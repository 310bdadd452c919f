//! The FIX codec does not allocate per message: a counting global allocator watches
//! a read buffer of every kind of session and application message decoded and read
//! through its typed accessors, hostile messages refused, and messages written into
//! a warm egress buffer. A binary of its own (like the engine's `no_alloc`): it
//! installs the allocator.

use fillcast_engine::units::Nanos;
use fillcast_gateways::fix::codec::checksum;
use fillcast_gateways::fix::{Decoder, Encoder, ErrorKind, Header, Limits, TimePrecision};
use rust_decimal_macros::dec;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Per thread: the test harness's own threads allocate while the test runs.
    // Const-initialised and without a destructor, so reading it never allocates.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn count() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Writes a Logon, a NewOrderSingle and an ExecutionReport into `out`, and tries a
/// Reject with a SOH in a value; the number of messages written.
fn write_all(enc: &Encoder, out: &mut Vec<u8>, seq: u64) -> usize {
    let header = |msg_type, seq| Header {
        msg_type,
        sender_comp_id: b"FILLCAST",
        target_comp_id: b"VENUE",
        msg_seq_num: seq,
        sending_time: Nanos(1_796_594_400_123_456_789),
    };
    let mut n = 0;
    let mut w = enc.begin(out, &header(b"A", seq)).unwrap();
    w.u64(98, 0)
        .unwrap()
        .u64(108, 30)
        .unwrap()
        .char(141, b'Y')
        .unwrap();
    w.finish();
    n += 1;
    let mut w = enc.begin(out, &header(b"D", seq + 1)).unwrap();
    w.str(11, "F1-000001").unwrap().str(1, "ACC1").unwrap();
    w.str(55, "BTCUSDT").unwrap().char(54, b'1').unwrap();
    w.decimal(38, &dec!(0.500)).unwrap().char(40, b'2').unwrap();
    w.decimal(44, &dec!(65000.1))
        .unwrap()
        .char(59, b'3')
        .unwrap();
    w.char(18, b'E').unwrap();
    w.timestamp(60, Nanos(1_796_594_400_123_456_789), TimePrecision::Micros)
        .unwrap();
    w.finish();
    n += 1;
    let mut w = enc.begin(out, &header(b"8", seq + 2)).unwrap();
    w.str(37, "O1").unwrap().str(11, "F1-000001").unwrap();
    w.str(17, "E1").unwrap().char(150, b'F').unwrap();
    w.char(39, b'1').unwrap().str(55, "BTCUSDT").unwrap();
    w.decimal(32, &dec!(0.5)).unwrap();
    w.decimal(31, &dec!(-65000.123456789)).unwrap();
    w.i64(453, 2).unwrap();
    w.str(448, "L1").unwrap().str(452, "3").unwrap();
    w.str(448, "DESK").unwrap().str(452, "1").unwrap();
    w.finish();
    n += 1;
    // Refused writes leave nothing and allocate nothing either.
    let mut w = enc.begin(out, &header(b"3", seq + 3)).unwrap();
    assert!(w.str(58, "a\x01b").is_err());
    drop(w);
    n
}

#[test]
fn the_fix_codec_does_not_allocate_per_message() {
    let enc = Encoder::default();
    let mut d = Decoder::new(Limits::default()).with_repeatable(&[448, 452]);
    let mut out = Vec::with_capacity(64 << 10);
    let mut hostile = Vec::with_capacity(256);
    // Garbage, then a duplicate tag behind a valid frame and CheckSum.
    hostile.extend_from_slice(b"junk8=FIX.4.4\x019=15\x0135=D\x0155=A\x0155=B\x01");
    let sum = checksum(&hostile[4..]);
    hostile.extend_from_slice(format!("10={sum:03}\x01").as_bytes());

    let mut decoded = 0;
    let mut round = |out: &mut Vec<u8>, seq: u64| {
        out.clear();
        let written = write_all(&enc, out, seq);
        let mut buf = &out[..];
        let mut seen = 0;
        while let Some((m, used)) = d.next(buf).unwrap() {
            assert_eq!(m.u64(34).unwrap(), seq + seen);
            if m.msg_type() == b"8" {
                assert_eq!(m.decimal(31).unwrap(), dec!(-65000.123456789));
                assert_eq!(m.get_all(448).count(), 2);
                assert_eq!(m.char(150).unwrap(), b'F');
            }
            let _ = m.timestamp(52).unwrap();
            let _ = m.get_str(55).unwrap();
            buf = &buf[used..];
            seen += 1;
        }
        assert_eq!(seen as usize, written);
        let e = d.next(&hostile).unwrap_err();
        assert_eq!((e.kind, e.skip), (ErrorKind::Garbage, 4));
        let e = d.next(&hostile[4..]).unwrap_err();
        assert_eq!((e.kind, e.tag), (ErrorKind::DuplicateTag, Some(55)));
        decoded += seen;
    };
    // Warm: the first round may size buffers.
    round(&mut out, 1);
    let before = allocs();
    for i in 0..2_000 {
        round(&mut out, 10 + i * 10);
    }
    let allocs = allocs() - before;
    assert_eq!(allocs, 0, "{allocs} allocations over {decoded} messages");
}
