//! ISO 8601 week numbers from Unix milliseconds, without a date library.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO week: year and week number (1–53).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IsoWeek {
    /// ISO week-numbering year.
    pub year: i32,
    /// Week 1–53.
    pub week: u8,
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-W{:02}", self.year, self.week)
    }
}

impl IsoWeek {
    /// Parses `YYYY-Www` (e.g. `2026-W48`); `None` unless that week exists.
    pub fn parse(text: &str) -> Option<IsoWeek> {
        let (year, week) = text.trim().split_once("-W")?;
        if year.len() != 4 || week.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let week: u8 = week.parse().ok()?;
        // December 28 is always in the year's last ISO week.
        let last = iso_week((days_from_civil(i64::from(year), 12, 28) * 86_400_000) as u64).week;
        (year >= 1970 && (1..=last).contains(&week)).then_some(IsoWeek { year, week })
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The ISO week containing the instant `ms` (UTC).
pub fn iso_week(ms: u64) -> IsoWeek {
    let days = (ms / 86_400_000) as i64;
    // 1970-01-01 was a Thursday; ISO weekday 1 = Monday.
    let weekday = (days + 3).rem_euclid(7) + 1;
    let thursday = days - weekday + 4; // the Thursday of this ISO week decides its year
    let (year, _, _) = civil(thursday);
    let jan1 = days_from_civil(year, 1, 1);
    let week = ((thursday - jan1) / 7 + 1) as u8;
    IsoWeek {
        year: year as i32,
        week,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i64, m: u32, d: u32) -> u64 {
        (days_from_civil(y, m, d) * 86_400_000) as u64
    }

    #[test]
    fn known_iso_weeks() {
        assert_eq!(iso_week(ms(2026, 11, 25)).to_string(), "2026-W48");
        assert_eq!(iso_week(ms(2021, 1, 3)).to_string(), "2020-W53");
        assert_eq!(iso_week(ms(2024, 12, 30)).to_string(), "2025-W01");
        assert_eq!(iso_week(ms(1970, 1, 1)).to_string(), "1970-W01");
        assert_eq!(civil(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(
            IsoWeek::parse("2020-W53"),
            Some(IsoWeek {
                year: 2020,
                week: 53
            })
        );
        assert_eq!(IsoWeek::parse("2025-W53"), None);
        assert!(IsoWeek::parse("2026-W53").is_some());
        assert_eq!(IsoWeek::parse("2026-W00"), None);
        assert_eq!(IsoWeek::parse("2026-48"), None);
    }
}
