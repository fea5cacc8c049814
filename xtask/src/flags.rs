// SPDX-License-Identifier: GPL-2.0

//! The command line, declared in one place.

use std::path::PathBuf;

use crate::setup::SetupOptions;
use crate::Result;

/// The usage text, printed by `help` and on a malformed command line.
pub const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup                 install the toolchain and build the guest kernel (cached)
  run <chapter>...      build chapters' modules, boot the guest, check them
                        (<chapter> is a name like 01-hello or a directory)
  test                  the harness's unit tests, every chapter, the negative tests
  book [--serve]        build the book into target/book (or serve it locally)
  bench [--runs N]      time setup, a chapter's edit-to-verdict loop, boots (median)
  help                  this text

for learners (exercise mode):
  exercises init [--force]  your copy of every chapter with parts to write, in learn/
  check <chapter>       check your version of a chapter in the guest
  watch                 check the current exercise on every save, then the next
  hint <chapter>        what to write, and hints
  reset <chapter>       start a chapter's exercise again
  solution <chapter> [--force]  the reference solution (once your version passes)

options:
  --kernel-src <path>   a Linux 7.3 tree or tarball (default: WORKBOOK_KERNEL_SRC,
                        else Debian's linux-source-7.3)
  --rebuild             rebuild the kernel even if the cache has it (setup)
  --no-install          never install packages or crates; say what is missing
  --accel <tcg|kvm|auto>  how QEMU runs the guest (default: tcg, or WORKBOOK_ACCEL)
  -v, --verbose         show the whole guest console after a run
";

/// One parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print usage.
    Help,
    /// Prepare the toolchain and kernel.
    Setup,
    /// Check chapters in the guest.
    Run { chapters: Vec<String> },
    /// The full test suite.
    Test,
    /// Build or serve the book.
    Book { serve: bool },
    /// Measure the harness.
    Bench { runs: usize },
    /// Create the learner's copy.
    ExercisesInit { force: bool },
    /// Check the learner's version of a chapter.
    Check { chapter: String },
    /// Check on every save.
    Watch,
    /// Show a chapter's hints.
    Hint { chapter: String },
    /// Reset a chapter's exercise.
    Reset { chapter: String },
    /// Show a chapter's solution.
    Solution { chapter: String, force: bool },
}

/// The command and its options.
#[derive(Debug, Clone)]
pub struct Flags {
    /// What to do.
    pub command: Command,
    /// Toolchain and kernel options.
    pub setup: SetupOptions,
    /// `tcg`, `kvm` or `auto`.
    pub accel: Option<String>,
    /// Show the whole console.
    pub verbose: bool,
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Flags> {
    let mut positional = Vec::new();
    let mut setup = SetupOptions::default();
    let mut accel = None;
    let mut verbose = false;
    let mut serve = false;
    let mut runs = 3;
    let mut force = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| {
            iter.next().cloned().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--kernel-src" => setup.kernel_src = Some(PathBuf::from(value(arg)?)),
            "--rebuild" => setup.rebuild = true,
            "--no-install" => setup.no_install = true,
            "--accel" => {
                let v = value(arg)?;
                if !["tcg", "kvm", "auto"].contains(&v.as_str()) {
                    return Err(format!("--accel takes tcg, kvm or auto, not `{v}`").into());
                }
                accel = Some(v);
            }
            "-v" | "--verbose" => verbose = true,
            "--serve" => serve = true,
            "--force" => force = true,
            "--runs" => {
                let v = value(arg)?;
                runs = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("--runs takes a positive number, not `{v}`"))?;
            }
            "-h" | "--help" => positional.insert(0, "help".to_string()),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`\n\n{USAGE}").into()),
            _ => positional.push(arg.clone()),
        }
    }
    let chapter_arg = |command: &str| -> Result<String> {
        match positional.get(1) {
            Some(name) if positional.len() == 2 => Ok(name.clone()),
            Some(_) => Err(format!("`{command}` takes one chapter\n\n{USAGE}").into()),
            None => Err(format!("`{command}` needs a chapter, e.g. `cargo xtask {command} 01-hello`\n\n{USAGE}").into()),
        }
    };
    let command = match positional.first().map(String::as_str) {
        None | Some("help") => Command::Help,
        Some("setup") => Command::Setup,
        Some("test") => Command::Test,
        Some("book") => Command::Book { serve },
        Some("bench") => Command::Bench { runs },
        Some("exercises") => match positional.get(1).map(String::as_str) {
            None | Some("init") if positional.len() <= 2 => Command::ExercisesInit { force },
            _ => return Err(format!("usage: cargo xtask exercises init [--force]\n\n{USAGE}").into()),
        },
        Some("check") => Command::Check { chapter: chapter_arg("check")? },
        Some("watch") => Command::Watch,
        Some("hint") => Command::Hint { chapter: chapter_arg("hint")? },
        Some("reset") => Command::Reset { chapter: chapter_arg("reset")? },
        Some("solution") => Command::Solution { chapter: chapter_arg("solution")?, force },
        Some("run") if positional.len() > 1 => Command::Run { chapters: positional[1..].to_vec() },
        Some("run") => return Err(format!("`run` needs a chapter, e.g. `cargo xtask run 01-hello`\n\n{USAGE}").into()),
        Some(other) => return Err(format!("unknown command `{other}`\n\n{USAGE}").into()),
    };
    let takes_arguments = matches!(
        command,
        Command::Run { .. } | Command::ExercisesInit { .. } | Command::Check { .. } | Command::Hint { .. } | Command::Reset { .. } | Command::Solution { .. }
    );
    if positional.len() > 1 && !takes_arguments {
        return Err(format!("unexpected argument `{}`\n\n{USAGE}", positional[1]).into());
    }
    Ok(Flags { command, setup, accel, verbose })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn run_takes_chapters_and_options() {
        let flags = parse(&args("run 01-hello --accel tcg chapters/02-memory -v")).unwrap();
        assert_eq!(flags.command, Command::Run { chapters: args("01-hello chapters/02-memory") });
        assert_eq!(flags.accel.as_deref(), Some("tcg"));
        assert!(flags.verbose);
    }

    #[test]
    fn bad_command_lines_are_named() {
        assert!(parse(&args("run")).unwrap_err().to_string().contains("needs a chapter"));
        assert!(parse(&args("frobnicate")).unwrap_err().to_string().contains("unknown command `frobnicate`"));
        assert!(parse(&args("setup --bogus")).unwrap_err().to_string().contains("unknown option `--bogus`"));
        assert!(parse(&args("run x --accel fast")).unwrap_err().to_string().contains("tcg, kvm or auto"));
        assert!(parse(&args("setup extra")).unwrap_err().to_string().contains("unexpected argument `extra`"));
        assert_eq!(parse(&[]).unwrap().command, Command::Help);
        assert!(parse(&args("check")).unwrap_err().to_string().contains("needs a chapter"));
        assert!(parse(&args("hint a b")).unwrap_err().to_string().contains("takes one chapter"));
        assert!(parse(&args("bench --runs 0")).unwrap_err().to_string().contains("positive number"));
        assert_eq!(parse(&args("solution 01-hello --force")).unwrap().command, Command::Solution { chapter: "01-hello".into(), force: true });
        assert_eq!(parse(&args("exercises init")).unwrap().command, Command::ExercisesInit { force: false });
    }
}
