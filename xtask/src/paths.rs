// SPDX-License-Identifier: GPL-2.0

//! Where things live: the repository (chapters, guest recipe) and the cache
//! outside it (kernel source, build trees, images, downloaded packages).

use std::path::{Path, PathBuf};

use crate::Result;
use anyhow::{anyhow, Context};

/// The repository and the cache directory of one harness invocation.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// The workspace root (where `Cargo.toml`, `chapters/` and `book/` are).
    pub(crate) root: PathBuf,
    /// The cache root, never inside the repository.
    pub(crate) cache: PathBuf,
}

impl Project {
    /// Finds the repository from this crate's location and the cache from
    /// `WORKBOOK_CACHE`, else `$XDG_CACHE_HOME/rust-kernel-workbook`, else
    /// `~/.cache/rust-kernel-workbook`.
    pub(crate) fn discover() -> Result<Project> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask has no parent directory")?.to_path_buf();
        let cache = match std::env::var_os("WORKBOOK_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let base = match std::env::var_os("XDG_CACHE_HOME") {
                    Some(dir) if !dir.is_empty() => PathBuf::from(dir),
                    _ => home_dir()?.join(".cache"),
                };
                base.join("rust-kernel-workbook")
            }
        };
        std::fs::create_dir_all(&cache).with_context(|| format!("cannot create the cache directory {}", cache.display()))?;
        Ok(Project { root, cache })
    }

    /// The directory of the workbook's chapters.
    pub(crate) fn chapters_dir(&self) -> PathBuf {
        self.root.join("chapters")
    }

    /// What the guest is made of: config fragment and `/init`.
    pub(crate) fn qemu_images_dir(&self) -> PathBuf {
        self.root.join("qemu-images")
    }

    /// A subdirectory of the cache, created on demand.
    pub(crate) fn cache_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.cache.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }
}

/// The user's home directory, from `HOME`.
pub(crate) fn home_dir() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home)),
        _ => Err(anyhow!("HOME is not set: set WORKBOOK_CACHE to a directory for the kernel cache")),
    }
}

/// Reads a file, naming it in the error.
pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes a file through a temporary sibling and a rename, so a reader never
/// sees half of it and an interrupted run never leaves a torn file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
