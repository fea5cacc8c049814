// SPDX-License-Identifier: GPL-2.0
/*
 * wbpair's C shim: alloc_netdev() and `struct net_device_ops`, the
 * sk_buff and queue helpers that are static inlines, and the simulated
 * hardware of each device (a receive ring and a receive interrupt). The
 * contracts are in wbpair_shim.h; the driver's logic is in wbpair_main.rs.
 */
#include <linux/etherdevice.h>
#include <linux/hrtimer.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>
#include <net/net_namespace.h>

#include "wbpair_shim.h"

/* What each device carries in netdev_priv(). */
struct wbpair_priv {
	struct net_device *dev;
	/* Set once, before registration; both devices go in one batch. */
	struct net_device *peer;
	void *port;
	struct napi_struct napi;
	/* The "hardware": frames the peer sent, not yet taken by the driver. */
	struct sk_buff_head ring;
	/* The receive interrupt, raised irq_delay after a frame lands. */
	struct hrtimer irq;
	ktime_t irq_delay;
};

static struct wbpair_priv *priv(struct net_device *dev)
{
	return netdev_priv(dev);
}

static int wbpair_ndo_open(struct net_device *dev)
{
	return wbpair_open(priv(dev)->port, dev);
}

static int wbpair_ndo_stop(struct net_device *dev)
{
	wbpair_stop(priv(dev)->port, dev);
	return 0;
}

static netdev_tx_t wbpair_ndo_start_xmit(struct sk_buff *skb, struct net_device *dev)
{
	return wbpair_xmit(priv(dev)->port, dev, skb) == NETDEV_TX_BUSY ? NETDEV_TX_BUSY
									 : NETDEV_TX_OK;
}

static void wbpair_ndo_get_stats64(struct net_device *dev, struct rtnl_link_stats64 *s)
{
	struct wbpair_stats st = {};

	wbpair_get_stats(priv(dev)->port, &st);
	s->rx_packets = st.rx_packets;
	s->rx_bytes = st.rx_bytes;
	s->rx_dropped = st.rx_dropped;
	s->tx_packets = st.tx_packets;
	s->tx_bytes = st.tx_bytes;
	s->tx_dropped = st.tx_dropped;
}

static int wbpair_ndo_change_mtu(struct net_device *dev, int new_mtu)
{
	return wbpair_change_mtu(priv(dev)->port, dev, new_mtu);
}

// ANCHOR: ops
static const struct net_device_ops wbpair_ops = {
	.ndo_open = wbpair_ndo_open,
	.ndo_stop = wbpair_ndo_stop,
	.ndo_start_xmit = wbpair_ndo_start_xmit,
	.ndo_get_stats64 = wbpair_ndo_get_stats64,
	.ndo_change_mtu = wbpair_ndo_change_mtu,
	.ndo_validate_addr = eth_validate_addr,
	.ndo_set_mac_address = eth_mac_addr,
};

static enum hrtimer_restart wbpair_irq_fire(struct hrtimer *timer)
{
	struct wbpair_priv *p = container_of(timer, struct wbpair_priv, irq);

	wbpair_irq(p->port, p->dev);
	return HRTIMER_NORESTART;
}

static int wbpair_napi_poll(struct napi_struct *napi, int budget)
{
	struct wbpair_priv *p = container_of(napi, struct wbpair_priv, napi);

	return wbpair_poll(p->port, p->dev, budget);
}

static void wbpair_setup(struct net_device *dev)
{
	ether_setup(dev);
	dev->netdev_ops = &wbpair_ops;
	/*
	 * Each skb is passed on to the peer, not copied: an skb the stack
	 * would hand us again (pktgen's sharing) cannot be.
	 */
	dev->priv_flags &= ~IFF_TX_SKB_SHARING;
	/*
	 * No IFF_NO_QUEUE and no lltx: the device gets a qdisc (pfifo_fast)
	 * that holds packets while the driver has stopped the queue, and the
	 * core serialises ndo_start_xmit with the queue's lock. No offload
	 * features: checksums are computed before a packet reaches us.
	 * The core checks min_mtu; wbpair_change_mtu() checks the rest.
	 */
	dev->max_mtu = ETH_MAX_MTU;
}
// ANCHOR_END: ops

int wbpair_create(const char *name, const u8 *mac, u32 irq_delay_us, void *port,
		  struct net_device **res)
{
	struct net_device *dev;
	struct wbpair_priv *p;

	dev = alloc_netdev(sizeof(*p), name, NET_NAME_USER, wbpair_setup);
	if (!dev)
		return -ENOMEM;
	p = priv(dev);
	p->dev = dev;
	p->port = port;
	skb_queue_head_init(&p->ring);
	hrtimer_setup(&p->irq, wbpair_irq_fire, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	p->irq_delay = us_to_ktime(irq_delay_us);
	eth_hw_addr_set(dev, mac);
	netif_napi_add(dev, &p->napi, wbpair_napi_poll);
	*res = dev;
	return 0;
}

int wbpair_register(struct net_device *a, struct net_device *b)
{
	int err;

	priv(a)->peer = b;
	priv(b)->peer = a;
	/* Down until opened: carrier on only when both ends are up. */
	netif_carrier_off(a);
	netif_carrier_off(b);
	err = register_netdev(a);
	if (err)
		return err;
	err = register_netdev(b);
	if (err)
		unregister_netdev(a);
	return err;
}

// ANCHOR: unregister
void wbpair_unregister(struct net_device *a, struct net_device *b)
{
	LIST_HEAD(list);

	/*
	 * One batch: both are closed before either is unregistered, and
	 * unregister_netdevice_many() waits for every ndo_start_xmit in
	 * progress, so once both are gone neither can push to the other.
	 * rtnl_unlock() then waits until no one holds a reference.
	 */
	rtnl_lock();
	unregister_netdevice_queue(a, &list);
	unregister_netdevice_queue(b, &list);
	unregister_netdevice_many(&list);
	rtnl_unlock();
	/* No one raises the interrupts now; wait for one that is running. */
	hrtimer_cancel(&priv(a)->irq);
	hrtimer_cancel(&priv(b)->irq);
}
// ANCHOR_END: unregister

void wbpair_free(struct net_device *dev)
{
	/* free_netdev() deletes the NAPI context too. */
	free_netdev(dev);
}

const char *wbpair_name(struct net_device *dev)
{
	return dev->name;
}

struct net_device *wbpair_peer(struct net_device *dev)
{
	return priv(dev)->peer;
}

bool wbpair_running(struct net_device *dev)
{
	return netif_running(dev);
}

unsigned int wbpair_mtu(struct net_device *dev)
{
	return READ_ONCE(dev->mtu);
}

void wbpair_set_mtu(struct net_device *dev, unsigned int mtu)
{
	WRITE_ONCE(dev->mtu, mtu);
}

void wbpair_carrier(struct net_device *dev, bool on)
{
	if (on)
		netif_carrier_on(dev);
	else
		netif_carrier_off(dev);
}

void wbpair_tx_start(struct net_device *dev)
{
	netif_start_queue(dev);
}

void wbpair_tx_stop(struct net_device *dev)
{
	netif_stop_queue(dev);
	/* Pairs with the barrier in wbpair_tx_stopped(). */
	smp_mb__after_atomic();
}

void wbpair_tx_wake(struct net_device *dev)
{
	netif_wake_queue(dev);
}

bool wbpair_tx_stopped(struct net_device *dev)
{
	/* The ring pops before this are seen by a producer that stops later. */
	smp_mb();
	return netif_queue_stopped(dev);
}

void wbpair_ring_push(struct net_device *dev, struct sk_buff *skb)
{
	skb_queue_tail(&priv(dev)->ring, skb);
}

struct sk_buff *wbpair_ring_pop(struct net_device *dev)
{
	return skb_dequeue(&priv(dev)->ring);
}

unsigned int wbpair_ring_len(struct net_device *dev)
{
	return skb_queue_len_lockless(&priv(dev)->ring);
}

// ANCHOR: raise_irq
void wbpair_raise_irq(struct net_device *dev)
{
	struct wbpair_priv *p = priv(dev);

	/*
	 * A pending interrupt will see this frame too. One that is running
	 * may already have looked at the ring: it is not queued, so this
	 * arms it again.
	 */
	if (!hrtimer_is_queued(&p->irq))
		hrtimer_start(&p->irq, p->irq_delay, HRTIMER_MODE_REL);
}
// ANCHOR_END: raise_irq

void wbpair_napi_enable(struct net_device *dev)
{
	napi_enable(&priv(dev)->napi);
}

void wbpair_napi_disable(struct net_device *dev)
{
	napi_disable(&priv(dev)->napi);
}

void wbpair_napi_schedule(struct net_device *dev)
{
	napi_schedule(&priv(dev)->napi);
}

bool wbpair_napi_complete(struct net_device *dev, int work_done)
{
	return napi_complete_done(&priv(dev)->napi, work_done);
}

unsigned int wbpair_skb_len(const struct sk_buff *skb)
{
	return skb->len;
}

unsigned int wbpair_skb_headroom(const struct sk_buff *skb)
{
	return skb_headroom(skb);
}

unsigned int wbpair_skb_tailroom(const struct sk_buff *skb)
{
	return skb_tailroom(skb);
}

u16 wbpair_skb_protocol(const struct sk_buff *skb)
{
	return ntohs(skb->protocol);
}

u8 wbpair_skb_ip_summed(const struct sk_buff *skb)
{
	return skb->ip_summed;
}

// ANCHOR: arrive
int wbpair_skb_arrive(struct sk_buff *skb, struct net_device *dev)
{
	/* Zero-copy fragments still in user pages are copied now. */
	if (skb_orphan_frags(skb, GFP_ATOMIC))
		return -ENOMEM;
	/* Another namespace: the sender's route, mark and conntrack go. */
	skb_scrub_packet(skb, !net_eq(dev_net(dev), dev_net(skb->dev)));
	skb->priority = 0;
	skb->protocol = eth_type_trans(skb, dev);
	return 0;
}
// ANCHOR_END: arrive

// ANCHOR: deliver
int wbpair_netif_rx(struct sk_buff *skb)
{
	/*
	 * netif_rx() frees a frame it drops (the backlog is full, the device
	 * is going down) at once: here, in hard interrupt context. A frame a
	 * local socket sent still has that socket's destructor, which must
	 * not run in a hard interrupt (skb_release_head_state() asserts it
	 * under CONFIG_DEBUG_NET). A NIC
	 * hands the stack buffers of its own, and so does this "hardware": a
	 * copy, owned by no socket. The sender's skb is consumed with
	 * dev_consume_skb_any(), which in an interrupt leaves the free to the
	 * NET_TX softirq.
	 */
	if (skb->destructor) {
		struct sk_buff *copy = skb_copy(skb, GFP_ATOMIC);

		if (!copy) {
			/* Counted where netif_rx() counts its own drops. */
			dev_core_stats_rx_dropped_inc(skb->dev);
			dev_kfree_skb_any_reason(skb, SKB_DROP_REASON_NOMEM);
			return NET_RX_DROP;
		}
		dev_consume_skb_any(skb);
		skb = copy;
	}
	return netif_rx(skb);
}

void wbpair_receive(struct net_device *dev, struct sk_buff *skb)
{
	/*
	 * GRO may write into the skb's shared info (frags, frag_list), which
	 * a clone shares: a packet tap's (tcpdump on the sender) or a
	 * sender's that holds a second reference. Those go up without GRO,
	 * as in veth.
	 */
	if (skb_shared(skb) || skb_unclone(skb, GFP_ATOMIC))
		netif_receive_skb(skb);
	else
		napi_gro_receive(&priv(dev)->napi, skb);
}
// ANCHOR_END: deliver

void wbpair_drop(struct sk_buff *skb)
{
	dev_kfree_skb_any(skb);
}
