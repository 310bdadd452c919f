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
    #[error("{path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("a record of {len} bytes does not fit in a segment of {segment} bytes")]
    TooLarge { len: usize, segment: u64 },
    #[error("journal {dir}: sequence {seq} is missing (segments do not follow each other)")]
    Gap { dir: PathBuf, seq: u64 },
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> JournalError {
        let path = path.into();
        move |source| JournalError::Io { path, source }
    }
}
