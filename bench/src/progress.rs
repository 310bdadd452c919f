//! The terminal progress display: one bar for the scenarios, one for the phase
//! under way. Drawn on stderr and only on a terminal (indicatif hides itself
//! otherwise), so piped output and the JSON stay clean. Never on a timed path:
//! scenarios update it between samples or from a separate ticker.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::time::Duration;

pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    phase: ProgressBar,
}

impl Progress {
    pub fn new(scenarios: usize) -> Progress {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(scenarios as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.bold} [{bar:30.cyan/blue}] {pos}/{len} scenarios, {elapsed} {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        overall.set_prefix("bench");
        let phase = multi.add(ProgressBar::new(1));
        phase.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {percent:>3}% {wide_msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        phase.enable_steady_tick(Duration::from_millis(200));
        Progress {
            multi,
            overall,
            phase,
        }
    }

    pub fn scenario(&self, name: &str) {
        self.overall.set_message(name.to_string());
        self.phase.set_prefix(name.to_string());
    }

    pub fn scenario_done(&self) {
        self.overall.inc(1);
    }

    /// A new phase of `units` steps (samples, records, seconds×10 …).
    pub fn phase(&self, what: impl Into<String>, units: u64) {
        self.phase.set_length(units.max(1));
        self.phase.set_position(0);
        self.phase.set_message(what.into());
    }

    pub fn set(&self, pos: u64) {
        self.phase.set_position(pos);
    }

    /// The phase bar, for a callback that must own what it updates.
    pub fn handle(&self) -> ProgressBar {
        self.phase.clone()
    }

    pub fn inc(&self, n: u64) {
        self.phase.inc(n);
    }

    /// A line above the bars (or plain stderr when they are hidden).
    pub fn println(&self, line: impl AsRef<str>) {
        if self.multi.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            let _ = self.multi.println(line);
        }
    }

    pub fn finish(&self) {
        self.phase.finish_and_clear();
        self.overall.finish_and_clear();
    }
}
