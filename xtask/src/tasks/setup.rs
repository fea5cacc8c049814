// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask setup` and `cargo xtask make-command`: the toolchain and
//! the cached kernel, and the plain `make` line that builds a chapter
//! against it without the harness.

use crate::chapter::Chapter;
use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::setup::{self, Environment};
use crate::Result;

/// `cargo xtask setup`.
pub(crate) fn setup(flags: &Flags) -> Result<Environment> {
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    eprintln!(
        "setup: ready: Linux {} with {}; kernel build tree {}",
        env.kernel.release,
        env.toolchain.rustc_version,
        env.kernel.dir.display()
    );
    Ok(env)
}

/// `cargo xtask make-command CHAPTER`: the command line the harness runs to
/// build a chapter, for a learner who wants to build without the workbook.
pub(crate) fn make_command(flags: &Flags, name: &str) -> Result<bool> {
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let chapter = Chapter::find(&env.project, name)?;
    // The learner's own copy when there is one: that is what they build.
    let learner = crate::exercise::learner_root(&env.project).join(&chapter.name);
    let dir = if learner.is_dir() { learner } else { chapter.dir.clone() };
    let vars = env.toolchain.make_vars().join(" ");
    println!("# builds {} against the {} kernel's tree (the .ko files land there):", dir.display(), env.kernel.flavour.name());
    println!("PATH={}:$PATH \\", env.toolchain.llvm_bin.display());
    println!("  make -C {} M={} {vars} modules", env.kernel.dir.display(), dir.display());
    Ok(true)
}
