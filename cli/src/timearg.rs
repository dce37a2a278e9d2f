//! Times on the command line: RFC 3339 (`2024-05-01T12:00:00Z`), a date
//! (`2024-05-01`, midnight UTC), `now`, or an age (`45s`, `30m`, `2h`, `7d`, `2w`).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// The longest age accepted (ten years): beyond any retention.
const MAX_AGE: Duration = Duration::days(3650);

/// An age such as `30m`: the duration.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    if n.is_empty() || n.len() > 9 {
        return Err(format!("{s:?} is not an age such as 30m, 2h or 7d"));
    }
    let n: i64 = n.parse().map_err(|_| format!("{s:?} is not an age such as 30m, 2h or 7d"))?;
    let d = match unit {
        "s" | "sec" | "secs" => Duration::seconds(n),
        "m" | "min" | "mins" => Duration::minutes(n),
        "h" | "hr" | "hrs" => Duration::hours(n),
        "d" | "day" | "days" => Duration::days(n),
        "w" | "wk" | "weeks" => Duration::weeks(n),
        _ => return Err(format!("{s:?}: the unit must be s, m, h, d or w (as in 30m, 2h, 7d)")),
    };
    if d > MAX_AGE {
        return Err(format!("{s:?} is more than ten years"));
    }
    Ok(d)
}

/// A point in time, relative to `now` for an age.
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.to_offset(UtcOffset::UTC));
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc());
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) && !s.contains('-') && !s.contains(':') {
        return parse_age(s).map(|d| now - d);
    }
    Err(format!(
        "{s:?} is not a time: give RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or an age (30m, 2h, 7d)"
    ))
}

/// RFC 3339 in UTC, to the second.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The clap value parser: a time as RFC 3339 in UTC.
pub fn clap_time(s: &str) -> Result<String, String> {
    parse_time(s, OffsetDateTime::now_utc()).map(format)
}

/// A timestamp from the API, shortened for a table (`2024-05-01 12:00:03`).
pub fn short(ts: &str) -> String {
    match OffsetDateTime::parse(ts, &Rfc3339) {
        Ok(t) => short_time(t),
        Err(_) => ts.to_string(),
    }
}

/// A time, shortened for a table (`2024-05-01 12:00:03`).
pub fn short_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    t.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]")).unwrap_or_else(|_| t.to_string())
}

/// How long between two API timestamps (`1m 05s`), if both parse.
pub fn elapsed(from: &str, to: &str) -> Option<String> {
    let a = OffsetDateTime::parse(from, &Rfc3339).ok()?;
    let b = OffsetDateTime::parse(to, &Rfc3339).ok()?;
    let secs = (b - a).whole_seconds();
    if secs < 0 {
        return None;
    }
    Some(match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-10 12:00:00 UTC);

    #[test]
    fn ages_are_subtracted_from_now() {
        assert_eq!(parse_time("30m", NOW).unwrap(), datetime!(2024-05-10 11:30:00 UTC));
        assert_eq!(parse_time("2h", NOW).unwrap(), datetime!(2024-05-10 10:00:00 UTC));
        assert_eq!(parse_time("7d", NOW).unwrap(), datetime!(2024-05-03 12:00:00 UTC));
        assert_eq!(parse_time("45s", NOW).unwrap(), datetime!(2024-05-10 11:59:15 UTC));
        assert_eq!(parse_time("1w", NOW).unwrap(), datetime!(2024-05-03 12:00:00 UTC));
        assert_eq!(parse_time("now", NOW).unwrap(), NOW);
    }

    #[test]
    fn rfc3339_and_dates_are_absolute_and_in_utc() {
        assert_eq!(parse_time("2024-05-01T12:00:00Z", NOW).unwrap(), datetime!(2024-05-01 12:00:00 UTC));
        assert_eq!(parse_time("2024-05-01T14:00:00+02:00", NOW).unwrap(), datetime!(2024-05-01 12:00:00 UTC));
        assert_eq!(parse_time("2024-05-01", NOW).unwrap(), datetime!(2024-05-01 00:00:00 UTC));
        assert_eq!(format(datetime!(2024-05-01 12:00:00.123 UTC)), "2024-05-01T12:00:00Z");
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_shapes() {
        for bad in ["", "yesterday", "30", "30x", "m30", "-5m", "2024-13-01", "99999999999d", "5000d"] {
            let e = parse_time(bad, NOW).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse_time("5x", NOW).unwrap_err().contains("unit"));
    }

    #[test]
    fn short_and_elapsed_render_api_timestamps() {
        assert_eq!(short("2024-05-01T12:00:03Z"), "2024-05-01 12:00:03");
        assert_eq!(short("not a time"), "not a time");
        assert_eq!(elapsed("2024-05-01T12:00:00Z", "2024-05-01T12:00:42Z").as_deref(), Some("42s"));
        assert_eq!(elapsed("2024-05-01T12:00:00Z", "2024-05-01T12:01:05Z").as_deref(), Some("1m 05s"));
        assert_eq!(elapsed("2024-05-01T12:00:00Z", "2024-05-01T14:30:00Z").as_deref(), Some("2h 30m"));
        assert_eq!(elapsed("2024-05-01T12:00:00Z", "2024-05-01T11:00:00Z"), None);
    }
}
