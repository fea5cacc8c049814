// SPDX-License-Identifier: GPL-2.0

//! `cargo xtask bench`: the performance figures, printed and as JSON.

use crate::flags::Flags;
use crate::kernel::Flavour;
use crate::paths::Project;
use crate::session::choose_accel;
use crate::setup::{self};
use crate::Result;

/// `cargo xtask bench`: prints the table, writes `target/bench.json`.
pub(crate) fn bench(flags: &Flags, runs: usize) -> Result<bool> {
    let project = Project::discover()?;
    let env = setup::ensure(&flags.setup, Flavour::Fast)?;
    let accel = choose_accel(&env, flags.guest.accel.as_deref())?;
    let figures = crate::bench::run(&flags.setup, accel, runs)?;
    print!("{}", crate::bench::table(&figures));
    let json = project.root.join("target/bench.json");
    crate::bench::write_json(&json, &figures)?;
    println!("({runs} runs each; JSON in {})", json.display());
    Ok(true)
}

/// `cargo xtask bench --cold`: the fresh machine's path, measured again
/// rather than remembered. A clone of this repository (what is committed)
/// in a scratch directory, with an empty cache of its own
/// (`WORKBOOK_CACHE`), runs the README's first command, `make hello`
/// (harness build, kernel source, kernel build, first verdict), then
/// `make test`'s quick phases. Debian packages and cargo's crates the
/// machine has are reused: they are the machine's, not the workbook's
/// cache. Takes as long as a kernel build; writes `target/bench-cold.json`.
pub(crate) fn cold() -> Result<bool> {
    let project = Project::discover()?;
    let scratch = tempfile::Builder::new().prefix("workbook-cold-").tempdir()?;
    let clone = scratch.path().join("workbook");
    let cache = scratch.path().join("cache");
    let root = project.root.display().to_string();
    let status = std::process::Command::new("git").args(["clone", "--quiet", &root]).arg(&clone).status()?;
    if !status.success() {
        return Err(anyhow::anyhow!("git clone {root} failed: --cold measures what is committed"));
    }
    let mut figures = Vec::new();
    for (name, args) in
        [("fresh clone: make hello (setup and first verdict)", "hello"), ("then: the unit tests and the book", "test-quick")]
    {
        eprintln!("bench --cold: {name} (in {})", clone.display());
        let started = std::time::Instant::now();
        let mut command = match args {
            "hello" => std::process::Command::new("make"),
            _ => std::process::Command::new("cargo"),
        };
        match args {
            "hello" => command.arg("hello"),
            _ => command.args(["xtask", "test", "--only", "unit,book"]),
        };
        let ok = command.current_dir(&clone).env("WORKBOOK_CACHE", &cache).status()?.success();
        let seconds = started.elapsed().as_secs_f64();
        println!("{name}: {} in {}", if ok { "passed" } else { "FAILED" }, crate::progress::format_duration(started.elapsed()));
        figures.push(serde_json::json!({ "name": name, "seconds": seconds, "passed": ok }));
    }
    let json = project.root.join("target/bench-cold.json");
    crate::paths::write_atomic(&json, serde_json::to_string_pretty(&figures)?.as_bytes())?;
    println!("(JSON in {})", json.display());
    Ok(figures.iter().all(|f| f["passed"] == true))
}
