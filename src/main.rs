//! `trendflow`: streaming analytics for social-media streams.
//!
//! Commands: `run` a pipeline file, `validate` one, `generate` a realistic tweet stream,
//! query a running pipeline with `sql`, `demo` everything on a live generated stream, and
//! `bench` the tutorial's queries.

/// mimalloc instead of glibc's malloc: with one arena per thread, glibc keeps the memory the
/// actors free (batches, snapshots) and the resident size grows with the run; see ADR 0006.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process unless `MIMALLOC_ALLOW_THP` says
/// otherwise. mimalloc advises huge pages for its large regions (which THP's `madvise` mode,
/// this machine's, then honours) and returns freed memory to the kernel 10 ms after it is
/// free; each page touched again is then a fault that zeroes 2 MB, after compacting memory
/// to find them. The actors free and allocate batches all the time: with huge pages, Q2 over
/// 200k tweets ran in 0.36-0.82 s with 0.13-0.72 s of system time (a quarter of its cycles in
/// `clear_page` under `do_huge_pmd_anonymous_page`), without them in 0.38-0.41 s; see ADR 0006.
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
fn disable_transparent_huge_pages(allow_thp: Option<std::ffi::OsString>) {
    #[cfg(target_os = "linux")]
    if allow_thp.is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integers and touches no memory of the process; it
        // applies to existing mappings as well as to later ones.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

mod bench;
mod bench_cluster;
mod bench_disk;
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
    disable_transparent_huge_pages(std::env::var_os("MIMALLOC_ALLOW_THP"));
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn thp_disabled() -> i32 {
        // SAFETY: PR_GET_THP_DISABLE reads a flag of the process.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }
    }

    #[test]
    fn huge_pages_are_off_unless_mimalloc_allow_thp_is_set() {
        // SAFETY: as above; clears the flag so that the test starts from THP allowed.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
        super::disable_transparent_huge_pages(Some("1".into()));
        assert_eq!(thp_disabled(), 0);
        super::disable_transparent_huge_pages(None);
        assert_eq!(thp_disabled(), 1);
    }
}
