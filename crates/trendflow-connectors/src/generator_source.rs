//! A live source of generated tweets (Spark's `rate` source, but realistic v1.1 statuses): what
//! `trendflow generate` writes to files, produced in real time at `rate` tweets per second,
//! with no file in between.
//!
//! The stream is a pure function of the seed and the start time: line i is always the same
//! bytes. An epoch is recorded as the range of line numbers it takes, so a replay after a
//! crash regenerates exactly the same lines (fast-forwarding a fresh generator if needed).

use std::sync::Arc;

use trendflow_core::codec::{DecodeError, StateReader, StateWriter};
use trendflow_core::{
    Batch, BatchSender, BoxFuture, Epoch, EpochPlan, OperatorError, RawBatch, Source,
};

use crate::generator::{GeneratorConfig, TweetGenerator};

#[derive(Debug, Clone)]
pub struct GeneratorSourceOptions {
    pub config: GeneratorConfig,
    /// Start the event-time clock at the wall clock of the first start (the default), rather
    /// than at `config.start_ms`.
    pub start_now: bool,
    /// Emit lines as their event time passes on the wall clock (live); otherwise as fast as
    /// the pipeline takes them.
    pub real_time: bool,
    /// At most this many lines per epoch.
    pub max_lines_per_trigger: usize,
    /// Stop after this many lines (a bounded run).
    pub limit: Option<u64>,
}

pub struct GeneratorSource {
    name: Arc<str>,
    options: GeneratorSourceOptions,
    /// Created at first use, once the start time is known.
    generator: Option<TweetGenerator>,
    start_ms: Option<i64>,
    /// Lines generated so far by `generator` (the index of the next one).
    generated: u64,
    /// Lines generated but not yet handed out (the lookahead line, or a planned epoch).
    pending: Vec<(u64, i64, Vec<u8>)>,
    /// Lines sent in committed or planned epochs: the next epoch starts here.
    next: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl GeneratorSource {
    pub fn new(name: &str, options: GeneratorSourceOptions) -> Self {
        GeneratorSource {
            name: Arc::from(format!("generator:{name}")),
            options,
            generator: None,
            start_ms: None,
            generated: 0,
            pending: Vec::new(),
            next: 0,
        }
    }

    fn generator(&mut self) -> &mut TweetGenerator {
        let start = *self.start_ms.get_or_insert_with(|| {
            if self.options.start_now {
                now_ms()
            } else {
                self.options.config.start_ms
            }
        });
        self.generator.get_or_insert_with(|| {
            let mut cfg = self.options.config.clone();
            cfg.start_ms = start;
            TweetGenerator::new(cfg)
        })
    }

    /// Generates line `self.generated` (its number, event clock and bytes).
    fn generate_one(&mut self) -> (u64, i64, Vec<u8>) {
        let mut line = Vec::with_capacity(4096);
        let g = self.generator();
        g.next_line(&mut line);
        let clock = g.clock_ms();
        let i = self.generated;
        self.generated += 1;
        (i, clock, line)
    }

    /// Makes `idx` the next line generated (after a restart: a fresh generator skips ahead).
    fn seek(&mut self, idx: u64) {
        if self.generated > idx {
            self.generator = None;
            self.generated = 0;
        }
        while self.generated < idx {
            self.generate_one();
        }
        self.pending.retain(|(i, _, _)| *i >= idx);
    }

    /// Lines `first .. first + count`, regenerating from the start if they are behind us.
    fn lines(&mut self, first: u64, count: u64) -> Vec<u8> {
        let keep: Vec<_> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|(i, _, _)| *i >= first)
            .collect();
        if keep.first().is_none_or(|(i, _, _)| *i != first) && self.generated != first {
            // A replay of lines generated before a restart: start over and skip ahead.
            self.generator = None;
            self.generated = 0;
            while self.generated < first {
                self.generate_one();
            }
            self.pending.clear();
        } else {
            self.pending = keep;
        }
        let mut out = Vec::new();
        for n in first..first + count {
            match self.pending.first() {
                Some((i, _, _)) if *i == n => {
                    let (_, _, l) = self.pending.remove(0);
                    out.extend_from_slice(&l);
                }
                _ => {
                    let (_, _, l) = self.generate_one();
                    out.extend_from_slice(&l);
                }
            }
        }
        out
    }
}

impl Source for GeneratorSource {
    fn plan_epoch(&mut self, _epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>> {
        Box::pin(async move {
            let remaining = self
                .options
                .limit
                .map_or(u64::MAX, |l| l.saturating_sub(self.next));
            if remaining == 0 {
                return Ok(EpochPlan::Exhausted);
            }
            let max = (self.options.max_lines_per_trigger.max(1) as u64).min(remaining);
            let now = now_ms();
            // Lines whose event time has come (all, up to the limit, when not live).
            let mut count = 0u64;
            while count < max {
                let idx = self.next + count;
                let line = match self.pending.iter().position(|(i, _, _)| *i == idx) {
                    Some(p) => self.pending[p].1,
                    None => {
                        self.seek(idx);
                        let l = self.generate_one();
                        let clock = l.1;
                        self.pending.push(l);
                        clock
                    }
                };
                if self.options.real_time && line > now {
                    break;
                }
                count += 1;
            }
            if count == 0 {
                return Ok(EpochPlan::Idle);
            }
            let mut w = StateWriter::new();
            w.u64(1).u64(self.next).u64(count);
            self.next += count;
            Ok(EpochPlan::Input(w.finish()))
        })
    }

    fn read_epoch<'a>(
        &'a mut self,
        epoch: Epoch,
        input: &'a [u8],
        out: &'a mut dyn BatchSender,
    ) -> BoxFuture<'a, Result<(), OperatorError>> {
        Box::pin(async move {
            let bad = |e: DecodeError| {
                OperatorError::new(format!(
                    "the input record of epoch {epoch} is unreadable: {e}"
                ))
            };
            let mut r = StateReader::new(input);
            if r.u64().map_err(bad)? != 1 {
                return Err(OperatorError::new(
                    "generator input record: unknown version",
                ));
            }
            let (first, count) = (r.u64().map_err(bad)?, r.u64().map_err(bad)?);
            self.next = self.next.max(first + count);
            // Batches of about a thousand lines.
            let mut sent = 0;
            while sent < count {
                let n = (count - sent).min(1000);
                let data = self.lines(first + sent, n);
                out.send(Batch::Raw(Arc::new(RawBatch {
                    origin: self.name.clone(),
                    first_line: first + sent + 1,
                    lines: n as usize,
                    data: data.into(),
                })))
                .await?;
                sent += n;
            }
            Ok(())
        })
    }

    fn describe_offset(&self) -> String {
        format!("{} lines generated", self.next)
    }

    fn state_signature(&self) -> Option<String> {
        Some(format!(
            "generator v1 seed={} rate={}",
            self.options.config.seed, self.options.config.rate
        ))
    }

    /// The start time and the next line: the stream after a restart is the same stream.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(1).opt_i64(self.start_ms).u64(self.next);
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e: DecodeError| OperatorError::new(format!("generator state: {e}"));
        let mut r = StateReader::new(state);
        if r.u64().map_err(bad)? != 1 {
            return Err(OperatorError::new("generator state: unknown version"));
        }
        self.start_ms = r.opt_i64().map_err(bad)?;
        self.next = r.u64().map_err(bad)?;
        self.generator = None;
        self.generated = 0;
        self.pending.clear();
        r.end().map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<u8>);
    impl BatchSender for Collect {
        fn send(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), OperatorError>> {
            if let Batch::Raw(r) = batch {
                self.0.extend_from_slice(&r.data);
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

    fn options(limit: u64) -> GeneratorSourceOptions {
        GeneratorSourceOptions {
            config: GeneratorConfig {
                seed: 5,
                ..GeneratorConfig::default()
            },
            start_now: false,
            real_time: false,
            max_lines_per_trigger: 300,
            limit: Some(limit),
        }
    }

    async fn run(src: &mut GeneratorSource, from: Epoch, out: &mut Collect) -> Vec<Vec<u8>> {
        let mut plans = Vec::new();
        let mut e = from;
        while let EpochPlan::Input(p) = src.plan_epoch(e).await.unwrap() {
            src.read_epoch(e, &p, out).await.unwrap();
            plans.push(p);
            e += 1;
        }
        plans
    }

    #[tokio::test]
    async fn the_stream_is_the_files_stream_and_a_replay_is_identical() {
        // The same lines as the file generator writes.
        let mut g = TweetGenerator::new(options(0).config);
        let mut want = Vec::new();
        for _ in 0..1000 {
            g.next_line(&mut want);
        }
        let mut src = GeneratorSource::new("g", options(1000));
        let mut out = Collect(Vec::new());
        let plans = run(&mut src, 0, &mut out).await;
        assert_eq!(plans.len(), 4);
        assert!(out.0 == want);
        // A restored source plans on from where its state says.
        let mut resumed = GeneratorSource::new("g", options(1000));
        let mut two = Collect(Vec::new());
        let mut head = GeneratorSource::new("g", options(1000));
        let p0 = head.plan_epoch(0).await.unwrap();
        let EpochPlan::Input(p0) = p0 else { panic!() };
        head.read_epoch(0, &p0, &mut two).await.unwrap();
        resumed.restore(&head.snapshot().unwrap()).unwrap();
        run(&mut resumed, 1, &mut two).await;
        assert!(two.0 == want);
        // After a restart from the state of epoch 1, epoch 2 replayed gives the same lines.
        let mut again = GeneratorSource::new("g", options(1000));
        let mut first = GeneratorSource::new("g", options(1000));
        let mut sink = Collect(Vec::new());
        for (e, p) in plans.iter().take(2).enumerate() {
            first.plan_epoch(e as u64).await.unwrap();
            first.read_epoch(e as u64, p, &mut sink).await.unwrap();
        }
        again.restore(&first.snapshot().unwrap()).unwrap();
        let mut replayed = Collect(Vec::new());
        again.read_epoch(2, &plans[2], &mut replayed).await.unwrap();
        assert!(replayed.0 == want[sink.0.len()..sink.0.len() + replayed.0.len()]);
        let rest = run(&mut again, 3, &mut replayed).await;
        assert_eq!(rest.len(), 1);
        assert!(sink.0.len() + replayed.0.len() == want.len());
    }
}
