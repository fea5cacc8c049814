// SPDX-License-Identifier: GPL-2.0
/*
 * wbgenl's C shim: the operation table and attribute policy of the Rust
 * family, and genlmsg_unicast() out of line. See wbgenl_shim.h.
 */
#include <net/genetlink.h>

#include "wbgenl_shim.h"

/*
 * What a request may carry. The core checks every request against it
 * before the doit runs, strictly (resv_start_op is 0): a COUNT must be
 * exactly 4 bytes and in range, and an attribute with no entry here
 * (NLA_UNSPEC: SEQ, FIRST, LAST) or above WBGENL_A_MAX is rejected with
 * -EINVAL and an extack message, a value out of range with -ERANGE. The
 * doit can then take a present COUNT as it is.
 */
static const struct nla_policy wbgenl_policy[WBGENL_A_MAX + 1] = {
	[WBGENL_A_COUNT] = NLA_POLICY_RANGE(NLA_U32, 1, WBGENL_MAX_COUNT),
	[WBGENL_A_INTERVAL_MS] = NLA_POLICY_MAX(NLA_U32, WBGENL_MAX_INTERVAL_MS),
};

/*
 * EMIT is for CAP_NET_ADMIN only: its doit may sleep for up to COUNT *
 * INTERVAL_MS (10 s) holding the core's cb_lock for reading, and a
 * family's registration (down_write(&cb_lock)) waits behind it, and every
 * generic netlink request behind that. A family that sends for long would
 * send from a work item instead; this one keeps the doit simple.
 */
static const struct genl_small_ops wbgenl_ops[] = {
	{
		.cmd = WBGENL_CMD_EMIT,
		.flags = GENL_ADMIN_PERM,
		.doit = wbgenl_emit_doit,
	},
};

void wbgenl_add_ops(struct genl_family *family)
{
	/*
	 * The events go to listeners in the initial network namespace only
	 * (genlmsg_multicast() sends in init_net): the family lives there
	 * only, so that a request from another namespace fails with ENOENT
	 * instead of being answered while its events went elsewhere.
	 * Family::const_new() sets netnsok; this runs before registration.
	 */
	family->netnsok = false;
	family->policy = wbgenl_policy;
	family->maxattr = WBGENL_A_MAX;
	family->small_ops = wbgenl_ops;
	family->n_small_ops = ARRAY_SIZE(wbgenl_ops);
}

int wbgenl_unicast(struct genl_info *info, struct sk_buff *skb, u32 portid)
{
	return genlmsg_unicast(genl_info_net(info), skb, portid);
}
