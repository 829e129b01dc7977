//! `trendflow run` and `trendflow validate`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use trendflow_config::{BuiltParts, BuiltPipeline, Override, build, load_file};
use trendflow_core::time::format_iso_utc;
use trendflow_runtime::EpochSummary;

use crate::progress::{EventLog, Progress};
use trendflow_sql::server::{ApiState, serve};

/// Loads and builds a pipeline, printing every problem. None if there were any.
pub fn load(path: &Path, set: &[Override]) -> Option<BuiltPipeline> {
    let config = match load_file(path, set) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{} problem{} in {}",
                e.errors.len(),
                if e.errors.len() == 1 { "" } else { "s" },
                path.display()
            );
            return None;
        }
    };
    match build(&config) {
        Ok(b) => Some(b),
        Err(errors) => {
            for e in &errors {
                match config.locate(e) {
                    Some((line, column)) => eprintln!("{}:{line}:{column}: {e}", path.display()),
                    None => eprintln!("{}: {e}", path.display()),
                }
            }
            eprintln!(
                "{} problem{} in {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                path.display()
            );
            None
        }
    }
}

pub fn validate(path: &Path, set: &[Override]) -> i32 {
    match load(path, set) {
        Some(b) => {
            println!(
                "{}: ok ({} components)",
                path.display(),
                b.graph.nodes.len()
            );
            0
        }
        None => 2,
    }
}

/// The live state the HTTP endpoint shows at `/status`.
#[derive(Default, Clone)]
pub struct LiveStatus {
    pub last_epoch: Option<EpochSummary>,
    pub epochs: u64,
    pub records: u64,
    /// Records taken in by all stages when the last epoch committed.
    pub records_in_at_commit: i64,
}

/// What the HTTP endpoint serves, and where (trying the next ports when the first is taken,
/// as Spark's UI does from 4040).
fn api_state(
    built: &BuiltParts,
    status: Arc<Mutex<LiveStatus>>,
    progress: Arc<Mutex<Progress>>,
) -> Option<(SocketAddr, ApiState, String)> {
    if !built.api.enabled {
        return None;
    }
    let Ok(addr) = built.api.address.parse::<SocketAddr>() else {
        tracing::warn!(address = %built.api.address, "api.address is not host:port; no HTTP endpoint");
        return None;
    };
    let configured = built.api.address.clone();
    let name = built.name.clone();
    let tables: Vec<String> = built.memory_tables.values().cloned().collect();
    let metrics = built.metrics.clone();
    let (id, run_id) = {
        let p = progress.lock().unwrap();
        (p.id.clone(), p.run_id.clone())
    };
    let status_fn: trendflow_sql::server::StatusFn = Arc::new(move || {
        let s = status.lock().unwrap().clone();
        // Spark's StreamingQueryStatus: data is available when the last epoch had input;
        // the trigger is active while records are moving through the stages.
        let in_flight =
            metrics.total(trendflow_core::metrics::names::RECORDS_IN) != s.records_in_at_commit;
        let data = s.last_epoch.as_ref().is_some_and(|e| e.records > 0);
        let message = if in_flight {
            "Processing new data"
        } else if s.epochs == 0 {
            "Initializing sources"
        } else {
            "Waiting for data to arrive"
        };
        serde_json::json!({
            "message": message,
            "isDataAvailable": data,
            "isTriggerActive": in_flight,
            "id": id,
            "runId": run_id,
            "name": name,
            "tables": tables,
            "epochs_committed": s.epochs,
            "records": s.records,
            "last_epoch": s.last_epoch.map(|e| serde_json::json!({
                "epoch": e.epoch, "records": e.records, "bytes": e.bytes, "duration_ms": e.duration_ms,
                "watermark": e.watermark.map(format_iso_utc),
            })),
        })
    });
    let progress_fn: trendflow_sql::server::ProgressFn = Arc::new(move |recent| {
        let p = progress.lock().unwrap();
        if recent { p.recent() } else { p.last() }
    });
    let token = match &built.api.token_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(t) if !t.is_empty() => Some(Arc::from(t.as_str())),
            _ => {
                tracing::error!(variable = %var, "api.token_env names a variable that is not set: no HTTP endpoint rather than an open one");
                return None;
            }
        },
    };
    if token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the HTTP endpoint listens beyond this machine without a token (api.token_env)");
    }
    let state = ApiState {
        tables: built.tables.clone(),
        metrics: built.metrics.clone(),
        status: status_fn,
        progress: progress_fn,
        token,
        graph: serde_json::to_value(&built.topology).unwrap_or_default(),
    };
    Some((addr, state, configured))
}

async fn serve_on_free_port(
    mut addr: SocketAddr,
    state: ApiState,
    configured: String,
) -> Option<SocketAddr> {
    for _ in 0..10 {
        match serve(addr, state.clone()).await {
            Ok((bound, _)) => return Some(bound),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {
                addr.set_port(addr.port() + 1)
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "no HTTP endpoint");
                return None;
            }
        }
    }
    tracing::warn!("ports {configured} and the 9 after it are taken: no HTTP endpoint");
    None
}

/// Starts the PostgreSQL wire-protocol endpoint when configured (trying the next ports when
/// the first is taken, as the HTTP endpoint does). Returns where it listens.
async fn serve_pgwire_endpoint(built: &BuiltParts) -> Option<SocketAddr> {
    let config = built.api.pgwire.as_ref()?;
    let Ok(mut addr) = config.address.parse::<SocketAddr>() else {
        tracing::error!(address = %config.address, "api.pgwire.address is not host:port; no PostgreSQL endpoint");
        return None;
    };
    let password: Option<Arc<str>> = match &config.password_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(p) if !p.is_empty() => Some(Arc::from(p.as_str())),
            _ => {
                tracing::error!(variable = %var, "api.pgwire.password_env names a variable that is not set: no PostgreSQL endpoint rather than an open one");
                return None;
            }
        },
    };
    if password.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the PostgreSQL endpoint listens beyond this machine without a password (api.pgwire.password_env)");
    }
    for _ in 0..10 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let bound = listener.local_addr().ok()?;
                let tables = built.tables.clone();
                let password = password.clone();
                tokio::spawn(async move {
                    if let Err(e) =
                        trendflow_sql::pgwire::serve_pgwire(listener, tables, password).await
                    {
                        tracing::error!(error = %e, "the PostgreSQL endpoint stopped");
                    }
                });
                return Some(bound);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {
                addr.set_port(addr.port() + 1)
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "no PostgreSQL endpoint");
                return None;
            }
        }
    }
    tracing::warn!(address = %config.address, "that port and the 9 after it are taken: no PostgreSQL endpoint");
    None
}

/// Runs a built pipeline until it ends, a signal stops it, or `stop_after` has passed.
pub async fn run_built_until(built: BuiltPipeline, stop_after: Option<std::time::Duration>) -> i32 {
    run_built(built, stop_after, |_| {}).await
}

/// Runs a built pipeline until it ends or a signal stops it. Returns the exit code.
pub async fn run_built(
    built: BuiltPipeline,
    stop_after: Option<std::time::Duration>,
    on_epoch: impl FnMut(&EpochSummary) + Send,
) -> i32 {
    // One query per name, as Spark refuses to start a query whose name is active.
    if let Some(e) = crate::registry::running()
        .into_iter()
        .find(|e| e.name == built.parts.name)
    {
        eprintln!(
            "trendflow: pipeline `{}` is already running (pid {}{}): stop it first with `trendflow stop {}`",
            e.name,
            e.pid,
            e.address
                .map(|a| format!(", http://{a}"))
                .unwrap_or_default(),
            e.name
        );
        return 2;
    }
    let (supervisor, built) = built.into_supervisor();
    let event_log_dir = match &built.checkpoint_path {
        Some(c) => c.join("events"),
        None => crate::registry::default_event_log(&built.name),
    };
    let progress = Arc::new(Mutex::new(Progress::new(
        crate::progress::query_id(built.checkpoint_path.as_deref()),
        &built.name,
        built.sinks.clone(),
        Some(EventLog::new(event_log_dir.clone(), 16 << 20, 8)),
    )));
    let status = Arc::new(Mutex::new(LiveStatus::default()));
    let addr = match api_state(&built, status.clone(), progress.clone()) {
        Some((addr, state, configured)) => serve_on_free_port(addr, state, configured).await,
        None => None,
    };
    if let Some(a) = addr {
        crate::announce(&format!(
            "trendflow: pipeline `{}`: SQL endpoint on http://{a}",
            built.name
        ));
    }
    if let Some(a) = serve_pgwire_endpoint(&built).await {
        crate::announce(&format!(
            "trendflow: pipeline `{}`: PostgreSQL endpoint on postgresql://{a}/{}",
            built.name,
            trendflow_sql::pgwire::CATALOG
        ));
    }
    let _registration = {
        let p = progress.lock().unwrap();
        crate::registry::register(&crate::registry::Announce {
            name: &built.name,
            id: &p.id,
            run_id: &p.run_id,
            address: addr.map(|a| a.to_string()),
            tables: built.memory_tables.values().cloned().collect(),
            event_log: &event_log_dir,
        })
    };
    let metrics = built.metrics.clone();
    let name = built.name.clone();
    let stop = supervisor.stop_handle();
    let signals = tokio::spawn(async move {
        match stop_after {
            Some(d) => {
                tokio::select! {
                    _ = wait_for_signal() => {}
                    _ = tokio::time::sleep(d) => {}
                }
            }
            None => wait_for_signal().await,
        }
        tracing::info!(pipeline = %name, "stopping: finishing the current epoch");
        stop.stop().await;
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    let mut on_epoch = on_epoch;
    let epoch_seconds = built.metrics.histogram(
        trendflow_core::metrics::names::EPOCH_DURATION_SECONDS,
        &built.name,
    );
    let checkpoint_seconds = built.metrics.histogram(
        trendflow_core::metrics::names::CHECKPOINT_DURATION_SECONDS,
        &built.name,
    );
    let result = supervisor
        .run(|e| {
            epoch_seconds.observe(e.duration_ms / 1000.0);
            checkpoint_seconds.observe(e.checkpoint_ms / 1000.0);
            progress.lock().unwrap().on_epoch(e, &metrics);
            let mut s = status.lock().unwrap();
            s.epochs += 1;
            s.records += e.records;
            s.last_epoch = Some(e.clone());
            s.records_in_at_commit = metrics.total(trendflow_core::metrics::names::RECORDS_IN);
            drop(s);
            on_epoch(e);
        })
        .await;
    signals.abort();
    match result {
        Ok(report) => {
            tracing::info!(
                epochs = report.epochs.len(),
                records = report.records,
                bytes = report.bytes,
                seconds = format!("{:.2}", report.seconds),
                busy = busy_summary(&built.metrics),
                "pipeline finished"
            );
            0
        }
        Err(e) => {
            if crate::json_logs() {
                tracing::error!(error = %e, "pipeline failed");
            } else {
                eprintln!("trendflow: {e}");
            }
            1
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run_file(path: &Path, set: &[Override]) -> i32 {
    let Some(built) = load(path, set) else {
        return 2;
    };
    // A bounded run over local files: a bar of bytes read against the bytes there at start,
    // with the files read beside it.
    let (files, total) = if built.parts.trigger == trendflow_config::TriggerConfig::AvailableNow {
        built
            .parts
            .local_inputs
            .iter()
            .map(|d| files_under(d))
            .fold((0, 0), |(f, b), (df, db)| (f + df, b + db))
    } else {
        (0, 0)
    };
    if total == 0 {
        return run_built(built, None, |_| {}).await;
    }
    let mut bar = crate::progress_bar::Bar::new("read", total, crate::progress_bar::Unit::Bytes);
    let mut read = 0u64;
    let metrics = built.parts.metrics.clone();
    run_built(built, None, move |e| {
        read += e.bytes;
        let files_read = metrics.total(trendflow_core::metrics::names::FILES_READ);
        bar.detail(format!("{files_read}/{files} files"));
        bar.set(read.min(total));
        if read >= total {
            bar.finish();
        }
    })
    .await
}

/// Visible files under `dir` (hidden ones, `.x` and `_x`, are not read) and their bytes.
fn files_under(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with(['.', '_']))
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => files_under(&e.path()),
            Ok(m) => (1, m.len()),
            Err(_) => (0, 0),
        })
        .fold((0, 0), |(f, b), (df, db)| (f + df, b + db))
}

/// Where the run's time went: each component's busy seconds (summed over its parallel
/// instances), largest first, e.g. `parse 1.21s, hashtag_counts 0.12s`.
fn busy_summary(metrics: &trendflow_core::metrics::Metrics) -> String {
    let mut busy: std::collections::BTreeMap<String, i64> = Default::default();
    for (key, value) in metrics.snapshot() {
        if key.name == trendflow_core::metrics::names::BUSY_NANOS {
            *busy.entry(key.component).or_default() += value;
        }
    }
    let mut busy: Vec<(String, i64)> = busy.into_iter().collect();
    busy.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    busy.iter()
        .map(|(c, ns)| format!("{c} {:.2}s", *ns as f64 / 1e9))
        .collect::<Vec<_>>()
        .join(", ")
}
