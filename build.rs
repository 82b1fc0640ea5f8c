//! Build script: records how the binary was built (for the benchmark
//! report's metadata), copies the engine modules' docs into a table for the
//! report, and builds the LuaJIT helper process when the `luajit` feature is
//! on.
//!
//! mlua links exactly one Lua per build and Lua 5.4 and LuaJIT export the
//! same C symbols, so LuaJIT runs in `vm-perf-luajit`, a separate crate with
//! its own workspace. We build it here with the same `cargo`, always in
//! release mode, into `<target>/vm-perf-luajit/`, and hand its absolute path
//! to the crate as `VM_PERF_LUAJIT_HELPER` (a run-time variable of the same
//! name overrides it).
//!
//! With the `copy_patch_jit` feature on an x86-64 Linux target, it also
//! compiles that engine's stencils (`stencils.rs` in its folder) with the
//! same rustc into an object file, and writes the table the engine copies
//! from (see `build_stencils`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    record_build();
    record_engine_docs();
    build_luajit_helper();
    build_stencils();
}

/// Every engine module's leading `//!` doc, for the HTML report's engine
/// sections (`src/harness/report/teach.rs`): the docs stay in the modules,
/// and this writes them into `$OUT_DIR/engine_docs.rs` as a table by module
/// name, which is the engine's name.
fn record_engine_docs() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // A folder is watched with everything in it, the family folders included.
    println!("cargo:rerun-if-changed=src/engines");
    let mut docs = Vec::new();
    // Engines sit in family folders (`threaded/`, `peers/`, ...); a folder
    // with a `mod.rs` is a module too (`template_jit/`, or the family).
    let mut dirs = vec![manifest_dir.join("src/engines")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).expect("engine modules");
        for entry in entries.map(|e| e.expect("engine module").path()) {
            // A technique is a file `name.rs` or a folder `name/mod.rs`.
            let (stem, path) = if entry.is_dir() {
                dirs.push(entry.clone());
                let Some(name) = entry.file_name().and_then(|s| s.to_str()) else {
                    continue;
                };
                (name.to_string(), entry.join("mod.rs"))
            } else {
                let (Some(stem), Some("rs")) = (
                    entry.file_stem().and_then(|s| s.to_str()),
                    entry.extension().and_then(|x| x.to_str()),
                ) else {
                    continue;
                };
                (stem.to_string(), entry.clone())
            };
            if stem == "mod" || !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("engine module is UTF-8");
            let doc: Vec<&str> = text
                .lines()
                .map_while(|l| l.strip_prefix("//!"))
                .map(|l| l.strip_prefix(' ').unwrap_or(l))
                .collect();
            docs.push((stem, doc.join("\n")));
        }
    }
    docs.sort();
    let mut out = String::from(
        "/// `(module, its leading //! doc)` for every module under src/engines/\n\
         /// (a folder module's from its mod.rs), written by build.rs.\n\
         pub static ENGINE_DOCS: &[(&str, &str)] = &[\n",
    );
    for (module, doc) in docs {
        out.push_str(&format!("    ({module:?}, {doc:?}),\n"));
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out_dir.join("engine_docs.rs"), out).expect("write engine_docs.rs");
}

/// How the binary was built, for the benchmark report.
fn record_build() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=VM_PERF_RUSTC={version}");
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=VM_PERF_PROFILE={profile}");
    let opt = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=VM_PERF_OPT_LEVEL={opt}");
    // Flags arrive separated by 0x1f; spaces are clearer in a report.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .unwrap_or_default()
        .replace('\x1f', " ");
    println!("cargo:rustc-env=VM_PERF_RUSTFLAGS={flags}");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=VM_PERF_TARGET={target}");
    let target_features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    println!("cargo:rustc-env=VM_PERF_TARGET_FEATURES={target_features}");
    // CARGO_FEATURE_<NAME> for each feature on, upper case with `_`.
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| Some(k.strip_prefix("CARGO_FEATURE_")?.to_lowercase()))
        .collect();
    features.sort();
    println!("cargo:rustc-env=VM_PERF_FEATURES={}", features.join(","));
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
}

/// The LuaJIT peer's helper process (see the module doc).
fn build_luajit_helper() {
    if env::var_os("CARGO_FEATURE_LUAJIT").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let helper = manifest_dir.join("vm-perf-luajit");
    for watched in ["Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo:rerun-if-changed={}", helper.join(watched).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = helper_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(helper.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's per-package variables must not leak into the inner
    // build; the jobserver (CARGO_MAKEFLAGS) and RUSTC are shared on purpose.
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("DEP_")
            || matches!(
                key,
                "CARGO_TARGET_DIR"
                    | "CARGO_ENCODED_RUSTFLAGS"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_CRATE_NAME"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    // A small test-thread stack (CI sets one) crashes rustc.
                    | "RUST_MIN_STACK"
            )
        {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build vm-perf-luajit");
    assert!(
        status.success(),
        "building the LuaJIT helper (vm-perf-luajit) failed"
    );
    let exe = target_dir
        .join("release")
        .join(format!("vm-perf-luajit{}", env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "the LuaJIT helper was not built at {}",
        exe.display()
    );
    println!("cargo:rustc-env=VM_PERF_LUAJIT_HELPER={}", exe.display());
}

/// `<target>/vm-perf-luajit`, where `<target>` holds the profile directory
/// whose `build/<pkg>/out` is `out_dir`; shared by every profile.
fn helper_target_dir(out_dir: &Path) -> PathBuf {
    match out_dir.ancestors().nth(4) {
        Some(target) => target.join("vm-perf-luajit"),
        None => out_dir.join("vm-perf-luajit"),
    }
}

/// `copy_patch_jit`'s stencils: `stencils.rs` compiled on its own by the
/// rustc cargo uses (`no_std`, opt-level 3, static relocation model and
/// small code model, so every hole is a plain 32-bit relocation against an
/// `extern` symbol), then read back with the `object` crate into
/// `$OUT_DIR/stencils.rs`: per stencil its bytes and its holes. Done here,
/// once, so that a compile only copies and patches; the engine never parses
/// an object file. Each stencil's final `jmp CONTINUE` is cut (the next
/// stencil follows it) and any other jump to `CONTINUE` is resolved to the
/// stencil's end, so the table's holes are operands and branch targets only.
fn build_stencils() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let table = out_dir.join("stencils.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if env::var_os("CARGO_FEATURE_COPY_PATCH_JIT").is_none() || arch != "x86_64" || os != "linux" {
        // The engine refuses every program there; an empty table.
        std::fs::write(&table, "pub static STENCILS: &[Stencil] = &[];\n").expect("write table");
        return;
    }
    let source = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("src/engines/native/copy_patch_jit/stencils.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-env-changed=RUSTC");
    let object_file = out_dir.join("stencils.o");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("set by cargo");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--crate-name",
            "stencils",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=3",
            "-C",
            "panic=abort",
            "-C",
            "codegen-units=1",
        ])
        .args(["-C", "relocation-model=static", "-C", "code-model=small"])
        .args(["-C", "debuginfo=0"])
        .args(["-C", "overflow-checks=off", "-C", "debug-assertions=off"])
        .arg("--emit")
        .arg(format!("obj={}", object_file.display()))
        .arg(&source)
        .env_remove("RUST_MIN_STACK")
        .status()
        .expect("cannot run rustc to compile the stencils");
    assert!(
        status.success(),
        "compiling copy_patch_jit's stencils failed"
    );
    let bytes = std::fs::read(&object_file).expect("read the stencils' object file");
    std::fs::write(&table, stencil_table(&bytes)).expect("write the stencil table");
}

/// The Rust table of the stencils in `object_file` (see `build_stencils`).
fn stencil_table(object_file: &[u8]) -> String {
    use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};
    use object::{SymbolKind, elf};
    let file = object::File::parse(object_file).expect("the stencils are an object file");
    let mut stencils = Vec::new();
    for symbol in file.symbols() {
        if symbol.kind() != SymbolKind::Text || !symbol.is_definition() || !symbol.is_global() {
            continue;
        }
        let name = symbol.name().expect("symbol name").to_string();
        let section = file
            .section_by_index(symbol.section_index().expect("defined in a section"))
            .expect("section");
        let data = section.data().expect("section data");
        let start = (symbol.address() - section.address()) as usize;
        let mut code = data[start..start + symbol.size() as usize].to_vec();
        let mut holes = Vec::new();
        for (offset, relocation) in section.relocations() {
            let Some(at) = (offset as usize)
                .checked_sub(start)
                .filter(|&at| at < code.len())
            else {
                continue;
            };
            let RelocationTarget::Symbol(target) = relocation.target() else {
                panic!("stencil `{name}`: a relocation to no symbol");
            };
            let target = file.symbol_by_index(target).expect("relocation symbol");
            let target = target.name().expect("symbol name");
            let RelocationFlags::Elf { r_type } = relocation.flags() else {
                panic!("stencil `{name}`: not an ELF relocation");
            };
            let reloc = match r_type {
                elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 => "Rel32",
                elf::R_X86_64_32 => "Abs32",
                elf::R_X86_64_32S => "Abs32S",
                other => panic!("stencil `{name}`: relocation type {other} against {target}"),
            };
            let symbol = match target {
                "CONTINUE" => "Continue",
                "TARGET" => "Target",
                "CALLEE" => "Callee",
                "FAIL" => "Fail",
                "IMM" => "Imm",
                "LO" => "Lo",
                "HI" => "Hi",
                "SRC" => "Src",
                "DST" => "Dst",
                "ARG" => "Arg",
                "ARGS" => "Args",
                "FRAME" => "Frame",
                "BACK" => "Back",
                "MASK" => "Mask",
                "LIMIT" => "Limit",
                // A call into the runtime or a constant in another section:
                // a stencil must be self-contained.
                other => panic!("stencil `{name}` refers to `{other}`, which is not a hole"),
            };
            holes.push((at, symbol, reloc, relocation.addend()));
        }
        holes.sort();
        // `jcc CONTINUE; jmp X` at the end (rustc's layout when both exits
        // are tail calls) becomes `jncc X`, and the next stencil follows.
        let n = code.len();
        if let [.., (a, "Continue", "Rel32", -4), (b, other, "Rel32", -4)] = holes[..]
            && n >= 11
            && (a, b) == (n - 9, n - 4)
            && code[n - 11] == 0x0f
            && code[n - 10] & 0xf0 == 0x80
            && code[n - 5] == 0xe9
        {
            code[n - 10] ^= 1; // the opposite condition
            holes.truncate(holes.len() - 2);
            holes.push((a, other, "Rel32", -4));
            code.truncate(n - 5);
        }
        // The final `jmp CONTINUE` goes: the next stencil is copied there.
        if let Some(&(at, "Continue", "Rel32", -4)) = holes.last()
            && at + 4 == code.len()
            && at >= 1
            && code[at - 1] == 0xe9
        {
            holes.pop();
            code.truncate(at - 1);
        }
        // Other exits to `CONTINUE` jump to where the next stencil starts.
        holes.retain(|&(at, symbol, reloc, addend)| {
            if symbol != "Continue" {
                return true;
            }
            assert_eq!(reloc, "Rel32", "stencil `{name}`: CONTINUE is a jump");
            let rel = code.len() as i64 + addend - at as i64;
            let rel = i32::try_from(rel).expect("a stencil is small");
            code[at..at + 4].copy_from_slice(&rel.to_le_bytes());
            false
        });
        stencils.push((name, code, holes));
    }
    stencils.sort();
    let mut out = String::from(
        "/// Every stencil, sorted by name: written by build.rs from the object\n\
         /// file rustc made of `stencils.rs`.\n\
         pub static STENCILS: &[Stencil] = &[\n",
    );
    for (name, code, holes) in stencils {
        out.push_str(&format!(
            "    Stencil {{\n        name: {name:?},\n        code: &{code:?},\n        holes: &["
        ));
        for (at, symbol, reloc, addend) in holes {
            out.push_str(&format!(
                "\n            Hole {{ at: {at}, symbol: Symbol::{symbol}, reloc: Reloc::{reloc}, addend: {addend} }},"
            ));
        }
        out.push_str("\n        ],\n    },\n");
    }
    out.push_str("];\n");
    out
}
