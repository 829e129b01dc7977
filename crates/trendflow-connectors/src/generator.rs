//! A synthetic, deterministic stand-in for Twitter's v1.1 streaming API.
//!
//! The Spark Structured Streaming tutorial this project reproduces read tweets from the
//! `statuses/filter` endpoint (tracking French statistics keywords such as "insee",
//! "chômage", "inflation") and counted trending hashtags over sliding event-time windows.
//! That endpoint is gone, so this module writes the same kind of data: one JSON object per
//! line, shaped and escaped exactly as Twitter sent it, with the quirks that make parsing
//! and tokenising real tweets hard:
//!
//! * **Full v1.1 status objects**, 3–5 KB each: the `user` object with its ~40 fields,
//!   `entities` (`hashtags` with code-point `indices`, `user_mentions`, `urls`, `symbols`),
//!   `source`, `in_reply_to_*`, `geo`/`coordinates`/`place`, `lang` (mostly `"fr"`),
//!   `filter_level`, `timestamp_ms`, increasing snowflake `id`s and `created_at` in Twitter's
//!   `"Thu Apr 15 08:00:05 +0000 2021"` format.
//! * **Retweets** (30% by default): `"RT @author: "` plus the original text cut to 140
//!   characters with `…` (which may cut a hashtag in two), and a nested `retweeted_status`
//!   with its own user, entities and older `created_at`. About 5% of tweets are **quote
//!   tweets** with a nested `quoted_status`.
//! * **Long tweets** (over 140 characters, about a third of original tweets) arrive as the
//!   compatibility-mode API delivered them: `truncated: true`, a `text` cut at a word
//!   boundary followed by `… https://t.co/…`, and the whole text in
//!   `extended_tweet.full_text` with its own `display_text_range` and `entities`. Hashtags
//!   that only appear past the cut are only found in `extended_tweet`.
//! * **French text** about statistics and the economy, built from sentence templates and a
//!   vocabulary (see `generator/vocabulary.rs`), with emojis inside and outside the Basic
//!   Multilingual Plane (👉 📊 ✊ 🇫🇷), typographic apostrophes and narrow no-break spaces.
//! * **Hashtags** drawn from a Zipf law (s = 1.1) over about 300 tags, including accented
//!   ones and case variants that a word count must keep apart (`#Insee`, `#INSEE`,
//!   `#insee`), often glued to punctuation the way people write: `L’#emploi`, `d’#INSEE`,
//!   `(#inflation)`, `#PIB.`, `«#économie»`, `#loyers, #APL et #HLM`, `"\n\n#pauvreté."`.
//! * **Stream control messages** (~0.3% of lines): `delete` notices for earlier tweets and,
//!   rarely, `limit` notices.
//! * **Twitter's JSON escaping**: every non-ASCII character as `\uXXXX` (astral ones as
//!   surrogate pairs, `\ud83d\udc49`), `/` as `\/`, the usual `\"` `\\` `\n` `\r` `\t`, other
//!   control characters as `\u00XX`. The output is therefore pure ASCII.
//! * **Event time**: a simulated clock starts at [`GeneratorConfig::start_ms`] and advances by
//!   exponential inter-arrival times (a Poisson stream of [`GeneratorConfig::rate`] tweets
//!   per second). `timestamp_ms` is the clock (arrival); `created_at` is the clock too, except
//!   for a [`GeneratorConfig::late_fraction`] of tweets dated earlier by up to
//!   [`GeneratorConfig::late_max_ms`]: the late data a watermark has to deal with.
//! * **Malformed lines** ([`GeneratorConfig::bad_fraction`]): empty lines, JSON cut at a
//!   random byte, raw invalid UTF-8 inside the text, a lone surrogate escape (`\ud83d` not
//!   followed by a low surrogate), and a `created_at` that is missing or not in Twitter's
//!   format. Each kind is counted in [`GenerateStats`].
//!
//! Everything comes from one seeded PRNG (xoshiro256\*\*), so the same configuration always
//! produces byte-identical output. JSON is written by hand into a reused buffer; a release
//! build generates well over 100 MB/s on one core.
//!
//! ```rust
//! use trendflow_connectors::generator::{GeneratorConfig, LineKind, TweetGenerator};
//!
//! let mut generator = TweetGenerator::new(GeneratorConfig { seed: 7, ..GeneratorConfig::default() });
//! let mut buf = Vec::new();
//! for _ in 0..20 {
//!     let start = buf.len();
//!     let kind = generator.next_line(&mut buf);
//!     let line = &buf[start..buf.len() - 1];
//!     assert_eq!(buf.last(), Some(&b'\n'));
//!     assert!(line.is_ascii(), "Twitter escapes every non-ASCII character");
//!     let value: serde_json::Value = serde_json::from_slice(line).unwrap();
//!     match kind {
//!         LineKind::Tweet | LineKind::Retweet => {
//!             assert!(value["created_at"].as_str().unwrap().ends_with(" +0000 2021"));
//!             assert!(value["user"]["screen_name"].is_string());
//!             assert!(value["entities"]["hashtags"].is_array());
//!             assert_eq!(kind == LineKind::Retweet, value.get("retweeted_status").is_some());
//!         }
//!         LineKind::Control => assert!(value.get("delete").is_some() || value.get("limit").is_some()),
//!         LineKind::Bad(_) => unreachable!("bad_fraction is 0 by default"),
//!     }
//! }
//! assert_eq!(generator.stats().lines, 20);
//! // Same seed, same bytes.
//! let mut again = TweetGenerator::new(GeneratorConfig { seed: 7, ..GeneratorConfig::default() });
//! let mut buf2 = Vec::new();
//! for _ in 0..20 {
//!     again.next_line(&mut buf2);
//! }
//! assert_eq!(buf, buf2);
//! ```

mod vocabulary;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use trendflow_core::time::{civil_from_days, days_from_civil};

use vocabulary as voc;

/// Twitter's snowflake epoch, 2010-11-04T01:42:54.657Z.
const TWEPOCH: i64 = 1_288_834_974_657;
/// Share of lines that are stream control messages.
const CONTROL_FRACTION: f64 = 0.003;
/// Share of control messages that are `limit` notices (the others are `delete`s).
const LIMIT_SHARE: f64 = 0.1;
/// Share of all tweets that quote another one.
const QUOTE_FRACTION: f64 = 0.05;
/// Share of original tweets that reply to another one.
const REPLY_FRACTION: f64 = 0.08;
/// Accounts besides the notable ones.
const RANDOM_USERS: usize = 4000;
/// Tweets remembered for `delete` notices.
const RECENT: usize = 512;
/// Longest text, in code points.
const TEXT_LIMIT: u32 = 280;
/// Longest `text` of the compatibility mode, in code points.
const COMPAT_LIMIT: u32 = 140;
/// Length of a t.co link.
const TCO_LEN: u32 = 23;
/// Longest comment of a quote tweet (its link follows).
const QUOTE_COMMENT_LIMIT: u32 = COMPAT_LIMIT - TCO_LEN - 1;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Seed of the PRNG: the same configuration always gives the same bytes.
    pub seed: u64,
    /// Event time (ms since the epoch) of the first tweet.
    pub start_ms: i64,
    /// Tweets per second of event time (mean of the exponential inter-arrival is 1000/rate ms).
    pub rate: f64,
    /// Share of tweets whose `created_at` is earlier than their arrival (`timestamp_ms`).
    pub late_fraction: f64,
    /// Largest delay of a late tweet, ms (the delay is uniform in (0, late_max_ms]).
    pub late_max_ms: i64,
    /// Share of lines that are malformed.
    pub bad_fraction: f64,
    /// Share of tweets that are retweets.
    pub retweet_fraction: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            start_ms: 1_618_473_600_000, // 2021-04-15T08:00:00Z
            rate: 1.0,
            late_fraction: 0.03,
            late_max_ms: 15 * 60_000,
            bad_fraction: 0.0,
            retweet_fraction: 0.3,
        }
    }
}

/// What a generated line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// An original tweet (possibly a reply or a quote tweet).
    Tweet,
    /// A retweet, with its `retweeted_status`.
    Retweet,
    /// A `delete` or `limit` stream control message.
    Control,
    /// A malformed line.
    Bad(BadKind),
}

/// How a malformed line is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadKind {
    /// An empty line.
    Empty,
    /// A tweet cut at a random byte: not valid JSON.
    Truncated,
    /// Raw invalid UTF-8 (`\xff`, `\xc3\x28`, ...) inside the text.
    InvalidUtf8,
    /// A high surrogate escape (`\ud83d`) not followed by a low one, or a lone low one.
    LoneSurrogate,
    /// Valid JSON whose `created_at` is missing, null, empty or not in Twitter's format.
    BadCreatedAt,
}

impl BadKind {
    /// Every kind, in a fixed order.
    pub const ALL: [BadKind; 5] = [
        BadKind::Empty,
        BadKind::Truncated,
        BadKind::InvalidUtf8,
        BadKind::LoneSurrogate,
        BadKind::BadCreatedAt,
    ];
}

/// Counters of what a generator produced.
///
/// `lines = tweets + retweets + control + bad`; `quotes` and `extended` are subsets of
/// `tweets` (top-level quote tweets, and top-level tweets delivered with `truncated: true`);
/// `late` counts good tweets and retweets whose `created_at` was moved before their
/// arrival. `min_event_time`/`max_event_time` are the extreme `created_at` of good tweets and
/// retweets, ms since the epoch, at the one-second resolution of `created_at`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenerateStats {
    pub lines: u64,
    pub bytes: u64,
    pub tweets: u64,
    pub retweets: u64,
    pub quotes: u64,
    pub extended: u64,
    pub late: u64,
    pub control: u64,
    pub bad: u64,
    pub min_event_time: Option<i64>,
    pub max_event_time: Option<i64>,
    /// Malformed lines by kind ([`BadKind::Empty`] ...).
    pub bad_empty: u64,
    pub bad_truncated: u64,
    pub bad_invalid_utf8: u64,
    pub bad_lone_surrogate: u64,
    pub bad_created_at: u64,
}

impl GenerateStats {
    /// Malformed lines of one kind.
    pub fn bad_of_kind(&self, kind: BadKind) -> u64 {
        match kind {
            BadKind::Empty => self.bad_empty,
            BadKind::Truncated => self.bad_truncated,
            BadKind::InvalidUtf8 => self.bad_invalid_utf8,
            BadKind::LoneSurrogate => self.bad_lone_surrogate,
            BadKind::BadCreatedAt => self.bad_created_at,
        }
    }

    fn count_bad(&mut self, kind: BadKind) {
        self.bad += 1;
        *match kind {
            BadKind::Empty => &mut self.bad_empty,
            BadKind::Truncated => &mut self.bad_truncated,
            BadKind::InvalidUtf8 => &mut self.bad_invalid_utf8,
            BadKind::LoneSurrogate => &mut self.bad_lone_surrogate,
            BadKind::BadCreatedAt => &mut self.bad_created_at,
        } += 1;
    }
}

/// Generates the stream, one line at a time. See the [module documentation](self).
pub struct TweetGenerator {
    cfg: GeneratorConfig,
    rng: Rng,
    t: Tables,
    /// `statuses_count` of every user, bumped when they tweet.
    statuses: Vec<u64>,
    clock: i64,
    clock_frac: f64,
    started: bool,
    last_id: u64,
    /// (tweet id, user id) of recent tweets, for `delete` notices.
    recent: Vec<(u64, u64)>,
    recent_pos: usize,
    limit_track: u64,
    stats: GenerateStats,
    main: TextBuf,
    main_short: TextBuf,
    orig: TextBuf,
    orig_short: TextBuf,
    scratch: String,
    bad_created: String,
}

impl TweetGenerator {
    pub fn new(config: GeneratorConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let t = Tables::new(&mut rng);
        let statuses = t.users.iter().map(|u| u.statuses).collect();
        let clock = config.start_ms;
        Self {
            cfg: config,
            rng,
            t,
            statuses,
            clock,
            clock_frac: 0.0,
            started: false,
            last_id: 0,
            recent: Vec::with_capacity(RECENT),
            recent_pos: 0,
            limit_track: 0,
            stats: GenerateStats::default(),
            main: TextBuf::default(),
            main_short: TextBuf::default(),
            orig: TextBuf::default(),
            orig_short: TextBuf::default(),
            scratch: String::new(),
            bad_created: String::new(),
        }
    }

    /// Appends one line (with its trailing '\n') to `out`.
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> LineKind {
        let start = out.len();
        let kind = if self.cfg.bad_fraction > 0.0 && self.rng.chance(self.cfg.bad_fraction) {
            let kind = BadKind::ALL[self.rng.index(BadKind::ALL.len())];
            self.bad_line(out, kind);
            self.stats.count_bad(kind);
            LineKind::Bad(kind)
        } else if self.rng.chance(CONTROL_FRACTION) {
            self.control(out);
            self.stats.control += 1;
            LineKind::Control
        } else {
            self.status(out, Mode::Good)
        };
        out.push(b'\n');
        self.stats.lines += 1;
        self.stats.bytes += (out.len() - start) as u64;
        kind
    }

    /// Event-time clock (ms) of the last generated tweet.
    pub fn clock_ms(&self) -> i64 {
        self.clock
    }

    /// Moves the event-time clock; the next tweet arrives an inter-arrival time later (or at
    /// `t` exactly if no tweet was generated yet).
    pub fn set_clock_ms(&mut self, t: i64) {
        self.clock = t;
        self.clock_frac = 0.0;
    }

    pub fn stats(&self) -> &GenerateStats {
        &self.stats
    }

    fn advance_clock(&mut self) {
        if !self.started {
            self.started = true;
            return;
        }
        let rate = if self.cfg.rate.is_finite() && self.cfg.rate > 0.0 {
            self.cfg.rate
        } else {
            1.0
        };
        let dt = self.rng.exp(1000.0 / rate) + self.clock_frac;
        let whole = dt.floor();
        self.clock += whole as i64;
        self.clock_frac = dt - whole;
    }

    /// A snowflake id for a tweet arriving at `ms`, larger than every previous one.
    fn next_id(&mut self, ms: i64) -> u64 {
        let candidate = snowflake(ms, self.rng.below(1 << 22));
        let id = candidate.max(self.last_id + 1);
        self.last_id = id;
        id
    }

    /// Who posts an original tweet or a retweet: mostly ordinary accounts (a few of them
    /// very active), sometimes an institution.
    fn pick_poster(&mut self) -> u32 {
        if self.rng.chance(0.03) {
            self.t.notable_zipf.sample(&mut self.rng) as u32
        } else {
            (self.t.notable + self.t.user_zipf.sample(&mut self.rng)) as u32
        }
    }

    /// Author of a retweeted or quoted tweet: institutions and media get retweeted a lot.
    fn pick_author(&mut self) -> u32 {
        if self.rng.chance(0.45) {
            self.t.notable_zipf.sample(&mut self.rng) as u32
        } else {
            (self.t.notable + self.t.user_zipf.sample(&mut self.rng)) as u32
        }
    }

    fn control(&mut self, out: &mut Vec<u8>) {
        let ts = self.clock;
        if self.recent.is_empty() || self.rng.chance(LIMIT_SHARE) {
            self.limit_track += 1 + self.rng.below(200);
            out.extend_from_slice(b"{\"limit\":{\"track\":");
            push_u64(out, self.limit_track);
            out.extend_from_slice(b",\"timestamp_ms\":\"");
            push_i64(out, ts);
            out.extend_from_slice(b"\"}}");
        } else {
            let (id, user) = self.recent[self.rng.index(self.recent.len())];
            out.extend_from_slice(b"{\"delete\":{\"status\":{\"id\":");
            push_u64(out, id);
            out.extend_from_slice(b",\"id_str\":\"");
            push_u64(out, id);
            out.extend_from_slice(b"\",\"user_id\":");
            push_u64(out, user);
            out.extend_from_slice(b",\"user_id_str\":\"");
            push_u64(out, user);
            out.extend_from_slice(b"\"},\"timestamp_ms\":\"");
            push_i64(out, ts);
            out.extend_from_slice(b"\"}}");
        }
    }

    fn bad_line(&mut self, out: &mut Vec<u8>, kind: BadKind) {
        let start = out.len();
        match kind {
            BadKind::Empty => {}
            BadKind::BadCreatedAt => {
                self.status(out, Mode::BadCreatedAt);
            }
            BadKind::Truncated => {
                self.status(out, Mode::Silent);
                let len = out.len() - start;
                let cut = 1 + self.rng.index(len - 1);
                out.truncate(start + cut);
            }
            BadKind::InvalidUtf8 | BadKind::LoneSurrogate => {
                self.status(out, Mode::Silent);
                let at = text_insert_point(&out[start..]) + start;
                let insert: &[u8] = if kind == BadKind::InvalidUtf8 {
                    self.rng.pick(&[
                        b"\xff".as_slice(),
                        b"\xc3\x28",
                        b"\xfe\xfe",
                        b"\xc0\xaf",
                        b"\xed\xa0\xbd",
                    ])
                } else {
                    self.rng
                        .pick(&[b"\\ud83d".as_slice(), b"\\ud83d", b"\\ud83c", b"\\ude00"])
                };
                out.splice(at..at, insert.iter().copied());
            }
        }
    }

    /// Generates one tweet or retweet into `out` (no newline). Counted in the stats only in
    /// `Mode::Good`.
    fn status(&mut self, out: &mut Vec<u8>, mode: Mode) -> LineKind {
        self.advance_clock();
        let arrival = self.clock;
        let late = self.cfg.late_fraction > 0.0
            && self.cfg.late_max_ms > 0
            && self.rng.chance(self.cfg.late_fraction);
        let created = if late {
            arrival - 1 - self.rng.below(self.cfg.late_max_ms as u64) as i64
        } else {
            arrival
        };
        let id = self.next_id(arrival);
        let user = self.pick_poster();
        self.statuses[user as usize] += 1;
        let rf = self.cfg.retweet_fraction.clamp(0.0, 1.0);
        let qf = QUOTE_FRACTION.min(1.0 - rf);
        let roll = self.rng.unit();
        let kind = if roll < rf {
            Kind::Retweet
        } else if roll < rf + qf {
            Kind::Quote
        } else {
            Kind::Original
        };

        let bad_created = if mode == Mode::BadCreatedAt {
            Some(self.bad_created_at(created))
        } else {
            None
        };
        let author = if kind == Kind::Original {
            0
        } else {
            self.pick_author()
        };
        let source = self.t.pick_source(&mut self.rng);
        let place = self.pick_place();
        let mut reply = None;
        let lang;

        // Texts first (they need the PRNG), then the status objects borrowing them.
        let mut composer = Composer {
            rng: &mut self.rng,
            t: &self.t,
            plural: false,
        };
        let mut orig_meta = None;
        match kind {
            Kind::Original => {
                if composer.rng.chance(REPLY_FRACTION) {
                    let to = (self.t.notable + self.t.user_zipf.sample(composer.rng)) as u32;
                    let back = 60_000 + composer.rng.below(2 * 86_400_000) as i64;
                    reply = Some((snowflake(created - back, composer.rng.below(1 << 22)), to));
                }
                lang = composer.original(&mut self.main, reply.map(|r| r.1));
                if self.main.chars > COMPAT_LIMIT {
                    make_truncated(&mut self.main_short, &self.main, id, composer.rng);
                }
            }
            Kind::Retweet | Kind::Quote => {
                let age = 1000 + composer.rng.exp(2.0 * 3_600_000.0) as i64;
                let orig_created = created - age;
                let orig_id = snowflake(orig_created, composer.rng.below(1 << 22));
                let orig_lang = composer.original(&mut self.orig, None);
                if self.orig.chars > COMPAT_LIMIT {
                    make_truncated(&mut self.orig_short, &self.orig, orig_id, composer.rng);
                }
                let rt = 1 + composer.rng.log_uniform(1.0, 3000.0);
                let counts = [
                    composer.rng.below(rt / 5 + 1),
                    composer.rng.below(rt / 3 + 1),
                    rt,
                    rt + composer.rng.below(4 * rt + 1),
                ];
                let orig_source = self.t.pick_source(composer.rng);
                orig_meta = Some((orig_created, orig_id, orig_lang, counts, orig_source));
                let screen_name = &self.t.users[author as usize].screen_name;
                if kind == Kind::Retweet {
                    let m = &mut self.main;
                    m.clear();
                    m.push("RT ");
                    m.mention(author, screen_name);
                    m.push(": ");
                    let room = COMPAT_LIMIT - m.chars;
                    if self.orig.chars <= room {
                        m.append_prefix(&self.orig, self.orig.chars);
                    } else {
                        m.append_prefix(&self.orig, room - 1);
                        m.push("…");
                    }
                    lang = orig_lang;
                } else {
                    lang = composer.quote_comment(&mut self.main);
                    self.main.push(" ");
                    self.main.url(
                        composer.rng,
                        UrlTarget::Status {
                            user: author,
                            id: orig_id,
                        },
                    );
                }
            }
        }

        let orig_status;
        let nested = match orig_meta {
            Some((orig_created, orig_id, orig_lang, counts, orig_source)) => {
                let long = self.orig.chars > COMPAT_LIMIT;
                orig_status = Status {
                    id: orig_id,
                    created: Created::Ms(orig_created),
                    text: if long { &self.orig_short } else { &self.orig },
                    full: if long { Some(&self.orig) } else { None },
                    display_from: 0,
                    user: author,
                    statuses_count: self.statuses[author as usize],
                    source: orig_source,
                    reply: None,
                    place: None,
                    counts,
                    retweeted: None,
                    quoted: None,
                    lang: orig_lang,
                    timestamp_ms: None,
                };
                Some(&orig_status)
            }
            None => None,
        };
        let long = kind == Kind::Original && self.main.chars > COMPAT_LIMIT;
        let display_from = match reply {
            Some((_, to)) => 2 + self.t.users[to as usize].screen_name.len() as u32,
            None => 0,
        };
        let top = Status {
            id,
            created: match bad_created {
                None => Created::Ms(created),
                Some(BadCreated::Str) => Created::Str(&self.bad_created),
                Some(BadCreated::Null) => Created::Null,
                Some(BadCreated::Missing) => Created::Missing,
            },
            text: if long { &self.main_short } else { &self.main },
            full: if long { Some(&self.main) } else { None },
            display_from,
            user,
            statuses_count: self.statuses[user as usize],
            source,
            reply,
            place,
            counts: [0; 4],
            retweeted: if kind == Kind::Retweet { nested } else { None },
            quoted: if kind == Kind::Quote { nested } else { None },
            lang,
            timestamp_ms: Some(arrival),
        };
        let line_kind = if kind == Kind::Retweet {
            LineKind::Retweet
        } else {
            LineKind::Tweet
        };
        write_status(out, &self.t, &top, &mut self.scratch);

        if mode == Mode::Good {
            let s = &mut self.stats;
            match kind {
                Kind::Retweet => s.retweets += 1,
                Kind::Quote => {
                    s.tweets += 1;
                    s.quotes += 1;
                }
                Kind::Original => s.tweets += 1,
            }
            if long {
                s.extended += 1;
            }
            if late {
                s.late += 1;
            }
            let event = created.div_euclid(1000) * 1000;
            s.min_event_time = Some(s.min_event_time.map_or(event, |m| m.min(event)));
            s.max_event_time = Some(s.max_event_time.map_or(event, |m| m.max(event)));
            let entry = (id, self.t.users[user as usize].id);
            if self.recent.len() < RECENT {
                self.recent.push(entry);
            } else {
                self.recent[self.recent_pos] = entry;
                self.recent_pos = (self.recent_pos + 1) % RECENT;
            }
        }
        line_kind
    }

    /// A `created_at` that is not in Twitter's format (written into `self.bad_created`).
    fn bad_created_at(&mut self, ms: i64) -> BadCreated {
        let mut b = Vec::with_capacity(32);
        self.bad_created.clear();
        match self.rng.below(7) {
            0 => {
                // seconds since the epoch, as a string
                push_i64(&mut b, ms.div_euclid(1000));
            }
            1 => {
                // no seconds: "Thu Apr 15 15:43 +0000 2021"
                write_created_at(&mut b, ms);
                b.drain(16..19);
            }
            2 => {}
            3 => return BadCreated::Missing,
            4 => return BadCreated::Null,
            5 => {
                // ISO 8601
                let secs = ms.div_euclid(1000);
                let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
                let sod = secs.rem_euclid(86_400);
                let _ = write!(
                    b,
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
                    sod / 3600,
                    sod % 3600 / 60,
                    sod % 60
                );
                b.extend_from_slice(if self.rng.chance(0.5) {
                    b"Z".as_slice()
                } else {
                    b".000Z"
                });
            }
            _ => {
                // RFC 2822: "Thu, 15 Apr 2021 15:43:36 +0000"
                let mut c = Vec::with_capacity(30);
                write_created_at(&mut c, ms);
                b.extend_from_slice(&c[0..3]);
                b.extend_from_slice(b", ");
                b.extend_from_slice(&c[8..10]);
                b.push(b' ');
                b.extend_from_slice(&c[4..7]);
                b.push(b' ');
                b.extend_from_slice(&c[26..30]);
                b.push(b' ');
                b.extend_from_slice(&c[11..25]);
            }
        }
        self.bad_created
            .push_str(std::str::from_utf8(&b).expect("ASCII"));
        BadCreated::Str
    }

    fn pick_place(&mut self) -> Option<(usize, Option<(f64, f64)>)> {
        if !self.rng.chance(0.03) {
            return None;
        }
        let i = self.rng.index(self.t.places.len());
        let point = if self.rng.chance(0.3) {
            let (w, s, e, n) = self.t.places[i].bbox;
            Some((w + (e - w) * self.rng.unit(), s + (n - s) * self.rng.unit()))
        } else {
            None
        };
        Some((i, point))
    }
}

/// Writes `files` files of `per_file` lines each, named tweets-000000.json,
/// tweets-000001.json, ... (numbering continues from `first_index`) into `dir` (created if
/// missing). Each file is written under a hidden temporary name (".tweets-000000.json.tmp")
/// and renamed into place, so a reader never sees half a file. `on_file(index, bytes)` is
/// called after each file.
pub fn write_files(
    dir: &Path,
    first_index: u64,
    files: u64,
    per_file: u64,
    generator: &mut TweetGenerator,
    on_file: &mut dyn FnMut(u64, u64),
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut buf = Vec::with_capacity(1 << 20);
    for index in first_index..first_index + files {
        let name = format!("tweets-{index:06}.json");
        let tmp = dir.join(format!(".{name}.tmp"));
        let result = (|| -> io::Result<u64> {
            let mut file = fs::File::create(&tmp)?;
            let mut bytes = 0u64;
            buf.clear();
            for _ in 0..per_file {
                generator.next_line(&mut buf);
                if buf.len() >= 1 << 20 {
                    file.write_all(&buf)?;
                    bytes += buf.len() as u64;
                    buf.clear();
                }
            }
            file.write_all(&buf)?;
            bytes += buf.len() as u64;
            buf.clear();
            file.flush()?;
            drop(file);
            fs::rename(&tmp, dir.join(&name))?;
            Ok(bytes)
        })();
        match result {
            Ok(bytes) => on_file(index, bytes),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// PRNG and distributions
// ---------------------------------------------------------------------------------------------

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** seeded by SplitMix64.
#[derive(Debug, Clone)]
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut sm = seed;
        Rng([
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ])
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, n) (Lemire's multiply-shift; the bias is negligible here).
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    #[inline]
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in [lo, hi].
    #[inline]
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in [0, 1).
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    #[inline]
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    #[inline]
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.index(xs.len())]
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    fn log_uniform(&mut self, lo: f64, hi: f64) -> u64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp() as u64
    }
}

/// Zipf law over ranks 0..n: P(k) ∝ 1/(k+1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let cdf = (1..=n)
            .map(|k| {
                acc += (k as f64).powf(-s);
                acc
            })
            .collect();
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit() * self.cdf[self.cdf.len() - 1];
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

fn snowflake(ms: i64, low: u64) -> u64 {
    (((ms - TWEPOCH).max(0) as u64) << 22) | (low & ((1 << 22) - 1))
}

// ---------------------------------------------------------------------------------------------
// Tables built once per generator
// ---------------------------------------------------------------------------------------------

struct UserRec {
    id: u64,
    screen_name: String,
    /// `{"id":...` up to `"statuses_count":`.
    head: Vec<u8>,
    /// From `,"created_at":` to the closing brace.
    tail: Vec<u8>,
    /// `{"screen_name":...,"indices":[` of a user_mentions entry.
    mention: Vec<u8>,
    statuses: u64,
}

struct PlaceRec {
    json: Vec<u8>,
    bbox: (f64, f64, f64, f64),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    Subj,
    SubjLower,
    Verb,
    Num,
    Count,
    Period,
    Source,
    Place,
    Topic,
    Comment,
    Emoji,
    Year,
    Hash,
    HashStart,
    Notable,
    User,
}

#[derive(Clone, Copy, Debug)]
enum Piece {
    Lit(&'static str),
    Slot(Slot),
}

type Template = Vec<Piece>;

fn parse_template(t: &'static str) -> Template {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Lit(&rest[..open]));
        }
        let close = open + rest[open..].find('}').expect("unclosed slot in template");
        out.push(Piece::Slot(match &rest[open + 1..close] {
            "S" => Slot::Subj,
            "s" => Slot::SubjLower,
            "V" => Slot::Verb,
            "N" => Slot::Num,
            "X" => Slot::Count,
            "P" => Slot::Period,
            "SRC" => Slot::Source,
            "L" => Slot::Place,
            "T" => Slot::Topic,
            "C" => Slot::Comment,
            "E" => Slot::Emoji,
            "Y" => Slot::Year,
            "H" => Slot::Hash,
            "HS" => Slot::HashStart,
            "M" => Slot::Notable,
            "U" => Slot::User,
            other => panic!("unknown slot {{{other}}} in template {t:?}"),
        }));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest));
    }
    out
}

struct Tables {
    sentences: Vec<Template>,
    openers: Vec<Template>,
    quote_comments: Vec<Template>,
    en_sentences: Vec<Template>,
    subjects_lower: Vec<String>,
    tag_zipf: Zipf,
    tag_vowel: Vec<bool>,
    users: Vec<UserRec>,
    /// Users 0..notable are the institutions and media of `voc::NOTABLE`.
    notable: usize,
    notable_zipf: Zipf,
    user_zipf: Zipf,
    sources: Vec<Vec<u8>>,
    source_cdf: Vec<u32>,
    places: Vec<PlaceRec>,
}

impl Tables {
    fn new(rng: &mut Rng) -> Self {
        let parse =
            |list: &[&'static str]| list.iter().map(|t| parse_template(t)).collect::<Vec<_>>();
        let subjects_lower = voc::SUBJECTS
            .iter()
            .map(|s| {
                let mut c = s.chars();
                let first = c.next().expect("empty subject");
                first.to_lowercase().chain(c).collect()
            })
            .collect();
        let tag_vowel = voc::HASHTAGS.iter().map(|t| starts_with_vowel(t)).collect();
        let mut acc = 0;
        let source_cdf = voc::APP_SOURCES
            .iter()
            .map(|(w, _)| {
                acc += w;
                acc
            })
            .collect();
        let sources = voc::APP_SOURCES
            .iter()
            .map(|(_, s)| {
                let mut v = vec![b'"'];
                escape_into(&mut v, s);
                v.push(b'"');
                v
            })
            .collect();
        let users = build_users(rng);
        Tables {
            sentences: parse(voc::SENTENCES),
            openers: parse(voc::OPENERS),
            quote_comments: parse(voc::QUOTE_COMMENTS),
            en_sentences: parse(voc::EN_SENTENCES),
            subjects_lower,
            tag_zipf: Zipf::new(voc::HASHTAGS.len(), 1.1),
            tag_vowel,
            notable: voc::NOTABLE.len(),
            notable_zipf: Zipf::new(voc::NOTABLE.len(), 1.0),
            user_zipf: Zipf::new(users.len() - voc::NOTABLE.len(), 0.9),
            users,
            sources,
            source_cdf,
            places: build_places(),
        }
    }

    fn pick_source(&self, rng: &mut Rng) -> usize {
        let total = *self.source_cdf.last().expect("sources");
        let x = rng.below(total as u64) as u32;
        self.source_cdf.partition_point(|&c| c <= x)
    }
}

fn starts_with_vowel(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| "aeiouyhàâéèêëîïôûAEIOUYHÀÂÉÈÊËÎÏÔÛ".contains(c))
}

/// ASCII letters and digits of a name, accents removed ("Lefèvre" -> "Lefevre").
fn fold_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let r = match c {
            'à' | 'â' | 'ä' => "a",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'î' | 'ï' => "i",
            'ô' | 'ö' => "o",
            'ù' | 'û' | 'ü' => "u",
            'ç' => "c",
            'œ' => "oe",
            'æ' => "ae",
            'À' | 'Â' => "A",
            'É' | 'È' | 'Ê' | 'Ë' => "E",
            'Î' | 'Ï' => "I",
            'Ô' => "O",
            'Û' | 'Ù' => "U",
            'Ç' => "C",
            'Œ' => "Oe",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        out.push_str(r);
    }
    out
}

fn ms_of(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * 86_400_000
}

struct UserSpec {
    id: u64,
    name: String,
    screen_name: String,
    location: Option<&'static str>,
    url: Option<String>,
    description: Option<String>,
    verified: bool,
    followers: u64,
    friends: u64,
    listed: u64,
    favourites: u64,
    statuses: u64,
    created_ms: i64,
}

fn build_users(rng: &mut Rng) -> Vec<UserRec> {
    let mut users = Vec::with_capacity(voc::NOTABLE.len() + RANDOM_USERS);
    let mut taken: HashSet<String> = HashSet::new();
    for &(screen_name, name, description, location, followers) in voc::NOTABLE {
        taken.insert(screen_name.to_ascii_lowercase());
        let created_ms =
            ms_of(2009, 1, 1) + rng.below((ms_of(2012, 6, 1) - ms_of(2009, 1, 1)) as u64) as i64;
        let spec = UserSpec {
            id: legacy_user_id(rng, created_ms),
            name: name.to_string(),
            screen_name: screen_name.to_string(),
            location: Some(location),
            url: Some(tco(rng)),
            description: Some(description.to_string()),
            verified: true,
            followers: followers as u64,
            friends: rng.range(50, 2000),
            listed: followers as u64 / rng.range(20, 80),
            favourites: rng.range(100, 20_000),
            statuses: rng.range(5_000, 120_000),
            created_ms,
        };
        users.push(user_rec(rng, &spec));
    }
    let start = ms_of(2008, 3, 1);
    let end = ms_of(2021, 3, 1);
    for _ in 0..RANDOM_USERS {
        let first = rng.pick(voc::FIRST_NAMES);
        let last = rng.pick(voc::LAST_NAMES);
        let roll = rng.below(100);
        let pseudonym = if roll < 15 {
            Some(rng.pick(voc::PSEUDONYMS))
        } else {
            None
        };
        let name = match (roll, pseudonym) {
            (_, Some(p)) => p.to_string(),
            (15..70, _) => format!("{first} {last}"),
            (70..80, _) => first.to_string(),
            (80..88, _) => format!("{first} {}.", last.chars().next().unwrap_or('X')),
            (88..93, _) => format!(
                "{first} {last} {}",
                rng.pick(&["🇫🇷", "✊", "🌹", "🇪🇺", "🌍", "📊"])
            ),
            (93..97, _) => format!("Dr {first} {last}"),
            _ => format!("{first} {last}").to_uppercase(),
        };
        let (ff, fl) = (fold_ascii(first), fold_ascii(last));
        let base = match (pseudonym, rng.below(7)) {
            (Some(p), _) => fold_ascii(p),
            (None, 0) => format!("{ff}{fl}"),
            (None, 1) => format!("{}_{}", ff.to_lowercase(), fl.to_lowercase()),
            (None, 2) => format!("{}{}", ff[..1].to_lowercase(), fl.to_lowercase()),
            (None, 3) => format!("{ff}{fl}{}", rng.range(1, 99)),
            (None, 4) => format!("{}_{}", fl.to_lowercase(), ff[..1].to_lowercase()),
            (None, 5) => format!("{ff}_{}{}", &fl[..1], rng.range(1950, 2003)),
            (None, _) => format!("{}{}", ff, rng.range(100, 9999)),
        };
        let mut screen_name: String = base.chars().take(15).collect();
        while !taken.insert(screen_name.to_ascii_lowercase()) {
            let suffix = rng.range(1, 9999).to_string();
            screen_name = base.chars().take(15 - suffix.len()).collect::<String>() + &suffix;
        }
        let description = if rng.chance(0.15) {
            None
        } else {
            let n = 1 + rng.index(3);
            let sep = rng.pick(&[" | ", " • ", ". ", " / ", " – "]);
            let parts: Vec<&str> = (0..n).map(|_| rng.pick(voc::DESCRIPTIONS)).collect();
            Some(parts.join(sep))
        };
        let created_ms = start + rng.below((end - start) as u64) as i64;
        let id = if created_ms < ms_of(2015, 6, 1) {
            legacy_user_id(rng, created_ms)
        } else {
            snowflake(created_ms, rng.below(1 << 22))
        };
        let followers = rng.log_uniform(3.0, 60_000.0);
        let spec = UserSpec {
            id,
            name,
            screen_name,
            location: if rng.chance(0.25) {
                None
            } else {
                Some(rng.pick(voc::LOCATIONS))
            },
            url: if rng.chance(0.25) {
                Some(tco(rng))
            } else {
                None
            },
            description,
            verified: false,
            followers,
            friends: rng.log_uniform(10.0, 5000.0),
            listed: followers / rng.range(20, 200),
            favourites: rng.log_uniform(1.0, 100_000.0),
            statuses: rng.log_uniform(50.0, 150_000.0),
            created_ms,
        };
        users.push(user_rec(rng, &spec));
    }
    users
}

/// User ids from before snowflakes: roughly increasing with the account's creation date.
fn legacy_user_id(rng: &mut Rng, created_ms: i64) -> u64 {
    let (t0, t1) = (ms_of(2008, 3, 1), ms_of(2015, 6, 1));
    let f = ((created_ms - t0) as f64 / (t1 - t0) as f64).clamp(0.0, 1.0);
    14_000_000 + (f * f * 3_300_000_000.0) as u64 + rng.below(100_000)
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn tco(rng: &mut Rng) -> String {
    let mut s = String::from("https://t.co/");
    for _ in 0..10 {
        s.push(BASE62[rng.index(62)] as char);
    }
    s
}

fn push_key_str(out: &mut Vec<u8>, key: &str, value: Option<&str>) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        Some(v) => {
            out.push(b'"');
            escape_into(out, v);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b',');
}

fn push_key_num(out: &mut Vec<u8>, key: &str, value: u64) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    push_u64(out, value);
    out.push(b',');
}

fn user_rec(rng: &mut Rng, u: &UserSpec) -> UserRec {
    let mut head = Vec::with_capacity(1024);
    head.push(b'{');
    push_key_num(&mut head, "id", u.id);
    let id_str = u.id.to_string();
    push_key_str(&mut head, "id_str", Some(&id_str));
    push_key_str(&mut head, "name", Some(&u.name));
    push_key_str(&mut head, "screen_name", Some(&u.screen_name));
    push_key_str(&mut head, "location", u.location);
    push_key_str(&mut head, "url", u.url.as_deref());
    push_key_str(&mut head, "description", u.description.as_deref());
    push_key_str(
        &mut head,
        "translator_type",
        Some(if rng.chance(0.03) { "regular" } else { "none" }),
    );
    head.extend_from_slice(b"\"protected\":false,\"verified\":");
    head.extend_from_slice(if u.verified { b"true," } else { b"false," });
    push_key_num(&mut head, "followers_count", u.followers);
    push_key_num(&mut head, "friends_count", u.friends);
    push_key_num(&mut head, "listed_count", u.listed);
    push_key_num(&mut head, "favourites_count", u.favourites);
    head.extend_from_slice(b"\"statuses_count\":");

    let mut tail = Vec::with_capacity(1024);
    tail.extend_from_slice(b",\"created_at\":\"");
    write_created_at(&mut tail, u.created_ms);
    tail.extend_from_slice(b"\",\"utc_offset\":null,\"time_zone\":null,\"geo_enabled\":");
    tail.extend_from_slice(if rng.chance(0.3) { b"true" } else { b"false" });
    tail.extend_from_slice(
        b",\"lang\":null,\"contributors_enabled\":false,\"is_translator\":false,",
    );
    let default_profile = !u.verified && rng.chance(0.4);
    let colors: [&str; 5] = if default_profile {
        ["F5F8FA", "1DA1F2", "C0DEED", "DDEEF6", "333333"]
    } else {
        let mut c = [""; 5];
        for x in &mut c {
            *x = rng.pick(voc::PROFILE_COLORS);
        }
        c
    };
    push_key_str(&mut tail, "profile_background_color", Some(colors[0]));
    let old_theme = !default_profile && u.created_ms < ms_of(2014, 1, 1);
    let theme = format!(
        "abs.twimg.com/images/themes/theme{}/bg.png",
        1 + rng.below(19)
    );
    push_key_str(
        &mut tail,
        "profile_background_image_url",
        Some(&if old_theme {
            format!("http://{theme}")
        } else {
            String::new()
        }),
    );
    push_key_str(
        &mut tail,
        "profile_background_image_url_https",
        Some(&if old_theme {
            format!("https://{theme}")
        } else {
            String::new()
        }),
    );
    tail.extend_from_slice(b"\"profile_background_tile\":");
    tail.extend_from_slice(if old_theme && rng.chance(0.3) {
        b"true,"
    } else {
        b"false,"
    });
    push_key_str(&mut tail, "profile_link_color", Some(colors[1]));
    push_key_str(&mut tail, "profile_sidebar_border_color", Some(colors[2]));
    push_key_str(&mut tail, "profile_sidebar_fill_color", Some(colors[3]));
    push_key_str(&mut tail, "profile_text_color", Some(colors[4]));
    tail.extend_from_slice(b"\"profile_use_background_image\":");
    tail.extend_from_slice(if rng.chance(0.9) { b"true," } else { b"false," });
    let default_image = !u.verified && rng.chance(0.03);
    let image = if default_image {
        "abs.twimg.com/sticky/default_profile_images/default_profile_normal.png".to_string()
    } else {
        let mut code = String::new();
        for _ in 0..8 {
            code.push(BASE62[rng.index(62)] as char);
        }
        let ext = rng.pick(&["jpg", "jpg", "jpg", "png", "jpeg"]);
        format!(
            "pbs.twimg.com/profile_images/{}/{code}_normal.{ext}",
            snowflake(u.created_ms + rng.below(1 << 36) as i64, rng.next_u64())
        )
    };
    push_key_str(
        &mut tail,
        "profile_image_url",
        Some(&format!("http://{image}")),
    );
    push_key_str(
        &mut tail,
        "profile_image_url_https",
        Some(&format!("https://{image}")),
    );
    if u.verified || rng.chance(0.6) {
        let banner = format!(
            "https://pbs.twimg.com/profile_banners/{}/{}",
            u.id,
            (u.created_ms / 1000) as u64 + rng.below(300_000_000)
        );
        push_key_str(&mut tail, "profile_banner_url", Some(&banner));
    }
    tail.extend_from_slice(b"\"default_profile\":");
    tail.extend_from_slice(if default_profile { b"true" } else { b"false" });
    tail.extend_from_slice(b",\"default_profile_image\":");
    tail.extend_from_slice(if default_image { b"true" } else { b"false" });
    tail.extend_from_slice(b",\"following\":null,\"follow_request_sent\":null,\"notifications\":null,\"withheld_in_countries\":[]}");

    let mut mention = Vec::with_capacity(128);
    mention.push(b'{');
    push_key_str(&mut mention, "screen_name", Some(&u.screen_name));
    push_key_str(&mut mention, "name", Some(&u.name));
    push_key_num(&mut mention, "id", u.id);
    push_key_str(&mut mention, "id_str", Some(&id_str));
    mention.extend_from_slice(b"\"indices\":[");

    UserRec {
        id: u.id,
        screen_name: u.screen_name.clone(),
        head,
        tail,
        mention,
        statuses: u.statuses,
    }
}

fn build_places() -> Vec<PlaceRec> {
    // Place ids do not depend on the seed.
    let mut rng = Rng::new(0x7057_1ace);
    voc::GEO_PLACES
        .iter()
        .map(|&(name, full_name, place_type, w, s, e, n)| {
            let id = format!("{:016x}", rng.next_u64());
            let mut json = Vec::with_capacity(512);
            json.push(b'{');
            push_key_str(&mut json, "id", Some(&id));
            push_key_str(&mut json, "url", Some(&format!("https://api.twitter.com/1.1/geo/id/{id}.json")));
            push_key_str(&mut json, "place_type", Some(place_type));
            push_key_str(&mut json, "name", Some(name));
            push_key_str(&mut json, "full_name", Some(full_name));
            push_key_str(&mut json, "country_code", Some("FR"));
            push_key_str(&mut json, "country", Some("France"));
            let _ = write!(
                json,
                "\"bounding_box\":{{\"type\":\"Polygon\",\"coordinates\":[[[{w:.6},{s:.6}],[{w:.6},{n:.6}],[{e:.6},{n:.6}],[{e:.6},{s:.6}]]]}},\"attributes\":{{}}}}"
            );
            PlaceRec { json, bbox: (w, s, e, n) }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Texts with their entities
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum UrlTarget {
    /// A shared article: `voc::LINK_SITES[site]` with `num` in the middle.
    Link { site: u16, num: u32 },
    /// A tweet (quote tweets link to the quoted one).
    Status { user: u32, id: u64 },
    /// The "read more" link of a truncated tweet.
    Web { id: u64 },
}

#[derive(Debug, Clone, Copy)]
enum EntKind {
    Hashtag,
    Mention(u32),
    Url(UrlTarget),
    Symbol,
}

/// An entity: code-point indices (as Twitter's `indices`) and byte offsets into the text.
#[derive(Debug, Clone, Copy)]
struct Ent {
    kind: EntKind,
    start: u32,
    end: u32,
    bstart: u32,
    bend: u32,
}

/// A tweet text being built, with its length in code points and its entities.
#[derive(Debug, Default)]
struct TextBuf {
    s: String,
    chars: u32,
    ents: Vec<Ent>,
    /// Write ' instead of ’ (some people do).
    ascii_apostrophe: bool,
}

#[inline]
fn count_chars(s: &str) -> u32 {
    s.bytes().filter(|&b| (b as i8) >= -0x40).count() as u32
}

impl TextBuf {
    fn clear(&mut self) {
        self.s.clear();
        self.chars = 0;
        self.ents.clear();
        self.ascii_apostrophe = false;
    }

    fn push(&mut self, s: &str) {
        if self.ascii_apostrophe && s.contains('’') {
            self.s
                .extend(s.chars().map(|c| if c == '’' { '\'' } else { c }));
        } else {
            self.s.push_str(s);
        }
        self.chars += count_chars(s);
    }

    fn push_char(&mut self, c: char) {
        self.s.push(c);
        self.chars += 1;
    }

    fn mark(&self) -> (u32, u32) {
        (self.chars, self.s.len() as u32)
    }

    fn entity(&mut self, kind: EntKind, (start, bstart): (u32, u32)) {
        self.ents.push(Ent {
            kind,
            start,
            end: self.chars,
            bstart,
            bend: self.s.len() as u32,
        });
    }

    fn hashtag(&mut self, tag: &str) {
        let m = self.mark();
        self.push_char('#');
        self.push(tag);
        self.entity(EntKind::Hashtag, m);
    }

    fn mention(&mut self, user: u32, screen_name: &str) {
        let m = self.mark();
        self.push_char('@');
        self.push(screen_name);
        self.entity(EntKind::Mention(user), m);
    }

    fn cashtag(&mut self, symbol: &str) {
        let m = self.mark();
        self.push_char('$');
        self.push(symbol);
        self.entity(EntKind::Symbol, m);
    }

    fn url(&mut self, rng: &mut Rng, target: UrlTarget) {
        let m = self.mark();
        self.push("https://t.co/");
        for _ in 0..10 {
            self.push_char(BASE62[rng.index(62)] as char);
        }
        self.entity(EntKind::Url(target), m);
    }

    /// Appends the first `max_chars` code points of `src` with the entities that fit.
    fn append_prefix(&mut self, src: &TextBuf, max_chars: u32) {
        let (c0, b0) = self.mark();
        let (n, cut) = if max_chars >= src.chars {
            (src.chars, src.s.len())
        } else {
            (
                max_chars,
                src.s
                    .char_indices()
                    .nth(max_chars as usize)
                    .map_or(src.s.len(), |(i, _)| i),
            )
        };
        self.s.push_str(&src.s[..cut]);
        self.chars += n;
        for e in src.ents.iter().filter(|e| e.end <= n) {
            self.ents.push(Ent {
                kind: e.kind,
                start: e.start + c0,
                end: e.end + c0,
                bstart: e.bstart + b0,
                bend: e.bend + b0,
            });
        }
    }
}

/// The compatibility-mode `text` of a long tweet: cut at a word boundary so that it fits in
/// 140 code points with "… https://t.co/…".
fn make_truncated(short: &mut TextBuf, full: &TextBuf, id: u64, rng: &mut Rng) {
    let limit = COMPAT_LIMIT - TCO_LEN - 2;
    let mut cut = limit;
    let mut prev_space = true;
    for (i, c) in full.s.chars().enumerate() {
        let i = i as u32;
        if i > limit {
            break;
        }
        // Not at no-break spaces.
        let space = c == ' ' || c == '\n';
        if space && !prev_space {
            cut = i;
        }
        prev_space = space;
    }
    short.clear();
    short.append_prefix(full, cut);
    short.push("…");
    short.push(" ");
    short.url(rng, UrlTarget::Web { id });
}

/// Fills templates into a [`TextBuf`].
struct Composer<'a> {
    rng: &'a mut Rng,
    t: &'a Tables,
    /// The last subject was plural: the next verb agrees.
    plural: bool,
}

impl Composer<'_> {
    fn template(&mut self, b: &mut TextBuf, tpl: &[Piece]) {
        for piece in tpl {
            match *piece {
                Piece::Lit(s) => b.push(s),
                Piece::Slot(slot) => self.slot(b, slot),
            }
        }
    }

    fn slot(&mut self, b: &mut TextBuf, slot: Slot) {
        let t = self.t;
        match slot {
            Slot::Subj | Slot::SubjLower => {
                let i = self.rng.index(voc::SUBJECTS.len());
                self.plural = voc::SUBJECTS[i].starts_with("Les ");
                b.push(if slot == Slot::Subj {
                    voc::SUBJECTS[i]
                } else {
                    &t.subjects_lower[i]
                });
            }
            Slot::Verb => {
                let i = self.rng.index(voc::VERBS.len());
                b.push(if self.plural {
                    voc::VERBS_PLURAL[i]
                } else {
                    voc::VERBS[i]
                });
            }
            Slot::Num => self.number(b),
            Slot::Count => self.count(b),
            Slot::Period => b.push(self.rng.pick(voc::PERIODS)),
            Slot::Source => b.push(self.rng.pick(voc::SOURCES)),
            Slot::Place => b.push(self.rng.pick(voc::PLACES)),
            Slot::Topic => b.push(self.rng.pick(voc::TOPICS)),
            Slot::Comment => b.push(self.rng.pick(voc::COMMENTS)),
            Slot::Emoji => b.push(self.rng.pick(voc::EMOJIS)),
            Slot::Year => push_num(b, self.rng.range(1975, 2020)),
            Slot::Hash => self.hashtag_mid(b),
            Slot::HashStart => self.hashtag_start(b),
            Slot::Notable => {
                let u = t.notable_zipf.sample(self.rng);
                b.mention(u as u32, &t.users[u].screen_name);
            }
            Slot::User => {
                let u = t.notable + t.user_zipf.sample(self.rng);
                b.mention(u as u32, &t.users[u].screen_name);
            }
        }
    }

    fn tag(&mut self) -> usize {
        self.t.tag_zipf.sample(self.rng)
    }

    fn percent_sep(&mut self) -> &'static str {
        match self.rng.below(10) {
            0..5 => " ",
            5..7 => "\u{a0}",
            7..9 => "\u{202f}",
            _ => "",
        }
    }

    /// "0,3 %", "12 %", "1,2 point", "4,5 milliards d’euros", "+0,8 %".
    fn number(&mut self, b: &mut TextBuf) {
        let int = if self.rng.chance(0.7) {
            self.rng.below(4)
        } else {
            self.rng.range(4, 12)
        };
        let dec = self.rng.below(10);
        match self.rng.below(100) {
            0..50 => {
                push_num(b, int);
                b.push(",");
                push_num(b, dec);
                let sep = self.percent_sep();
                b.push(sep);
                b.push("%");
            }
            50..65 => {
                push_num(b, int + 1);
                let sep = self.percent_sep();
                b.push(sep);
                b.push("%");
            }
            65..82 => {
                push_num(b, int);
                b.push(",");
                push_num(b, dec);
                b.push(if int >= 2 { " points" } else { " point" });
            }
            82..92 => {
                push_num(b, self.rng.range(1, 250));
                b.push(",");
                push_num(b, dec);
                b.push(" milliards d’euros");
            }
            _ => {
                b.push(self.rng.pick(&["+", "-", "−"]));
                push_num(b, int);
                b.push(",");
                push_num(b, dec);
                let sep = self.percent_sep();
                b.push(sep);
                b.push("%");
            }
        }
    }

    /// "12 300 emplois créés" (thousands separated by a space, a no-break space or nothing).
    fn count(&mut self, b: &mut TextBuf) {
        let n = if self.rng.chance(0.3) {
            self.rng.range(100, 999)
        } else {
            self.rng.range(1_000, 999_999)
        };
        if n >= 1000 {
            push_num(b, n / 1000);
            let sep = match self.rng.below(4) {
                0 | 1 => " ",
                2 => "\u{202f}",
                _ => "",
            };
            b.push(sep);
            let low = n % 1000;
            if low < 100 {
                b.push("0");
            }
            if low < 10 {
                b.push("0");
            }
            push_num(b, low);
        } else {
            push_num(b, n);
        }
        b.push(" ");
        b.push(self.rng.pick(voc::UNITS));
    }

    /// A hashtag inside a sentence, maybe glued to an article or punctuation.
    fn hashtag_mid(&mut self, b: &mut TextBuf) {
        let i = self.tag();
        let tag = voc::HASHTAGS[i];
        match self.rng.below(100) {
            0..55 => b.hashtag(tag),
            55..70 => {
                if self.t.tag_vowel[i] {
                    b.push(self.rng.pick(&["d’", "l’", "d’", "d'"]));
                } else {
                    b.push(self.rng.pick(&["du ", "de ", "le "]));
                }
                b.hashtag(tag);
            }
            70..82 => {
                b.push("(");
                b.hashtag(tag);
                b.push(")");
            }
            82..90 => {
                b.push("«");
                b.hashtag(tag);
                b.push("»");
            }
            90..95 => {
                b.push("«\u{a0}");
                b.hashtag(tag);
                b.push("\u{a0}»");
            }
            _ => {
                b.push("“");
                b.hashtag(tag);
                b.push("”");
            }
        }
    }

    /// A hashtag starting a sentence: "L’#emploi", "Le #logement", "#PIB".
    fn hashtag_start(&mut self, b: &mut TextBuf) {
        let i = self.tag();
        let tag = voc::HASHTAGS[i];
        let roll = self.rng.below(100);
        if self.t.tag_vowel[i] {
            match roll {
                0..50 => b.push("L’"),
                50..60 => b.push("L'"),
                _ => {}
            }
        } else {
            match roll {
                0..20 => b.push("Le "),
                20..30 => b.push("La "),
                _ => {}
            }
        }
        b.hashtag(tag);
    }

    /// Hashtags at the end of a tweet, in the usual layouts.
    fn hashtag_tail(&mut self, b: &mut TextBuf) {
        let k = match self.rng.below(100) {
            0..40 => 1,
            40..70 => 2,
            70..88 => 3,
            88..96 => 4,
            _ => 5,
        };
        let mut tags = [0usize; 5];
        for i in 0..k {
            let mut x = self.tag();
            for _ in 0..3 {
                if tags[..i].contains(&x) {
                    x = self.tag();
                }
            }
            tags[i] = x;
        }
        let tags = &tags[..k];
        let name = |i: usize| voc::HASHTAGS[i];
        match self.rng.below(100) {
            0..35 => {
                for &x in tags {
                    b.push(" ");
                    b.hashtag(name(x));
                }
            }
            35..50 => {
                b.push("\n\n");
                for (j, &x) in tags.iter().enumerate() {
                    if j > 0 {
                        b.push(" ");
                    }
                    b.hashtag(name(x));
                }
            }
            50..58 => {
                b.push("\n\n");
                b.hashtag(name(tags[0]));
                b.push(".");
            }
            58..68 if k >= 2 => {
                // " #loyers, #APL et #HLM"
                for (j, &x) in tags.iter().enumerate() {
                    b.push(if j == 0 {
                        " "
                    } else if j == k - 1 {
                        " et "
                    } else {
                        ", "
                    });
                    b.hashtag(name(x));
                }
            }
            58..78 => {
                b.push(" ");
                b.hashtag(name(tags[0]));
                b.push(".");
            }
            78..85 => {
                b.push(" (");
                for (j, &x) in tags.iter().enumerate() {
                    if j > 0 {
                        b.push(" ");
                    }
                    b.hashtag(name(x));
                }
                b.push(")");
            }
            85..90 => {
                for &x in tags {
                    b.push("\n");
                    b.hashtag(name(x));
                }
            }
            90..95 => {
                b.push(" — ");
                for (j, &x) in tags.iter().enumerate() {
                    if j > 0 {
                        b.push(", ");
                    }
                    b.hashtag(name(x));
                }
            }
            _ => {
                for &x in tags {
                    b.push(" ");
                    b.hashtag(name(x));
                }
                b.push(" ");
                b.push(self.rng.pick(voc::EMOJIS));
            }
        }
    }

    fn mention_tail(&mut self, b: &mut TextBuf) {
        match self.rng.below(5) {
            0 => {
                b.push(" via ");
                self.slot(b, Slot::Notable);
            }
            1 => {
                b.push(" cc ");
                self.slot(b, Slot::User);
            }
            2 => {
                b.push("\n\n");
                self.slot(b, Slot::Notable);
                b.push(" ");
                self.slot(b, Slot::User);
            }
            3 => {
                b.push(" (");
                self.slot(b, Slot::Notable);
                b.push(")");
            }
            _ => {
                b.push(" ");
                self.slot(b, Slot::Notable);
            }
        }
    }

    /// The text of an original tweet (at most 280 code points); returns its `lang`.
    fn original(&mut self, b: &mut TextBuf, reply_to: Option<u32>) -> &'static str {
        let t = self.t;
        loop {
            b.clear();
            b.ascii_apostrophe = self.rng.chance(0.25);
            if let Some(u) = reply_to {
                b.mention(u, &t.users[u as usize].screen_name);
                b.push(" ");
            }
            let roll = self.rng.below(1000);
            let lang = if roll < 15 {
                let tpl = &t.en_sentences[self.rng.index(t.en_sentences.len())];
                self.template(b, tpl);
                if self.rng.chance(0.5) {
                    self.hashtag_tail(b);
                }
                "en"
            } else if roll < 25 {
                // Emoji and hashtags only: Twitter cannot tell the language.
                self.slot(b, Slot::Emoji);
                for _ in 0..1 + self.rng.below(3) {
                    b.push(" ");
                    let i = self.tag();
                    b.hashtag(voc::HASHTAGS[i]);
                }
                "und"
            } else {
                let mut first = true;
                if self.rng.chance(0.15) {
                    let tpl = &t.openers[self.rng.index(t.openers.len())];
                    self.template(b, tpl);
                    first = false;
                }
                let n = match self.rng.below(100) {
                    0..72 => 1,
                    72..93 => 2,
                    93..99 => 3,
                    _ => 4,
                };
                for _ in 0..n {
                    if !first {
                        b.push(match self.rng.below(20) {
                            0..17 => " ",
                            17..19 => "\n",
                            _ => "\n\n",
                        });
                    }
                    let tpl = &t.sentences[self.rng.index(t.sentences.len())];
                    self.template(b, tpl);
                    first = false;
                }
                if self.rng.chance(0.22) {
                    b.push(" ");
                    self.slot(b, Slot::Comment);
                }
                if self.rng.chance(0.6) {
                    self.hashtag_tail(b);
                }
                if self.rng.chance(0.12) {
                    self.mention_tail(b);
                }
                if self.rng.chance(0.01) {
                    b.push(" ");
                    b.cashtag(self.rng.pick(voc::CASHTAGS));
                }
                if self.rng.chance(0.4) {
                    b.push(" ");
                    let site = self.rng.index(voc::LINK_SITES.len()) as u16;
                    let num = self.rng.range(1_000_000, 6_000_000) as u32;
                    b.url(self.rng, UrlTarget::Link { site, num });
                }
                if self.rng.chance(0.1) {
                    b.push(" ");
                    self.slot(b, Slot::Emoji);
                }
                "fr"
            };
            if b.chars <= TEXT_LIMIT {
                return lang;
            }
        }
    }

    /// The comment of a quote tweet (short: the quoted tweet's link follows).
    fn quote_comment(&mut self, b: &mut TextBuf) -> &'static str {
        let t = self.t;
        loop {
            b.clear();
            b.ascii_apostrophe = self.rng.chance(0.25);
            let tpl = &t.quote_comments[self.rng.index(t.quote_comments.len())];
            self.template(b, tpl);
            if self.rng.chance(0.3) {
                self.hashtag_tail(b);
            }
            if b.chars <= QUOTE_COMMENT_LIMIT {
                return "fr";
            }
        }
    }
}

fn push_num(b: &mut TextBuf, n: u64) {
    let mut digits = itoa::Buffer::new();
    let s = digits.format(n);
    b.s.push_str(s);
    b.chars += s.len() as u32;
}

// ---------------------------------------------------------------------------------------------
// JSON writing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A good line, counted in the stats.
    Good,
    /// A line whose `created_at` is not in Twitter's format.
    BadCreatedAt,
    /// A line about to be broken: not counted.
    Silent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Original,
    Retweet,
    Quote,
}

/// How a bad `created_at` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadCreated {
    /// The string in `TweetGenerator::bad_created`.
    Str,
    Null,
    Missing,
}

#[derive(Debug, Clone, Copy)]
enum Created<'a> {
    Ms(i64),
    Str(&'a str),
    Null,
    Missing,
}

struct Status<'a> {
    id: u64,
    created: Created<'a>,
    /// The `text` (compatibility mode: at most 140 code points).
    text: &'a TextBuf,
    /// The whole text, when `text` is truncated.
    full: Option<&'a TextBuf>,
    /// Start of the displayed text (after the leading mention of a reply).
    display_from: u32,
    user: u32,
    statuses_count: u64,
    source: usize,
    /// (in_reply_to_status_id, in_reply_to user).
    reply: Option<(u64, u32)>,
    /// (place, (longitude, latitude)).
    place: Option<(usize, Option<(f64, f64)>)>,
    /// quote, reply, retweet, favorite counts.
    counts: [u64; 4],
    retweeted: Option<&'a Status<'a>>,
    quoted: Option<&'a Status<'a>>,
    lang: &'static str,
    /// Only top-level statuses carry `timestamp_ms`.
    timestamp_ms: Option<i64>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What follows the backslash for each ASCII byte (0: written as is).
static ESCAPE: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'/' as usize] = b'/';
    t
};

#[inline]
fn push_u4(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[(v >> 12 & 15) as usize],
        HEX[(v >> 8 & 15) as usize],
        HEX[(v >> 4 & 15) as usize],
        HEX[(v & 15) as usize],
    ]);
}

/// Writes `s` as the inside of a JSON string the way Twitter does: ASCII only.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            let e = ESCAPE[c as usize];
            if e == 0 {
                i += 1;
                continue;
            }
            out.extend_from_slice(&b[start..i]);
            if e == b'u' {
                push_u4(out, c as u32);
            } else {
                out.extend_from_slice(&[b'\\', e]);
            }
            i += 1;
        } else {
            out.extend_from_slice(&b[start..i]);
            // `s` is valid UTF-8: decode one code point.
            let (cp, len) = if c < 0xE0 {
                (((c as u32 & 0x1F) << 6) | (b[i + 1] as u32 & 0x3F), 2)
            } else if c < 0xF0 {
                (
                    ((c as u32 & 0x0F) << 12)
                        | ((b[i + 1] as u32 & 0x3F) << 6)
                        | (b[i + 2] as u32 & 0x3F),
                    3,
                )
            } else {
                (
                    ((c as u32 & 0x07) << 18)
                        | ((b[i + 1] as u32 & 0x3F) << 12)
                        | ((b[i + 2] as u32 & 0x3F) << 6)
                        | (b[i + 3] as u32 & 0x3F),
                    4,
                )
            };
            if cp >= 0x1_0000 {
                let v = cp - 0x1_0000;
                push_u4(out, 0xD800 + (v >> 10));
                push_u4(out, 0xDC00 + (v & 0x3FF));
            } else {
                push_u4(out, cp);
            }
            i += len;
        }
        start = i;
    }
    out.extend_from_slice(&b[start..]);
}

#[inline]
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[inline]
fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

#[inline]
fn push_2(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

/// Twitter's `created_at`: "Thu Apr 15 08:00:05 +0000 2021".
fn write_created_at(out: &mut Vec<u8>, ms: i64) {
    const M: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    const W: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    out.extend_from_slice(W[days.rem_euclid(7) as usize]);
    out.push(b' ');
    out.extend_from_slice(M[(m - 1) as usize]);
    out.push(b' ');
    push_2(out, d);
    out.push(b' ');
    push_2(out, sod / 3600);
    out.push(b':');
    push_2(out, sod % 3600 / 60);
    out.push(b':');
    push_2(out, sod % 60);
    out.extend_from_slice(b" +0000 ");
    if (0..10_000).contains(&y) {
        push_2(out, (y / 100) as u32);
        push_2(out, (y % 100) as u32);
    } else {
        push_i64(out, y);
    }
}

fn write_indices(out: &mut Vec<u8>, e: &Ent) {
    push_u64(out, e.start as u64);
    out.push(b',');
    push_u64(out, e.end as u64);
    out.extend_from_slice(b"]}");
}

/// The expanded URL of a link, into `s`.
fn expanded_url(t: &Tables, target: UrlTarget, s: &mut String) {
    s.clear();
    match target {
        UrlTarget::Link { site, num } => {
            let (prefix, suffix) = voc::LINK_SITES[site as usize];
            s.push_str(prefix);
            s.push_str(itoa::Buffer::new().format(num as u64));
            s.push_str(suffix);
        }
        UrlTarget::Status { user, id } => {
            s.push_str("https://twitter.com/");
            s.push_str(&t.users[user as usize].screen_name);
            s.push_str("/status/");
            s.push_str(itoa::Buffer::new().format(id));
        }
        UrlTarget::Web { id } => {
            s.push_str("https://twitter.com/i/web/status/");
            s.push_str(itoa::Buffer::new().format(id));
        }
    }
}

/// Twitter's `display_url`: no scheme, no "www.", cut with "…" after 26 characters.
fn write_display_url(out: &mut Vec<u8>, expanded: &str) {
    let s = expanded
        .strip_prefix("https://")
        .or_else(|| expanded.strip_prefix("http://"))
        .unwrap_or(expanded);
    let s = s.strip_prefix("www.").unwrap_or(s);
    match s.char_indices().nth(26) {
        Some((cut, _)) => {
            escape_into(out, &s[..cut]);
            escape_into(out, "…");
        }
        None => escape_into(out, s),
    }
}

fn write_entities(out: &mut Vec<u8>, t: &Tables, text: &TextBuf, scratch: &mut String) {
    let s = &text.s;
    out.extend_from_slice(b"{\"hashtags\":[");
    write_tag_entities(out, text, |k| matches!(k, EntKind::Hashtag));
    out.extend_from_slice(b"],\"urls\":[");
    let mut first = true;
    for e in &text.ents {
        let EntKind::Url(target) = e.kind else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"url\":\"");
        escape_into(out, &s[e.bstart as usize..e.bend as usize]);
        out.extend_from_slice(b"\",\"expanded_url\":\"");
        expanded_url(t, target, scratch);
        escape_into(out, scratch);
        out.extend_from_slice(b"\",\"display_url\":\"");
        write_display_url(out, scratch);
        out.extend_from_slice(b"\",\"indices\":[");
        write_indices(out, e);
    }
    out.extend_from_slice(b"],\"user_mentions\":[");
    first = true;
    for e in &text.ents {
        let EntKind::Mention(user) = e.kind else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(&t.users[user as usize].mention);
        write_indices(out, e);
    }
    out.extend_from_slice(b"],\"symbols\":[");
    write_tag_entities(out, text, |k| matches!(k, EntKind::Symbol));
    out.extend_from_slice(b"]}");
}

/// `{"text":...,"indices":[...]}` for each hashtag or cashtag (the text without its sigil).
fn write_tag_entities(out: &mut Vec<u8>, text: &TextBuf, kind: impl Fn(&EntKind) -> bool) {
    let s = &text.s;
    let mut first = true;
    for e in text.ents.iter().filter(|e| kind(&e.kind)) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"text\":\"");
        escape_into(out, &s[e.bstart as usize + 1..e.bend as usize]);
        out.extend_from_slice(b"\",\"indices\":[");
        write_indices(out, e);
    }
}

fn write_status(out: &mut Vec<u8>, t: &Tables, st: &Status<'_>, scratch: &mut String) {
    out.push(b'{');
    match st.created {
        Created::Ms(ms) => {
            out.extend_from_slice(b"\"created_at\":\"");
            write_created_at(out, ms);
            out.extend_from_slice(b"\",");
        }
        Created::Str(s) => {
            out.extend_from_slice(b"\"created_at\":\"");
            escape_into(out, s);
            out.extend_from_slice(b"\",");
        }
        Created::Null => out.extend_from_slice(b"\"created_at\":null,"),
        Created::Missing => {}
    }
    out.extend_from_slice(b"\"id\":");
    push_u64(out, st.id);
    out.extend_from_slice(b",\"id_str\":\"");
    push_u64(out, st.id);
    out.extend_from_slice(b"\",\"text\":\"");
    escape_into(out, &st.text.s);
    out.extend_from_slice(b"\",");
    if st.full.is_none() && st.display_from > 0 {
        out.extend_from_slice(b"\"display_text_range\":[");
        push_u64(out, st.display_from as u64);
        out.push(b',');
        push_u64(out, st.text.chars as u64);
        out.extend_from_slice(b"],");
    }
    out.extend_from_slice(b"\"source\":");
    out.extend_from_slice(&t.sources[st.source]);
    out.extend_from_slice(b",\"truncated\":");
    out.extend_from_slice(if st.full.is_some() { b"true" } else { b"false" });
    match st.reply {
        Some((status, user)) => {
            let u = &t.users[user as usize];
            out.extend_from_slice(b",\"in_reply_to_status_id\":");
            push_u64(out, status);
            out.extend_from_slice(b",\"in_reply_to_status_id_str\":\"");
            push_u64(out, status);
            out.extend_from_slice(b"\",\"in_reply_to_user_id\":");
            push_u64(out, u.id);
            out.extend_from_slice(b",\"in_reply_to_user_id_str\":\"");
            push_u64(out, u.id);
            out.extend_from_slice(b"\",\"in_reply_to_screen_name\":\"");
            escape_into(out, &u.screen_name);
            out.push(b'"');
        }
        None => out.extend_from_slice(
            b",\"in_reply_to_status_id\":null,\"in_reply_to_status_id_str\":null,\"in_reply_to_user_id\":null,\"in_reply_to_user_id_str\":null,\"in_reply_to_screen_name\":null",
        ),
    }
    let user = &t.users[st.user as usize];
    out.extend_from_slice(b",\"user\":");
    out.extend_from_slice(&user.head);
    push_u64(out, st.statuses_count);
    out.extend_from_slice(&user.tail);
    match st.place {
        Some((place, point)) => {
            match point {
                Some((lon, lat)) => {
                    let _ = write!(
                        out,
                        ",\"geo\":{{\"type\":\"Point\",\"coordinates\":[{lat:.6},{lon:.6}]}},\"coordinates\":{{\"type\":\"Point\",\"coordinates\":[{lon:.6},{lat:.6}]}}"
                    );
                }
                None => out.extend_from_slice(b",\"geo\":null,\"coordinates\":null"),
            }
            out.extend_from_slice(b",\"place\":");
            out.extend_from_slice(&t.places[place].json);
        }
        None => out.extend_from_slice(b",\"geo\":null,\"coordinates\":null,\"place\":null"),
    }
    out.extend_from_slice(b",\"contributors\":null,");
    if let Some(rt) = st.retweeted {
        out.extend_from_slice(b"\"retweeted_status\":");
        write_status(out, t, rt, scratch);
        out.push(b',');
    }
    if let Some(q) = st.quoted {
        out.extend_from_slice(b"\"quoted_status_id\":");
        push_u64(out, q.id);
        out.extend_from_slice(b",\"quoted_status_id_str\":\"");
        push_u64(out, q.id);
        out.extend_from_slice(b"\",\"quoted_status\":");
        write_status(out, t, q, scratch);
        // The permalink is the link to the quoted tweet at the end of the text.
        let text = st.full.unwrap_or(st.text);
        let link = text.ents.iter().rev().find_map(|e| match e.kind {
            EntKind::Url(target @ UrlTarget::Status { .. }) => Some((e, target)),
            _ => None,
        });
        if let Some((e, target)) = link {
            out.extend_from_slice(b",\"quoted_status_permalink\":{\"url\":\"");
            escape_into(out, &text.s[e.bstart as usize..e.bend as usize]);
            out.extend_from_slice(b"\",\"expanded\":\"");
            expanded_url(t, target, scratch);
            escape_into(out, scratch);
            out.extend_from_slice(b"\",\"display\":\"");
            write_display_url(out, scratch);
            out.extend_from_slice(b"\"}");
        }
        out.push(b',');
    }
    out.extend_from_slice(b"\"is_quote_status\":");
    out.extend_from_slice(if st.quoted.is_some() {
        b"true"
    } else {
        b"false"
    });
    if let Some(full) = st.full {
        out.extend_from_slice(b",\"extended_tweet\":{\"full_text\":\"");
        escape_into(out, &full.s);
        out.extend_from_slice(b"\",\"display_text_range\":[");
        push_u64(out, st.display_from as u64);
        out.push(b',');
        push_u64(out, full.chars as u64);
        out.extend_from_slice(b"],\"entities\":");
        write_entities(out, t, full, scratch);
        out.push(b'}');
    }
    let [quote, reply, retweet, favorite] = st.counts;
    out.extend_from_slice(b",\"quote_count\":");
    push_u64(out, quote);
    out.extend_from_slice(b",\"reply_count\":");
    push_u64(out, reply);
    out.extend_from_slice(b",\"retweet_count\":");
    push_u64(out, retweet);
    out.extend_from_slice(b",\"favorite_count\":");
    push_u64(out, favorite);
    out.extend_from_slice(b",\"entities\":");
    write_entities(out, t, st.text, scratch);
    out.extend_from_slice(b",\"favorited\":false,\"retweeted\":false,");
    let has_url = |b: &TextBuf| b.ents.iter().any(|e| matches!(e.kind, EntKind::Url(_)));
    if has_url(st.text) || st.full.is_some_and(has_url) {
        out.extend_from_slice(b"\"possibly_sensitive\":false,");
    }
    out.extend_from_slice(b"\"filter_level\":\"low\",\"lang\":\"");
    out.extend_from_slice(st.lang.as_bytes());
    out.push(b'"');
    if let Some(ts) = st.timestamp_ms {
        out.extend_from_slice(b",\"timestamp_ms\":\"");
        push_i64(out, ts);
        out.push(b'"');
    }
    out.push(b'}');
}

/// Where to break a tweet line's `text` value: after its first space (which is never inside
/// an escape sequence), or right after the opening quote.
fn text_insert_point(line: &[u8]) -> usize {
    let Some(pos) = memchr::memmem::find(line, b"\"text\":\"") else {
        return line.len() / 2;
    };
    let start = pos + 8;
    let mut i = start;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return start,
            b' ' => return i + 1,
            _ => i += 1,
        }
    }
    start
}

#[cfg(test)]
mod tests;
