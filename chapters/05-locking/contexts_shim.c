// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of the contexts module: one function that reads the context
 * facts Rust cannot read itself (see contexts_shim.h). Everything else is
 * in Rust.
 */
#include <linux/build_bug.h>
#include <linux/irqflags.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/string.h>

#include "contexts_shim.h"

void contexts_read_facts(struct contexts_facts *facts)
{
	BUILD_BUG_ON(sizeof(facts->comm) != TASK_COMM_LEN);

	facts->nmi = in_nmi();
	facts->hardirq = in_hardirq();
	facts->serving_softirq = in_serving_softirq();
	facts->irqs_disabled = irqs_disabled();
	facts->preempt_count = preempt_count();
	/*
	 * Non-zero inside rcu_read_lock() with preemptible RCU; 0 with the
	 * guest's Tiny RCU, whose rcu_read_lock() disables preemption (and so
	 * shows in preempt_count instead).
	 */
	facts->rcu_depth = rcu_preempt_depth();
	/*
	 * In interrupt context `current` is whatever task the interrupt
	 * happened to stop: its name says nothing about the code running.
	 */
	if (in_task())
		strscpy(facts->comm, current->comm, sizeof(facts->comm));
	else
		facts->comm[0] = '\0';
}
