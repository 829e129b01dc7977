//! Result rows as text: CSV and JSON lines, with windows as UTC ISO-8601 times, the format of
//! Spark's result tables in the golden cases.

use std::fmt::Write;

use trendflow_core::time::{format_iso_in, format_iso_utc};

/// A window bound as text: UTC ("...Z"), or local time in `zone` with its offset.
pub fn format_time(ms: i64, zone: Option<&jiff::tz::TimeZone>) -> String {
    match zone {
        None => format_iso_utc(ms),
        Some(z) => format_iso_in(ms, z),
    }
}
use trendflow_core::{ResultRow, RowSchema};

/// The header line of a CSV table (without newline).
pub fn csv_header(schema: &RowSchema) -> String {
    let mut h = String::new();
    if schema.windowed {
        h.push_str("window_start,window_end,");
    }
    let _ = write!(
        h,
        "{},{}",
        csv_field(&schema.key_column),
        csv_field(&schema.value_column)
    );
    h
}

/// Quotes a field when it holds a comma, a quote or a line break (RFC 4180).
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if needs_quotes(s) {
        let mut quoted = String::with_capacity(s.len() + 2);
        push_quoted(&mut quoted, s);
        quoted.into()
    } else {
        s.into()
    }
}

/// [`csv_field`] appended to `out` without allocating: a result's keys are written once per
/// row (4.2M rows for Q2 over 1M tweets), and Spark's split leaves commas on words.
pub fn push_csv_field(out: &mut String, s: &str) {
    if needs_quotes(s) {
        push_quoted(out, s);
    } else {
        out.push_str(s);
    }
}

/// The bytes that make a CSV field quoted, as bits of a mask over 0..64 (all are below 64).
const QUOTED_BYTES: u64 = 1 << b',' | 1 << b'"' | 1 << b'\n' | 1 << b'\r';

/// One loop over the bytes: keys are short (a hashtag is ~12 bytes), and memchr's setup per
/// call cost more than the search (`memchr3` was 14% of the samples of Q2's flush over 1M
/// tweets).
fn needs_quotes(s: &str) -> bool {
    s.bytes().any(|b| b < 64 && QUOTED_BYTES >> b & 1 != 0)
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b'"' {
            // `i` is a quote (ASCII): the runs are cut on character boundaries.
            out.push_str(&s[run..=i]);
            out.push('"');
            run = i + 1;
        }
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// One CSV line (with newline).
pub fn csv_row(out: &mut String, row: &ResultRow) {
    CsvWriter::default().row(out, row)
}

/// Writes CSV rows, formatting each window's bounds once for its run of rows.
#[derive(Default)]
pub struct CsvWriter {
    window: Option<(trendflow_core::Window, String)>,
    zone: Option<jiff::tz::TimeZone>,
}

impl CsvWriter {
    /// Window bounds in `zone` (UTC when `None`).
    pub fn in_zone(zone: Option<jiff::tz::TimeZone>) -> Self {
        CsvWriter { window: None, zone }
    }

    pub fn row(&mut self, out: &mut String, row: &ResultRow) {
        if let Some(w) = row.window {
            match &self.window {
                Some((cached, prefix)) if *cached == w => out.push_str(prefix),
                _ => {
                    let z = self.zone.as_ref();
                    let prefix = format!("{},{},", format_time(w.start, z), format_time(w.end, z));
                    out.push_str(&prefix);
                    self.window = Some((w, prefix));
                }
            }
        }
        push_csv_field(out, &row.key);
        out.push(',');
        out.push_str(itoa::Buffer::new().format(row.count));
        out.push('\n');
    }
}

/// One JSON line (with newline).
pub fn json_row(
    out: &mut String,
    schema: &RowSchema,
    row: &ResultRow,
    zone: Option<&jiff::tz::TimeZone>,
) {
    let mut obj = serde_json::Map::new();
    if let Some(w) = row.window {
        obj.insert("window_start".into(), format_time(w.start, zone).into());
        obj.insert("window_end".into(), format_time(w.end, zone).into());
    }
    obj.insert(schema.key_column.to_string(), row.key.to_string().into());
    obj.insert(schema.value_column.to_string(), row.count.into());
    out.push_str(&serde_json::Value::Object(obj).to_string());
    out.push('\n');
}

/// Spark's rendering of a timestamp in `show()`: "2021-04-15 05:05:00".
/// Rows as Spark's `Dataset.show(n, truncate)` prints them (see [`trendflow_sql::show`]).
pub fn show(schema: &RowSchema, rows: &[ResultRow], n: usize, truncate: bool) -> String {
    let mut header: Vec<String> = Vec::new();
    if schema.windowed {
        header.push("window".into());
    }
    header.push(schema.key_column.to_string());
    header.push(schema.value_column.to_string());
    let time = |ms: i64| trendflow_sql::show::spark_time(ms * 1000);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .take(n)
        .map(|r| {
            let mut line = Vec::new();
            if let Some(w) = r.window {
                line.push(format!("{{{}, {}}}", time(w.start), time(w.end)));
            } else if schema.windowed {
                line.push("NULL".into());
            }
            line.push(r.key.to_string());
            line.push(r.count.to_string());
            line
        })
        .collect();
    trendflow_sql::show::render(&header, &cells, truncate, rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::Window;

    #[test]
    fn csv_quotes_like_rfc4180() {
        let schema = RowSchema::word_count(true);
        assert_eq!(csv_header(&schema), "window_start,window_end,word,count");
        let mut s = String::new();
        let w = Some(Window {
            start: 1_618_463_100_000,
            end: 1_618_473_900_000,
        });
        csv_row(
            &mut s,
            &ResultRow {
                window: w,
                key: "#revenus,".into(),
                count: 1,
            },
        );
        csv_row(
            &mut s,
            &ResultRow {
                window: w,
                key: "\n#Europe\"".into(),
                count: 2,
            },
        );
        assert_eq!(
            s,
            "2021-04-15T05:05:00Z,2021-04-15T08:05:00Z,\"#revenus,\",1\n2021-04-15T05:05:00Z,2021-04-15T08:05:00Z,\"\n#Europe\"\"\",2\n"
        );
    }

    #[test]
    fn a_field_is_quoted_the_same_alone_and_in_a_row() {
        for (field, quoted) in [
            ("#plain", "#plain"),
            ("a\rb", "\"a\rb\""),
            ("\"\"", "\"\"\"\"\"\""),
            ("é,😀", "\"é,😀\""),
            ("a\"b\"", "\"a\"\"b\"\"\""),
            ("@ x?", "@ x?"),
        ] {
            assert_eq!(csv_field(field), quoted);
            let mut out = String::from("x");
            push_csv_field(&mut out, field);
            assert_eq!(out, format!("x{quoted}"));
        }
    }

    proptest::proptest! {
        /// The byte loops against RFC 4180 written the obvious way.
        #[test]
        fn csv_field_is_the_naive_quoting(s in "[a-z#\",\r\n é😀]{0,24}") {
            let naive = if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.clone()
            };
            proptest::prop_assert_eq!(csv_field(&s), naive);
        }
    }
}
