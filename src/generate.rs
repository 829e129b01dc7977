//! `trendflow generate`: a deterministic, realistic tweet stream written as JSON-lines files.

use std::path::PathBuf;

use clap::Args;
use trendflow_connectors::generator::{GeneratorConfig, TweetGenerator, write_files};
use trendflow_core::time::{format_iso_utc, parse_iso8601};

#[derive(Args, Clone)]
pub struct GenerateArgs {
    /// Directory to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub files: u64,
    #[arg(long, default_value_t = 1000)]
    pub tweets_per_file: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Event time of the first tweet (ISO-8601).
    #[arg(long, default_value = "2021-04-15T08:00:00Z")]
    pub start: String,
    /// Tweets per second of event time.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Fraction of tweets dated earlier than their arrival.
    #[arg(long, default_value_t = 0.03)]
    pub late_fraction: f64,
    /// How much earlier, at most (e.g. 15m).
    #[arg(long, default_value = "15m")]
    pub late_max: String,
    /// Fraction of malformed lines.
    #[arg(long, default_value_t = 0.0)]
    pub bad_fraction: f64,
    #[arg(long, default_value_t = 0.3)]
    pub retweet_fraction: f64,
    /// Number of the first file (to extend an existing stream).
    #[arg(long, default_value_t = 0)]
    pub first_index: u64,
}

impl GenerateArgs {
    pub fn config(&self) -> Result<GeneratorConfig, String> {
        let start_ms = parse_iso8601(&self.start).map_err(|e| format!("--start: {e}"))?;
        let late_max = trendflow_core::duration::parse_duration(&self.late_max)
            .map_err(|e| format!("--late-max: {e}"))?;
        for (name, f) in [
            ("late-fraction", self.late_fraction),
            ("bad-fraction", self.bad_fraction),
            ("retweet-fraction", self.retweet_fraction),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("--{name} must be between 0 and 1"));
            }
        }
        if self.rate <= 0.0 {
            return Err("--rate must be positive".into());
        }
        Ok(GeneratorConfig {
            seed: self.seed,
            start_ms,
            rate: self.rate,
            late_fraction: self.late_fraction,
            late_max_ms: late_max.as_millis() as i64,
            bad_fraction: self.bad_fraction,
            retweet_fraction: self.retweet_fraction,
        })
    }
}

pub fn main(args: GenerateArgs) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trendflow generate: {e}");
            return 2;
        }
    };
    let mut generator = TweetGenerator::new(config);
    let started = std::time::Instant::now();
    let total = args.files;
    let mut bar =
        crate::progress_bar::Bar::new("generate", total, crate::progress_bar::Unit::Files);
    let mut written = 0u64;
    let mut on_file = |i: u64, bytes: u64| {
        let done = i + 1 - args.first_index;
        written += bytes;
        bar.detail(format!(
            "{} written",
            crate::progress_bar::human_bytes(written)
        ));
        bar.set(done);
        if done.is_multiple_of(100) || done == total {
            tracing::debug!(files = done, total, "generated");
        }
    };
    if let Err(e) = write_files(
        &args.out,
        args.first_index,
        args.files,
        args.tweets_per_file,
        &mut generator,
        &mut on_file,
    ) {
        eprintln!("trendflow generate: {}: {e}", args.out.display());
        return 1;
    }
    let s = generator.stats();
    let secs = started.elapsed().as_secs_f64();
    let manifest = serde_json::json!({
        "out": args.out.display().to_string(),
        "files": args.files,
        "tweets_per_file": args.tweets_per_file,
        "seed": args.seed,
        "counts": s,
        "min_event_time": s.min_event_time.map(format_iso_utc),
        "max_event_time": s.max_event_time.map(format_iso_utc),
        "seconds": secs,
        "mb_per_s": s.bytes as f64 / 1e6 / secs.max(1e-9),
    });
    println!("{}", serde_json::to_string_pretty(&manifest).unwrap());
    0
}
