//! Structure-aware: a valid AST built from the fuzzer's bytes (see
//! `vm_perf_fuzz::generate`), then the same oracle as the text target, plus a
//! printer round trip (`parse(print(e)) == e`).
//!
//! With `VM_PERF_FUZZ_PRINT=FILE` in the environment, the generated program
//! is also written to FILE as text: `scripts/fuzz.sh` uses that to turn a
//! finding into a text regression test.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_perf::front::{parser, printer};
use vm_perf::Program;
use vm_perf::reference::oracle;

fuzz_target!(|data: &[u8]| {
    let Ok((expr, args)) = vm_perf_fuzz::generate::program(data) else {
        return;
    };
    let text = printer::print(&expr);
    if let Some(path) = std::env::var_os("VM_PERF_FUZZ_PRINT") {
        let header = format!(
            "// args: {}\n",
            args.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        std::fs::write(path, header + &text + "\n").expect("cannot write VM_PERF_FUZZ_PRINT");
    }
    let Ok(program) = Program::validate(expr.clone()) else {
        return;
    };
    let reparsed = parser::parse(&text)
        .unwrap_or_else(|e| panic!("printed program does not parse: {e}\n{text}"));
    assert!(
        reparsed.main == expr && reparsed.functions.is_empty(),
        "print/parse round trip changed the program:\n{text}"
    );
    oracle::check_program(&program, &args);
});
