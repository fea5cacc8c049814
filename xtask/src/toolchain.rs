// SPDX-License-Identifier: GPL-2.0

//! The toolchain that builds a Rust-enabled kernel and its modules, found on
//! the machine or installed on demand (Debian packages via apt as root,
//! crates via `cargo install --locked` at pinned versions).
//!
//! A kernel and its modules must be compiled by the same `rustc`, and that
//! `rustc` must ship the source of `core`: the kernel builds its own `core`.
//! The rustup toolchain on these machines has no `rust-src`, so the default
//! is Debian's `rustc-web` at `/usr/bin/rustc`; `WORKBOOK_RUSTC` overrides.

use std::path::{Path, PathBuf};

use xshell::{cmd, Shell};

use crate::Result;
use anyhow::{anyhow, Context};

/// Debian packages the workbook needs, with the tool each provides.
pub(crate) const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "rust-web-src",
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "kmod",
    "build-essential",
    "xz-utils",
    "qemu-system-x86",
    "busybox-static",
    // The sandbox student code is compiled in when grading.
    "bubblewrap",
];

/// A crate installed with `cargo install --locked NAME@VERSION`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PinnedCrate {
    /// The crate's name on the registry.
    pub(crate) krate: &'static str,
    /// The exact version installed.
    pub(crate) version: &'static str,
    /// The binary it installs.
    pub(crate) binary: &'static str,
}

/// bindgen: Debian's is too old for 7.3 (which needs >= 0.71.1).
pub(crate) const BINDGEN: PinnedCrate = PinnedCrate { krate: "bindgen-cli", version: "0.73.2", binary: "bindgen" };
/// mdBook, for the book.
pub(crate) const MDBOOK: PinnedCrate = PinnedCrate { krate: "mdbook", version: "0.5.4", binary: "mdbook" };

/// Where the LLVM 19 tools live on Debian; the unsuffixed ones are LLVM 14.
pub(crate) const LLVM_BIN: &str = "/usr/lib/llvm-19/bin";

/// The tools every kernel and module build is run with.
#[derive(Debug, Clone)]
pub(crate) struct Toolchain {
    /// A `rustc` whose sysroot has the source of `core`.
    pub(crate) rustc: PathBuf,
    /// The `rustdoc` beside it.
    pub(crate) rustdoc: PathBuf,
    /// `$sysroot/lib/rustlib/src/rust/library`.
    pub(crate) rust_lib_src: PathBuf,
    /// `rustc --version`, e.g. `rustc 1.96.0 (...)`.
    pub(crate) rustc_version: String,
    /// The `bindgen` executable.
    pub(crate) bindgen: PathBuf,
    /// `bindgen --version`.
    pub(crate) bindgen_version: String,
    /// The directory of clang, ld.lld and llvm-* of the pinned LLVM.
    pub(crate) llvm_bin: PathBuf,
    /// `clang --version`, first line.
    pub(crate) clang_version: String,
    /// The emulator.
    pub(crate) qemu: PathBuf,
    /// A statically linked busybox for the guest.
    pub(crate) busybox: PathBuf,
}

impl Toolchain {
    /// Arguments every `make` of the kernel or a module gets.
    pub(crate) fn make_vars(&self) -> Vec<String> {
        vec![
            "LLVM=1".into(),
            format!("RUSTC={}", self.rustc.display()),
            format!("RUSTDOC={}", self.rustdoc.display()),
            format!("RUST_LIB_SRC={}", self.rust_lib_src.display()),
            format!("BINDGEN={}", self.bindgen.display()),
        ]
    }

    /// `PATH` with the pinned LLVM first, so `LLVM=1` finds clang 19.
    pub(crate) fn path_env(&self) -> String {
        let old = std::env::var("PATH").unwrap_or_default();
        format!("{}:{old}", self.llvm_bin.display())
    }

    /// Applies [`Self::path_env`] and the libclang location to a shell.
    pub(crate) fn configure_shell(&self, sh: &Shell) {
        sh.set_var("PATH", self.path_env());
        if let Some(lib) = self.llvm_bin.parent() {
            sh.set_var("LIBCLANG_PATH", lib.join("lib"));
        }
    }
}

/// Whether to install what is missing or only report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Install {
    /// Install missing packages and crates when allowed (root, Debian).
    IfMissing,
    /// Never install; fail with the commands to run.
    Never,
}

/// Finds the toolchain, installing missing pieces if `install` allows.
/// bindgen is built while apt installs the packages: its build needs only
/// cargo (its libclang is loaded when it runs), and apt mostly waits for
/// the network and the disk.
pub(crate) fn ensure(sh: &Shell, install: Install) -> Result<Toolchain> {
    let missing = missing_debian_packages(sh, DEBIAN_PACKAGES);
    // Packages that cannot be installed are named before anything is built.
    if !missing.is_empty() {
        can_install(&missing, install)?;
    }
    let bindgen = std::thread::scope(|scope| {
        let bindgen = scope.spawn(|| ensure_crate(&Shell::new()?, BINDGEN, "WORKBOOK_BINDGEN", install));
        let packages = if missing.is_empty() { Ok(()) } else { install_debian_packages(sh, &missing, install) };
        let bindgen = bindgen.join().unwrap_or_else(|_| Err(anyhow!("installing bindgen panicked")));
        packages.and(bindgen)
    })?;
    detect(sh, bindgen)
}

/// Finds every tool without installing anything.
fn detect(sh: &Shell, bindgen: PathBuf) -> Result<Toolchain> {
    let (rustc, rust_lib_src) = find_rustc_with_core_source(sh)?;
    let rustc_version = cmd!(sh, "{rustc} --version").quiet().read()?;
    let rustdoc = rustc.with_file_name("rustdoc");
    if !rustdoc.exists() {
        return Err(anyhow!("{} has no rustdoc beside it ({})", rustc.display(), rustdoc.display()));
    }
    if !rustc_version.starts_with("rustc 1.96.") {
        eprintln!("note: the workbook is pinned to rustc 1.96; using {rustc_version}");
    }
    let bindgen_version = cmd!(sh, "{bindgen} --version").quiet().read()?;
    check_bindgen_version(&bindgen_version)?;
    let llvm_bin = PathBuf::from(LLVM_BIN);
    let clang = llvm_bin.join("clang");
    if !clang.exists() {
        return Err(anyhow!(
            "clang 19 not found at {}: install it with `apt-get install clang-19 lld-19 llvm-19 libclang-19-dev`",
            clang.display()
        ));
    }
    let clang_version = cmd!(sh, "{clang} --version").quiet().read()?.lines().next().unwrap_or_default().to_string();
    let qemu =
        find_in_path("qemu-system-x86_64").context("qemu-system-x86_64 not found: install it with `apt-get install qemu-system-x86`")?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("busybox not found: install it with `apt-get install busybox-static`")?;
    check_static(sh, &busybox)?;
    Ok(Toolchain { rustc, rustdoc, rust_lib_src, rustc_version, bindgen, bindgen_version, llvm_bin, clang_version, qemu, busybox })
}

/// `WORKBOOK_RUSTC` first, then Debian's `/usr/bin/rustc`, then `rustc` in
/// `PATH`: the first whose sysroot has `core`'s source wins.
fn find_rustc_with_core_source(sh: &Shell) -> Result<(PathBuf, PathBuf)> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("WORKBOOK_RUSTC").filter(|p| !p.is_empty()) {
        candidates.push(PathBuf::from(path));
    } else {
        candidates.push(PathBuf::from("/usr/bin/rustc"));
        candidates.extend(find_in_path("rustc"));
    }
    let mut tried = Vec::new();
    for rustc in candidates {
        if !rustc.exists() {
            tried.push(format!("{}: not found", rustc.display()));
            continue;
        }
        let sysroot = match cmd!(sh, "{rustc} --print sysroot").quiet().ignore_stderr().read() {
            Ok(s) => PathBuf::from(s),
            Err(e) => {
                tried.push(format!("{}: {e}", rustc.display()));
                continue;
            }
        };
        let library = sysroot.join("lib/rustlib/src/rust/library");
        if library.join("core/src/lib.rs").exists() {
            return Ok((rustc, library));
        }
        tried.push(format!("{}: no core source under {}", rustc.display(), library.display()));
    }
    Err(anyhow!(
        "no rustc with the source of `core` was found (the kernel builds its own `core`):\n  {}\n\
         fix: `apt-get install rustc-web rust-web-src` (Debian), or point WORKBOOK_RUSTC at a rustc \
         whose toolchain has rust-src (`rustup component add rust-src`)",
        tried.join("\n  ")
    ))
}

/// 7.3 needs bindgen >= 0.71.1.
fn check_bindgen_version(version: &str) -> Result<()> {
    let numbers: Vec<u32> = version.split_whitespace().last().unwrap_or_default().split('.').map(|n| n.parse().unwrap_or(0)).collect();
    if numbers.as_slice() < [0, 71, 1].as_slice() {
        return Err(anyhow!(
            "{version} is too old: Linux 7.3 needs bindgen >= 0.71.1; \
             fix: `cargo install --locked {}@{}`",
            BINDGEN.krate,
            BINDGEN.version
        ));
    }
    Ok(())
}

/// The guest has no shared libraries: busybox must be static.
fn check_static(sh: &Shell, busybox: &Path) -> Result<()> {
    let bytes = std::fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    // A dynamic executable names its interpreter in a PT_INTERP segment; the
    // loader's path is the tell-tale without parsing ELF headers by hand.
    if bytes.windows(14).any(|w| w == b"/lib64/ld-linu") {
        let _ = sh;
        return Err(anyhow!("{} is dynamically linked; the guest needs a static one: `apt-get install busybox-static`", busybox.display()));
    }
    Ok(())
}

/// The first executable called `name` in `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Installs whichever of `packages` are missing (as root, on Debian), or
/// fails naming them. Off Debian nothing is checked here: the tool checks in
/// [`detect`] speak instead.
pub(crate) fn ensure_debian_packages(sh: &Shell, packages: &[&str], install: Install) -> Result<()> {
    let missing = missing_debian_packages(sh, packages);
    if missing.is_empty() {
        return Ok(());
    }
    install_debian_packages(sh, &missing, install)
}

/// Which of `packages` are not installed.
fn missing_debian_packages(sh: &Shell, packages: &[&str]) -> Vec<String> {
    if find_in_path("dpkg-query").is_none() {
        return Vec::new();
    }
    let format = "-f=${Package}\t${Status}\n";
    let out = cmd!(sh, "dpkg-query -W {format} {packages...}").quiet().ignore_stderr().ignore_status().read().unwrap_or_default();
    let installed: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("install ok installed"))
        .filter_map(|l| l.split('\t').next())
        .map(|p| p.split(':').next().unwrap_or(p))
        .collect();
    packages.iter().filter(|p| !installed.contains(p)).map(|p| p.to_string()).collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `missing` can be installed here; if not, the error that names
/// them and the fix.
fn can_install(missing: &[String], install: Install) -> Result<()> {
    if install == Install::Never || !is_root() || find_in_path("apt-get").is_none() {
        let list = missing.join(" ");
        return Err(anyhow!("missing Debian packages: {list}\nfix: run as root: `apt-get update && apt-get install -y {list}`"));
    }
    Ok(())
}

fn install_debian_packages(sh: &Shell, missing: &[String], install: Install) -> Result<()> {
    can_install(missing, install)?;
    let list = missing.join(" ");
    eprintln!("setup: installing Debian packages: {list}");
    let log = std::env::temp_dir().join("workbook-apt.log");
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    let run = |args: &[&str]| -> Result<String> {
        let out = cmd!(sh, "apt-get {args...}").quiet().ignore_status().output()?;
        let mut text = out.stdout.clone();
        text.extend_from_slice(&out.stderr);
        std::fs::write(&log, &text).ok();
        let text = String::from_utf8_lossy(&text).into_owned();
        if !out.status.success() {
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(anyhow!("apt-get {} failed (log: {}):\n{}", args.join(" "), log.display(), tail.join("\n")));
        }
        Ok(text)
    };
    run(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing.iter().map(String::as_str));
    let removed = removed_by_apt(&run(&args)?);
    if !removed.is_empty() {
        // A package of the machine's, gone without a word, would surprise
        // its owner (on some machines, qemu-system-x86 replaces a newer
        // qemu-utils: qemu-img goes with it). Putting it back would take
        // these away again, so the note only says what went.
        eprintln!("setup: note: to install these, apt removed {} (log: {})", removed.join(" "), log.display());
    }
    Ok(())
}

/// The packages apt's output says it removed (its `The following packages
/// will be REMOVED:` list, indented names up to the next heading).
fn removed_by_apt(output: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|line| !line.starts_with("The following packages will be REMOVED"))
        .skip(1)
        .take_while(|line| line.starts_with(' '))
        .flat_map(|line| line.split_whitespace().map(|name| name.trim_end_matches('*').to_string()))
        .collect()
}

/// The binary of a pinned crate: `override_var` first, then cargo's bin
/// directory, then `PATH`; installed with `cargo install` when missing or at
/// another version.
/// The workflow linter for GitHub Actions files: check-jsonschema, which
/// carries the workflow schema, pinned.
pub(crate) const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";

/// A Python tool from PyPI in a virtual environment of the cache
/// (`<cache>/tools/python`), installed there when allowed: the system's
/// Python stays as it is. Debian's `python3-venv` is installed if missing.
pub(crate) fn ensure_python_tool(sh: &Shell, cache: &Path, requirement: &str, binary: &str, install: Install) -> Result<PathBuf> {
    let venv = cache.join("tools/python");
    let tool = venv.join("bin").join(binary);
    let stamp = venv.join(format!(".installed-{requirement}"));
    if tool.exists() && stamp.exists() {
        return Ok(tool);
    }
    if install == Install::Never {
        return Err(anyhow!(
            "{binary} is not installed (--no-install): fix: python3 -m venv {} && {}/bin/pip install '{requirement}'",
            venv.display(),
            venv.display()
        ));
    }
    ensure_debian_packages(sh, &["python3-venv"], install)?;
    let python = if Path::new("/usr/bin/python3").exists() { PathBuf::from("/usr/bin/python3") } else { PathBuf::from("python3") };
    cmd!(sh, "{python} -m venv {venv}").quiet().run().with_context(|| format!("cannot make a Python environment in {}", venv.display()))?;
    let pip = venv.join("bin/pip");
    eprintln!("installing {requirement} from PyPI into {}", venv.display());
    cmd!(sh, "{pip} install --quiet {requirement}").quiet().run().with_context(|| format!("cannot install {requirement} from PyPI"))?;
    std::fs::write(&stamp, b"")?;
    Ok(tool)
}

pub(crate) fn ensure_crate(sh: &Shell, pinned: PinnedCrate, override_var: &str, install: Install) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(override_var).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let cargo_bin = cargo_home()?.join("bin").join(pinned.binary);
    let found = Some(cargo_bin.clone()).filter(|p| p.exists()).or_else(|| find_in_path(pinned.binary));
    if let Some(path) = &found {
        let version = cmd!(sh, "{path} --version").quiet().ignore_stderr().read().unwrap_or_default();
        if version.split_whitespace().any(|w| w.trim_start_matches('v') == pinned.version) {
            return Ok(path.clone());
        }
    }
    let (krate, version) = (pinned.krate, pinned.version);
    if install == Install::Never {
        return Err(anyhow!(
            "{} {version} is not installed{}\nfix: `cargo install --locked {krate}@{version}`",
            pinned.binary,
            found.map(|p| format!(" ({} is another version)", p.display())).unwrap_or_default()
        ));
    }
    eprintln!("setup: cargo install --locked {krate}@{version} (a few minutes, once)");
    let out = cmd!(sh, "cargo install --locked --quiet {krate}@{version}").quiet().ignore_status().output()?;
    if !out.status.success() {
        return Err(anyhow!("cargo install {krate}@{version} failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(cargo_bin)
}

fn cargo_home() -> Result<PathBuf> {
    match std::env::var_os("CARGO_HOME") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Ok(crate::paths::home_dir()?.join(".cargo")),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_bindgen_version, removed_by_apt};

    #[test]
    fn packages_apt_removed() {
        let out = "Reading package lists...\nThe following packages will be REMOVED:\n  qemu-utils libfoo*\n  bar\nThe following NEW packages will be installed:\n  qemu-system-x86\n";
        assert_eq!(removed_by_apt(out), ["qemu-utils", "libfoo", "bar"]);
        assert!(removed_by_apt("The following NEW packages will be installed:\n  x\n").is_empty());
    }

    #[test]
    fn bindgen_versions() {
        assert!(check_bindgen_version("bindgen 0.73.2").is_ok());
        assert!(check_bindgen_version("bindgen 0.71.1").is_ok());
        assert!(check_bindgen_version("bindgen 1.0.0").is_ok());
        let err = check_bindgen_version("bindgen 0.60.1").unwrap_err().to_string();
        assert!(err.contains("0.71.1") && err.contains("cargo install"), "{err}");
    }
}
