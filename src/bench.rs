//! `trendflow bench`: the tutorial's queries on generated tweets, end to end through the
//! actors, next to the same parsing and counting code run in one plain loop, with and without
//! the pipeline's sinks.
//!
//! Benchmarks measure; they assert nothing. Figures go to docs/performance.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use trendflow_config::{Override, SinkConfig, build, load_str, parser_options};
use trendflow_connectors::generator::{GeneratorConfig, TweetGenerator, write_files};
use trendflow_connectors::line_pieces::LocalLines;
use trendflow_core::batch::OutputMode;
use trendflow_core::metrics::Metrics;
use trendflow_core::{Batch, Emitter, Operator, Sink, SlidingWindows};
use trendflow_ops::{
    JsonPostParser, KeyCount, LatePolicy, Tokenizer, TokenizerMode, WindowedCount,
};
use trendflow_runtime::{NodeBody, Resume, RunningPipeline};

pub const TUTORIAL_Q1: &str = include_str!("../config/tutorial-q1.yaml");
pub const TUTORIAL_Q2: &str = include_str!("../config/tutorial-q2.yaml");

#[derive(Args)]
pub struct BenchArgs {
    /// Tweets to generate.
    #[arg(long, default_value_t = 200_000)]
    pub tweets: u64,
    /// Queries to run: q1, q2.
    #[arg(long, value_delimiter = ',', default_value = "q1,q2")]
    pub queries: Vec<String>,
    /// Parser actor counts to compare.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub parsers: Vec<usize>,
    /// Reuse (or keep) generated data in this directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Window and slide of Q2 (to check that sliding cost does not grow with size/slide).
    #[arg(long, default_value = "3h")]
    pub window: String,
    #[arg(long, default_value = "5m")]
    pub slide: String,
    /// Q2 also with these windows (`size/slide`, or `off`), with the most parsers, in the
    /// same rounds: issue 5 wants 24h windows sliding every minute within 1.2x of 3h/5min.
    #[arg(long, default_value = "24h/1m")]
    pub sliding: String,
    /// Each query also read in this many epochs (the files split evenly) with checkpoints on
    /// disk, as a stream runs: what each epoch and its checkpoint cost (0: skip).
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Print the results as JSON too.
    #[arg(long)]
    pub json: bool,
    /// Runs of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Files landed one by one to measure latency (0: skip).
    #[arg(long, default_value_t = 200)]
    pub latency_files: usize,
    /// Tweets per latency file, and the pause between two landings (ms).
    #[arg(long, default_value_t = 50)]
    pub latency_tweets: usize,
    #[arg(long, default_value_t = 20)]
    pub latency_interval_ms: u64,
    /// Result rows written through the parquet and PostgreSQL sinks (0: skip).
    #[arg(long, default_value_t = 0)]
    pub sink_rows: usize,
    /// PostgreSQL to write to (a throwaway local server is started otherwise).
    #[arg(long)]
    pub postgres_url: Option<String>,
    /// Measure scale-out workers instead (docs/scale-out.md): Q2 on an in-process Kafka
    /// topic of 8 partitions read by each of these worker counts, then the rebalance pause
    /// after a kill -9 and a SIGTERM of one worker (with the last count, if 2 or more).
    #[arg(long, value_delimiter = ',')]
    pub workers: Vec<usize>,
    /// Tweets on the topic for `--workers` (the mock cluster holds 5 MB of compressed record
    /// batches per partition).
    #[arg(long, default_value_t = 120_000)]
    pub cluster_tweets: u64,
    /// The workers' consumer-group session timeout (a dead worker's partitions move after it).
    #[arg(long, default_value = "6s")]
    pub session_timeout: String,
    /// Internal: run one measurement in this process ("scan", "plain:q2", "actors:q2:2") and
    /// print it as JSON. Each measurement runs in its own process so its peak RSS is its own.
    #[arg(long, hide = true)]
    pub only: Option<String>,
}

fn peak_rss_reset() {
    // Linux: writing 5 resets the peak resident set size (VmHWM) of the process.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time of the whole process so far (user + system, all threads), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What a plain loop measured.
struct PlainRun {
    posts: u64,
    seconds: f64,
    cpu_seconds: f64,
    /// Result rows made (and written to the sinks, if any).
    rows: u64,
}

/// The same operators as the pipeline, called in one loop on one thread; their result rows go
/// to `sinks` (committed at each epoch's end, as the pipeline's sink actors do), or are dropped
/// when there are none.
fn plain_loop(
    files: &[PathBuf],
    q2: bool,
    size: i64,
    slide: i64,
    sinks: &mut [Box<dyn Sink>],
) -> PlainRun {
    let metrics = Metrics::new();
    // The same parser options as the tutorial pipeline's `parse` stage.
    let yaml = if q2 { TUTORIAL_Q2 } else { TUTORIAL_Q1 };
    let config = load_str(yaml, "tutorial", &[]).expect("the embedded tutorial pipeline");
    let options = parser_options(&config, "parse").expect("a parse stage");
    let mut parser = JsonPostParser::new("parse", options, &metrics);
    let mut tokenizer = Tokenizer::new(TokenizerMode::Split);
    let mut agg: Box<dyn Operator> = if q2 {
        Box::new(WindowedCount::new(
            "w",
            SlidingWindows::new(size, slide).unwrap(),
            60_000,
            OutputMode::Append,
            LatePolicy::Count,
            &metrics,
        ))
    } else {
        Box::new(KeyCount::new(OutputMode::Complete, "word", "count"))
    };
    // Batches read and cut as the file source reads and cuts them, at its default size.
    let batch_bytes = trendflow_connectors::FileSourceOptions::new(".").batch_bytes;
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let mut posts = 0u64;
    let mut rows = 0u64;
    for f in files {
        let mut file = LocalLines::new(f, "f".into(), batch_bytes);
        while let Some(raw) = file.next_piece().unwrap() {
            let mut out = Emitter::new();
            parser
                .process_batch(Batch::Raw(Arc::new(raw)), &mut out)
                .unwrap();
            for b in out.batches.drain(..) {
                posts += b.len() as u64;
                let mut t = Emitter::new();
                tokenizer.process_batch(b, &mut t).unwrap();
                for tb in t.batches {
                    let mut out = Emitter::new();
                    agg.process_batch(tb, &mut out).unwrap();
                    rows += to_sinks(out, sinks);
                }
            }
        }
    }
    // Every result row is made, all parts of it, and written to the sinks, if any.
    for epoch in [0, 1] {
        let mut out = Emitter::new();
        agg.on_barrier(epoch, &mut out).unwrap();
        rows += to_sinks(out, sinks);
        loop {
            let mut out = Emitter::new();
            let more = agg
                .emit_more(trendflow_core::operator::OUTPUT_PART_ROWS, &mut out)
                .unwrap();
            rows += to_sinks(out, sinks);
            if !more {
                break;
            }
        }
        for sink in sinks.iter_mut() {
            sink.commit(epoch).unwrap();
        }
    }
    for sink in sinks.iter_mut() {
        sink.finish().unwrap();
    }
    PlainRun {
        posts,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds() - cpu_started,
        rows,
    }
}

/// What an operator emitted, to every sink, as the sink actors take it: the batches, then the
/// watermark. Returns the result rows among the batches.
fn to_sinks(out: Emitter, sinks: &mut [Box<dyn Sink>]) -> u64 {
    let mut rows = 0;
    for batch in &out.batches {
        if let Batch::Rows(r) = batch {
            rows += r.rows.len() as u64;
        }
        for sink in sinks.iter_mut() {
            sink.write(batch).unwrap();
        }
    }
    if let Some(w) = out.watermark {
        for sink in sinks.iter_mut() {
            sink.on_watermark(w);
        }
    }
    rows
}

/// The sinks of the tutorial pipeline `query`, built from its file as the pipeline builds
/// them, the CSV written to `out`.
fn pipeline_sinks(query: &str, dir: &Path, out: &Path) -> Result<Vec<Box<dyn Sink>>, String> {
    let config = load_str(
        if query == "q1" {
            TUTORIAL_Q1
        } else {
            TUTORIAL_Q2
        },
        query,
        &overrides(query, dir, 1, out, None),
    )
    .map_err(|e| e.to_string())?;
    let built = build(&config).map_err(|e| e.join("; "))?;
    Ok(built
        .graph
        .nodes
        .into_iter()
        .filter_map(|n| match n.body {
            NodeBody::Sink(sink) => Some(sink),
            _ => None,
        })
        .collect())
}

/// Keeps this thread, and the threads it starts, on the CPU it runs on: a sink that splits
/// large work over two threads when it sees two cores then does it on one.
fn pin_to_one_cpu() {
    // SAFETY: sched_getcpu reads nothing of the process; CPU_ZERO and CPU_SET write the set
    // given to them, which sched_setaffinity only reads.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The ceiling the parsers work under: only the JSON scan of the tutorial's fast path
/// (`trendflow_ops::fast_json`), one thread, over lines already in memory (the reading of
/// each file is not timed). Returns (lines scanned, seconds).
fn scan_only(files: &[PathBuf]) -> (u64, f64) {
    let mut decoded = String::new();
    let mut lines = 0u64;
    let mut seconds = 0.0;
    for f in files {
        let data = std::fs::read(f).unwrap();
        let started = Instant::now();
        // Lines found as the parser finds them: by the scan itself, else by a search for
        // the newline.
        let mut start = 0;
        while start < data.len() {
            let rest = &data[start..];
            let len = match trendflow_ops::fast_json::scan_to_newline(rest, &mut decoded) {
                Some((fields, len)) => {
                    std::hint::black_box(fields);
                    len
                }
                None => memchr::memchr(b'\n', rest).unwrap_or(rest.len()),
            };
            start += len + 1;
            lines += u64::from(len > 0);
        }
        seconds += started.elapsed().as_secs_f64();
    }
    (lines, seconds)
}

/// The rates (tweets/s) of two measurements in each round, as pairs.
fn paired_ratios(rounds: &[Vec<Measure>], first: &str, second: &str) -> Vec<(f64, f64)> {
    let runs = |label: &str| {
        rounds
            .iter()
            .find(|runs| runs.first().is_some_and(|m| m.label == label))
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let rate = |m: &Measure| m.tweets as f64 / m.seconds;
    runs(first)
        .iter()
        .zip(runs(second))
        .map(|(a, b)| (rate(a), rate(b)))
        .collect()
}

/// " (rounds: 1.10-1.30x)" for two rounds or more, else nothing.
fn range_note(values: impl Iterator<Item = f64>) -> String {
    let mut v: Vec<f64> = values.collect();
    if v.len() < 2 {
        return String::new();
    }
    v.sort_by(f64::total_cmp);
    format!(" (rounds: {:.2}-{:.2}x)", v[0], v[v.len() - 1])
}

fn plain_label(query: &str) -> String {
    format!("{query} plain loop, 1 thread")
}

fn plain_sinks_label(query: &str) -> String {
    format!("{query} plain loop + sinks, 1 core")
}

fn actors_label(query: &str, parsers: usize) -> String {
    format!("{query} actors, {}", parsers_label(parsers))
}

/// The pipeline without its CSV file: the memory table the tutorial queries with SQL only.
fn actors_memory_label(query: &str, parsers: usize) -> String {
    format!(
        "{query} actors, memory table only, {}",
        parsers_label(parsers)
    )
}

/// The pipeline read in about `epochs` epochs, with checkpoints on disk: a stream's run.
fn epochs_label(actors_label: &str, epochs: usize) -> String {
    format!("{actors_label}, {epochs} epochs, checkpoints on disk")
}

fn sliding_label(actors_label: &str, window: &str, slide: &str) -> String {
    format!("{actors_label}, {window}/{slide}")
}

fn parsers_label(parsers: usize) -> String {
    format!("{parsers} parser{}", if parsers == 1 { "" } else { "s" })
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Default)]
struct Measure {
    label: String,
    tweets: u64,
    seconds: f64,
    /// CPU time over those seconds, every thread (user + system).
    #[serde(default)]
    cpu_seconds: f64,
    bytes: u64,
    peak_rss_mb: f64,
    /// Result rows made: what the sinks took (the loop without sinks makes and drops them).
    #[serde(default)]
    rows: u64,
    /// The CSV written, as "LENGTH bytes, HASH", where one was.
    #[serde(default)]
    output: Option<String>,
    /// Epochs committed, and what their checkpoints wrote (MB), for runs with checkpoints on
    /// disk.
    #[serde(default)]
    epochs: u64,
    #[serde(default)]
    checkpoint_mb: f64,
}

/// A file's length and a hash of its bytes, to check that two runs wrote the same output.
fn digest(path: &Path) -> Option<String> {
    use std::hash::Hasher;
    use std::io::Read;
    // In pieces: a 24h/1min CSV is 255 MB.
    let mut file = std::fs::File::open(path).ok()?;
    let mut h = std::hash::DefaultHasher::new();
    let (mut buf, mut len) = (vec![0u8; 1 << 20], 0);
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
        len += n;
    }
    Some(format!("{len} bytes, {:016x}", h.finish()))
}

/// What the bench sets in a tutorial pipeline: its input, its CSV, a bounded run, the parsers,
/// no API, and Q2's windows.
fn overrides(
    query: &str,
    dir: &Path,
    parsers: usize,
    out: &Path,
    windows: Option<(&str, &str)>,
) -> Vec<Override> {
    let mut set: Vec<String> = vec![
        format!("sources.tweets.path={}", dir.display()),
        format!("sinks.result.path={}", out.display()),
        "trigger=available_now".into(),
        format!("transforms.parse.parallelism={parsers}"),
        "api.enabled=false".into(),
    ];
    if let (true, Some((window, slide))) = (query == "q2", windows) {
        set.push(format!("transforms.hashtag_counts.window={window}"));
        set.push(format!("transforms.hashtag_counts.slide={slide}"));
    }
    set.iter().map(|s| s.parse().unwrap()).collect()
}

/// How the bench runs a tutorial pipeline through the actors.
#[derive(Clone, Copy)]
struct PipelineRun<'a> {
    windows: (&'a str, &'a str),
    /// Without its file sink (the rows then counted at the memory table).
    memory_only: bool,
    /// Read in about this many epochs (files split evenly), with checkpoints on disk next
    /// to the output; otherwise in one epoch, checkpoints in memory.
    epochs: Option<usize>,
}

/// The tutorial pipeline of `query` through the actors.
async fn run_pipeline(
    query: &str,
    dir: &Path,
    parsers: usize,
    out: &Path,
    how: PipelineRun<'_>,
) -> Result<Measure, String> {
    let PipelineRun {
        windows: (window, slide),
        memory_only,
        epochs,
    } = how;
    let yaml = if query == "q1" {
        TUTORIAL_Q1
    } else {
        TUTORIAL_Q2
    };
    let mut set = overrides(query, dir, parsers, out, Some((window, slide)));
    let checkpoint_dir = out.with_extension("checkpoint");
    if let Some(epochs) = epochs {
        let files = data_files(dir).len();
        let per_epoch = files.div_ceil(epochs.max(1)).max(1);
        let _ = std::fs::remove_dir_all(&checkpoint_dir);
        for s in [
            format!("sources.tweets.max_files_per_trigger={per_epoch}"),
            format!("checkpoint.path={}", checkpoint_dir.display()),
        ] {
            set.push(s.parse::<Override>().map_err(|e| e.to_string())?);
        }
    }
    let mut config = load_str(yaml, query, &set).map_err(|e| e.to_string())?;
    let rows_at = if memory_only {
        config
            .sinks
            .retain(|_, sink| matches!(sink, SinkConfig::Memory(_)));
        config.sinks.keys().next().cloned().unwrap_or_default()
    } else {
        "result".to_string()
    };
    let built = build(&config).map_err(|e| e.join("; "))?;
    let resume = if epochs.is_some() {
        Resume::load(built.checkpoints.clone(), &built.graph)
            .await
            .map_err(|e| e.to_string())?
    } else {
        Resume::fresh()
    };
    peak_rss_reset();
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let running = RunningPipeline::start(built.graph, resume).map_err(|e| e.to_string())?;
    let report = running.wait(|_| {}).await.map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let tweets = built
        .parts
        .metrics
        .value(trendflow_core::metrics::names::RECORDS_OUT, "parse") as u64;
    let label = if memory_only {
        actors_memory_label(query, parsers)
    } else {
        actors_label(query, parsers)
    };
    let metrics = &built.parts.metrics;
    Ok(Measure {
        label: match epochs {
            Some(e) => epochs_label(&label, e),
            None => label,
        },
        tweets,
        seconds,
        cpu_seconds: cpu_seconds() - cpu_started,
        bytes: report.bytes,
        peak_rss_mb: peak_rss_mb(),
        rows: built
            .parts
            .metrics
            .value(trendflow_core::metrics::names::RECORDS_IN, &rows_at) as u64,
        output: digest(out),
        epochs: report.epochs.len() as u64,
        checkpoint_mb: metrics.total(trendflow_core::metrics::names::CHECKPOINT_WRITTEN_BYTES)
            as f64
            / 1e6,
    })
}

pub async fn main(args: BenchArgs) -> i32 {
    if !args.workers.is_empty() {
        let (tweets, workers, session, keep) = (
            args.cluster_tweets,
            args.workers.clone(),
            args.session_timeout.clone(),
            args.dir.clone(),
        );
        let measured = tokio::task::spawn_blocking(move || {
            crate::bench_cluster::measure(tweets, &workers, &session, keep.as_deref())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        return match measured {
            Ok(b) => {
                print!("{}", crate::bench_cluster::report(&b));
                if args.json {
                    println!("{}", serde_json::to_string(&b).unwrap_or_default());
                }
                0
            }
            Err(e) => {
                eprintln!("trendflow bench --workers: {e}");
                1
            }
        };
    }
    let tmp = tempfile::Builder::new()
        .prefix("trendflow-bench-")
        .tempdir()
        .expect("temp dir");
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().join("input"));
    let per_file = 1000u64;
    if data_files(&dir).is_empty() {
        eprintln!("generating {} tweets into {}", args.tweets, dir.display());
        let mut g = TweetGenerator::new(GeneratorConfig {
            seed: 42,
            rate: 10.0,
            ..GeneratorConfig::default()
        });
        let files = args.tweets.div_ceil(per_file);
        let mut bar =
            crate::progress_bar::Bar::new("generate", files, crate::progress_bar::Unit::Files);
        let mut written = 0u64;
        if let Err(e) = write_files(&dir, 0, files, per_file, &mut g, &mut |i, bytes| {
            written += bytes;
            bar.detail(format!(
                "{} written",
                crate::progress_bar::human_bytes(written)
            ));
            bar.set(i + 1);
        }) {
            eprintln!("trendflow bench: {e}");
            return 1;
        }
    }
    let files = data_files(&dir);
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let size = trendflow_core::duration::parse_duration(&args.window)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(10_800_000);
    let slide = trendflow_core::duration::parse_duration(&args.slide)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(300_000);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!(
        "trendflow bench: {} files, {:.1} MB, {} cores ({cpu}), Q2 windows {} every {}",
        files.len(),
        bytes as f64 / 1e6,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        args.window,
        args.slide
    );
    if let Some(only) = &args.only {
        let parts: Vec<&str> = only.split(':').collect();
        let m = match parts.as_slice() {
            ["scan"] => {
                let (tweets, seconds) = scan_only(&files);
                Measure {
                    label: "json scan only, 1 thread".into(),
                    tweets,
                    seconds,
                    // One thread, timed around the scan alone.
                    cpu_seconds: seconds,
                    bytes,
                    peak_rss_mb: peak_rss_mb(),
                    rows: 0,
                    output: None,
                    ..Default::default()
                }
            }
            [kind @ ("plain" | "plain-sinks"), q, windows @ ..] => {
                let (size, slide) = match windows {
                    [w, s] => match (
                        trendflow_core::duration::parse_duration(w),
                        trendflow_core::duration::parse_duration(s),
                    ) {
                        (Ok(w), Ok(s)) => (w.as_millis() as i64, s.as_millis() as i64),
                        _ => {
                            eprintln!("trendflow bench: bad windows in --only {only}");
                            return 2;
                        }
                    },
                    _ => (size, slide),
                };
                let mut sinks = Vec::new();
                if *kind == "plain-sinks" {
                    pin_to_one_cpu();
                    match pipeline_sinks(q, &dir, &tmp.path().join(format!("{q}.csv"))) {
                        Ok(built) => sinks = built,
                        Err(e) => {
                            eprintln!("trendflow bench: {q} sinks: {e}");
                            return 1;
                        }
                    }
                }
                let run = plain_loop(&files, *q == "q2", size, slide, &mut sinks);
                let label = if sinks.is_empty() {
                    plain_label(q)
                } else {
                    plain_sinks_label(q)
                };
                Measure {
                    label: match windows {
                        [w, s] => sliding_label(&label, w, s),
                        _ => label,
                    },
                    tweets: run.posts,
                    seconds: run.seconds,
                    cpu_seconds: run.cpu_seconds,
                    bytes,
                    peak_rss_mb: peak_rss_mb(),
                    rows: run.rows,
                    output: digest(&tmp.path().join(format!("{q}.csv"))),
                    ..Default::default()
                }
            }
            [kind @ ("actors" | "actors-memory"), q, p, windows @ ..] => {
                let out = tmp.path().join(format!("{q}.csv"));
                let p: usize = p.parse().unwrap_or(1);
                let (window, slide) = match windows {
                    [w, s] => (*w, *s),
                    _ => (args.window.as_str(), args.slide.as_str()),
                };
                let how = PipelineRun {
                    windows: (window, slide),
                    memory_only: *kind == "actors-memory",
                    epochs: None,
                };
                match run_pipeline(q, &dir, p, &out, how).await {
                    Ok(m) if windows.is_empty() => m,
                    Ok(m) => Measure {
                        label: sliding_label(&m.label, window, slide),
                        ..m
                    },
                    Err(e) => {
                        eprintln!("trendflow bench: {q}: {e}");
                        return 1;
                    }
                }
            }
            ["actors-epochs", q, p, epochs] => {
                let out = tmp.path().join(format!("{q}.csv"));
                let (Ok(p), Ok(epochs)) = (p.parse::<usize>(), epochs.parse::<usize>()) else {
                    eprintln!("trendflow bench: bad --only {only}");
                    return 2;
                };
                let how = PipelineRun {
                    windows: (args.window.as_str(), args.slide.as_str()),
                    memory_only: false,
                    epochs: Some(epochs),
                };
                match run_pipeline(q, &dir, p, &out, how).await {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("trendflow bench: {q}: {e}");
                        return 1;
                    }
                }
            }
            _ => {
                eprintln!("trendflow bench: bad --only {only}");
                return 2;
            }
        };
        println!("{}", serde_json::to_string(&m).unwrap());
        return 0;
    }
    // What one core can scan first: the parsing limit the queries approach.
    let mut plan = vec!["scan".to_string()];
    for q in &args.queries {
        plan.push(format!("plain:{q}"));
        plan.push(format!("plain-sinks:{q}"));
        for p in &args.parsers {
            plan.push(format!("actors:{q}:{p}"));
        }
    }
    // Q2 with other windows, next to Q2 with the most parsers in each round.
    let sliding = args
        .sliding
        .split_once('/')
        .filter(|_| args.queries.iter().any(|q| q == "q2"));
    let most_parsers = args.parsers.iter().copied().max().unwrap_or(1);
    if let Some((w, s)) = sliding {
        plan.push(format!("actors:q2:{most_parsers}:{w}:{s}"));
        // Q2's windows through the actors into its memory table alone: the CSV file of the
        // tutorial pipeline grows with the rows (255 MB with 24h/1min windows over 200k
        // tweets, 44 MB with 3h/5min), and its writing is the largest part of the cost.
        plan.push(format!("actors-memory:q2:{most_parsers}"));
        plan.push(format!("actors-memory:q2:{most_parsers}:{w}:{s}"));
        plan.push(format!("plain:q2:{w}:{s}"));
        plan.push(format!("plain-sinks:q2:{w}:{s}"));
    }
    if args.epochs > 0 {
        for q in &args.queries {
            plan.push(format!("actors-epochs:{q}:{most_parsers}:{}", args.epochs));
        }
    }
    let exe = std::env::current_exe().expect("own executable");
    // Each measurement is a process of its own: the bar counts them (done, rate, time left).
    let mut bar = crate::progress_bar::Bar::new(
        "bench",
        (plan.len() * args.runs.max(1)) as u64,
        crate::progress_bar::Unit::Runs,
    );
    let mut done = 0;
    // Rounds of the whole plan, not each measurement's runs in a row: this machine's speed
    // drifts over tens of seconds, and a ratio of two measurements (the plain loop against
    // the actors) is only fair when both were taken in the same spells.
    let mut rounds: Vec<Vec<Measure>> = vec![Vec::new(); plan.len()];
    for _ in 0..args.runs.max(1) {
        for (i, item) in plan.iter().enumerate() {
            bar.set(done);
            done += 1;
            let out = std::process::Command::new(&exe)
                .args(["bench", "--dir"])
                .arg(&dir)
                .args([
                    "--window",
                    &args.window,
                    "--slide",
                    &args.slide,
                    "--only",
                    item,
                ])
                .env("TRENDFLOW_LOG", "warn")
                .output();
            let m = out.ok().and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .last()
                    .and_then(|l| serde_json::from_str::<Measure>(l).ok())
            });
            match m {
                Some(m) => rounds[i].push(m),
                None => {
                    eprintln!("trendflow bench: {item} failed");
                    return 1;
                }
            }
        }
    }
    let mut results = Vec::new();
    for runs in &rounds {
        let mut runs = runs.clone();
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        // The median, and the spread of the runs around it (machines are noisy).
        let range = (runs[0].seconds, runs[runs.len() - 1].seconds);
        results.push((runs[runs.len() / 2].clone(), range));
    }
    bar.set(done);
    bar.finish();
    let width = results
        .iter()
        .map(|(m, _)| m.label.len())
        .max()
        .unwrap_or(0);
    println!(
        "{:<width$} {:>10} {:>9} {:>13} {:>7} {:>12} {:>9} {:>10}",
        "run", "tweets", "seconds", "runs' range", "CPU s", "tweets/s", "MB/s", "peak RSS"
    );
    for (m, (low, high)) in &results {
        println!(
            "{:<width$} {:>10} {:>9.3} {:>13} {:>7.2} {:>12.0} {:>9.1} {:>7.0} MB",
            m.label,
            m.tweets,
            m.seconds,
            format!("{low:.2}-{high:.2}"),
            m.cpu_seconds,
            m.tweets as f64 / m.seconds,
            m.bytes as f64 / 1e6 / m.seconds,
            m.peak_rss_mb
        );
    }
    // Issue 5's actor-overhead figure: the plain loop's rate over the actors' rate per core
    // (the pipeline's actors share all the cores, whatever the number of parsers).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let measure = |label: &str| {
        results
            .iter()
            .find(|(m, _)| m.label == label)
            .map(|(m, _)| m)
    };
    let rate = |label: &str| measure(label).map(|m| m.tweets as f64 / m.seconds);
    // CPU per tweet: the actors' overhead in work done, apart from cores left idle.
    let cpu_per_tweet = |label: &str| {
        measure(label)
            .filter(|m| m.cpu_seconds > 0.0)
            .map(|m| m.cpu_seconds / m.tweets as f64)
    };
    // Against two loops: the operators alone (their rows dropped), and the operators with the
    // pipeline's sinks, the same work as the actors do, on one core (their checkpoints aside,
    // which the loop does not take): the actors' own cost is what the second shows.
    for q in &args.queries {
        for (baseline, what) in [
            (plain_label(q), "plain loop"),
            (plain_sinks_label(q), "plain loop + sinks"),
        ] {
            let Some(plain) = rate(&baseline) else {
                continue;
            };
            let ratios: Vec<String> = args
                .parsers
                .iter()
                .filter_map(|p| {
                    let actors = rate(&actors_label(q, *p))?;
                    // Also round by round: the two measurements taken closest in time.
                    let per_round = paired_ratios(&rounds, &baseline, &actors_label(q, *p))
                        .into_iter()
                        .map(|(plain, actors)| plain / (actors / cores));
                    Some(format!(
                        "{} {:.2}x{}",
                        parsers_label(*p),
                        plain / (actors / cores),
                        range_note(per_round)
                    ))
                })
                .collect();
            println!(
                "{q}: {what} over actors per core ({cores} cores): {}",
                ratios.join(", ")
            );
            if let Some(plain_cpu) = cpu_per_tweet(&baseline) {
                let ratios: Vec<String> = args
                    .parsers
                    .iter()
                    .filter_map(|p| {
                        let actors = cpu_per_tweet(&actors_label(q, *p))?;
                        Some(format!("{} {:.2}x", parsers_label(*p), actors / plain_cpu))
                    })
                    .collect();
                println!(
                    "{q}: CPU per tweet, actors over {what}: {}",
                    ratios.join(", ")
                );
            }
        }
    }
    // Issue 5's sliding-cost figure: the time of Q2 with the other windows over its time with
    // the default ones (the same tweets: rates invert the ratio of times).
    // The same ratio for the two loops: of the window's code alone (its state and every result
    // row made), and with the sinks (which write all those rows).
    if let Some((w, s)) = sliding {
        for base in [
            actors_label("q2", most_parsers),
            actors_memory_label("q2", most_parsers),
            plain_label("q2"),
            plain_sinks_label("q2"),
        ] {
            let other = sliding_label(&base, w, s);
            if let (Some(a), Some(b)) = (rate(&base), rate(&other)) {
                let per_round = paired_ratios(&rounds, &base, &other)
                    .into_iter()
                    .map(|(a, b)| a / b);
                println!(
                    "q2 sliding cost: {w} every {s} over {} every {}, {base}: {:.2}x{}",
                    args.window,
                    args.slide,
                    a / b,
                    range_note(per_round)
                );
            }
        }
    }
    // The floor under the sliding cost through the actors: the larger CSV's write and sync.
    if let Some((w, s)) = sliding {
        let base = actors_label("q2", most_parsers);
        let other = sliding_label(&base, w, s);
        let output_bytes = |label: &str| {
            measure(label)
                .and_then(|m| m.output.as_deref())
                .and_then(|o| o.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let (Some(small), Some(large), Some(m)) =
            (output_bytes(&base), output_bytes(&other), measure(&base))
        {
            let timed = |bytes| crate::bench_disk::durable_write_seconds(tmp.path(), bytes, 3);
            match (timed(small), timed(large)) {
                (Ok(a), Ok(b)) => println!(
                    "q2 CSV written and synced alone on this disk (best of 3): {} every {} {:.1} MB in {a:.3} s, {w} every {s} {:.1} MB in {b:.3} s; 1.2x of {base} ({:.3} s) leaves {:.3} s for the {:.1} MB more",
                    args.window,
                    args.slide,
                    small as f64 / 1e6,
                    large as f64 / 1e6,
                    m.seconds,
                    0.2 * m.seconds,
                    large.saturating_sub(small) as f64 / 1e6,
                ),
                (Err(e), _) | (_, Err(e)) => eprintln!("trendflow bench: timing the disk: {e}"),
            }
        }
    }
    // A stream's run: many epochs, each closing windows (Q2) or emitting the whole table (Q1),
    // committing and writing a checkpoint.
    for q in args.queries.iter().filter(|_| args.epochs > 0) {
        let one = actors_label(q, most_parsers);
        let many = epochs_label(&one, args.epochs);
        if let (Some(a), Some(b)) = (measure(&one), measure(&many)) {
            println!(
                "{q} in {} epochs, checkpoints on disk: {:.2}x the time of one epoch, {:.1} MB of checkpoints written ({:.2} MB an epoch), peak RSS {:.0} MB",
                b.epochs,
                b.seconds / a.seconds,
                b.checkpoint_mb,
                b.checkpoint_mb / b.epochs.max(1) as f64,
                b.peak_rss_mb
            );
        }
    }
    let mut latency = None;
    if args.latency_files > 0 {
        match crate::bench_latency::measure(
            &files,
            args.latency_files,
            args.latency_tweets,
            std::time::Duration::from_millis(args.latency_interval_ms),
        )
        .await
        {
            Ok(mut ms) => {
                ms.sort_by(f64::total_cmp);
                let p = |q| crate::bench_latency::percentile(&ms, q);
                println!(
                    "latency, file landed -> visible in SQL (Q1, trigger 0s, {} files of {} tweets every {} ms): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    ms.len(),
                    args.latency_tweets,
                    args.latency_interval_ms,
                    p(50.0),
                    p(90.0),
                    p(99.0),
                    p(100.0)
                );
                latency = Some(
                    serde_json::json!({"files": ms.len(), "p50_ms": p(50.0), "p90_ms": p(90.0), "p99_ms": p(99.0), "max_ms": p(100.0)}),
                );
            }
            Err(e) => {
                eprintln!("trendflow bench: latency: {e}");
                return 1;
            }
        }
    }
    let mut sinks = None;
    if args.sink_rows > 0 {
        let (n, url) = (args.sink_rows, args.postgres_url.clone());
        match tokio::task::spawn_blocking(move || crate::bench_sinks::measure(n, url.as_deref()))
            .await
        {
            Ok(Ok(figures)) => {
                println!(
                    "\n{:<40} {:>10} {:>9} {:>12}",
                    "sink", "rows", "seconds", "rows/s"
                );
                for (label, rows, seconds) in &figures {
                    println!(
                        "{label:<40} {rows:>10} {seconds:>9.3} {:>12.0}",
                        *rows as f64 / seconds
                    );
                }
                sinks = Some(serde_json::json!(figures
                    .iter()
                    .map(|(l, r, s)| serde_json::json!({"sink": l, "rows": r, "seconds": s, "rows_per_s": *r as f64 / s}))
                    .collect::<Vec<_>>()));
            }
            Ok(Err(e)) => {
                eprintln!("trendflow bench: sinks: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!("trendflow bench: sinks: {e}");
                return 1;
            }
        }
    }
    if args.json {
        let v: Vec<_> = results
            .iter()
            .map(|(m, (low, high))| serde_json::json!({"run": m.label, "tweets": m.tweets, "rows": m.rows, "output": m.output, "seconds": m.seconds,
                "seconds_min": low, "seconds_max": high, "cpu_seconds": m.cpu_seconds,
                "tweets_per_s": m.tweets as f64 / m.seconds, "mb_per_s": m.bytes as f64 / 1e6 / m.seconds, "peak_rss_mb": m.peak_rss_mb,
                "epochs": m.epochs, "checkpoint_mb": m.checkpoint_mb}))
            .collect();
        let doc = serde_json::json!({"runs": v, "latency": latency, "sinks": sinks});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
    }
    0
}
