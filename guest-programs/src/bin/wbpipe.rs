// SPDX-License-Identifier: GPL-2.0

//! `wbpipe`: the user-space side of chapter 07's pipe checks. Each command
//! runs one scenario twice, on a real `pipe(2)` and on `/dev/wbpipe`, and
//! prints both outcomes side by side on one line: `ok: ...` when both are
//! what POSIX requires of a pipe, `FAIL: ...` otherwise. The real pipe is
//! shrunk to one page (`F_SETPIPE_SZ`, 4096 bytes), the size of wbpipe's
//! default buffer, so that both fill up at the same point. The exit status
//! is 1 when anything failed.
//!
//! ```text
//! wbpipe basic           a byte stream; EAGAIN; a blocked read wakes;
//!                        atomic non-blocking writes; EOF; EPIPE and SIGPIPE
//! wbpipe eof-all N       N readers asleep all see EOF when the last writer closes
//! wbpipe epipe-all N     N writers asleep all get EPIPE when the last reader closes
//! wbpipe atomic W N      W writers x N records of 4096 bytes: none torn
//! wbpipe signal          a signal interrupts a blocked read (EINTR) and a
//!                        blocked write (the count written so far)
//! ```

use std::ffi::CString;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DEVICE: &str = "/dev/wbpipe";
/// POSIX's PIPE_BUF on Linux, and the size both pipes are given.
const PIPE_BUF: usize = 4096;
/// How long a woken sleeper may take to return.
const DEADLINE: Duration = Duration::from_secs(2);

/// Whether any check failed.
static FAILED: AtomicBool = AtomicBool::new(false);

/// The two pipes a scenario runs on.
#[derive(Clone, Copy)]
enum Kind {
    /// `pipe(2)`.
    Pipe,
    /// `/dev/wbpipe`.
    Device,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EAGAIN => "EAGAIN".into(),
        libc::EPIPE => "EPIPE".into(),
        libc::EINTR => "EINTR".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::EBADF => "EBADF".into(),
        libc::EINVAL => "EINVAL".into(),
        e => format!("errno {e}"),
    }
}

/// A system call's result: a count, or the errno's name.
fn outcome(ret: isize) -> String {
    if ret < 0 {
        errno_name(errno())
    } else {
        ret.to_string()
    }
}

fn write(fd: i32, data: &[u8]) -> isize {
    // SAFETY: `data` is valid for reads of its length.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) }
}

fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// A read of up to `size` bytes: the bytes as a quoted string, `0` at the
/// end of the file, or the errno's name.
fn read_text(fd: i32, size: usize) -> String {
    let mut buf = vec![0u8; size];
    let n = read(fd, &mut buf);
    match n {
        0 => "0".into(),
        n if n < 0 => errno_name(errno()),
        n => format!("{:?}", String::from_utf8_lossy(&buf[..n as usize])),
    }
}

fn close(fd: i32) {
    // SAFETY: `fd` is an open descriptor of ours.
    unsafe { libc::close(fd) };
}

fn set_nonblocking(fd: i32) {
    // SAFETY: F_GETFL and F_SETFL take and return plain integers.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
}

/// A read end and a write end of a fresh pipe of `kind`.
fn ends(kind: Kind) -> Result<(i32, i32), String> {
    match kind {
        Kind::Pipe => {
            let mut fds = [0; 2];
            // SAFETY: `fds` is valid for writes of two descriptors.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
                return Err(format!("pipe2: {}", errno_name(errno())));
            }
            // SAFETY: F_SETPIPE_SZ takes an integer.
            let size = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, PIPE_BUF as i32) };
            if size != PIPE_BUF as i32 {
                return Err(format!("F_SETPIPE_SZ {PIPE_BUF}: {}", outcome(size as isize)));
            }
            Ok((fds[0], fds[1]))
        }
        Kind::Device => {
            let path = CString::new(DEVICE).expect("no NUL");
            let open = |flags| {
                // SAFETY: `path` is a valid NUL-terminated path.
                let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
                if fd < 0 {
                    Err(format!("cannot open {DEVICE}: {}", errno_name(errno())))
                } else {
                    Ok(fd)
                }
            };
            let r = open(libc::O_RDONLY)?;
            let w = open(libc::O_WRONLY)?;
            Ok((r, w))
        }
    }
}

/// Runs `scenario` on both pipes and prints one line: `ok` if both gave
/// `want`.
fn compare(what: &str, want: &str, mut scenario: impl FnMut(Kind) -> Result<String, String>) -> Result<(), String> {
    let pipe = scenario(Kind::Pipe)?;
    let device = scenario(Kind::Device)?;
    let good = pipe == want && device == want;
    let verdict = if good { "ok" } else { "FAIL" };
    println!("{verdict}: {what}: pipe {pipe}, wbpipe {device}");
    if !good {
        FAILED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// Whether thread `tid` of this process sleeps interruptibly in system
/// call `nr` within 5 s (from /proc: its state and its current system call).
fn asleep_in(tid: i32, nr: libc::c_long) -> bool {
    let task = format!("/proc/self/task/{tid}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("{task}/stat")).unwrap_or_default();
        let syscall = std::fs::read_to_string(format!("{task}/syscall")).unwrap_or_default();
        // The state is the first field after the command name's `)`.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("S") && syscall.split_whitespace().next() == Some(nr.to_string().as_str()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A thread blocked in a system call.
struct Sleeper {
    thread: JoinHandle<()>,
    done: mpsc::Receiver<String>,
}

impl Sleeper {
    /// Starts a thread that runs `op`, and returns once it sleeps in
    /// system call `nr`.
    fn start(nr: libc::c_long, op: impl FnOnce() -> String + Send + 'static) -> Result<Sleeper, String> {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).ok();
            done_tx.send(op()).ok();
        });
        let tid = tid_rx.recv().map_err(|_| "a sleeper thread died")?;
        if !asleep_in(tid, nr) {
            return Err(format!("thread {tid} never went to sleep in system call {nr}"));
        }
        Ok(Sleeper { thread, done })
    }

    /// Its outcome, if it has one by `deadline`; a sleeper still asleep is
    /// left behind (the process's exit ends it).
    fn outcome_by(&self, deadline: Instant) -> String {
        self.done.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| "still asleep".into())
    }

    /// Sends it SIGUSR1.
    fn signal(&self) {
        // SAFETY: the thread is not joined, so its pthread_t is valid.
        unsafe { libc::pthread_kill(self.thread.as_pthread_t(), libc::SIGUSR1) };
    }
}

extern "C" fn on_signal(_: libc::c_int) {}

/// SIGUSR1 gets a handler that does nothing, without SA_RESTART: an
/// interrupted system call fails with EINTR (or returns a partial count).
fn catch_sigusr1() {
    // SAFETY: a zeroed sigaction is valid, and the handler does nothing.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
}

/// Sets SIGPIPE's disposition (Rust's runtime starts with it ignored).
fn sigpipe_action(action: libc::sighandler_t) {
    // SAFETY: SIG_DFL and SIG_IGN are valid dispositions.
    unsafe { libc::signal(libc::SIGPIPE, action) };
}

/// Blocks SIGPIPE in the calling thread: a SIGPIPE sent to it stays pending.
fn block_sigpipe() {
    // SAFETY: the set is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Whether a SIGPIPE is pending for this thread; takes it if so.
fn take_sigpipe() -> bool {
    // SAFETY: the sets are initialised before use; a zero timeout only polls.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) == libc::SIGPIPE
    }
}

fn basic() -> Result<(), String> {
    compare("two writes are read back as one byte stream", "\"hello, pipe\"", |kind| {
        let (r, w) = ends(kind)?;
        write(w, b"hello, ");
        write(w, b"pipe");
        let got = read_text(r, 64);
        close(r);
        close(w);
        Ok(got)
    })?;
    compare("a non-blocking read of an empty pipe", "EAGAIN", |kind| {
        let (r, w) = ends(kind)?;
        set_nonblocking(r);
        let got = read_text(r, 64);
        close(r);
        close(w);
        Ok(got)
    })?;
    compare("a blocked read wakes when bytes come", "\"wake\"", |kind| {
        let (r, w) = ends(kind)?;
        let reader = Sleeper::start(libc::SYS_read, move || read_text(r, 64))?;
        write(w, b"wake");
        let got = reader.outcome_by(Instant::now() + DEADLINE);
        close(r);
        close(w);
        Ok(got)
    })?;
    compare("non-blocking writes: 10000 bytes into the empty pipe, then 4096 beside 1 byte", "4096, then EAGAIN", |kind| {
        let (r, w) = ends(kind)?;
        set_nonblocking(w);
        let long = outcome(write(w, &[b'a'; 10000]));
        read(r, &mut [0u8; PIPE_BUF]);
        write(w, b"b");
        let atomic = outcome(write(w, &[b'c'; PIPE_BUF]));
        close(r);
        close(w);
        Ok(format!("{long}, then {atomic}"))
    })?;
    compare("EOF after the last writer closed, once the bytes are read", "\"tail\", then 0, then 0", |kind| {
        let (r, w) = ends(kind)?;
        write(w, b"tail");
        close(w);
        let got = format!("{}, then {}, then {}", read_text(r, 64), read_text(r, 64), read_text(r, 64));
        close(r);
        Ok(got)
    })?;
    sigpipe_action(libc::SIG_DFL);
    block_sigpipe();
    compare("a write with no reader left", "EPIPE and SIGPIPE", |kind| {
        let (r, w) = ends(kind)?;
        close(r);
        let got = outcome(write(w, b"x"));
        let signal = if take_sigpipe() { "SIGPIPE" } else { "no SIGPIPE" };
        close(w);
        Ok(format!("{got} and {signal}"))
    })?;
    sigpipe_action(libc::SIG_IGN);
    Ok(())
}

/// `n` readers asleep in read; the last writer closes: each must return 0.
fn eof_all(n: usize) -> Result<(), String> {
    compare(&format!("{n} readers asleep when the last writer closed: readers that saw EOF"), &n.to_string(), |kind| {
        let (r, w) = ends(kind)?;
        let readers = (0..n).map(|_| Sleeper::start(libc::SYS_read, move || read_text(r, 64))).collect::<Result<Vec<_>, _>>()?;
        close(w);
        let deadline = Instant::now() + DEADLINE;
        let eof = readers.iter().filter(|s| s.outcome_by(deadline) == "0").count();
        // Readers still asleep keep `r` open until the process exits.
        close(r);
        Ok(eof.to_string())
    })
}

/// The pipe full and `n` writers asleep in write; the last reader closes:
/// each must fail with EPIPE.
fn epipe_all(n: usize) -> Result<(), String> {
    // Ignored, SIGPIPE is not delivered: EPIPE is all a writer sees.
    sigpipe_action(libc::SIG_IGN);
    compare(&format!("{n} writers asleep when the last reader closed: writers that got EPIPE"), &n.to_string(), |kind| {
        let (r, w) = ends(kind)?;
        if write(w, &[b'f'; PIPE_BUF]) != PIPE_BUF as isize {
            return Err(format!("filling the pipe: {}", errno_name(errno())));
        }
        let writers = (0..n).map(|_| Sleeper::start(libc::SYS_write, move || outcome(write(w, b"more")))).collect::<Result<Vec<_>, _>>()?;
        close(r);
        let deadline = Instant::now() + DEADLINE;
        let epipe = writers.iter().filter(|s| s.outcome_by(deadline) == "EPIPE").count();
        close(w);
        Ok(epipe.to_string())
    })
}

/// Record `seq` of writer `id`: its header (id, seq), then a byte that
/// depends on both, to the end.
fn record(id: u32, seq: u32) -> Vec<u8> {
    let mut rec = vec![(id * 131 + seq) as u8; PIPE_BUF];
    rec[..4].copy_from_slice(&id.to_le_bytes());
    rec[4..8].copy_from_slice(&seq.to_le_bytes());
    rec
}

/// `writers` threads write `each` records of PIPE_BUF bytes to the shared
/// write end; the main thread reads 1000 bytes at a time until EOF, then
/// cuts the stream into records: a record whose bytes are not all its own
/// was torn by another writer's.
fn atomic(writers: u32, each: u32) -> Result<(), String> {
    let mut complete = Vec::new();
    compare(&format!("{writers} writers x {each} records of {PIPE_BUF} bytes, read 1000 bytes at a time: torn records"), "0", |kind| {
        let (r, w) = ends(kind)?;
        let closer = std::thread::spawn(move || {
            std::thread::scope(|s| {
                for id in 0..writers {
                    s.spawn(move || {
                        for seq in 0..each {
                            let n = write(w, &record(id, seq));
                            if n != PIPE_BUF as isize {
                                println!("FAIL: a write of {PIPE_BUF} bytes: {}", outcome(n));
                                FAILED.store(true, Ordering::Relaxed);
                            }
                        }
                    });
                }
            });
            close(w);
        });
        let mut stream = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = read(r, &mut buf);
            if n <= 0 {
                break;
            }
            stream.extend_from_slice(&buf[..n as usize]);
        }
        closer.join().map_err(|_| "a writer panicked")?;
        close(r);
        let mut torn = 0;
        let mut next = vec![0u32; writers as usize];
        let mut in_order = stream.len() == (writers * each) as usize * PIPE_BUF;
        for rec in stream.chunks(PIPE_BUF) {
            let field = |at: usize| rec.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
            let (id, seq) = (field(0).unwrap_or(u32::MAX), field(4).unwrap_or(0));
            if id >= writers || rec != record(id, seq).as_slice() {
                torn += 1;
                continue;
            }
            in_order &= next[id as usize] == seq;
            next[id as usize] = seq + 1;
        }
        complete.push(in_order);
        Ok(torn.to_string())
    })?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let good = complete.iter().all(|b| *b);
    println!(
        "{}: every record arrived whole, once, in each writer's order: pipe {}, wbpipe {}",
        if good { "ok" } else { "FAIL" },
        yes(complete.first() == Some(&true)),
        yes(complete.get(1) == Some(&true)),
    );
    if !good {
        FAILED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

fn signal() -> Result<(), String> {
    catch_sigusr1();
    compare("a signal interrupts a blocked read", "EINTR", |kind| {
        let (r, w) = ends(kind)?;
        let reader = Sleeper::start(libc::SYS_read, move || read_text(r, 64))?;
        reader.signal();
        let got = reader.outcome_by(Instant::now() + DEADLINE);
        close(r);
        close(w);
        Ok(got)
    })?;
    compare(
        &format!("a signal interrupts a write of {} bytes blocked after the first {PIPE_BUF}", 3 * PIPE_BUF),
        &PIPE_BUF.to_string(),
        |kind| {
            let (r, w) = ends(kind)?;
            let writer = Sleeper::start(libc::SYS_write, move || outcome(write(w, &[b'w'; 3 * PIPE_BUF])))?;
            writer.signal();
            let got = writer.outcome_by(Instant::now() + DEADLINE);
            close(r);
            close(w);
            Ok(got)
        },
    )
}

fn run(args: &[String]) -> Result<(), String> {
    let num = |i: usize| -> Result<u32, String> {
        args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("argument {i} must be a number"))
    };
    match args.first().map(String::as_str) {
        Some("basic") => basic(),
        Some("eof-all") => eof_all(num(1)? as usize),
        Some("epipe-all") => epipe_all(num(1)? as usize),
        Some("atomic") => atomic(num(1)?, num(2)?),
        Some("signal") => signal(),
        _ => Err("usage: wbpipe basic | eof-all N | epipe-all N | atomic W N | signal".into()),
    }
}

pub(crate) fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Err(e) => {
            eprintln!("wbpipe: {e}");
            2
        }
        Ok(()) => i32::from(FAILED.load(Ordering::Relaxed)),
    };
    // Not a return from main: threads still asleep in a broken pipe would
    // not stop that; exit_group ends them.
    std::process::exit(code);
}
