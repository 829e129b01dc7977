//! `trendflow cluster status PIPELINE.yaml`: the workers of a scale-out pipeline, which
//! partitions each owns, each partition's lag and checkpoint, and the global watermark, read
//! from Kafka (the group's members and assignments, the partitions' offsets) and from the
//! checkpoint root; no coordinator of its own (docs/scale-out.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use trendflow_config::{Override, SourceConfig, checkpoint_store, load_file};
use trendflow_core::time::format_iso_utc;
use trendflow_runtime::checkpoint::Checkpointer;

#[derive(Args)]
pub struct ClusterStatusArgs {
    pub pipeline: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
}

/// The group the partitions' pipelines commit their offsets to, for lag (never joined).
pub fn offsets_group(group_id: &str) -> String {
    format!("{group_id}-offsets")
}

/// A member's assignment, as Kafka's consumer protocol encodes it: version, then topics with
/// their partitions.
fn assigned_partitions(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let mut at = 2; // version
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let s = bytes.get(*at..*at + n)?;
        *at += n;
        Some(s)
    };
    let i32_at = |at: &mut usize| take(at, 4).map(|b| i32::from_be_bytes(b.try_into().unwrap()));
    let Some(topics) = i32_at(&mut at) else {
        return out;
    };
    for _ in 0..topics.max(0) {
        let Some(len) = take(&mut at, 2).map(|b| i16::from_be_bytes(b.try_into().unwrap())) else {
            break;
        };
        let Some(name) = take(&mut at, len.max(0) as usize) else {
            break;
        };
        let topic = String::from_utf8_lossy(name).into_owned();
        let Some(n) = i32_at(&mut at) else { break };
        for _ in 0..n.max(0) {
            if let Some(p) = i32_at(&mut at) {
                out.push((topic.clone(), p));
            }
        }
    }
    out
}

pub async fn main(args: ClusterStatusArgs) -> i32 {
    let config = match load_file(&args.pipeline, &args.set) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let Some(cluster) = config.cluster.clone() else {
        eprintln!("trendflow cluster status: the pipeline has no `cluster` section");
        return 2;
    };
    let Some(kafka) = config.sources.values().find_map(|s| match s {
        SourceConfig::Kafka(k) => Some(k.clone()),
        _ => None,
    }) else {
        eprintln!("trendflow cluster status: the pipeline has no kafka source");
        return 2;
    };
    let name = config.name.clone().unwrap_or_else(|| {
        args.pipeline
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", offsets_group(&cluster.group_id))
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trendflow cluster status: {e}");
            return 2;
        }
    };
    // Who owns what.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut workers = Vec::new();
    match consumer.fetch_group_list(Some(&cluster.group_id), timeout) {
        Ok(groups) => {
            for g in groups.groups() {
                for m in g.members() {
                    let parts = m.assignment().map(assigned_partitions).unwrap_or_default();
                    let who = format!("{} ({})", m.client_host(), &m.id()[..m.id().len().min(24)]);
                    workers.push((who.clone(), parts.len()));
                    for p in parts {
                        owner.insert(p, who.clone());
                    }
                }
                println!(
                    "group {} ({}), {} workers",
                    g.name(),
                    g.state(),
                    g.members().len()
                );
            }
        }
        Err(e) => println!("group {}: {e}", cluster.group_id),
    }
    for (w, n) in &workers {
        println!("  worker {w}: {n} partitions");
    }
    // Each partition: owner, offsets, lag, checkpoint.
    let metadata = match consumer.fetch_metadata(None, timeout) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("trendflow cluster status: {e}");
            return 1;
        }
    };
    let mut list = TopicPartitionList::new();
    let mut partitions = Vec::new();
    for t in metadata.topics() {
        if kafka.topics.iter().any(|x| x == t.name()) {
            for p in t.partitions() {
                list.add_partition(t.name(), p.id());
                partitions.push((t.name().to_string(), p.id()));
            }
        }
    }
    let committed = consumer.committed_offsets(list, timeout).ok();
    println!(
        "{:<24} {:>10} {:>10} {:>8} {:>7}  {:<24} owner",
        "partition", "end", "committed", "lag", "epoch", "watermark"
    );
    let mut global: Option<i64> = None;
    let local_root = (!cluster.checkpoint_root.starts_with("s3"))
        .then(|| PathBuf::from(&cluster.checkpoint_root));
    for (topic, p) in &partitions {
        let end = consumer
            .fetch_watermarks(topic, *p, timeout)
            .map(|(_, high)| high)
            .ok();
        let done = committed
            .as_ref()
            .and_then(|c| match c.find_partition(topic, *p)?.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        // The partition's checkpoint, on a directory or S3 (the pipeline's `s3` settings).
        let path = format!("{}/p{p}", cluster.checkpoint_root.trim_end_matches('/'));
        let checkpoint = match checkpoint_store(&config, Path::new(&path)) {
            Ok((store, _)) => Checkpointer::new(store, 2)
                .load_latest(&format!("{name}-p{p}"))
                .await
                .ok()
                .flatten(),
            Err(e) => {
                eprintln!("trendflow cluster status: {e}");
                None
            }
        };
        let watermark = checkpoint.as_ref().and_then(|c| c.watermark);
        // Without the group's description (brokers that do not answer it), the owner the
        // workers record next to the checkpoints.
        let recorded_owner = local_root.as_ref().and_then(|root| {
            std::fs::read_to_string(root.join(format!("p{p}")).join("owner"))
                .ok()
                .map(|s| s.trim().to_string())
        });
        if let Some(w) = watermark.filter(|&w| w > 0) {
            global = Some(global.map_or(w, |g: i64| g.min(w)));
        }
        let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "{:<24} {:>10} {:>10} {:>8} {:>7}  {:<24} {}",
            format!("{topic}/{p}"),
            show(end),
            show(done),
            show(end.zip(done).map(|(e, d)| e - d)),
            show(checkpoint.as_ref().map(|c| c.epoch as i64)),
            watermark.map_or("-".into(), format_iso_utc),
            owner
                .get(&(topic.clone(), *p))
                .cloned()
                .or(recorded_owner)
                .unwrap_or_else(|| "(unassigned)".into())
        );
    }
    println!(
        "global watermark (minimum over partitions): {}",
        global.map_or("none yet".into(), format_iso_utc)
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_consumer_protocol_assignment() {
        let mut b = vec![0, 1]; // version 1
        b.extend(1i32.to_be_bytes()); // one topic
        b.extend(6i16.to_be_bytes());
        b.extend(b"tweets");
        b.extend(2i32.to_be_bytes());
        b.extend(3i32.to_be_bytes());
        b.extend(7i32.to_be_bytes());
        b.extend((-1i32).to_be_bytes()); // no user data
        assert_eq!(
            assigned_partitions(&b),
            vec![("tweets".to_string(), 3), ("tweets".to_string(), 7)]
        );
        assert_eq!(assigned_partitions(&[0, 1, 0]), vec![]);
    }
}
