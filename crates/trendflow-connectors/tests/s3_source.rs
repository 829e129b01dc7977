//! The file source on a real S3 endpoint (s3s-fs on 127.0.0.1). Over 10,000 objects: with
//! incremental listing, a trigger lists the new keys only (one request), whatever the bucket
//! holds; with full listing, every trigger lists the whole bucket. Costs are counted by the
//! source's own metrics, not timed. `clean_source` archives and deletes on S3 after commits.

use trendflow_connectors::file_source::{CleanSource, FileSource, FileSourceOptions, Listing};
use trendflow_connectors::storage::Location;
use trendflow_connectors::testkit::local_s3::LocalS3;
use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{Batch, BatchSender, BoxFuture, DeadLetter, EpochPlan, OperatorError, Source};

/// Keeps the raw batches a source sends.
struct Keep(Vec<trendflow_core::RawBatch>);
impl Keep {
    fn lines(&self) -> usize {
        self.0.iter().map(|b| b.lines).sum()
    }
}
impl BatchSender for Keep {
    fn send(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), OperatorError>> {
        if let Batch::Raw(r) = batch {
            self.0.push((*r).clone());
        }
        Box::pin(async { Ok(()) })
    }
    fn dead_letter(&mut self, _: DeadLetter) -> BoxFuture<'_, Result<(), OperatorError>> {
        Box::pin(async { Ok(()) })
    }
}

fn add_objects(s3: &LocalS3, from: usize, to: usize) {
    let dir = s3.object_path("tweets", "input");
    std::fs::create_dir_all(&dir).unwrap();
    for i in from..to {
        std::fs::write(dir.join(format!("{i:08}.json")), format!("{{\"n\":{i}}}\n")).unwrap();
    }
}

/// A source over `s3://tweets/input` of `s3`, as it stands after reading the first 10,000
/// objects when `resumed` (restored from the state such a source checkpoints).
async fn source(s3: &LocalS3, listing: Listing, metrics: &Metrics) -> FileSource {
    let mut o = FileSourceOptions::at(Location::parse("s3://tweets/input").unwrap());
    o.s3 = s3.options();
    o.listing = listing;
    // Full listing: at most 10 files per trigger, so that each trigger lists the bucket but
    // reads only the new files.
    o.max_files_per_trigger = Some(10);
    let mut src = FileSource::new(o.clone(), "tweets", metrics).unwrap();
    if listing == Listing::Incremental {
        // The state of a source that has read up to the 10,000th key: one key.
        let store: std::sync::Arc<dyn object_store::ObjectStore> =
            std::sync::Arc::new(object_store::memory::InMemory::new());
        use object_store::ObjectStoreExt;
        store
            .put(
                &object_store::path::Path::from("input/00009999.json"),
                "x\n".into(),
            )
            .await
            .unwrap();
        let mut done = FileSource::with_store(o, store, "done", &Metrics::new());
        let EpochPlan::Input(input) = done.plan_epoch(0).await.unwrap() else {
            unreachable!()
        };
        done.read_epoch(0, &input, &mut Keep(Vec::new()))
            .await
            .unwrap();
        src.restore(&done.snapshot().unwrap()).unwrap();
    }
    src
}

/// Keys listed and list requests of each of 3 triggers, 10 new objects before each, over a
/// bucket of 10,000 objects.
async fn listing_costs(listing: Listing) -> Vec<(i64, i64)> {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = LocalS3::start(tmp.path()).unwrap();
    s3.create_bucket("tweets").unwrap();
    add_objects(&s3, 0, 10_000);
    let metrics = Metrics::new();
    let mut src = source(&s3, listing, &metrics).await;
    let mut out = Keep(Vec::new());
    let mut costs = Vec::new();
    let mut last = (0, 0);
    for epoch in 0..3u64 {
        let from = 10_000 + 10 * epoch as usize;
        add_objects(&s3, from, from + 10);
        let EpochPlan::Input(input) = src.plan_epoch(epoch).await.unwrap() else {
            panic!("nothing planned in epoch {epoch}")
        };
        src.read_epoch(epoch, &input, &mut out).await.unwrap();
        let now = (
            metrics.value(names::KEYS_LISTED, "tweets"),
            metrics.value(names::LIST_REQUESTS, "tweets"),
        );
        costs.push((now.0 - last.0, now.1 - last.1));
        last = now;
    }
    // Incremental: the 30 new objects; full: the oldest 10 of the bucket each time.
    assert_eq!(out.lines(), 30, "{listing:?}: files read");
    costs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_listing_is_flat_over_ten_thousand_objects() {
    let incremental = listing_costs(Listing::Incremental).await;
    // Each trigger lists the 10 new keys, in one request, whatever the bucket holds.
    assert_eq!(incremental, vec![(10, 1); 3]);
    let full = listing_costs(Listing::Full).await;
    // Each trigger lists the whole bucket: 11 requests of up to 1,000 keys.
    assert!(
        full.iter()
            .all(|&(keys, requests)| keys > 10_000 && requests == 11),
        "{full:?}"
    );
}

/// Reads what is in `s3://tweets/input`, commits, and returns the lines read.
async fn read_and_commit(s3: &LocalS3, clean: CleanSource) -> usize {
    let mut o = FileSourceOptions::at(Location::parse("s3://tweets/input").unwrap());
    o.s3 = s3.options();
    o.clean_source = clean;
    let mut src = FileSource::new(o, "tweets", &Metrics::new()).unwrap();
    let mut out = Keep(Vec::new());
    let EpochPlan::Input(input) = src.plan_epoch(0).await.unwrap() else {
        panic!("nothing planned")
    };
    src.read_epoch(0, &input, &mut out).await.unwrap();
    src.on_commit(0).await.unwrap();
    // A restart repeats the clean-up of its checkpoint's epoch: not an error.
    src.on_commit(0).await.unwrap();
    out.lines()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_source_archives_and_deletes_on_s3_after_the_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = LocalS3::start(tmp.path()).unwrap();
    s3.create_bucket("tweets").unwrap();
    s3.create_bucket("cold").unwrap();

    add_objects(&s3, 0, 3);
    let archive = CleanSource::Archive(Location::parse("s3://tweets/archive").unwrap());
    assert_eq!(read_and_commit(&s3, archive).await, 3);
    for i in 0..3 {
        let name = format!("{i:08}.json");
        assert!(!s3.object_path("tweets", &format!("input/{name}")).exists());
        assert!(
            s3.object_path("tweets", &format!("archive/{name}"))
                .exists()
        );
    }

    // Another bucket: copied, then deleted.
    add_objects(&s3, 3, 5);
    let archive = CleanSource::Archive(Location::parse("s3://cold/tweets").unwrap());
    assert_eq!(read_and_commit(&s3, archive).await, 2);
    assert!(s3.object_path("cold", "tweets/00000004.json").exists());
    assert!(!s3.object_path("tweets", "input/00000004.json").exists());

    add_objects(&s3, 5, 7);
    assert_eq!(read_and_commit(&s3, CleanSource::Delete).await, 2);
    assert!(!s3.object_path("tweets", "input/00000006.json").exists());
    assert!(!s3.object_path("cold", "tweets/00000006.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_read_as_numbered_pieces_of_whole_lines_as_its_body_streams_in() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = LocalS3::start(tmp.path()).unwrap();
    let dir = s3.object_path("tweets", "input");
    std::fs::create_dir_all(&dir).unwrap();
    // 3 MB of lines of varied lengths, the last without its newline.
    let mut body: Vec<u8> = (0..40_000)
        .flat_map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "p".repeat(i % 131)).into_bytes())
        .collect();
    body.extend(b"{\"n\":\"last\"}");
    std::fs::write(dir.join("dump.json"), &body).unwrap();
    let mut o = FileSourceOptions::at(Location::parse("s3://tweets/input").unwrap());
    o.s3 = s3.options();
    o.batch_bytes = 100_000;
    let metrics = Metrics::new();
    let mut src = FileSource::new(o, "tweets", &metrics).unwrap();
    let mut out = Keep(Vec::new());
    let EpochPlan::Input(input) = src.plan_epoch(0).await.unwrap() else {
        panic!("nothing planned")
    };
    src.read_epoch(0, &input, &mut out).await.unwrap();
    let joined: Vec<u8> = out.0.iter().flat_map(|b| b.data.to_vec()).collect();
    assert_eq!(joined, body);
    assert!(out.0.len() >= 30, "{} pieces", out.0.len());
    let mut line = 1;
    for (i, b) in out.0.iter().enumerate() {
        assert_eq!(b.first_line, line, "piece {i}");
        line += b.lines as u64;
        if i + 1 < out.0.len() {
            assert!(
                b.data.ends_with(b"\n") && b.data.len() >= 100_000,
                "piece {i}"
            );
        }
    }
    assert_eq!(line - 1, 40_001);
    assert_eq!(
        metrics.value(names::BYTES_IN, "tweets") as usize,
        body.len()
    );
}
