//! The dashboard in a real browser: Debian's headless Chromium, driven over WebDriver by
//! `chromedriver`, opens the page a running pipeline serves at `/` while tweets arrive. The
//! charts and the figures change as epochs commit, and the top-hashtag table equals what the
//! SQL endpoint answers for the same query. A screenshot is saved as a test artifact
//! (`target/dashboard.png` under CARGO_TARGET_DIR, or the temp dir).
//!
//! Chromium comes from Debian's `chromium` and `chromium-driver` packages (installed by
//! `.ci/run`, or by this test when it runs as root and they are missing); never a download.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

/// One WebDriver (or any JSON-over-HTTP) request.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then exactly Content-Length bytes: chromedriver keeps connections open.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let (head, body_start) = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "{method} {path}: connection closed before the answer"
        );
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&raw[..i]).into_owned(), i + 4);
        }
    };
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    match length {
        Some(n) => {
            while raw.len() < body_start + n {
                let got = s.read(&mut buf).unwrap();
                assert!(got > 0, "{method} {path}: answer cut short");
                raw.extend_from_slice(&buf[..got]);
            }
        }
        None => {
            s.read_to_end(&mut raw).unwrap();
        }
    }
    let rest = String::from_utf8_lossy(&raw[body_start..]).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let rest = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&rest)
    } else {
        rest
    };
    (
        code,
        serde_json::from_str(&rest).unwrap_or(Value::String(rest)),
    )
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

fn ensure_chromium() {
    if Path::new("/usr/bin/chromedriver").exists() {
        return;
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root_user,
        "Chromium is not installed: install Debian's chromium and chromium-driver packages (.ci/run does)"
    );
    let ok = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "installing Debian's chromium and chromium-driver failed"
    );
}

/// chromedriver on a free port, with a headless Chromium session.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        ensure_chromium();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        wait_until("chromedriver to listen", || {
            TcpStream::connect(&addr).is_ok()
        });
        let profile = tempfile::tempdir().unwrap();
        // As the machine probe found: root needs --no-sandbox, and a closed network needs the
        // background services off.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,3000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let (code, v) = http(
            &addr,
            "POST",
            "/session",
            Some(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
            }}})),
        );
        assert_eq!(code, 200, "no browser session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        let (code, v) = http(
            &self.addr,
            method,
            &format!("/session/{}/{what}", self.session),
            body,
        );
        assert_eq!(code, 200, "{what}: {v}");
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns its result.
    fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", "screenshot", None);
        std::fs::write(path, base64(b64.as_str().unwrap())).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| value(c) as u32).collect();
        let n = v.iter().fold(0u32, |a, &x| (a << 6) | x) << (6 * (4 - v.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..v.len() - 1]);
    }
    out
}

/// What the page shows: epochs committed, and the top-hashtag table as (key, count).
fn page_figures(b: &Browser) -> (i64, Vec<(String, i64)>) {
    let v = b.eval(
        "return {epochs: Number(document.getElementById('epochs').textContent), \
         rows: [...document.querySelectorAll('#top-table tbody tr.top-row')].map(r => \
           [r.querySelector('.key').textContent, Number(r.querySelector('.value').textContent)])};",
    );
    let rows = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let count = r[1].as_i64();
            let count = count.unwrap_or_else(|| panic!("a count that is not a number: {v}"));
            (r[0].as_str().unwrap().to_string(), count)
        })
        .collect();
    (v["epochs"].as_i64().unwrap(), rows)
}

/// What each chart drew: `{id: {points, series: [labels], last: [per series], totals: [per
/// series]}}`.
fn charts(b: &Browser) -> Value {
    b.eval(
        "return Object.fromEntries([...document.querySelectorAll('canvas[data-points]')].map(c => \
           [c.id, {points: Number(c.dataset.points), series: JSON.parse(c.dataset.series), last: JSON.parse(c.dataset.last), totals: JSON.parse(c.dataset.totals)}]));",
    )
}

/// The SQL endpoint's top 20 of the window ending at `window_end` (as the page shows it).
fn sql_top(addr: &str, window_end: &str) -> Vec<(String, i64)> {
    let q = format!(
        "SELECT \"word\" AS key, \"count\" AS value FROM \"data\" WHERE CAST(\"window\".\"end\" AS VARCHAR) = '{}' ORDER BY value DESC, key LIMIT 20",
        window_end.replace('\'', "''")
    );
    let q = q.as_str();
    let (head, body) = raw(addr, "POST", "/sql?format=json", q, None);
    let body = String::from_utf8(body).unwrap();
    let body = if head.to_ascii_lowercase().contains("chunked") {
        dechunk(&body)
    } else {
        body
    };
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn artifact(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn the_dashboard_shows_live_figures_equal_to_sql_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start_time = trendflow_core::time::format_iso_utc((now - 9_000) * 1000);
    let generated = tmp.path().join("generated");
    let o = trendflow(
        &[
            "generate",
            "--out",
            generated.to_str().unwrap(),
            "--files",
            "30",
            "--tweets-per-file",
            "100",
            "--rate",
            "0.33",
            "--start",
            &start_time,
        ],
        &run_dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&generated)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let deliver = |fs: &[PathBuf]| {
        for f in fs {
            std::fs::copy(f, input.join(f.file_name().unwrap())).unwrap();
        }
    };
    deliver(&files[..10]);
    let (mut pipeline, addr) = start_pipeline(
        &[
            "run",
            "config/tutorial-q2.yaml",
            "--set",
            &format!("sources.tweets.path={}", input.display()),
            "--set",
            &format!("sinks.result.path={}", tmp.path().join("q2.csv").display()),
            "--set",
            "trigger=300ms",
            "--set",
            "api.address=127.0.0.1:0",
        ],
        &run_dir,
    );

    let browser = Browser::start();
    browser.open(&format!("http://{addr}/"));
    // First wave: the page fills in from the event stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (first_epochs, first_rows) = loop {
        let (epochs, rows) = page_figures(&browser);
        if epochs > 0 && !rows.is_empty() {
            break (epochs, rows);
        }
        assert!(Instant::now() < deadline, "the dashboard never showed data");
        std::thread::sleep(Duration::from_millis(300));
    };
    // Every chart drew a point per epoch shown (the page keeps what it drew in data-*).
    let first_charts = charts(&browser);
    for (id, c) in first_charts.as_object().unwrap() {
        assert!(
            c["points"].as_i64().unwrap() >= 1,
            "chart {id} is empty: {c}"
        );
    }
    assert!(
        first_charts["rows"]["totals"][0].as_f64().unwrap() > 0.0,
        "no input rows charted: {first_charts}"
    );
    // The pipeline graph: the six components of tutorial-q2.yaml, five edges, a mailbox
    // gauge on each reading component; no restart.
    let graph = browser.eval(
        "return [document.querySelectorAll('#dag g.node').length, \
                 document.querySelectorAll('#dag path[marker-end]').length, \
                 [...document.querySelectorAll('#dag g.node')].filter(g => g.querySelectorAll('rect').length === 3).length, \
                 document.querySelector('#restarts tbody').textContent];",
    );
    assert_eq!(graph, json!([6, 5, 5, "none"]), "the pipeline graph");

    // Second wave: figures move, and the table equals SQL's answer for the window the page
    // shows (a closed window of an append-mode table does not change).
    deliver(&files[10..]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (epochs, rows) = page_figures(&browser);
        let window_end =
            browser.eval("return document.getElementById('top-table').dataset.windowEnd || '';");
        let window_end = window_end.as_str().unwrap().to_string();
        let want = sql_top(&addr, &window_end);
        if epochs > first_epochs && rows != first_rows && !rows.is_empty() && rows == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard's top table never matched SQL: page {rows:?} (window ending {window_end}), sql {want:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The charts moved with the data: more epochs drawn, more input rows in total, the
    // stages' time and the state's size charted; the chosen key across several windows.
    let last_charts = charts(&browser);
    for id in [
        "rates",
        "rows",
        "duration",
        "stages",
        "gap",
        "state",
        "state-bytes",
    ] {
        assert!(
            last_charts[id]["points"].as_i64() > first_charts[id]["points"].as_i64(),
            "chart {id} did not grow: {} then {}",
            first_charts[id],
            last_charts[id]
        );
    }
    let total = |c: &Value, id: &str| c[id]["totals"][0].as_f64().unwrap();
    assert!(total(&last_charts, "rows") >= 3000.0, "{last_charts}");
    assert!(total(&last_charts, "rows") > total(&first_charts, "rows"));
    // Time per stage: each stage of tutorial-q2.yaml busy for some time, then the checkpoint.
    assert_eq!(
        last_charts["stages"]["series"],
        json!([
            "parse",
            "words",
            "hashtag_counts",
            "data",
            "result",
            "checkpoint"
        ]),
        "{last_charts}"
    );
    for (i, stage) in ["parse", "words", "hashtag_counts"].iter().enumerate() {
        assert!(
            last_charts["stages"]["totals"][i].as_f64().unwrap() > 0.0,
            "{stage} never busy: {last_charts}"
        );
    }
    assert!(
        last_charts["gap"]["last"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_number),
        "no watermark gap or event-time lag: {last_charts}"
    );
    assert!(
        last_charts["state-bytes"]["last"][0].as_f64().unwrap() > 0.0,
        "{last_charts}"
    );
    assert!(
        last_charts["series"]["points"].as_i64().unwrap() >= 2,
        "the key's series: {}",
        last_charts["series"]
    );
    // Nothing is fetched from elsewhere: the page works offline.
    let external = browser.eval(
        "return [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => /^(https?:)?\\/\\//.test(u));",
    );
    assert_eq!(external, json!([]), "assets from elsewhere");
    let shot = artifact("dashboard.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot"
    );
    eprintln!("screenshot: {}", shot.display());
    drop(browser);
    let _ = pipeline.kill();
    let _ = pipeline.wait();
}

/// One request with a raw answer (head, body bytes); for streams, stops after `until`.
fn raw(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    until: Option<&[u8]>,
) -> (String, Vec<u8>) {
    raw_with_headers(addr, method, path, "", body, until)
}

/// `raw` with more header lines (each ending in `\r\n`).
fn raw_with_headers(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
    until: Option<&[u8]>,
) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(u) = until
            && let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n")
            && raw[i + 4..].windows(u.len()).any(|w| w == u)
        {
            break;
        }
    }
    let i = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..i]).into_owned(),
        raw[i + 4..].to_vec(),
    )
}

/// `name{labels} value` lines of a Prometheus text exposition, checked for its grammar:
/// every metric with one `# HELP` and one `# TYPE` before its series, base units (no
/// milli- or nanoseconds), counters named `_total`, histograms as `_seconds` with
/// cumulative `_bucket`s ending at `le="+Inf"` equal to `_count`.
fn exposition(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    let mut typed = std::collections::BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut last_bucket: Option<(String, f64)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(!help.trim().is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "a second HELP: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(helped.contains(name), "no # HELP before {line}");
            assert!(
                !["milli", "nano", "micro"].iter().any(|u| name.contains(u)),
                "not in base units: {line}"
            );
            assert!(!typed.contains_key(name), "a second TYPE: {line}");
            match kind {
                "counter" => assert!(name.ends_with("_total"), "{line}"),
                "gauge" => assert!(!name.ends_with("_total"), "{line}"),
                "histogram" => assert!(name.ends_with("_seconds"), "{line}"),
                _ => panic!("unknown type: {line}"),
            }
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_once('{').unwrap();
        let value: f64 = value.parse().unwrap();
        assert!(
            labels.ends_with('}') && labels.contains("component=\""),
            "{line}"
        );
        assert!(
            name.starts_with("trendflow_")
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{line}"
        );
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| typed.get(*b).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(base), "no # TYPE before {line}");
        if name.ends_with("_bucket") {
            if let Some((series, previous)) = &last_bucket
                && series == base
            {
                assert!(value >= *previous, "buckets not cumulative: {line}");
            }
            last_bucket = Some((base.to_string(), value));
        } else if name.ends_with("_count") && base != name {
            assert_eq!(
                last_bucket.as_ref().map(|b| b.1),
                Some(value),
                "+Inf bucket != count: {line}"
            );
            last_bucket = None;
        }
        out.push((name.to_string(), labels.to_string(), value));
    }
    out
}

fn metric(all: &[(String, String, f64)], name: &str, component: &str) -> f64 {
    all.iter()
        .filter(|(n, l, _)| n == name && l.contains(&format!("component=\"{component}\"")))
        .map(|(_, _, v)| v)
        .sum()
}

/// `/metrics` parses as Prometheus text and its counters move as data arrives; `/sql` answers
/// Arrow IPC with the rows JSON has, and 400 with DataFusion's message for bad SQL; `/events`
/// streams the dashboard's document; `/` is the dashboard.
#[test]
fn metrics_sql_formats_and_events_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let generated = tmp.path().join("generated");
    let o = trendflow(
        &[
            "generate",
            "--out",
            generated.to_str().unwrap(),
            "--files",
            "4",
            "--tweets-per-file",
            "200",
        ],
        &run_dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&generated)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::copy(&files[0], input.join("a.json")).unwrap();
    let (mut pipeline, addr) = start_pipeline(
        &[
            "run",
            "config/tutorial-q1.yaml",
            "--set",
            &format!("sources.tweets.path={}", input.display()),
            "--set",
            &format!("sinks.result.path={}", tmp.path().join("q1.csv").display()),
            "--set",
            "trigger=200ms",
            "--set",
            "api.address=127.0.0.1:0",
        ],
        &run_dir,
    );
    let parsed = |addr: &str| {
        let (head, body) = raw(addr, "GET", "/metrics", "", None);
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        exposition(&String::from_utf8(body).unwrap())
    };
    // The parser counts a record when it reads it, the histogram an epoch when it commits,
    // later: wait for both (asserting the second right after the first was a race).
    wait_until(
        "the first file to be parsed and its epoch committed",
        || {
            let all = parsed(&addr);
            metric(&all, "trendflow_records_in_total", "parse") >= 200.0
                && metric(
                    &all,
                    "trendflow_epoch_duration_seconds_count",
                    "tweetquery_group_hashtag",
                ) >= 1.0
        },
    );
    let all = parsed(&addr);
    let before = metric(&all, "trendflow_records_in_total", "parse");
    let epochs_before = metric(
        &all,
        "trendflow_epoch_duration_seconds_count",
        "tweetquery_group_hashtag",
    );
    assert!(epochs_before >= 1.0, "no epoch in the duration histogram");
    std::fs::copy(&files[1], input.join("b.json")).unwrap();
    wait_until("the counters and the epoch histogram to move", || {
        let all = parsed(&addr);
        metric(&all, "trendflow_records_in_total", "parse") >= before + 200.0
            && metric(
                &all,
                "trendflow_epoch_duration_seconds_count",
                "tweetquery_group_hashtag",
            ) > epochs_before
    });

    let q = "SELECT word, count FROM tweetquery_group_hashtag ORDER BY count DESC, word";
    let (head, json_body) = raw(&addr, "POST", "/sql?format=json", q, None);
    assert!(head.contains(" 200 "), "{head}");
    let json_rows = serde_json::from_slice::<Value>(&json_body)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    assert!(json_rows > 10);
    let (head, arrow_body) = raw(&addr, "POST", "/sql?format=arrow", q, None);
    assert!(
        head.contains("application/vnd.apache.arrow.stream"),
        "{head}"
    );
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(
        std::io::Cursor::new(arrow_body),
        None,
    )
    .unwrap();
    let arrow_rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(arrow_rows, json_rows, "Arrow IPC and JSON disagree");
    let (head, body) = raw(&addr, "POST", "/sql", "SELECT nope FROM nowhere", None);
    assert!(head.contains(" 400 "), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("nowhere"),
        "unclear error"
    );
    // The format chosen by `Accept`, by preference; 406 when none is served.
    let accept = |value: &str| {
        let (head, body) = raw_with_headers(
            &addr,
            "POST",
            "/sql",
            &format!("Accept: {value}\r\n"),
            q,
            None,
        );
        (head, String::from_utf8_lossy(&body).into_owned())
    };
    let (head, body) = accept("text/html, text/csv;q=0.9, */*;q=0.1");
    assert!(head.contains("text/csv"), "{head}");
    assert!(body.contains("word,count"), "{body}");
    let (head, body) = accept("image/png");
    assert!(head.contains(" 406 "), "{head}");
    assert!(
        body.contains("text/csv"),
        "the error names what is served: {body}"
    );
    // Time per stage moves with the work, in seconds as its name says.
    let busy = metric(&parsed(&addr), "trendflow_busy_seconds_total", "parse");
    assert!(busy > 0.0 && busy < 600.0, "parse busy {busy} s");

    let (head, body) = raw(&addr, "GET", "/events", "", Some(b"\n\n"));
    assert!(head.contains("text/event-stream"), "{head}");
    let text = String::from_utf8_lossy(&body);
    let data = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("data: ")
                .or_else(|| l.split_once("data: ").map(|x| x.1))
        })
        .unwrap_or_else(|| panic!("no event: {text}"));
    let doc: Value = serde_json::from_str(data).unwrap();
    assert_eq!(doc["status"]["name"], "tweetquery_group_hashtag");
    assert!(doc["recent"].as_array().is_some_and(|r| !r.is_empty()));
    // The terminal view: the same figures, and the top of the table.
    let o = trendflow(&["top", "--once", "--addr", &addr], &run_dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let screen = String::from_utf8_lossy(&o.stdout);
    for want in [
        "tweetquery_group_hashtag",
        "component",
        "records in",
        "parse",
        "top of `tweetquery_group_hashtag`",
        "  1. #",
    ] {
        assert!(screen.contains(want), "no `{want}` in:\n{screen}");
    }
    let (head, page) = raw(&addr, "GET", "/", "", None);
    assert!(head.contains("text/html"), "{head}");
    assert!(String::from_utf8_lossy(&page).contains("new EventSource(\"/events\""));

    // The graph the dashboard draws: every component with its type and inputs.
    let graph = doc["graph"].as_array().expect("a graph");
    let node = |name: &str| {
        graph
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {graph:?}"))
    };
    assert_eq!(node("tweets")["kind"], "source");
    assert_eq!(node("tweets")["type"], "file");
    assert_eq!(node("parse")["type"], "parse_json");
    assert_eq!(node("parse")["inputs"], json!(["tweets"]));
    assert_eq!(node("tweetquery_group_hashtag")["kind"], "sink");
    // Mailboxes: each reading component has a capacity, and once the input is read every
    // message sent was taken off (the fill level the graph shows is exact, never negative).
    wait_until("every mailbox to drain", || {
        let all = parsed(&addr);
        graph.iter().filter(|n| n["kind"] != "source").all(|n| {
            let name = n["name"].as_str().unwrap();
            metric(&all, "trendflow_mailbox_capacity_messages", name) > 0.0
                && metric(&all, "trendflow_mailbox_queued_messages", name) == 0.0
        })
    });
    // A checkpoint-less run has no checkpoint figures; no restart happened.
    assert_eq!(doc["restarts"], json!([]));

    // `trendflow tap`: the parser's posts as they pass, while new files arrive.
    let mut tap = Command::new(bin())
        .args(["tap", "parse", "-n", "5", "--addr", &addr])
        .env("TRENDFLOW_RUN_DIR", &run_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut delivered = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tap.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tap printed nothing");
        std::fs::copy(
            &files[delivered % files.len()],
            input.join(format!("tap-{delivered}.json")),
        )
        .unwrap();
        delivered += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let o = tap.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    for post in &lines {
        assert!(post["id"].is_string() && post["text"].is_string(), "{post}");
        assert!(
            post["event_time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{post}"
        );
    }
    // An unknown component: a clear error naming the real ones.
    let o = trendflow(&["tap", "nope", "--addr", &addr], &run_dir);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no component `nope`") && err.contains("parse"),
        "{err}"
    );
    let _ = pipeline.kill();
    let _ = pipeline.wait();
}

/// `api.token_env`: without the token every endpoint answers 401; with it (header, or
/// `?token=` for the browser's first load and its event stream) it answers; `trendflow sql`
/// sends `$TRENDFLOW_API_TOKEN`.
#[test]
fn a_token_protects_every_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let input = tmp.path().join("input");
    let o = trendflow(
        &[
            "generate",
            "--out",
            input.to_str().unwrap(),
            "--files",
            "2",
            "--tweets-per-file",
            "100",
        ],
        &run_dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut child = Command::new(bin())
        .args([
            "run",
            "config/tutorial-q1.yaml",
            "--set",
            &format!("sources.tweets.path={}", input.display()),
            "--set",
            &format!("sinks.result.path={}", tmp.path().join("q1.csv").display()),
            "--set",
            "api.address=127.0.0.1:0",
            "--set",
            "api.token_env=TF_TEST_TOKEN",
        ])
        .current_dir(root())
        .env("TRENDFLOW_RUN_DIR", &run_dir)
        .env("TF_TEST_TOKEN", "s3cret/+token")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let addr = loop {
        let line = lines.next().expect("no endpoint announced").unwrap();
        if let Some(rest) = line.split("SQL endpoint on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    for path in ["/", "/metrics", "/status", "/events", "/sql?q=select%201"] {
        let (head, _) = raw(&addr, "GET", path, "", None);
        assert!(head.contains(" 401 "), "{path} without the token: {head}");
    }
    let with_header = |path: &str| {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret/+token\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw
    };
    assert!(with_header("/status").contains(" 200 "));
    assert!(with_header("/metrics").contains(" 200 "));
    let (head, _) = raw(&addr, "GET", "/?token=s3cret%2F%2Btoken", "", None);
    assert!(head.contains(" 200 "), "{head}");
    let (head, _) = raw(&addr, "GET", "/status?token=wrong", "", None);
    assert!(head.contains(" 401 "), "{head}");
    wait_until("the table to fill", || {
        let o = Command::new(bin())
            .args([
                "sql",
                "--addr",
                &addr,
                "--format",
                "json",
                "select count(*) AS n from tweetquery_group_hashtag",
            ])
            .env("TRENDFLOW_API_TOKEN", "s3cret/+token")
            .output()
            .unwrap();
        o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("\"n\":0")
    });
    let o = Command::new(bin())
        .args(["sql", "--addr", &addr, "select 1"])
        .env_remove("TRENDFLOW_API_TOKEN")
        .output()
        .unwrap();
    assert!(!o.status.success(), "sql without the token succeeded");
    let _ = child.kill();
    let _ = child.wait();
}
