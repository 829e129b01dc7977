//! X API v2 payloads: response pages (`data` array), single lookups (`data` object) and
//! filtered-stream lines, with their `includes` (authors, referenced tweets, media).
//!
//! A line may hold many posts. Authors' names, a retweet's original and media come from
//! `includes`; long posts' full text from `note_tweet` (unless `text: as_sent`).

use simd_json::prelude::*;
use trendflow_core::post::{EntityKind, Platform, PostFields};
use trendflow_core::{PostBatch, Reason};

use super::{
    FormatOptions, Json, Outcome, RepostText, TextChoice, array_at, choose_time, get, i64_at,
    iso_time, str_at,
};

pub fn parse(v: Json<'_, '_>, opts: &FormatOptions, line: u64, posts: &mut PostBatch) -> Outcome {
    let includes = get(v, &["includes"]);
    let data = get(v, &["data"]);
    let tweets: Vec<Json<'_, '_>> = match data {
        Some(d) if d.is_object() => vec![d],
        Some(d) if d.is_array() => d.as_array().unwrap().iter().collect(),
        Some(d) if d.is_null() => vec![],
        Some(d) => {
            return Outcome::Rejected(
                Reason::WrongType,
                format!("`data` is a {:?}, not an object or array", d.value_type()),
            );
        }
        None => vec![],
    };
    if tweets.is_empty() {
        return Outcome::Control(if get(v, &["errors"]).is_some() {
            "errors"
        } else {
            "empty_page"
        });
    }
    let mut first_error = None;
    let mut added = 0;
    for t in tweets {
        if !t.is_object() || get(t, &["text"]).is_none() {
            continue;
        }
        added += 1;
        if let Err(e) = push_tweet(t, includes, opts, line, posts)
            && first_error.is_none()
        {
            first_error = Some(e);
        }
    }
    if added == 0 {
        // A page of users, lists or spaces: a valid response, but no posts.
        return Outcome::Control("not_posts");
    }
    Outcome::Posts(first_error)
}

/// The object in `includes.<list>` whose `key` is `id`.
fn included<'t, 'i>(
    includes: Option<Json<'t, 'i>>,
    list: &str,
    key: &str,
    id: &str,
) -> Option<Json<'t, 'i>>
where
    'i: 't,
{
    array_at(includes?, &[list]).find(|x| str_at(*x, &[key]) == Some(id))
}

fn username<'i>(includes: Option<Json<'_, 'i>>, author_id: Option<&str>) -> Option<&'i str> {
    str_at(
        included(includes, "users", "id", author_id?)?,
        &["username"],
    )
}

fn push_tweet(
    t: Json<'_, '_>,
    includes: Option<Json<'_, '_>>,
    opts: &FormatOptions,
    line: u64,
    posts: &mut PostBatch,
) -> Result<(), (Reason, String)> {
    let reposted_id = array_at(t, &["referenced_tweets"])
        .find(|r| str_at(*r, &["type"]) == Some("retweeted"))
        .and_then(|r| str_at(r, &["id"]));
    let quoted_id = array_at(t, &["referenced_tweets"])
        .find(|r| str_at(*r, &["type"]) == Some("quoted"))
        .and_then(|r| str_at(r, &["id"]));
    let original = reposted_id.and_then(|id| included(includes, "tweets", "id", id));
    let source = match (opts.reposts, original) {
        (RepostText::Original, Some(o)) => o,
        _ => t,
    };
    let note = get(source, &["note_tweet"]).filter(|_| opts.text == TextChoice::Full);
    let (text, entities) = match note.and_then(|n| str_at(n, &["text"])) {
        Some(full) => (full, note.unwrap()),
        None => (str_at(source, &["text"]).unwrap_or(""), source),
    };
    let time = choose_time(
        opts.time,
        iso_time(get(t, &["created_at"]), "created_at"),
        None,
        "`created_at`",
    );
    // Resolving names through `includes` is a search per post: only when used.
    let includes = includes.filter(|_| opts.needs.details);
    let author_id = str_at(t, &["author_id"]);
    let author = username(includes, author_id);
    posts.push_post(
        line,
        &PostFields {
            platform: Platform::Twitter,
            id: str_at(t, &["id"]).unwrap_or(""),
            event_time: time.as_ref().ok().copied(),
            text,
            // Without the `users` expansion only the author's id is known.
            author: author.or(author_id).unwrap_or(""),
            lang: str_at(t, &["lang"]).unwrap_or(""),
            reposted_id: reposted_id.unwrap_or(""),
            reposted_author: original
                .and_then(|o| {
                    let id = str_at(o, &["author_id"]);
                    username(includes, id).or(id)
                })
                .unwrap_or(""),
            quoted_id: quoted_id.unwrap_or(""),
            followers: author_id
                .and_then(|id| included(includes, "users", "id", id))
                .and_then(|u| i64_at(u, &["public_metrics", "followers_count"])),
            repost_count: i64_at(t, &["public_metrics", "retweet_count"]),
            like_count: i64_at(t, &["public_metrics", "like_count"]),
        },
    );
    if !opts.needs.entities {
        return time.map(|_| ());
    }
    for h in array_at(entities, &["entities", "hashtags"]) {
        if let Some(tag) = str_at(h, &["tag"]) {
            posts.push_entity(EntityKind::Hashtag, tag);
        }
    }
    for m in array_at(entities, &["entities", "mentions"]) {
        if let Some(u) = str_at(m, &["username"]) {
            posts.push_entity(EntityKind::Mention, u);
        }
    }
    for c in array_at(entities, &["entities", "cashtags"]) {
        if let Some(tag) = str_at(c, &["tag"]) {
            posts.push_entity(EntityKind::Cashtag, tag);
        }
    }
    for u in array_at(entities, &["entities", "urls"]) {
        // Links to the post's own media are listed as URLs too; the media count below.
        if get(u, &["media_key"]).is_some() {
            continue;
        }
        if let Some(url) = str_at(u, &["expanded_url"]).or_else(|| str_at(u, &["url"])) {
            posts.push_entity(EntityKind::Url, url);
        }
    }
    for key in array_at(source, &["attachments", "media_keys"]) {
        let Some(key) = key.as_str() else { continue };
        match included(includes, "media", "media_key", key) {
            Some(m) => {
                if let Some(url) = str_at(m, &["url"]).or_else(|| str_at(m, &["preview_image_url"]))
                {
                    posts.push_entity(EntityKind::Media, url);
                }
                if let Some(ty) = str_at(m, &["type"]) {
                    posts.push_entity(EntityKind::MediaType, ty);
                }
            }
            None => posts.push_entity(EntityKind::Media, key),
        }
    }
    time.map(|_| ())
}
