// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask lint`: the kernel's rustfmt and clippy on the chapters, the
//! workspace's on the harness.

use crate::chapter::workbook_chapters;
use crate::chapter::Chapter;
use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::paths::Project;
use crate::setup::{self, Environment};
use crate::Result;

/// Runs every lint, printing each outcome.
pub(crate) fn lint_all(flags: &Flags, env: &Environment, chapters: &[Chapter]) -> Result<Vec<(String, bool)>> {
    let install = flags.install();
    let mut results = Vec::new();
    for (name, outcome) in crate::lint::all(env, chapters, install)? {
        match &outcome {
            Ok(()) => println!("  ok    {name}"),
            Err(why) => println!("  FAIL  {name}:\n{}", why.lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")),
        }
        results.push((name, outcome.is_ok()));
    }
    Ok(results)
}

/// `cargo xtask lint`.
pub(crate) fn lint(flags: &Flags) -> Result<bool> {
    let project = Project::discover()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let results = lint_all(flags, &env, &workbook_chapters(&project)?)?;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(failed == 0)
}
