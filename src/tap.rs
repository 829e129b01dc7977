//! `trendflow tap COMPONENT`: samples of the records a component of a running pipeline sends
//! on (a source's lines, a parser's posts, a tokenizer's tokens, an aggregation's rows), one
//! JSON object per line, as they pass. Reads `GET /tap/COMPONENT` of the pipeline's endpoint.

use std::io::Write;

use clap::Args;

#[derive(Args)]
pub struct TapArgs {
    /// The component, by its name in the pipeline file.
    pub component: String,
    /// The pipeline (its `name`); by default the only running one.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// host:port of the pipeline's endpoint instead of looking it up.
    #[arg(long)]
    pub addr: Option<String>,
    /// Records to print before exiting.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
}

pub async fn main(args: TapArgs) -> i32 {
    let addr = match crate::registry::endpoint(args.pipeline.as_deref(), args.addr.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("trendflow tap: {e}");
            return 2;
        }
    };
    let path = format!(
        "/tap/{}?limit={}",
        trendflow_sql::client::percent_encode(&args.component),
        args.limit
    );
    let status = trendflow_sql::client::stream_get(&addr, &path, |status, piece| {
        // Records go to stdout as they come; an error's explanation to stderr.
        let _ = if status == 200 {
            let mut out = std::io::stdout().lock();
            out.write_all(piece).and_then(|_| out.flush())
        } else {
            std::io::stderr().write_all(piece)
        };
    })
    .await;
    match status {
        Ok(200) => 0,
        Ok(code) => {
            eprintln!("trendflow tap: the endpoint answered {code}");
            2
        }
        Err(e) => {
            eprintln!("trendflow tap: cannot reach http://{addr}: {e}");
            2
        }
    }
}
