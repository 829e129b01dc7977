//! What identifies a Jetstream event, so that one delivered twice (after a reconnect that
//! rewinds the cursor, or a restart) is recognised.
//!
//! A commit event is identified by its record and its commit: the DID, the record's path
//! (`collection/rkey`), the operation and the repository revision (`rev`) of the commit. The
//! revision is assigned by the author's PDS, so it is the same whichever Jetstream instance
//! relays the event, and a commit touches a record path at most once, so the four together
//! are unique: a create, a later update and a delete of one record (and a record re-created
//! under the same key) are different events. `time_us` is not part of it: it is when the
//! Jetstream instance received the event, which differs between instances (the public ones
//! are interchangeable and clients switch between them). It stands in only when a commit has
//! no `rev`. Identity and account events carry the relay's sequence number (`seq`), unique
//! per event.

use std::borrow::Cow;

use serde::Deserialize;

/// What [`read_head`] takes from an event line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventHead {
    /// `None` for a line that is not a recognisable event (it is passed on undeduplicated;
    /// the parser sets it aside).
    pub identity: Option<String>,
    /// When Jetstream received the event: its cursor.
    pub time_us: Option<i64>,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow)]
    did: Option<Cow<'a, str>>,
    time_us: Option<i64>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    commit: Option<WireCommit<'a>>,
    identity: Option<WireSequenced>,
    account: Option<WireSequenced>,
}

#[derive(Deserialize)]
struct WireCommit<'a> {
    #[serde(borrow)]
    rev: Option<Cow<'a, str>>,
    #[serde(borrow)]
    operation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    collection: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rkey: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireSequenced {
    seq: Option<i64>,
}

/// The identity and time of the event on `line` (one JSON object).
pub(crate) fn read_head(line: &[u8]) -> EventHead {
    let Ok(event) = serde_json::from_slice::<WireEvent<'_>>(line) else {
        return EventHead {
            identity: None,
            time_us: None,
        };
    };
    EventHead {
        identity: identity_of(&event),
        time_us: event.time_us,
    }
}

/// The identity of the Jetstream event on `line`, as the source de-duplicates by it:
/// `DID/collection/rkey operation rev:REV` for a commit, `DID kind seq:SEQ` for an identity or
/// account event; `None` when the line is not a Jetstream event.
pub fn event_identity(line: &[u8]) -> Option<String> {
    read_head(line).identity
}

fn identity_of(event: &WireEvent<'_>) -> Option<String> {
    let did = event.did.as_deref()?;
    let kind = event.kind.as_deref()?;
    // What tells two deliveries of one event from two events when nothing better exists.
    let fallback = || event.time_us.map(|t| format!("t:{t}"));
    match kind {
        "commit" => {
            let commit = event.commit.as_ref()?;
            let version = match commit.rev.as_deref() {
                Some(rev) => format!("rev:{rev}"),
                None => fallback()?,
            };
            Some(format!(
                "{did}/{}/{} {} {version}",
                commit.collection.as_deref().unwrap_or(""),
                commit.rkey.as_deref().unwrap_or(""),
                commit.operation.as_deref().unwrap_or(""),
            ))
        }
        _ => {
            let seq = match kind {
                "identity" => event.identity.as_ref().and_then(|i| i.seq),
                "account" => event.account.as_ref().and_then(|a| a.seq),
                _ => None,
            };
            let version = match seq {
                Some(seq) => format!("seq:{seq}"),
                None => fallback()?,
            };
            Some(format!("{did} {kind} {version}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_identified_by_record_and_revision() {
        let create = br#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"rev":"3l","operation":"create","collection":"app.bsky.feed.post","rkey":"3k","record":{"text":"x"},"cid":"b"}}"#;
        let head = read_head(create);
        assert_eq!(
            head.identity.as_deref(),
            Some("did:plc:a/app.bsky.feed.post/3k create rev:3l")
        );
        assert_eq!(head.time_us, Some(1));
        // The same commit relayed by another instance, received at another time.
        let relayed = br#"{"did":"did:plc:a","time_us":99,"kind":"commit","commit":{"rev":"3l","operation":"create","collection":"app.bsky.feed.post","rkey":"3k","record":{"text":"x"},"cid":"b"}}"#;
        assert_eq!(event_identity(relayed), head.identity);
        let delete = br#"{"did":"did:plc:a","time_us":2,"kind":"commit","commit":{"rev":"3m","operation":"delete","collection":"app.bsky.feed.post","rkey":"3k"}}"#;
        assert_ne!(event_identity(delete), head.identity);
    }

    #[test]
    fn identity_and_account_events_by_sequence_number() {
        let identity = br#"{"did":"did:plc:h","time_us":5,"kind":"identity","identity":{"did":"did:plc:h","seq":31527015470,"time":"2026-07-04T14:38:07.877Z"}}"#;
        let account = br#"{"did":"did:plc:h","time_us":6,"kind":"account","account":{"active":true,"did":"did:plc:h","seq":31527015471,"time":"2026-07-04T14:38:07.877Z"}}"#;
        assert_eq!(
            event_identity(identity).as_deref(),
            Some("did:plc:h identity seq:31527015470")
        );
        assert_eq!(
            event_identity(account).as_deref(),
            Some("did:plc:h account seq:31527015471")
        );
    }

    #[test]
    fn lines_that_are_not_events_have_no_identity() {
        assert_eq!(event_identity(b"not json"), None);
        assert_eq!(event_identity(br#"{"text":"a post"}"#), None);
        let unknown_kind = br#"{"did":"did:plc:a","time_us":7,"kind":"sync"}"#;
        assert_eq!(
            event_identity(unknown_kind).as_deref(),
            Some("did:plc:a sync t:7")
        );
    }
}
