//! The live sources in real pipelines: the generator source gives the same tables as the
//! files `trendflow generate` writes with the same seed, and the socket source reads a TCP
//! server's lines into the tutorial's query.

mod common;

use std::io::Write;
use std::net::TcpListener;

use common::*;

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
