// SPDX-License-Identifier: GPL-2.0

//! The QEMU guest: its initramfs (busybox, the `/init` from `qemu-images/`,
//! the run's files) and one supervised boot. The supervisor reads the step
//! markers as they arrive and enforces a deadline on boot, on every step and
//! on the whole run; QEMU is killed on every path out, and dies with the
//! harness if the harness itself is killed.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xshell::{cmd, Shell};

use crate::initramfs::Cpio;
use crate::paths::{read_to_string, Project};
use crate::toolchain::Toolchain;
use crate::transcript::{Marker, MARKER_PREFIX};
use crate::Result;
use anyhow::{anyhow, Context};

/// How long the guest may take to reach `/init`'s first marker.
pub(crate) const BOOT_DEADLINE: Duration = Duration::from_secs(60);
/// Extra time the host allows a step beyond the guest's own time limit.
pub(crate) const HOST_GRACE: Duration = Duration::from_secs(10);
/// More console output than this is a flood: the run is stopped.
pub(crate) const CONSOLE_LIMIT_BYTES: u64 = 16 << 20;
/// The kernel command line. `panic=-1` with `-no-reboot` makes a panic end
/// QEMU at once; a soft lockup (a spinning module) panics after 8 s with the
/// spinning function named. No legacy BSD ptys (registering their 256
/// devices took 1.4 s of every debug boot, measured with `initcall_debug`)
/// and two serial ports probed, not four: the guest uses ttyS0 and ttyS1.
pub(crate) const KERNEL_CMDLINE: &str =
    "console=ttyS0 quiet panic=-1 softlockup_panic=1 watchdog_thresh=4 pty.legacy_count=0 8250.nr_uarts=2";

/// A file to put into the guest.
#[derive(Debug, Clone)]
pub(crate) struct GuestFile {
    /// Absolute path in the guest.
    pub(crate) guest_path: String,
    /// Contents.
    pub(crate) data: Vec<u8>,
    /// Permission bits.
    pub(crate) mode: u32,
    /// When set, the file is a symbolic link to this path and has no data.
    pub(crate) link: Option<String>,
}

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accel {
    /// Software emulation: slow but works everywhere.
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

/// A guest's initramfs and the token its markers carry.
#[derive(Debug, Clone)]
pub(crate) struct Initramfs {
    /// The cpio archive.
    pub(crate) bytes: Vec<u8>,
    /// The run's marker token (see [`crate::transcript::new_token`]).
    pub(crate) token: String,
}

/// Builds the guest's initramfs with `steps` as `/workbook/steps.sh` and a
/// fresh marker token as `/workbook/token`.
pub(crate) fn initramfs(project: &Project, tc: &Toolchain, steps: &str, files: &[GuestFile]) -> Result<Initramfs> {
    let init = read_to_string(&project.qemu_images_dir().join("init"))?;
    let busybox = std::fs::read(&tc.busybox)?;
    let mut cpio = Cpio::new();
    for dir in ["proc", "sys", "dev", "tmp", "root", "chapters", "workbook"] {
        cpio.dir(dir);
    }
    cpio.char_device("dev/console", 5, 1);
    cpio.file("init", 0o755, init.as_bytes());
    cpio.file("bin/busybox", 0o755, &busybox);
    for applet in busybox_applets(tc)? {
        if applet != "busybox" {
            cpio.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    cpio.file("workbook/steps.sh", 0o644, steps.as_bytes());
    let token = crate::transcript::new_token();
    cpio.file("workbook/token", 0o600, token.as_bytes());
    for file in files {
        match &file.link {
            Some(target) => cpio.symlink(&file.guest_path, target),
            None => cpio.file(&file.guest_path, file.mode, &file.data),
        };
    }
    Ok(Initramfs { bytes: cpio.finish(), token })
}

fn busybox_applets(tc: &Toolchain) -> Result<Vec<String>> {
    let sh = Shell::new()?;
    let busybox = &tc.busybox;
    let list = cmd!(sh, "{busybox} --list").quiet().read()?;
    Ok(list.lines().map(str::to_string).filter(|a| !a.contains('/')).collect())
}

/// What a boot produced.
#[derive(Debug, Clone)]
pub(crate) struct Boot {
    /// Everything the kernel printed on the console (ttyS0).
    pub(crate) console: String,
    /// Everything `/init` printed (ttyS1): markers, output, dmesg slices.
    pub(crate) transcript: String,
    /// The token of this boot's markers.
    pub(crate) token: String,
    /// How the boot ended.
    pub(crate) ending: Ending,
    /// Wall time from QEMU's start to its end.
    pub(crate) elapsed: Duration,
    /// QEMU's peak resident memory in KiB (its high-water mark as last seen).
    pub(crate) peak_rss_kb: u64,
    /// How long each step that ended took, from its begin marker to its end.
    pub(crate) step_times: BTreeMap<usize, Duration>,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every step ran and the guest powered off.
    Completed,
    /// QEMU exited before the last step: the kernel panicked or the guest
    /// rebooted.
    GuestDied,
    /// The guest never reached `/init`'s first marker.
    BootTimeout,
    /// Step N did not end within its limit.
    StepTimeout(usize),
    /// The console passed [`CONSOLE_LIMIT_BYTES`].
    ConsoleFlood,
    /// The host stopped the guest after step N: what the run waited for
    /// (a negative test's expected failure) had been seen.
    Stopped(usize),
}

/// One QEMU invocation.
#[derive(Debug, Clone)]
pub(crate) struct BootConfig {
    /// The emulator.
    pub(crate) qemu: PathBuf,
    /// The kernel image.
    pub(crate) image: PathBuf,
    /// Where the run's files (initramfs, logs) go.
    pub(crate) work_dir: PathBuf,
    /// How QEMU runs the guest.
    pub(crate) accel: Accel,
    /// Guest memory.
    pub(crate) memory_mb: u32,
    /// What the kernel's flavour adds to [`KERNEL_CMDLINE`].
    pub(crate) cmdline_extra: &'static str,
    /// The size of TCG's cache of translated code, when capped (QEMU's
    /// default grows it to hundreds of MiB, most of the emulator's memory).
    pub(crate) tcg_cache_mib: Option<u32>,
}

/// Kills QEMU when dropped, on every path out of [`boot`].
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Decides, when step N has ended, whether the run may stop there; it is
/// given N and the transcript so far.
pub(crate) type StopAfter<'a> = &'a mut dyn FnMut(usize, &str) -> bool;

/// Boots the guest with `initramfs`; `step_limits[n]` bounds step `n`, and
/// `stop_after` may end the run once a step is over.
pub(crate) fn boot(config: &BootConfig, initramfs: &Initramfs, step_limits: &[Duration], stop_after: StopAfter) -> Result<Boot> {
    std::fs::create_dir_all(&config.work_dir)?;
    let initrd = config.work_dir.join("initramfs.cpio");
    let console_path = config.work_dir.join("console.log");
    let transcript_path = config.work_dir.join("transcript.log");
    std::fs::write(&initrd, &initramfs.bytes)?;
    for log in [&console_path, &transcript_path] {
        std::fs::write(log, b"")?;
    }
    let tcg = match config.tcg_cache_mib {
        Some(mib) => format!("tcg,tb-size={mib}"),
        None => "tcg".to_string(),
    };
    let mut qemu = Command::new(&config.qemu);
    qemu.args(["-accel", if config.accel == Accel::Kvm { "kvm" } else { &tcg }])
        .args(["-m", &config.memory_mb.to_string(), "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-monitor", "none"])
        .arg("-kernel")
        .arg(&config.image)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", &format!("{KERNEL_CMDLINE}{}", config.cmdline_extra)])
        .arg("-serial")
        .arg(format!("file:{}", console_path.display()))
        .arg("-serial")
        .arg(format!("file:{}", transcript_path.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only prctl, which is async-signal-safe; it allocates nothing.
    unsafe {
        qemu.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = Qemu(qemu.spawn().with_context(|| format!("cannot start {}", config.qemu.display()))?);
    let mut seen = Observed::default();
    let ending = supervise(&mut child, &console_path, &transcript_path, &initramfs.token, step_limits, stop_after, &mut seen)?;
    drop(child);
    let elapsed = started.elapsed();
    let console = String::from_utf8_lossy(&std::fs::read(&console_path)?).replace('\r', "");
    let transcript = String::from_utf8_lossy(&std::fs::read(&transcript_path)?).replace('\r', "");
    Ok(Boot {
        console,
        transcript,
        token: initramfs.token.clone(),
        ending,
        elapsed,
        peak_rss_kb: seen.peak_rss_kb,
        step_times: seen.step_times,
    })
}

/// What [`supervise`] measures while it watches.
#[derive(Default)]
struct Observed {
    /// QEMU's peak resident memory in KiB.
    peak_rss_kb: u64,
    /// Each ended step's time.
    step_times: BTreeMap<usize, Duration>,
}

/// Watches the transcript until the run ends one way or another.
fn supervise(
    qemu: &mut Qemu,
    console: &Path,
    transcript: &Path,
    token: &str,
    step_limits: &[Duration],
    stop_after: StopAfter,
    observed: &mut Observed,
) -> Result<Ending> {
    let status_file = format!("/proc/{}/status", qemu.0.id());
    let started = Instant::now();
    let mut reader = std::fs::File::open(transcript)?;
    let mut pending = String::new();
    // Every whole line read so far, for `stop_after`.
    let mut seen = String::new();
    let mut booted = false;
    let mut current: Option<(usize, Instant)> = None;
    let mut done_at: Option<Instant> = None;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file).ok().as_deref().and_then(high_water_mark_kb) {
            observed.peak_rss_kb = hwm;
        }
        if let Some(status) = qemu.0.try_wait()? {
            let mut rest = String::new();
            reader.read_to_string(&mut rest)?;
            pending.push_str(&rest);
            let completed = done_at.is_some() || pending.lines().any(|l| Marker::parse(l, token) == Some(Marker::Done));
            if !completed && !status.success() && !booted && pending.is_empty() {
                let mut stderr = String::new();
                if let Some(mut err) = qemu.0.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                if !stderr.trim().is_empty() {
                    return Err(anyhow!("QEMU failed to start the guest: {}", stderr.trim()));
                }
            }
            return Ok(if completed { Ending::Completed } else { Ending::GuestDied });
        }
        let mut chunk = String::new();
        reader.read_to_string(&mut chunk)?;
        pending.push_str(&chunk);
        while let Some(newline) = pending.find('\n') {
            let line: String = pending.drain(..=newline).collect();
            seen.push_str(&line);
            match Marker::parse(line.trim_end(), token) {
                Some(Marker::Ready) => booted = true,
                Some(Marker::Begin(n)) => current = Some((n, Instant::now())),
                Some(Marker::End(n)) => {
                    if let Some((_, since)) = current.take() {
                        observed.step_times.insert(n, since.elapsed());
                    }
                    if stop_after(n, &seen) {
                        return Ok(Ending::Stopped(n));
                    }
                }
                // The guest says the step is stuck in the kernel for good.
                Some(Marker::Hung(n)) => return Ok(Ending::StepTimeout(n)),
                Some(Marker::Done) => done_at = Some(Instant::now()),
                _ => {}
            }
        }
        if let Some(at) = done_at {
            // `reboot -f` ends QEMU within moments; don't wait on it forever.
            if at.elapsed() > Duration::from_secs(5) {
                return Ok(Ending::Completed);
            }
        } else if !booted && started.elapsed() > BOOT_DEADLINE {
            return Ok(Ending::BootTimeout);
        } else if let Some((n, since)) = current {
            let limit = step_limits.get(n).copied().unwrap_or(Duration::from_secs(60)) + HOST_GRACE;
            if since.elapsed() > limit {
                return Ok(Ending::StepTimeout(n));
            }
        }
        if std::fs::metadata(console).map(|m| m.len()).unwrap_or(0) > CONSOLE_LIMIT_BYTES {
            return Ok(Ending::ConsoleFlood);
        }
        std::thread::sleep(Duration::from_millis(if booted { 10 } else { 25 }));
    }
}

/// `VmHWM` of a `/proc/PID/status` text, in KiB.
fn high_water_mark_kb(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// The marker prefix must never appear in a step's command line, or the
/// echo of a command could be taken for a marker.
pub(crate) fn check_no_marker(text: &str) -> Result<()> {
    if text.contains(MARKER_PREFIX) {
        return Err(anyhow!("`{MARKER_PREFIX}` is reserved for the harness's guest protocol"));
    }
    Ok(())
}
