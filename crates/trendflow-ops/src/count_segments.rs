//! The counts of a [`crate::KeyCount`] kept for its checkpoints as state segments
//! (trendflow_core::state_segment): a checkpoint writes the keys whose count changed since the
//! one before, not every key.
//!
//! A count over the whole stream keeps every key it saw (as Spark's complete and update modes
//! do): Q1 over 1M tweets read in 101 epochs ends with 136k hashtags, and wrote all of them
//! (3.0 MB at the end) into every checkpoint, where an epoch changes a few thousand. Segments
//! are merged as `state_segment::merges` says. A key's count only grows, so of a key found in
//! several segments the largest count is the current one, whatever the order they are read in.
//! Once the segments hold more entries than twice the keys plus one merged segment's worth, or
//! number 64, they are replaced by one segment of every key: stale entries stay under half of
//! what a restart reads, and each change is written a bounded number of times.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use trendflow_core::codec::{DecodeError, StateReader, StateWriter, crc32};
use trendflow_core::state_segment::{self, MERGED_MAX, merges};
use trendflow_core::{Epoch, OperatorError, SegmentData, StateSegment};

/// One segment: keys with their counts when it was made.
#[derive(Debug)]
struct Segment {
    name: String,
    /// Keys in it (some may have larger counts in newer segments since).
    entries: usize,
    /// The keys and counts, while the segment may still be merged or is not yet saved.
    data: Option<Vec<(Arc<str>, i64)>>,
    saved: bool,
}

#[derive(Debug, Default)]
pub(crate) struct CountSegments {
    segments: Vec<Segment>,
}

impl CountSegments {
    /// Entries in all segments: what a restart reads.
    pub fn entries(&self) -> usize {
        self.segments.iter().map(|s| s.entries).sum()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Records the counts that changed in epoch `epoch` as a new segment, merged with the
    /// newest ones while they are small; or, when the segments would hold too many stale
    /// entries, replaces them all with one segment of every key (`all`, called then only).
    pub fn add_epoch(
        &mut self,
        epoch: Epoch,
        changed: Vec<(Arc<str>, i64)>,
        keys: usize,
        all: impl FnOnce() -> Vec<(Arc<str>, i64)>,
    ) {
        if changed.is_empty() {
            return;
        }
        let mut number = 0;
        let mut name = || {
            number += 1;
            format!("{epoch:020}-{}", number - 1)
        };
        if self.entries() + changed.len() > 2 * keys + MERGED_MAX
            || self.segments.len() >= MAX_SEGMENTS
        {
            self.segments.clear();
            self.segments.push(segment(name(), all()));
            return;
        }
        self.segments.push(segment(name(), changed));
        while let [.., older, newer] = &self.segments[..]
            && merges(older.entries, newer.entries)
        {
            let newer = self.segments.pop().expect("two segments");
            let older = self.segments.pop().expect("two segments");
            let mut merged: FxHashMap<Arc<str>, i64> = FxHashMap::default();
            for (key, count) in [older, newer]
                .into_iter()
                .flat_map(|s| s.data.expect("a segment that merges keeps its counts"))
            {
                let c = merged.entry(key).or_insert(count);
                *c = (*c).max(count);
            }
            let mut merged: Vec<(Arc<str>, i64)> = merged.into_iter().collect();
            // Sorted, so that a segment's bytes depend on its counts only.
            merged.sort_unstable();
            self.segments.push(segment(name(), merged));
        }
    }

    /// Every key of a state written before segments, saved as one segment by the next
    /// checkpoint. Named after its counts, so that another such state restored later cannot
    /// give other bytes the same name.
    pub fn add_whole(&mut self, all: Vec<(Arc<str>, i64)>) {
        if all.is_empty() {
            return;
        }
        let mut tag = Vec::new();
        for (key, count) in &all {
            tag.extend_from_slice(key.as_bytes());
            tag.extend_from_slice(&count.to_le_bytes());
        }
        let name = format!("unsegmented-{:08x}-{}", crc32(&tag), all.len());
        self.segments.push(segment(name, all));
    }

    /// The segments, oldest first, as the count's state lists them: name and keys.
    pub fn write_list(&self, w: &mut StateWriter) {
        w.u64(self.segments.len() as u64);
        for s in &self.segments {
            w.str(&s.name).u64(s.entries as u64);
        }
    }

    /// The segments, each with its bytes the first time.
    pub fn snapshot_segments(&mut self) -> Vec<StateSegment> {
        self.segments
            .iter_mut()
            .map(|s| {
                if s.saved {
                    return StateSegment::stored(s.name.clone());
                }
                s.saved = true;
                let data = s
                    .data
                    .as_ref()
                    .expect("an unsaved segment keeps its counts");
                let mut w = StateWriter::new();
                w.u64(SEGMENT_VERSION).u64(data.len() as u64);
                for (key, count) in data {
                    w.str(key).i64(*count);
                }
                if !merges(s.entries, s.entries) {
                    // Too large to merge with a newer one of its size or more: not needed.
                    s.data = None;
                }
                StateSegment::new(s.name.clone(), w.finish())
            })
            .collect()
    }

    /// The segments a list written by [`Self::write_list`] names, from their bytes; each
    /// key and count is given to `add`.
    pub fn restore(
        r: &mut StateReader<'_>,
        data: &mut SegmentData,
        mut add: impl FnMut(&Arc<str>, i64),
    ) -> Result<CountSegments, OperatorError> {
        let err = |e: String| OperatorError::new(format!("count state: {e}"));
        let bad = |e: DecodeError| err(e.to_string());
        let mut restored = CountSegments::default();
        for _ in 0..r.len().map_err(bad)? {
            let name = r.str().map_err(bad)?.to_string();
            let entries = r.u64().map_err(bad)? as usize;
            let bytes = state_segment::take(data, &name).map_err(err)?;
            let mut s = StateReader::new(&bytes);
            if s.u64().map_err(bad)? != SEGMENT_VERSION {
                return Err(err(format!("segment {name}: unknown version")));
            }
            let n = s.len().map_err(bad)?;
            if n != entries {
                return Err(err(format!(
                    "segment {name} holds {n} keys, the state lists {entries}"
                )));
            }
            let keep = merges(entries, entries);
            let mut counts = Vec::with_capacity(if keep { n } else { 0 });
            for _ in 0..n {
                let key: Arc<str> = s.str().map_err(bad)?.into();
                let count = s.i64().map_err(bad)?;
                add(&key, count);
                if keep {
                    counts.push((key, count));
                }
            }
            s.end().map_err(bad)?;
            restored.segments.push(Segment {
                name,
                entries,
                data: keep.then_some(counts),
                saved: true,
            });
        }
        Ok(restored)
    }
}

fn segment(name: String, data: Vec<(Arc<str>, i64)>) -> Segment {
    Segment {
        name,
        entries: data.len(),
        data: Some(data),
        saved: false,
    }
}

/// The most segments kept. Epochs whose changes shrink one after the other never merge (the
/// newer must hold as many keys as the older) and leave no stale entries to trigger the
/// replacement; a restart reads every segment, one request each on object storage.
const MAX_SEGMENTS: usize = 64;

/// A segment's bytes: `u64` this version, `u64` n, n x (`str` key, `i64` count).
const SEGMENT_VERSION: u64 = 1;
