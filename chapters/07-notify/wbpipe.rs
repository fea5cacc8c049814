// SPDX-License-Identifier: GPL-2.0

//! wbpipe: a pipe of our own, as a device.
//!
//! `/dev/wbpipe` is a misc device with the semantics of a pipe: a byte
//! stream (writes are not kept apart, unlike `msgq`'s messages) through a
//! ring buffer of `capacity` bytes. A file opened for reading is a read end,
//! one opened for writing a write end, `O_RDWR` both:
//!
//! - a read takes what is buffered (up to its size) or sleeps until bytes
//!   come; once no write end is left, a read of an empty pipe returns 0: the
//!   end of the file;
//! - a write sleeps until there is room; once no read end is left it fails
//!   with `EPIPE` and sends the writer `SIGPIPE`, as `pipe_write()` in
//!   `fs/pipe.c` does;
//! - a write of at most `PIPE_BUF` (4096) bytes is atomic: it goes in whole
//!   or waits, so records of several writers never interleave; a longer
//!   write may be split, and returns what it wrote if a signal or the last
//!   reader's close stops it halfway;
//! - `O_NONBLOCK` turns every sleep into `EAGAIN`, and a signal interrupts
//!   one (`EINTR`, or the count written so far).
//!
//! Unlike a FIFO, opening does not wait for the other end, and a read end
//! opened while no writer has the device open sees the end of the file at
//! once. The bytes still buffered are dropped when the last end closes.
//!
//! ```sh
//! insmod wbpipe.ko
//! exec 3> /dev/wbpipe       # a write end, kept open by the shell
//! cat /dev/wbpipe &         # sleeps until bytes come
//! echo hello >&3            # cat prints hello
//! exec 3>&-                 # the last write end closes: cat sees EOF, exits
//! ```

use core::ptr::from_ref;

use kernel::alloc::KVVec;
use kernel::bindings;
use kernel::fs::file::flags::{O_ACCMODE, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};
use kernel::fs::{File, Kiocb};
use kernel::iov::{IovIterDest, IovIterSource};
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration};
use kernel::prelude::*;
use kernel::sync::{new_condvar, new_mutex, Arc, CondVar, Mutex};
use kernel::task::Task;

module! {
    type: WbPipeModule,
    name: "wbpipe",
    authors: ["The Rust Kernel Workbook"],
    description: "A pipe as a device: byte stream, EOF, EPIPE and SIGPIPE, atomic PIPE_BUF writes",
    license: "GPL",
    params: {
        capacity: u32 {
            default: 4096,
            description: "The pipe's buffer in bytes, 4096 (PIPE_BUF) to 1048576",
        },
    },
}

/// The largest write that must never be split (POSIX's `PIPE_BUF`, 4096 on
/// Linux).
const PIPE_BUF: usize = 4096;
/// The largest buffer (the default of `/proc/sys/fs/pipe-max-size`).
const MAX_CAPACITY: usize = 1 << 20;

// ANCHOR: ring
/// A ring buffer of bytes: `len` bytes queued from `head` on, wrapping
/// around the end of `bytes`.
struct Ring {
    bytes: KVVec<u8>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(capacity: usize) -> Result<Ring> {
        Ok(Ring {
            bytes: KVVec::from_elem(0, capacity, GFP_KERNEL)?,
            head: 0,
            len: 0,
        })
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes.
    fn room(&self) -> usize {
        self.bytes.len() - self.len
    }

    /// Copies up to `iov.len()` queued bytes to `iov`, oldest first, and
    /// removes the bytes it copied. Returns how many; fewer than asked if
    /// the copy faulted.
    fn read_into(&mut self, iov: &mut IovIterDest<'_>) -> usize {
        let capacity = self.bytes.len();
        let want = self.len.min(iov.len());
        let first = want.min(capacity - self.head);
        let mut done = iov.copy_to_iter(&self.bytes[self.head..self.head + first]);
        if done == first && want > first {
            done += iov.copy_to_iter(&self.bytes[..want - first]);
        }
        self.head = (self.head + done) % capacity;
        self.len -= done;
        done
    }

    /// Copies `count` bytes (at most `self.room()`) from `iov` into the free
    /// space, and queues them if all `count` came. Returns whether they did;
    /// if the copy faulted, nothing is queued.
    fn write_from(&mut self, iov: &mut IovIterSource<'_>, count: usize) -> bool {
        let capacity = self.bytes.len();
        let tail = (self.head + self.len) % capacity;
        let first = count.min(capacity - tail);
        // The free space is `tail..` up to the end, then `..head`.
        let (wrapped, at_tail) = self.bytes.split_at_mut(tail);
        let mut done = iov.copy_from_iter(&mut at_tail[..first]);
        if done == first && count > first {
            done += iov.copy_from_iter(&mut wrapped[..count - first]);
        }
        if done != count {
            return false;
        }
        self.len += count;
        true
    }
}
// ANCHOR_END: ring

// ANCHOR: pipe
/// The pipe proper, behind the mutex.
struct Inner {
    ring: Ring,
    /// Open files that can read (read ends).
    readers: u32,
    /// Open files that can write (write ends).
    writers: u32,
}

/// The one pipe behind `/dev/wbpipe`; the module and every open file hold
/// an `Arc` to it.
#[pin_data]
struct Pipe {
    #[pin]
    inner: Mutex<Inner>,
    /// Readers sleep here until bytes come or the last writer leaves.
    #[pin]
    readable: CondVar,
    /// Writers sleep here until room frees up or the last reader leaves.
    #[pin]
    writable: CondVar,
}

/// An open file of `/dev/wbpipe`: a read end, a write end, or both.
struct PipeEnd {
    pipe: Arc<Pipe>,
    reads: bool,
    writes: bool,
}

/// The module: the device, and the pipe it reaches.
#[pin_data]
struct WbPipeModule {
    /// Declared first, so dropped first: unpublish, then free.
    #[pin]
    misc: MiscDeviceRegistration<PipeEnd>,
    pipe: Arc<Pipe>,
}
// ANCHOR_END: pipe

impl Pipe {
    /// A pipe with a buffer of `capacity` bytes.
    fn new(capacity: usize) -> Result<Arc<Pipe>> {
        if !(PIPE_BUF..=MAX_CAPACITY).contains(&capacity) {
            pr_err!("capacity={capacity} is out of range {PIPE_BUF}..={MAX_CAPACITY}\n");
            return Err(EINVAL);
        }
        let ring = Ring::new(capacity)?;
        Arc::pin_init(
            pin_init!(Pipe {
                inner <- new_mutex!(Inner {
                    ring,
                    readers: 0,
                    writers: 0,
                }),
                readable <- new_condvar!(),
                writable <- new_condvar!(),
            }),
            GFP_KERNEL,
        )
    }
}

/// Whether the file was opened (or set with `fcntl`) `O_NONBLOCK`.
fn nonblocking(kiocb: &Kiocb<'_, KBox<PipeEnd>>) -> bool {
    // SAFETY: `kiocb.as_raw()` is valid for the call (`Kiocb`'s invariant),
    // and so is the file it points to, whose reference the caller holds.
    // `fcntl(F_SETFL)` may change `f_flags` at any time: like
    // `File::flags()`, read it once, volatile (the kernel's `READ_ONCE`).
    let flags =
        unsafe { core::ptr::addr_of!((*(*kiocb.as_raw()).ki_filp).f_flags).read_volatile() };
    flags & O_NONBLOCK != 0
}

/// What a write that stops early returns: the count it wrote, or `err` if
/// it wrote nothing (the caller's next write gets the error), as for pipes.
fn so_far(written: usize, err: Error) -> Result<usize> {
    if written > 0 {
        Ok(written)
    } else {
        Err(err)
    }
}

// ANCHOR: sigpipe
/// Sends `SIGPIPE` to the calling task, as `pipe_write()` does when no
/// reader is left. The 7.3 `kernel` crate has no signal-sending API; the C
/// function is in its bindings.
fn send_sigpipe() {
    // SAFETY: `send_sig(sig, p, priv)` needs `p` to be a valid task; it
    // takes the task's signal lock itself and may be called from any
    // context. `current` is valid as long as it runs, which covers the call.
    // `priv` 0 is `SEND_SIG_NOINFO`, as in `fs/pipe.c`: the task is sent
    // the signal as if by itself (`SI_USER`, its own pid and uid).
    unsafe { bindings::send_sig(bindings::SIGPIPE as c_int, Task::current_raw(), 0) };
}
// ANCHOR_END: sigpipe

#[vtable]
impl MiscDevice for PipeEnd {
    /// Each open file's private data: which ends it is, and the pipe.
    type Ptr = KBox<PipeEnd>;

    // ANCHOR: open
    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<KBox<PipeEnd>> {
        // SAFETY: the only `MiscDeviceRegistration<PipeEnd>` is the `misc`
        // field of the module's `WbPipeModule`, so both pointers are in that
        // struct, as `container_of!` requires.
        let module =
            unsafe { kernel::container_of!(from_ref(misc).cast_mut(), WbPipeModule, misc) };
        // SAFETY: `misc_open()` calls this with `misc_mtx` held, which
        // `misc_deregister()` also takes: the registration, and so the
        // module struct around it, is alive for this call. `pipe` is
        // initialised before `misc` is registered and dropped after it is
        // deregistered.
        let pipe = unsafe { &(*module).pipe };
        // The access mode cannot change after open (`fcntl` leaves it).
        let mode = file.flags() & O_ACCMODE;
        let end = KBox::new(
            PipeEnd {
                pipe: pipe.clone(),
                reads: mode == O_RDONLY || mode == O_RDWR,
                writes: mode == O_WRONLY || mode == O_RDWR,
            },
            GFP_KERNEL,
        )?;
        let mut inner = pipe.inner.lock();
        inner.readers += u32::from(end.reads);
        inner.writers += u32::from(end.writes);
        drop(inner);
        Ok(end)
    }
    // ANCHOR_END: open

    fn release(end: KBox<PipeEnd>, _file: &File) {
        let pipe = &end.pipe;
        let mut inner = pipe.inner.lock();
        // EXERCISE: Count this end out (`readers`, `writers`). When the last writer leaves, wake every sleeping reader: each must see the end of the file. When the last reader leaves, wake every sleeping writer: each must fail with EPIPE.
        // HINT: A `CondVar` wait is exclusive: `notify_one()` wakes one sleeper, and a reader that returns 0 wakes no one after it.
        // HINT: `if end.writes { inner.writers -= 1; if inner.writers == 0 { pipe.readable.notify_all(); } }`, and the same for readers with `pipe.writable`.
        if end.reads {
            inner.readers -= 1;
            if inner.readers == 0 {
                pipe.writable.notify_all();
            }
        }
        if end.writes {
            inner.writers -= 1;
            if inner.writers == 0 {
                pipe.readable.notify_all();
            }
        }
        // END EXERCISE
        // No end left: no one can read the bytes still buffered, and the
        // next user must not see them.
        if inner.readers == 0 && inner.writers == 0 {
            inner.ring.head = 0;
            inner.ring.len = 0;
        }
    }

    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        if iov.is_empty() {
            return Ok(0);
        }
        let pipe = &kiocb.file().pipe;
        let mut inner = pipe.inner.lock();
        // Whether a signal came while this reader slept.
        let mut interrupted = false;
        loop {
            // ANCHOR: read_data
            if !inner.ring.is_empty() {
                // Copied under the mutex: a mutex may be held across a page
                // fault. Room freed: every writer waits for its own amount,
                // so wake them all; each checks whether it now fits.
                let count = inner.ring.read_into(iov);
                if count > 0 {
                    pipe.writable.notify_all();
                }
                // Bytes left: pass the wakeup on to the next reader.
                if !inner.ring.is_empty() {
                    pipe.readable.notify_one();
                }
                return if count > 0 { Ok(count) } else { Err(EFAULT) };
            }
            // ANCHOR_END: read_data
            // EXERCISE: The pipe is empty. Return the end of the file if no writer is left; else, a reader woken by a signal returns ERESTARTSYS and a non-blocking one EAGAIN; else it sleeps (interruptibly) until woken.
            // HINT: The end of the file is `Ok(0)`. Check it first: a read of an empty pipe with no writer never blocks, O_NONBLOCK or not.
            // HINT: `if inner.writers == 0 { return Ok(0); }`, then `if interrupted { return Err(ERESTARTSYS); }`, `if nonblocking(&kiocb) { return Err(EAGAIN); }`, and `interrupted = pipe.readable.wait_interruptible(&mut inner);`.
            // STUB: interrupted = pipe.readable.wait_interruptible(&mut inner);
            if inner.writers == 0 {
                return Ok(0);
            }
            if interrupted {
                return Err(ERESTARTSYS);
            }
            if nonblocking(&kiocb) {
                return Err(EAGAIN);
            }
            // Sleeps with the mutex released; true when a signal is pending.
            interrupted = pipe.readable.wait_interruptible(&mut inner);
            // END EXERCISE
        }
    }

    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let total = iov.len();
        if total == 0 {
            return Ok(0);
        }
        let pipe = &kiocb.file().pipe;
        let mut inner = pipe.inner.lock();
        let mut written = 0;
        let mut interrupted = false;
        loop {
            // EXERCISE: No reader left: send the writer SIGPIPE, and return EPIPE, or what was written already.
            // HINT: `send_sigpipe()` is above. A write stopped halfway still reports its count: `so_far()` says what to return.
            // HINT: `if inner.readers == 0 { send_sigpipe(); return so_far(written, EPIPE); }`
            if inner.readers == 0 {
                send_sigpipe();
                return so_far(written, EPIPE);
            }
            // END EXERCISE
            let left = total - written;
            let room = inner.ring.room();
            // EXERCISE: Set `now` to how many bytes to copy in now, 0 to wait: all `left` if they fit; a write of at most PIPE_BUF bytes never goes in in parts; a longer one takes whatever room there is.
            // HINT: Two writers of PIPE_BUF-sized records each, and a reader that freed 1000 bytes: a writer that copies 1000 bytes of its record now lets the other writer's bytes come next. The reader sees a torn record.
            // HINT: `let now = if left <= room { left } else if total <= PIPE_BUF { 0 } else { room };`
            // STUB: let now = left.min(room);
            let now = if left <= room {
                left
            } else if total <= PIPE_BUF {
                0
            } else {
                room
            };
            // END EXERCISE
            // ANCHOR: write_copy
            if now > 0 {
                if !inner.ring.write_from(iov, now) {
                    return so_far(written, EFAULT);
                }
                written += now;
                // Bytes for one reader; a reader that leaves some passes
                // the wakeup on.
                pipe.readable.notify_one();
                if written == total {
                    return Ok(written);
                }
                continue;
            }
            // No room: a signal or O_NONBLOCK ends the write here.
            if interrupted {
                return so_far(written, ERESTARTSYS);
            }
            if nonblocking(&kiocb) {
                return so_far(written, EAGAIN);
            }
            interrupted = pipe.writable.wait_interruptible(&mut inner);
            // ANCHOR_END: write_copy
        }
    }
}

impl kernel::InPlaceModule for WbPipeModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let capacity = module_parameters::capacity.value() as usize;
        // The pipe is made before the device is registered: an `open` may
        // come the moment `misc_register()` returns.
        try_pin_init!(WbPipeModule {
            pipe: Pipe::new(capacity)?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"wbpipe" }),
        })
        .pin_chain(move |_| {
            pr_info!("/dev/wbpipe ready: a pipe of {capacity} bytes\n");
            Ok(())
        })
    }
}
