//! PostgreSQL end to end, against a real server started by the test (Debian's `postgresql`):
//! a pipeline writing Q2's final windows (COPY) and an upserted count of tweet ids is killed
//! with `kill -9` at random moments and restarted; its tables end equal to those of a run
//! that never crashed, row for row, every tweet id counted once.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use trendflow_connectors::testkit::postgres_server::PostgresServer;

const CONFIG: &str = "tests/fixtures/postgres-pipeline.yaml";

struct Case {
    dir: tempfile::TempDir,
    input: PathBuf,
    pg: PostgresServer,
}

impl Case {
    fn new(files: usize, per_file: usize) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let raw = generate_crash_input(dir.path(), files, per_file);
        let input = dir.path().join("in");
        copy_with_mtimes(&raw, &input, 1_618_466_400);
        let pg = PostgresServer::start().unwrap();
        Case { dir, input, pg }
    }

    /// `trendflow run` writing into database `db`, with its checkpoint under `db`.
    fn command(&self, db: &str) -> Command {
        let url = self.pg.connection_string(db);
        let mut c = Command::new(bin());
        c.args([
            "run",
            CONFIG,
            "--set",
            &format!("sources.tweets.path={}", self.input.display()),
            "--set",
            &format!("sinks.result.url={url}"),
            "--set",
            &format!("sinks.id_table.url={url}"),
            "--set",
            &format!(
                "dead_letter.path={}",
                self.dir.path().join(db).join("dead.jsonl").display()
            ),
            "--set",
            &format!(
                "checkpoint.path={}",
                self.dir.path().join(db).join("checkpoint").display()
            ),
        ])
        .current_dir(root())
        .env("TRENDFLOW_RUN_DIR", self.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    }

    fn run(&self, db: &str) {
        let o = self.command(db).output().unwrap();
        assert!(
            o.status.success(),
            "run into {db} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// A table's rows, in order.
    fn rows(&self, db: &str, sql: &str) -> Vec<String> {
        self.pg
            .psql(db, sql)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn q2(&self, db: &str) -> Vec<String> {
        self.rows(
            db,
            "SELECT window_start, window_end, word, count FROM q2 ORDER BY window_start, window_end, word",
        )
    }

    fn ids(&self, db: &str) -> Vec<String> {
        self.rows(db, "SELECT id, count FROM ids ORDER BY id")
    }
}

#[test]
fn kill_9_with_postgres_sinks_gives_a_clean_runs_tables() {
    let case = Case::new(150, 300);
    case.pg.create_database("reference").unwrap();
    case.pg.create_database("crashed").unwrap();
    case.run("reference");
    let want_q2 = case.q2("reference");
    let want_ids = case.ids("reference");
    assert!(want_q2.len() > 100, "too small a reference");
    assert!(
        want_ids.iter().all(|r| r.ends_with("|1")),
        "an id counted twice in the reference"
    );

    let (kills, finished) = kill_at_random_moments(5, 60, (50, 400), || {
        case.command("crashed").spawn().unwrap()
    });
    if !finished {
        case.run("crashed");
    }
    eprintln!("{kills} kills");
    assert!(kills >= 3, "only {kills} kills: too small an input");
    let got_q2 = case.q2("crashed");
    assert_eq!(got_q2.len(), want_q2.len(), "after {kills} kills: Q2 rows");
    assert!(got_q2 == want_q2, "after {kills} kills: Q2 rows differ");
    let got_ids = case.ids("crashed");
    assert_eq!(got_ids.len(), want_ids.len(), "after {kills} kills: ids");
    assert!(
        got_ids == want_ids,
        "after {kills} kills: a tweet lost or counted twice"
    );
    // One commit row per sink, at the last epoch.
    let commits = case.rows(
        "crashed",
        "SELECT sink FROM trendflow_commits ORDER BY sink",
    );
    assert_eq!(commits, vec!["id_table", "result"]);
}
