// SPDX-License-Identifier: GPL-2.0

//! The guest kernel's build: a Rust-enabled kernel in the cache, in two
//! flavours (fast, and debug with the kernel's bug detectors), keyed by
//! everything the build depends on so that it is made once.

use crate::hash::CacheKey;
use crate::kernel_source::KernelSource;
use crate::lock::CacheLock;
use crate::paths::{read_to_string, write_atomic, Project};
use crate::progress::Progress;
use crate::toolchain::Toolchain;
use crate::Result;
use anyhow::{anyhow, Context};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Bump when the build recipe changes in a way the key does not see.
const RECIPE_VERSION: &str = "2";

/// Kernel builds kept in the cache per flavour: the one in use and the one
/// before it (switching between two kernel trees does not rebuild).
const BUILDS_KEPT: usize = 2;

/// The file in a build tree that records how long its build took.
pub(crate) const BUILD_SECONDS_FILE: &str = ".workbook-build-seconds";

/// The file in a build tree that names its flavour.
const FLAVOUR_FILE: &str = ".workbook-flavour";

/// Which guest kernel: the same fragment, with or without the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Flavour {
    /// `qemu-images/kernel.config`: fast to build and boot, for the
    /// learner's edit-to-verdict loop.
    #[default]
    Fast,
    /// The fast flavour plus `qemu-images/kernel-debug.config`: lockdep,
    /// KASAN, debug objects. Proves reference solutions and grades.
    Debug,
}

impl Flavour {
    /// Parses `fast` or `debug`.
    pub(crate) fn parse(text: &str) -> Result<Flavour> {
        match text {
            "fast" => Ok(Flavour::Fast),
            "debug" => Ok(Flavour::Debug),
            other => Err(anyhow!("--kernel takes fast or debug, not `{other}`")),
        }
    }

    /// Its name on the command line and in the cache.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Flavour::Fast => "fast",
            Flavour::Debug => "debug",
        }
    }

    /// The overlay merged after the base fragment, if any.
    pub(crate) fn overlay(self) -> Option<&'static str> {
        match self {
            Flavour::Fast => None,
            Flavour::Debug => Some("kernel-debug.config"),
        }
    }

    /// How much longer than on the fast kernel a step may take: KASAN's
    /// checks and lockdep's bookkeeping slow everything under emulation.
    /// Measured: no reference step takes more than 3.5 s on either kernel
    /// (the report shows each step over a second), against limits of 10 to
    /// 30 s; twice the limit keeps that margin on a slower machine, and a
    /// mutant that hangs costs its whole limit.
    pub(crate) fn time_scale(self) -> u64 {
        match self {
            Flavour::Fast => 1,
            Flavour::Debug => 2,
        }
    }

    /// How many of this flavour's guests share a core (see
    /// [`crate::pool::guests_at_once`]). Measured with all nine chapters
    /// on 2 cores: fast guests wait for much of their time, and took
    /// 17.6 s one per core (two guests), 13.9 to 14.6 s in three guests and
    /// 13.1 s two per core (four guests); the negative tests of 03, 06 and
    /// 08 took 105 s one per core and 69 s two per core. Debug guests are
    /// busy with KASAN and lockdep: 42.9 s in two guests, 45.9 s in three,
    /// 44.5 s in four.
    pub(crate) fn guests_per_core(self) -> usize {
        match self {
            Flavour::Fast => 2,
            Flavour::Debug => 1,
        }
    }

    /// How many guests of this flavour run at once here (see
    /// [`crate::pool::guests_at_once`]).
    pub(crate) fn guests_at_once(self) -> usize {
        crate::pool::guests_at_once(self.guests_per_core())
    }

    /// Guest memory in MiB: what every chapter needs in one boot, measured
    /// (`cargo xtask bench` reports QEMU's resident set). KASAN's shadow
    /// (an eighth of memory) and lockdep's tables need the debug flavour's
    /// extra.
    pub(crate) fn memory_mb(self) -> u32 {
        match self {
            Flavour::Fast => 128,
            Flavour::Debug => 256,
        }
    }

    /// A cap on TCG's translated-code cache, in MiB. Measured on all nine
    /// chapters in one fast boot: QEMU peaked at 263 MiB uncapped, 192 MiB
    /// at 64 and 154 MiB at 32, within a few percent of the same time, and
    /// 135 MiB at 16 but 18% slower. Since the guest programs became one
    /// binary (a third of the initramfs, which QEMU holds three times over:
    /// its copy, the guest's, the unpacked files): 134 MiB at 32, 129 at 28
    /// and 125 at 24, which costs about 5% of the time (33.3 s against 35.2 s
    /// for all chapters, 2.16 s against 2.26 s for 01-hello, medians of
    /// paired runs). The debug kernel's larger code keeps QEMU's default (a
    /// cap there was not measured).
    pub(crate) fn tcg_cache_mib(self) -> Option<u32> {
        match self {
            Flavour::Fast => Some(24),
            Flavour::Debug => None,
        }
    }

    /// What the kernel command line adds: every KASAN report, not only the
    /// first (a run checks many chapters in one boot).
    pub(crate) fn cmdline(self) -> &'static str {
        match self {
            Flavour::Fast => "",
            Flavour::Debug => " kasan_multi_shot",
        }
    }
}

/// Objects a build compiles, for the progress bar before one was measured.
const DEFAULT_OBJECT_ESTIMATE: u64 = 1300;

/// A configured and built kernel in the cache.
#[derive(Debug, Clone)]
pub(crate) struct KernelBuild {
    /// The build tree (`O=`), also `KDIR` for out-of-tree modules.
    pub(crate) dir: PathBuf,
    /// The bootable image.
    pub(crate) image: PathBuf,
    /// `include/config/kernel.release`, e.g. `7.3.4`.
    pub(crate) release: String,
    /// The cache key the build is stored under.
    pub(crate) key: String,
    /// The source tree it was built from.
    pub(crate) source: PathBuf,
    /// Which flavour it is.
    pub(crate) flavour: Flavour,
}

/// Configures and builds the kernel unless a complete build with the same
/// key is in the cache.
pub(crate) fn ensure_built(project: &Project, tc: &Toolchain, source: &KernelSource, flavour: Flavour, force: bool) -> Result<KernelBuild> {
    let mut fragment = read_to_string(&project.qemu_images_dir().join("kernel.config"))?;
    let mut key = CacheKey::default()
        .add(RECIPE_VERSION)
        .add(&source.identity)
        .add(&fragment)
        .add(&tc.rustc_version)
        .add(&tc.bindgen_version)
        .add(&tc.clang_version);
    if let Some(overlay) = flavour.overlay() {
        let text = read_to_string(&project.qemu_images_dir().join(overlay))?;
        key = key.add(&text);
        fragment.push_str(&format!("\n# merged from qemu-images/{overlay}\n"));
        fragment.push_str(&text);
    }
    let key = key.hex();
    let dir = project.cache_dir("kernel")?.join(&key);
    let complete = dir.join(".workbook-complete");
    let image = dir.join("vmlinux");
    if force {
        let _ = std::fs::remove_file(&complete);
    }
    if !complete.exists() {
        std::fs::create_dir_all(&dir)?;
        let _lock = CacheLock::acquire(&dir.with_extension("lock"), "the kernel build")?;
        // Another process may have finished it while this one waited.
        if !complete.exists() {
            std::fs::write(dir.join(FLAVOUR_FILE), flavour.name())?;
            let started = std::time::Instant::now();
            build(project, tc, source, &dir, &fragment, flavour)?;
            std::fs::write(dir.join(BUILD_SECONDS_FILE), format!("{:.0}\n", started.elapsed().as_secs_f64()))?;
            write_atomic(&complete, format!("{}\n{}\n{}\n", source.identity, tc.rustc_version, tc.bindgen_version).as_bytes())?;
        }
    }
    let release = read_to_string(&dir.join("include/config/kernel.release"))?.trim().to_string();
    std::fs::write(dir.join(".workbook-used"), b"")?;
    prune_builds(&project.cache.join("kernel"), BUILDS_KEPT)?;
    prune_module_builds(&project.cache)?;
    Ok(KernelBuild { dir, image, release, key, source: source.dir.clone(), flavour })
}

/// The file in a module build directory (`<cache>/modules/*`) that names
/// the kernel build it was made against.
pub(crate) const KERNEL_KEY_FILE: &str = ".workbook-kernel";

/// How long a module build directory that names no kernel (one made before
/// they did) is kept after its last use.
const UNNAMED_MODULE_BUILDS_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The file in a module build directory that names the chapter directory
/// it builds.
pub(crate) const SOURCE_DIR_FILE: &str = ".workbook-source";

/// Removes the module build directories whose kernel build is gone from the
/// cache, or whose chapter directory is gone (a deleted clone): nothing can
/// use them again. Also those that name no kernel and were not used for a
/// day. Returns how many went.
pub(crate) fn prune_module_builds(cache: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(cache.join("modules")) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.filter_map(|e| e.ok()).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        let dir = entry.path();
        // Held while the directory is judged and removed: a build, or a
        // build reading it as its template, holds it too. (The lock file
        // stays: a process may have it open.)
        let Ok(Some(_lock)) = crate::lock::CacheLock::try_acquire(&dir.with_extension("lock")) else {
            continue;
        };
        let source_gone = std::fs::read(dir.join(SOURCE_DIR_FILE))
            .is_ok_and(|source| !Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&source)).is_dir());
        let stale = source_gone
            || match std::fs::read_to_string(dir.join(KERNEL_KEY_FILE)) {
                Ok(key) => !cache.join("kernel").join(key.trim()).join(".workbook-complete").exists(),
                Err(_) => std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > UNNAMED_MODULE_BUILDS_KEPT)),
            };
        if stale {
            std::fs::remove_dir_all(&dir)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes all but the `keep` most recently used kernel builds of each
/// flavour (a build without a flavour file is a fast one).
pub(crate) fn prune_builds(root: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let builds: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            // A build another process holds the lock of is in use.
            !crate::lock::is_held(&e.path().with_extension("lock"))
        })
        .map(|e| {
            let path = e.path();
            let used = std::fs::metadata(path.join(".workbook-used"))
                .or_else(|_| std::fs::metadata(&path))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (used, path)
        })
        .collect();
    let mut by_flavour: BTreeMap<String, Vec<(std::time::SystemTime, PathBuf)>> = BTreeMap::new();
    for (used, path) in builds {
        let flavour = std::fs::read_to_string(path.join(FLAVOUR_FILE)).unwrap_or_else(|_| "fast".into());
        by_flavour.entry(flavour.trim().to_string()).or_default().push((used, path));
    }
    let mut removed = Vec::new();
    for mut builds in by_flavour.into_values() {
        builds.sort_by_key(|b| std::cmp::Reverse(b.0));
        for (_, path) in builds.into_iter().skip(keep) {
            eprintln!("setup: removing an older kernel build from the cache: {}", path.display());
            std::fs::remove_dir_all(&path)?;
            let _ = std::fs::remove_file(path.with_extension("lock"));
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

fn make_command(tc: &Toolchain, source: &KernelSource, build_dir: &Path, targets: &[&str]) -> Command {
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(&source.dir)
        .arg(format!("O={}", build_dir.display()))
        .args(tc.make_vars())
        .args(targets)
        .env("PATH", tc.path_env())
        .stdin(Stdio::null());
    make
}

/// Runs a short make step, logging to `log`; on failure, the log's tail.
fn make_quiet(tc: &Toolchain, source: &KernelSource, build_dir: &Path, targets: &[&str], log: &Path) -> Result<String> {
    let out = make_command(tc, source, build_dir, targets).output()?;
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(file, "$ make {}\n{text}", targets.join(" "))?;
    if !out.status.success() {
        return Err(anyhow!("make {} failed (full log: {}):\n{}", targets.join(" "), log.display(), tail(&text, 25)));
    }
    Ok(text)
}

fn build(project: &Project, tc: &Toolchain, source: &KernelSource, dir: &Path, fragment: &str, flavour: Flavour) -> Result<()> {
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    let minutes = match flavour {
        Flavour::Fast => "about 8 minutes",
        Flavour::Debug => "about 9 minutes: lockdep and KASAN",
    };
    eprintln!(
        "setup: building the {} guest kernel in {} ({minutes} on 2 cores, once; log: {})",
        flavour.name(),
        dir.display(),
        log.display()
    );
    let available =
        make_quiet(tc, source, dir, &["rustavailable"], &log).context("the kernel says Rust is not available with this toolchain")?;
    if !available.contains("Rust is available") {
        return Err(anyhow!("`make rustavailable` did not confirm Rust support:\n{}", tail(&available, 20)));
    }
    make_quiet(tc, source, dir, &["tinyconfig"], &log)?;
    let config_path = dir.join(".config");
    let mut config = read_to_string(&config_path)?;
    config.push_str("\n# merged from qemu-images/kernel.config\n");
    config.push_str(fragment);
    std::fs::write(&config_path, config)?;
    make_quiet(tc, source, dir, &["olddefconfig"], &log)?;
    let lost = options_lost(fragment, &read_to_string(&config_path)?);
    if !lost.is_empty() {
        return Err(anyhow!(
            "the kernel configuration dropped options of qemu-images/kernel.config (or the flavour's overlay): {}\n\
             (CONFIG_RUST is dropped when the toolchain is not usable: see `make rustavailable` in {})",
            lost.join(", "),
            log.display()
        ));
    }
    let jobs = format!("-j{}", crate::pool::cores());
    let estimate_file = project.cache.join("kernel").join(format!("objects-estimate-{}", flavour.name()));
    let estimate = std::fs::read_to_string(&estimate_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(DEFAULT_OBJECT_ESTIMATE);
    let objects = make_with_progress(make_command(tc, source, dir, &[&jobs, "vmlinux", "modules"]), &log, estimate)?;
    let _ = std::fs::write(&estimate_file, objects.to_string());
    Ok(())
}

/// Runs the main build, counting the objects make reports on stdout.
fn make_with_progress(mut make: Command, log: &Path, estimate: u64) -> Result<u64> {
    let file = Arc::new(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(log)?));
    let mut child = make.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let err_file = Arc::clone(&file);
    let err_lines = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            let _ = writeln!(err_file.lock().unwrap(), "{line}");
            kept.push(line);
        }
        kept
    });
    let mut progress = Progress::new("kernel build", estimate);
    let mut objects = 0;
    for line in BufReader::new(child.stdout.take().context("no stdout pipe")?).lines().map_while(|l| l.ok()) {
        let _ = writeln!(file.lock().unwrap(), "{line}");
        if line.starts_with("  ") && line[2..].starts_with(|c: char| c.is_ascii_uppercase()) {
            objects += 1;
            progress.advance(1);
        }
    }
    let status = child.wait()?;
    let errors = err_lines.join().unwrap_or_default();
    if !status.success() {
        progress.finish("failed");
        return Err(anyhow!("the kernel build failed (full log: {}):\n{}", log.display(), tail(&errors.join("\n"), 30)));
    }
    progress.finish(&format!("{objects} objects"));
    Ok(objects)
}

/// The fragment's settings that the final `.config` does not have.
pub(crate) fn options_lost(fragment: &str, config: &str) -> Vec<String> {
    let parse = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|line| {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
                    return Some((rest.to_string(), "n".to_string()));
                }
                let (k, v) = line.split_once('=')?;
                k.starts_with("CONFIG_").then(|| (k.to_string(), v.to_string()))
            })
            .collect()
    };
    let have = parse(config);
    parse(fragment)
        .into_iter()
        .filter(|(k, v)| have.get(k).map(String::as_str).unwrap_or("n") != v)
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_builds_of_a_kernel_or_sources_that_are_gone_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path();
        std::fs::create_dir_all(cache.join("kernel/k1")).unwrap();
        std::fs::write(cache.join("kernel/k1/.workbook-complete"), "").unwrap();
        for (dir, key) in [("01-hello-a", Some("k1")), ("01-hello-b", Some("k0")), ("01-hello-c", None)] {
            std::fs::create_dir_all(cache.join("modules").join(dir)).unwrap();
            if let Some(key) = key {
                std::fs::write(cache.join("modules").join(dir).join(KERNEL_KEY_FILE), key).unwrap();
            }
        }
        for (dir, source) in [("01-hello-d", cache.join("kernel")), ("01-hello-e", cache.join("deleted-clone/chapters/01-hello"))] {
            std::fs::create_dir_all(cache.join("modules").join(dir)).unwrap();
            std::fs::write(cache.join("modules").join(dir).join(KERNEL_KEY_FILE), "k1").unwrap();
            std::fs::write(cache.join("modules").join(dir).join(SOURCE_DIR_FILE), source.to_str().unwrap()).unwrap();
        }
        assert_eq!(prune_module_builds(cache).unwrap(), 2);
        assert!(cache.join("modules/01-hello-a").exists(), "its kernel is cached");
        assert!(cache.join("modules/01-hello-d").exists(), "its kernel and its sources are there");
        assert!(!cache.join("modules/01-hello-e").exists(), "its sources are gone");
        assert!(!cache.join("modules/01-hello-b").exists(), "its kernel is gone");
        assert!(cache.join("modules/01-hello-c").exists(), "it names no kernel and was used today");
    }

    #[test]
    fn pruning_keeps_the_most_recently_used() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for (i, name) in ["old", "mid", "new"].iter().enumerate() {
            std::fs::create_dir_all(root.join(name)).unwrap();
            let stamp = root.join(name).join(".workbook-used");
            std::fs::write(&stamp, b"").unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(100 - i as u64 * 10);
            std::fs::File::options().write(true).open(&stamp).unwrap().set_modified(when).unwrap();
        }
        std::fs::write(root.join("objects-estimate"), "1").unwrap();
        let removed = prune_builds(&root, 2).unwrap();
        assert_eq!(removed, vec![root.join("old")]);
        assert!(root.join("mid").exists() && root.join("new").exists() && root.join("objects-estimate").exists());
    }

    #[test]
    fn pruning_is_per_flavour() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for (i, (name, flavour)) in [("d1", "debug"), ("f1", "fast"), ("f2", "fast"), ("f3", "fast")].iter().enumerate() {
            std::fs::create_dir_all(root.join(name)).unwrap();
            std::fs::write(root.join(name).join(FLAVOUR_FILE), flavour).unwrap();
            let stamp = root.join(name).join(".workbook-used");
            std::fs::write(&stamp, b"").unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(100 - i as u64 * 10);
            std::fs::File::options().write(true).open(&stamp).unwrap().set_modified(when).unwrap();
        }
        // The oldest build is the only debug one: it stays.
        assert_eq!(prune_builds(&root, 2).unwrap(), vec![root.join("f1")]);
        assert!(root.join("d1").exists());
        assert_eq!(Flavour::parse("debug").unwrap(), Flavour::Debug);
        assert!(Flavour::parse("slow").unwrap_err().to_string().contains("fast or debug"));
    }

    #[test]
    fn lost_options_are_named() {
        let fragment = "CONFIG_RUST=y\nCONFIG_MODULES=y\n# CONFIG_WERROR is not set\n";
        let config = "CONFIG_MODULES=y\nCONFIG_WERROR=y\n";
        assert_eq!(options_lost(fragment, config), vec!["CONFIG_RUST=y", "CONFIG_WERROR=n"]);
        assert!(options_lost(fragment, "CONFIG_RUST=y\nCONFIG_MODULES=y\n").is_empty());
    }
}
