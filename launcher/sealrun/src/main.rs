//! `sealrun`: runs sealed WebAssembly apps. Parses the command line, sets up
//! logging, dispatches to [`sealrun::cli`] and turns an error into its
//! message and exit code; the README lists every exit code.
use std::process::ExitCode;

/// Zeroes freed memory while a launch handles secrets (see `platform::scrub`).
#[global_allocator]
static ALLOC: sealrun::platform::scrub::ScrubbingAlloc = sealrun::platform::scrub::ScrubbingAlloc;

fn main() -> ExitCode {
    // Before anything else, while the process has one thread.
    sealrun::cli::take_secrets_from_env();
    if std::env::var_os("SEALRUN_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SEALRUN_LOG"))
            .with_writer(std::io::stderr)
            .init();
    }
    let cli = sealrun::cli::parse();
    match sealrun::cli::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", sealrun::cli::error_line(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
