//! Splits post texts into the tokens that are counted.

use std::sync::Arc;

use trendflow_core::{Batch, Emitter, Operator, OperatorError, TokenBatch};

use crate::entities::{Entity, EntityKind, extract_entities, extract_kind};
use crate::normalize::Normalize;

/// How tokens are found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerMode {
    /// The tutorial's Spark query: `explode(split(text, ' '))` keeping words that contain
    /// `#`. Punctuation stays attached (`L’#emploi`, `#loyers,`), as in Spark.
    Split,
    /// Every word, split on ' ' (for word counts).
    Words,
    /// The post's id, once per post (counting posts: each id must count exactly once).
    Ids,
    /// Entities of the text as Twitter defines them (twitter-text rules, see
    /// [`crate::entities`]): `#hashtag`, `@mention`, `$CASHTAG` and URLs, of the kinds chosen.
    /// Punctuation is not part of an entity: `L’#emploi` gives `#emploi`, `#loyers,` gives
    /// `#loyers`.
    Entities(EntityKinds),
}

/// Which kinds of entity the `entities` mode keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityKinds {
    pub hashtags: bool,
    pub mentions: bool,
    pub cashtags: bool,
    pub urls: bool,
}

impl EntityKinds {
    pub const HASHTAGS: EntityKinds = EntityKinds {
        hashtags: true,
        mentions: false,
        cashtags: false,
        urls: false,
    };

    fn keeps(&self, kind: EntityKind) -> bool {
        match kind {
            EntityKind::Hashtag => self.hashtags,
            EntityKind::Mention => self.mentions,
            EntityKind::Cashtag => self.cashtags,
            EntityKind::Url => self.urls,
        }
    }
}

/// The tokenizer operator: [`trendflow_core::PostBatch`] in, [`TokenBatch`] out.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, Emitter, Operator, PostBatch};
/// use trendflow_ops::{Tokenizer, TokenizerMode};
///
/// let mut posts = PostBatch::new("f".into());
/// posts.push(1, None, Some(0), "RT L’#emploi et #loyers, en hausse #Insee");
/// let mut out = Emitter::new();
/// Tokenizer::new(TokenizerMode::Split).process_batch(Batch::Posts(Arc::new(posts)), &mut out).unwrap();
/// let Batch::Tokens(t) = &out.batches[0] else { panic!() };
/// let words: Vec<_> = t.iter().map(|(_, w)| w).collect();
/// assert_eq!(words, ["L’#emploi", "#loyers,", "#Insee"]);
/// ```
pub struct Tokenizer {
    mode: TokenizerMode,
    normalize: Normalize,
    buf: String,
    found: Vec<Entity>,
    token: String,
}

impl Tokenizer {
    pub fn new(mode: TokenizerMode) -> Self {
        Tokenizer {
            mode,
            normalize: Normalize::default(),
            buf: String::new(),
            found: Vec::new(),
            token: String::new(),
        }
    }

    /// Case folding and/or NFC of every token (`#Insee` and `#INSEE` count together).
    pub fn with_normalize(mut self, normalize: Normalize) -> Self {
        self.normalize = normalize;
        self
    }
}

/// The words of `text` split on single spaces that contain a `#`, in order: what
/// `text.split(' ').filter(|w| w.contains('#'))` yields, found from the `#`s instead of by
/// visiting every word (most words have none; splitting them all was 5% of Q2's cycles).
fn words_with_hash(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    // Where the search resumes: the start of the word after the last one yielded.
    let mut from = 0;
    std::iter::from_fn(move || {
        let hash = from + memchr::memchr(b'#', b.get(from..)?)?;
        let start = memchr::memrchr(b' ', &b[from..hash]).map_or(from, |i| from + i + 1);
        let end = memchr::memchr(b' ', &b[hash..]).map_or(b.len(), |i| hash + i);
        from = end + 1;
        // ' ' and '#' are ASCII: `start` and `end` are character boundaries.
        Some(&text[start..end])
    })
}

impl Operator for Tokenizer {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        let Batch::Posts(posts) = batch else {
            return Err(OperatorError::new(format!(
                "the tokenizer takes posts, got {}",
                batch.kind()
            )));
        };
        // Test hooks: fail on a whole batch, or on every post whose text contains a marker
        // (a "poisoned" record that fails deterministically).
        trendflow_core::failpoint::check("tokenizer-batch").map_err(OperatorError::new)?;
        if let Some(marker) = trendflow_core::failpoint::arg("tokenizer-poison") {
            for i in 0..posts.len() {
                if posts.text(i).contains(marker) {
                    panic!(
                        "poisoned post at line {} of {}",
                        posts.lines[i], posts.origin
                    );
                }
            }
        }
        let mut tokens = TokenBatch::with_capacity(posts.len() * 2, posts.len() * 24);
        for i in 0..posts.len() {
            let t = posts.event_times[i];
            let text = posts.text(i);
            match self.mode {
                TokenizerMode::Split => {
                    for w in words_with_hash(text) {
                        tokens.push(t, self.normalize.apply(w, &mut self.buf));
                    }
                }
                TokenizerMode::Words => {
                    for w in text.split(' ').filter(|w| !w.is_empty()) {
                        tokens.push(t, self.normalize.apply(w, &mut self.buf));
                    }
                }
                TokenizerMode::Entities(kinds) => {
                    self.found.clear();
                    if kinds.hashtags && !kinds.mentions && !kinds.cashtags && !kinds.urls {
                        extract_kind(text, EntityKind::Hashtag, &mut self.found);
                    } else {
                        extract_entities(text, &mut self.found);
                    }
                    for e in &self.found {
                        if !kinds.keeps(e.kind) {
                            continue;
                        }
                        // One spelling of the sigil: a full-width `＃` or `＠` counts as `#`, `@`.
                        self.token.clear();
                        match e.kind {
                            EntityKind::Hashtag => self.token.push('#'),
                            EntityKind::Mention => self.token.push('@'),
                            EntityKind::Cashtag => self.token.push('$'),
                            EntityKind::Url => {}
                        }
                        self.token.push_str(e.value(text));
                        tokens.push(t, self.normalize.apply(&self.token, &mut self.buf));
                    }
                }
                TokenizerMode::Ids => {
                    let id = posts.id(i);
                    if !id.is_empty() {
                        tokens.push(t, id);
                    }
                }
            }
        }
        out.emit(Batch::Tokens(Arc::new(tokens)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::PostBatch;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The search from the `#`s yields exactly the naive split's words with a `#`.
        #[test]
        fn words_with_hash_is_the_naive_split(text in "[a# é\n😀]{0,40}") {
            let naive: Vec<&str> = text.split(' ').filter(|w| w.contains('#')).collect();
            let fast: Vec<&str> = words_with_hash(&text).collect();
            proptest::prop_assert_eq!(fast, naive);
        }
    }

    fn split(text: &str) -> Vec<String> {
        let mut posts = PostBatch::new("f".into());
        posts.push(1, None, None, text);
        let mut out = Emitter::new();
        Tokenizer::new(TokenizerMode::Split)
            .process_batch(Batch::Posts(Arc::new(posts)), &mut out)
            .unwrap();
        match out.batches.first() {
            Some(Batch::Tokens(t)) => t.iter().map(|(_, w)| w.to_string()).collect(),
            _ => vec![],
        }
    }

    fn entities(text: &str, kinds: EntityKinds) -> Vec<String> {
        let mut posts = PostBatch::new("f".into());
        posts.push(1, None, None, text);
        let mut out = Emitter::new();
        Tokenizer::new(TokenizerMode::Entities(kinds))
            .process_batch(Batch::Posts(Arc::new(posts)), &mut out)
            .unwrap();
        let Batch::Tokens(t) = &out.batches[0] else {
            panic!()
        };
        t.iter().map(|(_, w)| w.to_string()).collect()
    }

    #[test]
    fn entities_mode_follows_twitter_text() {
        let text =
            "RT @InseeFr: L’#emploi et #loyers, en hausse ＃Insee $CAC https://insee.fr/x#frag";
        assert_eq!(
            entities(text, EntityKinds::HASHTAGS),
            ["#emploi", "#loyers", "#Insee"]
        );
        let all = EntityKinds {
            hashtags: true,
            mentions: true,
            cashtags: true,
            urls: true,
        };
        assert_eq!(
            entities(text, all),
            [
                "@InseeFr",
                "#emploi",
                "#loyers",
                "#Insee",
                "$CAC",
                "https://insee.fr/x#frag"
            ]
        );
    }

    #[test]
    fn ids_mode_emits_each_post_id_once() {
        let mut posts = PostBatch::new("f".into());
        posts.push(1, Some(42), None, "#a #b");
        posts.push(2, None, None, "no id");
        let mut out = Emitter::new();
        Tokenizer::new(TokenizerMode::Ids)
            .process_batch(Batch::Posts(Arc::new(posts)), &mut out)
            .unwrap();
        let Some(Batch::Tokens(t)) = out.batches.first() else {
            panic!()
        };
        assert_eq!(t.iter().map(|(_, w)| w).collect::<Vec<_>>(), ["42"]);
    }

    #[test]
    fn splits_on_single_spaces_only_as_spark() {
        assert_eq!(split("a\n#b  #c\t#d ##"), vec!["a\n#b", "#c\t#d", "##"]);
        assert_eq!(split("no tags here"), Vec::<String>::new());
        assert_eq!(split("#fin "), vec!["#fin"]);
    }
}
