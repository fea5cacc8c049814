// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask`: the workbook's harness. Toolchain and kernel setup,
//! module builds, the QEMU guest, chapter checks and verdicts, exercise mode
//! and grading. One binary crate, so the compiler reports what nothing uses.

use std::process::ExitCode;

mod bench;
mod book;
mod browser;
mod chapter;
mod cli;
mod detectors;
mod exercise;
mod faults;
mod fixtures;
mod flags;
mod grade;
mod guest;
mod hash;
mod initramfs;
mod kernel;
mod learn;
mod lint;
mod lock;
mod module_build;
mod mutation;
mod paths;
mod planted;
mod programs;
mod progress;
mod report;
mod runner;
mod setup;
mod toolchain;
mod transcript;
mod verdict;

use flags::Command;

/// Errors carry a message written for the reader: what went wrong and the fix.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
/// The harness's result type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = flags::parse(&args).and_then(|flags| match &flags.command {
        Command::Help(text) => {
            print!("{text}");
            Ok(true)
        }
        Command::Setup => cli::setup(&flags).map(|_| true),
        Command::Run { chapters } => cli::run(&flags, chapters),
        Command::Test { only } => cli::test(&flags, only),
        Command::Lint => cli::lint(&flags),
        Command::Mutants { chapters } => cli::mutants(&flags, chapters),
        Command::Book { serve } => cli::book(&flags, *serve),
        Command::PrintMake { chapter } => cli::make_command(&flags, chapter),
        Command::Bench { runs } => cli::bench(&flags, *runs),
        Command::ExercisesInit { force } => learn::init(&flags, *force),
        Command::Check { chapter } => learn::check(&flags, chapter),
        Command::Watch => learn::watch(&flags),
        Command::Hint { chapter } => learn::hint(chapter),
        Command::Reset { chapter } => learn::reset(chapter),
        Command::Solution { chapter, force } => learn::solution(chapter, *force),
        Command::Grade(grade) => grade::command(&flags, grade),
        Command::GradeMerge { dirs, out } => grade::merge_command(dirs, out),
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
