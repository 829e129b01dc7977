//! The on-disk format of a checkpoint (see docs/checkpoints.md):
//!
//! ```text
//! "TFCKPT\n\0"   8 bytes of magic
//! payload        varint-encoded fields, version first (trendflow_core::codec)
//! crc32          4 bytes, little-endian, of magic + payload
//! ```
//!
//! A file that is short, has another magic or a wrong checksum is torn or corrupt; the loader
//! then falls back to the previous checkpoint.
//!
//! Version 2 lists, after each component's state, the names of the state segments it needs
//! (trendflow_core::state_segment); version 1 (no segments) is still read.

use trendflow_core::codec::{StateReader, StateWriter, crc32, crc32_of_parts};
use trendflow_core::{Epoch, EventTime};

pub const MAGIC: &[u8; 8] = b"TFCKPT\n\0";
/// Bumped on any change of the layout below; versions this build cannot read are refused
/// with a message.
pub const FORMAT_VERSION: u64 = 2;
/// The first version whose components list state segments.
const SEGMENTS_SINCE: u64 = 2;
/// The offset log's entries, whose layout has not changed since version 1.
const OFFSET_ENTRY_VERSION: u64 = 1;

/// The saved state of one component instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentState {
    pub name: String,
    pub instance: u32,
    /// How many parallel instances the component had.
    pub instances: u32,
    /// What the state is (kind and parameters), compared on restore.
    pub signature: String,
    pub state: Vec<u8>,
    /// The state segments the state refers to, by name, stored apart from the checkpoint.
    pub segments: Vec<String>,
}

/// Everything needed to resume after epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub epoch: Epoch,
    pub pipeline: String,
    /// Wall-clock time it was taken, ms since the Unix epoch.
    pub created_ms: i64,
    pub watermark: Option<EventTime>,
    pub components: Vec<ComponentState>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("torn or corrupt (checksum or length mismatch)")]
    Corrupt,
    #[error("format version {0}, this build reads versions 1 to {FORMAT_VERSION}")]
    Version(u64),
}

impl Checkpoint {
    /// The checkpoint as one buffer (see [`Self::into_parts`]).
    pub fn encode(self) -> Vec<u8> {
        self.into_parts().concat()
    }

    /// The encoding, in parts whose concatenation is the checkpoint: each component's state
    /// is moved into the parts, not copied (a memory table of tens of MB would otherwise be
    /// in memory twice while its checkpoint is written).
    pub fn into_parts(self) -> Vec<Vec<u8>> {
        let mut parts = Vec::with_capacity(2 * self.components.len() + 2);
        let mut w = StateWriter::appending_to(MAGIC.to_vec(), 256);
        w.u64(FORMAT_VERSION)
            .u64(self.epoch)
            .str(&self.pipeline)
            .i64(self.created_ms)
            .opt_i64(self.watermark)
            .u64(self.components.len() as u64);
        for c in self.components {
            // As `bytes(&c.state)` writes it: the length, then the state.
            w.str(&c.name)
                .u64(u64::from(c.instance))
                .u64(u64::from(c.instances))
                .str(&c.signature)
                .u64(c.state.len() as u64);
            parts.push(std::mem::take(&mut w).finish());
            parts.push(c.state);
            w.u64(c.segments.len() as u64);
            for s in &c.segments {
                w.str(s);
            }
        }
        parts.push(w.finish());
        let crc = crc32_of_parts(&parts);
        parts.push(crc.to_le_bytes().to_vec());
        parts
    }

    pub fn decode(data: &[u8]) -> Result<Checkpoint, FormatError> {
        if data.len() < MAGIC.len() + 4 || &data[..MAGIC.len()] != MAGIC {
            return Err(FormatError::Corrupt);
        }
        let (body, crc) = data.split_at(data.len() - 4);
        if crc32(body).to_le_bytes() != crc {
            return Err(FormatError::Corrupt);
        }
        let mut r = StateReader::new(&body[MAGIC.len()..]);
        let bad = |_| FormatError::Corrupt;
        let version = r.u64().map_err(bad)?;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(FormatError::Version(version));
        }
        let epoch = r.u64().map_err(bad)?;
        let pipeline = r.str().map_err(bad)?.to_string();
        let created_ms = r.i64().map_err(bad)?;
        let watermark = r.opt_i64().map_err(bad)?;
        let n = r.len().map_err(bad)?;
        let mut components = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = ComponentState {
                name: r.str().map_err(bad)?.to_string(),
                instance: r.u64().map_err(bad)? as u32,
                instances: r.u64().map_err(bad)? as u32,
                signature: r.str().map_err(bad)?.to_string(),
                state: r.bytes().map_err(bad)?.to_vec(),
                segments: Vec::new(),
            };
            if version >= SEGMENTS_SINCE {
                for _ in 0..r.len().map_err(bad)? {
                    c.segments.push(r.str().map_err(bad)?.to_string());
                }
            }
            components.push(c);
        }
        r.end().map_err(bad)?;
        Ok(Checkpoint {
            epoch,
            pipeline,
            created_ms,
            watermark,
            components,
        })
    }
}

/// An entry of the offset log: what a source read (or will read) in one epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetEntry {
    /// The source's description of its input (files, partition offsets).
    Input(Vec<u8>),
    /// An epoch without data that still moves the watermark (Spark's no-data batch).
    NoData,
    /// The last epoch of a bounded input, carrying the final watermark.
    End,
}

impl OffsetEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::new();
        w.u64(OFFSET_ENTRY_VERSION);
        match self {
            OffsetEntry::Input(b) => w.u64(0).bytes(b),
            OffsetEntry::NoData => w.u64(1),
            OffsetEntry::End => w.u64(2),
        };
        let mut out = w.finish();
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Result<OffsetEntry, FormatError> {
        if data.len() < 4 {
            return Err(FormatError::Corrupt);
        }
        let (body, crc) = data.split_at(data.len() - 4);
        if crc32(body).to_le_bytes() != crc {
            return Err(FormatError::Corrupt);
        }
        let mut r = StateReader::new(body);
        let bad = |_| FormatError::Corrupt;
        let version = r.u64().map_err(bad)?;
        if version != OFFSET_ENTRY_VERSION {
            return Err(FormatError::Version(version));
        }
        let entry = match r.u64().map_err(bad)? {
            0 => OffsetEntry::Input(r.bytes().map_err(bad)?.to_vec()),
            1 => OffsetEntry::NoData,
            2 => OffsetEntry::End,
            _ => return Err(FormatError::Corrupt),
        };
        r.end().map_err(bad)?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            epoch: 42,
            pipeline: "p".into(),
            created_ms: 1_700_000_000_000,
            watermark: Some(123),
            components: vec![ComponentState {
                name: "counts".into(),
                instance: 0,
                instances: 1,
                signature: "windowed_count".into(),
                state: vec![1, 2, 3],
                segments: vec!["00000000000000000041-0".into(), "x".into()],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(Checkpoint::decode(&c.clone().encode()).unwrap(), c);
        for e in [
            OffsetEntry::Input(b"abc".to_vec()),
            OffsetEntry::NoData,
            OffsetEntry::End,
        ] {
            assert_eq!(OffsetEntry::decode(&e.encode()).unwrap(), e);
        }
    }

    /// `sample()` in version `version`'s layout, written field by field.
    fn sample_in_version(version: u64) -> Vec<u8> {
        let mut w = StateWriter::appending_to(MAGIC.to_vec(), 64);
        w.u64(version)
            .u64(42)
            .str("p")
            .i64(1_700_000_000_000)
            .opt_i64(Some(123))
            .u64(1);
        w.str("counts")
            .u64(0)
            .u64(1)
            .str("windowed_count")
            .bytes(&[1, 2, 3]);
        if version >= 2 {
            w.u64(2).str("00000000000000000041-0").str("x");
        }
        let mut bytes = w.finish();
        let crc = crc32(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn the_layout_is_as_documented_and_version_1_is_still_read() {
        assert_eq!(sample().encode(), sample_in_version(2));
        let mut without_segments = sample();
        without_segments.components[0].segments.clear();
        assert_eq!(
            Checkpoint::decode(&sample_in_version(1)).unwrap(),
            without_segments
        );
        assert_eq!(
            Checkpoint::decode(&sample_in_version(3)),
            Err(FormatError::Version(3))
        );
    }

    #[test]
    fn an_empty_checkpoint_is_the_bytes_docs_checkpoints_md_shows() {
        let c = Checkpoint {
            epoch: 0,
            pipeline: "p".into(),
            created_ms: 0,
            watermark: None,
            components: vec![],
        };
        let hex: Vec<String> = c.encode().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex.join(" "),
            "54 46 43 4b 50 54 0a 00 02 00 01 70 00 00 00 e7 39 54 b7"
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_detected() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert_eq!(Checkpoint::decode(&bytes[..n]), Err(FormatError::Corrupt));
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(Checkpoint::decode(&b).is_err(), "flip at {i} undetected");
        }
    }
}
