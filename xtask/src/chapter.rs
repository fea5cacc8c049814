// SPDX-License-Identifier: GPL-2.0

//! A chapter: a directory with one out-of-tree module (`Kbuild` and its
//! sources) and `checks.toml`, the steps the guest runs and what each must
//! show. The format is documented in the book's appendix for instructors.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::paths::{read_to_string, Project};
use crate::Result;
use anyhow::anyhow;
use anyhow::Context;

/// The file in a chapter directory that declares its checks.
pub(crate) const CHECKS_FILE: &str = "checks.toml";

/// Chapters whose number changed when the workbook was reordered (old name,
/// new name): a learner's `learn/` and progress from before still work.
pub(crate) const RENUMBERED: [(&str, &str); 3] = [("04-ipc", "06-ipc"), ("05-sockets", "08-sockets"), ("06-procfs", "04-procfs")];

/// The new name of a chapter that was renumbered.
pub(crate) fn renumbered(old: &str) -> Option<&'static str> {
    RENUMBERED.iter().find(|(o, _)| *o == old).map(|(_, new)| *new)
}

/// A step's time limit when the chapter gives none. No reference step takes
/// over 3.5 s on either kernel; a module that hangs costs this long.
pub(crate) const DEFAULT_STEP_TIMEOUT_SECS: u64 = 10;

/// `checks.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksFile {
    title: String,
    modules: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    programs: Vec<String>,
    #[serde(default)]
    step: Vec<StepFile>,
}

/// An instructor's hidden checks for a chapter (`HIDDEN/NN-topic/checks.toml`):
/// steps added to the public ones, or replacing them with `replace = true`,
/// and helper files of their own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HiddenFile {
    #[serde(default)]
    replace: bool,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    step: Vec<StepFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    name: String,
    run: String,
    #[serde(default)]
    exit: Option<i32>,
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    output: Vec<String>,
    #[serde(default)]
    dmesg: Vec<String>,
    #[serde(default)]
    absent_output: Vec<String>,
    #[serde(default)]
    absent_dmesg: Vec<String>,
    #[serde(default)]
    points: Option<u32>,
}

/// A chapter ready to build and check.
#[derive(Debug, Clone)]
pub(crate) struct Chapter {
    /// The directory name, e.g. `01-hello`; also its directory in the guest.
    pub(crate) name: String,
    /// Where its sources are.
    pub(crate) dir: PathBuf,
    /// A one-line title.
    pub(crate) title: String,
    /// The modules its `Kbuild` builds (without `.ko`).
    pub(crate) modules: Vec<String>,
    /// Other files of the chapter copied beside the modules in the guest
    /// (helper scripts, data), executable.
    pub(crate) files: Vec<String>,
    /// User-space test programs of the workspace's `guest-programs` crate
    /// copied beside the modules in the guest (built static).
    pub(crate) programs: Vec<String>,
    /// What the guest runs, in order.
    pub(crate) steps: Vec<Step>,
}

/// One command run in the guest and what it must show.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// What the step does, in the reader's words.
    pub(crate) name: String,
    /// A shell command line, run by busybox `sh` in the chapter's directory.
    pub(crate) run: String,
    /// The exit status it must have.
    pub(crate) exit: i32,
    /// How long it may take.
    pub(crate) timeout_secs: u64,
    /// Patterns its output must show, in this order.
    pub(crate) output: Vec<Regex>,
    /// Patterns the kernel log must show during it, in this order.
    pub(crate) dmesg: Vec<Regex>,
    /// Patterns its output must not show.
    pub(crate) absent_output: Vec<Regex>,
    /// Patterns the kernel log must not show during it.
    pub(crate) absent_dmesg: Vec<Regex>,
    /// What the step is worth when graded.
    pub(crate) points: u32,
    /// The harness's own last step of a chapter (unload what is loaded),
    /// never one from a checks.toml.
    pub(crate) cleanup: bool,
}

impl Chapter {
    /// Loads a chapter by name (`01-hello`, looked up in `chapters/`) or by
    /// path (any directory laid out like a chapter).
    pub(crate) fn find(project: &Project, name_or_path: &str) -> Result<Chapter> {
        let as_path = Path::new(name_or_path);
        let dir = if as_path.join(CHECKS_FILE).exists() {
            as_path.to_path_buf()
        } else {
            let in_workbook = project.chapters_dir().join(name_or_path);
            if !in_workbook.is_dir() && !as_path.is_dir() {
                if let Some(new) = renumbered(name_or_path) {
                    return Err(anyhow!("no chapter `{name_or_path}`: the chapters were renumbered, it is now `{new}`"));
                }
                let known = list(project)?.join(", ");
                return Err(anyhow!("no chapter `{name_or_path}`: the workbook has {known}; or give a directory with a {CHECKS_FILE}"));
            }
            if in_workbook.is_dir() {
                in_workbook
            } else {
                as_path.to_path_buf()
            }
        };
        Chapter::load(&dir)
    }

    /// Loads and validates `dir/checks.toml`.
    pub(crate) fn load(dir: &Path) -> Result<Chapter> {
        let dir = dir.canonicalize().with_context(|| format!("{}", dir.display()))?;
        let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
        let path = dir.join(CHECKS_FILE);
        if !path.exists() {
            return Err(anyhow!("{} has no {CHECKS_FILE}: a chapter declares its steps there (see the book's appendix)", dir.display()));
        }
        let text = read_to_string(&path)?;
        let chapter = Chapter::parse(&name, &dir, &text).with_context(|| format!("{}", path.display()))?;
        if let Some(missing) = chapter.files.iter().find(|f| !dir.join(f).is_file()) {
            return Err(anyhow!("{}: `files` names {missing}, which is not in {}", path.display(), dir.display()));
        }
        if !dir.join("Kbuild").exists() {
            return Err(anyhow!("{} has no Kbuild: it should say `obj-m := {}.o`", dir.display(), chapter.modules[0]));
        }
        Ok(chapter)
    }

    /// Parses the text of a checks file.
    pub(crate) fn parse(name: &str, dir: &Path, text: &str) -> Result<Chapter> {
        if !is_guest_safe_name(name) {
            return Err(anyhow!("the chapter directory name `{name}` may only contain letters, digits, `-` and `_`"));
        }
        let file: ChecksFile = toml::from_str(text).context("malformed checks file")?;
        if file.modules.is_empty() {
            return Err(anyhow!("`modules` is empty: name the module(s) the Kbuild builds, e.g. modules = [\"hello\"]"));
        }
        if let Some(bad) = file.modules.iter().find(|m| !is_guest_safe_name(m)) {
            return Err(anyhow!("module name `{bad}` may only contain letters, digits, `-` and `_`"));
        }
        if let Some(bad) = file.files.iter().find(|f| !is_guest_safe_name(&f.replace('.', "_"))) {
            return Err(anyhow!("file `{bad}` must be a plain file name in the chapter directory (letters, digits, `-`, `_`, `.`)"));
        }
        if let Some(bad) = file.programs.iter().find(|p| !is_guest_safe_name(p)) {
            return Err(anyhow!("program `{bad}` must be the name of a binary of guest-programs/ (letters, digits, `-`, `_`)"));
        }
        if file.step.is_empty() {
            return Err(anyhow!("no [[step]]: a chapter needs at least one step to check"));
        }
        let steps = steps_from(file.step)?;
        Ok(Chapter {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            title: file.title,
            modules: file.modules,
            files: file.files,
            programs: file.programs,
            steps,
        })
    }
}

impl Chapter {
    /// Adds an instructor's hidden checks from `dir/checks.toml` (see
    /// [`HiddenFile`]); their helper files are copied into this chapter's
    /// directory, which must be a private copy.
    pub(crate) fn add_hidden(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(CHECKS_FILE);
        let text = read_to_string(&path)?;
        let hidden: HiddenFile = toml::from_str(&text).with_context(|| format!("{}: malformed hidden checks", path.display()))?;
        if hidden.step.is_empty() {
            return Err(anyhow!("{}: no [[step]]: hidden checks add or replace steps", path.display()));
        }
        for file in &hidden.files {
            if !is_guest_safe_name(&file.replace('.', "_")) || !dir.join(file).is_file() {
                return Err(anyhow!("{}: `files` names {file}, which is not a plain file in {}", path.display(), dir.display()));
            }
            std::fs::copy(dir.join(file), self.dir.join(file))?;
            if !self.files.contains(file) {
                self.files.push(file.clone());
            }
        }
        let steps = steps_from(hidden.step).with_context(|| format!("{}", path.display()))?;
        if hidden.replace {
            self.steps = steps;
        } else {
            self.steps.extend(steps);
        }
        Ok(())
    }
}

/// Validates steps as written and gives them their defaults.
fn steps_from(steps: Vec<StepFile>) -> Result<Vec<Step>> {
    steps
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let at = format!("step {} (`{}`)", i + 1, s.name);
            let compile = |patterns: &[String], field: &str| -> Result<Vec<Regex>> {
                patterns
                    .iter()
                    .map(|p| Regex::new(p).with_context(|| format!("{at}: {field} pattern `{p}` is not a valid regular expression")))
                    .collect()
            };
            if s.run.trim().is_empty() {
                return Err(anyhow!("{at}: `run` is empty"));
            }
            if s.timeout == Some(0) {
                return Err(anyhow!("{at}: `timeout` must be at least 1 second"));
            }
            Ok(Step {
                output: compile(&s.output, "output")?,
                dmesg: compile(&s.dmesg, "dmesg")?,
                absent_output: compile(&s.absent_output, "absent_output")?,
                absent_dmesg: compile(&s.absent_dmesg, "absent_dmesg")?,
                name: s.name,
                run: s.run,
                exit: s.exit.unwrap_or(0),
                timeout_secs: s.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT_SECS),
                points: s.points.unwrap_or(1),
                cleanup: false,
            })
        })
        .collect::<Result<Vec<Step>>>()
}

/// The chapters of the workbook, in order.
pub(crate) fn list(project: &Project) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(project.chapters_dir())?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(CHECKS_FILE).exists())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    Ok(names)
}

/// Names that go into guest paths and shell lines unquoted.
fn is_guest_safe_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The chapters of the workbook.
pub(crate) fn workbook_chapters(project: &Project) -> Result<Vec<Chapter>> {
    list(project)?.iter().map(|name| Chapter::find(project, name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "Hello"
modules = ["hello"]

[[step]]
name = "load"
run = "insmod hello.ko"
dmesg = ["Hello", "count: \\d+"]

[[step]]
name = "unload"
run = "rmmod hello"
exit = 0
timeout = 5
points = 3
"#;

    fn parse(text: &str) -> Result<Chapter> {
        Chapter::parse("01-hello", Path::new("/x"), text)
    }

    #[test]
    fn parses_steps_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.steps.len(), 2);
        assert_eq!(c.steps[0].timeout_secs, DEFAULT_STEP_TIMEOUT_SECS);
        assert_eq!(c.steps[0].points, 1);
        assert_eq!(c.steps[1].points, 3);
        assert!(c.steps[0].dmesg[1].is_match("count: 42"));
    }

    #[test]
    fn malformed_files_name_the_problem() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(err("title = \"x\"\nmodules = []\n[[step]]\nname=\"a\"\nrun=\"b\"").contains("`modules` is empty"));
        assert!(err("title = \"x\"\nmodules = [\"m\"]").contains("no [[step]]"));
        assert!(err(&GOOD.replace("dmesg = [", "dmseg = [")).contains("unknown field `dmseg`"));
        assert!(err(&GOOD.replace("\\\\d+", "(")).contains("not a valid regular expression"));
        assert!(err(&GOOD.replace("timeout = 5", "timeout = 0")).contains("at least 1 second"));
        assert!(err(&GOOD.replace("[\"hello\"]", "[\"he llo\"]")).contains("module name"));
        assert!(err("title = ").contains("malformed checks file"));
        assert!(Chapter::parse("a b", Path::new("/x"), GOOD).is_err());
        assert!(
            err(&GOOD.replace("modules = [\"hello\"]", "modules = [\"hello\"]\nfiles = [\"../etc/passwd\"]")).contains("plain file name")
        );
    }

    #[test]
    fn hidden_checks_add_or_replace_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let (public, hidden) = (root.join("public"), root.join("hidden"));
        std::fs::create_dir_all(&public).unwrap();
        std::fs::create_dir_all(&hidden).unwrap();
        let step = "[[step]]\nname = \"secret\"\nrun = \"./probe.sh\"\npoints = 4\n";
        std::fs::write(hidden.join("probe.sh"), "true").unwrap();
        std::fs::write(hidden.join(CHECKS_FILE), format!("files = [\"probe.sh\"]\n{step}")).unwrap();
        let mut c = Chapter::parse("01-hello", &public, GOOD).unwrap();
        c.add_hidden(&hidden).unwrap();
        assert_eq!(c.steps.iter().map(|s| s.points).collect::<Vec<_>>(), vec![1, 3, 4]);
        assert!(public.join("probe.sh").is_file() && c.files == vec!["probe.sh"]);
        std::fs::write(hidden.join(CHECKS_FILE), format!("replace = true\n{step}")).unwrap();
        let mut c = Chapter::parse("01-hello", &public, GOOD).unwrap();
        c.add_hidden(&hidden).unwrap();
        assert_eq!(c.steps.len(), 1);
        std::fs::write(hidden.join(CHECKS_FILE), "replace = true\n").unwrap();
        assert!(c.add_hidden(&hidden).unwrap_err().to_string().contains("no [[step]]"));
    }
}
