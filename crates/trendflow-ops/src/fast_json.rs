//! A validating single pass over a Twitter v1.1 status for pipelines that need only its
//! `text`, `created_at` and id (the tutorial's). The whole line is checked against the JSON
//! grammar (RFC 8259), UTF-8 included, so a truncated or garbled line is still rejected as a
//! whole, as Spark rejects it; but nothing is built for the ~150 values a status carries that
//! the pipeline does not read. That is ~1.5x faster than simd-json's tape on the same lines
//! (docs/performance.md, issue 5 session 8).
//!
//! It decides only what it is sure of. Anything unusual (invalid JSON, a lone surrogate, a
//! `text` or `created_at` that is not a string, an unparsable date, an escaped top-level key,
//! a non-integer `id`, an exponent, deep nesting, no AVX2) returns `None`, and the line takes
//! the full simd-json path with Spark's leniencies, which gives the exact outcome and reason.
//! Tests hold both paths to the same outcome on real and mutated lines.

/// Where a string of an accepted line is: in the line when it has no escape, else decoded
/// into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Str {
    /// Byte range in the line.
    Raw(usize, usize),
    /// Byte range in the decode buffer.
    Decoded(usize, usize),
}

/// The top-level fields of an accepted line (for a key given twice, its last value),
/// borrowed from the line or from the decode buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    pub text: &'a str,
    pub created_at: &'a str,
    /// `id_str`, else the digits of `id` (a u64), else none.
    pub id: Option<&'a str>,
}

/// Deepest nesting handled here (one bit per level); deeper lines go to the full parser.
const MAX_DEPTH: usize = 128;

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    /// JSON's whitespace except the newline: in a line-delimited input a newline ends the
    /// line, so [`scan_to_newline`] stops there instead of reading on into the next one (a
    /// line handed over whole has none).
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if c == b' ' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// A string starting at `self.i` (on its opening quote). Returns its content's range and
    /// whether it has escapes; validates escapes and rejects control characters.
    #[inline(always)]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        let s = self.s;
        let start = self.i + 1;
        let mut j = start;
        let mut escaped = false;
        loop {
            match block(s, j) {
                Block::Plain => {
                    j += 32;
                    continue;
                }
                Block::Through => {
                    escaped = true;
                    j += 32;
                    continue;
                }
                Block::End(k, esc) => {
                    self.i = j + k + 1;
                    return Some((start, j + k, escaped || esc));
                }
                Block::Invalid => return None,
                Block::Scalar => {}
            }
            let (mut m, width) = specials(s, j);
            while m != 0 {
                let k = j + m.trailing_zeros() as usize;
                let c = s[k];
                if c == b'"' {
                    self.i = k + 1;
                    return Some((start, k, escaped));
                }
                if c < 0x20 {
                    return None;
                }
                escaped = true;
                let next = match *s.get(k + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => k + 2,
                    b'u' => match hex4(s.get(k + 2..k + 6)?)? {
                        // A surrogate must be a high one followed by a low one: simd-json
                        // rejects a lone one (and Spark's leniency repairs it, counted).
                        0xD800..=0xDBFF => {
                            if s.get(k + 6..k + 8)? != b"\\u"
                                || !(0xDC00..=0xDFFF).contains(&hex4(s.get(k + 8..k + 12)?)?)
                            {
                                return None;
                            }
                            k + 12
                        }
                        0xDC00..=0xDFFF => return None,
                        _ => k + 6,
                    },
                    _ => return None,
                };
                let skip = next - j;
                if skip >= width {
                    j = next;
                    m = u64::MAX; // marker: reload
                    break;
                }
                m &= !((1u64 << skip) - 1);
            }
            if m == u64::MAX {
                continue;
            }
            j += width;
            if j >= s.len() {
                return None;
            }
        }
    }

    /// A number; returns its range.
    #[inline(always)]
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

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Any value; nested containers are validated with an explicit stack.
    #[inline(always)]
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
    #[inline(always)]
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

/// What the 32 bytes of a string's content from `j` hold, decided at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// No quote, backslash or control character: the string goes on.
    Plain,
    /// Only valid escapes (no quote that ends the string): the string goes on.
    Through,
    /// The string ends at byte `j + .0`; `.1`: it has escapes before.
    End(usize, bool),
    /// A control character or an invalid escape before the string's end.
    Invalid,
    /// Not decided here (fewer than 32 bytes left, `\\`, an escape cut by the block's end,
    /// a `\uD...` that may be a surrogate): the byte-by-byte rules decide.
    Scalar,
}

/// Classifies the 32 bytes of a string's content from `j` with a few vector compares. The
/// common escapes of posts (`\/` in every URL, `\u00e9` in French text: ~64 a status) are
/// validated all at once instead of one at a time: a backslash starts an escape unless two
/// are adjacent (then `Scalar`), so the escaped bytes are the backslashes shifted by one.
#[inline(always)]
fn block(s: &[u8], j: usize) -> Block {
    // Only called where the CPU has AVX2 (see `scan`).
    if j + 32 > s.len() {
        return Block::Scalar;
    }
    #[cfg(target_arch = "x86_64")]
    unsafe {
        use std::arch::x86_64::*;
        let v = _mm256_loadu_si256(s.as_ptr().add(j) as *const __m256i);
        // Macros, not closures: a closure is a function of its own, compiled without AVX2,
        // where the intrinsics become calls (3x slower).
        macro_rules! eq {
            ($c:expr) => {
                _mm256_cmpeq_epi8(v, _mm256_set1_epi8($c as i8))
            };
        }
        macro_rules! mask {
            ($x:expr) => {
                _mm256_movemask_epi8($x) as u32 as u64
            };
        }
        let quotes = eq!(b'"');
        let backslashes = eq!(b'\\');
        let controls = _mm256_cmpeq_epi8(
            _mm256_max_epu8(v, _mm256_set1_epi8(0x1f)),
            _mm256_set1_epi8(0x1f),
        );
        let any = mask!(_mm256_or_si256(
            _mm256_or_si256(quotes, backslashes),
            controls
        ));
        if any == 0 {
            return Block::Plain;
        }
        let bs = mask!(backslashes);
        if bs == 0 {
            let k = any.trailing_zeros() as usize;
            return if s[j + k] == b'"' {
                Block::End(k, false)
            } else {
                Block::Invalid
            };
        }
        if bs & (bs >> 1) != 0 {
            return Block::Scalar;
        }
        // Every backslash starts an escape; the byte after it is escaped.
        let escaped = bs << 1;
        let ends = mask!(quotes) & !escaped;
        // The bytes up to the string's end (the whole block when it does not end here).
        let within = if ends == 0 {
            if bs >> 31 != 0 {
                return Block::Scalar; // the escaped byte is in the next block
            }
            u32::MAX as u64
        } else {
            (1u64 << ends.trailing_zeros()) - 1
        };
        if mask!(controls) & within != 0 {
            return Block::Invalid;
        }
        let simple = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_or_si256(quotes, backslashes),
                _mm256_or_si256(eq!(b'/'), eq!(b'b')),
            ),
            _mm256_or_si256(
                _mm256_or_si256(eq!(b'f'), eq!(b'n')),
                _mm256_or_si256(eq!(b'r'), eq!(b't')),
            ),
        );
        let u = mask!(eq!(b'u')) & escaped & within;
        if escaped & within & !(mask!(simple) | u) != 0 {
            return Block::Invalid;
        }
        if u != 0 {
            // Four hex digits after each `u`, all in this block.
            let hex_digits = u << 1 | u << 2 | u << 3 | u << 4;
            if hex_digits >> 32 != 0 {
                return Block::Scalar;
            }
            let digit = _mm256_sub_epi8(v, _mm256_set1_epi8(b'0' as i8));
            let lower = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            let letter = _mm256_sub_epi8(lower, _mm256_set1_epi8(b'a' as i8));
            let hex = _mm256_or_si256(
                _mm256_cmpeq_epi8(_mm256_min_epu8(digit, _mm256_set1_epi8(9)), digit),
                _mm256_cmpeq_epi8(_mm256_min_epu8(letter, _mm256_set1_epi8(5)), letter),
            );
            if hex_digits & !mask!(hex) != 0 {
                return Block::Invalid;
            }
            // `\uD800`-`\uDFFF`: surrogates must pair; the byte-by-byte rules check that.
            let d = mask!(_mm256_cmpeq_epi8(lower, _mm256_set1_epi8(b'd' as i8)));
            if u << 1 & d != 0 {
                return Block::Scalar;
            }
        }
        if ends == 0 {
            Block::Through
        } else {
            Block::End(ends.trailing_zeros() as usize, bs & within != 0)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    Block::Scalar
}

/// Bit mask of the quotes, backslashes and control characters in the bytes from `j` (32 of
/// them when there are; fewer at the end of the line), and how many bytes it covers.
#[inline(always)]
fn specials(s: &[u8], j: usize) -> (u64, usize) {
    // Only called where the CPU has AVX2 (see `scan`).
    if j + 32 <= s.len() {
        #[cfg(target_arch = "x86_64")]
        unsafe {
            use std::arch::x86_64::*;
            let v = _mm256_loadu_si256(s.as_ptr().add(j) as *const __m256i);
            let q = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8));
            let b = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8));
            let c = _mm256_cmpeq_epi8(
                _mm256_max_epu8(v, _mm256_set1_epi8(0x1f)),
                _mm256_set1_epi8(0x1f),
            );
            let m = _mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(q, b), c)) as u32;
            return (m as u64, 32);
        }
    }
    let end = (j + 32).min(s.len());
    let mut m = 0u64;
    for (n, &c) in s[j..end].iter().enumerate() {
        if c == b'"' || c == b'\\' || c < 0x20 {
            m |= 1 << n;
        }
    }
    (m, end - j)
}

/// Decodes the escapes of a JSON string's content into `out`; `None` for a lone surrogate
/// (the full parser's lenient path decides those).
///
/// `raw` must be valid UTF-8 (a string's content in a line already validated): the runs
/// between escapes are copied without validating them again (std's check of them was 3% of
/// Q2's cycles).
fn unescape(raw: &[u8], out: &mut String) -> Option<()> {
    // SAFETY (both pushes): `raw` is valid UTF-8, and a run is cut at a backslash or right
    // after an escape sequence, both ASCII: on character boundaries, so the run is valid too.
    let push_run = |out: &mut String, run: &[u8]| unsafe {
        out.push_str(std::str::from_utf8_unchecked(run));
    };
    debug_assert!(std::str::from_utf8(raw).is_ok());
    let mut i = 0;
    while i < raw.len() {
        let Some(k) = memchr::memchr(b'\\', &raw[i..]).map(|k| i + k) else {
            push_run(out, &raw[i..]);
            break;
        };
        push_run(out, &raw[i..k]);
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

#[inline(always)]
fn hex4(h: &[u8]) -> Option<u32> {
    let mut n = 0;
    for &c in h {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        n = n << 4 | u32::from(d);
    }
    Some(n)
}

/// Scans one line (no newline). `None`: let the full parser decide.
pub fn scan<'a>(line: &'a [u8], decoded: &'a mut String) -> Option<Fields<'a>> {
    match scan_to_newline(line, decoded)? {
        (fields, end) if end == line.len() => Some(fields),
        // A newline inside: the full parser decides what the line is.
        _ => None,
    }
}

/// Scans the first line of `rest` (the rest of a batch of newline-separated lines) and finds
/// its end on the way: returns the fields and the line's length (the index of its newline,
/// or `rest.len()` for a last line without one). The parser needs no separate search for
/// the newline of a line taken here (that search was ~5% of Q2's cycles). `None`: let the
/// full parser decide, after finding the line's end itself.
pub fn scan_to_newline<'a>(rest: &'a [u8], decoded: &'a mut String) -> Option<(Fields<'a>, usize)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { scan_avx2(rest, decoded) };
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2<'a>(rest: &'a [u8], decoded: &'a mut String) -> Option<(Fields<'a>, usize)> {
    scan_line(rest, decoded)
}

/// A newline is never whitespace to the scanner and is a control character inside a string,
/// so no rule below reads past the first one: the line scanned is `rest[..end]`.
#[inline(always)]
fn scan_line<'a>(rest: &'a [u8], decoded: &'a mut String) -> Option<(Fields<'a>, usize)> {
    decoded.clear();
    let mut sc = Scanner { s: rest, i: 0 };
    sc.ws();
    if sc.peek()? != b'{' {
        return None;
    }
    sc.i += 1;
    let mut text = None;
    let mut created = None;
    let mut id = None;
    let mut id_str = None;
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
        let first = sc.peek()?;
        match (&rest[ks..ke], first) {
            (b"text", b'"') => text = Some(sc.string()?),
            (b"created_at", b'"') => created = Some(sc.string()?),
            (b"id_str", b'"') => id_str = Some(sc.string()?),
            (b"id", b'0'..=b'9') => id = Some(sc.number()?),
            // Another type in those places, or a field that changes what the status gives
            // (`full_text` without `text`): the full parser's business.
            (b"text" | b"created_at" | b"id_str" | b"id" | b"full_text", _) => return None,
            _ => sc.skip_value()?,
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
    let end = sc.i;
    if end != rest.len() && rest[end] != b'\n' {
        return None; // trailing text: Spark's leniency, decided by the full path
    }
    let line = &rest[..end];
    // One UTF-8 check for the whole line (the scan above compared bytes only; nothing is
    // decoded or borrowed as text before this).
    simdutf8::basic::from_utf8(line).ok()?;
    let mut field = |(s, e, esc): (usize, usize, bool)| -> Option<Str> {
        if !esc {
            return Some(Str::Raw(s, e));
        }
        let from = decoded.len();
        unescape(&line[s..e], decoded)?;
        Some(Str::Decoded(from, decoded.len()))
    };
    let text = field(text?)?;
    let created_at = field(created?)?;
    let id = match (id_str, id) {
        (Some(s), _) => Some(field(s)?),
        (None, Some((s, e))) => {
            // The full parser formats the number again: the same digits, if it is a u64.
            std::str::from_utf8(&line[s..e]).ok()?.parse::<u64>().ok()?;
            Some(Str::Raw(s, e))
        }
        (None, None) => None,
    };
    let decoded: &'a str = decoded;
    let get = |s: Str| -> &'a str {
        match s {
            // SAFETY: the whole line was validated as UTF-8 above, and a string's content
            // starts after a quote and ends before one (ASCII): on character boundaries.
            Str::Raw(a, b) => unsafe { std::str::from_utf8_unchecked(&line[a..b]) },
            Str::Decoded(a, b) => &decoded[a..b],
        }
    };
    Some((
        Fields {
            text: get(text),
            created_at: get(created_at),
            id: id.map(get),
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which lines the scanner takes at all (it needs AVX2; without, every line declines).
    fn scans() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::arch::is_x86_feature_detected!("avx2");
        #[allow(unreachable_code)]
        false
    }

    fn fields(line: &str) -> Option<(String, String, Option<String>)> {
        let mut buf = String::new();
        let f = scan(line.as_bytes(), &mut buf)?;
        Some((
            f.text.to_string(),
            f.created_at.to_string(),
            f.id.map(str::to_string),
        ))
    }

    #[test]
    fn extracts_top_level_fields_only() {
        if !scans() {
            return;
        }
        let l = r#"{"id":7,"user":{"text":"nested","id":9},"text":"a \"b\" \u00e9\ud83d\ude00","created_at":"Thu"}"#;
        assert_eq!(
            fields(l),
            Some(("a \"b\" é😀".into(), "Thu".into(), Some("7".into())))
        );
        // `id_str` before `id`, wherever it is; the last of duplicated keys wins, as in the
        // full parser.
        let l = r#"{"id_str":"8","text":"one","id":7,"created_at":"x","text":"two"}"#;
        assert_eq!(
            fields(l),
            Some(("two".into(), "x".into(), Some("8".into())))
        );
        // Long strings with escapes on both sides of the 32-byte blocks, a valid surrogate
        // pair in a field that is skipped.
        let long = format!(
            r#"{{"x":"{}\ud83d\ude00{}\"","created_at":"c","text":"{}\/{}\n"}}"#,
            "a".repeat(29),
            "b".repeat(31),
            "c".repeat(30),
            "d".repeat(33)
        );
        let (text, _, id) = fields(&long).unwrap();
        assert_eq!(text, format!("{}/{}\n", "c".repeat(30), "d".repeat(33)));
        assert_eq!(id, None);
    }

    #[test]
    fn declines_what_it_is_not_sure_of() {
        for l in [
            r#"{"text":"a","created_at":"c""#,                     // truncated
            r#"{"text":"a","created_at":"c"} x"#,                  // trailing text
            r#"{"text":"a\ud83d","created_at":"c"}"#,              // lone surrogate
            r#"{"x":"\udc00","text":"a","created_at":"c"}"#, // lone low surrogate, skipped field
            r#"{"x":"\ud800\u0041","text":"a","created_at":"c"}"#, // high without low
            r#"{"text":12,"created_at":"c"}"#,               // non-string text
            r#"{"text":null,"created_at":"c"}"#,             // null text
            r#"{"text":"a","created_at":null}"#,             // null time
            r#"{"text":"a"}"#,                               // no time
            r#"{"delete":{}}"#,                              // no text
            r#"{"te\u0078t":"a","created_at":"c"}"#,         // escaped key
            r#"{"text":"a","created_at":"c","id":1.5}"#,     // non-integer id
            r#"{"text":"a","created_at":"c","id":18446744073709551616}"#, // id beyond u64
            r#"{"text":"a","created_at":"c","id_str":5}"#,   // id_str not a string
            r#"{"text":"a","created_at":"c","full_text":"b"}"#, // full text: full path
            r#"{"text":"a","created_at":"c","x":[1,2,}"#,    // bad array
            r#"{"text":"a","created_at":"c","x":01}"#,       // bad number
            r#"{"text":"a","created_at":"c","x":1e5}"#,      // exponent: simd-json may refuse
            r#"{"text":"a","created_at":"c","x":tru}"#,      // bad literal
            "{\"text\":\"a\tb\",\"created_at\":\"c\"}",      // raw control character
            r#"{"text":"a","created_at":"c","x":"\q"}"#,     // bad escape
            r#"["text"]"#,                                   // not an object
            r#"{'text':'a','created_at':'c'}"#,              // single quotes
        ] {
            assert_eq!(fields(l), None, "{l}");
        }
        assert_eq!(
            scan(
                b"{\"text\":\"\xc3\",\"created_at\":\"c\"}",
                &mut String::new()
            ),
            None
        );
    }

    #[test]
    fn a_line_ends_at_its_newline() {
        if !scans() {
            return;
        }
        let ends = |rest: &str| {
            scan_to_newline(rest.as_bytes(), &mut String::new())
                .map(|(f, end)| (f.text.to_string(), end))
        };
        let line = r#"{"text":"a","created_at":"c"}"#;
        let n = line.len();
        assert_eq!(ends(line), Some(("a".into(), n)));
        assert_eq!(ends(&format!("{line}\n{line}")), Some(("a".into(), n)));
        assert_eq!(ends(&format!("{line} \r\n")), Some(("a".into(), n + 2)));
        assert_eq!(ends(&format!("{line}\nnot json")), Some(("a".into(), n)));
        // A newline before the status's end ends the line there: not a status, whatever
        // follows (the full parser decides; it would not join the two lines either).
        for cut in [1, 8, 9, 12, n - 1] {
            let split = format!("{}\n{}", &line[..cut], &line[cut..]);
            assert_eq!(ends(&split), None, "{split}");
            assert_eq!(scan(split.as_bytes(), &mut String::new()), None, "{split}");
        }
        // Trailing text on the line declines; on the next line it is the next line's.
        assert_eq!(ends(&format!("{line} x\n")), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Strings of plain runs, multi-byte characters and every kind of escape: decoded as
        /// serde_json decodes them, appended to what the buffer held.
        #[test]
        fn unescape_is_serde_json_decoding(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", "bcdefghijklmnopqrstuvwxyz0123456789", "é", "😀", " ",
                r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t",
                r"\u00e9", r"\u2019", r"\ud83d\ude00", r"\u0000",
            ]), 0..40)
        ) {
            let raw: String = parts.concat();
            let expected: String = serde_json::from_str(&format!("\"{raw}\"")).unwrap();
            let mut out = String::from("kept");
            proptest::prop_assert_eq!(unescape(raw.as_bytes(), &mut out), Some(()));
            proptest::prop_assert_eq!(out, format!("kept{expected}"));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// Strings of plain runs, every kind of escape (valid, invalid, cut, surrogates) and
        /// raw quotes and control characters, at every alignment to the 32-byte blocks: the
        /// scanner accepts what serde_json accepts, ends the string where it ends, and says
        /// whether it has escapes.
        #[test]
        fn strings_end_and_fail_as_serde_json_says(
            pad in 0usize..40,
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", "bcdefghijklmnopqrstuvwxyz0123456789", "é", "😀", " ", "\"", "\u{1}",
                r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t", r"\q", r"\",
                r"\u00e9", r"\u2019", r"\uD83D\uDE00", r"\ud83d", r"\ude00", r"\u12",
                r"\u00G0", r"\uDAAA", r"\udc00\ud800", r"\\\/",
            ]), 0..24),
        ) {
            if !scans() {
                return Ok(());
            }
            let content: String = "x".repeat(pad) + &parts.concat();
            let input = format!("\"{content}\"{}", " ".repeat(40));
            let mut sc = Scanner { s: input.as_bytes(), i: 0 };
            let ours = sc.string();
            let mut stream = serde_json::Deserializer::from_str(&input).into_iter::<String>();
            let theirs = match stream.next() {
                Some(Ok(_)) => {
                    let end = stream.byte_offset() - 1;
                    Some((1, end, input[1..end].contains('\\')))
                }
                _ => None,
            };
            proptest::prop_assert_eq!(ours, theirs, "{}", input);
            if ours.is_some() {
                proptest::prop_assert_eq!(sc.i, ours.unwrap().1 + 1);
            }
        }
    }

    #[test]
    fn special_bytes_are_found_in_every_position() {
        if !scans() {
            return;
        }
        for n in 1..70 {
            for at in 0..n {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut v = vec![b'a'; n];
                    v[at] = special;
                    let (mask, width) = specials(&v, 0);
                    if at < width {
                        assert_eq!(mask, 1 << at, "{v:?}");
                    } else {
                        assert_eq!(mask, 0);
                    }
                    assert_eq!(width, n.min(32));
                }
                let mut v = vec![0xffu8; n];
                v[at] = b' ';
                assert_eq!(specials(&v, 0).0, 0);
            }
        }
    }
}
