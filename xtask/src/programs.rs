// SPDX-License-Identifier: GPL-2.0

//! User-space programs for the guest (the step runner `wbsteps` and the
//! chapters' test programs): the programs of the workspace's
//! `guest-programs` crate, built static (the guest has busybox and no C
//! library) into `target/guest/` as one binary, `wbtools`, that runs each
//! by the name it is called by. Cargo rebuilds only what changed, once per
//! harness run.

use std::path::PathBuf;
use std::sync::OnceLock;

use xshell::{cmd, Shell};

use crate::paths::Project;
use crate::Result;
use anyhow::anyhow;

/// The guest's programs, built.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    /// `wbtools`, every program in one static binary.
    pub(crate) binary: PathBuf,
    /// The programs' names: a link to `binary` by one of these runs it.
    pub(crate) names: Vec<String>,
}

/// Where the guest has `wbtools`; a chapter's programs are links to it.
pub(crate) const GUEST_PATH: &str = "/bin/wbtools";

/// Builds every guest program (once per process).
pub(crate) fn ensure_built(project: &Project) -> Result<Programs> {
    static BUILT: OnceLock<std::result::Result<Programs, String>> = OnceLock::new();
    BUILT.get_or_init(|| build(project).map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build(project: &Project) -> Result<Programs> {
    let sh = Shell::new()?;
    sh.change_dir(&project.root);
    let target_dir = project.root.join("target/guest");
    // Static, so they run on the busybox guest; a target directory of their
    // own, so these flags never rebuild the harness.
    let _flags = sh.push_env("RUSTFLAGS", "-C target-feature=+crt-static");
    let out = cmd!(sh, "cargo build --quiet --release --package guest-programs --bin wbtools --target-dir {target_dir}")
        .quiet()
        .ignore_status()
        .output()?;
    if !out.status.success() {
        return Err(anyhow!("the guest programs (guest-programs/) do not compile:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let binary = target_dir.join("release/wbtools");
    let names = cmd!(sh, "{binary} --list").quiet().read()?.lines().map(String::from).collect();
    Ok(Programs { binary, names })
}
