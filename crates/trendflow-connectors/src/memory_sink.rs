//! The memory sink: result rows into a named in-memory table that SQL queries read (Spark's
//! `format("memory").queryName(...)`). Complete mode replaces the table at each commit;
//! append and update modes append, up to an optional bound on retained rows.
//!
//! Its checkpoint keeps the table's batches as state segments (trendflow_core::state_segment):
//! an epoch's rows are written once, not again in every later checkpoint. The newest two
//! batches are merged as `state_segment::merges` says (up to 65,536 rows); larger batches are
//! not: the table drops rows from its oldest end, so a segment is written once and deleted once
//! the table dropped all its rows. (Merged without that bound, into ever larger batches, Q2
//! over 1M tweets in 101 epochs rewrote its whole 47 MB table every 12-22 epochs.)
//!
//! A complete-mode table is replaced whole at each epoch, but few of its rows change: its
//! checkpoint keeps the rows that changed from epoch to epoch
//! (trendflow_core::keyed_segments), and a restore rebuilds the table from them.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;

use trendflow_core::batch::OutputMode;
use trendflow_core::codec::{StateReader, StateWriter, crc32};
use trendflow_core::keyed_segments::{KeyedSegments, RowChange, RowKey};
use trendflow_core::metrics::Counter;
use trendflow_core::state_segment::{self, merges};
use trendflow_core::{
    Batch, Epoch, OperatorError, ResultRow, RowBatch, RowRef, RowSchema, SegmentData, Sink,
    StateSegment,
};
use trendflow_sql::tables::{arrow_schema, read_ipc, to_record_batch, write_ipc};
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
    /// The table's batches as state segments, oldest first, one for each.
    segments: VecDeque<TableSegment>,
    /// Rows at the start of the oldest segment that the table dropped.
    dropped_from_oldest: usize,
    /// The number of the next segment named in this epoch.
    next_segment: usize,
    /// Complete mode: the committed table's rows by (window, key), and their changes from
    /// epoch to epoch as state segments. The table is replaced whole at each epoch, but few of
    /// its rows change (Q1's 136k hashtags, 2.1 MB as Arrow IPC, were in every checkpoint).
    complete_rows: Vec<(RowKey, i64)>,
    complete_segments: KeyedSegments,
    /// The committed table is complete and kept as changed rows (`complete_segments`), not as
    /// batches (`segments`): only when its rows came strictly in (window, key) order, the
    /// order a restore rebuilds (a windowed count's top-k comes largest count first).
    keyed: bool,
}

/// One batch of the table as a state segment.
#[derive(Debug)]
struct TableSegment {
    name: String,
    /// Rows in the segment, including those the table dropped.
    rows: usize,
    /// The batch, until the segment is handed to a checkpoint.
    unsaved: Option<RecordBatch>,
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
            segments: VecDeque::new(),
            dropped_from_oldest: 0,
            next_segment: 0,
            complete_rows: Vec::new(),
            complete_segments: KeyedSegments::default(),
            keyed: false,
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

    /// Follows the table's commit of `batches`, which dropped its `evicted` oldest rows, in
    /// the segments; then merges the newest small ones (see the module's comment).
    fn follow_commit(
        &mut self,
        epoch: Epoch,
        mode: TableMode,
        batches: &[RecordBatch],
        mut evicted: usize,
    ) -> Result<(), OperatorError> {
        if mode == TableMode::Replace {
            self.segments.clear();
            self.dropped_from_oldest = 0;
        }
        self.next_segment = 0;
        for b in batches.iter().filter(|b| b.num_rows() > 0) {
            let name = self.segment_name(epoch);
            self.segments.push_back(TableSegment {
                name,
                rows: b.num_rows(),
                unsaved: Some(b.clone()),
            });
        }
        while evicted > 0 {
            let Some(oldest) = self.segments.front() else {
                break;
            };
            let kept = oldest.rows - self.dropped_from_oldest;
            if kept <= evicted {
                self.segments.pop_front();
                self.dropped_from_oldest = 0;
                evicted -= kept;
            } else {
                self.dropped_from_oldest += evicted;
                evicted = 0;
            }
        }
        while self.segments.len() >= 2 {
            let n = self.segments.len();
            let (older, newer) = (self.segments[n - 2].rows, self.segments[n - 1].rows);
            if !merges(older, newer) {
                break;
            }
            let merged = self
                .tables
                .merge_newest(&self.table, 2)
                .map_err(OperatorError::new)?;
            self.segments.truncate(n - 2);
            if self.segments.is_empty() {
                // The oldest was merged: the merged batch holds only the rows it showed.
                self.dropped_from_oldest = 0;
            }
            let name = self.segment_name(epoch);
            self.segments.push_back(TableSegment {
                name,
                rows: merged.num_rows(),
                unsaved: Some(merged),
            });
        }
        Ok(())
    }

    /// Follows a complete table's commit: its changed rows become a segment (the table's
    /// batches are not segments in complete mode).
    fn follow_complete_commit(&mut self, epoch: Epoch, changes: Vec<RowChange>) {
        if !self.keyed {
            // The last table was kept as batches (or nothing was kept): every row is new.
            self.complete_segments = KeyedSegments::default();
        }
        self.keyed = true;
        self.segments.clear();
        self.dropped_from_oldest = 0;
        let rows = &self.complete_rows;
        self.complete_segments
            .add_epoch(epoch, changes, rows.len(), || {
                let mut all: Vec<RowChange> =
                    rows.iter().map(|(k, c)| (k.clone(), Some(*c))).collect();
                all.sort_unstable();
                all
            });
    }

    /// The committed complete table, as batch segments: rows are appended to it next.
    fn batches_from_table(&mut self, epoch: Epoch) {
        self.segments.clear();
        self.dropped_from_oldest = 0;
        for (i, batch) in self
            .tables
            .batches(&self.table)
            .unwrap_or_default()
            .into_iter()
            .filter(|b| b.num_rows() > 0)
            .enumerate()
        {
            self.segments.push_back(TableSegment {
                // Apart from the names `follow_commit` gives in this epoch.
                name: format!("{epoch:020}-complete-{i}"),
                rows: batch.num_rows(),
                unsaved: Some(batch),
            });
        }
        self.keyed = false;
        self.complete_rows.clear();
        self.complete_segments = KeyedSegments::default();
    }

    /// A complete table put back from its rows, as the commit that made it built it: in the
    /// order the producers emit (window, then key) or by count, then without its first rows
    /// beyond `max_rows`, as the table drops them.
    fn restore_complete_table(&self, schema: &RowSchema) {
        let mut rows: Vec<ResultRow> = self
            .complete_rows
            .iter()
            .map(|((window, key), count)| ResultRow {
                window: *window,
                key: key.clone(),
                count: *count,
            })
            .collect();
        if self.sort_by_count {
            rows.sort_by(by_count);
        } else {
            rows.sort_unstable_by(|a, b| (a.window, &a.key).cmp(&(b.window, &b.key)));
        }
        let mut batch = to_record_batch(schema, rows.iter().map(ResultRow::as_ref));
        if let Some(max) = self.max_rows
            && batch.num_rows() > max
        {
            batch = batch.slice(batch.num_rows() - max, max);
        }
        self.tables.replace(
            &self.table,
            arrow_schema(schema),
            vec![batch],
            self.max_rows,
        );
    }

    /// A name no other segment of this table was given: the epoch, then a number.
    fn segment_name(&mut self, epoch: Epoch) -> String {
        let name = format!("{epoch:020}-{}", self.next_segment);
        self.next_segment += 1;
        name
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

/// A table sorted by count: largest first, then by window and key.
fn by_count(a: &ResultRow, b: &ResultRow) -> std::cmp::Ordering {
    b.count
        .cmp(&a.count)
        .then_with(|| a.window.cmp(&b.window))
        .then_with(|| a.key.cmp(&b.key))
}

/// The rows of a complete table that differ from `last` (new counts, and rows gone, sorted);
/// `last` becomes the new table. Both sorted by (window, key), as the counts emit their tables
/// (but a top-k): a walk of both, with no hashing and no new handle on a key that was there
/// before. `None`, and `last` emptied, when the table is not strictly in that order.
fn complete_changes<'a>(
    last: &mut Vec<(RowKey, i64)>,
    table: impl Iterator<Item = RowRef<'a>>,
) -> Option<Vec<RowChange>> {
    let table: Vec<RowRef<'a>> = table.collect();
    if !table.is_sorted_by(|a, b| (a.window, a.key) < (b.window, b.key)) {
        last.clear();
        return None;
    }
    let mut now = Vec::with_capacity(table.len());
    let mut changes = Vec::new();
    let mut old = std::mem::take(last).into_iter().peekable();
    for r in table {
        // Rows of the last table before this one are gone.
        while let Some(((w, k), _)) = old.peek()
            && (*w, k).cmp(&(r.window, r.key)).is_lt()
        {
            let (key, _) = old.next().expect("peeked");
            changes.push((key, None));
        }
        let key = match old.next_if(|((w, k), _)| (*w, k) == (r.window, r.key)) {
            Some((key, count)) => {
                if count != r.count {
                    changes.push((key.clone(), Some(r.count)));
                }
                key
            }
            None => {
                let key = (r.window, r.key.clone());
                changes.push((key.clone(), Some(r.count)));
                key
            }
        };
        now.push((key, r.count));
    }
    changes.extend(old.map(|(key, _)| (key, None)));
    changes.sort_unstable();
    *last = now;
    Some(changes)
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

    fn commit(&mut self, epoch: Epoch) -> Result<(), OperatorError> {
        if self.keyed && self.mode != Some(OutputMode::Complete) {
            // Rows appended to a complete table (a sink whose inputs mix modes): the table
            // so far becomes batches again, as the appended rows will be.
            self.batches_from_table(epoch);
        }
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
        let complete = table_mode == TableMode::Replace;
        let mut changes = None;
        let batches: Vec<RecordBatch> = if self.sort_by_count {
            let mut rows = std::mem::take(&mut self.unsorted);
            if complete {
                // In the order they came (by window and key), before the sort by count.
                changes =
                    complete_changes(&mut self.complete_rows, rows.iter().map(ResultRow::as_ref));
            }
            rows.sort_by(by_count);
            vec![to_record_batch(schema, rows.iter().map(ResultRow::as_ref))]
        } else {
            if complete {
                changes = complete_changes(
                    &mut self.complete_rows,
                    self.pending
                        .iter()
                        .flat_map(|(b, from)| b.rows.range(*from, b.rows.len())),
                );
            }
            to_arrow(self.pending.drain(..).collect(), self.pending_rows)
        };
        self.pending_rows = 0;
        let trimmed = std::mem::take(&mut self.trimmed);
        let from_table = self.tables.commit_all(
            &self.table,
            table_mode,
            arrow_schema(schema),
            batches.clone(),
        );
        match changes {
            Some(changes) => self.follow_complete_commit(epoch, changes),
            None => {
                if complete {
                    // Not in (window, key) order: kept as its batches.
                    self.keyed = false;
                    self.complete_rows.clear();
                    self.complete_segments = KeyedSegments::default();
                }
                self.follow_commit(epoch, table_mode, &batches, from_table)?;
            }
        }
        let evicted = trimmed + from_table;
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

    /// The committed table's columns and mode, and its segments: a restart puts the table
    /// back as it was after the checkpoint's epoch, dropping rows of later epochs.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        let (Some(schema), Some(mode)) = (&self.schema, self.mode) else {
            w.u64(STATE_VERSION).bool(false);
            return Ok(w.finish());
        };
        let complete = mode == OutputMode::Complete && self.keyed;
        w.u64(if complete {
            COMPLETE_VERSION
        } else {
            STATE_VERSION
        })
        .bool(true)
        .bool(schema.windowed)
        .str(&schema.key_column)
        .str(&schema.value_column)
        .u64(mode as u64);
        if complete {
            w.u64(self.complete_rows.len() as u64);
            self.complete_segments.write_list(&mut w);
            return Ok(w.finish());
        }
        w.u64(self.dropped_from_oldest as u64)
            .u64(self.segments.len() as u64);
        for s in &self.segments {
            w.str(&s.name).u64(s.rows as u64);
        }
        Ok(w.finish())
    }

    /// Each batch of the table, as Arrow IPC the first time.
    fn snapshot_segments(&mut self) -> Result<Vec<StateSegment>, OperatorError> {
        if self.mode == Some(OutputMode::Complete) && self.keyed {
            return Ok(self.complete_segments.snapshot_segments());
        }
        let mut out = Vec::with_capacity(self.segments.len());
        for s in &mut self.segments {
            match s.unsaved.take() {
                Some(batch) => {
                    let mut ipc = Vec::new();
                    write_ipc(&batch.schema(), &[batch], &mut ipc).map_err(OperatorError::new)?;
                    out.push(StateSegment::new(s.name.clone(), ipc));
                }
                None => out.push(StateSegment::stored(s.name.clone())),
            }
        }
        Ok(out)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        self.restore_with_segments(state, SegmentData::new())
    }

    fn restore_with_segments(
        &mut self,
        state: &[u8],
        mut segments: SegmentData,
    ) -> Result<(), OperatorError> {
        let err = |e: String| OperatorError::new(format!("memory sink state: {e}"));
        let bad = |e: trendflow_core::codec::DecodeError| err(e.to_string());
        let mut r = StateReader::new(state);
        let version = r.u64().map_err(bad)?;
        if !(1..=COMPLETE_VERSION).contains(&version) {
            return Err(err(format!("unknown version {version}")));
        }
        self.clear_pending();
        self.trimmed = 0;
        self.segments.clear();
        self.dropped_from_oldest = 0;
        self.complete_rows.clear();
        self.complete_segments = KeyedSegments::default();
        self.keyed = version == COMPLETE_VERSION;
        if !r.bool().map_err(bad)? {
            return r.end().map_err(bad);
        }
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
        if version == COMPLETE_VERSION {
            let rows = r.u64().map_err(bad)?;
            let mut table = std::collections::BTreeMap::new();
            self.complete_segments =
                KeyedSegments::restore(&mut r, &mut segments, |key, count| match count {
                    Some(c) => {
                        table.insert(key, c);
                    }
                    None => {
                        table.remove(&key);
                    }
                })?;
            self.complete_rows = table.into_iter().collect();
            if self.complete_rows.len() as u64 != rows {
                return Err(err(format!(
                    "its segments hold {} rows, the state lists {rows}",
                    self.complete_rows.len()
                )));
            }
            self.restore_complete_table(&schema);
        } else if version == 1 {
            // The whole table in the state, from a build before segments: its batches become
            // segments, saved by the next checkpoint. Named after the bytes, so another
            // version 1 state restored later cannot give other bytes the same name.
            let ipc = r.bytes().map_err(bad)?;
            let tag = crc32(ipc);
            let (arrow, batches) = read_ipc(ipc).map_err(err)?;
            for (i, b) in batches.iter().enumerate() {
                self.segments.push_back(TableSegment {
                    name: format!("v1-{tag:08x}-{i}"),
                    rows: b.num_rows(),
                    unsaved: Some(b.clone()),
                });
            }
            self.tables
                .replace(&self.table, arrow, batches, self.max_rows);
        } else {
            self.dropped_from_oldest = r.u64().map_err(bad)? as usize;
            let mut batches = Vec::new();
            for _ in 0..r.len().map_err(bad)? {
                let name = r.str().map_err(bad)?.to_string();
                let rows = r.u64().map_err(bad)? as usize;
                let ipc = state_segment::take(&mut segments, &name).map_err(err)?;
                let (arrow, parts) = read_ipc(&ipc).map_err(err)?;
                let batch = datafusion::arrow::compute::concat_batches(&arrow, &parts)
                    .map_err(|e| err(e.to_string()))?;
                if batch.num_rows() != rows {
                    return Err(err(format!(
                        "segment {name} holds {} rows, the state lists {rows}",
                        batch.num_rows()
                    )));
                }
                batches.push(batch);
                self.segments.push_back(TableSegment {
                    name,
                    rows,
                    unsaved: None,
                });
            }
            if let Some(oldest) = batches.first_mut() {
                if self.dropped_from_oldest >= oldest.num_rows() {
                    return Err(err(format!(
                        "{} rows dropped from a segment of {}",
                        self.dropped_from_oldest,
                        oldest.num_rows()
                    )));
                }
                *oldest = oldest.slice(
                    self.dropped_from_oldest,
                    oldest.num_rows() - self.dropped_from_oldest,
                );
            }
            self.tables
                .replace(&self.table, arrow_schema(&schema), batches, self.max_rows);
        }
        self.schema = Some(schema);
        r.end().map_err(bad)
    }
}

/// 1: the table's IPC stream in the state; 2: its batches as segments, listed in the state.
const STATE_VERSION: u64 = 2;
/// A complete-mode table: its rows' changes from epoch to epoch as segments
/// (`trendflow_core::keyed_segments`), listed in the state after the number of rows.
const COMPLETE_VERSION: u64 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::metrics::{Metrics, names};
    use trendflow_core::state_segment::SegmentStore;

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

    /// A checkpoint of `sink` kept in `store`: its state, and the segments it lists.
    fn checkpoint(sink: &mut MemorySink, store: &mut SegmentStore) -> (Vec<u8>, SegmentData) {
        let state = sink.snapshot().unwrap();
        (state, store.keep(sink.snapshot_segments().unwrap()))
    }

    /// `n` unwindowed append rows, `#e<epoch>-<i>`.
    fn epoch_rows(epoch: Epoch, n: usize) -> Batch {
        let keys: Vec<String> = (0..n).map(|i| format!("#e{epoch}-{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        append(epoch, &keys)
    }

    #[test]
    fn a_sink_restored_at_every_epoch_keeps_the_table_of_one_never_restored() {
        // Epochs of 1 to 7 rows into a table of 40: rows dropped from the oldest segment,
        // small segments merged. One sink runs through; the other is checkpointed and
        // replaced by its restored copy after every epoch.
        let reference_tables = MemoryTables::new();
        let mut reference = MemorySink::new("t", reference_tables.clone(), Some(40), false);
        let mut store = SegmentStore::default();
        let mut tables = MemoryTables::new();
        let mut sink = MemorySink::new("t", tables.clone(), Some(40), false);
        let mut most_segments = 0;
        for epoch in 0..80u64 {
            let batch = epoch_rows(epoch, 1 + (epoch as usize * 5) % 7);
            for s in [&mut reference, &mut sink] {
                s.write(&batch).unwrap();
                s.commit(epoch).unwrap();
            }
            let (state, segments) = checkpoint(&mut sink, &mut store);
            most_segments = most_segments.max(segments.len());
            tables = MemoryTables::new();
            sink = MemorySink::new("t", tables.clone(), Some(40), false);
            sink.restore_with_segments(&state, segments).unwrap();
            assert_eq!(
                keys_of(&tables),
                keys_of(&reference_tables),
                "epoch {epoch}"
            );
        }
        assert_eq!(tables.row_count("t"), Some(40));
        // Newer segments hold fewer rows than older ones (counting rows dropped from the
        // oldest, at most 40 more): at most log2(80) + 1 of them.
        assert!((2..=7).contains(&most_segments), "{most_segments} segments");
    }

    #[test]
    fn small_epochs_make_few_segments_and_large_ones_are_not_merged() {
        let mut store = SegmentStore::default();
        let mut sink = MemorySink::new("t", MemoryTables::new(), None, false);
        for epoch in 0..3000u64 {
            sink.write(&epoch_rows(epoch, 50)).unwrap();
            sink.commit(epoch).unwrap();
        }
        let (_, segments) = checkpoint(&mut sink, &mut store);
        // Epochs of 50 rows merge into segments of 100, 200... 51,200 rows; two of 51,200
        // would make more than 65,536 and stay apart. 150,000 rows: two of 51,200, then
        // 47,600 = 50 x 0b1110111000, one segment per bit set: 8.
        assert_eq!(segments.len(), 8);
    }

    /// A complete table of unwindowed rows, in key order (as the counts emit them).
    fn complete(epoch: Epoch, rows: &[(String, i64)]) -> Batch {
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(RowSchema::word_count(false)),
            mode: OutputMode::Complete,
            epoch,
            rows: rows
                .iter()
                .map(|(k, c)| ResultRow {
                    window: None,
                    key: k.as_str().into(),
                    count: *c,
                })
                .collect(),
        }))
    }

    /// The rows of table `t`, in table order.
    fn rows_of(tables: &MemoryTables) -> Vec<(String, i64)> {
        use datafusion::arrow::array::{Array, Int64Array};
        let ipc = tables.export("t").unwrap().unwrap();
        let reader =
            datafusion::arrow::ipc::reader::StreamReader::try_new(ipc.as_slice(), None).unwrap();
        let mut counts = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let col = batch.column_by_name("count").unwrap();
            let col = col.as_any().downcast_ref::<Int64Array>().unwrap();
            counts.extend((0..col.len()).map(|i| col.value(i)));
        }
        keys_of(tables).into_iter().zip(counts).collect()
    }

    /// Epoch `epoch`'s complete table: keys come and go, a fifth of the counts change.
    fn complete_table(epoch: u64) -> Vec<(String, i64)> {
        (0..120u64)
            .filter(|i| !(i + epoch).is_multiple_of(7))
            .map(|i| (format!("#k{i:03}"), (i % 13 + (epoch + i % 5) / 5) as i64))
            .collect()
    }

    /// Rows in the segments given with their bytes (not those listed by name only).
    fn rows_written(listed: &[StateSegment]) -> Vec<usize> {
        listed
            .iter()
            .filter_map(|s| s.data.as_ref())
            .map(|d| {
                let mut r = StateReader::new(d);
                r.u64().unwrap();
                r.len().unwrap()
            })
            .collect()
    }

    #[test]
    fn a_complete_table_restored_at_every_epoch_is_the_table_of_one_never_restored() {
        for sort_by_count in [false, true] {
            for bound in [None, Some(50)] {
                let (reference, restored) = (MemoryTables::new(), MemoryTables::new());
                let mut never = MemorySink::new("t", reference.clone(), bound, sort_by_count);
                let mut sink = MemorySink::new("t", restored.clone(), bound, sort_by_count);
                let mut store = SegmentStore::default();
                for epoch in 0..60 {
                    let table = complete_table(epoch);
                    for s in [&mut never, &mut sink] {
                        s.write(&complete(epoch, &table)).unwrap();
                        s.commit(epoch).unwrap();
                    }
                    let (state, listed) = checkpoint(&mut sink, &mut store);
                    sink = MemorySink::new("t", restored.clone(), bound, sort_by_count);
                    sink.restore_with_segments(&state, listed).unwrap();
                    assert_eq!(
                        rows_of(&restored),
                        rows_of(&reference),
                        "sorted {sort_by_count}, bound {bound:?}, epoch {epoch}"
                    );
                }
            }
        }
    }

    /// Windowed rows of epoch `epoch` in `mode`: each window's rows largest count first, as a
    /// top-k gives them, or in (window, key) order.
    fn windowed(epoch: Epoch, mode: OutputMode, top_k_order: bool) -> Batch {
        let mut rows: Vec<ResultRow> = (0..4i64)
            .flat_map(|w| {
                (0..6i64).map(move |i| ResultRow {
                    window: Some(trendflow_core::Window {
                        start: w * 10,
                        end: w * 10 + 10,
                    }),
                    key: format!("#k{i}").into(),
                    count: (i * 7 + w + epoch as i64 / 3) % 11,
                })
            })
            .collect();
        if top_k_order {
            rows.sort_by(|a, b| (a.window, b.count, &a.key).cmp(&(b.window, a.count, &b.key)));
        }
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(RowSchema::word_count(true)),
            mode,
            epoch,
            rows: rows.into(),
        }))
    }

    #[test]
    fn a_complete_table_out_of_key_order_or_appended_to_is_restored_as_it_was() {
        for bound in [None, Some(10)] {
            let (reference, restored) = (MemoryTables::new(), MemoryTables::new());
            let mut never = MemorySink::new("t", reference.clone(), bound, false);
            let mut sink = MemorySink::new("t", restored.clone(), bound, false);
            let mut store = SegmentStore::default();
            for epoch in 0..12 {
                // Tables in top-k order (kept as batches), tables in key order (kept as
                // rows), and rows appended to a complete table (a sink with inputs in both
                // modes).
                let batch = match epoch % 4 {
                    0 | 1 => windowed(epoch, OutputMode::Complete, true),
                    2 => windowed(epoch, OutputMode::Complete, false),
                    _ => windowed(epoch, OutputMode::Append, false),
                };
                for s in [&mut never, &mut sink] {
                    s.write(&batch).unwrap();
                    s.commit(epoch).unwrap();
                }
                let (state, listed) = checkpoint(&mut sink, &mut store);
                sink = MemorySink::new("t", restored.clone(), bound, false);
                sink.restore_with_segments(&state, listed).unwrap();
                assert_eq!(
                    rows_of(&restored),
                    rows_of(&reference),
                    "bound {bound:?}, epoch {epoch}"
                );
            }
        }
    }

    #[test]
    fn a_complete_checkpoint_writes_the_rows_that_changed_or_left() {
        let tables = MemoryTables::new();
        let mut sink = MemorySink::new("t", tables.clone(), None, true);
        let rows = |r: &[(&str, i64)]| -> Vec<(String, i64)> {
            r.iter().map(|(k, c)| (k.to_string(), *c)).collect()
        };
        let mut written = Vec::new();
        for (epoch, table) in [
            rows(&[("#a", 1), ("#b", 1), ("#c", 1)]),
            rows(&[("#a", 2), ("#b", 1), ("#c", 1)]),
            rows(&[("#a", 2), ("#b", 1)]),
            rows(&[("#a", 2), ("#b", 1)]),
        ]
        .into_iter()
        .enumerate()
        {
            sink.write(&complete(epoch as u64, &table)).unwrap();
            sink.commit(epoch as u64).unwrap();
            sink.snapshot().unwrap();
            written.push(rows_written(&sink.snapshot_segments().unwrap()));
        }
        // Every row; #a's new count; #c gone, merged with the one before; nothing.
        assert_eq!(written, [vec![3], vec![1], vec![2], vec![]]);
        assert_eq!(rows_of(&tables), rows(&[("#a", 2), ("#b", 1)]));
    }

    #[test]
    fn a_complete_table_checkpointed_as_batches_is_restored_and_saved_as_rows() {
        // Version 2 kept a complete table as its batches, as it keeps an append table.
        let tables = MemoryTables::new();
        let mut old = MemorySink::new("t", tables.clone(), None, false);
        let first = complete_table(0);
        old.write(&complete(0, &first)).unwrap();
        old.commit(0).unwrap();
        let schema = RowSchema::word_count(false);
        let mut w = StateWriter::new();
        w.u64(2)
            .bool(true)
            .bool(schema.windowed)
            .str(&schema.key_column)
            .str(&schema.value_column)
            .u64(OutputMode::Complete as u64)
            .u64(0)
            .u64(1)
            .str("00000000000000000000-0")
            .u64(first.len() as u64);
        let segments = SegmentData::from([(
            "00000000000000000000-0".to_string(),
            tables.export("t").unwrap().unwrap(),
        )]);
        let restored = MemoryTables::new();
        let mut sink = MemorySink::new("t", restored.clone(), None, false);
        sink.restore_with_segments(&w.finish(), segments).unwrap();
        assert_eq!(rows_of(&restored), first);
        let next = complete_table(1);
        sink.write(&complete(1, &next)).unwrap();
        sink.commit(1).unwrap();
        assert_eq!(rows_of(&restored), next);
        sink.snapshot().unwrap();
        let listed = sink.snapshot_segments().unwrap();
        assert_eq!(rows_written(&listed), [next.len()], "every row, once");
    }

    #[test]
    fn a_state_from_before_segments_is_restored_and_its_rows_saved_as_segments() {
        let tables = MemoryTables::new();
        let mut old = MemorySink::new("t", tables.clone(), None, false);
        old.write(&append(0, &["#a", "#b"])).unwrap();
        old.commit(0).unwrap();
        // Version 1: the whole table's IPC stream in the state.
        let schema = RowSchema::word_count(false);
        let mut w = StateWriter::new();
        w.u64(1)
            .bool(true)
            .bool(schema.windowed)
            .str(&schema.key_column)
            .str(&schema.value_column)
            .u64(OutputMode::Append as u64)
            .bytes(&tables.export("t").unwrap().unwrap());
        let restored = MemoryTables::new();
        let mut sink = MemorySink::new("t", restored.clone(), None, false);
        sink.restore(&w.finish()).unwrap();
        assert_eq!(keys_of(&restored), ["#a", "#b"]);
        let segments = sink.snapshot_segments().unwrap();
        assert!(!segments.is_empty() && segments.iter().all(|s| s.data.is_some()));
        sink.write(&append(1, &["#c"])).unwrap();
        sink.commit(1).unwrap();
        assert_eq!(keys_of(&restored), ["#a", "#b", "#c"]);
    }

    #[test]
    fn a_missing_segment_is_an_error_that_names_it() {
        let mut store = SegmentStore::default();
        let mut sink = MemorySink::new("t", MemoryTables::new(), None, false);
        sink.write(&append(0, &["#a"])).unwrap();
        sink.commit(0).unwrap();
        let (state, _) = checkpoint(&mut sink, &mut store);
        let mut copy = MemorySink::new("t", MemoryTables::new(), None, false);
        let err = copy
            .restore_with_segments(&state, SegmentData::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("segment 00000000000000000000-0 is missing"),
            "{err}"
        );
    }
}
