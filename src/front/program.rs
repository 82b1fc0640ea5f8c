//! Validation: the one gate between an arbitrary [`Source`] and the engines.
//!
//! A [`Program`] can only be built by [`Program::validate`], so holding one
//! proves the facts that engines rely on to skip checks at run time:
//!
//! 1. every `Get(d)`/`Set(d, _)` names a local in scope (`d < locals in
//!    scope`), a function's parameters counting as its outermost locals;
//! 2. every `Call(f, args)` names a function of the program (`f <
//!    functions().len()`) with exactly its number of parameters, at most
//!    [`MAX_PARAMS`];
//! 3. main and every function body are each at most [`MAX_DEPTH`] deep, so
//!    recursive compilers fit in a 2 MiB thread stack;
//! 4. [`Program::arg_count`], [`Program::max_locals`] and each function's
//!    [`BodyFacts`] are exact, so buffers can be sized once, at compile time;
//! 5. names are identifiers and unique where they must be (functions, the
//!    parameters of one function), so every program prints back to itself.
//!
//! Validation itself never recurses and is linear in the program's size, so
//! even a hostile tree cannot overflow it.

use super::ast::{Expr, Function, Source};
use std::collections::HashSet;
use std::fmt;

/// The deepest nesting any stage accepts, in main and in each function body
/// on its own. A leaf has depth 1.
///
/// Parser, validator, every compiler and every executor handle programs of
/// this depth on a thread with a 2 MiB stack (checked by `tests/stack.rs`).
pub const MAX_DEPTH: usize = 1000;

/// The most calls active at once (main is not a call). The call that would
/// make `MAX_CALLS + 1` active fails the run with *call depth exceeded*.
pub const MAX_CALLS: usize = 10_000;

/// The most parameters a function may have.
pub const MAX_PARAMS: usize = 16;

/// The words the text syntax reserves; no name may be one of them.
pub const KEYWORDS: &[&str] = &["let", "while", "arg", "fn", "if", "else"];

/// Whether `name` can be written in program text: `[A-Za-z_][A-Za-z0-9_]*`
/// and not a keyword.
pub fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !KEYWORDS.contains(&name)
}

/// The language level a program needs: the highest an engine runs is its
/// [`crate::engine::Technique::LEVEL`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// No functions, and only the eight Level-1 nodes.
    One,
    /// Functions, calls, `Sub`, `Lt` or `If`.
    Two,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::One => "Level 1",
            Level::Two => "Level 2",
        })
    }
}

/// What validation measured of one body (main or a function's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyFacts {
    /// The most locals live at once, a function's parameters included.
    pub max_locals: usize,
    /// Nesting depth (a leaf is 1); at most [`MAX_DEPTH`].
    pub depth: usize,
    /// Number of AST nodes.
    pub node_count: usize,
}

/// A program that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    source: Source,
    arg_count: usize,
    main: BodyFacts,
    functions: Vec<BodyFacts>,
    level: Level,
}

/// Why a [`Source`] is not a valid program.
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
    /// `Call(index, _)` in a program of `count` functions.
    UnknownFunction { index: usize, count: usize },
    /// A call passes `args` arguments to a function of `params` parameters.
    WrongArity {
        function: String,
        params: usize,
        args: usize,
    },
    /// Two functions share a name.
    DuplicateFunction { name: String },
    /// Two parameters of one function share a name.
    DuplicateParameter { function: String, name: String },
    /// More than [`MAX_PARAMS`] parameters.
    TooManyParameters { function: String, count: usize },
    /// A function or parameter name that is not an identifier.
    BadName { name: String },
    /// An error in the body of the function `function`.
    InFunction {
        function: String,
        error: Box<ValidationError>,
    },
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
            ValidationError::UnknownFunction { index, count } => write!(
                f,
                "Call({index}, _) refers to no function ({count} defined)"
            ),
            ValidationError::WrongArity {
                function,
                params,
                args,
            } => write!(
                f,
                "function `{function}` takes {params} argument{}, {args} given",
                if *params == 1 { "" } else { "s" }
            ),
            ValidationError::DuplicateFunction { name } => {
                write!(f, "two functions are named `{name}`")
            }
            ValidationError::DuplicateParameter { function, name } => {
                write!(f, "function `{function}` has two parameters named `{name}`")
            }
            ValidationError::TooManyParameters { function, count } => write!(
                f,
                "function `{function}` has {count} parameters; the limit is {MAX_PARAMS}"
            ),
            ValidationError::BadName { name } => {
                write!(f, "{name:?} is not a name (an identifier, not a keyword)")
            }
            ValidationError::InFunction { function, error } => {
                write!(f, "in function `{function}`: {error}")
            }
        }
    }
}

impl std::error::Error for ValidationError {}

/// What checking one body found, beyond its [`BodyFacts`].
struct Checked {
    facts: BodyFacts,
    arg_count: usize,
    level_two: bool,
}

/// Checks one body whose `params` parameters are its outermost locals,
/// without recursion.
fn check_body(
    body: &Expr,
    params: usize,
    functions: &[Function],
) -> Result<Checked, ValidationError> {
    let mut arg_count = 0;
    let mut max_locals = params;
    let mut depth = 0;
    let mut node_count = 0;
    let mut level_two = false;
    // (node, nesting depth, locals in scope)
    let mut todo: Vec<(&Expr, usize, usize)> = vec![(body, 1, params)];
    while let Some((e, d, scope)) = todo.pop() {
        node_count += 1;
        depth = depth.max(d);
        if d > MAX_DEPTH {
            // Measure the real depth without recursion for the message.
            return Err(ValidationError::TooDeep {
                depth: body.depth(),
            });
        }
        max_locals = max_locals.max(scope);
        level_two |= e.is_level_two();
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
            Expr::Add(a, b)
            | Expr::While(a, b)
            | Expr::Then(a, b)
            | Expr::Sub(a, b)
            | Expr::Lt(a, b) => {
                todo.push((a, d + 1, scope));
                todo.push((b, d + 1, scope));
            }
            Expr::If(c, t, f) => {
                todo.push((c, d + 1, scope));
                todo.push((t, d + 1, scope));
                todo.push((f, d + 1, scope));
            }
            Expr::Call(f, args) => {
                let Some(callee) = functions.get(*f) else {
                    return Err(ValidationError::UnknownFunction {
                        index: *f,
                        count: functions.len(),
                    });
                };
                if args.len() != callee.arity() {
                    return Err(ValidationError::WrongArity {
                        function: callee.name.clone(),
                        params: callee.arity(),
                        args: args.len(),
                    });
                }
                todo.extend(args.iter().map(|a| (a, d + 1, scope)));
            }
        }
    }
    Ok(Checked {
        facts: BodyFacts {
            max_locals,
            depth,
            node_count,
        },
        arg_count,
        level_two,
    })
}

/// Checks the functions' names and parameter lists.
fn check_signatures(functions: &[Function]) -> Result<(), ValidationError> {
    let mut names = HashSet::with_capacity(functions.len());
    for f in functions {
        if !is_identifier(&f.name) {
            return Err(ValidationError::BadName {
                name: f.name.clone(),
            });
        }
        if !names.insert(f.name.as_str()) {
            return Err(ValidationError::DuplicateFunction {
                name: f.name.clone(),
            });
        }
        if f.params.len() > MAX_PARAMS {
            return Err(ValidationError::TooManyParameters {
                function: f.name.clone(),
                count: f.params.len(),
            });
        }
        for (i, p) in f.params.iter().enumerate() {
            if !is_identifier(p) {
                return Err(ValidationError::BadName { name: p.clone() });
            }
            if f.params[..i].contains(p) {
                return Err(ValidationError::DuplicateParameter {
                    function: f.name.clone(),
                    name: p.clone(),
                });
            }
        }
    }
    Ok(())
}

impl Program {
    /// Checks a program (a bare [`Expr`] is a program without functions)
    /// and computes the facts engines size their buffers from.
    pub fn validate(source: impl Into<Source>) -> Result<Program, ValidationError> {
        let source = source.into();
        check_signatures(&source.functions)?;
        let main = check_body(&source.main, 0, &source.functions)?;
        let mut arg_count = main.arg_count;
        let mut level_two = main.level_two || !source.functions.is_empty();
        let mut functions = Vec::with_capacity(source.functions.len());
        for f in &source.functions {
            let checked = check_body(&f.body, f.arity(), &source.functions).map_err(|error| {
                ValidationError::InFunction {
                    function: f.name.clone(),
                    error: Box::new(error),
                }
            })?;
            arg_count = arg_count.max(checked.arg_count);
            level_two |= checked.level_two;
            functions.push(checked.facts);
        }
        Ok(Program {
            source,
            arg_count,
            main: main.facts,
            functions,
            level: if level_two { Level::Two } else { Level::One },
        })
    }

    /// The main expression (for a Level-1 program, the whole program).
    pub fn expr(&self) -> &Expr {
        &self.source.main
    }

    /// The functions; `Call(f, _)` calls `functions()[f]`.
    pub fn functions(&self) -> &[Function] {
        &self.source.functions
    }

    /// What validation measured of each function's body, in the order of
    /// [`Program::functions`].
    pub fn function_facts(&self) -> &[BodyFacts] {
        &self.functions
    }

    /// The whole validated program: functions and main.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The level the program needs: [`Level::One`] when it has no function
    /// and none of `Sub`, `Lt`, `If`, `Call`.
    pub fn level(&self) -> Level {
        self.level
    }

    /// How many arguments execution needs: one more than the highest `Arg(i)`
    /// anywhere in the program, functions never called included.
    pub fn arg_count(&self) -> usize {
        self.arg_count
    }

    /// The most locals ever live at once in main (the deepest `Let`
    /// nesting); each function's are in [`Program::function_facts`].
    pub fn max_locals(&self) -> usize {
        self.main.max_locals
    }

    /// Nesting depth of main (a leaf is 1); at most [`MAX_DEPTH`]. Each
    /// function's is in [`Program::function_facts`].
    pub fn depth(&self) -> usize {
        self.main.depth
    }

    /// Number of AST nodes in the whole program: main and every body.
    pub fn node_count(&self) -> usize {
        self.main.node_count + self.functions.iter().map(|f| f.node_count).sum::<usize>()
    }

    /// Gives main's tree back (the whole program when it has no functions).
    pub fn into_expr(self) -> Expr {
        self.source.main
    }

    /// Gives the whole program back.
    pub fn into_source(self) -> Source {
        self.source
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

    fn function(name: &str, params: &[&str], body: Expr) -> Function {
        Function {
            name: name.into(),
            params: params.iter().map(|p| p.to_string()).collect(),
            body,
        }
    }

    #[test]
    fn level_one_is_no_function_and_no_new_node() {
        let p = Program::validate(Expr::add(Litr(1), Arg(0))).unwrap();
        assert_eq!(p.level(), Level::One);
        assert!(p.functions().is_empty());
        let p = Program::validate(Expr::sub(Litr(1), Litr(2))).unwrap();
        assert_eq!(p.level(), Level::Two);
        // A function alone makes Level 2, even one never called.
        let p = Program::validate(Source {
            functions: vec![function("f", &[], Litr(0))],
            main: Litr(1),
        })
        .unwrap();
        assert_eq!(p.level(), Level::Two);
    }

    #[test]
    fn parameters_are_the_outermost_locals() {
        // fn f(a, b) { let c = a; b + c }  with a = Get(1), b = Get(0) at the start
        let body = Expr::let_(Get(1), Expr::add(Get(1), Get(0)));
        let p = Program::validate(Source {
            functions: vec![function("f", &["a", "b"], body)],
            main: Expr::call(0, vec![Litr(1), Litr(2)]),
        })
        .unwrap();
        assert_eq!(
            p.function_facts()[0],
            BodyFacts {
                max_locals: 3,
                depth: 3,
                node_count: 5
            }
        );
        assert_eq!(p.max_locals(), 0);
        assert_eq!(p.node_count(), 5 + 3);
        // A body sees only its own parameters and lets, never main's.
        let err = Program::validate(Source {
            functions: vec![function("g", &["a"], Get(1))],
            main: Expr::let_(Litr(0), Expr::call(0, vec![Get(0)])),
        });
        assert_eq!(
            err,
            Err(ValidationError::InFunction {
                function: "g".into(),
                error: Box::new(ValidationError::UnboundLocal {
                    node: "Get",
                    depth: 1,
                    in_scope: 1
                })
            })
        );
    }

    #[test]
    fn arg_count_covers_functions_never_called() {
        let p = Program::validate(Source {
            functions: vec![function("unused", &[], Arg(4))],
            main: Arg(0),
        })
        .unwrap();
        assert_eq!(p.arg_count(), 5);
    }

    #[test]
    fn rejects_bad_calls_and_names() {
        let f = |params: &[&str]| function("f", params, Litr(0));
        let bad = |functions: Vec<Function>, main: Expr| {
            Program::validate(Source { functions, main }).unwrap_err()
        };
        assert_eq!(
            bad(vec![f(&["a"])], Expr::call(1, vec![Litr(0)])),
            ValidationError::UnknownFunction { index: 1, count: 1 }
        );
        assert_eq!(
            bad(vec![f(&["a"])], Expr::call(0, vec![])),
            ValidationError::WrongArity {
                function: "f".into(),
                params: 1,
                args: 0
            }
        );
        assert_eq!(
            bad(vec![f(&[]), f(&[])], Litr(0)),
            ValidationError::DuplicateFunction { name: "f".into() }
        );
        assert_eq!(
            bad(vec![f(&["a", "b", "a"])], Litr(0)),
            ValidationError::DuplicateParameter {
                function: "f".into(),
                name: "a".into()
            }
        );
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            bad(vec![f(&many)], Litr(0)),
            ValidationError::TooManyParameters {
                function: "f".into(),
                count: 17
            }
        );
        assert!(
            Program::validate(Source {
                functions: vec![f(&many[..MAX_PARAMS])],
                main: Litr(0)
            })
            .is_ok()
        );
        for name in ["", "if", "1a", "a-b"] {
            assert_eq!(
                bad(vec![function(name, &[], Litr(0))], Litr(0)),
                ValidationError::BadName { name: name.into() }
            );
            assert_eq!(
                bad(vec![f(&[name])], Litr(0)),
                ValidationError::BadName { name: name.into() }
            );
        }
    }

    #[test]
    fn max_depth_applies_to_each_body_on_its_own() {
        let chain = |n: usize| {
            let mut e = Litr(1);
            for _ in 1..n {
                e = Expr::sub(Litr(0), e);
            }
            e
        };
        let source = |body: Expr| Source {
            functions: vec![function("f", &[], body)],
            main: chain(MAX_DEPTH),
        };
        assert!(Program::validate(source(chain(MAX_DEPTH))).is_ok());
        assert!(matches!(
            Program::validate(source(chain(MAX_DEPTH + 1))),
            Err(ValidationError::InFunction { .. })
        ));
    }

    #[test]
    fn many_functions_validate_in_linear_time() {
        // 10⁵ functions, each calling the next: one pass each, one hash set.
        let n = 100_000;
        let functions = (0..n)
            .map(|i| {
                let body = if i + 1 < n {
                    Expr::call(i + 1, vec![Expr::sub(Get(0), Litr(1))])
                } else {
                    Get(0)
                };
                function(&format!("f{i}"), &["x"], body)
            })
            .collect();
        let p = Program::validate(Source {
            functions,
            main: Expr::call(0, vec![Arg(0)]),
        })
        .unwrap();
        assert_eq!(p.functions().len(), n);
        assert_eq!(p.arg_count(), 1);
    }
}
