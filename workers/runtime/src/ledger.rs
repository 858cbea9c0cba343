//! The object ledger's rules: what each event on a key means for the images created under it.
//!
//! S3 does not deliver a key's events in order, nor once; it gives each PUT and DELETE on a key
//! a `sequencer` that orders them. The ledger keeps a key's latest [`LEDGER_WINDOW`] events in
//! sequencer order ([`KeyHistory`]), and an image's fate follows from the event right after its
//! latest creation: none, it is the key's object (**live**); a creation, it was overwritten
//! (**replaced**); a removal, it was **deleted**. Inserting a late event in its place gives, for
//! every image, the fate that in-order processing would have given, whatever the arrival order.
//!
//! The window keeps the ledger one small item whatever a key's history (a key overwritten every
//! minute for years stays under 4 KB). An event older than everything the window still holds
//! (more than [`LEDGER_WINDOW`] later events on the same key arrived first) can no longer be
//! placed: a creation that old is `replaced`, a removal that old changes nothing (the image it
//! removed was already ended by the event after it).
//!
//! Events without a sequencer (`imgflow backfill`'s, made from a listing; the emulator's) are
//! placed before every sequenced one, in event-time order among themselves: a listing may be
//! stale by the time its event arrives, and every real upload brings its own sequenced event,
//! so a backfill can label an object the ledger knows nothing later about, but never undoes a
//! recorded deletion or overwrite.
use imgflow_messages::order_key;
use serde::{Deserialize, Serialize};

/// How many of a key's latest events the ledger keeps. Out-of-order delivery beyond this many
/// later events of the same key (SQS retries are seconds to minutes apart) is the only case
/// where an image can end `replaced` where in-order processing would say `deleted`.
pub const LEDGER_WINDOW: usize = 32;

/// What an event did to its key, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange<'a> {
    /// The image with this id became the key's object.
    Created(&'a str),
    /// The key's object was removed (deleted, delete marker, lifecycle expiry).
    Removed,
}

/// One image's fate in its key's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Nothing after its latest creation: it is the key's object.
    Live,
    /// A later creation took its place.
    Replaced,
    /// A removal followed it.
    Deleted,
}

/// What the ledger answered for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The ledger's version after the event: an image's fate is written with it, and a fate
    /// from an older version never overrides one from a newer.
    pub version: u64,
    /// The images whose fate this event decides (the one it created, and the one created just
    /// before it), with their fates now. Recomputed on every delivery, so a crash between the
    /// ledger write and the image writes is repaired by the redelivery.
    pub fates: Vec<(String, Fate)>,
    /// Whether the created image's id already had an earlier creation in the window: the same
    /// bytes uploaded to the key again (unversioned buckets), which may bring an ended image
    /// back.
    pub recreated: bool,
}

/// A key's latest events, oldest first, as stored on the ledger item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHistory {
    /// Bumped by every change.
    #[serde(rename = "v")]
    pub version: u64,
    /// At most [`LEDGER_WINDOW`] events, in order.
    #[serde(rename = "e")]
    pub events: Vec<KeyEvent>,
    /// The order of the newest event dropped from the window: anything at or before it is too
    /// old to place.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<String>,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    /// [`order_key`] of its sequencer (or a place before every sequenced event).
    #[serde(rename = "o")]
    pub order: String,
    /// The image it created; `None` for a removal.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl KeyHistory {
    /// Records one event and decides the fates it affects. `sequencer` is S3's; `event_time`
    /// orders sequencer-less events among themselves. Recording the same event again changes
    /// nothing and gives the same decision.
    pub fn record(
        &mut self,
        sequencer: Option<&str>,
        event_time: &str,
        change: KeyChange<'_>,
    ) -> Decision {
        let created = match change {
            KeyChange::Created(id) => Some(id),
            KeyChange::Removed => None,
        };
        let known = created.is_some_and(|id| self.events.iter().any(|e| e.created_is(id)));
        let order = match (sequencer, created) {
            (Some(sequencer), _) => Some(order_key(sequencer)),
            (None, Some(id)) => {
                // Before every sequenced event ('!' sorts before every hex digit), in time
                // order among the sequencer-less; the id keeps two of one instant apart.
                let order = format!("!{event_time}#{id}");
                let after_everything = self.events.last().is_none_or(|e| order > e.order);
                match known {
                    false => Some(order),
                    // Known, removed since only by sequencer-less removals, and later than
                    // them: the emulator's events carry no sequencer, and this is the same
                    // bytes uploaded again after a deletion.
                    true if after_everything && self.removed_without_sequencer(id) => Some(order),
                    // A listing of an object the ledger already knows: nothing new.
                    true => None,
                }
            }
            // Real deletions carry sequencers; the emulator's do not: by time, among the
            // sequencer-less ('~' after a creation of the same instant).
            (None, None) if !event_time.is_empty() => Some(format!("!{event_time}~")),
            (None, None) => Some(format!(
                "{}~",
                self.events.last().map_or("!", |e| e.order.as_str())
            )),
        };
        // An earlier creation of the same id (not this event again).
        let recreated = created.is_some_and(|id| {
            self.events
                .iter()
                .any(|e| e.created_is(id) && Some(&e.order) != order.as_ref())
        });
        let too_old = order
            .as_ref()
            .is_some_and(|o| self.floor.as_ref().is_some_and(|floor| o <= floor));
        let mut dropped = Vec::new();
        if let (Some(order), false) = (&order, too_old) {
            // An equal order is the same event again (or, never seen, two events at one
            // sequencer): the first recorded stands.
            if let Err(i) = self.events.binary_search_by(|e| e.order.cmp(order)) {
                let event = KeyEvent {
                    order: order.clone(),
                    created: created.map(str::to_owned),
                };
                self.events.insert(i, event);
                self.version += 1;
                dropped = self.trim();
            }
        }
        let mut fates = Vec::new();
        if let Some(id) = created {
            // Not in the window (too old to place, or dropped): a later event exists.
            fates.push((id.to_owned(), self.fate(id).unwrap_or(Fate::Replaced)));
        }
        // Images whose creations just left the window: their fates are written once more, so
        // one never left undecided by a crash before its own decision was written stays so.
        fates.extend(
            dropped
                .into_iter()
                .filter(|(id, _)| Some(id.as_str()) != created),
        );
        // The image created just before this event: its successor may now be this event.
        let position = order
            .filter(|_| !too_old)
            .and_then(|o| self.events.binary_search_by(|e| e.order.cmp(&o)).ok());
        let previous = position
            .and_then(|i| i.checked_sub(1))
            .and_then(|p| self.events[p].created.clone())
            .filter(|previous| Some(previous.as_str()) != created);
        if let Some(previous) = previous {
            if let Some(fate) = self.fate(&previous) {
                fates.push((previous, fate));
            }
        }
        Decision {
            version: self.version,
            fates,
            recreated,
        }
    }

    /// Whether every event after `id`'s latest creation is a removal without a sequencer.
    fn removed_without_sequencer(&self, id: &str) -> bool {
        let Some(latest) = self.events.iter().rposition(|e| e.created_is(id)) else {
            return false;
        };
        let after = &self.events[latest + 1..];
        !after.is_empty()
            && after
                .iter()
                .all(|e| e.created.is_none() && e.order.starts_with('!'))
    }

    /// The fate of `id` from the event after its latest creation; `None` when the window no
    /// longer holds any creation of it.
    pub fn fate(&self, id: &str) -> Option<Fate> {
        let latest = self.events.iter().rposition(|e| e.created_is(id))?;
        Some(match self.events.get(latest + 1) {
            None => Fate::Live,
            Some(next) if next.created.is_some() => Fate::Replaced,
            Some(_) => Fate::Deleted,
        })
    }

    /// Drops the oldest events past the window; the fates of the images whose latest
    /// creation leaves with them (each followed by a later event, so replaced or deleted).
    fn trim(&mut self) -> Vec<(String, Fate)> {
        let mut decided = Vec::new();
        while self.events.len() > LEDGER_WINDOW {
            if let Some(id) = self.events[0].created.clone() {
                let latest = self.events.iter().rposition(|e| e.created_is(&id)) == Some(0);
                if let (true, Some(fate)) = (latest, self.fate(&id)) {
                    decided.push((id, fate));
                }
            }
            let dropped = self.events.remove(0);
            if self.floor.as_ref().is_none_or(|f| dropped.order > *f) {
                self.floor = Some(dropped.order);
            }
        }
        decided
    }
}

impl KeyEvent {
    fn created_is(&self, id: &str) -> bool {
        self.created.as_deref() == Some(id)
    }
}

#[cfg(test)]
mod tests {
    use rand::{seq::SliceRandom, Rng, SeedableRng};

    use super::*;

    /// The reference: a key's events in sequencer order, read without the ledger.
    fn in_order_fate(events: &[(String, Option<String>)], id: &str) -> Option<Fate> {
        let latest = events.iter().rposition(|e| e.1.as_deref() == Some(id))?;
        Some(match events.get(latest + 1) {
            None => Fate::Live,
            Some((_, Some(_))) => Fate::Replaced,
            Some((_, None)) => Fate::Deleted,
        })
    }

    #[test]
    fn a_late_deletion_ends_the_image_it_followed() {
        // PUT v1 (0A), PUT v2 (0C), then the DELETE (0B) between them arrives last.
        let mut h = KeyHistory::default();
        h.record(Some("0A"), "t", KeyChange::Created("v1"));
        let d = h.record(Some("0C"), "t", KeyChange::Created("v2"));
        assert_eq!(
            d.fates,
            [("v2".into(), Fate::Live), ("v1".into(), Fate::Replaced)]
        );
        let d = h.record(Some("0B"), "t", KeyChange::Removed);
        assert_eq!(d.fates, [("v1".into(), Fate::Deleted)]);
        assert_eq!(h.fate("v2"), Some(Fate::Live));
    }

    #[test]
    fn the_same_event_again_changes_nothing() {
        let mut h = KeyHistory::default();
        let first = h.record(Some("0A"), "t", KeyChange::Created("v1"));
        let again = h.record(Some("0A"), "t", KeyChange::Created("v1"));
        assert_eq!(first, again);
        assert!(!again.recreated);
    }

    #[test]
    fn a_listing_never_undoes_a_recorded_deletion() {
        let mut h = KeyHistory::default();
        h.record(Some("0A"), "t", KeyChange::Created("v1"));
        h.record(Some("0B"), "t", KeyChange::Removed);
        // A backfill listed v1 before the deletion; its event arrives after.
        let d = h.record(None, "t", KeyChange::Created("v1"));
        assert_eq!(d.fates, [("v1".into(), Fate::Deleted)]);
        // A listed object the ledger never saw is placed before every real event.
        let d = h.record(None, "t", KeyChange::Created("v0"));
        assert_eq!(d.fates[0], ("v0".into(), Fate::Replaced));
        // With nothing recorded, a listing's object is live.
        let mut empty = KeyHistory::default();
        let d = empty.record(None, "t", KeyChange::Created("v0"));
        assert_eq!(d.fates, [("v0".into(), Fate::Live)]);
    }

    /// The emulator's events carry no sequencer: a deletion is taken as the latest event,
    /// and the same bytes uploaded after it are live again.
    #[test]
    fn without_sequencers_a_reupload_after_a_deletion_is_live() {
        let mut h = KeyHistory::default();
        h.record(None, "2026-12-07T10:00:00.000Z", KeyChange::Created("a"));
        let d = h.record(None, "2026-12-07T10:00:01.000Z", KeyChange::Removed);
        assert_eq!(d.fates, [("a".into(), Fate::Deleted)]);
        // The first upload's event delivered again is not a new upload.
        let again = h.record(None, "2026-12-07T10:00:00.000Z", KeyChange::Created("a"));
        assert_eq!(again.fates, [("a".into(), Fate::Deleted)]);
        let d = h.record(None, "2026-12-07T10:00:02.000Z", KeyChange::Created("a"));
        assert!(d.recreated);
        assert_eq!(d.fates, [("a".into(), Fate::Live)]);
        // A listing of it again changes nothing.
        let again = h.record(None, "2026-12-07T10:00:03.000Z", KeyChange::Created("a"));
        assert_eq!(again.fates, [("a".into(), Fate::Live)]);
        assert_eq!(again.version, d.version);
    }

    #[test]
    fn the_same_bytes_uploaded_again_are_live_again() {
        let mut h = KeyHistory::default();
        h.record(Some("01"), "t", KeyChange::Created("a"));
        h.record(Some("02"), "t", KeyChange::Created("b"));
        let d = h.record(Some("03"), "t", KeyChange::Created("a"));
        assert!(d.recreated);
        assert_eq!(
            d.fates,
            [("a".into(), Fate::Live), ("b".into(), Fate::Replaced)]
        );
    }

    #[test]
    fn the_window_stays_bounded_and_too_old_events_end_replaced() {
        let mut h = KeyHistory::default();
        for n in 0..20_000u32 {
            h.record(
                Some(&format!("{n:08X}")),
                "t",
                KeyChange::Created(&format!("{n:032x}")),
            );
        }
        assert_eq!(h.events.len(), LEDGER_WINDOW);
        assert!(serde_json::to_string(&h).unwrap().len() < 4096);
        let d = h.record(Some("00000001"), "t", KeyChange::Created("old"));
        assert_eq!(d.fates, [("old".into(), Fate::Replaced)]);
        // A too-old creation of the key's current image (replayed from a dead-letter queue)
        // leaves it live.
        let current = format!("{:032x}", 19_999);
        let d = h.record(Some("00000003"), "t", KeyChange::Created(&current));
        assert_eq!(d.fates, [(current, Fate::Live)]);
        let before = h.clone();
        h.record(Some("00000002"), "t", KeyChange::Removed);
        assert_eq!(h, before, "a removal too old to place changes nothing");
    }

    /// An image's creation leaving the window has its fate decided once more: one whose own
    /// decision was lost to a crash (its successor's handler died after the ledger write) is
    /// still ended.
    #[test]
    fn creations_leaving_the_window_are_decided_again() {
        let mut h = KeyHistory::default();
        for n in 0..LEDGER_WINDOW as u32 {
            h.record(
                Some(&format!("{n:04X}")),
                "t",
                KeyChange::Created(&format!("i{n}")),
            );
        }
        let d = h.record(Some("1000"), "t", KeyChange::Removed);
        assert!(
            d.fates.contains(&("i0".into(), Fate::Replaced)),
            "{:?}",
            d.fates
        );
        assert!(d
            .fates
            .contains(&(format!("i{}", LEDGER_WINDOW - 1), Fate::Deleted)));
    }

    /// Every arrival order of a key's events, each delivered one to three times, ends with the
    /// fates that in-order processing gives, as long as the reordering stays within the window.
    #[test]
    fn any_arrival_order_ends_as_in_order() {
        for seed in 0..2_000u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let ids = ["a", "b", "c", "d"];
            let events: Vec<(String, Option<String>)> = (0..rng.random_range(1..12))
                .map(|n| {
                    let created = (rng.random_range(0..4) > 0)
                        .then(|| ids[rng.random_range(0..ids.len())].to_owned());
                    (format!("{:04X}", 16 + n), created)
                })
                .collect();
            let mut deliveries: Vec<_> = events
                .iter()
                .flat_map(|e| std::iter::repeat_n(e.clone(), rng.random_range(1..4)))
                .collect();
            deliveries.shuffle(&mut rng);
            // What the images' items end as: the decision of the highest version wins.
            let mut items: std::collections::HashMap<String, (u64, Fate)> = Default::default();
            let mut h = KeyHistory::default();
            for (sequencer, created) in &deliveries {
                let change = match created {
                    Some(id) => KeyChange::Created(id),
                    None => KeyChange::Removed,
                };
                let d = h.record(Some(sequencer), "t", change);
                for (id, fate) in d.fates {
                    let item = items.entry(id).or_insert((0, fate));
                    if d.version >= item.0 {
                        *item = (d.version, fate);
                    }
                }
            }
            for id in ids {
                assert_eq!(
                    items.get(id).map(|i| i.1),
                    in_order_fate(&events, id),
                    "seed {seed}: {id} after {deliveries:?}"
                );
            }
        }
    }
}
