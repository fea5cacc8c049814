// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask`: the thin command line over the harness library.

use std::process::ExitCode;

use xtask::flags::{self, Command};
use xtask::{cli, grade, learn};

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
        Command::MakeCommand { chapter } => cli::make_command(&flags, chapter),
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
