//! Crash tests on the real binary: a pipeline with checkpoints is killed (`kill -9`, or a
//! failpoint that ends the process at one step of the checkpoint protocol), restarted with the
//! same command, and must end with exactly the tables of a run that never crashed: the same
//! rows, and every tweet id counted once.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use datafusion::arrow::record_batch::RecordBatch;

const CONFIG: &str = "tests/fixtures/crash-pipeline.yaml";
/// Exit status of a process ended by an `abort` failpoint (trendflow_core::failpoint).
const ABORTED: i32 = 86;

struct Case {
    dir: tempfile::TempDir,
    input: PathBuf,
}

impl Case {
    /// `files` files of generated tweets, with increasing modification times.
    fn new(files: usize, per_file: usize) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let raw = generate_crash_input(dir.path(), files, per_file);
        let input = dir.path().join("in");
        copy_with_mtimes(&raw, &input, 1_618_466_400);
        Case { dir, input }
    }

    fn args(&self, out: &Path, checkpoint: Option<&Path>) -> Vec<String> {
        let mut a = vec![
            "run".to_string(),
            CONFIG.into(),
            "--set".into(),
            format!("sources.tweets.path={}", self.input.display()),
            "--set".into(),
            format!("sinks.result.path={}", out.join("q2.csv").display()),
            "--set".into(),
            format!("sinks.id_table.path={}", out.join("ids.csv").display()),
            "--set".into(),
            format!("dead_letter.path={}", out.join("dead.jsonl").display()),
        ];
        if let Some(c) = checkpoint {
            a.push("--set".into());
            a.push(format!("checkpoint.path={}", c.display()));
        }
        a
    }

    fn command(&self, out: &Path, checkpoint: Option<&Path>, failpoints: &str) -> Command {
        let mut c = Command::new(bin());
        c.args(self.args(out, checkpoint))
            .current_dir(root())
            .env("TRENDFLOW_RUN_DIR", self.dir.path())
            .env("TRENDFLOW_FAILPOINTS", failpoints)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// Runs to the end; returns the exit code and the log.
    fn run(&self, out: &Path, checkpoint: Option<&Path>, failpoints: &str) -> (i32, String) {
        let o = self
            .command(out, checkpoint, failpoints)
            .output()
            .expect("run trendflow");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The result tables of a run: the Q2 CSV, and the id counts.
#[derive(Debug, PartialEq)]
struct Tables {
    q2: String,
    ids: BTreeMap<String, i64>,
}

fn tables(out: &Path) -> Tables {
    let q2 = std::fs::read_to_string(out.join("q2.csv")).unwrap();
    let ids_text = std::fs::read_to_string(out.join("ids.csv")).unwrap();
    let ids = parse_csv(&ids_text)
        .into_iter()
        .skip(1)
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    Tables { q2, ids }
}

/// A reference run without checkpoint or crash; checks the id table is sound.
fn reference(case: &Case) -> Tables {
    let out = case.path("reference");
    let (code, log) = case.run(&out, None, "");
    assert_eq!(code, 0, "{log}");
    let t = tables(&out);
    assert!(t.q2.lines().count() > 100, "too small a reference");
    assert!(t.ids.values().all(|&c| c == 1), "an id counted twice");
    t
}

/// Rows the crash pipeline's memory table `top` keeps (tests/fixtures/crash-pipeline.yaml).
const TOP_ROWS: usize = 3000;

/// The memory table `top` as the newest checkpoint in `checkpoint` restores it, its rows in
/// table order in one batch, and how many state segments it came from.
fn restored_memory_table(checkpoint: &Path) -> (RecordBatch, usize) {
    restored_table(checkpoint, "top", Some(TOP_ROWS), false)
}

/// A memory table as the newest checkpoint in `checkpoint` restores it (its sink built as the
/// fixture builds it), in one batch, and how many state segments it came from.
fn restored_table(
    checkpoint: &Path,
    name: &str,
    max_rows: Option<usize>,
    sort_by_count: bool,
) -> (RecordBatch, usize) {
    use trendflow_connectors::memory_sink::MemorySink;
    use trendflow_core::Sink;
    use trendflow_runtime::checkpoint::{Checkpointer, LocalDirStore};
    use trendflow_sql::MemoryTables;

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let checkpoints = Checkpointer::new(std::sync::Arc::new(LocalDirStore::new(checkpoint)), 2);
    let latest = rt
        .block_on(checkpoints.load_latest("crash-test"))
        .unwrap()
        .expect("a checkpoint");
    let mut segments = rt.block_on(checkpoints.load_segments(&latest)).unwrap();
    let state = latest
        .components
        .iter()
        .find(|c| c.name == name)
        .expect("the memory table's state");
    let tables = MemoryTables::new();
    let mut sink = MemorySink::new(name, tables.clone(), max_rows, sort_by_count);
    sink.restore_with_segments(
        &state.state,
        segments.remove(&(name.to_string(), 0)).unwrap_or_default(),
    )
    .unwrap();
    let batches = tables.batches(name).unwrap_or_default();
    let schema = batches.first().expect("rows in the table").schema();
    let table = datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap();
    (table, state.segments.len())
}

fn assert_same(got: &Tables, want: &Tables, what: &str) {
    if got.q2 != want.q2 {
        let g: Vec<&str> = got.q2.lines().collect();
        let w: Vec<&str> = want.q2.lines().collect();
        let first = g.iter().zip(&w).position(|(a, b)| a != b);
        panic!(
            "{what}: hashtag table differs ({} rows vs {}; first difference at row {first:?})",
            g.len(),
            w.len()
        );
    }
    let twice: Vec<_> = got.ids.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "{what}: ids not counted once: {twice:?}");
    let missing = want
        .ids
        .keys()
        .filter(|k| !got.ids.contains_key(*k))
        .count();
    let extra = got
        .ids
        .keys()
        .filter(|k| !want.ids.contains_key(*k))
        .count();
    assert_eq!(
        (missing, extra),
        (0, 0),
        "{what}: missing / unexpected tweet ids"
    );
}

#[test]
fn kill_9_at_random_moments_then_restart_gives_a_clean_runs_tables() {
    // Big enough, and kills early enough, that a run is cut several times before it can finish.
    let case = Case::new(100, 400);
    let want = reference(&case);
    let out = case.path("crashed");
    let ckpt = case.path("checkpoint");
    let (kills, finished) = kill_at_random_moments(7, 60, (20, 250), || {
        case.command(&out, Some(&ckpt), "").spawn().unwrap()
    });
    if !finished {
        let (code, log) = case.run(&out, Some(&ckpt), "");
        assert_eq!(code, 0, "{log}");
    }
    eprintln!("{kills} kills");
    assert!(
        kills >= 5,
        "only {kills} kills: the input is too small to crash mid-run"
    );
    assert_same(&tables(&out), &want, &format!("after {kills} kills"));
    // Pruned: a bounded number of checkpoints and offset entries, whatever the run length.
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(ckpt.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let (states, offsets) = (names("state"), names("offsets/tweets"));
    assert!(
        states.len() <= 3 && offsets.len() <= 4,
        "{} checkpoints, {} offset entries kept: {states:?} {offsets:?}",
        states.len(),
        offsets.len()
    );
}

#[test]
fn a_crash_at_every_step_of_the_commit_protocol_is_recovered() {
    let case = Case::new(12, 200);
    let want = reference(&case);
    // The memory table, from the last checkpoint of a run that did not crash.
    let (out, ckpt) = (case.path("out-reference"), case.path("ckpt-reference"));
    let (code, log) = case.run(&out, Some(&ckpt), "");
    assert_eq!(code, 0, "{log}");
    let (want_top, segments) = restored_memory_table(&ckpt);
    // Every row the table keeps: it dropped some, and came from several segments (the
    // epochs' rows, some merged).
    assert_eq!(want_top.num_rows(), TOP_ROWS, "rows kept by `top`");
    assert!(segments > 1, "{segments} segments");
    // Complete-mode tables, kept as their changes from epoch to epoch: of tweet ids (every
    // one the reference counted, once), and of words (counts that change).
    let id_memory = |ckpt: &Path| restored_table(ckpt, "id_memory", None, true);
    let (want_ids, segments) = id_memory(&ckpt);
    let ids: Vec<String> = {
        use datafusion::arrow::array::{Array, StringArray};
        let col = want_ids.column(0);
        let col = col.as_any().downcast_ref::<StringArray>().unwrap();
        let mut ids: Vec<String> = (0..col.len()).map(|i| col.value(i).to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids,
        want.ids.keys().cloned().collect::<Vec<_>>(),
        "`id_memory`"
    );
    assert!(segments > 1, "{segments} segments");
    let word_memory = |ckpt: &Path| restored_table(ckpt, "word_memory", None, true);
    let (want_words, segments) = word_memory(&ckpt);
    assert!(
        want_words.num_rows() > 100,
        "{} words",
        want_words.num_rows()
    );
    assert!(segments > 1, "{segments} segments");
    let points = [
        "put-after-temp-write",
        "put-before-rename",
        "put-before-dir-fsync",
        "after-sink-commit-before-checkpoint",
        "put-new-before-dir-fsync",
        "after-segments-before-checkpoint",
        "after-checkpoint-before-source-commit",
        "after-checkpoint-before-prune",
        "checkpoint-during-prune",
    ];
    for point in points {
        for nth in [1, 4, 9] {
            let name = format!("{point}-{nth}");
            let out = case.path(&format!("out-{name}"));
            let ckpt = case.path(&format!("ckpt-{name}"));
            let (code, log) = case.run(&out, Some(&ckpt), &format!("{point}=abort@{nth}"));
            assert_eq!(code, ABORTED, "{name} did not fire: {log}");
            let (code, log) = case.run(&out, Some(&ckpt), "");
            assert_eq!(code, 0, "{name}: restart failed: {log}");
            assert_same(&tables(&out), &want, &name);
            assert!(
                restored_memory_table(&ckpt).0 == want_top,
                "{name}: the memory table differs"
            );
            assert!(
                id_memory(&ckpt).0 == want_ids,
                "{name}: the complete memory table of ids differs"
            );
            assert!(
                word_memory(&ckpt).0 == want_words,
                "{name}: the complete memory table of words differs"
            );
        }
    }
}

#[test]
fn a_torn_newest_checkpoint_falls_back_to_the_previous_one() {
    let case = Case::new(8, 200);
    let want = reference(&case);
    let out = case.path("out");
    let ckpt = case.path("ckpt");
    // Crash mid-run, then garble the newest checkpoint: the restart must use the one before.
    let (code, _) = case.run(
        &out,
        Some(&ckpt),
        "after-sink-commit-before-checkpoint=abort@6",
    );
    assert_eq!(code, ABORTED);
    let mut states: Vec<_> = std::fs::read_dir(ckpt.join("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ckpt"))
        .collect();
    states.sort();
    let newest = states.last().unwrap();
    let bytes = std::fs::read(newest).unwrap();
    std::fs::write(newest, &bytes[..bytes.len() / 2]).unwrap();
    let (code, log) = case.run(&out, Some(&ckpt), "");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("torn or corrupt"), "{log}");
    assert_same(&tables(&out), &want, "after a torn checkpoint");
}

#[test]
fn a_panic_in_the_tokenizer_is_survived_with_a_restart() {
    let case = Case::new(8, 200);
    let want = reference(&case);
    let out = case.path("out");
    let (code, log) = case.run(&out, None, "tokenizer-batch=panic@5");
    assert_eq!(code, 0, "{log}");
    // Both tokenizers (`words`, `ids`) reach the failpoint; whichever hits it 5th panics.
    let restart = log
        .lines()
        .find(|l| l.contains("restarting the pipeline from its last checkpoint"))
        .unwrap_or_else(|| panic!("no restart logged: {log}"));
    assert!(
        restart.contains("component=\"words\"") || restart.contains("component=\"ids\""),
        "{restart}"
    );
    assert_same(&tables(&out), &want, "after a tokenizer panic");
}

#[test]
fn a_record_that_always_fails_is_isolated_and_the_rest_goes_on() {
    let case = Case::new(6, 100);
    // The poisoned record: one tweet's text gets a marker the tokenizer panics on.
    let victim = case.input.join("tweets-000003.json");
    let text = std::fs::read_to_string(&victim).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let line_no = lines
        .iter()
        .position(|l| l.contains("\"text\":\"") && l.contains('#'))
        .unwrap();
    lines[line_no] = lines[line_no].replacen("\"text\":\"", "\"text\":\"POISON ", 1);
    write_keeping_mtime(&victim, &(lines.join("\n") + "\n"));
    let out = case.path("out");
    let (code, log) = case.run(&out, None, "tokenizer-poison=panic:POISON");
    assert_eq!(code, 0, "{log}");
    let dead = std::fs::read_to_string(out.join("dead.jsonl")).unwrap();
    let isolated: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["reason"] == "operator_failed")
        .collect();
    // Both tokenizers (hashtags and ids) fail on it; each sets it aside once.
    let mut components: Vec<&str> = isolated
        .iter()
        .map(|v| v["component"].as_str().unwrap())
        .collect();
    components.sort();
    assert_eq!(components, ["ids", "words"], "{dead}");
    for v in &isolated {
        assert_eq!(v["line"], (line_no + 1) as u64);
        assert!(
            v["origin"]
                .as_str()
                .unwrap()
                .ends_with("tweets-000003.json")
        );
        assert!(v["excerpt"].as_str().unwrap().contains("POISON"));
    }
    // Everything else is counted as if the record had never been there.
    lines.remove(line_no);
    write_keeping_mtime(&victim, &(lines.join("\n") + "\n"));
    let want = reference(&case);
    let got = tables(&out);
    assert_same(&got, &want, "with the poisoned record isolated");
}

fn write_keeping_mtime(path: &Path, text: &str) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, text).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(mtime).unwrap();
}

#[test]
fn a_full_disk_stops_the_run_cleanly_and_it_resumes_once_space_is_freed() {
    let case = Case::new(10, 200);
    let want = reference(&case);
    let mnt = case.path("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    // Fill the disk but for a few kilobytes: the first checkpoints fit, later ones do not.
    let ballast = mnt.join("ballast");
    let free = |p: &Path| {
        let o = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let avail = free(&mnt);
    std::fs::write(&ballast, vec![0u8; (avail - 24 * 1024) as usize]).unwrap();
    let out = case.path("out");
    let ckpt = mnt.join("ckpt");
    let (code, log) = case.run(&out, Some(&ckpt), "");
    assert_ne!(code, 0, "the run should stop on a full disk: {log}");
    assert!(log.contains("No space left on device"), "{log}");
    // Never a half checkpoint: no temporary file is left to be mistaken for one.
    for e in std::fs::read_dir(ckpt.join("state")).into_iter().flatten() {
        let p = e.unwrap().path();
        assert!(
            !p.file_name().unwrap().to_string_lossy().starts_with('.'),
            "temp file left: {p:?}"
        );
    }
    std::fs::remove_file(&ballast).unwrap();
    let (code, log) = case.run(&out, Some(&ckpt), "");
    assert_eq!(code, 0, "{log}");
    assert_same(&tables(&out), &want, "after the disk was freed");
}

#[test]
fn a_new_branch_starts_empty_and_the_others_keep_their_state() {
    let case = Case::new(10, 200);
    let want = reference(&case);
    // The hashtag branch alone, as a pipeline file of its own.
    let full = std::fs::read_to_string(root().join(CONFIG)).unwrap();
    let hashtags_only = full
        .replace("  ids:\n    type: tokenize\n    inputs: [parse]\n    mode: ids\n", "")
        .replace("  id_counts:\n    type: count\n    inputs: [ids]\n    output_mode: complete\n    key_column: id\n", "")
        .replace("  id_table:\n    type: file\n    inputs: [id_counts]\n    path: out/ids.csv\n", "")
        .replace("  id_memory:\n    type: memory\n    inputs: [id_counts]\n    sort_by_count: true\n", "");
    assert!(
        !hashtags_only.contains("id_table") && !hashtags_only.contains("id_memory"),
        "fixture changed: update this test"
    );
    let short_config = case.path("hashtags-only.yaml");
    std::fs::write(&short_config, hashtags_only).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&case.input)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let later = case.path("later");
    std::fs::create_dir_all(&later).unwrap();

    // Two runs over the two halves of the input, resuming from a checkpoint; the second run
    // is the short pipeline again (`grow` false) or the full one with the ids branch added.
    let two_runs = |grow: bool| -> Tables {
        let tag = if grow { "grown" } else { "same" };
        let (out, ckpt) = (
            case.path(&format!("out-{tag}")),
            case.path(&format!("ckpt-{tag}")),
        );
        for p in &names[5..] {
            std::fs::rename(p, later.join(p.file_name().unwrap())).unwrap();
        }
        let short_args = || {
            let mut args = case.args(&out, Some(&ckpt));
            args[1] = short_config.display().to_string();
            let pos = args
                .iter()
                .position(|a| a.starts_with("sinks.id_table"))
                .unwrap();
            args.drain(pos - 1..=pos);
            args
        };
        let o = Command::new(bin())
            .args(short_args())
            .current_dir(root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for p in &names[5..] {
            std::fs::rename(later.join(p.file_name().unwrap()), p).unwrap();
        }
        if grow {
            let (code, log) = case.run(&out, Some(&ckpt), "");
            assert_eq!(code, 0, "{log}");
            assert!(log.contains("starts with empty state"), "{log}");
            tables(&out)
        } else {
            let o = Command::new(bin())
                .args(short_args())
                .current_dir(root())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            Tables {
                q2: std::fs::read_to_string(out.join("q2.csv")).unwrap(),
                ids: BTreeMap::new(),
            }
        }
    };
    let same = two_runs(false);
    let grown = two_runs(true);
    assert!(
        grown.q2 == same.q2,
        "adding a branch changed the hashtag branch's results"
    );
    // The new branch saw the second half only, each tweet once.
    assert!(!grown.ids.is_empty() && grown.ids.len() < want.ids.len());
    assert!(
        grown.ids.keys().all(|k| want.ids.contains_key(k)) && grown.ids.values().all(|&c| c == 1)
    );
}
