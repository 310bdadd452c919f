//! The reports' tests: metrics, fees and the HTML page.
//!
//! One test binary for the crate (`autotests = false`): each file below is a
//! module, so the workspace links one binary here instead of one per file.

mod report_attribution;
mod report_capital;
mod report_html;
mod report_metrics;
mod report_views;
