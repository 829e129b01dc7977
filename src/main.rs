//! `trendflow`: streaming analytics for social-media streams.
//!
//! Commands: `run` a pipeline file, `validate` one, `generate` a realistic tweet stream,
//! query a running pipeline with `sql`, `demo` everything on a live generated stream, and
//! `bench` the tutorial's queries.

/// mimalloc instead of glibc's malloc: with one arena per thread, glibc keeps the memory the
/// actors free (batches, snapshots) and the resident size grows with the run; see ADR 0006.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_cluster;
mod bench_latency;
mod bench_sinks;
mod cluster_status;
mod demo;
mod generate;
mod manage;
mod merge_view;
mod progress;
mod progress_bar;
mod registry;
mod run;
mod sql;
mod tap;
mod top;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use trendflow_config::Override;

#[derive(Parser)]
#[command(
    name = "trendflow",
    version,
    about = "Trending hashtags, mentions and more over sliding windows of social-media streams"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Workers, their partitions, lag and checkpoints, and the global watermark.
    Status(cluster_status::ClusterStatusArgs),
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline defined in YAML.
    Run {
        pipeline: PathBuf,
        /// Override a config value: --set sources.tweets.path=DIR (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
    },
    /// Check a pipeline file and report every problem at once.
    Validate {
        pipeline: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<Override>,
    },
    /// Write a deterministic, realistic stream of Twitter API v1.1 tweets as JSON-lines files.
    Generate(generate::GenerateArgs),
    /// Query the memory tables of a running pipeline.
    Sql(sql::SqlArgs),
    /// The dashboard's figures in the terminal, refreshed: status, components, top keys.
    Top(top::TopArgs),
    /// Print samples of the records a component of a running pipeline sends on, as they pass.
    Tap(tap::TapArgs),
    /// Run as one of several workers sharing the pipeline's Kafka topic (its `cluster`
    /// section): one pipeline per partition this worker owns (docs/scale-out.md).
    Worker(worker::WorkerArgs),
    /// Scale-out workers: `cluster status PIPELINE.yaml` shows workers, their partitions,
    /// lag per partition and the global watermark.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// A live generated stream through config/insee-hashtags.yaml, with the top hashtags of the
    /// last 3 hours shown every few seconds. Ctrl-C stops.
    Demo(demo::DemoArgs),
    /// Measure the tutorial's queries on generated tweets.
    Bench(bench::BenchArgs),
    /// List running pipelines (Spark's `spark.streams.active`).
    Ps {
        /// Also the last run of stopped pipelines, from their event log.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop a running pipeline gracefully: its epoch finishes and its checkpoint is written.
    Stop {
        name: String,
        /// Seconds to wait for it to exit.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

/// Whether the log is JSON lines (`--log-format json`): then every line on stderr is one.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn json_logs() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A line for the person at the terminal (where a pipeline listens): as it is in a text log,
/// as a log record in a JSON one.
pub fn announce(line: &str) {
    if json_logs() {
        tracing::info!("{line}");
    } else {
        eprintln!("{line}");
    }
}

fn init_logs(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("TRENDFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if format == "json" {
        JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
        builder.json().init();
        // A panic (the supervisor restarts the pipeline after it) is a log record too, not
        // lines of text among the JSON ones.
        std::panic::set_hook(Box::new(|info| {
            let backtrace = std::backtrace::Backtrace::capture();
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("unnamed");
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                tracing::error!(panic = %info, thread, backtrace = %backtrace, "panicked");
            } else {
                tracing::error!(panic = %info, thread, "panicked");
            }
        }));
    } else {
        builder.init();
    }
}

fn main() {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run { pipeline, set } => run::run_file(&pipeline, &set).await,
            Command::Validate { pipeline, set } => run::validate(&pipeline, &set),
            Command::Generate(args) => generate::main(args),
            Command::Sql(args) => sql::main(args).await,
            Command::Top(args) => top::main(args).await,
            Command::Tap(args) => tap::main(args).await,
            Command::Worker(args) => worker::main(args).await,
            Command::Cluster(ClusterCommand::Status(args)) => cluster_status::main(args).await,
            Command::Demo(args) => demo::main(args).await,
            Command::Bench(args) => bench::main(args).await,
            Command::Ps { all, json } => manage::ps(all, json).await,
            Command::Stop { name, timeout } => {
                manage::stop(&name, std::time::Duration::from_secs(timeout)).await
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
