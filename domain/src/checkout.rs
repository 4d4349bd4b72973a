//! A checkout row and the event published when one changes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::format_iso_millis;

/// One row of the legacy `checkouts` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// `row_id`, exposed to clients as `CheckOut.id`.
    pub id: i32,
    /// The patron's email; legacy rows may hold a string that is not a valid email.
    pub user_email: String,
    /// The copy's `libraryUPC`.
    pub asset_upc: String,
    /// When the copy left the library (UTC).
    pub checkout_date: DateTime<Utc>,
    /// When it came back; `None` while still checked out.
    pub checkin_date: Option<DateTime<Utc>>,
}

impl Checkout {
    /// Whether the copy is still out.
    pub fn is_open(&self) -> bool {
        self.checkin_date.is_none()
    }
}

/// Which topic an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Published by `checkoutAsset`, topic `checkout`.
    Checkout,
    /// Published by `checkinAsset`, topic `checkin`.
    Checkin,
}

impl EventKind {
    /// The Kafka topic name, fixed by the contract.
    pub fn topic(self) -> &'static str {
        match self {
            EventKind::Checkout => "checkout",
            EventKind::Checkin => "checkin",
        }
    }

    /// The kind a topic carries; `None` for any other topic.
    pub fn from_topic(topic: &str) -> Option<Self> {
        match topic {
            "checkout" => Some(EventKind::Checkout),
            "checkin" => Some(EventKind::Checkin),
            _ => None,
        }
    }
}

/// The Kafka message value: the JSON of the CheckOut row, in the exact shape other
/// consumers already read (`id` a number, dates ISO with millis and `Z`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutEvent {
    /// The row id.
    pub id: i32,
    /// The patron's email.
    pub user_email: String,
    /// The copy's UPC; also the Kafka key, so events of one copy stay in order.
    pub asset_upc: String,
    /// ISO-8601 UTC with millis.
    pub checkout_date: String,
    /// ISO-8601 UTC with millis, or null while open.
    pub checkin_date: Option<String>,
}

impl From<&Checkout> for CheckoutEvent {
    fn from(c: &Checkout) -> Self {
        CheckoutEvent {
            id: c.id,
            user_email: c.user_email.clone(),
            asset_upc: c.asset_upc.clone(),
            checkout_date: format_iso_millis(&c.checkout_date),
            checkin_date: c.checkin_date.as_ref().map(format_iso_millis),
        }
    }
}

impl CheckoutEvent {
    /// Back to a row; `None` when a date is not ISO-8601 (a foreign producer).
    pub fn to_checkout(&self) -> Option<Checkout> {
        Some(Checkout {
            id: self.id,
            user_email: self.user_email.clone(),
            asset_upc: self.asset_upc.clone(),
            checkout_date: crate::parse_iso(&self.checkout_date)?,
            checkin_date: match &self.checkin_date {
                Some(s) => Some(crate::parse_iso(s)?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn event_json_keeps_the_legacy_value_format() {
        let c = Checkout {
            id: 500,
            user_email: "a@b.org".into(),
            asset_upc: "9000000028".into(),
            checkout_date: Utc.with_ymd_and_hms(2019, 1, 1, 10, 0, 0).unwrap(),
            checkin_date: None,
        };
        let json = serde_json::to_string(&CheckoutEvent::from(&c)).unwrap();
        assert_eq!(
            json,
            r#"{"id":500,"userEmail":"a@b.org","assetUpc":"9000000028","checkoutDate":"2019-01-01T10:00:00.000Z","checkinDate":null}"#
        );
        let back: CheckoutEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_checkout(), Some(c));
    }
}
