//! The bodies of the gateways' fuzz targets (`gateways/fuzz`), callable from tests on
//! stable too: outside input that must give errors or events, never a panic.
//!
//! - `file_source`: arbitrary bytes as a leader-fill file, read to the end, then read
//!   again resumed at every position the first read gave (`Source::resume`).
//! - `sim_wire`: arbitrary bytes as frames from a client and from a server.
//! - `config`: arbitrary bytes as a config file and as a journaled decision model.
//! - `control_request`: arbitrary bytes as a `fillcast ctl` request line.

use crate::config::GatewayKinds;
use crate::file::FileSource;
use crate::simwire::{decode_client, decode_server};
use fillcast_engine::config;
use fillcast_engine::model::Universe;
use fillcast_engine::port::{Source, SourcePoll};
use fillcast_engine::units::Nanos;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, OnceLock};

const UNIVERSE: &str = r#"
[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[leaders]]
id = "L1"
equity = "100000"

[[followers]]
id = "F1"
equity = "1000"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "100"
mode = "proportional"
"#;

fn universe() -> Arc<Universe> {
    static U: OnceLock<Arc<Universe>> = OnceLock::new();
    Arc::clone(U.get_or_init(|| {
        let cfg = config::load_str(UNIVERSE, Path::new("fuzz.toml")).expect("fuzz universe");
        Arc::new(Universe::from_config(&cfg).expect("fuzz universe"))
    }))
}

/// Events and rejections of a whole read; panics on a broken invariant.
pub fn file_source(data: &[u8]) -> usize {
    let read = |resume: Option<u64>| {
        let mut s = FileSource::from_reader("fuzz.jsonl", Cursor::new(data.to_vec()), universe());
        if let Some(pos) = resume {
            s.resume(pos).expect("a position the source gave resumes");
        }
        let mut steps = Vec::new();
        let mut positions = vec![s.position().expect("a file has a position")];
        // Each step consumes at least one line, so this ends.
        loop {
            match s.next(Nanos(1)) {
                SourcePoll::Finished => break,
                SourcePoll::Idle => panic!("a file source is never idle"),
                step => steps.push(step),
            }
            positions.push(s.position().expect("a file has a position"));
        }
        assert!(
            positions.windows(2).all(|w| w[0] <= w[1]),
            "position went back"
        );
        assert!(*positions.last().unwrap() <= data.len() as u64);
        (steps, positions)
    };
    let (all, positions) = read(None);
    // Resuming anywhere the source stood gives exactly the rest (a few points, so a
    // large input stays quick).
    for (k, &pos) in positions
        .iter()
        .enumerate()
        .step_by(positions.len() / 4 + 1)
    {
        let (rest, _) = read(Some(pos));
        assert_eq!(rest.len(), all.len() - k, "resumed at {pos}");
    }
    all.len()
}

/// Frames decoded from both directions, each stream walked frame by frame.
pub fn sim_wire(data: &[u8]) -> usize {
    fn walk<T>(mut buf: &[u8], decode: fn(&[u8]) -> crate::simwire::Decoded<T>) -> usize {
        let mut n = 0;
        while let Ok(Some((_, used))) = decode(buf) {
            assert!(used > 0 && used <= buf.len(), "a frame of {used} bytes");
            buf = &buf[used..];
            n += 1;
        }
        n
    }
    walk(data, decode_client) + walk(data, decode_server)
}

/// Whether the bytes loaded as a config or a model; never panics.
pub fn config(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let a = config::load_str_with(text, Path::new("fuzz.toml"), &GatewayKinds).is_ok();
    let b = match config::load_model(text) {
        Ok(model) => {
            // A model that loads is canonical once written: its revision is stable.
            let once = model.model_toml().expect("a loaded model serialises");
            let again = config::load_model(&once).expect("a written model loads");
            assert_eq!(again.model_toml().expect("serialises"), once);
            // A reload lays a model out after itself unchanged, and what a model
            // resolves to never panics.
            if let Ok(same) = model.arranged_after(&model) {
                assert_eq!(same.model_toml().expect("serialises"), once);
            }
            let _ = fillcast_engine::model::Universe::from_config(&model);
            true
        }
        Err(_) => false,
    };
    a || b
}

/// Whether the bytes were a request; an error never carries a control character
/// (a request cannot forge a log line) and never panics.
pub fn control_request(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match crate::control::parse(text, &universe()) {
        Ok(crate::control::Request::Command(c)) => {
            let d = crate::control::describe(&c, &universe());
            assert!(!d.contains('?'), "a parsed command names what exists: {d}");
            true
        }
        Ok(_) => true,
        Err(e) => {
            assert!(
                !e.chars().any(|c| c.is_control() && c != '\n'),
                "an error quotes a control character: {e:?}"
            );
            assert!(e.len() < 2_000, "an error of {} bytes", e.len());
            false
        }
    }
}
