//! A progress bar on stderr for bounded work (`generate`, `bench`'s data, an `available_now`
//! run): done / total, rate and time left. Drawn only when both stdout and stderr are
//! terminals, so logs, pipes and tests get none of it; redrawn at most ten times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Files,
    /// Measurements (`bench`'s processes).
    Runs,
    Bytes,
}

pub struct Bar {
    label: String,
    total: u64,
    unit: Unit,
    started: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
    /// A second count shown after the first (files beside bytes, bytes beside files).
    detail: String,
}

/// `n` bytes for people: kB, MB, GB.
pub fn human_bytes(n: u64) -> String {
    human(n as f64, Unit::Bytes)
}

fn human(n: f64, unit: Unit) -> String {
    match unit {
        Unit::Files | Unit::Runs => format!("{}", n.round() as u64),
        Unit::Bytes if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        Unit::Bytes if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        Unit::Bytes => format!("{:.0} kB", n / 1e3),
    }
}

/// One line of the bar: `label [#####-----]  45% 1.2 GB / 2.7 GB, 85.0 MB/s, 18 s left`.
pub fn render(label: &str, done: u64, total: u64, unit: Unit, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let width = 24;
    let filled = (fraction * width as f64).round() as usize;
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let per = match unit {
        Unit::Files => format!("{rate:.1} files/s"),
        Unit::Runs => format!("{rate:.2} runs/s"),
        Unit::Bytes => format!("{}/s", human(rate, unit)),
    };
    let left = if rate > 0.0 && done < total {
        format!(", {:.0} s left", (total - done) as f64 / rate)
    } else {
        String::new()
    };
    let of = match unit {
        Unit::Files => format!("{done}/{total} files"),
        Unit::Runs => format!("{done}/{total} runs"),
        Unit::Bytes => format!(
            "{} / {}",
            human(done as f64, unit),
            human(total as f64, unit)
        ),
    };
    format!(
        "{label} [{}{}] {:>3.0}% {of}, {per}{left}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        fraction * 100.0
    )
}

impl Bar {
    pub fn new(label: &str, total: u64, unit: Unit) -> Bar {
        Bar {
            label: label.to_string(),
            total,
            unit,
            started: Instant::now(),
            last_draw: None,
            enabled: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            detail: String::new(),
        }
    }

    /// Sets the second count the bar shows, as text ("12/40 files", "1.2 GB written").
    pub fn detail(&mut self, text: String) {
        self.detail = text;
    }

    pub fn set(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if done < self.total
            && self
                .last_draw
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(now);
        let mut line = render(
            &self.label,
            done,
            self.total,
            self.unit,
            self.started.elapsed(),
        );
        if !self.detail.is_empty() {
            line.push_str(&format!(" ({})", self.detail));
        }
        let mut err = std::io::stderr().lock();
        // The cursor goes back to the line's start: a log line written next replaces the bar
        // instead of running on after it.
        let _ = write!(err, "\r\x1b[2K{line}\r");
        let _ = err.flush();
    }

    /// Leaves the bar's last state on its own line.
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let _ = writeln!(std::io::stderr(), "\x1b[K");
        }
        self.enabled = false;
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_done_rate_and_time_left() {
        assert_eq!(
            render("generate", 25, 100, Unit::Files, Duration::from_secs(5)),
            "generate [######------------------]  25% 25/100 files, 5.0 files/s, 15 s left"
        );
        assert_eq!(
            render(
                "read",
                2_000_000_000,
                2_000_000_000,
                Unit::Bytes,
                Duration::from_secs(10)
            ),
            "read [########################] 100% 2.00 GB / 2.00 GB, 200.0 MB/s"
        );
        assert!(render("x", 0, 0, Unit::Bytes, Duration::ZERO).contains("100%"));
        assert_eq!(
            render("bench", 1, 4, Unit::Runs, Duration::from_secs(2)),
            "bench [######------------------]  25% 1/4 runs, 0.50 runs/s, 6 s left"
        );
    }
}
