//! The PostgreSQL sink against a real server (one per test, `testkit::postgres_server`): the
//! tables it creates, rows appended and upserted, a complete-mode table replaced, an epoch
//! replayed after a crash skipped, a table with other columns refused, connection loss and
//! server restarts (between epochs and during one) survived with no row lost or doubled, and
//! epochs of 200,000 rows. Tables are read back with tokio-postgres.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use trendflow_connectors::postgres_sink::{PostgresSink, PostgresSinkOptions};
use trendflow_connectors::testkit::postgres_server::PostgresServer;
use trendflow_core::batch::OutputMode;
use trendflow_core::{Batch, Epoch, OperatorError, ResultRow, RowBatch, RowSchema, Sink, Window};

const DB: &str = "trendflow";
const MINUTE: i64 = 60_000;

fn server() -> PostgresServer {
    let pg = PostgresServer::start().unwrap_or_else(|e| panic!("{e}"));
    pg.create_database(DB).unwrap();
    pg
}

fn windowed() -> Arc<RowSchema> {
    Arc::new(RowSchema {
        windowed: true,
        key_column: "hashtag".into(),
        value_column: "count".into(),
    })
}

fn plain() -> Arc<RowSchema> {
    Arc::new(RowSchema::word_count(false))
}

fn options(pg: &PostgresServer, table: &str, mode: OutputMode) -> PostgresSinkOptions {
    let mut o = PostgresSinkOptions::new(pg.connection_string(DB), table, "test", "out", mode);
    o.retry_initial = Duration::from_millis(20);
    o.retry_max = Duration::from_millis(500);
    o.retry_for = Duration::from_secs(60);
    o
}

fn sink(options: PostgresSinkOptions) -> PostgresSink {
    PostgresSink::new(options).unwrap()
}

/// A row of the one-minute window starting `minute` minutes after 1970 (negative: before).
fn win(minute: i64, key: &str, count: i64) -> ResultRow {
    ResultRow {
        window: Some(Window {
            start: minute * MINUTE,
            end: (minute + 1) * MINUTE,
        }),
        key: key.into(),
        count,
    }
}

fn word(key: &str, count: i64) -> ResultRow {
    ResultRow {
        window: None,
        key: key.into(),
        count,
    }
}

/// `n` windowed rows: 1,000 keys per window.
fn many(n: usize, first_minute: i64, count: impl Fn(usize) -> i64) -> Vec<ResultRow> {
    (0..n)
        .map(|i| {
            win(
                first_minute + (i / 1000) as i64,
                &format!("#tag{}", i % 1000),
                count(i),
            )
        })
        .collect()
}

fn batch(schema: &Arc<RowSchema>, mode: OutputMode, epoch: Epoch, rows: Vec<ResultRow>) -> Batch {
    Batch::Rows(Arc::new(RowBatch {
        schema: schema.clone(),
        mode,
        epoch,
        rows: rows.into(),
    }))
}

/// Writes `rows` as epoch `epoch` and commits it, as the runtime does.
fn epoch(
    sink: &mut PostgresSink,
    schema: &Arc<RowSchema>,
    mode: OutputMode,
    epoch: Epoch,
    rows: Vec<ResultRow>,
) -> Result<(), OperatorError> {
    sink.write(&batch(schema, mode, epoch, rows))?;
    sink.commit(epoch)
}

/// Runs a query on a connection of its own.
fn query(pg: &PostgresServer, sql: &str) -> Vec<tokio_postgres::Row> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&pg.connection_string(DB), tokio_postgres::NoTls)
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        let rows = client.query(sql, &[]).await.unwrap();
        drop(client);
        let _ = connection.await;
        rows
    })
}

fn ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// A windowed table as (start ms, end ms, key, count), sorted.
fn windowed_table(pg: &PostgresServer, table: &str) -> Vec<(i64, i64, String, i64)> {
    query(
        pg,
        &format!("SELECT window_start, window_end, hashtag, count FROM {table} ORDER BY 1, 2, 3"),
    )
    .iter()
    .map(|r| {
        (
            ms(r.get::<_, SystemTime>(0)),
            ms(r.get::<_, SystemTime>(1)),
            r.get::<_, String>(2),
            r.get::<_, i64>(3),
        )
    })
    .collect()
}

/// A table without windows as (key, count), sorted.
fn plain_table(pg: &PostgresServer, table: &str) -> Vec<(String, i64)> {
    query(pg, &format!("SELECT word, count FROM {table} ORDER BY 1"))
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect()
}

fn committed_epoch(pg: &PostgresServer, sink: &str) -> i64 {
    let rows = query(
        pg,
        &format!("SELECT epoch FROM trendflow_commits WHERE pipeline = 'test' AND sink = '{sink}'"),
    );
    assert_eq!(
        rows.len(),
        1,
        "one row in trendflow_commits for sink {sink}"
    );
    rows[0].get::<_, i64>(0)
}

fn w(start: i64, key: &str, count: i64) -> (i64, i64, String, i64) {
    (start * MINUTE, (start + 1) * MINUTE, key.to_string(), count)
}

fn p(key: &str, count: i64) -> (String, i64) {
    (key.to_string(), count)
}

#[test]
fn creates_the_tables_and_appends_each_epoch_in_a_transaction() {
    let pg = server();
    let s = windowed();
    let mode = OutputMode::Append;
    // A bare name is folded to lower case, as SQL does.
    let mut out = sink(options(&pg, "Hashtag_Windows", mode));
    epoch(
        &mut out,
        &s,
        mode,
        0,
        vec![win(-1, "#old", 1), win(0, "#a", 2)],
    )
    .unwrap();
    epoch(&mut out, &s, mode, 1, vec![]).unwrap();
    epoch(
        &mut out,
        &s,
        mode,
        2,
        vec![win(1, "#a", 3), win(1, "#b", 1)],
    )
    .unwrap();
    assert_eq!(
        windowed_table(&pg, "hashtag_windows"),
        vec![
            w(-1, "#old", 1),
            w(0, "#a", 2),
            w(1, "#a", 3),
            w(1, "#b", 1)
        ]
    );
    let columns = pg
        .psql(
            DB,
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = 'hashtag_windows' ORDER BY ordinal_position",
        )
        .unwrap();
    assert_eq!(
        columns,
        "window_start|timestamp with time zone|NO\nwindow_end|timestamp with time zone|NO\n\
         hashtag|text|NO\ncount|bigint|NO\n"
    );
    let key = pg
        .psql(
            DB,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = 'hashtag_windows'::regclass AND contype = 'p'",
        )
        .unwrap();
    assert_eq!(
        key.trim(),
        "PRIMARY KEY (window_start, window_end, hashtag)"
    );
    // The empty epoch 1 needed no transaction; epoch 2 is the last recorded.
    assert_eq!(committed_epoch(&pg, "out"), 2);
    assert_eq!(out.rows_written(), 4);
    out.finish().unwrap();
}

#[test]
fn update_mode_upserts_and_complete_mode_replaces_the_table() {
    let pg = server();
    let s = plain();
    let update = OutputMode::Update;
    let mut totals = sink(options(&pg, "totals", update));
    epoch(
        &mut totals,
        &s,
        update,
        0,
        vec![word("#a", 1), word("#b", 2)],
    )
    .unwrap();
    epoch(&mut totals, &s, update, 1, vec![word("#a", 3)]).unwrap();
    assert_eq!(plain_table(&pg, "totals"), vec![p("#a", 3), p("#b", 2)]);
    // Two batches in one epoch that update the same key: the last one wins.
    totals
        .write(&batch(&s, update, 2, vec![word("#b", 5)]))
        .unwrap();
    totals
        .write(&batch(&s, update, 2, vec![word("#b", 6), word("#c", 1)]))
        .unwrap();
    totals.commit(2).unwrap();
    assert_eq!(
        plain_table(&pg, "totals"),
        vec![p("#a", 3), p("#b", 6), p("#c", 1)]
    );

    let complete = OutputMode::Complete;
    let mut o = options(&pg, "board", complete);
    o.sink = "board".into();
    let mut board = sink(o);
    epoch(
        &mut board,
        &s,
        complete,
        0,
        vec![word("#a", 1), word("#b", 2)],
    )
    .unwrap();
    // A complete-mode result is the whole table: #b is gone from it.
    epoch(
        &mut board,
        &s,
        complete,
        1,
        vec![word("#a", 2), word("#c", 1)],
    )
    .unwrap();
    assert_eq!(plain_table(&pg, "board"), vec![p("#a", 2), p("#c", 1)]);
    epoch(&mut board, &s, complete, 2, vec![]).unwrap();
    assert!(plain_table(&pg, "board").is_empty());
    assert_eq!(committed_epoch(&pg, "out"), 2);
    assert_eq!(committed_epoch(&pg, "board"), 2);
}

#[test]
fn an_epoch_replayed_after_a_crash_is_skipped() {
    let pg = server();
    let s = windowed();
    let mode = OutputMode::Append;
    let epoch3 = vec![win(3, "#a", 1), win(3, "#b", 2)];
    let mut first = sink(options(&pg, "w", mode));
    epoch(&mut first, &s, mode, 2, vec![win(2, "#a", 5)]).unwrap();
    let checkpoint2 = first.snapshot().unwrap();
    epoch(&mut first, &s, mode, 3, epoch3.clone()).unwrap();
    // The process dies after committing epoch 3 to PostgreSQL, before checkpoint 3.
    drop(first);
    let before = windowed_table(&pg, "w");
    assert_eq!(before.len(), 3);

    // The restart restores checkpoint 2 and replays epoch 3 with the same rows. In append
    // mode writing them again would be a duplicate key: the epoch must be skipped.
    let mut second = sink(options(&pg, "w", mode));
    second.restore(&checkpoint2).unwrap();
    epoch(&mut second, &s, mode, 3, epoch3).unwrap();
    assert_eq!(second.epochs_skipped(), 1);
    assert_eq!(windowed_table(&pg, "w"), before);
    epoch(&mut second, &s, mode, 4, vec![win(4, "#c", 1)]).unwrap();
    assert_eq!(windowed_table(&pg, "w").len(), 4);
    assert_eq!(committed_epoch(&pg, "out"), 4);

    // A crash before any checkpoint: nothing restored, epoch 4 replayed, skipped as well.
    let mut third = sink(options(&pg, "w", mode));
    epoch(&mut third, &s, mode, 4, vec![win(4, "#c", 1)]).unwrap();
    assert_eq!(third.epochs_skipped(), 1);
    assert_eq!(windowed_table(&pg, "w").len(), 4);
}

/// Scale-out fencing: a partition's previous owner (generation 4), still running after the
/// group gave the partition to a new owner (generation 5), commits nothing once the new
/// owner has committed, even an epoch the new owner has only replayed; a commit table from
/// before the fence gets its column.
#[test]
fn an_older_owner_generation_is_fenced_off() {
    let pg = server();
    let s = windowed();
    let mode = OutputMode::Append;
    // A commit table as sinks created it before the fence existed.
    pg.psql(
        DB,
        "CREATE TABLE trendflow_commits (pipeline text NOT NULL, sink text NOT NULL, \
         epoch bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
         PRIMARY KEY (pipeline, sink))",
    )
    .unwrap();
    let owner = |generation| {
        let mut o = options(&pg, "w", mode);
        o.owner_generation = Some(generation);
        sink(o)
    };
    let mut old = owner(4);
    epoch(&mut old, &s, mode, 1, vec![win(1, "#a", 1)]).unwrap();
    epoch(&mut old, &s, mode, 2, vec![win(2, "#a", 2)]).unwrap();
    // The new owner restored an older checkpoint: its epoch 2 is a replay, skipped, and
    // its generation recorded all the same.
    let mut new = owner(5);
    epoch(&mut new, &s, mode, 2, vec![win(2, "#a", 2)]).unwrap();
    assert_eq!(new.epochs_skipped(), 1);
    let e = epoch(&mut old, &s, mode, 3, vec![win(3, "#old", 9)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fenced") && e.contains("generation 5") && e.contains("pipeline's 4"),
        "{e}"
    );
    assert_eq!(old.retries(), 0, "a fence is not retried");
    epoch(&mut new, &s, mode, 3, vec![win(3, "#a", 3)]).unwrap();
    assert_eq!(
        windowed_table(&pg, "w"),
        vec![w(1, "#a", 1), w(2, "#a", 2), w(3, "#a", 3)]
    );
    assert_eq!(committed_epoch(&pg, "out"), 3);
    assert_eq!(
        pg.psql(DB, "SELECT owner_generation FROM trendflow_commits")
            .unwrap()
            .trim(),
        "5"
    );
    // A run without a fence (a plain `trendflow run`) is not refused.
    let mut plain = sink(options(&pg, "w", mode));
    epoch(&mut plain, &s, mode, 4, vec![win(4, "#a", 4)]).unwrap();
    assert_eq!(committed_epoch(&pg, "out"), 4);
}

#[test]
fn a_table_with_other_columns_is_refused_with_what_differs() {
    let pg = server();
    let s = windowed();
    let mode = OutputMode::Append;
    pg.psql(
        DB,
        "CREATE TABLE counts (window_start timestamp, hashtag text, n integer)",
    )
    .unwrap();
    let mut out = sink(options(&pg, "counts", mode));
    let e = epoch(&mut out, &s, mode, 0, vec![win(0, "#a", 1)])
        .unwrap_err()
        .to_string();
    for part in [
        "table \"counts\"",
        "\"window_start\" is timestamp without time zone, not timestamp with time zone",
        "\"window_end\" is missing",
        "\"count\" is missing",
        "found \"window_start\" timestamp without time zone, \"hashtag\" text, \"n\" integer",
    ] {
        assert!(e.contains(part), "`{part}` not in: {e}");
    }
    // Refused at once, not retried, and nothing recorded.
    assert_eq!(out.retries(), 0);
    assert_eq!(
        pg.psql(DB, "SELECT count(*) FROM trendflow_commits")
            .unwrap()
            .trim(),
        "0"
    );

    let mut o = options(&pg, "missing", mode);
    o.create_table = false;
    let e = epoch(&mut sink(o), &s, mode, 0, vec![win(0, "#a", 1)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not exist") && e.contains("create_table"),
        "{e}"
    );
}

#[test]
fn lost_connections_and_server_restarts_between_epochs_are_survived() {
    let pg = server();
    let s = windowed();
    let mode = OutputMode::Append;
    let mut out = sink(options(&pg, "w", mode));
    epoch(&mut out, &s, mode, 0, vec![win(0, "#a", 1)]).unwrap();
    assert_eq!(pg.terminate_connections(DB).unwrap(), 1);
    epoch(&mut out, &s, mode, 1, vec![win(1, "#a", 2)]).unwrap();
    pg.restart().unwrap();
    epoch(&mut out, &s, mode, 2, vec![win(2, "#a", 3)]).unwrap();
    assert_eq!(
        windowed_table(&pg, "w"),
        vec![w(0, "#a", 1), w(1, "#a", 2), w(2, "#a", 3)]
    );
    assert_eq!(committed_epoch(&pg, "out"), 2);
}

#[test]
fn a_server_restart_during_a_commit_is_retried_without_loss_or_duplicates() {
    let pg = server();
    let s = windowed();
    let mode = OutputMode::Append;
    let mut out = sink(options(&pg, "w", mode));
    // Connected, tables created: epoch 1 is all COPY and commit.
    epoch(&mut out, &s, mode, 0, vec![win(0, "#first", 1)]).unwrap();
    let rows = many(200_000, 10, |i| i as i64);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            pg.restart().unwrap();
        });
        epoch(&mut out, &s, mode, 1, rows).unwrap();
    });
    let r = query(&pg, "SELECT count(*), sum(count)::bigint FROM w");
    let expected_sum: i64 = (0..200_000i64).sum::<i64>() + 1;
    assert_eq!(
        (r[0].get::<_, i64>(0), r[0].get::<_, i64>(1)),
        (200_001, expected_sum)
    );
    assert_eq!(committed_epoch(&pg, "out"), 1);
    eprintln!("retries during the restart: {}", out.retries());
}

#[test]
fn epochs_of_200k_rows_load_and_upsert() {
    let pg = server();
    let s = windowed();
    let mode = OutputMode::Update;
    let mut out = sink(options(&pg, "big", mode));
    let started = Instant::now();
    epoch(&mut out, &s, mode, 0, many(200_000, 0, |i| i as i64)).unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "200,000 new rows in {:.2} s ({:.0} rows/s, with connecting and creating the tables)",
        elapsed.as_secs_f64(),
        200_000.0 / elapsed.as_secs_f64()
    );
    let total = |pg: &PostgresServer| {
        let r = query(pg, "SELECT count(*), sum(count)::bigint FROM big");
        (r[0].get::<_, i64>(0), r[0].get::<_, i64>(1))
    };
    let sum: i64 = (0..200_000i64).sum();
    assert_eq!(total(&pg), (200_000, sum));
    // Every row changes: all are updated, none added.
    let started = Instant::now();
    epoch(&mut out, &s, mode, 1, many(200_000, 0, |i| i as i64 + 1)).unwrap();
    eprintln!(
        "200,000 changed rows in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(total(&pg), (200_000, sum + 200_000));
    assert_eq!(out.rows_written(), 400_000);
    assert_eq!(committed_epoch(&pg, "out"), 1);
}

/// TLS: with `sslmode=require` and the server's CA in `ca_file`, rows go over TLS (the server
/// says so in `pg_stat_ssl`); without that CA the certificate is refused, clearly.
#[test]
fn tls_with_a_trusted_certificate_and_refused_without() {
    let pg = server();
    let ca = pg.enable_tls().unwrap();
    let schema = plain();
    let mut o = options(&pg, "totals", OutputMode::Update);
    o.connection = format!("{} sslmode=require application_name=tls-test", o.connection);
    o.ca_file = Some(ca);
    let mut s = sink(o.clone());
    epoch(&mut s, &schema, OutputMode::Update, 0, vec![word("#a", 1)]).unwrap();
    assert_eq!(plain_table(&pg, "totals"), vec![p("#a", 1)]);
    let ssl = pg
        .psql(
            DB,
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tls-test'",
        )
        .unwrap();
    assert_eq!(ssl.trim(), "t", "the sink's connection is not encrypted");

    let mut untrusted = o.clone();
    untrusted.ca_file = None;
    untrusted.sink = "untrusted".into();
    untrusted.retry_for = Duration::from_millis(200);
    let mut s = sink(untrusted);
    let e = epoch(&mut s, &schema, OutputMode::Update, 0, vec![word("#b", 1)]).unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("certificate"),
        "unclear error: {e}"
    );
}
