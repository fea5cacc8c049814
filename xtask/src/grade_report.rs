// SPDX-License-Identifier: GPL-2.0

//! The reports of a graded class: `grades.json`, JUnit XML for CI systems,
//! and the summary table printed at the end.

use crate::grading::SubmissionGrade;
use crate::paths::write_atomic;
use crate::Result;
use std::path::Path;

/// Writes `grades.json` and `junit.xml` into `out`.
pub(crate) fn write_reports(out: &Path, grades: &[SubmissionGrade]) -> Result<()> {
    std::fs::create_dir_all(out)?;
    write_atomic(&out.join("grades.json"), serde_json::to_string_pretty(&serde_json::json!({ "submissions": grades }))?.as_bytes())?;
    write_atomic(&out.join("junit.xml"), junit(grades).as_bytes())
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
        };
        let xml = junit(&[grade]);
        assert!(xml.contains("name=\"a&amp;b\" tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("<failure message=\"no `&lt;Goodbye&gt;`\"/>"), "{xml}");
        assert_eq!(xml_escape("a\u{1b}[31mb\u{1}\tc"), "a\\u{1b}[31mb\\u{1}\tc");
    }
}
