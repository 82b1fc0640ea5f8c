//! Replays every program that once exposed a wrong value through the same
//! differential oracle the fuzz targets use, so a fixed bug stays fixed:
//! `tests/regressions/` holds the ones found by hand (each with the
//! `// expect:` value walker must give), `tests/fuzz_regressions/` every
//! input the fuzzers found (`scripts/fuzz.sh` writes them there).

use std::path::{Path, PathBuf};
use vm_perf::reference::oracle::{Outcome, check_source};

fn programs_in(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "vm"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no programs in {}", dir.display());
    files
}

/// Panics (with the engine's name) if an engine disagrees with walker; a
/// program that is no longer compared at all (rejected, too many arguments,
/// out of steps) would replay nothing, so it fails too.
fn replay(path: &Path) {
    let outcome = check_source(&std::fs::read(path).unwrap());
    assert!(
        matches!(outcome, Outcome::Agreed(n) if n > 1),
        "{}: {outcome:?}: the program is no longer compared",
        path.display()
    );
}

#[test]
fn every_fuzz_finding_stays_fixed() {
    for path in programs_in("tests/fuzz_regressions") {
        replay(&path);
    }
}

#[test]
fn every_wrong_value_found_by_hand_stays_fixed() {
    for path in programs_in("tests/regressions") {
        let text = std::fs::read_to_string(&path).unwrap();
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{}: no `{key}` header", path.display()))
                .trim()
                .to_owned()
        };
        let program = vm_perf::front::compile_source("regression", &text).unwrap();
        let args: Vec<i64> = header("// args:")
            .split_whitespace()
            .map(|a| a.parse().unwrap())
            .collect();
        let walker = vm_perf::engine("walker")
            .unwrap()
            .compile(&program)
            .unwrap();
        let want: i64 = header("// expect:").parse().unwrap();
        assert_eq!(walker.execute(&args).unwrap(), want, "{}", path.display());
        replay(&path);
    }
}

#[test]
fn the_oracle_accepts_its_seed_corpus() {
    for w in vm_perf::workloads::WORKLOADS {
        let outcome = check_source(w.source.as_bytes());
        assert!(!matches!(outcome, Outcome::Rejected), "{}", w.name);
    }
}
