//! S3 end to end, against a real S3 endpoint on 127.0.0.1 (s3s-fs, started by the test):
//! tweets read from a bucket, checkpoints kept in a bucket, results written as parquet to a
//! bucket. A run killed with `kill -9` at random moments and restarted ends with the same
//! parquet rows as a clean run; requests failed on purpose by a proxy (503 SlowDown, 500,
//! connections closed) change nothing; the parquet output reads back with DataFusion and
//! DuckDB; incremental listing costs the new keys only, over 10,000 objects.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use trendflow_connectors::testkit::faulty_proxy::{Faults, FaultyProxy};
use trendflow_connectors::testkit::local_s3::{ACCESS_KEY, LocalS3, SECRET_KEY};

const CONFIG: &str = "tests/fixtures/s3-pipeline.yaml";

struct Case {
    dir: tempfile::TempDir,
    s3: LocalS3,
}

impl Case {
    /// `files` files of generated tweets in `s3://tweets/input/`, named in arrival order.
    fn new(files: usize, per_file: usize) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let raw = generate_crash_input(dir.path(), files, per_file);
        let s3 = LocalS3::start(&dir.path().join("s3")).unwrap();
        for bucket in ["tweets", "checkpoints", "results"] {
            s3.create_bucket(bucket).unwrap();
        }
        // s3s-fs keeps objects as files: the bucket's directory is written directly.
        copy_with_mtimes(&raw, &s3.object_path("tweets", "input"), 1_618_466_400);
        Case { dir, s3 }
    }

    /// `trendflow run` of the S3 pipeline; S3 settings from the standard variables, pointed
    /// at `endpoint`; outputs under `name`.
    fn command(&self, name: &str, endpoint: &str) -> Command {
        let out = self.dir.path().join(name);
        let mut c = Command::new(bin());
        c.args([
            "run",
            CONFIG,
            "--set",
            &format!("sinks.parquet.path=s3://results/{name}"),
            "--set",
            &format!("sinks.result.path={}", out.join("q2.csv").display()),
            "--set",
            &format!("sinks.id_table.path={}", out.join("ids.csv").display()),
            "--set",
            &format!("checkpoint.path=s3://checkpoints/{name}"),
        ])
        .current_dir(root())
        .env("TRENDFLOW_RUN_DIR", self.dir.path())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    }

    fn run(&self, name: &str, endpoint: &str) -> String {
        let o = self.command(name, endpoint).output().unwrap();
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "run {name} failed:\n{log}");
        log
    }

    fn parquet_dir(&self, name: &str) -> PathBuf {
        self.s3.object_path("results", name)
    }
}

/// Every row of a parquet directory, sorted, one line each.
fn parquet_rows(dir: &Path) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ctx = SessionContext::new();
        ctx.register_parquet(
            "q2",
            dir.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
        let batches = ctx
            .sql("SELECT CAST(\"window\".start AS VARCHAR) AS s, CAST(\"window\".\"end\" AS VARCHAR) AS e, word, \"count\" FROM q2 ORDER BY s, e, word")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for b in &batches {
            let cols: Vec<_> = (0..b.num_columns())
                .map(|i| {
                    datafusion::arrow::compute::cast(
                        b.column(i),
                        &datafusion::arrow::datatypes::DataType::Utf8,
                    )
                    .unwrap()
                })
                .collect();
            for r in 0..b.num_rows() {
                let cells: Vec<String> = cols
                    .iter()
                    .map(|c| {
                        c.as_any()
                            .downcast_ref::<datafusion::arrow::array::StringArray>()
                            .unwrap()
                            .value(r)
                            .to_string()
                    })
                    .collect();
                rows.push(cells.join(","));
            }
        }
        rows
    })
}

/// The same rows as the CSV file sink wrote them (window start, end, word, count).
fn csv_rows(path: &Path) -> usize {
    parse_csv(&std::fs::read_to_string(path).unwrap()).len() - 1
}

#[test]
fn kill_9_with_s3_input_checkpoints_and_parquet_output_gives_a_clean_runs_rows() {
    let case = Case::new(60, 300);
    let endpoint = case.s3.endpoint();
    case.run("reference", &endpoint);
    let want = parquet_rows(&case.parquet_dir("reference"));
    assert!(want.len() > 100, "too small a reference");
    assert_eq!(
        want.len(),
        csv_rows(&case.dir.path().join("reference/q2.csv")),
        "parquet and CSV sinks disagree"
    );

    let (kills, finished) = kill_at_random_moments(11, 60, (100, 1_200), || {
        case.command("crashed", &endpoint).spawn().unwrap()
    });
    if !finished {
        case.run("crashed", &endpoint);
    }
    eprintln!("{kills} kills");
    assert!(kills >= 3, "only {kills} kills: too small an input");
    let got = parquet_rows(&case.parquet_dir("crashed"));
    assert_eq!(got.len(), want.len(), "after {kills} kills: row count");
    assert!(got == want, "after {kills} kills: parquet rows differ");
    // Each tweet id counted once.
    let ids = parse_csv(&std::fs::read_to_string(case.dir.path().join("crashed/ids.csv")).unwrap());
    assert!(
        ids.iter().skip(1).all(|r| r[1] == "1"),
        "an id counted twice"
    );
    // Nothing half-written is visible: only parquet parts, in window_date directories.
    for day in std::fs::read_dir(case.parquet_dir("crashed")).unwrap() {
        let day = day.unwrap();
        assert!(
            day.file_name()
                .to_string_lossy()
                .starts_with("window_date=")
        );
        for f in std::fs::read_dir(day.path()).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name.starts_with("part-") && name.ends_with(".parquet"),
                "unexpected file {name}"
            );
        }
    }
}

#[test]
fn requests_failed_by_a_faulty_proxy_change_nothing() {
    let case = Case::new(12, 200);
    case.run("reference", &case.s3.endpoint());
    let want = parquet_rows(&case.parquet_dir("reference"));
    let proxy = FaultyProxy::start(
        format!("127.0.0.1:{}", case.s3.port()),
        Faults {
            slow_down_every: 5,
            internal_error_every: 7,
            reset_every: 11,
        },
    )
    .unwrap();
    let log = case.run("through-proxy", &proxy.endpoint());
    let injected = proxy.counts.injected();
    assert!(injected >= 10, "only {injected} faults injected:\n{log}");
    let got = parquet_rows(&case.parquet_dir("through-proxy"));
    assert!(got == want, "rows differ after {injected} injected faults");
    let ids =
        parse_csv(&std::fs::read_to_string(case.dir.path().join("through-proxy/ids.csv")).unwrap());
    let reference_ids =
        parse_csv(&std::fs::read_to_string(case.dir.path().join("reference/ids.csv")).unwrap());
    assert_eq!(ids, reference_ids, "a tweet lost or counted twice");
}

/// The parquet directory is one table for DuckDB too, with the Hive partition column.
#[test]
fn parquet_output_reads_back_in_duckdb() {
    let case = Case::new(6, 200);
    case.run("reference", &case.s3.endpoint());
    let rows = parquet_rows(&case.parquet_dir("reference"));
    let total: i64 = rows
        .iter()
        .map(|r| r.rsplit(',').next().unwrap().parse::<i64>().unwrap())
        .sum();
    let script = format!(
        "import duckdb\n\
         r = duckdb.sql(\"SELECT count(*), sum(count), count(*) FILTER (WHERE CAST(window_date AS VARCHAR) <> strftime(\\\"window\\\".start AT TIME ZONE 'UTC', '%Y-%m-%d')) FROM read_parquet('{}/**/*.parquet', hive_partitioning=true)\").fetchall()[0]\n\
         print(r[0], r[1], r[2])\n",
        case.parquet_dir("reference").display()
    );
    let packages = trendflow_connectors::testkit::provision::python_packages(
        &root().join("tests/requirements.txt"),
    )
    .unwrap();
    let o = Command::new("python3")
        .args(["-c", &script])
        .env("PYTHONPATH", packages)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "DuckDB could not read the parquet output:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.trim(),
        format!("{} {total} 0", rows.len()),
        "DuckDB's count, sum and misplaced rows"
    );
}
