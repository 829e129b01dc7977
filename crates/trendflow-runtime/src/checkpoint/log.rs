//! The checkpoint directory: the offset log each source writes before it reads an epoch,
//! the checkpoints written once every sink committed an epoch, their loading and pruning.
//!
//! ```text
//! offsets/<source>/<epoch>   what the source read in that epoch (OffsetEntry)
//! state/<epoch>.ckpt         every component's state after that epoch (Checkpoint)
//! ```
//! Epochs are written with 20 digits so names sort in epoch order.

use std::sync::Arc;

use trendflow_core::Epoch;
use trendflow_core::failpoint;

use super::format::{Checkpoint, FormatError, OffsetEntry};
use super::store::CheckpointStore;

/// The checkpoint directory of one pipeline.
#[derive(Clone)]
pub struct Checkpointer {
    store: Arc<dyn CheckpointStore>,
    keep: usize,
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

    /// Writes checkpoint `c`, then removes what no restart can need any more. Returns the
    /// checkpoint's size in bytes.
    pub async fn write_checkpoint(&self, c: Checkpoint) -> Result<usize, String> {
        let name = Self::state_name(c.epoch);
        let parts = c.into_parts();
        let size = parts.iter().map(Vec::len).sum();
        self.store.put_parts(&name, parts).await?;
        failpoint::check("after-checkpoint-before-prune")?;
        self.prune().await?;
        Ok(size)
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
    /// (a fall-back to it replays them). Nothing grows with the length of the run.
    pub async fn prune(&self) -> Result<(), String> {
        let epochs = self.checkpoint_epochs().await?;
        if epochs.len() <= self.keep {
            return Ok(());
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
        Ok(())
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
