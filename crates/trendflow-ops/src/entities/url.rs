//! URLs, as twitter-text's `extractUrlsWithIndices` (Ruby, regex `valid_url`) finds them.
//!
//! The regex, in parts:
//!
//! ```text
//! before   = [^A-Z0-9@＠$#＃\uFFFE\uFEFF\uFFFF] | ^          (consumed)
//! protocol = https?://                                       (optional)
//! domain   = subdomain* domain_name tld
//!            subdomain   = label of D, '_', '-' (D at both ends) '.'
//!            domain_name = label of D, '-'      (D at both ends) '.'
//!            tld         = a known TLD not followed by [0-9a-z@+-] | xn--[0-9a-z]+
//!            D           = anything but ASCII punctuation, space, controls,
//!                          Unicode spaces, directional marks, U+FFFE/FEFF/FFFF
//! port     = (:[0-9]+)?
//! path     = (/ (G | balanced parens)* ending in E or parens)?
//! query    = (\? Q* QE)?
//! ```
//!
//! A match without protocol is kept only if `before` is not one of `-_./`, and only its
//! ASCII host parts count (`valid_ascii_domain`, scanned inside the matched host: in
//! `日本語example.com` the URL is `example.com`). A `t.co` URL stops after its slug (and
//! query), and a slug over 40 characters disqualifies it. The host must pass IDNA
//! `ToASCII`, and the URL must fit in 4096 characters.
//!
//! The scan tries each position in turn, as a regex scan does, and continues after each
//! match, kept or not; positions too far before the next dot to start a match are skipped.

use super::{
    Entity, EntityKind, char_at, char_before, is_directional, is_invalid_char, is_latin_accent,
    is_unicode_space, tlds, unicode_tables,
};

const MAX_URL_LENGTH: usize = 4096;
const MAX_TCO_SLUG_LENGTH: usize = 40;
/// Labels looked at per host (DNS allows 127; real hosts have a handful): a longer chain
/// is cut there, and its host ends at the last of these labels at the latest.
const MAX_LABELS: usize = 32;

/// twitter-text's `extractUrlsWithIndices`: appends the URLs of `text`.
pub(super) fn scan_urls(text: &str, out: &mut Vec<Entity>) {
    let bytes = text.as_bytes();
    if memchr::memchr(b'.', bytes).is_none() {
        return;
    }
    let mut runs = RunCache::default();
    let mut p = 0;
    let mut from = 0;
    // A match's host starts with a run of label characters that ends at a dot, and the
    // match starts at most a protocol and a preceding character before that run: only
    // the positions just before each dot can start one.
    while let Some(off) = memchr::memchr(b'.', &bytes[from..]) {
        let dot = from + off;
        from = dot + 1;
        let run = label_run_start(text, dot);
        if run == dot {
            continue;
        }
        let mut window = run.saturating_sub("https://".len() + 4);
        while !text.is_char_boundary(window) {
            window += 1;
        }
        p = p.max(window);
        while p < dot {
            // Past the start, a match needs a preceding character, never an ASCII letter
            // or digit: skip those bytes without decoding.
            if p > 0 && bytes[p].is_ascii_alphanumeric() {
                p += 1;
                continue;
            }
            match match_at(text, p, &mut runs) {
                Some(m) => {
                    accept(text, &m, out);
                    p = m.end;
                }
                None => p += utf8_len(bytes[p]),
            }
        }
        from = from.max(p);
    }
}

/// One match of the regex.
struct UrlMatch {
    /// The consumed character before the URL (`None` at the start of the text).
    before: Option<char>,
    start: usize,
    has_protocol: bool,
    domain_start: usize,
    domain_end: usize,
    has_path: bool,
    end: usize,
}

/// The regex tried at `p`: a preceding character then the URL, or the URL at the start.
fn match_at(text: &str, p: usize, runs: &mut RunCache) -> Option<UrlMatch> {
    let c = char_at(text, p)?;
    if is_url_preceding(c)
        && let Some(mut m) = url_at(text, p + c.len_utf8(), runs)
    {
        m.before = Some(c);
        return Some(m);
    }
    if p == 0 {
        return url_at(text, 0, runs);
    }
    None
}

/// `[^A-Z0-9@＠$#＃\uFFFE\uFEFF\uFFFF]` (case-insensitive; directional marks included).
fn is_url_preceding(c: char) -> bool {
    !(c.is_ascii_alphanumeric() || matches!(c, '@' | '＠' | '$' | '#' | '＃') || is_invalid_char(c))
}

fn url_at(text: &str, u: usize, runs: &mut RunCache) -> Option<UrlMatch> {
    let bytes = text.as_bytes();
    let rest = &bytes[u..];
    let protocol = if starts_with_ignore_case(rest, b"https://") {
        8
    } else if starts_with_ignore_case(rest, b"http://") {
        7
    } else {
        0
    };
    if protocol > 0
        && let Some(m) = url_parts(text, u, u + protocol, runs)
    {
        return Some(m);
    }
    url_parts(text, u, u, runs)
}

fn url_parts(text: &str, start: usize, d: usize, runs: &mut RunCache) -> Option<UrlMatch> {
    let bytes = text.as_bytes();
    let domain_end = domain_at(text, d, runs)?;
    let mut i = domain_end;
    if bytes.get(i) == Some(&b':') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let has_path = bytes.get(i) == Some(&b'/');
    if has_path {
        i = path_end(text, i + 1);
    }
    if bytes.get(i) == Some(&b'?')
        && let Some(q) = query_end(bytes, i + 1, bytes.len())
    {
        i = q;
    }
    Some(UrlMatch {
        before: None,
        start,
        has_protocol: d > start,
        domain_start: d,
        domain_end,
        has_path,
        end: i,
    })
}

/// twitter-text's post-processing of a match: protocol-less URLs keep only their ASCII
/// hosts, `t.co` URLs lose what follows their slug, hosts must pass IDNA.
fn accept(text: &str, m: &UrlMatch, out: &mut Vec<Entity>) {
    let url_chars = text[m.start..m.end].chars().count();
    if m.has_protocol {
        let mut end = m.end;
        if let Some(tco_end) = tco_end(text.as_bytes(), m.start, m.end) {
            match tco_end {
                Some(e) => end = e,
                None => return, // slug too long
            }
        }
        let url_chars = text[m.start..end].chars().count();
        let domain = &text[m.domain_start..m.domain_end];
        if valid_host_and_length(url_chars, domain, true) {
            out.push(Entity {
                kind: EntityKind::Url,
                start: m.start,
                end,
            });
        }
        return;
    }
    if matches!(m.before, Some('-' | '_' | '.' | '/')) {
        return;
    }
    let bytes = text.as_bytes();
    let mut last: Option<usize> = None;
    let mut q = m.domain_start;
    while q < m.domain_end {
        match ascii_domain_at(text, q, m.domain_end) {
            Some(end) => {
                if valid_host_and_length(url_chars, &text[q..end], false) {
                    out.push(Entity {
                        kind: EntityKind::Url,
                        start: q,
                        end,
                    });
                    last = Some(out.len() - 1);
                }
                q = end;
            }
            None => q += utf8_len(bytes[q]),
        }
    }
    if let Some(last) = last
        && m.has_path
    {
        out[last].end = m.end;
    }
}

// ---------------------------------------------------------------------------------------
// Host names
// ---------------------------------------------------------------------------------------

/// `D`: a character of a host label.
fn is_domain_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    !(is_unicode_space(c) || is_directional(c) || is_invalid_char(c))
}

/// Remembers the end of the last run of label characters, so that trying every position
/// of a long run costs one scan of it.
#[derive(Default)]
struct RunCache {
    from: usize,
    end: usize,
}

impl RunCache {
    /// The end of the run of label characters from `i`, the first label of a host.
    fn run_end(&mut self, text: &str, i: usize) -> usize {
        if self.from <= i && i < self.end {
            return self.end;
        }
        let end = label_run_end(text, i);
        if end > i {
            *self = RunCache { from: i, end };
        }
        end
    }
}

/// The start of the run of label characters (`D`, `_`, `-`) that ends at `i`.
fn label_run_start(text: &str, i: usize) -> usize {
    let bytes = text.as_bytes();
    let mut start = i;
    while start > 0 {
        let b = bytes[start - 1];
        if b < 0x80 {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                break;
            }
            start -= 1;
        } else {
            match char_before(text, start) {
                Some((c, s)) if is_domain_char(c) => start = s,
                _ => break,
            }
        }
    }
    start
}

/// The end of the run of label characters (`D`, `_`, `-`) from `i`.
fn label_run_end(text: &str, i: usize) -> usize {
    let bytes = text.as_bytes();
    let mut end = i;
    while end < bytes.len() {
        let b = bytes[end];
        if b < 0x80 {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                break;
            }
            end += 1;
        } else {
            match char_at(text, end) {
                Some(c) if is_domain_char(c) => end += c.len_utf8(),
                _ => break,
            }
        }
    }
    end
}

/// `subdomain* domain_name tld` at `d`: the end of the host.
///
/// Labels are runs of label characters separated by dots. The regex takes as many
/// subdomains as it can and backtracks: the host is the longest chain of valid labels
/// whose next label starts with a TLD.
fn domain_at(text: &str, d: usize, runs: &mut RunCache) -> Option<usize> {
    let bytes = text.as_bytes();
    // Most positions fail here, before any table is set up.
    let first_end = runs.run_end(text, d);
    if first_end == d || bytes.get(first_end) != Some(&b'.') {
        return None;
    }
    let mut labels = [(0usize, 0usize); MAX_LABELS];
    let mut n = 0; // labels followed by a dot
    let mut i = d;
    loop {
        let end = if n == 0 {
            first_end
        } else {
            label_run_end(text, i)
        };
        if end == i || bytes.get(end) != Some(&b'.') {
            break;
        }
        labels[n] = (i, end);
        n += 1;
        i = end + 1;
        if n == MAX_LABELS {
            break;
        }
    }
    if n == 0 {
        return None;
    }
    let edges_ok = |(s, e): (usize, usize)| {
        !matches!(bytes[s], b'-' | b'_') && !matches!(bytes[e - 1], b'-' | b'_')
    };
    let mut subdomains = 0;
    while subdomains < n - 1 && edges_ok(labels[subdomains]) {
        subdomains += 1;
    }
    for k in (0..=subdomains).rev() {
        let (s, e) = labels[k];
        if !edges_ok((s, e)) || bytes[s..e].contains(&b'_') {
            continue;
        }
        if let Some(end) = tld_at(text, e + 1, bytes.len()) {
            return Some(end);
        }
    }
    None
}

/// A TLD at `t` (ending at or before `limit`): the longest known one not followed by
/// `[0-9a-zA-Z@+-]`, else `xn--` and ASCII letters or digits.
fn tld_at(text: &str, t: usize, limit: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    // Fast path, an ASCII TLD followed by ASCII: inside a run of letters the next
    // character is a letter, so only the whole run can be followed by a boundary.
    let letters = bytes[t..limit]
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    if letters > 0 && bytes.get(t + letters).is_none_or(|b| b.is_ascii()) {
        let end = t + letters;
        let boundary = end >= limit
            || !matches!(bytes[end], b'0'..=b'9' | b'@' | b'+' | b'-' | b'a'..=b'z' | b'A'..=b'Z');
        if boundary && letters <= tlds::MAX_TLD_CHARS {
            let mut buf = [0u8; tlds::MAX_TLD_CHARS];
            for (d, s) in buf.iter_mut().zip(&bytes[t..end]) {
                *d = s.to_ascii_lowercase();
            }
            if is_tld(&buf[..letters]) {
                return Some(end);
            }
        }
        return punycode_tld_at(bytes, t, limit);
    }
    // Lower-cased candidate and the byte ends (in `text`) of its first 1, 2, ... chars.
    let mut buf = [0u8; 4 * tlds::MAX_TLD_CHARS];
    let mut ends = [(0usize, 0usize); tlds::MAX_TLD_CHARS]; // (end in text, end in buf)
    let mut n = 0;
    let mut len = 0;
    for (off, c) in text[t..limit].char_indices() {
        if n == tlds::MAX_TLD_CHARS || (c.is_ascii() && !c.is_ascii_alphabetic()) {
            break;
        }
        let lower = if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        };
        len += lower.encode_utf8(&mut buf[len..]).len();
        ends[n] = (t + off + c.len_utf8(), len);
        n += 1;
    }
    for &(end, blen) in ends[..n].iter().rev() {
        let boundary = end >= limit
            || !matches!(bytes[end], b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'@' | b'+' | b'-');
        if !boundary {
            continue;
        }
        if is_tld(&buf[..blen]) {
            return Some(end);
        }
    }
    punycode_tld_at(bytes, t, limit)
}

/// `xn--[0-9a-z]+` at `t`: its end.
fn punycode_tld_at(bytes: &[u8], t: usize, limit: usize) -> Option<usize> {
    let rest = &bytes[t..limit];
    if !starts_with_ignore_case(rest, b"xn--") {
        return None;
    }
    let run = rest[4..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    (run > 0).then_some(t + 4 + run)
}

/// The first 16 bytes of `s`, big-endian, zero-padded: ordered as the strings are (no
/// TLD holds a NUL byte), and compared in one instruction.
const fn tld_key(s: &[u8]) -> u128 {
    let mut key = 0u128;
    let mut i = 0;
    while i < 16 {
        key <<= 8;
        if i < s.len() {
            key |= s[i] as u128;
        }
        i += 1;
    }
    key
}

/// [`tld_key`] of each entry of [`tlds::TLDS`], in the same (sorted) order.
static TLD_KEYS: [u128; tlds::TLDS.len()] = {
    let mut keys = [0u128; tlds::TLDS.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = tld_key(tlds::TLDS[i].as_bytes());
        i += 1;
    }
    keys
};

/// Whether `candidate` (lower case) is a known TLD.
fn is_tld(candidate: &[u8]) -> bool {
    let key = tld_key(candidate);
    let first = TLD_KEYS.partition_point(|&k| k < key);
    TLD_KEYS[first..]
        .iter()
        .take_while(|&&k| k == key)
        .zip(&tlds::TLDS[first..])
        .any(|(_, tld)| tld.as_bytes() == candidate)
}

/// `valid_ascii_domain` at `q` inside a host ending at `limit`: `([a-z0-9_-]|latin
/// accents)+` labels each followed by a dot, then a TLD (the longest chain that works).
fn ascii_domain_at(text: &str, q: usize, limit: usize) -> Option<usize> {
    let is_ascii_label_char =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || is_latin_accent(c);
    let mut dots = [0usize; MAX_LABELS];
    let mut n = 0;
    let mut i = q;
    while n < MAX_LABELS {
        let mut end = i;
        for c in text[i..limit].chars() {
            if !is_ascii_label_char(c) {
                break;
            }
            end += c.len_utf8();
        }
        if end == i || end >= limit || text.as_bytes()[end] != b'.' {
            break;
        }
        dots[n] = end;
        n += 1;
        i = end + 1;
    }
    dots[..n]
        .iter()
        .rev()
        .find_map(|&dot| tld_at(text, dot + 1, limit))
}

// ---------------------------------------------------------------------------------------
// Path and query
// ---------------------------------------------------------------------------------------

/// `\p{Cyrillic}` (the Cyrillic script's blocks).
fn is_cyrillic(c: char) -> bool {
    matches!(c as u32,
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x1D2B | 0x1D78 | 0x2DE0..=0x2DFF | 0xA640..=0xA69F
            | 0xFE2E | 0xFE2F | 0x1E030..=0x1E08F)
}

/// A character of a path ending (`[a-z\p{Cyrillic}0-9=_#/+\-LATIN_ACCENTS]`).
fn is_path_ending_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '#' | '/' | '+' | '-');
    }
    is_cyrillic(c) || is_latin_accent(c)
}

/// A path character (`[a-z\p{Cyrillic}0-9!*';:=+,.$/%#\[\]\p{Pd}_~&|@LATIN_ACCENTS]`).
fn is_path_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric()
            || matches!(
                c,
                '!' | '*'
                    | '\''
                    | ';'
                    | ':'
                    | '='
                    | '+'
                    | ','
                    | '.'
                    | '$'
                    | '/'
                    | '%'
                    | '#'
                    | '['
                    | ']'
                    | '-'
                    | '_'
                    | '~'
                    | '&'
                    | '|'
                    | '@'
            );
    }
    is_cyrillic(c) || is_latin_accent(c) || super::in_table(unicode_tables::DASH_PUNCTUATION, c)
}

/// The end of the run of path characters from `i`.
fn path_chars_end(text: &str, i: usize) -> usize {
    let mut end = i;
    for c in text[i..].chars() {
        if !is_path_char(c) {
            break;
        }
        end += c.len_utf8();
    }
    end
}

/// Balanced parentheses at `i` (`(` there): `(G+)` or `(G*(G+)G*)`; their end.
fn balanced_parens_end(text: &str, i: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let a = path_chars_end(text, i + 1);
    match bytes.get(a) {
        Some(b')') if a > i + 1 => Some(a + 1),
        Some(b'(') => {
            let b = path_chars_end(text, a + 1);
            if b == a + 1 || bytes.get(b) != Some(&b')') {
                return None;
            }
            let c = path_chars_end(text, b + 1);
            (bytes.get(c) == Some(&b')')).then_some(c + 1)
        }
        _ => None,
    }
}

/// The path after the `/` at `i - 1`: the longest run of path characters and balanced
/// parentheses that ends in a path-ending character or parentheses (so `/foo.` leaves the
/// period out). Its end (`i` if empty).
fn path_end(text: &str, i: usize) -> usize {
    let mut j = i;
    let mut best = i;
    while let Some(c) = char_at(text, j) {
        if is_path_char(c) {
            j += c.len_utf8();
            if is_path_ending_char(c) {
                best = j;
            }
        } else if c == '(' {
            match balanced_parens_end(text, j) {
                Some(e) => {
                    j = e;
                    best = j;
                }
                None => break,
            }
        } else {
            break;
        }
    }
    best
}

/// The query after the `?` at `i - 1`: the longest run of query characters ending in a
/// query-ending character, within `limit`.
fn query_end(bytes: &[u8], i: usize, limit: usize) -> Option<usize> {
    let mut best = None;
    let mut j = i;
    while j < limit {
        let b = bytes[j];
        let ending =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'&' | b'=' | b'#' | b'/');
        let query = ending
            || matches!(
                b,
                b'!' | b'?'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b';'
                    | b':'
                    | b'+'
                    | b'$'
                    | b'%'
                    | b'['
                    | b']'
                    | b'.'
                    | b','
                    | b'~'
                    | b'|'
                    | b'@'
            );
        if !query {
            break;
        }
        j += 1;
        if ending {
            best = Some(j);
        }
    }
    best
}

/// For a `http(s)://t.co/slug` URL in `[start, end)`: `Some(Some(end))`, the end of the
/// slug and its query, or `Some(None)` if the slug is over 40 characters; `None` for
/// other URLs.
fn tco_end(bytes: &[u8], start: usize, end: usize) -> Option<Option<usize>> {
    let url = &bytes[start..end];
    let prefix = if starts_with_ignore_case(url, b"https://t.co/") {
        13
    } else if starts_with_ignore_case(url, b"http://t.co/") {
        12
    } else {
        return None;
    };
    let slug = url[prefix..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if slug == 0 {
        return None;
    }
    if slug > MAX_TCO_SLUG_LENGTH {
        return Some(None);
    }
    let mut e = start + prefix + slug;
    if bytes.get(e) == Some(&b'?')
        && let Some(q) = query_end(bytes, e + 1, end)
    {
        e = q;
    }
    Some(Some(e))
}

// ---------------------------------------------------------------------------------------
// IDNA
// ---------------------------------------------------------------------------------------

/// twitter-text's `isValidHostAndLength`: the host converts with IDNA `ToASCII`, and the
/// URL with its host so converted (and `https://` added when it has no protocol) has at
/// most 4096 characters.
fn valid_host_and_length(url_chars: usize, host: &str, has_protocol: bool) -> bool {
    let Some(ascii_len) = to_ascii_len(host) else {
        return false;
    };
    let host_chars = host.chars().count();
    let mut len = url_chars + ascii_len.saturating_sub(host_chars);
    if !has_protocol {
        len += "https://".len();
    }
    len <= MAX_URL_LENGTH
}

/// The length of `host` after IDNA 2003 `ToASCII`, or `None` if it fails: each label
/// (split at `.` and the ideographic and full-width full stops) is at most 63 characters
/// once punycode-encoded, a non-ASCII label may neither start with `xn--` nor hold
/// characters nameprep prohibits. (Simplified: no bidi rule, no unassigned-code-point
/// rule, case folding by `char::to_lowercase` instead of NFKC.)
fn to_ascii_len(host: &str) -> Option<usize> {
    let mut total = 0;
    let mut labels = 0;
    for label in host.split(['.', '\u{3002}', '\u{FF0E}', '\u{FF61}']) {
        labels += 1;
        let len = if label.is_ascii() {
            label.len()
        } else {
            if starts_with_ignore_case(label.as_bytes(), b"xn--") {
                return None;
            }
            let mut cps = [0u32; 64];
            let mut n = 0;
            for c in label.chars() {
                if is_nameprep_prohibited(c) {
                    return None;
                }
                if is_nameprep_mapped_to_nothing(c) {
                    continue;
                }
                for l in c.to_lowercase() {
                    if n == cps.len() {
                        return None; // longer than 63 code points: too long encoded
                    }
                    cps[n] = l as u32;
                    n += 1;
                }
            }
            if cps[..n].iter().all(|&c| c < 0x80) {
                n
            } else {
                "xn--".len() + punycode_len(&cps[..n])?
            }
        };
        if len == 0 || len > 63 {
            return None;
        }
        total += len;
    }
    Some(total + labels - 1)
}

/// Characters nameprep (RFC 3491) maps to nothing.
fn is_nameprep_mapped_to_nothing(c: char) -> bool {
    matches!(c as u32,
        0xAD | 0x34F | 0x1806 | 0x180B..=0x180D | 0x200B..=0x200D | 0x2060 | 0xFE00..=0xFE0F
            | 0xFEFF)
}

/// Characters nameprep prohibits (RFC 3454 tables C.1.2 to C.9, those a host label can
/// hold here).
fn is_nameprep_prohibited(c: char) -> bool {
    let c = c as u32;
    matches!(c,
        0x80..=0x9F | 0x6DD | 0x70F | 0x180E | 0x200C | 0x200D | 0x2028 | 0x2029
            | 0x2060..=0x2063 | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFD | 0x1D173..=0x1D17A
            | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD
            | 0x2FF0..=0x2FFB | 0x340 | 0x341 | 0x200E | 0x200F | 0x202A..=0x202E
            | 0xE0001 | 0xE0020..=0xE007F)
        || (c & 0xFFFE) == 0xFFFE
        || (0xFDD0..=0xFDEF).contains(&c)
}

/// The length of the RFC 3492 punycode encoding of `input` (without `xn--`).
fn punycode_len(input: &[u32]) -> Option<usize> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    fn adapt(mut delta: u32, points: u32, first: bool) -> u32 {
        delta /= if first { 700 } else { 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + 38)
    }
    let basic = input.iter().filter(|&&c| c < 0x80).count() as u32;
    let mut out = basic as usize + usize::from(basic > 0);
    let (mut n, mut delta, mut bias, mut h) = (0x80u32, 0u32, 72u32, basic);
    let total = input.len() as u32;
    while h < total {
        let m = input.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(h + 1)?)?;
        n = m;
        for &c in input {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out += 1;
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out += 1;
                bias = adapt(delta, h + 1, h == basic);
                delta = 0;
                h += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The length of the UTF-8 sequence that starts with `b`.
fn utf8_len(b: u8) -> usize {
    match b {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punycode_lengths() {
        // "xn--ls8h" is U+1F4A9; "münchen" is "mnchen-3ya".
        assert_eq!(punycode_len(&[0x1F4A9]), Some(4));
        let munchen: Vec<u32> = "münchen".chars().map(|c| c as u32).collect();
        assert_eq!(punycode_len(&munchen), Some("mnchen-3ya".len()));
        let bucher: Vec<u32> = "bücher".chars().map(|c| c as u32).collect();
        assert_eq!(punycode_len(&bucher), Some("bcher-kva".len()));
    }

    #[test]
    fn idna_rejects_long_and_fake_ace_labels() {
        assert_eq!(to_ascii_len("example.com"), Some(11));
        assert!(to_ascii_len("xn--はじめよう.com").is_none());
        assert!(to_ascii_len(&format!("{}.com", "あいうえお".repeat(12))).is_none());
        assert!(to_ascii_len("ああ.com").is_some());
    }

    #[test]
    fn tld_longest_match_and_boundary() {
        let t = "x.嘉里大酒店です";
        assert_eq!(tld_at(t, 2, t.len()), Some(2 + "嘉里大酒店".len()));
        assert_eq!(tld_at("a.comb", 2, 6), None);
        assert_eq!(tld_at("a.COM/", 2, 6), Some(5));
        assert_eq!(tld_at("a.xn--p1ai-", 2, 11), Some(10));
    }

    #[test]
    fn tld_list_is_sorted() {
        assert!(tlds::TLDS.windows(2).all(|w| w[0] < w[1]));
        assert!(TLD_KEYS.windows(2).all(|w| w[0] <= w[1]));
        assert!(tlds::TLDS.iter().all(|t| is_tld(t.as_bytes())));
        assert!(!is_tld(b"travelersinsurancex") && !is_tld(b"co.") && !is_tld(b""));
    }
}
