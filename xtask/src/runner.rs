// SPDX-License-Identifier: GPL-2.0

//! Running chapters: build their modules, boot one guest for all of them,
//! and turn what the guest printed into a result for every step.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::chapter::{Chapter, Step};
use crate::faults;
use crate::guest::{self, Accel, Boot, BootConfig, Ending, GuestFile};
use crate::lock::CacheLock;
use crate::module_build::{self, Built};
use crate::setup::Environment;
use crate::transcript::Transcript;
use crate::verdict::{self, StepResult};
use crate::Result;
use anyhow::anyhow;

/// Lines of console shown when the guest dies or hangs.
const CONSOLE_TAIL: usize = 25;

/// How to run.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    /// How QEMU runs the guest.
    pub(crate) accel: Accel,
    /// Guest memory in MiB.
    pub(crate) memory_mb: u32,
    /// Where the run's logs go (the guest console and transcript).
    pub(crate) work_dir: PathBuf,
    /// How module builds run.
    pub(crate) isolation: module_build::Isolation,
    /// When the run may end before its last step.
    pub(crate) stop: Stop,
}

/// Where snapshots of booted guests are kept (see [`guest::Snapshot`]):
/// none when `WORKBOOK_SNAPSHOTS` is `off`, and every guest boots.
fn snapshots(env: &Environment) -> Result<Option<PathBuf>> {
    match std::env::var("WORKBOOK_SNAPSHOTS").as_deref() {
        Err(_) | Ok("on") | Ok("") => Ok(Some(env.project.cache_dir("snapshots")?)),
        Ok("off") => Ok(None),
        Ok(other) => Err(anyhow!("WORKBOOK_SNAPSHOTS must be `on` or `off`, not `{other}`")),
    }
}

/// When a run may end before its last step. A negative test needs one
/// failure, not a whole chapter's verdict: stopping at it saves the boot's
/// remaining steps (most of a mutant's time on the debug kernel).
#[derive(Debug, Clone, Default)]
pub(crate) enum Stop {
    /// Every step runs (a verdict, a grade).
    #[default]
    Never,
    /// At the first failed step whose reasons contain one of these texts,
    /// or, when there are none, at the first failed step.
    AtFailureNaming(Vec<String>),
}

impl Stop {
    /// A run that waits for a failure gives each step at most this long (on
    /// the fast kernel; scaled like every limit on the debug kernel). No
    /// reference step takes over 3.5 s on either kernel, and a mutant that
    /// hangs costs its step's whole limit: the chapter's 10 to 30 s would
    /// only wait longer for the same verdict. A cap can make a negative
    /// test fail for the wrong reason, never pass: the reason is checked.
    const NEGATIVE_LIMIT_SECS: u64 = 8;

    /// The cap on a step's time limit in this run, in seconds on the fast
    /// kernel.
    fn limit_cap(&self) -> Option<u64> {
        match self {
            Stop::Never => None,
            Stop::AtFailureNaming(_) => Some(Self::NEGATIVE_LIMIT_SECS),
        }
    }

    /// Whether `result` is the failure the run waits for.
    pub(crate) fn is_met_by(&self, result: &StepResult) -> bool {
        match self {
            Stop::Never => false,
            Stop::AtFailureNaming(_) if result.passed() => false,
            Stop::AtFailureNaming(texts) => {
                texts.is_empty() || result.failures().any(|reason| texts.iter().any(|t| reason.contains(t.as_str())))
            }
        }
    }
}

/// A chapter's results.
#[derive(Debug, Clone)]
pub(crate) struct ChapterResult {
    /// The chapter.
    pub(crate) chapter: Chapter,
    /// The build, or the compiler's message.
    pub(crate) build: Result<Built, String>,
    /// Every step's result, the cleanup check last.
    pub(crate) steps: Vec<StepResult>,
}

impl ChapterResult {
    /// Whether it built and every step passed.
    pub(crate) fn passed(&self) -> bool {
        self.build.is_ok() && !self.steps.is_empty() && self.steps.iter().all(StepResult::passed)
    }
}

/// A whole run's results.
#[derive(Debug, Clone)]
pub(crate) struct RunResult {
    /// Each chapter, in the order given.
    pub(crate) chapters: Vec<ChapterResult>,
    /// The boots (one per guest the chapters were shared among), when any
    /// chapter built.
    pub(crate) boots: Vec<Boot>,
    /// Wall time of the whole run.
    pub(crate) elapsed: Duration,
    /// Where the logs are.
    pub(crate) work_dir: PathBuf,
}

impl RunResult {
    /// Whether every chapter passed.
    pub(crate) fn passed(&self) -> bool {
        self.chapters.iter().all(ChapterResult::passed)
    }
}

/// The step every chapter ends with: its modules must be gone.
fn cleanup_step(chapter: &Chapter) -> Step {
    Step {
        name: "the modules are unloaded at the end (nothing left behind)".into(),
        run: format!("(wbsteps) rmmod any of {} still loaded", chapter.modules.join(" ")),
        exit: 0,
        timeout_secs: crate::chapter::DEFAULT_STEP_TIMEOUT_SECS,
        output: Vec::new(),
        dmesg: Vec::new(),
        absent_output: vec![regex::Regex::new("^still loaded").expect("pattern")],
        absent_dmesg: Vec::new(),
        points: 0,
        cleanup: true,
    }
}

/// The guest's step runner (`guest-programs/src/bin/wbsteps.rs`), which
/// `/init` starts on the steps file (`/workbook/steps`).
const STEP_RUNNER: &str = "/bin/wbsteps";

/// A step planned into the guest's steps file.
struct Planned {
    chapter: usize,
    step: Step,
}

/// What one guest runs: its files, its steps file (for `wbsteps`: see
/// `guest-programs/src/bin/wbsteps.rs`), and the steps in it.
struct Plan {
    /// The guest programs (`wbtools` and the step runner's link to it):
    /// alike in every run, so a snapshot holds them.
    shared: Vec<GuestFile>,
    /// The run's own files: modules, the chapters' files and program links.
    files: Vec<GuestFile>,
    script: String,
    steps: Vec<Planned>,
}

impl Plan {
    /// Plans every chapter but those whose build failed. `builds[i]` is
    /// `None` while chapter `i`'s modules are still building: its steps
    /// are planned, and its modules come late.
    fn new(env: &Environment, chapters: &[Chapter], builds: &[Option<Result<Built, String>>], options: &RunOptions) -> Result<Plan> {
        // Every guest runs its steps with `wbsteps`, one of the guest programs.
        let programs = crate::programs::ensure_built(&env.project)?;
        let shared = vec![
            GuestFile { guest_path: crate::programs::GUEST_PATH.into(), data: std::fs::read(&programs.binary)?, mode: 0o755, link: None },
            GuestFile { guest_path: STEP_RUNNER.into(), data: Vec::new(), mode: 0o777, link: Some(crate::programs::GUEST_PATH.into()) },
        ];
        let mut plan = Plan { shared, files: Vec::new(), script: String::new(), steps: Vec::new() };
        for (index, (chapter, build)) in chapters.iter().zip(builds).enumerate() {
            match build {
                Some(Err(_)) => continue,
                Some(Ok(built)) => plan.files.extend(module_files(chapter, built)),
                None => {}
            }
            for name in &chapter.files {
                plan.files.push(GuestFile {
                    guest_path: format!("/chapters/{}/{name}", chapter.name),
                    data: std::fs::read(chapter.dir.join(name))?,
                    mode: 0o755,
                    link: None,
                });
            }
            for name in &chapter.programs {
                if !programs.names.contains(name) {
                    return Err(anyhow!(
                        "{}: `programs` names {name}, which guest-programs/ does not have (it has {}); \
                         a program is a file guest-programs/src/bin/{name}.rs",
                        chapter.name,
                        programs.names.join(", ")
                    ));
                }
                let guest_path = format!("/chapters/{}/{name}", chapter.name);
                plan.files.push(GuestFile { guest_path, data: Vec::new(), mode: 0o777, link: Some(crate::programs::GUEST_PATH.into()) });
            }
            plan.script.push_str(&format!("chapter {}\n", chapter.name));
            for mut step in chapter.steps.iter().cloned().chain([cleanup_step(chapter)]) {
                // The debug kernel is slower at everything: its steps get
                // proportionally longer limits (and say so in a timeout).
                step.timeout_secs = options.stop.limit_cap().map_or(step.timeout_secs, |cap| step.timeout_secs.min(cap));
                step.timeout_secs *= env.kernel.flavour.time_scale();
                guest::check_no_marker(&step.run)?;
                let n = plan.steps.len();
                if step.cleanup {
                    plan.script.push_str(&format!("cleanup {n} {}\n", chapter.modules.join(" ")));
                } else {
                    plan.script.push_str(&format!("step {n} {} {}\n{}\n", step.timeout_secs, step.run.len(), step.run));
                }
                plan.steps.push(Planned { chapter: index, step });
            }
        }
        Ok(plan)
    }
}

/// A built chapter's modules, as the guest has them.
fn module_files(chapter: &Chapter, built: &Built) -> Vec<GuestFile> {
    let path = |name: &str| format!("/chapters/{}/{name}.ko", chapter.name);
    built.modules.iter().map(|(name, image)| GuestFile { guest_path: path(name), data: image.clone(), mode: 0o644, link: None }).collect()
}

/// Builds every chapter, runs those that built in one guest, and judges.
/// Modules already built go into the guest's initramfs; the others build
/// while the guest boots and are sent to it when they are ready (a learner's
/// edit is rebuilt in about the time the guest takes to boot).
pub(crate) fn run(env: &Environment, chapters: &[Chapter], options: &RunOptions) -> Result<RunResult> {
    let started = Instant::now();
    // Two runs into one directory (two terminals checking one chapter) take
    // turns instead of overwriting each other's console and transcript.
    let _lock = CacheLock::acquire(&options.work_dir.with_extension("lock"), &format!("a run in {}", options.work_dir.display()))?;
    let mut builds = Vec::new();
    for chapter in chapters {
        let ready = module_build::is_up_to_date(env, chapter, options.isolation)?;
        builds.push(if ready { Some(module_build::build_isolated(env, chapter, options.isolation)?) } else { None });
    }
    let plan = Plan::new(env, chapters, &builds, options)?;
    let late: Vec<usize> = (0..chapters.len()).filter(|&i| builds[i].is_none()).collect();
    let initramfs = guest::initramfs(&env.project, &env.toolchain, &plan.script, &plan.shared, &plan.files, !late.is_empty())?;
    let config = BootConfig {
        qemu: env.toolchain.qemu.clone(),
        image: env.kernel.image.clone(),
        work_dir: options.work_dir.clone(),
        accel: options.accel,
        memory_mb: options.memory_mb,
        cmdline_extra: env.kernel.flavour.cmdline(),
        tcg_cache_mib: env.kernel.flavour.tcg_cache_mib(),
        snapshots: snapshots(env)?,
    };
    let limits: Vec<Duration> = plan.steps.iter().map(|p| Duration::from_secs(p.step.timeout_secs)).collect();
    let mut stop_after = |n: usize, seen: &str| {
        matches!(&options.stop, Stop::AtFailureNaming(_))
            && Transcript::parse(seen, &initramfs.token)
                .steps
                .get(&n)
                .is_some_and(|record| options.stop.is_met_by(&verdict::judge_step(&plan.steps[n].step, record)))
    };
    let boot = if late.is_empty() {
        (!plan.steps.is_empty()).then(|| guest::boot(&config, &initramfs, None, &limits, &mut stop_after)).transpose()?
    } else {
        let (sender, receiver) = std::sync::mpsc::channel();
        let runnable = builds.iter().any(|b| matches!(b, Some(Ok(_))));
        let (boot, built) = std::thread::scope(|scope| {
            let builder = scope.spawn(|| -> Result<Vec<Result<Built, String>>> {
                // Owned here, so that it is dropped when this thread ends.
                let sender = sender;
                let built =
                    late.iter().map(|&i| module_build::build_isolated(env, &chapters[i], options.isolation)).collect::<Result<Vec<_>>>()?;
                let mut files = Vec::new();
                let mut unbuilt = String::new();
                for (&i, build) in late.iter().zip(&built) {
                    match build {
                        Ok(modules) => files.extend(module_files(&chapters[i], modules)),
                        Err(_) => unbuilt.push_str(&format!("{}\n", chapters[i].name)),
                    }
                }
                if runnable || built.iter().any(Result::is_ok) {
                    files.push(GuestFile { guest_path: "/workbook/unbuilt".into(), data: unbuilt.into_bytes(), mode: 0o644, link: None });
                    // The guest may be gone already (it died booting).
                    let _ = sender.send(files);
                }
                // Otherwise no chapter runs: the sender goes unsent, which
                // stops the guest.
                Ok(built)
            });
            let boot = guest::boot(&config, &initramfs, Some(receiver), &limits, &mut stop_after);
            (boot, builder.join())
        });
        let built = built.map_err(|_| anyhow!("a module build panicked"))??;
        for (&i, build) in late.iter().zip(built) {
            builds[i] = Some(build);
        }
        Some(boot?).filter(|boot| boot.ending != Ending::Cancelled)
    };
    let mut results: Vec<ChapterResult> = chapters
        .iter()
        .zip(builds)
        .map(|(chapter, build)| ChapterResult { chapter: chapter.clone(), build: build.expect("every chapter built"), steps: Vec::new() })
        .collect();
    let Some(boot) = boot else {
        return Ok(RunResult { chapters: results, boots: Vec::new(), elapsed: started.elapsed(), work_dir: options.work_dir.clone() });
    };
    let transcript = Transcript::parse(&boot.transcript, &boot.token);
    let console: Vec<String> = boot.console.lines().map(String::from).collect();
    let mut death: Option<String> = None;
    for (n, planned) in plan.steps.iter().enumerate() {
        let chapter = &results[planned.chapter];
        if chapter.build.is_err() {
            // Its modules were late and did not build: the guest left it out.
            continue;
        }
        let chapter = &chapter.chapter.name;
        let result = match (transcript.steps.get(&n), &death) {
            (Some(record), _) if record.skipped => verdict::not_finished(
                &planned.step,
                "not run: an earlier step of this chapter crashed the kernel (see the first failure)".into(),
                &[],
            ),
            (Some(record), _) if record.ended => verdict::judge_step(&planned.step, record),
            (None, _) if matches!(boot.ending, Ending::Stopped(at) if at < n) => {
                verdict::not_finished(&planned.step, "not run: the run stopped once an earlier step had failed as expected".into(), &[])
            }
            (_, Some(earlier)) => verdict::not_finished(&planned.step, format!("not run: {earlier}"), &[]),
            (record, None) => {
                let (reason, excerpt) = match record.and_then(|r| r.stuck.as_ref()) {
                    Some(stack) => (format!("{}; it could not be killed", verdict::stuck_reason(&planned.step, stack)), stack.clone()),
                    None => why_unfinished(&boot, &transcript, &console, n),
                };
                let started = record.is_some();
                death = Some(if started {
                    format!("the guest stopped in step `{}` of {chapter}", planned.step.name)
                } else {
                    "the guest stopped before this step".to_string()
                });
                verdict::not_finished(&planned.step, reason, &excerpt)
            }
        };
        let took = boot.step_times.get(&n).copied();
        results[planned.chapter].steps.push(StepResult { took, ..result });
    }
    Ok(RunResult { chapters: results, boots: vec![boot], elapsed: started.elapsed(), work_dir: options.work_dir.clone() })
}

/// [`run`], with the chapters shared among up to `guests` guests that run
/// at once (see [`crate::pool::guests_at_once`]),
/// balanced by how long each chapter took last time. The results come in
/// the chapters' order; each guest's logs are in `guest-N` of the run's
/// directory.
pub(crate) fn run_in_guests(env: &Environment, chapters: &[Chapter], options: &RunOptions, guests: usize) -> Result<RunResult> {
    let guests = guests.clamp(1, chapters.len().max(1));
    if guests == 1 {
        return run(env, chapters, options);
    }
    let started = Instant::now();
    let _lock = CacheLock::acquire(&options.work_dir.with_extension("lock"), &format!("a run in {}", options.work_dir.display()))?;
    let costs_file = env.project.cache_dir("runs")?.join(format!("chapter-seconds-{}", env.kernel.flavour.name()));
    let mut costs = ChapterCosts::read(&costs_file);
    let groups = costs.share(chapters, guests);
    let runs = crate::pool::run(groups.into_iter().enumerate().collect(), guests, |(index, group): (usize, Vec<usize>)| {
        let options = RunOptions { work_dir: options.work_dir.join(format!("guest-{index}")), ..options.clone() };
        let chosen: Vec<Chapter> = group.iter().map(|&i| chapters[i].clone()).collect();
        Ok((group, run(env, &chosen, &options)?))
    })?;
    let mut placed: Vec<Option<ChapterResult>> = vec![None; chapters.len()];
    let mut boots = Vec::new();
    for (group, result) in runs {
        for (index, chapter) in group.into_iter().zip(result.chapters) {
            costs.record(&chapter);
            placed[index] = Some(chapter);
        }
        boots.extend(result.boots);
    }
    costs.write();
    let chapters = placed.into_iter().map(|c| c.expect("every chapter ran in one guest")).collect();
    Ok(RunResult { chapters, boots, elapsed: started.elapsed(), work_dir: options.work_dir.clone() })
}

/// How long each chapter's steps took in its last run, in seconds.
#[derive(Debug)]
struct ChapterCosts(crate::timings::Timings);

impl ChapterCosts {
    /// A chapter never timed counts this much per step.
    const SECONDS_PER_STEP: f64 = 0.3;

    /// The costs in `file`.
    fn read(file: &std::path::Path) -> ChapterCosts {
        ChapterCosts(crate::timings::Timings::read(file))
    }

    fn write(&self) {
        self.0.write();
    }

    /// Records what a chapter's steps took, when every step ended.
    fn record(&mut self, result: &ChapterResult) {
        let times: Option<Vec<Duration>> = result.steps.iter().map(|s| s.took).collect();
        if let Some(times) = times.filter(|t| !t.is_empty()) {
            self.0.set(&result.chapter.name, times.iter().sum());
        }
    }

    fn cost(&self, chapter: &Chapter) -> f64 {
        self.0.get(&chapter.name).unwrap_or(chapter.steps.len() as f64 * Self::SECONDS_PER_STEP)
    }

    /// The chapters' indices in `guests` groups of about equal cost: the
    /// costliest first, each to the group with the least so far; each group
    /// keeps the chapters' order.
    fn share(&self, chapters: &[Chapter], guests: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..chapters.len()).collect();
        order.sort_by(|&a, &b| self.cost(&chapters[b]).total_cmp(&self.cost(&chapters[a])));
        let mut groups: Vec<(f64, Vec<usize>)> = vec![(0.0, Vec::new()); guests];
        for index in order {
            let lightest = groups.iter_mut().min_by(|a, b| a.0.total_cmp(&b.0)).expect("at least one guest");
            lightest.0 += self.cost(&chapters[index]);
            lightest.1.push(index);
        }
        groups
            .into_iter()
            .map(|(_, mut group)| {
                group.sort_unstable();
                group
            })
            .filter(|group| !group.is_empty())
            .collect()
    }
}

/// Why step `n` has no end, with the console lines that show it.
fn why_unfinished(boot: &Boot, transcript: &Transcript, console: &[String], n: usize) -> (String, Vec<String>) {
    let found = faults::find(console);
    let tail = console[console.len().saturating_sub(CONSOLE_TAIL)..].to_vec();
    let (cause, excerpt) = match found.first() {
        Some(fault) => (Some(fault.cause.clone()), fault.excerpt.clone()),
        None => (None, tail),
    };
    let cause_text = cause.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
    let reason = match &boot.ending {
        Ending::BootTimeout if boot.resumed => format!(
            "the guest, resumed from a snapshot of a booted guest, was not ready within {}s of receiving its files{cause_text}",
            guest::BOOT_DEADLINE.as_secs()
        ),
        Ending::BootTimeout if transcript.wanted => {
            format!("the guest did not finish booting within {}s of receiving its modules{cause_text}", guest::BOOT_DEADLINE.as_secs())
        }
        Ending::BootTimeout => format!("the guest never booted (no sign of /init within {}s){cause_text}", guest::BOOT_DEADLINE.as_secs()),
        Ending::StepTimeout(_) => format!(
            "no answer from the guest within the step's time limit: it hung{}",
            if cause.is_some() { cause_text } else { " (an endless loop in the kernel?)".into() }
        ),
        Ending::ConsoleFlood => {
            format!("the kernel flooded the console (more than {} MiB): a print in a loop?", guest::CONSOLE_LIMIT_BYTES >> 20)
        }
        Ending::GuestDied if !transcript.booted => format!("the guest died while booting{cause_text}"),
        Ending::GuestDied => format!("the guest kernel died during this step{cause_text}"),
        Ending::Completed | Ending::Stopped(_) | Ending::Cancelled => format!("the guest finished without running step {n}"),
    };
    (reason, excerpt)
}

#[cfg(test)]
mod tests {
    use super::{ChapterCosts, Stop};
    use crate::chapter::Step;
    use crate::transcript::StepRecord;

    #[test]
    fn a_negative_run_stops_at_the_failure_it_waits_for() {
        let step = Step {
            name: "greets".into(),
            run: "insmod hello.ko".into(),
            exit: 0,
            timeout_secs: 20,
            output: Vec::new(),
            dmesg: vec![regex::Regex::new("^hello: Hello").unwrap()],
            absent_output: Vec::new(),
            absent_dmesg: Vec::new(),
            points: 1,
            cleanup: false,
        };
        let record = |dmesg: &str| StepRecord {
            output: Vec::new(),
            exit: Some(0),
            dmesg: vec![dmesg.to_string()],
            ended: true,
            skipped: false,
            stuck: None,
        };
        let passed = crate::verdict::judge_step(&step, &record("hello: Hello, kernel!"));
        let failed = crate::verdict::judge_step(&step, &record("hello: Goodbye"));
        let expecting = |texts: &[&str]| Stop::AtFailureNaming(texts.iter().map(|t| t.to_string()).collect());
        assert!(!Stop::Never.is_met_by(&failed));
        assert!(!expecting(&[]).is_met_by(&passed));
        assert!(expecting(&[]).is_met_by(&failed));
        assert!(expecting(&["no line of dmesg matches `^hello: Hello"]).is_met_by(&failed));
        assert!(!expecting(&["kernel WARNING"]).is_met_by(&failed), "a failure for another reason runs on");
    }

    #[test]
    fn chapters_are_shared_among_guests_by_their_last_times() {
        let chapter = |name: &str, steps: usize| {
            let text = format!("title = \"t\"\nmodules = [\"m\"]\n{}", "[[step]]\nname = \"s\"\nrun = \"true\"\n".repeat(steps));
            crate::chapter::Chapter::parse(name, std::path::Path::new("/c"), &text).unwrap()
        };
        let chapters = [chapter("01-a", 1), chapter("02-b", 1), chapter("03-c", 1), chapter("04-d", 10)];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("costs"), "01-a 5.0\n02-b 4.0\n03-c 2.0\n").unwrap();
        let costs = ChapterCosts::read(&dir.path().join("costs"));
        // 04-d was never timed: 10 steps at 0.3 s are 3 s.
        assert_eq!(costs.share(&chapters, 2), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(costs.share(&chapters, 1), vec![vec![0, 1, 2, 3]]);
        assert_eq!(costs.share(&chapters[..1], 2), vec![vec![0]], "no empty guest");
    }
}
