//! The engine API and the one registry of engines.
//!
//! Every technique implements [`Technique`]: `compile` turns a validated
//! [`Program`] into the technique's own code, `execute` runs that code.
//! The registry wraps each technique as a `&'static dyn` [`Engine`], whose
//! public API is entirely safe: [`Executable::execute`] checks the argument
//! count once, before the technique's unchecked `execute` runs, and the
//! registry refuses a program above the level the technique declares
//! ([`Technique::LEVEL`]) before it compiles.
//!
//! Adding an engine = one module under `engines/` that declares itself with
//! `technique!` + one line in [`for_each_engine!`]. The CLI, the tests and
//! the benchmarks expand that macro (or iterate [`engines()`]); none of them
//! lists engines by hand.

use crate::clock::Clock;
use crate::front::ast::Expr;
use crate::front::program::{Level, MAX_CALLS, Program};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// Which part of the comparison an engine belongs to; reports group by it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The ten techniques of the original comparison (including `walker`).
    Original,
    /// Techniques the original did not have: register VM, `become`, JIT.
    Beyond,
    /// Like another engine, plus declared superinstructions.
    Fused,
    /// A real interpreter or VM people would embed instead (Lua, wasmi, ...).
    Peer,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Original => "original",
            Tier::Beyond => "beyond",
            Tier::Fused => "fused",
            Tier::Peer => "peer",
        })
    }
}

/// A compile stage that could not finish (a JIT or a peer may refuse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError(pub String);

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompileError {}

/// Too few arguments for the program: reported before execution starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgError {
    pub needed: usize,
    pub given: usize,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.needed == 1 { "" } else { "s" };
        write!(
            f,
            "the program needs {} argument{plural}, {} given",
            self.needed, self.given
        )
    }
}

impl std::error::Error for ArgError {}

/// A run stopped by the call that would have made more than
/// [`crate::MAX_CALLS`] calls active: the run has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallDepthExceeded;

impl fmt::Display for CallDepthExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("call depth exceeded")
    }
}

impl std::error::Error for CallDepthExceeded {}

/// Why a run of an [`Executable`] produced no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError {
    /// Too few arguments: found before execution starts.
    Args(ArgError),
    /// The depth limit ([`CallDepthExceeded`]).
    CallDepthExceeded,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Args(e) => e.fmt(f),
            RunError::CallDepthExceeded => CallDepthExceeded.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

impl From<ArgError> for RunError {
    fn from(e: ArgError) -> RunError {
        RunError::Args(e)
    }
}

impl From<CallDepthExceeded> for RunError {
    fn from(_: CallDepthExceeded) -> RunError {
        RunError::CallDepthExceeded
    }
}

/// Runs that an engine timed itself ([`Technique::execute_timed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedRuns {
    /// The runs' time on the clock asked for.
    pub time: Duration,
    /// The first value that was not the expected one (the runs stopped there).
    pub wrong: Option<i64>,
}

/// What each technique implements. Only the registry calls `execute`.
pub trait Technique: 'static {
    /// The engine's name on the command line and in reports.
    const NAME: &'static str;
    /// Where the engine sits in the comparison.
    const TIER: Tier;
    /// One line for `vm-perf list --long` and the report.
    const SUMMARY: &'static str;
    /// The largest magnitude every intermediate value may have for this
    /// engine to be exact (`None`: every `i64`). LuaJIT's doubles: 2⁵³.
    const EXACT_MAGNITUDE: Option<u64> = None;
    /// For an engine with more than one form: how this one holds values
    /// (LuaJIT: `double`, or `int64` in its wide form); reports name it.
    const FORM: Option<&'static str> = None;
    /// For an engine exact only to [`Technique::EXACT_MAGNITUDE`]: the same
    /// engine in a form exact on every `i64`, for the runs beyond that range
    /// (not in the registry; the reference's rule picks it per run,
    /// `crate::reference::form_for`).
    const WIDE: Option<&'static dyn Engine> = None;

    /// For an engine whose own stack may hold fewer than
    /// [`crate::MAX_CALLS`] active calls of `program` (a peer's stack of
    /// fixed size): how many it holds, with the call that would fail at
    /// the limit. The reference exempts it from the runs that go deeper
    /// ([`crate::reference::held_to_walker`]). `None` (the default): it
    /// holds every call the language allows.
    fn calls_held(_program: &Program) -> Option<usize> {
        None
    }
    /// The highest language level the engine runs; the registry refuses a
    /// program above it before `supports` and `compile` see it.
    const LEVEL: Level = Level::One;

    /// The technique's own compiled form.
    type Code;

    /// Whether the engine can run this program at all (peers may refuse,
    /// e.g. Lua's parser limits nesting). Checked before `compile`.
    fn supports(_program: &Program) -> Result<(), String> {
        Ok(())
    }

    /// Builds the code. Time spent here is the "compile" stage.
    fn compile(program: &Program) -> Result<Self::Code, CompileError>;

    /// Runs the code to completion and returns the program's value, or
    /// [`CallDepthExceeded`] from the call that would make more than
    /// [`crate::MAX_CALLS`] active (only a Level-2 engine can).
    ///
    /// # Safety
    ///
    /// `args.len()` must be at least the [`Program::arg_count`] of the
    /// program `code` was compiled from. Engines may read arguments
    /// without bounds checks on that promise.
    unsafe fn execute(code: &Self::Code, args: &[i64]) -> Result<i64, CallDepthExceeded>;

    /// `true` for an engine whose stack rule rests on tail calls: handlers
    /// (or continuations) that call the next one in tail position, so a run
    /// stays in bounded stack only if every such call becomes a jump. The
    /// stack tests run these on small stacks in every profile
    /// (`crate::reference::stack`).
    const TAIL_CALLS: bool = false;

    /// For an engine that recurses natively per guest call (its frames on
    /// the Rust stack, like `walker`): the native stack, in bytes, that an
    /// execution of `program` needs with every call up to the limit active,
    /// computed from the program (the nesting of its bodies). The harness
    /// and the command line run such an engine's executions on a thread
    /// with at least this much ([`crate::reference::stack::on_native_stack`]).
    /// `0` (the default): the engine keeps its frames in its own memory, and
    /// its native stack is bounded by the program's nesting alone.
    fn native_stack(_program: &Program) -> usize {
        0
    }

    /// For an engine whose work runs outside the calling thread (a peer in
    /// a helper process), where a clock around the call would see only the
    /// pipe: compiles like [`Technique::compile`] and returns the time the
    /// compile stage took on `clock`, each part measured on the thread that
    /// did it. `None` (the default): the caller times `compile` itself.
    fn compile_timed(
        _program: &Program,
        _clock: Clock,
    ) -> Option<Result<(Self::Code, Duration), CompileError>> {
        None
    }

    /// For the same engines: runs `code` up to `reps` times where it lives,
    /// stopping at the first value that is not `expected`, and times the runs
    /// on `clock`, as the caller times a loop of [`Technique::execute`]
    /// calls for the others. `None` (the default): the caller times
    /// `execute` itself.
    ///
    /// # Safety
    ///
    /// As for [`Technique::execute`].
    unsafe fn execute_timed(
        _code: &Self::Code,
        _args: &[i64],
        _reps: u64,
        _expected: i64,
        _clock: Clock,
    ) -> Option<TimedRuns> {
        None
    }

    /// What `compile` produced, for people: `vm-perf show`.
    fn show(code: &Self::Code) -> String;

    /// Every variant this engine's compiler can build, by name: each
    /// instruction with each location its operands may have, each
    /// superinstruction, each kind of closure. Empty for an engine whose
    /// code has no variants of its own to count (`walker`, the JITs, the
    /// peers). `tests/coverage.rs` checks that random programs make each.
    fn variants() -> Vec<String> {
        Vec::new()
    }

    /// How many of each variant `code` holds, by the names of
    /// [`Technique::variants`]; counted from the compiled code, never while
    /// it runs. Only the variants it holds.
    fn census(_code: &Self::Code) -> Vec<(String, usize)> {
        Vec::new()
    }
}

/// [`Technique::variants`] of an engine whose variants are the kinds of
/// one enum (derived with strum's `EnumDiscriminants`, so the list cannot
/// drift from the enum).
pub(crate) fn variants_of<K: strum::VariantArray + Copy + Into<&'static str>>() -> Vec<String> {
    K::VARIANTS.iter().map(|&k| k.into().to_string()).collect()
}

/// [`Technique::census`] of code whose parts are `kinds`.
pub(crate) fn census_of<K: Copy + PartialEq + Into<&'static str>>(
    kinds: impl IntoIterator<Item = K>,
) -> Vec<(String, usize)> {
    let mut counts: Vec<(K, usize)> = Vec::new();
    for k in kinds {
        match counts.iter_mut().find(|(seen, _)| *seen == k) {
            Some((_, n)) => *n += 1,
            None => counts.push((k, 1)),
        }
    }
    counts
        .into_iter()
        .map(|(k, n)| (k.into().to_string(), n))
        .collect()
}

/// Declares an engine's registry type and its [`Technique`]: each states
/// its name, tier, code type and summary once, and names the functions that
/// compile, run and show its code:
///
/// ```text
/// technique! {
///     Engine = "name", Tier, CodeType;
///     "one-line summary";
///     compile: fn(&Program) -> Result<CodeType, CompileError>,
///     execute: [unsafe] fn(&CodeType, &[i64]) -> i64,
///     show: fn(&CodeType) -> String;
///     <further items of the impl: `const TAIL_CALLS: bool = true;`, ...>
/// }
/// ```
///
/// `execute` may be an `unsafe fn` whose contract is [`Technique::execute`]'s
/// (`args` covers the program's argument count) or a safe one. An engine
/// whose runs can fail (a Level-2 engine: the call depth) names instead
/// `try_execute: [unsafe] fn(&CodeType, &[i64]) -> Result<i64, CallDepthExceeded>`.
macro_rules! technique {
    (
        $(#[$attr:meta])*
        $Engine:ident = $name:literal, $tier:ident, $Code:ty;
        $summary:literal;
        compile: $compile:expr, $run:ident: $execute:expr, show: $show:expr;
        $($item:tt)*
    ) => {
        $(#[$attr])*
        pub struct $Engine;

        impl $crate::engine::Technique for $Engine {
            const NAME: &'static str = $name;
            const TIER: $crate::engine::Tier = $crate::engine::Tier::$tier;
            const SUMMARY: &'static str = $summary;
            type Code = $Code;

            fn compile(
                program: &$crate::front::program::Program,
            ) -> Result<$Code, $crate::engine::CompileError> {
                let compile: fn(
                    &$crate::front::program::Program,
                ) -> Result<$Code, $crate::engine::CompileError> = $compile;
                compile(program)
            }

            $crate::engine::technique!(@$run $Code, $execute);

            fn show(code: &$Code) -> String {
                let show: fn(&$Code) -> String = $show;
                show(code)
            }

            $($item)*
        }
    };
    (@execute $Code:ty, $execute:expr) => {
        unsafe fn execute(
            code: &$Code,
            args: &[i64],
        ) -> Result<i64, $crate::engine::CallDepthExceeded> {
            let execute: unsafe fn(&$Code, &[i64]) -> i64 = $execute;
            // SAFETY: this function's contract (`args` covers the
            // program's argument count) is the one `execute` states.
            Ok(unsafe { execute(code, args) })
        }
    };
    (@try_execute $Code:ty, $execute:expr) => {
        unsafe fn execute(
            code: &$Code,
            args: &[i64],
        ) -> Result<i64, $crate::engine::CallDepthExceeded> {
            let execute: unsafe fn(
                &$Code,
                &[i64],
            ) -> Result<i64, $crate::engine::CallDepthExceeded> = $execute;
            // SAFETY: this function's contract (`args` covers the
            // program's argument count) is the one `execute` states.
            unsafe { execute(code, args) }
        }
    };
}
pub(crate) use technique;

/// For an engine that evaluates the tree recursively (one native frame per
/// node, one more per call): the most frames a run of `program` can have
/// open at once, with up to [`MAX_CALLS`] calls active. That is main's
/// depth, then for each active call but the innermost one frame for the
/// call and the depth of the call site in the caller's body, then the
/// innermost call and its whole body. `0` for a program without functions
/// (its depth alone bounds it, and every thread has room for that).
/// [`Technique::native_stack`] is this times the engine's frame size.
pub fn recursion_frames(program: &Program) -> usize {
    let bodies = program.function_facts();
    if bodies.is_empty() {
        return 0;
    }
    let deepest_body = bodies.iter().map(|f| f.depth).max().unwrap_or(0);
    let deepest_call = program
        .functions()
        .iter()
        .map(|f| deepest_call(&f.body))
        .max()
        .unwrap_or(0);
    // Without a call in any body, at most one call is ever active.
    let chain = if deepest_call == 0 {
        0
    } else {
        (MAX_CALLS - 1) * (1 + deepest_call)
    };
    program.depth() + chain + 1 + deepest_body
}

/// What a recursive engine's run needs besides its frames (starting the
/// thread, compiling, the first frames of the run).
const RUN_OVERHEAD: usize = 64 * 1024;

/// [`Technique::native_stack`] for an engine that evaluates the tree
/// recursively with frames of at most `frame_bytes` each (measured, with a
/// margin): [`recursion_frames`] of them and the run's overhead; `0` for a
/// program without functions.
pub fn recursive_native_stack(program: &Program, frame_bytes: usize) -> usize {
    match recursion_frames(program) {
        0 => 0,
        frames => frames
            .saturating_mul(frame_bytes)
            .saturating_add(RUN_OVERHEAD),
    }
}

/// The depth of the deepest `Call` in `body` (its root is at depth 1), `0`
/// when there is none; without recursion.
fn deepest_call(body: &Expr) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(body, 1)];
    while let Some((e, depth)) = todo.pop() {
        if let Expr::Call(..) = e {
            deepest = deepest.max(depth);
        }
        todo.extend(e.children().map(|c| (c, depth + 1)));
    }
    deepest
}

/// An engine as the registry exposes it: object safe and entirely safe.
pub trait Engine: Sync {
    fn name(&self) -> &'static str;
    fn tier(&self) -> Tier;
    fn summary(&self) -> &'static str;
    fn exact_magnitude(&self) -> Option<u64>;
    /// How this form of the engine holds values ([`Technique::FORM`]).
    fn form(&self) -> Option<&'static str> {
        None
    }
    /// The engine's wide form ([`Technique::WIDE`]).
    fn wide(&self) -> Option<&'static dyn Engine> {
        None
    }
    /// How many active calls of `program` the engine holds, if fewer than
    /// the language allows ([`Technique::calls_held`]).
    fn calls_held(&self, _program: &Program) -> Option<usize> {
        None
    }
    fn supports(&self, program: &Program) -> Result<(), String>;
    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, CompileError>;
    /// Whether the engine's stack rule rests on tail calls ([`Technique::TAIL_CALLS`]).
    fn relies_on_tail_calls(&self) -> bool {
        false
    }
    /// Every variant its compiler can build ([`Technique::variants`]).
    fn variants(&self) -> Vec<String> {
        Vec::new()
    }
    /// The native stack an execution of `program` needs
    /// ([`Technique::native_stack`]; `0`: nothing beyond an ordinary thread's).
    fn native_stack(&self, _program: &Program) -> usize {
        0
    }
    /// Compiles, plus the compile time the engine measured itself on
    /// `clock` when its work runs outside this thread
    /// ([`Technique::compile_timed`]); `None`: time `compile` from outside.
    fn compile_timed(
        &self,
        program: &Program,
        _clock: Clock,
    ) -> Result<(Box<dyn Executable>, Option<Duration>), CompileError> {
        self.compile(program).map(|code| (code, None))
    }
}

/// A compiled program, ready to run any number of times.
pub trait Executable {
    /// How many arguments `execute` needs.
    fn arg_count(&self) -> usize;
    /// Runs the program; an error when `args` is too short (before the run
    /// starts) or when the run exceeds the call depth.
    fn execute(&self, args: &[i64]) -> Result<i64, RunError>;
    /// For a program that runs outside this thread (a peer in a helper
    /// process): `reps` runs timed by the engine on `clock`
    /// ([`Technique::execute_timed`]). `None`: time `execute` from outside,
    /// as for every in-process engine.
    fn execute_timed(
        &self,
        _args: &[i64],
        _reps: u64,
        _expected: i64,
        _clock: Clock,
    ) -> Result<Option<TimedRuns>, ArgError> {
        Ok(None)
    }
    /// The compiled form as text (`vm-perf show`).
    fn show(&self) -> String;
    /// How many of each variant the code holds ([`Technique::census`]).
    fn census(&self) -> Vec<(String, usize)> {
        Vec::new()
    }
}

/// Adapts a [`Technique`] to the registry's [`Engine`].
pub struct Registered<T>(PhantomData<fn() -> T>);

impl<T> Registered<T> {
    pub const NEW: Self = Registered(PhantomData);
}

struct Compiled<T: Technique> {
    code: T::Code,
    arg_count: usize,
}

/// The registry's gate: a program above the engine's level is refused with
/// the reason, then the engine's own [`Technique::supports`] is asked.
fn supported<T: Technique>(program: &Program) -> Result<(), String> {
    if program.level() > T::LEVEL {
        return Err(format!(
            "`{}` runs {} only (functions, calls, `-`, `<` and `if` are {})",
            T::NAME,
            T::LEVEL,
            program.level()
        ));
    }
    T::supports(program)
}

impl<T: Technique> Engine for Registered<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn tier(&self) -> Tier {
        T::TIER
    }
    fn summary(&self) -> &'static str {
        T::SUMMARY
    }
    fn exact_magnitude(&self) -> Option<u64> {
        T::EXACT_MAGNITUDE
    }
    fn form(&self) -> Option<&'static str> {
        T::FORM
    }
    fn wide(&self) -> Option<&'static dyn Engine> {
        T::WIDE
    }
    fn calls_held(&self, program: &Program) -> Option<usize> {
        T::calls_held(program)
    }
    fn supports(&self, program: &Program) -> Result<(), String> {
        supported::<T>(program)
    }
    fn compile(&self, program: &Program) -> Result<Box<dyn Executable>, CompileError> {
        supported::<T>(program).map_err(CompileError)?;
        let code = T::compile(program)?;
        Ok(Box::new(Compiled::<T> {
            code,
            arg_count: program.arg_count(),
        }))
    }
    fn relies_on_tail_calls(&self) -> bool {
        T::TAIL_CALLS
    }
    fn variants(&self) -> Vec<String> {
        T::variants()
    }
    fn native_stack(&self, program: &Program) -> usize {
        T::native_stack(program)
    }
    fn compile_timed(
        &self,
        program: &Program,
        clock: Clock,
    ) -> Result<(Box<dyn Executable>, Option<Duration>), CompileError> {
        supported::<T>(program).map_err(CompileError)?;
        let (code, time) = match T::compile_timed(program, clock) {
            Some(timed) => timed.map(|(code, time)| (code, Some(time)))?,
            None => (T::compile(program)?, None),
        };
        let code: Box<dyn Executable> = Box::new(Compiled::<T> {
            code,
            arg_count: program.arg_count(),
        });
        Ok((code, time))
    }
}

impl<T: Technique> Executable for Compiled<T> {
    fn arg_count(&self) -> usize {
        self.arg_count
    }
    #[inline]
    fn execute(&self, args: &[i64]) -> Result<i64, RunError> {
        if args.len() < self.arg_count {
            return Err(RunError::Args(ArgError {
                needed: self.arg_count,
                given: args.len(),
            }));
        }
        // SAFETY: `arg_count` is the compiled program's `Program::arg_count`,
        // and we just checked `args` holds at least that many values.
        Ok(unsafe { T::execute(&self.code, args) }?)
    }
    fn execute_timed(
        &self,
        args: &[i64],
        reps: u64,
        expected: i64,
        clock: Clock,
    ) -> Result<Option<TimedRuns>, ArgError> {
        if args.len() < self.arg_count {
            return Err(ArgError {
                needed: self.arg_count,
                given: args.len(),
            });
        }
        // SAFETY: as in `execute`: the length was checked just above.
        Ok(unsafe { T::execute_timed(&self.code, args, reps, expected, clock) })
    }
    fn show(&self) -> String {
        T::show(&self.code)
    }
    fn census(&self) -> Vec<(String, usize)> {
        T::census(&self.code)
    }
}

/// Calls `$callback! { name: Type, ... }` with every registered engine.
///
/// This is the registry: the one place that lists engines. Entries may carry
/// `#[cfg(...)]` attributes for engines behind cargo features.
#[macro_export]
macro_rules! for_each_engine {
    ($callback:ident) => {
        $callback! {
            walker: $crate::engines::walker::Walker,
            bytecode: $crate::engines::bytecode_vm::bytecode::Bytecode,
            closures: $crate::engines::closure::closures::Closures,
            stack_closures: $crate::engines::closure::stack_closures::StackClosures,
            tape_closures: $crate::engines::closure::tape_closures::TapeClosures,
            register_closures: $crate::engines::closure::register_closures::RegisterClosures,
            bytecode_closures: $crate::engines::closure::bytecode_closures::BytecodeClosures,
            closure_continuations: $crate::engines::closure::closure_continuations::ClosureContinuations,
            closure_stack_continuations: $crate::engines::closure::closure_stack_continuations::ClosureStackContinuations,
            tape_continuations: $crate::engines::threaded::tape_continuations::TapeContinuations,
            register_bytecode: $crate::engines::bytecode_vm::register_bytecode::RegisterBytecode,
            register_continuations: $crate::engines::threaded::register_continuations::RegisterContinuations,
            #[cfg(feature = "nightly")]
            tail_calls: $crate::engines::threaded::tail_calls::TailCalls,
            #[cfg(feature = "nightly")]
            register_tail_calls: $crate::engines::threaded::register_tail_calls::RegisterTailCalls,
            #[cfg(feature = "nightly")]
            register_preserve_none: $crate::engines::threaded::register_preserve_none::RegisterPreserveNone,
            #[cfg(feature = "jit")]
            jit: $crate::engines::native::jit::Jit,
            #[cfg(feature = "template_jit")]
            template_jit: $crate::engines::native::template_jit::TemplateJit,
            #[cfg(feature = "copy_patch_jit")]
            copy_patch_jit: $crate::engines::native::copy_patch_jit::CopyPatchJit,
            register_bytecode_fused: $crate::engines::bytecode_vm::register_bytecode_fused::RegisterBytecodeFused,
            tape_continuations_fused: $crate::engines::threaded::tape_continuations_fused::TapeContinuationsFused,
            register_continuations_fused: $crate::engines::threaded::register_continuations_fused::RegisterContinuationsFused,
            #[cfg(feature = "nightly")]
            register_tail_calls_fused: $crate::engines::threaded::register_tail_calls_fused::RegisterTailCallsFused,
            #[cfg(feature = "nightly")]
            register_preserve_none_fused: $crate::engines::threaded::register_preserve_none_fused::RegisterPreserveNoneFused,
            #[cfg(feature = "lua54")]
            lua54: $crate::engines::peers::lua54::Lua54,
            #[cfg(feature = "luajit")]
            luajit: $crate::engines::peers::luajit::LuaJit,
            #[cfg(feature = "luajit")]
            luajit_interp: $crate::engines::peers::luajit_interp::LuaJitInterp,
            #[cfg(feature = "wasmi")]
            wasmi: $crate::engines::peers::wasmi::Wasmi,
            #[cfg(feature = "wasmtime")]
            wasmtime: $crate::engines::peers::wasmtime::Wasmtime,
        }
    };
}

macro_rules! engine_table {
    ($($(#[$attr:meta])* $name:ident: $ty:ty,)*) => {
        static ENGINES: &[&dyn Engine] = &[
            $($(#[$attr])* &Registered::<$ty>::NEW,)*
        ];
    };
}

for_each_engine!(engine_table);

/// Every registered engine, in registry order (`walker` first).
pub fn engines() -> &'static [&'static dyn Engine] {
    ENGINES
}

/// The engine called `name`, if it is registered (and built).
pub fn engine(name: &str) -> Option<&'static dyn Engine> {
    ENGINES.iter().copied().find(|e| e.name() == name)
}

/// The engine called `name`, or the message a user reads when there is
/// none: the name and every engine of this build.
pub fn find(name: &str) -> Result<&'static dyn Engine, String> {
    engine(name).ok_or_else(|| {
        let names: Vec<_> = ENGINES.iter().map(|e| e.name()).collect();
        format!("unknown engine `{name}` (available: {})", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_walker_is_first() {
        let names: Vec<_> = engines().iter().map(|e| e.name()).collect();
        assert_eq!(names[0], "walker");
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "duplicate engine name in {names:?}"
        );
    }

    #[test]
    fn execute_checks_the_argument_count() {
        let program = Program::validate(crate::Expr::Arg(2)).unwrap();
        for engine in engines() {
            if engine.supports(&program).is_err() {
                continue;
            }
            let code = engine.compile(&program).unwrap();
            assert_eq!(
                code.execute(&[1, 2]),
                Err(RunError::Args(ArgError {
                    needed: 3,
                    given: 2
                }))
            );
            assert_eq!(code.execute(&[1, 2, 7]), Ok(7), "{}", engine.name());
        }
    }

    #[test]
    fn engines_below_level_two_refuse_it_with_the_reason() {
        let program =
            Program::validate(crate::Expr::sub(crate::Expr::Litr(3), crate::Expr::Litr(1)))
                .unwrap();
        for engine in engines() {
            let Err(why) = engine.supports(&program) else {
                let code = engine.compile(&program).unwrap();
                assert_eq!(code.execute(&[]), Ok(2), "{}", engine.name());
                continue;
            };
            assert!(why.contains("Level 2"), "{}: {why}", engine.name());
            let refused = engine.compile(&program).err().unwrap();
            assert_eq!(refused.0, why);
        }
        // The reason in full, from a technique that declares Level 1 only;
        // the registry refuses before its `compile` could see the program.
        struct LevelOne;
        impl Technique for LevelOne {
            const NAME: &'static str = "level_one";
            const TIER: Tier = Tier::Original;
            const SUMMARY: &'static str = "a Level-1 technique";
            type Code = ();
            fn compile(_: &Program) -> Result<(), CompileError> {
                unreachable!("the registry refuses first")
            }
            unsafe fn execute(_: &(), _: &[i64]) -> Result<i64, CallDepthExceeded> {
                unreachable!("never compiled")
            }
            fn show(_: &()) -> String {
                String::new()
            }
        }
        let level_one: &dyn Engine = &Registered::<LevelOne>::NEW;
        let why = "`level_one` runs Level 1 only (functions, calls, `-`, `<` and `if` are Level 2)";
        assert_eq!(level_one.supports(&program).unwrap_err(), why);
        assert_eq!(level_one.compile(&program).err().unwrap().0, why);
    }

    #[test]
    fn run_errors_read_as_the_language_says() {
        assert_eq!(
            RunError::CallDepthExceeded.to_string(),
            "call depth exceeded"
        );
        assert_eq!(
            RunError::from(CallDepthExceeded),
            RunError::CallDepthExceeded
        );
    }
}
