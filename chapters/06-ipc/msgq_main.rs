// SPDX-License-Identifier: GPL-2.0

//! msgq: a message queue between processes, as a device.
//!
//! `/dev/msgq` is a misc device. Each `write` enqueues one message and each
//! `read` dequeues one whole message, first in first out. The queue holds
//! `capacity` messages: a writer waits for room (or gets `EAGAIN` with
//! `O_NONBLOCK`), a reader sleeps until a message arrives (or gets `EAGAIN`
//! with `O_NONBLOCK`), and a signal interrupts either wait. Two ioctls report
//! the queue's statistics and flush it.
//!
//! A blocking read is also how a process is told of an event without
//! polling: it sleeps in the kernel, costs nothing while it waits, and wakes
//! the moment a writer (another process, or the kernel) queues a message.
//! It has a `poll` operation too, so a process can wait on the queue
//! beside other files (`poll()`, `select()`, `epoll`): readable when a
//! message is queued, writable when there is room. Linux 7.3's
//! `MiscDevice` has no hook for `poll`, so a small C shim (`msgq_shim.c`)
//! registers the device with a `file_operations` of its own whose handlers
//! are the `extern "C"` functions below; chapter 07 explains `poll`.
//!
//! ```sh
//! echo hello > /dev/msgq
//! cat /dev/msgq        # hello (then waits for the next message)
//! ```

use kernel::bindings;
use kernel::fs::{File, Kiocb};
use kernel::ioctl::{_IO, _IOR};
use kernel::iov::{IovIterDest, IovIterSource};
use kernel::new_poll_condvar;
use kernel::prelude::*;
use kernel::sync::poll::{PollCondVar, PollTable};
use kernel::sync::{new_mutex, Arc, ArcBorrow, Mutex};
use kernel::transmute::AsBytes;
use kernel::types::ForeignOwnable;
use kernel::uaccess::{UserPtr, UserSlice};

module! {
    type: MsgQModule,
    name: "msgq",
    authors: ["The Rust Kernel Workbook"],
    description: "A message queue device: blocking and non-blocking I/O, wait queues, ioctls",
    license: "GPL",
    params: {
        capacity: u32 {
            default: 16,
            description: "How many messages the queue holds, 1 to 1024",
        },
    },
}

/// The longest message, in bytes.
const MAX_MESSAGE: usize = 4096;

// The C shim's functions (msgq_shim.c); msgq_shim.h gives their contract.
extern "C" {
    fn msgq_register(ctx: *mut c_void) -> c_int;
    fn msgq_deregister();
}

// ANCHOR: ioctl
/// What `MSGQ_IOC_STATS` copies to user space. `#[repr(C)]` and only `u64`
/// fields: the same layout in C and Rust, and no padding to leak.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Stats {
    /// Messages in the queue now.
    queued: u64,
    /// The most it holds.
    capacity: u64,
    /// Messages written since load.
    written: u64,
    /// Messages read since load.
    read: u64,
    /// Non-blocking writes refused because the queue was full.
    full: u64,
    /// Writes refused for their size (empty or over 4096 bytes).
    bad_size: u64,
    /// Messages thrown away by `MSGQ_IOC_FLUSH`.
    flushed: u64,
}

// SAFETY: `AsBytes` needs every byte initialised and no interior
// mutability: `Stats` is `#[repr(C)]` with only `u64` fields, so it has no
// padding, and no `UnsafeCell`.
unsafe impl AsBytes for Stats {}

// The numbers: `'q'` from 0x20 up, a block no driver has registered in
// `Documentation/userspace-api/ioctl/ioctl-number.rst` (`'q'` 0x00-0x1F is
// serio's, 0x80-0xFF telephony's). A program that sends them to the wrong
// device then gets `ENOTTY`, not another driver's command.

/// `_IOR('q', 0x20, struct msgq_stats)`: copy the statistics out.
const MSGQ_IOC_STATS: u32 = _IOR::<Stats>(b'q' as u32, 0x20);
/// `_IO('q', 0x21)`: empty the queue.
const MSGQ_IOC_FLUSH: u32 = _IO(b'q' as u32, 0x21);
// ANCHOR_END: ioctl

// ANCHOR: queue
/// The queue proper, behind the mutex.
struct Inner {
    /// Oldest first.
    messages: KVec<KVec<u8>>,
    stats: Stats,
}

/// The queue and the two wait queues its sleepers wait on. There is one
/// queue; the module and every open file hold an `Arc` to it. The wait
/// queues are `PollCondVar`s: `CondVar`s that `poll` may also register on
/// (chapter 07 says why a plain `CondVar` would not do).
#[pin_data]
struct Queue {
    #[pin]
    inner: Mutex<Inner>,
    /// Signalled when a message arrives.
    #[pin]
    readable: PollCondVar,
    /// Signalled when room frees up.
    #[pin]
    writable: PollCondVar,
}

/// The module: the queue, which the device reaches. `Drop` removes the
/// device before the module lets go of the queue: unpublish, then free.
struct MsgQModule {
    /// Only held: it keeps the queue `msgq_file_open` reaches alive.
    _queue: Arc<Queue>,
}
// ANCHOR_END: queue

impl Queue {
    /// A queue of up to `capacity` messages.
    fn new(capacity: u32) -> Result<Arc<Queue>> {
        if capacity == 0 || capacity > 1024 {
            pr_err!("capacity={capacity} is out of range 1..=1024\n");
            return Err(EINVAL);
        }
        Arc::pin_init(
            pin_init!(Queue {
                inner <- new_mutex!(Inner {
                    messages: KVec::new(),
                    stats: Stats { capacity: capacity.into(), ..Stats::default() },
                }),
                readable <- new_poll_condvar!("msgq_readable"),
                writable <- new_poll_condvar!("msgq_writable"),
            }),
            GFP_KERNEL,
        )
    }
}

/// Whether the file was opened (or set with `fcntl`) `O_NONBLOCK`.
fn nonblocking(kiocb: &Kiocb<'_, Arc<Queue>>) -> bool {
    // SAFETY: `kiocb.as_raw()` is valid for the call (`Kiocb`'s invariant),
    // and so is the file it points to, whose reference the caller holds.
    // `fcntl(F_SETFL)` may change `f_flags` at any time: like
    // `File::flags()`, read it once, volatile (the kernel's `READ_ONCE`).
    let flags =
        unsafe { core::ptr::addr_of!((*(*kiocb.as_raw()).ki_filp).f_flags).read_volatile() };
    flags & kernel::fs::file::flags::O_NONBLOCK != 0
}

// ANCHOR: open
/// `open`: the file gets a count on the queue, as its private data.
///
/// # Safety
///
/// `ctx` is what `init` gave `msgq_register`; `file` is a valid file being
/// opened. The shim's contract: this runs with `misc_mtx` held, never
/// after `msgq_deregister` has returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgq_file_open(ctx: *mut c_void, file: *mut bindings::file) -> c_int {
    // SAFETY: `ArcBorrow::from_raw` needs a pointer from `Arc::as_ptr` (it
    // is: see `init`) whose count stays above zero while the borrow lives:
    // the module holds its `Arc` until after `msgq_deregister`, which
    // cannot return while this open runs (the shim's contract).
    let queue: Arc<Queue> = unsafe { ArcBorrow::<Queue>::from_raw(ctx.cast()) }.into();
    // SAFETY: `file` is valid and not yet shared (being opened).
    unsafe { (*file).private_data = queue.into_foreign() };
    0
}

/// `release`: the file's count on the queue goes.
///
/// # Safety
///
/// `file` is an open file of this device, released once: no other file
/// operation on it runs during or after this.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgq_file_release(file: *mut bindings::file) {
    // SAFETY: `private_data` holds what `msgq_file_open` made with
    // `into_foreign`; it is taken back once, here (our contract).
    drop(unsafe { Arc::<Queue>::from_foreign((*file).private_data) });
}

/// The queue an open file's private data holds.
///
/// # Safety
///
/// `file` is an open file of this device, held for `'a`, whose `release`
/// has not run.
unsafe fn queue_of<'a>(file: *mut bindings::file) -> ArcBorrow<'a, Queue> {
    // SAFETY: `ForeignOwnable::borrow` needs a pointer from `into_foreign`
    // not yet given to `from_foreign`, for `'a`: `msgq_file_open` stored
    // it, and only `msgq_file_release` takes it back, which has not run
    // (our contract).
    unsafe { Arc::<Queue>::borrow((*file).private_data) }
}
// ANCHOR_END: open

/// `read_iter`: the shim's entry point for [`read_iter`].
///
/// # Safety
///
/// `iocb` is a valid `kiocb` of an open file of this device, and `to` a
/// valid `iov_iter` to write to, both for the call and used by no one else.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgq_file_read_iter(
    iocb: *mut bindings::kiocb,
    to: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: `Kiocb::from_raw` needs a valid `kiocb` for the borrow whose
    // file's private data is an `Arc<Queue>` (`msgq_file_open`): our
    // contract. `IovIterDest::from_raw` needs a valid destination
    // `iov_iter` used only through the borrow: our contract too.
    let (kiocb, iov) = unsafe { (Kiocb::from_raw(iocb), IovIterDest::from_raw(to)) };
    match read_iter(kiocb, iov) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `write_iter`: the shim's entry point for [`write_iter`].
///
/// # Safety
///
/// As for [`msgq_file_read_iter`], with `from` an `iov_iter` to read from.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgq_file_write_iter(
    iocb: *mut bindings::kiocb,
    from: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: as in `msgq_file_read_iter`, for a source `iov_iter`.
    let (kiocb, iov) = unsafe { (Kiocb::from_raw(iocb), IovIterSource::from_raw(from)) };
    match write_iter(kiocb, iov) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}

// ANCHOR: poll
/// `poll`: register on both wait queues, then say what is true now.
///
/// # Safety
///
/// `file` is an open file of this device, held for the call; `wait` is
/// null or a valid `poll_table` for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgq_file_poll(
    file: *mut bindings::file,
    wait: *mut bindings::poll_table,
) -> bindings::__poll_t {
    // SAFETY: our contract is `queue_of`'s.
    let queue = unsafe { queue_of(file) };
    // SAFETY: `PollTable::from_raw` needs a null or valid `poll_table` for
    // the table's lifetime: our contract gives it for this call, which the
    // table does not outlive.
    let table = unsafe { PollTable::from_raw(wait) };
    // SAFETY: `File::from_raw_file` needs two things. The file valid for
    // the borrow: our contract, and the borrow ends with the call. And no
    // active `fdget_pos` on the file that skipped `f_pos_lock`: that one
    // is NOT proven here, and cannot be. A character device never gets
    // FMODE_ATOMIC_POS (`do_dentry_open()`), so a `read()` on another
    // thread holds exactly such an `fdget_pos`. The rule exists so that a
    // `&File` may cross threads while another thread owns `f_pos` alone;
    // this one never leaves this thread, ends with the call, and neither
    // `poll_wait()` nor this module reads or writes `f_pos`. That is an
    // argument, not the callee's contract: the kernel's own `MiscDevice`
    // hooks make the same call on the same ground, and 7.3's
    // `PollTable::register_wait` takes no `LocalFile`, whose contract (no
    // such `fdget_pos` on *this* thread) would hold.
    let file = unsafe { File::from_raw_file(file) };
    // First register, then look: a message that comes in between wakes us.
    table.register_wait(file, &queue.readable);
    table.register_wait(file, &queue.writable);
    let (queued, capacity) = {
        let inner = queue.inner.lock();
        (inner.messages.len() as u64, inner.stats.capacity)
    };
    let readable = if queued > 0 {
        bindings::POLLIN | bindings::POLLRDNORM
    } else {
        0
    };
    let writable = if queued < capacity {
        bindings::POLLOUT | bindings::POLLWRNORM
    } else {
        0
    };
    readable | writable
}
// ANCHOR_END: poll

/// `unlocked_ioctl`: the shim's entry point for [`ioctl`].
///
/// # Safety
///
/// `file` is an open file of this device, held for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn msgq_file_ioctl(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: our contract is `queue_of`'s.
    let queue = unsafe { queue_of(file) };
    match ioctl(queue, cmd, arg) {
        Ok(ret) => ret as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

// ANCHOR: read_start
fn read_iter(kiocb: Kiocb<'_, Arc<Queue>>, iov: &mut IovIterDest<'_>) -> Result<usize> {
    let queue = kiocb.file();
    let mut inner = queue.inner.lock();
    // Whether a signal came while this reader slept.
    let mut interrupted = false;
    loop {
        // ANCHOR_END: read_start
        // EXERCISE: If a message is queued, copy it whole to `iov` (EMSGSIZE, leaving it queued, if `iov` is too short; EFAULT if the copy falls short), then remove it, count it in `stats.read`, wake a writer and return its length. Before either error, wake the next reader: this one may have been woken for the message it leaves.
        // HINT: `inner.messages.first()`, `iov.len()`, `iov.copy_to_iter(&message)` (it returns how many bytes it copied), `inner.messages.remove(0)`.
        // HINT: `queue.writable.notify_one()` wakes one writer waiting for room; `queue.readable.notify_one()` passes a wakeup on to the next reader.
        if let Some(message) = inner.messages.first() {
            let len = message.len();
            // A wakeup goes to one reader only: one that leaves the
            // message queued passes it on, or the next reader sleeps
            // beside a queued message.
            if len > iov.len() {
                queue.readable.notify_one();
                return Err(EMSGSIZE);
            }
            // Copied under the mutex, so that a failed copy leaves the
            // message first in the queue. A mutex may be held across a
            // page fault; a spinlock may not.
            if iov.copy_to_iter(message) != len {
                queue.readable.notify_one();
                return Err(EFAULT);
            }
            inner.messages.remove(0)?;
            inner.stats.read += 1;
            queue.writable.notify_one();
            return Ok(len);
        }
        // END EXERCISE
        // ANCHOR: read_sleep
        // Nothing queued: only now may a signal end the read. A reader
        // woken for a message takes it even if a signal came too.
        if interrupted {
            return Err(ERESTARTSYS);
        }
        if nonblocking(&kiocb) {
            return Err(EAGAIN);
        }
        // Sleeps with the mutex released; true when a signal is pending.
        interrupted = queue.readable.wait_interruptible(&mut inner);
    }
}
// ANCHOR_END: read_sleep

// ANCHOR: write
fn write_iter(kiocb: Kiocb<'_, Arc<Queue>>, iov: &mut IovIterSource<'_>) -> Result<usize> {
    let queue = kiocb.file();
    let len = iov.len();
    if len == 0 || len > MAX_MESSAGE {
        queue.inner.lock().stats.bad_size += 1;
        return Err(if len == 0 { EINVAL } else { EMSGSIZE });
    }
    // The queue keeps its own copy of the message: make it before
    // taking the mutex, so that no one waits on this process's memory.
    let mut message = KVec::with_capacity(len, GFP_KERNEL)?;
    if iov.copy_from_iter_vec(&mut message, GFP_KERNEL)? != len {
        return Err(EFAULT);
    }
    let mut inner = queue.inner.lock();
    let mut interrupted = false;
    while inner.messages.len() as u64 >= inner.stats.capacity {
        // Still full: a writer woken for room that someone else took.
        if interrupted {
            return Err(ERESTARTSYS);
        }
        if nonblocking(&kiocb) {
            inner.stats.full += 1;
            return Err(EAGAIN);
        }
        interrupted = queue.writable.wait_interruptible(&mut inner);
    }
    if let Err(e) = inner.messages.push(message, GFP_KERNEL) {
        // The room stays free: pass the wakeup on to the next writer.
        queue.writable.notify_one();
        return Err(e.into());
    }
    inner.stats.written += 1;
    queue.readable.notify_one();
    Ok(len)
}
// ANCHOR_END: write

// ANCHOR: ioctl_handler
fn ioctl(queue: ArcBorrow<'_, Queue>, cmd: u32, arg: usize) -> Result<isize> {
    match cmd {
        MSGQ_IOC_STATS => {
            // Copy the numbers out of the mutex first and drop the guard
            // before the copy to user space: a fault there may take long,
            // and the lock need not be held for it (read does hold it
            // across its copy, to keep a failed copy's message queued).
            let stats = {
                let inner = queue.inner.lock();
                Stats {
                    queued: inner.messages.len() as u64,
                    ..inner.stats
                }
            };
            let size = core::mem::size_of::<Stats>();
            UserSlice::new(UserPtr::from_addr(arg), size)
                .writer()
                .write(&stats)?;
            Ok(0)
        }
        MSGQ_IOC_FLUSH => {
            let mut inner = queue.inner.lock();
            let dropped = inner.messages.len();
            inner.messages.clear();
            inner.stats.flushed += dropped as u64;
            queue.writable.notify_all();
            Ok(dropped as isize)
        }
        _ => Err(ENOTTY),
    }
}
// ANCHOR_END: ioctl_handler

impl kernel::Module for MsgQModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let capacity = module_parameters::capacity.value();
        // The queue is made before the device is registered: an `open` may
        // come the moment `misc_register()` returns.
        let queue = Queue::new(capacity)?;
        // SAFETY: `msgq_register` is called once, and `drop` calls
        // `msgq_deregister` once after it succeeded (a failed `init` has no
        // `drop`). `ctx` is `Arc::as_ptr` of the queue, which `self._queue`
        // keeps alive until after `msgq_deregister`: what
        // `msgq_file_open` relies on.
        let ret = unsafe { msgq_register(Arc::as_ptr(&queue).cast_mut().cast()) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        pr_info!("/dev/msgq ready: up to {capacity} messages of up to {MAX_MESSAGE} bytes\n");
        Ok(MsgQModule { _queue: queue })
    }
}

impl Drop for MsgQModule {
    fn drop(&mut self) {
        // Unpublish, then free: the device goes first, so nothing opens it
        // once the module's count on the queue is dropped (after this).
        // No file is open: each holds the module (`.owner`).
        // SAFETY: `init` succeeded (else no `drop`); this is the one call.
        unsafe { msgq_deregister() };
    }
}
