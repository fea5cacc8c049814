// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask bench`: the figures that matter to a learner's loop and an
//! instructor's class, as a table and as JSON (`target/bench.json`). Each
//! figure is the median of several runs.

use std::time::{Duration, Instant};

use crate::chapter::Chapter;
use crate::fixtures::Fixture;
use crate::grading::GradeOptions;
use crate::guest::Accel;
use crate::kernel::Flavour;
use crate::paths::write_atomic;
use crate::progress::format_duration;
use crate::runner::{self, RunOptions};
use crate::setup::{self, Environment, SetupOptions};
use crate::Result;
use anyhow::{anyhow, Context};

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Wall time in seconds.
    Seconds,
    /// Submissions graded per minute.
    PerMinute,
    /// Memory in MiB.
    Mebibytes,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::Seconds => format_duration(Duration::from_secs_f64(value)),
            Unit::PerMinute => format!("{value:.1}/min"),
            Unit::Mebibytes => format!("{value:.0} MiB"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::PerMinute => "submissions per minute",
            Unit::Mebibytes => "MiB",
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// What was measured.
    pub(crate) name: String,
    /// Every run's value.
    pub(crate) runs: Vec<f64>,
    /// In what.
    pub(crate) unit: Unit,
}

impl Figure {
    /// The median run.
    pub(crate) fn median(&self) -> f64 {
        let mut sorted = self.runs.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    fn report(self) -> Figure {
        eprintln!("bench: {}: {}", self.name, self.unit.format(self.median()));
        self
    }
}

fn measure(name: &str, times: usize, mut what: impl FnMut() -> Result<()>) -> Result<Figure> {
    let mut runs = Vec::new();
    for _ in 0..times {
        let started = Instant::now();
        what()?;
        runs.push(started.elapsed().as_secs_f64());
    }
    Ok(Figure { name: name.to_string(), runs, unit: Unit::Seconds }.report())
}

/// Grades a class of `size` correct submissions, each the reference
/// solutions of `chapters`, with `jobs` guests, `times` times; submissions
/// per minute.
fn grading_throughput(env: &Environment, accel: Accel, chapters: &[Chapter], size: usize, jobs: usize, times: usize) -> Result<Figure> {
    let work = env.project.cache_dir("bench")?.join(format!("grading-{}", chapters.len()));
    // One fixture per student and chapter: a student's folder gets each
    // chapter's folder (one chapter: every other student an archive).
    let class: Vec<Fixture> = (1..=size)
        .flat_map(|n| chapters.iter().map(move |chapter| (n, chapter)))
        .map(|(n, chapter)| Fixture {
            name: format!("student-{n}"),
            about: String::new(),
            chapter: chapter.name.clone(),
            score: crate::fixtures::Expected::Points(0),
            archive: chapters.len() == 1 && n % 2 == 0,
            top: None,
            omit: Vec::new(),
            change: Vec::new(),
            add: Vec::new(),
            link: Vec::new(),
            rejected: Vec::new(),
            reason: None,
        })
        .collect();
    crate::fixtures::materialize(&class, chapters, &work.join("submissions"))?;
    let mut runs = Vec::new();
    for _ in 0..times {
        let out = work.join("grades");
        let _ = std::fs::remove_dir_all(&out);
        let options = GradeOptions {
            submissions: work.join("submissions"),
            chapters: chapters.to_vec(),
            out,
            jobs,
            shard: None,
            accel,
            hidden: None,
            isolation: crate::module_build::Isolation::Sandboxed,
        };
        let started = Instant::now();
        let grades = crate::grading::grade(env, &options)?;
        if grades.iter().any(|g| g.score < g.max) {
            return Err(anyhow!("a correct submission lost points in the grading benchmark"));
        }
        runs.push(size as f64 * 60.0 / started.elapsed().as_secs_f64());
    }
    let what = match chapters {
        [one] => one.name.clone(),
        all => format!("all {} chapters", all.len()),
    };
    Ok(Figure {
        name: format!("grading throughput, -j {jobs} ({size} submissions of {what}, {} kernel)", env.kernel.flavour.name()),
        runs,
        unit: Unit::PerMinute,
    }
    .report())
}

/// On one kernel: 01-hello's verdict with nothing changed, every chapter in
/// one boot, and that guest's peak memory; `suffix` names the kernel.
fn verdict_figures(env: &Environment, chapters: &[Chapter], options: &RunOptions, suffix: &str, times: usize) -> Result<Vec<Figure>> {
    let first = chapters.first().context("the workbook has no chapters")?;
    // "Nothing changed" means the modules are built: a source edited since
    // the last build (or a cache from an older harness) is built first.
    for chapter in chapters {
        if let Err(e) = crate::module_build::build_isolated(env, chapter, options.isolation)? {
            return Err(anyhow!("{} does not build: {e}", chapter.name));
        }
    }
    let mut figures = Vec::new();
    figures.push(measure(&format!("01-hello verdict, nothing changed{suffix}"), times, || {
        let result = runner::run(env, std::slice::from_ref(first), options)?;
        result.passed().then_some(()).ok_or_else(|| anyhow!("01-hello failed{suffix}"))
    })?);
    let mut peaks = Vec::new();
    let mut slowest = Vec::new();
    figures.push(measure(&format!("all {} chapters, one guest boot{suffix}", chapters.len()), times, || {
        let result = runner::run(env, chapters, options)?;
        peaks.extend(result.boots.iter().map(|b| b.peak_rss_kb as f64 / 1024.0).reduce(f64::max));
        slowest = slowest_steps(&result, 8);
        Ok(())
    })?);
    figures.push(
        Figure { name: format!("peak memory of a guest (QEMU's RSS, all chapters){suffix}"), runs: peaks, unit: Unit::Mebibytes }.report(),
    );
    let guests = env.kernel.flavour.guests_at_once();
    if guests > 1 {
        // What `run` and `test` do with several chapters on this machine.
        figures.push(measure(&format!("all {} chapters, {guests} guests at once{suffix}", chapters.len()), times, || {
            let result = runner::run_in_guests(env, chapters, options, guests)?;
            result.passed().then_some(()).ok_or_else(|| anyhow!("a chapter failed{suffix}"))
        })?);
    }
    println!("   where that boot's time goes, the slowest steps{suffix}:");
    for line in slowest {
        println!("     {line}");
    }
    Ok(figures)
}

/// The `n` steps of a run that took longest, as `seconds  chapter: step`.
fn slowest_steps(result: &runner::RunResult, n: usize) -> Vec<String> {
    let mut steps: Vec<(std::time::Duration, String)> = result
        .chapters
        .iter()
        .flat_map(|c| c.steps.iter().filter_map(move |s| Some((s.took?, format!("{}: {}", c.chapter.name, s.name)))))
        .collect();
    steps.sort_by_key(|step| std::cmp::Reverse(step.0));
    steps.into_iter().take(n).map(|(took, name)| format!("{:>6.2}s  {name}", took.as_secs_f64())).collect()
}

/// Runs the benchmark; `times` runs per figure.
pub(crate) fn run(setup_options: &SetupOptions, accel: Accel, times: usize) -> Result<Vec<Figure>> {
    let env = setup::ensure(setup_options, Flavour::Fast)?;
    let mut figures = Vec::new();
    figures.push(measure("setup, warm cache", times, || setup::ensure(setup_options, Flavour::Fast).map(|_| ()))?);

    let chapters = crate::chapter::workbook_chapters(&env.project)?;
    let work = env.project.cache_dir("bench")?;
    let options = RunOptions {
        accel,
        memory_mb: env.kernel.flavour.memory_mb(),
        work_dir: work.join("run"),
        isolation: crate::module_build::Isolation::Trusted,
        stop: crate::runner::Stop::Never,
    };

    // A learner's edit: a copy of chapter 01 whose source changes each time.
    let first = chapters.first().context("the workbook has no chapters")?;
    let copy = crate::mutation::apply(
        first,
        &crate::mutation::Mutation {
            name: "bench".into(),
            file: "hello.rs".into(),
            find: "//! Hello, kernel: the smallest useful Rust module.".into(),
            replace: "//! Hello, kernel: the smallest useful Rust module. (edited)".into(),
            expect: crate::mutation::Expect::One(String::new()),
            also: Vec::new(),
            kernel: crate::kernel::Flavour::Fast,
        },
        &work,
    )?;
    let source = copy.dir.join("hello.rs");
    // The learner's loop after the first check: that check built the module
    // with make, and an edit is rebuilt from the commands Kbuild saved.
    if let Err(e) = crate::module_build::build_isolated(&env, &Chapter::load(&copy.dir)?, options.isolation)? {
        return Err(anyhow!("the benchmark's copy of 01-hello does not build: {e}"));
    }
    let mut edit = 0;
    figures.push(measure("exercise edit-to-verdict (01-hello: build, boot, checks)", times, || {
        edit += 1;
        let text = std::fs::read_to_string(&source)?;
        std::fs::write(&source, format!("{text}// edit {edit}\n"))?;
        let chapter = Chapter::load(&copy.dir)?;
        let result = runner::run(&env, &[chapter], &options)?;
        if !result.passed() {
            return Err(anyhow!("the benchmark's copy of 01-hello failed its checks"));
        }
        Ok(())
    })?);
    figures.extend(verdict_figures(&env, &chapters, &options, "", times)?);
    figures.push(measure(&format!("all {} chapters, one boot each", chapters.len()), times, || {
        for chapter in &chapters {
            runner::run(&env, std::slice::from_ref(chapter), &options)?;
        }
        Ok(())
    })?);
    // The detectors' cost: the same on the debug kernel, which proves the
    // reference solutions in `test` and grades.
    let debug = setup::ensure(setup_options, Flavour::Debug)?;
    let debug_options = RunOptions { work_dir: work.join("run-debug"), memory_mb: debug.kernel.flavour.memory_mb(), ..options.clone() };
    figures.extend(verdict_figures(&debug, &chapters, &debug_options, ", debug kernel", times)?);
    for (name, kernel) in [("fast", &env.kernel), ("debug", &debug.kernel)] {
        // Measured when the kernel was built (a build is not repeated here).
        if let Some(secs) =
            std::fs::read_to_string(kernel.dir.join(crate::kernel::BUILD_SECONDS_FILE)).ok().and_then(|s| s.trim().parse::<f64>().ok())
        {
            figures.push(
                Figure { name: format!("kernel build, {name} flavour (when it was built)"), runs: vec![secs], unit: Unit::Seconds }
                    .report(),
            );
        }
    }
    for jobs in [1, 2] {
        figures.push(grading_throughput(&debug, accel, std::slice::from_ref(first), 4, jobs, times)?);
    }
    // Issue #16's figure: a submission of every chapter (each built in the
    // sandbox, then checked in a guest of its own).
    figures.push(grading_throughput(&debug, accel, &chapters, 2, 2, times)?);
    Ok(figures)
}

/// The table printed for a person.
pub(crate) fn table(figures: &[Figure]) -> String {
    let mut out = format!("{:<52} {:>9} {:>9} {:>9}\n", "figure", "median", "min", "max");
    for f in figures {
        let min = f.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = f.runs.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!("{:<52} {:>9} {:>9} {:>9}\n", f.name, f.unit.format(f.median()), f.unit.format(min), f.unit.format(max)));
    }
    out
}

/// Writes the figures as JSON with the machine they were taken on.
pub(crate) fn write_json(path: &std::path::Path, figures: &[Figure]) -> Result<()> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let proc_field = |file: &str, key: &str| {
        std::fs::read_to_string(file)
            .ok()?
            .lines()
            .find_map(|l| Some(l.strip_prefix(key)?.trim_start_matches([' ', '\t', ':']).trim().to_string()))
    };
    let json = serde_json::json!({
        "machine": {
            "cpus": cpus,
            "cpu": proc_field("/proc/cpuinfo", "model name"),
            "memory": proc_field("/proc/meminfo", "MemTotal"),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "figures": figures.iter().map(|f| serde_json::json!({
            "name": f.name,
            "unit": f.unit.name(),
            "median": f.median(),
            "runs": f.runs,
        })).collect::<Vec<_>>(),
    });
    write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())
}
