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
/// let mut sink = FileSink::new(FileSinkOptions { path: path.clone(), format: FileFormat::Csv, layout: Layout::Table, schema: None });
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
        let mut csv = CsvWriter::default();
        for ((window, key), count) in &self.table {
            let row = trendflow_core::ResultRow {
                window: *window,
                key: key.clone(),
                count: *count,
            };
            match self.options.format {
                FileFormat::Csv => csv.row(&mut out, &row),
                FileFormat::JsonLines => json_row(&mut out, schema, &row),
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
            let fresh = !self.options.path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
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
        let mut csv = CsvWriter::default();
        for r in &rows {
            match (self.options.format, &self.schema) {
                (FileFormat::Csv, _) => csv.row(&mut self.log_pending, r),
                (FileFormat::JsonLines, Some(schema)) => json_row(&mut self.log_pending, schema, r),
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
}
