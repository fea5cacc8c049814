// SPDX-License-Identifier: GPL-2.0

//! Progress for long work: a bar redrawn in place on a terminal, a line every
//! so often in a log (CI), never a wall of tool output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A counter of done units towards an estimated total.
pub(crate) struct Progress {
    label: String,
    estimate: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    tty: bool,
}

impl Progress {
    /// Starts reporting `label`, expecting about `estimate` units.
    pub(crate) fn new(label: &str, estimate: u64) -> Progress {
        Progress {
            label: label.to_string(),
            estimate: estimate.max(1),
            done: 0,
            started: Instant::now(),
            last_draw: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Counts `n` more units done and redraws when due.
    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        let every = if self.tty { Duration::from_millis(200) } else { Duration::from_secs(30) };
        if self.last_draw.is_none_or(|t| t.elapsed() >= every) {
            self.draw();
        }
    }

    /// The line shown for the current state.
    pub(crate) fn line(&self) -> String {
        let percent = (self.done * 100 / self.estimate).min(99);
        let width = 30;
        let filled = (percent as usize * width) / 100;
        format!(
            "{} [{}{}] {:>3}% ({} done, {})",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            percent,
            self.done,
            format_duration(self.started.elapsed())
        )
    }

    fn draw(&mut self) {
        self.last_draw = Some(Instant::now());
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{}\x1b[K", self.line());
        } else {
            let _ = writeln!(err, "{}", self.line());
        }
        let _ = err.flush();
    }

    /// Ends the bar with a summary line; returns the elapsed time.
    pub(crate) fn finish(self, summary: &str) -> Duration {
        let elapsed = self.started.elapsed();
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{}: {summary} in {}", self.label, format_duration(elapsed));
        elapsed
    }
}

/// `1m05s` or `4.2s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 {
        format!("{}m{:02}s", secs as u64 / 60, secs as u64 % 60)
    } else {
        format!("{secs:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_never_claims_done_early() {
        let mut p = Progress::new("kernel", 10);
        p.tty = true;
        p.last_draw = Some(Instant::now());
        p.done = 25;
        assert!(p.line().contains(" 99%"), "{}", p.line());
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(4200)), "4.2s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m05s");
    }
}
