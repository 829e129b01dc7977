//! The real recordings vendored with this crate (`tests/data/`, provenance and licences in
//! `tests/data/PROVENANCE.md`), for the replay servers.

use std::path::{Path, PathBuf};

/// `tests/data` of this crate.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn lines_of(relative: &str) -> Vec<String> {
    let path = data_dir().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// 152 production Jetstream v1 events (every collection: posts, likes, reposts, follows,
/// deletions, an identity and an account event), in the order they were sent.
pub fn jetstream_corpus() -> Vec<String> {
    lines_of("bluesky/jetstream-v1-corpus.ndjson")
}

/// 10 production Jetstream v1 events, one of each kind of event and operation.
pub fn jetstream_golden() -> Vec<String> {
    lines_of("bluesky/jetstream-v1-golden.ndjson")
}

/// 20 Mastodon statuses (REST entities recorded against fosstodon.org and datasci.social),
/// as recorded (not in id order).
pub fn mastodon_statuses() -> Vec<String> {
    lines_of("mastodon/rtoot-statuses.ndjson")
}
