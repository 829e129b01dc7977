//! Fuzzes `JsonPostParser` on raw bytes, under every format option.
//!
//! Input: byte 0 picks the options (see `options`); if its top bit is set, byte 1 is a small
//! `max_line_bytes` (exercises the too-long path); the rest are the lines of one `RawBatch`.
//!
//! Checked, besides "no panic":
//! - `process_batch` returns Ok and emits one non-empty post batch if there are posts;
//! - a blank line gives exactly one `EmptyLine` dead letter; every other line gives at least
//!   one post or at least one dead letter, or else is a control message: the number of lines
//!   with neither equals the increase of `trendflow_control_messages_total`;
//! - posts and dead letters name lines of the batch;
//! - an event time is Some only inside the range the time parsers can produce (years 0000 to
//!   9999, offsets up to ±99:59); a post without one has a dead letter on its line;
//! - the parser reuses its buffers across lines and batches: the same batch processed again
//!   by the same parser gives the same posts, dead letters and control count.
#![no_main]

use std::collections::BTreeSet;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use trendflow_core::metrics::Metrics;
use trendflow_core::{Batch, Emitter, Operator, PostBatch, RawBatch, Reason};
use trendflow_ops::formats::{Format, FormatOptions, Needs, RepostText, TextChoice, TimeChoice};
use trendflow_ops::{JsonPostParser, ParserOptions};

const CONTROL: &str = "trendflow_control_messages_total";

/// 0000-01-01T00:00:00Z minus 99:59 and 9999-12-31T23:59:59.999Z plus 99:59, in ms.
const MIN_TIME: i64 = -62_167_219_200_000 - (99 * 60 + 59) * 60_000;
const MAX_TIME: i64 = 253_402_300_799_999 + (99 * 60 + 59) * 60_000;

fn options(data: &[u8]) -> (ParserOptions, &[u8]) {
    let Some((&b, mut rest)) = data.split_first() else {
        return (ParserOptions::default(), data);
    };
    let format = match (b & 7) % 5 {
        0 => Format::Auto,
        1 => Format::TwitterV1,
        2 => Format::TwitterV2,
        3 => Format::Mastodon,
        _ => Format::Bluesky,
    };
    let text = if b & 8 == 0 {
        TextChoice::Full
    } else {
        TextChoice::AsSent
    };
    let reposts = if b & 16 == 0 {
        RepostText::Own
    } else {
        RepostText::Original
    };
    let time = match (b >> 5 & 3) % 3 {
        0 => TimeChoice::Auto,
        1 => TimeChoice::Created,
        _ => TimeChoice::Captured,
    };
    let mut max_line_bytes = ParserOptions::default().max_line_bytes;
    if b & 128 != 0
        && let Some((&m, r)) = rest.split_first()
    {
        max_line_bytes = m as usize;
        rest = r;
    }
    // Time code 3 (read as Auto) also asks for the lean parse the tutorial pipelines use
    // (id, text and time only).
    let needs = if b >> 5 & 3 == 3 {
        Needs::TEXT_ONLY
    } else {
        Needs::ALL
    };
    let format = FormatOptions {
        format,
        text,
        reposts,
        time,
        needs,
    };
    (
        ParserOptions {
            max_line_bytes,
            format,
        },
        rest,
    )
}

/// The lines as the parser splits them: on '\n', a trailing '\r' dropped, nothing after a
/// final '\n'.
fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = data.split(|&c| c == b'\n').collect();
    if data.ends_with(b"\n") || data.is_empty() {
        v.pop();
    }
    v.into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect()
}

/// What a run produced, comparable across runs.
#[derive(Debug, PartialEq)]
struct Run {
    posts: Vec<(u64, Option<i64>, String, String, String)>,
    dead: Vec<(u64, Reason, String)>,
    control: i64,
}

fn run(parser: &mut JsonPostParser, metrics: &Metrics, data: &[u8], n: usize) -> Run {
    let before = metrics.total(CONTROL);
    let raw = RawBatch {
        origin: "fuzz".into(),
        first_line: 1,
        lines: n,
        data: data.to_vec().into(),
    };
    let mut out = Emitter::new();
    parser
        .process_batch(Batch::Raw(Arc::new(raw)), &mut out)
        .expect("process_batch must not fail on raw input");
    assert!(
        out.batches.len() <= 1,
        "one post batch per raw batch, if any post"
    );
    let empty = PostBatch::new("fuzz".into());
    let b = match out.batches.first() {
        Some(Batch::Posts(b)) => {
            assert!(b.len() > 0, "an empty post batch was emitted");
            &**b
        }
        Some(other) => panic!("a {} batch, not posts", other.kind()),
        None => &empty,
    };
    let posts = (0..b.len())
        .map(|i| {
            let entities: Vec<_> = b.entities(i).collect();
            (
                b.lines[i],
                b.event_times[i],
                b.text(i).to_string(),
                format!("{:?}", b.fields(i)),
                format!("{entities:?}"),
            )
        })
        .collect();
    let dead = out
        .dead_letters
        .iter()
        .map(|d| (d.line, d.reason, d.detail.clone()))
        .collect();
    Run {
        posts,
        dead,
        control: metrics.total(CONTROL) - before,
    }
}

fuzz_target!(|data: &[u8]| {
    let (opts, data) = options(data);
    let lines = lines(data);
    let n = lines.len() as u64;
    let metrics = Metrics::new();
    let mut parser = JsonPostParser::new("parse", opts, &metrics);
    let first = run(&mut parser, &metrics, data, lines.len());

    let post_lines: BTreeSet<u64> = first.posts.iter().map(|p| p.0).collect();
    let dead_lines: BTreeSet<u64> = first.dead.iter().map(|d| d.0).collect();
    for &l in post_lines.iter().chain(&dead_lines) {
        assert!((1..=n).contains(&l), "line {l} of {n}");
    }
    let mut silent = 0;
    for (i, line) in lines.iter().enumerate() {
        let no = i as u64 + 1;
        let dead_here: Vec<_> = first.dead.iter().filter(|d| d.0 == no).collect();
        if line.iter().all(u8::is_ascii_whitespace) {
            assert!(
                dead_here.len() == 1
                    && dead_here[0].1 == Reason::EmptyLine
                    && !post_lines.contains(&no),
                "blank line {no}: {dead_here:?}"
            );
        } else {
            assert!(
                dead_here.iter().all(|d| d.1 != Reason::EmptyLine),
                "non-blank line {no} called blank"
            );
            if dead_here.is_empty() && !post_lines.contains(&no) {
                silent += 1;
            }
        }
    }
    assert_eq!(
        silent, first.control,
        "lines with neither post nor dead letter vs control messages counted"
    );
    for (line, time, ..) in &first.posts {
        match time {
            Some(t) => assert!(
                (MIN_TIME..=MAX_TIME).contains(t),
                "line {line}: event time {t} ms is outside years 0000..=9999"
            ),
            None => assert!(
                dead_lines.contains(line),
                "line {line}: no event time and no dead letter"
            ),
        }
    }

    let second = run(&mut parser, &metrics, data, lines.len());
    assert_eq!(
        first, second,
        "the same batch parsed again by the same parser differs"
    );
});
