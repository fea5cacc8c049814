// SPDX-License-Identifier: GPL-2.0

//! Grading a class: every submission's chapters built in a sandbox and
//! checked in its own guest, with points per step and reasons for every
//! lost point. Each run works in a private, locked scratch directory; an
//! output directory belongs to one run at a time; results are written as
//! each submission finishes, so an interrupted run resumes. Its code runs
//! only inside the guest.

use crate::chapter::{Chapter, CHECKS_FILE};
use crate::guest::Accel;
use crate::hash::CacheKey;
use crate::lock::CacheLock;
use crate::module_build::Isolation;
use crate::paths::{read_to_string, write_atomic};
use crate::progress::Progress;
use crate::runner::{self, RunOptions};
use crate::setup::Environment;
use crate::submission::{collect, list, wanted_sources, Submission};
use crate::Result;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// How a submission's build is isolated: bubblewrap, or the engine's
    /// own container.
    pub(crate) isolation: Isolation,
}

impl GradeOptions {
    /// Options that only carry hidden checks (for validating them).
    pub(crate) fn hidden_only(hidden: &Path) -> GradeOptions {
        GradeOptions {
            submissions: PathBuf::new(),
            chapters: Vec::new(),
            out: PathBuf::new(),
            jobs: 1,
            shard: None,
            accel: Accel::Tcg,
            hidden: Some(hidden.to_path_buf()),
            isolation: Isolation::Sandboxed,
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
    /// How its builds were isolated: `bubblewrap` or `container` (the
    /// engine's own, `--sandbox container`).
    #[serde(default)]
    pub(crate) sandbox: String,
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
        let lock = CacheLock::try_acquire(&path.with_extension("lock"))?.context("a fresh grading directory is locked")?;
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
            memory_mb: env.kernel.flavour.memory_mb(),
            work_dir: work.join("run"),
            isolation: options.isolation,
            stop: crate::runner::Stop::Never,
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
        sandbox: match options.isolation {
            Isolation::Container => "container",
            _ => "bubblewrap",
        }
        .to_string(),
    })
}

/// `chapter` with the instructor's hidden checks for it, if any. The
/// chapter's directory must be a private copy (helper files go there).
pub(crate) fn with_hidden(mut chapter: Chapter, options: &GradeOptions) -> Result<Chapter> {
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
    if todo.len() > 1 {
        // The workbook's own chapters first, so that every submission's
        // build replays; for one submission it would not pay.
        crate::module_build::build_templates(options.chapters.iter().map(|chapter| (env, chapter)).collect())?;
    }
    let run_dir = RunDir::create(env)?;
    let progress = std::sync::Mutex::new(Progress::new("grading", mine.len() as u64));
    progress.lock().unwrap().advance((mine.len() - todo.len()) as u64);
    crate::pool::run(todo, options.jobs, |submission| {
        let grade = grade_one(env, options, &run_dir.path, submission)?;
        let path = results_dir.join(format!("{}.json", submission.name));
        write_atomic(&path, serde_json::to_string_pretty(&grade)?.as_bytes())?;
        progress.lock().unwrap().advance(1);
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
        for entry in std::fs::read_dir(&results).with_context(|| format!("{}", results.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let grade: SubmissionGrade =
                    serde_json::from_str(&read_to_string(&path)?).with_context(|| format!("{}", path.display()))?;
                grades.insert(grade.submission.clone(), grade);
            }
        }
    }
    Ok(grades.into_values().collect())
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
pub(crate) fn grading_key(chapters: &[Chapter], hidden: Option<&Path>) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_class_once_and_merge_back() {
        let class: Vec<usize> = (0..7).collect();
        let shards: Vec<Vec<usize>> = (1..=3).map(|k| shard(class.clone(), Some((k, 3)))).collect();
        assert_eq!(shards[0], vec![0, 3, 6]);
        let mut all: Vec<usize> = shards.concat();
        all.sort_unstable();
        assert_eq!(all, class);
        assert_eq!(shard(class.clone(), None), class);

        let tmp = tempfile::tempdir().unwrap();

        let root = tmp.path().to_path_buf();
        let grade = |name: &str, score| SubmissionGrade {
            submission: name.into(),
            score,
            max: 9,
            rejected: vec![],
            ignored: vec![],
            chapters: vec![],
            sandbox: String::new(),
        };
        for (dir, g) in [("a", grade("alice", 9)), ("b", grade("bob", 6))] {
            let results = root.join(dir).join("results");
            std::fs::create_dir_all(&results).unwrap();
            std::fs::write(results.join(format!("{}.json", g.submission)), serde_json::to_string(&g).unwrap()).unwrap();
        }
        let merged = load_results(&[root.join("a"), root.join("b")]).unwrap();
        assert_eq!(merged, vec![grade("alice", 9), grade("bob", 6)]);
    }
}
