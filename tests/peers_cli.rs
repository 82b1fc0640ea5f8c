//! The peers through the command line, as the "done when" states it.

use std::process::Command;

fn vm_perf(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vm-perf"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("vm-perf runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(feature = "luajit")]
#[test]
fn luajit_interp_runs_sum() {
    let (ok, stdout, stderr) = vm_perf(&[
        "run",
        "--engine",
        "luajit_interp",
        "workloads/sum.vm",
        "10000",
        "13",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "130000\n");
}

#[test]
fn list_includes_the_peers() {
    let (ok, stdout, _) = vm_perf(&["list"]);
    assert!(ok);
    let names: Vec<&str> = stdout.lines().collect();
    for (name, on) in [
        ("lua54", cfg!(feature = "lua54")),
        ("luajit", cfg!(feature = "luajit")),
        ("luajit_interp", cfg!(feature = "luajit")),
        ("wasmi", cfg!(feature = "wasmi")),
        ("wasmtime", cfg!(feature = "wasmtime")),
    ] {
        assert_eq!(names.contains(&name), on, "{name} in {names:?}");
    }
}

#[cfg(feature = "lua54")]
#[test]
fn show_prints_lua_source() {
    let (ok, stdout, stderr) = vm_perf(&["show", "--engine", "lua54", "workloads/sum.vm"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("return function(a0, a1)"), "{stdout}");
    assert!(stdout.contains("while l1 > 0 do"), "{stdout}");
}

#[cfg(feature = "wasmi")]
#[test]
fn show_prints_wasm_text() {
    let (ok, stdout, stderr) = vm_perf(&["show", "--engine", "wasmi", "workloads/sum.vm"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("(module"), "{stdout}");
    assert!(stdout.contains("i64.add"), "{stdout}");
}

#[test]
fn check_passes_with_peers_out_of_range_marked() {
    let (ok, stdout, stderr) = vm_perf(&["check"]);
    assert!(ok, "{stdout}\n{stderr}");
}
