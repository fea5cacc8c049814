// SPDX-License-Identifier: GPL-2.0

//! wbevent: a device that tells user space when something happens, the
//! three ways the kernel has: readiness (`poll`, `select`, `epoll`), a
//! signal to every process that asked for it (`SIGIO` through `fasync`),
//! and a real-time signal carrying a value to a registered thread.
//!
//! `/dev/wbevent` holds up to 8 events, each a `u32`. A `write` of 4*N
//! bytes queues up to N events (it waits for room, or fails with `EAGAIN`
//! when `O_NONBLOCK`); a `read` takes as many whole events as fit in its
//! buffer (it waits for one, or fails with `EAGAIN`). `poll` reports the
//! truth: `POLLIN` when an event is queued, `POLLOUT` when there is room.
//! Every event sends `SIGIO` to the owners of the open files that asked for
//! it (`fcntl(F_SETOWN)`, `O_ASYNC`), and `SIGRTMIN+n`, with the event's
//! value in `si_int`, to each thread registered with
//! `WBEVENT_IOC_REGISTER`.
//!
//! Linux 7.3's `MiscDevice` has no `poll` or `fasync` operation, so a
//! small C shim (`wbevent_shim.c`) registers the device with a
//! `file_operations` of its own whose handlers are the `extern "C"`
//! functions below. The wait queues are the `kernel` crate's own
//! [`PollCondVar`]s: readers and writers sleep on them as on any
//! `CondVar`, and `poll` registers on them through [`PollTable`].
//!
//! ```sh
//! printf '\x2a\x00\x00\x00' > /dev/wbevent   # one event, 42
//! wbevent rt-value                          # the checks' program
//! ```

use core::cell::UnsafeCell;
use core::ptr::NonNull;

use kernel::bindings;
use kernel::fs::File;
use kernel::ioctl::{_IO, _IOR};
use kernel::new_poll_condvar;
use kernel::prelude::*;
use kernel::sync::poll::{PollCondVar, PollTable};
use kernel::sync::{new_mutex, Arc, ArcBorrow, Mutex};
use kernel::transmute::AsBytes;
use kernel::uaccess::{UserPtr, UserSlice};

module! {
    type: WbEvent,
    name: "wbevent",
    authors: ["The Rust Kernel Workbook"],
    description: "Events to user space: poll and epoll, SIGIO, real-time signals with a value",
    license: "GPL",
}

/// How many events the queue holds.
const CAPACITY: usize = 8;
/// The size of one event, a `u32`, in bytes.
const EVENT: usize = core::mem::size_of::<u32>();

// ANCHOR: ffi
/// `struct pid`, only ever used through pointers.
#[repr(C)]
struct RawPid {
    _opaque: [u8; 0],
}

// The C shim's functions (wbevent_shim.c); wbevent_shim.h gives the
// contract of each.
extern "C" {
    fn wbevent_register(ctx: *mut c_void) -> c_int;
    fn wbevent_deregister();
    fn wbevent_pid_get_current() -> *mut RawPid;
    fn wbevent_pid_put(pid: *mut RawPid);
    fn wbevent_pid_nr(pid: *mut RawPid) -> c_int;
    fn wbevent_pid_signal(pid: *mut RawPid, sig: c_int, value: c_int) -> c_int;
    fn wbevent_pids_held() -> c_long;
}
// ANCHOR_END: ffi

// ANCHOR: ioctl
/// What `WBEVENT_IOC_STATS` copies out: only `u64`s, so no padding.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Stats {
    /// Events queued now.
    queued: u64,
    /// The most the queue holds.
    capacity: u64,
    /// Events written since load.
    written: u64,
    /// Events read since load.
    read: u64,
    /// Threads registered for a real-time signal now.
    targets: u64,
    /// `struct pid` references the module holds now (the shim counts them).
    pids_held: u64,
    /// Real-time signals sent.
    signals: u64,
    /// Registrations dropped because their thread was gone.
    gone: u64,
}

// SAFETY: `AsBytes` needs every byte initialised and no interior
// mutability: `Stats` is `#[repr(C)]` with only `u64` fields, so it has no
// padding, and no `UnsafeCell`.
unsafe impl AsBytes for Stats {}

// The numbers: `'x'`, a letter no driver has registered in
// `Documentation/userspace-api/ioctl/ioctl-number.rst` (all of `'e'` is
// taken).

/// `_IO('x', 1)`: send the calling thread signal `arg` (`SIGRTMIN` to
/// `SIGRTMAX`) with each event's value. One registration per open file.
const WBEVENT_IOC_REGISTER: u32 = _IO(b'x' as u32, 1);
/// `_IO('x', 2)`: drop this open file's registration.
const WBEVENT_IOC_UNREGISTER: u32 = _IO(b'x' as u32, 2);
/// `_IOR('x', 3, struct wbevent_stats)`: copy the statistics out.
const WBEVENT_IOC_STATS: u32 = _IOR::<Stats>(b'x' as u32, 3);
// ANCHOR_END: ioctl

// ANCHOR: pidref
/// A counted reference to a thread's `struct pid`, dropped with the value.
///
/// A `struct pid` names one thread for as long as it lives: when the
/// thread is reaped its number may go to a new thread, but that one gets a
/// new `struct pid`. So a signal sent through this reference reaches the
/// thread that registered, or no one (`ESRCH`), never a stranger: what a
/// bare `pid_t` could not promise.
struct PidRef(NonNull<RawPid>);

// SAFETY: a `struct pid`'s count is atomic and the shim's functions may be
// called from any task in process context (wbevent_shim.h), so the
// reference may be used and dropped on any task, and from several at once.
unsafe impl Send for PidRef {}
// SAFETY: see `Send`: the methods taking `&self` only read the `struct pid`.
unsafe impl Sync for PidRef {}

impl PidRef {
    /// The calling thread's `struct pid`.
    fn current() -> PidRef {
        // SAFETY: `wbevent_pid_get_current` needs process context: we are
        // in a system call. It returns a counted reference, never NULL.
        let pid = unsafe { wbevent_pid_get_current() };
        // SAFETY: `NonNull::new_unchecked` needs a non-null pointer: the
        // shim never returns NULL (wbevent_shim.h; a running thread is
        // attached to its `struct pid`).
        PidRef(unsafe { NonNull::new_unchecked(pid) })
    }

    /// The thread's number in the initial pid namespace.
    fn nr(&self) -> i32 {
        // SAFETY: `self.0` is a live reference: it is put only in `drop`.
        unsafe { wbevent_pid_nr(self.0.as_ptr()) }
    }

    /// Sends real-time signal `sig` carrying `value` to the thread.
    fn signal(&self, sig: i32, value: u32) -> Result {
        // SAFETY: `wbevent_pid_signal` needs a live reference (`self.0` is
        // put only in `drop`) and process context with no spinlock held:
        // callers hold at most the device's mutex.
        let ret = unsafe { wbevent_pid_signal(self.0.as_ptr(), sig, value as c_int) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }
}

impl Drop for PidRef {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `wbevent_pid_get_current`, and is put
        // once: here, and nothing uses it after.
        unsafe { wbevent_pid_put(self.0.as_ptr()) };
    }
}
// ANCHOR_END: pidref

/// How many `struct pid` references the module holds now.
fn pids_held() -> u64 {
    // SAFETY: `wbevent_pids_held` only reads an atomic counter.
    unsafe { wbevent_pids_held() as u64 }
}

// ANCHOR: fasync
/// The list of open files that asked for `SIGIO` (`O_ASYNC`), as the
/// kernel keeps it: a `struct fasync_struct *` that `fasync_helper()`
/// changes under its own locks and `kill_fasync()` reads under RCU.
struct FasyncList(UnsafeCell<*mut bindings::fasync_struct>);

// SAFETY: the pointer is only ever handed to `fasync_helper()` and
// `kill_fasync()`, which may run on any task and at the same time: the
// first changes the list under `fasync_lock` and the file's `f_lock`, the
// second reads it under RCU and frees nothing (fs/fcntl.c).
unsafe impl Send for FasyncList {}
// SAFETY: see `Send`.
unsafe impl Sync for FasyncList {}

impl FasyncList {
    const fn new() -> Self {
        FasyncList(UnsafeCell::new(core::ptr::null_mut()))
    }

    /// Adds `file` to the list (`on`) or removes it: the `fasync` file
    /// operation.
    ///
    /// # Safety
    ///
    /// `file` must be a valid file, held for the call, whose `fasync` is
    /// ours: the VFS then removes it from the list (`fasync(-1, file, 0)`
    /// in `__fput()`) before its `release`, so before the list goes.
    unsafe fn change(&self, fd: c_int, file: *mut bindings::file, on: bool) -> Result {
        // SAFETY: `fasync_helper` needs a valid file (our contract) and a
        // list head that outlives its entries: `self` lives in the device,
        // which each open file keeps alive until its `release`, after its
        // entry is removed (our contract).
        let ret = unsafe { bindings::fasync_helper(fd, file, c_int::from(on), self.0.get()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Sends `SIGIO` with `band` (`POLL_IN`, ...) to the owner of every
    /// file on the list.
    fn signal(&self, band: u32) {
        // SAFETY: `kill_fasync` needs a valid list head: `self` is one.
        // It reads the list under RCU itself.
        unsafe { bindings::kill_fasync(self.0.get(), bindings::SIGIO as c_int, band as c_int) };
    }
}
// ANCHOR_END: fasync

// ANCHOR: device
/// The events, oldest first, in a ring.
struct Ring {
    values: [u32; CAPACITY],
    head: usize,
    len: usize,
}

impl Ring {
    /// The `i`th oldest event; `i < self.len`.
    fn get(&self, i: usize) -> u32 {
        self.values[(self.head + i) % CAPACITY]
    }

    /// Queues `value` if there is room.
    fn push(&mut self, value: u32) -> bool {
        if self.len == CAPACITY {
            return false;
        }
        self.values[(self.head + self.len) % CAPACITY] = value;
        self.len += 1;
        true
    }

    /// Drops the `n` oldest events; `n <= self.len`.
    fn consume(&mut self, n: usize) {
        self.head = (self.head + n) % CAPACITY;
        self.len -= n;
    }
}

/// A thread registered for a real-time signal, through one open file.
struct Target {
    /// The open file that registered it: its address, only compared.
    file: usize,
    pid: PidRef,
    signal: i32,
}

/// What the mutex protects.
struct Inner {
    ring: Ring,
    targets: KVec<Target>,
    stats: Stats,
}

/// The device: one, shared by the module and every open file (an `Arc`).
#[pin_data]
struct Device {
    #[pin]
    inner: Mutex<Inner>,
    /// Readers and pollers wait here for an event.
    #[pin]
    readable: PollCondVar,
    /// Writers and pollers wait here for room.
    #[pin]
    writable: PollCondVar,
    /// Whom to send `SIGIO`.
    fasync: FasyncList,
}
// ANCHOR_END: device

impl Device {
    fn new() -> Result<Arc<Device>> {
        Arc::pin_init(
            pin_init!(Device {
                inner <- new_mutex!(Inner {
                    ring: Ring { values: [0; CAPACITY], head: 0, len: 0 },
                    targets: KVec::new(),
                    stats: Stats { capacity: CAPACITY as u64, ..Stats::default() },
                }, "wbevent_inner"),
                readable <- new_poll_condvar!("wbevent_readable"),
                writable <- new_poll_condvar!("wbevent_writable"),
                fasync: FasyncList::new(),
            }),
            GFP_KERNEL,
        )
    }
}

/// An open file's device: what `wbevent_file_open` stored.
///
/// # Safety
///
/// `file` must be an open file of this device, held for `'a`, whose
/// `release` has not run.
unsafe fn device_of<'a>(file: *mut bindings::file) -> &'a Device {
    // SAFETY: `wbevent_file_open` stored `Arc::into_raw` of the device in
    // `private_data`, and only `wbevent_file_release` takes that count
    // back; by our contract it has not run, so the device is alive. Each
    // file operation runs with a reference on the file held, and release
    // runs only after the last one is put.
    unsafe { &*(*file).private_data.cast::<Device>() }
}

/// Whether the file is `O_NONBLOCK` now.
///
/// # Safety
///
/// `file` must be a valid file, held for the call.
unsafe fn nonblocking(file: *mut bindings::file) -> bool {
    // SAFETY: `file` is valid (our contract). `fcntl(F_SETFL)` may change
    // `f_flags` at any time: read once, volatile, like `File::flags()`.
    let flags = unsafe { core::ptr::addr_of!((*file).f_flags).read_volatile() };
    flags & bindings::O_NONBLOCK != 0
}

// ANCHOR: open
/// `open`: the file gets a count on the device.
///
/// # Safety
///
/// `ctx` is what `WbEvent::init` gave `wbevent_register`; `file` is a valid
/// file being opened. The shim's contract: this runs with `misc_mtx` held,
/// never after `wbevent_deregister` has returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbevent_file_open(ctx: *mut c_void, file: *mut bindings::file) -> c_int {
    // SAFETY: `ArcBorrow::from_raw` needs a pointer from `Arc::as_ptr` (it
    // is: see `init`) whose count stays above zero while the borrow lives:
    // the module holds its `Arc` until after `wbevent_deregister`, which
    // cannot return while this open runs (the shim's contract).
    let device = unsafe { ArcBorrow::<Device>::from_raw(ctx.cast()) };
    let device: Arc<Device> = device.into();
    // SAFETY: `file` is valid and not yet shared (being opened).
    unsafe { (*file).private_data = Arc::into_raw(device).cast_mut().cast() };
    0
}
// ANCHOR_END: open

// ANCHOR: fasync_op
/// `fasync`: `fcntl(F_SETFL)` turned `O_ASYNC` on or off (`on`), or the
/// VFS removes the file before releasing it (`fd` -1, `on` 0).
///
/// # Safety
///
/// `file` is an open file of this device, held for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbevent_file_fasync(
    fd: c_int,
    file: *mut bindings::file,
    on: c_int,
) -> c_int {
    // SAFETY: our contract is `device_of`'s.
    let device = unsafe { device_of(file) };
    // EXERCISE: Add the file to `device.fasync` when `on` is non-zero, remove it when it is zero; return 0 or the negative errno.
    // HINT: `FasyncList::change` wraps `fasync_helper()`; it is `unsafe`: its `# Safety` asks for what this function's contract gives.
    // HINT: `match unsafe { device.fasync.change(fd, file, on != 0) } { Ok(()) => 0, Err(e) => e.to_errno() }`, with a SAFETY comment.
    // STUB: let _ = (device, fd, on);
    // STUB: 0
    // SAFETY: `file` is valid and held for the call, and its `fasync` is
    // this function (our contract): `change`'s contract.
    match unsafe { device.fasync.change(fd, file, on != 0) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
    // END EXERCISE
}
// ANCHOR_END: fasync_op

// ANCHOR: read
/// `read`: as many whole events as fit in `count` bytes, oldest first.
///
/// # Safety
///
/// `file` is an open file of this device, held for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbevent_file_read(
    file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: our contract is `device_of`'s and `nonblocking`'s.
    let (device, nonblocking) = unsafe { (device_of(file), nonblocking(file)) };
    match read(device, nonblocking, UserPtr::from_ptr(buf.cast()), count) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

fn read(device: &Device, nonblocking: bool, buf: UserPtr, count: usize) -> Result<usize> {
    let wanted = (count / EVENT).min(CAPACITY);
    if wanted == 0 {
        return Err(EINVAL);
    }
    let mut inner = device.inner.lock();
    let mut interrupted = false;
    while inner.ring.len == 0 {
        if interrupted {
            return Err(ERESTARTSYS);
        }
        if nonblocking {
            return Err(EAGAIN);
        }
        // Sleeps with the mutex released; true when a signal is pending.
        interrupted = device.readable.wait_interruptible(&mut inner);
    }
    let n = wanted.min(inner.ring.len);
    let mut bytes = [0u8; CAPACITY * EVENT];
    for i in 0..n {
        bytes[i * EVENT..(i + 1) * EVENT].copy_from_slice(&inner.ring.get(i).to_ne_bytes());
    }
    // Copied under the mutex, so that a failed copy (EFAULT) leaves the
    // events queued. A mutex may be held across a page fault.
    UserSlice::new(buf, n * EVENT)
        .writer()
        .write_slice(&bytes[..n * EVENT])?;
    inner.ring.consume(n);
    inner.stats.read += n as u64;
    drop(inner);
    // Room: every writer and poller waiting for it looks again. The wakeup
    // carries no poll key (`CondVar::notify_all`), and every poller is on
    // this queue too (`wbevent_file_poll`), so all of them wake: after a
    // read that left events queued, an edge-triggered epoll watcher of
    // EPOLLIN is told of a new edge though no event came. `fs/pipe.c`
    // passes a key (`wake_up_interruptible_sync_poll(.., EPOLLOUT |
    // EPOLLWRNORM)`), and `ep_poll_callback()` then wakes only the watchers
    // of that event; 7.3's `CondVar` has no keyed wakeup.
    device.writable.notify_all();
    Ok(n * EVENT)
}
// ANCHOR_END: read

// ANCHOR: write
/// `write`: 4*N bytes queue up to N events.
///
/// # Safety
///
/// `file` is an open file of this device, held for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbevent_file_write(
    file: *mut bindings::file,
    buf: *const c_char,
    count: usize,
    _pos: *mut bindings::loff_t,
) -> isize {
    // SAFETY: our contract is `device_of`'s and `nonblocking`'s.
    let (device, nonblocking) = unsafe { (device_of(file), nonblocking(file)) };
    match write(
        device,
        nonblocking,
        UserPtr::from_ptr(buf.cast_mut().cast()),
        count,
    ) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

fn write(device: &Device, nonblocking: bool, buf: UserPtr, count: usize) -> Result<usize> {
    if count == 0 || count % EVENT != 0 {
        return Err(EINVAL);
    }
    // At most a queue's worth at a time; the caller writes the rest again.
    let n = (count / EVENT).min(CAPACITY);
    // Copied before taking the mutex: no one waits on this process's memory.
    let mut bytes = [0u8; CAPACITY * EVENT];
    UserSlice::new(buf, n * EVENT)
        .reader()
        .read_slice(&mut bytes[..n * EVENT])?;
    let mut values = [0u32; CAPACITY];
    for (i, value) in values.iter_mut().enumerate().take(n) {
        let b = &bytes[i * EVENT..(i + 1) * EVENT];
        *value = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    }

    let mut inner = device.inner.lock();
    let mut interrupted = false;
    while inner.ring.len == CAPACITY {
        if interrupted {
            return Err(ERESTARTSYS);
        }
        if nonblocking {
            return Err(EAGAIN);
        }
        interrupted = device.writable.wait_interruptible(&mut inner);
    }
    let queued = values[..n]
        .iter()
        .take_while(|value| inner.ring.push(**value))
        .count();
    inner.stats.written += queued as u64;
    signal_targets(&mut inner, &values[..queued]);
    drop(inner);

    // EXERCISE: Tell user space the events are there: wake every reader and poller waiting on `readable`, then send SIGIO (band POLL_IN) to whoever asked for it. Only now, after the queue changed: a sleeper woken before it can see the events sleeps again and misses them.
    // HINT: `device.readable` is a `PollCondVar`, which is a `CondVar`: it has `notify_all()`.
    // HINT: `device.fasync.signal(bindings::POLL_IN)` calls `kill_fasync()`.
    device.readable.notify_all();
    device.fasync.signal(bindings::POLL_IN);
    // END EXERCISE
    Ok(queued * EVENT)
}
// ANCHOR_END: write

// ANCHOR: poll
/// `poll` (and `select`, and `epoll`): put the caller on the wait queues
/// an event or room would wake, and say what is true now.
///
/// # Safety
///
/// `file` is an open file of this device, held for the call; `wait` is
/// null or a valid `poll_table` for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbevent_file_poll(
    file: *mut bindings::file,
    wait: *mut bindings::poll_table,
) -> bindings::__poll_t {
    // SAFETY: our contract is `device_of`'s.
    let device = unsafe { device_of(file) };
    // SAFETY: `PollTable::from_raw` needs a null or valid `poll_table` for
    // the table's lifetime: our contract gives it for this call, and the
    // table does not outlive it.
    let table = unsafe { PollTable::from_raw(wait) };
    // SAFETY: `File::from_raw_file` needs two things. The file valid for
    // the borrow: our contract, and the borrow ends with this call. And no
    // active `fdget_pos` on the file that skipped `f_pos_lock`: that one
    // is NOT proven here, and cannot be. A character device never gets
    // FMODE_ATOMIC_POS (`do_dentry_open()`), so a `read()` on another
    // thread holds exactly such an `fdget_pos`. The rule exists so that a
    // `&File` may cross threads while another thread owns `f_pos` alone;
    // this one never leaves this thread, ends with the call, and neither
    // `poll_wait()` nor this module reads or writes `f_pos`. That is an
    // argument, not the callee's contract: the kernel's own `MiscDevice`
    // hooks and Binder's `poll` make the same call on the same ground, and
    // 7.3's `PollTable::register_wait` takes no `LocalFile`, whose contract
    // (no such `fdget_pos` on *this* thread) would hold.
    let file = unsafe { File::from_raw_file(file) };
    // EXERCISE: Register this poll on both wait queues (`register_wait`), then return the mask that is true now: POLLIN | POLLRDNORM when an event is queued, POLLOUT | POLLWRNORM when there is room. Register first, then look: an event that comes in between then wakes the poller.
    // HINT: `table.register_wait(file, &device.readable)`, and the same for `writable`; it does nothing when `wait` is null (a second pass, or `epoll_wait` looking again).
    // HINT: Look under the mutex: `let len = device.inner.lock().ring.len;`; the constants are `bindings::POLLIN` and friends (`u32`, like `__poll_t`).
    // STUB: let _ = (table, file);
    // STUB: 0
    table.register_wait(file, &device.readable);
    table.register_wait(file, &device.writable);
    let len = device.inner.lock().ring.len;
    let mut mask = 0;
    if len > 0 {
        mask |= bindings::POLLIN | bindings::POLLRDNORM;
    }
    if len < CAPACITY {
        mask |= bindings::POLLOUT | bindings::POLLWRNORM;
    }
    mask
    // END EXERCISE
}
// ANCHOR_END: poll

// ANCHOR: release
/// `release`: the last reference to the open file is gone.
///
/// # Safety
///
/// `file` is an open file of this device, released once: no other file
/// operation on it runs during or after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbevent_file_release(file: *mut bindings::file) {
    // SAFETY: `private_data` holds the count `wbevent_file_open` took with
    // `Arc::into_raw`; it is taken back once, here (our contract).
    let device = unsafe { Arc::<Device>::from_raw((*file).private_data.cast::<Device>()) };
    let id = file as usize;
    // EXERCISE: Drop the registration this file made, if any, so that its `struct pid` reference is put now: the file goes away, and a new file at the same address must not inherit it.
    // HINT: Registrations live in `device.inner.lock().targets`; each `Target` remembers its file's address in `file`.
    // HINT: `targets.retain(|t| t.file != id)` keeps every target whose `file` is not `id` and drops the rest; dropping a `Target` drops its `PidRef`, which puts the reference.
    device.inner.lock().targets.retain(|t| t.file != id);
    // END EXERCISE
    // The file's count on the device goes here; the module's may be the
    // last one left.
    drop(device);
}
// ANCHOR_END: release

// ANCHOR: signal
/// Sends each registered thread its signal with each of `values`, and
/// drops the registrations of threads that are gone.
fn signal_targets(inner: &mut Inner, values: &[u32]) {
    let Inner { targets, stats, .. } = inner;
    // EXERCISE: Send every target its signal once per value, in order; count each signal sent in `stats.signals`. A target whose thread is gone (ESRCH) is dropped (its pid reference with it), counted in `stats.gone` and logged: `pid N is gone (ESRCH): its registration is dropped`. Other errors are logged with pr_warn!.
    // HINT: `targets.retain(|target| ...)` keeps a target when the closure returns true, and drops it otherwise; `target.pid.signal(target.signal, value)` returns `Err(ESRCH)` for a thread that is gone.
    // HINT: Inside the closure: `for &value in values { match target.pid.signal(target.signal, value) { Ok(()) => stats.signals += 1, Err(e) if e == ESRCH => { pr_info!(..., target.pid.nr()); stats.gone += 1; return false; } Err(e) => pr_warn!(...) } } true`.
    targets.retain(|target| {
        for &value in values {
            match target.pid.signal(target.signal, value) {
                Ok(()) => stats.signals += 1,
                Err(e) if e == ESRCH => {
                    pr_info!(
                        "pid {} is gone (ESRCH): its registration is dropped\n",
                        target.pid.nr()
                    );
                    stats.gone += 1;
                    return false;
                }
                // EAGAIN: its queue of real-time signals is full.
                Err(e) => pr_warn!(
                    "signal to pid {}: error {}\n",
                    target.pid.nr(),
                    e.to_errno()
                ),
            }
        }
        true
    });
    // END EXERCISE
}
// ANCHOR_END: signal

// ANCHOR: ioctl_handler
/// `ioctl`: register, unregister, statistics.
///
/// # Safety
///
/// `file` is an open file of this device, held for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbevent_file_ioctl(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: our contract is `device_of`'s.
    let device = unsafe { device_of(file) };
    match ioctl(device, file as usize, cmd, arg) {
        Ok(ret) => ret,
        Err(e) => e.to_errno() as c_long,
    }
}

fn ioctl(device: &Device, id: usize, cmd: u32, arg: usize) -> Result<c_long> {
    match cmd {
        WBEVENT_IOC_REGISTER => {
            // Untrusted: only a real-time signal, whose deliveries queue.
            let signal = i32::try_from(arg)
                .ok()
                .filter(|s| (bindings::SIGRTMIN as i32..=bindings::_NSIG as i32).contains(s))
                .ok_or(EINVAL)?;
            let mut inner = device.inner.lock();
            if inner.targets.iter().any(|t| t.file == id) {
                return Err(EBUSY);
            }
            let pid = PidRef::current();
            // If the push fails, `pid` is dropped and its reference put.
            inner.targets.push(
                Target {
                    file: id,
                    pid,
                    signal,
                },
                GFP_KERNEL,
            )?;
            Ok(0)
        }
        WBEVENT_IOC_UNREGISTER => {
            let mut inner = device.inner.lock();
            let before = inner.targets.len();
            inner.targets.retain(|t| t.file != id);
            if inner.targets.len() == before {
                return Err(ENOENT);
            }
            Ok(0)
        }
        WBEVENT_IOC_STATS => {
            // A copy to user space may fault: copy the numbers out of the
            // mutex first.
            let stats = {
                let inner = device.inner.lock();
                Stats {
                    queued: inner.ring.len as u64,
                    targets: inner.targets.len() as u64,
                    pids_held: pids_held(),
                    ..inner.stats
                }
            };
            UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<Stats>())
                .writer()
                .write(&stats)?;
            Ok(0)
        }
        _ => Err(ENOTTY),
    }
}
// ANCHOR_END: ioctl_handler

// ANCHOR: module
struct WbEvent {
    device: Arc<Device>,
}

impl kernel::Module for WbEvent {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // The device exists before `/dev/wbevent` does: an open may come
        // the moment `misc_register()` returns.
        let device = Device::new()?;
        // SAFETY: `wbevent_register` is called once, and `drop` calls
        // `wbevent_deregister` once after it succeeded (a failed `init`
        // has no `drop`). `ctx` is `Arc::as_ptr` of the device, which
        // `self.device` keeps alive until after `wbevent_deregister`:
        // what `wbevent_file_open` relies on.
        let ret = unsafe { wbevent_register(Arc::as_ptr(&device).cast_mut().cast()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        pr_info!("/dev/wbevent ready: up to {CAPACITY} events\n");
        Ok(WbEvent { device })
    }
}

impl Drop for WbEvent {
    fn drop(&mut self) {
        // First the device goes, so that nothing opens it again. No file
        // is open: each holds the module (`.owner`), so exit runs only
        // after the last `release`.
        // SAFETY: `init` succeeded (else no `drop`), and this is the one
        // call (see `init`).
        unsafe { wbevent_deregister() };
        // Every registration went with its file: any reference still held
        // now is one a `release` forgot.
        let stats = self.device.inner.lock().stats;
        pr_info!(
            "removed after {} events and {} signals; pid references still held: {}\n",
            stats.written,
            stats.signals,
            pids_held()
        );
        // `self.device` goes last: the module's count, the last one.
    }
}
// ANCHOR_END: module
