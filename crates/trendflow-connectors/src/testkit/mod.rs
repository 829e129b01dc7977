//! Test infrastructure: real servers started on 127.0.0.1 for one test each (S3, PostgreSQL),
//! a proxy that injects faults, and the provisioning of what those need.
//!
//! None of this is used by trendflow itself. It is public, rather than `#[cfg(test)]`, so
//! that the end-to-end tests of several crates (this one's `tests/`, the workspace's
//! `tests/`) share one implementation of it.

pub mod faulty_proxy;
pub mod local_s3;
pub mod postgres_server;
pub mod provision;
