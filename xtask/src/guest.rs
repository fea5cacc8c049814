// SPDX-License-Identifier: GPL-2.0

//! The QEMU guest: its initramfs (busybox, the `/init` from `qemu-images/`,
//! the run's files) and one supervised boot. The supervisor reads the step
//! markers as they arrive and enforces a deadline on boot, on every step and
//! on the whole run; QEMU is killed on every path out, and dies with the
//! harness if the harness itself is killed.
//!
//! A guest may boot before all its files exist: those still being made
//! (modules in the middle of their build) are sent once the guest asks,
//! over ttyS1, which is a pair of FIFOs the supervisor reads and writes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use xshell::{cmd, Shell};

use crate::initramfs::Cpio;
use crate::paths::{read_to_string, Project};
use crate::toolchain::Toolchain;
use crate::transcript::{Marker, MARKER_PREFIX};
use crate::Result;
use anyhow::{anyhow, Context};

/// How long the guest may take to boot (to `/init`'s `ready` marker). The
/// clock stops while the guest waits for late files the host is still
/// making, and runs again from the last moment the transfer moved.
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
    /// Whether `/init` waits for late files before its steps.
    pub(crate) late: bool,
}

/// Files a booting guest waits for: they are sent when they come. A sender
/// dropped without sending cancels the boot (what it waited for failed).
pub(crate) type LateFiles = Receiver<Vec<GuestFile>>;

/// Builds the guest's initramfs with `steps` as `/workbook/steps.sh` and a
/// fresh marker token as `/workbook/token`; with `late`, `/init` asks for
/// more files (see [`LateFiles`]) before the steps run.
pub(crate) fn initramfs(project: &Project, tc: &Toolchain, steps: &str, files: &[GuestFile], late: bool) -> Result<Initramfs> {
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
    if late {
        cpio.file("workbook/late", 0o644, b"");
    }
    add_files(&mut cpio, files);
    Ok(Initramfs { bytes: cpio.finish(), token, late })
}

/// What the guest reads for its late files (see `wb_receive` in `/init`):
/// the length of what follows on a line, then the files as a gzipped cpio
/// archive. Modules compress about fourfold, and the serial line carries
/// about 200 KB/s.
fn late_payload(files: &[GuestFile]) -> Result<Vec<u8>> {
    let mut cpio = Cpio::new();
    add_files(&mut cpio, files);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&cpio.finish())?;
    let archive = gz.finish()?;
    let mut payload = format!("{}\n", archive.len()).into_bytes();
    payload.extend(archive);
    Ok(payload)
}

/// Puts `files` into `cpio`, links as links.
fn add_files(cpio: &mut Cpio, files: &[GuestFile]) {
    for file in files {
        match &file.link {
            Some(target) => cpio.symlink(&file.guest_path, target),
            None => cpio.file(&file.guest_path, file.mode, &file.data),
        };
    }
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
    /// The guest did not boot within [`BOOT_DEADLINE`].
    BootTimeout,
    /// Step N did not end within its limit.
    StepTimeout(usize),
    /// The console passed [`CONSOLE_LIMIT_BYTES`].
    ConsoleFlood,
    /// The host stopped the guest after step N: what the run waited for
    /// (a negative test's expected failure) had been seen.
    Stopped(usize),
    /// The late files never came (their build failed): the guest was
    /// stopped before its first step.
    Cancelled,
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

/// Boots the guest with `initramfs`, sending it `late` files when they
/// come if it waits for any; `step_limits[n]` bounds step `n`, and
/// `stop_after` may end the run once a step is over.
pub(crate) fn boot(
    config: &BootConfig,
    initramfs: &Initramfs,
    late: Option<LateFiles>,
    step_limits: &[Duration],
    stop_after: StopAfter,
) -> Result<Boot> {
    if initramfs.late != late.is_some() {
        return Err(anyhow!("the guest waits for late files if and only if some are coming"));
    }
    std::fs::create_dir_all(&config.work_dir)?;
    let initrd = config.work_dir.join("initramfs.cpio");
    let console_path = config.work_dir.join("console.log");
    let transcript_path = config.work_dir.join("transcript.log");
    std::fs::write(&initrd, &initramfs.bytes)?;
    std::fs::write(&console_path, b"")?;
    // ttyS1: QEMU's `pipe` backend reads PATH.in and writes PATH.out. Both
    // are opened here for reading and writing first, so that neither open
    // waits for the other end, and neither end ever sees end-of-file.
    let tty = config.work_dir.join("ttyS1");
    let fifo = |suffix: &str| -> Result<std::fs::File> {
        let path = tty.with_extension(suffix);
        let _ = std::fs::remove_file(&path);
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: `c_path` is a NUL-terminated string that lives across the
        // call; mkfifo(3) only reads it.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(anyhow!("cannot make the FIFO {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        Ok(std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(&path)?)
    };
    let mut channel = Channel { to_guest: fifo("in")?, from_guest: fifo("out")?, transcript: std::fs::File::create(&transcript_path)? };
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
        .arg("-chardev")
        .arg(format!("pipe,id=wb,path={}", tty.display()))
        .args(["-serial", "chardev:wb"])
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
    let ending = supervise(&mut child, &console_path, &mut channel, late, &initramfs.token, step_limits, stop_after, &mut seen)?;
    drop(child);
    // What the guest wrote after the supervisor's last look, up to its end.
    channel.read(&mut Vec::new())?;
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

/// The host's ends of ttyS1, and the log of what the guest said on it.
struct Channel {
    /// Where QEMU reads the guest's input (opened non-blocking).
    to_guest: std::fs::File,
    /// Where QEMU writes the guest's output (opened non-blocking).
    from_guest: std::fs::File,
    /// `transcript.log`: everything read from `from_guest`.
    transcript: std::fs::File,
}

impl Channel {
    /// Appends to `into` (and to the log) what the guest wrote since the
    /// last call.
    fn read(&mut self, into: &mut Vec<u8>) -> Result<()> {
        let mut buffer = [0u8; 1 << 16];
        loop {
            match self.from_guest.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.transcript.write_all(&buffer[..n])?;
                    into.extend_from_slice(&buffer[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes as much of `data[*sent..]` as the FIFO takes now.
    fn write(&mut self, data: &[u8], sent: &mut usize) -> Result<()> {
        while *sent < data.len() {
            match self.to_guest.write(&data[*sent..]) {
                Ok(n) => *sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Late files on their way to the guest.
enum Sending {
    /// Not come yet from the host's side.
    Awaited(LateFiles),
    /// The payload, how much of it the FIFO took, and when that last grew
    /// (a guest that stops reading is stuck: the boot deadline runs).
    Going(Vec<u8>, usize, Instant),
    /// All of it, at this moment.
    Sent(Instant),
}

/// Watches the transcript until the run ends one way or another.
#[allow(clippy::too_many_arguments)]
fn supervise(
    qemu: &mut Qemu,
    console: &Path,
    channel: &mut Channel,
    late: Option<LateFiles>,
    token: &str,
    step_limits: &[Duration],
    stop_after: StopAfter,
    observed: &mut Observed,
) -> Result<Ending> {
    let status_file = format!("/proc/{}/status", qemu.0.id());
    let started = Instant::now();
    let mut sending = late.map(Sending::Awaited);
    // What the guest wrote that is not a whole line yet.
    let mut pending = Vec::new();
    // Every whole line read so far, for `stop_after`.
    let mut seen = String::new();
    let mut booted = false;
    let mut wanted = false;
    let mut current: Option<(usize, Instant)> = None;
    let mut done_at: Option<Instant> = None;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file).ok().as_deref().and_then(high_water_mark_kb) {
            observed.peak_rss_kb = hwm;
        }
        if let Some(status) = qemu.0.try_wait()? {
            channel.read(&mut pending)?;
            let rest = String::from_utf8_lossy(&pending);
            let completed = done_at.is_some() || rest.lines().any(|l| Marker::parse(l, token) == Some(Marker::Done));
            if !completed && !status.success() && !booted && !wanted && seen.is_empty() && rest.is_empty() {
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
        if let Some(Sending::Awaited(files)) = &sending {
            match files.try_recv() {
                Ok(files) => sending = Some(Sending::Going(late_payload(&files)?, 0, Instant::now())),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Ok(Ending::Cancelled),
            }
        }
        if let (true, Some(Sending::Going(payload, sent, moved))) = (wanted, &mut sending) {
            let before = *sent;
            channel.write(payload, sent)?;
            if *sent > before {
                *moved = Instant::now();
            }
            if *sent == payload.len() {
                sending = Some(Sending::Sent(Instant::now()));
            }
        }
        channel.read(&mut pending)?;
        while let Some(newline) = pending.iter().position(|&b| b == b'\n') {
            let bytes: Vec<u8> = pending.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&bytes);
            seen.push_str(&line);
            match Marker::parse(line.trim_end(), token) {
                Some(Marker::Want) => wanted = true,
                Some(Marker::Lost) => {
                    return Err(anyhow!("the guest could not unpack the files sent to it on ttyS1 (a bug in the harness)"))
                }
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
        // Booting has a deadline, except while the guest waits for files
        // the host is still making: from the start, or from the last moment
        // the transfer moved.
        let boot_clock = match &sending {
            Some(Sending::Sent(at)) => Some(*at),
            Some(Sending::Going(_, _, moved)) if wanted => Some(*moved),
            Some(Sending::Awaited(_)) if wanted => None,
            _ => Some(started),
        };
        if let Some(at) = done_at {
            // `reboot -f` ends QEMU within moments; don't wait on it forever.
            if at.elapsed() > Duration::from_secs(5) {
                return Ok(Ending::Completed);
            }
        } else if !booted && boot_clock.is_some_and(|since| since.elapsed() > BOOT_DEADLINE) {
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
        let busy = booted || matches!(sending, Some(Sending::Going(..)));
        std::thread::sleep(Duration::from_millis(if busy { 10 } else { 25 }));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_files_are_a_length_line_then_a_gzipped_cpio() {
        let files =
            [GuestFile { guest_path: "/chapters/01-hello/hello.ko".into(), data: b"\x7fELF module".to_vec(), mode: 0o644, link: None }];
        let payload = late_payload(&files).unwrap();
        let newline = payload.iter().position(|&b| b == b'\n').unwrap();
        let length: usize = std::str::from_utf8(&payload[..newline]).unwrap().parse().unwrap();
        assert_eq!(length, payload.len() - newline - 1, "the line gives the length of what follows, exactly");
        let mut cpio = Vec::new();
        flate2::read::GzDecoder::new(&payload[newline + 1..]).read_to_end(&mut cpio).unwrap();
        let text = String::from_utf8_lossy(&cpio);
        assert!(text.starts_with("070701"), "newc format");
        assert!(text.contains("chapters/01-hello/hello.ko\0") && text.contains("\x7fELF module"));
        assert!(text.contains("TRAILER!!!"));
    }
}
