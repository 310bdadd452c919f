//! One clock for every thread: nanoseconds since the Unix epoch, read from a
//! monotonic `Instant` anchored once to the wall clock, so timestamps from the I/O
//! thread and the core thread are comparable and never go backwards.

use crate::units::Nanos;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();

pub fn now() -> Nanos {
    let (start, epoch_ns) = ANCHOR.get_or_init(|| {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (Instant::now(), epoch)
    });
    Nanos(epoch_ns + start.elapsed().as_nanos() as u64)
}
