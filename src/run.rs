//! `trendflow run` and `trendflow validate`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use trendflow_config::{BuiltParts, BuiltPipeline, Override, build, load_file};
use trendflow_core::time::format_iso_utc;
use trendflow_runtime::EpochSummary;
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
}

/// What the HTTP endpoint serves, and where (trying the next ports when the first is taken,
/// as Spark's UI does from 4040).
fn api_state(
    built: &BuiltParts,
    status: Arc<Mutex<LiveStatus>>,
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
    let status_fn: trendflow_sql::server::StatusFn = Arc::new(move || {
        let s = status.lock().unwrap().clone();
        serde_json::json!({
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
    let state = ApiState {
        tables: built.tables.clone(),
        metrics: built.metrics.clone(),
        status: status_fn,
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
    let (supervisor, built) = built.into_supervisor();
    let status = Arc::new(Mutex::new(LiveStatus::default()));
    let addr = match api_state(&built, status.clone()) {
        Some((addr, state, configured)) => serve_on_free_port(addr, state, configured).await,
        None => None,
    };
    let _registration = addr.map(|a| {
        eprintln!(
            "trendflow: pipeline `{}`: SQL endpoint on http://{a}",
            built.name
        );
        crate::registry::register(
            &built.name,
            a,
            built.memory_tables.values().cloned().collect(),
        )
    });
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
    let result = supervisor
        .run(|e| {
            let mut s = status.lock().unwrap();
            s.epochs += 1;
            s.records += e.records;
            s.last_epoch = Some(e.clone());
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
                "pipeline finished"
            );
            0
        }
        Err(e) => {
            eprintln!("trendflow: {e}");
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
    run_built(built, None, |_| {}).await
}
