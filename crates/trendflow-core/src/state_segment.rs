//! State segments: the parts of a component's checkpointed state that stay the same from one
//! checkpoint to the next, stored once and referred to by name.
//!
//! A memory table of up to a million rows (47 MB as Arrow IPC) changes by a few rows an epoch;
//! written whole into every checkpoint, Q2 over 1M tweets in 101 epochs wrote 4.0 GB of
//! checkpoints. As segments, each epoch writes its new rows once, and a checkpoint lists the
//! segments it needs. The runtime writes a segment before the first checkpoint that lists it
//! and deletes it once no kept checkpoint lists it.

use std::collections::HashMap;

/// One segment of a component's state, as a snapshot lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSegment {
    /// The segment's name among its component's segments, for good: a name is never given to
    /// other bytes, since an older checkpoint may still list it. Letters, digits, `-`, `_`
    /// and `.` only.
    pub name: String,
    /// The bytes, the first time the segment is listed; `None` once handed over (the runtime
    /// has them stored, or the checkpoint that would have stored them failed, and the
    /// pipeline restarts from the checkpoint before it).
    pub data: Option<Vec<u8>>,
}

impl StateSegment {
    /// A segment listed for the first time, with its bytes.
    pub fn new(name: impl Into<String>, data: Vec<u8>) -> Self {
        StateSegment {
            name: name.into(),
            data: Some(data),
        }
    }

    /// A segment handed over before.
    pub fn stored(name: impl Into<String>) -> Self {
        StateSegment {
            name: name.into(),
            data: None,
        }
    }
}

/// The segments of a restored state, by name.
pub type SegmentData = HashMap<String, Vec<u8>>;

/// Takes segment `name` out of a restored state's segments.
pub fn take(segments: &mut SegmentData, name: &str) -> Result<Vec<u8>, String> {
    segments
        .remove(name)
        .ok_or_else(|| format!("segment {name} is missing"))
}

/// Keeps segments as a checkpoint store does, for tests of components that list them.
#[derive(Debug, Default)]
pub struct SegmentStore {
    pub segments: SegmentData,
}

impl SegmentStore {
    /// Keeps what a snapshot lists, and returns the listed segments' bytes, as a restore from
    /// that checkpoint gets them. Panics when a segment comes with its bytes a second time, or
    /// is listed by name before its bytes came: the component broke the contract.
    pub fn keep(&mut self, listed: Vec<StateSegment>) -> SegmentData {
        let mut out = SegmentData::new();
        for s in listed {
            if let Some(data) = s.data {
                let again = self.segments.insert(s.name.clone(), data);
                assert!(again.is_none(), "segment {} given twice", s.name);
            }
            let data = self.segments.get(&s.name);
            let data = data.unwrap_or_else(|| panic!("segment {} listed, never given", s.name));
            out.insert(s.name, data.clone());
        }
        out
    }
}

/// The most items (rows, files) a merge of two segments makes.
pub const MERGED_MAX: usize = 1 << 16;

/// Whether a component adding segments one after the other merges its newest two, of
/// `older` and `newer` items: while the newer holds at least as many as the older, and both
/// at most [`MERGED_MAX`] together. Small additions (an epoch's few rows or files) would
/// otherwise make many small segments; merged this way, N items make about N / 32,768 + 16
/// segments at most, and an item is written again at most 16 times, only while in a segment
/// of fewer than 65,536. Larger segments are never rewritten: the components using them drop
/// items oldest first, and a segment leaves once all its items are dropped.
pub fn merges(older: usize, newer: usize) -> bool {
    newer >= older && older + newer <= MERGED_MAX
}

/// A segment of items (rows, files) that merges as [`merges`] says: made of `items` items,
/// which it keeps while it may still be merged or is not yet handed over.
#[derive(Debug)]
pub struct MergingSegment<T> {
    pub name: String,
    /// Items it was made of (some may be stale or dropped since).
    pub items: usize,
    data: Option<Vec<T>>,
    saved: bool,
}

impl<T> MergingSegment<T> {
    /// A new segment, handed over by the next snapshot.
    pub fn new(name: String, data: Vec<T>) -> Self {
        MergingSegment {
            name,
            items: data.len(),
            data: Some(data),
            saved: false,
        }
    }

    /// A segment a restore read, of `items` items: saved, keeping `data` (its items, read
    /// only when [`Self::keeps`] says so) if it may still merge.
    pub fn restored(name: String, items: usize, data: Vec<T>) -> Self {
        MergingSegment {
            name,
            items,
            data: merges(items, items).then_some(data),
            saved: true,
        }
    }

    /// Whether a restore needs its items to build it again (see [`Self::restored`]).
    pub fn keeps(items: usize) -> bool {
        merges(items, items)
    }

    /// Its items, to merge it with a newer one (which [`merges`] allows only while it keeps
    /// them).
    pub fn into_items(self) -> Vec<T> {
        self.data.expect("a segment that merges keeps its items")
    }

    /// The segment as a snapshot lists it: with its bytes (`encode` of its items) the first
    /// time, by name after that. A segment too large to merge with a newer one of its size or
    /// more stops keeping its items then.
    pub fn hand_over(&mut self, encode: impl FnOnce(&[T]) -> Vec<u8>) -> StateSegment {
        if self.saved {
            return StateSegment::stored(self.name.clone());
        }
        self.saved = true;
        let data = self
            .data
            .as_ref()
            .expect("an unsaved segment keeps its items");
        let bytes = encode(data);
        if !merges(self.items, self.items) {
            self.data = None;
        }
        StateSegment::new(self.name.clone(), bytes)
    }
}

/// Whether `name` can name a segment (it becomes part of an object's name in the store).
pub fn is_valid_segment_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_of_one_item_merge_as_a_binary_counter_up_to_the_bound() {
        let mut sizes: Vec<usize> = Vec::new();
        for added in std::iter::repeat_n(1, 200_000) {
            sizes.push(added);
            while let [.., older, newer] = sizes[..]
                && merges(older, newer)
            {
                sizes.pop();
                *sizes.last_mut().unwrap() += newer;
            }
        }
        // 200,000 = 3 x 65,536 + 3,392 (0b110101000000): three full segments, then one per bit.
        assert_eq!(sizes[..3], [MERGED_MAX; 3]);
        assert_eq!(sizes[3..], [2048, 1024, 256, 64]);
    }

    #[test]
    fn segment_names_are_plain_file_names() {
        for ok in ["00000000000000000007-0", "a.b_c-d"] {
            assert!(is_valid_segment_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "é"] {
            assert!(!is_valid_segment_name(bad), "{bad}");
        }
    }
}
