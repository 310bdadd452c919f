//! The Prometheus text endpoint (`[metrics] address`), served by its own thread
//! from the counters the engine's threads share (`pipeline::Progress`): nothing
//! here runs on, or waits for, the core thread.
//!
//! HTTP is `tiny_http`'s. The text exposition format (version 0.0.4) is written
//! here: each scrape reads a few dozen atomics, and a client library's registry
//! would only copy them into its own types first. The tests parse it with the
//! Python `prometheus_client` parser.

use crate::control::{ControlStats, Served};
use anyhow::{Context, Result};
use fillcast_engine::codes::Coded;
use fillcast_engine::event::RejectReason;
use fillcast_engine::outputs::{DecisionStatus, Reason};
use fillcast_engine::pipeline::LATENCY_BOUNDS_NS;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

pub struct Endpoint {
    address: String,
    stop: Arc<AtomicBool>,
}

/// A bound metrics address, before the engine starts.
pub struct Bound(tiny_http::Server);

/// Answers being written at once; past that a scrape is dropped (a client that
/// does not read holds only its own answer's thread).
const ANSWERS_MAX: usize = 16;

impl Endpoint {
    /// Listen on `address`: one that cannot be had stops the start before the
    /// journal or a venue is touched.
    pub fn bind(address: &str) -> Result<Bound> {
        tiny_http::Server::http(address)
            .map(Bound)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("listening")
    }

    pub fn start(bound: Bound, served: Served, control: Option<Arc<ControlStats>>) -> Endpoint {
        let server = bound.0;
        let address = server
            .server_addr()
            .to_ip()
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let served = Arc::new(served);
        let answering = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let spawned = std::thread::Builder::new()
            .name("fillcast-metrics".into())
            .spawn(move || {
                while !stop2.load(Relaxed) {
                    let req = match server.recv_timeout(Duration::from_millis(100)) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "metrics endpoint: receive failed");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    if answering.load(Relaxed) >= ANSWERS_MAX {
                        continue;
                    }
                    let path = req.url().split('?').next().unwrap_or("");
                    let reply = if path == "/metrics" {
                        let body = render(&served, control.as_deref());
                        tiny_http::Response::from_string(body).with_header(
                            "Content-Type: text/plain; version=0.0.4; charset=utf-8"
                                .parse::<tiny_http::Header>()
                                .expect("a valid header"),
                        )
                    } else {
                        tiny_http::Response::from_string("fillcast: metrics are at /metrics\n")
                            .with_status_code(404)
                    };
                    answering.fetch_add(1, Relaxed);
                    let answering = Arc::clone(&answering);
                    let _ = std::thread::Builder::new()
                        .name("fillcast-metrics-answer".into())
                        .spawn(move || {
                            let _ = req.respond(reply);
                            answering.fetch_sub(1, Relaxed);
                        });
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "metrics endpoint: could not start its thread");
        }
        Endpoint { address, stop }
    }

    /// Where it listens (the port the system chose, for `:0`).
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for Endpoint {
    /// Stops serving; does not wait for a client.
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// One metric family being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Every metric, as of now.
pub fn render(s: &Served, control: Option<&ControlStats>) -> String {
    let p = &s.progress;
    let st = p.stats.snapshot();
    let mut o = Out(String::with_capacity(8 << 10));
    o.one(
        "fillcast_uptime_seconds",
        "gauge",
        "Seconds since the engine started.",
        s.started.elapsed().as_secs_f64(),
    );
    o.family(
        "fillcast_config_revision_info",
        "gauge",
        "The revision of the decision model in force (always 1; the revision is the label).",
    );
    let rev = format!("{:016x}", p.revision.load(Relaxed));
    o.sample("fillcast_config_revision_info", &[("revision", &rev)], 1);
    o.one(
        "fillcast_reloads_total",
        "counter",
        "Reloads the core applied.",
        p.reloads_applied.load(Relaxed),
    );
    if let Some(c) = control {
        o.one(
            "fillcast_reloads_invalid_total",
            "counter",
            "Reloads refused because the new config was invalid or changed the model's shape.",
            c.reloads_invalid.load(Relaxed),
        );
        o.one(
            "fillcast_control_commands_total",
            "counter",
            "Commands taken from the control socket.",
            c.commands.load(Relaxed),
        );
        o.one(
            "fillcast_control_refused_peers_total",
            "counter",
            "Control socket clients refused for their uid.",
            c.refused_peers.load(Relaxed),
        );
        o.one(
            "fillcast_control_bad_requests_total",
            "counter",
            "Control requests refused as malformed, unknown or invalid.",
            c.bad_requests.load(Relaxed),
        );
    }
    o.one(
        "fillcast_leader_fills_total",
        "counter",
        "Leader fills taken by the core.",
        st.leader_fills,
    );
    o.one(
        "fillcast_duplicate_events_total",
        "counter",
        "Leader events dropped as duplicates (by the core's window, and by the journal's history at the source).",
        st.duplicate_events + p.source_duplicates.load(Relaxed),
    );
    o.one(
        "fillcast_source_rejected_total",
        "counter",
        "Input lines or messages rejected by the sources.",
        p.source_rejected.load(Relaxed),
    );
    o.one(
        "fillcast_mark_prices_total",
        "counter",
        "Mark prices taken.",
        st.mark_prices,
    );
    o.one(
        "fillcast_funding_events_total",
        "counter",
        "Funding events taken (journaled for the sidecar's funding payments).",
        st.fundings,
    );
    o.family(
        "fillcast_decisions_total",
        "counter",
        "Copy decisions, by status.",
    );
    for &d in DecisionStatus::ALL {
        o.sample(
            "fillcast_decisions_total",
            &[("status", d.as_str())],
            st.status_count(d),
        );
    }
    o.family(
        "fillcast_decision_reasons_total",
        "counter",
        "Copy decisions that were clamped, skipped or deferred, by reason.",
    );
    for &r in Reason::ALL.iter().filter(|&&r| r != Reason::None) {
        o.sample(
            "fillcast_decision_reasons_total",
            &[("reason", r.as_str())],
            st.reason_count(r),
        );
    }
    o.one(
        "fillcast_orders_sent_total",
        "counter",
        "Follower orders the core sent.",
        st.orders_sent,
    );
    o.family(
        "fillcast_venue_reports_total",
        "counter",
        "Venue reports on follower orders, by kind.",
    );
    let other = st.exec_reports.saturating_sub(st.fills + st.rejects);
    for (kind, n) in [("fill", st.fills), ("reject", st.rejects), ("other", other)] {
        o.sample("fillcast_venue_reports_total", &[("kind", kind)], n);
    }
    o.family(
        "fillcast_rejects_total",
        "counter",
        "Follower orders the venue rejected, by reason.",
    );
    for &r in RejectReason::ALL
        .iter()
        .filter(|&&r| r != RejectReason::None)
    {
        o.sample(
            "fillcast_rejects_total",
            &[("reason", r.as_str())],
            st.by_reject[r as usize],
        );
    }
    o.family(
        "fillcast_fanout_latency_seconds",
        "histogram",
        "Per leader fill: from the start of its handling to its last order in the egress ring.",
    );
    let (cum, count, sum_ns) = p.fanout.read();
    for (b, c) in LATENCY_BOUNDS_NS.iter().zip(cum) {
        let le = format!("{}", seconds(*b));
        o.sample("fillcast_fanout_latency_seconds_bucket", &[("le", &le)], c);
    }
    o.sample(
        "fillcast_fanout_latency_seconds_bucket",
        &[("le", "+Inf")],
        count,
    );
    o.sample("fillcast_fanout_latency_seconds_sum", &[], seconds(sum_ns));
    o.sample("fillcast_fanout_latency_seconds_count", &[], count);
    o.one(
        "fillcast_ingest_lag_seconds",
        "gauge",
        "Receive time minus venue time of the last leader fill taken.",
        seconds(p.ingest_lag_ns.load(Relaxed)),
    );
    o.family(
        "fillcast_ring_occupancy",
        "gauge",
        "Slots published and not yet taken, per ring.",
    );
    let diff = |a: u64, b: u64| a.saturating_sub(b);
    for (ring, n) in [
        (
            "feed",
            diff(p.feed_published.load(Relaxed), p.feed_done.load(Relaxed)),
        ),
        (
            "exec",
            diff(p.exec_published.load(Relaxed), p.exec_done.load(Relaxed)),
        ),
        (
            "egress",
            diff(
                p.chunks_published.load(Relaxed),
                p.chunks_taken.load(Relaxed),
            ),
        ),
        (
            "journal",
            diff(
                p.journal_published.load(Relaxed),
                p.journal_appended.load(Relaxed),
            ),
        ),
    ] {
        o.sample("fillcast_ring_occupancy", &[("ring", ring)], n);
    }
    o.one(
        "fillcast_live_orders",
        "gauge",
        "Follower orders sent and not yet in a terminal state.",
        p.live_orders.load(Relaxed),
    );
    o.one(
        "fillcast_journal_seq",
        "gauge",
        "The journal's last sequence number.",
        p.journal_seq.load(Relaxed),
    );
    o.one(
        "fillcast_journal_written_bytes_total",
        "counter",
        "Bytes of journal records written since the engine started.",
        p.journal_bytes.load(Relaxed),
    );
    o.one(
        "fillcast_out_of_sync_pairs",
        "gauge",
        "(subscription, symbol) pairs off their target and waiting for the resync.",
        p.resync_pending.load(Relaxed),
    );
    o.one(
        "fillcast_out_of_sync_given_up_total",
        "counter",
        "Pairs the resync gave up on (they stay off target until a person or the leader's next fill).",
        st.gave_up,
    );
    o.family(
        "fillcast_venue_up",
        "gauge",
        "1 while the gateway has a working session with the venue.",
    );
    for (i, v) in s.universe.venues.iter().enumerate() {
        let up = p.venue_up(i);
        o.sample("fillcast_venue_up", &[("venue", &v.name)], u8::from(up));
    }
    o.one(
        "fillcast_sources_finished",
        "gauge",
        "1 once every source that holds the run open has finished.",
        u8::from(p.sources_finished.load(Relaxed)),
    );
    o.one(
        "fillcast_draining",
        "gauge",
        "1 while the engine is stopping (no new input taken).",
        u8::from(p.draining.load(Relaxed)),
    );
    o.0
}
