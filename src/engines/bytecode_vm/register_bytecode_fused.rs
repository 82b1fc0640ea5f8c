//! `register_bytecode_fused` — `register_bytecode` plus two superinstructions.
//!
//! Everything is `register_bytecode` (same compiler, same register file, same
//! `match` loop; see that module), compiled with [`Options::fuse`], which adds
//! exactly these fused shapes, each chosen by the shape of the tree or of the
//! code, never by a literal's value or a local's or argument's index:
//!
//! 1. **`Add(x, Arg(i))`** (neither side a literal) → `AddArg`:
//!    `dst = x + args[i]` reads the argument in place instead of first
//!    loading it into a temporary.
//! 2. **`While(Get(d), body)` whose body's last instruction adds a constant
//!    into `d`'s register** (e.g. the body ends in `Set(d, Add(Get(e),
//!    Litr(n)))`) → `AddImmJumpIfPos`: `dst = a + n; if dst > 0 goto body`,
//!    the counter update and the loop test as one dispatch. The plain test
//!    stays below it for the loop's entry.
//!
//! On `sum` this takes the loop from four dispatches per iteration to two.
//! Trade-off: two more instructions to decode and a peephole in the compiler,
//! for fewer dispatches exactly where loops spend them.
//!
//! **Unsafe** code rests on trusting its own compiler, as in
//! `register_bytecode`.

use super::register_bytecode::{self, Code, Options};
use crate::engine::technique;

technique! {
    RegisterBytecodeFused = "register_bytecode_fused", Fused, Code;
    "register_bytecode plus add-argument and add-and-branch superinstructions";
    compile: |program| register_bytecode::compile(program, Options { fuse: true }),
    execute: register_bytecode::run,
    show: Code::listing;
    fn variants() -> Vec<String> {
        Code::variants()
    }
    fn census(code: &Code) -> Vec<(String, usize)> {
        code.census()
    }
}

#[cfg(test)]
mod tests {
    crate::engines::conformance::conformance_tests!(super::RegisterBytecodeFused, extra: [REGISTER_TRICKY]);
}
