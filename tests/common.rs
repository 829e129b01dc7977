//! Helpers shared by the end-to-end tests: the binary, temp dirs, mtimes, CSV tables.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trendflow"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs trendflow with arguments, from the project root, with an isolated run registry.
pub fn trendflow(args: &[&str], run_dir: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .env("TRENDFLOW_RUN_DIR", run_dir)
        .output()
        .expect("run trendflow")
}

/// Copies a directory's files, giving them increasing modification times in name order
/// (git keeps no mtimes; the file source reads in mtime order).
pub fn copy_with_mtimes(from: &Path, to: &Path, first_mtime: u64) {
    std::fs::create_dir_all(to).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for (i, n) in names.iter().enumerate() {
        let dst = to.join(n);
        std::fs::copy(from.join(n), &dst).unwrap();
        let f = std::fs::File::options().write(true).open(&dst).unwrap();
        f.set_modified(UNIX_EPOCH + Duration::from_secs(first_mtime + i as u64))
            .unwrap();
    }
}

/// Parses an RFC 4180 CSV file (quoted fields may hold commas, quotes and newlines).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                    any = false;
                }
                '\r' => {}
                _ => field.push(c),
            }
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// A result table: key columns -> count (the last column), header dropped.
pub fn table(path: &Path) -> (Vec<String>, BTreeMap<Vec<String>, i64>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = parse_csv(&text).into_iter();
    let header = rows.next().unwrap_or_default();
    let mut m = BTreeMap::new();
    for r in rows {
        let (count, key) = r.split_last().unwrap();
        assert!(
            m.insert(key.to_vec(), count.parse::<i64>().unwrap())
                .is_none(),
            "duplicate row {key:?} in {}",
            path.display()
        );
    }
    (header, m)
}

/// Describes how two tables differ (empty when equal).
pub fn diff(a: &BTreeMap<Vec<String>, i64>, b: &BTreeMap<Vec<String>, i64>) -> String {
    let mut out = String::new();
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(10).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(10).collect();
    let mism: Vec<_> = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
        .take(10)
        .collect();
    if only_a.is_empty() && only_b.is_empty() && mism.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "rows {} vs {}; sums {} vs {}\n",
        a.len(),
        b.len(),
        a.values().sum::<i64>(),
        b.values().sum::<i64>()
    ));
    for k in only_a {
        out.push_str(&format!("  expected only: {k:?} {}\n", a[k]));
    }
    for k in only_b {
        out.push_str(&format!("  got only: {k:?} {}\n", b[k]));
    }
    for (k, v) in mism {
        out.push_str(&format!(
            "  count differs: {k:?} expected {v} got {}\n",
            b[k]
        ));
    }
    out
}

/// Starts a pipeline in the background and returns it with its SQL endpoint address.
pub fn start_pipeline(args: &[&str], run_dir: &std::path::Path) -> (std::process::Child, String) {
    start_pipeline_with_env(args, run_dir, &[], &["SQL endpoint on http://"])
        .map(|(child, mut found)| (child, found.remove(0)))
        .expect("pipeline exited before announcing its endpoint")
}

/// Starts `trendflow ARGS` with extra environment variables and waits for each announcement
/// of `markers` on its stderr (in order); returns what follows each marker on its line.
/// `None`: the process exited first.
pub fn start_pipeline_with_env(
    args: &[&str],
    run_dir: &std::path::Path,
    env: &[(&str, &str)],
    markers: &[&str],
) -> Option<(std::process::Child, Vec<String>)> {
    let mut command = std::process::Command::new(bin());
    command
        .args(args)
        .current_dir(root())
        .env("TRENDFLOW_RUN_DIR", run_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut found = Vec::new();
    for marker in markers {
        loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                return None;
            };
            if let Some(rest) = line.split(marker).nth(1) {
                found.push(rest.trim().to_string());
                break;
            }
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Some((child, found))
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Generated tweets for the crash tests: `files` files of `per_file` tweets in `dir/raw`, with
/// 5% late tweets (up to 20 minutes) and 1% malformed lines.
pub fn generate_crash_input(dir: &Path, files: usize, per_file: usize) -> PathBuf {
    let raw = dir.join("raw");
    let out = trendflow(
        &[
            "generate",
            "--out",
            raw.to_str().unwrap(),
            "--files",
            &files.to_string(),
            "--tweets-per-file",
            &per_file.to_string(),
            "--rate",
            "0.5",
            "--late-fraction",
            "0.05",
            "--late-max",
            "20m",
            "--bad-fraction",
            "0.01",
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    raw
}

/// A small deterministic generator for kill delays.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Starts a run, kills it (SIGKILL) after `min_ms` + a random part of `spread_ms`, up to
/// `tries` times, until a run ends on its own; returns the number of kills and whether a run
/// finished (a run that ends must succeed).
pub fn kill_at_random_moments(
    seed: u64,
    tries: usize,
    (min_ms, spread_ms): (u64, u64),
    mut start: impl FnMut() -> std::process::Child,
) -> (usize, bool) {
    let mut rng = Lcg(seed);
    let mut kills = 0;
    for _ in 0..tries {
        let mut child = start();
        std::thread::sleep(Duration::from_millis(min_ms + rng.next(spread_ms)));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "a run failed on its own");
                return (kills, true);
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
    }
    (kills, false)
}

/// Generated crash input (see [`generate_crash_input`]) produced to topic `tweets` of
/// `kafka`, its lines dealt to the `partitions` in turn (lines of one file stay in order within
/// their partition, as a keyed producer keeps them). Bytes, not text: some malformed lines are
/// not UTF-8. Returns how many records.
#[allow(dead_code)]
pub fn produce_generated_tweets(
    kafka: &trendflow_kafka::testkit::MockKafka,
    dir: &Path,
    (files, per_file): (usize, usize),
    partitions: i32,
) -> usize {
    let raw = generate_crash_input(dir, files, per_file);
    let mut paths: Vec<_> = std::fs::read_dir(&raw)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut records = Vec::new();
    for f in paths {
        for line in std::fs::read(f).unwrap().split(|&b| b == b'\n') {
            if !line.is_empty() {
                records.push(trendflow_kafka::testkit::TestRecord {
                    partition: records.len() as i32 % partitions,
                    payload: Some(line.to_vec()),
                });
            }
        }
    }
    let n = records.len();
    kafka.create_topic("tweets", partitions);
    kafka.produce("tweets", records);
    n
}
