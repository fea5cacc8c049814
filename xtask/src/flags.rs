// SPDX-License-Identifier: GPL-2.0

//! The command line, declared once: the `clap` derive below is the grammar,
//! the help text (`cargo xtask help`, `cargo xtask <command> --help`) and
//! the list of commands and options the README's tables are checked against
//! (a test below). Each command takes only the options that mean something
//! to it: the kernel options go to the commands that build or boot a kernel,
//! the guest options to those that boot one.
//!
//! Why clap's derive rather than xflags (rust-analyzer's choice): the
//! README test needs the grammar as data (`Cli::command()` lists every
//! command and option), option groups are shared by flattening one struct
//! into exactly the commands that take it, and a mistyped option gets a
//! "did you mean" — worth the few seconds clap adds to the first build.
//!
//! (Longer than most files here: the declaration is one piece by design, and
//! half the file is its tests, the README check among them.)

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::kernel::Flavour;
use crate::session::GuestOptions;
use crate::setup::SetupOptions;
use crate::Result;

/// The Rust kernel workbook's harness.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The Rust kernel workbook's harness: toolchain, guest kernel, chapter checks, exercises and grading",
    disable_help_subcommand = true,
    help_template = "{about}\n\n{usage-heading} {usage}\n\n{all-args}"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// Where the kernel comes from and whether anything may be installed.
#[derive(Debug, Clone, Default, Args)]
struct KernelArgs {
    /// A Linux 7.3 tree or tarball (default: WORKBOOK_KERNEL_SRC, else Debian's linux-source-7.3)
    #[arg(long, value_name = "PATH")]
    kernel_src: Option<PathBuf>,
    /// The guest kernel's flavour: debug adds lockdep, KASAN and debug objects
    /// (default: debug for test, mutants and grade; fast for the others)
    #[arg(long, value_name = "fast|debug", value_parser = parse_flavour)]
    kernel: Option<Flavour>,
    /// Never install packages or crates; say what is missing
    #[arg(long)]
    no_install: bool,
    /// Set by `setup --rebuild` only.
    #[arg(skip)]
    rebuild: bool,
}

/// How the guest runs and what is shown of it.
#[derive(Debug, Clone, Default, Args)]
struct GuestArgs {
    /// How QEMU runs the guest (default: tcg, or WORKBOOK_ACCEL)
    #[arg(long, value_name = "tcg|kvm|auto", value_parser = ["tcg", "kvm", "auto"])]
    accel: Option<String>,
    /// Show the whole guest console after a run
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install the toolchain and build the guest kernel (cached)
    Setup {
        #[command(flatten)]
        kernel: KernelArgs,
        /// Rebuild the kernel even if the cache has it
        #[arg(long)]
        rebuild: bool,
    },
    /// Build chapters' modules and check them in the guest (two guests share several chapters)
    Run {
        /// Chapter names like 01-hello, or directories with a checks.toml
        #[arg(required = true, value_name = "CHAPTER")]
        chapters: Vec<String>,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// The harness's unit tests, the book, every chapter, the negative tests, grading, lints
    Test {
        /// Only these phases: unit, book, chapters, negative, grading, fast, lint
        #[arg(long, value_name = "PHASE,...", value_delimiter = ',')]
        only: Vec<String>,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// The negative tests of some chapters only: mutations and skeletons must fail
    Mutants {
        #[arg(required = true, value_name = "CHAPTER")]
        chapters: Vec<String>,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// The kernel's rustfmt and CLIPPY=1 on the chapters, cargo fmt and clippy on the workspace
    Lint {
        #[command(flatten)]
        kernel: KernelArgs,
    },
    /// Build the book into target/book (or serve it locally)
    Book {
        /// Serve it on localhost instead
        #[arg(long)]
        serve: bool,
        /// Never install mdBook or Chromium; say what is missing
        #[arg(long)]
        no_install: bool,
    },
    /// Time setup, a chapter's edit-to-verdict loop, boots and grading (medians)
    Bench {
        /// How many times each figure is measured
        #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        runs: u64,
        /// Measure the fresh machine instead: a clone with an empty cache, to its first verdict
        #[arg(long)]
        cold: bool,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// The plain `make` command that builds a chapter against the cached kernel
    MakeCommand {
        #[arg(value_name = "CHAPTER")]
        chapter: String,
        #[command(flatten)]
        kernel: KernelArgs,
    },
    /// Grade every folder or .tar.gz of a class, each in its own sandboxed build and guest
    Grade {
        /// The directory of submissions
        #[arg(value_name = "SUBMISSIONS")]
        submissions: PathBuf,
        /// Chapters to grade (default: every chapter)
        #[arg(long, value_name = "01-hello,...", value_delimiter = ',')]
        chapters: Vec<String>,
        /// Guests at once
        #[arg(short = 'j', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        jobs: u64,
        /// Where the results go
        #[arg(long, value_name = "DIR", default_value = DEFAULT_GRADES_DIR)]
        out: PathBuf,
        /// Grade only shard K of N (for CI matrices), e.g. 2/4
        #[arg(long, value_name = "K/N", value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// The instructor's hidden checks: DIR/NN-topic/checks.toml
        #[arg(long, value_name = "DIR")]
        hidden: Option<PathBuf>,
        /// How builds are isolated: bubblewrap (default), or container when the
        /// grading engine already gives each submission a container of its own
        #[arg(long, value_name = "bubblewrap|container", value_enum, default_value_t = Sandbox::Bubblewrap)]
        sandbox: Sandbox,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Merge the results of grading shards into one report
    GradeMerge {
        /// The shards' result directories
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Where the merged report goes
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Gradescope: the autograder bundle, and a graded submission as results.json
    #[command(subcommand)]
    Gradescope(GradescopeCmd),
    /// Exercise mode: your copy of every chapter with parts to write, in learn/
    #[command(subcommand)]
    Exercises(ExercisesCmd),
    /// Check your version of a chapter in the guest
    Check {
        #[arg(value_name = "CHAPTER")]
        chapter: String,
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Check the current exercise on every save, then the next
    Watch {
        #[command(flatten)]
        kernel: KernelArgs,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// What to write in a chapter, and hints
    Hint {
        #[arg(value_name = "CHAPTER")]
        chapter: String,
    },
    /// Start a chapter's exercise again
    Reset {
        #[arg(value_name = "CHAPTER")]
        chapter: String,
    },
    /// The reference solution of a chapter (once your version passes)
    Solution {
        #[arg(value_name = "CHAPTER")]
        chapter: String,
        /// Show it even if your version does not pass yet
        #[arg(long)]
        force: bool,
    },
    /// This text
    Help,
}

#[derive(Debug, Subcommand)]
enum GradescopeCmd {
    /// Write the autograder zip to upload: setup.sh, run_autograder, the workbook, the hidden checks
    Bundle {
        /// Chapters to grade (default: every chapter)
        #[arg(long, value_name = "01-hello,...", value_delimiter = ',')]
        chapters: Vec<String>,
        /// The instructor's hidden checks: DIR/NN-topic/checks.toml
        #[arg(long, value_name = "DIR")]
        hidden: Option<PathBuf>,
        /// When students see the hidden checks' results
        #[arg(long, value_name = "hidden|after-due-date", value_enum, default_value_t = Visibility::Hidden)]
        hidden_visibility: Visibility,
        /// The zip to write
        #[arg(long, value_name = "FILE", default_value = "autograder.zip")]
        out: PathBuf,
    },
    /// Turn one graded submission (results/NAME.json of `grade`) into Gradescope's results.json
    Results {
        /// The graded submission
        #[arg(value_name = "RESULT.json")]
        result: PathBuf,
        /// The hidden checks it was graded with (their results get the visibility below)
        #[arg(long, value_name = "DIR")]
        hidden: Option<PathBuf>,
        /// When students see the hidden checks' results
        #[arg(long, value_name = "hidden|after-due-date", value_enum, default_value_t = Visibility::Hidden)]
        hidden_visibility: Visibility,
        /// Where results.json goes
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// When the hidden checks' results are shown on Gradescope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Visibility {
    /// Never.
    Hidden,
    /// After the due date.
    AfterDueDate,
}

#[derive(Debug, Subcommand)]
enum ExercisesCmd {
    /// Create your copy of every chapter in learn/ (your work is kept)
    Init {
        /// Start every chapter again, discarding your work
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        kernel: KernelArgs,
    },
}

fn parse_flavour(text: &str) -> std::result::Result<Flavour, String> {
    Flavour::parse(text).map_err(|e| e.to_string())
}

fn parse_shard(text: &str) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("takes K/N with 1 <= K <= N, e.g. 2/4, not `{text}`");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// One parsed command, as the harness's tasks take it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// Print this help text.
    Help(String),
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
    /// Measure the harness (or, `cold`, a fresh clone's first verdict).
    Bench { runs: usize, cold: bool },
    /// Create the learner's copy.
    ExercisesInit { force: bool },
    /// Check the learner's version of a chapter.
    Check { chapter: String },
    /// Check on every save.
    Watch,
    /// Show a chapter's hints.
    Hint { chapter: String },
    /// Print the make command line for a chapter.
    PrintMake { chapter: String },
    /// Reset a chapter's exercise.
    Reset { chapter: String },
    /// Show a chapter's solution.
    Solution { chapter: String, force: bool },
    /// Grade a class.
    Grade(GradeFlags),
    /// Merge graded shards.
    GradeMerge { dirs: Vec<PathBuf>, out: PathBuf },
    /// Write a Gradescope autograder bundle.
    GradescopeBundle { chapters: Vec<String>, hidden: Option<PathBuf>, visibility: Visibility, out: PathBuf },
    /// Convert a graded submission to Gradescope's results.json.
    GradescopeResults { result: PathBuf, hidden: Option<PathBuf>, visibility: Visibility, out: PathBuf },
}

/// How `grade` isolates a submission's build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Sandbox {
    /// A bubblewrap sandbox per build (no network, only /usr and the kernel trees).
    Bubblewrap,
    /// None of its own: the engine's container per submission isolates it.
    Container,
}

/// What `grade` was asked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GradeFlags {
    /// The directory of submissions.
    pub(crate) submissions: PathBuf,
    /// Chapters to grade; empty: every chapter of the workbook.
    pub(crate) chapters: Vec<String>,
    /// Guests at once.
    pub(crate) jobs: usize,
    /// Where the results go.
    pub(crate) out: PathBuf,
    /// This shard, (K, N) with 1 <= K <= N.
    pub(crate) shard: Option<(usize, usize)>,
    /// The instructor's hidden checks.
    pub(crate) hidden: Option<PathBuf>,
    /// How builds are isolated.
    pub(crate) sandbox: Sandbox,
}

/// The default directory for grading results.
pub(crate) const DEFAULT_GRADES_DIR: &str = "grades";

/// The command and its options.
#[derive(Debug, Clone)]
pub(crate) struct Flags {
    /// What to do.
    pub(crate) command: Command,
    /// Toolchain and kernel options.
    pub(crate) setup: SetupOptions,
    /// How the guest runs.
    pub(crate) guest: GuestOptions,
}

impl Flags {
    /// Whether packages and crates may be installed (`--no-install` says never).
    pub(crate) fn install(&self) -> crate::toolchain::Install {
        if self.setup.no_install {
            crate::toolchain::Install::Never
        } else {
            crate::toolchain::Install::IfMissing
        }
    }
}

/// The help text, generated from the declaration.
pub(crate) fn usage() -> String {
    Cli::command().render_long_help().to_string()
}

/// Parses `args` (without the program name). A malformed command line is
/// an error whose text is clap's message with the usage.
pub(crate) fn parse(args: &[String]) -> Result<Flags> {
    let argv = std::iter::once("cargo xtask".to_string()).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok(Flags {
                command: Command::Help(e.render().to_string()),
                setup: SetupOptions::default(),
                guest: GuestOptions::default(),
            });
        }
        Err(e) => return Err(anyhow::anyhow!("{}", e.render().to_string().trim_end().trim_start_matches("error: "))),
    };
    // Each command with the option groups it takes.
    let (command, kernel, guest) = match cli.command.unwrap_or(Cmd::Help) {
        Cmd::Help => (Command::Help(usage()), None, None),
        Cmd::Setup { kernel, rebuild } => (Command::Setup, Some(KernelArgs { rebuild, ..kernel }), None),
        Cmd::Run { chapters, kernel, guest } => (Command::Run { chapters }, Some(kernel), Some(guest)),
        Cmd::Test { only, kernel, guest } => (Command::Test { only }, Some(kernel), Some(guest)),
        Cmd::Mutants { chapters, kernel, guest } => (Command::Mutants { chapters }, Some(kernel), Some(guest)),
        Cmd::Lint { kernel } => (Command::Lint, Some(kernel), None),
        Cmd::Book { serve, no_install } => (Command::Book { serve }, Some(KernelArgs { no_install, ..KernelArgs::default() }), None),
        Cmd::Bench { runs, cold, kernel, guest } => (Command::Bench { runs: runs as usize, cold }, Some(kernel), Some(guest)),
        Cmd::MakeCommand { chapter, kernel } => (Command::PrintMake { chapter }, Some(kernel), None),
        Cmd::Grade { submissions, mut chapters, jobs, out, shard, hidden, sandbox, kernel, guest } => {
            // `--chapters ""` (an empty CI input) means every chapter.
            chapters.retain(|c| !c.is_empty());
            let grade = GradeFlags { submissions, chapters, jobs: jobs as usize, out, shard, hidden, sandbox };
            (Command::Grade(grade), Some(kernel), Some(guest))
        }
        Cmd::GradeMerge { dirs, out } => (Command::GradeMerge { dirs, out }, None, None),
        Cmd::Gradescope(GradescopeCmd::Bundle { chapters, hidden, hidden_visibility, out }) => {
            (Command::GradescopeBundle { chapters, hidden, visibility: hidden_visibility, out }, None, None)
        }
        Cmd::Gradescope(GradescopeCmd::Results { result, hidden, hidden_visibility, out }) => {
            (Command::GradescopeResults { result, hidden, visibility: hidden_visibility, out }, None, None)
        }
        Cmd::Exercises(ExercisesCmd::Init { force, kernel }) => (Command::ExercisesInit { force }, Some(kernel), None),
        Cmd::Check { chapter, kernel, guest } => (Command::Check { chapter }, Some(kernel), Some(guest)),
        Cmd::Watch { kernel, guest } => (Command::Watch, Some(kernel), Some(guest)),
        Cmd::Hint { chapter } => (Command::Hint { chapter }, None, None),
        Cmd::Reset { chapter } => (Command::Reset { chapter }, None, None),
        Cmd::Solution { chapter, force } => (Command::Solution { chapter, force }, None, None),
    };
    let kernel = kernel.unwrap_or_default();
    let guest = guest.unwrap_or_default();
    let setup =
        SetupOptions { kernel_src: kernel.kernel_src, rebuild: kernel.rebuild, no_install: kernel.no_install, kernel: kernel.kernel };
    Ok(Flags { command, setup, guest: GuestOptions { accel: guest.accel, verbose: guest.verbose, root_cause_first: false } })
}

/// Every command the grammar has with the spellings of each of its
/// options (`["--jobs", "-j"]`), for the README check; `exercises init` is
/// one command.
#[cfg(test)]
fn grammar() -> Vec<(String, Vec<Vec<String>>)> {
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, Vec<Vec<String>>)>) {
        for sub in cmd.get_subcommands() {
            let name = if prefix.is_empty() { sub.get_name().to_string() } else { format!("{prefix} {}", sub.get_name()) };
            if sub.has_subcommands() {
                walk(&name, sub, out);
                continue;
            }
            let options = sub
                .get_arguments()
                .filter(|arg| !arg.is_positional())
                .map(|arg| arg.get_long().map(|l| format!("--{l}")).into_iter().chain(arg.get_short().map(|s| format!("-{s}"))).collect())
                .collect();
            out.push((name, options));
        }
    }
    let mut out = Vec::new();
    walk("", &Cli::command(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn err(s: &str) -> String {
        parse(&args(s)).unwrap_err().to_string()
    }

    #[test]
    fn the_declaration_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_chapters_and_options() {
        let flags = parse(&args("run 01-hello --accel tcg chapters/02-memory -v --kernel debug")).unwrap();
        assert_eq!(flags.command, Command::Run { chapters: args("01-hello chapters/02-memory") });
        assert_eq!(flags.guest.accel.as_deref(), Some("tcg"));
        assert_eq!(flags.setup.kernel, Some(Flavour::Debug));
        assert!(flags.guest.verbose);
    }

    #[test]
    fn options_are_taken_only_by_the_commands_they_mean_something_to() {
        assert!(err("run 01-hello --serve").contains("--serve"));
        assert!(err("setup -j 4").contains("-j"));
        assert!(err("hint 01-hello --kernel debug").contains("--kernel"));
        assert!(err("grade-merge a --out m --accel kvm").contains("--accel"));
    }

    #[test]
    fn bad_command_lines_are_named() {
        assert!(err("run").contains("CHAPTER"));
        assert!(err("frobnicate").contains("frobnicate"));
        assert!(err("setup --bogus").contains("--bogus"));
        assert!(err("run x --accel fast").contains("tcg"));
        assert!(err("run x --kernel slow").contains("slow"));
        assert!(err("setup extra").contains("extra"));
        assert!(matches!(parse(&[]).unwrap().command, Command::Help(text) if text.contains("grade-merge")));
        assert!(matches!(parse(&args("run --help")).unwrap().command, Command::Help(text) if text.contains("--accel")));
        assert!(err("check").contains("CHAPTER"));
        assert!(err("hint a b").contains("'b'"));
        assert!(err("bench --runs 0").contains("0"));
        assert_eq!(
            parse(&args("solution 01-hello --force")).unwrap().command,
            Command::Solution { chapter: "01-hello".into(), force: true }
        );
        assert_eq!(parse(&args("exercises init")).unwrap().command, Command::ExercisesInit { force: false });
        assert_eq!(parse(&args("test --only unit,book")).unwrap().command, Command::Test { only: args("unit book") });
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
        assert!(err("grade subs --shard 4/3").contains("1 <= K <= N"));
        assert!(err("grade subs --shard x").contains("K/N"));
        assert!(err("grade subs -j 0").contains("0"));
        assert!(err("grade").contains("SUBMISSIONS"));
        assert!(err("grade-merge a b").contains("--out"));
        assert_eq!(
            parse(&args("grade-merge a b --out m")).unwrap().command,
            Command::GradeMerge { dirs: vec!["a".into(), "b".into()], out: "m".into() }
        );
    }

    /// The README's command tables name every command and every option of
    /// the grammar, and nothing else: a row is `cargo xtask <command> ...`
    /// (or `... --option` continuing the row above), options in backquotes.
    #[test]
    fn the_readme_tables_match_the_declaration() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let grammar = grammar();
        let option = regex::Regex::new(r"(?:^|[\s\[`(])(--[a-z][a-z-]*|-[a-zA-Z])\b").unwrap();
        let mut documented: Vec<(String, Vec<String>)> = Vec::new();
        for row in readme.lines().filter(|l| l.starts_with("| `cargo xtask ") || l.starts_with("| `... ")) {
            let cell = row.split('|').nth(1).unwrap_or_default();
            let options: Vec<String> = option.captures_iter(cell).map(|c| c[1].to_string()).collect();
            if let Some(rest) = cell.trim().strip_prefix("`cargo xtask ") {
                let words: Vec<&str> = rest.split([' ', '`']).take_while(|w| !w.is_empty() && !w.starts_with(['<', '[', '-'])).collect();
                documented.push((words.join(" "), options));
            } else if let Some(last) = documented.last_mut() {
                last.1.extend(options);
            }
        }
        // The kernel and guest options are in a table of their own.
        let common = ["--kernel-src", "--kernel", "--no-install", "--accel", "--verbose", "--help"];
        let mut problems = Vec::new();
        for (command, options) in &grammar {
            // A command may have several rows (one per way of using it).
            let shown: Vec<String> = documented.iter().filter(|(c, _)| c == command).flat_map(|(_, o)| o.clone()).collect();
            if !documented.iter().any(|(c, _)| c == command) {
                problems.push(format!("`cargo xtask {command}` is not in the README's tables"));
                continue;
            }
            for spellings in options.iter().filter(|s| !common.contains(&s[0].as_str())) {
                if !spellings.iter().any(|s| shown.contains(s)) {
                    problems.push(format!("`cargo xtask {command}` takes {}, which the README does not show", spellings[0]));
                }
            }
            for o in shown.iter().filter(|o| !options.iter().any(|s| s.contains(o))) {
                problems.push(format!("the README shows `cargo xtask {command} {o}`, which it does not take"));
            }
        }
        for (command, _) in documented.iter().filter(|(c, _)| !grammar.iter().any(|(g, _)| g == c)) {
            problems.push(format!("the README shows `cargo xtask {command}`, which is not a command"));
        }
        for o in ["--kernel-src", "--kernel", "--no-install", "--accel", "--verbose"] {
            if !readme.contains(&format!("| `{o}")) {
                problems.push(format!("the README's options table does not show {o}"));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
