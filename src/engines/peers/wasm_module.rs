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
//! Level 2: each guest function is a Wasm function (index `k` for function
//! `k`, `run` after them) whose parameters are its first `Let` levels;
//! a call is `call`, `If` is `if`/`else` with an `i64` result where its
//! value is needed, `Sub` is `i64.sub`, and `Lt` is `i64.lt_s`, widened to
//! 1/0 with `i64.extend_i32_u` where a value is needed (a loop or branch
//! condition uses the comparison itself). The run's arguments that
//! functions read are copied by `run` into globals. The depth limit is a
//! counter in a mutable `i32` global: each function checks it on entry
//! (`unreachable` at [`crate::MAX_CALLS`], the module's only trap), raises
//! it, and lowers it before it returns; `run` zeroes it, so a run that
//! trapped leaves nothing behind.
//!
//! [`wasm_peer!`] is the rest the peers share: their `Code` and `Technique`
//! impl, which differ only in the runtime crate's name and setup. It has no
//! unsafe code (`execute` is an `unsafe fn` only because the trait method
//! is): the runtime validates the module and runs it behind a safe API.

use crate::front::ast::Expr;
use crate::front::program::Program;
use std::collections::BTreeMap;
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, InstructionSink, Module, TypeSection, ValType,
};

/// The global counting active calls.
const DEPTH: u32 = 0;

/// A bound on the value-stack cells one frame of any of `program`'s
/// functions takes: its parameters and locals, and operands as deep as its
/// body nests (each call's arguments among them).
pub fn frame_cells(program: &Program) -> usize {
    program
        .function_facts()
        .iter()
        .map(|f| f.max_locals + f.depth + crate::MAX_PARAMS + 4)
        .max()
        .unwrap_or(0)
}

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
    let guest = program.functions();
    let run = guest.len() as u32;
    let mut types = TypeSection::new();
    let mut functions = FunctionSection::new();
    for (k, f) in guest.iter().enumerate() {
        types
            .ty()
            .function(vec![ValType::I64; f.arity()], [ValType::I64]);
        functions.function(k as u32);
    }
    types
        .ty()
        .function(vec![ValType::I64; program.arg_count()], [ValType::I64]);
    functions.function(run);
    let mut exports = ExportSection::new();
    exports.export(EXPORT, ExportKind::Func, run);
    // The depth counter, then a global per argument the functions read.
    let mut arg_globals = BTreeMap::new();
    for f in guest {
        let mut todo = vec![&f.body];
        while let Some(e) = todo.pop() {
            if let Expr::Arg(i) = e {
                let next = arg_globals.len() as u32 + 1;
                arg_globals.entry(*i).or_insert(next);
            }
            todo.extend(e.children());
        }
    }
    let mut globals = GlobalSection::new();
    let mutable = |val_type| GlobalType {
        val_type,
        mutable: true,
        shared: false,
    };
    if !guest.is_empty() {
        globals.global(mutable(ValType::I32), &ConstExpr::i32_const(0));
        for _ in &arg_globals {
            globals.global(mutable(ValType::I64), &ConstExpr::i64_const(0));
        }
    }
    let mut code = CodeSection::new();
    for (f, facts) in guest.iter().zip(program.function_facts()) {
        let extra = (facts.max_locals - f.arity()) as u32;
        let mut body = Function::new([(extra, ValType::I64)]);
        let mut g = Gen {
            sink: body.instructions(),
            base: 0,
            scope: f.arity() as u32,
            arg_globals: Some(&arg_globals),
        };
        // The call that would make more than MAX_CALLS active traps.
        g.sink.global_get(DEPTH);
        g.sink.i32_const(crate::MAX_CALLS as i32);
        g.sink.i32_ge_u();
        g.sink.if_(BlockType::Empty);
        g.sink.unreachable();
        g.sink.end();
        g.depth_by_one(true);
        g.value(&f.body);
        g.depth_by_one(false);
        g.sink.end();
        code.function(&body);
    }
    let mut body = Function::new([(program.max_locals() as u32, ValType::I64)]);
    let mut g = Gen {
        sink: body.instructions(),
        base: program.arg_count() as u32,
        scope: 0,
        arg_globals: None,
    };
    if !guest.is_empty() {
        g.sink.i32_const(0);
        g.sink.global_set(DEPTH);
        for (&arg, &global) in &arg_globals {
            g.sink.local_get(arg as u32);
            g.sink.global_set(global);
        }
    }
    g.value(program.expr());
    g.sink.end();
    code.function(&body);
    let mut module = Module::new();
    module.section(&types).section(&functions);
    if !guest.is_empty() {
        module.section(&globals);
    }
    module.section(&exports).section(&code);
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
        instantiate: $instantiate:ident,
        calls_held: $calls_held:expr,
        depth_trap: $depth_trap:expr $(,)?
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
            const LEVEL: $crate::Level = $crate::Level::Two;
            type Code = Code;

            fn supports(program: &$crate::front::program::Program) -> Result<(), String> {
                $crate::engines::peers::wasm_module::supports(program)
            }

            fn calls_held(program: &$crate::front::program::Program) -> Option<usize> {
                let calls_held: fn(&$crate::front::program::Program) -> Option<usize> = $calls_held;
                calls_held(program)
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
                    // The module's only trap is the depth counter's.
                    let depth_trap: fn(&::$rt::Error) -> bool = $depth_trap;
                    if depth_trap(&e) {
                        return Err($crate::CallDepthExceeded);
                    }
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
    /// In a function: the global holding each run argument it reads.
    arg_globals: Option<&'a BTreeMap<usize, u32>>,
}

impl Gen<'_> {
    fn local(&self, depth: usize) -> u32 {
        self.base + self.scope - 1 - depth as u32
    }

    /// The depth counter raised (on entry) or lowered (on return) by one.
    fn depth_by_one(&mut self, raise: bool) {
        self.sink.global_get(DEPTH);
        self.sink.i32_const(1);
        if raise {
            self.sink.i32_add();
        } else {
            self.sink.i32_sub();
        }
        self.sink.global_set(DEPTH);
    }

    /// Leaves an `i32` on the stack, nonzero when `e` counts as true
    /// (`> 0`); a comparison is used as it is.
    fn cond(&mut self, e: &Expr) {
        match e {
            Expr::Lt(a, b) => {
                self.value(a);
                self.value(b);
                self.sink.i64_lt_s();
            }
            _ => {
                self.value(e);
                self.sink.i64_const(0);
                self.sink.i64_gt_s();
            }
        }
    }

    /// Leaves `e`'s value on the operand stack.
    fn value(&mut self, e: &Expr) {
        match e {
            Expr::Sub(a, b) => {
                self.value(a);
                self.value(b);
                self.sink.i64_sub();
            }
            Expr::Lt(..) => {
                self.cond(e);
                self.sink.i64_extend_i32_u();
            }
            Expr::If(c, t, f) => {
                self.cond(c);
                self.sink.if_(BlockType::Result(ValType::I64));
                self.value(t);
                self.sink.else_();
                self.value(f);
                self.sink.end();
            }
            Expr::Call(f, args) => {
                for a in args {
                    self.value(a);
                }
                self.sink.call(*f as u32);
            }
            Expr::Litr(n) => {
                self.sink.i64_const(*n);
            }
            Expr::Arg(i) => match self.arg_globals {
                Some(globals) => {
                    self.sink.global_get(globals[i]);
                }
                None => {
                    self.sink.local_get(*i as u32);
                }
            },
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
            Expr::If(c, t, f) => {
                self.cond(c);
                self.sink.if_(BlockType::Empty);
                self.effect(t);
                self.sink.else_();
                self.effect(f);
                self.sink.end();
            }
            Expr::Call(..) => {
                self.value(e);
                self.sink.drop();
            }
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
            Expr::Add(a, b) | Expr::Then(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
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
                self.cond(c);
                self.sink.i32_eqz();
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

    #[test]
    fn functions_are_wasm_functions_with_a_depth_counter() {
        let w = crate::workloads::workload("fib_recursive").unwrap();
        let text = show(&translate(&w.program().unwrap()));
        assert!(text.contains("(global (;0;) (mut i32)"), "{text}");
        assert!(text.contains("i32.const 10000"), "{text}");
        assert!(text.contains("unreachable"), "{text}");
        assert!(text.contains("call 0"), "{text}");
        assert!(text.contains("i64.lt_s"), "{text}");
        assert!(text.contains("i64.sub"), "{text}");
        assert!(text.contains("(export \"run\" (func 1))"), "{text}");
    }
}
