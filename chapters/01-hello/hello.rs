// SPDX-License-Identifier: GPL-2.0

//! Hello, kernel: the smallest useful Rust module.
//!
//! It shows the `module!` macro (name, authors, description, license and two
//! parameters), `init`, which runs when the module is loaded, `Drop`, which
//! runs when it is unloaded, and the `pr_*` macros, which write to the kernel
//! log at each level.
//!
//! Try it in the guest:
//!
//! ```sh
//! insmod hello.ko greetings=3 shout=true
//! dmesg
//! rmmod hello
//! ```

use kernel::prelude::*;

// ANCHOR: module
module! {
    type: Hello,
    name: "hello",
    authors: ["The Rust Kernel Workbook"],
    description: "Hello, kernel: init, exit, log levels and parameters",
    license: "GPL",
    params: {
        greetings: u32 {
            default: 1,
            description: "How many times to greet, 1 to 10",
        },
        shout: bool {
            default: false,
            description: "Greet at warning level instead of info",
        },
    },
}
// ANCHOR_END: module

// ANCHOR: state
/// What the module keeps while it is loaded.
struct Hello {
    greeted: u32,
}
// ANCHOR_END: state

/// The most greetings a user may ask for.
const MAX_GREETINGS: u32 = 10;

// ANCHOR: init
impl kernel::Module for Hello {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let greetings = module_parameters::greetings.value();
        if greetings == 0 || greetings > MAX_GREETINGS {
            pr_err!("greetings={greetings} is out of range 1..={MAX_GREETINGS}\n");
            return Err(EINVAL);
        }
        // EXERCISE: Greet `greetings` times, numbered: `Hello, kernel! (n/greetings)` with pr_info!, or `HELLO, KERNEL! (n/greetings)` with pr_warn! when `shout` is set.
        // HINT: `module_parameters::shout.value()` is a `bool`; a `for n in 1..=greetings` loop counts from 1.
        // HINT: Every pr_*! line ends with `\n`.
        for n in 1..=greetings {
            if module_parameters::shout.value() {
                pr_warn!("HELLO, KERNEL! ({n}/{greetings})\n");
            } else {
                pr_info!("Hello, kernel! ({n}/{greetings})\n");
            }
        }
        // END EXERCISE
        // Rust's `pr_debug!` is `if cfg!(debug_assertions) { ... }`: it is
        // compiled in only when the kernel is configured with
        // CONFIG_RUST_DEBUG_ASSERTIONS (which builds all Rust code, modules
        // included, with -Cdebug-assertions), and then always prints, at
        // level 7. Unlike C's pr_debug(), neither `#define DEBUG` nor dynamic
        // debug has any say.
        pr_debug!("pr_debug! is compiled in: this kernel has CONFIG_RUST_DEBUG_ASSERTIONS\n");
        Ok(Hello { greeted: greetings })
    }
}
// ANCHOR_END: init

// ANCHOR: drop
impl Drop for Hello {
    fn drop(&mut self) {
        // EXERCISE: Say goodbye: `Goodbye, kernel (greeted N times)`, with N the number of greetings.
        // HINT: `self` still has everything `init` returned.
        pr_info!("Goodbye, kernel (greeted {} times)\n", self.greeted);
        // END EXERCISE
    }
}
// ANCHOR_END: drop
