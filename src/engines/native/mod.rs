//! The engines that emit machine code: `jit` (Cranelift),
//! `template_jit` (one fixed x86-64 template per node) and
//! `copy_patch_jit` (stencils compiled from Rust, copied and patched), and
//! the disassembler they use for `vm-perf show`.

#[cfg(feature = "copy_patch_jit")]
pub mod copy_patch_jit;
#[cfg(any(feature = "jit", feature = "template_jit"))]
pub mod disassembly;
#[cfg(feature = "jit")]
pub mod jit;
#[cfg(feature = "template_jit")]
pub mod template_jit;
