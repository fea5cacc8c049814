// SPDX-License-Identifier: GPL-2.0

//! kecho: an echo server inside the kernel.
//!
//! The module opens two kernel sockets on the loopback address: a UDP one
//! that sends every datagram back to its sender (upper-cased with
//! `upper=true`), and a TCP one that accepts clients and sends back every
//! byte each one sends. Each socket is served by a kernel thread of its
//! own, blocked in receive or accept until work comes, and each TCP client
//! by a thread of its own, up to `MAX_CLIENTS` at once.
//!
//! Unloading must stop threads that are blocked in the kernel.
//! `kthread_stop()` does it: it makes `kthread_should_stop()` true, flags a
//! pending signal on the thread and wakes it, so an interruptible wait such
//! as a socket receive or accept returns at once with `-ERESTARTSYS`; the
//! thread's loop sees it was told to stop and returns, and `kthread_stop()`
//! returns once it has. A receive that finds data queued does not wait, and
//! does not look for the signal: so every loop asks `kthread_should_stop()`
//! on each turn, or a client that keeps sending would keep its thread, and
//! `rmmod`, going. A failed `init` stops the threads it started the
//! same way, and the TCP thread stops its clients' threads as it returns.
//! Each thread's handle, [`KThread`], owns what the thread works with (a
//! count on the server and a buffer) and frees it only after the thread
//! has ended, so no drop order can free it under a running thread.
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
        upper: bool {
            default: false,
            description: "Echo UDP datagrams upper-cased (ASCII letters only); TCP is echoed as is",
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
/// The most TCP clients served at once; more are turned away.
const MAX_CLIENTS: usize = 8;
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
mod ksocket {
    use super::*;

    /// A kernel socket, released when dropped. Its field is private to this
    /// module: only `from_shim` makes one, from a socket the shim made.
    pub(super) struct KSocket(*mut Socket);

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
        pub(super) fn udp(port: u16) -> Result<KSocket> {
            let mut sock = null_mut();
            // SAFETY: `kecho_udp_open` needs `res` valid for a write: it is a
            // local. On success it stores a socket we now own.
            let ret = unsafe { kecho_udp_open(port, &mut sock) };
            KSocket::from_shim(ret, sock)
        }

        /// A TCP socket listening on 127.0.0.1:`port`.
        pub(super) fn tcp_listen(port: u16) -> Result<KSocket> {
            let mut sock = null_mut();
            // SAFETY: as in `udp`, for `kecho_tcp_listen`.
            let ret = unsafe { kecho_tcp_listen(port, &mut sock) };
            KSocket::from_shim(ret, sock)
        }

        /// Waits for a client.
        pub(super) fn accept(&self) -> Result<KSocket> {
            let mut sock = null_mut();
            // SAFETY: `kecho_accept` needs a live listener and `res` valid for
            // a write. `self.0` is live: it is released only in `drop`, which
            // cannot run while `self` is borrowed. `sock` is a local.
            let ret = unsafe { kecho_accept(self.0, &mut sock) };
            KSocket::from_shim(ret, sock)
        }

        /// Waits for data; `Ok(0)` is an empty datagram or an orderly TCP
        /// close. `from`, when given, gets the sender's address.
        pub(super) fn recv(&self, buf: &mut [u8], from: Option<&mut Peer>) -> Result<usize> {
            let from = from.map_or(null_mut(), ptr::from_mut);
            // SAFETY: `kecho_recv` needs a live socket (see `accept`), `buf`
            // valid for writes of `len` bytes and `from` null or a writable
            // `sockaddr_in`, for the whole call: `buf` and `from` come from
            // exclusive references that outlive it, and `len` is `buf`'s length.
            to_result(unsafe { kecho_recv(self.0, buf.as_mut_ptr().cast(), buf.len(), from) })
        }

        /// Sends `data`, to `to` when given (UDP) or to the connected peer.
        pub(super) fn send(&self, data: &[u8], to: Option<&Peer>) -> Result<usize> {
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
}
use ksocket::KSocket;
// ANCHOR_END: ksocket

// ANCHOR: kthread
mod kthread {
    use super::*;

    /// A kernel thread running `f(&mut data, ..)`: told to stop, and waited
    /// for, when the handle is dropped.
    ///
    /// The handle owns `data`, boxed so that it stays in one place, and frees
    /// it only once the thread has ended; until then only the thread uses it.
    /// So a thread never outlives what it works with, whatever order its
    /// owner's fields are dropped in, and `T: 'static` keeps `data` from
    /// borrowing anything that could go first. One rule is left to the
    /// module: every handle is dropped before its exit ends. A leaked one
    /// (`mem::forget` is safe) leaves its thread running code that unloading
    /// frees; the kernel crate's registrations have the same limit.
    pub(super) struct KThread<T> {
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
        pub(super) fn start(name: &CStr, f: fn(&mut T, &ThisThread), data: T) -> Result<Self> {
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

    // ANCHOR_END: kthread

    impl<T> Drop for KThread<T> {
        fn drop(&mut self) {
            // EXERCISE: Stop the thread and wait for it (the shim's `kecho_thread_stop`), and only then free the job, which the thread may use until it has returned.
            // HINT: The order is the whole point: `data` is the thread's until it has returned; `kecho_thread_stop` interrupts its waits and returns only once it has. Both calls are `unsafe`: prove each contract (kecho_shim.h, and `KBox::from_raw`'s).
            // HINT: `unsafe { kecho_thread_stop(self.task) };` then `drop(unsafe { KBox::from_raw(self.job) });`.
            // STUB: let _ = (self.task, self.job);
            // SAFETY: `kecho_thread_stop` needs a task from a successful
            // `kecho_thread_start`, stopped once: `start` made `self` only on
            // success, and a handle is dropped once.
            unsafe { kecho_thread_stop(self.task) };
            // SAFETY: `job` comes from `KBox::into_raw` in `start` and is freed
            // only here. Its only other user, the thread, has returned or will
            // never run: `kecho_thread_stop` has returned (its contract).
            drop(unsafe { KBox::from_raw(self.job) });
            // END EXERCISE
        }
    }

    // ANCHOR: kthread_rest

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
    /// makes one (its field is private to this module), on a kernel thread
    /// `KThread::start` started, and lends it to the thread's function; it
    /// cannot leave that thread (it is not `Sync`).
    pub(super) struct ThisThread(PhantomData<*mut ()>);

    impl ThisThread {
        /// Whether the thread was told to stop (`kthread_should_stop()`).
        pub(super) fn should_stop(&self) -> bool {
            // SAFETY: `kthread_should_stop()` reads the kthread data of the
            // current task, which must be a kernel thread: a `ThisThread` is
            // only ever on one, since only `thread_main` can make one (the
            // field is private to this module) and it cannot be sent to
            // another task.
            unsafe { bindings::kthread_should_stop() }
        }

        /// Sleeps for `ms` milliseconds, or until the thread is told to stop.
        pub(super) fn pause(&self, ms: u32) {
            // SAFETY: `msleep_interruptible()` has no precondition beyond a
            // context that may sleep, like the safe `fsleep()`; thread
            // functions run in process context.
            unsafe { bindings::msleep_interruptible(ms) };
        }
    }
}
use kthread::{KThread, ThisThread};
// ANCHOR_END: kthread_rest

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
                // ANCHOR_END: udp_loop
                // EXERCISE: When the `upper` parameter is set, upper-case the ASCII letters of the `n` bytes received, before they are echoed.
                // HINT: A parameter's value is `module_parameters::NAME.value()`; the bytes are `buf[..n]`, and a datagram need not be text: touch only ASCII letters.
                // HINT: `if module_parameters::upper.value() { buf[..n].make_ascii_uppercase(); }`
                if module_parameters::upper.value() {
                    buf[..n].make_ascii_uppercase();
                }
                // END EXERCISE
                // EXERCISE: Send the `n` bytes received back to `peer` and count the datagram in `server.datagrams`; a failed send is logged with pr_warn! and the loop goes on.
                // HINT: `server.udp.send(&buf[..n], Some(&peer))` sends; `fetch_add(1, ordering::Relaxed)` counts. A kernel thread must not stop for one failed send.
                // HINT: Match on `server.udp.send(&buf[..n], Some(&peer))`: `Ok(_)` counts with `server.datagrams.fetch_add(1, ordering::Relaxed);`, `Err(e)` logs `pr_warn!("UDP echo of {n} bytes failed: {e:?}\n")`.
                match server.udp.send(&buf[..n], Some(&peer)) {
                    Ok(_) => {
                        server.datagrams.fetch_add(1, ordering::Relaxed);
                    }
                    Err(e) => pr_warn!("UDP echo of {n} bytes failed: {e:?}\n"),
                }
                // END EXERCISE
                // ANCHOR: udp_loop_rest
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
// ANCHOR_END: udp_loop_rest

// ANCHOR: tcp
/// Echoes one TCP client until it closes the connection or the thread is
/// told to stop (`EINTR`).
fn serve_client(server: &Server, client: &KSocket, buf: &mut [u8], this: &ThisThread) -> Result {
    // Asked on every turn: a receive that finds data queued returns it
    // without looking for the signal `kthread_stop()` flags, so a client
    // that keeps sending would otherwise keep this thread, and `rmmod`,
    // going for as long as it likes.
    while !this.should_stop() {
        // ANCHOR_END: tcp
        // EXERCISE: Receive into `buf`; at an orderly close (0 bytes) return Ok; else send all `n` bytes back, a send may take only some, and count them in `server.tcp_bytes`. Any error, an interrupted receive included, is returned.
        // HINT: `client.recv(buf, None)?` waits for data (`kthread_stop()` interrupts it: `?` returns the error). `client.send(data, None)` returns how many bytes it took: loop until all `n` are sent.
        // HINT: `let n = client.recv(buf, None)?; if n == 0 { return Ok(()); } let mut sent = 0; while sent < n { sent += client.send(&buf[sent..n], None)?; }` then `server.tcp_bytes.fetch_add(n as u64, ordering::Relaxed);`
        // STUB: let _ = (server, client, buf);
        // STUB: return Ok(());
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
        // END EXERCISE
    }
    Err(EINTR)
}

// ANCHOR: clients
/// What a client's thread works with.
struct Client {
    server: Arc<Server>,
    /// The connection; the thread closes it (`take`s and drops it) when it
    /// is done with it.
    sock: Option<KSocket>,
    buf: KVVec<u8>,
    /// Set by the thread as its last act.
    left: Arc<Atomic<bool>>,
}

/// A client's thread: echo until the client leaves or the thread is told
/// to stop.
fn client_main(client: &mut Client, this: &ThisThread) {
    if let Some(sock) = client.sock.take() {
        match serve_client(&client.server, &sock, &mut client.buf, this) {
            Ok(()) => pr_info!("TCP client left\n"),
            Err(e) => pr_info!("TCP client dropped: {e:?}\n"),
        }
        // Dropping `sock` closes the connection.
    }
    client.left.store(true, ordering::Release);
}

/// A client's thread, and whether it is done. Dropping it stops the
/// thread, or only collects it if it is done.
struct ClientThread {
    _thread: KThread<Client>,
    left: Arc<Atomic<bool>>,
}

/// Starts a thread that serves `sock`.
fn start_client(server: &Arc<Server>, sock: KSocket) -> Result<ClientThread> {
    let left = Arc::new(Atomic::new(false), GFP_KERNEL)?;
    let client = Client {
        server: server.clone(),
        sock: Some(sock),
        buf: KVVec::from_elem(0, TCP_CHUNK, GFP_KERNEL)?,
        left: left.clone(),
    };
    Ok(ClientThread {
        _thread: KThread::start(c"kecho-client", client_main, client)?,
        left,
    })
}
// ANCHOR_END: clients

// ANCHOR: tcp_main
/// The TCP thread: accepts clients until told to stop, each served by a
/// thread of its own. It has no buffer of its own (`Worker::buf` is empty).
fn tcp_main(worker: &mut Worker, this: &ThisThread) {
    let server = &worker.server;
    // The clients' threads. The ones still here when this thread is told
    // to stop are stopped when this function returns and drops them.
    let mut clients: KVec<ClientThread> = KVec::new();
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
        // ANCHOR_END: tcp_main
        // EXERCISE: Serve `client` on a thread of its own (`start_client`) kept in `clients`, so that the next accept need not wait for it to leave: first collect the threads of clients that left, and turn a client away (drop it) when MAX_CLIENTS are served.
        // HINT: `clients.retain(|c| ...)` keeps the entries for which the closure is true; a `ClientThread` whose `left` is set (load with Acquire) is done, and dropping it only collects its thread.
        // HINT: `clients.retain(|c| !c.left.load(ordering::Acquire));`, then `start_client(server, client)` and `clients.push(thread, GFP_KERNEL)`; on any failure log with pr_warn! and go on: what is dropped (the client, the thread) closes and stops itself.
        // STUB: let _ = (&mut clients, start_client, client);
        clients.retain(|c| !c.left.load(ordering::Acquire));
        if clients.len() >= MAX_CLIENTS {
            pr_warn!("TCP client turned away: {MAX_CLIENTS} served already\n");
            continue;
        }
        match start_client(server, client) {
            Ok(thread) => {
                // A failed `push` drops `thread`, which stops it.
                if clients.push(thread, GFP_KERNEL).is_err() {
                    pr_warn!("TCP client turned away: no memory\n");
                }
            }
            // `client` went with the failed start, which closed it.
            Err(e) => pr_warn!("TCP client turned away: cannot start its thread: {e:?}\n"),
        }
        // END EXERCISE
        // ANCHOR: tcp_rest
    }
}
// ANCHOR_END: tcp_rest

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
        let tcp = start_thread(2, c"kecho-tcp", tcp_main, Worker::new(&server, 0)?)?;
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
