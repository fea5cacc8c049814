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
//! The device has no `poll` operation: `poll()` reports it ready at once,
//! whether or not a message is queued.
//!
//! ```sh
//! echo hello > /dev/msgq
//! cat /dev/msgq        # hello (then waits for the next message)
//! ```

use core::ptr::from_ref;

use kernel::fs::{File, Kiocb};
use kernel::ioctl::{_IO, _IOR};
use kernel::iov::{IovIterDest, IovIterSource};
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, Arc, ArcBorrow, CondVar, Mutex};
use kernel::transmute::AsBytes;
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

// SAFETY: `Stats` is `#[repr(C)]` with only `u64` fields: no padding, and
// any bytes are a valid value.
unsafe impl AsBytes for Stats {}

/// `_IOR('q', 1, struct msgq_stats)`: copy the statistics out.
const MSGQ_IOC_STATS: u32 = _IOR::<Stats>(b'q' as u32, 1);
/// `_IO('q', 2)`: empty the queue.
const MSGQ_IOC_FLUSH: u32 = _IO(b'q' as u32, 2);
// ANCHOR_END: ioctl

// ANCHOR: queue
/// The queue proper, behind the mutex.
struct Inner {
    /// Oldest first.
    messages: KVec<KVec<u8>>,
    stats: Stats,
}

/// The queue and the two wait queues its sleepers wait on. There is one
/// queue; the module and every open file hold an `Arc` to it.
#[pin_data]
struct Queue {
    #[pin]
    inner: Mutex<Inner>,
    /// Signalled when a message arrives.
    #[pin]
    readable: CondVar,
    /// Signalled when room frees up.
    #[pin]
    writable: CondVar,
}

/// The module: the device, and the queue it reaches.
#[pin_data]
struct MsgQModule {
    /// Fields drop in the order they are declared: the device goes first,
    /// so nothing can open it once the module's reference to the queue is
    /// dropped. Unpublish, then free.
    #[pin]
    misc: MiscDeviceRegistration<Queue>,
    queue: Arc<Queue>,
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
                readable <- new_condvar!(),
                writable <- new_condvar!(),
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

#[vtable]
impl MiscDevice for Queue {
    /// Each open file's private data: a reference to the queue.
    type Ptr = Arc<Queue>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Arc<Queue>> {
        // SAFETY: the only `MiscDeviceRegistration<Queue>` is the `misc`
        // field of the module's `MsgQModule`, so both pointers are in that
        // struct, as `container_of!` requires.
        let module = unsafe { kernel::container_of!(from_ref(misc).cast_mut(), MsgQModule, misc) };
        // SAFETY: `misc_open()` calls this with `misc_mtx` held, which
        // `misc_deregister()` also takes: the registration, and so the
        // module struct around it, is alive for this call. `queue` is
        // initialised before `misc` is registered and dropped after it is
        // deregistered.
        let queue = unsafe { &(*module).queue };
        Ok(queue.clone())
    }

    // ANCHOR: read
    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let queue = kiocb.file();
        let mut inner = queue.inner.lock();
        // Whether a signal came while this reader slept.
        let mut interrupted = false;
        loop {
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
    // ANCHOR_END: read

    // ANCHOR: write
    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
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
    fn ioctl(queue: ArcBorrow<'_, Queue>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            MSGQ_IOC_STATS => {
                // A copy to user space may fault: copy the numbers out of
                // the mutex first, then drop the guard.
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
}

impl kernel::InPlaceModule for MsgQModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let capacity = module_parameters::capacity.value();
        // The queue is made before the device is registered: an `open` may
        // come the moment `misc_register()` returns.
        try_pin_init!(MsgQModule {
            queue: Queue::new(capacity)?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"msgq" }),
        })
        .pin_chain(move |_| {
            pr_info!("/dev/msgq ready: up to {capacity} messages of up to {MAX_MESSAGE} bytes\n");
            Ok(())
        })
    }
}
