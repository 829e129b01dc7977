//! A parser of server-sent events (the WHATWG HTML "event stream" format), fed the bytes of
//! a response body as they arrive.
//!
//! Lines end with CRLF, LF or CR. `event:` names the event, `data:` lines are joined with
//! newlines, `id:` and `retry:` are kept; a line starting with `:` is a comment (Mastodon's
//! `:thump` heartbeat); a blank line dispatches the event (none if it has no data). A field
//! name without a colon has an empty value, and one space after the colon is not part of
//! the value.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// `event:`, or "message" when none was given.
    pub event: String,
    pub data: String,
    /// The last `id:` seen in the stream, if any.
    pub last_event_id: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The previous chunk ended with CR: an LF starting this one belongs to that line end.
    after_cr: bool,
    at_stream_start: bool,
    event: String,
    data: String,
    has_data: bool,
    last_event_id: Option<String>,
    /// The reconnection time the server asked for (`retry:`), in milliseconds.
    pub retry_ms: Option<u64>,
    /// Comment lines seen (heartbeats).
    pub comments: u64,
}

impl SseParser {
    pub(crate) fn new() -> Self {
        SseParser {
            at_stream_start: true,
            ..Default::default()
        }
    }

    /// Takes the next bytes of the stream; returns the events they complete.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&chunk[..end]);
            let line = std::mem::take(&mut self.line);
            self.take_line(&line, &mut events);
            let crlf = chunk[end] == b'\r' && chunk.get(end + 1) == Some(&b'\n');
            if chunk[end] == b'\r' && end + 1 == chunk.len() {
                self.after_cr = true;
            }
            chunk = &chunk[end + 1 + usize::from(crlf)..];
        }
        self.line.extend_from_slice(chunk);
        events
    }

    fn take_line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        let mut line = String::from_utf8_lossy(line).into_owned();
        if std::mem::take(&mut self.at_stream_start) && line.starts_with('\u{feff}') {
            line.remove(0);
        }
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_event_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        data.pop();
        events.push(SseEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
            last_event_id: self.last_event_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_chunks(stream: &[u8], chunk: usize) -> (Vec<SseEvent>, SseParser) {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for c in stream.chunks(chunk) {
            events.extend(p.push(c));
        }
        (events, p)
    }

    #[test]
    fn mastodon_events_and_heartbeats() {
        let stream = b":)\n\nevent: update\ndata: {\"id\":\"1\"}\n\n:thump\n\nevent: delete\ndata: 108914398911648589\n\nevent: status.update\ndata: {\"id\":\"2\"}\n\n";
        for chunk in [1, 2, 3, 7, stream.len()] {
            let (events, p) = parse_in_chunks(stream, chunk);
            let got: Vec<(&str, &str)> = events
                .iter()
                .map(|e| (e.event.as_str(), e.data.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    ("update", "{\"id\":\"1\"}"),
                    ("delete", "108914398911648589"),
                    ("status.update", "{\"id\":\"2\"}")
                ],
                "chunks of {chunk}"
            );
            assert_eq!(p.comments, 2);
        }
    }

    #[test]
    fn the_spec_rules_for_lines_and_fields() {
        // Multi-line data joined by LF; CRLF, CR and LF line ends; no space after the colon;
        // a field without a colon; a BOM at the start; an event without data is not sent.
        let stream = "\u{feff}data:first\r\ndata: second\rdata\n\nevent: ping\n\nid: 7\nretry: 3000\nevent:update\ndata:  two spaces\r\n\r\n".as_bytes();
        for chunk in [1, 4, stream.len()] {
            let (events, p) = parse_in_chunks(stream, chunk);
            assert_eq!(
                events,
                [
                    SseEvent {
                        event: "message".into(),
                        data: "first\nsecond\n".into(),
                        last_event_id: None
                    },
                    SseEvent {
                        event: "update".into(),
                        data: " two spaces".into(),
                        last_event_id: Some("7".into())
                    }
                ],
                "chunks of {chunk}"
            );
            assert_eq!(p.retry_ms, Some(3000));
        }
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        let (events, _) = parse_in_chunks(b"event: update\ndata: {\"id\":\"1\"}\n", 100);
        assert!(events.is_empty());
    }
}
