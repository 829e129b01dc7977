//! What the source tests share: a `BatchSender` that keeps what it is sent, and a driver
//! that runs epochs the way the runtime's source actor does (plan, record, read, snapshot).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use trendflow_core::metrics::Metrics;
use trendflow_core::{
    Batch, BatchSender, BoxFuture, DeadLetter, Epoch, EpochPlan, OperatorError, Source,
};

/// A raw batch as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentBatch {
    pub origin: Arc<str>,
    pub first_line: u64,
    pub lines: usize,
    pub data: Vec<u8>,
}

/// Keeps every batch it is sent.
#[derive(Default)]
pub struct Collect {
    pub batches: Vec<SentBatch>,
}

impl BatchSender for Collect {
    fn send(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), OperatorError>> {
        match batch {
            Batch::Raw(r) => self.batches.push(SentBatch {
                origin: r.origin.clone(),
                first_line: r.first_line,
                lines: r.lines,
                data: r.data.to_vec(),
            }),
            other => panic!("a source sends raw lines, not {}", other.kind()),
        }
        Box::pin(async { Ok(()) })
    }

    fn dead_letter(&mut self, letter: DeadLetter) -> BoxFuture<'_, Result<(), OperatorError>> {
        panic!("no dead letter expected: {letter:?}")
    }
}

impl Collect {
    /// Every line sent, in order.
    pub fn lines(&self) -> Vec<String> {
        self.batches
            .iter()
            .flat_map(|b| {
                let text = String::from_utf8(b.data.clone()).expect("UTF-8 lines");
                text.lines().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Checks what every batch says of itself: whole lines, `lines` of them, numbered on from
/// the previous batch (from 1), all from `origin`.
pub fn assert_numbered(batches: &[SentBatch], origin: &str) {
    let mut next = 1;
    for b in batches {
        assert_eq!(&*b.origin, origin);
        assert_eq!(b.first_line, next, "line numbers continue across batches");
        assert!(b.data.ends_with(b"\n"), "whole lines only");
        assert_eq!(b.data.iter().filter(|&&c| c == b'\n').count(), b.lines);
        next += b.lines as u64;
    }
}

/// One epoch as the runtime sees it.
#[derive(Debug, Clone)]
pub struct EpochRecord {
    pub epoch: Epoch,
    /// What the offset log holds for it.
    pub input: Vec<u8>,
    /// The batches its read sent.
    pub batches: Vec<SentBatch>,
    /// The source's state after it (what its checkpoint holds).
    pub state: Vec<u8>,
}

/// Runs a source's epochs as the source actor does.
pub struct Driver<S: Source> {
    pub source: S,
    pub next_epoch: Epoch,
    pub out: Collect,
    pub epochs: Vec<EpochRecord>,
    /// Lines sent by epochs this driver planned (not replayed).
    pub planned_lines: usize,
}

/// How long a test waits for the servers and the source before it fails instead of hanging
/// (a guard, not a measurement: everything normally settles within a second).
const PATIENCE: Duration = Duration::from_secs(60);

impl<S: Source> Driver<S> {
    pub fn new(source: S) -> Self {
        Driver {
            source,
            next_epoch: 0,
            out: Collect::default(),
            epochs: Vec::new(),
            planned_lines: 0,
        }
    }

    /// Plans and reads one epoch; whether it had input.
    pub async fn step(&mut self) -> Result<bool, OperatorError> {
        let epoch = self.next_epoch;
        match self.source.plan_epoch(epoch).await? {
            EpochPlan::Input(input) => {
                let before = self.out.batches.len();
                self.source.read_epoch(epoch, &input, &mut self.out).await?;
                self.planned_lines += self.out.batches[before..]
                    .iter()
                    .map(|b| b.lines)
                    .sum::<usize>();
                self.epochs.push(EpochRecord {
                    epoch,
                    input,
                    batches: self.out.batches[before..].to_vec(),
                    state: self.source.snapshot()?,
                });
                self.next_epoch += 1;
                Ok(true)
            }
            EpochPlan::Idle => Ok(false),
            EpochPlan::Exhausted => panic!("a live source never ends"),
        }
    }

    /// Reads `epochs` again, as a restart replays the offset log's epochs that were not
    /// committed.
    pub async fn replay(&mut self, epochs: &[EpochRecord]) {
        for record in epochs {
            let before = self.out.batches.len();
            self.source
                .read_epoch(record.epoch, &record.input, &mut self.out)
                .await
                .unwrap();
            self.epochs.push(EpochRecord {
                epoch: record.epoch,
                input: record.input.clone(),
                batches: self.out.batches[before..].to_vec(),
                state: self.source.snapshot().unwrap(),
            });
            self.next_epoch = record.epoch + 1;
        }
    }

    /// Runs epochs until `settled(planned)` holds, `planned` being the lines this driver's
    /// own plans have passed on (replayed epochs not counted). A test's `settled` says that
    /// the servers have sent everything and that every item received is accounted for
    /// (passed on, or dropped and counted), so nothing is left in the source's inbox.
    pub async fn run_until_settled(&mut self, what: &str, mut settled: impl FnMut(usize) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !settled(self.planned_lines) {
            if !self.step().await.unwrap() {
                assert!(Instant::now() < deadline, "waited too long for: {what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Runs epochs until at least `lines` lines have been sent.
    pub async fn run_until_lines(&mut self, lines: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.out.lines().len() < lines {
            if !self.step().await.unwrap() {
                assert!(
                    Instant::now() < deadline,
                    "waited too long for {lines} lines"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Runs epochs until one fails; its error.
    pub async fn run_until_error(&mut self) -> OperatorError {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.step().await {
                Err(e) => return e,
                Ok(true) => {}
                Ok(false) => {
                    assert!(Instant::now() < deadline, "waited too long for an error");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
}

/// Asserts that `actual` lines are `expected`, in order; on a difference, says which lines
/// are missing, repeated or out of place, each shortened, instead of printing both lists.
pub fn assert_same_lines(actual: &[String], expected: &[String]) {
    if actual == expected {
        return;
    }
    let short = |l: &str| l.chars().take(120).collect::<String>();
    let count = |lines: &[String], l: &String| lines.iter().filter(|x| *x == l).count();
    let missing: Vec<String> = expected
        .iter()
        .filter(|l| count(actual, l) < count(expected, l))
        .map(|l| short(l))
        .collect();
    let extra: Vec<String> = actual
        .iter()
        .filter(|l| count(actual, l) > count(expected, l))
        .map(|l| short(l))
        .collect();
    let first_difference = actual.iter().zip(expected).position(|(a, e)| a != e);
    panic!(
        "{} lines, {} expected; first difference at {first_difference:?}\nmissing ({}): {missing:#?}\nextra or repeated ({}): {extra:#?}",
        actual.len(),
        expected.len(),
        missing.len(),
        extra.len()
    );
}

/// The value of counter `name` with the label value `label` (summed over components).
pub fn counter(metrics: &Metrics, name: &str, label: &str) -> i64 {
    metrics
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.name == name && k.label.as_ref().is_some_and(|(_, v)| v == label))
        .map(|(_, v)| v)
        .sum()
}
