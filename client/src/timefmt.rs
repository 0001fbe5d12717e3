//! Reading the clock, and times as a person reads and types them: in the device's time zone.
//!
//! The only place the client reads the wall clock or the time zone. Entries keep instants (UTC
//! milliseconds); this module shows them in local time and reads what a person types as local
//! time. The zone is `TZ` if set (an IANA name such as `America/New_York`, or a POSIX rule),
//! else the system's (`/etc/localtime`), else UTC — as read by `jiff`, which knows IANA names
//! and daylight-saving rules (the `time` crate's local offset gives one offset for "now" only,
//! and refuses to read it at all in a multi-threaded process on Unix).
//!
//! Text shows `2026-11-25 16:40`; `--json` shows RFC 3339 with the local offset
//! (`2026-11-25T16:40:00.123-05:00`, or `…Z` where the zone is UTC).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use std::sync::OnceLock;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The device's time zone (read once per process).
pub fn zone() -> TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    ZONE.get_or_init(|| TimeZone::try_system().unwrap_or(TimeZone::UTC))
        .clone()
}

fn zoned(ms: u64) -> ZonedDateTime {
    let ts = i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned_datetime(zone())
}

fn ms_of(ts: Timestamp) -> Option<u64> {
    u64::try_from(ts.as_millisecond()).ok()
}

fn with_offset(z: &ZonedDateTime, fraction: bool) -> String {
    let base = z.strftime(if fraction {
        "%Y-%m-%dT%H:%M:%S%.3f"
    } else {
        "%Y-%m-%dT%H:%M:%S"
    });
    if z.offset().seconds() == 0 {
        format!("{base}Z")
    } else {
        format!("{base}{}", z.strftime("%:z"))
    }
}

/// RFC 3339 in local time with its offset, to the millisecond: `2026-11-25T11:40:00.123-05:00`
/// (`…Z` where local time is UTC).
pub fn rfc3339(ms: u64) -> String {
    with_offset(&zoned(ms), true)
}

/// A compact local display form: `2026-11-25 16:40`.
pub fn short(ms: u64) -> String {
    zoned(ms).strftime("%Y-%m-%d %H:%M").to_string()
}

/// The local time of day only: `16:40`.
pub fn time_of_day(ms: u64) -> String {
    zoned(ms).strftime("%H:%M").to_string()
}

/// What a person may type for a time, read in the local zone.
enum Typed {
    /// An instant (RFC 3339 with an offset, or milliseconds since the epoch).
    Instant(Timestamp),
    /// A local date and time.
    Local(DateTime),
    /// A local date alone.
    Day(Date),
    /// A local time of day alone (today).
    TimeOfDay(Time),
}

fn typed(text: &str) -> Option<Typed> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        let ms = i64::try_from(ms).ok()?;
        return Timestamp::from_millisecond(ms).ok().map(Typed::Instant);
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(Typed::Instant(ts));
    }
    if let Ok(date) = text.parse::<Date>() {
        if text.len() == 10 {
            return Some(Typed::Day(date));
        }
    }
    if let Ok(dt) = text.replacen(' ', "T", 1).parse::<DateTime>() {
        return Some(Typed::Local(dt));
    }
    let time = text.parse::<Time>().ok()?;
    Some(Typed::TimeOfDay(time))
}

fn local_instant(dt: DateTime) -> Option<Timestamp> {
    // In a daylight-saving gap or fold, the "compatible" choice: the later / earlier instant.
    dt.to_zoned_datetime(zone()).ok().map(|z| z.timestamp())
}

fn today() -> Date {
    zoned(now_ms()).date()
}

/// Reads a time a person typed, in local time: RFC 3339 (`2026-12-01T18:00:00Z`, any offset),
/// a local date and time (`2026-12-01 18:00` or `2026-12-01T18:00`), a time today (`18:00`), a
/// date (`2026-12-01`: the start of that local day) or milliseconds since the epoch.
pub fn parse(text: &str) -> Option<u64> {
    ms_of(match typed(text)? {
        Typed::Instant(ts) => ts,
        Typed::Local(dt) => local_instant(dt)?,
        Typed::Day(date) => date.to_zoned_datetime(zone()).ok()?.timestamp(),
        Typed::TimeOfDay(time) => local_instant(today().to_datetime(time))?,
    })
}

/// Like [`parse`], but a date alone means the end of that local day (its last millisecond):
/// for the end of a range (`--to 2026-12-05` includes that evening) and for due dates.
pub fn parse_end(text: &str) -> Option<u64> {
    match typed(text)? {
        Typed::Day(date) => {
            let next = date
                .tomorrow()
                .ok()?
                .to_zoned_datetime(zone())
                .ok()?
                .timestamp();
            ms_of(next).map(|ms| ms.saturating_sub(1))
        }
        _ => parse(text),
    }
}

/// Reads an ETA typed as a local time of day (`HH:MM`): its next occurrence from `now_ms`
/// (today, or tomorrow if that time has passed), as RFC 3339 with the local offset, without
/// fractions (`2026-12-01T18:00:00-05:00`). `None` if `text` is not `HH:MM`.
pub fn eta(text: &str, now_ms: u64) -> Option<String> {
    let text = text.trim();
    let valid = text.len() == 5
        && text.as_bytes()[2] == b':'
        && text[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && text[3..].parse::<u8>().is_ok_and(|m| m < 60);
    if !valid {
        return None;
    }
    let time = text.parse::<Time>().ok()?;
    let now = zoned(now_ms);
    let mut at = now
        .date()
        .to_datetime(time)
        .to_zoned_datetime(zone())
        .ok()?;
    if at.timestamp() < now.timestamp() {
        at = now
            .date()
            .tomorrow()
            .ok()?
            .to_datetime(time)
            .to_zoned_datetime(zone())
            .ok()?;
    }
    Some(with_offset(&at, false))
}

/// An ETA as stored in a check-in, shown in local time: `18:00` if it falls on the same local
/// day as `now_ms`, else `2026-12-02 18:00`. Check-ins written before ETAs carried a date and
/// offset hold a bare `HH:MM` (which meant UTC): shown as `18:00 UTC`.
pub fn eta_display(stored: &str, now_ms: u64) -> String {
    match stored.parse::<Timestamp>().ok().and_then(ms_of) {
        Some(ms) if zoned(ms).date() == zoned(now_ms).date() => time_of_day(ms),
        Some(ms) => short(ms),
        None => format!("{stored} UTC"),
    }
}

/// An ETA as stored, as RFC 3339 with the local offset for `--json`; `None` for a legacy bare
/// `HH:MM`.
pub fn eta_json(stored: &str) -> Option<String> {
    let ms = stored.parse::<Timestamp>().ok().and_then(ms_of)?;
    Some(with_offset(&zoned(ms), false))
}

/// An ETA as stored, as ms since the epoch; `None` for a legacy bare `HH:MM` (no date).
pub fn eta_ms(stored: &str) -> Option<u64> {
    stored.parse::<Timestamp>().ok().and_then(ms_of)
}

/// An ETA as stored, as a local time of day `HH:MM` (a legacy bare `HH:MM` as it is).
pub fn eta_time_of_day(stored: &str) -> String {
    match stored.parse::<Timestamp>().ok().and_then(ms_of) {
        Some(ms) => time_of_day(ms),
        None => stored.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The process's zone is whatever the machine has; these tests use only zone-independent
    // facts or compare with jiff directly. The zone-specific behaviour is tested through the
    // binary with TZ set (tests/tests/local_time.rs).

    #[test]
    fn instants_parse_and_format_round_trip() {
        assert_eq!(parse("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(
            parse("2023-11-14T17:13:20.123-05:00"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse(&rfc3339(1_700_000_000_123)), Some(1_700_000_000_123));
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2023-13-40"), None);
    }

    #[test]
    fn a_date_alone_is_the_whole_local_day() {
        let start = parse("2026-12-05").unwrap_or_default();
        let end = parse_end("2026-12-05").unwrap_or_default();
        assert_eq!(short(start), "2026-12-05 00:00");
        assert_eq!(short(end), "2026-12-05 23:59");
        assert_eq!(parse("2026-12-06").unwrap_or_default(), end + 1);
        assert_eq!(
            parse("2026-12-05 18:30").map(short).as_deref(),
            Some("2026-12-05 18:30")
        );
        assert_eq!(
            parse("2026-12-05T18:30").map(short).as_deref(),
            Some("2026-12-05 18:30")
        );
        assert_eq!(parse_end("2026-12-05 18:30"), parse("2026-12-05 18:30"));
    }

    #[test]
    fn an_eta_is_its_next_local_occurrence() {
        let now = parse("2026-12-05 19:00").unwrap_or_default();
        let later = eta("20:30", now).unwrap_or_default();
        assert_eq!(eta_display(&later, now), "20:30");
        let tomorrow = eta("07:15", now).unwrap_or_default();
        assert_eq!(eta_display(&tomorrow, now), "2026-12-06 07:15");
        assert_eq!(eta("7:15", now), None);
        assert_eq!(eta("24:00", now), None);
        assert_eq!(eta_display("18:00", now), "18:00 UTC");
        assert_eq!(eta_json("18:00"), None);
        assert_eq!(eta_time_of_day("18:00"), "18:00");
        assert_eq!(eta_time_of_day(&later), "20:30");
        assert_eq!(eta_json(&later).as_deref().and_then(parse), parse(&later));
    }
}
