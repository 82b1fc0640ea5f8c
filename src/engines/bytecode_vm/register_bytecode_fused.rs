//! `register_bytecode_fused` — `register_bytecode` plus four superinstructions.
//!
//! Everything is `register_bytecode` (same compiler, same register file, same
//! `match` loop; see that module), compiled with [`Options::fuse`], which adds
//! exactly these fused shapes, each chosen by the shape of the tree or of
//! the code, never by a literal's value, a local's or argument's index, or
//! a function:
//!
//! 1. **`Add(x, Arg(i))`** (neither side a literal) → `AddArg`:
//!    `dst = x + args[i]` reads the argument in place instead of first
//!    loading it into a temporary.
//! 2. **`While(Get(d), body)` whose body's last instruction adds a constant
//!    into `d`'s register** (e.g. the body ends in `Set(d, Add(Get(e),
//!    Litr(n)))`) → `AddImmJumpIfPos`: `dst = a + n; if dst > 0 goto body`,
//!    the counter update and the loop test as one dispatch. The plain test
//!    stays below it for the loop's entry.
//! 3. **A call whose last argument is `x ± n` (a literal), with its result
//!    in the first register of the callee's window** → `AddImmCall`: the
//!    argument's add and the call as one dispatch (`fib(n - 1)`). The
//!    callee's entry, window size and arity come from a table indexed by
//!    the function, so the instruction stays as small as the others; any
//!    function and any arity of at least one.
//! 4. **A function body (or a branch of its tail `if`) ending in `a + b`**
//!    with neither a literal → `AddRet`: `ret a + b`, the sum and the
//!    return as one dispatch. Main's `Return` is never fused, so a Level-1
//!    program compiles as before.
//!
//! Shapes 3 and 4 merge an instruction into the one before only when no
//! jump lands between them. On `sum` shapes 1 and 2 take the loop from
//! four dispatches per iteration to two; on `fib` shapes 3 and 4 take a
//! call that recurses from seven dispatches to four.
//!
//! Trade-off: more instructions to decode and peepholes in the compiler,
//! for fewer dispatches exactly where loops and calls spend them.
//!
//! **Unsafe** code rests on trusting its own compiler, as in
//! `register_bytecode`.

use super::register_bytecode::{self, Code, Options};
use crate::engine::technique;
use crate::front::program::Level;

technique! {
    RegisterBytecodeFused = "register_bytecode_fused", Fused, Code;
    "register_bytecode plus add-argument, add-and-branch, add-and-call and add-and-return superinstructions";
    compile: |program| register_bytecode::compile(program, Options { fuse: true }),
    try_execute: register_bytecode::run,
    show: Code::listing;
    const LEVEL: Level = Level::Two;
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

    /// The loops on `<` that the random programs never write.
    #[test]
    fn loops_on_less_than_agree_with_walker() {
        crate::reference::conformance::agrees_with_walker::<super::RegisterBytecodeFused>(&[
            super::register_bytecode::WHILE_LT,
        ]);
    }
}
