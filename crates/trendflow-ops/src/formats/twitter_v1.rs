//! Twitter API v1.1 statuses (the tutorial's input), and the stream's control messages.
//!
//! The text is `text`, or the full text of a truncated status (`extended_tweet.full_text`,
//! or `full_text` in REST `tweet_mode=extended` payloads) unless `text: as_sent`. Entities
//! come from the same object as the text. A retweet keeps its own `RT @user: ...` text unless
//! `reposts: original`.

use simd_json::prelude::*;
use trendflow_core::post::{EntityKind, Platform, PostFields};
use trendflow_core::{PostBatch, Reason};

use super::{
    FormatOptions, Json, Outcome, RepostText, TextChoice, array_at, choose_time, created_at_time,
    epoch_time, get, i64_at, str_at, str_of,
};

/// Keys whose presence (without `text`) marks a stream control message.
pub const CONTROL_KEYS: [&str; 10] = [
    "delete",
    "limit",
    "scrub_geo",
    "status_withheld",
    "user_withheld",
    "warning",
    "disconnect",
    "friends",
    "event",
    "direct_message",
];

/// Adds the status in `v` (an object).
pub fn parse(v: Json<'_, '_>, opts: &FormatOptions, line: u64, posts: &mut PostBatch) -> Outcome {
    let obj = v.as_object().expect("an object");
    // One pass over the top-level keys (a tweet has ~30). A key given twice keeps its last
    // value, as in Spark's reader.
    let (mut text_v, mut full_v, mut created_v, mut ts_v, mut id_v, mut id_str_v) =
        (None, None, None, None, None, None);
    let mut rt_v = None;
    for (k, v) in obj.iter() {
        match k {
            "text" => text_v = Some(v),
            "full_text" => full_v = Some(v),
            "created_at" => created_v = Some(v),
            "timestamp_ms" => ts_v = Some(v),
            "id" => id_v = Some(v),
            "id_str" => id_str_v = Some(v),
            "retweeted_status" => rt_v = Some(v).filter(|v| v.is_object()),
            _ => {}
        }
    }
    let time = choose_time(
        opts.time,
        created_at_time(created_v, "created_at"),
        epoch_time(ts_v, "timestamp_ms", 1),
        "`created_at`",
    );
    // Spark's reader turns a text of any other JSON type into its JSON text ("12", "[..]").
    let encoded;
    let own_text: &str = match text_v.or(full_v) {
        Some(t) if t.is_str() => t.into_string().unwrap(),
        Some(t) if t.is_null() => {
            return Outcome::Rejected(Reason::MissingText, "`text` is null".into());
        }
        Some(t) => {
            encoded = t.encode();
            &encoded
        }
        None => {
            if let Some(k) = CONTROL_KEYS.iter().find(|k| obj.get(**k).is_some()) {
                return Outcome::Control(k);
            }
            return Outcome::Rejected(Reason::MissingText, "no `text` field".into());
        }
    };
    let mut id_buf = itoa::Buffer::new();
    let id = match (str_of(id_str_v), id_v.and_then(|i| i.as_u64())) {
        (Some(s), _) => s,
        (None, Some(n)) => id_buf.format(n),
        (None, None) => "",
    };
    // Which object the text and entities come from: the status, its original (a retweet
    // with `reposts: original`) or the `extended_tweet` of either when its full text is used.
    let (source, text) = match (opts.reposts, rt_v) {
        (RepostText::Original, Some(rt)) => (rt, None),
        _ => (v, Some(own_text)),
    };
    let (text, entities_from) = text_of(source, text, opts.text);
    let details = opts.needs.details;
    let rt = rt_v.filter(|_| details);
    let rt_id = rt.and_then(|rt| str_at(rt, &["id_str"]));
    let mut rt_id_buf = itoa::Buffer::new();
    let rt_id = rt_id
        .or_else(|| rt.and_then(|rt| i64_at(rt, &["id"]).map(|n| rt_id_buf.format(n))))
        .unwrap_or("");
    let detail = |path: &[&str]| if details { str_at(v, path) } else { None };
    let number = |path: &[&str]| if details { i64_at(v, path) } else { None };
    let quoted = detail(&["quoted_status_id_str"])
        .or_else(|| detail(&["quoted_status", "id_str"]))
        .unwrap_or("");
    posts.push_post(
        line,
        &PostFields {
            platform: Platform::Twitter,
            id,
            event_time: time.as_ref().ok().copied(),
            text,
            author: detail(&["user", "screen_name"]).unwrap_or(""),
            lang: detail(&["lang"]).unwrap_or(""),
            reposted_id: rt_id,
            reposted_author: rt
                .and_then(|rt| str_at(rt, &["user", "screen_name"]))
                .unwrap_or(""),
            quoted_id: quoted,
            followers: number(&["user", "followers_count"]),
            repost_count: number(&["retweet_count"]),
            like_count: number(&["favorite_count"]),
        },
    );
    if opts.needs.entities {
        push_entities(entities_from, posts);
    }
    Outcome::Posts(time.err())
}

/// The text of a status and the object holding its entities: `extended_tweet` when the
/// status is truncated and the full text is wanted. `sent` overrides the status's own text
/// (the line's, read with Spark's leniency).
fn text_of<'a, 't, 'i: 'a>(
    v: Json<'t, 'i>,
    sent: Option<&'a str>,
    choice: TextChoice,
) -> (&'a str, Json<'t, 'i>) {
    if choice == TextChoice::Full {
        if get(v, &["truncated"]).and_then(|t| t.as_bool()) == Some(true)
            && let Some(ext) = get(v, &["extended_tweet"])
            && let Some(full) = str_at(ext, &["full_text"])
        {
            return (full, ext);
        }
        if let Some(full) = str_at(v, &["full_text"]) {
            return (full, v);
        }
    }
    let text = sent
        .or_else(|| str_at(v, &["text"]))
        .or_else(|| str_at(v, &["full_text"]))
        .unwrap_or("");
    (text, v)
}

/// The entities of a status (or its `extended_tweet`): `entities` and `extended_entities`.
pub fn push_entities(v: Json<'_, '_>, posts: &mut PostBatch) {
    for h in array_at(v, &["entities", "hashtags"]) {
        if let Some(t) = str_at(h, &["text"]) {
            posts.push_entity(EntityKind::Hashtag, t);
        }
    }
    for m in array_at(v, &["entities", "user_mentions"]) {
        if let Some(t) = str_at(m, &["screen_name"]) {
            posts.push_entity(EntityKind::Mention, t);
        }
    }
    for s in array_at(v, &["entities", "symbols"]) {
        if let Some(t) = str_at(s, &["text"]) {
            posts.push_entity(EntityKind::Cashtag, t);
        }
    }
    for u in array_at(v, &["entities", "urls"]) {
        if let Some(t) = str_at(u, &["expanded_url"]).or_else(|| str_at(u, &["url"])) {
            posts.push_entity(EntityKind::Url, t);
        }
    }
    // `extended_entities` lists every attached medium; `entities.media` only the first.
    let media = if get(v, &["extended_entities", "media"]).is_some() {
        &["extended_entities", "media"]
    } else {
        &["entities", "media"]
    };
    for m in array_at(v, media) {
        if let Some(t) = str_at(m, &["media_url_https"]).or_else(|| str_at(m, &["media_url"])) {
            posts.push_entity(EntityKind::Media, t);
        }
        if let Some(t) = str_at(m, &["type"]) {
            posts.push_entity(EntityKind::MediaType, t);
        }
    }
}
