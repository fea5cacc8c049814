// SPDX-License-Identifier: GPL-2.0

//! `wbnet`: the network client chapter 08's checks run in the guest
//! (busybox `nc` speaks no UDP). Every answer is checked byte for byte and
//! every wait is bounded, so a broken module gives a line that says what
//! went wrong, never a hang.
//!
//! ```text
//! wbnet udp PORT PAYLOAD...        send each datagram, expect it echoed
//! wbnet tcp PORT TEXT...           one connection; send each text, expect it echoed
//! wbnet tcp-hold PORT SECONDS      connect, send nothing, wait for the server to close
//! wbnet tcp-stream PORT SECONDS    connect, send without pause while reading the
//!                                  echoes, until the server closes or SECONDS pass;
//!                                  says `streaming` at the first echo
//! wbnet udp-flood PORT SECONDS     send datagrams without pause, ignoring errors,
//!                                  for SECONDS or until the port closes
//!                                  after the server has answered
//! wbnet port-free udp|tcp PORT     whether a socket can bind the port
//! wbnet reuse-bind udp|tcp PORT UID
//!                                  as user UID, whether a socket with
//!                                  SO_REUSEADDR can bind the port beside
//!                                  the server (exit 0 if it can)
//! ```
//!
//! A PAYLOAD is `empty`, `size:N` (N bytes of a counting pattern) or text.

use std::io::{Read, Write};
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long an echo may take: one comes back in milliseconds even on the
/// debug kernel under emulation; a check that no answer comes waits this.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

fn payload(spec: &str) -> Result<Vec<u8>, String> {
    if spec == "empty" {
        return Ok(Vec::new());
    }
    if let Some(size) = spec.strip_prefix("size:") {
        let size: usize = size.parse().map_err(|_| format!("bad size in `{spec}`"))?;
        return Ok((0..size).map(|i| (i % 251) as u8).collect());
    }
    Ok(spec.as_bytes().to_vec())
}

fn shown(spec: &str, data: &[u8]) -> String {
    if spec.starts_with("size:") || spec == "empty" {
        format!("{} bytes", data.len())
    } else {
        format!("`{spec}`")
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn udp(port: u16, specs: &[String]) -> Result<bool, String> {
    let socket = UdpSocket::bind(local(0)).map_err(|e| format!("bind: {e}"))?;
    socket.set_read_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    let mut all = true;
    let mut buf = vec![0u8; 65536];
    for spec in specs {
        let data = payload(spec)?;
        let what = shown(spec, &data);
        if let Err(e) = socket.send_to(&data, local(port)) {
            println!("udp {port}: {what}: cannot send: {e}");
            all = false;
            continue;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, _)) if buf[..n] == data[..] => println!("udp {port}: {what} echoed"),
            Ok((n, _)) => {
                let first = (0..n.min(data.len())).find(|&i| buf[i] != data[i]).unwrap_or(n.min(data.len()));
                println!("udp {port}: {what}: wrong echo: {n} bytes back, first difference at byte {first}");
                all = false;
            }
            Err(e) => {
                println!("udp {port}: {what}: no answer ({e})");
                all = false;
            }
        }
    }
    Ok(all)
}

/// A connection to the server, or a line saying why there is none.
fn connect(port: u16) -> Option<TcpStream> {
    TcpStream::connect_timeout(&local(port), ANSWER_WAIT).map_err(|e| println!("tcp {port}: cannot connect: {e}")).ok()
}

fn tcp(port: u16, texts: &[String]) -> Result<bool, String> {
    let Some(mut stream) = connect(port) else {
        return Ok(false);
    };
    stream.set_read_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    let mut all = true;
    for text in texts {
        let data = payload(text)?;
        let what = shown(text, &data);
        stream.write_all(&data).map_err(|e| format!("tcp {port}: send: {e}"))?;
        let mut back = vec![0u8; data.len()];
        match stream.read_exact(&mut back) {
            Ok(()) if back == data => println!("tcp {port}: {what} echoed"),
            Ok(()) => {
                println!("tcp {port}: {what}: wrong echo");
                all = false;
            }
            Err(e) => {
                println!("tcp {port}: {what}: no full answer ({e})");
                all = false;
            }
        }
    }
    Ok(all)
}

fn tcp_hold(port: u16, seconds: u64) -> Result<bool, String> {
    let Some(mut stream) = connect(port) else {
        return Ok(false);
    };
    stream.set_read_timeout(Some(Duration::from_secs(seconds))).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {
            println!("tcp {port}: closed by the server after {:.1}s", started.elapsed().as_secs_f64());
            Ok(true)
        }
        Ok(_) => {
            println!("tcp {port}: unexpected data from the server");
            Ok(false)
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            println!("tcp {port}: still open after {seconds}s");
            Ok(false)
        }
        Err(e) => {
            println!("tcp {port}: closed by the server after {:.1}s ({e})", started.elapsed().as_secs_f64());
            Ok(true)
        }
    }
}

/// Keeps data flowing both ways, so that the server's receive always finds
/// data queued and its send always finds room: a server thread that only
/// stops when a wait is interrupted is never told to.
fn tcp_stream(port: u16, seconds: u64) -> Result<bool, String> {
    let Some(mut stream) = connect(port) else {
        return Ok(false);
    };
    // A receive buffer the echoes never fill (root may exceed rmem_max), so
    // that the server's send never waits either.
    set_socket_option(stream.as_raw_fd(), libc::SO_RCVBUFFORCE, "SO_RCVBUFFORCE", 8 << 20)?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(ANSWER_WAIT)).map_err(|e| e.to_string())?;
    let started = Instant::now();
    // Ends at the first failed write: the server closed, or the reader
    // below shut the socket down at its deadline.
    let sending = std::thread::spawn(move || {
        let chunk = vec![0x5a_u8; 16384];
        while writer.write_all(&chunk).is_ok() {}
    });
    let mut echoed = 0u64;
    let mut buf = vec![0u8; 65536];
    let closed = loop {
        if started.elapsed() >= Duration::from_secs(seconds) {
            break None;
        }
        match stream.read(&mut buf) {
            Ok(0) => break Some(String::new()),
            Ok(n) => {
                if echoed == 0 {
                    // Said at once: a check waits for it before it unloads.
                    println!("tcp {port}: streaming");
                    let _ = std::io::stdout().flush();
                }
                echoed += n as u64;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => break Some(format!(" ({e})")),
        }
    };
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    let took = started.elapsed().as_secs_f64();
    match &closed {
        Some(how) => println!("tcp {port}: stream closed by the server after {took:.1}s, {echoed} bytes echoed{how}"),
        None => println!("tcp {port}: still streaming after {seconds}s, {echoed} bytes echoed"),
    }
    Ok(closed.is_some())
}

fn udp_flood(port: u16, seconds: f64) -> Result<bool, String> {
    let socket = UdpSocket::bind(local(0)).map_err(|e| format!("bind: {e}"))?;
    // Connected, the socket is told when the port closes: the ICMP port
    // unreachable that comes back fails its next call with ECONNREFUSED.
    socket.connect(local(port)).map_err(|e| format!("connect: {e}"))?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let data = payload("size:512")?;
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut sent, mut answered, mut closed) = (0u64, false, false);
    let mut echo = [0u8; 1024];
    // Refused before the server ever answered, the port may not be bound
    // yet: the flood goes on. Refused after, the server has gone.
    while Instant::now() < until && !closed {
        match socket.send(&data) {
            Ok(_) => sent += 1,
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => closed = answered,
            Err(_) => {}
        }
        // A refusal is reported before the echoes already queued: draining
        // goes on past it.
        loop {
            match socket.recv(&mut echo) {
                Ok(_) => answered = true,
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => closed |= answered,
                Err(_) => break,
            }
        }
    }
    if closed {
        println!("udp-flood {port}: sent {sent} datagrams, then the port closed (ECONNREFUSED)");
    } else {
        println!("udp-flood {port}: sent {sent} datagrams in {seconds}s");
    }
    Ok(true)
}

fn port_free(protocol: &str, port: u16) -> Result<bool, String> {
    let free = match protocol {
        "udp" => UdpSocket::bind(local(port)).is_ok(),
        "tcp" => TcpListener::bind(local(port)).is_ok(),
        other => return Err(format!("port-free takes udp or tcp, not `{other}`")),
    };
    println!("{protocol} port {port} is {}", if free { "free" } else { "in use" });
    Ok(free)
}

/// The last system call's error, by name where the checks look for one.
/// Sets the `SOL_SOCKET` option `option` (called `name` in errors) of
/// `fd` to the integer `value`.
fn set_socket_option(fd: libc::c_int, option: libc::c_int, name: &str, value: libc::c_int) -> Result<(), String> {
    // SAFETY: setsockopt(2) reads `optlen` bytes at `optval`: a live c_int,
    // of the length given; `fd` is only passed to the kernel, which checks it.
    let ret = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, option, std::ptr::from_ref(&value).cast(), size_of::<libc::c_int>() as libc::socklen_t)
    };
    if ret != 0 {
        return Err(format!("{name}: {}", last_error()));
    }
    Ok(())
}

fn last_error() -> String {
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "EADDRINUSE".into(),
        _ => e.to_string(),
    }
}

/// What any local user could try: become `uid` (and group `uid`, with no
/// supplementary groups), then bind 127.0.0.1:`port` with `SO_REUSEADDR`,
/// to share the port with the server and receive what is sent to it.
fn reuse_bind(protocol: &str, port: u16, uid: u32) -> Result<bool, String> {
    let kind = match protocol {
        "udp" => libc::SOCK_DGRAM,
        "tcp" => libc::SOCK_STREAM,
        other => return Err(format!("reuse-bind takes udp or tcp, not `{other}`")),
    };
    // Groups first: once the user id is dropped, they can no longer change.
    // SAFETY: a null list of length 0 is what setgroups() takes for "none".
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(format!("setgroups: {}", last_error()));
    }
    // SAFETY: setgid() takes no pointers.
    if unsafe { libc::setgid(uid) } != 0 {
        return Err(format!("cannot become gid {uid}: {}", last_error()));
    }
    // SAFETY: setuid() takes no pointers.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(format!("cannot become uid {uid}: {}", last_error()));
    }
    // SAFETY: socket() takes no pointers.
    let raw = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!("socket: {}", last_error()));
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    set_socket_option(socket.as_raw_fd(), libc::SO_REUSEADDR, "SO_REUSEADDR", 1)?;
    // SAFETY: all zeroes is a valid sockaddr_in (plain integers).
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
    // SAFETY: the address points to a live sockaddr_in, of the length given.
    let ret =
        unsafe { libc::bind(socket.as_raw_fd(), std::ptr::from_ref(&addr).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t) };
    let what = format!("{protocol} {port}: a SO_REUSEADDR bind as uid {uid}");
    if ret == 0 {
        println!("{what} succeeds: that user shares the server's port");
        Ok(true)
    } else {
        println!("{what} fails: {}", last_error());
        Ok(false)
    }
}

fn run(args: &[String]) -> Result<bool, String> {
    let port = |s: Option<&String>| -> Result<u16, String> {
        s.ok_or("a port is missing")?.parse().map_err(|_| "a port is a number from 1 to 65535".to_string())
    };
    match args.first().map(String::as_str) {
        Some("udp") => udp(port(args.get(1))?, &args[2..]),
        Some("tcp") => tcp(port(args.get(1))?, &args[2..]),
        Some("tcp-hold") => {
            let seconds = args.get(2).and_then(|s| s.parse().ok()).ok_or("tcp-hold PORT SECONDS")?;
            tcp_hold(port(args.get(1))?, seconds)
        }
        Some("tcp-stream") => {
            let seconds = args.get(2).and_then(|s| s.parse().ok()).ok_or("tcp-stream PORT SECONDS")?;
            tcp_stream(port(args.get(1))?, seconds)
        }
        Some("udp-flood") => {
            let seconds =
                args.get(2).and_then(|s| s.parse().ok()).filter(|s: &f64| s.is_finite() && *s >= 0.0).ok_or("udp-flood PORT SECONDS")?;
            udp_flood(port(args.get(1))?, seconds)
        }
        Some("port-free") => port_free(args.get(1).ok_or("port-free udp|tcp PORT")?, port(args.get(2))?),
        Some("reuse-bind") => {
            let uid = args.get(3).and_then(|s| s.parse().ok()).ok_or("reuse-bind udp|tcp PORT UID")?;
            reuse_bind(args.get(1).ok_or("reuse-bind udp|tcp PORT UID")?, port(args.get(2))?, uid)
        }
        _ => Err("usage: wbnet udp|tcp PORT PAYLOAD... | tcp-hold PORT SECONDS | tcp-stream PORT SECONDS \
                  | udp-flood PORT SECONDS \
                  | port-free udp|tcp PORT | reuse-bind udp|tcp PORT UID"
            .into()),
    }
}

pub(crate) fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wbnet: {e}");
            ExitCode::from(2)
        }
    }
}
