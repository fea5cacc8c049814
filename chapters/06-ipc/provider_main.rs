// SPDX-License-Identifier: GPL-2.0

//! provider: a module that offers a service to other modules.
//!
//! The service hands out ticket numbers, unique and increasing, to any
//! module that asks: `wb_next_ticket()`, exported by the C shim
//! (`provider_shim.c`) because only C can export a symbol today. Loading a
//! module that calls it links that module to this one: the kernel then
//! refuses to remove the provider while a user is loaded.

use kernel::prelude::*;
use kernel::sync::atomic::{ordering, Atomic};

module! {
    type: Provider,
    name: "provider",
    authors: ["The Rust Kernel Workbook"],
    description: "Between modules: a service other modules call (exported through a C shim)",
    license: "GPL",
}

/// The last ticket handed out.
static LAST_TICKET: Atomic<u64> = Atomic::new(0);

/// The service's implementation, called by the exported C wrapper.
#[unsafe(no_mangle)]
pub extern "C" fn provider_next_ticket() -> u64 {
    LAST_TICKET.fetch_add(1, ordering::Relaxed) + 1
}

struct Provider;

impl kernel::Module for Provider {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("ticket service ready\n");
        Ok(Provider)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        pr_info!(
            "ticket service closed after {} tickets\n",
            LAST_TICKET.load(ordering::Relaxed)
        );
    }
}
