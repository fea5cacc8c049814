// SPDX-License-Identifier: GPL-2.0

//! The workbook's harness as a library: toolchain and kernel setup, module
//! builds, the QEMU guest, chapter checks and verdicts. `main.rs` is a thin
//! command line over it, and tests call it directly.

pub mod bench;
pub mod book;
pub mod browser;
pub mod chapter;
pub mod cli;
pub mod detectors;
pub mod exercise;
pub mod faults;
pub mod fixtures;
pub mod flags;
pub mod grade;
pub mod guest;
pub mod hash;
pub mod initramfs;
pub mod kernel;
pub mod learn;
pub mod lint;
pub mod lock;
pub mod module_build;
pub mod mutation;
pub mod paths;
pub mod planted;
pub mod programs;
pub mod progress;
pub mod report;
pub mod runner;
pub mod setup;
pub mod toolchain;
pub mod transcript;
pub mod verdict;

/// Errors carry a message written for the reader: what went wrong and the fix.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
