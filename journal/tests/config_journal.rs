//! The config in the journal: the decision model, in parts, of any size, and
//! independent of where the files it came from are.

use fillcast_engine::config::{load_str, Config};
use fillcast_engine::model::Universe;
use fillcast_engine::port::Gateway;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use fillcast_journal::restart;
use fillcast_journal::writer::JournalOptions;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

fn big_config(followers: usize) -> Config {
    let mut text = String::from(
        "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n\n[[symbols]]\nname = \"BTCUSDT\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nvenue = \"sim\"\n\n[[leaders]]\nid = \"L1\"\nequity = \"100000\"\n\n",
    );
    for f in 0..followers {
        let _ = writeln!(
            text,
            "[[followers]]\nid = \"follower-with-a-long-name-{f:08}\"\nequity = \"50000\"\nmax_leverage = \"3\"\ndaily_loss_limit = \"1000\"\n\n[[subscriptions]]\nid = \"subscription-of-follower-{f:08}-to-L1\"\nfollower = \"follower-with-a-long-name-{f:08}\"\nleader = \"L1\"\nallocation = \"20000\"\nmode = \"proportional\"\nmultiplier = \"1.5\"\nmax_order_notional = \"5000\"\n"
        );
    }
    let mut cfg = load_str(&text, Path::new("/nowhere/big.toml")).expect("the config loads");
    cfg.journal = None;
    cfg
}

/// The journal once held the whole config in one record, and replay refused a
/// record over the 16 MiB config-file limit: past ~60,000 followers nothing could
/// restart, and the sidecar could not read the journal.
#[test]
fn regression_more_than_60000_followers_could_not_restart() {
    let cfg = big_config(40_000);
    let model = cfg.model_toml().unwrap();
    assert!(model.len() > 16 << 20, "the model is {} bytes", model.len());
    let u = Arc::new(Universe::from_config(&cfg).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let opts = JournalOptions {
        segment_bytes: 4 << 20,
        ..JournalOptions::default()
    };
    let mut venues: Vec<Box<dyn Gateway>> = Vec::new();
    let open = |venues: &mut Vec<Box<dyn Gateway>>| {
        restart::open(
            &dir,
            opts,
            &cfg,
            &u,
            venues.as_mut_slice(),
            fillcast_engine::units::Nanos(1),
            &mut |_| {},
        )
    };
    let first = open(&mut venues).expect("a new journal");
    assert!(first.replay.is_none());
    drop(first);
    let again = open(&mut venues).expect("the restart replays the journaled model");
    assert_eq!(again.core.universe().revision, u.revision);
    assert_eq!(again.core.universe().subs.len(), 40_000);
    drop(again);
    // The model is spread over records no bigger than a part, in more than one segment.
    let reader = JournalReader::open(&dir).unwrap();
    let mut parts = 0;
    for rec in reader.iter_from(1) {
        let rec = rec.unwrap();
        if let Ok(Entry::Config(c)) = decode(rec.kind, rec.schema, rec.payload) {
            assert!(c.toml.len() <= fillcast_journal::record::CONFIG_PART_BYTES);
            assert_eq!(c.part, parts);
            parts += 1;
        }
    }
    assert!(parts > 64, "{parts} parts");
}
