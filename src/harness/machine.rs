//! The machine and the build a report was measured with.

use serde::{Deserialize, Serialize};

/// Where the numbers come from: enough to tell two machines apart that
/// share a marketing name (two "AMD EPYC, 2 cores" can differ by a CPU
/// generation). Fields after `arch` are absent from older results, which
/// still load (`serde(default)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cpu: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    /// CPU vendor (`GenuineIntel`, `AuthenticAMD`, …), family, model and
    /// stepping, and microcode revision, as the kernel reports them.
    pub vendor: String,
    pub family: Option<u32>,
    pub model: Option<u32>,
    pub stepping: Option<u32>,
    pub microcode: String,
    /// The CPU's maximum frequency if the kernel knows it (cpufreq), else
    /// the one `/proc/cpuinfo` reports.
    pub mhz: Option<f64>,
    /// Caches of the first CPU: `L1d 48K`, `L1i 32K`, `L2 2048K`, …
    pub caches: Vec<String>,
    /// The CPU flags that change generated code or its speed (vector and
    /// bit-manipulation extensions, fast string moves), in the kernel's names.
    pub cpu_flags: Vec<String>,
    /// Whether the kernel runs under a hypervisor (the `hypervisor` flag).
    pub virtualised: bool,
}

/// The flags [`Machine::cpu_flags`] keeps, when the CPU has them.
const NOTABLE_FLAGS: &[&str] = &[
    "sse4_2", "avx", "avx2", "avx512f", "avx512vl", "fma", "bmi1", "bmi2", "popcnt", "abm",
    "lzcnt", "erms", "fsrm", "asimd", "sve", "sve2",
];

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
    /// The target features the code was compiled for (`-C target-cpu` and
    /// `-C target-feature` change them); absent (empty) in older results.
    #[serde(default)]
    pub target_features: String,
    /// The cargo features of the build (which engines and peers it has);
    /// absent (empty) in older results.
    #[serde(default)]
    pub features: String,
}

impl Machine {
    /// Reads what the OS tells about this machine; unknown parts say so.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
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
        let cpu0 = std::path::Path::new("/sys/devices/system/cpu/cpu0");
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut caches = Vec::new();
        for i in 0.. {
            let dir = cpu0.join(format!("cache/index{i}"));
            if !dir.exists() {
                break;
            }
            let kind = match read(&dir.join("type")).as_str() {
                "Data" => "d",
                "Instruction" => "i",
                _ => "",
            };
            caches.push(format!(
                "L{}{kind} {}",
                read(&dir.join("level")),
                read(&dir.join("size"))
            ));
        }
        let max_khz: Option<f64> = read(&cpu0.join("cpufreq/cpuinfo_max_freq")).parse().ok();
        let mut m = Machine::from_cpuinfo(&cpuinfo);
        m.cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        m.os = os;
        m.kernel = kernel;
        m.caches = caches;
        m.mhz = max_khz.map(|k| k / 1000.0).or(m.mhz);
        m
    }

    /// What `/proc/cpuinfo` says about the first CPU (the rest is left
    /// empty for [`Machine::detect`] to fill in).
    pub fn from_cpuinfo(cpuinfo: &str) -> Machine {
        let first = cpuinfo.split("\n\n").next().unwrap_or("");
        let field = |name: &str| {
            first.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        let number = |name: &str| field(name).and_then(|v| v.parse().ok());
        let flags = field("flags")
            .or_else(|| field("Features"))
            .unwrap_or_default();
        let flags: Vec<&str> = flags.split_whitespace().collect();
        Machine {
            cpu: field("model name").unwrap_or_else(|| "unknown CPU".into()),
            cores: 0,
            os: String::new(),
            kernel: String::new(),
            arch: std::env::consts::ARCH.to_string(),
            vendor: field("vendor_id").unwrap_or_default(),
            family: number("cpu family"),
            model: number("model"),
            stepping: number("stepping"),
            microcode: field("microcode").unwrap_or_default(),
            mhz: field("cpu MHz").and_then(|v| v.parse().ok()),
            caches: Vec::new(),
            cpu_flags: NOTABLE_FLAGS
                .iter()
                .filter(|f| flags.contains(f))
                .map(|f| f.to_string())
                .collect(),
            virtualised: flags.contains(&"hypervisor"),
        }
    }

    /// One line for headers: `CPU (identity; caches), N cores, OS (kernel)`.
    pub fn line(&self) -> String {
        let kernel = if self.kernel.is_empty() {
            String::new()
        } else {
            format!(", Linux {}", self.kernel)
        };
        let mut id = Vec::new();
        if let (Some(f), Some(m), Some(s)) = (self.family, self.model, self.stepping) {
            id.push(format!("{} family {f} model {m} stepping {s}", self.vendor));
        }
        if !self.microcode.is_empty() {
            id.push(format!("microcode {}", self.microcode));
        }
        if let Some(mhz) = self.mhz {
            id.push(format!("{mhz:.0} MHz"));
        }
        if !self.caches.is_empty() {
            id.push(self.caches.join(" "));
        }
        if !self.cpu_flags.is_empty() {
            id.push(self.cpu_flags.join(" "));
        }
        if self.virtualised {
            id.push("virtualised".into());
        }
        let id = if id.is_empty() {
            String::new()
        } else {
            format!(" ({})", id.join("; "))
        };
        format!(
            "{}{id}, {} cores, {} {}{kernel}",
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
            target_features: env!("VM_PERF_TARGET_FEATURES").to_string(),
            features: env!("VM_PERF_FEATURES").to_string(),
        }
    }

    /// One line for headers.
    pub fn line(&self) -> String {
        let flags = if self.rustflags.is_empty() {
            "no RUSTFLAGS".to_string()
        } else {
            format!("RUSTFLAGS `{}`", self.rustflags)
        };
        let features = if self.features.is_empty() {
            "no cargo features".to_string()
        } else {
            format!("features {}", self.features)
        };
        format!(
            "{}, profile {} (opt-level {}), {flags}, target {} ({}), {features}",
            self.rustc, self.profile, self.opt_level, self.target, self.target_features
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
model\t\t: 1\nmodel name\t: AMD EPYC 7B13\nstepping\t: 1\nmicrocode\t: 0xffffffff\n\
cpu MHz\t\t: 2449.998\nflags\t\t: fpu sse4_2 avx avx2 bmi2 hypervisor erms\n\n\
processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n";

    #[test]
    fn two_epycs_are_told_apart() {
        let milan = Machine::from_cpuinfo(CPUINFO);
        assert_eq!(milan.vendor, "AuthenticAMD");
        assert_eq!(
            (milan.family, milan.model, milan.stepping),
            (Some(25), Some(1), Some(1))
        );
        assert_eq!(milan.microcode, "0xffffffff");
        assert_eq!(milan.mhz, Some(2449.998));
        assert_eq!(milan.cpu_flags, ["sse4_2", "avx", "avx2", "bmi2", "erms"]);
        assert!(milan.virtualised);
        let rome = Machine::from_cpuinfo(&CPUINFO.replace("model\t\t: 1\n", "model\t\t: 49\n"));
        assert_eq!(rome.cpu, milan.cpu);
        assert_ne!(rome.line(), milan.line());
        assert!(
            milan
                .line()
                .contains("AuthenticAMD family 25 model 1 stepping 1"),
            "{}",
            milan.line()
        );
    }

    #[test]
    fn this_machine_and_build_are_identified() {
        let m = Machine::detect();
        if cfg!(target_os = "linux") {
            assert!(
                m.family.is_some() || !m.vendor.starts_with("Genuine"),
                "{m:?}"
            );
            assert!(!m.caches.is_empty(), "{m:?}");
            assert!(!m.kernel.is_empty());
        }
        let b = Build::current();
        assert!(b.rustc.starts_with("rustc "), "{b:?}");
        assert_eq!(
            b.features.split(',').any(|f| f == "jit"),
            cfg!(feature = "jit"),
            "{b:?}"
        );
    }
}
