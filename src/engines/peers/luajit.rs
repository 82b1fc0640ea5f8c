//! `luajit` — peer: the same Lua source as `lua54`, on LuaJIT with its JIT on.
//!
//! **Compile** translates the AST to Lua source ([`super::lua_source`], LuaJIT
//! dialect) and sends it to the helper process `vm-perf-luajit`, which loads
//! it once in its JIT-on Lua state and keeps the resulting function under a
//! handle. **Execute** asks the helper to call that function. A measurement
//! ([`Technique::execute_timed`]) asks for a whole sample's runs in one
//! request: the helper calls the function that many times, checking every
//! value, and times the calls on the harness's clock (the CPU time of its own
//! thread, or wall time under `--clock wall`), so the pipe round trip is not
//! counted and the span is the one the harness times for its own engines.
//! The compile time ([`Technique::compile_timed`]) is the translation, timed
//! here, plus the helper's `load`, timed there on the same clock.
//! **Values** are LuaJIT numbers: doubles, exact up to 2⁵³ (hence
//! `EXACT_MAGNITUDE`). For a run whose values leave that range the
//! reference's rule ([`crate::reference::form_for`]) picks the engine's
//! *wide form* instead ([`Technique::WIDE`]): the same engine computing in
//! LuaJIT's 64-bit integers (`int64_t` cdata, `LL` literals, wrapping like
//! ours; [`Dialect::LuaJitInt64`]), exact on every value but slower, above
//! all in the interpreter, which boxes each cdata result. Reports say which
//! form each cell used. The wide form runs in a Lua state of its own whose
//! trace compiler does not sink allocations: with sinking on, a loop whose
//! `int64_t` result the optimiser folded to a constant left the loop with
//! the value from *before* the loop (`tests/regressions/luajit_jit_int64_trace.vm`,
//! wrong once its loops are traced; the interpreter and the JIT without
//! sinking stay right), so every cdata result is a real allocation there. **Locals** are Lua locals, which the trace compiler
//! keeps in machine registers. **Control**: `While` is a Lua loop, `If` a
//! Lua `if`; hot loops are recorded as traces and compiled to machine code.
//! Guest functions are Lua functions and calls Lua calls, with the depth
//! limit as a counter in the generated code ([`super::lua_source`]), exact
//! at every depth. LuaJIT keeps every frame on one Lua stack of at most
//! 65,500 slots, though, which holds fewer than 10,000 frames of a
//! function whose calls sit high in its registers (six slots apart hold
//! 10,000): the engine declares how many it holds on each program
//! (`calls_held`: active calls are as far apart as the highest register a
//! call site puts the callee's function in, plus its frame link, which the
//! translation bounds) and is exempt from runs that go deeper.
//!
//! Why a process: `mlua` links one Lua per build, and Lua 5.4 and LuaJIT
//! export the same C symbols, so they cannot share a binary. `build.rs`
//! builds the helper crate (its own workspace, release mode) into
//! `target/vm-perf-luajit/` and bakes its path in; the environment variable
//! `VM_PERF_LUAJIT_HELPER` overrides it, and a `vm-perf-luajit` next to the
//! running executable is the last resort. One helper serves every compiled
//! program of the process; dropping the code frees its function there.
//!
//! Trade-off: a tracing JIT with a famously fast interpreter behind it, at the
//! price of doubles for numbers and a process boundary for us.
//!
//! **Unsafe code**: none (`execute` is an `unsafe fn` only because the trait
//! method is); LuaJIT runs in the helper process, spoken to over pipes.

use super::lua_source::{Dialect, check, translate};
use crate::clock::{Clock, Stopwatch};
use crate::engine::{CompileError, Engine, Registered, Technique, Tier, TimedRuns};
use crate::front::program::{Level, Program};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

pub struct LuaJit;

/// The largest node count we hand to LuaJIT: its bytecode jumps reach at most
/// ±32767 instructions, and a loop body must fit in one jump.
pub const MAX_NODES: usize = 8000;

impl Technique for LuaJit {
    const NAME: &'static str = "luajit";
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = "Lua source on LuaJIT, JIT on (helper process)";
    const EXACT_MAGNITUDE: Option<u64> = Some(1 << 53);
    const LEVEL: Level = Level::Two;
    const FORM: Option<&'static str> = Some(DOUBLE);
    const WIDE: Option<&'static dyn Engine> = Some(&Registered::<LuaJitInt64>::NEW);
    in_helper!(jit: true, wide: false);
}

/// `luajit`'s wide form: not in the registry, reached through
/// [`Technique::WIDE`] for the runs beyond 2⁵³.
pub struct LuaJitInt64;

impl Technique for LuaJitInt64 {
    const NAME: &'static str = LuaJit::NAME;
    const TIER: Tier = Tier::Peer;
    const SUMMARY: &'static str = LuaJit::SUMMARY;
    const LEVEL: Level = Level::Two;
    const FORM: Option<&'static str> = Some(INT64);
    in_helper!(jit: true, wide: true);
}

/// The forms' names in reports.
pub const DOUBLE: &str = "double";
pub const INT64: &str = "int64";

/// The `Technique` items every LuaJIT peer and form shares: the program
/// lives in the helper's JIT-on (`jit: true`) or JIT-off state, in doubles
/// or in 64-bit integers (`wide`), and compile and execute are timed there,
/// on the clock the caller names.
macro_rules! in_helper {
    (jit: $jit:expr, wide: $wide:expr) => {
        type Code = $crate::engines::peers::luajit::Code;

        fn supports(program: &$crate::Program) -> Result<(), String> {
            $crate::engines::peers::luajit::supports(program)
        }
        fn calls_held(program: &$crate::Program) -> Option<usize> {
            $crate::engines::peers::luajit::calls_held(program)
        }
        fn compile(program: &$crate::Program) -> Result<Self::Code, $crate::CompileError> {
            let wall = $crate::clock::Clock::Wall;
            $crate::engines::peers::luajit::compile(program, $jit, $wide, wall)
                .map(|(code, _)| code)
        }
        fn compile_timed(
            program: &$crate::Program,
            clock: $crate::clock::Clock,
        ) -> Option<Result<(Self::Code, std::time::Duration), $crate::CompileError>> {
            Some($crate::engines::peers::luajit::compile(
                program, $jit, $wide, clock,
            ))
        }
        unsafe fn execute(
            code: &Self::Code,
            args: &[i64],
        ) -> Result<i64, $crate::CallDepthExceeded> {
            // One run: its value, whatever it is (`expected` only ends loops).
            code.run(args, 1, 0, $crate::clock::Clock::Wall)
                .map(|(value, _)| value)
        }
        unsafe fn execute_timed(
            code: &Self::Code,
            args: &[i64],
            reps: u64,
            expected: i64,
            clock: $crate::clock::Clock,
        ) -> Option<$crate::engine::TimedRuns> {
            Some(code.timed_runs(args, reps, expected, clock))
        }
        fn show(code: &Self::Code) -> String {
            code.source.clone()
        }
    };
}
pub(super) use in_helper;

/// LuaJIT's stack: at most 65,500 slots (`LUAI_MAXSTACK`); a call's frame
/// link takes two (counted in the call reach), plus one spare per frame.
const STACK_SLOTS: usize = 65_500;

/// Shared with `luajit_interp`: how many active calls of `program` LuaJIT's
/// stack holds, when fewer than the limit needs: its frames live on one
/// Lua stack of fixed size, so deep recursion in a function with many
/// registers runs out before 10,000 calls, and such runs are exempt.
pub fn calls_held(program: &Program) -> Option<usize> {
    super::lua_source::calls_held(program, STACK_SLOTS, 3)
}

/// Shared with `luajit_interp`: what LuaJIT's parser accepts.
pub fn supports(program: &Program) -> Result<(), String> {
    if program.node_count() > MAX_NODES {
        return Err(format!(
            "{} nodes; LuaJIT's jumps limit us to {MAX_NODES}",
            program.node_count()
        ));
    }
    check(program)
}

/// Shared with `luajit_interp`: loads the program in the helper's JIT-on or
/// JIT-off state, in doubles or in 64-bit integers (`wide`); also returns
/// the compile stage's time on `clock`: the check and the translation here,
/// plus the `load` in the helper.
pub fn compile(
    program: &Program,
    jit: bool,
    wide: bool,
    clock: Clock,
) -> Result<(Code, Duration), CompileError> {
    let here = Stopwatch::start(clock);
    supports(program).map_err(CompileError)?;
    let dialect = if wide {
        Dialect::LuaJitInt64
    } else {
        Dialect::LuaJit
    };
    let source = translate(program, dialect).map_err(CompileError)?.text;
    let translation = here.elapsed();
    let (handle, load_time, generation) = with_helper(|h| {
        h.write(&[b'C', jit as u8, wide as u8, clock_code(clock)])?;
        h.write(&(source.len() as u32).to_le_bytes())?;
        h.write(source.as_bytes())?;
        h.flush()?;
        match h.read_u8()? {
            b'K' => Ok(Ok((
                h.read_u32()?,
                Duration::from_nanos(h.read_u64()?),
                h.generation,
            ))),
            _ => Ok(Err(h.read_message()?)),
        }
    })
    .map_err(CompileError)?
    .map_err(|e| CompileError(format!("LuaJIT rejected the translation: {e}")))?;
    let code = Code {
        handle,
        generation,
        source,
    };
    Ok((code, translation + load_time))
}

/// How the helper's protocol names a clock.
fn clock_code(clock: Clock) -> u8 {
    match clock {
        Clock::Thread => 0,
        Clock::Wall => 1,
    }
}

/// A program loaded in the helper.
pub struct Code {
    handle: u32,
    /// Which helper process holds the handle (a restarted one does not).
    generation: u64,
    pub(super) source: String,
}

impl Code {
    /// Up to `reps` calls in the helper, stopping at the first value that is
    /// not `expected`: that value (else the last one) and the time of the
    /// calls on `clock`, as the helper measured it; or the run's error at
    /// the depth limit.
    pub(super) fn run(
        &self,
        args: &[i64],
        reps: u64,
        expected: i64,
        clock: Clock,
    ) -> Result<(i64, Duration), crate::CallDepthExceeded> {
        let reply = with_helper(|h| {
            if h.generation != self.generation {
                return Ok(Err(
                    "the LuaJIT helper was restarted; compile again".to_string()
                ));
            }
            h.write(b"X")?;
            h.write(&self.handle.to_le_bytes())?;
            h.write(&[clock_code(clock)])?;
            h.write(&reps.to_le_bytes())?;
            h.write(&expected.to_le_bytes())?;
            h.write(&(args.len() as u32).to_le_bytes())?;
            for a in args {
                h.write(&a.to_le_bytes())?;
            }
            h.flush()?;
            match h.read_u8()? {
                b'V' => Ok(Ok((
                    h.read_u64()? as i64,
                    Duration::from_nanos(h.read_u64()?),
                ))),
                _ => Ok(Err(h.read_message()?)),
            }
        });
        match reply {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if e.starts_with(super::lua_source::DEPTH_ERROR) => {
                Err(crate::CallDepthExceeded)
            }
            Ok(Err(e)) | Err(e) => panic!("LuaJIT helper: {e}"),
        }
    }

    /// [`Code::run`] as the harness asks for it.
    pub(super) fn timed_runs(
        &self,
        args: &[i64],
        reps: u64,
        expected: i64,
        clock: Clock,
    ) -> TimedRuns {
        // The harness times runs that end with a value.
        let (value, time) = self
            .run(args, reps, expected, clock)
            .unwrap_or_else(|e| panic!("LuaJIT: a timed run failed: {e}"));
        TimedRuns {
            time,
            wrong: (value != expected).then_some(value),
        }
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        let (handle, generation) = (self.handle, self.generation);
        // Best effort: a dead helper has freed everything already.
        let _ = with_helper(|h| {
            if h.generation == generation {
                h.write(b"D")?;
                h.write(&handle.to_le_bytes())?;
                h.flush()?;
            }
            Ok(())
        });
    }
}

/// What `jit.status()` reports in the helper's JIT-on or JIT-off state.
pub fn jit_status(jit: bool) -> Result<bool, String> {
    with_helper(|h| {
        h.write(&[b'J', jit as u8])?;
        h.flush()?;
        h.read_u8()?;
        Ok(h.read_u8()? != 0)
    })
}

/// The running helper process and its pipes.
struct Helper {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    generation: u64,
}

static HELPER: Mutex<(Option<Helper>, u64)> = Mutex::new((None, 0));

/// Where the helper executable is (see the module doc).
pub fn helper_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VM_PERF_LUAJIT_HELPER") {
        return PathBuf::from(p);
    }
    let built = PathBuf::from(env!("VM_PERF_LUAJIT_HELPER"));
    if built.exists() {
        return built;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(built.file_name()?)));
    match beside {
        Some(p) if p.exists() => p,
        _ => built,
    }
}

/// Runs `f` on the helper, starting it first if needed. An I/O error kills
/// the helper (the next call starts a new one) and becomes the error text.
fn with_helper<R>(f: impl FnOnce(&mut Helper) -> io::Result<R>) -> Result<R, String> {
    let mut guard = HELPER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (slot, generation) = &mut *guard;
    if slot.is_none() {
        *generation += 1;
        let path = helper_path();
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the LuaJIT helper {}: {e}", path.display()))?;
        let input = BufWriter::new(child.stdin.take().expect("piped"));
        let output = BufReader::new(child.stdout.take().expect("piped"));
        *slot = Some(Helper {
            child,
            input,
            output,
            generation: *generation,
        });
    }
    let helper = slot.as_mut().expect("just started");
    match f(helper) {
        Ok(r) => Ok(r),
        Err(e) => {
            let mut dead = slot.take().expect("present");
            let _ = dead.child.kill();
            let _ = dead.child.wait();
            Err(format!("the LuaJIT helper failed: {e}"))
        }
    }
}

impl Helper {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.input.write_all(bytes)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.input.flush()
    }
    fn read_u8(&mut self) -> io::Result<u8> {
        let mut b = [0; 1];
        self.output.read_exact(&mut b)?;
        Ok(b[0])
    }
    fn read_u32(&mut self) -> io::Result<u32> {
        let mut b = [0; 4];
        self.output.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_u64(&mut self) -> io::Result<u64> {
        let mut b = [0; 8];
        self.output.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// The text after an `E` reply.
    fn read_message(&mut self) -> io::Result<String> {
        let len = self.read_u32()? as usize;
        let mut text = vec![0; len];
        self.output.read_exact(&mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jit_is_on_here_and_off_in_the_interpreter_state() {
        assert_eq!(jit_status(true), Ok(true));
        assert_eq!(jit_status(false), Ok(false));
    }

    #[test]
    fn the_helper_times_runs_on_the_clock_it_is_given() {
        // About 10⁸ iterations of LuaJIT's interpreter: long enough that the
        // clocks differ measurably when this thread sleeps meanwhile.
        let p = crate::front::compile_source(
            "t.vm",
            "let n = arg(0); let t = 0; while n { t = t + arg(1); n = n + -1 }; t",
        )
        .unwrap();
        let (code, compile_time) = compile(&p, false, false, Clock::Thread).unwrap();
        assert!(compile_time > Duration::ZERO);
        let runs = code.timed_runs(&[1000, 3], 5, 3000, Clock::Thread);
        assert_eq!(runs.wrong, None);
        assert!(runs.time > Duration::ZERO);
        // A wrong expectation stops at the first run and reports its value.
        let runs = code.timed_runs(&[1000, 3], 5, 7, Clock::Wall);
        assert_eq!(runs.wrong, Some(3000));
    }

    /// The helper's thread time leaves out the time it is not running, its
    /// wall time does not: with the helper stopped four fifths of the time
    /// (SIGSTOP/SIGCONT from a thread here), the same runs take several
    /// times longer on the wall clock than on the thread clock.
    #[test]
    fn thread_time_is_the_helpers_own_cpu_time() {
        let p = crate::front::compile_source("t.vm", "let n = arg(0); while n { n = n + -1 }; 1")
            .unwrap();
        let (code, _) = compile(&p, false, false, Clock::Thread).unwrap();
        let pid = with_helper(|h| Ok(h.child.id())).unwrap().to_string();
        let signal = |s: &str| {
            let status = std::process::Command::new("kill").args([s, &pid]).status();
            assert!(status.unwrap().success());
        };
        let paused = |clock| {
            let done = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        signal("-STOP");
                        std::thread::sleep(Duration::from_millis(40));
                        signal("-CONT");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                });
                let time = code.timed_runs(&[10_000_000], 3, 1, clock).time;
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                time
            })
        };
        let (wall, thread) = (paused(Clock::Wall), paused(Clock::Thread));
        assert!(wall > thread * 2, "wall {wall:?}, thread {thread:?}");
    }
}
