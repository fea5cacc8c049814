// SPDX-License-Identifier: GPL-2.0

//! Negative tests: broken versions of a chapter's own module, declared in its
//! `mutations.toml`. Each is applied to a copy of the chapter, run in the
//! guest, and must fail with a reason that names the fault, proving the
//! chapter's checks can fail.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chapter::Chapter;
use crate::paths::read_to_string;
use crate::runner::ChapterResult;
use crate::Result;
use anyhow::{anyhow, Context};

/// The file in a chapter directory that declares its mutations.
pub(crate) const MUTATIONS_FILE: &str = "mutations.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MutationsFile {
    mutation: Vec<Mutation>,
}

/// One way to break a chapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Mutation {
    /// What the mutation does, e.g. "a panic in init".
    pub(crate) name: String,
    /// The source file it changes, relative to the chapter.
    pub(crate) file: String,
    /// Text that occurs exactly once in that file.
    pub(crate) find: String,
    /// What replaces it.
    pub(crate) replace: String,
    /// Text a failure reason of the run must contain.
    pub(crate) expect: Expect,
    /// More edits, applied after the first, for a bug that spans places
    /// (a lock added to a struct, then taken in two functions).
    #[serde(default)]
    pub(crate) also: Vec<Edit>,
    /// The kernel it is run on: `debug` for a bug only a detector sees (a
    /// lock-order inversion that lockdep reports before it deadlocks, a
    /// use-after-free that KASAN reports before it crashes); the fast
    /// kernel otherwise, where a negative test takes half the time.
    #[serde(default)]
    pub(crate) kernel: crate::kernel::Flavour,
}

/// One more find-and-replace of a mutation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Edit {
    /// The file, if not the mutation's own.
    #[serde(default)]
    pub(crate) file: Option<String>,
    /// Text that occurs exactly once in that file.
    pub(crate) find: String,
    /// What replaces it.
    pub(crate) replace: String,
}

/// What a mutation's failure must say: one text, or any of several (a
/// crash after unload, say, shows as one fault or another with timing).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Expect {
    /// This text.
    One(String),
    /// Any of these texts.
    Any(Vec<String>),
}

impl Expect {
    /// The texts, any of which will do.
    pub(crate) fn texts(&self) -> Vec<&str> {
        match self {
            Expect::One(text) => vec![text.as_str()],
            Expect::Any(texts) => texts.iter().map(String::as_str).collect(),
        }
    }
}

/// The mutations of a chapter; none when it has no `mutations.toml`.
pub(crate) fn load(chapter: &Chapter) -> Result<Vec<Mutation>> {
    let path = chapter.dir.join(MUTATIONS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file: MutationsFile = toml::from_str(&read_to_string(&path)?).with_context(|| format!("{}", path.display()))?;
    Ok(file.mutation)
}

/// Copies `chapter` into `work/NAME` with `mutation` applied.
pub(crate) fn apply(chapter: &Chapter, mutation: &Mutation, work: &Path) -> Result<Chapter> {
    let dir: PathBuf = work.join(&chapter.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&chapter.dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
    }
    let first = Edit { file: None, find: mutation.find.clone(), replace: mutation.replace.clone() };
    for edit in std::iter::once(&first).chain(&mutation.also) {
        let file = edit.file.as_deref().unwrap_or(&mutation.file);
        let target = dir.join(file);
        let text = read_to_string(&target)?;
        let count = text.matches(&edit.find).count();
        if count != 1 {
            return Err(anyhow!(
                "mutation `{}` of {}: its `find` text `{}` occurs {count} times in {file} (it must occur exactly once)",
                mutation.name,
                chapter.name,
                edit.find.lines().next().unwrap_or("")
            ));
        }
        std::fs::write(&target, text.replacen(&edit.find, &edit.replace, 1))?;
    }
    Chapter::load(&dir)
}

/// Every reason the result gives for failing, for matching `expect`.
pub(crate) fn failure_reasons(result: &ChapterResult) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Err(message) = &result.build {
        reasons.push(format!("the module does not compile: {message}"));
    }
    for step in &result.steps {
        reasons.extend(step.failures());
    }
    reasons
}

/// Whether a broken chapter failed, and for an expected reason when any are
/// given (none: any failure will do); on no, why. Returns the reason matched.
pub(crate) fn expectation_met(name: &str, expect: &[&str], result: &ChapterResult) -> Result<String, String> {
    if result.passed() {
        return Err(format!("`{name}` passed every check: the checks did not catch it"));
    }
    let reasons = failure_reasons(result);
    if expect.is_empty() {
        return Ok(reasons.into_iter().next().unwrap_or_default());
    }
    match expect.iter().find(|e| reasons.iter().any(|r| r.contains(*e))) {
        Some(found) => Ok(found.to_string()),
        None => Err(format!(
            "`{name}` failed, but no reason contains {}; the reasons were:\n  {}",
            expect.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(" or "),
            reasons.join("\n  ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_is_one_text_or_any_of_several() {
        let file: MutationsFile = toml::from_str(
            "[[mutation]]\nname = \"a\"\nfile = \"a.rs\"\nfind = \"x\"\nreplace = \"y\"\nexpect = \"one\"\n\
             [[mutation]]\nname = \"b\"\nfile = \"a.rs\"\nfind = \"x\"\nreplace = \"y\"\nexpect = [\"p\", \"q\"]\n",
        )
        .unwrap();
        assert_eq!(file.mutation[0].expect.texts(), vec!["one"]);
        assert_eq!(file.mutation[1].expect.texts(), vec!["p", "q"]);
    }
}
