//! A user's suite: the program files and folders `vm-perf bench PATH...`
//! names. A file takes the integers written after it on the command line
//! as its arguments, or else those of its `// args:` header; a folder
//! stands for its `.vm` files, each with its header, as the built-in
//! workloads carry theirs.
//!
//! [`load`] is the one way any command reads a program file with its
//! arguments (`vm-perf run` too); the pre-flight runs each once
//! ([`super::preflight`]), and the runner measures them all in one
//! interleaved run: per-program tables and charts and the geometric means,
//! exactly as for the built-in workloads.

use super::case::Case;
use crate::engine::ArgError;
use crate::front::{SourceError, compile_source, decode, program::Program};
use crate::workloads::header;
use std::io::Read;
use std::path::Path;

/// Why a program cannot be loaded or a suite measured: a located error in
/// the program's text (rendered with its line), or a message.
#[derive(Debug)]
pub enum Error {
    Source(SourceError),
    Message(String),
}

impl From<SourceError> for Error {
    fn from(e: SourceError) -> Self {
        Error::Source(e)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Message(message)
    }
}

/// A program file as the command line names it (`-`: standard input), read
/// once and validated.
pub struct Source {
    pub text: String,
    pub program: Program,
}

/// Reads and validates a program file.
pub fn read(file: &str) -> Result<Source, Error> {
    let bytes = if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("-: cannot read standard input: {e}"))?;
        buf
    } else {
        std::fs::read(file).map_err(|e| format!("{file}: cannot read file: {e}"))?
    };
    let text = decode(file, bytes)?;
    let program = compile_source(file, &text)?;
    Ok(Source { text, program })
}

/// The one way to load a program to run: [`read`] it, parse its arguments
/// (`None`: those of its `// args:` header, as a suite's programs give
/// them) and check there are as many as it reads.
pub fn load(file: &str, args: Option<&[String]>) -> Result<(Source, Vec<i64>), Error> {
    let source = read(file)?;
    let header = header_args(&source.text);
    let (args, whence) = match (args, &header) {
        (Some(args), _) => (parse_args(args)?, ""),
        (None, Some(header)) => (
            parse_args(header).map_err(|m| format!("{file}: its `// args:` header: {m}"))?,
            " by its `// args:` header",
        ),
        (None, None) => (Vec::new(), " (none after it, and no `// args:` header)"),
    };
    if source.program.arg_count() > args.len() {
        let e = ArgError {
            needed: source.program.arg_count(),
            given: args.len(),
        };
        return Err(format!("{file}: {e}{whence}").into());
    }
    Ok((source, args))
}

/// Parses command-line program arguments as decimal `i64`s.
pub fn parse_args(args: &[String]) -> Result<Vec<i64>, String> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse::<i64>().map_err(|_| {
                format!(
                    "program argument {} `{a}` is not a decimal 64-bit integer",
                    i + 1
                )
            })
        })
        .collect()
}

/// One program of a suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    /// The arguments written after the file on the command line; `None`
    /// when none were (its `// args:` header gives them).
    pub args: Option<Vec<String>>,
}

/// Whether a command-line word is a program argument rather than a path:
/// a decimal integer, or a word shaped like a number that names no file
/// (so `bench f.vm 1.5` reports a bad argument, not a missing file).
fn is_argument(word: &str) -> bool {
    word.parse::<i64>().is_ok()
        || (word != "-"
            && word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
            && !Path::new(word).exists())
}

/// The programs `words` name, in order: a folder stands for its `.vm`
/// files sorted by name; the integers after a file are its arguments.
pub fn entries(words: &[String]) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = Vec::new();
    let mut after_file = false;
    for word in words {
        if is_argument(word) {
            match out.last_mut() {
                Some(e) if after_file => e.args.get_or_insert_with(Vec::new).push(word.clone()),
                Some(_) => {
                    return Err(format!(
                        "argument `{word}` follows a folder: give each of its programs \
                         its arguments in an `// args:` header"
                    ));
                }
                None => {
                    return Err(format!(
                        "argument `{word}` comes before any program file: `vm-perf bench FILE ARG...`"
                    ));
                }
            }
            continue;
        }
        let path = Path::new(word);
        after_file = word == "-" || !path.is_dir();
        if after_file {
            out.push(Entry {
                file: word.clone(),
                args: None,
            });
            continue;
        }
        let files = vm_files(path)?;
        if files.is_empty() {
            return Err(format!("{word}: no `.vm` files in this folder"));
        }
        out.extend(files.into_iter().map(|file| Entry { file, args: None }));
    }
    Ok(out)
}

/// The `.vm` files directly in `dir`, sorted.
fn vm_files(dir: &Path) -> Result<Vec<String>, String> {
    let cannot = |e: std::io::Error| format!("{}: cannot read folder: {e}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(cannot)? {
        let path = entry.map_err(cannot)?.path();
        if path.extension().is_some_and(|x| x == "vm") && path.is_file() {
            files.push(path.to_string_lossy().into_owned());
        }
    }
    files.sort();
    Ok(files)
}

/// The arguments of `source`'s `// args:` header as written (`None`: it
/// has none).
pub fn header_args(source: &str) -> Option<Vec<String>> {
    header(source, "args").map(|a| a.split_whitespace().map(str::to_string).collect())
}

/// A program run with its header's arguments and carrying an `// expect:`
/// header must give that value: walker computed `value`.
pub fn check_expected(entry: &Entry, source: &str, value: i64) -> Result<(), String> {
    let (None, Some(want)) = (&entry.args, header(source, "expect")) else {
        return Ok(());
    };
    let file = &entry.file;
    match want.parse::<i64>() {
        Ok(w) if w == value => Ok(()),
        Ok(w) => Err(format!(
            "{file}: walker computes {value}, but its `// expect:` header says {w}"
        )),
        Err(_) => Err(format!(
            "{file}: its `// expect:` header `{want}` is not a decimal 64-bit integer"
        )),
    }
}

/// Reports are keyed by program name (the file's stem): two programs of
/// one run must not share one. `cases[i]` was loaded from `entries[i]`.
pub fn check_names(entries: &[Entry], cases: &[Case]) -> Result<(), String> {
    for (i, c) in cases.iter().enumerate() {
        if let Some(j) = cases[..i].iter().position(|d| d.name == c.name) {
            return Err(format!(
                "{} and {} are both named `{}`: programs measured together need different file names",
                entries[j].file, entries[i].file, c.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn entry(file: &str, args: Option<&[&str]>) -> Entry {
        Entry {
            file: file.into(),
            args: args.map(words),
        }
    }

    #[test]
    fn files_take_the_integers_after_them() {
        let e = entries(&words(&["a.vm", "10", "-3", "b.vm", "-"])).unwrap();
        assert_eq!(
            e,
            [
                entry("a.vm", Some(&["10", "-3"])),
                entry("b.vm", None),
                entry("-", None)
            ]
        );
        // Shaped like a number: an argument, for parse_args to reject.
        assert_eq!(
            entries(&words(&["a.vm", "1.5"])).unwrap(),
            [entry("a.vm", Some(&["1.5"]))]
        );
        assert!(
            entries(&words(&["5", "a.vm"]))
                .unwrap_err()
                .contains("before any program")
        );
    }

    #[test]
    fn a_folder_is_its_vm_files_sorted() {
        let dir = std::env::temp_dir().join(format!("vm-perf-suite-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in ["b.vm", "a.vm", "notes.txt", "sub/c.vm"] {
            std::fs::write(dir.join(f), "1").unwrap();
        }
        let d = dir.to_string_lossy().into_owned();
        let e = entries(&words(&[&d])).unwrap();
        let names: Vec<_> = e.iter().map(|e| e.file.clone()).collect();
        assert_eq!(
            names,
            [
                dir.join("a.vm").to_string_lossy(),
                dir.join("b.vm").to_string_lossy()
            ]
        );
        assert!(e.iter().all(|e| e.args.is_none()));
        assert!(
            entries(&words(&[&d, "3"]))
                .unwrap_err()
                .contains("follows a folder")
        );
        let empty = dir.join("sub").join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = entries(&[empty.to_string_lossy().into_owned()]).unwrap_err();
        assert!(err.contains("no `.vm` files"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn headers_give_arguments_and_the_expected_value() {
        let src = "// what\n// args: 3 -4\n// expect: 7\narg(0)";
        assert_eq!(header_args(src), Some(words(&["3", "-4"])));
        assert_eq!(header_args("arg(0)"), None);
        let from_header = entry("p.vm", None);
        assert!(check_expected(&from_header, src, 7).is_ok());
        let err = check_expected(&from_header, src, 8).unwrap_err();
        assert_eq!(
            err,
            "p.vm: walker computes 8, but its `// expect:` header says 7"
        );
        // Arguments given on the command line: the header's value is not theirs.
        assert!(check_expected(&entry("p.vm", Some(&["1"])), src, 8).is_ok());
    }
}
