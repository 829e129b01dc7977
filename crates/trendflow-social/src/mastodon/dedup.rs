//! Status ids, their order, and the bounded set of ids recently passed on.

use std::cmp::Ordering;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use serde::Deserialize;

/// A status id. Mastodon's ids are decimal strings of Snowflake-like numbers: newer ones are
/// longer or, at equal length, compare greater as text (Mastodon's API guidelines). Other
/// servers' ids are opaque, and get a consistent, if meaningless, order from the same rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StatusId(Arc<str>);

impl StatusId {
    pub(crate) fn new(id: &str) -> Self {
        StatusId(Arc::from(id))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the status JSON `payload` (a string, or a number from old servers).
    pub(crate) fn of_status(payload: &[u8]) -> Option<StatusId> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Id {
            Text(String),
            Number(u64),
        }
        #[derive(Deserialize)]
        struct Status {
            id: Id,
        }
        match serde_json::from_slice::<Status>(payload).ok()?.id {
            Id::Text(id) if !id.is_empty() => Some(StatusId::new(&id)),
            Id::Text(_) => None,
            Id::Number(n) => Some(StatusId::new(&n.to_string())),
        }
    }
}

impl Ord for StatusId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.as_bytes().cmp(other.0.as_bytes()))
    }
}

impl PartialOrd for StatusId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The ids of the last `capacity` statuses passed on; the oldest passed on is forgotten
/// first.
#[derive(Debug, Clone)]
pub(crate) struct RecentStatuses {
    in_order_passed: VecDeque<StatusId>,
    ids: BTreeSet<StatusId>,
    capacity: usize,
}

impl RecentStatuses {
    pub(crate) fn new(capacity: usize) -> Self {
        RecentStatuses {
            in_order_passed: VecDeque::new(),
            ids: BTreeSet::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn contains(&self, id: &StatusId) -> bool {
        self.ids.contains(id)
    }

    /// Remembers `id`; `false` when it was remembered already.
    pub(crate) fn insert(&mut self, id: StatusId) -> bool {
        if !self.ids.insert(id.clone()) {
            return false;
        }
        self.in_order_passed.push_back(id);
        while self.in_order_passed.len() > self.capacity {
            let forgotten = self.in_order_passed.pop_front().expect("not empty");
            self.ids.remove(&forgotten);
        }
        true
    }

    /// The smallest id remembered: statuses older than it were passed on before and
    /// forgotten, or predate the stream.
    pub(crate) fn oldest(&self) -> Option<&StatusId> {
        self.ids.first()
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The ids, in the order they were passed on.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &StatusId> {
        self.in_order_passed.iter()
    }

    pub(crate) fn clear(&mut self) {
        self.in_order_passed.clear();
        self.ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_by_length_then_text() {
        let ids = ["113347064048858843", "99", "113064538953612745", "100"];
        let mut sorted: Vec<StatusId> = ids.iter().map(|i| StatusId::new(i)).collect();
        sorted.sort();
        let sorted: Vec<&str> = sorted.iter().map(|i| i.as_str()).collect();
        assert_eq!(
            sorted,
            ["99", "100", "113064538953612745", "113347064048858843"]
        );
        assert_eq!(
            StatusId::of_status(br#"{"id":"108914327388663283","content":"x"}"#),
            Some(StatusId::new("108914327388663283"))
        );
        assert_eq!(
            StatusId::of_status(br#"{"id":172429,"content":"x"}"#),
            Some(StatusId::new("172429"))
        );
        assert_eq!(StatusId::of_status(b"108914327388663283"), None);
    }

    #[test]
    fn the_set_is_bounded_oldest_passed_on_forgotten_first() {
        let mut recent = RecentStatuses::new(2);
        assert!(recent.insert(StatusId::new("30")));
        assert!(recent.insert(StatusId::new("10")));
        assert!(!recent.insert(StatusId::new("30")));
        assert_eq!(recent.oldest(), Some(&StatusId::new("10")));
        assert!(recent.insert(StatusId::new("20")));
        assert!(
            !recent.contains(&StatusId::new("30")),
            "first in, first out"
        );
        assert_eq!(
            recent.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            ["10", "20"]
        );
        assert_eq!(recent.len(), 2);
    }
}
