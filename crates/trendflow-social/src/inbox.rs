//! What a background connection has received and no epoch has taken yet.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

struct State<T> {
    items: VecDeque<T>,
    /// Why the connection gave up: a request the server refuses whatever the retries.
    fatal: Option<String>,
}

/// A bounded queue between a connection task and the source's `plan_epoch`. When it is full
/// the connection stops reading, and TCP's flow control slows the server down: nothing piles
/// up in memory while the pipeline is slower than the stream.
pub(crate) struct Inbox<T> {
    state: Mutex<State<T>>,
    room: Notify,
    capacity: usize,
}

impl<T> Inbox<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Inbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                fatal: None,
            }),
            room: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Up to `max` items, oldest first; once the connection has given up and every item
    /// it received has been taken, its reason.
    pub(crate) fn take(&self, max: usize) -> Result<Vec<T>, String> {
        let mut state = self.state.lock().unwrap();
        if state.items.is_empty()
            && let Some(fatal) = &state.fatal
        {
            return Err(fatal.clone());
        }
        let n = state.items.len().min(max);
        let taken = state.items.drain(..n).collect();
        drop(state);
        self.room.notify_waiters();
        Ok(taken)
    }

    /// An epoch's worth of items: up to `max` that `keep` accepts (it sees every item taken,
    /// and records or counts it). Items it rejects (duplicates after a reconnect, edits) do
    /// not count towards `max`, so new ones behind them do not wait a trigger; examining is
    /// bounded all the same (4 × `max`), so that a plan always ends.
    pub(crate) fn take_new(
        &self,
        max: usize,
        mut keep: impl FnMut(T) -> bool,
    ) -> Result<usize, String> {
        let (mut taken, mut examined) = (0, 0);
        while taken < max && examined < 4 * max {
            let items = self.take(max - taken)?;
            if items.is_empty() {
                break;
            }
            examined += items.len();
            for item in items {
                if keep(item) {
                    taken += 1;
                }
            }
        }
        Ok(taken)
    }

    pub(crate) fn push(&self, item: T) {
        self.state.lock().unwrap().items.push_back(item);
    }

    /// The connection gave up: the next `take` fails with `reason`.
    pub(crate) fn fail(&self, reason: String) {
        self.state.lock().unwrap().fatal = Some(reason);
    }

    /// Returns once the inbox has room for another item.
    pub(crate) async fn wait_for_room(&self) {
        loop {
            // Registered before the check: a `take` between the check and the wait still
            // wakes it.
            let room = self.room.notified();
            if self.state.lock().unwrap().items.len() < self.capacity {
                return;
            }
            room.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_full_inbox_holds_the_connection_until_an_epoch_takes_from_it() {
        let inbox = Arc::new(Inbox::new(2));
        inbox.push(1);
        inbox.push(2);
        let waiting = {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                inbox.wait_for_room().await;
                inbox.push(3);
            })
        };
        // On this single-threaded runtime, yielding lets the spawned task run up to its
        // wait.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(inbox.take(10).unwrap(), vec![1, 2], "3 waited for room");
        waiting.await.unwrap();
        assert_eq!(inbox.take(10).unwrap(), vec![3]);
        inbox.push(4);
        inbox.fail("refused".into());
        assert_eq!(
            inbox.take(10).unwrap(),
            vec![4],
            "what arrived before is taken first"
        );
        assert_eq!(inbox.take(10), Err("refused".to_string()));
    }
}
