//! Date output (SPEC section 3): ISO-8601 by default; Luxon-style `format` tokens, an
//! IANA `timezone` and a `locale` (en, fr, de, es) on request.
//!
//! Hand-written because no crate formats Luxon's token language; the locale tables
//! cover the locales the contract names; other locales are refused.

use chrono::{DateTime, Datelike, FixedOffset, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Why a date could not be formatted as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DateError {
    /// Not an IANA zone name.
    #[error("unknown timezone {0:?}")]
    UnknownZone(String),
    /// An unterminated quoted literal in the format.
    #[error("unterminated literal in date format")]
    BadFormat,
    /// Not a locale the gateway has names for.
    #[error("unknown locale {0:?}: one of en, fr, de, es (optionally with a region, as fr-CA)")]
    UnknownLocale(String),
}

struct Locale {
    months: [&'static str; 12],
    months_short: [&'static str; 12],
    weekdays: [&'static str; 7],
    weekdays_short: [&'static str; 7],
    am_pm: [&'static str; 2],
}

const EN: Locale = Locale {
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    months_short: [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ],
    weekdays: [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    weekdays_short: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    am_pm: ["AM", "PM"],
};
const FR: Locale = Locale {
    months: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
    months_short: [
        "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
        "déc.",
    ],
    weekdays: [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ],
    weekdays_short: ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."],
    am_pm: ["AM", "PM"],
};
const DE: Locale = Locale {
    months: [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ],
    months_short: [
        "Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.",
        "Dez.",
    ],
    weekdays: [
        "Montag",
        "Dienstag",
        "Mittwoch",
        "Donnerstag",
        "Freitag",
        "Samstag",
        "Sonntag",
    ],
    weekdays_short: ["Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."],
    am_pm: ["AM", "PM"],
};
const ES: Locale = Locale {
    months: [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    months_short: [
        "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic",
    ],
    weekdays: [
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
    ],
    weekdays_short: ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"],
    am_pm: ["a. m.", "p. m."],
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Fr,
    De,
    Es,
}

impl Lang {
    /// A BCP 47 tag whose language is one the gateway has names for; anything else
    /// is refused rather than answered in a language the caller did not ask for.
    fn parse(locale: Option<&str>) -> Result<Lang, DateError> {
        let Some(tag) = locale else {
            return Ok(Lang::En);
        };
        let unknown = || DateError::UnknownLocale(tag.to_string());
        let mut subtags = tag.split(['-', '_']);
        let lang = match subtags.next().map(str::to_ascii_lowercase).as_deref() {
            Some("en") => Lang::En,
            Some("fr") => Lang::Fr,
            Some("de") => Lang::De,
            Some("es") => Lang::Es,
            _ => return Err(unknown()),
        };
        let well_formed = subtags
            .all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
        if well_formed {
            Ok(lang)
        } else {
            Err(unknown())
        }
    }

    fn table(self) -> &'static Locale {
        match self {
            Lang::En => &EN,
            Lang::Fr => &FR,
            Lang::De => &DE,
            Lang::Es => &ES,
        }
    }
}

/// Formats `t` as the field arguments ask.
pub fn format(
    t: &DateTime<Utc>,
    format: Option<&str>,
    timezone: Option<&str>,
    locale: Option<&str>,
) -> Result<String, DateError> {
    let lang = Lang::parse(locale)?;
    let zone: Option<Tz> = match timezone {
        Some(name) => Some(
            name.parse()
                .map_err(|_| DateError::UnknownZone(name.to_string()))?,
        ),
        None => None,
    };
    let local = match zone {
        Some(tz) => t.with_timezone(&tz),
        None => t.with_timezone(&Tz::UTC),
    };
    let Some(format) = format else {
        return Ok(match zone {
            None => domain::format_iso_millis(t),
            Some(_) => local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        });
    };
    render(&local, format, lang)
}

fn render(t: &DateTime<Tz>, format: &str, lang: Lang) -> Result<String, DateError> {
    const TOKENS: [&str; 27] = [
        "yyyy", "yy", "MMMM", "MMM", "MM", "M", "dd", "d", "DDD", "DD", "D", "HH", "H", "hh", "h",
        "mm", "m", "ss", "s", "SSS", "a", "ZZZZ", "ZZ", "Z", "EEEE", "EEE", "E",
    ];
    let l = lang.table();
    let offset: FixedOffset = t.offset().fix();
    let mut out = String::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            let end = rest[1..].find('\'').ok_or(DateError::BadFormat)?;
            out.push_str(&rest[1..1 + end]);
            rest = &rest[end + 2..];
            continue;
        }
        let Some(token) = TOKENS.iter().find(|tok| rest.starts_with(**tok)) else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let month0 = t.month0() as usize;
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let piece = match *token {
            "yyyy" => format!("{:04}", t.year()),
            "yy" => format!("{:02}", t.year().rem_euclid(100)),
            "MMMM" => l.months[month0].to_string(),
            "MMM" => l.months_short[month0].to_string(),
            "MM" => format!("{:02}", t.month()),
            "M" => t.month().to_string(),
            "dd" => format!("{:02}", t.day()),
            "d" => t.day().to_string(),
            "DDD" => full_date(t, lang),
            "DD" => medium_date(t, lang),
            "D" => short_date(t, lang),
            "HH" => format!("{:02}", t.hour()),
            "H" => t.hour().to_string(),
            "hh" => format!("{hour12:02}"),
            "h" => hour12.to_string(),
            "mm" => format!("{:02}", t.minute()),
            "m" => t.minute().to_string(),
            "ss" => format!("{:02}", t.second()),
            "s" => t.second().to_string(),
            "SSS" => format!("{:03}", t.timestamp_subsec_millis()),
            "a" => l.am_pm[usize::from(t.hour() >= 12)].to_string(),
            "ZZZZ" => t.format("%Z").to_string(),
            "ZZ" => offset_text(offset.local_minus_utc(), true),
            "Z" => offset_text(offset.local_minus_utc(), false),
            "EEEE" => l.weekdays[t.weekday().num_days_from_monday() as usize].to_string(),
            "EEE" => l.weekdays_short[t.weekday().num_days_from_monday() as usize].to_string(),
            _ => t.weekday().number_from_monday().to_string(), // "E"
        };
        out.push_str(&piece);
        rest = &rest[token.len()..];
    }
    Ok(out)
}

/// `+05:00` (ZZ) or the narrow `+5` / `+5:30` (Z).
fn offset_text(seconds: i32, padded: bool) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let (h, m) = (seconds.abs() / 3600, seconds.abs() % 3600 / 60);
    match (padded, m) {
        (true, _) => format!("{sign}{h:02}:{m:02}"),
        (false, 0) => format!("{sign}{h}"),
        (false, _) => format!("{sign}{h}:{m:02}"),
    }
}

fn full_date<T: TimeZone>(t: &DateTime<T>, lang: Lang) -> String {
    let (d, m, y) = (t.day(), lang.table().months[t.month0() as usize], t.year());
    match lang {
        Lang::En => format!("{m} {d}, {y}"),
        Lang::Fr => format!("{d} {m} {y}"),
        Lang::De => format!("{d}. {m} {y}"),
        Lang::Es => format!("{d} de {m} de {y}"),
    }
}

fn medium_date<T: TimeZone>(t: &DateTime<T>, lang: Lang) -> String {
    let (d, m, y) = (
        t.day(),
        lang.table().months_short[t.month0() as usize],
        t.year(),
    );
    match lang {
        Lang::En => format!("{m} {d}, {y}"),
        Lang::Fr | Lang::Es => format!("{d} {m} {y}"),
        Lang::De => format!("{d}. {m} {y}"),
    }
}

fn short_date<T: TimeZone>(t: &DateTime<T>, lang: Lang) -> String {
    let (d, m, y) = (t.day(), t.month(), t.year());
    match lang {
        Lang::En => format!("{m}/{d}/{y}"),
        Lang::Fr => format!("{d:02}/{m:02}/{y}"),
        Lang::De => format!("{d}.{m}.{y}"),
        Lang::Es => format!("{d}/{m}/{y}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2000, 1, 31, 10, 27, 0).unwrap()
    }

    #[test]
    fn defaults_to_iso_utc_with_millis() {
        assert_eq!(
            format(&t(), None, None, None).unwrap(),
            "2000-01-31T10:27:00.000Z"
        );
    }

    #[test]
    fn a_zone_alone_gives_iso_with_its_offset() {
        assert_eq!(
            format(&t(), None, Some("America/New_York"), None).unwrap(),
            "2000-01-31T05:27:00.000-05:00"
        );
    }

    #[test]
    fn the_contract_example() {
        assert_eq!(
            format(&t(), Some("DDD"), Some("Europe/Paris"), Some("fr")).unwrap(),
            "31 janvier 2000"
        );
    }

    #[test]
    fn every_token() {
        let f = |fmt: &str| format(&t(), Some(fmt), Some("America/New_York"), None).unwrap();
        assert_eq!(f("yyyy yy MMMM MMM MM M"), "2000 00 January Jan 01 1");
        assert_eq!(
            f("dd d DDD|DD|D"),
            "31 31 January 31, 2000|Jan 31, 2000|1/31/2000"
        );
        assert_eq!(
            f("HH H hh h mm m ss s SSS a"),
            "05 5 05 5 27 27 00 0 000 AM"
        );
        assert_eq!(f("ZZ Z ZZZZ"), "-05:00 -5 EST");
        assert_eq!(f("EEEE EEE E"), "Monday Mon 1");
        assert_eq!(f("'at' HH'h'"), "at 05h");
        assert_eq!(
            format(&t(), Some("h a"), Some("Asia/Kolkata"), None).unwrap(),
            "3 PM"
        );
        assert_eq!(
            format(&t(), Some("Z"), Some("Asia/Kolkata"), None).unwrap(),
            "+5:30"
        );
    }

    #[test]
    fn locales() {
        let f = |fmt: &str, loc: &str| format(&t(), Some(fmt), None, Some(loc)).unwrap();
        assert_eq!(f("DDD", "de"), "31. Januar 2000");
        assert_eq!(f("DDD", "es"), "31 de enero de 2000");
        assert_eq!(f("DD", "fr"), "31 janv. 2000");
        assert_eq!(f("D", "fr"), "31/01/2000");
        assert_eq!(f("D", "de"), "31.1.2000");
        assert_eq!(f("MMMM", "es"), "enero");
        assert_eq!(f("MMMM", "fr-CA"), "janvier");
        assert_eq!(f("MMMM", "EN_us"), "January");
        for unknown in ["xx", "it", "fr-", "fr-<script>", ""] {
            assert_eq!(
                format(&t(), Some("MMMM"), None, Some(unknown)),
                Err(DateError::UnknownLocale(unknown.into())),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(
            format(&t(), None, Some("Mars/Olympus"), None),
            Err(DateError::UnknownZone("Mars/Olympus".into()))
        );
        assert_eq!(
            format(&t(), Some("'open"), None, None),
            Err(DateError::BadFormat)
        );
    }

    proptest! {
        #[test]
        fn any_format_string_is_safe(fmt in ".{0,40}", secs in 0i64..4_000_000_000) {
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            let _ = format(&t, Some(&fmt), Some("Europe/Paris"), Some("de"));
        }
    }
}
