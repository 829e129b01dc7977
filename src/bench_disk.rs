//! What this machine's disk takes to write an output durably, for `trendflow bench`: the
//! CSV of Q2 with 24h windows sliding every minute is 255 MB for 200k tweets (44 MB with
//! 3h/5min), and its rows exist only once the watermark closes their windows, so its write
//! and sync are a floor under that run's time that no code of ours can lower.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// Text written in pieces of this size (the file sink writes a few MB at a time).
const PIECE_BYTES: usize = 4 << 20;

/// CSV-like printable text in lines, not zeros (which a virtual disk may store for free).
fn text_piece() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..PIECE_BYTES)
        .map(|i| {
            if i % 64 == 63 {
                return b'\n';
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b' ' + (state % 94) as u8
        })
        .collect()
}

/// Writes `bytes` of `piece`, repeated, to `file` and syncs it.
fn write_and_sync(mut file: &std::fs::File, piece: &[u8], bytes: u64) -> std::io::Result<()> {
    let mut left = bytes as usize;
    while left > 0 {
        let n = left.min(piece.len());
        file.write_all(&piece[..n])?;
        left -= n;
    }
    file.sync_data()
}

/// Seconds to write `bytes` of text to a new file in `dir` and sync it, best of `runs`; the
/// files are removed.
pub fn durable_write_seconds(dir: &Path, bytes: u64, runs: usize) -> std::io::Result<f64> {
    let piece = text_piece();
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let file = tempfile::NamedTempFile::new_in(dir)?;
        let started = Instant::now();
        write_and_sync(file.as_file(), &piece, bytes)?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_written_has_the_length_asked_in_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let bytes = (PIECE_BYTES + 100) as u64;
        write_and_sync(&std::fs::File::create(&path).unwrap(), &text_piece(), bytes).unwrap();
        let text = std::fs::read(&path).unwrap();
        assert_eq!(text.len() as u64, bytes);
        assert!(
            text.iter()
                .all(|&b| b == b'\n' || (b' '..=b'~').contains(&b))
        );
        assert_eq!(
            text.iter().filter(|&&b| b == b'\n').count(),
            (PIECE_BYTES / 64) + 1
        );
    }

    #[test]
    fn the_measured_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let seconds = durable_write_seconds(dir.path(), 1000, 2).unwrap();
        assert!(seconds.is_finite());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
