// SPDX-License-Identifier: GPL-2.0
/*
 * The provider's C shim: it exports the service to other modules.
 *
 * A module's function becomes callable from other modules only through
 * EXPORT_SYMBOL_GPL(), a C macro that puts the symbol's name and address in
 * the module's __ksymtab sections, which the module loader reads when it
 * links a module that uses it. Rust has no way to emit those entries in
 * Linux 7.3, so the exported function is this one-line C wrapper around the
 * Rust implementation.
 */
#include <linux/errno.h>
#include <linux/export.h>

#include "provider.h"

/* The service: a ticket number, unique and increasing, for any caller. */
u64 wb_next_ticket(void)
{
	return provider_next_ticket();
}
EXPORT_SYMBOL_GPL(wb_next_ticket);

/* The second service: be told of every ticket (see provider.h). */
int wb_subscribe(void (*tell)(u64 ticket))
{
	/* A NULL pointer is no Rust `fn`: refused here, before Rust sees it. */
	if (!tell)
		return -EINVAL;
	return provider_subscribe(tell);
}
EXPORT_SYMBOL_GPL(wb_subscribe);

void wb_unsubscribe(void (*tell)(u64 ticket))
{
	if (tell)
		provider_unsubscribe(tell);
}
EXPORT_SYMBOL_GPL(wb_unsubscribe);
