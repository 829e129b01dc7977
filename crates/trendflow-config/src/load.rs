//! Reading a pipeline file: YAML to a value tree, command-line overrides applied, then each
//! part deserialized on its own so that every error is reported, each with its line and column.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::model::{PipelineConfig, SinkConfig, SourceConfig, TransformConfig};

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line and column in the file, when known.
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match (e.line, e.column) {
                (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, e.message)?,
                (Some(l), None) => write!(f, "{}:{l}: {}", self.file, e.message)?,
                _ => write!(f, "{}: {}", self.file, e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A command-line override: `sources.tweets.path=/data/in`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub path: Vec<String>,
    pub value: Value,
    pub text: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (path, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: expected KEY=VALUE, e.g. sources.tweets.path=/data"))?;
        let path: Vec<String> = path
            .trim()
            .split('.')
            .map(|p| p.trim().to_string())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(format!("`{s}`: empty key part"));
        }
        // Values are YAML scalars: numbers and booleans keep their type; anything else is text.
        let value = match serde_saphyr::from_str::<Value>(value) {
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
            Ok(Value::Null) if value.trim() == "null" || value.trim() == "~" => Value::Null,
            _ => Value::String(value.to_string()),
        };
        Ok(Override {
            path,
            value,
            text: s.to_string(),
        })
    }
}

/// Positions of the top-level keys and of each component, from a first, span-aware read.
#[derive(Default)]
struct Positions {
    top: BTreeMap<String, (u64, u64)>,
    components: BTreeMap<(String, String), (u64, u64)>,
}

#[derive(serde::Deserialize)]
struct SectionSpans {
    #[serde(default)]
    sources: Option<BTreeMap<String, Spanned<Value>>>,
    #[serde(default)]
    transforms: Option<BTreeMap<String, Spanned<Value>>>,
    #[serde(default)]
    sinks: Option<BTreeMap<String, Spanned<Value>>>,
}

fn positions(text: &str) -> Positions {
    let mut p = Positions::default();
    if let Ok(top) = serde_saphyr::from_str::<BTreeMap<String, Spanned<Value>>>(text) {
        for (k, v) in top {
            p.top
                .insert(k, (v.referenced.line(), v.referenced.column()));
        }
    }
    if let Ok(s) = serde_saphyr::from_str::<SectionSpans>(text) {
        for (section, map) in [
            ("sources", s.sources),
            ("transforms", s.transforms),
            ("sinks", s.sinks),
        ] {
            for (name, v) in map.unwrap_or_default() {
                p.components.insert(
                    (section.to_string(), name),
                    (v.referenced.line(), v.referenced.column()),
                );
            }
        }
    }
    p
}

/// Finds `key:` on a line at or after `from_line` (1-based), indented deeper than the
/// component, before the next line at the component's own indentation.
fn find_key_line(text: &str, from_line: u64, key: &str) -> Option<(u64, u64)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = from_line.saturating_sub(1) as usize;
    let base_indent = lines.get(start).map(|l| l.len() - l.trim_start().len())?;
    for (i, l) in lines.iter().enumerate().skip(start) {
        let indent = l.len() - l.trim_start().len();
        let t = l.trim_start();
        if i > start && !t.is_empty() && !t.starts_with('#') && indent < base_indent {
            break;
        }
        if t.starts_with(&format!("{key}:")) || t.starts_with(&format!("\"{key}\":")) {
            return Some((i as u64 + 1, indent as u64 + 1));
        }
    }
    None
}

fn apply_override(root: &mut Value, o: &Override) -> Result<(), String> {
    let mut cur = root;
    for (i, part) in o.path.iter().enumerate() {
        if !cur.is_object() {
            if cur.is_null() {
                *cur = Value::Object(Default::default());
            } else {
                return Err(format!(
                    "--set {}: `{}` is not a mapping",
                    o.text,
                    o.path[..i].join(".")
                ));
            }
        }
        let map = cur.as_object_mut().unwrap();
        if i + 1 == o.path.len() {
            map.insert(part.clone(), o.value.clone());
            return Ok(());
        }
        cur = map.entry(part.clone()).or_insert(Value::Null);
    }
    Ok(())
}

fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, Option<String>) {
    let inner = e.inner().to_string();
    let path = e.path().to_string();
    // serde reports unknown fields at the parent: point at the field itself.
    let field = inner
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(String::from)
        .or_else(|| {
            inner
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
                .map(|_| String::new())
        })
        .or_else(|| {
            (path != "." && !path.is_empty())
                .then(|| path.split('.').next().unwrap_or("").to_string())
        });
    let msg = if path == "." || path.is_empty() || inner.starts_with("unknown field") {
        inner
    } else {
        format!("{path}: {inner}")
    };
    (msg, field.filter(|f| !f.is_empty()))
}

fn deserialize_part<T: DeserializeOwned>(v: Value) -> Result<T, (String, Option<String>)> {
    serde_path_to_error::deserialize(v).map_err(|e| describe(&e))
}

/// How one kind of component is read from its value.
type ComponentReader<T> = fn(Value) -> Result<T, (String, Option<String>)>;

/// Deserializes a component: its `type` picks the struct, deserialized on its own so that a
/// failing field is named (serde loses the path inside internally tagged enums).
fn component<T>(
    v: Value,
    kinds: &[(&str, ComponentReader<T>)],
) -> Result<T, (String, Option<String>)> {
    let Value::Object(mut map) = v else {
        return Err(("a component is a mapping with a `type`".into(), None));
    };
    let expected = kinds
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let ty = match map.remove("type") {
        Some(Value::String(t)) => t,
        Some(other) => {
            return Err((
                format!("`type` must be one of {expected}, not {other}"),
                Some("type".into()),
            ));
        }
        None => return Err((format!("missing field `type` (one of {expected})"), None)),
    };
    match kinds.iter().find(|(k, _)| *k == ty) {
        Some((_, f)) => f(Value::Object(map)),
        None => Err((
            format!("unknown type `{ty}`, expected one of {expected}"),
            Some("type".into()),
        )),
    }
}

fn source(v: Value) -> Result<SourceConfig, (String, Option<String>)> {
    component(
        v,
        &[
            ("file", |v| deserialize_part(v).map(SourceConfig::File)),
            ("generator", |v| {
                deserialize_part(v).map(SourceConfig::Generator)
            }),
            ("socket", |v| deserialize_part(v).map(SourceConfig::Socket)),
            ("kafka", |v| deserialize_part(v).map(SourceConfig::Kafka)),
            ("jetstream", |v| {
                deserialize_part(v).map(SourceConfig::Jetstream)
            }),
            ("mastodon", |v| {
                deserialize_part(v).map(SourceConfig::Mastodon)
            }),
        ],
    )
}

fn transform(v: Value) -> Result<TransformConfig, (String, Option<String>)> {
    component(
        v,
        &[
            ("parse_json", |v| {
                deserialize_part(v).map(TransformConfig::ParseJson)
            }),
            ("filter", |v| {
                deserialize_part(v).map(TransformConfig::Filter)
            }),
            ("tokenize", |v| {
                deserialize_part(v).map(TransformConfig::Tokenize)
            }),
            ("extract", |v| {
                deserialize_part(v).map(TransformConfig::Extract)
            }),
            ("window_count", |v| {
                deserialize_part(v).map(TransformConfig::WindowCount)
            }),
            // The same stage: a windowed count is the aggregation with `function: count`.
            ("window_aggregate", |v| {
                deserialize_part(v).map(TransformConfig::WindowCount)
            }),
            ("count", |v| deserialize_part(v).map(TransformConfig::Count)),
        ],
    )
}

fn sink(v: Value) -> Result<SinkConfig, (String, Option<String>)> {
    component(
        v,
        &[
            ("file", |v| deserialize_part(v).map(SinkConfig::File)),
            ("memory", |v| deserialize_part(v).map(SinkConfig::Memory)),
            ("console", |v| deserialize_part(v).map(SinkConfig::Console)),
            ("parquet", |v| deserialize_part(v).map(SinkConfig::Parquet)),
            ("postgres", |v| {
                deserialize_part(v).map(SinkConfig::Postgres)
            }),
            ("kafka", |v| deserialize_part(v).map(SinkConfig::Kafka)),
        ],
    )
}

/// Parses a pipeline from YAML text, applying overrides. `file` names it in errors.
pub fn load_str(
    text: &str,
    file: &str,
    overrides: &[Override],
) -> Result<PipelineConfig, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        file: file.to_string(),
        errors,
    };
    let mut root: Value = match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => Value::Object(Default::default()),
        Ok(v) => v,
        Err(e) => {
            let loc = e.location();
            let msg = e.to_string();
            let msg = msg.lines().next().unwrap_or("").to_string();
            return Err(fail(vec![ConfigError {
                line: loc.map(|l| l.line()),
                column: loc.map(|l| l.column()),
                message: format!("not valid YAML: {msg}"),
            }]));
        }
    };
    if !root.is_object() {
        return Err(fail(vec![ConfigError {
            line: Some(1),
            column: Some(1),
            message: "a pipeline file is a mapping".into(),
        }]));
    }
    let pos = positions(text);
    let mut errors = Vec::new();
    let overridden: Vec<&Override> = overrides.iter().collect();
    for o in overrides {
        if let Err(e) = apply_override(&mut root, o) {
            errors.push(ConfigError {
                line: None,
                column: None,
                message: e,
            });
        }
    }
    let is_overridden = |path: &[&str]| {
        overridden
            .iter()
            .any(|o| o.path.iter().map(String::as_str).eq(path.iter().copied()))
    };

    // Each component on its own, so one bad component does not hide the others.
    let map = root.as_object_mut().unwrap();
    let mut take_section = |name: &str| -> BTreeMap<String, Value> {
        match map.remove(name) {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m.into_iter().collect(),
            Some(_) => {
                let (line, column) = pos.top.get(name).copied().unzip();
                errors.push(ConfigError {
                    line,
                    column,
                    message: format!("`{name}` must be a mapping of names to components"),
                });
                BTreeMap::new()
            }
        }
    };
    let sources_v = take_section("sources");
    let transforms_v = take_section("transforms");
    let sinks_v = take_section("sinks");

    let mut component_error =
        |section: &str, name: &str, (msg, field): (String, Option<String>)| {
            let at = pos
                .components
                .get(&(section.to_string(), name.to_string()))
                .copied();
            let field_at = match (&field, at) {
                (Some(f), Some((line, _))) if !is_overridden(&[section, name, f]) => {
                    find_key_line(text, line, f)
                }
                _ => None,
            };
            let (line, column) = field_at.or(at).unzip();
            let from_cli = field
                .as_deref()
                .is_some_and(|f| is_overridden(&[section, name, f]));
            let message = format!(
                "{section}.{name}: {msg}{}",
                if from_cli { " (value from --set)" } else { "" }
            );
            errors.push(ConfigError {
                line,
                column,
                message,
            });
        };

    let mut sources = BTreeMap::new();
    for (name, v) in sources_v {
        match source(v) {
            Ok(c) => {
                sources.insert(name, c);
            }
            Err(e) => component_error("sources", &name, e),
        }
    }
    let mut transforms = BTreeMap::new();
    for (name, v) in transforms_v {
        match transform(v) {
            Ok(c) => {
                transforms.insert(name, c);
            }
            Err(e) => component_error("transforms", &name, e),
        }
    }
    let mut sinks = BTreeMap::new();
    for (name, v) in sinks_v {
        match sink(v) {
            Ok(c) => {
                sinks.insert(name, c);
            }
            Err(e) => component_error("sinks", &name, e),
        }
    }

    // The top level, with the sections set aside.
    let top = match deserialize_part::<PipelineConfig>(root) {
        Ok(c) => Some(c),
        Err((msg, field)) => {
            let (line, column) = field.as_ref().and_then(|f| pos.top.get(f).copied()).unzip();
            let from_cli = field.as_deref().is_some_and(|f| is_overridden(&[f]));
            errors.push(ConfigError {
                line,
                column,
                message: format!("{msg}{}", if from_cli { " (value from --set)" } else { "" }),
            });
            None
        }
    };
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        return Err(fail(errors));
    }
    let mut config = top.unwrap();
    config.locations = pos
        .components
        .iter()
        .map(|((section, name), at)| (format!("{section}.{name}"), *at))
        .collect();
    config.sources = sources;
    config.transforms = transforms;
    config.sinks = sinks;
    Ok(config)
}

/// Reads and parses a pipeline file.
pub fn load_file(path: &Path, overrides: &[Override]) -> Result<PipelineConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError {
            line: None,
            column: None,
            message: e.to_string(),
        }],
    })?;
    let mut config = load_str(&text, &file, overrides)?;
    if config.name.is_none() {
        config.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TriggerConfig;

    const GOOD: &str = r#"
name: q2
trigger: 10s
sources:
  tweets:
    type: file
    path: /tmp/in
transforms:
  parse:
    type: parse_json
    inputs: [tweets]
  words:
    type: tokenize
    inputs: [parse]
  counts:
    type: window_count
    inputs: [words]
    window: 3h
    slide: 5m
    watermark: 1m
sinks:
  result:
    type: file
    inputs: [counts]
    path: out.csv
"#;

    #[test]
    fn good_file_and_overrides() {
        let o: Vec<Override> = [
            "sources.tweets.path=/data",
            "trigger=available_now",
            "sources.tweets.max_files_per_trigger=4",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let c = load_str(GOOD, "q2.yaml", &o).unwrap();
        assert_eq!(c.trigger, TriggerConfig::AvailableNow);
        let SourceConfig::File(f) = &c.sources["tweets"] else {
            panic!("a file source")
        };
        assert_eq!(f.path, std::path::PathBuf::from("/data"));
        assert_eq!(f.max_files_per_trigger, Some(4));
    }

    #[test]
    fn memory_tables_are_bounded_unless_asked() {
        let with = |extra: &str| {
            let yaml = format!("{GOOD}  table:\n    type: memory\n    inputs: [counts]\n{extra}");
            load_str(&yaml, "q2.yaml", &[]).map(|c| match &c.sinks["table"] {
                crate::model::SinkConfig::Memory(m) => m.max_rows,
                _ => panic!("a memory sink"),
            })
        };
        use crate::model::MaxRows;
        assert_eq!(with("").unwrap(), MaxRows::At(1_000_000));
        assert_eq!(with("    max_rows: 20\n").unwrap(), MaxRows::At(20));
        assert_eq!(
            with("    max_rows: unbounded\n").unwrap(),
            MaxRows::Unbounded
        );
        assert!(with("    max_rows: 0\n").is_err());
        assert!(with("    max_rows: lots\n").is_err());
    }

    #[test]
    fn every_error_at_once_with_lines() {
        let bad = r#"
trigger: sometimes
sources:
  tweets:
    type: file
    pathh: /tmp/in
transforms:
  counts:
    type: window_count
    inputs: [tweets]
    window: three hours
    watermark: 1m
sinks:
  result:
    type: filez
    inputs: [counts]
"#;
        let e = load_str(bad, "bad.yaml", &[]).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.errors.len(), 4, "{text}");
        assert!(text.contains("bad.yaml:2:"), "{text}");
        assert!(
            text.contains("bad.yaml:6:5: sources.tweets: unknown field `pathh`"),
            "{text}"
        );
        assert!(
            text.contains("bad.yaml:11:5: transforms.counts: window:"),
            "{text}"
        );
        assert!(
            text.contains("sinks.result") && text.contains("filez"),
            "{text}"
        );
    }

    #[test]
    fn yaml_syntax_error_names_the_line() {
        let e = load_str("sources:\n  tweets: [unclosed\n", "x.yaml", &[]).unwrap_err();
        assert_eq!(e.errors.len(), 1);
        assert!(e.errors[0].line.is_some(), "{e}");
        assert!(e.to_string().starts_with("x.yaml:"), "{e}");
    }

    #[test]
    fn override_errors_are_reported() {
        let o: Vec<Override> = ["sources.tweets.max_files_per_trigger=many"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let e = load_str(GOOD, "q2.yaml", &o).unwrap_err();
        assert!(e.to_string().contains("--set"), "{e}");
        assert!("novalue".parse::<Override>().is_err());
    }
}
