//! Counting tokens over the whole stream, without windows (the tutorial's first query).

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use trendflow_core::batch::OutputMode;
use trendflow_core::codec::{DecodeError, StateReader, StateWriter};
use trendflow_core::keyed_segments::{KeyedSegments, RowChange};
use trendflow_core::{
    Batch, Emitter, Epoch, Operator, OperatorError, ResultRow, RowBatch, RowSchema, SegmentData,
    StateSegment,
};

/// `groupBy(word).count()`: complete mode re-emits the whole table each epoch, update mode
/// the rows that changed.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, Emitter, Operator, TokenBatch, batch::OutputMode};
/// use trendflow_ops::KeyCount;
///
/// let mut count = KeyCount::new(OutputMode::Complete, "word", "count");
/// let mut tokens = TokenBatch::default();
/// tokens.push(None, "#a");
/// tokens.push(None, "#a");
/// tokens.push(Some(0), "#b");
/// let mut out = Emitter::new();
/// count.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out).unwrap();
/// count.on_barrier(0, &mut out).unwrap();
/// let Batch::Rows(rows) = &out.batches[0] else { panic!() };
/// let got: Vec<_> = rows.rows.iter().map(|r| (&**r.key, r.count)).collect();
/// assert_eq!(got, [("#a", 2), ("#b", 1)]);
/// ```
pub struct KeyCount {
    mode: OutputMode,
    schema: Arc<RowSchema>,
    counts: FxHashMap<Arc<str>, Tally>,
    touched: FxHashSet<Arc<str>>,
    /// The counts as the checkpoints keep them.
    segments: KeyedSegments,
}

/// A key's count, and whether it changed since it was last put in a state segment.
#[derive(Debug, Clone, Copy)]
struct Tally {
    count: i64,
    unsaved: bool,
}

impl KeyCount {
    pub fn new(mode: OutputMode, key_column: &str, value_column: &str) -> Self {
        KeyCount {
            mode,
            schema: Arc::new(RowSchema {
                windowed: false,
                key_column: key_column.into(),
                value_column: value_column.into(),
            }),
            counts: FxHashMap::default(),
            touched: FxHashSet::default(),
            segments: KeyedSegments::default(),
        }
    }
}

impl Operator for KeyCount {
    fn process_batch(&mut self, batch: Batch, _out: &mut Emitter) -> Result<(), OperatorError> {
        let Batch::Tokens(tokens) = batch else {
            return Err(OperatorError::new(format!(
                "count takes tokens, got {}",
                batch.kind()
            )));
        };
        for (_, word) in tokens.iter() {
            if let Some(t) = self.counts.get_mut(word) {
                t.count += 1;
                t.unsaved = true;
                if self.mode == OutputMode::Update && !self.touched.contains(word) {
                    let key = self.counts.get_key_value(word).unwrap().0.clone();
                    self.touched.insert(key);
                }
            } else {
                let key: Arc<str> = word.into();
                self.counts.insert(
                    key.clone(),
                    Tally {
                        count: 1,
                        unsaved: true,
                    },
                );
                if self.mode == OutputMode::Update {
                    self.touched.insert(key);
                }
            }
        }
        Ok(())
    }

    fn on_barrier(&mut self, epoch: Epoch, out: &mut Emitter) -> Result<(), OperatorError> {
        let mut rows: Vec<ResultRow> = match self.mode {
            OutputMode::Complete => self
                .counts
                .iter()
                .map(|(k, t)| ResultRow {
                    window: None,
                    key: k.clone(),
                    count: t.count,
                })
                .collect(),
            OutputMode::Update => self
                .touched
                .drain()
                .map(|k| ResultRow {
                    window: None,
                    count: self.counts[&k].count,
                    key: k,
                })
                .collect(),
            OutputMode::Append => {
                return Err(OperatorError::new(
                    "append mode needs windows and a watermark",
                ));
            }
        };
        rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        self.save_changed(epoch);
        // Complete mode always emits, even an empty table, so sinks see the table of the epoch.
        if !rows.is_empty() || self.mode == OutputMode::Complete {
            out.batches.push(Batch::Rows(Arc::new(RowBatch {
                schema: self.schema.clone(),
                mode: self.mode,
                epoch,
                rows: rows.into(),
            })));
        }
        Ok(())
    }

    fn state_rows(&self) -> usize {
        self.counts.len()
    }

    fn state_signature(&self) -> Option<String> {
        Some(format!("count v1 mode={:?}", self.mode))
    }

    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(SEGMENTED_LAYOUT).u64(self.counts.len() as u64);
        self.segments.write_list(&mut w);
        Ok(w.finish())
    }

    fn snapshot_segments(&mut self) -> Result<Vec<StateSegment>, OperatorError> {
        Ok(self.segments.snapshot_segments())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        self.restore_with_segments(state, SegmentData::new())
    }

    fn restore_with_segments(
        &mut self,
        state: &[u8],
        mut segments: SegmentData,
    ) -> Result<(), OperatorError> {
        let bad = |e: DecodeError| OperatorError::new(format!("count state: {e}"));
        let mut r = StateReader::new(state);
        let layout = r.u64().map_err(bad)?;
        self.counts.clear();
        self.touched.clear();
        let keys = r.u64().map_err(bad)?;
        match layout {
            WHOLE_LAYOUT => {
                let mut all = Vec::with_capacity(keys.min(1 << 20) as usize);
                for _ in 0..keys {
                    let k: Arc<str> = r.str().map_err(bad)?.into();
                    let count = r.i64().map_err(bad)?;
                    self.counts.insert(
                        k.clone(),
                        Tally {
                            count,
                            unsaved: false,
                        },
                    );
                    all.push(((None, k), Some(count)));
                }
                // Saved as segments from the next checkpoint on, every key in the first.
                all.sort_unstable();
                self.segments = KeyedSegments::default();
                self.segments.add_whole(all);
            }
            SEGMENTED_LAYOUT => {
                let counts = &mut self.counts;
                self.segments =
                    KeyedSegments::restore(&mut r, &mut segments, |(_, k), count| match count {
                        Some(count) => {
                            counts.insert(
                                k,
                                Tally {
                                    count,
                                    unsaved: false,
                                },
                            );
                        }
                        None => {
                            counts.remove(&k);
                        }
                    })?;
                if self.counts.len() as u64 != keys {
                    return Err(OperatorError::new(format!(
                        "count state: its segments hold {} keys, the state lists {keys}",
                        self.counts.len()
                    )));
                }
            }
            _ => return Err(OperatorError::new("count state: unknown version")),
        }
        r.end().map_err(bad)
    }
}

impl KeyCount {
    /// Puts the counts epoch `epoch` changed in a new state segment.
    fn save_changed(&mut self, epoch: Epoch) {
        let mut changed: Vec<RowChange> = self
            .counts
            .iter_mut()
            .filter(|(_, t)| t.unsaved)
            .map(|(k, t)| {
                t.unsaved = false;
                ((None, k.clone()), Some(t.count))
            })
            .collect();
        changed.sort_unstable();
        let counts = &self.counts;
        self.segments.add_epoch(epoch, changed, counts.len(), || {
            let mut all: Vec<RowChange> = counts
                .iter()
                .map(|(k, t)| ((None, k.clone()), Some(t.count)))
                .collect();
            all.sort_unstable();
            all
        });
    }
}

/// The state's layouts: every key and count in the state (before state segments), or the
/// list of the segments that hold them (`trendflow_core::keyed_segments`). Both begin with the
/// number of keys.
const WHOLE_LAYOUT: u64 = 1;
const SEGMENTED_LAYOUT: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::TokenBatch;
    use trendflow_core::state_segment::{MERGED_MAX, SegmentStore};

    fn tokens(words: &[String]) -> Batch {
        let mut t = TokenBatch::default();
        for w in words {
            t.push(None, w);
        }
        Batch::Tokens(Arc::new(t))
    }

    /// The rows epoch `epoch` emits, after `words`.
    fn epoch(op: &mut KeyCount, epoch: Epoch, words: &[String]) -> Vec<(String, i64)> {
        let mut out = Emitter::new();
        op.process_batch(tokens(words), &mut out).unwrap();
        op.on_barrier(epoch, &mut out).unwrap();
        out.batches
            .iter()
            .flat_map(|b| match b {
                Batch::Rows(r) => r
                    .rows
                    .iter()
                    .map(|r| (r.key.to_string(), r.count))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// A checkpoint of `op` kept in `store`: its state, and the segments it lists.
    fn checkpoint(op: &mut KeyCount, store: &mut SegmentStore) -> (Vec<u8>, SegmentData) {
        let state = op.snapshot().unwrap();
        (state, store.keep(op.snapshot_segments().unwrap()))
    }

    /// Words of an epoch: a few hot keys every epoch, a long tail, new keys now and then.
    fn words_of(epoch: u64, rng: &mut u64) -> Vec<String> {
        (0..300)
            .map(|_| {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                match *rng % 10 {
                    0..=3 => format!("#hot{}", *rng % 50),
                    4..=7 => format!("#tail{}", *rng % 3000),
                    _ => format!("#new{epoch}-{}", *rng % 20),
                }
            })
            .collect()
    }

    #[test]
    fn restored_at_every_epoch_it_counts_what_one_never_restored_does() {
        for mode in [OutputMode::Complete, OutputMode::Update] {
            let mut store = SegmentStore::default();
            let mut reference = KeyCount::new(mode, "word", "count");
            let mut op = KeyCount::new(mode, "word", "count");
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut most_segments = 0;
            for e in 0..500 {
                let words = words_of(e, &mut rng);
                assert_eq!(epoch(&mut op, e, &words), epoch(&mut reference, e, &words));
                let (state, listed) = checkpoint(&mut op, &mut store);
                most_segments = most_segments.max(op.segments.len());
                op = KeyCount::new(mode, "word", "count");
                op.restore_with_segments(&state, listed).unwrap();
            }
            assert!(
                (2..=20).contains(&most_segments),
                "{most_segments} segments"
            );
            assert_eq!(op.counts.len(), reference.counts.len());
        }
    }

    #[test]
    fn segments_with_too_many_stale_counts_are_replaced_by_one_of_every_key() {
        // 40,000 of 60,000 keys change each epoch: each epoch's segment is too large to
        // merge, and most of an older one's counts are stale after two epochs.
        let mut store = SegmentStore::default();
        let mut reference = KeyCount::new(OutputMode::Complete, "word", "count");
        let mut op = KeyCount::new(OutputMode::Complete, "word", "count");
        let mut replaced = 0;
        for e in 0..12u64 {
            let words: Vec<String> = (0..40_000)
                .map(|i| format!("#k{}", (e * 20_000 + i) % 60_000))
                .collect();
            let segments_before = op.segments.len();
            assert_eq!(epoch(&mut op, e, &words), epoch(&mut reference, e, &words));
            let (state, listed) = checkpoint(&mut op, &mut store);
            assert!(
                op.segments.entries() <= 2 * op.counts.len() + MERGED_MAX,
                "epoch {e}: {} entries for {} keys",
                op.segments.entries(),
                op.counts.len()
            );
            if segments_before > 1 && op.segments.len() == 1 {
                replaced += 1;
                assert_eq!(listed.len(), 1);
                assert_eq!(op.segments.entries(), op.counts.len(), "every key, once");
            }
            op = KeyCount::new(OutputMode::Complete, "word", "count");
            op.restore_with_segments(&state, listed).unwrap();
        }
        assert!(replaced >= 2, "replaced {replaced} times");
        assert_eq!(epoch(&mut op, 12, &[]), epoch(&mut reference, 12, &[]));
    }

    #[test]
    fn epochs_of_fewer_and_fewer_new_keys_make_at_most_64_segments() {
        // Each epoch's segment is smaller than the one before: none merges, none is stale.
        let mut store = SegmentStore::default();
        let mut reference = KeyCount::new(OutputMode::Update, "word", "count");
        let mut op = KeyCount::new(OutputMode::Update, "word", "count");
        let mut most = 0;
        for e in 0..200u64 {
            let words: Vec<String> = (0..200 - e).map(|i| format!("#e{e}-{i}")).collect();
            assert_eq!(epoch(&mut op, e, &words), epoch(&mut reference, e, &words));
            let (state, listed) = checkpoint(&mut op, &mut store);
            most = most.max(listed.len());
            op = KeyCount::new(OutputMode::Update, "word", "count");
            op.restore_with_segments(&state, listed).unwrap();
        }
        assert!((60..=64).contains(&most), "{most} segments");
        assert_eq!(op.counts.len(), reference.counts.len());
    }

    #[test]
    fn a_restart_from_an_older_checkpoint_replays_its_epochs_into_the_same_segments() {
        // The store keeps every segment given; a replayed epoch may give a name again, with
        // the same bytes only (the runtime overwrites it; other bytes would corrupt the
        // checkpoints that list it).
        let mut stored: std::collections::HashMap<String, Vec<u8>> = Default::default();
        let mut keep = |listed: Vec<StateSegment>| -> SegmentData {
            listed
                .into_iter()
                .map(|s| {
                    if let Some(data) = s.data {
                        let before = stored.insert(s.name.clone(), data.clone());
                        assert!(
                            before.is_none_or(|b| b == data),
                            "{} given other bytes",
                            s.name
                        );
                    }
                    let data = stored[&s.name].clone();
                    (s.name, data)
                })
                .collect()
        };
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let inputs: Vec<Vec<String>> = (0..60).map(|e| words_of(e, &mut rng)).collect();
        let mut op = KeyCount::new(OutputMode::Complete, "word", "count");
        let mut checkpoints = Vec::new();
        let mut rows = Vec::new();
        for (e, words) in inputs.iter().enumerate() {
            rows.push(epoch(&mut op, e as u64, words));
            let state = op.snapshot().unwrap();
            checkpoints.push((state, keep(op.snapshot_segments().unwrap())));
        }
        for from in [0, 17, 40] {
            let (state, listed) = checkpoints[from].clone();
            let mut replay = KeyCount::new(OutputMode::Complete, "word", "count");
            replay.restore_with_segments(&state, listed).unwrap();
            for (e, words) in inputs.iter().enumerate().skip(from + 1) {
                assert_eq!(epoch(&mut replay, e as u64, words), rows[e], "from {from}");
                replay.snapshot().unwrap();
                keep(replay.snapshot_segments().unwrap());
            }
        }
    }

    #[test]
    fn a_checkpoint_writes_the_counts_that_changed_since_the_last_one() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut op = KeyCount::new(OutputMode::Complete, "word", "count");
        let written = |op: &mut KeyCount| -> Vec<Vec<(String, i64)>> {
            op.snapshot().unwrap();
            op.snapshot_segments()
                .unwrap()
                .into_iter()
                .filter_map(|s| s.data)
                .map(|data| {
                    let mut r = StateReader::new(&data);
                    assert_eq!(r.u64().unwrap(), 2, "the segment's version");
                    let n = r.len().unwrap();
                    (0..n)
                        .map(|_| {
                            assert_eq!((r.opt_i64().unwrap(), r.opt_i64().unwrap()), (None, None));
                            let key = r.str().unwrap().to_string();
                            (key, r.opt_i64().unwrap().expect("a count"))
                        })
                        .collect()
                })
                .collect()
        };
        epoch(&mut op, 0, &words(&["#a", "#b", "#c", "#a"]));
        assert_eq!(
            written(&mut op),
            [vec![("#a".into(), 2), ("#b".into(), 1), ("#c".into(), 1)]]
        );
        epoch(&mut op, 1, &words(&["#a"]));
        assert_eq!(written(&mut op), [vec![("#a".into(), 3)]]);
        epoch(&mut op, 2, &[]);
        assert!(
            written(&mut op).is_empty(),
            "nothing changed, nothing written"
        );
    }

    #[test]
    fn a_state_from_before_segments_is_restored_and_saved_as_one_segment_once() {
        let mut v1 = StateWriter::new();
        v1.u64(1).u64(2).str("#a").i64(5).str("#b").i64(1);
        let mut op = KeyCount::new(OutputMode::Complete, "word", "count");
        op.restore(&v1.finish()).unwrap();
        let rows = epoch(&mut op, 3, &["#b".to_string()]);
        assert_eq!(rows, [("#a".to_string(), 5), ("#b".to_string(), 2)]);
        let mut store = SegmentStore::default();
        let (state, listed) = checkpoint(&mut op, &mut store);
        assert_eq!(
            listed.len(),
            2,
            "the restored counts, and the epoch's change"
        );
        let (_, again) = checkpoint(&mut op, &mut store);
        assert_eq!(again.len(), 2, "listed again, not given again");
        let mut restored = KeyCount::new(OutputMode::Complete, "word", "count");
        restored.restore_with_segments(&state, listed).unwrap();
        assert_eq!(epoch(&mut restored, 4, &[]), rows);
    }
}
