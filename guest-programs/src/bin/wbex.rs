// SPDX-License-Identifier: GPL-2.0

//! `wbex`: the user-space side of the checks of the chapters' end-of-chapter
//! exercises that busybox alone cannot drive. Each command prints one line
//! per fact it checked, `ok: ...` or `FAIL: ...`, with the exact error
//! numbers; the exit status is 1 when anything failed, 2 when the command
//! could not run at all. No wait is longer than 2 s.
//!
//! ```text
//! wbex shm-size PAGES        KSHM_IOC_SIZE reports PAGES pages, and the whole
//!                            buffer maps with that size (chapter 06)
//! wbex udp-upper PORT TEXT   a datagram to 127.0.0.1:PORT comes back upper-cased
//!                            (chapter 08)
//! wbex tcp-two PORT          two TCP clients connected at once are both
//!                            echoed, the second while the first stays (chapter 08)
//! ```

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const KSHM: &str = "/dev/kshm";
const PAGE: usize = 4096;
/// The longest any answer is waited for.
const WAIT: Duration = Duration::from_secs(2);

/// Linux's `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u64, ty: u8, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((ty as u64) << 8) | nr
}
/// `_IOR('k', 0x22, __u64)`.
const KSHM_IOC_SIZE: u64 = ioc(2, b'k', 0x22, 8);

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
        libc::EINVAL => "EINVAL",
        libc::EFAULT => "EFAULT",
        libc::ENOTTY => "ENOTTY",
        _ => "another error",
    }
}

fn shm_size(pages: usize) -> Result<(), String> {
    let path = CString::new(KSHM).expect("no NUL");
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        return Err(format!("cannot open {KSHM}: {}", std::io::Error::last_os_error()));
    }
    let mut size: u64 = 0;
    // SAFETY: `size` is valid for the 8 bytes the ioctl writes.
    let ret = unsafe { libc::ioctl(fd, KSHM_IOC_SIZE as _, &mut size) };
    let got = if ret < 0 { errno_name(errno()).to_string() } else { format!("{size} bytes") };
    check("KSHM_IOC_SIZE reports the buffer's size", ret == 0 && size == (pages * PAGE) as u64, format!(": {got}"));
    // SAFETY: the ioctl writes to a bad address; the kernel must refuse it.
    let bad = unsafe { libc::ioctl(fd, KSHM_IOC_SIZE as _, 8 as *mut libc::c_void) };
    let got = if bad < 0 { errno() } else { 0 };
    check("KSHM_IOC_SIZE to a bad pointer", got == libc::EFAULT, format!(": {}", errno_name(got)));
    if ret == 0 && size > 0 && size < (1 << 30) {
        let len = size as usize;
        // SAFETY: a fresh shared mapping chosen by the kernel; nothing is overwritten.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd, 0) };
        let mapped = p != libc::MAP_FAILED;
        let detail = if mapped { String::new() } else { format!(": {}", errno_name(errno())) };
        check("the whole buffer maps with the size reported", mapped, detail);
        if mapped {
            // SAFETY: `p` is our mapping of `len` bytes, unmapped once.
            unsafe { libc::munmap(p, len) };
        }
    }
    // SAFETY: `fd` is ours, closed once.
    unsafe { libc::close(fd) };
    Ok(())
}

fn udp_upper(port: u16, text: &str) -> Result<(), String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    sock.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    sock.send_to(text.as_bytes(), ("127.0.0.1", port)).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 2048];
    match sock.recv(&mut buf) {
        Ok(n) => {
            let got = String::from_utf8_lossy(&buf[..n]).to_string();
            println!("udp {port}: `{text}` came back as `{got}`");
            if got != text.to_ascii_uppercase() {
                FAILED.store(true, Ordering::Relaxed);
            }
        }
        Err(e) => {
            println!("udp {port}: `{text}`: no answer ({e})");
            FAILED.store(true, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Sends `text` on `stream` and waits (at most `WAIT`) for it to come back.
fn echo(stream: &mut TcpStream, text: &[u8]) -> Result<(), String> {
    stream.write_all(text).map_err(|e| format!("send: {e}"))?;
    let mut got = vec![0u8; text.len()];
    stream.read_exact(&mut got).map_err(|e| format!("no echo within {} s: {e}", WAIT.as_secs()))?;
    if got != text {
        return Err(format!("echoed as {:?}", String::from_utf8_lossy(&got)));
    }
    Ok(())
}

fn tcp_two(port: u16) -> Result<(), String> {
    let connect = || -> Result<TcpStream, String> {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let mut first = connect()?;
    let r = echo(&mut first, b"first");
    check("the first client is echoed", r.is_ok(), r.err().map(|e| format!(": {e}")).unwrap_or_default());
    let mut second = connect()?;
    let r = echo(&mut second, b"second");
    check("a second client is echoed while the first stays connected", r.is_ok(), r.err().map(|e| format!(": {e}")).unwrap_or_default());
    let r = echo(&mut first, b"first again");
    check("the first client is still echoed", r.is_ok(), r.err().map(|e| format!(": {e}")).unwrap_or_default());
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let num = |i: usize| -> Result<usize, String> {
        args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| format!("argument {i} must be a number"))
    };
    let port = |i: usize| -> Result<u16, String> {
        args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| format!("argument {i} must be a port"))
    };
    match args.first().map(String::as_str) {
        Some("shm-size") => shm_size(num(1)?),
        Some("udp-upper") => udp_upper(port(1)?, args.get(2).ok_or("udp-upper needs a text")?),
        Some("tcp-two") => tcp_two(port(1)?),
        _ => Err("usage: wbex shm-size PAGES | udp-upper PORT TEXT | tcp-two PORT".into()),
    }
}

pub(crate) fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("wbex: {e}");
        return std::process::ExitCode::from(2);
    }
    if FAILED.load(Ordering::Relaxed) {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
