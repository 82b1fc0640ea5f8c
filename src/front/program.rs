//! Validation: the one gate between an arbitrary [`Expr`] and the engines.
//!
//! A [`Program`] can only be built by [`Program::validate`], so holding one
//! proves three facts that engines rely on to skip checks at run time:
//!
//! 1. every `Get(d)`/`Set(d, _)` names a local in scope (`d < locals in scope`);
//! 2. the tree is at most [`MAX_DEPTH`] deep, so recursive compilers and
//!    recursive executors fit in a 2 MiB thread stack;
//! 3. [`Program::arg_count`] and [`Program::max_locals`] are exact, so buffers
//!    can be sized once, at compile time.
//!
//! Validation itself never recurses, so even a hostile tree cannot overflow it.

use super::ast::Expr;
use std::fmt;

/// The deepest nesting any stage accepts. A leaf has depth 1.
///
/// Parser, validator, every compiler and every executor handle programs of
/// this depth on a thread with a 2 MiB stack (checked by `tests/stack.rs`).
pub const MAX_DEPTH: usize = 1000;

/// A program that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    expr: Expr,
    arg_count: usize,
    max_locals: usize,
    depth: usize,
    node_count: usize,
}

/// Why an [`Expr`] is not a valid program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationError {
    /// `Get(depth)` or `Set(depth, _)` where only `in_scope` locals exist.
    UnboundLocal {
        node: &'static str,
        depth: usize,
        in_scope: usize,
    },
    /// The tree nests deeper than [`MAX_DEPTH`].
    TooDeep { depth: usize },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::UnboundLocal {
                node,
                depth,
                in_scope,
            } => write!(
                f,
                "{node}({depth}) refers to a local that is not in scope ({in_scope} in scope)"
            ),
            ValidationError::TooDeep { depth } => write!(
                f,
                "program nests {depth} levels deep; the limit is {MAX_DEPTH}"
            ),
        }
    }
}

impl std::error::Error for ValidationError {}

impl Program {
    /// Checks `expr` and computes the facts engines size their buffers from.
    pub fn validate(expr: Expr) -> Result<Program, ValidationError> {
        let mut arg_count = 0;
        let mut max_locals = 0;
        let mut depth = 0;
        let mut node_count = 0;
        // (node, nesting depth, locals in scope)
        let mut todo: Vec<(&Expr, usize, usize)> = vec![(&expr, 1, 0)];
        while let Some((e, d, scope)) = todo.pop() {
            node_count += 1;
            depth = depth.max(d);
            if d > MAX_DEPTH {
                // Measure the real depth without recursion for the message.
                return Err(ValidationError::TooDeep {
                    depth: expr.depth(),
                });
            }
            max_locals = max_locals.max(scope);
            match e {
                Expr::Litr(_) => {}
                Expr::Arg(i) => arg_count = arg_count.max(i.saturating_add(1)),
                Expr::Get(l) | Expr::Set(l, _) if *l >= scope => {
                    return Err(ValidationError::UnboundLocal {
                        node: e.kind(),
                        depth: *l,
                        in_scope: scope,
                    });
                }
                Expr::Get(_) => {}
                Expr::Set(_, v) => todo.push((v, d + 1, scope)),
                Expr::Let(init, body) => {
                    todo.push((init, d + 1, scope));
                    todo.push((body, d + 1, scope + 1));
                }
                Expr::Add(a, b) | Expr::While(a, b) | Expr::Then(a, b) => {
                    todo.push((a, d + 1, scope));
                    todo.push((b, d + 1, scope));
                }
            }
        }
        Ok(Program {
            expr,
            arg_count,
            max_locals,
            depth,
            node_count,
        })
    }

    /// The validated tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// How many arguments execution needs: one more than the highest `Arg(i)`.
    pub fn arg_count(&self) -> usize {
        self.arg_count
    }

    /// The most locals ever live at once (the deepest `Let` nesting).
    pub fn max_locals(&self) -> usize {
        self.max_locals
    }

    /// Nesting depth of the tree (a leaf is 1); at most [`MAX_DEPTH`].
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Number of AST nodes.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// Gives the tree back.
    pub fn into_expr(self) -> Expr {
        self.expr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Expr::*;

    #[test]
    fn computes_arg_count_and_locals() {
        let e = Expr::let_(Arg(2), Expr::let_(Get(0), Expr::add(Get(1), Arg(0))));
        let p = Program::validate(e).unwrap();
        assert_eq!(p.arg_count(), 3);
        assert_eq!(p.max_locals(), 2);
        assert_eq!(p.depth(), 4);
        assert_eq!(p.node_count(), 7);
    }

    #[test]
    fn rejects_unbound_locals() {
        let e = Expr::let_(Litr(1), Expr::then(Get(0), Expr::set(1, Litr(2))));
        assert_eq!(
            Program::validate(e),
            Err(ValidationError::UnboundLocal {
                node: "Set",
                depth: 1,
                in_scope: 1
            })
        );
        // The initialiser does not see its own binding.
        assert!(Program::validate(Expr::let_(Get(0), Litr(0))).is_err());
    }

    #[test]
    fn rejects_too_deep_but_accepts_the_limit() {
        let chain = |n: usize| {
            let mut e = Litr(1);
            for _ in 1..n {
                e = Expr::then(Litr(0), e);
            }
            e
        };
        assert!(Program::validate(chain(MAX_DEPTH)).is_ok());
        assert_eq!(
            Program::validate(chain(MAX_DEPTH + 1)),
            Err(ValidationError::TooDeep {
                depth: MAX_DEPTH + 1
            })
        );
        assert!(Program::validate(chain(200_000)).is_err());
    }
}
