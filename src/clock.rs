//! The two clocks a measurement can use, and a stopwatch on either.
//!
//! Shared by the harness, which times the engines that run on its own
//! thread, and by the engines whose work runs in a helper process (LuaJIT),
//! which are handed the harness's clock and time their own work on it:
//! every cell of a report is then measured the same way, wherever it ran.

use cpu_time::ThreadTime;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The clock samples are timed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// CPU time of the measuring thread: time the scheduler gives to other
    /// processes is not charged to the engine that happened to be running.
    /// On an idle machine it equals wall time.
    Thread,
    /// Elapsed wall-clock time.
    Wall,
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::Thread => "thread CPU time",
            Clock::Wall => "wall-clock time",
        })
    }
}

/// A measurement started on one of the clocks.
pub enum Stopwatch {
    Thread(ThreadTime),
    Wall(Instant),
}

impl Stopwatch {
    pub fn start(clock: Clock) -> Stopwatch {
        match clock {
            Clock::Thread => Stopwatch::Thread(ThreadTime::now()),
            Clock::Wall => Stopwatch::Wall(Instant::now()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        match self {
            Stopwatch::Thread(t) => t.elapsed(),
            Stopwatch::Wall(t) => t.elapsed(),
        }
    }

    pub fn elapsed_ns(&self) -> f64 {
        self.elapsed().as_nanos() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_time_leaves_out_sleep_and_wall_time_does_not() {
        let (thread, wall) = (
            Stopwatch::start(Clock::Thread),
            Stopwatch::start(Clock::Wall),
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(wall.elapsed() >= Duration::from_millis(50));
        assert!(
            thread.elapsed() < Duration::from_millis(25),
            "{:?}",
            thread.elapsed()
        );
    }
}
