//! What a run found, in the shape the JSON file has: per scenario, per case (a
//! follower count, a durability setting, a database), per variant (fillcast, its
//! baseline, further references), latency percentiles from hdrhistogram,
//! throughput and the ratio against the case's baseline. Also the run's context:
//! machine, git revision, command line, time. Owns no measuring.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bumped when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// 1 ns .. 60 s at 3 significant digits: fixed size, so recording never allocates.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub schema: u32,
    pub tool: &'static str,
    pub version: &'static str,
    /// `release` or `debug`: figures from a debug build mean little.
    pub build: &'static str,
    /// UTC, RFC 3339.
    pub timestamp: String,
    pub command_line: Vec<String>,
    pub quick: bool,
    pub git: Git,
    pub machine: Machine,
    pub scenarios: Vec<Scenario>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Git {
    /// `git rev-parse --short HEAD`, or "unknown" outside a checkout.
    pub revision: String,
    /// Tracked files differ from the revision (None when unknown).
    pub dirty: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `std::thread::available_parallelism`.
    pub cores: usize,
    pub cpu_model: String,
    pub memory_bytes: u64,
    pub kernel: String,
    pub os: &'static str,
    pub arch: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub title: String,
    /// What the fillcast side runs, and what the baseline runs.
    pub fillcast: String,
    pub baseline: String,
    pub threads: Vec<ThreadRole>,
    /// A DESIGN.md target this scenario checks, if any.
    pub target: Option<String>,
    pub cases: Vec<Case>,
    /// Parts that did not run, and why (e.g. no PostgreSQL given).
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
    pub elapsed_s: f64,
}

/// One thread of a scenario: who runs it, what it does, where it is pinned.
#[derive(Clone, Debug, Serialize)]
pub struct ThreadRole {
    pub variant: &'static str,
    pub thread: &'static str,
    pub work: &'static str,
    /// CPU the thread is pinned to; None = left to the scheduler.
    pub pinned_cpu: Option<usize>,
}

impl ThreadRole {
    pub fn unpinned(variant: &'static str, thread: &'static str, work: &'static str) -> ThreadRole {
        ThreadRole {
            variant,
            thread,
            work,
            pinned_cpu: None,
        }
    }
}

/// How a case's ratio is formed. Either way, above 1 means fillcast is better.
#[derive(Copy, Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RatioBasis {
    /// baseline p99 ÷ variant p99.
    P99Latency,
    /// variant throughput ÷ baseline throughput.
    Throughput,
}

#[derive(Clone, Debug, Serialize)]
pub struct Case {
    pub name: String,
    pub params: BTreeMap<String, serde_json::Value>,
    pub ratio_basis: RatioBasis,
    /// The headline: the first fillcast variant against the baseline.
    pub ratio: Option<f64>,
    /// How the headline compares with the DESIGN.md target, in words.
    pub target_result: Option<String>,
    pub variants: Vec<Variant>,
}

#[derive(Copy, Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Fillcast,
    /// The one the ratio is against.
    Baseline,
    /// A further point of comparison (no ratio is formed against it).
    Reference,
}

#[derive(Clone, Debug, Serialize)]
pub struct Variant {
    pub name: String,
    pub role: Role,
    pub description: String,
    /// Latency samples recorded (0 when the variant has no latency).
    pub samples: u64,
    pub latency_ns: Option<Latency>,
    pub throughput: Option<Throughput>,
    /// Against the case's baseline on the case's basis; 1 for the baseline.
    pub ratio: Option<f64>,
    /// Secondary figures, named with their unit last.
    pub extra: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// What one sample is (e.g. "per leader fill, intended start → last order").
    pub basis: String,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
    pub mean: f64,
    pub count: u64,
    /// (percentile, ns): the percentile spectrum the chart draws.
    pub spectrum: Vec<(f64, u64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub value: f64,
    pub unit: &'static str,
}

/// Percentiles the spectrum keeps: 0, 50, 75, 90, 95, … up to 99.999 (evenly spaced
/// on the chart's 1/(1−q) axis), then the maximum.
const SPECTRUM_NINES: [f64; 13] = [
    0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999, 1.0,
];

impl Latency {
    pub fn from_histogram(basis: impl Into<String>, h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let mut spectrum = Vec::with_capacity(SPECTRUM_NINES.len());
        for q in SPECTRUM_NINES {
            // A percentile finer than the sample count allows is the maximum: stop there.
            if q > 0.0 && q < 1.0 && (1.0 - q) * (h.len() as f64) < 1.0 {
                break;
            }
            let v = if q >= 1.0 {
                h.max()
            } else {
                h.value_at_quantile(q)
            };
            spectrum.push((q * 100.0, v));
        }
        if spectrum.last().map(|p| p.0) != Some(100.0) {
            spectrum.push((100.0, h.max()));
        }
        Some(Latency {
            basis: basis.into(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            count: h.len(),
            spectrum,
        })
    }
}

impl Variant {
    pub fn new(name: impl Into<String>, role: Role, description: impl Into<String>) -> Variant {
        Variant {
            name: name.into(),
            role,
            description: description.into(),
            samples: 0,
            latency_ns: None,
            throughput: None,
            ratio: None,
            extra: BTreeMap::new(),
        }
    }

    pub fn latency(mut self, basis: impl Into<String>, h: &Histogram<u64>) -> Variant {
        self.samples = h.len();
        self.latency_ns = Latency::from_histogram(basis, h);
        self
    }

    pub fn throughput(mut self, value: f64, unit: &'static str) -> Variant {
        self.throughput = Some(Throughput { value, unit });
        self
    }

    pub fn extra(mut self, name: &str, value: f64) -> Variant {
        self.extra.insert(name.into(), value);
        self
    }

    fn basis_value(&self, basis: RatioBasis) -> Option<f64> {
        match basis {
            RatioBasis::P99Latency => self.latency_ns.as_ref().map(|l| l.p99 as f64),
            RatioBasis::Throughput => self.throughput.as_ref().map(|t| t.value),
        }
    }
}

impl Case {
    pub fn new(name: impl Into<String>, basis: RatioBasis) -> Case {
        Case {
            name: name.into(),
            params: BTreeMap::new(),
            ratio_basis: basis,
            ratio: None,
            target_result: None,
            variants: Vec::new(),
        }
    }

    pub fn param(mut self, name: &str, value: impl Into<serde_json::Value>) -> Case {
        self.params.insert(name.into(), value.into());
        self
    }

    pub fn variant(mut self, v: Variant) -> Case {
        self.variants.push(v);
        self
    }

    /// Fills in every variant's ratio and the headline; call after the last variant.
    pub fn finish(mut self) -> Case {
        let basis = self.ratio_basis;
        let base = self
            .variants
            .iter()
            .find(|v| v.role == Role::Baseline)
            .and_then(|v| v.basis_value(basis))
            .filter(|b| *b > 0.0);
        for v in &mut self.variants {
            v.ratio = match (base, v.basis_value(basis)) {
                (Some(b), Some(x)) if x > 0.0 => Some(match basis {
                    RatioBasis::P99Latency => b / x,
                    RatioBasis::Throughput => x / b,
                }),
                _ => None,
            };
        }
        self.ratio = self
            .variants
            .iter()
            .find(|v| v.role == Role::Fillcast)
            .and_then(|v| v.ratio);
        self
    }

    pub fn fillcast(&self) -> Option<&Variant> {
        self.variants.iter().find(|v| v.role == Role::Fillcast)
    }
}

pub fn git() -> Git {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match out(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) if !rev.is_empty() => Git {
            revision: rev,
            dirty: out(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
        },
        _ => Git {
            revision: "unknown".into(),
            dirty: None,
        },
    }
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        cores: cores(),
        cpu_model,
        memory_bytes,
        kernel,
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Now, UTC, as RFC 3339 (`2026-11-21T03:07:43Z`).
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn ratios_point_the_same_way_on_both_bases() {
        let mut fast = histogram();
        let mut slow = histogram();
        for _ in 0..100 {
            fast.record(1_000).unwrap();
            slow.record(4_000).unwrap();
        }
        let case = Case::new("lat", RatioBasis::P99Latency)
            .variant(Variant::new("f", Role::Fillcast, "").latency("x", &fast))
            .variant(Variant::new("b", Role::Baseline, "").latency("x", &slow))
            .finish();
        assert!((case.ratio.unwrap() - 4.0).abs() < 0.01);
        let case = Case::new("thr", RatioBasis::Throughput)
            .variant(Variant::new("f", Role::Fillcast, "").throughput(8.0, "x/s"))
            .variant(Variant::new("b", Role::Baseline, "").throughput(2.0, "x/s"))
            .finish();
        assert_eq!(case.ratio, Some(4.0));
        assert_eq!(case.variants[1].ratio, Some(1.0));
    }

    #[test]
    fn spectrum_stops_where_the_samples_do() {
        let mut h = histogram();
        for v in 1..=100u64 {
            h.record(v * 10).unwrap();
        }
        let l = Latency::from_histogram("x", &h).unwrap();
        assert_eq!(l.spectrum.last().unwrap(), &(100.0, h.max()));
        assert!(l.spectrum.iter().all(|(q, _)| *q <= 99.0 || *q == 100.0));
    }
}
