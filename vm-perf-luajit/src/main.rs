//! `vm-perf-luajit`: runs Lua source on LuaJIT for vm-perf, over a pipe.
//!
//! vm-perf links Lua 5.4; LuaJIT exports the same C symbols, so it lives in
//! this separate process. vm-perf spawns it once and talks to it on
//! stdin/stdout with little-endian binary frames:
//!
//! | request | reply |
//! |---|---|
//! | `C` jit:u8 wide:u8 clock:u8 len:u32 source | `K` handle:u32 nanos:u64, or `E` len:u32 message |
//! | `X` handle:u32 clock:u8 reps:u64 expected:i64 n:u32 n×i64 | `V` value:i64 nanos:u64, or `E` len:u32 message |
//! | `D` handle:u32 | nothing |
//! | `J` jit:u8 | `S` status:u8 (what `jit.status()` says in that state) |
//!
//! `C` loads a chunk that returns the program's function (jit 1: JIT on,
//! 0: `jit.off()`, checked with `jit.status()`) and reports how long the
//! load took. A wide chunk with the JIT on goes to a state of its own whose
//! trace compiler does not sink allocations (`jit.opt.start("-sink")`): on
//! `int64_t` cdata, a sunk allocation whose loop value the optimiser folded
//! to a constant is restored at the loop's exit from its value *before* the
//! loop (LuaJIT 2.1 at the commit `luajit-src` builds), a wrong value;
//! without sinking every cdata result is a real allocation, slower and
//! right. `X` calls the function up to `reps` times with the arguments
//! as Lua numbers (wide 0), or, for a chunk in vm-perf's wide form (wide 1:
//! the program computes in `int64_t` cdata), each argument as two exact
//! numbers, its high 32 bits (signed) and its low 32 bits, the value coming
//! back the same way; it stops at the first value that is not `expected`, and
//! replies with that value (else the last one) and the time of the calls,
//! so the pipe round trip is not part of the measurement. Times are taken
//! on the clock vm-perf asks for (clock 0: the CPU time of this thread,
//! which runs Lua; 1: wall-clock time), the clock vm-perf times its own
//! engines with. `D` frees a function.

use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Value};
use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::time::Instant;

/// A measurement on the clock vm-perf asked for.
enum Stopwatch {
    Thread(cpu_time::ThreadTime),
    Wall(Instant),
}

impl Stopwatch {
    /// Clock 0: this thread's CPU time; anything else: wall time.
    fn start(clock: u8) -> Stopwatch {
        match clock {
            0 => Stopwatch::Thread(cpu_time::ThreadTime::now()),
            _ => Stopwatch::Wall(Instant::now()),
        }
    }

    fn nanos(&self) -> u64 {
        match self {
            Stopwatch::Thread(t) => t.elapsed().as_nanos() as u64,
            Stopwatch::Wall(t) => t.elapsed().as_nanos() as u64,
        }
    }
}

struct State {
    lua: Lua,
    functions: HashMap<u32, Loaded>,
}

/// A loaded program's function, and whether it speaks the wide form.
struct Loaded {
    function: Function,
    wide: bool,
}

impl Loaded {
    /// One call: the program's value, from a double or from two halves.
    fn call(&self, args: &MultiValue) -> mlua::Result<i64> {
        if self.wide {
            let (high, low) = self.function.call::<(f64, f64)>(args)?;
            Ok(((high as i64 as u64) << 32 | low as u64) as i64)
        } else {
            self.function.call::<f64>(args).map(|v| v as i64)
        }
    }
}

/// The Lua state a chunk runs in: the interpreter, the JIT, or the JIT for
/// wide chunks (allocation sinking off; see the module doc).
fn state_index(jit: bool, wide: bool) -> usize {
    match (jit, wide) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    }
}

fn new_state(jit: bool, wide: bool) -> mlua::Result<State> {
    // Only the base and jit libraries: the generated code needs nothing else.
    let lua = Lua::new_with(StdLib::JIT, LuaOptions::default())?;
    if !jit {
        lua.load("jit.off()").exec()?;
    } else if wide {
        lua.load("jit.opt.start('-sink')").exec()?;
    }
    let on: bool = lua.load("return (jit.status())").eval()?;
    if on != jit {
        return Err(mlua::Error::RuntimeError(format!(
            "jit.status() is {on} after asking for {jit}"
        )));
    }
    Ok(State {
        lua,
        functions: HashMap::new(),
    })
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_i64(r: &mut impl Read) -> io::Result<i64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(i64::from_le_bytes(b))
}

fn error(w: &mut impl Write, message: &str) -> io::Result<()> {
    w.write_all(b"E")?;
    w.write_all(&(message.len() as u32).to_le_bytes())?;
    w.write_all(message.as_bytes())
}

fn main() {
    exit_with_parent();
    if let Err(e) = serve() {
        // A closed pipe is the normal way to stop.
        if e.kind() != io::ErrorKind::UnexpectedEof {
            eprintln!("vm-perf-luajit: {e}");
            std::process::exit(1);
        }
    }
}

/// A helper must not outlive vm-perf: if vm-perf is stopped (`--timeout`,
/// a signal) while a program runs here, nobody reads our pipe again and an
/// endless Lua loop would spin on. The serving thread is busy inside Lua, so
/// a watchdog thread notices the parent is gone (we were re-parented) and
/// ends the process.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(1);
            }
        }
    });
}

fn serve() -> io::Result<()> {
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    // One Lua state per mode (`state_index`), made on first use.
    let mut states: [Option<State>; 3] = [None, None, None];
    let mut next_handle = 0u32;
    let mut owner: HashMap<u32, usize> = HashMap::new();
    loop {
        match read_u8(&mut input)? {
            b'C' => {
                let jit = read_u8(&mut input)? != 0;
                let wide = read_u8(&mut input)? != 0;
                let clock = read_u8(&mut input)?;
                let len = read_u32(&mut input)? as usize;
                let mut source = vec![0; len];
                input.read_exact(&mut source)?;
                let index = state_index(jit, wide);
                let slot = &mut states[index];
                if slot.is_none() {
                    match new_state(jit, wide) {
                        Ok(s) => *slot = Some(s),
                        Err(e) => {
                            error(&mut output, &e.to_string())?;
                            output.flush()?;
                            continue;
                        }
                    }
                }
                let state = slot.as_mut().expect("just made");
                let start = Stopwatch::start(clock);
                let loaded = state
                    .lua
                    .load(&source[..])
                    .set_name("=program")
                    .call::<Function>(());
                let nanos = start.nanos();
                match loaded {
                    Ok(f) => {
                        let handle = next_handle;
                        next_handle = next_handle.wrapping_add(1);
                        state.functions.insert(handle, Loaded { function: f, wide });
                        owner.insert(handle, index);
                        output.write_all(b"K")?;
                        output.write_all(&handle.to_le_bytes())?;
                        output.write_all(&nanos.to_le_bytes())?;
                    }
                    Err(e) => error(&mut output, &e.to_string())?,
                }
            }
            b'X' => {
                let handle = read_u32(&mut input)?;
                let clock = read_u8(&mut input)?;
                let reps = read_u64(&mut input)?.max(1);
                let expected = read_i64(&mut input)?;
                let n = read_u32(&mut input)? as usize;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(read_i64(&mut input)?);
                }
                let f = owner
                    .get(&handle)
                    .and_then(|&s| states[s].as_ref())
                    .and_then(|s| s.functions.get(&handle));
                let Some(f) = f else {
                    error(&mut output, &format!("no function with handle {handle}"))?;
                    output.flush()?;
                    continue;
                };
                let mut args = MultiValue::with_capacity(2 * n);
                for v in values {
                    if f.wide {
                        // Both halves are exact doubles.
                        args.push_back(Value::Number((v >> 32) as f64));
                        args.push_back(Value::Number((v as u64 & 0xffff_ffff) as f64));
                    } else {
                        // LuaJIT numbers are doubles: exact up to 2^53.
                        args.push_back(Value::Number(v as f64));
                    }
                }
                // The same loop vm-perf times around its own engines: one
                // call and one comparison with the expected value per run.
                let start = Stopwatch::start(clock);
                let mut result = Ok(0);
                for _ in 0..reps {
                    result = f.call(&args);
                    if !matches!(result, Ok(v) if v == expected) {
                        break;
                    }
                }
                let nanos = start.nanos();
                match result {
                    Ok(v) => {
                        output.write_all(b"V")?;
                        output.write_all(&v.to_le_bytes())?;
                        output.write_all(&nanos.to_le_bytes())?;
                    }
                    // A Lua error's own message (the program's depth error).
                    Err(mlua::Error::RuntimeError(e)) => error(&mut output, &e)?,
                    Err(e) => error(&mut output, &e.to_string())?,
                }
            }
            b'D' => {
                let handle = read_u32(&mut input)?;
                if let Some(s) = owner.remove(&handle) {
                    if let Some(state) = states[s].as_mut() {
                        state.functions.remove(&handle);
                    }
                }
                continue; // no reply
            }
            b'J' => {
                let jit = read_u8(&mut input)? != 0;
                let status = match &states[jit as usize] {
                    Some(s) => s
                        .lua
                        .load("return (jit.status())")
                        .eval::<bool>()
                        .unwrap_or(false),
                    None => new_state(jit, false)
                        .and_then(|s| s.lua.load("return (jit.status())").eval::<bool>())
                        .unwrap_or(false),
                };
                output.write_all(&[b'S', status as u8])?;
            }
            other => {
                error(&mut output, &format!("unknown request {other}"))?;
                output.flush()?;
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request"));
            }
        }
        output.flush()?;
    }
}
