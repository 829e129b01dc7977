//! The storage checkpoints are written to, as a trait: the runtime writes through it, and
//! connectors provide stores over object storage without the runtime knowing them.

use crate::BoxFuture;

pub type StoreResult<T> = Result<T, String>;

/// Durable, atomic storage of named objects (`/`-separated names relative to a root).
pub trait CheckpointStore: Send + Sync + 'static {
    /// Writes `data` under `name`, replacing any previous object, atomically and durably: a
    /// reader sees the old object or the new one, never part of one. The data is given, not
    /// lent: a checkpoint can hold a memory table of tens of MB, which a store keeping or
    /// uploading it would otherwise copy.
    fn put<'a>(&'a self, name: &'a str, data: Vec<u8>) -> BoxFuture<'a, StoreResult<()>>;
    /// [`Self::put`] of the concatenation of `parts`, which a store may write one after the
    /// other: a checkpoint's parts are its components' states, moved in rather than copied
    /// into one buffer (a memory table's state would otherwise be in memory twice).
    fn put_parts<'a>(
        &'a self,
        name: &'a str,
        parts: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        self.put(name, parts.concat())
    }
    /// Writes objects no checkpoint lists yet (state segments), durably once it returns but
    /// not atomically one by one: a crash may leave part of one, which no checkpoint lists
    /// and the next clean-up deletes. Without temporary names, a local directory syncs each
    /// file and then the directory once, not twice a file as [`Self::put`] must.
    fn put_new<'a>(&'a self, objects: Vec<(String, Vec<u8>)>) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            for (name, data) in objects {
                self.put(&name, data).await?;
            }
            Ok(())
        })
    }
    /// Reads an object; `None` when it does not exist.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Names of the objects directly under `dir`, relative to it, sorted.
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>>;
    /// Removes an object; removing one that does not exist is not an error.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// Where the store is, for messages.
    fn describe(&self) -> String;
    /// Removes what a writer killed in the middle of a `put` left behind (a temporary file
    /// it never renamed), which no later `put` may replace. Called when a pipeline starts on
    /// the store, when it is its only writer. Returns how many were removed.
    fn remove_partial_writes(&self) -> BoxFuture<'_, StoreResult<usize>> {
        Box::pin(async { Ok(0) })
    }
}
