// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask`: the workbook's harness. Toolchain and kernel setup,
//! module builds, the QEMU guest, chapter checks and verdicts, exercise mode
//! and grading. One binary crate, so the compiler reports what nothing uses.

use std::process::ExitCode;

mod bench;
mod book;
mod browser;
mod cdp;
mod chapter;
mod detectors;
mod diagram;
mod exercise;
mod faults;
mod fixtures;
mod flags;
mod grade_report;
mod gradescope;
mod grading;
mod guest;
mod hash;
mod initramfs;
mod kernel;
mod kernel_source;
mod lint;
mod lock;
mod module_build;
mod mutation;
mod negative;
mod paths;
mod planted;
mod pool;
mod programs;
mod progress;
mod qmp;
mod replay;
mod report;
mod runner;
mod session;
mod setup;
mod submission;
mod tasks;
mod timings;
mod toolchain;
mod transcript;
mod verdict;

use flags::Command;

/// Errors carry a message written for the reader: what went wrong and the
/// fix; `.context()` adds what the harness was doing, and `main` prints the
/// whole chain.
pub(crate) type Error = anyhow::Error;
/// The harness's result type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = flags::parse(&args).and_then(|flags| match &flags.command {
        Command::Help(text) => {
            print!("{text}");
            Ok(true)
        }
        Command::Setup => tasks::setup::setup(&flags).map(|_| true),
        Command::Run { chapters } => tasks::run::run(&flags, chapters),
        Command::Test { only } => tasks::test::test(&flags, only),
        Command::Lint => tasks::lint::lint(&flags),
        Command::Mutants { chapters } => tasks::mutants::mutants(&flags, chapters),
        Command::Book { serve } => tasks::book::book(&flags, *serve),
        Command::PrintMake { chapter } => tasks::setup::make_command(&flags, chapter),
        Command::Bench { runs, cold: false } => tasks::bench::bench(&flags, *runs),
        Command::Bench { cold: true, .. } => tasks::bench::cold(),
        Command::ExercisesInit { force } => tasks::learn::init(&flags, *force),
        Command::Check { chapter } => tasks::learn::check(&flags, chapter),
        Command::Watch => tasks::learn::watch(&flags),
        Command::Hint { chapter } => tasks::learn::hint(chapter),
        Command::Reset { chapter } => tasks::learn::reset(chapter),
        Command::Solution { chapter, force } => tasks::learn::solution(chapter, *force),
        Command::Grade(grade) => tasks::grade::command(&flags, grade),
        Command::GradeMerge { dirs, out } => tasks::grade::merge_command(dirs, out),
        Command::GradescopeBundle { chapters, hidden, visibility, out } => {
            tasks::gradescope::bundle(chapters, hidden.as_deref(), *visibility, out)
        }
        Command::GradescopeResults { result, hidden, visibility, out } => {
            tasks::gradescope::results(result, hidden.as_deref(), *visibility, out)
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// Each module of the harness and the modules it uses (its tests left
    /// out), read from the sources: `crate::name` and `use crate::{a, b}`.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for dir in [src.clone(), src.join("tasks")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") {
                    files.push(path);
                }
            }
        }
        let name = |path: &std::path::Path| {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            match (path.parent().unwrap().file_name().unwrap().to_string_lossy().as_ref(), stem.as_str()) {
                ("tasks", "mod") => "tasks".to_string(),
                ("tasks", _) => format!("tasks::{stem}"),
                _ => stem,
            }
        };
        let modules: BTreeSet<String> = files.iter().map(|p| name(p)).collect();
        let path = regex::Regex::new(r"crate::((?:tasks::)?[a-z_]+)").unwrap();
        let group = regex::Regex::new(r"use crate::\{([^}]*)\}").unwrap();
        let word = regex::Regex::new(r"\b([a-z_]+)\b").unwrap();
        let mut graph = BTreeMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let mut uses: BTreeSet<String> = path.captures_iter(text).map(|c| c[1].to_string()).collect();
            for g in group.captures_iter(text) {
                uses.extend(word.captures_iter(&g[1]).map(|c| c[1].to_string()));
            }
            let me = name(file);
            uses.retain(|u| modules.contains(u) && *u != me);
            graph.insert(me, uses);
        }
        graph
    }

    /// A cycle through `from`, if there is one.
    fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
        fn walk(graph: &BTreeMap<String, BTreeSet<String>>, at: &str, path: &mut Vec<String>, start: &str) -> bool {
            for next in &graph[at] {
                if next == start {
                    return true;
                }
                if !path.contains(next) {
                    path.push(next.clone());
                    if walk(graph, next, path, start) {
                        return true;
                    }
                    path.pop();
                }
            }
            false
        }
        let mut path = vec![from.to_string()];
        walk(graph, from, &mut path, from).then(|| {
            path.push(from.to_string());
            path
        })
    }

    /// Layers: the tasks (one file per command) and the command line on
    /// top; nothing below imports them, and no modules import each other
    /// in a circle.
    #[test]
    fn imports_never_go_upward_or_in_a_circle() {
        let graph = imports();
        assert!(graph.len() > 30 && graph.contains_key("tasks::grade"), "{graph:?}");
        let mut problems = Vec::new();
        for (module, uses) in &graph {
            if !module.starts_with("tasks") && module != "flags" {
                for upward in uses.iter().filter(|u| u.starts_with("tasks") || *u == "flags") {
                    problems.push(format!("{module} imports {upward}, a layer above it"));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for module in graph.keys() {
            if let Some(cycle) = cycle(&graph, module).filter(|c| seen.insert(c.iter().cloned().collect::<BTreeSet<String>>())) {
                problems.push(format!("an import cycle: {}", cycle.join(" -> ")));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_cycle_is_found() {
        let graph: BTreeMap<String, BTreeSet<String>> = [("a", &["b"][..]), ("b", &["c"]), ("c", &["a"]), ("d", &[])]
            .into_iter()
            .map(|(m, u)| (m.to_string(), u.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert_eq!(cycle(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
        assert_eq!(cycle(&graph, "d"), None);
    }
}
