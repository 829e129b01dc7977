//! `trendflow sql "select ..."`: runs a query against a running pipeline's memory tables.

use clap::Args;

#[derive(Args)]
pub struct SqlArgs {
    /// The query, e.g. "select * from data order by count desc limit 10".
    pub query: String,
    /// host:port of the pipeline's endpoint; by default the running pipeline that has the
    /// table the query names (see `api.address`).
    #[arg(long)]
    pub addr: Option<String>,
    /// table (as Spark's `show()`), csv or json.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
    /// Rows a table shows, as `show(n)` (default 20).
    #[arg(long, default_value_t = 20)]
    pub rows: usize,
    /// Cut values at 20 characters, as `show()`; `--truncate false` is `show(n, False)`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub truncate: bool,
}

pub async fn main(args: SqlArgs) -> i32 {
    let targets: Vec<String> = match &args.addr {
        Some(a) => vec![a.clone()],
        None => {
            let running = crate::registry::running();
            if running.is_empty() {
                eprintln!(
                    "trendflow sql: no running pipeline found (start one with `trendflow run`, or give --addr)"
                );
                return 2;
            }
            // Pipelines owning a table named in the query first.
            let q = args.query.to_lowercase();
            let mut r = running;
            r.sort_by_key(|e| !e.tables.iter().any(|t| q.contains(&t.to_lowercase())));
            r.into_iter().filter_map(|e| e.address).collect()
        }
    };
    let mut last = String::new();
    for addr in &targets {
        let show = format!("rows={}&truncate={}", args.rows, args.truncate);
        match trendflow_sql::client::post_sql(addr, &args.query, &args.format, &show).await {
            Ok((200, body)) => {
                print!("{body}");
                return 0;
            }
            Ok((status, body)) => last = format!("{addr}: error {status}: {}", body.trim_end()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    eprintln!("trendflow sql: {last}");
    1
}
