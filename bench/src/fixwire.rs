//! FIX on the wire, per message (issue 13): what the FIX 4.4 codec costs a
//! gateway for one egress chunk of follower orders (32 NewOrderSingles written
//! into one buffer, `fix::app::NewOrder::write`) and for their 32 fills coming
//! back (ExecutionReports decoded, read, and mapped onto the engine's reports:
//! `Decoder`, `Execution::read`, `order_report`). Beside it, in the same run, the
//! simulated venue's binary wire (`simwire`) doing the same work for the same
//! chunk: the cost of speaking FIX rather than our own protocol.
//!
//! The end-to-end figure against the QuickFIX venue (a leader execution in, the
//! last follower NewOrderSingle written) is the `fixe2e` scenario's.

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType};
use fillcast_engine::ids::client_order_id;
use fillcast_engine::model::{Side, SymbolIdx, Universe};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::fix::app::{order_report, Execution, NewOrder, ReduceOnly};
use fillcast_gateways::fix::{Decoder, Encoder, Header, Limits, TimePrecision};
use fillcast_gateways::simwire;
use std::sync::Arc;
use std::time::Instant;

/// Orders per egress chunk (`ORDER_CHUNK`).
const CHUNK: usize = fillcast_engine::event::ORDER_CHUNK;

pub struct Options {
    pub chunks: usize,
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let u = crate::world::universe(1, CHUNK, "");
    let case = chunk_case(&u, opts.chunks, progress);
    Scenario {
        name: "fixwire",
        title: "FIX 4.4 on the wire: one egress chunk of 32 orders out, their 32 fills back".into(),
        fillcast: "fix::codec: 32 NewOrderSingles written into one buffer; 32 ExecutionReports decoded, read and mapped to the engine's reports".into(),
        baseline: "simwire: the simulated venue's binary frames for the same 32 orders and 32 fill reports".into(),
        threads: vec![
            ThreadRole::unpinned("fillcast", "main", "FIX encode + decode"),
            ThreadRole::unpinned("baseline", "main", "simwire encode + decode"),
        ],
        target: None,
        cases: vec![case],
        skipped: Vec::new(),
        notes: vec![
            "the ratio is simwire ÷ FIX: below 1 means FIX costs more than the binary wire, as text framing, checksums and decimal formatting do".into(),
        ],
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

fn orders() -> Vec<FollowerOrder> {
    (0..CHUNK)
        .map(|i| FollowerOrder {
            id: ((i as u64) << 32) | 7,
            symbol: SymbolIdx(0),
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            qty: Lots(100 + i as i64),
            order_type: OrderType::LimitIoc,
            limit: Ticks(650_000 + i as i64),
            reduce_only: i % 3 == 0,
            ts: Nanos(1_732_060_800_000_000_000 + i as u64),
            ..FollowerOrder::default()
        })
        .collect()
}

fn chunk_case(u: &Arc<Universe>, chunks: usize, progress: &Progress) -> Case {
    progress.phase("32 orders out, 32 fills back", (chunks * 2) as u64);
    let orders = orders();
    let enc = Encoder::new(Limits::default());
    let spec = u.sym(SymbolIdx(0));
    // The venue's fills of them, as it would send them.
    let mut fills = Vec::new();
    for (i, o) in orders.iter().enumerate() {
        let cl = client_order_id(o.id);
        let mut w = enc
            .begin(
                &mut fills,
                &Header {
                    msg_type: b"8",
                    sender_comp_id: b"VENUE",
                    target_comp_id: b"FILLCAST",
                    msg_seq_num: 100 + i as u64,
                    sending_time: o.ts,
                },
            )
            .expect("writes");
        w.str(37, "V-1")
            .unwrap()
            .str(11, &cl)
            .unwrap()
            .str(17, &format!("X-{i}"))
            .unwrap()
            .char(150, b'F')
            .unwrap()
            .char(39, b'2')
            .unwrap()
            .str(55, &spec.name)
            .unwrap()
            .char(54, if o.side == Side::Buy { b'1' } else { b'2' })
            .unwrap()
            .decimal(38, &o.qty.to_decimal(spec.lot_size))
            .unwrap()
            .decimal(32, &o.qty.to_decimal(spec.lot_size))
            .unwrap()
            .decimal(31, &o.limit.to_decimal(spec.tick_size))
            .unwrap()
            .timestamp(60, o.ts, TimePrecision::Millis)
            .unwrap();
        w.finish();
    }
    let reports: Vec<ExecReport> = orders
        .iter()
        .map(|o| ExecReport {
            order_id: o.id,
            kind: ExecKind::Fill,
            qty: o.qty,
            price: o.limit,
            trade_id: o.id ^ 0x55,
            ..ExecReport::default()
        })
        .collect();
    let mut sim_fills = Vec::new();
    for r in &reports {
        simwire::encode_report(r, &mut sim_fills);
    }

    let mut fix_hist = histogram();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut decoder = Decoder::new(Limits::default());
    let mut taken = 0usize;
    for k in 0..chunks {
        let t = Instant::now();
        out.clear();
        for (i, o) in orders.iter().enumerate() {
            let n = NewOrder::of(o, u, "ACC-1", ReduceOnly::ExecInstDoNotIncrease);
            let mut w = enc
                .begin(
                    &mut out,
                    &Header {
                        msg_type: b"D",
                        sender_comp_id: b"FILLCAST",
                        target_comp_id: b"VENUE",
                        msg_seq_num: (k * CHUNK + i + 1) as u64,
                        sending_time: o.ts,
                    },
                )
                .expect("writes");
            n.write(&mut w).expect("writes");
            w.finish();
        }
        let mut buf = &fills[..];
        while let Ok(Some((m, used))) = decoder.next(buf) {
            let e = Execution::read(&m).expect("reads");
            if order_report(&e, u, Nanos(1)).expect("maps").is_some() {
                taken += 1;
            }
            buf = &buf[used..];
        }
        let _ = fix_hist.record((t.elapsed().as_nanos() as u64).max(1));
        std::hint::black_box(&out);
        progress.inc(1);
    }
    assert_eq!(taken, chunks * CHUNK, "every fill maps");

    let mut sim_hist = histogram();
    let mut sim_out = Vec::with_capacity(64 * 1024);
    let mut decoded = 0usize;
    for _ in 0..chunks {
        let t = Instant::now();
        sim_out.clear();
        simwire::encode_orders(&orders, &mut sim_out).expect("writes");
        let mut buf = &sim_fills[..];
        while !buf.is_empty() {
            match simwire::decode_server(buf) {
                Ok(Some((m, used))) => {
                    std::hint::black_box(&m);
                    decoded += 1;
                    buf = &buf[used..];
                }
                other => panic!("the baseline's frames decode: {other:?}"),
            }
        }
        let _ = sim_hist.record((t.elapsed().as_nanos() as u64).max(1));
        std::hint::black_box(&sim_out);
        progress.inc(1);
    }
    assert_eq!(decoded, chunks * CHUNK);

    let per_sec = |h: &hdrhistogram::Histogram<u64>| (2 * CHUNK) as f64 * 1e9 / h.mean().max(1.0);
    Case::new("32 orders + 32 fills", RatioBasis::P99Latency)
        .param("chunks", chunks)
        .param("orders_per_chunk", CHUNK)
        .variant(
            Variant::new("fillcast", Role::Fillcast, "FIX 4.4 codec")
                .latency("per chunk: 32 messages out, 32 in", &fix_hist)
                .throughput(per_sec(&fix_hist), "messages/s (at the mean)"),
        )
        .variant(
            Variant::new("baseline", Role::Baseline, "simwire (binary)")
                .latency("per chunk: 32 messages out, 32 in", &sim_hist)
                .throughput(per_sec(&sim_hist), "messages/s (at the mean)"),
        )
        .finish()
}
