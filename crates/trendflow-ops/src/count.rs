//! Counting tokens over the whole stream, without windows (the tutorial's first query).

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use trendflow_core::batch::OutputMode;
use trendflow_core::codec::{DecodeError, StateReader, StateWriter};
use trendflow_core::{
    Batch, Emitter, Epoch, Operator, OperatorError, ResultRow, RowBatch, RowSchema,
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
    counts: FxHashMap<Arc<str>, i64>,
    touched: FxHashSet<Arc<str>>,
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
            if let Some(c) = self.counts.get_mut(word) {
                *c += 1;
                if self.mode == OutputMode::Update && !self.touched.contains(word) {
                    let key = self.counts.get_key_value(word).unwrap().0.clone();
                    self.touched.insert(key);
                }
            } else {
                let key: Arc<str> = word.into();
                self.counts.insert(key.clone(), 1);
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
                .map(|(k, c)| ResultRow {
                    window: None,
                    key: k.clone(),
                    count: *c,
                })
                .collect(),
            OutputMode::Update => self
                .touched
                .drain()
                .map(|k| ResultRow {
                    window: None,
                    count: self.counts[&k],
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
        w.u64(1).u64(self.counts.len() as u64);
        for (k, c) in &self.counts {
            w.str(k).i64(*c);
        }
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e: DecodeError| OperatorError::new(format!("count state: {e}"));
        let mut r = StateReader::new(state);
        if r.u64().map_err(bad)? != 1 {
            return Err(OperatorError::new("count state: unknown version"));
        }
        self.counts.clear();
        self.touched.clear();
        for _ in 0..r.u64().map_err(bad)? {
            let k: Arc<str> = r.str().map_err(bad)?.into();
            self.counts.insert(k, r.i64().map_err(bad)?);
        }
        r.end().map_err(bad)
    }
}
