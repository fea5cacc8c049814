// SPDX-License-Identifier: GPL-2.0

//! wbpair: two network devices linked back to back, like a veth pair.
//!
//! The module registers `wb0` and `wb1`. What one transmits, the other
//! receives: `ndo_start_xmit` on `wb0` puts the frame on `wb1`'s receive
//! ring (the "wire") and raises `wb1`'s receive interrupt, which fires a
//! little later, as a network card's does when it moderates its
//! interrupts. The interrupt hands the frames to the stack with
//! `netif_rx()`, or, with `napi=1`, schedules a NAPI poll that takes at
//! most `budget` frames per call and delivers them from softirq context.
//!
//! A full ring stops the sender's transmit queue (`ndo_start_xmit` returns
//! `NETDEV_TX_BUSY` and the qdisc keeps the packet); the receiver wakes it
//! once it has made room. A frame sent while the other end is down is
//! dropped. Each device counts what it sent, received and dropped in
//! atomic counters, which `ndo_get_stats64` reports (`/proc/net/dev`).
//! `ndo_change_mtu` refuses MTUs above [`MAX_MTU`].
//!
//! The kernel sends to its own addresses through `lo`, never through a
//! device, so the checks move `wb1` into a network namespace of its own:
//!
//! ```sh
//! insmod wbpair.ko
//! touch /tmp/ns1 && unshare --net=/tmp/ns1 true
//! ip link set wb1 netns /tmp/ns1     # busybox: ip link set wb1 netns PID
//! nsenter --net=/tmp/ns1 ip addr add 10.9.0.2/24 dev wb1
//! ip addr add 10.9.0.1/24 dev wb0 && ip link set wb0 up
//! ping -c 3 10.9.0.2
//! ```
//!
//! `alloc_netdev()`, `struct net_device_ops` and the `sk_buff` helpers are
//! C macros, data and inline functions that Linux 7.3's `kernel` crate does
//! not wrap: a C shim (`wbpair_shim.c`) holds them, and the small safe
//! types below ([`Device`], [`NetDev`], [`Skb`]) are the only Rust code
//! that calls it.

use core::mem::ManuallyDrop;
use core::ptr::{null_mut, NonNull};

use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::types::Opaque;

module! {
    type: WbPair,
    name: "wbpair",
    authors: ["The Rust Kernel Workbook"],
    description: "A pair of linked network devices: transmit, receive, NAPI, statistics",
    license: "GPL",
    params: {
        napi: bool {
            default: false,
            description: "Receive with NAPI polls (true) or netif_rx() from the interrupt (false)",
        },
        ring: u32 {
            default: 64,
            description: "Frames a device's receive ring holds (1 to 4096)",
        },
        irq_delay_us: u32 {
            default: 200,
            description: "Microseconds from a frame's arrival to the receive interrupt (0 to 100000)",
        },
    },
}

/// The largest MTU `ndo_change_mtu` accepts (a "jumbo frame").
const MAX_MTU: i32 = 9000;
/// An Ethernet header: destination, source, EtherType.
const ETH_HLEN: u32 = 14;
/// An 802.1Q VLAN tag, which a frame of the MTU may carry on top.
const VLAN_HLEN: u32 = 4;
/// `ndo_start_xmit`'s answers (`netdev_tx_t`).
const NETDEV_TX_OK: c_int = 0;
const NETDEV_TX_BUSY: c_int = 0x10;
/// `netif_rx()`'s answer when the packet was dropped.
const NET_RX_DROP: c_int = 1;

// ANCHOR: ffi
/// `struct net_device`, only ever used through pointers.
#[repr(C)]
struct RawNetDevice {
    _opaque: [u8; 0],
}

/// `struct sk_buff`, likewise.
#[repr(C)]
struct RawSkb {
    _opaque: [u8; 0],
}

/// `struct wbpair_stats` (wbpair_shim.h): what `ndo_get_stats64` reports.
#[repr(C)]
#[derive(Default)]
struct Stats {
    rx_packets: u64,
    rx_bytes: u64,
    rx_dropped: u64,
    tx_packets: u64,
    tx_bytes: u64,
    tx_dropped: u64,
}

// The C shim (wbpair_shim.c); wbpair_shim.h gives the contract of each.
extern "C" {
    fn wbpair_create(
        name: *const c_char,
        mac: *const u8,
        irq_delay_us: u32,
        port: *mut c_void,
        res: *mut *mut RawNetDevice,
    ) -> c_int;
    fn wbpair_register(a: *mut RawNetDevice, b: *mut RawNetDevice) -> c_int;
    fn wbpair_unregister(a: *mut RawNetDevice, b: *mut RawNetDevice);
    fn wbpair_free(dev: *mut RawNetDevice);

    fn wbpair_name(dev: *mut RawNetDevice) -> *const c_char;
    fn wbpair_peer(dev: *mut RawNetDevice) -> *mut RawNetDevice;
    fn wbpair_running(dev: *mut RawNetDevice) -> bool;
    fn wbpair_mtu(dev: *mut RawNetDevice) -> u32;
    fn wbpair_set_mtu(dev: *mut RawNetDevice, mtu: u32);
    fn wbpair_carrier(dev: *mut RawNetDevice, on: bool);
    fn wbpair_tx_start(dev: *mut RawNetDevice);
    fn wbpair_tx_stop(dev: *mut RawNetDevice);
    fn wbpair_tx_wake(dev: *mut RawNetDevice);
    fn wbpair_tx_stopped(dev: *mut RawNetDevice) -> bool;
    fn wbpair_ring_push(dev: *mut RawNetDevice, skb: *mut RawSkb);
    fn wbpair_ring_pop(dev: *mut RawNetDevice) -> *mut RawSkb;
    fn wbpair_ring_len(dev: *mut RawNetDevice) -> u32;
    fn wbpair_raise_irq(dev: *mut RawNetDevice);
    fn wbpair_napi_enable(dev: *mut RawNetDevice);
    fn wbpair_napi_disable(dev: *mut RawNetDevice);
    fn wbpair_napi_schedule(dev: *mut RawNetDevice);
    fn wbpair_napi_complete(dev: *mut RawNetDevice, work_done: c_int) -> bool;

    fn wbpair_skb_len(skb: *const RawSkb) -> u32;
    fn wbpair_skb_headroom(skb: *const RawSkb) -> u32;
    fn wbpair_skb_tailroom(skb: *const RawSkb) -> u32;
    fn wbpair_skb_protocol(skb: *const RawSkb) -> u16;
    fn wbpair_skb_ip_summed(skb: *const RawSkb) -> u8;
    fn wbpair_skb_arrive(skb: *mut RawSkb, dev: *mut RawNetDevice) -> c_int;
    fn wbpair_netif_rx(skb: *mut RawSkb) -> c_int;
    fn wbpair_receive(dev: *mut RawNetDevice, skb: *mut RawSkb);
    fn wbpair_drop(skb: *mut RawSkb);
}
// ANCHOR_END: ffi

// ANCHOR: skb
/// An `sk_buff` this code owns: freed (as a drop, `dev_kfree_skb_any()`)
/// when dropped, unless handed on with [`Arrived::netif_rx`],
/// [`Arrived::receive`] or [`NetDev::ring_push`], which take
/// it by value. So an skb is freed or handed on exactly once: the compiler
/// sees to it.
struct Skb(NonNull<RawSkb>);

// SAFETY: an skb is not tied to a CPU or task: whoever owns it may free it
// or hand it on from any context (the shim uses the `_any` free
// functions).
unsafe impl Send for Skb {}

impl Skb {
    /// Takes ownership of `skb`.
    ///
    /// # Safety
    ///
    /// `skb` is a valid `sk_buff` whose ownership the caller passes on: no
    /// one else uses or frees it from now on.
    unsafe fn from_raw(skb: *mut RawSkb) -> Option<Skb> {
        NonNull::new(skb).map(Skb)
    }

    /// Gives up ownership without freeing: the caller of `into_raw` is
    /// responsible for the skb now.
    fn into_raw(self) -> *mut RawSkb {
        ManuallyDrop::new(self).0.as_ptr()
    }

    fn raw(&self) -> *mut RawSkb {
        self.0.as_ptr()
    }

    /// Bytes of data, from `skb->data` on (the Ethernet header included
    /// until [`Skb::arrive_at`] pulls it).
    fn len(&self) -> u32 {
        // SAFETY: `wbpair_skb_len` reads an skb the caller owns: we do.
        unsafe { wbpair_skb_len(self.raw()) }
    }

    /// Free bytes before `skb->data`: room to push headers into.
    fn headroom(&self) -> u32 {
        // SAFETY: as in `len`.
        unsafe { wbpair_skb_headroom(self.raw()) }
    }

    /// Free bytes after the data: room to put more at the end.
    fn tailroom(&self) -> u32 {
        // SAFETY: as in `len`.
        unsafe { wbpair_skb_tailroom(self.raw()) }
    }

    /// `skb->protocol`, host order (0x0800: IPv4, 0x0806: ARP).
    fn protocol(&self) -> u16 {
        // SAFETY: as in `len`.
        unsafe { wbpair_skb_protocol(self.raw()) }
    }

    /// `skb->ip_summed`: what is known of the checksums.
    fn checksum_state(&self) -> &'static str {
        // SAFETY: as in `len`.
        match unsafe { wbpair_skb_ip_summed(self.raw()) } {
            0 => "none (computed in software, to verify on receipt)",
            1 => "unnecessary (verified)",
            2 => "complete (the device summed the packet)",
            _ => "partial (the device must compute it)",
        }
    }
}

impl Drop for Skb {
    fn drop(&mut self) {
        // SAFETY: `wbpair_drop` takes an skb the caller owns: `self` does,
        // and is not used after `drop`.
        unsafe { wbpair_drop(self.raw()) };
    }
}

mod arrived {
    use super::*;

    /// An skb made to arrive at a device ([`Skb::arrive_at`]): the only
    /// kind the stack may be handed. Its field is private to this module,
    /// so no other code makes one from a frame that has not arrived.
    pub(super) struct Arrived(Skb);

    impl Skb {
        /// Makes a frame another device sent arrive at `dev`: pulls the
        /// Ethernet header (`skb->data` moves 14 bytes on), sets `skb->dev`,
        /// `skb->protocol` and who the frame is for. On failure the skb is
        /// given back.
        pub(super) fn arrive_at(self, dev: &NetDev) -> Result<Arrived, Skb> {
            // SAFETY: `wbpair_skb_arrive` needs an skb the caller owns (we
            // do) and a live device (`NetDev`'s invariant); it takes nothing.
            if unsafe { wbpair_skb_arrive(self.raw(), dev.raw()) } == 0 {
                Ok(Arrived(self))
            } else {
                Err(self)
            }
        }
    }

    impl core::ops::Deref for Arrived {
        type Target = Skb;

        fn deref(&self) -> &Skb {
            &self.0
        }
    }

    impl Arrived {
        /// Hands the skb to the stack through the backlog queue, to be
        /// processed in softirq context later. False if it was dropped (the
        /// backlog is full, or the device is going down; the core counts
        /// it); either way the stack has taken it.
        pub(super) fn netif_rx(self) -> bool {
            // SAFETY: `wbpair_netif_rx` takes an skb the caller owns that
            // has arrived (`wbpair_skb_arrive`), in any context: an
            // `Arrived` owns its skb and is made only by `arrive_at`, once
            // that call succeeded.
            unsafe { wbpair_netif_rx(self.0.into_raw()) != NET_RX_DROP }
        }

        /// Hands the skb to the stack at once, from a NAPI poll.
        pub(super) fn receive(self, poll: &Poll<'_>) {
            // SAFETY: `wbpair_receive` takes an skb the caller owns that
            // has arrived (as in `netif_rx`), and must run inside the
            // device's NAPI poll: only `Poll::new`, which is unsafe and
            // called only in `wbpair_poll`, makes a `Poll`.
            unsafe { wbpair_receive(poll.dev().raw(), self.0.into_raw()) };
        }
    }
}
use arrived::Arrived;
// ANCHOR_END: skb

// ANCHOR: netdev
/// One of this module's devices, borrowed for the length of a callback.
///
/// Invariant: the device is live (created, not yet freed). A `&NetDev` is
/// only made from the pointer a callback is given, or from a live
/// device's peer, and does not outlive the callback; callbacks only run
/// while both devices are registered, and [`Pair`] unregisters both
/// before it frees either.
#[repr(transparent)]
struct NetDev(Opaque<RawNetDevice>);

impl NetDev {
    /// # Safety
    ///
    /// `dev` is a live device of this module, for all of `'a`.
    unsafe fn from_raw<'a>(dev: *mut RawNetDevice) -> &'a NetDev {
        // SAFETY: `NetDev` is a transparent wrapper of the pointee, and
        // the caller guarantees it stays live for `'a`.
        unsafe { &*dev.cast::<NetDev>() }
    }

    fn raw(&self) -> *mut RawNetDevice {
        self.0.get()
    }

    fn name(&self) -> &CStr {
        // SAFETY: `wbpair_name` gives the NUL-terminated name of a live
        // device, which lives as long as the device and so as `self`.
        unsafe { CStr::from_char_ptr(wbpair_name(self.raw())) }
    }

    /// The other end of the wire.
    fn peer(&self) -> &NetDev {
        // SAFETY: the peer was set before registration and both devices
        // are freed only after both are unregistered: it is live as long
        // as `self` is.
        unsafe { NetDev::from_raw(wbpair_peer(self.raw())) }
    }

    /// Up (between `ndo_open` and `ndo_stop`).
    fn is_running(&self) -> bool {
        // SAFETY: a live device (invariant).
        unsafe { wbpair_running(self.raw()) }
    }

    fn mtu(&self) -> u32 {
        // SAFETY: a live device (invariant).
        unsafe { wbpair_mtu(self.raw()) }
    }

    fn carrier(&self, on: bool) {
        // SAFETY: a live device (invariant); any context.
        unsafe { wbpair_carrier(self.raw(), on) };
    }

    fn tx_start(&self) {
        // SAFETY: a live device (invariant); any context.
        unsafe { wbpair_tx_start(self.raw()) };
    }

    fn tx_stop(&self) {
        // SAFETY: as in `tx_start`.
        unsafe { wbpair_tx_stop(self.raw()) };
    }

    fn tx_wake(&self) {
        // SAFETY: as in `tx_start`.
        unsafe { wbpair_tx_wake(self.raw()) };
    }

    fn tx_stopped(&self) -> bool {
        // SAFETY: as in `tx_start`.
        unsafe { wbpair_tx_stopped(self.raw()) }
    }

    /// Puts a frame on this device's receive ring (the wire's far end).
    fn ring_push(&self, skb: Skb) {
        // SAFETY: a live device (invariant); `wbpair_ring_push` takes an
        // skb the caller owns, from any context.
        unsafe { wbpair_ring_push(self.raw(), skb.into_raw()) };
    }

    /// The oldest frame on this device's ring, now ours.
    fn ring_pop(&self) -> Option<Skb> {
        // SAFETY: a live device (invariant). `wbpair_ring_pop` hands over
        // the skb it unlinks (or NULL): no one else has it any more.
        unsafe { Skb::from_raw(wbpair_ring_pop(self.raw())) }
    }

    fn ring_len(&self) -> u32 {
        // SAFETY: a live device (invariant); any context.
        unsafe { wbpair_ring_len(self.raw()) }
    }

    /// Raises this device's receive interrupt, unless it is pending.
    fn raise_irq(&self) {
        // SAFETY: a live device (invariant); any context.
        unsafe { wbpair_raise_irq(self.raw()) };
    }

    fn napi_schedule(&self) {
        // SAFETY: a live device (invariant); any context. A disabled NAPI
        // context is not scheduled (it may be left marked MISSED, which
        // costs one extra poll after `napi_enable`).
        unsafe { wbpair_napi_schedule(self.raw()) };
    }
}
// ANCHOR_END: netdev

mod napi {
    use super::{wbpair_napi_complete, NetDev};

    /// What a NAPI poll may do that nothing else may: deliver with
    /// [`super::Skb::receive`] and complete. Its field is private to this
    /// module and [`Poll::new`] is unsafe: safe code elsewhere in the
    /// driver (the interrupt, say) cannot make one.
    pub(super) struct Poll<'a> {
        dev: &'a NetDev,
    }

    impl<'a> Poll<'a> {
        /// # Safety
        ///
        /// Called inside `dev`'s NAPI poll, and the result does not
        /// outlive that call.
        pub(super) unsafe fn new(dev: &'a NetDev) -> Self {
            Poll { dev }
        }

        /// The device being polled.
        pub(super) fn dev(&self) -> &'a NetDev {
            self.dev
        }

        /// Tells NAPI this poll is done (it did less than its budget).
        pub(super) fn complete(&self, work_done: i32) {
            // SAFETY: `wbpair_napi_complete` must be called from the
            // device's poll: `Poll::new`'s contract.
            unsafe { wbpair_napi_complete(self.dev.raw(), work_done) };
        }
    }
}
use napi::Poll;

// ANCHOR: port
/// What the driver keeps for one device.
struct Port {
    rx_packets: Atomic<u64>,
    rx_bytes: Atomic<u64>,
    rx_dropped: Atomic<u64>,
    tx_packets: Atomic<u64>,
    tx_bytes: Atomic<u64>,
    tx_dropped: Atomic<u64>,
    /// Times `ndo_start_xmit` found the peer's ring full.
    busy: Atomic<u64>,
    /// Whether the first frame each way was shown in the log.
    shown_tx: Atomic<bool>,
    shown_rx: Atomic<bool>,
    napi: bool,
    ring: u32,
}

/// Adds one to a counter.
fn count(counter: &Atomic<u64>, by: u32) {
    counter.fetch_add(u64::from(by), ordering::Relaxed);
}
// ANCHOR_END: port

/// What `ndo_start_xmit` did with the skb.
enum Tx {
    /// Taken: passed on, or dropped and counted.
    Taken,
    /// Not taken: the ring is full; the stack keeps the skb, and will
    /// offer it again once the queue is woken.
    Busy(Skb),
}

// ANCHOR: xmit_head
/// `ndo_start_xmit`: BH disabled, `dev`'s transmit queue lock held.
fn xmit(port: &Port, dev: &NetDev, skb: Skb) -> Tx {
    if !port.shown_tx.xchg(true, ordering::Relaxed) {
        pr_info!(
            "{}: first frame sent: {} bytes from the Ethernet header on, headroom {}, tailroom {}, protocol {:#06x}, checksum {}\n",
            dev.name(),
            skb.len(),
            skb.headroom(),
            skb.tailroom(),
            skb.protocol(),
            skb.checksum_state()
        );
    }
    let peer = dev.peer();
    // ANCHOR_END: xmit_head
    // EXERCISE: Pass the frame to the peer: dropped (and counted in tx_dropped) if the peer is down; when the peer's ring holds `port.ring` frames, stop the queue and return `Tx::Busy(skb)` (count it in `busy`); else push it on the peer's ring, count it in tx_packets/tx_bytes, and raise the peer's interrupt.
    // HINT: Read `skb.len()` before the push: after `peer.ring_push(skb)` the skb is no longer yours, and the compiler will say so.
    // HINT: A down peer will never drain its ring: drop (`drop(skb)` frees it) rather than keep the packet. A full ring drains soon: `dev.tx_stop()` and give the skb back.
    // HINT: Between your look at the ring and `tx_stop()` the peer may have emptied it and found the queue not yet stopped: look again after stopping, and `dev.tx_start()` if there is room after all.
    // STUB: let _ = (peer, &port.busy);
    // STUB: drop(skb);
    // STUB: Tx::Taken
    if !peer.is_running() {
        count(&port.tx_dropped, 1);
        drop(skb);
        return Tx::Taken;
    }
    if peer.ring_len() >= port.ring {
        dev.tx_stop();
        if peer.ring_len() >= port.ring {
            count(&port.busy, 1);
            return Tx::Busy(skb);
        }
        dev.tx_start();
    }
    let len = skb.len();
    peer.ring_push(skb);
    count(&port.tx_packets, 1);
    count(&port.tx_bytes, len);
    peer.raise_irq();
    Tx::Taken
    // END EXERCISE
}

// ANCHOR: arrive
/// A frame taken off `dev`'s ring: checked against the MTU and made to
/// arrive (Ethernet header pulled). `None` if it was dropped (counted).
fn arrive(port: &Port, dev: &NetDev, skb: Skb) -> Option<Arrived> {
    let len = skb.len();
    // A frame larger than this end's MTU (and a VLAN tag) is dropped, as
    // on a real wire.
    if len > dev.mtu() + ETH_HLEN + VLAN_HLEN {
        count(&port.rx_dropped, 1);
        return None;
    }
    let Ok(skb) = skb.arrive_at(dev) else {
        count(&port.rx_dropped, 1);
        return None;
    };
    if !port.shown_rx.xchg(true, ordering::Relaxed) {
        pr_info!(
            "{}: first frame received: {} bytes left after pulling the Ethernet header, headroom {}, protocol {:#06x}\n",
            dev.name(),
            skb.len(),
            skb.headroom(),
            skb.protocol()
        );
    }
    Some(skb)
}

/// Counts a frame of `len` bytes (its Ethernet header included) that the
/// stack took: after `netif_rx()` said so, since the core counts the
/// frames it drops itself.
fn received(port: &Port, len: u32) {
    count(&port.rx_packets, 1);
    count(&port.rx_bytes, len);
}

/// After taking frames off `dev`'s ring: wakes the peer's queue if it
/// stopped because the ring was full, now that there is room.
fn wake_peer(port: &Port, dev: &NetDev) {
    let peer = dev.peer();
    if peer.is_running() && peer.tx_stopped() && dev.ring_len() < port.ring {
        peer.tx_wake();
    }
}
// ANCHOR_END: arrive

// ANCHOR: irq_head
/// The receive interrupt: hard interrupt context (an hrtimer; on a
/// PREEMPT_RT kernel it would expire in the timer softirq instead).
fn irq(port: &Port, dev: &NetDev) {
    if port.napi {
        // The second step: leave the work to the poll, in softirq context.
        dev.napi_schedule();
        return;
    }
    // ANCHOR_END: irq_head
    // EXERCISE: Take every frame off the ring, make it arrive (`arrive`) and hand it to the stack with `netif_rx()`, counting it as received (`received`) if the stack kept it; then wake the peer's queue.
    // HINT: `while let Some(skb) = dev.ring_pop() { ... }`; note `skb.len()` first (the frame with its Ethernet header), then `arrive(port, dev, skb)` gives `Some(skb)` if the frame is to be delivered.
    // HINT: `skb.netif_rx()` takes the skb even when the backlog is full and drops it; it returns false then, and the core counts that drop itself (in the device's core stats): count `received(port, len)` only when it returns true.
    // HINT: Without `wake_peer(port, dev)` a sender that found the ring full stays stopped for ever.
    // STUB: let _ = (port, dev, received);
    while let Some(skb) = dev.ring_pop() {
        let len = skb.len();
        if let Some(skb) = arrive(port, dev, skb) {
            if skb.netif_rx() {
                received(port, len);
            }
        }
    }
    wake_peer(port, dev);
    // END EXERCISE
}

/// The NAPI poll: softirq context; at most `budget` frames.
fn poll(port: &Port, napi: &Poll<'_>, budget: i32) -> i32 {
    let dev = napi.dev();
    // EXERCISE: Deliver at most `budget` frames from the ring with `skb.receive(napi)`, counting each delivered frame with `received`, wake the peer's queue, and call `napi.complete(done)` only if fewer than `budget` were done; return how many were done.
    // HINT: Count every frame taken off the ring as work done, delivered or dropped.
    // HINT: Returning `budget` without completing means "more to do": NAPI polls again. Completing and then returning `budget` is a bug the core warns about.
    // STUB: let _ = (port, dev);
    // STUB: napi.complete(0);
    // STUB: budget.min(0)
    let mut done = 0;
    while done < budget {
        let Some(skb) = dev.ring_pop() else {
            break;
        };
        done += 1;
        let len = skb.len();
        if let Some(skb) = arrive(port, dev, skb) {
            skb.receive(napi);
            received(port, len);
        }
    }
    wake_peer(port, dev);
    if done < budget {
        napi.complete(done);
    }
    done
    // END EXERCISE
}

// ANCHOR: open
/// `ndo_open`: process context, RTNL held.
fn open(port: &Port, dev: &NetDev) -> Result {
    if port.napi {
        // SAFETY: `wbpair_napi_enable` runs in process context with RTNL
        // held (`ndo_open`), on a NAPI context that is disabled: it was
        // added disabled and `ndo_stop` disables it again.
        unsafe { wbpair_napi_enable(dev.raw()) };
    }
    dev.tx_start();
    // The link is up when both ends are.
    let peer = dev.peer();
    if peer.is_running() {
        dev.carrier(true);
        peer.carrier(true);
    }
    Ok(())
}
// ANCHOR_END: open

/// `ndo_stop`: process context, RTNL held. The core no longer calls
/// `ndo_start_xmit` on `dev` (it has stopped its qdisc).
fn stop(port: &Port, dev: &NetDev) {
    // EXERCISE: Undo `open`: stop the queue, take the carrier off both ends, disable NAPI (if used), then drop (counting in rx_dropped) the frames left on the ring, and wake the peer's queue so that it drops rather than waits.
    // HINT: NAPI first, then the ring: `napi_disable` waits for a poll in progress, which could still be taking frames off it.
    // HINT: `while let Some(skb) = dev.ring_pop() { ... }`: dropping an `Skb` frees it. The peer sees this end is down and drops what it sends next.
    // STUB: let _ = port;
    dev.tx_stop();
    dev.carrier(false);
    dev.peer().carrier(false);
    if port.napi {
        // SAFETY: `wbpair_napi_disable` runs in process context with RTNL
        // held (`ndo_stop`), on the NAPI context `open` enabled.
        unsafe { wbpair_napi_disable(dev.raw()) };
    }
    while let Some(skb) = dev.ring_pop() {
        count(&port.rx_dropped, 1);
        drop(skb);
    }
    let peer = dev.peer();
    if peer.is_running() && peer.tx_stopped() {
        peer.tx_wake();
    }
    // END EXERCISE
}

/// `ndo_get_stats64`: any context, while the counters change.
fn get_stats(port: &Port, stats: &mut Stats) {
    // EXERCISE: Fill `stats` from the port's six counters.
    // HINT: The checks read these through /proc/net/dev: all zero there means this function is still empty.
    // HINT: `port.rx_packets.load(ordering::Relaxed)`; each counter is read on its own, so a reader may see a packet in tx_packets and not yet in tx_bytes: fine for statistics.
    // STUB: let _ = (port, stats);
    stats.rx_packets = port.rx_packets.load(ordering::Relaxed);
    stats.rx_bytes = port.rx_bytes.load(ordering::Relaxed);
    stats.rx_dropped = port.rx_dropped.load(ordering::Relaxed);
    stats.tx_packets = port.tx_packets.load(ordering::Relaxed);
    stats.tx_bytes = port.tx_bytes.load(ordering::Relaxed);
    stats.tx_dropped = port.tx_dropped.load(ordering::Relaxed);
    // END EXERCISE
}

// ANCHOR: mtu
/// `ndo_change_mtu`: process context, RTNL held. The core has checked
/// `new_mtu` against the minimum (68).
fn change_mtu(dev: &NetDev, new_mtu: i32) -> Result {
    if new_mtu > MAX_MTU {
        pr_info!("{}: MTU {new_mtu} refused: at most {MAX_MTU}\n", dev.name());
        return Err(EINVAL);
    }
    // SAFETY: `wbpair_set_mtu` on a live device (invariant), under RTNL
    // as `ndo_change_mtu` is called.
    unsafe { wbpair_set_mtu(dev.raw(), new_mtu as u32) };
    Ok(())
}
// ANCHOR_END: mtu

// ANCHOR: callbacks
// The C side's callbacks (wbpair_shim.h): each turns its pointers into a
// `&Port` and a `&NetDev` and calls the function above.

/// # Safety
///
/// `port` is the `Port` given to `wbpair_create` for `dev`, a live device
/// of this module, and both stay valid until the function returns.
unsafe fn parts<'a>(port: *mut c_void, dev: *mut RawNetDevice) -> (&'a Port, &'a NetDev) {
    // SAFETY: the caller's contract: `port` is a live `Port` (only shared
    // references are ever made to it), `dev` a live device.
    unsafe { (&*port.cast::<Port>(), NetDev::from_raw(dev)) }
}

/// # Safety
///
/// The contract of [`parts`], and `skb` is an skb the caller hands over.
#[no_mangle]
unsafe extern "C" fn wbpair_xmit(
    port: *mut c_void,
    dev: *mut RawNetDevice,
    skb: *mut RawSkb,
) -> c_int {
    // SAFETY: this function's contract.
    let (port, dev) = unsafe { parts(port, dev) };
    // SAFETY: `ndo_start_xmit` hands over a valid skb: ours unless we
    // answer NETDEV_TX_BUSY.
    let Some(skb) = (unsafe { Skb::from_raw(skb) }) else {
        return NETDEV_TX_OK;
    };
    match xmit(port, dev, skb) {
        Tx::Taken => NETDEV_TX_OK,
        Tx::Busy(skb) => {
            // The stack owns it again: it must not be freed here.
            let _ = skb.into_raw();
            NETDEV_TX_BUSY
        }
    }
}

/// # Safety
///
/// The contract of [`parts`]; hard interrupt context.
#[no_mangle]
unsafe extern "C" fn wbpair_irq(port: *mut c_void, dev: *mut RawNetDevice) {
    // SAFETY: this function's contract.
    let (port, dev) = unsafe { parts(port, dev) };
    irq(port, dev);
}

/// # Safety
///
/// The contract of [`parts`]; called only as `dev`'s NAPI poll.
#[no_mangle]
unsafe extern "C" fn wbpair_poll(
    port: *mut c_void,
    dev: *mut RawNetDevice,
    budget: c_int,
) -> c_int {
    // SAFETY: this function's contract.
    let (port, dev) = unsafe { parts(port, dev) };
    // SAFETY: this is `dev`'s NAPI poll (our contract), and the `Poll`
    // lives only for this call.
    poll(port, &unsafe { Poll::new(dev) }, budget)
}

/// # Safety
///
/// The contract of [`parts`]; `ndo_open`.
#[no_mangle]
unsafe extern "C" fn wbpair_open(port: *mut c_void, dev: *mut RawNetDevice) -> c_int {
    // SAFETY: this function's contract.
    let (port, dev) = unsafe { parts(port, dev) };
    match open(port, dev) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// The contract of [`parts`]; `ndo_stop`.
#[no_mangle]
unsafe extern "C" fn wbpair_stop(port: *mut c_void, dev: *mut RawNetDevice) {
    // SAFETY: this function's contract.
    let (port, dev) = unsafe { parts(port, dev) };
    stop(port, dev);
}

/// # Safety
///
/// `port` is a live `Port`, `stats` valid for writes, for the call.
#[no_mangle]
unsafe extern "C" fn wbpair_get_stats(port: *mut c_void, stats: *mut Stats) {
    // SAFETY: this function's contract; the shim passes a local `struct
    // wbpair_stats` no one else uses.
    let (port, stats) = unsafe { (&*port.cast::<Port>(), &mut *stats) };
    get_stats(port, stats);
}

/// # Safety
///
/// The contract of [`parts`]; `ndo_change_mtu`.
#[no_mangle]
unsafe extern "C" fn wbpair_change_mtu(
    port: *mut c_void,
    dev: *mut RawNetDevice,
    new_mtu: c_int,
) -> c_int {
    // SAFETY: this function's contract.
    let (_, dev) = unsafe { parts(port, dev) };
    match change_mtu(dev, new_mtu) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
// ANCHOR_END: callbacks

// ANCHOR: device
/// A device this module created, freed (`free_netdev()`) when dropped,
/// after its `Port`, which its callbacks use.
struct Device {
    raw: *mut RawNetDevice,
    /// Freed after the device: `Drop::drop` runs before the fields drop.
    port: KBox<Port>,
}

impl Device {
    /// A new, unregistered device called `name` with address `mac`.
    fn new(name: &CStr, mac: [u8; 6], napi: bool, ring: u32, irq_delay_us: u32) -> Result<Self> {
        let port = KBox::new(
            Port {
                rx_packets: Atomic::new(0),
                rx_bytes: Atomic::new(0),
                rx_dropped: Atomic::new(0),
                tx_packets: Atomic::new(0),
                tx_bytes: Atomic::new(0),
                tx_dropped: Atomic::new(0),
                busy: Atomic::new(0),
                shown_tx: Atomic::new(false),
                shown_rx: Atomic::new(false),
                napi,
                ring,
            },
            GFP_KERNEL,
        )?;
        let mut raw = null_mut();
        // SAFETY: `wbpair_create` needs a NUL-terminated name (a `CStr`),
        // 6 readable bytes at `mac` (an array), `port` valid until
        // `wbpair_free` (the `KBox` is freed only after it, in `drop`,
        // and its contents never move) and `res` valid for a write.
        to_result(unsafe {
            wbpair_create(
                name.as_char_ptr(),
                mac.as_ptr(),
                irq_delay_us,
                core::ptr::from_ref::<Port>(&port).cast_mut().cast(),
                &mut raw,
            )
        })?;
        Ok(Device { raw, port })
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: `wbpair_free` needs a device never registered or
        // unregistered: a `Device` is registered only inside a `Pair`,
        // whose `drop` unregisters it before its devices are dropped.
        unsafe { wbpair_free(self.raw) };
    }
}

/// Turns the shim's `int` into a `Result`.
fn to_result(ret: c_int) -> Result {
    kernel::error::to_result(ret)
}

/// Two devices, registered as each other's peer; unregistered together
/// when dropped.
struct Pair {
    a: Device,
    b: Device,
}

// SAFETY: the devices may be unregistered and freed from any task
// (`wbpair_unregister`, `wbpair_free`), and the ports are atomics.
unsafe impl Send for Pair {}
// SAFETY: a `&Pair` gives access only to the ports, whose counters are
// atomics, and to nothing else.
unsafe impl Sync for Pair {}

impl Pair {
    fn register(a: Device, b: Device) -> Result<Pair> {
        // SAFETY: `wbpair_register` needs two devices from `wbpair_create`,
        // not registered: `Device::new` made them, and nothing registered
        // them. On failure neither is registered, and dropping them frees
        // them.
        to_result(unsafe { wbpair_register(a.raw, b.raw) })?;
        Ok(Pair { a, b })
    }
}

// ANCHOR_END: device

impl Drop for Pair {
    fn drop(&mut self) {
        // EXERCISE: Unregister both devices (no callback runs after it returns), then drop the frames still on their rings, counting them as each port's rx_dropped, and log each device's counters as the checks expect.
        // HINT: `wbpair_unregister` is unsafe: say in a SAFETY comment why its contract holds (a successful `wbpair_register`, once).
        // HINT: The rings may hold frames pushed after `ndo_stop` emptied them: the sender read "running" just before the stop. Wrap each device's pointer in a `NetDev` to `ring_pop` them.
        // STUB: let _ = &self.a;
        // SAFETY: `wbpair_unregister` needs a successful `wbpair_register`
        // of these two, not yet undone: a `Pair` exists only if it
        // succeeded, and is dropped once.
        unsafe { wbpair_unregister(self.a.raw, self.b.raw) };
        for device in [&self.a, &self.b] {
            // SAFETY: the device is live until `Device::drop`, after this.
            let dev = unsafe { NetDev::from_raw(device.raw) };
            let port = &*device.port;
            let mut left = 0;
            while let Some(skb) = dev.ring_pop() {
                count(&port.rx_dropped, 1);
                left += 1;
                drop(skb);
            }
            let mut s = Stats::default();
            get_stats(port, &mut s);
            pr_info!(
                "{}: sent {} ({} bytes, {} dropped), received {} ({} bytes, {} dropped), ring full {} times, {left} left on the ring at unload\n",
                dev.name(),
                s.tx_packets,
                s.tx_bytes,
                s.tx_dropped,
                s.rx_packets,
                s.rx_bytes,
                s.rx_dropped,
                port.busy.load(ordering::Relaxed)
            );
        }
        // END EXERCISE
    }
}

struct WbPair {
    _pair: Pair,
}

// ANCHOR: init
impl kernel::Module for WbPair {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let napi = module_parameters::napi.value();
        let ring = module_parameters::ring.value();
        let irq_delay_us = module_parameters::irq_delay_us.value();
        if !(1..=4096).contains(&ring) || irq_delay_us > 100_000 {
            pr_err!("ring={ring} irq_delay_us={irq_delay_us}: ring is 1 to 4096, irq_delay_us 0 to 100000\n");
            return Err(EINVAL);
        }
        // Locally administered addresses (the 0x02 bit): 02:77:62 is "wb".
        let a = Device::new(
            c"wb0",
            [0x02, 0x77, 0x62, 0, 0, 0],
            napi,
            ring,
            irq_delay_us,
        )?;
        let b = Device::new(
            c"wb1",
            [0x02, 0x77, 0x62, 0, 0, 1],
            napi,
            ring,
            irq_delay_us,
        )?;
        let pair = Pair::register(a, b)?;
        pr_info!(
            "wb0 and wb1 registered: receive with {}, ring of {ring}, interrupt after {irq_delay_us} us\n",
            if napi { "NAPI" } else { "netif_rx" }
        );
        Ok(WbPair { _pair: pair })
    }
}
// ANCHOR_END: init
