// SPDX-License-Identifier: GPL-2.0

//! A submission to grade: a folder or a `.tar.gz` named after the student,
//! laid out like `learn/` (`01-hello/hello.rs`, ...). It contributes only
//! the module sources each chapter has; its build files, check files and
//! anything else are ignored, and links, paths out of the submission,
//! oversized and binary files are refused with a reason.

use crate::chapter::Chapter;
use crate::module_build::is_module_source;
use crate::Result;
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The largest source file a submission may contribute.
pub(crate) const MAX_FILE_BYTES: u64 = 256 * 1024;

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
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read the submissions in {}", dir.display()))? {
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
        let entries = archive.entries().with_context(|| format!("{}: not a .tar.gz archive", submission.path.display()))?;
        for entry in entries {
            let mut entry = entry.with_context(|| format!("{}: a damaged archive", submission.path.display()))?;
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
}
