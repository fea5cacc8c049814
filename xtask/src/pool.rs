// SPDX-License-Identifier: GPL-2.0

//! The harness's one worker pool: the negative tests and the grading of a
//! class hand their jobs to a few threads (each job boots a guest, so a
//! few is all the machine takes).

use std::sync::Mutex;

use crate::Result;

/// The machine's cores (1 when it cannot say).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many guests may run at once: `per_core` for each core, counting two
/// cores at most (a 2-core machine is the reference; more would starve the
/// host's own work). Each QEMU emulates one CPU on one host thread: a guest
/// that is mostly busy wants a core, one that mostly waits (for timers,
/// packets, a hung task's deadline) leaves room for another.
pub(crate) fn guests_at_once(per_core: usize) -> usize {
    cores().clamp(1, 2) * per_core.max(1)
}

/// Runs `work` on every item with up to `workers` threads at once, items
/// taken in order; the results come back in the items' order. After a job
/// fails, no new job starts, and the first error is returned.
pub(crate) fn run<T: Send, R: Send>(items: Vec<T>, workers: usize, work: impl Fn(T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let count = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let done = Mutex::new(Vec::with_capacity(count));
    let failed = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, count.max(1)) {
            scope.spawn(|| loop {
                if failed.lock().unwrap().is_some() {
                    return;
                }
                // Not in a `while let`: its guard would hold the queue for the whole job.
                let next = queue.lock().unwrap().next();
                let Some((index, item)) = next else {
                    return;
                };
                match work(item) {
                    Ok(result) => done.lock().unwrap().push((index, result)),
                    Err(e) => {
                        failed.lock().unwrap().get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(e);
    }
    let mut done = done.into_inner().unwrap();
    done.sort_by_key(|(index, _)| *index);
    Ok(done.into_iter().map(|(_, result)| result).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_results_in_order() {
        let threads = Mutex::new(std::collections::HashSet::new());
        let out = run((0..50).collect(), 3, |n: u64| {
            threads.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(std::time::Duration::from_millis(50 - n));
            Ok(n * 2)
        })
        .unwrap();
        assert_eq!(out, (0..50).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(threads.lock().unwrap().len(), 3);
        assert_eq!(run(Vec::<u8>::new(), 2, |_| Ok(())).unwrap(), Vec::<()>::new());
    }

    #[test]
    fn a_failed_job_stops_the_rest() {
        let started = Mutex::new(0);
        let err = run((0..100).collect(), 1, |n: u32| {
            *started.lock().unwrap() += 1;
            if n == 3 {
                Err(anyhow::anyhow!("job 3 failed"))
            } else {
                Ok(n)
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "job 3 failed");
        assert_eq!(*started.lock().unwrap(), 4);
    }
}
