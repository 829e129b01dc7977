//! Mastodon's `content` is HTML: the text a reader sees is what counts (tags removed, entities
//! decoded, paragraphs and line breaks as newlines), and its links are the post's URLs.

/// The visible text of a status's HTML.
pub fn to_text(html: &str, out: &mut String) {
    let mut rest = html;
    while let Some(i) = rest.find(['<', '&']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with('<') {
            let Some(end) = rest.find('>') else {
                // A '<' that opens no tag is text.
                out.push_str(rest);
                return;
            };
            let tag = &rest[1..end];
            let name = tag
                .trim_start_matches('/')
                .split(|c: char| c.is_ascii_whitespace() || c == '/')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            match name.as_str() {
                "br" => out.push('\n'),
                "p" if tag.starts_with('/') => out.push_str("\n\n"),
                _ => {}
            }
            rest = &rest[end + 1..];
        } else {
            let (decoded, used) = entity(rest);
            out.push(decoded.unwrap_or('&'));
            rest = &rest[used..];
        }
    }
    out.push_str(rest);
    while out.ends_with('\n') {
        out.pop();
    }
}

/// Decodes the HTML entity at the start of `s` ("&amp;..."): the character and bytes used;
/// `None` and 1 byte when it is a lone '&'.
fn entity(s: &str) -> (Option<char>, usize) {
    let Some(end) = s[1..].find(';').map(|i| i + 1).filter(|&e| e <= 12) else {
        return (None, 1);
    };
    let name = &s[1..end];
    let c = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse().ok()
            } else {
                None
            };
            code.and_then(char::from_u32)
        }
    };
    match c {
        Some(c) => (Some(c), end + 1),
        None => (None, 1),
    }
}

/// The `href` of each link in the HTML that is not a mention or a hashtag (Mastodon marks
/// those with the classes `mention` / `hashtag`).
pub fn links(html: &str) -> impl Iterator<Item = &str> {
    html.split("<a ").skip(1).filter_map(|a| {
        let tag = &a[..a.find('>')?];
        if tag.contains("mention") || tag.contains("hashtag") || tag.contains("rel=\"tag\"") {
            return None;
        }
        let href = tag.split("href=\"").nth(1)?;
        Some(&href[..href.find('"')?])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(html: &str) -> String {
        let mut s = String::new();
        to_text(html, &mut s);
        s
    }

    #[test]
    fn visible_text() {
        assert_eq!(
            text(
                r#"<p>Hello <a href="https://m.s/tags/insee" class="mention hashtag" rel="tag">#<span>Insee</span></a> &amp; co</p><p>line<br>two&#39;s &lt;3</p>"#
            ),
            "Hello #Insee & co\n\nline\ntwo's <3"
        );
        assert_eq!(text("a < b & c"), "a < b & c");
    }

    #[test]
    fn links_exclude_mentions_and_tags() {
        let html = r#"<p><a href="https://m.s/@bob" class="u-url mention">@bob</a> <a href="https://insee.fr/x" rel="nofollow">insee.fr/x</a> <a href="https://m.s/tags/a" class="mention hashtag" rel="tag">#a</a></p>"#;
        assert_eq!(links(html).collect::<Vec<_>>(), ["https://insee.fr/x"]);
    }
}
