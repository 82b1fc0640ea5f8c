//! The loader and patcher: the stencil table `build.rs` wrote, and the
//! buffer a compile copies stencils into and patches.

/// A stencil as the build left it: machine code with holes.
pub struct Stencil {
    /// The function's name in `stencils.rs` (`add_r1_m`: `+=` into
    /// register local 1 from a memory slot).
    pub name: &'static str,
    /// Its bytes, without the final `jmp` to the next stencil.
    pub code: &'static [u8],
    pub holes: &'static [Hole],
}

/// A field in a stencil's code that the engine fills in.
#[derive(Clone, Copy, Debug)]
pub struct Hole {
    /// Offset of the field in the stencil's code.
    pub at: u32,
    /// The `extern` symbol whose address the field holds.
    pub symbol: Symbol,
    pub reloc: Reloc,
    /// What the relocation adds to the symbol's address.
    pub addend: i64,
}

/// The holes' symbols (`stencils.rs` declares them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// (`CONTINUE`, the next stencil, is resolved by the build.)
pub enum Symbol {
    Target,
    Callee,
    Fail,
    Imm,
    Lo,
    Hi,
    Src,
    Dst,
    Arg,
    Args,
    Frame,
    Back,
    Mask,
    Limit,
}

/// How a hole holds its value (x86-64 ELF relocation kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reloc {
    /// 32 bits relative to the end of the field (`jmp`, `jcc`, `call`).
    Rel32,
    /// 32 bits, zero-extended (`mov r32, imm32`).
    Abs32,
    /// 32 bits, sign-extended (displacements, `add r64, imm32`).
    Abs32S,
}

include!(concat!(env!("OUT_DIR"), "/stencils.rs"));

/// The stencil called `name`.
pub fn stencil(name: &str) -> Option<&'static Stencil> {
    STENCILS
        .binary_search_by(|s| s.name.cmp(name))
        .ok()
        .map(|i| &STENCILS[i])
}

/// Whether `value` fits a hole of kind `reloc` (absolute kinds).
fn fits(reloc: Reloc, value: i64) -> bool {
    match reloc {
        Reloc::Abs32 => u32::try_from(value).is_ok(),
        Reloc::Abs32S | Reloc::Rel32 => i32::try_from(value).is_ok(),
    }
}

impl Stencil {
    /// Whether every `symbol` hole can hold `value`.
    pub fn holds(&self, symbol: Symbol, value: i64) -> bool {
        self.holes
            .iter()
            .filter(|h| h.symbol == symbol)
            .all(|h| fits(h.reloc, value.wrapping_add(h.addend)))
    }
}

/// The values of one copy's operand holes.
#[derive(Clone, Copy, Default)]
pub struct Fill {
    /// `IMM`, and `LO`/`HI` (its halves).
    pub imm: i64,
    /// Byte offsets in the frame (`SRC`, `DST`, `ARGS`, from the frame;
    /// `ARG` from the argument pointer).
    pub src: i64,
    pub dst: i64,
    pub arg: i64,
    pub args: i64,
    /// `TARGET`: a label.
    pub target: Label,
    /// `CALLEE`: a function's index (its frame size fills `FRAME`).
    pub callee: usize,
}

/// A place in the code, bound once.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Label(u32);

/// What a hole waits for until the whole program is copied.
#[derive(Clone, Copy)]
enum Later {
    Label(Label),
    Entry(usize),
    /// The calling function's frame size, and its negation.
    FrameOf(usize),
    BackOf(usize),
    Mask,
    Limit,
    Fail,
}

/// The code being put together: copies of stencils, patched. Its
/// buffers are kept from one compile to the next ([`Patcher::reset`]),
/// so a compile allocates none of them once its thread has compiled a
/// program as large.
#[derive(Default)]
pub struct Patcher {
    pub code: Vec<u8>,
    /// Where each copy starts, and its stencil (for `show`).
    pub parts: Vec<(usize, &'static str)>,
    labels: Vec<Option<u32>>,
    later: Vec<(usize, Hole, Later)>,
    /// Each function's entry offset and frame size in bytes (main last).
    pub entries: Vec<usize>,
    pub frames: Vec<i64>,
    /// The function being copied.
    pub function: usize,
    pub fail: usize,
    /// The depth check's constants (see `stencils.rs`).
    pub mask: i64,
    pub limit: i64,
}

impl Patcher {
    /// An empty patcher for a program of `functions` functions and `nodes`
    /// nodes (buffers sized for it).
    #[cfg(test)]
    pub fn new(functions: usize, nodes: usize) -> Patcher {
        let mut p = Patcher::default();
        p.reset(functions, nodes);
        p
    }

    /// Empties the buffers, keeping their memory, and reserves what a
    /// program of `functions` functions and `nodes` nodes needs: a copy
    /// per node at most, a label pair per node at most.
    pub fn reset(&mut self, functions: usize, nodes: usize) {
        self.code.clear();
        self.code.reserve(64 + nodes * 16);
        self.parts.clear();
        self.parts.reserve(nodes + 2 * functions + 2);
        self.labels.clear();
        self.later.clear();
        self.entries.clear();
        self.entries.resize(functions + 1, 0);
        self.frames.clear();
        self.frames.resize(functions + 1, 0);
        self.function = 0;
        self.fail = 0;
        self.mask = 0;
        self.limit = 0;
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() as u32 - 1)
    }

    /// `label` is here.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0 as usize] = Some(self.code.len() as u32);
    }

    /// Appends a copy of `stencil` with its operand holes filled from
    /// `fill`; its jumps are patched in `finish`.
    pub fn copy(&mut self, stencil: &'static Stencil, fill: &Fill) {
        let base = self.code.len();
        self.parts.push((base, stencil.name));
        self.code.extend_from_slice(stencil.code);
        for &hole in stencil.holes {
            let value = match hole.symbol {
                Symbol::Imm => fill.imm,
                Symbol::Lo => fill.imm & 0xffff_ffff,
                Symbol::Hi => (fill.imm as u64 >> 32) as i64,
                Symbol::Src => fill.src,
                Symbol::Dst => fill.dst,
                Symbol::Arg => fill.arg,
                Symbol::Args => fill.args,
                Symbol::Target => {
                    self.later.push((base, hole, Later::Label(fill.target)));
                    continue;
                }
                Symbol::Callee => {
                    self.later.push((base, hole, Later::Entry(fill.callee)));
                    continue;
                }
                Symbol::Frame => {
                    self.later.push((base, hole, Later::FrameOf(self.function)));
                    continue;
                }
                Symbol::Back => {
                    self.later.push((base, hole, Later::BackOf(self.function)));
                    continue;
                }
                Symbol::Fail => {
                    self.later.push((base, hole, Later::Fail));
                    continue;
                }
                Symbol::Mask => {
                    self.later.push((base, hole, Later::Mask));
                    continue;
                }
                Symbol::Limit => {
                    self.later.push((base, hole, Later::Limit));
                    continue;
                }
            };
            self.patch(base, hole, value);
        }
    }

    /// Writes `value` (the symbol's address) into `hole` of the copy at `base`.
    fn patch(&mut self, base: usize, hole: Hole, value: i64) {
        let at = base + hole.at as usize;
        let mut field = value.wrapping_add(hole.addend);
        if hole.reloc == Reloc::Rel32 {
            field = field.wrapping_sub(at as i64);
        }
        // The lowering chose a stencil whose holes hold its operands
        // (`Stencil::holds`); offsets and jumps are far below 2^31.
        assert!(fits(hole.reloc, field), "{hole:?} cannot hold {value}");
        self.code[at..at + 4].copy_from_slice(&(field as u32).to_le_bytes());
    }

    /// Patches the holes that waited for labels, entries and frame sizes.
    pub fn finish(&mut self) {
        for k in 0..self.later.len() {
            let (base, hole, what) = self.later[k];
            let value = match what {
                Later::Label(l) => self.labels[l.0 as usize].expect("every label is bound") as i64,
                Later::Entry(f) => self.entries[f] as i64,
                Later::FrameOf(f) => self.frames[f],
                Later::BackOf(f) => -self.frames[f],
                Later::Fail => self.fail as i64,
                Later::Mask => self.mask,
                Later::Limit => self.limit,
            };
            self.patch(base, hole, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_hole_is_inside_its_stencil() {
        assert!(STENCILS.windows(2).all(|w| w[0].name < w[1].name));
        assert!(STENCILS.len() > 100);
        for s in STENCILS {
            for h in s.holes {
                assert!(h.at as usize + 4 <= s.code.len(), "{}", s.name);
            }
        }
    }

    #[test]
    fn a_copy_has_every_hole_patched() {
        // `add_m_i` adds a literal into a memory slot: both fields filled.
        let s = stencil("add_m_i").expect("add_m_i");
        let mut p = Patcher::new(0, 1);
        let fill = Fill {
            dst: 0x1234,
            imm: -5,
            ..Fill::default()
        };
        assert!(s.holds(Symbol::Imm, -5));
        p.copy(s, &fill);
        for h in s.holes {
            let at = h.at as usize;
            let field = i32::from_le_bytes(p.code[at..at + 4].try_into().unwrap()) as i64;
            let want = match h.symbol {
                Symbol::Dst => 0x1234,
                Symbol::Imm => -5,
                other => panic!("unexpected hole {other:?}"),
            };
            assert_eq!(field, want + h.addend);
        }
        // And a jump waits for its label, then points at it.
        let jump = stencil("jump").expect("jump");
        let mut p = Patcher::new(0, 2);
        let top = p.label();
        p.bind(top);
        p.copy(s, &fill);
        p.copy(
            jump,
            &Fill {
                target: top,
                ..Fill::default()
            },
        );
        p.finish();
        let h = jump.holes[0];
        let at = s.code.len() + h.at as usize;
        let rel = i32::from_le_bytes(p.code[at..at + 4].try_into().unwrap()) as i64;
        assert_eq!(at as i64 + 4 + rel, 0, "jumps back to the top");
    }
}
