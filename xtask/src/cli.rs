// SPDX-License-Identifier: GPL-2.0

//! The commands behind `cargo xtask ...`, each a function the thin `main.rs`
//! dispatches to and tests can call.

use std::path::Path;
use std::time::Duration;

use crate::chapter::{self, Chapter};
use crate::flags::Flags;
use crate::guest::{self, Accel, BootConfig, Ending};
use crate::kernel::Flavour;
use crate::mutation;
use crate::paths::Project;
use crate::report::{self, Style};
use crate::runner::{self, RunOptions, RunResult};
use crate::setup::{self, Environment};
use crate::Result;

/// Guest memory for chapter runs.
pub(crate) const GUEST_MEMORY_MB: u32 = 256;

/// `cargo xtask setup`.
pub(crate) fn setup(flags: &Flags) -> Result<Environment> {
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    eprintln!(
        "setup: ready: Linux {} with {}; kernel build tree {}",
        env.kernel.release,
        env.toolchain.rustc_version,
        env.kernel.dir.display()
    );
    Ok(env)
}

/// `cargo xtask run CHAPTER...`: prints the report; true when all passed.
pub(crate) fn run(flags: &Flags, names: &[String]) -> Result<bool> {
    let project = Project::discover()?;
    let chapters = names.iter().map(|n| Chapter::find(&project, n)).collect::<Result<Vec<_>>>()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let result = run_chapters(&env, &chapters, flags, "last")?;
    Ok(result.passed())
}

/// Runs chapters in one guest and prints their reports under `run_name`.
pub(crate) fn run_chapters(env: &Environment, chapters: &[Chapter], flags: &Flags, run_name: &str) -> Result<RunResult> {
    let options = RunOptions {
        accel: choose_accel(env, flags.accel.as_deref())?,
        memory_mb: GUEST_MEMORY_MB,
        work_dir: env.project.cache_dir("runs")?.join(run_name),
        isolation: crate::module_build::Isolation::Trusted,
    };
    let result = runner::run(env, chapters, &options)?;
    let style = Style::detect();
    for chapter in &result.chapters {
        print!("{}", report::chapter(style, chapter));
    }
    if flags.verbose {
        if let Some(boot) = &result.boot {
            println!("-- guest console --\n{}-- end of console --", boot.console);
        }
    }
    print!("{}", report::verdict(style, &result));
    Ok(result)
}

/// The chapters of the workbook.
pub(crate) fn workbook_chapters(project: &Project) -> Result<Vec<Chapter>> {
    chapter::list(project)?.iter().map(|name| Chapter::find(project, name)).collect()
}

/// `tcg` unless asked otherwise (flag, then `WORKBOOK_ACCEL`). `auto` uses KVM
/// only when a short probe boot with it succeeds; the answer is cached.
pub(crate) fn choose_accel(env: &Environment, flag: Option<&str>) -> Result<Accel> {
    let wanted = flag.map(str::to_string).or_else(|| std::env::var("WORKBOOK_ACCEL").ok()).unwrap_or_else(|| "tcg".into());
    match wanted.as_str() {
        "tcg" => Ok(Accel::Tcg),
        "kvm" => Ok(Accel::Kvm),
        "auto" => probe_kvm(env),
        other => Err(format!("WORKBOOK_ACCEL must be tcg, kvm or auto, not `{other}`").into()),
    }
}

fn probe_kvm(env: &Environment) -> Result<Accel> {
    let cache = env.project.cache.join(format!("kvm-probe-{}", env.kernel.key));
    if let Ok(answer) = std::fs::read_to_string(&cache) {
        return Ok(if answer.trim() == "kvm" { Accel::Kvm } else { Accel::Tcg });
    }
    let usable = Path::new("/dev/kvm").exists() && {
        eprintln!("probing KVM with a short boot (once)...");
        let config = BootConfig {
            qemu: env.toolchain.qemu.clone(),
            bzimage: env.kernel.bzimage.clone(),
            work_dir: env.project.cache_dir("runs")?.join("kvm-probe"),
            accel: Accel::Kvm,
            memory_mb: GUEST_MEMORY_MB,
            cmdline_extra: env.kernel.flavour.cmdline(),
        };
        let initramfs = guest::initramfs(&env.project, &env.toolchain, "", &[])?;
        let probe = std::thread::spawn(move || guest::boot(&config, &initramfs, &[]));
        // The probe's own boot deadline is long; KVM either boots in seconds or not at all.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !probe.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        probe.is_finished() && matches!(probe.join(), Ok(Ok(boot)) if boot.ending == Ending::Completed)
    };
    let answer = if usable { "kvm" } else { "tcg" };
    eprintln!("KVM probe: using {answer}");
    std::fs::write(&cache, answer)?;
    Ok(if usable { Accel::Kvm } else { Accel::Tcg })
}

/// Whether packages and crates may be installed (`--no-install` says never).
fn install(flags: &Flags) -> crate::toolchain::Install {
    if flags.setup.no_install {
        crate::toolchain::Install::Never
    } else {
        crate::toolchain::Install::IfMissing
    }
}

/// `cargo xtask make-command CHAPTER`: the command line the harness runs to
/// build a chapter, for a learner who wants to build without the workbook.
pub(crate) fn make_command(flags: &Flags, name: &str) -> Result<bool> {
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let chapter = Chapter::find(&env.project, name)?;
    // The learner's own copy when there is one: that is what they build.
    let learner = crate::exercise::learner_root(&env.project).join(&chapter.name);
    let dir = if learner.is_dir() { learner } else { chapter.dir.clone() };
    let vars = env.toolchain.make_vars().join(" ");
    println!("# builds {} against the {} kernel's tree (the .ko files land there):", dir.display(), env.kernel.flavour.name());
    println!("PATH={}:$PATH \\", env.toolchain.llvm_bin.display());
    println!("  make -C {} M={} {vars} modules", env.kernel.dir.display(), dir.display());
    Ok(true)
}

/// `cargo xtask book [--serve]`.
pub(crate) fn book(flags: &Flags, serve: bool) -> Result<bool> {
    let project = Project::discover()?;
    let out = crate::book::build(&project, serve, install(flags))?;
    eprintln!("book: built {}", out.join("index.html").display());
    Ok(true)
}

/// `cargo xtask bench`: prints the table, writes `target/bench.json`.
pub(crate) fn bench(flags: &Flags, runs: usize) -> Result<bool> {
    let project = Project::discover()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let accel = choose_accel(&env, flags.accel.as_deref())?;
    let figures = crate::bench::run(&flags.setup, accel, runs)?;
    print!("{}", crate::bench::table(&figures));
    let json = project.root.join("target/bench.json");
    crate::bench::write_json(&json, &figures)?;
    println!("({runs} runs each; JSON in {})", json.display());
    Ok(true)
}

/// `cargo xtask mutants CHAPTER...`: those chapters' negative tests only.
pub(crate) fn mutants(flags: &Flags, names: &[String]) -> Result<bool> {
    let project = Project::discover()?;
    let chapters = names.iter().map(|n| Chapter::find(&project, n)).collect::<Result<Vec<_>>>()?;
    let env = setup::ensure(&flags.setup, Flavour::Debug)?;
    let accel = choose_accel(&env, flags.accel.as_deref())?;
    let results = negative_tests(&env, negative_jobs(&env, &chapters)?, accel)?;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(failed == 0)
}

/// Counts of what `test` checked.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: String, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.failed.push(name);
        }
    }
}

/// `cargo xtask test`: the harness's unit tests, every chapter checked in
/// one guest boot, and every chapter's mutations shown to fail for the
/// reason they name. Ends with `N passed, N failed`.
pub(crate) fn test(flags: &Flags, only: &[String]) -> Result<bool> {
    let started = std::time::Instant::now();
    let project = Project::discover()?;
    let mut tally = Tally::default();
    if let Some(bad) = only.iter().find(|p| !TEST_PHASES.contains(&p.as_str())) {
        return Err(format!("--only takes phases among {}, not `{bad}`", TEST_PHASES.join(", ")).into());
    }
    let wants = |phase: &str| only.is_empty() || only.iter().any(|p| p == phase);

    if wants("unit") {
        println!("== unit tests: cargo test -p xtask");
        let (unit_passed, unit_failed) = unit_tests(&project)?;
        tally.passed += unit_passed;
        tally.failed.extend((0..unit_failed).map(|i| format!("unit test failure {}", i + 1)));
    }

    if wants("book") {
        test_book(&project, install(flags), &mut tally)?;
    }

    // Everything is proven on the debug kernel (lockdep, KASAN, debug
    // objects): a reference solution must pass with the detectors silent.
    let env = setup::ensure(&flags.setup, Flavour::Debug)?;
    let flavour = env.kernel.flavour.name();
    let chapters = workbook_chapters(&project)?;
    let accel = choose_accel(&env, flags.accel.as_deref())?;
    if wants("chapters") {
        println!(
            "== every chapter in one guest boot, {flavour} kernel: {}",
            chapters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        let result = run_chapters(&env, &chapters, flags, &format!("test-chapters-{flavour}"))?;
        record_chapters(&mut tally, &result, flavour);
    }

    if wants("negative") {
        println!("== negative tests, {flavour} kernel: broken modules and exercise skeletons must fail, naming the cause");
        let mut jobs = negative_jobs(&env, &chapters)?;
        if env.kernel.flavour == Flavour::Debug {
            println!("   and planted bugs in modules the workbook did not write (tests/detectors/) must be named by their detector");
            jobs.extend(planted_jobs(&env)?);
        }
        for (name, verdict) in negative_tests(&env, jobs, accel)? {
            tally.record(name, verdict);
        }
    }

    if wants("grading") {
        println!("== grading: a made-up class with exact expected scores (tests/grading)");
        for (name, verdict) in crate::fixtures::check_class(&env, accel)? {
            tally.record(name, verdict);
        }
        println!("== grading integrity: two classes at once, one output directory, a killed run");
        for (name, verdict) in crate::fixtures::check_isolation(&env, accel)? {
            tally.record(name, verdict);
        }
    }

    if wants("fast") && flags.setup.kernel.is_none() {
        // The learner's loop runs on the fast kernel: the reference
        // solutions must pass there too.
        let fast = setup::ensure(&flags.setup, Flavour::Fast)?;
        println!("== every chapter in one guest boot, fast kernel (the learner's default)");
        let result = run_chapters(&fast, &chapters, flags, "test-chapters-fast")?;
        record_chapters(&mut tally, &result, "fast");
    }

    if wants("lint") {
        println!("== lint: the kernel's rustfmt and CLIPPY=1 on the chapters; cargo fmt and clippy on the workspace");
        for (name, passed) in lint_all(flags, &env, &chapters)? {
            tally.record(name, passed);
        }
    }

    if !tally.failed.is_empty() {
        println!("failed:");
        for name in &tally.failed {
            println!("  {name}");
        }
    }
    println!("(in {})", crate::progress::format_duration(started.elapsed()));
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    Ok(tally.failed.is_empty())
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
            Err(e) => println!("  FAIL  {e}"),
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

/// Runs every lint, printing each outcome.
fn lint_all(flags: &Flags, env: &Environment, chapters: &[Chapter]) -> Result<Vec<(String, bool)>> {
    let install = install(flags);
    let mut results = Vec::new();
    for (name, outcome) in crate::lint::all(env, chapters, install)? {
        match &outcome {
            Ok(()) => println!("  ok    {name}"),
            Err(why) => println!("  FAIL  {name}:\n{}", why.lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")),
        }
        results.push((name, outcome.is_ok()));
    }
    Ok(results)
}

/// `cargo xtask lint`.
pub(crate) fn lint(flags: &Flags) -> Result<bool> {
    let project = Project::discover()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let results = lint_all(flags, &env, &workbook_chapters(&project)?)?;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(failed == 0)
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

/// How a negative test's failure is judged.
enum Judge {
    /// Any failure reason contains one of these texts (none: any failure).
    AnyOf(Vec<String>),
    /// A planted bug: the main failure names every expected text.
    Planted(crate::planted::Planted),
}

/// A chapter that must fail its checks.
struct NegativeJob {
    /// How the report names it.
    name: String,
    /// The broken chapter.
    chapter: Chapter,
    /// What its failure must say.
    judge: Judge,
    /// Its own directory for logs.
    work: std::path::PathBuf,
}

/// Every chapter's mutations and exercise skeleton, as jobs.
fn negative_jobs(env: &Environment, chapters: &[Chapter]) -> Result<Vec<NegativeJob>> {
    let mutants = env.project.cache_dir("mutants")?;
    let mut jobs = Vec::new();
    for chapter in chapters {
        for (index, mutation) in mutation::load(chapter)?.into_iter().enumerate() {
            let work = mutants.join(format!("{}-{index}", chapter.name));
            let mutated = mutation::apply(chapter, &mutation, &work)?;
            let name = format!("{}: mutant `{}`", chapter.name, mutation.name);
            let expect = mutation.expect.texts().into_iter().map(String::from).collect();
            jobs.push(NegativeJob { name, chapter: mutated, judge: Judge::AnyOf(expect), work });
        }
        if !crate::exercise::regions(chapter)?.is_empty() {
            // The learner's starting point must not pass: the checks must see
            // that the parts to write are missing.
            let work = mutants.join(format!("{}-skeleton", chapter.name));
            let dir = work.join(&chapter.name);
            let _ = std::fs::remove_dir_all(&dir);
            crate::exercise::write_skeleton(chapter, &dir)?;
            let name = format!("{}: exercise skeleton", chapter.name);
            jobs.push(NegativeJob { name, chapter: Chapter::load(&dir)?, judge: Judge::AnyOf(Vec::new()), work });
        }
    }
    Ok(jobs)
}

/// The planted bugs of `tests/detectors/`, as jobs.
fn planted_jobs(env: &Environment) -> Result<Vec<NegativeJob>> {
    let work = env.project.cache_dir("planted")?;
    Ok(crate::planted::load(&env.project)?
        .into_iter()
        .map(|(planted, chapter)| NegativeJob {
            name: format!("detectors: planted `{}`", planted.dir),
            work: work.join(&planted.dir),
            chapter,
            judge: Judge::Planted(planted),
        })
        .collect())
}

/// Runs negative tests two guests at a time (one per core on the reference
/// machine), printing each verdict as it comes.
fn negative_tests(env: &Environment, jobs: Vec<NegativeJob>, accel: Accel) -> Result<Vec<(String, bool)>> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 2);
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let Some(job) = queue.lock().unwrap().next() else {
                            return Ok(());
                        };
                        let options = RunOptions {
                            accel,
                            memory_mb: GUEST_MEMORY_MB,
                            work_dir: job.work.join("run"),
                            isolation: crate::module_build::Isolation::Trusted,
                        };
                        let started = std::time::Instant::now();
                        let run = runner::run(env, std::slice::from_ref(&job.chapter), &options)?;
                        let name = job.name;
                        let took = crate::progress::format_duration(started.elapsed());
                        let verdict = match &job.judge {
                            Judge::AnyOf(expect) => {
                                let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
                                mutation::expectation_met(&name, &expect, &run.chapters[0])
                            }
                            Judge::Planted(planted) => crate::planted::named_exactly(planted, &run.chapters[0]),
                        };
                        // One print per job, so lines of two workers never interleave.
                        let text = match &verdict {
                            Ok(found) => format!("  ok    {name} fails as it should: `{}` ({took})\n", found.lines().next().unwrap_or("")),
                            Err(why) => format!("  FAIL  {name}: {why}\n{}", report::chapter(Style::plain(), &run.chapters[0])),
                        };
                        print!("{text}");
                        results.lock().unwrap().push((name, verdict.is_ok()));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| "a negative-test worker panicked")??;
        }
        Ok(())
    })?;
    Ok(results.into_inner().unwrap())
}

/// Runs the harness's unit tests, showing their output; returns the counts.
fn unit_tests(project: &Project) -> Result<(usize, usize)> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(&project.root);
    let out = xshell::cmd!(sh, "cargo test --quiet -p xtask --color never").quiet().ignore_status().output()?;
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
