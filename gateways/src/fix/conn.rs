//! One FIX session over one TCP connection: the codec on a non-blocking socket,
//! driven by the session state machine. `poll` reads what has arrived, decodes
//! it, lets the session answer the administrative messages, hands application
//! messages to the caller in sequence, and writes what is due (heartbeats, test
//! requests); `send` queues an application message with the next sequence
//! number, and `flush` (or the next `poll`) writes everything queued in as few
//! socket writes as the socket takes: a whole egress chunk goes out in one. It
//! neither blocks nor sleeps: the I/O thread calls it with the time.
//!
//! The caller reconnects (a new `Connection` with the numbers `seqs` gave),
//! throttles, and keeps the numbers on disk (its session store).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use fillcast_engine::units::Nanos;

use super::codec::{Decoder, EncodeError, Encoder, Header, Limits, Message, Writer};
use super::session::{Admin, CompIds, Inbound, Session, SessionConfig, State, Verdict};

/// Why a connection ended; the caller logs it, counts it and reconnects.
#[derive(Debug, thiserror::Error)]
pub enum Closed {
    #[error("the socket failed: {0}")]
    Io(#[from] io::Error),
    #[error("the counterparty closed the connection")]
    Eof,
    #[error("{0}")]
    Session(&'static str),
    #[error("unreadable bytes from the counterparty: {0}")]
    Garbled(String),
    #[error("a message could not be written: {0}")]
    Encode(#[from] EncodeError),
}

/// A FIX session on a connected socket.
pub struct Connection {
    stream: TcpStream,
    session: Session,
    sender: Vec<u8>,
    target: Vec<u8>,
    decoder: Decoder,
    encoder: Encoder,
    /// Bytes read and not yet decoded.
    inbox: Vec<u8>,
    /// Bytes encoded and not yet written.
    outbox: Vec<u8>,
    /// The session's answers of one `poll`, kept to be reused.
    answers: Vec<Admin>,
}

impl Connection {
    /// Takes a connected `stream` (made non-blocking here) and sends our Logon,
    /// resuming the session at `seqs` (`(next_out, next_in)`).
    pub fn start(
        stream: TcpStream,
        cfg: SessionConfig,
        ids: CompIds<'_>,
        seqs: (u64, u64),
        now: Nanos,
    ) -> Result<Connection, Closed> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let limits = Limits::default();
        let mut c = Connection {
            stream,
            session: Session::new(cfg, seqs),
            sender: ids.sender.to_vec(),
            target: ids.target.to_vec(),
            decoder: Decoder::new(limits),
            encoder: Encoder::new(limits),
            inbox: Vec::with_capacity(limits.message_bytes_max * 2),
            outbox: Vec::with_capacity(64 * 1024),
            answers: Vec::new(),
        };
        let logon = c.session.connected(now.0);
        c.queue(&logon, now)?;
        c.flush()?;
        Ok(c)
    }

    pub fn state(&self) -> State {
        self.session.state()
    }

    /// `(next_out, next_in)`, for the session store.
    pub fn seqs(&self) -> (u64, u64) {
        self.session.seqs()
    }

    /// Reads what has arrived, and gives each application message in sequence to
    /// `deliver`; answers and timers go out. `Err` when the connection is over.
    pub fn poll(
        &mut self,
        now: Nanos,
        deliver: &mut dyn FnMut(&Message<'_>),
    ) -> Result<(), Closed> {
        let mut chunk = [0u8; 16 * 1024];
        // The counterparty closed: what it sent before (its Logout, its last
        // reports) is still read first.
        let mut eof = false;
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.inbox.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.session.disconnected();
                    return Err(e.into());
                }
            }
            if self.inbox.len() >= self.decoder.limits().message_bytes_max * 2 {
                break;
            }
        }
        let mut used = 0;
        let mut admin = std::mem::take(&mut self.answers);
        let mut verdict = None;
        while used < self.inbox.len() {
            match self.decoder.next(&self.inbox[used..]) {
                Ok(None) => break,
                Ok(Some((m, n))) => {
                    used += n;
                    let Ok(inbound) = Inbound::read(&m) else {
                        // Without a MsgSeqNum (or with session fields that do not
                        // parse) the message cannot be placed in the sequence.
                        verdict = Some(Verdict::Disconnect(
                            "a message whose session fields do not parse",
                        ));
                        break;
                    };
                    let v = self
                        .session
                        .on_inbound(&inbound, now.0, &mut |a| admin.push(a));
                    match v {
                        Verdict::Deliver => deliver(&m),
                        Verdict::Handled => {}
                        Verdict::Disconnect(_) => {
                            verdict = Some(v);
                            break;
                        }
                    }
                }
                Err(e) => {
                    // A session may Reject a malformed message and go on; a framing
                    // error leaves no sequence number to Reject, so this one closes.
                    self.inbox.drain(..used);
                    let why = e.to_string();
                    self.session.disconnected();
                    return Err(Closed::Garbled(why));
                }
            }
        }
        self.inbox.drain(..used);
        if eof && verdict.is_none() {
            self.answers = admin;
            self.answers.clear();
            self.session.disconnected();
            return Err(Closed::Eof);
        }
        // Timers only for a session that goes on.
        let over = match verdict {
            None => self.session.on_timer(now.0, &mut |a| admin.push(a)),
            Some(_) => None,
        };
        let queued = admin.iter().try_for_each(|a| self.queue(a, now));
        admin.clear();
        self.answers = admin;
        queued?;
        if let Some(Verdict::Disconnect(why)) = verdict {
            let _ = self.flush();
            self.session.disconnected();
            return Err(Closed::Session(why));
        }
        self.flush()?;
        if let Some(why) = over {
            self.session.disconnected();
            return Err(Closed::Session(why));
        }
        Ok(())
    }

    /// Queues an application message of type `msg_type` with the next sequence
    /// number (`body` writes its fields after the standard header); `flush` or
    /// the next `poll` writes it. Returns the sequence number it took.
    pub fn send(
        &mut self,
        msg_type: &[u8],
        now: Nanos,
        body: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
    ) -> Result<u64, Closed> {
        let seq = self.session.take_seq(now.0);
        let mut w = self.encoder.begin(
            &mut self.outbox,
            &Header {
                msg_type,
                sender_comp_id: &self.sender,
                target_comp_id: &self.target,
                msg_seq_num: seq,
                sending_time: now,
            },
        )?;
        body(&mut w)?;
        w.finish();
        Ok(seq)
    }

    /// Whether the counterparty is resending a gap we asked for: messages past
    /// it wait until it is filled.
    pub fn catching_up(&self) -> bool {
        self.session.resending()
    }

    /// Bytes queued and not yet taken by the socket (a slow counterparty).
    pub fn unsent(&self) -> usize {
        self.outbox.len()
    }

    /// A clean end: our Logout, if the session is active, and its answer awaited
    /// at most `wait` (nothing else taken meanwhile). The numbers to keep: ours as
    /// the Logout left them, the expected one as before it, so that what the
    /// counterparty sent meanwhile, never handed on, is asked for again.
    pub fn close(&mut self, wait: std::time::Duration) -> (u64, u64) {
        let expected = self.seqs().1;
        if self.state() == State::Active {
            let now = fillcast_engine::clock::now();
            if self.logout(now).is_ok() {
                let until = now.0.saturating_add(wait.as_nanos() as u64);
                let now = fillcast_engine::clock::now;
                while now().0 < until && self.poll(now(), &mut |_| {}).is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
        (self.seqs().0, expected)
    }

    /// Our Logout; the connection ends when the counterparty answers (`poll`).
    pub fn logout(&mut self, now: Nanos) -> Result<(), Closed> {
        let a = self.session.logout(now.0);
        self.queue(&a, now)?;
        self.flush()
    }

    fn queue(&mut self, a: &Admin, now: Nanos) -> Result<(), Closed> {
        let (a, seq) = match *a {
            // A gap fill carries its own number and takes none. It covers every
            // message written before it, numbered after the session chose it
            // (a ResendRequest answered in the same read): the counterparty may
            // have taken those out of order and will not see them again.
            Admin::GapFill { seq, .. } => (
                &Admin::GapFill {
                    seq,
                    new_seq_no: self.session.seqs().0,
                },
                0,
            ),
            _ => (a, self.session.take_seq(now.0)),
        };
        let ids = CompIds {
            sender: &self.sender,
            target: &self.target,
        };
        a.write(&self.encoder, &mut self.outbox, ids, seq, now)?;
        Ok(())
    }

    /// Writes as much of what is queued as the socket takes now; the rest waits
    /// for the next `flush` or `poll`.
    pub fn flush(&mut self) -> Result<(), Closed> {
        let mut written = 0;
        while written < self.outbox.len() {
            match self.stream.write(&self.outbox[written..]) {
                Ok(0) => return Err(Closed::Eof),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        self.outbox.drain(..written);
        Ok(())
    }
}

/// How long a connect may hold the I/O thread.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// The counterparty of a session, as config names it: where its acceptor is,
/// the comp ids, the session's settings.
#[derive(Clone, Debug)]
pub struct Peer {
    /// `host:port` of its acceptor.
    pub address: String,
    /// SenderCompID (49) on what we send, and TargetCompID (56).
    pub sender_comp_id: String,
    pub target_comp_id: String,
    pub session: SessionConfig,
}

impl Peer {
    /// Connects (within `CONNECT_TIMEOUT`) and sends our Logon, resuming at
    /// `seqs`; `Err` says why not, for the caller's log.
    pub fn dial(&self, seqs: (u64, u64), now: Nanos) -> Result<Connection, String> {
        use std::net::ToSocketAddrs;
        let address = &self.address;
        let addr = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("address `{address}` does not resolve"))?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let ids = CompIds {
            sender: self.sender_comp_id.as_bytes(),
            target: self.target_comp_id.as_bytes(),
        };
        Connection::start(stream, self.session.clone(), ids, seqs, now)
            .map_err(|e| format!("logon to {addr}: {e}"))
    }
}

/// When to try a connection again: a doubling wait from 100 ms to 10 s, back to
/// the shortest once a session is up.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    retry_at_ns: u64,
    wait_ns: u64,
}

impl Backoff {
    const MIN_NS: u64 = 100_000_000;
    const MAX_NS: u64 = 10_000_000_000;

    pub fn new() -> Backoff {
        Backoff {
            retry_at_ns: 0,
            wait_ns: Backoff::MIN_NS,
        }
    }

    pub fn due(&self, now: Nanos) -> bool {
        now.0 >= self.retry_at_ns
    }

    /// A failure at `now`: the wait before the next try, in ns.
    pub fn failed(&mut self, now: Nanos) -> u64 {
        let wait = self.wait_ns;
        self.retry_at_ns = now.0.saturating_add(wait);
        self.wait_ns = (wait * 2).min(Backoff::MAX_NS);
        wait
    }

    pub fn succeeded(&mut self) {
        self.wait_ns = Backoff::MIN_NS;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}
