// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask test`: the harness's unit tests, the book, every chapter
//! on the debug kernel, the negative tests, grading, every chapter on the
//! fast kernel and the lints, with a closing summary.

use crate::chapter::workbook_chapters;
use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::negative::{negative_jobs, negative_tests, planted_jobs, Kernels};
use crate::paths::Project;
use crate::runner::RunResult;
use crate::session::{choose_accel, run_chapters};
use crate::setup::{self};
use crate::tasks::lint::lint_all;
use crate::Result;
use anyhow::anyhow;

/// Counts of what `test` checked.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record_all(&mut self, outcomes: Vec<(String, bool)>) {
        for (name, passed) in outcomes {
            self.record(name, passed);
        }
    }

    fn record(&mut self, name: String, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.failed.push(name);
        }
    }
}

/// How long each phase took, for the closing summary.
#[derive(Debug)]
struct PhaseTimes {
    since: std::time::Instant,
    took: Vec<(&'static str, std::time::Duration)>,
}

impl PhaseTimes {
    fn new() -> PhaseTimes {
        PhaseTimes { since: std::time::Instant::now(), took: Vec::new() }
    }

    /// `phase` ends now; the next starts.
    fn end(&mut self, phase: &'static str) {
        self.took.push((phase, self.since.elapsed()));
        self.since = std::time::Instant::now();
    }

    /// `unit 20.1s, book 51.0s, ...`
    fn line(&self) -> String {
        self.took.iter().map(|(phase, took)| format!("{phase} {}", crate::progress::format_duration(*took))).collect::<Vec<_>>().join(", ")
    }
}

/// `cargo xtask test`: the harness's unit tests, every chapter checked in
/// the guest, and every chapter's mutations shown to fail for the reason
/// they name. Ends with `N passed, N failed`.
pub(crate) fn test(flags: &Flags, only: &[String]) -> Result<bool> {
    let started = std::time::Instant::now();
    let project = Project::discover()?;
    let mut tally = Tally::default();
    if let Some(bad) = only.iter().find(|p| !TEST_PHASES.contains(&p.as_str())) {
        return Err(anyhow!("--only takes phases among {}, not `{bad}`", TEST_PHASES.join(", ")));
    }
    let wants = |phase: &str| only.is_empty() || only.iter().any(|p| p == phase);
    let mut times = PhaseTimes::new();

    if wants("unit") {
        println!("== unit tests: cargo test -p xtask -p guest-programs");
        let (unit_passed, unit_failed) = unit_tests(&project)?;
        tally.passed += unit_passed;
        tally.failed.extend((0..unit_failed).map(|i| format!("unit test failure {}", i + 1)));
        times.end("unit");
    }

    if wants("book") {
        test_book(&project, flags.install(), &mut tally)?;
        times.end("book");
    }

    if !["chapters", "negative", "grading", "fast", "lint"].iter().any(|phase| wants(phase)) {
        // The unit tests and the book need no kernel: none is built for them.
        return Ok(summary(&tally, &times, started));
    }

    // Everything is proven on the debug kernel (lockdep, KASAN, debug
    // objects): a reference solution must pass with the detectors silent.
    let env = setup::ensure(&flags.setup, Flavour::Debug)?;
    // The learner's kernel too, unless a flavour was asked for: most
    // negative tests run on it, and every chapter again.
    let fast = if flags.setup.kernel.is_none() && (wants("negative") || wants("fast")) {
        Some(setup::ensure(&flags.setup, Flavour::Fast)?)
    } else {
        None
    };
    let flavour = env.kernel.flavour.name();
    let chapters = workbook_chapters(&project)?;
    let accel = choose_accel(&env, flags.guest.accel.as_deref())?;
    times.end("setup");
    if wants("chapters") {
        println!(
            "== every chapter, {flavour} kernel, {}: {}",
            guests_text(env.kernel.flavour),
            chapters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        let result = run_chapters(&env, &chapters, &flags.guest, &format!("test-chapters-{flavour}"))?;
        record_chapters(&mut tally, &result, flavour);
        times.end("chapters");
    }

    if wants("negative") {
        // Each on the fast kernel unless only a detector sees its bug: the
        // debug kernel's checks are proven by the reference run above and by
        // the mutants and planted bugs that need them.
        let kernels = Kernels::new(fast.as_ref(), &env);
        println!(
            "== negative tests, {} kernel{}: broken modules and exercise skeletons must fail, naming the cause",
            kernels.default.kernel.flavour.name(),
            if fast.is_some() { " (debug for the bugs only a detector sees)" } else { "" }
        );
        let mut jobs = negative_jobs(&project, &chapters)?;
        if kernels.detectors.is_some() {
            println!("   and planted bugs in modules the workbook did not write (tests/detectors/) must be named by their detector");
            jobs.extend(planted_jobs(&project)?);
        }
        tally.record_all(negative_tests(&kernels, jobs, accel)?);
        times.end("negative");
    }

    if wants("grading") {
        let part = std::time::Instant::now();
        println!("== grading: a made-up class with exact expected scores (tests/grading)");
        tally.record_all(crate::fixtures::check_class(&env, accel, flags.install())?);
        let part = took(part);
        println!("== Gradescope: the autograder bundle run against a made-up /autograder");
        tally.record_all(crate::fixtures::check_gradescope(&env)?);
        let part = took(part);
        println!("== the CI workflow: schema, and its commands run for two shards");
        tally.record_all(crate::fixtures::check_ci_workflow(&env, flags.install())?);
        let part = took(part);
        println!("== the grader's container (Containerfile)");
        tally.record_all(crate::fixtures::check_container(&env)?);
        let part = took(part);
        println!("== grading integrity: two classes at once, one output directory, a killed run");
        tally.record_all(crate::fixtures::check_isolation(&env, accel)?);
        took(part);
        times.end("grading");
    }

    if let Some(fast) = fast.as_ref().filter(|_| wants("fast")) {
        // The learner's loop runs on the fast kernel: the reference
        // solutions must pass there too.
        println!("== every chapter, fast kernel (the learner's default), {}", guests_text(Flavour::Fast));
        let result = run_chapters(fast, &chapters, &flags.guest, "test-chapters-fast")?;
        record_chapters(&mut tally, &result, "fast");
        times.end("fast");
    }

    if wants("lint") {
        println!("== lint: the kernel's rustfmt and CLIPPY=1 on the chapters; cargo fmt and clippy on the workspace");
        for (name, passed) in lint_all(flags, &env, &chapters)? {
            tally.record(name, passed);
        }
        times.end("lint");
    }

    Ok(summary(&tally, &times, started))
}

/// Prints how long a part of a phase took since `since`; now.
fn took(since: std::time::Instant) -> std::time::Instant {
    println!("  (in {})", crate::progress::format_duration(since.elapsed()));
    std::time::Instant::now()
}

/// How many guests share the chapters, in words.
fn guests_text(flavour: Flavour) -> String {
    match flavour.guests_at_once() {
        1 => "one guest".to_string(),
        n => format!("{n} guests at once"),
    }
}

/// Prints the closing summary; whether everything passed.
fn summary(tally: &Tally, times: &PhaseTimes, started: std::time::Instant) -> bool {
    if !tally.failed.is_empty() {
        println!("failed:");
        for name in &tally.failed {
            println!("  {name}");
        }
    }
    println!("(in {}: {})", crate::progress::format_duration(started.elapsed()), times.line());
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    tally.failed.is_empty()
}

/// The phases of `test`, for `--only`.
pub(crate) const TEST_PHASES: &[&str] = &["unit", "book", "chapters", "negative", "grading", "fast", "lint"];

/// The book's checks, build and browser test.
fn test_book(project: &Project, install: crate::toolchain::Install, tally: &mut Tally) -> Result<()> {
    println!("== the book: includes, anchors, chapter pages, links; mdbook build");
    let problems = crate::book::check(project)?;
    for problem in &problems {
        println!("  FAIL  {problem}");
    }
    tally.record("book: sources agree with the code".into(), problems.is_empty());
    if problems.is_empty() {
        let built = crate::book::build(project, false, install);
        match &built {
            Ok(dir) => println!("  ok    built {}", dir.join("index.html").display()),
            Err(e) => println!("  FAIL  {e:#}"),
        }
        tally.record("book: mdbook build".into(), built.is_ok());
        if let Ok(dir) = built {
            let pages = crate::book::chapter_pages(project)?;
            let screenshots = project.root.join("target/book-screenshots");
            if let Some(problems) = crate::browser::check(&dir, &pages, &screenshots, install)? {
                tally.record("book: chapter pages render in Chromium".into(), problems.is_empty());
            }
        }
    }
    Ok(())
}

/// Tallies every step of a run of all chapters.
fn record_chapters(tally: &mut Tally, result: &RunResult, flavour: &str) {
    for chapter in &result.chapters {
        if chapter.build.is_err() {
            tally.record(format!("{} ({flavour} kernel): build", chapter.chapter.name), false);
        }
        for step in &chapter.steps {
            tally.record(format!("{} ({flavour} kernel): {}", chapter.chapter.name, step.name), step.passed());
        }
    }
}

/// Runs the harness's unit tests, showing their output; returns the counts.
fn unit_tests(project: &Project) -> Result<(usize, usize)> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(&project.root);
    let out = xshell::cmd!(sh, "cargo test --quiet -p xtask -p guest-programs --color never").quiet().ignore_status().output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let (mut passed, mut failed) = (0, 0);
    for line in text.lines().filter(|l| l.starts_with("test result:")) {
        let count = |word: &str| {
            line.split(';').find_map(|part| {
                part.trim()
                    .trim_start_matches("test result: ok.")
                    .trim_start_matches("test result: FAILED.")
                    .trim()
                    .strip_suffix(word)?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
        };
        passed += count("passed").unwrap_or(0);
        failed += count("failed").unwrap_or(0);
    }
    for line in text.lines().filter(|l| l.contains("FAILED") || l.contains("panicked") || l.starts_with("error")) {
        println!("  {line}");
    }
    if !out.status.success() && failed == 0 {
        failed = 1;
        println!("{text}");
    }
    println!("  {passed} unit tests passed, {failed} failed");
    Ok((passed, failed))
}
