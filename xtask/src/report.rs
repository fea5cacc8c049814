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
            let _ = writeln!(out, "  {}  build ({})", style.ok("ok  "), format_duration(built.elapsed));
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
        let _ = writeln!(out, "  {mark}  {}", step.name);
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
    let boot = result.boot.as_ref().map(|b| format!(", guest {}", format_duration(b.elapsed))).unwrap_or_default();
    let _ = writeln!(out, "         in {}{boot}; logs in {}", format_duration(result.elapsed), result.work_dir.display());
    out
}
