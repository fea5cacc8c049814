// SPDX-License-Identifier: GPL-2.0

//! consumer: a module that uses another module's service.
//!
//! It declares `wb_next_ticket()` as an external function and calls it. The
//! build leaves the symbol undefined; the module loader resolves it at
//! `insmod` time against the symbols other modules have exported, and
//! records that `consumer` uses `provider`. Without the provider loaded, the
//! load fails with an unknown-symbol error.
//!
//! It also subscribes a callback to the provider's tickets. A
//! [`Subscription`] owns it and unsubscribes when dropped, on unload or
//! when `init` fails, so the provider never calls into a module that is
//! gone.

use kernel::error::to_result;
use kernel::prelude::*;

module! {
    type: Consumer,
    name: "consumer",
    authors: ["The Rust Kernel Workbook"],
    description: "Between modules: calls the provider's exported service",
    license: "GPL",
    params: {
        tickets: u32 {
            default: 3,
            description: "How many tickets to take at load time, 1 to 10",
        },
    },
}

// ANCHOR: extern
// Exported by the provider module (provider_shim.c); provider.h gives
// their contracts.
extern "C" {
    fn wb_next_ticket() -> u64;
    fn wb_subscribe(tell: extern "C" fn(ticket: u64)) -> c_int;
    fn wb_unsubscribe(tell: extern "C" fn(ticket: u64));
}
// ANCHOR_END: extern

// ANCHOR: subscription
/// Told of every ticket the provider hands out, to anyone. It runs under
/// the provider's spinlock, interrupts off: it only logs.
extern "C" fn told(ticket: u64) {
    pr_info!("told of ticket {ticket}\n");
}

/// This module's subscription to the provider's tickets, removed when it is
/// dropped. Only `Consumer` holds one, and the module drops it on unload
/// or when `init` fails after subscribing.
struct Subscription(());

impl Subscription {
    fn new() -> Result<Self> {
        // SAFETY: `wb_subscribe` needs `told` to stay callable, from any
        // context and without sleeping, until `wb_unsubscribe(told)` has
        // returned. `told` only logs, and it is this module's code, which
        // stays until the module is gone; the `Subscription` made here is
        // dropped before that, in the module's unload or failed `init`,
        // and dropping it calls `wb_unsubscribe(told)`.
        to_result(unsafe { wb_subscribe(told) })?;
        pr_info!("subscribed\n");
        Ok(Subscription(()))
    }
}
// ANCHOR_END: subscription

impl Drop for Subscription {
    fn drop(&mut self) {
        // EXERCISE: Unsubscribe `told` from the provider and log `unsubscribed`: after this the provider must never call into this module again.
        // HINT: The provider keeps the address of `told` until told otherwise: this module's code is freed after unload, and a call to it then jumps into freed memory. provider.h has the function.
        // HINT: `unsafe { wb_unsubscribe(told) };` (its SAFETY comment: it has no precondition, and when it returns no call of `told` runs or will start), then `pr_info!("unsubscribed\n");`.
        // SAFETY: `wb_unsubscribe` asks only not to be called from inside
        // `tell` (provider.h; a NULL `tell` would do nothing): this is
        // `Drop`, in process context, not a call of `told`. When it
        // returns, no call of `told` is running or will start.
        unsafe { wb_unsubscribe(told) };
        pr_info!("unsubscribed\n");
        // END EXERCISE
    }
}

// ANCHOR: module
struct Consumer {
    _subscription: Subscription,
}

impl kernel::Module for Consumer {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let count = module_parameters::tickets.value();
        if count == 0 || count > 10 {
            pr_err!("tickets={count} is out of range 1..=10\n");
            return Err(EINVAL);
        }
        // If anything after this fails, dropping `subscription` unsubscribes.
        let subscription = Subscription::new()?;
        for _ in 0..count {
            // ANCHOR_END: module
            // EXERCISE: Take a ticket from the provider's exported service and log `got ticket N`.
            // HINT: The service is `wb_next_ticket`, declared in the `extern` block; calling a foreign function is `unsafe`: say in a SAFETY comment why this call is fine.
            // HINT: `let ticket = unsafe { wb_next_ticket() };` then `pr_info!("got ticket {ticket}\n");`. The provider cannot go away meanwhile: the loader linked this module to it.
            // STUB: let _ = wb_next_ticket;
            // SAFETY: the loader linked this module to the provider, which
            // cannot be removed while this module is loaded; the function
            // takes no arguments, and its contract (provider.h) asks only
            // that it not be called from a subscriber's `tell` (it takes
            // the spinlock `tell` runs under): this is `init`, in process
            // context.
            let ticket = unsafe { wb_next_ticket() };
            pr_info!("got ticket {ticket}\n");
            // END EXERCISE
            // ANCHOR: module_rest
        }
        Ok(Consumer {
            _subscription: subscription,
        })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // `_subscription` is dropped after this: "unsubscribed" comes next.
        pr_info!("done\n");
    }
}
// ANCHOR_END: module_rest
