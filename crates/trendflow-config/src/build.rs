//! From a checked configuration to a runnable graph: each component config builds its
//! component; wiring is checked (inputs exist, kinds match) with every problem reported.

use std::collections::BTreeMap;

use std::sync::Arc;
use trendflow_connectors::ObjectStoreCheckpoints;
use trendflow_connectors::file_sink::Layout;
use trendflow_connectors::file_source::Listing;
use trendflow_connectors::generator::GeneratorConfig;
use trendflow_connectors::parquet_sink::{
    ParquetCompression, ParquetSink, ParquetSinkOptions, Partitioning,
};
use trendflow_connectors::postgres_sink::{PostgresSink, PostgresSinkOptions};
use trendflow_connectors::storage::{Location, S3Options, Secret};
use trendflow_connectors::{
    CleanSource, ConsoleSink, DeadLetterFile, FileFormat, FileSink, FileSinkOptions, FileSource,
    FileSourceOptions, GeneratorSource, GeneratorSourceOptions, MemorySink, SocketSource,
};
use trendflow_core::batch::OutputMode;
use trendflow_core::metrics::Metrics;
use trendflow_core::{DataKind, DeadLetterSink, Operator, SlidingWindows};
use trendflow_ops::extract::{Extract, Field, Value as ExtractValue};
use trendflow_ops::filter::KeywordFilter;
use trendflow_ops::formats::{Format, FormatOptions, Needs, RepostText, TextChoice, TimeChoice};
use trendflow_ops::normalize::Normalize;
use trendflow_ops::{
    Aggregate, EntityKinds, JsonPostParser, KeyCount, LatePolicy, ParserOptions, Tokenizer,
    TokenizerMode, WindowedCount,
};
use trendflow_runtime::checkpoint::{CheckpointStore, Checkpointer, LocalDirStore, MemoryStore};
use trendflow_runtime::{
    GraphBuilder, NodeBody, NodeSpec, PipelineGraph, RestartPolicy, SourceOptions, Supervisor,
    Trigger,
};
use trendflow_sql::MemoryTables;

use crate::model::*;

/// A pipeline ready to start, with the handles the binary needs around it.
pub struct BuiltPipeline {
    pub graph: PipelineGraph,
    /// What the binary keeps once the pipeline runs (name, tables, metrics...).
    pub parts: BuiltParts,
    /// Builds fresh components for a restart (same metrics and memory tables).
    pub rebuild: GraphBuilder,
    pub checkpoints: Checkpointer,
    pub restart: RestartPolicy,
}

impl BuiltPipeline {
    /// The supervisor that runs this pipeline, restarting it from checkpoints on failure.
    pub fn into_supervisor(self) -> (Supervisor, BuiltParts) {
        let sup = Supervisor::new(self.graph, self.rebuild, self.restart, self.checkpoints);
        (sup, self.parts)
    }
}

/// What the binary keeps of a built pipeline once its supervisor runs it.
pub struct BuiltParts {
    pub name: String,
    pub tables: MemoryTables,
    pub metrics: Metrics,
    pub api: ApiConfig,
    pub trigger: TriggerConfig,
    pub memory_tables: BTreeMap<String, String>,
    pub checkpoint_path: Option<std::path::PathBuf>,
    pub sinks: Vec<String>,
    /// Local directories the file sources read (for progress of a bounded run).
    pub local_inputs: Vec<std::path::PathBuf>,
    /// The components and their edges, for the dashboard's graph.
    pub topology: Vec<TopologyNode>,
}

/// One component of the pipeline as the dashboard draws it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopologyNode {
    pub name: String,
    /// `source`, `transform` or `sink`.
    pub kind: &'static str,
    /// Its `type:` in the pipeline file (`file`, `parse_json`, `window_count`, `memory`...).
    #[serde(rename = "type")]
    pub component_type: String,
    pub inputs: Vec<String>,
    pub parallelism: usize,
}

/// The components of a built graph, with their configured types.
fn topology(config: &PipelineConfig, graph: &PipelineGraph) -> Vec<TopologyNode> {
    // The config enums' variant names are the `type:` values in CamelCase.
    fn type_name(debug: String) -> String {
        let variant = debug.split(['(', ' ', '{']).next().unwrap_or_default();
        let mut out = String::new();
        for (i, c) in variant.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
    graph
        .nodes
        .iter()
        .map(|n| {
            let (kind, parallelism) = match &n.body {
                NodeBody::Source { .. } => ("source", 1),
                NodeBody::Operator { parallelism, .. } => ("transform", (*parallelism).max(1)),
                NodeBody::Sink(_) => ("sink", 1),
            };
            let component_type = if let Some(c) = config.sources.get(&n.name) {
                type_name(format!("{c:?}"))
            } else if let Some(c) = config.transforms.get(&n.name) {
                type_name(format!("{c:?}"))
            } else if let Some(c) = config.sinks.get(&n.name) {
                type_name(format!("{c:?}"))
            } else {
                String::new()
            };
            TopologyNode {
                name: n.name.clone(),
                kind,
                component_type,
                inputs: n.inputs.clone(),
                parallelism,
            }
        })
        .collect()
}

fn kinds(config: &PipelineConfig) -> BTreeMap<&str, (DataKind, Option<DataKind>)> {
    // name -> (output kind, expected input kind)
    let mut m = BTreeMap::new();
    for name in config.sources.keys() {
        m.insert(name.as_str(), (DataKind::Raw, None));
    }
    for (name, t) in &config.transforms {
        let k = match t {
            TransformConfig::ParseJson(_) => (DataKind::Posts, Some(DataKind::Raw)),
            TransformConfig::Filter(_) => (DataKind::Posts, Some(DataKind::Posts)),
            TransformConfig::Tokenize(_) | TransformConfig::Extract(_) => {
                (DataKind::Tokens, Some(DataKind::Posts))
            }
            TransformConfig::WindowCount(_) | TransformConfig::Count(_) => {
                (DataKind::Rows, Some(DataKind::Tokens))
            }
        };
        m.insert(name.as_str(), k);
    }
    m
}

/// The result columns a transform produces, if it produces result rows.
fn row_schema(
    config: &PipelineConfig,
    name: &str,
) -> Option<std::sync::Arc<trendflow_core::RowSchema>> {
    let (windowed, key, value) = match config.transforms.get(name)? {
        TransformConfig::WindowCount(c) => (true, &c.key_column, c.value_column()),
        TransformConfig::Count(c) => (false, &c.key_column, c.value_column.as_str()),
        _ => return None,
    };
    Some(std::sync::Arc::new(trendflow_core::RowSchema {
        windowed,
        key_column: key.as_str().into(),
        value_column: value.into(),
    }))
}

/// The pipeline's S3 settings: its `s3:` section over the defaults (the environment fills in
/// what is left when a store is opened).
pub fn s3_options(config: &PipelineConfig) -> S3Options {
    let c = &config.s3;
    let d = S3Options::default();
    S3Options {
        endpoint: c.endpoint.clone(),
        region: c.region.clone(),
        access_key_id: c.access_key_id.clone(),
        secret_access_key: c.secret_access_key.clone().map(Secret),
        session_token: c.session_token.clone().map(Secret),
        path_style: c.path_style,
        max_retries: c.max_retries.unwrap_or(d.max_retries),
        initial_backoff: c.retry_backoff.map_or(d.initial_backoff, |x| x.0),
        max_backoff: c.max_backoff.map_or(d.max_backoff, |x| x.0),
        retry_timeout: c.retry_timeout.map_or(d.retry_timeout, |x| x.0),
        request_timeout: c.request_timeout.map_or(d.request_timeout, |x| x.0),
        connect_timeout: c.connect_timeout.map_or(d.connect_timeout, |x| x.0),
    }
}

fn location(path: &std::path::Path) -> Result<Location, String> {
    Location::parse(&path.to_string_lossy())
}

/// The output mode of the rows a transform produces.
fn rows_mode(config: &PipelineConfig, name: &str) -> Option<OutputMode> {
    match config.transforms.get(name)? {
        TransformConfig::WindowCount(c) => Some(c.output_mode),
        TransformConfig::Count(c) => Some(c.output_mode),
        _ => None,
    }
}

/// The checkpoint store at `path` (a directory, or `s3://bucket/prefix` with the pipeline's
/// `s3` settings), and the directory when it is local. `cluster status` reads the partitions'
/// checkpoints through it too.
pub fn checkpoint_store(
    config: &PipelineConfig,
    path: &std::path::Path,
) -> Result<(Arc<dyn CheckpointStore>, Option<std::path::PathBuf>), String> {
    match location(path) {
        Ok(Location::Local(dir)) => Ok((Arc::new(LocalDirStore::new(&dir)), Some(dir))),
        Ok(l @ Location::S3 { .. }) => {
            let Location::S3 { bucket, prefix } = &l else {
                unreachable!()
            };
            match s3_options(config).build(bucket) {
                Ok(store) => Ok((
                    Arc::new(ObjectStoreCheckpoints::new(store, prefix, &l.describe())),
                    None,
                )),
                Err(e) => Err(format!("checkpoint.path: {e}")),
            }
        }
        Err(e) => Err(format!("checkpoint.path: {e}")),
    }
}

/// Checks the wiring and builds every component. Returns every problem found.
pub fn build(config: &PipelineConfig) -> Result<BuiltPipeline, Vec<String>> {
    let metrics = Metrics::new();
    let tables = MemoryTables::new();
    let (graph, memory_tables) = build_graph(config, &metrics, &tables)?;
    let name = graph.name.clone();
    let topology = topology(config, &graph);
    let rebuild: GraphBuilder = {
        let (config, metrics, tables) = (config.clone(), metrics.clone(), tables.clone());
        Box::new(move || {
            build_graph(&config, &metrics, &tables)
                .map(|(g, _)| g)
                .map_err(|e| e.join("; "))
        })
    };
    let (store, local_checkpoint) = match &config.checkpoint {
        Some(c) => checkpoint_store(config, &c.path).map_err(|e| vec![e])?,
        None => (
            Arc::new(MemoryStore::new()) as Arc<dyn CheckpointStore>,
            None,
        ),
    };
    let keep = config.checkpoint.as_ref().map_or(2, |c| c.keep);
    let r = &config.restart;
    Ok(BuiltPipeline {
        graph,
        parts: BuiltParts {
            topology,
            name,
            tables,
            metrics,
            api: config.api.clone(),
            trigger: config.trigger,
            memory_tables,
            checkpoint_path: local_checkpoint,
            local_inputs: config
                .sources
                .values()
                .filter_map(|s| match s {
                    SourceConfig::File(f) => match location(&f.path) {
                        Ok(Location::Local(dir)) => Some(dir),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            sinks: config.sinks.keys().cloned().collect(),
        },
        rebuild,
        checkpoints: Checkpointer::new(store, keep),
        restart: RestartPolicy {
            max_restarts: r.max_restarts,
            within: r.within.0,
            backoff: r.backoff.0,
            max_backoff: r.max_backoff.0,
            poison_retries: r.poison_retries,
        },
    })
}

/// A Kafka source's options from its config; the event time of its records is read as the
/// parser fed by it reads it, for the per-partition frontier.
fn kafka_source_options(
    config: &PipelineConfig,
    name: &str,
    k: &KafkaSourceConfig,
    trigger: Trigger,
) -> Result<trendflow_kafka::KafkaSourceOptions, Vec<String>> {
    let mut o = trendflow_kafka::KafkaSourceOptions {
        bootstrap_servers: k.bootstrap_servers.clone(),
        topics: k.topics.clone(),
        topic_pattern: k.topic_pattern.clone(),
        partitions: k.partitions.as_ref().map(KafkaPartitions::to_vec),
        group_id: k.group_id.clone(),
        max_offsets_per_trigger: k.max_offsets_per_trigger,
        fail_on_data_loss: k.fail_on_data_loss,
        idle_timeout: k.idle_timeout.map(|d| d.0),
        extra: k.extra.clone(),
        bounded: trigger == Trigger::AvailableNow,
        ..Default::default()
    };
    if let Some(d) = k.poll_timeout {
        o.poll_timeout = d.0;
    }
    if let Some(b) = k.batch_bytes {
        o.batch_bytes = b;
    }
    o.starting_offsets = match &k.starting_offsets {
        None => trendflow_kafka::StartingOffsets::default(),
        Some(KafkaStartingOffsets::Named(KafkaStartingPoint::Earliest)) => {
            trendflow_kafka::StartingOffsets::Earliest
        }
        Some(KafkaStartingOffsets::Named(KafkaStartingPoint::Latest)) => {
            trendflow_kafka::StartingOffsets::Latest
        }
        Some(KafkaStartingOffsets::PerPartition(m)) => {
            trendflow_kafka::StartingOffsets::PerPartition(per_partition_offsets(name, m)?)
        }
    };
    let parser = config.transforms.iter().find_map(|(t, c)| match c {
        TransformConfig::ParseJson(p) if p.inputs.iter().any(|i| i == name) => Some(t),
        _ => None,
    });
    if let Some(options) = parser.and_then(|p| parser_options(config, p)) {
        o.event_time = Some(std::sync::Arc::new(
            trendflow_ops::parser::event_time_extractor(&options),
        ));
    }
    Ok(o)
}

/// `starting_offsets: {topic: {partition: offset}}` with its partitions, text in the config,
/// as numbers; every key that is not a partition number and every offset that is neither an
/// offset nor -1 / -2 is reported.
fn per_partition_offsets(
    source: &str,
    offsets: &BTreeMap<String, BTreeMap<String, i64>>,
) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (topic, partitions) in offsets {
        let mut parsed = BTreeMap::new();
        for (partition, &offset) in partitions {
            let at = format!("sources.{source}.starting_offsets.{topic}.{partition}");
            match partition.trim().parse::<i32>() {
                Ok(p) if p >= 0 => {
                    parsed.insert(p, offset);
                }
                _ => errors.push(format!(
                    "{at}: `{partition}` is not a partition number (0, 1, 2...)"
                )),
            }
            if offset < -2 {
                errors.push(format!(
                    "{at}: offset {offset}: an offset is 0 or more, -1 (latest) or -2 (earliest)"
                ));
            }
        }
        out.insert(topic.clone(), parsed);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn source_node(
    name: &str,
    source: Box<dyn trendflow_core::Source>,
    trigger: Trigger,
    heartbeat: Option<std::time::Duration>,
    mailbox: usize,
) -> NodeSpec {
    NodeSpec {
        name: name.to_string(),
        body: NodeBody::Source {
            source,
            trigger,
            options: SourceOptions {
                final_watermark: false,
                heartbeat,
            },
        },
        inputs: vec![],
        mailbox,
    }
}

type GraphAndTables = (PipelineGraph, BTreeMap<String, String>);

/// Builds every component of `config`, writing to `metrics` and `tables`.
fn build_graph(
    config: &PipelineConfig,
    metrics: &Metrics,
    tables: &MemoryTables,
) -> Result<GraphAndTables, Vec<String>> {
    let mut errors = Vec::new();
    let name = config.name.clone().unwrap_or_else(|| "pipeline".into());
    let kinds = kinds(config);

    // Names are unique across sections: `inputs:` refers to them.
    let mut seen = BTreeMap::new();
    for (section, names) in [
        ("sources", config.sources.keys().collect::<Vec<_>>()),
        ("transforms", config.transforms.keys().collect()),
        ("sinks", config.sinks.keys().collect()),
    ] {
        for n in names {
            if let Some(other) = seen.insert(n.clone(), section) {
                errors.push(format!(
                    "`{n}` is both in {other} and in {section}: component names must be unique"
                ));
            }
        }
    }
    if config.sources.is_empty() {
        errors.push("the pipeline has no source".into());
    }
    if config.sinks.is_empty() {
        errors.push("the pipeline has no sink".into());
    }
    let check_inputs =
        |section: &str, node: &str, inputs: &[String], want: DataKind, errors: &mut Vec<String>| {
            if inputs.is_empty() {
                errors.push(format!("{section}.{node}: `inputs` is empty"));
            }
            for i in inputs {
                match kinds.get(i.as_str()) {
                    None => {
                        let hint = if config.sinks.contains_key(i) {
                            " (it is a sink: sinks feed nothing)"
                        } else {
                            ""
                        };
                        errors.push(format!(
                            "{section}.{node}: input `{i}` does not exist{hint}"
                        ));
                    }
                    Some((out, _)) if *out != want => {
                        errors.push(format!(
                            "{section}.{node}: takes {want}, but `{i}` produces {out}"
                        ));
                    }
                    _ => {}
                }
            }
        };
    for (n, t) in &config.transforms {
        let (_, want) = kinds[n.as_str()];
        check_inputs("transforms", n, t.inputs(), want.unwrap(), &mut errors);
    }
    for (n, s) in &config.sinks {
        check_inputs("sinks", n, s.inputs(), DataKind::Rows, &mut errors);
    }

    let trigger = match config.trigger {
        TriggerConfig::AvailableNow => Trigger::AvailableNow,
        TriggerConfig::ProcessingTime(d) => Trigger::ProcessingTime(d),
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mailbox = config.mailbox_capacity.max(1);
    let mut nodes = Vec::new();
    // Aggregations with an idle timeout need epochs while no data comes.
    let heartbeat = config
        .transforms
        .values()
        .filter_map(|t| match t {
            TransformConfig::WindowCount(c) => c.idle_timeout.map(|d| d.0),
            _ => None,
        })
        .min();

    for (n, s) in &config.sources {
        match s {
            SourceConfig::File(f) => {
                let source_location = match location(&f.path) {
                    Ok(l) => l,
                    Err(e) => {
                        errors.push(format!("sources.{n}.path: {e}"));
                        continue;
                    }
                };
                let mut o = FileSourceOptions::at(source_location.clone());
                o.s3 = s3_options(config);
                o.listing = match f.listing {
                    ListingConfig::Full => Listing::Full,
                    ListingConfig::Incremental => Listing::Incremental,
                };
                if o.listing == Listing::Incremental && f.latest_first {
                    errors.push(format!(
                        "sources.{n}: listing: incremental reads keys in order; latest_first does not apply"
                    ));
                }
                o.pattern = f.pattern.clone().unwrap_or_default();
                o.latest_first = f.latest_first;
                if let Some(a) = f.max_file_age {
                    o.max_file_age = a.0;
                }
                o.max_files_per_trigger = f.max_files_per_trigger;
                if f.max_files_per_trigger == Some(0) {
                    errors.push(format!(
                        "sources.{n}: max_files_per_trigger must be at least 1"
                    ));
                }
                o.clean_source = match (f.clean_source, &f.archive_dir) {
                    (CleanSourceMode::Off, _) => CleanSource::Off,
                    (CleanSourceMode::Delete, _) => CleanSource::Delete,
                    (CleanSourceMode::Archive, Some(d)) => {
                        let archive = match location(d) {
                            Ok(a) => a,
                            Err(e) => {
                                errors.push(format!("sources.{n}.archive_dir: {e}"));
                                continue;
                            }
                        };
                        let inside = match (&source_location, &archive) {
                            (Location::Local(s), Location::Local(a)) => {
                                a.starts_with(s).then(|| a.clone())
                            }
                            (
                                Location::S3 {
                                    bucket: b1,
                                    prefix: p1,
                                },
                                Location::S3 {
                                    bucket: b2,
                                    prefix: p2,
                                },
                            ) => (b1 == b2
                                && (p1.is_empty()
                                    || p2 == p1
                                    || p2.starts_with(&format!("{p1}/"))))
                            .then(|| std::path::PathBuf::from(p2)),
                            _ => None,
                        };
                        if inside.is_some_and(|a| {
                            !a.file_name()
                                .is_some_and(|x| x.to_string_lossy().starts_with(['.', '_']))
                        }) {
                            errors.push(format!("sources.{n}: archive_dir must not be inside the source path (or must be hidden, like `.archive`)"));
                        }
                        CleanSource::Archive(archive)
                    }
                    (CleanSourceMode::Archive, None) => {
                        errors.push(format!(
                            "sources.{n}: clean_source: archive needs archive_dir"
                        ));
                        CleanSource::Off
                    }
                };
                if let Some(s) = f.settle_time {
                    o.settle_time = s.0;
                }
                if let Some(b) = f.batch_bytes {
                    o.batch_bytes = b.max(1);
                }
                o.bounded = trigger == Trigger::AvailableNow;
                match FileSource::new(o, n, metrics) {
                    Ok(src) => nodes.push(NodeSpec {
                        name: n.clone(),
                        body: NodeBody::Source {
                            source: Box::new(src),
                            trigger,
                            options: SourceOptions {
                                final_watermark: f.final_watermark,
                                heartbeat,
                            },
                        },
                        inputs: vec![],
                        mailbox,
                    }),
                    Err(e) => errors.push(format!("sources.{n}: {e}")),
                }
            }
            SourceConfig::Generator(g) => {
                let start_ms = match &g.start {
                    None => None,
                    Some(s) => match trendflow_core::time::parse_iso8601(s) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            errors.push(format!("sources.{n}: start {s:?}: {e}"));
                            None
                        }
                    },
                };
                if g.rate.is_nan() || g.rate <= 0.0 {
                    errors.push(format!("sources.{n}: rate must be positive"));
                }
                if trigger == Trigger::AvailableNow && g.limit.is_none() {
                    errors.push(format!(
                        "sources.{n}: a generator never runs out: with trigger available_now, set `limit`"
                    ));
                }
                let defaults = GeneratorConfig::default();
                let config = GeneratorConfig {
                    seed: g.seed,
                    start_ms: start_ms.unwrap_or(defaults.start_ms),
                    rate: g.rate,
                    late_fraction: g.late_fraction,
                    late_max_ms: g
                        .late_max
                        .map_or(defaults.late_max_ms, |d| d.0.as_millis() as i64),
                    bad_fraction: g.bad_fraction,
                    retweet_fraction: g.retweet_fraction,
                };
                let src = GeneratorSource::new(
                    n,
                    GeneratorSourceOptions {
                        config,
                        start_now: g.start.is_none(),
                        real_time: g.start.is_none(),
                        max_lines_per_trigger: g.max_lines_per_trigger,
                        limit: g.limit,
                    },
                );
                nodes.push(source_node(n, Box::new(src), trigger, heartbeat, mailbox));
            }
            SourceConfig::Socket(s) => {
                let src = SocketSource::new(
                    &s.host,
                    s.port,
                    trigger == Trigger::AvailableNow,
                    s.max_bytes_per_trigger,
                );
                nodes.push(source_node(n, Box::new(src), trigger, heartbeat, mailbox));
            }
            SourceConfig::Jetstream(o) => {
                match trendflow_social::JetstreamSource::new(o.clone(), n, metrics) {
                    Ok(src) => {
                        nodes.push(source_node(n, Box::new(src), trigger, heartbeat, mailbox))
                    }
                    Err(e) => errors.push(format!("sources.{n}: {e}")),
                }
            }
            SourceConfig::Mastodon(o) => {
                match trendflow_social::MastodonSource::new(o.clone(), n, metrics) {
                    Ok(src) => {
                        nodes.push(source_node(n, Box::new(src), trigger, heartbeat, mailbox))
                    }
                    Err(e) => errors.push(format!("sources.{n}: {e}")),
                }
            }
            SourceConfig::Kafka(k) => {
                let options = match kafka_source_options(config, n, k, trigger) {
                    Ok(o) => o,
                    Err(e) => {
                        errors.extend(e);
                        continue;
                    }
                };
                match trendflow_kafka::KafkaSource::new(options, n, metrics) {
                    Ok(src) => {
                        nodes.push(source_node(n, Box::new(src), trigger, heartbeat, mailbox))
                    }
                    Err(e) => errors.push(format!("sources.{n}: {e}")),
                }
            }
        }
    }

    for (n, t) in &config.transforms {
        let m = metrics.clone();
        let comp = n.clone();
        let (factory, parallelism): (trendflow_runtime::OperatorFactory, usize) = match t {
            TransformConfig::ParseJson(c) => {
                let opts = parser_options(config, n).expect("a parse_json stage");
                let par = c.parallelism.unwrap_or(cores).max(1);
                (
                    Box::new(move || {
                        Box::new(JsonPostParser::new(&comp, opts.clone(), &m)) as Box<dyn Operator>
                    }),
                    par,
                )
            }
            TransformConfig::Tokenize(c) => {
                if c.entities.is_some() && c.mode != TokenizeMode::Entities {
                    errors.push(format!(
                        "transforms.{n}.entities: only with `mode: entities`"
                    ));
                }
                let mode = match c.mode {
                    TokenizeMode::Split => TokenizerMode::Split,
                    TokenizeMode::Words => TokenizerMode::Words,
                    TokenizeMode::Ids => TokenizerMode::Ids,
                    TokenizeMode::Entities => {
                        let kinds = c.entities.clone().unwrap_or(vec![EntityConfig::Hashtags]);
                        TokenizerMode::Entities(EntityKinds {
                            hashtags: kinds.contains(&EntityConfig::Hashtags),
                            mentions: kinds.contains(&EntityConfig::Mentions),
                            cashtags: kinds.contains(&EntityConfig::Cashtags),
                            urls: kinds.contains(&EntityConfig::Urls),
                        })
                    }
                };
                let normalize = Normalize {
                    lowercase: c.lowercase,
                    nfc: c.nfc,
                };
                (
                    Box::new(move || {
                        Box::new(Tokenizer::new(mode).with_normalize(normalize))
                            as Box<dyn Operator>
                    }),
                    1,
                )
            }
            TransformConfig::Filter(c) => {
                let track = c.track.phrases();
                if let Err(e) = KeywordFilter::new(n, &track, metrics) {
                    errors.push(format!("transforms.{n}: {e}"));
                    continue;
                }
                (
                    Box::new(move || {
                        Box::new(KeywordFilter::new(&comp, &track, &m).expect("checked"))
                            as Box<dyn Operator>
                    }),
                    1,
                )
            }
            TransformConfig::Extract(c) => {
                let mut bad_field = |what: &str, name: &str| {
                    let known: Vec<&str> = Field::ALL.iter().map(|f| f.0).collect();
                    errors.push(format!(
                        "transforms.{n}.{what}: unknown field `{name}` (known: {})",
                        known.join(", ")
                    ));
                };
                let Some(key) = Field::parse(&c.key) else {
                    bad_field("key", &c.key);
                    continue;
                };
                let value = match c.value.as_deref().map(|v| (v, Field::parse(v))) {
                    None => None,
                    Some((_, Some(f))) if f.is_numeric() => Some(ExtractValue::Number(f)),
                    Some((_, Some(f))) => Some(ExtractValue::Distinct(f)),
                    Some((name, None)) => {
                        bad_field("value", name);
                        continue;
                    }
                };
                let normalize = Normalize {
                    lowercase: c.lowercase,
                    nfc: c.nfc,
                };
                (
                    Box::new(move || {
                        Box::new(Extract::new(key, value).with_normalize(normalize))
                            as Box<dyn Operator>
                    }),
                    1,
                )
            }
            TransformConfig::WindowCount(c) => {
                let size = c.window.0.as_millis() as i64;
                let slide = c.slide.map_or(size, |s| s.0.as_millis() as i64);
                let windows = match SlidingWindows::new(size, slide) {
                    Ok(w) => w,
                    Err(e) => {
                        errors.push(format!("transforms.{n}: {e}"));
                        continue;
                    }
                };
                let delay = c.watermark.0.as_millis() as i64;
                let late = match c.late {
                    LateConfig::Count => LatePolicy::Count,
                    LateConfig::DeadLetter => LatePolicy::DeadLetter,
                };
                let (mode, key, value) = (
                    c.output_mode,
                    c.key_column.clone(),
                    c.value_column().to_string(),
                );
                let aggregate = match c.function {
                    FunctionConfig::Count => Aggregate::Count,
                    FunctionConfig::Sum => Aggregate::Sum,
                    FunctionConfig::CountDistinct => Aggregate::CountDistinct,
                };
                if let Some(problem) = aggregate_problem(config, c) {
                    errors.push(format!("transforms.{n}: {problem}"));
                }
                let top_k = c.top_k;
                let skew = match c.max_future_skew {
                    FutureSkew::Off => None,
                    FutureSkew::At(d) => Some(d.as_millis() as i64),
                };
                let idle = c.idle_timeout.map(|d| d.0.as_millis() as i64);
                (
                    Box::new(move || {
                        Box::new(
                            WindowedCount::new(&comp, windows, delay, mode, late, &m)
                                .with_columns(&key, &value)
                                .with_aggregate(aggregate)
                                .with_top_k(top_k)
                                .with_max_future_skew(skew, None)
                                .with_idle_timeout(idle),
                        ) as Box<dyn Operator>
                    }),
                    1,
                )
            }
            TransformConfig::Count(c) => {
                if c.output_mode == OutputMode::Append {
                    errors.push(format!(
                        "transforms.{n}: output_mode append needs windows and a watermark (a count without them only changes: use complete or update)"
                    ));
                }
                let (mode, key, value) =
                    (c.output_mode, c.key_column.clone(), c.value_column.clone());
                (
                    Box::new(move || {
                        Box::new(KeyCount::new(mode, &key, &value)) as Box<dyn Operator>
                    }),
                    1,
                )
            }
        };
        nodes.push(NodeSpec {
            name: n.clone(),
            body: NodeBody::Operator {
                factory,
                parallelism,
            },
            inputs: t.inputs().to_vec(),
            mailbox,
        });
    }

    let mut memory_tables = BTreeMap::new();
    for (n, s) in &config.sinks {
        let sink: Box<dyn trendflow_core::Sink> = match s {
            SinkConfig::File(c) => {
                let time_zone = match c.time_zone.as_deref().map(jiff::tz::TimeZone::get) {
                    None => None,
                    Some(Ok(tz)) => Some(tz),
                    Some(Err(e)) => {
                        errors.push(format!(
                            "sinks.{n}.time_zone: `{}` is not a time zone: {e}",
                            c.time_zone.as_deref().unwrap_or("")
                        ));
                        continue;
                    }
                };
                Box::new(FileSink::new(FileSinkOptions {
                    path: c.path.clone(),
                    format: match c.format {
                        FileFormatConfig::Csv => FileFormat::Csv,
                        FileFormatConfig::Jsonl => FileFormat::JsonLines,
                    },
                    layout: match c.layout {
                        LayoutConfig::Table => Layout::Table,
                        LayoutConfig::Log => Layout::Log,
                    },
                    schema: c.inputs.first().and_then(|i| row_schema(config, i)),
                    time_zone,
                    // Aggregations run as one instance and emit their windows in order.
                    ordered_input: c.inputs.len() == 1,
                }))
            }
            SinkConfig::Memory(c) => {
                let table = c.table.clone().unwrap_or_else(|| n.clone());
                if memory_tables.values().any(|t| t == &table) {
                    errors.push(format!(
                        "sinks.{n}: memory table `{table}` is written by another sink too"
                    ));
                }
                memory_tables.insert(n.clone(), table.clone());
                Box::new(
                    MemorySink::new(&table, tables.clone(), c.max_rows.limit(), c.sort_by_count)
                        .with_eviction_counter(
                            metrics.counter(trendflow_core::metrics::names::MEMORY_ROWS_EVICTED, n),
                        ),
                )
            }
            SinkConfig::Console(c) => Box::new(ConsoleSink::new(c.num_rows, c.truncate)),
            SinkConfig::Parquet(c) => {
                for i in &c.inputs {
                    if let Some(mode) = rows_mode(config, i)
                        && mode != OutputMode::Append
                    {
                        errors.push(format!(
                            "sinks.{n}: parquet files hold final rows only: `{i}` must use output_mode append (for update or complete, use a memory, file or postgres sink)"
                        ));
                    }
                }
                let path = match location(&c.path) {
                    Ok(l) => l,
                    Err(e) => {
                        errors.push(format!("sinks.{n}.path: {e}"));
                        continue;
                    }
                };
                if c.compression_level.is_some() && c.compression != CompressionConfig::Zstd {
                    errors.push(format!("sinks.{n}: compression_level applies to zstd only"));
                }
                Box::new(ParquetSink::new(
                    ParquetSinkOptions {
                        location: path,
                        s3: s3_options(config),
                        partitioning: match c.partition_by {
                            PartitionByConfig::None => Partitioning::None,
                            PartitionByConfig::WindowDate => Partitioning::WindowDate,
                        },
                        compression: match c.compression {
                            CompressionConfig::Zstd => {
                                ParquetCompression::Zstd(c.compression_level.unwrap_or(3))
                            }
                            CompressionConfig::Snappy => ParquetCompression::Snappy,
                            CompressionConfig::None => ParquetCompression::Uncompressed,
                        },
                        schema: c.inputs.first().and_then(|i| row_schema(config, i)),
                    },
                    n,
                    metrics,
                ))
            }
            SinkConfig::Kafka(c) => {
                let mut o = trendflow_kafka::KafkaSinkOptions {
                    bootstrap_servers: c.bootstrap_servers.clone(),
                    topic: c.topic.clone(),
                    extra: c.extra.clone(),
                    ..Default::default()
                };
                if let Some(k) = c.key_format {
                    o.key_format = match k {
                        KafkaKeyFormat::Json => trendflow_kafka::KeyFormat::Json,
                        KafkaKeyFormat::None => trendflow_kafka::KeyFormat::None,
                    };
                }
                if let Some(d) = c.delivery_timeout {
                    o.delivery_timeout = d.0;
                }
                match trendflow_kafka::KafkaSink::new(o, n, metrics) {
                    Ok(sink) => Box::new(sink),
                    Err(e) => {
                        errors.push(format!("sinks.{n}: {e}"));
                        continue;
                    }
                }
            }
            SinkConfig::Postgres(c) => {
                let password = match &c.password_env {
                    None => None,
                    Some(var) => match std::env::var(var) {
                        Ok(p) => Some(p),
                        Err(_) => {
                            errors.push(format!(
                                "sinks.{n}.password_env: the variable `{var}` is not set"
                            ));
                            None
                        }
                    },
                };
                let mode = c
                    .inputs
                    .first()
                    .and_then(|i| rows_mode(config, i))
                    .unwrap_or(OutputMode::Append);
                let mut o = PostgresSinkOptions::new(
                    c.url.clone(),
                    c.table.clone().unwrap_or_else(|| n.clone()),
                    config.name.clone().unwrap_or_else(|| "pipeline".into()),
                    n.clone(),
                    mode,
                );
                o.password = password;
                o.schema = c.inputs.first().and_then(|i| row_schema(config, i));
                o.create_table = c.create_table;
                o.ca_file = c.ca_file.clone();
                o.owner_generation = c.owner_generation;
                if let Some(d) = c.retry_for {
                    o.retry_for = d.0;
                }
                match PostgresSink::new(o) {
                    Ok(sink) => Box::new(sink.with_metrics(metrics, n)),
                    Err(e) => {
                        errors.push(format!("sinks.{n}: {e}"));
                        continue;
                    }
                }
            }
        };
        nodes.push(NodeSpec {
            name: n.clone(),
            body: NodeBody::Sink(sink),
            inputs: s.inputs().to_vec(),
            mailbox,
        });
    }

    let dead_letters: Option<Box<dyn DeadLetterSink>> = match &config.dead_letter {
        None => None,
        Some(d) => match DeadLetterFile::open(&d.path) {
            Ok(f) => Some(Box::new(f)),
            Err(e) => {
                errors.push(format!("dead_letter.path {}: {e}", d.path.display()));
                None
            }
        },
    };

    let graph = PipelineGraph {
        name: name.clone(),
        nodes,
        dead_letters,
        metrics: metrics.clone(),
    };
    if errors.is_empty()
        && let Err(es) = graph.validate()
    {
        errors.extend(es.into_iter().map(|e| e.to_string()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((graph, memory_tables))
}

/// What the stages fed by parser `name` use of the post model (the parser fills only that).
fn parser_needs(config: &PipelineConfig, name: &str) -> Needs {
    let mut needs = Needs::TEXT_ONLY;
    let mut queue = vec![name.to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(from) = queue.pop() {
        if !seen.insert(from.clone()) {
            continue;
        }
        for (n, t) in &config.transforms {
            if !t.inputs().contains(&from) {
                continue;
            }
            match t {
                TransformConfig::Filter(_) => {
                    // The filter matches hashtags, mentions and URLs, and passes posts on.
                    needs.entities = true;
                    queue.push(n.clone());
                }
                TransformConfig::Extract(e) => {
                    for f in std::iter::once(&e.key).chain(&e.value) {
                        // An unknown field is reported elsewhere: parse everything meanwhile.
                        let f = Field::parse(f).map_or(Needs::ALL, |f| f.needs());
                        needs.entities |= f.entities;
                        needs.details |= f.details;
                    }
                }
                _ => {}
            }
        }
    }
    needs
}

/// The options of parse_json stage `name`: its YAML, and the fields its consumers use.
pub fn parser_options(config: &PipelineConfig, name: &str) -> Option<ParserOptions> {
    let TransformConfig::ParseJson(c) = config.transforms.get(name)? else {
        return None;
    };
    Some(ParserOptions {
        max_line_bytes: c
            .max_line_bytes
            .unwrap_or(ParserOptions::default().max_line_bytes),
        format: FormatOptions {
            needs: parser_needs(config, name),
            ..format_options(c)
        },
    })
}

/// The parser's format options from its YAML.
fn format_options(c: &crate::model::ParseJsonConfig) -> FormatOptions {
    use crate::model::{EventTimeConfig, PostFormat, RepostsConfig, TextConfig};
    FormatOptions {
        format: match c.format {
            PostFormat::Auto => Format::Auto,
            PostFormat::TwitterV1 => Format::TwitterV1,
            PostFormat::TwitterV2 => Format::TwitterV2,
            PostFormat::Mastodon => Format::Mastodon,
            PostFormat::Bluesky => Format::Bluesky,
        },
        text: match c.text {
            TextConfig::Full => TextChoice::Full,
            TextConfig::AsSent => TextChoice::AsSent,
        },
        reposts: match c.reposts {
            RepostsConfig::Own => RepostText::Own,
            RepostsConfig::Original => RepostText::Original,
        },
        time: match c.event_time {
            EventTimeConfig::Auto => TimeChoice::Auto,
            EventTimeConfig::Created => TimeChoice::Created,
            EventTimeConfig::Captured => TimeChoice::Captured,
        },
        needs: Needs::ALL,
    }
}

/// Why a windowed aggregation cannot compute its function on its inputs, if it cannot.
fn aggregate_problem(
    config: &PipelineConfig,
    c: &crate::model::WindowCountConfig,
) -> Option<String> {
    if c.top_k == Some(0) {
        return Some("top_k must be at least 1".into());
    }
    if c.top_k.is_some() && c.output_mode == OutputMode::Update {
        return Some(
            "top_k needs output_mode append or complete (in update mode a window's top changes row by row)"
                .into(),
        );
    }
    if c.function == FunctionConfig::Count {
        return None;
    }
    for input in &c.inputs {
        let value = match config.transforms.get(input) {
            Some(TransformConfig::Extract(e)) => e.value.as_deref(),
            _ => None,
        };
        let numeric = value.and_then(Field::parse).is_some_and(|f| f.is_numeric());
        match (c.function, value) {
            (_, None) => {
                return Some(format!(
                    "function {} needs values: its input `{input}` must be an `extract` with a `value:` field",
                    if c.function == FunctionConfig::Sum {
                        "sum"
                    } else {
                        "count_distinct"
                    }
                ));
            }
            (FunctionConfig::Sum, Some(v)) if !numeric => {
                return Some(format!(
                    "function sum needs a number, but `{input}` gives `{v}` (numbers: followers, repost_count, like_count)"
                ));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs_of(path: &str) -> Needs {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let yaml = std::fs::read_to_string(root.join(path)).unwrap();
        let config = crate::load_str(&yaml, path, &[]).unwrap();
        parser_options(&config, "parse").unwrap().format.needs
    }

    #[test]
    fn the_parser_fills_what_its_consumers_use() {
        // The tutorial only splits texts: no entity arrays, no user.
        assert_eq!(needs_of("config/tutorial-q2.yaml"), Needs::TEXT_ONLY);
        let entities = Needs {
            entities: true,
            details: false,
        };
        assert_eq!(needs_of("config/stats/mentions.yaml"), entities);
        // The filter matches entities, and passes posts on to an extract of hashtags.
        assert_eq!(needs_of("config/stats/topic.yaml"), entities);
        assert_eq!(
            needs_of("config/stats/accounts.yaml"),
            Needs {
                entities: false,
                details: true
            }
        );
        assert_eq!(needs_of("config/stats/reach.yaml"), Needs::ALL);
    }
}

#[cfg(test)]
mod kafka_tests {
    use super::*;

    /// A Kafka source with `starting_offsets` given per partition, as docs/kafka.md writes it;
    /// `tokenize_extra` adds lines to the tokenize stage.
    fn pipeline(starting_offsets: &str, tokenize_extra: &str) -> String {
        format!(
            r#"
name: data
trigger: 1s
sources:
  posts:
    type: kafka
    bootstrap_servers: 127.0.0.1:9
    topics: [posts]
    starting_offsets: {starting_offsets}
transforms:
  parse:
    type: parse_json
    inputs: [posts]
    format: twitter_v1
    event_time: created
  words:
    type: tokenize
    inputs: [parse]
    mode: split
{tokenize_extra}
  counts:
    type: window_count
    inputs: [words]
    window: 3h
    slide: 5m
    watermark: 1m
    output_mode: append
sinks:
  data:
    type: memory
    inputs: [counts]
"#
        )
    }

    #[test]
    fn per_partition_starting_offsets_load_build_and_reach_the_source() {
        let yaml = pipeline("{posts: {0: 1200, 1: -2}}", "");
        let config = crate::load_str(&yaml, "kafka.yaml", &[]).unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = build(&config) {
            panic!("{}", e.join("\n"));
        }
        let SourceConfig::Kafka(k) = &config.sources["posts"] else {
            panic!("a kafka source");
        };
        let options = kafka_source_options(&config, "posts", k, Trigger::AvailableNow).unwrap();
        let expected =
            BTreeMap::from([("posts".to_string(), BTreeMap::from([(0, 1200), (1, -2)]))]);
        assert_eq!(
            options.starting_offsets,
            trendflow_kafka::StartingOffsets::PerPartition(expected)
        );
    }

    #[test]
    fn a_bad_partition_or_offset_is_reported_with_the_other_errors() {
        let yaml = pipeline(
            "{posts: {0: 5, zero: 7, -1: 3, 2: -7}}",
            "    entities: [hashtags]",
        );
        let config = crate::load_str(&yaml, "kafka.yaml", &[]).unwrap_or_else(|e| panic!("{e}"));
        let Err(errors) = build(&config) else {
            panic!("a bad partition number is an error");
        };
        let has = |s: &str| errors.iter().any(|e| e.contains(s));
        assert!(
            has("sources.posts.starting_offsets.posts.zero: `zero` is not a partition number"),
            "{errors:?}"
        );
        assert!(
            has("sources.posts.starting_offsets.posts.-1: `-1` is not a partition number"),
            "{errors:?}"
        );
        assert!(
            has("sources.posts.starting_offsets.posts.2: offset -7: an offset is 0 or more"),
            "{errors:?}"
        );
        // Reported together with the rest of the pipeline's errors.
        assert!(has("transforms.words.entities"), "{errors:?}");
        assert_eq!(errors.len(), 4, "{errors:?}");
    }
}
