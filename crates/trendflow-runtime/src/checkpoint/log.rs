//! The checkpoint directory: the offset log each source writes before it reads an epoch,
//! the checkpoints written once every sink committed an epoch, their loading and pruning.
//!
//! ```text
//! offsets/<source>/<epoch>                    what the source read in that epoch (OffsetEntry)
//! state/<epoch>.ckpt                          every component's state after that epoch (Checkpoint)
//! segments/<component>.<instance>.<segment>   a state segment some checkpoint lists
//! ```
//! Epochs are written with 20 digits so names sort in epoch order. A component's name is
//! written with `_XX` (hex) for every byte but letters, digits and `-`, so it cannot contain
//! the `.` after it, and two components never share a segment's object. Not `%XX`: object
//! stores escape `%` in keys (`object_store` writes `%2520` for `%20`), so the names listed
//! would not be the names written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};

use trendflow_core::failpoint;
use trendflow_core::state_segment::is_valid_segment_name;
use trendflow_core::{Epoch, SegmentData, StateSegment};

use super::format::{Checkpoint, FormatError, OffsetEntry};
use super::store::CheckpointStore;

/// The checkpoint directory of one pipeline.
#[derive(Clone)]
pub struct Checkpointer {
    store: Arc<dyn CheckpointStore>,
    keep: usize,
    /// The segment objects each checkpoint lists, by epoch, as written or read: a segment is
    /// deleted once no kept checkpoint lists it.
    listed: Arc<Mutex<BTreeMap<Epoch, Vec<String>>>>,
}

/// A state segment listed for the first time: written before the checkpoint that lists it.
#[derive(Debug)]
pub struct NewSegment {
    pub component: String,
    pub instance: u32,
    pub name: String,
    pub data: Vec<u8>,
}

/// Segments read at once by a restart (`CheckpointStore::put_new` writes them). A window count
/// with 24h windows sliding every minute has 1,440, each a request on object storage.
const SEGMENT_REQUESTS: usize = 16;

/// The store object of segment `name` of a component instance.
pub fn segment_object(component: &str, instance: u32, name: &str) -> String {
    let mut out = String::from("segments/");
    for b in component.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out.push_str(&format!(".{instance}.{name}"));
    out
}

/// A snapshot's segments as a checkpoint lists them: their names, and the bytes of those
/// listed for the first time (name, bytes).
pub(crate) type ListedSegments = (Vec<String>, Vec<(String, Vec<u8>)>);

/// [`ListedSegments`] of a snapshot; an error for a name a segment cannot have.
pub(crate) fn split_segments(segments: Vec<StateSegment>) -> Result<ListedSegments, String> {
    let mut names = Vec::with_capacity(segments.len());
    let mut new_segments = Vec::new();
    for s in segments {
        if !is_valid_segment_name(&s.name) {
            return Err(format!(
                "snapshot: `{}` cannot name a state segment",
                s.name
            ));
        }
        if let Some(data) = s.data {
            new_segments.push((s.name.clone(), data));
        }
        names.push(s.name);
    }
    Ok((names, new_segments))
}

/// The segment objects checkpoint `c` lists.
fn segment_objects(c: &Checkpoint) -> Vec<String> {
    c.components
        .iter()
        .flat_map(|s| {
            s.segments
                .iter()
                .map(|n| segment_object(&s.name, s.instance, n))
        })
        .collect()
}

fn epoch_of(name: &str) -> Option<Epoch> {
    name.strip_suffix(".ckpt").unwrap_or(name).parse().ok()
}

impl Checkpointer {
    /// `keep` checkpoints are kept (at least two, so a torn newest one has a predecessor).
    pub fn new(store: Arc<dyn CheckpointStore>, keep: usize) -> Self {
        Checkpointer {
            store,
            keep: keep.max(2),
            listed: Arc::default(),
        }
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// See [`CheckpointStore::remove_partial_writes`]: for a pipeline starting on the store.
    pub async fn remove_partial_writes(&self) -> Result<usize, String> {
        self.store.remove_partial_writes().await
    }

    fn state_name(epoch: Epoch) -> String {
        format!("state/{epoch:020}.ckpt")
    }

    fn offsets_dir(source: &str) -> String {
        format!("offsets/{source}")
    }

    /// Records what `source` reads in `epoch`, before it reads it.
    pub async fn write_offsets(
        &self,
        source: &str,
        epoch: Epoch,
        entry: &OffsetEntry,
    ) -> Result<(), String> {
        let name = format!("{}/{epoch:020}", Self::offsets_dir(source));
        self.store.put(&name, entry.encode()).await
    }

    /// Writes the segments `c` lists for the first time, then checkpoint `c`, then removes
    /// what no restart can need any more. Returns the bytes written.
    pub async fn write_checkpoint(
        &self,
        c: Checkpoint,
        new_segments: Vec<NewSegment>,
    ) -> Result<usize, String> {
        let mut size: usize = new_segments.iter().map(|s| s.data.len()).sum();
        let objects = new_segments
            .into_iter()
            .map(|s| (segment_object(&s.component, s.instance, &s.name), s.data))
            .collect();
        self.store.put_new(objects).await?;
        failpoint::check("after-segments-before-checkpoint")?;
        let name = Self::state_name(c.epoch);
        let epoch = c.epoch;
        let listed = segment_objects(&c);
        let parts = c.into_parts();
        size += parts.iter().map(Vec::len).sum::<usize>();
        self.store.put_parts(&name, parts).await?;
        self.listed.lock().unwrap().insert(epoch, listed);
        failpoint::check("after-checkpoint-before-prune")?;
        let kept = self.prune().await?;
        self.remove_unlisted_segments(&kept).await?;
        Ok(size)
    }

    /// The segment objects checkpoint `epoch` lists: none when it is torn (it is never
    /// restored from, so what it lists need not be kept); `None` when it is of a format this
    /// build cannot read (what it lists is unknown).
    async fn listed_by(&self, epoch: Epoch) -> Result<Option<Vec<String>>, String> {
        if let Some(l) = self.listed.lock().unwrap().get(&epoch) {
            return Ok(Some(l.clone()));
        }
        let listed = match self.store.get(&Self::state_name(epoch)).await? {
            Some(bytes) => match Checkpoint::decode(&bytes) {
                Ok(c) => segment_objects(&c),
                Err(FormatError::Corrupt) => Vec::new(),
                Err(FormatError::Version(_)) => return Ok(None),
            },
            None => Vec::new(),
        };
        self.listed.lock().unwrap().insert(epoch, listed.clone());
        Ok(Some(listed))
    }

    /// Deletes the segments no kept checkpoint lists: those of pruned checkpoints, and those
    /// written for a checkpoint a crash cut short. Deletes nothing while a kept checkpoint is
    /// of a format this build cannot read.
    async fn remove_unlisted_segments(&self, kept: &[Epoch]) -> Result<(), String> {
        let mut listed = HashSet::new();
        for e in kept {
            match self.listed_by(*e).await? {
                Some(l) => listed.extend(l),
                None => return Ok(()),
            }
        }
        self.listed
            .lock()
            .unwrap()
            .retain(|e, _| kept.binary_search(e).is_ok());
        for name in self.store.list("segments").await? {
            let object = format!("segments/{name}");
            if !listed.contains(&object) {
                self.store.delete(&object).await?;
            }
        }
        Ok(())
    }

    /// The segments checkpoint `c` lists, by component instance and name.
    pub async fn load_segments(
        &self,
        c: &Checkpoint,
    ) -> Result<HashMap<(String, u32), SegmentData>, String> {
        let wanted: Vec<(String, u32, String)> = c
            .components
            .iter()
            .flat_map(|s| {
                s.segments
                    .iter()
                    .map(|name| (s.name.clone(), s.instance, name.clone()))
            })
            .collect();
        let gets = wanted.into_iter().map(|(component, instance, name)| {
            let store = Arc::clone(&self.store);
            let (epoch, describe) = (c.epoch, self.describe());
            async move {
                let object = segment_object(&component, instance, &name);
                match store.get(&object).await? {
                    Some(data) => Ok((component, instance, name, data)),
                    None => Err(format!(
                        "checkpoint {epoch} lists state segment {object} of `{component}`, which is not in {describe}"
                    )),
                }
            }
        });
        let read: Vec<_> = futures::stream::iter(gets)
            .buffer_unordered(SEGMENT_REQUESTS)
            .try_collect()
            .await?;
        let mut out: HashMap<(String, u32), SegmentData> = HashMap::new();
        for (component, instance, name, data) in read {
            out.entry((component, instance))
                .or_default()
                .insert(name, data);
        }
        Ok(out)
    }

    async fn checkpoint_epochs(&self) -> Result<Vec<Epoch>, String> {
        let mut epochs: Vec<Epoch> = self
            .store
            .list("state")
            .await?
            .iter()
            .filter(|n| n.ends_with(".ckpt"))
            .filter_map(|n| epoch_of(n))
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// Keeps the newest `keep` checkpoints and the offset entries after the oldest of them
    /// (a fall-back to it replays them). Nothing grows with the length of the run. Returns
    /// the epochs of the checkpoints kept.
    pub async fn prune(&self) -> Result<Vec<Epoch>, String> {
        let mut epochs = self.checkpoint_epochs().await?;
        if epochs.len() <= self.keep {
            return Ok(epochs);
        }
        let oldest_kept = epochs[epochs.len() - self.keep];
        for (i, e) in epochs[..epochs.len() - self.keep].iter().enumerate() {
            self.store.delete(&Self::state_name(*e)).await?;
            if i == 0 {
                failpoint::check("checkpoint-during-prune")?;
            }
        }
        for source in self.sources().await? {
            let dir = Self::offsets_dir(&source);
            for name in self.store.list(&dir).await? {
                if epoch_of(&name).is_some_and(|e| e <= oldest_kept) {
                    self.store.delete(&format!("{dir}/{name}")).await?;
                }
            }
        }
        Ok(epochs.split_off(epochs.len() - self.keep))
    }

    /// Sources with an offset log. Source names are recorded in `sources`, one object each,
    /// because a store lists objects, not directories.
    async fn sources(&self) -> Result<Vec<String>, String> {
        self.store.list("sources").await
    }

    /// Registers a source, so pruning finds its offset log.
    pub async fn register_source(&self, source: &str) -> Result<(), String> {
        let name = format!("sources/{source}");
        if self.store.get(&name).await?.is_none() {
            self.store.put(&name, Vec::new()).await?;
        }
        Ok(())
    }

    /// The newest readable checkpoint of `pipeline`. A torn or corrupt one is skipped with a
    /// warning (the previous one is used); one of another format version or another pipeline
    /// is an error, as is a directory whose checkpoints are all unreadable.
    pub async fn load_latest(&self, pipeline: &str) -> Result<Option<Checkpoint>, String> {
        let epochs = self.checkpoint_epochs().await?;
        let mut skipped = Vec::new();
        for e in epochs.iter().rev() {
            let name = Self::state_name(*e);
            let Some(bytes) = self.store.get(&name).await? else {
                continue;
            };
            match Checkpoint::decode(&bytes) {
                Ok(c) if c.pipeline != pipeline => {
                    return Err(format!(
                        "checkpoint {} belongs to pipeline `{}`, not `{pipeline}`: use another checkpoint.path",
                        self.describe(),
                        c.pipeline
                    ));
                }
                Ok(c) => {
                    if !skipped.is_empty() {
                        tracing::warn!(
                            skipped = skipped.join(", "),
                            used = name,
                            "newest checkpoint unreadable; using the previous one"
                        );
                    }
                    return Ok(Some(c));
                }
                Err(FormatError::Corrupt) => {
                    tracing::warn!(checkpoint = name, "checkpoint is torn or corrupt");
                    skipped.push(name);
                }
                Err(e @ FormatError::Version(_)) => {
                    return Err(format!("checkpoint {name} in {}: {e}", self.describe()));
                }
            }
        }
        if skipped.is_empty() {
            Ok(None)
        } else {
            Err(format!(
                "no readable checkpoint in {}: {} torn or corrupt",
                self.describe(),
                skipped.join(", ")
            ))
        }
    }

    /// The offset entries of `source` after `epoch`, in order: epochs to replay exactly.
    pub async fn offsets_after(
        &self,
        source: &str,
        epoch: Option<Epoch>,
    ) -> Result<Vec<(Epoch, OffsetEntry)>, String> {
        let dir = Self::offsets_dir(source);
        let mut out = Vec::new();
        for name in self.store.list(&dir).await? {
            let Some(e) = epoch_of(&name) else { continue };
            if epoch.is_some_and(|c| e <= c) {
                continue;
            }
            let path = format!("{dir}/{name}");
            let Some(bytes) = self.store.get(&path).await? else {
                continue;
            };
            let entry = OffsetEntry::decode(&bytes)
                .map_err(|err| format!("offset entry {path} in {}: {err}", self.describe()))?;
            out.push((e, entry));
        }
        out.sort_by_key(|(e, _)| *e);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::format::ComponentState;
    use crate::checkpoint::store::LocalDirStore;

    /// Checkpoint `epoch` of a table sink listing `segments`.
    fn listing(epoch: Epoch, segments: &[&str]) -> Checkpoint {
        Checkpoint {
            epoch,
            pipeline: "p".into(),
            created_ms: 0,
            watermark: None,
            components: vec![ComponentState {
                name: "top tags/1".into(),
                instance: 0,
                instances: 1,
                signature: "memory table".into(),
                state: vec![epoch as u8],
                segments: segments.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    fn new(name: &str) -> NewSegment {
        NewSegment {
            component: "top tags/1".into(),
            instance: 0,
            name: name.into(),
            data: name.as_bytes().to_vec(),
        }
    }

    async fn stored(store: &LocalDirStore) -> Vec<String> {
        store.list("segments").await.unwrap()
    }

    #[tokio::test]
    async fn segments_are_written_once_and_deleted_when_no_kept_checkpoint_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDirStore::new(dir.path()));
        let c = Checkpointer::new(store.clone(), 2);
        // The component's name is escaped: its `/` would make another directory, and its
        // `_` must not be read as an escape.
        assert_eq!(
            segment_object("top tags/1", 0, "a"),
            "segments/top_20tags_2F1.0.a"
        );
        assert_eq!(segment_object("a_b.c", 2, "d"), "segments/a_5Fb_2Ec.2.d");
        c.write_checkpoint(listing(0, &["a"]), vec![new("a")])
            .await
            .unwrap();
        c.write_checkpoint(listing(1, &["a", "b"]), vec![new("b")])
            .await
            .unwrap();
        assert_eq!(
            stored(&store).await,
            ["top_20tags_2F1.0.a", "top_20tags_2F1.0.b"]
        );
        // `a` is merged into `c`: checkpoint 1, still kept, lists `a`.
        c.write_checkpoint(listing(2, &["c"]), vec![new("c")])
            .await
            .unwrap();
        assert_eq!(stored(&store).await.len(), 3);
        // Checkpoint 1 is pruned: `a` and `b` go.
        c.write_checkpoint(listing(3, &["c", "d"]), vec![new("d")])
            .await
            .unwrap();
        assert_eq!(
            stored(&store).await,
            ["top_20tags_2F1.0.c", "top_20tags_2F1.0.d"]
        );
        let latest = c.load_latest("p").await.unwrap().unwrap();
        let segments = c.load_segments(&latest).await.unwrap();
        let table = &segments[&("top tags/1".to_string(), 0)];
        assert_eq!(table.len(), 2);
        assert_eq!(table["d"], b"d");

        // A process that starts on the directory (nothing cached) keeps what the kept
        // checkpoints list, and removes a segment a crash left before its checkpoint.
        store
            .put(&segment_object("top tags/1", 0, "e"), b"e".to_vec())
            .await
            .unwrap();
        let restarted = Checkpointer::new(store.clone(), 2);
        restarted
            .write_checkpoint(listing(4, &["d", "f"]), vec![new("f")])
            .await
            .unwrap();
        assert_eq!(
            stored(&store).await,
            [
                "top_20tags_2F1.0.c",
                "top_20tags_2F1.0.d",
                "top_20tags_2F1.0.f"
            ]
        );

        // A listed segment that is gone: the restore says which, and where.
        store
            .delete(&segment_object("top tags/1", 0, "f"))
            .await
            .unwrap();
        let latest = restarted.load_latest("p").await.unwrap().unwrap();
        let err = restarted.load_segments(&latest).await.unwrap_err();
        assert!(
            err.contains("checkpoint 4") && err.contains("segments/top_20tags_2F1.0.f"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn no_segment_is_deleted_while_a_kept_checkpoint_is_of_an_unknown_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalDirStore::new(dir.path()));
        let c = Checkpointer::new(store.clone(), 3);
        c.write_checkpoint(listing(0, &["a"]), vec![new("a")])
            .await
            .unwrap();
        c.write_checkpoint(listing(1, &["b"]), vec![new("b")])
            .await
            .unwrap();
        // Checkpoint 0 as a later build would write it (version 3), and a segment no
        // checkpoint lists.
        let mut bytes = listing(0, &["a"]).encode();
        bytes[8] = 3;
        let n = bytes.len() - 4;
        let crc = trendflow_core::codec::crc32(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        store
            .put("state/00000000000000000000.ckpt", bytes)
            .await
            .unwrap();
        store
            .put(&segment_object("top tags/1", 0, "z"), b"z".to_vec())
            .await
            .unwrap();
        let restarted = Checkpointer::new(store.clone(), 3);
        restarted
            .write_checkpoint(listing(2, &["c"]), vec![new("c")])
            .await
            .unwrap();
        assert_eq!(stored(&store).await.len(), 4, "{:?}", stored(&store).await);
    }
}
