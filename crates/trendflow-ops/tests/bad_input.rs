//! Bad input of every kind, in every format: each line gets a counted, named reason, good
//! lines around it survive, nothing panics, and a huge line is set aside without being parsed.

use std::sync::Arc;

use trendflow_core::metrics::{Metrics, names};
use trendflow_core::{Batch, Emitter, Operator, PostBatch, RawBatch, Reason};
use trendflow_ops::{JsonPostParser, ParserOptions};

fn parse(lines: &[Vec<u8>]) -> (PostBatch, Vec<(u64, Reason)>, Metrics) {
    let mut data = Vec::new();
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    let metrics = Metrics::new();
    let mut p = JsonPostParser::new("parse", ParserOptions::default(), &metrics);
    let raw = RawBatch {
        origin: "f".into(),
        first_line: 1,
        lines: lines.len(),
        data: data.into(),
    };
    let mut out = Emitter::new();
    p.process_batch(Batch::Raw(Arc::new(raw)), &mut out)
        .unwrap();
    let posts = match out.batches.pop() {
        Some(Batch::Posts(p)) => Arc::try_unwrap(p).unwrap(),
        _ => PostBatch::default(),
    };
    let dead = out
        .dead_letters
        .iter()
        .map(|d| (d.line, d.reason))
        .collect();
    (posts, dead, metrics)
}

const GOOD: &[u8] =
    br##"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","id_str":"1","text":"#ok"}"##;

#[test]
fn every_bad_line_has_a_reason_and_good_lines_survive() {
    let mut junk: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    junk.retain(|&b| b != b'\n');
    let lines: Vec<Vec<u8>> = vec![
        GOOD.to_vec(),
        br#"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"trunc"#.to_vec(), // truncated
        b"{\"text\":\"bad \xff\xfe utf8\"}".to_vec(),                                  // invalid UTF-8
        junk,                                                                          // binary junk
        br#"{"text":"\udc00 lone low surrogate","created_at":null}"#.to_vec(),        // read as Spark does
        br#"{"created_at":"Thu Apr 15 08:00:05 +0000 2021"}"#.to_vec(),               // no text
        br#"{"text":null}"#.to_vec(),                                                 // null text
        br##"{"text":"#a","created_at":17}"##.to_vec(),                                 // wrong type: time
        br#"{"data":"nope"}"#.to_vec(),                                               // v2, wrong type
        br#"{"content":7,"account":{"acct":"a"},"created_at":"2021-04-15T08:00:05Z"}"#.to_vec(), // Mastodon, wrong type
        br#"{"did":"d","time_us":"x","kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"r","record":{"text":5}}}"#.to_vec(), // Bluesky, wrong type
        br#"{"uri":"at://x/app.bsky.feed.post/1","record":"no"}"#.to_vec(),          // Bluesky view, wrong type
        b"42".to_vec(),                                                               // not an object
        b"   ".to_vec(),                                                              // blank
        GOOD.to_vec(),
    ];
    let (posts, dead, metrics) = parse(&lines);
    let reasons: Vec<(u64, &str)> = dead.iter().map(|(l, r)| (*l, r.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (2, "invalid_json"),
            (3, "invalid_utf8"),
            (4, "invalid_utf8"),
            (5, "missing_event_time"),
            (6, "missing_text"),
            (7, "missing_text"),
            (8, "bad_event_time"),
            (9, "wrong_type"),
            (10, "wrong_type"),
            (11, "wrong_type"),
            (12, "wrong_type"),
            (13, "not_an_object"),
            (14, "empty_line"),
        ]
    );
    // Lines 1 and 15 and the ones readable without a time (5, 8) are posts.
    assert_eq!(posts.lines, [1, 5, 8, 15]);
    assert_eq!(posts.text(1), "? lone low surrogate");
    // The parser hands dead letters to the runtime, which counts them by reason; stream
    // messages are the parser's own count.
    assert_eq!(metrics.total(names::CONTROL_MESSAGES), 0);
}

#[test]
fn wild_epoch_times_are_bad_event_times() {
    let (posts, dead, _) = parse(&[
        br#"{"text":"x","timestamp_ms":9223372036854775807}"#.to_vec(),
        br#"{"text":"x","timestamp_ms":"-99999999999999999"}"#.to_vec(),
        br##"{"did":"d","time_us":9223372036854775807,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","record":{"text":"#a"}}}"##.to_vec(),
        // Found by fuzzing: a letter in a digit position of `created_at`.
        br#"{"created_at":"Sun Aug 31 p0:29:09 +0000 2014","text":"y"}"#.to_vec(),
    ]);
    assert_eq!(posts.len(), 4, "kept, without a time");
    assert!(posts.event_times.iter().all(Option::is_none));
    assert!(dead.iter().all(|d| d.1 == Reason::BadEventTime), "{dead:?}");
    assert_eq!(dead.len(), 4);
}

#[test]
fn a_huge_line_is_set_aside_unparsed() {
    let huge = format!(r#"{{"text":"{}"}}"#, "x".repeat(10 << 20));
    let (posts, dead, _) = parse(&[GOOD.to_vec(), huge.into_bytes(), GOOD.to_vec()]);
    assert_eq!(dead, [(2, Reason::LineTooLong)]);
    assert_eq!(posts.len(), 2);
}
