//! `trendflow ps` and `trendflow stop`: the running pipelines, as Spark's
//! `spark.streams.active` lists queries and `query.stop()` stops one.

use std::time::{Duration, Instant};

use crate::registry::{self, Entry};

/// A running pipeline's `/status`, when it serves one.
async fn status(e: &Entry) -> Option<serde_json::Value> {
    let addr = e.address.as_deref()?;
    let (code, body) = trendflow_sql::client::request(addr, "GET", "/status", b"")
        .await
        .ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

async fn progress(e: &Entry) -> Option<serde_json::Value> {
    let addr = e.address.as_deref()?;
    let (code, body) = trendflow_sql::client::request(addr, "GET", "/progress", b"")
        .await
        .ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

fn row(cells: &[String], widths: &[usize]) -> String {
    cells
        .iter()
        .zip(widths)
        .map(|(c, w)| format!("{c:<w$}"))
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_string()
}

/// Lists running pipelines (and, with `all`, the last run of stopped ones from their event log).
pub async fn ps(all: bool, json: bool) -> i32 {
    let running = registry::running();
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for e in &running {
        let st = status(e).await.unwrap_or(serde_json::Value::Null);
        let last = progress(e).await.unwrap_or(serde_json::Value::Null);
        rows.push(serde_json::json!({
            "name": e.name, "id": e.id, "runId": e.run_id, "pid": e.pid,
            "status": st["message"].as_str().unwrap_or("running"),
            "batchId": last["batchId"], "inputRowsPerSecond": last["inputRowsPerSecond"],
            "watermark": last["eventTime"]["watermark"], "address": e.address,
        }));
    }
    if all {
        for e in registry::history() {
            if running.iter().any(|r| r.name == e.name) {
                continue;
            }
            let last = e
                .event_log
                .as_deref()
                .and_then(crate::progress::EventLog::last)
                .unwrap_or(serde_json::Value::Null);
            rows.push(serde_json::json!({
                "name": e.name, "id": e.id, "runId": e.run_id, "pid": serde_json::Value::Null,
                "status": "stopped",
                "batchId": last["batchId"], "inputRowsPerSecond": last["inputRowsPerSecond"],
                "watermark": last["eventTime"]["watermark"], "address": serde_json::Value::Null,
            }));
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return 0;
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    let header: Vec<String> = [
        "NAME",
        "ID",
        "PID",
        "STATUS",
        "EPOCH",
        "INPUT ROWS/S",
        "WATERMARK",
        "ADDRESS",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            [
                "name",
                "id",
                "pid",
                "status",
                "batchId",
                "inputRowsPerSecond",
                "watermark",
                "address",
            ]
            .iter()
            .map(|k| text(&r[*k]))
            .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    println!("{}", row(&header, &widths));
    for l in &lines {
        println!("{}", row(l, &widths));
    }
    0
}

/// Stops a running pipeline gracefully (SIGTERM: the epoch in progress finishes, the last
/// checkpoint is written) and waits until it has exited.
pub async fn stop(name: &str, timeout: Duration) -> i32 {
    let Some(e) = registry::running().into_iter().find(|e| e.name == name) else {
        let names: Vec<String> = registry::running().into_iter().map(|e| e.name).collect();
        eprintln!(
            "trendflow stop: no running pipeline named `{name}`{}",
            if names.is_empty() {
                String::new()
            } else {
                format!(" (running: {})", names.join(", "))
            }
        );
        return 2;
    };
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &e.pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        eprintln!("trendflow stop: could not signal pid {}", e.pid);
        return 1;
    }
    let deadline = Instant::now() + timeout;
    while registry::is_alive(&e) {
        if Instant::now() > deadline {
            eprintln!(
                "trendflow stop: `{name}` (pid {}) still running after {} s",
                e.pid,
                timeout.as_secs()
            );
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("trendflow: stopped `{name}` (pid {})", e.pid);
    0
}
