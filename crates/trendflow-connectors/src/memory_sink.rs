//! The memory sink: result rows into a named in-memory table that SQL queries read (Spark's
//! `format("memory").queryName(...)`). Complete mode replaces the table at each commit;
//! append and update modes append, up to an optional bound on retained rows.

use trendflow_core::batch::OutputMode;
use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::metrics::Counter;
use trendflow_core::{Batch, Epoch, OperatorError, ResultRow, RowSchema, Sink};
use trendflow_sql::tables::{arrow_schema, to_record_batch};
use trendflow_sql::{MemoryTables, TableMode};

pub struct MemorySink {
    table: String,
    tables: MemoryTables,
    max_rows: Option<usize>,
    pending: Vec<ResultRow>,
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
            pending: Vec::new(),
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
            self.pending.clear();
        }
        self.mode = Some(rows.mode);
        self.pending.extend(rows.rows.iter().cloned());
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
        if table_mode == TableMode::Append && self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::take(&mut self.pending);
        if self.sort_by_count {
            rows.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.window.cmp(&b.window))
                    .then_with(|| a.key.cmp(&b.key))
            });
        }
        let evicted = self
            .tables
            .commit(&self.table, table_mode, to_record_batch(schema, &rows));
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
        let ipc = self
            .tables
            .export(&self.table)
            .map_err(OperatorError::new)?
            .unwrap_or_default();
        // Sized for the table, which is copied once.
        let mut w = StateWriter::appending_to(
            Vec::new(),
            ipc.len() + schema.key_column.len() + schema.value_column.len() + 32,
        );
        w.u64(1)
            .bool(true)
            .bool(schema.windowed)
            .str(&schema.key_column)
            .str(&schema.value_column)
            .u64(mode as u64);
        w.bytes(&ipc);
        drop(ipc);
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
        self.pending.clear();
        r.end().map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use trendflow_core::RowBatch;
    use trendflow_core::metrics::{Metrics, names};

    #[test]
    fn a_full_table_drops_its_oldest_rows_and_counts_them() {
        let metrics = Metrics::new();
        let tables = MemoryTables::new();
        let mut sink = MemorySink::new("t", tables.clone(), Some(3), false)
            .with_eviction_counter(metrics.counter(names::MEMORY_ROWS_EVICTED, "t"));
        let schema = Arc::new(RowSchema {
            windowed: false,
            key_column: "word".into(),
            value_column: "count".into(),
        });
        for (epoch, keys) in [(0, ["#a", "#b"]), (1, ["#c", "#d"])] {
            let rows = keys
                .iter()
                .map(|k| ResultRow {
                    window: None,
                    key: (*k).into(),
                    count: 1,
                })
                .collect();
            let batch = RowBatch {
                schema: schema.clone(),
                mode: OutputMode::Append,
                epoch,
                rows,
            };
            sink.write(&Batch::Rows(Arc::new(batch))).unwrap();
            sink.commit(epoch).unwrap();
        }
        assert_eq!(tables.row_count("t"), Some(3));
        assert_eq!(metrics.total(names::MEMORY_ROWS_EVICTED), 1);
    }
}
