//! Argument caps (SPEC section 5b): what one argument may ask for, so that the work
//! and the reply a request buys are bounded by caps, not by what a caller types.
//! Each refusal is a `BAD_USER_INPUT` error naming the cap and its setting.

use async_graphql::{Context, Result};

use super::errors::coded;

/// The caps, from the settings (each `GRAPHQL_*` variable is documented in the README).
#[derive(Debug, Clone, Copy)]
pub struct ArgumentCaps {
    /// Longest date `format`, in characters (`GRAPHQL_MAX_DATE_FORMAT_LENGTH`, 64).
    pub format_chars: usize,
    /// Longest other string argument: UPC, cursor, queryId, timezone, locale, in
    /// characters (`GRAPHQL_MAX_STRING_LENGTH`, 128; emails have their own 254).
    pub string_chars: usize,
    /// Page size when `next` (or `patrons`' `limit`) is not given
    /// (`GRAPHQL_DEFAULT_PAGE_SIZE`, 500: the seed's 421 checkouts and 100 patrons
    /// still come back whole).
    pub default_page: u32,
    /// Largest page a caller may ask for (`GRAPHQL_MAX_PAGE_SIZE`, 1,000).
    pub max_page: u32,
    /// Most rows one `checkoutFeed` snapshot may hold (`QUERYCACHE_MAX_ROWS`, 10,000).
    pub snapshot_rows: u32,
    /// How long a new `checkoutFeed` query reuses the live snapshot of the same
    /// owner, filter and sort instead of taking another (`QUERYCACHE_REUSE_SECONDS`,
    /// 60): a loop of the same query costs one snapshot a minute.
    pub snapshot_reuse: std::time::Duration,
}

impl Default for ArgumentCaps {
    fn default() -> Self {
        ArgumentCaps {
            format_chars: 64,
            string_chars: 128,
            default_page: 500,
            max_page: 1000,
            snapshot_rows: 10_000,
            snapshot_reuse: std::time::Duration::from_secs(60),
        }
    }
}

/// The caps in force for this operation (the schema's data).
pub fn caps(ctx: &Context<'_>) -> ArgumentCaps {
    ctx.data_opt::<ArgumentCaps>().copied().unwrap_or_default()
}

fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    coded(message, "BAD_USER_INPUT")
}

impl ArgumentCaps {
    /// The page size for `next`: the default when absent, refused when negative or
    /// past the maximum.
    pub fn page(&self, argument: &str, next: Option<i32>) -> Result<u32> {
        match next {
            None => Ok(self.default_page),
            Some(n) if n < 0 => Err(bad_input(format!("{argument} must not be negative"))),
            Some(n) if n as u32 > self.max_page => Err(bad_input(format!(
                "{argument} must be at most {} (GRAPHQL_MAX_PAGE_SIZE)",
                self.max_page
            ))),
            Some(n) => Ok(n as u32),
        }
    }

    /// The snapshot's rows, or the refusal when the filter matches more than the cap
    /// (`rows` was read with a limit of one past it).
    pub fn snapshot<T>(&self, rows: Vec<T>) -> Result<Vec<T>> {
        if rows.len() > self.snapshot_rows as usize {
            return Err(bad_input(format!(
                "checkoutFeed matches more than {} rows (QUERYCACHE_MAX_ROWS): narrow it with userEmail or assetUpc",
                self.snapshot_rows
            )));
        }
        Ok(rows)
    }

    /// Refuses a string argument longer than the cap.
    pub fn string(&self, argument: &str, value: Option<&str>) -> Result<()> {
        self.length(
            argument,
            value,
            self.string_chars,
            "GRAPHQL_MAX_STRING_LENGTH",
        )
    }

    /// Refuses a date `format` longer than its cap.
    pub fn format(&self, value: Option<&str>) -> Result<()> {
        self.length(
            "format",
            value,
            self.format_chars,
            "GRAPHQL_MAX_DATE_FORMAT_LENGTH",
        )
    }

    fn length(&self, argument: &str, value: Option<&str>, max: usize, setting: &str) -> Result<()> {
        match value {
            // Counting stops at the cap: a megabyte costs what the cap does.
            Some(v) if v.chars().nth(max).is_some() => Err(bad_input(format!(
                "{argument} must be at most {max} characters ({setting})"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_and_are_capped() {
        let caps = ArgumentCaps::default();
        assert_eq!(caps.page("next", None).ok(), Some(500));
        assert_eq!(caps.page("next", Some(0)).ok(), Some(0));
        assert_eq!(caps.page("next", Some(1000)).ok(), Some(1000));
        assert!(caps.page("next", Some(1001)).is_err());
        assert!(caps.page("next", Some(-1)).is_err());
    }

    #[test]
    fn snapshots_hold_up_to_the_row_cap() {
        let caps = ArgumentCaps::default();
        assert_eq!(
            caps.snapshot(vec![(); 10_000]).map(|r| r.len()).ok(),
            Some(10_000)
        );
        assert!(caps.snapshot(vec![(); 10_001]).is_err());
    }

    #[test]
    fn strings_are_counted_in_characters_up_to_the_cap() {
        let caps = ArgumentCaps::default();
        assert!(caps.format(Some(&"é".repeat(64))).is_ok());
        assert!(caps.format(Some(&"é".repeat(65))).is_err());
        assert!(caps.string("assetUpc", Some(&"9".repeat(128))).is_ok());
        assert!(caps.string("assetUpc", Some(&"9".repeat(129))).is_err());
        assert!(caps.string("assetUpc", Some(&"9".repeat(1 << 20))).is_err());
        assert!(caps.string("assetUpc", None).is_ok());
    }
}
