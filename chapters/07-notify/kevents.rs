// SPDX-License-Identifier: GPL-2.0

//! kevents: events inside the kernel, a completion and a notifier chain.
//!
//! Two ways for kernel code to be told that something happened:
//!
//! - A **completion** is a one-shot "done" flag that a task can sleep on.
//!   At load, `init` queues a work item on the system workqueue (it runs
//!   `work_delay_ms` later, in a worker thread) and sleeps on a completion
//!   the work item completes; if it does not within `timeout_ms`, `init`
//!   cancels the work item and fails with `ETIMEDOUT`.
//! - A **notifier chain** is a list of callbacks that a subsystem calls for
//!   each of its events. kevents registers on the module loader's chain
//!   (`register_module_notifier()`), which is called as every module comes,
//!   goes live and goes, and logs each event; it unregisters at unload.
//!
//! The 7.3 `kernel` crate has `Completion` (without a timed wait) and no
//! notifier type; both are built here, small, over the C functions of its
//! bindings: [`TimedCompletion`] and [`ModuleWatcher`].
//!
//! ```sh
//! insmod kevents.ko        # kevents: the work item completed `ready` ...
//! insmod wbpipe.ko         # kevents: module wbpipe: coming, then live
//! rmmod wbpipe             # kevents: module wbpipe: going
//! rmmod kevents
//! ```

use kernel::bindings;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::Arc;
use kernel::time::msecs_to_jiffies;
use kernel::types::Opaque;
use kernel::workqueue::{
    self, impl_has_delayed_work, new_delayed_work, DelayedWork, HasWork, Work, WorkItem,
};

module! {
    type: KEvents,
    name: "kevents",
    authors: ["The Rust Kernel Workbook"],
    description: "Events inside the kernel: a completion with a timeout, the module notifier chain",
    license: "GPL",
    params: {
        work_delay_ms: u32 {
            default: 10,
            description: "Milliseconds after loading that the work item runs and completes",
        },
        timeout_ms: u32 {
            default: 1000,
            description: "How long init waits for the work item, in milliseconds (1 to 60000)",
        },
    },
}

// ANCHOR: completion
/// A completion with a timed wait: `struct completion` through the C API.
/// (7.3's `kernel::sync::Completion` waits only without a timeout.)
#[pin_data]
struct TimedCompletion {
    #[pin]
    inner: Opaque<bindings::completion>,
}

// SAFETY: a `struct completion` is a counter and a wait queue under its own
// spinlock; `complete()` and the waits may run on any task, at once
// (kernel/sched/completion.c). Nothing in it belongs to the task that made it.
unsafe impl Send for TimedCompletion {}
// SAFETY: as above: every method takes `&self` and the C functions it calls
// do their own locking.
unsafe impl Sync for TimedCompletion {}

impl TimedCompletion {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- Opaque::ffi_init(|slot: *mut bindings::completion| {
                // SAFETY: `init_completion` needs a `struct completion` it
                // may write: `slot` is valid, pinned memory for one.
                unsafe { bindings::init_completion(slot) };
            }),
        })
    }

    /// Marks it done and wakes one waiter (the next wait returns at once).
    /// Any context; does not sleep.
    fn complete(&self) {
        // SAFETY: `complete` needs an initialised completion: `new` made
        // it, and `&self` keeps it alive for the call.
        unsafe { bindings::complete(self.inner.get()) };
    }

    /// Sleeps until it is done, for at most `ms` milliseconds (a fatal
    /// signal ends the wait too). Returns whether it was completed.
    fn wait_timeout_ms(&self, ms: u32) -> bool {
        // SAFETY: `wait_for_completion_killable_timeout` needs an
        // initialised completion, alive for the whole wait, and a caller
        // that may sleep: `&self` outlives the call, and this is only called
        // from module init (process context, no lock held). It returns
        // > 0 if completed, 0 on timeout, -ERESTARTSYS if killed.
        let left = unsafe {
            bindings::wait_for_completion_killable_timeout(self.inner.get(), msecs_to_jiffies(ms))
        };
        if left < 0 {
            // A fatal signal: the waiter is dying, and says so in the log.
            pr_err!("the wait for the work item was interrupted by a fatal signal\n");
        }
        left > 0
    }
}
// ANCHOR_END: completion

// ANCHOR: probe
/// A work item that completes `ready` when it runs.
#[pin_data]
struct Probe {
    #[pin]
    work: DelayedWork<Probe>,
    #[pin]
    ready: TimedCompletion,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Probe { self.work }
}

// ANCHOR_END: probe

impl WorkItem for Probe {
    type Pointer = Arc<Probe>;

    fn run(this: Arc<Probe>) {
        // EXERCISE: The work item's one job: tell the waiting init it ran.
        // HINT: A completion is a "done" flag with sleepers: whoever waits on it wakes when it is completed, and whoever waits later does not sleep.
        // HINT: `this.ready.complete();`
        this.ready.complete();
        // END EXERCISE
    }
}

// ANCHOR: cancel
/// Cancels `probe`'s work and waits for a running `run` to return.
/// Returns whether it was still pending (so never ran).
fn cancel(probe: &Arc<Probe>) -> bool {
    let ptr = Arc::as_ptr(probe).cast_mut();
    // SAFETY: `raw_get_work` needs a pointer to a valid `Probe`, and
    // `Work::raw_get` one that is aligned and not dangling: `ptr` points
    // into the live allocation of an `Arc` we hold, and `raw_get_work`
    // returns the address of a field of it.
    let work = unsafe { Work::raw_get(<Probe as HasWork<Probe>>::raw_get_work(ptr)) };
    // SAFETY: `container_of!` needs both pointers in one allocation. By the
    // contract of `HasDelayedWork` (implemented by `impl_has_delayed_work!`),
    // `work` is the `work` field of a C `struct delayed_work`, so stepping
    // back to that struct stays inside the `Probe`.
    let dwork = unsafe { kernel::container_of!(work, bindings::delayed_work, work) };
    // SAFETY: `cancel_delayed_work_sync` needs an initialised `delayed_work`
    // alive for the whole call, in a context that may sleep:
    // `new_delayed_work!` initialised it, our `Arc` keeps it alive, and we
    // are called from init or exit (process context, no lock held).
    let was_pending = unsafe { bindings::cancel_delayed_work_sync(dwork) };
    if was_pending {
        // SAFETY: `Arc::from_raw` needs a pointer from `Arc::into_raw`, used
        // once. Enqueueing turned one `Arc` into `ptr` with `Arc::into_raw`,
        // for `run` to take back. The work was pending and is now cancelled,
        // so `run` never will: the reference is ours.
        drop(unsafe { Arc::from_raw(ptr) });
    }
    was_pending
}
// ANCHOR_END: cancel

// ANCHOR: watcher
/// A callback on the module loader's notifier chain, registered for as long
/// as this value lives.
#[pin_data(PinnedDrop)]
struct ModuleWatcher {
    /// The chain links to this block (its `next` field), so it must not
    /// move: it is pinned.
    #[pin]
    block: Opaque<bindings::notifier_block>,
    /// Events seen, for the log at unload.
    events: Atomic<u32>,
}

// SAFETY: the chain calls the callback on any task; all it touches through
// `&self` is the atomic counter. Unregistering may run on any task.
unsafe impl Send for ModuleWatcher {}
// SAFETY: as above: the block is only read by the chain under its own lock,
// and the counter is atomic.
unsafe impl Sync for ModuleWatcher {}

impl ModuleWatcher {
    fn register() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            events: Atomic::new(0),
            block <- Opaque::try_ffi_init(|slot: *mut bindings::notifier_block| {
                // SAFETY: the initialiser may write `slot`, valid memory for
                // a `notifier_block`.
                unsafe {
                    slot.write(bindings::notifier_block {
                        notifier_call: Some(on_module_event),
                        next: core::ptr::null_mut(),
                        priority: 0,
                    })
                };
                // SAFETY: `register_module_notifier` needs a block that stays
                // valid, unmoved, until it is unregistered: it is pinned
                // inside `Self`, whose `drop` unregisters it before the
                // memory is released. If this fails, the block is not on the
                // chain and `drop` does not run.
                to_result(unsafe { bindings::register_module_notifier(slot) })
            }),
        })
    }
}

/// Called by the module loader's chain, in process context (it may sleep),
/// for every module event.
///
/// # Safety
///
/// `block` must be the block of a `ModuleWatcher` registered on the module
/// notifier chain, and `data` a valid `struct module`, both alive for the
/// call: the chain's contract (`blocking_notifier_call_chain()` in
/// `kernel/module/main.c`), and only the chain calls it.
unsafe extern "C" fn on_module_event(
    block: *mut bindings::notifier_block,
    action: c_ulong,
    data: *mut c_void,
) -> c_int {
    // SAFETY: by this function's contract `block` is the `block` field of
    // a live `ModuleWatcher` (`Opaque<T>` has the layout of `T`), so
    // stepping back to the struct stays in it. It stays alive for the call:
    // its `drop` unregisters it first, which waits for calls in progress.
    let watcher = unsafe {
        &*kernel::container_of!(
            block.cast::<Opaque<bindings::notifier_block>>(),
            ModuleWatcher,
            block
        )
    };
    watcher.events.fetch_add(1, ordering::Relaxed);
    // SAFETY: by this function's contract `data` is a `struct module`
    // alive for the call; `name` is a NUL-terminated array inside it, which
    // the loader wrote before the first event and does not change.
    let name = unsafe { CStr::from_char_ptr((*data.cast::<bindings::module>()).name.as_ptr()) };
    let event = match action as bindings::module_state {
        bindings::module_state_MODULE_STATE_COMING => "coming",
        bindings::module_state_MODULE_STATE_LIVE => "live",
        bindings::module_state_MODULE_STATE_GOING => "going",
        _ => "another event",
    };
    pr_info!("module {}: {event}\n", name.to_str().unwrap_or("?"));
    // Not interested in changing the outcome (NOTIFY_BAD would refuse a
    // module that is coming).
    bindings::NOTIFY_DONE as c_int
}

// ANCHOR_END: watcher

#[pinned_drop]
impl PinnedDrop for ModuleWatcher {
    fn drop(self: Pin<&mut Self>) {
        // EXERCISE: Take the callback off the chain. After this returns no call of it may be running or start: the module's code and this block are freed next.
        // HINT: Forget it, and the next module load calls `on_module_event` in freed memory: the kernel oopses.
        // HINT: `unsafe { bindings::unregister_module_notifier(self.block.get()) };` (with its SAFETY proof: the module notifier is a blocking chain; read `blocking_notifier_chain_unregister` in kernel/notifier.c).
        // SAFETY: `unregister_module_notifier` needs a block that is on the
        // module chain: `register` put it there (or `drop` would not run).
        // It is a blocking chain: unregistering takes its rwsem for
        // writing, which waits for every call in progress (they hold it for
        // reading), so no call runs after it returns.
        unsafe { bindings::unregister_module_notifier(self.block.get()) };
        // END EXERCISE
        pr_info!(
            "stopped watching: {} module event(s) seen\n",
            self.events.load(ordering::Relaxed)
        );
    }
}

// ANCHOR: module
#[pin_data(PinnedDrop)]
struct KEvents {
    #[pin]
    watcher: ModuleWatcher,
    probe: Arc<Probe>,
}

impl kernel::InPlaceModule for KEvents {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(KEvents {
            // Registered first: if the probe below fails, the watcher is
            // dropped, and so unregistered, before init returns.
            watcher <- ModuleWatcher::register(),
            probe: start_probe()?,
        })
        .pin_chain(|_| {
            pr_info!("watching module events\n");
            Ok(())
        })
    }
}
// ANCHOR_END: module

/// Queues the probe and waits for it to complete.
fn start_probe() -> Result<Arc<Probe>> {
    let delay = module_parameters::work_delay_ms.value();
    let timeout = module_parameters::timeout_ms.value();
    if timeout == 0 || timeout > 60_000 {
        pr_err!("timeout_ms={timeout} is out of range 1..=60000\n");
        return Err(EINVAL);
    }
    let probe = Arc::pin_init(
        pin_init!(Probe {
            work <- new_delayed_work!("Probe::work"),
            ready <- TimedCompletion::new(),
        }),
        GFP_KERNEL,
    )?;
    // `system_long()`, not `system()`: 7.3 deprecates `system_wq` (and
    // warns on its first use); the crate has no wrapper for its successors.
    if workqueue::system_long()
        .enqueue_delayed(probe.clone(), msecs_to_jiffies(delay))
        .is_err()
    {
        return Err(EBUSY);
    }
    // EXERCISE: Wait for `probe.ready` for at most `timeout` ms. If it does not come, cancel the work item (it must not run once the module is gone) and fail with ETIMEDOUT, logging `the work item did not complete within {timeout} ms: cancelled`; if it does, log `the work item ran and completed `ready`; init waited for it`.
    // HINT: `probe.ready.wait_timeout_ms(timeout)` returns whether it was completed; `cancel(&probe)` cancels the work and waits for it if it is running.
    // HINT: A failed init frees the module's code: a work item still queued would run in freed memory. So: `if !probe.ready.wait_timeout_ms(timeout) { cancel(&probe); pr_err!(...); return Err(ETIMEDOUT); }`
    // STUB: let _ = timeout;
    if !probe.ready.wait_timeout_ms(timeout) {
        cancel(&probe);
        pr_err!("the work item did not complete within {timeout} ms: cancelled\n");
        return Err(ETIMEDOUT);
    }
    pr_info!("the work item ran and completed `ready`; init waited for it\n");
    // END EXERCISE
    Ok(probe)
}

// ANCHOR: exit
#[pinned_drop]
impl PinnedDrop for KEvents {
    fn drop(self: Pin<&mut Self>) {
        // The work item completed `ready`, but `run` may not have returned
        // yet: wait for it, so that none of this module's code is running
        // when its memory is freed. (The watcher unregisters itself when
        // the field is dropped, after this.)
        cancel(&self.probe);
    }
}
// ANCHOR_END: exit
