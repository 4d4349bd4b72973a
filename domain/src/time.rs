//! The one date format clients and Kafka consumers already parse.

use chrono::{DateTime, SecondsFormat, Utc};

/// ISO-8601 UTC with milliseconds and `Z`, as the Node server printed dates
/// (`2000-01-31T10:27:00.000Z`).
pub fn format_iso_millis(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an ISO-8601 date as clients send it (a `cursor`): a full RFC 3339 instant,
/// or a date-time without zone (taken as UTC), or a bare date (midnight UTC).
pub fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_with_millis_and_z() {
        let t = Utc.with_ymd_and_hms(2000, 1, 31, 10, 27, 0).unwrap();
        assert_eq!(format_iso_millis(&t), "2000-01-31T10:27:00.000Z");
    }

    #[test]
    fn parses_the_cursor_forms_clients_send() {
        let t = Utc.with_ymd_and_hms(2004, 5, 6, 7, 8, 9).unwrap();
        assert_eq!(parse_iso("2004-05-06T07:08:09.000Z"), Some(t));
        assert_eq!(parse_iso("2004-05-06T09:08:09+02:00"), Some(t));
        assert_eq!(parse_iso("2004-05-06T07:08:09"), Some(t));
        assert_eq!(
            parse_iso("2004-05-06"),
            Some(Utc.with_ymd_and_hms(2004, 5, 6, 0, 0, 0).unwrap())
        );
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(parse_iso("'; DROP TABLE checkouts; --"), None);
    }
}
