//! The native candles of the Level-2 workloads (functions, calls, branches).
//!
//! As for Level 1, `rust` reads every operand through `black_box`, so LLVM
//! can neither fold nor inline the values away, and `rust_opt` is plain Rust
//! at full optimisation. Guest functions are native Rust functions and guest
//! calls native calls (recursion stays recursion), with wrapping arithmetic.

use std::hint::black_box as bb;

pub mod fib_recursive {
    use super::bb;
    fn fib(n: i64) -> i64 {
        if bb(n) < bb(2) {
            bb(n)
        } else {
            fib(bb(n).wrapping_sub(bb(1))).wrapping_add(fib(bb(n).wrapping_sub(bb(2))))
        }
    }
    fn fib_opt(n: i64) -> i64 {
        if n < 2 {
            n
        } else {
            fib_opt(n.wrapping_sub(1)).wrapping_add(fib_opt(n.wrapping_sub(2)))
        }
    }
    pub fn rust(args: &[i64]) -> i64 {
        fib(bb(args[0]))
    }
    pub fn rust_opt(args: &[i64]) -> i64 {
        fib_opt(args[0])
    }
}

pub mod tak {
    use super::bb;
    fn tak(x: i64, y: i64, z: i64) -> i64 {
        if bb(y) < bb(x) {
            let a = tak(bb(x).wrapping_sub(bb(1)), bb(y), bb(z));
            let b = tak(bb(y).wrapping_sub(bb(1)), bb(z), bb(x));
            let c = tak(bb(z).wrapping_sub(bb(1)), bb(x), bb(y));
            tak(a, b, c)
        } else {
            bb(z)
        }
    }
    fn tak_opt(x: i64, y: i64, z: i64) -> i64 {
        if y < x {
            tak_opt(
                tak_opt(x.wrapping_sub(1), y, z),
                tak_opt(y.wrapping_sub(1), z, x),
                tak_opt(z.wrapping_sub(1), x, y),
            )
        } else {
            z
        }
    }
    pub fn rust(args: &[i64]) -> i64 {
        tak(bb(args[0]), bb(args[1]), bb(args[2]))
    }
    pub fn rust_opt(args: &[i64]) -> i64 {
        tak_opt(args[0], args[1], args[2])
    }
}

pub mod leaf_calls {
    use super::bb;
    // Not inlined, so each trip pays a native call as the guest pays one.
    #[inline(never)]
    fn mix(a: i64, b: i64, c: i64) -> i64 {
        bb(a).wrapping_add(bb(b)).wrapping_sub(bb(c))
    }
    fn mix_opt(a: i64, b: i64, c: i64) -> i64 {
        a.wrapping_add(b).wrapping_sub(c)
    }
    pub fn rust(args: &[i64]) -> i64 {
        let mut total = 0i64;
        let mut n = bb(args[0]);
        while bb(n) > bb(0) {
            total = mix(bb(total), bb(n), bb(args[1]));
            n = bb(n).wrapping_sub(bb(1));
        }
        bb(total)
    }
    pub fn rust_opt(args: &[i64]) -> i64 {
        let (mut total, mut n) = (0i64, args[0]);
        while n > 0 {
            total = mix_opt(total, n, args[1]);
            n -= 1;
        }
        total
    }
}

pub mod branch_pattern {
    use super::bb;
    pub fn rust(args: &[i64]) -> i64 {
        let (mut total, mut phase) = (0i64, 0i64);
        let mut n = bb(args[0]);
        while bb(n) > bb(0) {
            if bb(phase) < bb(3) {
                total = bb(total).wrapping_add(bb(n));
                phase = bb(phase).wrapping_add(bb(1));
            } else {
                total = bb(total).wrapping_sub(bb(1));
                phase = bb(0);
            }
            n = bb(n).wrapping_sub(bb(1));
        }
        bb(total)
    }
    pub fn rust_opt(args: &[i64]) -> i64 {
        let (mut total, mut phase, mut n) = (0i64, 0i64, args[0]);
        while n > 0 {
            if phase < 3 {
                total = total.wrapping_add(n);
                phase += 1;
            } else {
                total = total.wrapping_sub(1);
                phase = 0;
            }
            n -= 1;
        }
        total
    }
}

pub mod branch_random {
    use super::bb;
    pub fn rust(args: &[i64]) -> i64 {
        let mut total = 0i64;
        let mut x = bb(args[1]);
        let mut n = bb(args[0]);
        while bb(n) > bb(0) {
            let mut five = bb(x);
            for _ in 0..4 {
                five = bb(five).wrapping_add(bb(x));
            }
            x = bb(five).wrapping_add(bb(1));
            for bound in [262_144i64, 131_072, 65_536] {
                if bb(bound - 1) < bb(x) {
                    x = bb(x).wrapping_sub(bb(bound));
                }
            }
            total = if bb(x) < bb(32_768) {
                bb(total).wrapping_add(bb(1))
            } else {
                bb(total).wrapping_sub(bb(1))
            };
            n = bb(n).wrapping_sub(bb(1));
        }
        bb(total)
    }
    pub fn rust_opt(args: &[i64]) -> i64 {
        let (mut total, mut x, mut n) = (0i64, args[1], args[0]);
        while n > 0 {
            x = x.wrapping_mul(5).wrapping_add(1);
            for bound in [262_144i64, 131_072, 65_536] {
                if bound - 1 < x {
                    x = x.wrapping_sub(bound);
                }
            }
            total = if x < 32_768 {
                total.wrapping_add(1)
            } else {
                total.wrapping_sub(1)
            };
            n -= 1;
        }
        total
    }
}

pub mod deep_recursion {
    use super::bb;
    fn depth(n: i64) -> i64 {
        if bb(1) < bb(n) {
            depth(bb(n).wrapping_sub(bb(1))).wrapping_add(bb(1))
        } else {
            bb(1)
        }
    }
    fn depth_opt(n: i64) -> i64 {
        if 1 < n {
            depth_opt(n.wrapping_sub(1)).wrapping_add(1)
        } else {
            1
        }
    }
    pub fn rust(args: &[i64]) -> i64 {
        let mut total = 0i64;
        let mut reps = bb(args[1]);
        while bb(reps) > bb(0) {
            total = bb(total).wrapping_add(depth(bb(args[0])));
            reps = bb(reps).wrapping_sub(bb(1));
        }
        bb(total)
    }
    pub fn rust_opt(args: &[i64]) -> i64 {
        let (mut total, mut reps) = (0i64, args[1]);
        while reps > 0 {
            total = total.wrapping_add(depth_opt(args[0]));
            reps -= 1;
        }
        total
    }
}
