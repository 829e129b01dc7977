//! The Mastodon source against the replay server, with real recorded statuses: updates,
//! edits and deletes, gaps filled from the REST timeline after a cut or a restart, and
//! every status passed on once.

mod common;

use std::time::Duration;

use common::{Driver, assert_numbered, assert_same_lines, counter};
use trendflow_core::Source;
use trendflow_core::metrics::{Metrics, names};
use trendflow_social::testkit::mastodon::{
    self, MastodonReplay, MastodonReplayHandle, StreamEvent,
};
use trendflow_social::testkit::recordings;
use trendflow_social::{MastodonOptions, MastodonSource, Timeline};

fn id_of(status: &str) -> String {
    serde_json::from_str::<serde_json::Value>(status).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The recorded statuses, oldest first.
fn statuses() -> Vec<String> {
    let mut all = recordings::mastodon_statuses();
    all.sort_by_key(|s| {
        let id = id_of(s);
        (id.len(), id)
    });
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

/// `status` under another id (and URI): more statuses than were recorded, for paging.
fn with_id(status: &str, id: u64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(status).unwrap();
    v["id"] = id.to_string().into();
    v["uri"] = format!("https://example.social/users/test/statuses/{id}").into();
    v.to_string()
}

fn options(url: String) -> MastodonOptions {
    MastodonOptions {
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(100),
        max_events_per_trigger: 7,
        ..MastodonOptions::new(url)
    }
}

/// Whether the source has taken in everything the server sent it (the events of its
/// connections, `from_connection` on, and the statuses of at least `rest_requests` REST
/// requests), and passed on or dropped (as a duplicate or an edit) every status it
/// received, `planned` of them passed on.
fn settled(
    server: &MastodonReplayHandle,
    metrics: &Metrics,
    from_connection: usize,
    rest_requests: usize,
    planned: usize,
) -> bool {
    let connections = server.connections();
    let sent: usize = connections[from_connection.min(connections.len())..]
        .iter()
        .map(|c| c.sent)
        .sum();
    let streamed = counter(metrics, names::RECORDS_IN, "stream");
    let gap_filled = counter(metrics, names::RECORDS_IN, "gap_fill");
    let dropped = counter(metrics, names::RECORDS_FILTERED, "duplicate")
        + counter(metrics, names::CONTROL_MESSAGES, "edit");
    server.caught_up()
        && server.rest_requests().len() >= rest_requests
        && streamed + counter(metrics, names::CONTROL_MESSAGES, "delete") == sent as i64
        && gap_filled == server.rest_statuses_served() as i64
        && streamed + gap_filled == planned as i64 + dropped
}

async fn run(
    replay: MastodonReplay,
    options: impl Fn(String) -> MastodonOptions,
    rest_requests: usize,
) -> (Vec<String>, Metrics, MastodonReplayHandle) {
    let (_, server) = mastodon::start(replay).await;
    let metrics = Metrics::new();
    let opts = options(server.url());
    let origin = format!(
        "mastodon:{}/{}",
        &server.url()["http://".len()..],
        opts.timeline
    );
    let mut driver = Driver::new(MastodonSource::new(opts, "mastodon", &metrics).unwrap());
    driver
        .run_until_settled("the whole script", |planned| {
            settled(&server, &metrics, 0, rest_requests, planned)
        })
        .await;
    assert_numbered(&driver.out.batches, &origin);
    (driver.out.lines(), metrics, server)
}

#[tokio::test]
async fn updates_edits_and_deletes_are_each_handled_by_their_kind() {
    let s = statuses();
    let stream = vec![
        StreamEvent::Update(s[2].clone()),
        StreamEvent::Update(s[3].clone()),
        StreamEvent::Update(s[4].clone()),
        StreamEvent::Heartbeat,
        // Delivered twice.
        StreamEvent::Update(s[3].clone()),
        // An edit of a status passed on: not a new post.
        StreamEvent::StatusUpdate(edited(&s[3])),
        StreamEvent::Delete(id_of(&s[4])),
        // An edit of a status older than the stream: not a new post either.
        StreamEvent::StatusUpdate(edited(&s[0])),
        // An edit of a newer status never seen (its update was missed): passed on.
        StreamEvent::StatusUpdate(edited(&s[7])),
        StreamEvent::Update(s[5].clone()),
        // The update of the status just passed on through its edit.
        StreamEvent::Update(s[7].clone()),
        StreamEvent::Update(s[6].clone()),
    ];
    let (lines, metrics, server) = run(
        MastodonReplay {
            stream,
            ..Default::default()
        },
        options,
        0,
    )
    .await;
    let expected = [
        s[2].clone(),
        s[3].clone(),
        s[4].clone(),
        edited(&s[7]),
        s[5].clone(),
        s[6].clone(),
    ];
    assert_same_lines(&lines, &expected);
    assert_eq!(counter(&metrics, names::RECORDS_FILTERED, "duplicate"), 2);
    assert_eq!(counter(&metrics, names::CONTROL_MESSAGES, "edit"), 2);
    assert_eq!(counter(&metrics, names::CONTROL_MESSAGES, "delete"), 1);
    assert_eq!(server.connections().len(), 1);
    assert_eq!(server.connections()[0].request, "/api/v1/streaming/public");
    assert!(
        server.rest_requests().is_empty(),
        "a first start has no gap to fill"
    );
}

#[tokio::test]
async fn statuses_posted_while_disconnected_are_fetched_from_rest_once() {
    let s = statuses();
    let mut stream: Vec<StreamEvent> = s[..6].iter().cloned().map(StreamEvent::Update).collect();
    stream.extend(s[11..].iter().cloned().map(StreamEvent::Update));
    let (lines, metrics, server) = run(
        MastodonReplay {
            stream,
            drop_after: vec![6],
            posted_while_disconnected: vec![s[6..11].to_vec()],
            ..Default::default()
        },
        options,
        1,
    )
    .await;
    assert_same_lines(&lines, &s);
    let connections = server.connections();
    assert_eq!(connections.len(), 2);
    assert!(connections[0].cut);
    let fill = &server.rest_requests()[0];
    assert!(
        fill.starts_with("/api/v1/timelines/public?")
            && fill.contains(&format!("min_id={}", id_of(&s[5])))
            && fill.contains("limit=40"),
        "{fill}"
    );
    assert!(counter(&metrics, names::RECORDS_IN, "gap_fill") >= 5);
}

#[tokio::test]
async fn a_gap_is_read_page_by_page_up_to_gap_fill_limit() {
    let s = statuses();
    // 100 statuses with ids after the recorded ones, from the recorded contents.
    let first_id: u64 = id_of(s.last().unwrap()).parse::<u64>().unwrap() + 1;
    let many: Vec<String> = (0..100)
        .map(|i| with_id(&s[i % s.len()], first_id + i as u64))
        .collect();
    let replay = || {
        let mut stream: Vec<StreamEvent> =
            many[..5].iter().cloned().map(StreamEvent::Update).collect();
        stream.extend(many[95..].iter().cloned().map(StreamEvent::Update));
        MastodonReplay {
            stream,
            drop_after: vec![5],
            // 90 statuses while disconnected: pages of 40, 40 and 10.
            posted_while_disconnected: vec![many[5..95].to_vec()],
            ..Default::default()
        }
    };

    let (lines, _, server) = run(
        replay(),
        |url| MastodonOptions {
            gap_fill_limit: 3,
            ..options(url)
        },
        3,
    )
    .await;
    assert_same_lines(&lines, &many);
    let min_ids: Vec<String> = server
        .rest_requests()
        .iter()
        .map(|r| {
            r.split("min_id=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        min_ids,
        [id_of(&many[4]), id_of(&many[44]), id_of(&many[84])],
        "each page starts after the previous one's newest status"
    );

    // Two pages cannot cover 90 statuses: the last 10 of the gap are lost (a documented
    // limit), the rest arrive once.
    let (lines, _, server) = run(
        replay(),
        |url| MastodonOptions {
            gap_fill_limit: 2,
            ..options(url)
        },
        2,
    )
    .await;
    assert_eq!(server.rest_requests().len(), 2);
    let expected: Vec<String> = many[..85].iter().chain(&many[95..]).cloned().collect();
    assert_same_lines(&lines, &expected);
}

#[tokio::test]
async fn a_restarted_source_fills_the_gap_since_its_checkpoint() {
    let s = statuses();
    let (_, server) = mastodon::start(MastodonReplay {
        stream: s.iter().cloned().map(StreamEvent::Update).collect(),
        ..Default::default()
    })
    .await;
    let opts = |url: String| MastodonOptions {
        max_events_per_trigger: 4,
        ..options(url)
    };

    // The first run: a checkpoint after one epoch, two more recorded but not committed,
    // then a crash (what its connection had received since is lost).
    let mut first =
        Driver::new(MastodonSource::new(opts(server.url()), "mastodon", &Metrics::new()).unwrap());
    first.run_until_lines(10).await;
    assert_eq!(first.epochs.len(), 3);
    let checkpoint = first.epochs[0].state.clone();
    let committed_lines: Vec<String> = first.epochs[0]
        .batches
        .iter()
        .flat_map(|b| {
            String::from_utf8(b.data.clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let uncommitted = first.epochs[1..].to_vec();
    drop(first);

    let metrics = Metrics::new();
    let mut source = MastodonSource::new(opts(server.url()), "mastodon", &metrics).unwrap();
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
    assert_eq!(
        second.source.newest_status_id(),
        Some(id_of(&s[11]).as_str())
    );
    let resumed_from = server.connections().len();
    second
        .run_until_settled("the statuses since the checkpoint", |planned| {
            server.connections().len() > resumed_from
                && settled(&server, &metrics, resumed_from, 1, planned)
        })
        .await;
    let mut lines = committed_lines;
    lines.extend(second.out.lines());
    assert_same_lines(&lines, &s);
    assert!(
        server.rest_requests()[0].contains(&format!("min_id={}", id_of(&s[11]))),
        "the gap starts after the newest status of the replayed epochs"
    );
}

#[tokio::test]
async fn a_plan_read_again_gives_identical_batches_and_state() {
    let s = statuses();
    let (_, server) = mastodon::start(MastodonReplay {
        stream: s.iter().cloned().map(StreamEvent::Update).collect(),
        ..Default::default()
    })
    .await;
    let metrics = Metrics::new();
    let mut original =
        Driver::new(MastodonSource::new(options(server.url()), "mastodon", &metrics).unwrap());
    original
        .run_until_settled("the whole script", |planned| {
            settled(&server, &metrics, 0, 0, planned)
        })
        .await;
    assert!(original.epochs.len() >= 3);
    for (i, record) in original.epochs.iter().enumerate().skip(1) {
        let mut again =
            MastodonSource::new(options(server.url()), "mastodon", &Metrics::new()).unwrap();
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
async fn a_hashtag_timeline_streams_and_fills_only_its_tag() {
    let s = statuses();
    let tagged = |status: &String| {
        let v: serde_json::Value = serde_json::from_str(status).unwrap();
        v["tags"].as_array().unwrap().iter().any(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("rstats"))
        })
    };
    let mut stream: Vec<StreamEvent> = s[..8].iter().cloned().map(StreamEvent::Update).collect();
    stream.extend(s[14..].iter().cloned().map(StreamEvent::Update));
    let (lines, _, server) = run(
        MastodonReplay {
            stream,
            drop_after: vec![2],
            posted_while_disconnected: vec![s[8..14].to_vec()],
            ..Default::default()
        },
        |url| MastodonOptions {
            timeline: Timeline::Hashtag("rstats".into()),
            ..options(url)
        },
        1,
    )
    .await;
    let expected: Vec<String> = s.iter().filter(|st| tagged(st)).cloned().collect();
    assert!(expected.len() >= 8 && expected.len() < s.len());
    assert_same_lines(&lines, &expected);
    assert_eq!(
        server.connections()[0].request,
        "/api/v1/streaming/hashtag?tag=rstats"
    );
    assert!(server.rest_requests()[0].starts_with("/api/v1/timelines/tag/rstats?min_id="));
}

#[tokio::test]
async fn the_access_token_is_sent_and_a_refused_one_fails_the_source() {
    let s = statuses();
    let replay = MastodonReplay {
        stream: s[..3].iter().cloned().map(StreamEvent::Update).collect(),
        access_token: Some("t0ken".into()),
        ..Default::default()
    };
    let (lines, _, server) = run(
        replay.clone(),
        |url| MastodonOptions {
            access_token: Some("t0ken".into()),
            ..options(url)
        },
        0,
    )
    .await;
    assert_same_lines(&lines, &s[..3]);
    assert_eq!(server.unauthorized_requests(), 0);

    let (_, server) = mastodon::start(replay).await;
    let mut refused = Driver::new(
        MastodonSource::new(
            MastodonOptions {
                access_token: Some("wrong".into()),
                ..options(server.url())
            },
            "mastodon",
            &Metrics::new(),
        )
        .unwrap(),
    );
    let error = refused.run_until_error().await.to_string();
    assert!(error.contains("401"), "{error}");
    assert!(
        !error.contains("wrong"),
        "the token is not in the message: {error}"
    );
    assert_eq!(
        server.unauthorized_requests(),
        1,
        "a refused token is not retried"
    );
}
