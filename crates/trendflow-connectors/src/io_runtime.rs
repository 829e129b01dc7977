//! A small tokio runtime of its own for sinks whose I/O is asynchronous (object storage,
//! PostgreSQL) behind the synchronous [`trendflow_core::Sink`] trait.
//!
//! Why not the pipeline's runtime: a sink method runs inside an actor, on a runtime thread,
//! where `block_on` panics and `block_in_place` needs a multi-threaded runtime (tests use
//! single-threaded ones). A second runtime with one worker thread runs the future; the calling
//! thread waits for it, which is what a synchronous sink does anyway (the file sink blocks on
//! `fsync`). Connections (a PostgreSQL client's connection task) live on that runtime between
//! calls.

use std::future::Future;

use trendflow_core::OperatorError;

pub struct IoRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl IoRuntime {
    /// A runtime with one worker thread named after `name`.
    pub fn new(name: &str) -> Result<Self, OperatorError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{name}-io"))
            .enable_all()
            .build()
            .map_err(|e| OperatorError::new(format!("{name}: starting its I/O runtime: {e}")))?;
        Ok(IoRuntime {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` to completion on the I/O runtime and returns its output. Callable from
    /// any thread, inside another runtime or not.
    pub fn run<F>(&self, future: F) -> Result<F::Output, OperatorError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("runtime taken only on drop");
        let handle = runtime.spawn(future);
        futures::executor::block_on(handle)
            .map_err(|e| OperatorError::new(format!("an I/O task failed: {e}")))
    }

    /// A handle to spawn long-lived tasks (a connection) on the I/O runtime.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("runtime taken only on drop")
            .handle()
            .clone()
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_futures_from_inside_a_single_threaded_runtime() {
        let io = IoRuntime::new("test").unwrap();
        let v = io
            .run(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                41 + 1
            })
            .unwrap();
        assert_eq!(v, 42);
        drop(io);
    }

    #[test]
    fn runs_futures_from_a_plain_thread() {
        let io = IoRuntime::new("test").unwrap();
        assert_eq!(io.run(async { "ok" }).unwrap(), "ok");
    }
}
