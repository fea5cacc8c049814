// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask run`: chapters checked in the guest (two guests share them
//! on a machine with two cores).

use crate::chapter::Chapter;
use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::paths::Project;
use crate::session::run_chapters;
use crate::setup::{self};
use crate::Result;

/// `cargo xtask run CHAPTER...`: prints the report; true when all passed.
pub(crate) fn run(flags: &Flags, names: &[String]) -> Result<bool> {
    let project = Project::discover()?;
    let chapters = names.iter().map(|n| Chapter::find(&project, n)).collect::<Result<Vec<_>>>()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let result = run_chapters(&env, &chapters, &flags.guest, "last")?;
    Ok(result.passed())
}
