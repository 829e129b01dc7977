//! The pipeline's HTTP endpoint: the dashboard, SQL over the memory tables, status and
//! metrics.
//!
//! Binds 127.0.0.1 by default; `POST /sql` takes the query as the body and answers JSON
//! (default), CSV, a text table or Arrow IPC (`?format=` or the `Accept` header); a bad query
//! gets status 400 with DataFusion's message. `/` is the dashboard (docs/dashboard.md), fed by
//! `/events`: one server-sent event per second with the status, the recent epochs' progress
//! and every metric.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Deserialize;
use trendflow_core::metrics::{Metrics, names};

use crate::MemoryTables;

/// Supplies the live status document (`GET /status`).
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
pub type ProgressFn = Arc<dyn Fn(bool) -> serde_json::Value + Send + Sync>;

#[derive(Clone)]
pub struct ApiState {
    pub tables: MemoryTables,
    pub metrics: Metrics,
    pub status: StatusFn,
    /// Spark's `lastProgress` (false) or `recentProgress` (true).
    pub progress: ProgressFn,
    /// When set, every request must carry it: `Authorization: Bearer TOKEN`, or `?token=`
    /// (what a browser's `EventSource` and a first page load can send).
    pub token: Option<Arc<str>>,
    /// The pipeline's components and edges, for the dashboard's graph: a list of
    /// `{name, kind, type, inputs, parallelism}`.
    pub graph: serde_json::Value,
}

/// Refuses a request without the endpoint's token (401), when it has one.
async fn require_token(
    State(s): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &s.token else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(percent_decode)
    });
    let given = bearer.or(from_query).unwrap_or_default();
    if same_secret(given.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this endpoint needs its token: `Authorization: Bearer TOKEN` or `?token=TOKEN` (trendflow sql and top send $TRENDFLOW_API_TOKEN)\n",
        )
            .into_response()
    }
}

/// Compares in time that does not depend on where the first difference is.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Deserialize)]
struct SqlParams {
    format: Option<String>,
    q: Option<String>,
    /// Table format: rows shown (default 20, as Spark's `show()`), and `truncate=false` to
    /// show values whole.
    rows: Option<usize>,
    truncate: Option<bool>,
}

impl SqlParams {
    fn show(&self) -> ShowOptions {
        ShowOptions {
            rows: self.rows.unwrap_or(20),
            truncate: self.truncate.unwrap_or(true),
        }
    }
}

/// Result formats of `/sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Table,
    /// Arrow IPC stream: the result's batches as they are, for pyarrow or pandas.
    Arrow,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" | "application/json" => Some(Format::Json),
            "csv" | "text/csv" => Some(Format::Csv),
            "table" | "text/plain" => Some(Format::Table),
            "arrow" | "application/vnd.apache.arrow.stream" => Some(Format::Arrow),
            _ => None,
        }
    }

    /// The format an `Accept` header asks for: its media ranges by preference (`q`, then
    /// order), the first one served; none (or `*/*`) is JSON. `None`: nothing it accepts
    /// is served (406).
    pub fn from_accept(accept: &str) -> Option<Format> {
        let mut ranges: Vec<(f32, usize, &str)> = accept
            .split(',')
            .enumerate()
            .filter_map(|(i, range)| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().filter(|m| !m.is_empty())?;
                let q = parts
                    .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((q, i, media))
            })
            .filter(|(q, _, _)| *q > 0.0)
            .collect();
        if ranges.is_empty() {
            return accept.trim().is_empty().then_some(Format::Json);
        }
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranges
            .iter()
            .find_map(|(_, _, media)| match media.to_ascii_lowercase().as_str() {
                "*/*" | "application/*" => Some(Format::Json),
                "text/*" => Some(Format::Csv),
                m if m.contains('/') => Format::parse(m),
                _ => None,
            })
    }
}

/// Starts serving; returns the bound address (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/sql", post(sql_post).get(sql_get))
        .route("/tables", get(tables))
        .route("/status", get(status))
        .route("/progress", get(last_progress))
        .route("/progress/recent", get(recent_progress))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard))
        .route("/events", get(events))
        .route("/snapshot", get(snapshot))
        .route("/tap/{component}", get(tap))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP endpoint stopped");
        }
    });
    Ok((bound, handle))
}

async fn sql_post(
    State(s): State<ApiState>,
    Query(p): Query<SqlParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sql = String::from_utf8_lossy(&body).into_owned();
    run_sql(&s, &sql, p.format.as_deref(), p.show(), &headers).await
}

async fn sql_get(
    State(s): State<ApiState>,
    Query(p): Query<SqlParams>,
    headers: HeaderMap,
) -> Response {
    let Some(sql) = p.q.clone() else {
        return (
            StatusCode::BAD_REQUEST,
            "give the query as ?q= or POST it as the body\n",
        )
            .into_response();
    };
    run_sql(&s, &sql, p.format.as_deref(), p.show(), &headers).await
}

/// How many rows a table result shows, and whether values are cut (Spark's `show(n, truncate)`).
#[derive(Debug, Clone, Copy)]
pub struct ShowOptions {
    pub rows: usize,
    pub truncate: bool,
}

async fn run_sql(
    s: &ApiState,
    sql: &str,
    format: Option<&str>,
    show: ShowOptions,
    headers: &HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = match format {
        Some(f) => match Format::parse(f) {
            Some(f) => f,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("unknown format `{f}`: use json, csv, table or arrow\n"),
                )
                    .into_response();
            }
        },
        None => match Format::from_accept(accept) {
            Some(f) => f,
            None => {
                return (
                    StatusCode::NOT_ACCEPTABLE,
                    format!(
                        "cannot answer as `{accept}`: application/json, text/csv, text/plain or application/vnd.apache.arrow.stream (or ?format=)\n"
                    ),
                )
                    .into_response();
            }
        },
    };
    match s.tables.query_with_schema(sql).await {
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Ok((schema, batches)) => {
            let (ctype, body) = match format {
                Format::Json => ("application/json", to_json(&batches).to_string()),
                Format::Csv => ("text/csv; charset=utf-8", to_csv(&schema, &batches)),
                Format::Table => (
                    "text/plain; charset=utf-8",
                    crate::show::show_batches(&schema, &batches, show.rows, show.truncate),
                ),
                Format::Arrow => {
                    return match to_arrow_ipc(&schema, &batches) {
                        Ok(bytes) => (
                            [(header::CONTENT_TYPE, "application/vnd.apache.arrow.stream")],
                            bytes,
                        )
                            .into_response(),
                        Err(e) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
                        }
                    };
                }
            };
            ([(header::CONTENT_TYPE, ctype)], body).into_response()
        }
    }
}

/// The result as an Arrow IPC stream.
pub fn to_arrow_ipc(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, datafusion::arrow::error::ArrowError> {
    let mut out = Vec::new();
    let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(out)
}

/// The dashboard: one page, embedded in the binary.
async fn dashboard() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard.html"),
    )
        .into_response()
}

/// What the dashboard shows, as one JSON document: status, recent progress, metrics.
pub fn dashboard_document(s: &ApiState) -> serde_json::Value {
    let metrics: Vec<_> = s
        .metrics
        .snapshot()
        .into_iter()
        .map(|(k, v)| {
            serde_json::json!({
                "name": k.name,
                "component": k.component,
                "label": k.label.map(|(n, v)| format!("{n}={v}")),
                "value": exposed_value(k.name, v),
            })
        })
        .collect();
    let restarts: Vec<_> = s
        .metrics
        .restarts()
        .into_iter()
        .map(
            |r| serde_json::json!({"at_ms": r.at_ms, "component": r.component, "reason": r.reason}),
        )
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    serde_json::json!({
        "now_ms": now_ms,
        "status": (s.status)(),
        "recent": (s.progress)(true),
        "metrics": metrics,
        "graph": s.graph,
        "restarts": restarts,
    })
}

/// The dashboard's document once (for `trendflow top` and scripts).
async fn snapshot(State(s): State<ApiState>) -> Response {
    axum::Json(dashboard_document(&s)).into_response()
}

/// Server-sent events for the dashboard: a `tick` at once, then one per second.
async fn events(
    State(s): State<ApiState>,
) -> axum::response::sse::Sse<
    impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let stream = futures::stream::unfold((s, true), |(s, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let data = dashboard_document(&s).to_string();
        Some((Ok(Event::default().event("tick").data(data)), (s, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct TapParams {
    /// Lines to send before ending the response (default 20).
    limit: Option<usize>,
}

/// `GET /tap/COMPONENT?limit=N`: samples of the records the component sends on, as they pass
/// (newline-delimited JSON, streamed), starting now; the response ends after `limit` lines.
async fn tap(
    State(s): State<ApiState>,
    axum::extract::Path(component): axum::extract::Path<String>,
    Query(params): Query<TapParams>,
) -> Response {
    let Some(listener) = s.metrics.taps().listen(&component) else {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no component `{component}`; the pipeline's components: {}\n",
                s.metrics.taps().components().join(", ")
            ),
        )
            .into_response();
    };
    let limit = params.limit.unwrap_or(20).max(1);
    let from = listener.position();
    let lines = futures::stream::unfold((listener, from, 0), move |(l, from, sent)| async move {
        if sent >= limit {
            return None;
        }
        loop {
            let (lines, next) = l.read_after(from);
            if !lines.is_empty() {
                let mut chunk = String::new();
                let mut n = 0;
                for line in lines.into_iter().take(limit - sent) {
                    chunk.push_str(&line);
                    chunk.push('\n');
                    n += 1;
                }
                return Some((
                    Ok::<_, std::convert::Infallible>(chunk),
                    (l, next, sent + n),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn tables(State(s): State<ApiState>) -> Response {
    let v: Vec<_> = s
        .tables
        .names()
        .into_iter()
        .map(|n| serde_json::json!({"name": n, "rows": s.tables.row_count(&n)}))
        .collect();
    axum::Json(v).into_response()
}

async fn last_progress(State(s): State<ApiState>) -> Response {
    axum::Json((s.progress)(false)).into_response()
}

async fn recent_progress(State(s): State<ApiState>) -> Response {
    axum::Json((s.progress)(true)).into_response()
}

async fn status(State(s): State<ApiState>) -> Response {
    axum::Json((s.status)()).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let mut out = String::new();
    let mut last = "";
    for (k, v) in s.metrics.snapshot() {
        if k.name != last {
            let kind = if k.name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            out.push_str(&format!("# HELP {} {}\n", k.name, names::help(k.name)));
            out.push_str(&format!("# TYPE {} {}\n", k.name, kind));
            last = k.name;
        }
        let mut labels = format!("component=\"{}\"", escape_label(&k.component));
        if let Some((n, val)) = &k.label {
            labels.push_str(&format!(",{n}=\"{}\"", escape_label(val)));
        }
        out.push_str(&format!(
            "{}{{{}}} {}\n",
            k.name,
            labels,
            exposed_value(k.name, v)
        ));
    }
    // Sorted by name: one TYPE line per histogram, however many components report it.
    let mut last = "";
    for (k, h) in s.metrics.histogram_snapshot() {
        let labels = format!("component=\"{}\"", escape_label(&k.component));
        if k.name != last {
            out.push_str(&format!("# HELP {} {}\n", k.name, names::help(k.name)));
            out.push_str(&format!("# TYPE {} histogram\n", k.name));
            last = k.name;
        }
        for (bound, n) in &h.cumulative {
            out.push_str(&format!(
                "{}_bucket{{{labels},le=\"{bound}\"}} {n}\n",
                k.name
            ));
        }
        out.push_str(&format!(
            "{}_bucket{{{labels},le=\"+Inf\"}} {}\n{}_sum{{{labels}}} {}\n{}_count{{{labels}}} {}\n",
            k.name, h.count, k.name, h.sum, k.name, h.count
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// A metric's value in the unit its name states (an integer when it is stored in it).
fn exposed_value(name: &str, v: i64) -> serde_json::Number {
    let scale = names::exposed_scale(name);
    if scale == 1.0 {
        v.into()
    } else {
        serde_json::Number::from_f64(v as f64 * scale).unwrap_or_else(|| 0.into())
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn cell_strings(batch: &RecordBatch) -> Vec<Vec<Option<String>>> {
    let opts = FormatOptions::default();
    let fmts: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
        .collect();
    (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .zip(&fmts)
                .map(|(c, f)| (!c.is_null(r)).then(|| f.value(r).to_string()))
                .collect()
        })
        .collect()
}

/// Rows as a JSON array of objects; integers stay numbers, structs (Spark's `window`) become
/// nested objects.
pub fn to_json(batches: &[RecordBatch]) -> serde_json::Value {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        for r in 0..b.num_rows() {
            let mut obj = serde_json::Map::new();
            for (i, field) in schema.fields().iter().enumerate() {
                obj.insert(field.name().clone(), json_value(b.column(i).as_ref(), r));
            }
            out.push(serde_json::Value::Object(obj));
        }
    }
    serde_json::Value::Array(out)
}

fn json_value(col: &dyn Array, row: usize) -> serde_json::Value {
    use datafusion::arrow::array::AsArray;
    if col.is_null(row) {
        return serde_json::Value::Null;
    }
    match col.data_type() {
        DataType::Int64 => col
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(row)
            .into(),
        DataType::Int32 => col
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .value(row)
            .into(),
        DataType::UInt64 => col
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(row)
            .into(),
        DataType::Float64 => col
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
            .value(row)
            .into(),
        DataType::Boolean => col.as_boolean().value(row).into(),
        DataType::Struct(fields) => {
            let s = col.as_struct();
            let mut obj = serde_json::Map::new();
            for (i, f) in fields.iter().enumerate() {
                obj.insert(f.name().clone(), json_value(s.column(i).as_ref(), row));
            }
            serde_json::Value::Object(obj)
        }
        _ => {
            let f = ArrayFormatter::try_new(col, &FormatOptions::default()).unwrap();
            serde_json::Value::String(f.value(row).to_string())
        }
    }
}

/// RFC 4180 CSV with a header line.
pub fn to_csv(schema: &SchemaRef, batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    {
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| csv_field(f.name()))
            .collect();
        out.push_str(&names.join(","));
        out.push('\n');
    }
    for b in batches {
        for row in cell_strings(b) {
            let cells: Vec<String> = row
                .iter()
                .map(|c| c.as_deref().map(csv_field).unwrap_or_default())
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

/// Quotes a CSV field when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn accept_headers_choose_the_preferred_format_served() {
        let cases = [
            ("", Some(Format::Json)),
            ("*/*", Some(Format::Json)),
            ("text/csv", Some(Format::Csv)),
            ("TEXT/CSV; charset=utf-8", Some(Format::Csv)),
            ("application/vnd.apache.arrow.stream", Some(Format::Arrow)),
            ("text/html, text/csv;q=0.9, */*;q=0.1", Some(Format::Csv)),
            ("application/json;q=0.5, text/plain", Some(Format::Table)),
            ("text/csv;q=0, application/json", Some(Format::Json)),
            ("image/png", None),
            ("text/csv;q=0", None),
            // A format name is a `?format=` value, not a media type.
            ("csv", None),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::from_accept(accept), want, "Accept: {accept}");
        }
    }
}
