//! Replays every input the fuzzers ever found (`scripts/fuzz.sh` writes
//! them to `tests/fuzz_regressions/`) through the same differential oracle
//! the fuzz targets use, so a fixed finding stays fixed.

use vm_perf::reference::oracle::{Outcome, check_source};

#[test]
fn every_fuzz_finding_stays_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/fuzz_regressions exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "vm"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no findings in {}", dir.display());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        // Panics (with the engine's name) if an engine disagrees; a finding
        // that is no longer compared at all (rejected, too many arguments,
        // out of steps) would replay nothing, so it fails too.
        let outcome = check_source(&bytes);
        assert!(
            matches!(outcome, Outcome::Agreed(n) if n > 1),
            "{}: {outcome:?}: the finding is no longer compared",
            path.display()
        );
    }
}

#[test]
fn the_oracle_accepts_its_seed_corpus() {
    for w in vm_perf::workloads::WORKLOADS {
        let outcome = check_source(w.source.as_bytes());
        assert!(!matches!(outcome, Outcome::Rejected), "{}", w.name);
    }
}
