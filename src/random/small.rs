//! Small programs from a tiny xorshift generator: every node kind, locals
//! read and written at any distance, two arguments, and loops that count a
//! fresh local down from at most 3. A loop body may store into its own
//! counter, so a program is not sure to end: run walker under a step budget
//! first (as [`crate::reference::check`] does). The peer tests run a few
//! hundred of them on every peer.

use crate::front::ast::Expr;

/// The generator; its state is the seed (not zero).
pub struct Small(pub u64);

impl Small {
    /// The next number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// A valid expression at most `depth` deep with `scope` locals in scope.
    pub fn expr(&mut self, depth: usize, scope: usize) -> Expr {
        let leaf = depth == 0 || self.below(4) == 0;
        if leaf {
            return match self.below(3) {
                0 if scope > 0 => Expr::Get(self.below(scope as u64) as usize),
                1 => Expr::Arg(self.below(2) as usize),
                _ => Expr::Litr(self.below(7) as i64 - 3),
            };
        }
        let d = depth - 1;
        match self.below(6) {
            0 | 1 => Expr::add(self.expr(d, scope), self.expr(d, scope)),
            2 => Expr::let_(self.expr(d, scope), self.expr(d, scope + 1)),
            3 if scope > 0 => Expr::set(self.below(scope as u64) as usize, self.expr(d, scope)),
            4 => Expr::then(self.expr(d, scope), self.expr(d, scope)),
            // A loop that counts a fresh local down, so it ends.
            _ => Expr::let_(
                Expr::Litr(self.below(4) as i64),
                Expr::then(
                    Expr::while_(
                        Expr::Get(0),
                        Expr::then(
                            Expr::set(0, Expr::add(Expr::Get(0), Expr::Litr(-1))),
                            self.expr(d, scope + 1),
                        ),
                    ),
                    self.expr(d, scope + 1),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::program::Program;
    use crate::reference::eval_budgeted;

    #[test]
    fn small_programs_are_valid_and_most_end() {
        let mut g = Small(0x9E37_79B9_7F4A_7C15);
        let ended = (0..300)
            .filter(|_| {
                let p = Program::validate(g.expr(7, 0)).unwrap();
                eval_budgeted(&p, &[-3, 1 << 40], 200_000).is_ok()
            })
            .count();
        assert!(ended > 250, "{ended} of 300");
    }
}
