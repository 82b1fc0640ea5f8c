//! `lua54` — peer: the program as Lua source on PUC Lua 5.4 (vendored, via `mlua`).
//!
//! **Compile** translates the AST to Lua source ([`super::lua_source`]) and
//! loads the chunk once; the chunk returns the program as a Lua function.
//! That is Lua's own compile stage: lexing, parsing and register-bytecode
//! generation. The Lua state (no standard library) is made once per thread
//! and kept, as an embedder keeps one state for many chunks and as the
//! LuaJIT helper does: making a state is not part of a program's compile
//! stage, for either Lua. A dropped program's function is collected by
//! Lua's garbage collector.
//! **Values** are Lua 5.4 integers, which wrap on overflow exactly like ours;
//! **locals** are Lua locals (registers of Lua's VM), deep ones a spill table.
//! **Control**: `While` is a Lua `while` loop, so nothing grows per
//! iteration; `If` a Lua `if`; a guest function a Lua function and a call a
//! Lua call, which Lua 5.4 makes without native recursion, its frames on
//! Lua's own stack. The depth limit is a counter in the generated code
//! ([`super::lua_source`]), exact at every depth; Lua's stack (10⁶ slots)
//! holds 10,001 frames of any function of up to about 98 registers, and
//! for a program with larger ones the engine declares how many it holds
//! (`calls_held`) and is exempt from deeper runs.
//! **Execute** calls the function with the arguments as Lua integers.
//!
//! Trade-off: the reference embedded interpreter. Its register VM and
//! compiler are mature, but every call crosses the C API and every value is a
//! tagged `TValue`.
//!
//! **Unsafe code**: none of its own (`execute` is an `unsafe fn` only because
//! the trait method is); it rests on `mlua`'s safe API around Lua's C code.

use super::lua_source::{DEPTH_ERROR, Dialect, calls_held as lua_calls_held, check, translate};
use crate::engine::{CompileError, Technique, Tier};
use crate::front::program::Level;
use crate::front::program::Program;
use mlua::{Function, Lua, LuaOptions, StdLib, Value, Variadic};

pub struct Lua54;

/// A loaded program: its function, and the state it lives in.
pub struct Code {
    // `func` refers into `_lua`, which this handle keeps alive.
    func: Function,
    _lua: Lua,
    source: String,
}

thread_local! {
    /// This thread's Lua state, made on first use (see the module doc).
    static STATE: Result<Lua, String> =
        Lua::new_with(StdLib::NONE, LuaOptions::default()).map_err(|e| e.to_string());
}

impl Technique for Lua54 {
    const NAME: &'static str = "lua54";
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = "Lua source on PUC Lua 5.4 (vendored, via mlua)";
    const LEVEL: Level = Level::Two;
    type Code = Code;

    fn supports(program: &Program) -> Result<(), String> {
        check(program)
    }

    fn calls_held(program: &Program) -> Option<usize> {
        // LUAI_MAXSTACK slots; a frame's function slot besides its registers.
        lua_calls_held(program, 1_000_000, 2)
    }

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let source = translate(program, Dialect::Lua54)
            .map_err(CompileError)?
            .text;
        let lua = STATE
            .with(|state| state.clone())
            .map_err(|e| CompileError(format!("cannot make a Lua state: {e}")))?;
        let func = lua
            .load(&source)
            .set_name("=program")
            .call::<Function>(())
            .map_err(|e| CompileError(format!("Lua rejected the translation: {e}")))?;
        Ok(Code {
            func,
            _lua: lua,
            source,
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> Result<i64, crate::CallDepthExceeded> {
        // Lua takes every argument; the function reads those it names.
        match code
            .func
            .call::<Value>(Variadic::from_iter(args.iter().copied()))
        {
            Ok(Value::Integer(v)) => Ok(v),
            Ok(other) => panic!("lua54: the program returned {other:?}, not an integer"),
            Err(mlua::Error::RuntimeError(e)) if e.starts_with(DEPTH_ERROR) => {
                Err(crate::CallDepthExceeded)
            }
            Err(e) => panic!("lua54: the program failed: {e}"),
        }
    }

    fn show(code: &Code) -> String {
        code.source.clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_largest_supported_program_compiles_and_agrees() {
        let n = super::super::lua_source::MAX_NODES;
        use crate::front::program::Program;
        let program = Program::validate(crate::random::balanced::sized(n)).unwrap();
        let engine = crate::engine::engine("lua54").unwrap();
        assert!(engine.supports(&program).is_ok());
        let want = crate::reference::eval_budgeted(&program, &[3], u64::MAX).unwrap();
        assert_eq!(engine.compile(&program).unwrap().execute(&[3]), Ok(want));
        let bigger = Program::validate(crate::random::balanced::sized(n + 1)).unwrap();
        assert!(engine.supports(&bigger).is_err());
    }

    use crate::engine::engine;

    fn run(src: &str, args: &[i64]) -> i64 {
        let p = crate::front::compile_source("t.vm", src).unwrap();
        engine("lua54")
            .unwrap()
            .compile(&p)
            .unwrap()
            .execute(args)
            .unwrap()
    }

    #[test]
    fn integers_wrap_like_ours() {
        assert_eq!(run("9223372036854775807 + 1", &[]), i64::MIN);
        assert_eq!(run("-9223372036854775808", &[]), i64::MIN);
        assert_eq!(run("arg(0) + arg(0)", &[i64::MAX]), -2);
    }
}
