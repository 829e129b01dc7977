//! The PostgreSQL sink: result rows into a table, one transaction per epoch, exactly once.
//!
//! Why a commit table rather than the checkpoint: after a crash the pipeline restarts from its
//! last checkpoint M and replays epochs M+1, M+2… with the same rows, but some of those epochs
//! may already be in PostgreSQL (the sink commits several epochs before a checkpoint exists).
//! A database cannot be truncated back to a checkpoint the way a file is, so each epoch's
//! transaction also records the epoch in `trendflow_commits`, keyed by (pipeline, sink). The
//! transaction first locks that row and reads it: an epoch at or below the recorded one was
//! committed before the crash and is skipped. Rows and epoch are committed together or not at
//! all, so the table never holds an epoch the commit table does not know, nor the reverse.
//! The same check makes a retry after an ambiguous `COMMIT` (connection lost while committing)
//! safe: if the commit happened, the retry finds the epoch and skips it.
//!
//! Why `COPY … (FORMAT binary)`: it is the one way to load 100k+ rows a second; a statement
//! per row is ten times slower. Append mode copies straight into the table (the rows are
//! final, a repeated window and key is an error). Update and complete modes copy into a
//! temporary staging table of the connection and merge it in with `INSERT … ON CONFLICT DO
//! UPDATE`, which only rewrites rows whose value changed; complete mode then also deletes
//! the rows that are no longer in the result (a complete-mode batch is the whole table).
//!
//! Why synchronous calls on a runtime of its own: see [`crate::io_runtime`]. The sink connects
//! at its first commit, so building a pipeline (`trendflow validate`) never touches the
//! database. Transient failures (connection lost, server restarting, serialization failures,
//! deadlocks) reconnect and retry the whole epoch transaction with exponential backoff and
//! jitter, for up to `retry_for`; anything else (a table with other columns, a permission
//! denied) fails at once. Logs name the server as `host:port/dbname`, never the connection
//! string, which may hold a password.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, NoTls, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;
use trendflow_core::batch::OutputMode;
use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::{Batch, Epoch, EventTime, OperatorError, RowBatch, RowSchema, Sink, Window};

use crate::io_runtime::IoRuntime;

/// The table that records, per (pipeline, sink), the last epoch committed. It lives in the
/// result table's schema (or, for an unqualified table, wherever `search_path` puts it).
pub const COMMITS_TABLE: &str = "trendflow_commits";
/// The first wait before a retry.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);
/// How long an epoch keeps being retried before the sink fails.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(300);
/// Connecting gives up after this long unless the connection string sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The staging table of update and complete modes: temporary, one per connection, emptied
/// at every commit.
const STAGE: &str = "pg_temp.trendflow_stage";

/// PostgreSQL's `timestamptz` range, in Unix milliseconds: from 4714-11-24 00:00:00 BC
/// (included) to 294277-01-01 00:00:00 (excluded).
const PG_TIMESTAMP_MIN_MS: i64 = -210_866_803_200_000;
const PG_TIMESTAMP_END_MS: i64 = 9_224_318_016_000_000;

/// Settings of a [`PostgresSink`].
#[derive(Clone)]
pub struct PostgresSinkOptions {
    /// A libpq `key=value` string or a `postgres://` URL, as `tokio_postgres::Config` parses
    /// it. Never logged: it may hold a password.
    pub connection: String,
    /// A password that replaces any in `connection` (read from the environment variable that
    /// `password_env` names).
    pub password: Option<String>,
    /// The result table, `table` or `schema.table`, read as SQL reads a name: bare parts are
    /// folded to lower case, double-quoted parts are kept as written.
    pub table: String,
    /// With `sink`, the row of the commit table this sink owns. Two sinks writing with the
    /// same (pipeline, sink) would skip each other's epochs.
    pub pipeline: String,
    pub sink: String,
    /// The columns, when known before the first rows (otherwise the first batch's).
    pub schema: Option<Arc<RowSchema>>,
    /// The output mode of the rows this sink receives.
    pub mode: OutputMode,
    /// Create the result table when it does not exist (otherwise that is an error).
    pub create_table: bool,
    /// The first wait before retrying an epoch after a transient error; it doubles at each
    /// retry, up to `retry_max`, with random jitter.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Give up after this long of consecutive failures of one epoch.
    pub retry_for: Duration,
    /// PEM certificates trusted for TLS, in addition to the system's (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// The fence of a scale-out worker's partition pipeline: the Kafka consumer-group
    /// generation that gave the worker its partition. Each epoch's transaction records it in
    /// the commit table and refuses to commit when the table records a newer one: once the
    /// partition's next owner has committed, a previous owner still running (cut off from
    /// Kafka past the session timeout) commits nothing more. `None`: no fence.
    pub owner_generation: Option<i64>,
}

impl PostgresSinkOptions {
    /// Options with the defaults: `create_table` on, retries from 100 ms doubling up to 10 s,
    /// for up to 5 minutes.
    pub fn new(
        connection: impl Into<String>,
        table: impl Into<String>,
        pipeline: impl Into<String>,
        sink: impl Into<String>,
        mode: OutputMode,
    ) -> Self {
        PostgresSinkOptions {
            connection: connection.into(),
            password: None,
            table: table.into(),
            pipeline: pipeline.into(),
            sink: sink.into(),
            schema: None,
            mode,
            create_table: true,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            retry_for: DEFAULT_RETRY_FOR,
            ca_file: None,
            owner_generation: None,
        }
    }
}

/// Everything but the connection string and the password.
impl fmt::Debug for PostgresSinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSinkOptions")
            .field("connection", &"<redacted>")
            .field("table", &self.table)
            .field("pipeline", &self.pipeline)
            .field("sink", &self.sink)
            .field("schema", &self.schema)
            .field("mode", &self.mode)
            .field("create_table", &self.create_table)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("retry_for", &self.retry_for)
            .field("owner_generation", &self.owner_generation)
            .finish()
    }
}

/// The PostgreSQL sink.
///
/// ```no_run
/// use std::sync::Arc;
/// use trendflow_core::{Batch, ResultRow, RowBatch, RowSchema, Sink, batch::OutputMode};
/// use trendflow_connectors::postgres_sink::{PostgresSink, PostgresSinkOptions};
///
/// let options = PostgresSinkOptions::new(
///     "host=localhost user=trendflow dbname=tweets",
///     "hashtag_totals",
///     "tutorial",
///     "totals",
///     OutputMode::Update,
/// );
/// let mut sink = PostgresSink::new(options).unwrap(); // parses the settings, connects later
/// let schema = Arc::new(RowSchema::word_count(false));
/// let rows = vec![ResultRow { window: None, key: "#rust".into(), count: 3 }];
/// sink.write(&Batch::Rows(Arc::new(RowBatch { schema, mode: OutputMode::Update, epoch: 0, rows: rows.into() }))).unwrap();
/// sink.commit(0).unwrap(); // one transaction: the row upserted, epoch 0 recorded
/// ```
pub struct PostgresSink {
    options: PostgresSinkOptions,
    table: TableName,
    config: Config,
    tls: Option<MakeRustlsConnect>,
    /// `host:port/dbname`, for logs and errors.
    target: String,
    schema: Option<Arc<RowSchema>>,
    /// Built once the columns are known.
    shared: Option<Arc<Shared>>,
    /// The current epoch's batches (in complete mode, the last complete batch only).
    pending: Vec<Arc<RowBatch>>,
    /// A complete-mode batch arrived in this epoch: even an empty one replaces the table.
    pending_complete: bool,
    /// The connection, dropped before `io` (fields drop in order).
    session: Option<Session>,
    io: Option<IoRuntime>,
    /// The newest epoch the commit table is known to record for this sink (written by it,
    /// or found there when skipping a replay). Empty epochs, which run no transaction, leave
    /// it as it is. This is the sink's checkpointed state.
    recorded: Option<Epoch>,
    /// `Some(recorded)` when restored from a checkpoint.
    restored: Option<Option<Epoch>>,
    /// The first commit compared the commit table with the restored state.
    first_commit_checked: bool,
    rows_written: u64,
    epochs_skipped: u64,
    retries: u64,
    counters: Option<SinkCounters>,
}

/// The sink's figures in the pipeline's metrics.
struct SinkCounters {
    rows: trendflow_core::metrics::Counter,
    skipped: trendflow_core::metrics::Counter,
    retries: trendflow_core::metrics::Counter,
}

impl PostgresSink {
    /// Checks the settings (connection string, table name, columns when given) without
    /// connecting.
    pub fn new(options: PostgresSinkOptions) -> Result<Self, OperatorError> {
        let sink = &options.sink;
        let table = TableName::parse(&options.table)
            .map_err(|e| OperatorError::new(format!("postgres sink `{sink}`: {e}")))?;
        let (config, tls) = connection_settings(
            &options.connection,
            options.password.as_deref(),
            options.ca_file.as_deref(),
        )
        .map_err(|e| OperatorError::new(format!("postgres sink `{sink}`: {e}")))?;
        let target = describe_target(&config);
        let mut this = PostgresSink {
            table,
            config,
            tls,
            target,
            schema: None,
            shared: None,
            pending: Vec::new(),
            pending_complete: false,
            session: None,
            io: None,
            recorded: None,
            restored: None,
            first_commit_checked: false,
            rows_written: 0,
            epochs_skipped: 0,
            retries: 0,
            counters: None,
            options,
        };
        if let Some(schema) = this.options.schema.clone() {
            this.set_schema(schema)?;
        }
        Ok(this)
    }

    /// Reports rows written, epochs skipped and retries in `metrics` under `component`.
    pub fn with_metrics(
        mut self,
        metrics: &trendflow_core::metrics::Metrics,
        component: &str,
    ) -> Self {
        use trendflow_core::metrics::names;
        self.counters = Some(SinkCounters {
            rows: metrics.counter(names::SINK_ROWS_WRITTEN, component),
            skipped: metrics.counter(names::SINK_EPOCHS_SKIPPED, component),
            retries: metrics.counter(names::SINK_RETRIES, component),
        });
        self
    }

    /// Rows loaded into PostgreSQL by this instance.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Epochs found already committed (replayed after a restart) and skipped.
    pub fn epochs_skipped(&self) -> u64 {
        self.epochs_skipped
    }

    /// Epoch transactions retried after a transient error.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    fn error(&self, msg: impl fmt::Display) -> OperatorError {
        OperatorError::new(format!(
            "postgres sink `{}` ({}, table {}): {msg}",
            self.options.sink, self.target, self.table
        ))
    }

    fn set_schema(&mut self, schema: Arc<RowSchema>) -> Result<(), OperatorError> {
        let statements =
            Statements::new(&self.table, &schema, self.options.mode).map_err(|e| self.error(e))?;
        self.shared = Some(Arc::new(Shared {
            config: self.config.clone(),
            tls: self.tls.clone(),
            statements,
            pipeline: self.options.pipeline.clone(),
            sink: self.options.sink.clone(),
            create_table: self.options.create_table,
            owner_generation: self.options.owner_generation,
        }));
        self.schema = Some(schema);
        Ok(())
    }

    /// Runs the epoch's transaction, retrying transient failures.
    fn run_with_retries(
        &mut self,
        shared: &Arc<Shared>,
        job: &Arc<EpochJob>,
    ) -> Result<Outcome, OperatorError> {
        if self.io.is_none() {
            self.io = Some(IoRuntime::new("postgres-sink")?);
        }
        let mut delay = self.options.retry_initial;
        let mut first_failure: Option<Instant> = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let io = self.io.as_ref().expect("created above");
            let handle = io.handle();
            let (shared_for_io, job_for_io) = (shared.clone(), job.clone());
            let mut session = self.session.take();
            let (session, result) = io.run(async move {
                let result = run_epoch(&mut session, &shared_for_io, &job_for_io, &handle).await;
                (session, result)
            })?;
            let failure = match result {
                Ok(outcome) => {
                    self.session = session;
                    return Ok(outcome);
                }
                Err(failure) => failure,
            };
            // A failed attempt never reuses its connection: it may be broken, or in the middle
            // of a COPY or a transaction.
            drop(session);
            let started = *first_failure.get_or_insert_with(Instant::now);
            let text = failure.text(self.options.mode, &self.table);
            if !failure.is_transient() {
                return Err(self.error(text));
            }
            let elapsed = started.elapsed();
            if elapsed >= self.options.retry_for {
                return Err(self.error(format!(
                    "gave up on epoch {} after {attempt} attempts in {:.1} s (retry_for {:.1} s); last error: {text}",
                    job.epoch,
                    elapsed.as_secs_f64(),
                    self.options.retry_for.as_secs_f64()
                )));
            }
            let wait = jittered(delay).min(self.options.retry_for - elapsed);
            tracing::warn!(
                sink = %self.options.sink,
                server = %self.target,
                table = %self.table,
                epoch = job.epoch,
                attempt,
                retry_in_ms = wait.as_millis() as u64,
                error = %text,
                "PostgreSQL sink: transient error; reconnecting and retrying the epoch's transaction"
            );
            self.retries += 1;
            if let Some(c) = &self.counters {
                c.retries.inc();
            }
            std::thread::sleep(wait);
            delay = delay.saturating_mul(2).min(self.options.retry_max);
        }
    }

    /// What the commit table says, compared with the checkpoint this sink was restored from.
    fn check_commit_table(&mut self, epoch: Epoch, prior: i64, skipped: bool) {
        let first = !self.first_commit_checked;
        self.first_commit_checked = true;
        let (sink, table) = (&self.options.sink, &self.table);
        match self.restored {
            Some(Some(checkpoint)) if first && prior < checkpoint as i64 => {
                tracing::warn!(
                    sink = %sink,
                    server = %self.target,
                    table = %table,
                    commit_table_epoch = prior,
                    checkpoint_epoch = checkpoint,
                    "PostgreSQL sink: at the checkpoint, {COMMITS_TABLE} recorded epoch {checkpoint}, but now it records only epoch {prior} for pipeline `{}`, sink `{sink}`: the rows of the epochs in between are missing from the table (was the row deleted, or the database restored from an older backup?)",
                    self.options.pipeline
                );
            }
            None if first && skipped => {
                tracing::warn!(
                    sink = %sink,
                    server = %self.target,
                    table = %table,
                    epoch,
                    commit_table_epoch = prior,
                    "PostgreSQL sink: {COMMITS_TABLE} already records epoch {prior} for pipeline `{}`, sink `{sink}`, so epochs up to it are skipped as replays. That is right after a crash before the first checkpoint; if this is instead a new run (a new checkpoint.path, or none), delete that row or use another pipeline name, or the new run's first epochs are lost",
                    self.options.pipeline
                );
            }
            _ if skipped => {
                tracing::info!(
                    sink = %sink,
                    table = %table,
                    epoch,
                    commit_table_epoch = prior,
                    "PostgreSQL sink: epoch already committed before the restart; skipped"
                );
            }
            _ => {}
        }
    }
}

impl Sink for PostgresSink {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        let Batch::Rows(rows) = batch else {
            return Err(self.error(format_args!(
                "the postgres sink takes result rows, got {}",
                batch.kind()
            )));
        };
        if rows.mode != self.options.mode {
            return Err(self.error(format_args!(
                "set up for {} mode, received {} mode rows",
                mode_name(self.options.mode),
                mode_name(rows.mode)
            )));
        }
        // Checked here rather than at the commit: a bad row then fails `write`, which the
        // runtime can isolate into a dead letter.
        check_rows(&rows.schema, &rows.rows).map_err(|e| self.error(e))?;
        match self.schema.clone() {
            None => self.set_schema(rows.schema.clone())?,
            Some(s) if *s == *rows.schema => {}
            Some(s) => {
                return Err(self.error(format_args!(
                    "rows with columns {} after rows with columns {}",
                    describe_schema(&rows.schema),
                    describe_schema(&s)
                )));
            }
        }
        if rows.mode == OutputMode::Complete {
            self.pending.clear();
            self.pending_complete = true;
        }
        if !rows.rows.is_empty() {
            self.pending.push(rows.clone());
        }
        Ok(())
    }

    fn commit(&mut self, epoch: Epoch) -> Result<(), OperatorError> {
        let batches = std::mem::take(&mut self.pending);
        let complete = std::mem::take(&mut self.pending_complete);
        let rows: usize = batches.iter().map(|b| b.rows.len()).sum();
        // An epoch without rows changes nothing (and has nothing to replay), except in
        // complete mode, where an empty result empties the table.
        let Some(shared) = self.shared.clone().filter(|_| rows > 0 || complete) else {
            return Ok(());
        };
        let epoch_number = i64::try_from(epoch)
            .map_err(|_| self.error(format_args!("epoch {epoch} does not fit a bigint")))?;
        let batches = match self.options.mode {
            OutputMode::Append => batches,
            OutputMode::Update | OutputMode::Complete => latest_per_key(batches),
        };
        let job = Arc::new(EpochJob {
            epoch: epoch_number,
            batches,
        });
        let started = Instant::now();
        let outcome = self.run_with_retries(&shared, &job)?;
        match outcome {
            Outcome::Written { rows, prior } => {
                self.rows_written += rows;
                if let Some(c) = &self.counters {
                    c.rows.add(rows);
                }
                tracing::debug!(
                    sink = %self.options.sink,
                    table = %self.table,
                    epoch,
                    rows,
                    ms = started.elapsed().as_millis() as u64,
                    "PostgreSQL sink: epoch committed"
                );
                self.check_commit_table(epoch, prior, false);
                self.recorded = Some(epoch);
            }
            Outcome::Skipped { prior } => {
                self.epochs_skipped += 1;
                if let Some(c) = &self.counters {
                    c.skipped.inc();
                }
                self.check_commit_table(epoch, prior, true);
                // A skipped epoch's prior is at least the epoch, so not negative.
                self.recorded = Some(u64::try_from(prior).unwrap_or(epoch).max(epoch));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OperatorError> {
        // The runtime commits every epoch before finishing; rows after the last barrier belong
        // to no epoch, and committing them under a made-up epoch number would make the commit
        // table skip later epochs.
        let left: usize = self.pending.iter().map(|b| b.rows.len()).sum();
        if left > 0 {
            tracing::warn!(
                sink = %self.options.sink,
                rows = left,
                "PostgreSQL sink: rows received after the last commit are not written"
            );
        }
        self.pending.clear();
        self.pending_complete = false;
        self.session = None;
        self.io = None;
        Ok(())
    }

    /// The exactly-once guarantee comes from the commit table, not from this state. The state
    /// (the newest epoch the commit table records for this sink) only lets a restarted sink
    /// tell a replay after a restart from a new run that finds an old row in the commit
    /// table, and warn about a commit table that is behind its checkpoint. The table is part of the signature, as a file
    /// sink's path is: restoring into another table would leave it without the checkpoint's
    /// rows.
    fn state_signature(&self) -> Option<String> {
        Some(format!("postgres sink v1 {}", self.table))
    }

    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(1)
            .bool(self.recorded.is_some())
            .u64(self.recorded.unwrap_or(0));
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e: trendflow_core::codec::DecodeError| {
            OperatorError::new(format!("postgres sink state: {e}"))
        };
        let mut r = StateReader::new(state);
        if r.u64().map_err(bad)? != 1 {
            return Err(OperatorError::new("postgres sink state: unknown version"));
        }
        let has = r.bool().map_err(bad)?;
        let epoch = r.u64().map_err(bad)?;
        r.end().map_err(bad)?;
        self.recorded = has.then_some(epoch);
        self.restored = Some(self.recorded);
        self.first_commit_checked = false;
        self.pending.clear();
        self.pending_complete = false;
        Ok(())
    }
}

fn mode_name(mode: OutputMode) -> &'static str {
    match mode {
        OutputMode::Append => "append",
        OutputMode::Update => "update",
        OutputMode::Complete => "complete",
    }
}

fn describe_schema(s: &RowSchema) -> String {
    if s.windowed {
        format!("(window, {}, {})", s.key_column, s.value_column)
    } else {
        format!("({}, {})", s.key_column, s.value_column)
    }
}

/// Windows present exactly when the schema is windowed, with bounds PostgreSQL can store.
fn check_rows(schema: &RowSchema, rows: &trendflow_core::Rows) -> Result<(), String> {
    for r in rows {
        match (schema.windowed, r.window) {
            (true, Some(w)) => {
                for t in [w.start, w.end] {
                    if to_system_time(t).is_none() {
                        return Err(format!(
                            "row `{}`: window bound {t} ms is outside PostgreSQL's timestamptz range",
                            r.key
                        ));
                    }
                }
            }
            (false, None) => {}
            (true, None) => return Err(format!("row `{}` has no window", r.key)),
            (false, Some(_)) => {
                return Err(format!("row `{}` has a window in a table without", r.key));
            }
        }
    }
    Ok(())
}

/// Event time (Unix ms, negative before 1970) as the `SystemTime` tokio-postgres writes as a
/// `timestamptz`; `None` outside PostgreSQL's range.
pub(crate) fn to_system_time(ms: EventTime) -> Option<SystemTime> {
    if !(PG_TIMESTAMP_MIN_MS..PG_TIMESTAMP_END_MS).contains(&ms) {
        return None;
    }
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// In update and complete modes, one row per (window, key), the last one written: `ON
/// CONFLICT DO UPDATE` refuses to update a row twice in one statement. One batch (what an
/// aggregation emits per epoch) has distinct keys already and is kept as it is.
fn latest_per_key(batches: Vec<Arc<RowBatch>>) -> Vec<Arc<RowBatch>> {
    let Some(first) = batches.first() else {
        return batches;
    };
    if batches.len() == 1 {
        return batches;
    }
    let (schema, mode, epoch) = (first.schema.clone(), first.mode, first.epoch);
    let total: usize = batches.iter().map(|b| b.rows.len()).sum();
    let mut seen: HashSet<(Option<Window>, &str)> = HashSet::with_capacity(total);
    let mut rows = Vec::with_capacity(total);
    for r in batches.iter().rev().flat_map(|b| b.rows.iter().rev()) {
        if seen.insert((r.window, &**r.key)) {
            rows.push(r.to_owned());
        }
    }
    drop(seen);
    vec![Arc::new(RowBatch {
        schema,
        mode,
        epoch,
        rows: rows.into(),
    })]
}

/// A table name, parsed as SQL reads one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// `name` or `schema.name`; a bare part is folded to lower case (ASCII letters, as
    /// PostgreSQL does), a part in double quotes is kept as written (`""` for a quote).
    pub fn parse(text: &str) -> Result<TableName, String> {
        let err = |what: &str| format!("table `{text}`: {what}");
        let mut parts: Vec<String> = Vec::new();
        let mut chars = text.trim().chars().peekable();
        loop {
            let mut part = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            part.push('"');
                        }
                        Some('"') => break,
                        Some(c) => part.push(c),
                        None => return Err(err("a quoted name is not closed")),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    if c == '"' || c.is_whitespace() {
                        return Err(err(&format!(
                            "`{c}` in an unquoted name (write the name in double quotes)"
                        )));
                    }
                    part.push(c.to_ascii_lowercase());
                    chars.next();
                }
            }
            if part.is_empty() {
                return Err(err("empty name"));
            }
            if part.contains('\0') {
                return Err(err("NUL character in the name"));
            }
            parts.push(part);
            match chars.next() {
                None => break,
                Some('.') => {}
                Some(c) => return Err(err(&format!("unexpected `{c}` after a quoted name"))),
            }
        }
        let name = parts.pop().expect("at least one part");
        match (parts.pop(), parts.is_empty()) {
            (schema, true) => Ok(TableName { schema, name }),
            (_, false) => Err(err("expected `table` or `schema.table`")),
        }
    }

    /// Another table in the same schema.
    fn sibling(&self, name: &str) -> TableName {
        TableName {
            schema: self.schema.clone(),
            name: name.to_string(),
        }
    }
}

/// The quoted, SQL form: `"schema"."name"`.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", quote_ident(schema))?;
        }
        f.write_str(&quote_ident(&self.name))
    }
}

/// An identifier in double quotes, inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL the sink runs, built once from the table name, the columns and the mode.
#[derive(Debug, Clone)]
struct Statements {
    /// The result table, quoted (also the argument of `to_regclass`).
    table: String,
    /// The commit table, quoted.
    commits: String,
    windowed: bool,
    key_column: String,
    value_column: String,
    create_table: String,
    create_commits: String,
    /// Update and complete modes.
    create_stage: Option<String>,
    /// Into the table (append) or into the staging table.
    copy: String,
    copy_types: Vec<Type>,
    /// Complete mode: rows that are not in the new result.
    delete_missing: Option<String>,
    /// Update and complete modes.
    upsert: Option<String>,
    init_commit: String,
    lock_commit: String,
    update_commit: String,
    stamp_generation: String,
    /// Adds the fence's column to a commit table created before it existed.
    add_generation_column: String,
}

const WINDOW_START: &str = "window_start";
const WINDOW_END: &str = "window_end";
const EXISTS_SQL: &str = "SELECT to_regclass($1) IS NOT NULL";
const COLUMNS_SQL: &str = "SELECT a.attname::text, a.atttypid::regtype::text \
     FROM pg_catalog.pg_attribute AS a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attnum";

impl Statements {
    fn new(table: &TableName, schema: &RowSchema, mode: OutputMode) -> Result<Statements, String> {
        let (key_column, value_column) = (
            schema.key_column.to_string(),
            schema.value_column.to_string(),
        );
        let mut names = vec![key_column.as_str(), value_column.as_str()];
        if schema.windowed {
            names.extend([WINDOW_START, WINDOW_END]);
        }
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || n.contains('\0') {
                return Err(format!("column name `{n}` cannot be a PostgreSQL column"));
            }
            if names[..i].contains(n) {
                return Err(format!("two columns are named `{n}`"));
            }
        }
        let t = table.to_string();
        let commits = table.sibling(COMMITS_TABLE).to_string();
        let (k, v) = (quote_ident(&key_column), quote_ident(&value_column));
        let (ws, we) = (quote_ident(WINDOW_START), quote_ident(WINDOW_END));
        let windowed = schema.windowed;

        let create_table = if windowed {
            format!(
                "CREATE TABLE IF NOT EXISTS {t} ({ws} timestamptz NOT NULL, {we} timestamptz NOT NULL, \
                 {k} text NOT NULL, {v} bigint NOT NULL, PRIMARY KEY ({ws}, {we}, {k}))"
            )
        } else {
            format!("CREATE TABLE IF NOT EXISTS {t} ({k} text PRIMARY KEY, {v} bigint NOT NULL)")
        };
        let create_commits = format!(
            "CREATE TABLE IF NOT EXISTS {commits} (pipeline text NOT NULL, sink text NOT NULL, \
             epoch bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
             owner_generation bigint, PRIMARY KEY (pipeline, sink))"
        );
        // The staging table's own columns, unquoted and fixed whatever the result's names.
        let stage_columns = if windowed {
            "window_start, window_end, key, value"
        } else {
            "key, value"
        };
        let target_columns = if windowed {
            format!("{ws}, {we}, {k}, {v}")
        } else {
            format!("{k}, {v}")
        };
        let conflict = if windowed {
            format!("{ws}, {we}, {k}")
        } else {
            k.clone()
        };
        let copy_types = if windowed {
            vec![Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TEXT, Type::INT8]
        } else {
            vec![Type::TEXT, Type::INT8]
        };
        let append = mode == OutputMode::Append;
        let create_stage = (!append).then(|| {
            let columns = if windowed {
                "window_start timestamptz, window_end timestamptz, key text, value bigint"
            } else {
                "key text, value bigint"
            };
            format!(
                "CREATE TEMP TABLE IF NOT EXISTS trendflow_stage ({columns}) ON COMMIT DELETE ROWS"
            )
        });
        let copy = if append {
            format!("COPY {t} ({target_columns}) FROM STDIN (FORMAT binary)")
        } else {
            format!("COPY {STAGE} ({stage_columns}) FROM STDIN (FORMAT binary)")
        };
        let upsert = (!append).then(|| {
            format!(
                "INSERT INTO {t} AS t ({target_columns}) SELECT {stage_columns} FROM {STAGE} \
                 ON CONFLICT ({conflict}) DO UPDATE SET {v} = EXCLUDED.{v} \
                 WHERE t.{v} IS DISTINCT FROM EXCLUDED.{v}"
            )
        });
        let delete_missing = (mode == OutputMode::Complete).then(|| {
            let matches = if windowed {
                format!("s.window_start = t.{ws} AND s.window_end = t.{we} AND s.key = t.{k}")
            } else {
                format!("s.key = t.{k}")
            };
            format!(
                "DELETE FROM {t} AS t WHERE NOT EXISTS (SELECT 1 FROM {STAGE} AS s WHERE {matches})"
            )
        });
        Ok(Statements {
            init_commit: format!(
                "INSERT INTO {commits} (pipeline, sink, epoch) VALUES ($1, $2, -1) \
                 ON CONFLICT (pipeline, sink) DO NOTHING"
            ),
            lock_commit: format!(
                "SELECT epoch, owner_generation FROM {commits} \
                 WHERE pipeline = $1 AND sink = $2 FOR UPDATE"
            ),
            // `$4`, the fence, only ever raises the recorded generation (NULL: no fence).
            update_commit: format!(
                "UPDATE {commits} SET epoch = $3, committed_at = now(), \
                 owner_generation = GREATEST(owner_generation, $4) \
                 WHERE pipeline = $1 AND sink = $2"
            ),
            stamp_generation: format!(
                "UPDATE {commits} SET owner_generation = GREATEST(owner_generation, $3) \
                 WHERE pipeline = $1 AND sink = $2"
            ),
            add_generation_column: format!(
                "ALTER TABLE {commits} ADD COLUMN IF NOT EXISTS owner_generation bigint"
            ),
            table: t,
            commits,
            windowed,
            key_column,
            value_column,
            create_table,
            create_commits,
            create_stage,
            copy,
            copy_types,
            delete_missing,
            upsert,
        })
    }

    /// The columns the sink writes, with the types it accepts for each (the first is the one
    /// it creates).
    fn expected_columns(&self) -> Vec<(&str, &'static [&'static str])> {
        const TIMESTAMPTZ: &[&str] = &["timestamp with time zone"];
        const TEXT: &[&str] = &["text", "character varying"];
        const BIGINT: &[&str] = &["bigint"];
        let mut out = Vec::new();
        if self.windowed {
            out.push((WINDOW_START, TIMESTAMPTZ));
            out.push((WINDOW_END, TIMESTAMPTZ));
        }
        out.push((self.key_column.as_str(), TEXT));
        out.push((self.value_column.as_str(), BIGINT));
        out
    }

    /// Compares the table's columns (name, type as `regtype` spells it) with what the sink
    /// writes. Other columns are allowed (they need a default or to be nullable).
    fn check_columns(&self, found: &[(String, String)]) -> Result<(), String> {
        let expected = self.expected_columns();
        let describe_expected = expected
            .iter()
            .map(|(n, types)| format!("{} {}", quote_ident(n), types[0]))
            .collect::<Vec<_>>()
            .join(", ");
        if found.is_empty() {
            return Err(format!(
                "table {} does not exist (or has no columns); expected columns: {describe_expected}",
                self.table
            ));
        }
        let mut problems = Vec::new();
        for (name, types) in &expected {
            match found.iter().find(|(n, _)| n == name) {
                None => problems.push(format!("{} is missing", quote_ident(name))),
                Some((_, ty)) if !types.contains(&ty.as_str()) => problems.push(format!(
                    "{} is {ty}, not {}",
                    quote_ident(name),
                    types.join(" or ")
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        let describe_found = found
            .iter()
            .map(|(n, t)| format!("{} {t}", quote_ident(n)))
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!(
            "table {} does not have the columns this sink writes: {}. Expected {describe_expected}; \
             found {describe_found}. Drop or alter the table, or write to another one",
            self.table,
            problems.join("; ")
        ))
    }
}

/// What every attempt needs; shared with the I/O runtime.
struct Shared {
    config: Config,
    /// TLS (rustls) unless `sslmode=disable`.
    tls: Option<MakeRustlsConnect>,
    statements: Statements,
    pipeline: String,
    sink: String,
    create_table: bool,
    owner_generation: Option<i64>,
}

/// One epoch's rows.
struct EpochJob {
    epoch: i64,
    batches: Vec<Arc<RowBatch>>,
}

/// An open connection, and whether its tables were checked.
struct Session {
    client: Client,
    tables_ready: bool,
}

enum Outcome {
    /// The rows were committed; `prior` was the commit table's epoch before (-1: none).
    Written { rows: u64, prior: i64 },
    /// The commit table already had this epoch (or a later one).
    Skipped { prior: i64 },
}

enum Failure {
    /// A database or connection error, during `step`.
    Pg {
        step: &'static str,
        error: tokio_postgres::Error,
    },
    /// A problem retrying cannot solve (the table's columns, a bad row).
    Fatal(String),
}

impl Failure {
    fn is_transient(&self) -> bool {
        match self {
            Failure::Pg { error, .. } => is_transient(error),
            Failure::Fatal(_) => false,
        }
    }

    fn text(&self, mode: OutputMode, table: &TableName) -> String {
        match self {
            Failure::Fatal(msg) => msg.clone(),
            Failure::Pg { step, error } => {
                let mut text = format!("{step}: {}", error_text(error));
                if error.code() == Some(&SqlState::INVALID_COLUMN_REFERENCE) {
                    text.push_str(&format!(
                        " ({} mode upserts rows: table {table} needs a primary key or unique index on the window bounds and key columns, as the table this sink creates has)",
                        mode_name(mode)
                    ));
                } else if error.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    && mode == OutputMode::Append
                {
                    text.push_str(&format!(
                        " (append mode writes each window and key once: table {table} already has this row, written by another pipeline or sink, or by an earlier run whose row in {COMMITS_TABLE} was deleted)"
                    ));
                }
                text
            }
        }
    }
}

fn at(step: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Failure {
    move |error| Failure::Pg { step, error }
}

/// SQLSTATEs worth a reconnection and a retry: connection exceptions (class 08), serialization
/// failure, deadlock, the server shutting down, restarting or starting up, too many
/// connections, a lock wait timed out.
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "55P03"
        )
}

fn is_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        return is_transient_sqlstate(db.code().code());
    }
    // Connection refused or reset, a connect timeout: an I/O error underneath.
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The server's message with its SQLSTATE, detail and hint, or the error and its causes.
fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `host:port/dbname` (several hosts separated by commas), without user or password.
fn describe_target(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .map(|a| a.to_string())
            .collect();
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            if h.contains(':') && !h.starts_with('/') {
                format!("[{h}]:{port}")
            } else {
                format!("{h}:{port}")
            }
        })
        .collect();
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("(default database)");
    format!("{}/{db}", hosts.join(","))
}

/// `d` times a random factor in [0.5, 1): exponential backoff with "equal jitter", so that
/// sinks failing together do not retry together.
fn jittered(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos()),
    );
    let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(0.5 + 0.5 * unit)
}

/// A rustls connector trusting the system's certificates and those of `ca_file`.
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Connects as the sink does (a password over any in `connection`, TLS unless
/// `sslmode=disable` trusting the system's certificates and `ca_file`'s, the sink's connect
/// timeout), for tools beside the sink: the scale-out workers' merged view. The connection
/// runs on the current tokio runtime.
pub async fn connect_as_sink(
    connection: &str,
    password: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<Client, String> {
    let (config, tls) = connection_settings(connection, password, ca_file)?;
    connect(&config, tls.as_ref(), &tokio::runtime::Handle::current())
        .await
        .map_err(|e| error_text(&e))
}

/// The parsed connection string (it must name a host) with `password` over any in it, the
/// sink's connect timeout and application name unless it sets them, and the TLS connector:
/// TLS unless `sslmode=disable` (`prefer`, the default, falls back to plain TCP when the
/// server offers no TLS; `require` insists on it).
fn connection_settings(
    connection: &str,
    password: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<(Config, Option<MakeRustlsConnect>), String> {
    let mut config = Config::from_str(connection)
        .map_err(|e| format!("the connection string is not valid: {}", error_text(&e)))?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(
            "the connection string names no host (host=… or postgres://HOST/…)".to_string(),
        );
    }
    if let Some(password) = password {
        config.password(password.as_bytes());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("trendflow");
    }
    let tls = match config.get_ssl_mode() {
        SslMode::Disable => None,
        _ => Some(tls_connector(ca_file).map_err(|e| format!("TLS: {e}"))?),
    };
    Ok((config, tls))
}

/// Opens a connection (TLS unless `sslmode=disable`) and runs its connection task on the I/O
/// runtime.
async fn connect(
    config: &Config,
    tls: Option<&MakeRustlsConnect>,
    io: &tokio::runtime::Handle,
) -> Result<Client, tokio_postgres::Error> {
    let client = match tls {
        None => {
            let (client, connection) = config.connect(NoTls).await?;
            io.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL sink: connection ended");
                }
            });
            client
        }
        Some(tls) => {
            let (client, connection) = config.connect(tls.clone()).await?;
            io.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL sink: connection ended");
                }
            });
            client
        }
    };
    Ok(client)
}

/// One attempt at an epoch: (re)connects if needed, checks the tables once per connection,
/// then runs the epoch's transaction.
async fn run_epoch(
    session: &mut Option<Session>,
    shared: &Shared,
    job: &EpochJob,
    io: &tokio::runtime::Handle,
) -> Result<Outcome, Failure> {
    if session.as_ref().is_some_and(|s| s.client.is_closed()) {
        *session = None;
    }
    if session.is_none() {
        let client = connect(&shared.config, shared.tls.as_ref(), io)
            .await
            .map_err(at("connecting"))?;
        *session = Some(Session {
            client,
            tables_ready: false,
        });
    }
    let Some(s) = session.as_mut() else {
        return Err(Failure::Fatal("no connection".into()));
    };
    if !s.tables_ready {
        prepare_tables(&s.client, shared).await?;
        s.tables_ready = true;
    }
    write_epoch(&mut s.client, shared, job).await
}

/// Creates what is missing (commit table, result table, staging table) and checks the
/// result table's columns. Existence is checked first: `CREATE TABLE IF NOT EXISTS` needs
/// the right to create tables in the schema even when the table exists.
async fn prepare_tables(client: &Client, shared: &Shared) -> Result<(), Failure> {
    let st = &shared.statements;
    if !exists(client, &st.commits).await? {
        create(client, &st.create_commits, "creating the commit table").await?;
    }
    // A commit table made before the fence existed lacks its column.
    let commit_columns = client
        .query(COLUMNS_SQL, &[&st.commits])
        .await
        .map_err(at("reading the commit table's columns"))?;
    let has_generation = commit_columns.iter().any(|r| {
        r.try_get::<_, String>(0)
            .is_ok_and(|n| n == "owner_generation")
    });
    if !has_generation {
        client
            .batch_execute(&st.add_generation_column)
            .await
            .map_err(at("adding owner_generation to the commit table"))?;
    }
    if !exists(client, &st.table).await? {
        if !shared.create_table {
            return Err(Failure::Fatal(format!(
                "table {} does not exist and create_table is off: create it (docs/postgres-sink.md gives its columns) or turn create_table on",
                st.table
            )));
        }
        create(client, &st.create_table, "creating the result table").await?;
    }
    let rows = client
        .query(COLUMNS_SQL, &[&st.table])
        .await
        .map_err(at("reading the result table's columns"))?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: String = row.try_get(0).map_err(at("reading a column name"))?;
        let ty: String = row.try_get(1).map_err(at("reading a column type"))?;
        found.push((name, ty));
    }
    st.check_columns(&found).map_err(Failure::Fatal)?;
    if let Some(stage) = &st.create_stage {
        client
            .batch_execute(stage)
            .await
            .map_err(at("creating the staging table"))?;
    }
    Ok(())
}

async fn exists(client: &Client, table: &str) -> Result<bool, Failure> {
    let row = client
        .query_one(EXISTS_SQL, &[&table])
        .await
        .map_err(at("looking the table up"))?;
    row.try_get(0).map_err(at("looking the table up"))
}

/// Runs a `CREATE TABLE IF NOT EXISTS`. Two sinks creating the same table at once can still
/// collide in the catalog (23505, 42P07): the table exists then, which is all that is needed.
async fn create(client: &Client, sql: &str, step: &'static str) -> Result<(), Failure> {
    match client.batch_execute(sql).await {
        Ok(()) => Ok(()),
        Err(e)
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                || e.code() == Some(&SqlState::DUPLICATE_TABLE) =>
        {
            Ok(())
        }
        Err(error) => Err(Failure::Pg { step, error }),
    }
}

/// The epoch's transaction: lock the sink's row of the commit table, skip the epoch if it is
/// recorded, otherwise load the rows and record the epoch, then commit.
async fn write_epoch(
    client: &mut Client,
    shared: &Shared,
    job: &EpochJob,
) -> Result<Outcome, Failure> {
    let st = &shared.statements;
    let tx = client
        .transaction()
        .await
        .map_err(at("starting a transaction"))?;
    // The row exists before it is locked, so that two writers of one (pipeline, sink) queue
    // on it even the first time.
    tx.execute(st.init_commit.as_str(), &[&shared.pipeline, &shared.sink])
        .await
        .map_err(at("adding the sink to the commit table"))?;
    let row = tx
        .query_one(st.lock_commit.as_str(), &[&shared.pipeline, &shared.sink])
        .await
        .map_err(at("locking the sink's row of the commit table"))?;
    let prior: i64 = row
        .try_get(0)
        .map_err(at("reading the sink's row of the commit table"))?;
    let recorded_generation: Option<i64> = row
        .try_get(1)
        .map_err(at("reading the sink's row of the commit table"))?;
    if let (Some(ours), Some(newer)) = (shared.owner_generation, recorded_generation)
        && newer > ours
    {
        tx.rollback().await.map_err(at("rolling back"))?;
        return Err(Failure::Fatal(format!(
            "fenced: {COMMITS_TABLE} records owner generation {newer} for pipeline `{}`, sink `{}`, newer than this pipeline's {ours}: the partition has a newer owner, so this one commits nothing more (its worker lost the partition in a rebalance it has not seen yet)",
            shared.pipeline, shared.sink
        )));
    }
    if prior >= job.epoch {
        // A new owner's first epochs are often replays: its generation is recorded all the
        // same, so the previous owner is fenced from now on.
        if shared
            .owner_generation
            .is_some_and(|ours| recorded_generation.is_none_or(|g| g < ours))
        {
            tx.execute(
                st.stamp_generation.as_str(),
                &[&shared.pipeline, &shared.sink, &shared.owner_generation],
            )
            .await
            .map_err(at("recording the owner generation in the commit table"))?;
            tx.commit().await.map_err(at("committing"))?;
        } else {
            tx.rollback().await.map_err(at("rolling back"))?;
        }
        return Ok(Outcome::Skipped { prior });
    }
    let rows = copy_rows(&tx, st, job).await?;
    if let Some(delete) = &st.delete_missing {
        tx.execute(delete.as_str(), &[])
            .await
            .map_err(at("deleting the rows no longer in the result"))?;
    }
    if let Some(upsert) = &st.upsert {
        tx.execute(upsert.as_str(), &[])
            .await
            .map_err(at("merging the staged rows into the table"))?;
    }
    tx.execute(
        st.update_commit.as_str(),
        &[
            &shared.pipeline,
            &shared.sink,
            &job.epoch,
            &shared.owner_generation,
        ],
    )
    .await
    .map_err(at("recording the epoch in the commit table"))?;
    tx.commit().await.map_err(at("committing"))?;
    Ok(Outcome::Written { rows, prior })
}

/// Streams the rows with binary `COPY`; returns the number of rows copied.
async fn copy_rows(tx: &Transaction<'_>, st: &Statements, job: &EpochJob) -> Result<u64, Failure> {
    let sink = tx
        .copy_in(st.copy.as_str())
        .await
        .map_err(at("starting COPY"))?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &st.copy_types));
    for batch in &job.batches {
        for row in &batch.rows {
            let key: &str = row.key;
            match (st.windowed, row.window) {
                (true, Some(w)) => {
                    let (Some(start), Some(end)) = (to_system_time(w.start), to_system_time(w.end))
                    else {
                        return Err(Failure::Fatal(format!(
                            "row `{key}`: window [{}, {}) ms is outside PostgreSQL's timestamptz range",
                            w.start, w.end
                        )));
                    };
                    writer
                        .as_mut()
                        .write(&[&start, &end, &key, &row.count])
                        .await
                        .map_err(at("copying rows"))?;
                }
                (false, None) => {
                    writer
                        .as_mut()
                        .write(&[&key, &row.count])
                        .await
                        .map_err(at("copying rows"))?;
                }
                _ => {
                    return Err(Failure::Fatal(format!(
                        "row `{key}` does not match the table's columns (window or not)"
                    )));
                }
            }
        }
    }
    writer.finish().await.map_err(at("finishing COPY"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::ResultRow;

    fn schema(windowed: bool) -> RowSchema {
        RowSchema {
            windowed,
            key_column: if windowed { "hashtag" } else { "word" }.into(),
            value_column: "count".into(),
        }
    }

    fn batch(windowed: bool, mode: OutputMode, rows: Vec<ResultRow>) -> Batch {
        Batch::Rows(Arc::new(RowBatch {
            schema: Arc::new(schema(windowed)),
            mode,
            epoch: 0,
            rows: rows.into(),
        }))
    }

    fn row(window: Option<(i64, i64)>, key: &str, count: i64) -> ResultRow {
        ResultRow {
            window: window.map(|(start, end)| Window { start, end }),
            key: key.into(),
            count,
        }
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("count"), "\"count\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("Q 1"), "\"Q 1\"");
    }

    #[test]
    fn table_names_are_read_as_sql_reads_them() {
        let t = |s: &str| TableName::parse(s).map(|t| t.to_string());
        assert_eq!(t("Hashtags").unwrap(), "\"hashtags\"");
        assert_eq!(t("Analytics.Q1").unwrap(), "\"analytics\".\"q1\"");
        assert_eq!(t("\"My Schema\".\"Q1\"").unwrap(), "\"My Schema\".\"Q1\"");
        assert_eq!(t("\"a\"\"b\".c").unwrap(), "\"a\"\"b\".\"c\"");
        assert_eq!(t(" \"x.y\" ").unwrap(), "\"x.y\"");
        for bad in ["", "a.", ".a", "a.b.c", "\"open", "a b", "\"\"", "\"a\"b"] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let parsed = TableName::parse("s.t").unwrap();
        assert_eq!(
            parsed.sibling(COMMITS_TABLE).to_string(),
            "\"s\".\"trendflow_commits\""
        );
        let bare = TableName::parse("t").unwrap();
        assert_eq!(
            bare.sibling(COMMITS_TABLE).to_string(),
            "\"trendflow_commits\""
        );
    }

    #[test]
    fn windowed_tables_are_keyed_by_window_and_key() {
        let table = TableName::parse("analytics.q1").unwrap();
        let st = Statements::new(&table, &schema(true), OutputMode::Update).unwrap();
        assert_eq!(
            st.create_table,
            "CREATE TABLE IF NOT EXISTS \"analytics\".\"q1\" (\"window_start\" timestamptz NOT NULL, \
             \"window_end\" timestamptz NOT NULL, \"hashtag\" text NOT NULL, \"count\" bigint NOT NULL, \
             PRIMARY KEY (\"window_start\", \"window_end\", \"hashtag\"))"
        );
        assert_eq!(
            st.create_commits,
            "CREATE TABLE IF NOT EXISTS \"analytics\".\"trendflow_commits\" (pipeline text NOT NULL, \
             sink text NOT NULL, epoch bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
             owner_generation bigint, PRIMARY KEY (pipeline, sink))"
        );
        assert_eq!(
            st.copy,
            "COPY pg_temp.trendflow_stage (window_start, window_end, key, value) FROM STDIN (FORMAT binary)"
        );
        assert_eq!(
            st.upsert.as_deref(),
            Some(
                "INSERT INTO \"analytics\".\"q1\" AS t (\"window_start\", \"window_end\", \"hashtag\", \"count\") \
                 SELECT window_start, window_end, key, value FROM pg_temp.trendflow_stage \
                 ON CONFLICT (\"window_start\", \"window_end\", \"hashtag\") DO UPDATE SET \"count\" = EXCLUDED.\"count\" \
                 WHERE t.\"count\" IS DISTINCT FROM EXCLUDED.\"count\""
            )
        );
        assert!(st.delete_missing.is_none());
        assert_eq!(
            st.lock_commit,
            "SELECT epoch, owner_generation FROM \"analytics\".\"trendflow_commits\" \
             WHERE pipeline = $1 AND sink = $2 FOR UPDATE"
        );
    }

    #[test]
    fn plain_tables_are_keyed_by_key_and_append_mode_copies_straight_in() {
        let table = TableName::parse("totals").unwrap();
        let st = Statements::new(&table, &schema(false), OutputMode::Append).unwrap();
        assert_eq!(
            st.create_table,
            "CREATE TABLE IF NOT EXISTS \"totals\" (\"word\" text PRIMARY KEY, \"count\" bigint NOT NULL)"
        );
        assert_eq!(
            st.copy,
            "COPY \"totals\" (\"word\", \"count\") FROM STDIN (FORMAT binary)"
        );
        assert!(st.upsert.is_none() && st.create_stage.is_none() && st.delete_missing.is_none());
        assert_eq!(st.copy_types, vec![Type::TEXT, Type::INT8]);
    }

    #[test]
    fn complete_mode_also_deletes_rows_left_out_of_the_result() {
        let table = TableName::parse("totals").unwrap();
        let st = Statements::new(&table, &schema(false), OutputMode::Complete).unwrap();
        assert_eq!(
            st.delete_missing.as_deref(),
            Some(
                "DELETE FROM \"totals\" AS t WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_temp.trendflow_stage AS s WHERE s.key = t.\"word\")"
            )
        );
        assert_eq!(
            st.create_stage.as_deref(),
            Some(
                "CREATE TEMP TABLE IF NOT EXISTS trendflow_stage (key text, value bigint) ON COMMIT DELETE ROWS"
            )
        );
    }

    #[test]
    fn clashing_column_names_are_refused() {
        let table = TableName::parse("t").unwrap();
        let s = RowSchema {
            windowed: true,
            key_column: "window_start".into(),
            value_column: "count".into(),
        };
        assert!(Statements::new(&table, &s, OutputMode::Update).is_err());
        let s = RowSchema {
            windowed: false,
            key_column: "n".into(),
            value_column: "n".into(),
        };
        assert!(Statements::new(&table, &s, OutputMode::Update).is_err());
    }

    #[test]
    fn columns_are_checked_by_name_and_type() {
        let table = TableName::parse("q1").unwrap();
        let st = Statements::new(&table, &schema(true), OutputMode::Append).unwrap();
        let cols = |c: &[(&str, &str)]| -> Vec<(String, String)> {
            c.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let good = cols(&[
            ("window_start", "timestamp with time zone"),
            ("window_end", "timestamp with time zone"),
            ("hashtag", "character varying"),
            ("count", "bigint"),
            ("note", "text"),
        ]);
        assert!(st.check_columns(&good).is_ok());
        let bad = cols(&[
            ("window_start", "timestamp without time zone"),
            ("hashtag", "text"),
            ("n", "integer"),
        ]);
        let e = st.check_columns(&bad).unwrap_err();
        assert!(e.contains("table \"q1\""), "{e}");
        assert!(
            e.contains(
                "\"window_start\" is timestamp without time zone, not timestamp with time zone"
            ),
            "{e}"
        );
        assert!(
            e.contains("\"window_end\" is missing") && e.contains("\"count\" is missing"),
            "{e}"
        );
        assert!(e.contains("found \"window_start\" timestamp without time zone, \"hashtag\" text, \"n\" integer"), "{e}");
        let e = st.check_columns(&[]).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn event_times_become_system_times_before_and_after_1970() {
        assert_eq!(to_system_time(0), Some(UNIX_EPOCH));
        assert_eq!(
            to_system_time(1_500),
            Some(UNIX_EPOCH + Duration::from_millis(1_500))
        );
        assert_eq!(
            to_system_time(-1),
            Some(UNIX_EPOCH - Duration::from_millis(1))
        );
        assert!(to_system_time(PG_TIMESTAMP_MIN_MS).is_some());
        assert!(to_system_time(PG_TIMESTAMP_MIN_MS - 1).is_none());
        assert!(to_system_time(PG_TIMESTAMP_END_MS - 1).is_some());
        assert!(to_system_time(PG_TIMESTAMP_END_MS).is_none());
        assert!(to_system_time(i64::MIN).is_none() && to_system_time(i64::MAX).is_none());
    }

    #[test]
    fn transient_sqlstates() {
        for c in [
            "08006", "08001", "40001", "40P01", "57P01", "57P03", "53300",
        ] {
            assert!(is_transient_sqlstate(c), "{c}");
        }
        for c in ["42501", "42P01", "23505", "42703", "28P01", "22008"] {
            assert!(!is_transient_sqlstate(c), "{c}");
        }
    }

    #[test]
    fn the_last_row_of_a_key_wins_across_batches() {
        let s = Arc::new(schema(false));
        let b = |rows: Vec<ResultRow>| {
            Arc::new(RowBatch {
                schema: s.clone(),
                mode: OutputMode::Update,
                epoch: 0,
                rows: rows.into(),
            })
        };
        let out = latest_per_key(vec![
            b(vec![row(None, "#a", 1), row(None, "#b", 1)]),
            b(vec![row(None, "#a", 5)]),
        ]);
        assert_eq!(out.len(), 1);
        let mut rows = out[0].rows.to_vec();
        rows.sort();
        assert_eq!(rows, vec![row(None, "#a", 5), row(None, "#b", 1)]);
    }

    #[test]
    fn logs_name_the_server_without_credentials() {
        let c = Config::from_str("postgres://me:s3cret@db.example.org:5433/tweets").unwrap();
        assert_eq!(describe_target(&c), "db.example.org:5433/tweets");
        let c = Config::from_str("host=a,b port=1,2 user=u password=pw").unwrap();
        assert_eq!(describe_target(&c), "a:1,b:2/u");
        let mut o =
            PostgresSinkOptions::new("host=h password=s3cret", "t", "p", "s", OutputMode::Append);
        o.password = Some("s3cret".into());
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn settings_are_checked_without_connecting() {
        let o = |conn: &str, table: &str| {
            PostgresSink::new(PostgresSinkOptions::new(
                conn,
                table,
                "p",
                "s",
                OutputMode::Update,
            ))
        };
        assert!(o("host=127.0.0.1 port=1", "t").is_ok());
        let e = o("user=me", "t").err().expect("no host");
        assert!(e.to_string().contains("names no host"), "{e}");
        assert!(o("host=h port=x", "t").is_err());
        assert!(o("host=h", "a.b.c").is_err());
    }

    #[test]
    fn rows_are_checked_as_they_are_written() {
        let mut sink = PostgresSink::new(PostgresSinkOptions::new(
            "host=127.0.0.1 port=1",
            "t",
            "p",
            "s",
            OutputMode::Update,
        ))
        .unwrap();
        let e = sink
            .write(&batch(false, OutputMode::Append, vec![row(None, "#a", 1)]))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("set up for update mode, received append"),
            "{e}"
        );
        let e = sink
            .write(&batch(true, OutputMode::Update, vec![row(None, "#a", 1)]))
            .unwrap_err();
        assert!(e.to_string().contains("has no window"), "{e}");
        let far = PG_TIMESTAMP_END_MS;
        let e = sink
            .write(&batch(
                true,
                OutputMode::Update,
                vec![row(Some((0, far)), "#a", 1)],
            ))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("outside PostgreSQL's timestamptz range"),
            "{e}"
        );
        // The first good batch fixes the columns.
        sink.write(&batch(
            true,
            OutputMode::Update,
            vec![row(Some((0, 60_000)), "#a", 1)],
        ))
        .unwrap();
        let e = sink
            .write(&batch(false, OutputMode::Update, vec![row(None, "#a", 1)]))
            .unwrap_err();
        assert!(e.to_string().contains("after rows with columns"), "{e}");
    }

    #[test]
    fn an_unreachable_server_fails_after_retry_for_without_the_password() {
        let mut o = PostgresSinkOptions::new(
            "host=127.0.0.1 port=1 user=u password=s3cret dbname=d",
            "t",
            "p",
            "s",
            OutputMode::Update,
        );
        o.retry_initial = Duration::from_millis(10);
        o.retry_for = Duration::from_millis(50);
        let mut sink = PostgresSink::new(o).unwrap();
        // An empty epoch needs no connection.
        sink.commit(0).unwrap();
        sink.write(&batch(false, OutputMode::Update, vec![row(None, "#a", 1)]))
            .unwrap();
        let e = sink.commit(1).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:1/d") && e.contains("gave up on epoch 1"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        assert!(sink.retries() >= 1);
    }

    #[test]
    fn the_state_is_the_newest_epoch_recorded_in_the_commit_table() {
        let new = || {
            PostgresSink::new(PostgresSinkOptions::new(
                "host=127.0.0.1 port=1",
                "t",
                "p",
                "s",
                OutputMode::Update,
            ))
            .unwrap()
        };
        let mut a = new();
        a.commit(4).unwrap(); // an empty epoch: no transaction, nothing recorded
        assert_eq!(a.snapshot().unwrap(), vec![1, 0, 0]);
        let mut w = StateWriter::new();
        w.u64(1).bool(true).u64(4);
        let state = w.finish();
        let mut b = new();
        b.restore(&state).unwrap();
        assert_eq!(b.restored, Some(Some(4)));
        b.commit(5).unwrap(); // empty again: the state stays
        assert_eq!(b.snapshot().unwrap(), state);
        assert_eq!(
            a.state_signature().as_deref(),
            Some("postgres sink v1 \"t\"")
        );
        assert!(b.restore(&[9]).is_err());
    }
}
