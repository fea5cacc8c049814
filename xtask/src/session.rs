// SPDX-License-Identifier: GPL-2.0

//! Running chapters in a guest the way every command does: the guest's
//! memory, the accelerator (TCG unless asked, KVM only after a probe), the
//! reports printed as the run ends.

use crate::chapter::Chapter;
use crate::guest::{self, Accel, BootConfig, Ending};
use crate::report::{self, Style};
use crate::runner::{self, RunOptions, RunResult};
use crate::setup::Environment;
use crate::Result;
use anyhow::anyhow;
use std::path::Path;
use std::time::Duration;

/// How a guest runs and what is shown of it (`--accel`, `--verbose`).
#[derive(Debug, Clone, Default)]
pub(crate) struct GuestOptions {
    /// `tcg`, `kvm` or `auto`; none: `WORKBOOK_ACCEL`, else `tcg`.
    pub(crate) accel: Option<String>,
    /// Print the whole console after a run.
    pub(crate) verbose: bool,
    /// Show the first failing step in full and the later failures on one
    /// line (the learner's loop: `check`, `watch`).
    pub(crate) root_cause_first: bool,
}

/// Runs chapters (in several guests at once: see [`crate::pool::guests_at_once`]) and
/// prints their reports under `run_name`.
pub(crate) fn run_chapters(env: &Environment, chapters: &[Chapter], guest: &GuestOptions, run_name: &str) -> Result<RunResult> {
    let options = RunOptions {
        accel: choose_accel(env, guest.accel.as_deref())?,
        memory_mb: env.kernel.flavour.memory_mb(),
        work_dir: env.project.cache_dir("runs")?.join(run_name),
        isolation: crate::module_build::Isolation::Trusted,
        stop: crate::runner::Stop::Never,
    };
    // Two chapters or more share the guests.
    let result = runner::run_in_guests(env, chapters, &options, env.kernel.flavour.guests_at_once())?;
    let style = Style::detect();
    for chapter in &result.chapters {
        if guest.root_cause_first {
            print!("{}", report::learner_chapter(style, chapter));
        } else {
            print!("{}", report::chapter(style, chapter));
        }
    }
    if guest.verbose {
        for boot in &result.boots {
            println!("-- guest console --\n{}-- end of console --", boot.console);
        }
    }
    print!("{}", report::verdict(style, &result));
    Ok(result)
}

/// `tcg` unless asked otherwise (flag, then `WORKBOOK_ACCEL`). `auto` uses KVM
/// only when a short probe boot with it succeeds; the answer is cached.
pub(crate) fn choose_accel(env: &Environment, flag: Option<&str>) -> Result<Accel> {
    let wanted = flag.map(str::to_string).or_else(|| std::env::var("WORKBOOK_ACCEL").ok()).unwrap_or_else(|| "tcg".into());
    match wanted.as_str() {
        "tcg" => Ok(Accel::Tcg),
        "kvm" => Ok(Accel::Kvm),
        "auto" => probe_kvm(env),
        other => Err(anyhow!("WORKBOOK_ACCEL must be tcg, kvm or auto, not `{other}`")),
    }
}

fn probe_kvm(env: &Environment) -> Result<Accel> {
    let cache = env.project.cache.join(format!("kvm-probe-{}", env.kernel.key));
    if let Ok(answer) = std::fs::read_to_string(&cache) {
        return Ok(if answer.trim() == "kvm" { Accel::Kvm } else { Accel::Tcg });
    }
    let usable = Path::new("/dev/kvm").exists() && {
        eprintln!("probing KVM with a short boot (once)...");
        let config = BootConfig {
            qemu: env.toolchain.qemu.clone(),
            image: env.kernel.image.clone(),
            work_dir: env.project.cache_dir("runs")?.join("kvm-probe"),
            accel: Accel::Kvm,
            memory_mb: env.kernel.flavour.memory_mb(),
            cmdline_extra: env.kernel.flavour.cmdline(),
            tcg_cache_mib: env.kernel.flavour.tcg_cache_mib(),
            snapshots: None,
        };
        let initramfs = guest::initramfs(&env.project, &env.toolchain, "", &[], &[], false)?;
        let probe = std::thread::spawn(move || guest::boot(&config, &initramfs, None, &[], &mut |_, _| false));
        // The probe's own boot deadline is long; KVM either boots in seconds or not at all.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !probe.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        probe.is_finished() && matches!(probe.join(), Ok(Ok(boot)) if boot.ending == Ending::Completed)
    };
    let answer = if usable { "kvm" } else { "tcg" };
    eprintln!("KVM probe: using {answer}");
    std::fs::write(&cache, answer)?;
    Ok(if usable { Accel::Kvm } else { Accel::Tcg })
}
