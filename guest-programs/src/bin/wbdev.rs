// SPDX-License-Identifier: GPL-2.0

//! `wbdev`: the UDP client and server chapter 09's checks run in the guest,
//! across the `wb0`/`wb1` pair. Every answer is checked byte for byte and
//! every wait is bounded, so a broken device gives a line that says what
//! went wrong, never a hang.
//!
//! ```text
//! wbdev echo ADDR PORT               echo datagrams sent to ADDR:PORT, until
//!                                    10 s pass without one
//! wbdev udp ADDR PORT PAYLOAD...     send each datagram, expect it echoed
//! wbdev flood ADDR PORT SECONDS [N]  send 512-byte datagrams without pause,
//!                                    for SECONDS (a fraction too: 0.5) or
//!                                    until N are sent, whichever is first
//! wbdev unanswered ADDR SIZE         send one ICMP echo request with SIZE
//!                                    bytes of data, as `ping -s SIZE` does,
//!                                    and expect no reply within 300 ms
//! ```
//!
//! `unanswered` is for a ping that must get no answer: busybox `ping -W`
//! waits whole seconds, and across the pair, inside one guest, an echo
//! takes milliseconds.
//!
//! A PAYLOAD is `size:N` (N bytes of a counting pattern) or text.
//!
//! `udp` and `flood` end by waiting until the socket's send queue is empty
//! (`SIOCOUTQ`, the kernel's count of bytes in skbs the socket sent that
//! no one has freed yet): a device that leaks skbs, or keeps them for ever,
//! leaves it above zero.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long an echo may take.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How long an echo that must not come is waited for.
const SILENCE_WAIT: Duration = Duration::from_millis(300);
/// How long the send queue may take to empty.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

fn payload(spec: &str) -> Result<Vec<u8>, String> {
    if let Some(size) = spec.strip_prefix("size:") {
        let size: usize = size.parse().map_err(|_| format!("bad size in `{spec}`"))?;
        return Ok((0..size).map(|i| (i % 251) as u8).collect());
    }
    Ok(spec.as_bytes().to_vec())
}

fn shown(spec: &str, data: &[u8]) -> String {
    if spec.starts_with("size:") {
        format!("{} bytes", data.len())
    } else {
        format!("`{spec}`")
    }
}

/// An errno by name, where the checks look for one.
fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENETUNREACH) => "ENETUNREACH".into(),
        Some(libc::ENETDOWN) => "ENETDOWN".into(),
        Some(libc::ENODEV) => "ENODEV".into(),
        Some(libc::ENOBUFS) => "ENOBUFS".into(),
        Some(libc::EAGAIN) => "EAGAIN".into(),
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH".into(),
        Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL".into(),
        Some(libc::ECONNREFUSED) => "ECONNREFUSED".into(),
        _ => e.to_string(),
    }
}

/// Bytes of the socket's skbs not yet freed (`SIOCOUTQ`).
fn send_queue(socket: &UdpSocket) -> Result<i32, String> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int to the pointer given,
    // which points to a live c_int.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut bytes) };
    if ret != 0 {
        return Err(format!("SIOCOUTQ: {}", std::io::Error::last_os_error()));
    }
    Ok(bytes)
}

/// Waits until the socket's send queue is empty; says so, or what is left.
fn drained(what: &str, socket: &UdpSocket) -> Result<bool, String> {
    let until = Instant::now() + DRAIN_WAIT;
    loop {
        let left = send_queue(socket)?;
        if left == 0 {
            println!("{what}: send queue empty: every skb sent was freed");
            return Ok(true);
        }
        if Instant::now() >= until {
            println!("{what}: send queue still holds {left} bytes after {}s: skbs were not freed", DRAIN_WAIT.as_secs());
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn addr(host: &str, port: &str) -> Result<SocketAddr, String> {
    let host: Ipv4Addr = host.parse().map_err(|_| format!("`{host}` is not an IPv4 address"))?;
    let port: u16 = port.parse().map_err(|_| "a port is a number from 1 to 65535".to_string())?;
    Ok(SocketAddr::from((host, port)))
}

fn echo(to: SocketAddr) -> Result<bool, String> {
    let socket = UdpSocket::bind(to).map_err(|e| format!("bind {to}: {e}"))?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    let mut echoed = 0u64;
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        if socket.send_to(&buf[..n], from).is_ok() {
            echoed += 1;
        }
    }
    println!("echo {to}: {echoed} datagrams echoed");
    Ok(true)
}

fn udp(to: SocketAddr, specs: &[String]) -> Result<bool, String> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| format!("bind: {e}"))?;
    socket.set_read_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    let mut all = true;
    let mut buf = vec![0u8; 65536];
    for spec in specs {
        let data = payload(spec)?;
        let what = shown(spec, &data);
        if let Err(e) = socket.send_to(&data, to) {
            println!("udp {to}: {what}: cannot send: {}", errno_name(&e));
            all = false;
            continue;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, _)) if buf[..n] == data[..] => println!("udp {to}: {what} echoed"),
            Ok((n, _)) => {
                println!("udp {to}: {what}: wrong echo: {n} bytes back");
                all = false;
            }
            Err(e) => {
                println!("udp {to}: {what}: no answer ({})", errno_name(&e));
                all = false;
            }
        }
    }
    Ok(drained(&format!("udp {to}"), &socket)? && all)
}

fn flood(to: SocketAddr, seconds: f64, most: Option<u64>) -> Result<bool, String> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| format!("bind: {e}"))?;
    // A send that waits for room in the send buffer waits at most this long:
    // room comes back only as the device frees what it was given.
    socket.set_write_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    let data = payload("size:512")?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut ended = None;
    while Instant::now() < until && most.is_none_or(|most| sent < most) {
        match socket.send_to(&data, to) {
            Ok(_) => sent += 1,
            // The qdisc is full for a moment: drop it and go on, as UDP does.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
    }
    match ended {
        None => println!("flood {to}: sent {sent} datagrams"),
        Some(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            println!("flood {to}: sent {sent} datagrams, then a send waited {}s: the device took no more", ANSWER_WAIT.as_secs());
            drained(&format!("flood {to}"), &socket)?;
            return Ok(false);
        }
        Some(e) => println!("flood {to}: sent {sent} datagrams, then {}", errno_name(&e)),
    }
    drained(&format!("flood {to}"), &socket)
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends one ICMP echo request with `size` bytes of data to `to` over a raw
/// socket (the frame `ping -s SIZE` sends: 14 + 20 + 8 + SIZE bytes), then
/// waits [`SILENCE_WAIT`] for its reply; true when none came.
fn unanswered(to: Ipv4Addr, size: usize) -> Result<bool, String> {
    // SAFETY: `socket` takes three integers and returns a new descriptor,
    // owned below, or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(format!("raw ICMP socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let id = std::process::id() as u16;
    let mut request = vec![8u8, 0, 0, 0];
    request.extend_from_slice(&id.to_be_bytes());
    request.extend_from_slice(&1u16.to_be_bytes());
    request.extend((0..size).map(|i| i as u8));
    let sum = checksum(&request);
    request[2..4].copy_from_slice(&sum.to_be_bytes());
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(to).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `sendto` reads `request.len()` bytes from `request` and a
    // `sockaddr_in` of the length given from `addr`; both outlive the call.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        println!("unanswered {to}: {size} bytes: cannot send: {}", errno_name(&std::io::Error::last_os_error()));
        return Ok(false);
    }
    let until = Instant::now() + SILENCE_WAIT;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            println!("unanswered {to}: {size} bytes: no reply within {} ms", SILENCE_WAIT.as_millis());
            return Ok(true);
        }
        let mut poll = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `poll` reads and writes one `pollfd`, on this stack frame.
        if unsafe { libc::poll(&mut poll, 1, left.as_millis() as libc::c_int) } <= 0 {
            continue;
        }
        // SAFETY: `recv` writes at most `buf.len()` bytes to `buf`.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        // A raw socket gets every ICMP message, with its IP header: the
        // reply is type 0 with this request's identifier.
        let Some(icmp) = usize::try_from(n).ok().and_then(|n| buf.get(usize::from(buf[0] & 0x0f) * 4..n)) else { continue };
        if icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() {
            println!("unanswered {to}: {size} bytes: answered");
            return Ok(false);
        }
    }
}

fn run(args: &[String]) -> Result<bool, String> {
    let to = || addr(args.get(1).ok_or("an address is missing")?, args.get(2).ok_or("a port is missing")?);
    match args.first().map(String::as_str) {
        Some("echo") => echo(to()?),
        Some("udp") => udp(to()?, &args[3.min(args.len())..]),
        Some("flood") => {
            let usage = "flood ADDR PORT SECONDS [N]";
            let seconds = args.get(3).and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0).ok_or(usage)?;
            let most = args.get(4).map(|n| n.parse::<u64>().ok().filter(|n| *n > 0).ok_or(usage)).transpose()?;
            flood(to()?, seconds, most)
        }
        Some("unanswered") => {
            let to = args.get(1).and_then(|a| a.parse().ok()).ok_or("unanswered ADDR SIZE: ADDR is an IPv4 address")?;
            let size =
                args.get(2).and_then(|s| s.parse().ok()).filter(|s| *s <= 65000).ok_or("unanswered ADDR SIZE: SIZE is 0 to 65000")?;
            unanswered(to, size)
        }
        _ => Err("usage: wbdev echo ADDR PORT | udp ADDR PORT PAYLOAD... | flood ADDR PORT SECONDS | unanswered ADDR SIZE".into()),
    }
}

pub(crate) fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wbdev: {e}");
            ExitCode::from(2)
        }
    }
}
