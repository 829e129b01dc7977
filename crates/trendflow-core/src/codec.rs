//! A small binary encoding for component state in checkpoints: varints, strings and byte
//! strings, appended to a buffer and read back in the same order. No schema: each component
//! writes a version byte first and reads its own fields back.

/// The most bytes a varint of a `u64` takes (7 bits each).
const VARINT_MAX: usize = 10;

/// Appends values to a state buffer.
#[derive(Debug, Default)]
pub struct StateWriter {
    buf: Vec<u8>,
}

impl StateWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer that appends to `prefix` (a magic number...) and has room for `capacity`
    /// more bytes: large states (a memory table) are then written without the copies a
    /// growing buffer makes.
    pub fn appending_to(mut prefix: Vec<u8>, capacity: usize) -> Self {
        prefix.reserve(capacity);
        StateWriter { buf: prefix }
    }

    pub fn u64(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }

    /// Signed values, zigzag-encoded so small negatives stay small.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.u64(((v << 1) ^ (v >> 63)) as u64)
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    pub fn opt_i64(&mut self, v: Option<i64>) -> &mut Self {
        self.bool(v.is_some());
        if let Some(v) = v {
            self.i64(v);
        }
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends what `fill` appends to the buffer, length-prefixed so that [`StateReader::bytes`]
    /// reads it back: for large values made by a writer (a table's IPC stream), without a copy
    /// in between. The length is not known before `fill` runs, so it takes the varint's widest
    /// form (ten bytes, the high groups zero), written in place afterwards: inserting a
    /// shorter prefix before the value moved all of it (48 MB for Q2's table with 24h/1min
    /// windows, at the last checkpoint of the run).
    pub fn bytes_from<E>(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<&mut Self, E> {
        let prefix = self.buf.len();
        self.buf.extend_from_slice(&[0; VARINT_MAX]);
        fill(&mut self.buf)?;
        let mut len = (self.buf.len() - prefix - VARINT_MAX) as u64;
        for (i, b) in self.buf[prefix..prefix + VARINT_MAX].iter_mut().enumerate() {
            let last = i == VARINT_MAX - 1;
            *b = (len as u8 & 0x7f) | if last { 0 } else { 0x80 };
            len >>= 7;
        }
        Ok(self)
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Why a state buffer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state is truncated or malformed at byte {0}")]
pub struct DecodeError(pub usize);

/// Reads values back in the order they were written.
#[derive(Debug)]
pub struct StateReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> StateReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        StateReader { buf, pos: 0 }
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(DecodeError(self.pos))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError(self.pos))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let z = self.u64()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError(self.pos))?;
        self.pos += 1;
        match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError(self.pos - 1)),
        }
    }

    pub fn opt_i64(&mut self) -> Result<Option<i64>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.i64()?)
        } else {
            None
        })
    }

    /// A length read from the buffer, checked against what is left so a garbled length
    /// cannot make the reader allocate gigabytes.
    pub fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(DecodeError(self.pos));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len()?;
        let v = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(v)
    }

    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError(at))
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Fails unless every byte was read: trailing bytes mean a format mismatch.
    pub fn end(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError(self.pos))
        }
    }
}

/// CRC-32 (IEEE 802.3, as zlib computes it): the checksum of checkpoint files. crc32fast
/// uses the CPU's carry-less multiply: checksumming a large checkpoint costs little.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// [`crc32`] of the concatenation of `parts`.
pub fn crc32_of_parts(parts: &[Vec<u8>]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bytes_from_a_writer_read_back_as_bytes() {
        for n in [0usize, 5, 127, 128, 300, 70_000] {
            let value: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut w = StateWriter::new();
            w.u64(7)
                .bytes_from(|buf| {
                    buf.extend_from_slice(&value);
                    Ok::<(), ()>(())
                })
                .unwrap()
                .str("after");
            let out = w.finish();
            let mut r = StateReader::new(&out);
            assert_eq!(r.u64().unwrap(), 7);
            assert_eq!(r.bytes().unwrap(), &value[..]);
            assert_eq!(r.str().unwrap(), "after");
            r.end().unwrap();
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn garbled_lengths_are_refused() {
        let mut w = StateWriter::new();
        w.u64(1_000_000);
        let buf = w.finish();
        assert!(StateReader::new(&buf).bytes().is_err());
        assert!(StateReader::new(&[0x80]).u64().is_err());
        assert!(StateReader::new(&[2]).bool().is_err());
    }

    proptest! {
        #[test]
        fn values_read_back_as_written(a: u64, b: i64, c: Option<i64>, s: String, v: Vec<u8>, f: bool) {
            let mut w = StateWriter::new();
            w.u64(a).i64(b).opt_i64(c).str(&s).bytes(&v).bool(f);
            let buf = w.finish();
            let mut r = StateReader::new(&buf);
            prop_assert_eq!(r.u64().unwrap(), a);
            prop_assert_eq!(r.i64().unwrap(), b);
            prop_assert_eq!(r.opt_i64().unwrap(), c);
            prop_assert_eq!(r.str().unwrap(), s.as_str());
            prop_assert_eq!(r.bytes().unwrap(), &v[..]);
            prop_assert_eq!(r.bool().unwrap(), f);
            prop_assert!(r.end().is_ok());
        }
    }
}
