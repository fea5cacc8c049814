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
//! `kthread_stop()` does it: it marks the thread as told to stop, flags a
//! pending signal on it and wakes it, so an interruptible wait such as a
//! socket receive or accept returns at once with `-ERESTARTSYS`; the thread
//! sees the module's `stopping` flag, leaves its loop, and `kthread_stop()`
//! returns once it has. Only then are the sockets released. The socket and
//! thread calls go through a C shim (`kecho_shim.c`); the unsafe code that
//! calls it lives in two small safe types, [`KSocket`] and [`KThread`].
//!
//! ```sh
//! insmod kecho.ko udp_port=7007 tcp_port=7008
//! wbnet udp 7007 hello      # udp 7007: `hello` echoed
//! rmmod kecho
//! ```

use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr::{null_mut, NonNull};

use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::Arc;

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
    },
}

/// The largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
const MAX_DATAGRAM: usize = 65507;
/// How much of a TCP stream is read at a time.
const TCP_CHUNK: usize = 4096;

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

/// `struct kecho_peer`: a datagram's sender, as the shim fills it in.
#[repr(C)]
#[derive(Default)]
struct Peer {
    raw: [u8; 16],
}

// The C shim's functions (kecho_shim.c): 0 or a count, or a negative errno.
extern "C" {
    fn kecho_udp_open(port: u16, res: *mut *mut Socket) -> c_int;
    fn kecho_tcp_listen(port: u16, res: *mut *mut Socket) -> c_int;
    fn kecho_accept(listener: *mut Socket, res: *mut *mut Socket) -> c_int;
    fn kecho_recv(sock: *mut Socket, buf: *mut c_void, len: usize, from: *mut Peer) -> c_int;
    fn kecho_send(sock: *mut Socket, buf: *const c_void, len: usize, to: *const Peer) -> c_int;
    fn kecho_release(sock: *mut Socket);
    fn kecho_thread_start(f: unsafe extern "C" fn(*mut c_void) -> c_int, data: *mut c_void, name: *const c_char, res: *mut *mut Task) -> c_int;
    fn kecho_thread_stop(task: *mut Task);
    fn kecho_wait_until_stopped();
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
struct KSocket(NonNull<Socket>);

// SAFETY: kernel sockets are not tied to the task that made them, and the
// socket layer locks internally.
unsafe impl Send for KSocket {}
// SAFETY: see `Send`: every method takes `&self` and the socket layer
// serialises what must be serialised.
unsafe impl Sync for KSocket {}

impl KSocket {
    /// Takes over a socket the shim made, if `ret` says it did.
    fn from_shim(ret: c_int, sock: *mut Socket) -> Result<KSocket> {
        to_result(ret)?;
        NonNull::new(sock).map(KSocket).ok_or(EINVAL)
    }

    /// A UDP socket bound to 127.0.0.1:`port`.
    fn udp(port: u16) -> Result<KSocket> {
        let mut sock = null_mut();
        // SAFETY: `sock` is a valid place for the shim to store the socket.
        let ret = unsafe { kecho_udp_open(port, &mut sock) };
        KSocket::from_shim(ret, sock)
    }

    /// A TCP socket listening on 127.0.0.1:`port`.
    fn tcp_listen(port: u16) -> Result<KSocket> {
        let mut sock = null_mut();
        // SAFETY: as in `udp`.
        let ret = unsafe { kecho_tcp_listen(port, &mut sock) };
        KSocket::from_shim(ret, sock)
    }

    /// Waits for a client.
    fn accept(&self) -> Result<KSocket> {
        let mut sock = null_mut();
        // SAFETY: `self.0` is a live socket (released only in `drop`).
        let ret = unsafe { kecho_accept(self.0.as_ptr(), &mut sock) };
        KSocket::from_shim(ret, sock)
    }

    /// Waits for data; `Ok(0)` is an empty datagram or an orderly TCP
    /// close. `from`, when given, gets the sender's address.
    fn recv(&self, buf: &mut [u8], from: Option<&mut Peer>) -> Result<usize> {
        let from = from.map_or(null_mut(), |p| p as *mut Peer);
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes and `from`
        // is null or a valid `Peer`, both for the whole call.
        to_result(unsafe { kecho_recv(self.0.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), from) })
    }

    /// Sends `data`, to `to` when given (UDP) or to the connected peer.
    fn send(&self, data: &[u8], to: Option<&Peer>) -> Result<usize> {
        let to = to.map_or(core::ptr::null(), |p| p as *const Peer);
        // SAFETY: `data` is valid for reads of `data.len()` bytes and `to`
        // is null or a valid `Peer`, both for the whole call.
        to_result(unsafe { kecho_send(self.0.as_ptr(), data.as_ptr().cast(), data.len(), to) })
    }
}

impl Drop for KSocket {
    fn drop(&mut self) {
        // SAFETY: the socket is live and, as we own it, released only here.
        unsafe { kecho_release(self.0.as_ptr()) };
    }
}
// ANCHOR_END: ksocket

// ANCHOR: kthread
/// A kernel thread running `f(server)`, stopped and waited for when dropped.
struct KThread(NonNull<Task>);

// SAFETY: a thread handle may be stopped from any task.
unsafe impl Send for KThread {}
// SAFETY: `KThread` gives no access to the task through `&self`.
unsafe impl Sync for KThread {}

impl KThread {
    /// Starts `f` on `server` in a new kernel thread called `name`.
    ///
    /// The thread borrows `server` without a count: whoever owns the
    /// `KThread` must keep `server` alive until it is dropped, which waits
    /// for `f` to return.
    fn start(name: &CStr, f: unsafe extern "C" fn(*mut c_void) -> c_int, server: &Arc<Server>) -> Result<KThread> {
        let mut task = null_mut();
        let data = Arc::as_ptr(server).cast_mut().cast();
        // SAFETY: `name` is a NUL-terminated string, `task` a valid place
        // for the result, and `data` outlives the thread (see above).
        let ret = unsafe { kecho_thread_start(f, data, name.as_ptr(), &mut task) };
        to_result(ret)?;
        NonNull::new(task).map(KThread).ok_or(EINVAL)
    }
}

impl Drop for KThread {
    fn drop(&mut self) {
        // SAFETY: the task was started by `start` and is stopped only here;
        // its function never returns before it is told to stop, so the task
        // is still there.
        unsafe { kecho_thread_stop(self.0.as_ptr()) };
    }
}
// ANCHOR_END: kthread

/// What the threads and the module share.
struct Server {
    udp: KSocket,
    listener: KSocket,
    /// Set before the threads are stopped: an interrupted wait means "stop".
    stopping: Atomic<bool>,
    datagrams: Atomic<u64>,
    tcp_bytes: Atomic<u64>,
}

/// Recovers the server a thread was started with.
///
/// # Safety
///
/// `data` is the pointer [`KThread::start`] passed, and the server outlives
/// the thread.
unsafe fn server<'a>(data: *mut c_void) -> &'a Server {
    // SAFETY: guaranteed by the caller.
    unsafe { &*data.cast::<Server>() }
}

// ANCHOR: udp_loop
/// The UDP thread: echo every datagram until the module stops.
///
/// # Safety
///
/// Started by [`KThread::start`] with a server that outlives it.
unsafe extern "C" fn udp_thread(data: *mut c_void) -> c_int {
    // SAFETY: guaranteed by the caller.
    let server = unsafe { server(data) };
    // One buffer for the largest datagram: 64 KiB from vmalloc, since it
    // need not be physically contiguous.
    let Ok(mut buf) = kernel::alloc::VVec::<u8>::from_elem(0, MAX_DATAGRAM, GFP_KERNEL) else {
        pr_err!("no memory for the UDP buffer\n");
        // SAFETY: called from this kernel thread.
        unsafe { kecho_wait_until_stopped() };
        return 0;
    };
    let mut peer = Peer::default();
    // Until the module stops: `kthread_stop()` interrupts the receive.
    while !server.stopping.load(ordering::Acquire) {
        match server.udp.recv(&mut buf, Some(&mut peer)) {
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
            // Interrupted: the loop's condition says whether to stop.
            Err(e) if e == ERESTARTSYS || e == EINTR => continue,
            Err(e) => {
                pr_warn!("UDP receive failed: {e:?}\n");
                break;
            }
        }
    }
    // SAFETY: called from this kernel thread.
    unsafe { kecho_wait_until_stopped() };
    0
}
// ANCHOR_END: udp_loop

// ANCHOR: tcp
/// Echoes one TCP client until it closes the connection or the module stops.
fn serve_client(server: &Server, client: &KSocket) -> Result {
    let mut buf = [0u8; TCP_CHUNK];
    loop {
        // An interrupted receive (the module stopping) returns the error.
        let n = client.recv(&mut buf, None)?;
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

/// The TCP thread: one client at a time, until the module stops.
///
/// # Safety
///
/// Started by [`KThread::start`] with a server that outlives it.
unsafe extern "C" fn tcp_thread(data: *mut c_void) -> c_int {
    // SAFETY: guaranteed by the caller.
    let server = unsafe { server(data) };
    while !server.stopping.load(ordering::Acquire) {
        let client = match server.listener.accept() {
            Ok(client) => client,
            Err(e) if e == ERESTARTSYS || e == EINTR => continue,
            Err(e) => {
                pr_warn!("TCP accept failed: {e:?}\n");
                break;
            }
        };
        pr_info!("TCP client connected\n");
        match serve_client(server, &client) {
            Ok(()) => pr_info!("TCP client left\n"),
            Err(e) => pr_info!("TCP client dropped: {e:?}\n"),
        }
        // Dropping `client` closes the connection.
    }
    // SAFETY: called from this kernel thread.
    unsafe { kecho_wait_until_stopped() };
    0
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

struct KEcho {
    server: Arc<Server>,
    /// `None` once stopped; stopped before `server` is let go.
    threads: Option<(KThread, KThread)>,
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
            Server { udp, listener, stopping: Atomic::new(false), datagrams: Atomic::new(0), tcp_bytes: Atomic::new(0) },
            GFP_KERNEL,
        )?;
        let udp = KThread::start(c"kecho-udp", udp_thread, &server)?;
        let tcp = KThread::start(c"kecho-tcp", tcp_thread, &server)?;
        pr_info!("UDP echo on 127.0.0.1:{udp_port}, TCP echo on 127.0.0.1:{tcp_port}\n");
        Ok(KEcho { server, threads: Some((udp, tcp)) })
    }
}
// ANCHOR_END: init

// ANCHOR: drop
impl Drop for KEcho {
    fn drop(&mut self) {
        let server = &self.server;
        // 1. Say why the threads will be interrupted...
        server.stopping.store(true, ordering::Release);
        // 2. ...then interrupt each and wait until it has finished
        // (dropping a KThread calls kthread_stop()).
        drop(self.threads.take());
        pr_info!(
            "stopped after echoing {} datagrams and {} TCP bytes\n",
            server.datagrams.load(ordering::Relaxed),
            server.tcp_bytes.load(ordering::Relaxed)
        );
        // 3. No thread is left: the sockets are released when `server` goes.
    }
}
// ANCHOR_END: drop
