use super::wasm_module::wasm_peer;

pub struct Wasmtime;

wasm_peer! {
    Wasmtime: wasmtime,
    summary: "the program as a Wasm module, Cranelift-compiled by wasmtime",
    engine: wasmtime::Engine::default(),
    instantiate: instantiate,
}
