// SPDX-License-Identifier: GPL-2.0

//! The book: building it with a pinned mdBook, and checking that it never
//! disagrees with the code: every include names a file and anchor that
//! exist, every chapter has a page, every internal link leads somewhere.
//!
//! It is a workbook, so it never shows a solution: mdBook renders a staged
//! copy in which every chapter is its exercise skeleton (an exercise reads
//! as the learner's `TODO`), and the rendered pages are then searched for
//! marker comments and for the solutions' own lines.
//!
//! Diagrams are text (`book/diagrams/NAME.txt`, box-drawing characters and
//! words), drawn as inline SVG where a page says `{{#diagram NAME CAPTION}}`.
//!
//! (Longer than most files here: the checks of both editions, the staged
//! build, the diagrams and the solution search share their parsing, and
//! their tests.)

use std::path::{Path, PathBuf};

use regex::Regex;
use xshell::{cmd, Shell};

use crate::chapter::{self, Chapter};
use crate::diagram::{render_diagram, xml_escape};
use crate::exercise;
use crate::paths::{read_to_string, Project};
use crate::toolchain::{self, Install, MDBOOK};
use crate::Result;
use anyhow::anyhow;

/// Where the Chinese edition's pages are, beside the English `book/src`.
pub(crate) const ZH_SRC: &str = "book/zh-CN/src";

/// The book's source pages.
fn pages(project: &Project) -> Result<Vec<PathBuf>> {
    pages_in(&project.root.join("book/src"))
}

fn pages_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut pages: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "md")).collect();
    pages.sort();
    Ok(pages)
}

/// Every problem found in the book's sources; empty when it is sound.
pub(crate) fn check(project: &Project) -> Result<Vec<String>> {
    let include = Regex::new(r"\{\{#(?:include|rustdoc_include)\s+([^}:\s]+)(?::([^}\s]+))?\s*\}\}").unwrap();
    let link = Regex::new(r"\]\(([^)#\s]+\.md)(#[^)]*)?\)").unwrap();
    let mut problems = Vec::new();
    let mut included_chapters = Vec::new();
    let zh = project.root.join(ZH_SRC);
    let mut all = pages(project)?;
    if zh.is_dir() {
        all.extend(pages_in(&zh)?);
    }
    for page in all {
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
        problems.extend(glossary_problems(&name, &page, &text)?);
        problems.extend(diagram_problems(project, &name, &text));
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

/// A page's glossary links: each names an entry of its edition's
/// glossary (`glossary.md#softirq-hardirq-atomic-context`), and a chapter
/// page (`NN-topic.md`) has at least one. The link check above sees only
/// that `glossary.md` exists; this one reads its headings' anchors.
fn glossary_problems(name: &str, page: &Path, text: &str) -> Result<Vec<String>> {
    let glossary_link = Regex::new(r"\]\(glossary\.md#([^)\s]*)\)").unwrap();
    let glossary = page.with_file_name("glossary.md");
    let file = page.file_name().unwrap_or_default().to_string_lossy();
    let is_chapter = file.len() > 3 && file.as_bytes()[..2].iter().all(u8::is_ascii_digit) && file.as_bytes()[2] == b'-';
    let mut problems = Vec::new();
    let links: Vec<String> = glossary_link.captures_iter(text).map(|c| c[1].to_string()).collect();
    if is_chapter && links.is_empty() {
        problems.push(format!("{name}: links to no glossary entry: link the first use of each term the glossary has"));
    }
    if links.is_empty() || !glossary.exists() {
        return Ok(problems);
    }
    let anchors = heading_anchors(&read_to_string(&glossary)?);
    for anchor in links.iter().filter(|a| !anchors.contains(a)) {
        problems.push(format!("{name}: links to glossary.md#{anchor}, but the glossary beside it has no heading with that anchor"));
    }
    Ok(problems)
}

/// The anchors of a page's headings, as mdBook makes them: a heading's
/// own `{#id}`, else [`heading_id`] of its text (code blocks skipped).
fn heading_anchors(text: &str) -> Vec<String> {
    let attribute = Regex::new(r"\s*\{#([^}\s]+)[^}]*\}\s*$").unwrap();
    let mut in_fence = false;
    let mut anchors = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let Some(title) = line.strip_prefix('#').map(|t| t.trim_start_matches('#')).filter(|t| t.starts_with(' ')) else {
            continue;
        };
        if in_fence {
            continue;
        }
        match attribute.captures(title) {
            Some(id) => anchors.push(id[1].to_string()),
            None => anchors.push(heading_id(title)),
        }
    }
    anchors
}

/// The marker a translated page starts with: the English page it was
/// translated from and that page's hash then, e.g.
/// `<!-- translated from 01-hello.md @ 8c1f0e7d2a9b3c44 -->`.
fn translation_marker(page: &str, english: &str) -> String {
    format!("<!-- translated from {page} @ {} -->", crate::hash::CacheKey::default().add(english).hex())
}

/// Where the Chinese edition disagrees with the English one: a page
/// missing or extra, a page translated from an older English text (its
/// marker's hash is not the page's hash now), other code included, or
/// another order of pages. Empty when they agree.
pub(crate) fn edition_problems(project: &Project) -> Result<Vec<String>> {
    let zh = project.root.join(ZH_SRC);
    if !zh.is_dir() {
        return Ok(vec![format!("{ZH_SRC} does not exist: the book has no Chinese edition")]);
    }
    let include = Regex::new(r"\{\{#(?:include|rustdoc_include)\s+(?:\.\./)+([^}\s]+)\s*\}\}").unwrap();
    let link = Regex::new(r"\]\(([^)#\s]+\.md)\)").unwrap();
    let includes = |text: &str| include.captures_iter(text).map(|c| c[1].to_string()).collect::<Vec<_>>();
    let mut problems = Vec::new();
    let english = pages(project)?;
    let names: Vec<String> = english.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().to_string()).collect();
    for (page, name) in english.iter().zip(&names) {
        let text = read_to_string(page)?;
        let Ok(translated) = std::fs::read_to_string(zh.join(name)) else {
            problems.push(format!("{ZH_SRC}/{name} is missing: every English page has a translation"));
            continue;
        };
        if name == "SUMMARY.md" {
            let order = |t: &str| link.captures_iter(t).map(|c| c[1].to_string()).collect::<Vec<_>>();
            if order(&text) != order(&translated) {
                problems.push(format!("{ZH_SRC}/SUMMARY.md lists other pages, or in another order, than book/src/SUMMARY.md"));
            }
            continue;
        }
        let marker = translation_marker(name, &text);
        match translated.lines().next() {
            Some(first) if first == marker => {}
            Some(first) if first.starts_with(&format!("<!-- translated from {name} @ ")) => problems.push(format!(
                "{ZH_SRC}/{name} was translated from an older book/src/{name}: bring the translation up to date, \
                 then make its first line `{marker}`"
            )),
            _ => problems.push(format!("{ZH_SRC}/{name} does not start with `{marker}` (the page it translates, and its hash)")),
        }
        if includes(&text) != includes(&translated) {
            problems.push(format!("{ZH_SRC}/{name} includes other code than book/src/{name} (the same includes, in the same order)"));
        }
        let diagrams = |t: &str| diagram_directives(t).0.into_iter().map(|d| d.name).collect::<Vec<_>>();
        if diagrams(&text) != diagrams(&translated) {
            problems.push(format!("{ZH_SRC}/{name} draws other diagrams than book/src/{name} (the same diagrams, in the same order)"));
        }
    }
    for page in pages_in(&zh)? {
        let name = page.file_name().unwrap_or_default().to_string_lossy().to_string();
        if !names.contains(&name) {
            problems.push(format!("{ZH_SRC}/{name} translates no page of book/src"));
        }
    }
    Ok(problems)
}

/// The book's chapter pages (those that include code from `chapters/`) and
/// the pages that draw a diagram, for the browser check, as (HTML file,
/// what it must show): the id of its first heading, then the id of each
/// diagram's figure, separated by spaces (`hello-kernel diagram-flow`).
/// The Chinese edition's are in `zh-CN/`.
pub(crate) fn chapter_pages(project: &Project) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let zh = project.root.join(ZH_SRC);
    let mut all: Vec<(&str, PathBuf)> = pages(project)?.into_iter().map(|p| ("", p)).collect();
    if zh.is_dir() {
        all.extend(pages_in(&zh)?.into_iter().map(|p| ("zh-CN/", p)));
    }
    for (prefix, page) in all {
        let text = read_to_string(&page)?;
        let diagrams: Vec<String> = diagram_directives(&text).0.into_iter().map(|d| format!(" diagram-{}", d.name)).collect();
        if !text.contains("/chapters/") && diagrams.is_empty() {
            continue;
        }
        let Some(title) = text.lines().find_map(|l| l.strip_prefix("# ")) else {
            continue;
        };
        let html = page.with_extension("html").file_name().unwrap_or_default().to_string_lossy().to_string();
        found.push((format!("{prefix}{html}"), format!("{}{}", heading_id(title), diagrams.concat())));
    }
    Ok(found)
}

/// The id mdBook gives a heading: lower case, spaces to `-`, punctuation dropped.
pub(crate) fn heading_id(title: &str) -> String {
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

/// Builds the HTML into `target/book`, or serves it with `serve`, from the
/// staged copy (see [`stage`]); fails if a rendered page shows a solution.
pub(crate) fn build(project: &Project, serve: bool, install: Install) -> Result<PathBuf> {
    let mut problems = check(project)?;
    problems.extend(edition_problems(project)?);
    if !problems.is_empty() {
        return Err(anyhow!("the book disagrees with the code or with its translation:\n  {}", problems.join("\n  ")));
    }
    let chapters = chapter::list(project)?.iter().map(|name| Chapter::find(project, name)).collect::<Result<Vec<_>>>()?;
    let staged = stage(project, &chapters)?;
    let problems = check(&staged)?;
    if !problems.is_empty() {
        return Err(anyhow!(
            "the book disagrees with the chapters' skeletons (an anchor inside an exercise?):\n  {}",
            problems.join("\n  ")
        ));
    }
    let sh = Shell::new()?;
    let mdbook = toolchain::ensure_crate(&sh, MDBOOK, "WORKBOOK_MDBOOK", install)?;
    let book = staged.root.join("book");
    let dest = project.root.join("target/book");
    if serve {
        println!("book: serving the staged copy in {}; run `cargo xtask book --serve` again after editing", book.display());
        cmd!(sh, "{mdbook} serve {book} --dest-dir {dest}").run()?;
    } else {
        // The English edition, then the Chinese one into its `zh-CN/`.
        let zh_book = book.join("zh-CN");
        let zh_dest = dest.join("zh-CN");
        for (source, out_dir) in [(&book, &dest), (&zh_book, &zh_dest)] {
            let out = cmd!(sh, "{mdbook} build {source} --dest-dir {out_dir}").quiet().ignore_status().output()?;
            let log = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || log.contains("ERROR") || log.contains("WARN") {
                return Err(anyhow!("mdbook build of {} failed or warned:\n{log}", source.display()));
            }
        }
        let mut shown = shown_solutions(&dest, &chapters)?;
        shown.extend(shown_solutions(&zh_dest, &chapters)?.into_iter().map(|p| format!("zh-CN/{p}")));
        if !shown.is_empty() {
            return Err(anyhow!("the rendered book shows what a learner should write:\n  {}", shown.join("\n  ")));
        }
    }
    Ok(dest)
}

/// Stages the book in `target/book-stage`: `book/` with its diagrams drawn
/// into the pages, every chapter as its exercise skeleton, the rest of the repository's included files
/// (`tests/`) by a link. Returns the staged project.
fn stage(project: &Project, chapters: &[Chapter]) -> Result<Project> {
    let root = project.root.join("target/book-stage");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    copy_tree(&project.root.join("book"), &root.join("book"))?;
    // The diagrams, drawn into the pages of both editions.
    for dir in ["book/src", ZH_SRC] {
        let staged = root.join(dir);
        if !staged.is_dir() {
            continue;
        }
        for page in pages_in(&staged)? {
            let name = format!("{dir}/{}", page.file_name().unwrap_or_default().to_string_lossy());
            std::fs::write(&page, draw_diagrams(project, &name, &read_to_string(&page)?)?)?;
        }
    }
    // One language switch for both editions.
    if root.join("book/zh-CN").is_dir() {
        std::fs::copy(project.root.join("book/language.js"), root.join("book/zh-CN/language.js"))?;
    }
    for chapter in chapters {
        exercise::write_skeleton(chapter, &root.join("chapters").join(&chapter.name))?;
    }
    std::os::unix::fs::symlink(project.root.join("tests"), root.join("tests"))?;
    Ok(Project { root, cache: project.cache.clone() })
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Exercise markers and solution lines found in the rendered pages under
/// `html`, one problem each. A solution line counts when it is distinctive
/// (at least 16 characters, and not also a line of the skeleton, like a
/// closing brace or `Ok(())`).
pub(crate) fn shown_solutions(html: &Path, chapters: &[Chapter]) -> Result<Vec<String>> {
    // Every line any skeleton keeps: `return Err(EAGAIN);` in one chapter's
    // solution is no secret when another chapter shows it.
    let mut kept: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut regions = Vec::new();
    for chapter in chapters {
        // One pass over each source gives both its skeleton and its regions.
        for name in exercise::module_sources(&chapter.dir)? {
            let (skeleton, found) = exercise::skeleton(&name, &read_to_string(&chapter.dir.join(&name))?)?;
            kept.extend(skeleton.lines().map(|l| l.trim().to_string()));
            regions.extend(found.into_iter().map(|r| (chapter.name.clone(), r)));
        }
    }
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (chapter, region) in regions {
        for line in &region.solution {
            let line = line.trim();
            if line.len() >= MIN_SOLUTION_LINE && !kept.contains(line) && !line.starts_with("//") {
                wanted.push((line.to_string(), format!("{chapter}/{}:{}", region.file, region.line)));
            }
        }
    }
    let markers = ["// EXERCISE:", "// HINT:", "// STUB:", "// END EXERCISE"];
    let mut problems = Vec::new();
    for page in std::fs::read_dir(html)? {
        let path = page?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        // print.html repeats every page; exercises.html teaches authors the
        // markers' syntax on purpose.
        if path.extension().is_none_or(|e| e != "html") || name == "print.html" {
            continue;
        }
        let listings = code_listings(&read_to_string(&path)?);
        let lines: std::collections::HashSet<&str> = listings.lines().map(str::trim).collect();
        if name != "exercises.html" {
            for marker in markers {
                if listings.contains(marker) {
                    problems.push(format!("{name}: shows the marker `{marker}`"));
                }
            }
        }
        for (line, region) in &wanted {
            if lines.contains(line.as_str()) {
                problems.push(format!("{name}: shows the solution of the exercise at {region}: `{line}`"));
            }
        }
    }
    Ok(problems)
}

/// The shortest solution line that counts as showing it: shorter ones
/// (`Ok(())`, `}`) say nothing of the solution.
const MIN_SOLUTION_LINE: usize = 20;

/// The text of a rendered page's code listings (`<pre>` blocks), where
/// included code is; inline code in prose names things, it shows no
/// solution.
fn code_listings(html: &str) -> String {
    let pre = Regex::new(r"(?s)<pre[^>]*>(.*?)</pre>").unwrap();
    pre.captures_iter(html).map(|c| page_text(&c[1])).collect::<Vec<_>>().join("\n")
}

/// A rendered page's text: tags dropped, HTML's entities decoded.
fn page_text(html: &str) -> String {
    let tags = Regex::new(r"<[^>]*>").unwrap();
    tags.replace_all(html, "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// Where the diagrams' sources are: `book/diagrams/NAME.txt`, one drawing
/// shared by both editions.
pub(crate) const DIAGRAMS: &str = "book/diagrams";

/// A page's diagram directive: `{{#diagram NAME CAPTION}}`, alone on a line
/// outside code blocks. The staged book draws `book/diagrams/NAME.txt` there
/// as an inline `<svg>` in a `<figure id="diagram-NAME">`, with CAPTION (in
/// the page's language) as its `<figcaption>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// The page's line it is on, from 1.
    pub(crate) line: usize,
    /// The diagram's name: lower case letters, digits and `-`.
    pub(crate) name: String,
    /// The figure's caption.
    pub(crate) caption: String,
}

/// The diagram directives of a page's text, in order, or why a line that
/// starts like one is not one (with its line number).
pub(crate) fn diagram_directives(text: &str) -> (Vec<Directive>, Vec<String>) {
    let directive = Regex::new(r"^\{\{#diagram\s+([a-z0-9][a-z0-9-]*)\s+([^{}]*\S)\s*\}\}$").unwrap();
    let (mut found, mut problems) = (Vec::new(), Vec::new());
    let mut in_fence = false;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with("{{#diagram") {
            match directive.captures(line) {
                Some(c) => found.push(Directive { line: number + 1, name: c[1].to_string(), caption: c[2].to_string() }),
                None => problems.push(format!(
                    "{}: `{line}` is not a diagram directive: write `{{{{#diagram NAME CAPTION}}}}`, NAME in lower case \
                     letters, digits and `-`, and a caption",
                    number + 1
                )),
            }
        }
    }
    (found, problems)
}

/// Every diagram a page draws, checked: its source exists and renders.
/// Problems name the page (`name`), the line and the diagram's file.
fn diagram_problems(project: &Project, name: &str, text: &str) -> Vec<String> {
    let (found, bad) = diagram_directives(text);
    let mut problems: Vec<String> = bad.into_iter().map(|p| format!("{name}:{p}")).collect();
    for d in found {
        let file = format!("{DIAGRAMS}/{}.txt", d.name);
        match std::fs::read_to_string(project.root.join(&file)) {
            Err(_) => problems.push(format!("{name}:{}: draws the diagram `{}`, but {file} does not exist", d.line, d.name)),
            Ok(source) => {
                if let Err(e) = render_diagram(&source, &d.caption) {
                    problems.push(format!("{name}:{}: the diagram {file} does not render: {e}", d.line));
                }
            }
        }
    }
    problems
}

/// `text` with every diagram directive replaced by its figure.
fn draw_diagrams(project: &Project, name: &str, text: &str) -> Result<String> {
    let (found, bad) = diagram_directives(text);
    if let Some(problem) = bad.first() {
        return Err(anyhow!("{name}:{problem}"));
    }
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let code = Regex::new("`([^`]+)`").unwrap();
    for d in found {
        let file = format!("{DIAGRAMS}/{}.txt", d.name);
        let source = std::fs::read_to_string(project.root.join(&file))
            .map_err(|e| anyhow!("{name}:{}: draws the diagram `{}`, but {file} cannot be read: {e}", d.line, d.name))?;
        let svg = render_diagram(&source, &d.caption.replace('`', ""))
            .map_err(|e| anyhow!("{name}:{}: the diagram {file} does not render: {e}", d.line))?;
        // A caption's `code` is shown as code, as in the page's prose.
        let caption = code.replace_all(&xml_escape(&d.caption), "<code>$1</code>").to_string();
        // An HTML block ends at a blank line, and the SVG has none.
        lines[d.line - 1] = format!(
            "\n<figure class=\"wb-diagram\" id=\"diagram-{}\">\n{svg}\n<figcaption style=\"text-align:center;font-style:italic\">{caption}</figcaption>\n</figure>\n",
            d.name
        );
    }
    Ok(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway project with one chapter and one page.
    fn project(page: &str) -> (tempfile::TempDir, Project) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("book/src")).unwrap();
        std::fs::create_dir_all(root.join("chapters/01-x")).unwrap();
        std::fs::write(root.join("chapters/01-x/checks.toml"), "").unwrap();
        std::fs::write(root.join("chapters/01-x/x.rs"), "// ANCHOR: a\nfn a() {}\n// ANCHOR_END: a\n").unwrap();
        std::fs::write(root.join("book/src/x.md"), page).unwrap();
        (tmp, Project { cache: root.join("cache"), root })
    }

    #[test]
    fn a_rendered_solution_or_marker_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("ch/01-x")).unwrap();
        std::fs::create_dir_all(root.join("html")).unwrap();
        std::fs::write(root.join("ch/01-x/Kbuild"), "obj-m := x.o\n").unwrap();
        std::fs::write(root.join("ch/01-x/checks.toml"), "title = \"x\"\nmodules = [\"x\"]\n[[step]]\nname = \"s\"\nrun = \"true\"\n")
            .unwrap();
        std::fs::write(
            root.join("ch/01-x/x.rs"),
            "fn a() {\n    // EXERCISE: greet\n    // HINT: pr_info!\n    pr_info!(\"Hello, kernel <{n}>\");\n    // END EXERCISE\n}\n",
        )
        .unwrap();
        let chapters = vec![Chapter::load(&root.join("ch/01-x")).unwrap()];
        let page =
            |body: &str| std::fs::write(root.join("html/01-x.html"), format!("<html><pre><code>{body}</code></pre></html>")).unwrap();
        page("fn a() {\n    <span>// TODO: greet</span>\n}");
        assert_eq!(shown_solutions(&root.join("html"), &chapters).unwrap(), Vec::<String>::new());
        page("    <span class=\"hljs-macro\">pr_info!</span>(&quot;Hello, kernel &lt;{n}&gt;&quot;);");
        let shown = shown_solutions(&root.join("html"), &chapters).unwrap();
        assert_eq!(shown, ["01-x.html: shows the solution of the exercise at 01-x/x.rs:2: `pr_info!(\"Hello, kernel <{n}>\");`"]);
        page("// END EXERCISE");
        assert!(shown_solutions(&root.join("html"), &chapters).unwrap()[0].contains("shows the marker `// END EXERCISE`"));
    }

    #[test]
    fn the_chinese_edition_must_follow_the_english_one() {
        let page = "# Hello\n```rust\n{{#include ../../chapters/01-x/x.rs:a}}\n```\n";
        let (_tmp, p) = project(page);
        let zh = p.root.join(ZH_SRC);
        std::fs::create_dir_all(&zh).unwrap();
        let translated = |body: &str| format!("{}\n# 你好\n```rust\n{body}\n```\n", translation_marker("x.md", page));
        std::fs::write(zh.join("x.md"), translated("{{#include ../../../chapters/01-x/x.rs:a}}")).unwrap();
        assert_eq!(edition_problems(&p).unwrap(), Vec::<String>::new());
        // Other code shown.
        std::fs::write(zh.join("x.md"), translated("{{#include ../../../chapters/01-x/x.rs:b}}")).unwrap();
        assert!(edition_problems(&p).unwrap()[0].contains("includes other code"), "{:?}", edition_problems(&p));
        // The English page changed since.
        std::fs::write(zh.join("x.md"), translated("{{#include ../../../chapters/01-x/x.rs:a}}")).unwrap();
        std::fs::write(p.root.join("book/src/x.md"), format!("{page}More.\n")).unwrap();
        assert!(edition_problems(&p).unwrap()[0].contains("translated from an older book/src/x.md"), "{:?}", edition_problems(&p));
        // A page with no translation, one translating nothing.
        std::fs::write(p.root.join("book/src/y.md"), "# Y\n").unwrap();
        std::fs::write(zh.join("z.md"), "# Z\n").unwrap();
        let all = edition_problems(&p).unwrap().join("\n");
        assert!(all.contains("zh-CN/src/y.md is missing") && all.contains("zh-CN/src/z.md translates no page"), "{all}");
    }

    #[test]
    fn glossary_links_name_entries_and_chapters_have_one() {
        let glossary = "# Glossary\n\n## softirq, hardirq (atomic context)\n\n```\n## not a heading\n```\n";
        let (_tmp, p) = project("```rust\n{{#include ../../chapters/01-x/x.rs:a}}\n```\n[x](x.md)\n");
        let src = p.root.join("book/src");
        std::fs::write(src.join("glossary.md"), glossary).unwrap();
        std::fs::write(src.join("01-x.md"), "A [softirq](glossary.md#softirq-hardirq-atomic-context).\n").unwrap();
        let zh = p.root.join(ZH_SRC);
        std::fs::create_dir_all(&zh).unwrap();
        std::fs::write(zh.join("glossary.md"), "# 术语表\n\n## 软中断（softirq） {#softirq-hardirq-atomic-context}\n").unwrap();
        std::fs::write(zh.join("01-x.md"), "[软中断](glossary.md#softirq-hardirq-atomic-context)\n").unwrap();
        assert_eq!(check(&p).unwrap(), Vec::<String>::new());
        std::fs::write(src.join("01-x.md"), "A softirq, [lockdep](glossary.md#lockdep), [x](glossary.md#not-a-heading).\n").unwrap();
        std::fs::write(zh.join("01-x.md"), "软中断\n").unwrap();
        let problems = check(&p).unwrap().join("\n");
        assert!(problems.contains("book/src/01-x.md: links to glossary.md#lockdep, but"), "{problems}");
        assert!(problems.contains("glossary.md#not-a-heading"), "{problems}");
        assert!(problems.contains("zh-CN/src/01-x.md: links to no glossary entry"), "{problems}");
        assert_eq!(heading_anchors("## `unsafe`, `// SAFETY:`\n### 模块 {#module}\n#x\n"), ["unsafe--safety", "module"]);
    }

    #[test]
    fn heading_ids_match_mdbook() {
        assert_eq!(heading_id("Hello, kernel"), "hello-kernel");
        assert_eq!(heading_id("Talking to user space through /proc"), "talking-to-user-space-through-proc");
    }

    #[test]
    fn diagram_directives_are_parsed_outside_code_blocks() {
        let text = "# T\n\n{{#diagram flow The harness, from edit to verdict}}\n```text\n{{#diagram shown-as-code x}}\n```\n  {{#diagram Bad_Name x}}\n{{#diagram nocaption}}\nsee `{{#diagram a b}}` inline\n";
        let (found, problems) = diagram_directives(text);
        assert_eq!(found, [Directive { line: 3, name: "flow".into(), caption: "The harness, from edit to verdict".into() }]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("7: `{{#diagram Bad_Name x}}` is not a diagram directive"), "{problems:?}");
        assert!(problems[1].starts_with("8: "), "{problems:?}");
    }

    #[test]
    fn a_missing_or_broken_diagram_is_named_with_its_page() {
        let (_tmp, p) = project("# X\n```rust\n{{#include ../../chapters/01-x/x.rs:a}}\n```\n\n{{#diagram flow The `flow`}}\n");
        let problems = check(&p).unwrap().join("\n");
        assert!(problems.contains("book/src/x.md:6: draws the diagram `flow`, but book/diagrams/flow.txt does not exist"), "{problems}");
        std::fs::create_dir_all(p.root.join(DIAGRAMS)).unwrap();
        std::fs::write(p.root.join(DIAGRAMS).join("flow.txt"), "┌──┐\n│\ta │\n└──┘\n").unwrap();
        let problems = check(&p).unwrap().join("\n");
        assert!(
            problems.contains("book/src/x.md:6: the diagram book/diagrams/flow.txt does not render: line 2, column 2: '\\t'"),
            "{problems}"
        );
        std::fs::write(p.root.join(DIAGRAMS).join("flow.txt"), "┌────┐\n│ a  ├──▶ b & <c>\n└────┘\n").unwrap();
        assert_eq!(check(&p).unwrap(), Vec::<String>::new());
        // Staged, the directive becomes a figure holding the SVG.
        let staged = draw_diagrams(&p, "book/src/x.md", &read_to_string(&p.root.join("book/src/x.md")).unwrap()).unwrap();
        assert!(!staged.contains("{{#diagram"), "{staged}");
        let figure = staged.split("\n\n").map(str::trim).find(|block| block.starts_with("<figure")).expect("a figure block");
        assert!(figure.starts_with("<figure class=\"wb-diagram\" id=\"diagram-flow\">\n<svg "), "{figure}");
        assert!(
            figure.contains(">b &amp; &lt;c&gt;</text>") && figure.ends_with(">The <code>flow</code></figcaption>\n</figure>"),
            "{figure}"
        );
        // The browser check looks for the figure on that page.
        assert_eq!(chapter_pages(&p).unwrap(), [("x.html".to_string(), "x diagram-flow".to_string())]);
    }

    #[test]
    fn both_editions_draw_the_same_diagrams() {
        let page = "# Hello\n\n{{#diagram flow The flow}}\n\n{{#diagram path The path}}\n";
        let (_tmp, p) = project(page);
        let zh = p.root.join(ZH_SRC);
        std::fs::create_dir_all(&zh).unwrap();
        let translated = |body: &str| format!("{}\n# 你好\n\n{body}\n", translation_marker("x.md", page));
        std::fs::write(zh.join("x.md"), translated("{{#diagram flow 流程}}\n\n{{#diagram path 路径}}")).unwrap();
        assert_eq!(edition_problems(&p).unwrap(), Vec::<String>::new());
        std::fs::write(zh.join("x.md"), translated("{{#diagram path 路径}}\n\n{{#diagram flow 流程}}")).unwrap();
        assert!(edition_problems(&p).unwrap().join("\n").contains("draws other diagrams than book/src/x.md"), "{:?}", edition_problems(&p));
        std::fs::write(zh.join("x.md"), translated("{{#diagram flow 流程}}")).unwrap();
        assert!(edition_problems(&p).unwrap().join("\n").contains("draws other diagrams"), "{:?}", edition_problems(&p));
    }

    #[test]
    fn sound_book_has_no_problems() {
        let (_tmp, p) = project("```rust\n{{#include ../../chapters/01-x/x.rs:a}}\n```\n[x](x.md)\n");
        assert_eq!(check(&p).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn broken_includes_links_and_missing_pages_are_named() {
        let (_tmp, p) = project("```rust\n{{#include ../../chapters/01-x/x.rs:b}}\n```\n{{#include ../../chapters/01-x/x.rs:a}}\n[y](y.md)\n```\n{{#include ../../chapters/02-y/y.rs}}\n```\n");
        let problems = check(&p).unwrap().join("\n");
        assert!(problems.contains("no `ANCHOR: b`"), "{problems}");
        assert!(problems.contains("outside a ``` code block"), "{problems}");
        assert!(problems.contains("links to y.md"), "{problems}");
        assert!(problems.contains("chapters/02-y/y.rs, which does not exist"), "{problems}");
        let (_tmp, p) = project("no includes at all\n");
        assert!(check(&p).unwrap().join("\n").contains("chapters/01-x has no book page"));
    }
}
