// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask setup`: everything a chapter run needs, made once and cached.

use std::path::PathBuf;

use xshell::Shell;

use crate::kernel::{self, Flavour, KernelBuild};
use crate::paths::Project;
use crate::toolchain::{self, Install, Toolchain};
use crate::Result;

/// What setup was asked for.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetupOptions {
    /// A kernel tree or tarball instead of Debian's package.
    pub(crate) kernel_src: Option<PathBuf>,
    /// Rebuild the kernel even if the cache has it.
    pub(crate) rebuild: bool,
    /// Never install packages or crates; report what is missing.
    pub(crate) no_install: bool,
    /// The kernel flavour asked for (`--kernel`); none: the command's default.
    pub(crate) kernel: Option<Flavour>,
}

/// A ready environment: tools and a built kernel.
#[derive(Debug, Clone)]
pub(crate) struct Environment {
    /// Where the repository and cache are.
    pub(crate) project: Project,
    /// The tools.
    pub(crate) toolchain: Toolchain,
    /// The guest kernel and module build tree.
    pub(crate) kernel: KernelBuild,
}

impl Environment {
    /// A shell for the kernel's build tools: the pinned LLVM first in PATH.
    /// One per thread of work, not one for the whole run: xshell's `Shell`
    /// is not `Sync`, and grading and the negative tests build modules in
    /// several threads at once.
    pub(crate) fn shell(&self) -> Result<Shell> {
        let sh = Shell::new()?;
        self.toolchain.configure_shell(&sh);
        Ok(sh)
    }
}

/// Makes sure the toolchain and the kernel are there; cheap when they are.
/// The kernel is the flavour asked for, else the command's `default`.
pub(crate) fn ensure(options: &SetupOptions, default: Flavour) -> Result<Environment> {
    let project = Project::discover()?;
    let install = if options.no_install { Install::Never } else { Install::IfMissing };
    // On a fresh machine the kernel's source (a download, then one core's
    // xz) is fetched while the toolchain is installed: neither needs the
    // other, and the kernel build needs both.
    let (toolchain, source) = std::thread::scope(|scope| {
        let source = scope.spawn(|| crate::kernel_source::ensure_source(&Shell::new()?, &project, options.kernel_src.as_deref()));
        let toolchain = toolchain::ensure(&Shell::new()?, install);
        let source = source.join().unwrap_or_else(|_| Err(anyhow::anyhow!("fetching the kernel source panicked")));
        Ok::<_, anyhow::Error>((toolchain?, source?))
    })?;
    let kernel = kernel::ensure_built(&project, &toolchain, &source, options.kernel.unwrap_or(default), options.rebuild)?;
    Ok(Environment { project, toolchain, kernel })
}
