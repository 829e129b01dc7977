//! Latency of `trendflow bench`: how long a file that lands in a watched directory takes to
//! be visible in the SQL table. Files of tweets are renamed one by one into the directory of
//! the tutorial's Q1 pipeline (memory table updated at every epoch) run with a 0s trigger;
//! a file is visible once the epoch that read it has committed (the memory sink's commit
//! makes the epoch's table visible to SQL; the time reported also includes the checkpoint
//! written after it, so it is an upper bound).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trendflow_config::{Override, build, load_str};

use crate::bench::TUTORIAL_Q1;

/// Latencies in ms of `files` files of `tweets_per_file` tweets each, taken from the lines
/// of `source` files, landing every `interval`.
pub async fn measure(
    source: &[std::path::PathBuf],
    files: usize,
    tweets_per_file: usize,
    interval: Duration,
) -> Result<Vec<f64>, String> {
    // The files' contents, prepared before the clock starts.
    let mut lines = Vec::new();
    for f in source {
        let data = std::fs::read(f).map_err(|e| e.to_string())?;
        lines.extend(
            data.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
        if lines.len() >= files * tweets_per_file {
            break;
        }
    }
    if lines.len() < files * tweets_per_file {
        return Err("not enough tweets for the latency files".into());
    }
    let contents: Vec<Vec<u8>> = lines
        .chunks(tweets_per_file)
        .take(files)
        .map(|c| {
            c.iter()
                .flat_map(|l| l.iter().copied().chain([b'\n']))
                .collect()
        })
        .collect();

    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let watched = tmp.path().join("in");
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&watched).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    let set: Vec<Override> = [
        format!("sources.tweets.path={}", watched.display()),
        format!("sinks.result.path={}", tmp.path().join("q1.csv").display()),
        "trigger=0s".to_string(),
        "api.enabled=false".to_string(),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let config = load_str(TUTORIAL_Q1, "q1", &set).map_err(|e| e.to_string())?;
    let built = build(&config).map_err(|e| e.join("; "))?;
    let (supervisor, _parts) = built.into_supervisor();
    let stop = supervisor.stop_handle();

    // Landing instants, in order; files are read in landing (modification time) order.
    let landed: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let writer = {
        let landed = landed.clone();
        std::thread::spawn(move || {
            for (i, c) in contents.iter().enumerate() {
                let name = format!("lat-{i:06}.json");
                let staged = staging.join(&name);
                std::fs::write(&staged, c).expect("write a latency file");
                let mut l = landed.lock().unwrap();
                std::fs::rename(&staged, watched.join(&name)).expect("land a latency file");
                l.push(Instant::now());
                drop(l);
                std::thread::sleep(interval);
            }
        })
    };
    let mut latencies = Vec::with_capacity(files);
    let mut committed_records = 0u64;
    let mut stopping = false;
    supervisor
        .run(|summary| {
            let now = Instant::now();
            committed_records += summary.records;
            let done = (committed_records / tweets_per_file as u64) as usize;
            let landed = landed.lock().unwrap();
            while latencies.len() < done.min(landed.len()) {
                let at = landed[latencies.len()];
                latencies.push(now.duration_since(at).as_secs_f64() * 1000.0);
            }
            if latencies.len() == files && !stopping {
                stopping = true;
                let stop = stop.clone();
                tokio::spawn(async move { stop.stop().await });
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    writer
        .join()
        .map_err(|_| "the latency writer failed".to_string())?;
    if latencies.len() < files {
        return Err(format!(
            "only {} of {files} files were seen",
            latencies.len()
        ));
    }
    Ok(latencies)
}

/// The p-th percentile (0-100) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
