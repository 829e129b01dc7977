//! The files a file source took (full listing), with their modification times, kept for its
//! checkpoints as state segments (trendflow_core::state_segment): the files an epoch took are
//! written once, not again in every later checkpoint.
//!
//! The record is bounded by `max_file_age`, but a stream landing a file a second keeps 604,800
//! files a week; written whole (and sorted) into every checkpoint, 100,000 files were 2.6 MB
//! an epoch. Segments are merged as `state_segment::merges` says; a segment leaves once all
//! its files are forgotten (older than the newest file seen minus `max_file_age`). A merge
//! writes only the files still remembered.

use std::collections::{HashMap, VecDeque};

use trendflow_core::codec::{StateReader, StateWriter, crc32};
use trendflow_core::state_segment::{self, MergingSegment, merges};
use trendflow_core::{Epoch, OperatorError, SegmentData, StateSegment};

/// One segment: files taken in an epoch, or in several merged.
#[derive(Debug)]
struct Segment {
    /// Its files (including those forgotten since) and name.
    files: MergingSegment<(String, i64)>,
    /// The newest modification time among them: once older than the age bound, all are.
    newest_mtime: i64,
}

/// The record of files taken: path -> modification time.
#[derive(Debug, Default)]
pub struct SeenFiles {
    files: HashMap<String, i64>,
    segments: VecDeque<Segment>,
}

impl SeenFiles {
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Records the files epoch `epoch` took, as a new segment (merged with the newest ones
    /// while they are small).
    pub fn add_epoch(&mut self, epoch: Epoch, taken: Vec<(String, i64)>) {
        let taken: Vec<(String, i64)> = taken
            .into_iter()
            .filter(|(path, _)| !self.files.contains_key(path))
            .collect();
        if taken.is_empty() {
            return;
        }
        for (path, mtime) in &taken {
            self.files.insert(path.clone(), *mtime);
        }
        let mut number = 0;
        let mut name = || {
            number += 1;
            format!("{epoch:020}-{}", number - 1)
        };
        self.segments.push_back(segment(name(), taken));
        while let [.., older, newer] = self.segments.make_contiguous()
            && merges(older.files.items, newer.files.items)
        {
            let newer = self.segments.pop_back().expect("two segments");
            let older = self.segments.pop_back().expect("two segments");
            let files = &self.files;
            let remembered: Vec<(String, i64)> = [older, newer]
                .into_iter()
                .flat_map(|s| s.files.into_items())
                .filter(|(path, _)| files.contains_key(path))
                .collect();
            self.segments.push_back(segment(name(), remembered));
        }
    }

    /// Forgets the files older than `threshold`, and the segments holding only such files.
    pub fn forget_older_than(&mut self, threshold: i64) {
        self.files.retain(|_, mtime| *mtime >= threshold);
        self.segments.retain(|s| s.newest_mtime >= threshold);
    }

    /// The segments, oldest first, as the source's state lists them: name, files and newest
    /// modification time.
    pub fn write_list(&self, w: &mut StateWriter) {
        w.u64(self.segments.len() as u64);
        for s in &self.segments {
            w.str(&s.files.name)
                .u64(s.files.items as u64)
                .i64(s.newest_mtime);
        }
    }

    /// The segments, each with its bytes the first time.
    pub fn snapshot_segments(&mut self) -> Vec<StateSegment> {
        self.segments
            .iter_mut()
            .map(|s| {
                s.files.hand_over(|entries| {
                    let mut w = StateWriter::new();
                    w.u64(SEGMENT_VERSION).u64(entries.len() as u64);
                    for (path, mtime) in entries {
                        w.str(path).i64(*mtime);
                    }
                    w.finish()
                })
            })
            .collect()
    }

    /// The record a list written by [`Self::write_list`] describes, from its segments' bytes;
    /// files older than `threshold` are left out (they were forgotten).
    pub fn restore(
        r: &mut StateReader<'_>,
        data: &mut SegmentData,
        threshold: Option<i64>,
    ) -> Result<SeenFiles, OperatorError> {
        let err = |e: String| OperatorError::new(format!("file source state: {e}"));
        let bad = |e: trendflow_core::codec::DecodeError| err(e.to_string());
        let mut seen = SeenFiles::default();
        for _ in 0..r.len().map_err(bad)? {
            let name = r.str().map_err(bad)?.to_string();
            let files = r.u64().map_err(bad)? as usize;
            let newest_mtime = r.i64().map_err(bad)?;
            let bytes = state_segment::take(data, &name).map_err(err)?;
            let mut s = StateReader::new(&bytes);
            if s.u64().map_err(bad)? != SEGMENT_VERSION {
                return Err(err(format!("segment {name}: unknown version")));
            }
            let mut entries = Vec::with_capacity(files);
            for _ in 0..s.len().map_err(bad)? {
                entries.push((s.str().map_err(bad)?.to_string(), s.i64().map_err(bad)?));
            }
            s.end().map_err(bad)?;
            if entries.len() != files {
                return Err(err(format!(
                    "segment {name} holds {} files, the state lists {files}",
                    entries.len()
                )));
            }
            for (path, mtime) in &entries {
                if threshold.is_none_or(|t| *mtime >= t) {
                    seen.files.insert(path.clone(), *mtime);
                }
            }
            seen.segments.push_back(Segment {
                files: MergingSegment::restored(name, files, entries),
                newest_mtime,
            });
        }
        Ok(seen)
    }

    /// The record of a state written before segments (every file in the state), saved as one
    /// segment by the next checkpoint. Named after the files, so that another such state
    /// restored later cannot give other bytes the same name.
    pub fn from_files(files: Vec<(String, i64)>) -> SeenFiles {
        let mut seen = SeenFiles::default();
        if files.is_empty() {
            return seen;
        }
        let mut tag = Vec::new();
        for (path, mtime) in &files {
            tag.extend_from_slice(path.as_bytes());
            tag.extend_from_slice(&mtime.to_le_bytes());
            seen.files.insert(path.clone(), *mtime);
        }
        let name = format!("unsegmented-{:08x}-{}", crc32(&tag), files.len());
        seen.segments.push_back(segment(name, files));
        seen
    }
}

fn segment(name: String, entries: Vec<(String, i64)>) -> Segment {
    Segment {
        newest_mtime: entries.iter().map(|(_, m)| *m).max().unwrap_or(i64::MIN),
        files: MergingSegment::new(name, entries),
    }
}

/// A segment's bytes: `u64` this version, `u64` n, n x (`str` path, `i64` mtime).
const SEGMENT_VERSION: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::state_segment::SegmentStore;

    /// A checkpoint of `seen` kept in `store`: the state's list, and the segments it names.
    fn checkpoint(seen: &mut SeenFiles, store: &mut SegmentStore) -> (Vec<u8>, SegmentData) {
        let mut w = StateWriter::new();
        seen.write_list(&mut w);
        (w.finish(), store.keep(seen.snapshot_segments()))
    }

    fn restored(state: &[u8], mut listed: SegmentData, threshold: Option<i64>) -> SeenFiles {
        let mut r = StateReader::new(state);
        let seen = SeenFiles::restore(&mut r, &mut listed, threshold).unwrap();
        r.end().unwrap();
        seen
    }

    fn sorted(seen: &SeenFiles) -> Vec<(String, i64)> {
        let mut v: Vec<_> = seen.files.iter().map(|(p, m)| (p.clone(), *m)).collect();
        v.sort();
        v
    }

    #[test]
    fn restored_at_every_epoch_it_remembers_what_one_never_restored_does() {
        // Files of increasing modification times, 1 to 9 an epoch, forgotten past 300 ms.
        let mut store = SegmentStore::default();
        let (mut reference, mut seen) = (SeenFiles::default(), SeenFiles::default());
        let mut mtime = 0;
        let mut most_segments = 0;
        for epoch in 0..300u64 {
            let taken: Vec<(String, i64)> = (0..1 + (epoch * 7 % 9))
                .map(|i| {
                    mtime += 3;
                    (format!("in/f-{epoch}-{i}.json"), mtime)
                })
                .collect();
            let threshold = mtime - 300;
            for s in [&mut reference, &mut seen] {
                s.forget_older_than(threshold);
                s.add_epoch(epoch, taken.clone());
            }
            let (state, listed) = checkpoint(&mut seen, &mut store);
            most_segments = most_segments.max(listed.len());
            seen = restored(&state, listed, Some(threshold));
            assert_eq!(sorted(&seen), sorted(&reference), "epoch {epoch}");
        }
        assert!(reference.len() <= 101, "{}", reference.len());
        assert!((2..=9).contains(&most_segments), "{most_segments} segments");
    }

    #[test]
    fn a_file_already_taken_is_not_recorded_twice_and_forgotten_segments_leave() {
        let mut seen = SeenFiles::default();
        seen.add_epoch(0, vec![("a".into(), 10), ("b".into(), 20)]);
        seen.add_epoch(1, vec![("a".into(), 10), ("c".into(), 30)]);
        assert_eq!(seen.len(), 3);
        // Epoch 1 adds `c` only: one file after a segment of two stays apart.
        assert_eq!(seen.segments.len(), 2);
        seen.forget_older_than(25);
        assert_eq!(sorted(&seen), [("c".to_string(), 30)]);
        assert_eq!(seen.segments.len(), 1);
    }

    #[test]
    fn a_state_from_before_segments_becomes_one_segment_saved_once() {
        let mut seen = SeenFiles::from_files(vec![("a".into(), 1), ("b".into(), 2)]);
        let mut store = SegmentStore::default();
        let (state, listed) = checkpoint(&mut seen, &mut store);
        assert_eq!(listed.len(), 1);
        let (_, again) = checkpoint(&mut seen, &mut store);
        assert_eq!(again.len(), 1, "listed again, not given again");
        assert_eq!(sorted(&restored(&state, listed, None)), sorted(&seen));
    }
}
