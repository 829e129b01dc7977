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
        self.rows.extend(rows.rows.iter().map(|r| r.to_owned()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use trendflow_core::batch::OutputMode;
    use trendflow_core::{RowBatch, Window};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn prints_each_epoch_as_sparks_show() {
        let out = Shared::default();
        let mut sink = ConsoleSink::to_writer(1, true, Box::new(out.clone()));
        let schema = Arc::new(RowSchema::word_count(true));
        let w = Some(Window {
            start: 1_618_463_100_000,
            end: 1_618_473_900_000,
        });
        let rows = vec![
            ResultRow {
                window: w,
                key: "#unmotbienplusquevingtcaracteres".into(),
                count: 12,
            },
            ResultRow {
                window: w,
                key: "#b".into(),
                count: 1,
            },
        ];
        sink.write(&Batch::Rows(Arc::new(RowBatch {
            schema,
            mode: OutputMode::Append,
            epoch: 3,
            rows: rows.into(),
        })))
        .unwrap();
        sink.commit(3).unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let expected = "\
-------------------------------------------
Batch: 3
-------------------------------------------
+--------------------+--------------------+-----+
|              window|                word|count|
+--------------------+--------------------+-----+
|{2021-04-15 05:05...|#unmotbienplusque...|   12|
+--------------------+--------------------+-----+
only showing top 1 row

";
        assert_eq!(text, expected);
    }
}
