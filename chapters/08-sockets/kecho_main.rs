// SPDX-License-Identifier: GPL-2.0

//! kecho: an echo server inside the kernel.
//!
//! The module opens two kernel sockets on the loopback address: a UDP one
//! that sends every datagram back to its sender, and a TCP one that accepts
//! one client at a time and sends back every byte it gets. Each is served
//! by a kernel thread of its own, blocked in receive or accept until work
//! comes.
//!
//! Unloading must stop threads that are blocked in the kernel.
//! `kthread_stop()` does it: it makes `kthread_should_stop()` true, flags a
//! pending signal on the thread and wakes it, so an interruptible wait such
//! as a socket receive or accept returns at once with `-ERESTARTSYS`; the
//! thread's loop sees it was told to stop and returns, and `kthread_stop()`
//! returns once it has. A failed `init` stops the threads it started the
//! same way. Each thread's handle, [`KThread`], owns what the thread works
//! with (a count on the server and a buffer) and frees it only after the
//! thread has ended, so no drop order can free it under a running thread.
//! The socket and thread calls go through a C shim (`kecho_shim.c`); the
//! unsafe code that calls it lives in small safe types, [`KSocket`],
//! [`KThread`] and [`ThisThread`].
//!
//! ```sh
//! insmod kecho.ko udp_port=7007 tcp_port=7008
//! wbnet udp 7007 hello      # prints: udp 7007: `hello` echoed
//! rmmod kecho
//! ```
//!
//! `fail_thread` is a test hook, not a feature: `fail_thread=2` makes the
//! start of the second thread fail, so that the checks can see `init` undo
//! what it had done.

use core::marker::PhantomData;
use core::ptr::{self, null_mut};

use kernel::alloc::KVVec;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::Arc;
use kernel::time::{delay::fsleep, Delta};

module! {
    type: KEcho,
    name: "kecho",
    authors: ["The Rust Kernel Workbook"],
    description: "An echo server in the kernel: kernel sockets, kernel threads, a clean stop",
    license: "GPL",
    params: {
        udp_port: u32 {
            default: 7007,
            description: "The UDP port to echo on (127.0.0.1)",
        },
        tcp_port: u32 {
            default: 7008,
            description: "The TCP port to echo on (127.0.0.1)",
        },
        fail_thread: u32 {
            default: 0,
            description: "Test hook: starting thread N (1: UDP, 2: TCP) fails with ENOMEM; 0: none",
        },
    },
}

/// The largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
const MAX_DATAGRAM: usize = 65507;
/// How much of a TCP stream is read at a time.
const TCP_CHUNK: usize = 4096;
/// How long a thread waits after an unexpected error before it goes on.
const PAUSE_MS: u32 = 1000;

// ANCHOR: ffi
/// `struct socket`, only ever used through pointers.
#[repr(C)]
struct Socket {
    _opaque: [u8; 0],
}

/// `struct task_struct`, likewise.
#[repr(C)]
struct Task {
    _opaque: [u8; 0],
}

/// A datagram's sender: the kernel's own `struct sockaddr_in`, so it has
/// the size and alignment the kernel writes it with.
type Peer = bindings::sockaddr_in;

// The C shim's functions (kecho_shim.c): 0 or a count, or a negative errno.
// kecho_shim.h gives the contract of each.
extern "C" {
    fn kecho_udp_open(port: u16, res: *mut *mut Socket) -> c_int;
    fn kecho_tcp_listen(port: u16, res: *mut *mut Socket) -> c_int;
    fn kecho_accept(listener: *mut Socket, res: *mut *mut Socket) -> c_int;
    fn kecho_recv(sock: *mut Socket, buf: *mut c_void, len: usize, from: *mut Peer) -> c_int;
    fn kecho_send(sock: *mut Socket, buf: *const c_void, len: usize, to: *const Peer) -> c_int;
    fn kecho_release(sock: *mut Socket);
    fn kecho_thread_start(
        f: unsafe extern "C" fn(*mut c_void) -> c_int,
        data: *mut c_void,
        name: *const c_char,
        res: *mut *mut Task,
    ) -> c_int;
    fn kecho_thread_stop(task: *mut Task);
}
// ANCHOR_END: ffi

/// Turns the shim's `int` into a `Result`: a count, or the error.
fn to_result(ret: c_int) -> Result<usize> {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(ret as usize)
    }
}

// ANCHOR: ksocket
/// A kernel socket, released when dropped.
struct KSocket(*mut Socket);

// SAFETY: a `struct socket` is not tied to the task that made it: any task
// may use it or release it (kecho_shim.h).
unsafe impl Send for KSocket {}
// SAFETY: the methods that take `&self` (`accept`, `recv`, `send`) may run
// on several tasks at once on one socket (kecho_shim.h); only
// `kecho_release` needs the socket to itself, and it runs in `drop`.
unsafe impl Sync for KSocket {}

impl KSocket {
    /// Takes over the socket the shim made, if `ret` says it made one.
    fn from_shim(ret: c_int, sock: *mut Socket) -> Result<KSocket> {
        to_result(ret)?;
        Ok(KSocket(sock))
    }

    /// A UDP socket bound to 127.0.0.1:`port`.
    fn udp(port: u16) -> Result<KSocket> {
        let mut sock = null_mut();
        // SAFETY: `kecho_udp_open` needs `res` valid for a write: it is a
        // local. On success it stores a socket we now own.
        let ret = unsafe { kecho_udp_open(port, &mut sock) };
        KSocket::from_shim(ret, sock)
    }

    /// A TCP socket listening on 127.0.0.1:`port`.
    fn tcp_listen(port: u16) -> Result<KSocket> {
        let mut sock = null_mut();
        // SAFETY: as in `udp`, for `kecho_tcp_listen`.
        let ret = unsafe { kecho_tcp_listen(port, &mut sock) };
        KSocket::from_shim(ret, sock)
    }

    /// Waits for a client.
    fn accept(&self) -> Result<KSocket> {
        let mut sock = null_mut();
        // SAFETY: `kecho_accept` needs a live listener and `res` valid for
        // a write. `self.0` is live: it is released only in `drop`, which
        // cannot run while `self` is borrowed. `sock` is a local.
        let ret = unsafe { kecho_accept(self.0, &mut sock) };
        KSocket::from_shim(ret, sock)
    }

    /// Waits for data; `Ok(0)` is an empty datagram or an orderly TCP
    /// close. `from`, when given, gets the sender's address.
    fn recv(&self, buf: &mut [u8], from: Option<&mut Peer>) -> Result<usize> {
        let from = from.map_or(null_mut(), ptr::from_mut);
        // SAFETY: `kecho_recv` needs a live socket (see `accept`), `buf`
        // valid for writes of `len` bytes and `from` null or a writable
        // `sockaddr_in`, for the whole call: `buf` and `from` come from
        // exclusive references that outlive it, and `len` is `buf`'s length.
        to_result(unsafe { kecho_recv(self.0, buf.as_mut_ptr().cast(), buf.len(), from) })
    }

    /// Sends `data`, to `to` when given (UDP) or to the connected peer.
    fn send(&self, data: &[u8], to: Option<&Peer>) -> Result<usize> {
        let to = to.map_or(ptr::null(), ptr::from_ref);
        // SAFETY: `kecho_send` needs a live socket (see `accept`), `buf`
        // valid for reads of `len` bytes and `to` null or a valid
        // `sockaddr_in`, for the whole call: both come from references
        // that outlive it, and `len` is `data`'s length.
        to_result(unsafe { kecho_send(self.0, data.as_ptr().cast(), data.len(), to) })
    }
}

impl Drop for KSocket {
    fn drop(&mut self) {
        // SAFETY: `kecho_release` needs a live socket that nothing uses
        // during or after the call. We own it (from `from_shim`), release
        // it only here, and `&mut self` means no method is running on it.
        unsafe { kecho_release(self.0) };
    }
}
// ANCHOR_END: ksocket

// ANCHOR: kthread
/// A kernel thread running `f(&mut data, ..)`: told to stop, and waited
/// for, when the handle is dropped.
///
/// The handle owns `data`, boxed so that it stays in one place, and frees
/// it only once the thread has ended; until then only the thread uses it.
/// So a thread never outlives what it works with, whatever order its
/// owner's fields are dropped in, and `T: 'static` keeps `data` from
/// borrowing anything that could go first (a handle may be leaked).
struct KThread<T> {
    task: *mut Task,
    job: *mut Job<T>,
}

/// What a thread runs, and on what.
struct Job<T> {
    f: fn(&mut T, &ThisThread),
    data: T,
}

// SAFETY: the handle may be dropped on any task: `kecho_thread_stop` may
// be called from any task, and `data`, freed there, is `Send`.
unsafe impl<T: Send> Send for KThread<T> {}
// SAFETY: a `&KThread` gives access to nothing: no method takes `&self`.
unsafe impl<T> Sync for KThread<T> {}

impl<T: Send + 'static> KThread<T> {
    /// Starts a kernel thread called `name` that runs `f(&mut data, ..)`.
    fn start(name: &CStr, f: fn(&mut T, &ThisThread), data: T) -> Result<Self> {
        let job = KBox::into_raw(KBox::new(Job { f, data }, GFP_KERNEL)?);
        let mut task = null_mut();
        // SAFETY: `kecho_thread_start` needs `name` NUL-terminated (it is a
        // `CStr`) and `res` valid for a write (a local). It calls
        // `thread_main::<T>(job)` at most once, whose contract needs `job`
        // to be a `Job<T>` that nothing else uses until it returns: no one
        // touches `job` until `drop`, after `kecho_thread_stop`, or until
        // the failure path below, where the shim never calls it.
        let ret = unsafe {
            kecho_thread_start(thread_main::<T>, job.cast(), name.as_char_ptr(), &mut task)
        };
        if let Err(e) = to_result(ret) {
            // SAFETY: `job` comes from `KBox::into_raw` above and the start
            // failed, so no thread uses it (the shim's contract).
            drop(unsafe { KBox::from_raw(job) });
            return Err(e);
        }
        Ok(KThread { task, job })
    }
}

impl<T> Drop for KThread<T> {
    fn drop(&mut self) {
        // SAFETY: `kecho_thread_stop` needs a task from a successful
        // `kecho_thread_start`, stopped once: `start` made `self` only on
        // success, and a handle is dropped once.
        unsafe { kecho_thread_stop(self.task) };
        // SAFETY: `job` comes from `KBox::into_raw` in `start` and is freed
        // only here. Its only other user, the thread, has returned or will
        // never run: `kecho_thread_stop` has returned (its contract).
        drop(unsafe { KBox::from_raw(self.job) });
    }
}

/// The function a [`KThread`] runs: `f(&mut data, ..)`.
///
/// # Safety
///
/// `job` points to a `Job<T>` that nothing else uses until this returns.
unsafe extern "C" fn thread_main<T>(job: *mut c_void) -> c_int {
    // SAFETY: by this function's contract, `job` is a `Job<T>` that only
    // this call uses while it runs.
    let job = unsafe { &mut *job.cast::<Job<T>>() };
    (job.f)(&mut job.data, &ThisThread(PhantomData));
    0
}

/// What a thread function may ask of its own thread. Only `thread_main`
/// makes one, on a kernel thread `KThread::start` started, and lends it to
/// the thread's function; it cannot leave that thread (it is not `Sync`).
struct ThisThread(PhantomData<*mut ()>);

impl ThisThread {
    /// Whether the thread was told to stop (`kthread_should_stop()`).
    fn should_stop(&self) -> bool {
        // SAFETY: `kthread_should_stop()` reads the kthread data of the
        // current task, which must be a kernel thread: a `ThisThread` is
        // only ever on one (see the type).
        unsafe { bindings::kthread_should_stop() }
    }

    /// Sleeps for `ms` milliseconds, or until the thread is told to stop.
    fn pause(&self, ms: u32) {
        // SAFETY: `msleep_interruptible()` has no precondition beyond a
        // context that may sleep, like the safe `fsleep()`; thread
        // functions run in process context.
        unsafe { bindings::msleep_interruptible(ms) };
    }
}
// ANCHOR_END: kthread

/// What the threads and the module share.
struct Server {
    udp: KSocket,
    listener: KSocket,
    datagrams: Atomic<u64>,
    tcp_bytes: Atomic<u64>,
}

/// What one thread works with: a count on the server, and a buffer of its
/// own, allocated once rather than on the thread's small stack.
struct Worker {
    server: Arc<Server>,
    buf: KVVec<u8>,
}

impl Worker {
    fn new(server: &Arc<Server>, size: usize) -> Result<Self> {
        Ok(Worker {
            server: server.clone(),
            buf: KVVec::from_elem(0, size, GFP_KERNEL)?,
        })
    }
}

// ANCHOR: udp_loop
/// The UDP thread: echo every datagram until told to stop.
fn udp_main(worker: &mut Worker, this: &ThisThread) {
    let Worker { server, buf } = worker;
    let mut peer = Peer::default();
    // Until told to stop: `kthread_stop()` interrupts the receive.
    while !this.should_stop() {
        match server.udp.recv(buf, Some(&mut peer)) {
            Ok(n) => {
                // EXERCISE: Send the `n` bytes received back to `peer` and count the datagram in `server.datagrams`; a failed send is logged with pr_warn! and the loop goes on.
                // HINT: `server.udp.send(&buf[..n], Some(&peer))`; `fetch_add(1, ordering::Relaxed)` counts.
                match server.udp.send(&buf[..n], Some(&peer)) {
                    Ok(_) => {
                        server.datagrams.fetch_add(1, ordering::Relaxed);
                    }
                    Err(e) => pr_warn!("UDP echo of {n} bytes failed: {e:?}\n"),
                }
                // END EXERCISE
            }
            // Only `kthread_stop()` interrupts a kernel thread (they ignore
            // signals): the loop's condition is now false.
            Err(e) if e == ERESTARTSYS || e == EINTR => continue,
            Err(e) => {
                pr_warn!("UDP receive failed: {e:?}\n");
                this.pause(PAUSE_MS);
            }
        }
    }
}
// ANCHOR_END: udp_loop

// ANCHOR: tcp
/// Echoes one TCP client until it closes the connection or the thread is
/// told to stop.
fn serve_client(server: &Server, client: &KSocket, buf: &mut [u8]) -> Result {
    loop {
        // An interrupted receive (`kthread_stop()`) returns the error.
        let n = client.recv(buf, None)?;
        if n == 0 {
            return Ok(());
        }
        let mut sent = 0;
        while sent < n {
            sent += client.send(&buf[sent..n], None)?;
        }
        server.tcp_bytes.fetch_add(n as u64, ordering::Relaxed);
    }
}

/// The TCP thread: one client at a time, until told to stop.
fn tcp_main(worker: &mut Worker, this: &ThisThread) {
    let Worker { server, buf } = worker;
    while !this.should_stop() {
        let client = match server.listener.accept() {
            Ok(client) => client,
            Err(e) if e == ERESTARTSYS || e == EINTR => continue,
            // No memory for the new socket, or stranger: the service goes
            // on, after a pause rather than in a busy loop.
            Err(e) => {
                pr_warn!("TCP accept failed: {e:?}\n");
                this.pause(PAUSE_MS);
                continue;
            }
        };
        pr_info!("TCP client connected\n");
        match serve_client(server, &client, buf) {
            Ok(()) => pr_info!("TCP client left\n"),
            Err(e) => pr_info!("TCP client dropped: {e:?}\n"),
        }
        // Dropping `client` closes the connection.
    }
}
// ANCHOR_END: tcp

/// A parameter as a port number.
fn port(name: &str, value: u32) -> Result<u16> {
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => {
            pr_err!("{name}={value} is not a port (1 to 65535)\n");
            Err(EINVAL)
        }
    }
}

/// Starts this module's thread number `n`, or fails if the `fail_thread`
/// test hook says so.
fn start_thread(
    n: u32,
    name: &CStr,
    f: fn(&mut Worker, &ThisThread),
    worker: Worker,
) -> Result<KThread<Worker>> {
    let started = if module_parameters::fail_thread.value() == n {
        // Fail as a real start would: only after a while (`kthread_create()`
        // waits for `kthreadd`), in which the threads started before this
        // one have run and are blocked in their loops.
        fsleep(Delta::from_millis(100));
        Err(ENOMEM)
    } else {
        KThread::start(name, f, worker)
    };
    started.inspect_err(|e| pr_err!("cannot start {name}: error {}\n", e.to_errno()))
}

struct KEcho {
    /// `None` once stopped. Declared first, so that even without `Drop`
    /// the threads would stop before the module lets go of `server`.
    threads: Option<[KThread<Worker>; 2]>,
    server: Arc<Server>,
}

// ANCHOR: init
impl kernel::Module for KEcho {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let udp_port = port("udp_port", module_parameters::udp_port.value())?;
        let tcp_port = port("tcp_port", module_parameters::tcp_port.value())?;
        // If the second socket fails, `?` drops (releases) the first.
        let udp = KSocket::udp(udp_port)?;
        let listener = KSocket::tcp_listen(tcp_port)?;
        let server = Arc::new(
            Server {
                udp,
                listener,
                datagrams: Atomic::new(0),
                tcp_bytes: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        let udp = start_thread(
            1,
            c"kecho-udp",
            udp_main,
            Worker::new(&server, MAX_DATAGRAM)?,
        )?;
        // If anything fails from here on, `?` drops `udp`, which stops its
        // thread as unloading does: a failed load leaves nothing behind.
        let tcp = start_thread(2, c"kecho-tcp", tcp_main, Worker::new(&server, TCP_CHUNK)?)?;
        pr_info!("UDP echo on 127.0.0.1:{udp_port}, TCP echo on 127.0.0.1:{tcp_port}\n");
        Ok(KEcho {
            threads: Some([udp, tcp]),
            server,
        })
    }
}
// ANCHOR_END: init

// ANCHOR: drop
impl Drop for KEcho {
    fn drop(&mut self) {
        // Interrupt each thread and wait until it has returned (dropping a
        // `KThread` calls `kthread_stop()`), so the counts are final.
        drop(self.threads.take());
        let server = &self.server;
        pr_info!(
            "stopped after echoing {} datagrams and {} TCP bytes\n",
            server.datagrams.load(ordering::Relaxed),
            server.tcp_bytes.load(ordering::Relaxed)
        );
        // The threads' counts on `server` went with their handles; ours
        // goes next, and the sockets are released with it.
    }
}
// ANCHOR_END: drop
