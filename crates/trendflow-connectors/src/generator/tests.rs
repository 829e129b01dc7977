use std::collections::{HashMap, HashSet};

use serde_json::Value;
use trendflow_core::time::{format_created_at, parse_created_at};

use super::*;

/// (kind, byte range without the newline) of each generated line.
type Lines = Vec<(LineKind, std::ops::Range<usize>)>;

/// Generates `n` lines; returns the buffer, the lines and the generator.
fn generate(cfg: GeneratorConfig, n: usize) -> (Vec<u8>, Lines, TweetGenerator) {
    let mut g = TweetGenerator::new(cfg);
    let mut buf = Vec::new();
    let mut lines = Vec::with_capacity(n);
    for _ in 0..n {
        let start = buf.len();
        let kind = g.next_line(&mut buf);
        assert_eq!(buf.last(), Some(&b'\n'), "every line ends with a newline");
        assert!(
            !buf[start..buf.len() - 1].contains(&b'\n'),
            "one line per call"
        );
        lines.push((kind, start..buf.len() - 1));
    }
    (buf, lines, g)
}

fn cfg(seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        ..GeneratorConfig::default()
    }
}

fn is_twitter_created_at(s: &str) -> bool {
    s.len() == 30 && parse_created_at(s).is_ok_and(|t| format_created_at(t) == s)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Hashtags as a reader would find them: '#' not preceded by a word character, followed by
/// word characters (not all digits). (code-point index, tag, index after the tag)
fn scan_hashtags(text: &str) -> Vec<(usize, String, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        if chars[i] != '#' || (i > 0 && is_tag_char(chars[i - 1])) {
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && is_tag_char(chars[j]) {
            j += 1;
        }
        let tag: String = chars[i + 1..j].iter().collect();
        if !tag.is_empty() && !tag.chars().all(|c| c.is_ascii_digit()) {
            out.push((i, tag, j));
        }
    }
    out
}

fn slice_chars(text: &str, start: u64, end: u64) -> String {
    text.chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect()
}

/// Checks the entities of one text against the text itself.
fn check_entities(text: &str, entities: &Value, what: &str) {
    let chars: Vec<char> = text.chars().collect();
    let hashtags = entities["hashtags"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no hashtags array"));
    let mut from_entities = Vec::new();
    for h in hashtags {
        let tag = h["text"].as_str().unwrap();
        let (s, e) = (
            h["indices"][0].as_u64().unwrap(),
            h["indices"][1].as_u64().unwrap(),
        );
        assert_eq!(
            slice_chars(text, s, e),
            format!("#{tag}"),
            "{what}: hashtag indices in {text:?}"
        );
        from_entities.push((s as usize, tag.to_string()));
    }
    let scanned = scan_hashtags(text);
    let mut from_text: Vec<(usize, String)> =
        scanned.iter().map(|(i, t, _)| (*i, t.clone())).collect();
    // A retweet's text may cut a hashtag in two just before the final "…": Twitter leaves
    // it out of the entities.
    if from_text.len() == from_entities.len() + 1 {
        let (_, _, end) = scanned.last().unwrap();
        assert!(
            *end == chars.len() - 1 && chars[*end] == '…',
            "{what}: unexpected hashtag in {text:?}"
        );
        from_text.pop();
    }
    assert_eq!(from_text, from_entities, "{what}: hashtags of {text:?}");
    for m in entities["user_mentions"].as_array().unwrap() {
        let (s, e) = (
            m["indices"][0].as_u64().unwrap(),
            m["indices"][1].as_u64().unwrap(),
        );
        assert_eq!(
            slice_chars(text, s, e),
            format!("@{}", m["screen_name"].as_str().unwrap()),
            "{what}: mention in {text:?}"
        );
        assert_eq!(
            m["id_str"].as_str().unwrap(),
            m["id"].as_u64().unwrap().to_string()
        );
    }
    for u in entities["urls"].as_array().unwrap() {
        let (s, e) = (
            u["indices"][0].as_u64().unwrap(),
            u["indices"][1].as_u64().unwrap(),
        );
        let url = u["url"].as_str().unwrap();
        assert!(
            url.starts_with("https://t.co/") && url.len() == 23,
            "{what}: {url}"
        );
        assert_eq!(slice_chars(text, s, e), url, "{what}: url in {text:?}");
        assert!(u["expanded_url"].as_str().unwrap().starts_with("http"));
        assert!(!u["display_url"].as_str().unwrap().starts_with("http"));
    }
    for s in entities["symbols"].as_array().unwrap() {
        let (a, b) = (
            s["indices"][0].as_u64().unwrap(),
            s["indices"][1].as_u64().unwrap(),
        );
        assert_eq!(
            slice_chars(text, a, b),
            format!("${}", s["text"].as_str().unwrap())
        );
    }
}

/// Checks a status object (top-level or nested) and returns how many hashtags it has.
fn check_status(v: &Value, top: bool) {
    let what = if top { "top" } else { "nested" };
    let created = v["created_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: created_at in {v}"));
    assert!(is_twitter_created_at(created), "{created:?}");
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["id_str"].as_str().unwrap(), id.to_string());
    let text = v["text"].as_str().unwrap();
    assert!(
        text.chars().count() <= 140,
        "{what}: text longer than 140: {text:?}"
    );
    let user = v["user"].as_object().unwrap();
    assert!(user.len() >= 38, "user has {} fields", user.len());
    for key in [
        "id",
        "id_str",
        "name",
        "screen_name",
        "followers_count",
        "statuses_count",
        "created_at",
        "profile_image_url_https",
    ] {
        assert!(user.contains_key(key), "user.{key}");
    }
    assert!(is_twitter_created_at(user["created_at"].as_str().unwrap()));
    let sn = user["screen_name"].as_str().unwrap();
    assert!(
        !sn.is_empty()
            && sn.len() <= 15
            && sn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{sn:?}"
    );
    for key in [
        "source",
        "truncated",
        "in_reply_to_status_id",
        "in_reply_to_user_id",
        "in_reply_to_screen_name",
        "geo",
        "coordinates",
        "place",
        "is_quote_status",
        "retweet_count",
        "favorite_count",
        "entities",
        "filter_level",
        "lang",
    ] {
        assert!(v.get(key).is_some(), "{what}: missing {key}");
    }
    assert_eq!(v.get("timestamp_ms").is_some(), top);
    check_entities(text, &v["entities"], what);
    let truncated = v["truncated"].as_bool().unwrap();
    assert_eq!(truncated, v.get("extended_tweet").is_some());
    if truncated {
        let ext = &v["extended_tweet"];
        let full = ext["full_text"].as_str().unwrap();
        let n = full.chars().count() as u64;
        assert!(n > 140 && n <= 280, "{n}");
        assert_eq!(ext["display_text_range"][1].as_u64().unwrap(), n);
        check_entities(full, &ext["entities"], "extended");
        let (kept, link) = text
            .rsplit_once("… ")
            .expect("truncated text ends with '… https://t.co/…'");
        assert!(link.starts_with("https://t.co/"), "{text:?}");
        assert!(
            full.starts_with(kept),
            "{kept:?} is not a prefix of {full:?}"
        );
    }
    if let Some(rt) = v.get("retweeted_status") {
        check_status(rt, false);
        let author = rt["user"]["screen_name"].as_str().unwrap();
        let prefix = format!("RT @{author}: ");
        assert!(text.starts_with(&prefix), "{text:?}");
        let original = rt["extended_tweet"]["full_text"]
            .as_str()
            .or(rt["text"].as_str())
            .unwrap();
        let rest = &text[prefix.len()..];
        match rest.strip_suffix('…') {
            Some(cut) if !original.starts_with(rest) => {
                assert!(original.starts_with(cut));
                assert_eq!(text.chars().count(), 140);
            }
            _ => assert_eq!(rest, original),
        }
        assert!(
            parse_created_at(rt["created_at"].as_str().unwrap()).unwrap()
                < parse_created_at(created).unwrap()
        );
    }
    if let Some(q) = v.get("quoted_status") {
        check_status(q, false);
        assert!(v["is_quote_status"].as_bool().unwrap());
        assert_eq!(
            v["quoted_status_id"].as_u64().unwrap(),
            q["id"].as_u64().unwrap()
        );
        assert!(
            v["quoted_status_permalink"]["expanded"]
                .as_str()
                .unwrap()
                .ends_with(&q["id_str"].as_str().unwrap())
        );
    }
}

/// The raw JSON value of the first `"text"` of a line (escapes kept).
fn raw_text(line: &[u8]) -> &[u8] {
    let start = memchr::memmem::find(line, b"\"text\":\"").unwrap() + 8;
    let mut i = start;
    loop {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return &line[start..i],
            _ => i += 1,
        }
    }
}

#[test]
fn deterministic() {
    let (a, _, ga) = generate(cfg(42), 500);
    let (b, _, gb) = generate(cfg(42), 500);
    assert!(a == b, "same seed, same bytes");
    assert_eq!(ga.stats().bytes, gb.stats().bytes);
    let (c, _, _) = generate(cfg(43), 500);
    assert!(a != c, "different seed, different bytes");
    // Also with bad lines and late tweets.
    let bad = GeneratorConfig {
        seed: 9,
        bad_fraction: 0.3,
        late_fraction: 0.2,
        ..GeneratorConfig::default()
    };
    assert!(generate(bad.clone(), 300).0 == generate(bad, 300).0);
}

#[test]
fn created_at_matches_core_formatter() {
    let mut rng = Rng::new(5);
    for _ in 0..10_000 {
        let ms = rng.below(4_000_000_000_000) as i64 - 1_000_000_000_000;
        let mut out = Vec::new();
        write_created_at(&mut out, ms);
        assert_eq!(std::str::from_utf8(&out).unwrap(), format_created_at(ms));
    }
}

#[test]
fn escaping_is_twitters() {
    let cases = [
        ("a/b", "a\\/b"),
        ("é", "\\u00e9"),
        ("👉", "\\ud83d\\udc49"),
        ("✊", "\\u270a"),
        ("\"\\\n\r\t", "\\\"\\\\\\n\\r\\t"),
        ("\u{1}\u{1f}\u{7f}", "\\u0001\\u001f\u{7f}"),
        ("L’#emploi", "L\\u2019#emploi"),
        ("🇫🇷", "\\ud83c\\uddeb\\ud83c\\uddf7"),
    ];
    for (input, expected) in cases {
        let mut out = Vec::new();
        escape_into(&mut out, input);
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    }
    // Every code point round-trips through serde_json.
    let all: String = (0u32..0x11_0000).filter_map(char::from_u32).collect();
    let mut out = b"\"".to_vec();
    escape_into(&mut out, &all);
    out.push(b'"');
    assert!(out.is_ascii());
    assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), all);
}

#[test]
fn good_lines_are_valid_tweets() {
    let n = 2000;
    let (buf, lines, g) = generate(cfg(1), n);
    let (mut retweets, mut quotes, mut extended, mut control, mut fr, mut replies, mut places) =
        (0, 0, 0, 0, 0, 0, 0);
    let mut last_id = 0;
    let mut statuses = 0;
    for (kind, range) in &lines {
        let line = &buf[range.clone()];
        assert!(line.is_ascii());
        let v: Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
        match kind {
            LineKind::Tweet | LineKind::Retweet => {
                statuses += 1;
                check_status(&v, true);
                assert_eq!(
                    *kind == LineKind::Retweet,
                    v.get("retweeted_status").is_some()
                );
                let id = v["id"].as_u64().unwrap();
                assert!(id > last_id, "ids increase");
                last_id = id;
                retweets += (*kind == LineKind::Retweet) as u32;
                quotes += v.get("quoted_status").is_some() as u32;
                extended += v["truncated"].as_bool().unwrap() as u32;
                fr += (v["lang"] == "fr") as u32;
                replies += v["in_reply_to_status_id"].is_u64() as u32;
                places += v["place"].is_object() as u32;
                assert_eq!(v["filter_level"], "low");
                let ts: i64 = v["timestamp_ms"].as_str().unwrap().parse().unwrap();
                let created = parse_created_at(v["created_at"].as_str().unwrap()).unwrap();
                assert!(created <= ts);
            }
            LineKind::Control => {
                control += 1;
                if let Some(d) = v.get("delete") {
                    assert_eq!(
                        d["status"]["id_str"].as_str().unwrap(),
                        d["status"]["id"].as_u64().unwrap().to_string()
                    );
                    assert!(d["timestamp_ms"].as_str().unwrap().parse::<i64>().is_ok());
                } else {
                    assert!(v["limit"]["track"].is_u64());
                }
            }
            LineKind::Bad(_) => panic!("bad line with bad_fraction 0"),
        }
    }
    let s = g.stats();
    assert_eq!(s.lines, n as u64);
    assert_eq!(s.bytes, buf.len() as u64);
    assert_eq!(s.tweets + s.retweets + s.control + s.bad, s.lines);
    assert_eq!(
        (s.retweets, s.quotes, s.extended, s.control),
        (
            retweets as u64,
            quotes as u64,
            extended as u64,
            control as u64
        )
    );
    let avg = buf.len() as f64 / n as f64;
    println!(
        "avg {avg:.0} B/line, retweets {retweets}, quotes {quotes}, extended {extended}, control {control}, fr {fr}, replies {replies}, places {places} of {statuses}"
    );
    assert!((3000.0..5000.0).contains(&avg), "average line {avg} bytes");
    let rf = retweets as f64 / statuses as f64;
    assert!((0.26..0.34).contains(&rf), "retweet fraction {rf}");
    let qf = quotes as f64 / statuses as f64;
    assert!((0.03..0.07).contains(&qf), "quote fraction {qf}");
    let originals = (statuses - retweets - quotes) as f64;
    let ef = extended as f64 / originals;
    assert!(
        (0.25..0.45).contains(&ef),
        "extended fraction of originals {ef}"
    );
    assert!(control < 20);
    assert!(fr as f64 > 0.95 * statuses as f64);
    assert!(replies > 0 && places > 0);
    assert!(s.min_event_time.unwrap() <= s.max_event_time.unwrap());
}

#[test]
fn text_round_trips_and_is_escaped() {
    let (buf, lines, _) = generate(cfg(3), 1000);
    let (mut non_ascii, mut astral, mut newlines) = (0, 0, 0);
    assert!(
        memchr::memmem::find(&buf, b"\\/").is_some(),
        "'/' is written as \\/"
    );
    assert!(
        memchr::memmem::find(&buf, b"\\ud83d\\u").is_some(),
        "astral characters as surrogate pairs"
    );
    for (kind, range) in &lines {
        if *kind == LineKind::Control {
            continue;
        }
        let line = &buf[range.clone()];
        let v: Value = serde_json::from_slice(line).unwrap();
        let text = v["text"].as_str().unwrap();
        non_ascii += !text.is_ascii() as u32;
        astral += text.chars().any(|c| c as u32 > 0xFFFF) as u32;
        newlines += text.contains('\n') as u32;
        // Re-escaping the decoded text gives back the bytes on the line.
        let mut again = Vec::new();
        escape_into(&mut again, text);
        assert_eq!(again, raw_text(line));
        assert!(
            !raw_text(line).contains(&b'/')
                || raw_text(line)
                    .windows(2)
                    .all(|w| w[1] != b'/' || w[0] == b'\\')
        );
    }
    println!("non-ASCII texts {non_ascii}, with astral chars {astral}, with newlines {newlines}");
    assert!(non_ascii > 900);
    assert!(astral > 50);
    assert!(newlines > 30);
}

#[test]
fn hashtags_follow_zipf_and_glue_to_punctuation() {
    let (buf, lines, _) = generate(cfg(11), 5000);
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut texts = String::new();
    for (kind, range) in &lines {
        if !matches!(kind, LineKind::Tweet | LineKind::Retweet) {
            continue;
        }
        let v: Value = serde_json::from_slice(&buf[range.clone()]).unwrap();
        let status = v.get("retweeted_status").unwrap_or(&v);
        let (text, entities) = match status.get("extended_tweet") {
            Some(ext) => (ext["full_text"].as_str().unwrap(), &ext["entities"]),
            None => (status["text"].as_str().unwrap(), &status["entities"]),
        };
        texts.push_str(text);
        texts.push('\u{0}');
        for h in entities["hashtags"].as_array().unwrap() {
            *counts
                .entry(h["text"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let mut ranked: Vec<_> = counts.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!(
        "{} distinct hashtags; top: {:?}",
        ranked.len(),
        &ranked[..10]
    );
    assert!(ranked.len() > 200);
    let top: Vec<&str> = ranked[..5].iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        top.contains(&"Insee") && top.contains(&"chômage"),
        "{top:?}"
    );
    for variant in [
        "Insee",
        "INSEE",
        "insee",
        "économie",
        "démographie",
        "société",
        "PIB",
    ] {
        assert!(counts.contains_key(variant), "#{variant}");
    }
    // Zipf: the top tag is roughly twice as frequent as the second... and far above the tail.
    assert!(*ranked[0].1 > 2 * *ranked[20].1);
    for glued in [
        "L’#",
        "d’#",
        "(#",
        "«#",
        "«\u{a0}#",
        "\n\n#",
        "#PIB.",
        "#Insee,",
    ] {
        assert!(texts.contains(glued), "{glued:?} never occurs");
    }
    // Hashtags followed by punctuation, as in "#PIB." and "#loyers,".
    let chars: Vec<char> = texts.chars().collect();
    let followed_by = |p: char| {
        scan_hashtags(&texts)
            .iter()
            .filter(|(_, _, end)| chars.get(*end) == Some(&p))
            .count()
    };
    assert!(followed_by(',') > 50 && followed_by('.') > 50 && followed_by(')') > 50);
}

#[test]
fn bad_lines_are_what_they_say() {
    let config = GeneratorConfig {
        seed: 4,
        bad_fraction: 0.2,
        ..GeneratorConfig::default()
    };
    let (buf, lines, g) = generate(config, 3000);
    let mut seen: HashMap<BadKind, u64> = HashMap::new();
    let mut surrogate_parse_failures = 0;
    let mut good = 0;
    for (kind, range) in &lines {
        let line = &buf[range.clone()];
        match kind {
            LineKind::Bad(b) => {
                *seen.entry(*b).or_default() += 1;
                match b {
                    BadKind::Empty => assert!(line.is_empty()),
                    BadKind::Truncated => {
                        assert!(!line.is_empty());
                        assert!(std::str::from_utf8(line).is_ok());
                        assert!(
                            serde_json::from_slice::<Value>(line).is_err(),
                            "{}",
                            String::from_utf8_lossy(line)
                        );
                    }
                    BadKind::InvalidUtf8 => {
                        assert!(std::str::from_utf8(line).is_err());
                        assert!(serde_json::from_slice::<Value>(line).is_err());
                    }
                    BadKind::LoneSurrogate => {
                        let failed = serde_json::from_slice::<Value>(line).is_err();
                        surrogate_parse_failures += failed as u32;
                        let s = std::str::from_utf8(line).unwrap();
                        let lone = ["\\ud83d", "\\ud83c", "\\ude00"].iter().any(|p| {
                            s.match_indices(p).any(|(i, _)| {
                                let next = &s[i + 6..];
                                p.starts_with("\\ude")
                                    || !(next.starts_with("\\udc")
                                        || next.starts_with("\\udd")
                                        || next.starts_with("\\ude")
                                        || next.starts_with("\\udf"))
                            })
                        });
                        assert!(failed || lone, "{s}");
                    }
                    BadKind::BadCreatedAt => {
                        let v: Value = serde_json::from_slice(line)
                            .expect("bad created_at lines are valid JSON");
                        assert!(v["id"].is_u64() && v["text"].is_string() && v["user"].is_object());
                        match v.get("created_at") {
                            None | Some(Value::Null) => {}
                            Some(Value::String(s)) => assert!(!is_twitter_created_at(s), "{s:?}"),
                            Some(other) => panic!("created_at {other}"),
                        }
                    }
                }
            }
            _ => {
                good += 1;
                serde_json::from_slice::<Value>(line).unwrap();
            }
        }
    }
    println!(
        "bad lines by kind {seen:?}; lone surrogates rejected by serde_json: {surrogate_parse_failures}; good {good}"
    );
    let s = g.stats();
    for kind in BadKind::ALL {
        assert!(
            seen.get(&kind).copied().unwrap_or(0) > 50,
            "{kind:?} too rare: {seen:?}"
        );
        assert_eq!(s.bad_of_kind(kind), seen[&kind]);
    }
    assert_eq!(s.bad, seen.values().sum::<u64>());
    let bf = s.bad as f64 / s.lines as f64;
    assert!((0.17..0.23).contains(&bf), "{bf}");
    assert_eq!(s.tweets + s.retweets + s.control + s.bad, s.lines);
}

#[test]
fn late_tweets_are_dated_earlier() {
    let config = GeneratorConfig {
        seed: 8,
        late_fraction: 0.1,
        ..GeneratorConfig::default()
    };
    let (buf, lines, g) = generate(config.clone(), 5000);
    let (mut late, mut statuses) = (0, 0);
    let mut last_ts = i64::MIN;
    let mut min_created = i64::MAX;
    for (kind, range) in &lines {
        if !matches!(kind, LineKind::Tweet | LineKind::Retweet) {
            continue;
        }
        statuses += 1;
        let v: Value = serde_json::from_slice(&buf[range.clone()]).unwrap();
        let ts: i64 = v["timestamp_ms"].as_str().unwrap().parse().unwrap();
        let created = parse_created_at(v["created_at"].as_str().unwrap()).unwrap();
        assert!(ts >= last_ts, "arrival times never go back");
        last_ts = ts;
        let arrival_second = ts.div_euclid(1000) * 1000;
        assert!(created <= arrival_second);
        assert!(arrival_second - created <= config.late_max_ms + 1000);
        late += (created < arrival_second) as u32;
        min_created = min_created.min(created);
    }
    let f = late as f64 / statuses as f64;
    println!(
        "late {late} of {statuses} ({f:.3}), stats.late {}",
        g.stats().late
    );
    assert!((0.085..0.115).contains(&f), "late fraction {f}");
    assert!(g.stats().late >= late as u64 && g.stats().late <= late as u64 + 10);
    assert_eq!(g.stats().min_event_time, Some(min_created));
}

#[test]
fn event_clock_is_a_poisson_stream() {
    let config = GeneratorConfig {
        seed: 2,
        rate: 10.0,
        late_fraction: 0.0,
        ..GeneratorConfig::default()
    };
    let mut g = TweetGenerator::new(config.clone());
    let mut buf = Vec::new();
    g.next_line(&mut buf);
    assert_eq!(
        g.clock_ms(),
        config.start_ms,
        "the first tweet is at start_ms"
    );
    let v: Value = serde_json::from_slice(&buf[..buf.len() - 1]).unwrap();
    assert_eq!(
        v["timestamp_ms"].as_str().unwrap(),
        config.start_ms.to_string()
    );
    for _ in 0..10_000 {
        g.next_line(&mut buf);
    }
    let mean = (g.clock_ms() - config.start_ms) as f64 / 10_000.0;
    assert!(
        (95.0..105.0).contains(&mean),
        "mean inter-arrival {mean} ms"
    );
    let s = g.stats();
    assert_eq!(s.min_event_time, Some(config.start_ms));
    assert_eq!(s.max_event_time, Some(g.clock_ms().div_euclid(1000) * 1000));
    // The live demo moves the clock to wall time.
    let wall = 1_700_000_000_000;
    g.set_clock_ms(wall);
    assert_eq!(g.clock_ms(), wall);
    buf.clear();
    while g.next_line(&mut buf) == LineKind::Control {}
    let last = buf[..buf.len() - 1].rsplit(|&b| b == b'\n').next().unwrap();
    let v: Value = serde_json::from_slice(last).unwrap();
    let ts: i64 = v["timestamp_ms"].as_str().unwrap().parse().unwrap();
    assert!(ts >= wall && ts < wall + 5_000, "{ts}");
}

#[test]
fn vocabulary_is_sane() {
    let unique: HashSet<&str> = voc::HASHTAGS.iter().copied().collect();
    assert_eq!(unique.len(), voc::HASHTAGS.len(), "duplicate hashtags");
    assert!(voc::HASHTAGS.len() >= 290);
    for tag in voc::HASHTAGS {
        assert!(
            tag.chars().all(is_tag_char) && !tag.chars().all(|c| c.is_ascii_digit()),
            "{tag}"
        );
    }
    let lists: [&[&str]; 12] = [
        voc::SENTENCES,
        voc::OPENERS,
        voc::QUOTE_COMMENTS,
        voc::EN_SENTENCES,
        voc::SUBJECTS,
        voc::VERBS,
        voc::PERIODS,
        voc::SOURCES,
        voc::PLACES,
        voc::TOPICS,
        voc::COMMENTS,
        voc::UNITS,
    ];
    for list in lists {
        for t in list {
            for piece in parse_template(t) {
                if let Piece::Lit(s) = piece {
                    assert!(
                        !s.contains(['#', '@', '$', '&', '<', '>', '{', '}']),
                        "literal {s:?} in {t:?}"
                    );
                }
            }
        }
    }
    for (sn, ..) in voc::NOTABLE {
        assert!(
            sn.len() <= 15 && sn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{sn}"
        );
    }
}

#[test]
fn write_files_renames_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("landing");
    let mut g = TweetGenerator::new(cfg(6));
    let mut calls = Vec::new();
    write_files(&out, 5, 3, 40, &mut g, &mut |i, bytes| {
        calls.push((i, bytes))
    })
    .unwrap();
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "tweets-000005.json",
            "tweets-000006.json",
            "tweets-000007.json"
        ]
    );
    assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [5, 6, 7]);
    let mut total = 0;
    for (i, bytes) in &calls {
        let data = fs::read(out.join(format!("tweets-{i:06}.json"))).unwrap();
        assert_eq!(data.len() as u64, *bytes);
        assert_eq!(data.iter().filter(|&&b| b == b'\n').count(), 40);
        total += bytes;
    }
    assert_eq!(g.stats().bytes, total);
    assert_eq!(g.stats().lines, 120);
    // Numbering continues; the same generator keeps going.
    write_files(&out, 8, 1, 10, &mut g, &mut |_, _| {}).unwrap();
    assert!(out.join("tweets-000008.json").exists());
    assert!(
        fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
}

/// `cargo test --release -p trendflow-connectors generator::tests::generation_speed -- --ignored --nocapture`
#[test]
#[ignore = "benchmark"]
fn generation_speed() {
    let mut g = TweetGenerator::new(cfg(1));
    let mut buf = Vec::with_capacity(64 << 20);
    let start = std::time::Instant::now();
    let mut total = 0u64;
    while total < 1 << 30 {
        buf.clear();
        while buf.len() < 32 << 20 {
            g.next_line(&mut buf);
        }
        total += buf.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.0} MB/s, {:.0} lines/s ({} lines, {:.2} s)",
        total as f64 / secs / 1e6,
        g.stats().lines as f64 / secs,
        g.stats().lines,
        secs
    );
}
