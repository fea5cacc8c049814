// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask`: the thin command line over the harness library.

use std::process::ExitCode;

use xtask::flags::{self, Command};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> xtask::Result<ExitCode> {
    let flags = flags::parse(args)?;
    match flags.command {
        Command::Help => {
            print!("{}", flags::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Setup => {
            let env = xtask::setup::ensure(&flags.setup)?;
            eprintln!(
                "setup: ready: Linux {} ({}), {}, kernel build {}",
                env.kernel.release,
                env.kernel.bzimage.display(),
                env.toolchain.rustc_version,
                env.kernel.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { .. } | Command::Test => Err("not implemented yet".into()),
    }
}
