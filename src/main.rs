//! The `skypunch` command: everything happens in `cli`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    skypunch::main(&args)
}
