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
use kernel::sync::{new_condvar, new_mutex, CondVar, Mutex};
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

/// The queue and the two wait queues its sleepers wait on.
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
// ANCHOR_END: queue

/// The module: the queue, and the device that reaches it.
#[pin_data]
struct MsgQModule {
    #[pin]
    queue: Queue,
    #[pin]
    misc: MiscDeviceRegistration<MsgQFile>,
}

/// One open file of `/dev/msgq`.
struct MsgQFile {
    queue: &'static Queue,
}

/// Whether the file was opened (or set with `fcntl`) `O_NONBLOCK`.
fn nonblocking(kiocb: &Kiocb<'_, KBox<MsgQFile>>) -> bool {
    // SAFETY: the kiocb and the file it points to are valid for the call.
    let flags = unsafe { (*(*kiocb.as_raw()).ki_filp).f_flags };
    flags & kernel::fs::file::flags::O_NONBLOCK != 0
}

#[vtable]
impl MiscDevice for MsgQFile {
    type Ptr = KBox<MsgQFile>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<MsgQFile>> {
        // SAFETY: every `MiscDeviceRegistration<MsgQFile>` is the `misc`
        // field of the module's `MsgQModule` (no other is made), so the
        // pointer arithmetic stays inside that struct.
        let module = unsafe { kernel::container_of!(from_ref(misc).cast_mut(), MsgQModule, misc) };
        // SAFETY: the module is pinned in place and, because an open file
        // holds a reference to the module, outlives every file: the queue
        // may be borrowed for as long as a file exists.
        let queue: &'static Queue = unsafe { &(*module).queue };
        Ok(KBox::new(MsgQFile { queue }, GFP_KERNEL)?)
    }

    // ANCHOR: read
    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let queue = kiocb.file().queue;
        let mut inner = queue.inner.lock();
        loop {
            // EXERCISE: If a message is queued, copy it whole to `iov` (EMSGSIZE, leaving it queued, if `iov` is too short; EFAULT if the copy falls short), then remove it, count it in `stats.read`, wake a writer and return its length.
            // HINT: `inner.messages.first()`, `iov.len()`, `iov.copy_to_iter(&message)` (it returns how many bytes it copied), `inner.messages.remove(0)`.
            // HINT: `queue.writable.notify_one()` wakes one writer waiting for room.
            if let Some(message) = inner.messages.first() {
                if message.len() > iov.len() {
                    return Err(EMSGSIZE);
                }
                let len = message.len();
                if iov.copy_to_iter(message) != len {
                    return Err(EFAULT);
                }
                inner.messages.remove(0)?;
                inner.stats.read += 1;
                queue.writable.notify_one();
                return Ok(len);
            }
            // END EXERCISE
            if nonblocking(&kiocb) {
                return Err(EAGAIN);
            }
            // Sleeps with the mutex released; true when a signal came.
            if queue.readable.wait_interruptible(&mut inner) {
                return Err(ERESTARTSYS);
            }
        }
    }
    // ANCHOR_END: read

    // ANCHOR: write
    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let queue = kiocb.file().queue;
        let len = iov.len();
        if len == 0 || len > MAX_MESSAGE {
            queue.inner.lock().stats.bad_size += 1;
            return Err(if len == 0 { EINVAL } else { EMSGSIZE });
        }
        // Copied before taking the lock: a page fault may sleep.
        let mut message = KVec::with_capacity(len, GFP_KERNEL)?;
        if iov.copy_from_iter_vec(&mut message, GFP_KERNEL)? != len {
            return Err(EFAULT);
        }
        let mut inner = queue.inner.lock();
        while inner.messages.len() as u64 >= inner.stats.capacity {
            if nonblocking(&kiocb) {
                inner.stats.full += 1;
                return Err(EAGAIN);
            }
            if queue.writable.wait_interruptible(&mut inner) {
                return Err(ERESTARTSYS);
            }
        }
        inner.messages.push(message, GFP_KERNEL)?;
        inner.stats.written += 1;
        queue.readable.notify_one();
        Ok(len)
    }
    // ANCHOR_END: write

    // ANCHOR: ioctl_handler
    fn ioctl(me: &MsgQFile, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            MSGQ_IOC_STATS => {
                let stats = {
                    let inner = me.queue.inner.lock();
                    Stats { queued: inner.messages.len() as u64, ..inner.stats }
                };
                let mut writer = UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<Stats>()).writer();
                writer.write(&stats)?;
                Ok(0)
            }
            MSGQ_IOC_FLUSH => {
                let mut inner = me.queue.inner.lock();
                let dropped = inner.messages.len();
                inner.messages.clear();
                inner.stats.flushed += dropped as u64;
                me.queue.writable.notify_all();
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
        let valid = if capacity == 0 || capacity > 1024 {
            pr_err!("capacity={capacity} is out of range 1..=1024\n");
            Err(EINVAL)
        } else {
            Ok(())
        };
        try_pin_init!(MsgQModule {
            queue <- {
                valid?;
                pin_init!(Queue {
                inner <- new_mutex!(Inner {
                    messages: KVec::new(),
                    stats: Stats { capacity: capacity.into(), ..Stats::default() },
                }),
                readable <- new_condvar!(),
                writable <- new_condvar!(),
                })
            },
            misc <- {
                pr_info!("/dev/msgq ready: up to {capacity} messages of up to {MAX_MESSAGE} bytes\n");
                MiscDeviceRegistration::register(MiscDeviceOptions { name: c"msgq" })
            },
        })
    }
}
