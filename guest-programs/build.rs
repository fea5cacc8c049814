// SPDX-License-Identifier: GPL-2.0

//! Generates the program table of `wbtools`, the guest's one static binary
//! that holds every program of `src/bin/` (as busybox holds its applets):
//! each `src/bin/NAME.rs` becomes a module of it, run when it is called as
//! `NAME`. One binary instead of one per program keeps the guest's
//! initramfs small (each static program carries its own copy of the
//! standard library and the C library, 1.3 MiB).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let bin_dir = Path::new(&manifest).join("src/bin");
    println!("cargo:rerun-if-changed={}", bin_dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&bin_dir)
        .expect("guest-programs/src/bin is readable")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().to_string_lossy().into_owned();
            Some(name.strip_suffix(".rs")?.to_string())
        })
        .collect();
    names.sort();
    let mut table = String::new();
    for name in &names {
        let path = bin_dir.join(format!("{name}.rs"));
        println!("cargo:rerun-if-changed={}", path.display());
        let source = std::fs::read_to_string(&path).expect("a program's source is readable");
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            panic!("guest-programs/src/bin/{name}.rs: a program's name is letters, digits, `-` and `_`");
        }
        if !source.lines().any(|l| l.starts_with("pub(crate) fn main(") || l.starts_with("pub fn main(")) {
            panic!(
                "guest-programs/src/bin/{name}.rs: write its main as `pub(crate) fn main()`, so that wbtools, \
                 the guest's one binary of every program, can call it"
            );
        }
        let module = name.replace('-', "_");
        writeln!(table, "#[path = {:?}]\nmod {module};", path.display().to_string()).unwrap();
    }
    for name in &names {
        // A program's main returns `()` or anything else `Termination` takes.
        let module = name.replace('-', "_");
        writeln!(
            table,
            "#[allow(clippy::unit_arg)]\nfn run_{module}() -> std::process::ExitCode {{\n    std::process::Termination::report({module}::main())\n}}"
        )
        .unwrap();
    }
    table.push_str("\n/// Every program: its name and how to run it.\nconst PROGRAMS: &[(&str, Program)] = &[\n");
    for name in &names {
        writeln!(table, "    ({name:?}, run_{}),", name.replace('-', "_")).unwrap();
    }
    table.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("programs.rs");
    std::fs::write(out, table).expect("OUT_DIR is writable");
}
