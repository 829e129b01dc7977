//! A validating single-pass scanner for the common case: a well-formed JSON object whose
//! top-level `text` and `created_at` are strings. It checks the whole line against the JSON
//! grammar (RFC 8259) without building anything for the values it does not need, so a
//! truncated or garbled line is still rejected as a whole, and extracts `text`, `created_at`
//! and `id`.
//!
//! It decides only what it is sure of: anything unusual (invalid JSON, a lone surrogate, a
//! `text` that is not a string, an escaped top-level key, a non-integer `id`, deep nesting)
//! returns `None` and the line takes the full simd-json path with Spark's leniencies, which
//! gives the exact reason. Tests compare both paths on real and mutated tweets.

/// The fields of an accepted line. Strings are borrowed from the line when they have no
/// escape, or decoded into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Str {
    /// Byte range in the line.
    Raw(usize, usize),
    /// Byte range in the decode buffer.
    Decoded(usize, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub text: Str,
    pub created_at: Option<Str>,
    pub id: Option<u64>,
}

/// Deepest nesting handled here (one bit per level); deeper lines go to the full parser.
const MAX_DEPTH: usize = 128;

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// A string starting at `self.i` (on its opening quote). Returns its content's range and
    /// whether it has escapes; validates escapes and rejects control characters.
    #[inline]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        debug_assert_eq!(self.s[self.i], b'"');
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            let k = find_special(self.s, j)?;
            if self.s[k] < 0x20 {
                return None;
            }
            if self.s[k] == b'"' {
                self.i = k + 1;
                return Some((start, k, escaped));
            }
            escaped = true;
            match *self.s.get(k + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j = k + 2,
                b'u' => {
                    let hex = self.s.get(k + 2..k + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    j = k + 6;
                }
                _ => return None,
            }
        }
    }

    /// A number; returns its range.
    #[inline]
    fn number(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        let s = self.s;
        let mut i = self.i;
        if s.get(i) == Some(&b'-') {
            i += 1;
        }
        match s.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while s.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            let d = i;
            while s.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == d {
                return None;
            }
        }
        if matches!(s.get(i), Some(b'e' | b'E')) {
            // Valid JSON, but simd-json refuses exponents out of f64's range: such numbers
            // (rare in posts) take the full path, which decides as it always did.
            return None;
        }
        self.i = i;
        Some((start, i))
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Any value; nested containers are validated with an explicit stack.
    fn skip_value(&mut self) -> Option<()> {
        // Open containers, one bit per level: 1 for an object, 0 for an array.
        let mut stack: u128 = 0;
        let mut depth = 0usize;
        loop {
            // A value.
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek()? == b'}' {
                        self.i += 1;
                    } else {
                        if depth == MAX_DEPTH {
                            return None;
                        }
                        stack |= 1 << depth;
                        depth += 1;
                        self.key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek()? == b']' {
                        self.i += 1;
                    } else {
                        if depth == MAX_DEPTH {
                            return None;
                        }
                        stack &= !(1 << depth);
                        depth += 1;
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => {
                    self.number()?;
                }
            }
            // After a value: close containers or go to the next element.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let is_object = stack & (1 << (depth - 1)) != 0;
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if is_object {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    b'}' if is_object => {
                        self.i += 1;
                        depth -= 1;
                    }
                    b']' if !is_object => {
                        self.i += 1;
                        depth -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// `"key" :` inside an object (whitespace before the key already skipped).
    #[inline]
    fn key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.string()?;
        self.ws();
        if self.peek()? != b':' {
            return None;
        }
        self.i += 1;
        Some(())
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The first byte at or after `j` that ends a plain run of string content: a quote, a
/// backslash or a control character (invalid in a string). Eight bytes at a time: strings are
/// most of a post's bytes, and most are short, where a SIMD search costs more to set up.
#[inline]
fn find_special(s: &[u8], mut j: usize) -> Option<usize> {
    while j + 8 <= s.len() {
        let v = u64::from_le_bytes(s[j..j + 8].try_into().unwrap());
        let q = v ^ (LO * u64::from(b'"'));
        let b = v ^ (LO * u64::from(b'\\'));
        // Per mask the lowest flagged byte is exact (borrows only flag bytes above a hit).
        let m = ((q.wrapping_sub(LO) & !q)
            | (b.wrapping_sub(LO) & !b)
            | (v.wrapping_sub(LO * 0x20) & !v))
            & HI;
        if m != 0 {
            return Some(j + (m.trailing_zeros() / 8) as usize);
        }
        j += 8;
    }
    s[j..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|k| j + k)
}

/// Does `bytes` hold a byte below 0x20 (not allowed unescaped in a JSON string)?
#[cfg(test)]
fn has_control(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes(c.try_into().unwrap());
        // A byte b < 0x20 iff (b - 0x20) borrows into its high bit while b's high bit is 0.
        if (v.wrapping_sub(LO * 0x20) & !v & HI) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20)
}

/// Decodes the escapes of a JSON string's content into `out`; `None` for a lone surrogate
/// (the full parser's lenient path decides those).
fn unescape(raw: &[u8], out: &mut String) -> Option<()> {
    let mut i = 0;
    while i < raw.len() {
        let Some(k) = memchr::memchr(b'\\', &raw[i..]).map(|k| i + k) else {
            out.push_str(std::str::from_utf8(&raw[i..]).ok()?);
            break;
        };
        out.push_str(std::str::from_utf8(&raw[i..k]).ok()?);
        let c = match raw[k + 1] {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => {
                let hi = hex4(&raw[k + 2..k + 6])?;
                i = k + 6;
                let c = if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return None;
                    }
                    let lo = hex4(raw.get(i + 2..i + 6)?)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(hi)?
                };
                out.push(c);
                continue;
            }
        };
        out.push(c);
        i = k + 2;
    }
    Some(())
}

fn hex4(h: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Scans one line (no newline). `None`: let the full parser decide.
pub fn scan(line: &[u8], decoded: &mut String) -> Option<Fields> {
    // One UTF-8 check for the whole line (std's has an ASCII fast path).
    std::str::from_utf8(line).ok()?;
    decoded.clear();
    let mut sc = Scanner { s: line, i: 0 };
    sc.ws();
    if sc.peek()? != b'{' {
        return None;
    }
    sc.i += 1;
    let (mut text, mut created, mut id): (Option<(usize, usize, bool)>, _, Option<(usize, usize)>) =
        (None, None, None);
    let mut id_seen = false;
    sc.ws();
    if sc.peek()? == b'}' {
        return None; // no text: the full parser names the reason
    }
    loop {
        sc.ws();
        if sc.peek()? != b'"' {
            return None;
        }
        let (ks, ke, kesc) = sc.string()?;
        if kesc {
            return None;
        }
        sc.ws();
        if sc.peek()? != b':' {
            return None;
        }
        sc.i += 1;
        sc.ws();
        let key = &line[ks..ke];
        let want = matches!(key, b"text" | b"created_at" | b"id");
        if want {
            let first = sc.peek()?;
            match (key, first) {
                (b"text", b'"') => text = Some(sc.string()?),
                (b"created_at", b'"') => created = Some(sc.string()?),
                (b"id", b'0'..=b'9') => {
                    let (s, e) = sc.number()?;
                    id = Some((s, e));
                    id_seen = true;
                }
                // Null, numbers, objects in those places: the full parser's business.
                _ => return None,
            }
        } else {
            sc.skip_value()?;
        }
        sc.ws();
        match sc.peek()? {
            b',' => sc.i += 1,
            b'}' => {
                sc.i += 1;
                break;
            }
            _ => return None,
        }
    }
    sc.ws();
    if sc.i != line.len() {
        return None; // trailing text: Spark's leniency, decided by the full path
    }
    let mut field = |(s, e, esc): (usize, usize, bool)| -> Option<Str> {
        if !esc {
            return Some(Str::Raw(s, e));
        }
        let from = decoded.len();
        unescape(&line[s..e], decoded)?;
        Some(Str::Decoded(from, decoded.len()))
    };
    let text = field(text?)?;
    let created_at = match created {
        Some(c) => Some(field(c)?),
        None => None,
    };
    let id = match id {
        Some((s, e)) => {
            let digits = std::str::from_utf8(&line[s..e]).ok()?;
            // Integers only; fractions, exponents and overflow take the full path.
            Some(digits.parse::<u64>().ok()?)
        }
        None => {
            debug_assert!(!id_seen);
            None
        }
    };
    Some(Fields {
        text,
        created_at,
        id,
    })
}

/// The string a [`Str`] designates.
pub fn get<'a>(line: &'a [u8], decoded: &'a str, s: Str) -> &'a str {
    match s {
        // Validated as UTF-8 by `scan`, and string contents end on character boundaries.
        Str::Raw(a, b) => std::str::from_utf8(&line[a..b]).unwrap_or(""),
        Str::Decoded(a, b) => &decoded[a..b],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Option<(String, Option<String>, Option<u64>)> {
        let mut buf = String::new();
        let f = scan(line.as_bytes(), &mut buf)?;
        Some((
            get(line.as_bytes(), &buf, f.text).to_string(),
            f.created_at
                .map(|c| get(line.as_bytes(), &buf, c).to_string()),
            f.id,
        ))
    }

    #[test]
    fn extracts_top_level_fields_only() {
        let l = r#"{"id":7,"user":{"text":"nested","id":9},"text":"a \"b\" \u00e9\ud83d\ude00","created_at":"Thu"}"#;
        assert_eq!(
            fields(l),
            Some(("a \"b\" é😀".into(), Some("Thu".into()), Some(7)))
        );
        // Last of duplicated keys wins, as in the full parser.
        let l = r#"{"text":"one","text":"two"}"#;
        assert_eq!(fields(l).unwrap().0, "two");
    }

    #[test]
    fn declines_what_it_is_not_sure_of() {
        for l in [
            r#"{"text":"a""#,            // truncated
            r#"{"text":"a"} x"#,         // trailing text
            r#"{"text":"a\ud83d"}"#,     // lone surrogate
            r#"{"text":12}"#,            // non-string text
            r#"{"text":null}"#,          // null text
            r#"{"delete":{}}"#,          // no text
            r#"{"te\u0078t":"a"}"#,      // escaped key
            r#"{"text":"a","id":1.5}"#,  // non-integer id
            r#"{"text":"a","x":[1,2,}"#, // bad array
            r#"{"text":"a","x":01}"#,    // bad number
            r#"{"text":"a","x":tru}"#,   // bad literal
            "{\"text\":\"a\tb\"}",       // raw control character
            r#"{"text":"a","x":"\q"}"#,  // bad escape
            r#"["text"]"#,               // not an object
            r#"{'text':'a'}"#,           // single quotes
        ] {
            assert_eq!(fields(l), None, "{l}");
        }
        assert_eq!(scan(b"{\"text\":\"\xc3\"}", &mut String::new()), None);
    }

    #[test]
    fn special_bytes_are_found_first_in_every_position() {
        for n in 1..40 {
            for at in 0..n {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut v = vec![b'a'; n];
                    v[at] = special;
                    // A second special byte later never hides the first.
                    if at + 3 < n {
                        v[at + 3] = b'"';
                    }
                    assert_eq!(find_special(&v, 0), Some(at), "{v:?}");
                }
                let mut v = vec![0xffu8; n];
                v[at] = b'!';
                assert_eq!(find_special(&v, 0), None);
            }
        }
    }

    #[test]
    fn control_bytes_are_found_in_every_position() {
        for n in 0..20 {
            for at in 0..n {
                let mut v = vec![b'a'; n];
                v[at] = 0x1f;
                assert!(has_control(&v));
                v[at] = 0x20;
                assert!(!has_control(&v));
                v[at] = 0xff;
                assert!(!has_control(&v));
            }
        }
    }
}
