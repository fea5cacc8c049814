// SPDX-License-Identifier: GPL-2.0

//! One file per `cargo xtask` command. Tasks sit on top: they may use any
//! module of the harness, and no module below imports a task (the test in
//! `main.rs` fails on an import that goes upward or in a circle).

pub(crate) mod bench;
pub(crate) mod book;
pub(crate) mod grade;
pub(crate) mod gradescope;
pub(crate) mod learn;
pub(crate) mod lint;
pub(crate) mod mutants;
pub(crate) mod run;
pub(crate) mod setup;
pub(crate) mod test;
