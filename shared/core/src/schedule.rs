//! EventBridge schedule expressions: `rate(...)` and `cron(...)` (six
//! fields: minutes hours day-of-month month day-of-week year), evaluated in
//! UTC as EventBridge does.

use time::{Duration, OffsetDateTime, Weekday};

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Rate(Duration),
    Cron(Cron),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: Vec<bool>,       // 0..60
    hours: Vec<bool>,         // 0..24
    dom: Option<Vec<bool>>,   // 1..=31 (index 0 unused); None = '?'
    months: Vec<bool>,        // 1..=12
    dow: Option<Vec<bool>>,   // 1..=7, 1 = Sunday; None = '?'
    years: Option<Vec<bool>>, // indexed by year, 1970..=2199
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("schedule expression {expr:?}: {why}")]
pub struct ScheduleError {
    pub expr: String,
    pub why: String,
}

/// Parse an expression, with the reason as a sentence on failure.
pub fn parse(expr: &str) -> Result<Schedule, String> {
    Schedule::parse(expr).map_err(|e| e.to_string())
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let err = |why: &str| ScheduleError { expr: expr.to_string(), why: why.to_string() };
        let e = expr.trim();
        if let Some(inner) = e.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            let mut parts = inner.split_whitespace();
            let n: i64 = parts
                .next()
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| err("rate needs a positive whole number"))?;
            // Beyond i32 the period would wrap (to zero or a negative one).
            let n = i32::try_from(n).map_err(|_| err("the rate is too large"))?;
            let unit = parts.next().ok_or_else(|| err("rate needs a unit"))?;
            if parts.next().is_some() {
                return Err(err("rate takes a number and a unit"));
            }
            let (singular, per) = match unit {
                "minute" | "minutes" => ("minute", Duration::minutes(1)),
                "hour" | "hours" => ("hour", Duration::hours(1)),
                "day" | "days" => ("day", Duration::days(1)),
                _ => return Err(err("the unit must be minute(s), hour(s) or day(s)")),
            };
            // EventBridge insists on the singular for 1 and the plural otherwise.
            if (n == 1) != (unit == singular) {
                return Err(err("use the singular unit for 1 and the plural otherwise"));
            }
            return Ok(Schedule::Rate(per * n));
        }
        if let Some(inner) = e.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            return Cron::parse(inner).map(Schedule::Cron).map_err(|why| err(&why));
        }
        Err(err("expected rate(...) or cron(...)"))
    }

    /// The first firing strictly after `after` (for a rate: `start` + k·period).
    pub fn next_after(&self, start: OffsetDateTime, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Schedule::Rate(d) => {
                let period = d.whole_seconds();
                if period <= 0 {
                    return None;
                }
                let elapsed = (after - start).max(Duration::ZERO);
                let k = i32::try_from(elapsed.whole_seconds() / period + 1).ok()?;
                // None past the last representable date (year 9999).
                start.checked_add(d.checked_mul(k)?)
            }
            Schedule::Cron(c) => c.next_after(after),
        }
    }
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field(spec: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut set = vec![false; hi as usize + 1];
    let val = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(lo + i as u32);
        }
        s.parse::<u32>().map_err(|_| format!("{s:?} is not a number"))
    };
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or(format!("bad step in {part:?}"))?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (val(a)?, val(b)?)
        } else {
            let a = val(range)?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{part:?} is outside {lo}-{hi}"));
        }
        let mut x = a;
        while x <= b {
            set[x as usize] = true;
            let Some(next) = x.checked_add(step) else { break };
            x = next;
        }
    }
    Ok(set)
}

impl Cron {
    fn parse(inner: &str) -> Result<Cron, String> {
        let f: Vec<&str> = inner.split_whitespace().collect();
        if f.len() != 6 {
            return Err("cron takes six fields: minutes hours day-of-month month day-of-week year".into());
        }
        let dom_special = f[2].contains(['L', 'W']);
        let dow_special = f[4].contains('#') || (f[4].ends_with('L') && f[4].len() > 1) || f[4] == "L";
        if dom_special || dow_special {
            return Err("L, W and # are not supported by the local runtime".into());
        }
        if (f[2] == "?") == (f[4] == "?") {
            return Err("exactly one of day-of-month and day-of-week must be '?'".into());
        }
        let years = if f[5] == "*" { None } else { Some(field(f[5], 1970, 2199, &[])?) };
        Ok(Cron {
            minutes: field(f[0], 0, 59, &[])?,
            hours: field(f[1], 0, 23, &[])?,
            dom: if f[2] == "?" { None } else { Some(field(f[2], 1, 31, &[])?) },
            months: field(f[3], 1, 12, &MONTHS)?,
            dow: if f[4] == "?" { None } else { Some(field(f[4], 1, 7, &DAYS)?) },
            years,
        })
    }

    fn day_matches(&self, t: OffsetDateTime) -> bool {
        let dom_ok = self.dom.as_ref().is_none_or(|d| d[t.day() as usize]);
        let dow_num = match t.weekday() {
            Weekday::Sunday => 1,
            Weekday::Monday => 2,
            Weekday::Tuesday => 3,
            Weekday::Wednesday => 4,
            Weekday::Thursday => 5,
            Weekday::Friday => 6,
            Weekday::Saturday => 7,
        };
        let dow_ok = self.dow.as_ref().is_none_or(|d| d[dow_num]);
        let year_ok = self
            .years
            .as_ref()
            .is_none_or(|s| usize::try_from(t.year()).ok().and_then(|y| s.get(y)).copied().unwrap_or(false));
        dom_ok && dow_ok && year_ok && self.months[u8::from(t.month()) as usize]
    }

    fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = after.to_offset(time::UtcOffset::UTC);
        let mut t = after.replace_second(0).ok()?.replace_nanosecond(0).ok()? + Duration::minutes(1);
        // Bounded: at most ~5 years of days.
        for _ in 0..(366 * 5) {
            if self.day_matches(t) {
                for h in t.hour()..24 {
                    if !self.hours[h as usize] {
                        continue;
                    }
                    let m0 = if h == t.hour() { t.minute() } else { 0 };
                    for m in m0..60 {
                        if self.minutes[m as usize] {
                            return t.replace_hour(h).ok()?.replace_minute(m).ok();
                        }
                    }
                }
            }
            t = (t.replace_hour(0).ok()?.replace_minute(0).ok()?) + Duration::days(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rates() {
        assert_eq!(Schedule::parse("rate(5 minutes)").unwrap(), Schedule::Rate(Duration::minutes(5)));
        assert_eq!(Schedule::parse("rate(1 day)").unwrap(), Schedule::Rate(Duration::days(1)));
        for bad in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 minutes)",
            "rate(x hours)",
            "rate(5 weeks)",
            "every 5 minutes",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        let s = Schedule::parse("rate(5 minutes)").unwrap();
        let start = datetime!(2026-11-23 10:00:00 UTC);
        assert_eq!(s.next_after(start, start), Some(datetime!(2026-11-23 10:05:00 UTC)));
        assert_eq!(s.next_after(start, datetime!(2026-11-23 10:07:00 UTC)), Some(datetime!(2026-11-23 10:10:00 UTC)));
    }

    #[test]
    fn huge_rates_and_steps_neither_wrap_nor_panic() {
        // Found by the config_parser fuzz target: the count wrapped to a zero
        // or negative period (next_after divided by zero or fired in the past).
        for bad in ["rate(4294967296 minutes)", "rate(2147483648 minutes)"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        let t = datetime!(2026-11-23 10:00:00 UTC);
        let far = Schedule::parse("rate(2147483647 days)").unwrap();
        assert_eq!(far.next_after(t, t), None, "beyond year 9999: never");
        let step = Schedule::parse("cron(5/4294967295 3 * * ? *)").unwrap();
        assert_eq!(step.next_after(t, t), Some(datetime!(2026-11-24 03:05:00 UTC)));
        assert_eq!(Schedule::Rate(Duration::ZERO).next_after(t, t), None);
    }

    #[test]
    fn crons() {
        let daily = Schedule::parse("cron(0 3 * * ? *)").unwrap();
        let t = datetime!(2026-11-23 10:00:00 UTC);
        assert_eq!(daily.next_after(t, t), Some(datetime!(2026-11-24 03:00:00 UTC)));
        let every15 = Schedule::parse("cron(0/15 * * * ? *)").unwrap();
        assert_eq!(every15.next_after(t, datetime!(2026-11-23 10:01:30 UTC)), Some(datetime!(2026-11-23 10:15:00 UTC)));
        let weekdays = Schedule::parse("cron(30 8 ? * MON-FRI *)").unwrap();
        // 2026-11-28 is a Saturday → next is Monday the 30th
        assert_eq!(
            weekdays.next_after(t, datetime!(2026-11-27 09:00:00 UTC)),
            Some(datetime!(2026-11-30 08:30:00 UTC))
        );
        let first = Schedule::parse("cron(0 0 1 JAN ? *)").unwrap();
        assert_eq!(first.next_after(t, t), Some(datetime!(2027-01-01 00:00:00 UTC)));
        for bad in
            ["cron(0 3 * * * *)", "cron(0 3 ? * ? *)", "cron(0 3 L * ? *)", "cron(0 25 * * ? *)", "cron(0 3 * *)"]
        {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
