// SPDX-License-Identifier: GPL-2.0

//! Building modules without make. For every file it makes, Kbuild saves the
//! command that made it (`.TARGET.cmd`). Run again, in stages, those
//! commands build the same modules byte for byte, without make's second of
//! reading the kernel's Makefiles four times: in the same directory after an
//! edit, or in a new directory with the same `Kbuild` (the commands name the
//! sources relative to their directory and the kernel by absolute path).
//!
//! Each compile is followed by what Kbuild's rule runs after it: `fixdep`
//! turns the compiler's list of the files it read into the `.cmd` file's
//! dependency list, and the objtool line is appended again. The `.cmd`
//! files stay what make would have left, so that they say which objects an
//! edit leaves alone: in the same directory, an object none of whose
//! dependencies is newer (make's rule); in a new directory, an object of
//! the other build whose local dependencies (the sources, the module's own
//! headers) are the same bytes here, copied. A link, `.mod.o` or `.ko` is
//! made as make decides (one of its inputs is new), or copied from the
//! other build when its inputs are the same bytes there.

use std::path::Path;

use xshell::cmd;

use crate::setup::Environment;
use crate::Result;

/// One saved command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Saved {
    /// The file it makes, in the build directory.
    target: String,
    /// The command, as the shell runs it.
    line: String,
    /// For a link or a `.mod.o`: the files made earlier in the build that
    /// it reads. It runs only when one of them is newer than its own file,
    /// or was made anew, or its own file is missing, as make decides.
    inputs: Vec<String>,
    /// For an object: the command as Kbuild wrote it (escaped for make),
    /// which `fixdep` writes back, and what Kbuild appends to the `.cmd`
    /// file after `fixdep`'s part (the objtool dependency, if any).
    compiled: Option<Compiled>,
}

/// What Kbuild does after compiling an object, to redo after a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Compiled {
    escaped: String,
    appended: String,
}

/// The saved commands that build every module of a directory, in stages as
/// make runs them: every object (rustc or clang, and objtool); each module
/// of several objects, linked from them; modpost; each `.mod.o`; each
/// `.ko`. The commands of a stage do not depend on each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    stages: Vec<Vec<Saved>>,
}

impl Plan {
    /// The commands Kbuild saved in `dir`; `None` when one is missing.
    pub(crate) fn saved(dir: &Path) -> Option<Plan> {
        let modules = modules(dir)?;
        let (mut objects, mut linked) = (Vec::new(), Vec::new());
        for module in &modules {
            let parts = objects_of(dir, module)?;
            if parts != [format!("{module}.o")] {
                for part in &parts {
                    // An object two modules share is compiled once.
                    if !objects.iter().any(|o: &Saved| &o.target == part) {
                        objects.push(object(dir, part)?);
                    }
                }
                linked.push(Saved { inputs: parts, ..saved(dir, &format!("{module}.o"))? });
            } else if !objects.iter().any(|o| o.target == parts[0]) {
                objects.push(object(dir, &parts[0])?);
            }
        }
        let each = |suffix: &str, inputs: &[&str]| {
            modules
                .iter()
                .map(|m| Some(Saved { inputs: inputs.iter().map(|i| format!("{m}{i}")).collect(), ..saved(dir, &format!("{m}{suffix}"))? }))
                .collect::<Option<Vec<_>>>()
        };
        let stages =
            vec![objects, linked, vec![saved(dir, "Module.symvers")?], each(".mod.o", &[".mod.c"])?, each(".ko", &[".o", ".mod.o"])?];
        Some(Plan { stages: stages.into_iter().filter(|stage| !stage.is_empty()).collect() })
    }

    /// Whether a command names `dir` (a Kbuild's `-I$(M)`): run in another
    /// directory, it would read `dir`'s files.
    pub(crate) fn mentions(&self, dir: &Path) -> bool {
        let dir = dir.display().to_string();
        self.stages.iter().flatten().any(|saved| saved.line.contains(&dir))
    }

    /// Runs the commands in `dir`, a stage's commands a core each at once,
    /// in bubblewrap with `sandbox`'s arguments unless they are none. A file
    /// whose inputs have the same contents in `template` (a good build of
    /// the same `Kbuild` against the same kernel build, whose `.cmd` files
    /// were copied here and which the caller keeps from changing meanwhile)
    /// is copied from there instead. Objects are judged by the dependency
    /// lists of the `.cmd` files in `dir` only when `deps_known` (they are
    /// Kbuild's, not left by a replay that did not run `fixdep`): else
    /// every one is compiled. `None` when the commands did not make every
    /// file they should afresh: make does it.
    pub(crate) fn run(
        &self,
        env: &Environment,
        dir: &Path,
        sandbox: &[String],
        template: Option<&Path>,
        deps_known: bool,
    ) -> Result<Option<std::process::Output>> {
        let mut sandbox = sandbox.to_vec();
        if !sandbox.is_empty() {
            for (name, value) in EXPORTED {
                sandbox.extend(["--setenv".to_string(), name.to_string(), value.to_string()]);
            }
        }
        let started = std::time::SystemTime::now();
        let mut stderr = Vec::new();
        // What this build made anew, so far. (modpost rewrites a module's
        // `.mod.c` only when it changes: then it is newer than the `.mod.o`.)
        let mut made: std::collections::HashSet<String> = std::collections::HashSet::new();
        let modified = |name: &str| std::fs::metadata(dir.join(name)).and_then(|m| m.modified()).ok();
        let mut ran = Vec::new();
        let same =
            |from: &Path, name: &String| std::fs::read(from.join(name)).ok().is_some_and(|a| std::fs::read(dir.join(name)).ok() == Some(a));
        // An object's inputs: its local dependencies when they are known.
        let kernel = [env.kernel.dir.as_path(), env.kernel.source.as_path()];
        let inputs = |saved: &Saved| -> Option<Vec<String>> {
            match &saved.compiled {
                Some(_) => deps_known.then(|| local_deps(dir, &saved.target, &kernel)).flatten(),
                None => Some(saved.inputs.clone()),
            }
        };
        // The template's file, made from the same inputs, and after them.
        let same_in_template = |saved: &Saved, inputs: &Option<Vec<String>>| {
            template.is_some_and(|from| {
                let made_at = std::fs::metadata(from.join(&saved.target)).and_then(|m| m.modified()).ok();
                let older = |i: &String| {
                    std::fs::metadata(from.join(i)).and_then(|m| m.modified()).is_ok_and(|at| made_at.is_some_and(|t| at <= t))
                };
                inputs.as_ref().is_some_and(|inputs| !inputs.is_empty() && inputs.iter().all(|i| same(from, i) && older(i)))
            })
        };
        let fixdep = env.kernel.dir.join("scripts/basic/fixdep");
        for stage in &self.stages {
            let mut due: Vec<&Saved> = Vec::new();
            for saved in stage {
                // make's rule: due when its file is missing, or an input was
                // made anew or is newer. An object in a new directory is due
                // unless the template's can be copied.
                let new_object = saved.compiled.is_some() && template.is_some();
                let inputs = inputs(saved);
                let needed = match &inputs {
                    Some(inputs) if !new_object && !inputs.is_empty() => {
                        inputs.iter().any(|i| made.contains(i))
                            || modified(&saved.target)
                                .is_none_or(|made_at| inputs.iter().any(|i| modified(i).is_none_or(|at| at > made_at)))
                    }
                    _ => true,
                };
                if !needed {
                    continue;
                }
                match template {
                    Some(from) if same_in_template(saved, &inputs) => {
                        std::fs::copy(from.join(&saved.target), dir.join(&saved.target))?;
                        made.insert(saved.target.clone());
                    }
                    _ => due.push(saved),
                }
            }
            let outs = crate::pool::run(due.clone(), crate::pool::cores(), |saved: &Saved| {
                let sh = env.shell()?;
                sh.change_dir(dir);
                let line = &match &saved.compiled {
                    // As Kbuild's `cmd_and_fixdep`, then `cmd_gen_objtooldep`.
                    Some(compiled) => format!(
                        "{}\n{} {depfile} {target} '{}' > ./.{target}.cmd\nrm -f {depfile}\nprintf '%s' '{}' >> ./.{target}.cmd",
                        saved.line,
                        fixdep.display(),
                        quoted(&compiled.escaped),
                        quoted(&compiled.appended),
                        target = saved.target,
                        depfile = format!("./.{}.d", saved.target.replace(',', "_")),
                    ),
                    None => saved.line.clone(),
                };
                // `-e`, as Kbuild runs them: in `rustc ...; objtool ...`, a
                // failed compile must not go on to objtool on the old object.
                Ok(if sandbox.is_empty() {
                    for (name, value) in EXPORTED {
                        sh.set_var(name, value);
                    }
                    cmd!(sh, "sh -e -c {line}").quiet().ignore_status().output()?
                } else {
                    let sandbox = &sandbox;
                    cmd!(sh, "bwrap {sandbox...} -- sh -e -c {line}").quiet().ignore_status().output()?
                })
            })?;
            // A failed command's file is removed, as Kbuild's make does
            // (`.DELETE_ON_ERROR`): `rustc` may have made it before `objtool`
            // failed on it.
            for (saved, out) in due.iter().zip(&outs) {
                if !out.status.success() {
                    let _ = std::fs::remove_file(dir.join(&saved.target));
                }
            }
            // In the commands' order, as make shows them with one job.
            let failed = outs.iter().find(|out| !out.status.success()).map(|out| out.status);
            for out in outs {
                stderr.extend_from_slice(&out.stderr);
            }
            if let Some(status) = failed {
                return Ok(Some(std::process::Output { status, stdout: Vec::new(), stderr }));
            }
            made.extend(due.iter().map(|saved| saved.target.clone()));
            ran.extend(due);
        }
        // Everything run must have made its file anew: anything else is a
        // replay that did not do what make would have, and make does it.
        let fresh = |name: &str| std::fs::metadata(dir.join(name)).and_then(|m| m.modified()).is_ok_and(|at| at >= started);
        if !ran.iter().all(|saved| fresh(&saved.target)) {
            return Ok(None);
        }
        let status = std::os::unix::process::ExitStatusExt::from_raw(0);
        Ok(Some(std::process::Output { status, stdout: Vec::new(), stderr }))
    }
}

/// What the kernel's Makefile exports that the saved commands need: rustc
/// takes the kernel's `-Z` flags only with RUSTC_BOOTSTRAP.
const EXPORTED: [(&str, &str); 3] = [("RUSTC_BOOTSTRAP", "1"), ("LC_COLLATE", "C"), ("LC_NUMERIC", "C")];

/// Copies into `to` what Kbuild made in `from` that does not depend on the
/// modules' sources: the saved commands (make reads them on a later build
/// of `to`), the module list, each module's object list and the object
/// common to every module (built from the kernel's own sources).
pub(crate) fn seed(from: &Path, to: &Path) -> Result<()> {
    // Objects already in `to` would sit beside the template's `.cmd` files,
    // which do not describe them: the replay makes or copies each anew.
    remove_objects(to)?;
    for entry in std::fs::read_dir(from)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let wanted = (name.starts_with('.') && name.ends_with(".cmd"))
            || name == "modules.order"
            || name == ".module-common.o"
            || (name.ends_with(".mod") && !name.starts_with('.'));
        if wanted {
            std::fs::copy(from.join(&name), to.join(&name))?;
        }
    }
    Ok(())
}

/// Removes every object and module of `dir` (`.o`, `.ko`): their `.cmd`
/// files are not to be trusted, so what makes them next starts afresh.
pub(crate) fn remove_objects(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".o") || name.ends_with(".ko") {
            std::fs::remove_file(dir.join(name))?;
        }
    }
    Ok(())
}

/// The modules `dir` builds (`modules.order`: `NAME.o` a line).
fn modules(dir: &Path) -> Option<Vec<String>> {
    let order = std::fs::read_to_string(dir.join("modules.order")).ok()?;
    let modules: Vec<String> =
        order.lines().filter_map(|l| l.trim().trim_start_matches("./").strip_suffix(".o")).map(String::from).collect();
    (!modules.is_empty()).then_some(modules)
}

/// The objects of a module (`NAME.mod`: `./OBJECT.o` a line).
fn objects_of(dir: &Path, module: &str) -> Option<Vec<String>> {
    let listed = std::fs::read_to_string(dir.join(format!("{module}.mod"))).ok()?;
    let objects: Vec<String> = listed.split_whitespace().map(|o| o.trim_start_matches("./").to_string()).collect();
    (!objects.is_empty()).then_some(objects)
}

/// The command saved for `target` in `dir`.
fn saved(dir: &Path, target: &str) -> Option<Saved> {
    let text = std::fs::read_to_string(dir.join(format!(".{target}.cmd"))).ok()?;
    let line = unescape(text.lines().next()?.strip_prefix(&format!("savedcmd_{target} := "))?);
    Some(Saved { target: target.to_string(), line, inputs: Vec::new(), compiled: None })
}

/// The command saved for the object `target` in `dir`, with what a replay
/// redoes after it: `fixdep` wrote the file up to its dependency list's
/// last line (`$(deps_TARGET):`); Kbuild appended the rest.
fn object(dir: &Path, target: &str) -> Option<Saved> {
    let text = std::fs::read_to_string(dir.join(format!(".{target}.cmd"))).ok()?;
    let escaped = text.lines().next()?.strip_prefix(&format!("savedcmd_{target} := "))?.to_string();
    let end = format!("\n$(deps_{target}):\n");
    let appended = text[text.find(&end)? + end.len()..].to_string();
    Some(Saved { compiled: Some(Compiled { escaped, appended }), ..saved(dir, target)? })
}

/// The files in `dir` the object `target` was made from, as the `.cmd`
/// file Kbuild's `fixdep` wrote says: its source and the dependencies named
/// relative to the directory (the module's own headers and included files).
/// The others must be the kernel's (under one of `kernel`), the same for
/// every build against it. `None` when the file says none, or names a file
/// elsewhere (outside the directory, or reached by `..`): such an object is
/// always compiled.
fn local_deps(dir: &Path, target: &str, kernel: &[&Path]) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join(format!(".{target}.cmd"))).ok()?;
    let source = text.lines().find_map(|l| l.strip_prefix(&format!("source_{target} := ")))?;
    let start = text.find(&format!("\ndeps_{target} := \\\n"))?;
    let listed = text[start..].lines().skip(2).take_while(|l| l.ends_with('\\')).map(|l| l.trim_end_matches('\\').trim());
    let mut deps = vec![source.trim().to_string()];
    for dep in listed {
        if dep.starts_with("$(wildcard") {
            // Config files, named relative to the kernel build: never here.
            continue;
        }
        if dep.starts_with('/') {
            if !kernel.iter().any(|k| Path::new(dep).starts_with(k)) {
                return None;
            }
        } else if Path::new(dep).components().any(|c| c == std::path::Component::ParentDir) {
            return None;
        } else if !deps.iter().any(|d| d == dep) {
            deps.push(dep.to_string());
        }
    }
    Some(deps)
}

/// `text` for inside a shell's single quotes.
fn quoted(text: &str) -> String {
    text.replace('\'', "'\\''")
}

/// A saved command as the shell runs it: Kbuild writes `$` as `$$` and `#`
/// as `$(pound)`, for make to read the `.cmd` file back.
fn unescape(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let mut rest = command;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("$(pound)") {
            out.push('#');
            rest = after;
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_commands_are_unescaped_as_make_reads_them() {
        assert_eq!(unescape("awk '!x[$$0]++ { print(\"./\"$$0) }' $(pound) $$$$ $x"), "awk '!x[$0]++ { print(\"./\"$0) }' # $$ $x");
    }

    /// A directory as Kbuild leaves it: `hello` of one Rust object, `pair`
    /// of a Rust object and a C one that includes `pair_shim.h`.
    fn built(dir: &Path) {
        let save = |target: &str, extra: &str| {
            let text = format!("savedcmd_{target} := make {target} $$x\n\n{extra}\n");
            std::fs::write(dir.join(format!(".{target}.cmd")), text).unwrap()
        };
        std::fs::write(dir.join("modules.order"), "hello.o\npair.o\n").unwrap();
        std::fs::write(dir.join("hello.mod"), "./hello.o\n").unwrap();
        std::fs::write(dir.join("pair.mod"), "./pair_main.o\n./pair_shim.o\n").unwrap();
        // As `fixdep` writes them, then Kbuild's objtool line.
        let object = |target: &str, source: &str, deps: &[&str], objtool: bool| {
            let deps: String = deps.iter().map(|d| format!("  {d} \\\n")).collect();
            let objtool = if objtool { format!("\n\n{target}: $(wildcard /k/tools/objtool/objtool)") } else { String::new() };
            let text = format!(
                "source_{target} := {source}\n\ndeps_{target} := \\\n{deps}\n{target}: $(deps_{target})\n\n$(deps_{target}):{objtool}"
            );
            save(target, &text)
        };
        object("hello.o", "hello.rs", &["/k/rust/libkernel.rmeta"], true);
        object("pair_main.o", "pair_main.rs", &["/k/rust/libkernel.rmeta"], false);
        object("pair_shim.o", "pair_shim.c", &["/k/include/linux/x.h", "$(wildcard include/config/Y)", "pair_shim.h"], false);
        for target in ["pair.o", "Module.symvers", "hello.mod.o", "pair.mod.o", "hello.ko", "pair.ko"] {
            save(target, "");
        }
        for (name, text) in [("hello.rs", "h"), ("pair_main.rs", "m"), ("pair_shim.c", "c"), ("pair_shim.h", "h")] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        for object in ["hello.o", "pair_main.o", "pair_shim.o", "hello.ko", ".module-common.o"] {
            std::fs::write(dir.join(object), "object").unwrap();
        }
    }

    fn targets(plan: &Plan) -> Vec<Vec<&str>> {
        plan.stages.iter().map(|stage| stage.iter().map(|s| s.target.as_str()).collect()).collect()
    }

    #[test]
    fn a_build_is_replayed_in_stages() {
        let tmp = tempfile::tempdir().unwrap();
        built(tmp.path());
        let plan = Plan::saved(tmp.path()).unwrap();
        assert_eq!(
            targets(&plan),
            vec![
                vec!["hello.o", "pair_main.o", "pair_shim.o"],
                vec!["pair.o"],
                vec!["Module.symvers"],
                vec!["hello.mod.o", "pair.mod.o"],
                vec!["hello.ko", "pair.ko"]
            ]
        );
        assert_eq!(plan.stages[0][0].line, "make hello.o $x");
        assert_eq!(plan.stages[1][0].inputs, vec!["pair_main.o", "pair_shim.o"]);
        assert_eq!(plan.stages[4][1].inputs, vec!["pair.o", "pair.mod.o"]);
        let compiled = |stage: usize, at: usize| plan.stages[stage][at].compiled.clone().map(|c| (c.escaped, c.appended));
        assert_eq!(compiled(0, 0), Some(("make hello.o $$x".into(), "\nhello.o: $(wildcard /k/tools/objtool/objtool)\n".into())));
        assert_eq!(compiled(0, 2), Some(("make pair_shim.o $$x".into(), String::new())));
        assert_eq!(compiled(1, 0), None, "a link is not compiled");
        std::fs::remove_file(tmp.path().join(".Module.symvers.cmd")).unwrap();
        assert_eq!(Plan::saved(tmp.path()), None, "modpost's command is missing");
    }

    #[test]
    fn an_object_is_made_from_its_source_and_local_dependencies() {
        let tmp = tempfile::tempdir().unwrap();
        built(tmp.path());
        let kernel = [Path::new("/k")];
        assert_eq!(
            local_deps(tmp.path(), "pair_shim.o", &kernel).unwrap(),
            ["pair_shim.c", "pair_shim.h"],
            "the kernel's files are left out"
        );
        assert_eq!(local_deps(tmp.path(), "hello.o", &kernel).unwrap(), ["hello.rs"]);
        assert_eq!(local_deps(tmp.path(), "pair.o", &kernel), None, "a link has no dependency list");
        assert_eq!(local_deps(tmp.path(), "hello.o", &[Path::new("/elsewhere")]), None, "a file outside the kernel and the directory");
        let cmd = tmp.path().join(".pair_shim.o.cmd");
        let text = std::fs::read_to_string(&cmd).unwrap();
        std::fs::write(&cmd, text.replace("  pair_shim.h", "  ../other/pair_shim.h")).unwrap();
        assert_eq!(local_deps(tmp.path(), "pair_shim.o", &kernel), None, "a file reached by `..`");
    }

    #[test]
    fn commands_that_name_their_directory_are_found() {
        let tmp = tempfile::tempdir().unwrap();
        built(tmp.path());
        let plan = Plan::saved(tmp.path()).unwrap();
        assert!(!plan.mentions(tmp.path()));
        let cmd = tmp.path().join(".hello.o.cmd");
        let text = std::fs::read_to_string(&cmd).unwrap();
        std::fs::write(&cmd, text.replacen("make hello.o", &format!("make -I{} hello.o", tmp.path().display()), 1)).unwrap();
        assert!(Plan::saved(tmp.path()).unwrap().mentions(tmp.path()));
    }

    #[test]
    fn an_object_two_modules_share_is_compiled_once() {
        let tmp = tempfile::tempdir().unwrap();
        built(tmp.path());
        std::fs::write(tmp.path().join("hello.mod"), "./hello.o\n./pair_shim.o\n").unwrap();
        let plan = Plan::saved(tmp.path()).unwrap();
        assert_eq!(targets(&plan)[0], vec!["hello.o", "pair_shim.o", "pair_main.o"]);
    }

    #[test]
    fn a_new_directory_is_seeded_with_what_does_not_depend_on_the_sources() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("from"), tmp.path().join("to"));
        std::fs::create_dir_all(&from).unwrap();
        std::fs::create_dir_all(&to).unwrap();
        built(&from);
        std::fs::write(to.join("pair_main.o"), "an old object").unwrap();
        seed(&from, &to).unwrap();
        let mut copied: Vec<String> =
            std::fs::read_dir(&to).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        copied.sort();
        for name in [".pair.o.cmd", ".module-common.o", "pair.mod", "modules.order"] {
            assert!(copied.contains(&name.to_string()), "{name} in {copied:?}");
        }
        for name in ["hello.ko", "hello.o", "hello.rs", "pair_shim.h", "pair_main.o"] {
            assert!(!copied.contains(&name.to_string()), "{name} in {copied:?}");
        }
        assert_eq!(Plan::saved(&to), Plan::saved(&from));
    }
}
