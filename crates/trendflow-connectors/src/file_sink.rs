//! The file sink: result tables as CSV or JSON lines.
//!
//! Two layouts. `table` keeps the file equal to the current result table, sorted by window
//! and key. In complete and update modes the table is kept in memory and the file rewritten at
//! each commit through a temporary file and a rename, so a reader never sees half a table. In
//! append mode rows are final and each epoch's windows end after every earlier epoch's, so
//! the epoch's rows, sorted, are appended: the file stays sorted. With one input (whose rows
//! come in window order, part after part: see `Operator::emit_more`) they are written as they
//! arrive, a few megabytes at a time, so an epoch of millions of rows is never held whole;
//! with several inputs the epoch's rows are held and sorted at the commit.
//! `log` appends each epoch's rows as they are emitted, whatever the mode.
//!
//! Bytes past the last commit's length belong to an epoch not committed yet: a restart from a
//! checkpoint truncates them before its replay writes them again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trendflow_core::batch::OutputMode;
use trendflow_core::{Batch, Epoch, OperatorError, RowRef, RowSchema, Rows, Sink, Window};

use trendflow_core::codec::{StateReader, StateWriter};

use crate::table_format::{CsvWriter, csv_header, json_row};
use crate::two_threads;

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
    /// The rows of an epoch arrive in (window, key) order, batch after batch, each batch
    /// holding whole windows (true with one input): append-mode rows are then written as
    /// they come instead of being held for a sort.
    pub ordered_input: bool,
}

fn write_error(path: &Path, e: std::io::Error) -> OperatorError {
    OperatorError::new(format!("writing {}: {e}", path.display()))
}

/// Formatted rows of the current epoch written to the file (without sync) past this size.
const PENDING_BYTES: usize = 8 << 20;

/// Asks the kernel to start writing the file's dirty pages to disk now, without waiting: the
/// commit's sync then waits for the last ones only, not for all of an epoch's text (255 MB in
/// Q2's flush with 24h/1min windows; this disk writes ~1.5 GB/s).
fn start_writeback(f: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file. A
        // failure only means the commit's sync does all the work, so it is ignored.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

fn is_plain_file(f: &std::fs::File) -> bool {
    f.metadata().is_ok_and(|m| m.is_file())
}

/// The path a chain of symbolic links ends at (which may not exist yet), or `path` itself.
fn follow_links(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // As the kernel does, give up on a loop after 40 links.
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    path
}

/// One row as a line of `options.format`, appended to `out`.
fn format_row_into(
    options: &FileSinkOptions,
    schema: Option<&RowSchema>,
    csv: &mut CsvWriter,
    out: &mut String,
    r: RowRef<'_>,
) {
    match (options.format, schema) {
        (FileFormat::Csv, _) => csv.row(out, r),
        (FileFormat::JsonLines, Some(schema)) => {
            json_row(out, schema, r, options.time_zone.as_ref())
        }
        (FileFormat::JsonLines, None) => {}
    }
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
/// let mut sink = FileSink::new(FileSinkOptions { path: path.clone(), format: FileFormat::Csv, layout: Layout::Table, schema: None, time_zone: None, ordered_input: true });
/// let schema = Arc::new(RowSchema::word_count(false));
/// let rows = vec![ResultRow { window: None, key: "#b".into(), count: 1 }, ResultRow { window: None, key: "#a".into(), count: 2 }];
/// sink.write(&Batch::Rows(Arc::new(RowBatch { schema, mode: OutputMode::Complete, epoch: 0, rows: rows.into() }))).unwrap();
/// sink.commit(0).unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "word,count\n#a,2\n#b,1\n");
/// ```
pub struct FileSink {
    options: FileSinkOptions,
    schema: Option<Arc<RowSchema>>,
    table: BTreeMap<(Option<Window>, Arc<str>), i64>,
    log_pending: String,
    /// Rows of the current epoch (append mode, unordered input), sorted before they are
    /// written.
    epoch_rows: Vec<trendflow_core::ResultRow>,
    /// Ordered input: the (window, key) of the last row of the epoch formatted so far.
    last_row: Option<(Option<Window>, Arc<str>)>,
    csv: CsvWriter,
    append_only: bool,
    /// Complete-mode input: every epoch brings the whole table, so the table is left out of
    /// the checkpoints (the file holds it as last committed, and the next epoch replaces it).
    complete: bool,
    log_started: bool,
    dirty: bool,
    /// Length of the file after the last commit (appending layouts): a restart truncates the
    /// file back to the length its checkpoint recorded, dropping rows of epochs it replays.
    committed_len: u64,
    /// The text of the second half of a large batch, formatted on another thread: the text
    /// still to write is `log_pending` then this. It is written from here, not appended to
    /// `log_pending` (a copy of 2 MB for each part of a large flush).
    second_half: String,
    /// Text of this epoch was written to the file before its commit (a large part, or
    /// `PENDING_BYTES` gathered): the commit must sync even when nothing is left pending.
    unsynced: bool,
    /// Syncs of the file at commits (what the tests check: a sync cannot be seen otherwise).
    syncs: u64,
}

impl FileSink {
    pub fn new(options: FileSinkOptions) -> Self {
        FileSink {
            csv: CsvWriter::in_zone(options.time_zone.clone()),
            schema: options.schema.clone(),
            options,
            table: BTreeMap::new(),
            log_pending: String::new(),
            epoch_rows: Vec::new(),
            last_row: None,
            append_only: false,
            complete: false,
            log_started: false,
            dirty: true,
            committed_len: 0,
            second_half: String::new(),
            unsynced: false,
            syncs: 0,
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
            let row = RowRef {
                window: *window,
                key,
                count: *count,
            };
            match self.options.format {
                FileFormat::Csv => csv.row(&mut out, row),
                FileFormat::JsonLines => {
                    json_row(&mut out, schema, row, self.options.time_zone.as_ref())
                }
            }
        }
        out
    }

    fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
        // A link is followed, not replaced; a device or a pipe (`/dev/null`, `/dev/stdout`)
        // is written in place: a rename over it would put a plain file in its place (as
        // root, in /dev).
        let resolved = follow_links(path);
        let path = resolved.as_path();
        if let Ok(m) = std::fs::metadata(path)
            && !m.is_file()
        {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            return f.write_all(contents.as_bytes());
        }
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
        std::fs::rename(&tmp, path)?;
        // The rename is durable before the checkpoint of this epoch is: a complete-mode table
        // is not in the checkpoint, and after a power loss the file must not be an older one.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }

    fn flush_table(&mut self) -> Result<(), OperatorError> {
        if !self.dirty {
            return Ok(());
        }
        let text = self.render_table();
        Self::write_atomically(&self.options.path, &text)
            .map_err(|e| write_error(&self.options.path, e))?;
        self.dirty = false;
        Ok(())
    }

    /// Appends the formatted rows to the file; `commit` also syncs and records the length.
    fn flush_log(&mut self) -> Result<(), OperatorError> {
        self.append_pending(true)?;
        self.committed_len = std::fs::metadata(&self.options.path)
            .map_err(|e| write_error(&self.options.path, e))?
            .len();
        Ok(())
    }

    fn append_pending(&mut self, sync: bool) -> Result<(), OperatorError> {
        let path = &self.options.path;
        let err = |e: std::io::Error| write_error(path, e);
        // The header and the text go through one opening of the file: a reader of a pipe
        // sees its end when the last writer closes it.
        let mut opened = None;
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
                self.unsynced = true;
            }
            self.log_started = true;
            opened = Some(f);
        }
        let pending = !self.log_pending.is_empty() || !self.second_half.is_empty();
        let must_sync = sync && self.unsynced;
        if !pending && !must_sync {
            return Ok(());
        }
        let mut f = match opened {
            Some(f) => f,
            None => std::fs::OpenOptions::new()
                .append(true)
                .open(&self.options.path)
                .map_err(err)?,
        };
        if pending {
            f.write_all(self.log_pending.as_bytes()).map_err(err)?;
            f.write_all(self.second_half.as_bytes()).map_err(err)?;
            self.log_pending.clear();
            self.second_half.clear();
        }
        if sync {
            // Everything written since the last commit, not only what was pending: a flush
            // writes its large parts as they come, and may leave nothing for the commit.
            match f.sync_data() {
                // A device or pipe (`/dev/null`) has nothing to sync.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !is_plain_file(&f) => {}
                r => r.map_err(err)?,
            }
            self.unsynced = false;
            self.syncs += 1;
        } else {
            self.unsynced = true;
            start_writeback(&f);
        }
        Ok(())
    }

    /// Writes the pending text once there is enough of it, or when a large batch left its
    /// second half apart (its text is written while it is still in the cache, without a
    /// copy into `log_pending` first).
    fn write_if_large(&mut self) -> Result<(), OperatorError> {
        if !self.second_half.is_empty() || self.log_pending.len() >= PENDING_BYTES {
            self.append_pending(false)?;
        }
        Ok(())
    }

    /// Moves a second half not yet written to the end of `log_pending`, so that text from
    /// there on is the next rows'.
    fn join_second_half(&mut self) {
        if !self.second_half.is_empty() {
            self.log_pending.push_str(&self.second_half);
            self.second_half.clear();
        }
    }

    /// Takes back the text formatted after `mark`.
    fn truncate_pending(&mut self, mark: usize) {
        self.log_pending.truncate(mark);
        self.second_half.clear();
    }

    /// Ordered input: formats a batch's rows now, checking that they continue the epoch's
    /// order, and writes them once enough has gathered.
    fn write_in_order(&mut self, rows: &Rows) -> Result<(), OperatorError> {
        // Rows are checked for order by the formatting threads, each over its half before
        // formatting it (rows of a flush compare by their keys' indices, not their text: by
        // text, the check was 9% of the CPU of Q2's flush with 24h/1min windows, 3.92M rows,
        // even within the formatting loop). Rows out of order
        // (top-k windows come largest count first; the table is by key) are taken back,
        // sorted and formatted again.
        // The mark counts all the text pending before these rows.
        self.join_second_half();
        let mark = self.log_pending.len();
        if self.format_rows(rows) {
            return self.continue_order(mark, rows);
        }
        self.truncate_pending(mark);
        let mut sorted = rows.to_vec();
        sorted.sort_unstable_by(row_order);
        let sorted = Rows::from(sorted);
        self.format_rows(&sorted);
        self.continue_order(mark, &sorted)
    }

    /// After `rows`, in order, were formatted from `mark` on: checks that they come after the
    /// epoch's rows before them (taking them back when not), and writes what has gathered.
    fn continue_order(&mut self, mark: usize, rows: &Rows) -> Result<(), OperatorError> {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(());
        };
        if let Some((window, key)) = &self.last_row
            && (first.window, &**first.key) < (*window, &**key)
        {
            let refused = OperatorError::new(format!(
                "{}: rows arrived out of window order (a window of {} after one of {})",
                self.options.path.display(),
                first.window.map_or(0, |w| w.start),
                window.map_or(0, |w| w.start)
            ));
            self.truncate_pending(mark);
            return Err(refused);
        }
        self.last_row = Some((last.window, last.key.clone()));
        self.write_if_large()
    }

    /// Formats `rows` in order, the second half on another thread when there are many: a
    /// flush's rows come in parts of 65,536, and formatting them was the longest stage of
    /// Q2's flush (0.68M rows for 200k tweets, 3.9M with 24h/1min windows), on one core while
    /// the other had little to do. Returns whether each row came in (window, key) order
    /// after the one before it.
    ///
    /// The second half's text is left in `second_half`, for the caller to write.
    fn format_rows(&mut self, rows: &Rows) -> bool {
        self.join_second_half();
        let (options, schema) = (&self.options, self.schema.as_deref());
        let n = rows.len();
        if n < two_threads::MIN_ROWS || two_threads::cores() < 2 {
            return format_checking(
                options,
                schema,
                &mut self.csv,
                &mut self.log_pending,
                None,
                rows,
                0..n,
            );
        }
        let half = n / 2;
        let mut csv = CsvWriter::in_zone(self.options.time_zone.clone());
        // The second half's text goes into a buffer kept from part to part: a fresh one for
        // each part grew by copies and had its pages zeroed by the kernel on first touch.
        let (head, tail, own_csv) = (&mut self.log_pending, &mut self.second_half, &mut self.csv);
        let (first_ordered, second_ordered) = two_threads::join(
            || format_checking(options, schema, own_csv, head, None, rows, 0..half),
            // The first row of this half comes after the last of the other.
            || {
                let previous = Some(rows.get(half - 1));
                format_checking(options, schema, &mut csv, tail, previous, rows, half..n)
            },
        );
        first_ordered && second_ordered
    }
}

/// Formats `rows[range]` into `out`, and returns whether each came in (window, key) order
/// after the one before it (the first after `previous`).
fn format_checking(
    options: &FileSinkOptions,
    schema: Option<&RowSchema>,
    csv: &mut CsvWriter,
    out: &mut String,
    previous: Option<RowRef<'_>>,
    rows: &Rows,
    range: std::ops::Range<usize>,
) -> bool {
    let ordered = rows.ordered_between(range.start, range.end, previous);
    for r in rows.range(range.start, range.end) {
        format_row_into(options, schema, csv, out, r);
    }
    ordered
}

/// The state's layout: version 2 adds whether the input is in complete mode (and then leaves
/// the table out); version 1 is still read.
const STATE_VERSION: u64 = 2;

/// The order of a result table's rows: by window, then key.
fn row_order(a: &trendflow_core::ResultRow, b: &trendflow_core::ResultRow) -> std::cmp::Ordering {
    a.as_ref().table_order(&b.as_ref())
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
                if self.options.ordered_input {
                    self.write_in_order(&rows.rows)?;
                } else {
                    self.epoch_rows
                        .extend(rows.rows.iter().map(|r| r.to_owned()));
                }
            }
            Layout::Table => {
                self.complete = rows.mode == OutputMode::Complete;
                if self.complete {
                    self.table.clear();
                }
                for r in &rows.rows {
                    self.table.insert((r.window, r.key.clone()), r.count);
                }
                self.dirty = true;
            }
            Layout::Log => {
                self.format_rows(&rows.rows);
                self.write_if_large()?;
            }
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
            rows.sort_unstable_by(row_order);
        }
        self.format_rows(&Rows::from(rows));
        self.last_row = None;
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

    /// Appending layouts: the committed length. Rewritten tables: the table itself, unless
    /// every epoch brings it whole (complete mode): Q1's table of 136k hashtags was 1.6 MB in
    /// every checkpoint.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(STATE_VERSION)
            .bool(self.append_only)
            .bool(self.log_started)
            .u64(self.committed_len)
            .bool(self.complete);
        let table = if self.complete { 0 } else { self.table.len() };
        w.u64(table as u64);
        for ((window, key), count) in self.table.iter().take(table) {
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
        let version = r.u64().map_err(bad)?;
        if version != 1 && version != STATE_VERSION {
            return Err(OperatorError::new("file sink state: unknown version"));
        }
        self.append_only = r.bool().map_err(bad)?;
        self.log_started = r.bool().map_err(bad)?;
        self.committed_len = r.u64().map_err(bad)?;
        self.complete = version == STATE_VERSION && r.bool().map_err(bad)?;
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
        self.last_row = None;
        self.truncate_pending(0);
        // A table from the state is written again (the file may hold a later epoch's, not
        // checkpointed); a complete-mode table is not in the state: the file keeps the last
        // one committed until the next epoch brings the table again.
        self.dirty = !self.complete;
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
            self.unsynced = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::{ResultRow, RowBatch};

    fn sink(path: &Path, ordered_input: bool) -> FileSink {
        FileSink::new(FileSinkOptions {
            path: path.to_path_buf(),
            format: FileFormat::Csv,
            layout: Layout::Table,
            schema: None,
            time_zone: None,
            ordered_input,
        })
    }

    /// Rows of windows `[start, start + 10)` for each start, keys `keys`, in the given order.
    fn part(starts: &[i64], keys: &[&str]) -> Batch {
        let rows = starts
            .iter()
            .flat_map(|&start| {
                keys.iter().enumerate().map(move |(i, k)| ResultRow {
                    window: Some(Window {
                        start,
                        end: start + 10,
                    }),
                    key: (*k).into(),
                    count: i as i64 + 1,
                })
            })
            .collect();
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(RowSchema::word_count(true)),
            mode: OutputMode::Append,
            epoch: 0,
            rows,
        }))
    }

    /// A whole-stream count's table of `(key, count)`, in `mode`.
    fn table(mode: OutputMode, rows: &[(&str, i64)]) -> Batch {
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(RowSchema::word_count(false)),
            mode,
            epoch: 0,
            rows: rows
                .iter()
                .map(|(k, c)| ResultRow {
                    window: None,
                    key: (*k).into(),
                    count: *c,
                })
                .collect(),
        }))
    }

    #[test]
    fn a_complete_table_is_left_out_of_the_state_and_the_file_keeps_it_across_a_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q1.csv");
        let mut s = sink(&path, false);
        s.write(&table(OutputMode::Complete, &[("#b", 1), ("#a", 2)]))
            .unwrap();
        s.commit(0).unwrap();
        let first = "word,count\n#a,2\n#b,1\n";
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        let state = s.snapshot().unwrap();
        assert!(!String::from_utf8_lossy(&state).contains("#a"), "no table");

        // Restored and stopped before any epoch: the file is the table committed.
        let mut restored = sink(&path, false);
        restored.restore(&state).unwrap();
        restored.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);

        // The next epoch brings the whole table again.
        let mut restored = sink(&path, false);
        restored.restore(&state).unwrap();
        restored
            .write(&table(
                OutputMode::Complete,
                &[("#a", 3), ("#c", 1), ("#b", 1)],
            ))
            .unwrap();
        restored.commit(1).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "word,count\n#a,3\n#b,1\n#c,1\n"
        );
    }

    #[test]
    fn an_update_table_is_kept_in_the_state_and_a_version_1_state_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q1.csv");
        let mut s = sink(&path, false);
        s.write(&table(OutputMode::Update, &[("#a", 2), ("#b", 1)]))
            .unwrap();
        s.commit(0).unwrap();
        let state = s.snapshot().unwrap();
        // Version 1, as written before complete tables were left out: the same table.
        let mut v1 = StateWriter::new();
        v1.u64(1).bool(false).bool(false).u64(0).u64(2);
        for (key, count) in [("#a", 2), ("#b", 1)] {
            v1.opt_i64(None).opt_i64(None).str(key).i64(count);
        }
        for state in [state, v1.finish()] {
            // The file holds a later epoch's table, not checkpointed: the restore writes the
            // state's table back, and the update adds to it.
            std::fs::write(&path, "word,count\n#a,9\n").unwrap();
            let mut restored = sink(&path, false);
            restored.restore(&state).unwrap();
            restored
                .write(&table(OutputMode::Update, &[("#c", 1)]))
                .unwrap();
            restored.commit(1).unwrap();
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                "word,count\n#a,2\n#b,1\n#c,1\n"
            );
        }
    }

    #[test]
    fn ordered_parts_are_written_as_they_come_and_give_the_sorted_table() {
        let dir = tempfile::tempdir().unwrap();
        let epochs: [Vec<Batch>; 2] = [
            vec![
                part(&[0, 10], &["#a", "#b"]),
                // A top-k window: largest count first; the file is by key.
                part(&[20], &["#c", "#b", "#a"]),
            ],
            vec![part(&[30], &["#z"]), part(&[40, 50], &["#b"])],
        ];
        let mut files = Vec::new();
        for ordered in [true, false] {
            let path = dir.path().join(format!("{ordered}.csv"));
            let mut s = sink(&path, ordered);
            for (epoch, parts) in epochs.iter().enumerate() {
                for p in parts {
                    s.write(p).unwrap();
                }
                s.commit(epoch as u64).unwrap();
            }
            files.push(std::fs::read_to_string(&path).unwrap());
        }
        assert_eq!(files[0], files[1]);
        let lines: Vec<&str> = files[0].lines().collect();
        assert_eq!(lines.len(), 1 + 4 + 3 + 1 + 2);
        assert_eq!(
            lines[5],
            "1970-01-01T00:00:00.020Z,1970-01-01T00:00:00.030Z,#a,3"
        );
    }

    /// Rows over keys shared in sort order, as a flush's parts come (compared by index).
    fn indexed_part(keys: &Arc<[Arc<str>]>, rows: &[(i64, u32)]) -> Batch {
        let mut shared = Rows::with_keys(keys.clone(), true);
        for (i, &(start, key)) in rows.iter().enumerate() {
            let window = Some(Window {
                start,
                end: start + 10,
            });
            shared.push(window, key, i as i64 + 1);
        }
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(RowSchema::word_count(true)),
            mode: OutputMode::Append,
            epoch: 0,
            rows: shared,
        }))
    }

    #[test]
    fn rows_over_sorted_keys_are_ordered_refused_and_sorted_as_rows_over_their_text() {
        let keys: Arc<[Arc<str>]> = ["#a", "#b", "#c"].map(Arc::from).into();
        let parts = [
            vec![(0, 0), (0, 2), (10, 1)],
            // Out of order within its window (a top-k window): sorted before it is written.
            vec![(20, 2), (20, 0), (20, 1)],
            // Before the last part's last window: refused.
            vec![(10, 2)],
            vec![(20, 2), (30, 0)],
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for by_index in [true, false] {
            let path = dir.path().join(format!("{by_index}.csv"));
            let mut s = sink(&path, true);
            let mut refused = Vec::new();
            for rows in &parts {
                let part = indexed_part(&keys, rows);
                let part = if by_index {
                    part
                } else {
                    let Batch::Rows(b) = &part else {
                        unreachable!()
                    };
                    Batch::Rows(Arc::new(RowBatch {
                        rows: Rows::from(b.rows.to_vec()),
                        ..(**b).clone()
                    }))
                };
                refused.push(s.write(&part).is_err());
            }
            assert_eq!(refused, [false, false, true, false]);
            s.commit(0).unwrap();
            files.push(std::fs::read_to_string(&path).unwrap());
        }
        assert_eq!(files[0], files[1]);
        // Key and count of each line (the window's two fields before them).
        let rows: Vec<&str> = files[0]
            .lines()
            .skip(1)
            .map(|l| l.splitn(3, ',').nth(2).unwrap())
            .collect();
        assert_eq!(
            rows,
            [
                "#a,1", "#c,2", "#b,3", "#a,2", "#b,3", "#c,1", "#c,1", "#a,2"
            ]
        );
    }

    #[test]
    fn a_part_before_the_last_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(&dir.path().join("q.csv"), true);
        s.write(&part(&[10], &["#a"])).unwrap();
        let err = s.write(&part(&[0], &["#a"])).unwrap_err();
        assert!(err.to_string().contains("out of window order"), "{err}");
        // The refused part was formatted while checked: none of it stays.
        s.commit(0).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("q.csv")).unwrap(),
            "window_start,window_end,word,count\n\
             1970-01-01T00:00:00.010Z,1970-01-01T00:00:00.020Z,#a,1\n"
        );
    }

    /// Keys in order, enough for one window's part to be formatted on two threads.
    fn large_part_keys() -> Vec<String> {
        (0..two_threads::MIN_ROWS)
            .map(|i| format!("#k{i:06}"))
            .collect()
    }

    #[test]
    fn a_large_batch_out_of_order_only_where_its_halves_meet_is_sorted() {
        // Each half in order, formatted on its own thread; the halves swapped, so only the
        // pair where they meet is out of order.
        let keys = large_part_keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (low, high) = keys.split_at(keys.len() / 2);
        let swapped: Vec<&str> = high.iter().chain(low).copied().collect();
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (name, keys) in [("sorted", &keys), ("swapped", &swapped)] {
            let path = dir.path().join(name);
            let mut s = sink(&path, true);
            s.write(&part(&[0], keys)).unwrap();
            s.commit(0).unwrap();
            files.push(std::fs::read_to_string(&path).unwrap());
        }
        assert_eq!(files[0].lines().count(), 1 + two_threads::MIN_ROWS);
        assert!(files[0].lines().nth(1).unwrap().contains(",#k000000,"));
        // The same rows (counts follow the keys' places in the batch, so are left out).
        let without_counts = |f: &str| -> Vec<String> {
            f.lines()
                .map(|l| l.rsplit_once(',').unwrap().0.to_string())
                .collect()
        };
        assert_eq!(without_counts(&files[0]), without_counts(&files[1]));
    }

    #[test]
    fn a_large_epoch_streams_to_the_file_and_a_restore_takes_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        let mut s = sink(&path, true);
        s.write(&part(&[0], &["#first"])).unwrap();
        s.commit(0).unwrap();
        let committed = std::fs::read_to_string(&path).unwrap();
        let state = s.snapshot().unwrap();
        // ~12 MB of rows in one uncommitted epoch: most of it is on disk before the commit.
        let keys: Vec<String> = (0..2_000).map(|i| format!("#tag{i:05}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        for w in 0..100 {
            s.write(&part(&[10 + 10 * w], &keys)).unwrap();
        }
        let on_disk = std::fs::metadata(&path).unwrap().len() as usize;
        assert!(
            on_disk > committed.len() + PENDING_BYTES,
            "{on_disk} bytes on disk"
        );
        // A crash now: the restarted sink truncates the uncommitted rows.
        let mut restarted = sink(&path, true);
        restarted.restore(&state).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), committed);
    }

    #[test]
    fn a_table_is_written_through_a_link_and_into_a_pipe_without_replacing_them() {
        let dir = tempfile::tempdir().unwrap();
        let rows = || {
            Batch::Rows(Arc::new(RowBatch {
                schema: Arc::new(RowSchema::word_count(false)),
                mode: OutputMode::Complete,
                epoch: 0,
                rows: vec![ResultRow {
                    window: None,
                    key: "#a".into(),
                    count: 2,
                }]
                .into(),
            }))
        };
        let expected = "word,count\n#a,2\n";
        // A link to the table: the link stays, its target gets the table.
        let target = dir.path().join("target.csv");
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut s = sink(&link, false);
        s.write(&rows()).unwrap();
        s.commit(0).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), expected);
        // A pipe (as /dev/null or /dev/stdout would be): written into, still a pipe.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        let mut s = sink(&fifo, false);
        s.write(&rows()).unwrap();
        s.commit(0).unwrap();
        drop(s);
        // Checked before the join: a reader left waiting on a replaced pipe never returns.
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(reader.join().unwrap(), expected);
        // Windows in append mode go to the pipe as a log, whose commit has nothing to sync.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        let mut s = sink(&fifo, true);
        s.write(&part(&[0], &["#a"])).unwrap();
        s.commit(0).unwrap();
        drop(s);
        let text = reader.join().unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with(",#a,1\n"), "{text}");
    }

    #[test]
    fn a_commit_syncs_the_text_written_before_it_even_when_nothing_is_left_pending() {
        // A large part is written as soon as it is formatted, unsynced; the commit after it
        // has no text pending but must sync: its checkpoint records the file's length as
        // durable. An epoch that wrote nothing has nothing to sync.
        let keys = large_part_keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        let mut s = sink(&path, true);
        s.write(&part(&[0], &keys)).unwrap();
        assert!(s.log_pending.is_empty() && s.second_half.is_empty());
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        assert_eq!(s.syncs, 0);
        s.commit(0).unwrap();
        assert_eq!(s.syncs, 1);
        s.commit(1).unwrap();
        assert_eq!(s.syncs, 1);
        s.write(&part(&[10], &["#a"])).unwrap();
        s.commit(2).unwrap();
        assert_eq!(s.syncs, 2);
    }

    #[test]
    fn large_and_small_parts_are_written_in_their_order_and_a_refused_large_one_leaves_nothing() {
        // A large part's second half is written from its own buffer, after the text pending
        // before it and before the next part's.
        let keys = large_part_keys();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let accepted = [
            part(&[0], &["#a"]),
            part(&[10], &keys),
            part(&[20], &["#b", "#c"]),
            part(&[30], &keys),
        ];
        let refused = part(&[25], &keys);
        let last = part(&[40], &["#d"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        let mut s = sink(&path, true);
        for p in &accepted {
            s.write(p).unwrap();
        }
        assert!(s.write(&refused).is_err());
        s.write(&last).unwrap();
        s.commit(0).unwrap();
        let mut expected = format!("{}\n", csv_header(&RowSchema::word_count(true)));
        let mut csv = CsvWriter::default();
        for p in accepted.iter().chain([&last]) {
            let Batch::Rows(rows) = p else { unreachable!() };
            for r in &rows.rows {
                csv.row(&mut expected, r);
            }
        }
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), 1 + 1 + 2 * keys.len() + 2 + 1);
        assert!(written == expected);
    }

    #[test]
    fn a_large_batch_formatted_on_two_threads_gives_the_rows_in_order() {
        // Keys that need quoting (commas, quotes, line breaks) and a window change in the
        // middle of the batch, where the second thread starts.
        let keys: Vec<String> = (0..(two_threads::MIN_ROWS + 7) / 2)
            .map(|i| match i % 4 {
                0 => format!("#k{i:06}"),
                1 => format!("#k{i:06},"),
                2 => format!("\"#k{i:06}\""),
                _ => format!("#k{i:06}\n\r"),
            })
            .collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let batch = part(&[0, 10], &keys);
        let Batch::Rows(rows) = &batch else {
            unreachable!()
        };
        assert!(rows.rows.len() >= two_threads::MIN_ROWS);
        let dir = tempfile::tempdir().unwrap();
        for (format, layout) in [
            (FileFormat::Csv, Layout::Table),
            (FileFormat::Csv, Layout::Log),
            (FileFormat::JsonLines, Layout::Log),
        ] {
            let path = dir.path().join(format!("{format:?}-{layout:?}"));
            let mut s = FileSink::new(FileSinkOptions {
                path: path.clone(),
                format,
                layout,
                schema: None,
                time_zone: None,
                ordered_input: true,
            });
            s.write(&batch).unwrap();
            s.commit(0).unwrap();
            // Row by row, one thread (a table is sorted by window and key).
            let mut ordered = rows.rows.to_vec();
            if layout == Layout::Table {
                ordered.sort_by(|a, b| a.window.cmp(&b.window).then_with(|| a.key.cmp(&b.key)));
            }
            let mut expected = String::new();
            if format == FileFormat::Csv {
                expected.push_str(&csv_header(&rows.schema));
                expected.push('\n');
            }
            let mut csv = CsvWriter::default();
            for r in ordered.iter().map(ResultRow::as_ref) {
                match format {
                    FileFormat::Csv => csv.row(&mut expected, r),
                    FileFormat::JsonLines => json_row(&mut expected, &rows.schema, r, None),
                }
            }
            assert!(
                std::fs::read_to_string(&path).unwrap() == expected,
                "{format:?} {layout:?}"
            );
        }
    }
}
