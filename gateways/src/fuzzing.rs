//! The bodies of the gateways' fuzz targets (`gateways/fuzz`), callable from tests on
//! stable too: outside input that must give errors or events, never a panic.
//!
//! - `file_source`: arbitrary bytes as a leader-fill file, read to the end, then read
//!   again resumed at every position the first read gave (`Source::resume`); every
//!   funding event within the bounds the core takes.
//! - `sim_wire`: arbitrary bytes as frames from a client and from a server.
//! - `config`: arbitrary bytes as a config file and as a journaled decision model.
//! - `control_request`: arbitrary bytes as a `fillcast ctl` request line.
//! - `fix_codec`: arbitrary bytes as a FIX read buffer, walked message by message and
//!   error by error; every message decoded is written again byte for byte.
//! - `binance_stream`: arbitrary bytes as a Binance user-data or mark-price message
//!   and as a `userTrades` response, every fill, balance and mark converted; then
//!   (`binance_mark`) as a message of the `binance` source's mark-price connection.
//! - `binance_replies`: arbitrary bytes as a Binance WebSocket API reply (the
//!   gateway's parser) and as each REST answer the adapter reads.

use crate::config::GatewayKinds;
use crate::file::FileSource;
use crate::fix::codec::{
    parse_char, parse_decimal, parse_i64, parse_str, parse_timestamp, parse_u64,
};
use crate::fix::{Decoder, Encoder, Limits, TimePrecision};
use crate::simwire::{decode_client, decode_server};
use fillcast_engine::config;
use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_engine::port::{Source, SourcePoll};
use fillcast_engine::units::Nanos;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, OnceLock};

const UNIVERSE: &str = r#"
[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[symbols]]
name = "ETHUSDT"
lot_size = "0.001"
tick_size = "0.01"
venue = "sim"

[[leaders]]
id = "L1"
equity = "100000"

[[followers]]
id = "F1"
equity = "1000"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "100"
mode = "proportional"
"#;

/// `../shared/fixtures/binance_usdm_order_trade_update_fill.json`, copied: a fill
/// of 0.040 BTCUSDT at 42088.0, trade 109100866 of order 336829446 (q 0.100). The
/// fuzz corpus's seed and the Binance stream tests' sample.
pub const BINANCE_FILL_SAMPLE: &str = r#"{"e":"ORDER_TRADE_UPDATE","E":1705385954300,"T":1705385954298,"o":{"s":"BTCUSDT","c":"cpL1-000042","S":"BUY","o":"LIMIT","f":"GTC","q":"0.100","p":"42088.0","ap":"42088.0","sp":"0","x":"TRADE","X":"PARTIALLY_FILLED","i":336829446,"l":"0.040","z":"0.040","L":"42088.0","N":"USDT","n":"0.6734","T":1705385954298,"t":109100866,"m":false,"R":false,"ot":"LIMIT","ps":"BOTH","rp":"0","V":"NONE","pm":"NONE","gtd":0,"er":"0"}}"#;

fn universe() -> Arc<Universe> {
    static U: OnceLock<Arc<Universe>> = OnceLock::new();
    Arc::clone(U.get_or_init(|| {
        let cfg = config::load_str(UNIVERSE, Path::new("fuzz.toml")).expect("fuzz universe");
        Arc::new(Universe::from_config(&cfg).expect("fuzz universe"))
    }))
}

/// Events and rejections of a whole read; panics on a broken invariant.
pub fn file_source(data: &[u8]) -> usize {
    let read = |resume: Option<u64>| {
        let mut s = FileSource::from_reader("fuzz.jsonl", Cursor::new(data.to_vec()), universe());
        if let Some(pos) = resume {
            s.resume(pos).expect("a position the source gave resumes");
        }
        let mut steps = Vec::new();
        let mut positions = vec![s.position().expect("a file has a position")];
        // Each step consumes at least one line, so this ends.
        loop {
            let step = s.next(Nanos(1));
            match step {
                SourcePoll::Finished => break,
                SourcePoll::Idle => panic!("a file source is never idle"),
                // Only what the core takes as valid funding leaves the edge.
                SourcePoll::Event(FeedEvent::Funding {
                    symbol,
                    rate,
                    price,
                    ..
                }) => {
                    assert!(rate.is_within_bounds(), "funding rate {rate:?}");
                    assert!(price.0 > 0, "funding price {price:?}");
                    assert!((symbol.0 as usize) < universe().symbols.len());
                }
                _ => {}
            }
            steps.push(step);
            positions.push(s.position().expect("a file has a position"));
        }
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "position went back"
        );
        assert!(*positions.last().unwrap() <= data.len() as u64);
        (steps, positions)
    };
    let (all, positions) = read(None);
    // Resuming anywhere the source stood gives exactly the rest (a few points, so a
    // large input stays quick).
    for (k, &pos) in positions
        .iter()
        .enumerate()
        .step_by(positions.len() / 4 + 1)
    {
        let (rest, _) = read(Some(pos));
        assert_eq!(rest.len(), all.len() - k, "resumed at {pos}");
    }
    all.len()
}

/// Frames decoded from both directions, each stream walked frame by frame.
pub fn sim_wire(data: &[u8]) -> usize {
    fn walk<T>(mut buf: &[u8], decode: fn(&[u8]) -> crate::simwire::Decoded<T>) -> usize {
        let mut n = 0;
        while let Ok(Some((_, used))) = decode(buf) {
            assert!(used > 0 && used <= buf.len(), "a frame of {used} bytes");
            buf = &buf[used..];
            n += 1;
        }
        n
    }
    walk(data, decode_client) + walk(data, decode_server)
}

/// Whether the bytes loaded as a config or a model; never panics.
pub fn config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let a = config::load_str_with(text, Path::new("fuzz.toml"), &GatewayKinds).is_ok();
    let b = match config::load_model(text) {
        Ok(model) => {
            // A model that loads is canonical once written: its revision is stable.
            let once = model.model_toml().expect("a loaded model serialises");
            let again = config::load_model(&once).expect("a written model loads");
            assert_eq!(again.model_toml().expect("serialises"), once);
            // A reload lays a model out after itself unchanged, and what a model
            // resolves to never panics.
            if let Ok(same) = model.arranged_after(&model) {
                assert_eq!(same.model_toml().expect("serialises"), once);
            }
            let _ = fillcast_engine::model::Universe::from_config(&model);
            true
        }
        Err(_) => false,
    };
    a || b
}

/// Whether the bytes were a request; an error never carries a control character
/// (a request cannot forge a log line) and never panics.
pub fn control_request(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match crate::control::parse(text, &universe()) {
        Ok(crate::control::Request::Command(c)) => {
            let d = crate::control::describe(&c, &universe());
            assert!(!d.contains('?'), "a parsed command names what exists: {d}");
            true
        }
        Ok(_) => true,
        Err(e) => {
            assert!(
                !e.chars().any(|c| c.is_control() && c != '\n'),
                "an error quotes a control character: {e:?}"
            );
            assert!(e.len() < 2_000, "an error of {} bytes", e.len());
            false
        }
    }
}

/// Messages decoded from a FIX read buffer walked to its end; panics on a broken
/// invariant (a step that consumes nothing or more than there is, a message that
/// does not write back to its own bytes, a prefix of a message that decodes).
pub fn fix_codec(data: &[u8]) -> usize {
    let limits = Limits {
        message_bytes_max: 4096,
        fields_max: 64,
    };
    let mut decoder = Decoder::new(limits).with_repeatable(&[447, 448, 452]);
    let encoder = Encoder::new(limits);
    let mut out = Vec::new();
    let mut buf = data;
    let mut messages = 0;
    // Each step consumes at least one byte, so this ends.
    loop {
        let used = match decoder.next(buf) {
            Ok(None) => {
                assert!(
                    buf.len() < limits.message_bytes_max,
                    "waits on {} bytes",
                    buf.len()
                );
                break;
            }
            Err(e) => {
                assert!(e.skip >= 1 && e.skip <= buf.len(), "{e}");
                assert!(e.offset <= buf.len(), "{e}");
                e.skip
            }
            Ok(Some((m, used))) => {
                assert!(used > 0 && used <= buf.len() && m.as_bytes() == &buf[..used]);
                out.clear();
                let mut w = encoder
                    .begin_msg_type(&mut out, m.msg_type())
                    .expect("a decoded MsgType writes");
                for (tag, value) in m.fields().skip(3).take(m.len() - 4) {
                    w.bytes(tag, value).expect("a decoded field writes");
                    let _ = parse_str(value);
                    let _ = parse_u64(value);
                    let _ = parse_i64(value);
                    let _ = parse_decimal(value);
                    let _ = parse_char(value);
                    if let Ok(at) = parse_timestamp(value) {
                        let mut again = Vec::new();
                        let mut t = encoder.begin_msg_type(&mut again, b"0").expect("writes");
                        t.timestamp(52, at, TimePrecision::Nanos).expect("writes");
                        let range = t.finish();
                        let mut d = Decoder::new(limits);
                        let (copy, _) = d.next(&again[range]).expect("decodes").expect("whole");
                        assert_eq!(copy.timestamp(52), Ok(at), "timestamp round trip");
                    }
                }
                let range = w.finish();
                assert_eq!(&out[range], m.as_bytes(), "a decoded message writes back");
                messages += 1;
                used
            }
        };
        buf = &buf[used..];
    }
    messages
}

/// `fix_session`: every message `data` holds, as the counterparty's, through the
/// session state machine, and each one it delivers through the execution reader
/// and both mappings (drop copy and order entry), and every message to the
/// order-entry gateway's books (`fuzz_check`). Returns how many it delivered;
/// panics on a broken invariant: our outgoing numbers never go back, the
/// expected one only on a Logon that resets, and a disconnect is followed by a
/// new connection as the transport would make.
pub fn fix_session(data: &[u8]) -> usize {
    use crate::fix::app::{leader_fill, order_report, Execution};
    use crate::fix::session::{Inbound, Session, SessionConfig, Verdict};
    let limits = Limits {
        message_bytes_max: 4096,
        fields_max: 64,
    };
    let u = universe();
    let mut decoder = Decoder::new(limits);
    let mut s = Session::new(SessionConfig::default(), (1, 1));
    let mut now = 1_000_000_000u64;
    s.connected(now);
    let mut buf = data;
    let mut delivered = 0;
    // The order-entry gateway's books, with a few orders in flight whose ids
    // the input may name (`fc` and 16 hex digits: fc0000000100000001...).
    let mut orders = crate::fix::orderentry::Orders::default();
    let sent: std::collections::HashSet<u64> = (1..=4).map(|n| (1u64 << 32) | n).collect();
    for (seq, &id) in sent.iter().enumerate() {
        orders.fuzz_sent(id, seq as u64 + 2);
    }
    loop {
        let used = match decoder.next(buf) {
            Ok(None) => break,
            Err(e) => e.skip,
            Ok(Some((m, used))) => {
                now += 700_000_000;
                orders.on_message(&m, &u, Nanos(now));
                orders.fuzz_check(&sent);
                if let Ok(inbound) = Inbound::read(&m) {
                    let before = s.seqs();
                    let v = s.on_inbound(&inbound, now, &mut |_| {});
                    let after = s.seqs();
                    assert!(after.0 >= before.0, "our numbers went back");
                    assert!(
                        after.1 >= before.1 || (inbound.reset_seq_num && after.1 == 2),
                        "the expected number went back: {before:?} → {after:?}"
                    );
                    match v {
                        Verdict::Deliver => {
                            delivered += 1;
                            if let Ok(e) = Execution::read(&m) {
                                let _ = leader_fill(&e, &u, |a| u.leader(a), Nanos(now));
                                let _ = order_report(&e, &u, Nanos(now));
                            }
                        }
                        Verdict::Handled => {}
                        Verdict::Disconnect(_) => {
                            s.disconnected();
                            s.connected(now);
                        }
                    }
                }
                if s.on_timer(now, &mut |_| {}).is_some() {
                    s.disconnected();
                    s.connected(now);
                }
                used
            }
        };
        buf = &buf[used..];
    }
    delivered
}

/// `binance_stream`: the bytes as a stream message and as a `userTrades` body,
/// and what parses converted against the fuzz universe. Returns how many fills
/// it made; panics on a broken invariant: a fill that is not positive whole
/// lots and ticks, a fill from a non-`TRADE` update, the same trade giving
/// another event key from REST than from the stream, an error text with a
/// control character or of unbounded length, or counters that do not add up.
pub fn binance_stream(data: &[u8]) -> usize {
    use crate::binance::stream::{
        Event, ExecutionType, FillKind, ListenKeyExpired, OrderInfo, Parser, SymbolTable, UserTrade,
    };
    let u = universe();
    let symbols = SymbolTable::from_universe(&u);
    let leader = u.leader("L1").expect("the fuzz universe has L1");
    let recv = Nanos(1);
    let mut fills = 0;
    let mut parser = Parser::new();
    match parser.message(data) {
        Ok(Event::OrderTradeUpdate(o)) => match o.fill(leader, "L1", &symbols, recv) {
            Ok(Some(f)) => {
                assert_eq!(o.execution_type, ExecutionType::Trade);
                assert!(f.fill.qty.0 > 0 && f.fill.price.0 > 0 && f.fill.event_key != 0);
                assert!(f.fill.order_qty.is_zero() || f.fill.order_qty >= f.fill.qty);
                assert_eq!(f.kind, FillKind::of_client_order_id(o.client_order_id));
                // The same trade from REST is the same event, at the same time.
                let rest = UserTrade {
                    id: o.trade_id,
                    order_id: o.order_id,
                    symbol: o.symbol,
                    side: o.side,
                    price: o.last_price,
                    qty: o.last_qty,
                    time: o.trade_time,
                    realized_pnl: o.realized_profit,
                    commission: o.commission.unwrap_or_default(),
                    commission_asset: o.commission_asset.unwrap_or(""),
                    position_side: Some(o.position_side),
                };
                let order = OrderInfo {
                    client_order_id: o.client_order_id,
                    orig_qty: o.order_qty,
                };
                let again = rest
                    .fill(leader, "L1", &symbols, Some(&order), recv)
                    .expect("the stream's fill converts from REST too");
                assert_eq!(again, f);
                fills += 1;
            }
            Ok(None) => assert_ne!(o.execution_type, ExecutionType::Trade),
            Err(e) => error_text(&e),
        },
        Ok(Event::AccountUpdate(a)) => {
            for b in &a.balances {
                match a.wallet_balance(b.asset) {
                    Ok(wb) => assert!(wb.is_some()),
                    Err(e) => error_text(&e),
                }
            }
        }
        Ok(Event::MarkPrice(m)) => {
            if let Err(e) = m.to_feed_rounded(&symbols) {
                error_text(&e);
            }
        }
        Ok(Event::ListenKeyExpired(k)) => {
            // The key never shows: another key prints the same.
            let other = ListenKeyExpired {
                listen_key: k.listen_key.map(|_| "another"),
                ..k
            };
            assert_eq!(format!("{k:?}"), format!("{other:?}"));
        }
        Ok(Event::Other(_)) => {}
        Err(e) => error_text(&e),
    }
    let body_ok = match parser.user_trades(data) {
        Ok(trades) => {
            for t in &trades {
                match t.fill(leader, "L1", &symbols, None, recv) {
                    Ok(f) => {
                        assert!(f.fill.qty.0 > 0 && f.fill.price.0 > 0);
                        assert_eq!(f.kind, FillKind::Unknown);
                        fills += 1;
                    }
                    Err(e) => error_text(&e),
                }
            }
            true
        }
        Err(e) => {
            error_text(&e);
            false
        }
    };
    // Each call counted once, as what it gave.
    let stats = parser.stats();
    assert_eq!((stats.messages, stats.user_trade_bodies), (1, 1));
    let events = stats.order_trade_updates
        + stats.account_updates
        + stats.listen_keys_expired
        + stats.mark_prices
        + stats.other;
    assert_eq!(events + u64::from(body_ok) + stats.rejected, 2, "{stats:?}");
    fills
}

/// `binance_mark`: the bytes as a message of the `binance` source's mark-price
/// connection (`stream::Parser::mark`, issue 15). Returns whether they gave a
/// mark; panics on a broken invariant: a mark that is not a whole, positive
/// tick of a known symbol, a mark where the message parsed and converted apart
/// gives none or the other way round, an error text with a control character
/// or of unbounded length.
pub fn binance_mark(data: &[u8]) -> bool {
    use crate::binance::stream::{Event, Parser, SymbolTable};
    use fillcast_engine::event::FeedEvent;
    let symbols = SymbolTable::from_universe(&universe());
    let mark = Parser::new().mark(data, &symbols);
    // The same as the message parsed, then converted, apart.
    let converted = match Parser::new().message(data) {
        Ok(Event::MarkPrice(m)) => Some(m.to_feed_rounded(&symbols).is_ok()),
        _ => None,
    };
    match mark {
        Ok(Some(FeedEvent::MarkPrice { price, .. })) => {
            assert!(price.0 > 0);
            assert_eq!(converted, Some(true));
            true
        }
        Ok(Some(other)) => panic!("a mark-price message gave {other:?}"),
        Ok(None) => {
            assert_eq!(converted, None);
            false
        }
        Err(e) => {
            assert_ne!(converted, Some(true));
            error_text(&e);
            false
        }
    }
}

/// An error's text: no control character (input cannot forge a log line) and
/// bounded.
fn error_text(e: &dyn std::fmt::Display) {
    let text = e.to_string();
    assert!(
        !text.chars().any(char::is_control),
        "an error quotes a control character: {text:?}"
    );
    assert!(text.len() < 2_000, "an error of {} bytes", text.len());
}

/// The body of `binance_replies`: `data` as a WebSocket API reply, read by the
/// gateway's parser (twice, on one reused parser, as a connection reads), and
/// as the REST answers `apiRestrictions`, `exchangeInfo` and `listenKey`. Returns
/// whether the reply parsed. Panics on a panic inside, or on a reply that parsed
/// with more rate limits than the parser keeps.
pub fn binance_replies(data: &[u8]) -> bool {
    use crate::binance::{rest, wsapi};
    let mut parser = wsapi::ReplyParser::new();
    let mut ok = false;
    for _ in 0..2 {
        let mut copy = data.to_vec();
        if let Ok(reply) = parser.parse(&mut copy) {
            assert!(reply.rate_limits.as_slice().len() <= wsapi::RATE_LIMITS_MAX);
            ok = true;
        }
    }
    let _ = rest::permissions(data, 0);
    let _ = rest::exchange_filters(data);
    let _ = rest::listen_key(data);
    ok
}
