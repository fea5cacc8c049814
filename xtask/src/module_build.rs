// SPDX-License-Identifier: GPL-2.0

//! Building a chapter's module out of tree against the cached kernel. The
//! sources are synced into a build directory in the cache (only changed files
//! are rewritten, so make rebuilds only what changed) and compiler messages
//! are shown with the chapter's own paths.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xshell::cmd;

use crate::chapter::Chapter;
use crate::hash::CacheKey;
use crate::lock::CacheLock;
use crate::replay::Plan;
use crate::setup::Environment;
use crate::Result;

/// Compiler output lines shown for a failed build at most.
const ERROR_LINES: usize = 80;

/// Each module's name and its `.ko`.
pub(crate) type Modules = Vec<(String, Vec<u8>)>;

/// The result of a successful build.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// Each module's name and its `.ko`, read while the build directory was
    /// locked (another process may rebuild it the moment the lock is released).
    pub(crate) modules: Modules,
    /// Compiler warnings, if any.
    pub(crate) warnings: String,
    /// How long make took; `None` when the modules were up to date and
    /// make was not run.
    pub(crate) elapsed: Option<Duration>,
}

/// The file in a build directory while make runs in it.
const BUILDING_MARKER: &str = ".workbook-building";
/// The file a successful build leaves, holding its compiler warnings: while
/// it is there and no source changed, the modules are up to date and make
/// is not run (a no-op make costs about a second of Kbuild reading the
/// kernel's Makefiles).
const BUILT_STAMP: &str = ".workbook-built";
/// The file a failed replay leaves, naming the kernel build: the commands
/// Kbuild saved still describe the last good build, so the next edit may be
/// replayed too (a learner's typo does not cost the next build a make).
const REPLAYABLE: &str = ".workbook-replayable";
/// The file a replay left before replays ran `fixdep` (see
/// [`crate::replay`]): the dependency lists in the `.cmd` files may not
/// name what a replayed object read, so every object is compiled again (or
/// make starts from the sources), and then the file goes.
const REPLAYED: &str = ".workbook-replayed";

/// Whether a file is part of a module's source (copied into the build).
/// `NAME.mod.c` is Kbuild's output (modpost writes it), never a source.
pub(crate) fn is_module_source(name: &str) -> bool {
    name == "Kbuild" || ([".rs", ".c", ".h"].iter().any(|ext| name.ends_with(ext)) && !name.ends_with(".mod.c"))
}

/// How a module build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// As the harness's own user: the workbook's chapters, a learner's code.
    Trusted,
    /// Untrusted code (a student's submission): in a bubblewrap sandbox as
    /// uid 65534 without capabilities or network, seeing only `/usr`, the
    /// kernel's source and build trees (read-only) and its own build
    /// directory; `include_str!("/etc/...")` finds nothing.
    Sandboxed,
    /// Untrusted code in a grading engine that isolates each submission in
    /// a container of its own (Gradescope, a CI job): built without
    /// bubblewrap, which such containers often cannot run. Only by request
    /// (`grade --sandbox container`), never chosen automatically.
    Container,
}

/// Whether bubblewrap can make its sandbox here; the reason when not (a
/// container without unprivileged user namespaces, typically).
pub(crate) fn bubblewrap_works() -> std::result::Result<(), String> {
    let out = std::process::Command::new("bwrap")
        .args(["--unshare-all", "--uid", "65534", "--gid", "65534", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin"])
        .args(["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--", "/usr/bin/true"])
        .output()
        .map_err(|e| format!("cannot run bwrap: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The bubblewrap arguments that put a module build in its sandbox.
pub(crate) fn sandbox_args(env: &Environment, build_dir: &Path) -> Vec<String> {
    // The kernel trees, and a toolchain that does not live in /usr (a
    // WORKBOOK_RUSTC of one's own: its whole installation, for its sysroot).
    let toolchain = &env.toolchain;
    let rustc_home = toolchain.rustc.parent().and_then(Path::parent).map(Path::to_path_buf);
    let mut read_only = vec![env.kernel.source.clone(), env.kernel.dir.clone()];
    read_only.extend(
        rustc_home.into_iter().chain([toolchain.rust_lib_src.clone(), toolchain.llvm_bin.clone()]).filter(|d| !d.starts_with("/usr")),
    );
    sandbox_args_for(&read_only, build_dir, &toolchain.llvm_bin)
}

/// [`sandbox_args`] for these read-only directories and this build directory.
fn sandbox_args_for(read_only: &[PathBuf], build_dir: &Path, llvm_bin: &Path) -> Vec<String> {
    let mut args: Vec<String> =
        ["--unshare-all", "--die-with-parent", "--new-session", "--uid", "65534", "--gid", "65534"].iter().map(|s| s.to_string()).collect();
    args.extend(["--ro-bind", "/usr", "/usr"].map(String::from));
    for dir in ["bin", "lib", "lib64", "sbin"] {
        args.extend(["--symlink".into(), format!("usr/{dir}"), format!("/{dir}")]);
    }
    // A private /tmp first: binds below may live under /tmp (a cache in
    // /tmp, say) and must be mounted on top of it, not hidden by it.
    args.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(String::from));
    // Only symbolic links (which program `awk` is): nothing private.
    args.extend(["--ro-bind", "/etc/alternatives", "/etc/alternatives"].map(String::from));
    for dir in read_only {
        let dir = dir.display().to_string();
        args.extend(["--ro-bind".into(), dir.clone(), dir]);
    }
    let build = build_dir.display().to_string();
    args.extend(["--bind".into(), build.clone(), build.clone()]);
    args.push("--clearenv".into());
    args.extend(["--setenv".into(), "PATH".into(), format!("{}:/usr/bin", llvm_bin.display())]);
    args.extend(["--setenv".into(), "HOME".into(), build.clone()]);
    args.extend(["--chdir".into(), build]);
    args
}

/// Where `chapter` is built: a directory in the cache per chapter directory
/// and kernel, kept between runs so make rebuilds only what changed.
pub(crate) fn build_dir(env: &Environment, chapter: &Chapter) -> Result<PathBuf> {
    let key = CacheKey::default().add(chapter.dir.to_string_lossy().as_bytes()).add(&env.kernel.key).hex();
    Ok(env.project.cache_dir("modules")?.join(format!("{}-{key}", chapter.name)))
}

/// Whether [`build_isolated`] would find `chapter`'s modules built, with
/// nothing to do: a look that changes nothing and takes no lock, so the
/// answer is a forecast (a run uses it to boot its guest while the build
/// runs). A sandboxed build always starts afresh.
pub(crate) fn is_up_to_date(env: &Environment, chapter: &Chapter, isolation: Isolation) -> Result<bool> {
    if isolation != Isolation::Trusted {
        return Ok(false);
    }
    let build_dir = build_dir(env, chapter)?;
    let built_here = stamp_warnings(&build_dir, &kernel_build_id(env)).is_some()
        && !build_dir.join(BUILDING_MARKER).exists()
        && chapter.modules.iter().all(|name| build_dir.join(format!("{name}.ko")).is_file());
    Ok(built_here && SourceChanges::between(&chapter.dir, &build_dir)?.is_empty())
}

/// [`build`], isolated as asked.
pub(crate) fn build_isolated(env: &Environment, chapter: &Chapter, isolation: Isolation) -> Result<Result<Built, String>> {
    // Untrusted code is built beside its copy (a grading run's own scratch
    // directory), so the build goes when the run does, however it ends.
    let build_dir = match isolation {
        Isolation::Trusted => build_dir(env, chapter)?,
        Isolation::Sandboxed | Isolation::Container => chapter.dir.with_extension("build"),
    };
    // Two runs of one chapter (two terminals) take turns; a build a dead
    // process left half-made (its marker still there) is started afresh,
    // never trusted: a truncated object newer than its source looks done.
    let _lock = CacheLock::acquire(&build_dir.with_extension("lock"), &format!("building {}", chapter.name))?;
    let marker = build_dir.join(BUILDING_MARKER);
    if marker.exists() {
        eprintln!("{}: an earlier build was interrupted; building from scratch", chapter.name);
        std::fs::remove_dir_all(&build_dir)?;
    }
    // The marker goes down before the sources change: interrupted between
    // the two, the directory would be stamped good with sources newer than
    // its modules.
    let changes = SourceChanges::between(&chapter.dir, &build_dir)?;
    if !changes.is_empty() {
        std::fs::create_dir_all(&build_dir)?;
        std::fs::write(&marker, b"")?;
    }
    let changed = changes.apply(&build_dir)?;
    let kbuild_changed = changed.iter().any(|name| name == "Kbuild");
    if isolation == Isolation::Trusted {
        // Names its kernel, so that it goes when that kernel's build does.
        std::fs::write(build_dir.join(crate::kernel::KERNEL_KEY_FILE), &env.kernel.key)?;
        // And its sources, so that it goes when they do (a deleted clone).
        std::fs::write(build_dir.join(crate::kernel::SOURCE_DIR_FILE), std::os::unix::ffi::OsStrExt::as_bytes(chapter.dir.as_os_str()))?;
    }
    let stamp = build_dir.join(BUILT_STAMP);
    // The directory is keyed by the kernel's inputs (and so the toolchain);
    // the stamp also names the kernel build it was made against, so that a
    // kernel rebuilt in place (`setup --rebuild`) is built against again.
    let kernel_build = kernel_build_id(env);
    let warnings_then = stamp_warnings(&build_dir, &kernel_build);
    if changed.is_empty() {
        // With the same sources, make would do nothing.
        if let (Some(warnings), Some(modules)) = (warnings_then.clone(), read_modules(chapter, &build_dir)?) {
            return Ok(Ok(Built { modules, warnings, elapsed: None }));
        }
    }
    let replayable_file = build_dir.join(REPLAYABLE);
    let replay_failed_last = std::fs::read_to_string(&replayable_file).is_ok_and(|id| id == kernel_build);
    let _ = std::fs::remove_file(&replayable_file);
    let stamp_was_there = (std::fs::remove_file(&stamp).is_ok() && warnings_then.is_some()) || replay_failed_last;
    std::fs::write(&marker, b"")?;
    let started = Instant::now();
    let sh = env.shell()?;
    let kdir = &env.kernel.dir;
    let vars = env.toolchain.make_vars();
    let jobs = format!("-j{}", crate::pool::cores());
    // Kbuild's own commands, without make: after a good build here, those
    // it saved here; in a new directory, those of another good build of
    // the same Kbuild against the same kernel build (the commands name the
    // sources relative to their directory).
    // (The template's lock is held, shared, until the replay ends.)
    let replayed_here = build_dir.join(REPLAYED);
    let plan = if !replayable(env) {
        None
    } else if stamp_was_there && !kbuild_changed {
        Plan::saved(&build_dir).map(|plan| (plan, None, !replayed_here.exists()))
    } else {
        from_template(env, chapter, &build_dir).map(|(plan, from, lock)| {
            let deps_known = !from.join(REPLAYED).exists();
            (plan, Some((from, lock)), deps_known)
        })
    };
    if plan.is_none() && replayed_here.exists() {
        // An old replay left dependency lists make cannot trust: make
        // starts from the sources.
        crate::replay::remove_objects(&build_dir)?;
    }
    let replayed = match plan {
        Some((plan, template, deps_known)) => {
            let sandbox = if isolation == Isolation::Sandboxed { sandbox_args(env, &build_dir) } else { Vec::new() };
            plan.run(env, &build_dir, &sandbox, template.as_ref().map(|(from, _)| from.as_path()), deps_known)?
        }
        None => None,
    };
    // Every object here is now absent or described by `fixdep`.
    let _ = std::fs::remove_file(&replayed_here);
    let was_replayed = replayed.is_some();
    let out = match (replayed, isolation) {
        (Some(out), _) => out,
        (None, Isolation::Trusted | Isolation::Container) => make_modules(env, &build_dir, &[])?,
        (None, Isolation::Sandboxed) => {
            let sandbox = sandbox_args(env, &build_dir);
            // bindgen is not needed for modules, and lives outside the sandbox.
            let vars: Vec<&String> = vars.iter().filter(|v| !v.starts_with("BINDGEN=")).collect();
            cmd!(sh, "bwrap {sandbox...} -- make -C {kdir} M={build_dir} {vars...} {jobs} modules").quiet().ignore_status().output()?
        }
    };
    let elapsed = started.elapsed();
    // make ended by itself: whatever it left is consistent (Kbuild deletes
    // the target of a failed rule).
    std::fs::remove_file(&marker)?;
    let show =
        |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&format!("{}/", build_dir.display()), &format!("{}/", chapter.dir.display()));
    let stderr = show(&out.stderr);
    if !out.status.success() {
        if was_replayed {
            std::fs::write(&replayable_file, &kernel_build)?;
        }
        let mut text = stderr.trim_end().to_string();
        if text.is_empty() {
            text = show(&out.stdout);
        }
        let lines: Vec<&str> = text.lines().collect();
        let shown = if lines.len() > ERROR_LINES {
            format!("{}\n... ({} more lines)", lines[..ERROR_LINES].join("\n"), lines.len() - ERROR_LINES)
        } else {
            text.clone()
        };
        return Ok(Err(shown));
    }
    let Some(modules) = read_modules(chapter, &build_dir)? else {
        let missing = chapter.modules.iter().find(|name| !build_dir.join(format!("{name}.ko")).exists());
        return Ok(Err(format!(
            "the build succeeded but made no {}.ko: does the Kbuild say `obj-m := {0}.o`, \
             and does checks.toml name the right modules?",
            missing.map_or("", String::as_str)
        )));
    };
    let warnings = stderr.trim().to_string();
    if isolation != Isolation::Sandboxed {
        std::fs::write(&stamp, format!("{kernel_build}\n{warnings}"))?;
    }
    Ok(Ok(Built { modules, warnings, elapsed: Some(elapsed) }))
}

/// The warnings a good build in `build_dir` left in its stamp, when the
/// stamp is there and names `kernel_build` (see [`kernel_build_id`]).
fn stamp_warnings(build_dir: &Path, kernel_build: &str) -> Option<String> {
    let text = std::fs::read_to_string(build_dir.join(BUILT_STAMP)).ok()?;
    let (id, warnings) = text.split_once('\n').unwrap_or((&text, ""));
    (id == kernel_build).then(|| warnings.to_string())
}

/// Which build of the kernel modules are made against: its image's
/// modification time (the cache key names its inputs, not this build).
pub(crate) fn kernel_build_id(env: &Environment) -> String {
    let modified = std::fs::metadata(&env.kernel.image).and_then(|m| m.modified()).ok();
    let nanos = modified.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    format!("kernel {} {nanos}", env.kernel.key)
}

/// Builds the workbook's own `chapters` (each against its kernel), a core
/// each at once, so that later builds of their copies (mutants, students'
/// submissions) find a template (see [`from_template`]) and replay instead
/// of running make. Cached after the first time. A chapter that does not
/// build only leaves its copies to make, which reports the same.
pub(crate) fn build_templates(chapters: Vec<(&Environment, &Chapter)>) -> Result<()> {
    crate::pool::run(chapters, crate::pool::cores(), |(env, chapter)| {
        let _ = build_isolated(env, chapter, Isolation::Trusted);
        Ok(())
    })?;
    Ok(())
}

/// Whether this kernel's module builds are what [`Plan`] replays: without
/// the steps Kbuild runs beside the saved commands for these options
/// (symbol CRCs appended to the `.cmd` files, BTF added to each `.ko`,
/// `recordmcount` on each object), which no workbook kernel sets.
fn replayable(env: &Environment) -> bool {
    kernel_sets(env, &["CONFIG_MODVERSIONS", "CONFIG_DEBUG_INFO_BTF_MODULES", "CONFIG_FTRACE_MCOUNT_USE_RECORDMCOUNT"]) == Some(false)
}

/// Whether the kernel build's configuration sets (`=y`) any of `options`;
/// `None` when it cannot be read.
fn kernel_sets(env: &Environment, options: &[&str]) -> Option<bool> {
    let config = std::fs::read_to_string(env.kernel.dir.join("include/config/auto.conf")).ok()?;
    Some(config.lines().any(|line| options.iter().any(|option| line.strip_suffix("=y") == Some(option))))
}

/// The saved commands of another good build of `chapter`'s modules against
/// this kernel build, from the same `Kbuild`, the most recent in the
/// cache, with what they need besides the sources copied into `build_dir`
/// (see [`crate::replay`]). A fresh clone, a mutant and a submission then
/// cost their compilers, not make's reading of the kernel's Makefiles
/// (about 1.7 s a build on 2 cores). A build directory is read under its
/// lock, shared: other builds read it at once, and one being rebuilt is
/// passed over.
fn from_template(env: &Environment, chapter: &Chapter, build_dir: &Path) -> Option<(Plan, PathBuf, CacheLock)> {
    if kernel_sets(env, &["CONFIG_DEBUG_INFO"]) != Some(false) {
        // Objects and `.mod.o` files name the directory they were compiled
        // in: the template's copies would name the template.
        return None;
    }
    let kbuild = std::fs::read(build_dir.join("Kbuild")).ok()?;
    let kernel_build = kernel_build_id(env);
    let prefix = format!("{}-", chapter.name);
    // Those whose dependency lists are Kbuild's first (their objects can be
    // copied), then the most recent.
    let mut found: Vec<(bool, std::time::SystemTime, PathBuf)> = std::fs::read_dir(env.project.cache_dir("modules").ok()?)
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .filter(|dir| dir.is_dir() && dir != build_dir)
        .filter_map(|dir| {
            Some((!dir.join(REPLAYED).exists(), std::fs::metadata(dir.join(BUILT_STAMP)).and_then(|m| m.modified()).ok()?, dir))
        })
        .collect();
    found.sort();
    found.into_iter().rev().find_map(|(_, _, from)| {
        let lock = CacheLock::try_acquire_shared(&from.with_extension("lock")).ok()??;
        let good = stamp_warnings(&from, &kernel_build).is_some()
            && !from.join(BUILDING_MARKER).exists()
            && std::fs::read(from.join("Kbuild")).is_ok_and(|theirs| theirs == kbuild);
        // A command that names its own directory (`-I$(M)`) would read the
        // template's files, not this directory's.
        let plan = Plan::saved(&from).filter(|plan| good && !plan.mentions(&from))?;
        crate::replay::seed(&from, build_dir).ok()?;
        Some((plan, from, lock))
    })
}

/// Each of the chapter's modules with its `.ko`, or `None` when one is missing.
fn read_modules(chapter: &Chapter, build_dir: &Path) -> Result<Option<Modules>> {
    let mut modules = Vec::new();
    for name in &chapter.modules {
        match std::fs::read(build_dir.join(format!("{name}.ko"))) {
            Ok(image) => modules.push((name.clone(), image)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(modules))
}

/// `make modules` of the module in `dir` against the guest kernel, on the
/// host, with `extra` make arguments (e.g. `CLIPPY=1`); the caller reads the
/// outcome.
pub(crate) fn make_modules(env: &Environment, dir: &Path, extra: &[String]) -> Result<std::process::Output> {
    let sh = env.shell()?;
    let kdir = &env.kernel.dir;
    let vars = env.toolchain.make_vars();
    let jobs = format!("-j{}", crate::pool::cores());
    Ok(cmd!(sh, "make -C {kdir} M={dir} {vars...} {extra...} {jobs} modules").quiet().ignore_status().output()?)
}

/// The module sources in `dir` (the files a build copies: see
/// [`is_module_source`]) with their contents, sorted by name.
pub(crate) fn module_sources(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if is_module_source(&name) && entry.file_type()?.is_file() {
            sources.push((name, std::fs::read(entry.path())?));
        }
    }
    sources.sort();
    Ok(sources)
}

/// What [`sync_sources`] would do: the sources of `from` whose contents
/// differ in `to` (with those contents), and the sources `to` has that
/// `from` no longer does.
struct SourceChanges {
    write: Vec<(String, Vec<u8>)>,
    remove: Vec<String>,
}

impl SourceChanges {
    fn between(from: &Path, to: &Path) -> Result<SourceChanges> {
        let mut write = Vec::new();
        let mut wanted = Vec::new();
        for (name, data) in module_sources(from)? {
            wanted.push(name.clone());
            if std::fs::read(to.join(&name)).ok().as_deref() != Some(&data[..]) {
                write.push((name, data));
            }
        }
        let mut remove = Vec::new();
        if let Ok(entries) = std::fs::read_dir(to) {
            for entry in entries {
                let name = entry?.file_name().to_string_lossy().to_string();
                if is_module_source(&name) && !wanted.contains(&name) {
                    remove.push(name);
                }
            }
        }
        Ok(SourceChanges { write, remove })
    }

    fn is_empty(&self) -> bool {
        self.write.is_empty() && self.remove.is_empty()
    }

    /// Makes the changes in `to`; the names of the files written or removed.
    fn apply(self, to: &Path) -> Result<Vec<String>> {
        std::fs::create_dir_all(to)?;
        let mut changed = Vec::new();
        for (name, data) in self.write {
            std::fs::write(to.join(&name), data)?;
            changed.push(name);
        }
        for name in self.remove {
            std::fs::remove_file(to.join(&name))?;
            changed.push(name);
        }
        Ok(changed)
    }
}

/// Copies the module sources of `from` into `to`, rewriting only files whose
/// contents changed and removing sources that are gone; the names of those
/// written or removed.
pub(crate) fn sync_sources(from: &Path, to: &Path) -> Result<Vec<String>> {
    SourceChanges::between(from, to)?.apply(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_mounts_private_tmp_before_what_lives_under_tmp() {
        let args =
            sandbox_args_for(&[PathBuf::from("/tmp/cache/kernel")], Path::new("/tmp/cache/build"), Path::new("/usr/lib/llvm-19/bin"));
        let at = |s: &str| args.iter().position(|a| a == s).unwrap();
        assert!(at("/tmp") < at("/tmp/cache/kernel") && at("/tmp") < at("/tmp/cache/build"), "{args:?}");
        assert!(args.windows(3).any(|w| w == ["--bind", "/tmp/cache/build", "/tmp/cache/build"]));
        assert!(!args.iter().any(|a| a.starts_with("/etc/") && a != "/etc/alternatives"), "no host configuration: {args:?}");
    }

    #[test]
    fn sync_rewrites_only_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let (src, dst) = (base.join("src"), base.join("dst"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("Kbuild"), "obj-m := a.o\n").unwrap();
        std::fs::write(src.join("a.rs"), "// a\n").unwrap();
        std::fs::write(src.join("checks.toml"), "x").unwrap();
        std::fs::write(src.join("a.mod.c"), "/* modpost's */").unwrap();
        assert_eq!(sync_sources(&src, &dst).unwrap().len(), 2, "a first copy is a change");
        assert!(dst.join("a.rs").exists() && !dst.join("checks.toml").exists());
        assert!(sync_sources(&src, &dst).unwrap().is_empty(), "the same sources again are not");
        let before = std::fs::metadata(dst.join("a.rs")).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dst.join("a.o"), "object").unwrap();
        std::fs::write(dst.join("a.mod.c"), "/* modpost's */").unwrap();
        std::fs::remove_file(src.join("Kbuild")).unwrap();
        assert_eq!(sync_sources(&src, &dst).unwrap(), ["Kbuild"], "a removed source is a change");
        assert_eq!(std::fs::metadata(dst.join("a.rs")).unwrap().modified().unwrap(), before);
        assert!(!dst.join("Kbuild").exists() && dst.join("a.o").exists() && dst.join("a.mod.c").exists(), "Kbuild's outputs stay");
    }
}
