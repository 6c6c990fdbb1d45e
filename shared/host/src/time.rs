//! Now, and instants as people read them.
use sealrun_format::UnixTime;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in Unix milliseconds (0 before 1970, `u64::MAX` past 584 million years).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now, in Unix seconds.
pub fn now() -> UnixTime {
    now_ms() / 1000
}

/// An instant as RFC 3339 in UTC (`2027-12-31T18:00:00Z`); one beyond what
/// a date can hold as `@SECONDS`.
pub fn rfc3339(t: UnixTime) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{t}"))
}

/// Now as RFC 3339 in UTC, with the clock's fraction of a second.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// A duration as people read it: "2 h 5 min", "3 days 4 h", "40 s".
pub fn fmt_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let day = |n: u64| if n == 1 { "1 day".to_owned() } else { format!("{n} days") };
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => day(d),
        (d, h, _) => format!("{} {h} h", day(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_shown_in_utc_and_out_of_range_ones_as_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_830_297_600), "2028-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), format!("@{}", u64::MAX));
        assert!(now() > 1_700_000_000, "the clock reads {}", now());
    }
}
