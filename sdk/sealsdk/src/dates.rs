//! Dates on the command line and in output. All instants are UTC.
use sealrun_format::UnixTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};

use crate::{Result, SdkError};

/// Seconds in a day.
const DAY: u64 = 86_400;

/// Now, in Unix seconds.
pub fn now() -> UnixTime {
    sealrun_host::time::now()
}

/// Which end of a day a bare date stands for.
#[derive(Debug, Clone, Copy)]
pub enum DayEdge {
    /// 00:00:00 of that day (for "valid from").
    Start,
    /// 00:00:00 of the next day, so the whole named day is included (for
    /// "expires": `--expires 2027-12-31` is valid through that day).
    End,
}

/// Parses `YYYY-MM-DD` or an RFC 3339 time.
pub fn parse(s: &str, edge: DayEdge) -> Result<UnixTime> {
    let bad = || SdkError::BadDate(s.to_owned());
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return u64::try_from(t.unix_timestamp()).map_err(|_| bad());
    }
    let d = Date::parse(s, format_description!("[year]-[month]-[day]")).map_err(|_| bad())?;
    let start = u64::try_from(d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()).map_err(|_| bad())?;
    Ok(match edge {
        DayEdge::Start => start,
        DayEdge::End => start + DAY,
    })
}

/// Describes an expiry; one at midnight UTC also names the last valid day,
/// since `--expires 2027-12-31` is stored as 2028-01-01T00:00:00Z.
pub fn describe_expiry(t: UnixTime) -> String {
    if t.is_multiple_of(DAY) && t >= DAY {
        let last = format(t - DAY);
        format!("{} (valid through {} UTC)", format(t), &last[..10])
    } else {
        format(t)
    }
}

/// Describes the end of something that lasts within a license (a
/// feature): "through 2027-03-01 UTC" for an end at midnight, as
/// `--feature-expires beta=2027-03-01` makes, else "until" the instant.
pub fn describe_end(t: UnixTime) -> String {
    if t.is_multiple_of(DAY) && t >= DAY {
        format!("through {} UTC", &format(t - DAY)[..10])
    } else {
        format!("until {}", format(t))
    }
}

/// Formats an instant as RFC 3339 (UTC).
pub fn format(t: UnixTime) -> String {
    sealrun_host::time::rfc3339(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_includes_the_named_day() {
        let end = parse("2027-12-31", DayEdge::End).unwrap();
        assert_eq!(format(end), "2028-01-01T00:00:00Z");
        assert_eq!(format(parse("2027-12-31", DayEdge::Start).unwrap()), "2027-12-31T00:00:00Z");
        assert_eq!(parse("2027-12-31T18:00:00Z", DayEdge::End).unwrap(), end - 6 * 3600);
        assert!(parse("31/12/2027", DayEdge::End).is_err());
        assert_eq!(describe_expiry(end), "2028-01-01T00:00:00Z (valid through 2027-12-31 UTC)");
        assert!(parse("2027-02-30", DayEdge::End).is_err());
    }
}
