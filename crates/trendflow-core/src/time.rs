//! Timestamps: Twitter's `created_at` ("Thu Apr 08 15:43:36 +0000 2021") parsed as Spark's
//! LEGACY `to_timestamp(s, 'EEE MMM d HH:mm:ss Z yyyy')` does, ISO-8601 parsing and UTC
//! formatting. Hand-written because this runs once per record on the hot path.

use crate::EventTime;

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
// 1970-01-01 was a Thursday; index 0 = Thursday.
const WEEKDAYS: [&str; 7] = [
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Why a timestamp was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError(pub String);

impl std::fmt::Display for TimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, TimeError> {
    Err(TimeError(msg.into()))
}

#[inline]
fn two_digits(b: &[u8]) -> Option<u32> {
    let (a, c) = (b[0].wrapping_sub(b'0'), b[1].wrapping_sub(b'0'));
    // `then`, not `then_some`: the sum must only be computed for digits (found by fuzzing: a
    // letter in a digit position overflowed the u8 multiplication).
    (a < 10 && c < 10).then(|| a as u32 * 10 + c as u32)
}

/// Parses Twitter's `created_at` to ms since the epoch, UTC.
///
/// The exact shape Twitter writes is handled by a fast path; other spellings accepted by
/// Spark's LEGACY (SimpleDateFormat) parser go through [`parse_created_at_lenient`]:
/// any case, full month and day names, 1- to 3-digit numeric fields. The weekday must match
/// the date, as Spark requires.
pub fn parse_created_at(s: &str) -> Result<EventTime, TimeError> {
    let b = s.as_bytes();
    // "Thu Apr 08 15:43:36 +0000 2021"
    if b.len() == 30
        && b[3] == b' '
        && b[7] == b' '
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b' '
        && b[25] == b' '
        && (b[20] == b'+' || b[20] == b'-')
        && let (Some(day), Some(hh), Some(mm), Some(ss), Some(oh), Some(om), Some(y1), Some(y2)) = (
            two_digits(&b[8..10]),
            two_digits(&b[11..13]),
            two_digits(&b[14..16]),
            two_digits(&b[17..19]),
            two_digits(&b[21..23]),
            two_digits(&b[23..25]),
            two_digits(&b[26..28]),
            two_digits(&b[28..30]),
        )
        && let Some(month) = month_abbrev(&b[4..7])
    {
        let year = (y1 * 100 + y2) as i64;
        let sign = if b[20] == b'-' { -1 } else { 1 };
        return assemble(
            year,
            month,
            day,
            hh,
            mm,
            ss,
            sign * (oh * 60 + om) as i64,
            Some(&s[0..3]),
        );
    }
    parse_created_at_lenient(s)
}

fn month_abbrev(b: &[u8]) -> Option<u32> {
    Some(match b {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// A name matches if it is the full name or its 3-letter abbreviation, in any case.
fn name_index(word: &str, names: &[&str]) -> Option<usize> {
    let w = word.to_ascii_lowercase();
    names
        .iter()
        .position(|n| w == *n || (w.len() == 3 && n.starts_with(&w)))
}

fn numeric(field: &str, what: &str, max_digits: usize) -> Result<u32, TimeError> {
    if field.is_empty() || field.len() > max_digits || !field.bytes().all(|c| c.is_ascii_digit()) {
        return err(format!("bad {what} `{field}`"));
    }
    Ok(field.parse().unwrap())
}

/// The slow path of [`parse_created_at`].
pub fn parse_created_at_lenient(s: &str) -> Result<EventTime, TimeError> {
    // Like SimpleDateFormat.parse(String), text after the year is ignored.
    let parts: Vec<&str> = s.splitn(7, ' ').collect();
    if parts.len() < 6 {
        return err(format!(
            "`{s}` is not of the form `EEE MMM d HH:mm:ss Z yyyy`"
        ));
    }
    let Some(_) = name_index(parts[0], &WEEKDAYS) else {
        return err(format!("bad weekday `{}`", parts[0]));
    };
    let Some(month) = name_index(parts[1], &MONTHS) else {
        return err(format!("bad month `{}`", parts[1]));
    };
    let day = numeric(parts[2], "day", 3)?;
    let hms: Vec<&str> = parts[3].split(':').collect();
    if hms.len() != 3 {
        return err(format!("bad time `{}`", parts[3]));
    }
    let (hh, mm, ss) = (
        numeric(hms[0], "hour", 3)?,
        numeric(hms[1], "minute", 3)?,
        numeric(hms[2], "second", 3)?,
    );
    let offset = parse_rfc822_offset(parts[4])
        .ok_or_else(|| TimeError(format!("bad zone offset `{}`", parts[4])))?;
    let digits = parts[5].bytes().take_while(u8::is_ascii_digit).count();
    let year = numeric(&parts[5][..digits], "year", 4)? as i64;
    assemble(
        year,
        month as u32 + 1,
        day,
        hh,
        mm,
        ss,
        offset,
        Some(parts[0]),
    )
}

/// "+0000", "-0530": minutes east of UTC.
fn parse_rfc822_offset(z: &str) -> Option<i64> {
    let b = z.as_bytes();
    if b.len() != 5 || !(b[0] == b'+' || b[0] == b'-') {
        return None;
    }
    let h = two_digits(&b[1..3])? as i64;
    let m = two_digits(&b[3..5])? as i64;
    if m >= 60 {
        return None;
    }
    Some(if b[0] == b'-' {
        -(h * 60 + m)
    } else {
        h * 60 + m
    })
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    year: i64,
    month: u32,
    day: u32,
    hh: u32,
    mm: u32,
    ss: u32,
    offset_min: i64,
    weekday: Option<&str>,
) -> Result<EventTime, TimeError> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return err(format!("no such date {year}-{month:02}-{day:02}"));
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return err(format!("no such time {hh:02}:{mm:02}:{ss:02}"));
    }
    let days = days_from_civil(year, month, day);
    if let Some(wd) = weekday {
        let actual = days.rem_euclid(7) as usize;
        match name_index(wd, &WEEKDAYS) {
            Some(i) if i == actual => {}
            _ => {
                return err(format!(
                    "weekday `{wd}` does not match {year}-{month:02}-{day:02}"
                ));
            }
        }
    }
    let local = days * 86_400 + (hh as i64) * 3600 + (mm as i64) * 60 + ss as i64;
    Ok((local - offset_min * 60) * 1000)
}

/// Parses ISO-8601 / RFC 3339 timestamps: "2021-04-08T09:17:45Z", with optional fraction
/// and offset ("+02:00", "+0200"); a missing offset means UTC.
pub fn parse_iso8601(s: &str) -> Result<EventTime, TimeError> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return err(format!("`{s}` is not an ISO-8601 timestamp"));
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, TimeError> {
        let f = &s[r];
        if f.bytes().all(|c| c.is_ascii_digit()) {
            Ok(f.parse().unwrap())
        } else {
            err(format!("`{s}` is not an ISO-8601 timestamp"))
        }
    };
    let (y, mo, d, h, mi, se) = (
        num(0..4)? as i64,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut i = 19;
    let mut millis = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return err(format!("`{s}`: empty fraction"));
        }
        let frac = &s[start..i.min(start + 3)];
        millis = frac.parse::<i64>().unwrap() * 10i64.pow(3 - frac.len() as u32);
    }
    let rest = &s[i..];
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let r = rest.replace(':', "");
            parse_rfc822_offset(&r)
                .ok_or_else(|| TimeError(format!("`{s}`: bad offset `{rest}`")))?
        }
    };
    Ok(assemble(y, mo, d, h, mi, se, offset, None)? + millis)
}

/// Formats ms since the epoch in a time zone, ISO-8601 with its offset:
/// "2021-04-15T07:05:00+02:00" in Europe/Paris (fraction only when not whole).
pub fn format_iso_in(t: EventTime, zone: &jiff::tz::TimeZone) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(t) else {
        return format_iso_utc(t);
    };
    let offset = zone.to_offset(ts).seconds() as i64;
    // The local wall-clock time, written as UTC would be, then its offset instead of `Z`.
    let mut s = format_iso_utc(t + offset * 1000);
    s.pop();
    let (sign, abs) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    s.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60));
    s
}

/// Formats ms since the epoch as "2021-04-15T05:05:00Z" (fraction only when not whole).
pub fn format_iso_utc(t: EventTime) -> String {
    let secs = t.div_euclid(1000);
    let ms = t.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    if ms == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
    }
}

/// Formats ms since the epoch in Twitter's `created_at` shape.
pub fn format_created_at(t: EventTime) -> String {
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const W: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let secs = t.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sod = secs.rem_euclid(86_400);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} +0000 {:04}",
        W[days.rem_euclid(7) as usize],
        M[(m - 1) as usize],
        d,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        y
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn twitter_created_at() {
        assert_eq!(
            parse_created_at("Thu Apr 15 08:00:05 +0000 2021").unwrap(),
            1_618_473_605_000
        );
        assert_eq!(
            parse_created_at("Thu Apr 08 15:43:36 +0000 2021").unwrap(),
            1_617_896_616_000
        );
        // offsets move the instant
        assert_eq!(
            parse_created_at("Thu Apr 15 10:00:05 +0200 2021").unwrap(),
            1_618_473_605_000
        );
        assert_eq!(
            parse_created_at("Thu Apr 15 07:30:05 -0030 2021").unwrap(),
            1_618_473_605_000
        );
    }

    #[test]
    fn spark_legacy_leniency() {
        let t = 1_617_896_616_000;
        assert_eq!(
            parse_created_at("thu apr 08 15:43:36 +0000 2021").unwrap(),
            t
        );
        assert_eq!(
            parse_created_at("Thursday April 8 15:43:36 +0000 2021").unwrap(),
            t
        );
        // Text after the year is ignored, as SimpleDateFormat.parse(String) ignores it.
        assert_eq!(
            parse_created_at("Thu Apr 08 15:43:36 +0000 2021 extra").unwrap(),
            t
        );
        assert_eq!(
            parse_created_at("Thu Apr 08 15:43:36 +0000 2021extra").unwrap(),
            t
        );
        assert_eq!(
            parse_created_at("Thu Apr 008 15:43:36 +0000 2021").unwrap(),
            t
        );
    }

    #[test]
    fn rejects_what_spark_rejects() {
        for bad in [
            "",
            "1617896616",
            "Fri Apr 08 15:43:36 +0000 2021", // wrong weekday
            "Thu Apr 15 15:43 +0000 2021",
            "Thu Apr 15 09:41:55 2021",
            "2021-04-08T09:17:45Z",
            "Thu Feb 30 09:41:55 +0000 2021",
            "Thu Apr 15 25:41:55 +0000 2021",
        ] {
            assert!(parse_created_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso8601() {
        assert_eq!(
            parse_iso8601("2021-04-08T15:43:36Z").unwrap(),
            1_617_896_616_000
        );
        assert_eq!(
            parse_iso8601("2021-04-08T15:43:36.250Z").unwrap(),
            1_617_896_616_250
        );
        assert_eq!(
            parse_iso8601("2021-04-08T17:43:36+02:00").unwrap(),
            1_617_896_616_000
        );
        assert_eq!(
            parse_iso8601("2021-04-08T15:43:36").unwrap(),
            1_617_896_616_000
        );
        assert_eq!(
            parse_iso8601("2021-04-08T15:43:36.123456Z").unwrap(),
            1_617_896_616_123
        );
        assert!(parse_iso8601("2021-04-08").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_iso_utc(1_618_463_100_000), "2021-04-15T05:05:00Z");
        assert_eq!(
            format_created_at(1_617_896_616_000),
            "Thu Apr 08 15:43:36 +0000 2021"
        );
    }

    proptest! {
        /// The hand-written hot-path parser agrees with jiff (a general, tested date library)
        /// on every instant and zone offset Twitter's format can carry.
        #[test]
        fn created_at_agrees_with_jiff(secs in -2_000_000_000i64..4_000_000_000, offset_min in -720i32..=840) {
            let ts = jiff::Timestamp::from_second(secs).unwrap();
            let offset = jiff::tz::Offset::from_seconds(offset_min * 60).unwrap();
            let zoned = ts.to_zoned_datetime(jiff::tz::TimeZone::fixed(offset));
            let text = zoned.strftime("%a %b %d %H:%M:%S %z %Y").to_string();
            prop_assert_eq!(parse_created_at(&text).unwrap(), secs * 1000, "{}", text);
            prop_assert_eq!(format_iso_utc(secs * 1000), ts.to_string());
        }
    }

    proptest! {
        #[test]
        fn created_at_round_trips(secs in -2_000_000_000i64..4_000_000_000) {
            let t = secs * 1000;
            prop_assert_eq!(parse_created_at(&format_created_at(t)).unwrap(), t);
            prop_assert_eq!(parse_iso8601(&format_iso_utc(t)).unwrap(), t);
        }
    }

    #[test]
    fn a_letter_in_a_digit_position_is_an_error_not_an_overflow() {
        assert!(parse_created_at("Sun Aug 31 p0:29:09 +0000 2014").is_err());
        assert!(parse_created_at("Sun Aug 31 10:29:09 +0000 20x4").is_err());
    }

    #[test]
    fn times_in_a_zone_carry_their_offset() {
        let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        // Summer (UTC+2) and winter (UTC+1).
        assert_eq!(
            format_iso_in(1_618_473_600_000, &paris),
            "2021-04-15T10:00:00+02:00"
        );
        assert_eq!(
            format_iso_in(1_610_000_000_500, &paris),
            "2021-01-07T07:13:20.500+01:00"
        );
    }
}
