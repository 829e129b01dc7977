//! The events recently passed on, remembered for as far back as a reconnect can re-send.
//!
//! After a reconnect or a restart the source asks Jetstream for the events from its cursor
//! (the latest `time_us` it has) less `rewind`, so every re-sent event has a `time_us` at or
//! after that horizon. Remembering the identities of the events at or after it is therefore
//! enough to recognise every re-sent one; older identities are forgotten, which bounds the
//! set by the event rate times `rewind`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A cap on remembered identities whatever the rate (a firehose of every collection with a
/// long `rewind`): about 40 MB. Past it the oldest are forgotten first, with a warning, since
/// their re-deliveries would then pass as new.
pub(crate) const MAX_REMEMBERED: usize = 250_000;

#[derive(Debug, Default, Clone)]
pub(crate) struct RecentEvents {
    time_of: HashMap<Arc<str>, i64>,
    by_time: BTreeSet<(i64, Arc<str>)>,
    warned_full: bool,
}

impl RecentEvents {
    /// Remembers an event; `false` when it was already remembered (a duplicate).
    pub(crate) fn insert(&mut self, identity: &str, time_us: i64) -> bool {
        if self.time_of.contains_key(identity) {
            return false;
        }
        let identity: Arc<str> = Arc::from(identity);
        self.time_of.insert(identity.clone(), time_us);
        self.by_time.insert((time_us, identity));
        if self.time_of.len() > MAX_REMEMBERED {
            if !self.warned_full {
                tracing::warn!(
                    "jetstream source: more than {MAX_REMEMBERED} events within the rewind horizon; the oldest are forgotten early (a shorter `rewind` fits)"
                );
                self.warned_full = true;
            }
            if let Some((_, oldest)) = self.by_time.pop_first() {
                self.time_of.remove(&oldest);
            }
        }
        true
    }

    /// Forgets the events received by Jetstream before `horizon_us`.
    pub(crate) fn forget_before(&mut self, horizon_us: i64) {
        while let Some((t, _)) = self.by_time.first() {
            if *t >= horizon_us {
                break;
            }
            let (_, identity) = self.by_time.pop_first().expect("checked above");
            self.time_of.remove(&identity);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.time_of.len()
    }

    /// The remembered events, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.by_time.iter().map(|(t, id)| (&**id, *t))
    }

    pub(crate) fn clear(&mut self) {
        self.time_of.clear();
        self.by_time.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_recognised_until_they_leave_the_horizon() {
        let mut recent = RecentEvents::default();
        assert!(recent.insert("a", 10));
        assert!(recent.insert("b", 30));
        assert!(recent.insert("c", 20));
        assert!(!recent.insert("a", 10));
        assert!(!recent.insert("a", 50), "another time, same event");
        recent.forget_before(20);
        assert_eq!(
            recent.iter().collect::<Vec<_>>(),
            vec![("c", 20), ("b", 30)]
        );
        assert!(recent.insert("a", 10), "forgotten");
        assert_eq!(recent.len(), 3);
    }
}
