use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadSegment { path: PathBuf, message: String },
    /// Another process holds the journal (`writer::lock`): two writers, or a
    /// repair beside a writer, would damage it.
    #[error("journal {}: another process has it open (a running `fillcast run`, or `fillcast journal repair`); stop that first: two writers would damage the journal", dir.display())]
    Locked { dir: PathBuf },
    #[error("{path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A caller's mistake (no input makes it): a row record where the segment
    /// takes none (`JournalWriter::takes_rows`), or of no rows.
    #[error("journal writer misused: {0}")]
    BadArgument(String),
    #[error("a record of {len} bytes does not fit in a segment of {segment} bytes")]
    TooLarge { len: usize, segment: u64 },
    #[error("journal {dir}: sequence {seq} is missing (segments do not follow each other)")]
    Gap { dir: PathBuf, seq: u64 },
    #[error("journal {}: no space for a new segment of {} MiB: {source}; free space (or raise the file size limit) and run again: every record appended so far is kept", dir.display(), bytes.div_ceil(1 << 20))]
    NoSpace {
        dir: PathBuf,
        bytes: u64,
        source: std::io::Error,
    },
    /// A bad record with valid records after it: not a torn tail, so recovery
    /// refuses to cut (it would throw away history the engine acted upon).
    #[error("{} at offset {offset}: record {seq} is damaged ({reason}), but valid records follow it (the next one is {next_seq}); this is not a torn tail, so nothing was changed. `fillcast journal repair {}` shows what a repair would drop; add --yes to do it", path.display(), dir.display())]
    Damaged {
        dir: PathBuf,
        path: PathBuf,
        offset: u64,
        seq: u64,
        next_seq: u64,
        reason: String,
    },
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> JournalError {
        let path = path.into();
        move |source| JournalError::Io { path, source }
    }
}
