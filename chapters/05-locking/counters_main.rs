// SPDX-License-Identifier: GPL-2.0

//! Shared state, protected four ways.
//!
//! Tasks hammer the module's state through `/proc/counters/hammer`: each
//! write of a number N runs N rounds, in the writing task (process
//! context). Every round updates each of:
//!
//! - a counter in a `Mutex`: a lock that sleeps when it is taken, for
//!   process context only;
//! - a counter in a `SpinLockIrq`, shared with an `HrTimer` that ticks
//!   every millisecond in hardirq context: a lock a timer also takes must
//!   keep interrupts off while it is held, or the timer could interrupt its
//!   holder and spin forever on the same CPU;
//! - an atomic counter (`Atomic<u64>`), with no lock at all;
//! - two bank accounts, each in a `Mutex`, between which money moves both
//!   ways: a transfer holds both locks, always taken in the same order
//!   (`left`, then `right`), so that two transfers in opposite directions
//!   cannot deadlock;
//!
//! and reads a configuration published with RCU: readers (the rounds, and
//! the timer) follow a pointer under `rcu::read_lock()`, without any lock;
//! a writer (`/proc/counters/config`) publishes a new copy and frees the
//! old one once no reader can still see it.
//!
//! Writers start together: each waits at a gate (a `CondVar`) until
//! `hammers` of them have arrived, so their rounds really interleave.
//! `/proc/counters/stats` shows the totals, which must be exact.
//!
//! ```sh
//! insmod counters.ko hammers=4
//! for i in 1 2 3 4; do echo 2000 > /proc/counters/hammer & done; wait
//! cat /proc/counters/stats
//! echo 21 > /proc/counters/config
//! rmmod counters
//! ```

use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::prelude::*;
use kernel::seq_file::{seq_print, SeqFile};
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::{
    new_condvar, new_mutex, new_spinlock_irq, rcu, Arc, ArcBorrow, CondVar, Mutex, SpinLockIrq,
};
use kernel::time::hrtimer::{
    ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
    HrTimerRestart, RelativeMode,
};
use kernel::time::{Delta, Monotonic};
use kernel::uaccess::{UserPtr, UserSlice};
use kernel::{bindings, impl_has_hr_timer};

module! {
    type: CountersModule,
    name: "counters",
    authors: ["The Rust Kernel Workbook"],
    description: "Shared state protected four ways: Mutex, SpinLockIrq, atomics, RCU",
    license: "GPL",
    params: {
        hammers: u32 {
            default: 4,
            description: "How many hammer writers start together (1 to 64)",
        },
    },
}

/// The most rounds one write may ask for.
const MAX_ROUNDS: u64 = 100_000;
/// The largest configuration value.
const MAX_VALUE: u64 = 1_000_000;
/// What each bank account holds at load.
const OPENING_BALANCE: i64 = 10_000;

// ANCHOR: rcubox
/// A `T` that readers reach under `rcu::read_lock()` and a writer replaces
/// as a whole: read-copy-update.
///
/// Readers take no lock: `read` is a single load. A writer never changes
/// the `T` readers see; it publishes a new one, then waits for an RCU grace
/// period (every read-side critical section that was running has ended)
/// before it frees the old one, which no reader can reach any more.
struct RcuBox<T> {
    ptr: Atomic<*mut T>,
    owns: PhantomData<KBox<T>>,
}

// SAFETY: `Send` needs the value to be movable to another task: it owns a
// `T` (through a `KBox`), which may be dropped there, so `T: Send`.
unsafe impl<T: Send> Send for RcuBox<T> {}
// SAFETY: `Sync` needs `&RcuBox` to be shareable: through it, tasks read
// the `T` at once (`T: Sync`) and `replace` moves `T`s between tasks
// (`T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}

impl<T> RcuBox<T> {
    fn new(value: KBox<T>) -> Self {
        RcuBox {
            ptr: Atomic::new(KBox::into_raw(value)),
            owns: PhantomData,
        }
    }

    /// The current value. The reference lives no longer than the read-side
    /// critical section `_guard` proves, and no longer than `self`.
    fn read<'a>(&'a self, _guard: &'a rcu::Guard) -> &'a T {
        // `Acquire` pairs with the publishing `xchg` in `replace`: the
        // fields of the `T` are seen as written before it was published.
        // (C's `rcu_dereference` relies on the address dependency instead,
        // which is cheaper on some machines; Rust cannot express that.)
        let ptr = self.ptr.load(ordering::Acquire);
        // SAFETY: `&*ptr` needs `ptr` to point to a live `T` that nobody
        // changes while the reference lives. `ptr` came from
        // `KBox::into_raw` (in `new` or `replace`) and is never written
        // through. It is freed only by `replace`'s caller after a grace
        // period that began after it was unpublished, which waits for this
        // read-side critical section (`_guard`): `replace`'s contract
        // forbids calling it from inside one, so this section is not the
        // caller's own. Or it is freed by `drop`, which needs `&mut self`
        // and so waits for `'a` to end.
        unsafe { &*ptr }
    }

    // ANCHOR_END: rcubox

    /// Publishes `new` and returns the old value once no reader can see it
    /// any more. May sleep: process context only.
    ///
    /// # Safety
    ///
    /// The caller is not inside an RCU read-side critical section (it holds
    /// no `rcu::Guard`). A reference `read` gave it would outlive the old
    /// value: the grace period cannot wait for the caller's own section (on
    /// the guest's Tiny RCU, `synchronize_rcu()` then returns at once).
    /// `&self` alone cannot rule that out, hence `unsafe`.
    unsafe fn replace(&self, new: KBox<T>) -> KBox<T> {
        // EXERCISE: Publish `new` in `self.ptr`, wait until no reader can still hold the old pointer, and return the old value as a `KBox`.
        // HINT: `KBox::into_raw` turns the box into the pointer to publish; `self.ptr.xchg(ptr, ordering::Full)` publishes it and returns the old one in one step (`Full` includes the release that makes the fields visible first).
        // HINT: A reader that loaded the old pointer just before the `xchg` may still be using it: `rcu::synchronize_rcu()` waits for every read-side critical section running now to end.
        // HINT: Then the old pointer is yours alone: `unsafe { KBox::from_raw(old) }`, with a SAFETY comment saying why (it came from `KBox::into_raw`, and no reader can reach it).
        // STUB: new
        let new = KBox::into_raw(new);
        let old = self.ptr.xchg(new, ordering::Full);
        rcu::synchronize_rcu();
        // SAFETY: `KBox::from_raw` needs a pointer from `KBox::into_raw`
        // that nothing else uses: `old` came from it (in `new` or an earlier
        // `replace`). The `xchg` unpublished it and handed it to this call
        // alone, and the grace period has waited for every reader that
        // could have loaded it before.
        unsafe { KBox::from_raw(old) }
        // END EXERCISE
    }
}

// ANCHOR: rcubox_drop
impl<T> Drop for RcuBox<T> {
    fn drop(&mut self) {
        // SAFETY: `KBox::from_raw` needs a pointer from `KBox::into_raw`
        // that nothing else uses: the pointer came from it, and `&mut self`
        // means no `read` reference to it is alive.
        drop(unsafe { KBox::from_raw(*self.ptr.get_mut()) });
    }
}
// ANCHOR_END: rcubox_drop

// ANCHOR: state
/// A configuration: `doubled` is always twice `value`. A reader that sees
/// otherwise saw a half-written one (a torn read).
struct Config {
    generation: u64,
    value: u64,
    doubled: u64,
}

/// What the tasks and the timer share under the `SpinLockIrq`.
struct Shared {
    /// Rounds the tasks did.
    events: u64,
    /// Timer ticks.
    ticks: u64,
    /// `events` at the previous tick.
    events_at_tick: u64,
    /// The most events between two ticks.
    busiest: u64,
}

/// The gate at which hammer writers wait for each other.
struct Gate {
    waiting: u32,
    round: u64,
    closed: bool,
}

/// Which way a transfer goes.
#[derive(Clone, Copy)]
enum Direction {
    LeftToRight,
    RightToLeft,
}

#[pin_data]
struct Counters {
    #[pin]
    timer: HrTimer<Self>,
    #[pin]
    by_mutex: Mutex<u64>,
    #[pin]
    shared: SpinLockIrq<Shared>,
    by_atomic: Atomic<u64>,
    // Lock order: `left` before `right`.
    #[pin]
    left: Mutex<i64>,
    #[pin]
    right: Mutex<i64>,
    config: RcuBox<Config>,
    /// Serialises configuration writers; holds the last generation.
    #[pin]
    config_writer: Mutex<u64>,
    config_reads: Atomic<u64>,
    torn_reads: Atomic<u64>,
    #[pin]
    gate: Mutex<Gate>,
    #[pin]
    gate_opened: CondVar,
    hammers: u32,
    stopping: Atomic<bool>,
}
// ANCHOR_END: state

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Counters {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

/// How often the timer ticks.
const TICK: Delta = Delta::from_millis(1);

impl HrTimerCallback for Counters {
    type Pointer<'a> = Arc<Self>;

    // Hardirq context: interrupts are off, nothing here may sleep. (The
    // default mode, not `RelativeHardMode`: on PREEMPT_RT kernels a
    // `spinlock_t` sleeps, and only timers not marked hard may take one:
    // they run in softirq context there. Lockdep checks this rule on
    // non-RT kernels too, with CONFIG_PROVE_RAW_LOCK_NESTING, which is on
    // by default with lockdep on x86.)
    fn run(
        this: ArcBorrow<'_, Self>,
        mut context: HrTimerCallbackContext<'_, Self>,
    ) -> HrTimerRestart {
        // EXERCISE: Count the tick in `this.shared`, and record in `busiest` the most events that happened between two ticks.
        // HINT: `this.shared.lock()` gives a guard through which the fields change; the lock is released when the guard is dropped.
        // HINT: Events since the previous tick: `events - events_at_tick`; then remember `events` in `events_at_tick` for the next tick.
        // HINT: Why a `SpinLockIrq`: a task holding the lock with interrupts on could be interrupted by this very callback, which would spin on the lock forever on the same CPU. `SpinLockIrq::lock` turns interrupts off in the tasks; here they are off already, and it nests.
        // STUB: let _ = &this.shared;
        {
            let mut shared = this.shared.lock();
            shared.ticks += 1;
            let since = shared.events - shared.events_at_tick;
            shared.busiest = shared.busiest.max(since);
            shared.events_at_tick = shared.events;
        }
        // END EXERCISE
        this.read_config();
        context.forward_now(TICK);
        HrTimerRestart::Restart
    }
}

impl Counters {
    /// One round of updates, in process context.
    fn round(&self, direction: Direction) {
        *self.by_mutex.lock() += 1;
        self.shared.lock().events += 1;
        // EXERCISE: Add one to the atomic counter `self.by_atomic`, without a lock.
        // HINT: A load, an add and a store are three steps another task can run between; the atomic does all three as one.
        // HINT: `fetch_add(1, ordering::Relaxed)`: no other memory is ordered by this counter, so `Relaxed` is enough.
        self.by_atomic.fetch_add(1, ordering::Relaxed);
        // END EXERCISE
        // The left account pays 2, the right one pays back 1.
        let amount = match direction {
            Direction::LeftToRight => 2,
            Direction::RightToLeft => 1,
        };
        self.transfer(direction, amount);
        self.read_config();
    }

    /// Moves `amount` from one account to the other.
    fn transfer(&self, direction: Direction, amount: i64) {
        // EXERCISE: Lock both accounts, in the order that never deadlocks, and move `amount` in `direction`.
        // HINT: If one task holds `left` and waits for `right` while another holds `right` and waits for `left`, both wait forever.
        // HINT: Take `left` then `right` whichever way the money goes: the order of the locks is fixed, the direction is only in the arithmetic.
        // STUB: let _ = (direction, amount);
        let mut left = self.left.lock();
        let mut right = self.right.lock();
        let (from, to) = match direction {
            Direction::LeftToRight => (&mut *left, &mut *right),
            Direction::RightToLeft => (&mut *right, &mut *left),
        };
        *from -= amount;
        *to += amount;
        // END EXERCISE
    }

    // ANCHOR: read_config
    /// Reads the configuration as a reader does, counting torn reads.
    fn read_config(&self) {
        let guard = rcu::read_lock();
        let config = self.config.read(&guard);
        if config.doubled != config.value * 2 {
            self.torn_reads.fetch_add(1, ordering::Relaxed);
        }
        drop(guard);
        self.config_reads.fetch_add(1, ordering::Relaxed);
    }
    // ANCHOR_END: read_config

    // ANCHOR: gate
    /// Waits until `hammers` writers are here, then lets them all go.
    /// Returns `EINTR` if a signal comes first, `ENODEV` on unload.
    fn start_together(&self) -> Result {
        let mut gate = self.gate.lock();
        if gate.closed {
            return Err(ENODEV);
        }
        let round = gate.round;
        gate.waiting += 1;
        if gate.waiting == self.hammers {
            gate.waiting = 0;
            gate.round += 1;
            self.gate_opened.notify_all();
            return Ok(());
        }
        // The condition is checked with the lock held, and `wait` drops
        // the lock only once this task is on the wait queue: a
        // `notify_all` between the check and the sleep is not lost.
        while gate.round == round && !gate.closed {
            if self.gate_opened.wait_interruptible(&mut gate) {
                // Leave the gate as if this writer had never come.
                if gate.round == round && !gate.closed {
                    gate.waiting -= 1;
                }
                return Err(EINTR);
            }
        }
        if gate.closed {
            return Err(ENODEV);
        }
        Ok(())
    }

    /// Wakes every writer at the gate and turns new ones away.
    fn close_gate(&self) {
        self.stopping.store(true, ordering::Relaxed);
        self.gate.lock().closed = true;
        self.gate_opened.notify_all();
    }
    // ANCHOR_END: gate

    /// Publishes a new configuration.
    ///
    /// # Safety
    ///
    /// `RcuBox::replace`'s: the caller is not inside an RCU read-side
    /// critical section.
    unsafe fn set_config(&self, value: u64) -> Result {
        let mut generation = self.config_writer.lock();
        let config = KBox::new(
            Config {
                generation: *generation + 1,
                value,
                doubled: value * 2,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `replace` needs a caller outside any RCU read-side
        // critical section: this function's own contract, and no
        // `rcu::Guard` is taken here.
        let old = unsafe { self.config.replace(config) };
        *generation += 1;
        drop(old);
        Ok(())
    }
}

/// Reads a decimal number from the `count` bytes at `buf`, at most `max`.
fn read_number(buf: *const c_char, count: usize, max: u64) -> Result<u64> {
    if count > 16 {
        return Err(EINVAL);
    }
    let mut bytes = KVec::new();
    UserSlice::new(UserPtr::from_ptr(buf.cast_mut().cast()), count)
        .read_all(&mut bytes, GFP_KERNEL)?;
    let text = core::str::from_utf8(&bytes).map_err(|_| EINVAL)?;
    let number: u64 = text.trim().parse().map_err(|_| EINVAL)?;
    if number > max {
        return Err(EINVAL);
    }
    Ok(number)
}

fn to_ssize(result: Result, count: usize) -> isize {
    match result {
        Ok(()) => count as isize,
        Err(error) => error.to_errno() as isize,
    }
}

/// The counters behind `data`, as the shim hands it to a callback.
///
/// # Safety
///
/// `data` must be the pointer given to `counters_proc_create`, in a
/// callback, which runs before `counters_proc_remove` returns.
unsafe fn counters<'a>(data: *const c_void) -> &'a Counters {
    // SAFETY: `&*` needs a pointer to a live `Counters`: `data` is
    // `Arc::as_ptr` of the module's `Arc`, which the module drops only
    // after `counters_proc_remove` has returned (`Drop`), and that waits
    // for the callback that called us (the caller's contract).
    unsafe { &*data.cast::<Counters>() }
}

/// `echo N > /proc/counters/hammer`: N rounds, once `hammers` writers came.
///
/// # Safety
///
/// `data` must be the pointer given to `counters_proc_create`, and this is
/// called as a callback of its entries (`counters_shim.h`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn counters_write_hammer(
    data: *const c_void,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: our caller's contract is `counters`'s.
    let counters = unsafe { counters(data) };
    let result = (|| {
        let rounds = read_number(buf, count, MAX_ROUNDS)?;
        counters.start_together()?;
        for i in 0..rounds {
            if counters.stopping.load(ordering::Relaxed) {
                return Err(ENODEV);
            }
            let direction = if i % 2 == 0 {
                Direction::LeftToRight
            } else {
                Direction::RightToLeft
            };
            counters.round(direction);
        }
        Ok(())
    })();
    to_ssize(result, count)
}

/// `echo N > /proc/counters/config`: publishes value N.
///
/// # Safety
///
/// As for [`counters_write_hammer`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn counters_write_config(
    data: *const c_void,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: our caller's contract is `counters`'s.
    let counters = unsafe { counters(data) };
    to_ssize(
        read_number(buf, count, MAX_VALUE).and_then(|value| {
            // SAFETY: `set_config` needs a caller outside any RCU
            // read-side critical section: a proc write handler runs at the
            // top of a `write()` system call, in process context, where
            // none can be open.
            unsafe { counters.set_config(value) }
        }),
        count,
    )
}

/// `cat /proc/counters/stats`.
///
/// # Safety
///
/// `m` must point to a valid `seq_file` that no other thread uses during
/// the call, whose `private` is the pointer given to
/// `counters_proc_create`, in a callback of its entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn counters_show_stats(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `m` is valid (our caller's contract), so reading its
    // `private` field is; it holds `data` (the shim's `single_open`).
    let data = unsafe { (*m).private };
    // SAFETY: our caller's contract is `counters`'s.
    let counters = unsafe { counters(data) };
    // SAFETY: `SeqFile::from_raw` needs a valid `seq_file` that no other
    // thread uses while the reference lives: our caller's contract.
    let m = unsafe { SeqFile::from_raw(m) };
    let by_mutex = *counters.by_mutex.lock();
    let (events, ticks, busiest) = {
        let shared = counters.shared.lock();
        (shared.events, shared.ticks, shared.busiest)
    };
    let (left, right) = {
        // The same order as `transfer`.
        let left = counters.left.lock();
        let right = counters.right.lock();
        (*left, *right)
    };
    seq_print!(m, "mutex counter: {by_mutex}\n");
    seq_print!(m, "spinlock counter: {events}\n");
    seq_print!(
        m,
        "atomic counter: {}\n",
        counters.by_atomic.load(ordering::Relaxed)
    );
    seq_print!(
        m,
        "bank: left {left}, right {right}, total {}\n",
        left + right
    );
    seq_print!(m, "timer ticks: {ticks}, busiest tick: {busiest} rounds\n");
    seq_print!(
        m,
        "config reads: {}, torn: {}\n",
        counters.config_reads.load(ordering::Relaxed),
        counters.torn_reads.load(ordering::Relaxed)
    );
    seq_print!(m, "waiting at the gate: {}\n", counters.gate.lock().waiting);
    0
}

/// `cat /proc/counters/config`.
///
/// # Safety
///
/// As for [`counters_show_stats`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn counters_show_config(
    m: *mut bindings::seq_file,
    _v: *mut c_void,
) -> c_int {
    // SAFETY: as in `counters_show_stats`.
    let data = unsafe { (*m).private };
    // SAFETY: as in `counters_show_stats`.
    let counters = unsafe { counters(data) };
    // SAFETY: as in `counters_show_stats`.
    let m = unsafe { SeqFile::from_raw(m) };
    let guard = rcu::read_lock();
    let config = counters.config.read(&guard);
    seq_print!(
        m,
        "generation {}: value {}, doubled {}\n",
        config.generation,
        config.value,
        config.doubled
    );
    0
}

extern "C" {
    fn counters_proc_create(data: *const c_void) -> *mut c_void;
    fn counters_proc_remove(dir: *mut c_void);
}

struct CountersModule {
    counters: Arc<Counters>,
    timer: Option<ArcHrTimerHandle<Counters>>,
    dir: Option<NonNull<c_void>>,
}

// SAFETY: `Send` needs the value to be usable from another task: `dir` is
// only passed to `counters_proc_remove`, which any task may call, and the
// other fields are `Send`.
unsafe impl Send for CountersModule {}
// SAFETY: `Sync` needs `&CountersModule` to be shareable: no method reaches
// `dir` through `&self`, and the other fields are `Sync`.
unsafe impl Sync for CountersModule {}

impl kernel::Module for CountersModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let hammers = module_parameters::hammers.value();
        if !(1..=64).contains(&hammers) {
            pr_err!("hammers={hammers} is out of range 1..=64\n");
            return Err(EINVAL);
        }
        let config = KBox::new(
            Config {
                generation: 0,
                value: 0,
                doubled: 0,
            },
            GFP_KERNEL,
        )?;
        let counters = Arc::pin_init(
            pin_init!(Counters {
                timer <- HrTimer::new(),
                by_mutex <- new_mutex!(0, "counters_by_mutex"),
                shared <- new_spinlock_irq!(
                    Shared {
                        events: 0,
                        ticks: 0,
                        events_at_tick: 0,
                        busiest: 0,
                    },
                    "counters_shared"
                ),
                by_atomic: Atomic::new(0),
                left <- new_mutex!(OPENING_BALANCE, "counters_left"),
                right <- new_mutex!(OPENING_BALANCE, "counters_right"),
                config: RcuBox::new(config),
                config_writer <- new_mutex!(0, "counters_config_writer"),
                config_reads: Atomic::new(0),
                torn_reads: Atomic::new(0),
                gate <- new_mutex!(
                    Gate {
                        waiting: 0,
                        round: 0,
                        closed: false,
                    },
                    "counters_gate"
                ),
                gate_opened <- new_condvar!("counters_gate_opened"),
                hammers,
                stopping: Atomic::new(false),
            }),
            GFP_KERNEL,
        )?;
        let timer = Some(counters.clone().start(TICK));
        let mut module = CountersModule {
            counters,
            timer,
            dir: None,
        };
        // SAFETY: `counters_proc_create` needs nothing of `data` (procfs
        // only hands it back); the callbacks' contract needs it to be our
        // `Counters` until `counters_proc_remove` returns, which `Drop`
        // ensures: it removes the entries before the `Arc` goes. On
        // failure, `module` is dropped and stops the timer.
        let dir = unsafe { counters_proc_create(Arc::as_ptr(&module.counters).cast()) };
        module.dir = Some(NonNull::new(dir).ok_or(ENOMEM)?);
        pr_info!("/proc/counters created, {hammers} hammers start together\n");
        Ok(module)
    }
}

impl Drop for CountersModule {
    fn drop(&mut self) {
        // EXERCISE: Stop everything that could still run module code, in an order that cannot hang: writers at the gate, then the /proc entries, then the timer.
        // HINT: Removing the entries waits for every callback that is running, and a writer waiting at the gate is one: wake it first with `close_gate`.
        // HINT: `counters_proc_remove(dir)` (unsafe: say why `dir` is valid and removed once), then dropping `self.timer` cancels the timer and waits for a running callback.
        // STUB: let _ = &self.dir;
        self.counters.close_gate();
        if let Some(dir) = self.dir.take() {
            // SAFETY: `counters_proc_remove` needs a directory from
            // `counters_proc_create` not removed yet, and a context that
            // may sleep: `dir` came from it in `init`, `take` makes this
            // the only removal, and `drop` runs in rmmod's process context.
            unsafe { counters_proc_remove(dir.as_ptr()) };
        }
        drop(self.timer.take());
        // END EXERCISE
        let counters = &self.counters;
        pr_info!(
            "unloaded: {} rounds, {} torn reads\n",
            counters.by_atomic.load(ordering::Relaxed),
            counters.torn_reads.load(ordering::Relaxed)
        );
    }
}
