//! `trendflow top [NAME]`: the dashboard's figures in the terminal, refreshed every second: the
//! pipeline's status, the last epoch, each component's records, backpressure, dead letters and
//! state, and the top keys of the latest window of a memory table. It reads the same document
//! the dashboard gets (`GET /snapshot`) and the same SQL.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use serde_json::Value;
use trendflow_core::metrics::names;

#[derive(Args)]
pub struct TopArgs {
    /// The pipeline (its `name`); by default the only running one.
    pub name: Option<String>,
    /// host:port of the pipeline's endpoint instead of looking it up.
    #[arg(long)]
    pub addr: Option<String>,
    /// Print once and exit (for scripts); otherwise refresh until Ctrl-C.
    #[arg(long)]
    pub once: bool,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Rows of the live result shown.
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        None => "-".into(),
        Some(x) => {
            let n = x.round() as i64;
            let s = n.abs().to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            if n < 0 { format!("-{out}") } else { out }
        }
    }
}

/// The screen for one snapshot document (and the top rows of the first table, if any).
pub fn render(doc: &Value, top: Option<(&str, &[Value])>) -> String {
    let st = &doc["status"];
    let mut out = format!(
        "trendflow top: {}   {}\nepochs {}   records {}",
        st["name"].as_str().unwrap_or("?"),
        st["message"].as_str().unwrap_or(""),
        num(&st["epochs_committed"]),
        num(&st["records"]),
    );
    if let Some(last) = doc["recent"].as_array().and_then(|r| r.last()) {
        out.push_str(&format!(
            "   last epoch {}: {} rows in {} ms, {} rows/s",
            num(&last["batchId"]),
            num(&last["numInputRows"]),
            num(&last["batchDuration"]),
            num(&last["processedRowsPerSecond"]),
        ));
        if let Some(w) = last["eventTime"]["watermark"].as_str() {
            out.push_str(&format!("   watermark {w}"));
        }
    }
    out.push('\n');
    // Per component: the metrics that say where records go and where they wait.
    let mut by: std::collections::BTreeMap<String, [f64; 5]> = Default::default();
    for m in doc["metrics"].as_array().into_iter().flatten() {
        let column = match m["name"].as_str().unwrap_or("") {
            names::RECORDS_IN => 0,
            names::RECORDS_OUT => 1,
            names::MAILBOX_FULL_WAITS => 2,
            names::DEAD_LETTERS => 3,
            names::STATE_ROWS => 4,
            _ => continue,
        };
        let c = m["component"].as_str().unwrap_or("").to_string();
        by.entry(c).or_default()[column] += m["value"].as_f64().unwrap_or(0.0);
    }
    out.push_str(&format!(
        "\n{:<24} {:>14} {:>14} {:>14} {:>13} {:>12}\n",
        "component", "records in", "records out", "mailbox waits", "dead letters", "state rows"
    ));
    for (c, v) in &by {
        out.push_str(&format!(
            "{c:<24} {:>14} {:>14} {:>14} {:>13} {:>12}\n",
            num(&v[0].into()),
            num(&v[1].into()),
            num(&v[2].into()),
            num(&v[3].into()),
            num(&v[4].into())
        ));
    }
    if let Some((table, rows)) = top {
        out.push_str(&format!("\ntop of `{table}`"));
        if let Some(end) = rows.first().and_then(|r| r["window_end"].as_str()) {
            out.push_str(&format!(" (window ending {end})"));
        }
        out.push('\n');
        for (i, r) in rows.iter().enumerate() {
            out.push_str(&format!(
                "{:>3}. {:<40} {:>10}\n",
                i + 1,
                r["key"].as_str().unwrap_or(""),
                num(&r["value"])
            ));
        }
    }
    out
}

async fn get_json(addr: &str, path: &str) -> Result<Value, String> {
    let (code, body) = trendflow_sql::client::request(addr, "GET", path, b"")
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    if code != 200 {
        return Err(format!("{addr}{path}: status {code}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{addr}{path}: {e}"))
}

/// The top rows of `table`'s latest window (or of the table, unwindowed), as the dashboard
/// asks for them.
async fn top_rows(addr: &str, table: &str, rows: usize) -> Option<Vec<Value>> {
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let probe = format!("SELECT * FROM {quoted} LIMIT 1");
    let (_, body) = trendflow_sql::client::post_sql(addr, &probe, "json", "")
        .await
        .ok()?;
    let first: Value = serde_json::from_str::<Value>(&body).ok()?.get(0)?.clone();
    let obj = first.as_object()?;
    let value = obj
        .iter()
        .find(|(k, v)| *k != "window" && v.is_number())?
        .0
        .clone();
    let key = obj.keys().find(|k| *k != "window" && **k != value)?.clone();
    let q = if obj.contains_key("window") {
        format!(
            "SELECT \"{key}\" AS key, \"{value}\" AS value, CAST(\"window\".\"end\" AS VARCHAR) AS window_end FROM {quoted} WHERE \"window\".\"end\" = (SELECT max(\"window\".\"end\") FROM {quoted}) ORDER BY value DESC, key LIMIT {rows}"
        )
    } else {
        format!(
            "SELECT \"{key}\" AS key, \"{value}\" AS value FROM {quoted} ORDER BY value DESC, key LIMIT {rows}"
        )
    };
    let (code, body) = trendflow_sql::client::post_sql(addr, &q, "json", "")
        .await
        .ok()?;
    (code == 200).then(|| {
        serde_json::from_str::<Value>(&body)
            .ok()?
            .as_array()
            .cloned()
    })?
}

pub async fn main(args: TopArgs) -> i32 {
    let addr = match crate::registry::endpoint(args.name.as_deref(), args.addr.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("trendflow top: {e}");
            return 2;
        }
    };
    let refresh = !args.once && std::io::stdout().is_terminal();
    loop {
        let doc = match get_json(&addr, "/snapshot").await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("trendflow top: {e}");
                return 1;
            }
        };
        let table = doc["status"]["tables"]
            .get(0)
            .and_then(Value::as_str)
            .map(String::from);
        let rows = match &table {
            Some(t) => top_rows(&addr, t, args.rows).await,
            None => None,
        };
        let screen = render(&doc, table.as_deref().zip(rows.as_deref()));
        if refresh {
            print!("\x1b[H\x1b[2J{screen}");
        } else {
            println!("{screen}");
        }
        if args.once {
            return 0;
        }
        tokio::time::sleep(Duration::from_secs_f64(args.interval.max(0.1))).await;
    }
}
