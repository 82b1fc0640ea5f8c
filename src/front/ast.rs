//! The AST every engine receives (see `docs/LANGUAGE.md`).
//!
//! The tree is deliberately tiny: integers are the only values. Level 1 is
//! eight nodes: `+` (wrapping) the only arithmetic and `While` the only
//! control flow. Level 2 adds `Sub`, `Lt`, `If` and `Call`, and a program
//! becomes a [`Source`]: functions, then the main expression. `Get`/`Set`
//! name a local by its *scope distance*: `0` is the innermost `Let` (or
//! parameter) in scope.

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
    /// `a - b`, wrapping; `a` is evaluated first (Level 2).
    Sub(Box<Expr>, Box<Expr>),
    /// `1` if `a < b` (signed), else `0`; `a` is evaluated first (Level 2).
    Lt(Box<Expr>, Box<Expr>),
    /// If the condition is `> 0` the first branch, else the second (Level 2).
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Call the function at this index of [`Source::functions`] with the
    /// arguments, evaluated left to right (Level 2).
    Call(usize, Vec<Expr>),
}

/// A function of a Level-2 program. Its parameters are bound as nested
/// `Let`s around `body`: the last parameter is `Get(0)`. The names are kept
/// for printing and listings; calls refer to functions by index.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Function {
    pub name: String,
    pub params: Vec<String>,
    pub body: Expr,
}

impl Function {
    /// How many arguments a call passes.
    pub fn arity(&self) -> usize {
        self.params.len()
    }
}

/// A whole program as written: the functions (calls index this list), then
/// the main expression. A Level-1 program is a `Source` without functions;
/// `From<Expr>` makes one, so a bare [`Expr`] goes wherever a `Source` does.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Source {
    pub functions: Vec<Function>,
    pub main: Expr,
}

impl From<Expr> for Source {
    fn from(main: Expr) -> Source {
        Source {
            functions: Vec::new(),
            main,
        }
    }
}

impl Default for Expr {
    fn default() -> Expr {
        Expr::Litr(0)
    }
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
    pub fn sub(a: Expr, b: Expr) -> Expr {
        Expr::Sub(Box::new(a), Box::new(b))
    }
    pub fn lt(a: Expr, b: Expr) -> Expr {
        Expr::Lt(Box::new(a), Box::new(b))
    }
    pub fn if_(cond: Expr, then: Expr, otherwise: Expr) -> Expr {
        Expr::If(Box::new(cond), Box::new(then), Box::new(otherwise))
    }
    pub fn call(function: usize, args: Vec<Expr>) -> Expr {
        Expr::Call(function, args)
    }

    /// Whether the node is one of Level 2's (`Sub`, `Lt`, `If`, `Call`).
    pub fn is_level_two(&self) -> bool {
        matches!(
            self,
            Expr::Sub(..) | Expr::Lt(..) | Expr::If(..) | Expr::Call(..)
        )
    }

    /// The direct children, in evaluation order.
    pub fn children(&self) -> ChildIter<'_> {
        let none: &[Expr] = &[];
        let (fixed, rest): ([Option<&Expr>; 3], &[Expr]) = match self {
            Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => ([None, None, None], none),
            Expr::Set(_, e) => ([Some(e), None, None], none),
            Expr::Add(a, b)
            | Expr::Let(a, b)
            | Expr::While(a, b)
            | Expr::Then(a, b)
            | Expr::Sub(a, b)
            | Expr::Lt(a, b) => ([Some(a), Some(b), None], none),
            Expr::If(c, t, e) => ([Some(c), Some(t), Some(e)], none),
            Expr::Call(_, args) => ([None, None, None], args),
        };
        ChildIter {
            fixed,
            next: 0,
            rest: rest.iter(),
        }
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
            Expr::Sub(..) => "Sub",
            Expr::Lt(..) => "Lt",
            Expr::If(..) => "If",
            Expr::Call(..) => "Call",
        }
    }
}

/// Iterator over an [`Expr`]'s children.
pub struct ChildIter<'a> {
    fixed: [Option<&'a Expr>; 3],
    next: usize,
    rest: std::slice::Iter<'a, Expr>,
}

impl<'a> Iterator for ChildIter<'a> {
    type Item = &'a Expr;
    fn next(&mut self) -> Option<&'a Expr> {
        while let Some(slot) = self.fixed.get_mut(self.next) {
            self.next += 1;
            if let Some(e) = slot.take() {
                return Some(e);
            }
        }
        self.rest.next()
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
            let mut take = |x: &mut Box<Expr>| {
                if !is_leaf(x) {
                    out.push(std::mem::replace(x, leaf()))
                }
            };
            match e {
                Expr::Litr(_) | Expr::Arg(_) | Expr::Get(_) => {}
                Expr::Set(_, x) => take(x),
                Expr::Add(a, b)
                | Expr::Let(a, b)
                | Expr::While(a, b)
                | Expr::Then(a, b)
                | Expr::Sub(a, b)
                | Expr::Lt(a, b) => {
                    take(a);
                    take(b);
                }
                Expr::If(c, t, f) => {
                    take(c);
                    take(t);
                    take(f);
                }
                // Each argument moves into a box of its own: a call's
                // arguments may be deep trees too.
                Expr::Call(_, args) => {
                    for arg in args.drain(..).filter(|a| !is_leaf(a)) {
                        out.push(Box::new(arg));
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
            Expr::Sub(a, b) => write!(f, "Sub({a:?}, {b:?})"),
            Expr::Lt(a, b) => write!(f, "Lt({a:?}, {b:?})"),
            Expr::If(c, t, e) => write!(f, "If({c:?}, {t:?}, {e:?})"),
            Expr::Call(i, args) => {
                write!(f, "Call({i}, [")?;
                for (n, a) in args.iter().enumerate() {
                    let sep = if n == 0 { "" } else { ", " };
                    write!(f, "{sep}{a:?}")?;
                }
                f.write_str("])")
            }
        }
    }
}

/// `fn name(params) = Body`, one per line, then the main expression.
impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fn {}({}) = {:?}",
            self.name,
            self.params.join(", "),
            self.body
        )
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for function in &self.functions {
            writeln!(f, "{function:?}")?;
        }
        write!(f, "{:?}", self.main)
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
    fn dropping_deep_level_two_trees_does_not_overflow() {
        let mut e = Expr::Litr(1);
        for i in 0..300_000 {
            e = match i % 4 {
                0 => Expr::sub(e, Expr::Litr(1)),
                1 => Expr::if_(Expr::Litr(0), e, Expr::lt(Expr::Arg(0), Expr::Litr(2))),
                2 => Expr::call(0, vec![Expr::Litr(1), e]),
                _ => Expr::lt(Expr::Litr(1), e),
            };
        }
        assert_eq!(e.depth(), 300_001);
        assert_eq!(e.node_count(), 1 + 75_000 * (2 + 5 + 2 + 2));
        drop(e);
    }

    #[test]
    fn children_come_in_evaluation_order() {
        let e = Expr::if_(Expr::Litr(1), Expr::Litr(2), Expr::Litr(3));
        let kids: Vec<_> = e.children().cloned().collect();
        assert_eq!(kids, [Expr::Litr(1), Expr::Litr(2), Expr::Litr(3)]);
        let call = Expr::call(4, vec![Expr::Arg(0), Expr::Get(1)]);
        let kids: Vec<_> = call.children().cloned().collect();
        assert_eq!(kids, [Expr::Arg(0), Expr::Get(1)]);
        assert_eq!(format!("{call:?}"), "Call(4, [Arg(0), Get(1)])");
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
