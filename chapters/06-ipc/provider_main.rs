// SPDX-License-Identifier: GPL-2.0

//! provider: a module that offers a service to other modules.
//!
//! The service hands out ticket numbers, unique and increasing, to any
//! module that asks: `wb_next_ticket()`, exported by the C shim
//! (`provider_shim.c`) because only C can export a symbol today. Loading a
//! module that calls it links that module to this one: the kernel then
//! refuses to remove the provider while a user is loaded.
//!
//! A second service goes the other way: one module at a time may subscribe
//! a callback (`wb_subscribe()`), which is told of every ticket handed out.
//! The provider then holds a pointer into the subscriber's code, which the
//! loader does not protect, so the subscriber must unsubscribe
//! (`wb_unsubscribe()`) before it unloads; the callback is called under a
//! spinlock that unsubscribing also takes, so after it no call runs.

use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};
use kernel::sync::global_lock;

module! {
    type: Provider,
    name: "provider",
    authors: ["The Rust Kernel Workbook"],
    description: "Between modules: a service other modules call (exported through a C shim)",
    license: "GPL",
}

/// The last ticket handed out.
static LAST_TICKET: Atomic<u64> = Atomic::new(0);

/// A subscriber's callback: told the number of every ticket handed out.
///
/// It is called with a spinlock held and interrupts off, so it must not
/// sleep nor call the provider back, and it may run on any task.
type Subscriber = unsafe extern "C" fn(ticket: u64);

global_lock! {
    // SAFETY: `GlobalLock::init` must run before the lock is first used:
    // `Provider::init` runs it first thing, and no other module can call
    // the exported functions, the only users, before this module's `init`
    // has returned (the loader refuses to link to a module still coming).
    unsafe(uninit) static SUBSCRIBER: SpinLockIrq<Option<Subscriber>> = None;
}

/// The service's implementation, called by the exported C wrapper: the next
/// ticket, told to the subscriber if there is one.
#[unsafe(no_mangle)]
pub extern "C" fn provider_next_ticket() -> u64 {
    // EXERCISE: Take the next ticket from LAST_TICKET, tell it to the subscriber, if any, with SUBSCRIBER held, and return it.
    // HINT: `LAST_TICKET.fetch_add(1, ...) + 1` is the ticket (numbered from 1). The callback is `unsafe`: its contract is `provider_subscribe`'s `# Safety`.
    // HINT: Call it while holding the lock: `if let Some(tell) = *SUBSCRIBER.lock() { unsafe { tell(ticket) } }`. Unsubscribing takes the lock too, so it waits for a running call, and after it no call starts.
    // STUB: 0
    let ticket = LAST_TICKET.fetch_add(1, ordering::Relaxed) + 1;
    let subscriber = SUBSCRIBER.lock();
    if let Some(tell) = *subscriber {
        // SAFETY: `tell` was given to `provider_subscribe`, whose contract
        // makes it callable, with the lock held, until
        // `provider_unsubscribe` has removed it; that takes the lock we
        // hold, so it has not.
        unsafe { tell(ticket) };
    }
    ticket
    // END EXERCISE
}

/// Makes `tell` the subscriber; `EBUSY` if there is one already.
///
/// # Safety
///
/// `tell` must stay callable until `provider_unsubscribe(tell)` has
/// returned (a module that subscribes must unsubscribe before it unloads),
/// and must neither sleep nor call the provider: it is called with
/// SUBSCRIBER, a spinlock, held and interrupts off.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn provider_subscribe(tell: Subscriber) -> c_int {
    let mut subscriber = SUBSCRIBER.lock();
    if subscriber.is_some() {
        return EBUSY.to_errno();
    }
    *subscriber = Some(tell);
    0
}

/// Removes `tell` if it is the subscriber. When this returns, no call of
/// `tell` is running or will start.
#[unsafe(no_mangle)]
pub extern "C" fn provider_unsubscribe(tell: Subscriber) {
    // EXERCISE: With SUBSCRIBER held, remove the subscriber if it is `tell` (and only then: another one stays).
    // HINT: Taking the lock is what makes this wait for a call of `tell` in progress in `provider_next_ticket`: nothing else is needed for that.
    // HINT: `let mut subscriber = SUBSCRIBER.lock();` then set `*subscriber = None` if `subscriber.is_some_and(|s| core::ptr::fn_addr_eq(s, tell))` (`fn_addr_eq` compares function pointers).
    // STUB: let _ = tell;
    let mut subscriber = SUBSCRIBER.lock();
    if subscriber.is_some_and(|s| core::ptr::fn_addr_eq(s, tell)) {
        *subscriber = None;
    }
    // END EXERCISE
}

struct Provider;

impl kernel::Module for Provider {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `init` needs to be called once, before any other use of
        // the lock: this is the first thing the module does, and it runs
        // once.
        unsafe { SUBSCRIBER.init() };
        pr_info!("ticket service ready\n");
        Ok(Provider)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // No subscriber can be left: a module that subscribed uses this
        // one, and the kernel unloads it first. One that left without
        // unsubscribing is a bug, worth saying so.
        if SUBSCRIBER.lock().is_some() {
            pr_err!("a subscriber unloaded without unsubscribing\n");
        }
        pr_info!(
            "ticket service closed after {} tickets\n",
            LAST_TICKET.load(ordering::Relaxed)
        );
    }
}
