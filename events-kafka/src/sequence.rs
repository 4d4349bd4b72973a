//! The relay's publication sequence, restored live. The relay publishes in waves
//! (one timestamp each, the next only once the previous is acknowledged), and
//! every message names its sequence, its wave's size and the wave before
//! (`Wave`). A consumer fetches partitions independently, so a wave can arrive
//! split across fetches, its events interleaved with the next wave's. Here each
//! wave is gathered until it is whole and the one before it has gone out, then
//! handed out in publication order (`Delivered::position`). Every instance
//! therefore hands a sequence's events out in the order a resume replays them in,
//! so a client resuming after the last event it saw misses none it had not seen.
//!
//! A wave that never completes (its relay died mid-wave) or whose predecessor
//! never comes goes out after `max_hold` anyway: nothing is lost or stalled.
//! Events without a wave (other producers) pass straight through, and each
//! sequence (outbox) is ordered on its own.
//!
//! Hand-written: the rule is the relay's own protocol, not a general reordering
//! buffer (a timestamp watermark cannot know a wave is whole).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::delivered::{Delivered, Wave};

/// Sequences remembered; past it those with nothing held are forgotten (their
/// next wave then starts afresh).
const MAX_SEQUENCES: usize = 1_000;

/// A wave being gathered.
struct Gathering {
    since: Instant,
    wave: Wave,
    events: Vec<Delivered>,
}

impl Gathering {
    fn whole(&self) -> bool {
        self.events.len() >= self.wave.expected()
    }
}

/// One sequence's state.
#[derive(Default)]
struct Chain {
    /// The timestamp of the last wave handed out; `None` before the first.
    last_ms: Option<i64>,
    /// Waves not yet handed out, by timestamp.
    gathering: BTreeMap<i64, Gathering>,
}

impl Chain {
    /// Hands out waves from the earliest while each is whole and follows the last
    /// one out; those up to `force` go regardless.
    fn release(&mut self, force: Option<i64>, out: &mut Vec<Delivered>) {
        while let Some(entry) = self.gathering.first_entry() {
            let forced = force.is_some_and(|f| *entry.key() <= f);
            let g = entry.get();
            let follows = self.last_ms.is_none_or(|last| g.wave.previous_ms <= last);
            let ready = forced || (g.whole() && follows);
            if !ready {
                break;
            }
            let (ts, mut g) = entry.remove_entry();
            g.events.sort_by(|a, b| a.position().cmp(&b.position()));
            out.append(&mut g.events);
            self.last_ms = Some(ts);
        }
    }
}

/// The live consumer's wave order.
pub(crate) struct WaveOrder {
    max_hold: Duration,
    chains: HashMap<String, Chain>,
}

impl WaveOrder {
    pub(crate) fn new(max_hold: Duration) -> Self {
        WaveOrder {
            max_hold,
            chains: HashMap::new(),
        }
    }

    /// Takes an arriving event; returns what can be handed out now, in order.
    pub(crate) fn admit(&mut self, d: Delivered, now: Instant) -> Vec<Delivered> {
        let Some(wave) = d.wave.clone() else {
            return vec![d];
        };
        if self.chains.len() >= MAX_SEQUENCES && !self.chains.contains_key(&wave.sequence) {
            self.chains.retain(|_, c| !c.gathering.is_empty());
        }
        let chain = self.chains.entry(wave.sequence.clone()).or_default();
        let ts = d.timestamp_ms;
        if chain.last_ms.is_some_and(|last| ts <= last) {
            // Its wave has gone out (it waited past `max_hold`): late, so at once.
            return vec![d];
        }
        chain
            .gathering
            .entry(ts)
            .or_insert_with(|| Gathering {
                since: now,
                wave,
                events: Vec::new(),
            })
            .events
            .push(d);
        let mut out = Vec::new();
        chain.release(None, &mut out);
        out
    }

    /// Waves held past `max_hold`, handed out with those before them in their
    /// sequence and any that were waiting for them.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<Delivered> {
        let mut out = Vec::new();
        for chain in self.chains.values_mut() {
            let overdue = chain
                .gathering
                .iter()
                .filter(|(_, g)| now.duration_since(g.since) >= self.max_hold)
                .map(|(ts, _)| *ts)
                .max();
            if overdue.is_some() {
                chain.release(overdue, &mut out);
            }
        }
        out
    }

    /// When the next held wave is due; `None` when nothing is held.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.chains
            .values()
            .flat_map(|c| c.gathering.values())
            .map(|g| g.since + self.max_hold)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivered::tests::delivered;
    use domain::EventKind::{Checkin, Checkout};

    fn wave(sequence: &str, previous_ms: i64, size: u32) -> Option<Wave> {
        Some(Wave {
            sequence: sequence.into(),
            previous_ms,
            size,
        })
    }

    /// Event `id` of sequence "s"'s wave stamped `ts` (of `size`, after
    /// `previous`), at partition `partition` of `checkout`.
    fn ev(id: &str, ts: i64, previous: i64, size: u32, partition: i32) -> Delivered {
        let mut d = delivered(id, Checkout, partition, ts, ts);
        d.wave = wave("s", previous, size);
        d
    }

    fn ids(list: &[Delivered]) -> Vec<&str> {
        list.iter()
            .map(|d| d.event_id.as_deref().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_split_wave_goes_out_whole_in_publication_order() {
        let mut o = WaveOrder::new(Duration::from_secs(1));
        let now = Instant::now();
        // The first wave seen starts the sequence, whatever came before it.
        assert_eq!(ids(&o.admit(ev("a", 10, 5, 1, 0), now)), ["a"]);
        // Wave 20 has three events; its partition 1 part comes first.
        assert!(o.admit(ev("c", 20, 10, 3, 1), now).is_empty());
        // Wave 30 arrives before wave 20 is whole: held behind it.
        assert!(o.admit(ev("x", 30, 20, 1, 2), now).is_empty());
        assert!(o.admit(ev("b", 20, 10, 3, 0), now).is_empty());
        let mut last = delivered("d", Checkin, 0, 20, 20);
        last.wave = wave("s", 10, 3);
        let out = o.admit(last, now);
        assert_eq!(
            ids(&out),
            ["d", "b", "c", "x"],
            "by topic (checkin first), partition; then wave 30"
        );
        assert_eq!(o.next_due(), None);
    }

    #[test]
    fn a_wave_that_never_completes_goes_out_at_its_time_with_what_waits() {
        let mut o = WaveOrder::new(Duration::from_millis(100));
        let now = Instant::now();
        o.admit(ev("a", 10, 0, 1, 0), now);
        assert!(o.admit(ev("b", 20, 10, 2, 0), now).is_empty());
        let later = now + Duration::from_millis(50);
        assert!(o.admit(ev("c", 30, 20, 1, 0), later).is_empty());
        assert_eq!(o.next_due(), Some(now + Duration::from_millis(100)));
        assert!(o.expired(now + Duration::from_millis(99)).is_empty());
        assert_eq!(
            ids(&o.expired(now + Duration::from_millis(100))),
            ["b", "c"]
        );
        assert_eq!(o.next_due(), None);
        // Its missing event, late: at once.
        assert_eq!(ids(&o.admit(ev("b2", 20, 10, 2, 1), now)), ["b2"]);
    }

    #[test]
    fn a_wave_whose_predecessor_never_comes_waits_at_most_the_hold() {
        let mut o = WaveOrder::new(Duration::from_millis(100));
        let now = Instant::now();
        o.admit(ev("a", 10, 0, 1, 0), now);
        // Wave 20 never arrives; 30 follows it.
        assert!(o.admit(ev("c", 30, 20, 1, 0), now).is_empty());
        assert_eq!(ids(&o.expired(now + Duration::from_millis(100))), ["c"]);
        assert_eq!(ids(&o.admit(ev("d", 40, 30, 1, 0), now)), ["d"]);
    }

    #[test]
    fn sequences_and_other_producers_do_not_hold_each_other_up() {
        let mut o = WaveOrder::new(Duration::from_secs(1));
        let now = Instant::now();
        assert!(o.admit(ev("b", 20, 10, 2, 0), now).is_empty());
        let foreign = delivered("f", Checkout, 0, 1, 1);
        assert_eq!(ids(&o.admit(foreign, now)), ["f"]);
        // Another outbox's wave, stamped earlier and later: its own order.
        let mut other = delivered("o", Checkout, 1, 5, 5);
        other.wave = wave("t", 0, 1);
        assert_eq!(ids(&o.admit(other, now)), ["o"]);
        let mut other = delivered("p", Checkout, 1, 25, 25);
        other.wave = wave("t", 5, 1);
        assert_eq!(ids(&o.admit(other, now)), ["p"]);
    }
}
