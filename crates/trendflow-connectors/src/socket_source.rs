//! Lines from a TCP server (Spark's `socket` source: host and port, for tests and demos).
//!
//! Spark's socket source cannot replay: after a crash, what was in flight is lost. Here an
//! epoch's lines are recorded in the offset log themselves (a write-ahead log), so a replay
//! reads exactly the same lines. Meant for modest rates: every byte is written twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use trendflow_core::codec::{StateReader, StateWriter};
use trendflow_core::{
    Batch, BatchSender, BoxFuture, Epoch, EpochPlan, OperatorError, RawBatch, Source,
};

#[derive(Default)]
struct Received {
    data: Vec<u8>,
    /// The server closed the connection.
    closed: bool,
}

pub struct SocketSource {
    address: String,
    origin: Arc<str>,
    /// Stop when the server closes the connection (the `available_now` trigger).
    bounded: bool,
    max_bytes_per_trigger: usize,
    received: Arc<Mutex<Received>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    /// Lines read so far (positions of dead letters).
    lines: u64,
}

impl SocketSource {
    pub fn new(host: &str, port: u16, bounded: bool, max_bytes_per_trigger: usize) -> Self {
        let address = format!("{host}:{port}");
        SocketSource {
            origin: Arc::from(format!("socket:{address}")),
            address,
            bounded,
            max_bytes_per_trigger: max_bytes_per_trigger.max(1),
            received: Arc::default(),
            reader: None,
            lines: 0,
        }
    }

    /// Connects (retrying each second until the server is up) and reads in the background.
    fn start(&mut self) {
        if self.reader.is_some() {
            return;
        }
        let (address, received) = (self.address.clone(), self.received.clone());
        self.reader = Some(tokio::spawn(async move {
            let mut stream = loop {
                match tokio::net::TcpStream::connect(&address).await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(address, error = %e, "socket source: cannot connect; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.lock().unwrap().data.extend_from_slice(&buf[..n]),
                }
            }
            received.lock().unwrap().closed = true;
        }));
    }
}

impl Drop for SocketSource {
    fn drop(&mut self) {
        if let Some(r) = &self.reader {
            r.abort();
        }
    }
}

impl Source for SocketSource {
    fn plan_epoch(&mut self, _epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>> {
        self.start();
        let mut r = self.received.lock().unwrap();
        // Complete lines only (all of it once the server has closed).
        let limit = r.data.len().min(self.max_bytes_per_trigger);
        let cut = if r.closed && r.data.len() <= self.max_bytes_per_trigger {
            r.data.len()
        } else {
            memchr::memrchr(b'\n', &r.data[..limit]).map_or(0, |i| i + 1)
        };
        let plan = if cut > 0 {
            EpochPlan::Input(r.data.drain(..cut).collect())
        } else if r.closed && self.bounded {
            EpochPlan::Exhausted
        } else {
            EpochPlan::Idle
        };
        Box::pin(async move { Ok(plan) })
    }

    fn read_epoch<'a>(
        &'a mut self,
        _epoch: Epoch,
        input: &'a [u8],
        out: &'a mut dyn BatchSender,
    ) -> BoxFuture<'a, Result<(), OperatorError>> {
        Box::pin(async move {
            let lines =
                memchr::memchr_iter(b'\n', input).count() + usize::from(!input.ends_with(b"\n"));
            out.send(Batch::Raw(Arc::new(RawBatch {
                origin: self.origin.clone(),
                first_line: self.lines + 1,
                lines,
                data: bytes::Bytes::copy_from_slice(input),
            })))
            .await?;
            self.lines += lines as u64;
            Ok(())
        })
    }

    fn describe_offset(&self) -> String {
        format!("{} lines from {}", self.lines, self.address)
    }

    fn state_signature(&self) -> Option<String> {
        Some(format!("socket v1 {}", self.address))
    }

    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(1).u64(self.lines);
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let mut r = StateReader::new(state);
        let bad = |e| OperatorError::new(format!("socket source state: {e}"));
        if r.u64().map_err(bad)? != 1 {
            return Err(OperatorError::new("socket source state: unknown version"));
        }
        self.lines = r.u64().map_err(bad)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    struct Collect(Vec<(u64, Vec<u8>)>);
    impl BatchSender for Collect {
        fn send(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), OperatorError>> {
            if let Batch::Raw(r) = batch {
                self.0.push((r.first_line, r.data.to_vec()));
            }
            Box::pin(async { Ok(()) })
        }
        fn dead_letter(
            &mut self,
            _: trendflow_core::DeadLetter,
        ) -> BoxFuture<'_, Result<(), OperatorError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn reads_whole_lines_until_the_server_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"one\ntw").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.write_all(b"o\nthree").await.unwrap();
        });
        let mut src = SocketSource::new("127.0.0.1", port, true, 1 << 20);
        let mut out = Collect(Vec::new());
        let mut epoch = 0;
        loop {
            match src.plan_epoch(epoch).await.unwrap() {
                EpochPlan::Input(i) => {
                    src.read_epoch(epoch, &i, &mut out).await.unwrap();
                    epoch += 1;
                }
                EpochPlan::Idle => tokio::time::sleep(Duration::from_millis(10)).await,
                EpochPlan::Exhausted => break,
            }
        }
        let text: Vec<u8> = out.0.iter().flat_map(|(_, d)| d.clone()).collect();
        assert_eq!(text, b"one\ntwo\nthree");
        // Line numbers continue across epochs; no epoch splits a line.
        assert!(
            out.0
                .iter()
                .all(|(_, d)| d.ends_with(b"\n") || d.ends_with(b"three"))
        );
        let mut line = 1;
        for (first, d) in &out.0 {
            assert_eq!(*first, line);
            line += d.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
        }
        assert_eq!(src.lines, 3);
    }
}
