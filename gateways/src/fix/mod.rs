//! FIX 4.4 over TCP (issue 13). Today only the tag=value [`codec`]: framing,
//! validation and typed access on the way in, a writer that computes BodyLength and
//! CheckSum on the way out. The session layer, the drop-copy source and the
//! order-entry gateway will sit on top of it.
//!
//! **Architecture Invariant:** the codec does no I/O and keeps no session state; it
//! reports what is wrong with the bytes and how far to skip, and the session decides
//! whether to Reject, resynchronise or disconnect.

pub mod codec;

pub use codec::{
    Decoder, EncodeError, Encoder, ErrorKind, FieldError, FixError, Header, Limits, Message,
    TimePrecision, ValueError, Writer, BEGIN_STRING, SOH,
};
