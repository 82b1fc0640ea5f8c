//! AST → WebAssembly module, shared by the Wasm peers (`wasmi`, `wasmtime`).
//!
//! The module has one exported function, `run`, with one `i64` parameter per
//! argument and one `i64` result. `Let` level `k` is the Wasm local
//! `arg_count + k`, so the function declares exactly `max_locals` extra
//! `i64` locals. Wasm is a stack machine with expression-shaped code, so the
//! translation is direct and keeps strict left-to-right order for free:
//! `Add` evaluates `a`, then `b` (which may store into locals), then
//! `i64.add` (which wraps, like ours). `While` is `block { loop { cond;
//! i64.const 0; i64.le_s; br_if 1; body; br 0 } }`. A node whose value is
//! unused is translated for its effects only, so no `drop` is needed.
//!
//! [`wasm_peer!`] is the rest the peers share: their `Code` and `Technique`
//! impl, which differ only in the runtime crate's name and setup. It has no
//! unsafe code (`execute` is an `unsafe fn` only because the trait method
//! is): the runtime validates the module and runs it behind a safe API.

use crate::front::ast::Expr;
use crate::front::program::Program;
use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, InstructionSink,
    Module, TypeSection, ValType,
};

/// The most parameters a Wasm function may have (wasmparser's limit).
pub const MAX_PARAMS: usize = 1000;

/// The exported function's name.
pub const EXPORT: &str = "run";

/// Whether the module can be built (parameter count within Wasm's limit).
pub fn supports(program: &Program) -> Result<(), String> {
    if program.arg_count() > MAX_PARAMS {
        return Err(format!(
            "{} arguments; a Wasm function takes at most {MAX_PARAMS} parameters",
            program.arg_count()
        ));
    }
    Ok(())
}

/// The encoded module.
pub fn translate(program: &Program) -> Vec<u8> {
    let mut types = TypeSection::new();
    types
        .ty()
        .function(vec![ValType::I64; program.arg_count()], [ValType::I64]);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut exports = ExportSection::new();
    exports.export(EXPORT, ExportKind::Func, 0);
    let mut body = Function::new([(program.max_locals() as u32, ValType::I64)]);
    let mut g = Gen {
        sink: body.instructions(),
        base: program.arg_count() as u32,
        scope: 0,
    };
    g.value(program.expr());
    g.sink.end();
    let mut code = CodeSection::new();
    code.function(&body);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&exports)
        .section(&code);
    module.finish()
}

/// The module as WebAssembly text (`vm-perf show`).
pub fn show(bytes: &[u8]) -> String {
    wasmprinter::print_bytes(bytes).unwrap_or_else(|e| format!(";; cannot print the module: {e}\n"))
}

/// Defines a Wasm peer's `Code` and its [`Technique`](crate::engine::Technique)
/// impl, for a runtime crate whose API uses wasmi's and wasmtime's names
/// (`Engine`, `Module`, `Store`, `Linker`, `Func`, `Val`, `Error`). The
/// engine is named like the crate. What differs between the runtimes is
/// given by the caller: how to build the `Engine` and which `Linker` method
/// instantiates the module.
macro_rules! wasm_peer {
    (
        $peer:ident: $rt:ident,
        summary: $summary:expr,
        engine: $engine:expr,
        instantiate: $instantiate:ident $(,)?
    ) => {
        /// An instantiated module: its store, its function, the bytes for `show`.
        pub struct Code {
            store: ::std::cell::RefCell<::$rt::Store<()>>,
            func: ::$rt::Func,
            /// Reused parameter buffer, one `Val` per argument.
            params: ::std::cell::RefCell<Vec<::$rt::Val>>,
            bytes: Vec<u8>,
        }

        impl $crate::engine::Technique for $peer {
            const NAME: &'static str = stringify!($rt);
            const TIER: $crate::engine::Tier = $crate::engine::Tier::Peer;
            const SUMMARY: &'static str = $summary;
            type Code = Code;

            fn supports(program: &$crate::front::program::Program) -> Result<(), String> {
                $crate::engines::peers::wasm_module::supports(program)
            }

            fn compile(
                program: &$crate::front::program::Program,
            ) -> Result<Code, $crate::engine::CompileError> {
                use $crate::engine::CompileError;
                let bytes = $crate::engines::peers::wasm_module::translate(program);
                let engine: ::$rt::Engine = $engine;
                let fail = |e: ::$rt::Error| {
                    CompileError(format!("{} rejected the module: {e}", stringify!($rt)))
                };
                let module = ::$rt::Module::new(&engine, &bytes).map_err(fail)?;
                let mut store = ::$rt::Store::new(&engine, ());
                let instance = ::$rt::Linker::<()>::new(&engine)
                    .$instantiate(&mut store, &module)
                    .map_err(fail)?;
                let func = instance
                    .get_func(&mut store, $crate::engines::peers::wasm_module::EXPORT)
                    .ok_or_else(|| CompileError("the module lost its export".into()))?;
                let params = vec![::$rt::Val::I64(0); program.arg_count()];
                Ok(Code {
                    store: ::std::cell::RefCell::new(store),
                    func,
                    params: ::std::cell::RefCell::new(params),
                    bytes,
                })
            }

            unsafe fn execute(code: &Code, args: &[i64]) -> Result<i64, $crate::CallDepthExceeded> {
                let mut params = code.params.borrow_mut();
                for (p, a) in params.iter_mut().zip(args) {
                    *p = ::$rt::Val::I64(*a);
                }
                let mut result = [::$rt::Val::I64(0)];
                let mut store = code.store.borrow_mut();
                if let Err(e) = code.func.call(&mut *store, &params, &mut result) {
                    panic!("{}: the program trapped: {e}", stringify!($rt));
                }
                match result[0] {
                    ::$rt::Val::I64(v) => Ok(v),
                    ref other => panic!("{}: the program returned {other:?}", stringify!($rt)),
                }
            }

            fn show(code: &Code) -> String {
                $crate::engines::peers::wasm_module::show(&code.bytes)
            }
        }
    };
}
pub(crate) use wasm_peer;

struct Gen<'a> {
    sink: InstructionSink<'a>,
    /// Index of the first `Let` local (after the parameters).
    base: u32,
    /// `Let`s in scope.
    scope: u32,
}

impl Gen<'_> {
    fn local(&self, depth: usize) -> u32 {
        self.base + self.scope - 1 - depth as u32
    }

    /// Leaves `e`'s value on the operand stack.
    fn value(&mut self, e: &Expr) {
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(n) => {
                self.sink.i64_const(*n);
            }
            Expr::Arg(i) => {
                self.sink.local_get(*i as u32);
            }
            Expr::Get(d) => {
                self.sink.local_get(self.local(*d));
            }
            Expr::Add(a, b) => {
                self.value(a);
                self.value(b);
                self.sink.i64_add();
            }
            Expr::Let(init, body) => self.let_(init, body, Self::value),
            Expr::Then(a, b) => {
                self.effect(a);
                self.value(b);
            }
            Expr::Set(..) | Expr::While(..) => {
                self.effect(e);
                self.sink.i64_const(0);
            }
        }
    }

    /// A `Let`: `init` into the next local, then `body` (for its value or
    /// its effects) with that local in scope.
    fn let_(&mut self, init: &Expr, body: &Expr, body_as: fn(&mut Self, &Expr)) {
        self.value(init);
        self.sink.local_set(self.base + self.scope);
        self.scope += 1;
        body_as(self, body);
        self.scope -= 1;
    }

    /// Runs `e` for its effects, leaving the operand stack as it was.
    fn effect(&mut self, e: &Expr) {
        match e {
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..) => {
                unreachable!("Level 2 is refused before compile")
            }
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
            Expr::Add(a, b) | Expr::Then(a, b) => {
                self.effect(a);
                self.effect(b);
            }
            Expr::Let(init, body) => self.let_(init, body, Self::effect),
            Expr::Set(d, v) => {
                self.value(v);
                self.sink.local_set(self.local(*d));
            }
            Expr::While(c, body) => {
                self.sink.block(BlockType::Empty);
                self.sink.loop_(BlockType::Empty);
                self.value(c);
                self.sink.i64_const(0);
                self.sink.i64_le_s();
                self.sink.br_if(1);
                self.effect(body);
                self.sink.br(0);
                self.sink.end();
                self.sink.end();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_prints_as_a_loop() {
        let w = crate::workloads::workload("sum").unwrap();
        let text = show(&translate(&w.program().unwrap()));
        assert!(text.contains("(export \"run\""), "{text}");
        assert!(text.contains("loop"), "{text}");
        assert!(text.contains("i64.add"), "{text}");
    }
}
