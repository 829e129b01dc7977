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
use trendflow_core::{ResultRow, RowRef, RowSchema};

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
    match quoting(s.as_bytes()) {
        Quoting::Plain => out.push_str(s),
        Quoting::Wrap => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Quoting::Escape => push_quoted(out, s),
    }
}

fn needs_quotes(s: &str) -> bool {
    quoting(s.as_bytes()) != Quoting::Plain
}

/// How a field goes into CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// As it is.
    Plain,
    /// Between quotes: it holds a comma or a line break, and no quote.
    Wrap,
    /// Between quotes, its quotes doubled.
    Escape,
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether one of the eight bytes of `x` is `b` (a byte of `x ^ b…b` is zero, found without
/// a false positive by the borrow trick).
#[inline(always)]
fn has_byte(x: u64, b: u8) -> bool {
    let v = x ^ (LOW_BITS * b as u64);
    v.wrapping_sub(LOW_BITS) & !v & HIGH_BITS != 0
}

/// The bytes that make a CSV field quoted, as bits of a mask over 0..64 (all are below 64).
const QUOTED_BYTES: u64 = 1 << b',' | 1 << b'"' | 1 << b'\n' | 1 << b'\r';

/// One pass over the field, eight bytes at a time (the last eight overlapping the ones
/// before): with 24-hour windows sliding every minute Q2 writes 3.92M rows for 200k tweets,
/// 76% of them quoted, and looking at one byte at a time, twice for those (once to see the
/// comma, once for quotes to double), was 15% of the samples of that flush.
#[inline]
fn quoting(s: &[u8]) -> Quoting {
    let (mut special, mut quote) = (false, false);
    if s.len() >= 8 {
        let mut look = |piece: &[u8]| {
            let x = u64::from_le_bytes(piece.try_into().expect("eight bytes"));
            special |= has_byte(x, b',') | has_byte(x, b'\n') | has_byte(x, b'\r');
            quote |= has_byte(x, b'"');
        };
        for piece in s.chunks_exact(8) {
            look(piece);
        }
        look(&s[s.len() - 8..]);
    } else {
        for &b in s {
            special |= b < 64 && QUOTED_BYTES >> b & 1 != 0;
            quote |= b == b'"';
        }
    }
    match (quote, special) {
        (true, _) => Quoting::Escape,
        (false, true) => Quoting::Wrap,
        (false, false) => Quoting::Plain,
    }
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
    CsvWriter::default().row(out, row.as_ref())
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

    pub fn row(&mut self, out: &mut String, row: RowRef<'_>) {
        let prefix: &str = match (row.window, &self.window) {
            (None, _) => "",
            (Some(w), Some((cached, prefix))) if *cached == w => prefix,
            (Some(w), _) => {
                let z = self.zone.as_ref();
                let prefix = format!("{},{},", format_time(w.start, z), format_time(w.end, z));
                &self.window.insert((w, prefix)).1
            }
        };
        let key = row.key.as_bytes();
        let quoting = quoting(key);
        if quoting == Quoting::Escape {
            out.push_str(prefix);
            push_quoted(out, row.key);
            out.push(',');
            out.push_str(itoa::Buffer::new().format(row.count));
            out.push('\n');
            return;
        }
        let mut count = itoa::Buffer::new();
        let count = count.format(row.count).as_bytes();
        let quote = usize::from(quoting == Quoting::Wrap);
        let len = prefix.len() + key.len() + 2 * quote + count.len() + 2;
        out.reserve(len);
        // SAFETY: the bytes appended are whole strings (the prefix, the key, the count) and
        // ASCII punctuation, so `out` stays UTF-8; `reserve` made room for all `len` of them,
        // and `put` writes exactly the bytes it is given. A quote is written whether or not
        // the key takes quotes, without a branch: when it does not, `at` does not move past
        // it and the next write (the key, or the comma after it) covers it, so every write is
        // within the row's `len` bytes.
        unsafe {
            let v = out.as_mut_vec();
            let start = v.len();
            let mut at = v.as_mut_ptr().add(start);
            at = put(at, prefix.as_bytes());
            *at = b'"';
            at = at.add(quote);
            at = put(at, key);
            *at = b'"';
            at = at.add(quote);
            *at = b',';
            at = put(at.add(1), count);
            *at = b'\n';
            v.set_len(start + len);
        }
    }
}

/// Writes `src` at `dst` and returns the end of what it wrote. A row is four short pieces,
/// each a call to `memcpy` before (`memmove` was 15% of the samples of Q2's flush with
/// 24h/1min windows, these calls among them): pieces up to 64 bytes are copied with unaligned
/// loads and stores, the last one overlapping the ones before.
///
/// # Safety
/// `dst` has room for `src.len()` bytes and does not overlap `src`.
#[inline(always)]
unsafe fn put(dst: *mut u8, src: &[u8]) -> *mut u8 {
    use std::ptr::{read_unaligned, write_unaligned};
    let (n, from) = (src.len(), src.as_ptr());
    // SAFETY: every load is within `src` (pieces start at `i` with `i + w <= n`, the last at
    // `n - w`) and every store within the `n` bytes at `dst`.
    unsafe {
        macro_rules! pieces {
            ($t:ty) => {{
                let w = std::mem::size_of::<$t>();
                let mut i = 0;
                while i + w < n {
                    write_unaligned(
                        dst.add(i).cast::<$t>(),
                        read_unaligned(from.add(i).cast::<$t>()),
                    );
                    i += w;
                }
                write_unaligned(
                    dst.add(n - w).cast::<$t>(),
                    read_unaligned(from.add(n - w).cast::<$t>()),
                );
            }};
        }
        match n {
            65.. => std::ptr::copy_nonoverlapping(from, dst, n),
            16.. => pieces!(u128),
            8.. => pieces!(u64),
            4.. => pieces!(u32),
            _ => {
                for i in 0..n {
                    *dst.add(i) = *from.add(i);
                }
            }
        }
        dst.add(n)
    }
}

/// One JSON line (with newline).
pub fn json_row(
    out: &mut String,
    schema: &RowSchema,
    row: RowRef<'_>,
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

        /// Rows written by the writer's piecewise copies against rows formatted the obvious
        /// way, over keys of every length a piece boundary can fall in, runs of windows, and
        /// counts of every size.
        #[test]
        fn csv_rows_are_the_naive_rows(
            rows in proptest::collection::vec(
                ("[a-z#\",\r\n é😀]{0,80}", proptest::num::i64::ANY, 0i64..3, proptest::bool::ANY),
                0..40,
            ),
        ) {
            let mut writer = CsvWriter::default();
            let (mut fast, mut naive) = (String::from("x"), String::from("x"));
            for (key, count, start, windowed) in rows {
                let window = windowed.then_some(Window { start: start * 300_000, end: start * 300_000 + 10_800_000 });
                let row = ResultRow { window, key: key.as_str().into(), count };
                writer.row(&mut fast, row.as_ref());
                if let Some(w) = window {
                    naive.push_str(&format!("{},{},", format_iso_utc(w.start), format_iso_utc(w.end)));
                }
                let field = if key.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", key.replace('"', "\"\""))
                } else {
                    key.clone()
                };
                naive.push_str(&format!("{field},{count}\n"));
            }
            proptest::prop_assert_eq!(fast, naive);
        }
    }
}
