// SPDX-License-Identifier: GPL-2.0

//! `wbtools`: every guest program of `src/bin/` in one static binary, run
//! by the name it is called by, as busybox runs its applets. The harness
//! puts it in the guest once, as `/bin/wbtools`, and each program a chapter
//! names as a link to it. `wbtools --list` prints the programs' names.

use std::process::ExitCode;

/// How a program is run.
type Program = fn() -> ExitCode;

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

fn main() -> ExitCode {
    let called = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&called).file_name().unwrap_or_default().to_string_lossy().into_owned();
    if let Some((_, run)) = PROGRAMS.iter().find(|(program, _)| *program == name) {
        return run();
    }
    if std::env::args().nth(1).as_deref() == Some("--list") {
        for (program, _) in PROGRAMS {
            println!("{program}");
        }
        return ExitCode::SUCCESS;
    }
    let names: Vec<&str> = PROGRAMS.iter().map(|(program, _)| *program).collect();
    eprintln!("wbtools: called as `{name}`, which is none of its programs: {}", names.join(", "));
    ExitCode::from(2)
}
