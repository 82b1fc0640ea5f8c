//! The one way the integration tests run the real `vm-perf` binary.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `vm-perf ARGS` in the crate's folder (so `workloads/sum.vm` names
/// the workload), `stdin` piped in, and waits for it.
pub fn vm_perf<I, S>(args: I, stdin: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    vm_perf_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, stdin)
}

/// Runs `vm-perf ARGS` in `dir` with `stdin` on its standard input and
/// waits for it, capturing stdout and stderr. The input is written from its
/// own thread and a failed write is ignored: a child that exits without
/// reading all of it (or any) must neither deadlock nor fail the test here;
/// the test judges its output.
pub fn vm_perf_in<I, S>(dir: &Path, args: I, stdin: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_vm-perf"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}
