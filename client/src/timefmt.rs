//! Reading the clock and formatting times. The only place the client reads the wall clock.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn datetime(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 in UTC, to the millisecond: `2026-11-25T16:40:00.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let dt = datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// A compact UTC display form: `2026-11-25 16:40`.
pub fn short(ms: u64) -> String {
    let dt = datetime(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute()
    )
}

/// Parses RFC 3339 (`2024-05-01T08:30:00Z`), a date and time in UTC (`2024-05-01 08:30` or
/// `2024-05-01T08:30`), a date (`2024-05-01`, midnight UTC) or milliseconds since the epoch.
pub fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Some(ms);
    }
    let with_t = text.replacen(' ', "T", 1);
    let dt = OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(&format!("{with_t}:00Z"), &Rfc3339).ok())
        .or_else(|| OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339).ok())?;
    u64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse("1970-01-02"), Some(86_400_000));
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("1970-01-02 01:00"), Some(90_000_000));
        assert_eq!(parse("1970-01-02T01:00"), Some(90_000_000));
        assert_eq!(short(1_700_000_000_123), "2023-11-14 22:13");
    }
}
