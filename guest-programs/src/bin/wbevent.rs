// SPDX-License-Identifier: GPL-2.0

//! `wbevent`: the user-space side of chapter 07's checks of `/dev/wbevent`.
//! Each command prints one line per fact it checked, `ok: ...` or
//! `FAIL: ...`, with exact error names; the exit status is 1 when anything
//! failed. Every wait has a deadline, so a broken module gives a line that
//! says what went wrong, not a hang.
//!
//! ```text
//! wbevent poll-mask        POLLIN/POLLOUT when empty, partly full, full
//! wbevent poll-block       a poll() on the empty device sleeps without
//!                          spinning, and wakes when an event comes
//! wbevent epoll            level- and edge-triggered epoll
//! wbevent waiters N        N pollers asleep are all woken by one event
//! wbevent sigio            SIGIO with O_ASYNC on, none with it off
//! wbevent rt               a real-time signal carries the event's value;
//!                          real-time signals queue, SIGIO merges
//! wbevent gone             the registered process exits first
//! wbevent errors           the error paths
//! ```

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEVICE: &str = "/dev/wbevent";
const CAPACITY: usize = 8;

/// Linux's `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u64, ty: u8, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((ty as u64) << 8) | nr
}
const WBEVENT_IOC_REGISTER: u64 = ioc(0, b'x', 1, 0);
const WBEVENT_IOC_UNREGISTER: u64 = ioc(0, b'x', 2, 0);
const WBEVENT_IOC_STATS: u64 = ioc(2, b'x', 3, 8 * 8);

/// `struct wbevent_stats`.
#[repr(C)]
#[derive(Default, Debug)]
struct Stats {
    queued: u64,
    capacity: u64,
    written: u64,
    read: u64,
    targets: u64,
    pids_held: u64,
    signals: u64,
    gone: u64,
}

/// How long a sleeper may take to wake once it has a reason to.
const WAKE_DEADLINE: Duration = Duration::from_secs(1);

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
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::ENOTTY => "ENOTTY",
        libc::EBUSY => "EBUSY",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::ESRCH => "ESRCH",
        _ => "another error",
    }
}

fn expect_errno(what: &str, ret: isize, want: i32) {
    let got = if ret < 0 { errno() } else { 0 };
    check(what, ret < 0 && got == want, format!(": {} (wanted {})", errno_name(got), errno_name(want)));
}

fn open(flags: i32) -> Result<i32, String> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/wbevent".as_ptr(), flags) };
    if fd < 0 {
        return Err(format!("cannot open {DEVICE}: {}", std::io::Error::last_os_error()));
    }
    Ok(fd)
}

fn close(fd: i32) {
    // SAFETY: `fd` is an open descriptor of ours.
    unsafe { libc::close(fd) };
}

/// Queues `values`, one write each; how many writes succeeded.
fn send(fd: i32, values: &[u32]) -> usize {
    values
        .iter()
        // SAFETY: 4 bytes valid for reads.
        .filter(|v| unsafe { libc::write(fd, (*v as *const u32).cast(), 4) } == 4)
        .count()
}

/// Reads up to `max` events, one read.
fn receive(fd: i32, max: usize) -> Result<Vec<u32>, i32> {
    let mut buf = vec![0u32; max];
    // SAFETY: `buf` is valid for writes of 4*max bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 4 * max) };
    if n < 0 {
        return Err(errno());
    }
    buf.truncate(n as usize / 4);
    Ok(buf)
}

/// Empties the device through a non-blocking descriptor of its own.
fn drain() -> Result<(), String> {
    let fd = open(libc::O_RDWR | libc::O_NONBLOCK)?;
    while receive(fd, CAPACITY).is_ok() {}
    close(fd);
    Ok(())
}

fn stats(fd: i32) -> Stats {
    let mut s = Stats::default();
    // SAFETY: `s` is valid for writes of the 64 bytes the ioctl copies.
    unsafe { libc::ioctl(fd, WBEVENT_IOC_STATS as _, &mut s) };
    s
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

fn poll_mask() -> Result<(), String> {
    drain()?;
    let fd = open(libc::O_RDWR | libc::O_NONBLOCK)?;
    let both = libc::POLLIN | libc::POLLOUT;
    let (_, empty) = poll(fd, both, 0);
    check("empty", empty == libc::POLLOUT, format!(": {}", mask_name(empty)));
    send(fd, &[1, 2, 3]);
    let (_, partly) = poll(fd, both, 0);
    check("3 of 8 queued", partly == both, format!(": {}", mask_name(partly)));
    send(fd, &[4, 5, 6, 7, 8]);
    let (_, full) = poll(fd, both, 0);
    check("full", full == libc::POLLIN, format!(": {}", mask_name(full)));
    // SAFETY: 4 bytes valid for reads.
    let more = unsafe { libc::write(fd, (&9u32 as *const u32).cast(), 4) };
    expect_errno("a non-blocking write to the full device", more, libc::EAGAIN);
    let got = receive(fd, CAPACITY);
    check("the events read back in order", got == Ok((1..=8).collect()), format!(": {got:?}"));
    let (_, again) = poll(fd, both, 0);
    check("empty again", again == libc::POLLOUT, format!(": {}", mask_name(again)));
    close(fd);
    Ok(())
}

/// Thread `tid`'s state letter and CPU time in ticks (utime + stime),
/// and its current system call number.
fn task_info(tid: i32) -> (String, u64, Option<i64>) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let syscall = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")).unwrap_or_default();
    // The fields after the command name's `)`: state is the first; utime
    // and stime are fields 14 and 15 of the line, so 12 and 13 here.
    let rest: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let state = rest.first().map(|s| s.to_string()).unwrap_or_default();
    (state, ticks(11) + ticks(12), syscall.split_whitespace().next().and_then(|s| s.parse().ok()))
}

/// Whether thread `tid` sleeps in one of the system calls `nrs` within 3 s.
fn asleep_in(tid: i32, nrs: &[i64]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let (state, _, nr) = task_info(tid);
        if state == "S" && nr.is_some_and(|nr| nrs.contains(&nr)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

const POLL_CALLS: [i64; 2] = [libc::SYS_poll, libc::SYS_ppoll];
const EPOLL_CALLS: [i64; 2] = [libc::SYS_epoll_wait, libc::SYS_epoll_pwait];

/// Makes the calling thread real-time (SCHED_FIFO).
fn real_time() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is valid for reads; 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 }
}

fn gettid() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::gettid() }
}

/// A thread blocked in `poll()` for POLLIN (up to 5 s).
struct Poller {
    tid: i32,
    done: mpsc::Receiver<(i32, i16, Instant)>,
}

impl Poller {
    fn start(fd: i32, rt: bool) -> Result<Poller, String> {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            // Real-time on the guest's one CPU: woken, it runs at once,
            // before the waker goes on; a wakeup that comes before the
            // event is queued finds nothing, and is lost.
            if rt && !real_time() {
                check("making the poller real-time", false, format!(": {}", std::io::Error::last_os_error()));
            }
            tid_tx.send(gettid()).ok();
            let (ret, revents) = poll(fd, libc::POLLIN, 5000);
            done_tx.send((ret, revents, Instant::now())).ok();
        });
        let tid = tid_rx.recv().map_err(|_| "a poller thread died")?;
        Ok(Poller { tid, done })
    }
}

fn poll_block() -> Result<(), String> {
    drain()?;
    let fd = open(libc::O_RDWR)?;
    let poller = Poller::start(fd, true)?;
    let asleep = asleep_in(poller.tid, &POLL_CALLS);
    let (_, before, _) = task_info(poller.tid);
    std::thread::sleep(Duration::from_millis(500));
    let (state, after, _) = task_info(poller.tid);
    let spun = after.saturating_sub(before);
    check(
        "a poll() on the empty device sleeps",
        asleep && state == "S" && spun <= 1,
        format!(": state {state}, {spun} ticks of CPU in 500 ms"),
    );
    let sent = Instant::now();
    send(fd, &[42]);
    match poller.done.recv_timeout(Duration::from_secs(6)) {
        Ok((ret, revents, woke)) => {
            let after = woke.saturating_duration_since(sent);
            check(
                "a blocked poll() wakes when an event comes, with POLLIN, within 1 s",
                ret == 1 && revents == libc::POLLIN && after <= WAKE_DEADLINE,
                format!(": poll returned {ret} with {} after {} ms", mask_name(revents), after.as_millis()),
            );
        }
        Err(_) => check("a blocked poll() wakes when an event comes, with POLLIN, within 1 s", false, ": still asleep".into()),
    }
    drain()?;
    close(fd);
    Ok(())
}

fn epoll_wait(epfd: i32, timeout_ms: i32) -> (i32, u32) {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: room for one event.
    let n = unsafe { libc::epoll_wait(epfd, &mut event, 1, timeout_ms) };
    (n, event.events)
}

fn epoll_on(fd: i32, events: u32) -> Result<i32, String> {
    // SAFETY: no pointer arguments.
    let epfd = unsafe { libc::epoll_create1(0) };
    let mut event = libc::epoll_event { events, u64: 0 };
    // SAFETY: `event` is valid for reads.
    if epfd < 0 || unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
        return Err(format!("epoll: {}", std::io::Error::last_os_error()));
    }
    Ok(epfd)
}

fn epoll() -> Result<(), String> {
    drain()?;
    let fd = open(libc::O_RDWR | libc::O_NONBLOCK)?;
    let lt = epoll_on(fd, libc::EPOLLIN as u32)?;
    let mut seen = Vec::new();
    seen.push(epoll_wait(lt, 0).0);
    send(fd, &[1]);
    seen.push(epoll_wait(lt, 1000).0);
    seen.push(epoll_wait(lt, 100).0);
    let _ = receive(fd, CAPACITY);
    seen.push(epoll_wait(lt, 100).0);
    check(
        "level-triggered: not reported while empty, reported again and again while an event is queued, not once it is read",
        seen == [0, 1, 1, 0],
        format!(": {seen:?}"),
    );
    close(lt);

    let et = epoll_on(fd, (libc::EPOLLIN | libc::EPOLLET) as u32)?;
    let mut seen = Vec::new();
    seen.push(epoll_wait(et, 0).0);
    send(fd, &[1]);
    seen.push(epoll_wait(et, 1000).0);
    seen.push(epoll_wait(et, 100).0);
    send(fd, &[2]);
    seen.push(epoll_wait(et, 1000).0);
    seen.push(epoll_wait(et, 100).0);
    check(
        "edge-triggered: reported once per arrival, not again while the events stay queued",
        seen == [0, 1, 0, 1, 0],
        format!(": {seen:?}"),
    );
    close(et);
    drain()?;
    close(fd);
    Ok(())
}

fn waiters(n: usize) -> Result<(), String> {
    drain()?;
    let fd = open(libc::O_RDWR)?;
    let pollers: Vec<Poller> = (0..n).map(|_| Poller::start(fd, false)).collect::<Result<_, _>>()?;
    // And one epoll_wait(), on an epoll of its own.
    let epfd = epoll_on(fd, libc::EPOLLIN as u32)?;
    let (ep_tid_tx, ep_tid_rx) = mpsc::channel();
    let (ep_done_tx, ep_done) = mpsc::channel();
    std::thread::spawn(move || {
        ep_tid_tx.send(gettid()).ok();
        ep_done_tx.send(epoll_wait(epfd, 5000).0).ok();
    });
    let ep_tid = ep_tid_rx.recv().map_err(|_| "the epoll thread died")?;
    let asleep = pollers.iter().filter(|p| asleep_in(p.tid, &POLL_CALLS)).count() + usize::from(asleep_in(ep_tid, &EPOLL_CALLS));
    check(&format!("{n} pollers and an epoll_wait() sleep on the empty device"), asleep == n + 1, format!(": {asleep} asleep"));
    send(fd, &[7]);
    let deadline = Instant::now() + WAKE_DEADLINE;
    // Count the pollers that returned POLLIN by the deadline.
    let mut woken = 0;
    for p in &pollers {
        if let Ok((1, libc::POLLIN, _)) = p.done.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            woken += 1;
        }
    }
    let ep_woken = ep_done.recv_timeout(deadline.saturating_duration_since(Instant::now())) == Ok(1);
    check(
        &format!("one event wakes all {n} pollers and the epoll_wait() within 1 s"),
        woken == n && ep_woken,
        format!(": {woken} pollers woken, epoll_wait {}", if ep_woken { "woken" } else { "still asleep" }),
    );
    drain()?;
    close(epfd);
    close(fd);
    Ok(())
}

static SIGIO_COUNT: AtomicUsize = AtomicUsize::new(0);
static RT_COUNT: AtomicUsize = AtomicUsize::new(0);
static RT_VALUES: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

extern "C" fn on_sigio(_: libc::c_int) {
    SIGIO_COUNT.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn on_rt(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let value = unsafe { (*info).si_value().sival_ptr as usize as i32 };
    let i = RT_COUNT.fetch_add(1, Ordering::SeqCst);
    if let Some(slot) = RT_VALUES.get(i) {
        slot.store(value, Ordering::SeqCst);
    }
}

fn catch(sig: i32, handler: usize, siginfo: bool) {
    // SAFETY: a zeroed sigaction is valid; the handlers only touch atomics.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = if siginfo { libc::SA_SIGINFO } else { 0 };
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

/// Blocks (`how` SIG_BLOCK) or unblocks (SIG_UNBLOCK) `sigs`.
fn mask(how: i32, sigs: &[i32]) {
    // SAFETY: a set built with sigemptyset/sigaddset, valid for reads.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Sets the file's flags: O_NONBLOCK, and O_ASYNC when `async_on`.
fn set_async(fd: i32, async_on: bool) {
    let flags = libc::O_RDWR | libc::O_NONBLOCK | if async_on { libc::O_ASYNC } else { 0 };
    // SAFETY: plain integer arguments.
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
}

/// An fd with SIGIO going to this process.
fn sigio_fd() -> Result<i32, String> {
    catch(libc::SIGIO, on_sigio as extern "C" fn(libc::c_int) as usize, false);
    let fd = open(libc::O_RDWR | libc::O_NONBLOCK)?;
    // SAFETY: plain integer arguments.
    unsafe { libc::fcntl(fd, libc::F_SETOWN, libc::getpid()) };
    Ok(fd)
}

fn sigio() -> Result<(), String> {
    drain()?;
    let fd = sigio_fd()?;
    set_async(fd, true);
    let before = SIGIO_COUNT.load(Ordering::SeqCst);
    send(fd, &[1]);
    let got = SIGIO_COUNT.load(Ordering::SeqCst) - before;
    check("with O_ASYNC on, an event sends SIGIO", got == 1, format!(": {got} delivered"));
    set_async(fd, false);
    let before = SIGIO_COUNT.load(Ordering::SeqCst);
    send(fd, &[2]);
    let got = SIGIO_COUNT.load(Ordering::SeqCst) - before;
    check("with O_ASYNC off again, no SIGIO", got == 0, format!(": {got} delivered"));
    drain()?;
    close(fd);
    Ok(())
}

fn rt_values() -> Vec<i32> {
    let n = RT_COUNT.load(Ordering::SeqCst).min(RT_VALUES.len());
    RT_VALUES[..n].iter().map(|v| v.load(Ordering::SeqCst)).collect()
}

fn rt() -> Result<(), String> {
    drain()?;
    let rtsig = libc::SIGRTMIN() + 1;
    catch(rtsig, on_rt as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize, true);
    let fd = sigio_fd()?;
    set_async(fd, true);
    // SAFETY: an integer argument.
    let ret = unsafe { libc::ioctl(fd, WBEVENT_IOC_REGISTER as _, rtsig as libc::c_ulong) };
    check("WBEVENT_IOC_REGISTER for SIGRTMIN+1", ret == 0, format!(": {}", errno_name(if ret < 0 { errno() } else { 0 })));
    send(fd, &[42]);
    check("the real-time signal carries the event's value", rt_values() == [42], format!(": {:?}", rt_values()));
    drain()?;

    RT_COUNT.store(0, Ordering::SeqCst);
    let sigio_before = SIGIO_COUNT.load(Ordering::SeqCst);
    mask(libc::SIG_BLOCK, &[libc::SIGIO, rtsig]);
    send(fd, &[7, 8, 9]);
    let held = (RT_COUNT.load(Ordering::SeqCst), SIGIO_COUNT.load(Ordering::SeqCst) - sigio_before);
    mask(libc::SIG_UNBLOCK, &[libc::SIGIO, rtsig]);
    let sigio = SIGIO_COUNT.load(Ordering::SeqCst) - sigio_before;
    check(
        "3 events while blocked: the real-time signal is delivered 3 times, in order",
        held.0 == 0 && rt_values() == [7, 8, 9],
        format!(": {:?}", rt_values()),
    );
    check(
        "3 events while blocked: SIGIO is delivered once (standard signals merge)",
        held.1 == 0 && sigio == 1,
        format!(": {sigio} delivered"),
    );
    drain()?;

    // SAFETY: no argument.
    let ret = unsafe { libc::ioctl(fd, WBEVENT_IOC_UNREGISTER as _) };
    let s = stats(fd);
    check(
        "after WBEVENT_IOC_UNREGISTER",
        ret == 0 && s.targets == 0 && s.pids_held == 0,
        format!(": {} registrations, {} pid references held", s.targets, s.pids_held),
    );
    RT_COUNT.store(0, Ordering::SeqCst);
    send(fd, &[5]);
    check("no real-time signal after WBEVENT_IOC_UNREGISTER", rt_values().is_empty(), format!(": {:?}", rt_values()));
    drain()?;
    close(fd);
    Ok(())
}

/// Forks a child that runs `f` and exits with its status; reaps it.
fn in_child(f: impl FnOnce() -> i32) -> Result<i32, String> {
    // SAFETY: the child only makes system calls and exits: it runs no
    // code that could need another thread of the parent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let status = f();
        // SAFETY: leaves at once, running nothing of the parent's.
        unsafe { libc::_exit(status) };
    }
    let mut status = 0;
    // SAFETY: `status` is valid for writes.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(libc::WEXITSTATUS(status))
}

fn register(fd: i32, sig: i32) -> i32 {
    // SAFETY: an integer argument.
    unsafe { libc::ioctl(fd, WBEVENT_IOC_REGISTER as _, sig as libc::c_ulong) }
}

fn gone() -> Result<(), String> {
    drain()?;
    let rtsig = libc::SIGRTMIN() + 2;
    let fd = open(libc::O_RDWR | libc::O_NONBLOCK)?;

    // A child registers through a file of its own, and exits: closing the
    // file (its release) must drop the registration.
    let status = in_child(|| match open(libc::O_RDWR) {
        Ok(own) if register(own, rtsig) == 0 => 0,
        _ => 1,
    })?;
    let s = stats(fd);
    check(
        "a child registered through its own file, then exited: the registration went with the file",
        status == 0 && s.targets == 0 && s.pids_held == 0,
        format!(": {} registrations, {} pid references held", s.targets, s.pids_held),
    );

    // A child registers through the file it shares with us, and exits:
    // the file stays open, so the registration stays, until an event
    // finds the thread gone.
    let status = in_child(|| if register(fd, rtsig) == 0 { 0 } else { 1 })?;
    let s = stats(fd);
    check(
        "a child registered through our file, then exited and was reaped: the registration stays",
        status == 0 && s.targets == 1 && s.pids_held == 1,
        format!(": {} registration, {} pid reference held", s.targets, s.pids_held),
    );
    let gone_before = s.gone;
    send(fd, &[3]);
    let s = stats(fd);
    check(
        "the next event finds the child gone (ESRCH): the registration and its pid reference are dropped",
        s.targets == 0 && s.pids_held == 0 && s.gone == gone_before + 1,
        format!(": {} registrations, {} pid references held", s.targets, s.pids_held),
    );
    drain()?;
    close(fd);
    Ok(())
}

fn errors() -> Result<(), String> {
    drain()?;
    let fd = open(libc::O_RDWR | libc::O_NONBLOCK)?;
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is valid for writes of 16 bytes.
    expect_errno("a non-blocking read of the empty device", unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 16) }, libc::EAGAIN);
    // SAFETY: `buf` is valid for writes of 2 bytes.
    expect_errno("a read into 2 bytes (less than an event)", unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 2) }, libc::EINVAL);
    // SAFETY: `buf` is valid for reads of 3 bytes.
    expect_errno("a write of 3 bytes (not whole events)", unsafe { libc::write(fd, buf.as_ptr().cast(), 3) }, libc::EINVAL);
    // SAFETY: the address is deliberately bad.
    expect_errno("a write from a bad pointer", unsafe { libc::write(fd, 8 as *const libc::c_void, 4) }, libc::EFAULT);
    send(fd, &[1]);
    // SAFETY: the address is deliberately bad.
    expect_errno("a read into a bad pointer", unsafe { libc::read(fd, 8 as *mut libc::c_void, 4) }, libc::EFAULT);
    check("the event is still queued after the failed read", receive(fd, CAPACITY) == Ok(vec![1]), String::new());
    expect_errno("WBEVENT_IOC_REGISTER with SIGUSR1 (not real-time)", register(fd, libc::SIGUSR1) as isize, libc::EINVAL);
    expect_errno("WBEVENT_IOC_REGISTER with signal 65", register(fd, 65) as isize, libc::EINVAL);
    // SAFETY: no argument.
    let none = unsafe { libc::ioctl(fd, WBEVENT_IOC_UNREGISTER as _) };
    expect_errno("WBEVENT_IOC_UNREGISTER with nothing registered", none as isize, libc::ENOENT);
    let first = register(fd, libc::SIGRTMIN() + 3);
    expect_errno(
        "a second WBEVENT_IOC_REGISTER on one file",
        if first == 0 { register(fd, libc::SIGRTMIN() + 3) as isize } else { 0 },
        libc::EBUSY,
    );
    // SAFETY: no argument.
    unsafe { libc::ioctl(fd, WBEVENT_IOC_UNREGISTER as _) };
    // SAFETY: the address is deliberately bad.
    expect_errno("WBEVENT_IOC_STATS to a bad pointer", unsafe { libc::ioctl(fd, WBEVENT_IOC_STATS as _, 8usize) } as isize, libc::EFAULT);
    // SAFETY: an unknown command; no argument is used.
    expect_errno("an unknown ioctl", unsafe { libc::ioctl(fd, ioc(0, b'x', 99, 0) as _) } as isize, libc::ENOTTY);
    let s = stats(fd);
    check("WBEVENT_IOC_STATS", s.capacity == CAPACITY as u64 && s.queued == 0 && s.targets == 0, format!(": {s:?}"));
    close(fd);
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("poll-mask") => poll_mask(),
        Some("poll-block") => poll_block(),
        Some("epoll") => epoll(),
        Some("waiters") => waiters(args.get(1).and_then(|n| n.parse().ok()).ok_or("waiters needs a number")?),
        Some("sigio") => sigio(),
        Some("rt") => rt(),
        Some("gone") => gone(),
        Some("errors") => errors(),
        _ => Err("usage: wbevent poll-mask | poll-block | epoll | waiters N | sigio | rt | gone | errors".into()),
    }
}

pub(crate) fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("wbevent: {e}");
        return std::process::ExitCode::from(2);
    }
    if FAILED.load(Ordering::Relaxed) {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
