// SPDX-License-Identifier: GPL-2.0

//! `wbipc`: the user-space side of chapter 04's checks. Each command drives
//! a device the way a real program would and prints one line per fact it
//! checked, `ok: ...` or `FAIL: ...`, with the exact error numbers; the exit
//! status is 1 when anything failed.
//!
//! ```text
//! wbipc mq-fifo                    messages come out whole and in order
//! wbipc mq-concurrent W R N        W writers x N messages, R readers
//! wbipc mq-errors CAPACITY         every error path of /dev/msgq
//! wbipc mq-wait                    a blocked reader wakes when a message comes
//! wbipc mq-signal                  a signal interrupts a blocked read
//! wbipc shm PAGES                  mmap of /dev/kshm, both directions, errors
//! ```

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MSGQ: &str = "/dev/msgq";
const KSHM: &str = "/dev/kshm";
const PAGE: usize = 4096;

/// Linux's `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u64, ty: u8, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((ty as u64) << 8) | nr
}
const MSGQ_IOC_STATS: u64 = ioc(2, b'q', 1, 7 * 8);
const MSGQ_IOC_FLUSH: u64 = ioc(0, b'q', 2, 0);
const KSHM_IOC_CHECKSUM: u64 = ioc(2, b'k', 1, 4);
const KSHM_IOC_FILL: u64 = ioc(0, b'k', 2, 0);

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
    check("three messages read back whole and in order", same, format!(": {:?}", got.iter().map(|g| String::from_utf8_lossy(g).to_string()).collect::<Vec<_>>()));
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
    expect_errno("a 4097-byte message", write(fd, &[b'x'; 4097]), libc::EMSGSIZE);
    expect_errno("an empty message", write(fd, b""), libc::EINVAL);
    let accepted = (0..capacity).filter(|_| write(fd, b"twelve bytes") == 12).count();
    check(&format!("the queue takes {capacity} messages"), accepted == capacity, format!(": {accepted} accepted"));
    expect_errno("a non-blocking write to a full queue", write(fd, b"one more"), libc::EAGAIN);
    expect_errno("a read into a 4-byte buffer (the message stays)", read(fd, &mut buf[..4]), libc::EMSGSIZE);
    // SAFETY: the address is deliberately bad: the kernel must refuse it.
    let bad_read = unsafe { libc::read(fd, 8 as *mut libc::c_void, 64) };
    expect_errno("a read into a bad pointer (the message stays)", bad_read, libc::EFAULT);
    let s = stats(fd);
    check("MSGQ_IOC_STATS reports the queue", s[0] == capacity as u64 && s[1] == capacity as u64 && s[4] == 1 && s[5] == 2, format!(": queued {} capacity {} written {} read {} full {} bad size {} flushed {}", s[0], s[1], s[2], s[3], s[4], s[5], s[6]));
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

fn mq_wait() -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR)?;
    let started = Instant::now();
    let reader = std::thread::spawn(move || (read_message(fd), started.elapsed()));
    std::thread::sleep(Duration::from_millis(500));
    write(fd, b"event");
    let (got, after) = reader.join().map_err(|_| "the reader panicked")?;
    check(
        "a blocked reader slept until the message came, then woke",
        got.as_deref() == Ok(b"event".as_slice()) && after >= Duration::from_millis(450),
        format!(": woke after {} ms with {:?}", after.as_millis(), got.map(|m| String::from_utf8_lossy(&m).to_string())),
    );
    close(fd);
    Ok(())
}

extern "C" fn on_signal(_: libc::c_int) {}

fn mq_signal() -> Result<(), String> {
    let fd = open(MSGQ, libc::O_RDWR)?;
    // SAFETY: a zeroed sigaction is valid; the handler does nothing, and
    // SA_RESTART is not set, so an interrupted read fails with EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut());
    }
    // The guest kernel has no POSIX timers (no alarm()): a helper thread
    // sends the signal to this thread after a second.
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        // SAFETY: `me` is the main thread, alive: it is blocked in read.
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

fn shm(pages: usize) -> Result<(), String> {
    let len = pages * PAGE;
    let fd = open(KSHM, libc::O_RDWR)?;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let p = map(fd, len, rw, libc::MAP_SHARED, 0).map_err(|e| format!("mmap: {}", errno_name(e)))?;
    // SAFETY: the mapping is `len` bytes, readable and writable, and ours.
    let mem = unsafe { std::slice::from_raw_parts_mut(p, len) };
    for (i, b) in mem.iter_mut().enumerate() {
        *b = (i * 7 % 256) as u8;
    }
    let mut sum = 0u32;
    // SAFETY: `sum` is valid for the 4 bytes the ioctl writes.
    unsafe { libc::ioctl(fd, KSHM_IOC_CHECKSUM as _, &mut sum) };
    check("the module reads the bytes written through the mapping", sum == fnv1a(mem), format!(": checksum {sum:08x}, expected {:08x}", fnv1a(mem)));
    // SAFETY: the seed is passed by value.
    unsafe { libc::ioctl(fd, KSHM_IOC_FILL as _, 5usize) };
    let first_bad = mem.iter().enumerate().find(|(i, b)| **b != ((5 + i) % 251) as u8).map(|(i, _)| i);
    check("the mapping shows the bytes the module wrote", first_bad.is_none(), first_bad.map(|i| format!(": differs at byte {i}")).unwrap_or_default());
    // SAFETY: `p` is mapped for `len` bytes.
    let exec = unsafe { libc::mprotect(p.cast(), len, libc::PROT_READ | libc::PROT_EXEC) };
    expect_errno("making the mapping executable", exec as isize, libc::EACCES);
    // SAFETY: `p` is our mapping of `len` bytes, unmapped once.
    unsafe { libc::munmap(p.cast(), len) };

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
    close(fd);
    let ro = open(KSHM, libc::O_RDONLY)?;
    refused("a writable shared mapping of a read-only file", ro, PAGE, rw, libc::MAP_SHARED, 0, libc::EACCES);
    close(ro);
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let num = |i: usize| -> Result<usize, String> { args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("argument {i} must be a number")) };
    match args.first().map(String::as_str) {
        Some("mq-fifo") => mq_fifo(),
        Some("mq-concurrent") => mq_concurrent(num(1)?, num(2)?, num(3)?),
        Some("mq-errors") => mq_errors(num(1)?),
        Some("mq-wait") => mq_wait(),
        Some("mq-signal") => mq_signal(),
        Some("shm") => shm(num(1)?),
        _ => Err("usage: wbipc mq-fifo | mq-concurrent W R N | mq-errors CAPACITY | mq-wait | mq-signal | shm PAGES".into()),
    }
}

fn main() -> std::process::ExitCode {
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
