//! Runs twitter-text's extraction conformance suite (`tests/data/twitter-text/extract.yml`,
//! Apache-2.0, see PROVENANCE.md there) against `trendflow_ops::entities`.
//!
//! Every case of every extraction section must pass, except those in [`KNOWN_FAILURES`]
//! (each with its reason); a listed case that passes fails the test too, so the list stays
//! true. The suite's indices count code points (twitter-text's Ruby reference counts
//! characters); the API gives byte ranges, converted here. Per-section counts are printed:
//! `cargo test --release -p trendflow-ops --test twitter_text_conformance -- --nocapture`.

use std::collections::BTreeMap;

use serde_json::Value;
use trendflow_ops::entities::{
    Entity, EntityKind, extract_kind, extract_mentions_or_lists, extract_reply,
};

/// (section, case description, why it fails). Empty: the whole suite passes.
const KNOWN_FAILURES: &[(&str, &str, &str)] = &[];

const SECTIONS: &[&str] = &[
    "mentions",
    "mentions_with_indices",
    "mentions_or_lists_with_indices",
    "replies",
    "urls",
    "urls_with_indices",
    "urls_with_directional_markers",
    "tco_urls_with_params",
    "hashtags",
    "hashtags_from_astral",
    "hashtags_with_indices",
    "cashtags",
    "cashtags_with_indices",
];

fn char_index(text: &str, byte: usize) -> u64 {
    text[..byte].chars().count() as u64
}

fn kind_of(section: &str) -> EntityKind {
    if section.starts_with("mention") {
        EntityKind::Mention
    } else if section.starts_with("url") || section.starts_with("tco") {
        EntityKind::Url
    } else if section.starts_with("hashtag") {
        EntityKind::Hashtag
    } else {
        EntityKind::Cashtag
    }
}

/// The field the suite names an entity's value with.
fn value_field(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Mention => "screen_name",
        EntityKind::Url => "url",
        EntityKind::Hashtag => "hashtag",
        EntityKind::Cashtag => "cashtag",
    }
}

/// What the extractor gives for a case, in the shape of the suite's `expected`.
fn actual(section: &str, text: &str) -> Value {
    if section == "replies" {
        return extract_reply(text).map_or(Value::Null, |e| Value::from(e.value(text)));
    }
    let kind = kind_of(section);
    let mut out: Vec<Entity> = Vec::new();
    if section == "mentions_or_lists_with_indices" {
        extract_mentions_or_lists(text, &mut out);
    } else {
        extract_kind(text, kind, &mut out);
    }
    let with_indices =
        section.ends_with("_with_indices") || section == "urls_with_directional_markers";
    let items = out.iter().map(|e| {
        if !with_indices {
            return Value::from(e.value(text));
        }
        let mut m = serde_json::Map::new();
        m.insert(value_field(kind).into(), Value::from(e.screen_name(text)));
        if section == "mentions_or_lists_with_indices" {
            m.insert(
                "list_slug".into(),
                Value::from(e.list_slug(text).unwrap_or("")),
            );
        }
        m.insert(
            "indices".into(),
            Value::from(vec![char_index(text, e.start), char_index(text, e.end)]),
        );
        Value::Object(m)
    });
    Value::Array(items.collect())
}

#[test]
fn twitter_text_extract_conformance() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/twitter-text/extract.yml"
    );
    let yaml = std::fs::read_to_string(path).expect("read extract.yml");
    let suite: Value = serde_saphyr::from_str(&yaml).expect("parse extract.yml");
    let tests = suite["tests"].as_object().expect("a `tests` map");

    let mut failures = Vec::new();
    let mut stale_known = Vec::new();
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for &section in SECTIONS {
        let cases = tests[section]
            .as_array()
            .unwrap_or_else(|| panic!("section {section}"));
        for case in cases {
            let description = case["description"].as_str().expect("description");
            let text = case["text"].as_str().expect("text");
            let got = actual(section, text);
            let passed = got == case["expected"];
            let known = KNOWN_FAILURES
                .iter()
                .any(|&(s, d, _)| s == section && d == description);
            let count = counts.entry(section).or_default();
            count.1 += 1;
            if passed {
                count.0 += 1;
                if known {
                    stale_known.push(format!("{section}: {description}"));
                }
            } else if !known {
                failures.push(format!(
                    "{section}: {description}\n  text:     {text:?}\n  expected: {}\n  got:      {got}",
                    case["expected"]
                ));
            }
        }
    }
    let (mut passed, mut total) = (0, 0);
    for (section, (p, t)) in &counts {
        eprintln!("{section:32} {p:3}/{t:3} passed");
        passed += p;
        total += t;
    }
    eprintln!("{:32} {passed:3}/{total:3} passed", "all");
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        stale_known.is_empty(),
        "listed as known failures but pass: {stale_known:?}"
    );
}
