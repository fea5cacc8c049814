// SPDX-License-Identifier: GPL-2.0

//! Grading on Gradescope: the autograder bundle an instructor uploads
//! (`setup.sh`, `run_autograder`, the workbook and the hidden checks, in one
//! zip) and the conversion of a graded submission into Gradescope's
//! `results.json` (a test per check, with `score`, `max_score`, `status`,
//! `output` and `visibility`). Gradescope builds its image once with
//! `setup.sh` and runs `run_autograder` in a fresh container per
//! submission, so the build runs with `--sandbox container`. Both scripts
//! find Gradescope's directories under `AUTOGRADER_ROOT` (default
//! `/autograder`), which the tests move to a scratch directory.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

use crate::chapter::{Chapter, CHECKS_FILE};
use crate::grading::SubmissionGrade;
use crate::paths::{read_to_string, Project};
use crate::Result;

/// Who sees the hidden checks' results, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HiddenVisibility {
    /// Never shown to the student.
    Hidden,
    /// Shown once the due date has passed.
    AfterDueDate,
}

impl HiddenVisibility {
    fn word(self) -> &'static str {
        match self {
            HiddenVisibility::Hidden => "hidden",
            HiddenVisibility::AfterDueDate => "after_due_date",
        }
    }
}

/// `setup.sh`: run once by Gradescope, as root, to build the image. The
/// toolchain, the kernel (debug flavour, the one grading uses) and the
/// harness are built into it, so each submission starts in seconds.
fn setup_script() -> String {
    "#!/usr/bin/env bash\n\
     # SPDX-License-Identifier: GPL-2.0\n\
     # Gradescope runs this once to build the autograder image (Debian 12 base).\n\
     set -euo pipefail\n\
     root=\"${AUTOGRADER_ROOT:-/autograder}\"\n\
     cd \"$root/source/workbook\"\n\
     apt-get update\n\
     apt-get install -y --no-install-recommends cargo make ca-certificates\n\
     cargo xtask setup --kernel debug\n\
     cargo build --quiet --package xtask\n"
        .to_string()
}

/// `run_autograder`: grades `$root/submission` as one student and writes
/// `$root/results/results.json`. `WORKBOOK_XTASK` names another harness
/// binary and `WORKBOOK_GRADE_ARGS` adds options to `grade` (the tests use
/// the binary running them, and its kernel).
fn run_script(chapters: &[String], hidden: bool, visibility: HiddenVisibility) -> String {
    let chapters = chapters.join(",");
    let hidden_grade = if hidden { " --hidden \"$root/source/hidden\"" } else { "" };
    let hidden_results =
        if hidden { format!(" --hidden \"$root/source/hidden\" --hidden-visibility {}", visibility.word()) } else { String::new() };
    format!(
        "#!/usr/bin/env bash\n\
         # SPDX-License-Identifier: GPL-2.0\n\
         # Gradescope runs this in a fresh container for each submission.\n\
         set -euo pipefail\n\
         root=\"${{AUTOGRADER_ROOT:-/autograder}}\"\n\
         xtask=\"${{WORKBOOK_XTASK:-$root/source/workbook/target/debug/xtask}}\"\n\
         class=$(mktemp -d)\n\
         trap 'rm -rf \"$class\"' EXIT\n\
         mkdir \"$class/student\"\n\
         cp -R \"$root/submission/.\" \"$class/student/\"\n\
         mkdir -p \"$root/results\"\n\
         \"$xtask\" grade \"$class\" --chapters {chapters} --out \"$class/out\" --sandbox container --no-install{hidden_grade} ${{WORKBOOK_GRADE_ARGS:-}}\n\
         \"$xtask\" gradescope results \"$class/out/results/student.json\" --out \"$root/results/results.json\"{hidden_results}\n"
    )
}

/// Writes the autograder zip: the two scripts at its top, the workbook's
/// files (those git tracks) under `workbook/`, the hidden checks under
/// `hidden/`.
pub(crate) fn bundle(
    project: &Project,
    chapters: &[Chapter],
    hidden: Option<&Path>,
    visibility: HiddenVisibility,
    out: &Path,
) -> Result<()> {
    let names: Vec<String> = chapters.iter().map(|c| c.name.clone()).collect();
    let tracked = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(&project.root)
        .output()
        .context("the bundle holds the files git tracks: cannot run git ls-files")?;
    if !tracked.status.success() {
        return Err(anyhow!("git ls-files failed in {}: the bundle is made from a git checkout", project.root.display()));
    }
    let file = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let exec = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    let plain = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    zip.start_file("setup.sh", exec)?;
    zip.write_all(setup_script().as_bytes())?;
    zip.start_file("run_autograder", exec)?;
    zip.write_all(run_script(&names, hidden.is_some(), visibility).as_bytes())?;
    for name in tracked.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).to_string();
        let path = project.root.join(&name);
        if !path.is_file() {
            continue;
        }
        let mode = std::fs::metadata(&path)?.permissions();
        let options = if std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111 != 0 { exec } else { plain };
        zip.start_file(format!("workbook/{name}"), options)?;
        zip.write_all(&std::fs::read(&path)?)?;
    }
    if let Some(dir) = hidden {
        for chapter in &names {
            let path = dir.join(chapter).join(CHECKS_FILE);
            if path.exists() {
                zip.start_file(format!("hidden/{chapter}/{CHECKS_FILE}"), plain)?;
                zip.write_all(read_to_string(&path)?.as_bytes())?;
            }
        }
    }
    zip.finish()?;
    Ok(())
}

/// The names of the hidden steps of each chapter in `dir`.
fn hidden_step_names(dir: &Path, chapter: &str) -> Result<Vec<String>> {
    let path = dir.join(chapter).join(CHECKS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file: toml::Value = toml::from_str(&read_to_string(&path)?).with_context(|| format!("{}: malformed", path.display()))?;
    Ok(file
        .get("step")
        .and_then(|s| s.as_array())
        .map(|steps| steps.iter().filter_map(|s| s.get("name")?.as_str().map(String::from)).collect())
        .unwrap_or_default())
}

/// Gradescope's `results.json` for one graded submission.
pub(crate) fn results(grade: &SubmissionGrade, hidden: Option<&Path>, visibility: HiddenVisibility) -> Result<Value> {
    let mut tests = Vec::new();
    for (c, chapter) in grade.chapters.iter().enumerate() {
        let hidden_names = match hidden {
            Some(dir) => hidden_step_names(dir, &chapter.chapter)?,
            None => Vec::new(),
        };
        if let Some(error) = &chapter.build_error {
            tests.push(json!({
                "name": format!("{}: the module compiles", chapter.chapter),
                "number": format!("{}.0", c + 1),
                "score": 0,
                "max_score": 0,
                "status": "failed",
                "output": error,
                "visibility": "visible",
            }));
        }
        for (k, check) in chapter.checks.iter().enumerate() {
            let passed = check.earned == check.points;
            let seen = if hidden_names.contains(&check.name) { visibility.word() } else { "visible" };
            tests.push(json!({
                "name": format!("{}: {}", chapter.chapter, check.name),
                "number": format!("{}.{}", c + 1, k + 1),
                "score": check.earned,
                "max_score": check.points,
                "status": if passed { "passed" } else { "failed" },
                "output": check.reason.clone().unwrap_or_else(|| "passed".into()),
                "visibility": seen,
            }));
        }
    }
    let mut output = format!("{} of {} points.", grade.score, grade.max);
    for refused in &grade.rejected {
        output.push_str(&format!("\nrefused: {refused}"));
    }
    Ok(json!({
        "score": grade.score,
        "output": output,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }))
}

/// Where `results` breaks Gradescope's documented schema for
/// `results.json`; empty when it follows it.
pub(crate) fn schema_problems(results: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let visibilities = ["hidden", "after_due_date", "after_published", "visible"];
    let Some(top) = results.as_object() else {
        return vec!["not a JSON object".into()];
    };
    for key in top.keys() {
        if !["score", "execution_time", "output", "output_format", "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"]
            .contains(&key.as_str())
        {
            problems.push(format!("unknown top-level key `{key}`"));
        }
    }
    for key in ["visibility", "stdout_visibility"] {
        if let Some(v) = top.get(key) {
            if !v.as_str().is_some_and(|v| visibilities.contains(&v)) {
                problems.push(format!("`{key}` is not one of {visibilities:?}"));
            }
        }
    }
    let Some(tests) = top.get("tests").and_then(Value::as_array) else {
        return vec!["no `tests` array".into()];
    };
    let mut sum = 0.0;
    for (i, test) in tests.iter().enumerate() {
        let Some(test) = test.as_object() else {
            problems.push(format!("tests[{i}] is not an object"));
            continue;
        };
        for key in test.keys() {
            if ![
                "score",
                "max_score",
                "status",
                "name",
                "name_format",
                "number",
                "output",
                "output_format",
                "tags",
                "visibility",
                "extra_data",
            ]
            .contains(&key.as_str())
            {
                problems.push(format!("tests[{i}]: unknown key `{key}`"));
            }
        }
        match (test.get("score").and_then(Value::as_f64), test.get("max_score").and_then(Value::as_f64)) {
            (Some(score), Some(max)) if score >= 0.0 && score <= max => sum += score,
            _ => problems.push(format!("tests[{i}]: `score` and `max_score` must be numbers, 0 <= score <= max_score")),
        }
        if !test.get("status").and_then(Value::as_str).is_some_and(|s| s == "passed" || s == "failed") {
            problems.push(format!("tests[{i}]: `status` must be passed or failed"));
        }
        for key in ["name", "number", "output"] {
            if test.get(key).is_some_and(|v| !v.is_string()) {
                problems.push(format!("tests[{i}]: `{key}` must be a string"));
            }
        }
        if !test.get("visibility").and_then(Value::as_str).is_some_and(|v| visibilities.contains(&v)) {
            problems.push(format!("tests[{i}]: `visibility` is not one of {visibilities:?}"));
        }
    }
    match top.get("score").and_then(Value::as_f64) {
        Some(score) if (score - sum).abs() < 1e-9 => {}
        Some(score) => problems.push(format!("`score` {score} is not the sum of the tests' scores ({sum})")),
        None => problems.push("no numeric `score`".into()),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grading::{ChapterGrade, CheckGrade};

    fn graded(build_error: Option<&str>) -> SubmissionGrade {
        SubmissionGrade {
            submission: "student".into(),
            score: 1,
            max: 2,
            rejected: vec!["01-hello/x.rs: a link".into()],
            ignored: vec![],
            chapters: vec![ChapterGrade {
                chapter: "01-hello".into(),
                score: 1,
                max: 2,
                build_error: build_error.map(String::from),
                checks: vec![
                    CheckGrade { name: "load".into(), points: 1, earned: 1, reason: None },
                    CheckGrade { name: "secret".into(), points: 1, earned: 0, reason: Some("no `Goodbye`".into()) },
                ],
            }],
            sandbox: "container".into(),
        }
    }

    #[test]
    fn results_follow_the_schema_and_mark_hidden_checks() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("01-hello")).unwrap();
        std::fs::write(tmp.path().join("01-hello/checks.toml"), "[[step]]\nname = \"secret\"\nrun = \"true\"\n").unwrap();
        let value = results(&graded(None), Some(tmp.path()), HiddenVisibility::AfterDueDate).unwrap();
        assert_eq!(schema_problems(&value), Vec::<String>::new());
        let tests = value["tests"].as_array().unwrap();
        assert_eq!(tests[1]["visibility"], "after_due_date");
        assert_eq!(tests[1]["output"], "no `Goodbye`");
        assert_eq!(tests[0]["visibility"], "visible");
        assert!(value["output"].as_str().unwrap().contains("refused: 01-hello/x.rs: a link"));
        let broken = results(&graded(Some("error[E0425]: cannot find value")), None, HiddenVisibility::Hidden).unwrap();
        assert_eq!(broken["tests"][0]["output"], "error[E0425]: cannot find value");
        assert_eq!(schema_problems(&broken), Vec::<String>::new());
    }

    #[test]
    fn schema_violations_are_named() {
        let bad = json!({"score": 3, "tests": [{"score": 2, "max_score": 1, "status": "ok", "visibility": "soon", "colour": 1}]});
        let problems = schema_problems(&bad).join("\n");
        for text in ["0 <= score <= max_score", "`status` must be", "`visibility` is not", "unknown key `colour`", "not the sum"] {
            assert!(problems.contains(text), "{problems}");
        }
    }

    #[test]
    fn the_scripts_grade_in_a_container_under_the_root_given() {
        let run = run_script(&["01-hello".into()], true, HiddenVisibility::Hidden);
        assert!(run.contains("root=\"${AUTOGRADER_ROOT:-/autograder}\""));
        assert!(run.contains("--sandbox container") && run.contains("--hidden-visibility hidden"));
        assert!(setup_script().contains("cargo xtask setup --kernel debug"));
    }
}
