// SPDX-License-Identifier: GPL-2.0

//! A planted bug for the harness's tests: a mutex taken while holding a
//! spinlock. A spinlock disables preemption; a mutex may sleep, and sleeping
//! with the spinlock held can deadlock the CPU. Nothing goes wrong on an idle
//! machine (the mutex is free), so only the kernel's `might_sleep()` check
//! (DEBUG_ATOMIC_SLEEP) sees it.

use kernel::prelude::*;
use kernel::sync::{new_mutex, new_spinlock, Mutex, SpinLock};

module! {
    type: Sleepy,
    name: "sleepy",
    authors: ["The Rust Kernel Workbook"],
    description: "Planted bug: sleeping under a spinlock",
    license: "GPL",
}

struct Sleepy {
    _counter: Pin<KBox<SpinLock<u32>>>,
    _log: Pin<KBox<Mutex<u32>>>,
}

/// Counts, and takes a mutex with the spinlock held.
#[inline(never)]
fn nap(counter: &SpinLock<u32>, log: &Mutex<u32>) {
    let mut guard = counter.lock();
    *guard += 1;
    *log.lock() += 1;
}

impl kernel::Module for Sleepy {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let counter = KBox::pin_init(new_spinlock!(0, "sleepy_lock"), GFP_KERNEL)?;
        let log = KBox::pin_init(new_mutex!(0, "sleepy_log"), GFP_KERNEL)?;
        nap(&counter, &log);
        pr_info!("loaded\n");
        Ok(Sleepy {
            _counter: counter,
            _log: log,
        })
    }
}
