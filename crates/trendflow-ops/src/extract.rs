//! Turns posts into the keys a statistic counts: who posted (most active accounts), whom they
//! mention, what they repost (most retweeted posts and accounts), which tags, link domains,
//! media and languages they use. One token per value (a post with three hashtags gives three),
//! optionally paired with a second field: the number a sum adds up, or the value a distinct
//! count counts.

use std::sync::Arc;

use trendflow_core::post::{EntityKind, PostFields};
use trendflow_core::{Batch, Emitter, Operator, OperatorError, PostBatch, TokenBatch};

use crate::formats::url_domain;
use crate::normalize::Normalize;

/// A field of the post model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    Author,
    Lang,
    Platform,
    /// A repost's original (posts that are not reposts have none).
    RepostedId,
    RepostedAuthor,
    QuotedId,
    /// Entities, with their sigil: `#tag`, `@name`, `$CASH`.
    Hashtags,
    Mentions,
    Cashtags,
    Urls,
    /// The domain of each URL (`insee.fr`).
    UrlDomains,
    Media,
    MediaTypes,
    /// Numbers (for sums): the author's followers, the post's reposts and likes at capture.
    Followers,
    RepostCount,
    LikeCount,
}

impl Field {
    pub const ALL: [(&'static str, Field); 17] = [
        ("id", Field::Id),
        ("author", Field::Author),
        ("lang", Field::Lang),
        ("platform", Field::Platform),
        ("reposted_id", Field::RepostedId),
        ("reposted_author", Field::RepostedAuthor),
        ("quoted_id", Field::QuotedId),
        ("hashtags", Field::Hashtags),
        ("mentions", Field::Mentions),
        ("cashtags", Field::Cashtags),
        ("urls", Field::Urls),
        ("url_domains", Field::UrlDomains),
        ("media", Field::Media),
        ("media_types", Field::MediaTypes),
        ("followers", Field::Followers),
        ("repost_count", Field::RepostCount),
        ("like_count", Field::LikeCount),
    ];

    pub fn parse(name: &str) -> Option<Field> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn name(&self) -> &'static str {
        Self::ALL.iter().find(|(_, f)| f == self).unwrap().0
    }

    /// What the parser must fill for this field.
    pub fn needs(&self) -> crate::formats::Needs {
        use crate::formats::Needs;
        match self {
            Field::Id | Field::Platform => Needs::TEXT_ONLY,
            Field::Hashtags
            | Field::Mentions
            | Field::Cashtags
            | Field::Urls
            | Field::UrlDomains
            | Field::Media
            | Field::MediaTypes => Needs {
                entities: true,
                details: false,
            },
            _ => Needs {
                entities: false,
                details: true,
            },
        }
    }

    /// Numeric fields (what a sum can add up).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Field::Followers | Field::RepostCount | Field::LikeCount
        )
    }

    /// The number of a numeric field.
    fn number(&self, f: &PostFields<'_>) -> Option<i64> {
        match self {
            Field::Followers => f.followers,
            Field::RepostCount => f.repost_count,
            Field::LikeCount => f.like_count,
            _ => None,
        }
    }

    /// Calls `each` with every non-empty value of this field in post i.
    fn for_each(&self, posts: &PostBatch, i: usize, mut each: impl FnMut(&str)) {
        let entity = |kind: EntityKind| posts.entities(i).filter(move |e| e.0 == kind);
        let mut buf = String::new();
        let mut sigil = |s: char, v: &str, each: &mut dyn FnMut(&str)| {
            buf.clear();
            buf.push(s);
            buf.push_str(v);
            each(&buf);
        };
        let f = posts.fields(i);
        let single = match self {
            Field::Id => f.id,
            Field::Author => f.author,
            Field::Lang => f.lang,
            Field::Platform => f.platform.as_str(),
            Field::RepostedId => f.reposted_id,
            Field::RepostedAuthor => f.reposted_author,
            Field::QuotedId => f.quoted_id,
            Field::Hashtags => {
                entity(EntityKind::Hashtag).for_each(|e| sigil('#', e.1, &mut each));
                return;
            }
            Field::Mentions => {
                entity(EntityKind::Mention).for_each(|e| sigil('@', e.1, &mut each));
                return;
            }
            Field::Cashtags => {
                entity(EntityKind::Cashtag).for_each(|e| sigil('$', e.1, &mut each));
                return;
            }
            Field::Urls => {
                entity(EntityKind::Url).for_each(|e| each(e.1));
                return;
            }
            Field::UrlDomains => {
                let mut lower = String::new();
                for (_, url) in entity(EntityKind::Url) {
                    if let Some(d) = url_domain(url) {
                        lower.clear();
                        lower.push_str(d);
                        lower.make_ascii_lowercase();
                        each(&lower);
                    }
                }
                return;
            }
            Field::Media => {
                entity(EntityKind::Media).for_each(|e| each(e.1));
                return;
            }
            Field::MediaTypes => {
                entity(EntityKind::MediaType).for_each(|e| each(e.1));
                return;
            }
            Field::Followers | Field::RepostCount | Field::LikeCount => {
                if let Some(n) = self.number(&f) {
                    each(itoa::Buffer::new().format(n));
                }
                return;
            }
        };
        if !single.is_empty() {
            each(single);
        }
    }
}

/// Hash of a value for distinct counts (FxHash: fast; a 64-bit collision merges two values,
/// about once in 10^9 for 200k distinct values per key and window).
fn hash_of(s: &str) -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(s.as_bytes());
    h.finish() as i64
}

/// What the second field gives each token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Its number (posts without it give no token).
    Number(Field),
    /// A hash of each of its values (for a distinct count; posts without it give no token).
    Distinct(Field),
}

/// The extract operator: posts in, one token per value of `key` out.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, Emitter, Operator, PostBatch, post::{EntityKind, PostFields}};
/// use trendflow_ops::extract::{Extract, Field};
///
/// let mut posts = PostBatch::new("f".into());
/// posts.push_post(1, &PostFields { author: "insee", text: "RT @InseeFr ...", reposted_author: "InseeFr", ..Default::default() });
/// posts.push_entity(EntityKind::Mention, "InseeFr");
/// let mut out = Emitter::new();
/// Extract::new(Field::Mentions, None).process_batch(Batch::Posts(Arc::new(posts)), &mut out).unwrap();
/// let Batch::Tokens(t) = &out.batches[0] else { panic!() };
/// assert_eq!(t.token(0), "@InseeFr");
/// ```
pub struct Extract {
    key: Field,
    value: Option<Value>,
    normalize: Normalize,
}

impl Extract {
    pub fn new(key: Field, value: Option<Value>) -> Self {
        Extract {
            key,
            value,
            normalize: Normalize::default(),
        }
    }

    pub fn with_normalize(mut self, normalize: Normalize) -> Self {
        self.normalize = normalize;
        self
    }
}

impl Operator for Extract {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        let Batch::Posts(posts) = batch else {
            return Err(OperatorError::new(format!(
                "extract takes posts, got {}",
                batch.kind()
            )));
        };
        let mut tokens = TokenBatch::with_capacity(posts.len(), posts.len() * 16);
        let mut buf = String::new();
        let mut values = Vec::new();
        for i in 0..posts.len() {
            let t = posts.event_times[i];
            values.clear();
            match self.value {
                None => {}
                Some(Value::Number(f)) => match f.number(&posts.fields(i)) {
                    Some(n) => values.push(n),
                    None => continue,
                },
                Some(Value::Distinct(f)) => {
                    f.for_each(&posts, i, |v| values.push(hash_of(v)));
                    if values.is_empty() {
                        continue;
                    }
                }
            }
            let normalize = self.normalize;
            self.key.for_each(&posts, i, |k| {
                let k = normalize.apply(k, &mut buf);
                if self.value.is_none() {
                    tokens.push(t, k);
                } else {
                    for &v in &values {
                        tokens.push_valued(t, k, v);
                    }
                }
            });
        }
        out.emit(Batch::Tokens(Arc::new(tokens)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trendflow_core::post::PostFields;

    fn posts() -> PostBatch {
        let mut p = PostBatch::new("f".into());
        p.push_post(
            1,
            &PostFields {
                author: "a",
                followers: Some(10),
                reposted_id: "9",
                reposted_author: "Insee",
                ..Default::default()
            },
        );
        p.push_entity(EntityKind::Hashtag, "Emploi");
        p.push_entity(EntityKind::Hashtag, "INSEE");
        p.push_entity(EntityKind::Url, "https://WWW.Insee.fr/x");
        p.push_post(
            2,
            &PostFields {
                author: "b",
                ..Default::default()
            },
        );
        p.push_entity(EntityKind::Hashtag, "insee");
        p
    }

    fn run(op: &mut Extract) -> Vec<(String, i64)> {
        let mut out = Emitter::new();
        op.process_batch(Batch::Posts(Arc::new(posts())), &mut out)
            .unwrap();
        let Batch::Tokens(t) = &out.batches[0] else {
            panic!()
        };
        (0..t.len())
            .map(|i| (t.token(i).to_string(), t.value(i)))
            .collect()
    }

    #[test]
    fn keys_of_each_field() {
        let keys = |f| {
            run(&mut Extract::new(f, None))
                .into_iter()
                .map(|x| x.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(Field::Hashtags), ["#Emploi", "#INSEE", "#insee"]);
        assert_eq!(keys(Field::Author), ["a", "b"]);
        assert_eq!(keys(Field::RepostedAuthor), ["Insee"]);
        assert_eq!(keys(Field::UrlDomains), ["insee.fr"]);
        assert_eq!(keys(Field::Followers), ["10"]);
    }

    #[test]
    fn values_and_normalisation() {
        let mut sum = Extract::new(Field::Author, Some(Value::Number(Field::Followers)));
        assert_eq!(run(&mut sum), [("a".to_string(), 10)]);
        let mut distinct = Extract::new(Field::Hashtags, Some(Value::Distinct(Field::Author)))
            .with_normalize(Normalize {
                lowercase: true,
                nfc: true,
            });
        let got = run(&mut distinct);
        let keys: Vec<_> = got.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(keys, ["#emploi", "#insee", "#insee"]);
        assert_ne!(got[1].1, got[2].1, "two authors, two values");
    }
}
