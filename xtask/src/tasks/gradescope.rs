// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask gradescope bundle` and `cargo xtask gradescope results`:
//! the instructor's upload for Gradescope, and the step of its
//! `run_autograder` that writes `results.json`.

use std::path::Path;

use anyhow::{anyhow, Context};

use crate::chapter::Chapter;
use crate::flags::Visibility;
use crate::gradescope::{self, HiddenVisibility};
use crate::grading::SubmissionGrade;
use crate::paths::{read_to_string, write_atomic, Project};
use crate::Result;

fn visibility(v: Visibility) -> HiddenVisibility {
    match v {
        Visibility::Hidden => HiddenVisibility::Hidden,
        Visibility::AfterDueDate => HiddenVisibility::AfterDueDate,
    }
}

/// `cargo xtask gradescope bundle`.
pub(crate) fn bundle(names: &[String], hidden: Option<&Path>, v: Visibility, out: &Path) -> Result<bool> {
    let project = Project::discover()?;
    let chapters = if names.is_empty() {
        crate::chapter::workbook_chapters(&project)?
    } else {
        names.iter().map(|n| Chapter::find(&project, n)).collect::<Result<Vec<_>>>()?
    };
    if let Some(dir) = hidden {
        if !dir.is_dir() {
            return Err(anyhow!("--hidden {}: not a directory (it holds NN-topic/checks.toml files)", dir.display()));
        }
    }
    gradescope::bundle(&project, &chapters, hidden, visibility(v), out)?;
    println!(
        "gradescope: wrote {} ({} chapter(s)); upload it as the autograder (Debian 12 base image); setup.sh builds the toolchain and kernel into the image once",
        out.display(),
        chapters.len()
    );
    Ok(true)
}

/// `cargo xtask gradescope results`.
pub(crate) fn results(result: &Path, hidden: Option<&Path>, v: Visibility, out: &Path) -> Result<bool> {
    let grade: SubmissionGrade =
        serde_json::from_str(&read_to_string(result)?).with_context(|| format!("{}: not a graded submission", result.display()))?;
    let value = gradescope::results(&grade, hidden, visibility(v))?;
    let problems = gradescope::schema_problems(&value);
    if !problems.is_empty() {
        return Err(anyhow!("results.json would break Gradescope's schema: {}", problems.join("; ")));
    }
    write_atomic(out, serde_json::to_string_pretty(&value)?.as_bytes())?;
    Ok(true)
}
