//! The global table of a scale-out pipeline in PostgreSQL: each partition's pipeline writes
//! `T_pN` exactly once (its sink's commit record), and the view `T` sums them, grouped by
//! every column but the last (the count), so readers query one table whatever the number of
//! workers (docs/scale-out.md). A worker creates (or replaces) the view once every partition's
//! table exists; all workers may do it, the statement is the same.

use std::time::Duration;

/// What the view needs: where, the base name, and the topic's partitions.
pub struct MergeView {
    pub connection: String,
    pub password: Option<String>,
    /// PEM certificates trusted for TLS besides the system's, as for the sink.
    pub ca_file: Option<std::path::PathBuf>,
    pub table: String,
    pub partitions: Vec<i32>,
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl MergeView {
    /// The `CREATE OR REPLACE VIEW` over the partitions' tables, given their columns (the
    /// count last).
    pub fn statement(&self, columns: &[String]) -> Option<String> {
        let (value, keys) = columns.split_last()?;
        let keys: Vec<String> = keys.iter().map(|c| ident(c)).collect();
        let parts: Vec<String> = self
            .partitions
            .iter()
            .map(|p| format!("SELECT * FROM {}", ident(&format!("{}_p{p}", self.table))))
            .collect();
        Some(format!(
            "CREATE OR REPLACE VIEW {view} AS SELECT {keys}, sum({v})::bigint AS {v} FROM ({parts}) AS partitions GROUP BY {keys}",
            view = ident(&self.table),
            keys = keys.join(", "),
            v = ident(value),
            parts = parts.join(" UNION ALL "),
        ))
    }

    /// Tries until the view exists: every partition's table must have been created (by its
    /// pipeline's first epoch) first. Gives up quietly when the worker stops.
    pub async fn create_when_ready(self) {
        loop {
            match self.try_create().await {
                Ok(true) => {
                    tracing::info!(view = %self.table, partitions = self.partitions.len(), "merged view created");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "merged view not created yet"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn try_create(&self) -> Result<bool, String> {
        // TLS exactly as the sinks connect (unless `sslmode=disable`).
        let client = trendflow_connectors::postgres_sink::connect_as_sink(
            &self.connection,
            self.password.as_deref(),
            self.ca_file.as_deref(),
        )
        .await?;
        for p in &self.partitions {
            let name = format!("{}_p{p}", self.table);
            let row = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&ident(&name)])
                .await
                .map_err(|e| e.to_string())?;
            if !row.get::<_, bool>(0) {
                return Ok(false);
            }
        }
        let columns: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_name = $1 ORDER BY ordinal_position",
                &[&format!("{}_p{}", self.table, self.partitions[0])],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let Some(statement) = self.statement(&columns) else {
            return Ok(false);
        };
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_sums_the_last_column_over_every_partition() {
        let v = MergeView {
            connection: String::new(),
            password: None,
            ca_file: None,
            table: "counts".into(),
            partitions: vec![0, 1],
        };
        let cols = ["window_start", "window_end", "word", "count"].map(String::from);
        assert_eq!(
            v.statement(&cols).unwrap(),
            "CREATE OR REPLACE VIEW \"counts\" AS SELECT \"window_start\", \"window_end\", \"word\", \
             sum(\"count\")::bigint AS \"count\" FROM (SELECT * FROM \"counts_p0\" UNION ALL \
             SELECT * FROM \"counts_p1\") AS partitions GROUP BY \"window_start\", \"window_end\", \"word\""
        );
        assert_eq!(v.statement(&[]), None);
    }
}
