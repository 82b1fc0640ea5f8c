//! Raw text: decode → parse → validate → budgeted walker → every engine
//! that supports the program must agree (see `vm_perf::reference::oracle`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vm_perf::reference::oracle::check_source(data);
});
