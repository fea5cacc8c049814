// SPDX-License-Identifier: GPL-2.0

//! A planted bug for the harness's tests: two mutexes taken in opposite
//! orders by two functions. It never deadlocks here (one thread, one after
//! the other), which is exactly why only lockdep can see it.

use kernel::prelude::*;
use kernel::sync::{new_mutex, Mutex};

module! {
    type: Abba,
    name: "abba",
    authors: ["The Rust Kernel Workbook"],
    description: "Planted bug: an ABBA lock-order inversion",
    license: "GPL",
}

#[pin_data]
struct Pair {
    #[pin]
    a: Mutex<u32>,
    #[pin]
    b: Mutex<u32>,
}

struct Abba {
    _pair: Pin<KBox<Pair>>,
}

/// Takes `a`, then `b`.
#[inline(never)]
fn forward(pair: &Pair) {
    let mut a = pair.a.lock();
    let mut b = pair.b.lock();
    *a += 1;
    *b += 1;
}

/// Takes `b`, then `a`: the opposite order.
#[inline(never)]
fn backward(pair: &Pair) {
    let mut b = pair.b.lock();
    let mut a = pair.a.lock();
    *a += 1;
    *b += 1;
}

impl kernel::Module for Abba {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let pair = KBox::pin_init(
            pin_init!(Pair {
                a <- new_mutex!(0, "abba_a"),
                b <- new_mutex!(0, "abba_b"),
            }),
            GFP_KERNEL,
        )?;
        forward(&pair);
        backward(&pair);
        pr_info!("loaded\n");
        Ok(Abba { _pair: pair })
    }
}
