//! A copy's events in commit order across the two topics. The relay writes a copy's
//! next event only after its previous one is acknowledged, but a consumer fetches
//! partitions independently: a check-in can arrive before its own checkout, or a
//! checkout before the check-in that preceded it. Their meaning says which comes
//! first (a checkout of row R, then the check-in of row R, then a checkout of a
//! later row), so an event that arrives before its predecessor is held until the
//! predecessor comes, at most `max_hold`, then handed out anyway: order is restored
//! without ever losing or stalling an event.
//!
//! Hand-written because it is the domain's rule, not a general reordering buffer;
//! a timestamp watermark cannot do it (a partition's "nothing newer" is only known
//! as of its own fetch).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use domain::EventKind;

use crate::delivered::Delivered;

/// Copies remembered; past it the memory starts over (events then pass unheld
/// until each copy is seen again).
const MAX_COPIES: usize = 100_000;

/// Where a copy's history stands: the last event handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Last {
    row: i32,
    kind: EventKind,
}

/// How an arriving event relates to its copy's last one.
#[derive(Debug, PartialEq, Eq)]
enum Fit {
    /// The next one (or the copy is new here): handed out.
    Next,
    /// Its predecessor has not arrived: held.
    Early,
    /// Older than what was handed out (a late redelivery): handed out, as there is
    /// nothing left to order it against.
    Stale,
}

/// Commit order within one copy: checkout R, check-in R, checkout R' (R' > R).
fn rank(row: i32, kind: EventKind) -> (i32, u8) {
    (
        row,
        match kind {
            EventKind::Checkout => 0,
            EventKind::Checkin => 1,
        },
    )
}

fn fit(last: Option<Last>, d: &Delivered) -> Fit {
    let Some(last) = last else {
        return Fit::Next;
    };
    let (row, kind) = (d.event.id, d.kind);
    if rank(row, kind) <= rank(last.row, last.kind) {
        return Fit::Stale;
    }
    let next = match (last.kind, kind) {
        (EventKind::Checkout, EventKind::Checkin) => row == last.row,
        (EventKind::Checkin, EventKind::Checkout) => true,
        _ => false,
    };
    if next {
        Fit::Next
    } else {
        Fit::Early
    }
}

/// The per-copy order of the live consumer.
pub(crate) struct CopyOrder {
    max_hold: Duration,
    last: HashMap<String, Last>,
    held: HashMap<String, Vec<(Instant, Delivered)>>,
}

impl CopyOrder {
    pub(crate) fn new(max_hold: Duration) -> Self {
        CopyOrder {
            max_hold,
            last: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Takes an arriving event; returns what can be handed out now, in order
    /// (nothing when it is held; it and the events it was holding up otherwise).
    pub(crate) fn admit(&mut self, d: Delivered, now: Instant) -> Vec<Delivered> {
        let copy = d.event.asset_upc.clone();
        let mut f = fit(self.last.get(&copy).copied(), &d);
        // A held event of this copy that comes before it: it is early too.
        let before_held = self.held.get(&copy).is_some_and(|list| {
            list.iter()
                .any(|(_, h)| rank(h.event.id, h.kind) < rank(d.event.id, d.kind))
        });
        if f == Fit::Next && before_held {
            f = Fit::Early;
        }
        match f {
            Fit::Early => {
                self.held.entry(copy).or_default().push((now, d));
                Vec::new()
            }
            Fit::Stale => vec![d],
            Fit::Next => {
                self.handed_out(&d);
                let mut out = vec![d];
                self.release(&copy, &mut out, false);
                out
            }
        }
    }

    /// Events held past `max_hold` (their predecessor never came), handed out with
    /// whatever they were holding up, oldest first.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<Delivered> {
        let overdue: Vec<String> = self
            .held
            .iter()
            .filter(|(_, list)| {
                list.iter()
                    .any(|(at, _)| now.duration_since(*at) >= self.max_hold)
            })
            .map(|(copy, _)| copy.clone())
            .collect();
        let mut out = Vec::new();
        for copy in overdue {
            self.release(&copy, &mut out, true);
        }
        out
    }

    /// When the next held event is due; `None` when nothing is held.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held
            .values()
            .flatten()
            .map(|(at, _)| *at + self.max_hold)
            .min()
    }

    fn handed_out(&mut self, d: &Delivered) {
        if self.last.len() >= MAX_COPIES && !self.last.contains_key(&d.event.asset_upc) {
            self.last.clear();
        }
        self.last.insert(
            d.event.asset_upc.clone(),
            Last {
                row: d.event.id,
                kind: d.kind,
            },
        );
    }

    /// Hands out `copy`'s held events from the earliest in commit order while they
    /// fit; with `overdue`, the earliest goes even if it does not (its wait is over).
    fn release(&mut self, copy: &str, out: &mut Vec<Delivered>, overdue: bool) {
        let Some(mut list) = self.held.remove(copy) else {
            return;
        };
        list.sort_by_key(|(_, d)| std::cmp::Reverse(rank(d.event.id, d.kind)));
        let mut force = overdue;
        while let Some((_, first)) = list.last() {
            let f = fit(self.last.get(copy).copied(), first);
            if f == Fit::Early && !force {
                break;
            }
            force = false;
            let Some((_, d)) = list.pop() else { break };
            if f != Fit::Stale {
                self.handed_out(&d);
            }
            out.push(d);
        }
        if !list.is_empty() {
            self.held.insert(copy.to_string(), list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::CheckoutEvent;

    fn ev(copy: &str, row: i32, kind: EventKind) -> Delivered {
        Delivered {
            event_id: Some(format!("{copy}-{row}-{}", kind.topic())),
            kind,
            event: CheckoutEvent {
                id: row,
                user_email: "a@b.org".into(),
                asset_upc: copy.into(),
                checkout_date: "2026-12-01T00:00:00.000Z".into(),
                checkin_date: None,
            },
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            trace: None,
            wave: None,
        }
    }

    fn rows(list: &[Delivered]) -> Vec<(i32, &'static str)> {
        list.iter().map(|d| (d.event.id, d.kind.topic())).collect()
    }

    const OUT: EventKind = EventKind::Checkout;
    const IN: EventKind = EventKind::Checkin;

    #[test]
    fn in_order_events_pass_at_once() {
        let mut o = CopyOrder::new(Duration::from_secs(1));
        let now = Instant::now();
        for (row, kind) in [(1, OUT), (1, IN), (5, OUT), (5, IN)] {
            assert_eq!(
                rows(&o.admit(ev("c", row, kind), now)),
                [(row, kind.topic())]
            );
        }
        assert_eq!(o.next_due(), None);
    }

    #[test]
    fn a_checkin_before_its_checkout_waits_for_it() {
        let mut o = CopyOrder::new(Duration::from_secs(1));
        let now = Instant::now();
        o.admit(ev("c", 1, OUT), now);
        o.admit(ev("c", 1, IN), now);
        assert!(
            o.admit(ev("c", 7, IN), now).is_empty(),
            "its checkout is missing"
        );
        assert!(
            o.admit(ev("c", 9, OUT), now).is_empty(),
            "7's check-in is held"
        );
        assert_eq!(o.next_due(), Some(now + Duration::from_secs(1)));
        let out = o.admit(ev("c", 7, OUT), now);
        assert_eq!(
            rows(&out),
            [(7, "checkout"), (7, "checkin"), (9, "checkout")]
        );
        assert_eq!(o.next_due(), None);
    }

    #[test]
    fn other_copies_are_not_held_up() {
        let mut o = CopyOrder::new(Duration::from_secs(1));
        let now = Instant::now();
        o.admit(ev("a", 1, OUT), now);
        assert!(o.admit(ev("a", 2, OUT), now).is_empty());
        assert_eq!(rows(&o.admit(ev("b", 3, OUT), now)), [(3, "checkout")]);
    }

    #[test]
    fn a_held_event_goes_out_when_its_wait_is_over() {
        let mut o = CopyOrder::new(Duration::from_millis(100));
        let now = Instant::now();
        o.admit(ev("c", 1, OUT), now);
        o.admit(ev("c", 1, IN), now);
        assert!(o.admit(ev("c", 4, IN), now).is_empty());
        assert_eq!(o.admit(ev("c", 4, OUT), now).len(), 2, "4 out, then 4 in");
        assert!(o.admit(ev("c", 6, IN), now).is_empty());
        assert!(o.expired(now + Duration::from_millis(99)).is_empty());
        let out = o.expired(now + Duration::from_millis(100));
        assert_eq!(rows(&out), [(6, "checkin")]);
        assert_eq!(o.next_due(), None);
        // A late predecessor is stale now: handed out, not held.
        assert_eq!(rows(&o.admit(ev("c", 6, OUT), now)), [(6, "checkout")]);
    }

    #[test]
    fn a_copy_first_seen_here_passes() {
        let mut o = CopyOrder::new(Duration::from_secs(1));
        assert_eq!(
            rows(&o.admit(ev("c", 3, IN), Instant::now())),
            [(3, "checkin")]
        );
    }
}
