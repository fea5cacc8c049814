// SPDX-License-Identifier: GPL-2.0

//! consumer: a module that uses another module's service.
//!
//! It declares `wb_next_ticket()` as an external function and calls it. The
//! build leaves the symbol undefined; the module loader resolves it at
//! `insmod` time against the symbols other modules have exported, and
//! records that `consumer` uses `provider`. Without the provider loaded, the
//! load fails with an unknown-symbol error.

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

// Exported by the provider module (provider_shim.c).
extern "C" {
    fn wb_next_ticket() -> u64;
}

struct Consumer;

impl kernel::Module for Consumer {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let count = module_parameters::tickets.value();
        if count == 0 || count > 10 {
            pr_err!("tickets={count} is out of range 1..=10\n");
            return Err(EINVAL);
        }
        for _ in 0..count {
            // SAFETY: the loader linked this module to the provider, which
            // cannot be removed while this module is loaded; the function
            // takes no arguments and may be called from any context.
            let ticket = unsafe { wb_next_ticket() };
            pr_info!("got ticket {ticket}\n");
        }
        Ok(Consumer)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        pr_info!("done\n");
    }
}
