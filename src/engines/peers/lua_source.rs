//! AST → Lua source, shared by the Lua peers (`lua54`, `luajit`, `luajit_interp`).
//!
//! The chunk returns one function; its parameters are the arguments (`a0`,
//! `a1`, … or, beyond [`ARG_PARAMS`] arguments, a table `A` made from `...`).
//! `Let` level `k` (counted from the outermost binding) is the Lua local `lk`,
//! or `S[k - LOCAL_LEVELS + 1]` in a spill table beyond [`LOCAL_LEVELS`]
//! levels, because a Lua function has at most 200 active locals; pending
//! temporaries likewise move to a table `T` beyond [`SPILL_TEMPS_AT`].
//!
//! Lua expressions have no statements inside them, so a node that needs one
//! (`Let`, `Set`, `While`, `Then`) is lowered to statements emitted *before*
//! the expression that uses its value. Strict left-to-right order is kept by
//! one rule: before the right operand of `Add` emits a statement that can
//! write a local (`Set`, or `Let` into a spill slot), a left operand that
//! reads a local is first copied into a temporary. A `Let` whose value is
//! needed inside an expression becomes `local t; do local lk = …; t = … end`;
//! a `Let` that runs to the end of its block is just `local lk = …`, so long
//! chains of `let`s do not nest blocks. Temporaries are pooled per block and
//! reused once their value is consumed.
//!
//! Lua's parser limits nesting to about 200 C levels and a function to 200
//! locals and 250–255 registers; the translator splits deep sums into
//! temporaries every [`MAX_PARENS`] levels and reports the nesting and local
//! counts it produced, so an engine can refuse (via `supports`) what Lua would
//! reject instead of failing at load time.
//!
//! Numbers: Lua 5.4 integers wrap exactly like ours, so [`Dialect::Lua54`]
//! only takes care to write `i64::MIN` without a float conversion. LuaJIT's
//! numbers are doubles, exact to 2⁵³ ([`Dialect::LuaJit`]). Its wide form,
//! [`Dialect::LuaJitInt64`], computes in LuaJIT's 64-bit integers instead
//! (`int64_t` cdata, whose `+` and `-` wrap modulo 2⁶⁴): every literal is an
//! `LL` literal, and since a double cannot carry every `i64` across the
//! call, the chunk returns a wrapper that takes each argument as two exact
//! doubles (its high 32 bits, signed, and its low 32 bits) and returns the
//! value the same way, around the program's function.

use crate::front::ast::Expr;
use crate::front::program::Program;
use std::fmt::Write;

/// Which Lua reads the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Lua54,
    LuaJit,
    /// LuaJIT computing in `int64_t` cdata (see the module doc).
    LuaJitInt64,
}

/// The wide form's wrapper around the program's function `P`: arguments
/// arrive as (high, low) pairs of doubles, the value leaves as one, both
/// exact; `+ 0ULL` reads the value's bits as unsigned for the split.
const INT64_WRAPPER: &str = "\
return function(...)
  local halves, args = {...}, {}
  for i = 1, select('#', ...) / 2 do
    args[i] = halves[2 * i - 1] * 4294967296LL + halves[2 * i]
  end
  local bits = P(unpack(args)) + 0ULL
  return tonumber(bits / 4294967296ULL), tonumber(bits % 4294967296ULL)
end
";

/// Arguments passed as named parameters up to this count, else as a table.
pub const ARG_PARAMS: usize = 16;
/// `Let` levels kept in Lua locals; deeper levels live in the spill table.
pub const LOCAL_LEVELS: usize = 80;
/// Programs larger than this are refused: every `Let` and many temporaries
/// declare a Lua local, and one Lua function may declare at most 32,767.
pub const MAX_NODES: usize = 12_000;
/// Active locals beyond which new temporaries go to the spill table `T`.
/// With at most [`LOCAL_LEVELS`] `Let` locals on top, a function never has
/// more than 181 locals active: under Lua's 200, and with [`MAX_PARENS`]
/// expression registers under LuaJIT's 250 slots.
pub const SPILL_TEMPS_AT: usize = 100;
/// Deepest parenthesised nesting of one expression before it is split.
pub const MAX_PARENS: usize = 8;
/// Largest block nesting plus expression nesting we hand to Lua. Its parser
/// stops at 200 C levels, some of which the chunk and the call take: both
/// Lua 5.4 and LuaJIT load 193 of our levels and refuse 198 (measured by
/// `tests/peers.rs`: `lua_nesting_limits_are_declared_not_hit`).
pub const MAX_LEVELS: usize = 188;
/// Most active locals (parameters, `Let`s, temporaries) we hand to Lua.
pub const MAX_ACTIVE: usize = 190;
/// Most functions we hand to Lua: each is a local of the chunk, which
/// holds at most 200.
pub const MAX_FUNCTIONS: usize = 150;
/// Upvalues a LuaJIT function may have.
pub const MAX_UPVALUES: usize = 60;
/// The message of the Lua error raised at the call that would make more
/// than [`crate::MAX_CALLS`] calls active.
pub const DEPTH_ERROR: &str = "call depth exceeded";

/// The generated chunk and what it asks of the Lua parser.
#[derive(Clone, Debug)]
pub struct LuaSource {
    pub text: String,
    /// Deepest block nesting plus expression nesting at any point.
    pub levels: usize,
    /// Most locals active at once in any function.
    pub active: usize,
    /// A bound on the registers (stack slots) any function's frame uses:
    /// its locals and the temporaries its expressions need at once.
    pub frame: usize,
    /// The same for main, which sits below every call.
    pub main_frame: usize,
    /// A bound on how far above its caller's base a called function's
    /// frame starts, over every call site in a function: the call's
    /// function register plus its frame link (two slots in LuaJIT's
    /// layout, one in Lua 5.4's: a bound for both). A recursion's frames
    /// are this far apart, so this, not [`LuaSource::frame`], divides the
    /// stack; only the deepest frame needs its whole `frame` above it.
    pub call_reach: usize,
}

/// Whether the translation stays within Lua's parser limits, decided without
/// translating and without recursion (so it is cheap and safe on any stack):
/// the deepest block nesting the translation opens in any function, plus
/// [`MAX_PARENS`] for an expression inside it, must stay within
/// [`MAX_LEVELS`]; a Level-2 program's functions, and what each function
/// refers to from outside, must fit Lua's locals and upvalues. Locals need
/// no check: temporaries spill past [`SPILL_TEMPS_AT`], `Let`s past
/// [`LOCAL_LEVELS`].
pub fn check(program: &Program) -> Result<(), String> {
    if program.node_count() > MAX_NODES {
        return Err(format!(
            "{} nodes; Lua allows 32,767 local declarations in one function, so we stop at {MAX_NODES}",
            program.node_count()
        ));
    }
    if program.functions().len() > MAX_FUNCTIONS {
        return Err(format!(
            "{} functions; a Lua chunk holds at most 200 locals, so we stop at {MAX_FUNCTIONS}",
            program.functions().len()
        ));
    }
    let bodies = std::iter::once((program.expr(), 0))
        .chain(program.functions().iter().map(|f| (&f.body, f.arity())));
    let mut deepest = 1;
    for (body, params) in bodies {
        // (node, blocks open around it, runs to the end of its block, scope)
        let mut todo = vec![(body, 1usize, true, params)];
        // What the function's code names outside itself: LuaJIT allows 60.
        let mut callees = std::collections::BTreeSet::new();
        while let Some((e, blocks, tail, scope)) = todo.pop() {
            deepest = deepest.max(blocks);
            match e {
                Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
                Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
                    todo.push((a, blocks, false, scope));
                    todo.push((b, blocks, false, scope));
                }
                Expr::Then(a, b) => {
                    todo.push((a, blocks, false, scope));
                    todo.push((b, blocks, tail, scope));
                }
                Expr::Set(_, v) => todo.push((v, blocks, false, scope)),
                Expr::While(c, body) => {
                    todo.push((c, blocks + 1, false, scope));
                    todo.push((body, blocks + 1, true, scope));
                }
                Expr::If(c, t, f) => {
                    todo.push((c, blocks, false, scope));
                    todo.push((t, blocks + 1, true, scope));
                    todo.push((f, blocks + 1, true, scope));
                }
                Expr::Call(f, args) => {
                    callees.insert(*f);
                    todo.extend(args.iter().map(|a| (a, blocks, false, scope)));
                }
                Expr::Let(init, body) => {
                    // As `Gen::stmt`/`Gen::value`: a `do` block unless the
                    // binding runs to the end of its block or is spilled.
                    let inner = blocks + (!tail && scope < LOCAL_LEVELS) as usize;
                    todo.push((init, inner, false, scope));
                    todo.push((body, inner, true, scope + 1));
                }
            }
        }
        // The callees, the depth counter and the arguments it may read.
        if callees.len() + 1 + ARG_PARAMS > MAX_UPVALUES {
            return Err(format!(
                "a function calls {} others; LuaJIT's functions refer to at most 60 outside names",
                callees.len()
            ));
        }
    }
    let levels = deepest + MAX_PARENS + 1;
    if levels > MAX_LEVELS {
        return Err(format!(
            "the Lua translation nests {deepest} blocks deep; Lua's parser allows about {}",
            MAX_LEVELS - MAX_PARENS - 1
        ));
    }
    Ok(())
}

/// Translates `program`; `Err` if the result would exceed Lua's limits
/// (never for a program [`check`] accepts). Recursive: at most
/// [`crate::MAX_DEPTH`] frames of a few hundred bytes.
///
/// A Level-2 program's functions are chunk-level locals `f0`, `f1`, …
/// (declared first, so any may call any), each a Lua function whose
/// parameters are its first `Let` levels; a call is a Lua call. The run's
/// arguments they read are chunk-level copies `u<i>` (or the table `A`)
/// that main sets. The depth limit is a counter `D` of active calls, also
/// chunk-level: each function checks and raises it on entry, lowers it
/// before it returns, and main zeroes it, so a run that failed leaves
/// nothing behind; [`DEPTH_ERROR`] is the error raised at the limit.
pub fn translate(program: &Program, dialect: Dialect) -> Result<LuaSource, String> {
    let args_in_table = program.arg_count() > ARG_PARAMS;
    let functions = program.functions();
    let mut g = Gen {
        out: String::new(),
        dialect,
        args_in_table,
        in_function: false,
        scope: 0,
        blocks: Vec::new(),
        base_active: 0,
        max_levels: 0,
        max_active: 0,
        max_frame: 0,
        main_frame: 0,
        frame: 0,
        call_reach: 0,
        spill_free: Vec::new(),
        spill_next: 0,
    };
    let wide = dialect == Dialect::LuaJitInt64;
    // The arguments the functions read (copied into chunk-level locals).
    let mut shared_args = std::collections::BTreeSet::new();
    for f in functions {
        let mut todo = vec![&f.body];
        while let Some(e) = todo.pop() {
            if let Expr::Arg(i) = e {
                shared_args.insert(*i);
            }
            todo.extend(e.children());
        }
    }
    if !functions.is_empty() {
        g.out.push_str("local D = 0\n");
        let names: Vec<String> = (0..functions.len()).map(|k| format!("f{k}")).collect();
        g.out.push_str(&format!("local {}\n", names.join(", ")));
        if args_in_table {
            g.out.push_str("local A\n");
        } else if !shared_args.is_empty() {
            let names: Vec<String> = shared_args.iter().map(|i| format!("u{i}")).collect();
            g.out.push_str(&format!("local {}\n", names.join(", ")));
        }
        g.in_function = true;
        for (k, (f, facts)) in functions.iter().zip(program.function_facts()).enumerate() {
            let params: Vec<String> = (0..f.arity()).map(|i| format!("l{i}")).collect();
            g.body(
                &format!("f{k} = function({})", params.join(", ")),
                &f.body,
                f.arity(),
                f.arity(),
                facts.max_locals,
            );
        }
        g.in_function = false;
    }
    let mut header = String::from(if wide {
        "local P = function("
    } else {
        "return function("
    });
    if args_in_table {
        header.push_str("...)");
    } else {
        let params: Vec<String> = (0..program.arg_count()).map(|i| format!("a{i}")).collect();
        header.push_str(&params.join(", "));
        header.push(')');
    }
    let base = if args_in_table {
        1
    } else {
        program.arg_count()
    };
    g.body(&header, program.expr(), 0, base, program.max_locals());
    if !functions.is_empty() {
        // Main's prologue, placed after its header by `body`.
        let mut prologue = String::from("  D = 0\n");
        if args_in_table {
            prologue.push_str("  A = {...}\n");
        } else if !shared_args.is_empty() {
            let us: Vec<String> = shared_args.iter().map(|i| format!("u{i}")).collect();
            let r#as: Vec<String> = shared_args.iter().map(|i| format!("a{i}")).collect();
            prologue.push_str(&format!("  {} = {}\n", us.join(", "), r#as.join(", ")));
        }
        let at = g.out.rfind(&header).expect("main was just written") + header.len() + 1;
        g.out.insert_str(at, &prologue);
    } else if args_in_table {
        let at = g.out.rfind(&header).expect("main was just written") + header.len() + 1;
        g.out.insert_str(at, "  local A = {...}\n");
    }
    if wide {
        g.out.push_str(INT64_WRAPPER);
    }
    let source = LuaSource {
        text: g.out,
        levels: g.max_levels,
        active: g.max_active,
        frame: g.max_frame,
        main_frame: g.main_frame,
        call_reach: g.call_reach,
    };
    if source.levels > MAX_LEVELS {
        return Err(format!(
            "the Lua translation nests {} levels deep; Lua's parser allows about {MAX_LEVELS}",
            source.levels
        ));
    }
    if source.active > MAX_ACTIVE {
        return Err(format!(
            "the Lua translation needs {} locals at once; a Lua function allows {MAX_ACTIVE}",
            source.active
        ));
    }
    Ok(source)
}

/// How many active calls of `program` a Lua whose stack holds `slots`
/// slots, with `link` slots per frame besides the function's own registers,
/// can hold: `None` when it holds every call up to the one that fails at
/// the limit (see [`crate::engine::Technique::calls_held`]). Active calls
/// are [`LuaSource::call_reach`] apart; the deepest needs its whole
/// [`LuaSource::frame`].
pub fn calls_held(program: &Program, slots: usize, link: usize) -> Option<usize> {
    if program.functions().is_empty() {
        return None;
    }
    let source = translate(program, Dialect::Lua54).ok()?;
    if source.call_reach == 0 {
        // Functions that call nothing: at most one is active.
        return None;
    }
    // Lua's own reserve at the top of the stack, the chunk's frame below
    // every call and the deepest call's whole frame above them; between,
    // each active call moves the base up by at most the call reach (plus
    // the spare in `link`).
    let room = slots.saturating_sub(source.main_frame + 64 + source.frame + link);
    let held = room / (source.call_reach + link - 2) + 1;
    (held <= crate::MAX_CALLS).then_some(held)
}

/// An expression ready to use, and what it costs.
struct Val {
    code: String,
    /// Reads a local, so a later store could change it.
    volatile: bool,
    /// A top-level `+`: needs parentheses as a right operand.
    is_sum: bool,
    /// Parenthesis nesting inside `code`.
    nest: usize,
    /// Temporaries (block, index) this value holds until it is consumed.
    temps: Vec<Temp>,
    /// Registers its evaluation needs at once beyond the active locals (a
    /// Sethi–Ullman count; a call needs its function, frame link and
    /// arguments in consecutive registers).
    regs: usize,
    /// For the calls inside it: a bound on the register, counted from where
    /// its evaluation starts, at which a called frame's base lies (the
    /// call's function register + 2); 0 without calls.
    reach: usize,
}

/// A temporary: a Lua local of an open block, or a slot of the spill table
/// `T` once the function has [`SPILL_TEMPS_AT`] locals active.
#[derive(Clone, Copy)]
enum Temp {
    Local { block: usize, index: usize },
    Spill(usize),
}

impl Temp {
    fn name(self) -> String {
        match self {
            Temp::Local { block, index } => format!("t{block}_{index}"),
            Temp::Spill(k) => format!("T[{}]", k + 1),
        }
    }
}

impl Val {
    /// `a op b`, parenthesising a right operand that is a sum; `sum`: the
    /// result is one (`+` or `-`).
    fn binary(a: Val, op: &str, b: Val, sum: bool) -> Val {
        let paren = b.is_sum;
        let code = if paren {
            format!("{}{op}({})", a.code, b.code)
        } else {
            format!("{}{op}{}", a.code, b.code)
        };
        let mut temps = a.temps;
        temps.extend(b.temps);
        Val {
            code,
            volatile: a.volatile || b.volatile,
            is_sum: sum,
            nest: a.nest.max(b.nest + paren as usize),
            temps,
            regs: a.regs.max(b.regs + 1),
            reach: a.reach.max(after_one(b.reach)),
        }
    }

    fn atom(code: String, volatile: bool) -> Val {
        Val {
            code,
            volatile,
            is_sum: false,
            nest: 0,
            temps: Vec::new(),
            regs: 1,
            reach: 0,
        }
    }
}

/// A right operand's reach: it is evaluated with the left one held in a
/// register below it.
fn after_one(reach: usize) -> usize {
    if reach == 0 { 0 } else { reach + 1 }
}

struct Block {
    /// Temporaries declared in this block (`t<block>_<i>`, i < declared).
    declared: usize,
    free: Vec<usize>,
    /// `local lk` declarations made directly in this block.
    lets: usize,
}

struct Gen {
    out: String,
    dialect: Dialect,
    args_in_table: bool,
    /// Translating a function's body (not main's): the run's arguments are
    /// the chunk's copies.
    in_function: bool,
    /// `Let`s in scope.
    scope: usize,
    blocks: Vec<Block>,
    base_active: usize,
    max_levels: usize,
    max_active: usize,
    /// [`LuaSource::frame`] and [`LuaSource::main_frame`], and the current
    /// body's so far.
    max_frame: usize,
    main_frame: usize,
    frame: usize,
    /// [`LuaSource::call_reach`] so far, over every function (not main).
    call_reach: usize,
    /// Spill-table temporaries: free slots and the next new one.
    spill_free: Vec<usize>,
    spill_next: usize,
}

impl Gen {
    /// One Lua function: `header`, then `body` with `params` parameters
    /// as its first `Let` levels and `base` locals active besides its own
    /// `Let`s (the parameters), returning its value; a Level-2 function
    /// also keeps the depth counter.
    fn body(&mut self, header: &str, body: &Expr, params: usize, base: usize, max_locals: usize) {
        self.scope = params;
        self.blocks.clear();
        self.spill_free.clear();
        self.spill_next = 0;
        self.frame = 0;
        self.base_active = base;
        self.out.push_str(header);
        self.out.push('\n');
        self.open_block();
        if self.in_function {
            self.line(&format!(
                "if D >= {} then error(\"{DEPTH_ERROR}\", 0) end",
                crate::MAX_CALLS
            ));
            self.line("D = D + 1");
        }
        if max_locals > LOCAL_LEVELS {
            self.line("local S = {}");
            self.base_active += 1;
        }
        // `local T = {}` goes here if the body spills temporaries.
        let spill_table_at = self.out.len();
        self.base_active += 1;
        let v = self.value(body, true);
        self.note_nest(v.nest);
        if self.in_function {
            // The value first: it may call further functions.
            self.line(&format!("local r = {}", v.code));
            self.line("D = D - 1");
            self.line("return r");
        } else {
            self.line(&format!("return {}", v.code));
        }
        if self.spill_next > 0 {
            self.out.insert_str(spill_table_at, "  local T = {}\n");
        }
        self.close_block();
        self.out.push_str("end\n");
        // The function slot, and `r` or the return value.
        let frame = self.frame + 2;
        if self.in_function {
            self.max_frame = self.max_frame.max(frame);
        } else {
            self.main_frame = frame;
        }
    }

    fn line(&mut self, text: &str) {
        for _ in 0..self.blocks.len() {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn open_block(&mut self) {
        self.blocks.push(Block {
            declared: 0,
            free: Vec::new(),
            lets: 0,
        });
        self.note();
    }

    fn close_block(&mut self) {
        self.blocks.pop();
    }

    /// Records the nesting and the active locals at this point.
    fn note(&mut self) {
        self.max_levels = self.max_levels.max(self.blocks.len());
        self.max_active = self.max_active.max(self.active());
    }

    /// Locals active now: parameters, tables, `Let`s and temporaries.
    fn active(&self) -> usize {
        self.base_active
            + self
                .blocks
                .iter()
                .map(|b| b.declared + b.lets)
                .sum::<usize>()
    }

    fn note_nest(&mut self, nest: usize) {
        self.max_levels = self.max_levels.max(self.blocks.len() + nest + 1);
    }

    fn release(&mut self, v: &Val) {
        for &t in &v.temps {
            match t {
                Temp::Local { block, index } => self.blocks[block].free.push(index),
                Temp::Spill(k) => self.spill_free.push(k),
            }
        }
    }

    /// A temporary in the current block, declared (uninitialised) if new;
    /// in the spill table once too many locals are active.
    fn new_temp(&mut self, init: Option<&str>) -> Temp {
        let b = self.blocks.len() - 1;
        let (temp, declare) = if let Some(i) = self.blocks[b].free.pop() {
            (Temp::Local { block: b, index: i }, false)
        } else if self.active() < SPILL_TEMPS_AT {
            self.blocks[b].declared += 1;
            (
                Temp::Local {
                    block: b,
                    index: self.blocks[b].declared - 1,
                },
                true,
            )
        } else {
            let k = self.spill_free.pop().unwrap_or_else(|| {
                self.spill_next += 1;
                self.spill_next - 1
            });
            (Temp::Spill(k), false)
        };
        let name = temp.name();
        match (declare, init) {
            (true, Some(init)) => self.line(&format!("local {name} = {init}")),
            (true, None) => self.line(&format!("local {name}")),
            (false, Some(init)) => self.line(&format!("{name} = {init}")),
            (false, None) => {}
        }
        self.note();
        temp
    }

    /// Evaluates `v` now into a temporary that nothing else writes.
    fn save(&mut self, v: Val) -> Val {
        self.note_nest(v.nest);
        self.note_reach(&v);
        self.release(&v);
        let t = self.new_temp(Some(&v.code));
        Val {
            code: t.name(),
            volatile: false,
            is_sum: false,
            nest: 0,
            temps: vec![t],
            regs: 1,
            reach: 0,
        }
    }

    /// The calls inside `v`, evaluated from the first free register now.
    /// Only functions' calls count: main's sit inside [`LuaSource::main_frame`].
    fn note_reach(&mut self, v: &Val) {
        if v.reach > 0 && self.in_function {
            self.call_reach = self.call_reach.max(self.active() + v.reach);
        }
    }

    /// Where `Let` level `level` lives: a Lua local or a spill slot.
    fn slot(&self, level: usize) -> String {
        if level < LOCAL_LEVELS {
            format!("l{level}")
        } else {
            format!("S[{}]", level - LOCAL_LEVELS + 1)
        }
    }

    fn literal(&self, n: i64) -> String {
        match (n, self.dialect) {
            // `-9223372036854775808` would read 2^63 as a float, then negate it.
            (i64::MIN, Dialect::Lua54) => "(-9223372036854775807 - 1)".to_string(),
            // Likewise 2^63 is no `int64_t` literal.
            (i64::MIN, Dialect::LuaJitInt64) => "(-9223372036854775807LL - 1LL)".to_string(),
            (_, Dialect::LuaJitInt64) => format!("{n}LL"),
            _ => n.to_string(),
        }
    }

    /// Binds the next level to `init` as the rest of the current block.
    fn bind(&mut self, init: &Expr) {
        let v = self.value(init, false);
        self.note_nest(v.nest);
        self.release(&v);
        let level = self.scope;
        if level < LOCAL_LEVELS {
            self.line(&format!("local l{level} = {}", v.code));
            self.blocks.last_mut().expect("inside the function").lets += 1;
            self.note();
        } else {
            let slot = self.slot(level);
            self.line(&format!("{slot} = {}", v.code));
        }
        self.scope += 1;
    }

    /// Emits `e` for its effects only. `tail`: nothing follows in this block.
    fn stmt(&mut self, e: &Expr, tail: bool) {
        match e {
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
            Expr::If(c, t, f) => {
                let c = self.cond(c);
                self.line(&format!("if {} then", c.code));
                self.open_block();
                self.stmt(t, true);
                self.close_block();
                if !matches!(**f, Expr::Litr(_)) {
                    self.line("else");
                    self.open_block();
                    self.stmt(f, true);
                    self.close_block();
                }
                self.line("end");
            }
            Expr::Call(..) => {
                // A call as a statement; a call saved into a temporary (too
                // deeply nested) has run already.
                let v = self.value(e, false);
                self.note_nest(v.nest);
                self.release(&v);
                if v.code.ends_with(')') {
                    self.line(&v.code);
                }
            }
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Lt(a, b) => {
                self.stmt(a, false);
                self.stmt(b, false);
            }
            Expr::Then(a, b) => {
                self.stmt(a, false);
                self.stmt(b, tail);
            }
            Expr::Let(init, body) => {
                let wrap = !tail && self.scope < LOCAL_LEVELS;
                if wrap {
                    self.line("do");
                    self.open_block();
                }
                self.bind(init);
                self.stmt(body, true);
                self.scope -= 1;
                if wrap {
                    self.close_block();
                    self.line("end");
                }
            }
            Expr::Set(d, value) => {
                let v = self.value(value, false);
                self.note_nest(v.nest);
                self.release(&v);
                let slot = self.slot(self.scope - 1 - d);
                self.line(&format!("{slot} = {}", v.code));
            }
            Expr::While(cond, body) => self.while_(cond, body),
        }
    }

    fn while_(&mut self, cond: &Expr, body: &Expr) {
        // The header depends on whether the condition needs statements,
        // which we only know once it is generated inside the loop block.
        let header_at = self.out.len();
        let indent = "  ".repeat(self.blocks.len());
        self.open_block();
        let before = self.out.len();
        let c = self.cond(cond);
        let header = if self.out.len() == before {
            format!("{indent}while {} do\n", c.code)
        } else {
            self.line(&format!("if not ({}) then break end", c.code));
            format!("{indent}while true do\n")
        };
        self.out.insert_str(header_at, &header);
        self.stmt(body, true);
        self.close_block();
        self.line("end");
    }

    /// A condition as a Lua boolean expression (`c > 0`, or `a < b` for a
    /// comparison), after the statements it needs.
    fn cond(&mut self, e: &Expr) -> Val {
        let mut c = match e {
            Expr::Lt(a, b) => {
                let (va, vb) = self.operands(a, b);
                Val::binary(va, " < ", vb, false)
            }
            _ => {
                let v = self.value(e, false);
                Val {
                    code: format!("{} > 0", v.code),
                    ..v
                }
            }
        };
        self.note_nest(c.nest);
        self.note_reach(&c);
        self.release(&c);
        c.temps.clear();
        c
    }

    /// Both operands of a binary node, in order: a left one that reads a
    /// local is saved first if the right one may store into one.
    fn operands(&mut self, a: &Expr, b: &Expr) -> (Val, Val) {
        let mut va = self.value(a, false);
        if va.volatile && writes_a_local(b) {
            va = self.save(va);
        }
        let vb = self.value(b, false);
        (va, vb)
    }

    /// Emits what `e` needs first and returns its value as an expression,
    /// noting the registers it takes.
    fn value(&mut self, e: &Expr, tail: bool) -> Val {
        let v = self.value_of(e, tail);
        self.frame = self.frame.max(self.active() + v.regs);
        self.note_reach(&v);
        v
    }

    fn value_of(&mut self, e: &Expr, tail: bool) -> Val {
        match e {
            Expr::Litr(n) => Val::atom(self.literal(*n), false),
            Expr::Arg(i) => Val::atom(
                match (self.args_in_table, self.in_function) {
                    (true, _) => format!("A[{}]", i + 1),
                    (false, false) => format!("a{i}"),
                    (false, true) => format!("u{i}"),
                },
                false,
            ),
            Expr::Get(d) => Val::atom(self.slot(self.scope - 1 - d), true),
            Expr::Sub(a, b) => {
                let (va, vb) = self.operands(a, b);
                let v = Val::binary(va, " - ", vb, true);
                if v.nest >= MAX_PARENS {
                    self.save(v)
                } else {
                    v
                }
            }
            Expr::Lt(a, b) => {
                let (va, vb) = self.operands(a, b);
                let (one, zero) = (self.literal(1), self.literal(0));
                let mut v = Val::binary(va, " < ", vb, false);
                v.code = format!("({} and {one} or {zero})", v.code);
                v.nest += 1;
                if v.nest >= MAX_PARENS {
                    self.save(v)
                } else {
                    v
                }
            }
            Expr::If(c, t, f) => {
                let c = self.cond(c);
                let r = self.new_temp(None);
                self.line(&format!("if {} then", c.code));
                for (branch, first) in [(t, true), (f, false)] {
                    if !first {
                        self.line("else");
                    }
                    self.open_block();
                    let v = self.value(branch, true);
                    self.note_nest(v.nest);
                    self.release(&v);
                    self.line(&format!("{} = {}", r.name(), v.code));
                    self.close_block();
                }
                self.line("end");
                Val {
                    temps: vec![r],
                    ..Val::atom(r.name(), false)
                }
            }
            Expr::Call(f, args) => {
                let mut vals: Vec<Val> = Vec::with_capacity(args.len());
                for a in args {
                    if writes_a_local(a) {
                        for v in vals.iter_mut().filter(|v| v.volatile) {
                            let taken = std::mem::replace(v, Val::atom(String::new(), false));
                            *v = self.save(taken);
                        }
                    }
                    vals.push(self.value(a, false));
                }
                // The function and its frame link, then each argument in
                // the next register.
                let regs = vals
                    .iter()
                    .enumerate()
                    .map(|(i, v)| 2 + i + v.regs)
                    .max()
                    .unwrap_or(0)
                    .max(2 + vals.len());
                let reach = vals
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.reach > 0)
                    .map(|(i, v)| 2 + i + v.reach)
                    .fold(2, usize::max);
                let codes: Vec<&str> = vals.iter().map(|v| v.code.as_str()).collect();
                let v = Val {
                    code: format!("f{f}({})", codes.join(", ")),
                    volatile: vals.iter().any(|v| v.volatile),
                    is_sum: false,
                    nest: vals.iter().map(|v| v.nest).max().unwrap_or(0) + 1,
                    temps: vals.iter().flat_map(|v| v.temps.iter().copied()).collect(),
                    regs,
                    reach,
                };
                if v.nest >= MAX_PARENS {
                    self.save(v)
                } else {
                    v
                }
            }
            Expr::Add(a, b) => {
                let (va, vb) = self.operands(a, b);
                let paren = vb.is_sum;
                let mut code = va.code;
                code.push_str(" + ");
                if paren {
                    let _ = write!(code, "({})", vb.code);
                } else {
                    code.push_str(&vb.code);
                }
                let regs = va.regs.max(vb.regs + 1);
                let reach = va.reach.max(after_one(vb.reach));
                let mut temps = va.temps;
                temps.extend(vb.temps);
                let v = Val {
                    code,
                    volatile: va.volatile || vb.volatile,
                    is_sum: true,
                    nest: va.nest.max(vb.nest + paren as usize),
                    temps,
                    regs,
                    reach,
                };
                if v.nest >= MAX_PARENS {
                    self.save(v)
                } else {
                    v
                }
            }
            Expr::Then(a, b) => {
                self.stmt(a, false);
                self.value(b, tail)
            }
            Expr::Set(..) | Expr::While(..) => {
                self.stmt(e, false);
                Val::atom(self.literal(0), false)
            }
            Expr::Let(init, body) => {
                if tail || self.scope >= LOCAL_LEVELS {
                    // No Lua local to scope: bind in this block. A spill
                    // slot may be rebound later, so the value is volatile.
                    let wrap = !tail;
                    debug_assert!(!wrap || self.scope >= LOCAL_LEVELS);
                    self.bind(init);
                    let v = self.value(body, tail);
                    self.scope -= 1;
                    return v;
                }
                let r = self.new_temp(None);
                self.line("do");
                self.open_block();
                self.bind(init);
                let v = self.value(body, true);
                self.note_nest(v.nest);
                self.release(&v);
                self.line(&format!("{} = {}", r.name(), v.code));
                self.scope -= 1;
                self.close_block();
                self.line("end");
                Val {
                    code: r.name(),
                    volatile: false,
                    is_sum: false,
                    nest: 0,
                    temps: vec![r],
                    regs: 1,
                    reach: 0,
                }
            }
        }
    }
}

/// Whether evaluating `e` may store into a local an outer expression reads:
/// a `Set`, or a `Let` (which writes its slot; spill slots are shared).
fn writes_a_local(e: &Expr) -> bool {
    let mut todo = vec![e];
    while let Some(e) = todo.pop() {
        match e {
            Expr::Set(..) | Expr::Let(..) => return true,
            _ => todo.extend(e.children()),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::compile_source;

    fn lua(src: &str) -> String {
        let p = compile_source("t.vm", src).unwrap();
        translate(&p, Dialect::Lua54).unwrap().text
    }

    #[test]
    fn sum_reads_like_lua() {
        let text = lua(crate::workloads::workload("sum").unwrap().source);
        assert!(text.contains("while l1 > 0 do"), "{text}");
        assert!(text.contains("l0 = l0 + a1"), "{text}");
    }

    #[test]
    fn functions_are_lua_functions_with_a_depth_counter() {
        let text = lua(crate::workloads::workload("fib_recursive").unwrap().source);
        assert!(text.contains("local f0\nf0 = function(l0)"), "{text}");
        assert!(
            text.contains("if D >= 10000 then error(\"call depth exceeded\", 0) end"),
            "{text}"
        );
        assert!(text.contains("if l0 < 2 then"), "{text}");
        assert!(text.contains("f0(l0 - 1) + f0(l0 - 2)"), "{text}");
        assert!(text.contains("D = D - 1\n  return r"), "{text}");
        assert!(text.contains("return function(a0)\n  D = 0"), "{text}");
        // `<` where a value is needed, and arguments read in a function.
        let text = lua("fn f(x) { (x < arg(1)) + 1 } f(arg(0))");
        assert!(
            text.contains("((l0 < u1 and 1 or 0) + 1)")
                || text.contains("(l0 < u1 and 1 or 0) + 1"),
            "{text}"
        );
        assert!(text.contains("u1 = a1"), "{text}");
    }

    #[test]
    fn the_wide_form_computes_in_int64() {
        let p =
            compile_source("t.vm", "fn f(x) { x - 1 } f(arg(0)) + 9223372036854775807").unwrap();
        let text = translate(&p, Dialect::LuaJitInt64).unwrap().text;
        assert!(text.contains("l0 - 1LL"), "{text}");
        assert!(text.contains("9223372036854775807LL"), "{text}");
        assert!(text.contains("local P = function(a0)"), "{text}");
        assert!(text.contains("4294967296ULL"), "{text}");
    }

    #[test]
    fn a_frame_bound_covers_locals_and_call_arguments() {
        let small = compile_source("t.vm", "fn f(n) { f(n) } f(1)").unwrap();
        let big = compile_source(
            "t.vm",
            "fn f(a, b, c, d) { let x = a; let y = b; f(f(a, b, c, d), x, y, d) } f(1, 2, 3, 4)",
        )
        .unwrap();
        let frame = |p| translate(p, Dialect::Lua54).unwrap().frame;
        assert!(frame(&small) >= 4, "{}", frame(&small));
        assert!(
            frame(&big) > frame(&small) + 6,
            "{} {}",
            frame(&big),
            frame(&small)
        );
        assert_eq!(
            calls_held(&compile_source("t.vm", "1").unwrap(), 100, 2),
            None
        );
        assert!(calls_held(&big, 65_500, 3).is_some_and(|h| h < crate::MAX_CALLS));
    }

    #[test]
    fn left_operand_is_saved_before_a_store() {
        let text = lua("let x = 1; x + { x = 5; x }");
        assert!(text.contains("local t0_0 = l0"), "{text}");
    }

    #[test]
    fn minimum_literal_stays_an_integer() {
        assert!(lua("-9223372036854775808").contains("(-9223372036854775807 - 1)"));
    }

    /// `inner` wrapped `depth` times by `wrap`, validated.
    fn nested(inner: &str, depth: usize, wrap: impl Fn(&str) -> String) -> Program {
        let src = (0..depth).fold(inner.to_string(), |src, _| wrap(&src));
        compile_source("t.vm", &src).unwrap()
    }

    #[test]
    fn deep_sums_are_split() {
        let p = nested("arg(0)", 500, |src| format!("arg(0) + ({src})"));
        let s = translate(&p, Dialect::LuaJit).unwrap();
        assert!(s.levels <= MAX_PARENS + 2, "{}", s.levels);
    }

    #[test]
    fn refuses_blocks_nested_too_deep() {
        let p = nested("1", 300, |src| format!("while 0 {{ {src} }}"));
        assert!(check(&p).is_err());
        assert!(translate(&p, Dialect::Lua54).is_err());
    }
}
