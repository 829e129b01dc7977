//! Checkpoints on object storage: the same pipeline, stopped and resumed through an
//! `object_store` backend, ends with exactly the tables it ends with through a local
//! checkpoint directory.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use trendflow_config::{Override, build, load_file};
use trendflow_connectors::ObjectStoreCheckpoints;
use trendflow_runtime::checkpoint::{CheckpointStore, Checkpointer, LocalDirStore};

fn overrides(input: &Path, out: &Path) -> Vec<Override> {
    [
        format!("sources.tweets.path={}", input.display()),
        format!("sinks.result.path={}", out.join("q2.csv").display()),
        format!("sinks.id_table.path={}", out.join("ids.csv").display()),
        format!("dead_letter.path={}", out.join("dead.jsonl").display()),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

/// Runs the crash-test pipeline to its end with checkpoints in `store`.
async fn run(input: &Path, out: &Path, store: Arc<dyn CheckpointStore>) {
    let config = load_file(
        &root().join("tests/fixtures/crash-pipeline.yaml"),
        &overrides(input, out),
    )
    .unwrap();
    let mut built = build(&config).unwrap();
    built.checkpoints = Checkpointer::new(store, 2);
    let (supervisor, _) = built.into_supervisor();
    supervisor.run(|_| {}).await.unwrap();
}

/// Two runs, the first over the first half of the files, the second over all of them.
async fn two_runs(input: &Path, out: &Path, store: Arc<dyn CheckpointStore>) -> (String, String) {
    let parked = input.with_extension("parked");
    std::fs::create_dir_all(&parked).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(input)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in &names[4..] {
        std::fs::rename(input.join(n), parked.join(n)).unwrap();
    }
    run(input, out, store.clone()).await;
    for n in &names[4..] {
        std::fs::rename(parked.join(n), input.join(n)).unwrap();
    }
    run(input, out, store).await;
    (
        std::fs::read_to_string(out.join("q2.csv")).unwrap(),
        std::fs::read_to_string(out.join("ids.csv")).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_from_object_storage_equals_one_resumed_from_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    copy_with_mtimes(
        &root().join("tests/fixtures/golden/multibatch/input"),
        &input,
        1_618_466_400,
    );

    let local = two_runs(
        &input,
        &tmp.path().join("out-local"),
        Arc::new(LocalDirStore::new(tmp.path().join("ckpt"))),
    )
    .await;

    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&bucket).unwrap());
    let objects = Arc::new(ObjectStoreCheckpoints::new(
        store,
        "checkpoints/crash-test",
        "bucket/checkpoints/crash-test",
    ));
    let remote = two_runs(&input, &tmp.path().join("out-remote"), objects.clone()).await;

    assert!(local.0.lines().count() > 100);
    assert!(
        local == remote,
        "tables differ between local and object-store checkpoints"
    );
    assert_eq!(
        objects.list("state").await.unwrap().len(),
        2,
        "pruned to `keep`"
    );
}
