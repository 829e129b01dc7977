//! Mastodon statuses (REST entities and streaming `update` payloads).
//!
//! The text is the visible text of the HTML `content` (see [`super::html`]); hashtags,
//! mentions and media come from `tags`, `mentions` and `media_attachments`, URLs from the
//! content's links. A reblog's own content is empty: with `reposts: original` the reblogged
//! status's text and entities count instead.

use simd_json::prelude::*;
use trendflow_core::post::{EntityKind, Platform, PostFields};
use trendflow_core::{PostBatch, Reason};

use super::{
    FormatOptions, Json, Outcome, RepostText, array_at, choose_time, get, i64_at, iso_time, str_at,
};

pub fn parse(v: Json<'_, '_>, opts: &FormatOptions, line: u64, posts: &mut PostBatch) -> Outcome {
    let reblog = get(v, &["reblog"]).filter(|r| r.is_object());
    let source = match (opts.reposts, reblog) {
        (RepostText::Original, Some(r)) => r,
        _ => v,
    };
    let content = match get(source, &["content"]) {
        Some(c) if c.is_str() => c.into_string().unwrap(),
        Some(c) if c.is_null() => "",
        Some(c) => {
            return Outcome::Rejected(
                Reason::WrongType,
                format!("`content` is a {:?}, not a string", c.value_type()),
            );
        }
        None => return Outcome::Rejected(Reason::MissingText, "no `content` field".into()),
    };
    let mut text = String::with_capacity(content.len());
    super::html::to_text(content, &mut text);
    // A status has no capture time of its own; `edited_at` is not when it was posted.
    let time = choose_time(
        opts.time,
        iso_time(get(v, &["created_at"]), "created_at"),
        None,
        "`created_at`",
    );
    posts.push_post(
        line,
        &PostFields {
            platform: Platform::Mastodon,
            id: str_at(v, &["uri"])
                .or_else(|| str_at(v, &["id"]))
                .unwrap_or(""),
            event_time: time.as_ref().ok().copied(),
            text: &text,
            author: str_at(v, &["account", "acct"]).unwrap_or(""),
            lang: str_at(v, &["language"]).unwrap_or(""),
            reposted_id: reblog
                .and_then(|r| str_at(r, &["uri"]).or_else(|| str_at(r, &["id"])))
                .unwrap_or(""),
            reposted_author: reblog
                .and_then(|r| str_at(r, &["account", "acct"]))
                .unwrap_or(""),
            quoted_id: str_at(v, &["quote", "quoted_status", "uri"]).unwrap_or(""),
            followers: i64_at(v, &["account", "followers_count"]),
            repost_count: i64_at(v, &["reblogs_count"]),
            like_count: i64_at(v, &["favourites_count"]),
        },
    );
    for t in array_at(source, &["tags"]) {
        if let Some(name) = str_at(t, &["name"]) {
            posts.push_entity(EntityKind::Hashtag, name);
        }
    }
    for m in array_at(source, &["mentions"]) {
        if let Some(acct) = str_at(m, &["acct"]) {
            posts.push_entity(EntityKind::Mention, acct);
        }
    }
    for url in super::html::links(content) {
        posts.push_entity(EntityKind::Url, url);
    }
    for m in array_at(source, &["media_attachments"]) {
        if let Some(url) = str_at(m, &["url"]).or_else(|| str_at(m, &["remote_url"])) {
            posts.push_entity(EntityKind::Media, url);
        }
        if let Some(t) = str_at(m, &["type"]) {
            posts.push_entity(EntityKind::MediaType, t);
        }
    }
    Outcome::Posts(time.err())
}
