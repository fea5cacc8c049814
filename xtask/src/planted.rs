// SPDX-License-Identifier: GPL-2.0

//! Planted bugs in modules the workbook did not write (`tests/detectors/`):
//! each must fail on the debug kernel with the detector and the functions
//! named, proving the detectors are on and their reports are read.

use std::path::PathBuf;

use serde::Deserialize;

use crate::chapter::Chapter;
use crate::paths::{read_to_string, Project};
use crate::runner::ChapterResult;
use crate::Result;
use anyhow::Context;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedFile {
    planted: Vec<Planted>,
}

/// One planted bug and what its verdict must say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Planted {
    /// Its directory under `tests/detectors/`.
    pub(crate) dir: String,
    /// Texts the main failure's reason must all contain.
    pub(crate) expect: Vec<String>,
}

/// The directory of the planted bugs.
pub(crate) fn root(project: &Project) -> PathBuf {
    project.root.join("tests/detectors")
}

/// Every planted bug with its chapter.
pub(crate) fn load(project: &Project) -> Result<Vec<(Planted, Chapter)>> {
    let path = root(project).join("expected.toml");
    let file: ExpectedFile = toml::from_str(&read_to_string(&path)?).with_context(|| format!("{}", path.display()))?;
    file.planted
        .into_iter()
        .map(|p| {
            let chapter = Chapter::load(&root(project).join(&p.dir))?;
            Ok((p, chapter))
        })
        .collect()
}

/// Whether the run failed with a main failure whose reason has every
/// expected text; on no, why. Returns that reason.
pub(crate) fn named_exactly(planted: &Planted, result: &ChapterResult) -> Result<String, String> {
    let reason = result
        .steps
        .iter()
        .find_map(|s| s.main_failure())
        .and_then(|c| c.reason.clone())
        .or_else(|| result.build.as_ref().err().map(|e| format!("the module does not compile: {e}")));
    let Some(reason) = reason else {
        return Err(format!("planted bug `{}` passed every check: the detector did not report it", planted.dir));
    };
    let missing: Vec<&String> = planted.expect.iter().filter(|e| !reason.contains(e.as_str())).collect();
    if missing.is_empty() {
        Ok(reason)
    } else {
        Err(format!("planted bug `{}` failed, but its reason lacks {missing:?}: {reason}", planted.dir))
    }
}
