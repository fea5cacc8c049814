/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C half of wbgenl, a generic netlink family written in Rust.
 *
 * Linux 7.3's `kernel::net::netlink` registers a family with multicast
 * groups and sends multicast messages, but a `Family` cannot carry
 * operations: no `genl_small_ops`, no attribute policy. Those are constant
 * C tables built with the kernel's own macros (NLA_POLICY_RANGE() and
 * friends), so this shim defines them and hands them to the Rust family
 * before it is registered. The command's handler, wbgenl_emit_doit(), is
 * Rust. genlmsg_unicast() and genl_info_net() are static inline functions,
 * which Rust cannot call; wbgenl_unicast() is them, out of line.
 *
 * The protocol below is the family's user-space API; wbgenl_main.rs and
 * the guest program wbgenl.rs repeat its numbers.
 */
#ifndef WBGENL_SHIM_H
#define WBGENL_SHIM_H

#include <linux/types.h>

struct genl_family;
struct genl_info;
struct sk_buff;

enum {
	WBGENL_CMD_UNSPEC,
	WBGENL_CMD_EMIT,	/* request: emit COUNT events; answer: FIRST, LAST */
	WBGENL_CMD_EVENT,	/* multicast on "events": SEQ */
	WBGENL_CMD_UNLOADING,	/* multicast on "notices": SEQ, the last event's */
};

enum {
	WBGENL_A_UNSPEC,
	WBGENL_A_COUNT,		/* u32, 1..WBGENL_MAX_COUNT, required in EMIT */
	WBGENL_A_INTERVAL_MS,	/* u32, 0..WBGENL_MAX_INTERVAL_MS, optional */
	WBGENL_A_SEQ,		/* u32 */
	WBGENL_A_FIRST,		/* u32 */
	WBGENL_A_LAST,		/* u32 */
	WBGENL_A_MAX = WBGENL_A_LAST,
};

#define WBGENL_MAX_COUNT	1000
#define WBGENL_MAX_INTERVAL_MS	10

/*
 * Implemented in Rust (wbgenl_main.rs): the EMIT command's doit. Called
 * by the generic netlink core in process context, with the request's
 * attributes already checked against the policy.
 */
int wbgenl_emit_doit(struct sk_buff *skb, struct genl_info *info);

/*
 * Implemented in C (wbgenl_shim.c).
 *
 * wbgenl_add_ops() gives `family` the EMIT operation and its policy. Call
 * it once, before genl_register_family(family), while nothing else can
 * read the family.
 */
void wbgenl_add_ops(struct genl_family *family);

/*
 * wbgenl_unicast() sends `skb`, a finished netlink message, to the socket
 * `portid` in the network namespace of the request `info` (valid for the
 * call: call it from the doit that got `info`). It consumes `skb` whether
 * it succeeds or not. Returns 0 or a negative errno (-ECONNREFUSED: no
 * socket has that portid).
 */
int wbgenl_unicast(struct genl_info *info, struct sk_buff *skb, u32 portid);

#endif
