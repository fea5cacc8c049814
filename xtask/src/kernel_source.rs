// SPDX-License-Identifier: GPL-2.0

//! The guest kernel's source: a tree or tarball of the user's, else
//! Debian's `linux-source-7.3`, fetched through a private apt configuration
//! (the system's own sources are never changed) and unpacked once.

use crate::hash::CacheKey;
use crate::paths::Project;
use crate::Result;
use anyhow::{anyhow, Context};
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// Debian's package with the kernel source the workbook targets.
pub(crate) const DEBIAN_SOURCE_PACKAGE: &str = "linux-source-7.3";

/// The suite that has it; the machine's own suites (bookworm) do not.
pub(crate) const DEBIAN_SOURCE_SUITE: &str = "trixie-backports";

/// A kernel source tree and what identifies it in cache keys.
#[derive(Debug, Clone)]
pub(crate) struct KernelSource {
    /// The top of the tree (has the kernel's `Makefile`).
    pub(crate) dir: PathBuf,
    /// What the tree is, e.g. `debian linux-source-7.3 7.3.4-1~bpo13+1`.
    pub(crate) identity: String,
}

/// Finds the kernel source: `explicit` (a flag), else `WORKBOOK_KERNEL_SRC`,
/// else Debian's package fetched into the cache.
pub(crate) fn ensure_source(sh: &Shell, project: &Project, explicit: Option<&Path>) -> Result<KernelSource> {
    let chosen =
        explicit.map(Path::to_path_buf).or_else(|| std::env::var_os("WORKBOOK_KERNEL_SRC").filter(|p| !p.is_empty()).map(PathBuf::from));
    match chosen {
        Some(path) if path.is_dir() => source_from_tree(sh, &path),
        Some(path) if path.is_file() => source_from_tarball(sh, project, &path),
        Some(path) => Err(anyhow!(
            "kernel source {} does not exist: give a kernel tree or a .tar.xz/.tar.gz tarball \
             (WORKBOOK_KERNEL_SRC or --kernel-src)",
            path.display()
        )),
        None => source_from_debian(sh, project),
    }
}

fn source_from_tree(sh: &Shell, dir: &Path) -> Result<KernelSource> {
    let dir = dir.canonicalize()?;
    if !dir.join("Makefile").exists() || !dir.join("rust/kernel").is_dir() {
        return Err(anyhow!(
            "{} is not a Rust-capable kernel tree (no Makefile or rust/kernel/); the workbook targets Linux 7.3",
            dir.display()
        ));
    }
    let version = cmd!(sh, "make -s -C {dir} kernelversion").quiet().ignore_stderr().read()?;
    Ok(KernelSource { identity: format!("tree {} {version}", dir.display()), dir })
}

fn source_from_tarball(sh: &Shell, project: &Project, tarball: &Path) -> Result<KernelSource> {
    let tarball = tarball.canonicalize()?;
    let meta = std::fs::metadata(&tarball)?;
    let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let identity = format!("tarball {} {} {mtime}", tarball.display(), meta.len());
    let dest = project.cache_dir("src")?.join(format!("tarball-{}", CacheKey::default().add(&identity).hex()));
    unpack_tarball_once(sh, &tarball, &dest)?;
    Ok(KernelSource { dir: dest, identity })
}

/// Unpacks a kernel tarball whose single top directory becomes `dest`.
fn unpack_tarball_once(sh: &Shell, tarball: &Path, dest: &Path) -> Result<()> {
    if dest.join("Makefile").exists() {
        return Ok(());
    }
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    eprintln!("setup: unpacking {} (about 15 seconds, once)", tarball.display());
    // Debian's tarball is xz in many blocks: xz decompresses them on every
    // core (15.5 s down to 12.9 s on 2 cores).
    let threads: &[&str] = if tarball.extension().is_some_and(|e| e == "xz") { &["-I", "xz -T0"] } else { &[] };
    cmd!(sh, "tar {threads...} -C {partial} --strip-components=1 -xf {tarball}").quiet().run()?;
    std::fs::rename(&partial, dest)?;
    Ok(())
}

fn source_from_debian(sh: &Shell, project: &Project) -> Result<KernelSource> {
    let downloads = project.cache_dir("downloads")?;
    let deb = match find_deb(&downloads)? {
        Some(deb) => deb,
        None => {
            download_debian_source(sh, project, &downloads)?;
            find_deb(&downloads)?.context("apt-get download finished but left no .deb")?
        }
    };
    let file_name = deb.file_name().unwrap_or_default().to_string_lossy().to_string();
    let version = file_name.trim_end_matches("_all.deb").rsplit('_').next().unwrap_or("unknown").to_string();
    let dest = project.cache_dir("src")?.join(format!("{DEBIAN_SOURCE_PACKAGE}_{version}"));
    if !dest.join("Makefile").exists() {
        let unpacked = project.cache.join("src").join("deb-contents");
        let _ = std::fs::remove_dir_all(&unpacked);
        cmd!(sh, "dpkg-deb -x {deb} {unpacked}").quiet().run()?;
        let tarball = unpacked.join(format!("usr/src/{DEBIAN_SOURCE_PACKAGE}.tar.xz"));
        unpack_tarball_once(sh, &tarball, &dest)?;
        let _ = std::fs::remove_dir_all(&unpacked);
    }
    Ok(KernelSource { dir: dest, identity: format!("debian {DEBIAN_SOURCE_PACKAGE} {version}") })
}

fn find_deb(dir: &Path) -> Result<Option<PathBuf>> {
    let prefix = format!("{DEBIAN_SOURCE_PACKAGE}_");
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Fetches the source package through a private apt configuration under the
/// cache: the machine's own archive address, the extra suite, its own lists.
/// The system's apt sources are never touched.
fn download_debian_source(sh: &Shell, project: &Project, downloads: &Path) -> Result<()> {
    if crate::toolchain::find_in_path("apt-get").is_none() {
        return Err(anyhow!(
            "no kernel source: this is not a Debian machine, so {DEBIAN_SOURCE_PACKAGE} cannot be fetched;\n\
             fix: download a Linux 7.3.x tarball and set WORKBOOK_KERNEL_SRC=/path/to/linux-7.3.x.tar.xz \
             (or a source tree)"
        ));
    }
    let apt = project.cache_dir("apt")?;
    for dir in ["etc/preferences.d", "lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(apt.join(dir))?;
    }
    let uri = system_archive_uri()?;
    let sources = apt.join("etc/backports.sources");
    std::fs::write(
        &sources,
        format!(
            "Types: deb\nURIs: {uri}\nSuites: {DEBIAN_SOURCE_SUITE}\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )?;
    let options = [
        format!("Dir::Etc::SourceList={}", sources.display()),
        "Dir::Etc::SourceParts=/nonexistent".into(),
        format!("Dir::State::Lists={}", apt.join("lists").display()),
        format!("Dir::Cache={}", apt.join("cache").display()),
        "Dir::Etc::Preferences=/nonexistent".into(),
        format!("Dir::Etc::PreferencesParts={}", apt.join("etc/preferences.d").display()),
        "APT::Sandbox::User=root".into(),
    ];
    let options: Vec<String> = options.iter().flat_map(|o| ["-o".to_string(), o.clone()]).collect();
    let opts = &options;
    eprintln!("setup: fetching {DEBIAN_SOURCE_PACKAGE} from {DEBIAN_SOURCE_SUITE} (private apt configuration in {})", apt.display());
    let _dir = sh.push_dir(downloads);
    let update = cmd!(sh, "apt-get {opts...} -q update").quiet().ignore_status().output()?;
    if !update.status.success() {
        return Err(anyhow!("apt-get update (private configuration) failed:\n{}", String::from_utf8_lossy(&update.stderr)));
    }
    let package = DEBIAN_SOURCE_PACKAGE;
    let download = cmd!(sh, "apt-get {opts...} -q download {package}").quiet().ignore_status().output()?;
    if !download.status.success() {
        return Err(anyhow!(
            "apt-get download {package} failed:\n{}\nfix: set WORKBOOK_KERNEL_SRC to a Linux 7.3 tarball or tree",
            String::from_utf8_lossy(&download.stderr)
        ));
    }
    Ok(())
}

/// The Debian archive address the machine already uses, read from its apt
/// configuration (deb822 `.sources` files first, then `sources.list`).
fn system_archive_uri() -> Result<String> {
    let mut texts = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "sources")) {
            texts.push((true, std::fs::read_to_string(path).unwrap_or_default()));
        }
    }
    texts.push((false, std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()));
    texts.iter().find_map(|(deb822, text)| if *deb822 { archive_uri_deb822(text) } else { archive_uri_one_line(text) }).ok_or_else(|| {
        anyhow!(
            "no Debian archive is configured in /etc/apt (sources.list or sources.list.d/*.sources); \
             fix: set WORKBOOK_KERNEL_SRC to a Linux 7.3 tarball or tree"
        )
    })
}

/// Whether an apt suite is the main archive's (not `-security`, which is
/// served from another address).
fn is_main_archive_suite(suite: &str) -> bool {
    !suite.contains("security")
}

/// The URI of the first deb822 stanza of the main archive.
pub(crate) fn archive_uri_deb822(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_string())
            })
        };
        let types = field("Types")?;
        let suites = field("Suites")?;
        let uri = field("URIs")?.split_whitespace().next()?.to_string();
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        (enabled && types.split_whitespace().any(|t| t == "deb") && suites.split_whitespace().any(is_main_archive_suite)).then_some(uri)
    })
}

/// The URI of the first `deb URI suite ...` line of the main archive.
pub(crate) fn archive_uri_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace().filter(|w| !w.starts_with('['));
        if words.next()? != "deb" {
            return None;
        }
        // Options in brackets may contain spaces: skip to the URI.
        let rest: Vec<&str> = line.split_whitespace().skip(1).collect();
        let rest = match rest.iter().position(|w| w.ends_with(']')) {
            Some(i) if rest[0].starts_with('[') => &rest[i + 1..],
            _ => &rest[..],
        };
        let (uri, suite) = (rest.first()?, rest.get(1)?);
        is_main_archive_suite(suite).then(|| uri.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_main_archive() {
        let text = "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://archive.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(archive_uri_deb822(text).as_deref(), Some("http://archive.example/debian"));
        let security_only = "Types: deb\nURIs: http://s.example/\nSuites: bookworm-security\n";
        assert_eq!(archive_uri_deb822(security_only), None);
        let disabled = "Enabled: no\nTypes: deb\nURIs: http://x.example/\nSuites: bookworm\n";
        assert_eq!(archive_uri_deb822(disabled), None);
    }

    #[test]
    fn one_line_main_archive() {
        let text = "# comment\ndeb-src http://a.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://a.example/debian bookworm main\n";
        assert_eq!(archive_uri_one_line(text).as_deref(), Some("http://a.example/debian"));
        assert_eq!(archive_uri_one_line("deb http://s.example/ bookworm-security main"), None);
    }
}
