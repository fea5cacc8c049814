// SPDX-License-Identifier: GPL-2.0

//! pktfilter: a netfilter hook that counts and drops packets.
//!
//! Every IPv4 packet delivered to this host passes the hook (at
//! `NF_INET_LOCAL_IN`, loopback traffic included). The module counts them
//! per protocol and drops TCP and UDP packets to one port, `drop_port`.
//! `cat /proc/pktfilter` shows the counters.
//!
//! Netfilter hooks are registered per network namespace. To see the
//! packets of every namespace, containers' included, the shim registers
//! the hook through `pernet_operations`: once in each namespace that
//! exists at load time, and once in each one created later.
//!
//! The hook runs in softirq context, on any CPU, many times a second: it
//! must not sleep (so no mutex, and an allocation would have to be
//! `GFP_ATOMIC`; this one needs none), and what it shares with the rest of
//! the module is atomics. The hook and the /proc entry are registered by a
//! C shim (`pktfilter_shim.c`); the decision is Rust's, [`pktfilter_judge`].
//!
//! ```sh
//! insmod pktfilter.ko drop_port=7007
//! cat /proc/pktfilter
//! ```

use core::ffi::c_void;

use kernel::error::to_result;
use kernel::prelude::*;
use kernel::seq_file::{seq_print, SeqFile};
use kernel::sync::atomic::{ordering, Atomic};

module! {
    type: PktFilter,
    name: "pktfilter",
    authors: ["The Rust Kernel Workbook"],
    description: "A netfilter hook: counts packets per protocol, drops those to one port",
    license: "GPL",
    params: {
        drop_port: u32 {
            default: 7009,
            description: "Drop TCP and UDP packets to this port",
        },
    },
}

/// IP protocol numbers (`IPPROTO_*`).
const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;

// ANCHOR: counters
// The hook gets no pointer to the module: what it shares lives in statics.
static DROP_PORT: Atomic<u32> = Atomic::new(0);
static TCP_PACKETS: Atomic<u64> = Atomic::new(0);
static UDP_PACKETS: Atomic<u64> = Atomic::new(0);
static ICMP_PACKETS: Atomic<u64> = Atomic::new(0);
static OTHER_PACKETS: Atomic<u64> = Atomic::new(0);
static DROPPED: Atomic<u64> = Atomic::new(0);
// ANCHOR_END: counters

extern "C" {
    fn pktfilter_register() -> c_int;
    fn pktfilter_unregister();
}

// ANCHOR: judge
/// The hook's question: drop this packet? Counts it either way.
#[unsafe(no_mangle)]
pub extern "C" fn pktfilter_judge(protocol: u8, dport: u16) -> bool {
    // ANCHOR_END: judge
    // EXERCISE: Count the packet in TCP_PACKETS, UDP_PACKETS, ICMP_PACKETS or OTHER_PACKETS by `protocol`; drop (return true, counting it in DROPPED) TCP and UDP packets whose `dport` is DROP_PORT.
    // HINT: `match protocol { TCP => &TCP_PACKETS, ... }` picks a counter; `fetch_add(1, ordering::Relaxed)` counts.
    // HINT: Compare `u32::from(dport)` with `DROP_PORT.load(ordering::Relaxed)`.
    // STUB: let _ = (protocol, dport);
    // STUB: false
    let counter = match protocol {
        TCP => &TCP_PACKETS,
        UDP => &UDP_PACKETS,
        ICMP => &ICMP_PACKETS,
        _ => &OTHER_PACKETS,
    };
    counter.fetch_add(1, ordering::Relaxed);
    let drop = (protocol == TCP || protocol == UDP)
        && u32::from(dport) == DROP_PORT.load(ordering::Relaxed);
    if drop {
        DROPPED.fetch_add(1, ordering::Relaxed);
    }
    drop
    // END EXERCISE
}

/// `cat /proc/pktfilter`.
///
/// # Safety
///
/// `m` points to a valid `struct seq_file` that no other thread uses until
/// this returns, as the `seq_file` code guarantees when it calls `show`
/// (it holds `m->lock`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pktfilter_show(
    m: *mut kernel::bindings::seq_file,
    _v: *mut c_void,
) -> c_int {
    // SAFETY: `SeqFile::from_raw` needs `m` valid and used by no other
    // thread for as long as the result lives: this function's contract
    // gives both until it returns, and the result does not outlive it.
    let m = unsafe { SeqFile::from_raw(m) };
    seq_print!(m, "drop_port: {}\n", DROP_PORT.load(ordering::Relaxed));
    seq_print!(m, "tcp: {}\n", TCP_PACKETS.load(ordering::Relaxed));
    seq_print!(m, "udp: {}\n", UDP_PACKETS.load(ordering::Relaxed));
    seq_print!(m, "icmp: {}\n", ICMP_PACKETS.load(ordering::Relaxed));
    seq_print!(m, "other: {}\n", OTHER_PACKETS.load(ordering::Relaxed));
    seq_print!(m, "dropped: {}\n", DROPPED.load(ordering::Relaxed));
    0
}

struct PktFilter;

impl kernel::Module for PktFilter {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let port = module_parameters::drop_port.value();
        if port == 0 || port > u32::from(u16::MAX) {
            pr_err!("drop_port={port} is not a port (1 to 65535)\n");
            return Err(EINVAL);
        }
        DROP_PORT.store(port, ordering::Relaxed);
        // SAFETY: `pktfilter_register` must not be called while registered:
        // `init` runs once per load, and nothing else registers.
        to_result(unsafe { pktfilter_register() })?;
        pr_info!("dropping TCP and UDP to port {port}\n");
        Ok(PktFilter)
    }
}

impl Drop for PktFilter {
    fn drop(&mut self) {
        // EXERCISE: Unregister the hook and /proc/pktfilter (the shim's `pktfilter_unregister`), then log the final counters: `unloaded: T TCP, U UDP, I ICMP, O other packets; D dropped`.
        // HINT: After unload the module's code is freed: a hook still registered would be called there by the next packet. The shim's call is `unsafe`: pktfilter_shim.h gives its contract.
        // HINT: `unsafe { pktfilter_unregister() };` first, so that the counts are final, then `pr_info!("unloaded: {} TCP, {} UDP, {} ICMP, {} other packets; {} dropped\n", ...)` with each counter's `load(ordering::Relaxed)`.
        // SAFETY: `pktfilter_unregister` needs a successful
        // `pktfilter_register` not yet undone: `self` exists only if
        // `init`'s succeeded, and `drop` runs once.
        unsafe { pktfilter_unregister() };
        pr_info!(
            "unloaded: {} TCP, {} UDP, {} ICMP, {} other packets; {} dropped\n",
            TCP_PACKETS.load(ordering::Relaxed),
            UDP_PACKETS.load(ordering::Relaxed),
            ICMP_PACKETS.load(ordering::Relaxed),
            OTHER_PACKETS.load(ordering::Relaxed),
            DROPPED.load(ordering::Relaxed)
        );
        // END EXERCISE
    }
}
