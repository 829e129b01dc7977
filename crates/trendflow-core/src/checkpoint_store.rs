//! The storage checkpoints are written to, as a trait: the runtime writes through it, and
//! connectors provide stores over object storage without the runtime knowing them.

use crate::BoxFuture;

pub type StoreResult<T> = Result<T, String>;

/// Durable, atomic storage of named objects (`/`-separated names relative to a root).
pub trait CheckpointStore: Send + Sync + 'static {
    /// Writes `data` under `name`, replacing any previous object, atomically and durably: a
    /// reader sees the old object or the new one, never part of one.
    fn put<'a>(&'a self, name: &'a str, data: &'a [u8]) -> BoxFuture<'a, StoreResult<()>>;
    /// Reads an object; `None` when it does not exist.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>>;
    /// Names of the objects directly under `dir`, relative to it, sorted.
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>>;
    /// Removes an object; removing one that does not exist is not an error.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// Where the store is, for messages.
    fn describe(&self) -> String;
}
