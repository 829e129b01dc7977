//! Twitter entity extraction: `#hashtags`, `@mentions` (and `@user/lists`), `$cashtags` and
//! URLs, found exactly as Twitter's [twitter-text] library finds them.
//!
//! Why twitter-text's rules: they are what Twitter itself links in a post, they are
//! specified by a public conformance suite (`tests/data/twitter-text/extract.yml`, run by
//! `tests/twitter_text_conformance.rs`), and they settle the many edge cases a naive
//! split on `#` gets wrong (`#16` is no hashtag, `L’#emploi` is one, `#tag` inside
//! `http://x.com/#tag` belongs to the URL, `foo@bar.com` holds no mention...).
//!
//! The scanners here are hand-written equivalents of twitter-text's regular expressions
//! (the Ruby implementation at commit 30e2430, the one the conformance suite is checked
//! against; the Java one for `t.co` query strings), including their backtracking and the
//! way a regex scan consumes the character before each match. They run in one pass per
//! entity kind, allocate nothing but the output, and skip a text at once when it lacks
//! the entity's sigil (`#`, `@`, `$`, or `.` for URLs). See `docs/adr/0003-entity-extraction.md`
//! for why this is not the `twitter-text` crate.
//!
//! All positions are byte offsets into the text (twitter-text reports code points).
//!
//! Known differences from twitter-text, none exercised by its suite:
//! - host names are checked with a simplified IDNA 2003 `ToASCII` (label length after
//!   punycode, `xn--` labels must be ASCII, prohibited characters) without its bidi rule,
//!   its unassigned-code-point rule, or NFKC normalisation before measuring a label;
//! - a few private-use code points (U+F870..U+F8D6) that twitter-text counts as hashtag
//!   letters are not; letters, marks and digits follow Unicode 14 (twitter-text: the
//!   regex engine's version);
//! - for a URL without protocol whose host mixes an ASCII part with a non-ASCII one and
//!   has a path (`abc.com.日本.com/x`), twitter-text rewrites the URL's text; the entity
//!   here is the text's own span, from the ASCII host to the end of the path.
//!
//! [twitter-text]: https://github.com/twitter/twitter-text

mod tlds;
mod unicode_tables;
mod url;

/// The kind of an [`Entity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// `#tag` or `＃tag`.
    Hashtag,
    /// `@user` or `＠user`; from [`extract_entities`] and [`extract_mentions_or_lists`]
    /// also `@user/list` (a list; see [`Entity::list_slug`]).
    Mention,
    /// `$SYMB`, `$SYMB.X` or `$SYMB_XY`.
    Cashtag,
    /// A URL, with or without `http://`/`https://`.
    Url,
}

/// One entity of a text: its kind and its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entity {
    pub kind: EntityKind,
    /// Byte range in the text, including the sigil (`#`, `@`, `$`); for URLs the URL
    /// itself.
    pub start: usize,
    pub end: usize,
}

impl Entity {
    /// The entity without its sigil (`"insee"` for `"#insee"`; the URL for URLs; `"user/list"`
    /// for a list).
    ///
    /// `text` must be the text the entity was extracted from.
    pub fn value<'a>(&self, text: &'a str) -> &'a str {
        let s = &text[self.start..self.end];
        match self.kind {
            EntityKind::Url => s,
            _ => {
                let sigil = s.chars().next().map_or(0, char::len_utf8);
                &s[sigil..]
            }
        }
    }

    /// For a list mention (`@user/list`), the user's screen name (`"user"`); for any other
    /// mention its value.
    pub fn screen_name<'a>(&self, text: &'a str) -> &'a str {
        let v = self.value(text);
        match self.kind {
            EntityKind::Mention => v.split_once('/').map_or(v, |(name, _)| name),
            _ => v,
        }
    }

    /// For a list mention (`@user/list`), the list's slug with its slash (`"/list"`), as
    /// twitter-text reports it; `None` for a plain mention and other kinds.
    pub fn list_slug<'a>(&self, text: &'a str) -> Option<&'a str> {
        match self.kind {
            EntityKind::Mention => {
                let v = self.value(text);
                v.find('/').map(|i| &v[i..])
            }
            _ => None,
        }
    }
}

/// Appends every entity of `text`, in order of position, to `out`, resolving overlaps as
/// twitter-text does (URLs win over hashtags/mentions/cashtags inside them).
///
/// This is twitter-text's `extractEntitiesWithIndices`: URLs, hashtags, mentions *and
/// lists* (`@user/list`, one [`EntityKind::Mention`] spanning the slug too), cashtags;
/// sorted by start; an entity that starts inside the previous one kept is dropped.
/// Entities already in `out` are left alone.
///
/// ```
/// use trendflow_ops::entities::{extract_entities, EntityKind};
///
/// let text = "RT @insee: L’#emploi progresse, $EURUSD https://insee.fr/x#note";
/// let mut out = Vec::new();
/// extract_entities(text, &mut out);
/// let found: Vec<_> = out.iter().map(|e| (e.kind, e.value(text))).collect();
/// assert_eq!(
///     found,
///     [
///         (EntityKind::Mention, "insee"),
///         (EntityKind::Hashtag, "emploi"),
///         (EntityKind::Cashtag, "EURUSD"),
///         (EntityKind::Url, "https://insee.fr/x#note"),
///     ]
/// );
/// // Byte ranges, sigil included.
/// assert_eq!(&text[out[1].start..out[1].end], "#emploi");
/// ```
pub fn extract_entities(text: &str, out: &mut Vec<Entity>) {
    if !may_hold_entities(text.as_bytes()) {
        return;
    }
    let base = out.len();
    url::scan_urls(text, out);
    scan_hashtags(text, out);
    scan_mentions(text, true, out);
    scan_cashtags(text, out);
    remove_overlapping(out, base);
}

/// Appends the entities of one kind only, in order of position, as twitter-text's
/// `extractHashtags`, `extractMentionedScreennames`, `extractCashtags` and `extractUrls` do:
/// hashtags inside a URL are dropped (the URLs themselves are not reported); mentions and
/// cashtags are not checked against URLs; lists (`@user/list`) are not mentions here (see
/// [`extract_mentions_or_lists`]).
pub fn extract_kind(text: &str, kind: EntityKind, out: &mut Vec<Entity>) {
    match kind {
        EntityKind::Hashtag => {
            let base = out.len();
            scan_hashtags(text, out);
            if out.len() == base {
                return;
            }
            let tags = out.len();
            url::scan_urls(text, out);
            if out.len() > tags {
                remove_overlapping(out, base);
                retain_from(out, base, |e| e.kind == EntityKind::Hashtag);
            }
        }
        EntityKind::Mention => scan_mentions(text, false, out),
        EntityKind::Cashtag => scan_cashtags(text, out),
        EntityKind::Url => url::scan_urls(text, out),
    }
}

/// Appends mentions and lists (`@user/list`, one entity spanning the slug), as
/// twitter-text's `extractMentionsOrListsWithIndices`.
pub fn extract_mentions_or_lists(text: &str, out: &mut Vec<Entity>) {
    scan_mentions(text, true, out);
}

/// The user a post replies to: a mention at the very start, after nothing but white space
/// or directional marks (twitter-text's `extractReplyScreenname`). The entity covers the
/// `@` and the screen name.
pub fn extract_reply(text: &str) -> Option<Entity> {
    let mut i = 0;
    for (at, c) in text.char_indices() {
        i = at;
        if !(is_unicode_space(c) || is_directional(c)) {
            break;
        }
        i = at + c.len_utf8();
    }
    let sigil = at_sign_len(text.as_bytes(), i)?;
    let name_end = ascii_run(text.as_bytes(), i + sigil, 20, is_screen_name_byte);
    if name_end == i + sigil || invalid_mention_end(text, name_end) {
        return None;
    }
    Some(Entity {
        kind: EntityKind::Mention,
        start: i,
        end: name_end,
    })
}

/// A quick reject: no entity can be found in a text without one of these bytes (`#`, `@`,
/// `$`, `.`, or 0xEF, the first byte of the full-width `＃` and `＠`).
fn may_hold_entities(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .any(|&b| matches!(b, b'#' | b'@' | b'$' | b'.' | 0xEF))
}

/// Sorts `out[base..]` by start and drops, as twitter-text's `removeOverlappingEntities`,
/// every entity that starts before the end of the previous one kept.
fn remove_overlapping(out: &mut Vec<Entity>, base: usize) {
    out[base..].sort_unstable_by_key(|e| e.start);
    let mut kept_end = 0;
    let mut first = true;
    retain_from(out, base, |e| {
        if first || e.start >= kept_end {
            first = false;
            kept_end = e.end;
            true
        } else {
            false
        }
    });
}

/// `Vec::retain` on `out[base..]`, in order.
fn retain_from(out: &mut Vec<Entity>, base: usize, mut keep: impl FnMut(&Entity) -> bool) {
    let mut w = base;
    for r in base..out.len() {
        let e = out[r];
        if keep(&e) {
            out[w] = e;
            w += 1;
        }
    }
    out.truncate(w);
}

// ---------------------------------------------------------------------------------------
// Character classes (twitter-text's regex.rb)
// ---------------------------------------------------------------------------------------

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `\p{L}\p{M}`: what a hashtag needs at least one of.
fn is_letter_or_mark(c: char) -> bool {
    match c as u32 {
        0..=0x7F => c.is_ascii_alphabetic(),
        // Common blocks that are letters throughout: Hiragana, Katakana, CJK, Hangul.
        0x3041..=0x3096 | 0x30A1..=0x30FA | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 => true,
        _ => in_table(unicode_tables::LETTER_OR_MARK, c),
    }
}

/// `\p{Nd}`.
fn is_decimal_number(c: char) -> bool {
    match c as u32 {
        0..=0x7F => c.is_ascii_digit(),
        _ => in_table(unicode_tables::DECIMAL_NUMBER, c),
    }
}

/// Characters that may be in a hashtag but do not count as its letter.
fn is_hashtag_special(c: char) -> bool {
    matches!(
        c,
        '_' | '\u{200C}' // zero width non-joiner
            | '\u{200D}' // zero width joiner
            | '\u{A67E}' // Cyrillic kavyka
            | '\u{05BE}' // Hebrew maqaf
            | '\u{05F3}' // Hebrew geresh
            | '\u{05F4}' // Hebrew gershayim
            | '\u{FF5E}' // full-width tilde
            | '\u{301C}' // wave dash
            | '\u{309B}' // katakana-hiragana voiced sound mark
            | '\u{309C}' // katakana-hiragana semi-voiced sound mark
            | '\u{30A0}' // katakana-hiragana double hyphen
            | '\u{30FB}' // katakana middle dot
            | '\u{3003}' // ditto mark
            | '\u{0F0B}' // Tibetan intersyllabic tsheg
            | '\u{0F0C}' // Tibetan delimiter tsheg bstar
            | '\u{00B7}' // middle dot
    )
}

/// Any character of a hashtag's text.
fn is_hashtag_char(c: char) -> bool {
    is_letter_or_mark(c) || is_decimal_number(c) || is_hashtag_special(c)
}

/// Unicode white space as twitter-text lists it.
fn is_unicode_space(c: char) -> bool {
    matches!(
        c,
        '\u{09}'..='\u{0D}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{180E}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// Bidirectional formatting characters (marks, embeddings, overrides, isolates).
fn is_directional(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters twitter-text rejects in a post (byte-order marks, U+FFFF).
fn is_invalid_char(c: char) -> bool {
    matches!(c, '\u{FFFE}' | '\u{FEFF}' | '\u{FFFF}')
}

/// Latin letters with accents and combining diacritics (twitter-text's `LATIN_ACCENTS`).
fn is_latin_accent(c: char) -> bool {
    matches!(c as u32,
        0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0xFF | 0x100..=0x24F
            | 0x253 | 0x254 | 0x256 | 0x257 | 0x259 | 0x25B | 0x263 | 0x268 | 0x26F
            | 0x272 | 0x289 | 0x28B | 0x2BB | 0x300..=0x36F | 0x1E00..=0x1EFF)
}

// ---------------------------------------------------------------------------------------
// Small text helpers
// ---------------------------------------------------------------------------------------

/// The character that ends at byte `i` and its start.
fn char_before(text: &str, i: usize) -> Option<(char, usize)> {
    let c = text[..i].chars().next_back()?;
    Some((c, i - c.len_utf8()))
}

fn char_at(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

/// The end of the run of at most `max` bytes satisfying `ok`, from `i`.
fn ascii_run(bytes: &[u8], i: usize, max: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut j = i;
    while j < bytes.len() && j - i < max && ok(bytes[j]) {
        j += 1;
    }
    j
}

fn is_screen_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The length of `@` or `＠` at `i`, if one is there.
fn at_sign_len(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'@' => Some(1),
        0xEF if bytes[i..].starts_with("＠".as_bytes()) => Some(3),
        _ => None,
    }
}

/// The length of `#` or `＃` at `i`, if one is there.
fn hash_sign_len(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'#' => Some(1),
        0xEF if bytes[i..].starts_with("＃".as_bytes()) => Some(3),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Hashtags
// ---------------------------------------------------------------------------------------

/// twitter-text's `extractHashtagsWithIndices` without the URL check: `#` or `＃` at the
/// start, after U+FE0E/U+FE0F, or after anything but `&` and hashtag characters; not
/// followed by U+FE0F or U+20E3 (a keycap); then hashtag characters with at least one
/// letter or mark. A match followed by `#`, `＃` or `://` is dropped.
fn scan_hashtags(text: &str, out: &mut Vec<Entity>) {
    let bytes = text.as_bytes();
    let mut last_end = 0; // a regex scan consumes the character before a match
    let mut from = 0;
    while let Some(off) = memchr::memchr2(b'#', 0xEF, &bytes[from..]) {
        let h = from + off;
        let Some(sigil) = hash_sign_len(bytes, h) else {
            from = h + 1;
            continue;
        };
        from = h + sigil;
        let preceded_ok = match char_before(text, h) {
            None => true,
            Some((c, start)) => {
                start >= last_end
                    && (c == '\u{FE0E}' || c == '\u{FE0F}' || (c != '&' && !is_hashtag_char(c)))
            }
        };
        if !preceded_ok {
            continue;
        }
        let body = h + sigil;
        if matches!(char_at(text, body), Some('\u{FE0F}' | '\u{20E3}')) {
            continue;
        }
        let mut end = body;
        let mut has_letter = false;
        for c in text[body..].chars() {
            if is_letter_or_mark(c) {
                has_letter = true;
            } else if !(is_decimal_number(c) || is_hashtag_special(c)) {
                break;
            }
            end += c.len_utf8();
        }
        if !has_letter {
            continue;
        }
        last_end = end;
        from = end;
        let rest = &bytes[end..];
        if hash_sign_len(bytes, end).is_some() || rest.starts_with(b"://") {
            continue;
        }
        out.push(Entity {
            kind: EntityKind::Hashtag,
            start: h,
            end,
        });
    }
}

// ---------------------------------------------------------------------------------------
// Mentions
// ---------------------------------------------------------------------------------------

/// Whether what follows a mention disqualifies it: another at sign, a Latin accented
/// letter (`@aliceìnheiro`), or `://` (`@http://`).
fn invalid_mention_end(text: &str, end: usize) -> bool {
    let bytes = text.as_bytes();
    at_sign_len(bytes, end).is_some()
        || bytes[end..].starts_with(b"://")
        || char_at(text, end).is_some_and(is_latin_accent)
}

/// Whether `c` may stand just before an at sign (twitter-text:
/// `[^a-z0-9_!#$%&*@＠]`, case-insensitive).
fn mention_preceding_ok(c: char) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(c, '_' | '!' | '#' | '$' | '%' | '&' | '*' | '@' | '＠'))
}

/// Whether the at sign at `at` follows `RT`/`RT:` (any case) that is itself at the start or
/// after a character other than `[a-z0-9_+~.-]`, all at or after `last_end`.
fn after_retweet_marker(bytes: &[u8], at: usize, last_end: usize) -> bool {
    let is_rt =
        |i: usize| bytes[i].eq_ignore_ascii_case(&b'r') && bytes[i + 1].eq_ignore_ascii_case(&b't');
    let mut starts = [None, None];
    if at >= 2 && is_rt(at - 2) {
        starts[0] = Some(at - 2);
    }
    if at >= 3 && bytes[at - 1] == b':' && is_rt(at - 3) {
        starts[1] = Some(at - 3);
    }
    starts.into_iter().flatten().any(|rt| {
        if rt < last_end {
            return false;
        }
        if rt == 0 {
            return true;
        }
        // The byte before: a multi-byte character's last byte is >= 0x80, never in the
        // excluded ASCII class.
        let b = bytes[rt - 1];
        rt > last_end
            && !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'~' | b'.' | b'-'))
    })
}

/// twitter-text's `extractMentionsOrListsWithIndices` (and, without lists,
/// `extractMentionedScreennamesWithIndices`, which drops list matches altogether).
fn scan_mentions(text: &str, with_lists: bool, out: &mut Vec<Entity>) {
    let bytes = text.as_bytes();
    let mut last_end = 0;
    let mut from = 0;
    while let Some(off) = memchr::memchr2(b'@', 0xEF, &bytes[from..]) {
        let at = from + off;
        let Some(sigil) = at_sign_len(bytes, at) else {
            from = at + 1;
            continue;
        };
        from = at + sigil;
        let preceded_ok = match char_before(text, at) {
            None => true,
            Some((c, start)) => {
                (start >= last_end && mention_preceding_ok(c))
                    || after_retweet_marker(bytes, at, last_end)
            }
        };
        if !preceded_ok {
            continue;
        }
        let name_start = at + sigil;
        let name_end = ascii_run(bytes, name_start, 20, is_screen_name_byte);
        if name_end == name_start {
            continue;
        }
        let mut end = name_end;
        let mut is_list = false;
        if bytes.get(name_end) == Some(&b'/')
            && bytes.get(name_end + 1).is_some_and(u8::is_ascii_alphabetic)
        {
            is_list = true;
            end = ascii_run(bytes, name_end + 2, 24, |b| {
                b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
            });
        }
        last_end = end;
        from = end;
        if invalid_mention_end(text, end) || (is_list && !with_lists) {
            continue;
        }
        out.push(Entity {
            kind: EntityKind::Mention,
            start: at,
            end,
        });
    }
}

// ---------------------------------------------------------------------------------------
// Cashtags
// ---------------------------------------------------------------------------------------

/// What may follow a cashtag: the end, ASCII white space or ASCII punctuation.
fn cashtag_end_ok(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_none_or(|&b| {
        matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r') || b.is_ascii_punctuation()
    })
}

/// twitter-text's `extractCashtagsWithIndices`: `$` at the start or after white space or
/// a directional mark, 1 to 6 ASCII letters, optionally `.` or `_` and 1 or 2 letters,
/// then the end, white space or punctuation.
fn scan_cashtags(text: &str, out: &mut Vec<Entity>) {
    let bytes = text.as_bytes();
    let mut last_end = 0;
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'$', &bytes[from..]) {
        let d = from + off;
        from = d + 1;
        let preceded_ok = match char_before(text, d) {
            None => true,
            Some((c, start)) => start >= last_end && (is_unicode_space(c) || is_directional(c)),
        };
        if !preceded_ok {
            continue;
        }
        let sym_end = ascii_run(bytes, d + 1, 7, |b| b.is_ascii_alphabetic());
        let letters = sym_end - d - 1;
        if letters == 0 || letters > 6 {
            continue;
        }
        // The regex backtracks from the longest form: symbol + suffix, then symbol alone.
        let mut end = None;
        if matches!(bytes.get(sym_end), Some(b'.' | b'_')) {
            let suffix_end = ascii_run(bytes, sym_end + 1, 3, |b| b.is_ascii_alphabetic());
            let n = suffix_end - sym_end - 1;
            if (1..=2).contains(&n) && cashtag_end_ok(bytes, suffix_end) {
                end = Some(suffix_end);
            }
        }
        if end.is_none() && cashtag_end_ok(bytes, sym_end) {
            end = Some(sym_end);
        }
        let Some(end) = end else { continue };
        last_end = end;
        from = end;
        out.push(Entity {
            kind: EntityKind::Cashtag,
            start: d,
            end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, kind: EntityKind) -> Vec<&str> {
        let mut out = Vec::new();
        extract_kind(text, kind, &mut out);
        out.iter().map(|e| e.value(text)).collect()
    }

    fn all(text: &str) -> Vec<(EntityKind, &str)> {
        let mut out = Vec::new();
        extract_entities(text, &mut out);
        out.iter().map(|e| (e.kind, e.value(text))).collect()
    }

    #[test]
    fn hashtag_boundaries() {
        assert_eq!(
            values("L’#emploi et #loyers, #16 #Insee", EntityKind::Hashtag),
            ["emploi", "loyers", "Insee"]
        );
        // Not after a letter or `&` (HTML entities), not before `#` or `://`.
        assert_eq!(
            values("a#b &#039; #a#b #http://x.com", EntityKind::Hashtag),
            Vec::<&str>::new()
        );
        // Full-width sign; keycap sequence is not a hashtag.
        assert_eq!(
            values("＃日本 #\u{FE0F}\u{20E3}a", EntityKind::Hashtag),
            ["日本"]
        );
    }

    #[test]
    fn hashtag_inside_url_is_dropped() {
        let text = "see http://x.com/#frag and #real";
        assert_eq!(values(text, EntityKind::Hashtag), ["real"]);
        assert_eq!(
            all(text),
            [
                (EntityKind::Url, "http://x.com/#frag"),
                (EntityKind::Hashtag, "real")
            ]
        );
    }

    #[test]
    fn mentions_and_lists() {
        assert_eq!(
            values("RT@a rt:@b x@c @d@e @f/list", EntityKind::Mention),
            ["a", "b"]
        );
        let text = "@f/list-1 hi";
        let mut out = Vec::new();
        extract_mentions_or_lists(text, &mut out);
        assert_eq!(out[0].screen_name(text), "f");
        assert_eq!(out[0].list_slug(text), Some("/list-1"));
        // A screen name stops after 20 characters.
        assert_eq!(
            values("@abcdefghijklmnopqrstuvwxyz", EntityKind::Mention),
            ["abcdefghijklmnopqrst"]
        );
        assert_eq!(
            extract_reply(" \u{3000}@joe hi").map(|e| e.value(" \u{3000}@joe hi")),
            Some("joe")
        );
        assert_eq!(extract_reply("a @joe"), None);
    }

    #[test]
    fn cashtag_backtracking() {
        assert_eq!(
            values("$BRK.A $TVI.CAN $ab.cd1 $ABCDEFG $X_", EntityKind::Cashtag),
            ["BRK.A", "TVI", "ab", "X"]
        );
    }

    #[test]
    fn urls_without_protocol_and_emails() {
        assert_eq!(
            values(
                "mail me at a.b@c.com or see t.co/x, foo.jp",
                EntityKind::Url
            ),
            ["t.co/x", "foo.jp"]
        );
        assert_eq!(
            values("日本語example.com/pathです", EntityKind::Url),
            ["example.com/path"]
        );
    }

    #[test]
    fn mention_inside_url_loses_to_the_url() {
        let text = "http://medium.com/@user/post @other";
        assert_eq!(
            all(text),
            [
                (EntityKind::Url, "http://medium.com/@user/post"),
                (EntityKind::Mention, "other")
            ]
        );
    }

    #[test]
    fn nothing_to_find() {
        assert!(all("plain words only, no sigils").is_empty());
        assert!(all("").is_empty());
    }

    proptest::proptest! {
        /// Any text: no panic; entities in bounds, on character boundaries, non-empty,
        /// sorted and disjoint; each kind's extraction agrees with its own sigil.
        #[test]
        fn well_formed_on_any_text(
            text in "([#＃@＠$./:?()_\\-]|https?://|t\\.co/|[a-zA-Z0-9]{1,4}|com|jp|                     [ \u{3000}\n]|[日本ああé]|\u{200D}|\u{FE0F}|\u{202A}){0,40}"
        ) {
            let mut out = Vec::new();
            extract_entities(&text, &mut out);
            for w in out.windows(2) {
                proptest::prop_assert!(w[0].end <= w[1].start);
            }
            for e in &out {
                proptest::prop_assert!(e.start < e.end && e.end <= text.len());
                proptest::prop_assert!(text.is_char_boundary(e.start) && text.is_char_boundary(e.end));
                proptest::prop_assert!(!e.value(&text).is_empty());
            }
            for kind in [EntityKind::Hashtag, EntityKind::Mention, EntityKind::Cashtag, EntityKind::Url] {
                let mut one = Vec::new();
                extract_kind(&text, kind, &mut one);
                for e in &one {
                    proptest::prop_assert_eq!(e.kind, kind);
                    let first = text[e.start..].chars().next().unwrap();
                    match kind {
                        EntityKind::Hashtag => proptest::prop_assert!(matches!(first, '#' | '＃')),
                        EntityKind::Mention => proptest::prop_assert!(matches!(first, '@' | '＠')),
                        EntityKind::Cashtag => proptest::prop_assert_eq!(first, '$'),
                        EntityKind::Url => {}
                    }
                }
            }
        }
    }

    #[test]
    fn appends_after_existing_entities() {
        let mut out = vec![Entity {
            kind: EntityKind::Url,
            start: 100,
            end: 101,
        }];
        extract_entities("#a", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].start, 100);
        assert_eq!(
            out[1],
            Entity {
                kind: EntityKind::Hashtag,
                start: 0,
                end: 2
            }
        );
    }
}
