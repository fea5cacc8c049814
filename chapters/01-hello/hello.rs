// SPDX-License-Identifier: GPL-2.0

//! Hello, kernel: the smallest useful Rust module.
//!
//! It shows the `module!` macro (name, authors, description, license and
//! three parameters), `init`, which runs when the module is loaded and
//! refuses bad parameters, `Drop`, which runs when it is unloaded, and the
//! `pr_*` macros, which write to the kernel log at each level.
//!
//! Try it in the guest:
//!
//! ```sh
//! insmod hello.ko greetings=3 skip=2 shout=true
//! dmesg
//! rmmod hello
//! ```

use kernel::prelude::*;
use kernel::time::{Instant, Monotonic};

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
        skip: u32 {
            default: 0,
            description: "The number of a greeting to leave out, 0 for none",
        },
    },
}
// ANCHOR_END: module

// ANCHOR: state
/// What the module keeps while it is loaded.
struct Hello {
    /// How many greetings `init` printed.
    greeted: u32,
    /// When `init` ran, on the monotonic clock.
    loaded: Instant<Monotonic>,
}
// ANCHOR_END: state

/// The most greetings a user may ask for.
const MAX_GREETINGS: u32 = 10;

// ANCHOR: init
impl kernel::Module for Hello {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let loaded = Instant::<Monotonic>::now();
        let greetings = module_parameters::greetings.value();
        if greetings == 0 || greetings > MAX_GREETINGS {
            pr_err!("greetings={greetings} is out of range 1..={MAX_GREETINGS}\n");
            return Err(EINVAL);
        }
        // ANCHOR_END: init
        // EXERCISE: Refuse a `skip` greater than `greetings`: log `skip=N is out of range 0..=greetings` with pr_err! and fail the load with EINVAL.
        // HINT: Do it like the `greetings` check just above: validate everything before doing anything, so a refused load leaves nothing behind.
        // HINT: `let skip = module_parameters::skip.value(); if skip > greetings { pr_err!("skip={skip} is out of range 0..={greetings}\n"); return Err(EINVAL); }`
        let skip = module_parameters::skip.value();
        if skip > greetings {
            pr_err!("skip={skip} is out of range 0..={greetings}\n");
            return Err(EINVAL);
        }
        // END EXERCISE
        // EXERCISE: Report at notice level (pr_notice!, `<5>`) whether `shout` is set: `shout is on` or `shout is off`.
        // HINT: Each level has its macro: pr_err! is 3, pr_warn! 4, pr_notice! 5, pr_info! 6.
        // HINT: `pr_notice!("shout is {}\n", if module_parameters::shout.value() { "on" } else { "off" });`
        pr_notice!(
            "shout is {}\n",
            if module_parameters::shout.value() {
                "on"
            } else {
                "off"
            }
        );
        // END EXERCISE
        // EXERCISE: Greet `greetings` times, numbered, leaving out greeting number `skip`: `Hello, kernel! (n/greetings)` with pr_info!, or `HELLO, KERNEL! (n/greetings)` with pr_warn! when `shout` is set; set `greeted` to how many you printed.
        // HINT: `module_parameters::shout.value()` is a `bool`; a `for n in 1..=greetings` loop counts from 1, and `continue` leaves one number out.
        // HINT: Every pr_*! line ends with `\n`; count the greetings printed in a `let mut greeted = 0;` declared before the loop.
        // STUB: let greeted = 0;
        let mut greeted = 0;
        for n in 1..=greetings {
            if n == module_parameters::skip.value() {
                continue;
            }
            if module_parameters::shout.value() {
                pr_warn!("HELLO, KERNEL! ({n}/{greetings})\n");
            } else {
                pr_info!("Hello, kernel! ({n}/{greetings})\n");
            }
            greeted += 1;
        }
        // END EXERCISE
        // ANCHOR: init_rest
        // Rust's `pr_debug!` is `if cfg!(debug_assertions) { ... }`: its
        // arguments are always compiled and type-checked, and the call is
        // thrown away as dead code unless the kernel is configured with
        // CONFIG_RUST_DEBUG_ASSERTIONS (which builds all Rust code, modules
        // included, with -Cdebug-assertions); then it always prints, at
        // level 7. Unlike C's pr_debug(), neither `#define DEBUG` nor dynamic
        // debug has any say.
        pr_debug!("pr_debug! is compiled in: this kernel has CONFIG_RUST_DEBUG_ASSERTIONS\n");
        Ok(Hello { greeted, loaded })
    }
}
// ANCHOR_END: init_rest

// ANCHOR: drop
impl Drop for Hello {
    fn drop(&mut self) {
        // ANCHOR_END: drop
        // EXERCISE: Say goodbye: `Goodbye, kernel (greeted N times)`, with N the number of greetings printed.
        // HINT: `self` still has everything `init` returned.
        // HINT: `pr_info!("Goodbye, kernel (greeted {} times)\n", self.greeted);`
        // STUB: let _ = self.greeted;
        pr_info!("Goodbye, kernel (greeted {} times)\n", self.greeted);
        // END EXERCISE
        // EXERCISE: Say how long the module was loaded, in milliseconds: `loaded for N ms`.
        // HINT: `init` stored an `Instant` in `self.loaded`; an `Instant`'s `elapsed()` is a `Delta`, the time since then.
        // HINT: `pr_info!("loaded for {} ms\n", self.loaded.elapsed().as_millis());`
        // STUB: let _ = self.loaded;
        pr_info!("loaded for {} ms\n", self.loaded.elapsed().as_millis());
        // END EXERCISE
    }
}
