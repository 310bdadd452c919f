//! The engine's log: `tracing` events on stderr, as `fillcast: message key=value`
//! lines for a person, or one JSON object per line (`--log-format json`) for a
//! log pipeline. Only the command line's threads log (the main thread, the
//! control and metrics threads); the core thread never does: what it has to say
//! reaches the main thread through `pipeline::Progress`.

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `fillcast: message key=value …`
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and fields.
    Json,
}

static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A line that reads as it is in text form (`journal: replayed …`, which scripts
/// look for), and as an `info` event in JSON form.
pub fn raw(line: &str) {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::info!("{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Install the subscriber for the whole process (once; later calls change nothing).
pub fn init(format: Format) {
    JSON.store(format == Format::Json, std::sync::atomic::Ordering::Relaxed);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO);
    let _ = match format {
        Format::Text => builder.event_format(Plain).try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// The text form: the message after `fillcast: `, then the other fields.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut v = Fields::default();
        event.record(&mut v);
        write!(w, "fillcast: {}", v.message)?;
        for (k, val) in &v.rest {
            write!(w, " {k}={val}")?;
        }
        writeln!(w)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.push((field.name(), format!("{value:?}")));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest.push((field.name(), format!("{value:?}")));
        }
    }
}
