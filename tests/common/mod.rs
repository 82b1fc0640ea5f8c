//! What the integration tests that drive the real binary share.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A command for the `vm-perf` binary this build made.
pub fn vm_perf() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vm-perf"))
}

/// Runs `command` with `stdin` on its standard input and waits for it,
/// capturing stdout and stderr. The input is written from its own thread
/// and a failed write is ignored: a child that exits without reading all of
/// it (or any) must neither deadlock nor fail the test here; the test
/// judges its output.
pub fn output_with_stdin(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
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
