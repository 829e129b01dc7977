//! Pipelines defined in YAML: one config struct per component (unknown fields refused),
//! `inputs:` wiring, command-line overrides (`--set sources.tweets.path=DIR`), every error
//! reported at once with its line and column, and [`build`] turning a config into a runnable
//! [`trendflow_runtime::PipelineGraph`].

mod build;
mod load;
mod model;

pub use build::{BuiltParts, BuiltPipeline, build, checkpoint_store, parser_options};
pub use load::{ConfigError, ConfigErrors, Override, load_file, load_str};
pub use model::*;
