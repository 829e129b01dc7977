//! Bluesky: Jetstream events (`{did, time_us, kind, commit}`), tap sync events
//! (`{id, type: "record", record}`) and AppView post views (`{uri, author, record,
//! indexedAt}`, or feed items `{post, reason}`).
//!
//! Posts (`app.bsky.feed.post` records) and reposts (`app.bsky.feed.repost`: no text of their
//! own, the reposted post's URI) become posts; likes, follows, deletions, identity and account
//! events are stream messages that are counted, not posts. Hashtags, mentions (DIDs) and links
//! come from the record's facets; media and quotes from its embed. Event time is the record's
//! `createdAt` (as claimed by the author), else when the network saw it (`time_us`,
//! `indexedAt`).

use simd_json::prelude::*;
use trendflow_core::post::{EntityKind, Platform, PostFields};
use trendflow_core::{PostBatch, Reason};

use super::{
    FormatOptions, Json, Outcome, TimeResult, array_at, choose_time, epoch_time, get, i64_at,
    iso_time, str_at,
};

const POST: &str = "app.bsky.feed.post";
const REPOST: &str = "app.bsky.feed.repost";

pub fn parse(v: Json<'_, '_>, opts: &FormatOptions, line: u64, posts: &mut PostBatch) -> Outcome {
    // Jetstream.
    if let Some(kind) = str_at(v, &["kind"]) {
        if kind != "commit" {
            return Outcome::Control(static_kind(kind));
        }
        let Some(commit) = get(v, &["commit"]) else {
            return Outcome::Rejected(
                Reason::MissingText,
                "a commit event without `commit`".into(),
            );
        };
        let captured = epoch_time(get(v, &["time_us"]), "time_us", 1000);
        return record_event(
            str_at(v, &["did"]).unwrap_or(""),
            commit,
            str_at(commit, &["operation"]),
            captured,
            opts,
            line,
            posts,
        );
    }
    // tap.
    if str_at(v, &["type"]).is_some() && get(v, &["id"]).is_some() {
        if str_at(v, &["type"]) != Some("record") {
            return Outcome::Control(static_kind(str_at(v, &["type"]).unwrap_or("")));
        }
        let Some(rec) = get(v, &["record"]) else {
            return Outcome::Rejected(
                Reason::MissingText,
                "a record event without `record`".into(),
            );
        };
        return record_event(
            str_at(rec, &["did"]).unwrap_or(""),
            rec,
            str_at(rec, &["action"]),
            None,
            opts,
            line,
            posts,
        );
    }
    // AppView feed item: a post, or a repost of it by someone.
    if let Some(post) = get(v, &["post"]).filter(|p| p.is_object()) {
        if let Some(reason) = get(v, &["reason"])
            && str_at(reason, &["$type"]).is_some_and(|t| t.ends_with("reasonRepost"))
        {
            let time = choose_time(
                opts.time,
                None,
                iso_time(get(reason, &["indexedAt"]), "indexedAt"),
                "`indexedAt`",
            );
            posts.push_post(
                line,
                &PostFields {
                    platform: Platform::Bluesky,
                    event_time: time.as_ref().ok().copied(),
                    author: str_at(reason, &["by", "handle"]).unwrap_or(""),
                    reposted_id: str_at(post, &["uri"]).unwrap_or(""),
                    reposted_author: str_at(post, &["author", "handle"]).unwrap_or(""),
                    ..Default::default()
                },
            );
            return Outcome::Posts(time.err());
        }
        return post_view(post, opts, line, posts);
    }
    if get(v, &["record"]).is_some() && get(v, &["uri"]).is_some() {
        return post_view(v, opts, line, posts);
    }
    Outcome::Rejected(
        Reason::MissingText,
        "not a Bluesky post, repost or stream event".into(),
    )
}

fn static_kind(kind: &str) -> &'static str {
    match kind {
        "identity" => "identity",
        "account" => "account",
        "like" | "app.bsky.feed.like" => "like",
        "follow" | "app.bsky.graph.follow" => "follow",
        "block" | "app.bsky.graph.block" => "block",
        "app.bsky.actor.profile" => "profile",
        "delete" => "delete",
        "update" => "update",
        _ => "other_event",
    }
}

/// A repository record event (Jetstream commit, tap record): `collection`, `rkey`, `record`.
fn record_event(
    did: &str,
    ev: Json<'_, '_>,
    operation: Option<&str>,
    captured: Option<TimeResult>,
    opts: &FormatOptions,
    line: u64,
    posts: &mut PostBatch,
) -> Outcome {
    let collection = str_at(ev, &["collection"]).unwrap_or("");
    let operation = operation.unwrap_or("create");
    if operation != "create" {
        return Outcome::Control(static_kind(operation));
    }
    let Some(record) = get(ev, &["record"]).filter(|r| r.is_object()) else {
        return Outcome::Rejected(
            Reason::MissingText,
            "a create event without `record`".into(),
        );
    };
    let uri = format!(
        "at://{did}/{collection}/{}",
        str_at(ev, &["rkey"]).unwrap_or("")
    );
    let created = iso_time(get(record, &["createdAt"]), "createdAt");
    match collection {
        POST => push_record(
            &uri, did, record, created, captured, None, opts, line, posts,
        ),
        REPOST => {
            let time = choose_time(opts.time, created, captured, "`createdAt`");
            let subject = str_at(record, &["subject", "uri"]).unwrap_or("");
            posts.push_post(
                line,
                &PostFields {
                    platform: Platform::Bluesky,
                    id: &uri,
                    event_time: time.as_ref().ok().copied(),
                    author: did,
                    reposted_id: subject,
                    reposted_author: did_of(subject),
                    ..Default::default()
                },
            );
            Outcome::Posts(time.err())
        }
        other => Outcome::Control(static_kind(other)),
    }
}

/// The DID in an `at://did/collection/rkey` URI.
fn did_of(uri: &str) -> &str {
    uri.strip_prefix("at://")
        .and_then(|r| r.split('/').next())
        .unwrap_or("")
}

/// An AppView post view: `{uri, author, record, indexedAt, likeCount, repostCount}`.
fn post_view(p: Json<'_, '_>, opts: &FormatOptions, line: u64, posts: &mut PostBatch) -> Outcome {
    let record = match get(p, &["record"]) {
        Some(r) if r.is_object() => r,
        Some(r) => {
            return Outcome::Rejected(
                Reason::WrongType,
                format!("`record` is a {:?}, not an object", r.value_type()),
            );
        }
        None => {
            return Outcome::Rejected(Reason::MissingText, "a post view without `record`".into());
        }
    };
    let created = iso_time(get(record, &["createdAt"]), "createdAt");
    let captured = iso_time(get(p, &["indexedAt"]), "indexedAt");
    let author = str_at(p, &["author", "handle"])
        .or_else(|| str_at(p, &["author", "did"]))
        .unwrap_or("");
    let counts = (i64_at(p, &["repostCount"]), i64_at(p, &["likeCount"]));
    push_record(
        str_at(p, &["uri"]).unwrap_or(""),
        author,
        record,
        created,
        captured,
        Some(counts),
        opts,
        line,
        posts,
    )
}

#[allow(clippy::too_many_arguments)]
fn push_record(
    uri: &str,
    author: &str,
    record: Json<'_, '_>,
    created: Option<TimeResult>,
    captured: Option<TimeResult>,
    counts: Option<(Option<i64>, Option<i64>)>,
    opts: &FormatOptions,
    line: u64,
    posts: &mut PostBatch,
) -> Outcome {
    let text = match get(record, &["text"]) {
        Some(t) if t.is_str() => t.into_string().unwrap(),
        None => "",
        Some(t) if t.is_null() => "",
        Some(t) => {
            return Outcome::Rejected(
                Reason::WrongType,
                format!("`text` is a {:?}, not a string", t.value_type()),
            );
        }
    };
    let time = choose_time(opts.time, created, captured, "`createdAt`");
    let embed = get(record, &["embed"]);
    let quoted = embed
        .and_then(|e| {
            str_at(e, &["record", "uri"]).or_else(|| str_at(e, &["record", "record", "uri"]))
        })
        .unwrap_or("");
    posts.push_post(
        line,
        &PostFields {
            platform: Platform::Bluesky,
            id: uri,
            event_time: time.as_ref().ok().copied(),
            text,
            author,
            lang: array_at(record, &["langs"])
                .next()
                .and_then(|l| l.into_string())
                .unwrap_or(""),
            quoted_id: quoted,
            repost_count: counts.and_then(|c| c.0),
            like_count: counts.and_then(|c| c.1),
            ..Default::default()
        },
    );
    for facet in array_at(record, &["facets"]) {
        for f in array_at(facet, &["features"]) {
            let ty = str_at(f, &["$type"]).unwrap_or("");
            let (kind, field) = match ty.rsplit_once('#').map_or("", |(_, k)| k) {
                "tag" => (EntityKind::Hashtag, "tag"),
                "mention" => (EntityKind::Mention, "did"),
                "link" => (EntityKind::Url, "uri"),
                _ => continue,
            };
            if let Some(value) = str_at(f, &[field]) {
                posts.push_entity(kind, value);
            }
        }
    }
    if let Some(e) = embed {
        push_embed(e, posts);
    }
    Outcome::Posts(time.err())
}

/// Media and links of an embed (images, video, external link, a quote with media).
fn push_embed(e: Json<'_, '_>, posts: &mut PostBatch) {
    let ty = str_at(e, &["$type"]).unwrap_or("");
    if ty.ends_with("recordWithMedia") {
        if let Some(media) = get(e, &["media"]) {
            push_embed(media, posts);
        }
        return;
    }
    if ty.ends_with("embed.images") {
        for img in array_at(e, &["images"]) {
            if let Some(cid) = str_at(img, &["image", "ref", "$link"]) {
                posts.push_entity(EntityKind::Media, cid);
            }
            posts.push_entity(EntityKind::MediaType, "image");
        }
    } else if ty.ends_with("embed.video") {
        if let Some(cid) = str_at(e, &["video", "ref", "$link"]) {
            posts.push_entity(EntityKind::Media, cid);
        }
        posts.push_entity(EntityKind::MediaType, "video");
    } else if ty.ends_with("embed.external")
        && let Some(uri) = str_at(e, &["external", "uri"])
    {
        posts.push_entity(EntityKind::Url, uri);
    }
}
