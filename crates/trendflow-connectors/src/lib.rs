//! Where data comes from and goes to: files (local or S3) in, result tables out to files,
//! parquet (local or S3), PostgreSQL, the console, memory tables; dead letters to a file; and
//! the tweet generator that stands in for Twitter's stream. `testkit` holds the real servers
//! the tests start (S3, PostgreSQL) and a fault-injecting proxy.

pub mod console_sink;
pub mod dead_letter_file;
pub mod file_sink;
pub mod file_source;
pub mod generator;
pub mod generator_source;
pub mod io_runtime;
pub mod line_pieces;
pub mod memory_sink;
pub mod object_checkpoints;
pub mod parquet_sink;
pub mod postgres_sink;
mod seen_files;
pub mod socket_source;
pub mod storage;
pub mod table_format;
pub mod testkit;
mod two_threads;

pub use console_sink::ConsoleSink;
pub use dead_letter_file::DeadLetterFile;
pub use file_sink::{FileFormat, FileSink, FileSinkOptions};
pub use file_source::{CleanSource, FileSource, FileSourceOptions};
pub use generator_source::{GeneratorSource, GeneratorSourceOptions};
pub use memory_sink::MemorySink;
pub use object_checkpoints::ObjectStoreCheckpoints;
pub use socket_source::SocketSource;
