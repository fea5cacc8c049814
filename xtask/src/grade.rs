// SPDX-License-Identifier: GPL-2.0

//! Grading a class: every submission's chapters built in a sandbox and
//! checked in its own guest, with points per step, reasons for every lost
//! point, and results as JSON and JUnit XML.
//!
//! A submission is a folder or a `.tar.gz` named after the student, laid out
//! like `learn/` (`01-hello/hello.rs`, ...). It contributes only the module
//! sources each chapter has; its build files, check files and anything else
//! are ignored, and links, paths out of the submission, oversized and binary
//! files are refused with a reason. Its code runs only inside the guest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chapter::{Chapter, CHECKS_FILE};
use crate::flags::{Flags, GradeFlags};
use crate::guest::Accel;
use crate::hash::CacheKey;
use crate::kernel::Flavour;
use crate::lock::CacheLock;
use crate::module_build::{is_module_source, Isolation};
use crate::paths::Project;
use crate::paths::{read_to_string, write_atomic};
use crate::progress::Progress;
use crate::runner::{self, RunOptions};
use crate::setup;
use crate::setup::Environment;
use crate::Result;

/// The largest source file a submission may contribute.
pub(crate) const MAX_FILE_BYTES: u64 = 256 * 1024;

/// What to grade and how.
#[derive(Debug, Clone)]
pub(crate) struct GradeOptions {
    /// The directory of submissions.
    pub(crate) submissions: PathBuf,
    /// The chapters to grade.
    pub(crate) chapters: Vec<Chapter>,
    /// Where results go (`results/NAME.json`, `grades.json`, `junit.xml`).
    pub(crate) out: PathBuf,
    /// Guests at once.
    pub(crate) jobs: usize,
    /// This shard of the class: (K, N), 1-based K.
    pub(crate) shard: Option<(usize, usize)>,
    /// How QEMU runs the guests.
    pub(crate) accel: Accel,
    /// The instructor's hidden checks: `DIR/NN-topic/checks.toml`.
    pub(crate) hidden: Option<PathBuf>,
}

impl GradeOptions {
    /// Options that only carry hidden checks (for validating them).
    fn hidden_only(hidden: &Path) -> GradeOptions {
        GradeOptions {
            submissions: PathBuf::new(),
            chapters: Vec::new(),
            out: PathBuf::new(),
            jobs: 1,
            shard: None,
            accel: Accel::Tcg,
            hidden: Some(hidden.to_path_buf()),
        }
    }
}

/// One check's result, with its points.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CheckGrade {
    /// The step's name.
    pub(crate) name: String,
    /// What it is worth.
    pub(crate) points: u32,
    /// What was earned: all or nothing.
    pub(crate) earned: u32,
    /// Why it failed.
    pub(crate) reason: Option<String>,
}

/// One chapter of a submission.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ChapterGrade {
    /// The chapter's name.
    pub(crate) chapter: String,
    /// Points earned.
    pub(crate) score: u32,
    /// Points possible.
    pub(crate) max: u32,
    /// The compiler's message when the module did not compile.
    pub(crate) build_error: Option<String>,
    /// Every step.
    pub(crate) checks: Vec<CheckGrade>,
}

/// One submission's results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SubmissionGrade {
    /// The student (the folder or archive name).
    pub(crate) submission: String,
    /// Points earned.
    pub(crate) score: u32,
    /// Points possible.
    pub(crate) max: u32,
    /// Files refused, with the reason.
    pub(crate) rejected: Vec<String>,
    /// Files present but not graded (build files, checks, ...).
    pub(crate) ignored: Vec<String>,
    /// Each chapter.
    pub(crate) chapters: Vec<ChapterGrade>,
}

/// A submission on disk.
#[derive(Debug, Clone)]
pub(crate) struct Submission {
    /// The student's name.
    pub(crate) name: String,
    /// Its folder or archive.
    pub(crate) path: PathBuf,
}

/// The submissions in `dir`, sorted by name.
pub(crate) fn list(dir: &Path) -> Result<Vec<Submission>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("cannot read the submissions in {}: {e}", dir.display()))? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().to_string();
        let kind = entry.file_type()?;
        let name = if kind.is_dir() {
            file_name.clone()
        } else if let Some(stem) = file_name.strip_suffix(".tar.gz").or_else(|| file_name.strip_suffix(".tgz")) {
            stem.to_string()
        } else {
            eprintln!("grade: ignoring {file_name}: a submission is a folder or a .tar.gz");
            continue;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || name.starts_with('.') {
            eprintln!("grade: ignoring `{file_name}`: names may only have letters, digits, `-`, `_` and `.`");
            continue;
        }
        found.push(Submission { name, path: entry.path() });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The files a submission contributes, by (chapter, file name).
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// Accepted sources.
    pub(crate) files: BTreeMap<(String, String), Vec<u8>>,
    /// Refused files, with the reason.
    pub(crate) rejected: Vec<String>,
    /// Files not graded.
    pub(crate) ignored: Vec<String>,
}

impl Collected {
    /// Judges one entry: `parts` is its relative path, `data` its contents
    /// when it is a regular file (`Err` says what else it is).
    fn add(&mut self, wanted: &BTreeMap<String, Vec<String>>, parts: &[String], data: std::result::Result<Vec<u8>, String>) {
        let shown = parts.join("/");
        // A single top folder (alice/01-hello/...) is allowed.
        let parts = if parts.len() == 3 && !wanted.contains_key(&parts[0]) { &parts[1..] } else { parts };
        let (chapter, file) = match parts {
            [chapter, file] if wanted.get(chapter).is_some_and(|files| files.contains(file)) => (chapter, file),
            _ => {
                if data.is_ok() {
                    self.ignored.push(shown);
                }
                return;
            }
        };
        match data {
            Err(what) => self.rejected.push(format!("{shown}: {what}")),
            Ok(bytes) if bytes.len() as u64 > MAX_FILE_BYTES => {
                self.rejected.push(format!("{shown}: {} bytes, more than the {MAX_FILE_BYTES} a source may have", bytes.len()))
            }
            Ok(bytes) if bytes.contains(&0) || std::str::from_utf8(&bytes).is_err() => {
                self.rejected.push(format!("{shown}: binary (not UTF-8 text)"))
            }
            Ok(bytes) => {
                self.files.insert((chapter.clone(), file.clone()), bytes);
            }
        }
    }
}

/// The module sources each chapter takes from a submission (not `Kbuild`).
pub(crate) fn wanted_sources(chapters: &[Chapter]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut wanted = BTreeMap::new();
    for chapter in chapters {
        let mut names: Vec<String> = std::fs::read_dir(&chapter.dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| is_module_source(n) && n != "Kbuild")
            .collect();
        names.sort();
        wanted.insert(chapter.name.clone(), names);
    }
    Ok(wanted)
}

/// Reads a submission's admissible files, never following a link or
/// leaving the submission.
pub(crate) fn collect(submission: &Submission, wanted: &BTreeMap<String, Vec<String>>) -> Result<Collected> {
    let mut collected = Collected::default();
    if submission.path.is_dir() {
        collect_dir(&submission.path, &submission.path, wanted, &mut collected, 0)?;
    } else {
        let file = std::fs::File::open(&submission.path)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let entries = archive.entries().map_err(|e| format!("{}: not a .tar.gz archive: {e}", submission.path.display()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("{}: a damaged archive: {e}", submission.path.display()))?;
            let path = entry.path()?.to_path_buf();
            let shown = path.display().to_string();
            let mut parts = Vec::new();
            let mut escapes = false;
            for component in path.components() {
                match component {
                    Component::Normal(part) => parts.push(part.to_string_lossy().to_string()),
                    Component::CurDir => {}
                    _ => escapes = true,
                }
            }
            if escapes {
                collected.rejected.push(format!("{shown}: the path leaves the submission"));
                continue;
            }
            let kind = entry.header().entry_type();
            let data = if kind.is_file() {
                if entry.size() > MAX_FILE_BYTES {
                    Ok(vec![0; MAX_FILE_BYTES as usize + 1])
                } else {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes)?;
                    Ok(bytes)
                }
            } else if kind.is_dir() {
                continue;
            } else if kind.is_symlink() || kind.is_hard_link() {
                Err("a link (only regular files are graded)".to_string())
            } else {
                Err("not a regular file".to_string())
            };
            collected.add(wanted, &parts, data);
        }
    }
    Ok(collected)
}

fn collect_dir(root: &Path, dir: &Path, wanted: &BTreeMap<String, Vec<String>>, collected: &mut Collected, depth: usize) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let parts: Vec<String> =
            path.strip_prefix(root).unwrap_or(&path).components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect();
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            collected.add(wanted, &parts, Err("a link (only regular files are graded)".into()));
        } else if kind.is_dir() && depth < 2 {
            collect_dir(root, &path, wanted, collected, depth + 1)?;
        } else if kind.is_file() {
            let size = entry.metadata()?.len();
            let data = if size > MAX_FILE_BYTES { vec![0; MAX_FILE_BYTES as usize + 1] } else { std::fs::read(&path)? };
            collected.add(wanted, &parts, Ok(data));
        }
    }
    Ok(())
}

/// The scratch directory of one grading run: `<cache>/grading/run-PID-NANOS`,
/// locked while the run lives and removed when it ends. Nothing in it is
/// shared with another run, whatever the students are called; a directory
/// whose lock nobody holds was left by a run that died and is removed by
/// the next run.
pub(crate) struct RunDir {
    /// The directory.
    pub(crate) path: PathBuf,
    _lock: CacheLock,
}

impl RunDir {
    /// Cleans what dead runs left, then makes this run's directory.
    pub(crate) fn create(env: &Environment) -> Result<RunDir> {
        let root = env.project.cache_dir("grading")?;
        for entry in std::fs::read_dir(&root)?.filter_map(|e| e.ok()) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".lock") {
                continue;
            }
            let lock = path.with_extension("lock");
            if !crate::lock::is_held(&lock) {
                let _ = std::fs::remove_dir_all(&path);
                let _ = std::fs::remove_file(&lock);
            }
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = root.join(format!("run-{}-{nanos}", std::process::id()));
        let lock = CacheLock::try_acquire(&path.with_extension("lock"))?.ok_or("a fresh grading directory is locked")?;
        std::fs::create_dir_all(&path)?;
        Ok(RunDir { path, _lock: lock })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("lock"));
    }
}

/// Grades one submission in its own guest, working in `run_dir`.
pub(crate) fn grade_one(env: &Environment, options: &GradeOptions, run_dir: &Path, submission: &Submission) -> Result<SubmissionGrade> {
    let wanted = wanted_sources(&options.chapters)?;
    let collected = collect(submission, &wanted)?;
    let work = run_dir.join(&submission.name);
    let _ = std::fs::remove_dir_all(&work);
    let mut to_run = Vec::new();
    let mut missing_sources = BTreeMap::new();
    for chapter in &options.chapters {
        let missing: Vec<String> = wanted[&chapter.name]
            .iter()
            .filter(|file| !collected.files.contains_key(&(chapter.name.clone(), (*file).clone())))
            .map(|file| format!("{}/{file}", chapter.name))
            .collect();
        if !missing.is_empty() {
            missing_sources.insert(chapter.name.clone(), missing);
            continue;
        }
        // The workbook's chapter (Kbuild, checks, helper files) with the
        // submission's sources in place of its own, and the hidden checks.
        let dir = work.join(&chapter.name);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&chapter.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.file_type()?.is_file() && !wanted[&chapter.name].contains(&name) {
                std::fs::copy(entry.path(), dir.join(&name))?;
            }
        }
        for ((of, name), data) in &collected.files {
            if of == &chapter.name {
                std::fs::write(dir.join(name), data)?;
            }
        }
        to_run.push(with_hidden(Chapter::load(&dir)?, options)?);
    }
    let run = if to_run.is_empty() {
        Vec::new()
    } else {
        let run_options = RunOptions {
            accel: options.accel,
            memory_mb: crate::cli::GUEST_MEMORY_MB,
            work_dir: work.join("run"),
            isolation: Isolation::Sandboxed,
        };
        runner::run(env, &to_run, &run_options)?.chapters
    };
    let mut chapters = Vec::new();
    for chapter in &options.chapters {
        let graded = match run.iter().find(|r| r.chapter.name == chapter.name) {
            Some(result) => grade_chapter(result),
            None => {
                let missing = missing_sources.get(&chapter.name).cloned().unwrap_or_default().join(", ");
                let why = format!("the submission has no usable {missing}");
                let steps = with_hidden(chapter.clone(), options).map(|c| c.steps).unwrap_or_else(|_| chapter.steps.clone());
                all_lost(&chapter.name, &steps, &why, Some(why.clone()))
            }
        };
        chapters.push(graded);
    }
    // Its copy, builds and guest logs: the result holds what counts.
    let _ = std::fs::remove_dir_all(&work);
    Ok(SubmissionGrade {
        submission: submission.name.clone(),
        score: chapters.iter().map(|c| c.score).sum(),
        max: chapters.iter().map(|c| c.max).sum(),
        rejected: collected.rejected,
        ignored: collected.ignored,
        chapters,
    })
}

/// `chapter` with the instructor's hidden checks for it, if any. The
/// chapter's directory must be a private copy (helper files go there).
fn with_hidden(mut chapter: Chapter, options: &GradeOptions) -> Result<Chapter> {
    if let Some(hidden) = &options.hidden {
        let dir = hidden.join(&chapter.name);
        if dir.join(CHECKS_FILE).exists() {
            chapter.add_hidden(&dir)?;
        }
    }
    Ok(chapter)
}

/// A chapter where every step is lost for one reason.
fn all_lost(name: &str, steps: &[crate::chapter::Step], why: &str, build_error: Option<String>) -> ChapterGrade {
    let checks: Vec<CheckGrade> = steps
        .iter()
        .filter(|s| s.points > 0)
        .map(|s| CheckGrade { name: s.name.clone(), points: s.points, earned: 0, reason: Some(why.to_string()) })
        .collect();
    ChapterGrade { chapter: name.to_string(), score: 0, max: checks.iter().map(|c| c.points).sum(), build_error, checks }
}

/// Points for one chapter's run: all or nothing per step.
fn grade_chapter(result: &runner::ChapterResult) -> ChapterGrade {
    let name = &result.chapter.name;
    if let Err(message) = &result.build {
        let excerpt = message.lines().take(20).collect::<Vec<_>>().join("\n");
        return all_lost(name, &result.chapter.steps, "the module does not compile", Some(excerpt));
    }
    let checks: Vec<CheckGrade> = result
        .steps
        .iter()
        .filter(|s| s.points > 0)
        .map(|s| CheckGrade {
            name: s.name.clone(),
            points: s.points,
            earned: if s.passed() { s.points } else { 0 },
            reason: s.main_failure().map(|c| c.reason.clone().unwrap_or_else(|| c.what.clone())),
        })
        .collect();
    ChapterGrade {
        chapter: name.clone(),
        score: checks.iter().map(|c| c.earned).sum(),
        max: checks.iter().map(|c| c.points).sum(),
        build_error: None,
        checks,
    }
}

/// The submissions of shard K of N (1-based): every Nth, from the Kth.
pub(crate) fn shard<T>(all: Vec<T>, shard: Option<(usize, usize)>) -> Vec<T> {
    all.into_iter().enumerate().filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k - 1)).map(|(_, s)| s).collect()
}

/// Grades the class (or this shard of it): results are written as each
/// submission finishes, and submissions with a result already are not
/// graded again (an interrupted run resumes).
pub(crate) fn grade(env: &Environment, options: &GradeOptions) -> Result<Vec<SubmissionGrade>> {
    let mine = shard(list(&options.submissions)?, options.shard);
    let results_dir = options.out.join("results");
    std::fs::create_dir_all(&results_dir)?;
    let todo: Vec<&Submission> = mine.iter().filter(|s| !results_dir.join(format!("{}.json", s.name)).exists()).collect();
    if todo.len() < mine.len() {
        eprintln!(
            "grade: {} of {} submissions already graded in {} (resuming)",
            mine.len() - todo.len(),
            mine.len(),
            results_dir.display()
        );
    }
    let run_dir = RunDir::create(env)?;
    let queue = std::sync::Mutex::new(todo.into_iter());
    let progress = std::sync::Mutex::new(Progress::new("grading", mine.len() as u64));
    progress.lock().unwrap().advance((mine.len() - queue.lock().unwrap().len()) as u64);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..options.jobs.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        // Not in a `while let`: its guard would hold the queue for the whole body.
                        let next = queue.lock().unwrap().next();
                        let Some(submission) = next else {
                            return Ok(());
                        };
                        let grade = grade_one(env, options, &run_dir.path, submission)?;
                        let path = results_dir.join(format!("{}.json", submission.name));
                        write_atomic(&path, serde_json::to_string_pretty(&grade)?.as_bytes())?;
                        progress.lock().unwrap().advance(1);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a grading worker panicked")??;
        }
        Ok(())
    })?;
    progress.into_inner().unwrap().finish(&format!("{} submissions", mine.len()));
    let mut grades = Vec::new();
    for submission in &mine {
        let path = results_dir.join(format!("{}.json", submission.name));
        grades.push(serde_json::from_str(&read_to_string(&path)?)?);
    }
    Ok(grades)
}

/// Reads every result under each `dir/results/`, for reports and merges.
pub(crate) fn load_results(dirs: &[PathBuf]) -> Result<Vec<SubmissionGrade>> {
    let mut grades: BTreeMap<String, SubmissionGrade> = BTreeMap::new();
    for dir in dirs {
        let results = dir.join("results");
        for entry in std::fs::read_dir(&results).map_err(|e| format!("{}: {e}", results.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let grade: SubmissionGrade =
                    serde_json::from_str(&read_to_string(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
                grades.insert(grade.submission.clone(), grade);
            }
        }
    }
    Ok(grades.into_values().collect())
}

/// Writes `grades.json` and `junit.xml` into `out`.
pub(crate) fn write_reports(out: &Path, grades: &[SubmissionGrade]) -> Result<()> {
    std::fs::create_dir_all(out)?;
    write_atomic(&out.join("grades.json"), serde_json::to_string_pretty(&serde_json::json!({ "submissions": grades }))?.as_bytes())?;
    write_atomic(&out.join("junit.xml"), junit(grades).as_bytes())
}

/// Text for an XML attribute or element. Characters XML 1.0 forbids (most
/// control characters, which a student's module can print) cannot be
/// escaped at all: they are shown as `\u{..}` instead, so the report stays
/// valid XML whatever a module printed.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a test suite per submission, a test case per check.
pub(crate) fn junit(grades: &[SubmissionGrade]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for grade in grades {
        let tests: usize = grade.chapters.iter().map(|c| c.checks.len()).sum();
        let failures: usize = grade.chapters.iter().flat_map(|c| &c.checks).filter(|c| c.earned < c.points).count();
        xml.push_str(&format!("  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n", xml_escape(&grade.submission)));
        for chapter in &grade.chapters {
            for check in &chapter.checks {
                xml.push_str(&format!(
                    "    <testcase classname=\"{}.{}\" name=\"{}\">",
                    xml_escape(&grade.submission),
                    xml_escape(&chapter.chapter),
                    xml_escape(&check.name)
                ));
                if check.earned < check.points {
                    let reason = check.reason.as_deref().unwrap_or("failed");
                    xml.push_str(&format!("<failure message=\"{}\"/>", xml_escape(reason)));
                }
                xml.push_str("</testcase>\n");
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// The summary table for the terminal.
pub(crate) fn table(grades: &[SubmissionGrade]) -> String {
    let chapters: Vec<String> = grades.first().map(|g| g.chapters.iter().map(|c| c.chapter.clone()).collect()).unwrap_or_default();
    let mut out = format!("{:<24}", "submission");
    for chapter in &chapters {
        out.push_str(&format!(" {chapter:>12}"));
    }
    out.push_str(&format!(" {:>9}  first lost point\n", "total"));
    for grade in grades {
        out.push_str(&format!("{:<24}", grade.submission));
        for chapter in &grade.chapters {
            out.push_str(&format!(" {:>12}", format!("{}/{}", chapter.score, chapter.max)));
        }
        let first = grade
            .chapters
            .iter()
            .find_map(|c| {
                c.checks
                    .iter()
                    .find(|k| k.earned < k.points)
                    .map(|k| format!("{} `{}`: {}", c.chapter, k.name, k.reason.as_deref().unwrap_or("")))
            })
            .or_else(|| grade.rejected.first().cloned())
            .unwrap_or_default();
        let first: String = first.lines().next().unwrap_or("").chars().take(110).collect();
        out.push_str(&format!(" {:>9}  {first}\n", format!("{}/{}", grade.score, grade.max)));
    }
    out
}

/// The most guests `jobs` may start: each takes its guest memory, QEMU's own
/// and a module build's; a class must not push the machine into swap.
pub(crate) fn bounded_jobs(jobs: usize) -> usize {
    let available_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemAvailable:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()))
        .map(|kb| kb / 1024)
        .unwrap_or(u64::MAX);
    let fits = (available_mb / PER_JOB_MB).max(1) as usize;
    if jobs > fits {
        eprintln!("grade: -j {jobs} would need {} MiB; {available_mb} MiB are free: grading with -j {fits}", jobs as u64 * PER_JOB_MB);
    }
    jobs.min(fits)
}

/// Memory one grading job may use at its peak: the guest's RAM, QEMU's own
/// and rustc building the module.
pub(crate) const PER_JOB_MB: u64 = 1024;

/// What a set of results was graded against; a resumed run must match.
fn grading_key(chapters: &[Chapter], hidden: Option<&Path>) -> Result<String> {
    let mut key = CacheKey::default();
    for chapter in chapters {
        key = key.add(&chapter.name).add(read_to_string(&chapter.dir.join(CHECKS_FILE))?);
        if let Some(dir) = hidden {
            let path = dir.join(&chapter.name).join(CHECKS_FILE);
            if path.exists() {
                key = key.add(read_to_string(&path)?);
            }
        }
    }
    Ok(key.hex())
}

/// The lock file of an output directory, holding its owner's pid and start.
pub(crate) const OUT_LOCK_FILE: &str = ".grading.lock";

/// `cargo xtask grade`: grades the class, prints the table, writes reports.
pub(crate) fn command(flags: &Flags, grade: &GradeFlags) -> Result<bool> {
    let project = Project::discover()?;
    if !grade.submissions.is_dir() {
        return Err(format!(
            "{}: not a directory: give the directory that holds one folder or .tar.gz per student",
            grade.submissions.display()
        )
        .into());
    }
    let chapters = if grade.chapters.is_empty() {
        crate::cli::workbook_chapters(&project)?
    } else {
        grade.chapters.iter().map(|name| Chapter::find(&project, name)).collect::<Result<Vec<_>>>()?
    };
    if let Some(hidden) = &grade.hidden {
        if !hidden.is_dir() {
            return Err(format!("--hidden {}: not a directory (it holds NN-topic/checks.toml files)", hidden.display()).into());
        }
        // Malformed hidden checks are found now, not once per student.
        let scratch = std::env::temp_dir().join(format!("wb-hidden-check-{}", std::process::id()));
        for chapter in &chapters {
            std::fs::create_dir_all(&scratch)?;
            let mut copy = chapter.clone();
            copy.dir = scratch.clone();
            let checked = with_hidden(copy, &GradeOptions::hidden_only(hidden));
            let _ = std::fs::remove_dir_all(&scratch);
            checked?;
        }
    }
    std::fs::create_dir_all(&grade.out)?;
    // One run owns an output directory: a second would interleave results.
    let lock_path = grade.out.join(OUT_LOCK_FILE);
    let Some(_owner) = CacheLock::try_acquire(&lock_path)? else {
        let other = std::fs::read_to_string(&lock_path).unwrap_or_default();
        return Err(format!(
            "{} is being graded by another run ({}): wait for it to finish, or give another --out",
            grade.out.display(),
            if other.trim().is_empty() { "its owner is starting" } else { other.trim() }
        )
        .into());
    };
    _owner.write_owner(&crate::lock::owner_text())?;
    let key = grading_key(&chapters, grade.hidden.as_deref())?;
    let key_file = grade.out.join("graded-against");
    match std::fs::read_to_string(&key_file) {
        Ok(old) if old.trim() != key => {
            return Err(format!(
                "{} holds results graded against other chapters or checks: give another --out, or remove it to regrade",
                grade.out.display()
            )
            .into())
        }
        _ => write_atomic(&key_file, key.as_bytes())?,
    }
    let env = setup::ensure(&flags.setup, Flavour::Debug)?;
    let options = GradeOptions {
        submissions: grade.submissions.clone(),
        chapters,
        out: grade.out.clone(),
        jobs: bounded_jobs(grade.jobs),
        shard: grade.shard,
        accel: crate::cli::choose_accel(&env, flags.accel.as_deref())?,
        hidden: grade.hidden.clone(),
    };
    let grades = self::grade(&env, &options)?;
    report(&grade.out, &grades)?;
    Ok(true)
}

/// `cargo xtask grade-merge`: one report from the shards' results.
pub(crate) fn merge_command(dirs: &[PathBuf], out: &Path) -> Result<bool> {
    let grades = load_results(dirs)?;
    let results = out.join("results");
    std::fs::create_dir_all(&results)?;
    for grade in &grades {
        write_atomic(&results.join(format!("{}.json", grade.submission)), serde_json::to_string_pretty(grade)?.as_bytes())?;
    }
    report(out, &grades)?;
    Ok(true)
}

/// Prints the table and writes `grades.json` and `junit.xml`.
fn report(out: &Path, grades: &[SubmissionGrade]) -> Result<()> {
    print!("{}", table(grades));
    write_reports(out, grades)?;
    let (score, max): (u32, u32) = grades.iter().fold((0, 0), |(s, m), g| (s + g.score, m + g.max));
    if !grades.is_empty() {
        println!(
            "{} submissions, mean {:.1}/{}; reports: {} and {}",
            grades.len(),
            score as f64 / grades.len() as f64,
            max / grades.len() as u32,
            out.join("grades.json").display(),
            out.join("junit.xml").display()
        );
    } else {
        println!("no submissions graded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([("01-hello".to_string(), vec!["hello.rs".to_string()])])
    }

    fn parts(s: &str) -> Vec<String> {
        s.split('/').map(String::from).collect()
    }

    #[test]
    fn only_the_chapters_sources_are_taken() {
        let mut c = Collected::default();
        c.add(&wanted(), &parts("01-hello/hello.rs"), Ok(b"fn x() {}".to_vec()));
        c.add(&wanted(), &parts("01-hello/checks.toml"), Ok(b"x".to_vec()));
        c.add(&wanted(), &parts("alice/01-hello/Kbuild"), Ok(b"x".to_vec()));
        assert_eq!(c.files.len(), 1);
        assert_eq!(c.ignored, vec!["01-hello/checks.toml", "alice/01-hello/Kbuild"]);
    }

    #[test]
    fn links_binaries_and_huge_files_are_refused() {
        let mut c = Collected::default();
        c.add(&wanted(), &parts("01-hello/hello.rs"), Err("a link".into()));
        c.add(&wanted(), &parts("alice/01-hello/hello.rs"), Ok(vec![0x7f, 0, 1]));
        c.add(&wanted(), &parts("01-hello/hello.rs"), Ok(vec![b'a'; MAX_FILE_BYTES as usize + 1]));
        assert!(c.files.is_empty());
        let all = c.rejected.join("\n");
        assert!(all.contains("a link") && all.contains("binary") && all.contains("more than"), "{all}");
    }

    #[test]
    fn shards_cover_the_class_once_and_merge_back() {
        let class: Vec<usize> = (0..7).collect();
        let shards: Vec<Vec<usize>> = (1..=3).map(|k| shard(class.clone(), Some((k, 3)))).collect();
        assert_eq!(shards[0], vec![0, 3, 6]);
        let mut all: Vec<usize> = shards.concat();
        all.sort_unstable();
        assert_eq!(all, class);
        assert_eq!(shard(class.clone(), None), class);

        let root = std::env::temp_dir().join(format!("wb-merge-{}", std::process::id()));
        let grade = |name: &str, score| SubmissionGrade {
            submission: name.into(),
            score,
            max: 9,
            rejected: vec![],
            ignored: vec![],
            chapters: vec![],
        };
        for (dir, g) in [("a", grade("alice", 9)), ("b", grade("bob", 6))] {
            let results = root.join(dir).join("results");
            std::fs::create_dir_all(&results).unwrap();
            std::fs::write(results.join(format!("{}.json", g.submission)), serde_json::to_string(&g).unwrap()).unwrap();
        }
        let merged = load_results(&[root.join("a"), root.join("b")]).unwrap();
        assert_eq!(merged, vec![grade("alice", 9), grade("bob", 6)]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn junit_escapes_and_counts() {
        let grade = SubmissionGrade {
            submission: "a&b".into(),
            score: 1,
            max: 2,
            rejected: vec![],
            ignored: vec![],
            chapters: vec![ChapterGrade {
                chapter: "01-hello".into(),
                score: 1,
                max: 2,
                build_error: None,
                checks: vec![
                    CheckGrade { name: "load".into(), points: 1, earned: 1, reason: None },
                    CheckGrade { name: "unload".into(), points: 1, earned: 0, reason: Some("no `<Goodbye>`".into()) },
                ],
            }],
        };
        let xml = junit(&[grade]);
        assert!(xml.contains("name=\"a&amp;b\" tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<failure message=\"no `&lt;Goodbye&gt;`\"/>"), "{xml}");
        assert_eq!(xml_escape("a\u{1b}[31mb\u{1}\tc"), "a\\u{1b}[31mb\\u{1}\tc");
    }
}
