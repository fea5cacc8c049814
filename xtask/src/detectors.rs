// SPDX-License-Identifier: GPL-2.0

//! The kernel's bug detectors, read in Rust terms: a lockdep report names the
//! locks and the functions that take them in conflicting orders, a KASAN
//! report the access and the functions that allocated, freed and touched the
//! memory, an atomic-sleep report the function that slept and what it held.
//! Each reading keeps only the lines of the report that show it.
//!
//! (Longer than most files here: one reader per kind of report the kernel
//! prints, each with the tests that pin its wording.)

use std::sync::OnceLock;

use regex::Regex;

/// A detector's report, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// What happened and where, in the reader's words.
    pub(crate) cause: String,
    /// The lines of the report that show it.
    pub(crate) excerpt: Vec<String>,
}

/// A frame of a stack trace or an `at:` location: the one parser of the
/// kernel's `function+0x1c/0x40 [module]` notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The demangled function name, without its offset.
    pub(crate) function: String,
    /// The module it is in (`[hello]`), if any.
    pub(crate) module: Option<String>,
    /// Not marked `?` by the unwinder (a `?` frame may be a stale
    /// return address left on the stack).
    pub(crate) reliable: bool,
}

impl Frame {
    /// Code the module's author wrote: in a module, and not a generic of
    /// the kernel crate or `core` instantiated there.
    fn is_own(&self) -> bool {
        let name = self.function.trim_start_matches('<');
        self.module.is_some() && !["kernel::", "core::", "alloc::", "pin_init::"].iter().any(|p| name.starts_with(p))
    }
}

fn frame_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"(?:^|[\s:\]])([A-Za-z_$][\w.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+(?:\s+\[(\w+)\])?").unwrap())
}

fn lock_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"\((.+?)\)\{[^}]*\}(?:-\{\d+:\d+\})?").unwrap())
}

/// `_RNvNtCs..._5hello4init` gives `hello::init`, without the hash.
pub(crate) fn demangle(symbol: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(symbol))
}

/// The frame a line shows, if any.
pub(crate) fn frame(line: &str) -> Option<Frame> {
    let captures = frame_pattern().captures(line)?;
    let reliable = !line[..captures.get(1)?.start()].trim_end().ends_with('?');
    Some(Frame { function: demangle(&captures[1]), module: captures.get(2).map(|m| m.as_str().to_string()), reliable })
}

/// Functions of the kernel's own machinery that are never "the place".
const MACHINERY: &[&str] = &[
    "dump_stack",
    "show_stack",
    "__might_",
    "might_",
    "___might_",
    "kasan_",
    "__kasan_",
    "print_",
    "check_",
    "validate_chain",
    "__lock_acquire",
    "lock_acquire",
    "lockdep_",
    "__lockdep",
    "mark_lock",
    "kmem_cache_",
    "__kmalloc",
    "kmalloc",
    "krealloc",
    "__kmem_cache",
    "kfree",
    "slab_",
    "__slab",
    "__do_kmalloc",
    "kvfree",
    "kvmalloc",
    "__kvmalloc",
    "kvrealloc",
    "___slab",
    "__mutex_lock",
    "mutex_lock",
    "_raw_spin",
    "__schedule",
    "schedule",
    "asm_",
    "entry_SYSCALL",
    "do_syscall",
    "__x64_sys",
    "x64_sys_call",
    "__do_sys",
    "ret_from_fork",
    "srso_",
    "__asan_",
    "rust_helper_",
];

/// The place to name among `frames`: the module author's own code first,
/// then any module frame, then the first frame that is not the kernel's
/// machinery.
fn place(frames: &[Frame]) -> Option<String> {
    frames
        .iter()
        .find(|f| f.is_own())
        .or_else(|| frames.iter().find(|f| f.module.is_some()))
        .or_else(|| frames.iter().find(|f| !MACHINERY.iter().any(|m| f.function.starts_with(m))))
        .map(|f| f.function.clone())
}

/// The lines of a report starting at `at`: up to its end marker or the next
/// report, at most `max`.
fn report_lines(lines: &[String], at: usize, max: usize) -> &[String] {
    let end = lines[at + 1..]
        .iter()
        .position(|l| l.starts_with("=====") && !lines[at].starts_with("=====") || l.contains("---[ end trace"))
        .map_or(lines.len(), |i| at + 1 + i + 1);
    &lines[at..end.min(at + max).min(lines.len())]
}

/// The frames of the stack that follows the line matching `header` in
/// `lines`, up to the next blank line or section header.
fn section_frames(lines: &[String], header: impl Fn(&str) -> bool) -> Vec<Frame> {
    let Some(start) = lines.iter().position(|l| header(l)) else {
        return Vec::new();
    };
    lines[start + 1..].iter().take_while(|l| !l.trim().is_empty() && !l.trim_end().ends_with(':')).filter_map(|l| frame(l)).collect()
}

/// Keeps the lines of `lines` that `wanted` picks, in order, at most `max`.
fn pick(lines: &[String], max: usize, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    lines.iter().filter(|l| wanted(l)).take(max).cloned().collect()
}

/// A lock line: `ffff888004c3e0b8 (abba_a){+.+.}-{4:4}, at: f+0x4b/0x120 [abba]`.
fn lock_and_place(line: &str) -> Option<(String, Option<String>)> {
    let lock = lock_pattern().captures(line)?.get(1)?.as_str().to_string();
    let at = line.split_once(", at: ").and_then(|(_, rest)| frame(&format!(" {rest}"))).map(|f| f.function);
    Some((lock, at))
}

fn in_function(place: &Option<String>) -> String {
    place.as_deref().map(|p| format!(" in {p}")).unwrap_or_default()
}

/// A lockdep report whose header is at `lines[at]`.
pub(crate) fn lockdep(lines: &[String], at: usize) -> Option<Report> {
    let header = lines[at].trim();
    let title = header.trim_start_matches("WARNING: ").trim_start_matches("BUG: ").trim_matches(|c| c == '[' || c == ']' || c == ' ');
    let report = report_lines(lines, at, 120);
    // The lock being taken and the locks already held, each with where.
    let position = |needle: &str| report.iter().position(|l| l.contains(needle));
    let lock_after = |i: Option<usize>| i.and_then(|i| report.get(i + 1)).and_then(|l| lock_and_place(l));
    let wanted = lock_after(position("is trying to acquire").or(position("is trying to lock")).or(position("takes:")));
    let held = lock_after(position("already holding lock"));
    let excerpt_of = |report: &[String]| {
        pick(report, 20, |l| {
            l.contains("WARNING:")
                || l.contains("BUG:")
                || l.contains("lock:")
                || l.contains("lock(")
                || lock_pattern().is_match(l)
                || l.starts_with("-> #")
                || l.contains("inconsistent")
        })
    };
    if title.starts_with("possible circular locking dependency") {
        let (new, new_at) = wanted?;
        let (old, old_at) = held.unwrap_or(("?".into(), None));
        // The chain's first link: where `old` was taken after `new` before.
        let chain_at = report.iter().position(|l| l.starts_with("-> #1") || l.starts_with("-> #")).map(|i| {
            let frames: Vec<Frame> = report[i + 1..].iter().take_while(|l| !l.trim().is_empty()).filter_map(|l| frame(l)).collect();
            place(&frames)
        });
        let before = chain_at.flatten().map(|p| format!(" (in {p})")).unwrap_or_default();
        let cause = format!(
            "lockdep: possible circular locking dependency (a lock-order inversion): `{new}` is taken while holding `{old}`{}, \
             but `{old}` was taken while holding `{new}` before{before}: two tasks doing both can deadlock",
            in_function(&new_at.or(old_at))
        );
        return Some(Report { cause, excerpt: excerpt_of(report) });
    }
    if title.starts_with("possible recursive locking") {
        let (new, new_at) = wanted?;
        let first = held.and_then(|(_, at)| at).map(|p| format!(" (first taken in {p})")).unwrap_or_default();
        let cause =
            format!("lockdep: possible recursive locking: `{new}` is taken{} while already held{first}: a deadlock", in_function(&new_at));
        return Some(Report { cause, excerpt: excerpt_of(report) });
    }
    let locks: Vec<String> =
        report.iter().filter_map(|l| lock_and_place(l)).map(|(lock, at)| format!("`{lock}`{}", in_function(&at))).take(3).collect();
    let mut cause = format!("lockdep: {title}");
    if !locks.is_empty() {
        cause.push_str(&format!(": {}", locks.join(", ")));
    } else if let Some(p) = place(&report.iter().filter_map(|l| frame(l)).collect::<Vec<_>>()) {
        cause.push_str(&format!(", in {p}"));
    }
    Some(Report { cause, excerpt: excerpt_of(report) })
}

/// A KASAN report whose `BUG: KASAN: ...` line is `lines[at]`.
pub(crate) fn kasan(lines: &[String], at: usize) -> Option<Report> {
    let header = &lines[at];
    let kind = header.split("KASAN: ").nth(1)?.split(" in ").next()?.trim().to_string();
    let report = report_lines(lines, at, 200);
    let access = report.iter().find_map(|l| {
        let l = l.trim();
        let (op, rest) = l.split_once(" of size ")?;
        let size = rest.split_whitespace().next()?;
        Some(format!("a {} of {size} bytes", op.to_lowercase()))
    });
    let call_trace: Vec<Frame> = section_frames(report, |l| l.trim() == "Call Trace:" || l.trim() == "<TASK>");
    let touched = place(&call_trace).or_else(|| frame(header).map(|f| f.function));
    let allocated = place(&section_frames(report, |l| l.starts_with("Allocated by task")));
    let freed = place(&section_frames(report, |l| l.starts_with("Freed by task")));
    let mut cause = format!("KASAN: {kind}: {}{}", access.unwrap_or_else(|| "a bad access".into()), in_function(&touched));
    let mut history = Vec::new();
    if let Some(a) = allocated {
        history.push(format!("allocated in {a}"));
    }
    if let Some(f) = freed {
        history.push(format!("freed in {f}"));
    }
    if !history.is_empty() {
        cause.push_str(&format!("; the memory was {}", history.join(" and ")));
    }
    let excerpt = pick(report, 20, |l| {
        l.contains("KASAN")
            || l.contains(" of size ")
            || l.starts_with("Allocated by")
            || l.starts_with("Freed by")
            || l.contains("located")
            || frame(l).is_some_and(|f| f.module.is_some())
    });
    Some(Report { cause, excerpt })
}

/// A "sleeping function called from invalid context" report at `lines[at]`.
pub(crate) fn atomic_sleep(lines: &[String], at: usize) -> Option<Report> {
    let report = report_lines(lines, at, 80);
    let site = lines[at].split(" invalid context at ").nth(1).map(str::trim).unwrap_or("?");
    let trace: Vec<Frame> = section_frames(report, |l| l.trim() == "Call Trace:" || l.trim() == "<TASK>");
    let sleeper = place(&trace);
    let held: Vec<String> = report
        .iter()
        .filter(|l| l.trim_start().starts_with('#'))
        .filter_map(|l| lock_and_place(l))
        .map(|(lock, at)| format!("`{lock}`{}", at.map(|p| format!(" (taken in {p})")).unwrap_or_default()))
        .collect();
    let disabled_at = report
        .iter()
        .position(|l| l.starts_with("Preemption disabled at:"))
        .and_then(|i| report.get(i + 1))
        .and_then(|l| frame(l))
        .map(|f| f.function);
    let preempt_count = report.iter().find_map(|l| l.strip_prefix("preempt_count: ")?.split(',').next().map(str::trim));
    let holding = if !held.is_empty() {
        format!(" while holding {}", held.join(", "))
    } else if let Some(p) = disabled_at {
        format!(" with preemption disabled (since {p}: a spinlock held?)")
    } else if let Some(count) = preempt_count.filter(|c| *c != "0") {
        format!(" with preemption disabled (preempt_count {count}: a spinlock held?)")
    } else {
        " in atomic context".into()
    };
    // The function that may sleep: the frame the might_sleep check was called from.
    let after_check =
        trace.iter().position(|f| f.function.starts_with("__might_") || f.function.starts_with("might_")).map(|i| &trace[i + 1..]);
    let callee = after_check
        .and_then(|rest| rest.iter().find(|f| f.reliable).or(rest.first()))
        .filter(|f| !f.is_own())
        .map(|f| format!("{}, which may sleep", f.function))
        .unwrap_or_else(|| "a function that may sleep".into());
    let cause = format!("sleeping in atomic context: {} called {callee} ({site}){holding}", sleeper.as_deref().unwrap_or("the module"));
    let excerpt = pick(report, 16, |l| {
        l.contains("BUG:")
            || l.starts_with("in_atomic")
            || l.contains("lock held")
            || l.contains("locks held")
            || l.trim_start().starts_with('#')
            || l.starts_with("Preemption disabled")
            || frame(l).is_some_and(|f| f.module.is_some())
    });
    Some(Report { cause, excerpt })
}

/// A debug-objects report (`ODEBUG: free active ... object type: hrtimer`).
pub(crate) fn debug_objects(lines: &[String], at: usize) -> Option<Report> {
    let line = &lines[at];
    let text = line.split("ODEBUG: ").nth(1)?.trim();
    let what = text.split(" object").next().unwrap_or(text);
    let kind = text.split("object type: ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap_or("object");
    let hint = text.split("hint: ").nth(1).and_then(|h| frame(&format!(" {h}"))).map(|f| f.function);
    let report = report_lines(lines, at, 60);
    let place = place(&report.iter().filter_map(|l| frame(l)).collect::<Vec<_>>());
    let cause =
        format!("debug objects: {what} {kind}{}{}", hint.map(|h| format!(" (its function: {h})")).unwrap_or_default(), in_function(&place));
    let excerpt = pick(report, 12, |l| l.contains("ODEBUG") || l.contains("WARNING") || frame(l).is_some_and(|f| f.module.is_some()));
    Some(Report { cause, excerpt })
}

/// The detector whose report starts at `lines[at]`, read; none when the line
/// does not start one.
pub(crate) fn read(lines: &[String], at: usize) -> Option<Report> {
    let line = lines[at].trim();
    if line.contains("BUG: KASAN: ") {
        kasan(lines, at)
    } else if line.contains("BUG: sleeping function called from invalid context") {
        atomic_sleep(lines, at)
    } else if line.contains("ODEBUG: ") {
        debug_objects(lines, at)
    } else if is_lockdep_header(line) {
        lockdep(lines, at)
    } else {
        None
    }
}

fn is_lockdep_header(line: &str) -> bool {
    const HEADERS: &[&str] = &[
        "WARNING: possible circular locking dependency",
        "WARNING: possible recursive locking detected",
        "WARNING: inconsistent lock state",
        "BUG: Invalid wait context",
        "WARNING: bad unlock balance detected",
        "WARNING: held lock freed",
        "WARNING: lock held when returning to user space",
        "WARNING: possible irq lock inversion dependency",
        "WARNING: suspicious RCU usage",
        "BUG: held lock freed",
        "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
        "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
    ];
    HEADERS.iter().any(|h| line.contains(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn circular_locking_names_both_locks_and_functions() {
        let log = lines(
            "======================================================\n\
             WARNING: possible circular locking dependency detected\n\
             7.3.4 #1 Not tainted\n\
             ------------------------------------------------------\n\
             insmod/52 is trying to acquire lock:\n\
             ffff888004c3e0b8 (abba_a){+.+.}-{4:4}, at: _RNvCs1234abcd_4abba8backward+0x4b/0x120 [abba]\n\
             \n\
             but task is already holding lock:\n\
             ffff888004c3e040 (abba_b){+.+.}-{4:4}, at: _RNvCs1234abcd_4abba8backward+0x2a/0x120 [abba]\n\
             \n\
             which lock already depends on the new lock.\n\
             \n\
             the existing dependency chain (in reverse order) is:\n\
             \n\
             -> #1 (abba_b){+.+.}-{4:4}:\n\
             \x20      lock_acquire+0x10/0x20\n\
             \x20      __mutex_lock+0x10/0x20\n\
             \x20      _RNvCs1234abcd_4abba7forward+0x3f/0x100 [abba]\n\
             \n\
             -> #0 (abba_a){+.+.}-{4:4}:\n\
             \x20      _RNvCs1234abcd_4abba8backward+0x4b/0x120 [abba]\n",
        );
        let report = read(&log, 1).unwrap();
        assert_eq!(
            report.cause,
            "lockdep: possible circular locking dependency (a lock-order inversion): `abba_a` is taken while holding `abba_b` \
             in abba::backward, but `abba_b` was taken while holding `abba_a` before (in abba::forward): two tasks doing both can deadlock"
        );
        assert!(report.excerpt.len() <= 20 && report.excerpt.iter().any(|l| l.starts_with("-> #1")));
    }

    #[test]
    fn kasan_names_access_and_history() {
        let log = lines(
            "==================================================================\n\
             BUG: KASAN: slab-use-after-free in _RNvCs1234abcd_3uaf4peek+0x10/0x20 [uaf]\n\
             Read of size 4 at addr ffff888003a1b2c8 by task insmod/53\n\
             \n\
             Call Trace:\n\
             \x20<TASK>\n\
             \x20dump_stack_lvl+0x1/0x2\n\
             \x20kasan_report+0x1/0x2\n\
             \x20_RNvCs1234abcd_3uaf4peek+0x10/0x20 [uaf]\n\
             \x20do_one_initcall+0x1/0x2\n\
             \n\
             Allocated by task 53:\n\
             \x20kasan_save_stack+0x1/0x2\n\
             \x20__kmalloc_cache_noprof+0x1/0x2\n\
             \x20_RNvCs1234abcd_3uaf8dangling+0x1/0x2 [uaf]\n\
             \n\
             Freed by task 53:\n\
             \x20kfree+0x1/0x2\n\
             \x20_RNvXs_NtNtCs1_6kernel5alloc4kboxINtB4_3BoxmENtNtCs2_4core3ops4Drop4dropCs1234abcd_3uaf+0x1/0x2 [uaf]\n\
             \x20_RNvCs1234abcd_3uaf8dangling+0x1/0x2 [uaf]\n\
             \n\
             ==================================================================\n",
        );
        let report = read(&log, 1).unwrap();
        assert_eq!(
            report.cause,
            "KASAN: slab-use-after-free: a read of 4 bytes in uaf::peek; the memory was allocated in uaf::dangling and freed in uaf::dangling"
        );
    }

    #[test]
    fn atomic_sleep_names_the_sleeper_and_the_lock() {
        let log = lines(
            "BUG: sleeping function called from invalid context at kernel/time/sleep_timeout.c:363\n\
             in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 52, name: insmod\n\
             preempt_count: 1, expected: 0\n\
             1 lock held by insmod/52:\n\
             \x20#0: ffff888003ab8c58 (sleepy_lock){+.+.}-{3:3}, at: _RNvCs1234abcd_6sleepy3nap+0x1/0x2 [sleepy]\n\
             Preemption disabled at:\n\
             [<ffffffffc0202080>] _RNvCs1234abcd_6sleepy3nap+0x1/0x2 [sleepy]\n\
             Call Trace:\n\
             \x20<TASK>\n\
             \x20dump_stack_lvl+0x1/0x2\n\
             \x20__might_resched+0x1/0x2\n\
             \x20? _RNvCs1234abcd_6sleepy3nap+0x1/0x2 [sleepy]\n\
             \x20fsleep+0x1/0x2\n\
             \x20_RNvCs1234abcd_6sleepy3nap+0x1/0x2 [sleepy]\n",
        );
        let report = read(&log, 0).unwrap();
        assert_eq!(
            report.cause,
            "sleeping in atomic context: sleepy::nap called fsleep, which may sleep (kernel/time/sleep_timeout.c:363) \
             while holding `sleepy_lock` (taken in sleepy::nap)"
        );
        // Without lockdep there is no list of held locks.
        let fast: Vec<String> = log.iter().filter(|l| !l.contains('#')).cloned().collect();
        assert!(read(&fast, 0).unwrap().cause.ends_with("with preemption disabled (since sleepy::nap: a spinlock held?)"));
        let bare: Vec<String> = fast.iter().filter(|l| !l.contains("Preemption") && !l.starts_with("[<")).cloned().collect();
        assert!(
            read(&bare, 0).unwrap().cause.ends_with("with preemption disabled (preempt_count 1: a spinlock held?)"),
            "{:?}",
            read(&bare, 0)
        );
    }

    #[test]
    fn debug_objects_and_other_lockdep_reports() {
        let log = lines("ODEBUG: free active (active state 0) object: 000000001 object type: hrtimer hint: _RNvCs1234abcd_6timers4tick+0x0/0x10 [timers]");
        assert_eq!(
            read(&log, 0).unwrap().cause,
            "debug objects: free active (active state 0) hrtimer (its function: timers::tick) in timers::tick"
        );
        let log = lines(
            "WARNING: possible recursive locking detected\ninsmod/1 is trying to acquire lock:\n\
             ffff (m){+.+.}-{4:4}, at: _RNvCs1_1m1f+0x1/0x2 [m]\n\nbut task is already holding lock:\nffff (m){+.+.}-{4:4}, at: _RNvCs1_1m1g+0x1/0x2 [m]\n",
        );
        assert_eq!(
            read(&log, 0).unwrap().cause,
            "lockdep: possible recursive locking: `m` is taken in m::f while already held (first taken in m::g): a deadlock"
        );
        assert!(read(&lines("hello: loaded"), 0).is_none());
    }
}
