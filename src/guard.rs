//! Stopping runaway programs without touching any engine's hot loop.
//!
//! No engine counts steps or polls a flag: a program that never ends simply
//! never returns. The guard therefore lives outside the engine, as a
//! watchdog thread. [`with_timeout`] runs a closure on the calling thread;
//! if it has not returned when the time is up, the watchdog prints one line
//! to stderr and ends the whole process with [`TIMEOUT_EXIT_CODE`]. There is
//! no way to cancel a running engine safely in-process, so ending the
//! process is the only honest stop; callers that must survive a timeout run
//! the program in a child process (`vm-perf run --timeout` in a subprocess).

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// The exit code of a process stopped by the guard (`timeout(1)` uses 124
/// too, so shell scripts can tell a timeout from an error).
pub const TIMEOUT_EXIT_CODE: u8 = 124;

/// Runs `f`; if it takes longer than `limit`, prints
/// `vm-perf: error: {what} did not finish within {limit}` to stderr and
/// exits the process with [`TIMEOUT_EXIT_CODE`]. `None` runs `f` unguarded.
///
/// The closure runs on the calling thread (so its stack size is the
/// caller's); only the watchdog is a new thread, and it is woken and joined
/// as soon as `f` returns.
pub fn with_timeout<R>(limit: Option<Duration>, what: &str, f: impl FnOnce() -> R) -> R {
    let Some(limit) = limit else { return f() };
    let (done, wait) = mpsc::channel::<()>();
    let message = format!(
        "vm-perf: error: {what} did not finish within {} (stopped by --timeout)",
        show_duration(limit)
    );
    let watchdog = std::thread::Builder::new()
        .name("vm-perf-timeout".into())
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{message}");
                let _ = err.flush();
                // Not `stdout().flush()`: the CLI holds the stdout lock while
                // the program runs. `exit` flushes it if it can take it.
                std::process::exit(i32::from(TIMEOUT_EXIT_CODE));
            }
        })
        .expect("cannot start the timeout watchdog thread");
    let r = f();
    drop(done);
    let _ = watchdog.join();
    r
}

/// Parses a `--timeout` value: seconds, fractions allowed (`0.5`), > 0.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() && s <= 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

fn show_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s == s.trunc() {
        format!("{s} s")
    } else {
        format!("{s:.3} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_closure_is_not_disturbed() {
        assert_eq!(
            with_timeout(Some(Duration::from_secs(60)), "test", || 42),
            42
        );
        assert_eq!(with_timeout(None, "test", || 7), 7);
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("x").is_err());
    }
}
