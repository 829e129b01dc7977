//! The post model every input format maps onto (Twitter v1.1 and v2, Mastodon, Bluesky), kept
//! column by column: a batch of posts is a few flat buffers, not one allocation per field of
//! every post.

use std::sync::Arc;

use crate::EventTime;

/// Strings stored end to end in one buffer; `ends[i]` ends string i.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrColumn {
    data: String,
    ends: Vec<u32>,
}

impl StrColumn {
    pub fn push(&mut self, s: &str) {
        self.data.push_str(s);
        self.ends.push(self.data.len() as u32);
    }

    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..self.ends[i] as usize]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all strings together.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Where a post comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Platform {
    #[default]
    Twitter,
    Mastodon,
    Bluesky,
}

impl Platform {
    pub fn as_str(&self) -> &'static str {
        match self {
            Platform::Twitter => "twitter",
            Platform::Mastodon => "mastodon",
            Platform::Bluesky => "bluesky",
        }
    }
}

/// The kinds of entity a post's metadata lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// Without its `#`.
    Hashtag,
    /// An account name, without its `@` (`screen_name`, `acct`, a Bluesky handle or DID).
    Mention,
    /// Without its `$`.
    Cashtag,
    /// The expanded URL (not the t.co link).
    Url,
    /// The URL of an attached picture or video.
    Media,
    /// Its type: `photo`, `video`, `animated_gif`, `image`, `gifv`, `audio`...
    MediaType,
}

impl EntityKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityKind::Hashtag => "hashtag",
            EntityKind::Mention => "mention",
            EntityKind::Cashtag => "cashtag",
            EntityKind::Url => "url",
            EntityKind::Media => "media",
            EntityKind::MediaType => "media_type",
        }
    }
}

/// The fields of one post, borrowed while it is added to a batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostFields<'a> {
    pub platform: Platform,
    /// The platform's id ("" when unknown).
    pub id: &'a str,
    pub event_time: Option<EventTime>,
    pub text: &'a str,
    /// Screen name, `acct` or handle of the author ("" when unknown).
    pub author: &'a str,
    /// Language code as the platform gives it ("" when unknown).
    pub lang: &'a str,
    /// For a retweet / reblog / repost: the original's id and author.
    pub reposted_id: &'a str,
    pub reposted_author: &'a str,
    /// For a quote: the quoted post's id.
    pub quoted_id: &'a str,
    /// The author's followers when the post was captured.
    pub followers: Option<i64>,
    /// Reposts and likes the post had when captured.
    pub repost_count: Option<i64>,
    pub like_count: Option<i64>,
}

/// Parsed posts, column by column. Entities are added to the last post pushed.
#[derive(Debug, Clone, Default)]
pub struct PostBatch {
    pub origin: Arc<str>,
    /// 1-based line each post comes from (several posts may share a line: a v2 page).
    pub lines: Vec<u64>,
    pub event_times: Vec<Option<EventTime>>,
    pub platforms: Vec<Platform>,
    pub ids: StrColumn,
    texts: StrColumn,
    pub authors: StrColumn,
    pub langs: StrColumn,
    pub reposted_ids: StrColumn,
    pub reposted_authors: StrColumn,
    pub quoted_ids: StrColumn,
    pub followers: Vec<Option<i64>>,
    pub repost_counts: Vec<Option<i64>>,
    pub like_counts: Vec<Option<i64>>,
    entity_kinds: Vec<EntityKind>,
    entity_values: StrColumn,
    /// Post i's entities are `entity_ends[i-1]..entity_ends[i]`.
    entity_ends: Vec<u32>,
}

impl PostBatch {
    pub fn new(origin: Arc<str>) -> Self {
        PostBatch {
            origin,
            ..Default::default()
        }
    }

    /// A batch with room for `posts` posts and `text_bytes` of text, so a parser filling it
    /// from one raw batch does not grow (and copy) its columns a dozen times.
    pub fn with_capacity(origin: Arc<str>, posts: usize, text_bytes: usize) -> Self {
        let column = |bytes: usize| StrColumn {
            data: String::with_capacity(bytes),
            ends: Vec::with_capacity(posts),
        };
        PostBatch {
            origin,
            lines: Vec::with_capacity(posts),
            event_times: Vec::with_capacity(posts),
            platforms: Vec::with_capacity(posts),
            ids: column(posts * 20), // ~19 digits
            texts: column(text_bytes),
            authors: column(0),
            langs: column(0),
            reposted_ids: column(0),
            reposted_authors: column(0),
            quoted_ids: column(0),
            followers: Vec::with_capacity(posts),
            repost_counts: Vec::with_capacity(posts),
            like_counts: Vec::with_capacity(posts),
            entity_ends: Vec::with_capacity(posts),
            ..Default::default()
        }
    }

    /// Adds a post with just a text, an event time and a numeric id.
    pub fn push(&mut self, line: u64, id: Option<u64>, event_time: Option<EventTime>, text: &str) {
        let mut buf = itoa::Buffer::new();
        let id = id.map_or("", |id| buf.format(id));
        self.push_post(
            line,
            &PostFields {
                id,
                event_time,
                text,
                ..Default::default()
            },
        );
    }

    pub fn push_post(&mut self, line: u64, p: &PostFields<'_>) {
        self.lines.push(line);
        self.event_times.push(p.event_time);
        self.platforms.push(p.platform);
        self.ids.push(p.id);
        self.texts.push(p.text);
        self.authors.push(p.author);
        self.langs.push(p.lang);
        self.reposted_ids.push(p.reposted_id);
        self.reposted_authors.push(p.reposted_author);
        self.quoted_ids.push(p.quoted_id);
        self.followers.push(p.followers);
        self.repost_counts.push(p.repost_count);
        self.like_counts.push(p.like_count);
        self.entity_ends.push(self.entity_kinds.len() as u32);
    }

    /// Adds an entity to the last post pushed.
    pub fn push_entity(&mut self, kind: EntityKind, value: &str) {
        let Some(last) = self.entity_ends.last_mut() else {
            return;
        };
        self.entity_kinds.push(kind);
        self.entity_values.push(value);
        *last += 1;
    }

    /// Copies post `i` of `other` (with its entities) to the end of this batch.
    pub fn push_from(&mut self, other: &PostBatch, i: usize) {
        self.push_post(other.lines[i], &other.fields(i));
        for (kind, value) in other.entities(i) {
            self.push_entity(kind, value);
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn text(&self, i: usize) -> &str {
        self.texts.get(i)
    }

    pub fn id(&self, i: usize) -> &str {
        self.ids.get(i)
    }

    /// Bytes of text in the batch (for byte rates).
    pub fn text_bytes(&self) -> usize {
        self.texts.bytes()
    }

    /// Post i's fields.
    pub fn fields(&self, i: usize) -> PostFields<'_> {
        PostFields {
            platform: self.platforms[i],
            id: self.ids.get(i),
            event_time: self.event_times[i],
            text: self.texts.get(i),
            author: self.authors.get(i),
            lang: self.langs.get(i),
            reposted_id: self.reposted_ids.get(i),
            reposted_author: self.reposted_authors.get(i),
            quoted_id: self.quoted_ids.get(i),
            followers: self.followers[i],
            repost_count: self.repost_counts[i],
            like_count: self.like_counts[i],
        }
    }

    /// Post i's entities, in the order they were added.
    pub fn entities(&self, i: usize) -> impl Iterator<Item = (EntityKind, &str)> + '_ {
        let start = if i == 0 {
            0
        } else {
            self.entity_ends[i - 1] as usize
        };
        (start..self.entity_ends[i] as usize)
            .map(move |e| (self.entity_kinds[e], self.entity_values.get(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_batch_keeps_texts_apart() {
        let mut b = PostBatch::new("f".into());
        b.push(1, Some(7), Some(1000), "hello #a");
        b.push(2, None, None, "");
        b.push(3, None, None, "L’#emploi");
        assert_eq!(b.len(), 3);
        assert_eq!(b.text(0), "hello #a");
        assert_eq!(b.text(1), "");
        assert_eq!(b.text(2), "L’#emploi");
        assert_eq!((b.id(0), b.id(1)), ("7", ""));
    }

    #[test]
    fn entities_belong_to_their_post() {
        let mut b = PostBatch::new("f".into());
        b.push_post(
            1,
            &PostFields {
                author: "insee",
                text: "a",
                ..Default::default()
            },
        );
        b.push_entity(EntityKind::Hashtag, "Insee");
        b.push_entity(EntityKind::Mention, "InseeFr");
        b.push(2, None, None, "b");
        b.push(3, None, None, "c");
        b.push_entity(EntityKind::Url, "https://insee.fr");
        let e: Vec<_> = b.entities(0).collect();
        assert_eq!(
            e,
            [
                (EntityKind::Hashtag, "Insee"),
                (EntityKind::Mention, "InseeFr")
            ]
        );
        assert_eq!(b.entities(1).count(), 0);
        assert_eq!(
            b.entities(2).collect::<Vec<_>>(),
            [(EntityKind::Url, "https://insee.fr")]
        );
        let mut c = PostBatch::new("g".into());
        c.push_from(&b, 0);
        assert_eq!(c.fields(0).author, "insee");
        assert_eq!(c.entities(0).count(), 2);
    }
}
