//! The memory tables over the PostgreSQL wire protocol: a running pipeline answers psql (from
//! Debian's PostgreSQL, installed by .ci/run or by the test as root) and tokio-postgres with
//! the same rows its HTTP SQL endpoint returns; `\dt` lists the tables through pg_catalog; a
//! wrong password is refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

const PASSWORD: &str = "s3cret-for-the-test";

fn http_sql(addr: &str, sql: &str) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt
        .block_on(trendflow_sql::client::post_sql(addr, sql, "json", ""))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn psql(bindir: &Path, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(bindir.join("psql"))
        .arg(url)
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .expect("psql runs")
}

#[test]
fn psql_and_tokio_postgres_read_the_live_tables() {
    let bindir = trendflow_connectors::testkit::provision::ensure_postgres()
        .expect("PostgreSQL's client programs");
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let input = tmp.path().join("input");
    let o = trendflow(
        &[
            "generate",
            "--out",
            input.to_str().unwrap(),
            "--files",
            "3",
            "--tweets-per-file",
            "300",
        ],
        &run_dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (mut pipeline, found) = start_pipeline_with_env(
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
            "--set",
            "api.pgwire.address=127.0.0.1:0",
            "--set",
            "api.pgwire.password_env=TEST_PG_PASSWORD",
        ],
        &run_dir,
        &[("TEST_PG_PASSWORD", PASSWORD)],
        &[
            "SQL endpoint on http://",
            "PostgreSQL endpoint on postgresql://",
        ],
    )
    .expect("the pipeline announces both endpoints");
    let (http, pg) = (
        &found[0],
        found[1].trim_end_matches("/datafusion").to_string(),
    );
    let table = "tweetquery_group_hashtag";
    // All three files read: 900 tweets' hashtags counted.
    let query = format!("SELECT word, count FROM {table} ORDER BY count DESC, word LIMIT 10");
    wait_until("all 900 tweets read", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (_, body) = rt
            .block_on(trendflow_sql::client::request(http, "GET", "/status", b""))
            .unwrap();
        serde_json::from_str::<Value>(&body).is_ok_and(|s| s["records"].as_i64() == Some(900))
    });
    let want = http_sql(http, &query);
    let want: Vec<(String, i64)> = want
        .iter()
        .map(|r| {
            (
                r["word"].as_str().unwrap().to_string(),
                r["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(want.len(), 10);

    // tokio-postgres (extended protocol, typed rows).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (host, port) = pg.rsplit_once(':').unwrap();
    let got: Vec<(String, i64)> = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(
            &format!("host={host} port={port} user=analyst password={PASSWORD} dbname=datafusion"),
            tokio_postgres::NoTls,
        )
        .await
        .expect("tokio-postgres connects with the password");
        tokio::spawn(connection);
        client
            .query(&query, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect()
    });
    assert_eq!(got, want, "tokio-postgres differs from /sql");

    // psql: the same rows, and `\dt` lists the memory tables.
    let url = format!("postgresql://analyst:{PASSWORD}@{pg}/datafusion");
    let o = psql(&bindir, &url, &["-A", "-t", "-F", ",", "-c", &query]);
    assert!(
        o.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows: Vec<(String, i64)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (w, c) = l.rsplit_once(',').unwrap();
            (w.to_string(), c.parse().unwrap())
        })
        .collect();
    assert_eq!(rows, want, "psql differs from /sql");
    let o = psql(&bindir, &url, &["-c", "\\dt"]);
    assert!(
        o.status.success(),
        "psql \\dt: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        listing.contains(table),
        "\\dt does not list {table}:\n{listing}"
    );

    // A wrong password is refused.
    let o = psql(
        &bindir,
        &format!("postgresql://analyst:wrong@{pg}/datafusion"),
        &["-c", "SELECT 1"],
    );
    assert!(!o.status.success(), "a wrong password was accepted");

    let _ = pipeline.kill();
    let _ = pipeline.wait();
}
