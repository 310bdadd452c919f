//! SVG charts written as text, for the report's HTML page and the benchmark's
//! latency chart alike: HTML escaping, round axis ticks and their labels, a plot
//! area that maps data to pixels on linear or log axes, and the grid, axes, lines,
//! bars and legend keys drawn in it. Callers keep what is theirs: which data, the
//! layout of their figure, its words and the colours of its series.
//!
//! Elements carry classes, not colours (`grid`, `axis`, `frame`, `tick`, `ytitle`,
//! `xtitle`, `key`, `legend`, `data line`, `data area`, `data bar`), so that the
//! page's stylesheet, or a standalone SVG's own `<style>`, decides the look; a
//! series' colour and dash are data and go inline. Only data elements have the
//! class `data`: that is what `scripts/check-report.sh` and the tests count.
//!
//! Labels are measured, not rendered: `text_width` errs wide, and `x_ticks` and
//! `bars` leave out a label that would overlap its neighbour rather than draw
//! both.
//!
//! Nothing here reads data or writes a file, and every piece of text it is given
//! is escaped, so a leader id such as `<script>` stays text.

use std::fmt::Write;

/// Opens an `<svg>` of `w`×`h` pixels. `attrs` come first, so that a page can find
/// a chart by its leading `<svg id="…"`; they are written as given (escape values).
pub fn svg_open(attrs: &str, w: f64, h: f64) -> String {
    debug_assert!(attrs.is_empty() || attrs.starts_with(' '));
    format!("<svg{attrs} viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\">")
}

/// How data map to pixels along one axis, `lo` to `hi`. `hi < lo` or a NaN is a
/// caller's bug (`Plot::new` checks in debug builds); `hi == lo` leaves no room, so
/// points land on NaN pixels: widen such a range first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear {
        lo: f64,
        hi: f64,
    },
    /// Equal space per factor of ten; `lo > 0`. Values at or below `lo` sit on `lo`,
    /// since a log axis has no place for zero.
    Log10 {
        lo: f64,
        hi: f64,
    },
}

impl Scale {
    /// `v`'s place from `lo` (0) to `hi` (1).
    fn fraction(self, v: f64) -> f64 {
        match self {
            Scale::Linear { lo, hi } => (v - lo) / (hi - lo),
            Scale::Log10 { lo, hi } => {
                let (a, b) = (lo.log10(), hi.log10());
                (v.max(lo).log10() - a) / (b - a)
            }
        }
    }

    /// `hi`'s distance from `v` as a share of the axis: the y axis grows upwards.
    fn fraction_from_top(self, v: f64) -> f64 {
        match self {
            // Written as (hi − v) ÷ (hi − lo), not 1 − fraction: no cancellation at hi.
            Scale::Linear { lo, hi } => (hi - v) / (hi - lo),
            Scale::Log10 { lo, hi } => {
                let (a, b) = (lo.log10(), hi.log10());
                (b - v.max(lo).log10()) / (b - a)
            }
        }
    }

    fn is_valid(self) -> bool {
        match self {
            Scale::Linear { lo, hi } => lo.is_finite() && hi.is_finite() && hi >= lo,
            Scale::Log10 { lo, hi } => lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo,
        }
    }
}

/// Where a row of x tick labels is anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// Every label centred on its tick.
    Middle,
    /// Centred, but the first starts and the last ends at its tick, so that the
    /// labels at the plot's edges stay inside the figure.
    EndsInside,
}

/// What marks a series in a legend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A filled 10 px square.
    Swatch,
    /// A 16 px stroke, dashed like the series.
    Line,
}

/// A rectangle of the figure where data are drawn, with its two scales.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plot {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    pub x: Scale,
    pub y: Scale,
    /// How far left of the plot the y tick labels end, in px.
    pub y_label_gap: f64,
    /// How far under the plot the x tick labels' baseline is, in px.
    pub x_label_drop: f64,
    /// The font size of the tick labels, in px, as the stylesheet sets it: what
    /// `x_ticks` and `bars` measure labels by, to leave out those that would overlap.
    pub tick_font_px: f64,
}

impl Plot {
    /// A plot area; tick labels 6 px left of it and 18 px under it unless `labels`
    /// says otherwise, in an 11 px font unless `tick_font` says otherwise.
    pub fn new(left: f64, top: f64, width: f64, height: f64, x: Scale, y: Scale) -> Plot {
        // Debug only: a bad chart is better than no report.
        debug_assert!(
            width > 0.0 && height > 0.0,
            "plot area {width}×{height} px is empty"
        );
        debug_assert!(x.is_valid(), "x scale {x:?} is reversed or not finite");
        debug_assert!(y.is_valid(), "y scale {y:?} is reversed or not finite");
        Plot {
            left,
            top,
            width,
            height,
            x,
            y,
            y_label_gap: 6.0,
            x_label_drop: 18.0,
            tick_font_px: 11.0,
        }
    }

    /// The same plot with tick labels in a font of `px` pixels.
    pub fn tick_font(self, px: f64) -> Plot {
        debug_assert!(px > 0.0, "tick font of {px} px");
        Plot {
            tick_font_px: px,
            ..self
        }
    }

    /// The same plot with its tick labels `y_gap` px left of it, `x_drop` px under it.
    pub fn labels(self, y_gap: f64, x_drop: f64) -> Plot {
        Plot {
            y_label_gap: y_gap,
            x_label_drop: x_drop,
            ..self
        }
    }

    pub fn right(&self) -> f64 {
        self.left + self.width
    }

    pub fn bottom(&self) -> f64 {
        self.top + self.height
    }

    /// The pixel column of data value `x`.
    pub fn px(&self, x: f64) -> f64 {
        self.left + self.x.fraction(x) * self.width
    }

    /// The pixel row of data value `y`.
    pub fn py(&self, y: f64) -> f64 {
        self.top + self.y.fraction_from_top(y) * self.height
    }

    /// A grid line across the plot at each `(value, label)` and its label on the left.
    pub fn y_ticks(&self, s: &mut String, ticks: &[(f64, String)]) {
        for (v, label) in ticks {
            let y = self.py(*v);
            let _ = write!(
                s,
                "<line class=\"grid\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.left,
                self.right(),
                self.left - self.y_label_gap,
                y + 4.0,
                esc(label)
            );
        }
    }

    /// A label under the plot at each `(value, label)`, with a grid line up the plot
    /// when `grid`. A label that would overlap the one before it is left out (its
    /// grid line stays); with `Anchor::EndsInside` the last label is kept rather than
    /// the one before it, so that both ends of the axis stay named.
    pub fn x_ticks(&self, s: &mut String, ticks: &[(f64, String)], grid: bool, anchor: Anchor) {
        let n = ticks.len();
        let mut spans = Vec::with_capacity(n);
        for (k, (v, label)) in ticks.iter().enumerate() {
            let x = self.px(*v);
            if grid {
                let _ = write!(
                    s,
                    "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
                    self.top,
                    self.bottom()
                );
            }
            let side = match anchor {
                Anchor::EndsInside if k == 0 => "start",
                Anchor::EndsInside if k + 1 == n => "end",
                _ => "middle",
            };
            let w = text_width(label, self.tick_font_px);
            let left = match side {
                "start" => x,
                "end" => x - w,
                _ => x - w / 2.0,
            };
            spans.push((x, side, left, left + w));
        }
        let gap = self.tick_font_px * LABEL_GAP_EM;
        let mut kept: Vec<usize> = Vec::with_capacity(n);
        for k in 0..n {
            let fits = |j: &usize| spans[k].2 >= spans[*j].3 + gap;
            if kept.last().is_none_or(fits) {
                kept.push(k);
            } else if anchor == Anchor::EndsInside && k + 1 == n && kept.len() > 1 {
                kept.pop();
                if kept.last().is_none_or(fits) {
                    kept.push(k);
                }
            }
        }
        debug_assert!(n == 0 || kept.first() == Some(&0));
        for k in kept {
            let (x, side, _, _) = spans[k];
            let _ = write!(
                s,
                "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{side}\">{}</text>",
                self.bottom() + self.x_label_drop,
                esc(&ticks[k].1)
            );
        }
    }

    pub fn left_axis(&self, s: &mut String) {
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
            self.left,
            self.left,
            self.top,
            self.bottom()
        );
    }

    pub fn bottom_axis(&self, s: &mut String) {
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
            self.left,
            self.right(),
            self.bottom(),
            self.bottom()
        );
    }

    /// A box around the whole plot area.
    pub fn frame(&self, s: &mut String) {
        let _ = write!(
            s,
            "<rect class=\"frame\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            self.left, self.top, self.width, self.height
        );
    }

    /// The y axis' title, turned to read upwards, centred on the plot at column `x`.
    pub fn y_title(&self, s: &mut String, x: f64, title: &str) {
        let mid = self.top + self.height / 2.0;
        let _ = write!(
            s,
            "<text class=\"ytitle\" x=\"{x:.1}\" y=\"{mid:.1}\" transform=\"rotate(-90 {x:.1} {mid:.1})\" text-anchor=\"middle\">{}</text>",
            esc(title)
        );
    }

    /// The x axis' title, centred under the plot with its baseline at row `y`.
    pub fn x_title(&self, s: &mut String, y: f64, title: &str) {
        let _ = write!(
            s,
            "<text class=\"xtitle\" x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"middle\">{}</text>",
            self.left + self.width / 2.0,
            esc(title)
        );
    }

    /// A series through `points` (data values) in `colour`, dashed when `dash` is a
    /// `stroke-dasharray`, with `title` as its tooltip. No points draw nothing; one
    /// point draws a short horizontal stroke, so that it is still seen.
    pub fn line(
        &self,
        s: &mut String,
        points: &[(f64, f64)],
        colour: &str,
        dash: Option<&str>,
        title: Option<&str>,
    ) {
        if points.is_empty() {
            return;
        }
        let dash = dash.map_or(String::new(), |d| {
            format!(" stroke-dasharray=\"{}\"", esc(d))
        });
        let _ = write!(
            s,
            "<path class=\"data line\" stroke=\"{}\"{dash} d=\"{}\"",
            esc(colour),
            self.path(points)
        );
        match title {
            Some(t) => {
                let _ = write!(s, "><title>{}</title></path>", esc(t));
            }
            None => s.push_str("/>"),
        }
    }

    /// The area between the series through `points` and y = 0, shaded in `colour`.
    pub fn area(&self, s: &mut String, points: &[(f64, f64)], colour: &str) {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return;
        };
        let zero = self.py(0.0);
        let _ = write!(
            s,
            "<path class=\"data area\" fill=\"{}\" d=\"{}L{:.1},{zero:.1}L{:.1},{zero:.1}Z\"/>",
            esc(colour),
            self.path(points),
            self.px(last.0),
            self.px(first.0),
        );
    }

    /// One bar per `(label, count)` side by side across the plot, with the labels of
    /// at most 12 of them under it, fewer when wide labels would overlap: every
    /// k-th bar is labelled, each label centred under its bar but kept inside the
    /// plot's width. A count of zero draws no bar. The x scale is not used: the bars
    /// share the width equally.
    pub fn bars(&self, s: &mut String, bars: &[(String, u64)]) {
        if bars.is_empty() {
            return;
        }
        let bw = self.width / bars.len() as f64;
        let labels: Vec<String> = bars.iter().map(|b| truncate(&b.0, 22)).collect();
        let widest = labels
            .iter()
            .map(|l| text_width(l, self.tick_font_px))
            .fold(0.0, f64::max);
        let gap = self.tick_font_px * LABEL_GAP_EM;
        let label_every = bars
            .len()
            .div_ceil(12)
            .max(((widest + gap) / bw).ceil() as usize)
            .max(1);
        // Right edge of the last label drawn: a label pushed inside the plot at
        // either end can still meet its neighbour, and is then left out.
        let mut last_right = f64::NEG_INFINITY;
        for (i, ((label, n), short)) in bars.iter().zip(&labels).enumerate() {
            let x = self.left + i as f64 * bw;
            if *n > 0 {
                let y = self.py(*n as f64);
                let _ = write!(
                    s,
                    "<rect class=\"data bar\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{}: {n}</title></rect>",
                    x + bw * 0.08,
                    (bw * 0.84).max(1.0),
                    (self.bottom() - y).max(1.0),
                    esc(label)
                );
            }
            let half = text_width(short, self.tick_font_px) / 2.0;
            let centre = (x + bw / 2.0)
                .min(self.right() - half)
                .max(self.left + half);
            if i % label_every == 0 && centre - half >= last_right + gap {
                last_right = centre + half;
                let _ = write!(
                    s,
                    "<text class=\"tick\" x=\"{centre:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    self.bottom() + self.x_label_drop,
                    esc(short)
                );
            }
        }
    }

    /// One legend entry: its key at column `x` and its label after it, both on the
    /// text baseline `y` (pixels, not data).
    #[allow(clippy::too_many_arguments)]
    pub fn legend(
        &self,
        s: &mut String,
        key: Key,
        x: f64,
        y: f64,
        colour: &str,
        dash: Option<&str>,
        label: &str,
    ) {
        let colour = esc(colour);
        let text_x = match key {
            Key::Swatch => {
                let _ = write!(
                    s,
                    "<rect class=\"key\" x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>",
                    y - 9.0
                );
                x + 14.0
            }
            Key::Line => {
                let dash = dash.map_or(String::new(), |d| {
                    format!(" stroke-dasharray=\"{}\"", esc(d))
                });
                let _ = write!(
                    s,
                    "<line class=\"key\" x1=\"{x:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"{dash}/>",
                    x + 16.0,
                    y - 4.0,
                    y - 4.0
                );
                x + 20.0
            }
        };
        let _ = write!(
            s,
            "<text class=\"legend\" x=\"{text_x:.1}\" y=\"{y:.1}\">{}</text>",
            esc(label)
        );
    }

    /// `M x,y L x,y …` through `points`, in pixels.
    fn path(&self, points: &[(f64, f64)]) -> String {
        let mut d = String::with_capacity(points.len() * 16);
        for (k, (x, y)) in points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if k == 0 { 'M' } else { 'L' },
                self.px(*x),
                self.py(*y)
            );
        }
        if let [(x, y)] = points {
            let _ = write!(d, "L{:.1},{:.1}", self.px(*x) + 4.0, self.py(*y));
        }
        d
    }
}

/// Space kept between two labels on one line, in em.
const LABEL_GAP_EM: f64 = 0.6;

/// The width of `text` in a sans-serif font of `font_px` pixels, erring wide: no
/// font is measured (the page names none), so each character counts as much as it
/// takes in the wider common fonts (DejaVu Sans, Verdana): 0.4 em for narrow ones,
/// 0.9 em for wide ones and capitals, 0.66 em for the rest (digits included).
pub fn text_width(text: &str, font_px: f64) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            ' ' | '.' | ',' | ':' | ';' | '\'' | '!' | '|' | 'i' | 'j' | 'l' | 't' | 'f' | 'r'
            | '(' | ')' | '[' | ']' | '1' => 0.4,
            'm' | 'w' | 'M' | 'W' | '%' | '@' | '…' | '≤' | '≥' | '→' | '—' => 1.0,
            c if c.is_uppercase() => 0.8,
            _ => 0.66,
        })
        .sum();
    em * font_px
}

/// Round tick values covering `[lo, hi]`, about `n` steps of 1, 2, 2.5 or 5 × 10ᵏ:
/// (ticks, axis low, axis high). An empty or NaN range is widened by 1 either way,
/// and at most 51 ticks come back whatever the input.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> (Vec<f64>, f64, f64) {
    let (mut lo, mut hi) = (lo, hi);
    // Also catches NaN.
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        lo -= 1.0;
        hi += 1.0;
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let a = (lo / step).floor() * step;
    let b = (hi / step).ceil() * step;
    let count = (((b - a) / step).round() as usize).min(50);
    let ticks = (0..=count).map(|k| a + step * k as f64).collect();
    (ticks, a, b.max(a + step))
}

/// A tick label with as many decimals as the tick step needs (so 100.02 and
/// 100.04 do not both print as 100); from a step of 1000 up, `compact`.
pub fn tick_label(x: f64, ticks: &[f64]) -> String {
    let step = match ticks {
        [a, b, ..] => (b - a).abs(),
        _ => 1.0,
    };
    if step >= 1_000.0 || step.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return compact(x);
    }
    let mut dp = 0usize;
    // Bounded: 10 decimals resolve any step a chart of money or % shows.
    while dp < 10 && {
        let v = step * 10f64.powi(dp as i32);
        (v - v.round()).abs() > 1e-6 * v.max(1.0)
    } {
        dp += 1;
    }
    format!("{x:.dp$}")
}

/// A number in a few characters: 1.2G, 3.4M, 56k, 120, 7, 0.25.
pub fn compact(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a == 0.0 || a >= 10.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// `s` cut to `n` characters, the last one an ellipsis when anything was cut.
pub fn truncate(s: &str, n: usize) -> String {
    debug_assert!(n > 0);
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Escapes text for HTML and SVG element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's plot area, 830×224 px from (70, 30), with the scales given.
    fn area(x: Scale, y: Scale) -> Plot {
        Plot::new(70.0, 30.0, 830.0, 224.0, x, y)
    }

    fn plot() -> Plot {
        area(
            Scale::Linear { lo: 0.0, hi: 10.0 },
            Scale::Linear {
                lo: -50.0,
                hi: 50.0,
            },
        )
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 97.0, 5),
            (vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0], 0.0, 100.0)
        );
        let (t, lo, hi) = nice_ticks(-3.2, 41.0, 5);
        assert_eq!(t, vec![-10.0, 0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        assert_eq!((lo, hi), (-10.0, 50.0));
        // A step of 0.025 would be finer than a fifth of the range: 0.05 it is.
        let (t, lo, hi) = nice_ticks(99.91, 100.04, 5);
        assert_eq!(t.len(), 4, "{t:?}");
        assert!((t[1] - t[0] - 0.05).abs() < 1e-9, "{t:?}");
        assert!(lo <= 99.91 && hi >= 100.04, "{lo}..{hi}");
    }

    #[test]
    fn an_empty_or_nan_range_still_gets_ticks() {
        assert_eq!(
            nice_ticks(5.0, 5.0, 5),
            (vec![4.0, 4.5, 5.0, 5.5, 6.0], 4.0, 6.0)
        );
        assert_eq!(nice_ticks(0.0, 0.0, 0).0, vec![-2.0, 0.0, 2.0]);
        assert!(nice_ticks(f64::NAN, f64::NAN, 5).0.len() <= 51);
        // A huge range in a tiny step is cut at 51 ticks.
        assert!(nice_ticks(0.0, 1e12, 1_000_000).0.len() <= 51);
    }

    #[test]
    fn tick_labels_have_the_decimals_their_step_needs() {
        let t = [100.0, 100.02, 100.04];
        assert_eq!(tick_label(100.02, &t), "100.02");
        assert_eq!(tick_label(100.0, &t), "100.00");
        assert_eq!(tick_label(20.0, &[0.0, 20.0]), "20");
        assert_eq!(tick_label(2.5, &[0.0, 2.5]), "2.5");
        assert_eq!(tick_label(5_000.0, &[0.0, 5_000.0]), "5000");
        assert_eq!(tick_label(50_000.0, &[0.0, 50_000.0]), "50k");
        assert_eq!(tick_label(7.0, &[7.0]), "7");
    }

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(7.0), "7");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(-0.5), "-0.50");
        assert_eq!(compact(120.4), "120");
        assert_eq!(compact(56_000.0), "56k");
        assert_eq!(compact(-3_400_000.0), "-3.4M");
        assert_eq!(compact(1.25e9), "1.2G");
    }

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(
            esc("<script>alert(\"x\")</script>"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
        );
        assert_eq!(esc("O'Brien & co"), "O&#39;Brien &amp; co");
        assert_eq!(esc("µs · ≤ 4"), "µs · ≤ 4");

        let p = plot();
        let mut s = String::new();
        let evil = "\"><script>x</script>";
        p.line(
            &mut s,
            &[(1.0, 2.0), (3.0, 4.0)],
            evil,
            Some(evil),
            Some(evil),
        );
        p.legend(&mut s, Key::Line, 0.0, 10.0, evil, Some(evil), evil);
        p.legend(&mut s, Key::Swatch, 0.0, 10.0, evil, None, evil);
        p.bars(&mut s, &[(evil.to_string(), 3)]);
        p.y_ticks(&mut s, &[(0.0, evil.to_string())]);
        p.x_ticks(&mut s, &[(0.0, evil.to_string())], true, Anchor::Middle);
        p.y_title(&mut s, 12.0, evil);
        p.x_title(&mut s, 290.0, evil);
        assert!(!s.contains("<script") && !s.contains(evil), "{s}");
        // Each of the 14 places it went (attributes and text) holds it escaped.
        assert_eq!(
            s.matches("&quot;&gt;&lt;script&gt;x&lt;/script&gt;")
                .count(),
            14
        );
    }

    #[test]
    fn empty_data_draw_nothing() {
        let p = plot();
        let mut s = String::new();
        p.line(&mut s, &[], "#000", None, Some("x"));
        p.area(&mut s, &[], "#000");
        p.bars(&mut s, &[]);
        p.y_ticks(&mut s, &[]);
        p.x_ticks(&mut s, &[], true, Anchor::EndsInside);
        assert_eq!(s, "");
        // Zero counts keep their labels but draw no bar.
        p.bars(&mut s, &[("a".into(), 0), ("b".into(), 0)]);
        assert!(!s.contains("class=\"data"), "{s}");
        assert_eq!(s.matches("class=\"tick\"").count(), 2);
    }

    #[test]
    fn scales_map_the_ends_of_the_range_to_the_edges() {
        let p = plot();
        assert_eq!((p.px(0.0), p.px(10.0)), (70.0, 900.0));
        assert_eq!((p.py(50.0), p.py(-50.0), p.py(0.0)), (30.0, 254.0, 142.0));
        let log = area(
            Scale::Linear { lo: 0.0, hi: 1.0 },
            Scale::Log10 { lo: 10.0, hi: 1e4 },
        );
        assert_eq!((log.py(1e4), log.py(10.0)), (30.0, 254.0));
        assert!((log.py(100.0) - (254.0 - 224.0 / 3.0)).abs() < 1e-9);
        // Nothing falls off a log axis: zero sits on its low end.
        assert_eq!(log.py(0.0), 254.0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is reversed")]
    fn a_reversed_scale_is_refused() {
        area(
            Scale::Linear { lo: 1.0, hi: 0.0 },
            Scale::Linear { lo: 0.0, hi: 1.0 },
        );
    }

    #[test]
    fn one_point_still_draws_and_ticks_anchor_inside_at_the_ends() {
        let p = plot();
        let mut s = String::new();
        p.line(&mut s, &[(5.0, 0.0)], "#123456", None, None);
        assert_eq!(
            s,
            "<path class=\"data line\" stroke=\"#123456\" d=\"M485.0,142.0L489.0,142.0\"/>"
        );
        s.clear();
        let t = |v: f64| (v, format!("{v}"));
        p.x_ticks(
            &mut s,
            &[t(0.0), t(5.0), t(10.0)],
            false,
            Anchor::EndsInside,
        );
        let anchors: Vec<&str> = s
            .split("text-anchor=\"")
            .skip(1)
            .map(|x| &x[..x.find('"').unwrap()])
            .collect();
        assert_eq!(anchors, ["start", "middle", "end"]);
        assert!(!s.contains("class=\"grid\""));
    }

    /// `(left, right)` of each tick label in `s`, in px, as `text_width` measures.
    fn label_spans(s: &str, font_px: f64) -> Vec<(f64, f64)> {
        s.split("<text class=\"tick\" x=\"")
            .skip(1)
            .map(|t| {
                let x: f64 = t[..t.find('"').unwrap()].parse().unwrap();
                let label = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
                let w = text_width(label, font_px);
                match &t[t.find("text-anchor=\"").unwrap() + 13..] {
                    a if a.starts_with("start") => (x, x + w),
                    a if a.starts_with("end") => (x - w, x),
                    _ => (x - w / 2.0, x + w / 2.0),
                }
            })
            .collect()
    }

    #[test]
    fn x_labels_that_would_overlap_are_left_out_but_both_ends_stay() {
        let p = plot().tick_font(12.0);
        let ticks: Vec<(f64, String)> = (0..=10)
            .map(|k| (k as f64, format!("2024-09-{:02} 00:00:00", k + 1)))
            .collect();
        let mut s = String::new();
        p.x_ticks(&mut s, &ticks, true, Anchor::EndsInside);
        // Every grid line stays; labels 83 px apart but ~150 px wide do not.
        assert_eq!(s.matches("class=\"grid\"").count(), 11);
        let spans = label_spans(&s, 12.0);
        assert!(spans.len() >= 3 && spans.len() < 11, "{spans:?}");
        for w in spans.windows(2) {
            assert!(w[0].1 + 12.0 * LABEL_GAP_EM <= w[1].0, "{spans:?}");
        }
        assert!(s.contains(">2024-09-01 00:00:00<") && s.contains(">2024-09-11 00:00:00<"));
        // Labels that fit are all kept.
        s.clear();
        let short: Vec<(f64, String)> = (0..=10).map(|k| (k as f64, k.to_string())).collect();
        p.x_ticks(&mut s, &short, false, Anchor::Middle);
        assert_eq!(s.matches("class=\"tick\"").count(), 11);
    }

    #[test]
    fn bar_labels_are_thinned_to_fit_and_kept_inside_the_plot() {
        let p = plot().tick_font(12.0);
        let bars: Vec<(String, u64)> = (0..40)
            .map(|k| (format!("-{k}00.00 … -{k}50.00 quote"), k))
            .collect();
        let mut s = String::new();
        p.bars(&mut s, &bars);
        assert_eq!(s.matches("class=\"data bar\"").count(), 39);
        let spans = label_spans(&s, 12.0);
        assert!(spans.len() >= 2, "{spans:?}");
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{spans:?}");
        }
        for (l, r) in spans {
            assert!(l >= p.left - 1e-9 && r <= p.right() + 1e-9, "({l}, {r})");
        }
    }

    #[test]
    fn text_width_errs_wide_and_grows_with_the_text() {
        assert_eq!(text_width("", 12.0), 0.0);
        assert!(text_width("2024-09-01", 12.0) > text_width("2024-09", 12.0));
        // DejaVu Sans, the widest common default, draws a digit 0.64 em wide.
        assert!(text_width("0000000000", 10.0) >= 10.0 * 0.64 * 10.0);
        assert!(text_width("MW", 12.0) > text_width("il", 12.0));
    }

    #[test]
    fn truncation_marks_what_it_cut() {
        assert_eq!(truncate("leader-1", 20), "leader-1");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("µµµµµ", 5), "µµµµµ");
    }
}
