//! The FIX application mapping (`fix::app`): follower orders as NewOrderSingle
//! fields, ExecutionReports as the engine's reports and as leaders' fills, with
//! quantities and prices exact or refused.

use std::io::Cursor;

use fillcast_engine::event::{
    ExecKind, FeedEvent, FollowerOrder, LeaderFill, OrderType, RejectReason,
};
use fillcast_engine::ids::client_order_id;
use fillcast_engine::model::{Side, SymbolIdx};
use fillcast_engine::port::{Source, SourcePoll};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::fix::app::{
    leader_fill, order_report, reject_reason, Execution, NewOrder, ReduceOnly, Refused,
};
use fillcast_gateways::FileSource;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const RECV: Nanos = Nanos(1_732_060_800_500_000_000);

fn order(reduce_only: bool, order_type: OrderType) -> FollowerOrder {
    FollowerOrder {
        id: 0x0000_0001_0000_002a,
        symbol: SymbolIdx(0),
        side: if reduce_only { Side::Sell } else { Side::Buy },
        qty: Lots(5),
        order_type,
        limit: Ticks(650_001),
        reduce_only,
        ts: Nanos(1_732_060_800_000_000_123),
        ..FollowerOrder::default()
    }
}

#[test]
fn a_follower_order_is_an_ioc_new_order_single_in_the_symbols_units() {
    let u = crate::common::universe();
    let o = order(false, OrderType::LimitIoc);
    let n = NewOrder::of(&o, &u, "ACC-F1", ReduceOnly::ExecInstDoNotIncrease);
    assert_eq!(n.cl_ord_id.as_str(), client_order_id(o.id));
    assert_eq!((n.account, n.symbol, n.side), ("ACC-F1", "BTCUSDT", b'1'));
    // 5 lots of 0.001; 650,001 ticks of 0.1.
    assert_eq!(n.qty, dec!(0.005));
    assert_eq!((n.ord_type, n.price), (b'2', Some(dec!(65000.1))));
    assert_eq!((n.time_in_force, n.exec_inst), (b'3', None));
    assert_eq!(n.transact_time, o.ts);

    // A reducing market sell: no price, "do not increase" unless the venue
    // takes no such instruction.
    let r = order(true, OrderType::Market);
    let n = NewOrder::of(&r, &u, "ACC-F1", ReduceOnly::ExecInstDoNotIncrease);
    assert_eq!((n.side, n.ord_type, n.price), (b'2', b'1', None));
    assert_eq!(n.exec_inst, Some("E"));
    let n = NewOrder::of(&r, &u, "ACC-F1", ReduceOnly::NotSent);
    assert_eq!(n.exec_inst, None);
}

fn report<'a>(cl: &'a str, exec_type: u8) -> Execution<'a> {
    Execution {
        cl_ord_id: Some(cl),
        exec_id: Some("X-1"),
        exec_type: Some(exec_type),
        symbol: Some("BTCUSDT"),
        transact_time: Some(1_732_060_800_400_000_000),
        ..Execution::default()
    }
}

#[test]
fn the_client_order_id_is_the_engines_without_allocating() {
    use fillcast_gateways::fix::app::ClOrdId;
    for v in [0u64, 1, 42, 0xdead_beef, 0x0000_0001_0000_002a, u64::MAX] {
        assert_eq!(ClOrdId::of(v).as_str(), client_order_id(v));
        assert_eq!(
            fillcast_engine::ids::parse_client_order_id(ClOrdId::of(v).as_str()),
            Some(v)
        );
    }
}

#[test]
fn execution_reports_become_the_engines_reports() {
    let u = crate::common::universe();
    let cl = client_order_id(42);
    let kind = |t: u8| {
        order_report(&report(&cl, t), &u, RECV)
            .unwrap()
            .map(|r| r.kind)
    };
    assert_eq!(kind(b'0'), Some(ExecKind::Ack));
    assert_eq!(kind(b'4'), Some(ExecKind::Canceled));
    assert_eq!(kind(b'C'), Some(ExecKind::Expired));
    // Pending states and order status change nothing here.
    for t in [b'A', b'6', b'5', b'E', b'3', b'B', b'I'] {
        assert_eq!(kind(t), None, "{}", t as char);
    }

    let fill = Execution {
        last_qty: Some(dec!(0.002)),
        last_px: Some(dec!(64999.9)),
        ..report(&cl, b'F')
    };
    let r = order_report(&fill, &u, RECV).unwrap().unwrap();
    assert_eq!((r.order_id, r.kind), (42, ExecKind::Fill));
    assert_eq!((r.qty, r.price), (Lots(2), Ticks(649_999)));
    assert_eq!(
        (r.venue_ts, r.recv_ts),
        (Nanos(1_732_060_800_400_000_000), RECV)
    );
    // The same ExecID (a PossDup resend) is the same trade: the core counts it once.
    let again = Execution {
        poss_dup: true,
        ..fill.clone()
    };
    assert_eq!(
        order_report(&again, &u, RECV).unwrap().unwrap().trade_id,
        r.trade_id
    );
    let other = Execution {
        exec_id: Some("X-2"),
        ..fill.clone()
    };
    assert_ne!(
        order_report(&other, &u, RECV).unwrap().unwrap().trade_id,
        r.trade_id
    );

    let rejected = Execution {
        ord_rej_reason: Some(3),
        ..report(&cl, b'8')
    };
    let r = order_report(&rejected, &u, RECV).unwrap().unwrap();
    assert_eq!(
        (r.kind, r.reject),
        (ExecKind::Rejected, RejectReason::PositionLimit)
    );
}

#[test]
fn reject_reasons_map_onto_the_engines_policies() {
    for (code, want) in [
        (Some(2), RejectReason::Transient),
        (Some(4), RejectReason::Transient),
        (Some(3), RejectReason::PositionLimit),
        (Some(5), RejectReason::UnknownOrder),
        (Some(13), RejectReason::BelowMin),
        (Some(0), RejectReason::Other),
        (Some(99), RejectReason::Other),
        (None, RejectReason::Other),
    ] {
        assert_eq!(reject_reason(code), want, "{code:?}");
    }
}

#[test]
fn reports_the_engine_cannot_take_are_refused_with_a_reason() {
    let u = crate::common::universe();
    let cl = client_order_id(7);
    let refused = |e: Execution<'_>| order_report(&e, &u, RECV).unwrap_err();
    assert_eq!(
        refused(Execution {
            cl_ord_id: None,
            ..report(&cl, b'0')
        }),
        Refused::Missing("ClOrdID (11)")
    );
    assert_eq!(
        refused(report("someone-else", b'0')),
        Refused::ForeignOrder("someone-else".into())
    );
    assert_eq!(refused(report(&cl, b'G')), Refused::Correction('G'));
    assert_eq!(refused(report(&cl, b'Z')), Refused::ExecType('Z'));
    // Off the lot or the tick, or not positive: never rounded.
    for (q, p) in [
        (dec!(0.0015), dec!(65000)),
        (dec!(0.001), dec!(65000.05)),
        (dec!(0), dec!(65000)),
        (dec!(-0.001), dec!(65000)),
        (dec!(0.001), dec!(0)),
    ] {
        let e = Execution {
            last_qty: Some(q),
            last_px: Some(p),
            ..report(&cl, b'F')
        };
        assert!(
            matches!(refused(e), Refused::NotMultiple { .. }),
            "{q} @ {p}"
        );
    }
    let e = Execution {
        last_qty: None,
        last_px: Some(dec!(1)),
        ..report(&cl, b'F')
    };
    assert_eq!(refused(e), Refused::Missing("LastQty (32)"));
}

fn leader_of(account: &str) -> Option<fillcast_engine::model::LeaderIdx> {
    crate::common::universe().leader(account.strip_prefix("ACC-")?)
}

fn trade() -> Execution<'static> {
    Execution {
        account: Some("ACC-L1"),
        exec_id: Some("e1"),
        order_id: Some("o1"),
        exec_type: Some(b'F'),
        symbol: Some("BTCUSDT"),
        side: Some(b'1'),
        order_qty: Some(dec!(1.0)),
        last_qty: Some(dec!(0.5)),
        last_px: Some(dec!(65000.1)),
        transact_time: Some(1_732_060_800_000_000_000),
        ..Execution::default()
    }
}

/// A drop-copy trade is the very event the file source makes of the same fill:
/// the same keys, so the core decides alike and a fill given both ways is one.
#[test]
fn a_drop_copy_trade_is_the_leader_fill_the_file_source_reads() {
    let u = crate::common::universe();
    let fix = leader_fill(&trade(), &u, leader_of, RECV).unwrap().unwrap();
    let line = r#"{"leader":"L1","event_id":"e1","symbol":"BTCUSDT","side":"buy","qty":"0.5","price":"65000.1","ts":1732060800000000000,"order_id":"o1","order_qty":"1.0"}"#;
    let mut file = FileSource::from_reader("mem", Cursor::new(format!("{line}\n")), u);
    let SourcePoll::Event(FeedEvent::LeaderFill(from_file)) = file.next(RECV) else {
        panic!("the file source takes the line");
    };
    assert_eq!(fix, from_file);
    assert_eq!(
        fix,
        LeaderFill {
            qty: Lots(500),
            price: Ticks(650_001),
            order_qty: Lots(1000),
            ..fix
        }
    );
}

#[test]
fn drop_copy_executions_that_are_not_trades_or_cannot_be_taken() {
    let u = crate::common::universe();
    let take = |e: Execution<'_>| leader_fill(&e, &u, leader_of, RECV);
    // Not a trade: ignored (the source counts them).
    for t in [b'0', b'4', b'8', b'I'] {
        assert_eq!(
            take(Execution {
                exec_type: Some(t),
                ..trade()
            }),
            Ok(None)
        );
    }
    // Sells short are sells.
    let short = take(Execution {
        side: Some(b'5'),
        ..trade()
    });
    assert_eq!(short.unwrap().unwrap().side, Side::Sell);
    // Without an order id and quantity the fill is its own order.
    let alone = take(Execution {
        order_id: None,
        order_qty: None,
        ..trade()
    })
    .unwrap()
    .unwrap();
    assert_eq!((alone.order_key, alone.order_qty), (0, Lots::ZERO));

    for (e, want) in [
        (
            Execution {
                exec_type: Some(b'H'),
                ..trade()
            },
            Refused::Correction('H'),
        ),
        (
            Execution {
                account: Some("ACC-NOBODY"),
                ..trade()
            },
            Refused::UnknownAccount("ACC-NOBODY".into()),
        ),
        (
            Execution {
                account: None,
                ..trade()
            },
            Refused::Missing("Account (1)"),
        ),
        (
            Execution {
                symbol: Some("DOGE"),
                ..trade()
            },
            Refused::UnknownSymbol("DOGE".into()),
        ),
        (
            Execution {
                side: Some(b'9'),
                ..trade()
            },
            Refused::Side('9'),
        ),
        (
            Execution {
                order_qty: Some(dec!(0.4)),
                ..trade()
            },
            Refused::OrderQtyBelowLastQty {
                order_qty: dec!(0.4),
                last_qty: dec!(0.5),
            },
        ),
        (
            Execution {
                transact_time: None,
                ..trade()
            },
            Refused::Missing("TransactTime (60)"),
        ),
    ] {
        assert_eq!(take(e), Err(want));
    }
    let off = take(Execution {
        last_qty: Some(Decimal::new(5, 4)),
        ..trade()
    });
    assert!(matches!(off, Err(Refused::NotMultiple { .. })), "{off:?}");
}

/// A NewOrderSingle written by the codec carries the order's fields, and an
/// ExecutionReport decoded by it reads as the engine's report.
#[test]
fn orders_and_reports_through_the_codec() {
    use fillcast_gateways::fix::{Decoder, Encoder, Header, Limits};
    let u = crate::common::universe();
    let o = order(true, OrderType::LimitIoc);
    let n = NewOrder::of(&o, &u, "ACC-F1", ReduceOnly::ExecInstDoNotIncrease);
    let enc = Encoder::default();
    let header = |msg_type, seq| Header {
        msg_type,
        sender_comp_id: b"FILLCAST",
        target_comp_id: b"VENUE",
        msg_seq_num: seq,
        sending_time: o.ts,
    };
    let mut out = Vec::new();
    let mut w = enc.begin(&mut out, &header(b"D", 12)).unwrap();
    n.write(&mut w).unwrap();
    w.finish();
    let mut dec = Decoder::new(Limits::default());
    let (m, _) = dec.next(&out).unwrap().unwrap();
    assert_eq!(m.msg_type(), b"D");
    assert_eq!(m.str(11), Ok(n.cl_ord_id.as_str()));
    assert_eq!((m.str(1), m.str(55)), (Ok("ACC-F1"), Ok("BTCUSDT")));
    assert_eq!(
        (m.char(54), m.char(40), m.char(59)),
        (Ok(b'2'), Ok(b'2'), Ok(b'3'))
    );
    assert_eq!(
        (m.decimal(38), m.decimal(44)),
        (Ok(dec!(0.005)), Ok(dec!(65000.1)))
    );
    assert_eq!(
        (m.str(18), m.timestamp(60)),
        (Ok("E"), Ok(Nanos(o.ts.0 / 1_000_000 * 1_000_000)))
    );

    // The venue's fill of it, as it would send it.
    let mut out = Vec::new();
    let mut w = enc.begin(&mut out, &header(b"8", 40)).unwrap();
    w.str(37, "V-1")
        .unwrap()
        .str(11, n.cl_ord_id.as_str())
        .unwrap()
        .str(17, "X-9")
        .unwrap()
        .char(150, b'F')
        .unwrap()
        .char(39, b'2')
        .unwrap()
        .str(55, "BTCUSDT")
        .unwrap()
        .char(54, b'2')
        .unwrap()
        .str(38, "0.005")
        .unwrap()
        .str(32, "0.005")
        .unwrap()
        .str(31, "64999.9")
        .unwrap()
        .char(43, b'Y')
        .unwrap()
        .timestamp(
            60,
            Nanos(1_732_060_800_200_000_000),
            fillcast_gateways::fix::TimePrecision::Millis,
        )
        .unwrap();
    w.finish();
    let mut dec = Decoder::new(Limits::default());
    let (m, _) = dec.next(&out).unwrap().unwrap();
    let e = Execution::read(&m).unwrap();
    assert!(e.poss_dup);
    let r = order_report(&e, &u, RECV).unwrap().unwrap();
    assert_eq!(
        (r.order_id, r.kind, r.qty, r.price),
        (o.id, ExecKind::Fill, Lots(5), Ticks(649_999))
    );
    assert_eq!(r.venue_ts, Nanos(1_732_060_800_200_000_000));
    // A field present but malformed is an error naming it.
    let mut out = Vec::new();
    let mut w = enc.begin(&mut out, &header(b"8", 41)).unwrap();
    w.str(150, "F").unwrap().str(32, "1e3").unwrap();
    w.finish();
    let (m, _) = dec.next(&out).unwrap().unwrap();
    assert!(matches!(
        Execution::read(&m),
        Err(fillcast_gateways::fix::FieldError::Invalid { tag: 32, .. })
    ));
}
