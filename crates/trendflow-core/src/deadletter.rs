//! Records that could not be used, with where they came from and why. Bad input never stops
//! a pipeline: it becomes a dead letter, counted by reason.

use std::sync::Arc;

/// Why a record was set aside. The names are stable: they label metrics and dead-letter files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A blank line (Spark's JSON reader skips them too).
    EmptyLine,
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is not valid JSON (truncated, garbled, lone surrogate escape...).
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// A line longer than the configured maximum.
    LineTooLong,
    /// A post without text.
    MissingText,
    /// A field of the wrong JSON type.
    WrongType,
    /// No `created_at`: the post counts where time does not matter, not in windows.
    MissingEventTime,
    /// `created_at` could not be parsed: likewise.
    BadEventTime,
    /// Too late for some of its windows (their end is at or before the watermark).
    LateEvent,
    /// Dated beyond the wall clock plus `max_future_skew`: it would drag the watermark ahead
    /// and close windows early, so it is set aside.
    FutureEvent,
    /// A component failed on this record again and again: after the restart budget for its
    /// epoch it was isolated, so the rest of the stream goes on.
    OperatorFailed,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::EmptyLine,
        Reason::InvalidUtf8,
        Reason::InvalidJson,
        Reason::NotAnObject,
        Reason::LineTooLong,
        Reason::MissingText,
        Reason::WrongType,
        Reason::MissingEventTime,
        Reason::BadEventTime,
        Reason::LateEvent,
        Reason::FutureEvent,
        Reason::OperatorFailed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::EmptyLine => "empty_line",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::LineTooLong => "line_too_long",
            Reason::MissingText => "missing_text",
            Reason::WrongType => "wrong_type",
            Reason::MissingEventTime => "missing_event_time",
            Reason::BadEventTime => "bad_event_time",
            Reason::LateEvent => "late_event",
            Reason::FutureEvent => "future_event",
            Reason::OperatorFailed => "operator_failed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The pipeline component that set it aside.
    pub component: Arc<str>,
    /// Where the record came from (file path, URL).
    pub origin: Arc<str>,
    /// 1-based line number in `origin`, 0 when unknown.
    pub line: u64,
    pub reason: Reason,
    /// What exactly was wrong, in words.
    pub detail: String,
    /// The start of the record, lossily decoded, at most 200 bytes.
    pub excerpt: String,
}

impl DeadLetter {
    pub fn excerpt_of(bytes: &[u8]) -> String {
        let cut = bytes.len().min(200);
        String::from_utf8_lossy(&bytes[..cut]).into_owned()
    }
}

impl Reason {
    /// Counted, but not worth a line in the dead-letter file: keep-alive blank lines are
    /// normal traffic.
    pub fn is_routine(&self) -> bool {
        matches!(self, Reason::EmptyLine)
    }
}
