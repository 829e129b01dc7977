//! The parquet sink: final result rows as a directory of parquet files, local or on S3, that
//! DataFusion, pyarrow, DuckDB or Spark read as one table.
//!
//! Rows are final in append mode only (a window's count once its window closed), so that is
//! the only mode taken, as for Spark's file sinks. Each epoch with rows becomes one file
//! (one per partition when partitioned by window date, Hive style: `window_date=2021-04-15/`),
//! named after the epoch: `part-00000000000000000042.parquet`. Why by epoch: after a crash the
//! pipeline replays the epochs after its checkpoint with the same rows, so a replayed epoch
//! writes the same name and replaces its file instead of adding a duplicate; the sink needs no
//! state of its own.
//!
//! Nothing half-written is ever visible. Locally a file is written under a hidden name
//! (`.part-….parquet.tmp`, which every reader skips), synced, then renamed; on S3 a file is one
//! `PUT`, which S3 makes visible whole or not at all. Files are published at the epoch's
//! commit, so a crash mid-epoch leaves nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use trendflow_core::batch::OutputMode;
use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::{Batch, Epoch, OperatorError, ResultRow, RowSchema, Sink};

use crate::io_runtime::IoRuntime;
use crate::storage::{Location, OpenedLocation, S3Options};

/// How files are grouped into directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioning {
    /// Every file in the output directory.
    None,
    /// `window_date=YYYY-MM-DD/` from the window's start (UTC), Hive style: readers add a
    /// `window_date` column and skip the days a query does not need.
    WindowDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    Zstd(i32),
    Snappy,
    Uncompressed,
}

#[derive(Debug, Clone)]
pub struct ParquetSinkOptions {
    pub location: Location,
    pub s3: S3Options,
    pub partitioning: Partitioning,
    pub compression: ParquetCompression,
    /// The columns, when known before the first rows.
    pub schema: Option<Arc<RowSchema>>,
}

/// The parquet sink.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, ResultRow, RowBatch, RowSchema, Sink, Window, batch::OutputMode};
/// use trendflow_connectors::parquet_sink::*;
/// use trendflow_connectors::storage::{Location, S3Options};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut sink = ParquetSink::new(ParquetSinkOptions {
///     location: Location::Local(dir.path().to_path_buf()),
///     s3: S3Options::default(),
///     partitioning: Partitioning::None,
///     compression: ParquetCompression::Zstd(3),
///     schema: None,
/// }, "out", &trendflow_core::metrics::Metrics::new());
/// let schema = Arc::new(RowSchema::word_count(true));
/// let rows = vec![ResultRow { window: Some(Window { start: 0, end: 3_600_000 }), key: "#a".into(), count: 2 }];
/// sink.write(&Batch::Rows(Arc::new(RowBatch { schema, mode: OutputMode::Append, epoch: 7, rows: rows.into() }))).unwrap();
/// sink.commit(7).unwrap();
/// assert!(dir.path().join("part-00000000000000000007.parquet").exists());
/// ```
pub struct ParquetSink {
    options: ParquetSinkOptions,
    schema: Option<Arc<RowSchema>>,
    rows: Vec<ResultRow>,
    /// Opened at the first commit, so building a pipeline touches nothing.
    opened: Option<OpenedLocation>,
    io: Option<IoRuntime>,
    files_written: Counter,
    rows_written: Counter,
}

/// The file name of an epoch's part.
pub fn part_name(epoch: Epoch) -> String {
    format!("part-{epoch:020}.parquet")
}

impl ParquetSink {
    pub fn new(options: ParquetSinkOptions, component: &str, metrics: &Metrics) -> Self {
        ParquetSink {
            schema: options.schema.clone(),
            options,
            rows: Vec::new(),
            opened: None,
            io: None,
            files_written: metrics.counter(names::SINK_FILES_WRITTEN, component),
            rows_written: metrics.counter(names::SINK_ROWS_WRITTEN, component),
        }
    }

    fn properties(&self) -> WriterProperties {
        let compression = match self.options.compression {
            ParquetCompression::Zstd(level) => {
                Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
            }
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
        };
        WriterProperties::builder()
            .set_compression(compression)
            .set_created_by(format!("trendflow {}", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// One parquet file holding `rows`.
    fn encode(&self, schema: &RowSchema, rows: &[ResultRow]) -> Result<Vec<u8>, OperatorError> {
        let batch =
            trendflow_sql::tables::to_record_batch(schema, rows.iter().map(ResultRow::as_ref));
        let mut out = Vec::new();
        let err = |e: datafusion::parquet::errors::ParquetError| {
            OperatorError::new(format!(
                "encoding parquet for {}: {e}",
                self.options.location.describe()
            ))
        };
        let mut writer =
            ArrowWriter::try_new(&mut out, batch.schema(), Some(self.properties())).map_err(err)?;
        writer.write(&batch).map_err(err)?;
        writer.close().map_err(err)?;
        Ok(out)
    }

    fn partition_of(&self, row: &ResultRow) -> String {
        match self.options.partitioning {
            Partitioning::None => String::new(),
            Partitioning::WindowDate => {
                let start = row.window.map_or(0, |w| w.start);
                let day = trendflow_core::time::format_iso_utc(start);
                format!("window_date={}", &day[..10.min(day.len())])
            }
        }
    }

    fn publish(&mut self, relative: &str, data: Vec<u8>) -> Result<(), OperatorError> {
        match &self.options.location {
            Location::Local(dir) => {
                let path = dir.join(relative);
                let err = |e: std::io::Error| {
                    OperatorError::new(format!("writing {}: {e}", path.display()))
                };
                let parent = path.parent().unwrap_or(dir);
                std::fs::create_dir_all(parent).map_err(err)?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = parent.join(format!(".{name}.tmp"));
                let mut f = std::fs::File::create(&tmp).map_err(err)?;
                f.write_all(&data).map_err(err)?;
                f.sync_all().map_err(err)?;
                std::fs::rename(&tmp, &path).map_err(err)?;
                // The rename itself is durable once the directory is synced.
                if let Ok(d) = std::fs::File::open(parent) {
                    let _ = d.sync_all();
                }
                Ok(())
            }
            Location::S3 { .. } => {
                if self.opened.is_none() {
                    let o = OpenedLocation::open(&self.options.location, &self.options.s3)
                        .map_err(|e| OperatorError::new(format!("parquet sink {e}")))?;
                    self.opened = Some(o);
                    self.io = Some(IoRuntime::new("parquet-sink")?);
                }
                let opened = self.opened.clone().expect("opened above");
                let path = opened.path(relative);
                let describe = format!("{}/{relative}", self.options.location.describe());
                self.io.as_ref().expect("with the store").run(async move {
                    use object_store::ObjectStoreExt;
                    opened
                        .store
                        .put(&path, data.into())
                        .await
                        .map(|_| ())
                        .map_err(|e| OperatorError::new(format!("writing {describe}: {e}")))
                })?
            }
        }
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        let Batch::Rows(rows) = batch else {
            return Err(OperatorError::new(format!(
                "the parquet sink takes result rows, got {}",
                batch.kind()
            )));
        };
        if rows.mode != OutputMode::Append {
            return Err(OperatorError::new(format!(
                "the parquet sink writes final rows only (output_mode: append), got {:?} rows",
                rows.mode
            )));
        }
        self.schema.get_or_insert_with(|| rows.schema.clone());
        self.rows.extend(rows.rows.iter().map(|r| r.to_owned()));
        Ok(())
    }

    fn commit(&mut self, epoch: Epoch) -> Result<(), OperatorError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by(|a, b| a.window.cmp(&b.window).then_with(|| a.key.cmp(&b.key)));
        let mut parts: BTreeMap<String, Vec<ResultRow>> = BTreeMap::new();
        for row in rows {
            parts.entry(self.partition_of(&row)).or_default().push(row);
        }
        for (partition, rows) in parts {
            let data = self.encode(&schema, &rows)?;
            let relative = if partition.is_empty() {
                part_name(epoch)
            } else {
                format!("{partition}/{}", part_name(epoch))
            };
            self.publish(&relative, data)?;
            self.files_written.inc();
            self.rows_written.add(rows.len() as u64);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OperatorError> {
        // Rows written after the last barrier belong to no epoch: the runtime commits every
        // epoch before finishing, so there are none.
        self.rows.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::{RowBatch, Window};

    fn rows(epoch: Epoch, rows: Vec<(i64, &str, i64)>) -> Batch {
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(RowSchema::word_count(true)),
            mode: OutputMode::Append,
            epoch,
            rows: rows
                .into_iter()
                .map(|(start, key, count)| ResultRow {
                    window: Some(Window {
                        start,
                        end: start + 3_600_000,
                    }),
                    key: key.into(),
                    count,
                })
                .collect(),
        }))
    }

    fn sink(dir: &std::path::Path, partitioning: Partitioning) -> ParquetSink {
        ParquetSink::new(
            ParquetSinkOptions {
                location: Location::Local(dir.to_path_buf()),
                s3: S3Options::default(),
                partitioning,
                compression: ParquetCompression::Zstd(3),
                schema: None,
            },
            "out",
            &Metrics::new(),
        )
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in walk(dir) {
            out.push(e.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
        }
        out.sort();
        out
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn one_file_per_epoch_and_day_nothing_before_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), Partitioning::WindowDate);
        let day = 86_400_000;
        s.write(&rows(3, vec![(0, "#a", 1), (day, "#b", 2)]))
            .unwrap();
        assert!(files(dir.path()).is_empty());
        s.commit(3).unwrap();
        s.commit(4).unwrap(); // nothing to write
        assert_eq!(
            files(dir.path()),
            vec![
                "window_date=1970-01-01/part-00000000000000000003.parquet",
                "window_date=1970-01-02/part-00000000000000000003.parquet"
            ]
        );
    }

    #[test]
    fn a_replayed_epoch_replaces_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), Partitioning::None);
        s.write(&rows(5, vec![(0, "#a", 1)])).unwrap();
        s.commit(5).unwrap();
        let first = std::fs::read(dir.path().join(part_name(5))).unwrap();
        let mut again = sink(dir.path(), Partitioning::None);
        again.write(&rows(5, vec![(0, "#a", 1)])).unwrap();
        again.commit(5).unwrap();
        assert_eq!(files(dir.path()), vec![part_name(5)]);
        assert_eq!(std::fs::read(dir.path().join(part_name(5))).unwrap(), first);
    }

    #[test]
    fn other_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), Partitioning::None);
        let Batch::Rows(r) = rows(0, vec![(0, "#a", 1)]) else {
            unreachable!()
        };
        let mut r = (*r).clone();
        r.mode = OutputMode::Update;
        let e = s.write(&Batch::Rows(Arc::new(r))).unwrap_err();
        assert!(e.to_string().contains("append"), "{e}");
    }
}
