// SPDX-License-Identifier: GPL-2.0

//! The reports of a graded class: `grades.json`, JUnit XML for CI systems,
//! `grades.csv` for a gradebook, `report.html` for the instructor (one
//! static file: no server, no script, nothing fetched), and the summary
//! table printed at the end.

use crate::grading::SubmissionGrade;
use crate::paths::write_atomic;
use crate::Result;
use std::path::Path;

/// Writes `grades.json`, `junit.xml`, `grades.csv` and `report.html` into `out`.
pub(crate) fn write_reports(out: &Path, grades: &[SubmissionGrade]) -> Result<()> {
    std::fs::create_dir_all(out)?;
    write_atomic(&out.join("grades.json"), serde_json::to_string_pretty(&serde_json::json!({ "submissions": grades }))?.as_bytes())?;
    write_atomic(&out.join("junit.xml"), junit(grades).as_bytes())?;
    write_atomic(&out.join("grades.csv"), csv(grades).as_bytes())?;
    write_atomic(&out.join("report.html"), html(grades).as_bytes())
}

/// The chapters graded, in order, from every submission's results.
fn chapter_names(grades: &[SubmissionGrade]) -> Vec<String> {
    let mut names: Vec<String> = grades.iter().flat_map(|g| g.chapters.iter().map(|c| c.chapter.clone())).collect();
    names.sort();
    names.dedup();
    names
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
/// break, and a leading `=`, `+`, `-` or `@` defused, so a spreadsheet never
/// runs a student's name as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `grades.csv`: a header, then one row per student: the student, each
/// chapter's score, the total and the maximum (the column order a
/// gradebook import expects: identifier first, numbers after).
pub(crate) fn csv(grades: &[SubmissionGrade]) -> String {
    let chapters = chapter_names(grades);
    let mut out = String::from("student");
    for chapter in &chapters {
        out.push(',');
        out.push_str(&csv_field(chapter));
    }
    out.push_str(",total,max\r\n");
    for grade in grades {
        out.push_str(&csv_field(&grade.submission));
        for chapter in &chapters {
            let score = grade.chapters.iter().find(|c| &c.chapter == chapter).map_or(0, |c| c.score);
            out.push_str(&format!(",{score}"));
        }
        out.push_str(&format!(",{},{}\r\n", grade.score, grade.max));
    }
    out
}

/// Text for HTML, everything a module may print made harmless.
fn html_escape(text: &str) -> String {
    xml_escape(text).replace('\'', "&#39;")
}

/// `report.html`: the class at a glance. A histogram of scores, each
/// check's pass rate across the class (which exercise the class struggled
/// with), and a row per student linking to their failed checks with the
/// reasons. Plain HTML and CSS bars: it opens from a file, offline.
pub(crate) fn html(grades: &[SubmissionGrade]) -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Grades</title>\n<style>\n\
         body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left}\n\
         .bar{background:#4a7bd0;height:1em;display:inline-block}.fail{color:#b00}.ok{color:#070}\n\
         tr:nth-child(even){background:#f3f3f3}pre{white-space:pre-wrap;margin:0}\n</style></head><body>\n",
    );
    let max = grades.iter().map(|g| g.max).max().unwrap_or(0);
    page.push_str(&format!("<h1>Grades</h1>\n<p id=\"summary\">{} submissions, out of {max} points each.</p>\n", grades.len()));
    // The histogram: ten bins of the score as a share of the maximum.
    let mut bins = [0usize; 10];
    for grade in grades {
        let share = (grade.score * 10).checked_div(grade.max).unwrap_or(0).min(9) as usize;
        bins[share] += 1;
    }
    let tallest = bins.iter().copied().max().unwrap_or(0).max(1);
    page.push_str("<h2>Scores</h2>\n<table id=\"histogram\">\n<tr><th>score</th><th>students</th></tr>\n");
    for (bin, count) in bins.iter().enumerate() {
        let width = count * 30 / tallest;
        page.push_str(&format!(
            "<tr><td>{}–{}%</td><td><span class=\"bar\" style=\"width:{width}em\"></span> {count}</td></tr>\n",
            bin * 10,
            if bin == 9 { 100 } else { bin * 10 + 9 }
        ));
    }
    page.push_str("</table>\n<h2>Checks</h2>\n<table id=\"checks\">\n<tr><th>chapter</th><th>check</th><th>passed by</th></tr>\n");
    let mut checks: Vec<(String, String, usize, usize)> = Vec::new();
    for grade in grades {
        for chapter in &grade.chapters {
            for check in &chapter.checks {
                let passed = usize::from(check.earned == check.points);
                match checks.iter_mut().find(|(c, n, _, _)| *c == chapter.chapter && *n == check.name) {
                    Some(entry) => {
                        entry.2 += passed;
                        entry.3 += 1;
                    }
                    None => checks.push((chapter.chapter.clone(), check.name.clone(), passed, 1)),
                }
            }
        }
    }
    for (chapter, name, passed, total) in &checks {
        let percent = passed * 100 / total.max(&1);
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><span class=\"bar\" style=\"width:{}em\"></span> {percent}% ({passed}/{total})</td></tr>\n",
            html_escape(chapter),
            html_escape(name),
            percent * 20 / 100
        ));
    }
    page.push_str("</table>\n<h2>Students</h2>\n<table id=\"students\">\n<tr><th>student</th><th>score</th><th>failed checks</th></tr>\n");
    for (index, grade) in grades.iter().enumerate() {
        let failed = grade.chapters.iter().flat_map(|c| &c.checks).filter(|c| c.earned < c.points).count();
        let link = if failed == 0 { "none".to_string() } else { format!("<a href=\"#student-{index}\">{failed}</a>") };
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}/{}</td><td>{link}</td></tr>\n",
            html_escape(&grade.submission),
            grade.score,
            grade.max
        ));
    }
    page.push_str("</table>\n");
    for (index, grade) in grades.iter().enumerate() {
        let failures: Vec<String> = grade
            .chapters
            .iter()
            .flat_map(|c| {
                let build = c
                    .build_error
                    .as_ref()
                    .map(|e| format!("<li class=\"fail\">{}: does not compile<pre>{}</pre></li>", html_escape(&c.chapter), html_escape(e)));
                build.into_iter().chain(c.checks.iter().filter(|k| k.earned < k.points).map(|k| {
                    format!(
                        "<li class=\"fail\">{}: {}<pre>{}</pre></li>",
                        html_escape(&c.chapter),
                        html_escape(&k.name),
                        html_escape(k.reason.as_deref().unwrap_or("failed"))
                    )
                }))
            })
            .collect();
        if failures.is_empty() && grade.rejected.is_empty() {
            continue;
        }
        page.push_str(&format!("<h3 id=\"student-{index}\">{}</h3>\n<ul>\n", html_escape(&grade.submission)));
        for refused in &grade.rejected {
            page.push_str(&format!("<li class=\"fail\">refused: {}</li>\n", html_escape(refused)));
        }
        for failure in failures {
            page.push_str(&failure);
            page.push('\n');
        }
        page.push_str("</ul>\n");
    }
    page.push_str("</body></html>\n");
    page
}

/// Text for an XML attribute or element. Characters XML 1.0 forbids (most
/// control characters, which a student's module can print) cannot be
/// escaped at all: they are shown as `\u{..}` instead, so the report stays
/// valid XML whatever a module printed.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a test suite per submission, a test case per check.
pub(crate) fn junit(grades: &[SubmissionGrade]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for grade in grades {
        let tests: usize = grade.chapters.iter().map(|c| c.checks.len()).sum();
        let failures: usize = grade.chapters.iter().flat_map(|c| &c.checks).filter(|c| c.earned < c.points).count();
        xml.push_str(&format!("  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n", xml_escape(&grade.submission)));
        for chapter in &grade.chapters {
            for check in &chapter.checks {
                xml.push_str(&format!(
                    "    <testcase classname=\"{}.{}\" name=\"{}\">",
                    xml_escape(&grade.submission),
                    xml_escape(&chapter.chapter),
                    xml_escape(&check.name)
                ));
                if check.earned < check.points {
                    let reason = check.reason.as_deref().unwrap_or("failed");
                    xml.push_str(&format!("<failure message=\"{}\"/>", xml_escape(reason)));
                }
                xml.push_str("</testcase>\n");
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// The summary table for the terminal.
pub(crate) fn table(grades: &[SubmissionGrade]) -> String {
    let chapters: Vec<String> = grades.first().map(|g| g.chapters.iter().map(|c| c.chapter.clone()).collect()).unwrap_or_default();
    let mut out = format!("{:<24}", "submission");
    for chapter in &chapters {
        out.push_str(&format!(" {chapter:>12}"));
    }
    out.push_str(&format!(" {:>9}  first lost point\n", "total"));
    for grade in grades {
        out.push_str(&format!("{:<24}", grade.submission));
        for chapter in &grade.chapters {
            out.push_str(&format!(" {:>12}", format!("{}/{}", chapter.score, chapter.max)));
        }
        let first = grade
            .chapters
            .iter()
            .find_map(|c| {
                c.checks
                    .iter()
                    .find(|k| k.earned < k.points)
                    .map(|k| format!("{} `{}`: {}", c.chapter, k.name, k.reason.as_deref().unwrap_or("")))
            })
            .or_else(|| grade.rejected.first().cloned())
            .unwrap_or_default();
        let first: String = first.lines().next().unwrap_or("").chars().take(110).collect();
        out.push_str(&format!(" {:>9}  {first}\n", format!("{}/{}", grade.score, grade.max)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grading::{ChapterGrade, CheckGrade};

    #[test]
    fn csv_and_html_reports() {
        let grade = |name: &str, score, reason: Option<&str>| SubmissionGrade {
            submission: name.into(),
            score,
            max: 2,
            rejected: vec![],
            ignored: vec![],
            chapters: vec![ChapterGrade {
                chapter: "01-hello".into(),
                score,
                max: 2,
                build_error: None,
                checks: vec![
                    CheckGrade { name: "load".into(), points: 1, earned: 1, reason: None },
                    CheckGrade { name: "unload".into(), points: 1, earned: score - 1, reason: reason.map(String::from) },
                ],
            }],
            sandbox: String::new(),
        };
        let class = [grade("ann", 2, None), grade("=cmd(),\"x\"", 1, Some("no <b>Goodbye</b>"))];
        let csv = csv(&class);
        assert_eq!(csv, "student,01-hello,total,max\r\nann,2,2,2\r\n\"'=cmd(),\"\"x\"\"\",1,1,2\r\n");
        let html = html(&class);
        assert!(html.contains("<td>unload</td><td><span class=\"bar\" style=\"width:10em\"></span> 50% (1/2)</td>"), "{html}");
        assert!(html.contains("<a href=\"#student-1\">1</a>") && html.contains("<h3 id=\"student-1\">"), "{html}");
        assert!(html.contains("no &lt;b&gt;Goodbye&lt;/b&gt;") && !html.contains("<b>Goodbye"), "{html}");
        assert!(html.contains("50–59%</td><td><span class=\"bar\" style=\"width:30em\"></span> 1</td>"), "{html}");
    }

    #[test]
    fn junit_escapes_and_counts() {
        let grade = SubmissionGrade {
            submission: "a&b".into(),
            score: 1,
            max: 2,
            rejected: vec![],
            ignored: vec![],
            chapters: vec![ChapterGrade {
                chapter: "01-hello".into(),
                score: 1,
                max: 2,
                build_error: None,
                checks: vec![
                    CheckGrade { name: "load".into(), points: 1, earned: 1, reason: None },
                    CheckGrade { name: "unload".into(), points: 1, earned: 0, reason: Some("no `<Goodbye>`".into()) },
                ],
            }],
            sandbox: String::new(),
        };
        let xml = junit(&[grade]);
        assert!(xml.contains("name=\"a&amp;b\" tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<failure message=\"no `&lt;Goodbye&gt;`\"/>"), "{xml}");
        assert_eq!(xml_escape("a\u{1b}[31mb\u{1}\tc"), "a\\u{1b}[31mb\\u{1}\tc");
    }
}
