// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask grade` and `cargo xtask grade-merge`: the instructor's
//! commands over the grading library.

use crate::chapter::Chapter;
use crate::flags::Sandbox;
use crate::flags::{Flags, GradeFlags};
use crate::grade_report::{table, write_reports};
use crate::grading::{bounded_jobs, grade, load_results, GradeOptions, SubmissionGrade, OUT_LOCK_FILE};
use crate::grading::{grading_key, with_hidden};
use crate::kernel::Flavour;
use crate::lock::CacheLock;
use crate::paths::write_atomic;
use crate::paths::Project;
use crate::setup;
use crate::Result;
use anyhow::anyhow;
use std::path::{Path, PathBuf};

/// `cargo xtask grade`: grades the class, prints the table, writes reports.
pub(crate) fn command(flags: &Flags, grade: &GradeFlags) -> Result<bool> {
    let project = Project::discover()?;
    if !grade.submissions.is_dir() {
        return Err(anyhow!(
            "{}: not a directory: give the directory that holds one folder or .tar.gz per student",
            grade.submissions.display()
        ));
    }
    let chapters = if grade.chapters.is_empty() {
        crate::chapter::workbook_chapters(&project)?
    } else {
        grade.chapters.iter().map(|name| Chapter::find(&project, name)).collect::<Result<Vec<_>>>()?
    };
    if let Some(hidden) = &grade.hidden {
        if !hidden.is_dir() {
            return Err(anyhow!("--hidden {}: not a directory (it holds NN-topic/checks.toml files)", hidden.display()));
        }
        // Malformed hidden checks are found now, not once per student.
        for chapter in &chapters {
            let scratch = tempfile::Builder::new().prefix("wb-hidden-check-").tempdir()?;
            let mut copy = chapter.clone();
            copy.dir = scratch.path().to_path_buf();
            with_hidden(copy, &GradeOptions::hidden_only(hidden))?;
        }
    }
    std::fs::create_dir_all(&grade.out)?;
    // One run owns an output directory: a second would interleave results.
    let lock_path = grade.out.join(OUT_LOCK_FILE);
    let Some(_owner) = CacheLock::try_acquire(&lock_path)? else {
        let other = std::fs::read_to_string(&lock_path).unwrap_or_default();
        return Err(anyhow!(
            "{} is being graded by another run ({}): wait for it to finish, or give another --out",
            grade.out.display(),
            if other.trim().is_empty() { "its owner is starting" } else { other.trim() }
        ));
    };
    _owner.write_owner(&crate::lock::owner_text())?;
    let key = grading_key(&chapters, grade.hidden.as_deref())?;
    let key_file = grade.out.join("graded-against");
    match std::fs::read_to_string(&key_file) {
        Ok(old) if old.trim() != key => {
            return Err(anyhow!(
                "{} holds results graded against other chapters or checks: give another --out, or remove it to regrade",
                grade.out.display()
            ))
        }
        _ => write_atomic(&key_file, key.as_bytes())?,
    }
    let env = setup::ensure(&flags.setup, Flavour::Debug)?;
    let isolation = match grade.sandbox {
        Sandbox::Bubblewrap => {
            if let Err(why) = crate::module_build::bubblewrap_works() {
                return Err(anyhow!(
                    "bubblewrap cannot make the build sandbox here: {why}\n\
                     (typical in a container without unprivileged user namespaces). fix: allow user namespaces \
                     (sysctl kernel.unprivileged_userns_clone=1, or run the container with them), or, when the grading \
                     engine already runs each submission in a container of its own, pass --sandbox container"
                ));
            }
            crate::module_build::Isolation::Sandboxed
        }
        Sandbox::Container => {
            eprintln!("grade: --sandbox container: builds run without bubblewrap; each submission must have a container of its own");
            crate::module_build::Isolation::Container
        }
    };
    let options = GradeOptions {
        submissions: grade.submissions.clone(),
        chapters,
        out: grade.out.clone(),
        jobs: bounded_jobs(grade.jobs),
        shard: grade.shard,
        accel: crate::session::choose_accel(&env, flags.guest.accel.as_deref())?,
        hidden: grade.hidden.clone(),
        isolation,
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
