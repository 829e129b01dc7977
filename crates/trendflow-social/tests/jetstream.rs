//! The Jetstream source against the replay server, with real recorded events: everything is
//! collected once, across cut connections, restarts and compression.

mod common;

use std::time::Duration;

use common::{Driver, assert_numbered, assert_same_lines, counter};
use trendflow_core::Source;
use trendflow_core::metrics::{Metrics, names};
use trendflow_social::jetstream::event_identity;
use trendflow_social::testkit::jetstream::{self, JetstreamReplay, JetstreamReplayHandle};
use trendflow_social::testkit::{mastodon, recordings};
use trendflow_social::{JetstreamOptions, JetstreamSource};

/// Options for the replay server at `url`: every collection, fast reconnects.
fn options(url: String) -> JetstreamOptions {
    JetstreamOptions {
        url,
        wanted_collections: vec![],
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(100),
        max_events_per_trigger: 25,
        ..Default::default()
    }
}

fn time_us(line: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["time_us"]
        .as_i64()
        .unwrap()
}

/// Whether the source has taken in everything the server sent on connections `from..`,
/// and passed on or dropped (as a duplicate) every event it received, `planned` of them
/// passed on.
fn settled(
    server: &JetstreamReplayHandle,
    from_connection: usize,
    metrics: &Metrics,
    planned: usize,
) -> bool {
    let connections = server.connections();
    let sent: usize = connections[from_connection.min(connections.len())..]
        .iter()
        .map(|c| c.sent)
        .sum();
    let received = metrics.total(names::RECORDS_IN);
    server.caught_up()
        && received == sent as i64
        && received == planned as i64 + counter(metrics, names::RECORDS_FILTERED, "duplicate")
}

async fn collect_all(
    replay: JetstreamReplay,
    options: impl Fn(String) -> JetstreamOptions,
) -> (Vec<String>, Metrics, JetstreamReplayHandle) {
    let (_, server) = jetstream::start(replay).await;
    let metrics = Metrics::new();
    let source = JetstreamSource::new(options(server.url()), "bluesky", &metrics).unwrap();
    let mut driver = Driver::new(source);
    driver
        .run_until_settled("the whole recording", |planned| {
            settled(&server, 0, &metrics, planned)
        })
        .await;
    let origin = format!(
        "jetstream:{}",
        server.url()["ws://".len()..].trim_end_matches("/subscribe")
    );
    assert_numbered(&driver.out.batches, &origin);
    (driver.out.lines(), metrics, server)
}

#[tokio::test]
async fn a_full_replay_is_collected_exactly_once_in_order() {
    let corpus = recordings::jetstream_corpus();
    let (lines, metrics, server) = collect_all(
        JetstreamReplay {
            events: corpus.clone(),
            drop_after: vec![],
        },
        options,
    )
    .await;
    assert_same_lines(&lines, &corpus);
    assert_eq!(server.connections().len(), 1);
    assert_eq!(
        server.connections()[0].cursor,
        None,
        "a first start tails live"
    );
    assert_eq!(counter(&metrics, names::RECORDS_FILTERED, "duplicate"), 0);
}

#[tokio::test]
async fn every_kind_of_event_passes_compressed_and_cut() {
    // One of each: post, like, repost, follow, block, profile update, deletion, identity,
    // account, and a collection outside Bluesky's.
    let golden = recordings::jetstream_golden();
    let (lines, metrics, server) = collect_all(
        JetstreamReplay {
            events: golden.clone(),
            drop_after: vec![4],
        },
        |url| JetstreamOptions {
            compress: true,
            ..options(url)
        },
    )
    .await;
    assert_same_lines(&lines, &golden);
    assert_eq!(server.connections().len(), 2);
    assert_eq!(counter(&metrics, names::RECORDS_FILTERED, "duplicate"), 4);
}

#[tokio::test]
async fn the_subscription_filters_collections_on_the_server() {
    let corpus = recordings::jetstream_corpus();
    let (lines, _, server) = collect_all(
        JetstreamReplay {
            events: corpus.clone(),
            drop_after: vec![],
        },
        |url| JetstreamOptions {
            wanted_collections: vec!["app.bsky.feed.post".into()],
            ..options(url)
        },
    )
    .await;
    let expected: Vec<String> = corpus
        .iter()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["kind"] != "commit" || v["commit"]["collection"] == "app.bsky.feed.post"
        })
        .cloned()
        .collect();
    assert_eq!(
        server.connections()[0].wanted_collections,
        ["app.bsky.feed.post"]
    );
    assert_eq!(
        expected.len(),
        18 + 2,
        "17 creates, 1 delete, identity and account"
    );
    assert_same_lines(&lines, &expected);
}

#[tokio::test]
async fn cut_connections_resume_from_the_cursor_less_rewind_without_loss_or_duplicates() {
    let corpus = recordings::jetstream_corpus();
    let (lines, metrics, server) = collect_all(
        JetstreamReplay {
            events: corpus.clone(),
            drop_after: vec![40, 70],
        },
        options,
    )
    .await;
    assert_same_lines(&lines, &corpus);
    let connections = server.connections();
    assert_eq!(connections.len(), 3);
    assert!(connections[0].cut && connections[1].cut && connections[2].complete);
    // Resumed from the latest event received, less the default 5 s.
    let latest = corpus[..40].iter().map(|l| time_us(l)).max().unwrap();
    assert_eq!(connections[1].cursor, Some(latest - 5_000_000));
    // The recording spans 0.3 s: each resumed connection sent it from its start again,
    // and every event sent twice was dropped.
    let sent: usize = connections.iter().map(|c| c.sent).sum();
    assert_eq!(sent, 40 + 70 + corpus.len());
    assert_eq!(
        counter(&metrics, names::RECORDS_FILTERED, "duplicate"),
        (sent - corpus.len()) as i64
    );
}

#[tokio::test]
async fn a_short_rewind_resumes_mid_recording_and_still_covers_out_of_order_events() {
    let corpus = recordings::jetstream_corpus();
    // Jetstream sends events slightly out of time order: how far an event comes after a
    // later-stamped one is what `rewind` must cover.
    let (mut latest, mut disorder) = (i64::MIN, 0);
    for t in corpus.iter().map(|l| time_us(l)) {
        latest = latest.max(t);
        disorder = disorder.max(latest - t);
    }
    assert!(
        disorder > 0 && disorder < 50_000,
        "the recording's disorder: {disorder} µs"
    );
    let (lines, _, server) = collect_all(
        JetstreamReplay {
            events: corpus.clone(),
            drop_after: vec![100],
        },
        |url| JetstreamOptions {
            rewind: Duration::from_millis(50),
            ..options(url)
        },
    )
    .await;
    assert_same_lines(&lines, &corpus);
    let resumed = &server.connections()[1];
    let latest_before_cut = corpus[..100].iter().map(|l| time_us(l)).max().unwrap();
    assert_eq!(resumed.cursor, Some(latest_before_cut - 50_000));
    assert!(
        resumed.sent < corpus.len(),
        "the second connection replayed part of the recording only ({} events)",
        resumed.sent
    );
}

#[tokio::test]
async fn compressed_events_equal_uncompressed_ones() {
    let corpus = recordings::jetstream_corpus();
    let replay = || JetstreamReplay {
        events: corpus.clone(),
        drop_after: vec![60],
    };
    let (plain, _, plain_server) = collect_all(replay(), options).await;
    let (compressed, metrics, server) = collect_all(replay(), |url| JetstreamOptions {
        compress: true,
        ..options(url)
    })
    .await;
    assert!(server.connections().iter().all(|c| c.compress));
    assert!(plain_server.connections().iter().all(|c| !c.compress));
    assert_same_lines(&compressed, &plain);
    assert_same_lines(&compressed, &corpus);
    // Bytes are counted decompressed. Each connection resumed from before the recording's
    // start, so connection i sent the recording's first `sent` events.
    let decompressed: usize = server
        .connections()
        .iter()
        .map(|c| corpus[..c.sent].iter().map(|l| l.len()).sum::<usize>())
        .sum();
    assert_eq!(metrics.total(names::BYTES_IN) as usize, decompressed);
}

#[tokio::test]
async fn a_restarted_source_resumes_from_its_checkpoint_without_loss_or_duplicates() {
    let corpus = recordings::jetstream_corpus();
    let (_, server) = jetstream::start(JetstreamReplay {
        events: corpus.clone(),
        drop_after: vec![],
    })
    .await;

    // The first run: a checkpoint after some epochs, two more epochs recorded in the offset
    // log but not committed, then a crash (whatever its connection had received is lost).
    let first_metrics = Metrics::new();
    let mut first = Driver::new(
        JetstreamSource::new(options(server.url()), "bluesky", &first_metrics).unwrap(),
    );
    first.run_until_lines(75).await;
    let committed = first.epochs.len() - 2;
    let checkpoint = first.epochs[committed - 1].state.clone();
    let uncommitted = first.epochs[committed..].to_vec();
    let committed_lines: Vec<String> = first.epochs[..committed]
        .iter()
        .flat_map(|e| e.batches.iter())
        .flat_map(|b| {
            String::from_utf8(b.data.clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let first_run_lines = first.out.lines().len();
    drop(first);

    // The restart: state from the checkpoint, the uncommitted epochs replayed, then on.
    let metrics = Metrics::new();
    let mut source = JetstreamSource::new(options(server.url()), "bluesky", &metrics).unwrap();
    source.restore(&checkpoint).unwrap();
    let mut second = Driver::new(source);
    second.replay(&uncommitted).await;
    for (again, before) in second.epochs.iter().zip(&uncommitted) {
        assert_eq!(
            again.batches, before.batches,
            "a replayed epoch sends the same batches"
        );
        assert_eq!(again.state, before.state, "and leaves the same state");
    }
    let resumed_from = server.connections().len();
    second
        .run_until_settled("the rest of the recording", |planned| {
            server.connections().len() > resumed_from
                && settled(&server, resumed_from, &metrics, planned)
        })
        .await;

    let mut lines = committed_lines;
    lines.extend(second.out.lines());
    assert_same_lines(&lines, &corpus);
    // The new connection resumed from the latest event of the replayed epochs, less rewind.
    let latest = corpus[..first_run_lines]
        .iter()
        .map(|l| time_us(l))
        .max()
        .unwrap();
    assert_eq!(
        second.source.cursor(),
        corpus.iter().map(|l| time_us(l)).max()
    );
    assert_eq!(
        server.connections()[resumed_from].cursor,
        Some(latest - 5_000_000)
    );
    // Everything it sent again up to there was recognised.
    assert_eq!(
        counter(&metrics, names::RECORDS_FILTERED, "duplicate"),
        first_run_lines as i64
    );
}

#[tokio::test]
async fn a_plan_read_again_gives_identical_batches_and_state() {
    let corpus = recordings::jetstream_corpus();
    let (_, server) = jetstream::start(JetstreamReplay {
        events: corpus.clone(),
        drop_after: vec![],
    })
    .await;
    let metrics = Metrics::new();
    let mut original =
        Driver::new(JetstreamSource::new(options(server.url()), "bluesky", &metrics).unwrap());
    original
        .run_until_settled("the whole recording", |planned| {
            settled(&server, 0, &metrics, planned)
        })
        .await;
    assert!(original.epochs.len() >= corpus.len() / 25);
    // Each epoch read by a new source restored from the state before it.
    for (i, record) in original.epochs.iter().enumerate().skip(1) {
        let mut again =
            JetstreamSource::new(options(server.url()), "bluesky", &Metrics::new()).unwrap();
        again.restore(&original.epochs[i - 1].state).unwrap();
        let mut replayed = Driver::new(again);
        replayed.replay(std::slice::from_ref(record)).await;
        assert_eq!(
            replayed.epochs[0].batches, record.batches,
            "epoch {}",
            record.epoch
        );
        assert_eq!(
            replayed.epochs[0].state, record.state,
            "epoch {}",
            record.epoch
        );
    }
}

#[tokio::test]
async fn identities_of_the_recording_are_distinct() {
    // The de-duplication key tells every recorded event apart (no event is mistaken for
    // another), and a recorded event always has one.
    let corpus = recordings::jetstream_corpus();
    let mut ids: Vec<String> = corpus
        .iter()
        .map(|l| event_identity(l.as_bytes()).unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), corpus.len());
}

#[tokio::test]
async fn a_refused_subscription_fails_the_source() {
    // A server that answers the WebSocket upgrade with 404: retrying cannot help.
    let (_, not_jetstream) = mastodon::start(Default::default()).await;
    let url = format!(
        "{}/subscribe",
        not_jetstream.url().replace("http://", "ws://")
    );
    let mut driver =
        Driver::new(JetstreamSource::new(options(url), "bluesky", &Metrics::new()).unwrap());
    let error = driver.run_until_error().await;
    assert!(error.to_string().contains("404"), "{error}");
}
