// SPDX-License-Identifier: GPL-2.0

//! Kernel faults in a log: oopses, BUG()s (a Rust panic ends in one),
//! WARN()s, soft lockups, lockdep and refcount splats. Each is named with its
//! cause and, where the trace shows it, the function it happened in.

use std::sync::OnceLock;

use regex::Regex;

use crate::detectors::{frame, Frame};

/// One fault found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// What happened, in a learner's words.
    pub(crate) cause: String,
    /// The index of the line that reported it.
    pub(crate) line: usize,
    /// The lines that show it: a detector's report read down to what
    /// matters, else the lines around the fault.
    pub(crate) excerpt: Vec<String>,
}

/// Patterns in priority order: the first that matches names the fault.
fn patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            // The location ends with a colon; the message is on the next line.
            (r"panicked at (.*?):?\s*$", "Rust panic at $1"),
            (r"BUG: soft lockup", "soft lockup: a CPU was stuck in the kernel (an endless loop?)"),
            (r"Kernel panic - not syncing: (.*)", "kernel panic: $1"),
            (r"kernel BUG at (\S+)", "kernel BUG at $1"),
            (r"BUG: (.*)", "BUG: $1"),
            (r"general protection fault", "general protection fault"),
            (r"\bOops\b", "oops"),
            (r"refcount_t: (.*)", "refcount error: $1"),
            (r"possible (circular|recursive) locking|inconsistent lock state", "lockdep: locking problem"),
            (r"rcu: INFO: .*detected stall", "RCU stall"),
            (r"WARNING:", "kernel WARNING"),
            (r"^Call Trace:", "kernel stack trace"),
        ]
        .into_iter()
        .map(|(re, cause)| (Regex::new(re).expect("fault pattern"), cause))
        .collect()
    })
}

/// Every fault in `lines`, in order, each with its cause. The function it
/// happened in is added from the lines that follow (`RIP:` or the WARNING's
/// own location).
pub(crate) fn find(lines: &[String]) -> Vec<Fault> {
    // The console has timestamps, the per-step dmesg not: read both alike.
    let stripped: Vec<String> = lines.iter().map(|l| crate::transcript::strip_timestamp(l).to_string()).collect();
    let lines = &stripped[..];
    let mut faults: Vec<Fault> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(report) = crate::detectors::read(lines, i) {
            if !faults.iter().any(|f| f.cause == report.cause) {
                faults.push(Fault { cause: report.cause, line: i, excerpt: report.excerpt });
            }
            continue;
        }
        let Some((re, cause)) = patterns().iter().find(|(re, _)| re.is_match(line)) else {
            continue;
        };
        let mut cause = re.replace(re.find(line).map(|m| m.as_str()).unwrap_or(line), *cause).to_string();
        if cause.starts_with("Rust panic") {
            // The panic message is on the next line.
            if let Some(message) = lines.get(i + 1).map(|l| l.trim()).filter(|l| !l.is_empty()) {
                cause = format!("{cause}: {message}");
            }
        } else if let Some(function) = function_near(lines, i) {
            cause = format!("{cause}, in {function}");
        }
        // A trace repeats its cause: report each fault once.
        if !faults.iter().any(|f: &Fault| f.cause == cause) {
            faults.push(Fault { cause, line: i, excerpt: excerpt(lines, i) });
        }
    }
    faults
}

fn function_near(lines: &[String], at: usize) -> Option<String> {
    lines[at..lines.len().min(at + 40)].iter().find_map(|line| Some(frame(line)?.function))
}

/// Where a stuck task is, from its `/proc/PID/stack` lines: the first frame
/// in a module (`sym+0x4/0x10 [hello]`), else the first that is not the
/// scheduler or the entry code.
pub(crate) fn stuck_function(stack: &[String]) -> Option<String> {
    const GENERIC: &[&str] = &[
        "__schedule",
        "schedule",
        "preempt_schedule",
        "irqentry_",
        "asm_",
        "do_syscall",
        "entry_SYSCALL",
        "__x64_sys",
        "__do_sys",
        "do_init_module",
        "load_module",
        "init_module_from_file",
        "idempotent_init_module",
        "ret_from_fork",
    ];
    let frames: Vec<Frame> = stack.iter().filter_map(|line| frame(line)).collect();
    frames
        .iter()
        .find(|f| f.module.is_some())
        .or_else(|| frames.iter().find(|f| !GENERIC.iter().any(|g| f.function.starts_with(g))))
        .map(|f| f.function.clone())
}

/// Lines around a fault, for a report: a little before, the trace after.
pub(crate) fn excerpt(lines: &[String], at: usize) -> Vec<String> {
    let start = at.saturating_sub(3);
    let end = lines.len().min(at + 25);
    lines[start..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn rust_panic_names_its_message() {
        let log = lines("rust_kernel: panicked at hello.rs:20:9:\nhello: boom\n------------[ cut here ]------------\nkernel BUG at rust/helpers/bug.c:7!\nOops: invalid opcode: 0000 [#1] NOPTI\nRIP: 0010:rust_helper_BUG+0x8/0x10");
        let faults = find(&log);
        assert_eq!(faults[0].cause, "Rust panic at hello.rs:20:9: hello: boom");
        assert!(faults[1].cause.starts_with("kernel BUG at rust/helpers/bug.c:7!"), "{faults:?}");
    }

    #[test]
    fn soft_lockup_names_the_function() {
        let log = lines("watchdog: BUG: soft lockup - CPU#0 stuck for 8s! [insmod:50]\nModules linked in: hello(O+)\nRIP: 0010:_RNvCs1234abcd_5hello9spin_init+0x4/0x10 [hello]");
        let faults = find(&log);
        assert_eq!(faults.len(), 1, "{faults:?}");
        assert_eq!(faults[0].cause, "soft lockup: a CPU was stuck in the kernel (an endless loop?), in hello::spin_init");
    }

    #[test]
    fn warning_and_clean_logs() {
        let log = lines("hello: loaded\nWARNING: CPU: 0 PID: 51 at hello.rs:30 init_module+0x22/0x40 [hello]\nCall Trace:");
        let faults = find(&log);
        assert_eq!(faults[0].cause, "kernel WARNING, in init_module");
        assert!(find(&lines("hello: all is well\nnothing to see")).is_empty());
    }

    #[test]
    fn stuck_function_prefers_module_frames() {
        let stack = lines("task 51 (insmod) State:\tR (running), kernel stack:\n[<0>] __schedule+0x1/0x2\n[<0>] preempt_schedule_irq+0x1/0x2\n[<0>] _RNvCs1234abcd_5hello4spin+0x4/0x10 [hello]\n[<0>] do_one_initcall+0x1/0x2");
        assert_eq!(stuck_function(&stack).as_deref(), Some("hello::spin"));
        let stack = lines("[<0>] __schedule+0x1/0x2\n[<0>] pipe_read+0x1/0x2\n[<0>] vfs_read+0x1/0x2");
        assert_eq!(stuck_function(&stack).as_deref(), Some("pipe_read"));
        assert_eq!(stuck_function(&[]), None);
    }

    #[test]
    fn excerpt_is_bounded() {
        let log: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let e = excerpt(&log, 50);
        assert_eq!(e.first().unwrap(), "47");
        assert_eq!(e.len(), 28);
    }
}
