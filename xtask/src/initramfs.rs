// SPDX-License-Identifier: GPL-2.0

//! The guest's root file system: an uncompressed cpio archive ("newc", the
//! format the kernel unpacks into its initramfs), written directly so that no
//! `cpio` or root privileges are needed, and device nodes can be included.

use std::collections::BTreeSet;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// An archive being assembled in memory.
#[derive(Default, Clone)]
pub(crate) struct Cpio {
    bytes: Vec<u8>,
    next_inode: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    /// An empty archive.
    pub(crate) fn new() -> Cpio {
        Cpio::default()
    }

    /// Adds a directory and any missing parents.
    pub(crate) fn dir(&mut self, path: &str) -> &mut Self {
        let path = path.trim_matches('/');
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                let name = prefix.clone();
                self.entry(&name, S_IFDIR | 0o755, 0, &[]);
            }
        }
        self
    }

    /// Adds a regular file (and its parent directories).
    pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.parent(path);
        self.entry(path.trim_start_matches('/'), S_IFREG | mode, 0, data);
        self
    }

    /// Adds a symbolic link.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.parent(path);
        self.entry(path.trim_start_matches('/'), S_IFLNK | 0o777, 0, target.as_bytes());
        self
    }

    /// Adds a character device node.
    pub(crate) fn char_device(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        self.parent(path);
        self.entry(path.trim_start_matches('/'), S_IFCHR | 0o600, (major << 8) | minor, &[]);
        self
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.trim_start_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) {
        self.next_inode += 1;
        let fields = [
            self.next_inode,
            mode,
            0, // uid
            0, // gid
            if mode & S_IFDIR == S_IFDIR && mode & S_IFREG == 0 { 2 } else { 1 },
            0, // mtime: fixed, so equal inputs give equal archives
            data.len() as u32,
            0,
            0,
            rdev >> 8,
            rdev & 0xff,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// Closes the archive and returns its bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_newc() {
        let mut cpio = Cpio::new();
        cpio.file("/a/b.txt", 0o644, b"hello");
        let bytes = cpio.finish();
        // Directory "a" comes first, then the file, then the trailer.
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        let a = text.find("a\0").unwrap();
        let b = text.find("a/b.txt\0").unwrap();
        assert!(a < b && text.contains("TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
        // The file's header carries its size (5) and mode.
        let header = &text[b - 110..b];
        assert_eq!(&header[54..62], "00000005");
        assert_eq!(&header[14..22], format!("{:08x}", S_IFREG | 0o644));
    }

    #[test]
    fn with_cpio_tool() {
        // Cross-check with the real tool where it is installed.
        if crate::toolchain::find_in_path("cpio").is_none() {
            return;
        }
        let mut cpio = Cpio::new();
        cpio.file("bin/x", 0o755, b"#!/bin/sh\n").symlink("bin/y", "x").char_device("dev/console", 5, 1);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let archive = dir.join("t.cpio");
        std::fs::write(&archive, cpio.finish()).unwrap();
        let out = std::process::Command::new("cpio").arg("-itv").arg("-F").arg(&archive).output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        std::fs::remove_dir_all(&dir).ok();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(listing.contains("bin/x") && listing.contains("bin/y -> x"), "{listing}");
        assert!(listing.lines().any(|l| l.starts_with('c') && l.contains("dev/console")), "{listing}");
    }
}
