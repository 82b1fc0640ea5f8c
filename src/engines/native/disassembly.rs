//! x86-64 disassembly for the JITs' `vm-perf show` (iced-x86's Intel
//! formatter), so the two tiers' machine code can be read side by side.

/// One line per instruction: offset, bytes, Intel syntax. `marks` names
/// offsets worth pointing out (an entry point); `None` on other hosts.
pub fn disassemble(code: &[u8], marks: &[(usize, &str)]) -> Option<String> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
    use std::fmt::Write;
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let options = formatter.options_mut();
    options.set_first_operand_char_index(8);
    options.set_space_after_operand_separator(true);
    options.set_hex_prefix("0x");
    options.set_hex_suffix("");
    options.set_uppercase_hex(false);
    options.set_branch_leading_zeros(false);
    options.set_signed_immediate_operands(true);
    let mut out = String::new();
    let mut text = String::new();
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        let at = instruction.ip() as usize;
        for (_, name) in marks.iter().filter(|(m, _)| *m == at) {
            let _ = writeln!(out, "{name}:");
        }
        text.clear();
        formatter.format(&instruction, &mut text);
        let bytes: String = code[at..at + instruction.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _ = writeln!(out, "{at:6x}  {bytes:<22}{text}");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_offsets_bytes_and_intel_syntax() {
        // add rax, rcx; ret
        let Some(text) = super::disassemble(&[0x48, 0x01, 0xc8, 0xc3], &[(3, "end")]) else {
            return; // not an x86-64 host
        };
        assert_eq!(
            text,
            "     0  4801c8                add     rax, rcx\nend:\n     3  c3                    ret\n"
        );
    }
}
