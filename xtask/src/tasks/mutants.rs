// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask mutants`: some chapters' negative tests only.

use crate::chapter::Chapter;
use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::negative::{negative_jobs, negative_tests};
use crate::paths::Project;
use crate::session::choose_accel;
use crate::setup::{self};
use crate::Result;

/// `cargo xtask mutants CHAPTER...`: those chapters' negative tests only.
pub(crate) fn mutants(flags: &Flags, names: &[String]) -> Result<bool> {
    let project = Project::discover()?;
    let chapters = names.iter().map(|n| Chapter::find(&project, n)).collect::<Result<Vec<_>>>()?;
    let env = setup::ensure(&flags.setup, Flavour::Debug)?;
    let accel = choose_accel(&env, flags.guest.accel.as_deref())?;
    let results = negative_tests(&env, negative_jobs(&env, &chapters)?, accel)?;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(failed == 0)
}
