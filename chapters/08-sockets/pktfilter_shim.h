/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two directions of pktfilter's Rust/C boundary.
 *
 * C to Rust: the hook asks Rust for a verdict on each packet, and
 * /proc/pktfilter asks Rust to print the counters.
 * Rust to C: registering the hook and the /proc entry. `struct
 * nf_hook_ops` and the header accessors (ip_hdr(), skb_header_pointer())
 * are C data and static inline functions that `kernel::bindings` lacks.
 */
#ifndef PKTFILTER_SHIM_H
#define PKTFILTER_SHIM_H

#include <linux/types.h>

struct seq_file;

/* Implemented in Rust (pktfilter_main.rs). */
bool pktfilter_judge(u8 protocol, u16 dport);
int pktfilter_show(struct seq_file *m, void *v);

/*
 * Implemented in C (pktfilter_shim.c). pktfilter_register() registers the
 * hook (in every network namespace, present and future) and
 * /proc/pktfilter; it must not be called again before
 * pktfilter_unregister(), and leaves nothing registered when it fails.
 * pktfilter_unregister() undoes a successful pktfilter_register(), once;
 * when it returns no reader is left and no call of the hook starts (one
 * already running may finish: it runs under rcu_read_lock(), which the
 * module loader waits for before it frees the module).
 */
int pktfilter_register(void);
void pktfilter_unregister(void);

#endif
