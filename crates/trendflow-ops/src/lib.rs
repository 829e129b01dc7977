//! The operators of a trendflow pipeline: parsing lines into posts, splitting posts into
//! tokens, and counting tokens, globally or per sliding event-time window.
//!
//! Each is a plain [`trendflow_core::Operator`]: call it directly in a test, or let the
//! runtime run it in an actor.

pub mod count;
pub mod entities;
pub mod extract;
pub mod fast_json;
pub mod filter;
pub mod formats;
pub mod normalize;
pub mod parser;
mod slice_segments;
pub mod spark_lenient;
pub mod tokenizer;
pub mod window_count;
mod window_emission;

pub use count::KeyCount;
pub use parser::{JsonPostParser, ParserOptions};
pub use tokenizer::{EntityKinds, Tokenizer, TokenizerMode};
pub use window_count::{Aggregate, LatePolicy, WindowedCount};
