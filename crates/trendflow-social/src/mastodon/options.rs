//! The options of a `type: mastodon` source, named as they are written in pipeline files.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::net::encode_query_value;

/// Which public timeline to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timeline {
    /// `public`: every public status the server knows (the federated timeline).
    Public,
    /// `public:local`: public statuses of the server's own accounts.
    Local,
    /// `hashtag:NAME`: public statuses tagged `#NAME` (without the `#`).
    Hashtag(String),
}

impl Timeline {
    /// The server-sent-events stream of this timeline.
    pub(crate) fn streaming_path(&self) -> String {
        match self {
            Timeline::Public => "/api/v1/streaming/public".into(),
            Timeline::Local => "/api/v1/streaming/public/local".into(),
            Timeline::Hashtag(tag) => {
                format!("/api/v1/streaming/hashtag?tag={}", encode_query_value(tag))
            }
        }
    }

    /// The REST timeline holding the same statuses, and its query parameters before paging.
    pub(crate) fn rest_path(&self) -> (String, Vec<(&'static str, String)>) {
        match self {
            Timeline::Public => ("/api/v1/timelines/public".into(), vec![]),
            Timeline::Local => (
                "/api/v1/timelines/public".into(),
                vec![("local", "true".into())],
            ),
            Timeline::Hashtag(tag) => (
                format!("/api/v1/timelines/tag/{}", encode_query_value(tag)),
                vec![],
            ),
        }
    }
}

impl FromStr for Timeline {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "public" => Ok(Timeline::Public),
            "public:local" | "local" => Ok(Timeline::Local),
            other => match other.strip_prefix("hashtag:") {
                Some(tag) => {
                    let tag = tag.trim().trim_start_matches('#');
                    if tag.is_empty() || tag.contains(|c: char| c.is_whitespace() || c == '/') {
                        Err(format!(
                            "`{other}`: a hashtag is a single word (hashtag:rust)"
                        ))
                    } else {
                        Ok(Timeline::Hashtag(tag.to_string()))
                    }
                }
                None => Err(format!(
                    "`{other}` is not a timeline: public, public:local or hashtag:NAME"
                )),
            },
        }
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeline::Public => f.write_str("public"),
            Timeline::Local => f.write_str("public:local"),
            Timeline::Hashtag(tag) => write!(f, "hashtag:{tag}"),
        }
    }
}

impl<'de> Deserialize<'de> for Timeline {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How to follow a Mastodon timeline. `server` is required; [`MastodonOptions::new`] gives
/// the defaults of everything else.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MastodonOptions {
    /// The server's base URL, e.g. `https://mastodon.social` (REST API, and streaming unless
    /// `streaming_url` says otherwise).
    pub server: String,
    /// `public`, `public:local` or `hashtag:NAME`.
    #[serde(default = "default_timeline")]
    pub timeline: Timeline,
    /// A user access token (scope `read:statuses`), sent as `Authorization: Bearer`: Mastodon
    /// 4.2 and later stream public timelines to signed-in users only. Never printed.
    #[serde(default)]
    pub access_token: Option<String>,
    /// The streaming server's base URL when it is not `server` (the instance's
    /// `configuration.urls.streaming`, with `https://` for `wss://`). Default: `server`,
    /// whose redirect to its streaming host is followed.
    #[serde(default)]
    pub streaming_url: Option<String>,
    /// Statuses taken into one epoch at most.
    #[serde(default = "default_max_events")]
    pub max_events_per_trigger: usize,
    /// The first wait before reconnecting after a disconnect; doubled after each failed
    /// attempt (with random jitter) up to `reconnect_max`.
    #[serde(
        default = "default_reconnect_min",
        deserialize_with = "crate::duration_option::deserialize"
    )]
    pub reconnect_min: Duration,
    /// The longest wait between two connection attempts.
    #[serde(
        default = "default_reconnect_max",
        deserialize_with = "crate::duration_option::deserialize"
    )]
    pub reconnect_max: Duration,
    /// Pages of the REST timeline (40 statuses each) read at most, after a disconnect or a
    /// restart, to fetch the statuses posted meanwhile; 0: no gap filling.
    #[serde(default = "default_gap_fill_limit")]
    pub gap_fill_limit: usize,
    /// A stream on which nothing arrives for this long (Mastodon sends a heartbeat comment
    /// every 15 seconds or so) is taken as dead and replaced.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "crate::duration_option::deserialize"
    )]
    pub idle_timeout: Duration,
    /// Status ids remembered (and checkpointed) to recognise a status delivered twice (by
    /// the stream and by a gap fill) and the edits of statuses already passed on.
    #[serde(default = "default_remembered_ids")]
    pub remembered_ids: usize,
}

fn default_timeline() -> Timeline {
    Timeline::Public
}
fn default_max_events() -> usize {
    1000
}
fn default_reconnect_min() -> Duration {
    Duration::from_secs(1)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(60)
}
fn default_gap_fill_limit() -> usize {
    10
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_remembered_ids() -> usize {
    10_000
}

impl MastodonOptions {
    /// The public timeline of `server`, every other option at its default.
    pub fn new(server: impl Into<String>) -> Self {
        MastodonOptions {
            server: server.into(),
            timeline: default_timeline(),
            access_token: None,
            streaming_url: None,
            max_events_per_trigger: default_max_events(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
            gap_fill_limit: default_gap_fill_limit(),
            idle_timeout: default_idle_timeout(),
            remembered_ids: default_remembered_ids(),
        }
    }

    /// Checks values no server would accept or that would make the source misbehave.
    pub fn validate(&self) -> Result<(), String> {
        for url in std::iter::once(&self.server).chain(&self.streaming_url) {
            let endpoint = crate::net::Endpoint::parse(url)?;
            if endpoint.path_and_query.contains('?') {
                return Err(format!(
                    "mastodon: `{url}` must be a base URL, without a query"
                ));
            }
        }
        if self.max_events_per_trigger == 0 {
            return Err("mastodon `max_events_per_trigger` must be at least 1".into());
        }
        if self.reconnect_min.is_zero() {
            return Err("mastodon `reconnect_min` must be more than 0".into());
        }
        if self.idle_timeout < Duration::from_millis(100) {
            return Err("mastodon `idle_timeout` must be at least 100ms".into());
        }
        if self.remembered_ids == 0 {
            return Err("mastodon `remembered_ids` must be at least 1".into());
        }
        if self.access_token.as_deref().is_some_and(|t| {
            t.is_empty() || t.contains(|c: char| c.is_whitespace() || c.is_control())
        }) {
            return Err("mastodon `access_token` is empty or has spaces".into());
        }
        Ok(())
    }
}

impl fmt::Debug for MastodonOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MastodonOptions")
            .field("server", &self.server)
            .field("timeline", &self.timeline)
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("streaming_url", &self.streaming_url)
            .field("max_events_per_trigger", &self.max_events_per_trigger)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("gap_fill_limit", &self.gap_fill_limit)
            .field("idle_timeout", &self.idle_timeout)
            .field("remembered_ids", &self.remembered_ids)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timelines_map_to_the_streaming_and_rest_endpoints() {
        let t: Timeline = "hashtag:#Rust".parse().unwrap();
        assert_eq!(t, Timeline::Hashtag("Rust".into()));
        assert_eq!(t.streaming_path(), "/api/v1/streaming/hashtag?tag=Rust");
        assert_eq!(t.rest_path().0, "/api/v1/timelines/tag/Rust");
        let local: Timeline = "public:local".parse().unwrap();
        assert_eq!(local.streaming_path(), "/api/v1/streaming/public/local");
        assert_eq!(
            local.rest_path(),
            (
                "/api/v1/timelines/public".into(),
                vec![("local", "true".into())]
            )
        );
        assert_eq!(Timeline::Public.to_string(), "public");
        assert!("hashtag:".parse::<Timeline>().is_err());
        assert!("home".parse::<Timeline>().is_err());
    }

    #[test]
    fn yaml_keys_are_field_names_and_the_token_is_never_printed() {
        let o: MastodonOptions = serde_json::from_str(
            r#"{"server":"https://mastodon.social","timeline":"hashtag:rstats","access_token":"s3cret",
                "max_events_per_trigger":10,"reconnect_min":"50ms","reconnect_max":"2s",
                "gap_fill_limit":3,"idle_timeout":"30s","remembered_ids":100}"#,
        )
        .unwrap();
        assert_eq!(o.timeline, Timeline::Hashtag("rstats".into()));
        assert_eq!(o.reconnect_min, Duration::from_millis(50));
        assert_eq!(o.gap_fill_limit, 3);
        o.validate().unwrap();
        assert!(!format!("{o:?}").contains("s3cret"));
        let defaults: MastodonOptions =
            serde_json::from_str(r#"{"server":"https://mastodon.social"}"#).unwrap();
        assert_eq!(defaults, MastodonOptions::new("https://mastodon.social"));
        assert!(serde_json::from_str::<MastodonOptions>(r#"{"timeline":"public"}"#).is_err());
        assert!(
            MastodonOptions::new("https://mastodon.social/?x=1")
                .validate()
                .is_err()
        );
    }
}
