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

static const struct genl_small_ops wbgenl_ops[] = {
	{
		.cmd = WBGENL_CMD_EMIT,
		.doit = wbgenl_emit_doit,
	},
};

void wbgenl_add_ops(struct genl_family *family)
{
	family->policy = wbgenl_policy;
	family->maxattr = WBGENL_A_MAX;
	family->small_ops = wbgenl_ops;
	family->n_small_ops = ARRAY_SIZE(wbgenl_ops);
}

int wbgenl_unicast(struct genl_info *info, struct sk_buff *skb, u32 portid)
{
	return genlmsg_unicast(genl_info_net(info), skb, portid);
}
