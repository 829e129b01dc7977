//! Result rows as a batch carries them: each row's key is an index into a list of keys the
//! batch shares, and its window an index into the batch's windows.
//!
//! A flush of sliding windows repeats each key in every window it appears in: with 24-hour
//! windows sliding every minute, Q2 over 200k tweets emits 3.92M rows over 20,073 keys. As a
//! shared `Arc<str>` per row, each row cost a reference-count increment when made and a
//! decrement when dropped, on the key's cache line, from the emitting core and then from the
//! sinks' cores: half of the samples of the emitting loop were its increment, and dropping
//! the rows as much again. Here a row is 16 bytes of plain data and the keys are shared once
//! per batch (all the parts of a flush share one list).

use std::sync::Arc;

use crate::Window;

/// One row of a result table, owning its key (the form sinks keep and sort).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultRow {
    pub window: Option<Window>,
    pub key: Arc<str>,
    pub count: i64,
}

impl ResultRow {
    pub fn as_ref(&self) -> RowRef<'_> {
        RowRef {
            window: self.window,
            key: &self.key,
            count: self.count,
        }
    }
}

/// A row read from [`Rows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef<'a> {
    pub window: Option<Window>,
    pub key: &'a Arc<str>,
    pub count: i64,
}

impl RowRef<'_> {
    /// The row with its own handle on the key (shared, not copied).
    pub fn to_owned(&self) -> ResultRow {
        ResultRow {
            window: self.window,
            key: self.key.clone(),
            count: self.count,
        }
    }

    /// The order of a result table's rows: by window, then key.
    pub fn table_order(&self, other: &RowRef<'_>) -> std::cmp::Ordering {
        self.window
            .cmp(&other.window)
            .then_with(|| self.key.cmp(other.key))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    window: u32,
    key: u32,
    count: i64,
}

/// The rows of a batch.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Rows, Window};
///
/// let keys: Arc<[Arc<str>]> = vec![Arc::from("#a"), Arc::from("#b")].into();
/// let mut rows = Rows::with_keys(keys, true);
/// let w = Some(Window { start: 0, end: 10 });
/// rows.push(w, 0, 3);
/// rows.push(w, 1, 1);
/// let got: Vec<_> = rows.iter().map(|r| (&**r.key, r.count)).collect();
/// assert_eq!(got, [("#a", 3), ("#b", 1)]);
/// assert!(rows.ordered_after(None));
/// ```
#[derive(Debug, Clone)]
pub struct Rows {
    keys: Arc<[Arc<str>]>,
    /// The keys are in their sort order, without repeats: comparing two rows' key indices
    /// compares their keys.
    keys_sorted: bool,
    windows: Vec<Option<Window>>,
    entries: Vec<Entry>,
}

impl Default for Rows {
    fn default() -> Self {
        Rows::with_keys(Arc::from(Vec::new()), true)
    }
}

impl Rows {
    /// No rows yet, over `keys` (`sorted`: in sort order without repeats).
    pub fn with_keys(keys: Arc<[Arc<str>]>, sorted: bool) -> Self {
        Rows {
            keys,
            keys_sorted: sorted,
            windows: Vec::new(),
            entries: Vec::new(),
        }
    }

    pub fn reserve(&mut self, rows: usize) {
        self.entries.reserve(rows);
    }

    /// Appends a row whose key is `keys[key]`.
    ///
    /// # Panics
    /// When `key` is not an index of the keys.
    #[inline]
    pub fn push(&mut self, window: Option<Window>, key: u32, count: i64) {
        assert!(
            (key as usize) < self.keys.len(),
            "a row's key is one of the keys"
        );
        if self.windows.last() != Some(&window) {
            self.windows.push(window);
        }
        self.entries.push(Entry {
            window: (self.windows.len() - 1) as u32,
            key,
            count,
        });
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    fn row(&self, e: &Entry) -> RowRef<'_> {
        RowRef {
            window: self.windows[e.window as usize],
            key: &self.keys[e.key as usize],
            count: e.count,
        }
    }

    /// The `i`th row.
    ///
    /// # Panics
    /// When `i >= len()`.
    #[inline]
    pub fn get(&self, i: usize) -> RowRef<'_> {
        self.row(&self.entries[i])
    }

    pub fn first(&self) -> Option<RowRef<'_>> {
        self.entries.first().map(|e| self.row(e))
    }

    pub fn last(&self) -> Option<RowRef<'_>> {
        self.entries.last().map(|e| self.row(e))
    }

    pub fn iter(&self) -> RowIter<'_> {
        self.range(0, self.len())
    }

    /// The rows from `from` to `to` (excluded).
    ///
    /// # Panics
    /// When `from > to` or `to > len()`.
    pub fn range(&self, from: usize, to: usize) -> RowIter<'_> {
        RowIter {
            rows: self,
            entries: self.entries[from..to].iter(),
        }
    }

    /// The rows as owned rows.
    pub fn to_vec(&self) -> Vec<ResultRow> {
        self.iter().map(|r| r.to_owned()).collect()
    }

    /// Whether the rows from `from` to `to` are in table order (window, then key), the first
    /// after `previous`. With sorted keys rows are compared by their indices, not their text
    /// (the check runs over every row of a flush).
    pub fn ordered_between(&self, from: usize, to: usize, previous: Option<RowRef<'_>>) -> bool {
        if from >= to {
            return true;
        }
        if previous.is_some_and(|p| p.table_order(&self.get(from)).is_gt()) {
            return false;
        }
        let entries = &self.entries[from..to];
        if self.keys_sorted {
            // A row's window index is that of the last window pushed: consecutive rows share
            // an index exactly when they share a window, and windows themselves are compared
            // only where the index changes.
            entries.windows(2).all(|p| {
                if p[0].window == p[1].window {
                    p[0].key <= p[1].key
                } else {
                    self.windows[p[0].window as usize] <= self.windows[p[1].window as usize]
                }
            })
        } else {
            entries
                .windows(2)
                .all(|p| self.row(&p[0]).table_order(&self.row(&p[1])).is_le())
        }
    }

    /// [`Rows::ordered_between`] over all the rows.
    pub fn ordered_after(&self, previous: Option<RowRef<'_>>) -> bool {
        self.ordered_between(0, self.len(), previous)
    }
}

impl From<Vec<ResultRow>> for Rows {
    /// Each row's key is kept as it is (one key per row, repeats included).
    fn from(rows: Vec<ResultRow>) -> Self {
        let mut windows = Vec::new();
        let mut entries = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for (i, r) in rows.into_iter().enumerate() {
            if windows.last() != Some(&r.window) {
                windows.push(r.window);
            }
            entries.push(Entry {
                window: (windows.len() - 1) as u32,
                key: i as u32,
                count: r.count,
            });
            keys.push(r.key);
        }
        Rows {
            keys: keys.into(),
            keys_sorted: false,
            windows,
            entries,
        }
    }
}

impl FromIterator<ResultRow> for Rows {
    fn from_iter<I: IntoIterator<Item = ResultRow>>(iter: I) -> Self {
        Rows::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl PartialEq for Rows {
    /// Rows are equal when they read the same, whatever their keys' layout.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl PartialEq<Vec<ResultRow>> for Rows {
    fn eq(&self, other: &Vec<ResultRow>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter().map(ResultRow::as_ref))
    }
}

/// The rows of a [`Rows`] range, in order.
#[derive(Debug, Clone)]
pub struct RowIter<'a> {
    rows: &'a Rows,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for RowIter<'a> {
    type Item = RowRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RowRef<'a>> {
        self.entries.next().map(|e| self.rows.row(e))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for RowIter<'_> {}

impl DoubleEndedIterator for RowIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.entries.next_back().map(|e| self.rows.row(e))
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = RowRef<'a>;
    type IntoIter = RowIter<'a>;

    fn into_iter(self) -> RowIter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start: i64, key: &str, count: i64) -> ResultRow {
        ResultRow {
            window: Some(Window {
                start,
                end: start + 10,
            }),
            key: key.into(),
            count,
        }
    }

    fn sorted_keys(keys: &[&str]) -> Arc<[Arc<str>]> {
        keys.iter().map(|&k| Arc::from(k)).collect()
    }

    #[test]
    fn rows_read_back_as_pushed_and_as_converted() {
        let owned = vec![row(0, "#b", 2), row(0, "#a", 1), row(5, "#b", 4)];
        let rows = Rows::from(owned.clone());
        assert_eq!(rows.to_vec(), owned);
        assert_eq!(rows, owned);
        let mut pushed = Rows::with_keys(sorted_keys(&["#a", "#b"]), true);
        pushed.push(owned[0].window, 1, 2);
        pushed.push(owned[1].window, 0, 1);
        pushed.push(owned[2].window, 1, 4);
        assert_eq!(pushed, rows);
        assert_eq!(pushed.get(2).to_owned(), owned[2]);
        let back: Vec<_> = pushed.iter().rev().map(|r| r.count).collect();
        assert_eq!(back, [4, 1, 2]);
        assert_eq!(pushed.range(1, 3).len(), 2);
    }

    #[test]
    fn order_is_checked_by_index_and_by_text_alike() {
        let keys = sorted_keys(&["#a", "#b", "#c"]);
        let cases: [(&[(i64, u32)], bool); 6] = [
            (&[(0, 0), (0, 1), (0, 2), (5, 0)], true),
            (&[(0, 1), (0, 0)], false),
            (&[(5, 0), (0, 2)], false),
            (&[(0, 1), (0, 1)], true),
            (&[(0, 2), (5, 0), (5, 1)], true),
            (&[], true),
        ];
        for (pairs, ordered) in cases {
            let mut by_index = Rows::with_keys(keys.clone(), true);
            for &(s, k) in pairs {
                by_index.push(
                    Some(Window {
                        start: s,
                        end: s + 10,
                    }),
                    k,
                    1,
                );
            }
            let by_text = Rows::from(by_index.to_vec());
            assert_eq!(by_index.ordered_after(None), ordered, "{pairs:?}");
            assert_eq!(by_text.ordered_after(None), ordered, "{pairs:?}");
        }
        let rows = Rows::from(vec![row(5, "#a", 1), row(5, "#b", 1)]);
        let before = row(5, "#b", 1);
        assert!(!rows.ordered_after(Some(before.as_ref())));
        assert!(rows.ordered_between(1, 2, Some(before.as_ref())));
        assert!(rows.ordered_after(Some(row(0, "#z", 1).as_ref())));
    }

    #[test]
    #[should_panic(expected = "one of the keys")]
    fn a_row_cannot_point_past_the_keys() {
        Rows::with_keys(sorted_keys(&["#a"]), true).push(None, 1, 1);
    }
}
