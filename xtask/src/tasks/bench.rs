// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask bench`: the performance figures, printed and as JSON.

use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::paths::Project;
use crate::session::choose_accel;
use crate::setup::{self};
use crate::Result;

/// `cargo xtask bench`: prints the table, writes `target/bench.json`.
pub(crate) fn bench(flags: &Flags, runs: usize) -> Result<bool> {
    let project = Project::discover()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let accel = choose_accel(&env, flags.guest.accel.as_deref())?;
    let figures = crate::bench::run(&flags.setup, accel, runs)?;
    print!("{}", crate::bench::table(&figures));
    let json = project.root.join("target/bench.json");
    crate::bench::write_json(&json, &figures)?;
    println!("({runs} runs each; JSON in {})", json.display());
    Ok(true)
}
