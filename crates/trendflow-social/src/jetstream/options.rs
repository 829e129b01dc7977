//! The options of a `type: jetstream` source, named as they are written in pipeline files.

use std::time::Duration;

use serde::Deserialize;

/// How to subscribe to Jetstream. Every field has a default (see the `Default` impl):
/// `JetstreamOptions::default()` follows posts on a public Bluesky instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JetstreamOptions {
    /// The subscription endpoint, `wss://HOST/subscribe` (or `ws://` for a local server).
    pub url: String,
    /// Collections (record types) to receive, e.g. `app.bsky.feed.post`; a prefix ending in
    /// `.*` (`app.bsky.feed.*`) takes a whole namespace; empty: every collection. Identity
    /// and account events come whatever this says.
    pub wanted_collections: Vec<String>,
    /// Only the repositories (accounts) with these DIDs; empty: every account.
    pub wanted_dids: Vec<String>,
    /// Ask for zstd-compressed messages (about half the bandwidth, a little CPU).
    pub compress: bool,
    /// How far before its cursor the source resumes after a reconnect or a restart, so that
    /// events Jetstream delivered out of order around the cut are received again (and
    /// recognised as duplicates when they were not lost).
    #[serde(deserialize_with = "crate::duration_option::deserialize")]
    pub rewind: Duration,
    /// Events taken into one epoch at most.
    pub max_events_per_trigger: usize,
    /// The first wait before reconnecting after a disconnect; doubled after each failed
    /// attempt (with random jitter) up to `reconnect_max`.
    #[serde(deserialize_with = "crate::duration_option::deserialize")]
    pub reconnect_min: Duration,
    /// The longest wait between two connection attempts.
    #[serde(deserialize_with = "crate::duration_option::deserialize")]
    pub reconnect_max: Duration,
    /// A connection on which nothing arrives for this long (not even the answer to a ping,
    /// sent every third of it) is taken as dead and replaced.
    #[serde(deserialize_with = "crate::duration_option::deserialize")]
    pub idle_timeout: Duration,
}

impl Default for JetstreamOptions {
    fn default() -> Self {
        JetstreamOptions {
            url: "wss://jetstream2.us-east.bsky.network/subscribe".into(),
            wanted_collections: vec!["app.bsky.feed.post".into()],
            wanted_dids: Vec::new(),
            compress: false,
            rewind: Duration::from_secs(5),
            max_events_per_trigger: 10_000,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl JetstreamOptions {
    /// Checks values no server would accept or that would make the source misbehave.
    pub fn validate(&self) -> Result<(), String> {
        let endpoint = crate::net::Endpoint::parse(&self.url)?;
        if endpoint.path_and_query.contains('?') {
            return Err(format!(
                "jetstream `url` {} has a query string: give the subscription with `wanted_collections`, `wanted_dids` and `compress`",
                self.url
            ));
        }
        if self.max_events_per_trigger == 0 {
            return Err("jetstream `max_events_per_trigger` must be at least 1".into());
        }
        if self.reconnect_min.is_zero() {
            return Err("jetstream `reconnect_min` must be more than 0".into());
        }
        if self.idle_timeout < Duration::from_millis(300) {
            return Err("jetstream `idle_timeout` must be at least 300ms".into());
        }
        for c in &self.wanted_collections {
            if c.is_empty() || c.contains(char::is_whitespace) {
                return Err(format!(
                    "jetstream `wanted_collections`: `{c}` is not a collection NSID"
                ));
            }
        }
        for d in &self.wanted_dids {
            if !d.starts_with("did:") {
                return Err(format!("jetstream `wanted_dids`: `{d}` is not a DID"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keys_are_field_names_and_durations_have_units() {
        let o: JetstreamOptions = serde_json::from_str(
            r#"{"url":"ws://127.0.0.1:1/subscribe","wanted_collections":["app.bsky.feed.*"],
                "wanted_dids":["did:plc:a"],"compress":true,"rewind":"2s","max_events_per_trigger":5,
                "reconnect_min":"100ms","reconnect_max":3,"idle_timeout":"1m"}"#,
        )
        .unwrap();
        assert_eq!(o.rewind, Duration::from_secs(2));
        assert_eq!(o.reconnect_min, Duration::from_millis(100));
        assert_eq!(o.reconnect_max, Duration::from_secs(3));
        assert_eq!(o.idle_timeout, Duration::from_secs(60));
        assert!(o.compress);
        o.validate().unwrap();
        let defaults: JetstreamOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(defaults, JetstreamOptions::default());
        defaults.validate().unwrap();
        assert!(serde_json::from_str::<JetstreamOptions>(r#"{"urls":"x"}"#).is_err());
        let bad = JetstreamOptions {
            url: "wss://h/subscribe?cursor=1".into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
