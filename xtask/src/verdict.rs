// SPDX-License-Identifier: GPL-2.0

//! Judging a step: its record from the guest against the chapter's checks,
//! plus the checks every step gets (no kernel fault in its log). Every
//! failure carries its reason and the lines that show it.

use regex::Regex;

use crate::chapter::Step;
use crate::faults;
use crate::transcript::StepRecord;

/// Lines of log shown with a failure at most.
const EXCERPT_LINES: usize = 20;

/// What the always-on fault check of every step is called.
pub(crate) const FAULT_CHECK: &str = "no kernel fault (oops, BUG, WARNING, panic, lockup) in dmesg";

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckResult {
    /// What was checked, e.g. "dmesg shows `Hello`".
    pub(crate) what: String,
    /// Whether it held.
    pub(crate) passed: bool,
    /// Why not, in the reader's words.
    pub(crate) reason: Option<String>,
    /// The lines that show it.
    pub(crate) excerpt: Vec<String>,
}

impl CheckResult {
    fn pass(what: String) -> CheckResult {
        CheckResult { what, passed: true, reason: None, excerpt: Vec::new() }
    }

    fn fail(what: String, reason: String, excerpt: &[String]) -> CheckResult {
        let start = excerpt.len().saturating_sub(EXCERPT_LINES);
        CheckResult { what, passed: false, reason: Some(reason), excerpt: excerpt[start..].to_vec() }
    }
}

/// A step's results.
#[derive(Debug, Clone)]
pub(crate) struct StepResult {
    /// The step's name.
    pub(crate) name: String,
    /// What it was worth.
    pub(crate) points: u32,
    /// Every check, in order.
    pub(crate) checks: Vec<CheckResult>,
    /// How long it ran in the guest, as the host saw it (none when it did
    /// not run).
    pub(crate) took: Option<std::time::Duration>,
}

impl StepResult {
    /// Whether every check held.
    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// Each failed check as `what: reason`, the text negative tests match.
    pub(crate) fn failures(&self) -> impl Iterator<Item = String> + '_ {
        self.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.what, c.reason.as_deref().unwrap_or("")))
    }

    /// The first failure's reason.
    pub(crate) fn first_failure(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| !c.passed)
    }

    /// The failure that explains the others: a kernel fault (which makes
    /// the exit status and missing lines follow), else the first failure.
    pub(crate) fn main_failure(&self) -> Option<&CheckResult> {
        self.checks.iter().find(|c| !c.passed && c.what == FAULT_CHECK).or_else(|| self.first_failure())
    }
}

/// Judges a step that ran to its end.
pub(crate) fn judge_step(step: &Step, record: &StepRecord) -> StepResult {
    let mut checks = Vec::new();
    checks.push(time_limit(step, record));
    let exit_what = format!("exits with status {}", step.exit);
    checks.push(match record.exit {
        Some(status) if status == step.exit => CheckResult::pass(exit_what),
        Some(status) => CheckResult::fail(exit_what, format!("it exited with status {status}{}", describe_status(status)), &record.output),
        None => CheckResult::fail(exit_what, "it did not exit".into(), &record.output),
    });
    checks.extend(ordered("output", &step.output, &record.output));
    checks.extend(ordered("dmesg", &step.dmesg, &record.dmesg));
    checks.extend(absent("output", &step.absent_output, &record.output));
    checks.extend(absent("dmesg", &step.absent_dmesg, &record.dmesg));
    let fault_what = FAULT_CHECK.to_string();
    let found = faults::find(&record.dmesg);
    checks.push(match found.first() {
        None => CheckResult::pass(fault_what),
        Some(fault) => CheckResult::fail(fault_what, fault.cause.clone(), &fault.excerpt),
    });
    StepResult { name: step.name.clone(), points: step.points, checks, took: None }
}

/// A step that never ended: one failed check with the reason given.
pub(crate) fn not_finished(step: &Step, reason: String, excerpt: &[String]) -> StepResult {
    StepResult {
        name: step.name.clone(),
        points: step.points,
        checks: vec![CheckResult::fail("the step finishes".into(), reason, excerpt)],
        took: None,
    }
}

/// The step ended on its own, not because the step runner killed it at its
/// time limit.
fn time_limit(step: &Step, record: &StepRecord) -> CheckResult {
    let what = format!("finishes within its time limit ({}s)", step.timeout_secs);
    match &record.stuck {
        None => CheckResult::pass(what),
        Some(stack) => CheckResult::fail(what, stuck_reason(step, stack), stack),
    }
}

/// Why a step was stopped, naming where its task was in the kernel.
pub(crate) fn stuck_reason(step: &Step, stack: &[String]) -> String {
    match faults::stuck_function(stack) {
        Some(function) => format!("still running after {}s, in the kernel in {function}", step.timeout_secs),
        None => format!("still running after {}s", step.timeout_secs),
    }
}

fn describe_status(status: i32) -> &'static str {
    match status {
        137 => " (killed: it hit its time limit, or the kernel killed it after an oops)",
        139 => " (segmentation fault)",
        127 => " (command not found)",
        _ => "",
    }
}

/// Each pattern must match a line after the previous pattern's line.
fn ordered(source: &str, patterns: &[Regex], lines: &[String]) -> Vec<CheckResult> {
    let mut from = 0;
    let mut results = Vec::new();
    for pattern in patterns {
        let what = format!("{source} shows `{pattern}`");
        match lines[from..].iter().position(|l| pattern.is_match(l)) {
            Some(i) => {
                from += i + 1;
                results.push(CheckResult::pass(what));
            }
            None => {
                let reason = match lines.iter().position(|l| pattern.is_match(l)) {
                    Some(_) => format!("`{pattern}` appears, but not after the line matched before it (order matters)"),
                    None if lines.is_empty() => format!("no line of {source} matches `{pattern}` ({source} was empty)"),
                    None => format!("no line of {source} matches `{pattern}`"),
                };
                results.push(CheckResult::fail(what, reason, lines));
            }
        }
    }
    results
}

fn absent(source: &str, patterns: &[Regex], lines: &[String]) -> Vec<CheckResult> {
    patterns
        .iter()
        .map(|pattern| {
            let what = format!("{source} does not show `{pattern}`");
            match lines.iter().find(|l| pattern.is_match(l)) {
                None => CheckResult::pass(what),
                Some(line) => CheckResult::fail(what, format!("it does: `{line}`"), lines),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chapter::Chapter;
    use std::path::Path;

    fn step(extra: &str) -> Step {
        let text = format!("title = \"t\"\nmodules = [\"m\"]\n[[step]]\nname = \"s\"\nrun = \"true\"\n{extra}");
        Chapter::parse("c", Path::new("/c"), &text).unwrap().steps.remove(0)
    }

    fn record(exit: i32, output: &[&str], dmesg: &[&str]) -> StepRecord {
        StepRecord {
            output: output.iter().map(|s| s.to_string()).collect(),
            exit: Some(exit),
            dmesg: dmesg.iter().map(|s| s.to_string()).collect(),
            ended: true,
            stuck: None,
            skipped: false,
        }
    }

    #[test]
    fn passing_step() {
        let s = step("dmesg = [\"a\", \"b\"]\noutput = [\"^ok$\"]\nabsent_dmesg = [\"tick\"]");
        let r = judge_step(&s, &record(0, &["ok"], &["m: a", "m: b"]));
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.checks.len(), 7);
    }

    #[test]
    fn order_missing_and_absent_lines_fail_with_reasons() {
        let s = step("dmesg = [\"a\", \"b\"]\nabsent_dmesg = [\"tick\"]");
        let r = judge_step(&s, &record(0, &[], &["m: b", "m: a", "tick 3"]));
        let reasons: Vec<String> = r.checks.iter().filter_map(|c| c.reason.clone()).collect();
        assert!(reasons[0].contains("order matters"), "{reasons:?}");
        assert!(reasons[1].contains("it does: `tick 3`"), "{reasons:?}");
        let r = judge_step(&s, &record(0, &[], &[]));
        assert_eq!(r.first_failure().unwrap().reason.as_deref(), Some("no line of dmesg matches `a` (dmesg was empty)"));
    }

    #[test]
    fn a_step_stopped_by_the_watchdog_names_where_it_was() {
        let mut rec = record(137, &[], &[]);
        rec.stuck = Some(vec!["task 5 (cat)".into(), "[<0>] queue_read+0x4/0x10 [queue]".into()]);
        let r = judge_step(&step(""), &rec);
        assert_eq!(r.first_failure().unwrap().reason.as_deref(), Some("still running after 10s, in the kernel in queue_read"));
    }

    #[test]
    fn exit_status_and_faults() {
        let r = judge_step(&step("exit = 1"), &record(137, &[], &[]));
        assert!(r.first_failure().unwrap().reason.as_ref().unwrap().contains("killed"));
        let r = judge_step(&step(""), &record(0, &[], &["WARNING: CPU: 0 PID: 1 at x.rs:1 f+0x1/0x2"]));
        assert_eq!(r.first_failure().unwrap().reason.as_deref(), Some("kernel WARNING, in f"));
    }
}
