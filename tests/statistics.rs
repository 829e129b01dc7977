//! The statistics pipelines of config/stats/, run on one small hand-made stream
//! (tests/fixtures/stats/posts.ndjson: Twitter v1.1 tweets and a retweet, a delete notice, a
//! Mastodon status, a Bluesky post and a repost of it), against result tables worked out by
//! hand (tests/golden/stats/). Windows are set to 1 hour, tumbling, so each table is small:
//! the posts between 08:00 and 09:00 and one at 10:30.

mod common;

use std::path::Path;

use common::*;

/// Runs `config/stats/<config>.yaml` on the fixture; `sinks` are the file sinks to compare,
/// each with its golden file; `extra` more overrides.
fn check(config: &str, sinks: &[(&str, &str)], extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/stats/posts.ndjson"),
        input.join("posts.ndjson"),
    )
    .unwrap();
    let path = format!("config/stats/{config}.yaml");
    let yaml = std::fs::read_to_string(root().join(&path)).unwrap();
    let mut args: Vec<String> = vec![
        "run".into(),
        path.clone(),
        "--set".into(),
        format!("sources.posts.path={}", input.display()),
        "--set".into(),
        "sources.posts.final_watermark=true".into(),
        "--set".into(),
        "trigger=available_now".into(),
    ];
    // Every windowed stage of the pipeline: 1-hour tumbling windows.
    let lines: Vec<&str> = yaml.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("type: window_") {
            let name = lines[i - 1].trim().trim_end_matches(':');
            for k in ["window", "slide"] {
                args.push("--set".into());
                args.push(format!("transforms.{name}.{k}=1h"));
            }
        }
    }
    for (sink, _) in sinks {
        args.push("--set".into());
        args.push(format!(
            "sinks.{sink}.path={}",
            dir.path().join(format!("{sink}.csv")).display()
        ));
    }
    for e in extra {
        args.push("--set".into());
        args.push(e.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = trendflow(&args, &dir.path().join("run"));
    assert!(
        out.status.success(),
        "{config}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (sink, golden) in sinks {
        let got = std::fs::read_to_string(dir.path().join(format!("{sink}.csv"))).unwrap();
        let want =
            std::fs::read_to_string(Path::new(&root()).join("tests/golden/stats").join(golden))
                .unwrap();
        assert_eq!(got, want, "{config}: sink {sink} differs from {golden}");
    }
}

#[test]
fn top_mentions() {
    check("mentions", &[("result", "mentions.csv")], &[]);
}

#[test]
fn most_active_accounts_and_top_k() {
    check("accounts", &[("result", "accounts.csv")], &[]);
    // Top 2 of each window: ties broken by name.
    check(
        "accounts",
        &[("result", "accounts-top2.csv")],
        &["transforms.active_accounts.top_k=2"],
    );
}

#[test]
fn most_retweeted_posts_and_accounts() {
    check(
        "retweets",
        &[
            ("result", "retweeted-posts.csv"),
            ("accounts_result", "retweeted-accounts.csv"),
        ],
        &[],
    );
}

#[test]
fn link_domains_and_media() {
    check(
        "links-media",
        &[("result", "domains.csv"), ("media_result", "media.csv")],
        &[],
    );
}

#[test]
fn languages() {
    check("languages", &[("result", "languages.csv")], &[]);
}

#[test]
fn output_times_in_a_time_zone() {
    check(
        "languages",
        &[("result", "languages-paris.csv")],
        &["sinks.result.time_zone=Europe/Paris"],
    );
}

#[test]
fn sum_and_distinct_count_per_hashtag() {
    check(
        "reach",
        &[
            ("result", "reach.csv"),
            ("accounts_result", "hashtag-accounts.csv"),
        ],
        &[],
    );
}

#[test]
fn keyword_filter_then_hashtags_across_platforms() {
    check("topic", &[("result", "topic.csv")], &[]);
}
