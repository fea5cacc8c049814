/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the contexts module asks C: the facts about the context the CPU is
 * in. in_hardirq(), in_serving_softirq(), preempt_count(), irqs_disabled()
 * and rcu_preempt_depth() are macros and inline functions over the per-CPU
 * preempt count and the flags register, which `kernel::bindings` cannot
 * reach in Linux 7.3.
 */
#ifndef CONTEXTS_SHIM_H
#define CONTEXTS_SHIM_H

#include <linux/types.h>

/* Shared with Rust (`Facts` in contexts_main.rs): change both or neither. */
struct contexts_facts {
	bool nmi;		/* in_nmi() */
	bool hardirq;		/* in_hardirq(): an interrupt handler */
	bool serving_softirq;	/* in_serving_softirq(): a softirq handler */
	bool irqs_disabled;	/* irqs_disabled() */
	u32 preempt_count;	/* preempt_count(): 0 when preemptible */
	u32 rcu_depth;		/* rcu_preempt_depth(): RCU read locks held */
	char comm[16];		/* current->comm in task context, else "" */
};

/*
 * Fills *facts (valid for a write) with the current context's facts. Any
 * context may call it: it takes no lock and does not sleep.
 */
void contexts_read_facts(struct contexts_facts *facts);

#endif
