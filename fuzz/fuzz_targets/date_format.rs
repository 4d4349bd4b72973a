//! The date formatter on any instant, format, zone and locale: never a panic, and
//! the output stays within a fixed multiple of the format (no amplification past
//! what the format length cap bounds).
#![no_main]

use arbitrary::Arbitrary;
use chrono::DateTime;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    millis: i64,
    format: Option<String>,
    timezone: Option<String>,
    locale: Option<String>,
}

fuzz_target!(|input: Input| {
    let Some(instant) = DateTime::from_timestamp_millis(input.millis) else {
        return;
    };
    let result = gateway::fuzzing::format_date(
        instant,
        input.format.as_deref(),
        input.timezone.as_deref(),
        input.locale.as_deref(),
    );
    if let Ok(text) = result {
        let format_len = input.format.as_deref().map_or(0, str::len);
        assert!(
            text.len() <= 16 * format_len + 64,
            "{} bytes from a {format_len}-byte format",
            text.len()
        );
    }
});
