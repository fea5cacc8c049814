// SPDX-License-Identifier: GPL-2.0

//! Where does my code run? Process, softirq and hardirq context.
//!
//! The kernel runs a module's code in different contexts, and the context
//! decides what the code may do. `init` runs in process context, on the
//! task of `insmod`: it may sleep. A work item on the system workqueue runs
//! in process context too, on a kernel worker thread (`kworker/...`). A
//! work item on the BH workqueue and a soft-mode `HrTimer` run in softirq
//! context, and an `HrTimer` in the default mode in hardirq context, with
//! interrupts off: they interrupted whatever task was running, and must not
//! sleep.
//! Holding a `SpinLock` or an RCU read lock turns process context atomic as
//! well: it may not sleep either.
//!
//! At load the module runs a probe in each of these places; each logs the
//! facts of its context (read by a small C shim, `contexts_shim.c`) and
//! what follows from them. `init` waits for each probe to have returned
//! before it starts the next, so the log is in order and nothing of the
//! module runs after `init`: a work item is flushed (`flush_work`); a timer
//! signals a `Completion` when it has reported, and cancelling it then
//! waits for its callback to return.
//!
//! ```sh
//! insmod contexts.ko && dmesg | grep contexts
//! rmmod contexts
//! ```

use core::marker::PhantomData;

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{new_spinlock, new_spinlock_irq, rcu, Arc, ArcBorrow, Completion};
use kernel::time::hrtimer::{
    HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerMode, HrTimerPointer, HrTimerRestart,
    RelativeMode, RelativeSoftMode,
};
use kernel::time::{Delta, Monotonic};
use kernel::workqueue::{self, impl_has_work, new_work, HasWork, Queue, Work, WorkItem};
use kernel::{impl_has_hr_timer, str::CStr};

module! {
    type: Contexts,
    name: "contexts",
    authors: ["The Rust Kernel Workbook"],
    description: "Process, softirq and hardirq context: what code may do where it runs",
    license: "GPL",
}

// ANCHOR: facts
/// The facts about a context, as `contexts_read_facts` (C) reports them.
/// The layout is `struct contexts_facts` in `contexts_shim.h`.
#[repr(C)]
struct Facts {
    nmi: bool,
    hardirq: bool,
    serving_softirq: bool,
    irqs_disabled: bool,
    preempt_count: u32,
    rcu_depth: u32,
    comm: [u8; 16],
}

extern "C" {
    fn contexts_read_facts(facts: *mut Facts);
}

impl Facts {
    /// The facts of the context the caller runs in.
    fn now() -> Self {
        let mut facts = Facts {
            nmi: false,
            hardirq: false,
            serving_softirq: false,
            irqs_disabled: false,
            preempt_count: 0,
            rcu_depth: 0,
            comm: [0; 16],
        };
        // SAFETY: `contexts_read_facts` needs a pointer valid for a write of
        // a `struct contexts_facts`, and may be called from any context:
        // `facts` is a local `Facts`, `#[repr(C)]` with the C struct's
        // fields in the same order and of the same types.
        unsafe { contexts_read_facts(&mut facts) };
        facts
    }

    /// The name of the current task, empty in interrupt context.
    fn task(&self) -> &str {
        CStr::from_bytes_until_nul(&self.comm)
            .ok()
            .and_then(|name| name.to_str().ok())
            .unwrap_or("")
    }
}
// ANCHOR_END: facts

/// Names the context `facts` describe, and says whether code running there
/// may sleep (take a `Mutex`, allocate with `GFP_KERNEL`, call `fsleep`).
fn classify(facts: &Facts) -> (&'static str, bool) {
    // EXERCISE: Name the context ("NMI", "hardirq", "softirq" or "process") and decide whether it may sleep.
    // HINT: An interrupt stops a task, so hardirq and softirq are checked before "process"; in_task() is what is left.
    // HINT: Process context may sleep only when nothing made it atomic: preempt_count() is 0 (no spinlock, no preempt_disable), interrupts are on, and no RCU read lock is held (`rcu_depth`).
    // STUB: let _ = facts;
    // STUB: ("process", true)
    let context = if facts.nmi {
        "NMI"
    } else if facts.hardirq {
        "hardirq"
    } else if facts.serving_softirq {
        "softirq"
    } else {
        "process"
    };
    let may_sleep = context == "process"
        && facts.preempt_count == 0
        && !facts.irqs_disabled
        && facts.rcu_depth == 0;
    (context, may_sleep)
    // END EXERCISE
}

// ANCHOR: report
/// Logs where `what` runs, with the facts that say so.
fn report(what: &str, facts: &Facts) {
    let (context, may_sleep) = classify(facts);
    let count = facts.preempt_count;
    let irqs = if facts.irqs_disabled { "off" } else { "on" };
    let sleep = if may_sleep {
        "may sleep"
    } else {
        "may not sleep"
    };
    match facts.task() {
        // In interrupt context the current task is whichever one was
        // interrupted: its name would say nothing.
        "" => pr_info!("{what}: {context} context, preempt_count {count:#x}, irqs {irqs}: {sleep}\n"),
        task => pr_info!(
            "{what}: {context} context (task {task}), preempt_count {count:#x}, irqs {irqs}: {sleep}\n"
        ),
    }
}
// ANCHOR_END: report

// ANCHOR: work_probe
/// A work item that reports its context.
#[pin_data]
struct WorkProbe {
    #[pin]
    work: Work<WorkProbe>,
    what: &'static str,
}

impl_has_work! {
    impl HasWork<Self> for WorkProbe { self.work }
}

impl WorkItem for WorkProbe {
    type Pointer = Arc<WorkProbe>;

    fn run(this: Arc<WorkProbe>) {
        report(this.what, &Facts::now());
    }
}

impl WorkProbe {
    /// Runs a probe on `queue`, and returns once its function has returned.
    ///
    /// `work` comes from the caller's own `new_work!`: each call site is a
    /// lockdep class, and lockdep reports a class used in process context
    /// (`system()`) and in softirq context (`system_bh()`) as a possible
    /// deadlock, as it would a lock.
    fn run_on(queue: &Queue, what: &'static str, work: impl PinInit<Work<Self>>) -> Result {
        let probe = Arc::pin_init(pin_init!(WorkProbe { work <- work, what }), GFP_KERNEL)?;
        queue.enqueue(probe.clone()).map_err(|_| EBUSY)?;
        probe.flush();
        Ok(())
    }

    /// Waits until the work function has run and returned, if it is queued
    /// or running (the C `flush_work`). May sleep: process context only.
    fn flush(&self) {
        let ptr = core::ptr::from_ref(self).cast_mut();
        // SAFETY: `raw_get_work` needs a pointer to a valid `WorkProbe`, and
        // `Work::raw_get` one to a valid `Work`: `ptr` comes from `&self`,
        // and `raw_get_work` returns the address of its `work` field.
        let work = unsafe { Work::raw_get(<Self as HasWork<Self>>::raw_get_work(ptr)) };
        // SAFETY: `flush_work` needs an initialised `work_struct` that stays
        // alive during the call: `new_work!` initialised it, and `&self`
        // keeps it alive. (It also sleeps: a rule for this function's
        // callers, in its doc, not a memory-safety one.)
        unsafe { bindings::flush_work(work) };
    }
}
// ANCHOR_END: work_probe

// ANCHOR: timer_probe
/// A one-shot timer that reports its context, then completes `done`. `M`
/// is its mode: soft (the callback runs in softirq context) or the default
/// (hardirq context; softirq on PREEMPT_RT kernels, where only timers
/// marked hard stay in hardirq context, and may take only raw spinlocks;
/// nor may they call `complete_all`, which asserts a threaded context on
/// RT, and is the only completion call the 7.3 crate wraps).
#[pin_data]
struct TimerProbe<M: HrTimerMode> {
    #[pin]
    timer: HrTimer<Self>,
    #[pin]
    done: Completion,
    what: &'static str,
    mode: PhantomData<M>,
}

impl_has_hr_timer! {
    impl{M: HrTimerMode} HasHrTimer<Self> for TimerProbe<M> {
        mode: M, field: self.timer
    }
}

impl<M: HrTimerMode + 'static> HrTimerCallback for TimerProbe<M> {
    type Pointer<'a> = Arc<Self>;

    fn run(
        this: ArcBorrow<'_, Self>,
        _context: HrTimerCallbackContext<'_, Self>,
    ) -> HrTimerRestart {
        report(this.what, &Facts::now());
        this.done.complete_all();
        HrTimerRestart::NoRestart
    }
}

/// Runs a `TimerProbe` that fires once, 1 ms from now, and returns once
/// its callback has returned.
fn run_timer_probe<M>(what: &'static str) -> Result
where
    M: HrTimerMode<Expires = Delta> + Send + Sync + 'static,
{
    let probe: Arc<TimerProbe<M>> = Arc::pin_init(
        pin_init!(TimerProbe {
            timer <- HrTimer::new(),
            done <- Completion::new(),
            what,
            mode: PhantomData,
        }),
        GFP_KERNEL,
    )?;
    let handle = probe.clone().start(Delta::from_millis(1));
    // The event: the callback has reported. Dropping the handle before
    // would cancel the timer before it fired.
    probe.done.wait_for_completion();
    // Not the end: the callback may still be returning, in module code.
    // Dropping the handle cancels the timer, which waits for a running
    // callback to return.
    drop(handle);
    Ok(())
}
// ANCHOR_END: timer_probe

struct Contexts;

impl kernel::Module for Contexts {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // ANCHOR: probes
        report("module init", &Facts::now());

        let spinlock = KBox::pin_init(new_spinlock!((), "contexts_spinlock"), GFP_KERNEL)?;
        {
            let _guard = spinlock.lock();
            report("under a SpinLock", &Facts::now());
        }
        let irq_lock = KBox::pin_init(new_spinlock_irq!((), "contexts_irq_lock"), GFP_KERNEL)?;
        {
            let _guard = irq_lock.lock();
            report("under a SpinLockIrq", &Facts::now());
        }
        {
            let _guard = rcu::read_lock();
            report("under rcu::read_lock", &Facts::now());
        }

        WorkProbe::run_on(
            workqueue::system(),
            "work item on system()",
            new_work!("WorkProbe::work on system()"),
        )?;
        WorkProbe::run_on(
            workqueue::system_bh(),
            "work item on system_bh()",
            new_work!("WorkProbe::work on system_bh()"),
        )?;
        run_timer_probe::<RelativeSoftMode<Monotonic>>("hrtimer, soft mode")?;
        run_timer_probe::<RelativeMode<Monotonic>>("hrtimer, default mode")?;
        // ANCHOR_END: probes
        Ok(Contexts)
    }
}

impl Drop for Contexts {
    fn drop(&mut self) {
        // Every probe returned before `init` did: nothing is left to stop.
        pr_info!("unloaded\n");
    }
}
