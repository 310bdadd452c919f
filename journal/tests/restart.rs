//! `restart::open` after an unclean stop: it lists the orders each venue holds from
//! the journal's tail on, and what it does when a venue cannot or does not answer.

use fillcast_engine::config::load_str;
use fillcast_engine::event::ExecReport;
use fillcast_engine::model::Universe;
use fillcast_engine::port::{AskedOrder, VenueError};
use fillcast_engine::units::Nanos;
use fillcast_journal::restart::{self, RestartError, Venues};
use fillcast_journal::writer::JournalOptions;
use std::path::Path;
use std::sync::Arc;

use crate::golden::CONFIG;

/// A venue whose `orders_since` gives `listing`; it holds no unanswered order.
struct Listing(Result<(), VenueError>);

impl Venues for Listing {
    fn name(&self, _venue: usize) -> Option<String> {
        Some("sim".into())
    }

    fn recover(
        &mut self,
        _venue: usize,
        _orders: &[AskedOrder],
        _out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        Ok(())
    }

    fn orders_since(
        &mut self,
        _venue: usize,
        _since: Nanos,
        _out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        self.0.clone()
    }
}

fn open(dir: &Path, venue: Result<(), VenueError>) -> (Result<(), RestartError>, Vec<String>) {
    let cfg = load_str(CONFIG, Path::new("restart.toml")).unwrap();
    let u = Arc::new(Universe::from_config(&cfg).unwrap());
    let opts = JournalOptions {
        segment_bytes: 1 << 20,
        ..JournalOptions::default()
    };
    let mut log = Vec::new();
    let opened = restart::open(
        dir,
        opts,
        &cfg,
        &u,
        &mut Listing(venue),
        Nanos(1_700_000_000_000_000_000),
        &mut |line| log.push(line),
    );
    (opened.map(|_| ()), log)
}

/// Regression (issue 11, typed venue errors): a venue that can list its orders but
/// did not answer after an unclean stop made the restart go on without them, as if
/// it could not list them at all. Now it refuses to start (the next start asks
/// again); a venue that cannot list them is named and the run goes on.
#[test]
fn regression_a_venue_that_failed_to_list_its_orders_did_not_stop_the_restart() {
    let d = tempfile::tempdir().unwrap();
    // A new journal; the run dies (its marker stays).
    assert!(open(d.path(), Ok(())).0.is_ok());
    assert!(d.path().join(restart::ASK_FIRST_MARKER).exists());

    let failed = VenueError::Failed {
        venue: "sim".into(),
        what: "listing its orders".into(),
        cause: "timed out".into(),
    };
    let (r, _) = open(d.path(), Err(failed));
    match r {
        Err(RestartError::Venue { venue, message }) => {
            assert_eq!(venue, "sim");
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("started without the venue's answer: {other:?}"),
    }

    let unsupported = VenueError::Unsupported {
        venue: "sim".into(),
        what: "list the orders it holds",
    };
    let (r, log) = open(d.path(), Err(unsupported));
    assert!(r.is_ok(), "{r:?}");
    assert!(
        log.iter()
            .any(|l| l.contains("cannot list the orders it holds")),
        "{log:?}"
    );
}
