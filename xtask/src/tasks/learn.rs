// SPDX-License-Identifier: GPL-2.0

//! The learner's loop: a copy of every chapter with the parts to write
//! removed (`exercises init`), checked in the guest (`check`), rechecked on
//! every save (`watch`), with hints, resets and, once earned, the solution.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use xshell::cmd;

use crate::chapter::Chapter;
use crate::exercise::{self, LearnerProgress};
use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::module_build::is_module_source;
use crate::paths::{read_to_string, Project};
use crate::session::{run_chapters, GuestOptions};
use crate::setup::{self, Environment};
use crate::Result;
use anyhow::anyhow;

/// `cargo xtask exercises init`: the learner's copy, one directory per
/// chapter, each ready for an editor (a `rust-project.json` for
/// rust-analyzer). Existing work is kept unless `force`.
pub(crate) fn init(flags: &Flags, force: bool) -> Result<bool> {
    let project = Project::discover()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let root = exercise::learner_root(&project);
    exercise::migrate_renumbered(&root)?;
    let chapters = exercise::exercise_chapters(&project)?;
    for chapter in &chapters {
        let dest = root.join(&chapter.name);
        if dest.exists() && !force {
            println!("kept     {} (your work; `cargo xtask reset {}` starts it again)", dest.display(), chapter.name);
        } else {
            exercise::write_skeleton(chapter, &dest)?;
            editor_support(&env, &dest)?;
            let count = exercise::regions(chapter)?.len();
            println!("created  {} ({count} part(s) to write)", dest.display());
        }
    }
    let progress = LearnerProgress::load(&root);
    println!(
        "\n{} exercises in {}, {} done. Open a chapter's sources in your editor and run\n  cargo xtask watch\nto check your work on every save.",
        chapters.len(),
        root.display(),
        progress.done.len()
    );
    Ok(true)
}

/// Writes `rust-project.json` into `dir` so rust-analyzer knows the
/// kernel's crates (the kernel's own `make rust-analyzer` for modules).
fn editor_support(env: &Environment, dir: &Path) -> Result<()> {
    let sh = env.shell()?;
    let kdir = &env.kernel.dir;
    let vars = env.toolchain.make_vars();
    let out = cmd!(sh, "make -C {kdir} M={dir} {vars...} rust-analyzer").quiet().ignore_status().output()?;
    if !out.status.success() || !dir.join("rust-project.json").exists() {
        println!(
            "note: no rust-project.json for {} (editor completion will be limited):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The learner's directory of `name`, which must exist.
fn learner_chapter(project: &Project, name: &str) -> Result<(Chapter, PathBuf)> {
    exercise::migrate_renumbered(&exercise::learner_root(project))?;
    let chapter = Chapter::find(project, name)?;
    let dir = exercise::learner_root(project).join(&chapter.name);
    if !dir.is_dir() {
        return Err(anyhow!("{} does not exist: run `cargo xtask exercises init` first", dir.display()));
    }
    Ok((chapter, dir))
}

/// `cargo xtask check CHAPTER`: the learner's module against the workbook's
/// own checks (never the copy's, which the learner may have edited).
pub(crate) fn check(flags: &Flags, name: &str) -> Result<bool> {
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    check_one(&env, flags, name)
}

fn check_one(env: &Environment, flags: &Flags, name: &str) -> Result<bool> {
    let (mut chapter, dir) = learner_chapter(&env.project, name)?;
    chapter.dir = dir;
    let guest = GuestOptions { root_cause_first: true, ..flags.guest.clone() };
    let result = run_chapters(env, std::slice::from_ref(&chapter), &guest, "learn")?;
    let root = exercise::learner_root(&env.project);
    let mut progress = LearnerProgress::load(&root);
    let passed = result.passed();
    if passed {
        progress.mark_done(&chapter.name);
        progress.save(&root)?;
    }
    let total = exercise::exercise_chapters(&env.project)?.len();
    println!("progress: {}/{total} done", progress.done.len());
    if !passed {
        println!("hint: `cargo xtask hint {}`", chapter.name);
    }
    Ok(passed)
}

/// `cargo xtask hint CHAPTER`.
pub(crate) fn hint(name: &str) -> Result<bool> {
    let project = Project::discover()?;
    let chapter = Chapter::find(&project, name)?;
    for region in exercise::regions(&chapter)? {
        println!("{}:{}: {}", region.file, region.line, region.instruction);
        for hint in &region.hints {
            println!("  hint: {hint}");
        }
    }
    Ok(true)
}

/// `cargo xtask reset CHAPTER`: the chapter's skeleton again.
pub(crate) fn reset(name: &str) -> Result<bool> {
    let project = Project::discover()?;
    let (chapter, dir) = learner_chapter(&project, name)?;
    exercise::write_skeleton(&chapter, &dir)?;
    println!("reset {} to its skeleton", dir.display());
    Ok(true)
}

/// `cargo xtask solution CHAPTER [--force]`: the reference solution, once
/// the chapter passed (or when asked with `--force`).
pub(crate) fn solution(name: &str, force: bool) -> Result<bool> {
    let project = Project::discover()?;
    let chapter = Chapter::find(&project, name)?;
    let progress = LearnerProgress::load(&exercise::learner_root(&project));
    if !force && !progress.is_done(&chapter.name) {
        return Err(anyhow!(
            "{} is not done yet: the solution shows once its checks pass (`cargo xtask check {}`), or now with --force",
            chapter.name,
            chapter.name
        ));
    }
    for region in exercise::regions(&chapter)? {
        let source = read_to_string(&chapter.dir.join(&region.file))?;
        println!("== {}:{}: {}", region.file, region.line, region.instruction);
        for line in source.lines().skip(region.line).take_while(|l| !l.trim_start().starts_with("// END EXERCISE")) {
            let trimmed = line.trim_start();
            if !trimmed.starts_with("// HINT:") && !trimmed.starts_with("// STUB:") {
                println!("{line}");
            }
        }
    }
    Ok(true)
}

/// What the learner's sources look like now, to notice a save.
fn snapshot(dir: &Path) -> Vec<(String, SystemTime, u64)> {
    let mut files: Vec<(String, SystemTime, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| is_module_source(&e.file_name().to_string_lossy()))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.file_name().to_string_lossy().to_string(), meta.modified().ok()?, meta.len()))
        })
        .collect();
    files.sort();
    files
}

/// `cargo xtask watch`: checks the first unfinished exercise, then again on
/// every save; moves on when it passes. Ctrl-C ends it.
pub(crate) fn watch(flags: &Flags) -> Result<bool> {
    let project = Project::discover()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let root = exercise::learner_root(&project);
    if !root.is_dir() {
        return Err(anyhow!("{} does not exist: run `cargo xtask exercises init` first", root.display()));
    }
    exercise::migrate_renumbered(&root)?;
    let chapters = exercise::exercise_chapters(&project)?;
    loop {
        let progress = LearnerProgress::load(&root);
        let Some(current) = chapters.iter().find(|c| !progress.is_done(&c.name)) else {
            println!("All {} exercises done. Well done!", chapters.len());
            return Ok(true);
        };
        let dir = root.join(&current.name);
        println!("\n>> {}: {} ({})", current.name, current.title, dir.display());
        let mut seen = snapshot(&dir);
        if check_one(&env, flags, &current.name)? {
            println!(">> {} passes: on to the next one", current.name);
            continue;
        }
        println!(">> waiting for you to save a file in {} (Ctrl-C to stop)", dir.display());
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = snapshot(&dir);
            if now != seen {
                seen = now;
                break;
            }
        }
    }
}
