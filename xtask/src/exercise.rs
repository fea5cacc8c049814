// SPDX-License-Identifier: GPL-2.0

//! Exercises: the learner's copy of each chapter, with the parts to write
//! removed. Skeletons are generated from the solutions (the chapters
//! themselves), never kept as a second copy. A region of a solution source
//! is marked like this:
//!
//! ```text
//! // EXERCISE: what to write, in one line
//! // HINT: a hint, shown by `cargo xtask hint` (any number of lines)
//! // STUB: code kept in the skeleton instead, e.g. to keep it compiling
//! ...the solution...
//! // END EXERCISE
//! ```
//!
//! The skeleton keeps the marker's indentation and says `TODO: ...`.

use std::path::{Path, PathBuf};

use crate::chapter::Chapter;
use crate::module_build::is_module_source;
use crate::paths::{read_to_string, write_atomic, Project};
use crate::Result;
use anyhow::{anyhow, Context};

/// The learner's progress file, inside the learner's directory.
pub(crate) const PROGRESS_FILE: &str = ".progress";

/// One region to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    /// The source file it is in.
    pub(crate) file: String,
    /// The line of its `EXERCISE:` marker (1-based).
    pub(crate) line: usize,
    /// What to write.
    pub(crate) instruction: String,
    /// Hints, in order.
    pub(crate) hints: Vec<String>,
    /// The solution's lines, markers left out.
    pub(crate) solution: Vec<String>,
}

/// A source turned into its skeleton, with its regions.
pub(crate) fn skeleton(file: &str, source: &str) -> Result<(String, Vec<Region>)> {
    let mut out = String::new();
    let mut regions = Vec::new();
    let mut open: Option<(Region, String, Vec<String>)> = None;
    for (index, line) in source.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let at = format!("{file}:{}", index + 1);
        if let Some(instruction) = trimmed.strip_prefix("// EXERCISE:") {
            if open.is_some() {
                return Err(anyhow!("{at}: an EXERCISE inside another one (close the first with `// END EXERCISE`)"));
            }
            let region = Region {
                file: file.to_string(),
                line: index + 1,
                instruction: instruction.trim().to_string(),
                hints: Vec::new(),
                solution: Vec::new(),
            };
            open = Some((region, indent.to_string(), Vec::new()));
        } else if trimmed.starts_with("// END EXERCISE") {
            let Some((region, indent, stub)) = open.take() else {
                return Err(anyhow!("{at}: `// END EXERCISE` without an `// EXERCISE:` before it"));
            };
            out.push_str(&format!("{indent}// TODO: {}\n", region.instruction));
            out.push_str(&format!("{indent}// (`cargo xtask hint` has a hint; `cargo xtask check` checks your work)\n"));
            for code in stub {
                out.push_str(&format!("{indent}{code}\n"));
            }
            regions.push(region);
        } else if let Some((region, _, stub)) = open.as_mut() {
            if let Some(hint) = trimmed.strip_prefix("// HINT:") {
                region.hints.push(hint.trim().to_string());
            } else if let Some(code) = trimmed.strip_prefix("// STUB:") {
                stub.push(code.strip_prefix(' ').unwrap_or(code).to_string());
            } else {
                region.solution.push(line.to_string());
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some((region, _, _)) = open {
        return Err(anyhow!("{file}:{}: this EXERCISE has no `// END EXERCISE`", region.line));
    }
    Ok((out, regions))
}

/// Every region of a chapter's sources.
pub(crate) fn regions(chapter: &Chapter) -> Result<Vec<Region>> {
    let mut all = Vec::new();
    for name in module_sources(&chapter.dir)? {
        let (_, regions) = skeleton(&name, &read_to_string(&chapter.dir.join(&name))?)?;
        all.extend(regions);
    }
    Ok(all)
}

pub(crate) fn module_sources(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| is_module_source(n) && n != "Kbuild")
        .collect();
    names.sort();
    Ok(names)
}

/// Writes `chapter`'s skeleton into `dest`: every file of the chapter, the
/// module sources with their regions removed.
pub(crate) fn write_skeleton(chapter: &Chapter, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(&chapter.dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        if name == crate::mutation::MUTATIONS_FILE {
            continue;
        }
        let data = std::fs::read(entry.path())?;
        let data = if is_module_source(&name) && name != "Kbuild" {
            skeleton(&name, std::str::from_utf8(&data).map_err(|_| anyhow!("{name} is not UTF-8"))?)?.0.into_bytes()
        } else {
            data
        };
        std::fs::write(dest.join(&name), data)?;
    }
    Ok(())
}

/// Where the learner's copy lives: `WORKBOOK_LEARN_DIR`, else `learn/` at
/// the top of the repository (ignored by git).
pub(crate) fn learner_root(project: &Project) -> PathBuf {
    match std::env::var_os("WORKBOOK_LEARN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => project.root.join("learn"),
    }
}

/// Renames the learner's chapter directories made before the chapters were
/// renumbered (`learn/04-ipc` to `learn/06-ipc`), saying so; one whose new
/// name is taken already is left where it is, with a note.
pub(crate) fn migrate_renumbered(root: &Path) -> Result<()> {
    for (old, new) in crate::chapter::RENUMBERED {
        let (from, to) = (root.join(old), root.join(new));
        if !from.is_dir() {
            continue;
        }
        if to.exists() {
            println!("note: {} is from before the chapters were renumbered; your work for {new} is in {}", from.display(), to.display());
            continue;
        }
        std::fs::rename(&from, &to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
        println!("renamed  {} to {} (the chapters were renumbered)", from.display(), to.display());
    }
    Ok(())
}

/// The chapters that have exercises, in order.
pub(crate) fn exercise_chapters(project: &Project) -> Result<Vec<Chapter>> {
    let mut chapters = Vec::new();
    for chapter in crate::chapter::workbook_chapters(project)? {
        if !regions(&chapter)?.is_empty() {
            chapters.push(chapter);
        }
    }
    Ok(chapters)
}

/// The learner's progress: the chapters done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LearnerProgress {
    /// Names of the chapters whose checks passed.
    pub(crate) done: Vec<String>,
}

impl LearnerProgress {
    /// Reads the progress file in `root`, empty when there is none.
    pub(crate) fn load(root: &Path) -> LearnerProgress {
        let text = std::fs::read_to_string(root.join(PROGRESS_FILE)).unwrap_or_default();
        let mut progress = LearnerProgress { done: Vec::new() };
        for name in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            progress.mark_done(crate::chapter::renumbered(name).unwrap_or(name));
        }
        progress
    }

    /// Writes it back.
    pub(crate) fn save(&self, root: &Path) -> Result<()> {
        let mut text = String::from("# Chapters whose checks passed, one a line (cargo xtask check/watch).\n");
        for name in &self.done {
            text.push_str(name);
            text.push('\n');
        }
        write_atomic(&root.join(PROGRESS_FILE), text.as_bytes())
    }

    /// Records a chapter as done.
    pub(crate) fn mark_done(&mut self, name: &str) {
        if !self.done.iter().any(|d| d == name) {
            self.done.push(name.to_string());
        }
    }

    /// Whether a chapter is done.
    pub(crate) fn is_done(&self, name: &str) -> bool {
        self.done.iter().any(|d| d == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workbook is a workbook: at least 4 exercises in every chapter
    /// and 40 in all, each with an instruction and two or more hints.
    #[test]
    fn every_chapter_has_enough_exercises_with_hints() {
        let chapters = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../chapters");
        let mut total = 0;
        let mut problems = Vec::new();
        for entry in std::fs::read_dir(&chapters).unwrap() {
            let dir = entry.unwrap().path();
            if !dir.join("checks.toml").exists() {
                continue;
            }
            let chapter = Chapter::load(&dir).unwrap();
            let regions = regions(&chapter).unwrap();
            total += regions.len();
            if regions.len() < 4 {
                problems.push(format!("{} has {} exercises, fewer than 4", chapter.name, regions.len()));
            }
            for region in regions.iter().filter(|r| r.hints.len() < 2 || r.instruction.is_empty()) {
                problems.push(format!(
                    "{}/{}:{}: {} hint(s); every exercise has an instruction and two or more",
                    chapter.name,
                    region.file,
                    region.line,
                    region.hints.len()
                ));
            }
        }
        if total < 40 {
            problems.push(format!("{total} exercises in all, fewer than 40"));
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn learner_work_from_the_old_numbering_is_carried_over() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for dir in ["04-ipc", "06-procfs", "05-sockets", "08-sockets"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("04-ipc/msgq.rs"), "mine").unwrap();
        std::fs::write(root.join(PROGRESS_FILE), "# done\n01-hello\n04-ipc\n06-procfs\n").unwrap();
        migrate_renumbered(&root).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("06-ipc/msgq.rs")).unwrap(), "mine");
        assert!(root.join("04-procfs").is_dir() && !root.join("06-procfs").exists());
        // The new name was taken: both stay, nothing is overwritten.
        assert!(root.join("05-sockets").is_dir() && root.join("08-sockets").is_dir());
        assert_eq!(LearnerProgress::load(&root).done, ["01-hello", "06-ipc", "04-procfs"]);
    }

    const SOLUTION: &str = "fn main() {\n    let a = 1;\n    // EXERCISE: print a\n    // HINT: use pr_info!\n    // STUB: let _ = a;\n    pr_info!(\"{a}\");\n    // END EXERCISE\n}\n";

    #[test]
    fn skeleton_removes_the_solution_and_keeps_the_stub() {
        let (text, regions) = skeleton("a.rs", SOLUTION).unwrap();
        assert!(!text.contains("pr_info!"), "{text}");
        assert!(text.contains("    // TODO: print a\n"), "{text}");
        assert!(text.contains("    let _ = a;\n"), "{text}");
        assert!(!text.contains("HINT") && !text.contains("STUB") && !text.contains("EXERCISE"), "{text}");
        assert_eq!(
            regions,
            vec![Region {
                file: "a.rs".into(),
                line: 3,
                instruction: "print a".into(),
                hints: vec!["use pr_info!".into()],
                solution: vec!["    pr_info!(\"{a}\");".into()]
            }]
        );
    }

    #[test]
    fn malformed_markers_name_the_line() {
        let err = |s: &str| skeleton("a.rs", s).unwrap_err().to_string();
        assert!(err("// EXERCISE: x\n").contains("a.rs:1: this EXERCISE has no `// END EXERCISE`"));
        assert!(err("// END EXERCISE\n").contains("a.rs:1: `// END EXERCISE` without"));
        assert!(err("// EXERCISE: x\n// EXERCISE: y\n").contains("a.rs:2: an EXERCISE inside another one"));
    }

    #[test]
    fn progress_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(&root).unwrap();
        let mut p = LearnerProgress::load(&root);
        assert!(p.done.is_empty());
        p.mark_done("01-hello");
        p.mark_done("01-hello");
        p.save(&root).unwrap();
        assert_eq!(LearnerProgress::load(&root).done, vec!["01-hello"]);
    }
}
