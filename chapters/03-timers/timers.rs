// SPDX-License-Identifier: GPL-2.0

//! Time, timers and deferred work.
//!
//! A periodic high-resolution timer (`HrTimer`) ticks every `period_ms` and
//! stops itself after `ticks` ticks; each tick prints how long after the
//! start it fired, measured with the monotonic clock (`Instant`). A delayed
//! work item (`DelayedWork`) runs once, `delay_ms` after loading, on the
//! system workqueue, where it may sleep (`fsleep`): timer callbacks run in
//! interrupt context and must not.
//!
//! Unloading cancels both and waits for them, so nothing of this module
//! runs after `rmmod` returns. The 7.3 `kernel` crate can cancel a timer
//! (dropping its handle) but not a delayed work item: [`cancel_delayed`]
//! shows how such a safe wrapper is built over the C function.
//!
//! ```sh
//! insmod timers.ko period_ms=20 ticks=5 delay_ms=100
//! sleep 1; dmesg
//! rmmod timers
//! ```

use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::{Arc, ArcBorrow};
use kernel::time::hrtimer::{
    ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
    HrTimerRestart, RelativeMode,
};
use kernel::time::{delay::fsleep, msecs_to_jiffies, Delta, Instant, Monotonic};
use kernel::workqueue::{self, impl_has_delayed_work, new_delayed_work, DelayedWork, HasWork, Work, WorkItem};
use kernel::{bindings, impl_has_hr_timer};

module! {
    type: Timers,
    name: "timers",
    authors: ["The Rust Kernel Workbook"],
    description: "Time, timers and deferred work: Instant, Delta, HrTimer, DelayedWork",
    license: "GPL",
    params: {
        period_ms: u32 {
            default: 50,
            description: "Milliseconds between two ticks of the periodic timer",
        },
        ticks: u32 {
            default: 10,
            description: "Ticks after which the timer stops itself",
        },
        delay_ms: u32 {
            default: 200,
            description: "Milliseconds after loading that the delayed work runs",
        },
    },
}

// ANCHOR: ticker
/// A periodic timer that counts its ticks.
#[pin_data]
struct Ticker {
    #[pin]
    timer: HrTimer<Self>,
    count: Atomic<u32>,
    limit: u32,
    period: Delta,
    started: Instant<Monotonic>,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Ticker {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

impl HrTimerCallback for Ticker {
    type Pointer<'a> = Arc<Self>;

    // Runs in interrupt context: it must not sleep or allocate with GFP_KERNEL.
    fn run(this: ArcBorrow<'_, Self>, mut context: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let tick = this.count.fetch_add(1, ordering::Relaxed) + 1;
        let at = this.started.elapsed();
        pr_info!("tick {tick}/{} at {} us\n", this.limit, at.as_nanos() / 1000);
        // EXERCISE: After `this.limit` ticks, log `ticker: N ticks done, stopping` and stop; otherwise move the expiry one period on and restart.
        // HINT: The callback's return value decides: `HrTimerRestart::NoRestart` or `HrTimerRestart::Restart`.
        // HINT: `context.forward_now(this.period)` moves the expiry on from the previous one, so ticks do not drift.
        // STUB: let _ = &mut context;
        // STUB: HrTimerRestart::NoRestart
        if tick >= this.limit {
            pr_info!("ticker: {tick} ticks done, stopping\n");
            return HrTimerRestart::NoRestart;
        }
        // The next expiry is one period after the previous one, not after
        // now: ticks do not drift when a callback runs late.
        context.forward_now(this.period);
        HrTimerRestart::Restart
        // END EXERCISE
    }
}
// ANCHOR_END: ticker

// ANCHOR: deferred
/// Work that runs once, later, in process context.
#[pin_data]
struct Deferred {
    #[pin]
    work: DelayedWork<Deferred>,
    queued: Instant<Monotonic>,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Deferred { self.work }
}

impl WorkItem for Deferred {
    type Pointer = Arc<Deferred>;

    fn run(this: Arc<Deferred>) {
        let waited = this.queued.elapsed();
        pr_info!("delayed work ran after {} ms\n", waited.as_millis());
        // Process context: sleeping is allowed here.
        fsleep(Delta::from_millis(10));
        pr_info!("delayed work slept 10 ms and is done\n");
    }
}
// ANCHOR_END: deferred

// ANCHOR: cancel
/// Cancels `item`'s delayed work and waits for a running callback to end.
/// Returns whether the work was still pending (and so never ran).
fn cancel_delayed(item: &Arc<Deferred>) -> bool {
    let item_ptr = Arc::as_ptr(item).cast_mut();
    // SAFETY: `item_ptr` points to a live `Deferred` (we hold an `Arc` to it),
    // and `raw_get_work` only computes the address of its `work` field.
    let work = unsafe { Work::raw_get(<Deferred as HasWork<Deferred>>::raw_get_work(item_ptr)) };
    // SAFETY: the `work_struct` is the first field of the C `struct
    // delayed_work` that `DelayedWork` wraps (`HasDelayedWork` guarantees the
    // work is a delayed one), so the pointers are equal; the item stays
    // alive for the whole call because we hold an `Arc`.
    let was_pending = unsafe { bindings::cancel_delayed_work_sync(work.cast::<bindings::delayed_work>()) };
    if was_pending {
        // SAFETY: enqueueing turned one `Arc` into a raw pointer with
        // `Arc::into_raw`, to be reclaimed when the work runs. It was
        // cancelled before running, so that reference is ours to release.
        drop(unsafe { Arc::from_raw(item_ptr) });
    }
    was_pending
}
// ANCHOR_END: cancel

// ANCHOR: state
struct Timers {
    ticker: Arc<Ticker>,
    timer: Option<ArcHrTimerHandle<Ticker>>,
    deferred: Arc<Deferred>,
}
// ANCHOR_END: state

impl kernel::Module for Timers {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let period_ms = module_parameters::period_ms.value();
        let limit = module_parameters::ticks.value();
        if period_ms == 0 || limit == 0 {
            pr_err!("period_ms and ticks must be at least 1\n");
            return Err(EINVAL);
        }
        // ANCHOR: start
        let period = Delta::from_millis(i64::from(period_ms));
        let ticker = Arc::pin_init(
            pin_init!(Ticker {
                timer <- HrTimer::new(),
                count: Atomic::new(0),
                limit,
                period,
                started: Instant::now(),
            }),
            GFP_KERNEL,
        )?;
        let timer = Some(ticker.clone().start(period));
        pr_info!("ticker: started, {limit} ticks of {period_ms} ms\n");

        let delay_ms = module_parameters::delay_ms.value();
        let deferred = Arc::pin_init(
            pin_init!(Deferred {
                work <- new_delayed_work!("Deferred::work"),
                queued: Instant::now(),
            }),
            GFP_KERNEL,
        )?;
        if workqueue::system().enqueue_delayed(deferred.clone(), msecs_to_jiffies(delay_ms)).is_err() {
            return Err(EBUSY);
        }
        pr_info!("delayed work: queued to run in {delay_ms} ms\n");
        // ANCHOR_END: start
        Ok(Timers { ticker, timer, deferred })
    }
}

// ANCHOR: drop
impl Drop for Timers {
    fn drop(&mut self) {
        // Dropping the handle cancels the timer and waits for a running callback.
        drop(self.timer.take());
        let ticks = self.ticker.count.load(ordering::Relaxed);
        // EXERCISE: Cancel the delayed work (waiting for it if it is running), and set `pending` to whether it had not run yet.
        // HINT: After `rmmod`, the module's code is gone: a work item that runs later jumps into freed memory.
        // HINT: `cancel_delayed` above does exactly this, and says why each step is safe.
        // STUB: let pending = false;
        let pending = cancel_delayed(&self.deferred);
        // END EXERCISE
        pr_info!(
            "unloading: timer stopped after {ticks} tick(s); delayed work {}\n",
            if pending { "cancelled before it ran" } else { "had already run" }
        );
    }
}
// ANCHOR_END: drop
