//! The `hybrid-bridge` binary: logging, argument parsing, the library call, the exit code.

use clap::Parser as _;

fn main() {
    let cli = bridge::cli::Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "bridge=debug,tunnel_client=debug,hybrid_protocol=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // With --events json every stderr line is JSON, logs included.
    if cli.events == bridge::cli::EventsFormat::Json {
        logs.json().init();
    } else {
        use std::io::IsTerminal as _;
        logs.with_ansi(cli.color.enabled(std::io::stderr().is_terminal()))
            .init();
    }
    let code = bridge::cli::block_on(bridge::cli::main(cli));
    std::process::exit(code);
}
