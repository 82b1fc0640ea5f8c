fn main() -> std::process::ExitCode {
    vm_perf::cli::main()
}
