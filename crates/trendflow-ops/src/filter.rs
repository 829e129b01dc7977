//! Narrows a stream to the posts about a topic, with the Twitter streaming API's `track`
//! semantics: a list of phrases, any of which may match (OR); a phrase's space-separated terms
//! must all be present (AND), in any order, ignoring case. A term matches a word of the text
//! as written (punctuation is part of the word: `insee.` does not match `insee`), the same word
//! without its leading `#` or `@`, a hashtag or mention of the post, or a URL that contains it.

use std::sync::Arc;

use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::post::EntityKind;
use trendflow_core::{Batch, Emitter, Operator, OperatorError, PostBatch};

/// The keyword filter operator: posts in, the matching posts out.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, Emitter, Operator, PostBatch, metrics::Metrics};
/// use trendflow_ops::filter::KeywordFilter;
///
/// let mut posts = PostBatch::new("f".into());
/// posts.push(1, None, None, "Les chiffres de l'#INSEE sur l'emploi");
/// posts.push(2, None, None, "rien à voir");
/// posts.push(3, None, None, "via @InseeFr taux de chômage");
/// let mut f = KeywordFilter::new("f", &["insee".into(), "inseefr".into()], &Metrics::new()).unwrap();
/// let mut out = Emitter::new();
/// f.process_batch(Batch::Posts(Arc::new(posts)), &mut out).unwrap();
/// let Batch::Posts(kept) = &out.batches[0] else { panic!() };
/// assert_eq!(kept.lines, [3]); // "l'#INSEE" is one word: `l'#insee`, not `insee`
/// ```
pub struct KeywordFilter {
    /// Each phrase's terms, lower-cased.
    phrases: Vec<Vec<String>>,
    dropped: Counter,
}

impl KeywordFilter {
    /// `track`: phrases, each of space-separated terms; an empty list or phrase is an error.
    pub fn new(component: &str, track: &[String], metrics: &Metrics) -> Result<Self, String> {
        let phrases: Vec<Vec<String>> = track
            .iter()
            .flat_map(|p| p.split(','))
            .map(|p| {
                p.split_whitespace()
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
            })
            .filter(|p| !p.is_empty())
            .collect();
        if phrases.is_empty() {
            return Err("`track` needs at least one keyword".into());
        }
        Ok(KeywordFilter {
            phrases,
            dropped: metrics.counter_labeled(
                names::RECORDS_FILTERED,
                component,
                Some(("reason", "no_keyword".into())),
            ),
        })
    }

    /// Whether post i matches; `words` and `urls` are reused buffers.
    fn matches(
        &self,
        posts: &PostBatch,
        i: usize,
        words: &mut Vec<String>,
        urls: &mut Vec<String>,
    ) -> bool {
        words.clear();
        urls.clear();
        for w in posts.text(i).split_whitespace() {
            let w = w.to_lowercase();
            if let Some(bare) = w.strip_prefix(['#', '@', '＃', '＠']) {
                words.push(bare.to_string());
            }
            words.push(w);
        }
        for (kind, v) in posts.entities(i) {
            match kind {
                EntityKind::Hashtag | EntityKind::Mention | EntityKind::Cashtag => {
                    words.push(v.to_lowercase())
                }
                EntityKind::Url => urls.push(v.to_lowercase()),
                EntityKind::Media | EntityKind::MediaType => {}
            }
        }
        self.phrases.iter().any(|phrase| {
            phrase.iter().all(|t| {
                words.iter().any(|w| w == t) || urls.iter().any(|u| u.contains(t.as_str()))
            })
        })
    }
}

impl Operator for KeywordFilter {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        let Batch::Posts(posts) = batch else {
            return Err(OperatorError::new(format!(
                "the keyword filter takes posts, got {}",
                batch.kind()
            )));
        };
        let mut kept = PostBatch::new(posts.origin.clone());
        let (mut words, mut urls) = (Vec::new(), Vec::new());
        for i in 0..posts.len() {
            if self.matches(&posts, i, &mut words, &mut urls) {
                kept.push_from(&posts, i);
            } else {
                self.dropped.inc();
            }
        }
        out.emit(Batch::Posts(Arc::new(kept)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(track: &[&str], texts: &[&str]) -> Vec<usize> {
        let track: Vec<String> = track.iter().map(|s| s.to_string()).collect();
        let mut f = KeywordFilter::new("f", &track, &Metrics::new()).unwrap();
        let mut posts = PostBatch::new("f".into());
        for (i, t) in texts.iter().enumerate() {
            posts.push(i as u64, None, None, t);
        }
        let mut out = Emitter::new();
        f.process_batch(Batch::Posts(Arc::new(posts)), &mut out)
            .unwrap();
        let Batch::Posts(k) = &out.batches[0] else {
            panic!()
        };
        k.lines.iter().map(|&l| l as usize).collect()
    }

    #[test]
    fn track_semantics() {
        let texts = [
            "INSEE publie",  // 0: case-insensitive
            "#Insee",        // 1: hashtag
            "insee.",        // 2: punctuation is part of the term
            "chômage insee", // 3: both terms of "insee chômage", any order
            "chômage",       // 4
        ];
        assert_eq!(kept(&["insee"], &texts), [0, 1, 3]);
        assert_eq!(kept(&["insee chômage"], &texts), [3]);
        assert_eq!(kept(&["chômage, publie"], &texts), [0, 3, 4]);
        assert!(KeywordFilter::new("f", &[" , ".into()], &Metrics::new()).is_err());
    }

    #[test]
    fn urls_and_entities_match() {
        let mut f =
            KeywordFilter::new("f", &["insee.fr".into(), "inseefr".into()], &Metrics::new())
                .unwrap();
        let mut posts = PostBatch::new("f".into());
        posts.push(1, None, None, "voir https://t.co/x");
        posts.push_entity(EntityKind::Url, "https://www.insee.fr/fr/statistiques");
        posts.push(2, None, None, "RT ...");
        posts.push_entity(EntityKind::Mention, "InseeFr");
        posts.push(3, None, None, "nothing");
        let mut out = Emitter::new();
        f.process_batch(Batch::Posts(Arc::new(posts)), &mut out)
            .unwrap();
        let Batch::Posts(k) = &out.batches[0] else {
            panic!()
        };
        assert_eq!(k.lines, [1, 2]);
    }
}
