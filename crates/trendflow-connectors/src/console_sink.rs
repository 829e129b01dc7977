//! The console sink: each epoch's rows printed as a table, as Spark's console sink does.

use std::io::Write;

use trendflow_core::{Batch, Epoch, OperatorError, ResultRow, RowSchema, Sink};

use crate::table_format::show;

pub struct ConsoleSink {
    num_rows: usize,
    truncate: bool,
    schema: Option<RowSchema>,
    rows: Vec<ResultRow>,
    out: Box<dyn Write + Send>,
}

impl ConsoleSink {
    pub fn new(num_rows: usize, truncate: bool) -> Self {
        Self::to_writer(num_rows, truncate, Box::new(std::io::stdout()))
    }

    pub fn to_writer(num_rows: usize, truncate: bool, out: Box<dyn Write + Send>) -> Self {
        ConsoleSink {
            num_rows,
            truncate,
            schema: None,
            rows: Vec::new(),
            out,
        }
    }
}

impl Sink for ConsoleSink {
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError> {
        let Batch::Rows(rows) = batch else {
            return Err(OperatorError::new(format!(
                "the console sink takes result rows, got {}",
                batch.kind()
            )));
        };
        self.schema.get_or_insert_with(|| (*rows.schema).clone());
        self.rows.extend(rows.rows.iter().cloned());
        Ok(())
    }

    fn commit(&mut self, epoch: Epoch) -> Result<(), OperatorError> {
        let Some(schema) = &self.schema else {
            return Ok(());
        };
        let text = format!(
            "-------------------------------------------\nBatch: {epoch}\n-------------------------------------------\n{}\n",
            show(schema, &self.rows, self.num_rows, self.truncate)
        );
        self.rows.clear();
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}
