//! A live reload through the real pipeline (both threads, the rings, the
//! in-process simulated venue): what a new revision brings reaches the venue.

use fillcast_engine::config::{load_str, EngineConfig};
use fillcast_engine::core::{Core, RevisionPatch};
use fillcast_engine::event::{FeedEvent, LeaderFill};
use fillcast_engine::ids::leader_event_key;
use fillcast_engine::model::{Side, SubIdx, SymbolIdx, Universe, VenueIdx};
use fillcast_engine::pipeline::{self, NewRevision, Restart};
use fillcast_engine::port::{Gateway, Source, SourcePoll};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::sim::SimVenue;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BASE: &str = "[engine]\nfeed_ring_slots = 64\nexec_ring_slots = 64\negress_ring_slots = 16\njournal_ring_slots = 16\nmax_working_orders = 64\ndedup_window = 64\nwait = \"sleep\"\n\
    [[venues]]\nname = \"sim\"\nkind = \"sim\"\n\
    [[symbols]]\nname = \"X\"\nlot_size = \"1\"\ntick_size = \"1\"\nvenue = \"sim\"\n\
    [[leaders]]\nid = \"L1\"\nequity = \"100000\"\n\
    [[followers]]\nid = \"F1\"\nequity = \"100000\"\n\
    [[subscriptions]]\nfollower = \"F1\"\nleader = \"L1\"\nallocation = \"1\"\nmode = \"fixed_ratio\"\nratio = \"1\"\n";

/// Gives its events in turn; the one at `hold` only once `go` is set.
struct Script {
    events: Vec<FeedEvent>,
    next: usize,
    hold: usize,
    go: Arc<AtomicBool>,
}

impl Source for Script {
    fn name(&self) -> &str {
        "script"
    }

    fn next(&mut self, _now: Nanos) -> SourcePoll {
        if self.next == self.hold && !self.go.load(Ordering::Acquire) {
            return SourcePoll::Idle;
        }
        match self.events.get(self.next) {
            Some(&ev) => {
                self.next += 1;
                SourcePoll::Event(ev)
            }
            None => SourcePoll::Finished,
        }
    }
}

fn fill(u: &Universe, symbol: &str, event: &str) -> FeedEvent {
    FeedEvent::LeaderFill(LeaderFill {
        leader: u.leader("L1").unwrap(),
        symbol: u.symbol_in_force(symbol).unwrap(),
        side: Side::Buy,
        qty: Lots(3),
        price: Ticks(100),
        event_key: leader_event_key("L1", event),
        ..LeaderFill::default()
    })
}

/// Found in issue 12 (symbols): the core thread routed each order to its venue's
/// ring by a table of the symbols it started with, so the first order in a symbol
/// a reload added indexed past it and the core thread panicked; and the venue,
/// which knew the same symbols, would have refused it. Now the revision brings
/// the new table (swapped in on the core thread) and the venue is told the model
/// before the revision's first order.
#[test]
fn regression_an_order_in_a_symbol_a_reload_added_had_no_egress_ring() {
    let cfg1 = load_str(BASE, Path::new("reload.toml")).unwrap();
    let u1 = Arc::new(Universe::from_config(&cfg1).unwrap());
    let text2 = format!(
        "{BASE}[[symbols]]\nname = \"Y\"\nlot_size = \"1\"\ntick_size = \"1\"\nvenue = \"sim\"\n"
    );
    let cfg2 = load_str(&text2, Path::new("reload.toml"))
        .unwrap()
        .arranged_after(&cfg1)
        .unwrap();
    let u2 = Arc::new(Universe::from_config(&cfg2).unwrap());
    let engine: EngineConfig = cfg1.engine.clone();
    let patch = RevisionPatch::prepare(&u1, Arc::clone(&u2), &engine, &cfg2.engine).unwrap();
    assert!(patch.grows());

    let go = Arc::new(AtomicBool::new(false));
    let script = Script {
        events: vec![
            fill(&u1, "X", "e1"),
            FeedEvent::Revision {
                revision: u2.revision,
                ts: Nanos(1),
            },
            fill(&u2, "Y", "e2"),
        ],
        next: 0,
        hold: 1,
        go: Arc::clone(&go),
    };
    let venue = SimVenue::for_venue(&u1, VenueIdx(0)).unwrap().fill_all();
    let running = pipeline::start(
        Core::new(Arc::clone(&u1), &engine),
        vec![Box::new(venue) as Box<dyn Gateway>],
        vec![Box::new(script) as Box<dyn Source>],
        None,
        Restart::default(),
        &engine,
    );
    let model = cfg2.model_toml().unwrap();
    let handed = running
        .progress
        .reloads
        .hand_over(Box::new(NewRevision::new(patch, model, Arc::clone(&u2))));
    assert!(handed.is_ok());
    go.store(true, Ordering::Release);
    let until = Instant::now() + Duration::from_secs(20);
    let (core_out, mut io_out) = running.run_to_completion(Duration::from_millis(5), |_| {
        assert!(Instant::now() < until, "the run did not end");
    });
    let core = &core_out.core;
    assert_eq!(
        core.universe().revision,
        u2.revision,
        "the reload was taken"
    );
    let (x, y) = (SymbolIdx(0), SymbolIdx(1));
    assert_eq!(core.position(SubIdx(0), x), Lots(3));
    assert_eq!(
        core.position(SubIdx(0), y),
        Lots(3),
        "copied and filled in Y"
    );
    let books = io_out.gateways[0].books().unwrap().unwrap();
    assert!(
        books
            .positions
            .iter()
            .any(|&(_, s, q)| s == y && q == Lots(3)),
        "the venue filled it: {:?}",
        books.positions
    );
}
