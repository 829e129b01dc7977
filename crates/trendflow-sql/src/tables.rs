//! Memory tables: named Arrow tables, replaced (complete mode) or appended to (append and
//! update modes) at each epoch commit, queried with DataFusion.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use trendflow_core::{RowRef, RowSchema};

/// How a commit changes a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMode {
    Replace,
    Append,
}

#[derive(Debug, Clone)]
struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Oldest rows are dropped past this many (append mode), so a long run stays bounded.
    max_rows: Option<usize>,
}

/// The memory tables of a pipeline. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct MemoryTables {
    inner: Arc<RwLock<BTreeMap<String, Table>>>,
}

/// The Arrow schema of a result table. Windowed tables have Spark's `window` struct
/// (`start`, `end` timestamps, UTC) before the key and the count.
pub fn arrow_schema(schema: &RowSchema) -> SchemaRef {
    let mut fields = Vec::new();
    if schema.windowed {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        fields.push(Field::new(
            "window",
            DataType::Struct(Fields::from(vec![
                Field::new("start", ts.clone(), true),
                Field::new("end", ts, true),
            ])),
            true,
        ));
    }
    fields.push(Field::new(&*schema.key_column, DataType::Utf8, true));
    fields.push(Field::new(&*schema.value_column, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Converts result rows to an Arrow batch of [`arrow_schema`].
///
/// One pass over the rows fills every column's buffer, each allocated once at its size (the
/// key bytes are counted first, from the keys' lengths, without reading the keys). Built by a
/// builder per column (five passes and a call per key), converting the 0.68M rows at the end
/// of Q2 over 200k tweets took 10.4-17.5 ms on two threads; this way 7.8-9.8 ms.
pub fn to_record_batch<'a>(
    schema: &RowSchema,
    rows: impl ExactSizeIterator<Item = RowRef<'a>> + Clone,
) -> RecordBatch {
    let arrow = arrow_schema(schema);
    let n = rows.len();
    let key_bytes: usize = rows.clone().map(|r| r.key.len()).sum();
    let offset_of =
        |at: usize| i32::try_from(at).expect("a batch's keys hold less than 2 GB of text");
    let mut offsets: Vec<i32> = Vec::with_capacity(n + 1);
    let mut bytes: Vec<u8> = Vec::with_capacity(key_bytes);
    let mut counts: Vec<i64> = Vec::with_capacity(n);
    let windowed = schema.windowed;
    let (mut starts, mut ends): (Vec<i64>, Vec<i64>) = if windowed {
        (Vec::with_capacity(n), Vec::with_capacity(n))
    } else {
        (Vec::new(), Vec::new())
    };
    offsets.push(0);
    for r in rows {
        if windowed {
            let w = r
                .window
                .unwrap_or(trendflow_core::Window { start: 0, end: 0 });
            starts.push(w.start * 1000);
            ends.push(w.end * 1000);
        }
        bytes.extend_from_slice(r.key.as_bytes());
        offsets.push(offset_of(bytes.len()));
        counts.push(r.count);
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    if windowed {
        let starts = TimestampMicrosecondArray::new(starts.into(), None).with_timezone("UTC");
        let ends = TimestampMicrosecondArray::new(ends.into(), None).with_timezone("UTC");
        let DataType::Struct(fields) = arrow.field(0).data_type().clone() else {
            unreachable!()
        };
        columns.push(Arc::new(StructArray::new(
            fields,
            vec![Arc::new(starts), Arc::new(ends)],
            None,
        )));
    }
    // SAFETY: the offsets start at 0 and grow with each key appended, ending at the bytes'
    // length; every key is a `str`, so the bytes between two offsets are UTF-8.
    let keys = unsafe {
        StringArray::new_unchecked(
            OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
            Buffer::from_vec(bytes),
            None,
        )
    };
    columns.push(Arc::new(keys));
    columns.push(Arc::new(Int64Array::new(counts.into(), None)));
    RecordBatch::try_new(arrow, columns).expect("columns match the schema")
}

/// Appends an Arrow IPC stream of `batches` (schema first) to `out`.
pub fn write_ipc(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // Sized up front: a table of tens of MB in a buffer that grows would be copied, and held
    // twice, as it doubles. Its pages are mapped ahead of the writing
    // (trendflow_core::prefault), so the size is what the stream takes: the rows a batch
    // shows, not the buffers under it. The table keeps slices of its batches as it drops its
    // oldest rows; sized by their buffers, the room was 40 MB for Q2's 31 MB stream (3h/5min
    // windows) and 56 MB for 47 MB (24h/1min): mapped, and never written.
    let size = batches
        .iter()
        .flat_map(|b| b.columns())
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum::<usize>()
        // Each message's header and padding; short by a byte, the buffer would move whole.
        + 1024 * (batches.len() + 1)
        + (64 << 10);
    trendflow_core::prefault::filling(out, size, |out| {
        let mut w = StreamWriter::try_new(out, schema).map_err(|e| e.to_string())?;
        for b in batches {
            w.write(b).map_err(|e| e.to_string())?;
        }
        w.finish().map_err(|e| e.to_string())
    })
}

/// The schema and batches of an Arrow IPC stream.
pub fn read_ipc(ipc: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let reader =
        StreamReader::try_new(std::io::Cursor::new(ipc), None).map_err(|e| e.to_string())?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((schema, batches))
}

impl MemoryTables {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates (or resets) a table.
    pub fn create(&self, name: &str, schema: SchemaRef, max_rows: Option<usize>) {
        self.inner.write().unwrap().insert(
            name.to_string(),
            Table {
                schema,
                batches: Vec::new(),
                rows: 0,
                max_rows,
            },
        );
    }

    /// Applies one epoch's rows to a table; returns how many old rows were dropped to keep it
    /// within its bound.
    pub fn commit(&self, name: &str, mode: TableMode, batch: RecordBatch) -> usize {
        let schema = batch.schema();
        self.commit_all(name, mode, schema, vec![batch])
    }

    /// [`Self::commit`] for an epoch in several batches, applied at once (a query sees all of
    /// them or none).
    pub fn commit_all(
        &self,
        name: &str,
        mode: TableMode,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> usize {
        let mut tables = self.inner.write().unwrap();
        let t = tables.entry(name.to_string()).or_insert_with(|| Table {
            schema,
            batches: Vec::new(),
            rows: 0,
            max_rows: None,
        });
        if mode == TableMode::Replace {
            t.batches.clear();
            t.rows = 0;
        }
        for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
            t.rows += batch.num_rows();
            t.batches.push(batch);
        }
        let mut evicted = 0;
        if let Some(max) = t.max_rows {
            evicted = t.rows.saturating_sub(max);
            while t.rows > max {
                let excess = t.rows - max;
                let first = &t.batches[0];
                if first.num_rows() <= excess {
                    t.rows -= first.num_rows();
                    t.batches.remove(0);
                } else {
                    let mut rest = first.slice(excess, first.num_rows() - excess);
                    if rest.num_rows() < first.num_rows() / 2 {
                        // A slice keeps its batch's buffers alive: copy the rows still kept
                        // once they are the smaller part, so the evicted ones are freed.
                        if let Ok(copy) =
                            datafusion::arrow::compute::concat_batches(&rest.schema(), [&rest])
                        {
                            rest = copy;
                        }
                    }
                    t.batches[0] = rest;
                    t.rows -= excess;
                }
            }
        }
        evicted
    }

    /// A table's rows as an Arrow IPC stream (its schema first), for a checkpoint.
    pub fn export(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        Ok(self.export_into(name, &mut out)?.then_some(out))
    }

    /// Appends [`Self::export`]'s stream to `out`; false when there is no such table.
    pub fn export_into(&self, name: &str, out: &mut Vec<u8>) -> Result<bool, String> {
        let tables = self.inner.read().unwrap();
        let Some(t) = tables.get(name) else {
            return Ok(false);
        };
        write_ipc(&t.schema, &t.batches, out)?;
        Ok(true)
    }

    /// The batches of a table, oldest first (shared, not copied).
    pub fn batches(&self, name: &str) -> Option<Vec<RecordBatch>> {
        let tables = self.inner.read().unwrap();
        tables.get(name).map(|t| t.batches.clone())
    }

    /// Replaces a table's newest `n` batches with one batch of their rows, and returns it.
    pub fn merge_newest(&self, name: &str, n: usize) -> Result<RecordBatch, String> {
        let mut tables = self.inner.write().unwrap();
        let t = tables
            .get_mut(name)
            .ok_or_else(|| format!("no memory table `{name}`"))?;
        if n == 0 || n > t.batches.len() {
            return Err(format!(
                "table `{name}` has {} batches, not {n} to merge",
                t.batches.len()
            ));
        }
        let newest = t.batches.split_off(t.batches.len() - n);
        let merged = datafusion::arrow::compute::concat_batches(&t.schema, &newest)
            .map_err(|e| e.to_string())?;
        t.batches.push(merged.clone());
        Ok(merged)
    }

    /// Replaces a table with `batches` (a restored checkpoint's).
    pub fn replace(
        &self,
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        max_rows: Option<usize>,
    ) {
        let rows = batches.iter().map(|b| b.num_rows()).sum();
        self.inner.write().unwrap().insert(
            name.to_string(),
            Table {
                schema,
                batches,
                rows,
                max_rows,
            },
        );
    }

    /// Replaces a table with rows exported by [`Self::export`].
    pub fn import(&self, name: &str, ipc: &[u8], max_rows: Option<usize>) -> Result<(), String> {
        let (schema, batches) = read_ipc(ipc)?;
        self.replace(name, schema, batches, max_rows);
        Ok(())
    }

    pub fn names(&self) -> Vec<String> {
        self.inner.read().unwrap().keys().cloned().collect()
    }

    pub fn row_count(&self, name: &str) -> Option<usize> {
        self.inner.read().unwrap().get(name).map(|t| t.rows)
    }

    /// A DataFusion session with every table registered as it is now.
    pub fn session(&self) -> datafusion::error::Result<SessionContext> {
        let ctx = SessionContext::new();
        crate::functions::register(&ctx);
        for name in self.names() {
            if let Some(mem) = self.snapshot_table(&name)? {
                ctx.register_table(name.as_str(), Arc::new(mem))?;
            }
        }
        Ok(ctx)
    }

    /// One table as it is now, for a query (batches are shared, not copied).
    pub fn snapshot_table(&self, name: &str) -> datafusion::error::Result<Option<MemTable>> {
        let tables = self.inner.read().unwrap();
        let Some(t) = tables.get(name) else {
            return Ok(None);
        };
        MemTable::try_new(t.schema.clone(), vec![t.batches.clone()]).map(Some)
    }

    /// Runs a query against the tables as they are now.
    pub async fn query(&self, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        Ok(self.query_with_schema(sql).await?.1)
    }

    /// Runs a query; also returns the result's schema, known even when no row comes back.
    pub async fn query_with_schema(
        &self,
        sql: &str,
    ) -> datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)> {
        let ctx = self.session()?;
        let df = ctx.sql(sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        Ok((schema, df.collect().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::{ResultRow, Rows, Window};

    fn rows(n: i64) -> Rows {
        (0..n)
            .map(|i| ResultRow {
                window: Some(Window {
                    start: i * 1000,
                    end: i * 1000 + 5000,
                }),
                key: format!("#k{i}").into(),
                count: i,
            })
            .collect()
    }

    #[test]
    fn every_column_holds_its_rows_values() {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::TimestampMicrosecondType;
        let keys = ["#a", "", "#été", "#😀x", "#a"];
        let owned: Vec<ResultRow> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| ResultRow {
                window: Some(Window {
                    start: i as i64 * 60_000,
                    end: i as i64 * 60_000 + 300_000,
                }),
                key: (*k).into(),
                count: 10 - i as i64,
            })
            .collect();
        for windowed in [true, false] {
            let schema = RowSchema::word_count(windowed);
            let batch = to_record_batch(&schema, owned.iter().map(ResultRow::as_ref));
            assert_eq!(batch.num_rows(), keys.len());
            let words = batch.column(usize::from(windowed)).as_string::<i32>();
            let counts = batch
                .column(1 + usize::from(windowed))
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for (i, r) in owned.iter().enumerate() {
                assert_eq!(words.value(i), &*r.key);
                assert_eq!(counts.value(i), r.count);
            }
            assert_eq!(words.null_count() + counts.null_count(), 0);
            if windowed {
                let window = batch.column(0).as_struct();
                for (c, bound) in [(0, (|w| w.start) as fn(Window) -> i64), (1, |w| w.end)] {
                    let times = window.column(c).as_primitive::<TimestampMicrosecondType>();
                    let got: Vec<i64> = times.values().to_vec();
                    let want: Vec<i64> = owned
                        .iter()
                        .map(|r| bound(r.window.unwrap()) * 1000)
                        .collect();
                    assert_eq!(got, want);
                }
            }
        }
    }

    #[tokio::test]
    async fn windowed_table_has_sparks_schema_and_answers_sql() {
        let schema = RowSchema::word_count(true);
        let t = MemoryTables::new();
        t.create("data", arrow_schema(&schema), None);
        t.commit(
            "data",
            TableMode::Append,
            to_record_batch(&schema, rows(3).iter()),
        );
        t.commit(
            "data",
            TableMode::Append,
            to_record_batch(&schema, rows(2).iter()),
        );
        let out = t
            .query("select word, count, window.start as s from data where count > 0 order by word")
            .await
            .unwrap();
        let n: usize = out.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n, 3);
        let out = t.query("select sum(count) as c from data").await.unwrap();
        let c = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(c, 4);
    }

    #[test]
    fn replace_and_bound() {
        let schema = RowSchema::word_count(false);
        let t = MemoryTables::new();
        t.create("q", arrow_schema(&schema), Some(5));
        let evicted = t.commit(
            "q",
            TableMode::Append,
            to_record_batch(&schema, rows(4).iter()),
        );
        assert_eq!(evicted, 0);
        let evicted = t.commit(
            "q",
            TableMode::Append,
            to_record_batch(&schema, rows(4).iter()),
        );
        assert_eq!((evicted, t.row_count("q")), (3, Some(5)));
        t.commit(
            "q",
            TableMode::Replace,
            to_record_batch(&schema, rows(2).iter()),
        );
        assert_eq!(t.row_count("q"), Some(2));
    }
}
