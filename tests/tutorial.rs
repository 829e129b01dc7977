//! The tutorial, verbatim: `config/tutorial-q1.yaml` and `tutorial-q2.yaml` run on a
//! directory where tweets dated in the last hours keep arriving; the tutorial's three SQL
//! statements run unmodified through `trendflow sql`; `ps` lists both queries, a second start
//! of one is refused, progress documents and the event log record what was read, and
//! `trendflow stop` ends both cleanly.

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;

fn start(config: &str, input: &Path, out: &Path, run_dir: &Path) -> (Child, String) {
    let checkpoint = out.with_extension("checkpoint");
    start_pipeline(
        &[
            "run",
            config,
            "--set",
            &format!("sources.tweets.path={}", input.display()),
            "--set",
            &format!("sinks.result.path={}", out.display()),
            "--set",
            "trigger=200ms",
            "--set",
            "api.address=127.0.0.1:0",
            "--set",
            &format!("checkpoint.path={}", checkpoint.display()),
        ],
        run_dir,
    )
}

fn sql(run_dir: &Path, args: &[&str]) -> String {
    let o = trendflow(&[&["sql"], args].concat(), run_dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn get(addr: &str, path: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (code, body) = rt
        .block_on(trendflow_sql::client::request(addr, "GET", path, b""))
        .unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn the_tutorial_step_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    // 30 files of 100 tweets spread over the last 2.5 hours, arriving in two waves.
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
    let deliver = |fs: &[std::path::PathBuf]| {
        for f in fs {
            std::fs::copy(f, input.join(f.file_name().unwrap())).unwrap();
        }
    };
    deliver(&files[..10]);

    let (mut q1, q1_addr) = start(
        "config/tutorial-q1.yaml",
        &input,
        &tmp.path().join("q1.csv"),
        &run_dir,
    );
    let (mut q2, q2_addr) = start(
        "config/tutorial-q2.yaml",
        &input,
        &tmp.path().join("q2.csv"),
        &run_dir,
    );

    // A second start of a running query is refused, naming the running one.
    let o = trendflow(
        &[
            "run",
            "config/tutorial-q1.yaml",
            "--set",
            "api.enabled=false",
        ],
        &run_dir,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("`tweetquery_group_hashtag` is already running")
    );

    deliver(&files[10..]);
    let total_lines = 3000;
    wait_until("both queries to read every tweet", || {
        [&q1_addr, &q2_addr].iter().all(|a| {
            let recent = get(a, "/progress/recent");
            recent
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["numInputRows"].as_i64().unwrap())
                .sum::<i64>()
                == total_lines
        })
    });

    // The tutorial's statements, verbatim.
    let top10 = sql(
        &run_dir,
        &["select * from tweetquery_group_hashtag  order by count desc limit 10"],
    );
    let lines: Vec<&str> = top10.lines().collect();
    assert!(lines[1].ends_with("word|count|"), "{top10}");
    assert_eq!(lines.len(), 10 + 4, "{top10}");
    let counts: Vec<i64> = lines[3..13]
        .iter()
        .map(|l| {
            l.trim_end_matches('|')
                .rsplit('|')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    // The same counts as the query's CSV file.
    let (_, file) = table(&tmp.path().join("q1.csv"));
    assert_eq!(counts[0], *file.values().max().unwrap());

    let all = sql(&run_dir, &["select * from data"]);
    let header: String = all.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(header, "|window|word|count|", "{all}");
    assert!(all.contains("only showing top 20 rows"), "{all}");

    let recent_sql = "select * from data where window.start > current_timestamp()-INTERVAL 200 minutes order by word desc";
    // Windows close one epoch after the data that moved the watermark.
    wait_until("the recent windows to close", || {
        sql(&run_dir, &["--format", "json", recent_sql]) != "[]"
    });
    let shown = sql(&run_dir, &[recent_sql]);
    assert!(shown.lines().count() > 4, "{shown}");
    let rows: serde_json::Value =
        serde_json::from_str(&sql(&run_dir, &["--format", "json", recent_sql])).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty());
    let words: Vec<&str> = rows.iter().map(|r| r["word"].as_str().unwrap()).collect();
    assert!(
        words.windows(2).all(|w| w[0] >= w[1]),
        "not ordered by word desc"
    );
    let whole: serde_json::Value =
        serde_json::from_str(&sql(&run_dir, &["--format", "json", "select * from data"])).unwrap();
    assert!(rows.len() <= whole.as_array().unwrap().len());

    // Progress documents carry Spark's field names and the counts of this run.
    let last = get(&q2_addr, "/progress");
    for field in [
        "id",
        "runId",
        "name",
        "timestamp",
        "batchId",
        "numInputRows",
        "inputRowsPerSecond",
        "processedRowsPerSecond",
        "durationMs",
        "stateOperators",
        "sources",
        "sink",
    ] {
        assert!(last.get(field).is_some(), "no {field} in {last}");
    }
    assert_eq!(last["name"], "data");
    assert!(last["eventTime"]["watermark"].is_string());
    assert!(last["stateOperators"][0]["numRowsTotal"].as_i64().unwrap() > 0);
    let status = get(&q1_addr, "/status");
    assert!(status["message"].is_string() && status["isDataAvailable"].is_boolean());

    // ps lists both queries; stop ends them (epoch finished, checkpoint written).
    let ps = String::from_utf8(trendflow(&["ps"], &run_dir).stdout).unwrap();
    assert!(
        ps.contains("tweetquery_group_hashtag") && ps.contains("data"),
        "{ps}"
    );
    for name in ["tweetquery_group_hashtag", "data"] {
        let o = trendflow(&["stop", name], &run_dir);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(q1.wait().unwrap().code(), Some(0));
    assert_eq!(q2.wait().unwrap().code(), Some(0));
    // After the run: `ps --all` reads the event log; it holds one document per epoch.
    let ps_all = String::from_utf8(trendflow(&["ps", "--all", "--json"], &run_dir).stdout).unwrap();
    let ps_all: serde_json::Value = serde_json::from_str(&ps_all).unwrap();
    assert_eq!(ps_all.as_array().unwrap().len(), 2);
    assert!(
        ps_all
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "stopped")
    );
    let events = tmp.path().join("q1.checkpoint/events");
    let logged: i64 = std::fs::read_dir(&events)
        .unwrap()
        .flat_map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(&l).unwrap()["numInputRows"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(logged, total_lines);
}
