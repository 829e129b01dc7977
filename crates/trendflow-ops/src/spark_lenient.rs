//! What Spark's JSON reader accepts that a strict parser rejects, read the same way.
//!
//! Spark reads each line with Jackson (bytes, UTF-8) and keeps a post a strict parser would
//! reject: text after the root object is ignored; single-quoted strings are accepted; a lone
//! surrogate escape (`\ud83d` alone) becomes a lone UTF-16 unit that Java's UTF-8 encoder
//! writes as `?`; Jackson's UTF-8 decoder does not check for overlong forms (`\xc0\xaf` is
//! `/`), though it refuses a surrogate encoded in UTF-8 (the golden `bad` case shows Spark
//! dropping such a line). [`repair`] rewrites a line so a
//! strict parser reads it as Spark does; lines Spark rejects too (an invalid start byte, a
//! broken escape, a truncated object) stay unreadable.

/// The line, rewritten as Spark would read it, or None when there is nothing Spark would
/// read differently.
pub fn repair(line: &[u8]) -> Option<Vec<u8>> {
    let mut changed = false;
    let mut text: Vec<u8> = match std::str::from_utf8(line) {
        Ok(_) => line.to_vec(),
        Err(_) => {
            changed = true;
            decode_like_jackson(line)?
        }
    };
    if let Some(end) = top_level_object_end(&text)
        && !text[end..].iter().all(u8::is_ascii_whitespace)
    {
        text.truncate(end);
        changed = true;
    }
    if let Some(t) = single_quotes_to_double(&text) {
        text = t;
        changed = true;
    }
    if let Some(t) = replace_lone_surrogates(&text) {
        text = t;
        changed = true;
    }
    changed.then_some(text)
}

/// Decodes UTF-8 the way Jackson's byte parser does: multi-byte forms are decoded without the
/// overlong check; an invalid start or continuation byte, or a UTF-16 surrogate encoded in
/// UTF-8, makes the line unreadable.
fn decode_like_jackson(line: &[u8]) -> Option<Vec<u8>> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let cont = |b: Option<&u8>| b.filter(|b| **b & 0xC0 == 0x80).map(|b| (*b & 0x3F) as u32);
    while i < line.len() {
        let c = line[i];
        let (cp, len) = match c {
            0x00..=0x7F => (c as u32, 1),
            0xC0..=0xDF => (((c & 0x1F) as u32) << 6 | cont(line.get(i + 1))?, 2),
            0xE0..=0xEF => (
                ((c & 0x0F) as u32) << 12 | cont(line.get(i + 1))? << 6 | cont(line.get(i + 2))?,
                3,
            ),
            0xF0..=0xF7 => (
                ((c & 0x07) as u32) << 18
                    | cont(line.get(i + 1))? << 12
                    | cont(line.get(i + 2))? << 6
                    | cont(line.get(i + 3))?,
                4,
            ),
            _ => return None,
        };
        // char::from_u32 refuses surrogates and values past U+10FFFF, as Jackson does.
        out.push(char::from_u32(cp)?);
        i += len;
    }
    Some(out.into_bytes())
}

/// Rewrites single-quoted strings (outside double-quoted ones) as double-quoted strings.
fn single_quotes_to_double(line: &[u8]) -> Option<Vec<u8>> {
    if !line.contains(&b'\'') {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() + 8);
    let (mut in_double, mut changed) = (false, false);
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if in_double {
            out.push(b);
            if b == b'\\' && i + 1 < line.len() {
                out.push(line[i + 1]);
                i += 2;
                continue;
            }
            if b == b'"' {
                in_double = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_double = true;
                out.push(b);
                i += 1;
            }
            b'\'' => {
                changed = true;
                out.push(b'"');
                i += 1;
                while i < line.len() && line[i] != b'\'' {
                    match line[i] {
                        b'\\' if line.get(i + 1) == Some(&b'\'') => {
                            out.push(b'\'');
                            i += 2;
                        }
                        b'\\' if i + 1 < line.len() => {
                            out.extend_from_slice(&line[i..i + 2]);
                            i += 2;
                        }
                        b'"' => {
                            out.extend_from_slice(b"\\\"");
                            i += 1;
                        }
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                if i >= line.len() {
                    return None; // unterminated: leave the line as it was
                }
                out.push(b'"');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// Where the top-level object of a line ends (the index after its closing brace), if the line
/// starts with one that closes.
pub(crate) fn top_level_object_end(line: &[u8]) -> Option<usize> {
    let start = line.iter().position(|b| !b.is_ascii_whitespace())?;
    if line[start] != b'{' {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in line.iter().enumerate().skip(start) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Rewrites every `\uXXXX` escape of an unpaired UTF-16 surrogate as `?`. Returns None when
/// there is none (the parse failed for another reason).
pub(crate) fn replace_lone_surrogates(line: &[u8]) -> Option<Vec<u8>> {
    fn hex4(b: &[u8]) -> Option<u16> {
        let s = std::str::from_utf8(b.get(..4)?).ok()?;
        u16::from_str_radix(s, 16)
            .ok()
            .filter(|_| s.bytes().all(|c| c.is_ascii_hexdigit()))
    }
    let mut out = Vec::with_capacity(line.len());
    let mut changed = false;
    let mut i = 0;
    while i < line.len() {
        if line[i] != b'\\' || i + 1 >= line.len() {
            out.push(line[i]);
            i += 1;
            continue;
        }
        if line[i + 1] != b'u' {
            out.extend_from_slice(&line[i..i + 2]);
            i += 2;
            continue;
        }
        match hex4(&line[i + 2..]) {
            Some(hi @ 0xD800..=0xDBFF) => {
                let low = (line.get(i + 6) == Some(&b'\\') && line.get(i + 7) == Some(&b'u'))
                    .then(|| hex4(&line[i + 8..]))
                    .flatten()
                    .filter(|c| (0xDC00..=0xDFFF).contains(c));
                if low.is_some() {
                    out.extend_from_slice(&line[i..i + 12]);
                    i += 12;
                } else {
                    let _ = hi;
                    out.push(b'?');
                    changed = true;
                    i += 6;
                }
            }
            Some(0xDC00..=0xDFFF) => {
                out.push(b'?');
                changed = true;
                i += 6;
            }
            _ => {
                out.extend_from_slice(&line[i..i + 2]);
                i += 2;
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(s: &[u8]) -> Option<String> {
        repair(s).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn lone_surrogate_escapes_become_question_marks() {
        let r =
            |s: &str| replace_lone_surrogates(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            r(r#"{"t":"a\ud83db \udcca \ud83d\udc49 \\ud83d"}"#).unwrap(),
            r#"{"t":"a?b ? \ud83d\udc49 \\ud83d"}"#
        );
        assert_eq!(r(r#"{"t":"\ud83d\udc49"}"#), None);
    }

    #[test]
    fn text_after_the_root_object_is_cut() {
        assert_eq!(top_level_object_end(br#" {"a":"}\"}"} x"#), Some(13));
        assert_eq!(top_level_object_end(b"[1]"), None);
        assert_eq!(rep(br#"{"a":1} trailing"#).unwrap(), r#"{"a":1}"#);
        assert_eq!(rep(br#"{"a":1}  "#), None);
    }

    #[test]
    fn utf8_as_jackson_decodes_it() {
        // overlong '/' (0xC0 0xAF) and overlong 'A' in three bytes
        assert_eq!(
            rep(b"{\"t\":\"a\xc0\xafb \xe0\x81\x81\"}").unwrap(),
            "{\"t\":\"a/b A\"}"
        );
        // invalid start byte, invalid continuation, a surrogate encoded in UTF-8 (0xED 0xA0
        // 0x80): Spark rejects these too
        assert_eq!(rep(b"{\"t\":\"\xed\xa0\x80\"}"), None);
        assert_eq!(rep(b"{\"t\":\"\xff\"}"), None);
        assert_eq!(rep(b"{\"t\":\"\xc3\x28\"}"), None);
    }

    #[test]
    fn single_quoted_strings_are_read() {
        assert_eq!(
            rep(br##"{'text':'it\'s "#a"','n':1,"d":"don't"}"##).unwrap(),
            r##"{"text":"it's \"#a\"","n":1,"d":"don't"}"##
        );
        assert_eq!(rep(br#"{'text':'unterminated}"#), None);
    }
}
