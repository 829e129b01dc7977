//! Failpoints: named places in the code where a test can make the process fail on purpose,
//! to check that every step of the checkpoint protocol survives a crash right there.
//!
//! They are set with the environment variable `TRENDFLOW_FAILPOINTS`, a `;`-separated list of
//! `name=action`, where action is `abort`, `panic` or `error`, optionally `@N` to act only on
//! the N-th time the point is reached (counting from 1), and for [`arg`] any text after `:`:
//!
//! ```text
//! TRENDFLOW_FAILPOINTS="put-before-rename=abort@3;tokenizer-batch=panic@2"
//! TRENDFLOW_FAILPOINTS="tokenizer-poison=panic:#poisoned"
//! ```
//!
//! `abort` ends the process at once with exit status 86 and no clean-up, as `kill -9` would.
//! Unset (the normal case), a failpoint costs one load of a static.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Abort,
    Panic,
    Error,
}

#[derive(Debug)]
struct Point {
    action: Action,
    nth: Option<u64>,
    arg: Option<String>,
    hits: AtomicU64,
}

/// The exit status of a process stopped by an `abort` failpoint.
pub const ABORT_EXIT_CODE: i32 = 86;

fn points() -> Option<&'static HashMap<String, Point>> {
    static POINTS: OnceLock<Option<HashMap<String, Point>>> = OnceLock::new();
    POINTS
        .get_or_init(|| {
            let spec = std::env::var("TRENDFLOW_FAILPOINTS").ok()?;
            Some(parse(&spec))
        })
        .as_ref()
}

fn parse(spec: &str) -> HashMap<String, Point> {
    let mut map = HashMap::new();
    for item in spec.split(';').filter(|s| !s.trim().is_empty()) {
        let Some((name, rest)) = item.split_once('=') else {
            continue;
        };
        let (rest, arg) = match rest.split_once(':') {
            Some((a, b)) => (a, Some(b.trim().to_string())),
            None => (rest, None),
        };
        let (action, nth) = match rest.split_once('@') {
            Some((a, n)) => (a, n.trim().parse().ok()),
            None => (rest, None),
        };
        let action = match action.trim() {
            "abort" => Action::Abort,
            "panic" => Action::Panic,
            "error" => Action::Error,
            _ => continue,
        };
        map.insert(
            name.trim().to_string(),
            Point {
                action,
                nth,
                arg,
                hits: AtomicU64::new(0),
            },
        );
    }
    map
}

/// Reaches the failpoint `name`: aborts, panics or returns an error when it is set and due.
pub fn check(name: &str) -> Result<(), String> {
    let Some(p) = points().and_then(|m| m.get(name)) else {
        return Ok(());
    };
    let hit = p.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if p.nth.is_some_and(|n| n != hit) {
        return Ok(());
    }
    match p.action {
        Action::Abort => {
            eprintln!("failpoint {name}: aborting the process (hit {hit})");
            std::process::exit(ABORT_EXIT_CODE)
        }
        Action::Panic => panic!("failpoint {name} (hit {hit})"),
        Action::Error => Err(format!("failpoint {name} (hit {hit})")),
    }
}

/// The argument of failpoint `name`, when it is set with one (`name=panic:ARG`).
pub fn arg(name: &str) -> Option<&'static str> {
    points()?.get(name)?.arg.as_deref()
}

/// Is any failpoint set? Lets hot loops skip per-record checks.
pub fn any() -> bool {
    points().is_some_and(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let m = parse("a=abort@3; b=panic:#x ;c=error;d=bogus;e");
        assert_eq!(m["a"].action, Action::Abort);
        assert_eq!(m["a"].nth, Some(3));
        assert_eq!(m["b"].arg.as_deref(), Some("#x"));
        assert_eq!(m["c"].action, Action::Error);
        assert!(!m.contains_key("d") && !m.contains_key("e"));
    }

    #[test]
    fn unset_points_do_nothing() {
        assert_eq!(check("no-such-point"), Ok(()));
        assert_eq!(arg("no-such-point"), None);
    }
}
