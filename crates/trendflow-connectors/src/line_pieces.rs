//! A file read as pieces of whole lines of about a batch's size, each sent on as soon as it is
//! read: memory in flight is bounded by the mailboxes, whatever the size of the file, and the
//! parsers start on a file's first piece instead of waiting for all of it.
//!
//! Reading whole files first held each one in memory at once: one JSON-lines dump of 1 GB took
//! 1 GB of RSS and was read on one core before any parser started (issue 5).

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use trendflow_core::RawBatch;

/// Bytes asked of the file per read call: the bytes just read are counted while in cache.
const READ_BYTES: usize = 256 << 10;

/// Cuts bytes, as they come, into pieces of whole lines of at least `piece_bytes` (or what is
/// left at the end), numbering their lines: the batches a file source sends.
///
/// ```
/// use trendflow_connectors::line_pieces::LinePieces;
///
/// let mut pieces = LinePieces::new("f".into(), 4);
/// pieces.push(b"a\nbb\ncc");
/// let first = pieces.take().unwrap();
/// assert_eq!((&first.data[..], first.first_line, first.lines), (&b"a\nbb\n"[..], 1, 2));
/// pieces.push(b"c\nd");
/// let mut rest: Vec<_> = std::iter::from_fn(|| pieces.take()).collect();
/// rest.extend(pieces.finish());
/// let rest: Vec<(&[u8], u64, usize)> = rest.iter().map(|b| (&b.data[..], b.first_line, b.lines)).collect();
/// assert_eq!(rest, [(&b"ccc\n"[..], 3, 1), (&b"d"[..], 4, 1)]);
/// ```
pub struct LinePieces {
    origin: Arc<str>,
    piece_bytes: usize,
    /// The piece being gathered: whole lines, then the start of a line.
    buf: Vec<u8>,
    /// Newlines in `buf`.
    newlines: usize,
    /// The number of the first line in `buf`.
    next_line: u64,
    /// Bytes still to come, when known (a file's size): a small file's piece is allocated at
    /// its size, not at a whole piece's.
    left: Option<usize>,
}

impl LinePieces {
    pub fn new(origin: Arc<str>, piece_bytes: usize) -> Self {
        let piece_bytes = piece_bytes.max(1);
        LinePieces {
            origin,
            piece_bytes,
            buf: Vec::new(),
            newlines: 0,
            next_line: 1,
            left: None,
        }
    }

    /// The input is `total` bytes long (a hint: more or fewer may come).
    pub fn expect(&mut self, total: usize) {
        self.left = Some(total);
    }

    /// The room a buffer holding `have` bytes needs: a piece and one more read, or what is
    /// left of the input.
    fn room(&self, have: usize) -> usize {
        let full = self.piece_bytes + READ_BYTES;
        self.left.map_or(full, |left| full.min(have + left + 1))
    }

    fn came(&mut self, n: usize) {
        self.left = self.left.map(|left| left.saturating_sub(n));
    }

    /// Appends bytes that came.
    pub fn push(&mut self, data: &[u8]) {
        self.reserve();
        self.buf.extend_from_slice(data);
        self.newlines += memchr::memchr_iter(b'\n', data).count();
        self.came(data.len());
    }

    /// Reads at most `max` bytes of `reader` straight into the piece; returns how many (0 at
    /// the end).
    pub fn read_from(&mut self, reader: &mut impl Read, max: usize) -> std::io::Result<usize> {
        self.reserve();
        let start = self.buf.len();
        let n = reader.take(max as u64).read_to_end(&mut self.buf)?;
        self.newlines += memchr::memchr_iter(b'\n', &self.buf[start..]).count();
        self.came(n);
        Ok(n)
    }

    /// Room for a whole piece and one more read (or what is left of the input), so that a
    /// piece is not grown by copies.
    fn reserve(&mut self) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.room(0));
        }
    }

    /// A piece, once the bytes gathered hold one: the lines up to the first that ends at or
    /// past `piece_bytes`. What follows stays for the next piece.
    pub fn take(&mut self) -> Option<RawBatch> {
        if self.buf.len() < self.piece_bytes || self.newlines == 0 {
            return None;
        }
        let from = self.piece_bytes - 1;
        let end = from + memchr::memchr(b'\n', &self.buf[from..])? + 1;
        let rest_newlines = memchr::memchr_iter(b'\n', &self.buf[end..]).count();
        let mut next = Vec::with_capacity(self.room(self.buf.len() - end));
        next.extend_from_slice(&self.buf[end..]);
        let mut data = std::mem::replace(&mut self.buf, next);
        data.truncate(end);
        let lines = self.newlines - rest_newlines;
        self.newlines = rest_newlines;
        Some(self.batch(data, lines))
    }

    /// What is left at the end: the last lines, the last one perhaps without its newline.
    pub fn finish(&mut self) -> Option<RawBatch> {
        if self.buf.is_empty() {
            return None;
        }
        let data = std::mem::take(&mut self.buf);
        let lines = std::mem::take(&mut self.newlines) + usize::from(!data.ends_with(b"\n"));
        Some(self.batch(data, lines))
    }

    fn batch(&mut self, data: Vec<u8>, lines: usize) -> RawBatch {
        let first_line = self.next_line;
        self.next_line += lines as u64;
        RawBatch {
            origin: self.origin.clone(),
            first_line,
            lines,
            data: Bytes::from(data),
        }
    }
}

/// A local file read piece by piece: each call to [`Self::next_piece`] reads until a piece is
/// complete, or to the end. The file is opened by the first call, so that opening it and
/// reading its first pieces take one trip to a blocking thread, not two.
pub struct LocalLines {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    pieces: LinePieces,
    done: bool,
}

impl LocalLines {
    pub fn new(path: impl Into<std::path::PathBuf>, origin: Arc<str>, piece_bytes: usize) -> Self {
        LocalLines {
            path: path.into(),
            file: None,
            pieces: LinePieces::new(origin, piece_bytes),
            done: false,
        }
    }

    /// The next piece, or `None` after the last one.
    pub fn next_piece(&mut self) -> std::io::Result<Option<RawBatch>> {
        while !self.done {
            if let Some(piece) = self.pieces.take() {
                return Ok(Some(piece));
            }
            // Up to the piece's size, then a little at a time to the end of its last line: what
            // is read past that line is copied into the next piece.
            let piece_bytes = self.pieces.piece_bytes;
            let want = piece_bytes
                .saturating_sub(self.pieces.buf.len())
                .max(piece_bytes.min(16 << 10))
                .min(READ_BYTES);
            let file = match &mut self.file {
                Some(file) => file,
                None => {
                    let file = std::fs::File::open(&self.path)?;
                    if let Ok(meta) = file.metadata() {
                        self.pieces.expect(meta.len() as usize);
                    }
                    self.file.insert(file)
                }
            };
            if self.pieces.read_from(file, want)? == 0 {
                self.done = true;
            }
        }
        Ok(self.pieces.take().or_else(|| self.pieces.finish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Just;

    /// Pieces put back together are `data`; each but the last ends a line and holds at least
    /// `piece_bytes`; lines are numbered from 1 as counting `data`'s newlines does.
    fn check_pieces(out: &[RawBatch], data: &[u8], piece_bytes: usize) -> Result<(), String> {
        let joined: Vec<u8> = out.iter().flat_map(|b| b.data.to_vec()).collect();
        if joined != data {
            return Err(format!(
                "joined {} bytes, not the {} read",
                joined.len(),
                data.len()
            ));
        }
        let mut line = 1;
        for (i, b) in out.iter().enumerate() {
            let newlines = b.data.iter().filter(|&&c| c == b'\n').count();
            let expected = newlines + usize::from(!b.data.ends_with(b"\n"));
            if b.data.is_empty() || b.lines != expected || b.first_line != line {
                return Err(format!(
                    "piece {i}: {} bytes, lines {} (expected {expected}), first line {} (expected {line})",
                    b.data.len(),
                    b.lines,
                    b.first_line
                ));
            }
            line += b.lines as u64;
            if i + 1 < out.len() && (!b.data.ends_with(b"\n") || b.data.len() < piece_bytes) {
                return Err(format!(
                    "piece {i} of {} bytes cuts a line or is short",
                    b.data.len()
                ));
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Whatever the sizes the bytes come in.
        #[test]
        fn pieces_are_whole_lines_numbered_in_order(
            lines in proptest::collection::vec(proptest::prop_oneof![0usize..4, 0usize..3_000], 0..200),
            last_newline: bool,
            piece_bytes in 1usize..5_000,
            chunks in proptest::collection::vec(1usize..4_000, 1..8),
            // The input's length as announced: right, or wrong either way.
            hint in proptest::option::of(proptest::prop_oneof![Just(usize::MAX), 0usize..10_000]),
        ) {
            let mut data: Vec<u8> = lines
                .iter()
                .flat_map(|&n| std::iter::repeat_n(b'x', n).chain([b'\n']))
                .collect();
            if !last_newline && !data.is_empty() {
                data.pop();
            }
            let mut pieces = LinePieces::new("f".into(), piece_bytes);
            if let Some(h) = hint {
                pieces.expect(if h == usize::MAX { data.len() } else { h });
            }
            let mut out = Vec::new();
            let mut at = 0;
            let mut c = 0;
            while at < data.len() {
                let n = chunks[c % chunks.len()].min(data.len() - at);
                pieces.push(&data[at..at + n]);
                at += n;
                c += 1;
                out.extend(std::iter::from_fn(|| pieces.take()));
            }
            out.extend(pieces.finish());
            if let Err(e) = check_pieces(&out, &data, piece_bytes) {
                return Err(proptest::test_runner::TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn a_local_file_reads_as_pieces_of_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let mut data: Vec<u8> = (0..20_000)
            .flat_map(|i| {
                format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "y".repeat(i % 97)).into_bytes()
            })
            .collect();
        // A line longer than a piece, and a last line without its newline.
        data.extend(format!("{{\"long\":\"{}\"}}\n", "z".repeat(300_000)).into_bytes());
        data.extend(b"{\"last\":true}");
        std::fs::write(&path, &data).unwrap();
        for piece_bytes in [1, 100, 64 << 10, 1 << 20, 10 << 20] {
            let mut file = LocalLines::new(&path, "t".into(), piece_bytes);
            let read: Vec<RawBatch> = std::iter::from_fn(|| file.next_piece().unwrap()).collect();
            check_pieces(&read, &data, piece_bytes).unwrap();
            assert_eq!(read.iter().map(|b| b.lines).sum::<usize>(), 20_002);
            // Pieces stay near their size: a piece plus one read, or one long line.
            assert!(
                read.iter()
                    .all(|b| b.data.len() <= piece_bytes + READ_BYTES + 300_020),
                "piece_bytes {piece_bytes}"
            );
        }
    }

    #[test]
    fn an_empty_file_has_no_pieces_and_a_missing_one_fails_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.json");
        std::fs::write(&path, b"").unwrap();
        let mut file = LocalLines::new(&path, "e".into(), 1 << 20);
        assert!(file.next_piece().unwrap().is_none());
        // A missing file fails at its first read.
        let mut missing = LocalLines::new(dir.path().join("gone.json"), "g".into(), 1 << 20);
        assert!(missing.next_piece().is_err());
    }
}
