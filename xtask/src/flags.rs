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
  test [--only PHASE,...]  the harness's unit tests, the book, every chapter, the
                        negative tests, grading, lints (phases: unit, book,
                        chapters, negative, grading, fast, lint)
  book [--serve]        build the book into target/book (or serve it locally)
  mutants <chapter>...  the negative tests of some chapters only: their mutations
                        and exercise skeletons must fail (for chapter authors)
  lint                  the kernel's rustfmt and CLIPPY=1 on the chapters, cargo
                        fmt and clippy on the workspace (part of test)
  bench [--runs N]      time setup, a chapter's edit-to-verdict loop, boots (median)
  help                  this text

for instructors (grading):
  grade <submissions> [--chapters 01-hello,02-memory] [-j N] [--out DIR]
        [--shard K/N] [--hidden DIR]
                        grade every folder or .tar.gz in <submissions>, each in
                        its own sandboxed build and guest; results in DIR
                        (default: grades/) as JSON and JUnit XML; resumes
  grade-merge <dir>... --out DIR   merge the results of shards into one report

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
  --kernel <fast|debug> the guest kernel's flavour: debug adds lockdep, KASAN and
                        debug objects (default: debug for test, mutants and
                        grade; fast for the others)
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
    /// The full test suite, or some of its phases.
    Test { only: Vec<String> },
    /// Build or serve the book.
    Book { serve: bool },
    /// Some chapters' negative tests.
    Mutants { chapters: Vec<String> },
    /// The kernel's and the workspace's lints.
    Lint,
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
    /// Grade a class.
    Grade(GradeFlags),
    /// Merge graded shards.
    GradeMerge { dirs: Vec<PathBuf>, out: PathBuf },
}

/// What `grade` was asked.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeFlags {
    /// The directory of submissions.
    pub submissions: PathBuf,
    /// Chapters to grade; empty: every chapter of the workbook.
    pub chapters: Vec<String>,
    /// Guests at once.
    pub jobs: usize,
    /// Where the results go.
    pub out: PathBuf,
    /// This shard, (K, N) with 1 <= K <= N.
    pub shard: Option<(usize, usize)>,
    /// The instructor's hidden checks.
    pub hidden: Option<PathBuf>,
}

/// The default directory for grading results.
pub const DEFAULT_GRADES_DIR: &str = "grades";

fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let bad = || format!("--shard takes K/N with 1 <= K <= N, e.g. 2/4, not `{text}`");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad().into());
    }
    Ok((k, n))
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
    let mut grade_chapters = Vec::new();
    let mut jobs = 1;
    let mut out = None;
    let mut shard = None;
    let mut hidden = None;
    let mut test_only = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| iter.next().cloned().ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"));
        match arg.as_str() {
            "--kernel-src" => setup.kernel_src = Some(PathBuf::from(value(arg)?)),
            "--rebuild" => setup.rebuild = true,
            "--kernel" => setup.kernel = Some(crate::kernel::Flavour::parse(&value(arg)?)?),
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
            "--chapters" => grade_chapters = value(arg)?.split(',').filter(|c| !c.is_empty()).map(String::from).collect(),
            "-j" | "--jobs" => {
                let v = value(arg)?;
                jobs = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| format!("{arg} takes a positive number of guests, not `{v}`"))?;
            }
            "--out" => out = Some(PathBuf::from(value(arg)?)),
            "--shard" => shard = Some(parse_shard(&value(arg)?)?),
            "--hidden" => hidden = Some(PathBuf::from(value(arg)?)),
            "--only" => test_only = value(arg)?.split(',').filter(|p| !p.is_empty()).map(String::from).collect(),
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
        Some("test") => Command::Test { only: test_only },
        Some("lint") => Command::Lint,
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
        Some("grade") if positional.len() == 2 => Command::Grade(GradeFlags {
            submissions: PathBuf::from(&positional[1]),
            chapters: grade_chapters,
            jobs,
            out: out.unwrap_or_else(|| PathBuf::from(DEFAULT_GRADES_DIR)),
            shard,
            hidden,
        }),
        Some("grade") => {
            return Err(format!("`grade` takes one directory of submissions, e.g. `cargo xtask grade submissions/`\n\n{USAGE}").into())
        }
        Some("grade-merge") if positional.len() > 1 => match out {
            Some(out) => Command::GradeMerge { dirs: positional[1..].iter().map(PathBuf::from).collect(), out },
            None => return Err(format!("`grade-merge` needs --out DIR for the merged report\n\n{USAGE}").into()),
        },
        Some("grade-merge") => return Err(format!("`grade-merge` needs the shards' result directories\n\n{USAGE}").into()),
        Some("run") if positional.len() > 1 => Command::Run { chapters: positional[1..].to_vec() },
        Some("mutants") if positional.len() > 1 => Command::Mutants { chapters: positional[1..].to_vec() },
        Some("mutants") => return Err(format!("`mutants` needs a chapter, e.g. `cargo xtask mutants 01-hello`\n\n{USAGE}").into()),
        Some("run") => return Err(format!("`run` needs a chapter, e.g. `cargo xtask run 01-hello`\n\n{USAGE}").into()),
        Some(other) => return Err(format!("unknown command `{other}`\n\n{USAGE}").into()),
    };
    let takes_arguments = matches!(
        command,
        Command::Run { .. }
            | Command::Mutants { .. }
            | Command::Grade(_)
            | Command::GradeMerge { .. }
            | Command::ExercisesInit { .. }
            | Command::Check { .. }
            | Command::Hint { .. }
            | Command::Reset { .. }
            | Command::Solution { .. }
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
        assert_eq!(
            parse(&args("solution 01-hello --force")).unwrap().command,
            Command::Solution { chapter: "01-hello".into(), force: true }
        );
        assert_eq!(parse(&args("exercises init")).unwrap().command, Command::ExercisesInit { force: false });
    }

    #[test]
    fn grade_takes_a_class_and_its_options() {
        let Command::Grade(g) = parse(&args("grade subs --chapters 01-hello,02-memory -j 2 --shard 2/3 --hidden h")).unwrap().command
        else {
            panic!("not grade");
        };
        assert_eq!(g.chapters, args("01-hello 02-memory"));
        assert_eq!((g.jobs, g.shard, g.out), (2, Some((2, 3)), PathBuf::from(DEFAULT_GRADES_DIR)));
        assert_eq!(g.hidden, Some(PathBuf::from("h")));
        let err = |s: &str| parse(&args(s)).unwrap_err().to_string();
        assert!(err("grade subs --shard 4/3").contains("1 <= K <= N"));
        assert!(err("grade subs --shard x").contains("K/N"));
        assert!(err("grade subs -j 0").contains("positive number"));
        assert!(err("grade").contains("one directory of submissions"));
        assert!(err("grade-merge a b").contains("--out"));
        assert_eq!(
            parse(&args("grade-merge a b --out m")).unwrap().command,
            Command::GradeMerge { dirs: vec!["a".into(), "b".into()], out: "m".into() }
        );
    }
}
