//! `register_continuations_fused` — `register_continuations` plus declared
//! superinstructions.
//!
//! Everything is `register_continuations` (see that module): the same
//! compiler, locations, register allocation, calling convention, tape,
//! verifier and handlers. Its compiler takes this module's hook
//! (`Shapes`), which offers each `Add` and each loop test a
//! superinstruction first; anything else compiles as usual. Shapes are
//! chosen by node kinds and by code shape, never by a literal's value or an
//! index, and every location combination has its handler. **Every fused
//! shape:**
//!
//! 1. **Add and loop test.** A loop test `if c > 0 goto head` right after an
//!    `add` that writes `c` (the body's last statement, as a counted loop's
//!    step `n = n + -1`, or the condition's own last add, as `while d + 1`)
//!    → `dst = a + b; if dst > 0 goto head`: one dispatch instead of two.
//!    When the add ends the body, the plain test stays after it: the loop's
//!    entry `goto` runs it for the first test, and the fused op's exit way
//!    falls into it, which tests the same value again and falls through
//!    (one more dispatch per loop exit, none per iteration).
//! 2. **Two adds.** `(t + p) + q`, and `p + (q + t)` when `t` stores to no
//!    local that `p` or `q` reads (so reading them after `t` is still left
//!    to right), with leaves `p` and `q` and anything `t` → `t` computed
//!    into `acc`, then `dst = acc + p + q`: one dispatch for two `Add`
//!    nodes. A chain of sums (`acc + x + 1 + x + 2 + …`, or nested to the
//!    right) pairs its adds from the outside in.
//!
//! 3. **Add and return.** A function whose value is a plain add into `acc`
//!    (`fib(n - 1) + fib(n - 2)`) of operands in `acc`, a slot or a
//!    constant, not both in `acc` → `return a + b to caller`: one dispatch
//!    instead of two on every return of such a function. (Registers hold
//!    values of loops, rarely a function's last sum: those stay plain.)
//!
//! With `a - n` compiled as `a + -n` (see `register_continuations`), a
//! counted loop stepping down by `n = n - 1` fuses by shape 1 too.
//!
//! On `sum` the loop runs two dispatches per iteration: `r0 = r0 + [1]` and
//! `r1 = r1 + -1; if r1 > 0 goto head`.
//!
//! **Unsafe** code rests on the verifier, as in `register_continuations`.
//!
//! Trade-off: 369 more handlers and a hook in the compiler for fewer
//! dispatches on loops and on long sums.

use super::register_continuations::{
    Code, Compiler, Family, Loc, LocOperand, Lowering, Test, compile,
};
use crate::engines::threaded::{Bounds, Isa, Layout, Operand, Stable, threaded_engine};
use crate::front::ast::Expr;
use std::marker::PhantomData;

/// An operand in `acc`, a slot or a constant (no register), in a family of
/// `N` registers: its own selectors, so that a table over these three is
/// dense.
pub struct Memory<const N: usize>;

impl<const N: usize> Operand for Memory<N> {
    type Value = Loc;
    const WORDS: u64 = 1 << 1 | 1 << 2;
    fn encode(l: Loc, _: &Layout) -> (u8, Option<i64>) {
        match l {
            Loc::Acc => (0, None),
            Loc::Slot(s) => (1, Some(s as i64)),
            Loc::Const(n) => (2, Some(n)),
            // No handler.
            Loc::Reg(_) => (u8::MAX, None),
        }
    }
    fn decode(m: u8, x: i64, _: &Layout) -> Loc {
        match m {
            0 => Loc::Acc,
            1 => Loc::Slot(x as usize),
            2 => Loc::Const(x),
            _ => Loc::Reg(usize::MAX),
        }
    }
    fn check(m: u8, x: i64, b: &Bounds) -> bool {
        m != 1 || b.slot(x)
    }
    fn location(m: u8) -> String {
        // `acc`, a slot, a constant: `LocOperand`'s kinds 0, `N + 1`, `N + 2`.
        LocOperand::<N>::location([0, N as u8 + 1, N as u8 + 2][m.min(2) as usize])
    }
}

/// The superinstructions of a register family, written once: in the
/// module it is invoked in (after that family's [`register_family!`]), the
/// fused instruction set (headed by `isa`) and its handlers.
///
/// [`register_family!`]: super::register_continuations::register_family
macro_rules! register_fused_family {
    (
        regs: [$(($r:ident, $K:ident)),* $(,)?],
        abi: $abi:literal,
        attrs: [$($ha:meta),*],
        isa: { $($isa:tt)* }
    ) => {
        /// The location kind of [`Memory`] selector `m`: `acc`, a slot, a
        /// constant.
        const fn memory(m: u8) -> u8 {
            [ACC, SLOT, CONST][m as usize]
        }

        $crate::engines::threaded::isa! {
            $($isa)*
            /// `dst = a + b; if dst > 0 goto target` (shape 1)
            AddJumpIfPos(dst: Loc as LocOperand<REGS>, a: Loc as LocOperand<REGS>,
                         b: Loc as LocOperand<REGS>, t: usize as Backward)
                "{dst} = {a} + {b}; if {dst} > 0 goto @{t}"
                => add_jump_if_pos<dst in [ACC, $($K,)* SLOT], a in [ACC, $($K,)* SLOT, CONST],
                                   b in [ACC, $($K,)* SLOT, CONST]>;
            /// `dst = acc + p + q` (shape 2)
            AddAdd(dst: Loc as LocOperand<REGS>, p: Loc as LocOperand<REGS>,
                   q: Loc as LocOperand<REGS>)
                "{dst} = acc + {p} + {q}"
                => add_add<dst in [ACC, $($K,)* SLOT], p in [ACC, $($K,)* SLOT, CONST],
                           q in [ACC, $($K,)* SLOT, CONST]>;
            /// `return a + b to caller` (shape 3)
            AddRet(a: Loc as Memory<REGS>, b: Loc as Memory<REGS>) "return {a} + {b} to caller"
                => add_ret<a in [0, 1, 2], b in [0, 1, 2]>
                if |b: &Bounds| b.in_function();
        }

        $crate::engines::threaded::register_continuations::register_handlers! {
            state(fp, acc, [$(($r, $K)),*]), abi: $abi, attrs: [$($ha),*];
            fn add_jump_if_pos<const D: u8, const X: u8, const Y: u8>(ip) {
                let x = load!(X, words(D); ip, fp, acc, [$(($r, $K)),*]);
                let y = load!(Y, words(D) + words(X); ip, fp, acc, [$(($r, $K)),*]);
                let v = x.wrapping_add(y);
                store!(D, 0, v; ip, fp, acc, [$(($r, $K)),*]);
                let at = words(D) + words(X) + words(Y);
                // The exit runs once per loop: out of line, so each way keeps its
                // own dispatch jump.
                if v > 0 {
                    Flow::Back(target!(ip, at))
                } else {
                    Flow::JumpCold((LEN * 8) as isize)
                }
            }
            fn add_ret<const X: u8, const Y: u8>(ip) {
                let (x, y) = (memory(X), memory(Y));
                let x = load!(x, 0; ip, fp, acc, [$(($r, $K)),*]);
                let y = load!(y, words(memory(X)); ip, fp, acc, [$(($r, $K)),*]);
                return_to_caller!(x.wrapping_add(y); fp, acc, [$(($r, $K)),*])
            }
            fn add_add<const D: u8, const P: u8, const Q: u8>(ip) {
                let p = load!(P, words(D); ip, fp, acc, [$(($r, $K)),*]);
                let q = load!(Q, words(D) + words(P); ip, fp, acc, [$(($r, $K)),*]);
                store!(D, 0, acc.wrapping_add(p).wrapping_add(q); ip, fp, acc, [$(($r, $K)),*]);
                Flow::Next
            }
        }
    };
}
pub(crate) use register_fused_family;

/// This family's superinstructions.
mod fused {
    use super::super::register_continuations::{
        ACC, CONST, Handler, Loc, LocOperand, R0, R1, R2, REGS, RegIsa, SLOT, Word, load,
        return_to_caller, slot, store, words,
    };
    use super::Memory;
    use crate::engines::threaded::{Backward, Bounds, frame, target, word};

    super::register_fused_family! {
        regs: [(r0, R0), (r1, R1), (r2, R2)],
        abi: "Rust",
        attrs: [],
        isa: {
            /// `register_continuations`' instruction set plus the superinstructions
            /// (shapes 1 to 3 of the module doc).
            pub isa FusedIsa {
                word: Word, handler: Handler, instr: Instr, kind: Kind, min_len: 1, extends: RegIsa,
            }
        }
    }
}
pub use fused::{FusedIsa, Instr, Kind};

/// The fused tier's hook, for fused set `I` (this module's, or another
/// register family's from [`register_fused_family!`]).
pub(crate) struct Shapes<I>(PhantomData<I>);

impl<I> Default for Shapes<I> {
    fn default() -> Self {
        Shapes(PhantomData)
    }
}

impl<I: Isa<Word: Family, Instr = Instr, Kind = Kind>> Lowering for Shapes<I> {
    type Isa = I;

    fn add(&self, c: &mut Compiler<I>, e: &Expr, i: usize, dst: Loc, height: usize) -> bool {
        let Expr::Add(a, b) = e else { return false };
        let (ia, ib) = c.children(i);
        // Shape 2, `(t + p) + q`: `t` runs first, then `p` and `q` are read.
        if let Expr::Add(t, p) = &**a
            && c.is_leaf(p)
            && c.is_leaf(b)
            && !c.is_leaf(t)
        {
            let (it, _) = c.children(ia);
            c.into(self, t, it, Loc::Acc, height);
            let (p, q) = (c.leaf(p), c.leaf(b));
            let dst = c.write(dst);
            c.emit(Instr::AddAdd(dst, p, q));
            return true;
        }
        // Shape 2, `p + (q + t)`: `p` and `q` are read after `t`, so `t`
        // must not store to a local they read.
        if let Expr::Add(q, t) = &**b
            && c.is_leaf(a)
            && c.is_leaf(q)
            && !c.is_leaf(t)
        {
            let (_, it) = c.children(ib);
            let reads_local = matches!(**a, Expr::Get(_)) || matches!(**q, Expr::Get(_));
            if !(reads_local && c.stores(it)) {
                c.into(self, t, it, Loc::Acc, height);
                let (p, q) = (c.leaf(a), c.leaf(q));
                let dst = c.write(dst);
                c.emit(Instr::AddAdd(dst, p, q));
                return true;
            }
        }
        false
    }

    fn ret(&self, c: &mut Compiler<I>) -> bool {
        // Shape 3: the body's value is a plain add into `acc`.
        let Some((_, a, b)) = c.last_add().filter(|&(dst, a, b)| {
            let memory = |l| matches!(l, Loc::Acc | Loc::Slot(_) | Loc::Const(_));
            dst == Loc::Acc && memory(a) && memory(b) && (a, b) != (Loc::Acc, Loc::Acc)
        }) else {
            return false;
        };
        c.take_last_add(|_| true);
        c.emit(Instr::AddRet(a, b));
        true
    }

    fn stops(k: Kind) -> bool {
        matches!(k, Kind::AddRet(..))
    }

    fn test(&self, c: &mut Compiler<I>, cond: Loc, head: usize, test: usize) -> Test {
        // Shape 1: the last op is an add inside this loop that writes the
        // tested location (a slot store also leaves its value in `acc`).
        let last = c.len().wrapping_sub(1);
        if c.len() == 0 || last < head {
            return Test::Plain;
        }
        let tests_its_result =
            |dst| dst == cond || (cond == Loc::Acc && matches!(dst, Loc::Slot(_)));
        let Some((dst, a, b)) = c.take_last_add(tests_its_result) else {
            return Test::Plain;
        };
        c.emit(Instr::AddJumpIfPos(dst, a, b, head));
        if last < test {
            Test::FusedInBody
        } else {
            Test::Fused
        }
    }
}

threaded_engine! {
    RegisterContinuationsFused = "register_continuations_fused", Fused, Code<FusedIsa, Stable>, compile(|_| Shapes::<FusedIsa>::default());
    "register_continuations plus add-and-test and two-add superinstructions";
    conformance: tail_calling
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Technique;
    use crate::engines::threaded::register_continuations::Instr as Plain;
    use crate::engines::threaded::register_continuations::Plain as PlainLowering;
    use crate::engines::threaded::register_continuations::tests::{listing, verify};

    /// The superinstructions of a listing: `…; if … goto` (shape 1) and
    /// `dst = acc + p + q` (shape 2), which no plain op prints.
    fn fused_ops(text: &str) -> Vec<&str> {
        text.lines()
            .skip(1)
            .filter(|l| {
                l.contains("; if")
                    || l.matches(" + ").count() == 2
                    || (l.contains("return") && l.contains(" + "))
            })
            .collect()
    }

    /// `src` fuses into a superinstruction whose listing contains `op` (or
    /// into none, if `op` is empty), the plain engine's listing of it has
    /// no such op (so the check can fail), and it agrees with walker on
    /// every argument list.
    fn fuses(src: &str, op: &str, arg_lists: &[&[i64]]) {
        let text = listing::<Shapes<FusedIsa>>(src);
        let has = |text: &str| fused_ops(text).iter().any(|l| l.contains(op));
        if op.is_empty() {
            assert!(fused_ops(&text).is_empty(), "{src}\n{text}");
        } else {
            assert!(has(&text), "{src}: no fused `{op}`\n{text}");
            let plain = listing::<PlainLowering>(src);
            assert!(!has(&plain), "{src}: the plain engine has it\n{plain}");
        }
        let p = crate::front::compile_source("t", src).unwrap();
        for args in arg_lists {
            let run = |name: &str| {
                let code = crate::engine::engine(name).unwrap().compile(&p).unwrap();
                code.execute(args).unwrap()
            };
            assert_eq!(
                run(RegisterContinuationsFused::NAME),
                run("walker"),
                "{src} {args:?}\n{text}"
            );
        }
    }

    #[test]
    fn shape_1_a_counted_loop_tests_its_step() {
        let args: &[&[i64]] = &[&[0], &[1], &[7], &[-3]];
        // The body's last add writes the tested local (in a register).
        fuses(
            "let t = 0; let n = arg(0); while n { t = t + n; n = n + -1 }; t",
            "; if r",
            args,
        );
        // ... in a slot, tested through `acc`.
        fuses(
            "let a = 1; let b = 2; let c = 3; let n = arg(0); while n { a = a + b + a; \
             b = b + c + b; c = c + a + c; n = n + -2 }; a + b + c + n",
            "; if [",
            args,
        );
        // The condition's own last add.
        fuses(
            "let d = arg(0); while d + 1 { d = d + -1 }; d",
            "acc = r0 + 1; if acc > 0",
            args,
        );
        // A step that overshoots, a step by an argument, wrapping.
        fuses("let n = arg(0); while n { n = n + -3 }; n", "; if r", args);
        fuses(
            "let n = arg(0); while n { n = n + 9223372036854775807 }; n",
            "; if r",
            &[&[1], &[-1], &[9223372036854775807]],
        );
    }

    #[test]
    fn shape_1_leaves_other_loops_alone() {
        for src in [
            // The last add writes another local.
            "let t = 0; let n = arg(0); while n { n = n + -1; t = t + 2 }; t",
            // The last statement is a copy, not an add.
            "let n = arg(0); while n { n = -1 }; n",
            // An empty body.
            "let n = arg(0); while n { }; n",
        ] {
            let text = listing::<Shapes<FusedIsa>>(src);
            assert!(!text.contains("; if"), "{src}\n{text}");
        }
        fuses("let n = arg(0); while n { n = -1 }; n", "", &[&[0], &[5]]);
    }

    #[test]
    fn shape_2_pairs_the_adds_of_a_sum() {
        let args: &[&[i64]] = &[&[3, 4], &[-5, 9223372036854775807]];
        // Left-nested.
        fuses(
            "let x = arg(0); let t = 0; t = t + x + 1 + x + 2; t",
            "acc + r",
            args,
        );
        // Right-nested.
        fuses(
            "let x = arg(0); let y = arg(1); x + (y + (x + (y + 1)))",
            "acc + ",
            args,
        );
        // Leaves of every kind.
        fuses(
            "let x = arg(0); { x + x } + arg(1) + 5",
            "acc + [1] + 5",
            args,
        );
    }

    #[test]
    fn shape_2_keeps_left_to_right_order() {
        // `x + (y + t)` where `t` stores to `x`: `x` must be read first.
        let src = "let x = arg(0); let y = arg(1); x + (y + { x = 100; x + 1 })";
        fuses(src, "", &[&[3, 4]]);
        // `(t + p) + q` reads `p` and `q` after `t`, which is left to right.
        fuses(
            "let x = arg(0); ({ x = 7; x } + x) + x",
            "acc + ",
            &[&[3, 4]],
        );
    }

    #[test]
    fn shape_3_a_function_returns_its_sum() {
        let args: &[&[i64]] = &[&[0], &[1], &[12]];
        fuses(
            "fn fib(n) { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfib(arg(0))",
            "return [5] + acc to caller",
            args,
        );
        // A sum whose operands live anywhere; wrapping.
        fuses(
            "fn f(a, b) { let c = a; c + b + 1 }\nf(arg(0), 9223372036854775807)",
            "to caller",
            args,
        );
        // Main's value is not a return to a caller; nor a function's
        // value that is not a sum.
        fuses("fn f(a, b) { a - b }\nf(arg(0), 2) + 1", "", args);
    }

    #[test]
    fn verify_checks_the_fused_ops() {
        let ret: Instr = Plain::Return(Loc::Acc).into();
        let copy: Instr = Plain::Copy(Loc::Acc, Loc::Acc).into();
        let ok = [
            copy,
            Instr::AddJumpIfPos(Loc::Reg(0), Loc::Reg(0), Loc::Const(-1), 1),
            ret,
        ];
        assert!(verify::<FusedIsa>(&ok, 4).is_ok());
        for bad in [
            Instr::AddJumpIfPos(Loc::Reg(0), Loc::Reg(0), Loc::Const(-1), 2),
            Instr::AddJumpIfPos(Loc::Slot(4), Loc::Reg(0), Loc::Const(-1), 0),
            Instr::AddAdd(Loc::Acc, Loc::Slot(4), Loc::Acc),
            Instr::AddAdd(Loc::Const(0), Loc::Acc, Loc::Acc),
        ] {
            assert!(verify::<FusedIsa>(&[copy, bad, ret], 4).is_err(), "{bad}");
        }
        crate::engines::threaded::tests::reads_back::<FusedIsa>(&[
            copy,
            Instr::AddJumpIfPos(Loc::Slot(3), Loc::Acc, Loc::Const(7), 0),
            Instr::AddAdd(Loc::Reg(2), Loc::Slot(1), Loc::Const(-9)),
            ret,
        ]);
    }
}
