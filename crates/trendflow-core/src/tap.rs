//! Samples of the records leaving each component, for `trendflow tap COMPONENT`.
//!
//! A tap costs one relaxed atomic load per batch while nobody listens. While someone does,
//! the first few records of each batch are described as one JSON line each and kept in a
//! small ring, which listeners read by sequence number (a slow listener misses lines, it
//! never holds the pipeline back).
//!
//! ```
//! use std::sync::Arc;
//! use trendflow_core::tap::Taps;
//! use trendflow_core::{Batch, TokenBatch};
//!
//! let taps = Taps::default();
//! let point = taps.point("tokenizer");
//! let mut tokens = TokenBatch::with_capacity(1, 8);
//! tokens.push(Some(0), "#rust");
//! point.offer(&Batch::Tokens(Arc::new(tokens.clone()))); // nobody listens: not kept
//! let listener = taps.listen("tokenizer").unwrap();
//! point.offer(&Batch::Tokens(Arc::new(tokens)));
//! let (lines, _next) = listener.read_after(0);
//! assert_eq!(lines, vec![r##"{"token":"#rust","event_time":"1970-01-01T00:00:00Z"}"##]);
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::time::format_iso_utc;
use crate::{Batch, EventTime};

/// Records sampled from each batch while a listener is attached.
pub const SAMPLES_PER_BATCH: usize = 3;
/// Lines kept for listeners to read.
const RING: usize = 1024;
/// Text longer than this is cut (with `…`).
const MAX_TEXT: usize = 280;

/// Every component's tap point. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Taps {
    points: Arc<Mutex<BTreeMap<String, Arc<TapPoint>>>>,
}

impl Taps {
    /// The tap point of a component (created on first use); components call `offer` on it.
    pub fn point(&self, component: &str) -> Arc<TapPoint> {
        self.points
            .lock()
            .unwrap()
            .entry(component.to_string())
            .or_default()
            .clone()
    }

    /// Components that have a tap point.
    pub fn components(&self) -> Vec<String> {
        self.points.lock().unwrap().keys().cloned().collect()
    }

    /// Starts sampling a component; sampling stops when the listener is dropped. `None`:
    /// no such component.
    pub fn listen(&self, component: &str) -> Option<TapListener> {
        let point = self.points.lock().unwrap().get(component)?.clone();
        point.listeners.fetch_add(1, Ordering::Relaxed);
        Some(TapListener { point })
    }
}

#[derive(Debug, Default)]
pub struct TapPoint {
    listeners: AtomicUsize,
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    /// Sequence number of the next line.
    next: u64,
    lines: VecDeque<(u64, String)>,
}

impl TapPoint {
    /// A batch leaves the component: sampled only while someone listens.
    #[inline]
    pub fn offer(&self, batch: &Batch) {
        if self.listeners.load(Ordering::Relaxed) > 0 {
            self.sample(batch);
        }
    }

    #[cold]
    fn sample(&self, batch: &Batch) {
        let lines: Vec<String> = (0..batch.len().min(SAMPLES_PER_BATCH))
            .map(|i| describe(batch, i))
            .collect();
        let mut ring = self.ring.lock().unwrap();
        for line in lines {
            let seq = ring.next;
            ring.next += 1;
            ring.lines.push_back((seq, line));
            if ring.lines.len() > RING {
                ring.lines.pop_front();
            }
        }
    }
}

/// A listener attached to one component's tap.
#[derive(Debug)]
pub struct TapListener {
    point: Arc<TapPoint>,
}

impl TapListener {
    /// Lines with a sequence number at or after `from`, and the number to ask for next.
    pub fn read_after(&self, from: u64) -> (Vec<String>, u64) {
        let ring = self.point.ring.lock().unwrap();
        let lines = ring
            .lines
            .iter()
            .filter(|(seq, _)| *seq >= from)
            .map(|(_, l)| l.clone())
            .collect();
        (lines, ring.next)
    }

    /// The sequence number the next line will have (to skip what was kept before).
    pub fn position(&self) -> u64 {
        self.point.ring.lock().unwrap().next
    }
}

impl Drop for TapListener {
    fn drop(&mut self) {
        self.point.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Record `i` of a batch as one JSON object.
pub fn describe(batch: &Batch, i: usize) -> String {
    let mut s = String::from("{");
    match batch {
        Batch::Raw(b) => {
            let line = b.data.split(|&c| c == b'\n').nth(i).unwrap_or_default();
            field(&mut s, "origin", &b.origin);
            s.push_str(&format!(",\"line\":{}", b.first_line + i as u64));
            s.push(',');
            field(&mut s, "raw", &String::from_utf8_lossy(line));
        }
        Batch::Posts(b) => {
            let p = b.fields(i);
            field(&mut s, "id", p.id);
            time_field(&mut s, p.event_time);
            if !p.author.is_empty() {
                s.push(',');
                field(&mut s, "author", p.author);
            }
            s.push(',');
            field(&mut s, "text", p.text);
            let entities: Vec<String> = b
                .entities(i)
                .map(|(kind, v)| format!("{}:{v}", kind.as_str()))
                .collect();
            if !entities.is_empty() {
                s.push_str(",\"entities\":[");
                for (k, e) in entities.iter().enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    string(&mut s, e);
                }
                s.push(']');
            }
        }
        Batch::Tokens(b) => {
            field(&mut s, "token", b.token(i));
            time_field(&mut s, b.event_times[i]);
            if b.has_values() {
                s.push_str(&format!(",\"value\":{}", b.value(i)));
            }
        }
        Batch::Rows(b) => {
            let r = b.rows.get(i);
            if let Some(w) = r.window {
                s.push_str(&format!(
                    "\"window\":{{\"start\":\"{}\",\"end\":\"{}\"}},",
                    format_iso_utc(w.start),
                    format_iso_utc(w.end)
                ));
            }
            field(&mut s, &b.schema.key_column, r.key);
            s.push_str(&format!(",\"{}\":{}", b.schema.value_column, r.count));
        }
    }
    s.push('}');
    s
}

fn time_field(s: &mut String, t: Option<EventTime>) {
    if let Some(t) = t {
        s.push(',');
        field(s, "event_time", &format_iso_utc(t));
    }
}

fn field(s: &mut String, name: &str, value: &str) {
    string(s, name);
    s.push(':');
    string(s, value);
}

/// A JSON string, cut at [`MAX_TEXT`] characters.
fn string(s: &mut String, v: &str) {
    s.push('"');
    for (n, c) in v.chars().enumerate() {
        if n == MAX_TEXT {
            s.push('…');
            break;
        }
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::OutputMode;
    use crate::post::{EntityKind, PostFields};
    use crate::{PostBatch, RawBatch, ResultRow, RowBatch, RowSchema, Window};

    #[test]
    fn nothing_is_kept_without_a_listener_and_sampling_stops_when_it_leaves() {
        let taps = Taps::default();
        let point = taps.point("source");
        let raw = |text: &'static str| {
            Batch::Raw(Arc::new(RawBatch {
                origin: "f.json".into(),
                first_line: 7,
                lines: 2,
                data: bytes::Bytes::from_static(text.as_bytes()),
            }))
        };
        point.offer(&raw("a\nb"));
        let listener = taps.listen("source").unwrap();
        assert_eq!(listener.read_after(0).0, Vec::<String>::new());
        point.offer(&raw("{\"t\":\"x\"}\nsecond"));
        let (lines, next) = listener.read_after(0);
        assert_eq!(
            lines,
            vec![
                r#"{"origin":"f.json","line":7,"raw":"{\"t\":\"x\"}"}"#,
                r#"{"origin":"f.json","line":8,"raw":"second"}"#,
            ]
        );
        assert_eq!(next, 2);
        drop(listener);
        point.offer(&raw("c"));
        let again = taps.listen("source").unwrap();
        assert_eq!(
            again.read_after(0).0.len(),
            2,
            "nothing kept while nobody listened"
        );
        assert!(taps.listen("missing").is_none());
    }

    #[test]
    fn at_most_a_few_records_per_batch_are_sampled_and_the_ring_is_bounded() {
        let taps = Taps::default();
        let point = taps.point("rows");
        let listener = taps.listen("rows").unwrap();
        let schema = Arc::new(RowSchema::word_count(true));
        let rows = (0..10)
            .map(|i| ResultRow {
                window: Some(Window {
                    start: 0,
                    end: 300_000,
                }),
                key: format!("#t{i}").into(),
                count: i,
            })
            .collect();
        let batch = Batch::Rows(Arc::new(RowBatch {
            schema,
            mode: OutputMode::Append,
            epoch: 1,
            rows,
        }));
        point.offer(&batch);
        let (lines, _) = listener.read_after(0);
        assert_eq!(lines.len(), SAMPLES_PER_BATCH);
        assert_eq!(
            lines[1],
            r##"{"window":{"start":"1970-01-01T00:00:00Z","end":"1970-01-01T00:05:00Z"},"word":"#t1","count":1}"##
        );
        for _ in 0..RING {
            point.offer(&batch);
        }
        let (lines, next) = listener.read_after(0);
        assert_eq!(lines.len(), RING);
        assert_eq!(next, (RING as u64 + 1) * SAMPLES_PER_BATCH as u64);
        assert_eq!(listener.read_after(next - 1).0.len(), 1);
    }

    #[test]
    fn posts_show_their_fields_and_entities_with_long_text_cut() {
        let mut posts = PostBatch::new("f".into());
        let text = "é".repeat(400);
        posts.push_post(
            3,
            &PostFields {
                id: "42",
                author: "insee",
                text: &text,
                event_time: Some(1_000),
                ..Default::default()
            },
        );
        posts.push_entity(EntityKind::Hashtag, "Rust");
        let line = describe(&Batch::Posts(Arc::new(posts)), 0);
        assert!(line.starts_with(
            r#"{"id":"42","event_time":"1970-01-01T00:00:01Z","author":"insee","text":"éé"#
        ));
        assert!(
            line.ends_with(r#"…","entities":["hashtag:Rust"]}"#),
            "{line}"
        );
        assert_eq!(line.matches('é').count(), MAX_TEXT);
    }
}
