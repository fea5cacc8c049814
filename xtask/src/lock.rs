// SPDX-License-Identifier: GPL-2.0

//! Locks between harness processes: `flock` on a file beside what it guards.
//! The kernel drops such a lock when its holder dies, however it dies
//! (`kill -9` included), so a lock is never stale; what a dead holder left
//! half-made is recognised by other means (a marker written before the work
//! and removed after it).

use std::fs::TryLockError;
use std::path::Path;

use crate::Result;
use anyhow::{anyhow, Context};

/// A lock, exclusive unless taken shared, released when dropped or when
/// the process dies.
#[derive(Debug)]
pub(crate) struct CacheLock {
    file: std::fs::File,
}

fn open(path: &Path) -> Result<std::fs::File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Takes the lock without waiting (std's `File::try_lock` is `flock` on
/// Linux); false when another open file description holds it.
fn try_flock(file: &std::fs::File) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(anyhow!("cannot lock: {e}")),
    }
}

impl CacheLock {
    /// Takes the lock, waiting (and saying so) while another process has it.
    pub(crate) fn acquire(path: &Path, what: &str) -> Result<CacheLock> {
        let file = open(path)?;
        if !try_flock(&file)? {
            eprintln!("waiting for another harness process to finish {what} ({})", path.display());
            file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Ok(CacheLock { file })
    }

    /// Takes the lock if no other process has it.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<CacheLock>> {
        let file = open(path)?;
        Ok(try_flock(&file)?.then_some(CacheLock { file }))
    }

    /// Takes the lock shared, for reading what it guards, if no process
    /// has it exclusively: readers do not wait for each other, and no
    /// process changes it meanwhile.
    pub(crate) fn try_acquire_shared(path: &Path) -> Result<Option<CacheLock>> {
        let file = open(path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(CacheLock { file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(anyhow!("cannot lock {}: {e}", path.display())),
        }
    }

    /// Writes who holds the lock into the lock file, for a refused process
    /// to name.
    pub(crate) fn write_owner(&self, text: &str) -> Result<()> {
        use std::io::{Seek, Write};
        let mut file = &self.file;
        file.set_len(0)?;
        file.seek(std::io::SeekFrom::Start(0))?;
        file.write_all(text.as_bytes())?;
        Ok(())
    }
}

/// Whether another process holds the lock at `path` now (a missing file is
/// not held).
pub(crate) fn is_held(path: &Path) -> bool {
    match std::fs::File::open(path) {
        // Taking it succeeds only if nobody holds it; it is dropped at once.
        Ok(file) => !try_flock(&file).unwrap_or(true),
        Err(_) => false,
    }
}

/// This process, for owner files: `pid 1234, started 2026-11-24 10:00:00 UTC`.
pub(crate) fn owner_text() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("pid {}, started {}", std::process::id(), format_utc(now))
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn format_utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_a_lock_that_a_writer_excludes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        let first = CacheLock::try_acquire_shared(&path).unwrap().expect("free");
        let second = CacheLock::try_acquire_shared(&path).unwrap().expect("readers share it");
        assert!(CacheLock::try_acquire(&path).unwrap().is_none(), "a writer waits for the readers");
        drop((first, second));
        let writer = CacheLock::try_acquire(&path).unwrap().expect("free again");
        assert!(CacheLock::try_acquire_shared(&path).unwrap().is_none(), "a reader waits for the writer");
        drop(writer);
    }

    #[test]
    fn a_lock_is_exclusive_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        let held = CacheLock::try_acquire(&path).unwrap().expect("free at first");
        // flock locks belong to the open file description: a second open in
        // this process conflicts like another process would.
        assert!(is_held(&path));
        assert!(CacheLock::try_acquire(&path).unwrap().is_none());
        held.write_owner("pid 1").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "pid 1");
        drop(held);
        assert!(!is_held(&path));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_795_478_400 + 3661), "2026-11-24 01:01:01 UTC");
    }
}
