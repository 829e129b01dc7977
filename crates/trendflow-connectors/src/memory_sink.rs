//! The memory sink: result rows into a named in-memory table that SQL queries read (Spark's
//! `format("memory").queryName(...)`). Complete mode replaces the table at each commit;
//! append and update modes append, up to an optional bound on retained rows.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use trendflow_core::batch::OutputMode;
use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::metrics::Counter;
use trendflow_core::{Batch, Epoch, OperatorError, ResultRow, RowBatch, RowSchema, Sink};
use trendflow_sql::tables::{arrow_schema, to_record_batch};
use trendflow_sql::{MemoryTables, TableMode};

use crate::two_threads;

pub struct MemorySink {
    table: String,
    tables: MemoryTables,
    max_rows: Option<usize>,
    /// The epoch's batches as they arrived (shared with the other sinks, not copied), each
    /// with the index of its first row still kept; turned into Arrow at the commit. In append
    /// and update modes with a bound, only the last `max_rows` rows are kept: the commit
    /// would evict the others anyway (they are counted then). Converting at the commit
    /// converts only those: Q2's flush over 1M tweets sends 4.2M rows to a table of 1M, and
    /// converting each batch as it came was 17% of that flush's cycles.
    pending: VecDeque<(Arc<RowBatch>, usize)>,
    pending_rows: usize,
    /// Tables sorted by count: the epoch's rows, sorted at the commit.
    unsorted: Vec<ResultRow>,
    /// Rows of this epoch dropped because of the bound.
    trimmed: usize,
    schema: Option<RowSchema>,
    mode: Option<OutputMode>,
    /// Complete-mode tables are kept sorted by count, largest first (the tutorial's
    /// `.sort('count', ascending=False)`).
    sort_by_count: bool,
    /// Rows dropped to keep the table within `max_rows`.
    evicted: Option<Counter>,
}

impl MemorySink {
    pub fn new(
        table: &str,
        tables: MemoryTables,
        max_rows: Option<usize>,
        sort_by_count: bool,
    ) -> Self {
        MemorySink {
            table: table.to_string(),
            tables,
            max_rows,
            pending: VecDeque::new(),
            pending_rows: 0,
            unsorted: Vec::new(),
            trimmed: 0,
            schema: None,
            mode: None,
            sort_by_count,
            evicted: None,
        }
    }

    /// Counts the rows dropped to keep the table within its bound (never silently).
    pub fn with_eviction_counter(mut self, counter: Counter) -> Self {
        self.evicted = Some(counter);
        self
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_rows = 0;
        self.unsorted.clear();
    }

    /// Drops the epoch's oldest rows beyond `max`, whole batches when it can.
    fn trim_to(&mut self, max: usize) {
        while self.pending_rows > max {
            let excess = self.pending_rows - max;
            let (batch, from) = &mut self.pending[0];
            let first = batch.rows.len() - *from;
            let dropped = if first <= excess {
                self.pending.pop_front();
                first
            } else {
                *from += excess;
                excess
            };
            self.pending_rows -= dropped;
            self.trimmed += dropped;
        }
    }
}

/// The epoch's batches (each from its first kept row) as Arrow, in order; on two threads when
/// there are many rows: this runs at the commit, after the flush's last part (~40 ms on one core
/// for Q2's 0.68M rows over 200k tweets, with the other core idle).
fn to_arrow(mut batches: Vec<(Arc<RowBatch>, usize)>, rows: usize) -> Vec<RecordBatch> {
    let convert = |batches: Vec<(Arc<RowBatch>, usize)>| -> Vec<RecordBatch> {
        batches
            .into_iter()
            .map(|(batch, from)| {
                to_record_batch(&batch.schema, batch.rows.range(from, batch.rows.len()))
            })
            .collect()
    };
    if rows < two_threads::MIN_ROWS || batches.len() < 2 || two_threads::cores() < 2 {
        return convert(batches);
    }
    // The second thread takes the batches after the first half of the rows.
    let mut seen = 0;
    let split = batches
        .iter()
        .position(|(b, from)| {
            seen += b.rows.len() - from;
            seen >= rows / 2
        })
        .map_or(1, |i| i + 1)
        .clamp(1, batches.len() - 1);
    let second = batches.split_off(split);
    let (mut first, second) = two_threads::join(|| convert(batches), || convert(second));
    first.extend(second);
    first
}

impl Sink for MemorySink {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        let Batch::Rows(rows) = batch else {
            return Err(OperatorError::new(format!(
                "the memory sink takes result rows, got {}",
                batch.kind()
            )));
        };
        if self.schema.is_none() {
            self.tables
                .create(&self.table, arrow_schema(&rows.schema), self.max_rows);
            self.schema = Some((*rows.schema).clone());
        }
        if rows.mode == OutputMode::Complete {
            self.clear_pending();
        }
        self.mode = Some(rows.mode);
        if rows.rows.is_empty() {
            return Ok(());
        }
        if self.sort_by_count {
            self.unsorted.extend(rows.rows.iter().map(|r| r.to_owned()));
            return Ok(());
        }
        self.pending_rows += rows.rows.len();
        self.pending.push_back((Arc::clone(rows), 0));
        if let Some(max) = self.max_rows
            && rows.mode != OutputMode::Complete
        {
            self.trim_to(max);
        }
        Ok(())
    }

    fn commit(&mut self, _epoch: Epoch) -> Result<(), OperatorError> {
        let (Some(schema), Some(mode)) = (&self.schema, self.mode) else {
            return Ok(());
        };
        let table_mode = if mode == OutputMode::Complete {
            TableMode::Replace
        } else {
            TableMode::Append
        };
        if table_mode == TableMode::Append && self.pending_rows == 0 && self.unsorted.is_empty() {
            return Ok(());
        }
        let batches: Vec<RecordBatch> = if self.sort_by_count {
            let mut rows = std::mem::take(&mut self.unsorted);
            rows.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.window.cmp(&b.window))
                    .then_with(|| a.key.cmp(&b.key))
            });
            vec![to_record_batch(schema, rows.iter().map(ResultRow::as_ref))]
        } else {
            to_arrow(self.pending.drain(..).collect(), self.pending_rows)
        };
        self.pending_rows = 0;
        let trimmed = std::mem::take(&mut self.trimmed);
        let evicted = trimmed
            + self
                .tables
                .commit_all(&self.table, table_mode, arrow_schema(schema), batches);
        if evicted > 0
            && let Some(c) = &self.evicted
        {
            if c.get() == 0 {
                tracing::warn!(
                    table = self.table,
                    max_rows = self.max_rows,
                    "memory table full: its oldest rows are dropped (counted in trendflow_memory_rows_evicted_total; raise `max_rows` to keep more)"
                );
            }
            c.add(evicted as u64);
        }
        Ok(())
    }

    fn state_signature(&self) -> Option<String> {
        Some(format!("memory table `{}` v1", self.table))
    }

    /// The committed table (Arrow IPC), with its columns and mode: a restart puts the table
    /// back as it was after the checkpoint's epoch, dropping rows of later epochs.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let (Some(schema), Some(mode)) = (&self.schema, self.mode) else {
            let mut w = StateWriter::new();
            w.u64(1).bool(false);
            return Ok(w.finish());
        };
        let mut w = StateWriter::new();
        w.u64(1)
            .bool(true)
            .bool(schema.windowed)
            .str(&schema.key_column)
            .str(&schema.value_column)
            .u64(mode as u64);
        // The table's IPC stream is written straight into the state (it can be tens of MB).
        w.bytes_from(|buf| self.tables.export_into(&self.table, buf).map(|_| ()))
            .map_err(OperatorError::new)?;
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e: trendflow_core::codec::DecodeError| {
            OperatorError::new(format!("memory sink state: {e}"))
        };
        let mut r = StateReader::new(state);
        if r.u64().map_err(bad)? != 1 {
            return Err(OperatorError::new("memory sink state: unknown version"));
        }
        if r.bool().map_err(bad)? {
            let schema = RowSchema {
                windowed: r.bool().map_err(bad)?,
                key_column: r.str().map_err(bad)?.into(),
                value_column: r.str().map_err(bad)?.into(),
            };
            self.mode = Some(match r.u64().map_err(bad)? {
                0 => OutputMode::Append,
                1 => OutputMode::Update,
                _ => OutputMode::Complete,
            });
            self.schema = Some(schema);
            let ipc = r.bytes().map_err(bad)?;
            self.tables
                .import(&self.table, ipc, self.max_rows)
                .map_err(|e| OperatorError::new(format!("memory sink state: {e}")))?;
        }
        self.clear_pending();
        self.trimmed = 0;
        r.end().map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::metrics::{Metrics, names};

    /// Unwindowed append rows, count 1 each.
    fn append(epoch: Epoch, keys: &[&str]) -> Batch {
        let rows = keys
            .iter()
            .map(|k| ResultRow {
                window: None,
                key: (*k).into(),
                count: 1,
            })
            .collect();
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(RowSchema::word_count(false)),
            mode: OutputMode::Append,
            epoch,
            rows,
        }))
    }

    /// A sink on table `t` bounded to 3 rows, with its eviction counter.
    fn bounded_sink() -> (MemorySink, MemoryTables, Metrics) {
        let metrics = Metrics::new();
        let tables = MemoryTables::new();
        let sink = MemorySink::new("t", tables.clone(), Some(3), false)
            .with_eviction_counter(metrics.counter(names::MEMORY_ROWS_EVICTED, "t"));
        (sink, tables, metrics)
    }

    #[test]
    fn a_full_table_drops_its_oldest_rows_and_counts_them() {
        let (mut sink, tables, metrics) = bounded_sink();
        for (epoch, keys) in [(0, ["#a", "#b"]), (1, ["#c", "#d"])] {
            sink.write(&append(epoch, &keys)).unwrap();
            sink.commit(epoch).unwrap();
        }
        assert_eq!(tables.row_count("t"), Some(3));
        assert_eq!(metrics.total(names::MEMORY_ROWS_EVICTED), 1);
    }

    /// The keys of table `t`, in table order.
    fn keys_of(tables: &MemoryTables) -> Vec<String> {
        use datafusion::arrow::array::{Array, StringArray};
        let ipc = tables.export("t").unwrap().unwrap();
        let reader =
            datafusion::arrow::ipc::reader::StreamReader::try_new(ipc.as_slice(), None).unwrap();
        let mut keys = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let col = batch.column_by_name("word").unwrap();
            let col = col.as_any().downcast_ref::<StringArray>().unwrap();
            keys.extend((0..col.len()).map(|i| col.value(i).to_string()));
        }
        keys
    }

    #[test]
    fn an_epoch_larger_than_the_bound_keeps_its_last_rows_and_counts_the_rest() {
        let (mut sink, tables, metrics) = bounded_sink();
        let write = |sink: &mut MemorySink, epoch, keys: &[&str]| {
            sink.write(&append(epoch, keys)).unwrap();
        };
        write(&mut sink, 0, &["#a", "#b"]);
        sink.commit(0).unwrap();
        // One epoch in three parts, five rows: the table keeps the last three.
        write(&mut sink, 1, &["#c", "#d"]);
        write(&mut sink, 1, &["#e", "#f"]);
        write(&mut sink, 1, &["#g"]);
        assert_eq!(
            keys_of(&tables),
            ["#a", "#b"],
            "nothing shows before the commit"
        );
        sink.commit(1).unwrap();
        assert_eq!(keys_of(&tables), ["#e", "#f", "#g"]);
        assert_eq!(metrics.total(names::MEMORY_ROWS_EVICTED), 4);
        write(&mut sink, 2, &["#h"]);
        sink.commit(2).unwrap();
        assert_eq!(keys_of(&tables), ["#f", "#g", "#h"]);
        assert_eq!(metrics.total(names::MEMORY_ROWS_EVICTED), 5);
    }

    #[test]
    fn a_large_epoch_is_converted_on_two_threads_in_order() {
        // 25,000 rows in five parts (the first partly trimmed by a bound of 24,000): enough
        // for two threads, split inside the epoch.
        for bound in [None, Some(24_000)] {
            let tables = MemoryTables::new();
            let mut sink = MemorySink::new("t", tables.clone(), bound, false);
            let keys: Vec<String> = (0..25_000).map(|i| format!("#k{i:05}")).collect();
            for part in keys.chunks(5_000) {
                let part: Vec<&str> = part.iter().map(String::as_str).collect();
                sink.write(&append(0, &part)).unwrap();
            }
            sink.commit(0).unwrap();
            let kept = bound.unwrap_or(keys.len());
            assert!(
                keys_of(&tables) == keys[keys.len() - kept..],
                "bound {bound:?}: rows out of order or missing"
            );
        }
    }
}
