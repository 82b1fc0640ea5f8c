//! `wasmtime` — peer (cargo feature `wasmtime`, off by default): the same
//! Wasm module as `wasmi`, compiled to machine code by Cranelift.
//!
//! **Compile** translates the AST to a Wasm module ([`super::wasm_module`]),
//! has wasmtime validate it and compile it with Cranelift to native code, and
//! instantiates it in a fresh `Store`. **Values** are `i64`s in machine
//! registers; **locals** are Cranelift SSA values, spilled by its register
//! allocator; **control**: `While` becomes a native loop. **Execute** calls
//! the exported function through wasmtime's generic call interface.
//!
//! Trade-off: an optimising compiler, not an interpreter: the slowest compile
//! stage in the table and code close to native. Off by default because it
//! adds several minutes to a clean build.

use super::wasm_module::{self, EXPORT};
use crate::engine::{CompileError, Technique, Tier};
use crate::front::program::Program;
use std::cell::RefCell;
use wasmtime::{Engine, Func, Linker, Module, Store, Val};

pub struct Wasmtime;

/// An instantiated module: its store, its function, the bytes for `show`.
pub struct Code {
    store: RefCell<Store<()>>,
    func: Func,
    params: RefCell<Vec<Val>>,
    bytes: Vec<u8>,
}

impl Technique for Wasmtime {
    const NAME: &'static str = "wasmtime";
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = "the program as a Wasm module, Cranelift-compiled by wasmtime";
    type Code = Code;

    fn supports(program: &Program) -> Result<(), String> {
        wasm_module::supports(program)
    }

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let bytes = wasm_module::translate(program);
        let engine = Engine::default();
        let fail = |e: wasmtime::Error| CompileError(format!("wasmtime rejected the module: {e}"));
        let module = Module::new(&engine, &bytes).map_err(fail)?;
        let mut store = Store::new(&engine, ());
        let instance = Linker::<()>::new(&engine)
            .instantiate(&mut store, &module)
            .map_err(fail)?;
        let func = instance
            .get_func(&mut store, EXPORT)
            .ok_or_else(|| CompileError("the module lost its export".into()))?;
        let params = vec![Val::I64(0); program.arg_count()];
        Ok(Code {
            store: RefCell::new(store),
            func,
            params: RefCell::new(params),
            bytes,
        })
    }

    unsafe fn execute(code: &Code, args: &[i64]) -> i64 {
        let mut params = code.params.borrow_mut();
        for (p, a) in params.iter_mut().zip(args) {
            *p = Val::I64(*a);
        }
        let mut result = [Val::I64(0)];
        let mut store = code.store.borrow_mut();
        if let Err(e) = code.func.call(&mut *store, &params, &mut result) {
            panic!("wasmtime: the program trapped: {e}");
        }
        match result[0] {
            Val::I64(v) => v,
            ref other => panic!("wasmtime: the program returned {other:?}"),
        }
    }

    fn show(code: &Code) -> String {
        wasm_module::show(&code.bytes)
    }
}
