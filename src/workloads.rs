//! The built-in workloads (`workloads/*.vm`) and their native candles.
//!
//! Each program file carries its own metadata in header comments:
//! `// args: …` (default arguments), `// expect: …` (the value with those
//! arguments) and `// iterations: …` (how many times the hot loop runs, as a
//! product of arguments such as `arg0*arg1`; time per iteration divides by it).
//! A Level-2 workload counts its loop trips the same way, or, where it
//! recurses, the calls it makes with its default arguments (a constant such
//! as `8361` for `fib_recursive`): per-iteration figures are then per call.
//!
//! Every workload has two *candles*, as in the original comparison: `rust` is
//! the same algorithm with `std::hint::black_box` on every operand it reads
//! (a local, an argument, a literal, a loop test's operand), as the original
//! did, so LLVM can neither fold nor vectorise it, while each result goes
//! straight into its variable; `rust_opt` is plain Rust at full
//! optimisation. They place the interpreters against native code.

use crate::front::{SourceError, compile_source, program::Program};
use std::hint::black_box as bb;

mod level2;

/// One built-in benchmark program.
pub struct Workload {
    pub name: &'static str,
    pub source: &'static str,
    /// The same algorithm in Rust, every operand read black-boxed.
    pub rust: fn(&[i64]) -> i64,
    /// The same algorithm in plain Rust.
    pub rust_opt: fn(&[i64]) -> i64,
}

macro_rules! workloads {
    ($($name:ident),* $(,)?) => {
        /// Every built-in workload, in a fixed order.
        pub static WORKLOADS: &[Workload] = &[$(Workload {
            name: stringify!($name),
            source: include_str!(concat!("../workloads/", stringify!($name), ".vm")),
            rust: candles::$name::rust,
            rust_opt: candles::$name::rust_opt,
        }),*];
    };
}

workloads!(
    sum,
    nested_loops,
    fib,
    many_locals,
    long_body,
    deep_expr,
    unpredictable,
    let_set,
    fib_recursive,
    tak,
    leaf_calls,
    branch_pattern,
    branch_random,
    deep_recursion,
);

/// The workload called `name`.
pub fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

impl Workload {
    /// The validated program (built-in workloads always are valid).
    pub fn program(&self) -> Result<Program, SourceError> {
        compile_source(&format!("workloads/{}.vm", self.name), self.source)
    }

    /// Default arguments from the `// args:` header.
    pub fn args(&self) -> Vec<i64> {
        header_ints(self.source, "args")
    }

    /// The expected value with the default arguments (`// expect:`).
    pub fn expected(&self) -> i64 {
        header_ints(self.source, "expect")
            .first()
            .copied()
            .unwrap_or(0)
    }

    /// Hot-loop iterations for `args` (`// iterations: arg0*arg1`).
    pub fn iterations(&self, args: &[i64]) -> u64 {
        let Some(formula) = header(self.source, "iterations") else {
            return 1;
        };
        formula
            .split('*')
            .map(|f| {
                let f = f.trim();
                match f.strip_prefix("arg") {
                    Some(i) => i
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| args.get(i))
                        .copied()
                        .unwrap_or(1),
                    None => f.parse().unwrap_or(1),
                }
            })
            .map(|n| n.max(0) as u64)
            .product::<u64>()
            .max(1)
    }

    /// The first comment line of the file: what the workload stresses.
    pub fn description(&self) -> &'static str {
        self.source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("//"))
            .unwrap_or("")
            .trim()
    }
}

/// The value of the `// key: …` line among the leading comment lines of
/// `source` (user programs carry the same headers as the workloads).
pub fn header<'a>(source: &'a str, key: &str) -> Option<&'a str> {
    source
        .lines()
        .take_while(|l| l.trim_start().starts_with("//"))
        .filter_map(|l| l.trim_start().strip_prefix("//"))
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

fn header_ints(source: &str, key: &str) -> Vec<i64> {
    header(source, key)
        .map(|s| {
            s.split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Native Rust versions of every workload.
pub mod candles {
    use super::bb;
    pub use super::level2::{
        branch_pattern, branch_random, deep_recursion, fib_recursive, leaf_calls, tak,
    };

    pub mod sum {
        use super::bb;
        pub fn rust(args: &[i64]) -> i64 {
            let mut total = bb(0i64);
            let mut count = bb(args[0]);
            while bb(count) > 0 {
                total = bb(total).wrapping_add(bb(args[1]));
                count = bb(count).wrapping_add(bb(-1));
            }
            bb(total)
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            let (mut total, mut count) = (0i64, args[0]);
            while count > 0 {
                total = total.wrapping_add(args[1]);
                count -= 1;
            }
            total
        }
    }

    pub mod nested_loops {
        use super::bb;
        pub fn rust(args: &[i64]) -> i64 {
            let mut total = bb(0i64);
            let mut i = bb(args[0]);
            while bb(i) > 0 {
                let mut j = bb(args[1]);
                while bb(j) > 0 {
                    total = bb(total).wrapping_add(bb(i)).wrapping_add(bb(j));
                    j = bb(j).wrapping_add(bb(-1));
                }
                i = bb(i).wrapping_add(bb(-1));
            }
            bb(total)
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            let mut total = 0i64;
            let mut i = args[0];
            while i > 0 {
                let mut j = args[1];
                while j > 0 {
                    total = total.wrapping_add(i).wrapping_add(j);
                    j -= 1;
                }
                i -= 1;
            }
            total
        }
    }

    pub mod fib {
        use super::bb;
        pub fn rust(args: &[i64]) -> i64 {
            let mut sum = bb(0i64);
            let mut reps = bb(args[1]);
            while bb(reps) > 0 {
                let (mut a, mut b) = (bb(0i64), bb(1i64));
                let mut n = bb(args[0]);
                while bb(n) > 0 {
                    let t = bb(a).wrapping_add(bb(b));
                    a = bb(b);
                    b = bb(t);
                    n = bb(n).wrapping_add(bb(-1));
                }
                sum = bb(sum).wrapping_add(bb(a));
                reps = bb(reps).wrapping_add(bb(-1));
            }
            bb(sum)
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            let mut sum = 0i64;
            let mut reps = args[1];
            while reps > 0 {
                let (mut a, mut b) = (0i64, 1i64);
                let mut n = args[0];
                while n > 0 {
                    (a, b) = (b, a.wrapping_add(b));
                    n -= 1;
                }
                sum = sum.wrapping_add(a);
                reps -= 1;
            }
            sum
        }
    }

    pub mod many_locals {
        use super::bb;
        pub fn rust(args: &[i64]) -> i64 {
            let mut l: [i64; 16] = bb(std::array::from_fn(|i| i as i64 + 1));
            let mut n = bb(args[0]);
            while bb(n) > 0 {
                l[0] = bb(l[0]).wrapping_add(bb(l[15]));
                for i in 1..16 {
                    l[i] = bb(l[i]).wrapping_add(bb(l[i - 1]));
                }
                n = bb(n).wrapping_add(bb(-1));
            }
            l.iter()
                .fold(bb(0i64), |acc, &x| bb(acc).wrapping_add(bb(x)))
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            let mut l: [i64; 16] = std::array::from_fn(|i| i as i64 + 1);
            let mut n = args[0];
            while n > 0 {
                l[0] = l[0].wrapping_add(l[15]);
                for i in 1..16 {
                    l[i] = l[i].wrapping_add(l[i - 1]);
                }
                n -= 1;
            }
            l.iter().fold(0i64, |acc, &x| acc.wrapping_add(x))
        }
    }

    pub mod long_body {
        use super::bb;
        pub fn rust(args: &[i64]) -> i64 {
            let mut acc = bb(0i64);
            let mut x = bb(args[1]);
            let mut n = bb(args[0]);
            while bb(n) > 0 {
                for half in 0..2 {
                    let mut s = bb(acc);
                    for k in 1..=16 {
                        s = bb(s).wrapping_add(bb(x));
                        s = bb(s).wrapping_add(bb(half * 16 + k));
                    }
                    acc = bb(s);
                }
                x = bb(x).wrapping_add(bb(acc)).wrapping_add(bb(-7));
                n = bb(n).wrapping_add(bb(-1));
            }
            bb(acc).wrapping_add(bb(x))
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            let (mut acc, mut x, mut n) = (0i64, args[1], args[0]);
            while n > 0 {
                for half in 0..2 {
                    for k in 1..=16 {
                        acc = acc.wrapping_add(x).wrapping_add(half * 16 + k);
                    }
                }
                x = x.wrapping_add(acc).wrapping_add(-7);
                n -= 1;
            }
            acc.wrapping_add(x)
        }
    }

    pub mod deep_expr {
        use super::bb;
        /// `first + (second + (first + … (last_first_or_second + tail)))`
        /// with `terms` operands before `tail`, innermost added first.
        fn nest(first: i64, second: i64, terms: usize, tail: i64, black_box: bool) -> i64 {
            let id = |v: i64| if black_box { bb(v) } else { v };
            let mut acc = id(tail);
            for k in (0..terms).rev() {
                let operand = if k % 2 == 0 { first } else { second };
                acc = id(operand).wrapping_add(acc);
            }
            acc
        }
        fn run(args: &[i64], black_box: bool) -> i64 {
            let id = |v: i64| if black_box { bb(v) } else { v };
            let (mut a, mut b, mut n) = (id(args[1]), id(args[2]), id(args[0]));
            while id(n) > 0 {
                a = nest(b, a, 24, 1, black_box);
                b = nest(a, b, 14, -3, black_box);
                n = id(n).wrapping_add(id(-1));
            }
            id(a).wrapping_add(id(b))
        }
        pub fn rust(args: &[i64]) -> i64 {
            run(args, true)
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            run(args, false)
        }
    }

    pub mod unpredictable {
        use super::bb;
        pub fn rust(args: &[i64]) -> i64 {
            let mut total = bb(0i64);
            let mut x = bb(args[1]);
            let mut n = bb(args[0]);
            while bb(n) > 0 {
                let mut five = bb(0i64);
                for _ in 0..5 {
                    five = bb(five).wrapping_add(bb(x));
                }
                x = bb(five).wrapping_add(bb(3));
                let mut round = bb(5i64);
                while bb(round) > 0 {
                    let mut d = bb(x).wrapping_add(bb(-64));
                    while bb(d).wrapping_add(bb(1)) > 0 {
                        x = bb(d);
                        d = bb(-1);
                    }
                    round = bb(round).wrapping_add(bb(-1));
                }
                let mut t = bb(x);
                while bb(t) > 0 {
                    total = bb(total).wrapping_add(bb(t));
                    t = bb(t).wrapping_add(bb(-1));
                }
                n = bb(n).wrapping_add(bb(-1));
            }
            bb(total)
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            let mut total = 0i64;
            let mut x = args[1];
            let mut n = args[0];
            while n > 0 {
                x = x.wrapping_mul(5).wrapping_add(3);
                for _ in 0..5 {
                    let d = x.wrapping_add(-64);
                    if d.wrapping_add(1) > 0 {
                        x = d;
                    }
                }
                let mut t = x;
                while t > 0 {
                    total = total.wrapping_add(t);
                    t -= 1;
                }
                n -= 1;
            }
            total
        }
    }

    pub mod let_set {
        use super::bb;
        // The copies mirror the program's stores one for one, so the
        // overwritten values are deliberate.
        #[allow(unused_assignments)]
        pub fn rust(args: &[i64]) -> i64 {
            let mut total = bb(0i64);
            let mut carry = bb(1i64);
            let mut n = bb(args[0]);
            while bb(n) > 0 {
                let a = bb(n);
                let mut b = bb(a);
                b = bb(carry);
                let mut c = bb(b);
                let mut d = bb(c);
                d = bb(a);
                c = bb(d);
                carry = bb(c).wrapping_add(bb(b));
                total = bb(total).wrapping_add(bb(carry));
                carry = bb(b);
                n = bb(n).wrapping_add(bb(-1));
            }
            bb(total).wrapping_add(bb(carry))
        }
        pub fn rust_opt(args: &[i64]) -> i64 {
            let (mut total, mut carry, mut n) = (0i64, 1i64, args[0]);
            while n > 0 {
                let b = carry;
                carry = n.wrapping_add(b);
                total = total.wrapping_add(carry);
                carry = b;
                n -= 1;
            }
            total.wrapping_add(carry)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse() {
        let w = workload("nested_loops").unwrap();
        assert_eq!(w.args(), vec![100, 100]);
        assert_eq!(w.iterations(&w.args()), 10_000);
        assert!(w.description().starts_with("Two nested"));
    }

    /// A recursive workload's `// iterations:` is the calls it makes with
    /// its default arguments, counted here by the same recursion.
    #[test]
    fn recursive_workloads_count_their_calls() {
        fn fib(n: i64, calls: &mut u64) -> i64 {
            *calls += 1;
            if n < 2 {
                n
            } else {
                fib(n - 1, calls) + fib(n - 2, calls)
            }
        }
        fn tak(x: i64, y: i64, z: i64, calls: &mut u64) -> i64 {
            *calls += 1;
            if y < x {
                let a = tak(x - 1, y, z, calls);
                let b = tak(y - 1, z, x, calls);
                let c = tak(z - 1, x, y, calls);
                tak(a, b, c, calls)
            } else {
                z
            }
        }
        let w = workload("fib_recursive").unwrap();
        let mut calls = 0;
        assert_eq!(fib(w.args()[0], &mut calls), w.expected());
        assert_eq!(w.iterations(&w.args()), calls);
        let w = workload("tak").unwrap();
        let a = w.args();
        let mut calls = 0;
        assert_eq!(tak(a[0], a[1], a[2], &mut calls), w.expected());
        assert_eq!(w.iterations(&a), calls);
        // depth(n) makes n calls, arg1 times.
        let w = workload("deep_recursion").unwrap();
        assert_eq!(w.iterations(&w.args()), 10_000);
    }

    #[test]
    fn candles_agree_with_the_expected_values() {
        for w in WORKLOADS {
            let args = w.args();
            assert_eq!((w.rust)(&args), w.expected(), "rust candle of {}", w.name);
            assert_eq!(
                (w.rust_opt)(&args),
                w.expected(),
                "rust_opt candle of {}",
                w.name
            );
        }
    }
}
