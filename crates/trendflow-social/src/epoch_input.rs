//! What both live sources record in the offset log for an epoch, and how they send it.
//!
//! The record holds the epoch's lines themselves (a write-ahead log, as the socket source
//! keeps), the number of the first of them, and the source's resume position after them, so
//! that a replay after a crash sends identical batches and leaves the source where the
//! original read left it.

use std::sync::Arc;

use bytes::Bytes;
use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::{Batch, BatchSender, OperatorError, RawBatch};

const VERSION: u64 = 1;

/// A raw batch holds about this many bytes of whole lines (the pipeline's usual batch size).
const BATCH_BYTES: usize = 1 << 20;

/// One epoch's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EpochInput<'a> {
    /// 1-based number of the first line among all the lines this source has read.
    pub first_line: u64,
    /// Where the source resumes after this epoch (a Jetstream cursor, a Mastodon status id).
    pub position: &'a str,
    /// The lines, each ended by '\n'.
    pub lines: &'a [u8],
}

impl<'a> EpochInput<'a> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::appending_to(Vec::new(), self.lines.len() + 32);
        w.u64(VERSION)
            .u64(self.first_line)
            .str(self.position)
            .bytes(self.lines);
        w.finish()
    }

    pub(crate) fn decode(input: &'a [u8]) -> Result<EpochInput<'a>, OperatorError> {
        let bad = |e| OperatorError::new(format!("an epoch's recorded input is unreadable: {e}"));
        let mut r = StateReader::new(input);
        let version = r.u64().map_err(bad)?;
        if version != VERSION {
            return Err(OperatorError::new(format!(
                "an epoch's recorded input has version {version}; this build reads {VERSION}"
            )));
        }
        let decoded = EpochInput {
            first_line: r.u64().map_err(bad)?,
            position: r.str().map_err(bad)?,
            lines: r.bytes().map_err(bad)?,
        };
        r.end().map_err(bad)?;
        Ok(decoded)
    }

    pub(crate) fn line_count(&self) -> u64 {
        memchr::memchr_iter(b'\n', self.lines).count() as u64
    }

    /// The lines, without their '\n'.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &'a [u8]> {
        let lines = self.lines;
        lines
            .strip_suffix(b"\n")
            .unwrap_or(lines)
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
    }

    /// Sends the lines as raw batches of about [`BATCH_BYTES`], cut between lines.
    pub(crate) async fn send(
        &self,
        origin: &Arc<str>,
        out: &mut dyn BatchSender,
    ) -> Result<(), OperatorError> {
        let data = Bytes::copy_from_slice(self.lines);
        let mut start = 0;
        let mut line = self.first_line;
        while start < data.len() {
            let limit = (start + BATCH_BYTES).min(data.len());
            // Whole lines: up to the last newline within the limit, or the first line whole
            // when it alone is longer than a batch.
            let end = memchr::memrchr(b'\n', &data[start..limit])
                .map(|i| start + i + 1)
                .or_else(|| memchr::memchr(b'\n', &data[limit..]).map(|i| limit + i + 1))
                .unwrap_or(data.len());
            let chunk = data.slice(start..end);
            let lines = memchr::memchr_iter(b'\n', &chunk).count();
            out.send(Batch::Raw(Arc::new(RawBatch {
                origin: origin.clone(),
                first_line: line,
                lines,
                data: chunk,
            })))
            .await?;
            line += lines as u64;
            start = end;
        }
        Ok(())
    }
}

/// `payload` as one line: a raw newline in JSON can only be whitespace between tokens (inside
/// strings it is escaped), so replacing it with a space keeps the value and makes one event
/// one line.
pub(crate) fn push_as_line(lines: &mut Vec<u8>, payload: &[u8]) {
    let start = lines.len();
    lines.extend_from_slice(payload);
    for b in &mut lines[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    lines.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_other_versions_are_refused() {
        let input = EpochInput {
            first_line: 41,
            position: "1783175888403568",
            lines: b"{\"a\":1}\n{\"b\":2}\n",
        };
        let encoded = input.encode();
        let decoded = EpochInput::decode(&encoded).unwrap();
        assert_eq!(decoded, input);
        assert_eq!(decoded.line_count(), 2);
        assert_eq!(
            decoded.lines().collect::<Vec<_>>(),
            vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]]
        );
        let mut other = encoded.clone();
        other[0] = 2;
        assert!(EpochInput::decode(&other).is_err());
        assert!(EpochInput::decode(&encoded[..encoded.len() - 1]).is_err());
    }

    #[test]
    fn newlines_inside_a_payload_become_spaces() {
        let mut lines = Vec::new();
        push_as_line(&mut lines, b"{\r\n \"text\": \"a\\nb\"\n}");
        assert_eq!(lines, b"{   \"text\": \"a\\nb\" }\n");
    }
}
