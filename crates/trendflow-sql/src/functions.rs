//! SQL functions the Spark tutorial uses, with Spark's behaviour:
//!
//! - `to_timestamp(s)` (ISO-8601) and `to_timestamp(s, pattern)` with a Java
//!   `SimpleDateFormat` pattern, as Spark's LEGACY time parser reads it. The tutorial's
//!   pattern `EEE MMM d HH:mm:ss Z yyyy` uses the pipeline's own `created_at` parser, so SQL and
//!   pipeline agree on every string; other patterns are translated to strptime. An unparsable
//!   string gives NULL (Spark with ANSI mode off).
//! - `from_utc_timestamp(ts, zone)`: the wall-clock time in an IANA zone of a UTC instant
//!   (the tutorial shows Europe/Paris times), daylight saving included.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use trendflow_core::time::{parse_created_at, parse_iso8601};

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Registers the functions in a session (replacing DataFusion's `to_timestamp`).
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(ToTimestamp::new()));
    ctx.register_udf(ScalarUDF::from(FromUtcTimestamp::new()));
}

/// The tutorial's pattern, the one the pipeline parses `created_at` with.
const CREATED_AT_PATTERN: &str = "EEE MMM d HH:mm:ss Z yyyy";

/// A Java `SimpleDateFormat` pattern as a strptime format (the letters Spark's LEGACY parser
/// is used with in practice; quoted text is literal).
pub fn java_pattern_to_strptime(pattern: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '%' {
                    out.push('%');
                }
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let spec = match (c, n) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('H', _) => "%H",
            ('h', _) => "%I",
            ('a', _) => "%p",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', _) => "%f",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('Z' | 'X' | 'x', _) => "%z",
            ('z', _) => "%Z",
            _ => {
                for _ in 0..n {
                    if c == '%' {
                        out.push('%');
                    }
                    out.push(c);
                }
                i += n;
                continue;
            }
        };
        out.push_str(spec);
        i += n;
    }
    out
}

/// Parses `s` with a Java pattern; milliseconds since the Unix epoch, UTC.
pub fn parse_with_pattern(s: &str, pattern: &str) -> Option<i64> {
    if pattern
        .split_whitespace()
        .eq(CREATED_AT_PATTERN.split_whitespace())
    {
        return parse_created_at(s).ok();
    }
    let format = java_pattern_to_strptime(pattern);
    let tm = jiff::fmt::strtime::parse(&format, s.trim()).ok()?;
    if let Ok(ts) = tm.to_timestamp() {
        return Some(ts.as_millisecond());
    }
    // No offset in the pattern: the time is UTC (the session time zone).
    let dt = tm
        .to_datetime()
        .ok()
        .or_else(|| tm.to_date().ok().map(|d| d.at(0, 0, 0, 0)))?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(dt)
        .ok()
        .map(|t| t.as_millisecond())
}

fn strings_of(v: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let a = v.to_array(rows)?;
    Ok(datafusion::arrow::compute::cast(&a, &DataType::Utf8)?)
}

fn scalar_string(v: &ColumnarValue, what: &str) -> Result<Option<String>> {
    match v {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Utf8(x) | ScalarValue::LargeUtf8(x) | ScalarValue::Utf8View(x) => {
                Ok(x.clone())
            }
            other => exec_err!("{what} must be a string, got {other}"),
        },
        ColumnarValue::Array(_) => exec_err!("{what} must be a constant string"),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestamp {
    signature: Signature,
}

impl ToTimestamp {
    fn new() -> Self {
        ToTimestamp {
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        "to_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(utc_micros())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let input = &args.args[0];
        // Timestamps pass through (in UTC microseconds).
        if let DataType::Timestamp(_, _) = input.data_type() {
            let a = input.to_array(rows)?;
            return Ok(ColumnarValue::Array(datafusion::arrow::compute::cast(
                &a,
                &utc_micros(),
            )?));
        }
        let pattern = match args.args.get(1) {
            Some(p) => scalar_string(p, "the pattern of to_timestamp")?,
            None => None,
        };
        let strings = strings_of(input, rows)?;
        let strings = strings.as_string::<i32>();
        let out: TimestampMicrosecondArray = (0..strings.len())
            .map(|i| {
                if strings.is_null(i) {
                    return None;
                }
                let s = strings.value(i);
                let ms = match &pattern {
                    Some(p) => parse_with_pattern(s, p),
                    None => parse_iso8601(s).ok(),
                };
                ms.map(|m| m * 1000)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone("UTC"))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FromUtcTimestamp {
    signature: Signature,
}

impl FromUtcTimestamp {
    fn new() -> Self {
        FromUtcTimestamp {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FromUtcTimestamp {
    fn name(&self) -> &str {
        "from_utc_timestamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        // A wall-clock time: no zone attached, as Spark's result.
        Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some(zone) = scalar_string(&args.args[1], "the zone of from_utc_timestamp")? else {
            let nulls: TimestampMicrosecondArray = (0..rows).map(|_| None::<i64>).collect();
            return Ok(ColumnarValue::Array(Arc::new(nulls)));
        };
        let tz = match jiff::tz::TimeZone::get(&zone) {
            Ok(tz) => tz,
            Err(e) => return exec_err!("from_utc_timestamp: unknown time zone {zone:?}: {e}"),
        };
        let input = args.args[0].to_array(rows)?;
        let input = match input.data_type() {
            DataType::Timestamp(_, _) => datafusion::arrow::compute::cast(
                &input,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?,
            _ => {
                let strings = strings_of(&args.args[0], rows)?;
                let strings = strings.as_string::<i32>();
                let a: TimestampMicrosecondArray = (0..strings.len())
                    .map(|i| {
                        (!strings.is_null(i))
                            .then(|| parse_iso8601(strings.value(i)).ok().map(|m| m * 1000))
                            .flatten()
                    })
                    .collect();
                Arc::new(a)
            }
        };
        let ts = input.as_primitive::<TimestampMicrosecondType>();
        let out: TimestampMicrosecondArray = ts
            .iter()
            .map(|v| {
                let us = v?;
                let t = jiff::Timestamp::from_microsecond(us).ok()?;
                let offset = tz.to_offset(t).seconds() as i64;
                Some(us + offset * 1_000_000)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_translate() {
        assert_eq!(
            java_pattern_to_strptime("yyyy-MM-dd HH:mm:ss"),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(
            java_pattern_to_strptime("yyyy-MM-dd'T'HH:mm:ssZ"),
            "%Y-%m-%dT%H:%M:%S%z"
        );
        assert_eq!(
            parse_with_pattern("2021-04-15 10:30:00", "yyyy-MM-dd HH:mm:ss"),
            Some(1_618_482_600_000)
        );
        assert_eq!(
            parse_with_pattern("Thu Apr 15 08:00:00 +0000 2021", CREATED_AT_PATTERN),
            Some(1_618_473_600_000)
        );
        assert_eq!(parse_with_pattern("not a date", CREATED_AT_PATTERN), None);
    }
}
