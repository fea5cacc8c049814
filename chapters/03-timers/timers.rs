// SPDX-License-Identifier: GPL-2.0

//! Time, timers and deferred work.
//!
//! A periodic high-resolution timer (`HrTimer`) ticks every `period_ms` and
//! stops itself after `ticks` ticks; each tick prints how long after the
//! start it fired, measured with the monotonic clock (`Instant`), and the
//! periods it had to skip because a callback ran late are counted. A delayed
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
use kernel::workqueue::{
    self, impl_has_delayed_work, new_delayed_work, DelayedWork, HasWork, Work, WorkItem,
};
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
    /// Periods that went by without a tick, because a callback ran more
    /// than a period late (see `run`).
    missed: Atomic<u64>,
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
    fn run(
        this: ArcBorrow<'_, Self>,
        mut context: HrTimerCallbackContext<'_, Self>,
    ) -> HrTimerRestart {
        let tick = this.count.fetch_add(1, ordering::Relaxed) + 1;
        let at = this.started.elapsed();
        pr_info!(
            "tick {tick}/{} at {} us\n",
            this.limit,
            at.as_nanos() / 1000
        );
        // EXERCISE: After `this.limit` ticks, log `ticker: N ticks done, stopping` and stop; otherwise move the expiry one period on and restart.
        // HINT: The callback's return value decides: `HrTimerRestart::NoRestart` or `HrTimerRestart::Restart`.
        // HINT: `context.forward_now(this.period)` moves the expiry on from the previous one, so ticks do not drift.
        // HINT: `forward_now` returns how many periods it moved the expiry on; all but one of them were missed: add those to `this.missed`.
        // STUB: let _ = &mut context;
        // STUB: HrTimerRestart::NoRestart
        if tick >= this.limit {
            pr_info!("ticker: {tick} ticks done, stopping\n");
            return HrTimerRestart::NoRestart;
        }
        // The next expiry is one period after the previous one, not after
        // now: ticks do not drift when a callback runs late. `forward_now`
        // adds as many periods as it takes to land after now, and returns
        // how many that was: 1 when this callback ran within a period of its
        // expiry, more when it ran later. The expiries skipped over never
        // fire (the timer does not catch up), so they are counted here.
        let periods = context.forward_now(this.period);
        if periods > 1 {
            this.missed.fetch_add(periods - 1, ordering::Relaxed);
        }
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
    // SAFETY: `raw_get_work` needs a pointer to a valid `Deferred`, and
    // `Work::raw_get` one that is aligned and not dangling: `item_ptr` points
    // into the live allocation of an `Arc` we hold, and `raw_get_work`
    // returns the address of a field of it.
    let work = unsafe { Work::raw_get(<Deferred as HasWork<Deferred>>::raw_get_work(item_ptr)) };
    // SAFETY: `container_of!` needs both pointers in one allocation. By the
    // contract of `HasDelayedWork` (implemented by `impl_has_delayed_work!`),
    // `work` is the `work` field of a C `struct delayed_work`, so stepping
    // back to that struct stays inside the `Deferred`.
    let dwork = unsafe { kernel::container_of!(work, bindings::delayed_work, work) };
    // SAFETY: `cancel_delayed_work_sync` needs an initialised `delayed_work`
    // that stays alive for the whole call, in a context that may sleep:
    // `new_delayed_work!` initialised it in `init`, our `Arc` keeps it alive,
    // and `Drop` runs in process context (rmmod).
    let was_pending = unsafe { bindings::cancel_delayed_work_sync(dwork) };
    if was_pending {
        // SAFETY: `Arc::from_raw` needs a pointer from `Arc::into_raw`, used
        // once. Enqueueing turned one `Arc` into `item_ptr` with
        // `Arc::into_raw`, for `run` to take back. The work was pending and
        // is now cancelled, so `run` never will: the reference is ours.
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
                missed: Atomic::new(0),
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
        if workqueue::system()
            .enqueue_delayed(deferred.clone(), msecs_to_jiffies(delay_ms))
            .is_err()
        {
            return Err(EBUSY);
        }
        pr_info!("delayed work: queued to run in {delay_ms} ms\n");
        // ANCHOR_END: start
        Ok(Timers {
            ticker,
            timer,
            deferred,
        })
    }
}

// ANCHOR: drop
impl Drop for Timers {
    fn drop(&mut self) {
        // Dropping the handle cancels the timer and waits for a running callback.
        drop(self.timer.take());
        let ticks = self.ticker.count.load(ordering::Relaxed);
        let missed = self.ticker.missed.load(ordering::Relaxed);
        // EXERCISE: Cancel the delayed work (waiting for it if it is running), and set `pending` to whether it had not run yet.
        // HINT: After `rmmod`, the module's code is gone: a work item that runs later jumps into freed memory.
        // HINT: `cancel_delayed` above does exactly this, and says why each step is safe.
        // STUB: let pending = false;
        let pending = cancel_delayed(&self.deferred);
        // END EXERCISE
        pr_info!(
            "unloading: timer stopped after {ticks} tick(s), {missed} period(s) missed; delayed work {}\n",
            if pending { "cancelled before it ran" } else { "had already run" }
        );
    }
}
// ANCHOR_END: drop
