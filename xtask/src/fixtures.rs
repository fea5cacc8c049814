// SPDX-License-Identifier: GPL-2.0

//! Grading fixtures: a class of made-up students, each the reference
//! solution of a chapter changed in one telling way (a missing line, a
//! panic, a hang, tampered checks, escaping paths, a host file read at
//! compile time...), with the exact score grading must give. They are
//! declared in `tests/grading/fixtures.toml` and written out as folders and
//! `.tar.gz` archives, so the fixtures never hold a copy of a chapter's code.
//!
//! (Longer than most files here: every end-to-end proof of grading lives
//! here because they share the fixture class: the class itself, Gradescope,
//! the CI workflow, the container and grading integrity.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use serde::Deserialize;

use crate::chapter::Chapter;
use crate::grade_report;
use crate::grading::{self, GradeOptions, SubmissionGrade};
use crate::guest::Accel;
use crate::paths::read_to_string;
use crate::progress::format_duration;
use crate::setup::Environment;
use crate::toolchain::Install;
use crate::Result;
use anyhow::{anyhow, Context};

/// The fixtures file, relative to the repository.
pub(crate) const FIXTURES_FILE: &str = "tests/grading/fixtures.toml";
/// The hidden checks graded with the fixtures, relative to the repository.
pub(crate) const HIDDEN_DIR: &str = "tests/grading/hidden";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixturesFile {
    submission: Vec<Fixture>,
}

/// One made-up student.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fixture {
    /// The student's name.
    pub(crate) name: String,
    /// Why the fixture exists, for the report.
    pub(crate) about: String,
    /// The chapter whose solution it starts from.
    pub(crate) chapter: String,
    /// The exact score grading must give.
    pub(crate) score: Expected,
    /// Packed as `NAME.tar.gz` instead of a folder.
    #[serde(default)]
    pub(crate) archive: bool,
    /// A folder the files sit in inside the submission (`NAME/01-hello/...`).
    #[serde(default)]
    pub(crate) top: Option<String>,
    /// Solution files left out.
    #[serde(default)]
    pub(crate) omit: Vec<String>,
    /// Edits of the solution files.
    #[serde(default)]
    pub(crate) change: Vec<Change>,
    /// Extra files, by path in the submission (archives may use `..`).
    #[serde(default)]
    pub(crate) add: Vec<Added>,
    /// Symbolic links, by path in the submission.
    #[serde(default)]
    pub(crate) link: Vec<Link>,
    /// Texts the reasons for refused files must contain.
    #[serde(default)]
    pub(crate) rejected: Vec<String>,
    /// Text a lost point's reason or the build error must contain.
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// A fixture's expected score: a number of points, or `"full"`, every
/// point of its chapter (for fixtures whose chapter's checks may grow).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Expected {
    /// Exactly this many points.
    Points(u32),
    /// `"full"`.
    Word(String),
}

impl Expected {
    /// The points, when a number was given.
    pub(crate) fn points(&self) -> Option<u32> {
        match self {
            Expected::Points(points) => Some(*points),
            Expected::Word(_) => None,
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Points(points) => write!(f, "{points}"),
            Expected::Word(word) => write!(f, "{word}"),
        }
    }
}

/// A find-and-replace in one solution file (`find` occurs exactly once).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Change {
    /// The file, in the chapter.
    pub(crate) file: String,
    /// Text that occurs once.
    pub(crate) find: String,
    /// Its replacement.
    pub(crate) replace: String,
}

/// An extra file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Added {
    /// Its path in the submission.
    pub(crate) path: String,
    /// Its contents (`\u0000` makes a binary file).
    pub(crate) text: String,
}

/// A symbolic link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Link {
    /// Its path in the submission.
    pub(crate) path: String,
    /// Where it points.
    pub(crate) target: String,
}

/// The fixtures declared in `path`.
pub(crate) fn load(path: &Path) -> Result<Vec<Fixture>> {
    let file: FixturesFile = toml::from_str(&read_to_string(path)?).with_context(|| format!("{}", path.display()))?;
    Ok(file.submission)
}

/// The files of a fixture: (path in the submission, contents or link target, is a link).
fn entries(fixture: &Fixture, chapters: &[Chapter]) -> Result<Vec<(String, Vec<u8>, bool)>> {
    let chapter = chapters
        .iter()
        .find(|c| c.name == fixture.chapter)
        .ok_or_else(|| anyhow!("fixture `{}`: no chapter `{}` is graded", fixture.name, fixture.chapter))?;
    let sources = crate::submission::wanted_sources(std::slice::from_ref(chapter))?.remove(&chapter.name).unwrap_or_default();
    let prefix = fixture.top.as_ref().map(|t| format!("{t}/")).unwrap_or_default();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for name in sources.iter().filter(|n| !fixture.omit.contains(n)) {
        files.insert(name.clone(), read_to_string(&chapter.dir.join(name))?);
    }
    for change in &fixture.change {
        let text = files
            .get_mut(&change.file)
            .ok_or_else(|| anyhow!("fixture `{}`: changes {}, which it does not have", fixture.name, change.file))?;
        if text.matches(&change.find).count() != 1 {
            return Err(anyhow!("fixture `{}`: its `find` text must occur exactly once in {}", fixture.name, change.file));
        }
        *text = text.replacen(&change.find, &change.replace, 1);
    }
    let mut out: Vec<(String, Vec<u8>, bool)> =
        files.into_iter().map(|(name, text)| (format!("{prefix}{}/{name}", chapter.name), text.into_bytes(), false)).collect();
    out.extend(fixture.add.iter().map(|a| (a.path.clone(), a.text.clone().into_bytes(), false)));
    out.extend(fixture.link.iter().map(|l| (l.path.clone(), l.target.clone().into_bytes(), true)));
    Ok(out)
}

/// Writes every fixture into `dir` (emptied first).
pub(crate) fn materialize(fixtures: &[Fixture], chapters: &[Chapter], dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    for fixture in fixtures {
        let entries = entries(fixture, chapters)?;
        if fixture.archive {
            write_archive(&dir.join(format!("{}.tar.gz", fixture.name)), &entries)?;
            continue;
        }
        let root = dir.join(&fixture.name);
        for (path, data, is_link) in entries {
            if path.split('/').any(|p| p == "..") {
                return Err(anyhow!("fixture `{}`: `..` paths only in archives", fixture.name));
            }
            let target = root.join(&path);
            std::fs::create_dir_all(target.parent().expect("a file in a folder"))?;
            if is_link {
                std::os::unix::fs::symlink(String::from_utf8_lossy(&data).as_ref(), &target)?;
            } else {
                std::fs::write(&target, data)?;
            }
        }
    }
    Ok(())
}

/// A `.tar.gz` written header by header, so it can hold what a hostile
/// archive holds (`..` in names, links) and `tar` would refuse to make.
fn write_archive(path: &Path, entries: &[(String, Vec<u8>, bool)]) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    for (name, data, is_link) in entries {
        let mut header = tar::Header::new_gnu();
        let raw = &mut header.as_gnu_mut().expect("a GNU header").name;
        if name.len() >= raw.len() {
            return Err(anyhow!("archive entry name too long: {name}"));
        }
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        if *is_link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_link_name(String::from_utf8_lossy(data).as_ref())?;
            header.set_size(0);
            header.set_cksum();
            builder.append(&header, std::io::empty())?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data.as_slice())?;
        }
    }
    builder.into_inner()?.finish()?;
    Ok(())
}

/// Whether `grade` is what `fixture` must get; on no, why.
pub(crate) fn grade_as_expected(fixture: &Fixture, grade: &SubmissionGrade) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    let expected = match &fixture.score {
        Expected::Points(points) => *points,
        Expected::Word(word) if word == "full" => grade.chapters.iter().find(|c| c.chapter == fixture.chapter).map_or(0, |c| c.max),
        Expected::Word(word) => return Err(format!("fixture `{}`: score is a number or \"full\", not `{word}`", fixture.name)),
    };
    if grade.score != expected {
        problems.push(format!("scored {}/{}, expected {expected}", grade.score, grade.max));
    }
    for text in &fixture.rejected {
        if !grade.rejected.iter().any(|r| r.contains(text.as_str())) {
            problems.push(format!("no refused file says `{text}` (refused: {:?})", grade.rejected));
        }
    }
    if let Some(text) = &fixture.reason {
        let reasons: Vec<&str> = grade
            .chapters
            .iter()
            .flat_map(|c| c.checks.iter().filter_map(|k| k.reason.as_deref()).chain(c.build_error.as_deref()))
            .collect();
        if !reasons.iter().any(|r| r.contains(text.as_str())) {
            problems.push(format!("no reason says `{text}`; the reasons: {reasons:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Grades the fixture class with two guests at a time and the hidden checks,
/// printing a line per student; then grades it again, which must resume
/// (nothing regraded) with the same results. Returns (name, passed) pairs.
pub(crate) fn check_class(env: &Environment, accel: Accel, install: Install) -> Result<Vec<(String, bool)>> {
    let root = &env.project.root;
    let fixtures = load(&root.join(FIXTURES_FILE))?;
    let chapter_names: BTreeSet<&str> = fixtures.iter().map(|f| f.chapter.as_str()).collect();
    let chapters = chapter_names.iter().map(|n| Chapter::find(&env.project, n)).collect::<Result<Vec<_>>>()?;
    let work = env.project.cache_dir("grading-fixtures")?;
    let submissions = work.join("submissions");
    materialize(&fixtures, &chapters, &submissions)?;
    let out = work.join("grades");
    let _ = std::fs::remove_dir_all(&out);
    let options = GradeOptions {
        submissions,
        chapters,
        out: out.clone(),
        jobs: grading::bounded_jobs(2),
        shard: None,
        accel,
        hidden: Some(root.join(HIDDEN_DIR)),
        isolation: crate::module_build::Isolation::Sandboxed,
    };
    let started = Instant::now();
    let grades = grading::grade(env, &options)?;
    let took = started.elapsed();
    let mut results = Vec::new();
    for fixture in &fixtures {
        let name = format!("grading: `{}` ({})", fixture.name, fixture.about);
        let verdict = match grades.iter().find(|g| g.submission == fixture.name) {
            Some(grade) => grade_as_expected(fixture, grade),
            None => Err("was not graded".to_string()),
        };
        match &verdict {
            Ok(()) => println!("  ok    {name}: {}", fixture.score),
            Err(why) => println!("  FAIL  {name}: {why}"),
        }
        results.push((name, verdict.is_ok()));
    }
    println!(
        "  ({} submissions graded in {}, {:.1} per minute)",
        grades.len(),
        format_duration(took),
        grades.len() as f64 * 60.0 / took.as_secs_f64()
    );
    let again = grading::grade(env, &options)?;
    let resumed = again == grades;
    println!("  {}  grading again resumes: nothing regraded, the same results", if resumed { "ok  " } else { "FAIL" });
    results.push(("grading: an interrupted run resumes".to_string(), resumed));
    grade_report::write_reports(&out, &grades)?;
    let junit = read_to_string(&out.join("junit.xml"))?;
    let csv = read_to_string(&out.join("grades.csv"))?;
    let rows = csv.lines().count() == grades.len() + 1 && csv.starts_with("student,");
    println!("  {}  grades.csv: a header and a row per student", if rows { "ok  " } else { "FAIL" });
    results.push(("grading: CSV for a gradebook".to_string(), rows));
    let screenshots = env.project.root.join("target/grading-report");
    if let Some(problems) =
        crate::browser::render(&out, &[("report.html".to_string(), String::new())], &screenshots, install, crate::browser::report_problems)?
    {
        results.push(("grading: report.html renders in Chromium".to_string(), problems.is_empty()));
    }
    let counted = junit.matches("<testcase ").count() == grades.iter().flat_map(|g| &g.chapters).map(|c| c.checks.len()).sum::<usize>();
    println!("  {}  JUnit report: a test case per check", if counted { "ok  " } else { "FAIL" });
    results.push(("grading: JUnit report".to_string(), counted));
    // XML 1.0 allows no control character but tab, newline and return,
    // escaped or not; a student's module prints what it likes.
    // (The escaped form is looked for once: inside the scan, for each
    // character, it took 24 s of a 75 KB report.)
    let raw = junit.chars().any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'));
    let valid = !raw && !junit.contains("&#x1");
    println!("  {}  JUnit report: valid XML characters whatever the modules printed", if valid { "ok  " } else { "FAIL" });
    results.push(("grading: JUnit report stays valid XML with control characters in a reason".to_string(), valid));
    Ok(results)
}

/// Two sections of one course graded at once on one machine, with the same
/// student names: each must get exactly what it gets alone. A third run into
/// an output directory in use must be refused, naming the run that has it;
/// a run killed with SIGKILL must resume to the exact scores.
/// Gradescope, simulated: the bundle is written and unpacked into a
/// made-up `/autograder` root; its `run_autograder` grades every fixture
/// student that is a folder there (Gradescope hands over files, not our
/// archives), one after the other, as Gradescope would, each alone; each
/// `results.json` must follow Gradescope's schema and give the fixture's
/// exact score.
pub(crate) fn check_gradescope(env: &Environment) -> Result<Vec<(String, bool)>> {
    let root = &env.project.root;
    let all = load(&root.join(FIXTURES_FILE))?;
    let names: BTreeSet<&str> = all.iter().map(|f| f.chapter.as_str()).collect();
    let chapters = names.iter().map(|n| Chapter::find(&env.project, n)).collect::<Result<Vec<_>>>()?;
    let chapters = &chapters[..];
    let tmp = tempfile::Builder::new().prefix("wb-gradescope-").tempdir()?;
    let zip_path = tmp.path().join("autograder.zip");
    let hidden = root.join("tests/grading/hidden");
    crate::gradescope::bundle(&env.project, chapters, Some(&hidden), crate::gradescope::HiddenVisibility::Hidden, &zip_path)?;
    let autograder = tmp.path().join("autograder");
    let source = autograder.join("source");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path)?)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let Some(path) = entry.enclosed_name() else {
            return Err(anyhow!("the bundle holds a path that leaves it (entry {i})"));
        };
        let dest = source.join(path);
        std::fs::create_dir_all(dest.parent().unwrap_or(&source))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes)?;
        std::fs::write(&dest, bytes)?;
        if let Some(mode) = entry.unix_mode() {
            std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(mode & 0o777))?;
        }
    }
    let mut results = Vec::new();
    let complete =
        ["setup.sh", "run_autograder", "workbook/chapters/01-hello/hello.rs", "workbook/Cargo.toml", "hidden/01-hello/checks.toml"]
            .iter()
            .all(|p| source.join(p).is_file());
    println!("  {}  the bundle holds setup.sh, run_autograder, the workbook and the hidden checks", if complete { "ok  " } else { "FAIL" });
    results.push(("gradescope: the bundle".to_string(), complete));
    let exe = std::env::current_exe()?;
    // Gradescope builds with `--sandbox container`: the engine's container
    // is the isolation, so a build may read that container's own files, and
    // `host-file` (proven against bubblewrap above) does not apply here.
    let fixtures: Vec<&Fixture> = all.iter().filter(|f| !f.archive && f.name != "host-file").collect();
    // Two submissions at a time, as Gradescope runs each in a container of
    // its own: each gets its own root (`submission/`, `results/`) around
    // one shared `source/`.
    let workers = crate::kernel::Flavour::Debug.guests_at_once();
    let verdicts = crate::pool::run(fixtures, workers, |fixture| {
        let name = fixture.name.as_str();
        let root = tmp.path().join(format!("root-{name}"));
        std::fs::create_dir_all(&root)?;
        std::os::unix::fs::symlink(&source, root.join("source"))?;
        let class = tmp.path().join(format!("class-{name}"));
        materialize(std::slice::from_ref(fixture), chapters, &class)?;
        std::fs::rename(class.join(name), root.join("submission"))?;
        let out = std::process::Command::new("bash")
            .arg(source.join("run_autograder"))
            .env("AUTOGRADER_ROOT", &root)
            .env("WORKBOOK_XTASK", &exe)
            .env("WORKBOOK_GRADE_ARGS", format!("--kernel {}", env.kernel.flavour.name()))
            .output()?;
        let verdict = (|| -> std::result::Result<String, String> {
            if !out.status.success() {
                return Err(format!("run_autograder failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
            }
            let text = std::fs::read_to_string(root.join("results/results.json")).map_err(|e| format!("no results.json: {e}"))?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("results.json is not JSON: {e}"))?;
            let problems = crate::gradescope::schema_problems(&value);
            if !problems.is_empty() {
                return Err(format!("results.json breaks the schema: {}", problems.join("; ")));
            }
            let score = value["score"].as_u64().unwrap_or(u64::MAX);
            let tests = value["tests"].as_array().cloned().unwrap_or_default();
            // "full": every point of the fixture's own chapter.
            let full: u64 = tests
                .iter()
                .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with(&format!("{}: ", fixture.chapter))))
                .filter_map(|t| t["max_score"].as_u64())
                .sum();
            let expected = fixture.score.points().map_or(full, u64::from);
            if expected != score {
                return Err(format!("score {score}, expected {expected}"));
            }
            Ok(format!("score {score}, {} tests", tests.len()))
        })();
        // One print per submission, so lines of two workers never interleave.
        match &verdict {
            Ok(what) => println!("  ok    gradescope {name}: schema-valid results.json, {what}"),
            Err(why) => println!("  FAIL  gradescope {name}: {why}"),
        }
        Ok((format!("gradescope: {name}"), verdict.is_ok()))
    })?;
    results.extend(verdicts);
    Ok(results)
}

/// The CI workflow (`.github/workflows/grade.yml`): valid against GitHub's
/// workflow schema (check-jsonschema), and its grading and merging command
/// lines, run here for two shards over four fixture students, give the same
/// scores as one run over the whole class.
pub(crate) fn check_ci_workflow(env: &Environment, install: Install) -> Result<Vec<(String, bool)>> {
    let root = &env.project.root;
    let workflow = root.join(".github/workflows/grade.yml");
    let sh = xshell::Shell::new()?;
    let mut results = Vec::new();
    match crate::toolchain::ensure_python_tool(&sh, &env.project.cache, crate::toolchain::CHECK_JSONSCHEMA, "check-jsonschema", install) {
        Ok(linter) => {
            let out = std::process::Command::new(&linter).args(["--builtin-schema", "vendor.github-workflows"]).arg(&workflow).output()?;
            let valid = out.status.success();
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string() + String::from_utf8_lossy(&out.stderr).trim();
            println!("  {}  {} follows GitHub's workflow schema: {text}", if valid { "ok  " } else { "FAIL" }, workflow.display());
            results.push(("CI workflow: valid".to_string(), valid));
        }
        Err(e) => println!("  skip  the workflow linter cannot be installed here: {e:#}"),
    }
    let text = read_to_string(&workflow)?;
    let line = |prefix: &str| -> Result<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("run: ").filter(|r| r.starts_with(prefix)).map(str::to_string))
            .ok_or_else(|| anyhow!("{}: no `run: {prefix}...` line", workflow.display()))
    };
    let (grade_line, merge_line) = (line("cargo xtask grade ")?, line("cargo xtask grade-merge ")?);
    let exe = std::env::current_exe()?.display().to_string();
    let local = |line: &str, shard: usize| {
        line.replace("cargo xtask", &exe)
            .replace("${{ inputs.chapters }}", "01-hello")
            .replace("${{ matrix.shard }}", &shard.to_string())
            .replace("${{ env.SHARDS }}", "2")
            + &format!(" --kernel {} --no-install --hidden {}", env.kernel.flavour.name(), root.join("tests/grading/hidden").display())
    };
    let tmp = tempfile::Builder::new().prefix("wb-workflow-").tempdir()?;
    let chapter = Chapter::find(&env.project, "01-hello")?;
    let all = load(&root.join(FIXTURES_FILE))?;
    let four: Vec<Fixture> = ["correct", "no-goodbye", "off-by-one", "not-compiling"]
        .iter()
        .filter_map(|n| all.iter().find(|f| f.name == *n).cloned())
        .collect();
    materialize(&four, std::slice::from_ref(&chapter), &tmp.path().join("submissions"))?;
    let run = |command: String| -> Result<bool> {
        let out = std::process::Command::new("bash").arg("-c").arg(&command).current_dir(tmp.path()).output()?;
        if !out.status.success() {
            println!("  FAIL  `{command}`: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(out.status.success())
    };
    // The shards at once, as the workflow's matrix runs them.
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| run(local(&grade_line, 1)));
        let second = run(local(&grade_line, 2));
        (first.join().expect("a shard's thread does not panic"), second)
    });
    let mut ran = first? & second?;
    ran = ran && run(merge_line.replace("cargo xtask", &exe))?;
    let single = local(&grade_line, 1).replace("--shard 1/2", "").replace("--out grades-1", "--out single");
    ran = ran && run(single)?;
    let scores = |dir: &str| -> Result<Vec<(String, u32)>> {
        Ok(grading::load_results(&[tmp.path().join(dir)])?.into_iter().map(|g| (g.submission, g.score)).collect())
    };
    let same = ran && scores("grades")? == scores("single")? && scores("grades")?.len() == four.len();
    let report = tmp.path().join("grades/report.html").is_file() && tmp.path().join("grades/grades.csv").is_file();
    println!(
        "  {}  the workflow's commands, two shards then merged, grade as one run does{}",
        if same && report { "ok  " } else { "FAIL" },
        if ran { format!(": {:?}", scores("grades").unwrap_or_default()) } else { String::new() }
    );
    results.push(("CI workflow: two shards merged = one run".to_string(), same && report));
    Ok(results)
}

/// The grader's container (`Containerfile`): built with buildah when it is
/// installed and the base image is in its local storage (the image holds a
/// kernel build: about 15 minutes), then asked for its help text; skipped,
/// saying why, otherwise. Nothing is pulled from a registry here.
pub(crate) fn check_container(env: &Environment) -> Result<Vec<(String, bool)>> {
    let root = &env.project.root;
    let text = read_to_string(&root.join("Containerfile"))?;
    let Some(base) = text.lines().find_map(|l| l.strip_prefix("FROM ")).map(str::trim) else {
        return Ok(vec![("container: Containerfile has a FROM line".to_string(), false)]);
    };
    let Some(buildah) = crate::toolchain::find_in_path("buildah") else {
        println!("  skip  the grader's container: buildah is not installed (apt install buildah), so Containerfile is not built here");
        return Ok(Vec::new());
    };
    let present = std::process::Command::new(&buildah).args(["images", "--quiet", base]).output()?;
    if !present.status.success() || present.stdout.is_empty() {
        println!("  skip  the grader's container: the base image `{base}` is not in buildah's local storage, and this test pulls nothing");
        return Ok(Vec::new());
    }
    let tag = "workbook-grader-test";
    let built = std::process::Command::new(&buildah)
        .args(["build", "--pull=never", "-t", tag, "-f", "Containerfile", "."])
        .current_dir(root)
        .status()?;
    let help = built.success()
        && std::process::Command::new("podman")
            .args(["run", "--rm", tag, "help"])
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("grade"));
    println!("  {}  the grader's container builds and runs the harness", if help { "ok  " } else { "FAIL" });
    Ok(vec![("container: builds and runs".to_string(), help)])
}

pub(crate) fn check_isolation(env: &Environment, accel: Accel) -> Result<Vec<(String, bool)>> {
    let root = &env.project.root;
    let chapter = Chapter::find(&env.project, "01-hello")?;
    let chapters = std::slice::from_ref(&chapter);
    let all = load(&root.join(FIXTURES_FILE))?;
    let public_points: u32 = chapter.steps.iter().map(|s| s.points).sum();
    let named = |fixture: &str, as_name: &str| -> Result<Fixture> {
        let mut f = all.iter().find(|f| f.name == fixture).cloned().ok_or_else(|| anyhow!("{FIXTURES_FILE} has no `{fixture}`"))?;
        f.name = as_name.to_string();
        // Public checks only: the hidden point is not graded here.
        let points = f.score.points().unwrap_or(public_points);
        f.score = Expected::Points(if fixture == "correct" { public_points } else { points.min(public_points) });
        Ok(f)
    };
    let work = env.project.cache_dir("grading-isolation")?;
    let class1 = [named("correct", "a")?, named("correct", "b")?];
    let class2 = [named("panicking", "a")?, named("correct", "b")?];
    materialize(&class1, chapters, &work.join("class1"))?;
    materialize(&class2, chapters, &work.join("class2"))?;
    for out in ["o1", "o2", "o3"] {
        let _ = std::fs::remove_dir_all(work.join(out));
    }
    // The harness itself; when it was rebuilt while running, the new binary
    // at the same path (Linux names the old one "... (deleted)").
    let exe = std::env::current_exe()?;
    let exe = if exe.exists() { exe } else { std::path::PathBuf::from(exe.to_string_lossy().trim_end_matches(" (deleted)")) };
    let accel_name = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    let grade = |class: &str, out: &str| {
        let mut command = std::process::Command::new(&exe);
        command
            .args(["grade", class, "--chapters", "01-hello", "-j", "1", "--out", out, "--no-install"])
            .args(["--kernel", env.kernel.flavour.name(), "--accel", accel_name])
            .current_dir(&work)
            .env("WORKBOOK_CACHE", &env.project.cache)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command
    };
    let mut results = Vec::new();
    let mut record = |name: &str, verdict: std::result::Result<(), String>| {
        match &verdict {
            Ok(()) => println!("  ok    grading integrity: {name}"),
            Err(why) => println!("  FAIL  grading integrity: {name}: {why}"),
        }
        results.push((format!("grading integrity: {name}"), verdict.is_ok()));
    };
    let started = Instant::now();
    let mut first = grade("class1", "o1").spawn()?;
    let mut second = grade("class2", "o2").spawn()?;
    // The third run starts once the first owns o1.
    let owned = wait_for(|| std::fs::read_to_string(work.join("o1").join(grading::OUT_LOCK_FILE)).is_ok_and(|t| t.starts_with("pid ")));
    let third = grade("class2", "o1").output()?;
    let third_err = String::from_utf8_lossy(&third.stderr).to_string();
    let first_status = first.wait()?;
    let second_status = second.wait()?;
    record(
        "a second run into an --out in use is refused and names the first",
        if owned && third.status.code() == Some(2) && third_err.contains("is being graded by another run (pid ") {
            Ok(())
        } else {
            Err(format!("exit {:?}: {}", third.status.code(), third_err.trim()))
        },
    );
    let scores = |out: &str| -> std::result::Result<Vec<(String, u32)>, String> {
        let grades = grading::load_results(&[work.join(out)]).map_err(|e| format!("{e:#}"))?;
        Ok(grades.into_iter().map(|g| (g.submission, g.score)).collect())
    };
    let expect = |class: &[Fixture]| class.iter().map(|f| (f.name.clone(), f.score.points().unwrap_or(public_points))).collect::<Vec<_>>();
    let same = |out: &str, class: &[Fixture], status: std::process::ExitStatus| match scores(out) {
        Ok(got) if got == expect(class) && status.success() => Ok(()),
        Ok(got) => Err(format!("exit {status}; scores {got:?}, expected {:?}", expect(class))),
        Err(e) => Err(e),
    };
    record("two classes with the same student names graded at once: class 1 exact", same("o1", &class1, first_status));
    record("two classes with the same student names graded at once: class 2 exact", same("o2", &class2, second_status));
    println!("  (two classes at once in {})", format_duration(started.elapsed()));
    // A run killed outright, then resumed.
    let mut killed = grade("class2", "o3").spawn()?;
    let guest_started = wait_for(|| qemu_children(killed.id()) > 0);
    killed.kill()?;
    killed.wait()?;
    let orphans = wait_for(|| qemu_with_cache(&env.project.cache) == 0);
    record(
        "a run killed with SIGKILL leaves no QEMU behind",
        if guest_started && orphans { Ok(()) } else { Err(format!("guest started: {guest_started}; no QEMU left: {orphans}")) },
    );
    let resumed = grade("class2", "o3").output()?;
    record(
        "a run killed with SIGKILL resumes to the exact scores",
        same("o3", &class2, resumed.status).map_err(|e| format!("{e}; {}", String::from_utf8_lossy(&resumed.stderr).trim())),
    );
    Ok(results)
}

/// Polls `condition` for up to two minutes.
fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The processes whose command line names `needle`, by `/proc`.
fn processes_matching(mut matches: impl FnMut(u32, &str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            matches(*pid, &cmdline)
        })
        .count()
}

/// QEMU processes whose parent is `parent`.
fn qemu_children(parent: u32) -> usize {
    processes_matching(|pid, cmdline| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        cmdline.contains("qemu-system") && ppid == Some(parent)
    })
}

/// QEMU processes booting from this cache that belong to no live grading run
/// of the killed one: after the kill, none may stay.
fn qemu_with_cache(cache: &Path) -> usize {
    let needle = cache.join("grading").display().to_string();
    processes_matching(|_, cmdline| cmdline.contains("qemu-system") && cmdline.contains(&needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_archives_are_refused_file_by_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let archive = dir.join("mallory.tar.gz");
        write_archive(
            &archive,
            &[
                ("../01-hello/hello.rs".into(), b"fn a() {}".to_vec(), false),
                ("01-hello/hello.rs".into(), b"/etc/passwd".to_vec(), true),
                ("01-hello/Kbuild".into(), b"obj-m := evil.o".to_vec(), false),
            ],
        )
        .unwrap();
        let wanted = BTreeMap::from([("01-hello".to_string(), vec!["hello.rs".to_string()])]);
        let submission = crate::submission::Submission { name: "mallory".into(), path: archive };
        let collected = crate::submission::collect(&submission, &wanted).unwrap();
        assert!(collected.files.is_empty());
        let all = collected.rejected.join("\n");
        assert!(all.contains("../01-hello/hello.rs: the path leaves the submission"), "{all}");
        assert!(all.contains("01-hello/hello.rs: a link"), "{all}");
        assert_eq!(collected.ignored, vec!["01-hello/Kbuild"]);
    }
}
