//! Mapping the pages of a large fresh buffer before it is written.
//!
//! The first write to each 4 KB page of fresh memory is a page fault: on the test VM ~1.5 µs
//! each, 8-12 ms for the 32 MB of a memory table's snapshot, written on one core at the end of
//! Q2's flush while the other core had nothing left to do. `MADV_POPULATE_WRITE` (Linux 5.14)
//! maps a range in one call at about a third of that cost, and a second thread can map the
//! rest of the buffer while the first one writes its beginning.
//!
//! ```
//! let mut buf = Vec::new();
//! let n = trendflow_core::prefault::filling(&mut buf, 64 << 20, |buf| {
//!     buf.extend(std::iter::repeat_n(7u8, 40 << 20));
//!     buf.len()
//! });
//! assert_eq!(n, 40 << 20);
//! assert!(buf.iter().all(|&b| b == 7));
//! ```

/// Below this much room, pages are left to fault as they are written.
const MIN_BYTES: usize = 8 << 20;

/// Reserves room for `additional` bytes in `buf` and runs `fill`, which appends to it. For a
/// large reservation, the first quarter of the new room is mapped before `fill` starts and
/// the rest on another thread while it runs. Only page tables change: the contents and what
/// `fill` does with `buf` are the same as without.
pub fn filling<R>(buf: &mut Vec<u8>, additional: usize, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    buf.reserve(additional);
    let room = buf.capacity() - buf.len();
    if room < MIN_BYTES || !cfg!(target_os = "linux") {
        return fill(buf);
    }
    // Addresses as integers: the other thread never touches the memory, only asks the kernel
    // to map it, which leaves any contents as they are (even if `fill` outgrew the room and
    // the buffer moved, the range is then free memory, or another mapping, left unchanged).
    let start = buf.as_ptr() as usize + buf.len();
    let quarter = start + room / 4;
    let end = start + room;
    populate(start, quarter);
    std::thread::scope(|s| {
        s.spawn(|| populate(quarter, end));
        fill(buf)
    })
}

/// Maps the whole pages within `[from, to)`, writable; failures (an older kernel) are left
/// to the page faults.
fn populate(from: usize, to: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let from = from.next_multiple_of(PAGE);
        let to = to / PAGE * PAGE;
        if to > from {
            // SAFETY: madvise reads no memory and changes no contents; on a range that is not
            // mapped it fails, which is ignored.
            unsafe {
                libc::madvise(
                    from as *mut libc::c_void,
                    to - from,
                    libc::MADV_POPULATE_WRITE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (from, to);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_buffer_holds_what_was_written_around_what_it_held() {
        for (before, additional, written) in [
            (0usize, 1usize << 10, 1usize << 10),
            (3, MIN_BYTES + 5, MIN_BYTES + 5),
            (100, 3 * MIN_BYTES, MIN_BYTES),
            // More than reserved: the buffer moves while the other thread maps the old room.
            (7, MIN_BYTES, 3 * MIN_BYTES + 1),
        ] {
            let mut buf: Vec<u8> = (0..before).map(|i| i as u8).collect();
            let n = filling(&mut buf, additional, |buf| {
                for i in 0..written {
                    buf.push((i % 251) as u8);
                }
                buf.len()
            });
            assert_eq!(n, before + written);
            assert!(buf[..before].iter().enumerate().all(|(i, &b)| b == i as u8));
            assert!(
                buf[before..]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == (i % 251) as u8)
            );
        }
    }
}
