//! The FIX 4.4 session layer as a state machine: logon, heartbeats and test
//! requests, sequence numbers in and out, gaps (ResendRequest), resends
//! answered with a gap fill, PossDup duplicates, logout. Pure: it reads the
//! header fields of what arrives (`Inbound`) and the time it is given, and says
//! what to send (`Admin`) and what to do with the message (`Verdict`); the
//! transport (a socket, the codec) and the application (orders, drop copies)
//! are the caller's. So every rule is tested without a socket, and a restart
//! resumes from the two numbers `Session::seqs` gives (kept by the caller in its
//! session store), never from 1 by accident.
//!
//! Resends of the engine's own application messages are answered with a
//! SequenceReset-GapFill, never by sending the orders again: an immediate-or-
//! cancel order repeated late would trade at a price the engine no longer
//! meant, and the engine learns the fate of an order it is unsure of with an
//! OrderStatusRequest (`Gateway::recover`).

use super::app::opt;
use super::codec::{
    parse_u64, EncodeError, Encoder, FieldError, Header, Message, TimePrecision, Writer,
};
use fillcast_engine::units::Nanos;

/// A session's settings (from config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// HeartBtInt (108), in seconds.
    pub heartbeat_s: u32,
    /// ResetSeqNumFlag (141) on our Logon: both sides start again at 1. Off by
    /// default: a restart resumes its sequence numbers.
    pub reset_on_logon: bool,
    /// How long a Logon may go unanswered, ns.
    pub logon_timeout_ns: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat_s: 30,
            reset_on_logon: false,
            logon_timeout_ns: 10_000_000_000,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum State {
    Disconnected,
    /// Our Logon is out; nothing but its answer is taken.
    LogonSent,
    Active,
    /// Our Logout is out; waiting for the counterparty's.
    LogoutSent,
}

/// The header and session fields of a received message.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Inbound<'a> {
    /// MsgType (35).
    pub msg_type: &'a [u8],
    /// MsgSeqNum (34).
    pub seq: u64,
    /// PossDupFlag (43) = Y.
    pub poss_dup: bool,
    /// GapFillFlag (123) = Y, on a SequenceReset.
    pub gap_fill: bool,
    /// NewSeqNo (36), on a SequenceReset.
    pub new_seq_no: Option<u64>,
    /// TestReqID (112).
    pub test_req_id: Option<&'a [u8]>,
    /// BeginSeqNo (7) and EndSeqNo (16), on a ResendRequest (16 = 0: to the end).
    pub begin_seq_no: Option<u64>,
    pub end_seq_no: Option<u64>,
    /// ResetSeqNumFlag (141) = Y, on a Logon.
    pub reset_seq_num: bool,
}

impl<'a> Inbound<'a> {
    /// The session fields of `m`; a present one that does not parse is an error
    /// naming its tag (the caller Rejects the message).
    pub fn read(m: &Message<'a>) -> Result<Inbound<'a>, FieldError> {
        let flag = |tag| m.get(tag) == Some(b"Y".as_slice());
        Ok(Inbound {
            msg_type: m.msg_type(),
            seq: m.u64(34)?,
            poss_dup: flag(43),
            gap_fill: flag(123),
            new_seq_no: opt(m, 36, parse_u64)?,
            test_req_id: m.get(112),
            begin_seq_no: opt(m, 7, parse_u64)?,
            end_seq_no: opt(m, 16, parse_u64)?,
            reset_seq_num: flag(141),
        })
    }
}

/// An administrative message for the caller to send, in this order. Each takes
/// the next outgoing MsgSeqNum (`Session::take_seq`) as it is written, except a
/// gap fill, which carries `seq` itself (with PossDupFlag = Y).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admin {
    Logon {
        heartbeat_s: u32,
        reset: bool,
    },
    /// An answer to a TestRequest carries its id.
    Heartbeat {
        test_req_id: Option<Vec<u8>>,
    },
    TestRequest {
        id: u64,
    },
    /// Ask for `begin..` again (EndSeqNo 0: everything after).
    ResendRequest {
        begin: u64,
    },
    /// SequenceReset-GapFill with MsgSeqNum `seq`: nothing to resend up to
    /// `new_seq_no`.
    GapFill {
        seq: u64,
        new_seq_no: u64,
    },
    /// Reject (35=3) of message `ref_seq`, SessionRejectReason (373) `reason`.
    Reject {
        ref_seq: u64,
        reason: u32,
        text: &'static str,
    },
    Logout {
        text: &'static str,
    },
}

/// Our and the counterparty's CompIDs (49 and 56 on what we send).
#[derive(Clone, Copy, Debug)]
pub struct CompIds<'a> {
    pub sender: &'a [u8],
    pub target: &'a [u8],
}

impl Admin {
    /// Appends this message to `out`, as MsgSeqNum `seq` (a gap fill carries
    /// its own, with PossDupFlag and OrigSendingTime), sent at `now`.
    pub fn write(
        &self,
        enc: &Encoder,
        out: &mut Vec<u8>,
        ids: CompIds<'_>,
        seq: u64,
        now: Nanos,
    ) -> Result<std::ops::Range<usize>, EncodeError> {
        let (msg_type, seq): (&[u8], u64) = match self {
            Admin::Logon { .. } => (b"A", seq),
            Admin::Heartbeat { .. } => (b"0", seq),
            Admin::TestRequest { .. } => (b"1", seq),
            Admin::ResendRequest { .. } => (b"2", seq),
            Admin::GapFill { seq: own, .. } => (b"4", *own),
            Admin::Reject { .. } => (b"3", seq),
            Admin::Logout { .. } => (b"5", seq),
        };
        let mut w: Writer<'_> = enc.begin(
            out,
            &Header {
                msg_type,
                sender_comp_id: ids.sender,
                target_comp_id: ids.target,
                msg_seq_num: seq,
                sending_time: now,
            },
        )?;
        match self {
            Admin::Logon { heartbeat_s, reset } => {
                w.u64(98, 0)?.u64(108, u64::from(*heartbeat_s))?;
                if *reset {
                    w.char(141, b'Y')?;
                }
            }
            Admin::Heartbeat { test_req_id } => {
                if let Some(id) = test_req_id {
                    w.bytes(112, id)?;
                }
            }
            Admin::TestRequest { id } => {
                w.u64(112, *id)?;
            }
            Admin::ResendRequest { begin } => {
                w.u64(7, *begin)?.u64(16, 0)?;
            }
            Admin::GapFill { new_seq_no, .. } => {
                w.char(43, b'Y')?
                    .timestamp(122, now, TimePrecision::Millis)?
                    .char(123, b'Y')?
                    .u64(36, *new_seq_no)?;
            }
            Admin::Reject {
                ref_seq,
                reason,
                text,
            } => {
                w.u64(45, *ref_seq)?.u64(373, u64::from(*reason))?;
                if !text.is_empty() {
                    w.str(58, text)?;
                }
            }
            Admin::Logout { text } => {
                if !text.is_empty() {
                    w.str(58, text)?;
                }
            }
        }
        Ok(w.finish())
    }
}

/// What to do with a received message, after the session has seen it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An application message in sequence: hand it to the application.
    Deliver,
    /// A session message, handled here; or one the session drops (a message
    /// after a gap, which the resend brings again; a PossDup already taken).
    Handled,
    /// Close the connection now, for this reason (logged and counted).
    Disconnect(&'static str),
}

/// One side of a FIX session: our sequence numbers and the counterparty's.
#[derive(Clone, Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    /// The MsgSeqNum of the next message we send.
    next_out: u64,
    /// The MsgSeqNum we expect next.
    next_in: u64,
    /// A ResendRequest is out and not yet filled: up to this sequence number.
    resending_to: Option<u64>,
    /// When the resend last made progress (or was asked for).
    resend_progress_ns: u64,
    last_sent_ns: u64,
    last_received_ns: u64,
    /// When our Logon or Logout went out: its answer is due within the timeout.
    waiting_since_ns: u64,
    /// A TestRequest went out at this time and has not been answered.
    test_request_ns: Option<u64>,
    test_requests: u64,
}

impl Session {
    /// A session that resumes at `seqs` (`(next_out, next_in)` from the store;
    /// `(1, 1)` for a new one).
    pub fn new(cfg: SessionConfig, seqs: (u64, u64)) -> Session {
        Session {
            cfg,
            state: State::Disconnected,
            next_out: seqs.0.max(1),
            next_in: seqs.1.max(1),
            resending_to: None,
            resend_progress_ns: 0,
            last_sent_ns: 0,
            last_received_ns: 0,
            waiting_since_ns: 0,
            test_request_ns: None,
            test_requests: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// A ResendRequest of ours is out and its gap not yet filled.
    pub fn resending(&self) -> bool {
        self.resending_to.is_some()
    }

    /// `(next_out, next_in)`: what the caller keeps so that a restart resumes.
    pub fn seqs(&self) -> (u64, u64) {
        (self.next_out, self.next_in)
    }

    /// The MsgSeqNum for the next message the caller writes (application or
    /// administrative, except a gap fill); counts it as sent now.
    pub fn take_seq(&mut self, now_ns: u64) -> u64 {
        let s = self.next_out;
        self.next_out += 1;
        self.last_sent_ns = now_ns;
        s
    }

    /// The connection is up: our Logon. With `reset_on_logon` both sides start
    /// again at 1.
    pub fn connected(&mut self, now_ns: u64) -> Admin {
        if self.cfg.reset_on_logon {
            self.next_out = 1;
            self.next_in = 1;
        }
        self.state = State::LogonSent;
        self.waiting_since_ns = now_ns;
        self.last_received_ns = now_ns;
        self.resending_to = None;
        self.test_request_ns = None;
        Admin::Logon {
            heartbeat_s: self.cfg.heartbeat_s,
            reset: self.cfg.reset_on_logon,
        }
    }

    /// The connection is gone (either side closed it).
    pub fn disconnected(&mut self) {
        self.state = State::Disconnected;
        self.resending_to = None;
        self.test_request_ns = None;
    }

    /// We want to leave: our Logout; the caller closes after the answer (or
    /// when `on_timer` says it went unanswered).
    pub fn logout(&mut self, now_ns: u64) -> Admin {
        self.state = State::LogoutSent;
        self.waiting_since_ns = now_ns;
        Admin::Logout { text: "" }
    }

    /// A message arrived at `now_ns`. Administrative answers go to `send`, in
    /// order.
    pub fn on_inbound(
        &mut self,
        m: &Inbound<'_>,
        now_ns: u64,
        send: &mut impl FnMut(Admin),
    ) -> Verdict {
        self.last_received_ns = now_ns;
        self.test_request_ns = None;
        let t = m.msg_type;
        if self.state == State::Disconnected {
            return Verdict::Disconnect("a message arrived on a session that is not connected");
        }
        if self.state == State::LogonSent {
            if t != b"A" {
                return Verdict::Disconnect("the first message was not a Logon");
            }
            if m.reset_seq_num {
                // A reset we did not ask for, with messages of the counterparty
                // behind us: whatever it sent that we have not read (while we
                // were away) can no longer be asked for. Refused, loudly.
                if !self.cfg.reset_on_logon && self.next_in > 1 {
                    return Verdict::Disconnect(
                        "the counterparty reset its sequence numbers (Logon with ResetSeqNumFlag) unasked: what it sent while we were away could not be asked for again; agree a reset with it (and check what it sent), then delete the session store",
                    );
                }
                // The counterparty starts again at 1 (answering our reset, or its
                // own), and its Logon must be that 1: another number would leave
                // the expected one behind what it has already sent.
                if m.seq != 1 {
                    return Verdict::Disconnect(
                        "a Logon that resets its numbers is not MsgSeqNum 1",
                    );
                }
                self.next_in = 1;
            }
            self.state = State::Active;
        }
        if m.seq == 0 {
            send(Admin::Reject {
                ref_seq: 0,
                reason: 1, // required tag missing
                text: "MsgSeqNum (34) missing",
            });
            return Verdict::Disconnect("a message without MsgSeqNum");
        }
        // A SequenceReset in reset mode moves the expected number whatever its own.
        if t == b"4" && !m.gap_fill {
            return self.reset_to(m, send);
        }
        if m.seq < self.next_in {
            if m.poss_dup {
                // Seen already: a resend of something we took.
                return Verdict::Handled;
            }
            send(Admin::Logout {
                text: "MsgSeqNum too low, expecting a higher one",
            });
            return Verdict::Disconnect("MsgSeqNum lower than expected without PossDupFlag");
        }
        if m.seq > self.next_in {
            // A gap: ask for it once, and take nothing past it until it is filled
            // (the resend brings this message again). A Logout or a ResendRequest
            // is still honoured.
            if self.resending_to.is_none() {
                send(Admin::ResendRequest {
                    begin: self.next_in,
                });
                self.resending_to = Some(m.seq);
                self.resend_progress_ns = now_ns;
            }
            return match t {
                b"5" => self.on_logout(send),
                b"2" => {
                    self.answer_resend(m, send);
                    Verdict::Handled
                }
                _ => Verdict::Handled,
            };
        }
        // In sequence.
        self.next_in += 1;
        self.resend_progress_ns = now_ns;
        if self.resending_to.is_some_and(|to| self.next_in > to) {
            self.resending_to = None;
        }
        match t {
            b"A" | b"0" => Verdict::Handled,
            b"1" => {
                send(Admin::Heartbeat {
                    test_req_id: Some(m.test_req_id.unwrap_or_default().to_vec()),
                });
                Verdict::Handled
            }
            b"2" => {
                self.answer_resend(m, send);
                Verdict::Handled
            }
            // A session Reject names one of our messages: the application's
            // (an order refused before it was one).
            b"3" => Verdict::Deliver,
            b"4" => {
                // A gap fill in sequence: skip to its NewSeqNo.
                match m.new_seq_no {
                    Some(n) if n > self.next_in - 1 => {
                        self.next_in = n;
                        if self.resending_to.is_some_and(|to| self.next_in > to) {
                            self.resending_to = None;
                        }
                        Verdict::Handled
                    }
                    _ => {
                        send(Admin::Reject {
                            ref_seq: m.seq,
                            reason: 5, // value incorrect
                            text: "NewSeqNo (36) missing or not ahead",
                        });
                        Verdict::Handled
                    }
                }
            }
            b"5" => self.on_logout(send),
            _ => Verdict::Deliver,
        }
    }

    /// Timers, at `now_ns`: a heartbeat when we have been quiet for an interval,
    /// a TestRequest when the counterparty has, and a disconnect when it stays
    /// silent (or a Logon goes unanswered).
    pub fn on_timer(&mut self, now_ns: u64, send: &mut impl FnMut(Admin)) -> Option<&'static str> {
        let hb = u64::from(self.cfg.heartbeat_s.max(1)) * 1_000_000_000;
        match self.state {
            State::Disconnected => None,
            State::LogonSent | State::LogoutSent => (now_ns.saturating_sub(self.waiting_since_ns)
                > self.cfg.logon_timeout_ns)
                .then_some(if self.state == State::LogonSent {
                    "the Logon went unanswered"
                } else {
                    "the Logout went unanswered"
                }),
            State::Active => {
                // A resend that stalls (heartbeats go on, the gap stays open)
                // holds back everything after it: a new connection asks again.
                if self.resending_to.is_some()
                    && now_ns.saturating_sub(self.resend_progress_ns) > 2 * hb
                {
                    return Some(
                        "the counterparty did not fill the gap we asked it to resend (no progress for two heartbeat intervals)",
                    );
                }
                // A fifth of an interval's grace for the network, as is usual.
                let silent = now_ns.saturating_sub(self.last_received_ns);
                if let Some(at) = self.test_request_ns {
                    if now_ns.saturating_sub(at) > hb {
                        return Some("the counterparty stayed silent after a TestRequest");
                    }
                } else if silent > hb + hb / 5 {
                    self.test_requests += 1;
                    self.test_request_ns = Some(now_ns);
                    send(Admin::TestRequest {
                        id: self.test_requests,
                    });
                }
                if now_ns.saturating_sub(self.last_sent_ns) >= hb {
                    send(Admin::Heartbeat { test_req_id: None });
                }
                None
            }
        }
    }

    /// ResendRequest: the range up to our last sent, filled with one gap fill
    /// (administrative messages are never resent, and application ones are not
    /// either: see the module's notes).
    fn answer_resend(&mut self, m: &Inbound<'_>, send: &mut impl FnMut(Admin)) {
        let begin = m.begin_seq_no.unwrap_or(1).max(1);
        if begin >= self.next_out {
            return;
        }
        send(Admin::GapFill {
            seq: begin,
            new_seq_no: self.next_out,
        });
    }

    fn reset_to(&mut self, m: &Inbound<'_>, send: &mut impl FnMut(Admin)) -> Verdict {
        match m.new_seq_no {
            Some(n) if n >= self.next_in => {
                self.next_in = n;
                self.resending_to = None;
                Verdict::Handled
            }
            _ => {
                send(Admin::Reject {
                    ref_seq: m.seq,
                    reason: 5,
                    text: "SequenceReset would move MsgSeqNum back",
                });
                Verdict::Handled
            }
        }
    }

    fn on_logout(&mut self, send: &mut impl FnMut(Admin)) -> Verdict {
        if self.state != State::LogoutSent {
            send(Admin::Logout { text: "" });
        }
        Verdict::Disconnect("the counterparty logged out")
    }
}
