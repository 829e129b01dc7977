//! The batches carried by [`crate::StreamMessage::Data`]: raw lines, parsed posts, tokens and
//! result rows. Batches hold thousands of records in a few flat buffers (one allocation per
//! column, not per record) and are shared with `Arc` when a stream feeds several branches.

use std::sync::Arc;

pub use crate::post::PostBatch;
pub use crate::rows::{ResultRow, RowIter, RowRef, Rows};
use crate::{Epoch, EventTime};

/// What a stage consumes or produces; checked when a pipeline is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    Raw,
    Posts,
    Tokens,
    Rows,
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataKind::Raw => "raw lines",
            DataKind::Posts => "posts",
            DataKind::Tokens => "tokens",
            DataKind::Rows => "result rows",
        })
    }
}

/// A batch of records of one kind.
#[derive(Debug, Clone)]
pub enum Batch {
    Raw(Arc<RawBatch>),
    Posts(Arc<PostBatch>),
    Tokens(Arc<TokenBatch>),
    Rows(Arc<RowBatch>),
}

impl Batch {
    pub fn kind(&self) -> DataKind {
        match self {
            Batch::Raw(_) => DataKind::Raw,
            Batch::Posts(_) => DataKind::Posts,
            Batch::Tokens(_) => DataKind::Tokens,
            Batch::Rows(_) => DataKind::Rows,
        }
    }

    /// Number of records, the unit mailboxes and rates are measured in.
    pub fn len(&self) -> usize {
        match self {
            Batch::Raw(b) => b.lines,
            Batch::Posts(b) => b.len(),
            Batch::Tokens(b) => b.len(),
            Batch::Rows(b) => b.rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size in bytes of the payload, for byte rates.
    /// The batch cut into one batch per record, each with where the record came from
    /// (origin, 1-based line; empty and 0 when unknown). Used to find the one record an
    /// operator keeps failing on.
    pub fn split_records(&self) -> Vec<(Batch, Arc<str>, u64)> {
        let none: Arc<str> = Arc::from("");
        match self {
            Batch::Raw(b) => {
                let mut out = Vec::with_capacity(b.lines);
                let mut line = b.first_line;
                let mut rest = &b.data[..];
                while !rest.is_empty() {
                    let end = rest
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(rest.len(), |i| i + 1);
                    let raw = RawBatch {
                        origin: b.origin.clone(),
                        first_line: line,
                        lines: 1,
                        data: b.data.slice_ref(&rest[..end]),
                    };
                    out.push((Batch::Raw(Arc::new(raw)), b.origin.clone(), line));
                    rest = &rest[end..];
                    line += 1;
                }
                out
            }
            Batch::Posts(b) => (0..b.len())
                .map(|i| {
                    let mut one = PostBatch::new(b.origin.clone());
                    one.push_from(b, i);
                    (Batch::Posts(Arc::new(one)), b.origin.clone(), b.lines[i])
                })
                .collect(),
            Batch::Tokens(b) => (0..b.len())
                .map(|i| {
                    let (t, w) = (b.event_times[i], b.token(i));
                    let mut one = TokenBatch::with_capacity(1, w.len());
                    if b.has_values() {
                        one.push_valued(t, w, b.values[i]);
                    } else {
                        one.push(t, w);
                    }
                    (Batch::Tokens(Arc::new(one)), none.clone(), 0)
                })
                .collect(),
            Batch::Rows(b) => b
                .rows
                .iter()
                .map(|r| {
                    let one = RowBatch {
                        schema: b.schema.clone(),
                        mode: b.mode,
                        epoch: b.epoch,
                        rows: Rows::from(vec![r.to_owned()]),
                    };
                    (Batch::Rows(Arc::new(one)), none.clone(), 0)
                })
                .collect(),
        }
    }

    /// The start of a one-record batch, for a dead letter's excerpt.
    pub fn excerpt(&self) -> String {
        match self {
            Batch::Raw(b) => crate::DeadLetter::excerpt_of(&b.data),
            Batch::Posts(b) if !b.is_empty() => crate::DeadLetter::excerpt_of(b.text(0).as_bytes()),
            Batch::Tokens(b) if !b.is_empty() => b.token(0).to_string(),
            Batch::Rows(b) if !b.rows.is_empty() => b.rows.get(0).key.to_string(),
            _ => String::new(),
        }
    }

    pub fn payload_bytes(&self) -> usize {
        match self {
            Batch::Raw(b) => b.data.len(),
            Batch::Posts(b) => b.text_bytes(),
            Batch::Tokens(b) => b.text.len(),
            Batch::Rows(b) => b.rows.iter().map(|r| r.key.len() + 24).sum(),
        }
    }
}

/// Whole lines read from one input (a file, a partition), in order, newline-separated.
#[derive(Debug, Clone, Default)]
pub struct RawBatch {
    /// Where the lines come from (a file path or URL), for dead-letter positions.
    pub origin: Arc<str>,
    /// 1-based line number of the first line in `data`.
    pub first_line: u64,
    /// Number of lines in `data`.
    pub lines: usize,
    /// The bytes of the lines, each ended by '\n' (the last one may lack it): a slice of the
    /// buffer the source read, shared, not copied.
    pub data: bytes::Bytes,
}

/// Tokens (hashtags, words) with the event time of the post they come from, and optionally a
/// value each (what a sum adds up, or the hash of what a distinct count counts).
#[derive(Debug, Clone, Default)]
pub struct TokenBatch {
    pub event_times: Vec<Option<EventTime>>,
    text: String,
    text_ends: Vec<u32>,
    /// Empty, or one value per token.
    pub values: Vec<i64>,
}

impl TokenBatch {
    pub fn with_capacity(tokens: usize, bytes: usize) -> Self {
        TokenBatch {
            event_times: Vec::with_capacity(tokens),
            text: String::with_capacity(bytes),
            text_ends: Vec::with_capacity(tokens),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, event_time: Option<EventTime>, token: &str) {
        self.event_times.push(event_time);
        self.text.push_str(token);
        self.text_ends.push(self.text.len() as u32);
    }

    /// Adds a token with a value; a batch has values for all its tokens or for none.
    pub fn push_valued(&mut self, event_time: Option<EventTime>, token: &str, value: i64) {
        debug_assert_eq!(self.values.len(), self.len());
        self.push(event_time, token);
        self.values.push(value);
    }

    /// The value of token i (1 when the batch carries no values: each token counts once).
    pub fn value(&self, i: usize) -> i64 {
        self.values.get(i).copied().unwrap_or(1)
    }

    pub fn has_values(&self) -> bool {
        !self.values.is_empty()
    }

    pub fn len(&self) -> usize {
        self.text_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text_ends.is_empty()
    }

    pub fn token(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.text_ends[i - 1] as usize
        };
        &self.text[start..self.text_ends[i] as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (Option<EventTime>, &str)> + '_ {
        (0..self.len()).map(move |i| (self.event_times[i], self.token(i)))
    }
}

/// How a result table changes with each epoch (Spark's output modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Each row once, final, when its window closes.
    Append,
    /// The rows that changed in the epoch.
    Update,
    /// The whole table, every epoch.
    Complete,
}

/// Names of the columns of a result table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSchema {
    /// Rows carry a window (`window_start`, `window_end` / Spark's `window` struct).
    pub windowed: bool,
    pub key_column: Arc<str>,
    pub value_column: Arc<str>,
}

impl RowSchema {
    /// The tutorial's columns, `word` and `count` (the default of counting stages).
    pub fn word_count(windowed: bool) -> Self {
        RowSchema {
            windowed,
            key_column: "word".into(),
            value_column: "count".into(),
        }
    }
}

/// The result rows an aggregation emits at the end of an epoch.
#[derive(Debug, Clone)]
pub struct RowBatch {
    pub schema: Arc<RowSchema>,
    pub mode: OutputMode,
    pub epoch: Epoch,
    pub rows: Rows,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_records_with_positions() {
        let raw = RawBatch {
            origin: "f".into(),
            first_line: 10,
            lines: 3,
            data: b"a\nbb\nc".to_vec().into(),
        };
        let parts = Batch::Raw(Arc::new(raw)).split_records();
        let lines: Vec<u64> = parts.iter().map(|p| p.2).collect();
        assert_eq!(lines, [10, 11, 12]);
        assert_eq!(parts[1].0.excerpt(), "bb\n");
        let mut posts = PostBatch::new("g".into());
        posts.push(3, Some(1), None, "x");
        posts.push(7, Some(2), None, "y");
        let parts = Batch::Posts(Arc::new(posts)).split_records();
        assert_eq!((parts[1].2, parts[1].0.excerpt()), (7, "y".to_string()));
        assert!(parts.iter().all(|p| p.0.len() == 1 && &*p.1 == "g"));
    }

    #[test]
    fn token_batch_iterates_in_order() {
        let mut b = TokenBatch::default();
        b.push(Some(1), "#a");
        b.push(None, "#b");
        let v: Vec<_> = b.iter().collect();
        assert_eq!(v, vec![(Some(1), "#a"), (None, "#b")]);
    }
}
