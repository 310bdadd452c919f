//! UTC calendar arithmetic on nanosecond timestamps: day, week and month
//! boundaries for settlement periods, and the date labels of charts and text.
//!
//! Owns nothing but integer arithmetic (Howard Hinnant's `days_from_civil` and
//! `civil_from_days`); it never reads a clock, so reports are reproducible.

pub const NS_PER_SEC: i64 = 1_000_000_000;
pub const NS_PER_DAY: i64 = 86_400 * NS_PER_SEC;
/// The latest timestamp a report accepts: 2261-01-01 00:00 UTC, a year and more
/// before `i64` nanoseconds run out, so that adding a settlement period or a window
/// to any accepted timestamp cannot overflow. Timestamps must also be ≥ 0.
pub const TS_MAX_NS: i64 = 106_286 * NS_PER_DAY;

/// The year of annualisation: 365 days, because crypto venues trade every day.
pub const NS_PER_YEAR: i64 = 365 * NS_PER_DAY;

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1..=12).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    debug_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    debug_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
    (year, month, day)
}

/// Start (00:00 UTC) of the day holding `ts_ns`.
pub fn day_start(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(NS_PER_DAY) * NS_PER_DAY
}

/// Start (Monday 00:00 UTC) of the ISO week holding `ts_ns`.
pub fn week_start(ts_ns: i64) -> i64 {
    let days = ts_ns.div_euclid(NS_PER_DAY);
    // 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) mod 7.
    let weekday = (days + 3).rem_euclid(7);
    (days - weekday) * NS_PER_DAY
}

/// Start (the 1st, 00:00 UTC) of the calendar month holding `ts_ns`.
pub fn month_start(ts_ns: i64) -> i64 {
    let (y, m, _) = civil_from_days(ts_ns.div_euclid(NS_PER_DAY));
    days_from_civil(y, m, 1) * NS_PER_DAY
}

/// Start of the calendar month after the one starting at `month_start_ns`.
pub fn next_month_start(month_start_ns: i64) -> i64 {
    let (y, m, _) = civil_from_days(month_start_ns.div_euclid(NS_PER_DAY));
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * NS_PER_DAY
}

/// `2024-11-20 13:05:09 UTC`.
pub fn format_ts(ts_ns: i64) -> String {
    let days = ts_ns.div_euclid(NS_PER_DAY);
    let secs = ts_ns.rem_euclid(NS_PER_DAY) / NS_PER_SEC;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2024-11-20`.
pub fn format_date(ts_ns: i64) -> String {
    let (y, m, d) = civil_from_days(ts_ns.div_euclid(NS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A duration for people: `3d 4h`, `2h 05m`, `41s`, `850ms`.
pub fn format_duration(ns: i64) -> String {
    let ns = ns.max(0);
    let s = ns / NS_PER_SEC;
    if s >= 86_400 {
        format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
    } else if s >= 3600 {
        format!("{}h {:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if s > 0 {
        format!("{s}s")
    } else {
        format!("{}ms", ns / 1_000_000)
    }
}

/// A latency for people: `850ns`, `12.5µs`, `3.2ms`, `1.5s`.
pub fn format_latency(ns: u64) -> String {
    let f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", trim_float(f / 1e3))
    } else if ns < 1_000_000_000 {
        format!("{}ms", trim_float(f / 1e6))
    } else {
        format!("{}s", trim_float(f / 1e9))
    }
}

fn trim_float(x: f64) -> String {
    if x >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A report's `--as-of` time: `YYYY-MM-DD` (that day's 00:00 UTC),
/// `YYYY-MM-DDTHH:MM:SSZ` (UTC only: a report's windows are UTC days), or
/// nanoseconds since the Unix epoch. Within [0, `TS_MAX_NS`]; a date that does
/// not exist (2026-02-30) is refused, not rolled over.
pub fn parse_as_of(text: &str) -> Result<i64, String> {
    let expected = "expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or nanoseconds since 1970";
    let bad = || {
        format!(
            "`{}`: {expected}",
            text.chars().take(40).collect::<String>()
        )
    };
    let ns = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>().map_err(|_| bad())?
    } else {
        let (date, clock) = match text.split_once('T') {
            Some((d, c)) => (d, Some(c.strip_suffix('Z').ok_or_else(bad)?)),
            None => (text, None),
        };
        let num = |s: &str, len: usize| -> Result<u32, String> {
            if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let mut d = date.split('-');
        let (y, m, day) = match (d.next(), d.next(), d.next(), d.next()) {
            (Some(y), Some(m), Some(day), None) => (num(y, 4)?, num(m, 2)?, num(day, 2)?),
            _ => return Err(bad()),
        };
        if !(1..=12).contains(&m) || day == 0 {
            return Err(bad());
        }
        let days = days_from_civil(i64::from(y), m, day.min(31));
        if civil_from_days(days) != (i64::from(y), m, day) {
            return Err(format!("`{text}`: no such date"));
        }
        let secs = match clock {
            None => 0,
            Some(c) => {
                let mut t = c.split(':');
                match (t.next(), t.next(), t.next(), t.next()) {
                    (Some(h), Some(mi), Some(se), None) => {
                        let (h, mi, se) = (num(h, 2)?, num(mi, 2)?, num(se, 2)?);
                        if h > 23 || mi > 59 || se > 59 {
                            return Err(bad());
                        }
                        i64::from(h * 3600 + mi * 60 + se)
                    }
                    _ => return Err(bad()),
                }
            }
        };
        days.checked_mul(NS_PER_DAY)
            .and_then(|n| n.checked_add(secs * NS_PER_SEC))
            .ok_or_else(bad)?
    };
    if !(0..=TS_MAX_NS).contains(&ns) {
        return Err(format!("`{text}` is outside 1970-01-01 to 2261-01-01"));
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    #[test]
    fn as_of_reads_a_date_a_utc_time_or_nanoseconds_and_refuses_the_rest() {
        assert_eq!(parse_as_of("1970-01-01"), Ok(0));
        assert_eq!(
            parse_as_of("2026-12-07"),
            Ok(days_from_civil(2026, 12, 7) * NS_PER_DAY)
        );
        assert_eq!(
            parse_as_of("2026-12-07T13:05:09Z"),
            Ok(days_from_civil(2026, 12, 7) * NS_PER_DAY + (13 * 3600 + 5 * 60 + 9) * NS_PER_SEC)
        );
        assert_eq!(
            parse_as_of("1765000000000000000"),
            Ok(1_765_000_000_000_000_000)
        );
        assert_eq!(
            parse_as_of("2024-02-29"),
            Ok(days_from_civil(2024, 2, 29) * NS_PER_DAY)
        );
        for bad in [
            "",
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "2026-12-07T13:05:09",
            "2026-12-07T13:05:09+02:00",
            "2026-12-07T24:00:00Z",
            "2026-12-07 13:05:09Z",
            "2261-01-02",
            "99999999999999999999",
            "-5",
            "yesterday",
            "２０２６-12-07",
        ] {
            assert!(parse_as_of(bad).is_err(), "{bad:?}");
        }
        assert!(parse_as_of("2026-02-30")
            .unwrap_err()
            .contains("no such date"));
    }

    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(TS_MAX_NS, days_from_civil(2261, 1, 1) * NS_PER_DAY);
    }

    #[test]
    fn boundaries() {
        // 2024-11-20 (a Wednesday) 13:05:09 UTC.
        let ts = (days_from_civil(2024, 11, 20) * 86_400 + 13 * 3600 + 5 * 60 + 9) * NS_PER_SEC;
        assert_eq!(format_ts(ts), "2024-11-20 13:05:09 UTC");
        assert_eq!(format_date(day_start(ts)), "2024-11-20");
        assert_eq!(format_date(week_start(ts)), "2024-11-18");
        assert_eq!(format_date(month_start(ts)), "2024-11-01");
        assert_eq!(format_date(next_month_start(month_start(ts))), "2024-12-01");
        let dec = days_from_civil(2024, 12, 1) * NS_PER_DAY;
        assert_eq!(format_date(next_month_start(dec)), "2025-01-01");
    }
}
