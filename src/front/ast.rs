//! The eight-node AST every engine receives (see `docs/LANGUAGE.md`).
//!
//! The tree is deliberately tiny: integers are the only values, `+` (wrapping)
//! the only arithmetic and `While` the only control flow. `Get`/`Set` name a
//! local by its *scope distance*: `0` is the innermost `Let` in scope.

use std::fmt;

/// One node of a program.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// An integer literal.
    Litr(i64),
    /// The `i`-th argument given at execution time (0-based).
    Arg(usize),
    /// Read the local `d` scopes outwards (0 = innermost).
    Get(usize),
    /// `a + b`, wrapping; `a` is evaluated first.
    Add(Box<Expr>, Box<Expr>),
    /// Bind `init` as the new innermost local for `body`; value of `body`.
    Let(Box<Expr>, Box<Expr>),
    /// Store into local `d`; value `0`.
    Set(usize, Box<Expr>),
    /// Loop while the condition is `> 0`; value `0`.
    While(Box<Expr>, Box<Expr>),
    /// Evaluate and discard `a`, then evaluate `b`.
    Then(Box<Expr>, Box<Expr>),
}

// Constructors named after the nodes; `add` builds a node, it does not add.
#[allow(clippy::should_implement_trait)]
impl Expr {
    pub fn add(a: Expr, b: Expr) -> Expr {
        Expr::Add(Box::new(a), Box::new(b))
    }
    pub fn let_(init: Expr, body: Expr) -> Expr {
        Expr::Let(Box::new(init), Box::new(body))
    }
    pub fn set(depth: usize, value: Expr) -> Expr {
        Expr::Set(depth, Box::new(value))
    }
    pub fn while_(cond: Expr, body: Expr) -> Expr {
        Expr::While(Box::new(cond), Box::new(body))
    }
    pub fn then(first: Expr, second: Expr) -> Expr {
        Expr::Then(Box::new(first), Box::new(second))
    }

    /// The direct children, in evaluation order.
    pub fn children(&self) -> ChildIter<'_> {
        let (a, b): (Option<&Expr>, Option<&Expr>) = match self {
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => (None, None),
            Expr::Set(_, e) => (Some(e), None),
            Expr::Add(a, b) | Expr::Let(a, b) | Expr::While(a, b) | Expr::Then(a, b) => {
                (Some(a), Some(b))
            }
        };
        ChildIter { a, b }
    }

    /// Number of nodes, counted without recursion.
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut todo = vec![self];
        while let Some(e) = todo.pop() {
            count += 1;
            todo.extend(e.children());
        }
        count
    }

    /// Nesting depth (a leaf has depth 1), computed without recursion.
    pub fn depth(&self) -> usize {
        let mut max = 0;
        let mut todo = vec![(self, 1usize)];
        while let Some((e, d)) = todo.pop() {
            max = max.max(d);
            todo.extend(e.children().map(|c| (c, d + 1)));
        }
        max
    }

    /// The node's kind as a name, for listings and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Expr::Litr(_) => "Litr",
            Expr::Arg(_) => "Arg",
            Expr::Get(_) => "Get",
            Expr::Add(..) => "Add",
            Expr::Let(..) => "Let",
            Expr::Set(..) => "Set",
            Expr::While(..) => "While",
            Expr::Then(..) => "Then",
        }
    }
}

/// Iterator over an [`Expr`]'s children.
pub struct ChildIter<'a> {
    a: Option<&'a Expr>,
    b: Option<&'a Expr>,
}

impl<'a> Iterator for ChildIter<'a> {
    type Item = &'a Expr;
    fn next(&mut self) -> Option<&'a Expr> {
        self.a.take().or_else(|| self.b.take())
    }
}

// A tree built by hand through the public API may be arbitrarily deep; the
// default recursive drop would overflow the native stack on it. Take the
// children out onto a heap stack instead, so dropping any tree is safe.
impl Drop for Expr {
    fn drop(&mut self) {
        // Boxes are moved, not their contents: no copy of a subtree.
        #[allow(clippy::vec_box)]
        fn take_children(e: &mut Expr, out: &mut Vec<Box<Expr>>) {
            let leaf = || Box::new(Expr::Litr(0));
            match e {
                Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
                Expr::Set(_, x) => {
                    if !is_leaf(x) {
                        out.push(std::mem::replace(x, leaf()))
                    }
                }
                Expr::Add(a, b) | Expr::Let(a, b) | Expr::While(a, b) | Expr::Then(a, b) => {
                    if !is_leaf(a) {
                        out.push(std::mem::replace(a, leaf()));
                    }
                    if !is_leaf(b) {
                        out.push(std::mem::replace(b, leaf()));
                    }
                }
            }
        }
        fn is_leaf(e: &Expr) -> bool {
            matches!(e, Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_))
        }
        if is_leaf(self) {
            return;
        }
        let mut todo = Vec::new();
        take_children(self, &mut todo);
        while let Some(mut child) = todo.pop() {
            take_children(&mut child, &mut todo);
        }
    }
}

/// The AST in the constructor form used by `docs/LANGUAGE.md`, e.g. `Add(Get(0), Litr(1))`.
impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Litr(n) => write!(f, "Litr({n})"),
            Expr::Arg(i) => write!(f, "Arg({i})"),
            Expr::Get(d) => write!(f, "Get({d})"),
            Expr::Set(d, e) => write!(f, "Set({d}, {e:?})"),
            Expr::Add(a, b) => write!(f, "Add({a:?}, {b:?})"),
            Expr::Let(a, b) => write!(f, "Let({a:?}, {b:?})"),
            Expr::While(a, b) => write!(f, "While({a:?}, {b:?})"),
            Expr::Then(a, b) => write!(f, "Then({a:?}, {b:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_very_deep_tree_does_not_overflow() {
        let mut e = Expr::Litr(1);
        for _ in 0..1_000_000 {
            e = Expr::add(e, Expr::Litr(1));
        }
        assert_eq!(e.depth(), 1_000_001);
        drop(e);
    }

    #[test]
    fn debug_form_matches_the_language_document() {
        let e = Expr::let_(
            Expr::Litr(0),
            Expr::then(Expr::set(0, Expr::Arg(1)), Expr::Get(0)),
        );
        assert_eq!(
            format!("{e:?}"),
            "Let(Litr(0), Then(Set(0, Arg(1)), Get(0)))"
        );
    }
}
