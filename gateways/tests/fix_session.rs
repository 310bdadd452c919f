//! The FIX session state machine (`fix::session`): logon, sequence numbers,
//! gaps and resends, duplicates, heartbeats and silence, logout; and a property:
//! whatever the network drops or repeats, each application message of the
//! counterparty is delivered once, in order.

use fillcast_gateways::fix::session::{Admin, Inbound, Session, SessionConfig, State, Verdict};
use proptest::prelude::*;

const S: u64 = 1_000_000_000;

fn cfg() -> SessionConfig {
    SessionConfig {
        heartbeat_s: 10,
        reset_on_logon: false,
        logon_timeout_ns: 5 * S,
    }
}

fn msg(msg_type: &[u8], seq: u64) -> Inbound<'_> {
    Inbound {
        msg_type,
        seq,
        ..Inbound::default()
    }
}

/// `s` takes `m` at `now`: its verdict and what it sends.
fn take(s: &mut Session, m: &Inbound<'_>, now: u64) -> (Verdict, Vec<Admin>) {
    let mut out = Vec::new();
    let v = s.on_inbound(m, now, &mut |a| out.push(a));
    (v, out)
}

/// A session logged on, expecting `next_in`.
fn active(next_in: u64) -> Session {
    let mut s = Session::new(cfg(), (1, next_in));
    s.connected(0);
    assert_eq!(
        take(&mut s, &msg(b"A", next_in), 0),
        (Verdict::Handled, vec![])
    );
    assert_eq!(s.state(), State::Active);
    s
}

#[test]
fn logon_then_messages_in_sequence_are_delivered() {
    let mut s = Session::new(cfg(), (1, 1));
    assert_eq!(
        s.connected(0),
        Admin::Logon {
            heartbeat_s: 10,
            reset: false
        }
    );
    assert_eq!(s.state(), State::LogonSent);
    // Nothing but the Logon's answer is taken first.
    let mut early = Session::new(cfg(), (1, 1));
    early.connected(0);
    assert!(matches!(
        take(&mut early, &msg(b"8", 1), 0).0,
        Verdict::Disconnect(_)
    ));

    assert_eq!(take(&mut s, &msg(b"A", 1), 1).0, Verdict::Handled);
    assert_eq!(take(&mut s, &msg(b"8", 2), 2).0, Verdict::Deliver);
    assert_eq!(take(&mut s, &msg(b"0", 3), 3).0, Verdict::Handled);
    assert_eq!(take(&mut s, &msg(b"8", 4), 4).0, Verdict::Deliver);
    assert_eq!(s.seqs(), (1, 5));
    assert_eq!(s.take_seq(5), 1);
    assert_eq!(s.seqs(), (2, 5));
}

#[test]
fn a_restart_resumes_its_sequence_numbers_unless_told_to_reset() {
    let mut s = Session::new(cfg(), (10, 7));
    s.connected(0);
    assert_eq!(s.take_seq(0), 10);
    assert_eq!(take(&mut s, &msg(b"A", 7), 0).0, Verdict::Handled);
    assert_eq!(s.seqs(), (11, 8));

    let mut r = Session::new(
        SessionConfig {
            reset_on_logon: true,
            ..cfg()
        },
        (10, 7),
    );
    assert_eq!(
        r.connected(0),
        Admin::Logon {
            heartbeat_s: 10,
            reset: true
        }
    );
    assert_eq!(r.seqs(), (1, 1));
    // The counterparty resets on its own: taken when nothing of it is behind us
    // (we expect 1), refused when something is (what it sent while we were
    // away could not be asked for again), the numbers kept.
    let logon = Inbound {
        reset_seq_num: true,
        ..msg(b"A", 1)
    };
    let mut fresh = Session::new(cfg(), (3, 1));
    fresh.connected(0);
    assert_eq!(take(&mut fresh, &logon, 0).0, Verdict::Handled);
    assert_eq!(fresh.seqs(), (3, 2));
    let mut c = Session::new(cfg(), (3, 9));
    c.connected(0);
    assert!(matches!(
        take(&mut c, &logon, 0).0,
        Verdict::Disconnect(why) if why.contains("reset its sequence numbers")
    ));
    assert_eq!(c.seqs(), (3, 9));
}

#[test]
fn a_gap_is_asked_for_once_and_filled_by_the_resend() {
    let mut s = active(1);
    assert_eq!(take(&mut s, &msg(b"8", 2), 0).0, Verdict::Deliver);
    // 3 and 4 lost: 5 arrives.
    let (v, out) = take(&mut s, &msg(b"8", 5), 1);
    assert_eq!(
        (v, out),
        (Verdict::Handled, vec![Admin::ResendRequest { begin: 3 }])
    );
    // 6 as well: no second request.
    assert_eq!(take(&mut s, &msg(b"8", 6), 2), (Verdict::Handled, vec![]));
    // The resend: 3 as a gap fill (it was a heartbeat) up to 4, then 4, 5, 6 again.
    let fill = Inbound {
        gap_fill: true,
        new_seq_no: Some(4),
        poss_dup: true,
        ..msg(b"4", 3)
    };
    assert_eq!(take(&mut s, &fill, 3).0, Verdict::Handled);
    for seq in 4..=6 {
        let again = Inbound {
            poss_dup: true,
            ..msg(b"8", seq)
        };
        assert_eq!(take(&mut s, &again, 4).0, Verdict::Deliver, "{seq}");
    }
    assert_eq!(s.seqs().1, 7);
    // A later gap is asked for again.
    assert_eq!(
        take(&mut s, &msg(b"8", 9), 5).1,
        vec![Admin::ResendRequest { begin: 7 }]
    );
}

#[test]
fn a_duplicate_is_dropped_and_a_low_number_without_possdup_ends_the_session() {
    let mut s = active(1);
    for seq in 2..=4 {
        assert_eq!(take(&mut s, &msg(b"8", seq), 0).0, Verdict::Deliver);
    }
    let dup = Inbound {
        poss_dup: true,
        ..msg(b"8", 3)
    };
    assert_eq!(take(&mut s, &dup, 1), (Verdict::Handled, vec![]));
    let (v, out) = take(&mut s, &msg(b"8", 3), 2);
    assert!(matches!(v, Verdict::Disconnect(_)), "{v:?}");
    assert!(matches!(out[..], [Admin::Logout { .. }]), "{out:?}");
}

#[test]
fn session_messages_are_answered() {
    let mut s = active(1);
    let tr = Inbound {
        test_req_id: Some(b"probe-7"),
        ..msg(b"1", 2)
    };
    assert_eq!(
        take(&mut s, &tr, 0).1,
        vec![Admin::Heartbeat {
            test_req_id: Some(b"probe-7".to_vec())
        }]
    );
    // We sent 1..=4: a ResendRequest for 2.. is filled with one gap fill.
    for _ in 0..4 {
        s.take_seq(0);
    }
    let rr = Inbound {
        begin_seq_no: Some(2),
        end_seq_no: Some(0),
        ..msg(b"2", 3)
    };
    assert_eq!(
        take(&mut s, &rr, 0).1,
        vec![Admin::GapFill {
            seq: 2,
            new_seq_no: 5
        }]
    );
    // A SequenceReset (reset mode) moves the expected number forward, never back.
    let forward = Inbound {
        new_seq_no: Some(20),
        ..msg(b"4", 99)
    };
    assert_eq!(take(&mut s, &forward, 0), (Verdict::Handled, vec![]));
    assert_eq!(s.seqs().1, 20);
    let back = Inbound {
        new_seq_no: Some(5),
        ..msg(b"4", 20)
    };
    assert!(matches!(
        take(&mut s, &back, 0).1[..],
        [Admin::Reject { .. }]
    ));
    assert_eq!(s.seqs().1, 20);
    // Their Logout is answered, and the session ends.
    let (v, out) = take(&mut s, &msg(b"5", 20), 0);
    assert!(matches!(v, Verdict::Disconnect(_)));
    assert_eq!(out, vec![Admin::Logout { text: "" }]);
    // After our own Logout, theirs is not answered again.
    let mut o = active(1);
    o.logout(0);
    let (v, out) = take(&mut o, &msg(b"5", 2), 0);
    assert!(matches!(v, Verdict::Disconnect(_)) && out.is_empty());
}

#[test]
fn quiet_sends_heartbeats_and_silence_ends_the_session() {
    let mut s = active(1);
    s.take_seq(0);
    let timer = |s: &mut Session, now: u64| {
        let mut out = Vec::new();
        let d = s.on_timer(now, &mut |a| out.push(a));
        (d, out)
    };
    assert_eq!(timer(&mut s, 5 * S), (None, vec![]));
    // An interval without sending: a heartbeat.
    assert_eq!(
        timer(&mut s, 10 * S),
        (None, vec![Admin::Heartbeat { test_req_id: None }])
    );
    s.take_seq(10 * S);
    // An interval and a fifth without hearing from them: a TestRequest, once.
    let (d, out) = timer(&mut s, 12 * S + 1);
    assert_eq!(d, None);
    assert_eq!(out, vec![Admin::TestRequest { id: 1 }]);
    s.take_seq(12 * S + 1);
    assert_eq!(timer(&mut s, 13 * S), (None, vec![]));
    // Still nothing an interval later: disconnect.
    assert!(timer(&mut s, 23 * S).0.is_some());

    // An answer in time clears it.
    let mut t = active(1);
    t.take_seq(0);
    let _ = timer(&mut t, 12 * S + 1);
    take(&mut t, &msg(b"0", 2), 13 * S);
    assert_eq!(timer(&mut t, 20 * S).0, None);

    // A Logon left unanswered.
    let mut l = Session::new(cfg(), (1, 1));
    l.connected(0);
    assert_eq!(timer(&mut l, 5 * S).0, None);
    assert!(timer(&mut l, 5 * S + 1).0.is_some());
}

/// A message of the counterparty's, as it keeps it for resends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sent {
    Logon,
    Heartbeat,
    App,
}

/// `s` takes `m`; a delivered message's number goes to `delivered`. The
/// ResendRequest it answered with, if any.
fn feed(
    s: &mut Session,
    m: Inbound<'_>,
    delivered: &mut Vec<u64>,
) -> Result<Option<u64>, TestCaseError> {
    let (v, out) = take(s, &m, 0);
    if let Verdict::Disconnect(why) = v {
        prop_assert!(false, "disconnected at {}: {}", m.seq, why);
    }
    if v == Verdict::Deliver {
        delivered.push(m.seq);
    }
    Ok(out.iter().find_map(|a| match a {
        Admin::ResendRequest { begin } => Some(*begin),
        _ => None,
    }))
}

/// The counterparty's resend of `begin..end`: its application messages again
/// with PossDupFlag, the rest as gap fills.
fn resend_from(
    s: &mut Session,
    sent: &[Sent],
    begin: u64,
    end: u64,
    delivered: &mut Vec<u64>,
) -> Result<(), TestCaseError> {
    for seq in begin..end {
        let m = match sent[seq as usize - 1] {
            Sent::App => Inbound {
                poss_dup: true,
                ..msg(b"8", seq)
            },
            _ => Inbound {
                poss_dup: true,
                gap_fill: true,
                new_seq_no: Some(seq + 1),
                ..msg(b"4", seq)
            },
        };
        feed(s, m, delivered)?;
    }
    Ok(())
}

proptest! {
    /// The counterparty sends application messages and heartbeats over TCP, so
    /// a connection loses only its tail: each connection delivers some of what
    /// is sent on it and then breaks. On each new connection the counterparty's
    /// Logon shows the gap, the session asks for it, and the counterparty sends
    /// it again with PossDupFlag (its Logons and heartbeats as gap fills). Some
    /// messages also arrive twice (PossDup). Each application message reaches
    /// the application exactly once, in order.
    #[test]
    fn each_message_is_delivered_once_in_order_whatever_the_network_does(
        plan in prop::collection::vec((any::<bool>(), 0u8..8), 1..60),
        cuts in prop::collection::vec(0usize..6, 1..8),
    ) {
        let mut s = Session::new(cfg(), (1, 1));
        let mut sent: Vec<Sent> = Vec::new(); // seq = index + 1
        let mut delivered: Vec<u64> = Vec::new();
        let mut want: Vec<u64> = Vec::new();
        let mut plan = plan.into_iter().peekable();
        let mut connection = 0;
        while plan.peek().is_some() || connection == 0 {
            // A new connection: our Logon, then theirs, with their next number.
            s.disconnected();
            s.connected(0);
            sent.push(Sent::Logon);
            let logon_seq = sent.len() as u64;
            let resend = feed(&mut s, msg(b"A", logon_seq), &mut delivered)?;
            if let Some(begin) = resend {
                // The resend, up to and with the Logon (dropped as past the gap).
                resend_from(&mut s, &sent, begin, logon_seq + 1, &mut delivered)?;
            }
            prop_assert_eq!(s.seqs().1, logon_seq + 1, "caught up after the logon");
            // This connection carries some messages, then breaks.
            let cut = cuts[connection % cuts.len()];
            connection += 1;
            let mut n = 0;
            for (app, dup) in plan.by_ref() {
                sent.push(if app { Sent::App } else { Sent::Heartbeat });
                let seq = sent.len() as u64;
                if app {
                    want.push(seq);
                }
                n += 1;
                let lost = cut > 0 && n > cut * 3 && connection < 40;
                if !lost {
                    let m = if app { msg(b"8", seq) } else { msg(b"0", seq) };
                    feed(&mut s, m, &mut delivered)?;
                    if dup == 0 && app {
                        feed(&mut s, Inbound { poss_dup: true, ..msg(b"8", seq) }, &mut delivered)?;
                    }
                }
                if lost || (cut > 0 && n == cut * 3 + 2) {
                    break;
                }
            }
        }
        // A last connection brings whatever the last one lost.
        s.disconnected();
        s.connected(0);
        sent.push(Sent::Logon);
        let logon_seq = sent.len() as u64;
        if let Some(begin) = feed(&mut s, msg(b"A", logon_seq), &mut delivered)? {
            resend_from(&mut s, &sent, begin, logon_seq + 1, &mut delivered)?;
        }
        prop_assert_eq!(delivered, want);
    }
}

/// Every administrative message, written by the codec and read back: the
/// session reads from it what it wrote.
#[test]
fn administrative_messages_read_back_as_written() {
    use fillcast_engine::units::Nanos;
    use fillcast_gateways::fix::session::CompIds;
    use fillcast_gateways::fix::{Decoder, Encoder, Limits};
    let enc = Encoder::default();
    let ids = CompIds {
        sender: b"FILLCAST",
        target: b"VENUE",
    };
    let now = Nanos(1_732_060_800_123_000_000);
    let cases = [
        (
            Admin::Logon {
                heartbeat_s: 30,
                reset: true,
            },
            Inbound {
                reset_seq_num: true,
                ..msg(b"A", 7)
            },
        ),
        (
            Admin::Heartbeat {
                test_req_id: Some(b"t-1".to_vec()),
            },
            Inbound {
                test_req_id: Some(b"t-1"),
                ..msg(b"0", 7)
            },
        ),
        (Admin::Heartbeat { test_req_id: None }, msg(b"0", 7)),
        (
            Admin::TestRequest { id: 3 },
            Inbound {
                test_req_id: Some(b"3"),
                ..msg(b"1", 7)
            },
        ),
        (
            Admin::ResendRequest { begin: 5 },
            Inbound {
                begin_seq_no: Some(5),
                end_seq_no: Some(0),
                ..msg(b"2", 7)
            },
        ),
        (
            Admin::GapFill {
                seq: 4,
                new_seq_no: 9,
            },
            Inbound {
                poss_dup: true,
                gap_fill: true,
                new_seq_no: Some(9),
                ..msg(b"4", 4)
            },
        ),
        (
            Admin::Reject {
                ref_seq: 2,
                reason: 5,
                text: "bad",
            },
            msg(b"3", 7),
        ),
        (Admin::Logout { text: "" }, msg(b"5", 7)),
    ];
    for (admin, want) in cases {
        let mut out = Vec::new();
        let range = admin.write(&enc, &mut out, ids, 7, now).expect("written");
        assert_eq!(range, 0..out.len());
        let mut dec = Decoder::new(Limits::default());
        let (m, used) = dec.next(&out).expect("valid").expect("whole");
        assert_eq!(used, out.len());
        assert_eq!(
            Inbound::read(&m).expect("session fields"),
            want,
            "{admin:?}"
        );
        assert_eq!(m.get(49), Some(b"FILLCAST".as_slice()));
        if let Admin::Reject { .. } = admin {
            assert_eq!((m.u64(45), m.u64(373)), (Ok(2), Ok(5)));
        }
    }
}

/// The session store: the pair saved is the pair read back; a new session
/// starts at 1; after an unclean stop `next_out` moves ahead (a gap the
/// counterparty asks for, never a number too low); a file that does not read is
/// an error naming it, never a guess.
#[test]
fn the_session_store_keeps_the_numbers_and_refuses_a_damaged_file() {
    use fillcast_gateways::fix::store::{resume, SeqStore, StoreError, UNCLEAN_MARGIN};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oe.seqs");
    let (mut store, saved) = SeqStore::open(&path).unwrap();
    assert_eq!(saved, None);
    assert_eq!(resume(saved, true), (1, 1));
    store.save((42, 17)).unwrap();
    store.save((43, 17)).unwrap();
    let (_, saved) = SeqStore::open(&path).unwrap();
    assert_eq!(saved, Some((43, 17)));
    assert_eq!(resume(saved, false), (43, 17));
    assert_eq!(resume(saved, true), (43 + UNCLEAN_MARGIN, 17));
    // A resumed session numbers from there.
    let mut s = Session::new(cfg(), resume(saved, false));
    s.connected(0);
    assert_eq!(s.take_seq(0), 43);

    for bad in [
        &b""[..],
        b"fillcast-fix-seqs v1 next_out=43 next_in=17",
        b"fillcast-fix-seqs v1 next_out=43\n",
        b"fillcast-fix-seqs v1 next_out=0 next_in=17\n",
        b"fillcast-fix-seqs v1 next_out=+4 next_in=17\n",
        b"fillcast-fix-seqs v1 next_out=4 next_in=18446744073709551616\n",
        b"fillcast-fix-seqs v1 next_out=4 next_in=5 next=6\n",
        b"something else entirely\n",
        b"\xff\xfe\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        match SeqStore::open(&path) {
            Err(e @ StoreError::Damaged { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("oe.seqs") && msg.contains("next_out=N next_in=M"),
                    "{msg}"
                );
            }
            other => panic!("{:?} read as {other:?}", String::from_utf8_lossy(bad)),
        }
    }
}

/// Found by the `fix_session` fuzz body: a Logon with ResetSeqNumFlag but a
/// MsgSeqNum other than 1 set the expected number back to 1 and then asked for
/// a "gap" the counterparty had never sent. Such a Logon ends the session.
#[test]
fn regression_a_resetting_logon_not_numbered_1_moved_the_expected_number_back() {
    let mut s = Session::new(cfg(), (1, 2));
    s.connected(0);
    let logon = Inbound {
        reset_seq_num: true,
        ..msg(b"A", 5)
    };
    let (v, out) = take(&mut s, &logon, 0);
    assert!(matches!(v, Verdict::Disconnect(_)), "{v:?}");
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(s.seqs(), (1, 2));
}

/// Found by the unclean-restart test against QuickFIX: our Logon resumed ahead
/// (a gap for the counterparty), its Logon showed a gap for us, and its
/// ResendRequest came in the same read. Our ResendRequest took its number after
/// the session had chosen the GapFill's NewSeqNo, so the GapFill, written after
/// it, did not cover it: QuickFIX had taken it out of order and waited for it
/// again for ever. The GapFill must cover every message written before it.
#[test]
fn regression_a_gap_fill_did_not_cover_the_resend_request_written_before_it() {
    use fillcast_engine::units::Nanos;
    use fillcast_gateways::fix::conn::Connection;
    use fillcast_gateways::fix::session::CompIds;
    use fillcast_gateways::fix::{Decoder, Encoder, Header, Limits};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut venue, _) = listener.accept().unwrap();
    venue
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let ids = CompIds {
        sender: b"US",
        target: b"THEM",
    };
    let mut c = Connection::start(stream, cfg(), ids, (100, 1), Nanos(1)).expect("logon");

    // What the venue reads, as (MsgType, MsgSeqNum, NewSeqNo) until `n` came.
    let mut inbox = Vec::new();
    let reader = venue.try_clone().unwrap();
    let mut read = |n: usize| {
        let mut venue = &reader;
        let mut got = Vec::new();
        let mut dec = Decoder::new(Limits::default());
        while got.len() < n {
            let mut chunk = [0u8; 4096];
            let k = venue.read(&mut chunk).expect("our messages");
            assert!(k > 0, "closed after {got:?}");
            inbox.extend_from_slice(&chunk[..k]);
            while let Ok(Some((m, used))) = dec.next(&inbox) {
                got.push((m.msg_type().to_vec(), m.u64(34).unwrap(), m.u64(36).ok()));
                inbox.drain(..used);
            }
        }
        got
    };
    assert_eq!(read(1), vec![(b"A".to_vec(), 100, None)]);

    let enc = Encoder::new(Limits::default());
    let mut bytes = Vec::new();
    let header = |msg_type: &'static [u8], seq| Header {
        msg_type,
        sender_comp_id: b"THEM",
        target_comp_id: b"US",
        msg_seq_num: seq,
        sending_time: Nanos(1),
    };
    let mut w = enc.begin(&mut bytes, &header(b"A", 5)).unwrap();
    w.u64(98, 0).unwrap().u64(108, 10).unwrap();
    w.finish();
    let mut w = enc.begin(&mut bytes, &header(b"2", 6)).unwrap();
    w.u64(7, 1).unwrap().u64(16, 0).unwrap();
    w.finish();
    // Ahead of what we expect (1): held back until our resend request is filled.
    let w = enc.begin(&mut bytes, &header(b"0", 7)).unwrap();
    w.finish();
    venue.write_all(&bytes).unwrap();

    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c.state() != State::Active || !c.catching_up() {
        assert!(std::time::Instant::now() < until, "no logon");
        c.poll(Nanos(2), &mut |m| panic!("nothing to deliver: {m:?}"))
            .expect("session goes on");
    }
    let got = read(2);
    assert_eq!(
        got,
        vec![
            (b"2".to_vec(), 101, None),
            // Covers 100 and 101: the next message we write is 102.
            (b"4".to_vec(), 1, Some(102)),
        ]
    );
}

/// Found by the red team: a counterparty that never fills a gap we asked for
/// (but goes on with heartbeats) held everything after it back for ever. A
/// resend that makes no progress for two heartbeat intervals ends the
/// connection, so that a new one asks again; one that progresses goes on.
#[test]
fn regression_a_gap_never_filled_held_the_session_for_ever() {
    let mut s = active(1);
    let hb = 10 * S;
    // The Logon was 1: 2 and 3 are missing.
    let (v, out) = take(&mut s, &msg(b"0", 4), S);
    assert_eq!(v, Verdict::Handled);
    assert_eq!(out, vec![Admin::ResendRequest { begin: 2 }]);
    assert_eq!(s.on_timer(S + hb, &mut |_| {}), None);
    // Progress: message 2 of the resend.
    let resent = Inbound {
        poss_dup: true,
        ..msg(b"8", 2)
    };
    assert_eq!(take(&mut s, &resent, S + 2 * hb).0, Verdict::Deliver);
    assert_eq!(s.on_timer(S + 3 * hb, &mut |_| {}), None);
    // Then nothing more of it, while heartbeats keep the line alive.
    let mut now = S + 2 * hb;
    while now <= S + 4 * hb + 1 {
        now += hb / 2;
        let _ = take(&mut s, &msg(b"0", 9), now);
        if let Some(why) = s.on_timer(now, &mut |_| {}) {
            assert!(why.contains("did not fill the gap"), "{why}");
            return;
        }
    }
    panic!("the stalled resend never ended the connection");
}

/// The store is saved when due, not per message (it was the largest cost of a
/// FIX round trip): at once the first time, then when `next_out` moved
/// `SAVE_EVERY` (a crash leaves it less than `UNCLEAN_MARGIN` behind) or a
/// second after a change; a clean end saves whole.
#[test]
fn the_session_store_saves_when_due() {
    use fillcast_gateways::fix::store::{SeqStore, SAVE_EVERY, UNCLEAN_MARGIN};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.seqs");
    let on_disk = || SeqStore::open(&path).unwrap().1;
    let (mut store, _) = SeqStore::open(&path).unwrap();
    store.save_due((1, 1), S).unwrap();
    assert_eq!(on_disk(), Some((1, 1)));
    store.save_due((2, 5), S + 1).unwrap();
    assert_eq!(on_disk(), Some((1, 1)), "not per message");
    store.save_due((SAVE_EVERY, 9), S + 2).unwrap();
    assert_eq!(on_disk(), Some((1, 1)));
    store.save_due((SAVE_EVERY + 1, 9), S + 3).unwrap();
    assert_eq!(
        on_disk(),
        Some((SAVE_EVERY + 1, 9)),
        "next_out moved SAVE_EVERY"
    );
    store.save_due((SAVE_EVERY + 2, 10), S + 4).unwrap();
    assert_eq!(on_disk(), Some((SAVE_EVERY + 1, 9)));
    store.save_due((SAVE_EVERY + 2, 10), 2 * S + 4).unwrap();
    assert_eq!(
        on_disk(),
        Some((SAVE_EVERY + 2, 10)),
        "a second after a change"
    );
    store.save((SAVE_EVERY + 3, 11)).unwrap();
    assert_eq!(on_disk(), Some((SAVE_EVERY + 3, 11)));
    const { assert!(SAVE_EVERY * 4 < UNCLEAN_MARGIN) };
}

/// From the red team's doubts: a counterparty that sends and closes at once
/// (its last report, or a Logout with a reason) had those bytes dropped, the
/// close seen first; they came back only through a resend, and the Logout's
/// reason never. What arrived before the close is read first.
#[test]
fn regression_what_came_with_the_close_was_not_read() {
    use fillcast_engine::units::Nanos;
    use fillcast_gateways::fix::conn::{Closed, Connection};
    use fillcast_gateways::fix::session::CompIds;
    use fillcast_gateways::fix::{Encoder, Header, Limits};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut venue, _) = listener.accept().unwrap();
    let ids = CompIds {
        sender: b"US",
        target: b"THEM",
    };
    let mut c = Connection::start(stream, cfg(), ids, (1, 1), Nanos(1)).expect("logon");
    let mut logon = [0u8; 512];
    let _ = venue.read(&mut logon).expect("our Logon");
    let enc = Encoder::new(Limits::default());
    let mut bytes = Vec::new();
    for (seq, msg_type) in [(1, &b"A"[..]), (2, b"8")] {
        let mut w = enc
            .begin(
                &mut bytes,
                &Header {
                    msg_type,
                    sender_comp_id: b"THEM",
                    target_comp_id: b"US",
                    msg_seq_num: seq,
                    sending_time: Nanos(1),
                },
            )
            .unwrap();
        if msg_type == b"A" {
            w.u64(98, 0).unwrap().u64(108, 10).unwrap();
        } else {
            w.str(17, "LAST").unwrap();
        }
        w.finish();
    }
    venue.write_all(&bytes).unwrap();
    drop(venue);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut got = Vec::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let end = loop {
        match c.poll(Nanos(2), &mut |m| got.push(m.get(17).map(<[u8]>::to_vec))) {
            Ok(()) => assert!(std::time::Instant::now() < until, "no close seen"),
            Err(e) => break e,
        }
    };
    assert!(matches!(end, Closed::Eof), "{end}");
    assert_eq!(
        got,
        vec![Some(b"LAST".to_vec())],
        "the report sent with the close"
    );
    assert_eq!(c.seqs().1, 3, "both messages taken");
}
