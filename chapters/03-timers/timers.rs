// SPDX-License-Identifier: GPL-2.0

//! Time, timers and deferred work.
//!
//! A periodic high-resolution timer (`HrTimer`) ticks every `period_ms` and
//! stops itself after `ticks` ticks; each tick prints how long after the
//! start it fired, measured with the monotonic clock (`Instant`), and the
//! periods it had to skip because a callback ran late are counted. A delayed
//! work item (`DelayedWork`) runs once, `delay_ms` after loading, on the
//! system workqueue, where it may sleep (`fsleep`): timer callbacks run in
//! interrupt context and must not. A second, one-shot `HrTimer` fires once,
//! `oneshot_ms` after loading: the same job as the delayed work, done in
//! interrupt context, where nothing may sleep. With `sleep_ms`, `init`
//! first sleeps that long with `fsleep` and reports how long it really took.
//!
//! Unloading cancels all three and waits for them, so nothing of this module
//! runs after `rmmod` returns. The 7.3 `kernel` crate can cancel a timer
//! (dropping its handle) but not a delayed work item: [`cancel_delayed`]
//! shows how such a safe wrapper is built over the C function.
//!
//! ```sh
//! insmod timers.ko period_ms=20 ticks=5 delay_ms=100 oneshot_ms=50 sleep_ms=30
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
        oneshot_ms: u32 {
            default: 150,
            description: "Milliseconds after loading that the one-shot timer fires",
        },
        sleep_ms: u32 {
            default: 0,
            description: "Milliseconds init sleeps (fsleep) and measures, 0 to 1000",
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
        // ANCHOR_END: ticker
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

// ANCHOR: oneshot
/// A timer that fires once: the delayed work's job, done in interrupt
/// context, where nothing may sleep.
#[pin_data]
struct OneShot {
    #[pin]
    timer: HrTimer<Self>,
    armed: Instant<Monotonic>,
    /// How many times the callback ran; read on unload, once the timer is
    /// cancelled.
    fires: Atomic<u32>,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for OneShot {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

impl HrTimerCallback for OneShot {
    type Pointer<'a> = Arc<Self>;

    // Runs in interrupt context, like the ticker's callback.
    fn run(
        this: ArcBorrow<'_, Self>,
        _context: HrTimerCallbackContext<'_, Self>,
    ) -> HrTimerRestart {
        // ANCHOR_END: oneshot
        // EXERCISE: Log `one-shot: fired after N ms`, N the milliseconds since `this.armed`; count the call in `this.fires`; do not restart the timer.
        // HINT: This is interrupt context: log and return, no sleeping (no `fsleep`, no mutex, no GFP_KERNEL). The return value says whether the timer runs again.
        // HINT: `this.armed.elapsed().as_millis()`, `this.fires.fetch_add(1, ordering::Release)`, and `HrTimerRestart::NoRestart`.
        // STUB: let _ = (&this.armed, &this.fires);
        // STUB: HrTimerRestart::NoRestart
        pr_info!(
            "one-shot: fired after {} ms\n",
            this.armed.elapsed().as_millis()
        );
        // What makes the count final on unload is the cancel there: it
        // waits, under the timer base's lock, for this callback to return.
        // Release (with the Acquire on unload) is the pattern to reach for
        // when no such lock stands between writer and reader.
        this.fires.fetch_add(1, ordering::Release);
        HrTimerRestart::NoRestart
        // END EXERCISE
    }
}

// ANCHOR: cancel
/// Cancels `item`'s delayed work and waits for a running callback to end.
/// Returns whether the work was still pending (and so never ran). May
/// sleep: process context only.
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
    // that stays alive for the whole call: `new_delayed_work!` initialised
    // it in `init`, and our `Arc` keeps it alive. (It also sleeps: a rule
    // for this function's callers, in its doc, not a memory-safety one.)
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
    oneshot: Arc<OneShot>,
    oneshot_timer: Option<ArcHrTimerHandle<OneShot>>,
}
// ANCHOR_END: state

/// The longest `sleep_ms` allowed: `insmod` waits for `init`.
const MAX_SLEEP_MS: u32 = 1000;

impl kernel::Module for Timers {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let period_ms = module_parameters::period_ms.value();
        let limit = module_parameters::ticks.value();
        if period_ms == 0 || limit == 0 {
            pr_err!("period_ms and ticks must be at least 1\n");
            return Err(EINVAL);
        }
        // EXERCISE: Refuse a `sleep_ms` above MAX_SLEEP_MS with EINVAL (`sleep_ms=N is out of range 0..=1000`); otherwise, unless it is 0, sleep that long with `fsleep`, measure the sleep with `Instant`, and log `fsleep(N ms) took T us`.
        // HINT: `init` runs in process context (insmod's), so it may sleep. `Instant::<Monotonic>::now()` before, `.elapsed()` after: a `Delta`.
        // HINT: `fsleep(Delta::from_millis(i64::from(sleep_ms)));` then `pr_info!("fsleep({sleep_ms} ms) took {} us\n", before.elapsed().as_nanos() / 1000);`
        let sleep_ms = module_parameters::sleep_ms.value();
        if sleep_ms > MAX_SLEEP_MS {
            pr_err!("sleep_ms={sleep_ms} is out of range 0..={MAX_SLEEP_MS}\n");
            return Err(EINVAL);
        }
        if sleep_ms > 0 {
            let before = Instant::<Monotonic>::now();
            fsleep(Delta::from_millis(i64::from(sleep_ms)));
            pr_info!(
                "fsleep({sleep_ms} ms) took {} us\n",
                before.elapsed().as_nanos() / 1000
            );
        }
        // END EXERCISE
        // Allocated before the delayed work is queued: an error after that
        // would return with the work still queued, and nothing to cancel it.
        // `armed` is a few microseconds before the timer is started.
        let oneshot = Arc::pin_init(
            pin_init!(OneShot {
                timer <- HrTimer::new(),
                armed: Instant::now(),
                fires: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
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
        // EXERCISE: Start the one-shot timer to fire once, `oneshot_ms` from now; keep its handle in `oneshot_timer`; log `one-shot: armed to fire in N ms`.
        // HINT: Start it like the ticker: `start` takes an `Arc<OneShot>` (clone ours) and the expiry, and returns the handle that owns that clone.
        // HINT: `let oneshot_ms = module_parameters::oneshot_ms.value();` then `let oneshot_timer = Some(oneshot.clone().start(Delta::from_millis(i64::from(oneshot_ms))));`
        // STUB: let oneshot_timer = None;
        let oneshot_ms = module_parameters::oneshot_ms.value();
        let oneshot_timer = Some(
            oneshot
                .clone()
                .start(Delta::from_millis(i64::from(oneshot_ms))),
        );
        pr_info!("one-shot: armed to fire in {oneshot_ms} ms\n");
        // END EXERCISE
        Ok(Timers {
            ticker,
            timer,
            deferred,
            oneshot,
            oneshot_timer,
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
        // ANCHOR_END: drop
        // EXERCISE: Cancel the delayed work (waiting for it if it is running), and set `pending` to whether it had not run yet.
        // HINT: After `rmmod`, the module's code is gone: a work item that runs later jumps into freed memory.
        // HINT: `cancel_delayed` above does exactly this, and says why each step is safe.
        // HINT: `let pending = cancel_delayed(&self.deferred);`
        // STUB: let pending = false;
        let pending = cancel_delayed(&self.deferred);
        // END EXERCISE
        // ANCHOR: drop_rest
        pr_info!(
            "unloading: timer stopped after {ticks} tick(s), {missed} period(s) missed; delayed work {}\n",
            if pending { "cancelled before it ran" } else { "had already run" }
        );
        // ANCHOR_END: drop_rest
        // EXERCISE: Cancel the one-shot timer, waiting for its callback if it is running, then log `unloading: one-shot timer fired N time(s)`, or `unloading: one-shot timer cancelled before it fired` when it never did.
        // HINT: Dropping a timer's handle cancels the timer and waits for a running callback; only after that is `fires` final.
        // HINT: `drop(self.oneshot_timer.take());` then `self.oneshot.fires.load(ordering::Acquire)` chooses the words.
        // STUB: let _ = (&self.oneshot, &self.oneshot_timer);
        drop(self.oneshot_timer.take());
        // The cancel above waited for a running callback (under the timer
        // base's lock), so nothing stores any more and the count is final;
        // Acquire pairs with the callback's Release for the same reason
        // where no lock stood between them.
        match self.oneshot.fires.load(ordering::Acquire) {
            0 => pr_info!("unloading: one-shot timer cancelled before it fired\n"),
            fires => pr_info!("unloading: one-shot timer fired {fires} time(s)\n"),
        }
        // END EXERCISE
    }
}
