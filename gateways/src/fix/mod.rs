//! FIX 4.4 over TCP (issue 13):
//! - [`codec`]: the tag=value codec: framing, validation and typed access on the
//!   way in, a writer that computes BodyLength and CheckSum on the way out;
//! - [`session`]: the session layer as a state machine (logon, sequence numbers,
//!   gaps and resends, duplicates, heartbeats, logout);
//! - [`app`]: the application mapping between the engine's events and FIX
//!   messages (NewOrderSingle, ExecutionReports on the order-entry and drop-copy
//!   sessions);
//! - [`conn`]: one session over a non-blocking socket; [`store`]: its sequence
//!   numbers across restarts;
//! - [`dropcopy`]: the drop-copy source (`[[sources]] kind = "fix"`);
//! - [`orderentry`]: the order-entry gateway (`[[venues]] kind = "fix"`).
//!
//! **Architecture Invariant:** the codec does no I/O and keeps no session state; it
//! reports what is wrong with the bytes and how far to skip, and the session decides
//! whether to Reject, resynchronise or disconnect.

pub mod app;
pub mod codec;
pub mod conn;
pub mod dropcopy;
pub mod orderentry;
pub mod session;
pub mod store;

pub use codec::{
    Decoder, EncodeError, Encoder, ErrorKind, FieldError, FixError, Header, Limits, Message,
    TimePrecision, ValueError, Writer, BEGIN_STRING, SOH,
};
