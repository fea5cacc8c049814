/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The provider's service, for C callers (Rust callers declare it in an
 * `extern "C"` block, as consumer.rs does).
 */
#ifndef WB_PROVIDER_H
#define WB_PROVIDER_H

#include <linux/types.h>

/*
 * A ticket number, unique and increasing. Any context but a subscriber's
 * tell() (it takes the spinlock tell() runs under) and NMI. Exported with
 * EXPORT_SYMBOL_GPL.
 */
u64 wb_next_ticket(void);

/*
 * Be told of every ticket handed out, to anyone: tell(ticket) is called
 * with a spinlock held and interrupts off, so it must not sleep nor call
 * the provider (that would take the spinlock it waits for). One
 * subscriber at a time: -EBUSY if there is one, -EINVAL for a NULL
 * tell (wb_unsubscribe(NULL) does nothing). tell must stay callable
 * until wb_unsubscribe(tell) has returned; after that no call of it is
 * running or will start. A module that subscribes must unsubscribe
 * before it unloads. Both exported with EXPORT_SYMBOL_GPL.
 */
int wb_subscribe(void (*tell)(u64 ticket));
void wb_unsubscribe(void (*tell)(u64 ticket));

/*
 * The Rust implementations behind them (provider_main.rs). Their `tell`
 * is a Rust function pointer, which is never NULL: the wb_ wrappers check.
 */
u64 provider_next_ticket(void);
int provider_subscribe(void (*tell)(u64 ticket));
void provider_unsubscribe(void (*tell)(u64 ticket));

#endif
