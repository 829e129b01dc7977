//! Tables as Spark's `Dataset.show()` prints them: a boxed table, values cut at 20
//! characters (17 and `...`) and right-aligned, or whole and left-aligned with
//! `truncate = false`; timestamps as `yyyy-MM-dd HH:mm:ss`, structs as `{a, b}`, nulls as
//! `NULL`; "only showing top N rows" when there are more.

use std::fmt::Write;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// A boxed table of `header` and `cells` (already formatted), `total` rows in all.
pub fn render(header: &[String], cells: &[Vec<String>], truncate: bool, total: usize) -> String {
    let cut = |s: &str| -> String {
        if truncate && s.chars().count() > 20 {
            let head: String = s.chars().take(17).collect();
            format!("{head}...")
        } else {
            s.to_string()
        }
    };
    let header: Vec<String> = header.iter().map(|h| cut(h)).collect();
    let cells: Vec<Vec<String>> = cells
        .iter()
        .map(|l| l.iter().map(|c| cut(c)).collect())
        .collect();
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h).max(3)).collect();
    for line in &cells {
        for (i, c) in line.iter().enumerate() {
            widths[i] = widths[i].max(width(c));
        }
    }
    let mut sep = String::from("+");
    for w in &widths {
        sep.push_str(&"-".repeat(*w));
        sep.push('+');
    }
    sep.push('\n');
    let render_line = |line: &[String], out: &mut String| {
        out.push('|');
        for (i, c) in line.iter().enumerate() {
            let pad = " ".repeat(widths[i] - width(c));
            if truncate {
                out.push_str(&pad);
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&pad);
            }
            out.push('|');
        }
        out.push('\n');
    };
    let mut out = sep.clone();
    render_line(&header, &mut out);
    out.push_str(&sep);
    for line in &cells {
        render_line(line, &mut out);
    }
    out.push_str(&sep);
    if total > cells.len() {
        let n = cells.len();
        let _ = writeln!(
            out,
            "only showing top {n} row{}",
            if n == 1 { "" } else { "s" }
        );
    }
    out
}

/// A time in microseconds as Spark shows it: `2021-04-15 08:05:00`, with the fraction only
/// when there is one.
pub fn spark_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let base = trendflow_core::time::format_iso_utc(secs * 1000);
    // format_iso_utc gives 2021-04-15T08:05:00Z
    let mut s = base.trim_end_matches('Z').replacen('T', " ", 1);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// One value as Spark's `show()` writes it.
pub fn spark_cell(col: &dyn Array, row: usize) -> String {
    if col.is_null(row) {
        return "NULL".into();
    }
    match col.data_type() {
        DataType::Timestamp(unit, _) => {
            let us = match datafusion::arrow::compute::cast(
                &col.slice(row, 1),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            ) {
                Ok(a) => a
                    .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                    .value(0),
                Err(_) => return format!("{unit:?}?"),
            };
            spark_time(us)
        }
        DataType::Struct(_) => {
            let s = col.as_struct();
            let parts: Vec<String> = (0..s.num_columns())
                .map(|i| spark_cell(s.column(i).as_ref(), row))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        _ => match ArrayFormatter::try_new(col, &FormatOptions::default()) {
            Ok(f) => f.value(row).to_string(),
            Err(e) => e.to_string(),
        },
    }
}

/// Query results as `show(n, truncate)` prints them.
pub fn show_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    n: usize,
    truncate: bool,
) -> String {
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut cells = Vec::new();
    'outer: for b in batches {
        for r in 0..b.num_rows() {
            if cells.len() == n {
                break 'outer;
            }
            cells.push(
                b.columns()
                    .iter()
                    .map(|c| spark_cell(c.as_ref(), r))
                    .collect(),
            );
        }
    }
    render(&header, &cells, truncate, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_spark_show() {
        let header = vec!["word".to_string(), "count".to_string()];
        let cells = vec![
            vec!["#Insee".to_string(), "12".to_string()],
            vec!["#averyveryverylonghashtag".to_string(), "3".to_string()],
        ];
        assert_eq!(
            render(&header, &cells, true, 5),
            "+--------------------+-----+\n\
             |                word|count|\n\
             +--------------------+-----+\n\
             |              #Insee|   12|\n\
             |#averyveryverylon...|    3|\n\
             +--------------------+-----+\n\
             only showing top 2 rows\n"
        );
        assert!(render(&header, &cells, false, 2).contains("|#averyveryverylonghashtag|3    |"));
        assert_eq!(spark_time(1_618_473_900_000_000), "2021-04-15 08:05:00");
        assert_eq!(spark_time(1_618_473_900_250_000), "2021-04-15 08:05:00.25");
    }
}
