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
//!
//! Most guests do not even boot: they resume a saved guest that booted once
//! (see [`Snapshot`]), and are sent their steps and files the same way.

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
/// More console output than this is a flood: the run is stopped. Every
/// chapter in one debug guest prints about 32 KiB; the emulated UART takes
/// about a second per MiB, so a higher limit only makes a flood's verdict
/// later (16 MiB took 12 s of a grading run).
pub(crate) const CONSOLE_LIMIT_BYTES: u64 = 4 << 20;
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
    /// The cpio archive, for a guest that boots.
    pub(crate) bytes: Vec<u8>,
    /// The run's marker token (see [`crate::transcript::new_token`]).
    pub(crate) token: String,
    /// Whether `/init` waits for late files before its steps.
    pub(crate) late: bool,
    /// What every guest of its kind shares (busybox, `/init`, the shared
    /// files): the archive a snapshot is booted from (see [`Snapshot`]).
    base: Vec<u8>,
    /// What a guest resumed from a snapshot is sent instead of the rest of
    /// `bytes`: the steps, the token and the run's own files.
    run_files: Vec<GuestFile>,
}

/// The marker token of a guest booted to be saved: it only says `want`
/// before it is saved; the resumed guest reads its run's token from the
/// files it is sent.
const SNAPSHOT_TOKEN: &str = "5a5a5a5a5a5a5a5a";

/// Files a booting guest waits for: they are sent when they come. A sender
/// dropped without sending cancels the boot (what it waited for failed).
pub(crate) type LateFiles = Receiver<Vec<GuestFile>>;

/// Builds the guest's initramfs with `steps` as `/workbook/steps` and a
/// fresh marker token as `/workbook/token`; with `late`, `/init` asks for
/// more files (see [`LateFiles`]) before the steps run. `shared` are files
/// that many runs have alike (the guest programs): a snapshot holds them.
pub(crate) fn initramfs(
    project: &Project,
    tc: &Toolchain,
    steps: &str,
    shared: &[GuestFile],
    files: &[GuestFile],
    late: bool,
) -> Result<Initramfs> {
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
    add_files(&mut cpio, shared);
    let mut base = cpio.clone();
    base.file("workbook/token", 0o600, SNAPSHOT_TOKEN.as_bytes());
    base.file("workbook/late", 0o644, b"");
    let token = crate::transcript::new_token();
    let mut run_files = vec![
        GuestFile { guest_path: "/workbook/steps".into(), data: steps.as_bytes().to_vec(), mode: 0o644, link: None },
        GuestFile { guest_path: "/workbook/token".into(), data: token.as_bytes().to_vec(), mode: 0o600, link: None },
        // Resumed guests would otherwise share their random state and the
        // time their snapshot was taken.
        GuestFile { guest_path: "/workbook/seed".into(), data: random_bytes(32)?, mode: 0o600, link: None },
        GuestFile { guest_path: "/workbook/time".into(), data: unix_time().into_bytes(), mode: 0o644, link: None },
    ];
    run_files.extend_from_slice(files);
    add_files(&mut cpio, &run_files);
    if late {
        cpio.file("workbook/late", 0o644, b"");
    }
    Ok(Initramfs { bytes: cpio.finish(), token, late, base: base.finish(), run_files })
}

/// `n` bytes from the host's random source.
fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The host's time, in seconds since 1970.
fn unix_time() -> String {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0).to_string()
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
    /// Whether the guest resumed a snapshot instead of booting.
    pub(crate) resumed: bool,
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
    /// Where snapshots of booted guests are kept (see [`Snapshot`]); `None`:
    /// every guest boots.
    pub(crate) snapshots: Option<PathBuf>,
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
/// `stop_after` may end the run once a step is over. Where a snapshot of a
/// booted guest can be had (see [`Snapshot`]), the guest resumes from it
/// instead of booting, and is sent its steps and files.
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
    // What a resumed guest is sent first: too much, and the guest boots.
    let payload = if Snapshot::used_for(config) { Some(late_payload(&initramfs.run_files)?) } else { None };
    let root = config.snapshots.as_deref().filter(|_| payload.as_ref().is_some_and(|p| p.len() <= RESUME_PAYLOAD_LIMIT));
    let started = Instant::now();
    let resumed = match root.map(|root| Snapshot::find_or_take(config, root, &initramfs.base)) {
        Some(Ok(snapshot)) => match snapshot.resume(config) {
            Ok(running) => Some((snapshot, running)),
            Err(NotResumed { why, refused: true }) => {
                eprintln!("note: QEMU could not resume {} ({why:#}): the snapshot is dropped, and the guest boots", snapshot.dir.display());
                snapshot.drop_files();
                None
            }
            Err(NotResumed { why, refused: false }) => {
                eprintln!("note: the guest did not resume from {} ({why:#}); it boots instead", snapshot.dir.display());
                None
            }
        },
        Some(Err(e)) => {
            eprintln!("note: no snapshot of a booted guest ({e:#}); the guest boots");
            None
        }
        None => None,
    };
    // A resumed guest waits for its files at once; a booting one asks.
    let (from_snapshot, running) = resumed.unzip();
    let (mut child, mut channel, sending, wanted) = match running {
        Some((child, channel)) => {
            // An earlier boot's archive would only mislead.
            let _ = std::fs::remove_file(config.work_dir.join("initramfs.cpio"));
            let sending = match late {
                Some(files) => Sending::Awaited(files, initramfs.run_files.clone()),
                None => Sending::Going(payload.unwrap_or_default(), 0, Instant::now()),
            };
            (child, channel, Some(sending), true)
        }
        None => {
            let initrd = config.work_dir.join("initramfs.cpio");
            std::fs::write(&initrd, &initramfs.bytes)?;
            let (child, channel) = start(config, &config.work_dir, &initrd, None)?;
            (child, channel, late.map(|files| Sending::Awaited(files, Vec::new())), false)
        }
    };
    let console_path = config.work_dir.join("console.log");
    let mut seen = Observed::default();
    let ending = supervise(&mut child, &console_path, &mut channel, sending, wanted, &initramfs.token, step_limits, stop_after, &mut seen)?;
    drop(child);
    // What the guest wrote after the supervisor's last look, up to its end.
    channel.read(&mut Vec::new())?;
    let resumed = from_snapshot.is_some();
    if let Some(snapshot) = from_snapshot.filter(|_| !seen.ready && matches!(ending, Ending::BootTimeout | Ending::GuestDied)) {
        // Nothing of the run had run yet: the snapshot is suspect.
        let what = if ending == Ending::BootTimeout { "was not ready in time" } else { "died" };
        eprintln!("note: a guest resumed from {} {what} before its first step; the snapshot is dropped", snapshot.dir.display());
        snapshot.drop_files();
    }
    let elapsed = started.elapsed();
    let console = String::from_utf8_lossy(&std::fs::read(&console_path)?).replace('\r', "");
    let transcript = String::from_utf8_lossy(&std::fs::read(config.work_dir.join("transcript.log"))?).replace('\r', "");
    Ok(Boot {
        console,
        transcript,
        token: initramfs.token.clone(),
        ending,
        elapsed,
        resumed,
        peak_rss_kb: seen.peak_rss_kb,
        step_times: seen.step_times,
    })
}

/// How QEMU starts besides booting: resuming a saved guest, or answering
/// QMP (see [`crate::qmp`]) on a socket.
struct Extra<'a> {
    /// The saved state to resume from.
    incoming: Option<&'a Path>,
    /// The QMP socket.
    qmp: &'a Path,
}

/// The machine QEMU emulates, and how: every argument but the files, which
/// [`start`] adds. A snapshot's key holds them.
fn machine_args(config: &BootConfig) -> Vec<String> {
    let accel = match (config.accel, config.tcg_cache_mib) {
        (Accel::Kvm, _) => "kvm".to_string(),
        (Accel::Tcg, Some(mib)) => format!("tcg,tb-size={mib}"),
        (Accel::Tcg, None) => "tcg".to_string(),
    };
    let memory = config.memory_mb.to_string();
    let cmdline = format!("{KERNEL_CMDLINE}{}", config.cmdline_extra);
    ["-accel", &accel, "-m", &memory, "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
        .into_iter()
        .chain(["-monitor", "none", "-append", &cmdline])
        .map(String::from)
        .collect()
}

/// Starts QEMU with `initrd`, its console and ttyS1 in `dir`.
fn start(config: &BootConfig, dir: &Path, initrd: &Path, extra: Option<Extra>) -> Result<(Qemu, Channel)> {
    let console_path = dir.join("console.log");
    std::fs::write(&console_path, b"")?;
    // ttyS1: QEMU's `pipe` backend reads PATH.in and writes PATH.out. Both
    // are opened here for reading and writing first, so that neither open
    // waits for the other end, and neither end ever sees end-of-file.
    let tty = dir.join("ttyS1");
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
    let channel =
        Channel { to_guest: fifo("in")?, from_guest: fifo("out")?, transcript: std::fs::File::create(dir.join("transcript.log"))? };
    let mut qemu = Command::new(&config.qemu);
    qemu.args(machine_args(config))
        .arg("-kernel")
        .arg(&config.image)
        .arg("-initrd")
        .arg(initrd)
        .arg("-serial")
        .arg(format!("file:{}", console_path.display()))
        .arg("-chardev")
        .arg(format!("pipe,id=wb,path={}", tty.display()))
        .args(["-serial", "chardev:wb"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(extra) = extra {
        qemu.arg("-qmp").arg(format!("unix:{},server=on,wait=off", extra.qmp.display()));
        if let Some(state) = extra.incoming {
            qemu.arg("-incoming").arg(format!("exec:cat {}", crate::qmp::shell_word(state)?));
        }
    }
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
    let child = Qemu(qemu.spawn().with_context(|| format!("cannot start {}", config.qemu.display()))?);
    Ok((child, channel))
}

/// A guest booted to `/init`'s `want` and saved there (memory and devices,
/// through QMP), so that later runs resume it in a fraction of a second
/// instead of booting: 0.1 s against 1.1 s on the fast kernel, 0.2 s
/// against 4 to 6 s on the debug kernel (KASAN and lockdep make its boot
/// slow). Every run resumes the same freshly booted kernel, so no run sees
/// another's traces; each is sent a random seed and the host's time with
/// its steps, its token and its files, as late files are sent (see
/// `wb_receive` in `/init`).
///
/// A snapshot is keyed by everything it depends on: the shared part of the
/// initramfs, the kernel image, the emulator, and QEMU's arguments (memory,
/// command line, TCG cache). It is taken once, under a lock, and only for
/// TCG.
pub(crate) struct Snapshot {
    /// Its directory: `initramfs.cpio` (what it booted) and `state`.
    dir: PathBuf,
}

/// The most a resumed guest is sent before its steps, compressed. The
/// serial line carries 100 to 200 KB/s, and unpacking costs as much again
/// on the debug kernel: a guest resumed with every chapter's modules (100 to
/// 200 KB) was ready after 3.4 and 6.9 s, later than a boot (4 to 5 s).
/// A chapter or two is well under this.
const RESUME_PAYLOAD_LIMIT: usize = 64 << 10;

/// Snapshots kept: two kernel flavours, and room for changes in between.
const SNAPSHOTS_KEPT: usize = 6;

/// How long QEMU may take to load a snapshot and run it (0.1 to 0.2 s
/// measured).
const RESUME_DEADLINE: Duration = Duration::from_secs(20);

/// Why a guest did not resume.
struct NotResumed {
    why: anyhow::Error,
    /// QEMU ended on the state: it cannot be resumed.
    refused: bool,
}

impl Snapshot {
    /// Whether guests of `config` may resume snapshots.
    fn used_for(config: &BootConfig) -> bool {
        config.snapshots.is_some() && config.accel == Accel::Tcg
    }

    /// The snapshot in `root` for `config` and `base`, taken now if there
    /// is none yet.
    fn find_or_take(config: &BootConfig, root: &Path, base: &[u8]) -> Result<Snapshot> {
        // QEMU is given these paths in a shell command: checked before any boot.
        crate::qmp::shell_word(root)?;
        let identity = |path: &Path| -> Result<String> {
            let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
            let modified = meta.modified()?.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            Ok(format!("{} {} {}", path.display(), meta.len(), modified.as_nanos()))
        };
        let key = crate::hash::CacheKey::default()
            .add(base)
            .add(identity(&config.image)?)
            .add(identity(&config.qemu)?)
            .add(machine_args(config).join(" "))
            .hex();
        let snapshot = Snapshot { dir: root.join(&key) };
        if !snapshot.state().exists() {
            std::fs::create_dir_all(root)?;
            let _lock = crate::lock::CacheLock::acquire(&root.join(format!("{key}.lock")), "saving a booted guest")?;
            if !snapshot.state().exists() {
                snapshot.take(config, base)?;
                prune(root, SNAPSHOTS_KEPT);
            }
        }
        // When it was last used, for pruning.
        let _ = std::fs::File::open(snapshot.state()).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Ok(snapshot)
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn initrd(&self) -> PathBuf {
        self.dir.join("initramfs.cpio")
    }

    /// Boots `base` to `/init`'s `want` and saves the guest.
    fn take(&self, config: &BootConfig, base: &[u8]) -> Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.initrd(), base)?;
        eprintln!("guest: booting once to save a booted guest, which later runs resume ({})", self.dir.display());
        let socket_dir = qmp_socket_dir()?;
        let socket = socket_dir.path().join("qmp");
        let (mut child, mut channel) = start(config, &self.dir, &self.initrd(), Some(Extra { incoming: None, qmp: &socket }))?;
        let deadline = Instant::now() + BOOT_DEADLINE;
        let mut qmp = crate::qmp::Qmp::connect(&socket, &mut || matches!(child.0.try_wait(), Ok(None)), deadline)?;
        let mut said = Vec::new();
        loop {
            channel.read(&mut said)?;
            if String::from_utf8_lossy(&said).lines().any(|l| Marker::parse(l.trim_end(), SNAPSHOT_TOKEN) == Some(Marker::Want)) {
                break;
            }
            if let Some(status) = child.0.try_wait()? {
                return Err(anyhow!(
                    "the guest ended before `/init` ran ({status}); its console is {}",
                    self.dir.join("console.log").display()
                ));
            }
            if Instant::now() > deadline {
                return Err(anyhow!("the guest did not reach `/init` within {} s", BOOT_DEADLINE.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        qmp.save(&self.state(), Instant::now() + BOOT_DEADLINE)?;
        Ok(())
    }

    /// Starts QEMU on the saved state and waits until the guest runs.
    fn resume(&self, config: &BootConfig) -> std::result::Result<(Qemu, Channel), NotResumed> {
        let not = |why: anyhow::Error| NotResumed { why, refused: false };
        let socket_dir = qmp_socket_dir().map_err(not)?;
        let socket = socket_dir.path().join("qmp");
        let state = self.state();
        let (mut child, channel) =
            start(config, &config.work_dir, &self.initrd(), Some(Extra { incoming: Some(&state), qmp: &socket })).map_err(not)?;
        let deadline = Instant::now() + RESUME_DEADLINE;
        let mut alive = || matches!(child.0.try_wait(), Ok(None));
        let waited = crate::qmp::Qmp::connect(&socket, &mut alive, deadline).and_then(|mut qmp| qmp.wait_running(deadline));
        if let Err(why) = waited {
            // QEMU that refuses a state exits at once; the socket may say so first.
            let exited = Instant::now() + Duration::from_secs(1);
            while matches!(child.0.try_wait(), Ok(None)) && Instant::now() < exited {
                std::thread::sleep(Duration::from_millis(10));
            }
            let refused = !matches!(child.0.try_wait(), Ok(None));
            let _ = child.0.kill();
            let mut stderr = String::new();
            if let Some(mut err) = child.0.stderr.take() {
                let _ = err.read_to_string(&mut stderr);
            }
            let why = if stderr.trim().is_empty() { why } else { why.context(stderr.trim().to_string()) };
            return Err(NotResumed { why, refused });
        }
        Ok((child, channel))
    }

    /// Removes the snapshot (not its lock file: another process may hold
    /// it); the next run takes it again.
    fn drop_files(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The prefix of the temporary directories that hold a QMP socket (in the
/// system's temporary directory: a socket's path must be short).
const QMP_DIR_PREFIX: &str = "workbook-qmp";

/// A new directory for a QMP socket, removed when it is dropped. A process
/// killed by SIGKILL cannot remove its own: the first call of each process
/// removes those left over, each older than any guest waits for its socket.
fn qmp_socket_dir() -> Result<tempfile::TempDir> {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let dir = tempfile::Builder::new().prefix(QMP_DIR_PREFIX).tempdir()?;
    SWEPT.call_once(|| {
        if let Ok(mine) = std::fs::metadata(dir.path()) {
            sweep_qmp_dirs(&std::env::temp_dir(), std::os::unix::fs::MetadataExt::uid(&mine), BOOT_DEADLINE * 10);
        }
    });
    Ok(dir)
}

/// Removes the QMP socket directories in `tmp` that `owner` made and did
/// not change for `age`: one is in use only while a guest starts (at most
/// [`BOOT_DEADLINE`] and a save), so an older one was left by a killed
/// process.
fn sweep_qmp_dirs(tmp: &Path, owner: u32, age: Duration) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let old_enough = entry.metadata().is_ok_and(|m| {
            std::os::unix::fs::MetadataExt::uid(&m) == owner
                && m.is_dir()
                && m.modified().is_ok_and(|at| at.elapsed().is_ok_and(|e| e > age))
        });
        if old_enough && entry.file_name().to_string_lossy().starts_with(QMP_DIR_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Removes all but the `keep` snapshots in `root` used last, sparing any
/// used within the hour or being taken. Lock files stay: removing one that
/// a process waits on would let two processes take the same snapshot.
fn prune(root: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let used = |dir: &Path| std::fs::metadata(dir.join("state")).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
    let mut snapshots: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|path| path.is_dir() && !crate::lock::is_held(&path.with_extension("lock")))
        .map(|path| (used(&path), path))
        .collect();
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.0));
    let recent = std::time::SystemTime::now() - Duration::from_secs(3600);
    for (used, dir) in snapshots.into_iter().skip(keep) {
        if used < recent {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// What [`supervise`] measures while it watches.
#[derive(Default)]
struct Observed {
    /// QEMU's peak resident memory in KiB.
    peak_rss_kb: u64,
    /// Each ended step's time.
    step_times: BTreeMap<usize, Duration>,
    /// Whether the guest said `ready`.
    ready: bool,
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
    /// Not come yet from the host's side; to be sent with these.
    Awaited(LateFiles, Vec<GuestFile>),
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
    mut sending: Option<Sending>,
    mut wanted: bool,
    token: &str,
    step_limits: &[Duration],
    stop_after: StopAfter,
    observed: &mut Observed,
) -> Result<Ending> {
    let status_file = format!("/proc/{}/status", qemu.0.id());
    let started = Instant::now();
    // What the guest wrote that is not a whole line yet.
    let mut pending = Vec::new();
    // Every whole line read so far, for `stop_after`.
    let mut seen = String::new();
    // A resumed guest waits for its files from the start.
    let resumed = wanted;
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
            if !completed && !status.success() && !observed.ready && !wanted && seen.is_empty() && rest.is_empty() {
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
        if let Some(Sending::Awaited(files, with)) = &sending {
            match files.try_recv() {
                Ok(files) => sending = Some(Sending::Going(late_payload(&[with.as_slice(), &files].concat())?, 0, Instant::now())),
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
            let mut marker = Marker::parse(line.trim_end(), token);
            if resumed && !observed.ready && marker.is_none() {
                // A resumed guest that fails to unpack its files says so
                // with the snapshot's token: it never got its own.
                marker = Marker::parse(line.trim_end(), SNAPSHOT_TOKEN).filter(|m| *m == Marker::Lost);
            }
            match marker {
                Some(Marker::Want) => wanted = true,
                Some(Marker::Lost) => {
                    return Err(anyhow!("the guest could not unpack the files sent to it on ttyS1 (a bug in the harness)"))
                }
                Some(Marker::Ready) => observed.ready = true,
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
            Some(Sending::Awaited(..)) if wanted => None,
            _ => Some(started),
        };
        if let Some(at) = done_at {
            // `reboot -f` ends QEMU within moments; don't wait on it forever.
            if at.elapsed() > Duration::from_secs(5) {
                return Ok(Ending::Completed);
            }
        } else if !observed.ready && boot_clock.is_some_and(|since| since.elapsed() > BOOT_DEADLINE) {
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
        let busy = observed.ready || matches!(sending, Some(Sending::Going(..)));
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
    fn left_over_qmp_dirs_are_swept_once_old() {
        let tmp = tempfile::tempdir().unwrap();
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(tmp.path()).unwrap());
        for name in ["workbook-qmpOLD", "workbook-qmpNEW", "other-OLD"] {
            std::fs::create_dir(tmp.path().join(name)).unwrap();
            std::fs::write(tmp.path().join(name).join("qmp"), b"").unwrap();
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for name in ["workbook-qmpOLD", "other-OLD"] {
            std::fs::File::open(tmp.path().join(name)).unwrap().set_modified(old).unwrap();
        }
        sweep_qmp_dirs(tmp.path(), owner, Duration::from_secs(600));
        assert!(!tmp.path().join("workbook-qmpOLD").exists(), "left over by a killed run");
        assert!(tmp.path().join("workbook-qmpNEW").exists(), "may be in use");
        assert!(tmp.path().join("other-OLD").exists(), "not the harness's");
        sweep_qmp_dirs(tmp.path(), owner + 1, Duration::ZERO);
        assert!(tmp.path().join("workbook-qmpNEW").exists(), "another user's is never touched");
    }

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
