// SPDX-License-Identifier: GPL-2.0

//! The book: building it with a pinned mdBook, and checking that it never
//! disagrees with the code: every include names a file and anchor that
//! exist, every chapter has a page, every internal link leads somewhere.

use std::path::{Path, PathBuf};

use regex::Regex;
use xshell::{cmd, Shell};

use crate::chapter;
use crate::paths::{read_to_string, Project};
use crate::toolchain::{self, Install, MDBOOK};
use crate::Result;

/// The book's source pages.
fn pages(project: &Project) -> Result<Vec<PathBuf>> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(project.root.join("book/src"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    Ok(pages)
}

/// Every problem found in the book's sources; empty when it is sound.
pub fn check(project: &Project) -> Result<Vec<String>> {
    let include = Regex::new(r"\{\{#(?:include|rustdoc_include)\s+([^}:\s]+)(?::([^}\s]+))?\s*\}\}").unwrap();
    let link = Regex::new(r"\]\(([^)#\s]+\.md)(#[^)]*)?\)").unwrap();
    let mut problems = Vec::new();
    let mut included_chapters = Vec::new();
    for page in pages(project)? {
        let text = read_to_string(&page)?;
        let name = page.strip_prefix(&project.root).unwrap_or(&page).display().to_string();
        let dir = page.parent().unwrap_or(Path::new("."));
        for found in include.captures_iter(&text) {
            let target = dir.join(&found[1]);
            let Ok(contents) = std::fs::read_to_string(&target) else {
                problems.push(format!("{name}: includes {}, which does not exist", &found[1]));
                continue;
            };
            if let Some(chapter) = found[1].split("chapters/").nth(1).and_then(|rest| rest.split('/').next()) {
                included_chapters.push(chapter.to_string());
            }
            if let Some(anchor) = found.get(2).map(|m| m.as_str()).filter(|a| !a.chars().next().unwrap_or('0').is_ascii_digit()) {
                if !contents.contains(&format!("ANCHOR: {anchor}")) || !contents.contains(&format!("ANCHOR_END: {anchor}")) {
                    problems.push(format!(
                        "{name}: includes {}:{anchor}, but that file has no `ANCHOR: {anchor}` ... `ANCHOR_END: {anchor}`",
                        &found[1]
                    ));
                }
            }
        }
        let mut in_fence = false;
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
            } else if !in_fence && include.is_match(line) {
                problems.push(format!("{name}:{}: an include outside a ``` code block is rendered as prose", number + 1));
            }
        }
        for found in link.captures_iter(&text) {
            if !found[1].contains("://") && !dir.join(&found[1]).exists() {
                problems.push(format!("{name}: links to {}, which does not exist", &found[1]));
            }
        }
    }
    for chapter in chapter::list(project)? {
        if !included_chapters.contains(&chapter) {
            problems.push(format!("chapters/{chapter} has no book page: no page includes code from it"));
        }
    }
    for chapter in included_chapters {
        if !project.chapters_dir().join(&chapter).is_dir() {
            problems.push(format!("the book includes from chapters/{chapter}, which is not a chapter"));
        }
    }
    Ok(problems)
}

/// The book's chapter pages (those that include code from `chapters/`) as
/// (HTML file, id of their first heading), for the browser check.
pub fn chapter_pages(project: &Project) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for page in pages(project)? {
        let text = read_to_string(&page)?;
        if !text.contains("../../chapters/") {
            continue;
        }
        let Some(title) = text.lines().find_map(|l| l.strip_prefix("# ")) else {
            continue;
        };
        let html = page.with_extension("html").file_name().unwrap_or_default().to_string_lossy().to_string();
        found.push((html, heading_id(title)));
    }
    Ok(found)
}

/// The id mdBook gives a heading: lower case, spaces to `-`, punctuation dropped.
pub fn heading_id(title: &str) -> String {
    title
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

/// Builds the HTML into `target/book`, or serves it with `serve`.
pub fn build(project: &Project, serve: bool) -> Result<PathBuf> {
    let problems = check(project)?;
    if !problems.is_empty() {
        return Err(format!("the book disagrees with the code:\n  {}", problems.join("\n  ")).into());
    }
    let sh = Shell::new()?;
    let mdbook = toolchain::ensure_crate(&sh, MDBOOK, "WORKBOOK_MDBOOK", Install::IfMissing)?;
    let book = project.root.join("book");
    if serve {
        cmd!(sh, "{mdbook} serve {book}").run()?;
    } else {
        let out = cmd!(sh, "{mdbook} build {book}").quiet().ignore_status().output()?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || log.contains("ERROR") || log.contains("WARN") {
            return Err(format!("mdbook build failed or warned:\n{log}").into());
        }
    }
    Ok(project.root.join("target/book"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway project with one chapter and one page.
    fn project(page: &str) -> Project {
        let root = std::env::temp_dir().join(format!("book-test-{}-{}", std::process::id(), page.len()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("book/src")).unwrap();
        std::fs::create_dir_all(root.join("chapters/01-x")).unwrap();
        std::fs::write(root.join("chapters/01-x/checks.toml"), "").unwrap();
        std::fs::write(root.join("chapters/01-x/x.rs"), "// ANCHOR: a\nfn a() {}\n// ANCHOR_END: a\n").unwrap();
        std::fs::write(root.join("book/src/x.md"), page).unwrap();
        Project { cache: root.join("cache"), root }
    }

    #[test]
    fn heading_ids_match_mdbook() {
        assert_eq!(heading_id("Hello, kernel"), "hello-kernel");
        assert_eq!(heading_id("Talking to user space through /proc"), "talking-to-user-space-through-proc");
    }

    #[test]
    fn sound_book_has_no_problems() {
        let p = project("```rust\n{{#include ../../chapters/01-x/x.rs:a}}\n```\n[x](x.md)\n");
        assert_eq!(check(&p).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn broken_includes_links_and_missing_pages_are_named() {
        let p = project("```rust\n{{#include ../../chapters/01-x/x.rs:b}}\n```\n{{#include ../../chapters/01-x/x.rs:a}}\n[y](y.md)\n```\n{{#include ../../chapters/02-y/y.rs}}\n```\n");
        let problems = check(&p).unwrap().join("\n");
        assert!(problems.contains("no `ANCHOR: b`"), "{problems}");
        assert!(problems.contains("outside a ``` code block"), "{problems}");
        assert!(problems.contains("links to y.md"), "{problems}");
        assert!(problems.contains("chapters/02-y/y.rs, which does not exist"), "{problems}");
        let p = project("no includes at all\n");
        assert!(check(&p).unwrap().join("\n").contains("chapters/01-x has no book page"));
    }
}
