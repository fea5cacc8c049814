// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask mutants`: some chapters' negative tests only.

use crate::chapter::Chapter;
use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::negative::{negative_jobs, negative_tests, Kernels};
use crate::paths::Project;
use crate::session::choose_accel;
use crate::setup::{self};
use crate::Result;

/// `cargo xtask mutants CHAPTER...`: those chapters' negative tests only.
pub(crate) fn mutants(flags: &Flags, names: &[String]) -> Result<bool> {
    let project = Project::discover()?;
    let chapters = names.iter().map(|n| Chapter::find(&project, n)).collect::<Result<Vec<_>>>()?;
    // Each mutant on the fast kernel unless only a detector sees its bug,
    // as `test` runs them; with --kernel, all on that kernel.
    let asked = setup::ensure(&flags.setup, Flavour::Debug)?;
    let fast = if flags.setup.kernel.is_none() { Some(setup::ensure(&flags.setup, Flavour::Fast)?) } else { None };
    let kernels = Kernels::new(fast.as_ref(), &asked);
    let accel = choose_accel(kernels.default, flags.guest.accel.as_deref())?;
    let results = negative_tests(&kernels, negative_jobs(&project, &chapters)?, accel)?;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(failed == 0)
}
