//! Durations in options as pipeline files write them ("5s", "250ms", "1 minute"), read with
//! the same parser as every other duration of a pipeline.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use trendflow_core::duration::parse_duration;

/// For `#[serde(deserialize_with = "duration_option::deserialize")]`: a string with a unit,
/// or a bare number of seconds.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Seconds(f64),
    }
    let text = match Written::deserialize(d)? {
        Written::Text(t) => t,
        Written::Seconds(s) => s.to_string(),
    };
    parse_duration(&text).map_err(serde::de::Error::custom)
}
