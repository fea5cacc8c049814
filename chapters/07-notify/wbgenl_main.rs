// SPDX-License-Identifier: GPL-2.0

//! wbgenl: a generic netlink family, events to every listener and an
//! answer to each request.
//!
//! The module registers the generic netlink family `wbgenl` with two
//! multicast groups, `events` and `notices`, and one command, `EMIT`: a
//! process sends `EMIT` with a `COUNT` (and optionally an `INTERVAL_MS`),
//! the module multicasts that many `EVENT` messages to the `events` group,
//! each with a sequence number one above the last, and then answers the
//! sender, on the same socket, with the first and last numbers it sent.
//! Any process that joined the group gets every event, in order; the
//! numbers let it see that none is missing. When the module unloads it
//! sends an `UNLOADING` notice, with the last number, to the `notices`
//! group.
//!
//! `kernel::net::netlink` registers the family and its groups and builds
//! and multicasts the events. It has no operations, no attribute policy
//! and no unicast: the C shim (`wbgenl_shim.c`) attaches the operation and
//! its policy to the family before it is registered and sends the answer;
//! the command's handler, [`wbgenl_emit_doit`], is Rust.
//!
//! ```sh
//! insmod wbgenl.ko
//! wbgenl events 5 2      # 2 listeners, then EMIT COUNT=5: all get 5 events
//! wbgenl malformed       # bad requests are refused with an error
//! rmmod wbgenl
//! ```

use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use kernel::bindings;
use kernel::module::this_module;
use kernel::net::netlink::{Family, GenlMsg, MulticastGroup, NetlinkSkBuff, Registration};
use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::global_lock;
use kernel::time::{delay::fsleep, Delta};

module! {
    type: WbGenl,
    name: "wbgenl",
    authors: ["The Rust Kernel Workbook"],
    description: "A generic netlink family: multicast events and a request/answer command",
    license: "GPL",
}

// ANCHOR: protocol
// The family's protocol; wbgenl_shim.h has the same numbers, and the guest
// program wbgenl.rs (its user space) too.
const CMD_EMIT: u8 = 1;
const CMD_EVENT: u8 = 2;
const CMD_UNLOADING: u8 = 3;

const A_COUNT: usize = 1;
const A_INTERVAL_MS: usize = 2;
const A_SEQ: c_int = 3;
const A_FIRST: c_int = 4;
const A_LAST: c_int = 5;
/// The highest attribute: the policy's `maxattr`.
const A_MAX: usize = 5;
// `Request::attr_u32` reads `attrs[A_COUNT]` and `attrs[A_INTERVAL_MS]`.
const _: () = assert!(A_COUNT <= A_MAX && A_INTERVAL_MS <= A_MAX);

/// The family's multicast groups, by index in [`GROUPS`].
const GROUP_EVENTS: u32 = 0;
const GROUP_NOTICES: u32 = 1;

static GROUPS: [MulticastGroup; 2] = [
    MulticastGroup::const_new(c"events"),
    MulticastGroup::const_new(c"notices"),
];

static FAMILY: Family = Family::const_new(this_module::<LocalModule>(), b"wbgenl\0", 1, &GROUPS);
// ANCHOR_END: protocol

/// The room an attribute with a `payload`-byte value takes in a message
/// (`nla_total_size()`): a 4-byte header, the value, padding to 4 bytes.
const fn attr_size(payload: usize) -> usize {
    (NLA_HDRLEN + payload + 3) & !3
}

/// An attribute's header, `struct nlattr`: its value follows.
const NLA_HDRLEN: usize = size_of::<bindings::nlattr>();

/// `struct genl_family`, `struct genl_info` and `struct sk_buff` as the
/// shim's prototypes take them: only behind pointers, cast from the
/// `bindings` ones. (Those hold a lock type that is empty on this
/// configuration, which the `improper_ctypes` lint refuses in an `extern`
/// block.)
#[repr(C)]
struct CFamily {
    _opaque: [u8; 0],
}
#[repr(C)]
struct CInfo {
    _opaque: [u8; 0],
}
#[repr(C)]
struct CSkBuff {
    _opaque: [u8; 0],
}

// The C shim (wbgenl_shim.c); wbgenl_shim.h gives the contract of each.
extern "C" {
    fn wbgenl_add_ops(family: *mut CFamily);
    fn wbgenl_unicast(info: *mut CInfo, skb: *mut CSkBuff, portid: u32) -> c_int;
}

// ANCHOR: emitter
/// What the senders of events share: the last sequence number sent, and
/// whether the module is unloading.
struct Emitter {
    last_seq: u32,
    closing: bool,
}

global_lock! {
    // SAFETY: `EMITTER.init()` is the first thing `WbGenl::init` does. The
    // mutex's users are the doit, which cannot run before the family is
    // registered after it, and `drop`, which runs only after `init`
    // succeeded.
    unsafe(uninit) static EMITTER: Mutex<Emitter> = Emitter {
        last_seq: 0,
        closing: false,
    };
}

/// Multicasts that reported a listener's full receive buffer. The core
/// reports it (`ENOBUFS`) only for listeners that asked to hear of it
/// (`NETLINK_BROADCAST_ERROR`); any listener that lost an event sees
/// `ENOBUFS` on its own next receive, and a gap in the sequence numbers.
static OVERRUNS: Atomic<u64> = Atomic::new(0);
// ANCHOR_END: emitter

/// Builds a message with the command `cmd` (`EVENT` or `UNLOADING`) and
/// one attribute, the sequence number `seq` as `SEQ`.
fn seq_message(cmd: u8, seq: u32) -> Result<GenlMsg> {
    // EXERCISE: Build the message: a NetlinkSkBuff with room for one u32 attribute (attr_size(4)), a generic netlink header for FAMILY with the command `cmd` (portid and seq 0: no one asked for it), then `seq` as the A_SEQ attribute.
    // HINT: `NetlinkSkBuff::new(size, GFP_KERNEL)?` allocates; its `genlmsg_put(portid, seq, &FAMILY, cmd)?` writes the header and gives a `GenlMsg`.
    // HINT: `msg.put_u32(A_SEQ, seq)?`, then `Ok(msg)`. `?` turns an `AllocError` into ENOMEM.
    // STUB: let _ = (cmd, seq, A_SEQ, attr_size, NetlinkSkBuff::new);
    // STUB: Err(ENOSYS)
    let skb = NetlinkSkBuff::new(attr_size(4), GFP_KERNEL)?;
    let mut msg = skb.genlmsg_put(0, 0, &FAMILY, cmd)?;
    msg.put_u32(A_SEQ, seq)?;
    Ok(msg)
    // END EXERCISE
}

/// Sends `msg` to every socket in the multicast group `group`.
///
/// That no socket listens is not an error, nor that one listener's buffer
/// was full: that listener learns it from its own socket.
fn multicast(msg: GenlMsg, group: u32) -> Result {
    // EXERCISE: Multicast `msg` to `group` of FAMILY (portid 0: exclude no socket). ESRCH (no listener) is success; ENOBUFS (a listener's buffer was full) is success too, counted in OVERRUNS; any other error is returned.
    // HINT: `msg.multicast(&FAMILY, 0, group, GFP_KERNEL)` consumes the message, whatever it returns.
    // HINT: `match ... { Ok(()) => Ok(()), Err(e) if e == ESRCH => Ok(()), Err(e) if e == ENOBUFS => { OVERRUNS.fetch_add(1, ordering::Relaxed); Ok(()) } Err(e) => Err(e) }`
    // STUB: let _ = (msg, group, &OVERRUNS, ordering::Relaxed);
    // STUB: Ok(())
    match msg.multicast(&FAMILY, 0, group, GFP_KERNEL) {
        Ok(()) => Ok(()),
        // Delivered to no socket: none has joined the group, or the only
        // ones that did were full.
        Err(e) if e == ESRCH => Ok(()),
        // A listener that set NETLINK_BROADCAST_ERROR had a full socket:
        // its next receive fails with ENOBUFS, and it sees the gap in the
        // sequence numbers. (Without that option, a full listener is
        // skipped silently and this is `Ok`.)
        Err(e) if e == ENOBUFS => {
            OVERRUNS.fetch_add(1, ordering::Relaxed);
            Ok(())
        }
        // ENOMEM, or a group the family does not have (EINVAL, after a
        // WARN: a bug in the caller).
        Err(e) => Err(e),
    }
    // END EXERCISE
}

// ANCHOR: request
/// A request that a doit is handling: the `struct genl_info` the core
/// passes it, valid until the doit returns (`'a`).
struct Request<'a> {
    info: NonNull<bindings::genl_info>,
    _doit: PhantomData<&'a bindings::genl_info>,
}

impl Request<'_> {
    /// Wraps the `info` a doit got.
    ///
    /// # Safety
    ///
    /// `info` is the request the generic netlink core passed to a doit of
    /// [`FAMILY`], and the result does not outlive that call.
    unsafe fn from_raw(info: NonNull<bindings::genl_info>) -> Self {
        Request {
            info,
            _doit: PhantomData,
        }
    }

    fn info(&self) -> &bindings::genl_info {
        // SAFETY: `info` is valid for reads for as long as `self` lives
        // (`from_raw`), and the core does not change it during the doit.
        unsafe { self.info.as_ref() }
    }

    /// The netlink port (socket) that sent the request.
    fn sender(&self) -> u32 {
        self.info().snd_portid
    }

    /// The value of the u32 attribute `attr` (`COUNT` or `INTERVAL_MS`),
    /// or `None` if the request does not carry it.
    ///
    /// The policy has already refused a value of the wrong size or out of
    /// range, with a precise error for the sender; the length is checked
    /// again here so that what this reads never depends on a table in
    /// another file.
    fn attr_u32(&self, attr: usize) -> Option<u32> {
        if attr != A_COUNT && attr != A_INTERVAL_MS {
            return None;
        }
        let attrs = self.info().attrs;
        if attrs.is_null() {
            // No policy: the core parsed nothing (it cannot happen here).
            return None;
        }
        // SAFETY: a non-null `attrs` has `maxattr + 1 = A_MAX + 1` entries,
        // which the core allocated and filled before calling the doit and
        // frees after it returns; `attr <= A_MAX` (checked above and by the
        // assertion under `A_MAX`).
        let nla = unsafe { *attrs.add(attr) };
        if nla.is_null() {
            return None;
        }
        // SAFETY: a present attribute is a whole `struct nlattr` header
        // inside the request: the core's parser (`nla_ok()`) stores only
        // attributes whose header and `nla_len` bytes fit in the message.
        let header = unsafe { nla.read_unaligned() };
        if usize::from(header.nla_len) != NLA_HDRLEN + size_of::<u32>() {
            return None;
        }
        // SAFETY: the attribute's `nla_len` bytes are inside the request
        // (as above), and they are the header and a 4-byte value right
        // after it (`nla_data()`). The value may be unaligned.
        Some(unsafe {
            nla.cast::<u8>()
                .add(NLA_HDRLEN)
                .cast::<u32>()
                .read_unaligned()
        })
    }

    /// Tells the sender, in the extended ack, that the request lacks the
    /// attribute `attr` (`NL_SET_ERR_ATTR_MISS()`).
    fn report_missing(&self, attr: usize) {
        let extack = self.info().extack;
        if extack.is_null() {
            return;
        }
        // SAFETY: `extack`, when not null, points to the core's ack state
        // for this request, valid and written by no one else while the doit
        // runs; these two fields are plain data (`NL_SET_ERR_ATTR_MISS()`).
        unsafe {
            (*extack).miss_nest = ptr::null();
            (*extack).miss_type = attr as u16;
        }
    }

    /// Starts the answer to this request: a message with the command
    /// `cmd`, addressed back with the request's sequence number, with room
    /// for `size` bytes of attributes.
    fn answer(&self, cmd: u8, size: usize) -> Result<Answer<'_>> {
        // SAFETY: `genlmsg_new` has no precondition; it may sleep, and a
        // doit runs in process context.
        let skb = NonNull::new(unsafe { bindings::genlmsg_new(size, bindings::GFP_KERNEL) })
            .ok_or(ENOMEM)?;
        let info = self.info();
        // SAFETY: `skb` is a new, empty message that we own; `FAMILY` is
        // registered (its doit is running).
        let hdr = unsafe {
            bindings::genlmsg_put(
                skb.as_ptr(),
                info.snd_portid,
                info.snd_seq,
                FAMILY.as_raw(),
                0,
                cmd,
            )
        };
        let Some(hdr) = NonNull::new(hdr) else {
            // SAFETY: `skb` is ours and nothing else points to it.
            unsafe { bindings::nlmsg_free(skb.as_ptr()) };
            return Err(EMSGSIZE);
        };
        Ok(Answer {
            skb,
            hdr,
            request: self,
        })
    }
}

/// An answer being built: a netlink message we own, with its header.
struct Answer<'a> {
    skb: NonNull<bindings::sk_buff>,
    hdr: NonNull<c_void>,
    request: &'a Request<'a>,
}

impl Answer<'_> {
    /// Adds the u32 attribute `attr`.
    fn put_u32(&mut self, attr: c_int, value: u32) -> Result {
        // SAFETY: `nla_put` needs a message we may write and `data` valid
        // for reads of `attrlen` bytes: we own `skb`, and `value` is 4
        // bytes on our stack. It fails with -EMSGSIZE if there is no room.
        kernel::error::to_result(unsafe {
            bindings::nla_put(
                self.skb.as_ptr(),
                attr,
                size_of::<u32>() as c_int,
                ptr::from_ref(&value).cast(),
            )
        })
    }

    /// Finishes the message and sends it to the socket `portid`.
    fn send(self, portid: u32) -> Result {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `hdr` is the header `genlmsg_put` wrote in `skb`, which
        // we own.
        unsafe { bindings::genlmsg_end(this.skb.as_ptr(), this.hdr.as_ptr()) };
        // SAFETY: `wbgenl_unicast` needs the `info` of the running doit
        // (the request's, valid while `self` borrows it) and a finished
        // message, which it consumes: `this` is not dropped, so nothing
        // frees or touches `skb` after.
        kernel::error::to_result(unsafe {
            wbgenl_unicast(
                this.request.info.as_ptr().cast(),
                this.skb.as_ptr().cast(),
                portid,
            )
        })
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        // SAFETY: the message is ours (not sent: `send` does not drop) and
        // nothing else points to it.
        unsafe { bindings::nlmsg_free(self.skb.as_ptr()) };
    }
}
// ANCHOR_END: request

// ANCHOR: doit
/// The `EMIT` command's doit: called by the generic netlink core, in the
/// sender's `sendmsg()`, in process context, after it checked the request
/// against the policy.
///
/// # Safety
///
/// `info` is the request the core passes to a doit of [`FAMILY`]: valid
/// until this returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wbgenl_emit_doit(
    _skb: *mut bindings::sk_buff,
    info: *mut bindings::genl_info,
) -> c_int {
    let Some(info) = NonNull::new(info) else {
        return EINVAL.to_errno();
    };
    // SAFETY: this function's contract is `from_raw`'s, and `request`
    // lives only until it returns.
    let request = unsafe { Request::from_raw(info) };
    match emit(&request) {
        Ok(()) => 0,
        // The core sends the sender an ack with this error.
        Err(e) => e.to_errno(),
    }
}

/// Multicasts `COUNT` events, `INTERVAL_MS` apart, then answers the sender
/// with the first and last sequence numbers.
fn emit(request: &Request<'_>) -> Result {
    // COUNT is required; the policy has checked its type and range.
    let Some(count) = request.attr_u32(A_COUNT) else {
        request.report_missing(A_COUNT);
        return Err(EINVAL);
    };
    let interval_ms = request.attr_u32(A_INTERVAL_MS).unwrap_or(0);

    // The mutex keeps one command's events together and in order: doits
    // run in parallel (`parallel_ops`). It may be held while sleeping.
    let (first, last) = {
        let mut emitter = EMITTER.lock();
        if emitter.closing {
            return Err(ESHUTDOWN);
        }
        let first = emitter.last_seq.wrapping_add(1);
        for i in 0..count {
            if i > 0 && interval_ms > 0 {
                fsleep(Delta::from_millis(interval_ms.into()));
            }
            let seq = emitter.last_seq.wrapping_add(1);
            // On an error the events before this one are out; the number
            // is used for the next event sent, so listeners see no gap.
            multicast(seq_message(CMD_EVENT, seq)?, GROUP_EVENTS)?;
            emitter.last_seq = seq;
        }
        (first, emitter.last_seq)
    };

    // ANCHOR_END: doit
    // EXERCISE: Answer the sender on its own socket: an answer with command CMD_EMIT and room for two u32 attributes, carrying `first` as A_FIRST and `last` as A_LAST, sent to the request's sender.
    // HINT: `let mut answer = request.answer(CMD_EMIT, 2 * attr_size(4))?;` then `answer.put_u32(A_FIRST, first)?` and the same for A_LAST.
    // HINT: `answer.send(request.sender())`: the sender's netlink portid, which the core took from the socket the request came on.
    // STUB: let _ = (first, last, CMD_EMIT, A_FIRST, A_LAST);
    // STUB: let _ = (Request::answer, Request::sender, Answer::put_u32, Answer::send);
    // STUB: Ok(())
    let mut answer = request.answer(CMD_EMIT, 2 * attr_size(4))?;
    answer.put_u32(A_FIRST, first)?;
    answer.put_u32(A_LAST, last)?;
    answer.send(request.sender())
    // END EXERCISE
}

struct WbGenl {
    /// `None` once unregistered.
    registration: Option<Registration>,
}

// ANCHOR: init
impl kernel::Module for WbGenl {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: once, before any other use of `EMITTER`: its only other
        // user is the doit, which cannot run before the family is
        // registered below.
        unsafe { EMITTER.init() };
        // SAFETY: `wbgenl_add_ops` needs a family that no one else reads,
        // before it is registered: `FAMILY` is registered only below, and
        // a module's statics are fresh on each load.
        unsafe { wbgenl_add_ops(FAMILY.as_raw().cast()) };
        let registration = FAMILY.register()?;
        pr_info!("family wbgenl registered: multicast groups events and notices, command EMIT\n");
        Ok(WbGenl {
            registration: Some(registration),
        })
    }
}
// ANCHOR_END: init

impl Drop for WbGenl {
    fn drop(&mut self) {
        // EXERCISE: Stop new commands (set `closing` under EMITTER: this waits for a command that is still sending its events), multicast an UNLOADING notice with the last sequence number as A_SEQ to GROUP_NOTICES (a failure is logged with pr_warn!, not fatal), then unregister the family and log `unregistered after {last} events, {overruns} overruns`.
        // HINT: Take the mutex in a block of its own and let it go before unregistering: `genl_unregister_family()` waits for running doits, and a doit may be waiting for the mutex.
        // HINT: The notice is `multicast(seq_message(CMD_UNLOADING, last)?, GROUP_NOTICES)`, in a closure that returns `Result` since `drop` cannot use `?`; `drop(self.registration.take())` unregisters.
        // STUB: let _ = (CMD_UNLOADING, GROUP_NOTICES, &self.registration);
        let last = {
            let mut emitter = EMITTER.lock();
            emitter.closing = true;
            emitter.last_seq
        };
        let notice = || multicast(seq_message(CMD_UNLOADING, last)?, GROUP_NOTICES);
        if let Err(e) = notice() {
            pr_warn!("cannot send the unloading notice: {e:?}\n");
        }
        // Waits for doits still running (they end at once: `closing`);
        // after it, no socket is in our groups and no doit can start.
        drop(self.registration.take());
        pr_info!(
            "unregistered after {last} events, {} overruns\n",
            OVERRUNS.load(ordering::Relaxed)
        );
        // END EXERCISE
    }
}
