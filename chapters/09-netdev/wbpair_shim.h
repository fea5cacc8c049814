/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two directions of wbpair's Rust/C boundary.
 *
 * Linux 7.3's `kernel` crate has no network device abstraction:
 * alloc_netdev() is a macro, `struct net_device_ops` is C data, and the
 * sk_buff and queue helpers (skb_headroom(), netif_stop_queue(), ...) are
 * static inline functions that `kernel::bindings` lacks. The shim holds
 * exactly those, plus the simulated hardware: a receive ring and a receive
 * interrupt per device. Every decision (what to do with a packet, what to
 * count, when to stop or wake a queue) is Rust's.
 *
 * Each function's comment is its contract; the Rust side's SAFETY comments
 * cite them. "A live device" is one from wbpair_create() that
 * wbpair_free() has not freed.
 */
#ifndef WBPAIR_SHIM_H
#define WBPAIR_SHIM_H

#include <linux/types.h>

struct net_device;
struct sk_buff;

/* One device's counters, as ndo_get_stats64 reports them. */
struct wbpair_stats {
	u64 rx_packets;
	u64 rx_bytes;
	u64 rx_dropped;
	u64 tx_packets;
	u64 tx_bytes;
	u64 tx_dropped;
};

/*
 * C to Rust: the device callbacks, implemented in wbpair_main.rs. `port`
 * is the pointer given to wbpair_create() for `dev`.
 *
 * wbpair_open() and wbpair_stop() are ndo_open and ndo_stop (process
 * context, RTNL held); wbpair_xmit() is ndo_start_xmit (bottom halves
 * disabled, the device's transmit queue lock held: never two at once on
 * one device) and returns NETDEV_TX_OK (it took the skb) or NETDEV_TX_BUSY
 * (it did not: the skb is the caller's again). wbpair_irq() is the
 * receive interrupt (hard interrupt context); wbpair_poll() is the NAPI
 * poll (softirq context). wbpair_get_stats() may run in any context;
 * wbpair_change_mtu() is ndo_change_mtu (process context, RTNL held).
 */
int wbpair_open(void *port, struct net_device *dev);
void wbpair_stop(void *port, struct net_device *dev);
int wbpair_xmit(void *port, struct net_device *dev, struct sk_buff *skb);
void wbpair_irq(void *port, struct net_device *dev);
int wbpair_poll(void *port, struct net_device *dev, int budget);
void wbpair_get_stats(void *port, struct wbpair_stats *stats);
int wbpair_change_mtu(void *port, struct net_device *dev, int new_mtu);

/*
 * Rust to C: devices. Process context, no lock held.
 *
 * wbpair_create() allocates an Ethernet device called `name` (a
 * NUL-terminated string) with the 6-byte address `mac`, not registered;
 * `port` must stay valid until wbpair_free(). On success *res is the new
 * device; on failure *res is not written. Its receive interrupt fires
 * `irq_delay_us` microseconds after wbpair_raise_irq() (interrupt
 * moderation).
 * wbpair_register() links two such devices as each other's peer and
 * registers both, or neither (it returns the error).
 * wbpair_unregister() unregisters both, in one batch; when it returns no
 * callback runs for either any more (frames may still be on a ring that
 * was down already: the caller drains them). Once, after a successful
 * wbpair_register().
 * wbpair_free() frees a device: never registered, or unregistered.
 */
int wbpair_create(const char *name, const u8 *mac, u32 irq_delay_us, void *port,
		  struct net_device **res);
int wbpair_register(struct net_device *a, struct net_device *b);
void wbpair_unregister(struct net_device *a, struct net_device *b);
void wbpair_free(struct net_device *dev);

/*
 * Rust to C: what the callbacks use, on a live device, from any context
 * unless said otherwise.
 */
const char *wbpair_name(struct net_device *dev);
struct net_device *wbpair_peer(struct net_device *dev);
bool wbpair_running(struct net_device *dev);
unsigned int wbpair_mtu(struct net_device *dev);
void wbpair_set_mtu(struct net_device *dev, unsigned int mtu);
void wbpair_carrier(struct net_device *dev, bool on);
/*
 * The transmit queue: start (open), stop (with a full barrier after, so a
 * consumer's later wbpair_tx_stopped() sees it), wake (reschedules the
 * queue's qdisc), and whether it is stopped (after a full barrier).
 */
void wbpair_tx_start(struct net_device *dev);
void wbpair_tx_stop(struct net_device *dev);
void wbpair_tx_wake(struct net_device *dev);
bool wbpair_tx_stopped(struct net_device *dev);

/*
 * The receive ring: wbpair_ring_push() takes the skb (never fails; the
 * caller bounds the length), wbpair_ring_pop() gives the oldest one or
 * NULL. Safe against each other from any context (an irqsave spinlock).
 */
void wbpair_ring_push(struct net_device *dev, struct sk_buff *skb);
struct sk_buff *wbpair_ring_pop(struct net_device *dev);
unsigned int wbpair_ring_len(struct net_device *dev);
/* Arms the receive interrupt unless it is already pending. */
void wbpair_raise_irq(struct net_device *dev);

/*
 * NAPI: enable and disable (process context, RTNL held: open and stop),
 * schedule (any context), complete (only from wbpair_poll()).
 */
void wbpair_napi_enable(struct net_device *dev);
void wbpair_napi_disable(struct net_device *dev);
void wbpair_napi_schedule(struct net_device *dev);
bool wbpair_napi_complete(struct net_device *dev, int work_done);

/*
 * Rust to C: one skb the caller owns (the caller passes its ownership
 * on where said).
 */
unsigned int wbpair_skb_len(const struct sk_buff *skb);
unsigned int wbpair_skb_headroom(const struct sk_buff *skb);
unsigned int wbpair_skb_tailroom(const struct sk_buff *skb);
u16 wbpair_skb_protocol(const struct sk_buff *skb);
u8 wbpair_skb_ip_summed(const struct sk_buff *skb);
/*
 * Makes an skb as transmitted by another device arrive at `dev`: scrubs
 * what belonged to the sender's namespace and route, then
 * eth_type_trans() (pulls the Ethernet header, sets skb->dev,
 * skb->pkt_type and skb->protocol). Fails (and takes nothing) when the
 * skb's fragments cannot be detached from user pages.
 */
int wbpair_skb_arrive(struct sk_buff *skb, struct net_device *dev);
/* These take the skb. */
int wbpair_netif_rx(struct sk_buff *skb);		/* any context; after wbpair_skb_arrive() */
void wbpair_receive(struct net_device *dev, struct sk_buff *skb); /* only from dev's wbpair_poll() */
void wbpair_drop(struct sk_buff *skb);			/* any context */

#endif
