// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask book`: the book, built or served.

use crate::flags::Flags;
use crate::paths::Project;
use crate::Result;

/// `cargo xtask book [--serve]`.
pub(crate) fn book(flags: &Flags, serve: bool) -> Result<bool> {
    let project = Project::discover()?;
    let out = crate::book::build(&project, serve, flags.install())?;
    eprintln!("book: built {}", out.join("index.html").display());
    Ok(true)
}
