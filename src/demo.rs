//! `trendflow demo`: the tutorial on a live stream. Three hours of generated tweets are
//! written first (so the sliding windows have history), then a file of fresh tweets lands
//! every second while `config/insee-hashtags.yaml` watches the directory; every few seconds
//! the top 20 hashtags of the latest closed 3-hour window are printed.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use trendflow_config::{Override, build, load_str};
use trendflow_connectors::generator::{GeneratorConfig, TweetGenerator, write_files};
use trendflow_core::metrics::names;
use trendflow_sql::show::show_batches;

/// The demo pipeline, embedded so `trendflow demo` needs no file.
pub const INSEE_HASHTAGS: &str = include_str!("../config/insee-hashtags.yaml");

#[derive(Args)]
pub struct DemoArgs {
    /// Where the stream is written (default: a fresh temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Live tweets per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// Seconds between two displays.
    #[arg(long, default_value_t = 5)]
    pub refresh: u64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Override a value of the embedded pipeline (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub const TOP_QUERY: &str = "select window.start as window_start, window.end as window_end, word, count from hashtags \
     where window.end = (select max(window.end) from hashtags) order by count desc, word limit 20";

pub async fn main(args: DemoArgs) -> i32 {
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = match tempfile::Builder::new().prefix("trendflow-demo-").tempdir() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("trendflow demo: {e}");
                    return 1;
                }
            };
            tmp.path().to_path_buf()
        }
    };
    // History: 3 hours and 5 minutes of event time, about 3 tweets per second.
    let backfill_ms = 185 * 60_000;
    let now = now_ms();
    let mut generator = TweetGenerator::new(GeneratorConfig {
        seed: now as u64,
        start_ms: now - backfill_ms,
        rate: 3.0,
        ..GeneratorConfig::default()
    });
    // Whole files of 1000, not past now.
    let history_files = (backfill_ms / 1000 * 3) as u64 / 1000;
    let history_tweets = history_files * 1000;
    eprintln!(
        "trendflow demo: writing 3 hours of history ({history_tweets} tweets) into {}",
        dir.display()
    );
    if let Err(e) = write_files(
        &dir,
        0,
        history_tweets.div_ceil(1000),
        1000,
        &mut generator,
        &mut |_, _| {},
    ) {
        eprintln!("trendflow demo: {}: {e}", dir.display());
        return 1;
    }
    let mut next_index = history_files;
    // Live tweets come at `rate` per second of event time too, so event time keeps pace with
    // the wall clock.
    let rate = args.rate.max(1);
    let mut generator = TweetGenerator::new(GeneratorConfig {
        seed: now as u64 + 1,
        start_ms: now_ms(),
        rate: rate as f64,
        ..GeneratorConfig::default()
    });

    let mut overrides = vec![Override {
        path: vec!["sources".into(), "tweets".into(), "path".into()],
        value: dir.display().to_string().into(),
        text: "demo dir".into(),
    }];
    overrides.extend(args.set.iter().cloned());
    let config = match load_str(INSEE_HASHTAGS, "config/insee-hashtags.yaml", &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let built = match build(&config) {
        Ok(b) => b,
        Err(errors) => {
            errors
                .iter()
                .for_each(|e| eprintln!("config/insee-hashtags.yaml: {e}"));
            return 2;
        }
    };
    let tables = built.parts.tables.clone();
    let metrics = built.parts.metrics.clone();

    // Live tweets: one file per second, dated now.
    let live = Arc::new(AtomicBool::new(true));
    let writer = {
        let live = live.clone();
        let dir = dir.clone();
        std::thread::spawn(move || {
            while live.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let now = now_ms();
                if generator.clock_ms() < now - 1000 {
                    generator.set_clock_ms(now - 1000);
                }
                if write_files(&dir, next_index, 1, rate, &mut generator, &mut |_, _| {}).is_err() {
                    break;
                }
                next_index += 1;
            }
        })
    };

    let stop_after = args.seconds.map(Duration::from_secs);
    let mut pipeline = tokio::spawn(crate::run::run_built_until(built, stop_after));
    let clear = std::io::stdout().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(args.refresh.max(1)));
    ticker.tick().await;
    let code = loop {
        tokio::select! {
            code = &mut pipeline => break code.unwrap_or(1),
            _ = ticker.tick() => {
                let table = match tables.query_with_schema(TOP_QUERY).await {
                    Ok((schema, b)) if b.iter().map(|x| x.num_rows()).sum::<usize>() > 0 => show_batches(&schema, &b, 20, false),
                    Ok(_) => "(no window closed yet)\n".to_string(),
                    Err(e) => format!("query failed: {e}\n"),
                };
                if clear {
                    print!("\x1b[2J\x1b[H");
                }
                println!(
                    "trendflow demo: top 20 hashtags of the last closed 3-hour window  |  tweets read: {}  late rows dropped: {}  (Ctrl-C stops)\n{table}",
                    metrics.value(names::RECORDS_OUT, "parse"),
                    metrics.total(names::LATE_ROWS_DROPPED),
                );
            }
        }
    };
    live.store(false, Ordering::Relaxed);
    let _ = writer.join();
    code
}
