//! The command line, end to end: validate, generate, run with a live SQL endpoint, stop on
//! a signal, dead letters.

mod common;

use std::collections::BTreeMap;

use std::process::Command;

use common::*;

#[test]
fn validate_reports_every_error_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "trigger: sometimes\nsources:\n  tweets:\n    type: file\n    pathh: /x\ntransforms:\n  counts:\n    type: window_count\n    inputs: [tweets]\n    window: 3h\n    watermark: soon\n",
    )
    .unwrap();
    let o = trendflow(&["validate", bad.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let file = bad.display().to_string();
    assert!(err.contains(&format!("{file}:1:")), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:5:5: sources.tweets: unknown field `pathh`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:11:5: transforms.counts: watermark")),
        "{err}"
    );
    assert!(err.contains("3 problems"), "{err}");

    // Wiring problems too, all at once.
    let wiring = tmp.path().join("wiring.yaml");
    std::fs::write(
        &wiring,
        "sources:\n  tweets: {type: file, path: /x}\ntransforms:\n  words: {type: tokenize, inputs: [tweets]}\n  c: {type: count, inputs: [nothing], output_mode: append}\nsinks:\n  out: {type: console, inputs: [words]}\n",
    )
    .unwrap();
    let o = trendflow(&["validate", wiring.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let file = wiring.display().to_string();
    for want in [
        format!("{file}:4:10: transforms.words: takes posts, but `tweets` produces raw lines"),
        format!("{file}:5:6: transforms.c: input `nothing` does not exist"),
        "output_mode append needs windows".to_string(),
        format!("{file}:7:8: sinks.out: takes result rows, but `words` produces tokens"),
    ] {
        assert!(err.contains(&want), "missing `{want}` in:\n{err}");
    }

    for f in [
        "config/tutorial-q1.yaml",
        "config/tutorial-q2.yaml",
        "config/insee-hashtags.yaml",
        "config/stats/mentions.yaml",
        "config/stats/accounts.yaml",
        "config/stats/retweets.yaml",
        "config/stats/links-media.yaml",
        "config/stats/languages.yaml",
        "config/stats/reach.yaml",
        "config/stats/topic.yaml",
        "config/tutorial-s3.yaml",
        "config/tutorial-postgres.yaml",
        // The live configs: validating builds the sources, which connect only when the
        // first epoch is planned.
        "config/tutorial-kafka.yaml",
        "config/tutorial-kafka-workers.yaml",
        "config/bluesky-live.yaml",
        "config/mastodon-live.yaml",
    ] {
        // Validating connects to nothing, but a password variable must be set.
        let o = Command::new(bin())
            .args(["validate", f])
            .current_dir(root())
            .env("TRENDFLOW_RUN_DIR", tmp.path())
            .env("TRENDFLOW_PG_PASSWORD", "secret")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn generate_is_deterministic_and_realistic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |dir: &str, seed: &str| {
        let out = tmp.path().join(dir);
        let o = trendflow(
            &[
                "generate",
                "--out",
                out.to_str().unwrap(),
                "--files",
                "3",
                "--tweets-per-file",
                "200",
                "--seed",
                seed,
                "--bad-fraction",
                "0.02",
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "tweets-000000.json",
                "tweets-000001.json",
                "tweets-000002.json"
            ]
        );
        names
            .iter()
            .map(|n| std::fs::read(out.join(n)).unwrap())
            .collect::<Vec<_>>()
    };
    let a = run("a", "7");
    let b = run("b", "7");
    let c = run("c", "8");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let bytes: usize = a.iter().map(|f| f.len()).sum();
    let lines: usize = a
        .iter()
        .map(|f| f.iter().filter(|&&x| x == b'\n').count())
        .sum();
    assert_eq!(lines, 600);
    let avg = bytes / lines;
    assert!((2500..6000).contains(&avg), "average line {avg} bytes");
}

#[test]
fn a_running_pipeline_answers_sql_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_with_mtimes(
        &root().join("tests/fixtures/golden/tiny/input"),
        &input,
        1_618_466_400,
    );
    let src = format!("sources.tweets.path={}", input.display());
    let sink = format!("sinks.result.path={}", tmp.path().join("q1.csv").display());
    let (mut child, addr) = start_pipeline(
        &[
            "run",
            "config/tutorial-q1.yaml",
            "--set",
            &src,
            "--set",
            &sink,
            "--set",
            "trigger=200ms",
            "--set",
            "api.address=127.0.0.1:0",
        ],
        tmp.path(),
    );

    // Spark's answer for the same input: the top words by count.
    let (_, spark) = table(&root().join("tests/fixtures/golden/tiny/spark/q1.csv"));
    let mut want: Vec<(i64, String)> = spark.iter().map(|(k, v)| (-v, k[0].clone())).collect();
    want.sort();
    let total: i64 = spark.values().sum();

    let query =
        "select word, count from tweetquery_group_hashtag order by count desc, word limit 5";
    let mut got = Vec::new();
    wait_until("the memory table to hold the whole input", || {
        // No --addr: the pipeline is found through its registration.
        let o = trendflow(
            &[
                "sql",
                "select sum(count) as n from tweetquery_group_hashtag",
                "--format",
                "csv",
            ],
            tmp.path(),
        );
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).lines().nth(1) == Some(total.to_string().as_str())
    });
    let o = trendflow(
        &["sql", "--addr", &addr, query, "--format", "csv"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for row in parse_csv(&String::from_utf8_lossy(&o.stdout))
        .into_iter()
        .skip(1)
    {
        got.push((-row[1].parse::<i64>().unwrap(), row[0].clone()));
    }
    assert_eq!(got, want[..5].to_vec());

    // JSON and a boxed table too; bad SQL is an error, not a crash.
    let o = trendflow(
        &["sql", "--addr", &addr, query, "--format", "json"],
        tmp.path(),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert_eq!(v[0]["word"], serde_json::Value::String(want[0].1.clone()));
    let o = trendflow(&["sql", "--addr", &addr, query], tmp.path());
    // As Spark's show(): header right-aligned, 5 rows, no "only showing" line.
    let t = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[1].ends_with("word|count|") && lines[1].starts_with("| "),
        "{t}"
    );
    assert_eq!(lines.len(), 9, "{t}");
    let o = trendflow(
        &[
            "sql",
            "--addr",
            &addr,
            "select nope from tweetquery_group_hashtag",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // SIGTERM: the current epoch finishes, the sinks close, exit 0.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let (_, file) = table(&tmp.path().join("q1.csv"));
    assert_eq!(file, spark);
}

#[test]
fn sigterm_leaves_a_checkpoint_that_the_next_run_resumes_from() {
    let tmp = tempfile::tempdir().unwrap();
    let tiny = root().join("tests/fixtures/golden/tiny/input");
    let input = tmp.path().join("input");
    copy_with_mtimes(&tiny, &input, 1_618_466_400);
    let (_, spark) = table(&root().join("tests/fixtures/golden/tiny/spark/q1.csv"));
    let out = tmp.path().join("q1.csv");
    let args = |trigger: &str| {
        vec![
            "run".to_string(),
            "config/tutorial-q1.yaml".into(),
            "--set".into(),
            format!("sources.tweets.path={}", input.display()),
            "--set".into(),
            format!("sinks.result.path={}", out.display()),
            "--set".into(),
            format!(
                "checkpoint.path={}",
                tmp.path().join("checkpoint").display()
            ),
            "--set".into(),
            format!("trigger={trigger}"),
            "--set".into(),
            "api.address=127.0.0.1:0".into(),
        ]
    };
    let live = args("200ms");
    let (mut child, _) = start_pipeline(
        &live.iter().map(String::as_str).collect::<Vec<_>>(),
        tmp.path(),
    );
    wait_until("the table to hold the whole input", || {
        out.exists() && table(&out).1 == spark
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        std::fs::read_dir(tmp.path().join("checkpoint/state"))
            .unwrap()
            .count()
            >= 1,
        "no checkpoint written"
    );
    // The same tweets arrive again under new names: counts continue from the checkpoint
    // (doubled), and the files already read are not read a third time.
    let again = tmp.path().join("again");
    copy_with_mtimes(&tiny, &again, 1_618_470_000);
    for e in std::fs::read_dir(&again).unwrap() {
        let p = e.unwrap().path();
        let name = format!("second-{}", p.file_name().unwrap().to_string_lossy());
        std::fs::rename(&p, input.join(name)).unwrap();
    }
    let bounded = args("available_now");
    let o = trendflow(
        &bounded.iter().map(String::as_str).collect::<Vec<_>>(),
        tmp.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doubled: BTreeMap<Vec<String>, i64> =
        spark.iter().map(|(k, v)| (k.clone(), v * 2)).collect();
    assert_eq!(table(&out).1, doubled);
}

#[test]
fn a_final_watermark_closes_the_windows_spark_leaves_open() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_with_mtimes(
        &root().join("tests/fixtures/golden/tiny/input"),
        &input,
        1_618_466_400,
    );
    let out = tmp.path().join("q2.csv");
    let o = trendflow(
        &[
            "run",
            "config/tutorial-q2.yaml",
            "--set",
            &format!("sources.tweets.path={}", input.display()),
            "--set",
            &format!("sinks.result.path={}", out.display()),
            "--set",
            "trigger=available_now",
            "--set",
            "sources.tweets.final_watermark=true",
            "--set",
            "api.enabled=false",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, spark) = table(&root().join("tests/fixtures/golden/tiny/spark/q2.csv"));
    let (_, got) = table(&out);
    // Spark's rows, unchanged, and the windows still open at Spark's end.
    for (k, v) in &spark {
        assert_eq!(got.get(k), Some(v), "{k:?}");
    }
    let spark_last_end = spark.keys().map(|k| k[1].clone()).max().unwrap();
    let extra: Vec<_> = got.keys().filter(|k| !spark.contains_key(*k)).collect();
    assert!(!extra.is_empty());
    assert!(extra.iter().all(|k| k[1] > spark_last_end), "{extra:?}");
}

#[test]
fn bad_lines_go_to_the_dead_letter_file_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_with_mtimes(
        &root().join("tests/fixtures/golden/bad/input"),
        &input,
        1_618_466_400,
    );
    let dead = tmp.path().join("dead.jsonl");
    let args = [
        "run".to_string(),
        "config/tutorial-q2.yaml".into(),
        "--set".into(),
        format!("sources.tweets.path={}", input.display()),
        "--set".into(),
        format!("sinks.result.path={}", tmp.path().join("q2.csv").display()),
        "--set".into(),
        "trigger=available_now".into(),
        "--set".into(),
        format!("dead_letter.path={}", dead.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = trendflow(&args, tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut reasons = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(&dead).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["line"].as_u64().unwrap() >= 1, "{line}");
        assert!(
            v["origin"].as_str().unwrap().contains("tweets-0000"),
            "{line}"
        );
        *reasons
            .entry(v["reason"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    // From the case's manifest: 7 truncated and 2 lone surrogates in a broken escape are invalid JSON (the 6 other
    // lone surrogates are read as Spark reads them), 4 invalid
    // UTF-8, 17 bad or missing created_at; blank lines are counted but not written.
    assert_eq!(reasons.get("invalid_json"), Some(&9), "{reasons:?}");
    assert_eq!(reasons.get("invalid_utf8"), Some(&4), "{reasons:?}");
    // Three of the 17 bad created_at are read as Spark reads them (an offset, lower-case
    // names, text after the year).
    assert_eq!(
        reasons.get("bad_event_time").unwrap_or(&0)
            + reasons.get("missing_event_time").unwrap_or(&0),
        14,
        "{reasons:?}"
    );
    assert!(!reasons.contains_key("empty_line"));
}

/// `--log-format json`: every line of the log is a JSON object; each committed epoch has an
/// "epoch committed" and a "checkpoint written" line with numbers, epochs with late rows a
/// "late rows dropped" line, and a restart its own line with the component at fault.
#[test]
fn json_logs_have_a_line_per_epoch_checkpoint_late_drop_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    // Spark's multibatch case: 10 epochs of 4 files, with late rows.
    copy_with_mtimes(
        &root().join("tests/fixtures/golden/multibatch/input"),
        &input,
        1_618_466_400,
    );
    let o = Command::new(bin())
        .args([
            "--log-format",
            "json",
            "run",
            "config/tutorial-q2.yaml",
            "--set",
            &format!("sources.tweets.path={}", input.display()),
            "--set",
            &format!("sinks.result.path={}", tmp.path().join("q2.csv").display()),
            "--set",
            "trigger=available_now",
            "--set",
            "sources.tweets.max_files_per_trigger=4",
            "--set",
            "api.address=127.0.0.1:0",
        ])
        .current_dir(root())
        .env("TRENDFLOW_RUN_DIR", tmp.path())
        .env("TRENDFLOW_FAILPOINTS", "tokenizer-batch=panic@3")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    // stderr is not a terminal: no progress bar drawn into the log.
    assert!(!log.contains('\r'), "a progress bar in the log: {log:?}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let with = |message: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .map(|l| &l["fields"])
            .filter(|f| f["message"] == message)
            .collect()
    };
    let epochs = with("epoch committed");
    assert!(epochs.len() >= 10, "{} epochs: {log}", epochs.len());
    for e in &epochs {
        assert!(
            e["duration_ms"].is_number() && e["records"].is_number(),
            "{e}"
        );
        assert!(
            e["checkpoint_ms"].is_number() && e["late_rows"].is_number(),
            "{e}"
        );
    }
    assert_eq!(with("checkpoint written").len(), epochs.len(), "{log}");
    // This case's late rows are late for some of their windows only (Spark's per-window
    // rule): (row, window) pairs, no whole rows.
    let late: i64 = with("late rows dropped")
        .iter()
        .map(|l| l["late_row_windows"].as_i64().unwrap() + l["late_rows"].as_i64().unwrap())
        .sum();
    assert!(late > 0, "no late-drop line: {log}");
    // Rows late for some windows only are information; whole rows dropped, a warning.
    for l in lines
        .iter()
        .filter(|l| l["fields"]["message"] == "late rows dropped")
    {
        let whole = l["fields"]["late_rows"].as_i64().unwrap() > 0;
        assert_eq!(l["level"], if whole { "WARN" } else { "INFO" }, "{l}");
    }
    let restarts = with("component failed; restarting the pipeline from its last checkpoint");
    assert_eq!(restarts.len(), 1, "{log}");
    assert_eq!(with("panicked").len(), 1, "the panic is a record: {log}");
    assert!(restarts[0]["component"].is_string(), "{}", restarts[0]);
    // The end: where the time went, every stage named with its busy seconds.
    let finished = with("pipeline finished");
    assert_eq!(finished.len(), 1, "{log}");
    let busy = finished[0]["busy"].as_str().unwrap_or_default();
    let stages: Vec<&str> = busy
        .split(", ")
        .filter_map(|s| s.split(' ').next())
        .collect();
    for stage in ["parse", "words", "hashtag_counts"] {
        assert!(
            stages.contains(&stage),
            "{stage} missing from busy={busy:?}"
        );
    }
    assert!(
        busy.split(", ").all(|s| s.ends_with('s')
            && s.rsplit(' ')
                .next()
                .unwrap()
                .trim_end_matches('s')
                .parse::<f64>()
                .is_ok()),
        "{busy:?}"
    );
}

/// The bench runs what issue 5's figures need: every measurement counts the same tweets
/// (a measurement that lost tweets would make its rate a lie), Q2 is also run with 24h
/// windows sliding every minute, and the overhead and sliding ratios are printed. Times are
/// not checked: they are what the bench is for.
#[test]
fn bench_measures_every_run_over_the_same_tweets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tweets");
    let o = trendflow(
        &[
            "bench",
            "--tweets",
            "3000",
            "--dir",
            dir.to_str().unwrap(),
            "--queries",
            "q1,q2",
            "--parsers",
            "2",
            "--runs",
            "1",
            "--latency-files",
            "0",
            "--json",
        ],
        tmp.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json = &out[out.find("{\n").expect("the JSON document")..];
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    let field = |name: &str| -> BTreeMap<String, u64> {
        doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["run"].as_str().unwrap().to_string(),
                    r[name].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (runs, rows) = (field("tweets"), field("rows"));
    let labels: Vec<&str> = runs.keys().map(String::as_str).collect();
    assert_eq!(
        labels,
        [
            "json scan only, 1 thread",
            "q1 actors, 2 parsers",
            "q1 actors, 2 parsers, 100 epochs, checkpoints on disk",
            "q1 plain loop + sinks, 1 core",
            "q1 plain loop, 1 thread",
            "q2 actors, 2 parsers",
            "q2 actors, 2 parsers, 100 epochs, checkpoints on disk",
            "q2 actors, 2 parsers, 24h/1m",
            "q2 actors, memory table only, 2 parsers",
            "q2 actors, memory table only, 2 parsers, 24h/1m",
            "q2 plain loop + sinks, 1 core",
            "q2 plain loop + sinks, 1 core, 24h/1m",
            "q2 plain loop, 1 thread",
            "q2 plain loop, 1 thread, 24h/1m"
        ]
    );
    assert_eq!(runs["json scan only, 1 thread"], 3000);
    // The parsers keep the tweets with an event time; every query run sees the same ones.
    let kept = runs["q2 plain loop, 1 thread"];
    assert!(kept > 2900 && kept <= 3000, "{runs:?}");
    assert_eq!(runs["q2 actors, 2 parsers"], kept);
    for (label, tweets) in &runs {
        if label.starts_with("q1 ") || label.starts_with("q2 ") {
            assert_eq!(*tweets, kept, "{label}: {runs:?}");
        }
    }
    // The loops make the rows the actors' sinks take, the one with sinks writes them all: the
    // baselines do the pipeline's work.
    for windows in ["", ", 24h/1m"] {
        let actors = rows[&format!("q2 actors, 2 parsers{windows}")];
        assert!(actors > 0, "{rows:?}");
        assert_eq!(rows[&format!("q2 plain loop, 1 thread{windows}")], actors);
        assert_eq!(
            rows[&format!("q2 plain loop + sinks, 1 core{windows}")],
            actors
        );
        // Without the file, the memory table takes the same rows.
        assert_eq!(
            rows[&format!("q2 actors, memory table only, 2 parsers{windows}")],
            actors
        );
        let output = |label: String| {
            doc["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["run"] == label.as_str())
                .and_then(|r| r["output"].as_str())
                .map(str::to_string)
        };
        let written = output(format!("q2 actors, 2 parsers{windows}"));
        assert!(written.is_some(), "{json}");
        assert_eq!(
            output(format!("q2 plain loop + sinks, 1 core{windows}")),
            written
        );
        assert_eq!(
            output(format!("q2 actors, memory table only, 2 parsers{windows}")),
            None
        );
    }
    assert!(rows["q2 actors, 2 parsers, 24h/1m"] > rows["q2 actors, 2 parsers"]);
    // Fewer files than 100 epochs: one epoch a file, each with its checkpoint on disk.
    let epochs = field("epochs");
    let files = std::fs::read_dir(&dir).unwrap().count() as u64;
    assert!(files > 1, "{files} files");
    for q in ["q1", "q2"] {
        let stream = format!("{q} actors, 2 parsers, 100 epochs, checkpoints on disk");
        // One epoch per file, and the last one without data (Q2's closes the windows).
        assert_eq!(epochs[&stream], files + 1, "{epochs:?}");
        let checkpoint_mb = doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run"] == stream.as_str())
            .and_then(|r| r["checkpoint_mb"].as_f64())
            .unwrap();
        assert!(checkpoint_mb > 0.0, "{json}");
        assert!(
            out.contains(&format!("{q} in {} epochs, ", files + 1)),
            "{out}"
        );
    }
    assert!(
        out.contains("q2 CSV written and synced alone on this disk (best of 3): 3h every 5m "),
        "{out}"
    );
    assert!(out.contains("q2: plain loop over actors per core"), "{out}");
    assert!(
        out.contains("q2: plain loop + sinks over actors per core"),
        "{out}"
    );
    for base in [
        "q2 actors, 2 parsers",
        "q2 actors, memory table only, 2 parsers",
        "q2 plain loop, 1 thread",
        "q2 plain loop + sinks, 1 core",
    ] {
        assert!(
            out.contains(&format!(
                "q2 sliding cost: 24h every 1m over 3h every 5m, {base}: "
            )),
            "{out}"
        );
    }
}
