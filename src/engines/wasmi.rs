//! `wasmi` — peer: the program as a WebAssembly module on the `wasmi` interpreter.
//!
//! **Compile** translates the AST to a Wasm module ([`super::wasm_module`]:
//! one exported function, `i64` parameters and locals), then has wasmi
//! validate it, translate it eagerly to its own register bytecode and
//! instantiate it in a fresh `Store` (eager, so no translation hides in the
//! first run). **Values** are Wasm `i64`s, `i64.add` wraps like ours;
//! **locals** are Wasm locals, which wasmi maps to registers of its frame.
//! **Control**: `While` is a Wasm `loop` with a `br_if` exit, a jump in wasmi.
//! **Execute** calls the exported function with the arguments.
//!
//! Trade-off: a production interpreter for a standard bytecode with a
//! register-based internal form; the price is Wasm's validation and
//! translation at compile time and a generic call interface per run.

use super::wasm_module::{self, EXPORT};
use crate::engine::{CompileError, Technique, Tier};
use crate::front::program::Program;
use std::cell::RefCell;
use wasmi::{CompilationMode, Config, Engine, Func, Linker, Module, Store, Val};

pub struct Wasmi;

/// An instantiated module: its store, its function, the bytes for `show`.
pub struct Code {
    store: RefCell<Store<()>>,
    func: Func,
    /// Reused parameter buffer, one `Val` per argument.
    params: RefCell<Vec<Val>>,
    bytes: Vec<u8>,
}

impl Technique for Wasmi {
    const NAME: &'static str = "wasmi";
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = "the program as a Wasm module on the wasmi interpreter";
    type Code = Code;

    fn supports(program: &Program) -> Result<(), String> {
        wasm_module::supports(program)
    }

    fn compile(program: &Program) -> Result<Code, CompileError> {
        let bytes = wasm_module::translate(program);
        let mut config = Config::default();
        config.compilation_mode(CompilationMode::Eager);
        let engine = Engine::new(&config);
        let fail = |e: wasmi::Error| CompileError(format!("wasmi rejected the module: {e}"));
        let module = Module::new(&engine, &bytes).map_err(fail)?;
        let mut store = Store::new(&engine, ());
        let instance = Linker::<()>::new(&engine)
            .instantiate_and_start(&mut store, &module)
            .map_err(fail)?;
        let func = instance
            .get_func(&store, EXPORT)
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
            panic!("wasmi: the program trapped: {e}");
        }
        match result[0] {
            Val::I64(v) => v,
            ref other => panic!("wasmi: the program returned {other:?}"),
        }
    }

    fn show(code: &Code) -> String {
        wasm_module::show(&code.bytes)
    }
}
