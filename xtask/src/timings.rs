// SPDX-License-Identifier: GPL-2.0

//! How long named jobs took last time, kept in the cache as `NAME SECONDS`
//! lines: a guide for sharing the next run's work, never part of a verdict.
//! A file that cannot be read or written costs balance, not correctness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The seconds each job took in its last run.
#[derive(Debug)]
pub(crate) struct Timings {
    file: PathBuf,
    seconds: BTreeMap<String, f64>,
}

impl Timings {
    /// The timings in `file`; none when it is missing or unreadable, and
    /// lines that do not parse are skipped.
    pub(crate) fn read(file: &Path) -> Timings {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let seconds = text
            .lines()
            .filter_map(|line| {
                let (name, seconds) = line.rsplit_once(' ')?;
                Some((name.to_string(), seconds.trim().parse().ok()?))
            })
            .collect();
        Timings { file: file.to_path_buf(), seconds }
    }

    /// What `name` took last time, when it was timed.
    pub(crate) fn get(&self, name: &str) -> Option<f64> {
        self.seconds.get(name).copied()
    }

    /// Records what `name` took now.
    pub(crate) fn set(&mut self, name: &str, took: Duration) {
        self.seconds.insert(name.to_string(), took.as_secs_f64());
    }

    /// Writes the timings back, replacing the file at once (two runs that
    /// write together leave one's whole file, never a mix).
    pub(crate) fn write(&self) {
        let text: String = self.seconds.iter().map(|(name, seconds)| format!("{name} {seconds:.2}\n")).collect();
        let partial = self.file.with_extension(format!("partial-{}", std::process::id()));
        if std::fs::write(&partial, text).is_err() || std::fs::rename(&partial, &self.file).is_err() {
            let _ = std::fs::remove_file(&partial);
        }
    }

    /// Indices of `names` in the order to start them: the longest last time
    /// first, each followed by the shortest left, so that no long job starts
    /// last and keeps the machine waiting for it alone, and long jobs (often
    /// a hang's wait) do not all start together. Jobs never timed come
    /// first, in their order.
    pub(crate) fn start_order<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
        let costs: Vec<f64> = names.into_iter().map(|name| self.get(name).unwrap_or(f64::INFINITY)).collect();
        let mut order: Vec<usize> = (0..costs.len()).collect();
        // Stable: equal costs (every job, on a first run) keep their order.
        order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]));
        let untimed = costs.iter().filter(|cost| cost.is_infinite()).count();
        let mut mixed = order[..untimed].to_vec();
        let (mut front, mut back) = (untimed, order.len());
        while front < back {
            mixed.push(order[front]);
            front += 1;
            if front < back {
                back -= 1;
                mixed.push(order[back]);
            }
        }
        mixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_start_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seconds");
        std::fs::write(&file, "a job 2.50\nbroken line\nb 9.00\n").unwrap();
        let mut timings = Timings::read(&file);
        assert_eq!(timings.get("a job"), Some(2.5));
        assert_eq!(timings.get("broken line"), None);
        timings.set("c", Duration::from_millis(4000));
        timings.write();
        let again = Timings::read(&file);
        assert_eq!(again.get("c"), Some(4.0));
        assert_eq!(again.get("b"), Some(9.0));
        // `new` was never timed: it goes first; then the longest (b, 9 s),
        // the shortest (a job, 2.5 s), the one left (c, 4 s).
        assert_eq!(again.start_order(["a job", "new", "b", "c"]), vec![1, 2, 0, 3]);
        assert_eq!(Timings::read(&dir.path().join("missing")).start_order(["x", "y", "z"]), vec![0, 1, 2]);
    }
}
