//! The input formats the parser reads, each mapped onto the one post model
//! ([`trendflow_core::post::PostBatch`]): Twitter API v1.1 statuses, X API v2 payloads,
//! Mastodon statuses and Bluesky records (Jetstream, AppView, tap). A pipeline names its format
//! or lets the parser recognise it line by line.

pub mod bluesky;
pub mod html;
pub mod mastodon;
pub mod twitter_v1;
pub mod twitter_v2;

use simd_json::prelude::*;
use trendflow_core::time::{parse_created_at, parse_iso8601};
use trendflow_core::{EventTime, Reason};

/// A JSON value on the parser's tape.
pub type Json<'t, 'i> = simd_json::tape::Value<'t, 'i>;

/// Which format the lines are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Recognised line by line from the keys of each object.
    #[default]
    Auto,
    TwitterV1,
    TwitterV2,
    Mastodon,
    Bluesky,
}

/// Which text a Twitter v1.1 status contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextChoice {
    /// `extended_tweet.full_text` (or `full_text`) when the status is truncated.
    #[default]
    Full,
    /// `text` as sent, even if truncated to 140 characters (Spark's tutorial reads this).
    AsSent,
}

/// What a repost (retweet, reblog) contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepostText {
    /// Its own text (`RT @author: ...`), as Spark's tutorial counts it.
    #[default]
    Own,
    /// The original post's text and entities.
    Original,
}

/// Where the event time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeChoice {
    /// The format's creation time; if absent, its capture time (`timestamp_ms`, `time_us`,
    /// `indexedAt`).
    #[default]
    Auto,
    /// Only the creation time (`created_at`, `createdAt`), as Spark's tutorial does.
    Created,
    /// Only the capture time: when the platform or the stream saw the post.
    Captured,
}

/// Which parts of the post model the pipeline uses beyond id, time and text: a pipeline that
/// only splits texts (the tutorial's) need not walk every tweet's entity arrays and user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Hashtags, mentions, cashtags, URLs, media.
    pub entities: bool,
    /// Author, language, reposted and quoted posts, follower / repost / like counts.
    pub details: bool,
}

impl Needs {
    pub const ALL: Needs = Needs {
        entities: true,
        details: true,
    };
    pub const TEXT_ONLY: Needs = Needs {
        entities: false,
        details: false,
    };
}

impl Default for Needs {
    fn default() -> Self {
        Needs::ALL
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FormatOptions {
    pub format: Format,
    pub text: TextChoice,
    pub reposts: RepostText,
    pub time: TimeChoice,
    pub needs: Needs,
}

/// What became of one line.
#[derive(Debug)]
pub enum Outcome {
    /// Posts were added; the error says why some have no event time.
    Posts(Option<(Reason, String)>),
    /// A message of the stream that is not a post (a delete notice, a like, a rate-limit
    /// warning...), by kind.
    Control(&'static str),
    Rejected(Reason, String),
}

/// The format of one line, from its top-level keys.
pub fn detect(obj: &simd_json::tape::Object<'_, '_>) -> Format {
    let (mut v1, mut mastodon_content, mut account) = (false, false, false);
    for (k, v) in obj.iter() {
        match k {
            "data" => return Format::TwitterV2,
            "errors" | "meta" => return Format::TwitterV2,
            "did" | "time_us" | "commit" | "cid" | "post" => return Format::Bluesky,
            "uri" if v.as_str().is_some_and(|s| s.starts_with("at://")) => {
                return Format::Bluesky;
            }
            "type" if v.as_str() == Some("record") => return Format::Bluesky,
            "content" => mastodon_content = true,
            "account" => account = true,
            "text" | "full_text" | "user" | "id_str" | "timestamp_ms" => v1 = true,
            _ => {}
        }
    }
    if mastodon_content && account && !v1 {
        Format::Mastodon
    } else {
        Format::TwitterV1
    }
}

pub(crate) fn str_of<'i>(v: Option<Json<'_, 'i>>) -> Option<&'i str> {
    v.and_then(|v| v.into_string())
}

pub(crate) fn get<'t, 'i>(v: Json<'t, 'i>, path: &[&str]) -> Option<Json<'t, 'i>> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k)?;
    }
    Some(cur)
}

pub(crate) fn str_at<'i>(v: Json<'_, 'i>, path: &[&str]) -> Option<&'i str> {
    str_of(get(v, path))
}

pub(crate) fn i64_at(v: Json<'_, '_>, path: &[&str]) -> Option<i64> {
    let v = get(v, path)?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Elements of the array at `path` (none when absent or not an array).
pub(crate) fn array_at<'t, 'i>(
    v: Json<'t, 'i>,
    path: &[&str],
) -> impl Iterator<Item = Json<'t, 'i>> + 't
where
    'i: 't,
{
    get(v, path)
        .and_then(|a| a.as_array())
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// A time field's event time: `Err` says why there is none.
pub(crate) type TimeResult = Result<EventTime, (Reason, String)>;

pub(crate) fn missing_time(what: &str) -> TimeResult {
    Err((Reason::MissingEventTime, format!("no {what}")))
}

/// Parses a time field given as a string with `parse`, naming the field in errors.
pub(crate) fn time_of(
    v: Option<Json<'_, '_>>,
    field: &str,
    parse: fn(&str) -> Result<EventTime, trendflow_core::time::TimeError>,
) -> Option<TimeResult> {
    let v = v?;
    if v.is_null() {
        return Some(Err((
            Reason::MissingEventTime,
            format!("`{field}` is null"),
        )));
    }
    Some(match v.as_str() {
        Some(s) => parse(s).map_err(|e| (Reason::BadEventTime, format!("`{field}` {s:?}: {e}"))),
        None => Err((
            Reason::BadEventTime,
            format!("`{field}` is a {:?}, not a string", v.value_type()),
        )),
    })
}

pub(crate) fn iso_time(v: Option<Json<'_, '_>>, field: &str) -> Option<TimeResult> {
    time_of(v, field, parse_iso8601)
}

pub(crate) fn created_at_time(v: Option<Json<'_, '_>>, field: &str) -> Option<TimeResult> {
    time_of(v, field, parse_created_at)
}

/// Milliseconds from a number or a numeric string, scaled by `per_ms` units per ms.
pub(crate) fn epoch_time(v: Option<Json<'_, '_>>, field: &str, per_ms: i64) -> Option<TimeResult> {
    let v = v?;
    let n = v
        .as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse::<i64>().ok()));
    // Years 1 to 9999, as the text formats allow: a wild number must not become an event time
    // (it would drag the watermark to the end of time, or overflow window arithmetic).
    const RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800_000..=253_402_300_799_999;
    Some(match n.map(|n| n.div_euclid(per_ms)) {
        Some(ms) if RANGE.contains(&ms) => Ok(ms),
        Some(_) => Err((
            Reason::BadEventTime,
            format!("`{field}` is outside the years 1 to 9999"),
        )),
        None => Err((
            Reason::BadEventTime,
            format!(
                "`{field}` is not a number of {}",
                if per_ms == 1 { "ms" } else { "µs" }
            ),
        )),
    })
}

/// Picks the event time by `choice` from the creation time and the capture time.
pub(crate) fn choose_time(
    choice: TimeChoice,
    created: Option<TimeResult>,
    captured: Option<TimeResult>,
    what: &str,
) -> TimeResult {
    match choice {
        TimeChoice::Created => created.unwrap_or_else(|| missing_time(what)),
        TimeChoice::Captured => captured.unwrap_or_else(|| missing_time("capture time")),
        TimeChoice::Auto => match (created, captured) {
            (Some(Ok(t)), _) => Ok(t),
            (_, Some(Ok(t))) => Ok(t),
            (Some(e), _) => e,
            (None, Some(e)) => e,
            (None, None) => missing_time(what),
        },
    }
}

/// The host of a URL, lower-cased, without `www.` (`https://www.insee.fr/x` → `insee.fr`).
pub fn url_domain(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next()?;
    let host = match host.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("www.") => &host[4..],
        _ => host,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(url_domain("https://www.insee.fr/fr/x?y"), Some("insee.fr"));
        assert_eq!(url_domain("http://u:p@bit.ly:80"), Some("bit.ly"));
        assert_eq!(url_domain("insee.fr"), Some("insee.fr"));
        assert_eq!(url_domain("https://"), None);
    }
}
