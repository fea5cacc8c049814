// SPDX-License-Identifier: GPL-2.0

//! The book in a real browser: a static server on the loopback address
//! serves the built book, headless Chromium (Debian's, never a downloaded
//! one) loads each chapter page and each page with a diagram, and the page
//! as the browser built it (after its scripts ran) must show the chapter's
//! heading, highlighted code blocks, the sidebar's table of contents, the
//! search box and each of its diagrams as an `<svg>` in its figure. A
//! screenshot of each page is kept under `target/book-screenshots/`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::json;
use xshell::Shell;

use crate::cdp::Chromium;

use crate::toolchain::{self, Install};
use crate::Result;

/// A file server on 127.0.0.1 for one directory, stopped when dropped.
pub(crate) struct StaticServer {
    /// The port it listens on.
    pub(crate) port: u16,
    stop: Arc<AtomicBool>,
}

impl StaticServer {
    /// Serves `root` on an ephemeral loopback port.
    pub(crate) fn start(root: &Path) -> Result<StaticServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (root, flag) = (root.to_path_buf(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let root = root.clone();
                        std::thread::spawn(move || serve_one(&root, stream));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Ok(StaticServer { port, stop })
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_one(root: &Path, mut stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // The headers are read too: closing a socket with unread data resets
    // the connection, and Chromium may then wait and ask again.
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 0) && header.trim_end() != "" {
        header.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").split(['?', '#']).next().unwrap_or("/");
    let response = match resolve(root, path).and_then(|file| std::fs::read(&file).ok().map(|data| (file, data))) {
        Some((file, data)) => {
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content_type(&file),
                data.len()
            )
            .into_bytes();
            head.extend_from_slice(&data);
            head
        }
        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = stream.write_all(&response);
}

/// The file a URL path names under `root`; never outside it.
pub(crate) fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut file = root.to_path_buf();
    for part in url_path.split('/').filter(|p| !p.is_empty()) {
        if part == ".." || part.contains('\\') {
            return None;
        }
        file.push(part);
    }
    if file.is_dir() {
        file.push("index.html");
    }
    file.is_file().then_some(file)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "application/javascript",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// What the browser must find on a chapter page once its scripts ran.
/// `expected` is the id of its first heading, then the id of each diagram's
/// figure (see [`crate::book::chapter_pages`]): each figure must hold an
/// `<svg>` and its caption.
pub(crate) fn page_problems(dom: &str, expected: &str) -> Vec<String> {
    let mut expected = expected.split_whitespace();
    let heading_id = expected.next().unwrap_or_default();
    let mut problems = Vec::new();
    if !dom.contains(&format!("<h1 id=\"{heading_id}\"")) {
        problems.push(format!("no chapter heading (h1 #{heading_id})"));
    }
    if !dom.contains("hljs") || !dom.contains("<code class=\"language-") {
        problems.push("no highlighted code block (highlight.js did not run on a code block)".into());
    }
    if !dom.contains("id=\"mdbook-sidebar\"") || !dom.contains("class=\"chapter\"") {
        problems.push("no sidebar with the table of contents".into());
    }
    if !dom.contains("id=\"mdbook-searchbar\"") {
        problems.push("no search box".into());
    }
    if !dom.contains("id=\"workbook-language\"") {
        problems.push("no language switch (book/language.js did not run)".into());
    }
    for figure in expected {
        let start = format!("<figure class=\"wb-diagram\" id=\"{figure}\">");
        let Some(at) = dom.find(&start) else {
            problems.push(format!("no diagram figure #{figure}"));
            continue;
        };
        let inside = &dom[at..at + dom[at..].find("</figure>").unwrap_or(dom.len() - at)];
        if !inside.contains("<svg") || !inside.contains("</svg>") || !inside.contains("<figcaption") {
            problems.push(format!("the diagram figure #{figure} shows no <svg> with a caption"));
        }
    }
    problems
}

/// What the browser must find in the grading report once it rendered.
pub(crate) fn report_problems(dom: &str, _: &str) -> Vec<String> {
    ["histogram", "checks", "students"]
        .iter()
        .filter(|id| !dom.contains(&format!("<table id=\"{id}\"")))
        .map(|id| format!("no {id} table"))
        .chain((!dom.contains("class=\"bar\"")).then(|| "no bars".to_string()))
        .collect()
}

/// Checks every chapter page of the book built in `book_dir`. `Ok(None)`
/// when Chromium cannot be had here (the reason is printed).
pub(crate) fn check(book_dir: &Path, pages: &[(String, String)], screenshots: &Path, install: Install) -> Result<Option<Vec<String>>> {
    render(book_dir, pages, screenshots, install, page_problems)
}

/// Opens each of `pages` (a path under `dir` and what `judge` expects of
/// it) in headless Chromium, judges its DOM and takes a screenshot.
pub(crate) fn render(
    dir: &Path,
    pages: &[(String, String)],
    screenshots: &Path,
    install: Install,
    judge: fn(&str, &str) -> Vec<String>,
) -> Result<Option<Vec<String>>> {
    let sh = Shell::new()?;
    if let Err(e) = toolchain::ensure_debian_packages(&sh, &["chromium", "fonts-wqy-microhei"], install) {
        println!("  skip  the browser check: Chromium cannot be installed here: {e:#}");
        return Ok(None);
    }
    let Some(chromium) = toolchain::find_in_path("chromium") else {
        println!("  skip  the browser check: no `chromium` in PATH");
        return Ok(None);
    };
    std::fs::create_dir_all(screenshots)?;
    let server = StaticServer::start(dir)?;
    // Removed when dropped, however this function returns.
    let profile = tempfile::Builder::new().prefix("workbook-chromium-").tempdir()?;
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|f| f.to_string())
    .chain([format!("--user-data-dir={}", profile.path().display())])
    .collect::<Vec<_>>();
    // One browser and one tab for every page: a launch per page cost about
    // a second of a core each, mostly Chromium starting.
    let mut browser = Chromium::launch(&chromium, &flags)?;
    let within = |seconds| Instant::now() + Duration::from_secs(seconds);
    let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" }), within(30))?;
    let attached = browser.call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }), within(10))?;
    let tab = attached["sessionId"].as_str().ok_or_else(|| anyhow!("Chromium attached to its tab without a session"))?.to_string();
    let session = Some(tab.as_str());
    browser.call(session, "Page.enable", json!({}), within(10))?;
    let viewport = json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false });
    browser.call(session, "Emulation.setDeviceMetricsOverride", viewport, within(10))?;
    let mut rendered = Vec::new();
    for (page, expected) in pages {
        let url = format!("http://127.0.0.1:{}/{page}", server.port);
        let shot = screenshots.join(page.replace(".html", ".png"));
        if let Some(dir) = shot.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // An old screenshot must not pass for this run's.
        let _ = std::fs::remove_file(&shot);
        browser.forget_events();
        let navigated = browser.call(session, "Page.navigate", json!({ "url": url }), within(30))?;
        if let Some(error) = navigated["errorText"].as_str().filter(|e| !e.is_empty()) {
            rendered.push((page, shot, vec![format!("the page did not load: {error}")]));
            continue;
        }
        browser.event(&tab, "Page.loadEventFired", within(30))?;
        // The page's scripts (highlighting, the language switch) may finish
        // after the load event: its DOM is judged until it passes, for 3 s.
        let judged_by = within(3);
        let found = loop {
            let dom = browser.call(
                session,
                "Runtime.evaluate",
                json!({ "expression": "document.documentElement.outerHTML", "returnByValue": true }),
                within(10),
            )?;
            let found = judge(dom["result"]["value"].as_str().unwrap_or_default(), expected);
            if found.is_empty() || Instant::now() >= judged_by {
                break found;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let png = browser.call(session, "Page.captureScreenshot", json!({ "format": "png" }), within(30))?;
        let png = BASE64.decode(png["data"].as_str().unwrap_or_default()).context("Chromium's screenshot is not base64")?;
        std::fs::write(&shot, png)?;
        rendered.push((page, shot, found));
    }
    drop(browser);
    let mut problems = Vec::new();
    for (page, shot, found) in rendered {
        if found.is_empty() {
            println!("  ok    {page} renders as it should ({})", shot.display());
        } else {
            println!("  FAIL  {page}: {}", found.join("; "));
            problems.extend(found.into_iter().map(|p| format!("{page}: {p}")));
        }
    }
    Ok(Some(problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        std::fs::write(root.join("css/a.css"), "c").unwrap();
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, "/css/a.css"), Some(root.join("css/a.css")));
        assert_eq!(resolve(&root, "/../etc/passwd"), None);
        assert_eq!(resolve(&root, "/missing.html"), None);
    }

    #[test]
    fn page_checks_name_what_is_missing() {
        let good = r#"<nav id="mdbook-sidebar"><li class="chapter"></li></nav><input id="mdbook-searchbar"><a id="workbook-language"></a><h1 id="hello-kernel">H</h1><code class="language-rust hljs">"#;
        assert!(page_problems(good, "hello-kernel").is_empty());
        let bare = r#"<h1 id="hello-kernel">H</h1><code class="language-rust">"#;
        let problems = page_problems(bare, "hello-kernel").join("; ");
        assert!(
            problems.contains("highlighted")
                && problems.contains("sidebar")
                && problems.contains("search")
                && problems.contains("language"),
            "{problems}"
        );
        // Diagrams: each named figure must hold an SVG.
        let figure = |id: &str, body: &str| format!(r#"<figure class="wb-diagram" id="{id}">{body}<figcaption>c</figcaption></figure>"#);
        let drawn = format!("{good}{}", figure("diagram-flow", "<svg><path d=\"M0 0L1 1\"/></svg>"));
        assert!(page_problems(&drawn, "hello-kernel diagram-flow").is_empty(), "{:?}", page_problems(&drawn, "hello-kernel diagram-flow"));
        let problems = page_problems(&format!("{good}{}", figure("diagram-flow", "")), "hello-kernel diagram-flow diagram-path").join("; ");
        assert!(problems.contains("#diagram-flow shows no <svg>") && problems.contains("no diagram figure #diagram-path"), "{problems}");
    }
}
