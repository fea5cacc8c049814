/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The provider's service, for C callers (Rust callers declare it in an
 * `extern "C"` block, as consumer.rs does).
 */
#ifndef WB_PROVIDER_H
#define WB_PROVIDER_H

#include <linux/types.h>

/* A ticket number, unique and increasing. Exported with EXPORT_SYMBOL_GPL. */
u64 wb_next_ticket(void);

/* The Rust implementation behind it (provider_main.rs). */
u64 provider_next_ticket(void);

#endif
