//! The peers through the command line: listed when built, shown in their
//! own language, checked within their exact range, refused beyond it.

mod common;

fn vm_perf(args: &[&str]) -> (bool, String, String) {
    let out = common::vm_perf(args, b"");
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

/// `vm-perf show --engine ENGINE` of `sum` prints text that starts with
/// `start` and contains `inner`.
#[cfg(any(feature = "lua54", feature = "wasmi"))]
fn shows_sum(engine: &str, start: &str, inner: &str) {
    let (ok, stdout, stderr) = vm_perf(&["show", "--engine", engine, "workloads/sum.vm"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with(start), "{stdout}");
    assert!(stdout.contains(inner), "{stdout}");
}

#[cfg(feature = "lua54")]
#[test]
fn show_prints_lua_source() {
    shows_sum("lua54", "return function(a0, a1)", "while l1 > 0 do");
}

#[cfg(feature = "wasmi")]
#[test]
fn show_prints_wasm_text() {
    shows_sum("wasmi", "(module", "i64.add");
}

#[test]
fn check_marks_out_of_range_peers_and_prints_every_value() {
    use vm_perf::reference::{Exemption, held_to_walker, magnitude};
    use vm_perf::workloads::WORKLOADS;
    let (ok, stdout, stderr) = vm_perf(&["check"]);
    assert!(ok, "{stdout}\n{stderr}");
    let mut lines = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let header = lines.next().unwrap();
    let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
    assert_eq!(header[1..], names[..]);
    let rows: Vec<Vec<&str>> = lines.collect();
    assert_eq!(rows.len(), vm_perf::engines().len());
    let mut inexact = 0;
    for (engine, row) in vm_perf::engines().iter().zip(&rows) {
        assert_eq!(row[0], engine.name());
        for (w, cell) in WORKLOADS.iter().zip(&row[1..]) {
            let program = w.program().unwrap();
            let want = match held_to_walker(*engine, &program, magnitude(&program, &w.args())) {
                Ok(()) => w.expected().to_string(),
                Err(Exemption::Inexact { .. }) => "inexact".to_string(),
                Err(Exemption::Unsupported(_)) => "unsupported".to_string(),
            };
            inexact += usize::from(want == "inexact");
            assert_eq!(*cell, want, "{} on {}", engine.name(), w.name);
        }
    }
    // LuaJIT's doubles leave their exact range on some workloads.
    assert_eq!(inexact > 0, cfg!(feature = "luajit"), "{stdout}");
}

#[cfg(feature = "luajit")]
#[test]
fn run_refuses_a_value_beyond_luajits_exact_range() {
    // 2⁵³ + 1 is not a double: LuaJIT would print 9007199254740992.
    let file = std::env::temp_dir().join(format!("vm-perf-inexact-{}.vm", std::process::id()));
    std::fs::write(&file, "arg(0) + 1").unwrap();
    let file = file.to_str().unwrap();
    for engine in ["luajit", "luajit_interp"] {
        let (ok, stdout, stderr) = vm_perf(&["run", "--engine", engine, file, "9007199254740992"]);
        assert!(!ok, "{engine}: {stdout}");
        assert_eq!(stdout, "", "{engine}");
        assert!(
            stderr.starts_with(&format!(
                "vm-perf: error: engine `{engine}` cannot give this program's exact value: \
                 values up to 9007199254740993 exceed the engine's exact range 9007199254740992"
            )),
            "{stderr}"
        );
        let status =
            common::vm_perf(["run", "--engine", engine, file, "9007199254740992"], b"").status;
        assert_eq!(status.code(), Some(1), "{engine}");
        // Inside the range the same program runs.
        let (ok, stdout, stderr) = vm_perf(&["run", "--engine", engine, file, "41"]);
        assert!(ok, "{stderr}");
        assert_eq!(stdout, "42\n");
    }
    let (ok, stdout, _) = vm_perf(&["run", file, "9007199254740992"]);
    assert!(ok);
    assert_eq!(stdout, "9007199254740993\n");
    std::fs::remove_file(file).unwrap();
}
