// SPDX-License-Identifier: GPL-2.0

//! The negative tests: every mutation of a chapter, every chapter's exercise
//! skeleton and every planted bug must fail, for the reason it names.

use crate::chapter::Chapter;
use crate::guest::Accel;
use crate::kernel::Flavour;
use crate::mutation;
use crate::paths::Project;
use crate::report::{self, Style};
use crate::runner::{self, RunOptions, Stop};
use crate::setup::Environment;
use crate::timings::Timings;
use crate::Result;

/// How a negative test's failure is judged.
pub(crate) enum Judge {
    /// Any failure reason contains one of these texts (none: any failure).
    AnyOf(Vec<String>),
    /// A planted bug: the main failure names every expected text.
    Planted(crate::planted::Planted),
}

/// A chapter that must fail its checks.
pub(crate) struct NegativeJob {
    /// How the report names it.
    name: String,
    /// The broken chapter.
    chapter: Chapter,
    /// What its failure must say.
    judge: Judge,
    /// Its own directory for logs.
    work: std::path::PathBuf,
    /// The kernel that shows its failure.
    kernel: Flavour,
    /// The workbook's chapter it breaks, if any: built first (see
    /// [`negative_tests`]).
    reference: Option<Chapter>,
}

/// The kernels negative tests run on.
pub(crate) struct Kernels<'a> {
    /// Where a job runs unless only a detector sees its bug: the fast
    /// kernel, unless a flavour was asked for.
    pub(crate) default: &'a Environment,
    /// Where a job runs whose bug only a detector sees (lockdep, KASAN);
    /// `None` when only the fast kernel was asked for: such jobs are skipped.
    pub(crate) detectors: Option<&'a Environment>,
}

impl<'a> Kernels<'a> {
    /// Where a job meant for `flavour` runs (a debug job only when it is not skipped).
    fn for_flavour(&self, flavour: Flavour) -> &'a Environment {
        match flavour {
            Flavour::Debug => self.detectors.expect("jobs without their kernel were skipped"),
            Flavour::Fast => self.default,
        }
    }

    /// From the fast kernel, set up when no flavour was asked for, and
    /// `asked`: the debug kernel, or the one flavour asked for.
    pub(crate) fn new(fast: Option<&'a Environment>, asked: &'a Environment) -> Kernels<'a> {
        match (fast, asked.kernel.flavour) {
            (Some(fast), _) => Kernels { default: fast, detectors: Some(asked) },
            (None, Flavour::Debug) => Kernels { default: asked, detectors: Some(asked) },
            (None, Flavour::Fast) => Kernels { default: asked, detectors: None },
        }
    }
}

/// Every chapter's mutations and exercise skeleton, as jobs.
pub(crate) fn negative_jobs(project: &Project, chapters: &[Chapter]) -> Result<Vec<NegativeJob>> {
    let mutants = project.cache_dir("mutants")?;
    let mut jobs = Vec::new();
    for chapter in chapters {
        for (index, mutation) in mutation::load(chapter)?.into_iter().enumerate() {
            let work = mutants.join(format!("{}-{index}", chapter.name));
            let mutated = mutation::apply(chapter, &mutation, &work)?;
            let name = format!("{}: mutant `{}`", chapter.name, mutation.name);
            let expect = mutation.expect.texts().into_iter().map(String::from).collect();
            let reference = Some(chapter.clone());
            jobs.push(NegativeJob { name, chapter: mutated, judge: Judge::AnyOf(expect), work, kernel: mutation.kernel, reference });
        }
        if !crate::exercise::regions(chapter)?.is_empty() {
            // The learner's starting point must not pass: the checks must see
            // that the parts to write are missing.
            let work = mutants.join(format!("{}-skeleton", chapter.name));
            let dir = work.join(&chapter.name);
            let _ = std::fs::remove_dir_all(&dir);
            crate::exercise::write_skeleton(chapter, &dir)?;
            let name = format!("{}: exercise skeleton", chapter.name);
            let reference = Some(chapter.clone());
            let chapter = Chapter::load(&dir)?;
            jobs.push(NegativeJob { name, chapter, judge: Judge::AnyOf(Vec::new()), work, kernel: Flavour::Fast, reference });
        }
    }
    Ok(jobs)
}

/// The planted bugs of `tests/detectors/`, as jobs.
pub(crate) fn planted_jobs(project: &Project) -> Result<Vec<NegativeJob>> {
    let work = project.cache_dir("planted")?;
    Ok(crate::planted::load(project)?
        .into_iter()
        .map(|(planted, chapter)| NegativeJob {
            name: format!("detectors: planted `{}`", planted.dir),
            work: work.join(&planted.dir),
            chapter,
            judge: Judge::Planted(planted),
            kernel: Flavour::Debug,
            reference: None,
        })
        .collect())
}

/// How many negative tests share a core. Most are on the fast kernel and
/// many wait out a hang's limit in an idle guest; the few debug jobs among
/// them lose little by sharing a core. Measured on 2 cores, the 122 jobs of
/// nine chapters took 2 min 29 s four at once, 2 min 14 s six at once in
/// the same order and 2 min 11 s six at once with each long job beside a
/// short one: 254 core-seconds of work, so the cores were busy but for the
/// first seconds. Every step still has its limit: a negative test may fail
/// for the wrong reason on a loaded machine, never pass.
const NEGATIVE_GUESTS_PER_CORE: usize = 3;

/// Runs negative tests several guests at a time (see
/// [`crate::pool::guests_at_once`]), each on the kernel it needs, the
/// longest first, printing each verdict as it comes; the outcomes come in
/// the jobs' order.
/// A job that needs the debug kernel's detectors when only the fast kernel
/// was asked for is skipped, and said so.
pub(crate) fn negative_tests(kernels: &Kernels, jobs: Vec<NegativeJob>, accel: Accel) -> Result<Vec<(String, bool)>> {
    let workers = crate::pool::guests_at_once(NEGATIVE_GUESTS_PER_CORE);
    let (jobs, skipped): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| job.kernel == Flavour::Fast || kernels.detectors.is_some());
    for job in &skipped {
        println!("  skip  {}: only the debug kernel's detectors see it (run without --kernel fast)", job.name);
    }
    // The workbook's chapters first, on each kernel their jobs use, so
    // that every broken copy's build replays, however many start at once.
    let mut references: Vec<(&Environment, &Chapter)> = Vec::new();
    for job in &jobs {
        if let Some(reference) = &job.reference {
            let env = kernels.for_flavour(job.kernel);
            if !references.iter().any(|(e, c)| c.dir == reference.dir && std::ptr::eq(*e, env)) {
                references.push((env, reference));
            }
        }
    }
    crate::module_build::build_templates(references)?;
    // The longest first (by their last run), each beside one of the
    // shortest: a hang's long wait starts early, beside busy guests, instead
    // of ending the phase alone or idling beside other waits. The results
    // keep the jobs' order.
    let timings = std::sync::Mutex::new(Timings::read(&kernels.default.project.cache_dir("runs")?.join("negative-seconds")));
    let order = timings.lock().unwrap().start_order(jobs.iter().map(|job| job.name.as_str()));
    let mut slots: Vec<Option<NegativeJob>> = jobs.into_iter().map(Some).collect();
    let ordered: Vec<(usize, NegativeJob)> = order.into_iter().map(|i| (i, slots[i].take().expect("each index once"))).collect();
    let mut outcomes = crate::pool::run(ordered, workers, |(index, job)| {
        let env = kernels.for_flavour(job.kernel);
        let options = RunOptions {
            accel,
            memory_mb: env.kernel.flavour.memory_mb(),
            work_dir: job.work.join("run"),
            isolation: crate::module_build::Isolation::Trusted,
            // One failure is all a negative test needs: the guest stops at
            // the first one that names the expected cause.
            stop: match &job.judge {
                Judge::AnyOf(expect) => Stop::AtFailureNaming(expect.clone()),
                Judge::Planted(_) => Stop::Never,
            },
        };
        let started = std::time::Instant::now();
        let run = runner::run(env, std::slice::from_ref(&job.chapter), &options)?;
        let name = job.name;
        let took = crate::progress::format_duration(started.elapsed());
        let verdict = match &job.judge {
            Judge::AnyOf(expect) => {
                let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
                mutation::expectation_met(&name, &expect, &run.chapters[0])
            }
            Judge::Planted(planted) => crate::planted::named_exactly(planted, &run.chapters[0]),
        };
        // One print per job, so lines of two workers never interleave.
        let text = match &verdict {
            Ok(found) => format!(
                "  ok    {name} fails as it should{}: `{}` ({took})\n",
                if env.kernel.flavour == Flavour::Debug { " (debug kernel)" } else { "" },
                found.lines().next().unwrap_or("")
            ),
            Err(why) => format!("  FAIL  {name}: {why}\n{}", report::chapter(Style::plain(), &run.chapters[0])),
        };
        print!("{text}");
        timings.lock().unwrap().set(&name, started.elapsed());
        Ok((index, (name, verdict.is_ok())))
    })?;
    timings.into_inner().unwrap().write();
    outcomes.sort_by_key(|(index, _)| *index);
    Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
}
