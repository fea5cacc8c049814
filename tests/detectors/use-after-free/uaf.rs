// SPDX-License-Identifier: GPL-2.0

//! A planted bug for the harness's tests: a raw pointer kept past the
//! `KBox` it points into, then read. The freed memory still holds the old
//! value on the fast kernel, so the read "works"; KASAN reports it.

use kernel::prelude::*;

module! {
    type: Uaf,
    name: "uaf",
    authors: ["The Rust Kernel Workbook"],
    description: "Planted bug: a use after free through a raw pointer",
    license: "GPL",
}

struct Uaf;

/// Allocates a value and returns a pointer that outlives it.
#[inline(never)]
fn dangling() -> Result<*const u32> {
    let boxed = KBox::new(42u32, GFP_KERNEL)?;
    let ptr: *const u32 = &*boxed;
    drop(boxed);
    Ok(ptr)
}

/// Reads through the pointer.
#[inline(never)]
fn peek(ptr: *const u32) -> u32 {
    // SAFETY: none: this is the planted bug. `ptr` points into a freed
    // allocation, which the contract of `read_volatile` (valid for reads)
    // forbids.
    unsafe { core::ptr::read_volatile(ptr) }
}

impl kernel::Module for Uaf {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let ptr = dangling()?;
        pr_info!("loaded, read {}\n", peek(ptr));
        Ok(Uaf)
    }
}
