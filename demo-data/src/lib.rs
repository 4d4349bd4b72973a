//! The demo dataset: the same shape and scale as the legacy one (10 books, 35 copies,
//! 100 patrons, 421 checkouts of which 18 are open), generated deterministically so
//! tests can name records, plus a scale factor for benchmark-sized checkout sets.
//!
//! Loading lives with each store (`data-mysql`, `data-mongo`, the gateway's embedded
//! stores); this crate only generates.
#![deny(missing_docs)]

mod names;
mod rng;

use chrono::{Duration, TimeZone, Utc};
use domain::{Book, BookCondition, BookCopy, Checkout, Patron};

use rng::SplitMix64;

/// The patron the dev key service's self-access user is (SPEC section 1).
pub const SELF_PATRON_EMAIL: &str = "apickerin0@51.la";
/// That patron's ObjectId, the same in the legacy and the demo data.
pub const SELF_PATRON_ID: &str = "5c33c3e9e7bbb6886d531342";
/// The first book's ObjectId; the others follow it.
pub const FIRST_BOOK_ID: &str = "5c336c48459025275babfa73";
/// Number of checkouts in the standard demo dataset.
pub const DEMO_CHECKOUTS: usize = 421;
/// Number of those still open.
pub const DEMO_OPEN_CHECKOUTS: usize = 18;
/// Number of patrons.
pub const PATRONS: usize = 100;
/// Number of copies, UPCs `9000000001` to `9000000035`.
pub const COPIES: usize = 35;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// How many checkouts; the demo has [`DEMO_CHECKOUTS`].
    pub checkouts: usize,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            checkouts: DEMO_CHECKOUTS,
        }
    }
}

/// The 100 patrons, in ObjectId order.
pub fn patrons() -> Vec<Patron> {
    let mut rng = SplitMix64::new(0x5eed_0001);
    (0..PATRONS)
        .map(|i| {
            if i == 0 {
                return Patron {
                    id: SELF_PATRON_ID.to_string(),
                    year_registered: Some(2009),
                    first_name: Some("Averill".into()),
                    last_name: Some("Pickerin".into()),
                    email: Some(SELF_PATRON_EMAIL.into()),
                    phone_cell: Some("409-635-3837".into()),
                };
            }
            let first = names::FIRST[rng.below(names::FIRST.len() as u64) as usize];
            let last = names::LAST[rng.below(names::LAST.len() as u64) as usize];
            let domain = names::DOMAINS[rng.below(names::DOMAINS.len() as u64) as usize];
            let email = format!(
                "{}{}{}@{}",
                first[..1].to_lowercase(),
                last.to_lowercase(),
                base36(i),
                domain
            );
            let phone = format!(
                "{:03}-{:03}-{:04}",
                100 + rng.below(900),
                rng.below(1000),
                rng.below(10000)
            );
            Patron {
                id: object_id_plus(SELF_PATRON_ID, i as u64),
                // 1961..=2013, with both ends present (the legacy range).
                year_registered: Some(match i {
                    1 => 1961,
                    2 => 2013,
                    _ => 1961 + rng.below(53) as i32,
                }),
                first_name: Some(first.into()),
                last_name: Some(last.into()),
                email: Some(email),
                phone_cell: Some(phone),
            }
        })
        .collect()
}

/// Whether the demo patron at index `i` gets a `postal_code` (never exposed, but
/// present in legacy documents, so the stores must ignore it).
pub fn has_postal_code(i: usize) -> bool {
    i % 3 == 1
}

/// The 10 books and their 35 copies, UPCs in book order.
pub fn books() -> Vec<Book> {
    let mut upc = 0u64;
    names::BOOKS
        .iter()
        .enumerate()
        .map(|(i, (title, author, year, genre, copies))| {
            let copies = (0..*copies)
                .map(|j| {
                    upc += 1;
                    BookCopy {
                        library_upc: copy_upc(upc as usize - 1),
                        condition: match (i + j) % 5 {
                            3 => BookCondition::Fair,
                            4 if j > 0 => BookCondition::Damaged,
                            _ => BookCondition::Good,
                        },
                    }
                })
                .collect();
            Book {
                id: object_id_plus(FIRST_BOOK_ID, i as u64),
                title: (*title).into(),
                author: (*author).into(),
                year_published: *year,
                genre: (*genre).into(),
                isbn13: isbn13(978_000_000_000 + 7919 * (i as u64 + 1)),
                copies,
            }
        })
        .collect()
}

/// The UPC of copy `index` (0-based): `9000000001` and up.
pub fn copy_upc(index: usize) -> String {
    format!("{}", 9_000_000_001u64 + index as u64)
}

/// The checkouts, ids from 1, grouped by copy and in date order within a copy, like
/// the legacy table. Per copy, checkouts never overlap and only a copy's last one can
/// be open: 18 copies (fewer when there are fewer checkouts) end with an open one.
/// Dates fall in 2000..2009. Streams, so a million rows cost no memory.
pub fn checkouts(scale: Scale) -> impl Iterator<Item = Checkout> {
    let emails: Vec<String> = patrons().into_iter().filter_map(|p| p.email).collect();
    let start = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
    let start = start.unwrap_or_default();
    let span_secs = Utc
        .with_ymd_and_hms(2009, 12, 31, 0, 0, 0)
        .single()
        .map(|end| (end - start).num_seconds())
        .unwrap_or(1);
    let total = scale.checkouts;
    let mut rng = SplitMix64::new(0x5eed_0003);
    let mut next_id = 0i32;
    (0..COPIES).flat_map(move |copy| {
        let per_copy = total / COPIES + usize::from(copy < total % COPIES);
        let open_last = copy < DEMO_OPEN_CHECKOUTS;
        let slot = (span_secs / per_copy.max(1) as i64).max(4);
        let rows: Vec<Checkout> = (0..per_copy)
            .map(|j| {
                next_id += 1;
                let begin = start
                    + Duration::seconds(slot * j as i64 + rng.below((slot / 4) as u64) as i64);
                let length = 1 + rng.below((slot / 2) as u64) as i64;
                let open = open_last && j + 1 == per_copy;
                // The first 100 rows visit every patron once (37 is coprime with 100),
                // so each patron has a history; the rest are drawn at random.
                let who = if (next_id as usize) <= emails.len() {
                    (next_id as usize - 1) * 37 % emails.len()
                } else {
                    rng.below(emails.len() as u64) as usize
                };
                Checkout {
                    id: next_id,
                    user_email: emails[who].clone(),
                    asset_upc: copy_upc(copy),
                    checkout_date: begin,
                    checkin_date: (!open).then(|| begin + Duration::seconds(length)),
                }
            })
            .collect();
        rows
    })
}

fn base36(mut n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// `base` (24 hex digits) plus `n`, as 24 hex digits: ids that follow each other.
fn object_id_plus(base: &str, n: u64) -> String {
    let value = u128::from_str_radix(base, 16).unwrap_or(0) + u128::from(n);
    format!("{value:024x}")
}

/// An ISBN-13 with a correct check digit from its first 12 digits.
fn isbn13(first12: u64) -> String {
    let digits = format!("{first12:012}");
    let sum: u32 = digits
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    format!("{digits}{}", (10 - sum % 10) % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn demo_matches_the_legacy_shape_and_scale() {
        let patrons = patrons();
        let books = books();
        let checkouts: Vec<_> = checkouts(Scale::default()).collect();
        assert_eq!(patrons.len(), 100);
        assert_eq!(books.len(), 10);
        let upcs: Vec<_> = books
            .iter()
            .flat_map(|b| b.copies.iter().map(|c| c.library_upc.clone()))
            .collect();
        assert_eq!(upcs.len(), 35);
        assert_eq!(upcs.first().map(String::as_str), Some("9000000001"));
        assert_eq!(upcs.last().map(String::as_str), Some("9000000035"));
        assert_eq!(checkouts.len(), 421);
        assert_eq!(checkouts.iter().filter(|c| c.is_open()).count(), 18);

        let emails: HashSet<_> = patrons.iter().filter_map(|p| p.email.clone()).collect();
        assert_eq!(emails.len(), 100, "emails are unique");
        let upc_set: HashSet<_> = upcs.iter().cloned().collect();
        let ids: HashSet<_> = checkouts.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), 421);
        let borrowers: HashSet<_> = checkouts.iter().map(|c| c.user_email.clone()).collect();
        assert_eq!(borrowers.len(), 100, "every patron has borrowed");
        for c in &checkouts {
            assert!(
                emails.contains(&c.user_email),
                "{} is a patron",
                c.user_email
            );
            assert!(upc_set.contains(&c.asset_upc));
            assert!((2000..=2009).contains(&chrono::Datelike::year(&c.checkout_date)));
            if let Some(back) = c.checkin_date {
                assert!(back > c.checkout_date);
            }
        }
        let years: Vec<_> = patrons.iter().filter_map(|p| p.year_registered).collect();
        assert_eq!(years.iter().min(), Some(&1961));
        assert_eq!(years.iter().max(), Some(&2013));
    }

    #[test]
    fn the_self_access_patron_is_fixed() {
        let p = &patrons()[0];
        assert_eq!(p.id, "5c33c3e9e7bbb6886d531342");
        assert_eq!(p.email.as_deref(), Some("apickerin0@51.la"));
        assert_eq!(patrons()[1].id, "5c33c3e9e7bbb6886d531343");
    }

    #[test]
    fn checkouts_of_a_copy_never_overlap() {
        let mut last_end: HashMap<String, chrono::DateTime<Utc>> = HashMap::new();
        for c in checkouts(Scale { checkouts: 5000 }) {
            if let Some(prev) = last_end.get(&c.asset_upc) {
                assert!(c.checkout_date > *prev, "overlap on {}", c.asset_upc);
            }
            let end = c.checkin_date.unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
            last_end.insert(c.asset_upc.clone(), end);
        }
    }

    #[test]
    fn generation_is_deterministic_and_scales() {
        let a: Vec<_> = checkouts(Scale::default()).collect();
        let b: Vec<_> = checkouts(Scale::default()).collect();
        assert_eq!(a, b);
        assert_eq!(patrons(), patrons());
        assert_eq!(checkouts(Scale { checkouts: 100_000 }).count(), 100_000);
    }

    #[test]
    fn isbns_have_valid_check_digits() {
        for b in books() {
            assert_eq!(b.isbn13.len(), 13);
            assert_eq!(isbn13(b.isbn13[..12].parse().unwrap()), b.isbn13);
        }
        assert_eq!(isbn13(978_030_640_615), "9780306406157");
    }
}
