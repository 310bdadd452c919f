//! fillcast journal: append-only, memory-mapped segment files holding every input
//! the engine took and every decision it made; the only truth after a crash.
//!
//! - `segment`: the on-disk format and the checked scan of a segment's bytes;
//! - `writer`: appending, segment rolls, durability, and recovery on open;
//! - `reader`: iterating from any sequence; `tail`: following a live journal;
//! - `repair`: cutting a damaged journal at its first bad spot, on an operator's word;
//! - `record`: the typed, versioned rkyv payloads; `stage`: the engine's `JournalSink`;
//! - `replay`: rebuilding the engine from a journal; `restart`: the engine's start
//!   on a journal (recovery, replay, asking the venues about unanswered orders).
//!
//! **Architecture Invariant:** the framing layer (`segment`, `writer`, `reader`,
//! `tail`) knows nothing of what records mean; only `record` does.

pub mod check;
pub mod error;
pub mod fuzzing;
pub mod reader;
pub mod record;
pub mod repair;
pub mod replay;
pub mod restart;
pub mod segment;
pub mod stage;
pub mod tail;
pub mod writer;

pub use error::JournalError;
pub use reader::JournalReader;
pub use segment::RecordRef;
pub use tail::Tailer;
pub use writer::{Durability, JournalOptions, JournalWriter, Recovery};
