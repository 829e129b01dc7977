//! Event-time windows aligned to the Unix epoch, and the slices they are built from.
//!
//! A sliding window of `size` every `slide` covers `size / slice` slices, where the slice is
//! the greatest common divisor of size and slide. Counting per slice and combining slices when
//! a window is emitted makes the cost per event one update, whatever size/slide is.

use crate::EventTime;

/// A window [start, end) in event time (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: EventTime,
    pub end: EventTime,
}

/// Sliding (or, with slide == size, tumbling) windows, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub size: i64,
    pub slide: i64,
    slice: i64,
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl SlidingWindows {
    /// Windows of `size` ms starting every `slide` ms. Both must be positive and slide ≤ size.
    pub fn new(size: i64, slide: i64) -> Result<Self, String> {
        if size <= 0 || slide <= 0 {
            return Err("window size and slide must be positive".into());
        }
        if slide > size {
            return Err(format!(
                "window slide ({slide} ms) is longer than its size ({size} ms)"
            ));
        }
        Ok(SlidingWindows {
            size,
            slide,
            slice: gcd(size, slide),
        })
    }

    /// Length of a slice, the unit of state.
    pub fn slice(&self) -> i64 {
        self.slice
    }

    /// Number of windows each event belongs to (36 for 3h every 5min).
    pub fn windows_per_event(&self) -> i64 {
        self.size / self.slide + i64::from(self.size % self.slide != 0)
    }

    /// Start of the slice holding `t`.
    pub fn slice_of(&self, t: EventTime) -> EventTime {
        t - t.rem_euclid(self.slice)
    }

    /// Start of the last (latest) window that contains `t`.
    pub fn last_window_start(&self, t: EventTime) -> EventTime {
        t - t.rem_euclid(self.slide)
    }

    /// Every window containing `t`, earliest first: start ≤ t < start + size.
    pub fn windows_of(&self, t: EventTime) -> impl Iterator<Item = Window> + '_ {
        let last = self.last_window_start(t);
        let size = self.size;
        let slide = self.slide;
        let mut starts = Vec::new();
        let mut s = last;
        while s > t - size {
            starts.push(s);
            s -= slide;
        }
        starts.into_iter().rev().map(move |start| Window {
            start,
            end: start + size,
        })
    }

    /// End of the latest window containing `t`: once the watermark reaches it, `t` is late
    /// for every window.
    pub fn last_window_end(&self, t: EventTime) -> EventTime {
        self.last_window_start(t) + self.size
    }

    /// Number of windows containing `t` whose end is at or before `watermark`.
    pub fn closed_windows_of(&self, t: EventTime, watermark: EventTime) -> i64 {
        // Windows containing t have starts last, last - slide, ... > t - size; the closed
        // ones have start + size <= watermark.
        let last = self.last_window_start(t);
        let first_open = watermark - self.size; // start must be > this to be open
        let total = self.windows_per_event_at(t);
        if last <= first_open {
            return total;
        }
        // starts in (t - size, first_open]
        let lowest = last - (total - 1) * self.slide;
        if lowest > first_open {
            0
        } else {
            (first_open - lowest).div_euclid(self.slide) + 1
        }
    }

    fn windows_per_event_at(&self, t: EventTime) -> i64 {
        let last = self.last_window_start(t);
        // number of s = last - k*slide with s > t - size
        (last - (t - self.size) - 1).div_euclid(self.slide) + 1
    }

    /// The first window start (aligned to slide) whose window contains the slice at
    /// `slice_start`.
    pub fn first_window_of_slice(&self, slice_start: EventTime) -> EventTime {
        let lowest = slice_start + self.slice - self.size;
        // align up to slide
        lowest + (self.slide - lowest.rem_euclid(self.slide)) % self.slide
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    #[test]
    fn an_event_is_in_36_windows_of_3h_every_5min() {
        let w = SlidingWindows::new(180 * MIN, 5 * MIN).unwrap();
        let t = 1_618_473_605_000; // Thu Apr 15 08:00:05 UTC 2021
        let ws: Vec<_> = w.windows_of(t).collect();
        assert_eq!(ws.len(), 36);
        assert_eq!(ws[0].start, 1_618_473_600_000 - 175 * MIN);
        assert_eq!(
            ws[35],
            Window {
                start: 1_618_473_600_000,
                end: 1_618_473_600_000 + 180 * MIN
            }
        );
        assert!(ws.iter().all(|x| x.start <= t && t < x.end));
        assert_eq!(w.slice(), 5 * MIN);
    }

    #[test]
    fn slices_use_the_gcd() {
        let w = SlidingWindows::new(10 * MIN, 4 * MIN).unwrap();
        assert_eq!(w.slice(), 2 * MIN);
        assert_eq!(w.windows_per_event(), 3);
        assert!(SlidingWindows::new(MIN, 2 * MIN).is_err());
    }

    #[test]
    fn negative_times_floor() {
        let w = SlidingWindows::new(10, 5).unwrap();
        assert_eq!(w.slice_of(-1), -5);
        let ws: Vec<_> = w.windows_of(-1).collect();
        assert_eq!(
            ws,
            vec![Window { start: -10, end: 0 }, Window { start: -5, end: 5 }]
        );
    }

    proptest! {
        #[test]
        fn windows_match_the_definition(size in 1i64..50, slide_frac in 1i64..50, t in -500i64..500) {
            let slide = 1 + (slide_frac - 1) % size;
            let w = SlidingWindows::new(size, slide).unwrap();
            let got: Vec<_> = w.windows_of(t).collect();
            // naive: every start multiple of slide in a wide range
            let mut want = Vec::new();
            let mut s = (t - size - slide).div_euclid(slide) * slide;
            while s <= t {
                if s <= t && t < s + size { want.push(Window { start: s, end: s + size }); }
                s += slide;
            }
            prop_assert_eq!(&got, &want);
            // every window is a whole number of slices, and the event's slice is inside each
            let sl = w.slice_of(t);
            for x in &got {
                prop_assert!(x.start <= sl && sl + w.slice() <= x.end);
                prop_assert_eq!((x.end - x.start) % w.slice(), 0);
            }
            for wm in -600i64..600 {
                let closed = got.iter().filter(|x| x.end <= wm).count() as i64;
                prop_assert_eq!(w.closed_windows_of(t, wm), closed);
            }
            prop_assert_eq!(w.last_window_end(t), got.last().unwrap().end);
            prop_assert_eq!(w.first_window_of_slice(sl), got.first().unwrap().start);
        }
    }
}
