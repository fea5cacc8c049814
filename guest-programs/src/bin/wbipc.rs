// SPDX-License-Identifier: GPL-2.0

//! `wbipc`: the user-space side of chapter 04's checks (and of one of
//! chapter 06's: `reread`). Each command drives
//! a device the way a real program would and prints one line per fact it
//! checked, `ok: ...` or `FAIL: ...`, with the exact error numbers; the exit
//! status is 1 when anything failed.
//!
//! ```text
//! wbipc mq-fifo                    messages come out whole and in order
//! wbipc mq-concurrent W R N        W writers x N messages, R readers
//! wbipc mq-errors CAPACITY         every error path of /dev/msgq
//! wbipc mq-wait                    a blocked reader wakes when a message comes
//! wbipc mq-poll                    a blocked poll() wakes when a message comes
//! wbipc mq-signal                  a signal interrupts a blocked read
//! wbipc mq-pass-short              a reader that cannot take the message passes
//!                                  its wakeup on to the next reader
//! wbipc mq-pass-signal             a reader (a writer) woken, then signalled
//!                                  before it ran: the message (the room) is used
//! wbipc shm PAGES                  mmap of /dev/kshm, both directions, errors
//! wbipc shm-race PAGES ROUNDS      mmap and munmap beside the ioctls, at once
//! wbipc reread FILE                read FILE three times through one open
//!                                  descriptor, seeking back to 0 each time
//! wbipc shm-hold FILE              map /dev/kshm, close it, create FILE, and
//!                                  keep the mapping until FILE is removed
//! ```

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MSGQ: &str = "/dev/msgq";
const KSHM: &str = "/dev/kshm";
const PAGE: usize = 4096;

/// Linux's `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u64, ty: u8, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((ty as u64) << 8) | nr
}
const MSGQ_IOC_STATS: u64 = ioc(2, b'q', 0x20, 7 * 8);
const MSGQ_IOC_FLUSH: u64 = ioc(0, b'q', 0x21, 0);
/// `struct kshm_range { u64 addr, len, value; }`: a range of our mapping.
#[repr(C)]
#[derive(Default)]
struct KshmRange {
    addr: u64,
    len: u64,
    value: u64,
}
const KSHM_IOC_CHECKSUM: u64 = ioc(3, b'k', 0x20, 24);
const KSHM_IOC_FILL: u64 = ioc(1, b'k', 0x21, 24);

/// Whether any check failed.
static FAILED: AtomicBool = AtomicBool::new(false);

fn check(what: &str, good: bool, detail: String) {
    if good {
        println!("ok: {what}{detail}");
    } else {
        println!("FAIL: {what}{detail}");
        FAILED.store(true, Ordering::Relaxed);
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> &'static str {
    match e {
        0 => "no error",
        libc::EAGAIN => "EAGAIN",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::ENOTTY => "ENOTTY",
        libc::EINTR => "EINTR",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        _ => "another error",
    }
}

/// Checks that a call returning -1 failed with `want`.
fn expect_errno(what: &str, ret: isize, want: i32) {
    let got = if ret < 0 { errno() } else { 0 };
    check(what, ret < 0 && got == want, format!(": {} (wanted {})", errno_name(got), errno_name(want)));
}

fn open(path: &str, flags: i32) -> Result<i32, String> {
    let c = CString::new(path).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(format!("cannot open {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(fd)
}

fn write(fd: i32, data: &[u8]) -> isize {
    // SAFETY: `data` is valid for reads of its length.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) }
}

fn read(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn read_message(fd: i32) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; 4096];
    let n = read(fd, &mut buf);
    if n < 0 {
        return Err(errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn close(fd: i32) {
    // SAFETY: `fd` is an open descriptor of ours.
    unsafe { libc::close(fd) };
}

fn mq_fifo() -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR)?;
    let messages: [&[u8]; 3] = [b"first", b"second, longer", b"3"];
    for m in messages {
        write(fd, m);
    }
    let got: Vec<Vec<u8>> = (0..3).map(|_| read_message(fd).unwrap_or_default()).collect();
    let same = got.iter().zip(messages).all(|(g, m)| g == m);
    check(
        "three messages read back whole and in order",
        same,
        format!(": {:?}", got.iter().map(|g| String::from_utf8_lossy(g).to_string()).collect::<Vec<_>>()),
    );
    close(fd);
    Ok(())
}

fn mq_concurrent(writers: usize, readers: usize, each: usize) -> Result<(), String> {
    let total = writers * each;
    let claimed = AtomicUsize::new(0);
    let seen: Mutex<Vec<(usize, usize, usize)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            s.spawn(move || {
                let fd = open(MSGQ, libc::O_WRONLY).expect("open");
                for n in 0..each {
                    let m = format!("{w}:{n}");
                    if write(fd, m.as_bytes()) != m.len() as isize {
                        check("a blocking write", false, format!(": {}", errno_name(errno())));
                    }
                }
                close(fd);
            });
        }
        for r in 0..readers {
            let (claimed, seen) = (&claimed, &seen);
            s.spawn(move || {
                let fd = open(MSGQ, libc::O_RDONLY).expect("open");
                // Claim a message before reading it, so no reader blocks
                // on a queue that will stay empty.
                while claimed.fetch_add(1, Ordering::SeqCst) < total {
                    let m = read_message(fd).map(|m| String::from_utf8_lossy(&m).to_string()).unwrap_or_default();
                    if let Some((w, n)) = m.split_once(':').and_then(|(w, n)| Some((w.parse().ok()?, n.parse().ok()?))) {
                        seen.lock().unwrap().push((r, w, n));
                    } else {
                        check("a message of the form W:N", false, format!(": got `{m}`"));
                    }
                }
                close(fd);
            });
        }
    });
    let seen = seen.into_inner().unwrap();
    let mut per_writer: HashMap<usize, Vec<usize>> = HashMap::new();
    for (_, w, n) in &seen {
        per_writer.entry(*w).or_default().push(*n);
    }
    let complete = (0..writers).all(|w| {
        let mut got = per_writer.get(&w).cloned().unwrap_or_default();
        got.sort_unstable();
        got == (0..each).collect::<Vec<_>>()
    });
    check(
        &format!("{writers} writers x {each} messages, {readers} readers: every message received exactly once"),
        complete && seen.len() == total,
        format!(" ({} received in {} ms)", seen.len(), started.elapsed().as_millis()),
    );
    let ordered = (0..readers).all(|r| {
        (0..writers).all(|w| {
            let ns: Vec<usize> = seen.iter().filter(|(rr, ww, _)| *rr == r && *ww == w).map(|(_, _, n)| *n).collect();
            ns.windows(2).all(|p| p[0] < p[1])
        })
    });
    check("each reader saw each writer's messages in the order written", ordered, String::new());
    Ok(())
}

fn stats(fd: i32) -> [u64; 7] {
    let mut s = [0u64; 7];
    // SAFETY: `s` is valid for writes of the 56 bytes the ioctl copies.
    unsafe { libc::ioctl(fd, MSGQ_IOC_STATS as _, s.as_mut_ptr()) };
    s
}

fn mq_errors(capacity: usize) -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR | libc::O_NONBLOCK)?;
    let mut buf = [0u8; 64];
    expect_errno("a non-blocking read of an empty queue", read(fd, &mut buf), libc::EAGAIN);
    let (_, revents) = poll(fd, libc::POLLIN | libc::POLLOUT, 0);
    check("poll() reports the empty queue writable, not readable", revents == libc::POLLOUT, format!(": {}", mask_name(revents)));
    expect_errno("a 4097-byte message", write(fd, &[b'x'; 4097]), libc::EMSGSIZE);
    expect_errno("an empty message", write(fd, b""), libc::EINVAL);
    let accepted = (0..capacity).filter(|_| write(fd, b"twelve bytes") == 12).count();
    check(&format!("the queue takes {capacity} messages"), accepted == capacity, format!(": {accepted} accepted"));
    let (_, revents) = poll(fd, libc::POLLIN | libc::POLLOUT, 0);
    check("poll() reports the full queue readable, not writable", revents == libc::POLLIN, format!(": {}", mask_name(revents)));
    expect_errno("a non-blocking write to a full queue", write(fd, b"one more"), libc::EAGAIN);
    expect_errno("a read into a 4-byte buffer (the message stays)", read(fd, &mut buf[..4]), libc::EMSGSIZE);
    // SAFETY: the address is deliberately bad: the kernel must refuse it.
    let bad_read = unsafe { libc::read(fd, 8 as *mut libc::c_void, 64) };
    expect_errno("a read into a bad pointer (the message stays)", bad_read, libc::EFAULT);
    let s = stats(fd);
    check(
        "MSGQ_IOC_STATS reports the queue",
        s[0] == capacity as u64 && s[1] == capacity as u64 && s[4] == 1 && s[5] == 2,
        format!(": queued {} capacity {} written {} read {} full {} bad size {} flushed {}", s[0], s[1], s[2], s[3], s[4], s[5], s[6]),
    );
    // SAFETY: no argument is read.
    let flushed = unsafe { libc::ioctl(fd, MSGQ_IOC_FLUSH as _) };
    check("MSGQ_IOC_FLUSH empties the queue", flushed == capacity as i32 && stats(fd)[0] == 0, format!(": {flushed} flushed"));
    // SAFETY: the address is deliberately bad.
    let bad_write = unsafe { libc::write(fd, 8 as *const libc::c_void, 16) };
    expect_errno("a write from a bad pointer", bad_write, libc::EFAULT);
    // SAFETY: the address is deliberately bad.
    let bad_stats = unsafe { libc::ioctl(fd, MSGQ_IOC_STATS as _, 8usize) };
    expect_errno("MSGQ_IOC_STATS to a bad pointer", bad_stats as isize, libc::EFAULT);
    // SAFETY: an unknown command; no argument is used.
    let unknown = unsafe { libc::ioctl(fd, ioc(0, b'q', 99, 0) as _) };
    expect_errno("an unknown ioctl", unknown as isize, libc::ENOTTY);
    close(fd);
    Ok(())
}

/// `poll()` on `fd` for `events`; returns (poll's result, revents).
fn poll(fd: i32, events: i16, timeout_ms: i32) -> (i32, i16) {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd.
    let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    (ret, pfd.revents)
}

fn mask_name(revents: i16) -> String {
    let names: Vec<&str> = [(libc::POLLIN, "POLLIN"), (libc::POLLOUT, "POLLOUT"), (libc::POLLERR, "POLLERR"), (libc::POLLHUP, "POLLHUP")]
        .iter()
        .filter(|(bit, _)| revents & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join("|")
    }
}

/// A thread blocks in poll() for POLLIN on the empty queue, and must wake
/// when a message is written (and sleep, not spin, until then).
fn mq_poll() -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR)?;
    flush(fd);
    let (tid_tx, tid_rx) = mpsc::channel();
    let poller = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).ok();
        let (ret, revents) = poll(fd, libc::POLLIN, 5000);
        (ret, revents, Instant::now())
    });
    let tid = tid_rx.recv().map_err(|_| "the poller died")?;
    check("a poll() on the empty queue sleeps", asleep_in(tid, libc::SYS_poll), String::new());
    let sent = Instant::now();
    write(fd, b"event");
    let (ret, revents, woke) = poller.join().map_err(|_| "the poller panicked")?;
    let after = woke.saturating_duration_since(sent);
    check(
        "a blocked poll() wakes when a message comes, with POLLIN, within 1 s",
        ret == 1 && revents == libc::POLLIN && after <= Duration::from_secs(1),
        format!(": poll returned {ret} with {} after {} ms", mask_name(revents), after.as_millis()),
    );
    flush(fd);
    close(fd);
    Ok(())
}

fn mq_wait() -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR)?;
    // The message is written only once the reader sleeps in read(), in
    // either state (mq-signal checks that a signal interrupts it): a read
    // that does not wait for it fails to start here.
    let reader = Sleeper::start_in(false, libc::SYS_read, &["S", "D"], move || read_outcome(fd, 4096))?;
    let written = Instant::now();
    write(fd, b"event");
    // No deadline: a reader never woken is a hang, for the harness to name.
    let got = reader.done.recv().ok();
    check(
        "a blocked reader slept until the message came, then woke",
        got == Some(Ok("event".to_string())),
        format!(": woke after {} ms with {}", written.elapsed().as_millis(), show(&got)),
    );
    close(fd);
    Ok(())
}

extern "C" fn on_signal(_: libc::c_int) {}

fn mq_signal() -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR)?;
    catch_sigusr1();
    // The guest kernel has no POSIX timers (no alarm()): a helper thread
    // sends the signal to this thread once it sleeps in read() (or after
    // 5 s, if it never does).
    // SAFETY: pthread_self and gettid have no preconditions.
    let (me, my_tid) = unsafe { (libc::pthread_self(), libc::gettid()) };
    std::thread::spawn(move || {
        if !waits_in(my_tid, libc::SYS_read, &["S", "D"]) {
            println!("note: the read was not seen asleep within 5 s; the signal goes now");
        }
        // SAFETY: pthread_kill needs a thread ID that is still valid:
        // `me` is the main thread's, valid while the process runs (its
        // return from main ends the process, this thread with it).
        unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
    });
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let ret = read(fd, &mut buf);
    let e = if ret < 0 { errno() } else { 0 };
    check(
        "a signal interrupts a blocked read",
        ret < 0 && e == libc::EINTR,
        format!(": {} after {} ms", errno_name(e), started.elapsed().as_millis()),
    );
    close(fd);
    Ok(())
}

/// What a reader or writer thread ended with: the message it read (or how
/// many bytes it wrote), or an errno.
type Outcome = Result<String, i32>;

fn show(outcome: &Option<Outcome>) -> String {
    match outcome {
        None => "still asleep".into(),
        Some(Ok(m)) => format!("Ok({m:?})"),
        Some(Err(e)) => errno_name(*e).into(),
    }
}

/// A thread blocked in a read or write of /dev/msgq.
struct Sleeper {
    thread: JoinHandle<()>,
    done: mpsc::Receiver<Outcome>,
}

impl Sleeper {
    /// Starts a thread that runs `op` (pinned to CPU 0 if `pin`), and
    /// returns once it sleeps interruptibly in system call `nr`, so that
    /// sleepers queue up in the order they are started.
    fn start(pin: bool, nr: libc::c_long, op: impl FnOnce() -> Outcome + Send + 'static) -> Result<Sleeper, String> {
        Sleeper::start_in(pin, nr, &["S"], op)
    }

    /// [`Sleeper::start`], returning once the thread is in system call
    /// `nr` in one of the scheduler states `states` (see [`waits_in`]).
    fn start_in(pin: bool, nr: libc::c_long, states: &[&str], op: impl FnOnce() -> Outcome + Send + 'static) -> Result<Sleeper, String> {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            if pin && !pin_to_cpu0() {
                check("pinning a thread to CPU 0", false, format!(": {}", std::io::Error::last_os_error()));
            }
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).ok();
            done_tx.send(op()).ok();
        });
        let tid = tid_rx.recv().map_err(|_| "a sleeper thread died")?;
        if !waits_in(tid, nr, states) {
            return Err(format!("thread {tid} never went to sleep in system call {nr}"));
        }
        Ok(Sleeper { thread, done })
    }

    /// Its outcome, if it has one by `deadline`.
    fn outcome_by(&self, deadline: Instant) -> Option<Outcome> {
        self.done.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
    }

    /// Sends it SIGUSR1.
    fn signal(&self) {
        // SAFETY: the thread is not joined yet, so its pthread_t is valid.
        unsafe { libc::pthread_kill(self.thread.as_pthread_t(), libc::SIGUSR1) };
    }
}

/// Whether thread `tid` of this process sleeps interruptibly in system
/// call `nr` within 5 s (from /proc: its state and its current system call).
fn asleep_in(tid: i32, nr: libc::c_long) -> bool {
    waits_in(tid, nr, &["S"])
}

/// Whether thread `tid` of this process is in system call `nr`, in one of
/// the scheduler states `states` (`S`: asleep, interruptibly; `D`: not),
/// within 5 s.
fn waits_in(tid: i32, nr: libc::c_long, states: &[&str]) -> bool {
    let task = format!("/proc/self/task/{tid}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("{task}/stat")).unwrap_or_default();
        let syscall = std::fs::read_to_string(format!("{task}/syscall")).unwrap_or_default();
        // The state is the first field after the command name's `)`.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if state.is_some_and(|state| states.contains(&state)) && syscall.split_whitespace().next() == Some(nr.to_string().as_str()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn pin_to_cpu0() -> bool {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it,
    // and sched_setaffinity reads it (0: the calling thread).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Makes the calling thread real-time (SCHED_FIFO) or ordinary again.
fn real_time(on: bool) -> bool {
    let param = libc::sched_param { sched_priority: i32::from(on) };
    let policy = if on { libc::SCHED_FIFO } else { libc::SCHED_OTHER };
    // SAFETY: `param` is valid for reads; 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

fn catch_sigusr1() {
    // SAFETY: a zeroed sigaction is valid; the handler does nothing, and
    // SA_RESTART is not set, so an interrupted call fails with EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
}

fn flush(fd: i32) {
    // SAFETY: no argument is read.
    unsafe { libc::ioctl(fd, MSGQ_IOC_FLUSH as _) };
}

fn read_outcome(fd: i32, size: usize) -> Outcome {
    let mut buf = vec![0u8; size];
    let n = read(fd, &mut buf);
    if n < 0 {
        return Err(errno());
    }
    Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

fn write_outcome(fd: i32, data: &[u8]) -> Outcome {
    let n = write(fd, data);
    if n < 0 {
        return Err(errno());
    }
    Ok(n.to_string())
}

/// How long a sleeper may take to get what it was woken for.
const DEADLINE: Duration = Duration::from_secs(2);

/// Two readers asleep; the first (woken first: waits are exclusive and
/// FIFO) has a buffer too short for the message. It must pass its wakeup
/// on, or the second sleeps on beside a queued message.
fn mq_pass_short() -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR)?;
    flush(fd);
    let short = Sleeper::start(false, libc::SYS_read, move || read_outcome(fd, 4))?;
    let long = Sleeper::start(false, libc::SYS_read, move || read_outcome(fd, 4096))?;
    write(fd, b"event");
    let deadline = Instant::now() + DEADLINE;
    let (first, second) = (short.outcome_by(deadline), long.outcome_by(deadline));
    check(
        "the first reader (a 4-byte buffer) is woken for the 5-byte message",
        first == Some(Err(libc::EMSGSIZE)),
        format!(": {}", show(&first)),
    );
    check("the second reader gets the message within 2 s", second == Some(Ok("event".into())), format!(": {}", show(&second)));
    if second.is_none() {
        // The reader is stuck in the kernel: leave it to exit().
        return Ok(());
    }
    flush(fd);
    close(fd);
    Ok(())
}

/// A sleeper is woken, and signalled before it can run: this thread is
/// real-time on the sleeper's only CPU, so the sleeper runs only once this
/// thread has both woken it and signalled it. It must still use what it
/// was woken for (or pass the wakeup on): else the other sleeper sleeps on
/// beside a message (or room) nobody takes.
fn mq_pass_signal() -> Result<(), String> {
    catch_sigusr1();
    let fd = open(MSGQ, libc::O_RDWR)?;
    let nonblocking = open(MSGQ, libc::O_RDWR | libc::O_NONBLOCK)?;
    flush(fd);

    // Readers.
    let first = Sleeper::start(true, libc::SYS_read, move || read_outcome(fd, 4096))?;
    let second = Sleeper::start(false, libc::SYS_read, move || read_outcome(fd, 4096))?;
    if !pin_to_cpu0() || !real_time(true) {
        return Err(format!("cannot run real-time on CPU 0: {}", std::io::Error::last_os_error()));
    }
    write(fd, b"event");
    first.signal();
    real_time(false);
    let what = "a reader woken for a message and signalled before it ran: the message is read within 2 s";
    match judge_woken_then_signalled(&first, &second, "event", what, "reader") {
        None => return Ok(()),
        Some(true) => {}
        Some(false) => {
            write(fd, b"release");
            if second.outcome_by(Instant::now() + DEADLINE).is_none() {
                return Err("the second reader did not wake".into());
            }
        }
    }

    // Writers, on a full queue.
    flush(fd);
    let capacity = stats(fd)[1] as usize;
    for _ in 0..capacity {
        write(nonblocking, b"fill");
    }
    let first = Sleeper::start(true, libc::SYS_write, move || write_outcome(fd, b"A"))?;
    let second = Sleeper::start(false, libc::SYS_write, move || write_outcome(fd, b"B"))?;
    real_time(true);
    let mut buf = [0u8; 64];
    read(nonblocking, &mut buf);
    first.signal();
    real_time(false);
    let what = "a writer woken for room and signalled before it ran: the room is used within 2 s";
    match judge_woken_then_signalled(&first, &second, "1", what, "writer") {
        None => return Ok(()),
        Some(true) => {}
        Some(false) => {
            flush(fd);
            if second.outcome_by(Instant::now() + DEADLINE).is_none() {
                return Err("the second writer did not wake".into());
            }
        }
    }
    flush(fd);
    close(nonblocking);
    close(fd);
    Ok(())
}

/// After the first of two sleepers was woken and then signalled: checks
/// that one of them got `expected` within the deadline (printing `what`).
/// None: neither did (the check failed); Some(second finished).
fn judge_woken_then_signalled(first: &Sleeper, second: &Sleeper, expected: &str, what: &str, who: &str) -> Option<bool> {
    let deadline = Instant::now() + DEADLINE;
    let wanted = Some(Ok(expected.to_string()));
    let a = first.outcome_by(deadline);
    let b = if a == wanted { second.done.try_recv().ok() } else { second.outcome_by(deadline) };
    let done = a == wanted || b == wanted;
    check(what, done, format!(" (first {who}: {}, second: {})", show(&a), show(&b)));
    done.then_some(b.is_some())
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

fn map(fd: i32, len: usize, prot: i32, flags: i32, offset: i64) -> Result<*mut u8, i32> {
    // SAFETY: a fresh mapping chosen by the kernel; nothing is overwritten.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p.cast())
    }
}

/// Runs a KSHM ioctl on `len` bytes of our mapping at `addr`; returns its
/// result and the range's `value` after it.
fn kshm_ioctl(fd: i32, cmd: u64, addr: *mut u8, len: usize, value: u64) -> (i32, u64) {
    let mut range = KshmRange { addr: addr as u64, len: len as u64, value };
    // SAFETY: `range` is valid for the 24 bytes the ioctl reads and writes.
    let ret = unsafe { libc::ioctl(fd, cmd as _, &mut range) };
    (ret, range.value)
}

fn pattern_at(seed: usize, i: usize) -> u8 {
    ((seed + i) % 251) as u8
}

fn shm(pages: usize) -> Result<(), String> {
    let len = pages * PAGE;
    let fd = open(KSHM, libc::O_RDWR)?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let p = map(fd, len, rw, libc::MAP_SHARED, 0).map_err(|e| format!("mmap: {}", errno_name(e)))?;
    let q = map(fd, len, rw, libc::MAP_SHARED, 0).map_err(|e| format!("a second mmap: {}", errno_name(e)))?;
    // SAFETY: the mapping is `len` bytes, readable and writable, and ours.
    let mem = unsafe { std::slice::from_raw_parts_mut(p, len) };
    for (i, b) in mem.iter_mut().enumerate() {
        *b = (i * 7 % 256) as u8;
    }
    let (_, sum) = kshm_ioctl(fd, KSHM_IOC_CHECKSUM, q, len, 0);
    let want = u64::from(fnv1a(mem));
    check(
        "the module reads through a second mapping the bytes written through the first",
        sum == want,
        format!(": checksum {sum:08x}, expected {want:08x}"),
    );
    kshm_ioctl(fd, KSHM_IOC_FILL, q, len, 5);
    let first_bad = mem.iter().enumerate().find(|(i, b)| **b != pattern_at(5, *i)).map(|(i, _)| i);
    check(
        "the first mapping shows the bytes the module wrote through the second",
        first_bad.is_none(),
        first_bad.map(|i| format!(": differs at byte {i}")).unwrap_or_default(),
    );
    // SAFETY: `p` is mapped for `len` bytes.
    let exec = unsafe { libc::mprotect(p.cast(), len, libc::PROT_READ | libc::PROT_EXEC) };
    expect_errno("making the mapping executable", exec as isize, libc::EACCES);
    // SAFETY: `p` and `q` are our mappings of `len` bytes, unmapped once.
    unsafe {
        libc::munmap(p.cast(), len);
        libc::munmap(q.cast(), len);
    }

    let refused = |what: &str, fd: i32, len: usize, prot: i32, flags: i32, offset: i64, want: i32| {
        let ret = match map(fd, len, prot, flags, offset) {
            Ok(p) => {
                // SAFETY: unmapping what was just mapped.
                unsafe { libc::munmap(p.cast(), len) };
                0
            }
            Err(e) => {
                // SAFETY: only restores errno for `expect_errno`.
                unsafe { *libc::__errno_location() = e };
                -1
            }
        };
        expect_errno(what, ret, want);
    };
    refused("a mapping one page larger than the buffer", fd, len + PAGE, rw, libc::MAP_SHARED, 0, libc::EINVAL);
    refused("a mapping at an offset", fd, PAGE, rw, libc::MAP_SHARED, PAGE as i64, libc::EINVAL);
    refused("a private mapping", fd, PAGE, rw, libc::MAP_PRIVATE, 0, libc::EINVAL);
    // SAFETY: no argument is used.
    let unknown = unsafe { libc::ioctl(fd, ioc(0, b'k', 99, 0) as _) };
    expect_errno("an unknown ioctl", unknown as isize, libc::ENOTTY);
    // SAFETY: the address is deliberately bad.
    let bad = unsafe { libc::ioctl(fd, KSHM_IOC_CHECKSUM as _, 8usize) };
    expect_errno("KSHM_IOC_CHECKSUM to a bad pointer", bad as isize, libc::EFAULT);
    let mut scratch = vec![0u8; len + 1];
    let (too_long, _) = kshm_ioctl(fd, KSHM_IOC_CHECKSUM, scratch.as_mut_ptr(), len + 1, 0);
    expect_errno("KSHM_IOC_CHECKSUM of a range longer than the buffer", too_long as isize, libc::EINVAL);
    close(fd);

    let ro = open(KSHM, libc::O_RDONLY)?;
    refused("a writable shared mapping of a read-only file", ro, PAGE, rw, libc::MAP_SHARED, 0, libc::EACCES);
    match map(ro, len, libc::PROT_READ, libc::MAP_SHARED, 0) {
        Err(e) => check("a read-only shared mapping of a read-only file", false, format!(": {}", errno_name(e))),
        Ok(r) => {
            // SAFETY: the mapping is `len` bytes, readable, and ours.
            let mem = unsafe { std::slice::from_raw_parts(r, len) };
            let first_bad = mem.iter().enumerate().find(|(i, b)| **b != pattern_at(5, *i)).map(|(i, _)| i);
            check(
                "a read-only shared mapping of a read-only file shows the module's bytes",
                first_bad.is_none(),
                first_bad.map(|i| format!(": differs at byte {i}")).unwrap_or_default(),
            );
            let (fill, _) = kshm_ioctl(ro, KSHM_IOC_FILL, r, len, 9);
            expect_errno("KSHM_IOC_FILL into the read-only mapping", fill as isize, libc::EFAULT);
            // SAFETY: `r` is mapped for `len` bytes.
            let write = unsafe { libc::mprotect(r.cast(), len, libc::PROT_READ | libc::PROT_WRITE) };
            expect_errno("making the read-only mapping writable", write as isize, libc::EACCES);
            // SAFETY: `r` is our mapping of `len` bytes, unmapped once.
            unsafe { libc::munmap(r.cast(), len) };
        }
    }
    close(ro);
    Ok(())
}

/// One thread maps and unmaps the device while another runs both ioctls
/// through a mapping of its own: what lockdep needs to see both orders of
/// any two locks the module and mmap take.
fn shm_race(pages: usize, rounds: usize) -> Result<(), String> {
    let len = pages * PAGE;
    let fd = open(KSHM, libc::O_RDWR)?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let errors = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..rounds {
                match map(fd, len, rw, libc::MAP_SHARED, 0) {
                    Ok(p) => {
                        // SAFETY: `p` is our mapping of `len` bytes; written
                        // once, then unmapped once.
                        unsafe {
                            p.add(round % len).write_volatile(round as u8);
                            libc::munmap(p.cast(), len);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        s.spawn(|| {
            let Ok(p) = map(fd, len, rw, libc::MAP_SHARED, 0) else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            for round in 0..rounds {
                if kshm_ioctl(fd, KSHM_IOC_CHECKSUM, p, len, 0).0 != 0 || kshm_ioctl(fd, KSHM_IOC_FILL, p, len, round as u64).0 != 0 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            // SAFETY: `p` is our mapping of `len` bytes, unmapped once.
            unsafe { libc::munmap(p.cast(), len) };
        });
    });
    let errors = errors.into_inner();
    check(
        &format!("{rounds} mmaps and munmaps beside {rounds} checksums and fills, at once"),
        errors == 0,
        format!(": {errors} errors in {} ms", started.elapsed().as_millis()),
    );
    close(fd);
    Ok(())
}

/// Maps the device, closes it, creates `file`, and keeps the mapping until
/// `file` is removed (at most 20 s).
fn shm_hold(file: &str) -> Result<(), String> {
    let fd = open(KSHM, libc::O_RDWR)?;
    let p = map(fd, PAGE, libc::PROT_READ, libc::MAP_SHARED, 0).map_err(|e| format!("mmap: {}", errno_name(e)))?;
    close(fd);
    println!("mapped, descriptor closed");
    std::fs::write(file, "").map_err(|e| format!("cannot create {file}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(file).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: `p` is our mapping of one page, unmapped once.
    unsafe { libc::munmap(p.cast(), PAGE) };
    println!("unmapped");
    Ok(())
}

/// Reads `path` three times through one descriptor, seeking back to the
/// start before each read, and prints every line as `read N: LINE`. A
/// seq_file runs its `show` again for each: what `show` prints must not
/// change because it ran.
fn reread(path: &str) -> Result<(), String> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    for n in 1..=3 {
        file.seek(std::io::SeekFrom::Start(0)).map_err(|e| format!("{path}: seek: {e}"))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| format!("{path}: read: {e}"))?;
        for line in text.lines() {
            println!("read {n}: {line}");
        }
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let num = |i: usize| -> Result<usize, String> {
        args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("argument {i} must be a number"))
    };
    match args.first().map(String::as_str) {
        Some("mq-fifo") => mq_fifo(),
        Some("mq-concurrent") => mq_concurrent(num(1)?, num(2)?, num(3)?),
        Some("mq-errors") => mq_errors(num(1)?),
        Some("mq-wait") => mq_wait(),
        Some("mq-poll") => mq_poll(),
        Some("mq-signal") => mq_signal(),
        Some("mq-pass-short") => mq_pass_short(),
        Some("mq-pass-signal") => mq_pass_signal(),
        Some("shm") => shm(num(1)?),
        Some("shm-race") => shm_race(num(1)?, num(2)?),
        Some("shm-hold") => shm_hold(args.get(1).ok_or("shm-hold needs a file name")?),
        Some("reread") => reread(args.get(1).ok_or("reread needs a file name")?),
        _ => Err("usage: wbipc mq-fifo | mq-concurrent W R N | mq-errors CAPACITY | mq-wait | mq-poll | mq-signal | mq-pass-short | mq-pass-signal | shm PAGES | shm-race PAGES ROUNDS | shm-hold FILE | reread FILE".into()),
    }
}

pub(crate) fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("wbipc: {e}");
        return std::process::ExitCode::from(2);
    }
    if FAILED.load(Ordering::Relaxed) {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
