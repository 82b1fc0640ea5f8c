//! The engines that emit machine code: `jit` (Cranelift) and
//! `template_jit` (one fixed x86-64 template per node), and the
//! disassembler both use for `vm-perf show`.

#[cfg(any(feature = "jit", feature = "template_jit"))]
pub mod disassembly;
#[cfg(feature = "jit")]
pub mod jit;
#[cfg(feature = "template_jit")]
pub mod template_jit;
