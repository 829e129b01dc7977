//! Checkpoints on object storage (S3 and compatible, or any `object_store` backend). A `put`
//! of one object is atomic there, so no temporary name is needed: a reader sees the previous
//! version or the new one.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use trendflow_core::BoxFuture;
use trendflow_core::checkpoint_store::{CheckpointStore, StoreResult};

pub struct ObjectStoreCheckpoints {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    describe: String,
}

impl ObjectStoreCheckpoints {
    /// Checkpoints under `prefix` (e.g. `checkpoints/pipeline`) of `store`; `describe` says
    /// where that is in messages (e.g. `s3://bucket/checkpoints/pipeline`).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, describe: &str) -> Self {
        ObjectStoreCheckpoints {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            describe: describe.to_string(),
        }
    }

    fn path(&self, name: &str) -> StorePath {
        if self.prefix.is_empty() {
            StorePath::from(name)
        } else {
            StorePath::from(format!("{}/{name}", self.prefix))
        }
    }
}

impl CheckpointStore for ObjectStoreCheckpoints {
    fn put<'a>(&'a self, name: &'a str, data: Vec<u8>) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.store
                .put(&self.path(name), PutPayload::from(data))
                .await
                .map(|_| ())
                .map_err(|e| format!("writing {}/{name}: {e}", self.describe))
        })
    }

    fn put_parts<'a>(
        &'a self,
        name: &'a str,
        parts: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let payload: PutPayload = parts.into_iter().map(bytes::Bytes::from).collect();
            self.store
                .put(&self.path(name), payload)
                .await
                .map(|_| ())
                .map_err(|e| format!("writing {}/{name}: {e}", self.describe))
        })
    }

    /// Each object is a request: several at a time.
    fn put_new<'a>(&'a self, objects: Vec<(String, Vec<u8>)>) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            futures::stream::iter(objects)
                .map(|(name, data)| async move { self.put(&name, data).await })
                .buffer_unordered(16)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            let err = |e: object_store::Error| format!("reading {}/{name}: {e}", self.describe);
            match self.store.get(&self.path(name)).await {
                Ok(r) => Ok(Some(r.bytes().await.map_err(err)?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(err(e)),
            }
        })
    }

    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        Box::pin(async move {
            let prefix = self.path(dir.trim_end_matches('/'));
            let mut names = Vec::new();
            let mut stream = self.store.list(Some(&prefix));
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(|e| format!("listing {}/{dir}: {e}", self.describe))?;
                // Objects directly under `dir` only.
                let Some(rest) = meta
                    .location
                    .as_ref()
                    .strip_prefix(prefix.as_ref())
                    .and_then(|r| r.strip_prefix('/'))
                else {
                    continue;
                };
                if !rest.contains('/') {
                    names.push(rest.to_string());
                }
            }
            names.sort();
            Ok(names)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            match self.store.delete(&self.path(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(format!("removing {}/{name}: {e}", self.describe)),
            }
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn objects_round_trip_list_by_directory_and_delete() {
        let s = ObjectStoreCheckpoints::new(Arc::new(InMemory::new()), "ck/p", "memory://ck/p");
        s.put("state/2.ckpt", b"two".to_vec()).await.unwrap();
        s.put("state/1.ckpt", b"one".to_vec()).await.unwrap();
        s.put("offsets/src/1", b"o".to_vec()).await.unwrap();
        assert_eq!(s.list("state").await.unwrap(), ["1.ckpt", "2.ckpt"]);
        assert_eq!(s.list("offsets").await.unwrap(), Vec::<String>::new());
        assert_eq!(s.get("state/2.ckpt").await.unwrap().unwrap(), b"two");
        assert_eq!(s.get("state/3.ckpt").await.unwrap(), None);
        s.put("state/2.ckpt", b"two again".to_vec()).await.unwrap();
        assert_eq!(s.get("state/2.ckpt").await.unwrap().unwrap(), b"two again");
        s.delete("state/2.ckpt").await.unwrap();
        s.delete("state/2.ckpt").await.unwrap();
        assert_eq!(s.list("state").await.unwrap(), ["1.ckpt"]);
    }

    #[tokio::test]
    async fn a_state_segments_name_is_listed_as_written_and_a_percent_would_not_be() {
        // The checkpointer deletes the segments it does not find listed by the names it
        // wrote (trendflow_runtime::checkpoint::log::segment_object).
        let s = ObjectStoreCheckpoints::new(Arc::new(InMemory::new()), "ck", "memory://ck");
        let name = "top_20tags_2F1.0.00000000000000000003-0";
        s.put(&format!("segments/{name}"), b"rows".to_vec())
            .await
            .unwrap();
        assert_eq!(s.list("segments").await.unwrap(), [name]);
        s.put("other/top%20tags", Vec::new()).await.unwrap();
        assert_eq!(s.list("other").await.unwrap(), ["top%2520tags"]);
    }
}
