//! The machine and the build a report was measured with.

use serde::{Deserialize, Serialize};

/// Where the numbers come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    pub os: String,
    pub kernel: String,
    pub arch: String,
}

/// How the measured binary was built.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub rustc: String,
    /// Cargo profile (`release`, `debug`) and its opt-level.
    pub profile: String,
    pub opt_level: String,
    pub debug_assertions: bool,
    pub rustflags: String,
    pub target: String,
    pub vm_perf_version: String,
}

impl Machine {
    /// Reads what the OS tells about this machine; unknown parts say so.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os = os_release
            .lines()
            .find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os,
            kernel,
            arch: std::env::consts::ARCH.to_string(),
        }
    }

    /// One line for headers: `CPU, N cores, OS (kernel)`.
    pub fn line(&self) -> String {
        let kernel = if self.kernel.is_empty() {
            String::new()
        } else {
            format!(", Linux {}", self.kernel)
        };
        format!(
            "{}, {} cores, {} {}{kernel}",
            self.cpu, self.cores, self.os, self.arch
        )
    }
}

impl Build {
    /// The build of the running binary (recorded by `build.rs`).
    pub fn current() -> Build {
        Build {
            rustc: env!("VM_PERF_RUSTC").to_string(),
            profile: env!("VM_PERF_PROFILE").to_string(),
            opt_level: env!("VM_PERF_OPT_LEVEL").to_string(),
            debug_assertions: cfg!(debug_assertions),
            rustflags: env!("VM_PERF_RUSTFLAGS").to_string(),
            target: env!("VM_PERF_TARGET").to_string(),
            vm_perf_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// One line for headers.
    pub fn line(&self) -> String {
        let flags = if self.rustflags.is_empty() {
            "no RUSTFLAGS".to_string()
        } else {
            format!("RUSTFLAGS `{}`", self.rustflags)
        };
        format!(
            "{}, profile {} (opt-level {}), {flags}",
            self.rustc, self.profile, self.opt_level
        )
    }
}
