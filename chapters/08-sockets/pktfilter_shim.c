// SPDX-License-Identifier: GPL-2.0
/*
 * pktfilter's C shim: the netfilter hook itself, reduced to reading the
 * protocol and destination port of an IPv4 packet and asking Rust what to
 * do with it, plus the /proc/pktfilter entry.
 */
#include <linux/ip.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/skbuff.h>
#include <net/net_namespace.h>

#include "pktfilter_shim.h"

/*
 * Runs for every IPv4 packet delivered to this host in the namespaces it
 * is registered in (here only init_net), in softirq context.
 */
static unsigned int pktfilter_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state)
{
	const struct iphdr *iph = ip_hdr(skb);
	__be16 ports[2];
	u16 dport = 0;

	if (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP) {
		/* Source and destination port open both headers. */
		const __be16 *p = skb_header_pointer(skb, iph->ihl * 4, sizeof(ports), ports);

		if (p)
			dport = ntohs(p[1]);
	}
	return pktfilter_judge(iph->protocol, dport) ? NF_DROP : NF_ACCEPT;
}

static const struct nf_hook_ops pktfilter_ops = {
	.hook = pktfilter_hook,
	.pf = NFPROTO_IPV4,
	.hooknum = NF_INET_LOCAL_IN,
	.priority = NF_IP_PRI_FILTER,
};

static struct proc_dir_entry *pktfilter_entry;

int pktfilter_register(void)
{
	int err;

	pktfilter_entry = proc_create_single("pktfilter", 0444, NULL, pktfilter_show);
	if (!pktfilter_entry)
		return -ENOMEM;
	/* The initial network namespace only: see pktfilter_main.rs. */
	err = nf_register_net_hook(&init_net, &pktfilter_ops);
	if (err)
		proc_remove(pktfilter_entry);
	return err;
}

/* After this returns no hook runs any more and no reader is left. */
void pktfilter_unregister(void)
{
	nf_unregister_net_hook(&init_net, &pktfilter_ops);
	proc_remove(pktfilter_entry);
}
