// SPDX-License-Identifier: GPL-2.0

//! `wbsteps`: the guest's step runner, started once by `/init` (see the
//! protocol at the top of `qemu-images/init`). It reads the run's marker
//! prefix (`@@WB TOKEN`) as the first line of its standard input and the
//! steps from the file it is given:
//!
//! ```text
//! chapter NAME            later steps run in /chapters/NAME
//! step N SECONDS LEN      then LEN bytes of shell command and a newline
//! cleanup N MODULE...     name and remove any MODULE still loaded
//! ```
//!
//! Each step runs as `sh -c COMMAND` in a session of its own, under a
//! deadline; then the runner prints its exit status and the kernel log
//! since the previous step. One process for every step, where the shell
//! forked a watchdog, a `setsid` and a `dmesg` for each: on the debug
//! kernel a process costs tens of milliseconds.
//!
//! A step starts with every signal at its default action (busybox `sh` ran
//! its background jobs with SIGINT and SIGQUIT ignored), standard input
//! from `/dev/null`, and its output and errors on the host's line.

use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// What the kernel log shows after an oops: the chapter's remaining steps
/// are skipped (its module is usually stuck half-loaded, so they would only
/// wait).
const BROKEN: &[&str] = &["Oops", "BUG:", "kernel BUG at", "general protection fault"];

/// How long killed tasks get to go before they count as hung.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// `klogctl`'s actions that read the log and clear it, and that give its
/// size (`include/linux/syslog.h`).
const SYSLOG_ACTION_READ_CLEAR: libc::c_int = 4;
const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;

/// One line of the steps file.
enum Entry {
    Chapter(String),
    Step { n: usize, seconds: u64, command: String },
    Cleanup { n: usize, modules: Vec<String> },
}

/// Reads the steps file `text`.
fn parse(mut text: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    while !text.is_empty() {
        let end = text.iter().position(|&b| b == b'\n').ok_or("a line without its newline")?;
        let line = std::str::from_utf8(&text[..end]).map_err(|_| "a line that is not UTF-8")?;
        text = &text[end + 1..];
        let words: Vec<&str> = line.split(' ').collect();
        let number = |word: Option<&&str>| -> Result<u64, String> {
            word.and_then(|w| w.parse().ok()).ok_or_else(|| format!("`{line}`: a number is missing"))
        };
        match words[0] {
            "chapter" if words.len() == 2 => entries.push(Entry::Chapter(words[1].to_string())),
            "step" if words.len() == 4 => {
                let len = number(words.get(3))? as usize;
                if text.len() <= len || text[len] != b'\n' {
                    return Err(format!("`{line}`: the command is not {len} bytes and a newline"));
                }
                let command = String::from_utf8(text[..len].to_vec()).map_err(|_| "a command that is not UTF-8")?;
                text = &text[len + 1..];
                entries.push(Entry::Step { n: number(words.get(1))? as usize, seconds: number(words.get(2))?, command });
            }
            "cleanup" if words.len() >= 2 => entries.push(Entry::Cleanup {
                n: number(words.get(1))? as usize,
                modules: words[2..].iter().filter(|m| !m.is_empty()).map(|m| m.to_string()).collect(),
            }),
            _ => return Err(format!("`{line}`: not a line of a steps file")),
        }
    }
    Ok(entries)
}

/// The runner's state between steps.
struct Runner {
    /// `@@WB TOKEN`.
    mark: String,
    /// The current chapter's `PATH`.
    path: String,
    /// An earlier step of the chapter oopsed: the rest are skipped.
    broken: bool,
    /// The chapter's modules did not build: it says nothing at all.
    unbuilt: bool,
}

impl Runner {
    /// Prints a marker line; at once, so that it comes between the steps'
    /// own output, which goes to the same terminal.
    fn mark(&self, what: std::fmt::Arguments<'_>) {
        say(format_args!("{} {what}\n", self.mark));
    }

    fn chapter(&mut self, name: &str) -> Result<(), String> {
        self.broken = false;
        let unbuilt = std::fs::read_to_string("/workbook/unbuilt").unwrap_or_default();
        self.unbuilt = unbuilt.lines().any(|l| l == name);
        if self.unbuilt {
            return Ok(());
        }
        let dir = format!("/chapters/{name}");
        std::env::set_current_dir(&dir).map_err(|e| format!("cannot enter {dir}: {e}"))?;
        self.path = format!("/bin:{dir}");
        Ok(())
    }

    fn step(&mut self, n: usize, seconds: u64, command: &str) -> Result<(), String> {
        if self.unbuilt {
            return Ok(());
        }
        self.mark(format_args!("begin {n}"));
        if self.broken {
            self.mark(format_args!("skipped {n}"));
            self.mark(format_args!("end {n}"));
            return Ok(());
        }
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c").arg(command).env("PATH", &self.path).stdin(Stdio::null());
        // SAFETY: `pre_exec` requires the closure to be async-signal-safe, as
        // it runs in the forked child before exec; `setsid` is, and touches
        // no memory of the parent's.
        unsafe {
            // A session of its own, so that whatever the step left running
            // in the background (a reader holding a device open...) is
            // ended with it.
            sh.pre_exec(|| if libc::setsid() < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
        }
        // Waited for below, by pid: the `Child` is not kept.
        let pid = sh.spawn().map_err(|e| format!("cannot run /bin/sh: {e}"))?.id() as libc::pid_t;
        let status = match wait_for(pid, Some(Duration::from_secs(seconds)))? {
            Some(status) => status,
            None => {
                self.mark(format_args!("stuck {n}"));
                let tasks = tree(pid);
                for &task in &tasks {
                    show_threads(task);
                }
                for &task in &tasks {
                    // SAFETY: `kill` has no memory-safety preconditions.
                    unsafe { libc::kill(task, libc::SIGKILL) };
                }
                match wait_for(pid, Some(KILL_GRACE))? {
                    Some(status) => status,
                    None => {
                        // The step's shell is stuck in the kernel: the host
                        // stops the guest when it reads this. (A command it
                        // ran that outlives SIGKILL, deadlocked in a module,
                        // is not waited for: the step ends, and its kernel
                        // log, a lockdep report maybe, is still read.)
                        self.mark(format_args!("hung {n}"));
                        wait_for(pid, None)?.expect("a wait without a deadline ends with the child")
                    }
                }
            }
        };
        // SAFETY: `kill` has no memory-safety preconditions; a negative pid
        // names the step's process group, which its session leader made.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        self.mark(format_args!("exit {n} {}", shell_status(status)));
        self.dmesg(n);
        Ok(())
    }

    fn cleanup(&mut self, n: usize, modules: &[String]) {
        if self.unbuilt {
            return;
        }
        self.mark(format_args!("begin {n}"));
        let loaded = std::fs::read_to_string("/proc/modules").unwrap_or_default();
        for module in modules {
            if loaded.lines().any(|l| l.split(' ').next() == Some(module.as_str())) {
                say(format_args!("still loaded: {module}\n"));
                let _ = Command::new("/bin/rmmod").arg(module).stdin(Stdio::null()).status();
            }
        }
        self.mark(format_args!("exit {n} 0"));
        self.dmesg(n);
    }

    /// The kernel log since the last step, as `dmesg -c` prints it.
    fn dmesg(&mut self, n: usize) {
        self.mark(format_args!("dmesg {n}"));
        let log = read_clear_log();
        if !log.is_empty() {
            say(format_args!("{log}\n"));
        }
        self.mark(format_args!("end {n}"));
        if BROKEN.iter().any(|b| log.contains(b)) {
            self.broken = true;
        }
    }
}

/// Writes to standard output (the host's line, ttyS1) at once.
fn say(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(text);
    let _ = out.flush();
}

/// Waits for child `pid` to end, at most `deadline`; its status, or `None`
/// when the deadline passed first.
fn wait_for(pid: libc::pid_t, deadline: Option<Duration>) -> Result<Option<std::process::ExitStatus>, String> {
    // SAFETY: `syscall` passes its variadic arguments as `long`s, as the
    // kernel's `pidfd_open(pid_t, unsigned int)` takes them here; it
    // returns a new descriptor, owned below, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long) };
    if fd < 0 {
        return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened by pidfd_open and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let until = deadline.map(|d| Instant::now() + d);
    loop {
        let timeout = until.map_or(-1, |t| t.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as libc::c_int);
        let mut poll = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `poll` reads and writes one `pollfd`, which lives on this
        // stack frame for the whole call.
        match unsafe { libc::poll(&mut poll, 1, timeout) } {
            0 => return Ok(None),
            n if n > 0 => break,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return Err(format!("poll: {}", std::io::Error::last_os_error())),
        }
    }
    let mut status = 0;
    // SAFETY: `waitpid` writes the status to the `c_int` it is given, which
    // lives on this stack frame.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    Ok(Some(std::process::ExitStatus::from_raw(status)))
}

/// The status as the shell's `$?` gives it: 128 + the signal for a killed
/// process.
fn shell_status(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// `pid` and all its descendants.
fn tree(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut parents: Vec<(libc::pid_t, libc::pid_t)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(task) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{task}/stat")) else { continue };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parents.push((task, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(task, _)| *task));
        i += 1;
    }
    found
}

/// Where each thread of `pid` is in the kernel: one may be stuck where the
/// others wait.
fn show_threads(pid: libc::pid_t) {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
    for thread in threads.flatten() {
        let dir = thread.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let state = status.lines().find(|l| l.starts_with("State:")).unwrap_or_default();
        let stack = std::fs::read_to_string(dir.join("stack")).unwrap_or_default();
        say(format_args!("task {} ({}) {state}, kernel stack:\n{stack}", thread.file_name().to_string_lossy(), comm.trim_end()));
    }
}

/// Reads and clears the kernel log as busybox `dmesg -c` prints it: the
/// whole ring buffer (its size clamped to 16 KiB to 16 MiB), without the
/// `<LEVEL>` at the start of each line; here without a last newline.
fn read_clear_log() -> String {
    // SAFETY: SYSLOG_ACTION_SIZE_BUFFER reads and writes no buffer.
    let size = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    let mut buf = vec![0u8; size.clamp(16 << 10, 16 << 20) as usize];
    // SAFETY: klogctl writes at most its third argument's count of bytes to
    // its second, which holds that many.
    let len = unsafe { libc::klogctl(SYSLOG_ACTION_READ_CLEAR, buf.as_mut_ptr().cast(), buf.len() as libc::c_int) };
    if len < 0 {
        eprintln!("wbsteps: klogctl: {}", std::io::Error::last_os_error());
    }
    buf.truncate(len.max(0) as usize);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|mut line| {
            while let Some((_, rest)) = line.strip_prefix('<').and_then(|rest| rest.split_once('>')) {
                line = rest;
            }
            line
        })
        .collect();
    lines.join("\n").trim_end_matches('\n').to_string()
}

fn run() -> Result<(), String> {
    let file = std::env::args().nth(1).ok_or("usage: wbsteps STEPS-FILE (the marker prefix on standard input)")?;
    let mut mark = String::new();
    std::io::stdin().lock().read_line(&mut mark).map_err(|e| format!("cannot read the marker: {e}"))?;
    let mark = mark.trim_end().to_string();
    if !mark.starts_with("@@WB ") {
        return Err("the first line of standard input is not the marker prefix".into());
    }
    let mut text = Vec::new();
    std::fs::File::open(&file).and_then(|mut f| f.read_to_end(&mut text)).map_err(|e| format!("cannot read {file}: {e}"))?;
    let entries = parse(&text).map_err(|e| format!("{file}: {e}"))?;
    let mut runner = Runner { mark, path: "/bin".into(), broken: false, unbuilt: false };
    for entry in entries {
        match entry {
            Entry::Chapter(name) => runner.chapter(&name)?,
            Entry::Step { n, seconds, command } => runner.step(n, seconds, &command)?,
            Entry::Cleanup { n, modules } => runner.cleanup(n, &modules),
        }
    }
    Ok(())
}

pub(crate) fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // On the host's line, and in the kernel log, which the host
            // shows when the steps end early.
            eprintln!("wbsteps: {e}");
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .and_then(|mut kmsg| kmsg.write_all(format!("wbsteps: {e}\n").as_bytes()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Entry};

    #[test]
    fn a_steps_file_is_read_back_as_written() {
        let command = "echo 'it''s' \"two\nlines\" \u{e9}t\u{e9}";
        let text = format!("chapter 01-hello\nstep 0 10 {}\n{command}\ncleanup 1 hello other\ncleanup 2 \n", command.len());
        let entries = parse(text.as_bytes()).unwrap();
        assert!(matches!(&entries[0], Entry::Chapter(name) if name == "01-hello"));
        assert!(matches!(&entries[1], Entry::Step { n: 0, seconds: 10, command: c } if c == command));
        assert!(matches!(&entries[2], Entry::Cleanup { n: 1, modules } if modules == &["hello", "other"]));
        assert!(matches!(&entries[3], Entry::Cleanup { n: 2, modules } if modules.is_empty()));
        assert!(parse(b"step 0 10 99\nshort\n").is_err(), "a command shorter than its length");
        assert!(parse(b"wb_step 0 10 'true'\n").is_err(), "the old shell format");
    }
}
