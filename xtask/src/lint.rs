// SPDX-License-Identifier: GPL-2.0

//! The kernel's own discipline on the chapters: `rustfmt` with the kernel's
//! `.rustfmt.toml`, and each module built with `CLIPPY=1` (the kernel's lint
//! set, `undocumented_unsafe_blocks` among them) with no warning; and the
//! usual `cargo fmt`/`cargo clippy` over the workspace.

use std::path::{Path, PathBuf};

use xshell::{cmd, Shell};

use crate::chapter::Chapter;
use crate::hash::CacheKey;
use crate::setup::Environment;
use crate::toolchain::{self, Install};
use crate::Result;
use anyhow::Context;

/// Debian's clippy and rustfmt for the pinned rustc (installed when linting
/// is first asked for, not for a learner's first verdict).
pub(crate) const LINT_PACKAGES: &[&str] = &["rust-web-clippy", "rustfmt-web"];
/// Where those packages put their tools.
const CLIPPY_DRIVER: &str = "/usr/bin/clippy-driver";
const RUSTFMT: &str = "/usr/bin/rustfmt";

/// One lint's outcome: its name and, when it failed, what it printed.
pub(crate) type Outcome = (String, Result<(), String>);

/// The Rust sources under `dir`, recursively, sorted.
fn rust_sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(rust_sources(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// `rustfmt --check` with the kernel's configuration over `dirs`.
pub(crate) fn kernel_rustfmt(env: &Environment, dirs: &[PathBuf]) -> Result<Result<(), String>> {
    let sh = Shell::new()?;
    let config = env.kernel.source.join(".rustfmt.toml");
    let mut files = Vec::new();
    for dir in dirs {
        files.extend(rust_sources(dir)?);
    }
    let out = cmd!(sh, "{RUSTFMT} --check --edition 2021 --config-path {config} {files...}").quiet().ignore_status().output()?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(Err(format!(
        "not formatted as the kernel's .rustfmt.toml wants (fix: `{RUSTFMT} --edition 2021 --config-path {} FILE`):\n{}",
        config.display(),
        crate::kernel::tail(&text, 40)
    )))
}

/// How [`kernel_clippy`] judged a chapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judged {
    /// By a build with `CLIPPY=1`.
    Built,
    /// By an earlier clean build of the same inputs (see [`ClippyKey`]).
    Recorded,
}

/// Everything a `CLIPPY=1` build of a chapter reads that can change: the
/// chapter's sources, the kernel build it is made against (with the
/// toolchain its cache key names) and the clippy driver. Two builds with
/// the same key print the same warnings, so a clean one is recorded under
/// it and not repeated, as cargo keeps its clippy verdicts per crate.
struct ClippyKey(String);

impl ClippyKey {
    fn of(env: &Environment, chapter: &Chapter) -> Result<ClippyKey> {
        let driver = std::fs::metadata(CLIPPY_DRIVER).with_context(|| format!("{CLIPPY_DRIVER} is missing"))?;
        let modified = driver.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let kernel = format!("{} {}", env.kernel.key, crate::module_build::kernel_build_id(env));
        ClippyKey::from_parts(chapter, &kernel, &format!("{CLIPPY_DRIVER} {} {modified}", driver.len()))
    }

    /// The key of `chapter`'s sources (the files a build copies) built
    /// against `kernel` with `driver`.
    fn from_parts(chapter: &Chapter, kernel: &str, driver: &str) -> Result<ClippyKey> {
        let mut key = CacheKey::default().add("CLIPPY=1, warnings fail").add(kernel).add(driver);
        for (name, data) in crate::module_build::module_sources(&chapter.dir)? {
            key = key.add(name).add(data);
        }
        Ok(ClippyKey(format!("{}-{}", chapter.name, key.hex())))
    }

    /// The record of a clean build under this key.
    fn record(&self, env: &Environment) -> Result<PathBuf> {
        Ok(env.project.cache_dir("clippy-clean")?.join(&self.0))
    }
}

/// Judges `chapter` by the kernel's `CLIPPY=1`: by a build, unless a clean
/// build of the same inputs was recorded.
pub(crate) fn kernel_clippy_recorded(env: &Environment, chapter: &Chapter) -> Result<(Result<(), String>, Judged)> {
    let record = ClippyKey::of(env, chapter)?.record(env)?;
    if record.is_file() {
        return Ok((Ok(()), Judged::Recorded));
    }
    let outcome = kernel_clippy(env, chapter)?;
    if outcome.is_ok() {
        std::fs::write(&record, b"")?;
    }
    Ok((outcome, Judged::Built))
}

/// Builds `chapter` from scratch with `CLIPPY=1`; any warning fails.
pub(crate) fn kernel_clippy(env: &Environment, chapter: &Chapter) -> Result<Result<(), String>> {
    let dir = env.project.cache_dir("clippy")?.join(&chapter.name);
    let _ = std::fs::remove_dir_all(&dir);
    crate::module_build::sync_sources(&chapter.dir, &dir)?;
    let out = crate::module_build::make_modules(env, &dir, &["CLIPPY=1".into(), format!("CLIPPY_DRIVER={CLIPPY_DRIVER}")])?;
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", dir.display()), &format!("{}/", chapter.dir.display()));
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning") || l.starts_with("error")).collect();
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() && warnings.is_empty() {
        Ok(Ok(()))
    } else {
        Ok(Err(crate::kernel::tail(&stderr, 60)))
    }
}

/// Every lint: the chapters' and planted modules' format, each chapter's
/// clippy build, and the workspace's fmt and clippy.
pub(crate) fn all(env: &Environment, chapters: &[Chapter], install: Install) -> Result<Vec<Outcome>> {
    let sh = Shell::new()?;
    toolchain::ensure_debian_packages(&sh, LINT_PACKAGES, install)?;
    let mut outcomes = Vec::new();
    let dirs = [env.project.chapters_dir(), crate::planted::root(&env.project)];
    outcomes.push(("lint: chapters formatted with the kernel's rustfmt".to_string(), kernel_rustfmt(env, &dirs)?));
    // A chapter's build is one rustc, one core: a build per core at once.
    let clippy = crate::pool::run(chapters.iter().collect(), crate::pool::cores(), |chapter| kernel_clippy_recorded(env, chapter))?;
    for (chapter, (outcome, judged)) in chapters.iter().zip(clippy) {
        let how = match judged {
            Judged::Built => "",
            Judged::Recorded => " (its sources, kernel build and clippy unchanged since a clean build)",
        };
        outcomes.push((format!("lint: {} has no warning under the kernel's CLIPPY=1{how}", chapter.name), outcome));
    }
    outcomes.extend(negative(env, chapters)?);
    sh.change_dir(&env.project.root);
    let fmt = cmd!(sh, "cargo fmt --all --check -- --color never").quiet().ignore_status().output()?;
    outcomes.push((
        "lint: the workspace is formatted (cargo fmt --check)".to_string(),
        if fmt.status.success() { Ok(()) } else { Err(crate::kernel::tail(&String::from_utf8_lossy(&fmt.stdout), 30)) },
    ));
    // In a target directory of the cache's: the crates the workspace uses
    // are checked once per machine, not once per clone (20 s on 2 cores).
    let target = env.project.cache_dir("cargo-clippy")?;
    let clippy =
        cmd!(sh, "cargo clippy --workspace --all-targets --quiet --target-dir {target} -- -D warnings").quiet().ignore_status().output()?;
    outcomes.push((
        "lint: the workspace has no clippy warning".to_string(),
        if clippy.status.success() { Ok(()) } else { Err(crate::kernel::tail(&String::from_utf8_lossy(&clippy.stderr), 40)) },
    ));
    Ok(outcomes)
}

/// The lints can fail: a chapter with a SAFETY comment removed must fail the
/// kernel's clippy, and a misformatted one the kernel's rustfmt.
pub(crate) fn negative(env: &Environment, chapters: &[Chapter]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    let Some(chapter) = chapters.iter().find(|c| c.name.ends_with("procfs")) else {
        return Ok(outcomes);
    };
    let work = env.project.cache_dir("lint-negative")?;
    let dir = work.join(&chapter.name);
    let _ = std::fs::remove_dir_all(&dir);
    crate::module_build::sync_sources(&chapter.dir, &dir)?;
    let source = rust_sources(&dir)?.into_iter().next().context("the procfs chapter has no Rust source")?;
    let text = std::fs::read_to_string(&source)?;
    std::fs::write(&source, text.replacen("// SAFETY:", "// Note:", 1))?;
    let broken = Chapter { dir: dir.clone(), ..chapter.clone() };
    let clippy = kernel_clippy(env, &broken)?;
    outcomes.push((
        "lint: a missing SAFETY comment fails the kernel's CLIPPY=1".to_string(),
        match clippy {
            Err(text) if text.contains("undocumented_unsafe_blocks") || text.contains("safety comment") => Ok(()),
            Err(text) => Err(format!("failed, but not for the SAFETY comment:\n{text}")),
            Ok(()) => Err("passed".into()),
        },
    ));
    std::fs::write(&source, text.replacen("fn ", "fn  ", 1))?;
    let fmt = kernel_rustfmt(env, std::slice::from_ref(&dir))?;
    outcomes.push((
        "lint: a misformatted chapter fails the kernel's rustfmt".to_string(),
        if fmt.is_err() { Ok(()) } else { Err("passed".into()) },
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clippy_record_names_every_input() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("01-hello");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("hello.rs"), "fn a() {}\n").unwrap();
        std::fs::write(dir.join("Kbuild"), "obj-m := hello.o\n").unwrap();
        std::fs::write(dir.join("checks.toml"), "title = \"x\"\n").unwrap();
        let chapter = Chapter {
            name: "01-hello".into(),
            dir: dir.clone(),
            title: String::new(),
            modules: Vec::new(),
            files: Vec::new(),
            programs: Vec::new(),
            steps: Vec::new(),
        };
        let key = |kernel: &str, driver: &str| ClippyKey::from_parts(&chapter, kernel, driver).unwrap().0;
        let first = key("k", "d");
        assert!(first.starts_with("01-hello-"));
        assert_eq!(key("k", "d"), first);
        assert_ne!(key("k2", "d"), first);
        assert_ne!(key("k", "d2"), first);
        // What no build reads changes nothing.
        std::fs::write(dir.join("checks.toml"), "title = \"y\"\n").unwrap();
        assert_eq!(key("k", "d"), first);
        std::fs::write(dir.join("hello.rs"), "fn b() {}\n").unwrap();
        assert_ne!(key("k", "d"), first);
        std::fs::write(dir.join("hello.rs"), "fn a() {}\n").unwrap();
        std::fs::write(dir.join("extra.h"), "").unwrap();
        assert_ne!(key("k", "d"), first);
    }
}
