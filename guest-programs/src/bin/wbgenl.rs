// SPDX-License-Identifier: GPL-2.0

//! `wbgenl`: the user space of chapter 07's generic netlink family
//! `wbgenl`, over raw netlink sockets (`AF_NETLINK`, `NETLINK_GENERIC`).
//! It resolves the family and its multicast groups by name
//! (`CTRL_CMD_GETFAMILY`), joins groups (`NETLINK_ADD_MEMBERSHIP`), sends
//! requests and reads answers, acks and events. Every wait has a deadline,
//! so a broken module gives a `FAIL:` line that says what went wrong,
//! never a hang.
//!
//! ```text
//! wbgenl emit COUNT [INTERVAL_MS]    send EMIT, print the answer or the error
//! wbgenl events COUNT LISTENERS      LISTENERS sockets join `events`, then
//!                                    EMIT COUNT: each must get every event
//!                                    of the answer's range, in order
//! wbgenl malformed                   bad requests, each must be refused with
//!                                    EINVAL; a good one after them answered
//! wbgenl unload COUNT INTERVAL_MS    a listener on `events` and `notices`;
//!                                    with COUNT > 0 an EMIT in flight (rmmod
//!                                    after its first event); `rmmod wbgenl`;
//!                                    then the events, the UNLOADING notice
//!                                    and the answer must all be consistent
//! ```
//!
//! Exit status: 0 if every check passed, 1 if one failed, 2 on a usage or
//! system error.

use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitCode};
use std::thread;
use std::time::{Duration, Instant};

// The family's protocol (chapters/07-notify/wbgenl_shim.h).
const FAMILY_NAME: &str = "wbgenl";
const CMD_EMIT: u8 = 1;
const CMD_EVENT: u8 = 2;
const CMD_UNLOADING: u8 = 3;
const A_COUNT: u16 = 1;
const A_INTERVAL_MS: u16 = 2;
const A_SEQ: u16 = 3;
const A_FIRST: u16 = 4;
const A_LAST: u16 = 5;

// Netlink and generic netlink numbers (<linux/netlink.h>,
// <linux/genetlink.h>) that the libc crate may lack.
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;
const NETLINK_LIST_MEMBERSHIPS: libc::c_int = 9;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_ATTR_MCAST_GROUPS: u16 = 7;
const CTRL_ATTR_MCAST_GRP_NAME: u16 = 1;
const CTRL_ATTR_MCAST_GRP_ID: u16 = 2;
/// `nlmsghdr` (16 bytes) and `genlmsghdr` (4).
const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;

/// How long an answer or the next event may take.
const WAIT: Duration = Duration::from_secs(3);

fn errno_name(e: i32) -> String {
    match e {
        libc::EINVAL => "EINVAL".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::ENOBUFS => "ENOBUFS".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        libc::ESHUTDOWN => "ESHUTDOWN".into(),
        libc::ERANGE => "ERANGE".into(),
        libc::EMSGSIZE => "EMSGSIZE".into(),
        libc::EAGAIN => "EAGAIN".into(),
        other => format!("errno {other}"),
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Appends an attribute: header, value, padding to 4 bytes.
fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Attributes, as (type without flags, value).
type Attrs<'a> = Vec<(u16, &'a [u8])>;

/// The attributes in `data`.
fn attrs(mut data: &[u8]) -> Attrs<'_> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[((len + 3) & !3).min(data.len())..];
    }
    out
}

fn attr_u32(list: &[(u16, &[u8])], kind: u16) -> Option<u32> {
    list.iter().find(|(k, v)| *k == kind && v.len() == 4).map(|(_, v)| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

/// One netlink message read from a socket.
struct Message {
    kind: u16,
    flags: u16,
    seq: u32,
    /// What follows the `nlmsghdr`.
    payload: Vec<u8>,
}

impl Message {
    /// A generic netlink message's command and attributes.
    fn genl(&self) -> Option<(u8, Attrs<'_>)> {
        let cmd = *self.payload.first()?;
        Some((cmd, attrs(self.payload.get(GENL_HDRLEN..)?)))
    }
}

/// How a request ended.
enum Outcome {
    /// The module's answer message (its attributes), then a zero ack.
    Answered(Vec<(u16, Vec<u8>)>),
    /// An error ack: the errno, and the extended ack's message and missing
    /// attribute, if any.
    Refused(i32, Option<String>, Option<u32>),
    /// A zero ack with no answer before it.
    Unanswered,
    TimedOut,
}

enum RecvError {
    TimedOut,
    Os(i32),
}

/// A generic netlink socket.
struct Socket {
    fd: OwnedFd,
    next_seq: u32,
}

impl Socket {
    fn open() -> Result<Socket, String> {
        // SAFETY: socket() takes no pointers.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_GENERIC) };
        if raw < 0 {
            return Err(format!("socket(AF_NETLINK): {}", errno_name(last_errno())));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let socket = Socket { fd: unsafe { OwnedFd::from_raw_fd(raw) }, next_seq: 1 };
        // Error acks: only the failed message's header (CAP_ACK), then the
        // extended ack's attributes (EXT_ACK).
        // Bound, so that the kernel gives it a port id of its own now:
        // multicasts skip an unbound socket (port id 0, the kernel's).
        // SAFETY: all zeroes is a valid sockaddr_nl: pid 0, "pick one".
        let mut local: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        local.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `local` is live for the call, of the length given.
        let ret = unsafe {
            libc::bind(socket.fd.as_raw_fd(), std::ptr::from_ref(&local).cast(), size_of::<libc::sockaddr_nl>() as libc::socklen_t)
        };
        if ret != 0 {
            return Err(format!("bind(AF_NETLINK): {}", errno_name(last_errno())));
        }
        socket.set_int(NETLINK_CAP_ACK, 1)?;
        socket.set_int(NETLINK_EXT_ACK, 1)?;
        // Room for a burst of events (we are root in the guest).
        socket.set_opt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20)?;
        Ok(socket)
    }

    fn set_opt(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> Result<(), String> {
        // SAFETY: the value points to a live c_int, of the length given.
        let ret = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                std::ptr::from_ref(&value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if ret != 0 {
            return Err(format!("setsockopt({level}, {name}): {}", errno_name(last_errno())));
        }
        Ok(())
    }

    fn set_int(&self, name: libc::c_int, value: libc::c_int) -> Result<(), String> {
        self.set_opt(SOL_NETLINK, name, value)
    }

    /// Joins the multicast group with the id `group`.
    fn join(&self, group: u32) -> Result<(), String> {
        self.set_int(NETLINK_ADD_MEMBERSHIP, group as libc::c_int).map_err(|e| format!("joining group {group}: {e}"))
    }

    /// Whether the socket is in the multicast group `group`.
    fn is_member(&self, group: u32) -> Result<bool, String> {
        let mut bits = [0u32; 8];
        let mut len = size_of::<[u32; 8]>() as libc::socklen_t;
        // SAFETY: `bits` is writable for `len` bytes and `len` is a live
        // socklen_t.
        let ret =
            unsafe { libc::getsockopt(self.fd.as_raw_fd(), SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, bits.as_mut_ptr().cast(), &mut len) };
        if ret != 0 {
            return Err(format!("NETLINK_LIST_MEMBERSHIPS: {}", errno_name(last_errno())));
        }
        // The kernel numbers groups from 1; bit 0 is group 1.
        let bit = group as usize - 1;
        Ok(bits.get(bit / 32).is_some_and(|w| w & (1 << (bit % 32)) != 0))
    }

    /// Sends `genl` (a generic netlink header and attributes) to the
    /// kernel as a message of type `family`; returns its sequence number.
    fn send(&mut self, family: u16, flags: u16, genl: &[u8]) -> Result<u32, String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + genl.len());
        msg.extend_from_slice(&((NLMSG_HDRLEN + genl.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&family.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(genl);
        // SAFETY: all zeroes is a valid sockaddr_nl: the kernel, pid 0.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `kernel` are live for the call, of the lengths given.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                std::ptr::from_ref(&kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(format!("sendto: {}", errno_name(last_errno())));
        }
        Ok(seq)
    }

    /// The next datagram's messages, waiting until `deadline` at most.
    fn recv(&self, deadline: Instant) -> Result<Vec<Message>, RecvError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one live pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready < 0 {
            return Err(RecvError::Os(last_errno()));
        }
        if ready == 0 {
            return Err(RecvError::TimedOut);
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(RecvError::Os(last_errno()));
        }
        let mut data = &buf[..n as usize];
        let mut out = Vec::new();
        while data.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
            if len < NLMSG_HDRLEN || len > data.len() {
                break;
            }
            out.push(Message {
                kind: u16::from_ne_bytes([data[4], data[5]]),
                flags: u16::from_ne_bytes([data[6], data[7]]),
                seq: u32::from_ne_bytes(data[8..12].try_into().unwrap()),
                payload: data[NLMSG_HDRLEN..len].to_vec(),
            });
            data = &data[((len + 3) & !3).min(data.len())..];
        }
        Ok(out)
    }

    /// Sends a request with NLM_F_ACK and waits for its answer and ack.
    fn request(&mut self, family: u16, genl: &[u8]) -> Result<Outcome, String> {
        let seq = self.send(family, NLM_F_REQUEST | NLM_F_ACK, genl)?;
        let deadline = Instant::now() + WAIT;
        let mut answer = None;
        loop {
            let messages = match self.recv(deadline) {
                Ok(m) => m,
                Err(RecvError::TimedOut) => return Ok(Outcome::TimedOut),
                Err(RecvError::Os(e)) => return Err(format!("recv: {}", errno_name(e))),
            };
            for m in messages.into_iter().filter(|m| m.seq == seq) {
                if m.kind == NLMSG_ERROR {
                    return Ok(ack_outcome(&m, answer.take()));
                }
                if m.kind == family {
                    let list = m.genl().map(|(_, l)| l.iter().map(|(k, v)| (*k, v.to_vec())).collect());
                    answer = list;
                }
            }
        }
    }
}

/// What an ack says, given the answer read before it.
fn ack_outcome(m: &Message, answer: Option<Vec<(u16, Vec<u8>)>>) -> Outcome {
    let Some(error) = m.payload.get(0..4) else {
        return Outcome::Refused(libc::EPROTO, None, None);
    };
    let error = i32::from_ne_bytes(error.try_into().unwrap());
    if error == 0 {
        return answer.map_or(Outcome::Unanswered, Outcome::Answered);
    }
    // With NETLINK_CAP_ACK the failed request's header follows the errno,
    // then (NLM_F_ACK_TLVS) the extended ack's attributes.
    let (mut msg, mut missing) = (None, None);
    if m.flags & NLM_F_ACK_TLVS != 0 {
        let tlvs = attrs(m.payload.get(4 + NLMSG_HDRLEN..).unwrap_or(&[]));
        for (kind, value) in &tlvs {
            if *kind == NLMSGERR_ATTR_MSG {
                let text = value.split(|b| *b == 0).next().unwrap_or(&[]);
                msg = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
        missing = attr_u32(&tlvs, NLMSGERR_ATTR_MISS_TYPE);
    }
    Outcome::Refused(-error, msg, missing)
}

/// The family's id and its multicast groups' ids, by name.
struct Family {
    id: u16,
    groups: Vec<(String, u32)>,
}

impl Family {
    fn resolve(socket: &mut Socket) -> Result<Family, String> {
        let mut genl = vec![CTRL_CMD_GETFAMILY, 1, 0, 0];
        put_attr(&mut genl, CTRL_ATTR_FAMILY_NAME, format!("{FAMILY_NAME}\0").as_bytes());
        let list = match socket.request(GENL_ID_CTRL, &genl)? {
            Outcome::Answered(list) => list,
            Outcome::Refused(e, ..) => return Err(format!("family {FAMILY_NAME}: {}", errno_name(e))),
            _ => return Err(format!("family {FAMILY_NAME}: no answer from the controller")),
        };
        let id = list
            .iter()
            .find(|(k, v)| *k == CTRL_ATTR_FAMILY_ID && v.len() == 2)
            .map(|(_, v)| u16::from_ne_bytes([v[0], v[1]]))
            .ok_or("the controller's answer has no family id")?;
        let mut groups = Vec::new();
        if let Some((_, nest)) = list.iter().find(|(k, _)| *k == CTRL_ATTR_MCAST_GROUPS) {
            for (_, group) in attrs(nest) {
                let inner = attrs(group);
                let name = inner.iter().find(|(k, _)| *k == CTRL_ATTR_MCAST_GRP_NAME);
                let id = attr_u32(&inner, CTRL_ATTR_MCAST_GRP_ID);
                if let (Some((_, name)), Some(id)) = (name, id) {
                    let name = name.split(|b| *b == 0).next().unwrap_or(&[]);
                    groups.push((String::from_utf8_lossy(name).into_owned(), id));
                }
            }
        }
        Ok(Family { id, groups })
    }

    fn group(&self, name: &str) -> Result<u32, String> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
            .ok_or(format!("family {FAMILY_NAME} has no multicast group `{name}`"))
    }
}

/// An EMIT request's generic netlink part.
fn emit_request(count: u32, interval_ms: Option<u32>) -> Vec<u8> {
    let mut genl = vec![CMD_EMIT, 1, 0, 0];
    put_attr(&mut genl, A_COUNT, &count.to_ne_bytes());
    if let Some(ms) = interval_ms {
        put_attr(&mut genl, A_INTERVAL_MS, &ms.to_ne_bytes());
    }
    genl
}

/// Describes an outcome in one line; `Ok((first, last))` if answered.
fn describe(outcome: &Outcome) -> Result<(u32, u32), String> {
    match outcome {
        Outcome::Answered(list) => {
            let list: Vec<(u16, &[u8])> = list.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            match (attr_u32(&list, A_FIRST), attr_u32(&list, A_LAST)) {
                (Some(first), Some(last)) => Ok((first, last)),
                _ => Err("answered without FIRST and LAST".into()),
            }
        }
        Outcome::Refused(e, msg, missing) => {
            let mut text = errno_name(*e);
            if let Some(msg) = msg {
                text += &format!(" ({msg})");
            }
            if let Some(attr) = missing {
                text += &format!(" (missing attribute {attr})");
            }
            Err(text)
        }
        Outcome::Unanswered => Err("acked, but no answer".into()),
        Outcome::TimedOut => Err(format!("no answer within {} s", WAIT.as_secs())),
    }
}

/// `emit COUNT [INTERVAL_MS]`.
fn emit(count: u32, interval_ms: Option<u32>) -> Result<bool, String> {
    let mut socket = Socket::open()?;
    let family = Family::resolve(&mut socket)?;
    let outcome = socket.request(family.id, &emit_request(count, interval_ms))?;
    Ok(report_emit(count, &outcome).is_some())
}

/// Prints an EMIT's outcome; its range if answered.
fn report_emit(count: u32, outcome: &Outcome) -> Option<(u32, u32)> {
    match describe(outcome) {
        Ok((first, last)) if last.wrapping_sub(first).wrapping_add(1) == count => {
            println!("ok: emit {count} answered: events {first}..{last}");
            Some((first, last))
        }
        Ok((first, last)) => {
            println!("FAIL: emit {count} answered: events {first}..{last}, not {count} events");
            None
        }
        Err(e) => {
            println!("FAIL: emit {count}: {e}");
            None
        }
    }
}

/// What a listener got: the events' numbers, and the UNLOADING notice's.
#[derive(Default)]
struct Heard {
    events: Vec<u32>,
    notice: Option<u32>,
    error: Option<String>,
}

/// Reads events until `stop(heard)` says enough or `deadline` passes.
fn listen(socket: &Socket, family: u16, deadline: Instant, stop: impl Fn(&Heard) -> bool) -> Heard {
    let mut heard = Heard::default();
    while !stop(&heard) {
        let messages = match socket.recv(deadline) {
            Ok(m) => m,
            Err(RecvError::TimedOut) => break,
            Err(RecvError::Os(e)) => {
                heard.error = Some(errno_name(e));
                break;
            }
        };
        for m in messages.iter().filter(|m| m.kind == family) {
            match m.genl() {
                Some((CMD_EVENT, list)) => heard.events.push(attr_u32(&list, A_SEQ).unwrap_or(0)),
                Some((CMD_UNLOADING, list)) => heard.notice = attr_u32(&list, A_SEQ),
                _ => {}
            }
        }
    }
    heard
}

/// Checks that `events` are exactly `first..=last`, in order.
fn in_order(who: &str, events: &[u32], first: u32, last: u32) -> bool {
    let want = last.wrapping_sub(first).wrapping_add(1) as usize;
    for (i, seq) in events.iter().enumerate() {
        let expected = first.wrapping_add(i as u32);
        if *seq != expected {
            println!("FAIL: {who}: event {} is number {seq}, expected {expected}", i + 1);
            return false;
        }
    }
    if events.len() != want {
        println!("FAIL: {who}: {} of {want} events within {} s", events.len(), WAIT.as_secs());
        return false;
    }
    println!("ok: {who}: {want} events, {first}..{last}, in order");
    true
}

/// `events COUNT LISTENERS`.
fn events(count: u32, listeners: u32) -> Result<bool, String> {
    let mut socket = Socket::open()?;
    let family = Family::resolve(&mut socket)?;
    let group = family.group("events")?;
    let mut threads = Vec::new();
    for _ in 0..listeners {
        let listener = Socket::open()?;
        listener.join(group)?;
        let want = count as usize;
        let id = family.id;
        // Joined before the request is sent: no event can be missed. Each
        // listener reads in a thread of its own, as the events come.
        threads.push(thread::spawn(move || listen(&listener, id, Instant::now() + WAIT, |h| h.events.len() >= want)));
    }
    let outcome = socket.request(family.id, &emit_request(count, None))?;
    let range = report_emit(count, &outcome);
    let mut all = range.is_some();
    for (i, thread) in threads.into_iter().enumerate() {
        let heard = thread.join().map_err(|_| "a listener thread panicked")?;
        let who = format!("listener {}", i + 1);
        if let Some(e) = heard.error {
            println!("FAIL: {who}: receive failed after {} events: {e}", heard.events.len());
            all = false;
            continue;
        }
        // Without an answer, check against the range the events should
        // have had had the module counted from where they start.
        let (first, last) = range.unwrap_or_else(|| {
            let first = heard.events.first().copied().unwrap_or(1);
            (first, first.wrapping_add(count).wrapping_sub(1))
        });
        all &= in_order(&who, &heard.events, first, last);
    }
    Ok(all)
}

/// `malformed`: requests the policy or the doit must refuse.
fn malformed() -> Result<bool, String> {
    let mut socket = Socket::open()?;
    let family = Family::resolve(&mut socket)?;
    let with = |cmd: u8, attrs: &[(u16, &[u8])]| {
        let mut genl = vec![cmd, 1, 0, 0];
        for (kind, value) in attrs {
            put_attr(&mut genl, *kind, value);
        }
        genl
    };
    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("no COUNT", with(CMD_EMIT, &[]), libc::EINVAL),
        ("a COUNT of 1 byte", with(CMD_EMIT, &[(A_COUNT, &[3])]), libc::EINVAL),
        ("a COUNT of 8 bytes", with(CMD_EMIT, &[(A_COUNT, &3u64.to_ne_bytes())]), libc::EINVAL),
        ("COUNT 0", with(CMD_EMIT, &[(A_COUNT, &0u32.to_ne_bytes())]), libc::ERANGE),
        ("COUNT 1001", with(CMD_EMIT, &[(A_COUNT, &1001u32.to_ne_bytes())]), libc::ERANGE),
        ("INTERVAL_MS 11", with(CMD_EMIT, &[(A_COUNT, &1u32.to_ne_bytes()), (A_INTERVAL_MS, &11u32.to_ne_bytes())]), libc::ERANGE),
        ("a SEQ in a request", with(CMD_EMIT, &[(A_COUNT, &1u32.to_ne_bytes()), (A_SEQ, &1u32.to_ne_bytes())]), libc::EINVAL),
        ("an attribute above the highest", with(CMD_EMIT, &[(A_COUNT, &1u32.to_ne_bytes()), (9, &1u32.to_ne_bytes())]), libc::EINVAL),
        (
            "an attribute longer than the message",
            {
                let mut genl = with(CMD_EMIT, &[(A_COUNT, &1u32.to_ne_bytes())]);
                genl[GENL_HDRLEN..GENL_HDRLEN + 2].copy_from_slice(&200u16.to_ne_bytes());
                genl
            },
            libc::EINVAL,
        ),
        ("a message without its generic netlink header", vec![CMD_EMIT, 1], libc::EINVAL),
        ("an unknown command", with(9, &[(A_COUNT, &1u32.to_ne_bytes())]), libc::EOPNOTSUPP),
    ];
    let mut all = true;
    for (what, genl, want) in cases {
        let outcome = socket.request(family.id, &genl)?;
        match (&outcome, describe(&outcome)) {
            (Outcome::Refused(e, ..), Err(text)) if *e == want => println!("ok: {what}: {text}"),
            (_, Ok((first, last))) => {
                println!("FAIL: {what}: answered (events {first}..{last}), expected {}", errno_name(want));
                all = false;
            }
            (_, Err(text)) => {
                println!("FAIL: {what}: {text}, expected {}", errno_name(want));
                all = false;
            }
        }
    }
    // The module must still work after all that.
    let outcome = socket.request(family.id, &emit_request(1, None))?;
    match describe(&outcome) {
        Ok(_) => println!("ok: a good request after them is answered"),
        Err(e) => {
            println!("FAIL: a good request after them: {e}");
            all = false;
        }
    }
    Ok(all)
}

/// `unload COUNT INTERVAL_MS`.
fn unload(count: u32, interval_ms: u32) -> Result<bool, String> {
    let mut socket = Socket::open()?;
    let family = Family::resolve(&mut socket)?;
    let (events_group, notices_group) = (family.group("events")?, family.group("notices")?);
    let listener = Socket::open()?;
    listener.join(events_group)?;
    listener.join(notices_group)?;
    let mut all = true;
    let mut heard = Heard::default();

    // A command in flight: a thread sends EMIT and waits for its answer.
    let requester = (count > 0).then(|| {
        let id = family.id;
        thread::spawn(move || socket.request(id, &emit_request(count, Some(interval_ms))))
    });
    if requester.is_some() {
        heard = listen(&listener, family.id, Instant::now() + WAIT, |h| !h.events.is_empty());
        if heard.events.is_empty() {
            println!("FAIL: no event within {} s: no command in flight", WAIT.as_secs());
            all = false;
        } else {
            println!("ok: the first event arrived: the command is in flight");
        }
    }

    let status = Command::new("rmmod").arg(FAMILY_NAME).status().map_err(|e| format!("rmmod: {e}"))?;
    println!("rmmod exited with {}", status.code().unwrap_or(-1));
    all &= status.success();

    // The rest of the events, then the notice.
    let rest = listen(&listener, family.id, Instant::now() + WAIT, |h| h.notice.is_some());
    heard.events.extend(rest.events);
    heard.notice = rest.notice;
    if let Some(e) = rest.error {
        println!("FAIL: the listener's receive failed: {e}");
        all = false;
    }
    match heard.notice {
        Some(last) => println!("ok: notice: unloading after event {last}"),
        None => {
            println!("FAIL: no UNLOADING notice within {} s", WAIT.as_secs());
            all = false;
        }
    }

    if let Some(requester) = requester {
        let outcome = requester.join().map_err(|_| "the requester thread panicked")??;
        if let Some((first, last)) = report_emit(count, &outcome) {
            all &= in_order("the listener", &heard.events, first, last);
            if heard.notice != Some(last) {
                println!("FAIL: the notice says {:?}, the last event was {last}", heard.notice);
                all = false;
            }
        } else {
            all = false;
        }
    }

    // Unregistering the family took the socket out of its groups.
    for (name, group) in [("events", events_group), ("notices", notices_group)] {
        if listener.is_member(group)? {
            println!("FAIL: the listener is still in group {name} ({group})");
            all = false;
        } else {
            println!("ok: the listener is in group {name} no more");
        }
    }
    Ok(all)
}

fn run(args: &[String]) -> Result<bool, String> {
    let number = |i: usize, what: &str| -> Result<u32, String> {
        args.get(i).ok_or(format!("{what} is missing"))?.parse().map_err(|_| format!("{what} is a number"))
    };
    match args.first().map(String::as_str) {
        Some("emit") => emit(number(1, "COUNT")?, args.get(2).map(|_| number(2, "INTERVAL_MS")).transpose()?),
        Some("events") => events(number(1, "COUNT")?, number(2, "LISTENERS")?),
        Some("malformed") => malformed(),
        Some("unload") => unload(number(1, "COUNT")?, number(2, "INTERVAL_MS")?),
        _ => Err("usage: wbgenl emit COUNT [INTERVAL_MS] | events COUNT LISTENERS | malformed \
                  | unload COUNT INTERVAL_MS"
            .into()),
    }
}

pub(crate) fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("FAIL: {e}");
            ExitCode::from(2)
        }
    }
}
