// SPDX-License-Identifier: GPL-2.0

//! User-space test programs for the guest: the binaries of the workspace's
//! `guest-programs` crate, built static (the guest has busybox and no C
//! library) into `target/guest/`. Cargo rebuilds only what changed, once per
//! harness run.

use std::path::PathBuf;
use std::sync::OnceLock;

use xshell::{cmd, Shell};

use crate::paths::Project;
use crate::Result;
use anyhow::anyhow;

/// Builds every guest program (once per process); the directory holding them.
pub(crate) fn ensure_built(project: &Project) -> Result<PathBuf> {
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build(project).map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build(project: &Project) -> Result<PathBuf> {
    let sh = Shell::new()?;
    sh.change_dir(&project.root);
    let target_dir = project.root.join("target/guest");
    // Static, so they run on the busybox guest; a target directory of their
    // own, so these flags never rebuild the harness.
    let _flags = sh.push_env("RUSTFLAGS", "-C target-feature=+crt-static");
    let out = cmd!(sh, "cargo build --quiet --release --package guest-programs --bins --target-dir {target_dir}")
        .quiet()
        .ignore_status()
        .output()?;
    if !out.status.success() {
        return Err(anyhow!("the guest programs (guest-programs/) do not compile:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(target_dir.join("release"))
}
