//! Executable memory for `template_jit`: W^X, and no system call per
//! compile once a thread has a region.
//!
//! Fresh executable memory per program (mmap, write, mprotect, munmap), or
//! even one reused page flipped RW → RX → RW, costs system calls and TLB
//! work that dwarf a template compile (`docs/TECHNIQUES.md`). So on
//! Linux code lives in *regions*: shared pages mapped twice (`mremap` of a
//! shared mapping with an old size of 0), a read-write view that is never
//! executable and a read-execute view that is never writable. A compile
//! copies its code in through the write view and runs it through the
//! execute view: no page is ever writable and executable at once, and no
//! permission changes after the region is made. (The price of a dual mapping: the
//! code's bytes stay writable at another address, which W^X proper would
//! forbid; an attacker who can already write memory at an address of their
//! choosing would have to find that view.)
//!
//! Each thread bump-allocates from its current region (`Rc`-shared, so code
//! never leaves its thread). A program dropped while on top of the bump
//! gives its space back at once, and an emptied region starts again at
//! offset 0, so a benchmark's compile/drop loop reuses the same warm bytes;
//! a region is unmapped when its last program is dropped and it is no
//! longer current. Code too large to share gets a region of its own.
//! Where that second mapping cannot be had (not Linux; valgrind, whose
//! translation cache would otherwise miss code rewritten at a reused
//! address, refuses it), each program gets its own anonymous mapping,
//! written, then made read-execute with `mprotect`: slower to compile, same
//! code.
//!
//! x86-64 keeps instruction fetch coherent with stores to the same physical
//! memory, so no cache maintenance is needed between the copy and the first
//! call (which the return from compile separates from it).

use memmap2::{Mmap, MmapMut};
use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

/// Bytes a shared region maps (pages are only backed once touched).
const REGION_BYTES: usize = 1 << 20;
/// Code larger than this gets a region of its own, freed with it.
const SHARED_UP_TO: usize = REGION_BYTES / 4;
/// Programs start on a cache line of their own.
const ALIGN: usize = 64;

/// One set of shared pages seen through two mappings.
// Only Linux makes one; elsewhere every program takes the fallback.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Region {
    write: Mapping,
    exec: Mapping,
    /// Bytes handed out from the start of the region.
    used: Cell<usize>,
}

/// A mapping this module made; unmapped on drop.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: `ptr..ptr + len` is a mapping this module made and only
        // its owner refers to; the owner is going away, and a region's
        // programs keep it (so this mapping) alive while they can run.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.cast(), self.len);
        }
    }
}

impl Region {
    /// Shared anonymous pages mapped read-write, then mapped a second time
    /// (`mremap` with an old size of 0) and made read-execute.
    #[cfg(target_os = "linux")]
    fn new(len: usize) -> io::Result<Region> {
        use rustix::mm::{MapFlags, MprotectFlags, MremapFlags, ProtFlags};
        use rustix::mm::{mmap_anonymous, mprotect, mremap};
        let rw = ProtFlags::READ | ProtFlags::WRITE;
        // SAFETY: a fresh mapping where the kernel chooses: nothing else
        // refers to that memory.
        let ptr = unsafe { mmap_anonymous(std::ptr::null_mut(), len, rw, MapFlags::SHARED)? };
        let write = Mapping {
            ptr: ptr.cast(),
            len,
        };
        // SAFETY: `write` is a shared mapping of `len` bytes we own; an old
        // size of 0 asks for a new mapping of the same pages elsewhere.
        let ptr = unsafe { mremap(write.ptr.cast(), 0, len, MremapFlags::MAYMOVE)? };
        let exec = Mapping {
            ptr: ptr.cast(),
            len,
        };
        // SAFETY: `exec` is ours and nothing runs from it yet; it loses
        // write permission before it gains execute permission.
        unsafe { mprotect(ptr, len, MprotectFlags::READ | MprotectFlags::EXEC)? };
        Ok(Region {
            write,
            exec,
            used: Cell::new(0),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new(_len: usize) -> io::Result<Region> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no dual mapping",
        ))
    }
}

thread_local! {
    /// The region this thread allocates from; `None` until the first
    /// compile, or for good once dual mapping failed here.
    static CURRENT: RefCell<Option<Rc<Region>>> = const { RefCell::new(None) };
    static DUAL_MAPPING_FAILED: Cell<bool> = const { Cell::new(false) };
}

/// Who keeps a program's code mapped.
enum Owner {
    /// Bytes `offset..offset + len` (rounded to [`ALIGN`]) of a region.
    Shared { region: Rc<Region>, offset: usize },
    /// A mapping of its own (turned read-execute after the write).
    Own(Mmap),
}

/// A program's machine code in executable, never writable memory. Not
/// `Send`: its region's bump pointer belongs to the compiling thread.
pub struct CodeMemory {
    owner: Owner,
    len: usize,
}

impl CodeMemory {
    /// Copies `code` into fresh executable memory.
    pub fn new(code: &[u8]) -> io::Result<CodeMemory> {
        if !DUAL_MAPPING_FAILED.get() {
            let placed = if code.len() <= SHARED_UP_TO {
                Self::shared(code)
            } else {
                let own = Region::new(code.len().next_multiple_of(4096));
                own.map(|region| Self::place(Rc::new(region), code))
            };
            match placed {
                Ok(memory) => return Ok(memory),
                Err(_) => DUAL_MAPPING_FAILED.set(true),
            }
        }
        let mut map = MmapMut::map_anon(code.len().max(1))?;
        map[..code.len()].copy_from_slice(code);
        Ok(CodeMemory {
            owner: Owner::Own(map.make_exec()?),
            len: code.len(),
        })
    }

    /// Bump-allocates `code` in this thread's current region, replacing
    /// the region when it is full.
    fn shared(code: &[u8]) -> io::Result<CodeMemory> {
        CURRENT.with_borrow_mut(|current| {
            let need = code.len().next_multiple_of(ALIGN);
            let fits = |r: &Rc<Region>| {
                if Rc::strong_count(r) == 1 {
                    r.used.set(0); // nothing lives in it any more
                }
                r.used.get() + need <= r.write.len
            };
            let region = match current.as_ref().filter(|r| fits(r)) {
                Some(r) => Rc::clone(r),
                None => Rc::clone(current.insert(Rc::new(Region::new(REGION_BYTES)?))),
            };
            Ok(Self::place(region, code))
        })
    }

    /// Copies `code` through `region`'s write view at its bump pointer.
    fn place(region: Rc<Region>, code: &[u8]) -> CodeMemory {
        let offset = region.used.get();
        region.used.set(offset + code.len().next_multiple_of(ALIGN));
        // SAFETY: `region.write` maps `region.write.len` writable bytes
        // and the callers checked `offset + code.len()` fits; these bytes
        // belong to no live program (they lie above the bump pointer), so
        // nothing executes or reads them while they change.
        unsafe {
            let dst = region.write.ptr.add(offset);
            std::ptr::copy_nonoverlapping(code.as_ptr(), dst, code.len());
        }
        CodeMemory {
            owner: Owner::Shared { region, offset },
            len: code.len(),
        }
    }

    /// The first byte of the code, in executable memory.
    pub fn entry(&self) -> *const u8 {
        match &self.owner {
            // SAFETY: `offset` is within the region (checked when placed).
            Owner::Shared { region, offset } => unsafe {
                region.exec.ptr.add(*offset).cast_const()
            },
            Owner::Own(map) => map.as_ptr(),
        }
    }

    /// The code as bytes (read through its executable, readable view).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `entry()..entry() + len` lies in a readable mapping that
        // `self` keeps alive, and no write view changes it while `self`
        // lives (its bytes are below the bump pointer until `self` drops).
        unsafe { std::slice::from_raw_parts(self.entry(), self.len) }
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        if let Owner::Shared { region, offset } = &self.owner
            && region.used.get() == offset + self.len.next_multiple_of(ALIGN)
        {
            // The last program placed: its bytes can go to the next one.
            region.used.set(*offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(m: &CodeMemory) -> Option<usize> {
        match &m.owner {
            Owner::Shared { offset, .. } => Some(*offset),
            Owner::Own(_) => None,
        }
    }

    #[test]
    fn code_is_copied_and_space_is_reused() {
        let a = CodeMemory::new(&[0xc3; 10]).unwrap();
        assert_eq!(a.bytes(), &[0xc3; 10]);
        if offset(&a).is_none() {
            return; // no dual mapping here: nothing shared to reuse
        }
        let b = CodeMemory::new(&[1, 2, 3]).unwrap();
        assert_eq!(offset(&b), offset(&a).map(|o| o + ALIGN));
        drop(b); // on top: given back at once
        let c = CodeMemory::new(&[4; 100]).unwrap();
        assert_eq!(offset(&c), offset(&a).map(|o| o + ALIGN));
        assert_eq!(c.bytes(), &[4; 100]);
        assert_eq!(a.bytes(), &[0xc3; 10]);
    }

    #[test]
    fn large_code_gets_its_own_region_and_full_regions_are_replaced() {
        let big = vec![0x90; SHARED_UP_TO + 1];
        let m = CodeMemory::new(&big).unwrap();
        assert_eq!(m.bytes(), &big[..]);
        let chunk = vec![0xcc; SHARED_UP_TO];
        let kept: Vec<_> = (0..6).map(|_| CodeMemory::new(&chunk).unwrap()).collect();
        assert!(kept.iter().all(|m| m.bytes() == &chunk[..]));
    }
}
