//! The configuration model: what a pipeline file may say. Every struct denies unknown
//! fields, so a typo is an error, not a silently ignored option.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use trendflow_core::batch::OutputMode;
use trendflow_core::duration::parse_duration;

/// A duration written "10s", "5 minutes", "3h".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let text = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a duration like \"10s\", got {other}"
                )));
            }
        };
        parse_duration(&text)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// When epochs run: `trigger: available_now`, `trigger: 10s` (processing time), or
/// `trigger: {processing_time: 10s}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerConfig {
    AvailableNow,
    ProcessingTime(Duration),
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig::ProcessingTime(Duration::ZERO)
    }
}

impl<'de> Deserialize<'de> for TriggerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(
                "trigger must be `available_now`, a duration such as `10s`, or `{processing_time: 10s}`",
            )
        };
        match &v {
            serde_json::Value::String(s) if s == "available_now" || s == "availableNow" => {
                Ok(TriggerConfig::AvailableNow)
            }
            serde_json::Value::String(s) => parse_duration(s)
                .map(TriggerConfig::ProcessingTime)
                .map_err(|_| bad()),
            serde_json::Value::Number(n) => parse_duration(&n.to_string())
                .map(TriggerConfig::ProcessingTime)
                .map_err(|_| bad()),
            serde_json::Value::Object(m) if m.len() == 1 => {
                if let Some(p) = m.get("processing_time") {
                    let s = p
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| p.to_string());
                    parse_duration(&s)
                        .map(TriggerConfig::ProcessingTime)
                        .map_err(|_| bad())
                } else if m.get("available_now") == Some(&serde_json::Value::Bool(true)) {
                    Ok(TriggerConfig::AvailableNow)
                } else {
                    Err(bad())
                }
            }
            _ => Err(bad()),
        }
    }
}

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Defaults to the file name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub trigger: TriggerConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub dead_letter: Option<DeadLetterConfig>,
    /// Where checkpoints are kept; without it they are kept in memory only (failed actors
    /// are still restarted, but a new process starts from scratch).
    #[serde(default)]
    pub checkpoint: Option<CheckpointConfig>,
    #[serde(default)]
    pub restart: RestartConfig,
    /// Settings of every `s3://` location of the pipeline (source, archive, checkpoint,
    /// parquet sink); unset fields come from the standard `AWS_*` variables.
    #[serde(default)]
    pub s3: S3Config,
    /// Workers sharing a Kafka topic (`trendflow worker`, docs/scale-out.md).
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// Capacity of every mailbox, in batches (a raw batch from a file is about 4 MB of lines).
    #[serde(default = "default_mailbox")]
    pub mailbox_capacity: usize,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub transforms: BTreeMap<String, TransformConfig>,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Where each component ("sources.tweets") starts in the file: (line, column).
    #[serde(skip)]
    pub locations: BTreeMap<String, (u64, u64)>,
}

impl PipelineConfig {
    /// Prefixes a build error that names a component ("transforms.c: ...") with its position.
    pub fn locate(&self, error: &str) -> Option<(u64, u64)> {
        let component = error.split(':').next()?;
        self.locations.get(component).copied()
    }
}

fn default_mailbox() -> usize {
    8
}

/// How `trendflow worker` processes share a Kafka topic (docs/scale-out.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The consumer group the workers join to share the topic's partitions.
    pub group_id: String,
    /// Where each partition's checkpoint lives (`ROOT/pN`): a directory every worker
    /// reaches, or `s3://bucket/prefix`.
    pub checkpoint_root: String,
    /// How long a silent worker keeps its partitions before the group gives them to others.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: Dur,
}

fn default_session_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(10))
}

/// The embedded HTTP endpoint (SQL, status, metrics).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// host:port; port 0 picks a free port. Binds loopback unless told otherwise.
    #[serde(default = "default_api_address")]
    pub address: String,
    /// The environment variable holding a token every request must carry (bearer token).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The memory tables over the PostgreSQL wire protocol (psql, Grafana, DBeaver); off
    /// unless configured.
    #[serde(default)]
    pub pgwire: Option<PgWireConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            address: default_api_address(),
            token_env: None,
            pgwire: None,
        }
    }
}

/// The PostgreSQL wire-protocol endpoint (docs/pgwire.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgWireConfig {
    /// host:port; binds loopback unless told otherwise; when the port is taken the next nine
    /// are tried; port 0 picks a free one.
    #[serde(default = "default_pgwire_address")]
    pub address: String,
    /// The environment variable holding the password every client must give (any user name).
    #[serde(default)]
    pub password_env: Option<String>,
}

fn default_pgwire_address() -> String {
    "127.0.0.1:5433".into()
}

fn default_api_address() -> String {
    "127.0.0.1:4040".into()
}

fn default_true() -> bool {
    true
}

/// How `s3://` locations are reached (docs/s3.md). Secrets are never printed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `https://minio.example.org`, `http://127.0.0.1:9000`, or a bare host (https).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
    /// Bucket in the path (MinIO); the default when an endpoint is set.
    #[serde(default)]
    pub path_style: Option<bool>,
    #[serde(default)]
    pub max_retries: Option<usize>,
    #[serde(default)]
    pub retry_backoff: Option<Dur>,
    #[serde(default)]
    pub max_backoff: Option<Dur>,
    #[serde(default)]
    pub retry_timeout: Option<Dur>,
    #[serde(default)]
    pub request_timeout: Option<Dur>,
    #[serde(default)]
    pub connect_timeout: Option<Dur>,
}

/// Durable checkpoints (docs/checkpoints.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// A local directory, created if missing, or an `s3://bucket/prefix`. One per pipeline.
    pub path: PathBuf,
    /// How many checkpoints are kept (at least 2).
    #[serde(default = "default_keep")]
    pub keep: usize,
}

fn default_keep() -> usize {
    3
}

/// How failed actors are restarted (all together, from the last checkpoint).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartConfig {
    /// At most this many restarts within `within`; one more failure stops the pipeline
    /// with an error (exit code 1).
    #[serde(default = "default_max_restarts")]
    pub max_restarts: usize,
    #[serde(default = "default_within")]
    pub within: Dur,
    /// Wait before the first restart, doubled each consecutive time up to `max_backoff`.
    #[serde(default = "default_backoff")]
    pub backoff: Dur,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
    /// Failures of the same epoch before it is replayed record by record, setting aside
    /// (dead letter `operator_failed`) the records it fails on.
    #[serde(default = "default_poison_retries")]
    pub poison_retries: usize,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            max_restarts: default_max_restarts(),
            within: default_within(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            poison_retries: default_poison_retries(),
        }
    }
}

fn default_max_restarts() -> usize {
    5
}
fn default_within() -> Dur {
    Dur(Duration::from_secs(600))
}
fn default_backoff() -> Dur {
    Dur(Duration::from_millis(500))
}
fn default_max_backoff() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_poison_retries() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// JSON lines file the records set aside are appended to.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    File(FileSourceConfig),
    Generator(GeneratorSourceConfig),
    Socket(SocketSourceConfig),
    Kafka(KafkaSourceConfig),
    /// Bluesky's public firehose of posts (docs/bluesky-jetstream.md).
    Jetstream(trendflow_social::JetstreamOptions),
    /// A Mastodon server's streaming timeline (docs/mastodon.md).
    Mastodon(trendflow_social::MastodonOptions),
}

/// Records of Kafka topics, in epochs of offset ranges kept in the checkpoint (docs/kafka.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    pub bootstrap_servers: String,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Only these partitions: a list, or one number (what `--set` gives; a scale-out
    /// worker's pipeline for one partition).
    #[serde(default)]
    pub partitions: Option<KafkaPartitions>,
    #[serde(default)]
    pub group_id: Option<String>,
    /// `earliest`, `latest` or `{topic: {partition: offset}}`.
    #[serde(default)]
    pub starting_offsets: Option<KafkaStartingOffsets>,
    #[serde(default)]
    pub max_offsets_per_trigger: Option<u64>,
    #[serde(default = "default_true")]
    pub fail_on_data_loss: bool,
    #[serde(default)]
    pub idle_timeout: Option<Dur>,
    #[serde(default)]
    pub poll_timeout: Option<Dur>,
    #[serde(default)]
    pub batch_bytes: Option<usize>,
    /// librdkafka properties, as they are.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KafkaPartitions {
    One(i32),
    Many(Vec<i32>),
}

impl KafkaPartitions {
    pub fn to_vec(&self) -> Vec<i32> {
        match self {
            KafkaPartitions::One(p) => vec![*p],
            KafkaPartitions::Many(p) => p.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KafkaStartingOffsets {
    Named(KafkaStartingPoint),
    /// `{topic: {partition: offset}}`. The partitions are kept as text: the file is read into
    /// a JSON value tree, where every mapping key is a string, and serde's untagged enums
    /// cannot read a string key as a number (serde issue #1183). The pipeline builder parses
    /// them, reporting a key that is not a partition number with the other config errors.
    PerPartition(BTreeMap<String, BTreeMap<String, i64>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaStartingPoint {
    Earliest,
    Latest,
}

/// Realistic v1.1 tweets generated live (what `trendflow generate` writes, without files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSourceConfig {
    /// Tweets per second.
    #[serde(default = "default_rate")]
    pub rate: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Event time of the first tweet (ISO-8601); default: the wall clock at the first start,
    /// tweets then arriving in real time. With a start, tweets come as fast as they are taken.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default = "default_late_fraction")]
    pub late_fraction: f64,
    #[serde(default)]
    pub late_max: Option<Dur>,
    #[serde(default)]
    pub bad_fraction: f64,
    #[serde(default = "default_retweet_fraction")]
    pub retweet_fraction: f64,
    /// Stop after this many lines (required with `trigger: available_now`).
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default = "default_lines_per_trigger")]
    pub max_lines_per_trigger: usize,
}

fn default_rate() -> f64 {
    10.0
}
fn default_seed() -> u64 {
    1
}
fn default_late_fraction() -> f64 {
    0.03
}
fn default_retweet_fraction() -> f64 {
    0.3
}
fn default_lines_per_trigger() -> usize {
    100_000
}

/// Lines from a TCP server (Spark's `socket` source).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketSourceConfig {
    pub host: String,
    pub port: u16,
    /// Bytes taken per epoch at most.
    #[serde(default = "default_socket_bytes")]
    pub max_bytes_per_trigger: usize,
}

fn default_socket_bytes() -> usize {
    8 << 20
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CleanSourceMode {
    #[default]
    Off,
    Archive,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ListingConfig {
    #[default]
    Full,
    Incremental,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub latest_first: bool,
    #[serde(default)]
    pub max_file_age: Option<Dur>,
    #[serde(default)]
    pub max_files_per_trigger: Option<usize>,
    #[serde(default)]
    pub clean_source: CleanSourceMode,
    #[serde(default)]
    pub archive_dir: Option<PathBuf>,
    /// `full` (every key each trigger, Spark's way) or `incremental` (keys after the last one
    /// taken: for keys that sort by arrival).
    #[serde(default)]
    pub listing: ListingConfig,
    #[serde(default)]
    pub settle_time: Option<Dur>,
    #[serde(default)]
    pub batch_bytes: Option<usize>,
    /// With `trigger: available_now`, end with a watermark that closes every window (Spark
    /// leaves the windows after the last watermark open, and so does the default).
    #[serde(default)]
    pub final_watermark: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransformConfig {
    ParseJson(ParseJsonConfig),
    Filter(FilterConfig),
    Tokenize(TokenizeConfig),
    Extract(ExtractConfig),
    WindowCount(WindowCountConfig),
    Count(CountConfig),
}

impl TransformConfig {
    pub fn inputs(&self) -> &[String] {
        match self {
            TransformConfig::ParseJson(c) => &c.inputs,
            TransformConfig::Filter(c) => &c.inputs,
            TransformConfig::Tokenize(c) => &c.inputs,
            TransformConfig::Extract(c) => &c.inputs,
            TransformConfig::WindowCount(c) => &c.inputs,
            TransformConfig::Count(c) => &c.inputs,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PostFormat {
    /// Recognised line by line.
    #[default]
    Auto,
    /// Twitter API v1.1 statuses (`created_at`, `text`).
    TwitterV1,
    /// X API v2 payloads (`data`, `includes`).
    TwitterV2,
    /// Mastodon statuses.
    Mastodon,
    /// Bluesky Jetstream / tap events and AppView posts.
    Bluesky,
}

/// `text:` which text of a Twitter status counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TextConfig {
    /// The full text of a truncated status.
    #[default]
    Full,
    /// `text` as sent (140 characters at most), as Spark's tutorial reads it.
    AsSent,
}

/// `reposts:` what a retweet / reblog / repost contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RepostsConfig {
    /// Its own text (`RT @a: ...`), as Spark's tutorial.
    #[default]
    Own,
    /// The original's text and entities.
    Original,
}

/// `event_time:` where a post's event time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventTimeConfig {
    /// Creation time, else capture time (`timestamp_ms`, `time_us`, `indexedAt`).
    #[default]
    Auto,
    /// Creation time only (`created_at`), as Spark's tutorial.
    Created,
    /// Capture time only.
    Captured,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseJsonConfig {
    pub inputs: Vec<String>,
    #[serde(default)]
    pub format: PostFormat,
    #[serde(default)]
    pub text: TextConfig,
    #[serde(default)]
    pub reposts: RepostsConfig,
    #[serde(default)]
    pub event_time: EventTimeConfig,
    /// Parser actors running in parallel (default: one per core).
    #[serde(default)]
    pub parallelism: Option<usize>,
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenizeMode {
    /// Spark's `split(text, ' ')` keeping words with '#'.
    #[default]
    Split,
    /// Every word.
    Words,
    /// The post's id (to count posts: with a count, each id once).
    Ids,
    /// Entities of the text as Twitter defines them (twitter-text): see `entities:`.
    Entities,
}

/// `entities:` the kinds the `entities` mode keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityConfig {
    Hashtags,
    Mentions,
    Cashtags,
    Urls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    pub inputs: Vec<String>,
    #[serde(default)]
    pub mode: TokenizeMode,
    /// With `mode: entities`: which kinds (default: hashtags).
    #[serde(default)]
    pub entities: Option<Vec<EntityConfig>>,
    /// Lower-case every token (`#Insee` and `#INSEE` count together).
    #[serde(default)]
    pub lowercase: bool,
    /// Unicode NFC of every token.
    #[serde(default)]
    pub nfc: bool,
}

/// `track:` keywords, as a list of phrases or one comma-separated string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Track {
    One(String),
    Many(Vec<String>),
}

impl Track {
    pub fn phrases(&self) -> Vec<String> {
        match self {
            Track::One(s) => vec![s.clone()],
            Track::Many(v) => v.clone(),
        }
    }
}

/// A keyword filter with Twitter's `track` semantics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub inputs: Vec<String>,
    /// Phrases, any of which may match; a phrase's space-separated terms must all be present.
    pub track: Track,
}

/// Keys (and values) for a statistic from the posts' fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    pub inputs: Vec<String>,
    /// The field whose values are counted: author, mentions, hashtags, reposted_id, ...
    pub key: String,
    /// A second field: the number a `sum` adds up (followers, repost_count, like_count), or
    /// the values a `count_distinct` counts (author, ...).
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub lowercase: bool,
    #[serde(default)]
    pub nfc: bool,
}

/// `function:` of a windowed aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FunctionConfig {
    #[default]
    Count,
    Sum,
    CountDistinct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LateConfig {
    /// Count late rows in metrics only.
    #[default]
    Count,
    /// Count them and write them to the dead-letter output.
    DeadLetter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowCountConfig {
    pub inputs: Vec<String>,
    /// Window length, e.g. 3h.
    pub window: Dur,
    /// Defaults to the window length (tumbling windows).
    #[serde(default)]
    pub slide: Option<Dur>,
    /// Watermark delay, e.g. 1m.
    pub watermark: Dur,
    #[serde(default = "default_append")]
    pub output_mode: OutputMode,
    #[serde(default)]
    pub late: LateConfig,
    /// Events dated more than this after the wall clock are set aside (`future_event`) so
    /// they cannot drag the watermark ahead; `off` for replays of archives dated ahead.
    #[serde(default)]
    pub max_future_skew: FutureSkew,
    /// When no row arrived for this long, event time is taken to advance with the wall clock,
    /// so the last windows close on a quiet stream. Off by default (Spark waits for data).
    #[serde(default)]
    pub idle_timeout: Option<Dur>,
    /// count (rows), sum (of the input's values) or count_distinct (of its values).
    #[serde(default)]
    pub function: FunctionConfig,
    /// Only the k largest results of each window.
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default = "default_key")]
    pub key_column: String,
    /// Defaults to the function's name.
    #[serde(default)]
    pub value_column: Option<String>,
}

impl WindowCountConfig {
    pub fn value_column(&self) -> &str {
        self.value_column.as_deref().unwrap_or(match self.function {
            FunctionConfig::Count => "count",
            FunctionConfig::Sum => "sum",
            FunctionConfig::CountDistinct => "count_distinct",
        })
    }
}

/// `max_future_skew`: a duration, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutureSkew {
    Off,
    At(Duration),
}

impl Default for FutureSkew {
    fn default() -> Self {
        FutureSkew::At(Duration::from_secs(300))
    }
}

impl<'de> Deserialize<'de> for FutureSkew {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::String(s) if s == "off" => Ok(FutureSkew::Off),
            serde_json::Value::Bool(false) => Ok(FutureSkew::Off),
            serde_json::Value::String(s) => parse_duration(s)
                .map(FutureSkew::At)
                .map_err(serde::de::Error::custom),
            serde_json::Value::Number(n) => parse_duration(&n.to_string())
                .map(FutureSkew::At)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected a duration or `off`, got {other}"
            ))),
        }
    }
}

fn default_append() -> OutputMode {
    OutputMode::Append
}

fn default_complete() -> OutputMode {
    OutputMode::Complete
}

fn default_key() -> String {
    "word".into()
}

fn default_value() -> String {
    "count".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountConfig {
    pub inputs: Vec<String>,
    #[serde(default = "default_complete")]
    pub output_mode: OutputMode,
    #[serde(default = "default_key")]
    pub key_column: String,
    #[serde(default = "default_value")]
    pub value_column: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    File(FileSinkConfig),
    Memory(MemorySinkConfig),
    Console(ConsoleSinkConfig),
    Parquet(ParquetSinkConfig),
    Postgres(PostgresSinkConfig),
    Kafka(KafkaSinkConfig),
}

/// Result rows as JSON records on a Kafka topic, keyed by (window, key) (docs/kafka.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub inputs: Vec<String>,
    pub bootstrap_servers: String,
    pub topic: String,
    /// `json` (the row's identity) or `none`.
    #[serde(default)]
    pub key_format: Option<KafkaKeyFormat>,
    #[serde(default)]
    pub delivery_timeout: Option<Dur>,
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaKeyFormat {
    Json,
    None,
}

impl SinkConfig {
    pub fn inputs(&self) -> &[String] {
        match self {
            SinkConfig::File(c) => &c.inputs,
            SinkConfig::Memory(c) => &c.inputs,
            SinkConfig::Console(c) => &c.inputs,
            SinkConfig::Parquet(c) => &c.inputs,
            SinkConfig::Postgres(c) => &c.inputs,
            SinkConfig::Kafka(c) => &c.inputs,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PartitionByConfig {
    #[default]
    None,
    WindowDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CompressionConfig {
    #[default]
    Zstd,
    Snappy,
    None,
}

/// Final rows (append mode) as parquet files, one per epoch (docs/parquet-sink.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    pub inputs: Vec<String>,
    /// Output directory: local or `s3://bucket/prefix`.
    pub path: PathBuf,
    #[serde(default)]
    pub partition_by: PartitionByConfig,
    #[serde(default)]
    pub compression: CompressionConfig,
    /// zstd level (1-22).
    #[serde(default)]
    pub compression_level: Option<i32>,
}

/// Result rows into a PostgreSQL table, exactly once (docs/postgres-sink.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    pub inputs: Vec<String>,
    /// `postgres://user@host:5432/db` or `host=... dbname=...`; no password in it: use
    /// `password_env`.
    pub url: String,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Table name, optionally `schema.table`; defaults to the sink's name.
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default = "default_true")]
    pub create_table: bool,
    /// Give up (and fail the pipeline) after this long without reaching the server.
    #[serde(default)]
    pub retry_for: Option<Dur>,
    /// PEM certificates to trust for TLS besides the system's (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Set by `trendflow worker` on each partition's pipeline (docs/scale-out.md): the
    /// consumer-group generation that gave it the partition. Commits are refused once the
    /// commit table records a newer one.
    #[serde(default)]
    pub owner_generation: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FileFormatConfig {
    #[default]
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LayoutConfig {
    /// The current result table, rewritten at each commit.
    #[default]
    Table,
    /// Each epoch's rows appended.
    Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub inputs: Vec<String>,
    pub path: PathBuf,
    #[serde(default)]
    pub format: FileFormatConfig,
    #[serde(default)]
    pub layout: LayoutConfig,
    /// An IANA zone (`Europe/Paris`): window bounds as local times with their offset
    /// (`2021-04-15T10:00:00+02:00`). UTC (`...Z`) by default.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySinkConfig {
    pub inputs: Vec<String>,
    /// The table name SQL sees (Spark's query name); defaults to the sink's name.
    #[serde(default)]
    pub table: Option<String>,
    /// Oldest rows are dropped past this many (counted): a million by default, so that a
    /// pipeline that runs for weeks does not grow its table until memory runs out (Spark's
    /// memory sink does). `unbounded` keeps every row.
    #[serde(default)]
    pub max_rows: MaxRows,
    /// Keep rows sorted by count, largest first.
    #[serde(default)]
    pub sort_by_count: bool,
}

/// `max_rows:` a number of rows, or `unbounded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRows {
    At(usize),
    Unbounded,
}

impl MaxRows {
    pub const DEFAULT: MaxRows = MaxRows::At(1_000_000);

    pub fn limit(&self) -> Option<usize> {
        match self {
            MaxRows::At(n) => Some(*n),
            MaxRows::Unbounded => None,
        }
    }
}

impl Default for MaxRows {
    fn default() -> Self {
        MaxRows::DEFAULT
    }
}

impl<'de> Deserialize<'de> for MaxRows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::String(s) if s == "unbounded" => Ok(MaxRows::Unbounded),
            serde_json::Value::Number(n) => n
                .as_u64()
                .filter(|&n| n > 0)
                .map(|n| MaxRows::At(n as usize))
                .ok_or_else(|| serde::de::Error::custom("max_rows must be at least 1")),
            serde_json::Value::String(s) => s
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .map(MaxRows::At)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected a number of rows or `unbounded`, got `{s}`"
                    ))
                }),
            other => Err(serde::de::Error::custom(format!(
                "expected a number of rows or `unbounded`, got {other}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    pub inputs: Vec<String>,
    #[serde(default = "default_num_rows")]
    pub num_rows: usize,
    #[serde(default = "default_true")]
    pub truncate: bool,
}

fn default_num_rows() -> usize {
    20
}
