// SPDX-License-Identifier: GPL-2.0
/*
 * pktfilter's C shim: the netfilter hook itself, reduced to reading the
 * protocol and destination port of an IPv4 packet and asking Rust what to
 * do with it, its registration in every network namespace, plus the
 * /proc/pktfilter entry.
 */
// ANCHOR: hook
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
 * is registered in (all of them, see below), in softirq context.
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

/*
 * Netfilter hooks belong to a network namespace. To see every packet, the
 * hook is registered in each namespace: in those that exist when the module
 * loads, and in each one created later, by the init of a struct
 * pernet_operations; its exit unregisters it as the namespace goes.
 */
// ANCHOR_END: hook
// EXERCISE: Write `pktfilter_net_ops`, a struct pernet_operations whose init registers pktfilter_ops in the namespace it is given, and whose exit unregisters it.
// HINT: `.init` is `int (*)(struct net *net)` and `.exit` is `void (*)(struct net *net)`; mark them `__net_init` and `__net_exit`. Nothing else in the struct is needed.
// HINT: init returns nf_register_net_hook(net, &pktfilter_ops); exit calls nf_unregister_net_hook(net, &pktfilter_ops). register_pernet_subsys() below calls init for each namespace already there.
// STUB: static struct pernet_operations pktfilter_net_ops = {};
static int __net_init pktfilter_net_init(struct net *net)
{
	return nf_register_net_hook(net, &pktfilter_ops);
}

static void __net_exit pktfilter_net_exit(struct net *net)
{
	nf_unregister_net_hook(net, &pktfilter_ops);
}

static struct pernet_operations pktfilter_net_ops = {
	.init = pktfilter_net_init,
	.exit = pktfilter_net_exit,
};
// END EXERCISE

// ANCHOR: register
static struct proc_dir_entry *pktfilter_entry;

int pktfilter_register(void)
{
	int err;

	pktfilter_entry = proc_create_single("pktfilter", 0444, NULL, pktfilter_show);
	if (!pktfilter_entry)
		return -ENOMEM;
	/*
	 * Calls init for every namespace there is; if one fails, exit for
	 * those done, and returns the error.
	 */
	err = register_pernet_subsys(&pktfilter_net_ops);
	if (err)
		proc_remove(pktfilter_entry);
	return err;
}

/*
 * After this returns no reader is left and no call of the hook starts: the
 * unregistration calls exit for every namespace. A call that started
 * before may still be running, under rcu_read_lock(): the module loader
 * calls synchronize_rcu() before it frees the module, which waits for it.
 */
void pktfilter_unregister(void)
{
	unregister_pernet_subsys(&pktfilter_net_ops);
	proc_remove(pktfilter_entry);
}
// ANCHOR_END: register
