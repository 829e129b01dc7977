//! Turns JSON lines into posts: Twitter API v1.1 statuses (the tutorial's input), X API v2
//! payloads, Mastodon statuses and Bluesky records, all mapped onto one post model (see
//! [`crate::formats`]).
//!
//! Each line is parsed completely with simd-json into a tape (buffers reused across lines):
//! a truncated or garbled line must be rejected as a whole, as Spark's reader does, even if the
//! fields we need were readable. Lines that are not posts become dead letters with a reason;
//! stream messages that are not posts (delete notices, likes...) are counted by kind.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use simd_json::prelude::*;
use simd_json::{Buffers, Tape};
use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::post::{Platform, PostFields};
use trendflow_core::time::parse_created_at;
use trendflow_core::{Batch, DeadLetter, Emitter, Operator, OperatorError, PostBatch, Reason};

use crate::formats::{self, Format, FormatOptions, Outcome};

#[derive(Debug, Clone)]
pub struct ParserOptions {
    /// Lines longer than this are set aside unparsed (bounded memory).
    pub max_line_bytes: usize,
    pub format: FormatOptions,
}

impl Default for ParserOptions {
    fn default() -> Self {
        ParserOptions {
            max_line_bytes: 1 << 20,
            format: FormatOptions::default(),
        }
    }
}

/// The parser operator: [`trendflow_core::RawBatch`] in, [`PostBatch`] out.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, Emitter, Operator, RawBatch, metrics::Metrics};
/// use trendflow_ops::{JsonPostParser, ParserOptions};
///
/// let mut parser = JsonPostParser::new("parse", ParserOptions::default(), &Metrics::new());
/// let data = concat!(
///     r##"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"#Insee rocks","user":{"screen_name":"a"}}"##, "\n",
///     r##"{"id":"1","created_at":"2021-04-15T08:00:05.000Z","content":"<p>#Insee <b>too</b></p>","account":{"acct":"b@m.s"}}"##, "\n",
///     "not json\n",
/// ).as_bytes().to_vec();
/// let raw = RawBatch { origin: "f.json".into(), first_line: 1, lines: 3, data: data.into() };
/// let mut out = Emitter::new();
/// parser.process_batch(Batch::Raw(Arc::new(raw)), &mut out).unwrap();
/// let Batch::Posts(posts) = &out.batches[0] else { panic!() };
/// assert_eq!((posts.text(0), posts.fields(0).author), ("#Insee rocks", "a"));
/// assert_eq!((posts.text(1), posts.fields(1).author), ("#Insee too", "b@m.s"));
/// assert_eq!(out.dead_letters[0].line, 3);
/// ```
pub struct JsonPostParser {
    component: Arc<str>,
    options: ParserOptions,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    scratch: Vec<u8>,
    /// The options let well-formed statuses take [`crate::fast_json`]'s single pass.
    fast_path: bool,
    /// Strings with escapes decoded by the fast path.
    decoded: String,
    repaired: Counter,
    metrics: Metrics,
    control: FxHashMap<&'static str, Counter>,
}

/// The event time of one record as the parser with these options would read it (the first
/// post's, for a page of several), for a partitioned source's per-partition frontier. Parses
/// the record a second time, text and details left out; `None` for what the parser would
/// reject or not date.
pub fn event_time_extractor(
    options: &ParserOptions,
) -> impl Fn(&[u8]) -> Option<trendflow_core::EventTime> + Send + Sync + 'static {
    let mut options = options.clone();
    options.format.needs = formats::Needs::TEXT_ONLY;
    let parser = std::sync::Mutex::new(JsonPostParser::new("event-time", options, &Metrics::new()));
    move |record: &[u8]| {
        let mut parser = parser.lock().unwrap_or_else(|e| e.into_inner());
        let mut posts = PostBatch::new(Arc::from(""));
        match parser.parse_line(record, 0, &mut posts) {
            Outcome::Posts(_) => posts.event_times.first().copied().flatten(),
            _ => None,
        }
    }
}

/// Appends the post of a status the fast path scanned; `false` (nothing appended) when its
/// `created_at` does not parse: the full path names the reason.
fn push_scanned(f: &crate::fast_json::Fields<'_>, line_no: u64, posts: &mut PostBatch) -> bool {
    let Ok(time) = parse_created_at(f.created_at) else {
        return false;
    };
    posts.push_post(
        line_no,
        &PostFields {
            platform: Platform::Twitter,
            id: f.id.unwrap_or(""),
            event_time: Some(time),
            text: f.text,
            ..PostFields::default()
        },
    );
    true
}

/// Whether lines read with these options can take the fast path: Twitter v1.1 statuses of
/// which only the text as sent, `created_at` and the id are used (the tutorial's options).
fn takes_fast_path(o: &FormatOptions) -> bool {
    o.format == Format::TwitterV1
        && o.text == formats::TextChoice::AsSent
        && o.reposts == formats::RepostText::Own
        && o.time == formats::TimeChoice::Created
        && o.needs == formats::Needs::TEXT_ONLY
}

impl JsonPostParser {
    pub fn new(component: &str, options: ParserOptions, metrics: &Metrics) -> Self {
        let fast_path = takes_fast_path(&options.format);
        JsonPostParser {
            component: component.into(),
            options,
            buffers: Buffers::new(8192),
            tape: Some(Tape::null().reset()),
            scratch: Vec::with_capacity(8192),
            fast_path,
            decoded: String::with_capacity(1024),
            repaired: metrics.counter_labeled(
                names::RECORDS_REPAIRED,
                component,
                Some(("reason", "spark_lenient".into())),
            ),
            metrics: metrics.clone(),
            control: FxHashMap::default(),
        }
    }

    /// Parses one line (without its newline); posts are appended to `posts`.
    fn parse_line(&mut self, line: &[u8], line_no: u64, posts: &mut PostBatch) -> Outcome {
        // The common case, a well-formed status, in one validating pass that builds nothing
        // the pipeline does not read; anything else takes the full path, which decides.
        if self.fast_path
            && let Some(f) = crate::fast_json::scan(line, &mut self.decoded)
            && push_scanned(&f, line_no, posts)
        {
            return Outcome::Posts(None);
        }
        self.parse_line_full(line, line_no, posts)
    }

    /// The first line of `rest` when it is a well-formed status the fast path takes whole
    /// (what [`Self::parse_line`] would take there, and within `max_line_bytes`): its post is
    /// appended and its length returned, its newline found by the scan itself. `None`: the
    /// line goes the usual way, nothing appended.
    fn take_fast(&mut self, rest: &[u8], line_no: u64, posts: &mut PostBatch) -> Option<usize> {
        if !self.fast_path {
            return None;
        }
        let (f, len) = crate::fast_json::scan_to_newline(rest, &mut self.decoded)?;
        // The line as the usual way measures it: without a carriage return before its newline.
        let measured = len - usize::from(rest[..len].last() == Some(&b'\r'));
        if measured > self.options.max_line_bytes {
            return None;
        }
        push_scanned(&f, line_no, posts).then_some(len)
    }

    /// The full path: simd-json, then Spark's leniencies, then the reason for rejecting.
    fn parse_line_full(&mut self, line: &[u8], line_no: u64, posts: &mut PostBatch) -> Outcome {
        self.scratch.clear();
        self.scratch.extend_from_slice(line);
        let error = match self.parse_scratch(line_no, posts) {
            Ok(outcome) => return outcome,
            Err(e) => e,
        };
        // Spark reads some lines a strict parser rejects: trendflow reads them the same way
        // rather than losing the post (see spark_lenient).
        if let Some(repaired) = crate::spark_lenient::repair(line) {
            self.scratch = repaired;
            if let Ok(outcome) = self.parse_scratch(line_no, posts) {
                self.repaired.inc();
                return outcome;
            }
        }
        let reason = if std::str::from_utf8(line).is_err() {
            Reason::InvalidUtf8
        } else {
            Reason::InvalidJson
        };
        Outcome::Rejected(reason, error)
    }

    /// Parses `scratch`; on failure, simd-json's message.
    fn parse_scratch(&mut self, line_no: u64, posts: &mut PostBatch) -> Result<Outcome, String> {
        // The tape is reused across lines: reset gives it the lifetime of this line's buffer.
        let mut tape: Tape<'_> = self.tape.take().unwrap_or_else(Tape::null).reset();
        // simd-json reads past the end of the document: `scratch` carries the padding, which
        // spares simd-json its own padded copy of every line.
        let len = self.scratch.len();
        self.scratch.resize(len + simd_json::INPUT_PADDING, 0);
        let result =
            match simd_json::fill_tape_padded(&mut self.scratch, len, &mut self.buffers, &mut tape)
            {
                Err(e) => Err(e.to_string()),
                Ok(()) => Ok(Self::extract(&tape, &self.options.format, line_no, posts)),
            };
        self.tape = Some(tape.reset());
        result
    }

    fn extract(
        tape: &Tape<'_>,
        options: &FormatOptions,
        line_no: u64,
        posts: &mut PostBatch,
    ) -> Outcome {
        let v = tape.as_value();
        let Some(obj) = v.as_object() else {
            return Outcome::Rejected(
                Reason::NotAnObject,
                format!("a JSON {:?}, not an object", v.value_type()),
            );
        };
        let format = match options.format {
            Format::Auto => formats::detect(&obj),
            f => f,
        };
        match format {
            Format::Auto | Format::TwitterV1 => {
                formats::twitter_v1::parse(v, options, line_no, posts)
            }
            Format::TwitterV2 => formats::twitter_v2::parse(v, options, line_no, posts),
            Format::Mastodon => formats::mastodon::parse(v, options, line_no, posts),
            Format::Bluesky => formats::bluesky::parse(v, options, line_no, posts),
        }
    }

    fn count_control(&mut self, kind: &'static str) {
        let (metrics, component) = (&self.metrics, &self.component);
        self.control
            .entry(kind)
            .or_insert_with(|| {
                metrics.counter_labeled(
                    names::CONTROL_MESSAGES,
                    component,
                    Some(("kind", kind.into())),
                )
            })
            .inc();
    }
}

impl Operator for JsonPostParser {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        let Batch::Raw(raw) = batch else {
            return Err(OperatorError::new(format!(
                "the parser takes raw lines, got {}",
                batch.kind()
            )));
        };
        // Room for a post per line (lines of a few hundred bytes at least: blank or tiny
        // lines do not reserve much) and ~128 bytes of text each.
        let expected = raw.lines.min(raw.data.len() / 256 + 1);
        let mut posts = PostBatch::with_capacity(
            raw.origin.clone(),
            expected,
            (expected * 128).min(raw.data.len()),
        );
        let mut line_no = raw.first_line;
        let data = &raw.data[..];
        let mut start = 0;
        while start < data.len() {
            if data[start] == b'{'
                && let Some(len) = self.take_fast(&data[start..], line_no, &mut posts)
            {
                start += len + 1;
                line_no += 1;
                continue;
            }
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
            let mut line = &data[start..end];
            start = end + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let this_line = line_no;
            line_no += 1;
            if line.iter().all(|c| c.is_ascii_whitespace()) {
                out.dead_letter(self.dead(
                    raw.origin.clone(),
                    this_line,
                    Reason::EmptyLine,
                    "blank line".into(),
                    line,
                ));
                continue;
            }
            if line.len() > self.options.max_line_bytes {
                let detail = format!(
                    "{} bytes, more than max_line_bytes = {}",
                    line.len(),
                    self.options.max_line_bytes
                );
                out.dead_letter(self.dead(
                    raw.origin.clone(),
                    this_line,
                    Reason::LineTooLong,
                    detail,
                    line,
                ));
                continue;
            }
            match self.parse_line(line, this_line, &mut posts) {
                Outcome::Rejected(reason, detail) => {
                    out.dead_letter(self.dead(raw.origin.clone(), this_line, reason, detail, line))
                }
                Outcome::Control(kind) => self.count_control(kind),
                Outcome::Posts(None) => {}
                Outcome::Posts(Some((reason, detail))) => {
                    let detail =
                        format!("{detail}; the post counts only where time does not matter");
                    out.dead_letter(self.dead(raw.origin.clone(), this_line, reason, detail, line));
                }
            }
        }
        out.emit(Batch::Posts(Arc::new(posts)));
        Ok(())
    }
}

impl JsonPostParser {
    fn dead(
        &self,
        origin: Arc<str>,
        line: u64,
        reason: Reason,
        detail: String,
        bytes: &[u8],
    ) -> DeadLetter {
        DeadLetter {
            component: self.component.clone(),
            origin,
            line,
            reason,
            detail,
            excerpt: DeadLetter::excerpt_of(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::RawBatch;

    /// (event time, text) of each post, and (line, reason) of each dead letter.
    type Parsed = (Vec<(Option<i64>, String)>, Vec<(u64, Reason)>);

    fn parse(lines: &[&[u8]]) -> Parsed {
        let mut data = Vec::new();
        for l in lines {
            data.extend_from_slice(l);
            data.push(b'\n');
        }
        let mut p = JsonPostParser::new(
            "p",
            ParserOptions {
                max_line_bytes: 10_000,
                format: FormatOptions {
                    format: Format::TwitterV1,
                    text: formats::TextChoice::AsSent,
                    reposts: formats::RepostText::Own,
                    time: formats::TimeChoice::Created,
                    needs: formats::Needs::TEXT_ONLY,
                },
            },
            &Metrics::new(),
        );
        let mut out = Emitter::new();
        let raw = RawBatch {
            origin: "f".into(),
            first_line: 1,
            lines: lines.len(),
            data: data.into(),
        };
        p.process_batch(Batch::Raw(Arc::new(raw)), &mut out)
            .unwrap();
        let posts = match out.batches.first() {
            Some(Batch::Posts(b)) => (0..b.len())
                .map(|i| (b.event_times[i], b.text(i).to_string()))
                .collect(),
            _ => vec![],
        };
        (
            posts,
            out.dead_letters
                .iter()
                .map(|d| (d.line, d.reason))
                .collect(),
        )
    }

    #[test]
    fn good_tweets_and_escapes() {
        let (posts, dead) = parse(&[
            br##"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","id":5,"text":"L\u2019#emploi \ud83d\udc49 #Insee\/x","user":{"a":[1,2,{"b":null}]}}"##,
        ]);
        assert!(dead.is_empty(), "{dead:?}");
        assert_eq!(
            posts,
            vec![(Some(1_618_473_605_000), "L’#emploi 👉 #Insee/x".to_string())]
        );
    }

    #[test]
    fn bad_lines_get_reasons_and_good_ones_survive() {
        let (posts, dead) = parse(&[
            b"",
            br#"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"trunc"#,
            b"{\"created_at\":\"Thu Apr 15 08:00:05 +0000 2021\",\"text\":\"bad \xff utf8\"}",
            br#"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"lone \ud83d surrogate"}"#,
            br#"{"delete":{"status":{"id":1}}}"#,
            br#"[1,2]"#,
            br##"{"created_at":"nope","text":"#kept"}"##,
            br##"{"text":"#kept too"}"##,
            br#"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":12}"#,
            br##"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"ok #a"}"##,
        ]);
        assert_eq!(
            dead,
            vec![
                (1, Reason::EmptyLine),
                (2, Reason::InvalidJson),
                (3, Reason::InvalidUtf8),
                (6, Reason::NotAnObject),
                (7, Reason::BadEventTime),
                (8, Reason::MissingEventTime),
            ]
        );
        assert_eq!(
            posts,
            vec![
                (Some(1_618_473_605_000), "lone ? surrogate".into()),
                (None, "#kept".into()),
                (None, "#kept too".into()),
                (Some(1_618_473_605_000), "12".into()),
                (Some(1_618_473_605_000), "ok #a".into())
            ]
        );
    }

    #[test]
    fn lines_spark_reads_leniently_are_read() {
        let (posts, dead) = parse(&[
            br##"{"text":"#a {x}","created_at":null} trailing"##,
            br##"{"text":"#b"}{"text":"#c"}"##,
            br##"{"text":"#d" trailing"##,
            br#"{"text":"Tr\u0\ud83d0e8s"}"#,
            br##"{'text':'#e'}"##,
            b"{\"text\":\"#f\xc0\xaf\"}",
            br#"{"created_at":"Thu Apr 15 08:00:05 +0000 2021","text":"lone \ud83d surrogate"}"#,
        ]);
        let texts: Vec<&str> = posts.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(texts, vec!["#a {x}", "#b", "#e", "#f/", "lone ? surrogate"]);
        // A truncated object and a broken escape stay unreadable, as in Spark.
        assert_eq!(
            dead.iter().filter(|d| d.1 == Reason::InvalidJson).count(),
            2,
            "{dead:?}"
        );
    }

    #[test]
    fn a_text_of_another_type_is_its_json_text_as_in_spark() {
        let (posts, dead) = parse(&[br##"{"text":["#a",{"b":1}]}"##, br##"{"text":7}"##]);
        assert_eq!(
            posts,
            vec![
                (None, r##"["#a",{"b":1}]"##.to_string()),
                (None, "7".to_string())
            ]
        );
        assert!(dead.iter().all(|d| d.1 == Reason::MissingEventTime));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let (posts, _) = parse(&[br##"{"text":"#first","created_at":"x","text":"#last"}"##]);
        assert_eq!(posts, vec![(None, "#last".to_string())]);
    }

    #[test]
    fn long_lines_are_set_aside() {
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(20_000));
        let (posts, dead) = parse(&[long.as_bytes(), br#"{"text":"a","created_at":null}"#]);
        assert_eq!(dead[0], (1, Reason::LineTooLong));
        assert_eq!(posts.len(), 1);
    }

    fn tutorial_parser() -> (JsonPostParser, Metrics) {
        let metrics = Metrics::new();
        let options = ParserOptions {
            max_line_bytes: 1 << 20,
            format: FormatOptions {
                format: Format::TwitterV1,
                text: formats::TextChoice::AsSent,
                reposts: formats::RepostText::Own,
                time: formats::TimeChoice::Created,
                needs: formats::Needs::TEXT_ONLY,
            },
        };
        (JsonPostParser::new("p", options, &metrics), metrics)
    }

    /// Everything a line gives: the outcome with its detail, every field of the posts, and
    /// whether Spark's leniency was needed (counted).
    fn outcome(line: &[u8], full: bool) -> String {
        let (mut p, metrics) = tutorial_parser();
        let mut posts = PostBatch::new("f".into());
        let outcome = if full {
            p.parse_line_full(line, 1, &mut posts)
        } else {
            p.parse_line(line, 1, &mut posts)
        };
        let fields: Vec<String> = (0..posts.len())
            .map(|i| format!("{:?} {:?}", posts.event_times[i], posts.fields(i)))
            .collect();
        let repaired = metrics.value(names::RECORDS_REPAIRED, "p");
        format!("{outcome:?} {fields:?} repaired={repaired}")
    }

    fn sample_lines() -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for data in [
            &include_bytes!("../../../tests/fixtures/golden/tiny/input/tweets-000000.json")[..],
            &include_bytes!("../../../tests/fixtures/golden/bad/input/tweets-000000.json")[..],
            &include_bytes!("../../../tests/fixtures/golden/bad/input/tweets-000001.json")[..],
        ] {
            lines.extend(
                data.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        lines
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_parser_on_real_lines() {
        let lines = sample_lines();
        let mut fast = 0;
        for l in &lines {
            if crate::fast_json::scan(l, &mut String::new()).is_some() {
                fast += 1;
            }
            assert_eq!(
                outcome(l, false),
                outcome(l, true),
                "{}",
                String::from_utf8_lossy(l)
            );
        }
        // Well-formed statuses take the fast path (where the CPU has AVX2).
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(fast * 10 >= lines.len() * 8, "{fast} of {}", lines.len());
        }
    }

    #[test]
    fn an_integer_beyond_64_bits_is_a_number_on_both_paths() {
        // Spark (Jackson) reads it as a BigInteger; the line is not invalid.
        let l = br#"{"created_at":"Thu Apr 15 08:05:04 +0000 2021","id":81382605882711842654,"id_str":"1","text":"a #b","n":-123456789012345678901234}"#;
        let fast = outcome(l, false);
        assert_eq!(fast, outcome(l, true));
        assert!(fast.starts_with("Posts(None)"), "{fast}");
    }

    /// A whole batch through `process_batch`: every post with its line number, every dead
    /// letter, the repaired count.
    fn batch_outcome(data: &[u8], fast: bool, max_line_bytes: usize) -> String {
        let (mut p, metrics) = tutorial_parser();
        p.fast_path = fast;
        p.options.max_line_bytes = max_line_bytes;
        let mut out = Emitter::new();
        let raw = RawBatch {
            origin: "f".into(),
            first_line: 7,
            lines: memchr::memchr_iter(b'\n', data).count() + 1,
            data: data.to_vec().into(),
        };
        p.process_batch(Batch::Raw(Arc::new(raw)), &mut out)
            .unwrap();
        let posts: Vec<String> = out
            .batches
            .iter()
            .flat_map(|b| match b {
                Batch::Posts(b) => (0..b.len())
                    .map(|i| format!("{} {:?} {:?}", b.lines[i], b.event_times[i], b.fields(i)))
                    .collect(),
                _ => vec![],
            })
            .collect();
        let dead: Vec<String> = out
            .dead_letters
            .iter()
            .map(|d| format!("{} {:?} {}", d.line, d.reason, d.detail))
            .collect();
        let repaired = metrics.value(names::RECORDS_REPAIRED, "p");
        format!("{posts:#?} {dead:#?} repaired={repaired}")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
        /// Batches of real, mutated and blank lines, ended by `\n` or `\r\n`, the last one with
        /// or without its newline, some over the line limit: with the fast path, the batch's
        /// outcome is the full parser's, line for line (numbers included).
        #[test]
        fn the_fast_path_finds_the_same_lines_in_a_batch(
            picks in proptest::collection::vec((0usize..1000, 0usize..10_000, 0u8..6, 0u8..3), 1..8),
            last_newline: bool,
            max_line_bytes in proptest::sample::select(vec![3000usize, 1 << 20]),
        ) {
            let lines = sample_lines();
            let mut data = Vec::new();
            for (pick, pos, kind, ending) in picks {
                let mut l = lines[pick % lines.len()].clone();
                let at = pos % (l.len() + 1);
                match kind {
                    0 => l.truncate(at),
                    1 => l.insert(at, b'\n'),
                    2 => l = b"  \t".to_vec(),
                    3 => l.insert(at, b'\r'),
                    _ => {}
                }
                data.extend_from_slice(&l);
                data.extend_from_slice(match ending {
                    0 => b"\n",
                    1 => b"\r\n",
                    _ => b" \r\n",
                });
            }
            if !last_newline {
                data.pop();
            }
            proptest::prop_assert_eq!(
                batch_outcome(&data, true, max_line_bytes),
                batch_outcome(&data, false, max_line_bytes)
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Truncated, garbled and spliced lines: wherever the fast path accepts one, it reads
        /// what the full parser reads; where it declines, the full parser decides.
        #[test]
        fn the_fast_path_agrees_with_the_full_parser_on_mutated_lines(
            pick in 0usize..1000,
            pos in 0usize..10_000,
            kind in 0u8..4,
            byte in proptest::sample::select(vec![b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0', b'-', b'.', b'e', b'u', b'd', b'8', b'a', 0x01, 0x7f, 0xc3, 0xff]),
        ) {
            let lines = sample_lines();
            let mut l = lines[pick % lines.len()].clone();
            let at = pos % (l.len() + 1);
            match kind {
                0 => l.truncate(at),
                1 if at < l.len() => l[at] = byte,
                2 => l.insert(at, byte),
                _ => {
                    let end = (at + 40).min(l.len());
                    let piece = l[at..end].to_vec();
                    l.splice(at..at, piece);
                }
            }
            proptest::prop_assert_eq!(outcome(&l, false), outcome(&l, true));
        }
    }
}
