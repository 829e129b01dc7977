//! Real posts from public repositories' fixtures (tests/data/real/, see PROVENANCE.md there):
//! every line becomes posts, a counted stream message, or a dead letter with a precise reason;
//! nothing panics. Set TRENDFLOW_REAL_DATA to a directory (such as ../shared/data) to run the
//! same checks over every `.ndjson` file under it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trendflow_core::metrics::Metrics;
use trendflow_core::post::{EntityKind, Platform};
use trendflow_core::{Batch, Emitter, Operator, PostBatch, RawBatch, Reason};
use trendflow_ops::formats::{FormatOptions, RepostText};
use trendflow_ops::{JsonPostParser, ParserOptions};

struct Parsed {
    lines: usize,
    posts: PostBatch,
    dead: Vec<(u64, Reason, String)>,
    control: u64,
}

fn parse_with(path: &Path, format: FormatOptions) -> Parsed {
    let data = std::fs::read(path).unwrap();
    let lines = data
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let metrics = Metrics::new();
    let mut parser = JsonPostParser::new(
        "parse",
        ParserOptions {
            format,
            ..Default::default()
        },
        &metrics,
    );
    let raw = RawBatch {
        origin: path.display().to_string().into(),
        first_line: 1,
        lines,
        data: data.into(),
    };
    let mut out = Emitter::new();
    parser
        .process_batch(Batch::Raw(Arc::new(raw)), &mut out)
        .unwrap();
    let posts = match out.batches.pop() {
        Some(Batch::Posts(p)) => Arc::try_unwrap(p).unwrap(),
        _ => PostBatch::default(),
    };
    let control = metrics.total(trendflow_core::metrics::names::CONTROL_MESSAGES) as u64;
    Parsed {
        lines,
        posts,
        dead: out
            .dead_letters
            .iter()
            .map(|d| (d.line, d.reason, d.detail.clone()))
            .collect(),
        control,
    }
}

fn parse(path: &Path) -> Parsed {
    parse_with(path, FormatOptions::default())
}

/// Every line is accounted for exactly once: posts, a stream message or a rejection.
fn check_accounted(path: &Path, p: &Parsed) {
    let with_posts: BTreeSet<u64> = p.posts.lines.iter().copied().collect();
    let rejected: BTreeSet<u64> = p
        .dead
        .iter()
        .filter(|d| !matches!(d.1, Reason::MissingEventTime | Reason::BadEventTime))
        .map(|d| d.0)
        .collect();
    assert!(
        with_posts.is_disjoint(&rejected),
        "{}: a line both rejected and read",
        path.display()
    );
    assert_eq!(
        with_posts.len() + rejected.len() + p.control as usize,
        p.lines,
        "{}: lines not accounted for (posts on {}, rejected {}, stream messages {})",
        path.display(),
        with_posts.len(),
        rejected.len(),
        p.control
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.extension().is_some_and(|x| x == "ndjson") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Per file: lines, posts, stream messages, dead letters by reason.
type Summary = BTreeMap<String, (usize, usize, u64, BTreeMap<&'static str, usize>)>;

fn summary(files: &[PathBuf]) -> Summary {
    let mut all = BTreeMap::new();
    for f in files {
        let p = parse(f);
        check_accounted(f, &p);
        let mut reasons = BTreeMap::new();
        for d in &p.dead {
            *reasons.entry(d.1.as_str()).or_insert(0) += 1;
        }
        all.insert(
            f.file_name().unwrap().to_string_lossy().into_owned(),
            (p.lines, p.posts.len(), p.control, reasons),
        );
    }
    all
}

#[test]
fn every_real_line_is_read_counted_or_rejected_with_a_reason() {
    let files = files_under(&fixtures());
    assert!(files.len() >= 8, "fixtures missing: {files:?}");
    let all = summary(&files);
    for (f, (lines, posts, control, reasons)) in &all {
        eprintln!("{f}: {lines} lines, {posts} posts, {control} stream messages, {reasons:?}");
        // Real payloads are valid JSON: no line of them may be lost as unreadable.
        assert!(!reasons.contains_key("invalid_json"), "{f}: {reasons:?}");
        assert!(*posts > 0 || *control as usize == *lines, "{f}: no posts");
    }
}

#[test]
fn the_whole_shared_corpus_when_present() {
    let Ok(dir) = std::env::var("TRENDFLOW_REAL_DATA") else {
        eprintln!("TRENDFLOW_REAL_DATA not set: vendored fixtures only");
        return;
    };
    let all = summary(&files_under(Path::new(&dir)));
    for (f, (lines, posts, control, reasons)) in &all {
        eprintln!("{f}: {lines} lines, {posts} posts, {control} stream messages, {reasons:?}");
        assert!(!reasons.contains_key("invalid_json"), "{f}: {reasons:?}");
    }
}

fn real(path: &str) -> PathBuf {
    fixtures().join(path)
}

/// Index of the post with this id.
fn find(p: &PostBatch, id: &str) -> usize {
    (0..p.len())
        .find(|&i| p.id(i) == id)
        .unwrap_or_else(|| panic!("no post {id}"))
}

fn entities(p: &PostBatch, i: usize, kind: EntityKind) -> Vec<String> {
    p.entities(i)
        .filter(|e| e.0 == kind)
        .map(|e| e.1.to_string())
        .collect()
}

#[test]
fn twitter_v1_full_text_retweets_and_stream_messages() {
    let path = real("tweets-v1/python-twitter-stream.ndjson");
    let full = parse(&path);
    let i = find(&full.posts, "972472958596866048");
    let post = full.posts.fields(i);
    assert!(post.text.ends_with("#Quran"), "{}", post.text);
    assert_eq!(post.author, "Ali_Dokhikh");
    assert_eq!(post.event_time, Some(1_520_690_595_000));
    assert_eq!(entities(&full.posts, i, EntityKind::Hashtag), ["Quran"]);
    // As Spark reads it: the 140-character `text`, and its (empty) entities.
    let sent = parse_with(
        &path,
        FormatOptions {
            text: trendflow_ops::formats::TextChoice::AsSent,
            ..Default::default()
        },
    );
    let i = find(&sent.posts, "972472958596866048");
    assert!(!sent.posts.text(i).contains("#Quran"));
    assert!(entities(&sent.posts, i, EntityKind::Hashtag).is_empty());

    // A retweet (REST `full_text` payload) names its original and author.
    let path = real("tweets-v1/anaconda-json.ndjson");
    let own = parse(&path);
    let i = find(&own.posts, "666006035719692292");
    let f = own.posts.fields(i);
    assert_eq!(
        (f.reposted_id, f.reposted_author),
        ("663022299659034628", "bradfitz")
    );
    assert!(f.text.starts_with("RT @bradfitz"), "{}", f.text);
    let original = parse_with(
        &path,
        FormatOptions {
            reposts: RepostText::Original,
            ..Default::default()
        },
    );
    let i = find(&original.posts, "666006035719692292");
    assert!(!original.posts.text(i).starts_with("RT @"));
    assert_eq!(
        entities(&original.posts, i, EntityKind::Hashtag),
        ["http2", "golang"]
    );

    // delete, limit, scrub_geo, status_withheld, user_withheld: counted, not posts or errors.
    let p = parse(&real("tweets-v1/tweetstream-fixtures.ndjson"));
    assert_eq!((p.control, p.dead.len()), (5, 0));
}

#[test]
fn twitter_v2_pages_resolve_authors_and_retweets_from_includes() {
    let p = parse(&real("tweets-v2/twarc-csv-responses.ndjson"));
    let i = find(&p.posts, "1394735776701816833");
    let f = p.posts.fields(i);
    assert_eq!(f.author, "LachiVeronica");
    assert_eq!(
        (f.reposted_id, f.reposted_author),
        ("1391677057810288641", "bibaigna96")
    );
    assert_eq!(f.event_time, Some(1_621_365_896_000));
    assert_eq!(f.lang, "und");
    assert_eq!(entities(&p.posts, i, EntityKind::Hashtag), ["POIUYTREWQ"]);
    assert_eq!(entities(&p.posts, i, EntityKind::Mention), ["bibaigna96"]);
    assert!(p.posts.platforms.iter().all(|&x| x == Platform::Twitter));
}

#[test]
fn mastodon_html_reblogs_and_tags() {
    let p = parse(&real("mastodon/mastodon-py-cassettes-statuses.ndjson"));
    let i = find(
        &p.posts,
        "http://localhost:3000/ap/users/117020565693913441/statuses/117020569768720055/activity",
    );
    let f = p.posts.fields(i);
    assert_eq!(f.platform, Platform::Mastodon);
    assert_eq!(
        (f.author, f.reposted_author),
        ("admin", "mastodonpy_test_2")
    );
    assert_eq!(f.event_time, Some(1_785_592_190_077));
    // Texts carry no markup.
    for i in 0..p.posts.len() {
        let t = p.posts.text(i);
        assert!(!t.contains("<p>") && !t.contains("&amp;"), "{t}");
    }
    let p = parse(&real("mastodon/rtoot-statuses.ndjson"));
    let tagged = (0..p.posts.len())
        .filter(|&i| !entities(&p.posts, i, EntityKind::Hashtag).is_empty())
        .count();
    assert!(tagged > 0);
}

#[test]
fn bluesky_posts_reposts_and_events() {
    let p = parse(&real("bluesky/jetstream-v1-golden.ndjson"));
    // 10 events: 2 posts or reposts, the rest likes, follows, identity and account events.
    assert_eq!((p.posts.len(), p.control, p.dead.len()), (2, 8, 0));
    let i = find(
        &p.posts,
        "at://did:plc:eizxoqcsvvvarxeb3pjkblrp/app.bsky.feed.repost/3mmoojpbade2i",
    );
    let f = p.posts.fields(i);
    assert_eq!(
        (f.reposted_id, f.reposted_author),
        (
            "at://did:plc:hjloomm2tkve3pmfgbxegl3v/app.bsky.feed.post/3mmood3a6hc25",
            "did:plc:hjloomm2tkve3pmfgbxegl3v"
        )
    );
    assert_eq!(f.event_time, Some(1_779_719_007_388));
    let p = parse(&real("bluesky/twitwi-tap-posts.ndjson"));
    assert_eq!(
        entities(&p.posts, 0, EntityKind::Hashtag),
        ["lackadaisy", "Lackadaisyrocky", "lackadaisyivy"]
    );
    assert_eq!(entities(&p.posts, 0, EntityKind::MediaType), ["image"]);
    assert_eq!(p.posts.fields(0).lang, "en");
    assert!(p.posts.platforms.iter().all(|&x| x == Platform::Bluesky));
}

#[test]
fn parsing_only_what_is_used_gives_the_same_posts() {
    use trendflow_ops::formats::Needs;
    for f in files_under(&fixtures()) {
        let all = parse(&f);
        let lean = parse_with(
            &f,
            FormatOptions {
                needs: Needs::TEXT_ONLY,
                ..Default::default()
            },
        );
        assert_eq!(all.posts.len(), lean.posts.len(), "{}", f.display());
        assert_eq!(all.dead, lean.dead, "{}", f.display());
        for i in 0..all.posts.len() {
            let (a, l) = (all.posts.fields(i), lean.posts.fields(i));
            assert_eq!((a.id, a.text, a.event_time), (l.id, l.text, l.event_time));
            // Twitter payloads skip what is not used (other formats fill everything).
            if a.platform == Platform::Twitter {
                assert_eq!(lean.posts.entities(i).count(), 0);
                assert_eq!(l.followers, None);
            }
        }
    }
}
