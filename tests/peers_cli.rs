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
    use vm_perf::reference::{Exemption, form_for, reach};
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
    let mut too_deep = 0;
    for (engine, row) in vm_perf::engines().iter().zip(&rows) {
        assert_eq!(row[0], engine.name());
        // "too deep" is two words.
        let cells = row[1..].join(" ").replace("too deep", "too_deep");
        let cells: Vec<&str> = cells.split(' ').collect();
        for (w, cell) in WORKLOADS.iter().zip(&cells) {
            let program = w.program().unwrap();
            let reached = reach(&program, &w.args());
            let want = match form_for(*engine, &program, reached) {
                Ok(_) => w.expected().to_string(),
                Err(Exemption::Inexact { .. }) => "inexact".to_string(),
                Err(Exemption::TooDeep { .. }) => "too_deep".to_string(),
                Err(Exemption::Unsupported(_)) => "unsupported".to_string(),
            };
            assert_ne!(want, "inexact", "{} on {}", engine.name(), w.name);
            // wasmtime's default stack (an opt-in peer) is the one that
            // holds fewer calls than a public workload makes.
            too_deep += usize::from(want == "too_deep" && engine.name() != "wasmtime");
            assert_eq!(*cell, want, "{} on {}", engine.name(), w.name);
        }
    }
    // LuaJIT's wide form is exact everywhere, and its stack holds the
    // calls of every public workload.
    assert_eq!(too_deep, 0, "{stdout}");
}

#[cfg(feature = "luajit")]
#[test]
fn run_takes_luajits_wide_form_beyond_its_doubles() {
    // 2⁵³ + 1 is not a double: LuaJIT's doubles would print 9007199254740992.
    let file = std::env::temp_dir().join(format!("vm-perf-inexact-{}.vm", std::process::id()));
    std::fs::write(&file, "arg(0) + 1").unwrap();
    let file = file.to_str().unwrap();
    for engine in ["luajit", "luajit_interp"] {
        for (arg, value) in [("9007199254740992", "9007199254740993\n"), ("41", "42\n")] {
            let (ok, stdout, stderr) = vm_perf(&["run", "--engine", engine, file, arg]);
            assert!(ok, "{engine}: {stderr}");
            assert_eq!(stdout, value, "{engine}");
        }
    }
    std::fs::remove_file(file).unwrap();
}

/// The language document's example on every peer, and the depth limit on
/// the command line: 10,000 active calls succeed, 10,001 fail with the
/// run's error, and a peer whose stack holds fewer refuses saying why.
#[test]
fn level_two_on_the_command_line() {
    let dir = std::env::temp_dir();
    let fib = dir.join(format!("vm-perf-fib-{}.vm", std::process::id()));
    std::fs::write(
        &fib,
        "fn fib(n) {\n    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }\n}\nfib(arg(0))\n",
    )
    .unwrap();
    let down = dir.join(format!("vm-perf-down-{}.vm", std::process::id()));
    std::fs::write(
        &down,
        "fn d(n) { if 0 < n { d(n - 1) + 1 } else { 0 } } d(arg(0))",
    )
    .unwrap();
    // Its call sits above ten locals: LuaJIT's frames lie far apart.
    let high = dir.join(format!("vm-perf-high-{}.vm", std::process::id()));
    let lets: String = (0..10).map(|i| format!("let v{i} = n + {i}; ")).collect();
    std::fs::write(
        &high,
        format!("fn d(n) {{ {lets}if 0 < n {{ v9 + d(n - 1) }} else {{ 0 }} }} d(arg(0))"),
    )
    .unwrap();
    let (fib, down, high) = (
        fib.to_str().unwrap(),
        down.to_str().unwrap(),
        high.to_str().unwrap(),
    );
    let peers: Vec<_> = vm_perf::engines()
        .iter()
        .filter(|e| e.tier() == vm_perf::engine::Tier::Peer)
        .map(|e| e.name())
        .collect();
    for engine in &peers {
        let (ok, stdout, stderr) = vm_perf(&["run", "--engine", engine, fib, "20"]);
        assert!(ok, "{engine}: {stderr}");
        assert_eq!(stdout, "6765\n", "{engine}");
        // LuaJIT holds every call of `down`, not of `high`; wasmtime's
        // default stack neither.
        let holds_all = *engine != "wasmtime";
        let (ok, stdout, stderr) = vm_perf(&["run", "--engine", engine, down, "9999"]);
        if holds_all {
            assert!(ok, "{engine}: {stderr}");
            assert_eq!(stdout, "9999\n", "{engine}");
        }
        let (ok, stdout, stderr) = vm_perf(&["run", "--engine", engine, high, "9999"]);
        if !engine.starts_with("luajit") && holds_all {
            assert!(ok, "{engine}: {stderr}");
            // d(n) = Σ (k + 9) for k = 1..n
            assert_eq!(stdout, "50084991\n", "{engine}");
        } else {
            assert!(!ok, "{engine}");
            assert!(
                stderr.contains("the engine's own stack holds"),
                "{engine}: {stderr}"
            );
        }
        let (ok, stdout, stderr) = vm_perf(&["run", "--engine", engine, down, "10000"]);
        assert!(!ok, "{engine}");
        assert_eq!(stdout, "", "{engine}");
        if holds_all {
            let first = stderr.lines().next().unwrap_or("");
            assert!(first.contains("call depth exceeded"), "{engine}: {stderr}");
        }
    }
    let (ok, stdout, stderr) = vm_perf(&["run", "--engine", "all", down, "10000"]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr
            .lines()
            .next()
            .unwrap()
            .contains("call depth exceeded"),
        "{stderr}"
    );
    std::fs::remove_file(fib).unwrap();
    std::fs::remove_file(down).unwrap();
    std::fs::remove_file(high).unwrap();
}
