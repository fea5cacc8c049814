// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask bench`: the figures that matter to a learner's loop, as a
//! table and as JSON (`target/bench.json`). Each figure is the median of
//! several runs.

use std::time::{Duration, Instant};

use crate::chapter::Chapter;
use crate::guest::Accel;
use crate::paths::write_atomic;
use crate::progress::format_duration;
use crate::runner::{self, RunOptions};
use crate::setup::{self, SetupOptions};
use crate::Result;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Every run's time.
    pub runs: Vec<Duration>,
}

impl Figure {
    /// The median run.
    pub fn median(&self) -> Duration {
        let mut sorted = self.runs.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

fn measure(name: &str, times: usize, mut what: impl FnMut() -> Result<()>) -> Result<Figure> {
    let mut runs = Vec::new();
    for _ in 0..times {
        let started = Instant::now();
        what()?;
        runs.push(started.elapsed());
    }
    eprintln!("bench: {name}: {}", format_duration(Figure { name: name.into(), runs: runs.clone() }.median()));
    Ok(Figure { name: name.to_string(), runs })
}

/// Runs the benchmark; `times` runs per figure.
pub fn run(setup_options: &SetupOptions, accel: Accel, times: usize) -> Result<Vec<Figure>> {
    let env = setup::ensure(setup_options)?;
    let mut figures = Vec::new();
    figures.push(measure("setup, warm cache", times, || setup::ensure(setup_options).map(|_| ()))?);

    let chapters = crate::cli::workbook_chapters(&env.project)?;
    let work = env.project.cache_dir("bench")?;
    let options = RunOptions { accel, memory_mb: crate::cli::GUEST_MEMORY_MB, work_dir: work.join("run"), isolation: crate::module_build::Isolation::Trusted };

    // A learner's edit: a copy of chapter 01 whose source changes each time.
    let first = chapters.first().ok_or("the workbook has no chapters")?;
    let copy = crate::mutation::apply(
        first,
        &crate::mutation::Mutation {
            name: "bench".into(),
            file: "hello.rs".into(),
            find: "//! Hello, kernel: the smallest useful Rust module.".into(),
            replace: "//! Hello, kernel: the smallest useful Rust module. (edited)".into(),
            expect: crate::mutation::Expect::One(String::new()),
        },
        &work,
    )?;
    let source = copy.dir.join("hello.rs");
    let mut edit = 0;
    figures.push(measure("exercise edit-to-verdict (01-hello: build, boot, checks)", times, || {
        edit += 1;
        let text = std::fs::read_to_string(&source)?;
        std::fs::write(&source, format!("{text}// edit {edit}\n"))?;
        let chapter = Chapter::load(&copy.dir)?;
        let result = runner::run(&env, &[chapter], &options)?;
        if !result.passed() {
            return Err("the benchmark's copy of 01-hello failed its checks".into());
        }
        Ok(())
    })?);
    figures.push(measure("01-hello verdict, nothing changed", times, || {
        let result = runner::run(&env, std::slice::from_ref(first), &options)?;
        result.passed().then_some(()).ok_or_else(|| "01-hello failed".into())
    })?);
    figures.push(measure(&format!("all {} chapters, one guest boot", chapters.len()), times, || {
        runner::run(&env, &chapters, &options).map(|_| ())
    })?);
    figures.push(measure(&format!("all {} chapters, one boot each", chapters.len()), times, || {
        for chapter in &chapters {
            runner::run(&env, std::slice::from_ref(chapter), &options)?;
        }
        Ok(())
    })?);
    Ok(figures)
}

/// The table printed for a person.
pub fn table(figures: &[Figure]) -> String {
    let mut out = format!("{:<52} {:>9} {:>9} {:>9}\n", "figure", "median", "min", "max");
    for f in figures {
        let min = f.runs.iter().min().copied().unwrap_or_default();
        let max = f.runs.iter().max().copied().unwrap_or_default();
        out.push_str(&format!(
            "{:<52} {:>9} {:>9} {:>9}\n",
            f.name,
            format_duration(f.median()),
            format_duration(min),
            format_duration(max)
        ));
    }
    out
}

/// Writes the figures as JSON with the machine they were taken on.
pub fn write_json(path: &std::path::Path, figures: &[Figure]) -> Result<()> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let json = serde_json::json!({
        "machine": { "cpus": cpus, "os": std::env::consts::OS, "arch": std::env::consts::ARCH },
        "figures": figures.iter().map(|f| serde_json::json!({
            "name": f.name,
            "median_seconds": f.median().as_secs_f64(),
            "runs_seconds": f.runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())
}
