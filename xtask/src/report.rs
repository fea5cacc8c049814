// SPDX-License-Identifier: GPL-2.0

//! Printing results for a person: a line per step and per check, the reason
//! and the evidence under each failure, and a closing verdict.

use std::fmt::Write as _;
use std::io::IsTerminal;

use crate::progress::format_duration;
use crate::runner::{ChapterResult, RunResult};

/// Colours when writing to a terminal, unless `NO_COLOR` is set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// Decides from stdout and the environment.
    pub(crate) fn detect() -> Style {
        Style { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    /// No colour (for tests and files).
    pub(crate) fn plain() -> Style {
        Style { color: false }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn ok(&self, text: &str) -> String {
        self.paint("32", text)
    }

    fn bad(&self, text: &str) -> String {
        self.paint("31;1", text)
    }
}

/// The report of one chapter.
pub(crate) fn chapter(style: Style, result: &ChapterResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== {}: {}", result.chapter.name, result.chapter.title);
    match &result.build {
        Ok(built) => {
            let took = built.elapsed.map_or_else(|| "up to date".to_string(), format_duration);
            let _ = writeln!(out, "  {}  build ({took})", style.ok("ok  "));
            if !built.warnings.is_empty() {
                for line in built.warnings.lines() {
                    let _ = writeln!(out, "        | {line}");
                }
            }
        }
        Err(message) => {
            let _ = writeln!(out, "  {}  build: the module does not compile", style.bad("FAIL"));
            for line in message.lines() {
                let _ = writeln!(out, "        | {line}");
            }
        }
    }
    for step in &result.steps {
        let mark = if step.passed() { style.ok("PASS") } else { style.bad("FAIL") };
        // A slow step says how slow: where a chapter's time goes.
        let took = step.took.filter(|t| t.as_secs_f64() >= 1.0).map(|t| format!("  ({:.1}s)", t.as_secs_f64())).unwrap_or_default();
        let _ = writeln!(out, "  {mark}  {}{took}", step.name);
        let mut shown: &[String] = &[];
        for check in &step.checks {
            if check.passed {
                let _ = writeln!(out, "          ok    {}", check.what);
                continue;
            }
            let reason = check.reason.as_deref().unwrap_or("failed");
            let _ = writeln!(out, "          {}  {}: {reason}", style.bad("FAIL"), check.what);
            if check.excerpt != shown {
                for line in &check.excerpt {
                    let _ = writeln!(out, "                | {line}");
                }
                shown = &check.excerpt;
            }
        }
    }
    out
}

/// A chapter's report for a learner: the root cause first. Up to and
/// including the first failing step everything is shown as in
/// [`chapter`]; after it, passing steps take a line each and the steps
/// that failed too (most often because of the first: a module left loaded
/// makes every later `insmod` fail) are named on one line. The grader
/// keeps scoring every step; only what is shown changes.
pub(crate) fn learner_chapter(style: Style, result: &ChapterResult) -> String {
    let Some(first) = result.steps.iter().position(|s| !s.passed()) else {
        return chapter(style, result);
    };
    let shown = ChapterResult { steps: result.steps[..=first].to_vec(), ..result.clone() };
    let mut out = chapter(style, &shown);
    let _ = writeln!(
        out,
        "        hint: `cargo xtask hint {}` (fix this step first: the ones below often fail because of it)",
        result.chapter.name
    );
    let mut later_failed = Vec::new();
    for step in &result.steps[first + 1..] {
        if step.passed() {
            let _ = writeln!(out, "  {}  {}", style.ok("PASS"), step.name);
        } else {
            later_failed.push(format!("`{}`", step.name));
        }
    }
    if !later_failed.is_empty() {
        let _ = writeln!(out, "  {}  and {} later step(s): {}", style.bad("FAIL"), later_failed.len(), later_failed.join(", "));
    }
    out
}

/// The closing verdict of a run.
pub(crate) fn verdict(style: Style, result: &RunResult) -> String {
    let mut out = String::new();
    for chapter in &result.chapters {
        let steps = chapter.steps.len();
        let passed = chapter.steps.iter().filter(|s| s.passed()).count();
        let line = if chapter.passed() {
            style.ok(&format!("PASS  {} ({passed}/{steps} steps)", chapter.chapter.name))
        } else if chapter.build.is_err() {
            style.bad(&format!("FAIL  {} (does not compile)", chapter.chapter.name))
        } else {
            let first = chapter
                .steps
                .iter()
                .find_map(|s| s.first_failure().map(|c| format!(": `{}`: {}", s.name, c.reason.as_deref().unwrap_or(""))))
                .unwrap_or_default();
            style.bad(&format!("FAIL  {} ({passed}/{steps} steps){first}", chapter.chapter.name))
        };
        let _ = writeln!(out, "verdict: {line}");
    }
    let peak = result.boots.iter().map(|b| b.peak_rss_kb / 1024).max().unwrap_or(0);
    let boot = match result.boots.as_slice() {
        [] => String::new(),
        [one] => format!(", guest {} (QEMU peaked at {peak} MiB)", format_duration(one.elapsed)),
        many => format!(
            ", {} guests at once: {} (QEMU peaked at {peak} MiB each at most)",
            many.len(),
            many.iter().map(|b| format_duration(b.elapsed)).collect::<Vec<_>>().join(" and ")
        ),
    };
    let _ = writeln!(out, "         in {}{boot}; logs in {}", format_duration(result.elapsed), result.work_dir.display());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chapter::Chapter;
    use crate::verdict::{CheckResult, StepResult};

    fn step(name: &str, passed: bool) -> StepResult {
        let check = CheckResult {
            what: format!("{name} holds"),
            passed,
            reason: (!passed).then(|| format!("{name}: File exists")),
            excerpt: vec![],
        };
        StepResult { name: name.into(), points: 1, checks: vec![check], took: None }
    }

    #[test]
    fn a_learner_sees_the_first_failure_in_full_and_the_rest_on_one_line() {
        let text = "title = \"t\"\nmodules = [\"m\"]\n[[step]]\nname = \"s\"\nrun = \"true\"\n";
        let chapter = Chapter::parse("01-x", std::path::Path::new("/c"), text).unwrap();
        let result = ChapterResult {
            chapter,
            build: Err("not built".into()),
            steps: vec![step("load", true), step("greet", false), step("reload", false), step("info", true), step("unload", false)],
        };
        let shown = learner_chapter(Style::plain(), &result);
        assert!(shown.contains("FAIL  greet\n          FAIL  greet holds: greet: File exists"), "{shown}");
        assert!(shown.contains("hint: `cargo xtask hint 01-x`"), "{shown}");
        assert!(shown.contains("  PASS  info\n"), "{shown}");
        assert!(shown.contains("FAIL  and 2 later step(s): `reload`, `unload`"), "{shown}");
        assert!(!shown.contains("reload: File exists"), "{shown}");
        // The full report still shows every failure.
        assert!(super::chapter(Style::plain(), &result).contains("reload: File exists"));
    }
}
