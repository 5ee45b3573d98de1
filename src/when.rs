//! Times on the command line (`WHEN`: a duration from now, an RFC 3339 date, or `@UNIX`), and
//! times shown to people (RFC 3339 plus "in 59m" / "3h ago").

use std::str::FromStr;

/// What every WHEN error lists.
pub const WHEN_FORMS: &str = "a duration from now (30s, 15m, 1h, 7d, -5m, 1h30m), an RFC 3339 date (2026-12-01T10:00:00Z or 2026-12-01), or @UNIX seconds";

/// The longest duration any flag or request takes (100 years): beyond it, time arithmetic
/// would be meaningless long before it could overflow.
pub const MAX_DURATION: i64 = 100 * 365 * 86_400;

/// A positive duration no longer than `MAX_DURATION`, or a usage error naming the flag.
pub fn duration(flag: &str, text: &str) -> anyhow::Result<i64> {
    match parse_duration(text) {
        Ok(d) if d > 0 && d <= MAX_DURATION => Ok(d),
        Ok(d) if d > MAX_DURATION => anyhow::bail!("{flag} {text}: at most 100 years"),
        _ => anyhow::bail!("{flag}: expected a positive duration such as 15m, not {text:?}"),
    }
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Seconds since the epoch, rounded up: an expiry counted from here is never shorter than
/// asked (`expires_in=1s` lasts at least a second, not until the next second boundary).
pub fn now_ceil() -> i64 {
    let t = jiff::Timestamp::now();
    t.as_second() + i64::from(t.subsec_nanosecond() > 0)
}

/// Parses a WHEN into Unix seconds, relative to `now`.
pub fn parse_when(text: &str, now: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("cannot read {text:?} as a time: expected {WHEN_FORMS}");
    if let Some(unix) = t.strip_prefix('@') {
        return unix.parse::<i64>().map_err(|_| bad());
    }
    if let Ok(secs) = parse_duration(t) {
        return now.checked_add(secs).ok_or_else(bad);
    }
    if let Ok(ts) = jiff::Timestamp::from_str(t) {
        return Ok(ts.as_second());
    }
    if let Ok(date) = jiff::civil::Date::from_str(t)
        && let Ok(zoned) = date.to_zoned_datetime(jiff::tz::TimeZone::UTC)
    {
        return Ok(zoned.timestamp().as_second());
    }
    Err(bad())
}

/// Parses a signed duration such as `30s`, `15m`, `-5m`, `1h30m`, `7d`, `2w` into seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("cannot read {text:?} as a duration (examples: 30s, 15m, 1h, 7d, 1h30m)");
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    if body.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in body.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(sign * total)
}

/// RFC 3339 in UTC, e.g. `2011-03-22T18:43:00Z`.
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map_or_else(|_| format!("@{unix} (out of range)"), |t| t.to_string())
}

/// A short human span: `45s`, `59m`, `3h 5m`, `2d 3h`, `15y 8d`.
pub fn span(secs: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;
    const YEAR: u64 = 365 * DAY;
    let pair = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua} {b}{ub}")
        }
    };
    match secs {
        s if s < MIN => format!("{s}s"),
        s if s < HOUR => pair(s / MIN, "m", 0, ""),
        s if s < DAY => pair(s / HOUR, "h", s % HOUR / MIN, "m"),
        s if s < YEAR => pair(s / DAY, "d", s % DAY / HOUR, "h"),
        s => pair(s / YEAR, "y", s % YEAR / DAY, "d"),
    }
}

/// "in 59m" or "3h ago" (or "now"). Any two i64 times work (no overflow).
pub fn relative(unix: i64, now: i64) -> String {
    match unix.cmp(&now) {
        std::cmp::Ordering::Equal => "now".into(),
        std::cmp::Ordering::Greater => format!("in {}", span(unix.abs_diff(now))),
        std::cmp::Ordering::Less => format!("{} ago", span(unix.abs_diff(now))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_forms() {
        let now = 1_000_000;
        assert_eq!(parse_when("30s", now), Ok(now + 30));
        assert_eq!(parse_when("-5m", now), Ok(now - 300));
        assert_eq!(parse_when("1h30m", now), Ok(now + 5400));
        assert_eq!(parse_when("7d", now), Ok(now + 604_800));
        assert_eq!(parse_when("@1300819380", now), Ok(1_300_819_380));
        assert_eq!(parse_when("2011-03-22T18:43:00Z", now), Ok(1_300_819_380));
        assert_eq!(
            parse_when("2011-03-22T19:43:00+01:00", now),
            Ok(1_300_819_380)
        );
        assert_eq!(parse_when("1970-01-02", now), Ok(86_400));
        for bad in ["", "soon", "5", "1x", "h", "@x", "2011-13-01", "--5m"] {
            let err = parse_when(bad, now).expect_err(bad);
            assert!(err.contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn spans() {
        assert_eq!(span(59), "59s");
        assert_eq!(span(3540), "59m");
        assert_eq!(span(3 * 3600), "3h");
        assert_eq!(span(3 * 3600 + 300), "3h 5m");
        assert_eq!(relative(100, 0), "in 1m");
        assert_eq!(relative(0, 7200), "2h ago");
    }
}
