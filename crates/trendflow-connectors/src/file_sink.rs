//! The file sink: result tables as CSV or JSON lines.
//!
//! Two layouts. `table` keeps the file equal to the current result table, sorted by window
//! and key. In complete and update modes the table is kept in memory and the file rewritten at
//! each commit through a temporary file and a rename, so a reader never sees half a table. In
//! append mode rows are final and each epoch's windows end after every earlier epoch's, so
//! the epoch's rows, sorted, are appended: the file stays sorted and nothing is kept in memory.
//! `log` appends each epoch's rows as they are emitted, whatever the mode.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trendflow_core::batch::OutputMode;
use trendflow_core::{Batch, Epoch, OperatorError, RowSchema, Sink, Window};

use trendflow_core::codec::{StateReader, StateWriter};

use crate::table_format::{CsvWriter, csv_header, json_row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    JsonLines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Table,
    Log,
}

#[derive(Debug, Clone)]
pub struct FileSinkOptions {
    pub path: PathBuf,
    pub format: FileFormat,
    pub layout: Layout,
    /// The columns, when known before the first rows (so an empty table still has its header).
    pub schema: Option<Arc<RowSchema>>,
    /// Window bounds in this zone, with their offset (UTC, `Z`, when `None`).
    pub time_zone: Option<jiff::tz::TimeZone>,
}

/// The file sink.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, ResultRow, RowBatch, RowSchema, Sink, batch::OutputMode};
/// use trendflow_connectors::{FileFormat, FileSink, FileSinkOptions, file_sink::Layout};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("q1.csv");
/// let mut sink = FileSink::new(FileSinkOptions { path: path.clone(), format: FileFormat::Csv, layout: Layout::Table, schema: None, time_zone: None });
/// let schema = Arc::new(RowSchema { windowed: false, key_column: "word".into(), value_column: "count".into() });
/// let rows = vec![ResultRow { window: None, key: "#b".into(), count: 1 }, ResultRow { window: None, key: "#a".into(), count: 2 }];
/// sink.write(&Batch::Rows(Arc::new(RowBatch { schema, mode: OutputMode::Complete, epoch: 0, rows }))).unwrap();
/// sink.commit(0).unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "word,count\n#a,2\n#b,1\n");
/// ```
pub struct FileSink {
    options: FileSinkOptions,
    schema: Option<Arc<RowSchema>>,
    table: BTreeMap<(Option<Window>, Arc<str>), i64>,
    log_pending: String,
    /// Rows of the current epoch (append mode), sorted before they are written.
    epoch_rows: Vec<trendflow_core::ResultRow>,
    append_only: bool,
    log_started: bool,
    dirty: bool,
    /// Length of the file after the last commit (appending layouts): a restart truncates the
    /// file back to the length its checkpoint recorded, dropping rows of epochs it replays.
    committed_len: u64,
}

impl FileSink {
    pub fn new(options: FileSinkOptions) -> Self {
        FileSink {
            schema: options.schema.clone(),
            options,
            table: BTreeMap::new(),
            log_pending: String::new(),
            epoch_rows: Vec::new(),
            append_only: false,
            log_started: false,
            dirty: true,
            committed_len: 0,
        }
    }

    fn render_table(&self) -> String {
        let mut out = String::new();
        let Some(schema) = &self.schema else {
            return out;
        };
        if self.options.format == FileFormat::Csv {
            out.push_str(&csv_header(schema));
            out.push('\n');
        }
        let mut csv = CsvWriter::in_zone(self.options.time_zone.clone());
        for ((window, key), count) in &self.table {
            let row = trendflow_core::ResultRow {
                window: *window,
                key: key.clone(),
                count: *count,
            };
            match self.options.format {
                FileFormat::Csv => csv.row(&mut out, &row),
                FileFormat::JsonLines => {
                    json_row(&mut out, schema, &row, self.options.time_zone.as_ref())
                }
            }
        }
        out
    }

    fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(contents.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    fn flush_table(&mut self) -> Result<(), OperatorError> {
        if !self.dirty {
            return Ok(());
        }
        let text = self.render_table();
        Self::write_atomically(&self.options.path, &text).map_err(|e| {
            OperatorError::new(format!("writing {}: {e}", self.options.path.display()))
        })?;
        self.dirty = false;
        Ok(())
    }

    fn flush_log(&mut self) -> Result<(), OperatorError> {
        let err = |e: std::io::Error| {
            OperatorError::new(format!("writing {}: {e}", self.options.path.display()))
        };
        if !self.log_started {
            if let Some(dir) = self
                .options
                .path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            // A table starts anew (an old file is a previous run's table); a log goes on.
            let restart_table = self.options.layout == Layout::Table;
            let fresh = restart_table || !self.options.path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(!restart_table)
                .write(true)
                .truncate(restart_table)
                .open(&self.options.path)
                .map_err(err)?;
            if fresh
                && self.options.format == FileFormat::Csv
                && let Some(s) = &self.schema
            {
                writeln!(f, "{}", csv_header(s)).map_err(err)?;
            }
            self.log_started = true;
        }
        if !self.log_pending.is_empty() {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.options.path)
                .map_err(err)?;
            f.write_all(self.log_pending.as_bytes()).map_err(err)?;
            f.sync_data().map_err(err)?;
            self.log_pending.clear();
        }
        self.committed_len = std::fs::metadata(&self.options.path).map_err(err)?.len();
        Ok(())
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        let Batch::Rows(rows) = batch else {
            return Err(OperatorError::new(format!(
                "the file sink takes result rows, got {}",
                batch.kind()
            )));
        };
        self.schema.get_or_insert_with(|| rows.schema.clone());
        match self.options.layout {
            Layout::Table if rows.mode == OutputMode::Append => {
                self.append_only = true;
                self.epoch_rows.extend(rows.rows.iter().cloned());
            }
            Layout::Table => {
                if rows.mode == OutputMode::Complete {
                    self.table.clear();
                }
                for r in &rows.rows {
                    self.table.insert((r.window, r.key.clone()), r.count);
                }
                self.dirty = true;
            }
            Layout::Log => self.epoch_rows.extend(rows.rows.iter().cloned()),
        }
        Ok(())
    }

    fn commit(&mut self, _epoch: Epoch) -> Result<(), OperatorError> {
        if self.options.layout == Layout::Table && !self.append_only {
            return self.flush_table();
        }
        let mut rows = std::mem::take(&mut self.epoch_rows);
        if self.options.layout == Layout::Table {
            // Windows of this epoch end after all earlier ones: sorted, they extend the table.
            rows.sort_unstable_by(|a, b| a.window.cmp(&b.window).then_with(|| a.key.cmp(&b.key)));
        }
        let mut csv = CsvWriter::in_zone(self.options.time_zone.clone());
        for r in &rows {
            match (self.options.format, &self.schema) {
                (FileFormat::Csv, _) => csv.row(&mut self.log_pending, r),
                (FileFormat::JsonLines, Some(schema)) => json_row(
                    &mut self.log_pending,
                    schema,
                    r,
                    self.options.time_zone.as_ref(),
                ),
                (FileFormat::JsonLines, None) => {}
            }
        }
        self.flush_log()
    }

    fn finish(&mut self) -> Result<(), OperatorError> {
        // A run with no epoch still leaves the (empty) table with its header, when known.
        if self.options.layout == Layout::Table && !self.append_only {
            self.flush_table()
        } else {
            self.commit(Epoch::MAX)
        }
    }

    fn state_signature(&self) -> Option<String> {
        Some(format!(
            "file sink v1 {} {:?} {:?}",
            self.options.path.display(),
            self.options.format,
            self.options.layout
        ))
    }

    /// Appending layouts: the committed length. Rewritten tables: the table itself.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(1)
            .bool(self.append_only)
            .bool(self.log_started)
            .u64(self.committed_len)
            .u64(self.table.len() as u64);
        for ((window, key), count) in &self.table {
            w.opt_i64(window.map(|w| w.start))
                .opt_i64(window.map(|w| w.end))
                .str(key)
                .i64(*count);
        }
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e: trendflow_core::codec::DecodeError| {
            OperatorError::new(format!("file sink state: {e}"))
        };
        let mut r = StateReader::new(state);
        if r.u64().map_err(bad)? != 1 {
            return Err(OperatorError::new("file sink state: unknown version"));
        }
        self.append_only = r.bool().map_err(bad)?;
        self.log_started = r.bool().map_err(bad)?;
        self.committed_len = r.u64().map_err(bad)?;
        self.table.clear();
        for _ in 0..r.u64().map_err(bad)? {
            let start = r.opt_i64().map_err(bad)?;
            let end = r.opt_i64().map_err(bad)?;
            let window = start.zip(end).map(|(start, end)| Window { start, end });
            let key: Arc<str> = r.str().map_err(bad)?.into();
            self.table.insert((window, key), r.i64().map_err(bad)?);
        }
        r.end().map_err(bad)?;
        self.epoch_rows.clear();
        self.log_pending.clear();
        self.dirty = true;
        let appending = self.options.layout == Layout::Log || self.append_only;
        if appending && self.log_started {
            let path = &self.options.path;
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if len < self.committed_len {
                return Err(OperatorError::new(format!(
                    "{} is shorter ({len} bytes) than at its checkpoint ({} bytes): it was changed outside trendflow",
                    path.display(),
                    self.committed_len
                )));
            }
            // Output of epochs after the checkpoint is written again by their replay.
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| {
                    f.set_len(self.committed_len)?;
                    f.sync_all()
                })
                .map_err(|e| OperatorError::new(format!("truncating {}: {e}", path.display())))?;
        }
        Ok(())
    }
}
