//! The latency chart: one panel per case, the percentile spectrum of every
//! variant (x: percentile on a 1/(1−q) log axis, so the tail gets room; y:
//! latency on a log axis), fillcast in blues, the baseline in red, references
//! dashed grey. Self-contained: an SVG with its own `<style>`, or an HTML page with
//! the SVG inline and the results table, no scripts, no network. Drawn with the
//! report's `chart` module; what is this file's own is the panels' layout and axes.

use crate::report::{Case, Role, Run};
use fillcast_report::chart::{esc, svg_open, Anchor, Key, Plot, Scale};
use std::fmt::Write;

const PANEL_W: f64 = 560.0;
const PANEL_H: f64 = 300.0;
const COLUMNS: usize = 2;
const MARGIN_L: f64 = 62.0;
const MARGIN_R: f64 = 16.0;
const MARGIN_T: f64 = 42.0;
const MARGIN_B: f64 = 34.0;
const FILLCAST_COLOURS: [&str; 3] = ["#1f6fb4", "#17a2c8", "#2c8c3c"];
const BASELINE_COLOUR: &str = "#d62728";
const REFERENCE_COLOUR: &str = "#888888";
const REFERENCE_DASH: &str = "5,3";
/// The look of the chart's classes; `svg ` scopes it when the SVG sits in a page.
const STYLE: &str = "svg .grid{stroke:#e4e4e4}svg .frame{fill:none;stroke:#999}\
svg .xtitle{fill:#555}svg path.line{fill:none;stroke-width:2}svg line.key{stroke-width:2}";

/// The chart as one SVG document.
pub fn svg(run: &Run) -> String {
    let panels: Vec<(&str, &Case)> = run
        .scenarios
        .iter()
        .flat_map(|s| s.cases.iter().map(move |c| (s.name, c)))
        .filter(|(_, c)| c.variants.iter().any(|v| v.latency_ns.is_some()))
        .collect();
    let rows = panels.len().div_ceil(COLUMNS).max(1);
    let (w, h) = (PANEL_W * COLUMNS as f64, PANEL_H * rows as f64 + 30.0);
    let mut out = svg_open(
        r#" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11""#,
        w,
        h,
    );
    let _ = write!(out, "<style>{STYLE}</style>");
    let _ = write!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="8" y="18" font-size="13" font-weight="bold">fillcast-bench latency spectra — {} ({}{}), {}</text>"##,
        esc(&run.timestamp),
        esc(&run.git.revision),
        if run.git.dirty == Some(true) {
            ", dirty"
        } else {
            ""
        },
        esc(&format!(
            "{} cores, {}",
            run.machine.cores, run.machine.cpu_model
        )),
    );
    if panels.is_empty() {
        let _ = write!(out, r#"<text x="8" y="40">no latency recorded</text>"#);
    }
    for (i, (scenario, case)) in panels.iter().enumerate() {
        let x0 = (i % COLUMNS) as f64 * PANEL_W;
        let y0 = 30.0 + (i / COLUMNS) as f64 * PANEL_H;
        panel(&mut out, x0, y0, scenario, case);
    }
    out.push_str("</svg>\n");
    out
}

/// The chart inside an HTML page with the run's context and its results table.
pub fn html(run: &Run, table: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fillcast-bench {}</title>\
         <style>body{{font-family:sans-serif;margin:16px}}pre{{font-size:12px;background:#f6f6f6;padding:8px;overflow-x:auto}}</style>\
         </head><body><h1>fillcast-bench</h1><p>{} · revision {}{} · {} cores, {} · {:.1} GiB · kernel {} · <code>{}</code></p>\n",
        esc(&run.timestamp),
        esc(&run.timestamp),
        esc(&run.git.revision),
        if run.git.dirty == Some(true) { " (dirty)" } else { "" },
        run.machine.cores,
        esc(&run.machine.cpu_model),
        run.machine.memory_bytes as f64 / (1u64 << 30) as f64,
        esc(&run.machine.kernel),
        esc(&run.command_line.join(" ")),
    );
    out.push_str(&svg(run));
    let _ = write!(out, "<h2>Results</h2><pre>{}</pre>", esc(table));
    for s in &run.scenarios {
        let _ = write!(
            out,
            "<h3>{}</h3><p>{}</p><p>fillcast: {}<br>baseline: {}</p>",
            esc(s.name),
            esc(&s.title),
            esc(&s.fillcast),
            esc(&s.baseline)
        );
        for skip in &s.skipped {
            let _ = write!(out, "<p>skipped: {}</p>", esc(skip));
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn panel(out: &mut String, x0: f64, y0: f64, scenario: &str, case: &Case) {
    let lines: Vec<_> = case
        .variants
        .iter()
        .filter_map(|v| v.latency_ns.as_ref().map(|l| (v, l)))
        .collect();
    // x: log10(1 / (1 − q)), the maximum half a decade past the last percentile.
    let xq = |q: f64| (1.0 / (1.0 - q / 100.0).max(1e-9)).log10();
    let finite_max = lines
        .iter()
        .flat_map(|(_, l)| l.spectrum.iter())
        .filter(|(q, _)| *q < 100.0)
        .map(|(q, _)| xq(*q))
        .fold(1.0f64, f64::max);
    let x_max = finite_max.ceil().max(1.0) + 0.5;
    let xv = |q: f64| if q >= 100.0 { x_max } else { xq(q) };
    let ns: Vec<u64> = lines
        .iter()
        .flat_map(|(_, l)| l.spectrum.iter().map(|p| p.1))
        .collect();
    let lo = ns.iter().copied().min().unwrap_or(1).max(1) as f64;
    let hi = ns.iter().copied().max().unwrap_or(10).max(2) as f64;
    // Whole decades, at least one.
    let (y_lo, y_hi) = (
        lo.log10().floor() as i32,
        (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
    );
    let plot = Plot::new(
        x0 + MARGIN_L,
        y0 + MARGIN_T,
        PANEL_W - MARGIN_L - MARGIN_R,
        PANEL_H - MARGIN_T - MARGIN_B,
        Scale::Linear { lo: 0.0, hi: x_max },
        Scale::Log10 {
            lo: 10f64.powi(y_lo),
            hi: 10f64.powi(y_hi),
        },
    )
    .labels(4.0, 14.0);

    let ratio = case
        .ratio
        .map(|r| format!(" — {:.2}× vs baseline ({})", r, basis_words(case)))
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-weight="bold">{} · {}{}</text>"#,
        x0 + 8.0,
        y0 + 16.0,
        esc(scenario),
        esc(&case.name),
        esc(&ratio)
    );
    if let Some((_, l)) = lines.first() {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" fill="#555">{}</text>"##,
            x0 + 8.0,
            y0 + 30.0,
            esc(&l.basis)
        );
    }
    plot.frame(out);
    let decades: Vec<(f64, String)> = (y_lo..=y_hi)
        .map(|d| 10f64.powi(d))
        .map(|ns| (ns, duration(ns)))
        .collect();
    plot.y_ticks(out, &decades);
    let mut ticks: Vec<(f64, String)> = (0..=(finite_max.ceil() as i32))
        .map(|k| {
            let label = match k {
                0 => "0%".to_string(),
                1 => "90%".to_string(),
                _ => format!("99.{}%", "9".repeat(k as usize - 2)).replace("99.%", "99%"),
            };
            (k as f64, label)
        })
        .collect();
    ticks.push((x_max, "max".into()));
    plot.x_ticks(out, &ticks, true, Anchor::Middle);
    plot.x_title(out, y0 + PANEL_H - 6.0, "percentile");
    let mut blue = 0;
    for (i, (v, l)) in lines.iter().enumerate() {
        let (colour, dash) = match v.role {
            Role::Fillcast => {
                blue += 1;
                (FILLCAST_COLOURS[(blue - 1) % FILLCAST_COLOURS.len()], None)
            }
            Role::Baseline => (BASELINE_COLOUR, None),
            Role::Reference => (REFERENCE_COLOUR, Some(REFERENCE_DASH)),
        };
        let points: Vec<(f64, f64)> = l
            .spectrum
            .iter()
            .map(|(q, ns)| (xv(*q), *ns as f64))
            .collect();
        plot.line(out, &points, colour, dash, None);
        plot.legend(
            out,
            Key::Line,
            plot.left + 8.0,
            plot.top + 12.0 + i as f64 * 13.0,
            colour,
            dash,
            &format!("{} — p99 {}", v.name, duration(l.p99 as f64)),
        );
    }
}

fn basis_words(case: &Case) -> &'static str {
    match case.ratio_basis {
        crate::report::RatioBasis::P99Latency => "p99",
        crate::report::RatioBasis::Throughput => "throughput",
    }
}

/// `ns` as a short duration: 850 ns, 12.3 µs, 4.1 ms, 2.0 s.
pub fn duration(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.3} µs", ns / 1e3).trim_decimals()
    } else if ns < 1e9 {
        format!("{:.3} ms", ns / 1e6).trim_decimals()
    } else {
        format!("{:.3} s", ns / 1e9).trim_decimals()
    }
}

trait TrimDecimals {
    fn trim_decimals(self) -> String;
}

impl TrimDecimals for String {
    /// Three significant figures: "12.345 µs" → "12.3 µs", "123.456 ms" → "123 ms".
    fn trim_decimals(self) -> String {
        let (num, unit) = self.split_once(' ').unwrap_or((&self, ""));
        let int_digits = num.split('.').next().map_or(1, str::len);
        let decimals = 3usize.saturating_sub(int_digits);
        let x: f64 = num.parse().unwrap_or(0.0);
        format!("{x:.decimals$} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_three_figures() {
        assert_eq!(duration(850.0), "850 ns");
        assert_eq!(duration(12_345.0), "12.3 µs");
        assert_eq!(duration(1_500.0), "1.50 µs");
        assert_eq!(duration(123_456_000.0), "123 ms");
        assert_eq!(duration(2e9), "2.00 s");
    }
}
