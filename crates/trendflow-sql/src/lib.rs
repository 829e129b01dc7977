//! SQL over a running pipeline's result tables: the memory tables sinks write to, queried with
//! DataFusion, served over HTTP (and read back by `trendflow sql`).

pub mod client;
pub mod functions;
pub mod pgwire;
pub mod server;
pub mod show;
pub mod tables;

pub use tables::{MemoryTables, TableMode};
