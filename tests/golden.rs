//! Spark fidelity: the tutorial pipelines, run exactly as the golden check runs them, give
//! Spark 4.3's result tables row for row. The vendored cases run always; the shared set
//! (../shared/golden) runs too when it is next to the project.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn run_case(
    case_dir: &Path,
    query: &str,
    max_files_per_trigger: Option<usize>,
) -> Result<(), String> {
    run_case_crashing(case_dir, query, max_files_per_trigger, None)
}

/// As the golden check runs a case; with `crash_at`, the first run has a checkpoint and is
/// ended abruptly by a failpoint, and the same command is run again to finish.
fn run_case_crashing(
    case_dir: &Path,
    query: &str,
    max_files_per_trigger: Option<usize>,
    crash_at: Option<&str>,
) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    copy_with_mtimes(&case_dir.join("input"), &input, 1_618_466_400);
    let out = tmp.path().join(format!("{query}.csv"));
    let config = format!("config/tutorial-{query}.yaml");
    let src = format!("sources.tweets.path={}", input.display());
    let sink = format!("sinks.result.path={}", out.display());
    let mut args = vec![
        "run",
        config.as_str(),
        "--set",
        src.as_str(),
        "--set",
        sink.as_str(),
        "--set",
        "trigger=available_now",
    ];
    let limit;
    if let Some(n) = max_files_per_trigger {
        limit = format!("sources.tweets.max_files_per_trigger={n}");
        args.extend(["--set", limit.as_str()]);
    }
    let checkpoint = format!(
        "checkpoint.path={}",
        tmp.path().join("checkpoint").display()
    );
    if let Some(point) = crash_at {
        args.extend(["--set", checkpoint.as_str()]);
        let o = std::process::Command::new(bin())
            .args(&args)
            .current_dir(root())
            .env("TRENDFLOW_RUN_DIR", tmp.path())
            .env("TRENDFLOW_FAILPOINTS", point)
            .output()
            .unwrap();
        if o.status.code() != Some(86) {
            return Err(format!("the failpoint {point} did not end the run: {o:?}"));
        }
    }
    let o = trendflow(&args, tmp.path());
    if !o.status.success() {
        return Err(format!(
            "run failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let (want_header, want) = table(&case_dir.join("spark").join(format!("{query}.csv")));
    let (got_header, got) = table(&out);
    if want_header != got_header {
        return Err(format!("header {got_header:?}, Spark's is {want_header:?}"));
    }
    let d = diff(&want, &got);
    if d.is_empty() { Ok(()) } else { Err(d) }
}

fn check(case_dir: PathBuf) {
    let name = case_dir.file_name().unwrap().to_string_lossy().into_owned();
    let limit = (name == "multibatch").then_some(4);
    let mut failures = Vec::new();
    for q in ["q1", "q2"] {
        if let Err(e) = run_case(&case_dir, q, limit) {
            failures.push(format!("{name} {q}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tiny_equals_spark() {
    check(root().join("tests/fixtures/golden/tiny"));
}

#[test]
fn bad_lines_equal_spark() {
    check(root().join("tests/fixtures/golden/bad"));
}

#[test]
fn multibatch_late_data_equals_spark() {
    check(root().join("tests/fixtures/golden/multibatch"));
}

/// The golden check's crash-and-restart runs: the same command with a checkpoint, ended
/// abruptly between epochs (and inside a checkpoint write), then run again, gives Spark's table.
#[test]
fn multibatch_with_a_crash_and_a_restart_equals_spark() {
    let case = root().join("tests/fixtures/golden/multibatch");
    let mut failures = Vec::new();
    for q in ["q1", "q2"] {
        for point in [
            "after-sink-commit-before-checkpoint=abort@3",
            "put-before-rename=abort@8",
            "after-checkpoint-before-source-commit=abort@10",
        ] {
            if let Err(e) = run_case_crashing(&case, q, Some(4), Some(point)) {
                failures.push(format!("multibatch {q} crashing at {point}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every case of the shared golden set, when it is there (it is in CI).
#[test]
fn shared_golden_cases_equal_spark() {
    let shared = root().join("../shared/golden");
    let Ok(rd) = std::fs::read_dir(&shared) else {
        eprintln!("no ../shared/golden next to the project: only the vendored cases were checked");
        return;
    };
    let mut cases: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("spark").is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "../shared/golden has no case");
    for c in cases {
        check(c);
    }
}
