//! The live sources in real pipelines: the generator source gives the same tables as the
//! files `trendflow generate` writes with the same seed, the socket source reads a TCP
//! server's lines into the tutorial's query, and the Jetstream and Mastodon sources, against
//! the replay servers of `trendflow_social::testkit` (real recordings over the real
//! protocols), count every post exactly once across a cut connection, a `kill -9` and a
//! restart from the checkpoint, with the tables of a clean run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use trendflow_social::testkit::mastodon::StreamEvent;
use trendflow_social::testkit::{jetstream, mastodon, recordings};

/// config/tutorial-q1.yaml with its `tweets` source replaced by `source` (YAML lines).
fn q1_with_source(dir: &std::path::Path, source: &str) -> String {
    let text = std::fs::read_to_string(root().join("config/tutorial-q1.yaml")).unwrap();
    let start = text.find("\nsources:\n").expect("a sources section") + 1;
    let end = start
        + text[start..]
            .find("\n\n")
            .expect("a blank line after sources");
    let yaml = format!(
        "{}sources:\n  tweets:\n{source}{}",
        &text[..start],
        &text[end..]
    );
    let path = dir.join("q1.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

#[test]
fn the_generator_source_equals_the_generated_files() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    let o = trendflow(
        &[
            "generate",
            "--out",
            files.to_str().unwrap(),
            "--files",
            "4",
            "--tweets-per-file",
            "250",
            "--seed",
            "9",
        ],
        tmp.path(),
    );
    assert!(o.status.success());
    let from_files = tmp.path().join("from-files.csv");
    let o = trendflow(
        &[
            "run",
            "config/tutorial-q1.yaml",
            "--set",
            "trigger=available_now",
            "--set",
            "api.enabled=false",
            "--set",
            &format!("sources.tweets.path={}", files.display()),
            "--set",
            &format!("sinks.result.path={}", from_files.display()),
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same stream, generated live: a source of type generator replaces the file source.
    let live = tmp.path().join("live.csv");
    let o = trendflow(
        &[
            "run",
            &q1_with_source(
                tmp.path(),
                "    type: generator\n    seed: 9\n    start: \"2021-04-15T08:00:00Z\"\n    limit: 1000\n    max_lines_per_trigger: 300\n",
            ),
            "--set",
            "trigger=available_now",
            "--set",
            "api.enabled=false",
            "--set",
            &format!("sinks.result.path={}", live.display()),
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, want) = table(&from_files);
    let (_, got) = table(&live);
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[test]
fn the_socket_source_reads_a_servers_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tiny = root().join("tests/fixtures/golden/tiny/input");
    let mut names: Vec<_> = std::fs::read_dir(&tiny)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        // Give up after a minute rather than hang if the pipeline never connects.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("no connection: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        for f in names {
            s.write_all(&std::fs::read(f).unwrap()).unwrap();
        }
    });
    let out = tmp.path().join("q1.csv");
    let o = trendflow(
        &[
            "run",
            &q1_with_source(
                tmp.path(),
                &format!("    type: socket\n    host: 127.0.0.1\n    port: {port}\n"),
            ),
            "--set",
            "trigger=available_now",
            "--set",
            "api.enabled=false",
            "--set",
            &format!("sinks.result.path={}", out.display()),
        ],
        tmp.path(),
    );
    server.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, spark) = table(&root().join("tests/fixtures/golden/tiny/spark/q1.csv"));
    assert_eq!(table(&out).1, spark);
}

// ---------------------------------------------------------------------------------------
// Jetstream and Mastodon: replay servers, kill -9, restart
// ---------------------------------------------------------------------------------------

const JETSTREAM_PIPELINE: &str = "tests/fixtures/jetstream-pipeline.yaml";
const MASTODON_PIPELINE: &str = "tests/fixtures/mastodon-pipeline.yaml";

/// A pipeline process that runs until it is stopped or killed, its log kept for failure
/// messages. Killed if the test fails while it runs.
struct Pipeline {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Pipeline {
    fn start(args: &[String], run_dir: &Path) -> Pipeline {
        let mut child = Command::new(bin())
            .args(args)
            .current_dir(root())
            .env("TRENDFLOW_RUN_DIR", run_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start trendflow");
        let stderr = child.stderr.take().expect("a piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let collected = log.clone();
        // Reading it all also keeps the child from blocking on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Pipeline { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `done` holds (a deadline of two minutes, not a measure: the conditions
    /// are met in a few seconds), failing at once, with the log, if the process exits.
    fn wait_for(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "trendflow exited ({status}) while the test waited for {what}; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; trendflow's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` (SIGKILL): no epoch finishes, nothing is flushed.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as `trendflow stop` sends: the epoch in progress finishes, the sinks close,
    /// the process exits with 0. Afterwards the result files are final.
    fn stop(&mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "trendflow did not stop after SIGTERM; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "trendflow stopped with {status}; its log:\n{}",
            self.log()
        );
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The files of one run (its tables, checkpoint, dead letters and run registry), in a
/// directory of their own.
struct RunFiles {
    dir: PathBuf,
}

impl RunFiles {
    fn new(parent: &Path, name: &str) -> RunFiles {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        RunFiles { dir }
    }

    fn ids(&self) -> PathBuf {
        self.dir.join("ids.csv")
    }

    fn hashtags(&self) -> PathBuf {
        self.dir.join("hashtags.csv")
    }

    /// `trendflow run CONFIG` with this run's paths and the `sets` (KEY=VALUE) given.
    fn args(&self, config: &str, sets: &[String]) -> Vec<String> {
        let mut args = vec!["run".to_string(), config.to_string()];
        let paths = [
            format!("checkpoint.path={}", self.dir.join("checkpoint").display()),
            format!(
                "dead_letter.path={}",
                self.dir.join("dead-letters.jsonl").display()
            ),
            format!("sinks.id_table.path={}", self.ids().display()),
            format!("sinks.hashtag_table.path={}", self.hashtags().display()),
        ];
        for set in sets.iter().cloned().chain(paths) {
            args.push("--set".into());
            args.push(set);
        }
        args
    }
}

/// A result table of two columns, key and count, as a file sink writes it; `None` before the
/// sink first wrote it. The sink replaces the file by a rename: it is never half written.
fn read_counts(path: &Path) -> Option<BTreeMap<String, i64>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut counts = BTreeMap::new();
    for row in parse_csv(&text).into_iter().skip(1) {
        let [key, count] = row.as_slice() else {
            panic!("{}: a row of {} fields: {row:?}", path.display(), row.len());
        };
        let count: i64 = count
            .parse()
            .unwrap_or_else(|e| panic!("{}: count `{count}`: {e}", path.display()));
        assert!(
            counts.insert(key.clone(), count).is_none(),
            "{}: `{key}` on two rows",
            path.display()
        );
    }
    Some(counts)
}

/// The id table at `path` holds every id of `expected` (and maybe more: checked later).
fn holds_all(path: &Path, expected: &BTreeSet<String>) -> bool {
    read_counts(path).is_some_and(|t| expected.iter().all(|id| t.contains_key(id)))
}

/// Every id of the table counted exactly once, and the ids exactly `expected`.
fn assert_each_once(table: &BTreeMap<String, i64>, expected: &BTreeSet<String>, what: &str) {
    let not_once: Vec<_> = table.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        not_once.is_empty(),
        "{what}: ids not counted exactly once: {not_once:?}"
    );
    let got: BTreeSet<String> = table.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{what}: {} ids, {} expected; missing: {missing:?}; unexpected: {unexpected:?}",
        got.len(),
        expected.len()
    );
}

fn assert_same_counts(got: &BTreeMap<String, i64>, want: &BTreeMap<String, i64>, what: &str) {
    let keyed = |m: &BTreeMap<String, i64>| -> BTreeMap<Vec<String>, i64> {
        m.iter().map(|(k, v)| (vec![k.clone()], *v)).collect()
    };
    let differences = diff(&keyed(want), &keyed(got));
    assert!(
        differences.is_empty(),
        "{what}: the hashtag counts differ from the clean run's:\n{differences}"
    );
}

/// The ids the `bluesky` format gives the posts created in a Jetstream recording: a post's
/// AT URI, `at://DID/app.bsky.feed.post/RKEY` (crates/trendflow-ops/src/formats/bluesky.rs).
/// Likes, reposts, follows, deletions, identity and account events are no posts.
fn bluesky_post_ids(events: &[String]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON event");
            let commit = &v["commit"];
            let post_created = v["kind"].as_str() == Some("commit")
                && commit["operation"].as_str() == Some("create")
                && commit["collection"].as_str() == Some("app.bsky.feed.post");
            post_created.then(|| {
                format!(
                    "at://{}/app.bsky.feed.post/{}",
                    v["did"].as_str().expect("a DID"),
                    commit["rkey"].as_str().expect("an rkey")
                )
            })
        })
        .collect()
}

#[test]
fn jetstream_cut_killed_and_restarted_counts_every_post_once() {
    let tmp = tempfile::tempdir().unwrap();
    // The replay servers run on this runtime's threads, in the background, as long as the
    // test holds their handles.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = recordings::jetstream_corpus();
    let expected = bluesky_post_ids(&events);
    assert!(
        expected.len() >= 10,
        "only {} posts in the recording",
        expected.len()
    );
    let replay = |drop_after: Vec<usize>| {
        let (_, server) = rt.block_on(jetstream::start(jetstream::JetstreamReplay {
            events: events.clone(),
            drop_after,
        }));
        server
    };

    // The reference: a clean run on a server of its own, never cut, never killed.
    let clean = RunFiles::new(tmp.path(), "clean");
    let server = replay(vec![]);
    let args = clean.args(
        JETSTREAM_PIPELINE,
        &[format!("sources.posts.url={}", server.url())],
    );
    let mut run = Pipeline::start(&args, &clean.dir);
    run.wait_for("every post in the clean run's id table", || {
        holds_all(&clean.ids(), &expected)
    });
    run.stop();
    assert_each_once(
        &read_counts(&clean.ids()).unwrap(),
        &expected,
        "the clean run",
    );
    let want_hashtags = read_counts(&clean.hashtags()).expect("the clean run's hashtag table");
    assert!(
        !want_hashtags.is_empty(),
        "the clean run found no hashtag: nothing to compare"
    );
    drop(server);

    // The crash: the first connection is cut after 7 of the 20 events of the posts-only
    // subscription (the source reconnects 1.5 to 3 s later, from its cursor less `rewind`);
    // the process is killed with kill -9 as soon as posts are in its id table, then started
    // again with the same command, which resumes from the checkpoint and the offset log.
    let crashed = RunFiles::new(tmp.path(), "crashed");
    let server = replay(vec![7]);
    let args = crashed.args(
        JETSTREAM_PIPELINE,
        &[
            format!("sources.posts.url={}", server.url()),
            "sources.posts.reconnect_min=3s".into(),
        ],
    );
    let mut first = Pipeline::start(&args, &crashed.dir);
    first.wait_for("the first posts in the id table", || {
        read_counts(&crashed.ids()).is_some_and(|t| !t.is_empty())
    });
    first.kill_9();
    let at_kill = read_counts(&crashed.ids()).unwrap_or_default();
    eprintln!(
        "killed with {} of {} posts in the id table; connections: {:?}",
        at_kill.len(),
        expected.len(),
        server.connections()
    );
    assert!(
        server.connections().first().is_some_and(|c| c.cut),
        "the first connection was not cut: {:?}",
        server.connections()
    );
    let mut second = Pipeline::start(&args, &crashed.dir);
    second.wait_for("every post in the id table after the restart", || {
        holds_all(&crashed.ids(), &expected)
    });
    second.stop();
    eprintln!("connections: {:?}", server.connections());
    assert_each_once(
        &read_counts(&crashed.ids()).unwrap(),
        &expected,
        "after a cut, kill -9 and a restart",
    );
    assert_same_counts(
        &read_counts(&crashed.hashtags()).expect("the hashtag table"),
        &want_hashtags,
        "after a cut, kill -9 and a restart",
    );
}

/// A recorded Mastodon status: its id (the server's, which the source orders and
/// de-duplicates by), its `uri` (the id the `mastodon` format gives the post:
/// crates/trendflow-ops/src/formats/mastodon.rs) and its JSON.
struct Status {
    id: String,
    uri: String,
    json: String,
}

/// The recorded statuses, oldest first (Mastodon's order of ids: longer is newer, then by
/// text), so that the stream is in id order as a live timeline is.
fn recorded_statuses() -> Vec<Status> {
    let mut all: Vec<Status> = recordings::mastodon_statuses()
        .into_iter()
        .map(|json| {
            let v: serde_json::Value = serde_json::from_str(&json).expect("a JSON status");
            Status {
                id: v["id"].as_str().expect("an id").to_string(),
                uri: v["uri"].as_str().expect("a uri").to_string(),
                json,
            }
        })
        .collect();
    all.sort_by(|a, b| (a.id.len(), &a.id).cmp(&(b.id.len(), &b.id)));
    all
}

/// `status` as its `status.update` after an edit: new content, `edited_at` set.
fn edited(status: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(status).unwrap();
    let content = v["content"].as_str().unwrap_or("").to_string();
    v["content"] = format!("{content}<p>(edited)</p>").into();
    v["edited_at"] = "2025-06-30T12:00:00.000Z".into();
    v.to_string()
}

#[test]
fn mastodon_gap_filled_killed_and_restarted_counts_every_status_once() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = recorded_statuses();
    assert!(s.len() >= 20, "only {} statuses recorded", s.len());
    let update = |i: usize| StreamEvent::Update(s[i].json.clone());
    // The 3 oldest were on the timeline before the stream: a source that starts without a
    // checkpoint does not fetch them, and a gap fill (forward from the newest status passed
    // on) never reaches back to them.
    let history: Vec<String> = s[..3].iter().map(|x| x.json.clone()).collect();
    // Streamed before the cut: 6 statuses, an edit of one of them (dropped: not a new post),
    // a heartbeat and the deletion of an old status (a control message, no post).
    let before_cut = vec![
        update(3),
        update(4),
        StreamEvent::Heartbeat,
        StreamEvent::StatusUpdate(edited(&s[4].json)),
        update(5),
        StreamEvent::Delete(s[0].id.clone()),
        update(6),
        update(7),
        update(8),
    ];
    // Heartbeats are not counted in `drop_after`.
    let cut_after = before_cut
        .iter()
        .filter(|e| !matches!(e, StreamEvent::Heartbeat))
        .count();
    // Posted while the stream was cut: on the REST timeline only, never streamed.
    let while_disconnected: Vec<String> = s[9..13].iter().map(|x| x.json.clone()).collect();
    // Streamed after it: the rest, with an edit of a status posted while disconnected, and
    // the deletion of a status counted before (append semantics: a count of posts created;
    // a deletion takes nothing back and adds nothing).
    let mut after_cut = vec![
        update(13),
        StreamEvent::StatusUpdate(edited(&s[10].json)),
        update(14),
        StreamEvent::Delete(s[5].id.clone()),
        StreamEvent::Heartbeat,
    ];
    after_cut.extend((15..s.len()).map(update));
    // Every status streamed or posted while disconnected, each once; none of the history.
    let expected: BTreeSet<String> = s[3..].iter().map(|x| x.uri.clone()).collect();
    assert_eq!(expected.len(), s.len() - 3, "two statuses share a uri");

    // The reference: a clean run on a server of its own that streams the same statuses,
    // without cut, edit or deletion, never killed.
    let clean = RunFiles::new(tmp.path(), "clean");
    let (_, server) = rt.block_on(mastodon::start(mastodon::MastodonReplay {
        history: history.clone(),
        stream: (3..s.len()).map(update).collect(),
        ..Default::default()
    }));
    let args = clean.args(
        MASTODON_PIPELINE,
        &[format!("sources.posts.server={}", server.url())],
    );
    let mut run = Pipeline::start(&args, &clean.dir);
    run.wait_for("every status in the clean run's id table", || {
        holds_all(&clean.ids(), &expected)
    });
    run.stop();
    assert_each_once(
        &read_counts(&clean.ids()).unwrap(),
        &expected,
        "the clean run",
    );
    let want_hashtags = read_counts(&clean.hashtags()).expect("the clean run's hashtag table");
    assert!(
        !want_hashtags.is_empty(),
        "the clean run found no hashtag: nothing to compare"
    );
    drop(server);

    // The crash: the stream is cut after the first part (the source reconnects 1.5 to 3 s
    // later and fills the gap from the REST timeline); the process is killed with kill -9 as
    // soon as statuses are in its id table, then started again with the same command: it
    // resumes from the checkpoint and the offset log, opens the stream again, and fills the
    // gap since its newest status (the statuses posted while disconnected, and those the
    // server streamed to the dead process) from the REST timeline.
    let crashed = RunFiles::new(tmp.path(), "crashed");
    let (_, server) = rt.block_on(mastodon::start(mastodon::MastodonReplay {
        history,
        stream: before_cut.into_iter().chain(after_cut).collect(),
        drop_after: vec![cut_after],
        posted_while_disconnected: vec![while_disconnected],
        ..Default::default()
    }));
    let args = crashed.args(
        MASTODON_PIPELINE,
        &[
            format!("sources.posts.server={}", server.url()),
            "sources.posts.reconnect_min=3s".into(),
        ],
    );
    let mut first = Pipeline::start(&args, &crashed.dir);
    first.wait_for("the first statuses in the id table", || {
        read_counts(&crashed.ids()).is_some_and(|t| !t.is_empty())
    });
    first.kill_9();
    let at_kill = read_counts(&crashed.ids()).unwrap_or_default();
    eprintln!(
        "killed with {} of {} statuses in the id table; connections: {:?}; REST requests: {:?}",
        at_kill.len(),
        expected.len(),
        server.connections(),
        server.rest_requests()
    );
    assert!(
        server.connections().first().is_some_and(|c| c.cut),
        "the first connection was not cut: {:?}",
        server.connections()
    );
    let mut second = Pipeline::start(&args, &crashed.dir);
    second.wait_for("every status in the id table after the restart", || {
        holds_all(&crashed.ids(), &expected)
    });
    second.stop();
    eprintln!(
        "connections: {:?}; REST requests: {:?}",
        server.connections(),
        server.rest_requests()
    );
    // The statuses posted while disconnected were on the REST timeline only.
    assert!(
        !server.rest_requests().is_empty(),
        "no gap fill, yet every status arrived"
    );
    assert_each_once(
        &read_counts(&crashed.ids()).unwrap(),
        &expected,
        "after a cut, kill -9 and a restart",
    );
    assert_same_counts(
        &read_counts(&crashed.hashtags()).expect("the hashtag table"),
        &want_hashtags,
        "after a cut, kill -9 and a restart",
    );
}
