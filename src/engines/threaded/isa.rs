//! `isa!`: an instruction set written once, as one list of ops, and the
//! operand roles its fields play on the tape, with where an op sits as its
//! operands see it: [`Layout`] while they are encoded, [`Bounds`] while the
//! verifier checks them.

/// What the verifier checks one op's operands against.
pub struct Bounds<'a> {
    /// The op's first word on the tape.
    pub(super) at: usize,
    /// Op start positions, ascending (to check jump targets land on one).
    pub(super) starts: &'a [u32],
    /// The frame of the body the op belongs to: main's, or its function's.
    pub(super) frame_len: usize,
    pub(super) arg_count: usize,
    /// The word positions of the op's body: its first op's start and the
    /// end of its last op. Jumps stay inside the body.
    pub(super) body: (usize, usize),
    /// Whether that body is a function's (else main's).
    pub(super) in_function: bool,
    /// The word positions of every function's first op, ascending.
    pub(super) entries: &'a [u32],
}

impl Bounds<'_> {
    pub fn slot(&self, x: i64) -> bool {
        (x as u64) < self.frame_len as u64
    }
    pub fn arg(&self, x: i64) -> bool {
        (x as u64) < self.arg_count as u64
    }
    /// The word position `rel` bytes from this op, if it is an op's start.
    fn position(&self, rel: i64) -> Option<u32> {
        if rel % 8 != 0 {
            return None;
        }
        let t = (self.at as i64).checked_add(rel / 8)?;
        u32::try_from(t).ok()
    }
    /// The word position `rel` bytes from this op, if it is the start of
    /// an op of the same body.
    fn target(&self, rel: i64) -> Option<usize> {
        let t = self.position(rel)?;
        let inside = (self.body.0..self.body.1).contains(&(t as usize));
        (inside && self.starts.binary_search(&t).is_ok()).then_some(t as usize)
    }
    /// A call's target: the first op of a function (of any body).
    pub fn entry(&self, rel: i64) -> bool {
        self.position(rel)
            .is_some_and(|t| self.entries.binary_search(&t).is_ok())
    }
    /// Whether the op is in a function's body (a frame with a caller).
    pub fn in_function(&self) -> bool {
        self.in_function
    }
    /// Where a callee's frame may start: at or below the end of this frame,
    /// so that frames stack up by at most one function frame per call.
    pub fn frame_base(&self, x: i64) -> bool {
        (x as u64) <= self.frame_len as u64
    }
    /// A jump forward to the start of a later op.
    pub fn forward(&self, rel: i64) -> bool {
        self.target(rel).is_some_and(|t| t > self.at)
    }
    /// A jump back to the start of this op or an earlier one.
    pub fn backward(&self, rel: i64) -> bool {
        self.target(rel).is_some_and(|t| t <= self.at)
    }
    /// Whether the op `n` ops after this one exists in the same body (for
    /// ops that skip).
    pub fn ops_after(&self, n: usize) -> bool {
        let i = self.starts.partition_point(|&s| (s as usize) < self.at);
        self.starts
            .get(i + n)
            .is_some_and(|&s| (s as usize) < self.body.1)
    }
}

/// Positions while encoding: an op index becomes a word position.
pub struct Layout<'a> {
    /// The op being encoded (its index).
    pub(super) at: usize,
    pub(super) starts: &'a [u32],
    /// Where the next op will start (for a target just past the end).
    pub(super) end: usize,
}

impl Layout<'_> {
    /// The word position of op `t` (an op emitted so far, or the next one).
    fn pos(&self, t: usize) -> usize {
        self.starts.get(t).map_or(self.end, |&s| s as usize)
    }
    /// A jump from the op being encoded to op `t`, in bytes.
    pub fn rel(&self, t: usize) -> i64 {
        (self.pos(t) as i64)
            .wrapping_sub(self.pos(self.at) as i64)
            .wrapping_mul(8)
    }
    /// The op `rel` bytes from the op at `at` (the inverse of `rel`); an
    /// offset that lands on no op start decodes to the op after it.
    pub fn target(&self, rel: i64) -> usize {
        let t = (self.pos(self.at) as i64).wrapping_add(rel / 8);
        self.starts.partition_point(|&s| (s as i64) < t)
    }
}

/// How one field of an instruction lives on the tape. A field may *select*
/// (a small number choosing among the op's handlers: which register, which
/// kind of leaf; kept in the op's kind) and may have a *word* (its operand
/// word on the tape: a literal, a slot, a jump distance).
pub trait Operand {
    /// The field's type in the instruction enum.
    type Value: Copy;
    /// Which selectors have a word: bit `sel` set if a field with selector
    /// `sel` has one. A constant, so an op's length is known at compile time
    /// (each handler's `LEN`, see [`op_len`]).
    const WORDS: u64;
    /// The selector (0 when the field selects nothing) and the word, if the
    /// field has one.
    fn encode(v: Self::Value, at: &Layout) -> (u8, Option<i64>);
    /// Whether a field with selector `sel` has a word.
    fn has_word(sel: u8) -> bool {
        has_word(Self::WORDS, sel)
    }
    /// The field back from its selector and word (0 if it has none).
    fn decode(sel: u8, word: i64, at: &Layout) -> Self::Value;
    /// Whether a handler may rely on this field: its word in range.
    fn check(sel: u8, word: i64, b: &Bounds) -> bool;
    /// Whether the word is a jump, which threading turns into the target
    /// op's address.
    const JUMP: bool = false;
    /// Where a field with selector `sel` lives, as kind names show it
    /// (`acc`, `r0`, `slot`, `const`, …).
    fn location(sel: u8) -> String;
}

/// Every combination of one value from each list (the handlers of an op's
/// table, by their selectors), in table order.
pub fn combinations(lists: &[&[u8]]) -> Vec<Vec<u8>> {
    lists.iter().fold(vec![Vec::new()], |done, list| {
        done.iter()
            .flat_map(|c| list.iter().map(move |&v| [c.as_slice(), &[v]].concat()))
            .collect()
    })
}

/// Whether selector `sel` has a word in a role whose [`Operand::WORDS`] is
/// `words`.
const fn has_word(words: u64, sel: u8) -> bool {
    sel < 64 && (words >> sel) & 1 == 1
}

/// An op's length in words, computed from its `isa!` entry: the handler
/// word, then a word for each field whose role has one at that field's
/// selector, at least `min`. `fields` are the op's fields (name and the
/// role's [`Operand::WORDS`]), `selecting` the fields that choose the
/// handler (a subsequence of `fields`, in order) and `sels` their
/// selectors. Each handler gets its op's length from this as its `LEN`, so
/// a handler never restates it.
pub const fn op_len(fields: &[(&str, u64)], selecting: &[&str], sels: &[u8], min: usize) -> usize {
    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    assert!(selecting.len() == sels.len());
    let (mut words, mut f, mut s) = (0, 0, 0);
    while f < fields.len() {
        let (name, role_words) = fields[f];
        let mut sel = 0;
        if s < selecting.len() && same(selecting[s], name) {
            sel = sels[s];
            s += 1;
        }
        words += has_word(role_words, sel) as usize;
        f += 1;
    }
    // Every selecting field names a field, in the fields' order.
    assert!(
        s == selecting.len(),
        "a selector names no field, or out of order"
    );
    if 1 + words > min { 1 + words } else { min }
}

/// A small number as a selector; one out of range stays out of range (it
/// then has no handler, so the verifier rejects it).
fn selector(k: usize) -> u8 {
    u8::try_from(k).unwrap_or(u8::MAX)
}

/// Operand roles whose value is their one word, checked by `check` against
/// the tape's bounds.
macro_rules! word_roles {
    ($($(#[$doc:meta])* $Role:ident: $T:ty, $check:expr, $location:literal;)*) => {$(
        $(#[$doc])*
        pub struct $Role;

        impl Operand for $Role {
            type Value = $T;
            const WORDS: u64 = 1;
            fn encode(v: $T, _: &Layout) -> (u8, Option<i64>) {
                (0, Some(v as i64))
            }
            fn decode(_: u8, x: i64, _: &Layout) -> $T {
                x as $T
            }
            fn check(_: u8, x: i64, b: &Bounds) -> bool {
                let check: fn(&Bounds, i64) -> bool = $check;
                check(b, x)
            }
            fn location(_: u8) -> String {
                $location.into()
            }
        }
    )*};
}

word_roles! {
    /// A literal, as its word.
    Lit: i64, |_, _| true, "const";
    /// An argument index, checked below the argument count.
    ArgIndex: usize, |b, i| b.arg(i), "arg";
    /// A frame slot, checked inside the frame.
    Slot: usize, |b, s| b.slot(s), "slot";
}

/// A register number: a selector, no word. The handler table's width is
/// the check.
pub struct Reg;

impl Operand for Reg {
    type Value = usize;
    const WORDS: u64 = 0;
    fn encode(k: usize, _: &Layout) -> (u8, Option<i64>) {
        (selector(k), None)
    }
    fn decode(k: u8, _: i64, _: &Layout) -> usize {
        k as usize
    }
    fn check(_: u8, _: i64, _: &Bounds) -> bool {
        true
    }
    fn location(k: u8) -> String {
        format!("r{k}")
    }
}

/// A jump target (an op index), stored as a byte distance and checked to be
/// the start of an op: a later one ([`Forward`]) or this one or an earlier
/// one ([`Backward`]). Threading turns it into the target op's address.
pub struct Jump<const BACKWARD: bool>;

/// A jump to a later op.
pub type Forward = Jump<false>;
/// A jump to this op or an earlier one (a loop's back-edge).
pub type Backward = Jump<true>;

impl<const BACKWARD: bool> Operand for Jump<BACKWARD> {
    type Value = usize;
    const JUMP: bool = true;
    const WORDS: u64 = 1;
    fn encode(t: usize, at: &Layout) -> (u8, Option<i64>) {
        (0, Some(at.rel(t)))
    }
    fn decode(_: u8, rel: i64, at: &Layout) -> usize {
        at.target(rel)
    }
    fn check(_: u8, rel: i64, b: &Bounds) -> bool {
        if BACKWARD {
            b.backward(rel)
        } else {
            b.forward(rel)
        }
    }
    fn location(_: u8) -> String {
        if BACKWARD { "back" } else { "forward" }.into()
    }
}

/// A call's target: the first op of a function, stored as a byte distance
/// and checked to be one; threading turns it into that op's address.
pub struct Callee;

impl Operand for Callee {
    type Value = usize;
    const JUMP: bool = true;
    const WORDS: u64 = 1;
    fn encode(t: usize, at: &Layout) -> (u8, Option<i64>) {
        (0, Some(at.rel(t)))
    }
    fn decode(_: u8, rel: i64, at: &Layout) -> usize {
        at.target(rel)
    }
    fn check(_: u8, rel: i64, b: &Bounds) -> bool {
        b.entry(rel)
    }
    fn location(_: u8) -> String {
        "function".into()
    }
}

/// Where a callee's frame starts in the caller's: a slot number up to the
/// caller's frame length (see [`Bounds::frame_base`]).
pub struct FrameBase;

impl Operand for FrameBase {
    type Value = usize;
    const WORDS: u64 = 1;
    fn encode(s: usize, _: &Layout) -> (u8, Option<i64>) {
        (0, Some(s as i64))
    }
    fn decode(_: u8, x: i64, _: &Layout) -> usize {
        x as usize
    }
    fn check(_: u8, x: i64, b: &Bounds) -> bool {
        b.frame_base(x)
    }
    fn location(_: u8) -> String {
        "frame".into()
    }
}

/// A handler table over up to three selectors: `table!(Handler, f, B,
/// len_of; [0, 1] [LIT, ARG])` is `[[Handler(f::<B, 0, LIT, { len_of(&[0,
/// LIT]) }>), …], …]`: each handler gets its op's length as its last const
/// parameter, from the const fn `len_of` over its selectors.
macro_rules! table {
    ($H:path, $f:ident, $B:ty, $len:ident; $($lists:tt)*) => {
        $crate::engines::threaded::table!(@ $H, $f, $B, $len, []; $($lists)*)
    };
    (@ $H:path, $f:ident, $B:ty, $len:ident, [$($c:expr),*];) => {
        $H($f::<$B $(, $c)*, { $len(&[$($c),*]) }>)
    };
    (@ $H:path, $f:ident, $B:ty, $len:ident, $c:tt; [$($a:expr),*]) => {
        [$($crate::engines::threaded::table!(@push $H, $f, $B, $len, $c, $a;)),*]
    };
    (@ $H:path, $f:ident, $B:ty, $len:ident, $c:tt; [$($a:expr),*] $l2:tt) => {
        [$($crate::engines::threaded::table!(@push $H, $f, $B, $len, $c, $a; $l2)),*]
    };
    (@ $H:path, $f:ident, $B:ty, $len:ident, $c:tt; [$($a:expr),*] $l2:tt $l3:tt) => {
        [$($crate::engines::threaded::table!(@push $H, $f, $B, $len, $c, $a; $l2 $l3)),*]
    };
    (@push $H:path, $f:ident, $B:ty, $len:ident, [$($c:expr),*], $a:expr; $($l:tt)*) => {
        $crate::engines::threaded::table!(@ $H, $f, $B, $len, [$($c,)* $a]; $($l)*)
    };
}
pub(crate) use table;

/// An instruction set, written once:
///
/// ```ignore
/// isa! {
///     /// doc
///     pub(crate) isa TapeIsa { word: Word, handler: Handler, instr: Instr, kind: Kind, min_len: 2 }
///     /// `acc = r[k]`
///     GetReg(k: usize as Reg) "get r{k}" => get_reg<k in [0, 1]>;
///     /// `acc = frame[s]`
///     GetSlot(s: usize as Slot) "get [{s}]" => get_slot;
/// }
/// ```
///
/// Each op names its fields (their type in the instruction enum `as` their
/// [`Operand`] role), its listing (a format string over the fields) and its
/// handler family with the fields that select among it and the values each
/// takes; an optional `if |b| …` adds a check on the op's [`Bounds`] that no
/// single field makes (an op that skips the op after it needs two after it). An `extends: Base` set (a fused tier) starts from another set's
/// ops, whose instructions it wraps as `Base(…)`. With `instr: use Instr,
/// kind: use Kind` the set reuses enums another `isa!` defined for the same
/// ops: another register family's handlers for the same instructions
/// (`register_preserve_none`). Generated: the
/// instruction enum and its `Display`, the kind enum (one selector byte per
/// field), `From` the base's instructions, and the [`Isa`](super::Isa)
/// impl: lengths, encode, decode, every kind with a handler and its name
/// (the variants the coverage test counts), and the verifier's
/// `checked_handler`, which checks every field and then looks the handler
/// up.
macro_rules! isa {
    // Another family's handlers for a set that exists: its instruction and
    // kind enums are used, not defined.
    (
        $(#[$imeta:meta])*
        $vis:vis isa $Isa:ident {
            word: $Word:ident, handler: $Handler:ident, instr: use $Instr:ident,
            kind: use $Kind:ident, min_len: $min:expr $(, extends: $Base:ty)? $(,)?
        }
        $($ops:tt)*
    ) => {
        $(#[$imeta])*
        $vis struct $Isa;
        $crate::engines::threaded::isa!(
            @impl $Isa, $Word, $Handler, $Instr, $Kind, $min, [$($Base)?]; $($ops)*
        );
    };
    (
        $(#[$imeta:meta])*
        $vis:vis isa $Isa:ident {
            word: $Word:ident, handler: $Handler:ident, instr: $Instr:ident, kind: $Kind:ident,
            min_len: $min:expr $(, extends: $Base:ty)? $(,)?
        }
        $($ops:tt)*
    ) => {
        $(#[$imeta])*
        $vis struct $Isa;
        $crate::engines::threaded::isa!(@types $vis, $Instr, $Kind, [$($Base)?]; $($ops)*);
        $crate::engines::threaded::isa!(
            @impl $Isa, $Word, $Handler, $Instr, $Kind, $min, [$($Base)?]; $($ops)*
        );
    };
    (
        @types $vis:vis, $Instr:ident, $Kind:ident, [$($Base:ty)?];
        $(
            $(#[$doc:meta])*
            $Op:ident ( $($f:ident: $T:ty as $Role:ty),* ) $fmt:literal
                => $h:ident $(< $($sel:ident in [$($v:expr),*]),* >)? $(if $extra:expr)?;
        )*
    ) => {

        /// One instruction of the listing (see the ops of the module doc).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $Instr {
            $( $(#[$doc])* $Op($($T),*), )*
            $(
                /// An instruction of the set this one extends.
                Base(<$Base as $crate::engines::threaded::Isa>::Instr),
            )?
        }

        /// What an op is without its operand words: its instruction and one
        /// selector per field (which handler of its family it runs).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $Kind {
            $( $Op($($crate::engines::threaded::isa!(@u8 $f)),*), )*
            $( Base(<$Base as $crate::engines::threaded::Isa>::Kind), )?
        }

        impl std::fmt::Display for $Instr {
            #[allow(unused_variables)]
            fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match *self {
                    $( $Instr::$Op($($f),*) => write!(out, $fmt), )*
                    $( $Instr::Base(i) => std::fmt::Display::fmt(
                        &i as &<$Base as $crate::engines::threaded::Isa>::Instr,
                        out,
                    ), )?
                }
            }
        }

        $(
            impl From<<$Base as $crate::engines::threaded::Isa>::Instr> for $Instr {
                fn from(i: <$Base as $crate::engines::threaded::Isa>::Instr) -> Self {
                    $Instr::Base(i)
                }
            }
            impl From<<$Base as $crate::engines::threaded::Isa>::Kind> for $Kind {
                fn from(k: <$Base as $crate::engines::threaded::Isa>::Kind) -> Self {
                    $Kind::Base(k)
                }
            }
        )?

    };
    (
        @impl $Isa:ident, $Word:ident, $Handler:ident, $Instr:ident, $Kind:ident, $min:expr,
        [$($Base:ty)?];
        $(
            $(#[$doc:meta])*
            $Op:ident ( $($f:ident: $T:ty as $Role:ty),* ) $fmt:literal
                => $h:ident $(< $($sel:ident in [$($v:expr),*]),* >)? $(if $extra:expr)?;
        )*
    ) => {
        impl $crate::engines::threaded::Isa for $Isa {
            type Instr = $Instr;
            type Kind = $Kind;
            type Word = $Word;

            #[allow(unused_variables, unused_mut)]
            fn len(kind: $Kind) -> usize {
                match kind {
                    $( $Kind::$Op($($f),*) => $crate::engines::threaded::isa!(
                        @len $min; [$(($f, $Role)),*]; [$($($sel),*)?]; &[$($($sel),*)?]
                    ), )*
                    $( $Kind::Base(k) => <$Base as $crate::engines::threaded::Isa>::len(k), )?
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn kinds() -> Vec<$Kind> {
                let mut all = Vec::new();
                $(
                    let selecting: &[&str] = &[$($(stringify!($sel)),*)?];
                    let values: &[&[u8]] = &[$($(&[$($v),*]),*)?];
                    for sels in $crate::engines::threaded::isa::combinations(values) {
                        let mut s = 0;
                        $( let $f = if selecting.get(s) == Some(&stringify!($f)) {
                            s += 1;
                            sels[s - 1]
                        } else {
                            0
                        }; )*
                        all.push($Kind::$Op($($f),*));
                    }
                )*
                $( all.extend(
                    <$Base as $crate::engines::threaded::Isa>::kinds().into_iter().map($Kind::Base),
                ); )?
                all
            }

            #[allow(unused_variables)]
            fn kind_name(kind: $Kind) -> String {
                use $crate::engines::threaded::Operand as _;
                match kind {
                    $( $Kind::$Op($($f),*) => {
                        let fields: &[String] = &[$(<$Role>::location($f)),*];
                        format!("{}({})", stringify!($Op), fields.join(", "))
                    } )*
                    $( $Kind::Base(k) => <$Base as $crate::engines::threaded::Isa>::kind_name(k), )?
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments)]
            #[inline]
            fn encode(
                instr: $Instr,
                at: &$crate::engines::threaded::Layout,
            ) -> ($Kind, [i64; $crate::engines::threaded::MAX_OPERANDS], usize) {
                use $crate::engines::threaded::Operand as _;
                match instr {
                    $( $Instr::$Op($($f),*) => {
                        let mut words = [0i64; $crate::engines::threaded::MAX_OPERANDS];
                        let mut n = 0;
                        $( let $f = {
                            let (sel, word) = <$Role>::encode($f, at);
                            if let Some(w) = word {
                                words[n] = w;
                                n += 1;
                            }
                            sel
                        }; )*
                        ($Kind::$Op($($f),*), words, (1 + n).max($min))
                    } )*
                    $( $Instr::Base(i) => {
                        let (k, words, len) =
                            <$Base as $crate::engines::threaded::Isa>::encode(i, at);
                        ($Kind::Base(k), words, len)
                    } )?
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn decode(
                kind: $Kind,
                words: &[i64],
                at: &$crate::engines::threaded::Layout,
            ) -> $Instr {
                use $crate::engines::threaded::Operand as _;
                match kind {
                    $( $Kind::$Op($($f),*) => {
                        let mut n = 0;
                        $( let $f = {
                            let mut w = 0;
                            if <$Role>::has_word($f) {
                                w = words[n];
                                n += 1;
                            }
                            <$Role>::decode($f, w, at)
                        }; )*
                        $Instr::$Op($($f),*)
                    } )*
                    $( $Kind::Base(k) => $Instr::Base(
                        <$Base as $crate::engines::threaded::Isa>::decode(k, words, at),
                    ), )?
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments)]
            fn jumps(kind: $Kind) -> [bool; $crate::engines::threaded::MAX_OPERANDS] {
                use $crate::engines::threaded::Operand as _;
                match kind {
                    $( $Kind::$Op($($f),*) => {
                        let mut jumps = [false; $crate::engines::threaded::MAX_OPERANDS];
                        let mut n = 0;
                        $( if <$Role>::has_word($f) {
                            jumps[n] = <$Role>::JUMP;
                            n += 1;
                        } )*
                        jumps
                    } )*
                    $( $Kind::Base(k) => <$Base as $crate::engines::threaded::Isa>::jumps(k), )?
                }
            }

            #[allow(unused_variables, unused_mut, unused_assignments)]
            #[inline]
            fn checked_handler<B: $crate::engines::threaded::Backend>(
                kind: $Kind,
                words: &[$Word],
                b: &$crate::engines::threaded::Bounds,
            ) -> Option<($Word, u8)> {
                use $crate::engines::threaded::Operand as _;
                match kind {
                    $( $Kind::$Op($($f),*) => {
                        let mut n = 0;
                        let mut jumps = 0u8;
                        $(
                            let mut w = 0;
                            if <$Role>::has_word($f) {
                                w = $crate::engines::threaded::TapeWord::read(*words.get(n)?);
                                jumps |= (<$Role>::JUMP as u8) << n;
                                n += 1;
                            }
                            if !<$Role>::check($f, w, b) {
                                return None;
                            }
                        )*
                        $( if !($extra)(b) {
                            return None;
                        } )?
                        // The op's length, for each handler's `LEN`.
                        const fn len_of(sels: &[u8]) -> usize {
                            $crate::engines::threaded::isa!(
                                @len $min; [$(($f, $Role)),*]; [$($($sel),*)?]; sels
                            )
                        }
                        let table = &const {
                            $crate::engines::threaded::table!(
                                $Handler, $h, B, len_of; $($([$($v),*])*)?
                            )
                        };
                        let handler = *table $($(.get($sel as usize)?)*)?;
                        Some(($Word { handler }, jumps))
                    } )*
                    $( $Kind::Base(k) => {
                        <$Base as $crate::engines::threaded::Isa>::checked_handler::<B>(k, words, b)
                    } )?
                }
            }
        }
    };
    (@u8 $f:ident) => { u8 };
    // The length of an op with fields `$f` (roles `$Role`), of which `$sel`
    // select, at selectors `$sels`.
    (@len $min:expr; [$(($f:ident, $Role:ty)),*]; [$($sel:ident),*]; $sels:expr) => {
        $crate::engines::threaded::isa::op_len(
            &[$((stringify!($f), <$Role as $crate::engines::threaded::Operand>::WORDS)),*],
            &[$(stringify!($sel)),*],
            $sels,
            $min,
        )
    };
}
pub(crate) use isa;
