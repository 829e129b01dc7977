//! Sink throughput for `trendflow bench --sink-rows N`: result rows written per second by the
//! PostgreSQL sink (append: binary COPY; update: COPY to a staging table, then upsert) and by
//! the parquet sink (local directory), in epochs of 100,000 rows, commits included.
//!
//! PostgreSQL is the server at `--postgres-url`, or a throwaway one started for the run (the
//! test harness's, from Debian's `postgresql` package).

use std::sync::Arc;
use std::time::Instant;

use trendflow_connectors::parquet_sink::{
    ParquetCompression, ParquetSink, ParquetSinkOptions, Partitioning,
};
use trendflow_connectors::postgres_sink::{PostgresSink, PostgresSinkOptions};
use trendflow_connectors::storage::{Location, S3Options};
use trendflow_connectors::testkit::postgres_server::PostgresServer;
use trendflow_core::batch::OutputMode;
use trendflow_core::metrics::Metrics;
use trendflow_core::{Batch, ResultRow, RowBatch, RowSchema, Sink, Window};

const EPOCH_ROWS: usize = 100_000;

/// `n` distinct windowed rows: 5-minute windows, 1,000 hashtags each.
fn rows(n: usize, offset: i64) -> Vec<ResultRow> {
    (0..n)
        .map(|i| {
            let w = (i / 1000) as i64 * 300_000 + 1_618_466_400_000;
            ResultRow {
                window: Some(Window {
                    start: w,
                    end: w + 10_800_000,
                }),
                key: format!("#tag{}", i % 1000).into(),
                count: offset + (i % 97) as i64,
            }
        })
        .collect()
}

fn schema() -> Arc<RowSchema> {
    Arc::new(RowSchema::word_count(true))
}

/// Seconds to write `all` through `sink` in epochs.
fn drive(sink: &mut dyn Sink, all: &[ResultRow], mode: OutputMode) -> Result<f64, String> {
    let start = Instant::now();
    for (epoch, chunk) in all.chunks(EPOCH_ROWS).enumerate() {
        let batch = Batch::Rows(Arc::new(RowBatch {
            schema: schema(),
            mode,
            epoch: epoch as u64,
            rows: chunk.to_vec().into(),
        }));
        sink.write(&batch).map_err(|e| e.to_string())?;
        sink.commit(epoch as u64).map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// (label, rows, seconds) of each sink measurement.
pub fn measure(n: usize, postgres_url: Option<&str>) -> Result<Vec<(String, usize, f64)>, String> {
    let mut out = Vec::new();
    let data = rows(n, 1);

    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut parquet = ParquetSink::new(
        ParquetSinkOptions {
            location: Location::Local(tmp.path().join("parquet")),
            s3: S3Options::default(),
            partitioning: Partitioning::None,
            compression: ParquetCompression::Zstd(3),
            schema: Some(schema()),
        },
        "bench",
        &Metrics::new(),
    );
    out.push((
        "parquet (local, zstd)".to_string(),
        n,
        drive(&mut parquet, &data, OutputMode::Append)?,
    ));

    let server;
    let url = match postgres_url {
        Some(u) => u.to_string(),
        None => {
            server = PostgresServer::start()?;
            server.create_database("bench")?;
            server.connection_string("bench")
        }
    };
    for (label, mode, table) in [
        ("postgres append (COPY)", OutputMode::Append, "bench_append"),
        (
            "postgres update (upsert)",
            OutputMode::Update,
            "bench_update",
        ),
    ] {
        let mut o = PostgresSinkOptions::new(&url, table, "bench", table, mode);
        o.schema = Some(schema());
        let mut sink = PostgresSink::new(o).map_err(|e| e.to_string())?;
        out.push((label.to_string(), n, drive(&mut sink, &data, mode)?));
        if mode == OutputMode::Update {
            // The same keys again with new counts: every row an update, none an insert.
            let again = rows(n, 1_000);
            let mut o = PostgresSinkOptions::new(&url, table, "bench", "again", mode);
            o.schema = Some(schema());
            let mut sink = PostgresSink::new(o).map_err(|e| e.to_string())?;
            out.push((
                "postgres update (every row changed)".to_string(),
                n,
                drive(&mut sink, &again, mode)?,
            ));
        }
    }
    Ok(out)
}
